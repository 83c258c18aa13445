//! [`FakeMounter`]: records calls and can inject failures.

use std::path::Path;

use super::{MountError, MountState, Mounter};

/// A recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountCall {
    /// `mount_tmpfs(target, size)`
    MountTmpfs(String, u64),
    /// `unmount(target, lazy)`
    Unmount(String, bool),
}

/// A [`Mounter`] for tests without root.
#[derive(Debug, Default)]
pub struct FakeMounter {}

impl Mounter for FakeMounter {
    fn mount_tmpfs(&self, target: &Path, size_bytes: u64) -> Result<(), MountError> {
        let _ = (target, size_bytes);
        todo!("mount helper")
    }
    fn unmount(&self, target: &Path, lazy: bool) -> Result<(), MountError> {
        let _ = (target, lazy);
        todo!("mount helper")
    }
    fn mount_state(&self, target: &Path) -> Result<MountState, MountError> {
        let _ = target;
        todo!("mount helper")
    }
}
