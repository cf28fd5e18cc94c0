//! Half-close: an operation that sends our close_notify and leaves the
//! connection readable (recv goes on until the peer's close_notify:
//! CLOSED), and where a connection stands in closing.

// Part of the loop module: these are methods of its private types.
use super::*;

impl ConnEntry {
    /// Queue our close_notify (once) and send it; Pending after noting
    /// what to wait for.
    pub(super) fn try_shutdown(&mut self) -> Poll<Result<()>> {
        match self.conn.shutdown() {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) if e.is_want() => {
                self.want = Interest::WRITE;
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Loop {
    /// Send close_notify on `fd` (driving nothing else; before the
    /// handshake nothing is sent).  Ok once it is on the wire.  Sends are
    /// refused afterwards; recv goes on until the peer's close_notify.
    pub fn half_close(&self, fd: RawFd, timeout: Option<Duration>, cb: Callback) -> Result<Ready<()>> {
        let sh = &self.sh;
        sh.start(fd, |slot, e| {
            let c = conn_of(e, fd)?;
            match c.try_shutdown() {
                Poll::Ready(r) => r.map(Ready::Now),
                Poll::Pending => sh.park(slot, e, OpKind::Shutdown, timeout, cb).map(|_| Ready::Pending),
            }
        })
    }

    /// SHUTDOWN_SENT (our close_notify is on the wire) | SHUTDOWN_RECEIVED
    /// (the peer's was read), as for a conn.
    pub fn shutdown_state(&self, fd: RawFd) -> Result<u32> {
        self.sh.with_conn(fd, |_, c| Ok(c.conn.shutdown_state()))
    }
}
