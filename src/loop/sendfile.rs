//! The sendfile operation: a range of a file sent over a connection,
//! read, encrypted and written in chunks as the socket drains (the
//! user-space path; kernel offload is not built, see `session::ktls`).

// Part of the loop module: these are methods of its private types.
use super::*;
use crate::transport::sendfile::{pread, short_file, FILE_CHUNK};

/// A sendfile in flight: the range still to go, and the chunk read from
/// the file whose bytes are not all on the wire yet.
pub(super) struct FileSend {
    file: RawFd,
    /// File offset of the chunk's first byte.
    offset: u64,
    /// Bytes of the range not yet read from the file.
    left: u64,
    chunk: Vec<u8>,
    /// Bytes of `chunk` on the wire.
    pos: usize,
    /// Bytes of the range on the wire.
    pub sent: u64,
}

impl FileSend {
    pub fn new(file: RawFd, offset: u64, len: u64) -> FileSend {
        FileSend { file, offset, left: len, chunk: Vec::new(), pos: 0, sent: 0 }
    }
}

impl ConnEntry {
    /// Send the rest of the range; Pending after noting what to wait for.
    pub(super) fn try_sendfile(&mut self, st: &mut FileSend) -> Poll<Result<()>> {
        loop {
            if st.pos == st.chunk.len() {
                if st.left == 0 {
                    return Poll::Ready(Ok(()));
                }
                st.offset += st.chunk.len() as u64;
                let want = FILE_CHUNK.min(st.left as usize);
                st.chunk.resize(want, 0);
                st.pos = 0;
                let n = match pread(st.file, &mut st.chunk, st.offset) {
                    Ok(0) => Err(short_file(st.file, st.offset)),
                    r => r,
                };
                match n {
                    Ok(n) => {
                        st.chunk.truncate(n);
                        st.left -= n as u64;
                    }
                    Err(e) => {
                        st.chunk.clear();
                        return Poll::Ready(Err(e));
                    }
                }
            }
            let mut done = st.pos;
            let r = self.try_send(&st.chunk, &mut done);
            st.sent += (done - st.pos) as u64;
            st.pos = done;
            match r {
                Poll::Ready(Ok(())) => continue,
                other => return other,
            }
        }
    }
}

impl Loop {
    /// Send `len` (> 0) bytes of `file` from `offset` over `fd`, driving
    /// the handshake first if needed.  The file is read with `pread` (its
    /// offset is not moved) and stays the caller's; it must stay open
    /// until the operation completes.  Completion counts the bytes sent.
    pub fn sendfile(
        &self,
        fd: RawFd,
        file: RawFd,
        offset: u64,
        len: u64,
        timeout: Option<Duration>,
        cb: Callback,
    ) -> Result<Ready<()>> {
        if len == 0 {
            return Err(Error::arg("length to send is 0"));
        }
        if file < 0 {
            return Err(Error::arg("invalid file descriptor"));
        }
        let sh = &self.sh;
        sh.start(fd, |slot, e| {
            let c = conn_of(e, fd)?;
            let mut st = Box::new(FileSend::new(file, offset, len));
            match c.try_sendfile(&mut st) {
                Poll::Ready(r) => r.map(Ready::Now),
                Poll::Pending => sh.park(slot, e, OpKind::Sendfile(st), timeout, cb).map(|_| Ready::Pending),
            }
        })
    }
}
