//! The Melon face's TLS recv and send (`mln_tcp_conn_tls_handshake`,
//! `mln_tcp_conn_recv`, `mln_tcp_conn_send`, `_tls_shutdown`) on hostile
//! ciphertext: a Melon connection over a socketpair, through the host
//! fixture c_tests/melon/melon_host, and a real corotls peer whose flights
//! the input may change or replace (the program of `corotls_fuzz::peer`).
//!
//! Input: a byte (bit 0x80: the face is the client, else the server), then
//! the program.  Oracle: no crash, hang or leak; every result is one of
//! Melon's M_C_*; destroying the connection frees every pool it made.
#![no_main]
use corotls_fuzz::melon::MelonConn;
use corotls_fuzz::{pair, peer, Prog, Variant};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    corotls_fuzz::melon::init();
    corotls_fuzz::start();
    let mut p = Prog::new(data);
    let face_is_client = p.byte() & 0x80 != 0;
    let (server, client) = pair(Variant::from_byte(0));
    let mut conn = MelonConn::new(!face_is_client);
    let mut peer = if face_is_client { server } else { client };
    peer::run(&mut conn, &mut peer, &mut p);
});
