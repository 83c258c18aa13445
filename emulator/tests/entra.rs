//! The Entra ID token endpoint: grants, token shape and AADSTS errors.

mod common;

use common::*;
use keyvault_emulator::ASSERTION_TYPE;
use reqwest::StatusCode;

#[tokio::test]
async fn client_secret_grant_returns_a_bearer_token_with_numeric_expiry() {
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
            ("scope", VAULT_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"].as_u64(), Some(3599));
    assert_eq!(body["ext_expires_in"].as_u64(), Some(3599));
    let token = body["access_token"].as_str().expect("access_token");
    assert!(token.len() >= 32);
}

#[tokio::test]
async fn client_assertion_grant_returns_a_token_and_records_the_assertion() {
    let em = start().await;
    let http = client(&em);
    assert_eq!(em.state().last_assertion(WI_CLIENT), None);
    let token = wi_token(&em, &http).await;
    assert!(!token.is_empty());
    assert_eq!(
        em.state().last_assertion(WI_CLIENT).as_deref(),
        Some(WI_ASSERTION)
    );
    // Client ids are GUIDs: case does not matter.
    assert_eq!(
        em.state()
            .last_assertion(&WI_CLIENT.to_ascii_uppercase())
            .as_deref(),
        Some(WI_ASSERTION)
    );
}

#[tokio::test]
async fn unknown_client_gets_aadsts700016() {
    let em = start().await;
    let http = client(&em);
    let (status, body) = post_token(
        &em,
        &http,
        TENANT,
        &[
            ("client_id", "99999999-0000-0000-0000-000000000000"),
            ("client_secret", "whatever-secret"),
            ("grant_type", "client_credentials"),
            ("scope", VAULT_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unauthorized_client");
    assert_eq!(body["error_codes"], serde_json::json!([700016]));
    let description = body["error_description"].as_str().expect("description");
    assert!(
        description.starts_with(
            "AADSTS700016: Application with identifier '99999999-0000-0000-0000-000000000000' was not found"
        ),
        "{description}"
    );
    assert!(!body.to_string().contains("whatever-secret"));
}

#[tokio::test]
async fn wrong_client_secret_gets_aadsts7000215_without_echo() {
    let em = start().await;
    let http = client(&em);
    let (status, body) = post_token(
        &em,
        &http,
        TENANT,
        &[
            ("client_id", SP_CLIENT),
            ("client_secret", "wrong-secret-Kk8"),
            ("grant_type", "client_credentials"),
            ("scope", VAULT_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], serde_json::json!([7000215]));
    assert!(!body.to_string().contains("wrong-secret-Kk8"));
}

#[tokio::test]
async fn unaccepted_assertion_gets_aadsts700213_without_echo() {
    let em = start().await;
    let http = client(&em);
    let (status, body) = post_token(
        &em,
        &http,
        TENANT,
        &[
            ("client_assertion", "forged-assertion-Jj4"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_id", WI_CLIENT),
            ("grant_type", "client_credentials"),
            ("scope", VAULT_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], serde_json::json!([700213]));
    assert!(!body.to_string().contains("forged-assertion-Jj4"));
    // The rejected assertion is still what arrived last.
    assert_eq!(
        em.state().last_assertion(WI_CLIENT).as_deref(),
        Some("forged-assertion-Jj4")
    );
}

#[tokio::test]
async fn missing_fields_get_aadsts900144_naming_the_field() {
    let em = start().await;
    let http = client(&em);
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[
                ("client_secret", SP_SECRET),
                ("grant_type", "client_credentials"),
                ("scope", VAULT_SCOPE),
            ],
            "client_id",
        ),
        (
            &[
                ("client_id", SP_CLIENT),
                ("client_secret", SP_SECRET),
                ("grant_type", "client_credentials"),
            ],
            "scope",
        ),
        (
            &[
                ("client_id", SP_CLIENT),
                ("client_secret", SP_SECRET),
                ("scope", VAULT_SCOPE),
            ],
            "grant_type",
        ),
    ];
    for (form, field) in cases {
        let (status, body) = post_token(&em, &http, TENANT, form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {body}");
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(body["error_codes"], serde_json::json!([900144]));
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(&format!("'{field}'")), "{description}");
    }
}

#[tokio::test]
async fn missing_credential_gets_invalid_client() {
    let em = start().await;
    let http = client(&em);
    let (status, body) = post_token(
        &em,
        &http,
        TENANT,
        &[
            ("client_id", SP_CLIENT),
            ("grant_type", "client_credentials"),
            ("scope", VAULT_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], serde_json::json!([7000218]));
}

#[tokio::test]
async fn tenant_mismatch_gets_aadsts90002() {
    let em = start().await;
    let http = client(&em);
    let (status, body) = post_token(
        &em,
        &http,
        "other-tenant",
        &[
            ("client_id", SP_CLIENT),
            ("client_secret", SP_SECRET),
            ("grant_type", "client_credentials"),
            ("scope", VAULT_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_codes"], serde_json::json!([90002]));

    // A client registered without a tenant is accepted in any tenant.
    let (status, _) = post_token(
        &em,
        &http,
        "any-tenant",
        &[
            ("client_id", DENIED_CLIENT),
            ("client_secret", DENIED_SECRET),
            ("grant_type", "client_credentials"),
            ("scope", VAULT_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn scope_without_default_suffix_is_invalid() {
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
            ("scope", "https://vault.localhost"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_scope");
}

#[tokio::test]
async fn token_requests_are_counted() {
    let em = start().await;
    let http = client(&em);
    sp_token(&em, &http).await;
    let _ = post_token(&em, &http, TENANT, &[("client_id", "x")]).await;
    assert_eq!(em.state().counters().token_requests, 2);
}
