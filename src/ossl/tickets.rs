//! Session-ticket keys of a server and the callback that uses them
//! (`SSL_CTX_set_tlsext_ticket_key_evp_cb`): TLS 1.3 tickets and TLS 1.2
//! session tickets are encrypted with AES-256-CBC and authenticated with
//! HMAC-SHA256 under the current key.
//!
//! Rotation: a new key becomes current (new tickets use it); the keys it
//! replaced still decrypt until their grace period ends, and a ticket they
//! decrypt is renewed under the current key.  A ticket under an unknown or
//! retired key is refused, so the client gets a full handshake, never an
//! error.

use super::{clear_errors, error, Ctx};
use crate::error::{Code::*, Error, Reason::*, Result};
use crate::unload::callback_guard;
use libc::{c_char, c_int, c_uchar, c_void, size_t};
use openssl_sys as sys;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes of a ticket key: a 16-byte name (sent in every ticket), a 32-byte
/// AES-256 key and a 32-byte HMAC-SHA256 key, in that order.
pub const TICKET_KEY_LEN: usize = 80;
/// Keys kept at most (the current one and those in their grace period):
/// rotating faster than the grace periods end drops the oldest early.
const MAX_KEYS: usize = 8;

extern "C" {
    // OpenSSL 3.0; not declared by openssl-sys.
    fn SSL_CTX_set_tlsext_ticket_key_evp_cb(
        ctx: *mut sys::SSL_CTX,
        cb: Option<
            unsafe extern "C" fn(
                *mut sys::SSL,
                *mut c_uchar,
                *mut c_uchar,
                *mut sys::EVP_CIPHER_CTX,
                *mut sys::EVP_MAC_CTX,
                c_int,
            ) -> c_int,
        >,
    ) -> c_int;
    fn OSSL_PARAM_construct_utf8_string(key: *const c_char, buf: *mut c_char, bsize: size_t) -> sys::OSSL_PARAM;
    fn SSL_CTX_set_session_ticket_cb(
        ctx: *mut sys::SSL_CTX,
        gen_cb: Option<unsafe extern "C" fn(*mut sys::SSL, *mut c_void) -> c_int>,
        dec_cb: Option<
            unsafe extern "C" fn(
                *mut sys::SSL,
                *mut sys::SSL_SESSION,
                *const c_uchar,
                size_t,
                c_int,
                *mut c_void,
            ) -> c_int,
        >,
        arg: *mut c_void,
    ) -> c_int;
    fn SSL_client_hello_get0_ext(
        s: *mut sys::SSL,
        ext: libc::c_uint,
        out: *mut *const c_uchar,
        len: *mut size_t,
    ) -> c_int;
    fn SSL_SESSION_get0_hostname(s: *const sys::SSL_SESSION) -> *const c_char;
}

// SSL_TICKET_* statuses and SSL_TICKET_RETURN_* values (ssl.h).
const TICKET_SUCCESS: c_int = 5;
const TICKET_SUCCESS_RENEW: c_int = 6;
const RETURN_IGNORE_RENEW: c_int = 2;
const RETURN_USE: c_int = 3;
const RETURN_USE_RENEW: c_int = 4;

struct TicketKey {
    name: [u8; 16],
    aes: [u8; 32],
    hmac: [u8; 32],
    /// None for the current key; a retired key decrypts until then.
    until: Option<Instant>,
}

impl TicketKey {
    fn parse(bytes: Option<&[u8]>) -> Result<TicketKey> {
        let mut k = [0u8; TICKET_KEY_LEN];
        match bytes {
            Some(b) if b.len() == TICKET_KEY_LEN => k.copy_from_slice(b),
            Some(b) => {
                return Err(Error::arg(format!(
                    "a ticket key is {TICKET_KEY_LEN} bytes (16 name, 32 AES, 32 HMAC), not {}",
                    b.len()
                )))
            }
            None => random(&mut k)?,
        }
        let mut key = TicketKey { name: [0; 16], aes: [0; 32], hmac: [0; 32], until: None };
        key.name.copy_from_slice(&k[..16]);
        key.aes.copy_from_slice(&k[16..48]);
        key.hmac.copy_from_slice(&k[48..]);
        k.fill(0);
        Ok(key)
    }
}

impl Drop for TicketKey {
    fn drop(&mut self) {
        self.aes.fill(0);
        self.hmac.fill(0);
    }
}

fn random(buf: &mut [u8]) -> Result<()> {
    // SAFETY: buf is valid for its length.
    if unsafe { sys::RAND_bytes(buf.as_mut_ptr(), buf.len() as c_int) } == 1 {
        Ok(())
    } else {
        Err(error(COROTLS_ERR_INTERNAL, COROTLS_REASON_INTERNAL, "RAND_bytes failed"))
    }
}

/// A server's ticket keys, shared by its contexts (one per identity).
pub struct TicketKeys {
    keys: Mutex<Vec<TicketKey>>,
}

impl TicketKeys {
    /// With `key` (TICKET_KEY_LEN bytes) as the current key, or a random one.
    pub fn new(key: Option<&[u8]>) -> Result<TicketKeys> {
        Ok(TicketKeys { keys: Mutex::new(vec![TicketKey::parse(key)?]) })
    }

    /// Make `key` (or a random key) current; the keys it replaces decrypt
    /// for `grace` more, then never again.  A key whose name is already
    /// known is refused.
    pub fn rotate(&self, key: Option<&[u8]>, grace: Duration) -> Result<()> {
        let new = TicketKey::parse(key)?;
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        keys.retain(|k| k.until.map_or(true, |t| t > now));
        if keys.iter().any(|k| k.name == new.name) {
            return Err(Error::arg("this ticket key name is in use already: rotate to a new key"));
        }
        // Checked: a grace past the clock's range would panic in `+`.
        let until = now.checked_add(grace).ok_or_else(|| {
            Error::arg(format!("grace period {} ms is longer than the clock can count", grace.as_millis()))
        })?;
        for k in keys.iter_mut() {
            // A key already retired keeps the earlier of its end and the new one.
            k.until = Some(k.until.map_or(until, |t| t.min(until)));
        }
        keys.insert(0, new);
        keys.truncate(MAX_KEYS);
        Ok(())
    }

    /// Keys that decrypt now (the current one included).
    pub fn live_keys(&self) -> usize {
        let now = Instant::now();
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|k| k.until.map_or(true, |t| t > now)).count()
    }
}

/// Give `ctx` the ticket callback (its keys come from the context's
/// extras), and turn tickets on or off: off means no TLS 1.2 tickets and
/// no TLS 1.3 tickets (OpenSSL's TLS 1.2 session-ID cache stays).
pub fn configure(ctx: &Ctx, on: bool) -> Result<()> {
    let p = ctx.as_ptr();
    // SAFETY: live context; the callback reads only the context's extras.
    unsafe {
        if on {
            sys::SSL_CTX_clear_options(p, sys::SSL_OP_NO_TICKET);
            if SSL_CTX_set_tlsext_ticket_key_evp_cb(p, Some(ticket_key_cb)) != 1
                || SSL_CTX_set_session_ticket_cb(p, None, Some(ticket_name_cb), std::ptr::null_mut()) != 1
            {
                return Err(error(COROTLS_ERR_INTERNAL, COROTLS_REASON_INTERNAL, "cannot set the ticket callback"));
            }
        } else {
            sys::SSL_CTX_set_options(p, sys::SSL_OP_NO_TICKET);
            sys::SSL_CTX_set_num_tickets(p, 0);
        }
    }
    clear_errors();
    Ok(())
}

/// Point the HMAC at SHA-256 keyed with `key`.
///
/// # Safety
/// `hctx` is the live MAC context OpenSSL passed to the callback.
unsafe fn set_hmac(hctx: *mut sys::EVP_MAC_CTX, key: &[u8; 32]) -> bool {
    let mut digest = *b"SHA256\0";
    let params = [
        OSSL_PARAM_construct_utf8_string(c"digest".as_ptr(), digest.as_mut_ptr() as *mut c_char, 0),
        sys::OSSL_PARAM_construct_octet_string(c"key".as_ptr(), key.as_ptr() as *mut c_void, key.len()),
        sys::OSSL_PARAM_construct_end(),
    ];
    sys::EVP_MAC_CTX_set_params(hctx, params.as_ptr()) == 1
}

/// OpenSSL's ticket callback: `enc` 1 asks for the current key (fill
/// `name` and `iv`); 0 gives a ticket's `name` and `iv` to decrypt with.
/// Returns 1 (go on), 2 (renew the ticket: it was under an old key, or
/// it is TLS 1.3), 0 (unknown or retired key: full handshake) or -1
/// (error).
unsafe extern "C" fn ticket_key_cb(
    ssl: *mut sys::SSL,
    name: *mut c_uchar,
    iv: *mut c_uchar,
    cctx: *mut sys::EVP_CIPHER_CTX,
    hctx: *mut sys::EVP_MAC_CTX,
    enc: c_int,
) -> c_int {
    callback_guard(-1, || {
        // SAFETY: OpenSSL passes a live SSL; its context's extras outlive the call.
        let Some(keys) = (unsafe { super::extras::ctx_extras(ssl) }).and_then(|x| x.tickets.as_ref()) else {
            return -1;
        };
        let mut keys = keys.keys.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        keys.retain(|k| k.until.map_or(true, |t| t > now));
        // SAFETY (block): OpenSSL gives `name` 16 bytes and `iv` EVP_MAX_IV_LENGTH
        // (16) bytes; the cipher and MAC contexts are live for the call.
        unsafe {
            let name = std::slice::from_raw_parts_mut(name, 16);
            let iv = std::slice::from_raw_parts_mut(iv, 16);
            if enc == 1 {
                let Some(k) = keys.first() else { return -1 };
                if random(iv).is_err() {
                    return -1;
                }
                name.copy_from_slice(&k.name);
                let ok = sys::EVP_EncryptInit_ex(
                    cctx,
                    sys::EVP_aes_256_cbc(),
                    std::ptr::null_mut(),
                    k.aes.as_ptr(),
                    iv.as_ptr(),
                ) == 1
                    && set_hmac(hctx, &k.hmac);
                return if ok { 1 } else { -1 };
            }
            let Some(i) = keys.iter().position(|k| k.name == *name) else { return 0 };
            let k = &keys[i];
            let ok = sys::EVP_DecryptInit_ex(
                cctx,
                sys::EVP_aes_256_cbc(),
                std::ptr::null_mut(),
                k.aes.as_ptr(),
                iv.as_ptr(),
            ) == 1
                && set_hmac(hctx, &k.hmac);
            // TLS 1.3 clients use each ticket once (RFC 8446 C.4), and
            // OpenSSL sends a resumed client a new ticket only on renewal.
            let tls13 = sys::SSL_version(ssl) == sys::TLS1_3_VERSION;
            match (ok, i) {
                (false, _) => -1,
                (true, 0) if !tls13 => 1,
                (true, _) => 2,
            }
        }
    })
}

/// The server name of the ClientHello being processed (its SNI
/// extension), if it has one.
///
/// # Safety
/// `ssl` is a live server SSL inside its ClientHello processing.
unsafe fn client_hello_sni(ssl: *mut sys::SSL) -> Option<Vec<u8>> {
    let mut p: *const c_uchar = std::ptr::null();
    let mut len: size_t = 0;
    if SSL_client_hello_get0_ext(ssl, 0 /* TLSEXT_TYPE_server_name */, &mut p, &mut len) != 1 || p.is_null() {
        return None;
    }
    // ServerNameList: u16 length, then entries of u8 type, u16 length, name.
    let ext = std::slice::from_raw_parts(p, len);
    let list = ext.get(2..)?;
    let (&kind, rest) = list.split_first()?;
    let n = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]) as usize;
    (kind == 0).then(|| rest.get(2..2 + n).map(<[u8]>::to_vec)).flatten()
}

/// OpenSSL's decrypt-ticket callback: a ticket resumes only for the server
/// name it was issued under (RFC 6066 3), so a session made for one SNI
/// identity never serves another; otherwise the client gets a full
/// handshake and a new ticket.  A session that recorded no name (a server
/// with one identity records none) resumes under any.  The other statuses
/// get OpenSSL's default answer.
unsafe extern "C" fn ticket_name_cb(
    ssl: *mut sys::SSL,
    sess: *mut sys::SSL_SESSION,
    _keyname: *const c_uchar,
    _keyname_len: size_t,
    status: c_int,
    _arg: *mut c_void,
) -> c_int {
    callback_guard(RETURN_IGNORE_RENEW, || {
        if (status != TICKET_SUCCESS && status != TICKET_SUCCESS_RENEW) || sess.is_null() {
            return RETURN_IGNORE_RENEW;
        }
        // SAFETY: OpenSSL passes a live SSL (in its ClientHello) and session.
        let same_name = unsafe {
            let h = SSL_SESSION_get0_hostname(sess);
            h.is_null()
                || client_hello_sni(ssl)
                    .is_some_and(|n| std::ffi::CStr::from_ptr(h).to_bytes().eq_ignore_ascii_case(&n))
        };
        match (same_name, status) {
            (false, _) => RETURN_IGNORE_RENEW,
            (true, TICKET_SUCCESS) => RETURN_USE,
            (true, _) => RETURN_USE_RENEW,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_retire_after_their_grace() {
        assert!(TicketKeys::new(Some(&[1u8; 79])).err().unwrap().msg.contains("80 bytes"));
        let t = TicketKeys::new(Some(&[1u8; 80])).unwrap();
        assert!(t.rotate(Some(&[1u8; 80]), Duration::ZERO).unwrap_err().msg.contains("in use"));
        t.rotate(Some(&[2u8; 80]), Duration::from_millis(200)).unwrap();
        assert_eq!(t.live_keys(), 2);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(t.live_keys(), 1);
        t.rotate(None, Duration::ZERO).unwrap();
        assert_eq!(t.live_keys(), 1);
    }

    #[test]
    fn a_grace_period_past_the_clock_is_refused_and_changes_nothing() {
        let t = TicketKeys::new(Some(&[1u8; 80])).unwrap();
        let e = t.rotate(Some(&[2u8; 80]), Duration::MAX).unwrap_err();
        assert_eq!((e.code, e.reason), (COROTLS_ERR_ARG, COROTLS_REASON_BAD_ARGUMENT));
        assert!(e.msg.contains("grace period"), "{}", e.msg);
        assert_eq!(t.live_keys(), 1);
        t.rotate(Some(&[2u8; 80]), Duration::from_secs(60)).unwrap();
        assert_eq!(t.live_keys(), 2);
    }
}
