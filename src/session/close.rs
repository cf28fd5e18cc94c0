//! Where a session is in closing: close_notify sent, received, both.

use super::Session;

/// Our close_notify is queued (session) or on the wire (conn, loop).
pub const SHUTDOWN_SENT: u32 = 1;
/// The peer's close_notify has been read.
pub const SHUTDOWN_RECEIVED: u32 = 2;

impl Session {
    /// SHUTDOWN_SENT (queued: the host sends what `out_read` gives) and
    /// SHUTDOWN_RECEIVED, or'ed; 0 while neither.
    pub fn shutdown_state(&self) -> u32 {
        let mut s = 0;
        if self.shutdown_sent() {
            s |= SHUTDOWN_SENT;
        }
        if self.peer_closed() {
            s |= SHUTDOWN_RECEIVED;
        }
        s
    }
}
