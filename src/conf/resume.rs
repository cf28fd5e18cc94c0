//! Resumption policy of a conf: a server's session tickets (on by
//! default, keys set and rotated here), and a client's session cache.
//!
//! The cache belongs to one conf, so everything resumed through it was
//! verified with that conf's trust; entries are keyed by where the client
//! connected (host, port) and by the names it sent and verified (SNI,
//! verify name), so a session never moves to another server name.  It is
//! bounded: the least recently stored key goes first.

use super::{Conf, ConfBuilder, Role};
use crate::error::{Error, Result};
use crate::ossl::extras::CtxExtras;
use crate::ossl::sess::{self, SslSession};
use crate::ossl::tickets::{self, TicketKeys};
use crate::ossl::Ctx;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Client sessions a conf keeps by default (distinct keys).
pub const DEFAULT_CACHE_SIZE: usize = 256;
/// Sessions kept per key: the newest few (TLS 1.3 tickets are used once).
const PER_KEY: usize = 2;
const TLS1_3: i32 = 0x0304;

/// The builder's resumption settings.
#[derive(Clone)]
pub(super) struct ResumeSettings {
    tickets: bool,
    ticket_key: Option<Vec<u8>>,
    cache_size: usize,
}

impl Drop for ResumeSettings {
    fn drop(&mut self) {
        // The ticket key decrypts every session it protected.
        if let Some(k) = self.ticket_key.as_mut() {
            k.fill(0);
        }
    }
}

impl Default for ResumeSettings {
    fn default() -> Self {
        ResumeSettings { tickets: true, ticket_key: None, cache_size: DEFAULT_CACHE_SIZE }
    }
}

/// What a built conf holds for resumption.
#[derive(Default)]
pub(super) struct ConfResume {
    tickets: Option<Arc<TicketKeys>>,
    cache: Option<Arc<SessionCache>>,
}

impl ConfBuilder {
    /// Server: issue session tickets (TLS 1.3 tickets and TLS 1.2 session
    /// tickets; default on).  Off, a server issues none (OpenSSL's own
    /// TLS 1.2 session-ID cache still resumes).
    pub fn set_tickets(&mut self, on: bool) -> Result<()> {
        self.server_only("tickets")?;
        self.resume.tickets = on;
        Ok(())
    }

    /// Server: the first ticket key (`tickets::TICKET_KEY_LEN` bytes: 16
    /// name, 32 AES, 32 HMAC).  Without it every build makes a random one.
    pub fn set_ticket_key(&mut self, key: &[u8]) -> Result<()> {
        self.server_only("a ticket key")?;
        TicketKeys::new(Some(key))?;
        self.resume.ticket_key = Some(key.to_vec());
        Ok(())
    }

    /// Client: how many (host, port, SNI, name) keys the session cache
    /// holds; 0 turns it off.
    pub fn set_session_cache_size(&mut self, n: usize) -> Result<()> {
        if self.role != Role::Client {
            return Err(Error::state("the session cache is for client confs (servers resume with tickets)"));
        }
        self.resume.cache_size = n;
        Ok(())
    }

    fn server_only(&self, what: &str) -> Result<()> {
        if self.role != Role::Server {
            return Err(Error::state(format!("{what}: for server confs (a client resumes with its session cache)")));
        }
        Ok(())
    }

    /// The shared state of one build: ticket keys (server) or the cache
    /// (client), and the extras every context of the build carries.
    pub(super) fn resume_state(&self, extras: &mut CtxExtras) -> Result<ConfResume> {
        let mut r = ConfResume::default();
        match self.role {
            Role::Server if self.resume.tickets => {
                let keys = Arc::new(TicketKeys::new(self.resume.ticket_key.as_deref())?);
                extras.tickets = Some(keys.clone());
                r.tickets = Some(keys);
            }
            Role::Server => {}
            Role::Client if self.resume.cache_size > 0 => {
                r.cache = Some(Arc::new(SessionCache::new(self.resume.cache_size)));
            }
            Role::Client => {}
        }
        Ok(r)
    }

    /// Resumption settings of one context.
    pub(super) fn configure_resume(&self, ctx: &Ctx) -> Result<()> {
        match self.role {
            Role::Server => tickets::configure(ctx, self.resume.tickets),
            Role::Client => {
                sess::configure_client(ctx);
                Ok(())
            }
        }
    }
}

impl Conf {
    /// A client conf's session cache (None: a server, or turned off).
    pub fn session_cache(&self) -> Option<&Arc<SessionCache>> {
        self.0.resume.cache.as_ref()
    }

    /// Server: make `key` (or a random key) the current ticket key; tickets
    /// under the keys it replaces still resume for `grace`, then get a full
    /// handshake.
    pub fn rotate_ticket_key(&self, key: Option<&[u8]>, grace: Duration) -> Result<()> {
        match (&self.0.resume.tickets, self.role()) {
            (Some(t), _) => t.rotate(key, grace),
            (None, Role::Server) => Err(Error::state("this conf issues no tickets (set_tickets(false))")),
            (None, Role::Client) => Err(Error::state("ticket keys are for server confs")),
        }
    }
}

/// Where a client session may be resumed: the host and port it connected
/// to, the SNI it sent, and the name it verified the server for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub host: Vec<u8>,
    pub port: u16,
    pub sni: Option<Vec<u8>>,
    pub name: Option<Vec<u8>>,
}

/// A bounded map from `CacheKey` to the newest sessions stored under it.
pub struct SessionCache {
    cap: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    tick: u64,
    map: HashMap<CacheKey, (u64, Vec<SslSession>)>,
    /// Last store tick -> key: the oldest goes first when full.
    order: BTreeMap<u64, CacheKey>,
}

impl SessionCache {
    pub fn new(cap: usize) -> SessionCache {
        SessionCache { cap: cap.max(1), inner: Mutex::new(CacheInner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep `s` under `key` (a session that cannot be resumed is dropped).
    pub fn put(&self, key: &CacheKey, s: SslSession) {
        if !s.is_resumable() {
            return;
        }
        let mut c = self.lock();
        c.tick += 1;
        let tick = c.tick;
        let old = c.map.get(key).map(|e| e.0);
        if let Some(t) = old {
            c.order.remove(&t);
        } else if c.map.len() >= self.cap {
            if let Some((_, k)) = c.order.pop_first() {
                c.map.remove(&k);
            }
        }
        let e = c.map.entry(key.clone()).or_insert_with(|| (tick, Vec::new()));
        e.0 = tick;
        e.1.push(s);
        if e.1.len() > PER_KEY {
            e.1.remove(0);
        }
        c.order.insert(tick, key.clone());
    }

    /// A session to offer for `key`: the newest still resumable.  A TLS 1.3
    /// session is taken out (a ticket is used once, RFC 8446 C.4); a TLS
    /// 1.2 one stays, and a copy is offered.
    pub fn take(&self, key: &CacheKey) -> Option<SslSession> {
        let mut c = self.lock();
        let (tick, list) = c.map.get_mut(key)?;
        let tick = *tick;
        list.retain(|s| s.is_resumable());
        let found = match list.last() {
            Some(s) if s.version() == TLS1_3 => list.pop(),
            Some(s) => s.dup(),
            None => None,
        };
        if list.is_empty() {
            c.map.remove(key);
            c.order.remove(&tick);
        }
        found
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forget every session.
    pub fn clear(&self) {
        let mut c = self.lock();
        c.map.clear();
        c.order.clear();
    }
}
