//! The `tsm` source: configfs-tsm (`Documentation/ABI/testing/configfs-tsm`).
//! A new directory under `/sys/kernel/config/tsm/report/`, REPORT_DATA
//! written to `inblob`, the report read from `outblob` and the host's
//! certificate table from `auxblob`, then the directory is removed. Plain
//! file operations; `generation` guards against a concurrent writer.

use std::path::{Path, PathBuf};

use super::AttestError;
use super::source::{Gathered, certs_from_table};

/// The configfs directory of report requests.
pub const REPORT_DIR: &str = "/sys/kernel/config/tsm/report";

const NAME: &str = "tsm";

/// Whether configfs-tsm is mounted and offers reports.
pub fn available() -> bool {
    Path::new(REPORT_DIR).is_dir()
}

fn err(reason: impl Into<String>) -> AttestError {
    AttestError::Source {
        source_name: NAME,
        reason: reason.into(),
    }
}

/// Removes the request directory when dropped.
struct Request(PathBuf);

impl Drop for Request {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Requests a report with `report_data` from configfs-tsm under `base`.
///
/// # Errors
/// [`AttestError::Source`] naming the file.
pub fn gather_at(base: &Path, report_data: &[u8; 64]) -> Result<Gathered, AttestError> {
    let dir = base.join(format!("vaultlet-{}", super::runtime::fresh_nonce()));
    std::fs::create_dir(&dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    let req = Request(dir);
    let path = |f: &str| req.0.join(f);
    let read = |f: &str| std::fs::read(path(f)).map_err(|e| err(format!("{f}: {e}")));
    if let Ok(provider) = std::fs::read_to_string(path("provider")) {
        let provider = provider.trim();
        if !provider.starts_with("sev_guest") {
            return Err(err(format!(
                "the TSM provider is {provider}, not sev_guest: this is no SEV-SNP guest"
            )));
        }
    }
    std::fs::write(path("inblob"), report_data).map_err(|e| err(format!("inblob: {e}")))?;
    let generation = std::fs::read_to_string(path("generation")).ok();
    let report = read("outblob")?;
    // auxblob is absent or empty when the host supplies no certificates.
    let aux = std::fs::read(path("auxblob")).unwrap_or_default();
    if generation.is_some() && std::fs::read_to_string(path("generation")).ok() != generation {
        return Err(err("another writer changed the request while it was read"));
    }
    Ok(Gathered {
        source: NAME,
        report,
        hcl: None,
        certs: certs_from_table(NAME, &aux)?,
        bound: true,
    })
}

/// [`gather_at`] on [`REPORT_DIR`].
///
/// # Errors
/// As [`gather_at`].
pub fn gather(report_data: &[u8; 64]) -> Result<Gathered, AttestError> {
    gather_at(Path::new(REPORT_DIR), report_data)
}
