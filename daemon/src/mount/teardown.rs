//! Unpublish: remove everything vaultlet put at a target, and nothing else.

use std::path::Path;

use super::{MountError, Mounter};

/// What [`teardown_target`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Teardown {
    /// The target did not exist.
    Absent,
    /// A tmpfs was zeroed, unmounted and the dir removed.
    UnmountedTmpfs,
    /// A FUSE mount was unmounted and the dir removed.
    UnmountedFuse,
    /// A plain directory was emptied (files zeroed first) and removed.
    RemovedDir,
}

/// Tears down `target` per DESIGN §5.
///
/// # Errors
/// [`MountError::Foreign`] for another filesystem, a symlink or a regular
/// file at the target; [`MountError::Io`] otherwise.
pub fn teardown_target(mounter: &dyn Mounter, target: &Path) -> Result<Teardown, MountError> {
    let _ = (mounter, target);
    todo!("mount helper")
}
