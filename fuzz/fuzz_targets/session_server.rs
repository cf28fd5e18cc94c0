//! A server session fed arbitrary bytes, in chunks the input chooses, with
//! the session's calls after each chunk; then the end of the stream.
//!
//! Input: a conf variant byte, then chunks (two length bytes, the bytes).
//! The random stream starts at the same place for every input
//! (`corotls_fuzz::rng`), so the seeds of `make fuzz-corpus`, a real
//! client's flights, replay: the handshake completes and the data after it
//! is decrypted, and mutations reach every state after it.
//! Oracle: no crash, hang or leak; a failed session stays failed and takes
//! no more bytes; a server that requires a client certificate completes a
//! handshake only with a verified one.
#![no_main]
use corotls::Session;
use corotls_fuzz::{confs, drain, Prog, Variant};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    corotls_fuzz::start();
    let mut p = Prog::new(data);
    let v = Variant::from_byte(p.byte());
    let (conf, _) = confs(v);
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
    }
    s.feed_eof();
    let _ = s.handshake();
    let _ = s.fill_plain();
    let _ = s.shutdown();
    drain(&mut s);
    if s.handshake_done() && v.client_cert {
        assert_eq!(s.info().verify.to_str(), Ok("ok"), "a client certificate that did not verify");
        assert!(!s.info().peer_subject.as_bytes().is_empty());
    }
});
