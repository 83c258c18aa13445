//! Confidential volumes (`vaultlet.dev/attestation: sev-snp`) through the
//! kubelet simulator, with the `sim:` evidence source (synthetic reports
//! signed by a synthetic VCEK, the synthetic ARK as an extra root): served
//! while the node's evidence verifies under the policy, refused with
//! FAILED_PRECONDITION naming the failed check otherwise, with no Key Vault
//! request; and Secure Key Release end to end (the emulator's attestation
//! service and key release), the mounted key equal to the vault's.
//!
//! The synthetic chain needs the `openssl` CLI; without it the tests print
//! why they skip (`VAULTLET_REQUIRE_SHARED=1` or
//! `VAULTLET_REQUIRE_PRIVILEGED=1` makes that a failure).

use std::collections::HashMap;
use std::path::Path;

use tonic::Code;
use vaultlet::attest::sim::keyfile_pem;
use vaultlet::attest::{AttestationConfig, SourceSpec};
use vaultlet_snp::policy::Hex;
use vaultlet_snp::report::GuestPolicy;
use vaultlet_snp::testing::{SyntheticCa, VekSpec, matching_report};
use vaultlet_snp::{Generation, Policy, Report};
use vaultlet_tests::{Env, assert_nothing_at, attrs, objects, privileged_or_skip};

const VAULT: &str = "kv-confidential";
const CLIENT: &str = "0c0c0c0c-1111-2222-3333-444444444444";
const ATTESTATION: &str = "vaultlet.dev/attestation";

fn has_openssl(test: &str) -> bool {
    let ok = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let required = ["VAULTLET_REQUIRE_SHARED", "VAULTLET_REQUIRE_PRIVILEGED"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|x| x == "1"));
        assert!(!required, "{test}: the openssl CLI is missing");
        eprintln!("skipping {test}: the openssl CLI is missing (synthetic SEV-SNP chain)");
    }
    ok
}

/// Attestation settings for a `sim:` source in `dir`: a KEYFILE with the
/// synthetic VCEK key, its chain and a template made from `report` (the
/// matching report, adjusted), the synthetic ARK as extra root, `policy`.
fn sim_attestation(
    dir: &Path,
    adjust: impl FnOnce(&mut Report),
    policy: Policy,
) -> AttestationConfig {
    let ca = SyntheticCa::get(Generation::Milan).expect("synthetic CA");
    let vek = ca.issue(&VekSpec::vcek(Generation::Milan)).expect("VCEK");
    let mut template = matching_report(Generation::Milan, &vek);
    adjust(&mut template);
    let keyfile = dir.join("sim-vcek.pem");
    std::fs::write(
        &keyfile,
        keyfile_pem(&vek.key, &ca.certs_for(&vek), Some(&template.to_bytes())),
    )
    .expect("write KEYFILE");
    AttestationConfig {
        source: SourceSpec::Sim(keyfile),
        policy,
        extra_roots: vec![ca.ark.clone()],
        ..AttestationConfig::default()
    }
}

async fn env_with(adjust: impl FnOnce(&mut Report), policy: Policy) -> (Env, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let attestation = sim_attestation(dir.path(), adjust, policy);
    let env = Env::start_with(|c| c.attestation = attestation).await;
    (env, dir)
}

fn confidential_attrs() -> HashMap<String, String> {
    let mut a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&["objectName: s1\nobjectType: secret"]),
    );
    a.insert(ATTESTATION.into(), "sev-snp".into());
    a
}

/// Every request the emulator saw (Key Vault and token endpoint).
fn requests(env: &Env) -> (u64, u64) {
    let c = env.emulator.state().counters();
    (c.total, c.token_requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_volume_is_served_when_the_policy_passes() {
    let test = "confidential_volume_is_served_when_the_policy_passes";
    if !has_openssl(test) || !privileged_or_skip(test) {
        return;
    }
    let policy = Policy {
        measurements: vec![Hex([0x11; 48])],
        ..Policy::default()
    };
    let (mut env, _dir) = env_with(|_| {}, policy).await;
    env.vault(VAULT, &[CLIENT]);
    let value = "confidential-value-0123456789";
    env.secret(VAULT, "s1", value);
    let pod = env.wi_pod(CLIENT, "team-c", "uid-conf-ok");
    let target = env
        .kubelet
        .publish(&pod, "conf", &confidential_attrs(), &HashMap::new())
        .await
        .expect("a confidential volume is served on an attested node");
    assert_eq!(
        std::fs::read_to_string(target.join("s1")).expect("read"),
        value
    );
    env.kubelet
        .unpublish(&pod.uid, "conf")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_volume_is_refused_on_a_measurement_the_policy_does_not_allow() {
    if !has_openssl("confidential_volume_is_refused_on_a_measurement_the_policy_does_not_allow") {
        return;
    }
    let policy = Policy {
        measurements: vec![Hex([0x99; 48])],
        ..Policy::default()
    };
    let (mut env, _dir) = env_with(|_| {}, policy).await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "never-fetched-0123456789");
    let pod = env.wi_pod(CLIENT, "team-c", "uid-conf-meas");
    let err = env
        .kubelet
        .publish(&pod, "conf", &confidential_attrs(), &HashMap::new())
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message()
            .starts_with("node attestation failed at check policy.measurement"),
        "{}",
        err.message()
    );
    assert_eq!(requests(&env), (0, 0), "nothing may be fetched");
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "conf"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_volume_is_refused_on_a_debug_guest() {
    if !has_openssl("confidential_volume_is_refused_on_a_debug_guest") {
        return;
    }
    let (mut env, _dir) = env_with(
        |r| r.policy = GuestPolicy(r.policy.0 | 1 << 19),
        Policy::default(),
    )
    .await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "never-fetched-0123456789");
    let pod = env.wi_pod(CLIENT, "team-c", "uid-conf-debug");
    let err = env
        .kubelet
        .publish(&pod, "conf", &confidential_attrs(), &HashMap::new())
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message()
            .starts_with("node attestation failed at check policy.debug"),
        "{}",
        err.message()
    );
    assert_eq!(requests(&env), (0, 0), "nothing may be fetched");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_outside_a_confidential_volume_is_invalid_argument() {
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    let pod = env.wi_pod(CLIENT, "team-c", "uid-release");
    let a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&[
            "objectName: s1\nobjectType: secret",
            "objectName: k1\nobjectType: key\nrelease: true",
        ]),
    );
    let err = env
        .kubelet
        .publish(&pod, "plain", &a, &HashMap::new())
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("objects[1].release"),
        "{}",
        err.message()
    );
    assert_eq!(requests(&env), (0, 0));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_volume_on_a_node_without_evidence_names_the_missing_source() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("no-such-report.bin");
    let mut env = Env::start_with(|c| c.attestation.source = SourceSpec::File(missing)).await;
    env.vault(VAULT, &[CLIENT]);
    let pod = env.wi_pod(CLIENT, "team-c", "uid-no-source");
    let err = env
        .kubelet
        .publish(&pod, "conf", &confidential_attrs(), &HashMap::new())
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message()
            .starts_with("node attestation failed: attestation source file"),
        "{}",
        err.message()
    );
    assert_eq!(requests(&env), (0, 0));
    env.stop().await;
}

/// The port of the emulator, from the vault DNS suffix the harness set
/// (`vault.localhost:PORT`): the attestation service is on the same port.
fn attestation_url(env: &Env) -> String {
    let suffix = env
        .config
        .keyvault_dns_suffix
        .clone()
        .expect("the harness sets a DNS suffix");
    let port = suffix.rsplit(':').next().expect("port");
    format!("https://attest.localhost:{port}")
}

/// Secure Key Release end to end through the kubelet simulator: the node's
/// `sim:` evidence goes to the emulator's attestation service, the token
/// releases an exportable key whose policy names the node's measurement,
/// and the mounted file is exactly the key the vault holds. A key whose
/// policy names another measurement is PERMISSION_DENIED, nothing mounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_key_mounts_and_matches_the_key_the_vault_holds() {
    let test = "a_released_key_mounts_and_matches_the_key_the_vault_holds";
    if !has_openssl(test) || !privileged_or_skip(test) {
        return;
    }
    let measurement = [0x11u8; 48];
    let dir = tempfile::tempdir().expect("dir");
    let attestation = sim_attestation(
        dir.path(),
        |r| r.measurement = measurement,
        Policy {
            measurements: vec![Hex(measurement)],
            ..Policy::default()
        },
    );
    let extra_roots = attestation.extra_roots.clone();
    let mut env = Env::start_with(|c| {
        c.attestation = attestation;
        let port = c
            .keyvault_dns_suffix
            .clone()
            .and_then(|s| s.rsplit(':').next().map(str::to_string))
            .expect("port");
        c.attestation.service = Some(format!("https://attest.localhost:{port}"));
    })
    .await;
    let service = attestation_url(&env);
    env.emulator
        .state()
        .set_attestation_extra_roots(extra_roots);
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "plain-next-to-released-0123456789");
    let granted = keyvault_emulator::release_policy(
        &service,
        &[(
            "x-ms-sevsnpvm-launchmeasurement",
            serde_json::json!(hex::encode(measurement)),
        )],
    );
    let refused = keyvault_emulator::release_policy(
        &service,
        &[(
            "x-ms-sevsnpvm-launchmeasurement",
            serde_json::json!(hex::encode([0x99u8; 48])),
        )],
    );
    for (name, policy) in [("granted-key", granted), ("refused-key", refused)] {
        env.emulator
            .state()
            .create_exportable_key(
                VAULT,
                name,
                keyvault_emulator::ExportableKeySpec::rsa(policy),
            )
            .expect("exportable key");
    }
    let volume = |key: &str| {
        let mut a = attrs(
            VAULT,
            Some(CLIENT),
            &objects(&[
                "objectName: s1\nobjectType: secret",
                &format!("objectName: {key}\nobjectType: key\nrelease: true"),
            ]),
        );
        a.insert(ATTESTATION.into(), "sev-snp".into());
        a
    };
    let pod = env.wi_pod(CLIENT, "team-c", "uid-conf-skr");
    let target = env
        .kubelet
        .publish(&pod, "conf", &volume("granted-key"), &HashMap::new())
        .await
        .expect("the key is released to the attested node");
    let mounted = std::fs::read(target.join("granted-key")).expect("released key file");
    let parsed = pem::parse(&mounted).expect("PEM");
    assert_eq!(parsed.tag(), "PRIVATE KEY");
    let held = env
        .emulator
        .state()
        .exportable_key_pkcs8(VAULT, "granted-key", None)
        .expect("held key");
    assert_eq!(parsed.contents(), held.as_slice(), "the vault's own key");
    assert_eq!(
        std::fs::read_to_string(target.join("s1")).expect("s1"),
        "plain-next-to-released-0123456789"
    );
    let c = env.emulator.state().counters();
    assert_eq!((c.attestations, c.releases), (1, 1), "{c:?}");

    let pod2 = env.wi_pod(CLIENT, "team-c", "uid-conf-skr-refused");
    let err = env
        .kubelet
        .publish(&pod2, "conf", &volume("refused-key"), &HashMap::new())
        .await
        .expect_err("the release policy names another measurement");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains(VAULT) && err.message().contains("release policy not met"),
        "{}",
        err.message()
    );
    assert_nothing_at(&env.kubelet.target_path(&pod2.uid, "conf"));
    env.kubelet
        .unpublish(&pod.uid, "conf")
        .await
        .expect("unpublish");
    env.stop().await;
}

/// Evidence without a VCEK (the certificate table carried only ASK and
/// ARK): the daemon fetches the VCEK from `--attestation-vcek-url` in AMD
/// KDS form (`/vcek/v1/Milan/{CHIP_ID hex}?blSPL=…`), here the emulator's
/// KDS endpoint on loopback, and the volume is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vcek_missing_from_the_evidence_is_fetched_from_the_kds_url() {
    let test = "a_vcek_missing_from_the_evidence_is_fetched_from_the_kds_url";
    if !has_openssl(test) || !privileged_or_skip(test) {
        return;
    }
    let ca = SyntheticCa::get(Generation::Milan).expect("synthetic CA");
    let vek = ca.issue(&VekSpec::vcek(Generation::Milan)).expect("VCEK");
    let template = matching_report(Generation::Milan, &vek);
    let dir = tempfile::tempdir().expect("dir");
    let keyfile = dir.path().join("sim-no-vcek.pem");
    // ASK and ARK only: no VCEK in the evidence.
    let chain_only: Vec<Vec<u8>> = ca.certs_for(&vek).into_iter().skip(1).collect();
    std::fs::write(
        &keyfile,
        keyfile_pem(&vek.key, &chain_only, Some(&template.to_bytes())),
    )
    .expect("write KEYFILE");
    let mut env = Env::start_with(|c| {
        let port = c
            .keyvault_dns_suffix
            .clone()
            .and_then(|s| s.rsplit(':').next().map(str::to_string))
            .expect("port");
        c.attestation = AttestationConfig {
            source: SourceSpec::Sim(keyfile.clone()),
            policy: Policy::default(),
            extra_roots: vec![ca.ark.clone()],
            vcek_url: format!("https://attest.localhost:{port}"),
            ..AttestationConfig::default()
        };
    })
    .await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "kds-fetched-vcek-0123456789");
    let pod = env.wi_pod(CLIENT, "team-c", "uid-conf-kds");
    // The KDS does not know this chip yet: no VCEK, no volume.
    let err = env
        .kubelet
        .publish(&pod, "conf", &confidential_attrs(), &HashMap::new())
        .await
        .expect_err("no VCEK anywhere");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "conf"));
    env.emulator
        .state()
        .add_vcek("Milan", &template.chip_id, vek.der.clone());
    let target = env
        .kubelet
        .publish(&pod, "conf", &confidential_attrs(), &HashMap::new())
        .await
        .expect("served once the VCEK came from the KDS URL");
    assert_eq!(
        std::fs::read_to_string(target.join("s1")).expect("read"),
        "kds-fetched-vcek-0123456789"
    );
    env.kubelet
        .unpublish(&pod.uid, "conf")
        .await
        .expect("unpublish");
    env.stop().await;
}
