//! The Key Vault data plane: TLS, challenge, access, secret reads, listings, faults, counters.

mod common;

use std::time::{Duration, Instant};

use common::*;
use keyvault_emulator::{Fault, SecretSpec};
use reqwest::StatusCode;
use reqwest::header::{RETRY_AFTER, WWW_AUTHENTICATE};

const API: &str = "api-version=2025-07-01";

#[tokio::test]
async fn tls_handshake_succeeds_with_the_generated_ca_over_h2_and_http1() {
    let em = start().await;
    let url = vault_url(&em, "kv1", &format!("/secrets/s1?{API}"));

    let resp = client(&em).get(&url).send().await.expect("h2 request");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let resp = client_http1(&em)
        .get(&url)
        .send()
        .await
        .expect("http/1.1 request");
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tls_handshake_fails_without_the_ca() {
    let em = start().await;
    let other = keyvault_emulator::Emulator::start(Default::default())
        .await
        .expect("second emulator");
    let wrong_ca = reqwest::Certificate::from_pem(other.ca_pem().as_bytes()).expect("CA");
    let http = reqwest::Client::builder()
        .tls_certs_only([wrong_ca])
        .resolve("kv1.vault.localhost", em.addr())
        .build()
        .expect("client");
    let err = http
        .get(vault_url(&em, "kv1", "/secrets/s1"))
        .send()
        .await
        .expect_err("untrusted certificate");
    assert!(err.is_connect(), "{err:?}");
}

#[tokio::test]
async fn e50_challenge_names_vault_localhost_and_the_login_host() {
    let em = start().await;
    let (status, headers, body) = get(
        &client(&em),
        &vault_url(&em, "kv1", &format!("/secrets/s1/?{API}")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "Unauthorized");
    let challenge = headers
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .expect("challenge header");
    assert_eq!(
        challenge,
        format!(
            "Bearer authorization=\"https://login.localhost:{}/{TENANT}\", resource=\"https://vault.localhost\"",
            em.port()
        )
    );
}

#[tokio::test]
async fn unknown_token_gets_401_with_the_challenge() {
    let em = start().await;
    let (status, headers, body) = get(
        &client(&em),
        &vault_url(&em, "kv1", &format!("/secrets/s1?{API}")),
        Some("kve.not-a-token"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "Unauthorized");
    assert!(headers.get(WWW_AUTHENTICATE).is_some());
}

#[tokio::test]
async fn token_for_another_resource_is_rejected() {
    let em = start().await;
    let http = client(&em);
    let (status, body) = post_token(
        &em,
        &http,
        TENANT,
        &[
            ("client_id", SP_CLIENT),
            ("client_secret", SP_SECRET),
            ("grant_type", "client_credentials"),
            ("scope", "https://vault.azure.net/.default"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let token = body["access_token"].as_str().expect("token");
    let (status, _, body) = get(
        &http,
        &vault_url(&em, "kv1", &format!("/secrets/s1?{API}")),
        Some(token),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("Invalid audience"), "{message}");
}

#[tokio::test]
async fn revoked_tokens_get_401() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    em.state().revoke_tokens();
    let (status, _, _) = get(
        &http,
        &vault_url(&em, "kv1", &format!("/secrets/s1?{API}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn client_not_in_the_access_list_gets_403_forbidden() {
    let em = start().await;
    let http = client(&em);
    let token = secret_token(&em, &http, DENIED_CLIENT, DENIED_SECRET).await;
    let (status, _, body) = get(
        &http,
        &vault_url(&em, "kv1", &format!("/secrets/s1/?{API}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "Forbidden");
    assert_eq!(body["error"]["innererror"]["code"], "AccessDenied");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("appid={DENIED_CLIENT}")) && message.contains("'kv1"),
        "{message}"
    );
    assert!(message.contains("secrets get permission"), "{message}");
}

#[tokio::test]
async fn access_lists_are_per_vault() {
    let em = start().await;
    let http = client(&em);
    let token = wi_token(&em, &http).await;
    let (status, _, _) = get(
        &http,
        &vault_url(&em, "kv2", &format!("/secrets/x?{API}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn get_latest_with_and_without_trailing_slash() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    let versions = em.state().secret_versions("kv1", "s1").expect("versions");
    let current = versions.last().expect("current");
    for path in ["/secrets/s1", "/secrets/s1/"] {
        let (status, _, body) = get(
            &http,
            &vault_url(&em, "kv1", &format!("{path}?{API}")),
            Some(&token),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["value"], S1_CURRENT);
        assert_eq!(
            body["id"],
            format!(
                "https://kv1.vault.localhost:{}/secrets/s1/{current}",
                em.port()
            )
        );
        assert_eq!(body["attributes"]["enabled"], true);
        assert!(body["attributes"]["created"].is_i64());
        assert!(body["attributes"]["updated"].is_i64());
        assert_eq!(body["attributes"]["recoveryLevel"], "Recoverable+Purgeable");
        assert_eq!(body["attributes"]["recoverableDays"], 90);
        assert!(body.get("contentType").is_none(), "{body}");
    }
}

#[tokio::test]
async fn content_type_and_tags_are_returned() {
    let em = start().await;
    let http = client(&em);
    let token = wi_token(&em, &http).await;
    let (status, _, body) = get(
        &http,
        &vault_url(&em, "kv1", &format!("/secrets/db-password/?{API}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], DB_VALUE);
    assert_eq!(body["contentType"], "text/plain");
    assert_eq!(body["tags"]["env"], "test");
}

#[tokio::test]
async fn secret_names_are_case_insensitive() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    let (status, _, body) = get(
        &http,
        &vault_url(&em, "kv1", &format!("/secrets/S1/?{API}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], S1_CURRENT);
    let id = body["id"].as_str().unwrap_or_default();
    assert!(id.contains("/secrets/s1/"), "{id}");
}

#[tokio::test]
async fn e27_the_second_set_is_returned_without_a_version() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    em.state()
        .set_secret("kv1", "e27", SecretSpec::new("first"))
        .expect("set first");
    em.state()
        .set_secret("kv1", "e27", SecretSpec::new("second"))
        .expect("set second");
    let (status, _, body) = get(
        &http,
        &vault_url(&em, "kv1", &format!("/secrets/e27/?{API}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], "second");
}

#[tokio::test]
async fn versioned_get_returns_that_version() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    let versions = em.state().secret_versions("kv1", "s1").expect("versions");
    let old = &versions[0];
    for path in [format!("/secrets/s1/{old}"), format!("/secrets/s1/{old}/")] {
        let (status, _, body) = get(
            &http,
            &vault_url(&em, "kv1", &format!("{path}?{API}")),
            Some(&token),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body["value"], S1_OLD);
        assert!(
            body["id"]
                .as_str()
                .unwrap_or_default()
                .ends_with(&format!("/secrets/s1/{old}"))
        );
    }
}

#[tokio::test]
async fn missing_secret_or_version_is_404_secret_not_found() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    for path in [
        "/secrets/does-not-exist/",
        "/secrets/s1/0123456789abcdef0123456789abcdef",
    ] {
        let (status, _, body) = get(
            &http,
            &vault_url(&em, "kv1", &format!("{path}?{API}")),
            Some(&token),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "SecretNotFound");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("A secret with (name/id) "), "{message}");
    }
}

#[tokio::test]
async fn invalid_secret_name_is_400_bad_parameter() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    let (status, _, body) = get(
        &http,
        &vault_url(&em, "kv1", &format!("/secrets/a_b/?{API}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "BadParameter");
}

#[tokio::test]
async fn disabled_versions_are_403_secret_disabled() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    let versions = em.state().secret_versions("kv1", "s1").expect("versions");
    let (old, current) = (&versions[0], &versions[1]);
    em.state()
        .set_secret_enabled("kv1", "s1", current, false)
        .expect("disable current");

    for path in ["/secrets/s1/".to_owned(), format!("/secrets/s1/{current}")] {
        let (status, _, body) = get(
            &http,
            &vault_url(&em, "kv1", &format!("{path}?{API}")),
            Some(&token),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(body["error"]["code"], "Forbidden");
        assert_eq!(body["error"]["innererror"]["code"], "SecretDisabled");
        assert_eq!(
            body["error"]["message"],
            "Operation get is not allowed on a disabled secret."
        );
        assert!(!body.to_string().contains(S1_CURRENT));
    }
    // The older, enabled version is still readable.
    let (status, _, body) = get(
        &http,
        &vault_url(&em, "kv1", &format!("/secrets/s1/{old}?{API}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], S1_OLD);
}

#[tokio::test]
async fn versions_page_by_maxresults_with_absolute_next_links() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    em.state()
        .set_secret("kv1", "s1", SecretSpec::new("third"))
        .expect("third version");
    let expected = em.state().secret_versions("kv1", "s1").expect("versions");
    assert_eq!(expected.len(), 3);

    let mut url = vault_url(
        &em,
        "kv1",
        &format!("/secrets/s1/versions?{API}&maxresults=1"),
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 10, "paging does not end");
        let (status, _, body) = get(&http, &url, Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        let items = body["value"].as_array().expect("value array");
        assert_eq!(items.len(), 1);
        for item in items {
            assert!(item.get("value").is_none(), "listing leaks a value: {item}");
            assert!(item["attributes"]["enabled"].is_boolean());
            let id = item["id"].as_str().expect("id");
            seen.push(id.rsplit('/').next().unwrap_or_default().to_owned());
        }
        match body["nextLink"].as_str() {
            None => {
                assert!(body["nextLink"].is_null());
                break;
            }
            Some(next) => {
                let prefix = format!(
                    "https://kv1.vault.localhost:{}/secrets/s1/versions?",
                    em.port()
                );
                assert!(next.starts_with(&prefix), "{next}");
                assert!(next.contains("api-version=2025-07-01"), "{next}");
                assert!(next.contains("$skiptoken="), "{next}");
                assert!(next.contains("maxresults=1"), "{next}");
                url = next.to_owned();
            }
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn versions_default_page_is_25() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    for i in 0..30 {
        em.state()
            .set_secret("kv1", "many", SecretSpec::new(format!("v{i}")))
            .expect("set");
    }
    let (status, _, body) = get(
        &http,
        &vault_url(&em, "kv1", &format!("/secrets/many/versions?{API}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"].as_array().map(Vec::len), Some(25));
    let next = body["nextLink"].as_str().expect("nextLink");
    let (_, _, body) = get(&http, next, Some(&token)).await;
    assert_eq!(body["value"].as_array().map(Vec::len), Some(5));
    assert!(body["nextLink"].is_null());
}

#[tokio::test]
async fn versions_of_a_missing_secret_is_404() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    let (status, _, body) = get(
        &http,
        &vault_url(&em, "kv1", &format!("/secrets/nope/versions?{API}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "SecretNotFound");
}

#[tokio::test]
async fn secrets_listing_has_ids_without_versions_or_values() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    let (status, _, body) = get(
        &http,
        &vault_url(&em, "kv1", &format!("/secrets?{API}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    let base = format!("https://kv1.vault.localhost:{}/secrets/", em.port());
    assert_eq!(ids, vec![format!("{base}db-password"), format!("{base}s1")]);
    assert!(!body.to_string().contains(S1_CURRENT));
}

#[tokio::test]
async fn data_plane_put_sets_a_new_current_version() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    let resp = http
        .put(vault_url(&em, "kv1", &format!("/secrets/s1?{API}")))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"value":"put-value","contentType":"text/plain"}"#)
        .send()
        .await
        .expect("PUT");
    let (status, _, body) = body_json(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], "put-value");
    let (_, _, latest) = get(
        &http,
        &vault_url(&em, "kv1", &format!("/secrets/s1/?{API}")),
        Some(&token),
    )
    .await;
    assert_eq!(latest["value"], "put-value");
    assert_eq!(latest["id"], body["id"]);
}

#[tokio::test]
async fn unknown_vault_or_foreign_host_is_404_vault_not_found() {
    let em = start().await;
    let http = client(&em);
    for url in [
        vault_url(&em, "nope", &format!("/secrets/s1?{API}")),
        format!("https://localhost:{}/secrets/s1?{API}", em.port()),
        format!("https://login.localhost:{}/secrets/s1?{API}", em.port()),
    ] {
        let (status, _, body) = get(&http, &url, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}");
        assert_eq!(body["error"]["code"], "VaultNotFound");
    }
}

#[tokio::test]
async fn fault_429_with_retry_after_for_the_next_two_requests_then_success() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    em.state().inject_fault(Fault {
        path_prefix: "/secrets/s1".into(),
        vault: Some("kv1".into()),
        status: 429,
        retry_after_secs: Some(3),
        delay_ms: None,
        count: 2,
    });
    let url = vault_url(&em, "kv1", &format!("/secrets/s1/?{API}"));
    for _ in 0..2 {
        let (status, headers, body) = get(&http, &url, Some(&token)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()),
            Some("3")
        );
        assert_eq!(body["error"]["code"], "Throttled");
    }
    let (status, _, body) = get(&http, &url, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], S1_CURRENT);
    // Other objects were never affected.
    em.state().inject_fault(Fault {
        path_prefix: "/secrets/s1".into(),
        vault: Some("kv2".into()),
        status: 503,
        count: 1,
        ..Fault::default()
    });
    let (status, _, _) = get(&http, &url, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn fault_401_carries_the_challenge() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    em.state().inject_fault(Fault {
        path_prefix: "/secrets/".into(),
        status: 401,
        count: 1,
        ..Fault::default()
    });
    let url = vault_url(&em, "kv1", &format!("/secrets/s1/?{API}"));
    let (status, headers, body) = get(&http, &url, Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "Unauthorized");
    let challenge = headers
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        challenge.ends_with("resource=\"https://vault.localhost\""),
        "{challenge}"
    );
}

#[tokio::test]
async fn delay_only_fault_delays_then_answers_normally() {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    em.state().inject_fault(Fault {
        path_prefix: "/secrets/db-password".into(),
        delay_ms: Some(300),
        count: 1,
        ..Fault::default()
    });
    let url = vault_url(&em, "kv1", &format!("/secrets/db-password/?{API}"));
    let started = Instant::now();
    let (status, _, body) = get(&http, &url, Some(&token)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], DB_VALUE);
    let started = Instant::now();
    let (status, _, _) = get(&http, &url, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn counters_count_objects_clients_tokens_and_totals() {
    let em = start().await;
    let http = client(&em);
    let sp = sp_token(&em, &http).await;
    let wi = wi_token(&em, &http).await;
    let latest = vault_url(&em, "kv1", &format!("/secrets/s1/?{API}"));
    let versions = vault_url(&em, "kv1", &format!("/secrets/S1/versions?{API}"));
    let db = vault_url(&em, "kv1", &format!("/secrets/db-password?{API}"));

    // The bare challenge probe is a request but not an object fetch.
    get(&http, &latest, None).await;
    get(&http, &latest, Some(&sp)).await;
    get(&http, &latest, Some(&sp)).await;
    get(&http, &versions, Some(&wi)).await;
    get(&http, &db, Some(&wi)).await;
    em.state().inject_fault(Fault {
        path_prefix: "/secrets/db-password".into(),
        status: 500,
        count: 1,
        ..Fault::default()
    });
    get(&http, &db, Some(&wi)).await;

    let counters = em.state().counters();
    assert_eq!(counters.per_object.get("kv1/secrets/s1"), Some(&3));
    assert_eq!(counters.per_object.get("kv1/secrets/db-password"), Some(&2));
    assert_eq!(counters.per_object.len(), 2);
    assert_eq!(counters.per_client.get(SP_CLIENT), Some(&2));
    assert_eq!(counters.per_client.get(WI_CLIENT), Some(&3));
    assert_eq!(counters.token_requests, 2);
    assert_eq!(counters.total, 6);

    em.state().reset_counters();
    assert_eq!(
        em.state().counters(),
        keyvault_emulator::Counters::default()
    );
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let em = start().await;
    let http = client(&em);
    let url = vault_url(&em, "kv1", &format!("/secrets/s1?{API}"));
    let (status, _, _) = get(&http, &url, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let addr = em.addr();
    em.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
