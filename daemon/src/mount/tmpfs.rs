//! [`SysMounter`]: the real [`Mounter`] on Linux.

use std::path::Path;

use super::{MountError, MountState, Mounter};

/// Mounts with `mount(2)` through `nix` and reads `/proc/self/mountinfo`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SysMounter;

impl Mounter for SysMounter {
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
