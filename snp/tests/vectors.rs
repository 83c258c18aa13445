//! The public SEV-SNP vectors of `shared/snp-vectors/MANIFEST.md` §4, each
//! with the verdict the manifest states, at the pinned time
//! 2025-06-01T00:00:00Z unless a test says otherwise.

mod common;

use base64::Engine;
use common::{chain, collection_time, load_certs, pinned_time, read, vectors};
use vaultlet_snp::policy::Hex;
use vaultlet_snp::report::TcbParts;
use vaultlet_snp::{
    CheckId, Evidence, Generation, HclReport, Outcome, Policy, PolicyCheck, Report, Verdict,
    Verifier, certs as snp_certs,
};

fn verify(report: &[u8], certs: Vec<Vec<u8>>, policy: &Policy) -> Verdict {
    Verifier::default().verify(&Evidence::new(report, certs), policy, pinned_time())
}

fn assert_accepted(v: &Verdict, generation: Generation) {
    assert!(v.accepted, "expected accept:\n{v}");
    assert_eq!(v.first_failure, None);
    assert!(!v.non_amd_root);
    assert_eq!(v.generation, Some(generation));
    assert!(
        v.checks
            .iter()
            .all(|c| c.outcome == Outcome::Ok || c.id == CheckId::Hwid),
        "{v}"
    );
}

fn milan_virtee_report(dir: &std::path::Path) -> Vec<u8> {
    let text = read(dir, "milan-virtee/report.hex");
    hex::decode(String::from_utf8(text).expect("utf8").trim()).expect("hex")
}

#[test]
fn row1_milan_virtee_v2_is_accepted() {
    let Some(d) = vectors("row1_milan_virtee_v2_is_accepted") else {
        return;
    };
    let report = milan_virtee_report(&d);
    let r = Report::parse(&report).expect("parse");
    assert_eq!(r.version, 2);
    assert_eq!(r.policy.0, 0x30000);
    assert_eq!(
        r.reported_tcb.decode(Generation::Milan),
        TcbParts {
            fmc: None,
            bl: 3,
            tee: 0,
            snp: 8,
            ucode: 115
        }
    );
    assert_eq!(
        hex::encode(r.measurement),
        "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
    );
    assert_eq!(r.current_version.to_string(), "1.52.4");
    let certs = chain(&[
        load_certs(&d, "milan-virtee/vcek.der"),
        load_certs(&d, "milan-virtee/cert_chain.pem"),
    ]);
    let v = verify(&report, certs, &Policy::default());
    assert_accepted(&v, Generation::Milan);
    assert_eq!(v.outcome(CheckId::Hwid), Some(Outcome::Ok));
    assert!(
        v.check(CheckId::Generation)
            .is_some_and(|c| c.detail == "Milan (ARK)"),
        "{v}"
    );
}

#[test]
fn row1_byte_21_flipped_fails_signature() {
    let Some(d) = vectors("row1_byte_21_flipped_fails_signature") else {
        return;
    };
    let mut report = milan_virtee_report(&d);
    report[21] ^= 0xff;
    let certs = chain(&[
        load_certs(&d, "milan-virtee/vcek.der"),
        load_certs(&d, "milan-virtee/cert_chain.pem"),
    ]);
    let v = verify(&report, certs, &Policy::default());
    assert_eq!(v.first_failure, Some(CheckId::Signature), "{v}");
}

#[test]
fn row2_trustee_milan_uses_reported_not_current_tcb() {
    let Some(d) = vectors("row2_trustee_milan_uses_reported_not_current_tcb") else {
        return;
    };
    let report = read(&d, "trustee-milan/report.bin");
    let r = Report::parse(&report).expect("parse");
    assert_eq!(r.current_tcb.decode(Generation::Milan).ucode, 0xCE);
    assert_eq!(r.reported_tcb.decode(Generation::Milan).ucode, 0x73);
    assert_eq!(r.guest_svn, 4);
    assert_ne!(r.id_key_digest, [0; 48]);
    let certs = chain(&[
        load_certs(&d, "trustee-milan/vcek.der"),
        load_certs(&d, "trustee-milan/ask_ark_asvk.pem"),
    ]);
    let v = verify(&report, certs, &Policy::default());
    assert_accepted(&v, Generation::Milan);
}

#[test]
fn row2n_both_hwid_encodings_parse_and_the_invalid_vceks_fail_the_chain() {
    let Some(d) = vectors("row2n_both_hwid_encodings_parse") else {
        return;
    };
    let report = read(&d, "trustee-milan/report.bin");
    let chip_id = Report::parse(&report).expect("parse").chip_id;
    for (file, raw_first, spl) in [
        (
            "trustee-milan/vcek-invalid-legacy.der",
            true,
            (3, 0, 10, 169),
        ),
        ("trustee-milan/vcek-invalid-new.der", false, (0, 0, 0, 30)),
    ] {
        let der = read(&d, file);
        let ext = snp_certs::vek_extensions(&der).expect(file);
        let hwid = ext.hwid.clone().expect("hwid");
        assert_eq!(hwid.len(), 64, "{file}");
        assert_ne!(hwid.as_slice(), chip_id.as_slice(), "{file}");
        assert_eq!(
            (ext.bl, ext.tee, ext.snp, ext.ucode),
            (Some(spl.0), Some(spl.1), Some(spl.2), Some(spl.3)),
            "{file}"
        );
        // The extnValue OCTET STRING holds the bare bytes (`04 40 <hwid>`,
        // legacy) or another OCTET STRING around them (`04 42 04 40 <hwid>`, new).
        let needle_octet = [&[0x04u8, 0x42, 0x04, 0x40][..], &hwid[..4]].concat();
        let has_octet = der.windows(needle_octet.len()).any(|w| w == needle_octet);
        assert_eq!(!has_octet, raw_first, "{file}");
        let certs = chain(&[vec![der], load_certs(&d, "trustee-milan/ask_ark_asvk.pem")]);
        let v = verify(&report, certs, &Policy::default());
        assert_eq!(v.first_failure, Some(CheckId::Chain), "{file}\n{v}");
    }
}

#[test]
fn row3_vlek_rejects_vmpl_1_at_the_pinned_time() {
    let Some(d) = vectors("row3_vlek_rejects_vmpl_1_at_the_pinned_time") else {
        return;
    };
    let report = read(&d, "trustee-vlek/report.bin");
    let r = Report::parse(&report).expect("parse");
    assert_eq!(r.version, 3);
    assert_eq!(r.vmpl, 1);
    assert_eq!(r.chip_id, [0; 64]);
    assert_eq!(r.platform_info.0, 0x27);
    assert_eq!(r.reported_tcb.decode(Generation::Milan).ucode, 0xD9);
    assert_eq!(r.committed_tcb.decode(Generation::Milan).ucode, 0xDB);
    let certs = chain(&[
        load_certs(&d, "trustee-vlek/vlek.der"),
        load_certs(&d, "trustee-vlek/ask_ark_asvk.pem"),
    ]);
    let v = verify(&report, certs.clone(), &Policy::default());
    assert_eq!(
        v.first_failure,
        Some(CheckId::Policy(PolicyCheck::Vmpl)),
        "{v}"
    );
    for id in [
        CheckId::Chain,
        CheckId::Signature,
        CheckId::KeyInfo,
        CheckId::Tcb,
    ] {
        assert_eq!(v.outcome(id), Some(Outcome::Ok), "{id}\n{v}");
    }
    assert_eq!(v.outcome(CheckId::Hwid), Some(Outcome::Skip));
    assert!(
        v.check(CheckId::Generation)
            .is_some_and(|c| c.detail == "Milan (CPUID)")
    );

    let vmpl_any = Policy {
        vmpl: None,
        ..Policy::default()
    };
    let v = verify(&report, certs.clone(), &vmpl_any);
    assert!(v.accepted, "{v}");
    let no_vlek = Policy {
        vlek_allowed: false,
        ..vmpl_any
    };
    let v = verify(&report, certs.clone(), &no_vlek);
    assert_eq!(v.first_failure, Some(CheckId::Policy(PolicyCheck::Vlek)));

    let later = Verifier::default().verify(
        &Evidence::new(report, certs),
        &Policy::default(),
        collection_time(),
    );
    assert_eq!(later.first_failure, Some(CheckId::Validity), "{later}");
    assert!(
        later
            .check(CheckId::Validity)
            .is_some_and(|c| c.detail.starts_with("SEV-VLEK not valid")),
        "{later}"
    );
}

#[test]
fn row3_vlek_under_the_ask_fails_the_chain() {
    let Some(d) = vectors("row3_vlek_under_the_ask_fails_the_chain") else {
        return;
    };
    let report = read(&d, "trustee-vlek/report.bin");
    let certs = chain(&[
        load_certs(&d, "trustee-vlek/vlek.der"),
        load_certs(&d, "amd-roots/milan/ask_ark.pem"),
    ]);
    let v = verify(&report, certs, &Policy::default());
    assert_eq!(v.first_failure, Some(CheckId::Chain), "{v}");
}

fn genoa_hcl(d: &std::path::Path) -> Vec<u8> {
    #[derive(serde::Deserialize)]
    struct Ev {
        report: Vec<u8>,
        vcek: String,
    }
    let ev: Ev =
        serde_json::from_slice(&read(d, "trustee-genoa-azure/evidence.json")).expect("json");
    assert!(ev.vcek.starts_with("-----BEGIN CERTIFICATE-----"));
    ev.report
}

#[test]
fn row4_genoa_azure_evidence_json_is_accepted() {
    let Some(d) = vectors("row4_genoa_azure_evidence_json_is_accepted") else {
        return;
    };
    let hcl_bytes = genoa_hcl(&d);
    assert_eq!(hcl_bytes.len(), 2600);
    let hcl = HclReport::parse(&hcl_bytes).expect("hcl");
    assert_eq!(hcl.header_version, 2);
    let var = std::str::from_utf8(hcl.var_data()).expect("utf8");
    assert!(var.contains("HCLAkPub") && var.contains("HCLEkPub"));
    let r = &hcl.report;
    assert_eq!(r.version, 3);
    assert_eq!(
        r.cpuid.map(|c| (c.family, c.model, c.stepping)),
        Some((0x19, 0x11, 0x01))
    );
    assert_eq!(r.guest_svn, 0x1000B);
    assert_eq!(r.current_version.to_string(), "1.55.40");
    let certs = chain(&[
        load_certs(&d, "trustee-genoa-azure/vcek-genoa.pem"),
        load_certs(&d, "trustee-genoa-azure/genoa_ask_ark_asvk.pem"),
    ]);
    let v = verify(hcl.snp_report_bytes(), certs, &Policy::default());
    assert_accepted(&v, Generation::Genoa);
}

#[test]
fn row4_genoa_vcek_under_the_milan_chain_fails_the_chain() {
    let Some(d) = vectors("row4_genoa_vcek_under_the_milan_chain") else {
        return;
    };
    let hcl_bytes = genoa_hcl(&d);
    let hcl = HclReport::parse(&hcl_bytes).expect("hcl");
    let certs = chain(&[
        load_certs(&d, "trustee-genoa-azure/vcek-genoa.pem"),
        load_certs(&d, "amd-roots/milan/ask_ark.pem"),
    ]);
    let v = verify(hcl.snp_report_bytes(), certs.clone(), &Policy::default());
    assert_eq!(v.first_failure, Some(CheckId::Chain), "{v}");
    let c = Verifier::default().verify_chain(&certs, pinned_time());
    assert_eq!(c.first_failure, Some(CheckId::Chain), "{c}");
}

#[test]
fn row4b_milan_hcl_v1_is_accepted() {
    let Some(d) = vectors("row4b_milan_hcl_v1_is_accepted") else {
        return;
    };
    let bytes = read(&d, "trustee-genoa-azure/milan-hcl-report.bin");
    let hcl = HclReport::parse(&bytes).expect("hcl");
    assert_eq!(hcl.header_version, 1);
    assert_eq!(hcl.report.guest_svn, 5);
    assert_eq!(hcl.report.current_tcb.decode(Generation::Milan).ucode, 0xD2);
    let v = verify(
        hcl.snp_report_bytes(),
        load_certs(&d, "trustee-genoa-azure/milan-vcek.pem"),
        &Policy::default(),
    );
    assert_accepted(&v, Generation::Milan);
}

#[test]
fn row5_debug_policy_is_rejected_unless_allowed() {
    let Some(d) = vectors("row5_debug_policy_is_rejected_unless_allowed") else {
        return;
    };
    let report = read(&d, "gosevguest-debug/report.bin");
    let r = Report::parse(&report).expect("parse");
    assert!(r.policy.debug());
    assert_eq!(r.current_version.to_string(), "1.49.3");
    assert_eq!(&r.report_data[..6], &[1, 2, 3, 4, 5, 0]);
    let certs = chain(&[
        load_certs(&d, "gosevguest-debug/vcek.der"),
        load_certs(&d, "gosevguest-debug/ask_ark.pem"),
    ]);
    let v = verify(&report, certs.clone(), &Policy::default());
    assert_eq!(
        v.first_failure,
        Some(CheckId::Policy(PolicyCheck::Debug)),
        "{v}"
    );
    assert_eq!(v.outcome(CheckId::Signature), Some(Outcome::Ok));
    let allow = Policy::from_yaml("debug_allowed: true").expect("policy");
    assert!(verify(&report, certs, &allow).accepted);
}

#[test]
fn row6_aci_host_data_binds_the_security_policy() {
    let Some(d) = vectors("row6_aci_host_data_binds_the_security_policy") else {
        return;
    };
    let report = read(&d, "aci-sidecar/report.bin");
    let certs = load_certs(&d, "aci-sidecar/uvm_host_amd_certificate.pem");
    let b64 = read(&d, "aci-sidecar/uvm_security_policy.base64");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(String::from_utf8(b64).expect("utf8").trim())
        .expect("base64");
    assert_eq!(decoded.len(), 714);
    let digest = ring::digest::digest(&ring::digest::SHA256, &decoded);
    let policy = Policy::from_yaml(&format!(
        "host_data: [\"{}\"]\nmin_guest_svn: 2\n",
        hex::encode(digest.as_ref())
    ))
    .expect("policy");
    let v = verify(&report, certs.clone(), &policy);
    assert_accepted(&v, Generation::Milan);

    let mut other = policy.clone();
    other.host_data = vec![Hex([0; 32])];
    let v = verify(&report, certs.clone(), &other);
    assert_eq!(
        v.first_failure,
        Some(CheckId::Policy(PolicyCheck::HostData))
    );
    let newer_svn = Policy {
        min_guest_svn: Some(3),
        ..policy
    };
    let v = verify(&report, certs, &newer_svn);
    assert_eq!(
        v.first_failure,
        Some(CheckId::Policy(PolicyCheck::GuestSvn))
    );
}

#[test]
fn row7_kinvolk_hcl_parses_but_its_signature_fails() {
    let Some(d) = vectors("row7_kinvolk_hcl_parses_but_its_signature_fails") else {
        return;
    };
    let bytes = read(&d, "kinvolk-hcl/hcl-report-snp.bin");
    let hcl = HclReport::parse(&bytes).expect("hcl");
    let var = std::str::from_utf8(hcl.var_data()).expect("utf8");
    assert!(var.contains("HCLAkPub") && !var.contains("user-data"));
    let v = verify(
        hcl.snp_report_bytes(),
        load_certs(&d, "kinvolk-hcl/certs.pem"),
        &Policy::default(),
    );
    assert_eq!(v.first_failure, Some(CheckId::Signature), "{v}");
    assert_eq!(v.outcome(CheckId::Chain), Some(Outcome::Ok));
}

#[test]
fn row8_turin_chain_only_is_accepted_and_its_extensions_parse() {
    let Some(d) = vectors("row8_turin_chain_only") else {
        return;
    };
    let vcek = read(&d, "turin-virtee/vcek.der");
    let ext = snp_certs::vek_extensions(&vcek).expect("ext");
    assert_eq!(ext.product_name.as_deref(), Some("Turin"));
    assert_eq!(ext.struct_version, Some(1));
    assert_eq!(
        ext.hwid.as_deref().map(hex::encode).as_deref(),
        Some("1e550a8ee5cf9f4d")
    );
    assert_eq!(
        (ext.fmc, ext.bl, ext.tee, ext.snp, ext.ucode),
        (Some(0), Some(0), Some(0), Some(0), Some(9))
    );
    assert_eq!(ext.generation(), Some(Generation::Turin));
    let certs = chain(&[
        vec![vcek.clone()],
        load_certs(&d, "turin-virtee/cert_chain.pem"),
    ]);
    let v = Verifier::default().verify_chain(&certs, pinned_time());
    assert!(v.accepted, "{v}");
    assert_eq!(v.generation, Some(Generation::Turin));
    let ids: Vec<_> = v.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["parse", "root_pin", "chain", "validity"]);

    let wrong = chain(&[vec![vcek], load_certs(&d, "amd-roots/milan/ask_ark.pem")]);
    let v = Verifier::default().verify_chain(&wrong, pinned_time());
    assert_eq!(v.first_failure, Some(CheckId::Chain), "{v}");
    let milan_under_turin = chain(&[
        load_certs(&d, "milan-virtee/vcek.der"),
        load_certs(&d, "turin-virtee/cert_chain.pem"),
    ]);
    let v = Verifier::default().verify_chain(&milan_under_turin, pinned_time());
    assert_eq!(v.first_failure, Some(CheckId::Chain), "{v}");
}

#[test]
fn pinned_fingerprints_match_the_shared_roots() {
    let Some(d) = vectors("pinned_fingerprints_match_the_shared_roots") else {
        return;
    };
    for (g, pin) in [
        ("milan", vaultlet_snp::roots::ARK_MILAN),
        ("genoa", vaultlet_snp::roots::ARK_GENOA),
        ("turin", vaultlet_snp::roots::ARK_TURIN),
    ] {
        let ark = load_certs(&d, &format!("amd-roots/{g}/ark.pem"));
        assert_eq!(ark.len(), 1);
        assert_eq!(vaultlet_snp::roots::sha384(&ark[0]), pin.sha384, "{g}");
        assert_eq!(
            snp_certs::classify(&ark[0]),
            Ok(vaultlet_snp::CertRole::Ark)
        );
        // The ASK/ASVK bundles classify by CN.
        let roles: Vec<_> = load_certs(&d, &format!("amd-roots/{g}/ask_ark_asvk.pem"))
            .iter()
            .map(|c| snp_certs::classify(c).expect("classify"))
            .collect();
        use vaultlet_snp::CertRole::{Ark, Ask, Asvk};
        assert_eq!(roles, [Ask, Ark, Asvk], "{g}");
    }
}

#[test]
fn an_unpinned_root_fails_root_pin() {
    let Some(d) = vectors("an_unpinned_root_fails_root_pin") else {
        return;
    };
    // A chain whose "ARK" is replaced by a synthetic self-signed root.
    let Some(ca) = common::synthetic_ca("an_unpinned_root_fails_root_pin", Generation::Milan)
    else {
        return;
    };
    let report = milan_virtee_report(&d);
    let mut certs = chain(&[
        load_certs(&d, "milan-virtee/vcek.der"),
        load_certs(&d, "milan-virtee/ask.pem"),
    ]);
    certs.push(ca.ark.clone());
    let v = verify(&report, certs, &Policy::default());
    assert_eq!(v.first_failure, Some(CheckId::RootPin), "{v}");
}
