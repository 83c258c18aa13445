//! The in-memory tree: nodes and their inode lifetimes, open handles, the
//! kubelet AtomicWriter layout operations, and the logic of every FUSE
//! request (each returns `Result<_, Errno>` so it is unit-tested without a
//! mount; `fs.rs` only adapts it to `fuser`'s reply objects).
//!
//! # Inode lifetime
//!
//! Inode numbers come from a counter that only grows, so a number is never
//! reused within one [`FsTree`] and the generation is always 0. A node
//! *unlinked* from the tree (by a swap, [`FsTree::remove_payload`] or
//! [`FsTree::remove_volume`]) stays in the inode table while the kernel
//! still holds lookups on it (every successful LOOKUP reply adds one,
//! FORGET subtracts `nlookup`), so GETATTR on it keeps working; it is
//! dropped from the table when the count reaches zero. An unlinked file
//! drops its content reference at once: its bytes stay reachable only
//! through handles already open on it.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use fuser::{Errno, FileAttr, FileType, INodeNo, Notifier};
use tracing::debug;

use crate::error::Error;
use crate::names::{check_payload_name, check_volume_name, split_entry_path};

/// Inode number of the root directory (fixed by the FUSE protocol).
pub const ROOT_INO: u64 = 1;
/// Name of the symlink in a volume dir that names the current payload dir.
pub const DATA_LINK: &str = "..data";
/// Mode of payload dirs and of directories created for nested entry paths.
pub const PAYLOAD_DIR_MODE: u32 = 0o755;
/// Mode reported for symlinks (Linux ignores symlink permissions).
const LINK_MODE: u32 = 0o777;
/// `st_blksize` reported for every node.
const BLOCK_SIZE: u32 = 4096;

/// Owner and permission bits of a directory (the root, or a volume dir).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirAttrs {
    /// Owning user id.
    pub uid: u32,
    /// Owning group id.
    pub gid: u32,
    /// Permission bits, at most 0o777.
    pub mode: u32,
}

impl Default for DirAttrs {
    /// `root:root`, 0755.
    fn default() -> Self {
        Self {
            uid: 0,
            gid: 0,
            mode: PAYLOAD_DIR_MODE,
        }
    }
}

/// One regular file of a payload: its path relative to the volume dir, its
/// owner and mode, and its content.
///
/// The content is shared, not copied: the tree keeps one `Arc` clone while
/// the file is linked, and each open handle keeps another.
pub struct Entry<C> {
    /// `/`-separated relative path, e.g. `tls.crt` or `history/0`.
    /// Components are never empty, `.`, or `..`-prefixed, and contain no
    /// NUL or control character.
    pub path: String,
    /// Permission bits, at most 0o777.
    pub mode: u32,
    /// Owning user id.
    pub uid: u32,
    /// Owning group id.
    pub gid: u32,
    /// The bytes served for the file.
    pub content: Arc<C>,
}

impl<C> Entry<C> {
    /// An entry with mode 0644 owned by `root:root`.
    pub fn new(path: impl Into<String>, content: Arc<C>) -> Self {
        Self {
            path: path.into(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            content,
        }
    }

    /// Sets the permission bits.
    #[must_use]
    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the owner.
    #[must_use]
    pub fn with_owner(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }
}

impl<C> fmt::Debug for Entry<C> {
    /// Path, mode and owner; never the content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("path", &self.path)
            .field("mode", &format_args!("{:#o}", self.mode))
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("content", &format_args!("[REDACTED]"))
            .finish()
    }
}

/// What [`FsTree::swap_payload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapOutcome {
    /// The payload dir `..data` named before the swap, if any. It is still
    /// in the volume; remove it later with [`FsTree::remove_payload`].
    pub previous: Option<String>,
}

/// A read-only in-memory tree of directories, regular files and symlinks,
/// servable over FUSE with [`FsTree::mount`].
///
/// Cloning is cheap and every clone is the same tree; all methods take
/// `&self` and are safe to call from any thread while the tree is
/// mounted. Each mutation is done under one lock, so a FUSE request sees
/// the tree either before or after it, never in between.
///
/// Layout (kubelet AtomicWriter, DESIGN §5), one dir per volume:
///
/// ```text
/// /<volume>/..2026_11_29_15_04_05.123456789/<files, nested dirs>
/// /<volume>/..data -> ..2026_11_29_15_04_05.123456789
/// /<volume>/<top-level name> -> ..data/<top-level name>
/// ```
///
/// The root is inode [`ROOT_INO`]; a volume dir keeps its inode number
/// for as long as it exists, across any number of swaps.
pub struct FsTree<C> {
    pub(crate) inner: Arc<Inner<C>>,
}

impl<C> Clone for FsTree<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C> fmt::Debug for FsTree<C> {
    /// Counts only; never names or contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.inner.state);
        f.debug_struct("FsTree")
            .field("nodes", &st.nodes.len())
            .field("open_files", &st.files.len())
            .field("mounted", &st.mounted)
            .finish()
    }
}

/// Shared between the [`FsTree`] handles and the FUSE session.
pub(crate) struct Inner<C> {
    pub(crate) state: Mutex<State<C>>,
    /// Set while mounted; used for invalidation notices.
    pub(crate) notifier: Mutex<Option<Notifier>>,
}

/// Locks, recovering from poisoning: every mutation leaves the state
/// consistent before anything that could panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

enum Kind<C> {
    Dir(BTreeMap<String, u64>),
    File {
        /// `None` once the file is unlinked.
        content: Option<Arc<C>>,
        size: u64,
    },
    Symlink(String),
}

struct Node<C> {
    parent: u64,
    kind: Kind<C>,
    uid: u32,
    gid: u32,
    mode: u32,
    time: SystemTime,
    /// The kernel's lookup count on this inode.
    lookups: u64,
    /// Reachable from the root.
    linked: bool,
}

/// A name the kernel may still have cached for a node that is gone: the
/// tree tells the kernel about it once the lock is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Removed {
    pub(crate) parent: u64,
    pub(crate) child: u64,
    pub(crate) name: String,
}

/// What an unlink leaves to do outside the lock: content references to
/// drop, and removals to tell the kernel about.
pub(crate) struct Garbage<C> {
    drops: Vec<Arc<C>>,
    removed: Vec<Removed>,
}

impl<C> Default for Garbage<C> {
    fn default() -> Self {
        Self {
            drops: Vec::new(),
            removed: Vec::new(),
        }
    }
}

struct OpenFile<C> {
    ino: u64,
    content: Arc<C>,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirItem {
    pub(crate) ino: u64,
    pub(crate) kind: FileType,
    pub(crate) name: String,
}

struct DirHandle {
    ino: u64,
    /// Taken at the first READDIR at offset 0 (and again on rewind), so a
    /// listing read in several calls is consistent even across a swap.
    items: Vec<DirItem>,
}

/// Everything behind the tree's lock.
pub(crate) struct State<C> {
    nodes: HashMap<u64, Node<C>>,
    next_ino: u64,
    next_fh: u64,
    files: HashMap<u64, OpenFile<C>>,
    dirs: HashMap<u64, DirHandle>,
    pub(crate) mounted: bool,
}

/// A validated entry set, shaped as the directory tree it will become.
#[derive(Default)]
struct PlanDir {
    /// Index of the first entry that needed this dir.
    first: usize,
    children: BTreeMap<String, PlanNode>,
}

enum PlanNode {
    Dir(PlanDir),
    File(usize),
}

impl PlanNode {
    fn first_index(&self) -> usize {
        match self {
            PlanNode::Dir(d) => d.first,
            PlanNode::File(i) => *i,
        }
    }
}

/// Only permission bits: no setuid, setgid, sticky or file type bits.
fn mode_ok(mode: u32) -> bool {
    mode & !0o777 == 0
}

/// Validates every entry and shapes them into a tree.
fn plan<C>(entries: &[Entry<C>]) -> Result<PlanDir, Error> {
    let mut root = PlanDir::default();
    for (index, entry) in entries.iter().enumerate() {
        let parts = split_entry_path(&entry.path).map_err(|reason| Error::InvalidPath {
            index,
            path: entry.path.clone(),
            reason,
        })?;
        if !mode_ok(entry.mode) {
            return Err(Error::InvalidMode {
                index,
                mode: entry.mode,
            });
        }
        let conflict = |first: usize| Error::PathConflict {
            first,
            first_path: entries
                .get(first)
                .map(|e| e.path.clone())
                .unwrap_or_default(),
            second: index,
            second_path: entry.path.clone(),
        };
        let Some((leaf, dirs)) = parts.split_last() else {
            // split_entry_path never returns an empty list.
            continue;
        };
        let mut cur = &mut root;
        for part in dirs {
            let node = cur.children.entry((*part).to_owned()).or_insert_with(|| {
                PlanNode::Dir(PlanDir {
                    first: index,
                    children: BTreeMap::new(),
                })
            });
            cur = match node {
                PlanNode::Dir(d) => d,
                PlanNode::File(j) => return Err(conflict(*j)),
            };
        }
        if let Some(existing) = cur.children.get(*leaf) {
            return Err(conflict(existing.first_index()));
        }
        cur.children
            .insert((*leaf).to_owned(), PlanNode::File(index));
    }
    Ok(root)
}

/// The byte range a READ of `size` bytes at `offset` returns from a file
/// of `len` bytes: short at end of file, empty at or past it.
pub(crate) fn read_range(len: usize, offset: u64, size: u32) -> Range<usize> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(len);
    let want = usize::try_from(size).unwrap_or(usize::MAX);
    start..start.saturating_add(want).min(len)
}

impl<C: AsRef<[u8]>> State<C> {
    fn new(root: DirAttrs) -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT_INO,
            Node {
                parent: ROOT_INO,
                kind: Kind::Dir(BTreeMap::new()),
                uid: root.uid,
                gid: root.gid,
                mode: root.mode,
                time: SystemTime::now(),
                lookups: 0,
                linked: true,
            },
        );
        Self {
            nodes,
            next_ino: ROOT_INO + 1,
            next_fh: 1,
            files: HashMap::new(),
            dirs: HashMap::new(),
            mounted: false,
        }
    }

    fn insert(&mut self, node: Node<C>) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        ino
    }

    fn children(&self, ino: u64) -> Option<&BTreeMap<String, u64>> {
        match &self.nodes.get(&ino)?.kind {
            Kind::Dir(c) => Some(c),
            _ => None,
        }
    }

    fn children_mut(&mut self, ino: u64) -> Option<&mut BTreeMap<String, u64>> {
        match &mut self.nodes.get_mut(&ino)?.kind {
            Kind::Dir(c) => Some(c),
            _ => None,
        }
    }

    fn volume_ino(&self, volume: &str) -> Result<u64, Error> {
        self.children(ROOT_INO)
            .and_then(|c| c.get(volume).copied())
            .filter(|ino| self.children(*ino).is_some())
            .ok_or_else(|| Error::VolumeNotFound(volume.to_owned()))
    }

    fn symlink_target(&self, ino: u64) -> Option<&str> {
        match &self.nodes.get(&ino)?.kind {
            Kind::Symlink(t) => Some(t),
            _ => None,
        }
    }

    /// The payload dir `..data` of `vol` names.
    fn current_payload_of(&self, vol: u64) -> Option<String> {
        let link = *self.children(vol)?.get(DATA_LINK)?;
        self.symlink_target(link).map(str::to_owned)
    }

    /// Marks `ino` (named `name` in `parent`) and everything below it
    /// unlinked, moves file contents into `g.drops` (dropped after the
    /// lock is released), removes nodes the kernel holds no lookup on, and
    /// records in `g.removed` every (parent, child, name) the kernel may
    /// have a dentry for, children before their parents. The caller has
    /// already removed `name` from `parent`'s children.
    fn unlink_subtree(&mut self, parent: u64, name: String, ino: u64, g: &mut Garbage<C>) {
        let mut removed = Vec::new();
        let mut stack = vec![(parent, name, ino)];
        while let Some((parent, name, i)) = stack.pop() {
            if i == ROOT_INO {
                continue;
            }
            let Some(node) = self.nodes.get_mut(&i) else {
                continue;
            };
            node.linked = false;
            match &mut node.kind {
                Kind::Dir(children) => stack.extend(
                    std::mem::take(children)
                        .into_iter()
                        .map(|(child_name, child)| (i, child_name, child)),
                ),
                Kind::File { content, .. } => g.drops.extend(content.take()),
                Kind::Symlink(_) => {}
            }
            if node.lookups == 0 {
                // No lookup, no dentry: nothing for the kernel to forget.
                self.nodes.remove(&i);
            } else {
                removed.push(Removed {
                    parent,
                    child: i,
                    name,
                });
            }
        }
        // Each node was recorded before its descendants; reversed, the
        // deepest come first, so each notice finds its parent still cached.
        g.removed.extend(removed.into_iter().rev());
    }

    fn new_dir(&mut self, parent: u64, uid: u32, gid: u32, mode: u32, time: SystemTime) -> u64 {
        self.insert(Node {
            parent,
            kind: Kind::Dir(BTreeMap::new()),
            uid,
            gid,
            mode,
            time,
            lookups: 0,
            linked: true,
        })
    }

    fn new_symlink(
        &mut self,
        parent: u64,
        target: String,
        uid: u32,
        gid: u32,
        time: SystemTime,
    ) -> u64 {
        self.insert(Node {
            parent,
            kind: Kind::Symlink(target),
            uid,
            gid,
            mode: LINK_MODE,
            time,
            lookups: 0,
            linked: true,
        })
    }

    /// Creates the nodes of `plan` below the new dir `dir`.
    fn build(
        &mut self,
        dir: u64,
        plan: &PlanDir,
        entries: &[Entry<C>],
        owner: (u32, u32),
        time: SystemTime,
    ) {
        for (name, node) in &plan.children {
            let ino = match node {
                PlanNode::Dir(sub) => {
                    let ino = self.new_dir(dir, owner.0, owner.1, PAYLOAD_DIR_MODE, time);
                    self.build(ino, sub, entries, owner, time);
                    ino
                }
                PlanNode::File(index) => {
                    let Some(e) = entries.get(*index) else {
                        // plan() only records indices of `entries`.
                        continue;
                    };
                    let len = content_len(&e.content);
                    self.insert(Node {
                        parent: dir,
                        kind: Kind::File {
                            content: Some(Arc::clone(&e.content)),
                            size: len,
                        },
                        uid: e.uid,
                        gid: e.gid,
                        mode: e.mode,
                        time,
                        lookups: 0,
                        linked: true,
                    })
                }
            };
            if let Some(children) = self.children_mut(dir) {
                children.insert(name.clone(), ino);
            }
        }
    }

    fn add_volume(&mut self, name: &str, attrs: DirAttrs) -> Result<u64, Error> {
        if self
            .children(ROOT_INO)
            .is_some_and(|c| c.contains_key(name))
        {
            return Err(Error::VolumeExists(name.to_owned()));
        }
        let ino = self.new_dir(
            ROOT_INO,
            attrs.uid,
            attrs.gid,
            attrs.mode,
            SystemTime::now(),
        );
        if let Some(c) = self.children_mut(ROOT_INO) {
            c.insert(name.to_owned(), ino);
        }
        Ok(ino)
    }

    fn remove_volume(&mut self, name: &str, g: &mut Garbage<C>) -> Result<(), Error> {
        let ino = self.volume_ino(name)?;
        if let Some(c) = self.children_mut(ROOT_INO) {
            c.remove(name);
        }
        self.unlink_subtree(ROOT_INO, name.to_owned(), ino, g);
        Ok(())
    }

    /// Builds the payload dir, repoints `..data`, adds the top-level links
    /// the new payload needs and removes those it no longer has.
    fn swap_payload(
        &mut self,
        volume: &str,
        dir_name: &str,
        plan: &PlanDir,
        entries: &[Entry<C>],
        g: &mut Garbage<C>,
    ) -> Result<SwapOutcome, Error> {
        let vol = self.volume_ino(volume)?;
        let (uid, gid) = self
            .nodes
            .get(&vol)
            .map(|n| (n.uid, n.gid))
            .unwrap_or_default();
        if self.children(vol).is_some_and(|c| c.contains_key(dir_name)) {
            return Err(Error::PayloadExists {
                volume: volume.to_owned(),
                payload: dir_name.to_owned(),
            });
        }
        let time = SystemTime::now();
        let previous = self.current_payload_of(vol);

        // 1. The complete new payload dir.
        let payload = self.new_dir(vol, uid, gid, PAYLOAD_DIR_MODE, time);
        self.build(payload, plan, entries, (uid, gid), time);
        // 2. The new `..data` (a new inode, as rename(2) would give).
        let link = self.new_symlink(vol, dir_name.to_owned(), uid, gid, time);

        let Some(children) = self.children_mut(vol) else {
            // volume_ino() checked that `vol` is a directory.
            return Err(Error::VolumeNotFound(volume.to_owned()));
        };
        children.insert(dir_name.to_owned(), payload);
        let old_link = children.insert(DATA_LINK.to_owned(), link);
        // 3. Top-level links: keep the ones that already say `..data/<name>`,
        // drop the names the new payload no longer has.
        let stale: Vec<(String, u64)> = children
            .iter()
            .filter(|(name, _)| !name.starts_with(".."))
            .filter(|(name, _)| !plan.children.contains_key(*name))
            .map(|(name, ino)| (name.clone(), *ino))
            .collect();
        for (name, _) in &stale {
            children.remove(name);
        }
        let mut unlinked: Vec<(String, u64)> = old_link
            .map(|ino| (DATA_LINK.to_owned(), ino))
            .into_iter()
            .chain(stale)
            .collect();
        for name in plan.children.keys() {
            let target = format!("{DATA_LINK}/{name}");
            let existing = self.children(vol).and_then(|c| c.get(name).copied());
            if let Some(ino) = existing {
                if self.symlink_target(ino) == Some(target.as_str()) {
                    continue;
                }
                unlinked.push((name.clone(), ino));
            }
            let new = self.new_symlink(vol, target, uid, gid, time);
            if let Some(c) = self.children_mut(vol) {
                c.insert(name.clone(), new);
            }
        }
        for (name, ino) in unlinked {
            self.unlink_subtree(vol, name, ino, g);
        }
        Ok(SwapOutcome { previous })
    }

    fn remove_payload(
        &mut self,
        volume: &str,
        dir_name: &str,
        g: &mut Garbage<C>,
    ) -> Result<(), Error> {
        let vol = self.volume_ino(volume)?;
        let not_found = || Error::PayloadNotFound {
            volume: volume.to_owned(),
            payload: dir_name.to_owned(),
        };
        let ino = self
            .children(vol)
            .and_then(|c| c.get(dir_name).copied())
            .ok_or_else(not_found)?;
        if self.children(ino).is_none() {
            return Err(not_found());
        }
        if self.current_payload_of(vol).as_deref() == Some(dir_name) {
            return Err(Error::PayloadInUse {
                volume: volume.to_owned(),
                payload: dir_name.to_owned(),
            });
        }
        if let Some(c) = self.children_mut(vol) {
            c.remove(dir_name);
        }
        self.unlink_subtree(vol, dir_name.to_owned(), ino, g);
        Ok(())
    }

    fn attr(&self, ino: u64, node: &Node<C>, size_override: Option<u64>) -> FileAttr {
        let (kind, size, mut nlink) = match &node.kind {
            Kind::Dir(children) => {
                let subdirs = children
                    .values()
                    .filter(|c| self.children(**c).is_some())
                    .count();
                let nlink = u32::try_from(subdirs).unwrap_or(u32::MAX - 2) + 2;
                (FileType::Directory, 0, nlink)
            }
            Kind::File { size, .. } => (FileType::RegularFile, *size, 1),
            Kind::Symlink(t) => (FileType::Symlink, t.len() as u64, 1),
        };
        if !node.linked {
            nlink = 0;
        }
        let size = size_override.unwrap_or(size);
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.time,
            mtime: node.time,
            ctime: node.time,
            crtime: node.time,
            kind,
            // Modes are checked to be at most 0o777 on the way in.
            perm: (node.mode & 0o7777) as u16,
            nlink,
            uid: node.uid,
            gid: node.gid,
            rdev: 0,
            blksize: BLOCK_SIZE,
            flags: 0,
        }
    }

    // ---- FUSE request logic -------------------------------------------

    /// LOOKUP: the child's attributes; adds one kernel lookup to it.
    pub(crate) fn lookup(&mut self, parent: u64, name: &OsStr) -> Result<FileAttr, Errno> {
        let p = self.nodes.get(&parent).ok_or(Errno::ENOENT)?;
        let Kind::Dir(children) = &p.kind else {
            return Err(Errno::ENOTDIR);
        };
        let name = name.to_str().ok_or(Errno::ENOENT)?;
        let ino = match name {
            "." => parent,
            ".." => p.parent,
            _ => *children.get(name).ok_or(Errno::ENOENT)?,
        };
        let node = self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        node.lookups += 1;
        let node = self.nodes.get(&ino).ok_or(Errno::ENOENT)?;
        Ok(self.attr(ino, node, None))
    }

    /// FORGET: drops `nlookup` kernel lookups; an unlinked node with none
    /// left leaves the inode table.
    pub(crate) fn forget(&mut self, ino: u64, nlookup: u64) {
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(nlookup);
        if !node.linked && node.lookups == 0 && ino != ROOT_INO {
            self.nodes.remove(&ino);
        }
    }

    /// GETATTR. With an open file handle the size is the handle's content
    /// length (the bytes that handle reads).
    pub(crate) fn getattr(&self, ino: u64, fh: Option<u64>) -> Result<FileAttr, Errno> {
        let node = self.nodes.get(&ino).ok_or(Errno::ENOENT)?;
        let size = fh
            .and_then(|fh| self.files.get(&fh))
            .filter(|f| f.ino == ino)
            .map(|f| content_len(&f.content));
        Ok(self.attr(ino, node, size))
    }

    /// READLINK: the target, verbatim.
    pub(crate) fn readlink(&self, ino: u64) -> Result<Vec<u8>, Errno> {
        let node = self.nodes.get(&ino).ok_or(Errno::ENOENT)?;
        match &node.kind {
            Kind::Symlink(t) => Ok(t.as_bytes().to_vec()),
            _ => Err(Errno::EINVAL),
        }
    }

    /// OPEN: read-only opens of linked regular files get a handle that
    /// holds a clone of the content `Arc`.
    pub(crate) fn open(&mut self, ino: u64, flags: i32) -> Result<u64, Errno> {
        let node = self.nodes.get(&ino).ok_or(Errno::ENOENT)?;
        if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
            return Err(Errno::EROFS);
        }
        let content = match &node.kind {
            Kind::Dir(_) => return Err(Errno::EISDIR),
            Kind::Symlink(_) => return Err(Errno::ELOOP),
            Kind::File { content: None, .. } => return Err(Errno::ENOENT),
            Kind::File {
                content: Some(c), ..
            } => Arc::clone(c),
        };
        let fh = self.next_fh;
        self.next_fh += 1;
        self.files.insert(fh, OpenFile { ino, content });
        Ok(fh)
    }

    /// READ: the content of the open handle (the caller slices it with
    /// [`read_range`] after releasing the lock).
    pub(crate) fn read_content(&self, ino: u64, fh: u64) -> Result<Arc<C>, Errno> {
        match self.files.get(&fh) {
            Some(f) if f.ino == ino => Ok(Arc::clone(&f.content)),
            _ => Err(Errno::EBADF),
        }
    }

    /// RELEASE: forgets the handle; returns its content reference for the
    /// caller to drop after releasing the lock.
    pub(crate) fn release(&mut self, fh: u64) -> Option<Arc<C>> {
        self.files.remove(&fh).map(|f| f.content)
    }

    /// OPENDIR.
    pub(crate) fn opendir(&mut self, ino: u64) -> Result<u64, Errno> {
        let node = self.nodes.get(&ino).ok_or(Errno::ENOENT)?;
        if !matches!(node.kind, Kind::Dir(_)) {
            return Err(Errno::ENOTDIR);
        }
        let fh = self.next_fh;
        self.next_fh += 1;
        self.dirs.insert(
            fh,
            DirHandle {
                ino,
                items: Vec::new(),
            },
        );
        Ok(fh)
    }

    fn listing(&self, ino: u64) -> Vec<DirItem> {
        let Some(node) = self.nodes.get(&ino) else {
            return Vec::new();
        };
        let mut items = vec![
            DirItem {
                ino,
                kind: FileType::Directory,
                name: ".".to_owned(),
            },
            DirItem {
                ino: node.parent,
                kind: FileType::Directory,
                name: "..".to_owned(),
            },
        ];
        if let Kind::Dir(children) = &node.kind {
            for (name, child) in children {
                let kind = match self.nodes.get(child).map(|n| &n.kind) {
                    Some(Kind::Dir(_)) => FileType::Directory,
                    Some(Kind::File { .. }) => FileType::RegularFile,
                    Some(Kind::Symlink(_)) => FileType::Symlink,
                    None => continue,
                };
                items.push(DirItem {
                    ino: *child,
                    kind,
                    name: name.clone(),
                });
            }
        }
        items
    }

    /// READDIR: the items from index `offset` on, each paired with the
    /// offset of the item after it. Offset 0 (a new listing or a rewind)
    /// takes a fresh snapshot: `.`, `..`, then children sorted by name.
    pub(crate) fn readdir(
        &mut self,
        ino: u64,
        fh: u64,
        offset: u64,
    ) -> Result<Vec<(u64, DirItem)>, Errno> {
        let snapshot = (offset == 0).then(|| self.listing(ino));
        let handle = match self.dirs.get_mut(&fh) {
            Some(h) if h.ino == ino => h,
            _ => return Err(Errno::EBADF),
        };
        if let Some(items) = snapshot {
            handle.items = items;
        }
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        Ok(handle
            .items
            .iter()
            .enumerate()
            .skip(start)
            .map(|(i, item)| (i as u64 + 1, item.clone()))
            .collect())
    }

    /// RELEASEDIR.
    pub(crate) fn releasedir(&mut self, fh: u64) {
        self.dirs.remove(&fh);
    }

    /// ACCESS (only sent without `default_permissions`): existence, and
    /// EROFS for write access.
    pub(crate) fn access(&self, ino: u64, mask: i32) -> Result<(), Errno> {
        if !self.nodes.contains_key(&ino) {
            return Err(Errno::ENOENT);
        }
        if mask & libc::W_OK != 0 {
            return Err(Errno::EROFS);
        }
        Ok(())
    }

    /// Number of inodes in the table (STATFS `f_files`).
    pub(crate) fn node_count(&self) -> u64 {
        self.nodes.len() as u64
    }

    /// After the session ends the kernel holds no lookups and no handles:
    /// reset the counts, purge unlinked nodes, return the handles'
    /// content references for the caller to drop.
    pub(crate) fn reset_after_unmount(&mut self) -> Vec<Arc<C>> {
        for node in self.nodes.values_mut() {
            node.lookups = 0;
        }
        self.nodes.retain(|_, n| n.linked);
        self.dirs.clear();
        self.mounted = false;
        self.files.drain().map(|(_, f)| f.content).collect()
    }
}

/// Length of a content in bytes. (`Arc<C>` is itself `AsRef<C>`, hence
/// the explicit form.)
fn content_len<C: AsRef<[u8]>>(c: &Arc<C>) -> u64 {
    AsRef::<[u8]>::as_ref(&**c).len() as u64
}

impl<C: AsRef<[u8]> + Send + Sync + 'static> Default for FsTree<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: AsRef<[u8]> + Send + Sync + 'static> FsTree<C> {
    /// An empty tree whose root is `root:root` 0755.
    pub fn new() -> Self {
        Self::from_state(State::new(DirAttrs::default()))
    }

    /// An empty tree whose root has `root`'s owner and mode.
    ///
    /// # Errors
    /// [`Error::InvalidDirMode`] when the mode has bits outside 0o777.
    pub fn with_root(root: DirAttrs) -> Result<Self, Error> {
        if !mode_ok(root.mode) {
            return Err(Error::InvalidDirMode(root.mode));
        }
        Ok(Self::from_state(State::new(root)))
    }

    fn from_state(state: State<C>) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                notifier: Mutex::new(None),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<C>> {
        lock(&self.inner.state)
    }

    /// Finishes an unlink outside the lock: drops the content references,
    /// then tells the kernel about every removed name it may have cached
    /// (best effort; nothing to do when not mounted).
    ///
    /// `FUSE_NOTIFY_DELETE` unhashes the dentry, so it is freed and its
    /// inode FORGOTten as soon as nothing uses it (an unused zero-TTL
    /// dentry is otherwise kept until memory pressure: the kernel deletes
    /// expired dentries on last use only for virtiofs), and sets the
    /// kernel inode's nlink to 0. The kernel refuses it for a directory
    /// that still has cached children, hence deepest first, and
    /// `FUSE_NOTIFY_INVAL_ENTRY` as the fallback. Neither raises an
    /// inotify event. Never called with a lock held or from a FUSE request
    /// thread: the kernel takes the parent directory's lock to process a
    /// notice.
    fn finish(&self, g: Garbage<C>) {
        drop(g.drops);
        if g.removed.is_empty() {
            return;
        }
        let notifier = lock(&self.inner.notifier).clone();
        let Some(notifier) = notifier else {
            return;
        };
        for r in g.removed {
            let name = OsStr::new(&r.name);
            let parent = INodeNo(r.parent);
            if notifier.delete(parent, INodeNo(r.child), name).is_err()
                && let Err(e) = notifier.inval_entry(parent, name)
            {
                debug!(parent = r.parent, name = %r.name, error = %e, "fuse invalidation not delivered");
            }
        }
    }

    /// Adds the volume dir `/<name>` with `attrs`' owner and mode. Returns
    /// its inode number, stable until [`FsTree::remove_volume`].
    ///
    /// # Errors
    /// [`Error::InvalidName`] unless `name` is one path component (not
    /// empty, `.` or `..`; no `/`, NUL or control character; at most 255
    /// bytes); [`Error::InvalidDirMode`]; [`Error::VolumeExists`].
    pub fn add_volume(&self, name: &str, attrs: DirAttrs) -> Result<u64, Error> {
        check_volume_name(name).map_err(|reason| Error::InvalidName {
            what: "volume",
            name: name.to_owned(),
            reason,
        })?;
        if !mode_ok(attrs.mode) {
            return Err(Error::InvalidDirMode(attrs.mode));
        }
        let ino = self.lock().add_volume(name, attrs)?;
        debug!(volume = %name, ino, "fuse volume added");
        Ok(ino)
    }

    /// Removes the volume dir `/<name>` and everything in it. Contents are
    /// released at once except where a handle is still open on them; the
    /// kernel is told to drop its cached entry.
    ///
    /// # Errors
    /// [`Error::VolumeNotFound`].
    pub fn remove_volume(&self, name: &str) -> Result<(), Error> {
        let mut g = Garbage::default();
        let result = self.lock().remove_volume(name, &mut g);
        self.finish(g);
        result?;
        debug!(volume = %name, "fuse volume removed");
        Ok(())
    }

    /// Publishes `entries` as the volume's new content, atomically.
    ///
    /// Under one lock: builds the payload dir `/<volume>/<dir_name>`
    /// (0755, with the volume dir's owner, as are nested dirs and links)
    /// holding every entry with its own mode and owner; points a new
    /// `..data` symlink at it; makes `<name> -> ..data/<name>` for every
    /// top-level name (an existing link with that target keeps its inode);
    /// and removes the top-level links the new payload no longer has.
    /// A FUSE request sees the whole old layout or the whole new one.
    ///
    /// The previous payload dir stays, so paths already resolved through
    /// the old `..data` keep working, and handles open on old files keep
    /// reading the old bytes; drop it later with [`FsTree::remove_payload`].
    ///
    /// `dir_name` is chosen by the caller; kubelet's form is
    /// `..<UTC %Y_%m_%d_%H_%M_%S>.<ns>`.
    ///
    /// # Errors
    /// Nothing changes on error:
    /// - [`Error::InvalidName`] unless `dir_name` is one path component
    ///   that starts with `..` and is not `..data`;
    /// - [`Error::InvalidPath`], [`Error::InvalidMode`] or
    ///   [`Error::PathConflict`] for an entry (0-based index);
    /// - [`Error::VolumeNotFound`], [`Error::PayloadExists`].
    pub fn swap_payload(
        &self,
        volume: &str,
        dir_name: &str,
        entries: Vec<Entry<C>>,
    ) -> Result<SwapOutcome, Error> {
        check_payload_name(dir_name).map_err(|reason| Error::InvalidName {
            what: "payload dir",
            name: dir_name.to_owned(),
            reason,
        })?;
        let plan = plan(&entries)?;
        let mut g = Garbage::default();
        let result = self
            .lock()
            .swap_payload(volume, dir_name, &plan, &entries, &mut g);
        drop(entries);
        self.finish(g);
        let outcome = result?;
        debug!(volume = %volume, payload = %dir_name, files = plan.children.len(), "fuse payload swapped");
        Ok(outcome)
    }

    /// Removes a payload dir that `..data` no longer names, with everything
    /// in it. Contents are released at once except where a handle is still
    /// open on them (those are released when the handle closes).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a name [`FsTree::swap_payload`] would
    /// refuse; [`Error::VolumeNotFound`]; [`Error::PayloadNotFound`]
    /// (also when the name is not a directory); [`Error::PayloadInUse`]
    /// for the current one.
    pub fn remove_payload(&self, volume: &str, dir_name: &str) -> Result<(), Error> {
        check_payload_name(dir_name).map_err(|reason| Error::InvalidName {
            what: "payload dir",
            name: dir_name.to_owned(),
            reason,
        })?;
        let mut g = Garbage::default();
        let result = self.lock().remove_payload(volume, dir_name, &mut g);
        self.finish(g);
        result?;
        debug!(volume = %volume, payload = %dir_name, "fuse payload removed");
        Ok(())
    }

    /// Names of the volume dirs, sorted.
    pub fn volumes(&self) -> Vec<String> {
        self.lock()
            .children(ROOT_INO)
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The payload dir `..data` names, `None` before the first swap.
    ///
    /// # Errors
    /// [`Error::VolumeNotFound`].
    pub fn current_payload(&self, volume: &str) -> Result<Option<String>, Error> {
        let st = self.lock();
        let vol = st.volume_ino(volume)?;
        Ok(st.current_payload_of(vol))
    }

    /// Every payload dir of the volume (current and old), sorted.
    ///
    /// # Errors
    /// [`Error::VolumeNotFound`].
    pub fn payload_dirs(&self, volume: &str) -> Result<Vec<String>, Error> {
        let st = self.lock();
        let vol = st.volume_ino(volume)?;
        Ok(st
            .children(vol)
            .map(|c| {
                c.iter()
                    .filter(|(name, ino)| name.starts_with("..") && st.children(**ino).is_some())
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Number of open file handles (OPENs not yet RELEASEd), over all
    /// contents. Directory handles are not counted.
    pub fn open_handles(&self) -> usize {
        self.lock().files.len()
    }

    /// Number of open file handles reading this very content (compared by
    /// `Arc` pointer). Each such handle also holds one strong reference, so
    /// `Arc::strong_count(content)` counts the caller's references, one per
    /// linked file in the tree with this content, and one per open handle.
    pub fn open_handles_of(&self, content: &Arc<C>) -> usize {
        self.lock()
            .files
            .values()
            .filter(|f| Arc::ptr_eq(&f.content, content))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Content that records its drop.
    struct Flagged {
        bytes: Vec<u8>,
        dropped: Arc<AtomicBool>,
    }

    impl AsRef<[u8]> for Flagged {
        fn as_ref(&self) -> &[u8] {
            &self.bytes
        }
    }

    impl Drop for Flagged {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    fn flagged(bytes: &[u8]) -> (Arc<Flagged>, Arc<AtomicBool>) {
        let dropped = Arc::new(AtomicBool::new(false));
        (
            Arc::new(Flagged {
                bytes: bytes.to_vec(),
                dropped: Arc::clone(&dropped),
            }),
            dropped,
        )
    }

    fn bytes(b: &[u8]) -> Arc<Vec<u8>> {
        Arc::new(b.to_vec())
    }

    /// Resolves `path` from the root the way the kernel would, one LOOKUP
    /// per component (adding lookups), without following symlinks.
    fn walk<C: AsRef<[u8]>>(st: &mut State<C>, path: &str) -> Result<FileAttr, Errno> {
        let mut attr = st.getattr(ROOT_INO, None)?;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            attr = st.lookup(attr.ino.0, OsStr::new(part))?;
        }
        Ok(attr)
    }

    fn ino_of<C>(tree: &FsTree<C>, path: &str) -> u64
    where
        C: AsRef<[u8]> + Send + Sync + 'static,
    {
        let mut st = tree.lock();
        let attr = walk(&mut st, path).expect("path resolves");
        // Give the lookups back so the probe leaves no trace.
        let mut ino = ROOT_INO;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let child = st.children(ino).and_then(|c| c.get(part).copied());
            st.forget(child.unwrap_or(0), 1);
            ino = child.unwrap_or(0);
        }
        attr.ino.0
    }

    fn read_all<C: AsRef<[u8]>>(st: &mut State<C>, ino: u64) -> Vec<u8> {
        let fh = st.open(ino, libc::O_RDONLY).expect("open");
        let c = st.read_content(ino, fh).expect("read");
        let data = AsRef::<[u8]>::as_ref(&*c).to_vec();
        drop(st.release(fh));
        data
    }

    fn tree_with_volume() -> FsTree<Vec<u8>> {
        let tree = FsTree::new();
        tree.add_volume(
            "vol",
            DirAttrs {
                uid: 10,
                gid: 20,
                mode: 0o750,
            },
        )
        .expect("add volume");
        tree
    }

    #[test]
    fn read_range_is_short_at_eof_and_empty_past_it() {
        assert_eq!(read_range(10, 0, 4), 0..4);
        assert_eq!(read_range(10, 8, 4), 8..10);
        assert_eq!(read_range(10, 10, 4), 10..10);
        assert_eq!(read_range(10, 11, 4), 10..10);
        assert_eq!(read_range(10, u64::MAX, u32::MAX), 10..10);
        assert_eq!(read_range(10, 3, 0), 3..3);
        assert_eq!(read_range(0, 0, 4096), 0..0);
    }

    #[test]
    fn volumes_are_added_once_and_named_strictly() {
        let tree = tree_with_volume();
        assert!(matches!(
            tree.add_volume("vol", DirAttrs::default()),
            Err(Error::VolumeExists(_))
        ));
        for bad in ["", ".", "..", "a/b", "a\0"] {
            assert!(
                matches!(
                    tree.add_volume(bad, DirAttrs::default()),
                    Err(Error::InvalidName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            tree.add_volume(
                "x",
                DirAttrs {
                    mode: 0o4755,
                    ..DirAttrs::default()
                }
            ),
            Err(Error::InvalidDirMode(0o4755))
        ));
        assert_eq!(tree.volumes(), vec!["vol".to_owned()]);
        let mut st = tree.lock();
        let attr = walk(&mut st, "vol").expect("lookup");
        assert_eq!(attr.kind, FileType::Directory);
        assert_eq!((attr.uid, attr.gid, attr.perm), (10, 20, 0o750));
        assert_eq!(attr.nlink, 2);
    }

    #[test]
    fn swap_builds_atomic_writer_layout() {
        let tree = tree_with_volume();
        let out = tree
            .swap_payload(
                "vol",
                "..ts1",
                vec![
                    Entry::new("tls.crt", bytes(b"CERT"))
                        .with_mode(0o640)
                        .with_owner(1, 2),
                    Entry::new("hist/0", bytes(b"v0")),
                    Entry::new("hist/1", bytes(b"v1")).with_mode(0o400),
                ],
            )
            .expect("swap");
        assert_eq!(out.previous, None);
        assert_eq!(
            tree.current_payload("vol").expect("vol"),
            Some("..ts1".to_owned())
        );

        let mut st = tree.lock();
        let data = walk(&mut st, "vol/..data").expect("..data");
        assert_eq!(data.kind, FileType::Symlink);
        assert_eq!(st.readlink(data.ino.0).expect("readlink"), b"..ts1");
        for (name, target) in [("tls.crt", "..data/tls.crt"), ("hist", "..data/hist")] {
            let link = walk(&mut st, &format!("vol/{name}")).expect("link");
            assert_eq!(link.kind, FileType::Symlink, "{name}");
            assert_eq!(
                st.readlink(link.ino.0).expect("readlink"),
                target.as_bytes()
            );
        }
        let payload = walk(&mut st, "vol/..ts1").expect("payload");
        assert_eq!(payload.kind, FileType::Directory);
        assert_eq!((payload.uid, payload.gid, payload.perm), (10, 20, 0o755));
        assert_eq!(payload.nlink, 3, "payload dir has one subdir");
        let hist = walk(&mut st, "vol/..ts1/hist").expect("hist");
        assert_eq!((hist.kind, hist.perm), (FileType::Directory, 0o755));
        let crt = walk(&mut st, "vol/..ts1/tls.crt").expect("crt");
        assert_eq!(crt.kind, FileType::RegularFile);
        assert_eq!((crt.uid, crt.gid, crt.perm, crt.size), (1, 2, 0o640, 4));
        let h1 = walk(&mut st, "vol/..ts1/hist/1").expect("hist/1");
        assert_eq!((h1.uid, h1.gid, h1.perm, h1.size), (0, 0, 0o400, 2));
        assert_eq!(read_all(&mut st, h1.ino.0), b"v1");
        assert_eq!(read_all(&mut st, crt.ino.0), b"CERT");
    }

    #[test]
    fn second_swap_repoints_data_keeps_old_payload_and_stable_inodes() {
        let tree = tree_with_volume();
        tree.swap_payload(
            "vol",
            "..ts1",
            vec![
                Entry::new("a", bytes(b"old-a")),
                Entry::new("gone", bytes(b"old-gone")),
            ],
        )
        .expect("swap 1");
        let vol_ino = ino_of(&tree, "vol");
        let link_a = ino_of(&tree, "vol/a");
        let data1 = ino_of(&tree, "vol/..data");

        let out = tree
            .swap_payload(
                "vol",
                "..ts2",
                vec![
                    Entry::new("a", bytes(b"new-a")),
                    Entry::new("b", bytes(b"new-b")),
                ],
            )
            .expect("swap 2");
        assert_eq!(out.previous.as_deref(), Some("..ts1"));
        assert_eq!(ino_of(&tree, "vol"), vol_ino, "volume inode stable");
        assert_eq!(
            ino_of(&tree, "vol/a"),
            link_a,
            "unchanged link keeps its inode"
        );
        assert_ne!(ino_of(&tree, "vol/..data"), data1, "..data is a new inode");
        assert_eq!(
            tree.payload_dirs("vol").expect("vol"),
            vec!["..ts1".to_owned(), "..ts2".to_owned()]
        );

        let mut st = tree.lock();
        assert_eq!(
            walk(&mut st, "vol/gone"),
            Err(Errno::ENOENT),
            "stale link removed"
        );
        let b = walk(&mut st, "vol/b").expect("new link");
        assert_eq!(st.readlink(b.ino.0).expect("readlink"), b"..data/b");
        let data = walk(&mut st, "vol/..data").expect("..data");
        assert_eq!(st.readlink(data.ino.0).expect("readlink"), b"..ts2");
        let old = walk(&mut st, "vol/..ts1/a").expect("old payload still there");
        assert_eq!(read_all(&mut st, old.ino.0), b"old-a");
        let new = walk(&mut st, "vol/..ts2/a").expect("new payload");
        assert_eq!(read_all(&mut st, new.ino.0), b"new-a");
    }

    #[test]
    fn invalid_entries_change_nothing() {
        let tree = tree_with_volume();
        let cases: Vec<(Vec<Entry<Vec<u8>>>, &str)> = vec![
            (vec![Entry::new("", bytes(b""))], "empty"),
            (vec![Entry::new("/abs", bytes(b""))], "absolute"),
            (vec![Entry::new("a/../b", bytes(b""))], "dotdot"),
            (vec![Entry::new("..data", bytes(b""))], "reserved"),
            (vec![Entry::new("a\u{7}", bytes(b""))], "control"),
            (vec![Entry::new("a", bytes(b"")).with_mode(0o1644)], "mode"),
        ];
        for (entries, what) in cases {
            let err = tree.swap_payload("vol", "..x", entries).expect_err(what);
            assert!(
                matches!(
                    err,
                    Error::InvalidPath { index: 0, .. } | Error::InvalidMode { index: 0, .. }
                ),
                "{what}: {err}"
            );
        }
        let dup = tree
            .swap_payload(
                "vol",
                "..x",
                vec![
                    Entry::new("a", bytes(b"")),
                    Entry::new("b", bytes(b"")),
                    Entry::new("a", bytes(b"")),
                ],
            )
            .expect_err("duplicate");
        assert!(
            matches!(
                dup,
                Error::PathConflict {
                    first: 0,
                    second: 2,
                    ..
                }
            ),
            "{dup}"
        );
        let prefix = tree
            .swap_payload(
                "vol",
                "..x",
                vec![Entry::new("a/b", bytes(b"")), Entry::new("a", bytes(b""))],
            )
            .expect_err("dir then file");
        assert!(
            matches!(
                prefix,
                Error::PathConflict {
                    first: 0,
                    second: 1,
                    ..
                }
            ),
            "{prefix}"
        );
        let prefix = tree
            .swap_payload(
                "vol",
                "..x",
                vec![Entry::new("a", bytes(b"")), Entry::new("a/b", bytes(b""))],
            )
            .expect_err("file then dir");
        assert!(
            matches!(
                prefix,
                Error::PathConflict {
                    first: 0,
                    second: 1,
                    ..
                }
            ),
            "{prefix}"
        );
        for bad in ["x", "..data", "..", "..a/b"] {
            assert!(matches!(
                tree.swap_payload("vol", bad, vec![]),
                Err(Error::InvalidName { .. })
            ));
        }
        assert!(matches!(
            tree.swap_payload("nope", "..x", vec![]),
            Err(Error::VolumeNotFound(_))
        ));
        assert_eq!(tree.current_payload("vol").expect("vol"), None);
        assert!(tree.payload_dirs("vol").expect("vol").is_empty());
        tree.swap_payload("vol", "..x", vec![])
            .expect("empty payload is fine");
        assert!(matches!(
            tree.swap_payload("vol", "..x", vec![]),
            Err(Error::PayloadExists { .. })
        ));
    }

    #[test]
    fn remove_payload_refuses_current_and_unknown() {
        let tree = tree_with_volume();
        tree.swap_payload("vol", "..ts1", vec![Entry::new("a", bytes(b"1"))])
            .expect("swap");
        assert!(matches!(
            tree.remove_payload("vol", "..ts1"),
            Err(Error::PayloadInUse { .. })
        ));
        assert!(matches!(
            tree.remove_payload("vol", "..nope"),
            Err(Error::PayloadNotFound { .. })
        ));
        assert!(matches!(
            tree.remove_payload("vol", "..data"),
            Err(Error::InvalidName { .. })
        ));
        tree.swap_payload("vol", "..ts2", vec![Entry::new("a", bytes(b"2"))])
            .expect("swap");
        tree.remove_payload("vol", "..ts1").expect("remove old");
        assert_eq!(
            tree.payload_dirs("vol").expect("vol"),
            vec!["..ts2".to_owned()]
        );
        let mut st = tree.lock();
        assert_eq!(walk(&mut st, "vol/..ts1"), Err(Errno::ENOENT));
    }

    #[test]
    fn removed_payload_content_dropped_unless_a_handle_is_open() {
        let tree: FsTree<Flagged> = FsTree::new();
        tree.add_volume("vol", DirAttrs::default()).expect("vol");
        let (a, a_dropped) = flagged(b"aaaa");
        let (b, b_dropped) = flagged(b"bbbb");
        tree.swap_payload("vol", "..ts1", vec![Entry::new("a", a), Entry::new("b", b)])
            .expect("swap 1");

        // Open a through the kernel-like path, keep the handle; only look
        // b up (the kernel holds its inode, no handle).
        let (a_ino, fh, b_ino) = {
            let mut st = tree.lock();
            let a = walk(&mut st, "vol/..ts1/a").expect("a");
            let b = walk(&mut st, "vol/..ts1/b").expect("b");
            let fh = st.open(a.ino.0, libc::O_RDONLY).expect("open");
            (a.ino.0, fh, b.ino.0)
        };
        assert_eq!(tree.open_handles(), 1);

        let (c, _) = flagged(b"cccc");
        tree.swap_payload("vol", "..ts2", vec![Entry::new("a", c)])
            .expect("swap 2");
        assert!(!a_dropped.load(Ordering::SeqCst));
        assert!(
            !b_dropped.load(Ordering::SeqCst),
            "old payload still linked"
        );

        tree.remove_payload("vol", "..ts1").expect("remove");
        assert!(
            b_dropped.load(Ordering::SeqCst),
            "unopened content dropped at once, though the kernel holds the inode"
        );
        assert_eq!(tree.lock().getattr(b_ino, None).expect("b known").nlink, 0);
        assert!(
            !a_dropped.load(Ordering::SeqCst),
            "open handle keeps content"
        );
        {
            let mut st = tree.lock();
            // The handle still reads the old bytes; the unlinked inode
            // still answers GETATTR with nlink 0.
            let content = st.read_content(a_ino, fh).expect("read");
            assert_eq!(AsRef::<[u8]>::as_ref(&*content), b"aaaa");
            drop(content);
            let attr = st.getattr(a_ino, None).expect("getattr while looked up");
            assert_eq!((attr.nlink, attr.size), (0, 4));
            assert_eq!(st.open(a_ino, libc::O_RDONLY), Err(Errno::ENOENT));
            drop(st.release(fh));
        }
        assert!(a_dropped.load(Ordering::SeqCst), "last handle closed");
        assert_eq!(tree.open_handles(), 0);

        // The kernel's lookups on a (vol, ..ts1, a) keep the inode until FORGET.
        let mut st = tree.lock();
        assert!(st.getattr(a_ino, None).is_ok());
        st.forget(a_ino, 1);
        assert_eq!(st.getattr(a_ino, None), Err(Errno::ENOENT));
    }

    #[test]
    fn handles_count_per_content_and_release_drops_reference() {
        let tree = tree_with_volume();
        let shared = bytes(b"shared");
        tree.swap_payload(
            "vol",
            "..ts1",
            vec![
                Entry::new("x", Arc::clone(&shared)),
                Entry::new("y", Arc::clone(&shared)),
            ],
        )
        .expect("swap");
        assert_eq!(Arc::strong_count(&shared), 3, "caller + two linked files");
        let mut st = tree.lock();
        let x = walk(&mut st, "vol/..ts1/x").expect("x").ino.0;
        let y = walk(&mut st, "vol/..ts1/y").expect("y").ino.0;
        let f1 = st.open(x, libc::O_RDONLY).expect("open");
        let f2 = st.open(y, libc::O_RDONLY | libc::O_NONBLOCK).expect("open");
        drop(st);
        assert_eq!(tree.open_handles_of(&shared), 2);
        assert_eq!(
            tree.open_handles_of(&bytes(b"shared")),
            0,
            "by pointer, not value"
        );
        assert_eq!(Arc::strong_count(&shared), 5);
        let mut st = tree.lock();
        drop(st.release(f1));
        drop(st.release(f2));
        assert!(st.release(f2).is_none(), "double release is harmless");
        drop(st);
        assert_eq!(Arc::strong_count(&shared), 3);
        tree.remove_volume("vol").expect("remove volume");
        assert_eq!(Arc::strong_count(&shared), 1);
        assert!(tree.volumes().is_empty());
    }

    #[test]
    fn open_refuses_writes_dirs_links_and_unknown() {
        let tree = tree_with_volume();
        tree.swap_payload("vol", "..ts1", vec![Entry::new("a", bytes(b"1"))])
            .expect("swap");
        let mut st = tree.lock();
        let file = walk(&mut st, "vol/..ts1/a").expect("a").ino.0;
        let link = walk(&mut st, "vol/a").expect("link").ino.0;
        let dir = walk(&mut st, "vol").expect("vol").ino.0;
        for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_RDONLY | libc::O_TRUNC] {
            assert_eq!(st.open(file, flags), Err(Errno::EROFS), "{flags:#x}");
        }
        assert_eq!(st.open(dir, libc::O_RDONLY), Err(Errno::EISDIR));
        assert_eq!(st.open(link, libc::O_RDONLY), Err(Errno::ELOOP));
        assert_eq!(st.open(9999, libc::O_RDONLY), Err(Errno::ENOENT));
        assert_eq!(st.read_content(file, 12345).map(|_| ()), Err(Errno::EBADF));
        assert_eq!(st.readlink(file), Err(Errno::EINVAL));
        assert_eq!(st.access(file, libc::W_OK), Err(Errno::EROFS));
        assert_eq!(st.access(file, libc::R_OK), Ok(()));
        assert_eq!(
            st.lookup(file, OsStr::new("x")).map(|_| ()),
            Err(Errno::ENOTDIR)
        );
        assert_eq!(st.opendir(file), Err(Errno::ENOTDIR));
        assert_eq!(st.files.len(), 0, "no handle leaked by a refused open");
    }

    #[test]
    fn readdir_lists_dot_dotdot_then_sorted_children_consistently() {
        let tree = tree_with_volume();
        tree.swap_payload(
            "vol",
            "..ts1",
            vec![Entry::new("b", bytes(b"")), Entry::new("a/x", bytes(b""))],
        )
        .expect("swap");
        let vol = ino_of(&tree, "vol");
        let mut st = tree.lock();
        let fh = st.opendir(vol).expect("opendir");
        let items = st.readdir(vol, fh, 0).expect("readdir");
        let names: Vec<&str> = items.iter().map(|(_, i)| i.name.as_str()).collect();
        assert_eq!(names, [".", "..", "..data", "..ts1", "a", "b"]);
        assert_eq!(items[0].1.ino, vol);
        assert_eq!(items[1].1.ino, ROOT_INO);
        assert_eq!(items[2].1.kind, FileType::Symlink);
        assert_eq!(items[3].1.kind, FileType::Directory);
        let offsets: Vec<u64> = items.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, [1, 2, 3, 4, 5, 6]);
        drop(st);

        // A swap between two READDIR calls does not change the listing.
        tree.swap_payload("vol", "..ts2", vec![Entry::new("c", bytes(b""))])
            .expect("swap 2");
        let mut st = tree.lock();
        let rest = st.readdir(vol, fh, 4).expect("readdir rest");
        let names: Vec<&str> = rest.iter().map(|(_, i)| i.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        // A rewind takes a new snapshot.
        let again = st.readdir(vol, fh, 0).expect("rewind");
        let names: Vec<&str> = again.iter().map(|(_, i)| i.name.as_str()).collect();
        assert_eq!(names, [".", "..", "..data", "..ts1", "..ts2", "c"]);
        assert_eq!(st.readdir(vol, fh, 99).expect("past end"), vec![]);
        st.releasedir(fh);
        assert_eq!(st.readdir(vol, fh, 0), Err(Errno::EBADF));
        let root = st.opendir(ROOT_INO).expect("opendir root");
        let items = st.readdir(ROOT_INO, root, 0).expect("root");
        assert_eq!(items[1].1.ino, ROOT_INO, "root's .. is itself");
    }

    #[test]
    fn removal_notices_cover_looked_up_entries_deepest_first() {
        let tree = tree_with_volume();
        tree.swap_payload(
            "vol",
            "..1",
            vec![
                Entry::new("d/e/f", bytes(b"f")),
                Entry::new("g", bytes(b"g")),
            ],
        )
        .expect("swap");
        let vol = ino_of(&tree, "vol");
        let (p, d, e, f, data) = {
            let mut st = tree.lock();
            let data = walk(&mut st, "vol/..data").expect("..data").ino.0;
            let p = walk(&mut st, "vol/..1").expect("..1").ino.0;
            let d = walk(&mut st, "vol/..1/d").expect("d").ino.0;
            let e = walk(&mut st, "vol/..1/d/e").expect("e").ino.0;
            let f = walk(&mut st, "vol/..1/d/e/f").expect("f").ino.0;
            (p, d, e, f, data)
        };
        let removed = |parent: u64, child: u64, name: &str| Removed {
            parent,
            child,
            name: name.to_owned(),
        };

        // The swap retires the looked-up `..data`; the unlooked-up top-level
        // links `d` and `g` need no notice.
        let mut st = tree.lock();
        let plan = plan::<Vec<u8>>(&[]).expect("plan");
        let mut g = Garbage::default();
        st.swap_payload("vol", "..2", &plan, &[], &mut g)
            .expect("swap");
        assert_eq!(g.removed, vec![removed(vol, data, "..data")]);
        assert!(g.drops.is_empty());

        // `g` was never looked up: it leaves the table silently.
        let mut g = Garbage::default();
        st.remove_payload("vol", "..1", &mut g).expect("remove");
        assert_eq!(
            g.removed,
            vec![
                removed(e, f, "f"),
                removed(d, e, "e"),
                removed(p, d, "d"),
                removed(vol, p, "..1"),
            ]
        );
        assert_eq!(g.drops.len(), 2, "both contents released");

        let mut g = Garbage::default();
        st.remove_volume("vol", &mut g).expect("remove volume");
        assert_eq!(g.removed.last(), Some(&removed(ROOT_INO, vol, "vol")));
    }

    #[test]
    fn inode_numbers_are_never_reused() {
        let tree = tree_with_volume();
        let first = ino_of(&tree, "vol");
        tree.remove_volume("vol").expect("remove");
        let again = tree.add_volume("vol", DirAttrs::default()).expect("re-add");
        assert!(again > first);
        assert!(matches!(
            tree.remove_volume("nope"),
            Err(Error::VolumeNotFound(_))
        ));
    }

    #[test]
    fn unlinked_dir_is_empty_to_lookups_and_forget_removes_it() {
        let tree = tree_with_volume();
        tree.swap_payload("vol", "..ts1", vec![Entry::new("d/f", bytes(b"x"))])
            .expect("swap");
        let (payload, d) = {
            let mut st = tree.lock();
            let p = walk(&mut st, "vol/..ts1").expect("payload").ino.0;
            let d = walk(&mut st, "vol/..ts1/d").expect("d").ino.0;
            (p, d)
        };
        tree.swap_payload("vol", "..ts2", vec![]).expect("swap 2");
        tree.remove_payload("vol", "..ts1").expect("remove");
        let mut st = tree.lock();
        assert_eq!(
            st.lookup(d, OsStr::new("f")).map(|_| ()),
            Err(Errno::ENOENT)
        );
        assert_eq!(st.getattr(payload, None).expect("still known").nlink, 0);
        let before = st.node_count();
        st.forget(d, 1);
        st.forget(payload, 1);
        assert_eq!(st.node_count(), before - 1, "payload was looked up twice");
        st.forget(payload, 1);
        assert_eq!(st.node_count(), before - 2);
        // FORGET of an unknown inode, or more than was looked up, is harmless.
        st.forget(4242, 7);
        let vol = st.lookup(ROOT_INO, OsStr::new("vol")).expect("vol").ino.0;
        st.forget(vol, 100);
        assert!(st.getattr(vol, None).is_ok(), "linked nodes survive FORGET");
    }

    #[test]
    fn reset_after_unmount_clears_kernel_state() {
        let tree = tree_with_volume();
        let (c, dropped) = flagged(b"z");
        let tree2: FsTree<Flagged> = FsTree::new();
        tree2.add_volume("v", DirAttrs::default()).expect("v");
        tree2
            .swap_payload("v", "..1", vec![Entry::new("z", c)])
            .expect("swap");
        let mut st = tree2.lock();
        let z = walk(&mut st, "v/..1/z").expect("z").ino.0;
        let fh = st.open(z, libc::O_RDONLY).expect("open");
        drop(st);
        tree2.swap_payload("v", "..2", vec![]).expect("swap");
        tree2.remove_payload("v", "..1").expect("remove");
        assert!(!dropped.load(Ordering::SeqCst));
        let drops = tree2.lock().reset_after_unmount();
        drop(drops);
        assert!(dropped.load(Ordering::SeqCst));
        let st = tree2.lock();
        assert_eq!(st.getattr(z, None), Err(Errno::ENOENT));
        assert_eq!(st.read_content(z, fh).map(|_| ()), Err(Errno::EBADF));
        drop(st);
        drop(tree);
    }

    #[test]
    fn debug_never_shows_content() {
        let e = Entry::new("p", bytes(b"TOPSECRET"));
        let s = format!("{e:?}");
        assert!(!s.contains("TOPSECRET") && s.contains("REDACTED"), "{s}");
        let tree = tree_with_volume();
        tree.swap_payload("vol", "..1", vec![e]).expect("swap");
        let s = format!("{tree:?}");
        assert!(!s.contains("TOPSECRET"), "{s}");
    }

    #[test]
    fn getattr_with_handle_reports_handle_size() {
        let tree = tree_with_volume();
        tree.swap_payload("vol", "..1", vec![Entry::new("f", bytes(b"12345"))])
            .expect("swap");
        let mut st = tree.lock();
        let f = walk(&mut st, "vol/..1/f").expect("f").ino.0;
        let fh = st.open(f, libc::O_RDONLY).expect("open");
        assert_eq!(st.getattr(f, Some(fh)).expect("attr").size, 5);
        assert_eq!(st.getattr(f, Some(999)).expect("attr").size, 5);
        let attr = st.getattr(f, None).expect("attr");
        assert_eq!((attr.blocks, attr.blksize, attr.nlink), (1, 4096, 1));
        assert_eq!(st.getattr(ROOT_INO, None).expect("root").perm, 0o755);
    }
}
