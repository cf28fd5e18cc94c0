//! Kernel TLS on request, its report, and sending files (conn and loop).

use super::conf::{builder, corotls_conf_builder};
use super::conn::{conn_ref, corotls_conn, with_conn};
use super::event_loop::{callback, corotls_loop, corotls_loop_cb, loop_ref, started, timeout_of};
use super::peer::copy_text;
use super::{guard, guard_code, out_arg, put};
use crate::error::{Code, Result};
use crate::session::ktls::KtlsStatus;
use libc::{c_char, c_void};

/// Store a kTLS report through the out-pointers.
///
/// # Safety
/// As for the exports below.
unsafe fn put_ktls(
    send: *mut bool,
    recv: *mut bool,
    why: *mut c_char,
    cap: usize,
    why_len: *mut usize,
    f: impl FnOnce() -> Result<KtlsStatus>,
) -> Code {
    put(why_len, 0);
    guard(|| {
        let send = out_arg(send, false, "send output pointer")?;
        let recv = out_arg(recv, false, "recv output pointer")?;
        let st = f()?;
        *send = st.send;
        *recv = st.recv;
        copy_text(&st.why, why, cap, why_len)
    })
}

/// Ask for kernel TLS (kTLS) on connections of this conf (default off):
/// where OpenSSL and the kernel support it, records would be encrypted
/// and decrypted by the kernel after the handshake.  Asking never fails a
/// handshake and changes nothing on the wire; corotls_conn_ktls and
/// corotls_loop_ktls report whether offload is active, and why not.
///
/// **Not built here**: corotls sessions move ciphertext through their own
/// FIFO BIOs (one transport for every face), and OpenSSL turns kTLS on
/// only for socket BIOs, so offload is never active yet; the report says
/// so (or that the kernel has no TLS module, which is checked first).
/// corotls_conn_sendfile and corotls_loop_sendfile read, encrypt and write
/// in chunks, with the same bytes on the wire.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_ktls(b: *mut corotls_conf_builder, on: bool) -> Code {
    guard(|| {
        builder(b)?.set_ktls(on);
        Ok(())
    })
}

/// Whether kernel TLS carries the conn's records: `*send` / `*recv`
/// (required) for each direction.  When either is false, the reason is
/// copied into `why` (`cap` bytes; NULL with 0 to skip it), as
/// corotls_session_peer_cert copies text (`*why_len`, may be NULL, gets its
/// length): "not requested (corotls_conf_builder_set_ktls)", "the
/// handshake is not complete", "the kernel offers no TLS ULP (...)", or
/// that offload is not built for corotls' transport.  "" when both are on.
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_ktls(
    c: *const corotls_conn,
    send: *mut bool,
    recv: *mut bool,
    why: *mut c_char,
    cap: usize,
    why_len: *mut usize,
) -> Code {
    put_ktls(send, recv, why, cap, why_len, || Ok(conn_ref(c)?.session().ktls_status()))
}

/// corotls_conn_ktls for the connection `fd` of the loop (not an
/// operation: never BUSY).
#[no_mangle]
pub unsafe extern "C" fn corotls_loop_ktls(
    l: *mut corotls_loop,
    fd: i32,
    send: *mut bool,
    recv: *mut bool,
    why: *mut c_char,
    cap: usize,
    why_len: *mut usize,
) -> Code {
    put_ktls(send, recv, why, cap, why_len, || loop_ref(l)?.ktls(fd))
}

/// Send `len` (> 0) bytes of the file `file_fd` from `offset`, as
/// corotls_conn_write would send them (the kernel path is used when
/// corotls_conn_ktls reports send offload, which is never the case yet:
/// the file is read with pread in 64 KiB chunks, encrypted and written).
/// The file offset of `file_fd` does not move; the fd stays the caller's.
/// OK with `*out_sent` (required) = bytes now on the wire: fewer than
/// `len` means call again (when writable) with `offset + *out_sent` and
/// `len - *out_sent`; WANT_WRITE: nothing more went out (up to 64 KiB may
/// already be encrypted and is not encrypted twice, as for
/// corotls_conn_write).  Drives the handshake first (WANT_READ possible).
/// ERR_ARG, reason FILE, when the file cannot be read or ends before the
/// range does (bytes before that point are sent first: the call returns
/// OK with them, the next one the error).
#[no_mangle]
pub unsafe extern "C" fn corotls_conn_sendfile(
    c: *mut corotls_conn,
    file_fd: i32,
    offset: u64,
    len: u64,
    out_sent: *mut u64,
) -> Code {
    put(out_sent, 0);
    if out_sent.is_null() {
        return guard(|| Err(crate::error::Error::null("sent output pointer")));
    }
    with_conn(c, |conn| {
        *out_sent = conn.sendfile(file_fd, offset, len)?;
        Ok(())
    })
}

/// Send `len` (> 0) bytes of the file `file_fd` from `offset` over `fd`:
/// corotls_loop_send's conventions (busy rule: one operation per fd;
/// timeout; drives the handshake first).  OK: every byte is on the wire.
/// PENDING: the callback runs once, its `len` counting the bytes that
/// reached the stream (all on OK; on TIMEOUT, CANCELLED or a failure, the
/// prefix that will still reach the peer).  The file is read with pread in
/// 64 KiB chunks as the socket drains (never whole into memory), encrypted
/// and written (the user-space path: kernel offload is not built, see
/// corotls_conf_builder_set_ktls); its offset does not move.  `file_fd`
/// stays the caller's and must stay open until the operation completes.
/// ERR_ARG (reason FILE) when the file cannot be read or ends before the
/// range does.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn corotls_loop_sendfile(
    l: *mut corotls_loop,
    fd: i32,
    file_fd: i32,
    offset: u64,
    len: u64,
    timeout_ms: i32,
    cb: corotls_loop_cb,
    user_data: *mut c_void,
) -> Code {
    guard_code(|| {
        let lp = loop_ref(l)?;
        let timeout = timeout_of(timeout_ms)?;
        Ok(started(lp.sendfile(fd, file_fd, offset, len, timeout, callback(cb, user_data)?)?, |()| ()))
    })
}
