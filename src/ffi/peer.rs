//! mTLS for every object: the client CA list a server sends, and the
//! peer's certificate (subject, issuer, SANs, PEM of the leaf and chain,
//! verdict) on a session, a conn and a loop connection.

use super::conf::{builder, corotls_conf_builder};
use super::conn::{conn_ref, corotls_conn};
use super::event_loop::{corotls_loop, loop_ref};
use super::session::{corotls_session, session_ptr};
use super::{guard, out_arg, path_of, put, slice_arg, str_arg};
use crate::error::{Code, Error, Reason::*, Result};
use crate::session::peer::{PeerField, PeerVerify};
use libc::c_char;

/// What corotls_session_peer_cert (and the conn and loop forms) copy out:
/// a corotls_peer_field value.  Every field is "" when the peer sent no
/// certificate (see corotls_session_peer_verify for whether it did).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum corotls_peer_field {
    /// The subject, one line: "CN=corotls-client, O=..." (RFC 2253
    /// escaping, UTF-8, fields in certificate order).
    COROTLS_PEER_SUBJECT = 0,
    /// The issuer, in the same format.
    COROTLS_PEER_ISSUER = 1,
    /// The subject alternative names, one per line (joined by "\n", no
    /// final newline): "DNS:localhost", "IP:127.0.0.1", "IP:::1",
    /// "email:a@b", "URI:spiffe://x"; "" when there are none.
    COROTLS_PEER_SANS = 2,
    /// The leaf certificate in PEM ("-----BEGIN CERTIFICATE-----...").
    COROTLS_PEER_CERT_PEM = 3,
    /// Every certificate the peer sent, leaf first, in PEM, one after the
    /// other (both roles read alike: OpenSSL's server-side view without the
    /// leaf is completed).
    COROTLS_PEER_CHAIN_PEM = 4,
    /// The verdict in words, as corotls_session_verify_result: "ok", the
    /// X509 reason ("certificate has expired"...), or "not verified".
    COROTLS_PEER_VERIFY = 5,
}

/// Copy `s` into the caller's buffer: the rule of every text getter here.
///
/// # Safety
/// `buf` is NULL or valid for `cap` bytes; `out_len` NULL or writable.
pub(crate) unsafe fn copy_text(s: &str, buf: *mut c_char, cap: usize, out_len: *mut usize) -> Result<()> {
    let b = s.as_bytes();
    put(out_len, b.len());
    if buf.is_null() {
        if cap == 0 {
            return Ok(());
        }
        return Err(Error::null("buffer"));
    }
    // A negative cap cast to size_t would let a long text run past the buffer.
    super::check_len(cap, "buffer")?;
    if cap == 0 {
        return Err(Error::arg(format!("buffer of 0 bytes is too small for {} bytes", b.len() + 1))
            .because(COROTLS_REASON_LIMIT));
    }
    let n = b.len().min(cap - 1);
    // SAFETY: buf is valid for cap bytes (the caller's promise), n + 1 <= cap.
    std::ptr::copy_nonoverlapping(b.as_ptr(), buf as *mut u8, n);
    // SAFETY: as above: index n < cap.
    buf.add(n).write(0);
    if n < b.len() {
        return Err(Error::arg(format!("buffer of {cap} bytes is too small for {} bytes", b.len() + 1))
            .because(COROTLS_REASON_LIMIT));
    }
    Ok(())
}

fn field_of(what: i32) -> Result<PeerField> {
    PeerField::from_i32(what).ok_or_else(|| Error::arg(format!("{what} is not a corotls_peer_field value")))
}

/// Store a verdict through the two out-pointers (both required).
///
/// # Safety
/// Both are NULL or writable.
unsafe fn put_verify(present: *mut bool, code: *mut i64, f: impl FnOnce() -> Result<PeerVerify>) -> Code {
    guard(|| {
        let present = out_arg(present, false, "present output pointer")?;
        let code = out_arg(code, -1, "code output pointer")?;
        let v = f()?;
        *present = v.present;
        *code = v.code;
        Ok(())
    })
}

/// Server: the CA names to send in the CertificateRequest (the client
/// picks a certificate issued by one of them), from the certificates in
/// the PEM file `path` (read now; only their subjects are sent, nothing
/// is trusted by this call).  Without this call a server that verifies
/// clients (corotls_conf_builder_set_verify PEER or REQUIRE) sends the
/// subjects of the CA certificates it trusts from files and PEM
/// (corotls_conf_builder_add_ca_file, _add_ca_pem); CA directories and the
/// system store add none.  A server that does not verify clients sends no
/// CertificateRequest at all.  ERR_ARG for a client builder (reason
/// WRONG_STATE), an unreadable file (FILE) or one without a certificate
/// (CERT_PARSE); the builder keeps its previous list then.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_client_ca_file(
    b: *mut corotls_conf_builder,
    path: *const c_char,
) -> Code {
    guard(|| {
        let b = builder(b)?;
        let p = str_arg(path, "path")?;
        b.set_client_ca_file(path_of(p.as_bytes()))
    })
}

/// corotls_conf_builder_set_client_ca_file from PEM in memory (`pem`,
/// `len` bytes, copied).
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_client_ca_pem(
    b: *mut corotls_conf_builder,
    pem: *const u8,
    len: usize,
) -> Code {
    guard(|| {
        let b = builder(b)?;
        b.set_client_ca_pem(slice_arg(pem, len, "PEM")?)
    })
}

/// Copy a fact about the peer's certificate (`what`: a corotls_peer_field)
/// into the caller's buffer `buf` of `cap` bytes, NUL-terminated; the
/// caller owns the buffer, nothing is kept.  `*out_len` (may be NULL)
/// receives the full length (without the NUL) in every case, so `buf` NULL
/// with `cap` 0 asks for the size only (OK, nothing written); call again
/// with `*out_len + 1` bytes.  A buffer too small gets as much as fits
/// (NUL-terminated) and the result is COROTLS_ERR_ARG, reason
/// COROTLS_REASON_LIMIT.  Every field is "" before the handshake and when
/// the peer sent no certificate (a server that asks with VERIFY_PEER
/// accepts a client without one); COROTLS_PEER_VERIFY says "not verified"
/// then.  ERR_ARG for a bad `what` or handle.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_peer_cert(
    s: *const corotls_session,
    what: i32,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> Code {
    put(out_len, 0);
    guard(|| {
        let f = field_of(what)?;
        let p = session_ptr(s)?;
        // SAFETY: a live session handle; one thread at a time (the contract).
        copy_text(&(*p).peer_field(f), buf, cap, out_len)
    })
}

/// The verdict on the peer's certificate as numbers: `*present` is true
/// when the peer sent a certificate (and it was kept: a certificate that
/// failed verification ended the handshake and is not); `*code` is 0
/// (X509_V_OK) when it was verified and passed, an X509_V_ERR_* code when
/// verification failed (10: expired, 20: unknown issuer, 62: hostname
/// mismatch...; the handshake then failed with COROTLS_ERR_VERIFY), or -1
/// when nothing was verified (the conf does not verify peers, the peer
/// sent no certificate, or before the handshake).  Both pointers are
/// required (ERR_ARG); they hold false / -1 on failure.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_peer_verify(
    s: *const corotls_session,
    present: *mut bool,
    code: *mut i64,
) -> Code {
    put_verify(present, code, || {
        let p = session_ptr(s)?;
        // SAFETY: a live session handle; one thread at a time (the contract).
        Ok((*p).peer_verify())
    })
}

/// corotls_session_peer_cert for the conn's session.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_peer_cert(
    c: *const corotls_conn,
    what: i32,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> Code {
    put(out_len, 0);
    guard(|| {
        let f = field_of(what)?;
        copy_text(&conn_ref(c)?.session().peer_field(f), buf, cap, out_len)
    })
}

/// corotls_session_peer_verify for the conn's session.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_peer_verify(c: *const corotls_conn, present: *mut bool, code: *mut i64) -> Code {
    put_verify(present, code, || Ok(conn_ref(c)?.session().peer_verify()))
}

/// corotls_session_peer_cert for the connection `fd` of the loop (any
/// thread; it does not count as an operation, so it is never BUSY).
/// ERR_ARG when `fd` is not a connection open in this loop; ERR_IO after a
/// deadline ended it.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_peer_cert(
    l: *mut corotls_loop,
    fd: i32,
    what: i32,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> Code {
    put(out_len, 0);
    guard(|| {
        let f = field_of(what)?;
        copy_text(&loop_ref(l)?.peer_field(fd, f)?, buf, cap, out_len)
    })
}

/// corotls_session_peer_verify for the connection `fd` of the loop (as
/// corotls_loop_peer_cert).
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_peer_verify(
    l: *mut corotls_loop,
    fd: i32,
    present: *mut bool,
    code: *mut i64,
) -> Code {
    put_verify(present, code, || loop_ref(l)?.peer_verify(fd))
}
