//! vaultlet-fuse: a read-only in-memory FUSE filesystem (work in progress).
#![forbid(unsafe_code)]
