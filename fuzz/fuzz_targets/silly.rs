//! The silly face's `tls.push`, `tls.handshake`, `tls.read` (by size and
//! by delimiter), `tls.write` (string and table) and `tls.size`, in any
//! order, on ciphertext from a real corotls client that the input may
//! change or replace (the program of `corotls_fuzz::peer`): the C shim
//! adapters/silly/silly_tls.c in Lua 5.4, with silly's host functions.
//!
//! Input: a byte (bit 0: the server ctx has ALPN), then the program.
//! Oracle: no crash, hang or leak; no call raises a Lua error for valid
//! arguments; every silly_malloc'ed buffer (pushed or sent) is freed.
#![no_main]
use corotls_fuzz::silly::SillyTls;
use corotls_fuzz::{pair, peer, Prog, Variant};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    corotls_fuzz::start();
    let mut p = Prog::new(data);
    let alpn = p.byte() & 1 != 0;
    let (_, client) = pair(Variant { tls12: false, client_cert: false, alpn });
    let mut tls = SillyTls::new(alpn);
    let mut peer = client;
    peer::run(&mut tls, &mut peer, &mut p);
});
