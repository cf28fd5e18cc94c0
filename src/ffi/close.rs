//! Closing, for every object: where a session, conn or loop connection
//! stands (close_notify sent / received), the conn's two-way close, and
//! the loop's half-close operation.

use super::conn::{conn_ref, corotls_conn, with_conn};
use super::event_loop::{callback, corotls_loop, corotls_loop_cb, loop_ref, started, timeout_of};
use super::session::{corotls_session, session_ptr};
use super::{boundary, guard, guard_code, out_arg};
use crate::error::Code;
use libc::c_void;

/// Bits of a shutdown state (corotls_session_shutdown_state and the conn
/// and loop forms), or'ed: a corotls_shutdown_state value.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum corotls_shutdown_state {
    /// Neither close_notify yet.
    COROTLS_SHUTDOWN_NONE = 0,
    /// Our close_notify: queued (session: send what
    /// corotls_session_out_read gives), on the wire (conn, loop).
    COROTLS_SHUTDOWN_SENT = 1,
    /// The peer's close_notify has been read (reads give COROTLS_CLOSED
    /// once the data before it is gone).
    COROTLS_SHUTDOWN_RECEIVED = 2,
    /// Both: the TLS stream is closed both ways.
    COROTLS_SHUTDOWN_BOTH = 3,
}

/// The session's shutdown state (see corotls_shutdown_state): SENT once
/// corotls_session_shutdown queued our close_notify, RECEIVED once the
/// peer's was read.  -1 for NULL or a handle that is not a live session.
/// The transport ending without close_notify sets neither (reads give
/// COROTLS_EOF).
#[no_mangle]
pub unsafe extern "C" fn corotls_session_shutdown_state(s: *const corotls_session) -> i32 {
    boundary(|| match session_ptr(s) {
        // SAFETY: a live session handle; one thread at a time (the contract).
        Ok(p) => (*p).shutdown_state() as i32,
        Err(_) => -1,
    })
}

/// The conn's shutdown state (see corotls_shutdown_state): SENT once our
/// close_notify is on the wire (not merely queued behind a full socket),
/// RECEIVED once the peer's was read.  -1 for NULL or a handle that is not
/// a live conn.  What a non-blocking corotls_conn_close is waiting for:
/// SENT missing, the socket to take ours (WANT_WRITE); RECEIVED missing,
/// the peer's (WANT_READ).
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_shutdown_state(c: *const corotls_conn) -> i32 {
    boundary(|| conn_ref(c).map(|conn| conn.shutdown_state() as i32).unwrap_or(-1))
}

/// Two-way close: send our close_notify (as corotls_conn_shutdown, once),
/// then read until the peer's arrives.  OK when both are done (state
/// COROTLS_SHUTDOWN_BOTH); WANT_WRITE: ours waits for the socket; WANT_READ:
/// waiting for the peer's (call again when readable); EOF: the transport
/// ended without the peer's close_notify (ERR_IO when it was reset, as
/// when the peer closed its socket with our close_notify unread); an
/// error otherwise.  Plaintext
/// that arrives meanwhile is read and **discarded**, also what was buffered
/// and not yet read: for a half-close that keeps the data, call
/// corotls_conn_shutdown and then corotls_conn_read until COROTLS_CLOSED.
/// Before the handshake there is nothing to close: OK, nothing sent.  The
/// fd stays open (the caller's).
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_close(c: *mut corotls_conn) -> Code {
    with_conn(c, |conn| conn.close())
}

/// Half-close `fd`: send our close_notify and keep the connection
/// readable.  An operation with the loop's conventions (busy rule,
/// timeout, inline OK or PENDING then the callback once): OK when
/// close_notify is on the wire (before the handshake nothing is sent).
/// Afterwards corotls_loop_send (and sendfile) fail with COROTLS_ERR_ARG
/// (reason WRONG_STATE), while recv, read and read_until go on: they give
/// the data the peer sends, then COROTLS_CLOSED when its close_notify
/// comes, or COROTLS_EOF when the stream ends without it.  A timeout leaves
/// close_notify queued (it still goes out).  corotls_loop_close is still
/// needed to release the fd.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_shutdown(
    l: *mut corotls_loop,
    fd: i32,
    timeout_ms: i32,
    cb: corotls_loop_cb,
    user_data: *mut c_void,
) -> Code {
    guard_code(|| {
        let lp = loop_ref(l)?;
        let timeout = timeout_of(timeout_ms)?;
        Ok(started(lp.half_close(fd, timeout, callback(cb, user_data)?)?, |()| ()))
    })
}

/// The shutdown state of the connection `fd` (see corotls_conn_shutdown_state)
/// into `*out` (required; 0 on failure).  Not an operation: never BUSY.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_shutdown_state(l: *mut corotls_loop, fd: i32, out: *mut i32) -> Code {
    guard(|| {
        let out = out_arg(out, 0, "output pointer")?;
        *out = loop_ref(l)?.shutdown_state(fd)? as i32;
        Ok(())
    })
}
