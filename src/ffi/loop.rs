//! `corotls_loop`: script-level TLS for coroutine hosts (the C face of
//! `event_loop`).  One module per C type, as everywhere in `ffi`: this one
//! is over 600 lines because the loop is the largest type (its docs are
//! the header's).

use super::conf::{conf_ref, corotls_conf};
use super::handles::{self, Kind};
use super::{
    boundary, bytes_arg, guard, guard_code, into_handle, object, opt_bytes_arg, out_arg, set_last_error, slice_arg,
    str_arg,
};
use crate::error::{Code, Code::*, Error, Reason, Result};
use crate::event_loop::{Callback, Chunk, Done, Info, Loop, Read, Ready};
use libc::{c_char, c_void};
use std::time::Duration;

/// The loop: a reactor (epoll on Linux, kqueue on BSD/macOS) that owns
/// sockets, operation deadlines and a table of TLS connections addressed by
/// their real socket fd.  It gives C hosts the calls of Melang's `tls`
/// module and silly's `silly.net.tls`: calls that look synchronous to a
/// script but yield its coroutine instead of blocking.
///
/// **Operations** (accept, connect, handshake, send, recv, read,
/// read_until) take a callback and a `user_data` pointer, which must stay
/// valid until the callback runs, and return one of:
/// - COROTLS_OK (or CLOSED, EOF, an error): finished inline; the result and
///   any data come through the return value and out-parameters, and the
///   callback is **never** called;
/// - COROTLS_PENDING: the callback will be called exactly once, later, on
///   the thread that runs corotls_loop_dispatch (or _run / _free);
/// - COROTLS_BUSY: another handshake, send, recv/read or connect is in
///   flight on that fd (or an accept on that listener); nothing was done,
///   nothing is queued, no callback.
///
/// **Results** a script sees: data (OK with bytes), COROTLS_CLOSED (the
/// peer's close_notify), COROTLS_EOF (the TCP stream ended without
/// close_notify), COROTLS_TIMEOUT, COROTLS_BUSY, COROTLS_ERR_CANCELLED (the
/// fd was closed meanwhile) or an error kind (ERR_IO, ERR_TLS, ERR_VERIFY,
/// ERR_ARG, ERR_NOMEM) whose message is corotls_last_error() on the
/// thread that got the result (also inside the callback) and
/// corotls_loop_info(..., COROTLS_INFO_ERROR, ...) for the fd.
///
/// The Melang `tls` module maps a result to a script value in one switch:
///
/// ```c
/// switch (r) {
/// case COROTLS_OK:      return data ? string(data, len) : true;  // accept/connect: the fd
/// case COROTLS_CLOSED:
/// case COROTLS_EOF:     return op == RECV;  // recv: true at any end of stream
/// case COROTLS_TIMEOUT: return nil;
/// default:              return false;  // BUSY, CANCELLED, errors
/// }
/// ```
///
/// **Timeouts** are per operation, in milliseconds from its start: -1 waits
/// forever; 0 gives up at the next dispatch unless the operation finishes
/// inline; below -1 is COROTLS_ERR_ARG.  A timed-out operation leaves the
/// TLS stream valid: ciphertext already produced is still sent, in order
/// (the loop flushes it in the background), and plaintext already received
/// stays buffered for the next read.  A timed-out connect closes its fd.
///
/// **Deadlines of accepted connections** protect a server from peers that
/// connect and never finish the handshake (or go silent): a handshake
/// deadline (default 30 s from accept, corotls_loop_set_handshake_timeout)
/// and an optional idle deadline (corotls_loop_set_idle_timeout), both
/// independent of the operations' timeouts.  A connection whose deadline
/// expires is ended by the loop (its pending operation gets TIMEOUT), but
/// its fd number stays reserved until the host calls corotls_loop_close
/// (see corotls_loop_set_handshake_timeout).  A listener survives running
/// out of fds: connections that cannot be given one are shed, and a pending
/// accept waits for one that can (corotls_loop_shed_count).
///
/// **Threads**: a loop may be used from any number of threads at once;
/// the fd table is shared, so an fd is not owned by the caller that
/// created it (hand it to another thread or coroutine freely).  The busy
/// rule serialises the use of each session.  At most one thread dispatches
/// at a time (a second gets COROTLS_BUSY); callbacks run on it, with no
/// internal lock held, so a callback may start operations or close fds (but
/// must not dispatch, run or free the loop).
///
/// **Embedding**: corotls_loop_fd() is readable when dispatch has work
/// (socket events, a due deadline, completions queued by another thread).
/// A host with its own event loop watches that one fd and calls
/// corotls_loop_dispatch(loop, 0, NULL) when it is readable.
///
/// **Cost**: a dispatch does work for ready sockets and due deadlines
/// only; idle connections cost nothing.  Each connection buffers at most
/// its read limit of plaintext (corotls_loop_set_limit).
pub struct corotls_loop {
    _private: [u8; 0],
}

/// A completion callback.
///
/// - `user_data`: the pointer given to the operation, untouched (the loop
///   never reads through it).  What it points at must stay valid until the
///   callback runs; an operation that completes inline or fails at once
///   keeps no copy of it.
/// - `fd`: the connection the result is about: for accept and connect the
///   new connection (-1 when they fail); for the others their fd.
/// - `result`: see corotls_loop.  The message of a non-OK result is
///   corotls_last_error() during the callback.
/// - `data`, `len`: for recv / read / read_until with COROTLS_OK, the
///   plaintext (at least one byte), valid only during the callback.  For
///   send, `data` is NULL and `len` counts the plaintext bytes committed to
///   the stream: all of them on OK, on TIMEOUT the prefix that will still
///   reach the peer.  Otherwise NULL and 0.
///
/// A callback must return normally: no longjmp out of it, no C++ exception
/// and no Lua error across it (a host whose script errors longjmp runs the
/// script in a protected call inside the callback).  It may call, on the
/// same loop: every operation (accept, connect, handshake, send, recv,
/// read, read_until, sendfile, shutdown), close, cancel, set_sni,
/// set_verify_host, set_limit, the timeouts, and the queries (info, reason,
/// is_alive, unread_bytes, unsent_bytes, peer_cert, peer_verify,
/// shutdown_state, ktls, pending, timeout, fd).  It must not call dispatch
/// (it gets COROTLS_BUSY), run, or free the loop.
pub type corotls_loop_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, fd: i32, result: Code, data: *const u8, len: usize)>;

/// What corotls_loop_info reports (a corotls_info value).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum corotls_info {
    /// Negotiated protocol version, e.g. "TLSv1.3" ("" before the handshake).
    COROTLS_INFO_VERSION = 0,
    /// Negotiated cipher suite name.
    COROTLS_INFO_CIPHER = 1,
    /// Negotiated ALPN protocol ("" if none).
    COROTLS_INFO_ALPN = 2,
    /// The peer certificate's subject ("" if none).
    COROTLS_INFO_PEER_SUBJECT = 3,
    /// The verification verdict ("ok", a reason, or "not verified").
    COROTLS_INFO_VERIFY = 4,
    /// The socket's local address, "127.0.0.1:443" or "[::1]:443" (also for
    /// listeners: how to learn the port bound for service "0").
    COROTLS_INFO_LOCAL_ADDR = 5,
    /// The peer's address, same format (silly's conn.remoteaddr).
    COROTLS_INFO_REMOTE_ADDR = 6,
    /// Message of the fd's last failure ("" if none).
    COROTLS_INFO_ERROR = 7,
}

/// The loop behind a live loop handle; ERR_ARG for NULL, a freed handle
/// or another kind (checked in the registry, see `handles`).
///
/// # Safety
/// The loop is not freed by another thread during the call.
pub(crate) unsafe fn loop_ref<'a>(l: *const corotls_loop) -> Result<&'a Loop> {
    // SAFETY: a live Loop handle names a Box<Loop>, used through `&`.
    Ok(&*object::<Loop>(l as usize, Kind::Loop, "loop")?)
}

pub(crate) fn timeout_of(ms: i32) -> Result<Option<Duration>> {
    match ms {
        -1 => Ok(None),
        ms if ms >= 0 => Ok(Some(Duration::from_millis(ms as u64))),
        ms => Err(Error::arg(format!("timeout {ms} ms is invalid: use -1 (forever) or a value >= 0"))),
    }
}

/// Wrap a C callback.  The message of a non-OK result becomes the
/// dispatching thread's last error before the callback runs.
pub(crate) fn callback(cb: corotls_loop_cb, user_data: *mut c_void) -> Result<Callback> {
    let f = cb.ok_or_else(|| Error::null("callback"))?;
    let ud = user_data as usize;
    Ok(Box::new(move |d: &Done| {
        if d.code != COROTLS_OK {
            set_last_error(&Error::new(d.code, d.msg.to_string()).because_of(d.reason, d.detail));
        }
        let (ptr, len) = if d.data.is_empty() { (std::ptr::null(), d.count) } else { (d.data.as_ptr(), d.data.len()) };
        // SAFETY: the host gave this function for this user_data; data is
        // valid for len bytes (or NULL) for the duration of the call.
        unsafe { f(ud as *mut c_void, d.fd, d.code, ptr, len) };
    }))
}

/// OK after handing an inline result to `now`, or PENDING.
pub(crate) fn started<T>(r: Ready<T>, now: impl FnOnce(T)) -> Code {
    match r {
        Ready::Now(v) => {
            now(v);
            COROTLS_OK
        }
        Ready::Pending => COROTLS_PENDING,
    }
}

/// Create a loop.  On success `*out` is owned by the caller (free it with
/// corotls_loop_free).
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_new(out: *mut *mut corotls_loop) -> Code {
    guard(|| {
        let out = out_arg(out, std::ptr::null_mut(), "output pointer")?;
        *out = into_handle(Loop::new()?, Kind::Loop) as *mut corotls_loop;
        Ok(())
    })
}

/// Free the loop: every fd it owns is closed as by corotls_loop_close, and
/// the callback of every pending operation runs now, on this thread, with
/// COROTLS_ERR_CANCELLED (those callbacks may still call the loop: new
/// operations are refused with ERR_CANCELLED, closes of its fds are
/// ERR_ARG).  NULL does nothing; a handle that is not a live loop (freed
/// already, or another kind of object) frees nothing and sets
/// corotls_last_error() (COROTLS_ERR_ARG, COROTLS_REASON_BAD_ARGUMENT).
/// Must not be called from a callback or while another thread uses the
/// loop.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_free(l: *mut corotls_loop) {
    boundary(|| {
        let h = l as usize;
        if h == 0 {
            return;
        }
        // The handle stays live during the shutdown: callbacks it runs may
        // call back into the loop (through a shared reference).
        let lp = match loop_ref(l) {
            Ok(lp) => lp,
            Err(e) => return set_last_error(&e),
        };
        lp.shutdown();
        if let Some(p) = handles::remove(h, Kind::Loop) {
            // SAFETY: registered by into_handle from a Box<Loop>; no
            // reference from the shutdown outlives it, and no other thread
            // uses the loop.
            drop(Box::from_raw(p as *mut Loop));
        }
    })
}

/// The pollable fd (-1 for NULL): readable when corotls_loop_dispatch has
/// work.  Owned by the loop; do not close it, read it or add it to another
/// loop's set twice.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_fd(l: *const corotls_loop) -> i32 {
    boundary(|| loop_ref(l).map(|lp| lp.fd()).unwrap_or(-1))
}

/// Wait up to `timeout_ms` (-1: until something happens; 0: do not wait)
/// for events, do the I/O they allow, expire deadlines, then run the
/// callbacks of the operations that completed.  `*out_count` (may be NULL)
/// receives how many callbacks ran.  COROTLS_BUSY if another thread is
/// dispatching, or when called from a callback.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_dispatch(l: *mut corotls_loop, timeout_ms: i32, out_count: *mut usize) -> Code {
    super::put(out_count, 0);
    guard(|| {
        let n = loop_ref(l)?.dispatch(timeout_of(timeout_ms)?)?;
        super::put(out_count, n);
        Ok(())
    })
}

/// Dispatch until no operation is pending (returns at once when none is).
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_run(l: *mut corotls_loop) -> Code {
    guard(|| loop_ref(l)?.run())
}

/// Operations that returned PENDING and whose callback has not run yet
/// (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_pending(l: *const corotls_loop) -> usize {
    boundary(|| loop_ref(l).map(|lp| lp.pending()).unwrap_or(0))
}

/// Milliseconds until the earliest deadline (rounded up): an operation's
/// timeout or an accepted connection's handshake / idle deadline; -1 when
/// there is none (also for NULL).  For hosts that prefer their own timer to
/// the readability of corotls_loop_fd on deadlines.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_timeout(l: *const corotls_loop) -> i32 {
    boundary(|| match loop_ref(l).ok().and_then(|lp| lp.next_timeout()) {
        None => -1,
        Some(d) => d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
    })
}

/// The handshake deadline of connections accepted from now on: `ms`
/// milliseconds from accept until the handshake completes, however the
/// handshake is driven (handshake, send, recv...) and whatever those
/// operations' own timeouts are.  Default 30000; -1 turns it off; 0 ends a
/// connection at the next dispatch unless its handshake finished inline;
/// below -1 is COROTLS_ERR_ARG (NULL loop too).  Connections already
/// accepted keep the deadline they got.  Connections made with
/// corotls_loop_connect have none (their operations' timeouts apply).
///
/// When the deadline expires the loop ends the connection at once: the
/// socket leaves the poller, is shut down (the peer sees the end of the
/// stream, or a reset) and released, and the TLS session is freed.  Its
/// pending operation, if any, completes with COROTLS_TIMEOUT and a message
/// saying that the handshake deadline expired (a send's `len` is then 0).
///
/// **The fd number stays reserved until the host calls
/// corotls_loop_close(fd).**  The loop never closes it on its own, so no
/// new connection (accept, connect, any open) can get the number while the
/// host still holds it, and the host's close can never hit another
/// connection.  Until that close, every operation on the fd (and set_sni,
/// set_limit, unread_bytes, the other info values...) returns
/// COROTLS_ERR_IO ("fd N was shut down by the loop ..."),
/// corotls_loop_is_alive gives false, and COROTLS_INFO_ERROR says which
/// deadline expired.  Close it as after any
/// other failure; an fd never closed stays taken (one per expired
/// connection, no socket or session behind it).
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_set_handshake_timeout(l: *mut corotls_loop, ms: i32) -> Code {
    guard(|| {
        let lp = loop_ref(l)?;
        lp.set_handshake_timeout(timeout_of(ms)?);
        Ok(())
    })
}

/// The idle deadline of connections accepted from now on: a connection
/// that receives and sends no byte for `ms` milliseconds is ended exactly
/// as by the handshake deadline (its pending operation gets COROTLS_TIMEOUT
/// saying the idle deadline expired; the fd stays reserved, every other
/// call on it ERR_IO, until corotls_loop_close).  Default -1: off; below -1
/// is COROTLS_ERR_ARG (NULL loop too).  It counts from accept, so it also
/// bounds the handshake (the earlier deadline wins), and applies to
/// accepted connections only: connections made with corotls_loop_connect
/// have none.  Bytes count when the loop moves them on the socket: a
/// connection whose reading is paused by its read limit
/// (corotls_loop_set_limit) and that has nothing to send is idle however
/// much the peer sends.  Connections already accepted keep what they got.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_set_idle_timeout(l: *mut corotls_loop, ms: i32) -> Code {
    guard(|| {
        let lp = loop_ref(l)?;
        lp.set_idle_timeout(timeout_of(ms)?);
        Ok(())
    })
}

/// How many connections the listener `lfd` shed: accepted and closed at
/// once because the process had no fd left for them (EMFILE / ENFILE).
///
/// The loop keeps one spare fd (on /dev/null, taken with the first
/// listener).  When accept fails for lack of fds, it gives the spare up,
/// accepts the waiting connection with its number, closes it (the peer
/// sees its connection end instead of hanging in the backlog) and takes
/// the spare again, until no connection waits.  A pending accept neither
/// fails nor spins meanwhile: it stays pending and completes with the first
/// connection that can really be given an fd.  The first connection shed
/// after a real accept sets the listener's COROTLS_INFO_ERROR ("accept: Too
/// many open files ...: new connections are shed ..."); the library prints
/// nothing.  `out` must not be NULL (ERR_ARG); it is 0 on failure.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_shed_count(l: *mut corotls_loop, lfd: i32, out: *mut u64) -> Code {
    out_value(out, 0, || loop_ref(l)?.shed_count(lfd))
}

/// Open a plain TCP listener (TLS is layered at accept).  `host`: a name or
/// address, NULL or "" for every local address; `service`: a port number
/// ("0": any free port, see COROTLS_INFO_LOCAL_ADDR) or a service name.
/// IPv4 and IPv6; SO_REUSEADDR; the first address that can be bound wins.
/// Names are resolved synchronously here (listening is set-up, not I/O).
/// `conf` (may be NULL) is the server conf accept uses when given none; the
/// listener keeps its own reference.  On success `*out_fd` is the
/// listener's fd, owned by the loop (release it with corotls_loop_close).
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_listen(
    l: *mut corotls_loop,
    host: *const c_char,
    service: *const c_char,
    conf: *const corotls_conf,
    out_fd: *mut i32,
) -> Code {
    guard(|| {
        let out = out_arg(out_fd, -1, "fd output pointer")?;
        let lp = loop_ref(l)?;
        let host = match opt_bytes_arg(host) {
            Some(h) => Some(std::str::from_utf8(h).map_err(|_| Error::arg("host is not valid UTF-8"))?),
            None => None,
        };
        let service = str_arg(service, "service")?;
        let conf = if conf.is_null() { None } else { Some(conf_ref(conf)?) };
        *out = lp.listen(host, service, conf)?;
        Ok(())
    })
}

/// Switch a listener to `conf` (a server conf; the listener takes its own
/// reference): later accepts given no conf use it, connections already
/// accepted keep theirs.  silly's listener:reload.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_listener_set_conf(
    l: *mut corotls_loop,
    lfd: i32,
    conf: *const corotls_conf,
) -> Code {
    guard(|| loop_ref(l)?.set_listener_conf(lfd, conf_ref(conf)?))
}

/// Accept one connection on listener `lfd` and wrap it in a server session
/// of `conf` (NULL: the listener's conf; the connection keeps its own
/// reference).  The handshake is not driven.  OK: `*out_fd` is the new
/// connection.  PENDING: the callback gets it (its `fd`).  `*out_fd` is -1
/// otherwise.  BUSY if an accept is already pending on `lfd`.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_accept(
    l: *mut corotls_loop,
    lfd: i32,
    conf: *const corotls_conf,
    timeout_ms: i32,
    cb: corotls_loop_cb,
    user_data: *mut c_void,
    out_fd: *mut i32,
) -> Code {
    guard_code(|| {
        let out = out_arg(out_fd, -1, "fd output pointer")?;
        let lp = loop_ref(l)?;
        let conf = if conf.is_null() { None } else { Some(conf_ref(conf)?) };
        let timeout = timeout_of(timeout_ms)?;
        Ok(started(lp.accept(lfd, conf, timeout, callback(cb, user_data)?)?, |fd| *out = fd))
    })
}

/// Connect to (`host`, `service`) and wrap the socket in a client session
/// of `conf` (the connection keeps its own reference).  The handshake is
/// not driven: set SNI / the host to verify now, then handshake, send or
/// recv.  `host` and `service` are copied (needed only during the call).
/// Numeric addresses are used directly; names are resolved on a helper
/// thread, never blocking the caller; every address is tried in turn.
/// OK: `*out_fd` is connected.  PENDING: `*out_fd` is the fd already (for
/// a numeric address, usable for set_sni / set_verify_host, BUSY for
/// operations until the callback) or -1 while a name is resolved; the
/// callback's `fd` is the connection (-1 on failure).
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_connect(
    l: *mut corotls_loop,
    host: *const c_char,
    service: *const c_char,
    conf: *const corotls_conf,
    timeout_ms: i32,
    cb: corotls_loop_cb,
    user_data: *mut c_void,
    out_fd: *mut i32,
) -> Code {
    guard_code(|| {
        let out = out_arg(out_fd, -1, "fd output pointer")?;
        let lp = loop_ref(l)?;
        let host = str_arg(host, "host")?;
        let service = str_arg(service, "service")?;
        let conf = conf_ref(conf)?;
        let timeout = timeout_of(timeout_ms)?;
        let (r, fd) = lp.connect(host, service, conf, timeout, callback(cb, user_data)?)?;
        *out = fd;
        Ok(started(r, |()| ()))
    })
}

/// Client, before the handshake: the Server Name Indication to send.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_set_sni(l: *mut corotls_loop, fd: i32, name: *const c_char) -> Code {
    guard(|| loop_ref(l)?.set_sni(fd, bytes_arg(name, "SNI name")?))
}

/// Client, before the handshake: the name (DNS name or IP literal) the
/// server certificate must match; applies when the conf verifies peers.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_set_verify_host(l: *mut corotls_loop, fd: i32, name: *const c_char) -> Code {
    guard(|| loop_ref(l)?.set_verify_host(fd, bytes_arg(name, "host name")?))
}

/// Drive the handshake to its end (optional: the first send or recv drives
/// it).  OK at once if it is done.  Failures: ERR_VERIFY, ERR_TLS, EOF
/// (the peer left), ERR_IO.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_handshake(
    l: *mut corotls_loop,
    fd: i32,
    timeout_ms: i32,
    cb: corotls_loop_cb,
    user_data: *mut c_void,
) -> Code {
    guard_code(|| {
        let lp = loop_ref(l)?;
        let timeout = timeout_of(timeout_ms)?;
        Ok(started(lp.handshake(fd, timeout, callback(cb, user_data)?)?, |()| ()))
    })
}

/// Send `len` bytes of `data` (NULL only with `len` 0), driving the
/// handshake first if needed.  OK: everything is on the wire (small sends
/// usually finish inline).  PENDING: the rest was copied (the caller's
/// buffer is free at once) and goes out as the socket drains.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_send(
    l: *mut corotls_loop,
    fd: i32,
    data: *const u8,
    len: usize,
    timeout_ms: i32,
    cb: corotls_loop_cb,
    user_data: *mut c_void,
) -> Code {
    guard_code(|| {
        let lp = loop_ref(l)?;
        let data = slice_arg(data, len, "data")?;
        let timeout = timeout_of(timeout_ms)?;
        Ok(started(lp.send(fd, data, timeout, callback(cb, user_data)?)?, |()| ()))
    })
}

/// recv / read / read_until.
///
/// # Safety
/// `l` as for loop_ref; `out_data` / `out_len` NULL or valid for writes.
#[allow(clippy::too_many_arguments)]
unsafe fn read_common(
    l: *mut corotls_loop,
    fd: i32,
    want: impl FnOnce() -> Result<Read>,
    timeout_ms: i32,
    cb: corotls_loop_cb,
    user_data: *mut c_void,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> Code {
    guard_code(|| {
        let out_data = out_arg(out_data, std::ptr::null(), "data output pointer")?;
        let out_len = out_arg(out_len, 0, "length output pointer")?;
        let lp = loop_ref(l)?;
        let timeout = timeout_of(timeout_ms)?;
        let r = lp.read(fd, want()?, timeout, callback(cb, user_data)?)?;
        Ok(started(r, |c: Chunk| {
            *out_data = c.as_ptr();
            *out_len = c.len();
        }))
    })
}

/// Receive all plaintext available now (one or more records) as one chunk,
/// driving the handshake first if needed.  OK: `*data` / `*len` hold at
/// least one byte, owned by the loop and valid until the next operation on
/// this fd (handshake, send, recv, read, read_until, close) returns, or
/// corotls_loop_free; it may be passed to that operation (e.g. echoed with
/// corotls_loop_send).  CLOSED: the peer sent close_notify; EOF: the stream
/// ended without it (both once all data was read).  PENDING: the callback
/// gets the data.  `data` and `len` must not be NULL (ERR_ARG); they are
/// NULL / 0 unless the result is OK.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_recv(
    l: *mut corotls_loop,
    fd: i32,
    timeout_ms: i32,
    cb: corotls_loop_cb,
    user_data: *mut c_void,
    data: *mut *const u8,
    len: *mut usize,
) -> Code {
    read_common(l, fd, || Ok(Read::Any), timeout_ms, cb, user_data, data, len)
}

/// Read exactly `n` (> 0) bytes: silly's read(n).  As corotls_loop_recv
/// otherwise; if the stream ends first the result is CLOSED / EOF and the
/// bytes stay buffered (corotls_loop_recv returns them).  A read larger
/// than the read limit still completes.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_read(
    l: *mut corotls_loop,
    fd: i32,
    n: usize,
    timeout_ms: i32,
    cb: corotls_loop_cb,
    user_data: *mut c_void,
    data: *mut *const u8,
    len: *mut usize,
) -> Code {
    read_common(l, fd, || Ok(Read::Exactly(n)), timeout_ms, cb, user_data, data, len)
}

/// Read up to and including the delimiter `delim` (1 to 64 bytes, copied):
/// silly's read(delim).  `max` > 0 bounds the wait: with no delimiter in
/// the first `max` bytes the read completes with those `max` bytes (check
/// whether the chunk ends with the delimiter); 0 means no bound.  As
/// corotls_loop_read otherwise.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_read_until(
    l: *mut corotls_loop,
    fd: i32,
    delim: *const u8,
    delim_len: usize,
    max: usize,
    timeout_ms: i32,
    cb: corotls_loop_cb,
    user_data: *mut c_void,
    data: *mut *const u8,
    len: *mut usize,
) -> Code {
    let want = || Ok(Read::Until { delim: slice_arg(delim, delim_len, "delimiter")?.to_vec(), max });
    read_common(l, fd, want, timeout_ms, cb, user_data, data, len)
}

/// Close a connection or listener; always succeeds for an open fd.  A
/// connection makes one non-blocking close_notify attempt (input that
/// already arrived is discarded first, so the kernel does not reset the
/// stream), then its socket is closed and its fd leaves the table.  An
/// operation in flight completes with COROTLS_ERR_CANCELLED at the next
/// dispatch (never from inside this call).  For a connection a deadline
/// ended, close only releases the fd number the loop kept reserved (see
/// corotls_loop_set_handshake_timeout).  ERR_ARG for an fd that is not
/// open in this loop (e.g. a second close).
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_close(l: *mut corotls_loop, fd: i32) -> Code {
    guard(|| loop_ref(l)?.close(fd))
}

/// Cancel the operation in flight on `fd` without closing the fd: for a
/// host whose waiting caller went away (a coroutine killed while it
/// waited) while others may go on using the connection.  The operation
/// completes with COROTLS_ERR_CANCELLED at the next dispatch (never from
/// inside this call), its callback runs exactly once as usual, and the fd
/// is usable at once (a new operation is not BUSY).  Nothing is lost:
/// - recv / read / read_until consume nothing: plaintext already received
///   stays buffered for the next read;
/// - send stops taking new plaintext; ciphertext already produced still
///   goes out, in order, first (the callback's `len` counts the bytes of
///   the data that reached the stream, as after a timeout);
/// - handshake resumes with the next operation;
/// - accept leaves the listener as it was (waiting connections stay in the
///   backlog for the next accept);
/// - connect is the exception: the connection does not exist yet, so its
///   socket is closed and the fd leaves the table (the callback's `fd` is
///   -1), as when a connect times out.
///
/// COROTLS_OK when an operation was cancelled.  COROTLS_ERR_ARG when `fd`
/// is not open in this loop or has no operation in flight, also when its
/// operation has just completed and its callback is still to run (that
/// callback then brings the operation's real result).  A connect whose
/// name is still being resolved has no fd yet and cannot be cancelled.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_cancel(l: *mut corotls_loop, fd: i32) -> Code {
    guard(|| loop_ref(l)?.cancel(fd))
}

/// silly's limit: stop reading from the socket while `bytes` of plaintext
/// are unread (0: no limit; the default is 1 MiB).  The limit is soft: one
/// socket read (64 KiB) may overshoot it.  Reading resumes when reads bring
/// the unread bytes below it.  A pending read asking for more still reads.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_set_limit(l: *mut corotls_loop, fd: i32, bytes: usize) -> Code {
    guard(|| loop_ref(l)?.set_limit(fd, bytes))
}

/// silly's unreadbytes: plaintext received and not yet read.  `out` must
/// not be NULL (ERR_ARG).
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_unread_bytes(l: *mut corotls_loop, fd: i32, out: *mut usize) -> Code {
    out_value(out, 0, || loop_ref(l)?.unread(fd))
}

/// silly's unsentbytes: ciphertext produced and not yet taken by the
/// socket (bytes in the kernel's send queue are not counted).  `out` must
/// not be NULL (ERR_ARG).
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_unsent_bytes(l: *mut corotls_loop, fd: i32, out: *mut usize) -> Code {
    out_value(out, 0, || loop_ref(l)?.unsent(fd))
}

/// A call whose result is one value stored through a required `out`
/// (`cleared` on failure).
///
/// # Safety
/// `out` is NULL or valid for a write of T.
unsafe fn out_value<T>(out: *mut T, cleared: T, f: impl FnOnce() -> Result<T>) -> Code {
    guard(|| {
        let out = out_arg(out, cleared, "output pointer")?;
        *out = f()?;
        Ok(())
    })
}

/// silly's isalive: `*out` is true while the connection is open and has
/// seen no close_notify, no EOF and no failure, and no deadline ended it
/// (listeners: true).  `out`
/// must not be NULL (ERR_ARG); it is false on any failure.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_is_alive(l: *mut corotls_loop, fd: i32, out: *mut bool) -> Code {
    out_value(out, false, || loop_ref(l)?.alive(fd))
}

/// Copy a fact about `fd` (see corotls_info) into `buf` (`cap` bytes,
/// NUL-terminated).  `*out_len` (may be NULL) receives the full length.  If
/// it does not fit, as much as fits is written and the result is
/// COROTLS_ERR_ARG.  Listeners have LOCAL_ADDR and ERROR only.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_info(
    l: *mut corotls_loop,
    fd: i32,
    what: i32,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> Code {
    super::put(out_len, 0);
    guard(|| {
        let what = match what {
            0 => Info::Version,
            1 => Info::Cipher,
            2 => Info::Alpn,
            3 => Info::PeerSubject,
            4 => Info::Verify,
            5 => Info::LocalAddr,
            6 => Info::RemoteAddr,
            7 => Info::Error,
            w => return Err(Error::arg(format!("{w} is not a corotls_info value"))),
        };
        if buf.is_null() || cap == 0 {
            return Err(Error::arg("buffer is NULL or empty"));
        }
        let s = loop_ref(l)?.info(fd, what)?;
        let b = s.as_bytes();
        let n = b.len().min(cap - 1);
        // SAFETY: buf is valid for cap bytes (the caller's promise) and n + 1 <= cap; s is our own string.
        std::ptr::copy_nonoverlapping(b.as_ptr(), buf as *mut u8, n);
        // SAFETY: as above: index n < cap.
        buf.add(n).write(0);
        super::put(out_len, b.len());
        if n < b.len() {
            return Err(Error::arg(format!("buffer of {cap} bytes is too small for {} bytes", b.len() + 1)));
        }
        Ok(())
    })
}

/// The reason of `fd`'s last failure, the one COROTLS_INFO_ERROR describes
/// (COROTLS_REASON_NONE if none), into `*out_reason`, and its number (see
/// corotls_reason) into `*out_detail` (may be NULL).  ERR_ARG if the fd is
/// not open in this loop.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_reason(
    l: *mut corotls_loop,
    fd: i32,
    out_reason: *mut Reason,
    out_detail: *mut i64,
) -> Code {
    super::put(out_detail, 0);
    guard(|| {
        let out = out_arg(out_reason, Reason::COROTLS_REASON_NONE, "reason output pointer")?;
        let (r, d) = loop_ref(l)?.last_reason(fd)?;
        *out = r;
        super::put(out_detail, d);
        Ok(())
    })
}
