//! One `SSL` object and its two in-memory BIOs, one OpenSSL call at a time.
//!
//! `SslRef` is a borrowed view: it is how the session layer drives an SSL,
//! its own (`Session`) or one a host holds (`session::HostSsl`, for the
//! Melon face, whose callers may attach an `SSL *` and BIOs of their own).
//! Each operation clears the thread's error queue first and
//! turns the outcome into `Result`, moving the queue into the `Error`.

use super::{
    clear_errors, cstr_or, verify_error_string, BIO_ctrl_pending, Ctx, X509_VERIFY_PARAM_set1_ip_asc, MEM_EOF_RETRY,
    X509,
};
use crate::error::{Code::*, Error, Reason::*, Result};
use libc::{c_char, c_int, c_long, c_void};
use openssl_sys as sys;
use std::ptr;

/// A borrowed `SSL *`.  Copyable; the owner guarantees it stays alive and is
/// used by one thread at a time.
#[derive(Clone, Copy, Debug)]
pub struct SslRef(*mut sys::SSL);

// SAFETY: an SSL object may move between threads; the owner serialises use.
unsafe impl Send for SslRef {}

/// OpenSSL's reason code for "a server requiring client certificates got
/// none".
const SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE: i64 = 199;

/// Largest single SSL_read/SSL_write request.  OpenSSL takes size_t in the
/// _ex variants; capping keeps each call's work (and latency) bounded.
const MAX_IO_CALL: usize = 1 << 30;

/// `SSL_set_read_ahead` is a macro over this control.
const SSL_CTRL_SET_READ_AHEAD: c_int = 41;

impl SslRef {
    /// # Safety
    /// `p` is NULL or a live `SSL *` that outlives every use of the result.
    pub unsafe fn from_ptr(p: *mut sys::SSL) -> Option<SslRef> {
        if p.is_null() {
            None
        } else {
            Some(SslRef(p))
        }
    }

    pub fn as_ptr(self) -> *mut sys::SSL {
        self.0
    }

    pub fn rbio(self) -> *mut sys::BIO {
        // SAFETY: live SSL.
        unsafe { sys::SSL_get_rbio(self.0) }
    }

    pub fn wbio(self) -> *mut sys::BIO {
        // SAFETY: live SSL.
        unsafe { sys::SSL_get_wbio(self.0) }
    }

    /// Drive the handshake one step.
    pub fn handshake(self) -> Result<()> {
        // SAFETY: live SSL.
        self.step("TLS handshake failed", || unsafe { sys::SSL_do_handshake(self.0) }).map(drop)
    }

    /// Run one OpenSSL call that returns 1 on success.
    ///
    /// A stale entry in the thread's error queue (left by the host) would
    /// make SSL_get_error report SSL_ERROR_SSL for a call that only wants
    /// I/O.  Clearing the queue before every call costs ~200 instructions
    /// even when it is empty (it is, almost always): 3% of an echo round
    /// trip, 7% of the Melon face's.  So on an established connection the
    /// queue is looked at only after a failure: WANT_* and ZERO_RETURN come
    /// from an empty queue by definition; an SSL_ERROR_SSL / SYSCALL verdict
    /// is drained and the call runs once more on the emptied queue.  A
    /// genuine failure puts the SSL back "in init" (OpenSSL's error state),
    /// so only a retry that succeeds, or asks for I/O with the connection
    /// still established, shows the entries were stale; else the first
    /// failure stands.  During the handshake the queue is cleared first.
    fn step(self, what: &str, mut call: impl FnMut() -> c_int) -> Result<c_int> {
        let established = self.established();
        if !established {
            clear_errors();
        }
        let r = call();
        if r == 1 {
            return Ok(r);
        }
        // SAFETY: live SSL; inspects the queue before anything drains it.
        let kind = unsafe { sys::SSL_get_error(self.0, r) };
        if !established || (kind != sys::SSL_ERROR_SSL && kind != sys::SSL_ERROR_SYSCALL) {
            return Err(self.error_of(kind, what));
        }
        let first = self.error_of(kind, what);
        let again = call();
        if again == 1 {
            return Ok(again);
        }
        // SAFETY: live SSL.
        let kind = unsafe { sys::SSL_get_error(self.0, again) };
        match kind {
            sys::SSL_ERROR_WANT_READ | sys::SSL_ERROR_WANT_WRITE | sys::SSL_ERROR_ZERO_RETURN if self.established() => {
                Err(self.error_of(kind, what))
            }
            _ => {
                clear_errors();
                Err(first)
            }
        }
    }

    /// The handshake is complete and no failure has put the SSL back into
    /// its error state.
    fn established(self) -> bool {
        // SAFETY: live SSL.
        unsafe { sys::SSL_is_init_finished(self.0) == 1 }
    }

    /// Decrypt into `buf`.  Ok(0) only for an empty `buf`.
    pub fn read(self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut n: usize = 0;
        let len = buf.len().min(MAX_IO_CALL);
        let p = buf.as_mut_ptr() as *mut c_void;
        // SAFETY: live SSL; buf is valid for `len` bytes; n is a local.
        self.step("TLS read failed", || unsafe { sys::SSL_read_ex(self.0, p, len, &mut n) })?;
        Ok(n)
    }

    /// Encrypt from `buf`; returns how much OpenSSL took.  Ok(0) only for an
    /// empty `buf`.
    pub fn write(self, buf: &[u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut n: usize = 0;
        let len = buf.len().min(MAX_IO_CALL);
        let p = buf.as_ptr() as *const c_void;
        // SAFETY: live SSL; buf is valid for `len` bytes; n is a local.
        self.step("TLS write failed", || unsafe { sys::SSL_write_ex(self.0, p, len, &mut n) })?;
        Ok(n)
    }

    /// Queue our close_notify.  Ok(true) once the peer's has arrived too,
    /// Ok(false) when only ours is out.
    pub fn shutdown(self) -> Result<bool> {
        clear_errors();
        // SAFETY: live SSL.
        let r = unsafe { sys::SSL_shutdown(self.0) };
        match r {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(self.error(r, "TLS shutdown failed")),
        }
    }

    /// Turn a failed call's return value into an Error, draining the queue.
    fn error(self, ret: c_int, what: &str) -> Error {
        // SAFETY: live SSL; SSL_get_error inspects the queue, so it runs first.
        let e = unsafe { sys::SSL_get_error(self.0, ret) };
        self.error_of(e, what)
    }

    /// `error` for the verdict `e` SSL_get_error gave.
    fn error_of(self, e: c_int, what: &str) -> Error {
        // These three come only from an empty queue (SSL_get_error reports
        // SSL_ERROR_SSL when it holds anything), so there is nothing to clear.
        match e {
            sys::SSL_ERROR_WANT_READ => Error::want_read(),
            sys::SSL_ERROR_WANT_WRITE => Error::want_write(),
            sys::SSL_ERROR_ZERO_RETURN => Error::closed(),
            _ => {
                let drained = super::drain_errors();
                let verify = self.verify_result();
                if verify == super::ctx::NO_PEER_NAME {
                    return Error::new(
                        COROTLS_ERR_VERIFY,
                        "certificate verify failed: no host name was set to check it against",
                    )
                    .because(COROTLS_REASON_NO_PEER_NAME);
                }
                if verify != sys::X509_V_OK as c_long {
                    return Error::new(
                        COROTLS_ERR_VERIFY,
                        format!("certificate verify failed: {}", verify_error_string(verify)),
                    )
                    .because_of(COROTLS_REASON_VERIFY, verify as _);
                }
                let Some((detail, first)) = drained else {
                    let detail = match e {
                        sys::SSL_ERROR_SYSCALL => "transport failure",
                        _ => "no reason given",
                    };
                    return Error::tls(format!("{what}: {detail}"));
                };
                let (reason, number) = super::reason_of(first);
                if reason == COROTLS_REASON_PROTOCOL && number == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE {
                    return Error::new(COROTLS_ERR_VERIFY, format!("{what}: {detail}"))
                        .because(COROTLS_REASON_NO_PEER_CERT);
                }
                super::nomem_if_malloc(Error::tls(format!("{what}: {detail}")).because_of(reason, number))
            }
        }
    }

    /// Append ciphertext for OpenSSL to read.
    pub fn feed(self, data: &[u8]) -> Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            let chunk = rest.len().min(i32::MAX as usize);
            // SAFETY: live BIO owned by the SSL; rest valid for `chunk` bytes.
            let n = unsafe { sys::BIO_write(self.rbio(), rest.as_ptr() as *const c_void, chunk as c_int) };
            if n <= 0 || n as usize != chunk {
                clear_errors();
                return Err(Error::nomem());
            }
            rest = &rest[chunk..];
        }
        Ok(())
    }

    /// Whether OpenSSL holds input it has not returned yet: decrypted
    /// plaintext, or record bytes it took from the input BIO.
    pub fn has_pending(self) -> bool {
        // SAFETY: live SSL.
        unsafe { super::SSL_has_pending(self.0) != 0 }
    }

    /// Give OpenSSL's record buffers back (some 34 KiB; the next record
    /// allocates them again).  Nothing happens while they hold data.
    pub fn free_buffers(self) {
        // SAFETY: live SSL; SSL_free_buffers refuses buffers in use.
        unsafe { super::SSL_free_buffers(self.0) };
    }

    /// Ciphertext fed but not yet consumed by OpenSSL.
    pub fn in_pending(self) -> usize {
        let b = self.rbio();
        if b.is_null() {
            return 0;
        }
        // SAFETY: live BIO.
        unsafe { BIO_ctrl_pending(b) }
    }

    /// Ciphertext OpenSSL produced and nobody took yet.
    pub fn out_pending(self) -> usize {
        let b = self.wbio();
        if b.is_null() {
            return 0;
        }
        // SAFETY: live BIO.
        unsafe { BIO_ctrl_pending(b) }
    }

    /// Move up to `dst.len()` bytes of produced ciphertext into `dst`.
    pub fn out_read(self, dst: &mut [u8]) -> usize {
        let b = self.wbio();
        if b.is_null() || dst.is_empty() {
            return 0;
        }
        let want = dst.len().min(i32::MAX as usize) as c_int;
        // SAFETY: live BIO; dst valid for `want` bytes.
        let n = unsafe { sys::BIO_read(b, dst.as_mut_ptr() as *mut c_void, want) };
        // An empty FIFO or memory BIO queues no error: nothing to clear.
        n.max(0) as usize
    }

    /// Server Name Indication for a client (checked by `check_host_name`).
    pub fn set_sni(self, name: &[u8]) -> Result<()> {
        let c = check_host_name(name)?;
        clear_errors();
        // SAFETY: live SSL; c is NUL-terminated.
        let r = unsafe { sys::SSL_set_tlsext_host_name(self.0, c.as_ptr() as *mut c_char) };
        if r == 1 {
            Ok(())
        } else {
            Err(super::error(COROTLS_ERR_ARG, COROTLS_REASON_HOST_NAME, "cannot set the SNI name"))
        }
    }

    /// Verify the peer's certificate against `name`: an IP literal is matched
    /// against IP SANs, anything else against DNS names per RFC 6125 with no
    /// partial wildcards.  Replaces any name or address set before.  Takes
    /// effect when the conf verifies peers.
    pub fn set_verify_host(self, name: &[u8]) -> Result<()> {
        let c = check_host_name(name)?;
        let is_ip = std::str::from_utf8(c.as_bytes()).ok().and_then(|s| s.parse::<std::net::IpAddr>().ok()).is_some();
        let param = self.cleared_peer_identity()?;
        // SAFETY: param is live; c is NUL-terminated with the given length.
        let ok = unsafe {
            if is_ip {
                X509_VERIFY_PARAM_set1_ip_asc(param, c.as_ptr())
            } else {
                sys::X509_VERIFY_PARAM_set_hostflags(param, sys::X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                sys::X509_VERIFY_PARAM_set1_host(param, c.as_ptr(), name.len())
            }
        };
        if ok == 1 {
            Ok(())
        } else {
            Err(super::error(COROTLS_ERR_ARG, COROTLS_REASON_HOST_NAME, "cannot set the host name to verify"))
        }
    }

    /// Remove the name or address set by `set_verify_host`: the certificate
    /// chain is still verified when the conf verifies peers, but not matched
    /// against a name.
    pub fn clear_verify_host(self) -> Result<()> {
        self.cleared_peer_identity().map(|_| ())
    }

    /// This SSL's verify parameters with no expected DNS name and no
    /// expected IP address.
    fn cleared_peer_identity(self) -> Result<*mut sys::X509_VERIFY_PARAM> {
        clear_errors();
        // SAFETY: live SSL; the param belongs to it.
        let param = unsafe { sys::SSL_get0_param(self.0) };
        if param.is_null() {
            return Err(Error::nomem());
        }
        // SAFETY: live param; NULL with length 0 clears the host list / the IP.
        let ok = unsafe {
            sys::X509_VERIFY_PARAM_set1_host(param, ptr::null(), 0) == 1
                && sys::X509_VERIFY_PARAM_set1_ip(param, ptr::null(), 0) == 1
        };
        if ok {
            Ok(param)
        } else {
            Err(super::error(COROTLS_ERR_ARG, COROTLS_REASON_HOST_NAME, "cannot clear the host name to verify"))
        }
    }

    /// Offer these ALPN protocols (wire format, already validated).
    pub fn set_alpn_wire(self, wire: &[u8]) -> Result<()> {
        super::check_alpn_wire(wire)?;
        // SAFETY: live SSL; wire valid for its length.  Returns 0 on success.
        let r = unsafe { sys::SSL_set_alpn_protos(self.0, wire.as_ptr(), wire.len() as libc::c_uint) };
        if r == 0 {
            Ok(())
        } else {
            Err(super::error(COROTLS_ERR_NOMEM, COROTLS_REASON_NOMEM, "cannot set the ALPN list"))
        }
    }

    /// The peer's close_notify has been read.
    pub fn received_shutdown(self) -> bool {
        // SAFETY: live SSL.
        unsafe { sys::SSL_get_shutdown(self.0) & sys::SSL_RECEIVED_SHUTDOWN != 0 }
    }

    /// Protocol version in OpenSSL's words (`TLSv1.3`).
    pub fn version(self) -> String {
        // SAFETY: live SSL; returns a static string.
        unsafe { cstr_or(sys::SSL_get_version(self.0), "") }
    }

    /// Negotiated cipher suite name, "" before the handshake.
    pub fn cipher(self) -> String {
        // SAFETY: live SSL; the cipher and its name are static.
        unsafe {
            let c = sys::SSL_get_current_cipher(self.0);
            if c.is_null() {
                String::new()
            } else {
                cstr_or(sys::SSL_CIPHER_get_name(c), "")
            }
        }
    }

    /// Negotiated ALPN protocol, empty when none.
    pub fn alpn_selected(self) -> Vec<u8> {
        let mut p: *const u8 = ptr::null();
        let mut n: libc::c_uint = 0;
        // SAFETY: live SSL; out-pointers are locals; data owned by the SSL.
        unsafe {
            sys::SSL_get0_alpn_selected(self.0, &mut p, &mut n);
            if p.is_null() || n == 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(p, n as usize).to_vec()
            }
        }
    }

    pub fn peer_certificate(self) -> Option<X509> {
        // SAFETY: live SSL; get1 returns a new reference we own.
        unsafe { X509::from_ptr(sys::SSL_get1_peer_certificate(self.0)) }
    }

    pub fn verify_result(self) -> c_long {
        // SAFETY: live SSL.
        unsafe { sys::SSL_get_verify_result(self.0) }
    }
}

/// Host names for SNI and verification: 1..=255 bytes, no NUL.
pub fn check_host_name(name: &[u8]) -> Result<std::ffi::CString> {
    if name.is_empty() {
        return Err(Error::arg("host name is empty").because(COROTLS_REASON_HOST_NAME));
    }
    if name.len() > 255 {
        return Err(Error::arg(format!("host name is {} bytes long; the limit is 255", name.len()))
            .because(COROTLS_REASON_HOST_NAME));
    }
    std::ffi::CString::new(name)
        .map_err(|_| Error::arg("host name contains a NUL byte").because(COROTLS_REASON_HOST_NAME))
}

/// An owned `SSL` with two BIOs that report "retry" (never EOF) when empty,
/// in client or server state.
pub struct Ssl(SslRef);

impl Ssl {
    /// With two `BIO_s_mem` BIOs: what hosts that reach into the BIOs
    /// themselves expect (the Melon face).
    pub fn new(ctx: &Ctx, server: bool) -> Result<Ssl> {
        Ssl::with_bios(ctx, server, new_mem_bio)
    }

    /// With two FIFO BIOs (`fifo`), whose buffers the transport reads and
    /// writes directly: what corotls' own sessions use.
    pub fn new_fifo(ctx: &Ctx, server: bool) -> Result<Ssl> {
        let ssl = Ssl::with_bios(ctx, server, super::fifo::new_bio)?;
        // Read ahead: OpenSSL takes all queued ciphertext in one BIO read
        // instead of a header read and a body read per record (the FIFO
        // holds only what the socket already gave; `has_pending` sees what
        // OpenSSL took).
        // SAFETY: live SSL we own; SSL_CTRL_SET_READ_AHEAD takes a flag.
        unsafe { sys::SSL_ctrl(ssl.get().as_ptr(), SSL_CTRL_SET_READ_AHEAD, 1, ptr::null_mut()) };
        Ok(ssl)
    }

    fn with_bios(ctx: &Ctx, server: bool, new_bio: unsafe fn() -> *mut sys::BIO) -> Result<Ssl> {
        clear_errors();
        // SAFETY: ctx is live; on success every new object is handed to the
        // SSL (SSL_set_bio takes both BIOs), and the SSL to `Ssl`.
        unsafe {
            let ssl = sys::SSL_new(ctx.as_ptr());
            if ssl.is_null() {
                return Err(super::error(COROTLS_ERR_NOMEM, COROTLS_REASON_NOMEM, "SSL_new failed"));
            }
            let rbio = new_bio();
            let wbio = new_bio();
            if rbio.is_null() || wbio.is_null() {
                if !rbio.is_null() {
                    super::BIO_free(rbio);
                }
                if !wbio.is_null() {
                    super::BIO_free(wbio);
                }
                sys::SSL_free(ssl);
                clear_errors();
                return Err(Error::nomem());
            }
            sys::SSL_set_bio(ssl, rbio, wbio);
            if server {
                sys::SSL_set_accept_state(ssl);
            } else {
                sys::SSL_set_connect_state(ssl);
            }
            Ok(Ssl(SslRef(ssl)))
        }
    }

    pub fn get(&self) -> SslRef {
        self.0
    }

    /// Take ownership of an `SSL *` created elsewhere (by a host, or by
    /// `into_ptr`): dropping the result frees it and its BIOs.  None for NULL.
    ///
    /// # Safety
    /// `p` is NULL or a live `SSL *` whose one reference the caller gives up.
    pub unsafe fn from_ptr(p: *mut sys::SSL) -> Option<Ssl> {
        SslRef::from_ptr(p).map(Ssl)
    }

    /// Give up ownership without freeing: the caller must free the `SSL *`
    /// (with `SSL_free`, or by `from_ptr` and drop).
    pub fn into_ptr(self) -> *mut sys::SSL {
        let p = self.0 .0;
        std::mem::forget(self);
        p
    }
}

/// A growable memory BIO whose empty read means "retry", not EOF.
///
/// # Safety
/// Returns NULL or a new BIO the caller owns.
pub unsafe fn new_mem_bio() -> *mut sys::BIO {
    let b = sys::BIO_new(sys::BIO_s_mem());
    if !b.is_null() {
        sys::BIO_ctrl(b, sys::BIO_C_SET_BUF_MEM_EOF_RETURN, MEM_EOF_RETRY, ptr::null_mut());
    }
    b
}

impl Drop for Ssl {
    fn drop(&mut self) {
        // SAFETY: we own the SSL, which owns its BIOs.
        unsafe { sys::SSL_free(self.0 .0) }
    }
}

// SAFETY: see SslRef; the owner serialises use.
unsafe impl Send for Ssl {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{ConfBuilder, Role};

    extern "C" {
        // OpenSSL 3.0; not declared by openssl-sys.
        fn X509_VERIFY_PARAM_get0_host(p: *mut sys::X509_VERIFY_PARAM, idx: c_int) -> *mut c_char;
    }

    fn client_ssl() -> Ssl {
        let mut b = ConfBuilder::new(Role::Client);
        b.set_verify(crate::conf::Verify::None);
        let conf = b.build().expect("client conf");
        Ssl::new(conf.ctx(), false).expect("ssl")
    }

    #[test]
    fn into_ptr_and_from_ptr_hand_ownership_over() {
        let ssl = client_ssl();
        let p = ssl.into_ptr();
        assert!(!p.is_null());
        // SAFETY: p is the live SSL given up by into_ptr just above.
        let back = unsafe { Ssl::from_ptr(p) }.expect("non-NULL");
        assert_eq!(back.get().as_ptr(), p);
        assert!(!back.get().rbio().is_null() && !back.get().wbio().is_null());
        // Frees the SSL and both BIOs (checked under valgrind/ASan).
        drop(back);
        // SAFETY: NULL is allowed and gives None.
        assert!(unsafe { Ssl::from_ptr(ptr::null_mut()) }.is_none());
    }

    #[test]
    fn clear_verify_host_removes_the_expected_name() {
        let ssl = client_ssl();
        let s = ssl.get();
        s.set_verify_host(b"example.test").expect("set");
        // SAFETY: live SSL; the param and its host list belong to it.
        let host = |s: SslRef| unsafe {
            let p = X509_VERIFY_PARAM_get0_host(sys::SSL_get0_param(s.as_ptr()), 0);
            if p.is_null() {
                None
            } else {
                Some(std::ffi::CStr::from_ptr(p).to_bytes().to_vec())
            }
        };
        assert_eq!(host(s).as_deref(), Some(&b"example.test"[..]));
        s.clear_verify_host().expect("clear");
        assert_eq!(host(s), None);
    }
}
