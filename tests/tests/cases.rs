//! One test per row of `shared/CASES.md` named by issue 2 (secret type).
//! Each asserts the right value from the row, not merely "an error".

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyvault_emulator::{ClientSpec, Counters};
use tonic::{Code, Status};
use vaultlet::demo::kubelet::Pod;
use vaultlet_tests::{
    Env, TENANT, assert_nothing_at, assert_only_parents_created, attrs, canary, is_mounted,
    is_tmpfs, mounts_at, objects, privileged_or_skip, tree,
};

const VAULT: &str = "kv-cases";
const CLIENT: &str = "c0c0c0c0-1111-2222-3333-444444444444";

/// A started env with the test vault readable by `CLIENT` and a
/// workload-identity pod for it.
async fn setup(uid: &str) -> (Env, Pod) {
    setup_with(uid, |_| {}).await
}

async fn setup_with(uid: &str, tweak: impl FnOnce(&mut vaultlet::config::Config)) -> (Env, Pod) {
    let mut env = Env::start_with(tweak).await;
    env.vault(VAULT, &[CLIENT]);
    let pod = env.wi_pod(CLIENT, "team-a", uid);
    (env, pod)
}

async fn publish(env: &mut Env, pod: &Pod, volume: &str, yaml: &str) -> Result<PathBuf, Status> {
    let a = attrs(VAULT, Some(CLIENT), yaml);
    env.kubelet.publish(pod, volume, &a, &HashMap::new()).await
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A functional bound: each failure must be reported promptly and
/// specifically, never by running into kubelet's deadline.
async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("the call must return within 20 s")
}

/// Publishes `yaml` expecting INVALID_ARGUMENT before any network call, with
/// nothing created outside the kubelet-made parents of the target. Checks
/// that the message contains every `needles` and none of `hidden`.
async fn rejected_up_front(
    env: &mut Env,
    pod: &Pod,
    volume: &str,
    yaml: &str,
    needles: &[&str],
    hidden: &[&str],
) -> Status {
    let before_net: Counters = env.emulator.state().counters();
    let before_fs = tree(env.base_dir());
    let err = publish(env, pod, volume, yaml)
        .await
        .expect_err("must be rejected");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let msg = err.message();
    for n in needles {
        assert!(msg.contains(n), "message should contain {n:?}: {msg}");
    }
    for h in hidden {
        assert!(!msg.contains(h), "message echoes {h:?}: {msg}");
    }
    for opaque in [
        "ScanError",
        "while parsing",
        "did not find expected",
        "internal error",
    ] {
        assert!(!msg.contains(opaque), "opaque message: {msg}");
    }
    assert_eq!(
        env.emulator.state().counters(),
        before_net,
        "a request reached Entra ID or Key Vault before the check"
    );
    let target = env.kubelet.target_path(&pod.uid, volume);
    assert_nothing_at(&target);
    assert_only_parents_created(env.base_dir(), &before_fs, &target);
    err
}

// ---- Names and paths ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c01_traversal_alias_and_dotdot_name_are_rejected_before_any_fetch() {
    let (mut env, pod) = setup("uid-c01").await;
    env.secret(VAULT, "s1", "c01-value-0123456789");
    let escape = format!("c01-escape-{}", canary("x"));
    for (i, alias) in [
        format!("../../../../tmp/{escape}"),
        format!("../{escape}"),
        format!("../../../../../../../../../../tmp/{escape}"),
        format!("a/../../{escape}"),
    ]
    .iter()
    .enumerate()
    {
        rejected_up_front(
            &mut env,
            &pod,
            &format!("v{i}"),
            &objects(&[&format!(
                "objectName: s1\nobjectType: secret\nobjectAlias: {alias}"
            )]),
            &["objects[0].objectAlias"],
            &[alias.as_str(), &escape],
        )
        .await;
        assert!(!Path::new("/tmp").join(&escape).exists());
    }
    rejected_up_front(
        &mut env,
        &pod,
        "dotdot",
        &objects(&["objectName: ..\nobjectType: secret"]),
        &["objects[0].objectName"],
        &[],
    )
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c02_every_final_path_passes_one_guard_history_paths_included() {
    let (mut env, pod) = setup("uid-c02").await;
    env.secret(VAULT, "s0", "c02-value-0123456789");
    // 16 components of 255 bytes: a 4095-byte alias passes on its own, but
    // its history paths (`<alias>/0`) are over PATH_MAX.
    let long_alias = vec!["a".repeat(255); 16].join("/");
    let variants: Vec<(String, String)> = [
        ("objectAlias: ok/../../escape", "ok/../../escape"),
        ("objectAlias: /etc/x", "/etc/x"),
        ("objectAlias: ../h\nobjectVersionHistory: 2", "../h"),
        ("objectAlias: ok/./x", "ok/./x"),
        ("objectAlias: \".\"", "\".\""),
        ("objectAlias: a//b", "a//b"),
        ("objectAlias: a/", "a/"),
        ("objectAlias: \"a\\nb\"", "a\nb"),
        ("objectAlias: \"x\\u0000y\"", "x\0y"),
    ]
    .into_iter()
    .map(|(k, h)| (k.to_string(), h.to_string()))
    .chain([(
        format!("objectAlias: {long_alias}\nobjectVersionHistory: 2"),
        long_alias.clone(),
    )])
    .collect();
    for (i, (keys, hidden)) in variants.iter().enumerate() {
        // A valid object first, so the index in the message is checked.
        rejected_up_front(
            &mut env,
            &pod,
            &format!("v{i}"),
            &objects(&[
                "objectName: s0\nobjectType: secret",
                &format!("objectName: s1\nobjectType: secret\n{keys}"),
            ]),
            &["objects[1].objectAlias"],
            &[hidden],
        )
        .await;
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c03_nested_alias_creates_the_directory_inside_the_volume() {
    if !privileged_or_skip("c03_nested_alias_creates_the_directory_inside_the_volume") {
        return;
    }
    let (mut env, pod) = setup("uid-c03").await;
    env.secret(VAULT, "db-conf", "host=db\npassword=c03-value-0123456789\n");
    let target = publish(
        &mut env,
        &pod,
        "secrets",
        &objects(&["objectName: db-conf\nobjectType: secret\nobjectAlias: database/test-db.conf"]),
    )
    .await
    .expect("publish");
    assert_eq!(
        read(&target.join("database/test-db.conf")),
        b"host=db\npassword=c03-value-0123456789\n"
    );
    assert_eq!(
        std::fs::read_link(target.join("database")).expect("link"),
        Path::new("..data/database")
    );
    use std::os::unix::fs::PermissionsExt;
    let dir = std::fs::metadata(target.join("database")).expect("dir");
    assert!(dir.is_dir());
    assert_eq!(dir.permissions().mode() & 0o7777, 0o755);
    let file = std::fs::metadata(target.join("database/test-db.conf")).expect("file");
    assert_eq!(file.permissions().mode() & 0o7777, 0o644);
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    assert!(!target.exists());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c05_names_starting_with_dotdot_are_rejected_and_dot_hidden_works() {
    if !privileged_or_skip("c05_names_starting_with_dotdot_are_rejected_and_dot_hidden_works") {
        return;
    }
    let (mut env, pod) = setup("uid-c05").await;
    env.secret(VAULT, "s1", "c05-value-0123456789");
    for (i, alias) in [
        "..data",
        "..2026_01_01_00_00_00.1",
        "..data_tmp",
        "dir/..x",
        "...",
        "..hidden/x",
    ]
    .iter()
    .enumerate()
    {
        rejected_up_front(
            &mut env,
            &pod,
            &format!("v{i}"),
            &objects(&[&format!(
                "objectName: s1\nobjectType: secret\nobjectAlias: {alias}"
            )]),
            &["objects[0].objectAlias"],
            &[alias],
        )
        .await;
    }
    let target = publish(
        &mut env,
        &pod,
        "hidden",
        &objects(&["objectName: s1\nobjectType: secret\nobjectAlias: .hidden"]),
    )
    .await
    .expect(".hidden is an ordinary name");
    assert_eq!(read(&target.join(".hidden")), b"c05-value-0123456789");
    assert_eq!(
        std::fs::read_link(target.join(".hidden")).expect("link"),
        Path::new("..data/.hidden")
    );
    env.kubelet
        .unpublish(&pod.uid, "hidden")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c06_duplicate_paths_are_rejected_listing_both_indices() {
    let (mut env, pod) = setup("uid-c06").await;
    let v1 = env.secret(VAULT, "s1", "c06-old-0123456789");
    env.secret(VAULT, "s1", "c06-new-0123456789");
    env.secret(VAULT, "s2", "c06-other-0123456789");
    rejected_up_front(
        &mut env,
        &pod,
        "secrets",
        &objects(&[
            "objectName: s1\nobjectType: secret",
            &format!("objectName: s1\nobjectType: secret\nobjectVersion: {v1}"),
        ]),
        &["objects[0]", "objects[1]"],
        &[],
    )
    .await;
    // The indices are the real ones, not always 0 and 1.
    rejected_up_front(
        &mut env,
        &pod,
        "secrets",
        &objects(&[
            "objectName: s2\nobjectType: secret",
            "objectName: s1\nobjectType: secret\nobjectAlias: same",
            "objectName: s2\nobjectType: secret\nobjectAlias: other",
            "objectName: s2\nobjectType: secret\nobjectAlias: same",
        ]),
        &["objects[1]", "objects[3]"],
        &[],
    )
    .await;
    // A file where another object needs a directory is the same conflict.
    rejected_up_front(
        &mut env,
        &pod,
        "secrets",
        &objects(&[
            "objectName: s1\nobjectType: secret\nobjectAlias: a",
            "objectName: s2\nobjectType: secret\nobjectAlias: a/b",
        ]),
        &["objects[0]", "objects[1]"],
        &[],
    )
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c07_current_and_pinned_versions_under_two_aliases() {
    if !privileged_or_skip("c07_current_and_pinned_versions_under_two_aliases") {
        return;
    }
    let (mut env, pod) = setup("uid-c07").await;
    let v1 = env.secret(VAULT, "s1", "c07-version-one-0123456789");
    env.secret(VAULT, "s1", "c07-version-two-0123456789");
    let target = publish(
        &mut env,
        &pod,
        "secrets",
        &objects(&[
            "objectName: s1\nobjectType: secret\nobjectAlias: cur",
            &format!("objectName: s1\nobjectType: secret\nobjectVersion: {v1}\nobjectAlias: prev"),
        ]),
    )
    .await
    .expect("publish");
    assert_eq!(read(&target.join("cur")), b"c07-version-two-0123456789");
    assert_eq!(read(&target.join("prev")), b"c07-version-one-0123456789");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c08_names_that_are_not_key_vault_names_are_rejected_suggesting_object_alias() {
    let (mut env, pod) = setup("uid-c08").await;
    for (i, name) in [
        "https://kv.vault.azure.net/secrets/s1",
        "https://kv.vault.azure.net/secrets/s1/0123456789abcdef0123456789abcdef",
        "s\u{e9}cret",
        "a/b",
        "s1.txt",
        "under_score",
        &"a".repeat(128),
    ]
    .iter()
    .enumerate()
    {
        rejected_up_front(
            &mut env,
            &pod,
            &format!("v{i}"),
            &objects(&[&format!("objectName: {name}\nobjectType: secret")]),
            &["objects[0].objectName", "objectAlias"],
            &[name],
        )
        .await;
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c09_alias_is_used_verbatim() {
    if !privileged_or_skip("c09_alias_is_used_verbatim") {
        return;
    }
    let (mut env, pod) = setup("uid-c09").await;
    env.secret(
        VAULT,
        "ConnectionStrings--Default",
        "Server=db;Password=c09-value-0123456789",
    );
    env.secret(VAULT, "MixedCase", "c09-mixed-0123456789");
    let target = publish(
        &mut env,
        &pod,
        "secrets",
        &objects(&[
            "objectName: ConnectionStrings--Default\nobjectType: secret\nobjectAlias: ConnectionStrings__Default",
            "objectName: MixedCase\nobjectType: secret\nobjectAlias: App.Settings_V2.JSON",
        ]),
    )
    .await
    .expect("publish");
    let names: Vec<String> = std::fs::read_dir(&target)
        .expect("readdir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".."))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        names,
        ["App.Settings_V2.JSON", "ConnectionStrings__Default"]
    );
    assert_eq!(
        read(&target.join("ConnectionStrings__Default")),
        b"Server=db;Password=c09-value-0123456789"
    );
    assert_eq!(
        read(&target.join("App.Settings_V2.JSON")),
        b"c09-mixed-0123456789"
    );
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

// ---- The objects grammar ----

const ONE: &str = "objectName: s1\nobjectType: secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c11_malformed_objects_name_the_item_and_key() {
    let (mut env, pod) = setup("uid-c11").await;
    env.secret(VAULT, "s1", "c11-value-0123456789");

    // A list without `array:`.
    rejected_up_front(
        &mut env,
        &pod,
        "bare-list",
        "- |\n  objectName: s1\n  objectType: secret\n",
        &["objects", "array"],
        &[],
    )
    .await;

    // An item that is a mapping, not a block-scalar string.
    rejected_up_front(
        &mut env,
        &pod,
        "mapping-item",
        "array:\n  - |\n    objectName: s1\n    objectType: secret\n  - objectName: s2\n    objectType: secret\n",
        &["objects[1]", "mapping"],
        &[],
    )
    .await;

    // An item with every field empty, quoted and plain.
    let keys = [
        "objectName",
        "objectType",
        "objectVersion",
        "objectAlias",
        "objectFormat",
        "objectEncoding",
        "filePermission",
        "objectVersionHistory",
    ];
    let quoted: Vec<String> = keys.iter().map(|k| format!("{k}: \"\"")).collect();
    let plain: Vec<String> = keys.iter().map(|k| format!("{k}:")).collect();
    for (volume, item) in [("empty-quoted", quoted), ("empty-plain", plain)] {
        rejected_up_front(
            &mut env,
            &pod,
            volume,
            &objects(&[ONE, &item.join("\n")]),
            &["objects[1].objectName"],
            &[],
        )
        .await;
    }

    // A misspelled key.
    rejected_up_front(
        &mut env,
        &pod,
        "misspelled",
        &objects(&[ONE, "objectname: s2\nobjectType: secret"]),
        &["objects[1].objectname", "objectName"],
        &[],
    )
    .await;

    // A key given twice in one item.
    rejected_up_front(
        &mut env,
        &pod,
        "duplicate-key",
        &objects(&[ONE, "objectName: s1\nobjectType: secret\nobjectName: s2"]),
        &["objects[1].objectName", "more than once"],
        &[],
    )
    .await;

    // A value that is not a string.
    rejected_up_front(
        &mut env,
        &pod,
        "list-value",
        &objects(&[
            ONE,
            "objectName: s2\nobjectType: secret\nobjectAlias:\n  - a\n  - b",
        ]),
        &["objects[1].objectAlias"],
        &[],
    )
    .await;

    // Another top-level key next to `array`.
    rejected_up_front(
        &mut env,
        &pod,
        "extra-top-key",
        &format!("{}objectsVersion: 2\n", objects(&[ONE])),
        &["objects", "objectsVersion", "array"],
        &[],
    )
    .await;

    // An empty array.
    rejected_up_front(
        &mut env,
        &pod,
        "empty-array",
        "array: []\n",
        &["objects", "at least one"],
        &[],
    )
    .await;

    // Tabs indenting the outer document.
    rejected_up_front(
        &mut env,
        &pod,
        "tab-outer",
        "array:\n\t- |\n\t  objectName: s1\n\t  objectType: secret\n",
        &["objects", "tab"],
        &[],
    )
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c11_tab_indentation_inside_an_item_names_the_item_index() {
    let (mut env, pod) = setup("uid-c11-tab").await;
    env.secret(VAULT, "s1", "c11-value-0123456789");
    // The outer document is valid YAML: the tab is part of item 1's text,
    // so the error is item 1's.
    let yaml = "array:\n  - |\n    objectName: s1\n    objectType: secret\n  - |\n    objectName: s2\n    \tobjectType: secret\n";
    rejected_up_front(
        &mut env,
        &pod,
        "tab-inner",
        yaml,
        &["objects[1]", "tab"],
        &[],
    )
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c11_comments_are_accepted() {
    if !privileged_or_skip("c11_comments_are_accepted") {
        return;
    }
    let (mut env, pod) = setup("uid-c11-ok").await;
    env.secret(VAULT, "s1", "c11-value-0123456789");
    env.secret(VAULT, "s2", "c11-other-0123456789");
    let yaml = format!(
        "# leading comment\n{}# trailing comment\n",
        objects(&[
            ONE,
            "objectName: s2 # the API key\nobjectType: secret\n# a comment line inside the item",
        ])
    );
    let target = publish(&mut env, &pod, "secrets", &yaml)
        .await
        .expect("comments are fine");
    assert_eq!(read(&target.join("s1")), b"c11-value-0123456789");
    assert_eq!(read(&target.join("s2")), b"c11-other-0123456789");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c12_object_types_are_checked_before_any_network_call() {
    let (mut env, pod) = setup("uid-c12").await;
    env.secret(VAULT, "s1", "c12-value-0123456789");
    rejected_up_front(
        &mut env,
        &pod,
        "docker",
        &objects(&[
            ONE,
            "objectName: s1\nobjectType: kubernetes.io/dockerconfigjson\nobjectAlias: d",
        ]),
        &["objects[1].objectType", "secret, key, cert"],
        &["dockerconfigjson"],
    )
    .await;
    rejected_up_front(
        &mut env,
        &pod,
        "plural",
        &objects(&[ONE, "objectName: s1\nobjectType: secrets\nobjectAlias: p"]),
        &["objects[1].objectType", "secret, key, cert"],
        &[],
    )
    .await;
    let err = rejected_up_front(
        &mut env,
        &pod,
        "empty",
        &objects(&[ONE, "objectName: s1\nobjectType: \"\"\nobjectAlias: e"]),
        &["objects[1].objectType"],
        &[],
    )
    .await;
    assert!(err.message().contains("empty"), "{}", err.message());
    rejected_up_front(
        &mut env,
        &pod,
        "missing",
        &objects(&[ONE, "objectName: s1\nobjectAlias: m"]),
        &["objects[1].objectType"],
        &[],
    )
    .await;

    // Other spellings of the three types are accepted by the grammar
    // (whatever this build then does with keys and certificates, it is not
    // an objectType error).
    for (i, t) in ["CERT", "kEy"].iter().enumerate() {
        let err = publish(
            &mut env,
            &pod,
            &format!("typed{i}"),
            &objects(&[&format!("objectName: s1\nobjectType: {t}")]),
        )
        .await
        .expect_err("no such key or certificate");
        assert!(
            !(err.code() == Code::InvalidArgument && err.message().contains("objectType")),
            "{t} rejected as a type: {err:?}"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c12_secret_type_is_case_insensitive() {
    if !privileged_or_skip("c12_secret_type_is_case_insensitive") {
        return;
    }
    let (mut env, pod) = setup("uid-c12-ok").await;
    env.secret(VAULT, "s1", "c12-value-0123456789");
    let target = publish(
        &mut env,
        &pod,
        "secrets",
        &objects(&[
            "objectName: s1\nobjectType: Secret",
            "objectName: s1\nobjectType: SECRET\nobjectAlias: upper",
        ]),
    )
    .await
    .expect("Secret is secret");
    assert_eq!(read(&target.join("s1")), b"c12-value-0123456789");
    assert_eq!(read(&target.join("upper")), b"c12-value-0123456789");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

// ---- Values ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c29_missing_object_is_not_found_naming_it_and_writes_nothing() {
    let (mut env, pod) = setup("uid-c29").await;
    env.secret(VAULT, "s1", "c29-value-0123456789");
    let err = bounded(publish(
        &mut env,
        &pod,
        "secrets",
        &objects(&[ONE, "objectName: does-not-exist\nobjectType: secret"]),
    ))
    .await
    .expect_err("missing object");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let msg = err.message();
    assert!(msg.contains("does-not-exist"), "{msg}");
    assert!(msg.contains("objects[1]"), "{msg}");
    assert!(msg.contains(VAULT), "{msg}");
    assert!(!msg.contains("c29-value"), "{msg}");
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "secrets"));

    // The same kind: a pinned version that does not exist, with and without
    // version history.
    for (volume, extra) in [
        ("pinned", ""),
        ("pinned-history", "\nobjectVersionHistory: 2"),
    ] {
        let err = bounded(publish(
            &mut env,
            &pod,
            volume,
            &objects(&[&format!(
                "objectName: s1\nobjectType: secret\nobjectVersion: 0123456789abcdef0123456789abcdef{extra}"
            )]),
        ))
        .await
        .expect_err("missing version");
        assert_eq!(err.code(), Code::NotFound, "{volume}: {err:?}");
        assert!(err.message().contains("s1"), "{}", err.message());
        assert!(err.message().contains(VAULT), "{}", err.message());
        assert_nothing_at(&env.kubelet.target_path(&pod.uid, volume));
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c29_value_null_is_written_as_is() {
    if !privileged_or_skip("c29_value_null_is_written_as_is") {
        return;
    }
    let (mut env, pod) = setup("uid-c29-null").await;
    env.secret(VAULT, "s-null", "null");
    env.secret(VAULT, "s-true", "true");
    env.secret(VAULT, "s-num", "0400");
    let target = publish(
        &mut env,
        &pod,
        "secrets",
        &objects(&[
            "objectName: s-null\nobjectType: secret",
            "objectName: s-true\nobjectType: secret",
            "objectName: s-num\nobjectType: secret",
        ]),
    )
    .await
    .expect("publish");
    assert_eq!(read(&target.join("s-null")), b"null");
    assert_eq!(read(&target.join("s-true")), b"true");
    assert_eq!(read(&target.join("s-num")), b"0400");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c30_values_are_written_byte_for_byte() {
    if !privileged_or_skip("c30_values_are_written_byte_for_byte") {
        return;
    }
    let (mut env, pod) = setup("uid-c30").await;
    let cases: [(&str, &str, &str, &[u8]); 10] = [
        ("s-lf", "abc\n", "", b"abc\n"),
        ("s-plain", "abc", "", b"abc"),
        ("s-crlf", "a\r\nb\r\n", "", b"a\r\nb\r\n"),
        ("s-backslash-n", "a\\nb", "", b"a\\nb"),
        ("s-spaces", "  padded\t \n\n", "", b"  padded\t \n\n"),
        ("s-ff-fe", "//4=", "\nobjectEncoding: base64", &[0xff, 0xfe]),
        (
            "s-hex",
            "00ff0a0d",
            "\nobjectEncoding: hex",
            &[0x00, 0xff, 0x0a, 0x0d],
        ),
        ("s-bom", "\u{feff}abc", "", b"\xef\xbb\xbfabc"),
        ("s-cr", "abc\r", "", b"abc\r"),
        ("s-nul", "a\0b", "", b"a\0b"),
    ];
    let mut items = Vec::new();
    for (name, stored, extra, _) in &cases {
        env.secret(VAULT, name, stored);
        items.push(format!("objectName: {name}\nobjectType: secret{extra}"));
    }
    let items: Vec<&str> = items.iter().map(String::as_str).collect();
    let target = publish(&mut env, &pod, "secrets", &objects(&items))
        .await
        .expect("publish");
    for (name, _, _, want) in &cases {
        assert_eq!(read(&target.join(name)), *want, "{name}");
    }
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

// ---- Idempotency and cleanup ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c32_republish_is_idempotent_and_other_attributes_are_already_exists() {
    if !privileged_or_skip("c32_republish_is_idempotent_and_other_attributes_are_already_exists") {
        return;
    }
    let (mut env, pod) = setup("uid-c32").await;
    env.secret(VAULT, "s1", "c32-value-0123456789");
    let yaml = objects(&[ONE]);
    let target = publish(&mut env, &pod, "secrets", &yaml)
        .await
        .expect("first publish");
    assert_eq!(mounts_at(&target).len(), 1);
    let data = std::fs::read_link(target.join("..data")).expect("..data");

    // The same call again: OK, still exactly one tmpfs.
    publish(&mut env, &pod, "secrets", &yaml)
        .await
        .expect("second publish");
    let mounts = mounts_at(&target);
    assert_eq!(mounts.len(), 1, "a second mount: {mounts:?}");
    assert_eq!(mounts[0].fs_type, "tmpfs");
    assert_eq!(read(&target.join("s1")), b"c32-value-0123456789");

    // Kubelet refreshed the service-account token: the same volume.
    let refreshed = env.refresh_token(CLIENT, &pod);
    assert_ne!(refreshed.token, pod.token);
    publish(&mut env, &refreshed, "secrets", &yaml)
        .await
        .expect("a refreshed token is not a difference");
    assert_eq!(mounts_at(&target).len(), 1);
    assert_eq!(
        std::fs::read_link(target.join("..data")).expect("..data"),
        data
    );

    // Other attributes at the same target: ALREADY_EXISTS, volume intact.
    let other = objects(&["objectName: s1\nobjectType: secret\nfilePermission: \"0400\""]);
    let err = publish(&mut env, &pod, "secrets", &other)
        .await
        .expect_err("different attributes");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    // Another capability too.
    let mut req = env.kubelet.publish_request(
        &pod,
        "secrets",
        &attrs(VAULT, Some(CLIENT), &yaml),
        &HashMap::new(),
    );
    if let Some(cap) = req.volume_capability.as_mut() {
        cap.access_mode = Some(csi_proto::v1::volume_capability::AccessMode {
            mode: csi_proto::v1::volume_capability::access_mode::Mode::SingleNodeReaderOnly as i32,
        });
    }
    let err = env
        .kubelet
        .send_publish(req)
        .await
        .expect_err("different capability");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert_eq!(mounts_at(&target).len(), 1);
    assert_eq!(read(&target.join("s1")), b"c32-value-0123456789");

    // One unpublish removes everything.
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    assert!(mounts_at(&target).is_empty());
    assert!(!is_mounted(&target));
    assert!(std::fs::symlink_metadata(&target).is_err());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c32_republish_with_a_rotated_node_publish_secret_is_ok() {
    if !privileged_or_skip("c32_republish_with_a_rotated_node_publish_secret_is_ok") {
        return;
    }
    let mut env = Env::start().await;
    let sp = "5b5b5b5b-0000-1111-2222-333333333333";
    env.vault(VAULT, &[sp]);
    env.secret(VAULT, "s1", "c32-sp-value-0123456789");
    let secrets = env.sp_secrets(sp);
    let pod = Pod {
        name: "pod-c32-sp".into(),
        namespace: "team-b".into(),
        uid: "uid-c32-sp".into(),
        service_account: "default".into(),
        token: None,
    };
    let a = attrs(VAULT, None, &objects(&[ONE]));
    let target = env
        .kubelet
        .publish(&pod, "secrets", &a, &secrets)
        .await
        .expect("publish");
    // The secret behind nodePublishSecretRef is rotated.
    let rotated = canary("client-secret-rotated");
    env.watched.push(rotated.clone());
    env.emulator.state().add_client(ClientSpec {
        client_id: sp.into(),
        tenant_id: Some(TENANT.into()),
        secret: Some(rotated.clone()),
        federated_tokens: vec![],
    });
    let mut new_secrets = secrets.clone();
    new_secrets.insert("clientsecret".into(), rotated);
    env.kubelet
        .publish(&pod, "secrets", &a, &new_secrets)
        .await
        .expect("a rotated secret is not a difference");
    assert_eq!(mounts_at(&target).len(), 1);
    assert_eq!(read(&target.join("s1")), b"c32-sp-value-0123456789");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    assert!(!target.exists());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c33_unpublish_of_a_never_published_target_is_ok() {
    let (mut env, pod) = setup("uid-c33-never").await;
    let target = env.kubelet.target_path(&pod.uid, "secrets");
    // Neither the target nor its parent exists.
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unknown volume");
    // The parent exists, the target does not.
    std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unknown volume");
    assert!(!target.exists());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c33_unpublish_twice_is_ok() {
    if !privileged_or_skip("c33_unpublish_twice_is_ok") {
        return;
    }
    let (mut env, pod) = setup("uid-c33-twice").await;
    env.secret(VAULT, "s1", "c33-value-0123456789");
    let target = publish(&mut env, &pod, "secrets", &objects(&[ONE]))
        .await
        .expect("publish");
    assert!(is_tmpfs(&target));
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
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c33_unpublish_of_a_plain_dir_empties_it_without_following_links() {
    let (mut env, pod) = setup("uid-c33-dir").await;
    let outside = env.base_dir().join("outside");
    std::fs::create_dir_all(outside.join("deep")).expect("mkdir");
    std::fs::write(outside.join("sentinel"), b"sentinel bytes").expect("write");
    std::fs::write(outside.join("deep/file"), b"deep bytes").expect("write");

    let target = env.kubelet.target_path(&pod.uid, "secrets");
    std::fs::create_dir_all(target.join("sub/nested")).expect("mkdir");
    std::fs::create_dir_all(target.join("..2026_01_01_00_00_00.000000001")).expect("mkdir");
    std::fs::write(target.join("file"), b"leftover").expect("write");
    std::fs::write(target.join("sub/nested/f"), b"leftover").expect("write");
    std::fs::write(
        target.join("..2026_01_01_00_00_00.000000001/s1"),
        b"old payload",
    )
    .expect("write");
    let symlink = |dest: &Path, at: &str| {
        std::os::unix::fs::symlink(dest, target.join(at)).expect("symlink");
    };
    symlink(&outside.join("sentinel"), "evil");
    symlink(&outside, "evil-dir");
    symlink(&outside, "..data");
    symlink(&outside.join("sentinel"), "sub/evil");

    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("a plain dir at the target");
    assert!(std::fs::symlink_metadata(&target).is_err(), "not removed");
    assert_eq!(read(&outside.join("sentinel")), b"sentinel bytes");
    assert_eq!(read(&outside.join("deep/file")), b"deep bytes");
    assert_eq!(
        tree(&outside),
        ["deep/", "deep/file", "sentinel"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    env.stop().await;
}

// ---- Key Vault behaviour and auth ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c47_unresolvable_vault_host_is_unavailable_naming_the_vault() {
    let (mut env, pod) = setup_with("uid-c47-dns", |c| {
        c.keyvault_dns_suffix = Some("vault.invalid".into())
    })
    .await;
    let err = bounded(publish(&mut env, &pod, "secrets", &objects(&[ONE])))
        .await
        .expect_err("no such host");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let msg = err.message();
    assert!(msg.contains(VAULT), "{msg}");
    assert!(msg.contains("resolve"), "{msg}");
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "secrets"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c47_unknown_vault_is_not_found_naming_the_vault() {
    let (mut env, pod) = setup("uid-c47-404").await;
    let a = attrs("kv-does-not-exist", Some(CLIENT), &objects(&[ONE]));
    let err = bounded(env.kubelet.publish(&pod, "secrets", &a, &HashMap::new()))
        .await
        .expect_err("unknown vault");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let msg = err.message();
    assert!(msg.contains("kv-does-not-exist"), "{msg}");
    assert!(msg.contains("not found"), "{msg}");
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "secrets"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c47_rejected_client_secret_is_unauthenticated_naming_the_vault() {
    let mut env = Env::start().await;
    let sp = "5c5c5c5c-0000-1111-2222-333333333333";
    env.vault(VAULT, &[sp]);
    env.secret(VAULT, "s1", "c47-value-0123456789");
    let mut secrets = env.sp_secrets(sp);
    let registered = secrets.get("clientsecret").cloned().unwrap_or_default();
    let wrong = canary("wrong-client-secret");
    env.watched.push(wrong.clone());
    secrets.insert("clientsecret".into(), wrong.clone());
    let pod = Pod {
        name: "pod-c47-401".into(),
        namespace: "team-b".into(),
        uid: "uid-c47-401".into(),
        service_account: "default".into(),
        token: None,
    };
    let a = attrs(VAULT, None, &objects(&[ONE]));
    let err = bounded(env.kubelet.publish(&pod, "secrets", &a, &secrets))
        .await
        .expect_err("wrong secret");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let msg = err.message();
    assert!(msg.contains(VAULT), "{msg}");
    assert!(msg.contains("AADSTS"), "the cause: {msg}");
    assert!(!msg.contains(&wrong) && !msg.contains(&registered), "{msg}");
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "secrets"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c47_key_vault_401_to_a_token_is_unauthenticated_naming_the_vault() {
    if !privileged_or_skip("c47_key_vault_401_to_a_token_is_unauthenticated_naming_the_vault") {
        return;
    }
    let (mut env, pod) = setup("uid-c47-kv401").await;
    env.secret(VAULT, "s1", "c47-value-0123456789");
    env.secret(VAULT, "s2", "c47-other-0123456789");
    // A first volume makes the daemon hold an access token.
    publish(&mut env, &pod, "first", &objects(&[ONE]))
        .await
        .expect("publish");
    // Key Vault stops accepting it.
    env.emulator.state().revoke_tokens();
    let err = bounded(publish(
        &mut env,
        &pod,
        "second",
        // Not s1: that one is held by the first volume and shared from the
        // cache; s2 must be fetched.
        &objects(&["objectName: s2\nobjectType: secret"]),
    ))
    .await
    .expect_err("Key Vault rejects the token");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let msg = err.message();
    assert!(msg.contains(VAULT), "{msg}");
    assert!(msg.contains("401"), "the cause: {msg}");
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "second"));
    // The first volume is untouched by the failure.
    let first = env.kubelet.target_path(&pod.uid, "first");
    assert_eq!(read(&first.join("s1")), b"c47-value-0123456789");
    env.kubelet
        .unpublish(&pod.uid, "first")
        .await
        .expect("unpublish");
    env.kubelet
        .unpublish(&pod.uid, "second")
        .await
        .expect("unpublish of the never-published volume");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c47_forbidden_is_permission_denied_naming_the_vault() {
    let mut env = Env::start().await;
    env.vault(VAULT, &["someone-else"]);
    env.secret(VAULT, "s1", "c47-value-0123456789");
    let pod = env.wi_pod(CLIENT, "team-a", "uid-c47-403");
    let err = bounded(publish(&mut env, &pod, "secrets", &objects(&[ONE])))
        .await
        .expect_err("forbidden");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let msg = err.message();
    assert!(msg.contains(VAULT), "{msg}");
    assert!(msg.contains("denied"), "the cause: {msg}");
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "secrets"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c49_bogus_cloud_name_lists_the_valid_names() {
    let (mut env, pod) = setup("uid-c49-bogus").await;
    env.secret(VAULT, "s1", "c49-value-0123456789");
    let mut a = attrs(VAULT, Some(CLIENT), &objects(&[ONE]));
    a.insert("cloudName".into(), "AzureMoonCloud".into());
    let err = env
        .kubelet
        .publish(&pod, "secrets", &a, &HashMap::new())
        .await
        .expect_err("bogus cloud");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let msg = err.message();
    for name in [
        "cloudName",
        "AzurePublicCloud",
        "AzureChinaCloud",
        "AzureUSGovernmentCloud",
    ] {
        assert!(msg.contains(name), "{name}: {msg}");
    }
    assert!(!msg.contains("AzureMoonCloud"), "{msg}");
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "secrets"));
    let c = env.emulator.state().counters();
    assert_eq!((c.total, c.token_requests), (0, 0));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c49_sovereign_clouds_work_with_the_dns_suffix_override() {
    if !privileged_or_skip("c49_sovereign_clouds_work_with_the_dns_suffix_override") {
        return;
    }
    let (mut env, pod) = setup("uid-c49").await;
    env.secret(VAULT, "s1", "c49-value-0123456789");
    for (volume, cloud) in [
        ("china", "AzureChinaCloud"),
        ("usgov", "AzureUSGovernmentCloud"),
        ("lower", "azurechinacloud"),
        ("public", "AzurePublicCloud"),
    ] {
        let mut a = attrs(VAULT, Some(CLIENT), &objects(&[ONE]));
        a.insert("cloudName".into(), cloud.into());
        let target = env
            .kubelet
            .publish(&pod, volume, &a, &HashMap::new())
            .await
            .unwrap_or_else(|e| panic!("{cloud}: {e:?}"));
        assert_eq!(read(&target.join("s1")), b"c49-value-0123456789", "{cloud}");
        env.kubelet
            .unpublish(&pod.uid, volume)
            .await
            .expect("unpublish");
    }
    // Every fetch went to the emulator's vault (host + port of the override).
    let c = env.emulator.state().counters();
    assert_eq!(
        c.per_object.get(&format!("{VAULT}/secrets/s1")),
        Some(&4),
        "{c:?}"
    );
    env.stop().await;
}

// ---- The emulator matches Key Vault ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e27_latest_version_wins() {
    if !privileged_or_skip("e27_latest_version_wins") {
        return;
    }
    let (mut env, pod) = setup("uid-e27").await;
    let first = env.secret(VAULT, "s1", "e27-first-0123456789");
    let second = env.secret(VAULT, "s1", "e27-second-0123456789");
    assert_ne!(first, second);
    assert_eq!(
        env.emulator
            .state()
            .secret_versions(VAULT, "s1")
            .expect("versions"),
        vec![first, second]
    );
    let target = publish(&mut env, &pod, "secrets", &objects(&[ONE]))
        .await
        .expect("publish");
    assert_eq!(read(&target.join("s1")), b"e27-second-0123456789");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e50_publish_passes_the_sdk_challenge_check_on_vault_localhost() {
    if !privileged_or_skip("e50_publish_passes_the_sdk_challenge_check_on_vault_localhost") {
        return;
    }
    let (mut env, pod) = setup("uid-e50").await;
    assert!(
        env.emulator.dns_suffix().starts_with("vault.localhost:"),
        "{}",
        env.emulator.dns_suffix()
    );
    env.secret(VAULT, "s1", "e50-value-0123456789");
    let target = publish(&mut env, &pod, "secrets", &objects(&[ONE]))
        .await
        .expect("publish with challenge verification on");
    assert_eq!(read(&target.join("s1")), b"e50-value-0123456789");
    let c = env.emulator.state().counters();
    let authorised: u64 = c.per_object.values().sum();
    assert_eq!(authorised, 1, "{c:?}");
    // The SDK first sent the request without a token and got the 401
    // challenge, which is counted in `total` but not per object.
    assert!(
        c.total > authorised,
        "no unauthenticated challenge probe: {c:?}"
    );
    assert_eq!(c.per_client.get(CLIENT), Some(&1), "{c:?}");
    assert!(c.token_requests >= 1, "{c:?}");
    env.kubelet
        .unpublish(&pod.uid, "secrets")
        .await
        .expect("unpublish");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c47_refused_connection_is_unavailable_naming_the_vault() {
    // Port 1 on loopback: nothing listens there.
    let (mut env, pod) = setup_with("uid-c47-refused", |c| {
        c.keyvault_dns_suffix = Some("vault.localhost:1".into());
    })
    .await;
    let err = bounded(publish(&mut env, &pod, "secrets", &objects(&[ONE])))
        .await
        .expect_err("connection refused");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains(VAULT), "{}", err.message());
    assert!(err.message().contains("refused"), "{}", err.message());
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "secrets"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c47_untrusted_certificate_is_unavailable_naming_the_vault() {
    // Without --extra-ca-file the emulator's certificate is not trusted.
    let (mut env, pod) = setup_with("uid-c47-tls", |c| c.extra_ca_file = None).await;
    let err = bounded(publish(&mut env, &pod, "secrets", &objects(&[ONE])))
        .await
        .expect_err("untrusted certificate");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains(VAULT), "{}", err.message());
    assert!(err.message().contains("TLS"), "{}", err.message());
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "secrets"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c47_server_errors_and_throttling_after_retries_are_unavailable_naming_the_vault() {
    let (mut env, pod) = setup("uid-c47-5xx").await;
    env.secret(VAULT, "s1", "c47-value-0123456789");
    for (volume, status) in [("s503", 503), ("s429", 429)] {
        env.emulator.state().clear_faults();
        env.emulator.state().inject_fault(keyvault_emulator::Fault {
            path_prefix: "/secrets/".into(),
            vault: Some(VAULT.into()),
            status,
            retry_after_secs: None,
            delay_ms: None,
            count: 1000,
        });
        env.emulator.state().reset_counters();
        let started = std::time::Instant::now();
        let err = bounded(publish(&mut env, &pod, volume, &objects(&[ONE])))
            .await
            .expect_err("the vault keeps failing");
        let took = started.elapsed();
        assert_eq!(err.code(), Code::Unavailable, "{status}: {err:?}");
        assert!(err.message().contains(VAULT), "{}", err.message());
        assert!(
            err.message().contains(&status.to_string()),
            "names the status: {}",
            err.message()
        );
        assert!(
            err.message().contains("retries gave up"),
            "{}",
            err.message()
        );
        // Five tries with jittered backoff (at most 0.2 + 0.4 + 0.8 + 1.6 s
        // of waiting), well before the 60 s --publish-timeout.
        let c = env.emulator.state().counters();
        assert_eq!(
            c.per_object.get(&format!("{VAULT}/secrets/s1")),
            Some(&5),
            "{c:?}"
        );
        assert!(took < Duration::from_secs(10), "{status}: {took:?}");
        assert_nothing_at(&env.kubelet.target_path(&pod.uid, volume));
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c47_unknown_client_is_unauthenticated_naming_the_vault() {
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "c47-value-0123456789");
    let token = canary("unregistered-token");
    env.watched.push(token.clone());
    // The client id is known to no tenant.
    let pod = Pod {
        name: "pod-c47-unknown".into(),
        namespace: "team-a".into(),
        uid: "uid-c47-unknown".into(),
        service_account: "app".into(),
        token: Some(token.clone()),
    };
    let err = bounded(publish(&mut env, &pod, "secrets", &objects(&[ONE])))
        .await
        .expect_err("unknown client");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let msg = err.message();
    assert!(msg.contains(VAULT), "{msg}");
    assert!(msg.contains("AADSTS"), "{msg}");
    assert!(!msg.contains(&token), "{msg}");
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "secrets"));
    env.stop().await;
}
