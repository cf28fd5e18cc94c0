//! Closing a conn: where it stands (close_notify sent / received), and a
//! two-way close that sends ours and waits for the peer's.

use super::socket::MAX_FILL;
use super::Conn;
use crate::error::{Code::*, Result};
use crate::session::close::{SHUTDOWN_RECEIVED, SHUTDOWN_SENT};

impl Conn {
    /// SHUTDOWN_SENT once our close_notify is on the wire (queued is not
    /// enough: it may wait for the socket), SHUTDOWN_RECEIVED once the
    /// peer's has been read; or'ed.
    pub fn shutdown_state(&self) -> u32 {
        let mut s = self.session.shutdown_state() & SHUTDOWN_RECEIVED;
        if self.session.shutdown_sent() && self.unsent() == 0 {
            s |= SHUTDOWN_SENT;
        }
        s
    }

    /// Two-way close: queue and send our close_notify, then read (and
    /// discard) what the peer sends until its close_notify.  Ok once both
    /// are done; WANT_WRITE while ours waits for the socket; WANT_READ
    /// while we wait for the peer's; EOF if the transport ends without it.
    /// Before the handshake there is nothing to close: Ok.
    pub fn close(&mut self) -> Result<()> {
        self.session.shutdown()?;
        self.flush()?;
        if !self.session.handshake_done() {
            return Ok(());
        }
        loop {
            if self.session.peer_closed() {
                return Ok(());
            }
            let before = self.moved;
            self.pull(MAX_FILL)?;
            let n = self.session.plain().len();
            self.session.consume(n);
            let end = self.session.starved();
            match end.code {
                COROTLS_CLOSED => return Ok(()),
                COROTLS_WANT_READ if self.moved != before => continue,
                _ => return Err(end),
            }
        }
    }
}
