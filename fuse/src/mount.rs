//! Mounting a tree: the options, the session thread, and unmounting.
//!
//! `fuser` mounts without libfuse: as root it opens `/dev/fuse` and calls
//! `mount(2)` with filesystem type `fuse` and the data string
//! `fd=N,rootmode=…,user_id=…,group_id=…` plus the kernel options we pass;
//! without `CAP_SYS_ADMIN` it falls back to the setuid `fusermount3`
//! helper. The subtype is passed as the kernel option `subtype=` (which
//! both paths understand), so `/proc/self/mountinfo` shows the type
//! `fuse.<subtype>` and the source `<fsname>`.

use std::io;
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use fuser::{Config, MountOption, Session, SessionACL, SessionUnmounter};
use nix::errno::Errno;
use nix::mount::{MntFlags, umount, umount2};
use tracing::{debug, warn};

use crate::error::Error;
use crate::fs::FuseFs;
use crate::tree::{FsTree, lock};

/// How a tree is mounted.
///
/// Always set, not configurable: `default_permissions` (the kernel checks
/// every access against the uid, gid and mode we report, so the
/// filesystem itself never sees a request a mode forbids), `nosuid`,
/// `nodev`, `noexec` and `noatime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Mount source shown in mountinfo and `df` (default `vaultlet`).
    /// Letters, digits, `.`, `_` and `-` only.
    pub fsname: String,
    /// Subtype: the type shows as `fuse.<subtype>` (default `vaultlet`).
    /// Letters, digits, `.`, `_` and `-` only.
    pub subtype: String,
    /// `allow_other` (default true): users other than the mounting one
    /// (pods) may access the tree, subject to `default_permissions`.
    /// Without it the kernel refuses them, and `fuser` refuses any request
    /// from a uid other than the mounting one.
    pub allow_other: bool,
    /// Mount read-only with `MS_RDONLY` (default true), so the VFS refuses
    /// writes before they reach the filesystem. With it off the filesystem
    /// still answers every write request with EROFS.
    pub read_only: bool,
    /// Threads reading `/dev/fuse` (default 2, at least 1). With more than
    /// one, each gets its own cloned fd (`FUSE_DEV_IOC_CLONE`).
    pub threads: usize,
    /// How long [`MountHandle::unmount`] waits for the session to end after
    /// `umount(2)` succeeded (default 5 s). The session outlives the mount
    /// point while a bind mount of the same filesystem exists elsewhere;
    /// after the wait it is left to finish on its own.
    pub unmount_wait: Duration,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            fsname: "vaultlet".to_owned(),
            subtype: "vaultlet".to_owned(),
            allow_other: true,
            read_only: true,
            threads: 2,
            unmount_wait: Duration::from_secs(5),
        }
    }
}

fn check_option(option: &'static str, value: &str) -> Result<(), Error> {
    let refuse = |reason| {
        Err(Error::InvalidOption {
            option,
            value: value.to_owned(),
            reason,
        })
    };
    if value.is_empty() {
        return refuse("empty");
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return refuse("only letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

impl MountOptions {
    fn fuser_config(&self) -> Config {
        let mut mount_options = vec![
            MountOption::FSName(self.fsname.clone()),
            // A kernel option (fuser's `Subtype` is only used by
            // fusermount); the kernel records it as the sb subtype.
            MountOption::CUSTOM(format!("subtype={}", self.subtype)),
            MountOption::DefaultPermissions,
            MountOption::NoSuid,
            MountOption::NoDev,
            MountOption::NoExec,
            MountOption::NoAtime,
        ];
        if self.read_only {
            mount_options.push(MountOption::RO);
        }
        let threads = self.threads.max(1);
        let mut config = Config::default();
        config.mount_options = mount_options;
        config.acl = if self.allow_other {
            SessionACL::All
        } else {
            SessionACL::Owner
        };
        config.n_threads = Some(threads);
        config.clone_fd = threads > 1;
        config
    }
}

impl<C: AsRef<[u8]> + Send + Sync + 'static> FsTree<C> {
    /// Mounts the tree at `mountpoint` (an existing directory) and serves
    /// it from a background thread until [`MountHandle::unmount`] or the
    /// handle's drop.
    ///
    /// A tree is served by at most one mount at a time; it can be mounted
    /// again once the previous session has ended. Changes made to the tree
    /// while mounted are visible at once (zero TTLs), and after each
    /// removal the kernel is sent an entry invalidation so it drops its
    /// cached dentries and FORGETs the inodes promptly.
    ///
    /// # Errors
    /// [`Error::InvalidOption`]; [`Error::AlreadyMounted`];
    /// [`Error::Mount`] when the mount point cannot be resolved, `/dev/fuse`
    /// cannot be opened, `mount(2)` (or `fusermount3`) fails, or the FUSE
    /// handshake fails.
    pub fn mount(
        &self,
        mountpoint: impl AsRef<Path>,
        options: &MountOptions,
    ) -> Result<MountHandle, Error> {
        let given = mountpoint.as_ref();
        check_option("fsname", &options.fsname)?;
        check_option("subtype", &options.subtype)?;
        let mount_err = |source| Error::Mount {
            path: given.to_path_buf(),
            source,
        };
        let path = given.canonicalize().map_err(mount_err)?;
        {
            let mut st = self.lock();
            if st.mounted {
                return Err(Error::AlreadyMounted);
            }
            st.mounted = true;
        }
        let fs = FuseFs { tree: self.clone() };
        let mut session = match Session::new(fs, &path, &options.fuser_config()) {
            Ok(s) => s,
            Err(e) => {
                self.lock().mounted = false;
                return Err(mount_err(e));
            }
        };
        *lock(&self.inner.notifier) = Some(session.notifier());
        let unmounter = session.unmount_callable();
        let thread = thread::Builder::new()
            .name("vaultlet-fuse".to_owned())
            .spawn(move || session.run())
            .map_err(|e| {
                // The closure (and the session in it) was dropped, which
                // unmounted and ended the session.
                *lock(&self.inner.notifier) = None;
                self.lock().mounted = false;
                mount_err(e)
            })?;
        debug!(mountpoint = %path.display(), "fuse mounted");
        Ok(MountHandle {
            mountpoint: path,
            thread: Some(thread),
            unmounter,
            mounted: true,
            wait: options.unmount_wait,
        })
    }
}

/// A mounted tree, served by a background thread.
///
/// Dropping it unmounts as [`MountHandle::unmount`] does (so it may wait
/// up to [`MountOptions::unmount_wait`]), and detaches lazily instead when
/// the mount is busy.
#[derive(Debug)]
pub struct MountHandle {
    mountpoint: PathBuf,
    thread: Option<JoinHandle<io::Result<()>>>,
    unmounter: SessionUnmounter,
    mounted: bool,
    wait: Duration,
}

impl MountHandle {
    /// The mount point, canonicalized.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Whether this handle has not yet unmounted or detached.
    pub fn is_mounted(&self) -> bool {
        self.mounted
    }

    /// Unmounts with `umount(2)`, then waits (up to
    /// [`MountOptions::unmount_wait`]) for the session to end, which
    /// resets the tree's kernel-held state (lookups, handles) and allows a
    /// new mount. Idempotent. A mount point that is no longer a mount
    /// (someone else unmounted it) counts as unmounted. When not root,
    /// `fusermount3 -u -z` does the unmount.
    ///
    /// # Errors
    /// [`Error::Busy`] while a file or directory in the mount is open or
    /// something is mounted below it; the mount stays usable and the call
    /// can be retried, or [`MountHandle::detach`] used.
    /// [`Error::Unmount`] for other failures.
    pub fn unmount(&mut self) -> Result<(), Error> {
        if !self.mounted {
            return Ok(());
        }
        if !self.session_over() {
            match umount(&self.mountpoint) {
                Ok(()) | Err(Errno::EINVAL) => {}
                Err(Errno::EBUSY) => {
                    return Err(Error::Busy {
                        path: self.mountpoint.clone(),
                    });
                }
                Err(Errno::EPERM) => {
                    self.unmounter.unmount().map_err(|source| Error::Unmount {
                        path: self.mountpoint.clone(),
                        source,
                    })?;
                }
                Err(e) => {
                    return Err(Error::Unmount {
                        path: self.mountpoint.clone(),
                        source: e.into(),
                    });
                }
            }
        }
        self.mounted = false;
        self.wait_for_session();
        debug!(mountpoint = %self.mountpoint.display(), "fuse unmounted");
        Ok(())
    }

    /// Detaches the mount lazily (`MNT_DETACH`): it disappears from the
    /// mount table at once, and the session keeps serving files already
    /// open until they are closed, then ends. Idempotent.
    ///
    /// # Errors
    /// [`Error::Unmount`] when `umount2(2)` fails (other than for a mount
    /// point that is no longer a mount).
    pub fn detach(&mut self) -> Result<(), Error> {
        if !self.mounted {
            return Ok(());
        }
        if !self.session_over() {
            match umount2(&self.mountpoint, MntFlags::MNT_DETACH) {
                Ok(()) | Err(Errno::EINVAL) => {}
                Err(Errno::EPERM) => {
                    // fusermount's unmount is lazy already.
                    self.unmounter.unmount().map_err(|source| Error::Unmount {
                        path: self.mountpoint.clone(),
                        source,
                    })?;
                }
                Err(e) => {
                    return Err(Error::Unmount {
                        path: self.mountpoint.clone(),
                        source: e.into(),
                    });
                }
            }
        }
        self.mounted = false;
        // The session ends when the last open file is closed; do not wait.
        drop(self.thread.take());
        debug!(mountpoint = %self.mountpoint.display(), "fuse detached");
        Ok(())
    }

    fn session_over(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    fn wait_for_session(&mut self) {
        let deadline = Instant::now() + self.wait;
        while !self.session_over() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        let Some(thread) = self.thread.take() else {
            return;
        };
        if !thread.is_finished() {
            warn!(
                mountpoint = %self.mountpoint.display(),
                "fuse session still serving after unmount (another mount of it exists?); leaving it to end on its own"
            );
            return;
        }
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(mountpoint = %self.mountpoint.display(), error = %e, "fuse session ended with an error")
            }
            Err(_) => {
                warn!(mountpoint = %self.mountpoint.display(), "fuse session thread panicked")
            }
        }
    }
}

impl Drop for MountHandle {
    fn drop(&mut self) {
        match self.unmount() {
            Ok(()) => {}
            Err(Error::Busy { .. }) => {
                if let Err(e) = self.detach() {
                    warn!(mountpoint = %self.mountpoint.display(), error = %e, "fuse detach failed");
                }
            }
            Err(e) => {
                warn!(mountpoint = %self.mountpoint.display(), error = %e, "fuse unmount failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_validated_before_anything_is_mounted() {
        let tree: FsTree<Vec<u8>> = FsTree::new();
        for (fsname, subtype) in [("", "x"), ("a,b", "x"), ("x", "a=b"), ("x", "a b")] {
            let options = MountOptions {
                fsname: fsname.to_owned(),
                subtype: subtype.to_owned(),
                ..MountOptions::default()
            };
            let err = tree.mount("/nonexistent", &options).expect_err("refused");
            assert!(matches!(err, Error::InvalidOption { .. }), "{err}");
        }
        let err = tree
            .mount("/nonexistent/vaultlet-fuse-test", &MountOptions::default())
            .expect_err("no such dir");
        assert!(matches!(err, Error::Mount { .. }), "{err}");
        assert!(
            !tree.lock().mounted,
            "a failed mount leaves the tree mountable"
        );
    }

    #[test]
    fn fuser_config_carries_the_required_options() {
        let config = MountOptions::default().fuser_config();
        for o in [
            MountOption::FSName("vaultlet".to_owned()),
            MountOption::CUSTOM("subtype=vaultlet".to_owned()),
            MountOption::DefaultPermissions,
            MountOption::RO,
            MountOption::NoExec,
            MountOption::NoSuid,
            MountOption::NoDev,
        ] {
            assert!(config.mount_options.contains(&o), "{o:?}");
        }
        assert_eq!(config.acl, SessionACL::All);
        assert_eq!(config.n_threads, Some(2));
        assert!(config.clone_fd);
        let config = MountOptions {
            allow_other: false,
            read_only: false,
            threads: 0,
            ..MountOptions::default()
        }
        .fuser_config();
        assert_eq!(config.acl, SessionACL::Owner);
        assert!(!config.mount_options.contains(&MountOption::RO));
        assert!(
            config
                .mount_options
                .contains(&MountOption::DefaultPermissions)
        );
        assert_eq!(config.n_threads, Some(1));
        assert!(!config.clone_fd);
    }
}
