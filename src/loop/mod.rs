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

mod cancel;
mod entry;
mod resolver;
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

impl Loop {
    pub fn new() -> Result<Loop> {
        let poller = Poller::new().map_err(|e| Error::os("cannot create the poller", e))?;
        let mut timerfd = timers::timerfd_new();
        if let Some(fd) = timerfd {
            // SAFETY: the timerfd stays open until Shared is dropped, after
            // it is deleted from the poller.
            let added = unsafe { poller.add_with_mode(fd, Event::readable(TIMER_KEY), PollMode::Level) };
            if added.is_err() {
                net::close_fd(fd);
                timerfd = None;
            }
        }
        Ok(Loop {
            sh: Arc::new(Shared {
                poller,
                timerfd,
                table: Mutex::new(Table::default()),
                timers: Mutex::new(Timers::new(timerfd)),
                queue: Mutex::new(Vec::new()),
                resolving: Mutex::new(HashMap::new()),
                resolved: Mutex::new(Vec::new()),
                deadlines: Mutex::new(Deadlines { handshake: Some(DEFAULT_HANDSHAKE_TIMEOUT), idle: None }),
                spare: Mutex::new(None),
                pending: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
                closing: AtomicBool::new(false),
                #[cfg(test)]
                visits: AtomicU64::new(0),
                events: Mutex::new(Events::new()),
                resolver: Resolver::default(),
            }),
        })
    }

    /// The pollable fd: readable when `dispatch` has work (I/O, a due timer
    /// on Linux, or completions queued by another thread).
    pub fn fd(&self) -> RawFd {
        self.sh.poller.as_raw_fd()
    }

    /// Operations that returned Pending and have not called back yet.
    pub fn pending(&self) -> usize {
        self.sh.pending.load(Ordering::SeqCst)
    }

    /// Open fds (connections and listeners).
    pub fn len(&self) -> usize {
        lock(&self.sh.table).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries dispatch has worked on so far (one per socket event or
    /// expired deadline): the cost of dispatching, independent of how many
    /// connections are open.
    #[cfg(test)]
    pub fn visits(&self) -> u64 {
        self.sh.visits.load(Ordering::Relaxed)
    }

    /// Time until the earliest deadline (None: no deadline).
    pub fn next_timeout(&self) -> Option<Duration> {
        let next = lock(&self.sh.timers).next()?;
        Some(next.saturating_duration_since(Instant::now()))
    }

    // ----- deadlines of accepted connections ----------------------------

    /// The handshake deadline of connections accepted from now on: from
    /// accept until their handshake completes, whatever operations do
    /// meanwhile (None: no deadline; the default is 30 s).  When it
    /// expires the connection is ended at once: its socket is shut down
    /// and released, its session freed, and its pending operation, if any,
    /// completes with TIMEOUT.  The fd number stays taken (later operations
    /// fail with ERR_IO) until `close`.
    pub fn set_handshake_timeout(&self, t: Option<Duration>) {
        lock(&self.sh.deadlines).handshake = t;
    }

    pub fn handshake_timeout(&self) -> Option<Duration> {
        lock(&self.sh.deadlines).handshake
    }

    /// The idle deadline of connections accepted from now on: one that
    /// moves no byte (received or sent) for this long is ended like one
    /// whose handshake deadline expired (None, the default: no deadline).
    pub fn set_idle_timeout(&self, t: Option<Duration>) {
        lock(&self.sh.deadlines).idle = t;
    }

    pub fn idle_timeout(&self) -> Option<Duration> {
        lock(&self.sh.deadlines).idle
    }

    /// Connections the listener `lfd` accepted and closed at once because
    /// the process had no fd left for them.
    pub fn shed_count(&self, lfd: RawFd) -> Result<u64> {
        self.sh.with_entry(lfd, |_, e| Ok(listener_of(e, lfd)?.shed))
    }

    // ----- listeners --------------------------------------------------

    /// A plain TCP listener on (host, service); see `net::listen`.  `conf`
    /// (a server conf, optional) is what accept uses when given none.
    pub fn listen(&self, host: Option<&str>, service: &str, conf: Option<&Conf>) -> Result<RawFd> {
        if let Some(c) = conf {
            check_role(c, Role::Server, "listen")?;
        }
        self.sh.check_open()?;
        {
            // The spare is taken before the listener: there is an fd for it.
            let mut spare = lock(&self.sh.spare);
            if spare.is_none() {
                *spare = net::open_spare().ok();
            }
        }
        let fd = net::listen(host, service, net::BACKLOG)?;
        self.sh.insert(fd, Kind::Listener(Listener::new(conf.cloned())))?;
        Ok(fd)
    }

    /// Switch a listener to `conf` (reload): later accepts that name no
    /// conf use it; connections already accepted keep theirs.
    pub fn set_listener_conf(&self, lfd: RawFd, conf: &Conf) -> Result<()> {
        check_role(conf, Role::Server, "a listener")?;
        self.sh.with_entry(lfd, |_, e| {
            listener_of(e, lfd)?.conf = Some(conf.clone());
            Ok(())
        })
    }

    /// Accept one connection and wrap it in a server session of `conf`
    /// (None: the listener's conf).  The handshake is not driven.
    pub fn accept(
        &self,
        lfd: RawFd,
        conf: Option<&Conf>,
        timeout: Option<Duration>,
        cb: Callback,
    ) -> Result<Ready<RawFd>> {
        if let Some(c) = conf {
            check_role(c, Role::Server, "accept")?;
        }
        let sh = &self.sh;
        sh.with_entry(lfd, |slot, e| {
            let l = listener_of(e, lfd)?;
            if l.op.is_some() {
                return Err(busy(lfd, "accept"));
            }
            if conf.is_none() && l.conf.is_none() {
                return Err(Error::arg(format!("listener {lfd} has no conf: pass one to accept")));
            }
            if l.retry.is_none() {
                if let Some(fd) = sh.accept_one(slot, e)? {
                    let Kind::Listener(l) = &e.kind else { unreachable!("a listener") };
                    let conf = conf.or(l.conf.as_ref()).cloned().expect("checked above");
                    return sh.adopt(fd, &conf).map(Ready::Now);
                }
            }
            let kind = OpKind::Accept { conf: conf.cloned() };
            sh.park(slot, e, kind, timeout, cb)?;
            Ok(Ready::Pending)
        })
    }

    // ----- connections ------------------------------------------------

    /// Connect to (host, service) and wrap the socket in a client session
    /// of `conf`; the handshake is not driven.  Numeric addresses are used
    /// directly; names are resolved off the calling thread.  Returns the
    /// start and the fd when it is known already (a numeric address).
    pub fn connect(
        &self,
        host: &str,
        service: &str,
        conf: &Conf,
        timeout: Option<Duration>,
        cb: Callback,
    ) -> Result<(Ready<()>, RawFd)> {
        check_role(conf, Role::Client, "connect")?;
        self.sh.check_open()?;
        match net::resolve(Some(host), service, false, Lookup::NumericOnly)? {
            Some(addrs) => self.sh.connect_addrs(&addrs, host, conf, timeout, cb),
            None => {
                let sh = &self.sh;
                let id = sh.new_id();
                // Counted before it is visible: a dispatch on another thread
                // may complete it at once (a deadline of 0).
                sh.pending.fetch_add(1, Ordering::SeqCst);
                if let Some(t) = timeout {
                    lock(&sh.timers).add(id, Instant::now() + t, Target::Resolving);
                }
                let req = Resolving { conf: conf.clone(), host: host.to_string(), cb, timed: timeout.is_some() };
                lock(&sh.resolving).insert(id, req);
                let weak: Weak<Shared> = Arc::downgrade(sh);
                sh.resolver.submit(
                    host,
                    service,
                    Box::new(move |r| {
                        if let Some(sh) = weak.upgrade() {
                            lock(&sh.resolved).push((id, r));
                            let _ = sh.poller.notify();
                        }
                    }),
                );
                Ok((Ready::Pending, -1))
            }
        }
    }

    /// Server Name Indication to send (client, before the handshake).
    pub fn set_sni(&self, fd: RawFd, name: &[u8]) -> Result<()> {
        self.sh.with_conn(fd, |_, c| c.conn.session_mut().set_sni(name))
    }

    /// The name the server certificate must match (client, before the
    /// handshake; effective when the conf verifies peers).
    pub fn set_verify_host(&self, fd: RawFd, name: &[u8]) -> Result<()> {
        self.sh.with_conn(fd, |_, c| c.conn.session_mut().set_verify_host(name))
    }

    /// Drive the handshake to its end.
    pub fn handshake(&self, fd: RawFd, timeout: Option<Duration>, cb: Callback) -> Result<Ready<()>> {
        let sh = &self.sh;
        sh.start(fd, |slot, e| {
            let c = conn_of(e, fd)?;
            match c.try_handshake() {
                Poll::Ready(r) => r.map(Ready::Now),
                Poll::Pending => sh.park(slot, e, OpKind::Handshake, timeout, cb).map(|_| Ready::Pending),
            }
        })
    }

    /// Send all of `data` (driving the handshake first if needed).  What is
    /// left when the socket is full is copied and sent as it drains.
    pub fn send(&self, fd: RawFd, data: &[u8], timeout: Option<Duration>, cb: Callback) -> Result<Ready<()>> {
        let sh = &self.sh;
        sh.start(fd, |slot, e| {
            let c = conn_of(e, fd)?;
            let mut done = 0;
            match c.try_send(data, &mut done) {
                Poll::Ready(r) => r.map(Ready::Now),
                Poll::Pending => {
                    let kind = OpKind::Send { data: data[done..].to_vec(), done: 0, before: done };
                    sh.park(slot, e, kind, timeout, cb).map(|_| Ready::Pending)
                }
            }
        })
    }

    /// Read plaintext (driving the handshake first if needed).  CLOSED or
    /// EOF (as errors) when the stream ended before the request could be
    /// met; what is buffered stays buffered.
    pub fn read(&self, fd: RawFd, want: Read, timeout: Option<Duration>, cb: Callback) -> Result<Ready<Chunk>> {
        match &want {
            Read::Exactly(0) => return Err(Error::arg("read size is 0")),
            Read::Until { delim, .. } if delim.is_empty() || delim.len() > 64 => {
                return Err(Error::arg("delimiter must be 1 to 64 bytes"))
            }
            _ => {}
        }
        let sh = &self.sh;
        sh.start(fd, |slot, e| {
            let c = conn_of(e, fd)?;
            let mut st = ReadState::new(want);
            match c.try_read(&mut st) {
                Poll::Ready(Ok(n)) => {
                    take_plain(&mut c.conn, n, &mut c.chunk);
                    c.chunk_fresh = true;
                    Ok(Ready::Now(Chunk { ptr: c.chunk.as_ptr(), len: c.chunk.len() }))
                }
                Poll::Ready(Err(err)) => Err(err),
                Poll::Pending => sh.park(slot, e, OpKind::Read(st), timeout, cb).map(|_| Ready::Pending),
            }
        })
    }

    /// Close an fd: one non-blocking close_notify attempt (connections),
    /// then the socket is closed.  An operation in flight completes with
    /// CANCELLED at the next dispatch.
    pub fn close(&self, fd: RawFd) -> Result<()> {
        let sh = &self.sh;
        let slot = lock(&sh.table).remove(fd, None).ok_or_else(|| not_open(fd))?;
        let mut out = Vec::new();
        sh.close_entry(&slot, &mut lock(&slot.st), &mut out);
        sh.enqueue(out);
        Ok(())
    }

    /// Pause background reading while `bytes` of plaintext are unread
    /// (0: no limit).  Reads asking for more than the limit still complete.
    pub fn set_limit(&self, fd: RawFd, bytes: usize) -> Result<()> {
        let sh = &self.sh;
        sh.with_entry(fd, |slot, e| {
            conn_of(e, fd)?.limit = bytes;
            sh.rearm(slot, e);
            Ok(())
        })
    }

    /// Plaintext received and not yet read.
    pub fn unread(&self, fd: RawFd) -> Result<usize> {
        self.sh.with_conn(fd, |_, c| Ok(c.unread()))
    }

    /// Ciphertext produced and not yet accepted by the socket.
    pub fn unsent(&self, fd: RawFd) -> Result<usize> {
        self.sh.with_conn(fd, |_, c| Ok(c.conn.unsent()))
    }

    /// Open and not ended: no close_notify or EOF seen, no failure.
    pub fn alive(&self, fd: RawFd) -> Result<bool> {
        self.sh.with_entry(fd, |_, e| match &e.kind {
            Kind::Listener(_) => Ok(true),
            Kind::Conn(c) => Ok(c.alive()),
            Kind::Expired(_) => Ok(false),
        })
    }

    /// Reason and detail of the fd's last failure (NONE if none).
    pub fn last_reason(&self, fd: RawFd) -> Result<(Reason, i64)> {
        self.sh.with_entry(fd, |_, e| {
            Ok(e.last_error.as_ref().map_or((Reason::COROTLS_REASON_NONE, 0), |e| (e.reason, e.detail)))
        })
    }

    pub fn info(&self, fd: RawFd, what: Info) -> Result<String> {
        self.sh.with_entry(fd, |_, e| {
            let addr = |a: Result<SocketAddr>| a.map(|a| a.to_string());
            match (what, &e.kind) {
                (Info::Error, _) => Ok(e.last_error.as_ref().map(|e| e.msg.clone()).unwrap_or_default()),
                (_, Kind::Expired(x)) => Err(x.err.clone()),
                (Info::LocalAddr, _) => addr(net::local_addr(fd)),
                (_, Kind::Listener(_)) => Err(not_conn(fd)),
                (Info::RemoteAddr, _) => addr(net::peer_addr(fd)),
                (_, Kind::Conn(c)) => {
                    let i = c.conn.session().info();
                    let s = match what {
                        Info::Version => &i.version,
                        Info::Cipher => &i.cipher,
                        Info::Alpn => &i.alpn,
                        Info::PeerSubject => &i.peer_subject,
                        _ => &i.verify,
                    };
                    Ok(s.to_string_lossy().into_owned())
                }
            }
        })
    }

    // ----- driving ----------------------------------------------------

    /// Wait up to `timeout` (None: until something happens) for events, do
    /// the I/O they allow, expire deadlines, then run the callbacks of the
    /// operations that completed.  Returns how many callbacks ran.  BUSY if
    /// another thread (or a callback of this dispatch) is dispatching.
    pub fn dispatch(&self, timeout: Option<Duration>) -> Result<usize> {
        self.sh.dispatch(timeout)
    }

    /// Dispatch until no operation is pending.
    pub fn run(&self) -> Result<()> {
        while self.pending() > 0 {
            self.dispatch(None)?;
        }
        Ok(())
    }

    /// Close every fd and cancel every operation; the cancelled callbacks
    /// run now, on this thread.  From then on new listeners and operations
    /// are refused (ERR_CANCELLED): this is the first half of freeing.
    pub fn shutdown(&self) {
        self.sh.shutdown()
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

impl Shared {
    fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn slot(&self, fd: RawFd) -> Result<Arc<Slot>> {
        lock(&self.table).get(fd).ok_or_else(|| not_open(fd))
    }

    fn check_open(&self) -> Result<()> {
        if self.closing.load(Ordering::SeqCst) {
            Err(Error::new(COROTLS_ERR_CANCELLED, "the loop is being freed"))
        } else {
            Ok(())
        }
    }

    /// Run `f` on the open entry at `fd`, remembering its failure.
    fn with_entry<R>(&self, fd: RawFd, f: impl FnOnce(&Arc<Slot>, &mut Entry) -> Result<R>) -> Result<R> {
        let slot = self.slot(fd)?;
        let mut e = lock(&slot.st);
        if e.closed {
            return Err(not_open(fd));
        }
        let r = f(&slot, &mut e);
        if let Err(err) = &r {
            e.note(err);
        }
        r
    }

    fn with_conn<R>(&self, fd: RawFd, f: impl FnOnce(&Arc<Slot>, &mut ConnEntry) -> Result<R>) -> Result<R> {
        self.with_entry(fd, |slot, e| f(slot, conn_of(e, fd)?))
    }

    /// Start an operation on a connection: the busy rule, then `f`.
    fn start<R>(&self, fd: RawFd, f: impl FnOnce(&Arc<Slot>, &mut Entry) -> Result<R>) -> Result<R> {
        self.with_entry(fd, |slot, e| {
            let c = conn_of(e, fd)?;
            if let Some(op) = &c.op {
                return Err(busy(fd, op.kind.name()));
            }
            c.chunk_fresh = false;
            // The previous inline chunk may be this operation's input (an
            // echo): it is released only once the operation has used it.
            let r = f(slot, e);
            if let Kind::Conn(c) = &mut e.kind {
                if !c.chunk_fresh {
                    c.release_chunk();
                }
                if c.watch.is_some() {
                    self.progress(c, Instant::now());
                }
            }
            if r.is_ok() {
                self.rearm(slot, e);
            }
            r
        })
    }

    /// Make `op` the entry's operation in flight, with its deadline.
    fn park(&self, slot: &Slot, e: &mut Entry, kind: OpKind, timeout: Option<Duration>, cb: Callback) -> Result<()> {
        self.check_open()?;
        // Callers checked the kind: listeners and live connections have one.
        let Some(place) = e.op_mut() else { return Err(not_open(slot.fd)) };
        let id = self.new_id();
        if let Some(t) = timeout {
            lock(&self.timers).add(id, Instant::now() + t, Target::Slot { fd: slot.fd, gen: slot.gen });
        }
        *place = Some(Op { id, kind, cb, timed: timeout.is_some() });
        self.pending.fetch_add(1, Ordering::SeqCst);
        if let Err(err) = self.try_rearm(slot, e) {
            // Nothing would ever wake this operation: undo it.
            if let Some(op) = e.take_op() {
                self.unpark(&op);
            }
            return Err(err);
        }
        Ok(())
    }

    fn unpark(&self, op: &Op) {
        if op.timed {
            lock(&self.timers).cancel(op.id);
        }
        self.pending.fetch_sub(1, Ordering::SeqCst);
    }

    /// Enable the poller interest the entry needs now.
    fn try_rearm(&self, slot: &Slot, e: &mut Entry) -> Result<()> {
        if e.closed {
            return Ok(());
        }
        let want = e.interest();
        // A disabled oneshot registration stays disabled when nothing is
        // wanted: re-enabling would report hang-ups of idle sockets.
        if want.is_none() || e.armed == want {
            return Ok(());
        }
        let ev = Event::new(slot.key(), want.read, want.write);
        // SAFETY: the entry is open (checked above, under its lock).
        self.poller.modify(unsafe { borrow(slot.fd) }, ev).map_err(|err| Error::os("poller", err))?;
        e.armed = want;
        Ok(())
    }

    fn rearm(&self, slot: &Slot, e: &mut Entry) {
        if let Err(err) = self.try_rearm(slot, e) {
            e.note(&err);
        }
    }

    /// Give `fd` (open, owned by the loop from now on) a generation and a
    /// poller registration.  The entry is published separately, so that
    /// nothing is lost if this fails.
    fn register(&self, fd: RawFd) -> Result<u32> {
        let gen = lock(&self.table).next_gen();
        // SAFETY: fd is open; every path that closes it deletes it first.
        unsafe { self.poller.add(fd, Event::none(table::key_of(fd, gen))) }.map_err(|e| Error::os("poller", e))?;
        Ok(gen)
    }

    /// Make a registered fd's entry visible in the table.
    fn publish(&self, fd: RawFd, gen: u32, kind: Kind) -> Arc<Slot> {
        // Registered with no interest: Entry::new's `armed`.
        let slot = Arc::new(Slot { fd, gen, st: Mutex::new(Entry::new(kind)) });
        let stale = lock(&self.table).insert(slot.clone());
        if let Some(old) = stale {
            self.evict(&old);
        }
        slot
    }

    /// Register and publish an fd with no operation in flight.  Closes the
    /// fd on failure.
    fn insert(&self, fd: RawFd, kind: Kind) -> Result<Arc<Slot>> {
        match self.register(fd) {
            Ok(gen) => Ok(self.publish(fd, gen, kind)),
            Err(e) => {
                net::close_fd(fd);
                Err(e)
            }
        }
    }

    /// A slot whose fd was closed behind the loop's back and reused: drop
    /// it without touching the fd (it is someone else's now).
    fn evict(&self, old: &Slot) {
        let mut e = lock(&old.st);
        e.closed = true;
        let mut out = Vec::new();
        self.cancel_op(old.fd, &mut e, &mut out);
        self.enqueue(out);
    }

    /// Hand completions made outside dispatch to the next dispatch.
    fn enqueue(&self, mut out: Vec<Completion>) {
        if !out.is_empty() {
            lock(&self.queue).append(&mut out);
            let _ = self.poller.notify();
        }
    }

    /// Wrap an accepted socket in a server session, with the deadlines
    /// accepted connections get.  Closes `fd` on failure.
    fn adopt(&self, fd: RawFd, conf: &Conf) -> Result<RawFd> {
        let conn = Conn::new(conf, fd).map_err(|e| closing(fd, e))?;
        let gen = self.register(fd).map_err(|e| closing(fd, e))?;
        let d = *lock(&self.deadlines);
        let mut c = ConnEntry::new(conn, None);
        c.watch = Watch::new(d.handshake, d.idle, Instant::now());
        let due = c.watch.as_mut().and_then(|w| {
            let at = w.due(false)?.0;
            let id = self.new_id();
            w.timer = Some(id);
            Some((id, at))
        });
        self.publish(fd, gen, Kind::Conn(Box::new(c)));
        // Added once the entry is visible: a dispatch that finds it due
        // right away must find the entry too.
        if let Some((id, at)) = due {
            lock(&self.timers).add(id, at, Target::Deadline { fd, gen });
        }
        Ok(fd)
    }

    /// Accept one connection on the listener `e` (Ok(None): none can be
    /// taken now; the operation waits).  When the process is out of fds,
    /// waiting connections are shed (see `shed_one`) instead of left to
    /// fill the backlog; with no spare fd to shed with, the listener stops
    /// watching its socket and tries again after `STARVED_RETRY`.  Either
    /// is said once, in the listener's last error.
    fn accept_one(&self, slot: &Slot, e: &mut Entry) -> Result<Option<RawFd>> {
        let Kind::Listener(l) = &mut e.kind else { return Ok(None) };
        let mut note = None;
        let mut shed = 0;
        let r = loop {
            let err = match net::try_accept(slot.fd) {
                Ok(Some(fd)) => {
                    l.shedding = false;
                    break Ok(Some(fd));
                }
                Ok(None) => break Ok(None),
                Err(err) if net::out_of_fds(&err) => err,
                Err(err) => break Err(Error::os("accept", err)),
            };
            if shed == SHED_BATCH {
                break Ok(None);
            }
            match self.shed_one(slot.fd) {
                Some(true) => {
                    shed += 1;
                    l.shed += 1;
                    if !l.shedding {
                        l.shedding = true;
                        let msg = format!(
                            "accept: {err}: new connections are shed (accepted and closed at once) until an fd is free"
                        );
                        note = Some(Error::os("accept", err).with_msg(msg));
                    }
                }
                Some(false) => break Ok(None),
                None => {
                    if l.retry.is_none() {
                        let id = self.new_id();
                        l.retry = Some(id);
                        let at = Instant::now() + STARVED_RETRY;
                        lock(&self.timers).add(id, at, Target::Retry { fd: slot.fd, gen: slot.gen });
                    }
                    let msg = format!(
                        "accept: {err}, and no spare fd to shed connections with: trying again every {} ms",
                        STARVED_RETRY.as_millis()
                    );
                    note = Some(Error::os("accept", err).with_msg(msg));
                    break Ok(None);
                }
            }
        };
        if let Some(err) = note {
            e.last_error = Some(err);
        }
        r
    }

    /// Out of fds: give the spare fd up, accept the next waiting connection
    /// with its number, close it at once (the peer sees its connection end
    /// instead of waiting in the backlog), and take the spare again.
    /// Some(true): one was shed; Some(false): none was waiting; None: no
    /// spare could be had.
    fn shed_one(&self, lfd: RawFd) -> Option<bool> {
        let mut spare = lock(&self.spare);
        let s = match spare.take() {
            Some(s) => s,
            None => net::open_spare().ok()?,
        };
        net::close_fd(s);
        let r = net::try_accept(lfd);
        if let Ok(Some(fd)) = r {
            net::close_fd(fd);
        }
        *spare = net::open_spare().ok();
        match r {
            Ok(Some(_)) => Some(true),
            Ok(None) => Some(false),
            // Someone else took the number meanwhile.
            Err(_) => None,
        }
    }

    /// A deadline ended the connection: its pending operation completes
    /// with TIMEOUT; the socket leaves the poller, is shut down and
    /// released (its number now points at the spare fd, so no new socket
    /// can get it before the host closes it); the session is freed.
    fn expire(&self, slot: &Slot, e: &mut Entry, why: Why, done: &mut Vec<Completion>) {
        if let Some(op) = e.take_op() {
            let out = Outcome::err(op_fd(&op.kind, slot.fd), why.timeout());
            self.finish(e, op, out, done);
        }
        // SAFETY: the fd is open (as a placeholder it stays open until close).
        let _ = self.poller.delete(unsafe { borrow(slot.fd) });
        net::end_keeping_number(slot.fd, *lock(&self.spare));
        let chunk = match &mut e.kind {
            Kind::Conn(c) if !c.chunk.is_empty() => std::mem::take(&mut c.chunk),
            _ => Vec::new(),
        };
        e.armed = Interest::NONE;
        e.last_error = Some(why.timeout());
        e.kind = Kind::Expired(Expired { err: why.after(slot.fd), _chunk: chunk });
    }

    /// Note a connection's progress for its deadlines.
    fn progress(&self, c: &mut ConnEntry, now: Instant) {
        if let Some(id) = c.progress(now) {
            lock(&self.timers).cancel(id);
        }
    }

    /// Open a socket to the first address that takes it, with a client
    /// session that knows `host` (the name it verifies by default): (fd,
    /// connect state, index of the next address, conn).
    fn open_conn(
        &self,
        addrs: &[SocketAddr],
        host: &str,
        conf: &Conf,
    ) -> Result<(RawFd, net::Connecting, usize, Conn)> {
        let mut last = Error::arg("no address to connect to");
        for (i, a) in addrs.iter().enumerate() {
            match net::connect_start(a) {
                Ok((fd, st)) => {
                    let mut conn = Conn::new(conf, fd).map_err(|e| closing(fd, e))?;
                    conn.session_mut().set_connect_host(host.as_bytes()).map_err(|e| closing(fd, e))?;
                    return Ok((fd, st, i + 1, conn));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// connect() for numeric addresses.
    fn connect_addrs(
        &self,
        addrs: &[SocketAddr],
        host: &str,
        conf: &Conf,
        timeout: Option<Duration>,
        cb: Callback,
    ) -> Result<(Ready<()>, RawFd)> {
        let (fd, st, next, conn) = self.open_conn(addrs, host, conf)?;
        if st == net::Connecting::Done {
            self.insert(fd, Kind::Conn(Box::new(ConnEntry::new(conn, None))))?;
            return Ok((Ready::Now(()), fd));
        }
        let gen = self.register(fd).map_err(|e| closing(fd, e))?;
        let id = self.new_id();
        if let Some(t) = timeout {
            lock(&self.timers).add(id, Instant::now() + t, Target::Slot { fd, gen });
        }
        // Counted before it is visible: dispatch may complete it at once.
        self.pending.fetch_add(1, Ordering::SeqCst);
        let op = Op { id, kind: OpKind::Connect { addrs: addrs.to_vec(), next }, cb, timed: timeout.is_some() };
        let slot = self.publish(fd, gen, Kind::Conn(Box::new(ConnEntry::new(conn, Some(op)))));
        self.rearm(&slot, &mut lock(&slot.st));
        Ok((Ready::Pending, fd))
    }

    /// Close an entry (already removed from the table): cancel its
    /// operation into `out`, one close_notify attempt, close the socket.
    fn close_entry(&self, slot: &Slot, e: &mut Entry, out: &mut Vec<Completion>) {
        if e.closed {
            return;
        }
        e.closed = true;
        self.cancel_op(slot.fd, e, out);
        let timer = match &e.kind {
            Kind::Conn(c) => c.watch.as_ref().and_then(|w| w.timer),
            Kind::Listener(l) => l.retry,
            Kind::Expired(_) => None,
        };
        if let Some(id) = timer {
            lock(&self.timers).cancel(id);
        }
        if !matches!(e.kind, Kind::Expired(_)) {
            // SAFETY: the fd is still open (closed just below).
            let _ = self.poller.delete(unsafe { borrow(slot.fd) });
        }
        if let Kind::Conn(c) = &mut e.kind {
            let _ = c.conn.shutdown();
            c.release_chunk();
            net::discard_input(slot.fd, 256 * 1024);
        }
        net::close_fd(slot.fd);
    }

    /// Remove and close an entry from dispatch (a connect that failed).
    fn discard(&self, slot: &Slot, e: &mut Entry) {
        lock(&self.table).remove(slot.fd, Some(slot.gen));
        e.closed = true;
        // SAFETY: the fd is still open (closed just below).
        let _ = self.poller.delete(unsafe { borrow(slot.fd) });
        net::close_fd(slot.fd);
    }

    /// End `op` with `out`: its deadline goes, its callback is due.
    fn finish(&self, e: &mut Entry, op: Op, out: Outcome, done: &mut Vec<Completion>) {
        if op.timed {
            lock(&self.timers).cancel(op.id);
        }
        if let Some(err) = out.error() {
            e.note(&err);
        }
        done.push(Completion { cb: op.cb, out });
    }

    /// `finish` from dispatch, where a connect that did not succeed takes
    /// its fd with it.  Returns whether the entry was discarded.
    fn complete(&self, slot: &Slot, e: &mut Entry, op: Op, out: Outcome, done: &mut Vec<Completion>) -> bool {
        let failed_connect = matches!(op.kind, OpKind::Connect { .. }) && out.code != COROTLS_OK;
        self.finish(e, op, out, done);
        if failed_connect {
            self.discard(slot, e);
        }
        failed_connect
    }

    /// End the entry's operation, if any, with CANCELLED.
    fn cancel_op(&self, fd: RawFd, e: &mut Entry, out: &mut Vec<Completion>) {
        if let Some(op) = e.take_op() {
            let fd = op_fd(&op.kind, fd);
            self.finish(e, op, Outcome::err(fd, cancelled()), out);
        }
    }

    // ----- dispatch -----------------------------------------------------

    fn dispatch(&self, timeout: Option<Duration>) -> Result<usize> {
        let Ok(mut events) = self.events.try_lock() else {
            return Err(Error::new(COROTLS_BUSY, "another thread is dispatching this loop"));
        };
        events.clear();
        let now = Instant::now();
        let queued = !lock(&self.queue).is_empty() || !lock(&self.resolved).is_empty();
        let next = lock(&self.timers).next();
        let wait = if queued || next.is_some_and(|n| n <= now) {
            Some(Duration::ZERO)
        } else {
            match (timeout, next) {
                (Some(t), Some(n)) => Some(t.min(n - now)),
                (None, Some(n)) => Some(n - now),
                (t, None) => t,
            }
        };
        self.poller.wait(&mut events, wait).map_err(|e| Error::os("poller wait", e))?;

        let now = Instant::now();
        let mut done = Vec::new();
        for ev in events.iter() {
            if ev.key == TIMER_KEY {
                if let Some(fd) = self.timerfd {
                    timers::timerfd_clear(fd);
                }
                continue;
            }
            let (fd, gen) = table::fd_gen_of(ev.key);
            let slot = lock(&self.table).get_gen(fd, gen);
            if let Some(slot) = slot {
                self.on_event(&slot, ev.readable, now, &mut done);
            }
        }
        self.on_resolved(&mut done);
        self.on_timers(&mut done);
        done.append(&mut lock(&self.queue));
        // The dispatch right is kept while callbacks run: a callback that
        // dispatches gets BUSY instead of recursing.
        let n = done.len();
        self.deliver(done);
        drop(events);
        Ok(n)
    }

    /// Run callbacks, with no lock held.
    fn deliver(&self, done: Vec<Completion>) {
        for c in done {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            let o = &c.out;
            let d = Done {
                fd: o.fd,
                code: o.code,
                data: &o.data,
                count: o.count,
                reason: o.reason,
                detail: o.detail,
                msg: &o.msg,
            };
            let cb = c.cb;
            // A Rust callback that panics must not take the loop down.
            let _ = catch_unwind(AssertUnwindSafe(move || cb(&d)));
        }
    }

    /// Work on an entry the poller reported (`readable`: the event said
    /// input is waiting; `now`: when the events came).
    fn on_event(&self, slot: &Slot, readable: bool, now: Instant, done: &mut Vec<Completion>) {
        #[cfg(test)]
        self.visits.fetch_add(1, Ordering::Relaxed);
        let mut e = lock(&slot.st);
        if e.closed {
            return;
        }
        e.armed = Interest::NONE;
        match &mut e.kind {
            Kind::Listener(_) => self.step_listener(slot, &mut e, done),
            Kind::Conn(_) => self.step_conn(slot, &mut e, readable, done),
            Kind::Expired(_) => {}
        }
        if let Kind::Conn(c) = &mut e.kind {
            if c.watch.is_some() {
                self.progress(c, now);
            }
        }
        if !e.closed {
            if let Err(err) = self.try_rearm(slot, &mut e) {
                // Nothing would wake the operation again: fail it.
                match e.take_op() {
                    Some(op) => {
                        let fd = op_fd(&op.kind, slot.fd);
                        self.complete(slot, &mut e, op, Outcome::err(fd, err), done);
                    }
                    None => e.note(&err),
                }
            }
        }
    }

    fn step_listener(&self, slot: &Slot, e: &mut Entry, done: &mut Vec<Completion>) {
        let Kind::Listener(l) = &mut e.kind else { return };
        if l.op.is_none() || l.retry.is_some() {
            return;
        }
        let taken = self.accept_one(slot, e);
        let Kind::Listener(l) = &mut e.kind else { return };
        let Some(op) = l.op.take() else { return };
        let OpKind::Accept { conf } = &op.kind else { return };
        let out = match taken {
            Ok(None) => {
                l.op = Some(op);
                return;
            }
            Ok(Some(fd)) => {
                let conf = conf.as_ref().or(l.conf.as_ref()).cloned();
                match conf {
                    Some(conf) => match self.adopt(fd, &conf) {
                        Ok(fd) => Outcome::ok(fd),
                        Err(err) => Outcome::err(-1, err),
                    },
                    None => {
                        net::close_fd(fd);
                        Outcome::err(-1, Error::arg("the listener has no conf any more"))
                    }
                }
            }
            Err(err) => Outcome::err(-1, err),
        };
        self.finish(e, op, out, done);
    }

    fn step_conn(&self, slot: &Slot, e: &mut Entry, readable: bool, done: &mut Vec<Completion>) {
        let fd = slot.fd;
        let Kind::Conn(c) = &mut e.kind else { return };
        let shook = c.conn.session().handshake_done();
        let read_op = matches!(c.op.as_ref().map(|o| &o.kind), Some(OpKind::Read(_)));
        if let Some(mut op) = c.op.take() {
            let r = match &mut op.kind {
                OpKind::Connect { addrs, next } => match self.connect_progress(slot, &mut e.armed, addrs, next) {
                    Poll::Ready(Ok(())) => Poll::Ready(Outcome::ok(fd)),
                    Poll::Ready(Err(err)) => Poll::Ready(Outcome::err(-1, err)),
                    Poll::Pending => Poll::Pending,
                },
                OpKind::Handshake => c.try_handshake().map(|r| Outcome::of(fd, r)),
                OpKind::Send { data, done: sent, before } => {
                    c.try_send(data, sent).map(|r| Outcome::of(fd, r).with_count(*before + *sent))
                }
                OpKind::Read(st) => c.try_read(st).map(|r| match r {
                    Ok(n) => {
                        let mut data = Vec::new();
                        take_plain(&mut c.conn, n, &mut data);
                        Outcome::ok(fd).with_data(data)
                    }
                    Err(err) => Outcome::err(fd, err),
                }),
                OpKind::Accept { .. } => Poll::Pending,
            };
            match r {
                Poll::Pending => c.op = Some(op),
                Poll::Ready(out) => {
                    if self.complete(slot, e, op, out, done) {
                        return;
                    }
                }
            }
        }
        let Kind::Conn(c) = &mut e.kind else { return };
        // Read ahead only where there may be something to take: not after
        // a read operation, which has just pulled all there was (interest is
        // oneshot: input left over is reported again once re-armed), and
        // not on a writable-only event, unless this step finished the
        // handshake (records that came with its last flight may wait in
        // the session, undecrypted).
        let pull = !read_op && (readable || (!shook && c.conn.session().handshake_done()));
        if let Some(err) = c.background(pull) {
            e.note(&err);
        }
    }

    /// Check a connect in progress; on failure try the next addresses on
    /// the same fd number until one starts.  The socket's result is read
    /// once: reading SO_ERROR clears it, so a socket whose connect failed
    /// would then look still in progress.
    fn connect_progress(
        &self,
        slot: &Slot,
        armed: &mut Interest,
        addrs: &[SocketAddr],
        next: &mut usize,
    ) -> Poll<Result<()>> {
        let mut err = match net::connect_result(slot.fd) {
            Ok(Some(())) => return Poll::Ready(Ok(())),
            Ok(None) => return Poll::Pending,
            Err(err) => err,
        };
        while let Some(a) = addrs.get(*next) {
            *next += 1;
            // The registration belongs to the socket being replaced.
            // SAFETY: the fd is open.
            let _ = self.poller.delete(unsafe { borrow(slot.fd) });
            let started = net::connect_again(slot.fd, a);
            // SAFETY: the fd is open (a new socket now has the number).
            if let Err(e) = unsafe { self.poller.add(slot.fd, Event::none(slot.key())) } {
                return Poll::Ready(Err(Error::os("poller", e)));
            }
            *armed = Interest::NONE;
            match started {
                Ok(net::Connecting::Done) => return Poll::Ready(Ok(())),
                Ok(net::Connecting::InProgress) => return Poll::Pending,
                // Failed at once: the socket has nothing more to say.
                Err(e) => err = e,
            }
        }
        Poll::Ready(Err(err))
    }

    /// Names resolved off the loop: open the connection under the
    /// operation id the caller already has (its deadline follows the fd).
    fn on_resolved(&self, done: &mut Vec<Completion>) {
        let resolved = std::mem::take(&mut *lock(&self.resolved));
        for (id, r) in resolved {
            // Gone: it timed out or the loop shut down meanwhile.
            let Some(req) = lock(&self.resolving).remove(&id) else { continue };
            let opened = r.and_then(|addrs| {
                let (fd, _, next, conn) = self.open_conn(&addrs, &req.host, &req.conf)?;
                let gen = self.register(fd).map_err(|e| closing(fd, e))?;
                Ok((fd, gen, next, conn, addrs))
            });
            match opened {
                Err(err) => {
                    if req.timed {
                        lock(&self.timers).cancel(id);
                    }
                    done.push(Completion { cb: req.cb, out: Outcome::err(-1, err) });
                }
                Ok((fd, gen, next, conn, addrs)) => {
                    lock(&self.timers).retarget(id, Target::Slot { fd, gen });
                    // Even a socket connected at once reports writability:
                    // the connect completes through the usual path.
                    let op = Op { id, kind: OpKind::Connect { addrs, next }, cb: req.cb, timed: req.timed };
                    let slot = self.publish(fd, gen, Kind::Conn(Box::new(ConnEntry::new(conn, Some(op)))));
                    self.rearm(&slot, &mut lock(&slot.st));
                }
            }
        }
    }

    fn on_timers(&self, done: &mut Vec<Completion>) {
        let expired = {
            let mut t = lock(&self.timers);
            let x = t.expired(Instant::now());
            t.rearm();
            x
        };
        for (id, target) in expired {
            match target {
                Target::Resolving => {
                    if let Some(req) = lock(&self.resolving).remove(&id) {
                        done.push(Completion { cb: req.cb, out: Outcome::err(-1, timed_out("connect")) });
                    }
                }
                Target::Slot { fd, gen } => {
                    #[cfg(test)]
                    self.visits.fetch_add(1, Ordering::Relaxed);
                    let Some(slot) = lock(&self.table).get_gen(fd, gen) else { continue };
                    let mut e = lock(&slot.st);
                    if e.closed || e.op_id() != Some(id) {
                        continue;
                    }
                    let mut op = e.take_op().expect("checked above");
                    op.timed = false;
                    let what = op.kind.name();
                    let out = match (&op.kind, &mut e.kind) {
                        (OpKind::Connect { .. } | OpKind::Accept { .. }, _) => Outcome::err(-1, timed_out(what)),
                        (OpKind::Send { done: sent, before, .. }, Kind::Conn(c)) => {
                            let committed = before + sent + c.conn.abandon_write();
                            Outcome::err(fd, timed_out(what)).with_count(committed)
                        }
                        _ => Outcome::err(fd, timed_out(what)),
                    };
                    if !self.complete(&slot, &mut e, op, out, done) {
                        self.rearm(&slot, &mut e);
                    }
                }
                Target::Deadline { fd, gen } => {
                    #[cfg(test)]
                    self.visits.fetch_add(1, Ordering::Relaxed);
                    let Some(slot) = lock(&self.table).get_gen(fd, gen) else { continue };
                    let mut e = lock(&slot.st);
                    if e.closed {
                        continue;
                    }
                    let Kind::Conn(c) = &mut e.kind else { continue };
                    let shook = c.conn.session().handshake_done();
                    let Some(w) = c.watch.as_mut().filter(|w| w.timer == Some(id)) else { continue };
                    w.timer = None;
                    match w.due(shook) {
                        None => c.watch = None,
                        Some((at, why)) if at <= Instant::now() => self.expire(&slot, &mut e, why, done),
                        Some((at, _)) => {
                            // Early: bytes moved or the handshake finished since.
                            let id = self.new_id();
                            w.timer = Some(id);
                            lock(&self.timers).add(id, at, Target::Deadline { fd, gen });
                        }
                    }
                }
                Target::Retry { fd, gen } => {
                    let Some(slot) = lock(&self.table).get_gen(fd, gen) else { continue };
                    let mut e = lock(&slot.st);
                    if e.closed {
                        continue;
                    }
                    match &mut e.kind {
                        Kind::Listener(l) if l.retry == Some(id) => l.retry = None,
                        _ => continue,
                    }
                    self.rearm(&slot, &mut e);
                }
            }
        }
    }

    fn shutdown(&self) {
        self.closing.store(true, Ordering::SeqCst);
        let slots = lock(&self.table).drain();
        let mut out = Vec::new();
        for slot in slots {
            self.close_entry(&slot, &mut lock(&slot.st), &mut out);
        }
        let resolving: Vec<(u64, Resolving)> = lock(&self.resolving).drain().collect();
        for (id, req) in resolving {
            if req.timed {
                lock(&self.timers).cancel(id);
            }
            out.push(Completion { cb: req.cb, out: Outcome::err(-1, cancelled()) });
        }
        lock(&self.resolved).clear();
        out.append(&mut lock(&self.queue));
        self.deliver(out);
    }
}
