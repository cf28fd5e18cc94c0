//! The native C ABI (`corotls_*`).  One module per C type; this file holds
//! the panic boundary, the per-thread last error and argument checking.
//!
//! Opaque C types are zero-sized markers; their pointers are casts of Rust
//! objects (`Box<ConfBuilder>`, `Box<Conf>`, `Box<Session>`, `Box<Conn>`),
//! the approach of rustls-ffi.

#![allow(non_camel_case_types)]
// The safety contract of each `extern "C"` function (pointer validity,
// ownership, threads) is its doc comment, written for C callers and copied
// into the header, not a Rust `# Safety` section.
#![allow(clippy::missing_safety_doc)]

pub mod conf;
pub mod conn;
#[path = "loop.rs"]
pub mod event_loop;
pub mod session;

use crate::error::{Code, Code::*, Error, Reason, Result};
use libc::c_char;
use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The most recent failure on a thread: its message, reason and detail.
#[derive(Default)]
struct LastError {
    msg: CString,
    reason: Option<Reason>,
    detail: i64,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = RefCell::new(LastError::default());
}

/// Remember `e` as this thread's last failure.
pub(crate) fn set_last_error(e: &Error) {
    let msg = CString::new(e.msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = LastError { msg, reason: Some(e.reason), detail: e.detail });
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

pub(crate) fn internal_error(p: &(dyn std::any::Any + Send)) -> Error {
    Error::new(COROTLS_ERR_INTERNAL, format!("internal error (bug in corotls): {}", panic_message(p)))
}

/// Turn an outcome into a result code, remembering its message for
/// `corotls_last_error` (WANT_* carry no message worth keeping).
pub(crate) fn finish(r: Result<()>) -> Code {
    match r {
        Ok(()) => COROTLS_OK,
        Err(e) => {
            if !e.is_want() {
                set_last_error(&e);
            }
            e.code
        }
    }
}

/// The panic boundary for calls without an object to poison.
pub(crate) fn guard(f: impl FnOnce() -> Result<()>) -> Code {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => finish(r),
        Err(p) => finish(Err(internal_error(&*p))),
    }
}

/// The panic boundary for calls whose success can be OK or PENDING.
pub(crate) fn guard_code(f: impl FnOnce() -> Result<Code>) -> Code {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => finish(Err(e)),
        Err(p) => finish(Err(internal_error(&*p))),
    }
}

/// The panic boundary for calls returning a plain value.
pub(crate) fn guard_value<T>(default: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(default)
}

/// A required C string argument (borrowed for the call).
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    let b = bytes_arg(p, what)?;
    std::str::from_utf8(b).map_err(|_| Error::arg(format!("{what} is not valid UTF-8")))
}

/// A required C string argument as bytes.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn bytes_arg<'a>(p: *const c_char, what: &str) -> Result<&'a [u8]> {
    if p.is_null() {
        return Err(Error::null(what));
    }
    Ok(CStr::from_ptr(p).to_bytes())
}

/// An optional C string: NULL or "" mean "not given".
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn opt_bytes_arg<'a>(p: *const c_char) -> Option<&'a [u8]> {
    if p.is_null() {
        return None;
    }
    let b = CStr::from_ptr(p).to_bytes();
    if b.is_empty() {
        None
    } else {
        Some(b)
    }
}

/// A path argument (any bytes but NUL).
pub(crate) fn path_of(b: &[u8]) -> &std::path::Path {
    use std::os::unix::ffi::OsStrExt;
    std::path::Path::new(std::ffi::OsStr::from_bytes(b))
}

/// A byte buffer argument; NULL is allowed only with length 0.
///
/// # Safety
/// `p` is NULL or valid for `len` bytes for the duration of the call.
pub(crate) unsafe fn slice_arg<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8]> {
    if p.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(Error::null(what));
    }
    check_len(len, what)?;
    Ok(std::slice::from_raw_parts(p, len))
}

/// No object is larger than isize::MAX bytes: such a length is a caller's
/// error (often a negative value cast to size_t), never a buffer.
fn check_len(len: usize, what: &str) -> Result<()> {
    if len > isize::MAX as usize {
        return Err(Error::arg(format!("{what}: length {len} is larger than any buffer (a negative length?)")));
    }
    Ok(())
}

/// A writable buffer argument; NULL is allowed only with capacity 0.
///
/// # Safety
/// `p` is NULL or valid for writes of `len` bytes for the call.
pub(crate) unsafe fn slice_mut_arg<'a>(p: *mut u8, len: usize, what: &str) -> Result<&'a mut [u8]> {
    if p.is_null() {
        if len == 0 {
            return Ok(&mut []);
        }
        return Err(Error::null(what));
    }
    check_len(len, what)?;
    Ok(std::slice::from_raw_parts_mut(p, len))
}

/// Store `v` through an optional out-pointer.
///
/// # Safety
/// `p` is NULL or valid for a write of T.
pub(crate) unsafe fn put<T>(p: *mut T, v: T) {
    if !p.is_null() {
        p.write(v);
    }
}

/// A required out-pointer that the call fills only on success (the caller
/// stored the cleared value through it already): ERR_ARG when NULL.
pub(crate) fn required<T>(p: *mut T, what: &str) -> Result<()> {
    if p.is_null() {
        Err(Error::null(what))
    } else {
        Ok(())
    }
}

/// A required out-parameter: ERR_ARG when NULL, else `cleared` is stored
/// through it at once (what the caller finds if the call then fails).
///
/// # Safety
/// `p` is NULL or valid for a write of T.
pub(crate) unsafe fn out_arg<'a, T>(p: *mut T, cleared: T, what: &str) -> Result<&'a mut T> {
    if p.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: p is not NULL, so valid for a write of T (the caller's promise).
    p.write(cleared);
    // SAFETY: as above; it now holds an initialised T.
    Ok(&mut *p)
}

/// Stable name of a result value (`"OK"`, `"WANT_READ"`, `"ERR_TLS"`...),
/// or `"UNKNOWN"` for a value that is not a corotls_result.  The string is
/// static.
#[no_mangle]
pub extern "C" fn corotls_result_name(result: i32) -> *const c_char {
    let name: &'static CStr = match Code::from_i32(result) {
        Some(c) => RESULT_NAMES[Code::all().iter().position(|x| *x == c).unwrap_or(0)],
        None => c"UNKNOWN",
    };
    name.as_ptr()
}

const RESULT_NAMES: [&CStr; 15] = [
    c"OK",
    c"WANT_READ",
    c"WANT_WRITE",
    c"PENDING",
    c"BUSY",
    c"TIMEOUT",
    c"CLOSED",
    c"EOF",
    c"ERR_ARG",
    c"ERR_NOMEM",
    c"ERR_IO",
    c"ERR_TLS",
    c"ERR_VERIFY",
    c"ERR_CANCELLED",
    c"ERR_INTERNAL",
];

/// Stable name of a reason (`"NONE"`, `"VERIFY"`, `"PEER_ALERT"`...), or
/// `"UNKNOWN"` for a value that is not a corotls_reason.  The string is
/// static.
#[no_mangle]
pub extern "C" fn corotls_reason_name(reason: i32) -> *const c_char {
    match Reason::from_i32(reason) {
        Some(r) => REASON_NAMES[r as usize].as_ptr(),
        None => c"UNKNOWN".as_ptr(),
    }
}

const REASON_NAMES: [&CStr; 28] = [
    c"NONE",
    c"NULL_ARGUMENT",
    c"BAD_ARGUMENT",
    c"WRONG_STATE",
    c"FILE",
    c"CERT_PARSE",
    c"CERT_REJECTED",
    c"CHAIN_CERT_REJECTED",
    c"KEY_PARSE",
    c"KEY_PASSWORD",
    c"KEY_REJECTED",
    c"KEY_MISMATCH",
    c"TRUST",
    c"CIPHER_LIST",
    c"SUITE_LIST",
    c"GROUP_LIST",
    c"ALPN",
    c"HOST_NAME",
    c"ADDRESS",
    c"VERIFY",
    c"NO_PEER_NAME",
    c"NO_PEER_CERT",
    c"PEER_ALERT",
    c"PROTOCOL",
    c"IO",
    c"LIMIT",
    c"NOMEM",
    c"INTERNAL",
];

/// Reason of the most recent call on this thread that did not return OK,
/// WANT_READ, WANT_WRITE or PENDING (COROTLS_REASON_NONE if none), the
/// same call corotls_last_error() describes; `*detail` (if not NULL)
/// receives its number (an errno, an X509_V_ERR_* code, an alert; 0 if
/// none).  Hosts map reasons, never message text.
#[no_mangle]
pub unsafe extern "C" fn corotls_last_reason(detail: *mut i64) -> Reason {
    guard_value(Reason::COROTLS_REASON_NONE, || {
        let (r, d) = LAST_ERROR.with(|l| {
            let l = l.borrow();
            (l.reason.unwrap_or(Reason::COROTLS_REASON_NONE), l.detail)
        });
        put(detail, d);
        r
    })
}

/// Message of the most recent call on this thread that did not return OK,
/// WANT_READ, WANT_WRITE or PENDING ("" if none).  Owned by the library;
/// valid until the next such call on this thread.
#[no_mangle]
pub extern "C" fn corotls_last_error() -> *const c_char {
    guard_value(c"".as_ptr(), || LAST_ERROR.with(|l| l.borrow().msg.as_ptr()))
}

/// The library version, e.g. "0.1.0" (static string): Cargo.toml's, as
/// COROTLS_VERSION_STRING is in the header the library was built with.
#[no_mangle]
pub extern "C" fn corotls_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::REASONS;

    #[test]
    fn result_names_match_the_enum() {
        for &c in Code::all() {
            // SAFETY: static strings.
            let n = unsafe { CStr::from_ptr(corotls_result_name(c as i32)) };
            assert_eq!(n.to_str().unwrap(), c.name());
        }
        // SAFETY: static string.
        let n = unsafe { CStr::from_ptr(corotls_result_name(99)) };
        assert_eq!(n.to_str().unwrap(), "UNKNOWN");
    }

    #[test]
    fn reason_names_match_the_enum() {
        for (r, name) in REASONS.iter() {
            // SAFETY: static strings.
            let n = unsafe { CStr::from_ptr(corotls_reason_name(*r as i32)) };
            assert_eq!(n.to_str().unwrap(), *name);
        }
        // SAFETY: static string.
        let n = unsafe { CStr::from_ptr(corotls_reason_name(99)) };
        assert_eq!(n.to_str().unwrap(), "UNKNOWN");
    }

    #[test]
    fn version_matches_cargo() {
        // SAFETY: static string.
        let v = unsafe { CStr::from_ptr(corotls_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
