//! The verifier: evidence (report bytes and DER certificates) plus a
//! [`Policy`] and a time in, a [`Verdict`] out.
//!
//! Checks run in a fixed order, each with a stable [`CheckId`]; the first
//! failure ends the run and every later check is recorded as `skip`:
//!
//! | # | id | what |
//! |---|----|------|
//! | 1 | `parse` | report is 1184 bytes; every certificate is one DER X.509 |
//! | 2 | `version` | report VERSION is 2, 3 or 5 |
//! | 3 | `generation` | v3+: from CPUID; v2: configured, else the ARK, else the VEK productName |
//! | 4 | `root_pin` | the chain's ARK is a pinned AMD root (SHA-384 of DER) or a caller extra root |
//! | 5 | `chain` | ARK self-signature, ARK→ASK/ASVK→VCEK/VLEK (RSA-PSS SHA-384 salt 48), roles, ARK generation |
//! | 6 | `validity` | the three certificates are valid at the given time |
//! | 7 | `signature` | SIGNATURE_ALGO is 1, then ECDSA P-384 SHA-384 over 0x000..0x2A0 |
//! | 8 | `key_info` | KEY_INFO.SIGNING_KEY matches the VEK type |
//! | 9 | `tcb` | VEK SPL extensions equal REPORTED_TCB |
//! | 10 | `hwid` | VCEK hwID equals CHIP_ID (skipped for a VLEK) |
//! | 11 | `reserved` | must-be-zero bytes are zero |
//! | 12 | `policy.*` | the policy, in [`PolicyCheck`] order |
//!
//! Chain-only mode (no report) runs `parse`, `root_pin`, `chain` and
//! `validity`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use ring::signature;
use x509_parser::certificate::X509Certificate;
use x509_parser::time::ASN1Time;

use crate::certs::{self, CertRole, VekExtensions};
use crate::policy::Policy;
use crate::report::{
    Generation, REPORT_LEN, Report, SIG_ALGO_ECDSA_P384_SHA384, SIG_COMPONENT_LEN, SIG_R_OFFSET,
    SIG_S_OFFSET, SIGNED_LEN, SigningKey, TcbParts, reserved_ranges,
};
use crate::roots;

/// Report versions this crate understands (ABI spec 1.55: 2; 1.57: 3; 1.58: 5).
pub const SUPPORTED_VERSIONS: [u32; 3] = [2, 3, 5];

/// A policy check, in evaluation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyCheck {
    /// `policy.measurement`: MEASUREMENT is allowed.
    Measurement,
    /// `policy.host_data`: HOST_DATA is allowed.
    HostData,
    /// `policy.report_data`: REPORT_DATA is the expected value.
    ReportData,
    /// `policy.min_tcb`: REPORTED_TCB is at least the minimum.
    MinTcb,
    /// `policy.guest_svn`: GUEST_SVN is at least the minimum.
    GuestSvn,
    /// `policy.firmware`: the current firmware is at least the minimum.
    Firmware,
    /// `policy.id_key_digest`: ID_KEY_DIGEST is allowed.
    IdKeyDigest,
    /// `policy.debug`: POLICY.DEBUG is off unless allowed.
    Debug,
    /// `policy.smt`: PLATFORM_INFO.SMT_EN is off unless allowed.
    Smt,
    /// `policy.migration_agent`: POLICY.MIGRATE_MA is off unless allowed.
    MigrationAgent,
    /// `policy.vmpl`: VMPL is the required one.
    Vmpl,
    /// `policy.generation`: the generation is allowed.
    Generation,
    /// `policy.vlek`: a VLEK-signed report is allowed.
    Vlek,
}

impl PolicyCheck {
    /// All policy checks in order.
    pub const ALL: [PolicyCheck; 13] = [
        Self::Measurement,
        Self::HostData,
        Self::ReportData,
        Self::MinTcb,
        Self::GuestSvn,
        Self::Firmware,
        Self::IdKeyDigest,
        Self::Debug,
        Self::Smt,
        Self::MigrationAgent,
        Self::Vmpl,
        Self::Generation,
        Self::Vlek,
    ];
}

/// The stable identifier of a check. [`CheckId::as_str`] gives the id used
/// in logs and docs (`parse`, `policy.vmpl`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckId {
    /// 1 `parse`.
    Parse,
    /// 2 `version`.
    Version,
    /// 3 `generation`.
    Generation,
    /// 4 `root_pin`.
    RootPin,
    /// 5 `chain`.
    Chain,
    /// 6 `validity`.
    Validity,
    /// 7 `signature`.
    Signature,
    /// 8 `key_info`.
    KeyInfo,
    /// 9 `tcb`.
    Tcb,
    /// 10 `hwid`.
    Hwid,
    /// 11 `reserved`.
    Reserved,
    /// 12 `policy.<field>`.
    Policy(PolicyCheck),
}

impl CheckId {
    /// The stable string id.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parse => "parse",
            Self::Version => "version",
            Self::Generation => "generation",
            Self::RootPin => "root_pin",
            Self::Chain => "chain",
            Self::Validity => "validity",
            Self::Signature => "signature",
            Self::KeyInfo => "key_info",
            Self::Tcb => "tcb",
            Self::Hwid => "hwid",
            Self::Reserved => "reserved",
            Self::Policy(p) => match p {
                PolicyCheck::Measurement => "policy.measurement",
                PolicyCheck::HostData => "policy.host_data",
                PolicyCheck::ReportData => "policy.report_data",
                PolicyCheck::MinTcb => "policy.min_tcb",
                PolicyCheck::GuestSvn => "policy.guest_svn",
                PolicyCheck::Firmware => "policy.firmware",
                PolicyCheck::IdKeyDigest => "policy.id_key_digest",
                PolicyCheck::Debug => "policy.debug",
                PolicyCheck::Smt => "policy.smt",
                PolicyCheck::MigrationAgent => "policy.migration_agent",
                PolicyCheck::Vmpl => "policy.vmpl",
                PolicyCheck::Generation => "policy.generation",
                PolicyCheck::Vlek => "policy.vlek",
            },
        }
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Passed.
    Ok,
    /// Failed: the evidence is rejected.
    Fail,
    /// Not run (an earlier check failed, or it does not apply).
    Skip,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok",
            Self::Fail => "fail",
            Self::Skip => "skip",
        })
    }
}

/// One check's result. `detail` names values (fields, CNs, SPLs), never
/// secrets; it may be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Which check.
    pub id: CheckId,
    /// Its outcome.
    pub outcome: Outcome,
    /// Human-readable detail.
    pub detail: String,
}

/// The result of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// True iff no check failed.
    pub accepted: bool,
    /// The first failing check.
    pub first_failure: Option<CheckId>,
    /// Every check of the mode, in order.
    pub checks: Vec<CheckResult>,
    /// The chain ends at a caller-supplied extra root, not an AMD one.
    pub non_amd_root: bool,
    /// The generation, once determined.
    pub generation: Option<Generation>,
}

impl Verdict {
    /// The result of check `id`, if the mode has it.
    pub fn check(&self, id: CheckId) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// The outcome of check `id`, if the mode has it.
    pub fn outcome(&self, id: CheckId) -> Option<Outcome> {
        self.check(id).map(|c| c.outcome)
    }
}

impl fmt::Display for Verdict {
    /// A header line (`verdict: accept|reject at <id>[, <gen>][, non-AMD root]`)
    /// then one line per check: `ID: ok|fail|skip [detail]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.first_failure {
            None => write!(f, "verdict: accept")?,
            Some(id) => write!(f, "verdict: reject at {id}")?,
        }
        if let Some(g) = self.generation {
            write!(f, ", {g}")?;
        }
        if self.non_amd_root {
            write!(f, ", non-AMD root")?;
        }
        writeln!(f)?;
        for c in &self.checks {
            write!(f, "{}: {}", c.id, c.outcome)?;
            if !c.detail.is_empty() {
                write!(f, " {}", c.detail)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// What is verified: an optional raw report and the certificates (DER, any
/// order; duplicates are fine). With `report: None` the verifier runs in
/// chain-only mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The raw 1184-byte report as signed (never a re-serialization).
    pub report: Option<Vec<u8>>,
    /// ARK, ASK or ASVK, and VCEK or VLEK, as DER.
    pub certs: Vec<Vec<u8>>,
}

impl Evidence {
    /// Evidence with a report.
    pub fn new(report: impl Into<Vec<u8>>, certs: Vec<Vec<u8>>) -> Self {
        Self {
            report: Some(report.into()),
            certs,
        }
    }

    /// Evidence without a report (chain-only mode).
    pub fn chain_only(certs: Vec<Vec<u8>>) -> Self {
        Self {
            report: None,
            certs,
        }
    }
}

/// Verifies evidence against the pinned AMD roots plus optional extra roots.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    extra_roots: Vec<Vec<u8>>,
    generation: Option<Generation>,
}

/// Seconds since the epoch (negative before it).
fn unix_secs(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// The run so far: results in order and the first failure.
struct Run {
    checks: Vec<CheckResult>,
    first_failure: Option<CheckId>,
}

impl Run {
    fn new() -> Self {
        Self {
            checks: Vec::new(),
            first_failure: None,
        }
    }

    fn failed(&self) -> bool {
        self.first_failure.is_some()
    }

    /// Record `id`; when an earlier check failed, record a skip instead of
    /// running `f`. Returns whether the check passed (or was a
    /// non-failure skip).
    fn check(&mut self, id: CheckId, f: impl FnOnce() -> Step) -> bool {
        if let Some(first) = self.first_failure {
            self.checks.push(CheckResult {
                id,
                outcome: Outcome::Skip,
                detail: format!("not run: {first} failed"),
            });
            return false;
        }
        let (outcome, detail) = match f() {
            Step::Ok(d) => (Outcome::Ok, d),
            Step::Skip(d) => (Outcome::Skip, d),
            Step::Fail(d) => {
                self.first_failure = Some(id);
                (Outcome::Fail, d)
            }
        };
        self.checks.push(CheckResult {
            id,
            outcome,
            detail,
        });
        outcome != Outcome::Fail
    }
}

enum Step {
    Ok(String),
    Fail(String),
    Skip(String),
}

fn ok(s: impl Into<String>) -> Step {
    Step::Ok(s.into())
}

fn fail(s: impl Into<String>) -> Step {
    Step::Fail(s.into())
}

/// The chain as found in the certificates, by role and name, before any
/// cryptography.
struct Chain<'c, 'a> {
    vek: Option<&'c X509Certificate<'a>>,
    vek_der: Option<&'a [u8]>,
    inter: Option<&'c X509Certificate<'a>>,
    ark: Option<(&'c X509Certificate<'a>, &'a [u8])>,
    problem: Option<String>,
}

fn cn_of(cert: &X509Certificate<'_>) -> String {
    certs::common_name(cert).unwrap_or("(no CN)").to_owned()
}

fn assemble<'c, 'a>(
    parsed: &'c [(X509Certificate<'a>, &'a [u8])],
    extra: &'c [(X509Certificate<'a>, &'a [u8])],
) -> Chain<'c, 'a> {
    let mut chain = Chain {
        vek: None,
        vek_der: None,
        inter: None,
        ark: None,
        problem: None,
    };
    let mut veks = parsed
        .iter()
        .filter(|(c, _)| certs::role_of(c).is_vek())
        .collect::<Vec<_>>();
    veks.dedup_by(|a, b| a.1 == b.1);
    let self_issued = |c: &X509Certificate<'_>| c.subject().as_raw() == c.issuer().as_raw();
    match veks.as_slice() {
        [] => chain.problem = Some("no VCEK or VLEK among the certificates".into()),
        [(vek, der)] => {
            chain.vek = Some(vek);
            chain.vek_der = Some(der);
            chain.inter = parsed
                .iter()
                .map(|(c, _)| c)
                .find(|c| !self_issued(c) && c.subject().as_raw() == vek.issuer().as_raw());
            if chain.inter.is_none() {
                chain.problem = Some(format!(
                    "no certificate is the issuer of the {} ({})",
                    cn_of(vek),
                    vek.issuer()
                ));
            }
        }
        _ => chain.problem = Some(format!("{} different VCEK/VLEK certificates", veks.len())),
    }
    let want = chain.inter.map(|i| i.issuer().as_raw());
    let by_name = |(c, _): &&(X509Certificate<'a>, &'a [u8])| {
        self_issued(c) && want.is_none_or(|w| c.subject().as_raw() == w)
    };
    chain.ark = parsed
        .iter()
        .find(by_name)
        .or_else(|| extra.iter().find(by_name))
        .map(|(c, d)| (c, *d));
    if chain.ark.is_none() && chain.problem.is_none() {
        chain.problem = Some("no self-signed root issued the intermediate".into());
    }
    chain
}

/// The generation a (pinned or extra) ARK stands for.
fn ark_generation(ark: &X509Certificate<'_>, der: &[u8]) -> Option<Generation> {
    roots::pinned(der)
        .map(|p| p.generation)
        .or_else(|| certs::common_name(ark).and_then(Generation::from_product_name))
}

impl Verifier {
    /// A verifier trusting the pinned AMD ARKs and, for development and
    /// tests only, `extra_roots` (DER). A verdict that relies on an extra
    /// root has `non_amd_root` set.
    pub fn new(extra_roots: Vec<Vec<u8>>) -> Self {
        Self {
            extra_roots,
            generation: None,
        }
    }

    /// Configure the generation of the machine (used for v2 reports, and
    /// must agree with CPUID on v3+).
    pub fn with_generation(mut self, generation: Generation) -> Self {
        self.generation = Some(generation);
        self
    }

    /// Verify `evidence` against `policy` with certificates judged valid at
    /// `at`. With `evidence.report == None` this is [`Verifier::verify_chain`].
    /// Never panics on any input.
    pub fn verify(&self, evidence: &Evidence, policy: &Policy, at: SystemTime) -> Verdict {
        self.run(evidence.report.as_deref(), &evidence.certs, policy, at)
    }

    /// Chain-only mode: `parse` (certificates), `root_pin`, `chain`,
    /// `validity`.
    pub fn verify_chain(&self, certs: &[Vec<u8>], at: SystemTime) -> Verdict {
        self.run(None, certs, &Policy::default(), at)
    }

    fn run(
        &self,
        report_bytes: Option<&[u8]>,
        cert_ders: &[Vec<u8>],
        policy: &Policy,
        at: SystemTime,
    ) -> Verdict {
        let mut run = Run::new();
        let mut non_amd_root = false;
        let mut generation: Option<Generation> = None;
        let mut report: Option<Report> = None;
        let mut parsed: Vec<(X509Certificate<'_>, &[u8])> = Vec::new();
        let extra: Vec<(X509Certificate<'_>, &[u8])> = self
            .extra_roots
            .iter()
            .filter_map(|d| certs::parse_der(d).ok().map(|c| (c, d.as_slice())))
            .collect();

        // 1 parse
        run.check(CheckId::Parse, || {
            for (i, der) in cert_ders.iter().enumerate() {
                match certs::parse_der(der) {
                    Ok(c) => parsed.push((c, der.as_slice())),
                    Err(e) => return fail(format!("certificate {i}: {e}")),
                }
            }
            match report_bytes {
                None => ok(format!("{} certificates, no report", cert_ders.len())),
                Some(b) => match Report::parse(b) {
                    Ok(r) => {
                        let d = format!("report v{}, {} certificates", r.version, cert_ders.len());
                        report = Some(r);
                        ok(d)
                    }
                    Err(e) => fail(e.to_string()),
                },
            }
        });
        let chain = assemble(&parsed, &extra);

        if let Some(r) = &report {
            // 2 version
            run.check(CheckId::Version, || {
                if SUPPORTED_VERSIONS.contains(&r.version) {
                    ok(format!("{}", r.version))
                } else {
                    fail(format!("{} is not one of 2, 3, 5", r.version))
                }
            });
            // 3 generation
            run.check(CheckId::Generation, || {
                match self.report_generation(r, &chain) {
                    Ok((g, how)) => {
                        generation = Some(g);
                        ok(format!("{g} ({how})"))
                    }
                    Err(e) => fail(e),
                }
            });
        }

        // 4 root_pin
        run.check(CheckId::RootPin, || match chain.ark {
            None => fail("no self-signed root certificate"),
            Some((ark, der)) => {
                if let Some(p) = roots::pinned(der) {
                    ok(format!("{} (AMD, pinned)", p.cn))
                } else if self.extra_roots.iter().any(|e| e.as_slice() == der) {
                    non_amd_root = true;
                    ok(format!("{} (extra root: non-AMD root)", cn_of(ark)))
                } else {
                    fail(format!(
                        "root {} (sha384 {}) is neither a pinned AMD root nor an extra root",
                        cn_of(ark),
                        hex::encode(roots::sha384(der))
                    ))
                }
            }
        });

        // 5 chain
        run.check(CheckId::Chain, || {
            let (Some(vek), Some(inter), Some((ark, ark_der)), None) =
                (chain.vek, chain.inter, chain.ark, chain.problem.as_ref())
            else {
                return fail(chain.problem.clone().unwrap_or_else(|| "incomplete".into()));
            };
            let (vek_role, inter_role) = (certs::role_of(vek), certs::role_of(inter));
            match (vek_role, inter_role) {
                (CertRole::Vcek, CertRole::Ask) | (CertRole::Vlek, CertRole::Asvk) => {}
                (v, i) => {
                    return fail(format!(
                        "{v:?} {} is issued by {i:?} {}, expected {}",
                        cn_of(vek),
                        cn_of(inter),
                        if v == CertRole::Vlek {
                            "an ASVK"
                        } else {
                            "an ASK"
                        }
                    ));
                }
            }
            for (subject, issuer, what) in [
                (ark, ark, "ARK self-signature"),
                (inter, ark, "ARK -> intermediate"),
                (vek, inter, "intermediate -> VEK"),
            ] {
                if let Err(e) = certs::verify_rsa_pss(subject, issuer) {
                    return fail(format!(
                        "{what} ({} by {}): {e}",
                        cn_of(subject),
                        cn_of(issuer)
                    ));
                }
            }
            let ark_gen = ark_generation(ark, ark_der);
            match (ark_gen, generation) {
                (Some(a), Some(r)) if a != r => {
                    return fail(format!(
                        "chain ends at {} but the report is {r}",
                        cn_of(ark)
                    ));
                }
                (Some(a), None) => generation = Some(a),
                _ => {}
            }
            ok(format!(
                "{} -> {} -> {}",
                cn_of(ark),
                cn_of(inter),
                cn_of(vek)
            ))
        });

        // 6 validity
        run.check(CheckId::Validity, || {
            let secs = unix_secs(at);
            let Ok(t) = ASN1Time::from_timestamp(secs) else {
                return fail(format!("time {secs} is out of range"));
            };
            let certs = [chain.ark.map(|(c, _)| c), chain.inter, chain.vek];
            for c in certs.into_iter().flatten() {
                let v = c.validity();
                if !v.is_valid_at(t) {
                    return fail(format!(
                        "{} not valid at {t} (valid {} to {})",
                        cn_of(c),
                        v.not_before,
                        v.not_after
                    ));
                }
            }
            ok(format!("at {t}"))
        });

        if let (Some(r), Some(bytes)) = (&report, report_bytes) {
            self.report_checks(&mut run, r, bytes, &chain, generation, policy);
        }

        Verdict {
            accepted: !run.failed(),
            first_failure: run.first_failure,
            checks: run.checks,
            non_amd_root,
            generation,
        }
    }

    fn report_generation(
        &self,
        r: &Report,
        chain: &Chain<'_, '_>,
    ) -> Result<(Generation, &'static str), String> {
        if let Some(c) = r.cpuid {
            let g = Generation::from_cpuid(c.family, c.model).ok_or_else(|| {
                format!(
                    "CPUID family {:#04x} model {:#04x} is no known SEV-SNP generation",
                    c.family, c.model
                )
            })?;
            if let Some(conf) = self.generation.filter(|&conf| conf != g) {
                return Err(format!("CPUID says {g} but {conf} is configured"));
            }
            return Ok((g, "CPUID"));
        }
        if let Some(g) = self.generation {
            return Ok((g, "configured"));
        }
        if let Some(g) = chain.ark.and_then(|(a, d)| ark_generation(a, d)) {
            return Ok((g, "ARK"));
        }
        if let Some(g) = chain
            .vek
            .and_then(|v| certs::vek_extensions_of(v).ok())
            .and_then(|e| e.generation())
        {
            return Ok((g, "VEK productName"));
        }
        Err("v2 report: generation unknown (no CPUID, no known ARK; configure one)".into())
    }

    fn report_checks(
        &self,
        run: &mut Run,
        r: &Report,
        bytes: &[u8],
        chain: &Chain<'_, '_>,
        generation: Option<Generation>,
        policy: &Policy,
    ) {
        let vek_role = chain.vek.map(certs::role_of);
        // 7 signature
        run.check(CheckId::Signature, || {
            if r.signature_algo != SIG_ALGO_ECDSA_P384_SHA384 {
                return fail(format!(
                    "SIGNATURE_ALGO {} is not 1 (ECDSA P-384 SHA-384)",
                    r.signature_algo
                ));
            }
            let Some(vek) = chain.vek else {
                return fail("no VEK");
            };
            let mut sig = [0u8; 96];
            for (i, at) in [SIG_R_OFFSET, SIG_S_OFFSET].into_iter().enumerate() {
                let comp = &bytes[at..at + SIG_COMPONENT_LEN];
                if comp[48..].iter().any(|&b| b != 0) {
                    return fail(format!(
                        "{} has non-zero bytes above 48",
                        if i == 0 { "R" } else { "S" }
                    ));
                }
                for (j, b) in comp[..48].iter().rev().enumerate() {
                    sig[i * 48 + j] = *b;
                }
            }
            let key = signature::UnparsedPublicKey::new(
                &signature::ECDSA_P384_SHA384_FIXED,
                vek.public_key().subject_public_key.data.as_ref(),
            );
            match key.verify(&bytes[..SIGNED_LEN], &sig) {
                Ok(()) => ok(format!("ECDSA P-384 by {}", cn_of(vek))),
                Err(_) => fail(format!(
                    "ECDSA P-384 signature does not verify with the {} key",
                    cn_of(vek)
                )),
            }
        });
        // 8 key_info
        run.check(CheckId::KeyInfo, || {
            match (r.key_info.signing_key(), vek_role) {
                (SigningKey::Vcek, Some(CertRole::Vcek)) => ok("VCEK"),
                (SigningKey::Vlek, Some(CertRole::Vlek)) => ok("VLEK"),
                (k, role) => fail(format!("SIGNING_KEY {k:?} but the VEK is {role:?}")),
            }
        });
        let ext: Result<VekExtensions, String> = chain
            .vek
            .ok_or_else(|| "no VEK".to_string())
            .and_then(|v| certs::vek_extensions_of(v).map_err(|e| e.to_string()));
        let gen_known = generation.ok_or_else(|| "generation unknown".to_string());
        // 9 tcb
        run.check(CheckId::Tcb, || {
            let (ext, g) = match (&ext, gen_known.clone()) {
                (Ok(e), Ok(g)) => (e, g),
                (Err(e), _) => return fail(e.clone()),
                (_, Err(e)) => return fail(e),
            };
            let rep = r.reported_tcb.decode(g);
            let pairs = [
                ("blSPL", ext.bl, Some(rep.bl)),
                ("teeSPL", ext.tee, Some(rep.tee)),
                ("snpSPL", ext.snp, Some(rep.snp)),
                ("ucodeSPL", ext.ucode, Some(rep.ucode)),
                ("fmcSPL", ext.fmc, rep.fmc),
            ];
            for (name, cert, report) in pairs {
                if name == "fmcSPL" && !g.has_fmc() {
                    continue;
                }
                match (cert, report) {
                    (None, _) => return fail(format!("VEK lacks {name}")),
                    (Some(c), Some(rv)) if c == rv => {}
                    (Some(c), rv) => {
                        return fail(format!(
                            "{name}: VEK {c} but REPORTED_TCB {}",
                            rv.map_or("-".into(), |v| v.to_string())
                        ));
                    }
                }
            }
            ok(format!("REPORTED_TCB {rep}"))
        });
        // 10 hwid
        run.check(CheckId::Hwid, || {
            if vek_role == Some(CertRole::Vlek) {
                return Step::Skip("VLEK has no hwID".into());
            }
            let (ext, g) = match (&ext, gen_known.clone()) {
                (Ok(e), Ok(g)) => (e, g),
                (Err(e), _) => return fail(e.clone()),
                (_, Err(e)) => return fail(e),
            };
            let Some(hwid) = &ext.hwid else {
                return fail("VCEK lacks hwID");
            };
            let want: &[u8] = if g == Generation::Turin {
                &r.chip_id[..8]
            } else {
                &r.chip_id
            };
            if hwid.as_slice() == want {
                ok(format!("{}…", hex::encode(&hwid[..hwid.len().min(8)])))
            } else {
                fail(format!(
                    "VCEK hwID {}… ({} bytes) is not CHIP_ID {}…",
                    hex::encode(&hwid[..hwid.len().min(8)]),
                    hwid.len(),
                    hex::encode(&r.chip_id[..8])
                ))
            }
        });
        // 11 reserved
        run.check(CheckId::Reserved, || {
            for range in reserved_ranges(r.version) {
                let start = range.start;
                if let Some(i) = bytes[range].iter().position(|&b| b != 0) {
                    return fail(format!(
                        "byte {:#05x} is {:#04x}, must be zero",
                        start + i,
                        bytes[start + i]
                    ));
                }
            }
            ok("")
        });
        // 12 policy
        for pc in PolicyCheck::ALL {
            run.check(CheckId::Policy(pc), || {
                policy_check(pc, r, policy, generation, vek_role)
            });
        }
        debug_assert_eq!(bytes.len(), REPORT_LEN);
    }
}

fn allowed_list<const N: usize>(
    what: &str,
    list: &[crate::policy::Hex<N>],
    value: &[u8; N],
) -> Step {
    if list.is_empty() {
        ok("any")
    } else if list.iter().any(|h| &h.0 == value) {
        ok(hex::encode(value))
    } else {
        fail(format!("{what} {} is not allowed", hex::encode(value)))
    }
}

fn policy_check(
    pc: PolicyCheck,
    r: &Report,
    p: &Policy,
    generation: Option<Generation>,
    vek_role: Option<CertRole>,
) -> Step {
    match pc {
        PolicyCheck::Measurement => allowed_list("MEASUREMENT", &p.measurements, &r.measurement),
        PolicyCheck::HostData => allowed_list("HOST_DATA", &p.host_data, &r.host_data),
        PolicyCheck::ReportData => match &p.report_data {
            None => ok("any"),
            Some(want) if want.0 == r.report_data => ok("matches"),
            Some(_) => fail("REPORT_DATA differs from the expected value"),
        },
        PolicyCheck::MinTcb => {
            let Some(g) = generation else {
                return fail("generation unknown");
            };
            let t: TcbParts = r.reported_tcb.decode(g);
            let m = p.min_tcb;
            let comps = [
                ("bl", m.bl, Some(t.bl)),
                ("tee", m.tee, Some(t.tee)),
                ("snp", m.snp, Some(t.snp)),
                ("ucode", m.ucode, Some(t.ucode)),
                ("fmc", m.fmc, t.fmc),
            ];
            for (name, min, have) in comps {
                if let (Some(min), Some(have)) = (min, have)
                    && have < min
                {
                    return fail(format!("REPORTED_TCB {name} {have} < minimum {min}"));
                }
            }
            ok(format!("REPORTED_TCB {t}"))
        }
        PolicyCheck::GuestSvn => match p.min_guest_svn {
            Some(min) if r.guest_svn < min => {
                fail(format!("GUEST_SVN {} < minimum {min}", r.guest_svn))
            }
            _ => ok(format!("{}", r.guest_svn)),
        },
        PolicyCheck::Firmware => {
            let v = r.current_version;
            match p.min_firmware {
                Some(m) if (v.major, v.minor, v.build) < (m.major, m.minor, m.build) => {
                    fail(format!("firmware {v} < minimum {m}"))
                }
                _ => ok(format!("{v}")),
            }
        }
        PolicyCheck::IdKeyDigest => {
            allowed_list("ID_KEY_DIGEST", &p.id_key_digests, &r.id_key_digest)
        }
        PolicyCheck::Debug => {
            if r.policy.debug() && !p.debug_allowed {
                fail("guest POLICY.DEBUG is set")
            } else {
                ok(format!("debug={}", r.policy.debug()))
            }
        }
        PolicyCheck::Smt => {
            if r.platform_info.smt_en() && !p.smt_allowed {
                fail("PLATFORM_INFO.SMT_EN is set")
            } else {
                ok(format!("smt_en={}", r.platform_info.smt_en()))
            }
        }
        PolicyCheck::MigrationAgent => {
            if r.policy.migrate_ma() && !p.migration_agent_allowed {
                fail("guest POLICY.MIGRATE_MA is set")
            } else {
                ok(format!("migrate_ma={}", r.policy.migrate_ma()))
            }
        }
        PolicyCheck::Vmpl => match p.vmpl {
            Some(want) if want != r.vmpl => fail(format!("VMPL {} is not {want}", r.vmpl)),
            _ => ok(format!("{}", r.vmpl)),
        },
        PolicyCheck::Generation => match generation {
            _ if p.generations.is_empty() => ok("any"),
            Some(g) if p.generations.contains(&g) => ok(g.to_string()),
            Some(g) => fail(format!("generation {g} is not allowed")),
            None => fail("the generation is unknown"),
        },
        PolicyCheck::Vlek => {
            if vek_role == Some(CertRole::Vlek) && !p.vlek_allowed {
                fail("signed by a VLEK")
            } else {
                ok(match vek_role {
                    Some(CertRole::Vlek) => "VLEK",
                    Some(_) => "VCEK",
                    None => "no VEK",
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_ids_are_stable_strings() {
        assert_eq!(CheckId::RootPin.as_str(), "root_pin");
        assert_eq!(
            CheckId::Policy(PolicyCheck::MigrationAgent).to_string(),
            "policy.migration_agent"
        );
        assert_eq!(PolicyCheck::ALL.len(), 13);
    }

    #[test]
    fn garbage_report_fails_parse_and_skips_the_rest() {
        let v = Verifier::default().verify(
            &Evidence::new(vec![0u8; 100], vec![]),
            &Policy::default(),
            SystemTime::now(),
        );
        assert!(!v.accepted);
        assert_eq!(v.first_failure, Some(CheckId::Parse));
        assert_eq!(v.outcome(CheckId::Chain), Some(Outcome::Skip));
        let text = v.to_string();
        assert!(text.starts_with("verdict: reject at parse\n"), "{text}");
        assert!(
            text.contains("\nchain: skip not run: parse failed\n"),
            "{text}"
        );
    }

    #[test]
    fn chain_only_without_certs_fails_root_pin() {
        let v = Verifier::default().verify_chain(&[], SystemTime::now());
        assert_eq!(v.first_failure, Some(CheckId::RootPin));
        assert_eq!(v.checks.len(), 4);
    }

    #[test]
    fn unix_secs_handles_both_sides_of_the_epoch() {
        use std::time::Duration;
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_secs(5)), 5);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(5)), -5);
    }
}
