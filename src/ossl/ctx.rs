//! `SSL_CTX` construction and the callbacks OpenSSL calls on it.
//!
//! `conf` decides what a context holds (policy); this file knows how to put
//! it there.  Callback state (SNI table, ALPN list) lives in the context's
//! ex_data, so it stays valid exactly as long as any `SSL` still references
//! the context, whoever created that `SSL`.

use super::{clear_errors, error, Ctx, PKey, X509};
use crate::error::{Code::*, Reason::*, Result};
use crate::unload::callback_guard;
use libc::{c_char, c_int, c_long, c_uchar, c_uint, c_void};
use openssl_sys as sys;
use std::ffi::CStr;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

extern "C" {
    // OpenSSL 3.0; not declared by openssl-sys.
    fn X509_STORE_CTX_get0_param(ctx: *mut sys::X509_STORE_CTX) -> *mut sys::X509_VERIFY_PARAM;
    fn X509_VERIFY_PARAM_get0_host(param: *mut sys::X509_VERIFY_PARAM, n: c_int) -> *mut c_char;
    fn X509_VERIFY_PARAM_get1_ip_asc(param: *mut sys::X509_VERIFY_PARAM) -> *mut c_char;
}

/// `X509_V_ERR_APPLICATION_VERIFICATION`: what the name guard reports.
pub const NO_PEER_NAME: c_long = 50;

/// Which peers a context verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerCheck {
    /// No verification (a server asks for no client certificate).
    Off,
    /// Verify what the peer sends (a server asks, but accepts none).
    Sent,
    /// Verify, and a server refuses a client without a certificate.
    Required,
}

/// One entry of a server's SNI table: a certificate and the context that
/// serves it (None: the primary context itself).
pub struct SniChoice {
    pub leaf: X509,
    pub ctx: Option<Ctx>,
}

impl Ctx {
    /// A new context for a client or a server, with corotls' fixed modes:
    /// partial writes, moving write buffers, no renegotiation, no
    /// compression, and the server's cipher order.
    pub fn new(server: bool) -> Result<Ctx> {
        clear_errors();
        // SAFETY: the method functions return static tables; SSL_CTX_new
        // returns NULL or a new context we own.
        let ctx = unsafe {
            let m = if server { sys::TLS_server_method() } else { sys::TLS_client_method() };
            Ctx::from_ptr(sys::SSL_CTX_new(m))
        };
        let ctx = ctx.ok_or_else(|| error(COROTLS_ERR_NOMEM, COROTLS_REASON_NOMEM, "SSL_CTX_new failed"))?;
        // SAFETY: live context we own.
        unsafe {
            let p = ctx.as_ptr();
            sys::SSL_CTX_set_options(
                p,
                sys::SSL_OP_NO_RENEGOTIATION | sys::SSL_OP_NO_COMPRESSION | sys::SSL_OP_CIPHER_SERVER_PREFERENCE,
            );
            sys::SSL_CTX_set_mode(p, sys::SSL_MODE_ENABLE_PARTIAL_WRITE | sys::SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        }
        Ok(ctx)
    }

    /// Protocol versions, as wire values (`TLS1_2_VERSION`...).
    pub fn set_versions(&self, min: c_int, max: c_int) -> Result<()> {
        // SAFETY: live context.
        let ok = unsafe {
            sys::SSL_CTX_set_min_proto_version(self.as_ptr(), min) == 1
                && sys::SSL_CTX_set_max_proto_version(self.as_ptr(), max) == 1
        };
        if ok {
            Ok(())
        } else {
            Err(error(COROTLS_ERR_ARG, COROTLS_REASON_BAD_ARGUMENT, "cannot set the TLS version range"))
        }
    }

    /// TLS 1.2 cipher list (checked by `ciphers::check_cipher_list`).
    pub fn set_cipher_list(&self, list: &CStr) -> Result<()> {
        clear_errors();
        // SAFETY: live context; NUL-terminated list.
        if unsafe { sys::SSL_CTX_set_cipher_list(self.as_ptr(), list.as_ptr()) } == 1 {
            Ok(())
        } else {
            Err(error(COROTLS_ERR_ARG, COROTLS_REASON_CIPHER_LIST, "invalid TLS 1.2 cipher list"))
        }
    }

    /// TLS 1.3 suites (checked by `ciphers::check_suites`).
    pub fn set_suites(&self, list: &CStr) -> Result<()> {
        clear_errors();
        // SAFETY: live context; NUL-terminated list.
        if unsafe { sys::SSL_CTX_set_ciphersuites(self.as_ptr(), list.as_ptr()) } == 1 {
            Ok(())
        } else {
            Err(error(COROTLS_ERR_ARG, COROTLS_REASON_SUITE_LIST, "invalid TLS 1.3 suite list"))
        }
    }

    /// Key exchange groups, most preferred first (`X25519:P-256`).
    pub fn set_groups(&self, list: &CStr) -> Result<()> {
        clear_errors();
        // SAFETY: live context; NUL-terminated list, copied by OpenSSL.
        let r =
            unsafe { sys::SSL_CTX_ctrl(self.as_ptr(), sys::SSL_CTRL_SET_GROUPS_LIST, 0, list.as_ptr() as *mut c_void) };
        if r == 1 {
            Ok(())
        } else {
            Err(error(COROTLS_ERR_ARG, COROTLS_REASON_GROUP_LIST, "invalid group list"))
        }
    }

    /// Serve (or, on a client, present) this certificate chain and key.
    pub fn use_identity(&self, leaf: &X509, chain: &[X509], key: &PKey) -> Result<()> {
        clear_errors();
        let p = self.as_ptr();
        // SAFETY: live context and objects; the use/add functions take their
        // own references.
        unsafe {
            if sys::SSL_CTX_use_certificate(p, leaf.as_ptr()) != 1 {
                return Err(error(COROTLS_ERR_ARG, COROTLS_REASON_CERT_REJECTED, "certificate rejected"));
            }
            for c in chain {
                if sys::SSL_CTX_ctrl(p, sys::SSL_CTRL_CHAIN_CERT, 1, c.as_ptr() as *mut c_void) != 1 {
                    return Err(error(
                        COROTLS_ERR_ARG,
                        COROTLS_REASON_CHAIN_CERT_REJECTED,
                        "chain certificate rejected",
                    ));
                }
            }
            if sys::SSL_CTX_use_PrivateKey(p, key.as_ptr()) != 1 {
                return Err(error(COROTLS_ERR_ARG, COROTLS_REASON_KEY_REJECTED, "private key rejected"));
            }
            if sys::SSL_CTX_check_private_key(p) != 1 {
                return Err(error(
                    COROTLS_ERR_ARG,
                    COROTLS_REASON_KEY_MISMATCH,
                    "private key does not match the certificate",
                ));
            }
        }
        Ok(())
    }

    /// Trust these CA certificates.
    pub fn trust_certs(&self, certs: &[X509]) {
        // SAFETY: live context; the store takes its own references.
        unsafe {
            let store = sys::SSL_CTX_get_cert_store(self.as_ptr());
            // A duplicate certificate is not an error worth failing on.
            for c in certs {
                sys::X509_STORE_add_cert(store, c.as_ptr());
            }
        }
        clear_errors();
    }

    /// Trust a hashed directory of CA certificates (looked up lazily).
    pub fn trust_dir(&self, dir: &CStr) -> Result<()> {
        // SAFETY: live context; NUL-terminated path.
        if unsafe { super::SSL_CTX_load_verify_dir(self.as_ptr(), dir.as_ptr()) } == 1 {
            Ok(())
        } else {
            Err(error(COROTLS_ERR_ARG, COROTLS_REASON_TRUST, "cannot load trusted certificates"))
        }
    }

    /// Trust OpenSSL's default CA locations.
    pub fn trust_system(&self) -> Result<()> {
        // SAFETY: live context.
        if unsafe { sys::SSL_CTX_set_default_verify_paths(self.as_ptr()) } == 1 {
            Ok(())
        } else {
            Err(error(COROTLS_ERR_ARG, COROTLS_REASON_TRUST, "cannot load the system's trusted certificates"))
        }
    }

    /// Peer verification.  With `require_name`, a verified certificate
    /// also fails unless the `SSL` was told which name to match it against
    /// (`SslRef::set_verify_host`): a client never accepts "any name".
    pub fn set_peer_check(&self, check: PeerCheck, server: bool, require_name: bool) {
        let mode = match (check, server) {
            (PeerCheck::Off, _) => sys::SSL_VERIFY_NONE,
            (_, false) | (PeerCheck::Sent, true) => sys::SSL_VERIFY_PEER,
            (PeerCheck::Required, true) => sys::SSL_VERIFY_PEER | sys::SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
        };
        let cb = if require_name && check != PeerCheck::Off { Some(name_guard_cb as VerifyCb) } else { None };
        // SAFETY: live context; the callback is a plain function.
        unsafe { sys::SSL_CTX_set_verify(self.as_ptr(), mode, cb) };
        if server {
            // Needed for session resumption when client certificates are verified.
            let sid = b"corotls";
            // SAFETY: live context; sid is valid for its length.
            unsafe { sys::SSL_CTX_set_session_id_context(self.as_ptr(), sid.as_ptr(), sid.len() as c_uint) };
        }
    }

    /// The ALPN list a client offers (wire format, already validated).
    pub fn set_alpn_offer(&self, wire: &[u8]) -> Result<()> {
        // SAFETY: live context; wire valid for its length; copied.
        if unsafe { sys::SSL_CTX_set_alpn_protos(self.as_ptr(), wire.as_ptr(), wire.len() as c_uint) } == 0 {
            Ok(())
        } else {
            Err(error(COROTLS_ERR_NOMEM, COROTLS_REASON_NOMEM, "cannot set the ALPN list"))
        }
    }

    /// A server's callbacks: ALPN selection with server preference over
    /// `alpn`, and, when `sni` is not empty, the choice of identity by SNI
    /// name.  The context keeps the state for as long as it lives.
    pub fn set_server_callbacks(&self, alpn: Option<Vec<u8>>, sni: Vec<SniChoice>) -> Result<()> {
        if alpn.is_none() && sni.is_empty() {
            return Ok(());
        }
        let with_alpn = alpn.is_some();
        let with_sni = !sni.is_empty();
        set_ctx_data(self, CtxData { sni, alpn })?;
        // SAFETY: live context; the callbacks read only its ex_data.
        unsafe {
            if with_alpn {
                sys::SSL_CTX_set_alpn_select_cb__fixed_rust(self.as_ptr(), Some(alpn_select_cb), ptr::null_mut());
            }
            if with_sni {
                sys::SSL_CTX_set_tlsext_servername_callback__fixed_rust(self.as_ptr(), Some(servername_cb));
            }
        }
        Ok(())
    }
}

type VerifyCb = extern "C" fn(c_int, *mut sys::X509_STORE_CTX) -> c_int;

/// The name guard: once the leaf certificate passed every other check, fail
/// it (X509_V_ERR_APPLICATION_VERIFICATION) if no DNS name or IP address
/// was set to match it against.  With one set, OpenSSL has already matched
/// it (a mismatch never reaches here with `ok` = 1).
extern "C" fn name_guard_cb(ok: c_int, store: *mut sys::X509_STORE_CTX) -> c_int {
    if ok != 1 {
        return ok;
    }
    let named = callback_guard(false, || {
        // SAFETY: OpenSSL passes a live store context for the callback.
        unsafe {
            if sys::X509_STORE_CTX_get_error_depth(store) != 0 {
                return true;
            }
            let param = X509_STORE_CTX_get0_param(store);
            if param.is_null() {
                return false;
            }
            if !X509_VERIFY_PARAM_get0_host(param, 0).is_null() {
                return true;
            }
            let ip = X509_VERIFY_PARAM_get1_ip_asc(param);
            if ip.is_null() {
                return false;
            }
            sys::CRYPTO_free(ip as *mut c_void, c"ctx.rs".as_ptr(), line!() as c_int);
            true
        }
    });
    if named {
        1
    } else {
        // SAFETY: live store context.
        unsafe { sys::X509_STORE_CTX_set_error(store, NO_PEER_NAME as c_int) };
        0
    }
}

// ----- callback state in SSL_CTX ex_data -------------------------------

struct CtxData {
    sni: Vec<SniChoice>,
    alpn: Option<Vec<u8>>,
}

/// Callback states alive (in some context's ex_data): the index is given
/// back at unload only when none is.
static LIVE_DATA: AtomicUsize = AtomicUsize::new(0);

fn ex_index() -> c_int {
    static IDX: OnceLock<c_int> = OnceLock::new();
    *IDX.get_or_init(|| {
        // SAFETY: registers a new ex_data slot with our free function.
        let idx = unsafe { sys::SSL_CTX_get_ex_new_index(0, ptr::null_mut(), None, None, Some(ctx_data_free)) };
        if idx >= 0 {
            crate::unload::at_unload(release_index);
        }
        idx
    })
}

extern "C" {
    // OpenSSL 3.0; not declared by openssl-sys.
    fn CRYPTO_free_ex_index(class_index: c_int, idx: c_int) -> c_int;
}

/// At unload: OpenSSL calls an index's free function for every context
/// freed, ours or not, so it must not keep a pointer into unmapped code.
/// Give the index back, unless a context still holds our state (a conf
/// the host never freed), whose free would need it.
extern "C" fn release_index(_: *mut c_void) {
    if LIVE_DATA.load(Ordering::SeqCst) != 0 {
        return;
    }
    // SAFETY: the index was registered by ex_index; afterwards OpenSSL
    // calls no function of ours for it.
    unsafe { CRYPTO_free_ex_index(sys::CRYPTO_EX_INDEX_SSL_CTX, ex_index()) };
}

unsafe extern "C" fn ctx_data_free(
    _parent: *mut c_void,
    ptr: *mut c_void,
    _ad: *mut sys::CRYPTO_EX_DATA,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) {
    if !ptr.is_null() {
        LIVE_DATA.fetch_sub(1, Ordering::SeqCst);
        // SAFETY: ptr came from Box::into_raw in set_ctx_data; OpenSSL calls
        // this exactly once, when the context is freed.  A panic in a Drop
        // must not unwind into OpenSSL.
        callback_guard((), || drop(unsafe { Box::from_raw(ptr as *mut CtxData) }));
    }
}

fn set_ctx_data(ctx: &Ctx, data: CtxData) -> Result<()> {
    let idx = ex_index();
    if idx < 0 {
        return Err(error(COROTLS_ERR_NOMEM, COROTLS_REASON_NOMEM, "SSL_CTX_get_ex_new_index failed"));
    }
    let raw = Box::into_raw(Box::new(data));
    // SAFETY: live ctx; the slot now owns `raw` (freed by ctx_data_free).
    if unsafe { sys::SSL_CTX_set_ex_data(ctx.as_ptr(), idx, raw as *mut c_void) } != 1 {
        // SAFETY: not stored, so still ours.
        drop(unsafe { Box::from_raw(raw) });
        return Err(error(COROTLS_ERR_NOMEM, COROTLS_REASON_NOMEM, "SSL_CTX_set_ex_data failed"));
    }
    LIVE_DATA.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// # Safety
/// `ssl` is live; the returned reference is used only during the callback.
unsafe fn ctx_data<'a>(ssl: *mut sys::SSL) -> Option<&'a CtxData> {
    let ctx = sys::SSL_get_SSL_CTX(ssl);
    if ctx.is_null() {
        return None;
    }
    let idx = ex_index();
    if idx < 0 {
        return None;
    }
    (sys::SSL_CTX_get_ex_data(ctx, idx) as *const CtxData).as_ref()
}

/// SNI: the first identity whose certificate matches the requested name
/// (`X509_check_host` flags 0: SAN DNS with wildcards, CN when no DNS SAN;
/// an IP literal is matched as a string); otherwise stay on the first.
/// Never sends an alert.
unsafe extern "C" fn servername_cb(ssl: *mut sys::SSL, _al: *mut c_int, _arg: *mut c_void) -> c_int {
    let pick = callback_guard(None, || {
        // SAFETY: OpenSSL passes a live SSL for the callback's duration.
        let data = unsafe { ctx_data(ssl) }?;
        // SAFETY: live SSL; the name is owned by it.
        let name = unsafe { sys::SSL_get_servername(ssl, sys::TLSEXT_NAMETYPE_host_name) };
        if name.is_null() {
            return None;
        }
        // SAFETY: NUL-terminated string owned by the SSL.
        let name = unsafe { CStr::from_ptr(name as *const c_char) }.to_bytes();
        let hit = data.sni.iter().find(|e| super::cert_matches_host(&e.leaf, name))?;
        hit.ctx.as_ref().map(|c| c.as_ptr())
    });
    if let Some(ctx) = pick {
        // SAFETY: live SSL and ctx (owned by the primary's table, which the
        // SSL keeps alive through its session_ctx reference).
        unsafe { sys::SSL_set_SSL_CTX(ssl, ctx) };
    }
    sys::SSL_TLSEXT_ERR_OK
}

/// ALPN with server preference; no overlap means no ALPN (no alert).
unsafe extern "C" fn alpn_select_cb(
    ssl: *mut sys::SSL,
    out: *mut *const c_uchar,
    outlen: *mut c_uchar,
    inp: *const c_uchar,
    inlen: c_uint,
    _arg: *mut c_void,
) -> c_int {
    callback_guard(sys::SSL_TLSEXT_ERR_NOACK, || {
        // SAFETY: live SSL during the callback.
        let data = unsafe { ctx_data(ssl) };
        let Some(server) = data.and_then(|d| d.alpn.as_deref()) else {
            return sys::SSL_TLSEXT_ERR_NOACK;
        };
        // SAFETY: both lists are valid for their lengths; `out` ends up
        // pointing into one of them, both outliving the handshake step.
        let r = unsafe {
            sys::SSL_select_next_proto(
                out as *mut *mut c_uchar,
                outlen,
                server.as_ptr(),
                server.len() as c_uint,
                inp,
                inlen,
            )
        };
        if r == sys::OPENSSL_NPN_NEGOTIATED {
            sys::SSL_TLSEXT_ERR_OK
        } else {
            sys::SSL_TLSEXT_ERR_NOACK
        }
    })
}
