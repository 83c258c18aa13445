//! `vaultlet demo` prints the contract's lines and exits 0, as root and, via
//! a user + mount namespace, as an unprivileged user.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

fn check_demo_output(out: &Output) {
    check_demo_output_fs(out, "tmpfs");
}

fn check_demo_output_fs(out: &Output, fs: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let first = format!("fs: {fs}");
    assert_eq!(lines.first().copied(), Some(first.as_str()), "{stdout}");
    assert!(lines.contains(&"0400 62 db-password"), "{stdout}");
    assert!(lines.contains(&"0644 62 api-key"), "{stdout}");
    assert!(lines.contains(&"0644 36 config/app.toml"), "{stdout}");
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.contains("unmounted and removed"),
        "last line must report the target gone: {stdout}"
    );
    // The one seeded value the demo does not randomise must not be printed.
    assert!(!stdout.contains("log_level") && !stderr.contains("log_level"));
    assert!(!stdout.contains("demo-sa-token") && !stderr.contains("demo-sa-token"));
}

#[test]
fn demo_prints_the_volume_and_exits_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_vaultlet"))
        .arg("demo")
        .output()
        .expect("run demo");
    check_demo_output(&out);
}

#[test]
fn demo_runs_unprivileged_in_a_user_namespace() {
    if !nix::unistd::geteuid().is_root() {
        // Already unprivileged: the plain demo test covers this path.
        println!(
            "skipped: not root, demo_prints_the_volume_and_exits_zero covers the namespace path"
        );
        return;
    }
    // The build dir may not be reachable by nobody (e.g. a clone under a
    // 0700 home): run a copy from a world-readable temp dir.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = dir.path().join("vaultlet");
    std::fs::copy(env!("CARGO_BIN_EXE_vaultlet"), &bin).expect("copy binary");
    let out = Command::new(&bin)
        .arg("demo")
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run demo as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("cannot create a user + mount namespace") {
        // Kernels with unprivileged user namespaces disabled: the demo must
        // say why, which it did.
        println!("skipped: user namespaces unavailable here: {stderr}");
        return;
    }
    assert!(stderr.contains("new user + mount namespace"), "{stderr}");
    check_demo_output(&out);
}

#[test]
fn demo_with_the_fuse_backend_serves_the_same_files() {
    if !vaultlet::mount::privileged_or_skip("demo_with_the_fuse_backend_serves_the_same_files") {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_vaultlet"))
        .args(["demo", "--backend", "fuse"])
        .output()
        .expect("run demo");
    check_demo_output_fs(&out, "fuse");
}

#[test]
fn without_cap_ipc_lock_secrets_still_work_and_the_mlock_failure_is_warned_once() {
    if !vaultlet::mount::privileged_or_skip(
        "without_cap_ipc_lock_secrets_still_work_and_the_mlock_failure_is_warned_once",
    ) {
        return;
    }
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("setpriv") || !have("prlimit") {
        println!("skipped: setpriv/prlimit (util-linux) not installed");
        return;
    }
    // A child with CAP_IPC_LOCK dropped from its bounding set and a zero
    // RLIMIT_MEMLOCK: every mlock fails.
    let out = Command::new("prlimit")
        .arg("--memlock=0:0")
        .args([
            "setpriv",
            "--bounding-set",
            "-ipc_lock",
            "--inh-caps",
            "-ipc_lock",
        ])
        .arg(env!("CARGO_BIN_EXE_vaultlet"))
        .arg("demo")
        .output()
        .expect("run demo without CAP_IPC_LOCK");
    check_demo_output(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("cannot mlock secret buffers").count(),
        1,
        "the mlock failure is warned about exactly once: {stderr}"
    );
}
