//! Cipher-list, suite-list and group-list validation, through the Rust
//! checks, the conf builder, and the C ABI (`corotls_conf_builder_set_*`,
//! `corotls_conf_new`), with bytes that need not be UTF-8 or NUL-free.
//!
//! Input: a selector byte, then the list.
//! Oracle: no crash or leak; the C ABI and the builder agree; a TLS 1.2
//! list that is accepted never lets a server use a cipher without
//! authentication or encryption (the ciphers OpenSSL would really use,
//! after its security level); an accepted list builds a conf, unless its
//! @SECLEVEL is above the test identity's 128 bits (CERT_REJECTED).
#![no_main]
use corotls::error::Reason;
use corotls::ffi::conf::*;
use corotls::ossl::ciphers::{check_cipher_list, check_groups, check_suites};
use corotls::Code;
use corotls::{ConfBuilder, Identity, Role};
use corotls_fuzz::certs::pki;
use corotls_fuzz::Prog;
use libfuzzer_sys::fuzz_target;
use openssl_sys as sys;
use std::ffi::CString;

extern "C" {
    fn SSL_get1_supported_ciphers(s: *mut sys::SSL) -> *mut sys::stack_st_SSL_CIPHER;
    fn SSL_CIPHER_get_auth_nid(c: *const sys::SSL_CIPHER) -> libc::c_int;
}
const NID_AUTH_NULL: libc::c_int = 1053;

/// Every cipher a server with this conf would really accept is
/// authenticated and encrypting.
fn assert_usable_ciphers_are_strong(conf: &corotls::Conf) {
    // SAFETY: a live SSL_CTX; the SSL and the stack are freed here.
    unsafe {
        let ssl = sys::SSL_new(conf.ctx().as_ptr());
        assert!(!ssl.is_null());
        let sk = SSL_get1_supported_ciphers(ssl);
        if !sk.is_null() {
            let st = sk as *mut sys::OPENSSL_STACK;
            for i in 0..sys::OPENSSL_sk_num(st) {
                let c = sys::OPENSSL_sk_value(st, i) as *const sys::SSL_CIPHER;
                let name = std::ffi::CStr::from_ptr(sys::SSL_CIPHER_get_name(c)).to_string_lossy();
                assert_ne!(SSL_CIPHER_get_auth_nid(c), NID_AUTH_NULL, "{name} (no authentication) is usable");
                assert_ne!(sys::SSL_CIPHER_get_cipher_nid(c), 0, "{name} (no encryption) is usable");
            }
            sys::OPENSSL_sk_free(st);
        }
        sys::SSL_free(ssl);
    }
}

fuzz_target!(|data: &[u8]| {
    corotls_fuzz::start();
    let mut p = Prog::new(data);
    let sel = p.byte();
    let raw = p.rest();
    let text = String::from_utf8_lossy(raw);
    let which = sel % 3;
    let checked = match which {
        0 => check_cipher_list(&text).is_ok(),
        1 => check_suites(&text).is_ok(),
        _ => check_groups(&text).is_ok(),
    };
    let mut b = ConfBuilder::new(Role::Server);
    let pki = pki();
    b.add_identity(Identity::from_pem(&pki.server_cert, &pki.server_key, None).unwrap()).unwrap();
    let set = match which {
        0 => b.set_ciphers(&text),
        1 => b.set_suites(&text),
        _ => b.set_groups(&text),
    };
    assert_eq!(set.is_ok(), checked, "the builder and the check disagree");
    if checked {
        match b.build() {
            Ok(conf) if which == 0 => assert_usable_ciphers_are_strong(&conf),
            Ok(_) => {}
            // @SECLEVEL=4 and 5 ask for 192 and 256 bits: the P-256
            // identity is then refused, cleanly, when the conf is built
            // (fuzz/regressions/cipher_lists/seclevel4-refuses-the-p256-identity).
            Err(e) => {
                let strict = text.contains("@SECLEVEL=4") || text.contains("@SECLEVEL=5");
                assert!(
                    strict && e.reason == Reason::COROTLS_REASON_CERT_REJECTED,
                    "a conf with an accepted list does not build: {e:?}"
                );
            }
        }
    }

    // The C ABI, with the raw bytes up to the first NUL (a C string).
    let cut = raw.split(|&c| c == 0).next().unwrap_or(&[]);
    let c = CString::new(cut).unwrap();
    // SAFETY: valid handles and NUL-terminated strings; every handle is
    // freed here.
    unsafe {
        let mut cb = std::ptr::null_mut();
        assert_eq!(corotls_conf_builder_new(corotls_role::COROTLS_CLIENT as i32, &mut cb), Code::COROTLS_OK);
        let r = match which {
            0 => corotls_conf_builder_set_ciphers(cb, c.as_ptr()),
            1 => corotls_conf_builder_set_suites(cb, c.as_ptr()),
            _ => corotls_conf_builder_set_groups(cb, c.as_ptr()),
        };
        if let Ok(s) = std::str::from_utf8(cut) {
            let rust = match which {
                0 => check_cipher_list(s).is_ok(),
                1 => check_suites(s).is_ok(),
                _ => check_groups(s).is_ok(),
            };
            assert_eq!(r == Code::COROTLS_OK, rust, "the C ABI and the check disagree");
        } else {
            assert_ne!(r, Code::COROTLS_OK, "a list that is not UTF-8 was accepted");
        }
        corotls_conf_builder_free(cb);
        if which == 0 && sel & 0x80 != 0 {
            let mut conf = std::ptr::null_mut();
            let r = corotls_conf_new(
                corotls_role::COROTLS_CLIENT as i32,
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                c.as_ptr(),
                false,
                &mut conf,
            );
            if r == Code::COROTLS_OK {
                corotls_conf_free(conf);
            }
        }
    }
});
