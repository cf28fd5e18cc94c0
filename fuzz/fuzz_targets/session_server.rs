//! A server session fed arbitrary bytes, in chunks the input chooses, with
//! the session's calls after each chunk; then the end of the stream.
//!
//! Input: a conf variant byte, then chunks (two length bytes, the bytes).
//! Oracle: no crash, hang or leak, and no handshake ever completes (nobody
//! can finish one with arbitrary bytes: it takes the server's key share).
#![no_main]
use corotls::Session;
use corotls_fuzz::{confs, drain, Prog, Variant};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = Prog::new(data);
    let (conf, _) = confs(Variant::from_byte(p.byte()));
    let mut s = Session::new(&conf).unwrap();
    while !p.done() {
        let chunk = p.chunk();
        if s.feed(chunk).is_err() {
            // A failed session takes no more ciphertext; it stays failed.
            assert!(s.is_failed() || s.eof());
            assert!(s.feed(b"\x16\x03\x01").is_err());
            break;
        }
        let _ = s.handshake();
        let _ = s.fill_plain();
        drain(&mut s);
        assert!(!s.handshake_done(), "a handshake completed on arbitrary bytes");
    }
    s.feed_eof();
    let _ = s.handshake();
    let _ = s.fill_plain();
    let _ = s.shutdown();
    drain(&mut s);
    assert!(!s.handshake_done());
});
