//! Reading the files a configuration names (certificates, keys, CA
//! bundles): regular files only, opened without blocking, size-capped.
//!
//! A FIFO would block the caller forever and a device such as /dev/zero
//! would be read until memory runs out; both are refused before any read.

use crate::error::{Error, Reason::*, Result};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest configuration file read: far above any real certificate
/// bundle (the Mozilla CA bundle is about 200 KiB).
pub const MAX_FILE: u64 = 16 * 1024 * 1024;

/// The whole contents of the regular file at `path`; `what` names it in
/// errors ("certificate file").
pub fn read_regular(path: &Path, what: &str) -> Result<Vec<u8>> {
    let fail = |why: String| {
        Error::arg(format!("cannot read {what} '{}': {why}", path.display())).because(COROTLS_REASON_FILE)
    };
    let io =
        |e: std::io::Error| fail(e.to_string()).because_of(COROTLS_REASON_FILE, e.raw_os_error().unwrap_or(0) as i64);
    // O_NONBLOCK: opening a FIFO with no writer would otherwise wait for one.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > MAX_FILE {
        return Err(fail(format!("{} bytes is more than the {MAX_FILE}-byte limit", meta.len())));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    // A file that grows while it is read still stops at the limit.
    (&mut f).take(MAX_FILE + 1).read_to_end(&mut data).map_err(io)?;
    if data.len() as u64 > MAX_FILE {
        return Err(fail(format!("more than the {MAX_FILE}-byte limit")));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        for p in ["/dev/zero", "/dev/null", "/"] {
            let e = read_regular(Path::new(p), "CA file").unwrap_err();
            assert!(e.msg.contains("not a regular file"), "{p}: {}", e.msg);
        }
        let e = read_regular(Path::new("/nonexistent/x.pem"), "CA file").unwrap_err();
        assert!(e.msg.starts_with("cannot read CA file '/nonexistent/x.pem'"), "{}", e.msg);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("corotls-fifo-{}", std::process::id()));
        let _ = std::fs::create_dir(&dir);
        let fifo = dir.join("ca.pem");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: c is a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&fifo, "CA file").unwrap_err();
        assert!(e.msg.contains("not a regular file"), "{}", e.msg);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
