//! The crate's one error type.
//!
//! Messages name volumes, payload dirs, entry indices and paths (names the
//! daemon chose, e.g. an `objectAlias`), never file contents.

use std::io;
use std::path::PathBuf;

/// Errors of building the tree and of mounting it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A volume or payload dir name is not a single acceptable path
    /// component (see [`crate::FsTree::add_volume`] and
    /// [`crate::FsTree::swap_payload`] for the rules).
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// `volume` or `payload dir`.
        what: &'static str,
        /// The refused name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An entry's path is not an acceptable relative path.
    #[error("invalid path {path:?} of entry {index}: {reason}")]
    InvalidPath {
        /// 0-based index of the entry in the `entries` argument.
        index: usize,
        /// The refused path.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An entry's mode has bits outside 0o777.
    #[error("invalid mode {mode:#o} of entry {index}: only permission bits 0o777 are allowed")]
    InvalidMode {
        /// 0-based index of the entry.
        index: usize,
        /// The refused mode.
        mode: u32,
    },
    /// A directory's mode has bits outside 0o777.
    #[error("invalid directory mode {0:#o}: only permission bits 0o777 are allowed")]
    InvalidDirMode(u32),
    /// Two entries have the same path, or one entry's path is a directory
    /// prefix of another's (`a` and `a/b`).
    #[error("entries {first} and {second} conflict: {first_path:?} vs {second_path:?}")]
    PathConflict {
        /// Index of the entry seen first.
        first: usize,
        /// Its path.
        first_path: String,
        /// Index of the entry that conflicts with it.
        second: usize,
        /// Its path.
        second_path: String,
    },
    /// [`crate::FsTree::add_volume`] of a name that already exists.
    #[error("volume {0:?} already exists")]
    VolumeExists(String),
    /// The named volume does not exist.
    #[error("volume {0:?} not found")]
    VolumeNotFound(String),
    /// [`crate::FsTree::swap_payload`] with a dir name the volume already
    /// has.
    #[error("payload dir {payload:?} already exists in volume {volume:?}")]
    PayloadExists {
        /// The volume.
        volume: String,
        /// The payload dir name.
        payload: String,
    },
    /// [`crate::FsTree::remove_payload`] of a dir the volume does not have.
    #[error("payload dir {payload:?} not found in volume {volume:?}")]
    PayloadNotFound {
        /// The volume.
        volume: String,
        /// The payload dir name.
        payload: String,
    },
    /// [`crate::FsTree::remove_payload`] of the dir `..data` names.
    #[error("payload dir {payload:?} is the current ..data of volume {volume:?}")]
    PayloadInUse {
        /// The volume.
        volume: String,
        /// The payload dir name.
        payload: String,
    },
    /// A mount option value cannot be passed to the kernel.
    #[error("invalid mount option {option}={value:?}: {reason}")]
    InvalidOption {
        /// `fsname` or `subtype`.
        option: &'static str,
        /// The refused value.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The tree is already served by a mount (one mount per tree at a time).
    #[error("the tree is already mounted")]
    AlreadyMounted,
    /// Mounting failed: bad mount point, no `/dev/fuse`, `mount(2)` refused,
    /// or the FUSE handshake failed.
    #[error("mount fuse at {path}: {source}")]
    Mount {
        /// The mount point as given.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `umount(2)` found the mount busy (a file or directory in it is open,
    /// or something is mounted below it). The mount is left as it was.
    #[error("unmount {path}: busy")]
    Busy {
        /// The mount point.
        path: PathBuf,
    },
    /// Unmounting failed for another reason.
    #[error("unmount {path}: {source}")]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}
