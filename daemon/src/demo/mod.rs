//! `vaultlet demo`: the main job end to end on one machine, with no traffic
//! beyond loopback.
//!
//! 1. Starts the Key Vault emulator on 127.0.0.1 and seeds three secrets.
//! 2. Starts the daemon on a temp socket with a temp kubelet root.
//! 3. Plays kubelet for one pod with workload identity: one nested alias,
//!    one `filePermission: "0400"`.
//! 4. Prints `fs: tmpfs` (or `fs: fuse` with `--backend fuse`), then `MODE SIZE PATH` for every visible file
//!    (following links), then unpublishes and says the target is gone.
//!
//! Secret values are never printed. Not root? The process first moves into
//! a new user + mount namespace (where it is root) so that tmpfs can be
//! mounted without privileges.

pub mod kubelet;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use keyvault_emulator::{ClientSpec, Emulator, EmulatorConfig, SecretSpec};
use rand::Rng;

use crate::config::{Config, LogFormat};
use crate::params::Backend;
use kubelet::{Kubelet, Pod};

const VAULT: &str = "demo-kv";
const CLIENT_ID: &str = "00000000-0000-0000-0000-00000000d3m0";
const TENANT: &str = "11111111-2222-3333-4444-555555555555";

/// Becomes root in a new user + mount namespace when not root already.
/// Must run while the process is single-threaded (before the runtime).
fn ensure_mount_privilege() -> anyhow::Result<()> {
    use nix::sched::{CloneFlags, unshare};
    use nix::unistd::{getgid, getuid};
    if getuid().is_root() {
        return Ok(());
    }
    let (uid, gid) = (getuid(), getgid());
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).context(
        "not root, and cannot create a user + mount namespace (unprivileged user namespaces disabled?); run the demo as root",
    )?;
    // /proc/self/* of a non-dumpable process belongs to root: writing the
    // maps needs the process dumpable for a moment (it holds no secret yet).
    nix::sys::prctl::set_dumpable(true).context("prctl(PR_SET_DUMPABLE)")?;
    std::fs::write("/proc/self/setgroups", "deny").context("writing /proc/self/setgroups")?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1")).context("writing uid_map")?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1")).context("writing gid_map")?;
    nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE)")?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("making mounts private in the new namespace")?;
    eprintln!("vaultlet demo: not root; running in a new user + mount namespace");
    Ok(())
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    format!("demo-sa-token-{}", hex::encode(bytes))
}

/// Runs the demo. Prints the result on stdout; logs go to stderr.
///
/// # Errors
/// Any failure, described.
pub fn run(backend: Backend) -> anyhow::Result<()> {
    ensure_mount_privilege()?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(run_async(backend))
}

async fn run_async(backend: Backend) -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("vaultlet-demo-")
        .tempdir()
        .context("creating a temp dir")?;
    let tls_dir = work.path().join("tls");
    std::fs::create_dir_all(&tls_dir)?;

    let token = random_token();
    let emulator = Emulator::start(EmulatorConfig {
        tls_dir: Some(tls_dir.clone()),
        ..Default::default()
    })
    .await
    .context("starting the Key Vault emulator")?;
    let state = emulator.state();
    state.add_client(ClientSpec {
        client_id: CLIENT_ID.into(),
        tenant_id: Some(TENANT.into()),
        secret: None,
        federated_tokens: vec![token.clone()],
    });
    state.add_vault(VAULT, vec![CLIENT_ID.into()]);
    for (name, value) in [
        ("db-password", random_token()),
        ("api-key", random_token()),
        (
            "app-config",
            "log_level = \"info\"\nfeature_x = true\n".to_string(),
        ),
    ] {
        state
            .set_secret(VAULT, name, SecretSpec::new(value))
            .with_context(|| format!("seeding secret {name}"))?;
    }

    let root = work.path().join("kubelet");
    let socket = work.path().join("csi.sock");
    let config = Config {
        socket_path: socket.clone(),
        node_id: "demo-node".into(),
        driver_name: "csi.vaultlet.dev".into(),
        kubelet_root: root.clone(),
        state_dir: work.path().join("state"),
        backend,
        tmpfs_size: 1 << 20,
        keyvault_dns_suffix: Some(emulator.dns_suffix()),
        authority_host: Some(emulator.authority_host()),
        extra_ca_file: emulator.ca_path().map(Path::to_path_buf),
        metrics_addr: None,
        http_idle_timeout: Duration::from_secs(30),
        log_format: LogFormat::Text,
        publish_timeout: Duration::from_secs(60),
        rotation_poll_interval: Duration::from_secs(120),
        keyvault_max_concurrency: 8,
        attestation: Default::default(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(crate::server::serve(config, async {
        let _ = stop_rx.await;
    }));
    wait_for_socket(&socket).await?;
    let mut kubelet = Kubelet::connect(&socket, &root)
        .await
        .context("connecting to the daemon socket")?;

    let pod = Pod {
        name: "demo-app".into(),
        namespace: "demo".into(),
        uid: "5f0c2d1e-7a9b-4c3d-8e2f-0123456789ab".into(),
        service_account: "demo-app".into(),
        token: Some(token),
    };
    let objects = r#"array:
  - |
    objectName: db-password
    objectType: secret
    filePermission: "0400"
  - |
    objectName: api-key
    objectType: secret
  - |
    objectName: app-config
    objectType: secret
    objectAlias: config/app.toml
"#;
    let attributes: HashMap<String, String> = [
        ("keyvaultName", VAULT),
        ("tenantId", TENANT),
        ("clientID", CLIENT_ID),
        ("objects", objects),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    let started = std::time::Instant::now();
    let target = kubelet
        .publish(&pod, "secrets-store", &attributes, &HashMap::new())
        .await
        .map_err(|s| {
            anyhow::anyhow!("NodePublishVolume failed: {:?}: {}", s.code(), s.message())
        })?;
    let publish_ms = started.elapsed().as_secs_f64() * 1000.0;

    let fs = fs_type(&target)?;
    println!("fs: {fs}");
    let mut files = Vec::new();
    list_visible(&target, Path::new(""), &mut files)?;
    files.sort();
    for (path, mode, size) in &files {
        println!("{mode:04o} {size} {path}");
    }
    eprintln!("vaultlet demo: NodePublishVolume took {publish_ms:.1} ms for 3 secrets");

    kubelet
        .unpublish(&pod.uid, "secrets-store")
        .await
        .map_err(|s| {
            anyhow::anyhow!(
                "NodeUnpublishVolume failed: {:?}: {}",
                s.code(),
                s.message()
            )
        })?;
    if target.exists() || is_mount_point(&target)? {
        bail!(
            "target {} still exists after NodeUnpublishVolume",
            target.display()
        );
    }
    println!(
        "unpublished: target {} is unmounted and removed",
        target.display()
    );

    let _ = stop_tx.send(());
    daemon
        .await
        .context("daemon task")?
        .context("daemon failed")?;
    emulator.shutdown().await;
    let expected = match backend {
        Backend::Tmpfs => "tmpfs",
        Backend::Fuse => "fuse",
    };
    if fs != expected {
        bail!("expected {expected} at the target, found {fs}");
    }
    Ok(())
}

async fn wait_for_socket(socket: &Path) -> anyhow::Result<()> {
    for _ in 0..200 {
        if socket.exists() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("the daemon did not create its socket {}", socket.display())
}

fn fs_type(path: &Path) -> anyhow::Result<&'static str> {
    let st =
        nix::sys::statfs::statfs(path).with_context(|| format!("statfs {}", path.display()))?;
    let t = st.filesystem_type();
    Ok(if t == nix::sys::statfs::TMPFS_MAGIC {
        "tmpfs"
    } else if t == nix::sys::statfs::FUSE_SUPER_MAGIC {
        "fuse"
    } else {
        "other"
    })
}

fn is_mount_point(path: &Path) -> anyhow::Result<bool> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    let p = path.display().to_string();
    Ok(info
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.as_str())))
}

/// Visible files: entries not starting with `..`, links followed.
fn list_visible(root: &Path, rel: &Path, out: &mut Vec<(String, u32, u64)>) -> anyhow::Result<()> {
    let dir: PathBuf = root.join(rel);
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name_s = name.to_string_lossy();
        if name_s.starts_with("..") {
            continue;
        }
        let rel_child = rel.join(&name);
        let meta = std::fs::metadata(root.join(&rel_child))?;
        if meta.is_dir() {
            list_visible(root, &rel_child, out)?;
        } else {
            out.push((
                rel_child.display().to_string(),
                meta.permissions().mode() & 0o7777,
                meta.len(),
            ));
        }
    }
    Ok(())
}
