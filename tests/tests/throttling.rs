//! Key Vault throttling and retries (our retry policy), and the metrics and
//! health endpoint: what a publish costs in requests, how long it waits,
//! and what `/metrics` says about it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use keyvault_emulator::Fault;
use tonic::Code;
use vaultlet::demo::kubelet::Pod;
use vaultlet_tests::{
    Env, TENANT, assert_nothing_at, attrs, free_local_addr, http_get, objects, privileged_or_skip,
    sample,
};

const VAULT: &str = "kv-throttle";
const CLIENT: &str = "d1d1d1d1-1111-2222-3333-444444444444";
const OBJECT: &str = "throttled-object-name";

async fn setup(uid: &str, tweak: impl FnOnce(&mut vaultlet::config::Config)) -> (Env, Pod) {
    let mut env = Env::start_with(tweak).await;
    env.vault(VAULT, &[CLIENT]);
    let pod = env.wi_pod(CLIENT, "team-t", uid);
    (env, pod)
}

fn one() -> String {
    objects(&[&format!("objectName: {OBJECT}\nobjectType: secret")])
}

fn throttle(env: &Env, status: u16, retry_after_secs: Option<u64>, count: u32) {
    env.emulator.state().inject_fault(Fault {
        path_prefix: "/secrets/".into(),
        vault: Some(VAULT.into()),
        status,
        retry_after_secs,
        delay_ms: None,
        count,
    });
}

fn gets(env: &Env) -> u64 {
    let c = env.emulator.state().counters();
    c.per_object
        .get(&format!("{VAULT}/secrets/{OBJECT}"))
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_reads_wait_out_retry_after_and_then_succeed() {
    if !privileged_or_skip("throttled_reads_wait_out_retry_after_and_then_succeed") {
        return;
    }
    let (mut env, pod) = setup("uid-thr-ok", |_| {}).await;
    env.secret(VAULT, OBJECT, "throttle-value-0123456789");
    const N: u32 = 2;
    throttle(&env, 429, Some(1), N);
    let started = Instant::now();
    let target = env
        .kubelet
        .publish(
            &pod,
            "vol",
            &attrs(VAULT, Some(CLIENT), &one()),
            &HashMap::new(),
        )
        .await
        .expect("publish succeeds after the throttling");
    let took = started.elapsed();
    assert_eq!(
        std::fs::read(target.join(OBJECT)).expect("file"),
        b"throttle-value-0123456789"
    );
    // N throttled GETs, then the one that succeeded.
    assert_eq!(gets(&env), u64::from(N) + 1);
    // Retry-After: 1 was honoured each time.
    assert!(took >= Duration::from_secs(u64::from(N)), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    env.kubelet
        .unpublish(&pod.uid, "vol")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_past_the_publish_deadline_gives_up_at_once_and_mounts_nothing() {
    let (mut env, pod) = setup("uid-thr-late", |c| {
        c.publish_timeout = Duration::from_secs(3);
    })
    .await;
    env.secret(VAULT, OBJECT, "throttle-value-0123456789");
    throttle(&env, 429, Some(30), 100);
    let started = Instant::now();
    let err = env
        .kubelet
        .publish(
            &pod,
            "vol",
            &attrs(VAULT, Some(CLIENT), &one()),
            &HashMap::new(),
        )
        .await
        .expect_err("the vault asks for more time than the publish has");
    let took = started.elapsed();
    // DESIGN §7: 429 after retries is UNAVAILABLE; the retry policy gave up
    // before the deadline rather than sleeping into it.
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let msg = err.message();
    assert!(msg.contains(VAULT), "{msg}");
    assert!(msg.contains("429"), "{msg}");
    assert!(msg.contains("retries gave up"), "{msg}");
    // One try: the wait it was told would pass the deadline.
    assert_eq!(gets(&env), 1);
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "vol"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_publishes_unpublishes_and_keyvault_requests_exactly() {
    if !privileged_or_skip("metrics_count_publishes_unpublishes_and_keyvault_requests_exactly") {
        return;
    }
    let (mut env, pod) = setup("uid-thr-metrics", |c| {
        c.metrics_addr = Some(free_local_addr());
    })
    .await;
    let value = vaultlet_tests::canary("metrics-value");
    env.secret(VAULT, OBJECT, &value);
    let a = attrs(VAULT, Some(CLIENT), &one());

    // 1. A successful publish.
    env.kubelet
        .publish(&pod, "ok", &a, &HashMap::new())
        .await
        .expect("publish");
    let m = env.metrics().await;
    assert_eq!(
        sample(&m, r#"vaultlet_node_publish_total{result="ok"}"#),
        1.0
    );
    assert_eq!(
        sample(&m, "vaultlet_node_publish_duration_seconds_count"),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            r#"vaultlet_keyvault_requests_total{vault="kv-throttle",operation="get_secret",status="200"}"#
        ),
        1.0,
        "{m}"
    );
    // The SDK's challenge probe, answered 401 before the token is fetched.
    assert_eq!(
        sample(
            &m,
            r#"vaultlet_keyvault_requests_total{vault="kv-throttle",operation="get_secret",status="401"}"#
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"vaultlet_token_requests_total{result="ok"}"#),
        1.0,
        "{m}"
    );

    // 2. A failed publish: the object is missing.
    let missing = objects(&["objectName: absent-object-name\nobjectType: secret"]);
    let err = env
        .kubelet
        .publish(
            &pod,
            "missing",
            &attrs(VAULT, Some(CLIENT), &missing),
            &HashMap::new(),
        )
        .await
        .expect_err("not found");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // 3. An unpublish.
    env.kubelet
        .unpublish(&pod.uid, "ok")
        .await
        .expect("unpublish");

    // 4. A throttled publish: two 429s, then success.
    throttle(&env, 429, Some(1), 2);
    env.kubelet
        .publish(&pod, "throttled", &a, &HashMap::new())
        .await
        .expect("throttled publish");

    let m = env.metrics().await;
    let kv = |op: &str, status: &str| {
        sample(
            &m,
            &format!(
                r#"vaultlet_keyvault_requests_total{{vault="kv-throttle",operation="{op}",status="{status}"}}"#
            ),
        )
    };
    assert_eq!(
        sample(&m, r#"vaultlet_node_publish_total{result="ok"}"#),
        2.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"vaultlet_node_publish_total{result="not_found"}"#),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"vaultlet_node_unpublish_total{result="ok"}"#),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, "vaultlet_node_publish_duration_seconds_count"),
        3.0,
        "{m}"
    );
    assert_eq!(kv("get_secret", "200"), 2.0, "{m}");
    assert_eq!(kv("get_secret", "404"), 1.0, "{m}");
    assert_eq!(kv("get_secret", "429"), 2.0, "{m}");
    assert_eq!(
        sample(
            &m,
            r#"vaultlet_csi_calls_total{method="NodePublishVolume",code="NotFound"}"#
        ),
        1.0,
        "{m}"
    );
    // The throttled publish took at least its two Retry-After seconds.
    assert!(
        sample(
            &m,
            r#"vaultlet_node_publish_duration_seconds_bucket{le="1.0"}"#
        ) <= 2.0,
        "{m}"
    );
    // No value, token or object name in the metrics.
    for needle in [value.as_str(), OBJECT, "absent-object-name", "kve."]
        .into_iter()
        .chain(env.watched.iter().map(String::as_str))
    {
        assert!(!m.contains(needle), "metrics leak {needle:?}");
    }
    env.kubelet
        .unpublish(&pod.uid, "throttled")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_answer_200_while_serving() {
    let addr = free_local_addr();
    let env = Env::start_with(|c| c.metrics_addr = Some(addr)).await;
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    // The simulator is connected: the CSI socket serves.
    assert_eq!(http_get(addr, "/readyz").await.0, 200);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_requests_are_retried_by_the_same_policy_and_counted() {
    if !privileged_or_skip("token_requests_are_retried_by_the_same_policy_and_counted") {
        return;
    }
    let (mut env, pod) = setup("uid-thr-token", |c| {
        c.metrics_addr = Some(free_local_addr());
    })
    .await;
    env.secret(VAULT, OBJECT, "throttle-value-0123456789");
    // Entra ID answers 503 twice, then issues the token.
    env.emulator.state().inject_fault(Fault {
        path_prefix: format!("/{TENANT}/oauth2/v2.0/token"),
        vault: None,
        status: 503,
        retry_after_secs: None,
        delay_ms: None,
        count: 2,
    });
    env.kubelet
        .publish(
            &pod,
            "vol",
            &attrs(VAULT, Some(CLIENT), &one()),
            &HashMap::new(),
        )
        .await
        .expect("publish succeeds once the token endpoint recovers");
    assert_eq!(env.emulator.state().counters().token_requests, 3);
    let m = env.metrics().await;
    assert_eq!(
        sample(&m, r#"vaultlet_token_requests_total{result="error"}"#),
        2.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"vaultlet_token_requests_total{result="ok"}"#),
        1.0,
        "{m}"
    );
    // The Key Vault read itself was not retried.
    assert_eq!(gets(&env), 1);
    env.kubelet
        .unpublish(&pod.uid, "vol")
        .await
        .expect("unpublish");
    env.stop().await;
}

/// C45: the vault answers 429 with `Retry-After: 3` to the first 5 GETs
/// while 20 volumes publish (2 objects shared by all, 1 of each volume's
/// own). Retry-After is honoured, the calls are bounded (each throttled
/// request is tried once more, nothing else is repeated) and every volume
/// ends with the right files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c45_twenty_volumes_through_five_429s_with_retry_after_all_end_correct() {
    if !privileged_or_skip("c45_twenty_volumes_through_five_429s") {
        return;
    }
    let (mut env, first) = setup("uid-c45-0", |_| {}).await;
    env.secret(VAULT, "shared-a", "c45-shared-a-0123456789");
    env.secret(VAULT, "shared-b", "c45-shared-b-0123456789");
    let pods: Vec<Pod> = (0..20)
        .map(|i| Pod {
            name: format!("pod-c45-{i}"),
            uid: format!("uid-c45-{i}"),
            ..first.clone()
        })
        .collect();
    for i in 0..20 {
        env.secret(
            VAULT,
            &format!("own-{i}"),
            &format!("c45-own-{i}-0123456789"),
        );
    }
    env.emulator.state().reset_counters();
    throttle(&env, 429, Some(3), 5);
    let started = Instant::now();
    let tasks: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let mut kubelet = env.kubelet.clone();
            let pod = pod.clone();
            let a = attrs(
                VAULT,
                Some(CLIENT),
                &objects(&[
                    "objectName: shared-a\nobjectType: secret",
                    "objectName: shared-b\nobjectType: secret",
                    &format!("objectName: own-{i}\nobjectType: secret"),
                ]),
            );
            tokio::spawn(async move { kubelet.publish(&pod, "vol", &a, &HashMap::new()).await })
        })
        .collect();
    let mut targets = Vec::new();
    for t in tasks {
        targets.push(t.await.expect("join").expect("every volume publishes"));
    }
    let took = started.elapsed();
    for (i, t) in targets.iter().enumerate() {
        assert_eq!(
            std::fs::read(t.join("shared-a")).expect("a"),
            b"c45-shared-a-0123456789"
        );
        assert_eq!(
            std::fs::read(t.join("shared-b")).expect("b"),
            b"c45-shared-b-0123456789"
        );
        assert_eq!(
            std::fs::read(t.join(format!("own-{i}"))).expect("own"),
            format!("c45-own-{i}-0123456789").as_bytes()
        );
    }
    let c = env.emulator.state().counters();
    let object_gets: u64 = c.per_object.values().sum();
    // 22 distinct objects fetched once each, plus one more try for each of
    // the 5 throttled requests.
    assert_eq!(object_gets, 22 + 5, "{:?}", c.per_object);
    assert!(
        took >= Duration::from_secs(3),
        "Retry-After: 3 honoured: {took:?}"
    );
    assert!(took < Duration::from_secs(60), "bounded: {took:?}");
    for pod in &pods {
        env.kubelet
            .unpublish(&pod.uid, "vol")
            .await
            .expect("unpublish");
    }
    env.stop().await;
}
