//! Configuration: a mutable `ConfBuilder` that checks each setting as it is
//! given, and the immutable, reference-counted `Conf` it builds.
//!
//! This file is policy: which defaults, which checks, which settings make a
//! context.  `ossl::ctx` builds the `SSL_CTX`s; a conf is one per server
//! identity.  The first is the primary (sessions start on it); when a
//! server has several identities, the SNI callback moves a session to the
//! first identity whose certificate matches the requested name.

use crate::error::{Error, Reason::*, Result};
use crate::files;
use crate::ossl::ciphers;
use crate::ossl::ctx::{PeerCheck, SniChoice};
use crate::ossl::{self, Ctx, PKey, X509};
use openssl_sys as sys;
use std::ffi::{CStr, CString};
use std::path::Path;
use std::sync::Arc;

mod keylog;
mod resume;
pub use keylog::{file_sink as keylog_file_sink, KEYLOG_ENV};
pub use resume::{CacheKey, SessionCache, DEFAULT_CACHE_SIZE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// Peer certificate policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Do not verify the peer (a server asks for no client certificate).
    None,
    /// Verify the peer's certificate if it sends one (a client always gets
    /// one; a server asks for a client certificate but accepts none).
    Peer,
    /// Like Peer, and a server refuses clients without a certificate.
    Require,
}

impl Verify {
    /// The meaning of Melang's boolean `verify`: a client verifies the
    /// server; a server requires a client certificate.
    pub fn from_flag(verify: bool, role: Role) -> Verify {
        match (verify, role) {
            (false, _) => Verify::None,
            (true, Role::Client) => Verify::Peer,
            (true, Role::Server) => Verify::Require,
        }
    }
}

/// TLS protocol versions corotls speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    Tls12 = sys::TLS1_2_VERSION as isize,
    Tls13 = sys::TLS1_3_VERSION as isize,
}

impl Version {
    pub fn from_wire(v: i32) -> Option<Version> {
        match v {
            sys::TLS1_2_VERSION => Some(Version::Tls12),
            sys::TLS1_3_VERSION => Some(Version::Tls13),
            _ => None,
        }
    }
}

/// A certificate chain (leaf first) with its private key, checked to match.
#[derive(Clone)]
pub struct Identity {
    pub leaf: X509,
    pub chain: Vec<X509>,
    pub key: PKey,
}

impl Identity {
    /// Parse `cert_pem` (leaf, then intermediates) and `key_pem` (PKCS#8,
    /// PKCS#1 or SEC1, encrypted when `password` is given).
    ///
    /// Failure messages start with a stable prefix that hosts may map to
    /// their own wording: `certificate:`, `private key:`, or
    /// `private key does not match the certificate`.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], password: Option<&[u8]>) -> Result<Identity> {
        let mut certs = ossl::parse_certs_pem(cert_pem, "certificate")?;
        // Refused now, not at build (found by the identity fuzz target).
        if let Some(i) = certs.iter().position(|c| !ossl::public_key_decodes(c)) {
            return Err(Error::arg(format!(
                "certificate: certificate {} of the chain has a public key that does not decode",
                i + 1
            ))
            .because(COROTLS_REASON_CERT_PARSE));
        }
        // OpenSSL reads a password as a C string: "secret\0x" would open a
        // key encrypted with "secret" (found by the identity fuzz target).
        if password.is_some_and(|p| p.contains(&0)) {
            return Err(
                Error::arg("private key: the password contains a NUL byte").because(COROTLS_REASON_KEY_PASSWORD)
            );
        }
        let key = ossl::parse_key_pem(key_pem, password, "private key")?;
        let leaf = certs.remove(0);
        if !ossl::key_matches_cert(&leaf, &key) {
            return Err(Error::arg("private key does not match the certificate").because(COROTLS_REASON_KEY_MISMATCH));
        }
        Ok(Identity { leaf, chain: certs, key })
    }

    pub fn from_files(cert: &Path, key: &Path, password: Option<&[u8]>) -> Result<Identity> {
        let cert_pem = files::read_regular(cert, "certificate file")?;
        let key_pem = files::read_regular(key, "private key file")?;
        Identity::from_pem(&cert_pem, &key_pem, password)
    }

    /// Check the certificate half on its own: the file is read like
    /// `from_files` reads it and must hold a well-formed PEM chain.  Returns
    /// how many certificates it holds.  For a host that accepts a
    /// certificate without its key (Melon's client confs).
    pub fn check_cert_file(cert: &Path) -> Result<usize> {
        let pem = files::read_regular(cert, "certificate file")?;
        ossl::parse_certs_pem(&pem, "certificate").map(|certs| certs.len())
    }
}

#[derive(Clone)]
enum Trust {
    Certs(Vec<X509>),
    Dir(CString),
    System,
}

/// Collects settings, rejecting bad ones at once; `build` may run any
/// number of times, each time yielding an independent `Conf`.
#[derive(Clone)]
pub struct ConfBuilder {
    role: Role,
    identities: Vec<Identity>,
    trust: Vec<Trust>,
    /// Verifying with no trust anchor at all was asked for explicitly.
    empty_trust_ok: bool,
    verify: Verify,
    verify_name: bool,
    min: Version,
    max: Version,
    ciphers: Option<CString>,
    suites: Option<CString>,
    groups: Option<CString>,
    alpn: Option<Vec<u8>>,
    /// Tickets (server) and the session cache (client): conf/resume.rs.
    resume: resume::ResumeSettings,
    /// Where handshake secrets go, when asked (conf/keylog.rs).
    keylog: Option<ossl::extras::KeyLogSink>,
    /// The CA names a server sends in its CertificateRequest (None: the
    /// trusted certificates given as files or PEM).
    client_ca: Option<Vec<X509>>,
    /// Kernel TLS asked for (see `ktls`).
    ktls: bool,
}

/// TLS 1.2: forward secrecy (ECDHE) and AEAD (AES-GCM, ChaCha20-Poly1305)
/// only, strongest first: Mozilla's "intermediate" profile without DHE.
pub const DEFAULT_CIPHERS: &CStr = c"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
/// TLS 1.3: OpenSSL's three default suites.
pub const DEFAULT_SUITES: &CStr = c"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";
/// Key exchange groups: X25519, P-256, P-384 (no P-521, no X448, no FFDHE).
pub const DEFAULT_GROUPS: &CStr = c"X25519:P-256:P-384";

impl ConfBuilder {
    /// Defaults: TLS 1.2 to 1.3 with the DEFAULT_* lists (server cipher
    /// order, no renegotiation, no compression), no ALPN.  A client
    /// verifies the server's chain and name (trust must be added: `build`
    /// refuses a verifying conf without any); a server asks for no client
    /// certificate.
    pub fn new(role: Role) -> ConfBuilder {
        ossl::init();
        ConfBuilder {
            role,
            identities: Vec::new(),
            trust: Vec::new(),
            empty_trust_ok: false,
            verify: if role == Role::Client { Verify::Peer } else { Verify::None },
            verify_name: true,
            min: Version::Tls12,
            max: Version::Tls13,
            ciphers: None,
            suites: None,
            groups: None,
            alpn: None,
            resume: Default::default(),
            keylog: None,
            client_ca: None,
            ktls: false,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Add a certificate chain and key.  On a server, identities are tried
    /// in the order added for SNI; the first is the default.  On a client,
    /// one identity is the client certificate (a second is refused).
    pub fn add_identity(&mut self, id: Identity) -> Result<()> {
        if self.role == Role::Client && !self.identities.is_empty() {
            return Err(Error::state("a client takes one identity (client certificate)"));
        }
        self.identities.push(id);
        Ok(())
    }

    /// Trust the CA certificates in a PEM file (read now, once).
    pub fn add_ca_file(&mut self, path: &Path) -> Result<()> {
        let pem = files::read_regular(path, "CA file")?;
        let certs = ossl::parse_certs_pem(&pem, &format!("CA file '{}'", path.display()))
            .map_err(|e| e.because(COROTLS_REASON_TRUST))?;
        self.trust.push(Trust::Certs(certs));
        Ok(())
    }

    /// Trust a directory of CA certificates named by subject hash
    /// (`openssl rehash`).
    pub fn add_ca_dir(&mut self, path: &Path) -> Result<()> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                let e = Error::arg(format!("CA directory '{}' is not a directory", path.display()));
                return Err(e.because(COROTLS_REASON_FILE));
            }
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(0) as i64;
                let e = Error::arg(format!("cannot read CA directory '{}': {e}", path.display()));
                return Err(e.because_of(COROTLS_REASON_FILE, errno));
            }
        }
        self.trust.push(Trust::Dir(path_cstring(path)?));
        Ok(())
    }

    /// Trust the CA certificates in a PEM buffer.
    pub fn add_ca_pem(&mut self, pem: &[u8]) -> Result<()> {
        let certs = ossl::parse_certs_pem(pem, "CA PEM").map_err(|e| e.because(COROTLS_REASON_TRUST))?;
        self.trust.push(Trust::Certs(certs));
        Ok(())
    }

    /// Trust the system's default CA store.
    pub fn add_system_ca(&mut self) {
        self.trust.push(Trust::System);
    }

    /// Verify peers against no trust anchor at all, on purpose: every
    /// certificate then fails verification.  What Melon's `verify` without
    /// a CA file means; without this call `build` refuses such a conf.
    pub fn allow_empty_trust(&mut self) {
        self.empty_trust_ok = true;
    }

    pub fn set_verify(&mut self, v: Verify) {
        self.verify = v;
    }

    /// Whether a verifying client also checks the server's name (default
    /// true).  `false` verifies the chain only: any certificate from a
    /// trusted CA is accepted, whatever host it names, unless a name is
    /// given to the session with `set_verify_host`.
    pub fn set_verify_name(&mut self, on: bool) {
        self.verify_name = on;
    }

    pub fn set_versions(&mut self, min: Version, max: Version) -> Result<()> {
        if min > max {
            return Err(Error::arg("minimum TLS version is above the maximum"));
        }
        self.min = min;
        self.max = max;
        Ok(())
    }

    /// TLS 1.2 cipher list in OpenSSL syntax, replacing DEFAULT_CIPHERS;
    /// checked now (see `ossl::ciphers::check_cipher_list`).
    pub fn set_ciphers(&mut self, list: &str) -> Result<()> {
        self.ciphers = Some(ciphers::check_cipher_list(list)?);
        Ok(())
    }

    /// TLS 1.3 cipher suites (`TLS_AES_128_GCM_SHA256:...`), replacing
    /// DEFAULT_SUITES; checked now.
    pub fn set_suites(&mut self, list: &str) -> Result<()> {
        self.suites = Some(ciphers::check_suites(list)?);
        Ok(())
    }

    /// Key exchange groups, most preferred first, replacing DEFAULT_GROUPS;
    /// checked now.
    pub fn set_groups(&mut self, list: &str) -> Result<()> {
        self.groups = Some(ciphers::check_groups(list)?);
        Ok(())
    }

    /// ALPN protocols in preference order (wire format: length-prefixed).
    /// A client offers them; a server picks the first of its own list that
    /// the client offered (server preference), or continues without ALPN.
    pub fn set_alpn_wire(&mut self, wire: &[u8]) -> Result<()> {
        ossl::check_alpn_wire(wire)?;
        self.alpn = Some(wire.to_vec());
        Ok(())
    }

    /// ALPN protocols by name, most preferred first (see `set_alpn_wire`).
    pub fn set_alpn_names<'a>(&mut self, names: impl IntoIterator<Item = &'a [u8]>) -> Result<()> {
        self.set_alpn_wire(&ossl::alpn_wire_from_names(names)?)
    }

    /// Server: the CA names sent in the CertificateRequest, from the
    /// certificates in a PEM file (read now), instead of the subjects of the
    /// trusted certificates (see `client_ca_names`).
    pub fn set_client_ca_file(&mut self, path: &Path) -> Result<()> {
        let pem = files::read_regular(path, "client CA file")?;
        self.set_client_ca_pem(&pem)
    }

    /// `set_client_ca_file` from PEM in memory.
    pub fn set_client_ca_pem(&mut self, pem: &[u8]) -> Result<()> {
        if self.role != Role::Server {
            return Err(Error::state("a client CA list is for servers"));
        }
        self.client_ca = Some(ossl::parse_certs_pem(pem, "client CA list")?);
        Ok(())
    }

    /// Ask for kernel TLS after the handshake (see `crate::ktls`).
    pub fn set_ktls(&mut self, on: bool) {
        self.ktls = on;
    }

    /// The CA names a verifying server sends: the list given, else the
    /// subjects of the trusted certificates given as files or PEM (a CA
    /// directory or the system store add none: they are looked up lazily).
    fn client_ca_names(&self) -> Vec<X509> {
        if let Some(l) = &self.client_ca {
            return l.clone();
        }
        let mut out = Vec::new();
        for t in &self.trust {
            if let Trust::Certs(certs) = t {
                out.extend(certs.iter().cloned());
            }
        }
        out
    }

    /// No ALPN (the default).
    pub fn clear_alpn(&mut self) {
        self.alpn = None;
    }

    /// A verifying client that matches the server's name.
    fn checks_name(&self) -> bool {
        self.role == Role::Client && self.verify != Verify::None && self.verify_name
    }

    pub fn build(&self) -> Result<Conf> {
        if self.role == Role::Server && self.identities.is_empty() {
            return Err(Error::state("a server needs an identity (certificate and private key)"));
        }
        if self.verify != Verify::None && self.trust.is_empty() && !self.empty_trust_ok {
            let who = if self.role == Role::Client {
                "a client that verifies the server"
            } else {
                "a server that verifies clients"
            };
            return Err(Error::arg(format!(
                "{who} needs trusted CA certificates: add them (add_ca_file, add_ca_pem, add_ca_dir or \
                 add_system_ca), or turn verification off with set_verify(NONE)"
            ))
            .because(COROTLS_REASON_TRUST));
        }
        let mut extras = ossl::extras::CtxExtras { keylog: self.keylog.clone(), ..Default::default() };
        let resume = self.resume_state(&mut extras)?;
        let mut ctxs = Vec::with_capacity(self.identities.len().max(1));
        if self.identities.is_empty() {
            ctxs.push(self.with_extras(self.configured_ctx(None)?, &extras)?);
        }
        for id in &self.identities {
            ctxs.push(self.with_extras(self.configured_ctx(Some(id))?, &extras)?);
        }
        let primary = ctxs[0].clone();
        if self.role == Role::Server {
            let mut sni = Vec::new();
            if self.identities.len() > 1 {
                // The primary's table owns the other contexts; entry 0 is the
                // primary itself (not owned: that would be a reference cycle).
                for (i, (id, ctx)) in self.identities.iter().zip(ctxs).enumerate() {
                    if i > 0 {
                        ctx.set_server_callbacks(self.alpn.clone(), Vec::new())?;
                    }
                    sni.push(SniChoice { leaf: id.leaf.clone(), ctx: (i > 0).then_some(ctx) });
                }
            }
            primary.set_server_callbacks(self.alpn.clone(), sni)?;
        }
        Ok(Conf(Arc::new(ConfInner {
            role: self.role,
            verify: self.verify,
            checks_name: self.checks_name(),
            ktls: self.ktls,
            primary,
            resume,
        })))
    }

    /// Resumption and key-log settings of one context, with the state the
    /// contexts of one build share.
    fn with_extras(&self, ctx: Ctx, extras: &ossl::extras::CtxExtras) -> Result<Ctx> {
        self.configure_resume(&ctx)?;
        if extras.keylog.is_some() {
            ossl::keylog::configure(&ctx);
        }
        if extras.tickets.is_some() || extras.keylog.is_some() {
            ossl::extras::set_ctx_extras(&ctx, extras.clone())?;
        }
        Ok(ctx)
    }

    /// One SSL_CTX with every setting of this builder and `id` installed.
    fn configured_ctx(&self, id: Option<&Identity>) -> Result<Ctx> {
        let server = self.role == Role::Server;
        let ctx = Ctx::new(server)?;
        ctx.set_versions(self.min as i32, self.max as i32)?;
        ctx.set_cipher_list(self.ciphers.as_deref().unwrap_or(DEFAULT_CIPHERS))?;
        ctx.set_suites(self.suites.as_deref().unwrap_or(DEFAULT_SUITES))?;
        ctx.set_groups(self.groups.as_deref().unwrap_or(DEFAULT_GROUPS))?;
        if let Some(id) = id {
            ctx.use_identity(&id.leaf, &id.chain, &id.key)?;
        }
        for t in &self.trust {
            match t {
                Trust::Certs(certs) => ctx.trust_certs(certs),
                Trust::Dir(d) => ctx.trust_dir(d)?,
                Trust::System => ctx.trust_system()?,
            }
        }
        let check = match self.verify {
            Verify::None => PeerCheck::Off,
            Verify::Peer => PeerCheck::Sent,
            Verify::Require => PeerCheck::Required,
        };
        ctx.set_peer_check(check, server, self.checks_name());
        if server && self.verify != Verify::None {
            ctx.add_client_ca_names(&self.client_ca_names())?;
        }
        if self.ktls {
            ctx.enable_ktls_option();
        }
        if let (false, Some(w)) = (server, &self.alpn) {
            ctx.set_alpn_offer(w)?;
        }
        ossl::clear_errors();
        Ok(ctx)
    }
}

fn path_cstring(p: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::arg("path contains a NUL byte"))
}

/// An immutable configuration; cloning shares it.  Safe to use from any
/// number of threads.
#[derive(Clone)]
pub struct Conf(Arc<ConfInner>);

impl std::fmt::Debug for Conf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conf").field("role", &self.0.role).field("verify", &self.0.verify).finish()
    }
}

struct ConfInner {
    role: Role,
    verify: Verify,
    checks_name: bool,
    ktls: bool,
    primary: Ctx,
    resume: resume::ConfResume,
}

impl Conf {
    pub fn role(&self) -> Role {
        self.0.role
    }
    pub fn verify(&self) -> Verify {
        self.0.verify
    }
    /// Kernel TLS was asked for (`ConfBuilder::set_ktls`).
    pub fn ktls(&self) -> bool {
        self.0.ktls
    }
    /// A client that verifies the server's chain and its name: a session
    /// refuses to start without a name to match.
    pub fn checks_name(&self) -> bool {
        self.0.checks_name
    }
    /// The primary `SSL_CTX`: sessions are created from it.
    pub fn ctx(&self) -> &Ctx {
        &self.0.primary
    }

    /// The meaning of Melang's `tls.conf_new(role, cert, key, ca, ciphers,
    /// verify)`: a server needs cert and key; a client may give both for a
    /// client certificate; `ca` is the only trust (no system store);
    /// `verify` makes a client verify the server and a server require a
    /// client certificate; TLS 1.2 and 1.3.
    pub fn simple(
        role: Role,
        cert_file: Option<&Path>,
        key_file: Option<&Path>,
        ca_file: Option<&Path>,
        ciphers: Option<&str>,
        verify: bool,
    ) -> Result<Conf> {
        let mut b = ConfBuilder::new(role);
        match (cert_file, key_file) {
            (Some(c), Some(k)) => b.add_identity(Identity::from_files(c, k, None)?)?,
            (None, None) if role == Role::Client => {}
            (None, None) => return Err(Error::arg("a server needs a certificate file and a key file")),
            (Some(_), None) => return Err(Error::arg("a certificate file needs a key file")),
            (None, Some(_)) => return Err(Error::arg("a key file needs a certificate file")),
        }
        if let Some(ca) = ca_file {
            b.add_ca_file(ca)?;
        }
        if let Some(c) = ciphers.filter(|c| !c.is_empty()) {
            b.set_ciphers(c)?;
        }
        b.set_verify(Verify::from_flag(verify, role));
        b.build()
    }
}

#[cfg(test)]
mod tests;
