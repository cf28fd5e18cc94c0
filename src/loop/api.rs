//! The loop's public API: what hosts call (listen, accept, connect, the
//! operations, settings and queries).  Each call checks its arguments and
//! the busy rule, tries the work inline, and parks what must wait.

// Part of the loop module: these are methods of its private types.
use super::*;

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
        Shared::with_alarm(poller, timerfd, timerfd.map(timers::Alarm::Fd))
    }

    /// A loop whose timers wake it through a thread, as where there is no
    /// timerfd: how tests on Linux cover that path.
    #[cfg(test)]
    pub(crate) fn with_alarm_thread() -> Result<Loop> {
        let poller = Poller::new().map_err(|e| Error::os("cannot create the poller", e))?;
        Shared::with_alarm(poller, None, None)
    }
}

impl Shared {
    /// The loop's shared state; `alarm` None: a thread (see
    /// `timers::AlarmThread`), which wakes the poller through a weak
    /// reference, so it never keeps the loop alive.
    fn with_alarm(poller: Poller, timerfd: Option<RawFd>, alarm: Option<timers::Alarm>) -> Result<Loop> {
        let alarm = match alarm {
            Some(a) => a,
            None => {
                let wake: Arc<Mutex<Weak<Shared>>> = Arc::new(Mutex::new(Weak::new()));
                let theirs = wake.clone();
                let thread = timers::AlarmThread::spawn(Box::new(move || {
                    if let Some(sh) = lock(&theirs).upgrade() {
                        let _ = sh.poller.notify();
                    }
                }))
                .map_err(|e| Error::os("cannot start the timer thread", e))?;
                let sh = Arc::new(Shared::new(poller, None, timers::Alarm::Thread(thread)));
                *lock(&wake) = Arc::downgrade(&sh);
                return Ok(Loop { sh });
            }
        };
        Ok(Loop { sh: Arc::new(Shared::new(poller, timerfd, alarm)) })
    }

    fn new(poller: Poller, timerfd: Option<RawFd>, alarm: timers::Alarm) -> Shared {
        Shared {
            poller,
            timerfd,
            table: Mutex::new(Table::default()),
            timers: Mutex::new(Timers::new(alarm)),
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
            #[cfg(test)]
            panic_next_step: AtomicBool::new(false),
            sweep: Mutex::new(sweep::SweepState::default()),
            events: Mutex::new(Events::new()),
            resolver: Resolver::default(),
        }
    }
}

impl Loop {
    /// The pollable fd: readable when `dispatch` has work (I/O, a due
    /// timer, or completions queued by another thread).
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

    /// Tests: make the next entry step of dispatch panic, as a bug would.
    #[cfg(test)]
    pub(crate) fn inject_panic(&self) {
        self.sh.panic_next_step.store(true, Ordering::SeqCst);
    }

    /// Time until the earliest deadline (None: no deadline).
    pub fn next_timeout(&self) -> Option<Duration> {
        // The buffer sweep is not a deadline (nothing fails if it is late;
        // the loop's fd still wakes a host for it).
        let sweep = self.sh.sweep_timer();
        let next = lock(&self.sh.timers).next_except(sweep)?;
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
                (Info::Error, _) => Ok(e.last_error.as_ref().map(|e| e.msg.to_string()).unwrap_or_default()),
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
