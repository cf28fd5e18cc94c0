//! The only home of raw OpenSSL calls: declarations missing from
//! `openssl-sys`, error-queue hygiene, and owned handles that free what they
//! hold.  Everything above this module speaks Rust types and `Error`.

pub mod ciphers;
pub mod ctx;
pub mod extras;
pub mod fifo;
pub mod keylog;
pub mod ktls;
pub mod peer;
pub mod sess;
pub mod ssl;
pub mod tickets;

use crate::error::{Error, Reason::*, Result};
use libc::{c_char, c_int, c_long, c_ulong, c_void, size_t};
use openssl_sys as sys;
use std::ffi::CStr;
use std::ptr;

pub use ssl::SslRef;

// Functions openssl-sys 0.9 does not declare (all exist in OpenSSL 3.0).
extern "C" {
    pub fn BIO_ctrl_pending(b: *mut sys::BIO) -> size_t;
    pub fn X509_VERIFY_PARAM_set1_ip_asc(param: *mut sys::X509_VERIFY_PARAM, ipasc: *const c_char) -> c_int;
    pub fn X509_NAME_print_ex(out: *mut sys::BIO, nm: *const sys::X509_NAME, indent: c_int, flags: c_ulong) -> c_int;
    pub fn SSL_CTX_load_verify_dir(ctx: *mut sys::SSL_CTX, path: *const c_char) -> c_int;
    pub fn BIO_free(b: *mut sys::BIO) -> c_int;
    pub fn BIO_get_new_index() -> c_int;
    pub fn BIO_method_type(b: *const sys::BIO) -> c_int;
    pub fn BIO_test_flags(b: *const sys::BIO, flags: c_int) -> c_int;
    pub fn X509_check_private_key(x: *const sys::X509, k: *const sys::EVP_PKEY) -> c_int;
    pub fn ERR_peek_error() -> c_ulong;
    pub fn SSL_has_pending(s: *const sys::SSL) -> c_int;
    pub fn SSL_free_buffers(s: *mut sys::SSL) -> c_int;
}

/// RFC 2253 escaping without escaping multi-byte characters, fields in
/// certificate order, ", " between them: `CN=localhost, O=Example`.
const XN_FLAG_ONELINE_UTF8: c_ulong = 0x1 /* ESC_2253 */ | 0x2 /* ESC_CTRL */
    | 0x10 /* UTF8_CONVERT */ | 0x100 /* DUMP_UNKNOWN */ | 0x200 /* DUMP_DER */
    | (2 << 16) /* XN_FLAG_SEP_CPLUS_SPC */;

pub(crate) const MEM_EOF_RETRY: c_long = -1;
const BIO_CTRL_INFO: c_int = 3;

/// Initialise libssl once (OpenSSL 3 also does this lazily; being explicit
/// keeps the first handshake from paying for it).
pub fn init() {
    sys::init();
}

/// Forget errors left in this thread's queue by earlier calls, ours or the
/// host's: in OpenSSL 3 a stale entry turns the next `SSL_get_error` into
/// SSL_ERROR_SSL and would fail an innocent connection.
///
/// The queue is almost always empty (every failure we see drains it), and
/// `ERR_clear_error` walks all 16 slots regardless (some 380 instructions,
/// 8% of an echo round trip), so it runs only when `ERR_peek_error` (which
/// is what `SSL_get_error` consults) finds something.
pub fn clear_errors() {
    // SAFETY: touches only this thread's error queue.
    unsafe {
        if ERR_peek_error() != 0 {
            sys::ERR_clear_error()
        }
    }
}

/// Drain this thread's error queue into one readable line, or None if empty.
pub fn take_errors() -> Option<String> {
    drain_errors().map(|(text, _)| text)
}

/// `take_errors`, with the first (oldest) packed error code: what the
/// failure was before the follow-up entries.
pub fn drain_errors() -> Option<(String, c_ulong)> {
    let mut parts: Vec<String> = Vec::new();
    let mut first = 0;
    loop {
        let mut data: *const c_char = ptr::null();
        let mut flags: c_int = 0;
        // SAFETY: out-pointers are valid locals; returned strings are static
        // or owned by the queue entry, copied before the next call.
        let e =
            unsafe { sys::ERR_get_error_all(ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), &mut data, &mut flags) };
        if e == 0 {
            break;
        }
        if first == 0 {
            first = e;
        }
        // SAFETY: ERR_reason_error_string returns a static string or NULL.
        let reason = unsafe { cstr_or(sys::ERR_reason_error_string(e), "") };
        let mut text = if reason.is_empty() { format!("OpenSSL error 0x{e:08x}") } else { reason };
        if !data.is_null() && flags & sys::ERR_TXT_STRING != 0 {
            // SAFETY: with ERR_TXT_STRING, data is a NUL-terminated string.
            let extra = unsafe { cstr_or(data, "") };
            if !extra.is_empty() {
                text.push_str(" (");
                text.push_str(&extra);
                text.push(')');
            }
        }
        if parts.last() != Some(&text) {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some((parts.join("; "), first))
    }
}

/// What an OpenSSL packed error code says, as a reason and its detail: a
/// system error (its errno), a fatal alert the peer sent (its number), or
/// a protocol error found here (OpenSSL's reason code).
pub fn reason_of(e: c_ulong) -> (crate::error::Reason, i64) {
    // ERR_SYSTEM_FLAG: the rest is an errno.  Otherwise the low 23 bits are
    // the reason; SSL_AD_REASON_OFFSET (1000) + n is "the peer sent alert n".
    const SYSTEM_FLAG: c_ulong = 1 << 31;
    const REASON_MASK: c_ulong = 0x7f_ffff;
    if e & SYSTEM_FLAG != 0 {
        return (COROTLS_REASON_IO, (e & !SYSTEM_FLAG) as i64);
    }
    let r = (e & REASON_MASK) as i64;
    if (1000..1256).contains(&r) {
        (COROTLS_REASON_PEER_ALERT, r - 1000)
    } else {
        (COROTLS_REASON_PROTOCOL, r)
    }
}

/// An error for a failed OpenSSL call: `what` plus the queue's reasons,
/// with `reason`.
pub fn error(code: crate::error::Code, reason: crate::error::Reason, what: &str) -> Error {
    let e = match take_errors() {
        Some(detail) => Error::new(code, format!("{what}: {detail}")),
        None => Error::new(code, what.to_string()),
    };
    nomem_if_malloc(e.because(reason))
}

/// OpenSSL's reason text for a failed allocation.
const MALLOC_FAILURE: &str = "malloc failure";

/// `e`, or COROTLS_ERR_NOMEM (reason NOMEM) when OpenSSL's reasons in its
/// message say an allocation failed: a certificate that could not be
/// parsed for lack of memory is not a bad certificate.
pub fn nomem_if_malloc(e: Error) -> Error {
    if e.msg.contains(MALLOC_FAILURE) {
        Error::new(crate::error::Code::COROTLS_ERR_NOMEM, e.msg).because(COROTLS_REASON_NOMEM)
    } else {
        e
    }
}

/// Copy a C string owned by OpenSSL (static or short-lived) into Rust.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub unsafe fn cstr_or(p: *const c_char, default: &str) -> String {
    if p.is_null() {
        default.to_string()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Text of an X509_V_* verification result.
pub fn verify_error_string(v: c_long) -> String {
    // SAFETY: returns a static string for any value.
    unsafe { cstr_or(sys::X509_verify_cert_error_string(v), "unknown verify error") }
}

macro_rules! owned_handle {
    ($(#[$m:meta])* $name:ident, $raw:ty, $free:path, $up_ref:path) => {
        $(#[$m])*
        pub struct $name(*mut $raw);

        impl $name {
            /// Take ownership of one reference.  None for NULL.
            ///
            /// # Safety
            /// `p` is NULL or a valid object whose reference the caller gives up.
            pub unsafe fn from_ptr(p: *mut $raw) -> Option<Self> {
                if p.is_null() { None } else { Some($name(p)) }
            }
            pub fn as_ptr(&self) -> *mut $raw {
                self.0
            }
            /// Give up ownership without freeing.
            pub fn into_ptr(self) -> *mut $raw {
                let p = self.0;
                std::mem::forget(self);
                p
            }
        }

        impl Clone for $name {
            fn clone(&self) -> Self {
                // SAFETY: self.0 is a live object; up_ref adds a reference.
                unsafe { $up_ref(self.0) };
                $name(self.0)
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: we own exactly one reference.
                unsafe { $free(self.0) }
            }
        }

        // SAFETY: OpenSSL reference counts are atomic and these objects are
        // only mutated before being shared (confs are immutable once built).
        unsafe impl Send for $name {}
        unsafe impl Sync for $name {}
    };
}

owned_handle!(
    /// An owned reference to an `SSL_CTX`.
    Ctx, sys::SSL_CTX, sys::SSL_CTX_free, sys::SSL_CTX_up_ref
);
owned_handle!(
    /// An owned reference to an `X509` certificate.
    X509, sys::X509, sys::X509_free, sys::X509_up_ref
);
owned_handle!(
    /// An owned reference to an `EVP_PKEY`.
    PKey, sys::EVP_PKEY, sys::EVP_PKEY_free, sys::EVP_PKEY_up_ref
);

/// A read-only memory BIO over a borrowed byte slice.
pub struct ReadBio<'a> {
    bio: *mut sys::BIO,
    _data: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> ReadBio<'a> {
    pub fn new(data: &'a [u8]) -> Result<ReadBio<'a>> {
        let len = c_int::try_from(data.len()).map_err(|_| Error::arg("PEM data is too large"))?;
        // SAFETY: the BIO reads `len` bytes of `data`, which outlives it ('a).
        let bio = unsafe { sys::BIO_new_mem_buf(data.as_ptr() as *const c_void, len) };
        if bio.is_null() {
            return Err(Error::nomem());
        }
        Ok(ReadBio { bio, _data: std::marker::PhantomData })
    }
    pub fn as_ptr(&self) -> *mut sys::BIO {
        self.bio
    }
    /// True once every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        // SAFETY: valid BIO; BIO_CTRL_PENDING on a mem BIO returns its length.
        unsafe { BIO_ctrl_pending(self.bio) == 0 }
    }
}

impl Drop for ReadBio<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the BIO.
        unsafe { BIO_free(self.bio) };
    }
}

/// Every certificate in a PEM buffer, in order.  Errors if there is none or
/// if a certificate block is malformed.
pub fn parse_certs_pem(pem: &[u8], what: &str) -> Result<Vec<X509>> {
    clear_errors();
    let bio = ReadBio::new(pem)?;
    let mut certs = Vec::new();
    loop {
        // SAFETY: valid BIO; no password callback is needed for certificates.
        let x = unsafe { sys::PEM_read_bio_X509(bio.as_ptr(), ptr::null_mut(), None, ptr::null_mut()) };
        // SAFETY: x is NULL or a new certificate we now own.
        match unsafe { X509::from_ptr(x) } {
            Some(c) => certs.push(c),
            None => break,
        }
    }
    // The loop ends with "no start line" once the input is exhausted; that
    // one is expected, anything else (or no certificate at all) is not.
    let queue = take_errors().unwrap_or_default();
    if certs.is_empty() {
        return Err(nomem_if_malloc(
            Error::arg(format!("{what}: no PEM certificate found ({queue})")).because(COROTLS_REASON_CERT_PARSE),
        ));
    }
    if !queue.is_empty() && !queue.contains("no start line") {
        return Err(nomem_if_malloc(
            Error::arg(format!("{what}: malformed PEM certificate ({queue})")).because(COROTLS_REASON_CERT_PARSE),
        ));
    }
    Ok(certs)
}

/// The password callback handed to PEM readers: supplies the configured
/// password, or none (so OpenSSL never prompts on a terminal).
unsafe extern "C" fn password_cb(buf: *mut c_char, size: c_int, _rwflag: c_int, user: *mut c_void) -> c_int {
    crate::unload::callback_guard(0, || {
        // SAFETY: `user` points at the Option<&[u8]> that parse_key_pem keeps
        // alive for the duration of the PEM read.
        let pw = unsafe { &*(user as *const Option<&[u8]>) };
        match pw {
            Some(p) if p.len() <= size.max(0) as usize => {
                // SAFETY: buf has room for `size` bytes and p.len() <= size.
                unsafe { ptr::copy_nonoverlapping(p.as_ptr(), buf as *mut u8, p.len()) };
                p.len() as c_int
            }
            _ => 0,
        }
    })
}

/// The first private key in a PEM buffer (PKCS#8, PKCS#1, SEC1; encrypted
/// with `password` when given).
pub fn parse_key_pem(pem: &[u8], password: Option<&[u8]>, what: &str) -> Result<PKey> {
    clear_errors();
    let bio = ReadBio::new(pem)?;
    let pw: Option<&[u8]> = password;
    // SAFETY: valid BIO; the callback reads `pw`, alive across the call.
    let k = unsafe {
        sys::PEM_read_bio_PrivateKey(
            bio.as_ptr(),
            ptr::null_mut(),
            Some(password_cb),
            &pw as *const Option<&[u8]> as *mut c_void,
        )
    };
    // SAFETY: k is NULL or a new key we now own.
    match unsafe { PKey::from_ptr(k) } {
        Some(k) => {
            clear_errors();
            Ok(k)
        }
        None => {
            let detail = take_errors().unwrap_or_else(|| "unknown error".into());
            let encrypted = contains(pem, b"ENCRYPTED");
            let (hint, reason) = match (encrypted, password.is_some()) {
                (true, true) => (" (wrong password?)", COROTLS_REASON_KEY_PASSWORD),
                (true, false) => (" (the key is encrypted and no password was given)", COROTLS_REASON_KEY_PASSWORD),
                _ => ("", COROTLS_REASON_KEY_PARSE),
            };
            Err(nomem_if_malloc(
                Error::arg(format!("{what}: cannot read the private key{hint}: {detail}")).because(reason),
            ))
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// True if `key` is the private half of `cert`'s public key.
pub fn key_matches_cert(cert: &X509, key: &PKey) -> bool {
    // SAFETY: both handles are valid.
    let ok = unsafe { X509_check_private_key(cert.as_ptr(), key.as_ptr()) } == 1;
    clear_errors();
    ok
}

/// True if `cert`'s public key decodes.  OpenSSL parses a certificate
/// whose key does not decode and refuses it only when a context takes it.
pub fn public_key_decodes(cert: &X509) -> bool {
    // SAFETY: valid cert; the key returned is a new reference, freed here.
    let ok = unsafe {
        let k = sys::X509_get_pubkey(cert.as_ptr());
        if !k.is_null() {
            sys::EVP_PKEY_free(k);
        }
        !k.is_null()
    };
    clear_errors();
    ok
}

/// A certificate's subject as one line (`CN=localhost, O=...`).
pub fn subject_line(cert: &X509) -> String {
    // SAFETY: valid cert; the name is owned by it; the BIO is ours.
    unsafe {
        let name = sys::X509_get_subject_name(cert.as_ptr());
        let bio = sys::BIO_new(sys::BIO_s_mem());
        if bio.is_null() || name.is_null() {
            if !bio.is_null() {
                BIO_free(bio);
            }
            return String::new();
        }
        X509_NAME_print_ex(bio, name, 0, XN_FLAG_ONELINE_UTF8);
        let mut p: *mut c_char = ptr::null_mut();
        let n = sys::BIO_ctrl(bio, BIO_CTRL_INFO, 0, &mut p as *mut *mut c_char as *mut c_void);
        let s = if n > 0 && !p.is_null() {
            String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, n as usize)).into_owned()
        } else {
            String::new()
        };
        BIO_free(bio);
        s
    }
}

/// `X509_check_host(cert, name, flags=0)`: SAN DNS names with wildcards,
/// falling back to the subject CN when the certificate has no DNS SAN.
pub fn cert_matches_host(cert: &X509, name: &[u8]) -> bool {
    // SAFETY: valid cert; name is a byte slice with explicit length.
    let r =
        unsafe { sys::X509_check_host(cert.as_ptr(), name.as_ptr() as *const c_char, name.len(), 0, ptr::null_mut()) };
    clear_errors();
    r == 1
}

fn alpn_error(msg: &'static str) -> Error {
    Error::arg(msg).because(COROTLS_REASON_ALPN)
}

/// Validate an ALPN list in wire format (1-byte length-prefixed names, each
/// 1..=255 bytes without NUL, total < 65536).
pub fn check_alpn_wire(wire: &[u8]) -> Result<()> {
    if wire.is_empty() {
        return Err(alpn_error("ALPN list is empty"));
    }
    if wire.len() > 65535 {
        return Err(alpn_error("ALPN list is longer than 65535 bytes"));
    }
    let mut i = 0;
    while i < wire.len() {
        let n = wire[i] as usize;
        if n == 0 {
            return Err(alpn_error("ALPN list has an empty protocol name"));
        }
        if i + 1 + n > wire.len() {
            return Err(alpn_error("ALPN list is truncated (a length prefix runs past the end)"));
        }
        // NUL is legal on the wire but would cut the negotiated name short
        // for every C caller; no registered protocol uses it.
        if wire[i + 1..i + 1 + n].contains(&0) {
            return Err(alpn_error("ALPN protocol name contains a NUL byte"));
        }
        i += 1 + n;
    }
    Ok(())
}

/// Build the ALPN wire format from protocol names.
pub fn alpn_wire_from_names<'a>(names: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>> {
    let mut wire = Vec::new();
    for n in names {
        if n.is_empty() {
            return Err(alpn_error("ALPN protocol name is empty"));
        }
        if n.len() > 255 {
            return Err(alpn_error("ALPN protocol name is longer than 255 bytes"));
        }
        wire.push(n.len() as u8);
        wire.extend_from_slice(n);
    }
    check_alpn_wire(&wire)?;
    Ok(wire)
}
