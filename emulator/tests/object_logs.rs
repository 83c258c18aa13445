//! Certificate imports and reads under a trace-level subscriber log no key material, PFX
//! content or PFX password. Alone in its binary so that no concurrent test can cache a
//! callsite's interest before the capturing subscriber is installed.

mod common;

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PFX_PASSWORD: &str = "pfx-log-password-Hh7";

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

async fn post(http: &reqwest::Client, url: String, body: &Value) -> StatusCode {
    http.post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("admin request")
        .status()
}

#[tokio::test]
async fn trace_logs_hold_no_key_material_pfx_or_password() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["logged.test".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let mut store = KeyStore::new();
    store.add_entry(
        "leaf",
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
            b"id".as_slice(),
            PrivateKey::from_der(key.serialized_der()).expect("PKCS#8"),
            [Certificate::from_der(cert.der()).expect("cert")],
        )),
    );
    let pfx_b64 = STANDARD.encode(store.writer(PFX_PASSWORD).write().expect("PFX"));
    let key_pem = key.serialize_pem();

    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    let admin = format!(
        "https://localhost:{}/admin/vaults/kv1/certificates/logged/import",
        em.port()
    );
    let status = post(
        &http,
        admin.clone(),
        &json!({"pfx": pfx_b64, "password": PFX_PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let status = post(
        &http,
        admin.clone(),
        &json!({"pem": format!("{key_pem}{}", cert.pem())}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let status = post(
        &http,
        admin,
        &json!({"pfx": pfx_b64, "password": "wrong-password-Gg6"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let mut stored = Vec::new();
    for version in em
        .state()
        .secret_versions("kv1", "logged")
        .expect("versions")
    {
        let url = vault_url(
            &em,
            "kv1",
            &format!("/secrets/logged/{version}?api-version=7.5"),
        );
        let (status, _, body) = get(&http, &url, Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
        stored.push(body["value"].as_str().expect("value").to_owned());
    }
    for path in ["/certificates/logged", "/keys/logged"] {
        let url = vault_url(&em, "kv1", &format!("{path}?api-version=7.5"));
        assert_eq!(get(&http, &url, Some(&token)).await.0, StatusCode::OK);
    }
    em.shutdown().await;
    drop(_guard);

    let logs = String::from_utf8(capture.0.lock().expect("logs").clone()).expect("utf-8");
    assert!(
        logs.contains("certificate version imported") && logs.contains("certificate read"),
        "nothing was captured: {logs}"
    );
    let key_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for leak in [
        PFX_PASSWORD,
        "wrong-password-Gg6",
        &key_body[..40],
        &pfx_b64[..60],
        &stored[0][..60],
        &stored[1][40..100],
    ] {
        assert!(!logs.contains(leak), "{leak} appears in the logs");
    }
}
