//! The buffer sweep: memory of quiet connections goes back, once a second.
//!
//! A busy connection keeps its buffers (OpenSSL's two record buffers, the
//! two ciphertext FIFOs, the plaintext buffer and the read chunk: some
//! 70 KiB), so no record pays for an allocation.  A connection that moved
//! no byte for a whole sweep period gives back those that hold nothing
//! (idle: ~10 KiB instead of ~67 KiB).  The sweep is a timer, armed by
//! socket events and re-armed while some connection was busy, so a quiet
//! loop is not woken.  After many connections closed, `malloc_trim` returns
//! the allocator's free pages to the system (glibc keeps them otherwise:
//! RSS stayed at 2.5x its pre-load value).

use super::*;

/// How long a connection must be quiet before its buffers go back.
pub(super) const SWEEP_PERIOD: Duration = Duration::from_secs(1);
/// Connections the loop must have had for a mass close to be trimmed after,
/// or must have released buffers since the last trim (the freed blocks lie
/// between live ones, where glibc does not return them by itself); the
/// loop also trims when it goes quiet after releases.
const TRIM_FROM: usize = 256;

#[derive(Default)]
pub(super) struct SweepState {
    /// The id of the sweep's timer while one is armed.
    armed: Option<u64>,
    /// Most connections seen by a sweep since the last trim.
    peak: usize,
    /// Connections that gave buffers back since the last trim.
    released: usize,
}

impl Shared {
    /// A socket event: make sure a sweep comes.
    pub(super) fn arm_sweep(&self, now: Instant) {
        let mut s = lock(&self.sweep);
        if s.armed.is_none() {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            s.armed = Some(id);
            drop(s);
            lock(&self.timers).add(id, now + SWEEP_PERIOD, Target::Sweep);
        }
    }

    /// The sweep's timer, if armed.
    pub(super) fn sweep_timer(&self) -> Option<u64> {
        lock(&self.sweep).armed
    }

    /// Visit every connection (see `ConnEntry::sweep`); come back while
    /// some connection was busy; trim after a mass close.
    pub(super) fn sweep(&self) {
        let slots = lock(&self.table).all();
        let (mut conns, mut busy, mut released) = (0, false, 0);
        for slot in slots {
            let mut e = lock(&slot.st);
            if e.closed {
                continue;
            }
            if let Kind::Conn(c) = &mut e.kind {
                conns += 1;
                match c.sweep() {
                    None => busy = true,
                    Some(gave) => released += gave as usize,
                }
            }
        }
        let trim = {
            let mut s = lock(&self.sweep);
            s.armed = None;
            s.peak = s.peak.max(conns);
            s.released += released;
            // A mass close, many releases, or the last of them before the
            // loop goes quiet.
            let trim =
                (s.peak >= TRIM_FROM && conns <= s.peak / 2) || s.released >= TRIM_FROM || (s.released > 0 && !busy);
            if trim {
                s.peak = conns;
                s.released = 0;
            }
            trim
        };
        if busy || (conns > 0 && trim) {
            self.arm_sweep(Instant::now());
        }
        if trim {
            lock(&self.table).shrink();
            lock(&self.timers).shrink();
            trim_heap();
        }
    }
}

/// Give the allocator's free pages back to the system.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
