//! SEV-SNP Secure Key Release end to end, daemon client against the emulator: attestation
//! (`AttestationClient::attest`) and release (`KeyVault::release_key`) agree on the wire
//! formats, and the key the daemon unwraps is exactly the one the emulator holds.
//!
//! Evidence comes from `vaultlet-snp`'s synthetic chain (needs the `openssl` CLI).

use std::collections::HashMap;
use std::sync::Arc;

use keyvault_emulator::{ClientSpec, Emulator, EmulatorConfig, ExportableKeySpec, release_policy};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use vaultlet::auth::select_identity;
use vaultlet::keyvault::{
    AttestError, Cause, FetchErrorKind, KeyVault, SnpEvidence, generate_runtime_key,
};
use vaultlet::params::parse_volume_context;
use vaultlet_snp::Generation;
use vaultlet_snp::testing::{SyntheticCa, VekSpec, matching_report, signed_report};
use vaultlet_tests::{TENANT, attrs, objects, test_config};

const CLIENT: &str = "44444444-4444-4444-4444-444444444444";
const CLIENT_SECRET: &str = "skr-client-secret-Vb8";
const MEASUREMENT: [u8; 48] = [0x11; 48];

struct World {
    em: Emulator,
    kv: KeyVault,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let em = Emulator::start(EmulatorConfig {
        tls_dir: Some(dir.path().to_path_buf()),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator");
    em.state().add_client(ClientSpec {
        client_id: CLIENT.into(),
        tenant_id: Some(TENANT.into()),
        secret: Some(CLIENT_SECRET.into()),
        federated_tokens: vec![],
    });
    em.state().add_vault("kv-skr", vec![CLIENT.into()]);
    let kv = KeyVault::new(&test_config(dir.path(), &em), Arc::default()).expect("keyvault");
    World { em, kv, _dir: dir }
}

/// Evidence for `runtime_data`, with `measurement`, and the synthetic ARK to trust.
fn evidence(runtime_data: &[u8], measurement: [u8; 48]) -> (SnpEvidence, Vec<u8>) {
    let ca = SyntheticCa::get(Generation::Milan).expect("synthetic CA (openssl CLI)");
    let vek = ca.issue(&VekSpec::vcek(Generation::Milan)).expect("VCEK");
    let mut report = matching_report(Generation::Milan, &vek);
    report.measurement = measurement;
    report.report_data = [0; 64];
    report.report_data[..32].copy_from_slice(&Sha256::digest(runtime_data));
    let raw = signed_report(&mut report, &vek);
    let pem: String = ca
        .certs_for(&vek)
        .into_iter()
        .map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der)))
        .collect();
    (
        SnpEvidence {
            report: raw,
            cert_chain_pem: pem.into_bytes(),
            runtime_data: runtime_data.to_vec(),
        },
        ca.ark.clone(),
    )
}

fn volume(key: &str) -> vaultlet::params::VolumeParams {
    let mut ctx = attrs(
        "kv-skr",
        None,
        &objects(&[&format!("objectName: {key}\nobjectType: key")]),
    );
    ctx.insert("csi.storage.k8s.io/pod.namespace".into(), "ns".into());
    ctx.insert("csi.storage.k8s.io/pod.uid".into(), "uid-1".into());
    parse_volume_context(&ctx).expect("volume params")
}

fn secrets() -> HashMap<String, String> {
    [
        ("clientid".to_string(), CLIENT.to_string()),
        ("clientsecret".to_string(), CLIENT_SECRET.to_string()),
    ]
    .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_key_unwraps_to_exactly_the_key_the_vault_holds() {
    let w = world().await;
    let policy = release_policy(
        &w.em.attestation_url(),
        &[
            (
                "x-ms-sevsnpvm-launchmeasurement",
                json!(hex::encode(MEASUREMENT)),
            ),
            ("x-ms-sevsnpvm-is-debuggable", json!(false)),
        ],
    );
    for (name, spec) in [
        ("skr-rsa", ExportableKeySpec::rsa(policy.clone())),
        ("skr-ec", ExportableKeySpec::ec_p256(policy.clone())),
    ] {
        w.em.state()
            .create_exportable_key("kv-skr", name, spec)
            .expect("key");
    }
    let (runtime_der, jwk) = generate_runtime_key().expect("runtime key");
    let runtime_data = json!({ "keys": [jwk] }).to_string().into_bytes();
    let (evidence, ark) = evidence(&runtime_data, MEASUREMENT);
    w.em.state().set_attestation_extra_roots(vec![ark]);

    let client =
        w.kv.attestation_client(&w.em.attestation_url())
            .expect("client");
    let token = client.attest(&evidence).await.expect("attested");
    let claims = token.claims().expect("claims");
    assert_eq!(claims["x-ms-runtime"]["keys"][0]["n"], jwk["n"]);
    assert!(!format!("{token:?}").contains('.'));

    for name in ["skr-rsa", "skr-ec"] {
        let params = volume(name);
        let identity =
            select_identity(&params, &secrets(), &HashMap::new(), &w.em.authority_host())
                .expect("identity");
        let pem =
            w.kv.release_key(&params, &identity, &params.objects[0], &token, &runtime_der)
                .await
                .expect("released");
        let parsed = pem::parse(pem.expose()).expect("PEM");
        assert_eq!(parsed.tag(), "PRIVATE KEY");
        let held =
            w.em.state()
                .exportable_key_pkcs8("kv-skr", name, None)
                .expect("held key");
        assert_eq!(parsed.contents(), held.as_slice(), "{name}");
    }
    assert_eq!(w.em.state().counters().releases, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_with_an_unmet_policy_is_permission_denied_naming_the_vault() {
    let w = world().await;
    let policy = release_policy(
        &w.em.attestation_url(),
        &[(
            "x-ms-sevsnpvm-launchmeasurement",
            json!(hex::encode([0x99u8; 48])),
        )],
    );
    w.em.state()
        .create_exportable_key("kv-skr", "skr", ExportableKeySpec::rsa(policy))
        .expect("key");
    let (runtime_der, jwk) = generate_runtime_key().expect("runtime key");
    let runtime_data = json!({ "keys": [jwk] }).to_string().into_bytes();
    let (evidence, ark) = evidence(&runtime_data, MEASUREMENT);
    w.em.state().set_attestation_extra_roots(vec![ark]);
    let token =
        w.kv.attestation_client(&w.em.attestation_url())
            .expect("client")
            .attest(&evidence)
            .await
            .expect("attested");
    let params = volume("skr");
    let identity = select_identity(&params, &secrets(), &HashMap::new(), &w.em.authority_host())
        .expect("identity");
    let err =
        w.kv.release_key(&params, &identity, &params.objects[0], &token, &runtime_der)
            .await
            .expect_err("policy not met");
    assert!(
        matches!(&err.kind, FetchErrorKind::Service(Cause::Forbidden { code }) if code.contains("release policy not met")),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("kv-skr") && text.contains("release policy not met"),
        "{text}"
    );
    let token_text = String::from_utf8_lossy(token.expose()).into_owned();
    assert!(!text.contains(&token_text));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_evidence_names_the_host_and_the_failed_check() {
    let w = world().await;
    let (evidence, _ark) = evidence(b"{\"keys\":[]}", MEASUREMENT);
    // The synthetic ARK is not trusted: root_pin fails.
    let err =
        w.kv.attestation_client(&w.em.attestation_url())
            .expect("client")
            .attest(&evidence)
            .await
            .expect_err("rejected");
    match &err {
        AttestError::Rejected {
            host,
            status,
            message,
            ..
        } => {
            assert_eq!(host, "attest.localhost");
            assert_eq!(*status, 400);
            assert!(message.contains("root_pin"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        w.kv.attestation_client("http://attest.localhost:1"),
        Err(AttestError::BadUrl { .. })
    ));
}
