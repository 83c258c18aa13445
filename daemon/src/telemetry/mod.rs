//! Metrics (Prometheus text format via `prometheus-client`), the
//! `/metrics`, `/healthz`, `/readyz` endpoint on `--metrics-addr`, and
//! per-call-site log rate limiting ([`ratelimit`], [`warn_limited!`](crate::warn_limited)).
//!
//! Labels never carry a secret, a token, or text a pod controls beyond the
//! vault name (a validated DNS label): object names, paths and messages stay
//! out of metrics.
//!
//! | Metric | Type | Labels |
//! |---|---|---|
//! | `vaultlet_csi_calls_total` | counter | `method`, `code` (tonic `Code` debug name, e.g. `NotFound`) |
//! | `vaultlet_published_volumes` | gauge | – |
//! | `vaultlet_mlock_failures_total` | counter | – |
//! | `vaultlet_node_publish_total` | counter | `result`: `ok` or the gRPC code in snake case ([`code_name`]) |
//! | `vaultlet_node_unpublish_total` | counter | `result`, as above |
//! | `vaultlet_node_publish_duration_seconds` | histogram, 5 ms to 120 s | – |
//! | `vaultlet_keyvault_requests_total` | counter | `vault`, `operation`, `status` (see [`KeyVaultLabels`]) |
//! | `vaultlet_token_requests_total` | counter | `result`: `ok` or `error` |
//! | `vaultlet_rotation_total` | counter | `result`: `updated`, `unchanged`, `failed`, `skipped` |
//! | `vaultlet_cached_objects`, `vaultlet_cached_bytes` | gauge | – |

pub mod ratelimit;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of CSI call counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// `NodePublishVolume` or `NodeUnpublishVolume`.
    pub method: &'static str,
    /// gRPC code name, e.g. `Ok`, `NotFound`.
    pub code: String,
}

/// Labels of counters that only have a result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok`, a gRPC code name ([`code_name`]), `error`, or a rotation result.
    pub result: &'static str,
}

/// Labels of `vaultlet_keyvault_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyVaultLabels {
    /// The vault host's first DNS label, lowercase (`kv-test` for
    /// `kv-test.vault.azure.net`).
    pub vault: String,
    /// The operation derived from method and path shape, never from an
    /// object name: `get_secret`, `list_secret_versions`, `list_secrets`,
    /// `set_secret`, the same for `key` and `certificate`,
    /// `get_certificate_policy`, or `other`.
    pub operation: &'static str,
    /// The HTTP status code (`200`, `429`), or `error` when no response came
    /// (connection, TLS, DNS failure).
    pub status: String,
}

/// Outcome of one rotation check of one object, for
/// `vaultlet_rotation_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationResult {
    /// A newer version was fetched and written.
    Updated,
    /// The object is unchanged.
    Unchanged,
    /// The check or the write failed; the old files stay.
    Failed,
    /// Not checked (pinned version, or the volume is going away).
    Skipped,
}

impl RotationResult {
    /// The label value: `updated`, `unchanged`, `failed`, `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            RotationResult::Updated => "updated",
            RotationResult::Unchanged => "unchanged",
            RotationResult::Failed => "failed",
            RotationResult::Skipped => "skipped",
        }
    }
}

/// The `result` label of a CSI call: `ok` for [`tonic::Code::Ok`], otherwise
/// the gRPC code name in snake case (`invalid_argument`, `not_found`,
/// `unavailable`, `deadline_exceeded`, ...), as the gRPC spec spells them in
/// upper case.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// Upper bounds (seconds) of `vaultlet_node_publish_duration_seconds`:
/// 5 ms up to 120 s, kubelet's own bound on a publish.
pub const PUBLISH_DURATION_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0,
];

/// The daemon's metrics. One instance per process, shared as `Arc<Metrics>`
/// by the CSI service, the Key Vault pipeline and the endpoint.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `vaultlet_csi_calls_total{method,code}`.
    pub calls: Family<CallLabels, Counter>,
    /// `vaultlet_published_volumes`.
    pub published: Gauge,
    /// `vaultlet_mlock_failures_total`: secret buffers that could not be
    /// mlocked (mirrors `mount::sys::MLOCK_FAILURES`).
    pub mlock_failures: Counter,
    /// `vaultlet_node_publish_total{result}`.
    pub node_publish: Family<ResultLabels, Counter>,
    /// `vaultlet_node_unpublish_total{result}`.
    pub node_unpublish: Family<ResultLabels, Counter>,
    /// `vaultlet_node_publish_duration_seconds`.
    pub publish_duration: Histogram,
    /// `vaultlet_keyvault_requests_total{vault,operation,status}`.
    pub keyvault_requests: Family<KeyVaultLabels, Counter>,
    /// `vaultlet_token_requests_total{result}`.
    pub token_requests: Family<ResultLabels, Counter>,
    /// `vaultlet_rotation_total{result}`.
    pub rotation: Family<ResultLabels, Counter>,
    /// `vaultlet_cached_objects`: objects held by the node's cache.
    pub cached_objects: Gauge,
    /// `vaultlet_cached_bytes`: bytes of secret content held by the cache.
    pub cached_bytes: Gauge,
    ready: AtomicBool,
    vault_labels: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("vaultlet");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "csi_calls",
            "CSI node calls by method and result code",
            calls.clone(),
        );
        let published = Gauge::default();
        registry.register(
            "published_volumes",
            "Volumes currently published",
            published.clone(),
        );
        let mlock_failures = Counter::default();
        registry.register(
            "mlock_failures",
            "Secret buffers that could not be mlocked",
            mlock_failures.clone(),
        );
        let node_publish = Family::<ResultLabels, Counter>::default();
        registry.register(
            "node_publish",
            "NodePublishVolume calls by result (ok or the gRPC code in snake case)",
            node_publish.clone(),
        );
        let node_unpublish = Family::<ResultLabels, Counter>::default();
        registry.register(
            "node_unpublish",
            "NodeUnpublishVolume calls by result (ok or the gRPC code in snake case)",
            node_unpublish.clone(),
        );
        let publish_duration = Histogram::new(PUBLISH_DURATION_BUCKETS);
        registry.register_with_unit(
            "node_publish_duration",
            "Time to answer NodePublishVolume, whatever the result",
            prometheus_client::registry::Unit::Seconds,
            publish_duration.clone(),
        );
        let keyvault_requests = Family::<KeyVaultLabels, Counter>::default();
        registry.register(
            "keyvault_requests",
            "HTTP requests to Key Vault (each try) by vault, operation and status",
            keyvault_requests.clone(),
        );
        let token_requests = Family::<ResultLabels, Counter>::default();
        registry.register(
            "token_requests",
            "Requests to the Entra ID token endpoint (each try) by result",
            token_requests.clone(),
        );
        let rotation = Family::<ResultLabels, Counter>::default();
        registry.register(
            "rotation",
            "Rotation checks of one object by result",
            rotation.clone(),
        );
        let cached_objects = Gauge::default();
        registry.register(
            "cached_objects",
            "Objects held by the node cache",
            cached_objects.clone(),
        );
        let cached_bytes = Gauge::default();
        registry.register(
            "cached_bytes",
            "Bytes of object content held by the node cache",
            cached_bytes.clone(),
        );
        Self {
            registry,
            calls,
            published,
            mlock_failures,
            node_publish,
            node_unpublish,
            publish_duration,
            keyvault_requests,
            token_requests,
            rotation,
            cached_objects,
            cached_bytes,
            ready: AtomicBool::new(false),
            vault_labels: std::sync::Mutex::new(std::collections::HashSet::new()),
        }
    }
}

impl Metrics {
    /// Counts one CSI call.
    pub fn count_call(&self, method: &'static str, code: tonic::Code) {
        self.calls
            .get_or_create(&CallLabels {
                method,
                code: format!("{code:?}"),
            })
            .inc();
    }

    /// Counts one NodePublishVolume answered with `code` after `elapsed`
    /// (`vaultlet_node_publish_total` and the duration histogram).
    pub fn count_publish(&self, code: tonic::Code, elapsed: Duration) {
        self.node_publish
            .get_or_create(&ResultLabels {
                result: code_name(code),
            })
            .inc();
        self.publish_duration.observe(elapsed.as_secs_f64());
    }

    /// Counts one NodeUnpublishVolume answered with `code`.
    pub fn count_unpublish(&self, code: tonic::Code) {
        self.node_unpublish
            .get_or_create(&ResultLabels {
                result: code_name(code),
            })
            .inc();
    }

    /// Counts one HTTP try to Key Vault. `host` is the request's host (its
    /// first label becomes `vault`), `status` the HTTP status or `None` when
    /// no response came.
    pub fn count_keyvault_request(&self, host: &str, operation: &'static str, status: Option<u16>) {
        let vault = {
            // Vault names come from pods: past MAX_VAULT_LABELS distinct
            // ones, new names are counted as `other`, so no pod can grow the
            // series without bound.
            let label = vault_label(host);
            let mut seen = self.vault_labels.lock().unwrap_or_else(|p| p.into_inner());
            if seen.contains(&label) {
                label
            } else if seen.len() < MAX_VAULT_LABELS {
                seen.insert(label.clone());
                label
            } else {
                "other".to_string()
            }
        };
        self.keyvault_requests
            .get_or_create(&KeyVaultLabels {
                vault,
                operation,
                status: status.map_or_else(|| "error".to_string(), |s| s.to_string()),
            })
            .inc();
    }

    /// Counts one try against the Entra ID token endpoint; `ok` is a 2xx answer.
    pub fn count_token_request(&self, ok: bool) {
        self.token_requests
            .get_or_create(&ResultLabels {
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// Counts one rotation check (`vaultlet_rotation_total{result}`).
    pub fn count_rotation(&self, result: RotationResult) {
        self.rotation
            .get_or_create(&ResultLabels {
                result: result.as_str(),
            })
            .inc();
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Marks the daemon ready (`/readyz` → 200).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let seen = crate::mount::sys::MLOCK_FAILURES.load(Ordering::Relaxed);
        let counted = self.mlock_failures.get();
        if seen > counted {
            self.mlock_failures.inc_by(seen - counted);
        }
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Distinct `vault` label values of `vaultlet_keyvault_requests_total`
/// before further vaults are counted as `other`.
pub const MAX_VAULT_LABELS: usize = 200;

/// The `vault` label of a host: its first DNS label, lowercase, keeping only
/// `[a-z0-9-]` and at most 63 characters (a Key Vault name's alphabet), so a
/// label never carries anything but a vault name. `?` for an empty result.
pub fn vault_label(host: &str) -> String {
    let first = host.split(['.', ':']).next().unwrap_or("");
    let label: String = first
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(63)
        .collect();
    if label.is_empty() { "?".into() } else { label }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(m): State<Arc<Metrics>>) -> (StatusCode, &'static str) {
    if m.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Serves the endpoint until `shutdown` resolves.
///
/// # Errors
/// The bind error.
pub async fn serve(
    addr: SocketAddr,
    metrics_state: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(metrics_state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_by_code() {
        let m = Metrics::default();
        m.count_call("NodePublishVolume", tonic::Code::NotFound);
        let text = m.render();
        assert!(
            text.contains(
                r#"vaultlet_csi_calls_total{method="NodePublishVolume",code="NotFound"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn new_metrics_render_with_their_labels() {
        let m = Metrics::default();
        m.count_publish(tonic::Code::Ok, Duration::from_millis(30));
        m.count_publish(tonic::Code::Unavailable, Duration::from_secs(3));
        m.count_unpublish(tonic::Code::Ok);
        m.count_keyvault_request("KV-Test.vault.localhost", "get_secret", Some(429));
        m.count_keyvault_request("kv-test.vault.localhost", "get_secret", None);
        m.count_token_request(true);
        m.count_rotation(RotationResult::Unchanged);
        // The cache moves these gauges itself (store::CacheGauges shares them).
        m.cached_objects.set(3);
        m.cached_bytes.set(4096);
        let text = m.render();
        for line in [
            r#"vaultlet_node_publish_total{result="ok"} 1"#,
            r#"vaultlet_node_publish_total{result="unavailable"} 1"#,
            r#"vaultlet_node_unpublish_total{result="ok"} 1"#,
            "vaultlet_node_publish_duration_seconds_count 2",
            r#"vaultlet_node_publish_duration_seconds_bucket{le="0.05"} 1"#,
            r#"vaultlet_node_publish_duration_seconds_bucket{le="5.0"} 2"#,
            r#"vaultlet_node_publish_duration_seconds_bucket{le="120.0"} 2"#,
            r#"vaultlet_keyvault_requests_total{vault="kv-test",operation="get_secret",status="429"} 1"#,
            r#"vaultlet_keyvault_requests_total{vault="kv-test",operation="get_secret",status="error"} 1"#,
            r#"vaultlet_token_requests_total{result="ok"} 1"#,
            r#"vaultlet_rotation_total{result="unchanged"} 1"#,
            "vaultlet_cached_objects 3",
            "vaultlet_cached_bytes 4096",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
    }

    async fn get(addr: SocketAddr, path: &str) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("send");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read");
        let text = String::from_utf8_lossy(&raw).into_owned();
        text.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status")
    }

    #[tokio::test]
    async fn readyz_is_503_until_ready_and_healthz_is_always_200() {
        let m = Arc::new(Metrics::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let addr = serve("127.0.0.1:0".parse().expect("addr"), m.clone(), async {
            let _ = rx.await;
        })
        .await
        .expect("bind");
        assert_eq!(get(addr, "/healthz").await, 200);
        assert_eq!(get(addr, "/readyz").await, 503);
        m.set_ready(true);
        assert_eq!(get(addr, "/readyz").await, 200);
        assert_eq!(get(addr, "/metrics").await, 200);
        m.set_ready(false);
        assert_eq!(get(addr, "/readyz").await, 503);
        let _ = tx.send(());
    }

    #[test]
    fn code_names_are_snake_case() {
        assert_eq!(code_name(tonic::Code::Ok), "ok");
        assert_eq!(
            code_name(tonic::Code::DeadlineExceeded),
            "deadline_exceeded"
        );
        assert_eq!(code_name(tonic::Code::InvalidArgument), "invalid_argument");
    }

    #[test]
    fn vault_label_is_the_first_dns_label_only() {
        assert_eq!(vault_label("KV-Prod.vault.azure.net"), "kv-prod");
        assert_eq!(vault_label("kv1.vault.localhost:8443"), "kv1");
        assert_eq!(vault_label("we\"ird{x}.vault"), "weirdx");
        assert_eq!(vault_label(""), "?");
    }

    #[test]
    fn vault_labels_are_capped_and_then_other() {
        let m = Metrics::default();
        for i in 0..MAX_VAULT_LABELS + 5 {
            m.count_keyvault_request(&format!("kv{i}.vault.localhost"), "get_secret", Some(200));
        }
        m.count_keyvault_request("kv0.vault.localhost", "get_secret", Some(200));
        let text = m.render();
        assert!(text.contains("vault=\"kv0\""));
        assert!(!text.contains(&format!("vault=\"kv{}\"", MAX_VAULT_LABELS + 1)));
        assert!(text.contains("vault=\"other\""));
    }
}
