//! FUSE semantics, against a real mount (root only).
//!
//! Each test mounts its own tree in a temporary directory. When not root
//! (or without `/dev/fuse`) a test prints why it is skipped and passes,
//! unless `VAULTLET_REQUIRE_PRIVILEGED=1`, which makes it fail instead.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use vaultlet_fuse::{DirAttrs, Entry, Error, FsTree, MountHandle, MountOptions};

const REQUIRE_PRIVILEGED_ENV: &str = "VAULTLET_REQUIRE_PRIVILEGED";

/// Gate: root and `/dev/fuse`, or skip with a reason (fail when required).
fn privileged(name: &str) -> bool {
    let reason = if !nix::unistd::geteuid().is_root() {
        "needs root to mount"
    } else if !Path::new("/dev/fuse").exists() {
        "needs /dev/fuse"
    } else {
        return true;
    };
    if std::env::var(REQUIRE_PRIVILEGED_ENV).is_ok_and(|v| v == "1") {
        panic!("{name}: {reason}, and {REQUIRE_PRIVILEGED_ENV}=1 forbids skipping");
    }
    eprintln!("skipping {name}: {reason} (set {REQUIRE_PRIVILEGED_ENV}=1 to fail instead)");
    false
}

fn bytes(b: &[u8]) -> Arc<Vec<u8>> {
    Arc::new(b.to_vec())
}

/// Deterministic, position-dependent bytes (so a wrong offset shows).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn mount<C: AsRef<[u8]> + Send + Sync + 'static>(
    tree: &FsTree<C>,
    options: &MountOptions,
) -> (TempDir, MountHandle) {
    let dir = tempfile::tempdir().expect("tempdir");
    let handle = tree.mount(dir.path(), options).expect("mount");
    (dir, handle)
}

/// The `/proc/self/mountinfo` line for `mp`: (fstype, source, mount
/// options, super options).
fn mountinfo(mp: &Path) -> Option<(String, String, String, String)> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mp = mp.to_str().expect("utf-8 path");
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        (fields.get(4)? == &mp).then(|| {
            (
                fields.get(sep + 1).copied().unwrap_or_default().to_owned(),
                fields.get(sep + 2).copied().unwrap_or_default().to_owned(),
                fields.get(5).copied().unwrap_or_default().to_owned(),
                fields.get(sep + 3).copied().unwrap_or_default().to_owned(),
            )
        })
    })
}

fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Content that records its drop.
struct Flagged {
    bytes: Vec<u8>,
    dropped: Arc<AtomicBool>,
}

impl AsRef<[u8]> for Flagged {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Flagged {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

fn flagged(b: &[u8]) -> (Arc<Flagged>, Arc<AtomicBool>) {
    let dropped = Arc::new(AtomicBool::new(false));
    (
        Arc::new(Flagged {
            bytes: b.to_vec(),
            dropped: Arc::clone(&dropped),
        }),
        dropped,
    )
}

#[test]
fn statfs_and_mountinfo_report_fuse_vaultlet() {
    if !privileged("statfs_and_mountinfo_report_fuse_vaultlet") {
        return;
    }
    let tree: FsTree<Vec<u8>> = FsTree::new();
    let (_dir, handle) = mount(&tree, &MountOptions::default());
    let mp = handle.mountpoint();

    let st = nix::sys::statfs::statfs(mp).expect("statfs");
    assert_eq!(st.filesystem_type(), nix::sys::statfs::FUSE_SUPER_MAGIC);

    let (fstype, source, opts, superopts) = mountinfo(mp).expect("listed in mountinfo");
    assert_eq!(fstype, "fuse.vaultlet");
    assert_eq!(source, "vaultlet");
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(opts.split(',').any(|x| x == o), "{o} missing from {opts}");
    }
    for o in ["default_permissions", "allow_other"] {
        assert!(
            superopts.split(',').any(|x| x == o),
            "{o} missing from {superopts}"
        );
    }

    // `stat -f` names FUSE's magic "fuseblk" (coreutils), i.e. fuse.
    if let Ok(out) = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(mp)
        .output()
    {
        let t = String::from_utf8_lossy(&out.stdout);
        assert!(t.trim().starts_with("fuse"), "stat -f says {t:?}");
    }
}

#[test]
fn files_have_modes_and_ownership_as_written() {
    if !privileged("files_have_modes_and_ownership_as_written") {
        return;
    }
    let tree: FsTree<Vec<u8>> = FsTree::new();
    tree.add_volume(
        "vol",
        DirAttrs {
            uid: 0,
            gid: 1234,
            mode: 0o750,
        },
    )
    .expect("volume");
    let cases: [(&str, u32, u32, u32, &[u8]); 5] = [
        ("plain", 0o644, 0, 0, b"p"),
        ("private", 0o400, 1000, 1000, b"pr"),
        ("group", 0o440, 0, 2000, b"grp"),
        ("none", 0o000, 7, 8, b""),
        ("nested/dir/leaf", 0o604, 65534, 65534, b"leaf!"),
    ];
    let entries = cases
        .iter()
        .map(|(p, mode, uid, gid, c)| {
            Entry::new(*p, bytes(c))
                .with_mode(*mode)
                .with_owner(*uid, *gid)
        })
        .collect();
    tree.swap_payload("vol", "..ts1", entries).expect("swap");
    let (_dir, handle) = mount(&tree, &MountOptions::default());
    let vol = handle.mountpoint().join("vol");

    let root = fs::metadata(handle.mountpoint()).expect("root");
    assert_eq!(
        (root.ino(), root.mode() & 0o7777, root.uid()),
        (1, 0o755, 0)
    );
    let v = fs::metadata(&vol).expect("vol");
    assert!(v.is_dir());
    assert_eq!((v.mode() & 0o7777, v.uid(), v.gid()), (0o750, 0, 1234));
    for d in ["..ts1", "..ts1/nested", "..ts1/nested/dir"] {
        let m = fs::symlink_metadata(vol.join(d)).expect("dir");
        assert!(m.is_dir(), "{d}");
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (0o755, 0, 1234),
            "{d}"
        );
    }
    for (path, mode, uid, gid, content) in cases {
        let direct = fs::symlink_metadata(vol.join("..ts1").join(path)).expect("file");
        assert!(direct.is_file(), "{path}");
        assert_eq!(direct.mode() & 0o7777, mode, "{path}");
        assert_eq!((direct.uid(), direct.gid()), (uid, gid), "{path}");
        assert_eq!(direct.len(), content.len() as u64, "{path}");
        assert_eq!(direct.nlink(), 1, "{path}");
        // Through the visible link and ..data: the same inode.
        let via_link = fs::metadata(vol.join(path)).expect("via link");
        assert_eq!(via_link.ino(), direct.ino(), "{path}");
        assert_eq!(fs::read(vol.join(path)).expect("read"), content, "{path}");
    }
    let link = fs::symlink_metadata(vol.join("plain")).expect("link");
    assert!(link.file_type().is_symlink());
    assert_eq!((link.uid(), link.gid()), (0, 1234));
}

#[test]
fn modes_are_enforced_for_other_users() {
    if !privileged("modes_are_enforced_for_other_users") {
        return;
    }
    let tree: FsTree<Vec<u8>> = FsTree::new();
    tree.add_volume("vol", DirAttrs::default()).expect("volume");
    tree.swap_payload(
        "vol",
        "..ts1",
        vec![
            Entry::new("world", bytes(b"world-ok")).with_mode(0o644),
            Entry::new("rootonly", bytes(b"secret")).with_mode(0o600),
            Entry::new("group", bytes(b"group-ok"))
                .with_mode(0o640)
                .with_owner(0, 65534),
        ],
    )
    .expect("swap");
    let cat_as_nobody = |path: PathBuf| {
        Command::new("cat")
            .arg(path)
            .uid(65534)
            .gid(65534)
            .output()
            .expect("run cat")
    };

    let (_dir, mut handle) = mount(&tree, &MountOptions::default());
    let vol = handle.mountpoint().join("vol");
    let out = cat_as_nobody(vol.join("world"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"world-ok");
    let out = cat_as_nobody(vol.join("group"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"group-ok");
    let out = cat_as_nobody(vol.join("rootonly"));
    assert!(!out.status.success(), "0600 root file readable by nobody");
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    handle.unmount().expect("unmount");

    // Without allow_other nobody gets in at all, even for 0644.
    let options = MountOptions {
        allow_other: false,
        ..MountOptions::default()
    };
    let (_dir, handle) = mount(&tree, &options);
    let out = cat_as_nobody(handle.mountpoint().join("vol/world"));
    assert!(
        !out.status.success(),
        "allow_other off must shut other users out"
    );
    assert_eq!(
        fs::read(handle.mountpoint().join("vol/world")).expect("root reads"),
        b"world-ok"
    );
}

#[test]
fn reads_of_every_size_and_offset() {
    if !privileged("reads_of_every_size_and_offset") {
        return;
    }
    let sizes = [
        0usize,
        1,
        100,
        4095,
        4096,
        4097,
        128 * 1024,
        128 * 1024 + 1,
        (1 << 20) + 7,
    ];
    let tree: FsTree<Vec<u8>> = FsTree::new();
    tree.add_volume("vol", DirAttrs::default()).expect("volume");
    let contents: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, len)| pattern(*len, i as u8))
        .collect();
    let entries = contents
        .iter()
        .zip(sizes)
        .map(|(c, len)| Entry::new(format!("f{len}"), Arc::new(c.clone())))
        .collect();
    tree.swap_payload("vol", "..ts1", entries).expect("swap");
    let (_dir, handle) = mount(&tree, &MountOptions::default());
    let vol = handle.mountpoint().join("vol");

    for (content, len) in contents.iter().zip(sizes) {
        let path = vol.join(format!("f{len}"));
        assert_eq!(fs::metadata(&path).expect("stat").len(), len as u64);
        assert_eq!(&fs::read(&path).expect("read whole"), content, "f{len}");
        let file = File::open(&path).expect("open");
        let check = |offset: usize, want: usize| {
            let mut buf = vec![0xAAu8; want];
            let n = file.read_at(&mut buf, offset as u64).expect("pread");
            let start = offset.min(len);
            let end = (offset.saturating_add(want)).min(len);
            assert_eq!(n, end - start, "f{len}: pread({offset}, {want}) length");
            assert_eq!(
                &buf[..n],
                &content[start..end],
                "f{len}: pread({offset}, {want}) bytes"
            );
        };
        if len <= 100 {
            // Every offset and every size, past the end included.
            for offset in 0..=len + 3 {
                for want in 0..=len + 3 {
                    check(offset, want);
                }
            }
        } else {
            let points = [
                0,
                1,
                4095,
                4096,
                4097,
                65_535,
                128 * 1024 - 1,
                128 * 1024,
                128 * 1024 + 1,
                len / 2,
                len - 1,
                len,
                len + 1,
                len + 1_000_000,
            ];
            let wants = [
                0,
                1,
                7,
                4096,
                4097,
                128 * 1024,
                128 * 1024 + 1,
                (1 << 20) + 13,
            ];
            for offset in points {
                for want in wants {
                    check(offset, want);
                }
            }
        }
        // Sequential reads in odd-sized chunks reassemble the file.
        let mut file = File::open(&path).expect("open");
        let mut got = Vec::new();
        let mut chunk = vec![0u8; 3001];
        loop {
            let n = file.read(&mut chunk).expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(&got, content, "f{len} chunked");
    }
}

#[test]
fn readdir_lists_dot_dotdot_and_entries() {
    if !privileged("readdir_lists_dot_dotdot_and_entries") {
        return;
    }
    let tree: FsTree<Vec<u8>> = FsTree::new();
    tree.add_volume("vol", DirAttrs::default()).expect("volume");
    tree.add_volume("other", DirAttrs::default())
        .expect("volume");
    tree.swap_payload(
        "vol",
        "..ts1",
        vec![
            Entry::new("b", bytes(b"b")),
            Entry::new("a", bytes(b"a")),
            Entry::new("d/x", bytes(b"x")),
        ],
    )
    .expect("swap");
    let (_dir, handle) = mount(&tree, &MountOptions::default());
    let mp = handle.mountpoint();

    let list = |p: &Path| -> Vec<(String, nix::dir::Type)> {
        let mut dir = nix::dir::Dir::open(
            p,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .expect("opendir");
        dir.iter()
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().to_str().expect("utf-8").to_owned(),
                    e.file_type().expect("d_type"),
                )
            })
            .collect()
    };
    use nix::dir::Type::{Directory as D, File as F, Symlink as L};
    let s = |v: &[(&str, nix::dir::Type)]| -> Vec<(String, nix::dir::Type)> {
        v.iter().map(|(n, t)| ((*n).to_owned(), *t)).collect()
    };
    assert_eq!(
        list(mp),
        s(&[(".", D), ("..", D), ("other", D), ("vol", D)])
    );
    assert_eq!(
        list(&mp.join("vol")),
        s(&[
            (".", D),
            ("..", D),
            ("..data", L),
            ("..ts1", D),
            ("a", L),
            ("b", L),
            ("d", L)
        ])
    );
    assert_eq!(
        list(&mp.join("vol/..data/")),
        s(&[(".", D), ("..", D), ("a", F), ("b", F), ("d", D)])
    );
    assert_eq!(
        list(&mp.join("vol/d/")),
        s(&[(".", D), ("..", D), ("x", F)])
    );
    assert_eq!(list(&mp.join("other")), s(&[(".", D), ("..", D)]));

    // A swap shows at once (zero TTL): new names in, old names out.
    tree.swap_payload("vol", "..ts2", vec![Entry::new("c", bytes(b"c"))])
        .expect("swap 2");
    let names: Vec<String> = list(&mp.join("vol")).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, [".", "..", "..data", "..ts1", "..ts2", "c"]);
    assert_eq!(
        fs::metadata(mp.join("vol/a")).map_err(|e| e.kind()).err(),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(fs::read(mp.join("vol/c")).expect("new name"), b"c");
}

#[test]
fn readlink_shows_atomic_writer_layout() {
    if !privileged("readlink_shows_atomic_writer_layout") {
        return;
    }
    let tree: FsTree<Vec<u8>> = FsTree::new();
    tree.add_volume("vol", DirAttrs::default()).expect("volume");
    tree.swap_payload(
        "vol",
        "..2026_11_29_15_04_05.123456789",
        vec![
            Entry::new("tls.crt", bytes(b"one")),
            Entry::new("hist/0", bytes(b"h0")),
        ],
    )
    .expect("swap");
    let (_dir, handle) = mount(&tree, &MountOptions::default());
    let vol = handle.mountpoint().join("vol");
    assert_eq!(
        fs::read_link(vol.join("..data")).expect("readlink"),
        Path::new("..2026_11_29_15_04_05.123456789")
    );
    assert_eq!(
        fs::read_link(vol.join("tls.crt")).expect("readlink"),
        Path::new("..data/tls.crt")
    );
    assert_eq!(
        fs::read_link(vol.join("hist")).expect("readlink"),
        Path::new("..data/hist")
    );
    assert_eq!(fs::read(vol.join("hist/0")).expect("read nested"), b"h0");
    let err = fs::read_link(vol.join("..data/tls.crt")).expect_err("a file is no link");
    assert_eq!(errno(&err), libc::EINVAL);

    tree.swap_payload(
        "vol",
        "..2026_11_29_15_06_05.000000001",
        vec![Entry::new("tls.crt", bytes(b"two"))],
    )
    .expect("swap 2");
    assert_eq!(
        fs::read_link(vol.join("..data")).expect("readlink"),
        Path::new("..2026_11_29_15_06_05.000000001")
    );
    assert_eq!(fs::read(vol.join("tls.crt")).expect("read"), b"two");
}

#[test]
fn root_and_volume_inodes_stable_across_swaps() {
    if !privileged("root_and_volume_inodes_stable_across_swaps") {
        return;
    }
    let tree: FsTree<Vec<u8>> = FsTree::new();
    tree.add_volume("vol", DirAttrs::default()).expect("volume");
    tree.swap_payload("vol", "..1", vec![Entry::new("a", bytes(b"1"))])
        .expect("swap");
    let (_dir, handle) = mount(&tree, &MountOptions::default());
    let mp = handle.mountpoint();
    let root = fs::metadata(mp).expect("root").ino();
    let vol = fs::metadata(mp.join("vol")).expect("vol").ino();
    let link = fs::symlink_metadata(mp.join("vol/a")).expect("a").ino();
    let data = fs::symlink_metadata(mp.join("vol/..data"))
        .expect("..data")
        .ino();
    let file = fs::metadata(mp.join("vol/a")).expect("a").ino();
    for i in 2..6 {
        tree.swap_payload("vol", &format!("..{i}"), vec![Entry::new("a", bytes(b"n"))])
            .expect("swap");
        assert_eq!(fs::metadata(mp).expect("root").ino(), root);
        assert_eq!(root, 1);
        assert_eq!(fs::metadata(mp.join("vol")).expect("vol").ino(), vol);
        assert_eq!(
            fs::symlink_metadata(mp.join("vol/a")).expect("a").ino(),
            link
        );
        assert_ne!(
            fs::symlink_metadata(mp.join("vol/..data"))
                .expect("..data")
                .ino(),
            data
        );
        assert_ne!(fs::metadata(mp.join("vol/a")).expect("a").ino(), file);
    }
}

#[test]
fn concurrent_reader_during_swaps_sees_whole_old_or_new_never_enoent() {
    if !privileged("concurrent_reader_during_swaps_sees_whole_old_or_new_never_enoent") {
        return;
    }
    const SWAPS: u32 = 150;
    // Large enough that one read(2) is several FUSE READs; the length and
    // every byte identify the version.
    let version = |v: u32| -> Vec<u8> { vec![(v % 251) as u8 + 1; 140 * 1024 + v as usize] };
    let entries = |v: u32| {
        vec![
            Entry::new("secret", Arc::new(version(v))),
            Entry::new("dir/nested", Arc::new(version(v))),
        ]
    };
    let tree: FsTree<Vec<u8>> = FsTree::new();
    tree.add_volume("vol", DirAttrs::default()).expect("volume");
    tree.swap_payload("vol", "..0", entries(0)).expect("swap");
    let (_dir, handle) = mount(&tree, &MountOptions::default());
    let vol = handle.mountpoint().join("vol");

    let stop = Arc::new(AtomicBool::new(false));
    let names = ["secret", "dir/nested", "secret"];
    let counters: Vec<Arc<AtomicU64>> = names.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    let readers: Vec<_> = names
        .into_iter()
        .zip(&counters)
        .map(|(name, reads)| {
            let path = vol.join(name);
            let stop = Arc::clone(&stop);
            let reads = Arc::clone(reads);
            thread::spawn(move || -> Result<Vec<u32>, String> {
                let mut seen = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let data = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    let v = data.len().checked_sub(140 * 1024).ok_or("too short")? as u32;
                    if data.iter().any(|b| *b != (v % 251) as u8 + 1) {
                        return Err(format!("torn read: length says version {v}, bytes differ"));
                    }
                    if seen.last() != Some(&v) {
                        seen.push(v);
                    }
                    reads.fetch_add(1, Ordering::SeqCst);
                }
                Ok(seen)
            })
        })
        .collect();

    // Readers loop without pause while swaps happen; after each swap every
    // reader must finish at least one more read (two after the last, so
    // its final read began after the last swap), which guarantees the
    // swaps and reads interleave however slow the machine is.
    for v in 1..=SWAPS {
        let before: Vec<u64> = counters.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        tree.swap_payload("vol", &format!("..{v}"), entries(v))
            .expect("swap");
        let more = if v == SWAPS { 2 } else { 1 };
        let progressed = wait_until(Duration::from_secs(10), || {
            counters
                .iter()
                .zip(&before)
                .all(|(c, b)| c.load(Ordering::SeqCst) >= b + more)
        });
        if !progressed {
            stop.store(true, Ordering::SeqCst);
            for r in readers {
                // A reader that stopped on an error explains why.
                r.join()
                    .expect("reader thread")
                    .expect("reader saw only whole versions");
            }
            panic!("readers made no progress after swap {v}");
        }
    }
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        let seen = r
            .join()
            .expect("reader thread")
            .expect("reader saw only whole versions");
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "versions go forward: {seen:?}"
        );
        assert!(seen.len() >= 2, "reader saw several versions: {seen:?}");
        assert_eq!(
            seen.last(),
            Some(&SWAPS),
            "reader ends on the newest version"
        );
    }
    for v in 0..SWAPS {
        tree.remove_payload("vol", &format!("..{v}"))
            .expect("remove old payload");
    }
    assert_eq!(
        tree.payload_dirs("vol").expect("vol"),
        vec![format!("..{SWAPS}")]
    );
}

#[test]
fn file_opened_before_swap_keeps_old_bytes() {
    if !privileged("file_opened_before_swap_keeps_old_bytes") {
        return;
    }
    let old = pattern(300_000, 1);
    let new = pattern(1000, 2);
    let tree: FsTree<Vec<u8>> = FsTree::new();
    tree.add_volume("vol", DirAttrs::default()).expect("volume");
    tree.swap_payload("vol", "..1", vec![Entry::new("key", Arc::new(old.clone()))])
        .expect("swap");
    let (_dir, handle) = mount(&tree, &MountOptions::default());
    let path = handle.mountpoint().join("vol/key");

    let mut file = File::open(&path).expect("open before swap");
    let mut head = vec![0u8; 1000];
    file.read_exact(&mut head).expect("read head");
    assert_eq!(head, old[..1000]);

    tree.swap_payload("vol", "..2", vec![Entry::new("key", Arc::new(new.clone()))])
        .expect("swap");
    assert_eq!(
        fs::read(&path).expect("fresh open"),
        new,
        "new opens see new bytes"
    );
    assert_eq!(file.metadata().expect("fstat").len(), old.len() as u64);
    let mut rest = Vec::new();
    file.read_to_end(&mut rest).expect("read rest");
    assert_eq!(rest, old[1000..], "old handle keeps old bytes");

    // Even once the old payload dir is gone.
    tree.remove_payload("vol", "..1").expect("remove old");
    let mut again = vec![0u8; old.len()];
    let n = file.read_at(&mut again, 0).expect("pread after removal");
    assert_eq!(n, old.len());
    assert_eq!(again, old);
    assert_eq!(tree.open_handles(), 1);
    drop(file);
    assert!(
        wait_until(Duration::from_secs(5), || tree.open_handles() == 0),
        "RELEASE arrives"
    );
}

#[test]
fn content_dropped_after_remove_payload_and_handle_close() {
    if !privileged("content_dropped_after_remove_payload_and_handle_close") {
        return;
    }
    let (opened, opened_dropped) = flagged(b"opened-secret");
    let (statted, statted_dropped) = flagged(b"statted-secret");
    let (newer, newer_dropped) = flagged(b"newer");
    let tree: FsTree<Flagged> = FsTree::new();
    tree.add_volume("vol", DirAttrs::default()).expect("volume");
    tree.swap_payload(
        "vol",
        "..1",
        vec![
            Entry::new("opened", Arc::clone(&opened)),
            Entry::new("statted", statted),
        ],
    )
    .expect("swap");
    let (_dir, mut handle) = mount(&tree, &MountOptions::default());
    let vol = handle.mountpoint().join("vol");

    let file = File::open(vol.join("opened")).expect("open");
    // An O_PATH descriptor pins the kernel's inode (and so its lookup
    // count) without a FUSE OPEN, i.e. without a handle.
    let pinned = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(vol.join("statted"))
        .expect("O_PATH open");
    assert_eq!(tree.open_handles(), 1, "O_PATH makes no handle");
    assert_eq!(tree.open_handles_of(&opened), 1);
    drop(opened);

    tree.swap_payload("vol", "..2", vec![Entry::new("opened", newer)])
        .expect("swap");
    tree.remove_payload("vol", "..1").expect("remove");
    assert!(
        statted_dropped.load(Ordering::SeqCst),
        "no handle: dropped at removal although the kernel still holds the inode"
    );
    assert!(
        !opened_dropped.load(Ordering::SeqCst),
        "open handle keeps it"
    );
    let meta = pinned
        .metadata()
        .expect("fstat of the pinned, unlinked inode");
    assert_eq!(
        (meta.nlink(), meta.len()),
        (0, b"statted-secret".len() as u64)
    );
    drop(pinned);
    let mut buf = [0u8; 64];
    let n = file.read_at(&mut buf, 0).expect("read");
    assert_eq!(&buf[..n], b"opened-secret");
    drop(file);
    assert!(
        wait_until(Duration::from_secs(5), || opened_dropped
            .load(Ordering::SeqCst)),
        "content dropped after the handle closed"
    );
    assert_eq!(tree.open_handles(), 0);

    handle.unmount().expect("unmount");
    assert!(
        !newer_dropped.load(Ordering::SeqCst),
        "linked content stays with the tree"
    );
    tree.remove_volume("vol").expect("remove volume");
    assert!(
        newer_dropped.load(Ordering::SeqCst),
        "removed volume drops its content"
    );
}

#[test]
fn writes_fail_with_erofs() {
    if !privileged("writes_fail_with_erofs") {
        return;
    }
    let tree: FsTree<Vec<u8>> = FsTree::new();
    tree.add_volume("vol", DirAttrs::default()).expect("volume");
    tree.swap_payload("vol", "..1", vec![Entry::new("f", bytes(b"keep"))])
        .expect("swap");
    // Both with MS_RDONLY (the VFS refuses) and without it (the
    // filesystem itself refuses).
    for read_only in [true, false] {
        let options = MountOptions {
            read_only,
            ..MountOptions::default()
        };
        let (_dir, mut handle) = mount(&tree, &options);
        let vol = handle.mountpoint().join("vol");
        let file = vol.join("..1/f");
        let ctx = format!("read_only={read_only}");
        let checks: Vec<(&str, std::io::Result<()>)> = vec![
            (
                "open O_WRONLY",
                OpenOptions::new().write(true).open(&file).map(drop),
            ),
            (
                "open O_RDWR",
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&file)
                    .map(drop),
            ),
            (
                "open O_APPEND",
                OpenOptions::new().append(true).open(&file).map(drop),
            ),
            (
                "open O_TRUNC",
                OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&file)
                    .map(drop),
            ),
            (
                "create",
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(vol.join("..1/new"))
                    .map(drop),
            ),
            (
                "create with mode",
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600)
                    .open(vol.join("new2"))
                    .map(drop),
            ),
            ("mkdir", fs::create_dir(vol.join("d"))),
            ("unlink", fs::remove_file(&file)),
            ("unlink link", fs::remove_file(vol.join("f"))),
            ("rmdir", fs::remove_dir(vol.join("..1"))),
            ("rename", fs::rename(&file, vol.join("..1/g"))),
            ("symlink", std::os::unix::fs::symlink("x", vol.join("l"))),
            ("link", fs::hard_link(&file, vol.join("h"))),
            (
                "chmod",
                fs::set_permissions(&file, fs::Permissions::from_mode(0o777)),
            ),
            ("chown", std::os::unix::fs::chown(&file, Some(1), Some(1))),
            (
                "truncate",
                nix::unistd::truncate(&file, 0).map_err(std::io::Error::from),
            ),
        ];
        for (what, result) in checks {
            let err = result.expect_err(&format!("{ctx}: {what} must fail"));
            assert_eq!(errno(&err), libc::EROFS, "{ctx}: {what}: {err}");
        }
        assert_eq!(fs::read(&file).expect("unchanged"), b"keep", "{ctx}");
        let v = fs::metadata(&file).expect("stat");
        assert_eq!((v.mode() & 0o7777, v.uid()), (0o644, 0), "{ctx}");
        handle.unmount().expect("unmount");
    }
}

#[test]
fn unmount_leaves_nothing_mounted() {
    if !privileged("unmount_leaves_nothing_mounted") {
        return;
    }
    let tree: FsTree<Vec<u8>> = FsTree::new();
    tree.add_volume("vol", DirAttrs::default()).expect("volume");
    let (dir, mut handle) = mount(&tree, &MountOptions::default());
    let mp = handle.mountpoint().to_path_buf();
    assert!(mountinfo(&mp).is_some());
    assert!(matches!(
        tree.mount(dir.path(), &MountOptions::default()),
        Err(Error::AlreadyMounted)
    ));
    handle.unmount().expect("unmount");
    assert!(mountinfo(&mp).is_none(), "gone after unmount()");
    assert!(!handle.is_mounted());
    handle.unmount().expect("second unmount is a no-op");
    assert!(fs::read_dir(&mp).expect("plain dir again").next().is_none());

    // The session ended, so the same tree mounts again; drop unmounts.
    let handle = tree.mount(&mp, &MountOptions::default()).expect("remount");
    assert!(fs::metadata(mp.join("vol")).expect("vol").is_dir());
    drop(handle);
    assert!(mountinfo(&mp).is_none(), "gone after drop");
    drop(dir);
}

#[test]
fn busy_unmount_is_refused_then_detach_removes_mount() {
    if !privileged("busy_unmount_is_refused_then_detach_removes_mount") {
        return;
    }
    let tree: FsTree<Vec<u8>> = FsTree::new();
    tree.add_volume("vol", DirAttrs::default()).expect("volume");
    tree.swap_payload("vol", "..1", vec![Entry::new("f", bytes(b"held"))])
        .expect("swap");
    let (_dir, mut handle) = mount(&tree, &MountOptions::default());
    let mp = handle.mountpoint().to_path_buf();
    let file = File::open(mp.join("vol/f")).expect("open");

    let err = handle.unmount().expect_err("busy");
    assert!(matches!(err, Error::Busy { .. }), "{err}");
    assert!(handle.is_mounted());
    assert!(
        mountinfo(&mp).is_some(),
        "still mounted after a refused unmount"
    );
    assert_eq!(fs::read(mp.join("vol/f")).expect("still served"), b"held");

    handle.detach().expect("detach");
    assert!(mountinfo(&mp).is_none(), "gone from the mount table");
    let mut buf = [0u8; 16];
    let n = file.read_at(&mut buf, 0).expect("open file still served");
    assert_eq!(&buf[..n], b"held");
    drop(file);
    // With the last file closed the session ends and the tree is free.
    assert!(
        wait_until(Duration::from_secs(5), || {
            tree.mount(&mp, &MountOptions::default()).map(drop).is_ok()
        }),
        "session ended after the last close"
    );
    assert!(mountinfo(&mp).is_none());
}

#[test]
fn removed_volume_disappears_from_the_mount() {
    if !privileged("removed_volume_disappears_from_the_mount") {
        return;
    }
    let tree: FsTree<Vec<u8>> = FsTree::new();
    tree.add_volume("vol", DirAttrs::default()).expect("volume");
    tree.swap_payload("vol", "..1", vec![Entry::new("f", bytes(b"x"))])
        .expect("swap");
    let (_dir, handle) = mount(&tree, &MountOptions::default());
    let mp = handle.mountpoint();
    assert_eq!(fs::read(mp.join("vol/f")).expect("read"), b"x");
    tree.remove_volume("vol").expect("remove");
    let err = fs::metadata(mp.join("vol")).expect_err("gone");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    tree.add_volume("vol", DirAttrs::default()).expect("re-add");
    assert!(
        fs::read_dir(mp.join("vol"))
            .expect("empty again")
            .next()
            .is_none()
    );
}

#[test]
fn mmap_shared_is_refused_and_private_reads_content() {
    if !privileged("mmap_shared_is_refused_and_private_reads_content") {
        return;
    }
    // mmap needs `unsafe` in Rust; an external process keeps this crate
    // free of it.
    let Ok(probe) = Command::new("python3")
        .arg("-c")
        .arg("import mmap")
        .output()
    else {
        eprintln!("skipping mmap_shared_is_refused_and_private_reads_content: no python3");
        return;
    };
    if !probe.status.success() {
        eprintln!("skipping mmap_shared_is_refused_and_private_reads_content: python3 has no mmap");
        return;
    }
    let content = pattern(10_000, 9);
    let tree: FsTree<Vec<u8>> = FsTree::new();
    tree.add_volume("vol", DirAttrs::default()).expect("volume");
    tree.swap_payload(
        "vol",
        "..1",
        vec![Entry::new("f", Arc::new(content.clone()))],
    )
    .expect("swap");
    let (_dir, handle) = mount(&tree, &MountOptions::default());
    let script = r#"
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    mmap.mmap(fd, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    print("shared ok")
except OSError as e:
    print("shared errno", e.errno)
m = mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
print(m[:].hex())
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(handle.mountpoint().join("vol/f"))
        .output()
        .expect("python3");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("shared errno {}", libc::ENODEV).as_str())
    );
    let hex: String = content.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        lines.next(),
        Some(hex.as_str()),
        "MAP_PRIVATE maps the content"
    );
}

#[test]
fn bind_of_a_volume_outlives_the_namespace_mount_until_unmounted() {
    if !privileged("bind_of_a_volume_outlives_the_namespace_mount_until_unmounted") {
        return;
    }
    use nix::mount::{MsFlags, mount as sys_mount, umount};
    let tree: FsTree<Vec<u8>> = FsTree::new();
    tree.add_volume("vol", DirAttrs::default()).expect("volume");
    tree.swap_payload("vol", "..1", vec![Entry::new("f", bytes(b"one"))])
        .expect("swap");
    let options = MountOptions {
        unmount_wait: Duration::from_millis(200),
        ..MountOptions::default()
    };
    let (_dir, mut handle) = mount(&tree, &options);
    let mp = handle.mountpoint().to_path_buf();
    let target = tempfile::tempdir().expect("target");
    let target = target.path().canonicalize().expect("canonical target");
    sys_mount(
        Some(&mp.join("vol")),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .expect("bind");
    let bind_info = mountinfo(&target).expect("bind listed");
    assert_eq!(bind_info.0, "fuse.vaultlet");
    assert_eq!(fs::read(target.join("f")).expect("read via bind"), b"one");
    tree.swap_payload("vol", "..2", vec![Entry::new("f", bytes(b"two"))])
        .expect("swap");
    assert_eq!(
        fs::read(target.join("f")).expect("swap seen via bind"),
        b"two"
    );

    // The namespace mount goes; the bind keeps the connection, so the
    // session keeps serving it (unmount() returns after unmount_wait).
    let started = Instant::now();
    handle.unmount().expect("unmount namespace mount");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(mountinfo(&mp).is_none());
    assert_eq!(
        fs::read(target.join("f")).expect("bind still served"),
        b"two"
    );
    assert!(
        matches!(tree.mount(&mp, &options), Err(Error::AlreadyMounted)),
        "the session is still running"
    );

    umount(&target).expect("unmount bind");
    assert!(
        wait_until(Duration::from_secs(5), || {
            tree.mount(&mp, &options).map(drop).is_ok()
        }),
        "session ends once the last mount of it is gone"
    );
    assert!(mountinfo(&mp).is_none() && mountinfo(&target).is_none());
}

#[test]
fn unlinked_inodes_leave_the_table_once_the_kernel_forgets_them() {
    if !privileged("unlinked_inodes_leave_the_table_once_the_kernel_forgets_them") {
        return;
    }
    let tree: FsTree<Vec<u8>> = FsTree::new();
    tree.add_volume("vol", DirAttrs::default()).expect("volume");
    tree.swap_payload(
        "vol",
        "..1",
        vec![Entry::new("a", bytes(b"a")), Entry::new("d/b", bytes(b"b"))],
    )
    .expect("swap");
    let (_dir, handle) = mount(&tree, &MountOptions::default());
    let mp = handle.mountpoint();
    // STATFS reports the inode table's size as f_files.
    let files = || nix::sys::statfs::statfs(mp).expect("statfs").files();
    // root, vol, ..data, ..1, ..1/a, ..1/d, ..1/d/b, links a and d.
    assert_eq!(files(), 9);
    assert_eq!(fs::read(mp.join("vol/a")).expect("read"), b"a");
    assert_eq!(fs::read(mp.join("vol/d/b")).expect("read"), b"b");
    let pinned = File::open(mp.join("vol/..1/d")).expect("pin a dir");

    tree.swap_payload("vol", "..2", vec![]).expect("swap");
    tree.remove_payload("vol", "..1").expect("remove");
    // root, vol, ..data, ..2 stay; the kernel still holds ..1 and ..1/d
    // through the open directory, so those two wait for FORGET.
    assert!(files() >= 4);
    drop(pinned);
    assert!(
        wait_until(Duration::from_secs(5), || files() == 4),
        "unlinked inodes forgotten; table has {}",
        files()
    );
}
