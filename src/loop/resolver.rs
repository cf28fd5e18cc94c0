//! Name resolution off the loop: getaddrinfo blocks, so names go to a few
//! worker threads (started on demand, at most `MAX_THREADS`, each leaving
//! after `IDLE` without work).  Numeric addresses never come here.

use super::lock;
use crate::error::{Error, Result};
use crate::net::{self, Lookup};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const MAX_THREADS: usize = 4;
const IDLE: Duration = Duration::from_secs(10);
/// How long `stop` waits for workers to leave (one stuck in a slow DNS
/// lookup is left to finish on its own).
const STOP_WAIT: Duration = Duration::from_secs(2);

pub(super) type Done = Box<dyn FnOnce(Result<Vec<SocketAddr>>) + Send>;

struct Job {
    host: String,
    service: String,
    done: Done,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
    stop: bool,
    next_worker: u64,
    handles: Vec<(u64, JoinHandle<()>)>,
    /// Workers that have left their loop (their threads end at once).
    left: Vec<u64>,
}

impl State {
    /// Join the workers that have left.
    fn reap(&mut self) {
        let left = std::mem::take(&mut self.left);
        let (done, running): (Vec<_>, Vec<_>) = self.handles.drain(..).partition(|(id, _)| left.contains(id));
        self.handles = running;
        for (_, h) in done {
            let _ = h.join();
        }
    }
}

#[derive(Default)]
struct Inner {
    st: Mutex<State>,
    cv: Condvar,
}

#[derive(Default)]
pub(super) struct Resolver {
    inner: Arc<Inner>,
}

impl Resolver {
    /// Resolve on a worker; `done` runs there with the addresses.
    pub fn submit(&self, host: &str, service: &str, done: Done) {
        let mut st = lock(&self.inner.st);
        if st.stop {
            drop(st);
            done(Err(Error::new(crate::error::Code::COROTLS_ERR_CANCELLED, "the loop is shutting down")));
            return;
        }
        st.reap();
        st.jobs.push_back(Job { host: host.to_string(), service: service.to_string(), done });
        if st.idle == 0 && st.threads < MAX_THREADS {
            let inner = self.inner.clone();
            let id = st.next_worker;
            st.next_worker += 1;
            let spawned = std::thread::Builder::new().name("corotls-resolve".into()).spawn(move || worker(inner, id));
            match spawned {
                Ok(h) => {
                    st.threads += 1;
                    st.handles.push((id, h));
                }
                Err(e) if st.threads == 0 => {
                    // No worker at all: fail the queued jobs now.
                    let jobs: Vec<Job> = st.jobs.drain(..).collect();
                    drop(st);
                    let msg = format!("cannot start a resolver thread: {e}");
                    for j in jobs {
                        (j.done)(Err(Error::new(crate::error::Code::COROTLS_ERR_IO, msg.clone())));
                    }
                    return;
                }
                Err(_) => {} // the running workers will get to it
            }
        }
        self.inner.cv.notify_one();
    }

    /// Stop accepting work; workers finish their current lookup and leave.
    /// Queued jobs are dropped without running (the loop cancels them).
    /// Waits (briefly) for the workers and joins them, so that no thread
    /// of a freed loop outlives it.
    pub fn stop(&self) {
        let mut st = lock(&self.inner.st);
        st.stop = true;
        st.jobs.clear();
        self.inner.cv.notify_all();
        let end = Instant::now() + STOP_WAIT;
        while st.threads > 0 {
            let now = Instant::now();
            if now >= end {
                break;
            }
            st = self.inner.cv.wait_timeout(st, end - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        st.reap();
        // Workers still in a lookup finish it and leave on their own.
        st.handles.clear();
    }
}

fn worker(inner: Arc<Inner>, id: u64) {
    let mut st = lock(&inner.st);
    loop {
        if st.stop {
            break;
        }
        if let Some(job) = st.jobs.pop_front() {
            drop(st);
            let r = net::resolve(Some(&job.host), &job.service, false, Lookup::Any).map(|a| a.unwrap_or_default());
            (job.done)(r);
            st = lock(&inner.st);
            continue;
        }
        st.idle += 1;
        let (guard, timeout) = inner.cv.wait_timeout(st, IDLE).unwrap_or_else(|e| e.into_inner());
        st = guard;
        st.idle -= 1;
        if timeout.timed_out() && st.jobs.is_empty() {
            break;
        }
    }
    st.threads -= 1;
    st.left.push(id);
    // Wake `stop`, which may be waiting for the workers to leave.
    inner.cv.notify_all();
}
