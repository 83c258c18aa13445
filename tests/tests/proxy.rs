//! C51: `HTTPS_PROXY` is honoured for hosts `NO_PROXY` does not exclude,
//! and an `--extra-ca-file` that is a symlink works. Its own test binary:
//! the proxy variables are process-wide.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vaultlet_tests::{Env, attrs, objects, privileged_or_skip};

const VAULT: &str = "kv-proxy";
const CLIENT: &str = "0e0e0e0e-1111-2222-3333-444444444444";

/// A minimal HTTP CONNECT proxy on loopback: it records each CONNECT
/// target and tunnels it to 127.0.0.1 on the target's port (every test host
/// is the emulator on loopback).
async fn connect_proxy() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read_exact(&mut byte).await.is_err() || head.len() > 8192 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let Some(target) = text
                    .lines()
                    .next()
                    .and_then(|l| l.strip_prefix("CONNECT "))
                    .and_then(|l| l.split_whitespace().next())
                    .map(str::to_string)
                else {
                    let _ = client
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                        .await;
                    return;
                };
                log.lock().expect("log").push(target.clone());
                let port = target.rsplit(':').next().unwrap_or("443").to_string();
                let Ok(mut upstream) = TcpStream::connect(format!("127.0.0.1:{port}")).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                if client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(unsafe_code)] // std::env::set_var (edition 2024); see the SAFETY notes.
async fn c51_https_proxy_is_honoured_for_hosts_no_proxy_does_not_exclude() {
    if !privileged_or_skip("c51_https_proxy") {
        return;
    }
    let (proxy, seen) = connect_proxy().await;
    // SAFETY: this binary holds this one test, so no other thread reads
    // the environment while it changes.
    unsafe {
        std::env::set_var("HTTPS_PROXY", format!("http://{proxy}"));
        std::env::set_var("NO_PROXY", "localhost");
    }

    // 1. NO_PROXY=localhost excludes every emulator host (*.localhost): the
    //    publish works without the proxy. The CA file is a symlink.
    let mut env = Env::start_with(|c| {
        let ca = c.extra_ca_file.clone().expect("the harness sets a CA file");
        let link = ca.with_file_name("ca-link.pem");
        std::os::unix::fs::symlink(&ca, &link).expect("symlink the CA file");
        c.extra_ca_file = Some(link);
    })
    .await;
    assert!(
        env.config
            .extra_ca_file
            .as_ref()
            .is_some_and(|p| p.is_symlink()),
        "the daemon was given the symlink"
    );
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "c51-value-0123456789");
    let pod = env.wi_pod(CLIENT, "team-p", "uid-c51-direct");
    let a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&["objectName: s1\nobjectType: secret"]),
    );
    let target = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("publish with the vault excluded from the proxy");
    assert_eq!(
        std::fs::read(target.join("s1")).expect("file"),
        b"c51-value-0123456789"
    );
    assert!(
        seen.lock().expect("log").is_empty(),
        "NO_PROXY=localhost: nothing may go through the proxy: {:?}",
        seen.lock().expect("log")
    );
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;

    // 2. NO_PROXY excludes only the login host: Key Vault traffic goes
    //    through the proxy (a CONNECT to the vault host) and still works,
    //    TLS end to end with the emulator.
    // SAFETY: as above.
    unsafe {
        std::env::set_var("NO_PROXY", "login.localhost");
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "c51-proxied-0123456789");
    let pod = env.wi_pod(CLIENT, "team-p", "uid-c51-proxied");
    let target = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("publish through the proxy");
    assert_eq!(
        std::fs::read(target.join("s1")).expect("file"),
        b"c51-proxied-0123456789"
    );
    let targets = seen.lock().expect("log").clone();
    assert!(
        targets
            .iter()
            .any(|t| t.starts_with(&format!("{VAULT}.vault.localhost:"))),
        "the vault was reached through the proxy: {targets:?}"
    );
    assert!(
        !targets.iter().any(|t| t.starts_with("login.localhost")),
        "the excluded login host bypassed the proxy: {targets:?}"
    );
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
    // SAFETY: as above.
    unsafe {
        std::env::remove_var("HTTPS_PROXY");
        std::env::remove_var("NO_PROXY");
    }
}
