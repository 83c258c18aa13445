//! The `sim:KEYFILE` source (feature `sim`, tests only): fresh synthetic
//! reports signed with a test VCEK key, so the whole confidential path runs
//! without SEV-SNP hardware. Its chain never ends at an AMD root: the
//! verifier accepts it only with the ARK given as `--attestation-extra-roots`,
//! and the verdict then says `non-AMD root`.
//!
//! KEYFILE is one PEM file holding, in this order:
//! 1. `PRIVATE KEY`: the VCEK's P-384 private key, PKCS#8;
//! 2. `CERTIFICATE` blocks: the VCEK, then ASK and ARK (any order after the
//!    key);
//! 3. optionally `SEV-SNP REPORT`: a 1184-byte report used as the template
//!    (measurement, policy, VMPL, TCB...). Without it, a version 3 report
//!    matching the VCEK's extensions (TCB, hwID, generation) with policy
//!    0x30000, VMPL 0 and a zero measurement is used.
//!
//! Each report is the template with REPORT_DATA replaced, then signed.

#[cfg(all(feature = "sim", not(debug_assertions)))]
compile_error!(
    "the `sim` feature (synthetic SEV-SNP evidence) is for tests only and refuses builds without debug assertions (release)"
);

use std::path::Path;

use p384::ecdsa::SigningKey;
use p384::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use vaultlet_snp::report::{Cpuid, KeyInfo, SigningKey as KeySel};
use vaultlet_snp::{CertRole, Generation, Report, TcbParts, TcbVersion};

use super::AttestError;
use super::source::Gathered;

const NAME: &str = "sim";
/// The PEM tag of the optional template report.
pub const TEMPLATE_TAG: &str = "SEV-SNP REPORT";

fn err(reason: impl Into<String>) -> AttestError {
    AttestError::Source {
        source_name: NAME,
        reason: reason.into(),
    }
}

/// Writes a KEYFILE: `key`, the certificates (VCEK first), and an optional
/// template report.
pub fn keyfile_pem(key: &SigningKey, certs: &[Vec<u8>], template: Option<&[u8]>) -> String {
    let mut blocks = Vec::new();
    if let Ok(der) = key.to_pkcs8_der() {
        blocks.push(pem::Pem::new("PRIVATE KEY", der.as_bytes().to_vec()));
    }
    for c in certs {
        blocks.push(pem::Pem::new("CERTIFICATE", c.clone()));
    }
    if let Some(t) = template {
        blocks.push(pem::Pem::new(TEMPLATE_TAG, t.to_vec()));
    }
    pem::encode_many(&blocks)
}

/// What a KEYFILE holds.
struct KeyFile {
    key: SigningKey,
    certs: Vec<Vec<u8>>,
    template: Option<Report>,
}

fn load(path: &Path) -> Result<KeyFile, AttestError> {
    let text = std::fs::read(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let blocks = pem::parse_many(&text).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let mut key = None;
    let mut certs = Vec::new();
    let mut template = None;
    for b in blocks {
        match b.tag() {
            "PRIVATE KEY" => {
                key = Some(
                    SigningKey::from_pkcs8_der(b.contents())
                        .map_err(|_| err(format!("{}: not a P-384 PKCS#8 key", path.display())))?,
                );
            }
            "CERTIFICATE" => certs.push(b.into_contents()),
            TEMPLATE_TAG => {
                template = Some(
                    Report::parse(b.contents())
                        .map_err(|e| err(format!("{}: template: {e}", path.display())))?,
                );
            }
            other => {
                return Err(err(format!(
                    "{}: unexpected PEM block {other}",
                    path.display()
                )));
            }
        }
    }
    let key = key.ok_or_else(|| err(format!("{}: no PRIVATE KEY block", path.display())))?;
    Ok(KeyFile {
        key,
        certs,
        template,
    })
}

/// A template matching the VCEK among `certs`.
fn default_template(certs: &[Vec<u8>]) -> Result<Report, AttestError> {
    let vek = certs
        .iter()
        .find(|c| vaultlet_snp::certs::classify(c).is_ok_and(CertRole::is_vek))
        .ok_or_else(|| err("KEYFILE has no VCEK certificate"))?;
    let ext = vaultlet_snp::certs::vek_extensions(vek).map_err(|e| err(e.to_string()))?;
    let generation = ext.generation().unwrap_or(Generation::Milan);
    let (family, model) = match generation {
        Generation::Milan => (0x19, 0x01),
        Generation::Genoa => (0x19, 0x11),
        Generation::Turin => (0x1A, 0x02),
    };
    let tcb = TcbVersion::encode(
        TcbParts {
            fmc: generation.has_fmc().then_some(ext.fmc.unwrap_or(0)),
            bl: ext.bl.unwrap_or(0),
            tee: ext.tee.unwrap_or(0),
            snp: ext.snp.unwrap_or(0),
            ucode: ext.ucode.unwrap_or(0),
        },
        generation,
    );
    let mut chip_id = [0u8; 64];
    if let Some(h) = &ext.hwid {
        let n = h.len().min(64);
        chip_id[..n].copy_from_slice(&h[..n]);
    }
    Ok(Report {
        cpuid: Some(Cpuid {
            family,
            model,
            stepping: 1,
        }),
        current_tcb: tcb,
        reported_tcb: tcb,
        committed_tcb: tcb,
        launch_tcb: tcb,
        chip_id,
        key_info: KeyInfo::new(false, false, KeySel::Vcek),
        ..Report::default()
    })
}

/// A fresh report with `report_data`, signed with KEYFILE's key.
///
/// # Errors
/// [`AttestError::Source`] for an unreadable or malformed KEYFILE.
pub fn gather(path: &Path, report_data: &[u8; 64]) -> Result<Gathered, AttestError> {
    let file = load(path)?;
    let mut report = match file.template {
        Some(t) => t,
        None => default_template(&file.certs)?,
    };
    report.report_data = *report_data;
    let bytes = vaultlet_snp::sign::sign_report(&mut report, &file.key);
    Ok(Gathered {
        source: NAME,
        report: bytes.to_vec(),
        hcl: None,
        certs: file.certs,
        bound: true,
    })
}
