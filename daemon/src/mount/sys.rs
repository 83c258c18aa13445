//! The only module of the daemon that may use `unsafe`: memory locking and
//! process hardening. Mount syscalls go through `nix`'s safe wrappers.
#![allow(unsafe_code)]

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
    fn locking_an_empty_buffer_is_a_noop() {
        assert!(!lock_memory(&[]));
    }
}
