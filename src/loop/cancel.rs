//! `Loop::cancel`: end the operation in flight on an fd without closing
//! the fd, for hosts whose waiting caller went away (a coroutine killed
//! while it waited) while others may still use the connection.
//!
//! Kept apart from the reactor: it only takes the entry's operation and
//! completes it, as `close` does, but leaves the entry open.

use super::entry::{Kind, OpKind, Outcome};
use super::{lock, not_open, op_fd, Loop};
use crate::error::{Code::*, Error, Result};
use std::os::fd::RawFd;

fn cancelled_by_host(what: &str) -> Error {
    Error::new(COROTLS_ERR_CANCELLED, format!("the {what} was cancelled (corotls_loop_cancel)"))
}

impl Loop {
    /// Cancel the operation in flight on `fd`: it completes with
    /// ERR_CANCELLED at the next dispatch (never from inside this call),
    /// and the fd stays open and usable at once.  Nothing is lost:
    ///
    /// - a recv / read consumes nothing: plaintext already received stays
    ///   buffered for the next read;
    /// - a send stops taking new plaintext; ciphertext already produced
    ///   still goes out, in order, before anything sent later (the
    ///   callback's count says how much of the data reached the stream,
    ///   as after a timeout);
    /// - a handshake resumes with the next operation;
    /// - an accept leaves the listener as it was: waiting connections stay
    ///   in the backlog for the next accept;
    /// - a connect is the exception: the connection does not exist yet, so
    ///   its socket is closed and the fd leaves the table (callback fd -1),
    ///   as when a connect times out.
    ///
    /// ERR_ARG when `fd` is not open in this loop, or has no operation in
    /// flight (also when its operation has just completed and its callback
    /// is about to run: that callback then brings the real result).
    pub fn cancel(&self, fd: RawFd) -> Result<()> {
        let sh = &self.sh;
        let slot = sh.slot(fd)?;
        let mut e = lock(&slot.st);
        if e.closed {
            return Err(not_open(fd));
        }
        let Some(op) = e.take_op() else {
            return Err(Error::arg(format!("fd {fd} has no operation in flight")));
        };
        let what = op.kind.name();
        let connect = matches!(op.kind, OpKind::Connect { .. });
        let out = match (&op.kind, &mut e.kind) {
            (OpKind::Send { done, before, .. }, Kind::Conn(c)) => {
                let committed = before + done + c.conn.abandon_write();
                Outcome::err(fd, cancelled_by_host(what)).with_count(committed)
            }
            (OpKind::Sendfile(st), Kind::Conn(c)) => {
                let committed = st.sent as usize + c.conn.abandon_write();
                Outcome::err(fd, cancelled_by_host(what)).with_count(committed)
            }
            (kind, _) => Outcome::err(op_fd(kind, fd), cancelled_by_host(what)),
        };
        let mut done = Vec::new();
        sh.finish(&mut e, op, out, &mut done);
        if connect {
            sh.discard(&slot, &mut e);
        } else {
            sh.rearm(&slot, &mut e);
        }
        drop(e);
        sh.enqueue(done);
        Ok(())
    }
}
