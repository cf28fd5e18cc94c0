//! Key logging of a conf: the secrets of every handshake, in the NSS
//! key-log format that Wireshark reads, handed to a callback or appended
//! to a file.  Never on unless asked: without one of these calls no secret
//! leaves OpenSSL.
//!
//! A file is opened once (append, created with mode 0600) and each line is
//! written with one `write` (O_APPEND keeps lines whole when several
//! processes share the file).  Writing a local file does not wait on the
//! network; a file on a slow filesystem would slow handshakes.

use super::ConfBuilder;
use crate::error::{Error, Reason::*, Result};
use crate::ossl::extras::KeyLogSink;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// The environment variable `log_keys_to_env_file` reads.
pub const KEYLOG_ENV: &str = "SSLKEYLOGFILE";

/// A sink appending each line and a newline to `path`.
pub fn file_sink(path: &Path) -> Result<KeyLogSink> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO nobody reads would otherwise wait for a
    // reader (ENXIO instead); it changes nothing for a regular file.
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            let errno = e.raw_os_error().unwrap_or(0) as i64;
            Error::arg(format!("cannot open key log file '{}': {e}", path.display()))
                .because_of(COROTLS_REASON_FILE, errno)
        })?;
    if !f.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(
            Error::arg(format!("key log file '{}' is not a regular file", path.display())).because(COROTLS_REASON_FILE)
        );
    }
    Ok(Arc::new(move |line: &[u8]| {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        // A failed write loses a debugging aid, never the connection.
        let _ = (&f).write_all(&buf);
    }))
}

impl ConfBuilder {
    /// Hand every handshake secret to `sink` (one NSS key-log line per
    /// call, without the newline), replacing any key log set before.
    pub fn set_keylog(&mut self, sink: KeyLogSink) {
        self.keylog = Some(sink);
    }

    /// Append every handshake secret to `path` (opened now).
    pub fn set_keylog_file(&mut self, path: &Path) -> Result<()> {
        self.keylog = Some(file_sink(path)?);
        Ok(())
    }

    /// Append to the file named by `SSLKEYLOGFILE`, if it is set and not
    /// empty (opened now): returns whether it was.
    pub fn log_keys_to_env_file(&mut self) -> Result<bool> {
        match std::env::var_os(KEYLOG_ENV).filter(|v| !v.is_empty()) {
            Some(p) => self.set_keylog_file(Path::new(&p)).map(|_| true),
            None => Ok(false),
        }
    }

    /// No key log (the default).
    pub fn clear_keylog(&mut self) {
        self.keylog = None;
    }
}
