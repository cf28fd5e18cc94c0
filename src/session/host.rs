//! A session over a host's own `SSL *`: how a face whose callers hold the
//! `SSL *` themselves (Melon's `mln_tcp_conn_t.ssl`) drives the engine.
//!
//! Such callers may create the SSL and its BIOs themselves and write
//! ciphertext straight into `SSL_get_rbio`, so `HostSsl` is a borrowed view
//! that keeps no state: one step per call, always through the SSL's own
//! BIOs (whatever they are), each step starting from a clear OpenSSL error
//! queue and turning the outcome into `Result`.  What `Session` adds on top
//! (latched errors, the name rules of the native API, the plaintext buffer)
//! is the face's own business here.

use crate::conf::{Conf, Role};
use crate::error::{Error, Result};
use crate::ossl::ssl::{Ssl, SslRef};
use crate::ossl::Ctx;
use openssl_sys::{SSL, SSL_CTX};
use std::mem::ManuallyDrop;

/// A borrowed `SSL *`, driven one step at a time.  Copyable: the host owns
/// the SSL, keeps it alive while the view is used, and lets one thread at a
/// time use it.
#[derive(Clone, Copy, Debug)]
pub struct HostSsl(SslRef);

impl HostSsl {
    /// A view of `ssl`; None for NULL.
    ///
    /// # Safety
    /// `ssl` is NULL or a live `SSL *` that outlives every use of the view.
    pub unsafe fn from_ptr(ssl: *mut SSL) -> Option<HostSsl> {
        SslRef::from_ptr(ssl).map(HostSsl)
    }

    pub fn as_ptr(self) -> *mut SSL {
        self.0.as_ptr()
    }

    /// A new `SSL *` from a host's `SSL_CTX *` (which it takes a reference
    /// of), with two corotls FIFO BIOs, in accept state for a server and
    /// connect state for a client.  Hosts may reach into them through
    /// `SSL_get_rbio` / `SSL_get_wbio`: to `BIO_write`, `BIO_read`,
    /// `BIO_pending` and `BIO_set_mem_eof_return` they behave as `BIO_s_mem`
    /// with `mem_eof_return` -1 (an empty read means "retry", never EOF),
    /// without its zeroing and moving of every region (Melon face echo:
    /// 38,406 -> 36,740 instructions a round trip).  The caller owns the
    /// result: `HostSsl::free` (or `SSL_free`) frees it with its BIOs.
    ///
    /// # Safety
    /// `ctx` is NULL (an ARG error) or a live `SSL_CTX *`.
    pub unsafe fn new_mem(ctx: *mut SSL_CTX, role: Role) -> Result<*mut SSL> {
        // Borrowed: the host's reference is not ours to drop.
        let Some(ctx) = Ctx::from_ptr(ctx).map(ManuallyDrop::new) else {
            return Err(Error::arg("no SSL_CTX to create the SSL from"));
        };
        Ssl::new_fifo(&ctx, role == Role::Server).map(Ssl::into_ptr)
    }

    /// Free an `SSL *` the caller owns, with its BIOs; NULL does nothing.
    /// No I/O and no close_notify.
    ///
    /// # Safety
    /// `ssl` is NULL or a live `SSL *` whose reference the caller gives up.
    pub unsafe fn free(ssl: *mut SSL) {
        drop(Ssl::from_ptr(ssl))
    }

    /// One handshake step: Ok once done, WANT_READ / WANT_WRITE, or an error.
    pub fn handshake(self) -> Result<()> {
        self.0.handshake()
    }

    /// Decrypt into `buf`: Ok(n > 0), WANT_*, CLOSED (close_notify), or an
    /// error.  Ok(0) only for an empty `buf`.
    pub fn read(self, buf: &mut [u8]) -> Result<usize> {
        self.0.read(buf)
    }

    /// Encrypt from `buf`; Ok with how much OpenSSL took.
    pub fn write(self, buf: &[u8]) -> Result<usize> {
        self.0.write(buf)
    }

    /// Queue our close_notify: Ok(true) once the peer's has arrived too.
    pub fn shutdown(self) -> Result<bool> {
        self.0.shutdown()
    }

    /// Append ciphertext to the SSL's read BIO.
    pub fn feed(self, ct: &[u8]) -> Result<()> {
        self.0.feed(ct)
    }

    /// Ciphertext in the read BIO that OpenSSL has not consumed.
    pub fn in_pending(self) -> usize {
        self.0.in_pending()
    }

    /// Whether there is anything for `read` to decrypt or return: input in
    /// the read BIO, or bytes OpenSSL took from it and has not returned.
    pub fn has_input(self) -> bool {
        self.0.in_pending() > 0 || self.0.has_pending()
    }

    /// Move produced ciphertext from the write BIO into `dst`; the count.
    pub fn out_read(self, dst: &mut [u8]) -> usize {
        self.0.out_read(dst)
    }

    /// Server Name Indication: 1..=255 bytes without NUL (OpenSSL's own
    /// rule; none of the native API's DNS-name checks, no role or state
    /// check).
    pub fn set_sni(self, name: &[u8]) -> Result<()> {
        self.0.set_sni(name)
    }

    /// The name (or IP literal) the peer's certificate must match, checked
    /// when the SSL verifies peers; at most 255 bytes without NUL.  Empty
    /// clears the check, as OpenSSL does for a zero length.  No role or
    /// state check.
    pub fn set_verify_host(self, name: &[u8]) -> Result<()> {
        if name.is_empty() {
            self.0.clear_verify_host()
        } else {
            self.0.set_verify_host(name)
        }
    }
}

/// One new reference to `conf`'s `SSL_CTX`, as a raw pointer for a host to
/// keep (Melon's `mln_tcp_tls_conf_t.ctx`).  The conf's settings and
/// callbacks live in the context, so SSLs made from it behave like the
/// conf's sessions.  Give the reference back with `release_ctx`.
pub fn share_ctx(conf: &Conf) -> *mut SSL_CTX {
    conf.ctx().clone().into_ptr()
}

/// Drop one reference taken by `share_ctx`; NULL does nothing.  SSLs made
/// from the context keep it alive.
///
/// # Safety
/// `ctx` is NULL or a live `SSL_CTX *` whose reference the caller gives up.
pub unsafe fn release_ctx(ctx: *mut SSL_CTX) {
    drop(Ctx::from_ptr(ctx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{ConfBuilder, Identity, Verify};
    use crate::error::Code::*;
    use crate::testutil::cert;

    fn confs() -> (Conf, Conf) {
        let mut sb = ConfBuilder::new(Role::Server);
        sb.add_identity(Identity::from_files(&cert("leaf.crt"), &cert("leaf.key"), None).unwrap()).unwrap();
        let mut cb = ConfBuilder::new(Role::Client);
        cb.add_ca_file(&cert("ca.crt")).unwrap();
        cb.set_verify(Verify::Peer);
        cb.set_verify_name(false);
        (sb.build().unwrap(), cb.build().unwrap())
    }

    /// Move ciphertext between the two SSLs' BIOs until both handshakes end.
    fn handshake(c: HostSsl, s: HostSsl) -> (Result<()>, Result<()>) {
        let mut buf = vec![0u8; 16 * 1024];
        let (mut rc, mut rs) = (c.handshake(), s.handshake());
        for _ in 0..64 {
            for (from, to) in [(c, s), (s, c)] {
                loop {
                    let n = from.out_read(&mut buf);
                    if n == 0 {
                        break;
                    }
                    to.feed(&buf[..n]).unwrap();
                }
            }
            if rc.as_ref().is_err_and(|e| e.is_want()) {
                rc = c.handshake();
            }
            if rs.as_ref().is_err_and(|e| e.is_want()) {
                rs = s.handshake();
            }
            if !rc.as_ref().is_err_and(|e| e.is_want()) && !rs.as_ref().is_err_and(|e| e.is_want()) {
                break;
            }
        }
        (rc, rs)
    }

    #[test]
    fn two_host_ssls_talk_over_their_memory_bios() {
        let (sc, cc) = confs();
        let sctx = share_ctx(&sc);
        let cctx = share_ctx(&cc);
        drop((sc, cc)); // the shared references keep the contexts alive
                        // SAFETY: live contexts; the SSLs are freed below.
        let (sp, cp) =
            unsafe { (HostSsl::new_mem(sctx, Role::Server).unwrap(), HostSsl::new_mem(cctx, Role::Client).unwrap()) };
        // SAFETY: the SSLs stay alive until the end of the test.
        let (s, c) = unsafe { (HostSsl::from_ptr(sp).unwrap(), HostSsl::from_ptr(cp).unwrap()) };
        // Lenient names: no DNS rules, an empty verify host clears the check.
        c.set_sni(b"localhost").unwrap();
        c.set_verify_host(b"localhost").unwrap();
        c.set_verify_host(b"").unwrap();
        assert_eq!(c.set_sni(b"a\0b").unwrap_err().code, COROTLS_ERR_ARG);
        assert_eq!(c.set_verify_host(&[b'a'; 256]).unwrap_err().code, COROTLS_ERR_ARG);
        let (rc, rs) = handshake(c, s);
        rc.unwrap();
        rs.unwrap();
        assert_eq!(c.write(b"hello").unwrap(), 5);
        let mut ct = [0u8; 4096];
        let n = c.out_read(&mut ct);
        s.feed(&ct[..n]).unwrap();
        assert!(s.in_pending() > 0);
        let mut pt = [0u8; 64];
        let mut got = Vec::new();
        while let Ok(k) = s.read(&mut pt) {
            got.extend_from_slice(&pt[..k]);
        }
        assert_eq!(got, b"hello");
        assert_eq!(s.read(&mut pt).unwrap_err().code, COROTLS_WANT_READ);
        assert!(!c.shutdown().unwrap(), "the peer's close_notify has not come");
        let n = c.out_read(&mut ct);
        s.feed(&ct[..n]).unwrap();
        assert_eq!(s.read(&mut pt).unwrap_err().code, COROTLS_CLOSED);
        // SAFETY: the SSLs and context references are ours; freed once.
        unsafe {
            HostSsl::free(sp);
            HostSsl::free(cp);
            HostSsl::free(std::ptr::null_mut());
            release_ctx(sctx);
            release_ctx(cctx);
            release_ctx(std::ptr::null_mut());
        }
    }

    #[test]
    fn new_mem_without_a_context_is_an_argument_error() {
        // SAFETY: NULL is allowed.
        let e = unsafe { HostSsl::new_mem(std::ptr::null_mut(), Role::Client) }.unwrap_err();
        assert_eq!(e.code, COROTLS_ERR_ARG);
    }
}
