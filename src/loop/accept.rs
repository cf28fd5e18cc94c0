//! Accepted connections: taking them from a listener (shedding them when
//! the process is out of fds), wrapping them in server sessions, and the
//! handshake and idle deadlines that protect a server from silent peers.

// Part of the loop module: these are methods of its private types.
use super::*;

impl Shared {
    /// Wrap an accepted socket in a server session, with the deadlines
    /// accepted connections get.  Closes `fd` on failure.
    pub(super) fn adopt(&self, fd: RawFd, conf: &Conf) -> Result<RawFd> {
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
    pub(super) fn accept_one(&self, slot: &Slot, e: &mut Entry) -> Result<Option<RawFd>> {
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
    pub(super) fn shed_one(&self, lfd: RawFd) -> Option<bool> {
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
    pub(super) fn expire(&self, slot: &Slot, e: &mut Entry, why: Why, done: &mut Vec<Completion>) {
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
    pub(super) fn progress(&self, c: &mut ConnEntry, now: Instant) {
        if let Some(id) = c.progress(now) {
            lock(&self.timers).cancel(id);
        }
    }

    pub(super) fn step_listener(&self, slot: &Slot, e: &mut Entry, done: &mut Vec<Completion>) {
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
}
