//! Sending a file's bytes over a conn: read, encrypt and write in chunks
//! (the user-space path; see `crate::session::ktls` for why the kernel
//! path is not used).

use super::Conn;
use crate::error::{Error, Reason::*, Result};
use std::os::fd::RawFd;

/// File bytes read per step: what `Conn::write` encrypts per step too.
pub const FILE_CHUNK: usize = 64 * 1024;

/// `pread` of up to `buf.len()` bytes at `offset` (EINTR retried).
pub fn pread(file: RawFd, buf: &mut [u8], offset: u64) -> Result<usize> {
    let off = libc::off_t::try_from(offset)
        .map_err(|_| Error::arg(format!("file offset {offset} is too large")).because(COROTLS_REASON_BAD_ARGUMENT))?;
    loop {
        // SAFETY: buf is valid for writes of its length; a bad fd is EBADF.
        let n = unsafe { libc::pread(file, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), off) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            let errno = err.raw_os_error().unwrap_or(0) as i64;
            return Err(Error::arg(format!("cannot read the file (fd {file}) at offset {offset}: {err}"))
                .because_of(COROTLS_REASON_FILE, errno));
        }
    }
}

/// The file ended before the requested range did.
pub fn short_file(file: RawFd, end: u64) -> Error {
    Error::arg(format!("the file (fd {file}) ends at offset {end}, before the range to send does"))
        .because(COROTLS_REASON_FILE)
}

impl Conn {
    /// Send `len` (> 0) bytes of `file` from `offset`, as `write` would
    /// send them.  Ok(n): n bytes are on the wire (fewer than `len`: call
    /// again for the rest, from `offset + n`); WANT_WRITE: nothing more
    /// went out.  The file ending early is an error once the bytes before
    /// it are sent.
    pub fn sendfile(&mut self, file: RawFd, offset: u64, len: u64) -> Result<u64> {
        if len == 0 {
            return Err(Error::arg("length to send is 0").because(COROTLS_REASON_BAD_ARGUMENT));
        }
        let mut buf = vec![0u8; FILE_CHUNK.min(len as usize)];
        let mut sent = 0u64;
        while sent < len {
            let want = buf.len().min((len - sent) as usize);
            let n = match pread(file, &mut buf[..want], offset + sent) {
                Ok(0) => Err(short_file(file, offset + sent)),
                r => r,
            };
            let n = match n {
                Ok(n) => n,
                Err(_) if sent > 0 => return Ok(sent),
                Err(e) => return Err(self.session.fail(e)),
            };
            match self.write(&buf[..n]) {
                Ok(w) => {
                    sent += w as u64;
                    if w < n {
                        return Ok(sent);
                    }
                }
                Err(_) if sent > 0 => return Ok(sent),
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{ConfBuilder, Identity, Role};
    use crate::error::Code::*;
    use crate::testutil::cert;
    use std::io::Write;

    #[test]
    fn sendfile_sends_the_range_byte_for_byte() {
        let mut sb = ConfBuilder::new(Role::Server);
        sb.add_identity(Identity::from_files(&cert("leaf.crt"), &cert("leaf.key"), None).unwrap()).unwrap();
        let mut cb = ConfBuilder::new(Role::Client);
        cb.add_ca_file(&cert("ca.crt")).unwrap();
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors.
        assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) }, 0);
        let mut c = Conn::new(&cb.build().unwrap(), fds[0]).unwrap();
        c.session_mut().set_sni(b"localhost").unwrap();
        let mut s = Conn::new(&sb.build().unwrap(), fds[1]).unwrap();
        for _ in 0..100 {
            let _ = (c.handshake(), s.handshake());
        }
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut f = tempfile();
        f.write_all(&data).unwrap();
        let file = std::os::fd::AsRawFd::as_raw_fd(&f);
        let (off, len) = (1234u64, 250_000u64);
        let (mut sent, mut got) = (0u64, Vec::new());
        let mut buf = vec![0u8; 1 << 16];
        while got.len() < len as usize {
            if sent < len {
                match c.sendfile(file, off + sent, len - sent) {
                    Ok(n) => sent += n,
                    Err(e) => assert_eq!(e.code, COROTLS_WANT_WRITE),
                }
            }
            match s.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => assert!(e.is_want(), "{e:?}"),
            }
        }
        assert_eq!(got, &data[off as usize..(off + len) as usize]);
        let short = c.sendfile(file, data.len() as u64, 10).unwrap_err();
        assert_eq!(short.reason, COROTLS_REASON_FILE);
        assert_eq!(c.sendfile(file, 0, 0).unwrap_err().code, COROTLS_ERR_ARG);
        crate::net::close_fd(fds[0]);
        crate::net::close_fd(fds[1]);
    }

    fn tempfile() -> std::fs::File {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("corotls-sendfile-{}-{:?}", std::process::id(), std::thread::current().id()));
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }
}
