//! The peer's certificate as text (subject, issuer, SANs, PEM of the leaf
//! and of the chain it sent), the verification verdict as a number, and the
//! client CA list a server sends in its CertificateRequest.

use super::{clear_errors, error, Ctx, SslRef, X509};
use crate::error::{Code::*, Reason::*, Result};
use libc::{c_char, c_int, c_long, c_ulong, c_void};
use openssl_sys as sys;
use std::ptr;

extern "C" {
    // OpenSSL 3.0; not declared by openssl-sys.
    fn GENERAL_NAMES_free(gens: *mut sys::stack_st_GENERAL_NAME);
}

const BIO_CTRL_INFO: c_int = 3;
/// As `subject_line` in the parent module: RFC 2253 escaping, UTF-8,
/// certificate order, ", " between fields.
const XN_FLAG_ONELINE_UTF8: c_ulong = 0x1 | 0x2 | 0x10 | 0x100 | 0x200 | (2 << 16);
const GEN_EMAIL: c_int = 1;
const GEN_URI: c_int = 6;

/// Run `write` on a fresh memory BIO and return what it wrote.
fn bio_text(write: impl FnOnce(*mut sys::BIO) -> bool) -> String {
    // SAFETY: the BIO is ours, freed below; BIO_CTRL_INFO points `p` at its
    // buffer, valid until the BIO is freed (the bytes are copied first).
    unsafe {
        let bio = sys::BIO_new(sys::BIO_s_mem());
        if bio.is_null() {
            clear_errors();
            return String::new();
        }
        let mut s = String::new();
        if write(bio) {
            let mut p: *mut c_char = ptr::null_mut();
            let n = sys::BIO_ctrl(bio, BIO_CTRL_INFO, 0, &mut p as *mut *mut c_char as *mut c_void);
            if n > 0 && !p.is_null() {
                s = String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, n as usize)).into_owned();
            }
        }
        super::BIO_free(bio);
        clear_errors();
        s
    }
}

/// A certificate's issuer as one line (`CN=corotls test CA, O=...`).
pub fn issuer_line(cert: &X509) -> String {
    // SAFETY: valid cert; the name belongs to it and outlives the call.
    let name = unsafe { sys::X509_get_issuer_name(cert.as_ptr()) };
    if name.is_null() {
        return String::new();
    }
    // SAFETY: live BIO and name.
    bio_text(|bio| unsafe { super::X509_NAME_print_ex(bio, name, 0, XN_FLAG_ONELINE_UTF8) } >= 0)
}

/// The certificate in PEM.
pub fn cert_pem(cert: &X509) -> String {
    // SAFETY: live BIO and cert.
    bio_text(|bio| unsafe { sys::PEM_write_bio_X509(bio, cert.as_ptr()) } == 1)
}

/// The subject alternative names, one per entry: `DNS:name`, `IP:1.2.3.4`
/// or `IP:::1`, `email:addr`, `URI:uri` (other kinds are skipped).
pub fn sans(cert: &X509) -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: valid cert; the result is a new stack we own (freed below),
    // its entries valid until then.
    unsafe {
        let gens = sys::X509_get_ext_d2i(cert.as_ptr(), sys::NID_subject_alt_name, ptr::null_mut(), ptr::null_mut())
            as *mut sys::stack_st_GENERAL_NAME;
        if gens.is_null() {
            clear_errors();
            return out;
        }
        let stack = gens as *const sys::OPENSSL_STACK;
        for i in 0..sys::OPENSSL_sk_num(stack) {
            let g = sys::OPENSSL_sk_value(stack, i) as *const sys::GENERAL_NAME;
            if g.is_null() || (*g).d.is_null() {
                continue;
            }
            let s = (*g).d as *const sys::ASN1_STRING;
            let len = sys::ASN1_STRING_length(s).max(0) as usize;
            let data = sys::ASN1_STRING_get0_data(s);
            if data.is_null() {
                continue;
            }
            let bytes = std::slice::from_raw_parts(data, len);
            let text = |prefix: &str| format!("{prefix}:{}", String::from_utf8_lossy(bytes));
            match (*g).type_ {
                sys::GEN_DNS => out.push(text("DNS")),
                GEN_EMAIL => out.push(text("email")),
                GEN_URI => out.push(text("URI")),
                sys::GEN_IPADD => {
                    let ip = match len {
                        4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default())),
                        16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default())),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        out.push(format!("IP:{ip}"));
                    }
                }
                _ => {}
            }
        }
        GENERAL_NAMES_free(gens);
    }
    out
}

impl SslRef {
    /// The certificates the peer sent, leaf first (empty when it sent
    /// none).  OpenSSL keeps the leaf out of a server's view of the
    /// client's chain; it is put back here, so both sides read alike.
    pub fn peer_chain(self) -> Vec<X509> {
        let Some(leaf) = self.peer_certificate() else { return Vec::new() };
        let mut out = vec![leaf.clone()];
        // SAFETY: live SSL; the stack and its certificates belong to the
        // SSL; each one kept gets its own reference (up_ref).
        unsafe {
            let sk = sys::SSL_get_peer_cert_chain(self.as_ptr()) as *const sys::OPENSSL_STACK;
            if sk.is_null() {
                return out;
            }
            for i in 0..sys::OPENSSL_sk_num(sk) {
                let x = sys::OPENSSL_sk_value(sk, i) as *mut sys::X509;
                if x.is_null() || sys::X509_cmp(x, leaf.as_ptr()) == 0 {
                    continue;
                }
                sys::X509_up_ref(x);
                if let Some(c) = X509::from_ptr(x) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// The verification result as a number: X509_V_OK (0) or an
    /// X509_V_ERR_* code.
    pub fn verify_code(self) -> c_long {
        self.verify_result()
    }
}

impl Ctx {
    /// Add the subjects of `certs` to the CA names a server sends in its
    /// CertificateRequest (the client picks a certificate issued by one).
    pub fn add_client_ca_names(&self, certs: &[X509]) -> Result<()> {
        for c in certs {
            clear_errors();
            // SAFETY: live context and certificate; the subject name is copied.
            if unsafe { sys::SSL_CTX_add_client_CA(self.as_ptr(), c.as_ptr()) } != 1 {
                return Err(error(COROTLS_ERR_NOMEM, COROTLS_REASON_NOMEM, "cannot add a client CA name"));
            }
        }
        Ok(())
    }
}
