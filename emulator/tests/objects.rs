//! Keys and certificates on the data plane: JWKs of generated and imported keys, certificate
//! import from PFX and PEM with their backing secret and key, disabled versions, paging,
//! access, counters, the admin routes and the seed.
//!
//! Material is generated here with rcgen (aws-lc-rs) and PFX files are built with
//! p12-keystore; responses are checked with x509-parser, p12-keystore and, when it is on
//! PATH, the `openssl` command.

mod common;

use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use keyvault_emulator::{CertImportOptions, Emulator, KeyImportOptions, KeySpec, Seed, StateError};
use p12_keystore::{
    Certificate, KeyStore, KeyStoreEntry, Pkcs12Archive, PrivateKey, PrivateKeyChain,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData as _,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::PublicKey as X509PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

const API: &str = "api-version=2025-07-01";
const PFX_PASSWORD: &str = "pfx-import-password-Kk4";

fn url(em: &Emulator, path: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    vault_url(em, "kv1", &format!("{path}{sep}{API}"))
}

fn origin(em: &Emulator) -> String {
    format!("https://kv1.vault.localhost:{}", em.port())
}

fn b64url(value: &Value) -> Vec<u8> {
    let text = value.as_str().expect("base64url string");
    assert!(!text.contains('='), "padded base64url: {text}");
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Checks that a JWK carries exactly the public key of `spki` (parsed by x509-parser).
fn assert_jwk_is(jwk: &Value, spki: &[u8]) {
    let (_, info) = SubjectPublicKeyInfo::from_der(spki).expect("SPKI parses");
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(
            jwk.get(private).is_none(),
            "JWK has private member {private}"
        );
    }
    match info.parsed().expect("public key parses") {
        X509PublicKey::RSA(rsa) => {
            assert!(
                jwk["kty"].as_str().is_some_and(|k| k.starts_with("RSA")),
                "{jwk}"
            );
            assert_eq!(b64url(&jwk["n"]), strip_zeros(rsa.modulus));
            assert_eq!(b64url(&jwk["e"]), strip_zeros(rsa.exponent));
            assert!(jwk.get("x").is_none());
        }
        X509PublicKey::EC(point) => {
            assert!(
                jwk["kty"].as_str().is_some_and(|k| k.starts_with("EC")),
                "{jwk}"
            );
            let curve = info
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string())
                .expect("curve OID");
            let (crv, len) = match curve.as_str() {
                "1.2.840.10045.3.1.7" => ("P-256", 32),
                "1.3.132.0.34" => ("P-384", 48),
                "1.3.132.0.35" => ("P-521", 66),
                other => panic!("unexpected curve {other}"),
            };
            assert_eq!(jwk["crv"], crv);
            let (x, y) = (b64url(&jwk["x"]), b64url(&jwk["y"]));
            assert_eq!((x.len(), y.len()), (len, len));
            let mut sec1 = vec![4u8];
            sec1.extend_from_slice(&x);
            sec1.extend_from_slice(&y);
            assert_eq!(sec1, point.data());
            assert!(jwk.get("n").is_none());
        }
        _ => panic!("unexpected key type"),
    }
}

/// A root, an intermediate and a leaf (with its key), made with rcgen.
struct Chain {
    root: Vec<u8>,
    intermediate: Vec<u8>,
    leaf: Vec<u8>,
    leaf_key: KeyPair,
    pem: [String; 3],
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn chain(leaf_alg: &'static rcgen::SignatureAlgorithm) -> Chain {
    let root_key = KeyPair::generate().expect("root key");
    let mut root_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    root_params.distinguished_name = dn("objects test root");
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root = root_params.self_signed(&root_key).expect("root");
    let root_issuer = Issuer::new(root_params, root_key);

    let int_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("int key");
    let mut int_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    int_params.distinguished_name = dn("objects test intermediate");
    int_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    int_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    int_params.use_authority_key_identifier_extension = true;
    let intermediate = int_params.signed_by(&int_key, &root_issuer).expect("int");
    let int_issuer = Issuer::new(int_params, int_key);

    let leaf_key = if leaf_alg == &rcgen::PKCS_RSA_SHA256 {
        KeyPair::generate_rsa_for(leaf_alg, rcgen::RsaKeySize::_2048).expect("leaf key")
    } else {
        KeyPair::generate_for(leaf_alg).expect("leaf key")
    };
    let mut leaf_params =
        CertificateParams::new(vec!["web.example.test".to_owned()]).expect("params");
    leaf_params.distinguished_name = dn("web.example.test");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf = leaf_params.signed_by(&leaf_key, &int_issuer).expect("leaf");
    Chain {
        pem: [root.pem(), intermediate.pem(), leaf.pem()],
        root: root.der().to_vec(),
        intermediate: intermediate.der().to_vec(),
        leaf: leaf.der().to_vec(),
        leaf_key,
    }
}

/// A PFX whose certificate bags are root, intermediate, then leaf (with the key's
/// localKeyId), protected by `password`.
fn pfx(chain: &Chain, password: &str) -> Vec<u8> {
    let cert = |der: &[u8]| Certificate::from_der(der).expect("certificate");
    let mut store = KeyStore::new();
    store.add_entry("a-root", KeyStoreEntry::Certificate(cert(&chain.root)));
    store.add_entry(
        "b-intermediate",
        KeyStoreEntry::Certificate(cert(&chain.intermediate)),
    );
    let key = PrivateKey::from_der(chain.leaf_key.serialized_der()).expect("PKCS#8");
    store.add_entry(
        "c-leaf",
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
            b"leaf-key-id".as_slice(),
            key,
            [cert(&chain.leaf)],
        )),
    );
    store.writer(password).write().expect("PFX written")
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `openssl pkcs12 -in FILE -passin pass: ARGS` (no `-legacy`) and returns stdout.
fn openssl_pkcs12(pfx: &[u8], args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stored.pfx");
    std::fs::write(&path, pfx).expect("write PFX");
    let out = Command::new("openssl")
        .arg("pkcs12")
        .arg("-in")
        .arg(&path)
        .args(["-passin", "pass:"])
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl pkcs12 {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `openssl pkcs12 -info -noout` output (it goes to stderr) for an empty password.
fn openssl_pkcs12_info(pfx: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stored.pfx");
    std::fs::write(&path, pfx).expect("write PFX");
    let out = Command::new("openssl")
        .arg("pkcs12")
        .arg("-in")
        .arg(&path)
        .args(["-passin", "pass:", "-info", "-noout"])
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn setup() -> (Emulator, reqwest::Client, String) {
    let em = start().await;
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    (em, http, token)
}

#[tokio::test]
async fn generated_rsa_and_ec_keys_serve_their_public_jwk() {
    let (em, http, token) = setup().await;
    let state = em.state();
    for (name, spec, kty, ops) in [
        ("k-rsa", KeySpec::rsa(2048), "RSA", 6),
        ("k-p256", KeySpec::ec("P-256"), "EC", 2),
        (
            "k-p384",
            KeySpec {
                kty: "EC-HSM".into(),
                ..KeySpec::ec("P-384")
            },
            "EC-HSM",
            2,
        ),
        ("k-p521", KeySpec::ec("P-521"), "EC", 2),
    ] {
        let version = state.create_key("kv1", name, spec).expect("key created");
        let (status, _, body) =
            get(&http, &url(&em, &format!("/keys/{name}/")), Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let jwk = &body["key"];
        assert_eq!(jwk["kty"], kty);
        assert_eq!(jwk["kid"], format!("{}/keys/{name}/{version}", origin(&em)));
        assert_eq!(jwk["key_ops"].as_array().map(Vec::len), Some(ops), "{jwk}");
        let spki = state
            .key_public_spki("kv1", name, None)
            .expect("public key");
        assert_jwk_is(jwk, &spki);
        assert_eq!(body["attributes"]["enabled"], true);
        assert!(body["attributes"]["created"].is_i64());
        assert_eq!(body["attributes"]["recoveryLevel"], "Recoverable+Purgeable");
        assert!(body.get("managed").is_none());
    }
    // Two keys never share material.
    let a = state.key_public_spki("kv1", "k-p256", None).expect("spki");
    state
        .create_key("kv1", "k-p256", KeySpec::ec("P-256"))
        .expect("second version");
    let b = state.key_public_spki("kv1", "k-p256", None).expect("spki");
    assert_ne!(a, b);
}

#[tokio::test]
async fn imported_keys_serve_the_public_half_of_the_test_key() {
    let (em, http, token) = setup().await;
    let ec = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("EC key");
    let rsa = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .expect("RSA key");
    for (name, pair, hsm, kty) in [
        ("imp-ec", &ec, false, "EC"),
        ("imp-rsa", &rsa, true, "RSA-HSM"),
    ] {
        let opts = KeyImportOptions {
            hsm,
            ..KeyImportOptions::default()
        };
        let version = em
            .state()
            .import_key_pem("kv1", name, &pair.serialize_pem(), opts)
            .expect("import");
        let (status, _, body) = get(
            &http,
            &url(&em, &format!("/keys/{name}/{version}")),
            Some(&token),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["key"]["kty"], kty);
        assert_jwk_is(&body["key"], &pair.subject_public_key_info());
    }
    // A different key does not match: the comparison can fail.
    let other = KeyPair::generate().expect("other key");
    let (_, _, body) = get(&http, &url(&em, "/keys/imp-ec"), Some(&token)).await;
    let other_spki = other.subject_public_key_info();
    let jwk = body["key"].clone();
    let result = std::panic::catch_unwind(move || assert_jwk_is(&jwk, &other_spki));
    assert!(result.is_err(), "a foreign key matched the JWK");
    assert!(matches!(
        em.state().import_key_pem(
            "kv1",
            "bad",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            KeyImportOptions::default()
        ),
        Err(StateError::InvalidKey(_))
    ));
}

#[tokio::test]
async fn oct_keys_never_return_key_material() {
    let (em, http, token) = setup().await;
    for (name, kty) in [("k-oct", "oct"), ("k-oct-hsm", "oct-HSM")] {
        let spec = KeySpec {
            kty: kty.into(),
            ..KeySpec::oct()
        };
        em.state().create_key("kv1", name, spec).expect("oct key");
        let (status, _, body) = get(&http, &url(&em, &format!("/keys/{name}")), Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let jwk = body["key"].as_object().expect("JWK object");
        assert_eq!(jwk["kty"], kty);
        for member in ["k", "n", "e", "x", "y", "d", "crv"] {
            assert!(!jwk.contains_key(member), "{member} in {jwk:?}");
        }
        assert!(matches!(
            em.state().key_public_spki("kv1", name, None),
            Err(StateError::InvalidKey(_))
        ));
    }
}

#[tokio::test]
async fn key_versions_page_and_disabled_or_missing_versions_fail() {
    let (em, http, token) = setup().await;
    let state = em.state();
    let ids: Vec<String> = (0..3)
        .map(|_| {
            state
                .create_key("kv1", "k1", KeySpec::ec("P-256"))
                .expect("version")
        })
        .collect();
    assert_eq!(state.key_versions("kv1", "k1").expect("versions"), ids);

    let (status, _, page) = get(
        &http,
        &url(&em, "/keys/k1/versions?maxresults=2"),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let kids: Vec<&str> = page["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|item| item["kid"].as_str().expect("kid"))
        .collect();
    assert_eq!(
        kids,
        ids[..2]
            .iter()
            .map(|id| format!("{}/keys/k1/{id}", origin(&em)))
            .collect::<Vec<_>>()
    );
    let next = page["nextLink"].as_str().expect("nextLink");
    assert!(
        next.starts_with(&format!("{}/keys/k1/versions?", origin(&em))),
        "{next}"
    );
    let (status, _, last) = get(&http, next, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(last["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        last["value"][0]["kid"],
        format!("{}/keys/k1/{}", origin(&em), ids[2])
    );
    assert!(last["nextLink"].is_null());

    let (_, _, current) = get(&http, &url(&em, "/keys/k1"), Some(&token)).await;
    assert_eq!(
        current["key"]["kid"],
        format!("{}/keys/k1/{}", origin(&em), ids[2])
    );

    state
        .set_key_enabled("kv1", "k1", &ids[2], false)
        .expect("disable");
    let (status, _, body) = get(&http, &url(&em, "/keys/k1/"), Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "Forbidden");
    assert_eq!(body["error"]["innererror"]["code"], "KeyDisabled");
    let (status, _, _) = get(
        &http,
        &url(&em, &format!("/keys/k1/{}", ids[1])),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    for path in [
        "/keys/nope",
        "/keys/k1/0123456789abcdef0123456789abcdef",
        "/keys/nope/versions",
    ] {
        let (status, _, body) = get(&http, &url(&em, path), Some(&token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "KeyNotFound", "{path}");
    }
    let (status, _, list) = get(&http, &url(&em, "/keys"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["value"][0]["kid"], format!("{}/keys/k1", origin(&em)));
}

#[tokio::test]
async fn e23_pfx_import_stores_a_passwordless_pfx_with_every_certificate_and_the_key() {
    let (em, http, token) = setup().await;
    let chain = chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let version = em
        .state()
        .import_certificate_pfx(
            "kv1",
            "web",
            &pfx(&chain, PFX_PASSWORD),
            Some(PFX_PASSWORD),
            CertImportOptions::default(),
        )
        .expect("import");

    let (status, _, cert) = get(&http, &url(&em, "/certificates/web/"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{cert}");
    let base = origin(&em);
    assert_eq!(cert["id"], format!("{base}/certificates/web/{version}"));
    assert_eq!(cert["kid"], format!("{base}/keys/web/{version}"));
    assert_eq!(cert["sid"], format!("{base}/secrets/web/{version}"));
    assert_eq!(
        STANDARD
            .decode(cert["cer"].as_str().expect("cer"))
            .expect("base64"),
        chain.leaf
    );
    assert_eq!(
        cert["policy"]["secret_props"]["contentType"],
        "application/x-pkcs12"
    );
    assert_eq!(cert["policy"]["key_props"]["kty"], "EC");
    assert_eq!(cert["policy"]["key_props"]["crv"], "P-256");
    assert_eq!(
        cert["policy"]["x509_props"]["subject"],
        "CN=web.example.test"
    );
    assert_eq!(
        cert["policy"]["x509_props"]["sans"]["dns_names"],
        json!(["web.example.test"])
    );
    assert!(cert["attributes"]["nbf"].is_i64() && cert["attributes"]["exp"].is_i64());
    assert_eq!(cert["attributes"]["enabled"], true);

    let (status, _, secret) = get(
        &http,
        &format!("{}?{API}", cert["sid"].as_str().expect("sid")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{secret}");
    assert_eq!(secret["contentType"], "application/x-pkcs12");
    assert_eq!(secret["managed"], true);
    assert_eq!(secret["kid"], cert["kid"]);
    assert_eq!(secret["id"], cert["sid"]);
    let stored = STANDARD
        .decode(secret["value"].as_str().expect("value"))
        .expect("base64 PFX");

    // Password-less now: the import password no longer opens it.
    assert!(Pkcs12Archive::from_pkcs12(&stored, PFX_PASSWORD).is_err());
    let archive = Pkcs12Archive::from_pkcs12(&stored, "").expect("opens with an empty password");
    let ders: Vec<&[u8]> = archive.certs.iter().map(|b| b.cert.as_der()).collect();
    assert_eq!(
        ders,
        vec![&chain.leaf[..], &chain.root[..], &chain.intermediate[..]],
        "leaf first, others kept in order"
    );
    assert_eq!(archive.keys.len(), 1);
    assert_eq!(
        archive.keys[0].key.as_der(),
        chain.leaf_key.serialized_der()
    );

    if openssl_available() {
        let certs = openssl_pkcs12(&stored, &["-nokeys"]);
        assert_eq!(
            certs.matches("-----BEGIN CERTIFICATE-----").count(),
            3,
            "{certs}"
        );
        let key = openssl_pkcs12(&stored, &["-nocerts", "-nodes"]);
        assert!(key.contains("-----BEGIN PRIVATE KEY-----"));
        let info = openssl_pkcs12_info(&stored);
        assert!(info.contains("MAC: sha256"), "{info}");
        assert!(
            info.contains("AES-256-CBC") && info.contains("hmacWithSHA256"),
            "{info}"
        );
        assert!(!info.contains("3DES") && !info.contains("RC2"), "{info}");
    } else {
        eprintln!("openssl not on PATH: skipping the openssl oracle");
    }

    let (status, _, key) = get(
        &http,
        &format!("{}?{API}", cert["kid"].as_str().expect("kid")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{key}");
    assert_eq!(key["managed"], true);
    assert_eq!(key["key"]["kid"], cert["kid"]);
    assert_jwk_is(&key["key"], &chain.leaf_key.subject_public_key_info());
}

#[tokio::test]
async fn preserve_cert_order_keeps_the_pfx_bag_order() {
    let (em, http, token) = setup().await;
    let chain = chain(&rcgen::PKCS_RSA_SHA256);
    let opts = CertImportOptions {
        preserve_cert_order: true,
        ..CertImportOptions::default()
    };
    em.state()
        .import_certificate_pfx("kv1", "ordered", &pfx(&chain, ""), None, opts)
        .expect("import");
    let (_, _, cert) = get(&http, &url(&em, "/certificates/ordered"), Some(&token)).await;
    assert_eq!(cert["preserveCertOrder"], true);
    assert_eq!(cert["policy"]["key_props"]["kty"], "RSA");
    assert_eq!(cert["policy"]["key_props"]["key_size"], 2048);
    let (_, _, secret) = get(&http, &url(&em, "/secrets/ordered"), Some(&token)).await;
    let stored = STANDARD
        .decode(secret["value"].as_str().expect("value"))
        .expect("base64");
    let archive = Pkcs12Archive::from_pkcs12(&stored, "").expect("opens");
    let ders: Vec<&[u8]> = archive.certs.iter().map(|b| b.cert.as_der()).collect();
    assert_eq!(
        ders,
        vec![&chain.root[..], &chain.intermediate[..], &chain.leaf[..]]
    );
    let (_, _, key) = get(&http, &url(&em, "/keys/ordered"), Some(&token)).await;
    assert_jwk_is(&key["key"], &chain.leaf_key.subject_public_key_info());
    if openssl_available() {
        let certs = openssl_pkcs12(&stored, &["-nokeys"]);
        assert_eq!(
            certs.matches("-----BEGIN CERTIFICATE-----").count(),
            3,
            "{certs}"
        );
    }
}

#[tokio::test]
async fn pfx_made_by_openssl_imports() {
    if !openssl_available() {
        eprintln!("openssl not on PATH: skipping");
        return;
    }
    let (em, http, token) = setup().await;
    let chain = chain(&rcgen::PKCS_ECDSA_P384_SHA384);
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key.pem");
    let certs = dir.path().join("certs.pem");
    let out = dir.path().join("made.pfx");
    std::fs::write(&key, chain.leaf_key.serialize_pem()).expect("key");
    std::fs::write(
        &certs,
        format!("{}{}{}", chain.pem[2], chain.pem[1], chain.pem[0]),
    )
    .expect("certs");
    let status = Command::new("openssl")
        .args([
            "pkcs12",
            "-export",
            "-passout",
            &format!("pass:{PFX_PASSWORD}"),
        ])
        .arg("-inkey")
        .arg(&key)
        .arg("-in")
        .arg(&certs)
        .arg("-out")
        .arg(&out)
        .status()
        .expect("openssl runs");
    assert!(status.success());
    let made = std::fs::read(&out).expect("PFX");
    assert!(matches!(
        em.state().import_certificate_pfx(
            "kv1",
            "os",
            &made,
            Some("wrong"),
            CertImportOptions::default()
        ),
        Err(StateError::InvalidCertificate(_))
    ));
    em.state()
        .import_certificate_pfx(
            "kv1",
            "os",
            &made,
            Some(PFX_PASSWORD),
            CertImportOptions::default(),
        )
        .expect("import");
    let (_, _, cert) = get(&http, &url(&em, "/certificates/os"), Some(&token)).await;
    assert_eq!(
        STANDARD
            .decode(cert["cer"].as_str().expect("cer"))
            .expect("b64"),
        chain.leaf
    );
    let (_, _, secret) = get(&http, &url(&em, "/secrets/os"), Some(&token)).await;
    let stored = STANDARD
        .decode(secret["value"].as_str().expect("value"))
        .expect("base64");
    let certs = openssl_pkcs12(&stored, &["-nokeys"]);
    assert_eq!(
        certs.matches("-----BEGIN CERTIFICATE-----").count(),
        3,
        "{certs}"
    );
}

#[tokio::test]
async fn pem_import_keeps_the_pem_text_as_the_secret() {
    let (em, http, token) = setup().await;
    let chain = chain(&rcgen::PKCS_ECDSA_P521_SHA512);
    // Chain leaf-last, key in the middle: any order is accepted.
    let pem = format!(
        "{}{}{}{}",
        chain.pem[0],
        chain.leaf_key.serialize_pem(),
        chain.pem[1],
        chain.pem[2]
    );
    let version = em
        .state()
        .import_certificate_pem("kv1", "c-pem", &pem, CertImportOptions::default())
        .expect("import");
    let (status, _, cert) = get(
        &http,
        &url(&em, &format!("/certificates/c-pem/{version}/")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cert}");
    assert_eq!(
        STANDARD
            .decode(cert["cer"].as_str().expect("cer"))
            .expect("b64"),
        chain.leaf
    );
    assert_eq!(
        cert["policy"]["secret_props"]["contentType"],
        "application/x-pem-file"
    );
    assert_eq!(cert["policy"]["key_props"]["crv"], "P-521");
    assert!(
        cert["kid"]
            .as_str()
            .is_some_and(|k| k.ends_with(&format!("/keys/c-pem/{version}")))
    );
    assert!(
        cert["sid"]
            .as_str()
            .is_some_and(|s| s.ends_with(&format!("/secrets/c-pem/{version}")))
    );
    let (status, _, secret) = get(
        &http,
        &url(&em, &format!("/secrets/c-pem/{version}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(secret["value"], pem);
    assert_eq!(secret["contentType"], "application/x-pem-file");
    assert_eq!(secret["managed"], true);
    let (_, _, key) = get(&http, &url(&em, "/keys/c-pem"), Some(&token)).await;
    assert_jwk_is(&key["key"], &chain.leaf_key.subject_public_key_info());

    let other = KeyPair::generate().expect("other key");
    let mismatched = format!("{}{}", chain.pem[2], other.serialize_pem());
    assert!(matches!(
        em.state().import_certificate_pem(
            "kv1",
            "c-bad",
            &mismatched,
            CertImportOptions::default()
        ),
        Err(StateError::InvalidCertificate(_))
    ));
}

#[tokio::test]
async fn disabled_certificate_versions_are_403_for_cert_secret_and_key() {
    let (em, http, token) = setup().await;
    let chain = chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let pem = format!("{}{}", chain.leaf_key.serialize_pem(), chain.pem[2]);
    let state = em.state();
    let v1 = state
        .import_certificate_pem("kv1", "c1", &pem, CertImportOptions::default())
        .expect("v1");
    let v2 = state
        .import_certificate_pfx(
            "kv1",
            "c1",
            &pfx(&chain, ""),
            None,
            CertImportOptions::default(),
        )
        .expect("v2");
    state
        .set_certificate_enabled("kv1", "c1", &v2, false)
        .expect("disable");
    for (path, inner) in [
        ("/certificates/c1".to_owned(), "CertificateDisabled"),
        (format!("/certificates/c1/{v2}"), "CertificateDisabled"),
        ("/secrets/c1/".to_owned(), "SecretDisabled"),
        (format!("/secrets/c1/{v2}"), "SecretDisabled"),
        ("/keys/c1".to_owned(), "KeyDisabled"),
    ] {
        let (status, _, body) = get(&http, &url(&em, &path), Some(&token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(body["error"]["innererror"]["code"], inner, "{path}");
        assert!(!body.to_string().contains("PRIVATE"), "{path}");
    }
    for path in [
        format!("/certificates/c1/{v1}"),
        format!("/secrets/c1/{v1}"),
        format!("/keys/c1/{v1}"),
    ] {
        let (status, _, _) = get(&http, &url(&em, &path), Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    state
        .set_certificate_enabled("kv1", "c1", &v2, true)
        .expect("enable");
    let (status, _, _) = get(&http, &url(&em, "/secrets/c1"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);

    for path in [
        "/certificates/nope",
        "/certificates/c1/0123456789abcdef0123456789abcdef",
        "/certificates/nope/versions",
    ] {
        let (status, _, body) = get(&http, &url(&em, path), Some(&token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "CertificateNotFound", "{path}");
    }
    // A certificate's secret cannot be overwritten through the data plane.
    let resp = http
        .put(url(&em, "/secrets/c1"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"value":"x"}"#)
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn certificate_versions_page_and_listings() {
    let (em, http, token) = setup().await;
    let chain = chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let pem = format!("{}{}", chain.leaf_key.serialize_pem(), chain.pem[2]);
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let opts = CertImportOptions {
                created: Some(1_767_225_600 + i),
                ..CertImportOptions::default()
            };
            em.state()
                .import_certificate_pem("kv1", "paged", &pem, opts)
                .expect("import")
        })
        .collect();
    assert_eq!(
        em.state()
            .certificate_versions("kv1", "paged")
            .expect("ids"),
        ids
    );
    let (status, _, page) = get(
        &http,
        &url(&em, "/certificates/paged/versions?maxresults=2"),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed: Vec<&str> = page["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|v| v["id"].as_str().expect("id"))
        .collect();
    let base = origin(&em);
    assert_eq!(
        listed,
        ids[..2]
            .iter()
            .map(|id| format!("{base}/certificates/paged/{id}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(page["value"][0]["attributes"]["created"], 1_767_225_600);
    assert!(page["value"][0].get("cer").is_none());
    let next = page["nextLink"].as_str().expect("nextLink");
    assert!(
        next.starts_with(&format!("{base}/certificates/paged/versions?")),
        "{next}"
    );
    let (_, _, last) = get(&http, next, Some(&token)).await;
    assert_eq!(
        last["value"][0]["id"],
        format!("{base}/certificates/paged/{}", ids[2])
    );
    assert!(last["nextLink"].is_null());

    let (_, _, current) = get(&http, &url(&em, "/certificates/paged"), Some(&token)).await;
    assert_eq!(
        current["id"],
        format!("{base}/certificates/paged/{}", ids[2])
    );
    let (_, _, secrets) = get(&http, &url(&em, "/secrets/paged/versions"), Some(&token)).await;
    assert_eq!(secrets["value"].as_array().map(Vec::len), Some(3));
    assert_eq!(secrets["value"][0]["managed"], true);
    let (_, _, list) = get(&http, &url(&em, "/certificates"), Some(&token)).await;
    assert_eq!(list["value"][0]["id"], format!("{base}/certificates/paged"));
    let (status, _, policy) =
        get(&http, &url(&em, "/certificates/paged/policy"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(policy["id"], format!("{base}/certificates/paged/policy"));
}

#[tokio::test]
async fn access_lists_and_counters_cover_keys_and_certificates() {
    let (em, http, token) = setup().await;
    let chain = chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let pem = format!("{}{}", chain.leaf_key.serialize_pem(), chain.pem[2]);
    em.state()
        .create_key("kv1", "K1", KeySpec::ec("P-256"))
        .expect("key");
    em.state()
        .import_certificate_pem("kv1", "C1", &pem, CertImportOptions::default())
        .expect("cert");
    em.state().reset_counters();

    let denied = secret_token(&em, &http, DENIED_CLIENT, DENIED_SECRET).await;
    for (path, kind) in [("/keys/k1", "keys"), ("/certificates/c1", "certificates")] {
        let (status, _, body) = get(&http, &url(&em, path), Some(&denied)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"]["innererror"]["code"], "AccessDenied");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("does not have {kind} get permission")),
            "{message}"
        );
    }
    for path in [
        "/keys/k1/",
        "/keys/k1/versions",
        "/certificates/c1",
        "/certificates/c1/versions",
    ] {
        let (status, _, _) = get(&http, &url(&em, path), Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, _, _) = get(&http, &url(&em, "/keys/k1"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let counters = em.state().counters();
    assert_eq!(counters.per_object.get("kv1/keys/K1"), Some(&3));
    assert_eq!(counters.per_object.get("kv1/certificates/C1"), Some(&3));
    assert_eq!(counters.total, 7);
}

/// `RequestBuilder::json` needs reqwest's `json` feature; this sends the same thing.
fn with_json(req: reqwest::RequestBuilder, value: &Value) -> reqwest::RequestBuilder {
    req.header("content-type", "application/json")
        .body(value.to_string())
}

fn admin_url(em: &Emulator, path: &str) -> String {
    format!("https://localhost:{}/admin{path}", em.port())
}

#[tokio::test]
async fn admin_routes_create_import_and_disable_keys_and_certificates() {
    let (em, http, token) = setup().await;
    let send = |req: reqwest::RequestBuilder| async move {
        let resp = req.send().await.expect("admin request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (status, text)
    };
    let (status, text) = send(with_json(
        http.post(admin_url(&em, "/vaults/kv1/keys/ak")),
        &json!({"kty": "EC", "crv": "P-384"}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let key_version = serde_json::from_str::<Value>(&text).expect("json")["version"]
        .as_str()
        .expect("version")
        .to_owned();
    let (_, _, key) = get(&http, &url(&em, "/keys/ak"), Some(&token)).await;
    assert_eq!(key["key"]["crv"], "P-384");

    let test_key = KeyPair::generate().expect("key");
    let (status, text) = send(with_json(
        http.post(admin_url(&em, "/vaults/kv1/keys/ik/import")),
        &json!({"pem": test_key.serialize_pem(), "hsm": true}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (_, _, key) = get(&http, &url(&em, "/keys/ik"), Some(&token)).await;
    assert_eq!(key["key"]["kty"], "EC-HSM");
    assert_jwk_is(&key["key"], &test_key.subject_public_key_info());

    let (status, _) = send(with_json(
        http.patch(admin_url(
            &em,
            &format!("/vaults/kv1/keys/ak/{key_version}"),
        )),
        &json!({"enabled": false}),
    ))
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = get(&http, &url(&em, "/keys/ak"), Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, text) = send(with_json(
        http.post(admin_url(&em, "/vaults/kv1/keys/bad")),
        &json!({"kty": "RSA", "size": 1000}),
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");

    let chain = chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let body = json!({"pfx": STANDARD.encode(pfx(&chain, PFX_PASSWORD)), "password": "not-the-password-Jj2"});
    let (status, text) = send(with_json(
        http.post(admin_url(&em, "/vaults/kv1/certificates/ac/import")),
        &body,
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.contains("BadParameter") && !text.contains("not-the-password-Jj2"),
        "{text}"
    );
    let body = json!({"pfx": STANDARD.encode(pfx(&chain, PFX_PASSWORD)), "password": PFX_PASSWORD, "tags": {"team": "a"}});
    let (status, text) = send(with_json(
        http.post(admin_url(&em, "/vaults/kv1/certificates/ac/import")),
        &body,
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let cert_version = serde_json::from_str::<Value>(&text).expect("json")["version"]
        .as_str()
        .expect("version")
        .to_owned();
    let (_, _, cert) = get(&http, &url(&em, "/certificates/ac"), Some(&token)).await;
    assert_eq!(cert["tags"]["team"], "a");
    let body = json!({"pem": format!("{}{}", chain.pem[2], chain.leaf_key.serialize_pem())});
    let (status, text) = send(with_json(
        http.post(admin_url(&em, "/vaults/kv1/certificates/ac/import")),
        &body,
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");

    let (status, _) = send(with_json(
        http.patch(admin_url(
            &em,
            &format!("/vaults/kv1/certificates/ac/{cert_version}"),
        )),
        &json!({"enabled": false}),
    ))
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = get(
        &http,
        &url(&em, &format!("/secrets/ac/{cert_version}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["innererror"]["code"], "SecretDisabled");
    let (status, text) = send(with_json(
        http.patch(admin_url(&em, "/vaults/kv1/certificates/nope/00")),
        &json!({"enabled": false}),
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(text.contains("CertificateNotFound"), "{text}");
}

#[tokio::test]
async fn seed_creates_keys_and_imports_certificates() {
    let chain = chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let seed = json!({
        "clients": [{"client_id": SP_CLIENT, "tenant_id": TENANT, "secret": SP_SECRET}],
        "vaults": [{
            "name": "kv1",
            "allowed_clients": [SP_CLIENT],
            "keys": [
                {"name": "k-ec", "versions": [{"kty": "EC", "crv": "P-256", "enabled": false}, {"kty": "EC", "curve": "P-384"}]},
                {"name": "k-oct", "versions": [{"kty": "oct-HSM"}]}
            ],
            "certificates": [
                {"name": "web", "versions": [
                    {"pfx": STANDARD.encode(pfx(&chain, PFX_PASSWORD)), "password": PFX_PASSWORD, "created": 1767225600},
                    {"pem": format!("{}{}", chain.leaf_key.serialize_pem(), chain.pem[2]), "enabled": false}
                ]}
            ]
        }]
    });
    let seed = Seed::from_json(seed.to_string().as_bytes()).expect("seed parses");
    let em = Emulator::start(keyvault_emulator::EmulatorConfig {
        seed: Some(seed),
        ..Default::default()
    })
    .await
    .expect("start");
    let http = client(&em);
    let token = sp_token(&em, &http).await;
    let (_, _, key) = get(&http, &url(&em, "/keys/k-ec"), Some(&token)).await;
    assert_eq!(key["key"]["crv"], "P-384");
    assert_eq!(
        em.state()
            .key_versions("kv1", "k-ec")
            .expect("versions")
            .len(),
        2
    );
    let (status, _, _) = get(&http, &url(&em, "/certificates/web"), Some(&token)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the current (PEM) version is disabled"
    );
    let versions = em
        .state()
        .certificate_versions("kv1", "web")
        .expect("versions");
    let (status, _, cert) = get(
        &http,
        &url(&em, &format!("/certificates/web/{}", versions[0])),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cert["attributes"]["created"], 1_767_225_600);

    let bad = r#"{"vaults": [{"name": "kv1", "certificates": [{"name": "c", "versions": [{"pem": "x", "pfx": "y"}]}]}]}"#;
    let seed = Seed::from_json(bad.as_bytes()).expect("parses");
    assert!(matches!(
        em.state().apply_seed(seed),
        Err(StateError::InvalidCertificate(_))
    ));
    assert!(Seed::from_json(br#"{"vaults": [{"name": "kv1", "keys": [{"name": "k", "versions": [{"type": "EC"}]}]}]}"#).is_err());
}

/// `openssl x509 -noout -fingerprint -sha1` of a DER certificate, as raw bytes.
fn openssl_sha1_fingerprint(der: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("leaf.der");
    std::fs::write(&path, der).expect("write DER");
    let out = Command::new("openssl")
        .args([
            "x509",
            "-inform",
            "DER",
            "-noout",
            "-fingerprint",
            "-sha1",
            "-in",
        ])
        .arg(&path)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (_, hex_colons) = text.trim().split_once('=').expect("Fingerprint=…");
    hex::decode(hex_colons.replace(':', "")).expect("hex fingerprint")
}

#[tokio::test]
async fn certificates_carry_the_sha1_thumbprint_of_the_leaf_as_x5t() {
    use sha1::Digest as _;
    let (em, http, token) = setup().await;
    let first = chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let second = chain(&rcgen::PKCS_RSA_SHA256);
    let state = em.state();
    let v1 = state
        .import_certificate_pfx(
            "kv1",
            "thumb",
            &pfx(&first, PFX_PASSWORD),
            Some(PFX_PASSWORD),
            CertImportOptions::default(),
        )
        .expect("v1");
    let pem = format!("{}{}", second.leaf_key.serialize_pem(), second.pem[2]);
    let v2 = state
        .import_certificate_pem("kv1", "thumb", &pem, CertImportOptions::default())
        .expect("v2");
    let expected = |leaf: &[u8]| {
        let digest = sha1::Sha1::digest(leaf).to_vec();
        assert_eq!(digest.len(), 20);
        if openssl_available() {
            assert_eq!(openssl_sha1_fingerprint(leaf), digest, "openssl disagrees");
        }
        URL_SAFE_NO_PAD.encode(digest)
    };
    let (x1, x2) = (expected(&first.leaf), expected(&second.leaf));
    assert_ne!(x1, x2);
    assert_eq!(x1.len(), 27, "20 bytes, base64url without padding: {x1}");

    // Bundles: the pinned version and the current one.
    for (path, want, cer) in [
        (format!("/certificates/thumb/{v1}"), &x1, &first.leaf),
        (format!("/certificates/thumb/{v2}"), &x2, &second.leaf),
        ("/certificates/thumb".to_owned(), &x2, &second.leaf),
    ] {
        let (status, _, cert) = get(&http, &url(&em, &path), Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {cert}");
        assert_eq!(cert["x5t"].as_str(), Some(want.as_str()), "{path}");
        assert_eq!(b64url(&cert["x5t"]).len(), 20, "{path}");
        // x5t is the thumbprint of exactly the `cer` served beside it.
        let served = STANDARD
            .decode(cert["cer"].as_str().expect("cer"))
            .expect("b64");
        assert_eq!(&served, cer, "{path}");
        assert_eq!(
            URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&served)),
            *want,
            "{path}"
        );
    }

    // Version listing items, in insertion order.
    let (status, _, page) = get(
        &http,
        &url(&em, "/certificates/thumb/versions"),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed: Vec<&str> = page["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|v| v["x5t"].as_str().expect("x5t on a listing item"))
        .collect();
    assert_eq!(listed, [x1.as_str(), x2.as_str()]);

    // Certificate listing items: the current version's thumbprint.
    let (status, _, list) = get(&http, &url(&em, "/certificates"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let item = list["value"]
        .as_array()
        .expect("value")
        .iter()
        .find(|v| {
            v["id"]
                .as_str()
                .is_some_and(|id| id.ends_with("/certificates/thumb"))
        })
        .expect("thumb listed");
    assert_eq!(item["x5t"].as_str(), Some(x2.as_str()));

    // A disabled version is not served, x5t or not.
    state
        .set_certificate_enabled("kv1", "thumb", &v2, false)
        .expect("disable");
    let (status, _, body) = get(&http, &url(&em, "/certificates/thumb"), Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.get("x5t").is_none());
}
