//! A kubelet simulator: a CSI client that calls the way kubelet does for an
//! inline (ephemeral) CSI volume with `podInfoOnMount` and `tokenRequests`.
//! Used by `vaultlet demo` and by the integration tests.
//!
//! - `volume_id = "csi-" + hex(sha256(pod_uid + volume_name))`;
//! - only the parent of the target path is created; the driver creates the
//!   target;
//! - a mount capability with SINGLE_NODE_WRITER, `readonly: true`;
//! - the `csi.storage.k8s.io/*` pod keys and, when the pod has a token, the
//!   `serviceAccount.tokens` entry for `api://AzureADTokenExchange`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use csi_proto::v1::identity_client::IdentityClient;
use csi_proto::v1::node_client::NodeClient;
use csi_proto::v1::volume_capability::access_mode::Mode;
use csi_proto::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use csi_proto::v1::{NodePublishVolumeRequest, NodeUnpublishVolumeRequest, VolumeCapability};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::auth::TOKEN_EXCHANGE_AUDIENCE;

/// A pod as kubelet describes it to a CSI driver.
#[derive(Clone)]
pub struct Pod {
    /// Pod name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// UID.
    pub uid: String,
    /// Service account name.
    pub service_account: String,
    /// The projected token for `api://AzureADTokenExchange`, if the CSIDriver
    /// requests one.
    pub token: Option<String>,
}

impl std::fmt::Debug for Pod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pod")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("uid", &self.uid)
            .field("service_account", &self.service_account)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// Connects a tonic channel to a unix socket.
///
/// # Errors
/// The transport error.
pub async fn connect_uds(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket = socket.to_path_buf();
    // The URI is required by tonic but unused: the connector dials the socket.
    Endpoint::from_static("http://[::1]:50051")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
}

/// The simulator.
#[derive(Debug, Clone)]
pub struct Kubelet {
    root: PathBuf,
    /// Node client.
    pub node: NodeClient<Channel>,
    /// Identity client.
    pub identity: IdentityClient<Channel>,
}

impl Kubelet {
    /// Connects to the driver socket. `root` is the kubelet root dir the
    /// driver was started with.
    ///
    /// # Errors
    /// The transport error.
    pub async fn connect(socket: &Path, root: &Path) -> Result<Self, tonic::transport::Error> {
        let channel = connect_uds(socket).await?;
        Ok(Self {
            root: root.to_path_buf(),
            node: NodeClient::new(channel.clone()),
            identity: IdentityClient::new(channel),
        })
    }

    /// Kubelet's volume id for an inline CSI volume.
    pub fn volume_id(pod_uid: &str, volume_name: &str) -> String {
        let digest = Sha256::digest(format!("{pod_uid}{volume_name}").as_bytes());
        format!("csi-{}", hex::encode(digest))
    }

    /// `<root>/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount`.
    pub fn target_path(&self, pod_uid: &str, volume_name: &str) -> PathBuf {
        self.root
            .join("pods")
            .join(pod_uid)
            .join("volumes")
            .join("kubernetes.io~csi")
            .join(volume_name)
            .join("mount")
    }

    /// The request kubelet would send for `pod`'s inline volume with the
    /// given attributes and nodePublishSecretRef contents.
    pub fn publish_request(
        &self,
        pod: &Pod,
        volume_name: &str,
        attributes: &HashMap<String, String>,
        secrets: &HashMap<String, String>,
    ) -> NodePublishVolumeRequest {
        let mut ctx = attributes.clone();
        ctx.insert("csi.storage.k8s.io/pod.name".into(), pod.name.clone());
        ctx.insert(
            "csi.storage.k8s.io/pod.namespace".into(),
            pod.namespace.clone(),
        );
        ctx.insert("csi.storage.k8s.io/pod.uid".into(), pod.uid.clone());
        ctx.insert(
            "csi.storage.k8s.io/serviceAccount.name".into(),
            pod.service_account.clone(),
        );
        ctx.insert("csi.storage.k8s.io/ephemeral".into(), "true".into());
        if let Some(token) = &pod.token {
            let entry = serde_json::json!({
                TOKEN_EXCHANGE_AUDIENCE: {
                    "token": token,
                    "expirationTimestamp": "2099-01-01T00:00:00Z",
                }
            });
            ctx.insert(
                csi_proto::SERVICE_ACCOUNT_TOKENS_KEY.into(),
                entry.to_string(),
            );
        }
        NodePublishVolumeRequest {
            volume_id: Self::volume_id(&pod.uid, volume_name),
            publish_context: HashMap::new(),
            staging_target_path: String::new(),
            target_path: self
                .target_path(&pod.uid, volume_name)
                .display()
                .to_string(),
            volume_capability: Some(VolumeCapability {
                access_type: Some(AccessType::Mount(MountVolume::default())),
                access_mode: Some(AccessMode {
                    mode: Mode::SingleNodeWriter as i32,
                }),
            }),
            readonly: true,
            secrets: secrets.clone(),
            volume_context: ctx,
        }
    }

    /// Creates the target's parent (as kubelet does) and sends
    /// NodePublishVolume. Returns the target path.
    ///
    /// # Errors
    /// The driver's status (or an INTERNAL status if the parent cannot be
    /// created).
    pub async fn publish(
        &mut self,
        pod: &Pod,
        volume_name: &str,
        attributes: &HashMap<String, String>,
        secrets: &HashMap<String, String>,
    ) -> Result<PathBuf, tonic::Status> {
        let req = self.publish_request(pod, volume_name, attributes, secrets);
        self.send_publish(req).await
    }

    /// Sends a prepared request, creating the target's parent first.
    ///
    /// # Errors
    /// As [`Kubelet::publish`].
    pub async fn send_publish(
        &mut self,
        req: NodePublishVolumeRequest,
    ) -> Result<PathBuf, tonic::Status> {
        let target = PathBuf::from(&req.target_path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| tonic::Status::internal(format!("kubelet mkdir: {e}")))?;
        }
        self.node.node_publish_volume(req).await?;
        Ok(target)
    }

    /// Sends NodeUnpublishVolume for `pod`'s volume.
    ///
    /// # Errors
    /// The driver's status.
    pub async fn unpublish(
        &mut self,
        pod_uid: &str,
        volume_name: &str,
    ) -> Result<(), tonic::Status> {
        self.node
            .node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: Self::volume_id(pod_uid, volume_name),
                target_path: self.target_path(pod_uid, volume_name).display().to_string(),
            })
            .await?;
        Ok(())
    }
}
