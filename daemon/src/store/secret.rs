//! [`SecretBytes`]: a fixed-size, zeroizing, mlocked byte buffer.

use std::fmt;

use zeroize::Zeroize;

use crate::mount::sys;

/// Plaintext secret bytes (an object value, a rendered file, a token).
///
/// - The buffer is allocated once at its exact size and never grows, so no
///   stale copy is left behind by a reallocation.
/// - It is `mlock(2)`ed when the process may lock memory (best effort: a
///   failure, e.g. `RLIMIT_MEMLOCK`, is ignored). It is not unlocked on
///   drop: locks are per page and do not nest, so unlocking one buffer would
///   unlock its neighbours on the same page; the kernel drops the lock when
///   the allocator returns the pages.
/// - It is overwritten with zeros on drop.
/// - `Debug` prints `[REDACTED]` and the length only; there is no `Display`.
///   The bytes are reached only through [`SecretBytes::expose`].
pub struct SecretBytes {
    buf: Box<[u8]>,
    locked: bool,
}

impl SecretBytes {
    /// Copies `bytes` into a new locked buffer of exactly `bytes.len()` bytes.
    /// The caller stays responsible for wiping its own copy.
    pub fn copy_from(bytes: &[u8]) -> Self {
        let buf: Box<[u8]> = bytes.into();
        let locked = sys::lock_memory(&buf);
        Self { buf, locked }
    }

    /// Takes a `Vec`, copies it into an exact-size locked buffer and zeroizes
    /// the `Vec` (including its spare capacity).
    pub fn from_vec(mut v: Vec<u8>) -> Self {
        let out = Self::copy_from(&v);
        v.zeroize();
        out
    }

    /// Takes a `String` the way [`SecretBytes::from_vec`] takes a `Vec`.
    pub fn from_string(s: String) -> Self {
        Self::from_vec(s.into_bytes())
    }

    /// The plaintext. Every call site is a place where a secret is used.
    pub fn expose(&self) -> &[u8] {
        &self.buf
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Whether `mlock(2)` succeeded for this buffer.
    pub fn is_locked(&self) -> bool {
        self.locked
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> Self {
        Self::copy_from(&self.buf)
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        // Not constant time: used for change detection, not authentication.
        self.buf == other.buf
    }
}

impl Eq for SecretBytes {}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED], len={})", self.buf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_print_contents() {
        let s = SecretBytes::copy_from(b"hunter2-canary");
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[REDACTED]"));
    }

    #[test]
    fn keeps_exact_bytes() {
        let raw = vec![0xff, 0xfe, b'\r', b'\n', 0];
        let s = SecretBytes::from_vec(raw.clone());
        assert_eq!(s.expose(), &raw[..]);
        assert_eq!(s.len(), 5);
        assert_eq!(s.clone(), s);
    }

    #[test]
    fn empty_is_allowed() {
        let s = SecretBytes::copy_from(b"");
        assert!(s.is_empty());
    }
}
