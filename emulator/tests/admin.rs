//! The JSON admin API, seeding through EmulatorConfig, and the redaction of logs.

mod common;

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use common::*;
use keyvault_emulator::{Emulator, EmulatorConfig, Seed};
use reqwest::StatusCode;
use serde_json::json;

fn admin_url(em: &Emulator, path: &str) -> String {
    format!("https://localhost:{}/admin{path}", em.port())
}

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, serde_json::Value) {
    let (status, _, body) = body_json(req.send().await.expect("admin request")).await;
    (status, body)
}

#[tokio::test]
async fn admin_routes_seed_update_and_inspect() {
    let em = Emulator::start(EmulatorConfig::default())
        .await
        .expect("start");
    let http = client(&em);

    let (status, _) = send(http.post(admin_url(&em, "/clients")).json_body(&json!({
        "client_id": "c-admin", "secret": "admin-made-secret"
    })))
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(
        http.post(admin_url(&em, "/vaults"))
            .json_body(&json!({"name": "kv1", "allowed_clients": ["c-admin"]})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = send(
        http.put(admin_url(&em, "/vaults/kv1/secrets/a1"))
            .json_body(&json!({"value": "admin-value", "content_type": "text/plain"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let version = body["version"].as_str().expect("version").to_owned();
    assert_eq!(version.len(), 32);

    let token = secret_token(&em, &http, "c-admin", "admin-made-secret").await;
    let url = vault_url(&em, "kv1", "/secrets/a1/?api-version=7.5");
    let (status, _, body) = get(&http, &url, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], "admin-value");
    assert_eq!(body["contentType"], "text/plain");

    let (status, _) = send(
        http.patch(admin_url(&em, &format!("/vaults/kv1/secrets/a1/{version}")))
            .json_body(&json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = get(&http, &url, Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["innererror"]["code"], "SecretDisabled");

    let (status, body) = send(http.get(admin_url(&em, "/counters"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["per_object"]["kv1/secrets/a1"], 2);
    assert_eq!(body["per_client"]["c-admin"], 2);
    assert_eq!(body["token_requests"], 1);
    assert_eq!(body["total"], 2);

    let (status, _) = send(http.post(admin_url(&em, "/counters/reset"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = send(http.get(admin_url(&em, "/counters"))).await;
    assert_eq!(body["total"], 0);

    let (status, _) = send(http.post(admin_url(&em, "/faults")).json_body(&json!({
        "path_prefix": "/secrets/a1", "status": 503, "retry_after_secs": 1, "count": 1
    })))
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, headers, _) = get(&http, &url, Some(&token)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
}

#[tokio::test]
async fn admin_errors_are_json_and_never_quote_bodies() {
    let em = start().await;
    let http = client(&em);
    let (status, body) = send(
        http.put(admin_url(&em, "/vaults/kv1/secrets/x"))
            .json_body(&json!({"value": 12345, "extra": "quoted-never-Mm5"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!body.to_string().contains("12345"));
    assert!(!body.to_string().contains("quoted-never-Mm5"));

    let (status, body) = send(
        http.put(admin_url(&em, "/vaults/nope/secrets/x"))
            .json_body(&json!({"value": "v"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "VaultNotFound");

    let (status, body) = send(
        http.patch(admin_url(&em, "/vaults/kv1/secrets/s1/ffff"))
            .json_body(&json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "SecretNotFound");
}

#[tokio::test]
async fn assertions_are_not_readable_over_http() {
    let em = start().await;
    let http = client(&em);
    wi_token(&em, &http).await;
    let resp = http
        .get(admin_url(
            &em,
            &format!("/clients/{WI_CLIENT}/last-assertion"),
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let text = resp.text().await.expect("body");
    assert!(!text.contains(WI_ASSERTION));
}

#[tokio::test]
async fn admin_seed_route_applies_a_seed() {
    let em = Emulator::start(EmulatorConfig::default())
        .await
        .expect("start");
    let http = client(&em);
    let seed = serde_json::to_value(seed()).expect("seed JSON");
    let (status, _) = send(http.post(admin_url(&em, "/seed")).json_body(&seed)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        em.state()
            .secret_versions("kv1", "s1")
            .map(|v| v.len())
            .ok(),
        Some(2)
    );
}

#[test]
fn seed_json_example_from_the_readme_parses() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("```json")
        .expect("README has a JSON seed example")
        + 7;
    let end = start + readme[start..].find("```").expect("closing fence");
    let seed = Seed::from_json(&readme.as_bytes()[start..end]).expect("README seed parses");
    assert!(!seed.clients.is_empty());
    assert!(!seed.vaults.is_empty());
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs every kind of request under a trace-level subscriber (the current-thread runtime
/// keeps the server on this thread) and checks that no value or credential is logged.
#[tokio::test]
async fn trace_logs_hold_no_values_tokens_or_credentials() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let em = start().await;
    let http = client(&em);
    let sp = sp_token(&em, &http).await;
    let wi = wi_token(&em, &http).await;
    let _ = post_token(
        &em,
        &http,
        TENANT,
        &[
            ("client_id", SP_CLIENT),
            ("client_secret", "bad-secret-Ll0"),
            ("grant_type", "client_credentials"),
            ("scope", VAULT_SCOPE),
        ],
    )
    .await;
    for token in [&sp, &wi] {
        for path in [
            "/secrets/s1/",
            "/secrets/db-password",
            "/secrets/s1/versions",
        ] {
            get(
                &http,
                &vault_url(&em, "kv1", &format!("{path}?api-version=7.5")),
                Some(token),
            )
            .await;
        }
    }
    let _ = http
        .put(admin_url(&em, "/vaults/kv1/secrets/s2"))
        .json_body(&json!({"value": "admin-put-value-Nn6"}))
        .send()
        .await;
    em.shutdown().await;
    drop(_guard);

    let logs = String::from_utf8(capture.0.lock().expect("logs").clone()).expect("utf-8");
    assert!(logs.contains("request"), "nothing was captured: {logs}");
    for leak in [
        SP_SECRET,
        WI_ASSERTION,
        S1_OLD,
        S1_CURRENT,
        DB_VALUE,
        "bad-secret-Ll0",
        "admin-put-value-Nn6",
        sp.as_str(),
        wi.as_str(),
    ] {
        assert!(!logs.contains(leak), "{leak} appears in the logs");
    }
}

/// `RequestBuilder::json` needs reqwest's `json` feature; this sends the same thing.
trait JsonBody {
    fn json_body(self, value: &serde_json::Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, value: &serde_json::Value) -> Self {
        let mut bytes = Vec::new();
        let _ = write!(bytes, "{value}");
        self.header("content-type", "application/json").body(bytes)
    }
}
