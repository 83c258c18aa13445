//! The attestation service (`POST /attest/SevSnpVm`, `GET /certs`), the KDS stand-in
//! (`GET /vcek/v1/...`) and Secure Key Release (`POST /keys/{name}[/{version}]/release`).
//!
//! Evidence comes from `vaultlet-snp`'s synthetic chain (needs the `openssl` CLI).

mod common;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded as _};
use aws_lc_rs::rsa::{KeySize, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use common::{body_json, client, sp_token, start, vault_url};
use keyvault_emulator::{Emulator, ExportableKeySpec, KeySpec, release_policy};
use reqwest::StatusCode;
use serde_json::{Value, json};
use vaultlet_snp::Generation;
use vaultlet_snp::testing::{SyntheticCa, VekSpec, matching_report, signed_report};

/// A runtime key: its PKCS#8 private key and the runtime data JSON `{"keys": [JWK]}`.
fn runtime_key() -> (PrivateDecryptingKey, Vec<u8>) {
    use rsa::pkcs8::DecodePublicKey as _;
    use rsa::traits::PublicKeyParts as _;
    let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).expect("rsa");
    let spki = key.public_key().as_der().expect("spki");
    let public = rsa::RsaPublicKey::from_public_key_der(spki.as_ref()).expect("rsa public");
    let jwk = json!({
        "kty": "RSA",
        "kid": "runtime-1",
        "key_ops": ["encrypt"],
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    });
    (key, json!({ "keys": [jwk] }).to_string().into_bytes())
}

/// A signed Milan report bound to `runtime` (REPORT_DATA = SHA-256 ‖ zeros), its chain as
/// PEM, and the synthetic ARK. `tweak` edits the report before signing.
fn evidence(
    runtime: &[u8],
    tweak: impl FnOnce(&mut vaultlet_snp::Report),
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let ca = SyntheticCa::get(Generation::Milan).expect("synthetic CA (openssl CLI)");
    let vek = ca.issue(&VekSpec::vcek(Generation::Milan)).expect("VCEK");
    let mut report = matching_report(Generation::Milan, &vek);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, runtime);
    report.report_data = [0; 64];
    report.report_data[..32].copy_from_slice(digest.as_ref());
    tweak(&mut report);
    let raw = signed_report(&mut report, &vek);
    let pem: String = ca
        .certs_for(&vek)
        .into_iter()
        .map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der)))
        .collect();
    (raw, pem.into_bytes(), ca.ark.clone())
}

fn attest_body(raw: &[u8], chain: &[u8], runtime: &[u8]) -> Value {
    let report = json!({
        "SnpReport": URL_SAFE.encode(raw),
        "VcekCertChain": URL_SAFE.encode(chain),
    });
    json!({
        "report": URL_SAFE.encode(report.to_string()),
        "runtimeData": { "data": URL_SAFE.encode(runtime), "dataType": "JSON" },
        "nonce": 7,
    })
}

async fn attest(em: &Emulator, body: &Value) -> (StatusCode, Value) {
    let url = format!(
        "{}/attest/SevSnpVm?api-version=2022-08-01",
        em.attestation_url()
    );
    let resp = client(em)
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("sent");
    let (status, _, value) = body_json(resp).await;
    (status, value)
}

fn payload(jws: &str) -> Value {
    let part = jws.split('.').nth(1).expect("payload part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("b64")).expect("json")
}

#[tokio::test]
async fn accepted_evidence_yields_a_signed_token_with_snp_and_runtime_claims() {
    let em = start().await;
    let (_, runtime) = runtime_key();
    let (raw, chain, ark) = evidence(&runtime, |_| {});
    em.state().set_attestation_extra_roots(vec![ark]);
    let (status, body) = attest(&em, &attest_body(&raw, &chain, &runtime)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("token");
    let claims = payload(token);
    assert_eq!(claims["iss"], em.attestation_url());
    assert_eq!(claims["x-ms-attestation-type"], "sevsnpvm");
    assert_eq!(claims["x-ms-compliance-status"], "azure-compliant-cvm");
    assert_eq!(claims["x-ms-sevsnpvm-launchmeasurement"], "11".repeat(48));
    assert_eq!(claims["x-ms-sevsnpvm-hostdata"], "33".repeat(32));
    assert_eq!(claims["x-ms-sevsnpvm-is-debuggable"], false);
    assert_eq!(claims["x-ms-sevsnpvm-vmpl"], 0);
    assert_eq!(claims["x-ms-sevsnpvm-bootloader-svn"], 3);
    assert_eq!(claims["x-ms-sevsnpvm-microcode-svn"], 115);
    assert_eq!(claims["nonce"], 7);
    let runtime_json: Value = serde_json::from_slice(&runtime).expect("json");
    assert_eq!(claims["x-ms-runtime"], runtime_json);
    assert!(claims["exp"].as_i64() > claims["iat"].as_i64());

    // The signature verifies with the JWKS key.
    let resp = client(&em)
        .get(format!("{}/certs", em.attestation_url()))
        .send()
        .await
        .expect("certs");
    let (status, _, jwks) = body_json(resp).await;
    assert_eq!(status, StatusCode::OK);
    let jwk = &jwks["keys"][0];
    let n = URL_SAFE_NO_PAD
        .decode(jwk["n"].as_str().expect("n"))
        .expect("n");
    let e = URL_SAFE_NO_PAD
        .decode(jwk["e"].as_str().expect("e"))
        .expect("e");
    let (signed, sig) = token.rsplit_once('.').expect("signature");
    aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &URL_SAFE_NO_PAD.decode(sig).expect("sig"),
        )
        .expect("token signature verifies with /certs");
    assert_eq!(em.state().counters().attestations, 1);
}

#[tokio::test]
async fn evidence_that_fails_the_policy_is_rejected_naming_the_check() {
    let em = start().await;
    let (_, runtime) = runtime_key();
    let (raw, chain, ark) = evidence(&runtime, |_| {});
    em.state().set_attestation_extra_roots(vec![ark]);
    em.state().set_attestation_policy(
        vaultlet_snp::Policy::from_yaml(&format!("measurements: [\"{}\"]\n", "22".repeat(48)))
            .expect("policy"),
    );
    let (status, body) = attest(&em, &attest_body(&raw, &chain, &runtime)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("policy.measurement"), "{message}");
}

#[tokio::test]
async fn evidence_under_an_untrusted_root_is_rejected_at_root_pin() {
    let em = start().await;
    let (_, runtime) = runtime_key();
    let (raw, chain, _) = evidence(&runtime, |_| {});
    let (status, body) = attest(&em, &attest_body(&raw, &chain, &runtime)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("root_pin")),
        "{body}"
    );
}

#[tokio::test]
async fn runtime_data_not_bound_by_report_data_is_rejected() {
    let em = start().await;
    let (_, runtime) = runtime_key();
    let (raw, chain, ark) = evidence(&runtime, |_| {});
    em.state().set_attestation_extra_roots(vec![ark]);
    let (status, body) = attest(&em, &attest_body(&raw, &chain, b"{\"keys\":[]}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("report_data_binding")),
        "{body}"
    );
    // Non-zero REPORT_DATA[32..64] is refused too.
    let (raw, chain, _) = evidence(&runtime, |r| r.report_data[63] = 1);
    let (status, body) = attest(&em, &attest_body(&raw, &chain, &runtime)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("REPORT_DATA[32..64]")),
        "{body}"
    );
}

#[tokio::test]
async fn kds_serves_configured_vceks_only() {
    let em = start().await;
    let hwid = [0x5a_u8; 64];
    em.state()
        .add_vcek("Milan", &hwid, vec![0x30, 0x03, 0x02, 0x01, 0x01]);
    let http = client(&em);
    let url = |product: &str, hwid: &str| {
        format!(
            "{}/vcek/v1/{product}/{hwid}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115",
            em.kds_url()
        )
    };
    let resp = http
        .get(url("Milan", &hex::encode(hwid)))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.bytes().await.expect("body").as_ref(),
        [0x30, 0x03, 0x02, 0x01, 0x01]
    );
    let resp = http
        .get(url("Genoa", &hex::encode(hwid)))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = http.get(url("Milan", "00")).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// A release token minted directly (no evidence), for `x-ms-runtime` = `runtime`.
fn token(em: &Emulator, measurement: &str, runtime: &[u8], exp_offset: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let runtime: Value = serde_json::from_slice(runtime).expect("json");
    let claims = json!({
        "iat": now, "nbf": now, "exp": now + exp_offset,
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-sevsnpvm-launchmeasurement": measurement,
        "x-ms-runtime": runtime,
    });
    em.state()
        .mint_attestation_token(
            &em.attestation_url(),
            claims.as_object().expect("map").clone(),
        )
        .expect("token")
}

async fn release(em: &Emulator, path: &str, body: Value) -> (StatusCode, Value) {
    let http = client(em);
    let bearer = sp_token(em, &http).await;
    let resp = http
        .post(vault_url(em, "kv1", path))
        .bearer_auth(bearer)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("release");
    let (status, _, value) = body_json(resp).await;
    (status, value)
}

#[tokio::test]
async fn release_with_met_policy_returns_the_key_wrapped_for_the_runtime_key() {
    let em = start().await;
    let measurement = "ab".repeat(48);
    let policy = release_policy(
        &em.attestation_url(),
        &[("x-ms-sevsnpvm-launchmeasurement", json!(measurement))],
    );
    let version = em
        .state()
        .create_exportable_key("kv1", "skr", ExportableKeySpec::rsa(policy))
        .expect("key");
    let (runtime_private, runtime) = runtime_key();
    let target = token(&em, &measurement, &runtime, 600);

    // GET shows the public key, exportable, with its policy.
    let http = client(&em);
    let bearer = sp_token(&em, &http).await;
    let resp = http
        .get(vault_url(&em, "kv1", "/keys/skr"))
        .bearer_auth(&bearer)
        .send()
        .await
        .expect("get");
    let (status, _, bundle) = body_json(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bundle["attributes"]["exportable"], true);
    assert!(bundle["key"].get("d").is_none());
    assert!(bundle["release_policy"]["data"].is_string());

    // The SDK's path for the current version has an empty segment.
    let (status, body) = release(
        &em,
        "/keys/skr//release?api-version=7.6",
        json!({"target": target}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = payload(body["value"].as_str().expect("value"));
    assert_eq!(claims["request"]["enc"], "CKM_RSA_AES_KEY_WRAP");
    let jwk = &claims["response"]["key"]["key"];
    assert!(
        jwk["kid"]
            .as_str()
            .is_some_and(|k| k.ends_with(&format!("/keys/skr/{version}")))
    );
    assert_eq!(jwk["kty"], "RSA-HSM");
    let key_hsm: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwk["key_hsm"].as_str().expect("key_hsm"))
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(key_hsm["header"]["alg"], "dir");
    assert_eq!(key_hsm["header"]["kid"], "runtime-1");
    let ciphertext = URL_SAFE_NO_PAD
        .decode(key_hsm["ciphertext"].as_str().expect("ciphertext"))
        .expect("b64");
    let (encrypted, wrapped) = ciphertext.split_at(256);
    let rsa = OaepPrivateDecryptingKey::new(runtime_private).expect("oaep");
    let mut aes = vec![0u8; rsa.min_output_size()];
    let aes = rsa
        .decrypt(&OAEP_SHA1_MGF1SHA1, encrypted, &mut aes, None)
        .expect("OAEP SHA-1 decrypts")
        .to_vec();
    let mut der = vec![0u8; wrapped.len()];
    let der = AesKek::new(&AES_256, &aes)
        .expect("kek")
        .unwrap_with_padding(wrapped, &mut der)
        .expect("KWP unwraps")
        .to_vec();
    assert_eq!(
        der,
        em.state()
            .exportable_key_pkcs8("kv1", "skr", None)
            .expect("pkcs8")
    );

    // With an explicit version too.
    let (status, _) = release(
        &em,
        &format!("/keys/skr/{version}/release"),
        json!({"target": target, "enc": "RSA_AES_KEY_WRAP_256"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(em.state().counters().releases, 2);
}

#[tokio::test]
async fn release_with_unmet_policy_or_bad_token_is_403() {
    let em = start().await;
    let policy = release_policy(
        &em.attestation_url(),
        &[("x-ms-sevsnpvm-launchmeasurement", json!("ab".repeat(48)))],
    );
    em.state()
        .create_exportable_key("kv1", "skr", ExportableKeySpec::ec_p256(policy))
        .expect("key");
    let (_, runtime) = runtime_key();

    let wrong = token(&em, &"cd".repeat(48), &runtime, 600);
    let (status, body) = release(&em, "/keys/skr/release", json!({"target": wrong})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("release policy") && !message.contains(&wrong),
        "{message}"
    );

    let expired = token(&em, &"ab".repeat(48), &runtime, -3600);
    let (status, _) = release(&em, "/keys/skr/release", json!({"target": expired})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let good = token(&em, &"ab".repeat(48), &runtime, 600);
    let mut forged: Vec<&str> = good.split('.').collect();
    let other = URL_SAFE_NO_PAD.encode(b"{\"x-ms-sevsnpvm-launchmeasurement\":\"x\"}");
    forged[1] = &other;
    let (status, _) = release(
        &em,
        "/keys/skr/release",
        json!({"target": forged.join(".")}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A token from another issuer than the policy's authority.
    let foreign = em
        .state()
        .mint_attestation_token(
            "https://sharedeus.eus.attest.azure.net",
            payload(&good).as_object().expect("map").clone(),
        )
        .expect("token");
    let (status, _) = release(&em, "/keys/skr/release", json!({"target": foreign})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A key without a release policy cannot be released.
    em.state()
        .create_key("kv1", "plain", KeySpec::rsa(2048))
        .expect("key");
    let (status, _) = release(&em, "/keys/plain/release", json!({"target": good})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = release(&em, "/keys/skr/release", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = release(&em, "/keys/skr/release", json!({"target": good})).await;
    assert_eq!(status, StatusCode::OK);
}
