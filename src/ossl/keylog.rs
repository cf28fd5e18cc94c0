//! The key-log callback (`SSL_CTX_set_keylog_callback`): OpenSSL hands
//! each secret of a handshake as one line of the NSS key-log format
//! (`CLIENT_RANDOM ...`, `CLIENT_HANDSHAKE_TRAFFIC_SECRET ...`, ...); it
//! goes to the sink in the context's extras.  Installed only on contexts
//! whose conf asked for a key log.

use super::Ctx;
use crate::unload::callback_guard;
use libc::c_char;
use openssl_sys as sys;
use std::ffi::CStr;

/// Send `ctx`'s secrets to its extras' key-log sink.
pub fn configure(ctx: &Ctx) {
    // SAFETY: live context; the callback reads only the context's extras.
    unsafe { sys::SSL_CTX_set_keylog_callback(ctx.as_ptr(), Some(keylog_cb)) };
}

unsafe extern "C" fn keylog_cb(ssl: *const sys::SSL, line: *const c_char) {
    callback_guard((), || {
        if line.is_null() {
            return;
        }
        // SAFETY: OpenSSL passes a live SSL and a NUL-terminated line for the call.
        let (extras, line) = unsafe { (super::extras::ctx_extras(ssl), CStr::from_ptr(line)) };
        if let Some(sink) = extras.and_then(|x| x.keylog.as_ref()) {
            sink(line.to_bytes());
        }
    })
}
