//! Queries about a connection's peer certificate and kernel TLS.

// Part of the loop module: these are methods of its private types.
use super::*;
use crate::session::ktls::KtlsStatus;
use crate::session::peer::{PeerField, PeerVerify};

impl Loop {
    /// A fact about the peer's certificate ("" when it sent none).
    pub fn peer_field(&self, fd: RawFd, f: PeerField) -> Result<String> {
        self.sh.with_conn(fd, |_, c| Ok(c.conn.session().peer_field(f)))
    }

    /// Whether the peer sent a certificate, and the verdict.
    pub fn peer_verify(&self, fd: RawFd) -> Result<PeerVerify> {
        self.sh.with_conn(fd, |_, c| Ok(c.conn.session().peer_verify()))
    }

    /// Whether kernel TLS carries the connection's records.
    pub fn ktls(&self, fd: RawFd) -> Result<KtlsStatus> {
        self.sh.with_conn(fd, |_, c| Ok(c.conn.session().ktls_status()))
    }
}
