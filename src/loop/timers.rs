//! Operation deadlines: a binary heap with lazy removal, plus an alarm
//! armed at the earliest deadline so that the loop's pollable fd becomes
//! readable when a timer is due: a timerfd on Linux, elsewhere a thread
//! that sleeps until the deadline and then wakes the poller.
//!
//! Costs: adding and popping are O(log n); cancelling is O(1) (the heap
//! entry becomes stale and is dropped when it reaches the top, or by a
//! rebuild once stale entries outnumber live ones).

use super::Target;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::RawFd;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What makes the loop's fd readable when the earliest deadline is due.
pub(super) enum Alarm {
    /// A timerfd the poller watches (Linux).
    Fd(RawFd),
    /// A thread that waits for the deadline and wakes the poller.
    Thread(AlarmThread),
    /// Nothing: dispatch sees due timers only when it wakes for another
    /// reason (tests of the heap alone).
    #[cfg(test)]
    Off,
}

pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    live: HashMap<u64, Target>,
    alarm: Alarm,
    /// Deadline the alarm is set to.
    armed: Option<Instant>,
}

impl Timers {
    pub fn new(alarm: Alarm) -> Timers {
        Timers { heap: BinaryHeap::new(), live: HashMap::new(), alarm, armed: None }
    }

    pub fn add(&mut self, id: u64, deadline: Instant, target: Target) {
        self.heap.push(Reverse((deadline, id)));
        self.live.insert(id, target);
        if self.armed.map_or(true, |a| deadline < a) {
            self.arm(Some(deadline));
        }
    }

    /// Point a live timer at a new target (a resolved connect now has an fd).
    pub fn retarget(&mut self, id: u64, target: Target) {
        if let Some(t) = self.live.get_mut(&id) {
            *t = target;
        }
    }

    pub fn cancel(&mut self, id: u64) {
        if self.live.remove(&id).is_some() && self.heap.len() > 64 && self.heap.len() > 2 * self.live.len() {
            let live = &self.live;
            self.heap.retain(|Reverse((_, id))| live.contains_key(id));
        }
    }

    /// Remove and return the timers due at `now`.
    pub fn expired(&mut self, now: Instant) -> Vec<(u64, Target)> {
        let mut out = Vec::new();
        while let Some(Reverse((deadline, id))) = self.heap.peek().copied() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if let Some(t) = self.live.remove(&id) {
                out.push((id, t));
            }
        }
        out
    }

    /// The earliest live deadline (stale entries at the top are dropped).
    pub fn next(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, id))) = self.heap.peek().copied() {
            if self.live.contains_key(&id) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Give back the room a crowd of connections' deadlines left (after a
    /// mass close): stale heap entries go, both tables shrink.
    pub fn shrink(&mut self) {
        let live = &self.live;
        self.heap.retain(|Reverse((_, id))| live.contains_key(id));
        self.heap.shrink_to_fit();
        self.live.shrink_to_fit();
    }

    /// The earliest live deadline other than timer `skip`'s.
    pub fn next_except(&mut self, skip: Option<u64>) -> Option<Instant> {
        let first = self.next()?;
        let Some(Reverse((_, top))) = self.heap.peek().copied() else { return Some(first) };
        if Some(top) != skip {
            return Some(first);
        }
        let held = self.heap.pop().expect("peeked");
        let second = self.next();
        self.heap.push(held);
        second
    }

    /// Set the timerfd to the earliest deadline (or disarm it).
    pub fn rearm(&mut self) {
        let next = self.next();
        if next != self.armed {
            self.arm(next);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.live.len()
    }

    fn arm(&mut self, at: Option<Instant>) {
        self.armed = at;
        match &self.alarm {
            Alarm::Fd(fd) => set_timerfd(*fd, at.map(|a| a.saturating_duration_since(Instant::now()))),
            Alarm::Thread(t) => t.set(at),
            #[cfg(test)]
            Alarm::Off => {}
        }
    }
}

/// The alarm where there is no timerfd: a thread that sleeps until the
/// deadline it was given (or a new one), then calls `wake` once.
pub(super) struct AlarmThread {
    shared: Arc<(Mutex<AlarmState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

struct AlarmState {
    at: Option<Instant>,
    stop: bool,
}

impl AlarmThread {
    pub fn spawn(wake: Box<dyn Fn() + Send>) -> std::io::Result<AlarmThread> {
        let shared = Arc::new((Mutex::new(AlarmState { at: None, stop: false }), Condvar::new()));
        let theirs = shared.clone();
        let thread = std::thread::Builder::new().name("corotls-alarm".into()).spawn(move || {
            let (m, cv) = &*theirs;
            let mut st = m.lock().unwrap_or_else(|e| e.into_inner());
            while !st.stop {
                let now = Instant::now();
                st = match st.at {
                    Some(at) if at <= now => {
                        st.at = None;
                        drop(st);
                        wake();
                        m.lock().unwrap_or_else(|e| e.into_inner())
                    }
                    Some(at) => cv.wait_timeout(st, at - now).unwrap_or_else(|e| e.into_inner()).0,
                    None => cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                };
            }
        })?;
        Ok(AlarmThread { shared, thread: Some(thread) })
    }

    fn set(&self, at: Option<Instant>) {
        let (m, cv) = &*self.shared;
        m.lock().unwrap_or_else(|e| e.into_inner()).at = at;
        cv.notify_one();
    }
}

impl Drop for AlarmThread {
    fn drop(&mut self) {
        let (m, cv) = &*self.shared;
        m.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        cv.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A non-blocking CLOCK_MONOTONIC timerfd, or None where there is none.
pub(super) fn timerfd_new() -> Option<RawFd> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd >= 0 {
            return Some(fd);
        }
    }
    None
}

/// Fire once after `after` (None: disarm).  A zero delay fires at once.
fn set_timerfd(fd: RawFd, after: Option<Duration>) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let value = match after {
            None => libc::timespec { tv_sec: 0, tv_nsec: 0 },
            Some(d) => {
                // tv_sec/tv_nsec both zero would disarm: round up to 1 ns.
                let d = d.max(Duration::from_nanos(1));
                libc::timespec { tv_sec: d.as_secs().min(i32::MAX as u64) as _, tv_nsec: d.subsec_nanos() as _ }
            }
        };
        let spec = libc::itimerspec { it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 }, it_value: value };
        // SAFETY: fd is our timerfd; spec lives across the call.
        unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) };
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (fd, after);
}

/// Consume the timerfd's expirations so that it stops being readable.
pub(super) fn timerfd_clear(fd: RawFd) {
    let mut ticks = [0u8; 8];
    // SAFETY: reads at most 8 bytes into ticks; EAGAIN is fine.
    unsafe { libc::read(fd, ticks.as_mut_ptr() as *mut libc::c_void, 8) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_orders_cancels_and_compacts() {
        let mut t = Timers::new(Alarm::Off);
        let now = Instant::now();
        for i in 0..200u64 {
            t.add(i, now + Duration::from_millis(1000 - i), Target::Resolving);
        }
        assert_eq!(t.next(), Some(now + Duration::from_millis(801)));
        for i in 100..200u64 {
            t.cancel(i);
        }
        assert_eq!(t.len(), 100);
        // Compaction kept the heap within twice the live count.
        assert!(t.heap.len() <= 2 * t.len() + 64);
        assert_eq!(t.next(), Some(now + Duration::from_millis(901)));
        let due = t.expired(now + Duration::from_millis(950));
        let mut ids: Vec<u64> = due.iter().map(|(id, _)| *id).collect();
        ids.sort();
        assert_eq!(ids, (50..100).collect::<Vec<_>>());
        assert_eq!(t.len(), 50);
        assert!(t.expired(now).is_empty());
    }

    #[test]
    fn timerfd_fires_at_the_earliest_deadline() {
        let Some(fd) = timerfd_new() else { return };
        let mut t = Timers::new(Alarm::Fd(fd));
        let now = Instant::now();
        t.add(1, now + Duration::from_secs(60), Target::Resolving);
        t.add(2, now, Target::Resolving);
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 5000) }, 1);
        timerfd_clear(fd);
        assert_eq!(t.expired(Instant::now()).len(), 1);
        t.rearm();
        pfd.revents = 0;
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0);
        crate::net::close_fd(fd);
    }

    #[test]
    fn alarm_thread_wakes_at_the_earliest_deadline() {
        let (tx, rx) = std::sync::mpsc::channel();
        let alarm = AlarmThread::spawn(Box::new(move || tx.send(Instant::now()).unwrap())).unwrap();
        let mut t = Timers::new(Alarm::Thread(alarm));
        let start = Instant::now();
        t.add(1, start + Duration::from_secs(60), Target::Resolving);
        t.add(2, start + Duration::from_millis(30), Target::Resolving);
        let woke = rx.recv_timeout(Duration::from_secs(10)).expect("the alarm fired");
        assert!(woke >= start + Duration::from_millis(30));
        assert_eq!(t.expired(Instant::now()).len(), 1);
        t.rearm();
        // Armed at 60 s now: nothing fires meanwhile.
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        drop(t); // stops and joins the thread
    }
}
