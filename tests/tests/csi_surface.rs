//! The CSI surface, as csi-sanity's node checks exercise it (ported: the Go
//! tool cannot be built here), plus the socket contract of DESIGN §3.
//!
//! Requests that must fail are sent with the raw tonic clients so that the
//! simulator does not create directories for them.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

use csi_proto::v1::controller_client::ControllerClient;
use csi_proto::v1::controller_service_capability::rpc::Type as ControllerRpcType;
use csi_proto::v1::node_service_capability::rpc::Type as NodeRpcType;
use csi_proto::v1::plugin_capability::service::Type as ServiceType;
use csi_proto::v1::volume_capability::access_mode::Mode;
use csi_proto::v1::volume_capability::{AccessMode, AccessType, BlockVolume};
use csi_proto::v1::{
    ControllerGetCapabilitiesRequest, GetPluginCapabilitiesRequest, GetPluginInfoRequest,
    NodeExpandVolumeRequest, NodeGetCapabilitiesRequest, NodeGetInfoRequest,
    NodeGetVolumeStatsRequest, NodePublishVolumeRequest, NodeStageVolumeRequest,
    NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest, ProbeRequest,
};
use keyvault_emulator::{Emulator, EmulatorConfig};
use tonic::Code;
use vaultlet::demo::kubelet::{Kubelet, Pod, connect_uds};
use vaultlet_tests::{Env, assert_nothing_at, attrs, objects, test_config};

const VAULT: &str = "kv-surface";
const CLIENT: &str = "11111111-2222-3333-4444-555555555555";

/// A started env with a vault, one secret and a workload-identity pod.
async fn env_with_pod(uid: &str) -> (Env, Pod) {
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    env.secret(VAULT, "s1", "surface-value-0123456789");
    let pod = env.wi_pod(CLIENT, "team-a", uid);
    (env, pod)
}

fn one_secret() -> HashMap<String, String> {
    attrs(
        VAULT,
        Some(CLIENT),
        &objects(&["objectName: s1\nobjectType: secret"]),
    )
}

/// Sends `req` with the raw node client (no directory is created) and
/// returns the error status; panics on success.
async fn publish_err(env: &Env, req: NodePublishVolumeRequest) -> tonic::Status {
    let mut node = env.kubelet.node.clone();
    match node.node_publish_volume(req).await {
        Ok(_) => panic!("publish unexpectedly succeeded"),
        Err(s) => s,
    }
}

async fn unpublish_status(env: &Env, volume_id: &str, target_path: &str) -> tonic::Status {
    let mut node = env.kubelet.node.clone();
    match node
        .node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: volume_id.into(),
            target_path: target_path.into(),
        })
        .await
    {
        Ok(_) => tonic::Status::ok(""),
        Err(s) => s,
    }
}

/// Asserts the status code, that the message names `needle`, and that it
/// leaks neither the pod's token nor a marshalling/internal failure.
fn assert_status(status: &tonic::Status, code: Code, needle: &str, pod: &Pod) {
    assert_eq!(status.code(), code, "{status:?}");
    let msg = status.message();
    assert!(
        msg.contains(needle),
        "message should name {needle:?}: {msg}"
    );
    if let Some(token) = &pod.token {
        assert!(!msg.contains(token.as_str()), "message leaks the token");
    }
    for opaque in ["decode", "marshal", "protobuf", "internal error"] {
        assert!(
            !msg.to_ascii_lowercase().contains(opaque),
            "opaque message: {msg}"
        );
    }
}

/// No request to Entra ID or Key Vault has been made yet.
fn assert_no_network(env: &Env) {
    let c = env.emulator.state().counters();
    assert_eq!(
        (c.total, c.token_requests),
        (0, 0),
        "a request reached the emulator"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_without_volume_id_is_invalid_argument() {
    let (env, pod) = env_with_pod("uid-no-volume-id").await;
    let mut req = env
        .kubelet
        .publish_request(&pod, "secrets", &one_secret(), &HashMap::new());
    let target = std::path::PathBuf::from(&req.target_path);
    req.volume_id.clear();
    let s = publish_err(&env, req).await;
    assert_status(&s, Code::InvalidArgument, "volume_id", &pod);
    assert_nothing_at(&target);
    assert_no_network(&env);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_without_target_path_is_invalid_argument() {
    let (env, pod) = env_with_pod("uid-no-target").await;
    let mut req = env
        .kubelet
        .publish_request(&pod, "secrets", &one_secret(), &HashMap::new());
    req.target_path.clear();
    let s = publish_err(&env, req).await;
    assert_status(&s, Code::InvalidArgument, "target_path", &pod);
    assert_no_network(&env);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_without_volume_capability_is_invalid_argument() {
    let (env, pod) = env_with_pod("uid-no-cap").await;
    let base = env
        .kubelet
        .publish_request(&pod, "secrets", &one_secret(), &HashMap::new());
    let target = std::path::PathBuf::from(&base.target_path);

    let mut req = base.clone();
    req.volume_capability = None;
    let s = publish_err(&env, req).await;
    assert_status(&s, Code::InvalidArgument, "volume_capability", &pod);

    // A capability without an access type or without an access mode is as
    // incomplete as none at all.
    let mut req = base.clone();
    if let Some(cap) = req.volume_capability.as_mut() {
        cap.access_type = None;
    }
    let s = publish_err(&env, req).await;
    assert_status(&s, Code::InvalidArgument, "access_type", &pod);

    let mut req = base.clone();
    if let Some(cap) = req.volume_capability.as_mut() {
        cap.access_mode = None;
    }
    let s = publish_err(&env, req).await;
    assert_status(&s, Code::InvalidArgument, "access_mode", &pod);

    assert_nothing_at(&target);
    assert_no_network(&env);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish_without_volume_id_is_invalid_argument() {
    let (env, pod) = env_with_pod("uid-unpub-no-id").await;
    let target = env.kubelet.target_path(&pod.uid, "secrets");
    let s = unpublish_status(&env, "", &target.display().to_string()).await;
    assert_status(&s, Code::InvalidArgument, "volume_id", &pod);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish_without_target_path_is_invalid_argument() {
    let (env, pod) = env_with_pod("uid-unpub-no-target").await;
    let s = unpublish_status(&env, &Kubelet::volume_id(&pod.uid, "secrets"), "").await;
    assert_status(&s, Code::InvalidArgument, "target_path", &pod);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_block_access_is_invalid_argument() {
    let (env, pod) = env_with_pod("uid-block").await;
    let mut req = env
        .kubelet
        .publish_request(&pod, "secrets", &one_secret(), &HashMap::new());
    let target = std::path::PathBuf::from(&req.target_path);
    if let Some(cap) = req.volume_capability.as_mut() {
        cap.access_type = Some(AccessType::Block(BlockVolume {}));
    }
    let s = publish_err(&env, req).await;
    assert_status(&s, Code::InvalidArgument, "block", &pod);
    assert_nothing_at(&target);
    assert_no_network(&env);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_readonly_false_is_invalid_argument() {
    let (env, pod) = env_with_pod("uid-rw").await;
    let mut req = env
        .kubelet
        .publish_request(&pod, "secrets", &one_secret(), &HashMap::new());
    let target = std::path::PathBuf::from(&req.target_path);
    req.readonly = false;
    let s = publish_err(&env, req).await;
    assert_status(&s, Code::InvalidArgument, "readonly", &pod);
    assert_nothing_at(&target);
    assert_no_network(&env);
    env.stop().await;
}

/// Target paths that are not `<root>/pods/<uid>/volumes/kubernetes.io~csi/<vol>/mount`.
fn foreign_targets(env: &Env, uid: &str) -> Vec<String> {
    let root = env.root.display().to_string();
    let base = env.base_dir().display().to_string();
    vec![
        format!("{base}/elsewhere/pods/{uid}/volumes/kubernetes.io~csi/secrets/mount"),
        format!("{root}/pods/{uid}/volumes/kubernetes.io~empty-dir/secrets/mount"),
        format!("{root}/pods/{uid}/volumes/kubernetes.io~csi/secrets/mount/extra"),
        format!("{root}/pods/{uid}/volumes/kubernetes.io~csi/secrets"),
        format!("{root}/pods/{uid}/volumes/kubernetes.io~csi/../../../../../escape/mount"),
        format!("{root}/pods/{uid}/volumes/kubernetes.io~csi/secrets/mount/"),
        format!("{root}//pods/{uid}/volumes/kubernetes.io~csi/secrets/mount"),
        format!("{root}/pods/{uid}/volumes/kubernetes.io~csi/sec\0rets/mount"),
        format!("pods/{uid}/volumes/kubernetes.io~csi/secrets/mount"),
        "/etc".to_string(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_outside_the_kubelet_target_shape_is_invalid_argument() {
    let (env, pod) = env_with_pod("uid-shape").await;
    let before = vaultlet_tests::tree(env.base_dir());
    for target in foreign_targets(&env, &pod.uid) {
        let mut req = env
            .kubelet
            .publish_request(&pod, "secrets", &one_secret(), &HashMap::new());
        req.target_path = target.clone();
        let s = publish_err(&env, req).await;
        assert_eq!(s.code(), Code::InvalidArgument, "{target:?}: {s:?}");
        assert_status(&s, Code::InvalidArgument, "target_path", &pod);
    }
    assert_eq!(
        vaultlet_tests::tree(env.base_dir()),
        before,
        "a rejected publish created files"
    );
    assert_no_network(&env);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish_outside_the_kubelet_target_shape_is_invalid_argument_and_touches_nothing() {
    let (env, pod) = env_with_pod("uid-unpub-shape").await;
    // A real directory with content at the first foreign path: a buggy
    // unpublish would empty and remove it.
    let foreign = env.base_dir().join(format!(
        "elsewhere/pods/{}/volumes/kubernetes.io~csi/secrets/mount",
        pod.uid
    ));
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("keep"), b"keep me").expect("write");
    let before = vaultlet_tests::tree(env.base_dir());
    for target in foreign_targets(&env, &pod.uid) {
        let s = unpublish_status(&env, &Kubelet::volume_id(&pod.uid, "secrets"), &target).await;
        assert_eq!(s.code(), Code::InvalidArgument, "{target:?}: {s:?}");
        assert_status(&s, Code::InvalidArgument, "target_path", &pod);
    }
    assert_eq!(vaultlet_tests::tree(env.base_dir()), before);
    assert_eq!(
        std::fs::read(foreign.join("keep")).expect("kept"),
        b"keep me"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_without_pod_namespace_or_uid_is_invalid_argument() {
    let (env, pod) = env_with_pod("uid-no-pod-info").await;
    for key in [
        "csi.storage.k8s.io/pod.namespace",
        "csi.storage.k8s.io/pod.uid",
    ] {
        for empty_instead in [false, true] {
            let mut req =
                env.kubelet
                    .publish_request(&pod, "secrets", &one_secret(), &HashMap::new());
            if empty_instead {
                req.volume_context.insert(key.into(), String::new());
            } else {
                req.volume_context.remove(key);
            }
            let target = std::path::PathBuf::from(&req.target_path);
            let s = publish_err(&env, req).await;
            assert_status(&s, Code::InvalidArgument, key, &pod);
            assert_nothing_at(&target);
        }
    }
    assert_no_network(&env);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_whose_target_uid_differs_from_pod_uid_is_invalid_argument() {
    let (env, pod) = env_with_pod("uid-real").await;
    let mut req = env
        .kubelet
        .publish_request(&pod, "secrets", &one_secret(), &HashMap::new());
    req.target_path = env
        .kubelet
        .target_path("uid-other", "secrets")
        .display()
        .to_string();
    let target = std::path::PathBuf::from(&req.target_path);
    let s = publish_err(&env, req).await;
    assert_status(&s, Code::InvalidArgument, "pod.uid", &pod);
    assert_nothing_at(&target);
    assert_no_network(&env);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_plugin_info_returns_the_driver_name_and_crate_version() {
    let env = Env::start().await;
    let info = env
        .kubelet
        .identity
        .clone()
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .expect("GetPluginInfo")
        .into_inner();
    assert_eq!(info.name, "csi.vaultlet.dev");
    // Every crate of the workspace inherits the workspace version, so this
    // crate's version is vaultlet's.
    assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));
    assert!(!info.vendor_version.is_empty());
    env.stop().await;
}

/// CSI GetPluginInfo: the name is at most 63 characters, begins and ends
/// with an alphanumeric, and has only alphanumerics, `-` and `.` between.
fn obeys_plugin_name_rules(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_name_obeys_the_csi_name_rules() {
    // The checker itself must be able to say no.
    for bad in [
        "",
        "-csi.vaultlet.dev",
        "csi.vaultlet.dev.",
        "a b",
        &"a".repeat(64),
    ] {
        assert!(!obeys_plugin_name_rules(bad), "{bad:?}");
    }
    let env = Env::start().await;
    let name = env
        .kubelet
        .identity
        .clone()
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .expect("GetPluginInfo")
        .into_inner()
        .name;
    assert!(obeys_plugin_name_rules(&name), "{name:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_name_flag_overrides_the_plugin_name() {
    let env = Env::start_with(|c| c.driver_name = "secrets-store.csi.k8s.io".into()).await;
    let info = env
        .kubelet
        .identity
        .clone()
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .expect("GetPluginInfo")
        .into_inner();
    assert_eq!(info.name, "secrets-store.csi.k8s.io");
    assert!(obeys_plugin_name_rules(&info.name));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_capabilities_do_not_advertise_a_controller() {
    let env = Env::start().await;
    let caps = env
        .kubelet
        .identity
        .clone()
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .expect("GetPluginCapabilities")
        .into_inner()
        .capabilities;
    use csi_proto::v1::plugin_capability::Type as CapType;
    for cap in &caps {
        if let Some(CapType::Service(s)) = &cap.r#type {
            assert_ne!(
                s.r#type,
                ServiceType::ControllerService as i32,
                "CONTROLLER_SERVICE advertised by a node-only driver"
            );
            assert_ne!(s.r#type, ServiceType::GroupControllerService as i32);
        }
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_get_capabilities_answers_exactly_one_unknown_capability() {
    let env = Env::start().await;
    let channel = connect_uds(&env.socket).await.expect("connect");
    let caps = ControllerClient::new(channel)
        .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
        .await
        .expect("ControllerGetCapabilities")
        .into_inner()
        .capabilities;
    assert_eq!(caps.len(), 1, "{caps:?}");
    use csi_proto::v1::controller_service_capability::Type as CapType;
    match &caps[0].r#type {
        Some(CapType::Rpc(rpc)) => assert_eq!(rpc.r#type, ControllerRpcType::Unknown as i32),
        other => panic!("expected an RPC capability, got {other:?}"),
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_is_ready() {
    let env = Env::start().await;
    let probe = env
        .kubelet
        .identity
        .clone()
        .probe(ProbeRequest {})
        .await
        .expect("Probe")
        .into_inner();
    assert_eq!(probe.ready, Some(true));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_get_info_returns_the_node_id() {
    let env = Env::start_with(|c| c.node_id = "node-7.example".into()).await;
    let info = env
        .kubelet
        .node
        .clone()
        .node_get_info(NodeGetInfoRequest {})
        .await
        .expect("NodeGetInfo")
        .into_inner();
    assert_eq!(info.node_id, "node-7.example");
    assert!(info.max_volumes_per_node >= 0);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_get_capabilities_answers_without_stage_unstage() {
    let env = Env::start().await;
    let caps = env
        .kubelet
        .node
        .clone()
        .node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await
        .expect("NodeGetCapabilities")
        .into_inner()
        .capabilities;
    use csi_proto::v1::node_service_capability::Type as CapType;
    for cap in &caps {
        if let Some(CapType::Rpc(rpc)) = &cap.r#type {
            // Advertising any of these would make kubelet/csi-sanity call
            // RPCs that answer UNIMPLEMENTED.
            for unimplemented in [
                NodeRpcType::StageUnstageVolume,
                NodeRpcType::GetVolumeStats,
                NodeRpcType::ExpandVolume,
            ] {
                assert_ne!(rpc.r#type, unimplemented as i32, "{caps:?}");
            }
        }
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_stage_and_other_unadvertised_rpcs_are_unimplemented() {
    let env = Env::start().await;
    let mut node = env.kubelet.node.clone();
    let stage = node
        .node_stage_volume(NodeStageVolumeRequest {
            volume_id: "v".into(),
            staging_target_path: "/tmp/stage".into(),
            ..Default::default()
        })
        .await
        .expect_err("NodeStageVolume");
    assert_eq!(stage.code(), Code::Unimplemented, "{stage:?}");
    let unstage = node
        .node_unstage_volume(NodeUnstageVolumeRequest {
            volume_id: "v".into(),
            staging_target_path: "/tmp/stage".into(),
        })
        .await
        .expect_err("NodeUnstageVolume");
    assert_eq!(unstage.code(), Code::Unimplemented, "{unstage:?}");
    let stats = node
        .node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: "v".into(),
            volume_path: "/tmp/v".into(),
            ..Default::default()
        })
        .await
        .expect_err("NodeGetVolumeStats");
    assert_eq!(stats.code(), Code::Unimplemented, "{stats:?}");
    let expand = node
        .node_expand_volume(NodeExpandVolumeRequest {
            volume_id: "v".into(),
            volume_path: "/tmp/v".into(),
            ..Default::default()
        })
        .await
        .expect_err("NodeExpandVolume");
    assert_eq!(expand.code(), Code::Unimplemented, "{expand:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c48_invalid_requests_get_specific_codes_never_marshalling_errors() {
    let (env, pod) = env_with_pod("uid-c48").await;
    let good = env
        .kubelet
        .publish_request(&pod, "secrets", &one_secret(), &HashMap::new());
    let with_ctx = |key: &str, value: &str| {
        let mut r = good.clone();
        r.volume_context.insert(key.into(), value.into());
        r
    };
    let without_ctx = |key: &str| {
        let mut r = good.clone();
        r.volume_context.remove(key);
        r
    };
    let mut unknown_mode = good.clone();
    if let Some(cap) = unknown_mode.volume_capability.as_mut() {
        cap.access_mode = Some(AccessMode { mode: 99 });
    }
    let mut mode_zero = good.clone();
    if let Some(cap) = mode_zero.volume_capability.as_mut() {
        cap.access_mode = Some(AccessMode {
            mode: Mode::Unknown as i32,
        });
    }
    let cases: Vec<(&str, NodePublishVolumeRequest, &str)> = vec![
        (
            "empty request",
            NodePublishVolumeRequest::default(),
            "volume_id",
        ),
        ("unknown access mode 99", unknown_mode, "access_mode"),
        ("access mode UNKNOWN", mode_zero, "access_mode"),
        (
            "no keyvaultName",
            without_ctx("keyvaultName"),
            "keyvaultName",
        ),
        (
            "bad keyvaultName",
            with_ctx("keyvaultName", "kv_bad!"),
            "keyvaultName",
        ),
        ("no tenantId", without_ctx("tenantId"), "tenantId"),
        (
            "bad tenantId",
            with_ctx("tenantId", "not a tenant"),
            "tenantId",
        ),
        ("no objects", without_ctx("objects"), "objects"),
        (
            "objects not YAML",
            with_ctx("objects", "{{{{ ]]"),
            "objects",
        ),
        (
            "objects a scalar",
            with_ctx("objects", "just text"),
            "objects",
        ),
        (
            "unknown attribute",
            with_ctx("keyvaultname2", "x"),
            "keyvaultname2",
        ),
        (
            "bad backend",
            with_ctx("vaultlet.dev/backend", "nfs"),
            "vaultlet.dev/backend",
        ),
        (
            "bad tmpfs size",
            with_ctx("vaultlet.dev/tmpfs-size", "lots"),
            "vaultlet.dev/tmpfs-size",
        ),
        (
            "bad tokens entry",
            with_ctx(csi_proto::SERVICE_ACCOUNT_TOKENS_KEY, "not-json"),
            "serviceAccount.tokens",
        ),
    ];
    for (what, req, needle) in cases {
        let target = std::path::PathBuf::from(&req.target_path);
        let s = publish_err(&env, req).await;
        assert_eq!(s.code(), Code::InvalidArgument, "{what}: {s:?}");
        assert_status(&s, Code::InvalidArgument, needle, &pod);
        assert!(
            !s.message().contains("not-json"),
            "{what}: echoes the value"
        );
        if !target.as_os_str().is_empty() {
            assert_nothing_at(&target);
        }
    }
    assert_no_network(&env);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_is_created_with_mode_0600() {
    let env = Env::start().await;
    let meta = std::fs::symlink_metadata(&env.socket).expect("socket exists");
    assert!(meta.file_type().is_socket(), "{:?}", meta.file_type());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stale.sock");
    {
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        drop(listener);
    }
    let stale = std::fs::symlink_metadata(&path).expect("stale socket file remains");
    assert!(stale.file_type().is_socket());
    // Nobody listens on it any more.
    assert!(std::os::unix::net::UnixStream::connect(&path).is_err());

    let sock = path.clone();
    let env = Env::start_with(move |c| c.socket_path = sock).await;
    assert_eq!(env.socket, path);
    let probe = env
        .kubelet
        .identity
        .clone()
        .probe(ProbeRequest {})
        .await
        .expect("the daemon serves on the replaced socket")
        .into_inner();
    assert_eq!(probe.ready, Some(true));
    let meta = std::fs::symlink_metadata(&path).expect("socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regular_file_at_the_socket_path_is_not_replaced() {
    vaultlet_tests::logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let config = test_config(dir.path(), &emulator);
    std::fs::write(&config.socket_path, b"not a socket").expect("write");
    let socket = config.socket_path.clone();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        vaultlet::server::serve(config, std::future::pending()),
    )
    .await
    .expect("serve gives up at once");
    let err = result.expect_err("serve must refuse a non-socket file");
    assert!(
        err.to_string().contains(&socket.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read(&socket).expect("kept"), b"not a socket");
    emulator.shutdown().await;
}
