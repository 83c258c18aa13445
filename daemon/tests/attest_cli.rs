//! `vaultlet attest verify` as a binary, on the public SEV-SNP vectors in
//! `$VAULTLET_SHARED_DIR/snp-vectors` (default `<workspace>/../shared`),
//! verified at 2025-06-01T00:00:00Z. Without the vectors the tests print
//! why they skip; `VAULTLET_REQUIRE_SHARED=1` (or
//! `VAULTLET_REQUIRE_PRIVILEGED=1`) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const AT: &str = "2025-06-01T00:00:00Z";

fn vectors(test: &str) -> Option<PathBuf> {
    let base = std::env::var_os("VAULTLET_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let dir = base.join("snp-vectors");
    if dir.join("MANIFEST.md").is_file() {
        return Some(dir);
    }
    let required = ["VAULTLET_REQUIRE_SHARED", "VAULTLET_REQUIRE_PRIVILEGED"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|x| x == "1"));
    assert!(!required, "{test}: no SEV-SNP vectors at {}", dir.display());
    eprintln!(
        "skipping {test}: no SEV-SNP vectors at {} (set VAULTLET_SHARED_DIR)",
        dir.display()
    );
    None
}

fn vaultlet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vaultlet"))
        .args(args)
        .output()
        .expect("run vaultlet")
}

fn verify(dir: &Path, report: Option<&str>, certs: &[&str], extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec!["attest".into(), "verify".into(), "--at".into(), AT.into()];
    if let Some(r) = report {
        args.push("--report".into());
        args.push(dir.join(r).display().to_string());
    }
    for c in certs {
        args.push("--certs".into());
        args.push(dir.join(c).display().to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    vaultlet(&refs)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn line<'a>(text: &'a str, id: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{id}: ")))
        .unwrap_or_else(|| panic!("no line for {id} in:\n{text}"))
}

#[test]
fn milan_virtee_is_accepted() {
    let Some(d) = vectors("milan_virtee_is_accepted") else {
        return;
    };
    let o = verify(
        &d,
        Some("milan-virtee/report.hex"),
        &["milan-virtee/vcek.der", "milan-virtee/cert_chain.pem"],
        &[],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for id in [
        "parse",
        "root_pin",
        "chain",
        "signature",
        "tcb",
        "hwid",
        "policy.debug",
    ] {
        assert_eq!(line(&out, id).split(' ').nth(1), Some("ok"), "{out}");
    }
}

#[test]
fn debug_report_is_rejected_at_policy_debug() {
    let Some(d) = vectors("debug_report_is_rejected_at_policy_debug") else {
        return;
    };
    let o = verify(
        &d,
        Some("gosevguest-debug/report.bin"),
        &["gosevguest-debug/vcek.der", "gosevguest-debug/ask_ark.pem"],
        &["--json"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["accepted"], false);
    assert_eq!(v["first_failure"], "policy.debug");
    let sig = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == "signature")
        .expect("signature check");
    assert_eq!(sig["outcome"], "ok");
}

#[test]
fn vlek_report_at_vmpl_1_is_rejected_at_policy_vmpl() {
    let Some(d) = vectors("vlek_report_at_vmpl_1_is_rejected_at_policy_vmpl") else {
        return;
    };
    let o = verify(
        &d,
        Some("trustee-vlek/report.bin"),
        &["trustee-vlek/vlek.der", "trustee-vlek/ask_ark_asvk.pem"],
        &[],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.starts_with("verdict: reject at policy.vmpl"), "{out}");
    assert!(line(&out, "policy.vmpl").starts_with("policy.vmpl: fail"));
    assert!(line(&out, "chain").starts_with("chain: ok"));
}

#[test]
fn truncated_report_fails_parse_with_exit_1() {
    let Some(d) = vectors("truncated_report_fails_parse_with_exit_1") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let full = std::fs::read(d.join("gosevguest-debug/report.bin")).expect("report");
    let cut = tmp.path().join("cut.bin");
    std::fs::write(&cut, &full[..1000]).expect("write");
    let o = verify(
        &d,
        Some(cut.to_str().expect("utf-8")),
        &["gosevguest-debug/vcek.der", "gosevguest-debug/ask_ark.pem"],
        &[],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(line(&out, "parse").starts_with("parse: fail"), "{out}");
}

#[test]
fn turin_chain_alone_is_accepted() {
    let Some(d) = vectors("turin_chain_alone_is_accepted") else {
        return;
    };
    let o = verify(
        &d,
        None,
        &["turin-virtee/vcek.der", "turin-virtee/cert_chain.pem"],
        &[],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(line(&out, "chain").starts_with("chain: ok"), "{out}");
    assert!(
        !out.contains("signature:"),
        "chain-only runs no report checks: {out}"
    );
}

#[test]
fn policy_file_can_allow_debug() {
    let Some(d) = vectors("policy_file_can_allow_debug") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let policy = tmp.path().join("p.yaml");
    std::fs::write(&policy, "debug_allowed: true\n").expect("write");
    let o = verify(
        &d,
        Some("gosevguest-debug/report.bin"),
        &["gosevguest-debug/vcek.der", "gosevguest-debug/ask_ark.pem"],
        &["--policy", policy.to_str().expect("utf-8")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn report_prints_every_field_of_a_file_source() {
    let Some(d) = vectors("report_prints_every_field_of_a_file_source") else {
        return;
    };
    let source = format!("file:{}", d.join("milan-virtee/report.hex").display());
    let o = vaultlet(&["attest", "report", "--source", &source]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(line(&out, "measurement").ends_with(
        "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
    ));
    for field in [
        "version: 2",
        "vmpl: 0",
        "signature_algo: 1",
        "current_version: 1.52.4",
    ] {
        assert!(out.lines().any(|l| l == field), "{field} in:\n{out}");
    }
    assert_eq!(out.lines().count(), 30, "{out}");
}

#[test]
fn missing_file_is_exit_2() {
    let o = vaultlet(&["attest", "verify", "--report", "/nonexistent/report.bin"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent/report.bin"), "{err}");
}

#[test]
fn no_report_and_no_certs_is_exit_2() {
    let o = vaultlet(&["attest", "verify"]);
    assert_eq!(o.status.code(), Some(2));
    let o = vaultlet(&["attest", "verify", "--at", "yesterday", "--certs", "/x"]);
    assert_eq!(o.status.code(), Some(2));
}
