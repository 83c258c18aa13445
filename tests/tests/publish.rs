//! NodePublishVolume / NodeUnpublishVolume end to end: the tmpfs, kubelet's
//! `..data` layout, exact bytes and modes, identity selection, and that a
//! failed publish leaves nothing behind.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use tonic::Code;
use vaultlet::demo::kubelet::Pod;
use vaultlet_tests::{
    Env, assert_nothing_at, attrs, is_mounted, is_tmpfs, mounts_at, objects, privileged_or_skip,
    tree,
};

const VAULT: &str = "kv-publish";
const CLIENT: &str = "0a0a0a0a-1111-2222-3333-444444444444";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("stat (following links)")
        .permissions()
        .mode()
        & 0o7777
}

fn link(path: &Path) -> String {
    std::fs::read_link(path)
        .unwrap_or_else(|e| panic!("{} is not a symlink: {e}", path.display()))
        .display()
        .to_string()
}

/// `..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN`, kubelet's AtomicWriter payload dir.
fn is_payload_dir_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("..") else {
        return false;
    };
    let Some((stamp, nanos)) = rest.split_once('.') else {
        return false;
    };
    let parts: Vec<&str> = stamp.split('_').collect();
    let widths = [4, 2, 2, 2, 2, 2];
    parts.len() == widths.len()
        && parts
            .iter()
            .zip(widths)
            .all(|(p, w)| p.len() == w && p.bytes().all(|b| b.is_ascii_digit()))
        && rest.starts_with("20")
        && nanos.len() == 9
        && nanos.bytes().all(|b| b.is_ascii_digit())
}

/// Counters of the emulator that any network activity would move.
fn network(env: &Env) -> (u64, u64) {
    let c = env.emulator.state().counters();
    (c.total, c.token_requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_publish_writes_the_atomic_layout_with_exact_bytes_and_modes() {
    if !privileged_or_skip(
        "workload_identity_publish_writes_the_atomic_layout_with_exact_bytes_and_modes",
    ) {
        return;
    }
    assert!(is_payload_dir_name("..2026_11_29_15_04_05.123456789"));
    assert!(!is_payload_dir_name("..data"));

    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    let v1 = "db-password-\u{e9}\u{4e2d}-0123456789\n";
    let v2 = "api-key-0123456789abcdef";
    let v3 = "host=db\nport=5432\npassword=conf-secret-0123456789\n";
    env.secret(VAULT, "s1", v1);
    env.secret(VAULT, "s2", v2);
    env.secret(VAULT, "db-conf", v3);
    let pod = env.wi_pod(CLIENT, "team-a", "uid-happy");
    let a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&[
            "objectName: s1\nobjectType: secret",
            "objectName: s2\nobjectType: secret\nfilePermission: \"0400\"",
            "objectName: db-conf\nobjectType: secret\nobjectAlias: database/test-db.conf",
        ]),
    );
    let target = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("publish");
    assert_eq!(target, env.kubelet.target_path(&pod.uid, "secrets"));

    // A tmpfs mounted exactly at the target, with the contract's options.
    assert!(is_mounted(&target), "not mounted");
    assert!(is_tmpfs(&target), "not tmpfs");
    let mounts = mounts_at(&target);
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    let m = &mounts[0];
    assert_eq!(m.fs_type, "tmpfs");
    for opt in ["nosuid", "nodev", "noexec"] {
        assert!(m.mount_options.iter().any(|o| o == opt), "{opt}: {m:?}");
    }
    assert!(m.super_options.iter().any(|o| o == "mode=755"), "{m:?}");
    assert!(
        m.super_options.iter().any(|o| o == "size=1024k"),
        "the --tmpfs-size cap (1 MiB in tests): {m:?}"
    );
    assert_eq!(mode(&target), 0o755, "tmpfs root mode");

    // The `..data` layout.
    let data = link(&target.join("..data"));
    assert!(is_payload_dir_name(&data), "..data -> {data}");
    assert!(
        std::fs::symlink_metadata(target.join(&data))
            .expect("payload dir")
            .is_dir()
    );
    assert_eq!(mode(&target.join(&data)), 0o755, "payload dir mode");
    assert_eq!(link(&target.join("s1")), "..data/s1");
    assert_eq!(link(&target.join("s2")), "..data/s2");
    assert_eq!(link(&target.join("database")), "..data/database");
    let expected: std::collections::BTreeSet<String> = [
        "..data -> DATA".to_string(),
        "DATA/".into(),
        "DATA/s1".into(),
        "DATA/s2".into(),
        "DATA/database/".into(),
        "DATA/database/test-db.conf".into(),
        "s1 -> ..data/s1".into(),
        "s2 -> ..data/s2".into(),
        "database -> ..data/database".into(),
    ]
    .into_iter()
    .map(|s| s.replace("DATA", &data))
    .collect();
    assert_eq!(tree(&target), expected);

    // Regular files holding the exact bytes, with their modes.
    for (name, value, want_mode) in [
        ("s1", v1, 0o644),
        ("s2", v2, 0o400),
        ("database/test-db.conf", v3, 0o644),
    ] {
        let in_payload = target.join(&data).join(name);
        let meta = std::fs::symlink_metadata(&in_payload).expect("file");
        assert!(meta.file_type().is_file(), "{name} is not a regular file");
        assert_eq!(meta.len(), value.len() as u64, "{name} size");
        assert_eq!(
            std::fs::read(target.join(name)).expect("read"),
            value.as_bytes(),
            "{name}"
        );
        assert_eq!(mode(&target.join(name)), want_mode, "{name} mode");
        assert_eq!(meta.uid(), 0, "{name} owner");
    }
    assert_eq!(mode(&target.join("database")), 0o755, "nested dir mode");

    // The emulator received the kubelet token as the client assertion.
    assert_eq!(
        env.emulator.state().last_assertion(CLIENT),
        pod.token.clone(),
        "the client assertion is not the pod's kubelet token"
    );

    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    assert!(!is_mounted(&target), "still mounted after unpublish");
    assert!(
        std::fs::symlink_metadata(&target).is_err(),
        "target dir left after unpublish"
    );
    // Kubelet's per-volume parent is kubelet's to remove; nothing else of
    // ours is left in it.
    assert_eq!(tree(target.parent().expect("parent")), Default::default());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmpfs_size_attribute_caps_this_volume() {
    if !privileged_or_skip("tmpfs_size_attribute_caps_this_volume") {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "small-value-0123456789");
    let pod = env.wi_pod(CLIENT, "team-a", "uid-size");
    let mut a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&["objectName: s1\nobjectType: secret"]),
    );
    a.insert("vaultlet.dev/tmpfs-size".into(), "64Ki".into());
    let target = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("publish");
    let mounts = mounts_at(&target);
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert!(
        mounts[0].super_options.iter().any(|o| o == "size=64k"),
        "{mounts:?}"
    );
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    assert!(!is_mounted(&target));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_principal_publish_works() {
    if !privileged_or_skip("service_principal_publish_works") {
        return;
    }
    let mut env = Env::start().await;
    let sp = "5e5e5e5e-aaaa-bbbb-cccc-dddddddddddd";
    env.vault(VAULT, &[sp]);
    env.secret(VAULT, "s1", "sp-value-0123456789");
    let secrets = env.sp_secrets(sp);
    let pod = Pod {
        name: "pod-sp".into(),
        namespace: "team-b".into(),
        uid: "uid-sp".into(),
        service_account: "default".into(),
        token: None,
    };
    let a = attrs(
        VAULT,
        None,
        &objects(&["objectName: s1\nobjectType: secret"]),
    );
    let target = env
        .kubelet
        .publish(&pod, "secrets", &a, &secrets)
        .await
        .expect("publish with a service principal");
    assert!(is_tmpfs(&target));
    assert_eq!(
        std::fs::read(target.join("s1")).expect("read"),
        b"sp-value-0123456789"
    );
    let counters = env.emulator.state().counters();
    assert_eq!(counters.per_client.get(sp), Some(&1), "{counters:?}");
    assert_eq!(env.emulator.state().last_assertion(sp), None);
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    assert!(!is_mounted(&target));
    assert!(std::fs::symlink_metadata(&target).is_err());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_identity_is_permission_denied_naming_the_vault() {
    let mut env = Env::start().await;
    env.vault(VAULT, &["some-other-client"]);
    env.secret(VAULT, "s1", "denied-value-0123456789");
    let pod = env.wi_pod(CLIENT, "team-a", "uid-denied");
    let a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&["objectName: s1\nobjectType: secret"]),
    );
    let err = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect_err("a client not on the vault's access list");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let msg = err.message();
    assert!(msg.contains(VAULT), "{msg}");
    assert!(msg.contains("s1"), "{msg}");
    assert!(!msg.contains("denied-value"), "{msg}");
    assert!(!msg.contains(pod.token.as_deref().unwrap_or("?")), "{msg}");
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "secrets"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuse_backend_serves_the_volume_and_the_last_unpublish_removes_the_namespace_mount() {
    if !privileged_or_skip(
        "fuse_backend_serves_the_volume_and_the_last_unpublish_removes_the_namespace_mount",
    ) {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "fuse-value-0123456789");
    let pod = env.wi_pod(CLIENT, "team-a", "uid-fuse");
    let mut a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&[
            "objectName: s1\nobjectType: secret\nfilePermission: \"0440\"",
            "objectName: s1\nobjectType: secret\nobjectAlias: nested/copy",
        ]),
    );
    a.insert("vaultlet.dev/backend".into(), "fuse".into());
    let target = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("fuse publish");
    let st = nix::sys::statfs::statfs(&target).expect("statfs");
    assert_eq!(st.filesystem_type(), nix::sys::statfs::FUSE_SUPER_MAGIC);
    assert_eq!(
        std::fs::read(target.join("s1")).expect("read"),
        b"fuse-value-0123456789"
    );
    assert_eq!(
        std::fs::read(target.join("nested/copy")).expect("read"),
        b"fuse-value-0123456789"
    );
    assert_eq!(mode(&target.join("s1")), 0o440);
    let data = std::fs::read_link(target.join("..data")).expect("..data link");
    assert!(data.to_string_lossy().starts_with(".."), "{data:?}");
    let write = std::fs::OpenOptions::new()
        .write(true)
        .open(target.join("s1"));
    assert!(write.is_err(), "fuse volumes are read-only");
    let ns_mount = env.state_dir.join("fuse/team-a");
    assert_eq!(mounts_at(&ns_mount).len(), 1, "one namespace mount");

    // The same publish again: OK, still one bind at the target.
    env.kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("republish");
    assert_eq!(mounts_at(&target).len(), 1);

    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    assert_nothing_at(&target);
    assert!(
        mounts_at(&ns_mount).is_empty(),
        "namespace mount must go with its last volume"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_managed_identity_is_failed_precondition_saying_not_supported() {
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "mi-value-0123456789");
    // Even with a usable workload identity present, useVMManagedIdentity
    // comes first in the provider's order and must not silently fall back.
    let pod = env.wi_pod(CLIENT, "team-a", "uid-mi");
    let mut a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&["objectName: s1\nobjectType: secret"]),
    );
    a.insert("useVMManagedIdentity".into(), "true".into());
    let err = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect_err("managed identity");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let msg = err.message();
    assert!(msg.contains("useVMManagedIdentity"), "{msg}");
    assert!(msg.contains("not supported"), "{msg}");
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "secrets"));
    assert_eq!(network(&env), (0, 0), "fetched before refusing");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_identity_is_failed_precondition_listing_what_is_missing() {
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "noid-value-0123456789");
    let tokenless = Pod {
        name: "pod-noid".into(),
        namespace: "team-a".into(),
        uid: "uid-noid".into(),
        service_account: "app".into(),
        token: None,
    };

    // Nothing at all.
    let a = attrs(
        VAULT,
        None,
        &objects(&["objectName: s1\nobjectType: secret"]),
    );
    let err = env
        .kubelet
        .publish(&tokenless, "secrets", &a, &HashMap::new())
        .await
        .expect_err("no identity");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let msg = err.message();
    for needle in [
        "clientID",
        "clientid",
        "clientsecret",
        "useVMManagedIdentity",
    ] {
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
    assert_nothing_at(&env.kubelet.target_path(&tokenless.uid, "secrets"));

    // clientID set, but kubelet passed no token (tokenRequests missing).
    let a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&["objectName: s1\nobjectType: secret"]),
    );
    let err = env
        .kubelet
        .publish(&tokenless, "secrets2", &a, &HashMap::new())
        .await
        .expect_err("clientID without token");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("api://AzureADTokenExchange"),
        "{}",
        err.message()
    );
    assert_nothing_at(&env.kubelet.target_path(&tokenless.uid, "secrets2"));

    // Half a service principal.
    let half: HashMap<String, String> = [("clientid".to_string(), "sp-half".to_string())].into();
    let a = attrs(
        VAULT,
        None,
        &objects(&["objectName: s1\nobjectType: secret"]),
    );
    let err = env
        .kubelet
        .publish(&tokenless, "secrets3", &a, &half)
        .await
        .expect_err("clientid without clientsecret");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("no clientsecret"),
        "{}",
        err.message()
    );
    assert_nothing_at(&env.kubelet.target_path(&tokenless.uid, "secrets3"));

    assert_eq!(network(&env), (0, 0), "fetched without an identity");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_old_stack_attributes_are_invalid_argument_naming_them() {
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "spc-value-0123456789");
    let pod = env.wi_pod(CLIENT, "team-a", "uid-spc");
    for (key, value) in [
        ("secretProviderClass", "my-spc-name-canary"),
        ("usePodIdentity", "true"),
        ("useAzureTokenProxy", "true"),
        ("cloudEnvFileName", "/etc/kubernetes/custom-canary.json"),
        ("cloudName", "AzureStackCloud"),
    ] {
        let mut a = attrs(
            VAULT,
            Some(CLIENT),
            &objects(&["objectName: s1\nobjectType: secret"]),
        );
        a.insert(key.into(), value.into());
        let err = env
            .kubelet
            .publish(&pod, "secrets", &a, &HashMap::new())
            .await
            .expect_err(key);
        assert_eq!(err.code(), Code::InvalidArgument, "{key}: {err:?}");
        assert!(err.message().contains(key), "{key}: {}", err.message());
        assert!(
            !err.message().contains("canary"),
            "{key}: the value is echoed: {}",
            err.message()
        );
        assert_nothing_at(&env.kubelet.target_path(&pod.uid, "secrets"));
    }
    assert_eq!(network(&env), (0, 0), "fetched before refusing");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_publish_leaves_no_dir_no_mount_and_no_file() {
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "present-value-0123456789");
    let pod = env.wi_pod(CLIENT, "team-a", "uid-fail");
    // The first object exists, the second does not: the fetch fails after
    // some bytes were already received.
    let a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&[
            "objectName: s1\nobjectType: secret",
            "objectName: missing\nobjectType: secret",
        ]),
    );
    let before = tree(env.base_dir());
    let err = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect_err("missing object");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let target = env.kubelet.target_path(&pod.uid, "secrets");
    assert_nothing_at(&target);
    // Only what the simulated kubelet created (the target's parents) is new.
    vaultlet_tests::assert_only_parents_created(env.base_dir(), &before, &target);
    env.stop().await;
}

// ---- Unpublish touches only what vaultlet owns (DESIGN §5) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish_of_a_symlink_or_regular_file_target_is_failed_precondition_and_left_alone() {
    let mut env = Env::start().await;
    let pod = env.wi_pod(CLIENT, "team-a", "uid-unpub-odd");
    let outside = env.base_dir().join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("sentinel"), b"sentinel").expect("write");

    let target = env.kubelet.target_path(&pod.uid, "link");
    std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
    std::os::unix::fs::symlink(&outside, &target).expect("symlink");
    let err = env
        .kubelet
        .unpublish(&pod.uid, "link")
        .await
        .expect_err("a symlink at the target");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("symlink"), "{}", err.message());
    assert_eq!(link(&target), outside.display().to_string());
    assert_eq!(
        std::fs::read(outside.join("sentinel")).expect("kept"),
        b"sentinel"
    );

    let target = env.kubelet.target_path(&pod.uid, "file");
    std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
    std::fs::write(&target, b"a regular file").expect("write");
    let err = env
        .kubelet
        .unpublish(&pod.uid, "file")
        .await
        .expect_err("a regular file at the target");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(std::fs::read(&target).expect("kept"), b"a regular file");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish_over_a_foreign_filesystem_is_failed_precondition_and_leaves_it_mounted() {
    if !privileged_or_skip(
        "unpublish_over_a_foreign_filesystem_is_failed_precondition_and_leaves_it_mounted",
    ) {
        return;
    }
    let mut env = Env::start().await;
    let pod = env.wi_pod(CLIENT, "team-a", "uid-unpub-foreign");
    let target = env.kubelet.target_path(&pod.uid, "secrets");
    std::fs::create_dir_all(&target).expect("mkdir");
    nix::mount::mount(
        Some("ramfs"),
        &target,
        Some("ramfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount ramfs");
    std::fs::write(target.join("theirs"), b"not vaultlet's").expect("write");
    let err = env.kubelet.unpublish(&pod.uid, "secrets").await;
    let still = mounts_at(&target);
    let content = std::fs::read(target.join("theirs"));
    let _ = nix::mount::umount(&target);
    let err = err.expect_err("a foreign filesystem at the target");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(still.len(), 1, "{still:?}");
    assert_eq!(still[0].fs_type, "ramfs");
    assert_eq!(content.expect("kept"), b"not vaultlet's");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish_unmounts_a_tmpfs_the_daemon_does_not_know() {
    if !privileged_or_skip("unpublish_unmounts_a_tmpfs_the_daemon_does_not_know") {
        return;
    }
    let mut env = Env::start().await;
    let pod = env.wi_pod(CLIENT, "team-a", "uid-unpub-unknown-tmpfs");
    let target = env.kubelet.target_path(&pod.uid, "secrets");
    std::fs::create_dir_all(&target).expect("mkdir");
    nix::mount::mount(
        Some("tmpfs"),
        &target,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=64k,mode=0755"),
    )
    .expect("mount tmpfs");
    std::fs::write(target.join("left-over"), b"from a lost index").expect("write");
    let result = env.kubelet.unpublish(&pod.uid, "secrets").await;
    let mounted = is_mounted(&target);
    if mounted {
        let _ = nix::mount::umount(&target);
    }
    result.expect("unpublish of an unknown tmpfs volume");
    assert!(!mounted, "the tmpfs was left mounted");
    assert!(std::fs::symlink_metadata(&target).is_err(), "dir left");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_onto_a_symlink_target_is_failed_precondition_and_follows_nothing() {
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "symlink-value-0123456789");
    let pod = env.wi_pod(CLIENT, "team-a", "uid-pub-link");
    let outside = env.base_dir().join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    let target = env.kubelet.target_path(&pod.uid, "secrets");
    std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
    std::os::unix::fs::symlink(&outside, &target).expect("symlink");
    let a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&["objectName: s1\nobjectType: secret"]),
    );
    let err = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect_err("a symlink at the target");
    let mounted_outside = is_mounted(&outside);
    if mounted_outside {
        let _ = nix::mount::umount(&outside);
    }
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(!mounted_outside, "mounted through the symlink");
    assert!(!is_mounted(&target));
    assert_eq!(
        tree(&outside),
        Default::default(),
        "wrote through the symlink"
    );
    assert_eq!(link(&target), outside.display().to_string());
    env.stop().await;
}

// ---- Concurrency and cancellation (DESIGN §7) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_publishes_all_succeed_with_one_mount() {
    if !privileged_or_skip("concurrent_identical_publishes_all_succeed_with_one_mount") {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "concurrent-value-0123456789");
    let pod = env.wi_pod(CLIENT, "team-a", "uid-concurrent");
    let a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&["objectName: s1\nobjectType: secret"]),
    );
    let calls = (0..8).map(|_| {
        let mut kubelet = env.kubelet.clone();
        let pod = pod.clone();
        let a = a.clone();
        async move { kubelet.publish(&pod, "secrets", &a, &HashMap::new()).await }
    });
    let results = futures_join_all(calls).await;
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    let target = env.kubelet.target_path(&pod.uid, "secrets");
    let mounts = mounts_at(&target);
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(
        std::fs::read(target.join("s1")).expect("read"),
        b"concurrent-value-0123456789"
    );
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    assert!(mounts_at(&target).is_empty());
    assert!(std::fs::symlink_metadata(&target).is_err());
    env.stop().await;
}

/// Runs futures concurrently on the runtime and collects their outputs in order.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_publish_then_retry_returns_ok_only_with_every_file() {
    if !privileged_or_skip("cancelled_publish_then_retry_returns_ok_only_with_every_file") {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "slow-value-0123456789");
    env.secret(VAULT, "s2", "fast-value-0123456789");
    let pod = env.wi_pod(CLIENT, "team-a", "uid-cancel");
    env.emulator.state().inject_fault(keyvault_emulator::Fault {
        path_prefix: "/secrets/s1".into(),
        vault: Some(VAULT.into()),
        status: 0,
        retry_after_secs: None,
        delay_ms: Some(1500),
        count: 2,
    });
    let a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&[
            "objectName: s1\nobjectType: secret",
            "objectName: s2\nobjectType: secret",
        ]),
    );
    let first = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        env.kubelet.publish(&pod, "secrets", &a, &HashMap::new()),
    )
    .await;
    assert!(first.is_err(), "the first call should still be running");
    // Kubelet retries at once, while the first publish is still fetching.
    let target = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("retry");
    assert_eq!(
        std::fs::read(target.join("s1")).expect("s1 present when OK"),
        b"slow-value-0123456789"
    );
    assert_eq!(
        std::fs::read(target.join("s2")).expect("s2 present when OK"),
        b"fast-value-0123456789"
    );
    assert_eq!(mounts_at(&target).len(), 1);
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    assert!(mounts_at(&target).is_empty());
    assert!(std::fs::symlink_metadata(&target).is_err());
    env.stop().await;
}

// ---- Other outcomes of DESIGN §7 ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_over_the_tmpfs_cap_is_resource_exhausted_and_leaves_nothing() {
    if !privileged_or_skip("content_over_the_tmpfs_cap_is_resource_exhausted_and_leaves_nothing") {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    let big = format!("{}{}", vaultlet_tests::canary("big"), "x".repeat(64 * 1024));
    env.secret(VAULT, "big", &big);
    let pod = env.wi_pod(CLIENT, "team-a", "uid-too-big");
    let mut a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&["objectName: big\nobjectType: secret"]),
    );
    a.insert("vaultlet.dev/tmpfs-size".into(), "8Ki".into());
    let err = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect_err("64 KiB into 8 KiB");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("8192"),
        "names the limit: {}",
        err.message()
    );
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "secrets"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_version_is_failed_precondition_naming_the_object() {
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    let v1 = env.secret(VAULT, "s1", "disabled-old-0123456789");
    let v2 = env.secret(VAULT, "s1", "disabled-new-0123456789");
    env.emulator
        .state()
        .set_secret_enabled(VAULT, "s1", &v2, false)
        .expect("disable");
    env.emulator
        .state()
        .set_secret_enabled(VAULT, "s1", &v1, false)
        .expect("disable");
    let pod = env.wi_pod(CLIENT, "team-a", "uid-disabled");
    for (volume, item) in [
        ("current", "objectName: s1\nobjectType: secret".to_string()),
        (
            "pinned",
            format!("objectName: s1\nobjectType: secret\nobjectVersion: {v1}"),
        ),
    ] {
        let a = attrs(VAULT, Some(CLIENT), &objects(&[&item]));
        let err = env
            .kubelet
            .publish(&pod, volume, &a, &HashMap::new())
            .await
            .expect_err("disabled");
        assert_eq!(err.code(), Code::FailedPrecondition, "{volume}: {err:?}");
        assert!(err.message().contains("s1"), "{}", err.message());
        assert!(err.message().contains(VAULT), "{}", err.message());
        assert!(err.message().contains("disabled"), "{}", err.message());
        assert_nothing_at(&env.kubelet.target_path(&pod.uid, volume));
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_value_is_invalid_argument_naming_the_object_not_the_value() {
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s-b64", "not base64 at all: canary-b64-0123456789");
    env.secret(VAULT, "s-hex", "zz-not-hex-canary-0123456789");
    let pod = env.wi_pod(CLIENT, "team-a", "uid-decode");
    for (volume, name, encoding) in [("b64", "s-b64", "base64"), ("hex", "s-hex", "hex")] {
        let a = attrs(
            VAULT,
            Some(CLIENT),
            &objects(&[&format!(
                "objectName: {name}\nobjectType: secret\nobjectEncoding: {encoding}"
            )]),
        );
        let err = env
            .kubelet
            .publish(&pod, volume, &a, &HashMap::new())
            .await
            .expect_err("undecodable");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        let msg = err.message();
        assert!(msg.contains(name), "{msg}");
        assert!(msg.contains(encoding), "{msg}");
        assert!(!msg.contains("canary"), "echoes the value: {msg}");
        assert_nothing_at(&env.kubelet.target_path(&pod.uid, volume));
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_history_writes_enabled_versions_newest_first() {
    if !privileged_or_skip("version_history_writes_enabled_versions_newest_first") {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    let t0 = 1_700_000_000;
    let mut ids = Vec::new();
    for (i, value) in [
        "hist-a-0123456789",
        "hist-b-0123456789",
        "hist-c-0123456789",
        "hist-d-0123456789",
    ]
    .iter()
    .enumerate()
    {
        let spec = keyvault_emulator::SecretSpec {
            created: Some(t0 + 100 * i as i64),
            ..keyvault_emulator::SecretSpec::new(*value)
        };
        ids.push(env.secret_spec(VAULT, "s1", spec));
    }
    env.emulator
        .state()
        .set_secret_enabled(VAULT, "s1", &ids[1], false)
        .expect("disable b");
    let pod = env.wi_pod(CLIENT, "team-a", "uid-history");
    let a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&["objectName: s1\nobjectType: secret\nobjectVersionHistory: 3"]),
    );
    let target = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("publish");
    assert_eq!(link(&target.join("s1")), "..data/s1");
    for (i, want) in [
        "hist-d-0123456789",
        "hist-c-0123456789",
        "hist-a-0123456789",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(
            std::fs::read(target.join(format!("s1/{i}"))).expect("history file"),
            want.as_bytes(),
            "s1/{i}"
        );
    }
    assert!(!target.join("s1/3").exists());
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

// ---- Shutdown ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_volumes_mounted_and_a_restarted_daemon_unpublishes_them() {
    if !privileged_or_skip(
        "shutdown_leaves_volumes_mounted_and_a_restarted_daemon_unpublishes_them",
    ) {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "restart-value-0123456789");
    let pod = env.wi_pod(CLIENT, "team-a", "uid-restart");
    let a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&["objectName: s1\nobjectType: secret"]),
    );
    let target = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("publish");
    env.restart_daemon().await;
    assert_eq!(mounts_at(&target).len(), 1, "unmounted by shutdown");
    assert_eq!(
        std::fs::read(target.join("s1")).expect("read"),
        b"restart-value-0123456789"
    );
    // The restarted daemon knows the volume: the same publish is OK without
    // a second mount, other attributes are ALREADY_EXISTS.
    env.kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("republish after restart");
    assert_eq!(mounts_at(&target).len(), 1);
    let mut other = a.clone();
    other.insert("vaultlet.dev/tmpfs-size".into(), "2Mi".into());
    let err = env
        .kubelet
        .publish(&pod, "secrets", &other, &HashMap::new())
        .await
        .expect_err("other attributes");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    assert!(mounts_at(&target).is_empty());
    assert!(std::fs::symlink_metadata(&target).is_err());
    env.stop().await;
}

// ---- Identity details ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_token_is_read_from_secrets_first() {
    if !privileged_or_skip("workload_identity_token_is_read_from_secrets_first") {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "token-order-value-0123456789");
    let pod = env.wi_pod(CLIENT, "team-a", "uid-token-order");
    let good = pod.token.clone().expect("token");
    let a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&["objectName: s1\nobjectType: secret"]),
    );
    // Newer kubelets put the tokens entry in `secrets`; the entry in
    // volume_context holds a token the emulator does not accept.
    let stale = vaultlet_tests::canary("stale-token");
    env.watched.push(stale.clone());
    let stale_pod = Pod {
        token: Some(stale.clone()),
        ..pod.clone()
    };
    let mut req = env
        .kubelet
        .publish_request(&stale_pod, "secrets", &a, &HashMap::new());
    let entry = env
        .kubelet
        .publish_request(&pod, "secrets", &a, &HashMap::new())
        .volume_context
        .remove(csi_proto::SERVICE_ACCOUNT_TOKENS_KEY)
        .expect("tokens entry");
    req.secrets
        .insert(csi_proto::SERVICE_ACCOUNT_TOKENS_KEY.into(), entry);
    let target = env.kubelet.send_publish(req).await.expect("publish");
    assert_eq!(env.emulator.state().last_assertion(CLIENT), Some(good));
    assert_eq!(
        std::fs::read(target.join("s1")).expect("read"),
        b"token-order-value-0123456789"
    );
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_identity_gets_nothing_even_after_an_allowed_one_fetched_the_object() {
    if !privileged_or_skip(
        "a_denied_identity_gets_nothing_even_after_an_allowed_one_fetched_the_object",
    ) {
        return;
    }
    let mut env = Env::start().await;
    let other = "0b0b0b0b-1111-2222-3333-444444444444";
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "isolation-value-0123456789");
    let allowed = env.wi_pod(CLIENT, "team-a", "uid-allowed");
    let denied = env.wi_pod(other, "team-b", "uid-denied-after");
    let items = objects(&["objectName: s1\nobjectType: secret"]);
    let target = env
        .kubelet
        .publish(
            &allowed,
            "secrets",
            &attrs(VAULT, Some(CLIENT), &items),
            &HashMap::new(),
        )
        .await
        .expect("allowed");
    let err = env
        .kubelet
        .publish(
            &denied,
            "secrets",
            &attrs(VAULT, Some(other), &items),
            &HashMap::new(),
        )
        .await
        .expect_err("denied while the object is cached for another identity");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_nothing_at(&env.kubelet.target_path(&denied.uid, "secrets"));
    env.kubelet
        .unpublish(&allowed.uid, "secrets")
        .await
        .expect("unpublish");
    assert!(!is_mounted(&target));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_namespace_does_not_reuse_a_cached_workload_identity_token() {
    if !privileged_or_skip("another_namespace_does_not_reuse_a_cached_workload_identity_token") {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "namespace-value-0123456789");
    let pod = env.wi_pod(CLIENT, "team-a", "uid-ns-a");
    let items = objects(&["objectName: s1\nobjectType: secret"]);
    let a = attrs(VAULT, Some(CLIENT), &items);
    env.kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("team-a");
    // Same client id, another namespace, a token Entra ID does not accept.
    let forged = vaultlet_tests::canary("forged-token");
    env.watched.push(forged.clone());
    let intruder = Pod {
        name: "pod-intruder".into(),
        namespace: "team-b".into(),
        uid: "uid-ns-b".into(),
        service_account: "app".into(),
        token: Some(forged),
    };
    let err = env
        .kubelet
        .publish(&intruder, "secrets", &a, &HashMap::new())
        .await
        .expect_err("the cached Entra token of team-a must not serve team-b");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_nothing_at(&env.kubelet.target_path(&intruder.uid, "secrets"));
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish_overwrites_file_contents_with_zeros() {
    if !privileged_or_skip("unpublish_overwrites_file_contents_with_zeros") {
        return;
    }
    use std::io::{Read, Seek};
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    let value = "zeroed-value-0123456789";
    env.secret(VAULT, "s1", value);
    let pod = env.wi_pod(CLIENT, "team-a", "uid-zero");
    let a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&["objectName: s1\nobjectType: secret"]),
    );
    let target = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("publish");
    // A reader that still holds the file open when the pod goes away.
    let mut open = std::fs::File::open(target.join("s1")).expect("open");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    assert!(!is_mounted(&target), "still mounted");
    let mut seen = Vec::new();
    open.rewind().expect("rewind");
    open.read_to_end(&mut seen).expect("read");
    assert_eq!(seen.len(), value.len(), "overwritten in place, full length");
    assert!(
        seen.iter().all(|b| *b == 0),
        "the file's bytes were not overwritten ({} bytes, {} non-zero)",
        seen.len(),
        seen.iter().filter(|b| **b != 0).count()
    );
    assert!(!String::from_utf8_lossy(&seen).contains(value));
    env.stop().await;
}
