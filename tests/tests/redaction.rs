//! Redaction: with the capture at trace level, dependencies included, no
//! seeded value, kubelet token, client secret or issued access token ever
//! reaches the logs, the state dir, a returned error, or `/metrics`.

use std::collections::HashMap;

use base64::Engine as _;

use keyvault_emulator::Fault;
use tonic::Code;
use vaultlet::demo::kubelet::Pod;
use vaultlet_tests::{
    Env, assert_not_logged, attrs, canary, free_local_addr, logs, objects, privileged_or_skip, tree,
};

const VAULT: &str = "kv-redact";
const WI_CLIENT: &str = "7e7e7e7e-1111-2222-3333-444444444444";
const SP_CLIENT: &str = "8f8f8f8f-1111-2222-3333-444444444444";

/// Offsets of `kve.<64 hex>` in `text`: the shape of the emulator's access
/// tokens, which the test cannot otherwise know.
fn access_tokens(text: &str) -> Vec<usize> {
    text.match_indices("kve.")
        .filter(|(i, _)| {
            let rest = &text.as_bytes()[i + 4..];
            rest.len() >= 64 && rest[..64].iter().all(u8::is_ascii_hexdigit)
        })
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn access_token_detector_finds_the_emulator_shape() {
    let token = format!("kve.{}", "ab12".repeat(16));
    assert_eq!(access_tokens(&format!("x Bearer {token} y")), vec![9]);
    assert!(access_tokens("kve.short and kve.").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_value_token_or_client_secret_reaches_the_trace_log() {
    if !privileged_or_skip("no_value_token_or_client_secret_reaches_the_trace_log") {
        return;
    }
    let mut env = Env::start().await;
    env.vault(VAULT, &[WI_CLIENT, SP_CLIENT]);
    let v1 = canary("value-one");
    let v2 = canary("value-two");
    // Also a value that is only seen after base64 decoding.
    let v3 = canary("value-decoded");
    let v3_stored = base64::engine::general_purpose::STANDARD.encode(v3.as_bytes());
    env.secret(VAULT, "s1", &v1);
    env.secret(VAULT, "s2", &v2);
    env.secret(VAULT, "s3", &v3_stored);
    env.watched.push(v3.clone());
    let items = objects(&[
        "objectName: s1\nobjectType: secret",
        "objectName: s2\nobjectType: secret\nobjectAlias: nested/two",
        "objectName: s3\nobjectType: secret\nobjectEncoding: base64",
    ]);

    // Workload identity.
    let pod = env.wi_pod(WI_CLIENT, "team-a", "uid-redact-wi");
    let a = attrs(VAULT, Some(WI_CLIENT), &items);
    let target = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect("wi publish");
    // The values really went through the daemon.
    assert_eq!(std::fs::read(target.join("s1")).expect("s1"), v1.as_bytes());
    assert_eq!(
        std::fs::read(target.join("nested/two")).expect("s2"),
        v2.as_bytes()
    );
    assert_eq!(std::fs::read(target.join("s3")).expect("s3"), v3.as_bytes());
    // A republish with a refreshed token, then unpublish.
    let refreshed = env.refresh_token(WI_CLIENT, &pod);
    env.kubelet
        .publish(&refreshed, "secrets", &a, &HashMap::new())
        .await
        .expect("republish");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("wi unpublish");

    // Service principal, with an unrelated extra entry in the secrets map.
    let mut secrets = env.sp_secrets(SP_CLIENT);
    let extra = canary("extra-secret-entry");
    env.watched.push(extra.clone());
    secrets.insert("some-other-key".into(), extra);
    let sp_pod = Pod {
        name: "pod-redact-sp".into(),
        namespace: "team-b".into(),
        uid: "uid-redact-sp".into(),
        service_account: "default".into(),
        token: None,
    };
    let a = attrs(VAULT, None, &items);
    let target = env
        .kubelet
        .publish(&sp_pod, "secrets", &a, &secrets)
        .await
        .expect("sp publish");
    assert_eq!(std::fs::read(target.join("s1")).expect("s1"), v1.as_bytes());
    env.kubelet
        .unpublish(&sp_pod.uid, "secrets")
        .await
        .expect("sp unpublish");

    // Failure paths log too: a rejected client secret, a malformed tokens
    // entry, a denied identity.
    let wrong = canary("wrong-client-secret");
    env.watched.push(wrong.clone());
    let mut bad_secrets = secrets.clone();
    bad_secrets.insert("clientsecret".into(), wrong.clone());
    let err = env
        .kubelet
        .publish(&sp_pod, "wrong", &a, &bad_secrets)
        .await
        .expect_err("wrong secret");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(!err.message().contains(&wrong));

    let garbage = canary("garbage-token-entry");
    env.watched.push(garbage.clone());
    let mut req = env.kubelet.publish_request(
        &pod,
        "garbage",
        &attrs(VAULT, Some(WI_CLIENT), &items),
        &HashMap::new(),
    );
    req.volume_context.insert(
        csi_proto::SERVICE_ACCOUNT_TOKENS_KEY.into(),
        format!("{{\"api://AzureADTokenExchange\": {garbage}"),
    );
    let err = env
        .kubelet
        .send_publish(req)
        .await
        .expect_err("malformed tokens entry");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(!err.message().contains(&garbage));

    env.vault(VAULT, &["nobody"]);
    let err = env
        .kubelet
        .publish(
            &pod,
            "denied",
            &attrs(VAULT, Some(WI_CLIENT), &items),
            &HashMap::new(),
        )
        .await
        .expect_err("denied");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // The capture works: it is at trace level, includes dependencies, and
    // would show a leak.
    let marker = canary("capture-self-test");
    tracing::trace!(target: "redaction_self_test", "{marker}");
    let text = logs().text();
    assert!(
        text.contains(&marker),
        "the capture does not record trace events"
    );
    assert!(text.contains(" TRACE "), "no trace-level lines captured");
    for dependency in ["h2::", "rustls", "hyper"] {
        assert!(
            text.contains(dependency),
            "no log line from {dependency}: dependencies are not captured"
        );
    }
    assert!(text.contains("vaultlet"), "no daemon log line captured");
    assert!(text.len() > 10_000, "suspiciously small capture");

    // Nothing secret in it.
    assert_not_logged(&env.watched);
    let leaked = access_tokens(&text);
    assert!(
        leaked.is_empty(),
        "{} access token(s) in the logs",
        leaked.len()
    );

    // Nor in the state dir.
    for entry in tree(&env.state_dir) {
        let path = env.state_dir.join(&entry);
        if let Ok(bytes) = std::fs::read(&path) {
            let content = String::from_utf8_lossy(&bytes);
            for w in &env.watched {
                assert!(!content.contains(w.as_str()), "{entry} holds a secret");
            }
            assert!(access_tokens(&content).is_empty(), "{entry} holds a token");
        }
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redaction_under_failure_no_value_or_token_in_logs_or_metrics() {
    if !privileged_or_skip("redaction_under_failure_no_value_or_token_in_logs_or_metrics") {
        return;
    }
    let mut env = Env::start_with(|c| c.metrics_addr = Some(free_local_addr())).await;
    env.vault(VAULT, &[WI_CLIENT, SP_CLIENT]);
    let name = "redaction-failure-object-name";
    let value = canary("value-under-failure");
    env.secret(VAULT, name, &value);
    let items = objects(&[&format!("objectName: {name}\nobjectType: secret")]);
    let pod = env.wi_pod(WI_CLIENT, "team-f", "uid-redact-fail");
    let a = attrs(VAULT, Some(WI_CLIENT), &items);
    let fault = |status: u16, retry_after_secs: Option<u64>, count: u32| Fault {
        path_prefix: "/secrets/".into(),
        vault: Some(VAULT.into()),
        status,
        retry_after_secs,
        delay_ms: None,
        count,
    };

    // Throttled, then served.
    env.emulator.state().inject_fault(fault(429, Some(1), 2));
    let target = env
        .kubelet
        .publish(&pod, "throttled", &a, &HashMap::new())
        .await
        .expect("throttled publish");
    assert_eq!(
        std::fs::read(target.join(name)).expect("file"),
        value.as_bytes()
    );

    // The vault keeps failing: every retry is spent. (Another object: the
    // first is held by the "throttled" volume and served from the cache.)
    let other = "redaction-failure-other-object";
    env.secret(VAULT, other, &canary("other-value-under-failure"));
    let a_other = attrs(
        VAULT,
        Some(WI_CLIENT),
        &objects(&[&format!("objectName: {other}\nobjectType: secret")]),
    );
    env.emulator.state().clear_faults();
    env.emulator.state().inject_fault(fault(503, None, 1000));
    let err = env
        .kubelet
        .publish(&pod, "failing", &a_other, &HashMap::new())
        .await
        .expect_err("persistent 503");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    env.emulator.state().clear_faults();

    // A rejected client secret.
    let mut secrets = env.sp_secrets(SP_CLIENT);
    let wrong = canary("wrong-secret-under-failure");
    env.watched.push(wrong.clone());
    secrets.insert("clientsecret".into(), wrong.clone());
    let sp_pod = Pod {
        name: "pod-redact-fail-sp".into(),
        namespace: "team-f".into(),
        uid: "uid-redact-fail-sp".into(),
        service_account: "default".into(),
        token: None,
    };
    let err = env
        .kubelet
        .publish(&sp_pod, "wrong", &attrs(VAULT, None, &items), &secrets)
        .await
        .expect_err("wrong secret");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(!err.message().contains(&wrong));

    env.kubelet
        .unpublish(&pod.uid, "throttled")
        .await
        .expect("unpublish");

    let metrics = env.metrics().await;
    assert!(
        metrics.contains("vaultlet_keyvault_requests_total"),
        "{metrics}"
    );
    for w in env.watched.iter().chain([&value]) {
        assert!(
            !metrics.contains(w.as_str()),
            "a watched value reached /metrics"
        );
    }
    assert!(
        !metrics.contains(name) && !metrics.contains(other),
        "an object name reached /metrics"
    );
    assert!(
        access_tokens(&metrics).is_empty(),
        "a token reached /metrics"
    );
    assert_not_logged(&env.watched);
    assert!(
        access_tokens(&logs().text()).is_empty(),
        "an access token reached the logs"
    );
    env.stop().await;
}
