//! The node's object cache: one fetched copy of each Key Vault object per
//! (namespace, identity), shared by every volume that uses it (DESIGN §6).
//!
//! - **Key**: [`ObjectKey`] = (namespace, identity, vault URL, object type,
//!   object name, requested version, history depth). Names and versions are
//!   compared case-insensitively, as Key Vault does. Nothing is shared across
//!   namespaces or identities: a pod only ever receives bytes that its own
//!   identity was allowed to read.
//! - **References**: the cache itself holds only a `Weak` to each [`Held`].
//!   Every published volume holds an `Arc<Held>` (its lease), and rendered
//!   files are `Arc<SecretBytes>` held by the volume and by each open FUSE
//!   handle. When the last `Arc` goes, the buffers are zeroized and unmapped
//!   at once ([`SecretBytes`] drop).
//! - **Single-flight**: concurrent requests for one key share one fetch; a
//!   failed fetch is shared by those waiting on it and then forgotten.
//! - **Refresh** ([`ObjectCache::refresh`]): re-reads a key that tracks the
//!   latest version. Calls for one key are serialised and a key checked more
//!   recently than the caller's bound is not read again.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use prometheus_client::metrics::gauge::Gauge;

use super::SecretBytes;
use crate::auth::IdentityKey;
use crate::params::{ObjectEncoding, ObjectFormat, ObjectType};

/// What identifies one cached object (DESIGN §6). Holds no secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// The pod namespace.
    pub namespace: String,
    /// The identity that read it.
    pub identity: IdentityKey,
    /// Vault URL, `https://{name}.{suffix}/`, lowercase.
    pub vault: String,
    /// `objectType`.
    pub object_type: ObjectType,
    /// `objectName`, lowercase.
    pub name: String,
    /// `objectVersion` (lowercase), `None` for the latest.
    pub version: Option<String>,
    /// `objectVersionHistory` depth (0 and 1 are both 1).
    pub history: u32,
}

impl ObjectKey {
    /// Whether this key follows the latest version (and so is re-read by
    /// rotation). Pinned versions are never re-read.
    pub fn tracks_latest(&self) -> bool {
        self.version.is_none()
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectKey")
            .field("namespace", &self.namespace)
            .field("identity", &self.identity)
            .field("vault", &self.vault)
            .field("object_type", &self.object_type)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("history", &self.history)
            .finish()
    }
}

/// One version of an object as Key Vault returned it: for a secret its
/// value and contentType, for a key its public key as SPKI PEM, for a
/// certificate its PEM.
pub struct FetchedVersion {
    /// The version id (last segment of the object id).
    pub id: String,
    /// The secret's contentType, if any.
    pub content_type: Option<String>,
    /// The bytes.
    pub value: Arc<SecretBytes>,
}

impl fmt::Debug for FetchedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchedVersion")
            .field("id", &self.id)
            .field("content_type", &self.content_type)
            .field("value", &self.value)
            .finish()
    }
}

/// How a file is rendered from a version: (version index, objectFormat,
/// objectEncoding).
pub type RenderKey = (usize, Option<ObjectFormat>, Option<ObjectEncoding>);

/// A cached object: its versions, newest first (one unless history ≥ 2),
/// and the files rendered from them.
pub struct Held {
    key: ObjectKey,
    versions: Vec<FetchedVersion>,
    bytes: i64,
    jitter: f64,
    checked: Mutex<Instant>,
    /// Consecutive failed re-reads and when the next may be tried.
    failures: Mutex<(u32, Option<Instant>)>,
    renders: Mutex<HashMap<RenderKey, Weak<SecretBytes>>>,
    gauges: CacheGauges,
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Held")
            .field("key", &self.key)
            .field("versions", &self.version_ids())
            .finish_non_exhaustive()
    }
}

impl Held {
    fn new(key: ObjectKey, versions: Vec<FetchedVersion>, gauges: CacheGauges) -> Self {
        let bytes = versions.iter().map(|v| v.value.len() as i64).sum();
        gauges.objects.inc();
        gauges.bytes.inc_by(bytes);
        Self {
            key,
            versions,
            bytes,
            jitter: rand::random_range(0.0..0.1),
            checked: Mutex::new(Instant::now()),
            failures: Mutex::new((0, None)),
            renders: Mutex::new(HashMap::new()),
            gauges,
        }
    }

    /// The key.
    pub fn key(&self) -> &ObjectKey {
        &self.key
    }

    /// The versions, newest first.
    pub fn versions(&self) -> &[FetchedVersion] {
        &self.versions
    }

    /// The version ids, newest first.
    pub fn version_ids(&self) -> Vec<&str> {
        self.versions.iter().map(|v| v.id.as_str()).collect()
    }

    /// This entry's rotation jitter, a fraction of the interval in
    /// `[0, 0.1)`, fixed at creation so re-reads of different objects
    /// spread out.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// When Key Vault last confirmed these versions.
    pub fn checked(&self) -> Instant {
        *self.checked.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn touch(&self) {
        *self.checked.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// The rendered file for `key`, made with `render` the first time and
    /// shared afterwards while anyone holds it.
    ///
    /// # Errors
    /// Whatever `render` returns; nothing is memoised then.
    pub fn rendered<E>(
        &self,
        key: RenderKey,
        render: impl FnOnce(&FetchedVersion) -> Result<Arc<SecretBytes>, E>,
        missing: impl FnOnce() -> E,
    ) -> Result<Arc<SecretBytes>, E> {
        let Some(version) = self.versions.get(key.0) else {
            return Err(missing());
        };
        let mut renders = self.renders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(done) = renders.get(&key).and_then(Weak::upgrade) {
            return Ok(done);
        }
        let out = render(version)?;
        renders.retain(|_, w| w.strong_count() > 0);
        renders.insert(key, Arc::downgrade(&out));
        Ok(out)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gauges.objects.dec();
        self.gauges.bytes.dec_by(self.bytes);
    }
}

/// `vaultlet_cached_objects` and `vaultlet_cached_bytes`: live [`Held`]
/// objects and the bytes of their versions (rendered copies not counted).
#[derive(Clone, Debug, Default)]
pub struct CacheGauges {
    /// Live cached objects.
    pub objects: Gauge<i64, AtomicI64>,
    /// Bytes of their fetched versions.
    pub bytes: Gauge<i64, AtomicI64>,
}

type Loading<E> = Shared<BoxFuture<'static, Result<Arc<Held>, E>>>;

enum Slot<E> {
    Ready(Weak<Held>),
    Loading(Loading<E>, u64),
}

/// What [`ObjectCache::refresh`] found.
#[derive(Debug)]
pub enum Refresh<E> {
    /// The key was checked recently enough (by someone else, or by this
    /// call's bound) and not read again.
    Fresh,
    /// Key Vault still has the same versions.
    Unchanged,
    /// New versions: this is the new entry (the old one lives on while
    /// volumes and handles hold it).
    Updated(Arc<Held>),
    /// The read failed; the old entry stays.
    Failed(E),
}

/// The cache. Cheap to share behind an `Arc`.
pub struct ObjectCache<E> {
    slots: Mutex<HashMap<ObjectKey, Slot<E>>>,
    /// The last re-read error of keys in backoff (names and codes, never a
    /// value: `E` is the caller's error type).
    errors: Mutex<HashMap<ObjectKey, E>>,
    refreshing: Mutex<HashMap<ObjectKey, Arc<tokio::sync::Mutex<()>>>>,
    generation: AtomicU64,
    gauges: CacheGauges,
}

impl<E> fmt::Debug for ObjectCache<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectCache")
            .field("objects", &self.gauges.objects.get())
            .field("bytes", &self.gauges.bytes.get())
            .finish_non_exhaustive()
    }
}

impl<E: Clone + Send + Sync + 'static> Default for ObjectCache<E> {
    fn default() -> Self {
        Self::new(CacheGauges::default())
    }
}

/// A fetch of an object's versions, newest first.
pub type FetchFuture<E> = BoxFuture<'static, Result<Vec<FetchedVersion>, E>>;

impl<E: Clone + Send + Sync + 'static> ObjectCache<E> {
    /// An empty cache that reports into `gauges`.
    pub fn new(gauges: CacheGauges) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            errors: Mutex::new(HashMap::new()),
            refreshing: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            gauges,
        }
    }

    /// The gauges (for registration with the metrics registry).
    pub fn gauges(&self) -> &CacheGauges {
        &self.gauges
    }

    fn last_error(&self, key: &ObjectKey) -> Option<E> {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        // Forget errors of keys nobody holds any more.
        if errors.len() > 64 {
            let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            errors.retain(
                |k, _| matches!(slots.get(k), Some(Slot::Ready(w)) if w.strong_count() > 0),
            );
        }
        errors.get(key).cloned()
    }

    /// The held entry of `key`, if any volume or handle still holds it.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Held>> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.get(key) {
            Some(Slot::Ready(w)) => w.upgrade(),
            _ => None,
        }
    }

    /// The entry of `key`: the held one, or the result of the fetch already
    /// running for it, or of `fetch`, which is called (once) only when
    /// neither exists.
    ///
    /// # Errors
    /// The fetch's error, shared with every caller that waited on it.
    pub async fn get_or_fetch(
        &self,
        key: &ObjectKey,
        fetch: impl FnOnce() -> FetchFuture<E>,
    ) -> Result<Arc<Held>, E> {
        let (loading, generation) = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let running = match slots.get(key) {
                Some(Slot::Ready(w)) => match w.upgrade() {
                    Some(held) => return Ok(held),
                    None => None,
                },
                Some(Slot::Loading(f, g)) => Some((f.clone(), *g)),
                None => None,
            };
            match running {
                Some(pair) => pair,
                None => {
                    // Forget keys nobody holds any more before adding one.
                    slots.retain(|_, s| match s {
                        Slot::Ready(w) => w.strong_count() > 0,
                        Slot::Loading(..) => true,
                    });
                    let generation = self.generation.fetch_add(1, Ordering::Relaxed);
                    let gauges = self.gauges.clone();
                    let k = key.clone();
                    let fut = fetch();
                    let loading: Loading<E> = async move {
                        let versions = fut.await?;
                        Ok(Arc::new(Held::new(k, versions, gauges)))
                    }
                    .boxed()
                    .shared();
                    slots.insert(key.clone(), Slot::Loading(loading.clone(), generation));
                    (loading, generation)
                }
            }
        };
        self.settle(key, loading, generation).await
    }

    async fn settle(
        &self,
        key: &ObjectKey,
        loading: Loading<E>,
        generation: u64,
    ) -> Result<Arc<Held>, E> {
        let result = loading.await;
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(Slot::Loading(_, g)) = slots.get(key)
            && *g == generation
        {
            match &result {
                Ok(held) => {
                    slots.insert(key.clone(), Slot::Ready(Arc::downgrade(held)));
                }
                Err(_) => {
                    slots.remove(key);
                }
            }
        }
        result
    }

    /// Re-reads `key` unless it was checked less than `max_age` ago.
    /// `current` is the entry the caller holds; the new versions are
    /// compared with it. Calls for one key run one at a time.
    ///
    /// A failed re-read is not repeated at once: the next one waits
    /// `max_age / 8`, doubling with each consecutive failure up to
    /// `max_age`; calls inside that window get [`Refresh::Failed`] with the
    /// last error and send nothing, so every volume sharing a failing
    /// object costs one request per backoff step, not one each.
    pub async fn refresh(
        &self,
        current: &Arc<Held>,
        max_age: Duration,
        fetch: impl FnOnce() -> FetchFuture<E>,
    ) -> Refresh<E> {
        let key = current.key();
        let lock = {
            let mut r = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
            r.retain(|_, l| Arc::strong_count(l) > 1);
            r.entry(key.clone()).or_default().clone()
        };
        let _one_at_a_time = lock.lock().await;
        // Someone may have refreshed (and replaced) it while we waited.
        let newest = self.get(key).unwrap_or_else(|| current.clone());
        if newest.checked().elapsed() < max_age {
            return if Arc::ptr_eq(&newest, current) {
                Refresh::Fresh
            } else {
                Refresh::Updated(newest)
            };
        }
        if let Some(until) = newest.failures.lock().unwrap_or_else(|p| p.into_inner()).1
            && Instant::now() < until
            && let Some(e) = self.last_error(key)
        {
            return Refresh::Failed(e);
        }
        let versions = match fetch().await {
            Ok(v) => v,
            Err(e) => {
                let mut f = newest.failures.lock().unwrap_or_else(|p| p.into_inner());
                let step = (max_age / 8).max(Duration::from_millis(50));
                let wait = step.saturating_mul(1u32 << f.0.min(3)).min(max_age);
                *f = (f.0.saturating_add(1), Some(Instant::now() + wait));
                self.errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.clone(), e.clone());
                return Refresh::Failed(e);
            }
        };
        *newest.failures.lock().unwrap_or_else(|p| p.into_inner()) = (0, None);
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        let same = versions.len() == newest.versions.len()
            && versions
                .iter()
                .zip(&newest.versions)
                .all(|(a, b)| a.id.eq_ignore_ascii_case(&b.id));
        if same {
            // `versions` (the re-read bytes) drop here, zeroized.
            newest.touch();
            return if Arc::ptr_eq(&newest, current) {
                Refresh::Unchanged
            } else {
                Refresh::Updated(newest)
            };
        }
        let held = Arc::new(Held::new(key.clone(), versions, self.gauges.clone()));
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.insert(key.clone(), Slot::Ready(Arc::downgrade(&held)));
        Refresh::Updated(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::IdentityKind;
    use std::sync::atomic::AtomicUsize;

    fn key(ns: &str, name: &str) -> ObjectKey {
        ObjectKey {
            namespace: ns.into(),
            identity: IdentityKey {
                kind: IdentityKind::WorkloadIdentity,
                tenant_id: "t".into(),
                client_id: "c".into(),
                authority_host: "https://login.localhost".into(),
                namespace: Some(ns.into()),
                service_account: Some("sa".into()),
                secret_sha256: None,
            },
            vault: "https://kv.vault.localhost/".into(),
            object_type: ObjectType::Secret,
            name: name.into(),
            version: None,
            history: 1,
        }
    }

    fn version(id: &str, value: &[u8]) -> FetchedVersion {
        FetchedVersion {
            id: id.into(),
            content_type: None,
            value: Arc::new(SecretBytes::copy_from(value)),
        }
    }

    fn counting_fetch(
        calls: &Arc<AtomicUsize>,
        id: &'static str,
        value: &'static [u8],
    ) -> impl FnOnce() -> FetchFuture<String> + use<> {
        let calls = calls.clone();
        move || {
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(vec![version(id, value)])
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_fetch_and_one_buffer() {
        let cache: Arc<ObjectCache<String>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a", "s1");
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let cache = cache.clone();
                let k = k.clone();
                let f = counting_fetch(&calls, "v1", b"one");
                tokio::spawn(async move { cache.get_or_fetch(&k, f).await })
            })
            .collect();
        let mut held = Vec::new();
        for t in tasks {
            held.push(t.await.expect("join").expect("fetch"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(held.iter().all(|h| Arc::ptr_eq(h, &held[0])));
        assert_eq!(cache.gauges().objects.get(), 1);
        assert_eq!(cache.gauges().bytes.get(), 3);
        // A later request while it is held: no fetch.
        let again = cache
            .get_or_fetch(&k, counting_fetch(&calls, "v1", b"one"))
            .await
            .expect("held");
        assert!(Arc::ptr_eq(&again, &held[0]));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        drop(again);
        drop(held);
        assert_eq!(cache.gauges().objects.get(), 0, "last reference frees it");
        assert_eq!(cache.gauges().bytes.get(), 0);
        assert!(cache.get(&k).is_none());
        cache
            .get_or_fetch(&k, counting_fetch(&calls, "v1", b"one"))
            .await
            .expect("refetch");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "released means fetched again"
        );
    }

    #[tokio::test]
    async fn nothing_is_shared_across_namespaces_or_identities() {
        let cache: ObjectCache<String> = ObjectCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let a = cache
            .get_or_fetch(&key("a", "s1"), counting_fetch(&calls, "v1", b"x"))
            .await
            .expect("a");
        let b = cache
            .get_or_fetch(&key("b", "s1"), counting_fetch(&calls, "v1", b"x"))
            .await
            .expect("b");
        let mut other = key("a", "s1");
        other.identity.client_id = "other".into();
        let c = cache
            .get_or_fetch(&other, counting_fetch(&calls, "v1", b"x"))
            .await
            .expect("c");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(!Arc::ptr_eq(&a, &b) && !Arc::ptr_eq(&a, &c));
    }

    #[tokio::test]
    async fn a_failed_fetch_is_shared_then_forgotten() {
        let cache: Arc<ObjectCache<String>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a", "s1");
        let failing = |calls: &Arc<AtomicUsize>| {
            let calls = calls.clone();
            move || -> FetchFuture<String> {
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Err("denied".to_string())
                }
                .boxed()
            }
        };
        let (r1, r2) = tokio::join!(
            cache.get_or_fetch(&k, failing(&calls)),
            cache.get_or_fetch(&k, failing(&calls))
        );
        assert_eq!(r1.expect_err("fails"), "denied");
        assert_eq!(r2.expect_err("fails"), "denied");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        cache
            .get_or_fetch(&k, counting_fetch(&calls, "v1", b"ok"))
            .await
            .expect("a later call fetches again");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn refresh_reads_only_stale_keys_and_swaps_on_a_new_version() {
        let cache: ObjectCache<String> = ObjectCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a", "s1");
        let v1 = cache
            .get_or_fetch(&k, counting_fetch(&calls, "v1", b"one"))
            .await
            .expect("v1");
        let r = cache
            .refresh(
                &v1,
                Duration::from_secs(60),
                counting_fetch(&calls, "v2", b"two"),
            )
            .await;
        assert!(matches!(r, Refresh::Fresh), "{r:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let r = cache
            .refresh(&v1, Duration::ZERO, counting_fetch(&calls, "V1", b"one"))
            .await;
        assert!(matches!(r, Refresh::Unchanged), "{r:?}");
        let r = cache
            .refresh(&v1, Duration::ZERO, counting_fetch(&calls, "v2", b"two"))
            .await;
        let Refresh::Updated(v2) = r else {
            panic!("expected an update, got {r:?}");
        };
        assert_eq!(v2.version_ids(), vec!["v2"]);
        assert!(Arc::ptr_eq(&cache.get(&k).expect("held"), &v2));
        assert_eq!(cache.gauges().objects.get(), 2, "old lives while held");
        drop(v1);
        assert_eq!(cache.gauges().objects.get(), 1);
        assert_eq!(cache.gauges().bytes.get(), 3);
        let r = cache
            .refresh(&v2, Duration::ZERO, || {
                async { Err::<Vec<FetchedVersion>, _>("503".to_string()) }.boxed()
            })
            .await;
        assert!(matches!(r, Refresh::Failed(ref e) if e == "503"));
        assert!(Arc::ptr_eq(&cache.get(&k).expect("kept"), &v2));
    }

    #[tokio::test]
    async fn a_failed_refresh_backs_off_instead_of_reading_again_at_once() {
        let cache: ObjectCache<String> = ObjectCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a", "s1");
        let v1 = cache
            .get_or_fetch(&k, counting_fetch(&calls, "v1", b"one"))
            .await
            .expect("v1");
        let failing = |calls: &Arc<AtomicUsize>| {
            let calls = calls.clone();
            move || -> FetchFuture<String> {
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err("503".to_string())
                }
                .boxed()
            }
        };
        let max_age = Duration::from_millis(400);
        tokio::time::sleep(max_age).await;
        let before = calls.load(Ordering::SeqCst);
        // Ten volumes sharing the object ask in a row: one request.
        for _ in 0..10 {
            let r = cache.refresh(&v1, max_age, failing(&calls)).await;
            assert!(matches!(r, Refresh::Failed(ref e) if e == "503"), "{r:?}");
        }
        assert_eq!(calls.load(Ordering::SeqCst) - before, 1);
        // After the backoff step (max_age / 8), one more.
        tokio::time::sleep(max_age / 8 + Duration::from_millis(20)).await;
        let _ = cache.refresh(&v1, max_age, failing(&calls)).await;
        assert_eq!(calls.load(Ordering::SeqCst) - before, 2);
        // A success clears the backoff.
        tokio::time::sleep(max_age / 4 + Duration::from_millis(20)).await;
        let r = cache
            .refresh(&v1, max_age, counting_fetch(&calls, "v1", b"one"))
            .await;
        assert!(matches!(r, Refresh::Unchanged), "{r:?}");
    }

    #[tokio::test]
    async fn renders_are_shared_while_held() {
        let held = Held::new(
            key("a", "s1"),
            vec![version("v1", b"aGk=")],
            CacheGauges::default(),
        );
        let renders = AtomicUsize::new(0);
        let render = |v: &FetchedVersion| -> Result<Arc<SecretBytes>, String> {
            renders.fetch_add(1, Ordering::SeqCst);
            Ok(Arc::new(SecretBytes::copy_from(&v.value.expose()[..2])))
        };
        let rk = (0, None, Some(ObjectEncoding::Base64));
        let a = held.rendered(rk, render, || "missing".to_string());
        let b = held.rendered(rk, render, || "missing".to_string());
        let (a, b) = (a.expect("a"), b.expect("b"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        drop((a, b));
        let _c = held.rendered(rk, render, || "missing".to_string());
        assert_eq!(
            renders.load(Ordering::SeqCst),
            2,
            "a dropped render is made again"
        );
        let missing = held.rendered((3, None, None), render, || "missing".to_string());
        assert_eq!(missing.expect_err("no such version"), "missing");
    }
}
