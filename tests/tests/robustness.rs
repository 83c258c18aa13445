//! Behaviours found in review: a lost index never empties a live volume, a
//! republish keeps its volume when no identity can be chosen, a symlink in
//! the target's path is refused, and a publish timeout names what it waited
//! on.

use std::collections::HashMap;
use std::time::Duration;

use keyvault_emulator::Fault;
use tonic::Code;
use vaultlet_tests::{Env, attrs, mounts_at, objects, privileged_or_skip};

const VAULT: &str = "kv-robust";
const CLIENT: &str = "0a0a0a0a-1111-2222-3333-444444444444";

async fn setup(uid: &str) -> (Env, vaultlet::demo::kubelet::Pod) {
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    let pod = env.wi_pod(CLIENT, "team-r", uid);
    (env, pod)
}

fn one() -> String {
    objects(&["objectName: s1\nobjectType: secret"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_index_adopts_the_live_tmpfs_without_emptying_it() {
    if !privileged_or_skip("a_lost_index_adopts_the_live_tmpfs_without_emptying_it") {
        return;
    }
    let (mut env, pod) = setup("uid-lost-index").await;
    env.secret(VAULT, "s1", "robust-value-one-0123456789");
    let a = attrs(VAULT, Some(CLIENT), &one());
    let target = env
        .kubelet
        .publish(&pod, "vol", &a, &HashMap::new())
        .await
        .expect("publish");
    // A reader that opened the file before the restart keeps its bytes.
    let before = std::fs::File::open(target.join("s1")).expect("open");

    std::fs::remove_file(env.state_dir.join(vaultlet::volume::INDEX_FILE)).expect("rm index");
    env.restart_daemon().await;
    env.secret(VAULT, "s1", "robust-value-two-0123456789");
    env.kubelet
        .publish(&pod, "vol", &a, &HashMap::new())
        .await
        .expect("republish after a lost index");

    let mounts = mounts_at(&target);
    assert_eq!(mounts.len(), 1, "exactly one tmpfs: {mounts:?}");
    assert_eq!(
        std::fs::read(target.join("s1")).expect("read"),
        b"robust-value-two-0123456789"
    );
    let mut old = String::new();
    std::io::Read::read_to_string(&mut &before, &mut old).expect("read old");
    assert_eq!(old, "robust-value-one-0123456789");
    env.kubelet
        .unpublish(&pod.uid, "vol")
        .await
        .expect("unpublish");
    assert!(mounts_at(&target).is_empty());
    assert!(!target.exists());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republish_without_a_usable_identity_keeps_the_volume() {
    if !privileged_or_skip("republish_without_a_usable_identity_keeps_the_volume") {
        return;
    }
    let (mut env, pod) = setup("uid-no-identity").await;
    env.secret(VAULT, "s1", "robust-keep-0123456789");
    let a = attrs(VAULT, Some(CLIENT), &one());
    let target = env
        .kubelet
        .publish(&pod, "vol", &a, &HashMap::new())
        .await
        .expect("publish");
    let mut tokenless = pod.clone();
    tokenless.token = None;
    env.kubelet
        .publish(&tokenless, "vol", &a, &HashMap::new())
        .await
        .expect("a republish whose credential cannot be refreshed is OK");
    assert_eq!(
        std::fs::read(target.join("s1")).expect("read"),
        b"robust-keep-0123456789"
    );
    assert_eq!(mounts_at(&target).len(), 1);
    env.kubelet
        .unpublish(&pod.uid, "vol")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_in_the_target_path_is_refused_and_nothing_is_mounted_elsewhere() {
    if !privileged_or_skip(
        "a_symlink_in_the_target_path_is_refused_and_nothing_is_mounted_elsewhere",
    ) {
        return;
    }
    let (mut env, pod) = setup("uid-symlinked").await;
    env.secret(VAULT, "s1", "robust-symlink-0123456789");
    let outside = tempfile::tempdir().expect("outside");
    let vol_dir = env
        .root
        .join("pods/uid-symlinked/volumes/kubernetes.io~csi/vol");
    std::fs::create_dir_all(vol_dir.parent().expect("parent")).expect("mkdir");
    std::os::unix::fs::symlink(outside.path(), &vol_dir).expect("symlink");
    let req = env.kubelet.publish_request(
        &pod,
        "vol",
        &attrs(VAULT, Some(CLIENT), &one()),
        &HashMap::new(),
    );
    let err = env
        .kubelet
        .node
        .node_publish_volume(req)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("symlink"), "{}", err.message());
    assert!(!outside.path().join("mount").exists());
    assert!(mounts_at(&outside.path().join("mount")).is_empty());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_timeout_names_the_host_it_waited_on() {
    let (mut env, pod) = {
        let mut env = Env::start_with(|c| c.publish_timeout = Duration::from_secs(2)).await;
        env.vault(VAULT, &[CLIENT]);
        let pod = env.wi_pod(CLIENT, "team-r", "uid-slow");
        (env, pod)
    };
    env.secret(VAULT, "s1", "robust-slow-0123456789");
    env.emulator.state().inject_fault(Fault {
        path_prefix: "/secrets/s1".into(),
        vault: Some(VAULT.into()),
        delay_ms: Some(6000),
        count: 10,
        ..Default::default()
    });
    let err = env
        .kubelet
        .publish(
            &pod,
            "vol",
            &attrs(VAULT, Some(CLIENT), &one()),
            &HashMap::new(),
        )
        .await
        .expect_err("times out");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains(VAULT), "{}", err.message());
    assert!(
        err.message()
            .contains("no answer yet from kv-robust.vault.localhost"),
        "{}",
        err.message()
    );
    assert!(!env.kubelet.target_path(&pod.uid, "vol").exists());
    env.stop().await;
}
