//! Outgoing connections: opening the socket, trying each resolved address
//! in turn, and picking up names resolved off the loop.

// Part of the loop module: these are methods of its private types.
use super::*;

impl Shared {
    /// Open a socket to the first address that takes it, with a client
    /// session that knows `host` (the name it verifies by default): (fd,
    /// connect state, index of the next address, conn).
    pub(super) fn open_conn(
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
                    // The conf's session cache, keyed by where this connects.
                    if conf.session_cache().is_some() {
                        conn.session_mut().set_resume_key(host.as_bytes(), a.port()).map_err(|e| closing(fd, e))?;
                    }
                    return Ok((fd, st, i + 1, conn));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// connect() for numeric addresses.
    pub(super) fn connect_addrs(
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

    /// Check a connect in progress; on failure try the next addresses on
    /// the same fd number until one starts.  The socket's result is read
    /// once: reading SO_ERROR clears it, so a socket whose connect failed
    /// would then look still in progress.
    pub(super) fn connect_progress(
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
    pub(super) fn on_resolved(&self, done: &mut Vec<Completion>) {
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
}
