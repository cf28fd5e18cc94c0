//! `corotls_session`: one TLS session over memory buffers (sans-IO).

use super::conf::{conf_ref, corotls_conf};
use super::handles::{self, Kind};
use super::{
    boundary, bytes_arg, catch, finish, free_handle, guard, into_handle, out_arg, put, required, slice_arg,
    slice_mut_arg,
};
use crate::error::{Code, Error, Reason, Result};
use crate::session::Session;
use libc::c_char;

/// One TLS session over memory buffers: the host moves ciphertext between
/// it and the network.  Use from one thread at a time.
pub struct corotls_session {
    _private: [u8; 0],
}

/// Ciphertext handed to the session per decrypting step of
/// corotls_session_feed.
const FEED_STEP: usize = 64 * 1024;

/// A new session handle owned by the caller.
pub(crate) fn session_into_raw(s: Session) -> *mut corotls_session {
    into_handle(s, Kind::Session) as *mut corotls_session
}

/// The session behind a live session handle, or one borrowed from a conn
/// (corotls_conn_session); ERR_ARG for NULL, a freed handle or another
/// kind.
pub(crate) fn session_ptr(s: *const corotls_session) -> Result<*mut Session> {
    let h = s as usize;
    if h == 0 {
        return Err(Error::null("session"));
    }
    match handles::get(h, Kind::Session).or_else(|| handles::get(h, Kind::BorrowedSession)) {
        Some(p) => Ok(p as *mut Session),
        None => Err(Error::arg(handles::refusal(h, Kind::Session))),
    }
}

/// Run `f` on the session behind `s`: NULL, a freed handle or another kind
/// is ERR_ARG; a panic is latched in the session as a fatal error, so it
/// refuses further work.
pub(crate) unsafe fn with_session(s: *mut corotls_session, f: impl FnOnce(&mut Session) -> Result<()>) -> Code {
    let p = match session_ptr(s) {
        Ok(p) => p,
        Err(e) => return finish(Err(e)),
    };
    // SAFETY: a live session handle; one thread at a time (the contract).
    match catch(|| f(&mut *p)) {
        Ok(r) => finish(r),
        Err(e) => boundary(|| finish(Err((*p).fail(e)))),
    }
}

/// Read-only access for accessors; `default` for NULL, a handle that is
/// not a live session, or a panic.
pub(crate) unsafe fn read_session<T>(s: *const corotls_session, default: T, f: impl FnOnce(&Session) -> T) -> T {
    match session_ptr(s) {
        // SAFETY: a live session handle (owned, or borrowed from a live conn).
        Ok(p) => catch(|| f(&*p)).unwrap_or(default),
        Err(_) => default,
    }
}

/// Create a session for `conf` (client or server as the conf says).  The
/// session holds its own reference to the conf.  On success `*out` is owned
/// by the caller (corotls_session_free).
#[no_mangle]
pub unsafe extern "C" fn corotls_session_new(conf: *const corotls_conf, out: *mut *mut corotls_session) -> Code {
    guard(|| {
        let out = out_arg(out, std::ptr::null_mut(), "output pointer")?;
        let s = Session::new(conf_ref(conf)?)?;
        *out = session_into_raw(s);
        Ok(())
    })
}

/// Free a session (no close_notify is produced; call
/// corotls_session_shutdown first for that).  NULL does nothing.  A
/// handle that is not a live session of the caller's (freed already,
/// borrowed from a conn by corotls_conn_session, another kind of object)
/// frees nothing and sets corotls_last_error() (COROTLS_ERR_ARG,
/// COROTLS_REASON_BAD_ARGUMENT).
#[no_mangle]
pub unsafe extern "C" fn corotls_session_free(s: *mut corotls_session) {
    free_handle::<Session>(s as usize, Kind::Session)
}

/// Client only, before the handshake: the Server Name Indication to send.
/// `name` (borrowed, NUL-terminated) must be a DNS name (RFC 6066): at most
/// 255 bytes, ASCII labels of letters, digits, '-' and '_' separated by
/// dots, no trailing dot; an IP address or a control character is
/// COROTLS_ERR_ARG.  Unless set_verify_host names another, a verifying
/// client checks the server's certificate against this name.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_set_sni(s: *mut corotls_session, name: *const c_char) -> Code {
    with_session(s, |sess| sess.set_sni(bytes_arg(name, "SNI name")?))
}

/// Client only, before the handshake: the name the server certificate must
/// match (it takes precedence over the SNI name).  An IP literal
/// (`127.0.0.1`, `::1`) is matched against IP SANs; anything else against
/// DNS names (RFC 6125, no partial wildcards).  Applies when the conf
/// verifies peers; with chain-only verification
/// (corotls_conf_builder_set_verify_name false) it turns the name check on
/// for this session.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_set_verify_host(s: *mut corotls_session, name: *const c_char) -> Code {
    with_session(s, |sess| sess.set_verify_host(bytes_arg(name, "host name")?))
}

/// Client only, before the handshake: offer these ALPN protocols (wire
/// format, validated) instead of the conf's.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_set_alpn_wire(s: *mut corotls_session, wire: *const u8, len: usize) -> Code {
    with_session(s, |sess| sess.set_alpn_wire(slice_arg(wire, len, "ALPN list")?))
}

/// Hand ciphertext received from the peer to the session (copied), then
/// drive the handshake and decrypt every complete record into the
/// session's plaintext buffer.  `*plain_size` (if not NULL) receives the
/// buffered plaintext size, also when the call fails.
///
/// Returns OK, or the session's fatal error (which every later call
/// repeats; a failed session takes no more ciphertext, but the plaintext
/// decrypted before the failure stays readable).  Reaching the peer's
/// close_notify is not an error here: the next read reports CLOSED.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_feed(
    s: *mut corotls_session,
    data: *const u8,
    len: usize,
    plain_size: *mut usize,
) -> Code {
    put(plain_size, 0);
    with_session(s, |sess| {
        let data = slice_arg(data, len, "ciphertext")?;
        // Decrypting as it goes keeps the undecrypted input to one step's
        // worth, however much the host feeds in one call.
        let mut r = Ok(0);
        for step in data.chunks(FEED_STEP) {
            r = sess.feed(step).and_then(|_| sess.fill_plain());
            if r.is_err() {
                break;
            }
        }
        if data.is_empty() {
            r = sess.fill_plain();
        }
        put(plain_size, sess.plain().len());
        r.map(|_| ())
    })
}

/// Tell the session the transport has ended.  Reads then report CLOSED if
/// the peer's close_notify came, else EOF (truncation) once the buffered
/// plaintext is gone; an unfinished handshake fails with EOF.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_feed_eof(s: *mut corotls_session) -> Code {
    with_session(s, |sess| {
        sess.feed_eof();
        Ok(())
    })
}

/// Bytes of ciphertext waiting to be sent to the peer (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn corotls_session_out_pending(s: *const corotls_session) -> usize {
    read_session(s, 0, |sess| sess.out_pending())
}

/// Move up to `cap` bytes of ciphertext for the peer into `dst`; returns the
/// count (0 for NULL arguments or a handle that is not a live session).  What is returned is removed from the
/// session: send all of it, in order.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_out_read(s: *mut corotls_session, dst: *mut u8, cap: usize) -> usize {
    boundary(|| {
        let Ok(p) = session_ptr(s) else { return 0 };
        match slice_mut_arg(dst, cap, "buffer") {
            // SAFETY: a live session handle; dst is valid for cap bytes (the caller's promise).
            Ok(buf) if !buf.is_empty() => (*p).out_read(buf),
            _ => 0,
        }
    })
}

/// Advance the handshake.  OK once complete; WANT_READ when it needs bytes
/// from the peer (after sending what corotls_session_out_read gives); EOF if
/// the transport ended first; ERR_VERIFY / ERR_TLS on failure.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_handshake(s: *mut corotls_session) -> Code {
    with_session(s, |sess| sess.handshake())
}

/// Encrypt all `len` bytes (any size; the ciphertext waits in the session
/// for corotls_session_out_read).  Drives the handshake first: WANT_READ if
/// it is not complete (nothing was written).  ERR_ARG after shutdown.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_write(s: *mut corotls_session, data: *const u8, len: usize) -> Code {
    with_session(s, |sess| sess.write(slice_arg(data, len, "data")?).map(|_| ()))
}

/// Read up to `cap` bytes of plaintext into `buf`; `*out_len` receives the
/// count (0 unless OK).  WANT_READ: feed more ciphertext.  CLOSED: the peer
/// sent close_notify.  EOF: the transport ended without it.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_read(
    s: *mut corotls_session,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> Code {
    put(out_len, 0);
    with_session(s, |sess| {
        required(out_len, "length output pointer")?;
        let n = sess.read(slice_mut_arg(buf, cap, "buffer")?)?;
        put(out_len, n);
        Ok(())
    })
}

/// Why a buffered read cannot be served: the failure of the fill that was
/// just attempted, else WANT_READ / CLOSED / EOF.  Plaintext buffered before
/// a failure is still served by the callers first.
fn starved(sess: &Session, filled: Result<usize>) -> Error {
    match filled {
        Err(e) => e,
        Ok(_) => sess.starved(),
    }
}

/// Plaintext bytes buffered in the session (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn corotls_session_plain_size(s: *const corotls_session) -> usize {
    read_session(s, 0, |sess| sess.plain().len())
}

/// Decrypt what is available, then point `*data` at the buffered plaintext
/// and set `*len`.  OK when at least one byte is buffered (also after a
/// fatal error: what was decrypted before it stays readable); otherwise
/// WANT_READ, CLOSED, EOF or the fatal error, with `*len` 0.  The view is
/// valid until the next call on the session other than the accessors.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_peek(s: *mut corotls_session, data: *mut *const u8, len: *mut usize) -> Code {
    put(data, std::ptr::null());
    put(len, 0);
    with_session(s, |sess| {
        if data.is_null() || len.is_null() {
            return Err(Error::null("output pointer"));
        }
        let filled = sess.fill_plain();
        if sess.plain().is_empty() {
            return Err(starved(sess, filled));
        }
        let p = sess.plain();
        put(data, p.as_ptr());
        put(len, p.len());
        Ok(())
    })
}

/// Drop `n` bytes from the front of the buffered plaintext.  ERR_ARG if
/// fewer are buffered (nothing is dropped).
#[no_mangle]
pub unsafe extern "C" fn corotls_session_consume(s: *mut corotls_session, n: usize) -> Code {
    with_session(s, |sess| {
        if n > sess.plain().len() {
            return Err(Error::arg(format!("consume {n} bytes but only {} are buffered", sess.plain().len())));
        }
        sess.consume(n);
        Ok(())
    })
}

/// Read exactly `n` bytes into `buf`, or nothing: if fewer are available
/// the result is WANT_READ (or CLOSED / EOF when no more can come) and the
/// buffered bytes stay.  `n` must be at least 1.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_read_exact(s: *mut corotls_session, buf: *mut u8, n: usize) -> Code {
    with_session(s, |sess| {
        if n == 0 {
            return Err(Error::arg("read_exact of 0 bytes"));
        }
        let buf = slice_mut_arg(buf, n, "buffer")?;
        let filled = sess.fill_plain();
        if sess.plain().len() < n {
            return Err(starved(sess, filled));
        }
        buf.copy_from_slice(&sess.plain()[..n]);
        sess.consume(n);
        Ok(())
    })
}

/// Read up to and including the first `delim` byte into `buf`; `*out_len`
/// receives the length.  If no delimiter is buffered yet: WANT_READ (or
/// CLOSED / EOF), nothing consumed.  If the line does not fit in `cap`:
/// ERR_ARG, nothing consumed, and `*out_len` is the size needed.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_read_until(
    s: *mut corotls_session,
    delim: u8,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> Code {
    put(out_len, 0);
    with_session(s, |sess| {
        required(out_len, "length output pointer")?;
        let buf = slice_mut_arg(buf, cap, "buffer")?;
        let filled = sess.fill_plain();
        let Some(i) = sess.plain().iter().position(|&b| b == delim) else {
            return Err(starved(sess, filled));
        };
        let n = i + 1;
        if n > buf.len() {
            put(out_len, n);
            return Err(Error::arg(format!("line of {n} bytes does not fit in a buffer of {}", buf.len())));
        }
        buf[..n].copy_from_slice(&sess.plain()[..n]);
        sess.consume(n);
        put(out_len, n);
        Ok(())
    })
}

/// Queue our close_notify (once; later calls are no-ops).  OK also before
/// the handshake (nothing is sent then).  Send what
/// corotls_session_out_read gives afterwards.  Writes then fail with
/// ERR_ARG; reads go on until the peer's close_notify (CLOSED).
#[no_mangle]
pub unsafe extern "C" fn corotls_session_shutdown(s: *mut corotls_session) -> Code {
    with_session(s, |sess| sess.shutdown())
}

/// True once the peer's close_notify has been read.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_peer_closed(s: *const corotls_session) -> bool {
    read_session(s, false, |sess| sess.peer_closed())
}

/// True once the handshake has completed.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_handshake_done(s: *const corotls_session) -> bool {
    read_session(s, false, |sess| sess.handshake_done())
}

/// Negotiated protocol version ("TLSv1.3", "TLSv1.2"), "" before the
/// handshake.  Owned by the session.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_version(s: *const corotls_session) -> *const c_char {
    read_session(s, c"".as_ptr(), |sess| sess.info().version.as_ptr())
}

/// Negotiated cipher suite name, "" before the handshake.  Owned by the
/// session.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_cipher(s: *const corotls_session) -> *const c_char {
    read_session(s, c"".as_ptr(), |sess| sess.info().cipher.as_ptr())
}

/// Negotiated ALPN protocol, "" when none was.  Owned by the session.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_alpn(s: *const corotls_session) -> *const c_char {
    read_session(s, c"".as_ptr(), |sess| sess.info().alpn.as_ptr())
}

/// Subject of the peer's certificate ("CN=localhost, O=..."), "" when the
/// peer sent none.  Owned by the session.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_peer_subject(s: *const corotls_session) -> *const c_char {
    read_session(s, c"".as_ptr(), |sess| sess.info().peer_subject.as_ptr())
}

/// OpenSSL's verification verdict for the peer certificate ("ok",
/// "certificate has expired", "hostname mismatch", ...), or "not verified"
/// when no certificate was checked.  Owned by the session.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_verify_result(s: *const corotls_session) -> *const c_char {
    read_session(s, c"".as_ptr(), |sess| sess.info().verify.as_ptr())
}

/// Message of the session's last failure ("" if none; "session is NULL"
/// for NULL, "not a live corotls_session" for a handle that is not one).
/// Owned by the session; valid until its next call.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_error(s: *const corotls_session) -> *const c_char {
    if s.is_null() {
        return c"session is NULL".as_ptr();
    }
    read_session(s, c"not a live corotls_session".as_ptr(), |sess| sess.last_error().as_ptr())
}

/// Reason of the session's last failure (COROTLS_REASON_NONE if none, or
/// for NULL), the failure corotls_session_error describes; `*detail` (if
/// not NULL) receives its number (see corotls_reason).
#[no_mangle]
pub unsafe extern "C" fn corotls_session_reason(s: *const corotls_session, detail: *mut i64) -> Reason {
    boundary(|| {
        let (r, d) = read_session(s, (Reason::COROTLS_REASON_NONE, 0), |sess| sess.last_reason());
        put(detail, d);
        r
    })
}
