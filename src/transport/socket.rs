//! The socket pump's primitives: the one place where corotls moves bytes
//! through a file descriptor and reads errno.  `transport::Conn` and the
//! Melon face (TLS and plain paths alike) both use them.
//!
//! Every call retries EINTR and reports EAGAIN as `Io::Want` (what to wait
//! for).  Nothing here allocates: a caller on the data path pays for an
//! error message only if it wants one (`Io::result`).  Any other failure is
//! `Io::Failed` with its errno, which is also still in errno for C callers
//! that read it.  Blocking fds block in the kernel as usual.

use crate::error::{Code, Error, Result};
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

/// The drain cap: ciphertext taken from a socket per call before it is
/// decrypted.  "Until EAGAIN" is bounded so that a fast peer cannot grow
/// memory without limit; the socket stays readable and the caller comes
/// back.
pub const MAX_FILL: usize = 1024 * 1024;

/// What one call came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// This many bytes moved.  0 from `recv` is the peer's EOF; 0 from a
    /// send of a non-empty buffer moved nothing (callers decide what that
    /// means to them).
    Done(usize),
    /// EAGAIN: wait until the fd is ready for this (`COROTLS_WANT_READ` or
    /// `COROTLS_WANT_WRITE`) and call again.
    Want(Code),
    /// Any other failure, with its errno.
    Failed(i32),
}

impl Io {
    /// As the engine's `Result`: `Want` is WANT_READ / WANT_WRITE, `Failed`
    /// an I/O error (`what: <errno text>`).
    pub fn result(self, what: &str) -> Result<usize> {
        match self {
            Io::Done(n) => Ok(n),
            Io::Want(Code::COROTLS_WANT_WRITE) => Err(Error::want_write()),
            Io::Want(_) => Err(Error::want_read()),
            Io::Failed(e) => Err(Error::os(what, std::io::Error::from_raw_os_error(e))),
        }
    }
}

/// The one EINTR / EAGAIN rule: run `call` (a system call that returns a
/// count, or -1 with errno) again while it fails with EINTR; EAGAIN is
/// `Want(want)`.  Also what the Melon face uses for the regular-file reads
/// and writes that feed its sockets (where EAGAIN does not occur).
pub fn retry(want: Code, mut call: impl FnMut() -> isize) -> Io {
    loop {
        let n = call();
        if n >= 0 {
            return Io::Done(n as usize);
        }
        // EWOULDBLOCK is EAGAIN on every platform corotls builds for.
        match std::io::Error::last_os_error().raw_os_error().unwrap_or(0) {
            libc::EINTR => continue,
            libc::EAGAIN => return Io::Want(want),
            e => return Io::Failed(e),
        }
    }
}

/// One `send` of `data`.  MSG_NOSIGNAL: a vanished peer is EPIPE, never a
/// SIGPIPE that would kill a host that does not ignore it.
pub fn send(fd: RawFd, data: &[u8]) -> Io {
    retry(Code::COROTLS_WANT_WRITE, || {
        // SAFETY: data is valid for reads of its length.
        unsafe { libc::send(fd, data.as_ptr() as *const libc::c_void, data.len(), libc::MSG_NOSIGNAL) }
    })
}

/// One `writev` of `bufs` (at most IOV_MAX of them).  Unlike `send` it works
/// on any fd and takes no flags: the Melon plain path, which is stock
/// Melon's, keeps writev's behaviour.
pub fn writev(fd: RawFd, bufs: &[IoSlice<'_>]) -> Io {
    let count = bufs.len().min(libc::c_int::MAX as usize) as libc::c_int;
    retry(Code::COROTLS_WANT_WRITE, || {
        // SAFETY: IoSlice is ABI-compatible with iovec, and every slice is
        // valid for reads of its length.
        unsafe { libc::writev(fd, bufs.as_ptr() as *const libc::iovec, count) }
    })
}

/// One `sendfile` of up to `count` bytes of `file` from `*offset` (which
/// advances by what was sent; the file's own offset does not move).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn sendfile(fd: RawFd, file: RawFd, offset: &mut libc::off_t, count: usize) -> Io {
    retry(Code::COROTLS_WANT_WRITE, || {
        // SAFETY: offset is a valid, exclusive reference for the call.
        unsafe { libc::sendfile(fd, file, offset, count) }
    })
}

/// `sendfile` where Linux's is missing: one `pread` of at most 16 KiB, then
/// one `send` of it (what the socket did not take is read again next
/// time, from the unadvanced offset).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn sendfile(fd: RawFd, file: RawFd, offset: &mut libc::off_t, count: usize) -> Io {
    let mut buf = [0u8; 16 * 1024];
    let want = count.min(buf.len());
    let read = retry(Code::COROTLS_WANT_WRITE, || {
        // SAFETY: buf is valid for writes of `want` bytes.
        unsafe { libc::pread(file, buf.as_mut_ptr() as *mut libc::c_void, want, *offset) }
    });
    match read {
        Io::Done(0) => Io::Done(0),
        Io::Done(n) => {
            let sent = send(fd, &buf[..n]);
            if let Io::Done(k) = sent {
                *offset += k as libc::off_t;
            }
            sent
        }
        other => other,
    }
}

#[cfg(test)]
thread_local! {
    /// `recv` calls this thread made, per fd: what tests count.
    static RECVS: std::cell::RefCell<std::collections::HashMap<RawFd, usize>> = Default::default();
}

/// How many `recv` calls this thread has made on `fd`.
#[cfg(test)]
pub(crate) fn recv_calls(fd: RawFd) -> usize {
    RECVS.with(|r| r.borrow().get(&fd).copied().unwrap_or(0))
}

/// One `recv` into `room` (flags 0: a blocking fd blocks).  `Done(0)` is EOF.
pub fn recv(fd: RawFd, room: &mut [MaybeUninit<u8>]) -> Io {
    #[cfg(test)]
    RECVS.with(|r| *r.borrow_mut().entry(fd).or_default() += 1);
    retry(Code::COROTLS_WANT_READ, || {
        // SAFETY: room is valid for writes of its length; recv initialises
        // the bytes it reports.
        unsafe { libc::recv(fd, room.as_mut_ptr() as *mut libc::c_void, room.len(), 0) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> [RawFd; 2] {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors.
        assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) }, 0);
        crate::net::set_nonblocking(fds[0]).unwrap();
        crate::net::set_nonblocking(fds[1]).unwrap();
        fds
    }

    #[test]
    fn send_recv_eagain_and_eof() {
        let [a, b] = pair();
        let mut room = [MaybeUninit::<u8>::uninit(); 16];
        assert_eq!(recv(b, &mut room), Io::Want(Code::COROTLS_WANT_READ));
        assert_eq!(recv(b, &mut room).result("recv").unwrap_err().code, Code::COROTLS_WANT_READ);
        assert_eq!(send(a, b"hello"), Io::Done(5));
        assert_eq!(writev(a, &[IoSlice::new(b" "), IoSlice::new(b"world")]), Io::Done(6));
        assert_eq!(recv(b, &mut room), Io::Done(11));
        // SAFETY: recv initialised the first 11 bytes.
        let got: Vec<u8> = room[..11].iter().map(|b| unsafe { b.assume_init() }).collect();
        assert_eq!(got, b"hello world");
        // Fill the socket until it pushes back.
        let big = vec![7u8; 64 * 1024];
        let full = loop {
            match send(a, &big) {
                Io::Done(_) => continue,
                other => break other,
            }
        };
        assert_eq!(full, Io::Want(Code::COROTLS_WANT_WRITE));
        assert_eq!(full.result("send").unwrap_err().code, Code::COROTLS_WANT_WRITE);
        crate::net::close_fd(a);
        while let Io::Done(n) = recv(b, &mut room) {
            if n == 0 {
                break;
            }
        }
        assert_eq!(recv(b, &mut room), Io::Done(0), "EOF");
        crate::net::close_fd(b);
    }

    #[test]
    fn a_broken_pipe_is_an_error_not_a_signal() {
        let [a, b] = pair();
        crate::net::close_fd(b);
        assert_eq!(send(a, b"x"), Io::Failed(libc::EPIPE));
        let e = send(a, b"x").result("send").unwrap_err();
        assert_eq!(e.code, Code::COROTLS_ERR_IO);
        assert!(e.msg.starts_with("send: "), "{}", e.msg);
        assert_eq!(recv(-1, &mut [MaybeUninit::uninit(); 4]), Io::Failed(libc::EBADF));
        crate::net::close_fd(a);
    }
}
