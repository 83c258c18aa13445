//! Kubelet's AtomicWriter layout (DESIGN §5), written link-safely.
//!
//! ```text
//! <root>/..2026_11_29_15_04_05.123456789/<files, nested dirs>
//! <root>/..data -> ..2026_11_29_15_04_05.123456789   (swapped with rename(2))
//! <root>/<top-level name> -> ..data/<top-level name>
//! ```
//!
//! Everything goes through a directory fd of the root and `*at` syscalls
//! with `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW`; a symlink found in the volume is
//! read with `readlinkat` or replaced, never followed (CVE-2017-1002102).
//! The new payload dir is complete, with its final modes, before `..data`
//! is swapped, so a reader sees either the old or the new tree, never a torn
//! one. A failure before the swap removes the partial dir and leaves the
//! old tree untouched.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, readlinkat, renameat};
use nix::sys::stat::{Mode, fchmod, mkdirat};
use nix::unistd::{UnlinkatFlags, symlinkat, unlinkat};
use time::OffsetDateTime;
use time::macros::format_description;

use super::MountError;
use super::teardown::{
    Kind, io_err, kind_of, list_dir, lstat_at, open_dir_at, open_dir_path, zero_and_remove_dir_at,
};
use crate::params::RelPath;
use crate::store::SecretBytes;

/// The symlink that names the current payload dir.
pub(crate) const DATA_LINK: &str = "..data";
/// Scratch name for the new `..data` before it is renamed into place.
const DATA_TMP: &str = "..data_tmp";
/// Scratch name for a visible link before it is renamed into place.
const LINK_TMP: &str = "..link_tmp";
/// Mode of payload dirs and nested dirs.
const DIR_MODE: u32 = 0o755;

/// One file of a payload. Cloning shares the content.
#[derive(Debug, Clone)]
pub struct PayloadFile {
    /// Path relative to the volume root (validated).
    pub path: RelPath,
    /// File mode bits (e.g. 0o644).
    pub mode: u32,
    /// Content.
    pub content: std::sync::Arc<SecretBytes>,
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
/// 1. Creates a new payload dir `..<UTC time with ns>` (0755) with every
///    file (`O_CREAT|O_EXCL|O_NOFOLLOW`, exact bytes, mode set with
///    `fchmod` so the umask does not matter; permission bits only, masked
///    with 0o777) and nested dirs (0755).
/// 2. Swaps `..data` to it (`..data_tmp` + `renameat`).
/// 3. Makes every top-level name a symlink to `..data/<name>` (atomic
///    replace), creating what a crash may have left missing (C36).
/// 4. Removes top-level symlinks into `..data/` that the payload no longer
///    has. Other entries (a user's file, a planted link) are left alone.
///
/// A failure before the swap zeroes and removes the partial dir and leaves
/// the previous tree as it was. A failure after the swap (a visible link)
/// is returned as an error with the new content already live; the next
/// call repairs the links (C36). The previous payload dir is not removed:
/// its name is returned in [`WriteOutcome::old_dir`].
///
/// # Errors
/// [`MountError::TooLarge`] on `ENOSPC`/`EDQUOT`/`EFBIG` while writing when
/// `tmpfs_limit` is known; [`MountError::Io`] otherwise, including when a
/// top-level name is taken by something that is not a symlink, or `..data`
/// is not a symlink.
pub fn write_payload(
    volume_root: &Path,
    payload: &Payload,
    tmpfs_limit: Option<u64>,
) -> Result<WriteOutcome, MountError> {
    let top = top_level_names(volume_root, payload)?;
    let root =
        open_dir_path(volume_root).map_err(|e| io_err("open volume root", volume_root, e))?;
    let root = root.as_fd();

    // Refuse before writing anything when the swap or a link could only
    // succeed by deleting something that is not ours.
    ensure_symlink_or_absent(root, volume_root, DATA_LINK)?;
    for name in &top {
        ensure_symlink_or_absent(root, volume_root, name)?;
    }
    let old_dir = current_payload_dir(root, volume_root)?;

    let new_dir = create_payload_dir(root, volume_root, tmpfs_limit)?;
    let new_path = volume_root.join(&new_dir);
    let filled = open_dir_at(root, OsStr::new(&new_dir))
        .map_err(|e| io_err("open payload dir", &new_path, e))
        .and_then(|dir| {
            fchmod(dir.as_fd(), Mode::from_bits_truncate(DIR_MODE))
                .map_err(|e| io_err("chmod payload dir", &new_path, e))?;
            for file in &payload.files {
                write_file(dir.as_fd(), &new_path, file, tmpfs_limit)?;
            }
            Ok(())
        })
        .and_then(|()| replace_symlink(root, volume_root, DATA_TMP, &new_dir, DATA_LINK));
    if let Err(e) = filled {
        discard_dir(root, volume_root, &new_dir);
        return Err(e);
    }

    // After the swap: the new content is live; make it visible.
    for name in &top {
        ensure_visible_link(root, volume_root, name)?;
    }
    remove_stale_links(root, volume_root, &top)?;
    Ok(WriteOutcome { new_dir, old_dir })
}

/// Whether the visible tree of `volume_root` already serves `payload`:
/// `..data` names an existing payload dir, every top-level name is the
/// symlink `..data/<name>`, and every file is reachable through it as a
/// regular file with the payload's length and mode. Contents are not
/// compared (that would read secrets back). Symlinks inside the payload
/// dir are not followed: a file reached only through one does not match.
///
/// # Errors
/// [`MountError::Io`] for an unexpected syscall failure; anything missing
/// or of the wrong kind is `Ok(false)`.
pub fn visible_tree_matches(volume_root: &Path, payload: &Payload) -> Result<bool, MountError> {
    let root = match open_dir_path(volume_root) {
        Ok(fd) => fd,
        Err(e) if is_absent(e) => return Ok(false),
        Err(e) => return Err(io_err("open volume root", volume_root, e)),
    };
    let root = root.as_fd();
    let Some(data_dir) = current_payload_dir(root, volume_root)? else {
        return Ok(false);
    };
    let data = match open_dir_at(root, OsStr::new(&data_dir)) {
        Ok(fd) => fd,
        Err(e) if is_absent(e) => return Ok(false),
        Err(e) => return Err(io_err("open payload dir", &volume_root.join(&data_dir), e)),
    };
    let Ok(top) = top_level_names(volume_root, payload) else {
        return Ok(false);
    };
    for name in &top {
        match readlinkat(root, name.as_str()) {
            Ok(t) if t.as_encoded_bytes() == format!("{DATA_LINK}/{name}").as_bytes() => {}
            Ok(_) => return Ok(false),
            Err(e) if is_absent(e) => return Ok(false),
            Err(e) => return Err(io_err("readlink", &volume_root.join(name), e)),
        }
    }
    for file in &payload.files {
        if !file_matches(data.as_fd(), volume_root, file)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Overwrites every regular file below `volume_root/<dir_name>` with zeros
/// and removes the dir, never following links.
///
/// `dir_name` must be a payload dir name: it starts with `..`, has no `/`,
/// and is neither `..`, `..data`, `..data_tmp` nor the dir `..data`
/// currently names. A missing root or dir is Ok.
///
/// # Errors
/// [`MountError::Io`] for a refused name (`EINVAL`), the live payload dir
/// (`EBUSY`), a non-directory at the name (`ENOTDIR`), or a failed syscall.
pub fn zero_and_remove_payload(volume_root: &Path, dir_name: &str) -> Result<(), MountError> {
    let path = volume_root.join(dir_name);
    if !is_payload_dir_name(dir_name) {
        return Err(io_err("remove payload dir", &path, Errno::EINVAL));
    }
    let root = match open_dir_path(volume_root) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(io_err("open volume root", volume_root, e)),
    };
    let root = root.as_fd();
    if current_payload_dir(root, volume_root)?.as_deref() == Some(dir_name) {
        return Err(io_err("remove payload dir", &path, Errno::EBUSY));
    }
    zero_and_remove_dir_at(root, OsStr::new(dir_name), &path)
}

/// A name [`write_payload`] could have created for a payload dir.
fn is_payload_dir_name(name: &str) -> bool {
    name.len() > 2
        && name.starts_with("..")
        && !name.contains('/')
        && !name.contains('\0')
        && name != DATA_LINK
        && name != DATA_TMP
        && name != LINK_TMP
}

fn is_absent(e: Errno) -> bool {
    matches!(
        e,
        Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::EINVAL
    )
}

/// Maps a write-phase error: out of space with a known cap is
/// [`MountError::TooLarge`].
fn write_err(
    op: &'static str,
    path: &Path,
    err: impl Into<std::io::Error>,
    limit: Option<u64>,
) -> MountError {
    let err: std::io::Error = err.into();
    match (err.raw_os_error(), limit) {
        (Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG), Some(limit)) => {
            MountError::TooLarge { limit }
        }
        _ => io_err(op, path, err),
    }
}

/// The distinct first components of the payload's paths, after checking
/// every component again (defence in depth over [`RelPath`]): never empty,
/// `.`, `..`-prefixed (the writer's scratch names) or containing NUL.
fn top_level_names(root: &Path, payload: &Payload) -> Result<BTreeSet<String>, MountError> {
    let mut top = BTreeSet::new();
    for file in &payload.files {
        for c in file.path.components() {
            if c.is_empty() || c == "." || c.starts_with("..") || c.contains('\0') {
                return Err(io_err(
                    "validate payload path",
                    &root.join(file.path.as_str()),
                    std::io::Error::from(std::io::ErrorKind::InvalidInput),
                ));
            }
        }
        if let Some(first) = file.path.components().next() {
            top.insert(first.to_owned());
        }
    }
    Ok(top)
}

/// Errors unless `name` below `root` is a symlink or absent.
fn ensure_symlink_or_absent(
    root: BorrowedFd<'_>,
    root_path: &Path,
    name: &str,
) -> Result<(), MountError> {
    match lstat_at(root, OsStr::new(name)) {
        Ok(st) if kind_of(&st) == Kind::Symlink => Ok(()),
        Ok(_) => Err(io_err(
            "visible name is not a symlink",
            &root_path.join(name),
            Errno::EEXIST,
        )),
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(io_err("lstat", &root_path.join(name), e)),
    }
}

/// The payload dir `..data` names: only a `..`-prefixed name without `/`
/// (an absolute or nested target was not written by us) that exists as a
/// real directory.
fn current_payload_dir(
    root: BorrowedFd<'_>,
    root_path: &Path,
) -> Result<Option<String>, MountError> {
    let target = match readlinkat(root, DATA_LINK) {
        Ok(t) => t,
        Err(e) if is_absent(e) => return Ok(None),
        Err(e) => return Err(io_err("readlink", &root_path.join(DATA_LINK), e)),
    };
    let Some(name) = target.to_str() else {
        return Ok(None);
    };
    if !is_payload_dir_name(name) {
        return Ok(None);
    }
    match lstat_at(root, OsStr::new(name)) {
        Ok(st) if kind_of(&st) == Kind::Dir => Ok(Some(name.to_owned())),
        Ok(_) => Ok(None),
        Err(e) if is_absent(e) => Ok(None),
        Err(e) => Err(io_err("lstat", &root_path.join(name), e)),
    }
}

/// Creates `..<UTC now, ns>` (bumping by 1 ns while the name is taken).
fn create_payload_dir(
    root: BorrowedFd<'_>,
    root_path: &Path,
    limit: Option<u64>,
) -> Result<String, MountError> {
    let mut t = OffsetDateTime::now_utc();
    for _ in 0..1000 {
        let name = payload_dir_name(t)
            .map_err(|e| io_err("name payload dir", root_path, std::io::Error::other(e)))?;
        match mkdirat(root, name.as_str(), Mode::from_bits_truncate(DIR_MODE)) {
            Ok(()) => return Ok(name),
            Err(Errno::EEXIST) => t += time::Duration::nanoseconds(1),
            Err(e) => {
                return Err(write_err(
                    "mkdir payload dir",
                    &root_path.join(&name),
                    e,
                    limit,
                ));
            }
        }
    }
    Err(io_err("mkdir payload dir", root_path, Errno::EEXIST))
}

/// `..%Y_%m_%d_%H_%M_%S.%9N` of `t` (UTC).
pub(crate) fn payload_dir_name(t: OffsetDateTime) -> Result<String, time::error::Format> {
    t.format(format_description!(
        "..[year]_[month]_[day]_[hour]_[minute]_[second].[subsecond digits:9]"
    ))
}

/// Writes one file (and its parent dirs) below the open payload dir.
fn write_file(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    file: &PayloadFile,
    limit: Option<u64>,
) -> Result<(), MountError> {
    let components: Vec<&str> = file.path.components().collect();
    let Some((leaf, parents)) = components.split_last() else {
        return Err(io_err(
            "validate payload path",
            dir_path,
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        ));
    };
    let mut path = dir_path.to_path_buf();
    let mut current: Option<OwnedFd> = None;
    for comp in parents {
        path.push(comp);
        let parent = current.as_ref().map_or(dir, AsFd::as_fd);
        let created = match mkdirat(parent, *comp, Mode::from_bits_truncate(DIR_MODE)) {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(e) => return Err(write_err("mkdir", &path, e, limit)),
        };
        let sub =
            open_dir_at(parent, OsStr::new(comp)).map_err(|e| io_err("open dir", &path, e))?;
        if created {
            fchmod(sub.as_fd(), Mode::from_bits_truncate(DIR_MODE))
                .map_err(|e| io_err("chmod dir", &path, e))?;
        }
        current = Some(sub);
    }
    path.push(leaf);
    let parent = current.as_ref().map_or(dir, AsFd::as_fd);
    let fd = openat(
        parent,
        *leaf,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .map_err(|e| write_err("create", &path, e, limit))?;
    let mut f = File::from(fd);
    f.write_all(file.content.expose())
        .map_err(|e| write_err("write", &path, e, limit))?;
    fchmod(f.as_fd(), Mode::from_bits_truncate(file.mode & 0o777))
        .map_err(|e| io_err("chmod", &path, e))?;
    Ok(())
}

/// Zeroes and removes a partial payload dir after a failure; a failure here
/// is logged, the caller reports the first error.
fn discard_dir(root: BorrowedFd<'_>, root_path: &Path, name: &str) {
    let path = root_path.join(name);
    if let Err(e) = zero_and_remove_dir_at(root, OsStr::new(name), &path) {
        tracing::warn!(path = %path.display(), error = %e, "could not remove a partial payload dir");
    }
    let _ = unlinkat(root, DATA_TMP, UnlinkatFlags::NoRemoveDir);
}

/// Atomically makes `name` a symlink to `target`: creates it as `tmp`
/// (removing a stale `tmp` first) and renames it over `name`.
fn replace_symlink(
    root: BorrowedFd<'_>,
    root_path: &Path,
    tmp: &str,
    target: &str,
    name: &str,
) -> Result<(), MountError> {
    let tmp_path = root_path.join(tmp);
    match unlinkat(root, tmp, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(io_err("remove stale link", &tmp_path, e)),
    }
    symlinkat(target, root, tmp).map_err(|e| io_err("symlink", &tmp_path, e))?;
    if let Err(e) = renameat(root, tmp, root, name) {
        let _ = unlinkat(root, tmp, UnlinkatFlags::NoRemoveDir);
        return Err(io_err("rename link", &root_path.join(name), e));
    }
    Ok(())
}

/// Makes `name` the symlink `..data/<name>` unless it already is.
fn ensure_visible_link(
    root: BorrowedFd<'_>,
    root_path: &Path,
    name: &str,
) -> Result<(), MountError> {
    let want = format!("{DATA_LINK}/{name}");
    let path = root_path.join(name);
    match lstat_at(root, OsStr::new(name)) {
        Ok(st) if kind_of(&st) == Kind::Symlink => match readlinkat(root, name) {
            Ok(t) if t.as_encoded_bytes() == want.as_bytes() => return Ok(()),
            Ok(_) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(io_err("readlink", &path, e)),
        },
        Ok(_) => {
            return Err(io_err(
                "visible name is not a symlink",
                &path,
                Errno::EEXIST,
            ));
        }
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(io_err("lstat", &path, e)),
    }
    replace_symlink(root, root_path, LINK_TMP, &want, name)
}

/// Removes top-level symlinks into `..data/` whose name the payload lost.
fn remove_stale_links(
    root: BorrowedFd<'_>,
    root_path: &Path,
    top: &BTreeSet<String>,
) -> Result<(), MountError> {
    let prefix = format!("{DATA_LINK}/");
    for name in list_dir(root, root_path)? {
        let Some(s) = name.to_str() else { continue };
        if s.starts_with("..") || top.contains(s) {
            continue;
        }
        let path = root_path.join(&name);
        match lstat_at(root, &name) {
            Ok(st) if kind_of(&st) == Kind::Symlink => {}
            Ok(_) | Err(Errno::ENOENT) => continue,
            Err(e) => return Err(io_err("lstat", &path, e)),
        }
        match readlinkat(root, name.as_os_str()) {
            Ok(t) if t.as_encoded_bytes().starts_with(prefix.as_bytes()) => {
                match unlinkat(root, name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(e) => return Err(io_err("remove stale link", &path, e)),
                }
            }
            Ok(_) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(io_err("readlink", &path, e)),
        }
    }
    Ok(())
}

/// Whether `file` exists below the open payload dir `data` as a regular
/// file of the right length and mode, reached without following links.
fn file_matches(
    data: BorrowedFd<'_>,
    root_path: &Path,
    file: &PayloadFile,
) -> Result<bool, MountError> {
    let components: Vec<&str> = file.path.components().collect();
    let Some((leaf, parents)) = components.split_last() else {
        return Ok(false);
    };
    let mut path: PathBuf = root_path.join(DATA_LINK);
    let mut current: Option<OwnedFd> = None;
    for comp in parents {
        path.push(comp);
        let parent = current.as_ref().map_or(data, AsFd::as_fd);
        match open_dir_at(parent, OsStr::new(comp)) {
            Ok(fd) => current = Some(fd),
            Err(e) if is_absent(e) => return Ok(false),
            Err(e) => return Err(io_err("open dir", &path, e)),
        }
    }
    path.push(leaf);
    let parent = current.as_ref().map_or(data, AsFd::as_fd);
    let st = match lstat_at(parent, OsStr::new(leaf)) {
        Ok(st) => st,
        Err(e) if is_absent(e) => return Ok(false),
        Err(e) => return Err(io_err("lstat", &path, e)),
    };
    Ok(kind_of(&st) == Kind::File
        && u64::try_from(st.st_size).ok() == Some(file.content.len() as u64)
        && st.st_mode & 0o7777 == file.mode & 0o777)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::{Read, Seek};
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

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

    fn root() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("vol");
        fs::create_dir(&root).expect("mkdir");
        (tmp, root)
    }

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).expect("lstat").permissions().mode() & 0o7777
    }

    fn entries(root: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(root)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn c30_layout_and_exact_bytes() {
        let (_t, root) = root();
        let cases: &[(&str, &[u8])] = &[
            ("lf", b"abc\n"),
            ("plain", b"abc"),
            ("crlf", b"a\r\nb\r\n"),
            ("literal", b"a\\nb"),
            ("bin", &[0xFF, 0xFE]),
            ("empty", b""),
            (".hidden", b"h"),
        ];
        let files: Vec<(&str, u32, &[u8])> = cases.iter().map(|(n, c)| (*n, 0o644, *c)).collect();
        let out = write_payload(&root, &payload(&files), None).expect("write");
        assert!(out.old_dir.is_none());
        assert_eq!(
            fs::read_link(root.join("..data")).expect("..data"),
            Path::new(&out.new_dir)
        );
        for (name, content) in cases {
            assert_eq!(fs::read(root.join(name)).expect("read"), *content, "{name}");
            assert_eq!(
                fs::read_link(root.join(name)).expect("visible link"),
                Path::new(&format!("..data/{name}"))
            );
        }
        let mut want: Vec<String> = cases.iter().map(|(n, _)| (*n).to_owned()).collect();
        want.push("..data".into());
        want.push(out.new_dir.clone());
        want.sort();
        assert_eq!(entries(&root), want, "no scratch names left behind");
    }

    #[test]
    fn payload_dir_name_format() {
        let t = time::macros::datetime!(2026-11-29 15:04:05.000000123 UTC);
        assert_eq!(
            payload_dir_name(t).expect("format"),
            "..2026_11_29_15_04_05.000000123"
        );
        let (_t, root) = root();
        let out = write_payload(&root, &payload(&[("a", 0o644, b"a")]), None).expect("write");
        let n = &out.new_dir;
        assert_eq!(n.len(), "..2026_11_29_15_04_05.123456789".len(), "{n}");
        assert!(n.starts_with("..20"), "{n}");
        assert!(
            n[2..]
                .chars()
                .all(|c| c.is_ascii_digit() || c == '_' || c == '.'),
            "{n}"
        );
        assert_eq!(mode(&root.join(n)), 0o755);
    }

    #[test]
    fn c03_nested_dirs_are_created() {
        let (_t, root) = root();
        let p = payload(&[
            ("database/test-db.conf", 0o640, b"conf"),
            ("database/other", 0o644, b"o"),
            ("x/y/z", 0o600, b"deep"),
        ]);
        let out = write_payload(&root, &p, None).expect("write");
        assert_eq!(
            fs::read(root.join("database/test-db.conf")).expect("read"),
            b"conf"
        );
        assert_eq!(fs::read(root.join("x/y/z")).expect("read"), b"deep");
        assert_eq!(
            fs::read_link(root.join("database")).expect("link"),
            Path::new("..data/database")
        );
        let data = root.join(&out.new_dir);
        assert_eq!(mode(&data.join("database")), 0o755);
        assert_eq!(mode(&data.join("x/y")), 0o755);
        assert_eq!(mode(&data.join("database/test-db.conf")), 0o640);
        assert!(visible_tree_matches(&root, &p).expect("matches"));
    }

    #[test]
    fn modes_are_exact_whatever_the_umask() {
        let (_t, root) = root();
        let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
        let modes = [0o400, 0o440, 0o600, 0o644, 0o664, 0o666, 0o777, 0o000];
        let names: Vec<String> = modes.iter().map(|m| format!("m{m:o}")).collect();
        let files: Vec<(&str, u32, &[u8])> = names
            .iter()
            .zip(modes)
            .map(|(n, m)| (n.as_str(), m, b"x".as_slice()))
            .collect();
        let res = write_payload(&root, &payload(&files), None);
        nix::sys::stat::umask(old);
        let out = res.expect("write");
        for (n, m) in names.iter().zip(modes) {
            assert_eq!(mode(&root.join(&out.new_dir).join(n)), m, "{n}");
        }
    }

    #[test]
    fn rewrite_swaps_data_and_old_dir_can_be_zeroed() {
        let (_t, root) = root();
        let first = write_payload(
            &root,
            &payload(&[("keep", 0o644, b"v1"), ("gone", 0o644, b"old-secret")]),
            None,
        )
        .expect("write 1");
        let mut held = File::open(root.join("gone")).expect("open");
        let p2 = payload(&[("keep", 0o644, b"v2"), ("new", 0o600, b"n")]);
        let second = write_payload(&root, &p2, None).expect("write 2");
        assert_eq!(second.old_dir.as_deref(), Some(first.new_dir.as_str()));
        assert_ne!(second.new_dir, first.new_dir);
        assert_eq!(fs::read(root.join("keep")).expect("read"), b"v2");
        assert_eq!(fs::read(root.join("new")).expect("read"), b"n");
        assert!(
            fs::symlink_metadata(root.join("gone")).is_err(),
            "stale link removed"
        );
        assert!(
            root.join(&first.new_dir).is_dir(),
            "old dir kept for the caller"
        );
        assert!(visible_tree_matches(&root, &p2).expect("matches"));

        zero_and_remove_payload(&root, &first.new_dir).expect("zero old");
        assert!(!root.join(&first.new_dir).exists());
        let mut after = Vec::new();
        held.rewind().expect("rewind");
        held.read_to_end(&mut after).expect("read");
        assert_eq!(after, vec![0u8; 10], "zeroed in place before unlink");
        assert_eq!(
            fs::read(root.join("keep")).expect("live data untouched"),
            b"v2"
        );
        // Twice is fine.
        zero_and_remove_payload(&root, &first.new_dir).expect("missing is ok");
    }

    #[test]
    fn failure_before_swap_keeps_old_files() {
        let (_t, root) = root();
        let first = write_payload(&root, &payload(&[("a", 0o644, b"old")]), None).expect("write 1");
        let before = entries(&root);
        for bad in [
            payload(&[("b", 0o644, b"new"), ("b", 0o644, b"dup")]),
            payload(&[("a", 0o644, b"new"), ("a/b", 0o644, b"under a file")]),
            payload(&[("c/d", 0o644, b"new"), ("c", 0o644, b"over a dir")]),
        ] {
            let err = write_payload(&root, &bad, Some(1 << 20)).expect_err("collision");
            assert!(matches!(err, MountError::Io { .. }), "{err:?}");
            assert_eq!(
                entries(&root),
                before,
                "partial dir removed, nothing new visible"
            );
            assert_eq!(fs::read(root.join("a")).expect("old"), b"old");
            assert_eq!(
                fs::read_link(root.join("..data")).expect("..data"),
                Path::new(&first.new_dir)
            );
        }
    }

    #[test]
    fn enospc_maps_to_too_large_only_with_a_limit() {
        let p = Path::new("/v/x");
        assert!(matches!(
            write_err("write", p, Errno::ENOSPC, Some(7)),
            MountError::TooLarge { limit: 7 }
        ));
        assert!(matches!(
            write_err("write", p, Errno::EDQUOT, Some(7)),
            MountError::TooLarge { limit: 7 }
        ));
        assert!(matches!(
            write_err("write", p, Errno::EFBIG, Some(7)),
            MountError::TooLarge { limit: 7 }
        ));
        assert!(matches!(
            write_err("write", p, Errno::ENOSPC, None),
            MountError::Io { .. }
        ));
        assert!(matches!(
            write_err("write", p, Errno::EACCES, Some(7)),
            MountError::Io { .. }
        ));
    }

    #[test]
    fn user_file_at_a_visible_name_is_not_replaced() {
        let (_t, root) = root();
        fs::write(root.join("a"), b"user data").expect("write");
        let err =
            write_payload(&root, &payload(&[("a", 0o644, b"ours")]), None).expect_err("refused");
        assert!(matches!(err, MountError::Io { .. }), "{err:?}");
        assert_eq!(fs::read(root.join("a")).expect("kept"), b"user data");
        assert_eq!(entries(&root), vec!["a".to_owned()], "nothing written");
    }

    #[test]
    fn c36_missing_visible_links_are_repaired() {
        let (_t, root) = root();
        let p = payload(&[("a", 0o644, b"alpha"), ("n/b", 0o400, b"beta")]);
        write_payload(&root, &p, None).expect("write");
        assert!(visible_tree_matches(&root, &p).expect("matches"));
        // A crash right after the swap: the visible links never appeared.
        fs::remove_file(root.join("a")).expect("rm a");
        fs::remove_file(root.join("n")).expect("rm n");
        assert!(!visible_tree_matches(&root, &p).expect("matches"));
        let out = write_payload(&root, &p, None).expect("rewrite");
        assert!(visible_tree_matches(&root, &p).expect("matches"));
        assert_eq!(fs::read(root.join("n/b")).expect("read"), b"beta");
        assert!(out.old_dir.is_some());
        // A visible link that points elsewhere is also a mismatch.
        fs::remove_file(root.join("a")).expect("rm a");
        symlink("..data/n", root.join("a")).expect("wrong link");
        assert!(!visible_tree_matches(&root, &p).expect("matches"));
        write_payload(&root, &p, None).expect("rewrite");
        assert_eq!(fs::read(root.join("a")).expect("read"), b"alpha");
    }

    #[test]
    fn visible_tree_matches_checks_length_and_mode() {
        let (_t, root) = root();
        let p = payload(&[("a", 0o644, b"alpha")]);
        assert!(!visible_tree_matches(&root, &p).expect("empty root"));
        assert!(!visible_tree_matches(&root.join("missing"), &p).expect("missing root"));
        let out = write_payload(&root, &p, None).expect("write");
        assert!(visible_tree_matches(&root, &p).expect("matches"));
        assert!(
            !visible_tree_matches(&root, &payload(&[("a", 0o644, b"alphabet")])).expect("length")
        );
        assert!(!visible_tree_matches(&root, &payload(&[("a", 0o600, b"alpha")])).expect("mode"));
        assert!(!visible_tree_matches(&root, &payload(&[("b", 0o644, b"alpha")])).expect("name"));
        // A file replaced by a symlink inside the payload dir does not match.
        let inner = root.join(&out.new_dir).join("a");
        fs::remove_file(&inner).expect("rm");
        symlink("/etc/hostname", &inner).expect("symlink");
        assert!(!visible_tree_matches(&root, &p).expect("symlinked file"));
        // A dangling ..data does not match.
        fs::remove_file(root.join("..data")).expect("rm");
        symlink("..nowhere", root.join("..data")).expect("symlink");
        assert!(!visible_tree_matches(&root, &p).expect("dangling"));
    }

    #[test]
    fn c38_rewrite_with_planted_links_never_follows_them() {
        let (tmp, root) = root();
        let sentinel = tmp.path().join("sentinel");
        fs::write(&sentinel, b"keep").expect("sentinel");
        let outside_dir = tmp.path().join("outside");
        fs::create_dir(&outside_dir).expect("mkdir");
        fs::write(outside_dir.join("evil"), b"outside").expect("write");
        write_payload(&root, &payload(&[("a", 0o644, b"a")]), None).expect("write");
        symlink(&sentinel, root.join("evil")).expect("evil");
        fs::remove_file(root.join("..data")).expect("rm");
        symlink(&outside_dir, root.join("..data")).expect("fake ..data");
        // The payload now has a file named `evil`, too.
        let p = payload(&[("a", 0o644, b"b"), ("evil", 0o644, b"ours")]);
        let out = write_payload(&root, &p, None).expect("rewrite");
        assert_eq!(out.old_dir, None, "an absolute ..data is not ours");
        assert_eq!(fs::read(&sentinel).expect("sentinel"), b"keep");
        assert_eq!(
            fs::read(outside_dir.join("evil")).expect("outside"),
            b"outside"
        );
        assert_eq!(
            fs::read_link(root.join("evil")).expect("link"),
            Path::new("..data/evil")
        );
        assert_eq!(fs::read(root.join("evil")).expect("read"), b"ours");
        // A planted link not named in the payload and not into ..data stays.
        symlink(&sentinel, root.join("other")).expect("other");
        write_payload(&root, &p, None).expect("rewrite");
        assert!(fs::symlink_metadata(root.join("other")).is_ok());
        assert_eq!(fs::read(&sentinel).expect("sentinel"), b"keep");
        // The fake ..data can never be passed for removal.
        assert!(zero_and_remove_payload(&root, "..data").is_err());
    }

    #[test]
    fn zero_and_remove_payload_never_follows_links() {
        let (tmp, root) = root();
        let sentinel = tmp.path().join("sentinel");
        fs::write(&sentinel, b"keep").expect("sentinel");
        let outside_dir = tmp.path().join("outside");
        fs::create_dir(&outside_dir).expect("mkdir");
        fs::write(outside_dir.join("f"), b"outside").expect("write");
        let first = write_payload(
            &root,
            &payload(&[("a", 0o400, b"a"), ("d/b", 0o644, b"b")]),
            None,
        )
        .expect("write");
        write_payload(&root, &payload(&[("a", 0o644, b"z")]), None).expect("write 2");
        let old = root.join(&first.new_dir);
        symlink(&sentinel, old.join("evil")).expect("evil");
        symlink(&outside_dir, old.join("d/evil_dir")).expect("evil dir");
        zero_and_remove_payload(&root, &first.new_dir).expect("remove");
        assert!(!old.exists());
        assert_eq!(fs::read(&sentinel).expect("sentinel"), b"keep");
        assert_eq!(
            fs::read(outside_dir.join("f")).expect("outside"),
            b"outside"
        );
    }

    #[test]
    fn zero_and_remove_payload_refuses_bad_names_and_the_live_dir() {
        let (tmp, root) = root();
        let out = write_payload(&root, &payload(&[("a", 0o644, b"a")]), None).expect("write");
        for bad in ["..data", "..", "a", "../x", "..x/y", "..data_tmp", "", "."] {
            assert!(zero_and_remove_payload(&root, bad).is_err(), "{bad:?}");
        }
        let err = zero_and_remove_payload(&root, &out.new_dir).expect_err("live dir");
        assert!(
            matches!(&err, MountError::Io { source, .. } if source.raw_os_error() == Some(libc::EBUSY)),
            "{err:?}"
        );
        assert_eq!(fs::read(root.join("a")).expect("live"), b"a");
        zero_and_remove_payload(&root, "..2000_01_01_00_00_00.000000000")
            .expect("missing dir is ok");
        zero_and_remove_payload(&tmp.path().join("nope"), "..x").expect("missing root is ok");
        // A symlink at the name is refused, and not followed.
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).expect("mkdir");
        fs::write(outside.join("f"), b"f").expect("write");
        symlink(&outside, root.join("..link")).expect("symlink");
        assert!(zero_and_remove_payload(&root, "..link").is_err());
        assert_eq!(fs::read(outside.join("f")).expect("intact"), b"f");
    }

    #[test]
    fn empty_payload_swaps_to_an_empty_dir() {
        let (_t, root) = root();
        write_payload(&root, &payload(&[("a", 0o644, b"a")]), None).expect("write");
        let out = write_payload(&root, &Payload::default(), None).expect("write empty");
        assert!(fs::symlink_metadata(root.join("a")).is_err());
        assert_eq!(
            fs::read_dir(root.join(&out.new_dir)).expect("dir").count(),
            0
        );
    }
}
