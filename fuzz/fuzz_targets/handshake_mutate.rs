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
use corotls_fuzz::peer::{run, Side};
use corotls_fuzz::{pair, Prog, Variant};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    corotls_fuzz::start();
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
