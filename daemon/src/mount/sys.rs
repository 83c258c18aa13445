//! The only module of the daemon that may use `unsafe`: memory locking and
//! process hardening. Mount syscalls go through `nix`'s safe wrappers.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;
use std::ptr::NonNull;

use nix::sys::resource::{Resource, setrlimit};

/// Locks the pages backing `buf` into RAM (`mlock(2)`). Returns whether the
/// lock succeeded; failure (no `CAP_IPC_LOCK` and a small `RLIMIT_MEMLOCK`)
/// is not an error: the buffer is still zeroized on drop.
pub fn lock_memory(buf: &[u8]) -> bool {
    let Some(ptr) = NonNull::new(buf.as_ptr() as *mut c_void) else {
        return false;
    };
    if buf.is_empty() {
        return false;
    }
    // SAFETY: `ptr` and `buf.len()` describe memory owned by the live slice
    // `buf`; mlock only changes page residency, never contents or validity.
    unsafe { nix::sys::mman::mlock(ptr, buf.len()).is_ok() }
}

/// A global allocator that overwrites every block with zeros before it is
/// freed (DESIGN §6): buffers we do not own (HTTP bodies, TLS records, JSON,
/// the SDK's `String`s) may hold plaintext, and this wipes them when their
/// owner drops them. `realloc` always moves, so the old block is wiped too.
///
/// Installed by the `vaultlet` binary with `#[global_allocator]`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ZeroOnFree;

/// Overwrites `len` bytes at `ptr` so that the stores survive optimisation:
/// `black_box` makes the compiler assume the memory is read afterwards.
///
/// # Safety
/// `ptr` must be valid for `len` bytes of writes.
unsafe fn wipe(ptr: *mut u8, len: usize) {
    // SAFETY: the caller guarantees `ptr` is valid for `len` bytes.
    unsafe { std::ptr::write_bytes(ptr, 0, len) };
    std::hint::black_box(ptr);
}

// SAFETY: every method forwards to `System` with the caller's layout; the
// extra work (wiping, copying) stays inside blocks `System` handed out with
// that layout, so `GlobalAlloc`'s contract is kept.
unsafe impl GlobalAlloc for ZeroOnFree {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's (non-zero-size) layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated with `layout`, so it is valid for
        // `layout.size()` bytes until freed just below.
        unsafe {
            wipe(ptr, layout.size());
            System.dealloc(ptr, layout);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `new_size` is non-zero and, rounded to `layout.align()`,
        // does not overflow (realloc's contract), so the layout is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a fresh block; on success both blocks are valid for the
        // copied length, they do not overlap, and the old block is wiped and
        // freed with its own layout.
        unsafe {
            let new = System.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                wipe(ptr, layout.size());
                System.dealloc(ptr, layout);
            }
            new
        }
    }
}

/// Makes the process undumpable (`PR_SET_DUMPABLE=0`: no core dumps, no
/// ptrace attach by non-root, `/proc/<pid>/mem` closed to other users) and
/// sets `RLIMIT_CORE` to 0.
///
/// # Errors
/// Returns the errno of the failing call.
pub fn harden_process() -> nix::Result<()> {
    nix::sys::prctl::set_dumpable(false)?;
    setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_on_free_realloc_keeps_the_contents() {
        let a = ZeroOnFree;
        let layout = Layout::from_size_align(16, 8).expect("layout");
        // SAFETY: test-only use of the allocator with a valid layout; every
        // pointer is used within its size and freed once with its layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            for i in 0..16 {
                *p.add(i) = i as u8 + 1;
            }
            let q = a.realloc(p, layout, 64);
            assert!(!q.is_null());
            for i in 0..16 {
                assert_eq!(*q.add(i), i as u8 + 1);
            }
            let r = a.realloc(q, Layout::from_size_align(64, 8).expect("layout"), 4);
            assert_eq!(*r.add(3), 4);
            a.dealloc(r, Layout::from_size_align(4, 8).expect("layout"));
        }
    }

    #[test]
    fn locking_an_empty_buffer_is_a_noop() {
        assert!(!lock_memory(&[]));
    }
}
