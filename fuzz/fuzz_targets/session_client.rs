//! A client session that has sent a real ClientHello, then is fed arbitrary
//! bytes as the server's answer, in chunks the input chooses.
//!
//! Input: a conf variant byte, then chunks (two length bytes, the bytes).
//! Oracle: no crash, hang or leak, and the handshake never completes (that
//! would mean a server was accepted without a certificate chain to our CA
//! and proof of its key).
#![no_main]
use corotls::Session;
use corotls_fuzz::{confs, drain, Prog, Variant, HOST};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = Prog::new(data);
    let (_, conf) = confs(Variant::from_byte(p.byte()));
    let mut c = Session::new(&conf).unwrap();
    c.set_sni(HOST.as_bytes()).unwrap();
    assert!(c.handshake().is_err_and(|e| e.is_want()));
    let hello = drain(&mut c);
    assert!(hello.len() > 40 && hello[0] == 0x16, "no ClientHello");
    while !p.done() {
        let chunk = p.chunk();
        if c.feed(chunk).is_err() {
            assert!(c.feed(b"\x16\x03\x03").is_err());
            break;
        }
        let _ = c.handshake();
        let _ = c.fill_plain();
        let _ = c.write(b"GET / HTTP/1.1\r\n\r\n");
        drain(&mut c);
        assert!(!c.handshake_done(), "a client accepted an unauthenticated server");
    }
    c.feed_eof();
    let _ = c.handshake();
    let _ = c.shutdown();
    drain(&mut c);
    assert!(!c.handshake_done());
});
