//! Dispatch: wait for events, step the entries they name, expire
//! deadlines, then run the completions' callbacks with no lock held.

// Part of the loop module: these are methods of its private types.
use super::*;

impl Shared {
    pub(super) fn dispatch(&self, timeout: Option<Duration>) -> Result<usize> {
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
                self.arm_sweep(now);
                self.guarded(&slot, &mut done, |done| self.on_event(&slot, ev.readable, now, done));
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

    /// Run one step of an entry's work (an event, a deadline).  A panic in
    /// it (a bug in corotls) must not lose the entry's operation, or `run`
    /// would wait for it forever: the operation completes with
    /// ERR_INTERNAL, and the connection is failed (further operations get
    /// that error).  Completions the step made before the panic stand.
    pub(super) fn guarded(&self, slot: &Slot, done: &mut Vec<Completion>, step: impl FnOnce(&mut Vec<Completion>)) {
        let Err(p) = catch_unwind(AssertUnwindSafe(|| step(done))) else { return };
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let err = Error::new(COROTLS_ERR_INTERNAL, format!("internal error (bug in corotls): {msg}"));
        // The step's lock was poisoned by the panic; `lock` takes it anyway.
        let mut e = lock(&slot.st);
        if e.closed {
            return;
        }
        if let Kind::Conn(c) = &mut e.kind {
            c.conn.session_mut().fail(err.clone());
            c.read_dead = true;
            c.write_dead = true;
        }
        if let Some(op) = e.take_op() {
            let fd = op_fd(&op.kind, slot.fd);
            self.complete(slot, &mut e, op, Outcome::err(fd, err.clone()), done);
        }
        e.note(&err);
    }

    /// Run callbacks, with no lock held.
    pub(super) fn deliver(&self, done: Vec<Completion>) {
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
    pub(super) fn on_event(&self, slot: &Slot, readable: bool, now: Instant, done: &mut Vec<Completion>) {
        #[cfg(test)]
        self.visits.fetch_add(1, Ordering::Relaxed);
        let mut e = lock(&slot.st);
        if e.closed {
            return;
        }
        #[cfg(test)]
        if self.panic_next_step.swap(false, Ordering::SeqCst) {
            panic!("injected by a test");
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

    pub(super) fn step_conn(&self, slot: &Slot, e: &mut Entry, readable: bool, done: &mut Vec<Completion>) {
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
                OpKind::Shutdown => c.try_shutdown().map(|r| Outcome::of(fd, r)),
                OpKind::Sendfile(st) => c.try_sendfile(st).map(|r| Outcome::of(fd, r).with_count(st.sent as usize)),
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

    pub(super) fn on_timers(&self, done: &mut Vec<Completion>) {
        let expired = {
            let mut t = lock(&self.timers);
            let x = t.expired(Instant::now());
            t.rearm();
            x
        };
        for (id, target) in expired {
            let slot = match target {
                Target::Resolving | Target::Sweep => None,
                Target::Slot { fd, gen } | Target::Deadline { fd, gen } | Target::Retry { fd, gen } => {
                    lock(&self.table).get_gen(fd, gen)
                }
            };
            match slot {
                Some(slot) => self.guarded(&slot, done, |done| self.on_timer(id, target, done)),
                None => self.on_timer(id, target, done),
            }
        }
    }

    /// One expired deadline.
    fn on_timer(&self, id: u64, target: Target, done: &mut Vec<Completion>) {
        match target {
            Target::Sweep => self.sweep(),
            Target::Resolving => {
                if let Some(req) = lock(&self.resolving).remove(&id) {
                    done.push(Completion { cb: req.cb, out: Outcome::err(-1, timed_out("connect")) });
                }
            }
            Target::Slot { fd, gen } => {
                #[cfg(test)]
                self.visits.fetch_add(1, Ordering::Relaxed);
                let Some(slot) = lock(&self.table).get_gen(fd, gen) else { return };
                let mut e = lock(&slot.st);
                if e.closed || e.op_id() != Some(id) {
                    return;
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
                    (OpKind::Sendfile(st), Kind::Conn(c)) => {
                        let committed = st.sent as usize + c.conn.abandon_write();
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
                let Some(slot) = lock(&self.table).get_gen(fd, gen) else { return };
                let mut e = lock(&slot.st);
                if e.closed {
                    return;
                }
                let Kind::Conn(c) = &mut e.kind else { return };
                let shook = c.conn.session().handshake_done();
                let Some(w) = c.watch.as_mut().filter(|w| w.timer == Some(id)) else { return };
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
                let Some(slot) = lock(&self.table).get_gen(fd, gen) else { return };
                let mut e = lock(&slot.st);
                if e.closed {
                    return;
                }
                match &mut e.kind {
                    Kind::Listener(l) if l.retry == Some(id) => l.retry = None,
                    _ => return,
                }
                self.rearm(&slot, &mut e);
            }
        }
    }
}
