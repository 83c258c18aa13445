//! Unpublish: remove everything vaultlet put at a target, and nothing else.
//!
//! Also home of the one link-safe "zero and remove" walk that both teardown
//! and [`super::zero_and_remove_payload`] use. The walk works only with
//! directory fds and `*at` syscalls with `AT_SYMLINK_NOFOLLOW`/`O_NOFOLLOW`:
//! a symlink found inside a volume is unlinked, never followed (the lesson of
//! CVE-2017-1002102). It assumes nothing about who planted what in the tree.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, SFlag, fchmodat, fstat, fstatat, lstat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::{MountError, MountState, Mounter};

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

/// How many mounts stacked on one target teardown peels off before giving
/// up (a stack only exists after a bug or a foreign actor; a bound keeps a
/// misbehaving mounter from looping forever).
const MAX_STACKED_MOUNTS: usize = 8;

/// Tears down `target` per DESIGN §5.
///
/// - Absent (`ENOENT`) → [`Teardown::Absent`].
/// - A symlink, regular file or other non-directory → [`MountError::Foreign`].
/// - A tmpfs → every regular file below it is overwritten with zeros, every
///   entry is removed without following links, it is unmounted (lazily if
///   busy) and the dir removed → [`Teardown::UnmountedTmpfs`].
/// - A FUSE mount → unmounted (lazily when its server is gone or it is
///   busy) and the dir removed → [`Teardown::UnmountedFuse`].
/// - Another filesystem → [`MountError::Foreign`], left alone.
/// - A plain directory (kubelet's per-volume dir) → emptied the same way as
///   the tmpfs and removed → [`Teardown::RemovedDir`].
///
/// A second call after a success returns [`Teardown::Absent`].
///
/// # Errors
/// [`MountError::Foreign`] for another filesystem, a symlink or a regular
/// file at the target; [`MountError::Io`] otherwise.
pub fn teardown_target(mounter: &dyn Mounter, target: &Path) -> Result<Teardown, MountError> {
    // The first thing unmounted decides the answer; later rounds peel off
    // mounts stacked below it and finally remove the plain dir.
    let mut first: Option<Teardown> = None;
    for _ in 0..=MAX_STACKED_MOUNTS {
        let step = teardown_once(mounter, target)?;
        match step {
            Step::Done(t) => return Ok(first.unwrap_or(t)),
            Step::Unmounted(t) => {
                first.get_or_insert(t);
            }
        }
    }
    Err(io_err(
        "unmount stacked mounts",
        target,
        std::io::Error::other("too many mounts stacked on the target"),
    ))
}

/// One round of [`teardown_target`].
enum Step {
    /// Finished: the target is gone.
    Done(Teardown),
    /// A mount was removed; the dir below it still has to be looked at.
    Unmounted(Teardown),
}

fn teardown_once(mounter: &dyn Mounter, target: &Path) -> Result<Step, MountError> {
    let st = match lstat(target) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(Step::Done(Teardown::Absent)),
        // A FUSE mount whose server died answers ENOTCONN to everything.
        Err(Errno::ENOTCONN) => {
            return match mounter.mount_state(target)? {
                MountState::Fuse => {
                    mounter.unmount(target, true)?;
                    Ok(Step::Unmounted(Teardown::UnmountedFuse))
                }
                _ => Err(io_err("lstat target", target, Errno::ENOTCONN)),
            };
        }
        Err(e) => return Err(io_err("lstat target", target, e)),
    };
    match kind_of(&st) {
        Kind::Dir => {}
        other => {
            return Err(MountError::Foreign {
                path: target.display().to_string(),
                what: other.describe().to_owned(),
            });
        }
    }
    match mounter.mount_state(target)? {
        MountState::Tmpfs => {
            empty_dir_at_path(target)?;
            match mounter.unmount(target, false) {
                Ok(()) => {}
                Err(e) if errno_of(&e) == Some(Errno::EBUSY) => {
                    tracing::debug!(target = %target.display(), "tmpfs busy, detaching lazily");
                    mounter.unmount(target, true)?;
                }
                Err(e) => return Err(e),
            }
            Ok(Step::Unmounted(Teardown::UnmountedTmpfs))
        }
        MountState::Fuse => {
            match mounter.unmount(target, false) {
                Ok(()) => {}
                Err(e) if matches!(errno_of(&e), Some(Errno::ENOTCONN | Errno::EBUSY)) => {
                    mounter.unmount(target, true)?;
                }
                Err(e) => return Err(e),
            }
            Ok(Step::Unmounted(Teardown::UnmountedFuse))
        }
        MountState::Foreign => {
            let what = match super::tmpfs::fstype_at(target) {
                Some(fs) => format!("another filesystem ({fs})"),
                None => "another filesystem".to_owned(),
            };
            Err(MountError::Foreign {
                path: target.display().to_string(),
                what,
            })
        }
        MountState::NotMounted => {
            empty_dir_at_path(target)?;
            match unlinkat(AT_FDCWD, target, UnlinkatFlags::RemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => Ok(Step::Done(Teardown::RemovedDir)),
                Err(e) => Err(io_err("rmdir target", target, e)),
            }
        }
    }
}

/// The errno inside a [`MountError::Io`], if any.
fn errno_of(e: &MountError) -> Option<Errno> {
    match e {
        MountError::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
        _ => None,
    }
}

/// Builds a [`MountError::Io`].
pub(super) fn io_err(op: &'static str, path: &Path, err: impl Into<std::io::Error>) -> MountError {
    MountError::Io {
        op,
        path: path.display().to_string(),
        source: err.into(),
    }
}

/// File kinds the walk distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Dir => "a directory",
            Kind::File => "a regular file",
            Kind::Symlink => "a symlink",
            Kind::Other => "a special file",
        }
    }
}

/// The kind of an `lstat`/`fstatat(AT_SYMLINK_NOFOLLOW)` result.
pub(super) fn kind_of(st: &FileStat) -> Kind {
    let fmt = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if fmt == SFlag::S_IFDIR {
        Kind::Dir
    } else if fmt == SFlag::S_IFREG {
        Kind::File
    } else if fmt == SFlag::S_IFLNK {
        Kind::Symlink
    } else {
        Kind::Other
    }
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub(super) fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<FileStat> {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

/// Opens the directory `name` below `dir` without following a symlink at
/// `name` (fails with `ELOOP`/`ENOTDIR` if it is not a real directory).
pub(super) fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Opens `path` as a directory without following a symlink at its last
/// component.
pub(super) fn open_dir_path(path: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Names in the directory `dir` (without `.` and `..`), read through a
/// second open file description so `dir`'s own offset is left alone.
pub(super) fn list_dir(dir: BorrowedFd<'_>, path: &Path) -> Result<Vec<OsString>, MountError> {
    let mut d = Dir::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open dir", path, e))?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let entry = entry.map_err(|e| io_err("read dir", path, e))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        names.push(OsStr::from_bytes(name).to_owned());
    }
    Ok(names)
}

/// Empties the directory at `path` (a real directory; a symlink there is an
/// error). Missing → Ok.
fn empty_dir_at_path(path: &Path) -> Result<(), MountError> {
    let fd = match open_dir_path(path) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(io_err("open target", path, e)),
    };
    empty_dir(fd.as_fd(), path)
}

/// Zeroes and removes the real directory `name` below `parent`, never
/// following links. Missing → Ok. A symlink or non-directory at `name` is an
/// `ENOTDIR` error (it is left in place).
pub(super) fn zero_and_remove_dir_at(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
) -> Result<(), MountError> {
    let fd = match open_dir_at(parent, name) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::ELOOP) => return Err(io_err("open dir", path, Errno::ENOTDIR)),
        Err(e) => return Err(io_err("open dir", path, e)),
    };
    empty_dir(fd.as_fd(), path)?;
    drop(fd);
    match unlinkat(parent, name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(io_err("rmdir", path, e)),
    }
}

/// Removes every entry of the open directory `dir`: regular files are
/// overwritten with zeros and unlinked, symlinks and special files are
/// unlinked (never followed or opened), subdirectories are emptied
/// recursively and removed. A subdirectory on another filesystem (a mount
/// point) is refused with [`MountError::Foreign`].
pub(super) fn empty_dir(dir: BorrowedFd<'_>, path: &Path) -> Result<(), MountError> {
    let own = fstat(dir).map_err(|e| io_err("fstat dir", path, e))?;
    for name in list_dir(dir, path)? {
        let child = path.join(&name);
        let st = match lstat_at(dir, &name) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(io_err("lstat", &child, e)),
        };
        match kind_of(&st) {
            Kind::Dir => {
                if st.st_dev != own.st_dev {
                    return Err(MountError::Foreign {
                        path: child.display().to_string(),
                        what: "a mount point of another filesystem".to_owned(),
                    });
                }
                zero_and_remove_dir_at(dir, &name, &child)?;
            }
            Kind::File => {
                zero_file_at(dir, &name, &st, &child)?;
                unlink_entry(dir, &name, &child)?;
            }
            Kind::Symlink | Kind::Other => unlink_entry(dir, &name, &child)?,
        }
    }
    Ok(())
}

fn unlink_entry(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<(), MountError> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(io_err("unlink", path, e)),
    }
}

/// Zeros written per `write(2)`.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Overwrites the regular file `name` below `dir` (whose `lstat` is `st`)
/// with zeros for its full length. A file with more than one hard link is
/// left alone: its other name lives outside what we own.
fn zero_file_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    st: &FileStat,
    path: &Path,
) -> Result<(), MountError> {
    if st.st_nlink > 1 || st.st_size == 0 {
        return Ok(());
    }
    let Some(fd) = open_for_zeroing(dir, name, path)? else {
        return Ok(());
    };
    // Re-check on the open fd: it must be the same regular file we saw.
    let now = fstat(fd.as_fd()).map_err(|e| io_err("fstat", path, e))?;
    if kind_of(&now) != Kind::File
        || now.st_ino != st.st_ino
        || now.st_dev != st.st_dev
        || now.st_nlink > 1
    {
        return Ok(());
    }
    let mut file = File::from(fd);
    let mut left = u64::try_from(now.st_size).unwrap_or(0);
    while left > 0 {
        // `left.min(len)` fits in usize because ZEROS.len() does.
        let n = usize::try_from(left.min(ZEROS.len() as u64)).unwrap_or(ZEROS.len());
        if let Err(e) = file.write_all(&ZEROS[..n]) {
            if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
                // Only a sparse file can need new blocks to be zeroed; the
                // unlink and unmount that follow free its pages anyway.
                tracing::warn!(path = %path.display(), "no space to zero a sparse file; removing it");
                return Ok(());
            }
            return Err(io_err("zero", path, e));
        }
        left -= n as u64;
    }
    file.sync_data()
        .map_err(|e| io_err("sync zeroed file", path, e))
}

/// Opens a regular file for writing without following links. When the mode
/// forbids writing (e.g. an 0400 file and no `CAP_DAC_OVERRIDE`), the owner
/// makes it writable with `fchmodat(AT_SYMLINK_NOFOLLOW)` (which refuses a
/// symlink) and opens it again; the caller checks it is still the same
/// inode. `None`: it disappeared or changed kind meanwhile.
fn open_for_zeroing(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
) -> Result<Option<OwnedFd>, MountError> {
    let flags = OFlag::O_WRONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => return Ok(Some(fd)),
        Err(Errno::ENOENT | Errno::ELOOP) => return Ok(None),
        Err(Errno::EACCES) => {}
        Err(e) => return Err(io_err("open for zeroing", path, e)),
    }
    match fchmodat(
        dir,
        name,
        Mode::S_IRUSR | Mode::S_IWUSR,
        FchmodatFlags::NoFollowSymlink,
    ) {
        Ok(()) => {}
        Err(Errno::ENOENT | Errno::EOPNOTSUPP) => return Ok(None),
        Err(e) => return Err(io_err("chmod for zeroing", path, e)),
    }
    match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT | Errno::ELOOP) => Ok(None),
        Err(e) => Err(io_err("open for zeroing", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::{Read, Seek};
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::PathBuf;

    use super::super::{FakeMounter, MountCall, Payload, PayloadFile, write_payload};
    use super::*;
    use crate::params::RelPath;
    use crate::store::SecretBytes;

    fn payload(files: &[(&str, u32, &[u8])]) -> Payload {
        Payload {
            files: files
                .iter()
                .map(|(p, mode, c)| PayloadFile {
                    path: RelPath::new(p).expect("test path is valid"),
                    mode: *mode,
                    content: std::sync::Arc::new(SecretBytes::copy_from(c)),
                })
                .collect(),
        }
    }

    /// A tempdir holding `target` (not yet created) and an `outside` dir
    /// with a sentinel file and a sentinel dir.
    struct Fixture {
        _tmp: tempfile::TempDir,
        target: PathBuf,
        sentinel: PathBuf,
        sentinel_dir: PathBuf,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).expect("mkdir outside");
        let sentinel = outside.join("sentinel");
        fs::write(&sentinel, b"keep me").expect("write sentinel");
        let sentinel_dir = outside.join("dir");
        fs::create_dir(&sentinel_dir).expect("mkdir sentinel dir");
        fs::write(sentinel_dir.join("inner"), b"inner").expect("write inner");
        Fixture {
            target: tmp.path().join("mount"),
            sentinel,
            sentinel_dir,
            _tmp: tmp,
        }
    }

    impl Fixture {
        fn assert_outside_intact(&self) {
            assert_eq!(fs::read(&self.sentinel).expect("sentinel"), b"keep me");
            assert_eq!(
                fs::read(self.sentinel_dir.join("inner")).expect("inner"),
                b"inner"
            );
        }

        /// Plants `evil -> sentinel`, `evil_dir -> sentinel_dir` and a fake
        /// `..data` link into `dir` (C38).
        fn plant_links(&self, dir: &Path) {
            symlink(&self.sentinel, dir.join("evil")).expect("plant evil");
            symlink(&self.sentinel_dir, dir.join("evil_dir")).expect("plant evil_dir");
            let _ = fs::remove_file(dir.join("..data"));
            symlink(&self.sentinel_dir, dir.join("..data")).expect("plant ..data");
        }
    }

    #[test]
    fn absent_target_is_absent() {
        let f = fixture();
        let m = FakeMounter::default();
        assert_eq!(
            teardown_target(&m, &f.target).expect("teardown"),
            Teardown::Absent
        );
        assert!(m.calls().is_empty());
    }

    #[test]
    fn c33_plain_dir_is_emptied_and_removed_without_following_links() {
        let f = fixture();
        fs::create_dir(&f.target).expect("mkdir target");
        write_payload(
            &f.target,
            &payload(&[
                ("a", 0o644, b"alpha"),
                ("ro", 0o400, b"read-only"),
                ("d/e/f", 0o600, b"deep"),
            ]),
            None,
        )
        .expect("write payload");
        fs::write(f.target.join("stray"), b"stray").expect("stray file");
        symlink(&f.sentinel, f.target.join("link-to-outside")).expect("symlink");
        symlink(&f.sentinel_dir, f.target.join("dirlink")).expect("dir symlink");
        // A hard link to an outside file is unlinked but never zeroed.
        fs::hard_link(&f.sentinel, f.target.join("hard")).expect("hard link");
        let m = FakeMounter::default();
        assert_eq!(
            teardown_target(&m, &f.target).expect("teardown"),
            Teardown::RemovedDir
        );
        assert!(!f.target.exists(), "target removed");
        f.assert_outside_intact();
        assert!(m.calls().is_empty(), "a plain dir is never unmounted");
        // Second call: nothing left.
        assert_eq!(
            teardown_target(&m, &f.target).expect("teardown"),
            Teardown::Absent
        );
    }

    #[test]
    fn c33_plain_dir_files_are_zeroed_before_unlink() {
        let f = fixture();
        fs::create_dir(&f.target).expect("mkdir target");
        write_payload(&f.target, &payload(&[("a", 0o400, b"secret!")]), None).expect("write");
        let mut held = File::open(f.target.join("a")).expect("open");
        assert_eq!(
            teardown_target(&FakeMounter::default(), &f.target).expect("teardown"),
            Teardown::RemovedDir
        );
        let mut after = Vec::new();
        held.rewind().expect("rewind");
        held.read_to_end(&mut after).expect("read");
        assert_eq!(after, vec![0u8; 7], "content overwritten with zeros");
    }

    #[test]
    fn c38_planted_links_survive_plain_dir_teardown() {
        let f = fixture();
        fs::create_dir(&f.target).expect("mkdir target");
        write_payload(&f.target, &payload(&[("a", 0o644, b"alpha")]), None).expect("write");
        f.plant_links(&f.target);
        assert_eq!(
            teardown_target(&FakeMounter::default(), &f.target).expect("teardown"),
            Teardown::RemovedDir
        );
        assert!(!f.target.exists());
        f.assert_outside_intact();
        assert!(f.sentinel_dir.is_dir());
    }

    #[test]
    fn regular_file_target_is_foreign() {
        let f = fixture();
        fs::write(&f.target, b"user data").expect("write");
        let m = FakeMounter::default();
        let err = teardown_target(&m, &f.target).expect_err("must refuse");
        match err {
            MountError::Foreign { what, .. } => assert_eq!(what, "a regular file"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(fs::read(&f.target).expect("still there"), b"user data");
        assert!(m.calls().is_empty());
    }

    #[test]
    fn symlink_target_is_foreign_and_not_followed() {
        let f = fixture();
        symlink(&f.sentinel_dir, &f.target).expect("symlink");
        let m = FakeMounter::default();
        m.set_state(&f.target, MountState::Tmpfs);
        let err = teardown_target(&m, &f.target).expect_err("must refuse");
        match err {
            MountError::Foreign { what, .. } => assert_eq!(what, "a symlink"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            fs::symlink_metadata(&f.target)
                .expect("link kept")
                .file_type()
                .is_symlink()
        );
        f.assert_outside_intact();
        assert!(m.calls().is_empty());
    }

    #[test]
    fn fake_tmpfs_is_zeroed_unmounted_and_removed() {
        let f = fixture();
        fs::create_dir(&f.target).expect("mkdir target");
        let m = FakeMounter::default();
        m.mount_tmpfs(&f.target, 4096).expect("fake mount");
        write_payload(
            &f.target,
            &payload(&[("a", 0o644, b"abc"), ("n/b", 0o400, b"xyz!")]),
            None,
        )
        .expect("write");
        let mut held = File::open(f.target.join("n/b")).expect("open");
        f.plant_links(&f.target);
        assert_eq!(
            teardown_target(&m, &f.target).expect("teardown"),
            Teardown::UnmountedTmpfs
        );
        let t = f.target.display().to_string();
        assert_eq!(
            m.calls(),
            vec![
                MountCall::MountTmpfs(t.clone(), 4096),
                MountCall::Unmount(t, false)
            ]
        );
        assert!(!f.target.exists());
        let mut after = Vec::new();
        held.read_to_end(&mut after).expect("read");
        assert_eq!(after, vec![0u8; 4]);
        f.assert_outside_intact();
        assert_eq!(
            teardown_target(&m, &f.target).expect("again"),
            Teardown::Absent
        );
    }

    #[test]
    fn busy_tmpfs_is_detached_lazily() {
        let f = fixture();
        fs::create_dir(&f.target).expect("mkdir target");
        let m = FakeMounter::default();
        m.set_state(&f.target, MountState::Tmpfs);
        m.fail_next_unmount(Errno::EBUSY);
        assert_eq!(
            teardown_target(&m, &f.target).expect("teardown"),
            Teardown::UnmountedTmpfs
        );
        let t = f.target.display().to_string();
        assert_eq!(
            m.calls(),
            vec![
                MountCall::Unmount(t.clone(), false),
                MountCall::Unmount(t, true)
            ]
        );
        assert!(!f.target.exists());
    }

    #[test]
    fn failed_unmount_keeps_target() {
        let f = fixture();
        fs::create_dir(&f.target).expect("mkdir target");
        let m = FakeMounter::default();
        m.set_state(&f.target, MountState::Tmpfs);
        m.fail_next_unmount(Errno::EPERM);
        let err = teardown_target(&m, &f.target).expect_err("unmount fails");
        assert!(
            matches!(err, MountError::Io { op: "unmount", .. }),
            "{err:?}"
        );
        assert!(f.target.is_dir(), "target kept when unmount fails");
        assert_eq!(m.mount_state(&f.target).expect("state"), MountState::Tmpfs);
    }

    #[test]
    fn fuse_without_server_is_detached_lazily() {
        let f = fixture();
        fs::create_dir(&f.target).expect("mkdir target");
        fs::write(f.target.join("inside"), b"fuse content").expect("write");
        let m = FakeMounter::default();
        m.set_state(&f.target, MountState::Fuse);
        m.fail_next_unmount(Errno::ENOTCONN);
        // After the fake unmount, the dir below still holds "inside"; it is
        // treated as kubelet's dir and removed.
        assert_eq!(
            teardown_target(&m, &f.target).expect("teardown"),
            Teardown::UnmountedFuse
        );
        let t = f.target.display().to_string();
        assert_eq!(
            m.calls(),
            vec![
                MountCall::Unmount(t.clone(), false),
                MountCall::Unmount(t, true)
            ]
        );
        assert!(!f.target.exists());
    }

    #[test]
    fn live_fuse_is_unmounted_normally() {
        let f = fixture();
        fs::create_dir(&f.target).expect("mkdir target");
        let m = FakeMounter::default();
        m.set_state(&f.target, MountState::Fuse);
        assert_eq!(
            teardown_target(&m, &f.target).expect("teardown"),
            Teardown::UnmountedFuse
        );
        let t = f.target.display().to_string();
        assert_eq!(m.calls(), vec![MountCall::Unmount(t, false)]);
    }

    #[test]
    fn foreign_fs_is_refused_and_left_alone() {
        let f = fixture();
        fs::create_dir(&f.target).expect("mkdir target");
        fs::write(f.target.join("data"), b"not ours").expect("write");
        let m = FakeMounter::default();
        m.set_state(&f.target, MountState::Foreign);
        let err = teardown_target(&m, &f.target).expect_err("must refuse");
        match err {
            MountError::Foreign { what, path } => {
                assert!(what.starts_with("another filesystem"), "{what}");
                assert_eq!(path, f.target.display().to_string());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(fs::read(f.target.join("data")).expect("kept"), b"not ours");
        assert!(m.calls().is_empty());
    }

    #[test]
    fn stacked_fake_mounts_are_all_removed() {
        let f = fixture();
        fs::create_dir(&f.target).expect("mkdir target");
        let m = FakeMounter::default();
        m.set_state(&f.target, MountState::Tmpfs);
        m.push_stacked_state(&f.target, MountState::Fuse);
        // The top mount is a FUSE, below it a tmpfs.
        assert_eq!(
            teardown_target(&m, &f.target).expect("teardown"),
            Teardown::UnmountedFuse
        );
        assert_eq!(m.calls().len(), 2);
        assert!(!f.target.exists());
    }

    #[test]
    fn special_files_are_unlinked_not_opened() {
        let f = fixture();
        fs::create_dir(&f.target).expect("mkdir target");
        nix::unistd::mkfifo(&f.target.join("fifo"), Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        fs::create_dir(f.target.join("sub")).expect("mkdir");
        fs::write(f.target.join("sub/x"), b"x").expect("write");
        fs::set_permissions(f.target.join("sub/x"), fs::Permissions::from_mode(0o000))
            .expect("chmod");
        assert_eq!(
            teardown_target(&FakeMounter::default(), &f.target).expect("teardown"),
            Teardown::RemovedDir
        );
        assert!(!f.target.exists());
    }
}
