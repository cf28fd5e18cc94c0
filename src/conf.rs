//! Configuration: a mutable `ConfBuilder` that checks each setting as it is
//! given, and the immutable, reference-counted `Conf` it builds.
//!
//! A conf is one `SSL_CTX` per server identity.  The first is the primary
//! (sessions start on it); when a server has several identities, the SNI
//! callback moves a session to the first identity whose certificate matches
//! the requested name.  Callback state (identity table, ALPN list) lives in
//! the primary `SSL_CTX`'s ex_data, so it stays valid exactly as long as any
//! `SSL` still references the context, whoever created that `SSL`.

use crate::error::{Code::*, Error, Result};
use crate::ossl::{self, Ctx, PKey, X509};
use libc::{c_char, c_int, c_long, c_uchar, c_uint, c_void};
use openssl_sys as sys;
use std::ffi::CString;
use std::path::Path;
use std::ptr;
use std::sync::{Arc, OnceLock};

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
        let key = ossl::parse_key_pem(key_pem, password, "private key")?;
        let leaf = certs.remove(0);
        if !ossl::key_matches_cert(&leaf, &key) {
            return Err(Error::arg("private key does not match the certificate"));
        }
        Ok(Identity { leaf, chain: certs, key })
    }

    pub fn from_files(cert: &Path, key: &Path, password: Option<&[u8]>) -> Result<Identity> {
        let cert_pem = read_file(cert, "certificate file")?;
        let key_pem = read_file(key, "private key file")?;
        Identity::from_pem(&cert_pem, &key_pem, password)
    }
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::arg(format!("cannot read {what} '{}': {e}", path.display())))
}

#[derive(Clone)]
enum Trust {
    File(CString),
    Dir(CString),
    Certs(Vec<X509>),
    System,
}

/// Collects settings, rejecting bad ones at once; `build` may run any
/// number of times, each time yielding an independent `Conf`.
#[derive(Clone)]
pub struct ConfBuilder {
    role: Role,
    identities: Vec<Identity>,
    trust: Vec<Trust>,
    verify: Verify,
    min: Version,
    max: Version,
    ciphers: Option<CString>,
    suites: Option<CString>,
    alpn: Option<Vec<u8>>,
}

impl ConfBuilder {
    /// Defaults: TLS 1.2 to 1.3, OpenSSL's cipher defaults, no ALPN; a
    /// client verifies the server (trust must be configured, or every
    /// handshake fails), a server asks for no client certificate.
    pub fn new(role: Role) -> ConfBuilder {
        ossl::init();
        ConfBuilder {
            role,
            identities: Vec::new(),
            trust: Vec::new(),
            verify: if role == Role::Client { Verify::Peer } else { Verify::None },
            min: Version::Tls12,
            max: Version::Tls13,
            ciphers: None,
            suites: None,
            alpn: None,
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
            return Err(Error::arg("a client takes one identity (client certificate)"));
        }
        self.identities.push(id);
        Ok(())
    }

    /// Trust the CA certificates in a PEM file.
    pub fn add_ca_file(&mut self, path: &Path) -> Result<()> {
        let pem = read_file(path, "CA file")?;
        ossl::parse_certs_pem(&pem, "CA file")?;
        self.trust.push(Trust::File(path_cstring(path)?));
        Ok(())
    }

    /// Trust a directory of CA certificates named by subject hash
    /// (`openssl rehash`).
    pub fn add_ca_dir(&mut self, path: &Path) -> Result<()> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(Error::arg(format!("CA directory '{}' is not a directory", path.display()))),
            Err(e) => return Err(Error::arg(format!("cannot read CA directory '{}': {e}", path.display()))),
        }
        self.trust.push(Trust::Dir(path_cstring(path)?));
        Ok(())
    }

    /// Trust the CA certificates in a PEM buffer.
    pub fn add_ca_pem(&mut self, pem: &[u8]) -> Result<()> {
        let certs = ossl::parse_certs_pem(pem, "CA PEM")?;
        self.trust.push(Trust::Certs(certs));
        Ok(())
    }

    /// Trust the system's default CA store.
    pub fn add_system_ca(&mut self) {
        self.trust.push(Trust::System);
    }

    pub fn set_verify(&mut self, v: Verify) {
        self.verify = v;
    }

    pub fn set_versions(&mut self, min: Version, max: Version) -> Result<()> {
        if min > max {
            return Err(Error::arg("minimum TLS version is above the maximum"));
        }
        self.min = min;
        self.max = max;
        Ok(())
    }

    /// TLS 1.2 cipher list in OpenSSL syntax; checked now.
    pub fn set_ciphers(&mut self, list: &str) -> Result<()> {
        let c = CString::new(list).map_err(|_| Error::arg("cipher list contains a NUL byte"))?;
        let probe = new_ctx(Role::Client)?;
        // SAFETY: live scratch ctx; c is NUL-terminated.
        if unsafe { sys::SSL_CTX_set_cipher_list(probe.as_ptr(), c.as_ptr()) } != 1 {
            return Err(ossl::error(COROTLS_ERR_ARG, &format!("invalid TLS 1.2 cipher list '{list}'")));
        }
        self.ciphers = Some(c);
        Ok(())
    }

    /// TLS 1.3 cipher suites (`TLS_AES_128_GCM_SHA256:...`); checked now.
    pub fn set_suites(&mut self, list: &str) -> Result<()> {
        let c = CString::new(list).map_err(|_| Error::arg("suite list contains a NUL byte"))?;
        let probe = new_ctx(Role::Client)?;
        // SAFETY: live scratch ctx; c is NUL-terminated.
        if unsafe { sys::SSL_CTX_set_ciphersuites(probe.as_ptr(), c.as_ptr()) } != 1 {
            return Err(ossl::error(COROTLS_ERR_ARG, &format!("invalid TLS 1.3 suite list '{list}'")));
        }
        self.suites = Some(c);
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

    pub fn build(&self) -> Result<Conf> {
        if self.role == Role::Server && self.identities.is_empty() {
            return Err(Error::arg("a server needs an identity (certificate and private key)"));
        }
        let mut ctxs = Vec::with_capacity(self.identities.len().max(1));
        if self.identities.is_empty() {
            ctxs.push(self.configured_ctx(None)?);
        }
        for id in &self.identities {
            ctxs.push(self.configured_ctx(Some(id))?);
        }
        let primary = ctxs[0].clone();
        let sni = if self.role == Role::Server && self.identities.len() > 1 {
            // The table owns the other contexts; entry 0 is the primary itself
            // (not owned: that would be a reference cycle).
            let entries = self
                .identities
                .iter()
                .zip(ctxs)
                .enumerate()
                .map(|(i, (id, ctx))| SniEntry { leaf: id.leaf.clone(), ctx: if i == 0 { None } else { Some(ctx) } })
                .collect::<Vec<SniEntry>>();
            Some(entries)
        } else {
            None
        };
        if let Some(entries) = sni {
            for e in &entries {
                if let Some(c) = &e.ctx {
                    set_ctx_data(c, CtxData { sni: Vec::new(), alpn: self.alpn.clone() })?;
                }
            }
            set_ctx_data(&primary, CtxData { sni: entries, alpn: self.alpn.clone() })?;
            // SAFETY: live ctx; the callback reads only the ctx's ex_data.
            unsafe {
                sys::SSL_CTX_set_tlsext_servername_callback__fixed_rust(primary.as_ptr(), Some(servername_cb));
            }
        } else if self.role == Role::Server && self.alpn.is_some() {
            set_ctx_data(&primary, CtxData { sni: Vec::new(), alpn: self.alpn.clone() })?;
        }
        Ok(Conf(Arc::new(ConfInner { role: self.role, verify: self.verify, primary })))
    }

    /// One SSL_CTX with every setting of this builder and `id` installed.
    fn configured_ctx(&self, id: Option<&Identity>) -> Result<Ctx> {
        let ctx = new_ctx(self.role)?;
        let p = ctx.as_ptr();
        // SAFETY (whole block): p is a live SSL_CTX we own; every pointer
        // passed is valid for the call; add1/use functions take their own
        // references.
        unsafe {
            sys::SSL_CTX_set_min_proto_version(p, self.min as i32);
            sys::SSL_CTX_set_max_proto_version(p, self.max as i32);
            sys::SSL_CTX_set_options(p, sys::SSL_OP_NO_RENEGOTIATION);
            sys::SSL_CTX_set_mode(p, sys::SSL_MODE_ENABLE_PARTIAL_WRITE | sys::SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
            if let Some(c) = &self.ciphers {
                if sys::SSL_CTX_set_cipher_list(p, c.as_ptr()) != 1 {
                    return Err(ossl::error(COROTLS_ERR_ARG, "invalid TLS 1.2 cipher list"));
                }
            }
            if let Some(s) = &self.suites {
                if sys::SSL_CTX_set_ciphersuites(p, s.as_ptr()) != 1 {
                    return Err(ossl::error(COROTLS_ERR_ARG, "invalid TLS 1.3 suite list"));
                }
            }
            if let Some(id) = id {
                ossl::clear_errors();
                if sys::SSL_CTX_use_certificate(p, id.leaf.as_ptr()) != 1 {
                    return Err(ossl::error(COROTLS_ERR_ARG, "certificate rejected"));
                }
                for c in &id.chain {
                    if sys::SSL_CTX_ctrl(p, sys::SSL_CTRL_CHAIN_CERT, 1, c.as_ptr() as *mut c_void) != 1 {
                        return Err(ossl::error(COROTLS_ERR_ARG, "chain certificate rejected"));
                    }
                }
                if sys::SSL_CTX_use_PrivateKey(p, id.key.as_ptr()) != 1 {
                    return Err(ossl::error(COROTLS_ERR_ARG, "private key rejected"));
                }
                if sys::SSL_CTX_check_private_key(p) != 1 {
                    return Err(ossl::error(COROTLS_ERR_ARG, "private key does not match the certificate"));
                }
            }
            for t in &self.trust {
                let ok = match t {
                    Trust::File(f) => ossl::SSL_CTX_load_verify_file(p, f.as_ptr()) == 1,
                    Trust::Dir(d) => ossl::SSL_CTX_load_verify_dir(p, d.as_ptr()) == 1,
                    Trust::System => sys::SSL_CTX_set_default_verify_paths(p) == 1,
                    Trust::Certs(certs) => {
                        let store = sys::SSL_CTX_get_cert_store(p);
                        // A duplicate certificate is not an error worth failing on.
                        certs.iter().for_each(|c| {
                            sys::X509_STORE_add_cert(store, c.as_ptr());
                        });
                        true
                    }
                };
                if !ok {
                    return Err(ossl::error(COROTLS_ERR_ARG, "cannot load trusted certificates"));
                }
            }
            let mode = match (self.role, self.verify) {
                (_, Verify::None) => sys::SSL_VERIFY_NONE,
                (Role::Client, _) => sys::SSL_VERIFY_PEER,
                (Role::Server, Verify::Peer) => sys::SSL_VERIFY_PEER,
                (Role::Server, Verify::Require) => sys::SSL_VERIFY_PEER | sys::SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
            };
            sys::SSL_CTX_set_verify(p, mode, None);
            if self.role == Role::Server {
                // Needed for session resumption when client certs are verified.
                let sid = b"corotls";
                sys::SSL_CTX_set_session_id_context(p, sid.as_ptr(), sid.len() as c_uint);
                if self.alpn.is_some() {
                    sys::SSL_CTX_set_alpn_select_cb__fixed_rust(p, Some(alpn_select_cb), ptr::null_mut());
                }
            } else if let Some(w) = &self.alpn {
                if sys::SSL_CTX_set_alpn_protos(p, w.as_ptr(), w.len() as c_uint) != 0 {
                    return Err(ossl::error(COROTLS_ERR_NOMEM, "cannot set the ALPN list"));
                }
            }
        }
        ossl::clear_errors();
        Ok(ctx)
    }
}

fn path_cstring(p: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::arg("path contains a NUL byte"))
}

fn new_ctx(role: Role) -> Result<Ctx> {
    ossl::clear_errors();
    // SAFETY: the method functions return static tables; SSL_CTX_new returns
    // NULL or a new context we own.
    let ctx = unsafe {
        let m = if role == Role::Server { sys::TLS_server_method() } else { sys::TLS_client_method() };
        Ctx::from_ptr(sys::SSL_CTX_new(m))
    };
    ctx.ok_or_else(|| ossl::error(COROTLS_ERR_NOMEM, "SSL_CTX_new failed"))
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
    primary: Ctx,
}

impl Conf {
    pub fn role(&self) -> Role {
        self.0.role
    }
    pub fn verify(&self) -> Verify {
        self.0.verify
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

// ----- callback state in SSL_CTX ex_data -------------------------------

struct SniEntry {
    leaf: X509,
    /// None for the primary context itself.
    ctx: Option<Ctx>,
}

struct CtxData {
    sni: Vec<SniEntry>,
    alpn: Option<Vec<u8>>,
}

fn ex_index() -> c_int {
    static IDX: OnceLock<c_int> = OnceLock::new();
    *IDX.get_or_init(|| {
        // SAFETY: registers a new ex_data slot with our free function.
        unsafe { sys::SSL_CTX_get_ex_new_index(0, ptr::null_mut(), None, None, Some(ctx_data_free)) }
    })
}

unsafe extern "C" fn ctx_data_free(
    _parent: *mut c_void,
    ptr: *mut c_void,
    _ad: *mut sys::CRYPTO_EX_DATA,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) {
    if !ptr.is_null() {
        // SAFETY: ptr came from Box::into_raw in set_ctx_data; OpenSSL calls
        // this exactly once, when the context is freed.
        drop(unsafe { Box::from_raw(ptr as *mut CtxData) });
    }
}

fn set_ctx_data(ctx: &Ctx, data: CtxData) -> Result<()> {
    let raw = Box::into_raw(Box::new(data));
    // SAFETY: live ctx; the slot now owns `raw` (freed by ctx_data_free).
    if unsafe { sys::SSL_CTX_set_ex_data(ctx.as_ptr(), ex_index(), raw as *mut c_void) } != 1 {
        // SAFETY: not stored, so still ours.
        drop(unsafe { Box::from_raw(raw) });
        return Err(ossl::error(COROTLS_ERR_NOMEM, "SSL_CTX_set_ex_data failed"));
    }
    Ok(())
}

/// # Safety
/// `ssl` is live; the returned reference is used only during the callback.
unsafe fn ctx_data<'a>(ssl: *mut sys::SSL) -> Option<&'a CtxData> {
    let ctx = sys::SSL_get_SSL_CTX(ssl);
    if ctx.is_null() {
        return None;
    }
    (sys::SSL_CTX_get_ex_data(ctx, ex_index()) as *const CtxData).as_ref()
}

/// SNI: the first identity whose certificate matches the requested name
/// (`X509_check_host` flags 0: SAN DNS with wildcards, CN when no DNS SAN;
/// an IP literal is matched as a string); otherwise stay on the first.
/// Never sends an alert.
unsafe extern "C" fn servername_cb(ssl: *mut sys::SSL, _al: *mut c_int, _arg: *mut c_void) -> c_int {
    let pick = std::panic::catch_unwind(|| {
        // SAFETY: OpenSSL passes a live SSL for the callback's duration.
        let data = unsafe { ctx_data(ssl) }?;
        // SAFETY: live SSL; the name is owned by it.
        let name = unsafe { sys::SSL_get_servername(ssl, sys::TLSEXT_NAMETYPE_host_name) };
        if name.is_null() {
            return None;
        }
        // SAFETY: NUL-terminated string owned by the SSL.
        let name = unsafe { std::ffi::CStr::from_ptr(name as *const c_char) }.to_bytes();
        let hit = data.sni.iter().find(|e| ossl::cert_matches_host(&e.leaf, name))?;
        hit.ctx.as_ref().map(|c| c.as_ptr())
    });
    if let Ok(Some(ctx)) = pick {
        // SAFETY: live SSL and ctx (owned by the primary's table, which the
        // SSL keeps alive through its session_ctx reference).
        unsafe { sys::SSL_set_SSL_CTX(ssl, ctx) };
    }
    sys::SSL_TLSEXT_ERR_OK
}

/// ALPN with server preference; no overlap means no ALPN (no alert).
unsafe extern "C" fn alpn_select_cb(
    ssl: *mut sys::SSL,
    out: *mut *const c_uchar,
    outlen: *mut c_uchar,
    inp: *const c_uchar,
    inlen: c_uint,
    _arg: *mut c_void,
) -> c_int {
    let r = std::panic::catch_unwind(|| {
        // SAFETY: live SSL during the callback.
        let data = unsafe { ctx_data(ssl) };
        let Some(server) = data.and_then(|d| d.alpn.as_deref()) else {
            return sys::SSL_TLSEXT_ERR_NOACK;
        };
        // SAFETY: both lists are valid for their lengths; `out` ends up
        // pointing into one of them, both outliving the handshake step.
        let r = unsafe {
            sys::SSL_select_next_proto(
                out as *mut *mut c_uchar,
                outlen,
                server.as_ptr(),
                server.len() as c_uint,
                inp,
                inlen,
            )
        };
        if r == sys::OPENSSL_NPN_NEGOTIATED {
            sys::SSL_TLSEXT_ERR_OK
        } else {
            sys::SSL_TLSEXT_ERR_NOACK
        }
    });
    r.unwrap_or(sys::SSL_TLSEXT_ERR_NOACK)
}
