//! The kernel TLS report of a session: whether send and receive offload
//! are active, and why not.

use super::Session;
use crate::ossl::ktls;

/// Whether kernel TLS carries this session's records, per direction, and
/// why not when it does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KtlsStatus {
    pub send: bool,
    pub recv: bool,
    /// "" when both are active; else the first reason found.
    pub why: String,
}

/// Why offload is off even where the kernel and OpenSSL support it.
pub const NOT_BUILT: &str = "kernel offload is not built for corotls' transport: sessions move ciphertext through \
their own FIFO BIOs (one transport for every face), and OpenSSL enables kTLS only on socket BIOs; records are \
encrypted in user space (the sendfile calls read, encrypt and write in chunks)";

impl Session {
    pub fn ktls_status(&self) -> KtlsStatus {
        let off = |why: String| KtlsStatus { send: false, recv: false, why };
        if !self._conf.ktls() {
            return off("not requested (corotls_conf_builder_set_ktls)".into());
        }
        if !self.handshake_done() {
            return off("the handshake is not complete".into());
        }
        let (send, recv) = self.ssl().ktls_active();
        if send && recv {
            return KtlsStatus { send, recv, why: String::new() };
        }
        let why = match ktls::kernel_has_tls_ulp() {
            Err(kernel) => kernel,
            Ok(()) => NOT_BUILT.to_string(),
        };
        KtlsStatus { send, recv, why }
    }
}
