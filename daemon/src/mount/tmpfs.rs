//! [`SysMounter`]: the real [`Mounter`] on Linux, plus a pure parser of
//! `/proc/self/mountinfo`.
//!
//! Assumes the daemon sees the mounts it makes (same mount namespace) and
//! that `/proc` is mounted.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::lstat;

use super::teardown::{Kind, io_err, kind_of};
use super::{MountError, MountState, Mounter};

/// `source` field of our tmpfs mounts, as shown in `mountinfo`.
pub(crate) const TMPFS_SOURCE: &str = "vaultlet";

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Mounts with `mount(2)` through `nix` and reads `/proc/self/mountinfo`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SysMounter;

impl Mounter for SysMounter {
    fn mount_tmpfs(&self, target: &Path, size_bytes: u64) -> Result<(), MountError> {
        // tmpfs reads `size=0` as "no limit": never ask for that.
        if size_bytes == 0 {
            return Err(io_err("mount tmpfs", target, Errno::EINVAL));
        }
        // mount(2) follows a symlink at the target; refuse one up front.
        match lstat(target) {
            Ok(st) if kind_of(&st) == Kind::Dir => {}
            Ok(st) if kind_of(&st) == Kind::Symlink => {
                return Err(io_err("mount tmpfs", target, Errno::ELOOP));
            }
            Ok(_) => return Err(io_err("mount tmpfs", target, Errno::ENOTDIR)),
            Err(e) => return Err(io_err("mount tmpfs", target, e)),
        }
        let data = format!("mode=0755,size={size_bytes}");
        mount(
            Some(TMPFS_SOURCE),
            target,
            Some("tmpfs"),
            MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(data.as_str()),
        )
        .map_err(|e| io_err("mount tmpfs", target, e))
    }

    fn bind_mount_readonly(&self, source: &Path, target: &Path) -> Result<(), MountError> {
        match lstat(target) {
            Ok(st) if kind_of(&st) == Kind::Dir => {}
            Ok(st) if kind_of(&st) == Kind::Symlink => {
                return Err(io_err("bind mount", target, Errno::ELOOP));
            }
            Ok(_) => return Err(io_err("bind mount", target, Errno::ENOTDIR)),
            Err(e) => return Err(io_err("bind mount", target, e)),
        }
        mount(
            Some(source),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| io_err("bind mount", target, e))?;
        let ro = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC;
        if let Err(e) = mount(None::<&str>, target, None::<&str>, ro, None::<&str>) {
            let _ = umount2(target, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
            return Err(io_err("remount bind read-only", target, e));
        }
        Ok(())
    }

    fn unmount(&self, target: &Path, lazy: bool) -> Result<(), MountError> {
        let mut flags = MntFlags::UMOUNT_NOFOLLOW;
        if lazy {
            flags |= MntFlags::MNT_DETACH;
        }
        umount2(target, flags).map_err(|e| io_err("unmount", target, e))
    }

    fn mount_state(&self, target: &Path) -> Result<MountState, MountError> {
        Ok(match mount_entry_at(target)? {
            Some(entry) => classify_fstype(&entry.fstype),
            None => MountState::NotMounted,
        })
    }
}

/// The fields of one `mountinfo` line that vaultlet uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountInfoEntry {
    /// Mount point (field 5), octal escapes decoded.
    pub mount_point: PathBuf,
    /// Filesystem type (first field after the ` - ` separator), e.g.
    /// `tmpfs`, `fuse.vaultlet`, `ext4`.
    pub fstype: String,
}

/// Parses the text of `/proc/<pid>/mountinfo`. Malformed lines are skipped.
///
/// A line reads `id parent maj:min root mount_point options [optional...] -
/// fstype source super_options`; the kernel escapes space, tab, newline and
/// backslash in paths as `\040`, `\011`, `\012`, `\134`.
pub(crate) fn parse_mountinfo(data: &[u8]) -> Vec<MountInfoEntry> {
    data.split(|&b| b == b'\n').filter_map(parse_line).collect()
}

fn parse_line(line: &[u8]) -> Option<MountInfoEntry> {
    let fields: Vec<&[u8]> = line
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .collect();
    // At least: 6 fixed fields, "-", fstype, source.
    if fields.len() < 9 {
        return None;
    }
    let sep = fields.iter().skip(6).position(|f| *f == b"-")? + 6;
    let fstype = fields.get(sep + 1)?;
    let mount_point = PathBuf::from(OsString::from_vec(unescape(fields[4])));
    if !mount_point.is_absolute() {
        return None;
    }
    Some(MountInfoEntry {
        mount_point,
        fstype: String::from_utf8_lossy(&unescape(fstype)).into_owned(),
    })
}

/// Decodes `\ooo` octal escapes; any other backslash is kept as is.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && let Some(digits) = field.get(i + 1..i + 4)
            && digits.iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let v = u32::from(digits[0] - b'0') * 64
                + u32::from(digits[1] - b'0') * 8
                + u32::from(digits[2] - b'0');
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

/// Maps a `mountinfo` fstype to a [`MountState`] (never `NotMounted`).
pub(crate) fn classify_fstype(fstype: &str) -> MountState {
    if fstype == "tmpfs" {
        MountState::Tmpfs
    } else if fstype == "fuse" || fstype.starts_with("fuse.") {
        MountState::Fuse
    } else {
        MountState::Foreign
    }
}

/// The last (topmost) entry mounted exactly at `mount_point`.
pub(crate) fn last_mount_at<'a>(
    entries: &'a [MountInfoEntry],
    mount_point: &Path,
) -> Option<&'a MountInfoEntry> {
    entries.iter().rev().find(|e| e.mount_point == mount_point)
}

/// `target` with its parent canonicalised and its last component kept as
/// is, so a symlink at the target itself is never followed. `None` when the
/// parent does not exist (nothing can be mounted there).
fn resolve_target(target: &Path) -> Result<Option<PathBuf>, MountError> {
    let resolved = match (target.parent(), target.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            std::fs::canonicalize(parent).map(|p| p.join(name))
        }
        // "/" or a path ending in "..": nothing to protect at the end.
        _ => std::fs::canonicalize(target),
    };
    match resolved {
        Ok(p) => Ok(Some(p)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(None),
        Err(e) => Err(io_err("resolve target", target, e)),
    }
}

/// The topmost `mountinfo` entry exactly at `target`.
fn mount_entry_at(target: &Path) -> Result<Option<MountInfoEntry>, MountError> {
    let Some(resolved) = resolve_target(target)? else {
        return Ok(None);
    };
    let data =
        std::fs::read(MOUNTINFO).map_err(|e| io_err("read mountinfo", Path::new(MOUNTINFO), e))?;
    let entries = parse_mountinfo(&data);
    Ok(last_mount_at(&entries, &resolved).cloned())
}

/// Best-effort fstype mounted exactly at `target`, for error messages.
pub(super) fn fstype_at(target: &Path) -> Option<String> {
    mount_entry_at(target).ok().flatten().map(|e| e.fstype)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    use nix::sys::statfs::{TMPFS_MAGIC, statfs};
    use nix::sys::statvfs::{FsFlags, statvfs};

    use super::super::{
        Payload, PayloadFile, Teardown, privileged_or_skip, teardown_target, visible_tree_matches,
        write_payload, zero_and_remove_payload,
    };
    use super::*;
    use crate::params::RelPath;
    use crate::store::SecretBytes;

    const SAMPLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:23 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
90 22 0:50 / /var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/my\\040vol/mount rw,nosuid,nodev,noexec - tmpfs vaultlet rw,size=16384k,mode=755
91 22 0:51 / /mnt/back\\134slash\\011tab rw - fuse.vaultlet vaultlet rw,user_id=0
92 22 0:52 / /mnt/plainfuse rw master:3 propagate_from:1 - fuse /dev/fuse rw
93 22 0:53 / /mnt/stack rw - tmpfs vaultlet rw
94 93 0:54 / /mnt/stack rw - ext4 /dev/sdb rw
95 22 0:55 / /mnt/stack2 rw - ext4 /dev/sdc rw
96 95 0:56 / /mnt/stack2 rw - fuse.sshfs host: rw
garbage line
97 22 0:57 / relative rw - tmpfs x rw
";

    #[test]
    fn parses_sample_with_escapes_and_optional_fields() {
        let e = parse_mountinfo(SAMPLE.as_bytes());
        assert_eq!(e.len(), 9, "{e:?}");
        assert_eq!(e[0].mount_point, Path::new("/"));
        assert_eq!(e[0].fstype, "ext4");
        assert_eq!(
            e[2].mount_point,
            Path::new("/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/my vol/mount")
        );
        assert_eq!(e[2].fstype, "tmpfs");
        assert_eq!(e[3].mount_point, Path::new("/mnt/back\\slash\ttab"));
        assert_eq!(e[3].fstype, "fuse.vaultlet");
        assert_eq!(e[4].fstype, "fuse");
    }

    #[test]
    fn last_entry_wins_and_classifies() {
        let e = parse_mountinfo(SAMPLE.as_bytes());
        let state = |p: &str| last_mount_at(&e, Path::new(p)).map(|m| classify_fstype(&m.fstype));
        assert_eq!(
            state("/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/my vol/mount"),
            Some(MountState::Tmpfs)
        );
        assert_eq!(state("/mnt/back\\slash\ttab"), Some(MountState::Fuse));
        assert_eq!(state("/mnt/plainfuse"), Some(MountState::Fuse));
        assert_eq!(
            state("/mnt/stack"),
            Some(MountState::Foreign),
            "ext4 on top of tmpfs"
        );
        assert_eq!(
            state("/mnt/stack2"),
            Some(MountState::Fuse),
            "fuse on top of ext4"
        );
        assert_eq!(state("/proc"), Some(MountState::Foreign));
        assert_eq!(
            state("/var/lib/kubelet"),
            None,
            "ancestors of a mount are not mounts"
        );
        assert_eq!(state("/mnt/stack/sub"), None);
    }

    #[test]
    fn classify_names() {
        assert_eq!(classify_fstype("tmpfs"), MountState::Tmpfs);
        assert_eq!(classify_fstype("fuse"), MountState::Fuse);
        assert_eq!(classify_fstype("fuse.vaultlet"), MountState::Fuse);
        assert_eq!(classify_fstype("fuseblk"), MountState::Foreign);
        assert_eq!(classify_fstype("ramfs"), MountState::Foreign);
        assert_eq!(classify_fstype("devtmpfs"), MountState::Foreign);
    }

    #[test]
    fn unescape_keeps_bad_escapes() {
        assert_eq!(unescape(b"a\\040b"), b"a b");
        assert_eq!(unescape(b"a\\04"), b"a\\04");
        assert_eq!(unescape(b"a\\089"), b"a\\089");
        assert_eq!(unescape(b"\\777"), b"\\777", "over 255 is not an escape");
        assert_eq!(unescape(b"x\\"), b"x\\");
    }

    #[test]
    fn mount_state_of_plain_dir_and_missing_path() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            SysMounter.mount_state(tmp.path()).expect("state"),
            MountState::NotMounted
        );
        assert_eq!(
            SysMounter
                .mount_state(&tmp.path().join("no/such/dir"))
                .expect("state"),
            MountState::NotMounted
        );
        assert_eq!(
            SysMounter.mount_state(Path::new("/proc")).expect("state"),
            MountState::Foreign
        );
    }

    #[test]
    fn mount_state_never_follows_a_symlink_at_the_target() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let link = tmp.path().join("link");
        symlink("/proc", &link).expect("symlink");
        assert_eq!(
            SysMounter.mount_state(&link).expect("state"),
            MountState::NotMounted
        );
        // But a symlink in the parent is resolved.
        let parent_link = tmp.path().join("root");
        symlink("/", &parent_link).expect("symlink");
        assert_eq!(
            SysMounter
                .mount_state(&parent_link.join("proc"))
                .expect("state"),
            MountState::Foreign
        );
    }

    #[test]
    fn zero_size_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = SysMounter
            .mount_tmpfs(tmp.path(), 0)
            .expect_err("size 0 means unlimited");
        assert!(
            matches!(
                err,
                MountError::Io {
                    op: "mount tmpfs",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    // ---- privileged: a real tmpfs in a tempdir ----

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

    /// A tempdir with an (unmounted) `mount` dir; unmounts lazily on drop
    /// in case a test failed halfway.
    struct MountDir {
        tmp: tempfile::TempDir,
        target: PathBuf,
    }

    impl MountDir {
        fn new() -> Self {
            let tmp = tempfile::tempdir().expect("tempdir");
            let target = tmp.path().join("mount");
            fs::create_dir(&target).expect("mkdir");
            Self { tmp, target }
        }
    }

    impl Drop for MountDir {
        fn drop(&mut self) {
            while SysMounter
                .mount_state(&self.target)
                .is_ok_and(|s| s != MountState::NotMounted)
            {
                if SysMounter.unmount(&self.target, true).is_err() {
                    break;
                }
            }
        }
    }

    fn read(p: &Path) -> Vec<u8> {
        fs::read(p).expect("read")
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn privileged_tmpfs_publish_and_teardown() {
        if !privileged_or_skip("privileged_tmpfs_publish_and_teardown") {
            return;
        }
        let d = MountDir::new();
        SysMounter.mount_tmpfs(&d.target, 1 << 20).expect("mount");
        assert_eq!(
            SysMounter.mount_state(&d.target).expect("state"),
            MountState::Tmpfs
        );
        assert_eq!(
            statfs(&d.target).expect("statfs").filesystem_type(),
            TMPFS_MAGIC
        );
        let flags = statvfs(&d.target).expect("statvfs").flags();
        assert!(
            flags.contains(FsFlags::ST_NOEXEC | FsFlags::ST_NOSUID | FsFlags::ST_NODEV),
            "{flags:?}"
        );
        assert_eq!(mode(&d.target), 0o755);
        let e = parse_mountinfo(&fs::read(MOUNTINFO).expect("mountinfo"));
        let canon = fs::canonicalize(&d.target).expect("canon");
        let entry = last_mount_at(&e, &canon).expect("listed");
        assert_eq!(entry.fstype, "tmpfs");

        let p = payload(&[
            ("lf", 0o644, b"abc\n"),
            ("crlf", 0o400, b"a\r\nb\r\n"),
            ("bin", 0o440, &[0xFF, 0xFE]),
            ("database/test-db.conf", 0o600, b"conf"),
        ]);
        let out = write_payload(&d.target, &p, Some(1 << 20)).expect("write");
        assert!(out.old_dir.is_none());
        assert_eq!(read(&d.target.join("lf")), b"abc\n");
        assert_eq!(read(&d.target.join("crlf")), b"a\r\nb\r\n");
        assert_eq!(read(&d.target.join("bin")), [0xFF, 0xFE]);
        assert_eq!(read(&d.target.join("database/test-db.conf")), b"conf");
        assert_eq!(mode(&d.target.join("crlf")), 0o400);
        assert_eq!(mode(&d.target.join("bin")), 0o440);
        assert_eq!(mode(&d.target.join("database")), 0o755);
        assert_eq!(mode(&d.target.join(&out.new_dir)), 0o755);
        assert!(visible_tree_matches(&d.target, &p).expect("matches"));

        assert_eq!(
            teardown_target(&SysMounter, &d.target).expect("teardown"),
            Teardown::UnmountedTmpfs
        );
        assert!(!d.target.exists());
        assert_eq!(
            SysMounter.mount_state(&d.target).expect("state"),
            MountState::NotMounted
        );
        assert_eq!(
            teardown_target(&SysMounter, &d.target).expect("again"),
            Teardown::Absent
        );
    }

    #[test]
    fn privileged_rewrite_swaps_data_and_old_dir_is_zeroed() {
        if !privileged_or_skip("privileged_rewrite_swaps_data_and_old_dir_is_zeroed") {
            return;
        }
        let d = MountDir::new();
        SysMounter.mount_tmpfs(&d.target, 1 << 20).expect("mount");
        let first = write_payload(
            &d.target,
            &payload(&[("s", 0o644, b"old-value")]),
            Some(1 << 20),
        )
        .expect("write 1");
        let mut held = fs::File::open(d.target.join("s")).expect("open before swap");
        let second = write_payload(&d.target, &payload(&[("s", 0o644, b"new")]), Some(1 << 20))
            .expect("write 2");
        assert_eq!(second.old_dir.as_deref(), Some(first.new_dir.as_str()));
        assert_eq!(
            fs::read_link(d.target.join("..data")).expect("..data"),
            Path::new(&second.new_dir)
        );
        assert_eq!(
            read(&d.target.join("s")),
            b"new",
            "opened after the swap: new bytes"
        );
        let mut before = Vec::new();
        held.read_to_end(&mut before).expect("read held");
        assert_eq!(before, b"old-value", "opened before the swap: old bytes");

        zero_and_remove_payload(&d.target, &first.new_dir).expect("zero old");
        assert!(!d.target.join(&first.new_dir).exists());
        let mut after = Vec::new();
        held.rewind_and_read(&mut after);
        assert_eq!(after, vec![0u8; 9], "old file zeroed in place");
        assert_eq!(
            teardown_target(&SysMounter, &d.target).expect("teardown"),
            Teardown::UnmountedTmpfs
        );
    }

    trait RewindRead {
        fn rewind_and_read(&mut self, out: &mut Vec<u8>);
    }

    impl RewindRead for fs::File {
        fn rewind_and_read(&mut self, out: &mut Vec<u8>) {
            use std::io::Seek;
            self.rewind().expect("rewind");
            self.read_to_end(out).expect("read");
        }
    }

    #[test]
    fn privileged_c37_enospc_keeps_old_files() {
        if !privileged_or_skip("privileged_c37_enospc_keeps_old_files") {
            return;
        }
        let d = MountDir::new();
        let limit = 64 * 1024;
        SysMounter.mount_tmpfs(&d.target, limit).expect("mount");
        let small = vec![b's'; 10 * 1024];
        let first = write_payload(&d.target, &payload(&[("v", 0o644, &small)]), Some(limit))
            .expect("write small");
        let big = vec![b'b'; 80 * 1024];
        let err = write_payload(
            &d.target,
            &payload(&[("v", 0o644, &big), ("w", 0o644, b"w")]),
            Some(limit),
        )
        .expect_err("too large");
        assert!(
            matches!(err, MountError::TooLarge { limit: l } if l == limit),
            "{err:?}"
        );
        assert_eq!(
            read(&d.target.join("v")),
            small,
            "old content still readable"
        );
        assert!(!d.target.join("w").exists());
        assert_eq!(
            fs::read_link(d.target.join("..data")).expect("..data"),
            Path::new(&first.new_dir)
        );
        let mut names: Vec<String> = fs::read_dir(&d.target)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut want = vec!["..data".to_owned(), first.new_dir.clone(), "v".to_owned()];
        want.sort();
        assert_eq!(names, want, "the partial dir was removed");
        // Without a known limit, ENOSPC is an I/O error.
        let err =
            write_payload(&d.target, &payload(&[("v", 0o644, &big)]), None).expect_err("too large");
        assert!(matches!(err, MountError::Io { .. }), "{err:?}");
        assert_eq!(
            teardown_target(&SysMounter, &d.target).expect("teardown"),
            Teardown::UnmountedTmpfs
        );
    }

    #[test]
    fn privileged_c38_tmpfs_teardown_with_planted_links() {
        if !privileged_or_skip("privileged_c38_tmpfs_teardown_with_planted_links") {
            return;
        }
        let d = MountDir::new();
        let sentinel = d.tmp.path().join("sentinel");
        fs::write(&sentinel, b"keep").expect("sentinel");
        SysMounter.mount_tmpfs(&d.target, 1 << 20).expect("mount");
        write_payload(&d.target, &payload(&[("a", 0o644, b"a")]), Some(1 << 20)).expect("write");
        symlink(&sentinel, d.target.join("evil")).expect("evil");
        fs::remove_file(d.target.join("..data")).expect("rm ..data");
        symlink(d.tmp.path(), d.target.join("..data")).expect("fake ..data");
        // Rewrite first: must not follow the fake ..data.
        let out = write_payload(&d.target, &payload(&[("a", 0o644, b"b")]), Some(1 << 20))
            .expect("rewrite");
        assert_eq!(out.old_dir, None, "an absolute ..data is not ours");
        assert_eq!(read(&sentinel), b"keep");
        // Busy: a held fd makes the plain unmount fail, the lazy one works.
        let _held = fs::File::open(d.target.join("a")).expect("hold");
        assert_eq!(
            teardown_target(&SysMounter, &d.target).expect("teardown"),
            Teardown::UnmountedTmpfs
        );
        assert!(!d.target.exists());
        assert_eq!(read(&sentinel), b"keep");
        assert!(d.tmp.path().join("sentinel").exists());
    }

    #[test]
    fn privileged_foreign_fs_is_refused() {
        if !privileged_or_skip("privileged_foreign_fs_is_refused") {
            return;
        }
        let d = MountDir::new();
        mount(
            Some("other"),
            &d.target,
            Some("ramfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .expect("mount ramfs");
        fs::write(d.target.join("data"), b"not ours").expect("write");
        assert_eq!(
            SysMounter.mount_state(&d.target).expect("state"),
            MountState::Foreign
        );
        let err = teardown_target(&SysMounter, &d.target).expect_err("refused");
        match err {
            MountError::Foreign { what, .. } => assert_eq!(what, "another filesystem (ramfs)"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(read(&d.target.join("data")), b"not ours");
        assert_eq!(
            SysMounter.mount_state(&d.target).expect("state"),
            MountState::Foreign
        );
        // A tmpfs stacked on the foreign fs is removed; the foreign one stays.
        SysMounter
            .mount_tmpfs(&d.target, 4096)
            .expect("stack tmpfs");
        let err = teardown_target(&SysMounter, &d.target).expect_err("refused below");
        assert!(matches!(err, MountError::Foreign { .. }), "{err:?}");
        assert_eq!(
            SysMounter.mount_state(&d.target).expect("state"),
            MountState::Foreign
        );
        assert_eq!(read(&d.target.join("data")), b"not ours");
        SysMounter.unmount(&d.target, false).expect("cleanup");
        assert_eq!(fs::metadata(&d.target).expect("dir").nlink(), 2);
    }

    #[test]
    fn privileged_mount_refuses_symlink_target() {
        if !privileged_or_skip("privileged_mount_refuses_symlink_target") {
            return;
        }
        let d = MountDir::new();
        let link = d.tmp.path().join("link");
        symlink(&d.target, &link).expect("symlink");
        let err = SysMounter
            .mount_tmpfs(&link, 4096)
            .expect_err("symlink target");
        assert!(
            matches!(
                err,
                MountError::Io {
                    op: "mount tmpfs",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            SysMounter.mount_state(&d.target).expect("state"),
            MountState::NotMounted
        );
    }
}
