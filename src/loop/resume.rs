//! Resumption facts of a loop connection.  Clients made by `connect` use
//! their conf's session cache on their own (keyed by the host given to
//! connect, the port, the SNI and the name verified: see `connect.rs`).

// Part of the loop module: these are methods of its private types.
use super::*;

impl Loop {
    /// Whether `fd`'s handshake resumed a session (false before it ends).
    pub fn resumed(&self, fd: RawFd) -> Result<bool> {
        self.sh.with_conn(fd, |_, c| Ok(c.conn.session().resumed()))
    }
}
