//! Callback state that OpenSSL objects carry for resumption and key
//! logging, in ex_data slots of their own (apart from `ctx`'s SNI/ALPN
//! state, so each concern can be installed alone):
//!
//! - on an `SSL_CTX`: `CtxExtras`, the server's ticket keys and the key-log
//!   sink, read by the callbacks of `tickets` and `keylog`;
//! - on an `SSL`: a `SessionSink`, where a client puts the sessions the
//!   server gives it (`sess::new_session_cb`).
//!
//! Each slot's value is freed with its object; the indexes are given back
//! at unload when no value is alive (the rule of `ctx`).

use super::tickets::TicketKeys;
use crate::unload::callback_guard;
use libc::{c_int, c_long, c_void};
use openssl_sys as sys;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Receives one key-log line (NSS format, no newline).
pub type KeyLogSink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Receives a session the server handed this client (a new reference).
pub type SessionSink = Box<dyn Fn(super::sess::SslSession) + Send + Sync>;

/// What a context's resumption and key-log callbacks read.
#[derive(Default, Clone)]
pub struct CtxExtras {
    pub tickets: Option<Arc<TicketKeys>>,
    pub keylog: Option<KeyLogSink>,
}

/// Values alive in either slot: the indexes go back at unload only when
/// none is.
static LIVE: AtomicUsize = AtomicUsize::new(0);

extern "C" {
    // OpenSSL 3.0; not declared by openssl-sys.
    fn CRYPTO_free_ex_index(class_index: c_int, idx: c_int) -> c_int;
}

fn ctx_index() -> c_int {
    static IDX: OnceLock<c_int> = OnceLock::new();
    *IDX.get_or_init(|| {
        // SAFETY: registers a new ex_data slot with our free function.
        let idx =
            unsafe { sys::SSL_CTX_get_ex_new_index(0, ptr::null_mut(), None, None, Some(free_boxed::<CtxExtras>)) };
        if idx >= 0 {
            crate::unload::at_unload(release_ctx_index);
        }
        idx
    })
}

fn ssl_index() -> c_int {
    static IDX: OnceLock<c_int> = OnceLock::new();
    *IDX.get_or_init(|| {
        // SAFETY: registers a new ex_data slot with our free function.
        let idx = unsafe { sys::SSL_get_ex_new_index(0, ptr::null_mut(), None, None, Some(free_boxed::<SessionSink>)) };
        if idx >= 0 {
            crate::unload::at_unload(release_ssl_index);
        }
        idx
    })
}

extern "C" fn release_ctx_index(_: *mut c_void) {
    if LIVE.load(Ordering::SeqCst) == 0 {
        // SAFETY: registered by ctx_index; OpenSSL calls nothing of ours for it afterwards.
        unsafe { CRYPTO_free_ex_index(sys::CRYPTO_EX_INDEX_SSL_CTX, ctx_index()) };
    }
}

extern "C" fn release_ssl_index(_: *mut c_void) {
    if LIVE.load(Ordering::SeqCst) == 0 {
        // SAFETY: registered by ssl_index; as above.
        unsafe { CRYPTO_free_ex_index(sys::CRYPTO_EX_INDEX_SSL, ssl_index()) };
    }
}

/// The ex_data free callback of both slots: the slot holds a `Box<T>`
/// (CtxExtras on a context, SessionSink on an SSL).
unsafe extern "C" fn free_boxed<T>(
    _parent: *mut c_void,
    p: *mut c_void,
    _ad: *mut sys::CRYPTO_EX_DATA,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) {
    if !p.is_null() {
        LIVE.fetch_sub(1, Ordering::SeqCst);
        // SAFETY: p came from Box::<T>::into_raw (set_ctx_extras, set_session_sink); called once, when its owner is freed.
        callback_guard((), || drop(unsafe { Box::from_raw(p as *mut T) }));
    }
}

fn nomem(what: &str) -> crate::error::Error {
    use crate::error::{Code::COROTLS_ERR_NOMEM, Reason::COROTLS_REASON_NOMEM};
    super::error(COROTLS_ERR_NOMEM, COROTLS_REASON_NOMEM, what)
}

/// Give `ctx` its extras (once, while it is being configured).
pub fn set_ctx_extras(ctx: &super::Ctx, extras: CtxExtras) -> crate::error::Result<()> {
    let idx = ctx_index();
    if idx < 0 {
        return Err(nomem("SSL_CTX_get_ex_new_index failed"));
    }
    let raw = Box::into_raw(Box::new(extras));
    // SAFETY: live context; the slot owns `raw` from now on (freed by free_boxed).
    if unsafe { sys::SSL_CTX_set_ex_data(ctx.as_ptr(), idx, raw as *mut c_void) } != 1 {
        // SAFETY: not stored, so still ours.
        drop(unsafe { Box::from_raw(raw) });
        return Err(nomem("SSL_CTX_set_ex_data failed"));
    }
    LIVE.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// The extras of the context an `SSL` currently uses.
///
/// # Safety
/// `ssl` is live; the reference is used only during the callback.
pub unsafe fn ctx_extras<'a>(ssl: *const sys::SSL) -> Option<&'a CtxExtras> {
    let ctx = sys::SSL_get_SSL_CTX(ssl);
    ctx_extras_of(ctx)
}

/// The extras of a context.
///
/// # Safety
/// `ctx` is NULL or live; the reference is used only while it is.
pub unsafe fn ctx_extras_of<'a>(ctx: *const sys::SSL_CTX) -> Option<&'a CtxExtras> {
    let idx = ctx_index();
    if ctx.is_null() || idx < 0 {
        return None;
    }
    (sys::SSL_CTX_get_ex_data(ctx, idx) as *const CtxExtras).as_ref()
}

/// Where this client `SSL` puts the sessions it receives (replacing any
/// sink set before).
pub fn set_session_sink(ssl: super::SslRef, sink: SessionSink) -> crate::error::Result<()> {
    let idx = ssl_index();
    if idx < 0 {
        return Err(nomem("SSL_get_ex_new_index failed"));
    }
    // SAFETY: live SSL; an old value is ours to free (the slot no longer names it).
    unsafe {
        let old = sys::SSL_get_ex_data(ssl.as_ptr(), idx);
        let raw = Box::into_raw(Box::new(sink));
        if sys::SSL_set_ex_data(ssl.as_ptr(), idx, raw as *mut c_void) != 1 {
            drop(Box::from_raw(raw));
            return Err(nomem("SSL_set_ex_data failed"));
        }
        LIVE.fetch_add(1, Ordering::SeqCst);
        if !old.is_null() {
            LIVE.fetch_sub(1, Ordering::SeqCst);
            drop(Box::from_raw(old as *mut SessionSink));
        }
    }
    Ok(())
}

/// The session sink of an `SSL`, if it has one.
///
/// # Safety
/// `ssl` is live; the reference is used only during the callback.
pub unsafe fn session_sink<'a>(ssl: *const sys::SSL) -> Option<&'a SessionSink> {
    let idx = ssl_index();
    if idx < 0 {
        return None;
    }
    (sys::SSL_get_ex_data(ssl, idx) as *const SessionSink).as_ref()
}
