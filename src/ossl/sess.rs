//! `SSL_SESSION`s for client resumption: an owned handle, DER in and out,
//! the facts checked before one is offered again, and the client side's
//! new-session callback, which hands every session the server gives an
//! `SSL` to that SSL's sink (`extras::set_session_sink`).

use super::{clear_errors, error, Ctx, SslRef, X509};
use crate::error::{Code::*, Error, Reason::*, Result};
use crate::unload::callback_guard;
use libc::{c_char, c_int, c_long, c_uchar};
use openssl_sys as sys;
use std::ffi::CStr;
use std::ptr;

extern "C" {
    // OpenSSL 3.0; not declared by openssl-sys 0.9.
    fn SSL_get1_session(ssl: *mut sys::SSL) -> *mut sys::SSL_SESSION;
    fn SSL_SESSION_is_resumable(s: *const sys::SSL_SESSION) -> c_int;
    fn SSL_SESSION_get0_hostname(s: *const sys::SSL_SESSION) -> *const c_char;
    fn SSL_SESSION_set1_hostname(s: *mut sys::SSL_SESSION, hostname: *const c_char) -> c_int;
    fn SSL_SESSION_get0_peer(s: *mut sys::SSL_SESSION) -> *mut sys::X509;
    fn X509_STORE_CTX_set_default(ctx: *mut sys::X509_STORE_CTX, name: *const c_char) -> c_int;
    fn SSL_SESSION_dup(s: *const sys::SSL_SESSION) -> *mut sys::SSL_SESSION;
    fn X509_STORE_CTX_get0_param(ctx: *mut sys::X509_STORE_CTX) -> *mut sys::X509_VERIFY_PARAM;
}

/// An owned reference to an `SSL_SESSION`.
pub struct SslSession(*mut sys::SSL_SESSION);

// SAFETY: OpenSSL reference counts are atomic; a session is not changed
// once it is in a cache (only `set_name` writes, before it is shared).
unsafe impl Send for SslSession {}
unsafe impl Sync for SslSession {}

impl Clone for SslSession {
    fn clone(&self) -> Self {
        // SAFETY: live session; adds the reference the clone owns.
        unsafe { sys::SSL_SESSION_up_ref(self.0) };
        SslSession(self.0)
    }
}

impl Drop for SslSession {
    fn drop(&mut self) {
        // SAFETY: we own one reference.
        unsafe { sys::SSL_SESSION_free(self.0) }
    }
}

impl SslSession {
    /// Parse DER (as `to_der` writes it).
    pub fn from_der(der: &[u8]) -> Result<SslSession> {
        clear_errors();
        let len = c_long::try_from(der.len()).map_err(|_| Error::arg("session data is too large"))?;
        let mut p = der.as_ptr();
        // SAFETY: p is valid for len bytes; d2i returns NULL or a new session we own.
        let s = unsafe { sys::d2i_SSL_SESSION(ptr::null_mut(), &mut p as *mut *const c_uchar, len) };
        if s.is_null() {
            let detail = super::take_errors().unwrap_or_else(|| "not DER".into());
            return Err(super::nomem_if_malloc(
                Error::arg(format!("session data is not a TLS session ({detail})"))
                    .because(COROTLS_REASON_BAD_ARGUMENT),
            ));
        }
        let s = SslSession(s);
        // SAFETY: p moved within der (d2i advanced it).
        if unsafe { p.offset_from(der.as_ptr()) } as usize != der.len() {
            return Err(Error::arg("session data has trailing bytes after the TLS session"));
        }
        Ok(s)
    }

    /// The DER encoding.
    pub fn to_der(&self) -> Result<Vec<u8>> {
        clear_errors();
        // SAFETY: live session; with NULL, i2d only measures.
        let n = unsafe { sys::i2d_SSL_SESSION(self.0, ptr::null_mut()) };
        if n <= 0 {
            return Err(error(COROTLS_ERR_INTERNAL, COROTLS_REASON_INTERNAL, "cannot encode the session"));
        }
        let mut out = vec![0u8; n as usize];
        let mut p = out.as_mut_ptr();
        // SAFETY: out has room for the n bytes i2d writes.
        let m = unsafe { sys::i2d_SSL_SESSION(self.0, &mut p) };
        if m != n {
            return Err(error(COROTLS_ERR_INTERNAL, COROTLS_REASON_INTERNAL, "cannot encode the session"));
        }
        Ok(out)
    }

    /// The server would take it: it has a ticket or an ID, and is not over
    /// its lifetime (as OpenSSL counts it: from when it was made).
    pub fn is_resumable(&self) -> bool {
        // SAFETY: live session.
        let resumable = unsafe { SSL_SESSION_is_resumable(self.0) } == 1;
        resumable && !self.expired()
    }

    /// Past its lifetime.
    pub fn expired(&self) -> bool {
        // SAFETY: live session.
        let (made, life) = unsafe { (sys::SSL_SESSION_get_time(self.0), sys::SSL_SESSION_get_timeout(self.0)) };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(i64::MAX);
        // c_long is 32 bits on some targets.
        #[allow(clippy::useless_conversion)]
        let end = i64::from(made).saturating_add(i64::from(life));
        now >= end
    }

    /// The protocol version (wire value).
    pub fn version(&self) -> i32 {
        // SAFETY: live session.
        unsafe { sys::SSL_SESSION_get_protocol_version(self.0) }
    }

    /// The name recorded in the session (see `set_name`), if any.
    pub fn name(&self) -> Option<Vec<u8>> {
        // SAFETY: live session; the string is owned by it and copied at once.
        unsafe {
            let p = SSL_SESSION_get0_hostname(self.0);
            (!p.is_null()).then(|| CStr::from_ptr(p).to_bytes().to_vec())
        }
    }

    /// Record `name` (the name the server was verified for, or the SNI) in
    /// the session: it travels with the DER and is checked on import.
    pub fn set_name(&self, name: &CStr) -> Result<()> {
        // SAFETY: live session not shared yet; the name is copied.
        if unsafe { SSL_SESSION_set1_hostname(self.0, name.as_ptr()) } == 1 {
            Ok(())
        } else {
            Err(error(COROTLS_ERR_NOMEM, COROTLS_REASON_NOMEM, "cannot record the session's name"))
        }
    }

    /// The server's certificate the session was made with.
    pub fn peer(&self) -> Option<X509> {
        // SAFETY: live session; get0 borrows, so a reference is added for the X509 we return.
        unsafe {
            let x = SSL_SESSION_get0_peer(self.0);
            if x.is_null() {
                return None;
            }
            sys::X509_up_ref(x);
            X509::from_ptr(x)
        }
    }

    /// A deep copy (what an SSL may mark unresumable is then not shared).
    pub fn dup(&self) -> Option<SslSession> {
        // SAFETY: live session; dup gives NULL or a new session we own.
        let s = unsafe { SSL_SESSION_dup(self.0) };
        clear_errors();
        (!s.is_null()).then_some(SslSession(s))
    }

    /// Move the session's start `secs` seconds back (tests of expiry).
    #[cfg(test)]
    pub fn age(&self, secs: i64) {
        extern "C" {
            fn SSL_SESSION_set_time(s: *mut sys::SSL_SESSION, t: c_long) -> c_long;
        }
        // SAFETY: live session owned by the test.
        unsafe { SSL_SESSION_set_time(self.0, (sys::SSL_SESSION_get_time(self.0) as i64 - secs) as c_long) };
    }

    pub fn as_ptr(&self) -> *mut sys::SSL_SESSION {
        self.0
    }
}

impl SslRef {
    /// Offer `s` for resumption (client, before the handshake).
    pub fn set_session(self, s: &SslSession) -> Result<()> {
        clear_errors();
        // SAFETY: live SSL and session; the SSL takes its own reference.
        if unsafe { sys::SSL_set_session(self.as_ptr(), s.0) } == 1 {
            Ok(())
        } else {
            Err(error(COROTLS_ERR_ARG, COROTLS_REASON_BAD_ARGUMENT, "cannot offer the session"))
        }
    }

    /// The handshake resumed a session.
    pub fn session_reused(self) -> bool {
        // SAFETY: live SSL.
        unsafe { sys::SSL_session_reused(self.as_ptr()) == 1 }
    }

    /// The SSL's current session (in TLS 1.3 a client's is replaced by
    /// each ticket that arrives), or None.
    pub fn session(self) -> Option<SslSession> {
        // SAFETY: live SSL; get1 gives a reference we own.
        let s = unsafe { SSL_get1_session(self.as_ptr()) };
        (!s.is_null()).then_some(SslSession(s))
    }
}

/// Let a client context hand the sessions servers give to each SSL's sink
/// (no internal store: the conf's cache decides what is kept).
pub fn configure_client(ctx: &Ctx) {
    let p = ctx.as_ptr();
    // SAFETY: live context; the callback reads only the SSL's own ex_data.
    unsafe {
        sys::SSL_CTX_set_session_cache_mode(p, sys::SSL_SESS_CACHE_CLIENT | sys::SSL_SESS_CACHE_NO_INTERNAL_STORE);
        sys::SSL_CTX_sess_set_new_cb(p, Some(new_session_cb));
    }
}

/// A session arrived (after a full handshake in TLS 1.2; with each
/// NewSessionTicket in TLS 1.3).  The sink gets a copy: OpenSSL marks the
/// SSL's own session unresumable when the SSL is freed without a
/// close_notify, which would spoil a shared one.  Returns 0: OpenSSL keeps
/// its reference.
unsafe extern "C" fn new_session_cb(ssl: *mut sys::SSL, s: *mut sys::SSL_SESSION) -> c_int {
    callback_guard(0, || {
        // SAFETY: OpenSSL passes a live SSL and session for the call; dup
        // gives NULL or a new session we own.
        unsafe {
            if let Some(sink) = super::extras::session_sink(ssl) {
                let copy = SSL_SESSION_dup(s);
                if !copy.is_null() {
                    sink(SslSession(copy));
                }
            }
        }
        clear_errors();
        0
    })
}

/// Verify a server certificate kept in a session, now, against `ctx`'s
/// trust and for `name` (DNS name or IP literal; None: chain only), as a
/// TLS server certificate.  The session keeps no intermediates, so a
/// certificate issued by an intermediate the trust does not hold fails.
pub fn verify_leaf(ctx: &Ctx, cert: &X509, name: Option<&[u8]>) -> Result<()> {
    clear_errors();
    let name = match name {
        Some(n) => Some((n, std::ffi::CString::new(n).map_err(|_| Error::arg("host name contains a NUL byte"))?)),
        None => None,
    };
    // SAFETY: live context and certificate; the store context is ours and freed below.
    unsafe {
        let sctx = sys::X509_STORE_CTX_new();
        if sctx.is_null() {
            return Err(Error::nomem());
        }
        let store = sys::SSL_CTX_get_cert_store(ctx.as_ptr());
        let mut ok = sys::X509_STORE_CTX_init(sctx, store, cert.as_ptr(), ptr::null_mut()) == 1
            && X509_STORE_CTX_set_default(sctx, c"ssl_server".as_ptr()) == 1;
        if ok {
            if let Some((n, c)) = &name {
                let param = X509_STORE_CTX_get0_param(sctx);
                let is_ip = std::str::from_utf8(n).ok().and_then(|s| s.parse::<std::net::IpAddr>().ok()).is_some();
                ok = if is_ip {
                    super::X509_VERIFY_PARAM_set1_ip_asc(param, c.as_ptr()) == 1
                } else {
                    sys::X509_VERIFY_PARAM_set_hostflags(param, sys::X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                    sys::X509_VERIFY_PARAM_set1_host(param, c.as_ptr(), n.len()) == 1
                };
            }
        }
        let verdict = if ok { sys::X509_verify_cert(sctx) } else { -1 };
        let code = sys::X509_STORE_CTX_get_error(sctx);
        sys::X509_STORE_CTX_free(sctx);
        clear_errors();
        match verdict {
            1 => Ok(()),
            -1 => Err(Error::nomem()),
            _ => Err(Error::new(
                COROTLS_ERR_VERIFY,
                format!(
                    "the session's server certificate does not verify against this conf: {}",
                    super::verify_error_string(code as _)
                ),
            )
            .because_of(COROTLS_REASON_VERIFY, code as i64)),
        }
    }
}
