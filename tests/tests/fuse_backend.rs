//! The FUSE backend (`vaultlet.dev/backend: fuse`): namespace isolation,
//! reads of every size and offset, modes and ownership, `stat -f`, C33 and
//! C38, the namespace mount's lifetime, and a reader during a payload swap.

use std::collections::HashMap;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tonic::Code;
use vaultlet::demo::kubelet::Pod;
use vaultlet_tests::{
    Env, assert_nothing_at, attrs, is_mounted, mounts_at, objects, privileged_or_skip, tree,
};

const VAULT: &str = "kv-fuse";
const CLIENT_A: &str = "aaaaaaaa-1111-2222-3333-444444444444";
const CLIENT_B: &str = "bbbbbbbb-1111-2222-3333-444444444444";

fn fuse_attrs(client: &str, items: &[&str]) -> HashMap<String, String> {
    let mut a = attrs(VAULT, Some(client), &objects(items));
    a.insert("vaultlet.dev/backend".into(), "fuse".into());
    a
}

async fn publish(env: &mut Env, pod: &Pod, volume: &str, a: &HashMap<String, String>) {
    env.kubelet
        .publish(pod, volume, a, &HashMap::new())
        .await
        .unwrap_or_else(|e| panic!("publish {volume}: {e:?}"));
}

fn is_fuse(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::FUSE_SUPER_MAGIC)
        .unwrap_or(false)
}

/// A printable value of `len` bytes whose every position is distinguishable
/// modulo 89.
fn pattern(len: usize, salt: u8) -> String {
    (0..len)
        .map(|i| char::from(b'!' + ((i + usize::from(salt)) % 89) as u8))
        .collect()
}

/// Reads `len` bytes at `offset`, looping over short reads until EOF.
fn pread_all(file: &std::fs::File, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("pread at {offset}+{got} of {len}: {e}"),
        }
    }
    buf.truncate(got);
    buf
}

fn expected(value: &[u8], offset: usize, len: usize) -> &[u8] {
    let start = offset.min(value.len());
    let end = (offset + len).min(value.len());
    &value[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuse_namespaces_are_isolated_and_a_denied_identity_is_refused_while_another_holds_the_object()
 {
    if !privileged_or_skip("fuse_namespaces_are_isolated") {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT_A]);
    env.secret(VAULT, "s1", "fuse-isolated-value-0123456789");
    let pod_a = env.wi_pod(CLIENT_A, "team-a", "uid-iso-a");
    let pod_b = env.wi_pod(CLIENT_B, "team-b", "uid-iso-b");
    let a = fuse_attrs(CLIENT_A, &["objectName: s1\nobjectType: secret"]);
    publish(&mut env, &pod_a, "secrets", &a).await;
    let target_a = env.kubelet.target_path(&pod_a.uid, "secrets");
    assert_eq!(
        std::fs::read(target_a.join("s1")).expect("read"),
        b"fuse-isolated-value-0123456789"
    );

    // B asks for the same vault and object while A holds it in the cache.
    let b = fuse_attrs(CLIENT_B, &["objectName: s1\nobjectType: secret"]);
    let err = env
        .kubelet
        .publish(&pod_b, "secrets", &b, &HashMap::new())
        .await
        .expect_err("B's identity is denied");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains(VAULT), "{}", err.message());
    let target_b = env.kubelet.target_path(&pod_b.uid, "secrets");
    assert_nothing_at(&target_b);
    let through_b = std::fs::read(target_b.join("s1")).expect_err("A's file through B's target");
    assert_eq!(through_b.kind(), std::io::ErrorKind::NotFound);
    assert!(
        mounts_at(&env.state_dir.join("fuse/team-b")).is_empty(),
        "a denied publish must not mount B's namespace"
    );
    // B's namespace mount does not show A's volume either.
    assert!(tree(&env.state_dir.join("fuse/team-b")).is_empty());
    assert_eq!(mounts_at(&env.state_dir.join("fuse/team-a")).len(), 1);

    // A's volume is untouched by B's failure.
    assert_eq!(
        std::fs::read(target_a.join("s1")).expect("read"),
        b"fuse-isolated-value-0123456789"
    );
    env.kubelet
        .unpublish(&pod_a.uid, "secrets")
        .await
        .expect("unpublish");
    env.kubelet
        .unpublish(&pod_b.uid, "secrets")
        .await
        .expect("unpublish of B's never-published volume");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuse_reads_of_every_size_and_offset_return_the_exact_bytes() {
    if !privileged_or_skip("fuse_reads_of_every_size_and_offset_return_the_exact_bytes") {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT_A]);
    let sizes = [1usize, 67, 4095, 4096, 4097, 8192, 12_289];
    let mut items = Vec::new();
    let mut values = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let value = pattern(*size, i as u8);
        env.secret(VAULT, &format!("f{size}"), &value);
        values.push(value);
        items.push(format!("objectName: f{size}\nobjectType: secret"));
    }
    let pod = env.wi_pod(CLIENT_A, "team-a", "uid-reads");
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    publish(&mut env, &pod, "secrets", &fuse_attrs(CLIENT_A, &refs)).await;
    let target = env.kubelet.target_path(&pod.uid, "secrets");

    let mut reads = 0usize;
    for (size, value) in sizes.iter().zip(&values) {
        let path = target.join(format!("f{size}"));
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), *size as u64);
        assert_eq!(std::fs::read(&path).expect("read"), value.as_bytes());
        let file = std::fs::File::open(&path).expect("open");
        let v = value.as_bytes();
        if *size <= 67 {
            // Every offset and every length, including past EOF.
            for offset in 0..=size + 2 {
                for len in 0..=size + 2 {
                    assert_eq!(
                        pread_all(&file, offset as u64, len),
                        expected(v, offset, len),
                        "f{size} at {offset} len {len}"
                    );
                    reads += 1;
                }
            }
        } else {
            let offsets = [
                0,
                1,
                17,
                4095,
                4096,
                4097,
                8191,
                8192,
                8193,
                size - 1,
                *size,
                size + 1,
                size + 4096,
                1 << 20,
            ];
            let lens = [0, 1, 2, 511, 4095, 4096, 4097, 8192, 65_536, 200_000];
            for offset in offsets {
                for len in lens {
                    assert_eq!(
                        pread_all(&file, offset as u64, len),
                        expected(v, offset, len),
                        "f{size} at {offset} len {len}"
                    );
                    reads += 1;
                }
            }
            // A single pread of the whole file from 0 is not short.
            let mut buf = vec![0u8; size + 10];
            let n = file.read_at(&mut buf, 0).expect("pread");
            assert_eq!(n, *size, "one pread of f{size}");
        }
    }
    println!("fuse reads checked: {reads}");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuse_modes_and_ownership_are_as_written_and_stat_f_says_fuse() {
    if !privileged_or_skip("fuse_modes_and_ownership_are_as_written_and_stat_f_says_fuse") {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT_A]);
    env.secret(VAULT, "s1", "fuse-mode-value-0123456789");
    env.secret(VAULT, "s2", "fuse-mode-value-abcdefghij");
    let pod = env.wi_pod(CLIENT_A, "team-a", "uid-modes");
    let a = fuse_attrs(
        CLIENT_A,
        &[
            "objectName: s1\nobjectType: secret",
            "objectName: s2\nobjectType: secret\nfilePermission: \"0400\"",
            "objectName: s1\nobjectType: secret\nobjectAlias: db/conf\nfilePermission: \"0440\"",
        ],
    );
    publish(&mut env, &pod, "secrets", &a).await;
    let target = env.kubelet.target_path(&pod.uid, "secrets");
    for (name, want) in [("s1", 0o644), ("s2", 0o400), ("db/conf", 0o440)] {
        let meta = std::fs::metadata(target.join(name)).expect("stat");
        assert!(meta.is_file(), "{name}");
        assert_eq!(meta.permissions().mode() & 0o7777, want, "{name} mode");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{name} owner");
    }
    let db = std::fs::metadata(target.join("db")).expect("stat dir");
    assert!(db.is_dir());
    assert_eq!(db.permissions().mode() & 0o7777, 0o755, "nested dir mode");
    assert_eq!((db.uid(), db.gid()), (0, 0));
    let link = std::fs::symlink_metadata(target.join("s1")).expect("lstat");
    assert!(link.file_type().is_symlink(), "s1 is a ..data link");

    // The kernel enforces the modes (default_permissions): an unprivileged
    // reader is refused a 0400 root file. Checked in a child that drops to
    // nobody.
    let s2 = target.join("s2");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(&s2)
        .output();
    if let Ok(out) = out {
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "nobody read a 0400 root file: {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // statfs and `stat -f` say fuse.
    assert!(is_fuse(&target));
    let out = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(&target)
        .output()
        .expect("stat -f");
    let kind = String::from_utf8_lossy(&out.stdout).trim().to_string();
    println!("stat -f -c %T: {kind}");
    assert!(out.status.success());
    assert!(kind.contains("fuse"), "stat -f says {kind}");

    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c33_fuse_unpublish_twice_is_ok() {
    if !privileged_or_skip("c33_fuse_unpublish_twice_is_ok") {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT_A]);
    env.secret(VAULT, "s1", "c33-fuse-value-0123456789");
    let pod = env.wi_pod(CLIENT_A, "team-a", "uid-c33-fuse");
    let a = fuse_attrs(CLIENT_A, &["objectName: s1\nobjectType: secret"]);
    // Never published: OK.
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish of a never-published target");
    publish(&mut env, &pod, "secrets", &a).await;
    let target = env.kubelet.target_path(&pod.uid, "secrets");
    assert!(is_fuse(&target));
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("first unpublish");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("second unpublish");
    assert!(!is_mounted(&target));
    assert!(std::fs::symlink_metadata(&target).is_err());
    assert!(mounts_at(&env.state_dir.join("fuse/team-a")).is_empty());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c38_no_link_can_be_planted_in_a_fuse_volume_and_the_sentinel_survives() {
    if !privileged_or_skip("c38_no_link_can_be_planted_in_a_fuse_volume_and_the_sentinel_survives")
    {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT_A]);
    env.secret(VAULT, "s1", "c38-fuse-value-0123456789");
    let pod = env.wi_pod(CLIENT_A, "team-a", "uid-c38-fuse");
    let a = fuse_attrs(CLIENT_A, &["objectName: s1\nobjectType: secret"]);
    let outside = env.base_dir().join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("sentinel"), b"sentinel bytes").expect("write");

    publish(&mut env, &pod, "secrets", &a).await;
    let target = env.kubelet.target_path(&pod.uid, "secrets");
    let evil = std::os::unix::fs::symlink(outside.join("sentinel"), target.join("evil"))
        .expect_err("planting a link in a read-only fuse volume");
    assert_eq!(
        evil.raw_os_error(),
        Some(nix::libc::EROFS),
        "planting evil: {evil}"
    );
    let fake = std::os::unix::fs::symlink(&outside, target.join("..data-fake"))
        .expect_err("planting a fake ..data");
    assert_eq!(fake.raw_os_error(), Some(nix::libc::EROFS), "{fake}");
    assert!(std::fs::remove_file(target.join("..data")).is_err());
    // Not through the namespace mount either.
    let ns_dir = env.state_dir.join("fuse/team-a");
    let volume = std::fs::read_dir(&ns_dir)
        .expect("namespace mount")
        .flatten()
        .next()
        .expect("volume dir")
        .path();
    let direct = std::os::unix::fs::symlink(outside.join("sentinel"), volume.join("evil"));
    println!("plant through the namespace mount: {direct:?}");
    assert!(
        direct.is_err(),
        "planted a link through the namespace mount"
    );
    assert!(std::fs::symlink_metadata(target.join("evil")).is_err());

    // An update (republish) and the unpublish leave the sentinel alone.
    publish(&mut env, &pod, "secrets", &a).await;
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    assert_nothing_at(&target);
    assert_eq!(
        std::fs::read(outside.join("sentinel")).expect("sentinel"),
        b"sentinel bytes"
    );
    assert_eq!(
        tree(&outside),
        ["sentinel"].into_iter().map(String::from).collect()
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_mount_lives_until_the_last_fuse_volume_of_its_namespace_leaves() {
    if !privileged_or_skip("the_namespace_mount_lives_until_the_last_fuse_volume_leaves") {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT_A, CLIENT_B]);
    env.secret(VAULT, "s1", "ns-mount-value-0123456789");
    let a1 = env.wi_pod(CLIENT_A, "team-a", "uid-ns-a1");
    let a2 = env.refresh_token(CLIENT_A, &a1);
    let a2 = Pod {
        uid: "uid-ns-a2".into(),
        name: "pod-ns-a2".into(),
        ..a2
    };
    let b1 = env.wi_pod(CLIENT_B, "team-b", "uid-ns-b1");
    let item = ["objectName: s1\nobjectType: secret"];
    publish(&mut env, &a1, "secrets", &fuse_attrs(CLIENT_A, &item)).await;
    publish(&mut env, &a2, "secrets", &fuse_attrs(CLIENT_A, &item)).await;
    publish(&mut env, &b1, "secrets", &fuse_attrs(CLIENT_B, &item)).await;
    let ns_a = env.state_dir.join("fuse/team-a");
    let ns_b = env.state_dir.join("fuse/team-b");
    assert_eq!(mounts_at(&ns_a).len(), 1);
    assert_eq!(mounts_at(&ns_b).len(), 1);

    env.kubelet.unpublish(&a1.uid, "secrets").await.expect("a1");
    assert_eq!(mounts_at(&ns_a).len(), 1, "a2 still uses team-a");
    assert_eq!(
        std::fs::read(env.kubelet.target_path(&a2.uid, "secrets").join("s1")).expect("a2 reads"),
        b"ns-mount-value-0123456789"
    );
    env.kubelet.unpublish(&a2.uid, "secrets").await.expect("a2");
    assert!(
        mounts_at(&ns_a).is_empty(),
        "team-a's mount must go with its last volume"
    );
    assert_eq!(mounts_at(&ns_b).len(), 1, "team-b is not affected");
    env.kubelet.unpublish(&b1.uid, "secrets").await.expect("b1");
    assert!(mounts_at(&ns_b).is_empty());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_during_a_fuse_swap_sees_the_old_or_the_new_content() {
    if !privileged_or_skip("a_reader_during_a_fuse_swap_sees_the_old_or_the_new_content") {
        return;
    }
    // Rotation drives the swaps.
    let mut env = Env::start_with(|c| {
        c.rotation_poll_interval = std::time::Duration::from_millis(300);
    })
    .await;
    env.vault(VAULT, &[CLIENT_A]);
    let sz = 6000;
    let versions: Vec<String> = (0..6u8).map(|i| pattern(sz, i * 13 + 1)).collect();
    env.secret(VAULT, "s1", &versions[0]);
    let pod = env.wi_pod(CLIENT_A, "team-a", "uid-swap");
    let a = fuse_attrs(CLIENT_A, &["objectName: s1\nobjectType: secret"]);
    publish(&mut env, &pod, "secrets", &a).await;
    let target = env.kubelet.target_path(&pod.uid, "secrets");

    // The volume's directory inside the namespace mount stays put across
    // swaps; the reader opens the file there by its user-facing path.
    let ns_dir = env.state_dir.join("fuse/team-a");
    let volume = std::fs::read_dir(&ns_dir)
        .expect("namespace mount")
        .flatten()
        .next()
        .expect("volume dir")
        .path();
    let path = volume.join("s1");
    assert_eq!(std::fs::read(&path).expect("read"), versions[0].as_bytes());

    let stop = Arc::new(AtomicBool::new(false));
    let allowed: Vec<Vec<u8>> = versions.iter().map(|v| v.clone().into_bytes()).collect();
    let reader = {
        let stop = stop.clone();
        let path = path.clone();
        let allowed = allowed.clone();
        std::thread::spawn(move || {
            let mut seen = vec![0usize; allowed.len()];
            let mut bad: Vec<String> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match std::fs::read(&path) {
                    Ok(got) => match allowed.iter().position(|v| *v == got) {
                        Some(i) => seen[i] += 1,
                        None => {
                            bad.push(format!("a mix or foreign content of {} bytes", got.len()))
                        }
                    },
                    Err(e) => bad.push(format!("read error: {e}")),
                }
            }
            (seen, bad)
        })
    };

    // Each new version reaches the volume through rotation, which swaps
    // `..data` inside the same fuse volume (and later drops the old dir).
    let mut swaps = 0;
    for v in versions.iter().skip(1) {
        env.secret(VAULT, "s1", v);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::read(target.join("s1")).expect("read") != v.as_bytes() {
            assert!(
                std::time::Instant::now() < deadline,
                "rotation did not bring version {swaps} within 20 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        swaps += 1;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (seen, bad) = reader.join().expect("reader");
    println!("swaps: {swaps}, reads per version: {seen:?}, bad reads: {bad:?}");
    assert!(
        bad.is_empty(),
        "{} bad reads, first: {:?}",
        bad.len(),
        bad.first()
    );
    assert!(
        seen.iter().filter(|&&n| n > 0).count() >= 2,
        "the reader saw no swap: {seen:?}"
    );
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    assert!(mounts_at(&ns_dir).is_empty());
    env.stop().await;
}
