//! vaultlet-fuse: a read-only in-memory FUSE filesystem whose file
//! contents are shared buffers owned by the caller, with kubelet's
//! AtomicWriter layout and an atomic swap of a volume's payload.
//!
//! The daemon mounts one [`FsTree`] per namespace, adds one volume dir per
//! published volume, and bind-mounts each volume dir onto its target path.
//! File contents never leave the daemon's memory except through `read(2)`
//! replies: files are served with direct I/O, so no copy stays in the page
//! cache (with the mmap exception below).
//!
//! # Shapes
//!
//! ```text
//! /                                   root, inode 1 (FsTree::with_root sets owner and mode)
//! /<volume>/                          add_volume: owner and mode as given; inode stable until removed
//! /<volume>/..<ts>/<path>             swap_payload: every entry, with its own mode, uid, gid
//! /<volume>/..<ts>/<dir>/             nested dirs for `a/b` paths: 0755, the volume's owner
//! /<volume>/..data -> ..<ts>          repointed by each swap (a new symlink inode)
//! /<volume>/<name> -> ..data/<name>   one per top-level name, kept across swaps
//! ```
//!
//! ```no_run
//! use std::sync::Arc;
//! use vaultlet_fuse::{DirAttrs, Entry, FsTree, MountOptions};
//!
//! # fn main() -> Result<(), vaultlet_fuse::Error> {
//! let tree: FsTree<Vec<u8>> = FsTree::new();
//! tree.add_volume("vol-1", DirAttrs::default())?;
//! let cert = Arc::new(b"-----BEGIN CERTIFICATE-----...".to_vec());
//! tree.swap_payload(
//!     "vol-1",
//!     "..2026_11_29_15_04_05.123456789",
//!     vec![Entry::new("tls.crt", cert).with_mode(0o440).with_owner(0, 1000)],
//! )?;
//! let mut mount = tree.mount("/run/vaultlet/fuse/ns-a", &MountOptions::default())?;
//! // ... later: a rotation, then the old payload goes.
//! let out = tree.swap_payload("vol-1", "..2026_11_29_15_06_05.000000001", vec![])?;
//! if let Some(old) = out.previous {
//!     tree.remove_payload("vol-1", &old)?;
//! }
//! mount.unmount()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Content lifetime
//!
//! Contents are `Arc<C>` with `C: AsRef<[u8]> + Send + Sync + 'static`
//! (the daemon's zeroizing, mlocked buffer). The tree holds one clone per
//! linked file; each open file handle (an OPEN not yet RELEASEd) holds one
//! more, so an open handle counts as a reference. Unlinking a file (a
//! removed payload or volume) drops the tree's clone at once, even while
//! the kernel still caches the inode; the bytes then live only as long as
//! the handles open on them. A `C` is dropped outside the tree's lock, in
//! whatever thread drops the last clone (the caller's, or a FUSE thread on
//! RELEASE). [`FsTree::open_handles`] and [`FsTree::open_handles_of`]
//! count handles; `Arc::strong_count` counts every reference.
//!
//! # FUSE protocol facts relied on
//!
//! - **No stale lookups.** Entry and attribute TTLs are zero: the kernel
//!   sends LOOKUP for every component of every path walk and GETATTR for
//!   every `stat`, so a swap is visible to the next walk. Missing names are
//!   ENOENT errors, which the kernel does not cache.
//! - **Inode lifetime.** Each LOOKUP reply adds one to the kernel's lookup
//!   count of that inode and FORGET subtracts; an inode may be asked about
//!   (GETATTR, OPEN) until its count is zero. Unlinked nodes therefore stay
//!   in the inode table until FORGET, inode numbers are never reused in a
//!   tree's lifetime, and the generation is 0. The kernel keeps an unused
//!   zero-TTL dentry cached (only virtiofs deletes expired dentries on last
//!   use), and a cached dentry pins its inode, so FORGET would otherwise
//!   wait for memory pressure: after every removal the tree sends
//!   `FUSE_NOTIFY_DELETE` (falling back to `FUSE_NOTIFY_INVAL_ENTRY`) for
//!   each removed name the kernel holds a lookup on, deepest first. The
//!   kernel then frees each dentry when nothing uses it any more, evicts
//!   the inode and sends FORGET. Notices are sent from the caller's thread
//!   with no lock held, since the kernel takes the parent directory's lock
//!   to process them.
//! - **Consistent readers.** A swap builds the whole new payload dir and
//!   repoints `..data` under one lock, so a path walk sees the old or the
//!   new payload. The old payload dir stays until
//!   [`FsTree::remove_payload`], so a walk that already read the old
//!   `..data` still finds its files. A handle reads the content it was
//!   opened with until RELEASE, which the kernel sends once per OPEN after
//!   the last descriptor and the last mapping of it are gone.
//! - **Direct I/O.** OPEN replies carry `FOPEN_DIRECT_IO`: each `read(2)`
//!   becomes READ requests (split at the connection's maximum read size)
//!   answered from the handle's content, the syscall returns what we
//!   reply, and a short reply is end of file. The reply is `writev`n to
//!   `/dev/fuse` straight from the content buffer.
//! - **Symlinks** are not cached (`FUSE_CACHE_SYMLINKS` is not
//!   negotiated): every traversal sends READLINK. READDIRPLUS is not
//!   negotiated either; READDIR lists `.`, `..`, then the children sorted
//!   by name, from a snapshot taken at offset 0.
//! - **Permissions.** The mount always has `default_permissions`: the
//!   kernel checks the reported uid, gid and mode itself (ACCESS is not
//!   sent). `allow_other` (the default) lets other users, the pods, in.
//! - **Read-only.** `MS_RDONLY` by default, and every request that would
//!   change anything (SETATTR, WRITE, CREATE, MKNOD, MKDIR, UNLINK, RMDIR,
//!   SYMLINK, LINK, RENAME, SETXATTR, REMOVEXATTR, FALLOCATE,
//!   COPY_FILE_RANGE) and any OPEN for writing or with `O_TRUNC` is
//!   answered EROFS.
//!
//! # Limits
//!
//! - **mmap.** The kernel refuses `mmap(MAP_SHARED)` of a direct-I/O file
//!   with ENODEV, because `FUSE_DIRECT_IO_ALLOW_MMAP` is never negotiated.
//!   `mmap(MAP_PRIVATE)` succeeds and is served **through the page cache**:
//!   the pages it faults in are copies of the content in kernel memory.
//!   They can stay cached after `munmap` and `close`, until the kernel
//!   invalidates that inode's page cache or evicts the inode: for a removed
//!   file, once nothing uses it (thanks to the removal notice); for a file
//!   still in the tree, possibly not before memory pressure. Freed pages are not
//!   zeroed unless the kernel runs with `init_on_free=1`. Consumers that
//!   need the no-page-cache guarantee must use `read(2)`.
//! - **No inotify events.** The kernel raises no fsnotify event for
//!   changes a FUSE server makes (swaps, removals), and FUSE has no notice
//!   that would. A watcher waiting for `IN_CREATE`/`IN_MOVED_TO` of
//!   `..data` (what kubelet's tmpfs writer produces) never fires here.
//!   Watchers that poll (re-`stat` or re-read `..data`) see each swap at
//!   once.
//! - What a reader does with the bytes (its own buffers, its copies) is
//!   outside this crate's reach. Unused dentries of files still in the
//!   tree stay in the kernel's dcache (names and attributes, no content),
//!   so their nodes stay in the inode table until memory pressure or
//!   removal.
//! - One mount per tree at a time; a tree whose previous session has not
//!   ended (a detached mount with files still open, or a bind mount
//!   elsewhere) cannot be mounted again until it does.
//! - Names are UTF-8 (`String`); a LOOKUP of a non-UTF-8 name is ENOENT.
//! - Extended attributes: none (`getxattr` is ENODATA). POSIX locks are
//!   left to the kernel (GETLK/SETLK answer ENOSYS). `lseek` with
//!   SEEK_DATA/SEEK_HOLE is left to the kernel too.
//!
//! # Errors
//!
//! Every fallible call returns [`Error`]. Tree changes that fail change
//! nothing. Messages name volumes, payload dirs and entry paths with their
//! 0-based index, never contents.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod fs;
mod mount;
mod names;
mod tree;

pub use error::Error;
pub use mount::{MountHandle, MountOptions};
pub use tree::{DATA_LINK, DirAttrs, Entry, FsTree, PAYLOAD_DIR_MODE, ROOT_INO, SwapOutcome};
