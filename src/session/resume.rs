//! Client resumption of one session: the cache key it is given
//! (`set_resume_key`), a session imported from bytes (`import`), what is
//! offered when the handshake starts, where the server's new sessions go,
//! and `export` / `resumed`.
//!
//! The name a session is for (its "resume name") is the name the server's
//! certificate is verified against: `set_verify_host`, else the SNI, else
//! the connect host.  It is recorded in every session the server gives
//! (so it travels with an export) and an import must match it.

use super::Session;
use crate::conf::{CacheKey, Role, SessionCache, Verify};
use crate::error::{Error, Reason::*, Result};
use crate::ossl::extras;
use crate::ossl::sess::{self, SslSession};
use std::ffi::CString;
use std::sync::Arc;

const TLS1_3: i32 = 0x0304;

/// A session's resumption state (client sessions only).
#[derive(Default)]
pub(super) struct ResumeState {
    /// (host, port) given by `set_resume_key`: use the conf's cache.
    key: Option<(Vec<u8>, u16)>,
    /// Imported, offered instead of the cache's.
    imported: Option<SslSession>,
    /// The resume name when `imported` was checked.
    imported_for: Option<Vec<u8>>,
    /// The name given to `set_verify_host`.
    pub(super) verify_host: Option<Vec<u8>>,
    /// Where this session's sessions go, once the handshake started.
    store: Option<(CacheKey, Arc<SessionCache>)>,
}

impl Session {
    /// The name the server is verified for (see the module doc).
    fn resume_name(&self) -> Option<Vec<u8>> {
        self.resume.verify_host.clone().or_else(|| self.sni.clone()).or_else(|| self.connect_host.clone())
    }

    /// Use the conf's session cache for (host, port, SNI, verified name):
    /// offer a session from it when the handshake starts, and keep the
    /// sessions the server gives.  Client, before the handshake.  Without
    /// a cache in the conf (size 0) it does nothing.
    pub fn set_resume_key(&mut self, host: &[u8], port: u16) -> Result<()> {
        self.before_handshake("the resume key").map_err(|e| self.fail(e))?;
        if host.is_empty() || host.contains(&0) {
            return Err(
                self.fail(Error::arg("resume host is empty or contains a NUL byte").because(COROTLS_REASON_HOST_NAME))
            );
        }
        self.resume.key = Some((host.to_vec(), port));
        Ok(())
    }

    /// Offer the session in `der` (from `export`) at the handshake.
    /// Client, before the handshake, after the SNI or host to verify is
    /// set.  Checked now: it must parse, be resumable and unexpired, be for
    /// this session's resume name, and, when the conf verifies servers,
    /// hold a server certificate that verifies now against the conf's trust
    /// (and the name, when the conf checks names).  If the names change
    /// before the handshake it is not offered (a full handshake).
    pub fn import_session(&mut self, der: &[u8]) -> Result<()> {
        self.before_handshake("a session import").map_err(|e| self.fail(e))?;
        match self.check_import(der) {
            Ok(s) => {
                self.resume.imported_for = self.resume_name();
                self.resume.imported = Some(s);
                Ok(())
            }
            // Refused, the session is as it was: a full handshake can follow.
            Err(e) => {
                self.remember(&e);
                Err(e)
            }
        }
    }

    fn check_import(&self, der: &[u8]) -> Result<SslSession> {
        if der.is_empty() {
            return Err(Error::arg("session data is empty"));
        }
        let s = SslSession::from_der(der)?;
        if s.expired() {
            return Err(Error::arg("the session has expired"));
        }
        if !s.is_resumable() {
            return Err(Error::arg("the session cannot be resumed (no ticket or session ID)"));
        }
        let Some(name) = self.resume_name() else {
            return Err(Error::state("set the SNI or the host to verify before importing a session"));
        };
        match s.name() {
            Some(n) if n == name => {}
            Some(n) => {
                return Err(Error::arg(format!(
                    "the session is for '{}', not '{}'",
                    String::from_utf8_lossy(&n),
                    String::from_utf8_lossy(&name)
                ))
                .because(COROTLS_REASON_HOST_NAME))
            }
            None => return Err(Error::arg("the session names no server: it was not exported by corotls")),
        }
        if self._conf.verify() != Verify::None {
            let Some(cert) = s.peer() else {
                return Err(Error::arg("the session holds no server certificate to verify"));
            };
            let checked = (self._conf.checks_name() || self.resume.verify_host.is_some()).then_some(&name[..]);
            sess::verify_leaf(self._conf.ctx(), &cert, checked)?;
        }
        Ok(s)
    }

    /// The session to offer when the handshake starts: called once, as it
    /// starts (after the name to verify is bound).  Failures only mean a
    /// full handshake.
    pub(super) fn start_resumption(&mut self) -> Result<()> {
        if self.role != Role::Client {
            return Ok(());
        }
        let name = self.resume_name();
        let cache = self._conf.session_cache().cloned();
        let key = match (&self.resume.key, &cache) {
            (Some((host, port)), Some(_)) => {
                Some(CacheKey { host: host.clone(), port: *port, sni: self.sni.clone(), name: name.clone() })
            }
            _ => None,
        };
        let store = key.clone().zip(cache.clone());
        self.resume.store = store.clone();
        // Only a session with a cache to fill listens for the server's
        // sessions (each one is copied; `export_session` needs none).
        if let Some((k, c)) = store {
            let recorded = name.as_ref().and_then(|n| CString::new(n.clone()).ok());
            extras::set_session_sink(
                self.ssl(),
                Box::new(move |s: SslSession| {
                    if let Some(n) = &recorded {
                        if s.set_name(n).is_err() {
                            return;
                        }
                    }
                    c.put(&k, s);
                }),
            )?;
        }
        let offer = match self.resume.imported.take() {
            Some(s) if self.resume.imported_for == name && s.is_resumable() => Some(s),
            Some(_) => None,
            None => key.zip(cache).and_then(|(k, c)| c.take(&k)),
        };
        if let Some(s) = offer {
            // A session OpenSSL refuses (another protocol range...) is not offered.
            let _ = self.ssl().set_session(&s);
        }
        crate::ossl::clear_errors();
        Ok(())
    }

    /// After the handshake: OpenSSL reports no session for a resumed TLS
    /// 1.2 handshake, also when the server renewed the ticket (after a key
    /// rotation); keep the renewed one.
    pub(super) fn finish_resumption(&mut self) {
        let Some((key, cache)) = &self.resume.store else { return };
        if !self.ssl().session_reused() {
            return;
        }
        if let Some(s) = self.ssl().session().filter(|s| s.version() < TLS1_3).and_then(|s| s.dup()) {
            if let Some(n) = self.resume_name().and_then(|n| CString::new(n).ok()) {
                if s.set_name(&n).is_err() {
                    return;
                }
            }
            cache.put(key, s);
        }
    }

    /// The handshake resumed a session (false before it completes).
    pub fn resumed(&self) -> bool {
        self.handshake_done && self.ssl().session_reused()
    }

    /// The session to resume with later, as DER bytes for `import_session`.
    /// Client, after the handshake.  In TLS 1.3 the server sends tickets
    /// after the handshake: they are there once a read has processed them.
    pub fn export_session(&self) -> Result<Vec<u8>> {
        if self.role != Role::Client {
            return Err(Error::state("sessions are exported by clients"));
        }
        if !self.handshake_done {
            return Err(Error::state("no session before the handshake completes"));
        }
        match self.ssl().session().filter(|s| s.is_resumable()).and_then(|s| s.dup()) {
            Some(s) => {
                // Recorded on a copy: OpenSSL's own holds the SNI the
                // server acknowledged, if any.
                if let Some(n) = self.resume_name().and_then(|n| CString::new(n).ok()) {
                    s.set_name(&n)?;
                }
                s.to_der()
            }
            None => Err(Error::state(
                "no resumable session yet (in TLS 1.3 the server's tickets come after the handshake: read first), \
                 or the server issues none",
            )),
        }
    }
}

#[cfg(test)]
mod tests;
