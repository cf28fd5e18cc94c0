//! A session bound to a non-blocking socket.  Moves ciphertext between the
//! session's FIFO BIOs and the fd (`recv` straight into the input FIFO,
//! `send` straight from the output FIFO); knows nothing of event loops.
//! The system calls themselves, their errno rules and the drain cap are in
//! `socket`, shared with the Melon face.
//!
//! Calls return WANT_READ / WANT_WRITE to say what to wait for; the caller
//! repeats the same call (libtls style).  Ciphertext the socket did not take
//! stays in the session's output FIFO, in order, and goes out before
//! anything else, also when the caller gives up on an operation
//! (`abandon_write`).

use crate::conf::{Conf, Role};
use crate::error::{Code::*, Error, Result};
use crate::net::{check_stream_socket, set_nonblocking};
use crate::session::Session;
use std::os::fd::RawFd;

mod close;
pub mod sendfile;
pub mod socket;
use socket::{Io, MAX_FILL};

/// Plaintext encrypted per step of `write`: four full records, sent with one
/// `send` when the socket has room.
const WRITE_CHUNK: usize = 64 * 1024;
/// Ciphertext read per `recv`.
const RECV_CHUNK: usize = 64 * 1024;
/// Ciphertext read per `recv` before a server's handshake starts: a
/// ClientHello is a few hundred bytes (the FIFO grows for a larger one).
const HELLO_CHUNK: usize = 2048;

pub struct Conn {
    session: Session,
    fd: RawFd,
    /// Plaintext bytes of the caller's current write that are encrypted but
    /// whose ciphertext has not all left (see `write`).
    inflight: usize,
    /// Ciphertext bytes received from and sent to the socket so far.
    moved: u64,
}

/// One `send` of `data`; a full socket (or a send that took nothing) is
/// WANT_WRITE.
fn send_some(fd: RawFd, data: &[u8]) -> Result<usize> {
    match socket::send(fd, data) {
        Io::Done(0) => Err(Error::want_write()),
        io => io.result("send"),
    }
}

// What tests count: `recv` calls per fd on this thread.
#[cfg(test)]
pub(crate) use socket::recv_calls;

impl Conn {
    /// Bind a new session to `fd`, which is switched to non-blocking mode.
    /// The fd stays the caller's: `Conn` never closes it.
    pub fn new(conf: &Conf, fd: RawFd) -> Result<Conn> {
        if fd < 0 {
            return Err(Error::arg("invalid file descriptor"));
        }
        check_stream_socket(fd)?;
        set_nonblocking(fd)?;
        Ok(Conn { session: Session::new(conf)?, fd, inflight: 0, moved: 0 })
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }
    pub fn session(&self) -> &Session {
        &self.session
    }
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Ciphertext produced but not yet accepted by the socket.
    pub fn unsent(&self) -> usize {
        self.session.out_pending()
    }

    /// Bytes received from and sent to the socket so far (ciphertext): it
    /// changes whenever the connection makes any progress on the wire.
    pub fn moved(&self) -> u64 {
        self.moved
    }

    /// Record a failure on the session (for its last-error message).
    fn fail(&mut self, e: Error) -> Error {
        self.session.fail(e)
    }

    /// Send pending ciphertext, oldest first, in as few `send`s as possible.
    pub fn flush(&mut self) -> Result<()> {
        let fd = self.fd;
        loop {
            match self.session.out_with(|data| send_some(fd, data)) {
                Ok(0) => return Ok(()),
                Ok(n) => self.moved += n as u64,
                Err(e) if e.is_want() => return Err(e),
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    /// Move ciphertext from the socket into the session until the socket is
    /// drained (a short read or EAGAIN), it reports EOF, or `max` bytes
    /// were taken.  Returns the number of bytes taken.
    fn fill(&mut self, max: usize) -> Result<usize> {
        if self.session.eof() {
            return Ok(0);
        }
        let fd = self.fd;
        let mut total = 0;
        while total < max {
            let want = RECV_CHUNK.min(max - total);
            match self.session.feed_with(want, |room| socket::recv(fd, room).result("recv")) {
                Ok(0) => {
                    self.session.feed_eof();
                    break;
                }
                Ok(n) => {
                    total += n;
                    self.moved += n as u64;
                    if n < want {
                        break;
                    }
                }
                Err(e) if e.code == COROTLS_WANT_READ => break,
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(total)
    }

    /// Complete the handshake.  OK when done (and its last flight is on the
    /// wire); WANT_READ / WANT_WRITE to wait; EOF if the peer vanished.
    pub fn handshake(&mut self) -> Result<()> {
        // A server's first step needs the peer's ClientHello.  OpenSSL is
        // not started before a whole first record of it has come: its first
        // step allocates the record and handshake buffers (some 40 KiB),
        // which a peer that connects and sends nothing, or part of a hello,
        // should not cost; the FIFO takes it in small steps meanwhile.
        let server = self.session.role() == Role::Server;
        while server && !self.session.started() && !self.session.first_record_complete() {
            if self.fill(HELLO_CHUNK)? == 0 {
                if self.session.eof() {
                    break;
                }
                return Err(Error::want_read());
            }
        }
        loop {
            let step = self.session.handshake();
            // Whatever the step produced (a flight, or an alert) goes out
            // before we decide what to wait for.
            let flushed = self.flush();
            match step {
                Ok(()) => return flushed,
                Err(e) if e.code == COROTLS_WANT_READ => {
                    flushed?;
                    if self.fill(MAX_FILL)? == 0 && !self.session.eof() {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Read plaintext into `buf`.  OK with a count > 0, or WANT_READ /
    /// WANT_WRITE, CLOSED (close_notify), EOF (no close_notify), an error.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if !self.session.handshake_done() {
            self.handshake()?;
        }
        // With nothing buffered, SSL_read could only fail asking for input
        // (a whole failed call, some 700 instructions): receive first.
        let mut drained = false;
        if !self.session.has_input() {
            drained = self.fill(MAX_FILL)? == 0;
        }
        loop {
            match self.session.read(buf) {
                Ok(n) => {
                    // Post-handshake messages (ticket, key update) ride along;
                    // a failure here shows up on the next call.
                    let _ = self.flush();
                    return Ok(n);
                }
                Err(e) if e.code == COROTLS_WANT_READ => {
                    if (drained || self.fill(MAX_FILL)? == 0) && !self.session.eof() {
                        self.flush()?;
                        return Err(e);
                    }
                    drained = false;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Take up to `max` bytes of ciphertext from the socket (fewer when it
    /// is drained or reports EOF) and decrypt all the session can into its
    /// plaintext buffer (`session().plain()`, `session_mut().consume()`).
    /// Drives the handshake first (its WANT_* and errors are returned).
    ///
    /// Ok with the number of buffered plaintext bytes, also when the stream
    /// has ended (`session().starved()` tells how).  Buffered data comes
    /// before a failure: an error is returned only when nothing is
    /// buffered; a broken socket then reads as EOF after the data, and a
    /// TLS error stays latched in the session.  Post-handshake messages
    /// (tickets, key updates) are flushed as a side effect; what the socket
    /// does not take stays in `unsent()`.
    pub fn pull(&mut self, max: usize) -> Result<usize> {
        if !self.session.handshake_done() {
            self.handshake()?;
        }
        let filled = self.fill(max.max(1));
        let decrypted = self.session.fill_plain();
        let n = self.session.plain().len();
        if n == 0 {
            filled?;
            decrypted?;
        } else if filled.is_err() {
            self.session.feed_eof();
        }
        if self.unsent() > 0 {
            let _ = self.flush();
        }
        Ok(n)
    }

    /// Encrypt and send from `buf`.  Returns how many plaintext bytes are
    /// now on the wire.  WANT_WRITE (or a count short of `buf.len()`) means:
    /// wait for writability and call again with the rest of the same data;
    /// up to 64 KiB of it may already be encrypted and are then not
    /// encrypted again.
    pub fn write(&mut self, buf: &[u8]) -> Result<usize> {
        // Checked before the handshake: a conn closed before it must not
        // start one only to refuse the data.
        if self.session.shutdown_sent() {
            return Err(self.session.fail(Error::state("write after shutdown")));
        }
        if !self.session.handshake_done() {
            self.handshake()?;
        }
        self.flush()?;
        // The previous call's encrypted tail has just gone out.
        let mut done = std::mem::take(&mut self.inflight).min(buf.len());
        while done < buf.len() {
            let chunk = &buf[done..buf.len().min(done + WRITE_CHUNK)];
            let n = self.session.write(chunk)?;
            match self.flush() {
                Ok(()) => done += n,
                Err(e) if e.code == COROTLS_WANT_WRITE => {
                    self.inflight = n;
                    return if done > 0 { Ok(done) } else { Err(e) };
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Give up on the current write: bytes already encrypted stay queued
    /// and are sent first by whatever call comes next.  Returns their count.
    pub fn abandon_write(&mut self) -> usize {
        std::mem::take(&mut self.inflight)
    }

    /// Send close_notify.  OK once it is on the wire (the peer's is not
    /// awaited: `session().peer_closed()` tells whether it came).
    pub fn shutdown(&mut self) -> Result<()> {
        self.session.shutdown()?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{ConfBuilder, Identity, Role};
    use crate::testutil::cert;

    fn pair() -> (Conn, Conn) {
        let mut sb = ConfBuilder::new(Role::Server);
        sb.add_identity(Identity::from_files(&cert("leaf.crt"), &cert("leaf.key"), None).unwrap()).unwrap();
        let mut cb = ConfBuilder::new(Role::Client);
        cb.add_ca_file(&cert("ca.crt")).unwrap();
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors.
        assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) }, 0);
        let mut c = Conn::new(&cb.build().unwrap(), fds[0]).unwrap();
        c.session_mut().set_sni(b"localhost").unwrap();
        let mut s = Conn::new(&sb.build().unwrap(), fds[1]).unwrap();
        for _ in 0..100 {
            let rc = c.handshake();
            let rs = s.handshake();
            if rc.is_ok() && rs.is_ok() {
                return (c, s);
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn pull_takes_at_most_max_and_keeps_data_before_the_end() {
        let (mut c, mut s) = pair();
        let data: Vec<u8> = (0..100_000).map(|i| (i % 253) as u8).collect();
        assert_eq!(c.write(&data).unwrap(), data.len());
        // One pull of 20 KiB of ciphertext yields at most that much text.
        let n = s.pull(20 * 1024).unwrap();
        assert!(n > 0 && n <= 20 * 1024, "{n}");
        let mut got = s.session().plain().to_vec();
        s.session_mut().consume(n);
        // The peer closes cleanly: the rest of the data still comes first.
        c.shutdown().unwrap();
        // (Unread tickets at close would make the kernel reset the stream.)
        crate::net::discard_input(c.fd(), 1 << 20);
        crate::net::close_fd(c.fd());
        loop {
            let n = s.pull(1 << 20).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(s.session().plain());
            s.session_mut().consume(n);
        }
        assert_eq!(got, data);
        assert_eq!(s.session().starved().code, COROTLS_CLOSED);
        crate::net::close_fd(s.fd());
    }

    #[test]
    fn pull_reports_want_read_and_eof() {
        let (c, mut s) = pair();
        assert_eq!(s.pull(1 << 20).unwrap(), 0);
        assert_eq!(s.session().starved().code, COROTLS_WANT_READ);
        crate::net::discard_input(c.fd(), 1 << 20);
        crate::net::close_fd(c.fd());
        assert_eq!(s.pull(1 << 20).unwrap(), 0);
        assert_eq!(s.session().starved().code, COROTLS_EOF);
        crate::net::close_fd(s.fd());
    }
}
