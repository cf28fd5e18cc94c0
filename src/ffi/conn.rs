//! `corotls_conn`: a session bound to a non-blocking socket.

use super::conf::{conf_ref, corotls_conf};
use super::handles::{self, Kind};
use super::session::corotls_session;
use super::{
    boundary, bytes_arg, catch, finish, guard, into_handle, object, out_arg, put, required, set_last_error, slice_arg,
    slice_mut_arg,
};
use crate::error::{Code, Error, Reason, Result};
use crate::transport::Conn;
use libc::c_char;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A TLS session bound to a non-blocking socket.  Use from one thread at a
/// time.
pub struct corotls_conn {
    _private: [u8; 0],
}

/// What a conn handle names: the conn, and the handle of its session
/// once corotls_conn_session gave one out (registered as borrowed, so the
/// accessors take it and corotls_session_free refuses it; unregistered
/// when the conn is freed).
pub(crate) struct ConnObj {
    conn: Conn,
    session: AtomicUsize,
}

/// The conn behind a live conn handle; ERR_ARG for NULL, a freed handle or
/// another kind.
///
/// # Safety
/// One thread at a time uses the conn (the documented contract).
pub(crate) unsafe fn conn_ref<'a>(c: *const corotls_conn) -> Result<&'a mut Conn> {
    // SAFETY: a live Conn handle names a Box<ConnObj>.
    Ok(&mut (*object::<ConnObj>(c as usize, Kind::Conn, "conn")?).conn)
}

/// Run `f` on the conn behind `c`: NULL, a freed handle or another kind is
/// ERR_ARG; a panic is latched in its session as a fatal error.
pub(crate) unsafe fn with_conn(c: *mut corotls_conn, f: impl FnOnce(&mut Conn) -> Result<()>) -> Code {
    let p: *mut Conn = match conn_ref(c) {
        Ok(conn) => conn,
        Err(e) => return finish(Err(e)),
    };
    // SAFETY: a live conn handle; one thread at a time (the contract).
    match catch(|| f(&mut *p)) {
        Ok(r) => finish(r),
        Err(e) => boundary(|| finish(Err((*p).session_mut().fail(e)))),
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
        *out = into_handle(ConnObj { conn: c, session: AtomicUsize::new(0) }, Kind::Conn) as *mut corotls_conn;
        Ok(())
    })
}

/// Free the conn: no I/O, no close_notify, the fd is not closed.  Unsent
/// ciphertext is dropped; the session handle corotls_conn_session gave
/// out dies with it.  NULL does nothing.  A handle that is not a live conn
/// (freed already, or another kind of object) frees nothing and sets
/// corotls_last_error() (COROTLS_ERR_ARG, COROTLS_REASON_BAD_ARGUMENT).
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_free(c: *mut corotls_conn) {
    boundary(|| {
        let h = c as usize;
        if h == 0 {
            return;
        }
        let Some(p) = handles::remove(h, Kind::Conn) else {
            set_last_error(&Error::arg(handles::refusal(h, Kind::Conn)));
            return;
        };
        // SAFETY: registered by into_handle from a Box<ConnObj>.
        let obj = Box::from_raw(p as *mut ConnObj);
        let s = obj.session.load(Ordering::Acquire);
        if s != 0 {
            handles::remove(s, Kind::BorrowedSession);
        }
        drop(obj);
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
/// CLOSED for a two-way close (a half-close: the peer's data still comes),
/// or use corotls_conn_close.  Before the handshake nothing is sent.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_shutdown(c: *mut corotls_conn) -> Code {
    with_conn(c, |conn| conn.shutdown())
}

/// Bytes of ciphertext not yet accepted by the socket (0 for NULL or a
/// handle that is not a live conn).
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_unsent(c: *const corotls_conn) -> usize {
    boundary(|| conn_ref(c).map(|conn| conn.unsent()).unwrap_or(0))
}

/// The socket (-1 for NULL or a handle that is not a live conn).
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_fd(c: *const corotls_conn) -> i32 {
    boundary(|| conn_ref(c).map(|conn| conn.fd()).unwrap_or(-1))
}

/// The conn's session, for the corotls_session_* accessors (version,
/// cipher, alpn, peer_subject, verify_result, peer_closed, error).  Owned
/// by the conn (the same handle every time, valid until corotls_conn_free);
/// NULL for NULL or a handle that is not a live conn.  Do not feed it;
/// corotls_session_free refuses it (COROTLS_ERR_ARG).
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_session(c: *const corotls_conn) -> *const corotls_session {
    boundary(|| {
        let Ok(obj) = object::<ConnObj>(c as usize, Kind::Conn, "conn") else { return std::ptr::null() };
        // SAFETY: a live conn handle names a Box<ConnObj>.
        let obj = &*obj;
        let h = obj.session.load(Ordering::Acquire);
        if h != 0 {
            return h as *const corotls_session;
        }
        let p = obj.conn.session() as *const crate::session::Session as *mut ();
        let h = handles::insert(p, Kind::BorrowedSession);
        obj.session.store(h, Ordering::Release);
        h as *const corotls_session
    })
}

/// Message of the conn's last failure ("" if none; "conn is NULL" for
/// NULL; "not a live corotls_conn" for a handle that is not one).  Owned
/// by the conn.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_error(c: *const corotls_conn) -> *const c_char {
    boundary(|| match conn_ref(c) {
        Ok(conn) => conn.session().last_error().as_ptr(),
        Err(_) if c.is_null() => c"conn is NULL".as_ptr(),
        Err(_) => c"not a live corotls_conn".as_ptr(),
    })
}

/// Reason of the conn's last failure (COROTLS_REASON_NONE if none, or for
/// NULL or a handle that is not a live conn), the failure corotls_conn_error
/// describes; `*detail` (if not NULL) receives its number (see
/// corotls_reason).
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_reason(c: *const corotls_conn, detail: *mut i64) -> Reason {
    boundary(|| {
        let (r, d) = conn_ref(c).map(|conn| conn.session().last_reason()).unwrap_or((Reason::COROTLS_REASON_NONE, 0));
        put(detail, d);
        r
    })
}
