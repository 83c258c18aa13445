//! The `vaultlet serve` binary as a DaemonSet runs it: flags from the
//! environment, socket mode 0600, SIGTERM ends it cleanly and leaves
//! published tmpfs volumes mounted, and a restarted daemon unpublishes them.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyvault_emulator::{ClientSpec, Emulator, EmulatorConfig, SecretSpec};
use vaultlet::demo::kubelet::{Kubelet, Pod};
use vaultlet::mount::privileged_or_skip;

fn spawn_daemon(dir: &Path, emulator: &Emulator) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vaultlet"))
        .arg("serve")
        .arg("--metrics-addr=")
        .arg(format!("--kubelet-root={}", dir.join("kubelet").display()))
        .env("VAULTLET_NODE_ID", "node-from-env")
        .env(
            "VAULTLET_ENDPOINT",
            format!("unix://{}", dir.join("csi.sock").display()),
        )
        .env("VAULTLET_STATE_DIR", dir.join("state"))
        .env("VAULTLET_KEYVAULT_DNS_SUFFIX", emulator.dns_suffix())
        .env("VAULTLET_AUTHORITY_HOST", emulator.authority_host())
        .env("VAULTLET_EXTRA_CA_FILE", dir.join("tls/ca.pem"))
        .env("VAULTLET_HTTP_IDLE_TIMEOUT", "2s")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn vaultlet serve")
}

/// Waits until the daemon accepts connections on its socket: the file
/// appears at bind(2), a moment before listen(2), so its existence alone is
/// not enough (a connect in between is refused).
async fn wait_socket(path: &Path) {
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "daemon never served its socket"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sigterm_and_wait(child: &mut Child) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "daemon did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(p.as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_volumes_mounted_and_a_restart_unpublishes_them() {
    if !privileged_or_skip("sigterm_leaves_volumes_mounted_and_a_restart_unpublishes_them") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("tls")).expect("tls dir");
    let emulator = Emulator::start(EmulatorConfig {
        tls_dir: Some(dir.path().join("tls")),
        ..Default::default()
    })
    .await
    .expect("emulator");
    let token = "sa-token-serve-binary-canary".to_string();
    emulator.state().add_client(ClientSpec {
        client_id: "c1".into(),
        tenant_id: None,
        secret: None,
        federated_tokens: vec![token.clone()],
    });
    emulator.state().add_vault("kv-bin", vec!["c1".into()]);
    emulator
        .state()
        .set_secret("kv-bin", "s1", SecretSpec::new("value-one"))
        .expect("seed");

    let socket = dir.path().join("csi.sock");
    let root = dir.path().join("kubelet");
    let mut child = spawn_daemon(dir.path(), &emulator);
    wait_socket(&socket).await;
    let meta = std::fs::metadata(&socket).expect("socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // No core dumps: RLIMIT_CORE is 0 (PR_SET_DUMPABLE=0 is set alongside).
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).expect("limits");
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("core limit line");
    assert_eq!(
        core.split_whitespace().nth(4),
        Some("0"),
        "soft core limit must be 0: {core}"
    );

    let mut kubelet = Kubelet::connect(&socket, &root).await.expect("connect");
    let info = kubelet
        .node
        .node_get_info(csi_proto::v1::NodeGetInfoRequest {})
        .await
        .expect("NodeGetInfo")
        .into_inner();
    assert_eq!(info.node_id, "node-from-env");

    let pod = Pod {
        name: "p".into(),
        namespace: "ns".into(),
        uid: "uid-bin-1".into(),
        service_account: "sa".into(),
        token: Some(token),
    };
    let attrs: HashMap<String, String> = [
        ("keyvaultName", "kv-bin"),
        ("tenantId", "t1"),
        ("clientID", "c1"),
        (
            "objects",
            "array:\n  - |\n    objectName: s1\n    objectType: secret\n",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let target = kubelet
        .publish(&pod, "vol", &attrs, &HashMap::new())
        .await
        .expect("publish");
    assert_eq!(
        std::fs::read(target.join("s1")).expect("file"),
        b"value-one"
    );

    let status = sigterm_and_wait(&mut child);
    assert!(status.success(), "exit status {status}");
    assert!(
        mounted(&target),
        "SIGTERM must leave published volumes mounted"
    );
    assert!(!socket.exists(), "the socket is removed on a clean stop");
    assert_eq!(
        std::fs::read(target.join("s1")).expect("file"),
        b"value-one"
    );

    // A restarted daemon finds the volume in its index and unpublishes it.
    let mut child = spawn_daemon(dir.path(), &emulator);
    wait_socket(&socket).await;
    let mut kubelet = Kubelet::connect(&socket, &root).await.expect("connect");
    kubelet.unpublish(&pod.uid, "vol").await.expect("unpublish");
    assert!(!mounted(&target));
    assert!(!target.exists());
    let status = sigterm_and_wait(&mut child);
    assert!(status.success());
    emulator.shutdown().await;
}

#[test]
fn a_non_socket_at_the_endpoint_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("csi.sock");
    std::fs::write(&path, b"not a socket").expect("file");
    let out = Command::new(env!("CARGO_BIN_EXE_vaultlet"))
        .args(["serve", "--node-id=n", "--metrics-addr="])
        .arg(format!("--endpoint={}", path.display()))
        .arg(format!(
            "--state-dir={}",
            dir.path().join("state").display()
        ))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("non-socket"), "{stderr}");
    assert_eq!(std::fs::read(&path).expect("file"), b"not a socket");
}

#[test]
fn invalid_flags_name_the_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_vaultlet"))
        .args(["serve", "--node-id=n", "--tmpfs-size=lots"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tmpfs-size"), "{stderr}");
}

#[test]
fn a_live_socket_is_not_taken_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("csi.sock");
    let spawn = |state: &str| {
        Command::new(env!("CARGO_BIN_EXE_vaultlet"))
            .args(["serve", "--node-id=n", "--metrics-addr="])
            .arg(format!("--endpoint={}", socket.display()))
            .arg(format!("--state-dir={}", dir.path().join(state).display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let mut first = spawn("state-a");
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "first daemon never served"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = spawn("state-b").wait_with_output().expect("second daemon");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another process is serving"), "{stderr}");
    assert!(
        std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        "the first daemon's socket must survive"
    );
    let status = sigterm_and_wait(&mut first);
    assert!(status.success());
    assert!(!socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_fuse_volumes_are_unpublished_and_stale_namespace_mounts_removed() {
    if !privileged_or_skip(
        "after_a_crash_fuse_volumes_are_unpublished_and_stale_namespace_mounts_removed",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("tls")).expect("tls dir");
    let emulator = Emulator::start(EmulatorConfig {
        tls_dir: Some(dir.path().join("tls")),
        ..Default::default()
    })
    .await
    .expect("emulator");
    let token = "sa-token-fuse-crash-canary".to_string();
    emulator.state().add_client(ClientSpec {
        client_id: "c1".into(),
        tenant_id: None,
        secret: None,
        federated_tokens: vec![token.clone()],
    });
    emulator.state().add_vault("kv-bin", vec!["c1".into()]);
    emulator
        .state()
        .set_secret("kv-bin", "s1", SecretSpec::new("value-fuse"))
        .expect("seed");
    let socket = dir.path().join("csi.sock");
    let root = dir.path().join("kubelet");
    let mut child = spawn_daemon(dir.path(), &emulator);
    wait_socket(&socket).await;
    let mut kubelet = Kubelet::connect(&socket, &root).await.expect("connect");
    let pod = Pod {
        name: "p".into(),
        namespace: "ns-crash".into(),
        uid: "uid-fuse-crash".into(),
        service_account: "sa".into(),
        token: Some(token),
    };
    let attrs: HashMap<String, String> = [
        ("keyvaultName", "kv-bin"),
        ("tenantId", "t1"),
        ("clientID", "c1"),
        ("vaultlet.dev/backend", "fuse"),
        (
            "objects",
            "array:\n  - |\n    objectName: s1\n    objectType: secret\n",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let target = kubelet
        .publish(&pod, "vol", &attrs, &HashMap::new())
        .await
        .expect("publish");
    assert_eq!(
        std::fs::read(target.join("s1")).expect("read"),
        b"value-fuse"
    );
    let ns_mount = dir.path().join("state/fuse/ns-crash");
    assert!(mounted(&ns_mount));

    // Crash: the FUSE server goes away with the process.
    child.kill().expect("kill");
    let _ = child.wait();
    let mut child = spawn_daemon(dir.path(), &emulator);
    // The dead daemon's socket file is still there: wait until the new one
    // answers on it.
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "restarted daemon never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !mounted(&ns_mount),
        "a restarted daemon detaches stale namespace mounts"
    );
    let mut kubelet = Kubelet::connect(&socket, &root).await.expect("connect");
    kubelet
        .unpublish(&pod.uid, "vol")
        .await
        .expect("unpublish of a FUSE target whose server is gone");
    assert!(!mounted(&target));
    assert!(!target.exists());
    let status = sigterm_and_wait(&mut child);
    assert!(status.success());
    emulator.shutdown().await;
}
