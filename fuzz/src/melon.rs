//! The Melon face as an `Endpoint`: an `mln_tcp_conn_t` (through
//! c/melon_fuzz.c and the host fixture c_tests/melon/melon_host) on one
//! end of a non-blocking socketpair; the program writes the network's bytes
//! into the other end and reads what the face sent from it.

// The face itself (an rlib of adapters/melon/src): linked for its mln_* exports.
extern crate corotls_melon;

use crate::peer::Endpoint;
use libc::{c_char, c_int, c_void};
use std::ffi::CString;
use std::sync::Once;

#[repr(C)]
pub struct MlnTcpConn {
    _opaque: [u8; 0],
}

extern "C" {
    fn melon_fuzz_init(cert: *const c_char, key: *const c_char, ca: *const c_char) -> c_int;
    fn melon_fuzz_open(role: c_int, fd: c_int) -> *mut MlnTcpConn;
    fn melon_fuzz_handshake(tc: *mut MlnTcpConn) -> c_int;
    fn melon_fuzz_recv(tc: *mut MlnTcpConn, dst: *mut u8, cap: usize, got: *mut usize) -> c_int;
    fn melon_fuzz_send(tc: *mut MlnTcpConn, data: *const u8, len: usize) -> c_int;
    fn melon_fuzz_shutdown(tc: *mut MlnTcpConn) -> c_int;
    fn melon_fuzz_close(tc: *mut MlnTcpConn);
    fn melon_fuzz_live_pools() -> usize;
}

/// Melon's M_C_* results.
pub const M_C_FINISH: c_int = 1;
pub const M_C_NOTYET: c_int = 2;
pub const M_C_ERROR: c_int = 3;
pub const M_C_CLOSED: c_int = 4;

/// The confs, from certificate files written once to a private temporary
/// directory (Melon's confs take file names) and removed again at once:
/// the face reads them when the conf is made.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let dir = std::env::temp_dir().join(format!("corotls-fuzz-melon-{}", std::process::id()));
        let files = crate::certs::write_files(&dir);
        let c: Vec<CString> = files.iter().map(|p| CString::new(p.to_str().unwrap()).unwrap()).collect();
        // SAFETY: three NUL-terminated paths, read during the call.
        let rc = unsafe { melon_fuzz_init(c[0].as_ptr(), c[1].as_ptr(), c[2].as_ptr()) };
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(rc, 0, "the Melon face refused the fuzz certificates");
    });
}

/// One Melon TLS connection and the network end of its socketpair.
pub struct MelonConn {
    tc: *mut MlnTcpConn,
    fd: c_int,
    net: c_int,
    /// The connection returned M_C_ERROR or M_C_CLOSED: Melang stops there.
    pub over: bool,
}

impl MelonConn {
    /// `server`: the face is the TLS server (else the client).
    pub fn new(server: bool) -> MelonConn {
        init();
        let mut sv = [0 as c_int; 2];
        // SAFETY: sv has room for the two fds.
        let rc =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0, sv.as_mut_ptr()) };
        assert_eq!(rc, 0, "socketpair: {}", std::io::Error::last_os_error());
        // SAFETY: sv[0] is a fresh socket; the confs exist (init).
        let tc = unsafe { melon_fuzz_open(if server { 0 } else { 1 }, sv[0]) };
        assert!(!tc.is_null(), "mln_tcp_conn_tls_init failed");
        MelonConn { tc, fd: sv[0], net: sv[1], over: false }
    }

    fn note(&mut self, rc: c_int) {
        assert!(matches!(rc, M_C_FINISH | M_C_NOTYET | M_C_ERROR | M_C_CLOSED), "Melon result {rc}");
        if rc == M_C_ERROR || rc == M_C_CLOSED {
            self.over = true;
        }
    }
}

impl Endpoint for MelonConn {
    fn deliver(&mut self, ct: &[u8]) {
        // A full socket buffer drops the rest, as a stalled peer would.
        if !ct.is_empty() {
            // SAFETY: ct is valid for its length.
            unsafe { libc::send(self.net, ct.as_ptr() as *const c_void, ct.len(), libc::MSG_NOSIGNAL) };
        }
    }

    fn collect(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            // SAFETY: buf is writable for its length.
            let n = unsafe { libc::recv(self.net, buf.as_mut_ptr() as *mut c_void, buf.len(), 0) };
            if n <= 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
    }

    fn call(&mut self, op: u8, arg: u8, data: &[u8]) {
        if self.over {
            return;
        }
        // SAFETY: self.tc is live until drop; buffers are valid for their lengths.
        let rc = unsafe {
            match op % 8 {
                0 | 5 => melon_fuzz_handshake(self.tc),
                1 | 6 => {
                    let mut buf = vec![0u8; 1 + arg as usize * 256];
                    let mut got = 0;
                    melon_fuzz_recv(self.tc, buf.as_mut_ptr(), buf.len(), &mut got)
                }
                2 => melon_fuzz_send(self.tc, data.as_ptr(), data.len()),
                3 => melon_fuzz_send(self.tc, data.as_ptr(), 0),
                4 => melon_fuzz_shutdown(self.tc),
                _ => {
                    // The network end goes away half-way: EOF for the face.
                    libc::shutdown(self.net, libc::SHUT_WR);
                    melon_fuzz_handshake(self.tc)
                }
            }
        };
        self.note(rc);
    }
}

impl Drop for MelonConn {
    fn drop(&mut self) {
        // SAFETY: tc was opened by melon_fuzz_open and is closed once; the fds are ours.
        unsafe {
            melon_fuzz_close(self.tc);
            libc::close(self.fd);
            libc::close(self.net);
        }
        // Every pool the connection made is gone with it.
        // SAFETY: reads a counter.
        assert_eq!(unsafe { melon_fuzz_live_pools() }, 0, "the Melon connection left a pool behind");
    }
}
