//! One result vocabulary for the whole library.
//!
//! `Code` is the C enum `corotls_result`.  Engine functions return
//! `Result<T, Error>`; an `Error` carries a `Code` (the non-error statuses
//! WANT_READ, WANT_WRITE, CLOSED, EOF, ... travel the same way, like
//! `io::ErrorKind::WouldBlock` does) plus a human-readable message.

use std::borrow::Cow;
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
    /// A bug in corotls (a Rust panic caught at the boundary); the object
    /// it happened on refuses further I/O.
    COROTLS_ERR_INTERNAL = -7,
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
            COROTLS_ERR_INTERNAL => "ERR_INTERNAL",
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

static ALL_CODES: [Code; 15] = [
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
    COROTLS_ERR_INTERNAL,
];

/// Why a call failed, beside its result code: a stable vocabulary for
/// programs (hosts map these, never the message text).  `detail`, where
/// noted, carries a number: an errno, an X509_V_ERR_* code, a TLS alert.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No failure, or the result code says it all (TIMEOUT, BUSY, ...).
    COROTLS_REASON_NONE = 0,
    /// A required pointer argument was NULL.
    COROTLS_REASON_NULL_ARGUMENT = 1,
    /// An argument's value is not allowed (role, mode, version, length,
    /// timeout, fd...).
    COROTLS_REASON_BAD_ARGUMENT = 2,
    /// The call does not fit the object's role or state (a client-only
    /// setting on a server, SNI after the handshake started, a write after
    /// shutdown, a listener used as a connection...).
    COROTLS_REASON_WRONG_STATE = 3,
    /// A file could not be read; detail: the errno, or 0 when it is not a
    /// regular file or is too large.
    COROTLS_REASON_FILE = 4,
    /// A certificate could not be parsed (no PEM block, malformed).
    COROTLS_REASON_CERT_PARSE = 5,
    /// OpenSSL refused a certificate (for example below the security level).
    COROTLS_REASON_CERT_REJECTED = 6,
    /// OpenSSL refused a chain (intermediate) certificate.
    COROTLS_REASON_CHAIN_CERT_REJECTED = 7,
    /// A private key could not be parsed.
    COROTLS_REASON_KEY_PARSE = 8,
    /// An encrypted private key: no password, or the wrong one.
    COROTLS_REASON_KEY_PASSWORD = 9,
    /// OpenSSL refused a private key.
    COROTLS_REASON_KEY_REJECTED = 10,
    /// The private key does not belong to the certificate.
    COROTLS_REASON_KEY_MISMATCH = 11,
    /// Trusted CA certificates could not be loaded, or a conf that verifies
    /// peers has none.
    COROTLS_REASON_TRUST = 12,
    /// A TLS 1.2 cipher list was refused.
    COROTLS_REASON_CIPHER_LIST = 13,
    /// A TLS 1.3 suite list was refused.
    COROTLS_REASON_SUITE_LIST = 14,
    /// A key exchange group list was refused.
    COROTLS_REASON_GROUP_LIST = 15,
    /// An ALPN list or name was refused.
    COROTLS_REASON_ALPN = 16,
    /// An SNI name or a host name to verify was refused.
    COROTLS_REASON_HOST_NAME = 17,
    /// A host or service could not be used (bad port, resolution failed).
    COROTLS_REASON_ADDRESS = 18,
    /// The peer's certificate failed verification; detail: the
    /// X509_V_ERR_* code (10: expired, 62: hostname mismatch, ...).
    COROTLS_REASON_VERIFY = 19,
    /// A verifying client had no host name to check the certificate
    /// against.
    COROTLS_REASON_NO_PEER_NAME = 20,
    /// A server that requires client certificates got none.
    COROTLS_REASON_NO_PEER_CERT = 21,
    /// The peer sent a fatal alert; detail: its number (40: handshake
    /// failure, 70: protocol version, ...).
    COROTLS_REASON_PEER_ALERT = 22,
    /// A TLS protocol error found here (a bad record, no shared cipher or
    /// version...); detail: OpenSSL's reason code.
    COROTLS_REASON_PROTOCOL = 23,
    /// A socket or system call failed; detail: the errno.
    COROTLS_REASON_IO = 24,
    /// A size limit was reached (for example a session's input buffer).
    COROTLS_REASON_LIMIT = 25,
    /// Out of memory.
    COROTLS_REASON_NOMEM = 26,
    /// A bug in corotls.
    COROTLS_REASON_INTERNAL = 27,
}

pub use Reason::*;

impl Reason {
    /// Stable name, without the `COROTLS_REASON_` prefix.
    pub fn name(self) -> &'static str {
        REASONS[self as usize].1
    }

    pub fn from_i32(v: i32) -> Option<Reason> {
        usize::try_from(v).ok().and_then(|i| REASONS.get(i)).map(|r| r.0)
    }

    /// What a result code means when nothing more precise is known.
    fn of(code: Code) -> Reason {
        match code {
            COROTLS_ERR_ARG => COROTLS_REASON_BAD_ARGUMENT,
            COROTLS_ERR_NOMEM => COROTLS_REASON_NOMEM,
            COROTLS_ERR_IO => COROTLS_REASON_IO,
            COROTLS_ERR_TLS => COROTLS_REASON_PROTOCOL,
            COROTLS_ERR_VERIFY => COROTLS_REASON_VERIFY,
            COROTLS_ERR_INTERNAL => COROTLS_REASON_INTERNAL,
            _ => COROTLS_REASON_NONE,
        }
    }
}

/// Every reason with its name, in value order.
pub static REASONS: [(Reason, &str); 28] = [
    (COROTLS_REASON_NONE, "NONE"),
    (COROTLS_REASON_NULL_ARGUMENT, "NULL_ARGUMENT"),
    (COROTLS_REASON_BAD_ARGUMENT, "BAD_ARGUMENT"),
    (COROTLS_REASON_WRONG_STATE, "WRONG_STATE"),
    (COROTLS_REASON_FILE, "FILE"),
    (COROTLS_REASON_CERT_PARSE, "CERT_PARSE"),
    (COROTLS_REASON_CERT_REJECTED, "CERT_REJECTED"),
    (COROTLS_REASON_CHAIN_CERT_REJECTED, "CHAIN_CERT_REJECTED"),
    (COROTLS_REASON_KEY_PARSE, "KEY_PARSE"),
    (COROTLS_REASON_KEY_PASSWORD, "KEY_PASSWORD"),
    (COROTLS_REASON_KEY_REJECTED, "KEY_REJECTED"),
    (COROTLS_REASON_KEY_MISMATCH, "KEY_MISMATCH"),
    (COROTLS_REASON_TRUST, "TRUST"),
    (COROTLS_REASON_CIPHER_LIST, "CIPHER_LIST"),
    (COROTLS_REASON_SUITE_LIST, "SUITE_LIST"),
    (COROTLS_REASON_GROUP_LIST, "GROUP_LIST"),
    (COROTLS_REASON_ALPN, "ALPN"),
    (COROTLS_REASON_HOST_NAME, "HOST_NAME"),
    (COROTLS_REASON_ADDRESS, "ADDRESS"),
    (COROTLS_REASON_VERIFY, "VERIFY"),
    (COROTLS_REASON_NO_PEER_NAME, "NO_PEER_NAME"),
    (COROTLS_REASON_NO_PEER_CERT, "NO_PEER_CERT"),
    (COROTLS_REASON_PEER_ALERT, "PEER_ALERT"),
    (COROTLS_REASON_PROTOCOL, "PROTOCOL"),
    (COROTLS_REASON_IO, "IO"),
    (COROTLS_REASON_LIMIT, "LIMIT"),
    (COROTLS_REASON_NOMEM, "NOMEM"),
    (COROTLS_REASON_INTERNAL, "INTERNAL"),
];

/// A status other than plain success: its code, why (for programs), and
/// the detail a person needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub reason: Reason,
    /// The errno, X509_V_ERR_* code or alert number the reason names (0:
    /// none).
    pub detail: i64,
    /// Static for the frequent statuses (WANT_*, CLOSED, EOF), so that
    /// reporting them allocates nothing.
    pub msg: Cow<'static, str>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: Code, msg: impl Into<Cow<'static, str>>) -> Error {
        Error { code, reason: Reason::of(code), detail: 0, msg: msg.into() }
    }
    /// The same error, with a more precise reason.
    pub fn because(mut self, reason: Reason) -> Error {
        self.reason = reason;
        self
    }
    /// The same error, with a reason and its number.
    pub fn because_of(mut self, reason: Reason, detail: i64) -> Error {
        self.reason = reason;
        self.detail = detail;
        self
    }
    /// The same error, with another message.
    pub fn with_msg(mut self, msg: impl Into<Cow<'static, str>>) -> Error {
        self.msg = msg.into();
        self
    }
    /// A required pointer argument was NULL.
    pub fn null(what: &str) -> Error {
        Error::arg(format!("{what} is NULL")).because(COROTLS_REASON_NULL_ARGUMENT)
    }
    /// A call that does not fit the object's role or state.
    pub fn state(msg: impl Into<Cow<'static, str>>) -> Error {
        Error::arg(msg).because(COROTLS_REASON_WRONG_STATE)
    }
    pub fn arg(msg: impl Into<Cow<'static, str>>) -> Error {
        Error::new(COROTLS_ERR_ARG, msg)
    }
    pub fn tls(msg: impl Into<Cow<'static, str>>) -> Error {
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
        let errno = e.raw_os_error().unwrap_or(0);
        let code = if errno == libc::ENOMEM { COROTLS_ERR_NOMEM } else { COROTLS_ERR_IO };
        let err = Error::new(code, format!("{what}: {e}"));
        let reason = err.reason;
        err.because_of(reason, errno as i64)
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

    #[test]
    fn reasons_are_in_value_order_with_unique_names() {
        let mut seen = std::collections::HashSet::new();
        for (i, (r, name)) in REASONS.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert_eq!(r.name(), *name);
            assert!(seen.insert(*name));
            assert_eq!(Reason::from_i32(i as i32), Some(*r));
        }
        assert_eq!(Reason::from_i32(-1), None);
        assert_eq!(Reason::from_i32(REASONS.len() as i32), None);
    }
}
