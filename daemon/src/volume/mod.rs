//! The registry of published volumes: per-target locks, the fingerprint
//! that decides "same volume" versus ALREADY_EXISTS, and the persisted index
//! in `--state-dir` (which never holds a secret value, token or client
//! secret: only ids, paths and a SHA-256 fingerprint of the non-secret
//! attributes).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Name of the index file inside the state dir.
pub const INDEX_FILE: &str = "volumes.json";

/// Errors reading or writing the index.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// I/O on the state dir.
    #[error("state dir {path}: {source}")]
    Io {
        /// Path acted on.
        path: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
}

/// One published volume, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedVolume {
    /// CSI volume_id.
    pub volume_id: String,
    /// target_path.
    pub target_path: PathBuf,
    /// Hex SHA-256 of the request fields that define the volume
    /// (see [`fingerprint`]).
    pub fingerprint: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod uid.
    pub pod_uid: String,
    /// Vault name.
    pub vault: String,
    /// Payload dir currently behind `..data`.
    pub payload_dir: String,
    /// How the volume is delivered (indexes written before the FUSE backend
    /// existed read as tmpfs).
    #[serde(default)]
    pub backend: crate::params::Backend,
    /// The Key Vault version ids the files were written from, per object
    /// (updated by rotation). Names and ids only, never values.
    #[serde(default)]
    pub versions: Vec<ObjectVersions>,
}

/// The version ids behind one object's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectVersions {
    /// Index in `objects`.
    pub index: usize,
    /// objectName.
    pub name: String,
    /// Version ids, newest first (one unless objectVersionHistory ≥ 2).
    pub versions: Vec<String>,
}

/// Fingerprint of a publish request: volume_id, the encoded
/// volume_capability, readonly, and every `volume_context` entry except the
/// service-account token entry. The `secrets` map is never part of it, so a
/// refreshed token or rotated nodePublishSecretRef is the same volume.
pub fn fingerprint(
    volume_id: &str,
    capability: &[u8],
    readonly: bool,
    volume_context: &HashMap<String, String>,
) -> String {
    let sorted: BTreeMap<&String, &String> = volume_context
        .iter()
        .filter(|(k, _)| k.as_str() != csi_proto::SERVICE_ACCOUNT_TOKENS_KEY)
        .collect();
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(volume_id.as_bytes());
    field(capability);
    field(&[u8::from(readonly)]);
    for (k, v) in sorted {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Published volumes by target path, plus one async lock per target.
#[derive(Debug)]
pub struct Registry {
    index_path: PathBuf,
    volumes: Mutex<BTreeMap<PathBuf, PublishedVolume>>,
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    /// Serialises index writes: they share one temp file, and the newest
    /// snapshot must be the one that lands.
    persisting: Mutex<()>,
}

impl Registry {
    /// Opens (creating with mode 0700) the state dir and loads its index. An
    /// unreadable or corrupt index is logged and treated as empty: targets
    /// are re-checked on the next publish and unpublish anyway.
    ///
    /// # Errors
    /// [`VolumeError`] when the state dir cannot be created.
    pub fn open(state_dir: &Path) -> Result<Self, VolumeError> {
        std::fs::create_dir_all(state_dir).map_err(|source| VolumeError::Io {
            path: state_dir.display().to_string(),
            source,
        })?;
        let _ = std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700));
        let index_path = state_dir.join(INDEX_FILE);
        let volumes = match std::fs::read(&index_path) {
            Ok(bytes) => match serde_json::from_slice::<Vec<PublishedVolume>>(&bytes) {
                Ok(list) => list
                    .into_iter()
                    .map(|v| (v.target_path.clone(), v))
                    .collect(),
                Err(e) => {
                    tracing::warn!(path = %index_path.display(), error = %e, "ignoring corrupt volume index");
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::warn!(path = %index_path.display(), error = %e, "ignoring unreadable volume index");
                BTreeMap::new()
            }
        };
        Ok(Self {
            index_path,
            volumes: Mutex::new(volumes),
            locks: Mutex::new(HashMap::new()),
            persisting: Mutex::new(()),
        })
    }

    /// The lock of `target`. Hold the returned guard for the whole publish
    /// or unpublish; it is owned, so a spawned task can hold it.
    pub async fn lock(&self, target: &Path) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(target.to_path_buf()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// The volume published at `target`, if any.
    pub fn get(&self, target: &Path) -> Option<PublishedVolume> {
        self.volumes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
            .cloned()
    }

    /// Number of published volumes.
    pub fn len(&self) -> usize {
        self.volumes.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no volume is published.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a published volume and persists the index.
    ///
    /// # Errors
    /// [`VolumeError`] when the index cannot be written (the in-memory entry
    /// is kept).
    pub fn insert(&self, v: PublishedVolume) -> Result<(), VolumeError> {
        self.volumes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(v.target_path.clone(), v);
        self.persist()
    }

    /// Forgets the volume at `target` and persists the index.
    ///
    /// # Errors
    /// As [`Registry::insert`].
    pub fn remove(&self, target: &Path) -> Result<Option<PublishedVolume>, VolumeError> {
        let removed = self
            .volumes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(target);
        {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            // Drop the lock entry when nobody else holds or waits on it; the
            // caller's guard holds one reference through its own Arc.
            if locks.get(target).is_some_and(|l| Arc::strong_count(l) <= 2) {
                locks.remove(target);
            }
        }
        if removed.is_some() {
            self.persist()?;
        }
        Ok(removed)
    }

    fn persist(&self) -> Result<(), VolumeError> {
        let _one_writer = self.persisting.lock().unwrap_or_else(|p| p.into_inner());
        let vols: Vec<PublishedVolume> = self
            .volumes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let io = |source| VolumeError::Io {
            path: self.index_path.display().to_string(),
            source,
        };
        let tmp = self.index_path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&vols).map_err(|e| io(std::io::Error::other(e)))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.index_path).map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(token: &str) -> HashMap<String, String> {
        [
            ("keyvaultName".to_string(), "kv1".to_string()),
            (
                csi_proto::SERVICE_ACCOUNT_TOKENS_KEY.to_string(),
                token.to_string(),
            ),
        ]
        .into()
    }

    #[test]
    fn token_refresh_is_not_a_difference() {
        assert_eq!(
            fingerprint("v", b"cap", true, &ctx("t1")),
            fingerprint("v", b"cap", true, &ctx("t2"))
        );
    }

    #[test]
    fn other_attributes_are_a_difference() {
        let mut other = ctx("t1");
        other.insert("keyvaultName".into(), "kv2".into());
        assert_ne!(
            fingerprint("v", b"cap", true, &ctx("t1")),
            fingerprint("v", b"cap", true, &other)
        );
        assert_ne!(
            fingerprint("v", b"cap", true, &ctx("t1")),
            fingerprint("v", b"cap2", true, &ctx("t1"))
        );
    }

    #[test]
    fn index_round_trips_and_holds_no_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reg = Registry::open(dir.path()).expect("open");
        let v = PublishedVolume {
            volume_id: "csi-1".into(),
            target_path: "/k/pods/u/volumes/kubernetes.io~csi/v/mount".into(),
            fingerprint: fingerprint("csi-1", b"", true, &ctx("token-canary")),
            namespace: "ns".into(),
            pod_uid: "u".into(),
            vault: "kv1".into(),
            payload_dir: "..x".into(),
            backend: crate::params::Backend::Tmpfs,
            versions: vec![ObjectVersions {
                index: 0,
                name: "s1".into(),
                versions: vec!["v1".into()],
            }],
        };
        reg.insert(v.clone()).expect("insert");
        let raw = std::fs::read_to_string(dir.path().join(INDEX_FILE)).expect("index");
        assert!(!raw.contains("token-canary"));
        let again = Registry::open(dir.path()).expect("reopen");
        assert_eq!(again.get(&v.target_path), Some(v.clone()));
        assert_eq!(again.remove(&v.target_path).expect("remove"), Some(v));
        assert!(Registry::open(dir.path()).expect("reopen").is_empty());
    }
}
