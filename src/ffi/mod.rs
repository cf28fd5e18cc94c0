//! The native C ABI (`corotls_*`).  One module per C type; this file holds
//! the panic boundary, the per-thread last error and argument checking.
//!
//! Opaque C types are zero-sized markers; their pointers are handles of
//! the registry of live objects (`handles`), each naming a boxed Rust
//! object (`ConfBuilder`, `Conf`, `Session`, `Conn`, `Loop`).  The helpers
//! that turn a handle into an object (`conf::builder`, `conf::conf_ref`,
//! `session::with_session`, `session::read_session`, `conn::with_conn`,
//! `conn::conn_ref`, `event_loop::loop_ref`) check it there first, so a
//! freed, foreign or wrong-kind handle is COROTLS_ERR_ARG, never a read of
//! freed memory; new functions get the check by using them.
//!
//! **One panic boundary**: every export runs its body in `boundary` (or a
//! helper built on it: `guard`, `guard_code`, `guard_value`,
//! `with_session`, `with_conn`), which catches a panic, records it as the
//! thread's last error (COROTLS_ERR_INTERNAL, reason INTERNAL) and returns
//! the `OnPanic` value of the export's return type.

#![allow(non_camel_case_types)]
// The safety contract of each `extern "C"` function (pointer validity,
// ownership, threads) is its doc comment, written for C callers and copied
// into the header, not a Rust `# Safety` section.
#![allow(clippy::missing_safety_doc)]

pub mod close;
pub mod conf;
pub mod conn;
#[path = "loop.rs"]
pub mod event_loop;
pub(crate) mod handles;
pub mod keylog;
pub mod ktls;
pub mod peer;
pub mod resume;
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

/// What an export returns when its body panicked (after the panic was
/// recorded as the thread's last error): the per-type default of the one
/// panic boundary.
pub(crate) trait OnPanic {
    fn on_panic() -> Self;
}

impl OnPanic for Code {
    fn on_panic() -> Code {
        COROTLS_ERR_INTERNAL
    }
}
impl OnPanic for Reason {
    fn on_panic() -> Reason {
        Reason::COROTLS_REASON_INTERNAL
    }
}
impl<T> OnPanic for *const T {
    fn on_panic() -> *const T {
        std::ptr::null()
    }
}
impl<T> OnPanic for *mut T {
    fn on_panic() -> *mut T {
        std::ptr::null_mut()
    }
}
impl OnPanic for usize {
    fn on_panic() -> usize {
        0
    }
}
impl OnPanic for i32 {
    fn on_panic() -> i32 {
        -1
    }
}
impl OnPanic for bool {
    fn on_panic() -> bool {
        false
    }
}
impl OnPanic for () {
    fn on_panic() {}
}

/// Run `f` and catch a panic: Err carries the internal error, already
/// recorded as this thread's last error.  The one place exports catch.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> std::result::Result<T, Error> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let e = internal_error(&*p);
        set_last_error(&e);
        e
    })
}

/// The panic boundary of every export: `f`'s value, or the return type's
/// `OnPanic` value (COROTLS_ERR_INTERNAL, NULL, 0, -1, false...) with the
/// panic recorded as the thread's last error.
pub(crate) fn boundary<T: OnPanic>(f: impl FnOnce() -> T) -> T {
    catch(f).unwrap_or_else(|_| T::on_panic())
}

/// The panic boundary for calls without an object to poison.
pub(crate) fn guard(f: impl FnOnce() -> Result<()>) -> Code {
    boundary(|| finish(f()))
}

/// The panic boundary for calls whose success can be OK or PENDING.
pub(crate) fn guard_code(f: impl FnOnce() -> Result<Code>) -> Code {
    boundary(|| match f() {
        Ok(c) => c,
        Err(e) => finish(Err(e)),
    })
}

/// The panic boundary for calls returning a plain value, with an explicit
/// value for a panic (`boundary` gives the type's own).
pub(crate) fn guard_value<T>(default: T, f: impl FnOnce() -> T) -> T {
    catch(f).unwrap_or(default)
}

/// Free the object behind a live handle of `kind` (the `_free` calls):
/// NULL does nothing; a handle that is not a live one of that kind (a
/// second free, a freed or foreign handle, another kind) frees nothing
/// and sets the thread's last error (COROTLS_ERR_ARG, BAD_ARGUMENT).
///
/// # Safety
/// A live handle of `kind` names a `Box<T>` made by the matching `into_raw`.
pub(crate) unsafe fn free_handle<T>(h: usize, kind: handles::Kind) {
    boundary(|| {
        if h == 0 {
            return;
        }
        match handles::remove(h, kind) {
            // SAFETY: registered by into_handle from a Box<T> of this kind.
            Some(p) => drop(Box::from_raw(p as *mut T)),
            None => set_last_error(&Error::arg(handles::refusal(h, kind))),
        }
    })
}

/// Box `v` and register it as a live `kind`: its handle.
pub(crate) fn into_handle<T>(v: T, kind: handles::Kind) -> usize {
    let b = Box::new(v);
    // Registered while the Box still owns the object: a panic drops it.
    let h = handles::insert(&*b as *const T as *mut (), kind);
    let _ = Box::into_raw(b);
    h
}

/// The object behind a live handle of `kind`, else ERR_ARG ("conf is
/// NULL", "not a live corotls_conf").
pub(crate) fn object<T>(h: usize, kind: handles::Kind, what: &str) -> Result<*mut T> {
    if h == 0 {
        return Err(Error::null(what));
    }
    match handles::get(h, kind) {
        Some(p) => Ok(p as *mut T),
        None => Err(Error::arg(handles::refusal(h, kind))),
    }
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
    boundary(|| {
        let name: &'static CStr = match Code::from_i32(result) {
            Some(c) => RESULT_NAMES[Code::all().iter().position(|x| *x == c).unwrap_or(0)],
            None => c"UNKNOWN",
        };
        name.as_ptr()
    })
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
    boundary(|| match Reason::from_i32(reason) {
        Some(r) => REASON_NAMES[r as usize].as_ptr(),
        None => c"UNKNOWN".as_ptr(),
    })
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
