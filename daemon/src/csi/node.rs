//! CSI Node service: NodePublishVolume and NodeUnpublishVolume do the work;
//! the rest answer as a node-only, stage-less driver must.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use csi_proto::v1::node_server::Node;
use csi_proto::v1::volume_capability::AccessType;
use csi_proto::v1::volume_capability::access_mode::Mode;
use csi_proto::v1::*;
use prost::Message;
use tonic::{Request, Response, Status};
use tracing::{Instrument, debug, info, info_span, warn};

use super::status::CsiError;
use super::target::{TargetPath, parse_target};
use crate::attest::{Attestor, NodeAttestation};
use crate::auth::{Identity, IdentityKey, select_identity};
use crate::config::Config;
use crate::keyvault::{KeyVault, LAST_CAUSE, SnpEvidence, VolumeContent, render_volume};
use crate::mount::fuse::{FUSE_DEVICE, FuseBackend};
use crate::mount::{
    MountState, Mounter, Payload, PayloadFile, Teardown, teardown_target, write_payload,
    zero_and_remove_payload,
};
use crate::params::{Backend, VolumeParams, parse_volume_context};
use crate::store::{Held, Refresh};
use crate::telemetry::{Metrics, RotationResult};
use crate::volume::{ObjectVersions, PublishedVolume, Registry, fingerprint};

/// Shared state of the Node service.
#[derive(Debug, Clone)]
pub struct NodeService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Arc<Config>,
    keyvault: Arc<KeyVault>,
    registry: Arc<Registry>,
    mounter: Arc<dyn Mounter>,
    fuse: Arc<FuseBackend>,
    metrics: Arc<Metrics>,
    attestor: Arc<Attestor>,
    live: Mutex<HashMap<PathBuf, LiveVolume>>,
}

/// What the daemon keeps in memory about a volume it published in this run:
/// enough to refresh it. Holds no secret itself; `leases` keep the volume's
/// cache entries alive (DESIGN §6).
#[derive(Debug, Clone)]
struct LiveVolume {
    params: VolumeParams,
    identity: IdentityKey,
    backend: Backend,
    volume_id: String,
    tmpfs_size: u64,
    /// One per cached object (every object but `release: true` ones), in
    /// `objects` order.
    leases: Vec<Arc<Held>>,
    /// Files of `release: true` objects: released once at publish (a
    /// released key is not re-read by rotation) and written again with
    /// every rewrite.
    released: Vec<PayloadFile>,
    /// The payload dir `..data` points to.
    payload_dir: String,
    /// Superseded payload dirs and when they are zeroed and removed.
    retired: Vec<(String, Instant)>,
}

/// The version ids behind a volume's files, for the index.
fn recorded_versions(params: &VolumeParams, leases: &[Arc<Held>]) -> Vec<ObjectVersions> {
    params
        .objects
        .iter()
        .filter(|o| !o.is_released())
        .zip(leases)
        .map(|(spec, held)| ObjectVersions {
            index: spec.index,
            name: spec.name.clone(),
            versions: held.version_ids().into_iter().map(str::to_string).collect(),
        })
        .collect()
}

/// Why a volume is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshMode {
    /// The rotation loop: objects due after one interval plus their jitter.
    Rotation,
    /// A republish: objects older than one interval.
    Republish,
}

/// What one volume refresh did, per object.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RefreshCounts {
    /// Objects with a new version written.
    pub updated: u32,
    /// Objects re-read and unchanged.
    pub unchanged: u32,
    /// Objects whose re-read or rewrite failed (old files kept).
    pub failed: u32,
    /// Objects not re-read because no usable credential is held.
    pub skipped: u32,
}

/// A publish request after the checks that need no I/O.
struct PublishPlan {
    target: TargetPath,
    volume_id: String,
    fingerprint: String,
    params: VolumeParams,
    secrets: HashMap<String, String>,
    volume_context: HashMap<String, String>,
    tmpfs_size: u64,
    backend: Backend,
}

impl NodeService {
    /// Builds the service. `attestor` is consulted only for confidential
    /// volumes.
    pub fn new(
        config: Arc<Config>,
        keyvault: Arc<KeyVault>,
        registry: Arc<Registry>,
        mounter: Arc<dyn Mounter>,
        fuse: Arc<FuseBackend>,
        metrics: Arc<Metrics>,
        attestor: Arc<Attestor>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                keyvault,
                registry,
                mounter,
                fuse,
                metrics,
                attestor,
                live: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Runs the rotation loop until the task is dropped: every few seconds
    /// (an eighth of the interval, at least 50 ms) each live volume's
    /// objects that are due are re-read, changed volumes are rewritten, and
    /// retired payload dirs are removed.
    pub async fn run_rotation(self) {
        let interval = self.inner.config.rotation_poll_interval;
        let tick = (interval / 8).max(Duration::from_millis(50));
        loop {
            tokio::time::sleep(tick).await;
            let counts = self.rotate_once().await;
            if counts != RefreshCounts::default() {
                debug!(?counts, "rotation pass");
            }
        }
    }

    /// One rotation pass over every live volume (see [`Self::run_rotation`]).
    pub async fn rotate_once(&self) -> RefreshCounts {
        let targets: Vec<PathBuf> = {
            let live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
            live.keys().cloned().collect()
        };
        // Volumes are refreshed concurrently (Key Vault load is bounded by
        // the per-vault cap and the cache's one-read-per-key), each in its
        // own task with the volume's lock, like a publish, and each bounded
        // by --publish-timeout so a vault that never answers cannot hold a
        // volume's lock (and its unpublish) for longer.
        let bound = self.inner.config.publish_timeout;
        let tasks: Vec<_> = targets
            .into_iter()
            .map(|target| {
                let inner = self.inner.clone();
                tokio::spawn(async move {
                    let _guard = inner.registry.lock(&target).await;
                    let refresh = inner.refresh_locked(&target, RefreshMode::Rotation);
                    let counts = match tokio::time::timeout(bound, refresh).await {
                        Ok(c) => c,
                        Err(_) => {
                            crate::warn_limited!(
                                "rotation of a volume ran out of time; keeping its files"
                            );
                            RefreshCounts {
                                failed: 1,
                                ..RefreshCounts::default()
                            }
                        }
                    };
                    inner.remove_retired(&target, false);
                    counts
                })
            })
            .collect();
        let mut total = RefreshCounts::default();
        for task in tasks {
            if let Ok(c) = task.await {
                total.updated += c.updated;
                total.unchanged += c.unchanged;
                total.failed += c.failed;
                total.skipped += c.skipped;
            }
        }
        total
    }
}

fn required<'a>(value: &'a str, field: &str) -> Result<&'a str, CsiError> {
    if value.is_empty() {
        Err(CsiError::Request(format!("{field} is required")))
    } else {
        Ok(value)
    }
}

fn check_capability(cap: Option<&VolumeCapability>) -> Result<Vec<u8>, CsiError> {
    let cap = cap.ok_or_else(|| CsiError::Request("volume_capability is required".into()))?;
    match &cap.access_type {
        Some(AccessType::Mount(_)) => {}
        Some(AccessType::Block(_)) => {
            return Err(CsiError::Request(
                "volume_capability: block access is not supported; use a mount volume".into(),
            ));
        }
        None => {
            return Err(CsiError::Request(
                "volume_capability.access_type is required (mount)".into(),
            ));
        }
    }
    let mode = cap
        .access_mode
        .as_ref()
        .ok_or_else(|| CsiError::Request("volume_capability.access_mode is required".into()))?;
    match Mode::try_from(mode.mode) {
        Ok(Mode::Unknown) | Err(_) => {
            return Err(CsiError::Request(
                "volume_capability.access_mode.mode is unknown".into(),
            ));
        }
        Ok(_) => {}
    }
    Ok(cap.encode_to_vec())
}

/// Fetches the volume's `release: true` objects by Secure Key Release to
/// the attested node: the node's evidence goes to `--attestation-service`
/// (Azure Attestation, `SevSnpVm`), and each key is released with that
/// token and unwrapped with the node's ephemeral runtime key. Returns one
/// file per object (its private key as PKCS#8 PEM).
///
/// # Errors
/// FAILED_PRECONDITION without `--attestation-service` or when the service
/// rejects the evidence; Key Vault errors as for any fetch (a release
/// policy that is not met is PERMISSION_DENIED).
async fn fetch_released_objects(
    keyvault: &KeyVault,
    service: Option<&str>,
    params: &VolumeParams,
    identity: &Identity,
    attestation: &NodeAttestation,
) -> Result<Vec<PayloadFile>, CsiError> {
    let Some(service) = service else {
        return Err(CsiError::Precondition(
            "objects with release: true need an attestation service (--attestation-service)".into(),
        ));
    };
    let client = keyvault.attestation_client(service)?;
    let evidence = SnpEvidence {
        report: attestation
            .hcl_report
            .clone()
            .unwrap_or_else(|| attestation.report.clone()),
        cert_chain_pem: attestation.cert_chain_pem.clone().into_bytes(),
        runtime_data: attestation.runtime_data.clone(),
    };
    let token = client.attest(&evidence).await?;
    let mut files = Vec::new();
    for spec in params.objects.iter().filter(|o| o.is_released()) {
        let pem = keyvault
            .release_key(params, identity, spec, &token, &attestation.runtime_key)
            .await?;
        files.push(PayloadFile {
            path: spec.path.clone(),
            mode: spec.file_mode,
            content: Arc::new(pem),
        });
    }
    Ok(files)
}

impl Inner {
    /// For a confidential volume: the node's attestation, which must be
    /// accepted under the policy (FAILED_PRECONDITION naming the failed
    /// check otherwise). `None` for ordinary volumes, which never consult
    /// the attestor.
    async fn attestation_for(
        &self,
        params: &VolumeParams,
    ) -> Result<Option<Arc<NodeAttestation>>, CsiError> {
        if params.attestation.is_none() {
            return Ok(None);
        }
        self.attestor
            .require_accepted()
            .await
            .map(Some)
            .map_err(CsiError::Precondition)
    }

    fn plan(&self, req: NodePublishVolumeRequest) -> Result<PublishPlan, CsiError> {
        let volume_id = required(&req.volume_id, "volume_id")?.to_string();
        let target_raw = required(&req.target_path, "target_path")?;
        let cap = check_capability(req.volume_capability.as_ref())?;
        if !req.readonly {
            return Err(CsiError::Request(
                "readonly must be true: vaultlet volumes are read-only (set readOnly: true on the volume)".into(),
            ));
        }
        let target =
            parse_target(&self.config.kubelet_root, target_raw).map_err(CsiError::Request)?;
        let params = parse_volume_context(&req.volume_context)?;
        if params.pod.uid != target.pod_uid {
            return Err(CsiError::Request(
                "target_path: its pod uid differs from csi.storage.k8s.io/pod.uid".into(),
            ));
        }
        let backend = params.backend.unwrap_or(self.config.backend);
        if backend == Backend::Fuse && !FuseBackend::available() {
            return Err(CsiError::Precondition(format!(
                "the fuse backend needs {FUSE_DEVICE}, which this node does not have; use vaultlet.dev/backend: tmpfs"
            )));
        }
        let fingerprint = fingerprint(&volume_id, &cap, req.readonly, &req.volume_context);
        Ok(PublishPlan {
            tmpfs_size: params.tmpfs_size.unwrap_or(self.config.tmpfs_size),
            backend,
            target,
            volume_id,
            fingerprint,
            params,
            secrets: req.secrets,
            volume_context: req.volume_context,
        })
    }

    /// The target's parent must resolve to where its path says: a symlink
    /// anywhere under the kubelet root could otherwise send the mount (or the
    /// teardown) elsewhere. `Ok(false)` when the parent does not exist.
    fn parent_resolves_inside_root(&self, target: &TargetPath) -> Result<bool, CsiError> {
        let Some(parent) = target.path.parent() else {
            return Err(CsiError::Request("target_path has no parent".into()));
        };
        let parent_real = match std::fs::canonicalize(parent) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(CsiError::Precondition(format!(
                    "target_path parent {} cannot be resolved: {e}",
                    parent.display()
                )));
            }
        };
        let root_real = std::fs::canonicalize(&self.config.kubelet_root).map_err(|e| {
            CsiError::Precondition(format!(
                "kubelet root {} cannot be resolved: {e}",
                self.config.kubelet_root.display()
            ))
        })?;
        let expected = root_real
            .join("pods")
            .join(&target.pod_uid)
            .join("volumes")
            .join("kubernetes.io~csi")
            .join(&target.volume_name);
        if parent_real != expected {
            return Err(CsiError::Precondition(format!(
                "target_path {} resolves outside the kubelet root (a symlink in its path); refusing it",
                target.path.display()
            )));
        }
        Ok(true)
    }

    /// Runs with the target's lock held, in its own task.
    async fn publish_locked(&self, plan: PublishPlan) -> Result<(), CsiError> {
        let target = plan.target.path.clone();
        let authority = self.keyvault.authority_host(plan.params.cloud);
        if let Some(existing) = self.registry.get(&target) {
            if existing.fingerprint != plan.fingerprint {
                return Err(CsiError::AlreadyExists {
                    target: target.display().to_string(),
                });
            }
            let expected = match existing.backend {
                Backend::Tmpfs => MountState::Tmpfs,
                Backend::Fuse => MountState::Fuse,
            };
            if self.mounter.mount_state(&target)? == expected {
                // Same volume, still mounted: OK without a second mount. The
                // newest credential is installed for later refreshes; if none
                // can be chosen the old files stay and the call is still OK
                // (DESIGN §7: a failed refresh of a published volume is OK).
                let vault_url = self.keyvault.vault_url(&plan.params);
                match select_identity(
                    &plan.params,
                    &plan.secrets,
                    &plan.volume_context,
                    &authority,
                ) {
                    Ok(identity) => {
                        if let Err(e) = self.keyvault.vault_clients(&vault_url, &identity) {
                            crate::warn_limited!(error = %e, "republish: could not refresh the credential; keeping the volume");
                        }
                    }
                    Err(e) => {
                        crate::warn_limited!(error = %e, "republish: no usable identity; keeping the volume");
                    }
                }
                // A confidential volume is refreshed only while the node
                // still attests; otherwise the old files stay (DESIGN §7).
                if let Err(e) = self.attestation_for(&plan.params).await {
                    crate::warn_limited!(error = %e, "republish: not refreshing a confidential volume");
                    return Ok(());
                }
                // Refresh what is older than one interval; a failure keeps
                // the old files and the call is OK (DESIGN §7).
                let refresh = self.refresh_locked(&target, RefreshMode::Republish);
                match tokio::time::timeout(self.config.publish_timeout, refresh).await {
                    Ok(counts) => debug!(?counts, "republish refreshed"),
                    Err(_) => crate::warn_limited!(
                        "republish: the refresh ran out of time; keeping the volume"
                    ),
                }
                return Ok(());
            }
            crate::warn_limited!("published volume lost its mount; publishing again");
            self.registry.remove(&target)?;
            self.live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&target);
        }
        // A confidential volume is served only while the node's evidence
        // verifies; nothing is fetched otherwise.
        // One deadline for the whole first publish: attestation, key
        // release and the fetch share --publish-timeout.
        let timeout = self.config.publish_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let attestation =
            match tokio::time::timeout_at(deadline, self.attestation_for(&plan.params)).await {
                Ok(a) => a?,
                Err(_) => {
                    return Err(CsiError::Timeout {
                        vault: plan.params.keyvault_name.clone(),
                        seconds: timeout.as_secs(),
                        cause: "gathering the node's attestation evidence did not finish".into(),
                    });
                }
            };
        let identity = select_identity(
            &plan.params,
            &plan.secrets,
            &plan.volume_context,
            &authority,
        )?;
        let released = match &attestation {
            Some(attestation) if plan.params.objects.iter().any(|o| o.is_released()) => {
                let release = fetch_released_objects(
                    &self.keyvault,
                    self.config.attestation.service.as_deref(),
                    &plan.params,
                    &identity,
                    attestation,
                );
                match tokio::time::timeout_at(deadline, release).await {
                    Ok(files) => files?,
                    Err(_) => {
                        return Err(CsiError::Timeout {
                            vault: plan.params.keyvault_name.clone(),
                            seconds: timeout.as_secs(),
                            cause: "attestation or key release did not answer".into(),
                        });
                    }
                }
            }
            _ => Vec::new(),
        };

        // Fetch everything before touching the target: a failure leaves
        // nothing behind.
        let cause = Arc::new(Mutex::new(None::<String>));
        let fetch = LAST_CAUSE.scope(
            cause.clone(),
            self.keyvault.fetch_volume(&plan.params, &identity),
        );
        let content = match tokio::time::timeout_at(deadline, fetch).await {
            Ok(r) => r?,
            Err(_) => {
                let cause = cause
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or_else(|| "none recorded".into());
                return Err(CsiError::Timeout {
                    vault: plan.params.keyvault_name.clone(),
                    seconds: timeout.as_secs(),
                    cause,
                });
            }
        };

        if !self.parent_resolves_inside_root(&plan.target)? {
            return Err(CsiError::Precondition(format!(
                "the parent of target_path {} does not exist (kubelet creates it)",
                target.display()
            )));
        }
        let VolumeContent {
            mut payload,
            leases,
        } = content;
        payload.files.extend(released.iter().cloned());
        let mut entry = LiveVolume {
            params: plan.params.clone(),
            identity: identity.key.clone(),
            backend: plan.backend,
            volume_id: plan.volume_id.clone(),
            tmpfs_size: plan.tmpfs_size,
            leases,
            released,
            payload_dir: String::new(),
            retired: Vec::new(),
        };
        if plan.backend == Backend::Fuse {
            entry.payload_dir = self.publish_fuse(plan, payload, &entry.leases).await?;
            self.live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(target, entry);
            return Ok(());
        }
        // What is at the target decides between a fresh mount and adopting a
        // vaultlet tmpfs whose index entry was lost (a restart with an empty
        // state dir): its content is then replaced atomically, so pods that
        // already see it are never left with an empty volume.
        let adopt = match std::fs::symlink_metadata(&target) {
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                return Err(CsiError::Precondition(format!(
                    "target {} exists and is not a directory",
                    target.display()
                )));
            }
            Ok(_) => match self.mounter.mount_state(&target)? {
                MountState::NotMounted => false,
                MountState::Tmpfs => {
                    warn!(
                        "adopting a vaultlet tmpfs missing from the index; refreshing it in place"
                    );
                    true
                }
                MountState::Fuse => {
                    warn!("unknown FUSE mount at target; tearing it down first");
                    teardown_target(self.mounter.as_ref(), &target)?;
                    false
                }
                MountState::Foreign => {
                    return Err(CsiError::Precondition(format!(
                        "target {} has another filesystem mounted",
                        target.display()
                    )));
                }
            },
            Err(_) => false,
        };
        if !adopt {
            let created = match std::fs::create_dir(&target) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                Err(source) => {
                    return Err(CsiError::Mount(crate::mount::MountError::Io {
                        op: "mkdir",
                        path: target.display().to_string(),
                        source,
                    }));
                }
            };
            if let Err(e) = self.mounter.mount_tmpfs(&target, plan.tmpfs_size) {
                if created {
                    let _ = std::fs::remove_dir(&target);
                }
                return Err(e.into());
            }
        }
        let outcome = match write_payload(&target, &payload, Some(plan.tmpfs_size)) {
            Ok(o) => o,
            Err(e) => {
                // A fresh mount is torn down again; an adopted one keeps its
                // old files (a failed refresh never empties a volume).
                if !adopt && let Err(t) = teardown_target(self.mounter.as_ref(), &target) {
                    warn!(error = %t, "cleanup after a failed publish failed");
                }
                return Err(e.into());
            }
        };
        drop(payload);
        entry.payload_dir = outcome.new_dir.clone();
        let leases = entry.leases.clone();
        if let Some(old) = outcome.old_dir.clone() {
            // An adopted volume's previous files: retired like a rotation's.
            entry
                .retired
                .push((old, Instant::now() + self.config.rotation_poll_interval));
        }
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(target.clone(), entry);
        let record = PublishedVolume {
            volume_id: plan.volume_id,
            target_path: target.clone(),
            fingerprint: plan.fingerprint,
            namespace: plan.params.pod.namespace.clone(),
            pod_uid: plan.params.pod.uid.clone(),
            vault: plan.params.keyvault_name.clone(),
            payload_dir: outcome.new_dir,
            backend: Backend::Tmpfs,
            versions: recorded_versions(&plan.params, &leases),
        };
        if let Err(e) = self.registry.insert(record) {
            // The volume is complete and usable; only the restart index is stale.
            warn!(error = %e, "could not persist the volume index");
        }
        self.metrics.published.set(self.registry.len() as i64);
        info!(objects = plan.params.objects.len(), "published");
        Ok(())
    }

    /// The FUSE half of a publish: the namespace tree gets the volume's
    /// files, and its subdirectory is bind-mounted onto the target.
    async fn publish_fuse(
        &self,
        plan: PublishPlan,
        payload: Payload,
        leases: &[Arc<Held>],
    ) -> Result<String, CsiError> {
        let target = plan.target.path.clone();
        match std::fs::symlink_metadata(&target) {
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                return Err(CsiError::Precondition(format!(
                    "target {} exists and is not a directory",
                    target.display()
                )));
            }
            Ok(_) if self.mounter.mount_state(&target)? != MountState::NotMounted => {
                return Err(CsiError::Precondition(format!(
                    "target {} already has a filesystem mounted",
                    target.display()
                )));
            }
            _ => {}
        }
        let namespace = plan.params.pod.namespace.clone();
        let fuse = self.fuse.clone();
        let mounter = self.mounter.clone();
        let volume_id = plan.volume_id.clone();
        let t = target.clone();
        let payload_dir = tokio::task::spawn_blocking(move || {
            fuse.publish(mounter.as_ref(), &namespace, &volume_id, payload, &t, true)
        })
        .await
        .map_err(|e| CsiError::Internal(format!("fuse publish task failed: {e}")))??;
        let record = PublishedVolume {
            volume_id: plan.volume_id,
            target_path: target,
            fingerprint: plan.fingerprint,
            namespace: plan.params.pod.namespace.clone(),
            pod_uid: plan.params.pod.uid.clone(),
            vault: plan.params.keyvault_name.clone(),
            payload_dir: payload_dir.clone(),
            backend: Backend::Fuse,
            versions: recorded_versions(&plan.params, leases),
        };
        if let Err(e) = self.registry.insert(record) {
            warn!(error = %e, "could not persist the volume index");
        }
        self.metrics.published.set(self.registry.len() as i64);
        info!(
            objects = plan.params.objects.len(),
            backend = "fuse",
            "published"
        );
        Ok(payload_dir)
    }

    /// Re-reads the volume's objects that are due (see [`RefreshMode`]) and
    /// rewrites the volume through the atomic writer when any changed.
    /// Failures keep the old files. Runs with the target's lock held.
    async fn refresh_locked(&self, target: &Path, mode: RefreshMode) -> RefreshCounts {
        let counts = self.refresh_volume(target, mode).await;
        for (n, result) in [
            (counts.updated, RotationResult::Updated),
            (counts.unchanged, RotationResult::Unchanged),
            (counts.failed, RotationResult::Failed),
            (counts.skipped, RotationResult::Skipped),
        ] {
            for _ in 0..n {
                self.metrics.count_rotation(result);
            }
        }
        counts
    }

    async fn refresh_volume(&self, target: &Path, mode: RefreshMode) -> RefreshCounts {
        let mut counts = RefreshCounts::default();
        let Some(vol) = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
            .cloned()
        else {
            return counts;
        };
        let interval = self.config.rotation_poll_interval;
        let due: Vec<usize> = vol
            .leases
            .iter()
            .enumerate()
            .filter(|(_, held)| held.key().tracks_latest())
            .filter(|(_, held)| {
                let max_age = match mode {
                    RefreshMode::Rotation => interval.mul_f64(1.0 + held.jitter()),
                    RefreshMode::Republish => interval,
                };
                held.checked().elapsed() >= max_age
            })
            .map(|(i, _)| i)
            .collect();
        let mut leases = vol.leases.clone();
        // A confidential volume is neither re-read nor rewritten (not even
        // with versions another volume fetched) while attestation fails.
        if vol.params.attestation.is_some()
            && let Err(e) = self.attestation_for(&vol.params).await
        {
            counts.skipped = due.len() as u32;
            crate::warn_limited!(error = %e, "refresh of a confidential volume skipped");
            return counts;
        }
        if !due.is_empty() && !self.keyvault.can_refresh(&vol.identity) {
            counts.skipped = due.len() as u32;
            debug!(
                objects = due.len(),
                "refresh skipped: no valid Entra token and the kubelet token has expired"
            );
        } else {
            let cause = Arc::new(Mutex::new(None::<String>));
            for i in due {
                let Some(spec) = vol
                    .params
                    .objects
                    .iter()
                    .filter(|o| !o.is_released())
                    .nth(i)
                else {
                    continue;
                };
                let held = &vol.leases[i];
                let max_age = match mode {
                    RefreshMode::Rotation => interval.mul_f64(1.0 + held.jitter()),
                    RefreshMode::Republish => interval,
                };
                let refresh =
                    self.keyvault
                        .refresh_object(&vol.params, &vol.identity, spec, held, max_age);
                match LAST_CAUSE.scope(cause.clone(), refresh).await {
                    Refresh::Fresh | Refresh::Unchanged => counts.unchanged += 1,
                    Refresh::Updated(new) => leases[i] = new,
                    Refresh::Failed(e) => {
                        counts.failed += 1;
                        crate::warn_limited!(error = %e, "refresh failed; keeping the old files");
                    }
                }
            }
        }
        // A volume behind the cache (another volume's refresh found the new
        // version first, or an earlier rewrite failed) catches up too.
        for (i, held) in leases.iter_mut().enumerate() {
            if let Some(newest) = self.keyvault.cache().get(held.key())
                && !Arc::ptr_eq(&newest, held)
                && vol.leases[i].key().tracks_latest()
            {
                *held = newest;
            }
        }
        let changed = leases
            .iter()
            .zip(&vol.leases)
            .filter(|(a, b)| !Arc::ptr_eq(a, b))
            .count() as u32;
        if changed == 0 {
            return counts;
        }
        match self.rewrite(target, &vol, &leases).await {
            Ok(new_dir) => {
                counts.updated += changed;
                if let Some(mut record) = self.registry.get(target) {
                    record.payload_dir = new_dir.clone();
                    record.versions = recorded_versions(&vol.params, &leases);
                    if let Err(e) = self.registry.insert(record) {
                        warn!(error = %e, "could not persist the volume index");
                    }
                }
                let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(v) = live.get_mut(target) {
                    let old = std::mem::replace(&mut v.payload_dir, new_dir);
                    v.retired.push((old, Instant::now() + interval));
                    v.leases = leases;
                }
                info!(objects = changed, "rotated to new versions");
            }
            Err(e) => {
                counts.failed += changed;
                crate::warn_limited!(error = %e, "rewriting the volume with new versions failed; keeping the old files");
            }
        }
        counts
    }

    /// Writes the volume's files from `leases` and swaps `..data`; returns
    /// the new payload dir.
    async fn rewrite(
        &self,
        target: &Path,
        vol: &LiveVolume,
        leases: &[Arc<Held>],
    ) -> Result<String, CsiError> {
        let mut payload = render_volume(&vol.params, leases)?;
        payload.files.extend(vol.released.iter().cloned());
        match vol.backend {
            Backend::Tmpfs => {
                if self.mounter.mount_state(target)? != MountState::Tmpfs {
                    return Err(CsiError::Precondition(format!(
                        "target {} is no longer a vaultlet tmpfs",
                        target.display()
                    )));
                }
                let outcome = write_payload(target, &payload, Some(vol.tmpfs_size))?;
                Ok(outcome.new_dir)
            }
            Backend::Fuse => {
                let fuse = self.fuse.clone();
                let mounter = self.mounter.clone();
                let (ns, id, t) = (
                    vol.params.pod.namespace.clone(),
                    vol.volume_id.clone(),
                    target.to_path_buf(),
                );
                Ok(tokio::task::spawn_blocking(move || {
                    fuse.publish(mounter.as_ref(), &ns, &id, payload, &t, false)
                })
                .await
                .map_err(|e| CsiError::Internal(format!("fuse refresh task failed: {e}")))??)
            }
        }
    }

    /// Zeroes and removes the volume's retired payload dirs whose time has
    /// come (all of them with `all`). Runs with the target's lock held.
    fn remove_retired(&self, target: &Path, all: bool) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let Some(v) = live.get_mut(target) else {
            return;
        };
        let now = Instant::now();
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut v.retired)
            .into_iter()
            .partition(|(_, at)| all || *at <= now);
        v.retired = keep;
        for (dir, _) in due {
            let result = match v.backend {
                Backend::Tmpfs => zero_and_remove_payload(target, &dir).map_err(|e| e.to_string()),
                Backend::Fuse => self
                    .fuse
                    .remove_payload(&v.params.pod.namespace, &v.volume_id, &dir)
                    .map_err(|e| e.to_string()),
            };
            if let Err(e) = result {
                warn!(error = %e, "removing a retired payload dir failed");
            }
        }
    }

    async fn unpublish_locked(&self, target: TargetPath) -> Result<(), CsiError> {
        if !self.parent_resolves_inside_root(&target)? {
            // No parent, no target: nothing of ours can be there. The
            // volume's leases and FUSE entry go too.
            let live = self
                .live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&target.path);
            if let Some(v) = self.registry.remove(&target.path)?
                && v.backend == Backend::Fuse
            {
                let fuse = self.fuse.clone();
                let _ =
                    tokio::task::spawn_blocking(move || fuse.release(&v.namespace, &v.volume_id))
                        .await;
            }
            drop(live);
            return Ok(());
        }
        let target = target.path;
        let result = teardown_target(self.mounter.as_ref(), &target)?;
        // The volume's leases go: buffers no other volume holds are zeroized.
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&target);
        if let Some(v) = self.registry.remove(&target)?
            && v.backend == Backend::Fuse
        {
            let fuse = self.fuse.clone();
            let _ =
                tokio::task::spawn_blocking(move || fuse.release(&v.namespace, &v.volume_id)).await;
        }
        self.metrics.published.set(self.registry.len() as i64);
        match result {
            Teardown::Absent => debug!("nothing at target"),
            other => info!(teardown = ?other, "unpublished"),
        }
        Ok(())
    }
}

impl NodeService {
    async fn publish(&self, req: NodePublishVolumeRequest) -> Result<(), CsiError> {
        let plan = self.inner.plan(req)?;
        let inner = self.inner.clone();
        let target: PathBuf = plan.target.path.clone();
        // The task owns the lock: if the caller goes away, the publish still
        // completes or cleans up, never leaving a half-written volume.
        let span = tracing::Span::current();
        let task = tokio::spawn(
            async move {
                let _guard = inner.registry.lock(&target).await;
                inner.publish_locked(plan).await
            }
            .instrument(span),
        );
        task.await
            .map_err(|e| CsiError::Internal(format!("publish task failed: {e}")))?
    }

    async fn unpublish(&self, req: NodeUnpublishVolumeRequest) -> Result<(), CsiError> {
        required(&req.volume_id, "volume_id")?;
        let target_raw = required(&req.target_path, "target_path")?;
        let target =
            parse_target(&self.inner.config.kubelet_root, target_raw).map_err(CsiError::Request)?;
        let inner = self.inner.clone();
        let span = tracing::Span::current();
        let task = tokio::spawn(
            async move {
                let _guard = inner.registry.lock(&target.path).await;
                inner.unpublish_locked(target).await
            }
            .instrument(span),
        );
        task.await
            .map_err(|e| CsiError::Internal(format!("unpublish task failed: {e}")))?
    }
}

fn finish<T>(
    metrics: &Metrics,
    method: &'static str,
    r: Result<(), CsiError>,
    ok: T,
) -> Result<Response<T>, Status> {
    match r {
        Ok(()) => {
            metrics.count_call(method, tonic::Code::Ok);
            Ok(Response::new(ok))
        }
        Err(e) => {
            let status = Status::from(e);
            metrics.count_call(method, status.code());
            // Kubelet retries a failing call every few seconds per pod.
            crate::warn_limited!(code = ?status.code(), error = %status.message(), "{method} failed");
            Err(status)
        }
    }
}

fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what} is not implemented by vaultlet (node-only, no staging)"
    ))
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        _: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        Err(unimplemented("NodeStageVolume"))
    }

    async fn node_unstage_volume(
        &self,
        _: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        Err(unimplemented("NodeUnstageVolume"))
    }

    async fn node_publish_volume(
        &self,
        request: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        let req = request.into_inner();
        let span = info_span!(
            "NodePublishVolume",
            volume_id = %req.volume_id,
            pod_uid = %req.volume_context.get("csi.storage.k8s.io/pod.uid").map(String::as_str).unwrap_or(""),
        );
        let started = std::time::Instant::now();
        let r = self.publish(req).instrument(span.clone()).await;
        let code = r.as_ref().map_or_else(CsiError::code, |()| tonic::Code::Ok);
        self.inner.metrics.count_publish(code, started.elapsed());
        let _e = span.enter();
        finish(
            &self.inner.metrics,
            "NodePublishVolume",
            r,
            NodePublishVolumeResponse {},
        )
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let req = request.into_inner();
        let span = info_span!("NodeUnpublishVolume", volume_id = %req.volume_id);
        let r = self.unpublish(req).instrument(span.clone()).await;
        let code = r.as_ref().map_or_else(CsiError::code, |()| tonic::Code::Ok);
        self.inner.metrics.count_unpublish(code);
        let _e = span.enter();
        finish(
            &self.inner.metrics,
            "NodeUnpublishVolume",
            r,
            NodeUnpublishVolumeResponse {},
        )
    }

    async fn node_get_volume_stats(
        &self,
        _: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        Err(unimplemented("NodeGetVolumeStats"))
    }

    async fn node_expand_volume(
        &self,
        _: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        Err(unimplemented("NodeExpandVolume"))
    }

    async fn node_get_capabilities(
        &self,
        _: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        Ok(Response::new(NodeGetCapabilitiesResponse {
            capabilities: vec![],
        }))
    }

    async fn node_get_info(
        &self,
        _: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        Ok(Response::new(NodeGetInfoResponse {
            node_id: self.inner.config.node_id.clone(),
            max_volumes_per_node: 0,
            accessible_topology: None,
        }))
    }
}
