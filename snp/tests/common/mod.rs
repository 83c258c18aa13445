//! Shared test helpers: locating the public SEV-SNP vectors and loading them.
//!
//! The vectors live outside the repository, in
//! `$VAULTLET_SHARED_DIR/snp-vectors` (default `<workspace>/../shared`). When
//! the folder is absent a test prints why it is skipped and passes, unless
//! `VAULTLET_REQUIRE_SHARED=1` or `VAULTLET_REQUIRE_PRIVILEGED=1` is set.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vaultlet_snp::certs;

/// 2025-06-01T00:00:00Z, the manifest's pinned verification time.
pub fn pinned_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_748_736_000)
}

/// 2026-11-29T00:00:00Z, the manifest's collection date ("now" there).
pub fn collection_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_910_400)
}

/// The vectors folder, or `None` (after printing why) when it is absent
/// and skipping is allowed.
pub fn vectors(test: &str) -> Option<PathBuf> {
    let base = std::env::var_os("VAULTLET_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let dir = base.join("snp-vectors");
    if dir.join("MANIFEST.md").is_file() {
        return Some(dir);
    }
    let required = ["VAULTLET_REQUIRE_SHARED", "VAULTLET_REQUIRE_PRIVILEGED"]
        .iter()
        .find(|v| std::env::var(v).is_ok_and(|x| x == "1"));
    if let Some(var) = required {
        panic!(
            "{test}: no SEV-SNP vectors at {}, and {var}=1 forbids skipping",
            dir.display()
        );
    }
    eprintln!(
        "skipping {test}: no SEV-SNP vectors at {} (set VAULTLET_SHARED_DIR, or VAULTLET_REQUIRE_SHARED=1 to fail)",
        dir.display()
    );
    None
}

/// Read a file under the vectors folder.
pub fn read(dir: &std::path::Path, rel: &str) -> Vec<u8> {
    std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Read a PEM bundle or DER file as DER certificates.
pub fn load_certs(dir: &std::path::Path, rel: &str) -> Vec<Vec<u8>> {
    certs::certs_from_file_bytes(&read(dir, rel)).unwrap_or_else(|e| panic!("certs {rel}: {e}"))
}

/// Concatenate certificate lists.
pub fn chain(parts: &[Vec<Vec<u8>>]) -> Vec<Vec<u8>> {
    parts.iter().flatten().cloned().collect()
}

/// The process-wide synthetic CA of `generation`, or `None` (after
/// printing why) when the `openssl` CLI is missing and skipping is allowed.
pub fn synthetic_ca(
    test: &str,
    generation: vaultlet_snp::Generation,
) -> Option<std::sync::Arc<vaultlet_snp::testing::SyntheticCa>> {
    let has_openssl = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_openssl {
        let required = ["VAULTLET_REQUIRE_SHARED", "VAULTLET_REQUIRE_PRIVILEGED"]
            .iter()
            .find(|v| std::env::var(v).is_ok_and(|x| x == "1"));
        if let Some(var) = required {
            panic!("{test}: the openssl CLI is missing, and {var}=1 forbids skipping");
        }
        eprintln!("skipping {test}: the openssl CLI is missing (needed for the synthetic chain)");
        return None;
    }
    Some(vaultlet_snp::testing::SyntheticCa::get(generation).expect("synthetic CA"))
}
