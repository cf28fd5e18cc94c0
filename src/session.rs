//! One TLS session over in-memory FIFO BIOs: ciphertext in (`feed`), ciphertext out
//! (`out_*`), plaintext through `write` / `read` / the plaintext buffer.
//! It knows nothing of sockets.  (Just over 600 lines: the state rules
//! below hold for the whole type, so it stays in one place.)
//!
//! State rules:
//! - A fatal error (protocol, verification, internal) is latched: every
//!   later call returns the same error; nothing more is decrypted or sent.
//! - The handshake runs implicitly from `write`, `read` and `fill_plain`.
//! - End of stream: the peer's close_notify gives CLOSED; `feed_eof` (the
//!   transport ended) with no close_notify gives EOF once the buffered
//!   plaintext is gone.

use crate::conf::{Conf, Role};
use crate::error::{Code::*, Error, Reason, Reason::*, Result};
use crate::ossl::ssl::{Ssl, SslRef};
use crate::ossl::{self, fifo, verify_error_string};
use plain::PlainBuf;
use std::ffi::CString;

/// Ciphertext a session holds undecrypted at most (`feed` refuses more):
/// a peer or host cannot make it grow without bound.
pub const MAX_INPUT: usize = 4 * 1024 * 1024;

/// Decrypt in steps of one maximal TLS record.
pub(super) const RECORD: usize = 16 * 1024;
/// Ciphertext added per record beyond its plaintext: header, explicit IV,
/// tag or MAC and padding (TLS 1.3 needs 22; CBC suites in TLS 1.2 up to
/// 5 + 16 + 48 + 256).
const MAX_RECORD_OVERHEAD: usize = 325;

/// Connection facts known once the handshake is done, kept as C strings so
/// the C API can hand out pointers.
#[derive(Default)]
pub struct Info {
    pub version: CString,
    pub cipher: CString,
    pub alpn: CString,
    pub peer_subject: CString,
    pub verify: CString,
}

pub struct Session {
    ssl: Ssl,
    /// Keeps the conf alive as long as the session (the SSL_CTX's own
    /// reference count already protects OpenSSL's side).
    _conf: Conf,
    role: Role,
    plain: PlainBuf,
    handshake_done: bool,
    started: bool,
    fatal: Option<Error>,
    eof: bool,
    peer_closed: bool,
    shutdown_sent: bool,
    /// The name sent as SNI, and whether `set_verify_host` named the host
    /// to verify; with neither, `connect_host` (from the loop) is checked.
    sni: Option<Vec<u8>>,
    verify_host_given: bool,
    connect_host: Option<Vec<u8>>,
    /// Client resumption: cache key, imported session (session/resume.rs).
    resume: resume::ResumeState,
    info: Info,
    last_error: CString,
    last_reason: Reason,
    last_detail: i64,
}

/// Why a verifying client would not start: there is no name to match the
/// server's certificate against.
pub const NO_NAME: &str = "no host name to verify the server certificate against: give one with \
set_verify_host or set_sni (the loop also uses the host given to connect), or verify the chain only \
with the conf builder's set_verify_name(false)";

/// SNI host names (RFC 6066 3): a DNS name of at most 255 bytes, ASCII
/// labels of 1..=63 letters, digits, '-' or '_' separated by single dots,
/// no trailing dot, and not an IP address.
pub fn check_sni(name: &[u8]) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::arg(format!("SNI name {:?}: {why}", String::from_utf8_lossy(name)))
            .because(COROTLS_REASON_HOST_NAME))
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 255 {
        return bad("longer than 255 bytes");
    }
    if let Some(c) = name.iter().find(|c| c.is_ascii_control() || !c.is_ascii()) {
        return bad(&format!("contains byte 0x{c:02x} (control or non-ASCII: use the A-label form)"));
    }
    let text = std::str::from_utf8(name).unwrap_or_default();
    if text.parse::<std::net::IpAddr>().is_ok() {
        return bad("an IP address is not sent as SNI (verify it with set_verify_host)");
    }
    for label in text.split('.') {
        if label.is_empty() {
            return bad("has an empty label (leading, trailing or double dot)");
        }
        if label.len() > 63 {
            return bad("has a label longer than 63 bytes");
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return bad("is not a DNS name (letters, digits, '-', '_' and dots)");
        }
    }
    Ok(())
}

fn cstring_lossy(s: impl Into<Vec<u8>>) -> CString {
    let mut v: Vec<u8> = s.into();
    v.retain(|&b| b != 0);
    CString::new(v).unwrap_or_default()
}

impl Session {
    pub fn new(conf: &Conf) -> Result<Session> {
        let role = conf.role();
        let ssl = Ssl::new_fifo(conf.ctx(), role == Role::Server)?;
        Ok(Session {
            ssl,
            _conf: conf.clone(),
            role,
            plain: PlainBuf::default(),
            handshake_done: false,
            started: false,
            fatal: None,
            eof: false,
            peer_closed: false,
            shutdown_sent: false,
            sni: None,
            verify_host_given: false,
            connect_host: None,
            resume: Default::default(),
            info: Info { verify: cstring_lossy("not verified"), ..Info::default() },
            last_error: CString::default(),
            last_reason: COROTLS_REASON_NONE,
            last_detail: 0,
        })
    }

    pub fn ssl(&self) -> SslRef {
        self.ssl.get()
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn handshake_done(&self) -> bool {
        self.handshake_done
    }
    /// The handshake has been started (OpenSSL took its first step).
    pub fn started(&self) -> bool {
        self.started
    }
    /// The peer's close_notify has arrived.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed || self.ssl().received_shutdown()
    }
    /// The transport reported its end.
    pub fn eof(&self) -> bool {
        self.eof
    }
    pub fn shutdown_sent(&self) -> bool {
        self.shutdown_sent
    }
    pub fn is_failed(&self) -> bool {
        self.fatal.is_some()
    }
    pub fn info(&self) -> &Info {
        &self.info
    }
    /// Message of the last failure on this session ("" if none).
    pub fn last_error(&self) -> &CString {
        &self.last_error
    }
    /// Reason and detail of the last failure (COROTLS_REASON_NONE if none).
    pub fn last_reason(&self) -> (Reason, i64) {
        (self.last_reason, self.last_detail)
    }

    fn remember(&mut self, e: &Error) {
        self.last_error = cstring_lossy(e.msg.as_bytes());
        self.last_reason = e.reason;
        self.last_detail = e.detail;
    }

    /// Note a failure: latch it if the TLS state is broken (a protocol or
    /// verification error, or a bug caught at a panic boundary; usage
    /// errors leave the session as it was), remember its message.
    pub fn fail(&mut self, e: Error) -> Error {
        if matches!(e.code, COROTLS_ERR_TLS | COROTLS_ERR_VERIFY | COROTLS_ERR_INTERNAL) && self.fatal.is_none() {
            self.fatal = Some(e.clone());
        }
        if !e.is_want() {
            self.remember(&e);
        }
        e
    }

    fn check_fatal(&self) -> Result<()> {
        match &self.fatal {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn before_handshake(&self, what: &str) -> Result<()> {
        if self.role != Role::Client {
            return Err(Error::state(format!("{what} is for client sessions")));
        }
        if self.started {
            return Err(Error::state(format!("{what} must be set before the handshake starts")));
        }
        Ok(())
    }

    /// Server Name Indication to send (client, before the handshake; a
    /// DNS name, see `check_sni`).  When no host to verify is given, a
    /// verifying client checks the server's certificate against it.
    pub fn set_sni(&mut self, name: &[u8]) -> Result<()> {
        let r = self.before_handshake("SNI").and_then(|_| check_sni(name)).and_then(|_| self.ssl().set_sni(name));
        match r {
            Ok(()) => {
                self.sni = Some(name.to_vec());
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Name (DNS or IP literal) the server certificate must match (client,
    /// before the handshake; effective when the conf verifies peers).
    /// Takes precedence over the SNI name and the connect host.
    pub fn set_verify_host(&mut self, name: &[u8]) -> Result<()> {
        let r = self.before_handshake("the host to verify").and_then(|_| self.ssl().set_verify_host(name));
        match r {
            Ok(()) => {
                self.verify_host_given = true;
                self.resume.verify_host = Some(name.to_vec());
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The host this client connected to (DNS name or IP literal): what a
    /// verifying client checks when neither `set_verify_host` nor
    /// `set_sni` named one.
    pub fn set_connect_host(&mut self, host: &[u8]) -> Result<()> {
        self.before_handshake("the connect host").map_err(|e| self.fail(e))?;
        self.connect_host = Some(host.to_vec());
        Ok(())
    }

    /// Before the first handshake step: give a verifying client the name to
    /// match (`set_verify_host`, else SNI, else the connect host), or fail.
    fn bind_peer_name(&mut self) -> Result<()> {
        if self.role != Role::Client || !self._conf.checks_name() || self.verify_host_given {
            return Ok(());
        }
        match self.sni.as_ref().or(self.connect_host.as_ref()) {
            Some(name) => self.ssl().set_verify_host(name),
            None => Err(Error::new(COROTLS_ERR_VERIFY, NO_NAME).because(COROTLS_REASON_NO_PEER_NAME)),
        }
    }

    /// ALPN protocols to offer, replacing the conf's list (client).
    pub fn set_alpn_wire(&mut self, wire: &[u8]) -> Result<()> {
        self.before_handshake("the ALPN offer").and_then(|_| self.ssl().set_alpn_wire(wire)).map_err(|e| self.fail(e))
    }

    // ----- ciphertext side ----------------------------------------------

    /// Append ciphertext received from the peer.  Does no TLS work.  A
    /// failed session takes nothing more (its error is returned), so a peer
    /// sending garbage cannot grow memory.
    pub fn feed(&mut self, ct: &[u8]) -> Result<()> {
        self.check_fatal()?;
        if self.eof {
            return Err(self.fail(Error::state("ciphertext fed after the end of the stream")));
        }
        let held = self.ssl().in_pending();
        if held.saturating_add(ct.len()) > MAX_INPUT {
            return Err(self.fail(
                Error::arg(format!(
                    "{} bytes of ciphertext would leave more than the session's {MAX_INPUT}-byte input limit \
                 undecrypted ({held} held): feed less at a time and read in between",
                    ct.len()
                ))
                .because(COROTLS_REASON_LIMIT),
            ));
        }
        self.ssl().feed(ct).map_err(|e| self.fail(e))
    }

    /// Receive ciphertext straight into the session's input buffer: `recv`
    /// gets room for up to `max` bytes and returns how many it wrote (0 adds
    /// nothing).  The same checks as `feed`.
    pub fn feed_with(
        &mut self,
        max: usize,
        recv: impl FnOnce(&mut [std::mem::MaybeUninit<u8>]) -> Result<usize>,
    ) -> Result<usize> {
        self.check_fatal()?;
        if self.eof {
            return Err(self.fail(Error::state("ciphertext fed after the end of the stream")));
        }
        // SAFETY: the BIO belongs to our SSL and nothing else touches it
        // while `self` is borrowed mutably here.
        match unsafe { fifo::of(self.ssl().rbio()) } {
            Some(f) => f.fill_with(max, recv),
            None => Err(Error::tls("the session's input is not a corotls FIFO")),
        }
    }

    /// Hand the oldest produced ciphertext to `send`, which returns how many
    /// bytes it took; those are dropped from the session, the rest stays in
    /// order.  Ok(0) when there is nothing to send.
    pub fn out_with(&mut self, send: impl FnOnce(&[u8]) -> Result<usize>) -> Result<usize> {
        // SAFETY: as in feed_with, for the output BIO.
        let Some(f) = (unsafe { fifo::of(self.ssl().wbio()) }) else {
            return Err(Error::tls("the session's output is not a corotls FIFO"));
        };
        if f.is_empty() {
            return Ok(0);
        }
        let n = send(f.data())?;
        f.consume(n);
        Ok(n)
    }

    /// The transport ended: no more ciphertext will come.
    pub fn feed_eof(&mut self) {
        self.eof = true;
    }

    /// Ciphertext waiting to be sent.
    pub fn out_pending(&self) -> usize {
        self.ssl().out_pending()
    }
    /// Move produced ciphertext into `dst`; returns the count.
    pub fn out_read(&mut self, dst: &mut [u8]) -> usize {
        self.ssl().out_read(dst)
    }

    // ----- handshake ----------------------------------------------------

    /// Ok once the handshake is complete; WANT_READ while it needs peer
    /// bytes; EOF if the transport ended first; an error otherwise.
    pub fn handshake(&mut self) -> Result<()> {
        self.check_fatal()?;
        if self.handshake_done {
            return Ok(());
        }
        if !self.started {
            self.started = true;
            if let Err(e) = self.bind_peer_name().and_then(|_| self.start_resumption()) {
                return Err(self.fail(e));
            }
        }
        match self.ssl().handshake() {
            Ok(()) => {
                self.handshake_done = true;
                self.capture_info();
                self.finish_resumption();
                Ok(())
            }
            Err(e) if e.code == COROTLS_WANT_READ && self.eof => {
                let e = Error::new(COROTLS_EOF, "the peer closed the connection during the handshake");
                // Nothing more can come: the session is over.
                self.fatal = Some(e.clone());
                Err(self.fail(e))
            }
            Err(e) if e.is_want() => Err(e),
            Err(e) => {
                self.capture_verify();
                let e = if e.code == COROTLS_CLOSED {
                    Error::new(COROTLS_ERR_TLS, "the peer sent close_notify during the handshake")
                } else {
                    e
                };
                Err(self.fail(e))
            }
        }
    }

    fn capture_verify(&mut self) {
        let v = self.ssl().verify_result();
        self.info.verify = cstring_lossy(verify_error_string(v));
    }

    fn capture_info(&mut self) {
        let ssl = self.ssl();
        let peer = ssl.peer_certificate();
        self.info.version = cstring_lossy(ssl.version());
        self.info.cipher = cstring_lossy(ssl.cipher());
        self.info.alpn = cstring_lossy(ssl.alpn_selected());
        self.info.peer_subject = cstring_lossy(peer.as_ref().map(ossl::subject_line).unwrap_or_default());
        // OpenSSL's verdict means something only if a certificate came.
        if peer.is_some() {
            self.capture_verify();
        }
    }

    // ----- plaintext out ------------------------------------------------

    /// Encrypt all of `pt` (the output FIFO takes any amount).  Drives the
    /// handshake first; WANT_READ if it is not finished.
    pub fn write(&mut self, pt: &[u8]) -> Result<usize> {
        self.check_fatal()?;
        if self.shutdown_sent {
            return Err(self.fail(Error::state("write after shutdown")));
        }
        if !self.handshake_done {
            self.handshake()?;
        }
        // OpenSSL appends one record at a time: room for all of them at once
        // spares the FIFO a reallocation (and a copy) per doubling.
        let records = pt.len() / RECORD + 1;
        // SAFETY: the BIO belongs to our SSL; the reference ends here.
        if let Some(f) = unsafe { fifo::of(self.ssl().wbio()) } {
            f.reserve(pt.len() + records * MAX_RECORD_OVERHEAD);
        }
        let mut done = 0;
        while done < pt.len() {
            match self.ssl().write(&pt[done..]) {
                Ok(n) => done += n,
                Err(e) if e.code == COROTLS_CLOSED => {
                    self.peer_closed = true;
                    return Err(e);
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(done)
    }

    // ----- plaintext in -------------------------------------------------

    /// The status a reader gets when no plaintext is available.
    fn end_status(&self) -> Error {
        if let Some(e) = &self.fatal {
            e.clone()
        } else if self.peer_closed {
            Error::closed()
        } else if self.eof {
            Error::eof()
        } else {
            Error::want_read()
        }
    }

    /// Whether anything is buffered for a reader: plaintext, or ciphertext
    /// not decrypted yet.  When not, `read` can only ask for more input.
    pub fn has_input(&self) -> bool {
        self.plain.len() > 0 || self.ssl().in_pending() > 0 || self.ssl().has_pending()
    }

    /// Give an idle session's buffers back: OpenSSL's record buffers, the
    /// FIFOs' and the plaintext buffer's room, each only when it holds
    /// nothing (what holds data stays).  The next record allocates them
    /// again, so this is for connections that have been quiet a while (the
    /// loop's sweep), not for every record.  Returns whether any buffer was
    /// held (traffic since the last release).
    pub fn release_buffers(&mut self) -> bool {
        let mut held = self.plain.shrink();
        let ssl = self.ssl();
        if (self.handshake_done || !self.started) && !self.has_input() && ssl.out_pending() == 0 {
            ssl.free_buffers();
        }
        for bio in [ssl.rbio(), ssl.wbio()] {
            // SAFETY: our SSL's BIOs, not otherwise borrowed during this call.
            if let Some(f) = unsafe { fifo::of(bio) } {
                held |= f.shrink();
            }
        }
        held
    }

    /// Whether the ciphertext received so far holds a whole first record
    /// (or something that is not a TLS handshake record, which OpenSSL
    /// should see at once to reject it).
    pub fn first_record_complete(&self) -> bool {
        // SAFETY: our SSL's input BIO, read only.
        let Some(f) = (unsafe { fifo::of(self.ssl().rbio()) }) else { return true };
        let d = f.data();
        if d.first().is_some_and(|&t| t != 22) {
            return true;
        }
        if d.len() < 5 {
            return false;
        }
        let len = u16::from_be_bytes([d[3], d[4]]) as usize;
        len > RECORD + 2048 || d.len() >= 5 + len
    }

    /// Decrypt straight into `buf` (after any buffered plaintext).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Err(Error::arg("read buffer is empty"));
        }
        if self.plain.len() > 0 {
            let n = self.plain.len().min(buf.len());
            buf[..n].copy_from_slice(&self.plain.data()[..n]);
            self.plain.consume(n);
            return Ok(n);
        }
        self.read_ssl(buf)
    }

    fn read_ssl(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.check_fatal()?;
        if !self.handshake_done {
            self.handshake()?;
        }
        if self.peer_closed {
            return Err(Error::closed());
        }
        match self.ssl().read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.code == COROTLS_WANT_READ => {
                let e = self.end_status();
                if e.code == COROTLS_EOF {
                    self.remember(&e);
                }
                Err(e)
            }
            Err(e) if e.code == COROTLS_CLOSED => {
                self.peer_closed = true;
                self.remember(&e);
                Err(e)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Drive the handshake and decrypt everything available into the
    /// plaintext buffer.  Ok with the buffered size even when the stream
    /// has ended (see `end_status`); Err for fatal errors only.
    pub fn fill_plain(&mut self) -> Result<usize> {
        if !self.handshake_done {
            match self.handshake() {
                Ok(()) => {}
                Err(e) if e.is_want() => return Ok(self.plain.len()),
                Err(e) if e.code.is_error() => return Err(e),
                Err(_) => return Ok(self.plain.len()),
            }
        }
        // The buffer is moved out while OpenSSL writes into it, so the
        // session's other state stays freely borrowable.
        let mut plain = std::mem::take(&mut self.plain);
        let result = loop {
            // Nothing left to decrypt: SSL_read could only fail asking for
            // input (a whole failed call).  The end of the stream and a
            // latched failure still go through it, to be reported.
            if self.handshake_done
                && !self.eof
                && self.fatal.is_none()
                && self.ssl().in_pending() == 0
                && !self.ssl().has_pending()
            {
                break Ok(plain.len());
            }
            match self.read_ssl(plain.spare()) {
                Ok(n) => plain.commit(n),
                Err(e) => {
                    break if e.code.is_error() { Err(e) } else { Ok(plain.len()) };
                }
            }
        };
        self.plain = plain;
        result
    }

    /// Buffered plaintext (see `fill_plain`).
    pub fn plain(&self) -> &[u8] {
        self.plain.data()
    }

    /// Drop `n` bytes from the front of the plaintext buffer.
    pub fn consume(&mut self, n: usize) {
        self.plain.consume(n)
    }

    /// What a reader of the buffer gets when it holds too little:
    /// WANT_READ, CLOSED, EOF or the latched error.
    pub fn starved(&self) -> Error {
        self.end_status()
    }

    // ----- closing -------------------------------------------------------

    /// Queue our close_notify (once).  Before the handshake there is nothing
    /// to close and nothing is queued.  A session that failed returns its
    /// error and queues nothing.
    pub fn shutdown(&mut self) -> Result<()> {
        self.check_fatal()?;
        if self.shutdown_sent {
            return Ok(());
        }
        self.shutdown_sent = true;
        if !self.handshake_done {
            return Ok(());
        }
        match self.ssl().shutdown() {
            Ok(both) => {
                if both {
                    self.peer_closed = true;
                }
                Ok(())
            }
            // OpenSSL asks for the peer's close_notify only on a second call;
            // ours is queued either way.
            Err(e) if e.is_want() => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }
}

pub mod host;
pub use host::HostSsl;
pub mod close;
pub mod ktls;
pub mod peer;

mod plain;
mod resume;
#[cfg(test)]
mod tests;
