//! A client session that has sent a real ClientHello, then is fed arbitrary
//! bytes as the server's answer, in chunks the input chooses.
//!
//! Input: a conf variant byte, then chunks (two length bytes, the bytes).
//! The random stream starts at the same place for every input
//! (`corotls_fuzz::rng`): the ClientHello is the one `make fuzz-corpus`
//! recorded a real server's answer to, so those seeds replay to the end.
//! Oracle: no crash, hang or leak; a failed session stays failed; a
//! completed handshake has a server certificate that verified for
//! `localhost` (anything else would be an accepted impostor).
#![no_main]
use corotls::Session;
use corotls_fuzz::{confs, drain, Prog, Variant, HOST};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    corotls_fuzz::start();
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
        check(&c);
    }
    c.feed_eof();
    let _ = c.handshake();
    let _ = c.shutdown();
    drain(&mut c);
    check(&c);
});

fn check(c: &Session) {
    if c.handshake_done() {
        assert_eq!(c.info().verify.to_str(), Ok("ok"), "a server certificate that did not verify");
        let subject = c.info().peer_subject.to_string_lossy();
        assert!(subject.contains("CN=localhost"), "accepted server {subject:?}");
    }
}
