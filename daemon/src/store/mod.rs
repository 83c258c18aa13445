//! Secret buffers. `SecretBytes` is the only type that holds plaintext
//! object values inside vaultlet: it zeroizes on drop, is mlocked where the
//! kernel allows, and never prints its contents.
//!
//! The namespace-scoped, reference-counted cache arrives with the FUSE and
//! rotation issues; until then every publish owns its buffers.

mod secret;

pub use secret::SecretBytes;
