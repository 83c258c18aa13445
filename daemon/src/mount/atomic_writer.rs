//! Kubelet's AtomicWriter layout (DESIGN §5), written link-safely.

use std::path::Path;

use super::MountError;
use crate::params::RelPath;
use crate::store::SecretBytes;

/// One file of a payload.
#[derive(Debug)]
pub struct PayloadFile {
    /// Path relative to the volume root (validated).
    pub path: RelPath,
    /// File mode bits (e.g. 0o644).
    pub mode: u32,
    /// Content.
    pub content: SecretBytes,
}

/// The full set of files of a volume.
#[derive(Debug, Default)]
pub struct Payload {
    /// Files, in any order; nested directories are created 0755.
    pub files: Vec<PayloadFile>,
}

/// What [`write_payload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Name of the new payload dir (`..2026_11_29_15_04_05.123456789`).
    pub new_dir: String,
    /// Name of the previous payload dir that `..data` pointed to, if any.
    /// The caller zeroes and removes it later with [`zero_and_remove_payload`].
    pub old_dir: Option<String>,
}

/// Writes `payload` into `volume_root`.
///
/// # Errors
/// [`MountError`].
pub fn write_payload(
    volume_root: &Path,
    payload: &Payload,
    tmpfs_limit: Option<u64>,
) -> Result<WriteOutcome, MountError> {
    let _ = (volume_root, payload, tmpfs_limit);
    todo!("mount helper")
}

/// Overwrites every regular file below `volume_root/<dir_name>` with zeros
/// and removes the dir, never following links.
///
/// # Errors
/// [`MountError`].
pub fn zero_and_remove_payload(volume_root: &Path, dir_name: &str) -> Result<(), MountError> {
    let _ = (volume_root, dir_name);
    todo!("mount helper")
}
