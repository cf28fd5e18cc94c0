//! `corotls_conf_builder` and `corotls_conf`.

use super::handles::Kind;
use super::{
    boundary, bytes_arg, free_handle, guard, into_handle, object, opt_bytes_arg, out_arg, path_of, slice_arg, str_arg,
};
use crate::conf::{Conf, ConfBuilder, Identity, Role, Verify, Version};
use crate::error::{Code, Error, Result};
use libc::c_char;

/// A configuration under construction.  Not thread-safe.
pub struct corotls_conf_builder {
    _private: [u8; 0],
}

/// An immutable, reference-counted configuration.  Thread-safe.
pub struct corotls_conf {
    _private: [u8; 0],
}

/// Session role.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum corotls_role {
    COROTLS_CLIENT = 0,
    COROTLS_SERVER = 1,
}

/// Peer verification policy (see corotls_conf_builder_set_verify).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum corotls_verify {
    /// Do not verify the peer.
    COROTLS_VERIFY_NONE = 0,
    /// Verify the peer's certificate; a server asks for a client
    /// certificate and verifies it if one is sent.
    COROTLS_VERIFY_PEER = 1,
    /// As PEER, and a server refuses clients that send no certificate.
    COROTLS_VERIFY_REQUIRE = 2,
}

/// TLS protocol versions (their wire values).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum corotls_tls_version {
    COROTLS_TLS1_2 = 0x0303,
    COROTLS_TLS1_3 = 0x0304,
}

pub(crate) fn role_of(v: i32) -> Result<Role> {
    match v {
        0 => Ok(Role::Client),
        1 => Ok(Role::Server),
        _ => Err(Error::arg(format!("role {v} is neither COROTLS_CLIENT (0) nor COROTLS_SERVER (1)"))),
    }
}

/// The builder behind a live builder handle; ERR_ARG for NULL, a freed
/// handle or another kind (checked in the registry, see `handles`).
///
/// # Safety
/// The builder is used by one thread at a time (the documented contract).
pub(crate) unsafe fn builder<'a>(b: *mut corotls_conf_builder) -> Result<&'a mut ConfBuilder> {
    // SAFETY: a live Builder handle names a Box<ConfBuilder>.
    Ok(&mut *object::<ConfBuilder>(b as usize, Kind::Builder, "builder")?)
}

/// The conf behind a live conf handle; ERR_ARG for NULL, a freed handle or
/// another kind.
///
/// # Safety
/// The handle is not freed by another thread during the call.
pub(crate) unsafe fn conf_ref<'a>(c: *const corotls_conf) -> Result<&'a Conf> {
    // SAFETY: a live Conf handle names a Box<Conf>, immutable and shared.
    Ok(&*object::<Conf>(c as usize, Kind::Conf, "conf")?)
}

/// A new conf handle owned by the caller.
pub(crate) fn conf_into_raw(c: Conf) -> *mut corotls_conf {
    into_handle(c, Kind::Conf) as *mut corotls_conf
}

/// Start a configuration for `role` (COROTLS_CLIENT or COROTLS_SERVER).
///
/// Defaults (secure; each weakening is one explicit call):
/// - TLS 1.2 and 1.3 (1.0 and 1.1 are never offered);
/// - TLS 1.2 ciphers: ECDHE with AES-GCM or ChaCha20-Poly1305 only, in the
///   server's order of preference (corotls_conf_builder_set_ciphers);
/// - TLS 1.3 suites: AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM
///   (corotls_conf_builder_set_suites);
/// - groups X25519, P-256, P-384 (corotls_conf_builder_set_groups);
/// - no renegotiation, no compression, no ALPN;
/// - a client verifies the server's certificate chain **and its name**
///   (corotls_conf_builder_set_verify, corotls_conf_builder_set_verify_name):
///   add trust (a CA file, directory, PEM or the system store), or
///   corotls_conf_builder_build fails;
/// - a server does not ask for client certificates;
/// - a server issues session tickets under a random key per build
///   (corotls_conf_builder_set_tickets, corotls_conf_builder_set_ticket_key);
///   a client keeps a session cache of 256 entries
///   (corotls_conf_builder_set_session_cache_size);
/// - no key log (corotls_conf_builder_set_keylog_callback).
///
/// On success `*out` is a new builder owned by the caller (free it with
/// corotls_conf_builder_free).  On failure `*out` is NULL.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_new(role: i32, out: *mut *mut corotls_conf_builder) -> Code {
    guard(|| {
        let out = out_arg(out, std::ptr::null_mut(), "output pointer")?;
        let b = ConfBuilder::new(role_of(role)?);
        *out = into_handle(b, Kind::Builder) as *mut corotls_conf_builder;
        Ok(())
    })
}

/// Free a builder.  NULL does nothing.  Confs already built are
/// unaffected.  A handle that is not a live builder (freed already, or
/// another kind of object) frees nothing and sets corotls_last_error()
/// (COROTLS_ERR_ARG, COROTLS_REASON_BAD_ARGUMENT).
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_free(b: *mut corotls_conf_builder) {
    free_handle::<ConfBuilder>(b as usize, Kind::Builder)
}

/// Add an identity from PEM files: `cert_file` holds the leaf certificate
/// first, then any intermediates; `key_file` its private key (PKCS#8,
/// PKCS#1 or SEC1), encrypted if `password` is not NULL.
///
/// The key must match the certificate.  A server may have several
/// identities: for each ClientHello the first whose certificate matches the
/// SNI name (DNS SANs with wildcards, the CN when there is no DNS SAN) is
/// used, else the first added; a client may have one (its client
/// certificate).  Error messages start with `cannot read`, `certificate:`,
/// `private key:` or `private key does not match the certificate`.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_add_identity_file(
    b: *mut corotls_conf_builder,
    cert_file: *const c_char,
    key_file: *const c_char,
    password: *const c_char,
) -> Code {
    guard(|| {
        let b = builder(b)?;
        let cert = bytes_arg(cert_file, "certificate file")?;
        let key = bytes_arg(key_file, "key file")?;
        let id = Identity::from_files(path_of(cert), path_of(key), opt_bytes_arg(password))?;
        b.add_identity(id)
    })
}

/// Add an identity from PEM in memory (`cert_pem`: leaf then intermediates;
/// `key_pem`: its key).  The buffers are copied; see
/// corotls_conf_builder_add_identity_file for the rules.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_add_identity_pem(
    b: *mut corotls_conf_builder,
    cert_pem: *const u8,
    cert_len: usize,
    key_pem: *const u8,
    key_len: usize,
    password: *const c_char,
) -> Code {
    guard(|| {
        let b = builder(b)?;
        let cert = slice_arg(cert_pem, cert_len, "certificate PEM")?;
        let key = slice_arg(key_pem, key_len, "key PEM")?;
        let id = Identity::from_pem(cert, key, opt_bytes_arg(password))?;
        b.add_identity(id)
    })
}

/// Trust the CA certificates in a PEM file (read now, and again at build).
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_add_ca_file(b: *mut corotls_conf_builder, path: *const c_char) -> Code {
    guard(|| {
        let b = builder(b)?;
        b.add_ca_file(path_of(bytes_arg(path, "CA file")?))
    })
}

/// Trust a directory of CA certificates named by subject hash (as made by
/// `openssl rehash`).  Files are looked up during verification.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_add_ca_dir(b: *mut corotls_conf_builder, path: *const c_char) -> Code {
    guard(|| {
        let b = builder(b)?;
        b.add_ca_dir(path_of(bytes_arg(path, "CA directory")?))
    })
}

/// Trust the CA certificates in a PEM buffer (copied).
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_add_ca_pem(
    b: *mut corotls_conf_builder,
    pem: *const u8,
    len: usize,
) -> Code {
    guard(|| {
        let b = builder(b)?;
        b.add_ca_pem(slice_arg(pem, len, "CA PEM")?)
    })
}

/// Trust the system's default CA store (OpenSSL's default paths).
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_add_system_ca(b: *mut corotls_conf_builder) -> Code {
    guard(|| {
        builder(b)?.add_system_ca();
        Ok(())
    })
}

/// Set the peer verification policy: COROTLS_VERIFY_NONE, _PEER or
/// _REQUIRE.  For a client, PEER and REQUIRE both verify the server (its
/// chain and, unless corotls_conf_builder_set_verify_name turned it off,
/// its name).  A conf that verifies needs trust: build fails without.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_verify(b: *mut corotls_conf_builder, mode: i32) -> Code {
    guard(|| {
        let b = builder(b)?;
        let v = match mode {
            0 => Verify::None,
            1 => Verify::Peer,
            2 => Verify::Require,
            _ => return Err(Error::arg(format!("verify mode {mode} is not a corotls_verify value"))),
        };
        b.set_verify(v);
        Ok(())
    })
}

/// Whether a client that verifies the server also checks its name
/// (default true).  The name checked is, in this order: the one given to
/// set_verify_host, else the SNI name, else the host given to
/// corotls_loop_connect; an IP literal is matched against IP SANs.  With
/// no name at all the handshake fails with COROTLS_ERR_VERIFY.
///
/// `false` verifies the chain only: **any** certificate from a trusted CA
/// is accepted, whatever host it names, unless a session is given a name
/// with set_verify_host.  This is a weakening; use it only to keep the
/// contract of a runtime that checks names on request only.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_verify_name(b: *mut corotls_conf_builder, on: bool) -> Code {
    guard(|| {
        builder(b)?.set_verify_name(on);
        Ok(())
    })
}

/// Let a conf that verifies peers build with no trust at all (no CA file,
/// directory, PEM or system store): every peer certificate then fails
/// verification, so every handshake with a certificate fails with
/// COROTLS_ERR_VERIFY.  Without this call corotls_conf_builder_build
/// refuses such a conf (COROTLS_ERR_ARG, reason COROTLS_REASON_TRUST).
/// Trust added as well is used as usual.  For hosts whose contract is
/// "verify without a CA builds, then fails" (Melon's and Melang's
/// `conf_new(..., verify)` without `ca`); it weakens nothing.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_allow_empty_trust(b: *mut corotls_conf_builder) -> Code {
    guard(|| {
        builder(b)?.allow_empty_trust();
        Ok(())
    })
}

/// Allow TLS versions from `min` to `max` (COROTLS_TLS1_2, COROTLS_TLS1_3).
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_versions(b: *mut corotls_conf_builder, min: i32, max: i32) -> Code {
    guard(|| {
        let b = builder(b)?;
        let v =
            |x: i32| Version::from_wire(x).ok_or_else(|| Error::arg(format!("TLS version 0x{x:04x} is not supported")));
        b.set_versions(v(min)?, v(max)?)
    })
}

/// Replace the TLS 1.2 cipher list (OpenSSL syntax, e.g. "ECDHE+AESGCM").
/// Checked now; COROTLS_ERR_ARG, with a message naming the entry, for: an
/// empty list; a name OpenSSL does not know (after `!` or `-`, the names
/// OpenSSL 3 retired, such as RC4 or EXPORT, are allowed); a positive
/// entry selecting eNULL, NULL, aNULL, ADH, AECDH, EXPORT or RC4;
/// `@SECLEVEL=0`; a list that selects a cipher without encryption or none
/// with authentication.  TLS 1.3 suites are not affected (see
/// corotls_conf_builder_set_suites).
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_ciphers(b: *mut corotls_conf_builder, list: *const c_char) -> Code {
    guard(|| {
        let b = builder(b)?;
        b.set_ciphers(str_arg(list, "cipher list")?)
    })
}

/// Replace the TLS 1.3 cipher suites (e.g. "TLS_AES_128_GCM_SHA256").
/// Checked now: at least one, each a suite OpenSSL knows, else
/// COROTLS_ERR_ARG naming the entry.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_suites(b: *mut corotls_conf_builder, list: *const c_char) -> Code {
    guard(|| {
        let b = builder(b)?;
        b.set_suites(str_arg(list, "suite list")?)
    })
}

/// Replace the key exchange groups, most preferred first (e.g.
/// "X25519:P-256:P-384:P-521").  Checked now: at least one, each a group
/// OpenSSL knows, else COROTLS_ERR_ARG naming the entry.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_groups(b: *mut corotls_conf_builder, list: *const c_char) -> Code {
    guard(|| {
        let b = builder(b)?;
        b.set_groups(str_arg(list, "group list")?)
    })
}

/// Set the ALPN protocols, most preferred first (`count` NUL-terminated
/// names, each 1..255 bytes).  A client offers them; a server selects the
/// first of its list that the client offers, or continues without ALPN.
/// `protos` NULL with `count` 0 clears the list (no ALPN).
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_alpn(
    b: *mut corotls_conf_builder,
    protos: *const *const c_char,
    count: usize,
) -> Code {
    guard(|| {
        let b = builder(b)?;
        if protos.is_null() && count == 0 {
            b.clear_alpn();
            return Ok(());
        }
        if protos.is_null() || count == 0 {
            return Err(Error::arg("ALPN list is NULL or empty (NULL with count 0 clears it)"));
        }
        let names = std::slice::from_raw_parts(protos, count)
            .iter()
            .map(|p| bytes_arg(*p, "ALPN protocol name"))
            .collect::<Result<Vec<&[u8]>>>()?;
        b.set_alpn_names(names)
    })
}

/// Set the ALPN protocols in wire format (each name prefixed by its length
/// byte, as in `"\x02h2\x08http/1.1"`).  Validated.  `wire` NULL with
/// `len` 0 clears the list (no ALPN).
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_alpn_wire(
    b: *mut corotls_conf_builder,
    wire: *const u8,
    len: usize,
) -> Code {
    guard(|| {
        let b = builder(b)?;
        if wire.is_null() && len == 0 {
            b.clear_alpn();
            return Ok(());
        }
        b.set_alpn_wire(slice_arg(wire, len, "ALPN list")?)
    })
}

/// Build an immutable conf from the builder's current settings.  The
/// builder is not consumed: it may be changed and built again (each build
/// is independent, e.g. for a reload).  COROTLS_ERR_ARG when a server has
/// no identity, or when the conf verifies peers but trusts no CA (the
/// message names the calls that fix it).
///
/// On success `*out` is a new conf owned by the caller (release it with
/// corotls_conf_free).
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_build(b: *mut corotls_conf_builder, out: *mut *mut corotls_conf) -> Code {
    guard(|| {
        let out = out_arg(out, std::ptr::null_mut(), "output pointer")?;
        let c = builder(b)?.build()?;
        *out = conf_into_raw(c);
        Ok(())
    })
}

/// One call with the meaning of Melang's `tls.conf_new(role, cert, key, ca,
/// ciphers, verify)`: `role` COROTLS_CLIENT or COROTLS_SERVER; a server
/// needs `cert_file` and `key_file`, a client may give both for a client
/// certificate; `ca_file` is the only trust (no system store); `ciphers`
/// (TLS 1.2 list, checked as by corotls_conf_builder_set_ciphers) may be
/// NULL; `verify` makes a client verify the server, chain and name (see
/// corotls_conf_builder_set_verify_name; `ca_file` is then required), and
/// a server require a client certificate.  NULL or "" mean "not given".
/// The other settings are the builder's defaults.
///
/// On success `*out` is a new conf owned by the caller.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_new(
    role: i32,
    cert_file: *const c_char,
    key_file: *const c_char,
    ca_file: *const c_char,
    ciphers: *const c_char,
    verify: bool,
    out: *mut *mut corotls_conf,
) -> Code {
    guard(|| {
        let out = out_arg(out, std::ptr::null_mut(), "output pointer")?;
        let ciphers = match opt_bytes_arg(ciphers) {
            Some(c) => Some(std::str::from_utf8(c).map_err(|_| Error::arg("cipher list is not UTF-8"))?),
            None => None,
        };
        let c = Conf::simple(
            role_of(role)?,
            opt_bytes_arg(cert_file).map(path_of),
            opt_bytes_arg(key_file).map(path_of),
            opt_bytes_arg(ca_file).map(path_of),
            ciphers,
            verify,
        )?;
        *out = conf_into_raw(c);
        Ok(())
    })
}

/// Release the caller's reference.  NULL does nothing.  Sessions,
/// connections and listeners that use the conf keep it alive and keep
/// working; only this handle becomes invalid.  A handle that is not a live
/// conf (freed already, or another kind of object) frees nothing and sets
/// corotls_last_error() (COROTLS_ERR_ARG, COROTLS_REASON_BAD_ARGUMENT).
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_free(conf: *mut corotls_conf) {
    free_handle::<Conf>(conf as usize, Kind::Conf)
}

/// The conf's role (COROTLS_CLIENT or COROTLS_SERVER), or -1 for NULL or a
/// handle that is not a live conf.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_role(conf: *const corotls_conf) -> i32 {
    boundary(|| match conf_ref(conf) {
        Ok(c) => match c.role() {
            Role::Client => corotls_role::COROTLS_CLIENT as i32,
            Role::Server => corotls_role::COROTLS_SERVER as i32,
        },
        Err(_) => -1,
    })
}
