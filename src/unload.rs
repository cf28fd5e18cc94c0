//! What the library does when it is unloaded, and the guard of every
//! `extern "C"` function that OpenSSL or a host calls into.
//!
//! **Unload.**  Process-wide OpenSSL objects made once (the FIFO BIO
//! method, the SSL_CTX ex_data index of the callback state) and the C
//! ABI's handle registry are released when the library is unloaded: by
//! `dlclose` (a Lua module unloaded at `lua_close`, a Python ctypes
//! handle...) or at process exit.  Each registers its release with
//! `__cxa_atexit` against this library's `__dso_handle` when it is first
//! made, so the release runs in `__cxa_finalize` of the very object that
//! holds the code (libcorotls.so, or whatever links libcorotls.a), before
//! its code is unmapped.  Nothing is then reported at unload by
//! LeakSanitizer, and OpenSSL keeps no pointer into unmapped code.
//!
//! The rule for hosts: **unload the library only when no corotls object is
//! alive** (every conf, builder, session, conn and loop freed).  An object
//! still alive at unload is the host's leak: what it needs is then kept
//! (the BIO method while a FIFO BIO exists, the ex_data index while a
//! context holds our state, the registry while a handle is alive), never
//! freed under it.
//!
//! **Callbacks.**  `callback_guard` is the panic boundary of functions
//! OpenSSL calls (the BIO methods, the ex_data free, SNI, ALPN, verify): a
//! panic must not unwind into C, so it becomes the callback's failure value.

use libc::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "macos"
))]
mod imp {
    use super::*;
    extern "C" {
        /// This object's handle (libcorotls.so's, or the one that links
        /// libcorotls.a), defined by the C runtime's crtbegin.
        static __dso_handle: u8;
        fn __cxa_atexit(f: extern "C" fn(*mut c_void), arg: *mut c_void, dso: *const c_void) -> c_int;
    }

    pub fn at_unload(f: extern "C" fn(*mut c_void)) {
        // SAFETY: registers a plain function to run when this object is
        // finalized (dlclose or exit); __dso_handle is only used as a key.
        unsafe {
            __cxa_atexit(f, std::ptr::null_mut(), std::ptr::addr_of!(__dso_handle) as *const c_void);
        }
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "macos"
)))]
mod imp {
    use super::*;
    /// Elsewhere the objects stay for the life of the process.
    pub fn at_unload(_f: extern "C" fn(*mut c_void)) {}
}

/// Run `f` when this library is unloaded (or the process exits).  Call once
/// per process-wide object, when it is made.
pub(crate) fn at_unload(f: extern "C" fn(*mut c_void)) {
    imp::at_unload(f)
}

/// The panic boundary of a callback from C: `f`'s value, or `on_panic` if
/// it panicked (nothing unwinds into OpenSSL or the host).
pub(crate) fn callback_guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}
