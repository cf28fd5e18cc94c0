//! Resumption between two in-memory sessions: the client cache, export
//! and import, names, ticket-key rotation.

use crate::conf::{Conf, ConfBuilder, Identity, Role, Version};
use crate::session::Session;
use crate::testutil::cert;
use std::time::Duration;

fn server(v: Version, f: impl FnOnce(&mut ConfBuilder)) -> Conf {
    let mut b = ConfBuilder::new(Role::Server);
    for (c, k) in [("leaf.crt", "leaf.key"), ("alt1.crt", "alt1.key")] {
        b.add_identity(Identity::from_files(&cert(c), &cert(k), None).unwrap()).unwrap();
    }
    b.set_versions(v, v).unwrap();
    f(&mut b);
    b.build().unwrap()
}

fn client() -> Conf {
    let mut b = ConfBuilder::new(Role::Client);
    b.add_ca_file(&cert("ca.crt")).unwrap();
    b.build().unwrap()
}

/// Handshake `c` with a new server session of `sc`, then let the client
/// read what follows (TLS 1.3 tickets).  Returns the client.
fn run(mut c: Session, sc: &Conf) -> Session {
    let mut s = Session::new(sc).unwrap();
    for _ in 0..50 {
        let _ = c.handshake();
        let _ = s.handshake();
        let mut buf = vec![0u8; 1 << 16];
        let n = c.out_read(&mut buf);
        s.feed(&buf[..n]).unwrap();
        let m = s.out_read(&mut buf);
        c.feed(&buf[..m]).unwrap();
        let _ = c.fill_plain();
        if n == 0 && m == 0 && c.handshake_done() && s.handshake_done() {
            break;
        }
    }
    assert!(c.handshake_done(), "client handshake: {:?}", c.last_error());
    assert_eq!(c.resumed(), s.resumed());
    c
}

fn keyed(cc: &Conf, sni: &str) -> Session {
    let mut c = Session::new(cc).unwrap();
    c.set_sni(sni.as_bytes()).unwrap();
    c.set_resume_key(b"127.0.0.1", 443).unwrap();
    c
}

#[test]
fn the_cache_resumes_per_sni_in_both_versions() {
    for v in [Version::Tls12, Version::Tls13] {
        let (sc, cc) = (server(v, |_| {}), client());
        assert!(!run(keyed(&cc, "localhost"), &sc).resumed(), "{v:?}: first is full");
        assert_eq!(cc.session_cache().unwrap().len(), 1, "{v:?}: a session is kept");
        assert!(run(keyed(&cc, "localhost"), &sc).resumed(), "{v:?}: second resumes");
        for i in 3..8 {
            assert!(run(keyed(&cc, "localhost"), &sc).resumed(), "{v:?}: connection {i} resumes");
        }
        assert!(!run(keyed(&cc, "alt1.example"), &sc).resumed(), "{v:?}: another SNI is a full handshake");
        // Another conf (its own cache) never resumes the first one's sessions.
        assert!(!run(keyed(&client(), "localhost"), &sc).resumed(), "{v:?}: another conf");
    }
}

#[test]
fn tickets_off_and_cache_off_mean_full_handshakes() {
    let sc = server(Version::Tls13, |b| b.set_tickets(false).unwrap());
    let cc = client();
    run(keyed(&cc, "localhost"), &sc);
    assert!(!run(keyed(&cc, "localhost"), &sc).resumed());
    let mut b = ConfBuilder::new(Role::Client);
    b.add_ca_file(&cert("ca.crt")).unwrap();
    b.set_session_cache_size(0).unwrap();
    let cc = b.build().unwrap();
    let sc = server(Version::Tls13, |_| {});
    run(keyed(&cc, "localhost"), &sc);
    assert!(!run(keyed(&cc, "localhost"), &sc).resumed());
    assert!(cc.session_cache().is_none());
}

#[test]
fn export_import_checks_and_rotation() {
    for v in [Version::Tls12, Version::Tls13] {
        let sc = server(v, |b| b.set_ticket_key(&[7u8; 80]).unwrap());
        let cc = client();
        let mut c = Session::new(&cc).unwrap();
        c.set_sni(b"localhost").unwrap();
        let der = run(c, &sc).export_session().unwrap();
        let import = |sni: &str| {
            let mut c = Session::new(&cc).unwrap();
            c.set_sni(sni.as_bytes()).unwrap();
            c.import_session(&der).map(|_| c)
        };
        assert!(run(import("localhost").unwrap(), &sc).resumed(), "{v:?}: imported");
        let e = import("alt1.example").err().unwrap();
        assert!(e.msg.contains("is for 'localhost'"), "{}", e.msg);
        let mut c = Session::new(&cc).unwrap();
        c.set_sni(b"localhost").unwrap();
        assert!(c.import_session(b"garbage").unwrap_err().msg.contains("not a TLS session"));
        // A session past its lifetime is refused.
        let old = crate::ossl::sess::SslSession::from_der(&der).unwrap();
        old.age(3 * 86400);
        let mut c = Session::new(&cc).unwrap();
        c.set_sni(b"localhost").unwrap();
        assert!(c.import_session(&old.to_der().unwrap()).unwrap_err().msg.contains("expired"), "{v:?}: expired");
        // A conf trusting another CA does not take it.
        let mut b = ConfBuilder::new(Role::Client);
        b.add_ca_file(&cert("selfsigned.crt")).unwrap();
        let other = b.build().unwrap();
        let mut c = Session::new(&other).unwrap();
        c.set_sni(b"localhost").unwrap();
        assert!(c.import_session(&der).is_err(), "{v:?}: other trust");
        // Rotation: the old key resumes within the grace period only.
        sc.rotate_ticket_key(Some(&[8u8; 80]), Duration::from_millis(300)).unwrap();
        assert!(run(import("localhost").unwrap(), &sc).resumed(), "{v:?}: in the grace period");
        std::thread::sleep(Duration::from_millis(350));
        let c = run(import("localhost").unwrap(), &sc);
        assert!(!c.resumed(), "{v:?}: after the grace period: a full handshake");
    }
}
