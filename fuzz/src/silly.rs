//! The silly face as an `Endpoint`: silly's `tls` Lua module (the C shim
//! adapters/silly/silly_tls.c over the native API) in a Lua 5.4 state, with
//! the host functions of c/silly_fuzz.c.  The network's bytes arrive by
//! tls.push in silly_malloc'ed buffers; what the module sends comes back
//! from silly_tcp_send.

use crate::peer::Endpoint;
use libc::{c_char, c_int, c_long};

extern "C" {
    fn silly_fuzz_open(
        cert: *const c_char,
        cert_len: usize,
        key: *const c_char,
        key_len: usize,
        alpn: *const c_char,
        alpn_len: usize,
    ) -> c_int;
    fn silly_fuzz_error() -> *const c_char;
    fn silly_fuzz_push(data: *const u8, len: usize) -> c_int;
    fn silly_fuzz_handshake() -> c_int;
    fn silly_fuzz_read(n: c_long, delim: c_int) -> c_long;
    fn silly_fuzz_write(data: *const u8, len: usize, pieces: c_int) -> c_int;
    fn silly_fuzz_size() -> c_long;
    fn silly_fuzz_sent_len() -> usize;
    fn silly_fuzz_take_sent(dst: *mut u8, cap: usize) -> usize;
    fn silly_fuzz_tls_close() -> c_int;
    fn silly_fuzz_close() -> c_long;
}

/// One silly server `tls` object (the module keeps one at a time).
pub struct SillyTls {
    done: bool,
    /// tls.close was called: every call but close (and push, which frees
    /// its buffer first) raises now.
    closed: bool,
}

impl SillyTls {
    /// A server ctx with the fuzz identity (and ALPN `h2`, `http/1.1`
    /// when `alpn`), and its tls object.
    pub fn new(alpn: bool) -> SillyTls {
        let pki = crate::certs::pki();
        let wire: &[u8] = if alpn { b"\x02h2\x08http/1.1" } else { b"" };
        // SAFETY: every pointer is valid for its length during the call.
        let rc = unsafe {
            silly_fuzz_open(
                pki.server_cert.as_ptr() as *const c_char,
                pki.server_cert.len(),
                pki.server_key.as_ptr() as *const c_char,
                pki.server_key.len(),
                wire.as_ptr() as *const c_char,
                wire.len(),
            )
        };
        if rc != 0 {
            // SAFETY: a NUL-terminated string owned by the Lua state.
            let msg = unsafe { std::ffi::CStr::from_ptr(silly_fuzz_error()) };
            panic!("silly ctx.server / tls.open failed: {msg:?}");
        }
        SillyTls { done: false, closed: false }
    }

    /// tls.handshake: 1 done, -1 wants more, 0 failed (open objects only).
    pub fn handshake(&mut self) -> c_int {
        // SAFETY: the state is open.
        let r = unsafe { silly_fuzz_handshake() };
        assert!(matches!(r, -1..=1), "tls.handshake raised a Lua error");
        if r == 1 {
            self.done = true;
        }
        r
    }
}

impl Endpoint for SillyTls {
    fn deliver(&mut self, ct: &[u8]) {
        // silly delivers what one recv returned: at most 64 KiB a push.
        for piece in ct.chunks(65536) {
            // SAFETY: piece is valid for its length; the shim copies it.
            let r = unsafe { silly_fuzz_push(piece.as_ptr(), piece.len()) };
            if self.closed {
                assert_eq!(r, -1, "tls.push on a closed object did not raise");
            } else {
                assert_eq!(r, 0, "tls.push raised a Lua error");
            }
        }
    }

    fn collect(&mut self) -> Vec<u8> {
        // SAFETY: reads a length, then copies into a buffer of that size.
        unsafe {
            let mut v = vec![0u8; silly_fuzz_sent_len()];
            let n = silly_fuzz_take_sent(v.as_mut_ptr(), v.len());
            v.truncate(n);
            v
        }
    }

    fn call(&mut self, op: u8, arg: u8, data: &[u8]) {
        // SAFETY: the state is open; data is valid for its length.
        unsafe {
            if op % 8 == 7 {
                assert_eq!(silly_fuzz_tls_close(), 0, "tls.close raised a Lua error");
                self.closed = true;
                return;
            }
            if self.closed {
                // A closed object: each call raises a type error.
                let raised = match op % 4 {
                    0 => silly_fuzz_handshake() == -2,
                    1 => silly_fuzz_read(1, -1) == -2,
                    2 => silly_fuzz_write(data.as_ptr(), data.len(), 1) == -2,
                    _ => silly_fuzz_size() == -2,
                };
                assert!(raised, "a call on a closed tls object did not raise");
                return;
            }
            match op % 8 {
                0 | 5 => {
                    self.handshake();
                }
                1 => {
                    let n = silly_fuzz_read(1 + arg as c_long * 64, -1);
                    assert!(n >= -1, "tls.read(n) raised a Lua error");
                }
                6 => {
                    let n = silly_fuzz_read(0, arg as c_int);
                    assert!(n >= -1, "tls.read(delim) raised a Lua error");
                }
                2 => {
                    let r = silly_fuzz_write(data.as_ptr(), data.len(), (arg % 4) as c_int);
                    assert!(r >= 0, "tls.write raised a Lua error");
                }
                3 => {
                    let n = silly_fuzz_read(-(arg as c_long), -1);
                    assert_eq!(n, -1, "tls.read(n <= 0) returns nil");
                }
                _ => {
                    assert!(silly_fuzz_size() >= 0, "tls.size raised a Lua error");
                }
            }
        }
    }
}

impl Drop for SillyTls {
    fn drop(&mut self) {
        // SAFETY: closes the state opened in new.
        let live = unsafe { silly_fuzz_close() };
        if !std::thread::panicking() {
            assert_eq!(live, 0, "silly_malloc blocks still live after lua_close");
        }
    }
}
