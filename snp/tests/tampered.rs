//! Tampered variants of the row 1 vector (Milan, v2, VCEK), made in memory:
//! each is rejected, and the verdict names the first check that fails.
//! Because `signature` runs before the field checks, a flip anywhere in the
//! signed range 0x000..0x2A0 fails there; a flip in the unsigned reserved
//! tail fails `reserved`.

mod common;

use common::{chain, load_certs, pinned_time, read, vectors};
use vaultlet_snp::report::{REPORT_LEN, offsets as o};
use vaultlet_snp::{CheckId, Evidence, Outcome, Policy, Verdict, Verifier};

fn setup(test: &str) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    let d = vectors(test)?;
    let text = read(&d, "milan-virtee/report.hex");
    let report = hex::decode(String::from_utf8(text).expect("utf8").trim()).expect("hex");
    let certs = chain(&[
        load_certs(&d, "milan-virtee/vcek.der"),
        load_certs(&d, "milan-virtee/cert_chain.pem"),
    ]);
    Some((report, certs))
}

fn verify(report: &[u8], certs: &[Vec<u8>]) -> Verdict {
    Verifier::default().verify(
        &Evidence::new(report, certs.to_vec()),
        &Policy::default(),
        pinned_time(),
    )
}

#[test]
fn the_untampered_report_is_accepted() {
    let Some((report, certs)) = setup("the_untampered_report_is_accepted") else {
        return;
    };
    assert!(verify(&report, &certs).accepted);
}

#[test]
fn one_flipped_bit_in_each_signed_field_fails_signature() {
    let Some((report, certs)) = setup("one_flipped_bit_in_each_signed_field_fails_signature")
    else {
        return;
    };
    let fields = [
        ("guest_svn", o::GUEST_SVN),
        ("policy", o::POLICY),
        ("policy debug bit", o::POLICY + 2),
        ("family_id", o::FAMILY_ID),
        ("image_id", o::IMAGE_ID),
        ("vmpl", o::VMPL),
        ("signature_algo", o::SIGNATURE_ALGO),
        ("current_tcb", o::CURRENT_TCB),
        ("platform_info", o::PLATFORM_INFO),
        ("key_info", o::KEY_INFO),
        ("reserved 0x4c", 0x4C),
        ("report_data", o::REPORT_DATA + 63),
        ("measurement", o::MEASUREMENT),
        ("host_data", o::HOST_DATA + 5),
        ("id_key_digest", o::ID_KEY_DIGEST),
        ("author_key_digest", o::AUTHOR_KEY_DIGEST),
        ("report_id", o::REPORT_ID),
        ("report_id_ma", o::REPORT_ID_MA),
        ("reported_tcb", o::REPORTED_TCB + 7),
        ("v2 reserved cpuid bytes", o::CPUID_FAM_ID),
        ("chip_id", o::CHIP_ID + 10),
        ("committed_tcb", o::COMMITTED_TCB),
        ("current version", o::CURRENT_VERSION),
        ("reserved 0x1eb", 0x1EB),
        ("committed version", o::COMMITTED_VERSION + 2),
        ("launch_tcb", o::LAUNCH_TCB),
        ("reserved body tail", 0x29F),
        ("signature r", o::SIGNATURE),
        ("signature r high bytes", o::SIGNATURE + 60),
        ("signature s", 0x2E8 + 20),
        ("signature s high bytes", 0x2E8 + 71),
    ];
    for (name, at) in fields {
        let mut t = report.clone();
        t[at] ^= 0x01;
        let v = verify(&t, &certs);
        assert_eq!(
            v.first_failure,
            Some(CheckId::Signature),
            "{name} at {at:#x}\n{v}"
        );
        for id in [
            CheckId::Parse,
            CheckId::Version,
            CheckId::RootPin,
            CheckId::Chain,
        ] {
            assert_eq!(v.outcome(id), Some(Outcome::Ok), "{name}: {id}");
        }
        assert_eq!(v.outcome(CheckId::Tcb), Some(Outcome::Skip), "{name}");
    }
}

#[test]
fn signature_algo_detail_names_the_field() {
    let Some((mut report, certs)) = setup("signature_algo_detail_names_the_field") else {
        return;
    };
    report[o::SIGNATURE_ALGO] = 2;
    let v = verify(&report, &certs);
    let c = v.check(CheckId::Signature).expect("signature check");
    assert_eq!(c.outcome, Outcome::Fail);
    assert!(
        c.detail.starts_with("SIGNATURE_ALGO 2 is not 1"),
        "{}",
        c.detail
    );
}

#[test]
fn a_flip_in_the_unsigned_reserved_tail_fails_reserved() {
    let Some((report, certs)) = setup("a_flip_in_the_unsigned_reserved_tail_fails_reserved") else {
        return;
    };
    for at in [0x330, 0x400, REPORT_LEN - 1] {
        let mut t = report.clone();
        t[at] ^= 0x80;
        let v = verify(&t, &certs);
        assert_eq!(v.first_failure, Some(CheckId::Reserved), "{at:#x}\n{v}");
        assert_eq!(v.outcome(CheckId::Signature), Some(Outcome::Ok));
        assert!(
            v.check(CheckId::Reserved)
                .is_some_and(|c| c.detail == format!("byte {at:#05x} is 0x80, must be zero")),
            "{v}"
        );
    }
}

#[test]
fn version_flips_fail_version_before_signature() {
    let Some((report, certs)) = setup("version_flips_fail_version_before_signature") else {
        return;
    };
    for flip in [0x04u8, 0x08, 0x80] {
        let mut t = report.clone();
        t[o::VERSION] ^= flip;
        let v = verify(&t, &certs);
        assert_eq!(v.first_failure, Some(CheckId::Version), "{flip:#x}\n{v}");
    }
    // 2 -> 3 is a supported version: the v3 CPUID bytes are zero, so the
    // generation cannot be told.
    let mut t = report.clone();
    t[o::VERSION] ^= 0x01;
    assert_eq!(verify(&t, &certs).first_failure, Some(CheckId::Generation));
}

#[test]
fn truncated_and_extended_reports_fail_parse() {
    let Some((report, certs)) = setup("truncated_and_extended_reports_fail_parse") else {
        return;
    };
    for len in [0, 1, 0x2A0, REPORT_LEN - 1] {
        assert_eq!(
            verify(&report[..len], &certs).first_failure,
            Some(CheckId::Parse),
            "{len}"
        );
    }
    let mut longer = report.clone();
    longer.push(0);
    assert_eq!(verify(&longer, &certs).first_failure, Some(CheckId::Parse));
}

#[test]
fn a_damaged_certificate_fails_parse() {
    let Some((report, mut certs)) = setup("a_damaged_certificate_fails_parse") else {
        return;
    };
    certs[0].truncate(100);
    let v = verify(&report, &certs);
    assert_eq!(v.first_failure, Some(CheckId::Parse));
    assert!(
        v.check(CheckId::Parse)
            .is_some_and(|c| c.detail.starts_with("certificate 0:"))
    );
}

#[test]
fn a_flipped_vcek_signature_fails_the_chain() {
    let Some((report, mut certs)) = setup("a_flipped_vcek_signature_fails_the_chain") else {
        return;
    };
    let last = certs[0].len() - 1;
    certs[0][last] ^= 1;
    assert_eq!(verify(&report, &certs).first_failure, Some(CheckId::Chain));
}

#[test]
fn a_missing_ark_fails_root_pin_and_a_missing_ask_fails_the_chain() {
    let Some((report, certs)) = setup("a_missing_ark_fails_root_pin") else {
        return;
    };
    // certs: VCEK, ASK, ARK
    let no_ark = vec![certs[0].clone(), certs[1].clone()];
    assert_eq!(
        verify(&report, &no_ark).first_failure,
        Some(CheckId::RootPin)
    );
    let no_ask = vec![certs[0].clone(), certs[2].clone()];
    assert_eq!(verify(&report, &no_ask).first_failure, Some(CheckId::Chain));
    let no_vcek = vec![certs[1].clone(), certs[2].clone()];
    assert_eq!(
        verify(&report, &no_vcek).first_failure,
        Some(CheckId::Chain)
    );
}

fn replace_all(haystack: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= haystack.len() {
        if &haystack[i..i + from.len()] == from {
            haystack[i..i + from.len()].copy_from_slice(to);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    n
}

#[test]
fn wrong_pss_parameters_on_the_ask_fail_the_chain_before_any_rsa() {
    let Some((report, certs)) = setup("wrong_pss_parameters_on_the_ask_fail_the_chain") else {
        return;
    };
    // certs: VCEK, ASK, ARK. saltLength [2] INTEGER 48 -> 32.
    let mut salt = certs.clone();
    assert!(
        replace_all(
            &mut salt[1],
            &[0xA2, 0x03, 0x02, 0x01, 0x30],
            &[0xA2, 0x03, 0x02, 0x01, 0x20]
        ) >= 2
    );
    let v = verify(&report, &salt);
    assert_eq!(v.first_failure, Some(CheckId::Chain), "{v}");
    assert!(
        v.check(CheckId::Chain)
            .is_some_and(|c| c.detail.ends_with("PSS salt length 32 is not 48")),
        "{v}"
    );
    // id-sha384 -> id-sha256 in hash and MGF1 parameters.
    let mut hash = certs.clone();
    let sha384 = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    let sha256 = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    assert!(replace_all(&mut hash[1], &sha384, &sha256) >= 4);
    let v = verify(&report, &hash);
    assert_eq!(v.first_failure, Some(CheckId::Chain), "{v}");
    assert!(
        v.check(CheckId::Chain)
            .is_some_and(|c| c.detail.ends_with("PSS hash is not SHA-384")),
        "{v}"
    );
}
