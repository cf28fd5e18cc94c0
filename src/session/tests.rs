//! Engine tests: client and server sessions pumping bytes to each other in
//! memory.  Certificates come from `c_tests/harness/certs.sh` (generated at
//! test time into target/certs).  One suite over 600 lines on purpose: each
//! test is a short pump over the same helpers.

use super::*;
use crate::conf::{ConfBuilder, Identity, Verify, Version};
use crate::testutil::{cert, certdir};
use std::path::Path;

fn server_conf_with(ids: &[(&str, &str)], f: impl FnOnce(&mut ConfBuilder)) -> Conf {
    let mut b = ConfBuilder::new(Role::Server);
    for (c, k) in ids {
        b.add_identity(Identity::from_files(&cert(c), &cert(k), None).unwrap()).unwrap();
    }
    f(&mut b);
    b.build().unwrap()
}

fn server_conf() -> Conf {
    server_conf_with(&[("leaf.crt", "leaf.key")], |_| {})
}

fn client_conf_with(f: impl FnOnce(&mut ConfBuilder)) -> Conf {
    let mut b = ConfBuilder::new(Role::Client);
    b.add_ca_file(&cert("ca.crt")).unwrap();
    f(&mut b);
    b.build().unwrap()
}

fn client_conf() -> Conf {
    client_conf_with(|_| {})
}

/// A client session as an application makes one: it names the server it
/// expects (the test certificates are for localhost).
fn client(cc: &Conf) -> Session {
    let mut c = Session::new(cc).unwrap();
    c.set_sni(b"localhost").unwrap();
    c
}

/// Move ciphertext both ways, `step` bytes at a time, until neither side
/// produces more.  Drives handshakes; returns the last handshake results.
fn pump(c: &mut Session, s: &mut Session, step: usize) -> (Result<()>, Result<()>) {
    let mut rc = c.handshake();
    let mut rs = s.handshake();
    for _ in 0..100_000 {
        let mut moved = false;
        for (from, to) in [(&mut *c as *mut Session, &mut *s as *mut Session), (s as *mut _, c as *mut _)] {
            // SAFETY: from and to are the two distinct sessions.
            let (from, to) = unsafe { (&mut *from, &mut *to) };
            let mut buf = vec![0u8; step];
            let n = from.out_read(&mut buf);
            if n > 0 {
                to.feed(&buf[..n]).unwrap();
                moved = true;
            }
        }
        if !c.handshake_done() {
            rc = c.handshake();
        }
        if !s.handshake_done() {
            rs = s.handshake();
        }
        if !moved && c.out_pending() == 0 && s.out_pending() == 0 {
            break;
        }
    }
    (rc, rs)
}

fn connected(cc: &Conf, sc: &Conf, setup: impl FnOnce(&mut Session)) -> (Session, Session) {
    let mut c = client(cc);
    let mut s = Session::new(sc).unwrap();
    setup(&mut c);
    let (rc, rs) = pump(&mut c, &mut s, 1 << 20);
    rc.unwrap();
    rs.unwrap();
    (c, s)
}

fn transfer(from: &mut Session, to: &mut Session) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = from.out_read(&mut buf);
        if n == 0 {
            break;
        }
        to.feed(&buf[..n]).unwrap();
    }
}

fn read_all(s: &mut Session, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while got.len() < want {
        match s.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read after {} bytes: {e}", got.len()),
        }
    }
    got
}

#[test]
fn handshake_tls13_and_tls12_in_memory() {
    for v in [Version::Tls13, Version::Tls12] {
        let cc = client_conf_with(|b| b.set_versions(v, v).unwrap());
        let (mut c, mut s) = connected(&cc, &server_conf(), |c| c.set_verify_host(b"localhost").unwrap());
        let want = if v == Version::Tls13 { "TLSv1.3" } else { "TLSv1.2" };
        assert_eq!(c.info().version.to_str().unwrap(), want);
        assert_eq!(s.info().version.to_str().unwrap(), want);
        assert!(!c.info().cipher.as_bytes().is_empty());
        assert_eq!(c.info().alpn.as_bytes(), b"");
        assert!(c.info().peer_subject.to_str().unwrap().contains("CN=localhost"), "{:?}", c.info().peer_subject);
        assert_eq!(c.info().verify.to_str().unwrap(), "ok");
        assert_eq!(s.info().peer_subject.as_bytes(), b"");

        c.write(b"ping").unwrap();
        transfer(&mut c, &mut s);
        assert_eq!(read_all(&mut s, 4), b"ping");
        s.write(b"pong!").unwrap();
        transfer(&mut s, &mut c);
        assert_eq!(read_all(&mut c, 5), b"pong!");
    }
}

#[test]
fn one_byte_at_a_time() {
    let mut c = client(&client_conf());
    let mut s = Session::new(&server_conf()).unwrap();
    let (rc, rs) = pump(&mut c, &mut s, 1);
    rc.unwrap();
    rs.unwrap();
    let msg: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    c.write(&msg).unwrap();
    let mut byte = [0u8; 1];
    let mut got = Vec::new();
    while c.out_read(&mut byte) == 1 {
        s.feed(&byte).unwrap();
        // Reading after every byte exercises partial-record handling.
        let mut buf = [0u8; 64];
        loop {
            match s.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => {
                    assert_eq!(e.code, COROTLS_WANT_READ);
                    break;
                }
            }
        }
    }
    assert!(got == msg, "got {} of {} bytes", got.len(), msg.len());
}

#[test]
fn large_transfer_both_ways() {
    let (mut c, mut s) = connected(&client_conf(), &server_conf(), |_| {});
    let data: Vec<u8> = (0..(4 << 20)).map(|i: u32| (i ^ (i >> 11)) as u8).collect();
    // In pieces, as a host moves them: a session holds at most MAX_INPUT
    // bytes of undecrypted input.
    let send = |from: &mut Session, to: &mut Session| {
        let mut got = Vec::new();
        for piece in data.chunks(1 << 20) {
            from.write(piece).unwrap();
            transfer(from, to);
            got.extend(read_all(to, piece.len()));
        }
        assert!(got == data);
    };
    send(&mut c, &mut s);
    send(&mut s, &mut c);
    // More than that in one feed is refused, and the session lives on.
    s.write(&data).unwrap();
    s.write(&data).unwrap();
    let mut ct = Vec::new();
    drain_out(&mut s, &mut ct);
    let e = c.feed(&ct).unwrap_err();
    assert_eq!(e.code, COROTLS_ERR_ARG);
    assert!(e.msg.contains("input limit"), "{e}");
    assert!(!c.is_failed());
    for piece in ct.chunks(1 << 20) {
        c.feed(piece).unwrap();
        c.fill_plain().unwrap();
    }
    assert_eq!(c.plain().len(), 2 * data.len());
}

#[test]
fn plaintext_buffer_exact_and_delimiter() {
    let (mut c, mut s) = connected(&client_conf(), &server_conf(), |_| {});
    c.write(b"line one\nline two\npartial").unwrap();
    transfer(&mut c, &mut s);
    assert_eq!(s.fill_plain().unwrap(), 25);
    let p = s.plain();
    let i = p.iter().position(|&b| b == b'\n').unwrap();
    assert_eq!(&p[..=i], b"line one\n");
    s.consume(i + 1);
    assert_eq!(s.plain(), b"line two\npartial");
    s.consume(9);
    assert_eq!(s.plain(), b"partial");
    assert_eq!(s.starved().code, COROTLS_WANT_READ);
    // read() drains the buffer before decrypting more.
    let mut buf = [0u8; 3];
    assert_eq!(s.read(&mut buf).unwrap(), 3);
    assert_eq!(&buf, b"par");
}

#[test]
fn close_notify_gives_closed_and_transport_end_gives_eof() {
    let (mut c, mut s) = connected(&client_conf(), &server_conf(), |_| {});
    c.write(b"bye").unwrap();
    c.shutdown().unwrap();
    assert!(c.write(b"more").is_err());
    transfer(&mut c, &mut s);
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap(), 3);
    assert_eq!(s.read(&mut buf).unwrap_err().code, COROTLS_CLOSED);
    assert!(s.peer_closed());
    assert_eq!(s.read(&mut buf).unwrap_err().code, COROTLS_CLOSED);
    // The server answers with its own close_notify; the client sees CLOSED.
    s.shutdown().unwrap();
    transfer(&mut s, &mut c);
    assert_eq!(c.read(&mut buf).unwrap_err().code, COROTLS_CLOSED);

    let (mut c, mut s) = connected(&client_conf(), &server_conf(), |_| {});
    c.write(b"cut").unwrap();
    transfer(&mut c, &mut s);
    s.feed_eof();
    assert_eq!(s.read(&mut buf).unwrap(), 3);
    let e = s.read(&mut buf).unwrap_err();
    assert_eq!(e.code, COROTLS_EOF);
    assert!(!s.peer_closed());
}

#[test]
fn eof_during_handshake() {
    let mut c = client(&client_conf());
    assert_eq!(c.handshake().unwrap_err().code, COROTLS_WANT_READ);
    c.feed_eof();
    let e = c.handshake().unwrap_err();
    assert_eq!(e.code, COROTLS_EOF, "{e}");
    assert!(e.msg.contains("during the handshake"));
    assert_eq!(c.write(b"x").unwrap_err().code, COROTLS_EOF);
}

#[test]
fn garbage_on_the_wire_is_a_latched_tls_error() {
    let mut s = Session::new(&server_conf()).unwrap();
    s.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let e = s.handshake().unwrap_err();
    assert_eq!(e.code, COROTLS_ERR_TLS, "{e}");
    assert!(!e.msg.is_empty());
    // Latched: every later call repeats it, nothing new is produced.
    assert_eq!(s.handshake().unwrap_err(), e);
    let mut buf = [0u8; 4];
    assert_eq!(s.read(&mut buf).unwrap_err(), e);
    assert_eq!(s.last_error().to_str().unwrap(), e.msg);

    // Garbage after a good handshake too.
    let (mut c, _s) = connected(&client_conf(), &server_conf(), |_| {});
    c.feed(&[0x17, 0x03, 0x03, 0x00, 0x20]).unwrap();
    c.feed(&[0xAB; 32]).unwrap();
    assert_eq!(c.read(&mut buf).unwrap_err().code, COROTLS_ERR_TLS);
}

#[test]
fn server_write_before_client_hello_waits() {
    let mut s = Session::new(&server_conf()).unwrap();
    assert_eq!(s.write(b"early").unwrap_err().code, COROTLS_WANT_READ);
    assert_eq!(s.out_pending(), 0);
}

#[test]
fn verification_failures_name_their_reason() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, i64);
    // The X509_V_ERR_* codes: 10 expired, 62 hostname, 18 self-signed, 64 IP.
    let cases: [Case; 4] = [
        ("localhost", &[("expired.crt", "expired.key")], "certificate has expired", 10),
        ("localhost", &[("wronghost.crt", "wronghost.key")], "hostname mismatch", 62),
        ("localhost", &[("selfsigned.crt", "selfsigned.key")], "self-signed certificate", 18),
        ("10.9.8.7", &[("leaf.crt", "leaf.key")], "ip address mismatch", 64),
    ];
    for (host, ids, reason, x509) in cases {
        let mut c = client(&client_conf());
        c.set_verify_host(host.as_bytes()).unwrap();
        let mut s = Session::new(&server_conf_with(ids, |_| {})).unwrap();
        let (rc, _) = pump(&mut c, &mut s, 1 << 20);
        let e = rc.unwrap_err();
        assert_eq!(e.code, COROTLS_ERR_VERIFY, "{host} {ids:?}: {e}");
        assert_eq!((e.reason, e.detail), (COROTLS_REASON_VERIFY, x509), "{e}");
        assert_eq!(c.last_reason(), (COROTLS_REASON_VERIFY, x509));
        assert!(e.msg.to_lowercase().contains(reason), "{e} should mention {reason}");
        // The server hears why: the client's fatal alert (42 bad
        // certificate, 45 expired, 48 unknown CA...).
        let (_, rs) = pump(&mut c, &mut s, 1 << 20);
        let se = rs.unwrap_err();
        assert_eq!(se.reason, COROTLS_REASON_PEER_ALERT, "{se}");
        assert!((40..=50).contains(&se.detail), "{se}: alert {}", se.detail);
        assert_eq!(c.info().verify.to_str().unwrap().to_lowercase(), reason);
    }
    // No trust configured at all: the build says how to add some...
    let e = ConfBuilder::new(Role::Client).build().unwrap_err();
    assert_eq!(e.code, COROTLS_ERR_ARG);
    assert!(e.msg.contains("add_ca_file") && e.msg.contains("set_verify(NONE)"), "{e}");
    // ... and with an empty trust store asked for, nothing is trusted.
    let mut b = ConfBuilder::new(Role::Client);
    b.allow_empty_trust();
    let mut c = client(&b.build().unwrap());
    let mut s = Session::new(&server_conf()).unwrap();
    let e = pump(&mut c, &mut s, 1 << 20).0.unwrap_err();
    assert_eq!(e.code, COROTLS_ERR_VERIFY);
    assert!(e.msg.contains("unable to get local issuer certificate"), "{e}");
}

#[test]
fn ip_and_dns_verification_succeed() {
    for host in ["127.0.0.1", "::1", "localhost", "LOCALHOST"] {
        connected(&client_conf(), &server_conf(), |c| c.set_verify_host(host.as_bytes()).unwrap());
    }
}

#[test]
fn a_new_verify_host_replaces_the_old_one() {
    // A name, then an address: only the address counts.
    connected(&client_conf(), &server_conf(), |c| {
        c.set_verify_host(b"wrong.example").unwrap();
        c.set_verify_host(b"127.0.0.1").unwrap();
    });
    // An address, then a name: only the name counts.
    connected(&client_conf(), &server_conf(), |c| {
        c.set_verify_host(b"10.9.8.7").unwrap();
        c.set_verify_host(b"localhost").unwrap();
    });
    // Cleared behind the session's back: the name guard refuses a
    // certificate matched against nothing...
    let mut c = client(&client_conf());
    c.set_verify_host(b"10.9.8.7").unwrap();
    c.ssl().clear_verify_host().unwrap();
    let mut s = Session::new(&server_conf()).unwrap();
    let e = pump(&mut c, &mut s, 1 << 20).0.unwrap_err();
    assert_eq!((e.code, e.reason), (COROTLS_ERR_VERIFY, COROTLS_REASON_NO_PEER_NAME));
    assert!(e.msg.contains("no host name was set"), "{e}");
    // ... unless the conf verifies the chain only.
    let chain_only = client_conf_with(|b| b.set_verify_name(false));
    connected(&chain_only, &server_conf(), |c| {
        c.set_verify_host(b"10.9.8.7").unwrap();
        c.ssl().clear_verify_host().unwrap();
    });
}

#[test]
fn intermediate_chain_is_sent() {
    let sc = server_conf_with(&[("chained-full.crt", "chained.key")], |_| {});
    connected(&client_conf(), &sc, |c| c.set_verify_host(b"localhost").unwrap());
    // Without the intermediate the client cannot build the chain.
    let sc = server_conf_with(&[("chained.crt", "chained.key")], |_| {});
    let mut c = client(&client_conf());
    let mut s = Session::new(&sc).unwrap();
    assert_eq!(pump(&mut c, &mut s, 1 << 20).0.unwrap_err().code, COROTLS_ERR_VERIFY);
}

#[test]
fn sni_picks_first_matching_identity_in_order() {
    let sc = server_conf_with(&[("leaf.crt", "leaf.key"), ("alt1.crt", "alt1.key"), ("alt2.crt", "alt2.key")], |_| {});
    let cases = [
        (Some("localhost"), "CN=localhost"),
        (Some("alt1.example"), "CN=alt1.example"),
        (Some("x.wild.example"), "CN=alt1.example"),
        (Some("alt2.example"), "CN=alt2.example"), // CN fallback: alt2 has no SAN
        (Some("nomatch.example"), "CN=localhost"),
        (None, "CN=localhost"),
    ];
    let cc = client_conf_with(|b| b.set_verify(Verify::None));
    for (sni, subject) in cases {
        let (c, _s) = connected(&cc, &sc, |c| {
            if let Some(n) = sni {
                c.set_sni(n.as_bytes()).unwrap()
            }
        });
        let got = c.info().peer_subject.to_str().unwrap().to_string();
        assert!(got.contains(subject), "SNI {sni:?}: got {got}, want {subject}");
    }
}

#[test]
fn alpn_server_preference_and_no_overlap() {
    let wire = |names: &[&str]| crate::ossl::alpn_wire_from_names(names.iter().map(|n| n.as_bytes())).unwrap();
    let sc = server_conf_with(&[("leaf.crt", "leaf.key")], |b| b.set_alpn_wire(&wire(&["h2", "http/1.1"])).unwrap());
    let cases: [(&[&str], &str); 3] = [(&["http/1.1", "h2"], "h2"), (&["http/1.1"], "http/1.1"), (&["foo"], "")];
    for (offer, want) in cases {
        let cc = client_conf_with(|b| b.set_alpn_wire(&wire(offer)).unwrap());
        let (c, s) = connected(&cc, &sc, |_| {});
        assert_eq!(c.info().alpn.to_str().unwrap(), want);
        assert_eq!(s.info().alpn.to_str().unwrap(), want);
    }
    // A per-session offer replaces the conf's.
    let (c, _) = connected(&client_conf(), &sc, |c| c.set_alpn_wire(&wire(&["http/1.1"])).unwrap());
    assert_eq!(c.info().alpn.to_str().unwrap(), "http/1.1");
}

#[test]
fn client_certificates() {
    let sc = server_conf_with(&[("leaf.crt", "leaf.key")], |b| {
        b.add_ca_file(&cert("ca.crt")).unwrap();
        b.set_verify(Verify::Require);
    });
    // Without one: refused, and the server says why.
    let mut c = client(&client_conf());
    let mut s = Session::new(&sc).unwrap();
    let (_, rs) = pump(&mut c, &mut s, 1 << 20);
    let e = rs.unwrap_err();
    assert_eq!(e.code, COROTLS_ERR_VERIFY, "{e}");
    assert_eq!(e.reason, COROTLS_REASON_NO_PEER_CERT, "{e}");
    // With one: accepted, subject visible on the server.
    let cc = client_conf_with(|b| {
        b.add_identity(Identity::from_files(&cert("client.crt"), &cert("client.key"), None).unwrap()).unwrap()
    });
    let (_c, s) = connected(&cc, &sc, |_| {});
    assert!(s.info().peer_subject.to_str().unwrap().contains("CN=corotls-client"));
}

/// A failed OpenSSL call whose error stays queued, as a host's would.
fn leave_stale_error() {
    // SAFETY: a scratch context; loading a missing file fails and queues
    // "No such file" without anybody clearing it.
    unsafe {
        let ctx = openssl_sys::SSL_CTX_new(openssl_sys::TLS_method());
        assert_eq!(openssl_sys::SSL_CTX_use_certificate_file(ctx, c"/nonexistent/corotls".as_ptr(), 1), 0);
        openssl_sys::SSL_CTX_free(ctx);
    }
    // SAFETY: peeks this thread's queue.
    assert_ne!(unsafe { openssl_sys::ERR_peek_last_error() }, 0);
}

#[test]
fn stale_openssl_errors_do_not_fail_a_connection() {
    // Leave junk in this thread's error queue, as a failed host call would.
    let _ = crate::ossl::parse_certs_pem(b"not pem", "x");
    leave_stale_error();
    let (mut c, mut s) = connected(&client_conf(), &server_conf(), |_| {});
    leave_stale_error();
    c.write(b"ok").unwrap();
    transfer(&mut c, &mut s);
    leave_stale_error();
    assert_eq!(read_all(&mut s, 2), b"ok");
    // A read that can only ask for more input says so (WANT_READ, not a TLS
    // error made of someone else's entries), and the session stays usable.
    leave_stale_error();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap_err().code, COROTLS_WANT_READ);
    // Half a record: OpenSSL asks for the rest.
    c.write(b"more").unwrap();
    let mut ct = vec![0u8; 4096];
    let n = c.out_read(&mut ct);
    s.feed(&ct[..n / 2]).unwrap();
    leave_stale_error();
    assert_eq!(s.read(&mut buf).unwrap_err().code, COROTLS_WANT_READ);
    s.feed(&ct[n / 2..n]).unwrap();
    leave_stale_error();
    assert_eq!(read_all(&mut s, 4), b"more");
    // A genuine failure (a corrupted record) is still one, junk or not.
    c.write(b"bad").unwrap();
    let n = c.out_read(&mut ct);
    ct[n - 1] ^= 1;
    s.feed(&ct[..n]).unwrap();
    leave_stale_error();
    assert_eq!(s.read(&mut buf).unwrap_err().code, COROTLS_ERR_TLS);
    assert_eq!(s.read(&mut buf).unwrap_err().code, COROTLS_ERR_TLS, "the failure is latched");
    // SAFETY: clears this thread's queue (the junk is ours).
    unsafe { openssl_sys::ERR_clear_error() };
}

#[test]
fn identity_errors() {
    let rd = |n: &str| std::fs::read(cert(n)).unwrap();
    let e = |r: Result<Identity>| r.err().expect("should fail");
    let m = e(Identity::from_pem(&rd("leaf.crt"), &rd("other.key"), None));
    assert_eq!(m.msg, "private key does not match the certificate");
    assert_eq!(m.reason, COROTLS_REASON_KEY_MISMATCH);
    let m = e(Identity::from_pem(&rd("garbage.pem"), &rd("leaf.key"), None));
    assert!(m.msg.starts_with("certificate:"), "{m}");
    assert_eq!(m.reason, COROTLS_REASON_CERT_PARSE);
    let m = e(Identity::from_pem(&rd("empty.pem"), &rd("leaf.key"), None));
    assert!(m.msg.starts_with("certificate:"), "{m}");
    let m = e(Identity::from_pem(&rd("leaf.crt"), &rd("garbage.pem"), None));
    assert!(m.msg.starts_with("private key:"), "{m}");
    assert_eq!(m.reason, COROTLS_REASON_KEY_PARSE);
    let m = e(Identity::from_pem(&rd("leaf.crt"), &rd("leaf.enc.key"), None));
    assert!(m.msg.contains("no password"), "{m}");
    assert_eq!(m.reason, COROTLS_REASON_KEY_PASSWORD);
    let m = e(Identity::from_pem(&rd("leaf.crt"), &rd("leaf.enc.key"), Some(b"wrong")));
    assert!(m.msg.contains("wrong password"), "{m}");
    assert_eq!(m.reason, COROTLS_REASON_KEY_PASSWORD);
    Identity::from_pem(&rd("leaf.crt"), &rd("leaf.enc.key"), Some(b"secret")).unwrap();
    Identity::from_pem(&rd("leaf.crt"), &rd("leaf.pkcs1.key"), None).unwrap();
    let m = e(Identity::from_files(Path::new("/nonexistent/x.crt"), &cert("leaf.key"), None));
    assert!(m.msg.contains("cannot read certificate file") && m.msg.contains("No such file"), "{m}");
    assert_eq!(m.code, COROTLS_ERR_ARG);
    assert_eq!((m.reason, m.detail), (COROTLS_REASON_FILE, libc::ENOENT as i64));
}

#[test]
fn builder_errors() {
    let mut b = ConfBuilder::new(Role::Server);
    assert!(b.build().unwrap_err().msg.contains("needs an identity"));
    let e = b.set_ciphers("NOT-A-CIPHER").unwrap_err();
    assert!(e.msg.contains("invalid TLS 1.2 cipher list") && e.reason == COROTLS_REASON_CIPHER_LIST, "{e}");
    let e = b.set_suites("TLS_NOPE").unwrap_err();
    assert!(e.msg.contains("invalid TLS 1.3 suite list") && e.reason == COROTLS_REASON_SUITE_LIST, "{e}");
    assert_eq!(b.set_groups("NOPE").unwrap_err().reason, COROTLS_REASON_GROUP_LIST);
    assert_eq!(b.set_alpn_wire(b"\x05h2").unwrap_err().reason, COROTLS_REASON_ALPN);
    assert_eq!(b.add_ca_file(&cert("garbage.pem")).unwrap_err().reason, COROTLS_REASON_TRUST);
    b.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256").unwrap();
    b.set_suites("TLS_AES_128_GCM_SHA256").unwrap();
    assert!(b.set_versions(Version::Tls13, Version::Tls12).is_err());
    assert!(b.set_alpn_wire(b"").is_err());
    assert!(b.set_alpn_wire(b"\x00").is_err());
    assert!(b.set_alpn_wire(b"\x05h2").is_err());
    assert!(crate::ossl::alpn_wire_from_names([&[b'a'; 256][..]]).is_err());
    assert!(crate::ossl::alpn_wire_from_names([&b""[..]]).is_err());
    assert!(b.add_ca_file(&cert("garbage.pem")).is_err());
    assert!(b.add_ca_file(Path::new("/nonexistent")).is_err());
    assert!(b.add_ca_dir(&cert("ca.crt")).is_err());
    b.add_ca_dir(certdir()).unwrap();
    let mut cb = ConfBuilder::new(Role::Client);
    let id = Identity::from_files(&cert("client.crt"), &cert("client.key"), None).unwrap();
    cb.add_identity(id.clone()).unwrap();
    assert!(cb.add_identity(id).is_err());
}

#[test]
fn ciphers_and_suites_apply() {
    let sc = server_conf_with(&[("leaf.crt", "leaf.key")], |b| {
        b.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256").unwrap();
        b.set_suites("TLS_CHACHA20_POLY1305_SHA256").unwrap();
    });
    let (c, _) = connected(&client_conf_with(|b| b.set_versions(Version::Tls12, Version::Tls12).unwrap()), &sc, |_| {});
    assert_eq!(c.info().cipher.to_str().unwrap(), "ECDHE-RSA-AES128-GCM-SHA256");
    let (c, _) = connected(&client_conf(), &sc, |_| {});
    assert_eq!(c.info().cipher.to_str().unwrap(), "TLS_CHACHA20_POLY1305_SHA256");
}

#[test]
fn version_mismatch_fails() {
    let sc = server_conf_with(&[("leaf.crt", "leaf.key")], |b| b.set_versions(Version::Tls13, Version::Tls13).unwrap());
    let cc = client_conf_with(|b| b.set_versions(Version::Tls12, Version::Tls12).unwrap());
    let mut c = client(&cc);
    let mut s = Session::new(&sc).unwrap();
    let (rc, rs) = pump(&mut c, &mut s, 1 << 20);
    // The server finds no common version (a protocol error here); the
    // client hears its protocol_version alert (70).
    let (se, ce) = (rs.unwrap_err(), rc.unwrap_err());
    assert_eq!((se.code, se.reason), (COROTLS_ERR_TLS, COROTLS_REASON_PROTOCOL), "{se}");
    assert_eq!((ce.code, ce.reason, ce.detail), (COROTLS_ERR_TLS, COROTLS_REASON_PEER_ALERT, 70), "{ce}");
}

#[test]
fn host_name_rules() {
    let mut c = client(&client_conf());
    assert!(c.set_sni(b"").is_err());
    assert!(c.set_sni(b"ab\0cd").unwrap_err().msg.contains("0x00"));
    assert!(c.set_sni(b"ab\ncd").unwrap_err().msg.contains("0x0a"));
    assert!(c.set_sni(&[b'a'; 256]).unwrap_err().msg.contains("255"));
    assert!(c.set_sni(&[b'a'; 64]).unwrap_err().msg.contains("63"));
    for ip in ["127.0.0.1", "::1", "fe80::1"] {
        assert!(c.set_sni(ip.as_bytes()).unwrap_err().msg.contains("IP address"), "{ip}");
    }
    for bad in ["example.com.", ".example.com", "a..b", "a b", "exa/mple", "caf\u{e9}.fr"] {
        assert!(c.set_sni(bad.as_bytes()).is_err(), "{bad}");
    }
    c.set_sni(&[b'a'; 63]).unwrap();
    c.set_sni(b"xn--caf-dma.fr").unwrap();
    c.set_sni(b"_srv.my-host.example").unwrap();
    assert!(c.set_verify_host(b"ab\0cd").is_err());
    assert!(c.set_verify_host(&[b'a'; 300]).is_err());
    let mut s = Session::new(&server_conf()).unwrap();
    assert!(s.set_sni(b"localhost").unwrap_err().msg.contains("client"));
    // After the handshake has started: refused.
    let _ = c.handshake();
    assert!(c.set_sni(b"localhost").unwrap_err().msg.contains("before the handshake"));
}

#[test]
fn conf_outlives_its_handle() {
    let sc = server_conf_with(&[("leaf.crt", "leaf.key"), ("alt1.crt", "alt1.key")], |b| {
        b.set_alpn_wire(b"\x02h2").unwrap()
    });
    let cc = client_conf_with(|b| b.set_alpn_wire(b"\x02h2").unwrap());
    let mut c = Session::new(&cc).unwrap();
    let mut s = Session::new(&sc).unwrap();
    drop(sc);
    drop(cc);
    // The SNI and ALPN callbacks run now, after the handles are gone.
    c.set_sni(b"alt1.example").unwrap();
    c.set_verify_host(b"alt1.example").unwrap();
    let (rc, rs) = pump(&mut c, &mut s, 1 << 20);
    rc.unwrap();
    rs.unwrap();
    assert_eq!(c.info().alpn.to_str().unwrap(), "h2");
    assert!(c.info().peer_subject.to_str().unwrap().contains("alt1"));
}

#[test]
fn simple_conf_matches_melang_meaning() {
    let c = cert("leaf.crt");
    let k = cert("leaf.key");
    let ca = cert("ca.crt");
    assert!(Conf::simple(Role::Server, None, None, None, None, false).is_err());
    assert!(Conf::simple(Role::Server, Some(&c), None, None, None, false).is_err());
    assert!(Conf::simple(Role::Client, None, Some(&k), None, None, false).is_err());
    let s = Conf::simple(Role::Server, Some(&c), Some(&k), None, None, false).unwrap();
    assert_eq!(s.verify(), Verify::None);
    let s = Conf::simple(Role::Server, Some(&c), Some(&k), Some(&ca), Some("ECDHE+AESGCM"), true).unwrap();
    assert_eq!(s.verify(), Verify::Require);
    assert!(Conf::simple(Role::Client, None, None, None, Some("BOGUS"), false).is_err());
    // verify=false: an untrusted server is accepted.
    let cc = Conf::simple(Role::Client, None, None, None, None, false).unwrap();
    connected(&cc, &server_conf_with(&[("selfsigned.crt", "selfsigned.key")], |_| {}), |_| {});
}

fn drain_out(s: &mut Session, into: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    loop {
        let n = s.out_read(&mut buf);
        if n == 0 {
            break;
        }
        into.extend_from_slice(&buf[..n]);
    }
}

/// xorshift: deterministic "random" bytes for the robustness test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Every call on a session fed hostile bytes ends in an allowed outcome:
/// never a panic, never a hang.
fn poke(s: &mut Session) {
    let allowed = |e: &Error| {
        matches!(
            e.code,
            COROTLS_WANT_READ | COROTLS_CLOSED | COROTLS_EOF | COROTLS_ERR_TLS | COROTLS_ERR_VERIFY | COROTLS_ERR_ARG
        )
    };
    let mut buf = [0u8; 512];
    for r in [s.handshake().map(|_| 0), s.read(&mut buf), s.fill_plain(), s.write(b"x")] {
        if let Err(e) = r {
            assert!(allowed(&e), "unexpected {e}");
        }
    }
    let mut out = vec![0u8; 1 << 16];
    while s.out_read(&mut out) > 0 {}
}

#[test]
fn hostile_bytes_in_every_state() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let sc = server_conf();
    let cc = client_conf();
    // A real transcript to mutate: the client's first flight and the
    // server's answer.
    let mut c0 = client(&cc);
    let _ = c0.handshake();
    let mut hello = Vec::new();
    drain_out(&mut c0, &mut hello);
    let mut s0 = Session::new(&sc).unwrap();
    s0.feed(&hello).unwrap();
    let _ = s0.handshake();
    let mut answer = Vec::new();
    drain_out(&mut s0, &mut answer);

    for round in 0..1500 {
        // Pick a victim state.
        let (mut victim, base): (Session, &[u8]) = match round % 4 {
            0 => (Session::new(&sc).unwrap(), &hello),
            1 => {
                let mut c = client(&cc);
                let _ = c.handshake();
                (c, &answer)
            }
            2 => {
                let (c, _s) = connected(&cc, &sc, |_| {});
                (c, &answer)
            }
            _ => {
                let (_c, s) = connected(&cc, &sc, |_| {});
                (s, &hello)
            }
        };
        // Either random bytes, or the real transcript with a few bytes
        // flipped, truncated at a random point.
        let data: Vec<u8> = if rng.below(2) == 0 {
            (0..rng.below(3000)).map(|_| rng.next() as u8).collect()
        } else {
            let mut d = base.to_vec();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            d.truncate(rng.below(d.len() + 1));
            d
        };
        // Feed in random-sized pieces, poking after each.
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(700));
            if let Err(e) = victim.feed(&rest[..n]) {
                // Only a failed session refuses input, with its own error.
                assert!(victim.is_failed(), "feed refused: {e}");
                break;
            }
            rest = &rest[n..];
            poke(&mut victim);
        }
        if rng.below(3) == 0 {
            victim.feed_eof();
            poke(&mut victim);
        }
        let _ = victim.shutdown();
    }
}

#[test]
fn failed_session_takes_no_more_ciphertext_but_keeps_its_plaintext() {
    let (mut c, mut s) = connected(&client_conf(), &server_conf(), |_| {});
    c.write(b"twelve bytes").unwrap();
    transfer(&mut c, &mut s);
    // A record with a bad MAC after the good one.
    s.feed(&[0x17, 0x03, 0x03, 0x00, 0x20]).unwrap();
    s.feed(&[0x5A; 32]).unwrap();
    let e = s.fill_plain().unwrap_err();
    assert_eq!(e.code, COROTLS_ERR_TLS);
    assert_eq!(s.plain(), b"twelve bytes", "plaintext decrypted before the failure stays");
    let before = s.ssl().in_pending();
    assert_eq!(s.feed(&[0u8; 4096]).unwrap_err(), e, "feed after failure repeats the error");
    assert_eq!(s.ssl().in_pending(), before, "and buffers nothing");
    let mut buf = [0u8; 32];
    assert_eq!(s.read(&mut buf).unwrap(), 12);
    assert_eq!(s.read(&mut buf).unwrap_err(), e);
}

#[test]
fn alpn_names_with_nul_are_refused() {
    assert!(crate::ossl::check_alpn_wire(b"\x03a\0b").unwrap_err().msg.contains("NUL"));
    assert!(crate::ossl::alpn_wire_from_names([&b"h\0"[..]]).is_err());
}
