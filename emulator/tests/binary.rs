//! The `keyvault-emulator` binary: CLI contract, `ca.pem` before the listening line, seed
//! file, SIGTERM.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{S1_CURRENT, SP_CLIENT, SP_SECRET, TENANT, VAULT_SCOPE};
use reqwest::StatusCode;

const BIN: &str = env!("CARGO_BIN_EXE_keyvault-emulator");

/// Kills the child if a test fails before it ends it; collects its stderr.
struct Guard(Child, Option<std::thread::JoinHandle<String>>);

impl Guard {
    /// Everything the child wrote on stderr (waits for the pipe to close).
    fn stderr(&mut self) -> String {
        self.1
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and returns it with its first stdout line, and whether `ca.pem` existed
/// (with a certificate in it) at the moment that line was read.
fn spawn(tls_dir: &Path, seed: Option<&Path>) -> (Guard, String, bool) {
    let mut cmd = Command::new(BIN);
    cmd.arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--tls-dir")
        .arg(tls_dir)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(seed) = seed {
        cmd.arg("--seed").arg(seed);
    }
    let mut child = cmd.spawn().expect("spawn the emulator binary");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let ca = tls_dir.join("ca.pem");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let ca_ready = std::fs::read_to_string(&ca)
            .is_ok_and(|pem| pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let _ = tx.send((line, ca_ready));
        // Keep draining so the child never blocks on a full pipe.
        let mut rest = String::new();
        while reader.read_line(&mut rest).is_ok_and(|n| n > 0) {
            rest.clear();
        }
    });
    let (line, ca_ready) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the emulator printed a line");
    (Guard(child, Some(stderr_reader)), line, ca_ready)
}

fn port_of(line: &str) -> u16 {
    let rest = line
        .trim_end_matches('\n')
        .strip_prefix("listening on https://127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    rest.parse()
        .unwrap_or_else(|_| panic!("no port in {line:?}"))
}

#[tokio::test]
async fn prints_the_listening_line_after_ca_pem_exists_and_serves_the_seed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls_dir = dir.path().join("tls");
    let seed_path = dir.path().join("seed.json");
    let seed = serde_json::to_vec(&common::seed()).expect("seed JSON");
    std::fs::write(&seed_path, seed).expect("write seed");

    let (mut child, line, ca_ready) = spawn(&tls_dir, Some(&seed_path));
    assert!(ca_ready, "ca.pem was missing when {line:?} was printed");
    let port = port_of(&line);
    assert!(line.ends_with('\n'));
    assert_ne!(port, 0);

    let pem = std::fs::read(tls_dir.join("ca.pem")).expect("ca.pem");
    let ca = reqwest::Certificate::from_pem(&pem).expect("CA parses");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .no_proxy()
        .resolve("login.localhost", addr)
        .resolve("kv1.vault.localhost", addr)
        .build()
        .expect("client");
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", SP_CLIENT),
            ("client_secret", SP_SECRET),
            ("grant_type", "client_credentials"),
            ("scope", VAULT_SCOPE),
        ])
        .finish();
    let resp = http
        .post(format!(
            "https://login.localhost:{port}/{TENANT}/oauth2/v2.0/token"
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("token");
    let (status, _, body) = common::body_json(resp).await;
    assert_eq!(status, StatusCode::OK);
    let token = body["access_token"].as_str().expect("token").to_owned();
    let (status, _, body) = common::get(
        &http,
        &format!("https://kv1.vault.localhost:{port}/secrets/s1/?api-version=7.5"),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], S1_CURRENT);

    // SIGTERM ends it cleanly.
    let pid = child.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let exited = exited.expect("the emulator exited after SIGTERM");
    assert!(exited.success(), "{exited:?}");

    // Its stderr (trace level) holds no values or credentials.
    let stderr = child.stderr();
    assert!(stderr.contains("listening"), "{stderr}");
    for leak in [SP_SECRET, S1_CURRENT, token.as_str()] {
        assert!(!stderr.contains(leak), "{leak} in stderr");
    }
}

#[test]
fn a_bad_seed_file_fails_without_quoting_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed_path = dir.path().join("seed.json");
    std::fs::write(
        &seed_path,
        r#"{"vaults":[{"name":"kv1","secrets":[{"name":"s1","versions":[{"value":987654321}]}]}]}"#,
    )
    .expect("write seed");
    let out = Command::new(BIN)
        .arg("--tls-dir")
        .arg(dir.path().join("tls"))
        .arg("--seed")
        .arg(&seed_path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "printed a listening line on failure");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("seed.json"), "{stderr}");
    assert!(!stderr.contains("987654321"), "{stderr}");
}

#[test]
fn tls_dir_is_required() {
    let out = Command::new(BIN).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-dir"));
}
