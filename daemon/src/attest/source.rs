//! Evidence sources: where the node's SEV-SNP report comes from
//! (`--attestation-source`), and the dispatch that gathers one.
//!
//! Every source is asked for a report whose REPORT_DATA is given (the
//! runtime data binding), except `file:`, which replays what it holds.
//! Gathering is blocking file and device I/O; callers run it off the async
//! workers.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{AttestError, certtable, file, sev_guest, tsm, vtpm};

/// `--attestation-source`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SourceSpec {
    /// Try `sev-guest`, then `tsm`, then `vtpm`.
    #[default]
    Auto,
    /// `/dev/sev-guest`, `SNP_GET_EXT_REPORT`.
    SevGuest,
    /// configfs-tsm, `/sys/kernel/config/tsm/report`.
    Tsm,
    /// The Azure CVM vTPM HCL report.
    Vtpm,
    /// A report read from a file (offline use; see [`file`](mod@super::file)).
    File(PathBuf),
    /// Synthetic reports signed with a test key (feature `sim`, tests only).
    Sim(PathBuf),
}

impl SourceSpec {
    /// Parses the flag value.
    ///
    /// # Errors
    /// A reason naming the accepted forms.
    pub fn parse(s: &str) -> Result<Self, String> {
        const FORMS: &str = "expected auto, sev-guest, tsm, vtpm, file:PATH or sim:KEYFILE";
        match s.trim() {
            "" | "auto" => Ok(Self::Auto),
            "sev-guest" => Ok(Self::SevGuest),
            "tsm" => Ok(Self::Tsm),
            "vtpm" => Ok(Self::Vtpm),
            other => {
                if let Some(p) = other.strip_prefix("file:").filter(|p| !p.is_empty()) {
                    return Ok(Self::File(PathBuf::from(p)));
                }
                if let Some(p) = other.strip_prefix("sim:").filter(|p| !p.is_empty()) {
                    if cfg!(feature = "sim") {
                        return Ok(Self::Sim(PathBuf::from(p)));
                    }
                    return Err(
                        "sim: needs a build with the `sim` feature (tests only, never release)"
                            .into(),
                    );
                }
                Err(FORMS.into())
            }
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::SevGuest => f.write_str("sev-guest"),
            Self::Tsm => f.write_str("tsm"),
            Self::Vtpm => f.write_str("vtpm"),
            Self::File(p) => write!(f, "file:{}", p.display()),
            Self::Sim(p) => write!(f, "sim:{}", p.display()),
        }
    }
}

/// Evidence as gathered, before verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gathered {
    /// Which source gave it (`sev-guest`, `tsm`, `vtpm`, `file`, `sim`).
    pub source: &'static str,
    /// The raw 1184-byte report as signed (or whatever the file held: the
    /// verifier's `parse` check judges it).
    pub report: Vec<u8>,
    /// The whole Azure HCL report when the report came wrapped in one.
    pub hcl: Option<Vec<u8>>,
    /// Certificates (DER) that came with the report; may be empty.
    pub certs: Vec<Vec<u8>>,
    /// Whether REPORT_DATA was requested by us (false for `file:`).
    pub bound: bool,
}

/// Gathers evidence from `spec` with `report_data` as REPORT_DATA (for
/// `vtpm`: the user data the HCL hashes into its variable data).
///
/// # Errors
/// [`AttestError::NoSource`] when `auto` finds nothing, else the source's
/// error.
pub fn gather(spec: &SourceSpec, report_data: &[u8; 64]) -> Result<Gathered, AttestError> {
    match spec {
        SourceSpec::Auto => {
            if sev_guest::available() {
                sev_guest::gather(report_data)
            } else if tsm::available() {
                tsm::gather(report_data)
            } else if vtpm::available() {
                vtpm::gather(report_data)
            } else {
                Err(AttestError::NoSource)
            }
        }
        SourceSpec::SevGuest => sev_guest::gather(report_data),
        SourceSpec::Tsm => tsm::gather(report_data),
        SourceSpec::Vtpm => vtpm::gather(report_data),
        SourceSpec::File(path) => file::gather(path),
        SourceSpec::Sim(path) => sim_gather(path, report_data),
    }
}

#[cfg(feature = "sim")]
fn sim_gather(path: &Path, report_data: &[u8; 64]) -> Result<Gathered, AttestError> {
    super::sim::gather(path, report_data)
}

#[cfg(not(feature = "sim"))]
fn sim_gather(path: &Path, _: &[u8; 64]) -> Result<Gathered, AttestError> {
    Err(AttestError::Source {
        source_name: "sim",
        reason: format!("{}: this build has no `sim` feature", path.display()),
    })
}

/// The DER certificates of a host certificate table, VEK first.
pub(crate) fn certs_from_table(
    source_name: &'static str,
    table: &[u8],
) -> Result<Vec<Vec<u8>>, AttestError> {
    let entries = certtable::parse(table).map_err(|reason| AttestError::Source {
        source_name,
        reason,
    })?;
    Ok(entries.into_iter().map(|(_, der)| der).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_forms() {
        assert_eq!(SourceSpec::parse("auto"), Ok(SourceSpec::Auto));
        assert_eq!(SourceSpec::parse("sev-guest"), Ok(SourceSpec::SevGuest));
        assert_eq!(SourceSpec::parse("tsm"), Ok(SourceSpec::Tsm));
        assert_eq!(SourceSpec::parse("vtpm"), Ok(SourceSpec::Vtpm));
        assert_eq!(
            SourceSpec::parse("file:/r.bin"),
            Ok(SourceSpec::File("/r.bin".into()))
        );
        assert!(SourceSpec::parse("file:").is_err());
        assert!(SourceSpec::parse("tpm").is_err());
        assert_eq!(
            SourceSpec::parse("sim:/k.pem").is_ok(),
            cfg!(feature = "sim")
        );
        assert_eq!(SourceSpec::File("/x".into()).to_string(), "file:/x");
    }
}
