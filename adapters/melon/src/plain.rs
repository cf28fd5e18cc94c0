//! The plain (non-TLS) send and recv of stock Melon (spec melon.md §3.3,
//! §3.4), with the three upstream send quirks fixed as the spec recommends:
//! FINISH only once the `last_in_chain` buf is completely written, and
//! queued bufs are never dropped.
//!
//! Buf kinds in SEND: a NULL buf or a buf with nothing left moves to SENT;
//! `in_memory` bufs go out with writev (up to 256 at a time), `in_file`
//! bufs with sendfile; a buf that is neither but claims data is EINVAL.

use crate::abi::*;
use crate::host::{self, errno, set_errno};
use crate::queue::{self, M_C_RECV};
use crate::{M_C_CLOSED, M_C_ERROR, M_C_FINISH, M_C_NOTYET};
use libc::{c_void, iovec};
use std::ptr;

const MAX_IOV: usize = 256;
const RECV_MEM_CHUNK: usize = 4096;
const RECV_FILE_CHUNK: usize = 8192;

pub const M_C_TYPE_MEMORY: u32 = 0x1;
pub const M_C_TYPE_FILE: u32 = 0x2;
pub const M_C_TYPE_FOLLOW: u32 = 0x8;

enum Step {
    /// Keep going.
    More,
    /// The `last_in_chain` buf is out.
    Done,
    /// The socket is full (or, blocking, the call should return).
    Wait,
}

/// `mln_tcp_conn_send` on a plain connection.
///
/// # Safety
/// `tc` is a live, initialised connection.
pub unsafe fn send(tc: *mut TcpConn) -> i32 {
    loop {
        // Retire what needs no I/O: NULL bufs and bufs with nothing left.
        // An empty queue (also from the start) is NOTYET.
        loop {
            let c = (*tc).snd_head;
            if c.is_null() {
                return M_C_NOTYET;
            }
            let b = (*c).buf;
            if !b.is_null() && MlnBuf::send_left(b) > 0 {
                break;
            }
            queue::send_head_to_sent(tc);
            if !b.is_null() && MlnBuf::has(b, BUF_LAST_IN_CHAIN) {
                return M_C_FINISH;
            }
        }
        let b = (*(*tc).snd_head).buf;
        let step = if MlnBuf::has(b, BUF_IN_MEMORY) {
            send_memory(tc)
        } else if MlnBuf::has(b, BUF_IN_FILE) {
            send_file(tc, b)
        } else {
            set_errno(libc::EINVAL);
            return M_C_ERROR;
        };
        match step {
            Err(()) => return M_C_ERROR,
            Ok(Step::Done) => return M_C_FINISH,
            Ok(Step::Wait) => return M_C_NOTYET,
            Ok(Step::More) => {}
        }
    }
}

/// One writev of the memory bufs at the head of SEND.
unsafe fn send_memory(tc: *mut TcpConn) -> Result<Step, ()> {
    let mut iov: [iovec; MAX_IOV] = [iovec { iov_base: ptr::null_mut(), iov_len: 0 }; MAX_IOV];
    let mut n_iov = 0;
    let mut c = (*tc).snd_head;
    while !c.is_null() && n_iov < MAX_IOV {
        let b = (*c).buf;
        if !b.is_null() {
            if !MlnBuf::has(b, BUF_IN_MEMORY) {
                break;
            }
            let left = MlnBuf::send_left(b);
            if left > 0 {
                iov[n_iov] = iovec { iov_base: (*b).left_pos as *mut c_void, iov_len: left };
                n_iov += 1;
            }
            if MlnBuf::has(b, BUF_LAST_IN_CHAIN) {
                break;
            }
        }
        c = (*c).next;
    }
    let mut n = loop {
        // SAFETY (caller): every iovec points into a live buf of the queue.
        let n = libc::writev((*tc).sockfd, iov.as_ptr(), n_iov as i32);
        if n > 0 {
            break n as usize;
        }
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n < 0 && errno() == libc::EAGAIN && TcpConn::nonblock(tc) {
            return Ok(Step::Wait);
        }
        return Err(());
    };
    // Account for what went out, in queue order.
    loop {
        let c = (*tc).snd_head;
        if c.is_null() {
            return Ok(Step::More);
        }
        let b = (*c).buf;
        if b.is_null() {
            queue::send_head_to_sent(tc);
            continue;
        }
        if !MlnBuf::has(b, BUF_IN_MEMORY) {
            return Ok(Step::More);
        }
        let left = MlnBuf::send_left(b);
        if n < left {
            (*b).left_pos = (*b).left_pos.add(n);
            return Ok(if TcpConn::nonblock(tc) { Step::More } else { Step::Wait });
        }
        (*b).left_pos = (*b).left_pos.add(left);
        n -= left;
        queue::send_head_to_sent(tc);
        if MlnBuf::has(b, BUF_LAST_IN_CHAIN) {
            return Ok(Step::Done);
        }
    }
}

/// sendfile of the file buf `b` at the head of SEND.
unsafe fn send_file(tc: *mut TcpConn, b: *mut MlnBuf) -> Result<Step, ()> {
    let f = (*b).file;
    if f.is_null() {
        set_errno(libc::EINVAL);
        return Err(());
    }
    loop {
        let left = MlnBuf::left_size(b);
        if left == 0 {
            queue::send_head_to_sent(tc);
            return Ok(if MlnBuf::has(b, BUF_LAST_IN_CHAIN) { Step::Done } else { Step::More });
        }
        let n = libc::sendfile((*tc).sockfd, (*f).fd, &mut (*b).file_left_pos, left.min(1 << 30));
        if n > 0 {
            continue;
        }
        if n == 0 {
            // The file is shorter than the buf says.
            set_errno(libc::EIO);
            return Err(());
        }
        match errno() {
            libc::EINTR => continue,
            libc::EAGAIN if TcpConn::nonblock(tc) => return Ok(Step::Wait),
            _ => return Err(()),
        }
    }
}

/// `mln_tcp_conn_recv` on a plain connection.
///
/// # Safety
/// `tc` is a live, initialised connection.
pub unsafe fn recv(tc: *mut TcpConn, flag: u32) -> i32 {
    if flag & (M_C_TYPE_MEMORY | M_C_TYPE_FILE) == 0 {
        set_errno(libc::EINVAL);
        return M_C_ERROR;
    }
    let nonblock = TcpConn::nonblock(tc);
    loop {
        let n = recv_step(tc, flag);
        if n > 0 {
            if nonblock {
                continue;
            }
            return M_C_NOTYET;
        }
        if n == 0 {
            return M_C_CLOSED;
        }
        match errno() {
            libc::EINTR => continue,
            libc::EAGAIN => return M_C_NOTYET,
            _ => return M_C_ERROR,
        }
    }
}

/// One chain's worth: > 0 bytes queued on RECV, 0 for EOF, < 0 with errno.
unsafe fn recv_step(tc: *mut TcpConn, flag: u32) -> isize {
    let pool = (*tc).pool;
    let c = host::chain_with_buf(pool);
    if c.is_null() {
        set_errno(libc::ENOMEM);
        return -1;
    }
    let b = (*c).buf;
    let n = if flag & M_C_TYPE_FILE != 0 {
        let mut last: *mut MlnBuf = ptr::null_mut();
        if flag & M_C_TYPE_FOLLOW != 0 && !(*tc).rcv_tail.is_null() {
            let t = (*(*tc).rcv_tail).buf;
            if !t.is_null() && MlnBuf::has(t, BUF_IN_FILE) && !(*t).file.is_null() {
                last = t;
            }
        }
        recv_file((*tc).sockfd, pool, b, last)
    } else {
        recv_memory((*tc).sockfd, pool, b)
    };
    if n <= 0 {
        let e = errno();
        host::mln_chain_pool_release(c);
        set_errno(e);
    } else {
        queue::append(tc, c, M_C_RECV);
    }
    n
}

unsafe fn recv_memory(fd: i32, pool: *mut MlnAlloc, b: *mut MlnBuf) -> isize {
    let p = host::alloc(pool, RECV_MEM_CHUNK);
    if p.is_null() {
        set_errno(libc::ENOMEM);
        return -1;
    }
    let n = libc::recv(fd, p as *mut c_void, RECV_MEM_CHUNK, 0);
    if n <= 0 {
        let e = errno();
        host::mln_alloc_free(p as *mut c_void);
        set_errno(e);
        return n;
    }
    MlnBuf::set_received(b, p, n as usize);
    n
}

unsafe fn recv_file(fd: i32, pool: *mut MlnAlloc, b: *mut MlnBuf, last: *mut MlnBuf) -> isize {
    let mut tmp = [0u8; RECV_FILE_CHUNK];
    let n = libc::recv(fd, tmp.as_mut_ptr() as *mut c_void, tmp.len(), 0);
    if n <= 0 {
        return n;
    }
    if last.is_null() {
        let f = host::mln_file_tmp_open(pool);
        if f.is_null() {
            return -1;
        }
        (*b).file = f;
        (*b).file_pos = 0;
    } else {
        (*b).file = (*last).file;
        (*b).file_pos = (*last).file_last;
        (*last).shadow = b;
    }
    (*b).file_left_pos = (*b).file_pos;
    (*b).file_last = (*b).file_pos + n as i64;
    set_bits(&mut (*b).flags, BUF_IN_FILE | BUF_LAST_BUF, true);
    // Write at the buf's own offsets: the file's shared offset is not ours.
    let mut done = 0usize;
    while done < n as usize {
        let w = libc::pwrite(
            (*(*b).file).fd,
            tmp.as_ptr().add(done) as *const c_void,
            n as usize - done,
            (*b).file_pos + done as i64,
        );
        if w > 0 {
            done += w as usize;
        } else if w < 0 && errno() == libc::EINTR {
            continue;
        } else {
            let e = if w == 0 { libc::EIO } else { errno() };
            if !last.is_null() {
                // The file belongs to the earlier buf: unlink it from this
                // one so that releasing this chain leaves it open.
                (*last).shadow = ptr::null_mut();
                (*b).file = ptr::null_mut();
                set_bits(&mut (*b).flags, BUF_IN_FILE, false);
            }
            set_errno(e);
            return -1;
        }
    }
    n
}
