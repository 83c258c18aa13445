//! Integration harness for vaultlet: an in-process Key Vault emulator, the
//! daemon on a temp socket with a temp kubelet root, the kubelet simulator,
//! and a process-wide trace-level log capture used to prove that no secret
//! value, token or client secret is ever logged.
//!
//! Privileged tests call [`privileged_or_skip`]: they skip with a printed
//! reason when not root, and fail instead when
//! `VAULTLET_REQUIRE_PRIVILEGED=1`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use keyvault_emulator::{ClientSpec, Emulator, EmulatorConfig, SecretSpec};
use tempfile::TempDir;
use vaultlet::config::{Config, LogFormat};
use vaultlet::demo::kubelet::{Kubelet, Pod};
use vaultlet::params::Backend;

pub use vaultlet::mount::privileged_or_skip;

/// Tenant used by every fixture.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// Everything every test in this process logged, at trace level, with
/// dependencies (RUST_LOG is ignored: the capture is always `trace`).
#[derive(Clone, Default)]
#[allow(missing_debug_implementations)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// A copy of the captured text.
    pub fn text(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }
}

struct BufWriter(LogBuffer);

impl Write for BufWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs (once per test binary) the trace-level capture and returns it.
pub fn logs() -> LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = LogBuffer::default();
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_ansi(false)
            .with_writer(move || BufWriter(writer.clone()))
            .try_init();
        buf
    })
    .clone()
}

/// Panics if any of `needles` occurs in the captured logs. For a
/// [`canary`], its random tail alone is enough to count as a leak, so a
/// truncated or re-prefixed value is caught too.
pub fn assert_not_logged(needles: &[String]) {
    let text = logs().text();
    for (i, n) in needles.iter().enumerate() {
        let tail = canary_tail(n);
        assert!(
            !n.is_empty() && !text.contains(n.as_str()) && !tail.is_some_and(|t| text.contains(t)),
            "watched value #{i} (a secret value, token or client secret) reached the logs ({} bytes captured)",
            text.len()
        );
    }
}

/// The 32 random hex digits that end a [`canary`].
fn canary_tail(value: &str) -> Option<&str> {
    let tail = value.get(value.len().checked_sub(32)?..)?;
    (value.starts_with("canary-") && tail.bytes().all(|b| b.is_ascii_hexdigit())).then_some(tail)
}

/// A distinctive value that is easy to find in logs.
pub fn canary(tag: &str) -> String {
    use rand_like::next;
    format!("canary-{tag}-{:016x}{:016x}", next(), next())
}

mod rand_like {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    /// splitmix64 seeded from the clock: unique per call, no rand dependency.
    pub fn next() -> u64 {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7);
        let mut z = STATE
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(seed);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A running emulator + daemon + kubelet simulator in a temp dir.
#[allow(missing_debug_implementations)]
pub struct Env {
    /// The emulator.
    pub emulator: Emulator,
    /// Kubelet simulator connected to the daemon.
    pub kubelet: Kubelet,
    /// Kubelet root dir given to the daemon.
    pub root: PathBuf,
    /// State dir of the daemon.
    pub state_dir: PathBuf,
    /// Socket path.
    pub socket: PathBuf,
    /// Values that must never be logged (seeded values, tokens, secrets).
    pub watched: Vec<String>,
    /// The daemon's config.
    pub config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    daemon: Option<DaemonTask>,
    _dir: TempDir,
}

type DaemonTask = tokio::task::JoinHandle<Result<(), vaultlet::server::ServeError>>;

/// Runs `vaultlet serve` in a task and connects a simulator once the daemon
/// accepts connections (not merely once a file exists at the path: a stale
/// socket file may be there before the daemon replaces it).
async fn spawn_daemon(config: Config) -> (tokio::sync::oneshot::Sender<()>, DaemonTask, Kubelet) {
    let root = config.kubelet_root.clone();
    let socket = config.socket_path.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(vaultlet::server::serve(config, async {
        let _ = stop_rx.await;
    }));
    let mut attempt = 0;
    let kubelet = loop {
        match Kubelet::connect(&socket, &root).await {
            Ok(k) => break k,
            Err(e) => {
                attempt += 1;
                assert!(
                    attempt < 1000 && !daemon.is_finished(),
                    "daemon socket accepts no connections: {e}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    (stop_tx, daemon, kubelet)
}

/// The default daemon config for a test env rooted at `dir`.
pub fn test_config(dir: &Path, emulator: &Emulator) -> Config {
    Config {
        socket_path: dir.join("csi.sock"),
        node_id: "test-node".into(),
        driver_name: "csi.vaultlet.dev".into(),
        kubelet_root: dir.join("kubelet"),
        state_dir: dir.join("state"),
        backend: Backend::Tmpfs,
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
    }
}

impl Env {
    /// Starts everything with the default config.
    pub async fn start() -> Env {
        Self::start_with(|_| {}).await
    }

    /// Starts everything; `tweak` may change the daemon config.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Env {
        logs();
        let dir = tempfile::Builder::new()
            .prefix("vaultlet-test-")
            .tempdir()
            .expect("temp dir");
        let tls = dir.path().join("tls");
        std::fs::create_dir_all(&tls).expect("tls dir");
        let emulator = Emulator::start(EmulatorConfig {
            tls_dir: Some(tls),
            ..Default::default()
        })
        .await
        .expect("emulator starts");
        let mut config = test_config(dir.path(), &emulator);
        tweak(&mut config);
        let root = config.kubelet_root.clone();
        let socket = config.socket_path.clone();
        let state_dir = config.state_dir.clone();
        std::fs::create_dir_all(&root).expect("kubelet root");
        let (stop, daemon, kubelet) = spawn_daemon(config.clone()).await;
        Env {
            emulator,
            kubelet,
            root,
            state_dir,
            socket,
            watched: Vec::new(),
            config,
            stop: Some(stop),
            daemon: Some(daemon),
            _dir: dir,
        }
    }

    /// Stops the daemon as SIGTERM does (the emulator keeps running), then
    /// starts a new one with the same config and reconnects the simulator.
    ///
    /// # Panics
    /// When the old daemon ends with an error.
    pub async fn restart_daemon(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(d) = self.daemon.take() {
            d.await.expect("daemon task").expect("daemon stops cleanly");
        }
        let (stop, daemon, kubelet) = spawn_daemon(self.config.clone()).await;
        self.stop = Some(stop);
        self.daemon = Some(daemon);
        self.kubelet = kubelet;
    }

    /// Adds a vault readable by `clients`.
    pub fn vault(&self, name: &str, clients: &[&str]) {
        self.emulator
            .state()
            .add_vault(name, clients.iter().map(|c| c.to_string()).collect());
    }

    /// Seeds a secret version and watches its value. Returns the version id.
    pub fn secret(&mut self, vault: &str, name: &str, value: &str) -> String {
        self.secret_spec(vault, name, SecretSpec::new(value))
    }

    /// Seeds a secret version from a full spec and watches its value.
    pub fn secret_spec(&mut self, vault: &str, name: &str, spec: SecretSpec) -> String {
        if spec.value.len() >= 8 {
            self.watched.push(spec.value.clone());
        }
        self.emulator
            .state()
            .set_secret(vault, name, spec)
            .expect("seed secret")
    }

    /// Registers a workload-identity client and returns a pod whose kubelet
    /// token the emulator accepts for it.
    pub fn wi_pod(&mut self, client_id: &str, namespace: &str, uid: &str) -> Pod {
        let token = canary("sa-token");
        self.watched.push(token.clone());
        self.emulator.state().add_client(ClientSpec {
            client_id: client_id.into(),
            tenant_id: Some(TENANT.into()),
            secret: None,
            federated_tokens: vec![token.clone()],
        });
        Pod {
            name: format!("pod-{uid}"),
            namespace: namespace.into(),
            uid: uid.into(),
            service_account: "app".into(),
            token: Some(token),
        }
    }

    /// Registers a service-principal client and returns its nodePublishSecretRef map.
    pub fn sp_secrets(&mut self, client_id: &str) -> HashMap<String, String> {
        let secret = canary("client-secret");
        self.watched.push(secret.clone());
        self.emulator.state().add_client(ClientSpec {
            client_id: client_id.into(),
            tenant_id: Some(TENANT.into()),
            secret: Some(secret.clone()),
            federated_tokens: vec![],
        });
        [
            ("clientid".to_string(), client_id.to_string()),
            ("clientsecret".to_string(), secret),
        ]
        .into()
    }

    /// Stops the daemon and the emulator, then checks that nothing watched
    /// was logged.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(d) = self.daemon.take() {
            let _ = d.await;
        }
        let watched = std::mem::take(&mut self.watched);
        self.emulator.shutdown().await;
        assert_not_logged(&watched);
    }
}

/// Volume attributes for `vault` with workload identity `client_id`.
pub fn attrs(vault: &str, client_id: Option<&str>, objects: &str) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = [
        ("keyvaultName".to_string(), vault.to_string()),
        ("tenantId".to_string(), TENANT.to_string()),
        ("objects".to_string(), objects.to_string()),
    ]
    .into();
    if let Some(c) = client_id {
        m.insert("clientID".into(), c.into());
    }
    m
}

/// An `objects` attribute from block-scalar items, e.g.
/// `objects(&["objectName: s1\nobjectType: secret"])`.
pub fn objects(items: &[&str]) -> String {
    let mut out = String::from("array:\n");
    for item in items {
        out.push_str("  - |\n");
        for line in item.lines() {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Whether something is mounted exactly at `path` (from mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(p.as_str()))
}

/// Filesystem magic of `path` is tmpfs.
pub fn is_tmpfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        .unwrap_or(false)
}

impl Env {
    /// Simulates kubelet refreshing `pod`'s service-account token: a new
    /// token is issued and registered for `client_id` next to the old one
    /// (both stay valid, as a federated credential accepts any token of the
    /// service account). Returns the pod carrying the new token.
    pub fn refresh_token(&mut self, client_id: &str, pod: &Pod) -> Pod {
        let token = canary("sa-token-refreshed");
        self.watched.push(token.clone());
        let mut tokens: Vec<String> = pod.token.iter().cloned().collect();
        tokens.push(token.clone());
        self.emulator.state().add_client(ClientSpec {
            client_id: client_id.into(),
            tenant_id: Some(TENANT.into()),
            secret: None,
            federated_tokens: tokens,
        });
        Pod {
            token: Some(token),
            ..pod.clone()
        }
    }

    /// The directory that holds the kubelet root, the state dir and the
    /// socket: everything the daemon may legitimately write to.
    pub fn base_dir(&self) -> &Path {
        self._dir.path()
    }
}

/// One line of `/proc/self/mountinfo`, the fields tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Per-mount options (`rw,nosuid,nodev,noexec,relatime`).
    pub mount_options: Vec<String>,
    /// Filesystem type (`tmpfs`).
    pub fs_type: String,
    /// Superblock options (`rw,size=1024k,mode=755`).
    pub super_options: Vec<String>,
}

/// Every mount whose mount point is exactly `path`, in mount order.
pub fn mounts_at(path: &Path) -> Vec<MountInfo> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.display().to_string();
    info.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.get(4) != Some(&p.as_str()) {
                return None;
            }
            let sep = fields.iter().position(|f| *f == "-")?;
            let split = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
            Some(MountInfo {
                mount_options: split(fields.get(5)?),
                fs_type: (*fields.get(sep + 1)?).to_string(),
                super_options: split(fields.get(sep + 3).copied().unwrap_or("")),
            })
        })
        .collect()
}

/// Every path under `dir`, relative to it, found without following
/// symlinks; directories end with `/`, symlinks are shown as `name -> dest`.
/// A missing `dir` gives an empty set.
pub fn tree(dir: &Path) -> std::collections::BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(base)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let dest = std::fs::read_link(&path)
                    .map(|d| d.display().to_string())
                    .unwrap_or_default();
                out.insert(format!("{rel} -> {dest}"));
            } else if meta.is_dir() {
                out.insert(format!("{rel}/"));
                walk(base, &path, out);
            } else {
                out.insert(rel);
            }
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// Asserts that a failed publish left nothing at `target`: no mount, no
/// directory, no file.
pub fn assert_nothing_at(target: &Path) {
    assert!(
        !is_mounted(target),
        "a failed publish left a mount at {}",
        target.display()
    );
    assert!(
        std::fs::symlink_metadata(target).is_err(),
        "a failed publish left {} behind",
        target.display()
    );
}

/// Asserts that between two [`tree`] snapshots of `base` the only new
/// entries are directories on the way to `target`: what the simulated
/// kubelet creates before it calls NodePublishVolume. Anything else (a file,
/// a link, a directory beside the path) was created by the daemon outside
/// the volume.
pub fn assert_only_parents_created(
    base: &Path,
    before: &std::collections::BTreeSet<String>,
    target: &Path,
) {
    let after = tree(base);
    for entry in after.difference(before) {
        assert!(
            entry.ends_with('/') && target.starts_with(base.join(entry.as_str())),
            "created outside the target: {entry}"
        );
    }
}

/// A loopback address with a port that was free a moment ago, for
/// `--metrics-addr` in tests.
pub fn free_local_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr")
}

/// `GET path` over plain HTTP/1.1 (the metrics endpoint): status and body.
///
/// # Panics
/// When the endpoint does not answer with an HTTP response.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the metrics endpoint");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("an HTTP status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

impl Env {
    /// The `/metrics` text of the daemon (its config must set `metrics_addr`).
    ///
    /// # Panics
    /// When metrics are off or the endpoint does not answer 200.
    pub async fn metrics(&self) -> String {
        let addr = self.config.metrics_addr.expect("metrics_addr is set");
        let (status, body) = http_get(addr, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// The value of the sample `line_start` (metric name with its labels, e.g.
/// `vaultlet_node_publish_total{result="ok"}`) in a metrics text; 0 when
/// absent.
pub fn sample(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}
