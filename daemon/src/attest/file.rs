//! The `file:PATH` source and the report-file reader shared with
//! `vaultlet attest verify`.
//!
//! A report file is one of:
//! - an Azure HCL report (starts with `HCLA`): the SNP report inside it is
//!   used, after the REPORT_DATA binding check;
//! - hex text (only hex digits and whitespace): decoded;
//! - anything else: the raw report bytes (1184 for a valid report; the
//!   verifier's `parse` check judges the length).
//!
//! Certificates for `file:PATH` come from `PATH.certs.pem` when it exists
//! (a PEM bundle of the VCEK or VLEK, its ASK or ASVK and the ARK, in any
//! order); otherwise they are fetched from the AMD KDS.

use std::path::{Path, PathBuf};

use vaultlet_snp::HclReport;
use vaultlet_snp::hcl::HCL_SIGNATURE;

use super::AttestError;
use super::source::Gathered;

const NAME: &str = "file";

/// A report read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportFile {
    /// Raw report bytes (or what the file held).
    Raw(Vec<u8>),
    /// An Azure HCL report and the SNP report inside it.
    Hcl {
        /// The whole HCL report.
        hcl: Vec<u8>,
        /// The 1184-byte SNP report inside.
        report: Vec<u8>,
    },
}

impl ReportFile {
    /// The SNP report bytes.
    pub fn report(&self) -> &[u8] {
        match self {
            Self::Raw(r) | Self::Hcl { report: r, .. } => r,
        }
    }
}

/// Decodes a report file's bytes (see the module docs).
///
/// # Errors
/// The HCL parse or binding failure as a message.
pub fn decode_report(bytes: &[u8]) -> Result<ReportFile, String> {
    if bytes.starts_with(&HCL_SIGNATURE) {
        let hcl = HclReport::parse(bytes).map_err(|e| format!("hcl report: {e}"))?;
        return Ok(ReportFile::Hcl {
            report: hcl.snp_report_bytes().to_vec(),
            hcl: bytes.to_vec(),
        });
    }
    let is_hex_text = !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace())
        && bytes.iter().any(u8::is_ascii_hexdigit);
    if is_hex_text {
        let digits: Vec<u8> = bytes
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if let Ok(raw) = hex::decode(digits) {
            return Ok(ReportFile::Raw(raw));
        }
    }
    Ok(ReportFile::Raw(bytes.to_vec()))
}

/// The sibling certificate file of `path`: `PATH.certs.pem`.
pub fn certs_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".certs.pem");
    PathBuf::from(p)
}

/// Reads `path` (and `PATH.certs.pem` if present).
///
/// # Errors
/// [`AttestError::Source`] naming the file.
pub fn gather(path: &Path) -> Result<Gathered, AttestError> {
    let err = |reason: String| AttestError::Source {
        source_name: NAME,
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let decoded = decode_report(&bytes).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let cp = certs_path(path);
    let certs = match std::fs::read(&cp) {
        Ok(pem) => vaultlet_snp::certs::certs_from_file_bytes(&pem)
            .map_err(|e| err(format!("{}: {e}", cp.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(err(format!("{}: {e}", cp.display()))),
    };
    let (report, hcl) = match decoded {
        ReportFile::Raw(r) => (r, None),
        ReportFile::Hcl { hcl, report } => (report, Some(hcl)),
    };
    Ok(Gathered {
        source: NAME,
        report,
        hcl,
        certs,
        bound: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_text_raw_and_hcl_are_told_apart() {
        assert_eq!(
            decode_report(b"0a0B\n ff\n"),
            Ok(ReportFile::Raw(vec![0x0a, 0x0b, 0xff]))
        );
        assert_eq!(
            decode_report(&[0u8, 1, 2]),
            Ok(ReportFile::Raw(vec![0, 1, 2]))
        );
        assert!(decode_report(b"HCLA-too-short").is_err());
        assert_eq!(
            certs_path(Path::new("/a/r.bin")),
            PathBuf::from("/a/r.bin.certs.pem")
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = gather(Path::new("/nonexistent/r.bin")).expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/r.bin"), "{e}");
    }
}
