//! A full in-memory handshake (and data after it) between a corotls server
//! and a corotls client, in which the flights of one side are changed on
//! the way: bytes flipped, cut, inserted, overwritten, dropped, repeated,
//! or replaced by raw bytes (the program of `corotls_fuzz::peer`).
//!
//! Input: a byte (bit 0x80: the client is the side under test, else the
//! server; bits 0..2: the conf variant), then the program.  `make
//! fuzz-corpus` records programs of real handshakes as seeds.
//! Oracle: no crash, hang or leak; a side under test whose handshake
//! completes has the peer's real certificate (verified, or none asked).
#![no_main]
use corotls::Session;
use corotls_fuzz::peer::{run, Endpoint};
use corotls_fuzz::{drain, pair, Prog, Variant};
use libfuzzer_sys::fuzz_target;

struct Side(Session);

impl Endpoint for Side {
    fn deliver(&mut self, ct: &[u8]) {
        let _ = self.0.feed(ct);
    }
    fn collect(&mut self) -> Vec<u8> {
        drain(&mut self.0)
    }
    fn call(&mut self, op: u8, arg: u8, data: &[u8]) {
        let s = &mut self.0;
        match op % 8 {
            0 => {
                let _ = s.handshake();
            }
            1 => {
                let _ = s.fill_plain();
                let n = s.plain().len().min(arg as usize * 64);
                s.consume(n);
            }
            2 => {
                let _ = s.write(data);
            }
            3 => {
                let _ = s.shutdown();
            }
            4 => s.feed_eof(),
            _ => {
                let mut buf = vec![0u8; 1 + arg as usize];
                let _ = s.read(&mut buf);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut p = Prog::new(data);
    let head = p.byte();
    let v = Variant::from_byte(head);
    let (server, client) = pair(v);
    let (mut side, mut peer) = if head & 0x80 != 0 { (Side(client), server) } else { (Side(server), client) };
    run(&mut side, &mut peer, &mut p);
    let s = &side.0;
    if s.handshake_done() {
        let info = s.info();
        let verify = info.verify.to_str().unwrap_or("?");
        let client_side = head & 0x80 != 0;
        if client_side || v.client_cert {
            // The peer authenticated: it can only be the real peer.
            assert_eq!(verify, "ok", "handshake done with verify result {verify:?}");
            assert!(!info.peer_subject.as_bytes().is_empty());
        }
    }
});
