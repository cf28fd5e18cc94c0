//! The loop: script-level TLS for coroutine hosts.
//!
//! A reactor over `polling::Poller` (epoll / kqueue, oneshot interest) that
//! owns sockets, operation deadlines and a table of TLS connections
//! addressed by their real socket fd.  Operations (accept, connect,
//! handshake, send, recv/read, close) either finish at once (`Ready::Now`,
//! and then never call back) or return `Ready::Pending` and complete later,
//! exactly once, through their callback on the thread that runs
//! `dispatch`.
//!
//! Threads: every method takes `&self` and may be called from any thread.
//! The table lock, the timer lock and the completion queue are leaves;
//! each entry has its own lock, held only while its session is worked on
//! (no I/O wait happens under any lock).  At most one thread dispatches at
//! a time; callbacks run with no lock held, so they may call back in.
//!
//! Depends on transport / session / conf only; the C ABI is `ffi::loop`.
//!
//! Files: this one holds the types hosts see and the shared state; `api`
//! the public calls; `ops` the life of entries and operations; `accept`
//! and `connect` the two ways a connection starts (with the server
//! deadlines); `cancel` ending an operation but not its connection;
//! `dispatch` the reactor step; `entry` one connection or
//! listener; `table` the fd table; `timers` and `resolver` their own.

mod accept;
mod api;
mod cancel;
mod close;
mod connect;
mod dispatch;
mod entry;
mod ops;
mod peer;
mod resolver;
mod resume;
mod sendfile;
mod sweep;
mod table;
#[cfg(test)]
mod tests;
mod timers;

use crate::conf::{Conf, Role};
use crate::error::{Code, Code::*, Error, Reason, Result};
use crate::net::{self, Lookup};
use crate::transport::Conn;
use entry::{
    take_plain, ConnEntry, Entry, Expired, Interest, Kind, Listener, Op, OpKind, Outcome, ReadState, Watch, Why,
};
use polling::{Event, Events, PollMode, Poller};
use resolver::Resolver;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};
use table::{Slot, Table};
use timers::Timers;

pub use entry::DEFAULT_LIMIT;

/// The handshake deadline of accepted connections unless set otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a listener that ran out of fds with nothing to shed with waits
/// before it tries again.
const STARVED_RETRY: Duration = Duration::from_millis(100);
/// Connections shed per accept attempt at most, so that a flood cannot hold
/// a dispatch (the listener is readable again right away).
const SHED_BATCH: usize = 64;

/// Poller key of the timerfd (polling reserves usize::MAX for itself).
pub(crate) const TIMER_KEY: usize = usize::MAX - 1;

/// What a deadline belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// An operation on the entry with this fd and generation.
    Slot { fd: RawFd, gen: u32 },
    /// A connect whose name is being resolved (no fd yet).
    Resolving,
    /// The deadlines (handshake, idle) of an accepted connection.
    Deadline { fd: RawFd, gen: u32 },
    /// A listener that ran out of fds tries again.
    Retry { fd: RawFd, gen: u32 },
    /// The sweep that gives quiet connections' buffers back (`sweep.rs`).
    Sweep,
}

/// What accepted connections get (see `Loop::set_handshake_timeout`).
#[derive(Clone, Copy)]
struct Deadlines {
    handshake: Option<Duration>,
    idle: Option<Duration>,
}

/// What a completion callback receives.
pub struct Done<'a> {
    /// The connection the result is about: the new one for accept and
    /// connect (-1 when they did not produce one), else the operation's fd.
    pub fd: RawFd,
    pub code: Code,
    /// Plaintext, for a read that completed with OK.
    pub data: &'a [u8],
    /// For send: plaintext bytes committed to the stream (all of them on
    /// OK; on TIMEOUT the prefix that will still reach the peer).  For a
    /// read: `data.len()`.
    pub count: usize,
    /// Why a result other than OK happened (COROTLS_REASON_NONE for OK),
    /// and its number (see `Reason`).
    pub reason: Reason,
    pub detail: i64,
    /// The message of a result other than OK ("" for OK).
    pub msg: &'a str,
}

/// A completion callback: runs once, on the dispatching thread.
pub type Callback = Box<dyn FnOnce(&Done<'_>) + Send>;

/// How an operation started.
#[derive(Debug, PartialEq, Eq)]
pub enum Ready<T> {
    /// Finished inline: no callback will run.
    Now(T),
    /// Will complete through its callback.
    Pending,
}

/// Plaintext delivered inline, owned by the connection's entry: valid
/// until the next operation on that fd (handshake, send, recv, read, close)
/// returns, or until the loop is freed.  It may be that operation's input
/// (echoing it with `send` is fine).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    ptr: *const u8,
    len: usize,
}

impl Chunk {
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// # Safety
    /// No operation on the chunk's fd has started since it was returned.
    pub unsafe fn as_slice<'a>(&self) -> &'a [u8] {
        if self.len == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(self.ptr, self.len)
        }
    }
}

/// What a read waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// All plaintext available, at least one byte (recv).
    Any,
    /// Exactly this many bytes (> 0).
    Exactly(usize),
    /// Up to and including `delim` (1..=64 bytes); with `max` > 0, at most
    /// `max` bytes: a request with no delimiter in the first `max` bytes
    /// completes with those `max` bytes.
    Until { delim: Vec<u8>, max: usize },
}

/// Facts about a connection or listener, as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Info {
    Version,
    Cipher,
    Alpn,
    PeerSubject,
    Verify,
    LocalAddr,
    RemoteAddr,
    Error,
}

struct Completion {
    cb: Callback,
    out: Outcome,
}

struct Resolving {
    conf: Conf,
    host: String,
    cb: Callback,
    timed: bool,
}

type Resolved = (u64, Result<Vec<SocketAddr>>);

struct Shared {
    poller: Poller,
    timerfd: Option<RawFd>,
    table: Mutex<Table>,
    timers: Mutex<Timers>,
    /// Completions made outside dispatch (close, shutdown), run by the next
    /// dispatch.
    queue: Mutex<Vec<Completion>>,
    resolving: Mutex<HashMap<u64, Resolving>>,
    resolved: Mutex<Vec<Resolved>>,
    deadlines: Mutex<Deadlines>,
    /// An fd held in reserve (opened with the first listener): given up
    /// for a moment to accept and shed a connection when the process is
    /// out of fds, and duplicated over the number of a connection a
    /// deadline ended.  A leaf lock.
    spare: Mutex<Option<RawFd>>,
    pending: AtomicUsize,
    next_id: AtomicU64,
    /// Set by `shutdown`: new listeners and operations are refused.
    closing: AtomicBool,
    /// Entries worked on by dispatch (events and expired deadlines): what
    /// a dispatch costs, for tests.
    #[cfg(test)]
    visits: AtomicU64,
    /// Tests: the next entry step panics (a bug in corotls, injected).
    #[cfg(test)]
    panic_next_step: AtomicBool,
    /// The buffer sweep (`sweep.rs`).  A leaf lock.
    sweep: Mutex<sweep::SweepState>,
    /// Held by the dispatching thread.
    events: Mutex<Events>,
    resolver: Resolver,
}

/// The reactor.  Dropping it closes every socket it owns (see `shutdown`).
pub struct Loop {
    sh: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn not_open(fd: RawFd) -> Error {
    Error::arg(format!("fd {fd} is not open in this loop"))
}

fn busy(fd: RawFd, what: &str) -> Error {
    Error::new(COROTLS_BUSY, format!("fd {fd} has a {what} in flight"))
}

fn cancelled() -> Error {
    Error::new(COROTLS_ERR_CANCELLED, "the fd was closed while the operation was in flight")
}

fn timed_out(what: &str) -> Error {
    Error::new(COROTLS_TIMEOUT, format!("{what} timed out"))
}

/// # Safety
/// `fd` is open for the duration of the borrow (the loop deletes an fd from
/// the poller before closing it, under the entry's lock).
unsafe fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    BorrowedFd::borrow_raw(fd)
}

fn not_conn(fd: RawFd) -> Error {
    Error::arg(format!("fd {fd} is a listener, not a connection"))
}

fn conn_of(e: &mut Entry, fd: RawFd) -> Result<&mut ConnEntry> {
    match &mut e.kind {
        Kind::Conn(c) => Ok(c),
        Kind::Listener(_) => Err(not_conn(fd)),
        Kind::Expired(x) => Err(x.err.clone()),
    }
}

fn listener_of(e: &mut Entry, fd: RawFd) -> Result<&mut Listener> {
    match &mut e.kind {
        Kind::Listener(l) => Ok(l),
        Kind::Conn(_) | Kind::Expired(_) => Err(Error::arg(format!("fd {fd} is a connection, not a listener"))),
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.sh.shutdown();
        self.sh.resolver.stop();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(fd) = self.spare.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            net::close_fd(fd);
        }
        if let Some(fd) = self.timerfd {
            // SAFETY: the timerfd is open until the close below.
            let _ = self.poller.delete(unsafe { borrow(fd) });
            net::close_fd(fd);
        }
    }
}

/// Close `fd` on a failure path, passing the error on.
fn closing(fd: RawFd, e: Error) -> Error {
    net::close_fd(fd);
    e
}

/// The fd a failed operation reports: none for accept and connect (their
/// connection does not exist), else the operation's own.
fn op_fd(kind: &OpKind, fd: RawFd) -> RawFd {
    match kind {
        OpKind::Accept { .. } | OpKind::Connect { .. } => -1,
        _ => fd,
    }
}

fn check_role(c: &Conf, role: Role, what: &str) -> Result<()> {
    if c.role() == role {
        Ok(())
    } else {
        let r = if role == Role::Server { "server" } else { "client" };
        Err(Error::arg(format!("{what} needs a {r} conf")))
    }
}
