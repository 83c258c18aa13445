//! Delivery to the target path: mounting (behind the [`Mounter`] trait),
//! the atomic writer (kubelet's `..data` layout) and teardown.
//!
//! `sys` is the only module with `unsafe`.

mod atomic_writer;
mod fake;
pub mod fuse;
pub mod sys;
mod teardown;
mod tmpfs;

use std::path::Path;

pub use atomic_writer::{
    Payload, PayloadFile, WriteOutcome, visible_tree_matches, write_payload,
    zero_and_remove_payload,
};
pub use fake::{FakeMounter, MountCall, REQUIRE_PRIVILEGED_ENV, privileged_or_skip};
pub use teardown::{Teardown, teardown_target};
pub use tmpfs::SysMounter;

/// Filesystem found at a path, as far as unpublish cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountState {
    /// Nothing is mounted at the path (it may or may not exist).
    NotMounted,
    /// A tmpfs is mounted exactly at the path.
    Tmpfs,
    /// A FUSE filesystem (e.g. a bind of vaultlet's namespace mount) is
    /// mounted exactly at the path.
    Fuse,
    /// Some other filesystem is mounted exactly at the path.
    Foreign,
}

/// Errors of mounting, writing and teardown. Never carries file contents.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A syscall failed on a path.
    #[error("{op} {path}: {source}")]
    Io {
        /// Operation, e.g. `mount tmpfs`, `write`, `rename ..data`.
        op: &'static str,
        /// Path acted on (volume paths only, never contents).
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The volume's content does not fit the tmpfs size cap (ENOSPC).
    #[error("volume content does not fit the tmpfs size cap of {limit} bytes")]
    TooLarge {
        /// The cap in bytes.
        limit: u64,
    },
    /// The target is something vaultlet must not touch: another filesystem
    /// mounted there, a symlink, a regular file.
    #[error("target {path} is {what}; refusing to touch it")]
    Foreign {
        /// The target path.
        path: String,
        /// e.g. `a symlink`, `a regular file`, `another filesystem (ext4)`.
        what: String,
    },
}

/// Mount operations, so that publish and unpublish logic can be tested with
/// [`FakeMounter`] and without root.
pub trait Mounter: Send + Sync + std::fmt::Debug {
    /// Mounts a fresh tmpfs at `target` with
    /// `mode=0755,noexec,nosuid,nodev,size=<size_bytes>`.
    ///
    /// # Errors
    /// [`MountError::Io`].
    fn mount_tmpfs(&self, target: &Path, size_bytes: u64) -> Result<(), MountError>;

    /// Bind-mounts the directory `source` onto `target`, then remounts the
    /// bind read-only with `nosuid,nodev,noexec` (the FUSE backend's volume
    /// subdirectory onto a pod's target path).
    ///
    /// # Errors
    /// [`MountError::Io`]; on a failed remount the bind is undone.
    fn bind_mount_readonly(&self, source: &Path, target: &Path) -> Result<(), MountError>;

    /// Unmounts `target` (`MNT_DETACH` when `lazy`).
    ///
    /// # Errors
    /// [`MountError::Io`]; `EINVAL` (not a mount point) is also an error.
    fn unmount(&self, target: &Path, lazy: bool) -> Result<(), MountError>;

    /// What is mounted exactly at `target` (not at an ancestor).
    ///
    /// # Errors
    /// [`MountError::Io`] when the mount table cannot be read.
    fn mount_state(&self, target: &Path) -> Result<MountState, MountError>;
}
