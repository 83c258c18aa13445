//! Metrics (Prometheus text format via `prometheus-client`) and the
//! `/metrics`, `/healthz`, `/readyz` endpoint on `--metrics-addr`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of CSI call counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// `NodePublishVolume` or `NodeUnpublishVolume`.
    pub method: &'static str,
    /// gRPC code name, e.g. `Ok`, `NotFound`.
    pub code: String,
}

/// The daemon's metrics.
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
    ready: AtomicBool,
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
        Self {
            registry,
            calls,
            published,
            mlock_failures,
            ready: AtomicBool::new(false),
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
    if m.ready.load(Ordering::SeqCst) {
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
}
