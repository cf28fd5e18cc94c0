//! Kernel TLS: the OpenSSL option, and what the kernel offers.
//!
//! OpenSSL turns kTLS on only for an `SSL` whose BIOs are socket BIOs, when
//! it installs the traffic keys.  corotls' sessions use its own FIFO BIOs
//! (one transport for every face, sans-IO sessions), so the option is set
//! when asked for but cannot take effect there; `crate::ktls` says so in
//! its report.

use super::{clear_errors, Ctx, SslRef};
use libc::{c_long, c_ulong};
use openssl_sys as sys;

/// `SSL_OP_ENABLE_KTLS` (OpenSSL 3.0: bit 3); not in openssl-sys.
const SSL_OP_ENABLE_KTLS: c_ulong = 1 << 3;
/// `BIO_CTRL_GET_KTLS_SEND` / `_RECV` (OpenSSL 3.0 bio.h).
const BIO_CTRL_GET_KTLS_SEND: libc::c_int = 73;
const BIO_CTRL_GET_KTLS_RECV: libc::c_int = 76;

impl Ctx {
    /// Ask OpenSSL to use kTLS where it can (socket BIOs only).
    pub fn enable_ktls_option(&self) {
        // SAFETY: live context.
        unsafe { sys::SSL_CTX_set_options(self.as_ptr(), SSL_OP_ENABLE_KTLS as _) };
    }
}

impl SslRef {
    /// Whether OpenSSL reports kernel offload active on this SSL's write and
    /// read BIOs (always false for corotls' FIFO BIOs, which do not answer
    /// these controls).
    pub fn ktls_active(self) -> (bool, bool) {
        let ask = |bio: *mut sys::BIO, ctrl| {
            if bio.is_null() {
                return false;
            }
            // SAFETY: live BIO owned by the SSL; a BIO that does not know the
            // control returns 0.
            let r: c_long = unsafe { sys::BIO_ctrl(bio, ctrl, 0, std::ptr::null_mut()) };
            clear_errors();
            r > 0
        };
        (ask(self.wbio(), BIO_CTRL_GET_KTLS_SEND), ask(self.rbio(), BIO_CTRL_GET_KTLS_RECV))
    }
}

/// Whether the running kernel offers the `tls` upper-layer protocol: Err
/// with what was found when it does not.
pub fn kernel_has_tls_ulp() -> std::result::Result<(), String> {
    const PATH: &str = "/proc/sys/net/ipv4/tcp_available_ulp";
    match std::fs::read_to_string(PATH) {
        Ok(s) if s.split_whitespace().any(|w| w == "tls") => Ok(()),
        Ok(s) => {
            Err(format!("the kernel offers no TLS ULP ({PATH}: \"{}\"; load the tls module: modprobe tls)", s.trim()))
        }
        Err(e) => Err(format!("cannot tell whether the kernel offers kTLS ({PATH}: {e})")),
    }
}
