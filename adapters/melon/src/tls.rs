//! The TLS I/O of the Melon connection module (spec melon.md §4): the
//! socket is not a BIO; ciphertext moves by hand between the fd and the
//! SSL's two memory BIOs.  Every OpenSSL step goes through the engine's
//! session view of a host's SSL (`HostSsl`, which clears the error queue
//! first), and every socket call through the engine's pump
//! (`transport::socket`, shared with `transport::Conn`); this file holds
//! only the Melon-specific algorithm: the pending buffer from the pool,
//! flush-wbio, drain-socket, the want flags and the chains.
//!
//! The BIOs are always reached through the SSL (the caller may have
//! attached its own SSL and BIOs, with `tls_conf` NULL), and `tls_conf` is
//! never read here.

use crate::abi::*;
use crate::host::{self, set_errno};
use crate::queue::{self, M_C_RECV};
use crate::{M_C_CLOSED, M_C_ERROR, M_C_FINISH, M_C_NOTYET};
use corotls::session::HostSsl;
use corotls::transport::socket::{self, Io, MAX_FILL};
use corotls::Code;
use libc::c_void;
use std::cell::RefCell;
use std::mem::MaybeUninit;

/// `M_TLS_CHUNK`: the pending buffer, the socket read and the plaintext
/// taken per SSL_write.
pub const CHUNK: usize = 16384;
/// Plaintext per RECV chain.
const PLAIN_CHUNK: usize = 4096;

thread_local! {
    // Scratch for socket reads and file reads: nothing large on the (maybe
    // small, coroutine) C stack, nothing held per idle connection.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; CHUNK]);
}

/// Run `f` with a CHUNK-sized scratch buffer.
fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => f(&mut v[..]),
        // Not reachable (no step nests another), but never panic for it.
        Err(_) => f(&mut vec![0u8; CHUNK][..]),
    })
}

/// The connection's SSL, or None on a plain connection.
///
/// # Safety
/// `tc` is live; its `ssl` is NULL or a live SSL.
pub unsafe fn ssl_of(tc: *mut TcpConn) -> Option<HostSsl> {
    HostSsl::from_ptr((*tc).ssl)
}

/// flush-wbio (§4.2): pending bytes first, then the write BIO in 16 KiB
/// pieces.  Unsent bytes wait in `tls_pending`, never back in the BIO.
unsafe fn flush(tc: *mut TcpConn, ssl: HostSsl) -> i32 {
    if (*tc).tls_pending.is_null() {
        // errno from alloc: ENOMEM, or EINVAL for a NULL pool.
        let p = host::alloc((*tc).pool, CHUNK);
        if p.is_null() {
            return M_C_ERROR;
        }
        (*tc).tls_pending = p;
        (*tc).tls_pending_off = 0;
        (*tc).tls_pending_len = 0;
    }
    loop {
        while (*tc).tls_pending_len > 0 {
            let off = (*tc).tls_pending_off.min(CHUNK);
            let len = (*tc).tls_pending_len.min(CHUNK - off);
            if len == 0 {
                break;
            }
            // SAFETY: tls_pending holds CHUNK bytes and off + len <= CHUNK.
            let pending = std::slice::from_raw_parts((*tc).tls_pending.add(off), len);
            // A vanished peer is EPIPE (ERROR), never SIGPIPE.
            match socket::send((*tc).sockfd, pending) {
                Io::Done(n) if n > 0 => {
                    (*tc).tls_pending_off = off + n;
                    (*tc).tls_pending_len = len - n;
                }
                Io::Want(_) => {
                    TcpConn::set_flag(tc, TLS_WANT_W, true);
                    return M_C_NOTYET;
                }
                // A send that took nothing, or a failure (errno is its own).
                _ => return M_C_ERROR,
            }
        }
        (*tc).tls_pending_off = 0;
        (*tc).tls_pending_len = 0;
        let dst = std::slice::from_raw_parts_mut((*tc).tls_pending, CHUNK);
        let got = ssl.out_read(dst);
        if got == 0 {
            return M_C_FINISH;
        }
        (*tc).tls_pending_len = got;
    }
}

/// drain-socket (§4.2): socket bytes into the read BIO, until the socket is
/// empty or the drain cap is reached.  FINISH (also when the socket was
/// empty from the start), CLOSED for EOF with nothing read in this call,
/// ERROR for a socket error with nothing read in this call.  EOF or an
/// error after some bytes gives FINISH; the next call sees it.  A blocking
/// connection reads once.
unsafe fn drain(tc: *mut TcpConn, ssl: HostSsl) -> i32 {
    let fd = (*tc).sockfd;
    let blocking = !TcpConn::nonblock(tc);
    with_scratch(|buf| {
        let mut total = 0usize;
        loop {
            // SAFETY: recv only writes initialised bytes into the scratch.
            let room = &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]);
            match socket::recv(fd, room) {
                Io::Done(0) => return if total == 0 { M_C_CLOSED } else { M_C_FINISH },
                Io::Done(n) => {
                    if ssl.feed(&buf[..n]).is_err() {
                        set_errno(libc::ENOMEM);
                        return M_C_ERROR;
                    }
                    total += n;
                    // The drain cap: the socket stays readable, the caller
                    // comes back (want_r).
                    if blocking || total >= MAX_FILL {
                        return M_C_FINISH;
                    }
                }
                Io::Want(_) => return M_C_FINISH,
                // Bytes came before the error (say the peer's last records,
                // then ECONNRESET because it closed with our tickets unread):
                // decrypt them first, like an EOF after data; the socket
                // reports its state again on the next call.
                Io::Failed(_) if total > 0 => return M_C_FINISH,
                Io::Failed(_) => return M_C_ERROR,
            }
        }
    })
}

/// After a WANT_READ: read the socket; NOTYET (want_r) when that brought no
/// new ciphertext, so a partial record never makes the caller spin (§4.3).
/// Returns None to go round again, or the result to return.
unsafe fn want_read_step(tc: *mut TcpConn, ssl: HostSsl) -> Option<i32> {
    let pre = ssl.in_pending();
    let d = drain(tc, ssl);
    if d != M_C_FINISH {
        return Some(d);
    }
    if ssl.in_pending() <= pre {
        TcpConn::set_flag(tc, TLS_WANT_R, true);
        return Some(M_C_NOTYET);
    }
    None
}

/// §4.3.  Also the start of send and recv: it clears the flags and returns
/// FINISH at once when the handshake is already done.
///
/// # Safety
/// `tc` is live; its `ssl` is NULL or live.
pub unsafe fn handshake(tc: *mut TcpConn) -> i32 {
    let Some(ssl) = ssl_of(tc) else {
        set_errno(libc::EINVAL);
        return M_C_ERROR;
    };
    TcpConn::clear_wants(tc);
    if TcpConn::flag(tc, TLS_DONE) {
        return M_C_FINISH;
    }
    loop {
        TcpConn::clear_wants(tc);
        let r = ssl.handshake();
        match flush(tc, ssl) {
            M_C_FINISH => {}
            other => return other,
        }
        match r {
            Ok(()) => {
                TcpConn::set_flag(tc, TLS_DONE, true);
                return M_C_FINISH;
            }
            Err(e) if e.code == Code::COROTLS_WANT_READ => {
                if let Some(res) = want_read_step(tc, ssl) {
                    return res;
                }
            }
            Err(e) if e.code == Code::COROTLS_WANT_WRITE => {
                TcpConn::set_flag(tc, TLS_WANT_W, true);
                return M_C_NOTYET;
            }
            Err(_) => return M_C_ERROR,
        }
    }
}

/// §4.4: `mln_tcp_conn_send` on a TLS connection.
///
/// # Safety
/// `tc` is live with a live `ssl`; the SEND queue is well formed.
pub unsafe fn send(tc: *mut TcpConn, ssl: HostSsl) -> i32 {
    // Clears the flags; FINISH at once if the handshake is already done.
    let h = handshake(tc);
    if h != M_C_FINISH {
        return h;
    }
    let f = flush(tc, ssl);
    if f != M_C_FINISH {
        return f;
    }
    loop {
        let c = (*tc).snd_head;
        if c.is_null() {
            return M_C_NOTYET;
        }
        let b = (*c).buf;
        if b.is_null() {
            queue::send_head_to_sent(tc);
            continue;
        }
        let left = MlnBuf::send_left(b);
        if left == 0 {
            queue::send_head_to_sent(tc);
            if MlnBuf::has(b, BUF_LAST_IN_CHAIN) {
                return M_C_FINISH;
            }
            continue;
        }
        // A chunk of plaintext: memory is taken in place (send_left keeps
        // it within `last`), a file is read into the scratch buffer.
        let want = left.min(CHUNK);
        let wrote = if MlnBuf::has(b, BUF_IN_MEMORY) {
            let chunk = std::slice::from_raw_parts((*b).left_pos as *const u8, want);
            write_chunk(tc, ssl, b, chunk, false)
        } else if MlnBuf::has(b, BUF_IN_FILE) && !(*b).file.is_null() {
            let fd = (*(*b).file).fd;
            with_scratch(|buf| match read_file(fd, (*b).file_left_pos, &mut buf[..want]) {
                Some(got) => write_chunk(tc, ssl, b, &buf[..got], true),
                None => M_C_ERROR,
            })
        } else {
            set_errno(libc::EINVAL);
            return M_C_ERROR;
        };
        let f = flush(tc, ssl);
        if f != M_C_FINISH {
            return f;
        }
        if wrote != M_C_FINISH {
            return wrote;
        }
        if MlnBuf::send_left(b) == 0 {
            queue::send_head_to_sent(tc);
            if MlnBuf::has(b, BUF_LAST_IN_CHAIN) {
                return M_C_FINISH;
            }
        }
    }
}

/// `lseek` + `read` of up to `dst.len()` bytes at `off` (the file's shared
/// offset moves, as in Melon).  None for a seek failure, EOF or an error.
unsafe fn read_file(fd: i32, off: libc::off_t, dst: &mut [u8]) -> Option<usize> {
    if libc::lseek(fd, off, libc::SEEK_SET) < 0 {
        return None;
    }
    match socket::retry(Code::COROTLS_WANT_READ, || libc::read(fd, dst.as_mut_ptr() as *mut c_void, dst.len())) {
        Io::Done(0) => {
            set_errno(libc::EIO);
            None
        }
        Io::Done(n) => Some(n),
        // errno is the read's own.
        _ => None,
    }
}

/// SSL_write the whole chunk, advancing the buf by what OpenSSL took.
unsafe fn write_chunk(tc: *mut TcpConn, ssl: HostSsl, b: *mut MlnBuf, chunk: &[u8], file: bool) -> i32 {
    let mut done = 0;
    while done < chunk.len() {
        match ssl.write(&chunk[done..]) {
            Ok(n) => {
                done += n;
                if file {
                    (*b).file_left_pos += n as libc::off_t;
                } else {
                    (*b).left_pos = (*b).left_pos.add(n);
                }
            }
            Err(e) => {
                return match e.code {
                    Code::COROTLS_WANT_READ => {
                        TcpConn::set_flag(tc, TLS_WANT_R, true);
                        M_C_NOTYET
                    }
                    Code::COROTLS_WANT_WRITE => {
                        TcpConn::set_flag(tc, TLS_WANT_W, true);
                        M_C_NOTYET
                    }
                    Code::COROTLS_CLOSED => M_C_CLOSED,
                    _ => M_C_ERROR,
                }
            }
        }
    }
    M_C_FINISH
}

/// §4.5: `mln_tcp_conn_recv(tc, M_C_TYPE_MEMORY)` on a TLS connection.
/// Never FINISH: data comes with NOTYET (want_r) on the RECV queue.
///
/// # Safety
/// `tc` is live with a live `ssl`.
pub unsafe fn recv(tc: *mut TcpConn, ssl: HostSsl) -> i32 {
    // Clears the flags; FINISH at once if the handshake is already done.
    let h = handshake(tc);
    if h != M_C_FINISH {
        return h;
    }
    let dr = drain(tc, ssl);
    if dr == M_C_ERROR {
        return M_C_ERROR;
    }
    loop {
        TcpConn::clear_wants(tc);
        // Nothing to decrypt: what SSL_read would say, without the failed
        // call and the chunk allocated and freed for it.
        if !ssl.has_input() {
            TcpConn::set_flag(tc, TLS_WANT_R, true);
            return if dr == M_C_CLOSED { M_C_CLOSED } else { M_C_NOTYET };
        }
        let p = host::alloc((*tc).pool, PLAIN_CHUNK);
        if p.is_null() {
            return M_C_ERROR;
        }
        let code = match ssl.read(std::slice::from_raw_parts_mut(p, PLAIN_CHUNK)) {
            Ok(n) if n > 0 => {
                let c = host::chain_with_buf((*tc).pool);
                if c.is_null() {
                    host::mln_alloc_free(p as *mut c_void);
                    set_errno(libc::ENOMEM);
                    return M_C_ERROR;
                }
                MlnBuf::set_received((*c).buf, p, n);
                queue::append(tc, c, M_C_RECV);
                continue;
            }
            Ok(_) => None, // a 0-byte read of a non-empty buffer: not possible
            Err(e) => Some(e.code),
        };
        host::mln_alloc_free(p as *mut c_void);
        return match code {
            Some(Code::COROTLS_WANT_READ) => {
                TcpConn::set_flag(tc, TLS_WANT_R, true);
                if dr == M_C_CLOSED {
                    M_C_CLOSED
                } else {
                    M_C_NOTYET
                }
            }
            Some(Code::COROTLS_WANT_WRITE) => match flush(tc, ssl) {
                M_C_FINISH => {
                    TcpConn::set_flag(tc, TLS_WANT_R, true);
                    M_C_NOTYET
                }
                other => other,
            },
            Some(Code::COROTLS_CLOSED) => M_C_CLOSED,
            _ => M_C_ERROR,
        };
    }
}

/// §4.6.
///
/// # Safety
/// `tc` is live; its `ssl` is NULL or live.
pub unsafe fn shutdown(tc: *mut TcpConn) -> i32 {
    let Some(ssl) = ssl_of(tc) else { return M_C_FINISH };
    TcpConn::clear_wants(tc);
    if !TcpConn::flag(tc, TLS_DONE) {
        return M_C_FINISH;
    }
    loop {
        let r = ssl.shutdown();
        match flush(tc, ssl) {
            M_C_FINISH => {}
            M_C_NOTYET => {
                TcpConn::set_flag(tc, TLS_SHUT, true);
                return M_C_NOTYET;
            }
            other => return other,
        }
        match r {
            Ok(true) => {
                TcpConn::set_flag(tc, TLS_SHUT, true);
                return M_C_FINISH;
            }
            Ok(false) => {
                if TcpConn::nonblock(tc) {
                    TcpConn::set_flag(tc, TLS_WANT_R, true);
                    return M_C_NOTYET;
                }
                match drain(tc, ssl) {
                    M_C_FINISH => {}
                    M_C_CLOSED => {
                        TcpConn::set_flag(tc, TLS_SHUT, true);
                        return M_C_FINISH;
                    }
                    other => return other,
                }
            }
            Err(e) if e.code == Code::COROTLS_WANT_READ => match want_read_step(tc, ssl) {
                None => {}
                Some(M_C_CLOSED) => {
                    TcpConn::set_flag(tc, TLS_SHUT, true);
                    return M_C_FINISH;
                }
                Some(res) => return res,
            },
            Err(e) if e.code == Code::COROTLS_WANT_WRITE => {
                TcpConn::set_flag(tc, TLS_WANT_W, true);
                return M_C_NOTYET;
            }
            Err(_) => return M_C_ERROR,
        }
    }
}
