//! What this library takes from its Melon host (spec melon.md §5.2), left
//! undefined in libcorotls_melon.so, and the small helpers built on it.
//!
//! Everything placed on a queue, the pending-ciphertext buffer and the pool
//! itself are released by host code, so they all come from the host's
//! allocator.  `mln_chain_new` / `mln_chain_new_with_buf` are emulated here
//! with `mln_alloc_m` (Melon's own `mln_chain_new` does not check for
//! allocation failure), and `mln_buf_new` is a static inline in Melon, never
//! a symbol.

use crate::abi::{MlnAlloc, MlnBuf, MlnChain, MlnFile};
use libc::{c_int, c_void};
use std::ptr;

extern "C" {
    pub fn mln_alloc_init(parent: *mut MlnAlloc, capacity: usize) -> *mut MlnAlloc;
    pub fn mln_alloc_destroy(pool: *mut MlnAlloc);
    pub fn mln_alloc_m(pool: *mut MlnAlloc, size: usize) -> *mut c_void;
    pub fn mln_alloc_free(ptr: *mut c_void);
    pub fn mln_chain_pool_release(c: *mut MlnChain);
    pub fn mln_chain_pool_release_all(c: *mut MlnChain);
    pub fn mln_file_tmp_open(pool: *mut MlnAlloc) -> *mut MlnFile;
}

/// This thread's errno slot.
fn errno_slot() -> *mut c_int {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: returns this thread's errno slot, valid for the thread's life.
    return unsafe { libc::__errno_location() };
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    // SAFETY: as above (the BSDs' and Darwin's name for it).
    return unsafe { libc::__error() };
}

/// Set the calling thread's errno.
pub fn set_errno(e: c_int) {
    // SAFETY: the slot is this thread's own.
    unsafe { *errno_slot() = e }
}

pub fn errno() -> c_int {
    // SAFETY: as above.
    unsafe { *errno_slot() }
}

/// `mln_alloc_m`, refusing a NULL pool (Melon would crash) with EINVAL.
///
/// # Safety
/// `pool` is NULL or a live pool of the host.
pub unsafe fn alloc(pool: *mut MlnAlloc, size: usize) -> *mut u8 {
    if pool.is_null() {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    let p = mln_alloc_m(pool, size) as *mut u8;
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p
}

/// A chain node with a zeroed buf, both from `pool` (what Melon's
/// `mln_chain_new_with_buf` returns).  NULL with ENOMEM on failure.
///
/// # Safety
/// `pool` is NULL or a live pool of the host.
pub unsafe fn chain_with_buf(pool: *mut MlnAlloc) -> *mut MlnChain {
    let c = alloc(pool, std::mem::size_of::<MlnChain>()) as *mut MlnChain;
    if c.is_null() {
        return c;
    }
    let b = alloc(pool, std::mem::size_of::<MlnBuf>()) as *mut MlnBuf;
    if b.is_null() {
        mln_alloc_free(c as *mut c_void);
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    }
    ptr::write_bytes(b as *mut u8, 0, std::mem::size_of::<MlnBuf>());
    ptr::write(c, MlnChain { buf: b, next: ptr::null_mut() });
    c
}
