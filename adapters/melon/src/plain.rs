//! The plain (non-TLS) send and recv of stock Melon (spec melon.md §3.3,
//! §3.4), with the three upstream send quirks fixed as the spec recommends:
//! FINISH only once the `last_in_chain` buf is completely written, and
//! queued bufs are never dropped.
//!
//! Buf kinds in SEND: a NULL buf or a buf with nothing left moves to SENT;
//! `in_memory` bufs go out with writev (up to 256 at a time), `in_file`
//! bufs with sendfile; a buf that is neither but claims data is EINVAL.
//!
//! The system calls go through the engine's pump (`transport::socket`):
//! interrupted calls are retried there, and a full or empty socket comes
//! back as `Io::Want`.

use crate::abi::*;
use crate::host::{self, errno, set_errno};
use crate::queue::{self, M_C_RECV};
use crate::{M_C_CLOSED, M_C_ERROR, M_C_FINISH, M_C_NOTYET};
use corotls::transport::socket::{self, Io};
use corotls::Code;
use libc::c_void;
use std::io::IoSlice;
use std::mem::MaybeUninit;
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
    let mut iov = [IoSlice::new(&[]); MAX_IOV];
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
                // SAFETY (caller): left_pos..left_pos+left lies in the live
                // buf (send_left keeps it within `last`).
                iov[n_iov] = IoSlice::new(std::slice::from_raw_parts((*b).left_pos, left));
                n_iov += 1;
            }
            if MlnBuf::has(b, BUF_LAST_IN_CHAIN) {
                break;
            }
        }
        c = (*c).next;
    }
    let mut n = match socket::writev((*tc).sockfd, &iov[..n_iov]) {
        Io::Done(n) if n > 0 => n,
        Io::Want(_) if TcpConn::nonblock(tc) => return Ok(Step::Wait),
        // errno is the writev's own (a blocking socket's timeout included).
        _ => return Err(()),
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
        match socket::sendfile((*tc).sockfd, (*f).fd, &mut (*b).file_left_pos, left.min(1 << 30)) {
            Io::Done(0) => {
                // The file is shorter than the buf says.
                set_errno(libc::EIO);
                return Err(());
            }
            Io::Done(_) => {}
            Io::Want(_) if TcpConn::nonblock(tc) => return Ok(Step::Wait),
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
        match recv_step(tc, flag) {
            Io::Done(0) => return M_C_CLOSED,
            Io::Done(_) if nonblock => continue,
            Io::Done(_) | Io::Want(_) => return M_C_NOTYET,
            // errno is the failure's own.
            Io::Failed(_) => return M_C_ERROR,
        }
    }
}

/// One chain's worth: `Done(n > 0)` bytes queued on RECV, `Done(0)` for EOF,
/// `Want` for an empty socket, `Failed` with errno set.
unsafe fn recv_step(tc: *mut TcpConn, flag: u32) -> Io {
    let pool = (*tc).pool;
    let c = host::chain_with_buf(pool);
    if c.is_null() {
        set_errno(libc::ENOMEM);
        return Io::Failed(libc::ENOMEM);
    }
    let b = (*c).buf;
    let io = if flag & M_C_TYPE_FILE != 0 {
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
    match io {
        Io::Done(n) if n > 0 => queue::append(tc, c, M_C_RECV),
        _ => {
            let e = errno();
            host::mln_chain_pool_release(c);
            set_errno(e);
        }
    }
    io
}

unsafe fn recv_memory(fd: i32, pool: *mut MlnAlloc, b: *mut MlnBuf) -> Io {
    let p = host::alloc(pool, RECV_MEM_CHUNK);
    if p.is_null() {
        set_errno(libc::ENOMEM);
        return Io::Failed(libc::ENOMEM);
    }
    // SAFETY: p is a fresh pool block of RECV_MEM_CHUNK bytes; recv writes
    // only initialised bytes.
    let room = std::slice::from_raw_parts_mut(p as *mut MaybeUninit<u8>, RECV_MEM_CHUNK);
    let io = socket::recv(fd, room);
    match io {
        Io::Done(n) if n > 0 => MlnBuf::set_received(b, p, n),
        _ => {
            let e = errno();
            host::mln_alloc_free(p as *mut c_void);
            set_errno(e);
        }
    }
    io
}

unsafe fn recv_file(fd: i32, pool: *mut MlnAlloc, b: *mut MlnBuf, last: *mut MlnBuf) -> Io {
    let mut tmp = [MaybeUninit::<u8>::uninit(); RECV_FILE_CHUNK];
    let n = match socket::recv(fd, &mut tmp) {
        Io::Done(n) if n > 0 => n,
        other => return other,
    };
    if last.is_null() {
        let f = host::mln_file_tmp_open(pool);
        if f.is_null() {
            return Io::Failed(errno());
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
    while done < n {
        let file = (*(*b).file).fd;
        // SAFETY: recv initialised tmp[..n], and done < n.
        let data = tmp.as_ptr().add(done) as *const c_void;
        let at = (*b).file_pos + done as i64;
        let e = match socket::retry(Code::COROTLS_WANT_WRITE, || libc::pwrite(file, data, n - done, at)) {
            Io::Done(0) => libc::EIO,
            Io::Done(w) => {
                done += w;
                continue;
            }
            Io::Want(_) => errno(),
            Io::Failed(e) => e,
        };
        if !last.is_null() {
            // The file belongs to the earlier buf: unlink it from this
            // one so that releasing this chain leaves it open.
            (*last).shadow = ptr::null_mut();
            (*b).file = ptr::null_mut();
            set_bits(&mut (*b).flags, BUF_IN_FILE, false);
        }
        set_errno(e);
        return Io::Failed(e);
    }
    Io::Done(n)
}
