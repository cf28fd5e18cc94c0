//! `mln_tcp_tls_conf_new` / `_free` (spec melon.md §3.5, §3.6), built with
//! the engine's `ConfBuilder`.
//!
//! The struct is calloc'd and freed with free (as Melon does).  It holds one
//! reference to the SSL_CTX of the conf the engine built; every SSL created
//! from it holds its own, so connections outlive `conf_free`.

use crate::abi::*;
use crate::host::{self, set_errno};
use corotls::session::host::{release_ctx, share_ctx};
use corotls::{ConfBuilder, Identity, Role, Verify, Version};
use libc::c_void;
use openssl_sys::SSL_CTX;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

pub const M_TLS_V1_2: u32 = 0x4;
pub const M_TLS_V1_3: u32 = 0x8;
pub const M_TLS_VDEFAULT: u32 = M_TLS_V1_2 | M_TLS_V1_3;

/// The bytes of an `mln_string_t` (None for NULL).
///
/// # Safety
/// `s` is NULL or a live string whose `data` holds `len` bytes.
pub unsafe fn bytes<'a>(s: *const MlnString) -> Option<&'a [u8]> {
    if s.is_null() {
        return None;
    }
    let len = (*s).len as usize;
    if len == 0 || (*s).data.is_null() {
        return Some(&[]);
    }
    Some(std::slice::from_raw_parts((*s).data, len))
}

/// Non-empty contents, as Melon treats "length > 0".
unsafe fn non_empty<'a>(s: *const MlnString) -> Option<&'a [u8]> {
    bytes(s).filter(|b| !b.is_empty())
}

fn path(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

/// One reference to the SSL_CTX for these settings, or None (errno as the
/// failure left it).
fn build_ctx(
    role: Role,
    cert: Option<&[u8]>,
    key: Option<&[u8]>,
    ca: Option<&[u8]>,
    ciphers: Option<&[u8]>,
    versions: u32,
    verify: bool,
) -> Option<*mut SSL_CTX> {
    let mut b = ConfBuilder::new(role);
    let min = if versions & M_TLS_V1_2 != 0 { Version::Tls12 } else { Version::Tls13 };
    let max = if versions & M_TLS_V1_3 != 0 { Version::Tls13 } else { Version::Tls12 };
    b.set_versions(min, max).ok()?;
    if let Some(c) = ciphers {
        // Melon hands OpenSSL a NUL-terminated copy: the list ends at a NUL.
        let c = c.split(|&x| x == 0).next().unwrap_or(&[]);
        b.set_ciphers(std::str::from_utf8(c).ok()?).ok()?;
    }
    match (cert, key) {
        (Some(c), Some(k)) => {
            b.add_identity(Identity::from_files(path(c), path(k), None).ok()?).ok()?;
        }
        // A client certificate without its key: Melon loads the chain (it
        // must be readable) but the client can never present it.
        (Some(c), None) => {
            Identity::check_cert_file(path(c)).ok()?;
        }
        // A key without a certificate fails, for either role.
        (None, Some(_)) => return None,
        (None, None) => {}
    }
    match ca {
        Some(ca) => b.add_ca_file(path(ca)).ok()?,
        // Melon's contract: verify without a CA builds, and every handshake
        // then fails verification (no trust anchor).
        None => b.allow_empty_trust(),
    }
    b.set_verify(Verify::from_flag(verify, role));
    // Melon's contract: a client checks the server's name only after
    // set_verify_host; without it, the chain alone (the explicit opt-out).
    b.set_verify_name(false);
    let conf = b.build().ok()?;
    // One reference for the struct; `conf` drops its own.
    Some(share_ctx(&conf))
}

/// `mln_string_dup`'s shape in one malloc: header, data, NUL;
/// data_ref=1, pool=0, ref=1 (so Melon's mln_string_free frees it whole).
unsafe fn dup(s: *const MlnString) -> Result<*mut MlnString, ()> {
    let Some(data) = bytes(s) else { return Ok(ptr::null_mut()) };
    let hdr = std::mem::size_of::<MlnString>();
    let p = libc::malloc(hdr + data.len() + 1) as *mut u8;
    if p.is_null() {
        return Err(());
    }
    let d = p.add(hdr);
    ptr::copy_nonoverlapping(data.as_ptr(), d, data.len());
    *d.add(data.len()) = 0;
    ptr::write(
        p as *mut MlnString,
        MlnString { data: d, len: data.len() as u64, bits: STR_DATA_REF | (1 << STR_REF_SHIFT) },
    );
    Ok(p as *mut MlnString)
}

/// Melon's `mln_string_free` (a macro in Melon, so re-expressed here).
unsafe fn string_free(s: *mut MlnString) {
    if s.is_null() {
        return;
    }
    let bits = (*s).bits;
    let refs = (bits & STR_REF_MASK) >> STR_REF_SHIFT;
    if refs > 1 {
        (*s).bits = (bits & !STR_REF_MASK) | ((refs - 1) << STR_REF_SHIFT);
        return;
    }
    let pooled = bits & STR_POOL != 0;
    let release = |p: *mut c_void| {
        if pooled {
            host::mln_alloc_free(p)
        } else {
            libc::free(p)
        }
    };
    if bits & STR_DATA_REF == 0 && !(*s).data.is_null() {
        release((*s).data as *mut c_void);
    }
    release(s as *mut c_void);
}

/// # Safety
/// String arguments are NULL or live `mln_string_t`s.
pub unsafe fn conf_new(
    role: u32,
    cert: *const MlnString,
    key: *const MlnString,
    ca: *const MlnString,
    ciphers: *const MlnString,
    versions: u32,
    verify: u32,
) -> *mut TlsConf {
    if role > 1 {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    if versions != 0 && versions & !M_TLS_VDEFAULT != 0 {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    let server = role == 0;
    if server && (non_empty(cert).is_none() || non_empty(key).is_none()) {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    let versions = if versions == 0 { M_TLS_VDEFAULT } else { versions };
    let conf = libc::calloc(1, std::mem::size_of::<TlsConf>()) as *mut TlsConf;
    if conf.is_null() {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    }
    let built = build_ctx(
        if server { Role::Server } else { Role::Client },
        non_empty(cert),
        non_empty(key),
        non_empty(ca),
        non_empty(ciphers),
        versions,
        verify != 0,
    );
    let Some(ctx) = built else {
        libc::free(conf as *mut c_void);
        return ptr::null_mut();
    };
    (*conf).ctx = ctx;
    let copies = [
        (cert, ptr::addr_of_mut!((*conf).cert_file)),
        (key, ptr::addr_of_mut!((*conf).key_file)),
        (ca, ptr::addr_of_mut!((*conf).ca_file)),
        (ciphers, ptr::addr_of_mut!((*conf).ciphers)),
    ];
    for (src, slot) in copies {
        match dup(src) {
            Ok(p) => *slot = p,
            Err(()) => {
                conf_free(conf);
                set_errno(libc::ENOMEM);
                return ptr::null_mut();
            }
        }
    }
    (*conf).versions = versions;
    set_bits(&mut (*conf).bits, CONF_ROLE, !server);
    set_bits(&mut (*conf).bits, CONF_VERIFY, verify != 0);
    conf
}

/// # Safety
/// `conf` is NULL or came from `conf_new` and was not freed.
pub unsafe fn conf_free(conf: *mut TlsConf) {
    if conf.is_null() {
        return;
    }
    string_free((*conf).cert_file);
    string_free((*conf).key_file);
    string_free((*conf).ca_file);
    string_free((*conf).ciphers);
    // SAFETY (caller): the struct owns one reference to its ctx (or NULL).
    release_ctx((*conf).ctx);
    libc::free(conf as *mut c_void);
}
