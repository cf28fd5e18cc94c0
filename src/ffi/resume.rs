//! Session resumption in the C ABI: a server's tickets and ticket keys, a
//! client's session cache, export and import of a session, and the
//! `resumed` queries of session, conn and loop connection.

use super::conf::{builder, conf_ref, corotls_conf, corotls_conf_builder};
use super::conn::{conn_ref, corotls_conn, with_conn};
use super::event_loop::{corotls_loop, loop_ref};
use super::session::{corotls_session, read_session, with_session};
use super::{boundary, bytes_arg, guard, out_arg, put, slice_arg, slice_mut_arg};
use crate::error::{Code, Error, Reason::*, Result};
use crate::session::Session;
use libc::c_char;
use std::time::Duration;

/// Bytes of a ticket key: a 16-byte key name (sent in each ticket), a
/// 32-byte AES-256 key and a 32-byte HMAC-SHA256 key, in that order.
pub const COROTLS_TICKET_KEY_LEN: usize = 80;

/// Server: whether to issue session tickets, for TLS 1.3 (tickets) and TLS
/// 1.2 (RFC 5077 session tickets).  Default true: clients that keep them
/// resume with a shorter handshake.  On a server with several identities a
/// ticket resumes only under the SNI name it was issued for; offered with
/// another name it gets a full handshake with that name's identity.  `false` issues none (OpenSSL's own
/// TLS 1.2 session-ID cache, per conf, still resumes TLS 1.2 clients that
/// send a session ID).  COROTLS_ERR_ARG (WRONG_STATE) on a client builder.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_tickets(b: *mut corotls_conf_builder, on: bool) -> Code {
    guard(|| builder(b)?.set_tickets(on))
}

/// Server: the ticket key each conf built from now on starts with
/// (`key`: COROTLS_TICKET_KEY_LEN bytes, copied; keep it secret: whoever
/// has it can decrypt the sessions of recorded connections).  Without this
/// call every build makes a random key, so tickets resume only at the conf
/// that issued them; give several servers (or a restarted one) the same key
/// to share resumption, and rotate it (corotls_conf_rotate_ticket_key).
/// COROTLS_ERR_ARG for another length or a client builder.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_ticket_key(
    b: *mut corotls_conf_builder,
    key: *const u8,
    len: usize,
) -> Code {
    guard(|| {
        let b = builder(b)?;
        b.set_ticket_key(slice_arg(key, len, "ticket key")?)
    })
}

/// Client: how many entries the conf's session cache holds (default 256;
/// 0 turns it off).  An entry is one (host, port, SNI name, verified name)
/// and keeps the newest sessions received there; when full, the entry
/// stored least recently is dropped.  The cache belongs to each built conf
/// (so to its trust): a session resumes only through the conf that
/// verified it, and only for the names it was made for.  COROTLS_ERR_ARG
/// (WRONG_STATE) on a server builder.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_session_cache_size(
    b: *mut corotls_conf_builder,
    size: usize,
) -> Code {
    guard(|| builder(b)?.set_session_cache_size(size))
}

/// Server: rotate the conf's ticket key.  `key` (COROTLS_TICKET_KEY_LEN
/// bytes, copied), or NULL with `len` 0 for a random key, becomes current:
/// new tickets are made with it.  The keys it replaces still decrypt for
/// `grace_ms` milliseconds (a ticket they decrypt resumes, and the client
/// gets a new ticket under the current key); afterwards a ticket under
/// them gets a full handshake, never an error.  Up to 8 keys are kept.
/// Safe to call from any thread while the conf serves connections (the
/// conf is otherwise immutable).  COROTLS_ERR_ARG for a client conf, a conf
/// built with tickets off, a key of another length or a key name in use,
/// and for `grace_ms` above INT64_MAX (a negative number cast).
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_rotate_ticket_key(
    conf: *const corotls_conf,
    key: *const u8,
    len: usize,
    grace_ms: u64,
) -> Code {
    guard(|| {
        let c = conf_ref(conf)?;
        let key = if key.is_null() && len == 0 { None } else { Some(slice_arg(key, len, "ticket key")?) };
        if grace_ms > i64::MAX as u64 {
            return Err(Error::arg(format!(
                "grace period {grace_ms} ms is longer than any (a negative grace period?)"
            )));
        }
        c.rotate_ticket_key(key, Duration::from_millis(grace_ms))
    })
}

/// Resume key arguments: a host (1..255 bytes) and a port.
unsafe fn host_arg<'a>(host: *const c_char) -> Result<&'a [u8]> {
    let h = bytes_arg(host, "resume host")?;
    if h.is_empty() || h.len() > 255 {
        return Err(Error::arg("resume host must be 1 to 255 bytes").because(COROTLS_REASON_HOST_NAME));
    }
    Ok(h)
}

/// Client only, before the handshake: use the conf's session cache for
/// this session, under (`host`, `port`, the SNI name, the verified name).
/// `host` (borrowed) names where the caller connected (a DNS name or an
/// address, as the caller spells it).  When the handshake starts, the
/// newest session kept under that key is offered (a TLS 1.3 session is
/// taken out: each ticket is used once); the sessions the server gives are
/// kept under it.  Set the SNI and the host to verify before the handshake
/// as usual: they are part of the key.  Without a cache in the conf it
/// does nothing.  corotls_loop_connect does this itself.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_set_resume_key(
    s: *mut corotls_session,
    host: *const c_char,
    port: u16,
) -> Code {
    with_session(s, |sess| sess.set_resume_key(host_arg(host)?, port))
}

/// True when the session's handshake resumed an earlier session (false
/// before the handshake completes, and for NULL or a handle that is not a
/// live session).  Clients and servers.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_resumed(s: *const corotls_session) -> bool {
    read_session(s, false, |sess| sess.resumed())
}

/// Copy `sess.export_session()` into the caller's buffer.
unsafe fn export_into(sess: &Session, buf: *mut u8, cap: usize, out_len: *mut usize) -> Result<()> {
    let out = out_arg(out_len, 0, "length output pointer")?;
    let der = sess.export_session()?;
    *out = der.len();
    if buf.is_null() && cap == 0 {
        return Ok(());
    }
    let dst = slice_mut_arg(buf, cap, "session buffer")?;
    if dst.len() < der.len() {
        return Err(Error::arg(format!("buffer of {cap} bytes is too small for the {}-byte session", der.len()))
            .because(COROTLS_REASON_LIMIT));
    }
    dst[..der.len()].copy_from_slice(&der);
    Ok(())
}

/// Client, after the handshake: the session to resume with later, as
/// bytes (DER) for corotls_session_import, e.g. in another process.  They
/// hold the session's secrets: store them as you would a password.
/// `*out_len` (required) receives the size; with `buf` NULL and `cap` 0
/// nothing more happens (ask for the size first), else the bytes are
/// copied into `buf` (`cap` bytes, caller's), or COROTLS_ERR_ARG (LIMIT)
/// when they do not fit.  WRONG_STATE errors: before the handshake, on a
/// server, or before a ticket arrived (TLS 1.3 servers send tickets after
/// the handshake: export after the first read).
#[no_mangle]
pub unsafe extern "C" fn corotls_session_export(
    s: *mut corotls_session,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> Code {
    put(out_len, 0);
    with_session(s, |sess| export_into(sess, buf, cap, out_len))
}

/// Client only, before the handshake, after set_sni or set_verify_host:
/// offer the session in `data` (`len` bytes from corotls_session_export,
/// copied) when the handshake starts, instead of one from the cache.
/// Checked now, each failure a clear error that leaves the session usable
/// for a full handshake: bytes that are not a TLS session (ERR_ARG,
/// BAD_ARGUMENT), a session past its lifetime or not resumable (ERR_ARG),
/// made for another name than this session verifies (ERR_ARG, HOST_NAME:
/// a session never crosses to another server name), and, when the conf
/// verifies servers, a server certificate that does not verify now against
/// this conf's trust (and name) (ERR_VERIFY, VERIFY: a session never
/// crosses to weaker trust; the session keeps no intermediates, so one
/// whose server certificate needs an intermediate the trust lacks is
/// refused).  Whether it resumed: corotls_session_resumed; a server that
/// refuses it gives a full handshake.
#[no_mangle]
pub unsafe extern "C" fn corotls_session_import(s: *mut corotls_session, data: *const u8, len: usize) -> Code {
    with_session(s, |sess| sess.import_session(slice_arg(data, len, "session data")?))
}

/// See corotls_session_set_resume_key.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_set_resume_key(c: *mut corotls_conn, host: *const c_char, port: u16) -> Code {
    with_conn(c, |conn| conn.session_mut().set_resume_key(host_arg(host)?, port))
}

/// See corotls_session_resumed (false for NULL or a handle that is not a
/// live conn).
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_resumed(c: *const corotls_conn) -> bool {
    boundary(|| conn_ref(c).map(|conn| conn.session().resumed()).unwrap_or(false))
}

/// See corotls_session_export.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_export(
    c: *mut corotls_conn,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> Code {
    put(out_len, 0);
    with_conn(c, |conn| export_into(conn.session(), buf, cap, out_len))
}

/// See corotls_session_import.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_import(c: *mut corotls_conn, data: *const u8, len: usize) -> Code {
    with_conn(c, |conn| conn.session_mut().import_session(slice_arg(data, len, "session data")?))
}

/// `*out` (required) is true when `fd`'s handshake resumed a session
/// (false before it completes).  Clients made by corotls_loop_connect
/// resume through their conf's session cache on their own, keyed by the
/// host and port given to connect, the SNI and the name verified; accepted
/// connections resume with the listener conf's tickets.  ERR_ARG if the fd
/// is not a connection of this loop.
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_resumed(l: *mut corotls_loop, fd: i32, out: *mut bool) -> Code {
    guard(|| {
        let out = out_arg(out, false, "output pointer")?;
        *out = loop_ref(l)?.resumed(fd)?;
        Ok(())
    })
}
