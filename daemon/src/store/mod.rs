//! Secret buffers and the node's object cache.
//!
//! `SecretBytes` is the only type that holds plaintext object values inside
//! vaultlet: it zeroizes on drop, is mlocked where the kernel allows, and
//! never prints its contents. [`ObjectCache`] shares one fetched copy of
//! each object per (namespace, identity) between the volumes that use it,
//! with reference counts and single-flight fetches (DESIGN §6).

mod cache;
mod secret;

pub use cache::{
    CacheGauges, FetchFuture, FetchedVersion, Held, ObjectCache, ObjectKey, Refresh, RenderKey,
};
pub use secret::SecretBytes;
