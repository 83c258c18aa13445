//! The FUSE backend: one in-memory filesystem (`vaultlet-fuse`) per
//! namespace, mounted at `<state-dir>/fuse/<namespace>`, with one
//! subdirectory per published volume bind-mounted read-only onto its
//! target_path. File contents are the store's `SecretBytes` (mlocked,
//! zeroized when the last reference, volume or open handle, goes away),
//! served with direct I/O so no copy sits in the page cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use vaultlet_fuse::{DirAttrs, Entry, FsTree, MountHandle, MountOptions};

use super::{MountError, Mounter, Payload};
use crate::store::SecretBytes;

/// Where the kernel's FUSE device lives.
pub const FUSE_DEVICE: &str = "/dev/fuse";

struct Namespace {
    tree: FsTree<SecretBytes>,
    handle: MountHandle,
}

/// The per-namespace FUSE mounts of the daemon.
pub struct FuseBackend {
    root: PathBuf,
    namespaces: Mutex<HashMap<String, Namespace>>,
}

impl std::fmt::Debug for FuseBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.namespaces.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("FuseBackend")
            .field("root", &self.root)
            .field("namespaces", &n)
            .finish()
    }
}

fn io(op: &'static str, path: &Path, e: impl std::fmt::Display) -> MountError {
    MountError::Io {
        op,
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Namespaces and volume ids become directory names: DNS labels and
/// `csi-<hex>` ids are safe; anything else is refused.
fn safe_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl FuseBackend {
    /// The backend rooted at `<state_dir>/fuse`. Namespace mounts left by a
    /// previous daemon (their server is gone) are detached and removed.
    pub fn new(state_dir: &Path, mounter: &dyn Mounter) -> Self {
        let root = state_dir.join("fuse");
        if let Ok(entries) = std::fs::read_dir(&root) {
            for entry in entries.flatten() {
                let path = entry.path();
                if matches!(mounter.mount_state(&path), Ok(super::MountState::Fuse)) {
                    tracing::warn!(path = %path.display(), "detaching a stale namespace FUSE mount");
                    let _ = mounter.unmount(&path, true);
                }
                let _ = std::fs::remove_dir(&path);
            }
        }
        Self {
            root,
            namespaces: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this node can serve FUSE volumes.
    pub fn available() -> bool {
        Path::new(FUSE_DEVICE).exists()
    }

    /// The mount point of a namespace.
    pub fn namespace_dir(&self, namespace: &str) -> PathBuf {
        self.root.join(namespace)
    }

    /// Publishes (or refreshes) `volume` of `namespace` with `payload` and,
    /// on first publish, bind-mounts it read-only onto `target`. Returns the
    /// new payload dir name.
    ///
    /// # Errors
    /// [`MountError::Io`] naming the failing step; nothing is left mounted
    /// for a volume whose first publish fails.
    pub fn publish(
        &self,
        mounter: &dyn Mounter,
        namespace: &str,
        volume: &str,
        payload: Payload,
        target: &Path,
        bind: bool,
    ) -> Result<String, MountError> {
        if !safe_component(namespace) || !safe_component(volume) {
            return Err(io(
                "fuse publish",
                target,
                "namespace or volume id is not a safe directory name",
            ));
        }
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        if !namespaces.contains_key(namespace) {
            let dir = self.namespace_dir(namespace);
            std::fs::create_dir_all(&dir).map_err(|e| io("mkdir", &dir, e))?;
            let tree = FsTree::new();
            let handle = tree
                .mount(
                    &dir,
                    &MountOptions {
                        unmount_wait: std::time::Duration::from_secs(1),
                        ..MountOptions::default()
                    },
                )
                .map_err(|e| io("mount fuse", &dir, e))?;
            namespaces.insert(namespace.to_string(), Namespace { tree, handle });
        }
        let ns = namespaces
            .get(namespace)
            .ok_or_else(|| io("fuse publish", target, "namespace mount vanished"))?;
        let created = !ns.tree.volumes().iter().any(|v| v == volume);
        if created {
            ns.tree
                .add_volume(volume, DirAttrs::default())
                .map_err(|e| io("fuse add volume", target, e))?;
        }
        let dir_name = super::atomic_writer::payload_dir_name(time::OffsetDateTime::now_utc())
            .map_err(|e| io("fuse payload name", target, e))?;
        let entries: Vec<Entry<SecretBytes>> = payload
            .files
            .into_iter()
            .map(|f| Entry::new(f.path.as_str(), f.content).with_mode(f.mode))
            .collect();
        let outcome = ns.tree.swap_payload(volume, &dir_name, entries);
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                if created {
                    let _ = ns.tree.remove_volume(volume);
                }
                return Err(io("fuse swap payload", target, e));
            }
        };
        // The previous payload (if any) stays until the volume is released,
        // so a reader in the middle of resolving a path never sees ENOENT
        // (DESIGN §5); `release` drops it with the volume.
        let _ = outcome.previous;
        if bind {
            let source = self.namespace_dir(namespace).join(volume);
            let made_dir = match std::fs::create_dir(target) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                Err(e) => {
                    let _ = ns.tree.remove_volume(volume);
                    return Err(io("mkdir", target, e));
                }
            };
            if let Err(e) = mounter.bind_mount_readonly(&source, target) {
                let _ = ns.tree.remove_volume(volume);
                if made_dir {
                    let _ = std::fs::remove_dir(target);
                }
                drop(namespaces);
                self.release_if_empty(namespace);
                return Err(e);
            }
        }
        Ok(dir_name)
    }

    /// Removes a superseded payload dir of `volume`. Its buffers are
    /// zeroized once no open handle holds them.
    ///
    /// # Errors
    /// [`MountError::Io`] when the namespace, volume or dir is unknown.
    pub fn remove_payload(
        &self,
        namespace: &str,
        volume: &str,
        dir_name: &str,
    ) -> Result<(), MountError> {
        let namespaces = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.namespace_dir(namespace).join(volume);
        let ns = namespaces
            .get(namespace)
            .ok_or_else(|| io("fuse remove payload", &path, "namespace not mounted"))?;
        ns.tree
            .remove_payload(volume, dir_name)
            .map_err(|e| io("fuse remove payload", &path, e))
    }

    /// Drops `volume` from its namespace (after its bind at the target is
    /// gone) and unmounts the namespace when it was the last one. The
    /// volume's buffers are zeroized as soon as no open handle holds them.
    pub fn release(&self, namespace: &str, volume: &str) {
        {
            let namespaces = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(ns) = namespaces.get(namespace) {
                let _ = ns.tree.remove_volume(volume);
            }
        }
        self.release_if_empty(namespace);
    }

    fn release_if_empty(&self, namespace: &str) {
        // Unmounting under the lock keeps a concurrent first publish of the
        // same namespace from mounting over a mount being torn down. The
        // bind at the target is already gone, so the session ends at once;
        // `unmount_wait` bounds the rare case where it does not.
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        let empty = namespaces
            .get(namespace)
            .is_some_and(|ns| ns.tree.volumes().is_empty());
        if empty && let Some(mut ns) = namespaces.remove(namespace) {
            if let Err(e) = ns.handle.unmount() {
                tracing::warn!(namespace = %namespace, error = %e, "namespace FUSE unmount failed");
            }
            let _ = std::fs::remove_dir(self.namespace_dir(namespace));
        }
    }

    /// Namespaces with a live mount (for tests and metrics).
    pub fn mounted_namespaces(&self) -> Vec<String> {
        let namespaces = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<String> = namespaces.keys().cloned().collect();
        v.sort();
        v
    }
}
