//! One entry of the fd table: a listener or a TLS connection, the operation
//! in flight on it (at most one: the busy rule), and what it waits for.
//!
//! The attempts here never block and never call back: they return
//! `Poll::Ready` with an outcome or `Poll::Pending` after noting what to
//! wait for.  The loop turns outcomes into inline results or completions.

use super::{Callback, Read};
use crate::conf::Conf;
use crate::error::{Code, Code::*, Error, Reason, Reason::*, Result};
use crate::transport::Conn;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Ciphertext taken from the socket per step of a read operation.
const READ_STEP: usize = 1024 * 1024;
/// Ciphertext taken per background step when a read limit is set: the
/// most the limit can be overshot by (plus one partial record).
const BG_STEP: usize = 64 * 1024;
/// Plaintext kept unread before background reading pauses, by default.
pub const DEFAULT_LIMIT: usize = 1024 * 1024;
/// A delivered-chunk buffer larger than this is freed, not kept: what the
/// session keeps of its plaintext buffer too (four records), so an echo
/// loop's chunk of up to one 64 KiB socket read is reused, not reallocated.
const KEEP_CHUNK: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Interest {
    pub read: bool,
    pub write: bool,
}

impl Interest {
    pub const NONE: Interest = Interest { read: false, write: false };
    pub const READ: Interest = Interest { read: true, write: false };
    pub const WRITE: Interest = Interest { read: false, write: true };

    pub fn is_none(self) -> bool {
        !self.read && !self.write
    }
    fn of_want(code: Code) -> Interest {
        if code == COROTLS_WANT_WRITE {
            Interest::WRITE
        } else {
            Interest::READ
        }
    }
}

pub(super) struct Op {
    pub id: u64,
    pub kind: OpKind,
    pub cb: Callback,
    pub timed: bool,
}

pub(super) enum OpKind {
    Accept {
        conf: Option<Conf>,
    },
    Connect {
        addrs: Vec<SocketAddr>,
        next: usize,
    },
    Handshake,
    /// `data` is what was left to send when the operation went pending;
    /// `before` plaintext bytes had gone out inline.
    Send {
        data: Vec<u8>,
        done: usize,
        before: usize,
    },
    Read(ReadState),
    /// Our close_notify going out (`close::half_close`).
    Shutdown,
    Sendfile(Box<super::sendfile::FileSend>),
}

impl OpKind {
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Accept { .. } => "accept",
            OpKind::Connect { .. } => "connect",
            OpKind::Handshake => "handshake",
            OpKind::Send { .. } => "send",
            OpKind::Read(_) => "recv",
            OpKind::Shutdown => "shutdown",
            OpKind::Sendfile(_) => "sendfile",
        }
    }
}

/// A read request and how far its delimiter search got.
pub(super) struct ReadState {
    pub want: Read,
    scanned: usize,
}

impl ReadState {
    pub fn new(want: Read) -> ReadState {
        ReadState { want, scanned: 0 }
    }

    /// How many bytes at the front of `plain` complete the request.
    fn ready(&mut self, plain: &[u8]) -> Option<usize> {
        match &self.want {
            Read::Any => (!plain.is_empty()).then_some(plain.len()),
            Read::Exactly(n) => (plain.len() >= *n).then_some(*n),
            Read::Until { delim, max } => {
                let end = if *max > 0 { plain.len().min(*max) } else { plain.len() };
                let start = self.scanned.saturating_sub(delim.len() - 1).min(end);
                if let Some(i) = find(&plain[start..end], delim) {
                    return Some(start + i + delim.len());
                }
                if *max > 0 && plain.len() >= *max {
                    return Some(*max);
                }
                self.scanned = end;
                None
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [b] => hay.iter().position(|x| x == b),
        _ => hay.windows(needle.len()).position(|w| w == needle),
    }
}

/// Move the first `n` plaintext bytes buffered in `conn` into `out`
/// (replacing what it held): a completion's data, or an entry's `chunk`.
pub(super) fn take_plain(conn: &mut Conn, n: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&conn.session().plain()[..n]);
    conn.session_mut().consume(n);
}

/// How an operation ended.
pub(super) struct Outcome {
    pub code: Code,
    /// The connection the result is about (the new one for accept and
    /// connect; -1 when they fail).
    pub fd: RawFd,
    pub data: Vec<u8>,
    pub count: usize,
    pub reason: Reason,
    pub detail: i64,
    pub msg: String,
}

impl Outcome {
    pub fn ok(fd: RawFd) -> Outcome {
        Outcome {
            code: COROTLS_OK,
            fd,
            data: Vec::new(),
            count: 0,
            reason: COROTLS_REASON_NONE,
            detail: 0,
            msg: String::new(),
        }
    }
    pub fn err(fd: RawFd, e: Error) -> Outcome {
        Outcome {
            code: e.code,
            fd,
            data: Vec::new(),
            count: 0,
            reason: e.reason,
            detail: e.detail,
            msg: e.msg.into_owned(),
        }
    }
    pub fn of(fd: RawFd, r: Result<()>) -> Outcome {
        match r {
            Ok(()) => Outcome::ok(fd),
            Err(e) => Outcome::err(fd, e),
        }
    }
    pub fn with_count(mut self, n: usize) -> Outcome {
        self.count = n;
        self
    }
    pub fn with_data(mut self, d: Vec<u8>) -> Outcome {
        self.count = d.len();
        self.data = d;
        self
    }
    /// The failure this outcome reports, if any.
    pub fn error(&self) -> Option<Error> {
        (self.code != COROTLS_OK).then(|| Error::new(self.code, self.msg.clone()).because_of(self.reason, self.detail))
    }
}

pub(super) struct Entry {
    pub closed: bool,
    /// What the poller has enabled for this fd (NONE: disabled, as after a
    /// oneshot event was delivered).
    pub armed: Interest,
    /// The last failure on this fd (None if none).
    pub last_error: Option<Error>,
    pub kind: Kind,
}

pub(super) enum Kind {
    Listener(Listener),
    Conn(Box<ConnEntry>),
    /// A connection a deadline ended: its socket is shut down and released,
    /// its session freed; the fd number stays taken until the host closes
    /// it.
    Expired(Expired),
}

pub(super) struct Expired {
    /// What later operations on the fd are told.
    pub err: Error,
    /// The chunk an inline read delivered, if still promised to the host
    /// (until its next operation on the fd, or close): kept, never read, so
    /// that it outlives the session.
    pub _chunk: Vec<u8>,
}

pub(super) struct Listener {
    /// The conf new connections get when accept is given none (reload
    /// replaces it; connections keep theirs).
    pub conf: Option<Conf>,
    pub op: Option<Op>,
    /// Connections accepted and closed at once because no fd was left.
    pub shed: u64,
    /// Shedding since the last connection accepted for real.
    pub shedding: bool,
    /// Out of fds with nothing to shed with: accepting waits for this retry
    /// timer (id) instead of the socket.
    pub retry: Option<u64>,
}

impl Listener {
    pub fn new(conf: Option<Conf>) -> Listener {
        Listener { conf, op: None, shed: 0, shedding: false, retry: None }
    }
}

/// Why a deadline ended a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Why {
    /// No handshake within this long of accept.
    Handshake(Duration),
    /// No byte received or sent for this long.
    Idle(Duration),
}

impl Why {
    /// The message of the pending operation's TIMEOUT.
    pub fn timeout(self) -> Error {
        let what = match self {
            Why::Handshake(d) => {
                format!("handshake deadline expired: no handshake within {} ms of accept", d.as_millis())
            }
            Why::Idle(d) => format!("idle deadline expired: no byte received or sent for {} ms", d.as_millis()),
        };
        Error::new(COROTLS_TIMEOUT, format!("{what}; the loop shut the connection down (close the fd)"))
    }

    /// What operations on the fd get afterwards.
    pub fn after(self, fd: RawFd) -> Error {
        let why = match self {
            Why::Handshake(_) => "its handshake deadline expired",
            Why::Idle(_) => "its idle deadline expired",
        };
        Error::new(COROTLS_ERR_IO, format!("fd {fd} was shut down by the loop ({why}): only close applies to it now"))
    }
}

/// The deadlines of an accepted connection, checked when its timer fires:
/// a timer that fires early (bytes moved since it was set, the handshake
/// finished) is set again for the new due time, so traffic costs no timer
/// work.
pub(super) struct Watch {
    /// The handshake deadline and the timeout it came from (None: none).
    pub handshake: Option<(Instant, Duration)>,
    pub idle: Option<Duration>,
    /// When bytes last moved (or the accept).
    pub last_io: Instant,
    /// `Conn::moved` as of `last_io`.
    pub seen: u64,
    /// The live timer's id.
    pub timer: Option<u64>,
}

impl Watch {
    /// Deadlines for a connection accepted at `now` (None: it has none).
    pub fn new(handshake: Option<Duration>, idle: Option<Duration>, now: Instant) -> Option<Watch> {
        if handshake.is_none() && idle.is_none() {
            return None;
        }
        Some(Watch { handshake: handshake.map(|d| (now + d, d)), idle, last_io: now, seen: 0, timer: None })
    }

    /// The earliest deadline that still applies (`shook`: the handshake is
    /// done) and what it is.
    pub fn due(&self, shook: bool) -> Option<(Instant, Why)> {
        let hs = self.handshake.filter(|_| !shook).map(|(at, d)| (at, Why::Handshake(d)));
        let idle = self.idle.map(|d| (self.last_io + d, Why::Idle(d)));
        match (hs, idle) {
            (Some(h), Some(i)) => Some(if i.0 < h.0 { i } else { h }),
            (h, i) => h.or(i),
        }
    }
}

impl Entry {
    pub fn new(kind: Kind) -> Entry {
        Entry { closed: false, armed: Interest::NONE, last_error: None, kind }
    }

    /// The operation slot (None for an expired connection, which has none).
    pub fn op_mut(&mut self) -> Option<&mut Option<Op>> {
        match &mut self.kind {
            Kind::Listener(l) => Some(&mut l.op),
            Kind::Conn(c) => Some(&mut c.op),
            Kind::Expired(_) => None,
        }
    }

    pub fn take_op(&mut self) -> Option<Op> {
        self.op_mut().and_then(|o| o.take())
    }

    pub fn op_id(&mut self) -> Option<u64> {
        self.op_mut().and_then(|o| o.as_ref().map(|o| o.id))
    }

    pub fn interest(&self) -> Interest {
        match &self.kind {
            Kind::Listener(l) if l.op.is_some() && l.retry.is_none() => Interest::READ,
            Kind::Listener(_) | Kind::Expired(_) => Interest::NONE,
            Kind::Conn(c) => c.interest(),
        }
    }

    /// Remember a failure (an error or EOF) as the fd's last error (OK and
    /// the other non-failures are not remembered).
    pub fn note(&mut self, e: &Error) {
        if e.code.is_error() || e.code == COROTLS_EOF {
            self.last_error = Some(e.clone());
        }
    }
}

pub(super) struct ConnEntry {
    pub conn: Conn,
    pub op: Option<Op>,
    /// What the pending handshake / send / read last waited for.
    pub want: Interest,
    /// Background reading pauses while this much plaintext is unread
    /// (0: no limit).
    pub limit: usize,
    /// The chunk an inline read delivered (valid until the next operation).
    pub chunk: Vec<u8>,
    /// `chunk` was filled by the operation being started.
    pub chunk_fresh: bool,
    pub read_dead: bool,
    pub write_dead: bool,
    /// Deadlines (accepted connections).
    pub watch: Option<Watch>,
    /// `conn.moved()` at the last buffer sweep.
    pub swept: u64,
}

impl ConnEntry {
    pub fn new(conn: Conn, op: Option<Op>) -> ConnEntry {
        ConnEntry {
            conn,
            op,
            want: Interest::NONE,
            limit: DEFAULT_LIMIT,
            chunk: Vec::new(),
            chunk_fresh: false,
            read_dead: false,
            write_dead: false,
            watch: None,
            swept: u64::MAX,
        }
    }

    /// The buffer sweep's visit: a connection that moved no byte since the
    /// last one gives its buffers back (those holding data stay).  None if
    /// it was busy, else whether it gave any back.
    pub fn sweep(&mut self) -> Option<bool> {
        let moved = self.conn.moved();
        if moved != self.swept {
            self.swept = moved;
            return None;
        }
        let mut held = false;
        if self.chunk.is_empty() {
            held = self.chunk.capacity() > 0;
            self.chunk = Vec::new();
        }
        Some(self.conn.session_mut().release_buffers() | held)
    }

    /// Note progress for the deadlines: the time bytes last moved.  Returns
    /// the id of a timer no longer needed (the handshake finished and no
    /// idle deadline applies): the caller cancels it.
    pub fn progress(&mut self, now: Instant) -> Option<u64> {
        let w = self.watch.as_mut()?;
        let moved = self.conn.moved();
        if moved != w.seen {
            w.seen = moved;
            w.last_io = now;
        }
        if w.idle.is_none() && self.conn.session().handshake_done() {
            return self.watch.take().and_then(|w| w.timer);
        }
        None
    }

    pub fn unread(&self) -> usize {
        self.conn.session().plain().len()
    }

    /// The previous inline chunk is no longer promised to the caller.
    pub fn release_chunk(&mut self) {
        if self.chunk.capacity() > KEEP_CHUNK {
            self.chunk = Vec::new();
        } else {
            self.chunk.clear();
        }
    }

    /// No more input will come: EOF, close_notify, a failure.
    fn input_ended(&self) -> bool {
        let s = self.conn.session();
        s.eof() || s.peer_closed() || s.is_failed() || self.read_dead
    }

    pub fn alive(&self) -> bool {
        !(self.input_ended() || self.write_dead)
    }

    fn bg_read_enabled(&self) -> bool {
        !matches!(self.op.as_ref().map(|o| &o.kind), Some(OpKind::Read(_)) | Some(OpKind::Connect { .. }))
            && self.conn.session().handshake_done()
            && !self.input_ended()
            && (self.limit == 0 || self.unread() < self.limit)
    }

    pub fn interest(&self) -> Interest {
        let mut i = Interest::NONE;
        if let Some(op) = &self.op {
            match op.kind {
                OpKind::Connect { .. } => i = Interest::WRITE,
                OpKind::Handshake | OpKind::Send { .. } | OpKind::Shutdown | OpKind::Sendfile(_) => i = self.want,
                OpKind::Read(_) => {
                    i = self.want;
                    i.read = true;
                }
                OpKind::Accept { .. } => {}
            }
        }
        if self.bg_read_enabled() {
            i.read = true;
        }
        if !self.write_dead && self.conn.unsent() > 0 {
            i.write = true;
        }
        i
    }

    fn pending_on(&mut self, e: &Error) {
        self.want = Interest::of_want(e.code);
    }

    pub fn try_handshake(&mut self) -> Poll<Result<()>> {
        match self.conn.handshake() {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) if e.is_want() => {
                self.pending_on(&e);
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Send `data[*done..]`, advancing `done` by what went on the wire.
    pub fn try_send(&mut self, data: &[u8], done: &mut usize) -> Poll<Result<()>> {
        match self.conn.write(&data[*done..]) {
            Ok(n) => {
                *done += n;
                if *done >= data.len() {
                    Poll::Ready(Ok(()))
                } else {
                    self.want = Interest::WRITE;
                    Poll::Pending
                }
            }
            Err(e) if e.is_want() => {
                self.pending_on(&e);
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Ready(n): the first n buffered plaintext bytes complete the request.
    /// Ready(Err): the stream ended (CLOSED, EOF) or failed first; what is
    /// buffered stays buffered.
    pub fn try_read(&mut self, st: &mut ReadState) -> Poll<Result<usize>> {
        if let Some(n) = st.ready(self.conn.session().plain()) {
            return Poll::Ready(Ok(n));
        }
        match self.conn.pull(READ_STEP) {
            Ok(_) => {}
            Err(e) if e.is_want() => {
                self.pending_on(&e);
                return Poll::Pending;
            }
            Err(e) => return Poll::Ready(Err(e)),
        }
        if let Some(n) = st.ready(self.conn.session().plain()) {
            return Poll::Ready(Ok(n));
        }
        let end = self.conn.session().starved();
        if end.code == COROTLS_WANT_READ {
            self.want = Interest::READ;
            Poll::Pending
        } else {
            Poll::Ready(Err(end))
        }
    }

    /// Work done while no operation asks for it: read ahead (up to the
    /// limit) so that a peer's close is seen and a later recv finds data,
    /// and flush ciphertext left by a timed-out send.  `pull`: the socket
    /// may have input (else reading ahead would only find it empty).
    /// Returns a failure to remember; the direction that failed is not
    /// retried.
    pub fn background(&mut self, pull: bool) -> Option<Error> {
        let mut failed = None;
        if pull && self.bg_read_enabled() {
            let step = if self.limit == 0 { READ_STEP } else { BG_STEP };
            match self.conn.pull(step) {
                Ok(_) => {}
                Err(e) if e.is_want() => {}
                Err(e) => {
                    self.read_dead = true;
                    failed = Some(e);
                }
            }
        }
        let sending = matches!(
            self.op.as_ref().map(|o| &o.kind),
            Some(OpKind::Send { .. } | OpKind::Handshake | OpKind::Shutdown | OpKind::Sendfile(_))
        );
        if !sending && !self.write_dead && self.conn.unsent() > 0 {
            match self.conn.flush() {
                Ok(()) => {}
                Err(e) if e.is_want() => {}
                Err(e) => {
                    self.write_dead = true;
                    failed = Some(e);
                }
            }
        }
        failed
    }
}

#[cfg(test)]
mod tests;
