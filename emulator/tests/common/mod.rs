//! Shared fixtures: a seeded emulator, a reqwest client that trusts its CA and resolves the
//! emulator's host names to it, and small request helpers.

#![allow(dead_code)]

use std::collections::BTreeMap;

use keyvault_emulator::{
    ASSERTION_TYPE, ClientSpec, Emulator, EmulatorConfig, SecretSeed, SecretSpec, Seed, VaultSeed,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const SP_CLIENT: &str = "11111111-1111-1111-1111-111111111111";
pub const SP_SECRET: &str = "sp-client-secret-Zq9";
pub const WI_CLIENT: &str = "22222222-2222-2222-2222-222222222222";
pub const WI_ASSERTION: &str = "eyJhbGciOiJSUzI1NiJ9.kubelet-sa-token.sig-Xy7";
pub const DENIED_CLIENT: &str = "33333333-3333-3333-3333-333333333333";
pub const DENIED_SECRET: &str = "denied-client-secret-Qw3";
pub const VAULT_SCOPE: &str = "https://vault.localhost/.default";

/// Values seeded into kv1; none may ever show up in logs.
pub const S1_OLD: &str = "s1-old-value-Pp1";
pub const S1_CURRENT: &str = "s1-current-value-Pp2";
pub const DB_VALUE: &str = "db-password-value-Pp3";

pub fn seed() -> Seed {
    Seed {
        clients: vec![
            ClientSpec {
                client_id: SP_CLIENT.into(),
                tenant_id: Some(TENANT.into()),
                secret: Some(SP_SECRET.into()),
                federated_tokens: vec![],
            },
            ClientSpec {
                client_id: WI_CLIENT.into(),
                tenant_id: Some(TENANT.into()),
                secret: None,
                federated_tokens: vec![WI_ASSERTION.into()],
            },
            ClientSpec {
                client_id: DENIED_CLIENT.into(),
                tenant_id: None,
                secret: Some(DENIED_SECRET.into()),
                federated_tokens: vec![],
            },
        ],
        vaults: vec![
            VaultSeed {
                name: "kv1".into(),
                allowed_clients: vec![SP_CLIENT.into(), WI_CLIENT.into()],
                secrets: vec![
                    SecretSeed {
                        name: "s1".into(),
                        versions: vec![SecretSpec::new(S1_OLD), SecretSpec::new(S1_CURRENT)],
                    },
                    SecretSeed {
                        name: "db-password".into(),
                        versions: vec![SecretSpec {
                            value: DB_VALUE.into(),
                            content_type: Some("text/plain".into()),
                            tags: BTreeMap::from([("env".to_owned(), "test".to_owned())]),
                            ..SecretSpec::default()
                        }],
                    },
                ],
                ..VaultSeed::default()
            },
            VaultSeed {
                name: "kv2".into(),
                allowed_clients: vec![SP_CLIENT.into()],
                ..VaultSeed::default()
            },
        ],
    }
}

pub async fn start() -> Emulator {
    Emulator::start(EmulatorConfig {
        seed: Some(seed()),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

fn builder(em: &Emulator) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(em.ca_pem().as_bytes()).expect("CA parses");
    let mut builder = reqwest::Client::builder().tls_certs_only([ca]).no_proxy();
    for host in [
        "kv1.vault.localhost",
        "kv2.vault.localhost",
        "nope.vault.localhost",
        "login.localhost",
        "attest.localhost",
        "localhost",
    ] {
        builder = builder.resolve(host, em.addr());
    }
    builder
}

/// A client trusting only the emulator's CA, resolving its names to it.
pub fn client(em: &Emulator) -> reqwest::Client {
    builder(em).build().expect("client builds")
}

/// Same, restricted to HTTP/1.1.
pub fn client_http1(em: &Emulator) -> reqwest::Client {
    builder(em).http1_only().build().expect("client builds")
}

pub fn vault_url(em: &Emulator, vault: &str, path: &str) -> String {
    format!("https://{vault}.vault.localhost:{}{path}", em.port())
}

pub fn token_url(em: &Emulator, tenant: &str) -> String {
    format!(
        "https://login.localhost:{}/{tenant}/oauth2/v2.0/token",
        em.port()
    )
}

pub async fn body_json(resp: reqwest::Response) -> (StatusCode, HeaderMap, Value) {
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    (status, headers, value)
}

/// POSTs a form to the token endpoint of `tenant`.
pub async fn post_token(
    em: &Emulator,
    http: &reqwest::Client,
    tenant: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let resp = http
        .post(token_url(em, tenant))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token request");
    let (status, _, value) = body_json(resp).await;
    (status, value)
}

/// A token for the service principal.
pub async fn sp_token(em: &Emulator, http: &reqwest::Client) -> String {
    secret_token(em, http, SP_CLIENT, SP_SECRET).await
}

pub async fn secret_token(
    em: &Emulator,
    http: &reqwest::Client,
    client_id: &str,
    secret: &str,
) -> String {
    let (status, body) = post_token(
        em,
        http,
        TENANT,
        &[
            ("client_id", client_id),
            ("client_secret", secret),
            ("grant_type", "client_credentials"),
            ("scope", VAULT_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// A token for the workload identity.
pub async fn wi_token(em: &Emulator, http: &reqwest::Client) -> String {
    let (status, body) = post_token(
        em,
        http,
        TENANT,
        &[
            ("client_assertion", WI_ASSERTION),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_id", WI_CLIENT),
            ("grant_type", "client_credentials"),
            ("scope", VAULT_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// GETs a URL with an optional bearer token.
pub async fn get(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = http.get(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    body_json(req.send().await.expect("GET")).await
}
