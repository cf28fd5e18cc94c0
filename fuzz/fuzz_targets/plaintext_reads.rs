//! `corotls_session_read_until`, `read_exact`, `peek` + `consume` and
//! `read` on arbitrary plaintext: after a real handshake (C ABI, as a host
//! calls it), the server writes what the input says, the client's records
//! arrive whole or cut in two, and the client reads in the ways the input
//! says, with delimiters, sizes and buffer capacities from the input.
//!
//! Oracle: a model of the byte stream (what was written and not yet read).
//! Every read returns exactly the model's next bytes; read_until returns
//! through the first delimiter, or WANT_READ / CLOSED with nothing taken
//! when there is none, or ERR_ARG with the size needed when the buffer is
//! too small; read_exact takes exactly n bytes or nothing; consume of more
//! than is buffered is ERR_ARG.
#![no_main]
use corotls::ffi::conf::*;
use corotls::ffi::session::*;
use corotls::Code::{self, *};
use corotls_fuzz::certs::pki;
use corotls_fuzz::Prog;
use libfuzzer_sys::fuzz_target;
use std::collections::VecDeque;
use std::ptr::null_mut;

struct Confs {
    server: *mut corotls_conf,
    client: *mut corotls_conf,
}

thread_local! {
    /// Built once; kept for the life of the process.
    static CONFS: Confs = unsafe { confs() };
}

/// # Safety
/// Calls the C ABI with valid arguments.
unsafe fn confs() -> Confs {
    let p = pki();
    let mut b = null_mut();
    assert_eq!(corotls_conf_builder_new(corotls_role::COROTLS_SERVER as i32, &mut b), COROTLS_OK);
    let r = corotls_conf_builder_add_identity_pem(
        b,
        p.server_cert.as_ptr(),
        p.server_cert.len(),
        p.server_key.as_ptr(),
        p.server_key.len(),
        std::ptr::null(),
    );
    assert_eq!(r, COROTLS_OK);
    let mut server = null_mut();
    assert_eq!(corotls_conf_builder_build(b, &mut server), COROTLS_OK);
    corotls_conf_builder_free(b);
    assert_eq!(corotls_conf_builder_new(corotls_role::COROTLS_CLIENT as i32, &mut b), COROTLS_OK);
    assert_eq!(corotls_conf_builder_add_ca_pem(b, p.ca_cert.as_ptr(), p.ca_cert.len()), COROTLS_OK);
    let mut client = null_mut();
    assert_eq!(corotls_conf_builder_build(b, &mut client), COROTLS_OK);
    corotls_conf_builder_free(b);
    Confs { server, client }
}

/// Ciphertext `from` produced.
unsafe fn out(from: *mut corotls_session) -> Vec<u8> {
    let mut v = vec![0u8; corotls_session_out_pending(from)];
    let n = corotls_session_out_read(from, v.as_mut_ptr(), v.len());
    v.truncate(n);
    v
}

unsafe fn feed(to: *mut corotls_session, ct: &[u8]) {
    let mut plain = 0;
    assert_eq!(corotls_session_feed(to, ct.as_ptr(), ct.len(), &mut plain), COROTLS_OK);
}

struct Reader {
    c: *mut corotls_session,
    model: VecDeque<u8>,
    /// All ciphertext fed is whole records: the session can decrypt every
    /// byte of the model, so results are exact.
    whole: bool,
    closed: bool,
}

impl Reader {
    /// The result when too little is buffered.
    fn starved(&self, r: Code) {
        if self.whole {
            let want = if self.closed { COROTLS_CLOSED } else { COROTLS_WANT_READ };
            assert_eq!(r, want, "a starved read");
        } else {
            assert!(matches!(r, COROTLS_WANT_READ | COROTLS_CLOSED), "a starved read gave {r:?}");
        }
    }

    fn took(&mut self, got: &[u8]) {
        assert!(got.len() <= self.model.len(), "read more than was written");
        for (i, b) in got.iter().enumerate() {
            assert_eq!(*b, self.model[i], "read byte {i} differs from what was written");
        }
        self.model.drain(..got.len());
    }

    unsafe fn read_until(&mut self, delim: u8, cap: usize) {
        let mut buf = vec![0u8; cap];
        let mut n = usize::MAX;
        let r = corotls_session_read_until(self.c, delim, buf.as_mut_ptr(), cap, &mut n);
        let line = self.model.iter().position(|&b| b == delim).map(|i| i + 1);
        match r {
            COROTLS_OK => {
                assert!(n >= 1 && n <= cap && buf[n - 1] == delim);
                assert_eq!(line, Some(n), "read_until did not stop at the first delimiter");
                self.took(&buf[..n]);
            }
            COROTLS_ERR_ARG => {
                assert!(n > cap, "ERR_ARG from read_until with a line that fits");
                if self.whole {
                    assert_eq!(Some(n), line, "the size read_until says is needed");
                }
            }
            r => {
                assert_eq!(n, 0);
                if self.whole {
                    assert_eq!(line, None, "read_until missed a delimiter");
                }
                self.starved(r);
            }
        }
    }

    unsafe fn read_exact(&mut self, n: usize) {
        let mut buf = vec![0u8; n.max(1)];
        let r = corotls_session_read_exact(self.c, buf.as_mut_ptr(), n);
        if n == 0 {
            assert_eq!(r, COROTLS_ERR_ARG, "read_exact of 0 bytes");
            return;
        }
        match r {
            COROTLS_OK => self.took(&buf[..n]),
            r => {
                if self.whole {
                    assert!(self.model.len() < n, "read_exact starved with {} of {n} written", self.model.len());
                }
                self.starved(r);
            }
        }
    }

    unsafe fn peek_consume(&mut self, k: usize) {
        let (mut p, mut len) = (std::ptr::null(), 0usize);
        let r = corotls_session_peek(self.c, &mut p, &mut len);
        if r != COROTLS_OK {
            assert_eq!(len, 0);
            if self.whole {
                assert!(self.model.is_empty(), "peek found nothing of {} bytes", self.model.len());
            }
            self.starved(r);
            return;
        }
        let view = std::slice::from_raw_parts(p, len).to_vec();
        if self.whole {
            assert_eq!(len, self.model.len(), "peek shows less than was written");
        }
        let k = k.min(len + 1);
        let r = corotls_session_consume(self.c, k);
        if k > len {
            assert_eq!(r, COROTLS_ERR_ARG, "consume past the buffer");
            assert_eq!(corotls_session_plain_size(self.c), len, "a refused consume dropped bytes");
        } else {
            assert_eq!(r, COROTLS_OK);
            self.took(&view[..k]);
        }
    }

    unsafe fn read(&mut self, cap: usize) {
        let mut buf = vec![0u8; cap];
        let mut n = usize::MAX;
        let r = corotls_session_read(self.c, buf.as_mut_ptr(), cap, &mut n);
        if cap == 0 {
            assert_ne!(r, COROTLS_OK, "read into an empty buffer");
            return;
        }
        match r {
            COROTLS_OK => {
                assert!(n >= 1 && n <= cap);
                self.took(&buf[..n]);
            }
            r => {
                assert_eq!(n, 0);
                if self.whole {
                    assert!(self.model.is_empty(), "read found nothing of {} bytes", self.model.len());
                }
                self.starved(r);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (sc, cc) = CONFS.with(|c| (c.server, c.client));
    corotls_fuzz::start();
    let mut p = Prog::new(data);
    // SAFETY: every handle is made here and freed at the end; buffers are
    // valid for the lengths passed.
    unsafe {
        let (mut s, mut c) = (null_mut(), null_mut());
        assert_eq!(corotls_session_new(sc, &mut s), COROTLS_OK);
        assert_eq!(corotls_session_new(cc, &mut c), COROTLS_OK);
        assert_eq!(corotls_session_set_sni(c, c"localhost".as_ptr()), COROTLS_OK);
        for _ in 0..8 {
            let rc = corotls_session_handshake(c);
            feed(s, &out(c));
            let rs = corotls_session_handshake(s);
            feed(c, &out(s));
            if rc == COROTLS_OK && rs == COROTLS_OK {
                break;
            }
        }
        assert!(corotls_session_handshake_done(c) && corotls_session_handshake_done(s));
        // TLS 1.3 session tickets arrive after the handshake: take them now.
        let mut rd = Reader { c, model: VecDeque::new(), whole: true, closed: false };
        rd.read_exact(1);

        for _ in 0..128 {
            if p.done() {
                break;
            }
            match p.byte() % 8 {
                0 | 1 => {
                    let split = p.byte();
                    let text = p.chunk();
                    if text.is_empty() || rd.closed {
                        continue;
                    }
                    assert_eq!(corotls_session_write(s, text.as_ptr(), text.len()), COROTLS_OK);
                    rd.model.extend(text);
                    let ct = out(s);
                    if split != 0 {
                        // Cut the records somewhere; read in between.
                        let at = ct.len() * split as usize / 256;
                        feed(c, &ct[..at]);
                        rd.whole = false;
                        rd.read_until(b'\n', 64);
                        feed(c, &ct[at..]);
                        rd.whole = true;
                    } else {
                        feed(c, &ct);
                    }
                }
                2 | 3 => {
                    let (delim, cap) = (p.byte(), p.len16());
                    rd.read_until(delim, cap);
                }
                4 => {
                    let n = p.len16();
                    rd.read_exact(n);
                }
                5 => {
                    let k = p.len16();
                    rd.peek_consume(k);
                }
                6 => {
                    let cap = p.len16();
                    rd.read(cap);
                }
                _ => {
                    if !rd.closed {
                        assert_eq!(corotls_session_shutdown(s), COROTLS_OK);
                        feed(c, &out(s));
                        rd.closed = true;
                    }
                }
            }
        }
        corotls_session_free(c);
        corotls_session_free(s);
    }
});
