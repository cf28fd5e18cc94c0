//! One result vocabulary for the whole library.
//!
//! `Code` is the C enum `corotls_result`.  Engine functions return
//! `Result<T, Error>`; an `Error` carries a `Code` (the non-error statuses
//! WANT_READ, WANT_WRITE, CLOSED, EOF, ... travel the same way, like
//! `io::ErrorKind::WouldBlock` does) plus a human-readable message.

use std::fmt;

/// Result of every corotls call.  Values below zero are errors.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The call did what it says.
    COROTLS_OK = 0,
    /// Wait until the socket is readable, then repeat the same call.
    COROTLS_WANT_READ = 1,
    /// Wait until the socket is writable, then repeat the same call.
    COROTLS_WANT_WRITE = 2,
    /// The operation was started; its completion callback runs later.
    COROTLS_PENDING = 3,
    /// Another operation is in flight on this object; nothing was done.
    COROTLS_BUSY = 4,
    /// The operation's timeout expired.
    COROTLS_TIMEOUT = 5,
    /// The peer closed the TLS stream cleanly (close_notify received).
    COROTLS_CLOSED = 6,
    /// The transport ended without close_notify (peer vanished/truncation).
    COROTLS_EOF = 7,
    /// Bad argument: NULL pointer, wrong role, bad file, bad PEM, bad list...
    COROTLS_ERR_ARG = -1,
    /// Out of memory.
    COROTLS_ERR_NOMEM = -2,
    /// Socket error (errno text in the message).
    COROTLS_ERR_IO = -3,
    /// TLS protocol error (OpenSSL reason in the message).
    COROTLS_ERR_TLS = -4,
    /// The peer's certificate failed verification (reason in the message).
    COROTLS_ERR_VERIFY = -5,
    /// The operation was cancelled (its object was closed meanwhile).
    COROTLS_ERR_CANCELLED = -6,
}

pub use Code::*;

impl Code {
    /// Stable name of the value, without the `COROTLS_` prefix.
    pub fn name(self) -> &'static str {
        match self {
            COROTLS_OK => "OK",
            COROTLS_WANT_READ => "WANT_READ",
            COROTLS_WANT_WRITE => "WANT_WRITE",
            COROTLS_PENDING => "PENDING",
            COROTLS_BUSY => "BUSY",
            COROTLS_TIMEOUT => "TIMEOUT",
            COROTLS_CLOSED => "CLOSED",
            COROTLS_EOF => "EOF",
            COROTLS_ERR_ARG => "ERR_ARG",
            COROTLS_ERR_NOMEM => "ERR_NOMEM",
            COROTLS_ERR_IO => "ERR_IO",
            COROTLS_ERR_TLS => "ERR_TLS",
            COROTLS_ERR_VERIFY => "ERR_VERIFY",
            COROTLS_ERR_CANCELLED => "ERR_CANCELLED",
        }
    }

    /// Every value, for tables and tests.
    pub fn all() -> &'static [Code] {
        &ALL_CODES
    }

    pub fn from_i32(v: i32) -> Option<Code> {
        ALL_CODES.iter().copied().find(|c| *c as i32 == v)
    }

    /// True for the error kinds (the values below zero).
    pub fn is_error(self) -> bool {
        (self as i32) < 0
    }
}

static ALL_CODES: [Code; 14] = [
    COROTLS_OK,
    COROTLS_WANT_READ,
    COROTLS_WANT_WRITE,
    COROTLS_PENDING,
    COROTLS_BUSY,
    COROTLS_TIMEOUT,
    COROTLS_CLOSED,
    COROTLS_EOF,
    COROTLS_ERR_ARG,
    COROTLS_ERR_NOMEM,
    COROTLS_ERR_IO,
    COROTLS_ERR_TLS,
    COROTLS_ERR_VERIFY,
    COROTLS_ERR_CANCELLED,
];

/// A status other than plain success, with the detail a person needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub msg: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: Code, msg: impl Into<String>) -> Error {
        Error { code, msg: msg.into() }
    }
    pub fn arg(msg: impl Into<String>) -> Error {
        Error::new(COROTLS_ERR_ARG, msg)
    }
    pub fn tls(msg: impl Into<String>) -> Error {
        Error::new(COROTLS_ERR_TLS, msg)
    }
    pub fn want_read() -> Error {
        Error::new(COROTLS_WANT_READ, "waiting for the socket to be readable")
    }
    pub fn want_write() -> Error {
        Error::new(COROTLS_WANT_WRITE, "waiting for the socket to be writable")
    }
    pub fn closed() -> Error {
        Error::new(COROTLS_CLOSED, "the peer closed the TLS stream (close_notify)")
    }
    pub fn eof() -> Error {
        Error::new(COROTLS_EOF, "the connection ended without close_notify")
    }
    pub fn nomem() -> Error {
        Error::new(COROTLS_ERR_NOMEM, "out of memory")
    }
    /// The calling thread's errno, with `what` as context.
    pub fn last_os(what: &str) -> Error {
        Error::os(what, std::io::Error::last_os_error())
    }
    pub fn os(what: &str, e: std::io::Error) -> Error {
        let code = match e.raw_os_error() {
            Some(libc::ENOMEM) => COROTLS_ERR_NOMEM,
            _ => COROTLS_ERR_IO,
        };
        Error::new(code, format!("{what}: {e}"))
    }
    /// True when the status is a "wait and retry" rather than an outcome.
    pub fn is_want(&self) -> bool {
        matches!(self.code, COROTLS_WANT_READ | COROTLS_WANT_WRITE)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.msg)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &c in Code::all() {
            assert!(seen.insert(c.name()));
            assert_eq!(Code::from_i32(c as i32), Some(c));
            assert_eq!(c.is_error(), c.name().starts_with("ERR_"));
        }
        assert_eq!(Code::from_i32(42), None);
    }
}
