//! fuzz-corpus DIR: the seed corpus, one directory per target under DIR,
//! recorded from real handshakes made now (in memory, with the fuzz PKI of
//! this run) in each target's input format.  `make fuzz-corpus` runs it
//! into target/fuzz-corpus/ (never committed).
//!
//! - session_server / session_client: the client's / the server's flights
//!   of real handshakes (every conf variant), as length-prefixed chunks;
//! - handshake_mutate, melon, silly: programs (see `corotls_fuzz::peer`)
//!   that run a real handshake and an exchange of data; each is run once
//!   here and must complete the handshake;
//! - identity, alpn, cipher_lists, plaintext_reads: real certificates and
//!   keys (PEM, DER, encrypted), real ALPN lists, the default cipher, suite
//!   and group lists, and read programs.

use corotls::Session;
use corotls_fuzz::certs::{pki, PASSWORD};
use corotls_fuzz::melon::MelonConn;
use corotls_fuzz::peer::{self, Endpoint, Side};
use corotls_fuzz::silly::SillyTls;
use corotls_fuzz::{confs, drain, pair, rng, Prog, Variant, HOST, INPUT_STREAM};
use std::path::Path;

/// Length-prefixed chunk, as `Prog::chunk` reads it.
fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    assert!(data.len() <= 0xffff);
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// A real handshake of `v`, with one exchange of data and close_notify:
/// the client's flights and the server's flights, in order.  Each side
/// draws from its own random stream, started where a target's input
/// starts it, so that each side's flights are what that side, alone in a
/// target, answers to the other's: the recording replays.
fn flights(v: Variant) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (sc, cc) = confs(v);
    let (mut cs, mut ss) = (INPUT_STREAM, INPUT_STREAM);
    let mut c = rng::on_stream(&mut cs, || {
        let mut c = Session::new(&cc).unwrap();
        c.set_sni(HOST.as_bytes()).unwrap();
        c
    });
    let mut s = rng::on_stream(&mut ss, || Session::new(&sc).unwrap());
    let (mut cf, mut sf) = (Vec::new(), Vec::new());
    for _ in 0..8 {
        let f = rng::on_stream(&mut cs, || {
            let _ = c.handshake();
            drain(&mut c)
        });
        if !f.is_empty() {
            s.feed(&f).unwrap();
            cf.push(f);
        }
        let f = rng::on_stream(&mut ss, || {
            let _ = s.handshake();
            drain(&mut s)
        });
        if !f.is_empty() {
            c.feed(&f).unwrap();
            sf.push(f);
        }
    }
    assert!(c.handshake_done() && s.handshake_done(), "recording a handshake of {v:?}");
    rng::on_stream(&mut cs, || {
        c.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        c.shutdown().unwrap();
        cf.push(drain(&mut c));
    });
    rng::on_stream(&mut ss, || {
        s.write(b"HTTP/1.1 200 OK\r\n\r\nhello\n").unwrap();
        s.shutdown().unwrap();
        sf.push(drain(&mut s));
    });
    (cf, sf)
}

/// Replay one side's recorded input the way session_server /
/// session_client do, and check that the handshake completes and the
/// other side's data arrives: the recording is a real transcript.
fn check_replay(v: Variant, server: bool, flights: &[Vec<u8>]) {
    let (sc, cc) = confs(v);
    rng::reset(INPUT_STREAM);
    let mut s = Session::new(if server { &sc } else { &cc }).unwrap();
    if !server {
        s.set_sni(HOST.as_bytes()).unwrap();
        let _ = s.handshake();
        drain(&mut s);
    }
    for f in flights {
        s.feed(f).unwrap();
        let _ = s.handshake();
        let _ = s.fill_plain();
        drain(&mut s);
    }
    let who = if server { "server" } else { "client" };
    assert!(s.handshake_done(), "the recorded flights of {v:?} do not replay to a {who} handshake");
    assert!(s.plain().starts_with(if server { b"GET /" } else { b"HTTP/1.1" }), "no data replayed ({who})");
}

/// The program of a real handshake and a data exchange for any endpoint.
fn handshake_program(head: u8) -> Vec<u8> {
    let mut p = vec![head];
    for _ in 0..5 {
        p.extend_from_slice(&[peer::ENDPOINT_CALL, 0, 0, peer::ENDPOINT_TO_PEER, peer::PEER_TO_ENDPOINT]);
    }
    p.extend_from_slice(&[peer::ENDPOINT_CALL, 0, 0]);
    p.push(peer::PEER_WRITE);
    chunk(&mut p, b"hello\nworld\n");
    p.extend_from_slice(&[peer::PEER_TO_ENDPOINT, peer::ENDPOINT_CALL, 1, 1, peer::ENDPOINT_CALL, 6, b'\n']);
    p.extend_from_slice(&[peer::ENDPOINT_CALL, 2, 1]);
    chunk(&mut p, b"pong\n");
    p.extend_from_slice(&[peer::ENDPOINT_TO_PEER, peer::PEER_SHUTDOWN, peer::PEER_TO_ENDPOINT]);
    p.extend_from_slice(&[peer::ENDPOINT_CALL, 1, 1, peer::ENDPOINT_CALL, 4, 0, peer::ENDPOINT_TO_PEER]);
    p
}

/// Run a program against `ep` and check that the peer's handshake ended.
fn check_program(ep: &mut dyn Endpoint, mut peer: corotls::Session, prog: &[u8], what: &str) {
    let mut p = Prog::new(&prog[1..]);
    peer::run(ep, &mut peer, &mut p);
    assert!(peer.handshake_done(), "the recorded program for {what} does not complete a handshake");
}

fn save(dir: &Path, target: &str, name: &str, data: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(name), data).unwrap();
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: fuzz-corpus DIR");
    let dir = Path::new(&dir);
    corotls_fuzz::melon::init();
    corotls_fuzz::start();
    let mut n = 0;
    let mut put = |target: &str, name: &str, data: &[u8]| {
        save(dir, target, name, data);
        n += 1;
    };

    for vb in 0..8u8 {
        let v = Variant::from_byte(vb);
        let (cf, sf) = flights(v);
        check_replay(v, true, &cf);
        check_replay(v, false, &sf);
        let mut server_in = vec![vb];
        cf.iter().for_each(|f| chunk(&mut server_in, f));
        put("session_server", &format!("handshake-v{vb}"), &server_in);
        // The ClientHello alone, and cut in two.
        let mut hello = vec![vb];
        let h = &cf[0];
        chunk(&mut hello, &h[..h.len() / 2]);
        chunk(&mut hello, &h[h.len() / 2..]);
        put("session_server", &format!("hello-split-v{vb}"), &hello);
        let mut client_in = vec![vb];
        sf.iter().for_each(|f| chunk(&mut client_in, f));
        put("session_client", &format!("handshake-v{vb}"), &client_in);

        for side in [0u8, 0x80] {
            let head = vb | side;
            let prog = handshake_program(head);
            let (s, c) = pair(v);
            let (mut ep, peer) = if side != 0 { (Side(c), s) } else { (Side(s), c) };
            check_program(&mut ep, peer, &prog, "handshake_mutate");
            assert!(ep.0.handshake_done());
            put("handshake_mutate", &format!("handshake-v{vb}-{}", if side != 0 { "client" } else { "server" }), &prog);
        }
    }

    // The Melon face: as server (peer: a corotls client) and as client.
    for side in [0u8, 0x80] {
        let prog = handshake_program(side);
        let (s, c) = pair(Variant::from_byte(0));
        let peer = if side != 0 { s } else { c };
        let mut conn = MelonConn::new(side == 0);
        check_program(&mut conn, peer, &prog, "melon");
        put("melon", &format!("handshake-{}", if side != 0 { "client" } else { "server" }), &prog);
    }
    // The silly face (server), with and without ALPN.
    for alpn in [0u8, 1] {
        let prog = handshake_program(alpn);
        let (_, c) = pair(Variant { tls12: false, client_cert: false, alpn: alpn != 0 });
        let mut tls = SillyTls::new(alpn != 0);
        check_program(&mut tls, c, &prog, "silly");
        put("silly", &format!("handshake-alpn{alpn}"), &prog);
    }

    // identity: selector, password length, password, bytes (see the target).
    let p = pki();
    let with = |sel: u8, pw: &[u8], data: &[u8]| {
        let mut v = vec![sel, pw.len() as u8];
        v.extend_from_slice(pw);
        v.extend_from_slice(data);
        v
    };
    put("identity", "cert-pem", &with(0, b"", &p.server_cert));
    put("identity", "key-pem", &with(1, b"", &p.server_key));
    put("identity", "key-encrypted", &with(0x81, PASSWORD, &p.server_key_encrypted));
    put("identity", "password", &with(2, b"", PASSWORD));
    let both = [p.server_cert.clone(), p.server_key.clone()].concat();
    put("identity", "cert-and-key", &with(3, b"", &both));
    put("identity", "cert-der", &with(0x40, b"", &p.server_cert_der));
    put("identity", "key-der", &with(0x40 | 1 << 3 | 1, b"", &p.server_key_der));
    put("identity", "ca-pem", &with(4, b"", &p.ca_cert));
    let chain = [p.server_cert.clone(), p.ca_cert.clone()].concat();
    put("identity", "chain-pem", &with(0, b"", &chain));

    for (i, w) in [&b"\x02h2\x08http/1.1"[..], b"\x08http/1.1", b"\x02h2", b"\x06spdy/3\x02h2"].iter().enumerate() {
        put("alpn", &format!("list-{i}"), &[&[1u8][..], w].concat());
    }

    let lists: [(u8, &str); 6] = [
        (0x80, "ECDHE+AESGCM:ECDHE+CHACHA20"),
        (0, "HIGH:!aNULL:!MD5:@STRENGTH"),
        (1, "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"),
        (2, "X25519:P-256:P-384"),
        (0, "ECDHE-ECDSA-AES128-GCM-SHA256:!RC4:-EXP"),
        (0, "ALL:@SECLEVEL=2"),
    ];
    for (i, (sel, l)) in lists.iter().enumerate() {
        put("cipher_lists", &format!("list-{i}"), &[&[*sel][..], l.as_bytes()].concat());
    }

    // plaintext_reads: write lines (whole, then cut), read them back each way.
    let mut prog = vec![0u8, 0];
    chunk(&mut prog, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    prog.extend_from_slice(&[2, b'\n', 0, 64, 2, b'\n', 0, 4, 4, 0, 2, 5, 0, 3, 6, 0, 255]);
    prog.extend_from_slice(&[1, 128]);
    chunk(&mut prog, b"line one\nline two\nno end");
    prog.extend_from_slice(&[3, b'\n', 1, 0, 4, 0, 9, 7, 2, b'\n', 0, 64, 6, 1, 0]);
    put("plaintext_reads", "lines", &prog);

    println!("fuzz-corpus: {n} seeds in {}", dir.display());
}
