//! `corotls_conn`: a session bound to a non-blocking socket.

use super::conf::{conf_ref, corotls_conf};
use super::session::corotls_session;
use super::{bytes_arg, finish, guard, guard_value, internal_error, out_arg, put, required, slice_arg, slice_mut_arg};
use crate::error::{Code, Error, Reason, Result};
use crate::transport::Conn;
use libc::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A TLS session bound to a non-blocking socket.  Use from one thread at a
/// time.
pub struct corotls_conn {
    _private: [u8; 0],
}

unsafe fn with_conn(c: *mut corotls_conn, f: impl FnOnce(&mut Conn) -> Result<()>) -> Code {
    let p = c as *mut Conn;
    if p.is_null() {
        return finish(Err(Error::null("conn")));
    }
    match catch_unwind(AssertUnwindSafe(|| f(&mut *p))) {
        Ok(r) => finish(r),
        Err(panic) => finish(Err((*p).session_mut().fail(internal_error(&*panic)))),
    }
}

/// Bind a new session for `conf` to the connected socket `fd`, which is
/// switched to non-blocking mode.  The fd remains the caller's: corotls
/// never closes it.  On success `*out` is owned by the caller
/// (corotls_conn_free).
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_new(conf: *const corotls_conf, fd: i32, out: *mut *mut corotls_conn) -> Code {
    guard(|| {
        let out = out_arg(out, std::ptr::null_mut(), "output pointer")?;
        let c = Conn::new(conf_ref(conf)?, fd)?;
        *out = Box::into_raw(Box::new(c)) as *mut corotls_conn;
        Ok(())
    })
}

/// Free the conn: no I/O, no close_notify, the fd is not closed.  Unsent
/// ciphertext is dropped.  NULL does nothing.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_free(c: *mut corotls_conn) {
    guard_value((), || {
        if !c.is_null() {
            drop(Box::from_raw(c as *mut Conn));
        }
    })
}

/// See corotls_session_set_sni.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_set_sni(c: *mut corotls_conn, name: *const c_char) -> Code {
    with_conn(c, |conn| conn.session_mut().set_sni(bytes_arg(name, "SNI name")?))
}

/// See corotls_session_set_verify_host.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_set_verify_host(c: *mut corotls_conn, name: *const c_char) -> Code {
    with_conn(c, |conn| conn.session_mut().set_verify_host(bytes_arg(name, "host name")?))
}

/// See corotls_session_set_alpn_wire.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_set_alpn_wire(c: *mut corotls_conn, wire: *const u8, len: usize) -> Code {
    with_conn(c, |conn| conn.session_mut().set_alpn_wire(slice_arg(wire, len, "ALPN list")?))
}

/// Complete the handshake.  OK when done; WANT_READ / WANT_WRITE: wait for
/// that and call again; EOF: the peer vanished; ERR_VERIFY / ERR_TLS /
/// ERR_IO on failure.  Optional: read and write drive it too.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_handshake(c: *mut corotls_conn) -> Code {
    with_conn(c, |conn| conn.handshake())
}

/// Read up to `cap` bytes of plaintext.  OK with `*out_len` > 0;
/// WANT_READ / WANT_WRITE: wait and call again; CLOSED: the peer sent
/// close_notify; EOF: the connection ended without it.  Ciphertext is taken
/// from the socket until it is drained (a short read or EAGAIN, at most
/// 1 MiB per call) before decrypting.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_read(
    c: *mut corotls_conn,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> Code {
    put(out_len, 0);
    with_conn(c, |conn| {
        required(out_len, "length output pointer")?;
        let n = conn.read(slice_mut_arg(buf, cap, "buffer")?)?;
        put(out_len, n);
        Ok(())
    })
}

/// Encrypt and send `len` bytes.  OK with `*out_len` = bytes now on the
/// wire (possibly fewer than `len`: call again with the rest).  WANT_WRITE:
/// nothing more went out; wait for writability and call again with the
/// same remaining data (up to 64 KiB of it may already be encrypted and is
/// not encrypted twice).  Ciphertext waiting from earlier calls always goes
/// out first, in order.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_write(
    c: *mut corotls_conn,
    data: *const u8,
    len: usize,
    out_len: *mut usize,
) -> Code {
    put(out_len, 0);
    with_conn(c, |conn| {
        required(out_len, "length output pointer")?;
        let n = conn.write(slice_arg(data, len, "data")?)?;
        put(out_len, n);
        Ok(())
    })
}

/// Send waiting ciphertext.  OK when none is left, WANT_WRITE otherwise.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_flush(c: *mut corotls_conn) -> Code {
    with_conn(c, |conn| conn.flush())
}

/// Send close_notify.  OK once it is on the wire (WANT_WRITE: call again
/// when writable).  The peer's close_notify is not awaited; read until
/// CLOSED for a two-way close.  Before the handshake nothing is sent.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_shutdown(c: *mut corotls_conn) -> Code {
    with_conn(c, |conn| conn.shutdown())
}

/// Bytes of ciphertext not yet accepted by the socket (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_unsent(c: *const corotls_conn) -> usize {
    match (c as *const Conn).as_ref() {
        Some(conn) => guard_value(0, || conn.unsent()),
        None => 0,
    }
}

/// The socket (-1 for NULL).
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_fd(c: *const corotls_conn) -> i32 {
    (c as *const Conn).as_ref().map(|conn| conn.fd()).unwrap_or(-1)
}

/// The conn's session, for the corotls_session_* accessors (version,
/// cipher, alpn, peer_subject, verify_result, peer_closed, error).  Owned
/// by the conn; NULL for NULL.  Do not feed or free it.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_session(c: *const corotls_conn) -> *const corotls_session {
    match (c as *const Conn).as_ref() {
        Some(conn) => conn.session() as *const crate::session::Session as *const corotls_session,
        None => std::ptr::null(),
    }
}

/// Message of the conn's last failure ("" if none; "conn is NULL" for
/// NULL).  Owned by the conn.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_error(c: *const corotls_conn) -> *const c_char {
    match (c as *const Conn).as_ref() {
        Some(conn) => conn.session().last_error().as_ptr(),
        None => c"conn is NULL".as_ptr(),
    }
}

/// Reason of the conn's last failure (COROTLS_REASON_NONE if none, or for
/// NULL), the failure corotls_conn_error describes; `*detail` (if not
/// NULL) receives its number (see corotls_reason).
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_reason(c: *const corotls_conn, detail: *mut i64) -> Reason {
    let (r, d) = match (c as *const Conn).as_ref() {
        Some(conn) => guard_value((Reason::COROTLS_REASON_NONE, 0), || conn.session().last_reason()),
        None => (Reason::COROTLS_REASON_NONE, 0),
    };
    put(detail, d);
    r
}
