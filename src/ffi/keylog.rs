//! Key logging in the C ABI: a conf's handshake secrets, in the NSS
//! key-log format, to a callback or a file.  Never on unless one of these
//! calls asks for it.

use super::conf::{builder, corotls_conf_builder};
use super::{bytes_arg, guard, path_of, put};
use crate::error::Code;
use libc::{c_char, c_void};
use std::ffi::CString;
use std::sync::Arc;

/// Receives one key-log line: NSS key-log format (`CLIENT_RANDOM <hex>
/// <hex>` in TLS 1.2; `CLIENT_HANDSHAKE_TRAFFIC_SECRET`,
/// `SERVER_HANDSHAKE_TRAFFIC_SECRET`, `CLIENT_TRAFFIC_SECRET_0`,
/// `SERVER_TRAFFIC_SECRET_0`, `EXPORTER_SECRET` ... in TLS 1.3), without
/// a newline, NUL-terminated, valid during the call only.  Called on the
/// thread driving the handshake, possibly on several threads at once for
/// one conf.  It must return normally and make no corotls call on the
/// session being handshaken.
pub type corotls_keylog_cb = Option<unsafe extern "C" fn(user_data: *mut c_void, line: *const c_char)>;

/// The host's callback and its pointer, which the host promises may be
/// used from any thread (the documented contract).
struct HostKeylog(unsafe extern "C" fn(*mut c_void, *const c_char), *mut c_void);
// SAFETY: see HostKeylog: the host's promise.
unsafe impl Send for HostKeylog {}
unsafe impl Sync for HostKeylog {}

impl HostKeylog {
    fn call(&self, line: &[u8]) {
        if let Ok(c) = CString::new(line) {
            // SAFETY: the host's callback with its pointer, and a line valid for the call.
            unsafe { (self.0)(self.1, c.as_ptr()) };
        }
    }
}

/// Hand every handshake secret of the confs built from `b` to `cb`
/// (see corotls_keylog_cb), with `user_data` (borrowed: it must stay valid
/// while any such conf or its connections live).  Anyone holding these
/// lines can decrypt the recorded traffic: for debugging only.  `cb` NULL
/// turns key logging off.  Replaces any key log set before (callback or
/// file).
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_keylog_callback(
    b: *mut corotls_conf_builder,
    cb: corotls_keylog_cb,
    user_data: *mut c_void,
) -> Code {
    guard(|| {
        let b = builder(b)?;
        match cb {
            None => b.clear_keylog(),
            Some(f) => {
                let host = HostKeylog(f, user_data);
                b.set_keylog(Arc::new(move |line: &[u8]| host.call(line)));
            }
        }
        Ok(())
    })
}

/// Append every handshake secret of the confs built from `b` to the file
/// `path` (borrowed), one NSS key-log line each (what Wireshark's
/// "(Pre)-Master-Secret log filename", tshark's `-o
/// tls.keylog_file:PATH`, read).  The file is opened now (created with mode
/// 0600, appended to, never truncated); COROTLS_ERR_ARG (reason FILE) when
/// it cannot be.  Secrets on disk decrypt the recorded traffic: for
/// debugging only.  Replaces any key log set before.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_set_keylog_file(
    b: *mut corotls_conf_builder,
    path: *const c_char,
) -> Code {
    guard(|| {
        let b = builder(b)?;
        b.set_keylog_file(path_of(bytes_arg(path, "key log file")?))
    })
}

/// The explicit opt-in to the SSLKEYLOGFILE convention: when the
/// environment variable SSLKEYLOGFILE names a file (set, not empty), act
/// as corotls_conf_builder_set_keylog_file with it and store true in
/// `*enabled` (may be NULL); otherwise change nothing and store false.
/// corotls never reads SSLKEYLOGFILE without this call.
#[no_mangle]
pub unsafe extern "C" fn corotls_conf_builder_use_sslkeylogfile(
    b: *mut corotls_conf_builder,
    enabled: *mut bool,
) -> Code {
    put(enabled, false);
    guard(|| {
        let on = builder(b)?.log_keys_to_env_file()?;
        put(enabled, on);
        Ok(())
    })
}
