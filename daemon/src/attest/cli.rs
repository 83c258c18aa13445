//! `vaultlet attest`: print this node's report, or verify evidence
//! offline. `main.rs` parses the flags and exits with what [`run`] returns:
//! 0 accepted (or printed), 1 rejected (a report that fails `parse`
//! included) or no evidence, 2 bad flags or an unreadable file.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::SystemTime;

use clap::{Args, Subcommand};
use vaultlet_snp::{CheckId, Evidence, Generation, Policy, Report, TcbVersion, Verdict, Verifier};

use super::file::{ReportFile, decode_report};
use super::source::{self, SourceSpec};

/// `vaultlet attest` subcommands.
#[derive(Debug, Subcommand)]
pub enum AttestCommand {
    /// Print this node's SEV-SNP report, decoded: every field, one per line,
    /// byte fields as hex.
    Report(ReportArgs),
    /// Verify a report and its certificates (or a chain alone) offline.
    /// Prints one line per check (`ID: ok|fail|skip [detail]`); exits 0
    /// when accepted, 1 when rejected, 2 for bad flags or unreadable files.
    Verify(VerifyArgs),
}

/// Flags of `vaultlet attest report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Evidence source: auto, sev-guest, tsm, vtpm, file:PATH (or sim:KEYFILE
    /// in test builds).
    #[arg(long, env = "VAULTLET_ATTESTATION_SOURCE", default_value = "auto")]
    pub source: String,
}

/// Flags of `vaultlet attest verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The report: raw binary (1184 bytes), hex text, or an Azure HCL report.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Certificates (repeatable): PEM with one or more certificates, or DER.
    #[arg(long)]
    pub certs: Vec<PathBuf>,
    /// Policy file (YAML or JSON); the default policy when absent.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Verification time, RFC 3339 (default: now).
    #[arg(long)]
    pub at: Option<String>,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a subcommand, writing its output to `out` and its diagnostics to
/// `err` (the binary passes stdout and stderr); returns the exit code.
/// Write errors (a closed pipe) are ignored: the exit code still tells the
/// verdict.
pub fn run(cmd: AttestCommand, out: &mut dyn std::io::Write, err: &mut dyn std::io::Write) -> u8 {
    match cmd {
        AttestCommand::Report(a) => report(&a, out, err),
        AttestCommand::Verify(a) => verify(&a, out, err),
    }
}

fn usage(err: &mut dyn std::io::Write, msg: impl std::fmt::Display) -> u8 {
    let _ = writeln!(err, "vaultlet attest: {msg}");
    2
}

fn report(args: &ReportArgs, out: &mut dyn std::io::Write, err: &mut dyn std::io::Write) -> u8 {
    let spec = match SourceSpec::parse(&args.source) {
        Ok(s) => s,
        Err(e) => return usage(err, format!("--source: {e}")),
    };
    let key = match super::generate_runtime_key() {
        Ok(k) => k,
        Err(e) => {
            let _ = writeln!(err, "vaultlet attest: {e}");
            return 1;
        }
    };
    let data = super::runtime::runtime_data(&key.public_jwk, &super::runtime::fresh_nonce());
    let gathered = match source::gather(&spec, &data.report_data) {
        Ok(g) => g,
        Err(e) => {
            let _ = writeln!(err, "vaultlet attest: {e}");
            return 1;
        }
    };
    match Report::parse(&gathered.report) {
        Ok(r) => {
            let _ = write!(
                out,
                "source: {}\n{}certificates: {}\n",
                gathered.source,
                describe_report(&r),
                gathered.certs.len()
            );
            0
        }
        Err(e) => {
            let _ = writeln!(
                err,
                "vaultlet attest: the {} source gave no valid report: {e}",
                gathered.source
            );
            1
        }
    }
}

fn kv(o: &mut String, key: &str, value: impl std::fmt::Display) {
    let _ = writeln!(o, "{key}: {value}");
}

fn tcb(tcb: TcbVersion, generation: Option<Generation>) -> String {
    match generation {
        Some(g) => format!("{:#018x} ({})", tcb.to_u64(), tcb.decode(g)),
        None => format!("{:#018x}", tcb.to_u64()),
    }
}

/// Every field of `r`, one per line, byte fields as hex.
pub fn describe_report(r: &Report) -> String {
    let g = r.cpuid_generation();
    let o = &mut String::new();
    kv(o, "version", r.version);
    kv(o, "guest_svn", r.guest_svn);
    kv(
        o,
        "policy",
        format!(
            "{:#x} (abi {}.{}, smt {}, migrate_ma {}, debug {}, single_socket {})",
            r.policy.0,
            r.policy.abi_major(),
            r.policy.abi_minor(),
            r.policy.smt_allowed(),
            r.policy.migrate_ma(),
            r.policy.debug(),
            r.policy.single_socket()
        ),
    );
    kv(o, "family_id", hex::encode(r.family_id));
    kv(o, "image_id", hex::encode(r.image_id));
    kv(o, "vmpl", r.vmpl);
    kv(o, "signature_algo", r.signature_algo);
    kv(o, "current_tcb", tcb(r.current_tcb, g));
    kv(
        o,
        "platform_info",
        format!(
            "{:#x} (smt_en {}, tsme_en {})",
            r.platform_info.0,
            r.platform_info.smt_en(),
            r.platform_info.tsme_en()
        ),
    );
    kv(
        o,
        "key_info",
        format!(
            "{:#x} (signing_key {:?})",
            r.key_info.0,
            r.key_info.signing_key()
        ),
    );
    kv(o, "report_data", hex::encode(r.report_data));
    kv(o, "measurement", hex::encode(r.measurement));
    kv(o, "host_data", hex::encode(r.host_data));
    kv(o, "id_key_digest", hex::encode(r.id_key_digest));
    kv(o, "author_key_digest", hex::encode(r.author_key_digest));
    kv(o, "report_id", hex::encode(r.report_id));
    kv(o, "report_id_ma", hex::encode(r.report_id_ma));
    kv(o, "reported_tcb", tcb(r.reported_tcb, g));
    let cpuid = match r.cpuid {
        Some(c) => format!(
            "family {:#x} model {:#x} stepping {:#x}{}",
            c.family,
            c.model,
            c.stepping,
            g.map(|g| format!(" ({g})")).unwrap_or_default()
        ),
        None => "none (version 2)".into(),
    };
    kv(o, "cpuid", cpuid);
    kv(o, "chip_id", hex::encode(r.chip_id));
    kv(o, "committed_tcb", tcb(r.committed_tcb, g));
    kv(o, "current_version", r.current_version);
    kv(o, "committed_version", r.committed_version);
    kv(o, "launch_tcb", tcb(r.launch_tcb, g));
    let opt = |v: Option<u64>| v.map_or_else(|| "none".to_string(), |v| format!("{v:#x}"));
    kv(o, "launch_mit_vector", opt(r.launch_mit_vector));
    kv(o, "current_mit_vector", opt(r.current_mit_vector));
    kv(o, "signature_r", hex::encode(r.signature.r));
    kv(o, "signature_s", hex::encode(r.signature.s));
    std::mem::take(o)
}

/// A verdict for input that never reached the verifier (an HCL report or
/// certificate file that does not parse): rejected at `parse`.
fn parse_failure(detail: String) -> Verdict {
    Verdict {
        accepted: false,
        first_failure: Some(CheckId::Parse),
        checks: vec![vaultlet_snp::CheckResult {
            id: CheckId::Parse,
            outcome: vaultlet_snp::Outcome::Fail,
            detail,
        }],
        non_amd_root: false,
        generation: None,
    }
}

/// The verdict as JSON.
pub fn verdict_json(v: &Verdict) -> serde_json::Value {
    serde_json::json!({
        "accepted": v.accepted,
        "first_failure": v.first_failure.map(CheckId::as_str),
        "generation": v.generation.map(Generation::name),
        "non_amd_root": v.non_amd_root,
        "checks": v.checks.iter().map(|c| serde_json::json!({
            "id": c.id.as_str(),
            "outcome": c.outcome.to_string(),
            "detail": c.detail,
        })).collect::<Vec<_>>(),
    })
}

fn verify(args: &VerifyArgs, out: &mut dyn std::io::Write, err: &mut dyn std::io::Write) -> u8 {
    if args.report.is_none() && args.certs.is_empty() {
        return usage(err, "verify needs --report, --certs, or both");
    }
    let at = match &args.at {
        None => SystemTime::now(),
        Some(t) => match humantime::parse_rfc3339_weak(t) {
            Ok(at) => at,
            Err(e) => return usage(err, format!("--at: not an RFC 3339 time ({e})")),
        },
    };
    let policy = match &args.policy {
        None => Policy::default(),
        Some(p) => {
            let text = match std::fs::read_to_string(p) {
                Ok(t) => t,
                Err(e) => return usage(err, format!("--policy {}: {e}", p.display())),
            };
            let parsed = if text.trim_start().starts_with('{') {
                Policy::from_json(&text)
            } else {
                Policy::from_yaml(&text)
            };
            match parsed {
                Ok(p) => p,
                Err(e) => return usage(err, format!("--policy {}: {e}", p.display())),
            }
        }
    };
    let mut files = Vec::new();
    for path in args.report.iter().chain(&args.certs) {
        match std::fs::read(path) {
            Ok(b) => files.push(b),
            Err(e) => return usage(err, format!("{}: {e}", path.display())),
        }
    }
    let (report_bytes, cert_files) = match args.report {
        Some(_) => (Some(files.remove(0)), files),
        None => (None, files),
    };
    let verdict = (|| {
        let mut certs = Vec::new();
        for (bytes, path) in cert_files.iter().zip(&args.certs) {
            match vaultlet_snp::certs::certs_from_file_bytes(bytes) {
                Ok(c) => certs.extend(c),
                Err(e) => return parse_failure(format!("{}: {e}", path.display())),
            }
        }
        let verifier = Verifier::default();
        match report_bytes {
            None => verifier.verify_chain(&certs, at),
            Some(b) => match decode_report(&b) {
                Ok(ReportFile::Raw(r)) | Ok(ReportFile::Hcl { report: r, .. }) => {
                    verifier.verify(&Evidence::new(r, certs), &policy, at)
                }
                Err(e) => parse_failure(e),
            },
        }
    })();
    // A closed stdout (`| head -1`, `| grep -q`) must not turn the verdict's
    // exit code into a panic.
    let text = if args.json {
        format!("{}\n", verdict_json(&verdict))
    } else {
        verdict.to_string()
    };
    let _ = out.write_all(text.as_bytes());
    if verdict.accepted { 0 } else { 1 }
}
