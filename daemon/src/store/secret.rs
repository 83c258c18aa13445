//! [`SecretBytes`]: a fixed-size, zeroizing, mlocked byte buffer.

use std::fmt;

use zeroize::Zeroize;

use crate::mount::sys;

/// Plaintext secret bytes (an object value, a rendered file, a token).
///
/// - The buffer is allocated once at its final size and never grows, so no
///   stale copy is left behind by a reallocation.
/// - Non-empty buffers live in their own page-aligned anonymous mapping
///   (`sys::SecretRegion`): excluded from core dumps (`MADV_DONTDUMP`),
///   `mlock(2)`ed when allowed (a failure is warned about once and counted),
///   and no page is shared with any other allocation. If the kernel refuses
///   the mapping, the heap is used (still zeroized).
/// - It is overwritten with zeros on drop.
/// - `Debug` prints `[REDACTED]` and the length only; there is no `Display`.
///   The bytes are reached only through [`SecretBytes::expose`].
pub struct SecretBytes {
    storage: Storage,
}

enum Storage {
    Empty,
    Region(sys::SecretRegion),
    Heap(Box<[u8]>),
}

impl SecretBytes {
    /// Copies `bytes` into a new buffer of exactly `bytes.len()` bytes. The
    /// caller stays responsible for wiping its own copy.
    pub fn copy_from(bytes: &[u8]) -> Self {
        if bytes.is_empty() {
            return Self {
                storage: Storage::Empty,
            };
        }
        let storage = match sys::SecretRegion::new(bytes.len()) {
            Some(mut region) => {
                region.as_mut_slice().copy_from_slice(bytes);
                Storage::Region(region)
            }
            None => Storage::Heap(bytes.into()),
        };
        Self { storage }
    }

    /// Takes a `Vec`, copies it into an exact-size buffer and zeroizes the
    /// `Vec` (including its spare capacity).
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
        match &self.storage {
            Storage::Empty => &[],
            Storage::Region(r) => r.as_slice(),
            Storage::Heap(b) => b,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    /// True when the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the bytes are mlocked.
    pub fn is_locked(&self) -> bool {
        matches!(&self.storage, Storage::Region(r) if r.is_locked())
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> Self {
        Self::copy_from(self.expose())
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        // Not constant time: used for change detection, not authentication.
        self.expose() == other.expose()
    }
}

impl Eq for SecretBytes {}

impl AsRef<[u8]> for SecretBytes {
    fn as_ref(&self) -> &[u8] {
        self.expose()
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        // A region wipes itself when it is unmapped.
        if let Storage::Heap(b) = &mut self.storage {
            b.zeroize();
        }
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED], len={})", self.len())
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
