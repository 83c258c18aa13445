//! One fetch per object per (namespace, identity), rotation and republish
//! refresh: the cases of `shared/CASES.md` named by the rotation issue
//! (C28, C34, C37, C46) and the request-count and rotation rules. C52 (the
//! soak) runs against the real daemon process in
//! `daemon/tests/memory_scan.rs`, where its RSS is the daemon's alone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keyvault_emulator::Fault;
use vaultlet::demo::kubelet::Pod;
use vaultlet_tests::{Env, attrs, is_tmpfs, objects, privileged_or_skip};

const VAULT: &str = "kv-rotation";
const CLIENT: &str = "0d0d0d0d-1111-2222-3333-444444444444";

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Waits (polling every 50 ms) until `path` holds `want`, failing after
/// `limit`. Returns how long it took.
async fn wait_for_content(path: &Path, want: &[u8], limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if std::fs::read(path).ok().as_deref() == Some(want) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{} did not get the new content within {limit:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GETs of one secret (any version, or its version list) the emulator saw.
fn gets(env: &Env, name: &str) -> u64 {
    env.emulator
        .state()
        .counters()
        .per_object
        .get(&format!("{VAULT}/secrets/{name}"))
        .copied()
        .unwrap_or(0)
}

/// The version ids recorded in the daemon's index for the volume at
/// `target`, per object name.
fn recorded_versions(env: &Env, target: &Path) -> HashMap<String, Vec<String>> {
    let raw = std::fs::read_to_string(env.state_dir.join("volumes.json")).expect("index");
    let index: serde_json::Value = serde_json::from_str(&raw).expect("index is JSON");
    let vols = index
        .get("volumes")
        .and_then(|v| v.as_array())
        .cloned()
        .or_else(|| index.as_array().cloned())
        .expect("a list of volumes");
    let vol = vols
        .iter()
        .find(|v| v["target_path"].as_str() == Some(target.to_str().expect("utf-8")))
        .expect("the volume is in the index");
    vol["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|o| {
            (
                o["name"].as_str().expect("name").to_string(),
                o["versions"]
                    .as_array()
                    .expect("ids")
                    .iter()
                    .map(|v| v.as_str().expect("id").to_string())
                    .collect(),
            )
        })
        .collect()
}

/// `n` pods of one namespace and service account sharing one kubelet token
/// (one workload identity).
fn pods(env: &mut Env, n: usize, tag: &str) -> Vec<Pod> {
    let first = env.wi_pod(CLIENT, "team-r", &format!("uid-{tag}-0"));
    (0..n)
        .map(|i| Pod {
            name: format!("pod-{tag}-{i}"),
            uid: format!("uid-{tag}-{i}"),
            ..first.clone()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c46_fifty_concurrent_publishes_of_ten_shared_objects_make_ten_gets_and_one_token_request()
{
    if !privileged_or_skip("c46_fifty_concurrent_publishes") {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    let names: Vec<String> = (0..10).map(|i| format!("shared-{i}")).collect();
    let mut values = Vec::new();
    for n in &names {
        let v = format!("value-of-{n}-0123456789");
        env.secret(VAULT, n, &v);
        values.push(v);
    }
    let items: Vec<String> = names
        .iter()
        .map(|n| format!("objectName: {n}\nobjectType: secret"))
        .collect();
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let a = attrs(VAULT, Some(CLIENT), &objects(&refs));
    let pods = pods(&mut env, 50, "c46");
    env.emulator.state().reset_counters();

    let start = Instant::now();
    let tasks: Vec<_> = pods
        .iter()
        .map(|pod| {
            let mut kubelet = env.kubelet.clone();
            let (pod, a) = (pod.clone(), a.clone());
            tokio::spawn(async move { kubelet.publish(&pod, "secrets", &a, &HashMap::new()).await })
        })
        .collect();
    let mut targets: Vec<PathBuf> = Vec::new();
    for t in tasks {
        targets.push(t.await.expect("join").expect("every publish succeeds"));
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "50 publishes took {took:?}, far from kubelet's 2 minutes"
    );
    for target in &targets {
        for (n, v) in names.iter().zip(&values) {
            assert_eq!(read(&target.join(n)), v.as_bytes(), "{}", target.display());
        }
    }
    let c = env.emulator.state().counters();
    let object_gets: u64 = c.per_object.values().sum();
    assert_eq!(
        object_gets, 10,
        "exactly one GET per object: {:?}",
        c.per_object
    );
    assert!(c.per_object.values().all(|&n| n == 1), "{:?}", c.per_object);
    assert_eq!(c.token_requests, 1, "one token for the one identity");
    assert!(
        c.challenges <= 1,
        "at most one 401 challenge per SDK client, got {}",
        c.challenges
    );
    for pod in &pods {
        env.kubelet
            .unpublish(&pod.uid, "secrets")
            .await
            .expect("unpublish");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republish_inside_the_interval_fetches_nothing_and_keeps_the_files() {
    if !privileged_or_skip("a_republish_inside_the_interval_fetches_nothing") {
        return;
    }
    let mut env = Env::start_with(|c| c.rotation_poll_interval = Duration::from_secs(3600)).await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "first-value-0123456789");
    let pod = pods(&mut env, 1, "inside").remove(0);
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
    env.secret(VAULT, "s1", "second-value-0123456789");
    let before = gets(&env, "s1");
    for _ in 0..5 {
        env.kubelet
            .publish(&pod, "secrets", &a, &HashMap::new())
            .await
            .expect("republish");
    }
    assert_eq!(gets(&env, "s1"), before, "no GET before the interval");
    assert_eq!(read(&target.join("s1")), b"first-value-0123456789");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c28_a_republish_after_the_interval_writes_the_new_version_and_records_its_id() {
    if !privileged_or_skip("c28_republish_after_the_interval") {
        return;
    }
    let interval = Duration::from_secs(2);
    let mut env = Env::start_with(|c| c.rotation_poll_interval = interval).await;
    env.vault(VAULT, &[CLIENT]);
    let v1 = "c28-first-0123456789";
    let id1 = env.secret(VAULT, "s1", v1);
    let pod = pods(&mut env, 1, "c28").remove(0);
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
    assert_eq!(recorded_versions(&env, &target)["s1"], vec![id1.clone()]);
    assert_eq!(read(&target.join("s1")), v1.as_bytes());

    let v2 = "c28-second-0123456789";
    let id2 = env.secret(VAULT, "s1", v2);
    assert_ne!(id1, id2);
    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    env.kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("republish is OK");
    assert_eq!(read(&target.join("s1")), v2.as_bytes(), "the new value");
    assert_eq!(
        recorded_versions(&env, &target)["s1"],
        vec![id2],
        "the recorded version id changes"
    );
    assert!(is_tmpfs(&target), "never remounted");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_brings_a_new_version_to_every_volume_of_both_backends_within_one_interval() {
    if !privileged_or_skip("rotation_brings_a_new_version") {
        return;
    }
    let interval = Duration::from_millis(1500);
    let mut env = Env::start_with(|c| c.rotation_poll_interval = interval).await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "rot-first-0123456789");
    let pinned_version = env.secret(VAULT, "pinned", "rot-pinned-0123456789");
    let pods = pods(&mut env, 4, "rot");
    let mut targets = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        let mut a = attrs(
            VAULT,
            Some(CLIENT),
            &objects(&[
                "objectName: s1\nobjectType: secret",
                &format!("objectName: pinned\nobjectType: secret\nobjectVersion: {pinned_version}"),
            ]),
        );
        a.insert(
            "vaultlet.dev/backend".into(),
            if i % 2 == 0 { "tmpfs" } else { "fuse" }.into(),
        );
        targets.push(
            env.kubelet
                .publish(pod, "secrets", &a, &HashMap::new())
                .await
                .expect("publish"),
        );
    }
    // Let one rotation pass happen with nothing new.
    tokio::time::sleep(interval * 2).await;
    let pinned_gets = gets(&env, "pinned");
    let changed_at = Instant::now();
    let v2 = "rot-second-0123456789";
    env.secret(VAULT, "s1", v2);
    env.secret(VAULT, "pinned", "rot-pinned-newer-0123456789");
    // One interval, its 10% jitter, and a rotation tick (interval / 8),
    // plus a generous margin for a loaded machine.
    let limit = interval + interval / 10 + interval / 8 + Duration::from_secs(3);
    for t in &targets {
        wait_for_content(
            &t.join("s1"),
            v2.as_bytes(),
            limit.saturating_sub(changed_at.elapsed()),
        )
        .await;
    }
    println!(
        "every volume had the new version after {:?}",
        changed_at.elapsed()
    );
    // Pinned versions are never re-read.
    tokio::time::sleep(interval * 2).await;
    assert_eq!(
        gets(&env, "pinned"),
        pinned_gets,
        "a pinned version is never re-read"
    );
    for t in &targets {
        assert_eq!(read(&t.join("pinned")), b"rot-pinned-0123456789");
        // One interval after the swap the old payload dir is gone: only the
        // current one remains.
        let payload_dirs: Vec<String> = std::fs::read_dir(t)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != "..data")
            .collect();
        assert_eq!(payload_dirs.len(), 1, "{}: {payload_dirs:?}", t.display());
    }
    for pod in &pods {
        env.kubelet
            .unpublish(&pod.uid, "secrets")
            .await
            .expect("unpublish");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c37_a_rotated_value_over_the_tmpfs_cap_keeps_the_old_files_and_is_retried() {
    if !privileged_or_skip("c37_rotated_value_over_the_cap") {
        return;
    }
    let interval = Duration::from_millis(800);
    let mut env = Env::start_with(|c| c.rotation_poll_interval = interval).await;
    env.vault(VAULT, &[CLIENT]);
    let small = "s".repeat(10 * 1024);
    env.secret(VAULT, "s1", &small);
    let pod = pods(&mut env, 1, "c37").remove(0);
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
    let before = gets(&env, "s1");
    env.secret(VAULT, "s1", &"L".repeat(80 * 1024));
    // Several intervals: each re-reads, fails to write, keeps the old files.
    tokio::time::sleep(interval * 5).await;
    assert_eq!(
        read(&target.join("s1")),
        small.as_bytes(),
        "old content stays"
    );
    assert!(is_tmpfs(&target), "nothing torn down");
    let retries = gets(&env, "s1") - before;
    assert!(retries >= 2, "the failed update is retried: {retries} GETs");
    // A republish is still OK and keeps the old files.
    env.kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("a republish whose refresh fails is OK");
    assert_eq!(read(&target.join("s1")), small.as_bytes());
    // Once the value fits again, rotation brings it.
    let fits = "f".repeat(20 * 1024);
    env.secret(VAULT, "s1", &fits);
    wait_for_content(
        &target.join("s1"),
        fits.as_bytes(),
        interval * 4 + Duration::from_secs(3),
    )
    .await;
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c34_a_cancelled_publish_never_leaves_an_empty_volume_and_the_retry_has_every_file() {
    if !privileged_or_skip("c34_cancelled_publish") {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "c34-one-0123456789");
    env.secret(VAULT, "s2", "c34-two-0123456789");
    let pod = pods(&mut env, 1, "c34").remove(0);
    let a = attrs(
        VAULT,
        Some(CLIENT),
        &objects(&[
            "objectName: s1\nobjectType: secret",
            "objectName: s2\nobjectType: secret",
        ]),
    );
    env.emulator.state().inject_fault(Fault {
        path_prefix: "/secrets/s1".into(),
        delay_ms: Some(1500),
        count: 1,
        ..Fault::default()
    });
    let target = env.kubelet.target_path(&pod.uid, "secrets");
    // The caller's deadline is shorter than the delay: it gives up.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        env.kubelet.publish(&pod, "secrets", &a, &HashMap::new()),
    )
    .await;
    assert!(cancelled.is_err(), "the call was cut short");
    // While the fetch is still running, nothing is mounted.
    assert!(
        !is_tmpfs(&target),
        "nothing mounted before every object is in"
    );
    // The retry waits for the same fetch and returns OK only with every file.
    env.kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("the retry succeeds");
    assert_eq!(read(&target.join("s1")), b"c34-one-0123456789");
    assert_eq!(read(&target.join("s2")), b"c34-two-0123456789");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}
