//! The life of an entry and its operation: lookup, the busy rule, parking
//! an operation with its deadline, re-arming the poller, publishing and
//! closing entries, finishing operations into completions.

// Part of the loop module: these are methods of its private types.
use super::*;

impl Shared {
    pub(super) fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn slot(&self, fd: RawFd) -> Result<Arc<Slot>> {
        lock(&self.table).get(fd).ok_or_else(|| not_open(fd))
    }

    pub(super) fn check_open(&self) -> Result<()> {
        if self.closing.load(Ordering::SeqCst) {
            Err(Error::new(COROTLS_ERR_CANCELLED, "the loop is being freed"))
        } else {
            Ok(())
        }
    }

    /// Run `f` on the open entry at `fd`, remembering its failure.
    pub(super) fn with_entry<R>(&self, fd: RawFd, f: impl FnOnce(&Arc<Slot>, &mut Entry) -> Result<R>) -> Result<R> {
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

    pub(super) fn with_conn<R>(&self, fd: RawFd, f: impl FnOnce(&Arc<Slot>, &mut ConnEntry) -> Result<R>) -> Result<R> {
        self.with_entry(fd, |slot, e| f(slot, conn_of(e, fd)?))
    }

    /// Start an operation on a connection: the busy rule, then `f`.
    pub(super) fn start<R>(&self, fd: RawFd, f: impl FnOnce(&Arc<Slot>, &mut Entry) -> Result<R>) -> Result<R> {
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
    pub(super) fn park(
        &self,
        slot: &Slot,
        e: &mut Entry,
        kind: OpKind,
        timeout: Option<Duration>,
        cb: Callback,
    ) -> Result<()> {
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

    pub(super) fn unpark(&self, op: &Op) {
        if op.timed {
            lock(&self.timers).cancel(op.id);
        }
        self.pending.fetch_sub(1, Ordering::SeqCst);
    }

    /// Enable the poller interest the entry needs now.
    pub(super) fn try_rearm(&self, slot: &Slot, e: &mut Entry) -> Result<()> {
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

    pub(super) fn rearm(&self, slot: &Slot, e: &mut Entry) {
        if let Err(err) = self.try_rearm(slot, e) {
            e.note(&err);
        }
    }

    /// Give `fd` (open, owned by the loop from now on) a generation and a
    /// poller registration.  The entry is published separately, so that
    /// nothing is lost if this fails.
    pub(super) fn register(&self, fd: RawFd) -> Result<u32> {
        let gen = lock(&self.table).next_gen();
        // SAFETY: fd is open; every path that closes it deletes it first.
        unsafe { self.poller.add(fd, Event::none(table::key_of(fd, gen))) }.map_err(|e| Error::os("poller", e))?;
        Ok(gen)
    }

    /// Make a registered fd's entry visible in the table.
    pub(super) fn publish(&self, fd: RawFd, gen: u32, kind: Kind) -> Arc<Slot> {
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
    pub(super) fn insert(&self, fd: RawFd, kind: Kind) -> Result<Arc<Slot>> {
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
    pub(super) fn evict(&self, old: &Slot) {
        let mut e = lock(&old.st);
        e.closed = true;
        let mut out = Vec::new();
        self.cancel_op(old.fd, &mut e, &mut out);
        self.enqueue(out);
    }

    /// Hand completions made outside dispatch to the next dispatch.
    pub(super) fn enqueue(&self, mut out: Vec<Completion>) {
        if !out.is_empty() {
            lock(&self.queue).append(&mut out);
            let _ = self.poller.notify();
        }
    }

    /// Close an entry (already removed from the table): cancel its
    /// operation into `out`, one close_notify attempt, close the socket.
    pub(super) fn close_entry(&self, slot: &Slot, e: &mut Entry, out: &mut Vec<Completion>) {
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
    pub(super) fn discard(&self, slot: &Slot, e: &mut Entry) {
        lock(&self.table).remove(slot.fd, Some(slot.gen));
        e.closed = true;
        // SAFETY: the fd is still open (closed just below).
        let _ = self.poller.delete(unsafe { borrow(slot.fd) });
        net::close_fd(slot.fd);
    }

    /// End `op` with `out`: its deadline goes, its callback is due.
    pub(super) fn finish(&self, e: &mut Entry, op: Op, out: Outcome, done: &mut Vec<Completion>) {
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
    pub(super) fn complete(
        &self,
        slot: &Slot,
        e: &mut Entry,
        op: Op,
        out: Outcome,
        done: &mut Vec<Completion>,
    ) -> bool {
        let failed_connect = matches!(op.kind, OpKind::Connect { .. }) && out.code != COROTLS_OK;
        self.finish(e, op, out, done);
        if failed_connect {
            self.discard(slot, e);
        }
        failed_connect
    }

    /// End the entry's operation, if any, with CANCELLED.
    pub(super) fn cancel_op(&self, fd: RawFd, e: &mut Entry, out: &mut Vec<Completion>) {
        if let Some(op) = e.take_op() {
            let fd = op_fd(&op.kind, fd);
            self.finish(e, op, Outcome::err(fd, cancelled()), out);
        }
    }

    pub(super) fn shutdown(&self) {
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
