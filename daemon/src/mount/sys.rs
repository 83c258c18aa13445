//! The only module of the daemon that may use `unsafe`: memory locking,
//! process hardening and the SEV-SNP guest ioctl. Mount syscalls go
//! through `nix`'s safe wrappers.
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

/// An anonymous private mapping that holds one secret: page-aligned, sized
/// to whole pages, excluded from core dumps (`MADV_DONTDUMP`), `mlock(2)`ed
/// when the process may lock memory, overwritten with zeros and unmapped on
/// drop (which also drops the lock: no page is shared with another buffer).
#[derive(Debug)]
pub struct SecretRegion {
    ptr: NonNull<c_void>,
    len: usize,
    mapped: usize,
    locked: bool,
}

// SAFETY: the region is exclusively owned (a private anonymous mapping no
// other object points into); access goes through `&self`/`&mut self`.
unsafe impl Send for SecretRegion {}
// SAFETY: shared access is read-only (`as_slice`).
unsafe impl Sync for SecretRegion {}

/// Count of buffers that could not be mlocked (RLIMIT_MEMLOCK, no
/// CAP_IPC_LOCK). Read by telemetry.
pub static MLOCK_FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl SecretRegion {
    /// Maps a region for `len` (> 0) bytes, zero-filled. `None` when the
    /// kernel refuses the mapping (the caller falls back to the heap).
    pub fn new(len: usize) -> Option<Self> {
        use nix::sys::mman::{MapFlags, MmapAdvise, ProtFlags, madvise, mmap_anonymous};
        use std::sync::atomic::Ordering;
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|p| usize::try_from(p).ok())
            .unwrap_or(4096);
        let mapped = len.checked_add(page - 1)? / page * page;
        let size = std::num::NonZeroUsize::new(mapped)?;
        // SAFETY: a fresh anonymous private mapping at an address the kernel
        // chooses: it aliases no existing Rust object.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .ok()?;
        // SAFETY: `ptr..ptr+mapped` is the mapping created above.
        let _ = unsafe { madvise(ptr, mapped, MmapAdvise::MADV_DONTDUMP) };
        // SAFETY: as above; mlock changes residency only.
        let locked = unsafe { nix::sys::mman::mlock(ptr, mapped) }.is_ok();
        if !locked && MLOCK_FAILURES.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                "cannot mlock secret buffers (RLIMIT_MEMLOCK or CAP_IPC_LOCK); they may be swapped out"
            );
        }
        Some(Self {
            ptr,
            len,
            mapped,
            locked,
        })
    }

    /// The `len` bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is readable for `mapped >= len` bytes and lives
        // as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>(), self.len) }
    }

    /// The `len` bytes, writable (used once, to fill the region).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u8>(), self.len) }
    }

    /// Whether the region is mlocked.
    pub fn is_locked(&self) -> bool {
        self.locked
    }
}

impl Drop for SecretRegion {
    fn drop(&mut self) {
        // SAFETY: the whole mapping is writable and owned by `self`; it is
        // wiped, then unmapped exactly once.
        unsafe {
            wipe(self.ptr.as_ptr().cast::<u8>(), self.mapped);
            let _ = nix::sys::mman::munmap(self.ptr, self.mapped);
        }
    }
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
    pin_mmap_threshold();
    Ok(())
}

/// Blocks of at least this many bytes get their own mapping from glibc's
/// malloc and go back to the kernel when freed.
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Pins glibc's `M_MMAP_THRESHOLD` at 128 KiB (mallopt(3)). Without it
/// glibc raises the threshold after the first large free, and large blocks
/// freed later (a FUSE session's 16 MiB request buffer, big HTTP bodies)
/// stay in the heap: RSS ratchets up with every namespace mount and the
/// wiped pages are kept. A no-op on other C libraries.
fn pin_mmap_threshold() {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallopt only changes allocator tunables; it is called
        // with a documented parameter and a valid value, and is safe to
        // call at any time (glibc takes its own lock).
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        if ok != 1 {
            tracing::warn!("could not pin the malloc mmap threshold");
        }
    }
}

/// `struct snp_report_req` (linux `include/uapi/linux/sev-guest.h`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SnpReportReq {
    user_data: [u8; 64],
    vmpl: u32,
    rsvd: [u8; 28],
}

/// `struct snp_ext_report_req`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SnpExtReportReq {
    data: SnpReportReq,
    certs_address: u64,
    certs_len: u32,
}

/// `struct snp_guest_request_ioctl` (the union read as `exitinfo2`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SnpGuestRequestIoctl {
    msg_version: u8,
    req_data: u64,
    resp_data: u64,
    exitinfo2: u64,
}

nix::ioctl_readwrite!(
    /// `SNP_GET_EXT_REPORT` = `_IOWR('S', 0x2, struct snp_guest_request_ioctl)`.
    snp_get_ext_report_raw,
    b'S',
    0x2,
    SnpGuestRequestIoctl
);

/// Size of `struct snp_report_resp`.
pub const SNP_REPORT_RESP_LEN: usize = 4000;

/// `SNP_GUEST_VMM_ERR_INVALID_LEN`: the certificate buffer is too small;
/// `certs_len` then holds the size needed.
pub const SNP_GUEST_VMM_ERR_INVALID_LEN: u32 = 1;

/// What one `SNP_GET_EXT_REPORT` call gave.
#[derive(Debug)]
pub enum ExtReport {
    /// The `snp_report_resp` bytes (`MSG_REPORT_RSP`: status, size, report
    /// at 0x20); the certificate table was written into the caller's
    /// buffer.
    Done(Box<[u8; SNP_REPORT_RESP_LEN]>),
    /// The buffer was too small: this many bytes are needed.
    NeedCerts(usize),
}

/// The failure of the ioctl: errno plus the firmware and VMM error codes.
#[derive(Debug, thiserror::Error)]
#[error(
    "SNP_GET_EXT_REPORT failed: {errno} (firmware error {fw_error:#x}, vmm error {vmm_error:#x})"
)]
pub struct SnpIoctlError {
    /// The errno.
    pub errno: nix::errno::Errno,
    /// The firmware's status (low half of `exitinfo2`).
    pub fw_error: u32,
    /// The hypervisor's status (high half of `exitinfo2`).
    pub vmm_error: u32,
}

/// Issues `SNP_GET_EXT_REPORT` on an open `/dev/sev-guest`: a report with
/// `user_data` as REPORT_DATA at `vmpl`, the host's certificate table into
/// `certs` (whose length must be a multiple of the page size, or zero for
/// no table).
///
/// # Errors
/// [`SnpIoctlError`], except for a too-small `certs`, which is
/// [`ExtReport::NeedCerts`].
pub fn snp_get_ext_report(
    fd: std::os::fd::BorrowedFd<'_>,
    user_data: &[u8; 64],
    vmpl: u32,
    certs: &mut [u8],
) -> Result<ExtReport, SnpIoctlError> {
    use std::os::fd::AsRawFd;
    let mut resp = Box::new([0u8; SNP_REPORT_RESP_LEN]);
    let mut req = SnpExtReportReq {
        data: SnpReportReq {
            user_data: *user_data,
            vmpl,
            rsvd: [0; 28],
        },
        certs_address: if certs.is_empty() {
            0
        } else {
            certs.as_mut_ptr() as u64
        },
        certs_len: u32::try_from(certs.len()).unwrap_or(u32::MAX),
    };
    let mut arg = SnpGuestRequestIoctl {
        msg_version: 1,
        req_data: std::ptr::addr_of_mut!(req) as u64,
        resp_data: resp.as_mut_ptr() as u64,
        exitinfo2: 0,
    };
    // SAFETY: `arg` is a valid `snp_guest_request_ioctl` whose `req_data`
    // points to `req` (a live `snp_ext_report_req`) and `resp_data` to a
    // live 4000-byte buffer; `req.certs_address`/`certs_len` describe the
    // caller's exclusively borrowed `certs` slice (or are 0). All of them
    // outlive the call, and the kernel writes only within those sizes.
    let result = unsafe { snp_get_ext_report_raw(fd.as_raw_fd(), &mut arg) };
    let fw_error = (arg.exitinfo2 & 0xffff_ffff) as u32;
    let vmm_error = (arg.exitinfo2 >> 32) as u32;
    match result {
        Ok(_) => Ok(ExtReport::Done(resp)),
        Err(_) if vmm_error == SNP_GUEST_VMM_ERR_INVALID_LEN => {
            Ok(ExtReport::NeedCerts(req.certs_len as usize))
        }
        Err(errno) => Err(SnpIoctlError {
            errno,
            fw_error,
            vmm_error,
        }),
    }
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
    fn secret_region_is_page_sized_and_holds_its_bytes() {
        let mut r = SecretRegion::new(10).expect("mapping");
        assert_eq!(r.as_slice(), &[0u8; 10]);
        r.as_mut_slice().copy_from_slice(b"0123456789");
        assert_eq!(r.as_slice(), b"0123456789");
        assert_eq!(r.as_slice().as_ptr() as usize % 4096, 0, "page-aligned");
        assert!(SecretRegion::new(0).is_none());
    }

    #[test]
    fn snp_ioctl_structs_match_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<SnpReportReq>(), 96);
        assert_eq!(std::mem::size_of::<SnpExtReportReq>(), 112);
        assert_eq!(std::mem::size_of::<SnpGuestRequestIoctl>(), 32);
        // _IOWR('S', 2, 32 bytes) = 0xc0205302.
        let nr = nix::request_code_readwrite!(b'S', 0x2, 32);
        assert_eq!(nr, 0xc020_5302);
    }

    #[test]
    fn locking_an_empty_buffer_is_a_noop() {
        assert!(!lock_memory(&[]));
    }
}
