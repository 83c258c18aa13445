//! What holds while one HTTP try is in flight: the per-vault concurrency cap
//! (`--keyvault-max-concurrency`) and the request metrics
//! (`vaultlet_keyvault_requests_total`, `vaultlet_token_requests_total`).
//!
//! It is a per-try policy placed after the SDK's bearer-token policy, so a
//! permit is held only while the request is on the wire (the transport
//! buffers the body before returning), never while a retry sleeps nor while
//! a token is fetched. Requests to the Entra token endpoint (path ending in
//! `/oauth2/v2.0/token`) are counted but not capped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Method, Request};
use tokio::sync::Semaphore;

use crate::telemetry::Metrics;

/// Path suffix of the Entra ID token endpoint.
pub const TOKEN_PATH_SUFFIX: &str = "/oauth2/v2.0/token";

/// Hosts remembered before idle ones are forgotten.
const PRUNE_ABOVE: usize = 256;

/// The per-try cap and counter. One per daemon, shared by every client.
#[derive(Debug)]
pub struct InFlight {
    metrics: Arc<Metrics>,
    per_vault: usize,
    vaults: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl InFlight {
    /// At most `per_vault` concurrent requests to one vault host (`host[:port]`,
    /// lowercase); `per_vault` is at least 1.
    pub fn new(metrics: Arc<Metrics>, per_vault: usize) -> Self {
        Self {
            metrics,
            per_vault: per_vault.max(1),
            vaults: Mutex::new(HashMap::new()),
        }
    }

    fn semaphore(&self, host: &str) -> Arc<Semaphore> {
        let mut vaults = self.vaults.lock().unwrap_or_else(|p| p.into_inner());
        // Vault names come from pods: forget idle hosts rather than grow
        // without bound (an entry only referenced by the map is idle).
        if vaults.len() >= PRUNE_ABOVE && !vaults.contains_key(host) {
            vaults.retain(|_, s| Arc::strong_count(s) > 1);
        }
        vaults
            .entry(host.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_vault)))
            .clone()
    }

    /// Permits of `host` not in use (for tests).
    pub fn available(&self, host: &str) -> usize {
        self.semaphore(host).available_permits()
    }
}

/// The `operation` label of a Key Vault request, from its method and path
/// shape alone (never an object name): `get_secret`, `list_secret_versions`,
/// `list_secrets`, `set_secret`, the same for `key` and `certificate`,
/// `get_certificate_policy`, else `other`.
pub fn operation(method: Method, path: &str) -> &'static str {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let kind = match segments.first().map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("secrets") => 0,
        Some("keys") => 1,
        Some("certificates") => 2,
        _ => return "other",
    };
    const GET: [&str; 3] = ["get_secret", "get_key", "get_certificate"];
    const LIST: [&str; 3] = ["list_secrets", "list_keys", "list_certificates"];
    const VERSIONS: [&str; 3] = [
        "list_secret_versions",
        "list_key_versions",
        "list_certificate_versions",
    ];
    const SET: [&str; 3] = ["set_secret", "set_key", "set_certificate"];
    let third = segments.get(2).map(|s| s.to_ascii_lowercase());
    match (method, segments.len(), third.as_deref()) {
        (Method::Get, 1, _) => LIST[kind],
        (Method::Put, 2, _) => SET[kind],
        (Method::Get, 3, Some("versions")) => VERSIONS[kind],
        (Method::Get, 3, Some("policy")) if kind == 2 => "get_certificate_policy",
        (Method::Get, 2 | 3, _) => GET[kind],
        _ => "other",
    }
}

#[async_trait::async_trait]
impl Policy for InFlight {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let url = request.url();
        if url.path().ends_with(TOKEN_PATH_SUFFIX) {
            let result = next[0].send(ctx, request, &next[1..]).await;
            self.metrics
                .count_token_request(matches!(&result, Ok(r) if r.status().is_success()));
            return result;
        }
        let host = url.host_str().unwrap_or("?").to_ascii_lowercase();
        let key = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let op = operation(request.method(), url.path());
        let semaphore = self.semaphore(&key);
        // The semaphore is never closed, so acquire only fails if it were.
        let _permit = semaphore.acquire_owned().await.ok();
        let result = next[0].send(ctx, request, &next[1..]).await;
        let status = result.as_ref().ok().map(|r| u16::from(r.status()));
        self.metrics.count_keyvault_request(&host, op, status);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::headers::Headers;
    use azure_core::http::{AsyncRawResponse, StatusCode, Url};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn operations_come_from_the_path_shape() {
        let cases = [
            (Method::Get, "/secrets/db-password", "get_secret"),
            (Method::Get, "/secrets/db-password/", "get_secret"),
            (Method::Get, "/secrets/db/0123abcd", "get_secret"),
            (Method::Get, "/secrets/db/versions", "list_secret_versions"),
            (Method::Get, "/secrets", "list_secrets"),
            (Method::Put, "/secrets/db", "set_secret"),
            (Method::Get, "/keys/k1", "get_key"),
            (Method::Get, "/keys/k1/versions", "list_key_versions"),
            (Method::Get, "/certificates/web/abc", "get_certificate"),
            (
                Method::Get,
                "/certificates/web/policy",
                "get_certificate_policy",
            ),
            (
                Method::Get,
                "/certificates/web/versions",
                "list_certificate_versions",
            ),
            (Method::Get, "/deletedsecrets/x", "other"),
            (Method::Delete, "/secrets/x", "other"),
            (Method::Get, "/", "other"),
            (Method::Get, "/secrets/a/b/c", "other"),
        ];
        for (method, path, want) in cases {
            assert_eq!(operation(method, path), want, "{path}");
        }
    }

    /// A transport stand-in that records the highest concurrency it saw.
    #[derive(Debug, Default)]
    struct Slow {
        now: AtomicUsize,
        max: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Policy for Slow {
        async fn send(&self, _: &Context, _: &mut Request, _: &[Arc<dyn Policy>]) -> PolicyResult {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(AsyncRawResponse::from_bytes(
                StatusCode::Ok,
                Headers::new(),
                Vec::<u8>::new(),
            ))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn caps_concurrency_per_vault_and_counts_requests() {
        let metrics = Arc::new(Metrics::default());
        let inflight = Arc::new(InFlight::new(metrics.clone(), 2));
        let slow = Arc::new(Slow::default());
        let mut tasks = Vec::new();
        for i in 0..8 {
            let inflight = inflight.clone();
            let slow: Arc<dyn Policy> = slow.clone();
            tasks.push(tokio::spawn(async move {
                let mut req = Request::new(
                    Url::parse(&format!(
                        "https://KV-One.vault.localhost:8443/secrets/object-name-{i}"
                    ))
                    .expect("url"),
                    Method::Get,
                );
                inflight
                    .send(&Context::new(), &mut req, &[slow])
                    .await
                    .expect("ok");
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(slow.max.load(Ordering::SeqCst), 2);
        assert_eq!(inflight.available("kv-one.vault.localhost:8443"), 2);
        let text = metrics.render();
        assert!(
            text.contains(
                r#"vaultlet_keyvault_requests_total{vault="kv-one",operation="get_secret",status="200"} 8"#
            ),
            "{text}"
        );
        assert!(
            !text.contains("object-name"),
            "object names stay out: {text}"
        );
    }
}
