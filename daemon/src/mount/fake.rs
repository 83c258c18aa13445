//! [`FakeMounter`]: records calls and can inject failures; and
//! [`privileged_or_skip`], the gate of tests that need root.
//!
//! The fake never touches the filesystem: it keeps its own table of what is
//! "mounted" where, keyed by the path exactly as given (no canonicalisation).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use nix::errno::Errno;

use super::{MountError, MountState, Mounter};

/// A recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountCall {
    /// `mount_tmpfs(target, size)`
    MountTmpfs(String, u64),
    /// `bind_mount_readonly(source, target)`
    BindReadonly(String, String),
    /// `unmount(target, lazy)`
    Unmount(String, bool),
}

/// A [`Mounter`] for tests without root.
///
/// - Every call is recorded (failed ones too), see [`FakeMounter::calls`].
/// - `mount_tmpfs` pushes [`MountState::Tmpfs`] on the target's stack of
///   mounts, `unmount` pops it (`EINVAL` when nothing is mounted), and
///   `mount_state` answers the top of the stack.
/// - [`FakeMounter::fail_next_mount`] / [`FakeMounter::fail_next_unmount`]
///   make the next such call fail once with the given errno, without
///   changing the table.
#[derive(Debug, Default)]
pub struct FakeMounter {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<MountCall>,
    /// Mounts per target, bottom first.
    mounts: HashMap<PathBuf, Vec<MountState>>,
    fail_mount: Option<Errno>,
    fail_unmount: Option<Errno>,
}

impl FakeMounter {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock leaves the table
        // consistent (every update is a single push/pop/insert).
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<MountCall> {
        self.lock().calls.clone()
    }

    /// The next `mount_tmpfs` fails with `errno` (once).
    pub fn fail_next_mount(&self, errno: Errno) {
        self.lock().fail_mount = Some(errno);
    }

    /// The next `unmount` fails with `errno` (once).
    pub fn fail_next_unmount(&self, errno: Errno) {
        self.lock().fail_unmount = Some(errno);
    }

    /// Pretends `state` is what is mounted at `target`, replacing whatever
    /// the fake had there ([`MountState::NotMounted`] clears it).
    pub fn set_state(&self, target: &Path, state: MountState) {
        let mut inner = self.lock();
        if state == MountState::NotMounted {
            inner.mounts.remove(target);
        } else {
            inner.mounts.insert(target.to_path_buf(), vec![state]);
        }
    }

    /// Pretends one more filesystem is mounted on top of whatever is at
    /// `target` (a stack of mounts; `unmount` pops the top one).
    pub fn push_stacked_state(&self, target: &Path, state: MountState) {
        if state == MountState::NotMounted {
            return;
        }
        self.lock()
            .mounts
            .entry(target.to_path_buf())
            .or_default()
            .push(state);
    }
}

fn fake_err(op: &'static str, target: &Path, errno: Errno) -> MountError {
    MountError::Io {
        op,
        path: target.display().to_string(),
        source: errno.into(),
    }
}

impl Mounter for FakeMounter {
    fn mount_tmpfs(&self, target: &Path, size_bytes: u64) -> Result<(), MountError> {
        let mut inner = self.lock();
        inner.calls.push(MountCall::MountTmpfs(
            target.display().to_string(),
            size_bytes,
        ));
        if let Some(errno) = inner.fail_mount.take() {
            return Err(fake_err("mount tmpfs", target, errno));
        }
        inner
            .mounts
            .entry(target.to_path_buf())
            .or_default()
            .push(MountState::Tmpfs);
        Ok(())
    }

    fn bind_mount_readonly(&self, source: &Path, target: &Path) -> Result<(), MountError> {
        let mut inner = self.lock();
        inner.calls.push(MountCall::BindReadonly(
            source.display().to_string(),
            target.display().to_string(),
        ));
        if let Some(errno) = inner.fail_mount.take() {
            return Err(fake_err("bind mount", target, errno));
        }
        inner
            .mounts
            .entry(target.to_path_buf())
            .or_default()
            .push(MountState::Fuse);
        Ok(())
    }

    fn unmount(&self, target: &Path, lazy: bool) -> Result<(), MountError> {
        let mut inner = self.lock();
        inner
            .calls
            .push(MountCall::Unmount(target.display().to_string(), lazy));
        if let Some(errno) = inner.fail_unmount.take() {
            return Err(fake_err("unmount", target, errno));
        }
        let Some(stack) = inner.mounts.get_mut(target) else {
            return Err(fake_err("unmount", target, Errno::EINVAL));
        };
        stack.pop();
        if stack.is_empty() {
            inner.mounts.remove(target);
        }
        Ok(())
    }

    fn mount_state(&self, target: &Path) -> Result<MountState, MountError> {
        Ok(self
            .lock()
            .mounts
            .get(target)
            .and_then(|s| s.last().copied())
            .unwrap_or(MountState::NotMounted))
    }
}

/// Environment variable that turns a privileged test's skip into a failure.
pub const REQUIRE_PRIVILEGED_ENV: &str = "VAULTLET_REQUIRE_PRIVILEGED";

/// Gate for tests that need root (real mounts). Returns `true` when running
/// as root. Otherwise prints why test `name` is skipped and returns `false`,
/// or panics when `VAULTLET_REQUIRE_PRIVILEGED=1` (CI runs as root, so a
/// skip there is a bug).
///
/// # Panics
/// When not root and `VAULTLET_REQUIRE_PRIVILEGED=1`.
pub fn privileged_or_skip(name: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var(REQUIRE_PRIVILEGED_ENV).is_ok_and(|v| v == "1") {
        panic!("{name}: needs root (real mounts) and {REQUIRE_PRIVILEGED_ENV}=1 forbids skipping");
    }
    eprintln!(
        "skipping {name}: needs root for real mounts (set {REQUIRE_PRIVILEGED_ENV}=1 to fail instead)"
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno_of(e: &MountError) -> Option<i32> {
        match e {
            MountError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    #[test]
    fn records_calls_and_tracks_state() {
        let m = FakeMounter::default();
        let t = Path::new("/fake/target");
        assert_eq!(m.mount_state(t).expect("state"), MountState::NotMounted);
        m.mount_tmpfs(t, 1024).expect("mount");
        assert_eq!(m.mount_state(t).expect("state"), MountState::Tmpfs);
        assert_eq!(
            m.mount_state(Path::new("/fake")).expect("state"),
            MountState::NotMounted
        );
        m.unmount(t, true).expect("unmount");
        assert_eq!(m.mount_state(t).expect("state"), MountState::NotMounted);
        assert_eq!(
            m.calls(),
            vec![
                MountCall::MountTmpfs("/fake/target".into(), 1024),
                MountCall::Unmount("/fake/target".into(), true),
            ]
        );
    }

    #[test]
    fn unmount_of_unmounted_is_einval() {
        let m = FakeMounter::default();
        let err = m.unmount(Path::new("/x"), false).expect_err("not mounted");
        assert_eq!(errno_of(&err), Some(libc::EINVAL));
        assert_eq!(m.calls().len(), 1, "failed calls are recorded too");
    }

    #[test]
    fn injected_failures_are_one_shot() {
        let m = FakeMounter::default();
        let t = Path::new("/t");
        m.fail_next_mount(Errno::ENOSPC);
        let err = m.mount_tmpfs(t, 1).expect_err("injected");
        assert_eq!(errno_of(&err), Some(libc::ENOSPC));
        assert_eq!(m.mount_state(t).expect("state"), MountState::NotMounted);
        m.mount_tmpfs(t, 1).expect("second mount works");

        m.fail_next_unmount(Errno::EBUSY);
        let err = m.unmount(t, false).expect_err("injected");
        assert_eq!(errno_of(&err), Some(libc::EBUSY));
        assert_eq!(
            m.mount_state(t).expect("state"),
            MountState::Tmpfs,
            "failed unmount keeps the mount"
        );
        m.unmount(t, false).expect("second unmount works");
        assert_eq!(m.mount_state(t).expect("state"), MountState::NotMounted);
    }

    #[test]
    fn set_state_and_stacks() {
        let m = FakeMounter::default();
        let t = Path::new("/t");
        m.set_state(t, MountState::Foreign);
        assert_eq!(m.mount_state(t).expect("state"), MountState::Foreign);
        m.push_stacked_state(t, MountState::Fuse);
        assert_eq!(m.mount_state(t).expect("state"), MountState::Fuse);
        m.unmount(t, false).expect("pop");
        assert_eq!(m.mount_state(t).expect("state"), MountState::Foreign);
        m.set_state(t, MountState::NotMounted);
        assert_eq!(m.mount_state(t).expect("state"), MountState::NotMounted);
    }

    #[test]
    fn privileged_gate_matches_euid() {
        if nix::unistd::geteuid().is_root() {
            assert!(privileged_or_skip("privileged_gate_matches_euid"));
        } else if std::env::var(REQUIRE_PRIVILEGED_ENV).is_ok_and(|v| v == "1") {
            let r = std::panic::catch_unwind(|| privileged_or_skip("gate"));
            assert!(r.is_err(), "must panic when root is required");
        } else {
            assert!(!privileged_or_skip("privileged_gate_matches_euid"));
        }
    }
}
