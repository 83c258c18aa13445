//! A synthetic AMD-shaped chain (RSA-PSS ARK and ASK/ASVK, P-384 VEKs with
//! AMD's extensions, made by `vaultlet_snp::testing` through the openssl
//! CLI) used as an extra root: matching reports are accepted with
//! `non_amd_root`, and each kind of mismatch is rejected by the right check.
//! Synthetic certificates are valid from "now", so these tests verify at
//! the current time.

mod common;

use std::time::{Duration, SystemTime};

use common::synthetic_ca;
use vaultlet_snp::policy::{Hex, MinFirmware, MinTcb};
use vaultlet_snp::report::{GuestPolicy, KeyInfo, PlatformInfo, SigningKey};
use vaultlet_snp::sign::sign_report_bytes;
use vaultlet_snp::testing::{
    HwidEncoding, SyntheticCa, SyntheticVek, VekSpec, matching_report, signed_report,
};
use vaultlet_snp::{
    CheckId, Evidence, Generation, Outcome, Policy, PolicyCheck, Report, TcbParts, Verdict,
    Verifier,
};

struct Fixture {
    ca: std::sync::Arc<SyntheticCa>,
    vek: SyntheticVek,
    generation: Generation,
}

impl Fixture {
    fn new(test: &str, generation: Generation, spec: VekSpec) -> Option<Self> {
        let ca = synthetic_ca(test, generation)?;
        let vek = ca.issue(&spec).expect("issue VEK");
        Some(Self {
            ca,
            vek,
            generation,
        })
    }

    fn vcek(test: &str, generation: Generation) -> Option<Self> {
        Self::new(test, generation, VekSpec::vcek(generation))
    }

    fn report(&self) -> Report {
        matching_report(self.generation, &self.vek)
    }

    fn verifier(&self) -> Verifier {
        Verifier::new(vec![self.ca.ark.clone()])
    }

    fn verify_with(&self, report: &mut Report, policy: &Policy) -> Verdict {
        let bytes = signed_report(report, &self.vek);
        self.verify_bytes(&bytes, policy)
    }

    fn verify_bytes(&self, bytes: &[u8], policy: &Policy) -> Verdict {
        self.verifier().verify(
            &Evidence::new(bytes, self.ca.certs_for(&self.vek)),
            policy,
            SystemTime::now(),
        )
    }

    fn verify(&self, report: &mut Report) -> Verdict {
        self.verify_with(report, &Policy::default())
    }
}

/// A change to a report before it is signed.
type Tamper = dyn Fn(&mut Report);

fn assert_fails(v: &Verdict, id: CheckId) {
    assert!(!v.accepted, "{v}");
    assert_eq!(v.first_failure, Some(id), "{v}");
    assert_eq!(v.outcome(id), Some(Outcome::Fail));
}

#[test]
fn a_matching_report_is_accepted_with_non_amd_root_for_each_generation() {
    for g in [Generation::Milan, Generation::Genoa, Generation::Turin] {
        let Some(f) = Fixture::vcek("synthetic accept", g) else {
            return;
        };
        let v = f.verify(&mut f.report());
        assert!(v.accepted, "{g}\n{v}");
        assert!(v.non_amd_root);
        assert_eq!(v.generation, Some(g));
        assert!(
            v.to_string()
                .starts_with(&format!("verdict: accept, {g}, non-AMD root\n")),
            "{v}"
        );
        assert!(v.to_string().contains("\nroot_pin: ok ARK-"), "{v}");
    }
}

#[test]
fn a_v5_turin_report_with_mitigation_vectors_is_accepted() {
    let Some(f) = Fixture::vcek("v5 turin", Generation::Turin) else {
        return;
    };
    let mut r = f.report();
    r.version = 5;
    r.launch_mit_vector = Some(0x3);
    r.current_mit_vector = Some(0x7);
    let v = f.verify(&mut r);
    assert!(v.accepted, "{v}");
}

#[test]
fn a_v2_report_takes_its_generation_from_the_root_or_from_configuration() {
    let Some(f) = Fixture::vcek("v2 generation", Generation::Genoa) else {
        return;
    };
    let mut r = f.report();
    r.version = 2;
    r.cpuid = None;
    let v = f.verify(&mut r);
    assert!(v.accepted, "{v}");
    assert_eq!(
        v.check(CheckId::Generation).map(|c| c.detail.as_str()),
        Some("Genoa (ARK)")
    );
    let bytes = signed_report(&mut r, &f.vek);
    let configured = Verifier::new(vec![f.ca.ark.clone()])
        .with_generation(Generation::Milan)
        .verify(
            &Evidence::new(bytes, f.ca.certs_for(&f.vek)),
            &Policy::default(),
            SystemTime::now(),
        );
    // Configured Milan, chain is Genoa.
    assert_fails(&configured, CheckId::Chain);
}

#[test]
fn without_the_extra_root_the_chain_fails_root_pin() {
    let Some(f) = Fixture::vcek("no extra root", Generation::Milan) else {
        return;
    };
    let bytes = signed_report(&mut f.report(), &f.vek);
    let v = Verifier::default().verify(
        &Evidence::new(bytes, f.ca.certs_for(&f.vek)),
        &Policy::default(),
        SystemTime::now(),
    );
    assert_fails(&v, CheckId::RootPin);
    assert!(!v.non_amd_root);
}

#[test]
fn the_extra_root_may_be_left_out_of_the_evidence() {
    let Some(f) = Fixture::vcek("root not in evidence", Generation::Milan) else {
        return;
    };
    let bytes = signed_report(&mut f.report(), &f.vek);
    let v = f.verifier().verify(
        &Evidence::new(bytes, vec![f.vek.der.clone(), f.ca.ask.clone()]),
        &Policy::default(),
        SystemTime::now(),
    );
    assert!(v.accepted && v.non_amd_root, "{v}");
}

#[test]
fn a_cpuid_of_another_generation_fails_the_chain() {
    let Some(f) = Fixture::vcek("cpuid vs chain", Generation::Milan) else {
        return;
    };
    let mut r = f.report();
    r.cpuid = Some(vaultlet_snp::report::Cpuid {
        family: 0x19,
        model: 0x11,
        stepping: 0,
    });
    assert_fails(&f.verify(&mut r), CheckId::Chain);
    r.cpuid = Some(vaultlet_snp::report::Cpuid {
        family: 0x17,
        model: 0x31,
        stepping: 0,
    });
    assert_fails(&f.verify(&mut r), CheckId::Generation);
}

#[test]
fn a_mismatched_reported_tcb_fails_tcb() {
    let Some(f) = Fixture::vcek("tcb mismatch", Generation::Milan) else {
        return;
    };
    for change in [
        |t: &mut TcbParts| t.bl += 1,
        |t: &mut TcbParts| t.snp -= 1,
        |t: &mut TcbParts| t.ucode += 1,
    ] {
        let mut r = f.report();
        let mut parts = r.reported_tcb.decode(Generation::Milan);
        change(&mut parts);
        r.reported_tcb = vaultlet_snp::TcbVersion::encode(parts, Generation::Milan);
        assert_fails(&f.verify(&mut r), CheckId::Tcb);
    }
    // CURRENT_TCB is not what the VCEK vouches for.
    let mut r = f.report();
    r.current_tcb.0[7] = 0xFF;
    assert!(f.verify(&mut r).accepted);
}

#[test]
fn a_turin_fmc_mismatch_fails_tcb() {
    let Some(f) = Fixture::vcek("turin fmc", Generation::Turin) else {
        return;
    };
    let mut r = f.report();
    r.reported_tcb.0[0] ^= 1; // FMC on Turin
    let v = f.verify(&mut r);
    assert_fails(&v, CheckId::Tcb);
    assert!(
        v.check(CheckId::Tcb)
            .is_some_and(|c| c.detail.starts_with("fmcSPL")),
        "{v}"
    );
}

#[test]
fn two_byte_spl_integers_are_read() {
    let mut spec = VekSpec::vcek(Generation::Milan);
    spec.tcb.ucode = 0xD9; // DER `02 02 00 D9`
    spec.key_seed = b"two-byte spl".to_vec();
    let Some(f) = Fixture::new("two-byte spl", Generation::Milan, spec) else {
        return;
    };
    let ext = vaultlet_snp::certs::vek_extensions(&f.vek.der).expect("ext");
    assert_eq!(ext.ucode, Some(0xD9));
    assert!(f.verify(&mut f.report()).accepted);
}

#[test]
fn a_wrong_chip_id_fails_hwid_in_both_encodings() {
    for enc in [HwidEncoding::Raw, HwidEncoding::OctetString] {
        let mut spec = VekSpec::vcek(Generation::Milan);
        spec.hwid_encoding = enc;
        spec.key_seed = format!("hwid {enc:?}").into_bytes();
        let Some(f) = Fixture::new("hwid", Generation::Milan, spec) else {
            return;
        };
        assert!(f.verify(&mut f.report()).accepted, "{enc:?}");
        let mut r = f.report();
        r.chip_id[63] ^= 1;
        assert_fails(&f.verify(&mut r), CheckId::Hwid);
        r.chip_id = [0; 64]; // masked chip id cannot match a VCEK
        assert_fails(&f.verify(&mut r), CheckId::Hwid);
    }
}

#[test]
fn turin_compares_the_first_eight_chip_id_bytes() {
    let Some(f) = Fixture::vcek("turin hwid", Generation::Turin) else {
        return;
    };
    let mut r = f.report();
    r.chip_id[40] = 0xEE; // beyond the 8 bytes a Turin hwID covers
    assert!(f.verify(&mut r).accepted);
    r.chip_id[7] ^= 1;
    assert_fails(&f.verify(&mut r), CheckId::Hwid);
}

#[test]
fn a_vlek_is_accepted_under_the_asvk_and_rejected_under_the_ask() {
    let Some(f) = Fixture::new("vlek", Generation::Milan, VekSpec::vlek(Generation::Milan)) else {
        return;
    };
    let mut r = f.report();
    let v = f.verify(&mut r);
    assert!(v.accepted, "{v}");
    assert_eq!(v.outcome(CheckId::Hwid), Some(Outcome::Skip));
    let bytes = signed_report(&mut r, &f.vek);
    let under_ask = f.verifier().verify(
        &Evidence::new(
            bytes.clone(),
            vec![f.vek.der.clone(), f.ca.ask.clone(), f.ca.ark.clone()],
        ),
        &Policy::default(),
        SystemTime::now(),
    );
    assert_fails(&under_ask, CheckId::Chain);
    let no_vlek = Policy {
        vlek_allowed: false,
        ..Policy::default()
    };
    assert_fails(
        &f.verify_bytes(&bytes, &no_vlek),
        CheckId::Policy(PolicyCheck::Vlek),
    );
}

#[test]
fn key_info_must_name_the_vek_type() {
    let Some(f) = Fixture::vcek("key_info", Generation::Milan) else {
        return;
    };
    for sk in [SigningKey::Vlek, SigningKey::None, SigningKey::Reserved(3)] {
        let mut r = f.report();
        r.key_info = KeyInfo::new(false, false, sk);
        assert_fails(&f.verify(&mut r), CheckId::KeyInfo);
    }
}

#[test]
fn unsupported_versions_fail_version_even_when_signed() {
    let Some(f) = Fixture::vcek("versions", Generation::Milan) else {
        return;
    };
    for version in [0, 1, 4, 6, 99] {
        let mut r = f.report();
        r.version = version;
        let v = f.verify(&mut r);
        assert_fails(&v, CheckId::Version);
        assert_eq!(
            v.check(CheckId::Version).map(|c| c.detail.clone()),
            Some(format!("{version} is not one of 2, 3, 5"))
        );
    }
}

#[test]
fn signed_non_zero_reserved_bytes_fail_reserved() {
    let Some(f) = Fixture::vcek("reserved", Generation::Milan) else {
        return;
    };
    let base = f.report().to_bytes();
    for at in [0x4C, 0x18B, 0x19F, 0x1EB, 0x1EF, 0x1F8, 0x29F] {
        let mut b = base;
        b[at] = 1;
        sign_report_bytes(&mut b, &f.vek.key).expect("sign");
        let v = f.verify_bytes(&b, &Policy::default());
        assert_fails(&v, CheckId::Reserved);
    }
    // v3 CPUID bytes are fields, not reserved; v5 mitigation vectors too.
    let mut r = f.report();
    r.version = 5;
    r.launch_mit_vector = Some(u64::MAX);
    r.current_mit_vector = Some(1);
    assert!(f.verify(&mut r).accepted);
    let mut b = r.to_bytes();
    b[0x208] = 1;
    sign_report_bytes(&mut b, &f.vek.key).expect("sign");
    assert_fails(&f.verify_bytes(&b, &Policy::default()), CheckId::Reserved);
}

#[test]
fn an_expired_or_not_yet_valid_vek_fails_validity() {
    let mut spec = VekSpec::vcek(Generation::Milan);
    spec.days = 1;
    spec.key_seed = b"short-lived".to_vec();
    let Some(f) = Fixture::new("validity", Generation::Milan, spec) else {
        return;
    };
    let bytes = signed_report(&mut f.report(), &f.vek);
    let ev = Evidence::new(bytes, f.ca.certs_for(&f.vek));
    let later = SystemTime::now() + Duration::from_secs(3 * 86_400);
    let v = f.verifier().verify(&ev, &Policy::default(), later);
    assert_fails(&v, CheckId::Validity);
    let earlier = SystemTime::now() - Duration::from_secs(86_400);
    assert_fails(
        &f.verifier().verify(&ev, &Policy::default(), earlier),
        CheckId::Validity,
    );
    assert!(
        f.verifier()
            .verify(&ev, &Policy::default(), SystemTime::now())
            .accepted
    );
}

#[test]
fn a_report_signed_by_another_key_fails_signature() {
    let Some(f) = Fixture::vcek("other key", Generation::Milan) else {
        return;
    };
    let other = vaultlet_snp::sign::signing_key_from_seed(b"someone else").expect("key");
    let bytes = vaultlet_snp::sign::sign_report(&mut f.report(), &other);
    assert_fails(
        &f.verify_bytes(&bytes, &Policy::default()),
        CheckId::Signature,
    );
}

#[test]
fn each_policy_field_rejects_with_its_own_id() {
    let Some(f) = Fixture::vcek("policy", Generation::Milan) else {
        return;
    };
    let base = f.report();
    let cases: Vec<(PolicyCheck, Box<Tamper>, Policy)> = vec![
        (
            PolicyCheck::Measurement,
            Box::new(|_| {}),
            Policy {
                measurements: vec![Hex([0x12; 48])],
                ..Policy::default()
            },
        ),
        (
            PolicyCheck::HostData,
            Box::new(|_| {}),
            Policy {
                host_data: vec![Hex([0x34; 32])],
                ..Policy::default()
            },
        ),
        (
            PolicyCheck::ReportData,
            Box::new(|_| {}),
            Policy {
                report_data: Some(Hex([0; 64])),
                ..Policy::default()
            },
        ),
        (
            PolicyCheck::MinTcb,
            Box::new(|_| {}),
            Policy {
                min_tcb: MinTcb {
                    snp: Some(9),
                    ..MinTcb::default()
                },
                ..Policy::default()
            },
        ),
        (
            PolicyCheck::GuestSvn,
            Box::new(|r| r.guest_svn = 1),
            Policy {
                min_guest_svn: Some(2),
                ..Policy::default()
            },
        ),
        (
            PolicyCheck::Firmware,
            Box::new(|r| {
                r.current_version = vaultlet_snp::report::FirmwareVersion {
                    major: 1,
                    minor: 55,
                    build: 20,
                }
            }),
            Policy {
                min_firmware: Some(MinFirmware {
                    major: 1,
                    minor: 55,
                    build: 21,
                }),
                ..Policy::default()
            },
        ),
        (
            PolicyCheck::IdKeyDigest,
            Box::new(|_| {}),
            Policy {
                id_key_digests: vec![Hex([1; 48])],
                ..Policy::default()
            },
        ),
        (
            PolicyCheck::Debug,
            Box::new(|r| r.policy = GuestPolicy(r.policy.0 | 1 << 19)),
            Policy::default(),
        ),
        (
            PolicyCheck::Smt,
            Box::new(|r| r.platform_info = PlatformInfo(1)),
            Policy {
                smt_allowed: false,
                ..Policy::default()
            },
        ),
        (
            PolicyCheck::MigrationAgent,
            Box::new(|r| r.policy = GuestPolicy(r.policy.0 | 1 << 18)),
            Policy::default(),
        ),
        (
            PolicyCheck::Vmpl,
            Box::new(|r| r.vmpl = 1),
            Policy::default(),
        ),
        (
            PolicyCheck::Generation,
            Box::new(|_| {}),
            Policy {
                generations: vec![Generation::Genoa, Generation::Turin],
                ..Policy::default()
            },
        ),
    ];
    for (id, change, policy) in cases {
        let mut r = base.clone();
        change(&mut r);
        let v = f.verify_with(&mut r, &policy);
        assert_fails(&v, CheckId::Policy(id));
    }
    // And the same fields pass when the policy names the report's values.
    let ok = Policy {
        measurements: vec![Hex([0x11; 48])],
        host_data: vec![Hex([0x33; 32])],
        report_data: Some(Hex([0x22; 64])),
        min_tcb: MinTcb {
            bl: Some(3),
            tee: Some(0),
            snp: Some(8),
            ucode: Some(115),
            fmc: Some(9),
        },
        id_key_digests: vec![Hex([0; 48])],
        min_firmware: Some(MinFirmware {
            major: 0,
            minor: 0,
            build: 0,
        }),
        generations: vec![Generation::Milan],
        vlek_allowed: false,
        ..Policy::default()
    };
    let v = f.verify_with(&mut base.clone(), &ok);
    assert!(v.accepted, "{v}");
    let mut debug = base.clone();
    debug.policy = GuestPolicy(debug.policy.0 | 1 << 19);
    assert!(
        f.verify_with(
            &mut debug,
            &Policy {
                debug_allowed: true,
                ..Policy::default()
            }
        )
        .accepted
    );
}

#[test]
fn the_verdict_lists_every_check_in_order_and_skips_after_the_first_failure() {
    let Some(f) = Fixture::vcek("order", Generation::Milan) else {
        return;
    };
    let mut r = f.report();
    r.vmpl = 2;
    let v = f.verify(&mut r);
    let ids: Vec<&str> = v.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "parse",
            "version",
            "generation",
            "root_pin",
            "chain",
            "validity",
            "signature",
            "key_info",
            "tcb",
            "hwid",
            "reserved",
            "policy.measurement",
            "policy.host_data",
            "policy.report_data",
            "policy.min_tcb",
            "policy.guest_svn",
            "policy.firmware",
            "policy.id_key_digest",
            "policy.debug",
            "policy.smt",
            "policy.migration_agent",
            "policy.vmpl",
            "policy.generation",
            "policy.vlek"
        ]
    );
    assert_eq!(
        v.outcome(CheckId::Policy(PolicyCheck::Generation)),
        Some(Outcome::Skip)
    );
    let text = v.to_string();
    assert!(
        text.contains("\npolicy.vmpl: fail VMPL 2 is not 0\n"),
        "{text}"
    );
    assert!(
        text.contains("\npolicy.vlek: skip not run: policy.vmpl failed\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 25);
}
