//! Cipher, suite and group lists, checked when they are given.
//!
//! OpenSSL itself skips names it does not know and accepts lists that
//! select nothing usable (the handshake fails later, or negotiates no
//! authentication at all).  These checks refuse such lists at once and
//! name the offending entry.

use super::{clear_errors, Ctx};
use crate::error::{Error, Reason::*, Result};
use libc::c_int;
use openssl_sys as sys;
use std::ffi::{CStr, CString};

extern "C" {
    // OpenSSL 3.0; not declared by openssl-sys.
    fn SSL_CTX_get_ciphers(ctx: *const sys::SSL_CTX) -> *mut sys::stack_st_SSL_CIPHER;
    fn SSL_CIPHER_get_auth_nid(c: *const sys::SSL_CIPHER) -> c_int;
}

const NID_UNDEF: c_int = 0;
const NID_AUTH_NULL: c_int = 1053;
/// What TLS 1.3 suites report as their authentication.
const NID_AUTH_ANY: c_int = 1064;

/// Names that select unauthenticated, unencrypted or broken ciphers: never
/// accepted as a positive entry.
const WEAK: &[&str] =
    &["eNULL", "NULL", "aNULL", "ADH", "AECDH", "COMPLEMENTOFALL", "EXPORT", "EXPORT40", "EXPORT56", "EXP", "RC4"];

/// Names OpenSSL 3 no longer defines but old configurations still exclude
/// (`!RC4`): harmless after `!` or `-`, unknown anywhere else.
const RETIRED: &[&str] =
    &["EXPORT", "EXPORT40", "EXPORT56", "EXP", "LOW", "RC4", "RC2", "DES", "3DES", "IDEA", "SEED", "SSLv2"];

/// One cipher of a context's list, as OpenSSL resolved it.
struct Resolved {
    name: String,
    tls13: bool,
    authenticated: bool,
    encrypting: bool,
}

fn entries(list: &str) -> Vec<&str> {
    list.split([':', ',', ' ', ';']).filter(|e| !e.is_empty()).collect()
}

fn cstring(list: &str, what: &str) -> Result<CString> {
    CString::new(list).map_err(|_| Error::arg(format!("{what} contains a NUL byte")))
}

/// The ciphers `ctx` would offer (TLS 1.3 suites first).
fn resolved(ctx: &Ctx) -> Vec<Resolved> {
    let mut out = Vec::new();
    // SAFETY: live context; the stack and its ciphers are owned by it and
    // read before it changes; cipher names are static.
    unsafe {
        let sk = SSL_CTX_get_ciphers(ctx.as_ptr()) as *const sys::OPENSSL_STACK;
        if sk.is_null() {
            return out;
        }
        for i in 0..sys::OPENSSL_sk_num(sk) {
            let c = sys::OPENSSL_sk_value(sk, i) as *const sys::SSL_CIPHER;
            if c.is_null() {
                continue;
            }
            let auth = SSL_CIPHER_get_auth_nid(c);
            out.push(Resolved {
                name: super::cstr_or(sys::SSL_CIPHER_get_name(c), "?"),
                tls13: auth == NID_AUTH_ANY,
                authenticated: auth != NID_AUTH_NULL,
                encrypting: sys::SSL_CIPHER_get_cipher_nid(c) != NID_UNDEF,
            });
        }
    }
    out
}

/// A scratch client context on which lists are tried.
fn probe() -> Result<Ctx> {
    Ctx::new(false)
}

fn cipher_list_selects(ctx: &Ctx, list: &CStr) -> bool {
    clear_errors();
    // SAFETY: live context; NUL-terminated list.
    let ok = unsafe { sys::SSL_CTX_set_cipher_list(ctx.as_ptr(), list.as_ptr()) } == 1;
    clear_errors();
    ok
}

/// A TLS 1.2 cipher list in OpenSSL syntax, checked entry by entry: every
/// name must be one OpenSSL knows, no positive entry may select eNULL,
/// aNULL, EXPORT or RC4, `@SECLEVEL=0` is refused, and the whole list must
/// leave at least one authenticated, encrypting cipher and none that does
/// not encrypt.
pub fn check_cipher_list(list: &str) -> Result<CString> {
    let bad = |why: String| {
        Error::arg(format!("invalid TLS 1.2 cipher list '{list}': {why}")).because(COROTLS_REASON_CIPHER_LIST)
    };
    let whole = cstring(list, "cipher list")?;
    let items = entries(list);
    if items.is_empty() {
        return Err(bad("the list is empty".into()));
    }
    let ctx = probe()?;
    for e in &items {
        if let Some(directive) = e.strip_prefix('@') {
            match directive {
                "STRENGTH" => continue,
                "SECLEVEL=0" => return Err(bad("@SECLEVEL=0 allows unauthenticated and broken ciphers".into())),
                d if d.strip_prefix("SECLEVEL=").is_some_and(|n| matches!(n, "1" | "2" | "3" | "4" | "5")) => continue,
                _ => return Err(bad(format!("'{e}' is not a directive OpenSSL knows"))),
            }
        }
        let (negative, name) = match e.as_bytes()[0] {
            b'!' | b'-' => (true, &e[1..]),
            b'+' => (false, &e[1..]),
            _ => (false, *e),
        };
        if !negative {
            if let Some(w) = name.split('+').find(|part| WEAK.contains(part)) {
                return Err(bad(format!("'{e}' selects {w} ciphers (no authentication, no encryption or broken)")));
            }
        }
        // A TLS 1.3 suite name is known too: the TLS 1.2 list skips it (the
        // suites are set apart), as OpenSSL does in a mixed list.
        let known = !name.is_empty()
            && (cipher_list_selects(&ctx, &cstring(name, "cipher list")?) || suite_known(&probe()?, name)?);
        if !(known || negative && RETIRED.contains(&name)) {
            return Err(bad(format!("'{e}' is not a cipher name OpenSSL knows")));
        }
    }
    if !cipher_list_selects(&ctx, &whole) {
        return Err(bad("it selects no cipher".into()));
    }
    let tls12: Vec<Resolved> = resolved(&ctx).into_iter().filter(|c| !c.tls13).collect();
    if let Some(c) = tls12.iter().find(|c| !c.encrypting) {
        return Err(bad(format!("it selects {}, which does not encrypt", c.name)));
    }
    if !tls12.iter().any(|c| c.authenticated) {
        return Err(bad("it leaves no authenticated, encrypting cipher".into()));
    }
    Ok(whole)
}

/// TLS 1.3 suites (`TLS_AES_128_GCM_SHA256:...`): at least one, each a
/// suite OpenSSL knows.
pub fn check_suites(list: &str) -> Result<CString> {
    let bad = |why: String| {
        Error::arg(format!("invalid TLS 1.3 suite list '{list}': {why}")).because(COROTLS_REASON_SUITE_LIST)
    };
    let whole = cstring(list, "suite list")?;
    let items = entries(list);
    if items.is_empty() {
        return Err(bad("the list is empty (TLS 1.3 needs a suite; limit the versions to turn it off)".into()));
    }
    let ctx = probe()?;
    for e in &items {
        if !suite_known(&ctx, e)? {
            return Err(bad(format!("'{e}' is not a TLS 1.3 suite OpenSSL knows")));
        }
    }
    Ok(whole)
}

/// `name` is a TLS 1.3 suite: set alone on `ctx`, it is the only one.
/// (OpenSSL skips unknown suite names without an error.)
fn suite_known(ctx: &Ctx, name: &str) -> Result<bool> {
    let one = cstring(name, "suite list")?;
    clear_errors();
    // SAFETY: live context; NUL-terminated name.
    let set = unsafe { sys::SSL_CTX_set_ciphersuites(ctx.as_ptr(), one.as_ptr()) } == 1;
    clear_errors();
    let names: Vec<String> = resolved(ctx).into_iter().filter(|c| c.tls13).map(|c| c.name).collect();
    Ok(set && names == [name])
}

/// Key exchange groups (`X25519:P-256:P-384`): at least one, each a group
/// OpenSSL knows.
pub fn check_groups(list: &str) -> Result<CString> {
    let bad =
        |why: String| Error::arg(format!("invalid group list '{list}': {why}")).because(COROTLS_REASON_GROUP_LIST);
    let whole = cstring(list, "group list")?;
    let items = entries(list);
    if items.is_empty() {
        return Err(bad("the list is empty".into()));
    }
    let ctx = probe()?;
    for e in &items {
        if ctx.set_groups(&cstring(e, "group list")?).is_err() {
            return Err(bad(format!("'{e}' is not a group OpenSSL knows")));
        }
    }
    ctx.set_groups(&whole).map_err(|e| bad(e.msg.into_owned()))?;
    Ok(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(list: &str, why: &str) {
        let e = check_cipher_list(list).unwrap_err();
        assert!(e.msg.contains(why), "{list}: {}", e.msg);
    }

    #[test]
    fn cipher_lists() {
        for ok in [
            "ECDHE+AESGCM",
            "HIGH:!aNULL:!MD5",
            "HIGH:!aNULL:!EXPORT:!RC4:!3DES",
            "ECDHE-RSA-AES128-GCM-SHA256:@STRENGTH",
            "DEFAULT:@SECLEVEL=2",
            "ECDHE+CHACHA20 ECDHE+AESGCM",
            "ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256",
        ] {
            check_cipher_list(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        refused("", "empty");
        refused(":", "empty");
        refused("eNULL", "'eNULL' selects eNULL");
        refused("aNULL", "'aNULL' selects aNULL");
        refused("aNULL:@SECLEVEL=0", "aNULL");
        refused("HIGH:@SECLEVEL=0", "@SECLEVEL=0");
        refused("ECDHE+aNULL", "aNULL");
        refused("EXPORT", "EXPORT");
        refused("RC4", "RC4");
        refused("ECDHE+AESGCM:NOT-A-CIPHER", "'NOT-A-CIPHER' is not a cipher name");
        refused("!NOT-A-CIPHER:HIGH", "'!NOT-A-CIPHER' is not a cipher name");
        refused("HIGH:@BOGUS", "'@BOGUS' is not a directive");
        refused("MD5", "does not encrypt");
        refused("HIGH:kRSA+NULL", "NULL");
        refused("!HIGH", "selects no cipher");
        refused("TLS_AES_128_GCM_SHA256", "selects no cipher");
    }

    #[test]
    fn suites() {
        check_suites("TLS_AES_128_GCM_SHA256").unwrap();
        check_suites("TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256").unwrap();
        assert!(check_suites("").unwrap_err().msg.contains("empty"));
        let e = check_suites("TLS_AES_128_GCM_SHA256:TLS_NOT_A_SUITE").unwrap_err();
        assert!(e.msg.contains("'TLS_NOT_A_SUITE' is not a TLS 1.3 suite"), "{e}");
        assert!(check_suites("ECDHE-RSA-AES128-GCM-SHA256").is_err());
        assert!(check_suites("a\0b").unwrap_err().msg.contains("NUL"));
    }

    #[test]
    fn groups() {
        check_groups("X25519:P-256:P-384").unwrap();
        check_groups("P-521").unwrap();
        assert!(check_groups("").unwrap_err().msg.contains("empty"));
        assert!(check_groups("X25519:NOT-A-GROUP").unwrap_err().msg.contains("'NOT-A-GROUP'"));
    }
}
