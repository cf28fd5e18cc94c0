//! What a session knows of its peer's certificate: subject, issuer, SANs,
//! the PEM of the leaf and of the chain it sent, and the verdict.

use super::Session;
use crate::conf::Verify;
use crate::ossl::{self, peer};

/// One fact about the peer's certificate (`corotls_peer_field`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerField {
    Subject,
    Issuer,
    /// One SAN per line: `DNS:name`, `IP:addr`, `email:addr`, `URI:uri`.
    Sans,
    CertPem,
    /// Every certificate the peer sent, leaf first, in PEM.
    ChainPem,
    /// The verdict in words (`verify_result`).
    Verify,
}

impl PeerField {
    pub fn from_i32(v: i32) -> Option<PeerField> {
        Some(match v {
            0 => PeerField::Subject,
            1 => PeerField::Issuer,
            2 => PeerField::Sans,
            3 => PeerField::CertPem,
            4 => PeerField::ChainPem,
            5 => PeerField::Verify,
            _ => return None,
        })
    }
}

/// The verification verdict: whether the peer sent a certificate, and the
/// X509 result (0: verified; an X509_V_ERR_* code; -1: nothing verified).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerVerify {
    pub present: bool,
    pub code: i64,
}

impl Session {
    /// The text of `f` ("" when the peer sent no certificate).
    pub fn peer_field(&self, f: PeerField) -> String {
        if f == PeerField::Verify {
            return self.info().verify.to_string_lossy().into_owned();
        }
        let ssl = self.ssl();
        let Some(leaf) = ssl.peer_certificate() else { return String::new() };
        match f {
            PeerField::Subject => ossl::subject_line(&leaf),
            PeerField::Issuer => peer::issuer_line(&leaf),
            PeerField::Sans => peer::sans(&leaf).join("\n"),
            PeerField::CertPem => peer::cert_pem(&leaf),
            PeerField::ChainPem => ssl.peer_chain().iter().map(peer::cert_pem).collect(),
            PeerField::Verify => unreachable!("handled above"),
        }
    }

    /// See `PeerVerify`.  A conf that does not verify peers reports -1
    /// (OpenSSL's result then says nothing), as does a peer that sent no
    /// certificate to a server that let it in; a failed verification keeps
    /// its code even though the certificate was not kept.
    pub fn peer_verify(&self) -> PeerVerify {
        let ssl = self.ssl();
        let present = ssl.peer_certificate().is_some();
        if self._conf.verify() == Verify::None {
            return PeerVerify { present, code: -1 };
        }
        // c_long is i64 only on LP64 hosts.
        #[allow(clippy::unnecessary_cast)]
        let v = ssl.verify_code() as i64;
        let code = if v != 0 {
            v
        } else if present {
            0
        } else {
            -1
        };
        PeerVerify { present, code }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{Conf, ConfBuilder, Identity, Role};
    use crate::error::Code::*;
    use crate::session::close::{SHUTDOWN_RECEIVED, SHUTDOWN_SENT};
    use crate::testutil::cert;

    fn id(c: &str, k: &str) -> Identity {
        Identity::from_files(&cert(c), &cert(k), None).unwrap()
    }

    fn confs(verify: Verify, client_id: Option<(&str, &str)>) -> (Conf, Conf) {
        let mut sb = ConfBuilder::new(Role::Server);
        sb.add_identity(id("leaf.crt", "leaf.key")).unwrap();
        sb.add_ca_file(&cert("ca.crt")).unwrap();
        sb.set_verify(verify);
        let mut cb = ConfBuilder::new(Role::Client);
        cb.add_ca_file(&cert("ca.crt")).unwrap();
        if let Some((c, k)) = client_id {
            cb.add_identity(id(c, k)).unwrap();
        }
        cb.set_ktls(true);
        (cb.build().unwrap(), sb.build().unwrap())
    }

    /// Move ciphertext both ways until neither side has any to send.
    fn pump(a: &mut Session, b: &mut Session) {
        let mut buf = vec![0u8; 1 << 16];
        for _ in 0..1000 {
            let _ = a.handshake();
            let _ = b.handshake();
            let n = a.out_read(&mut buf);
            if n > 0 {
                b.feed(&buf[..n]).unwrap();
            }
            let m = b.out_read(&mut buf);
            if m > 0 {
                a.feed(&buf[..m]).unwrap();
            }
            if n == 0 && m == 0 && a.out_pending() == 0 && b.out_pending() == 0 {
                return;
            }
        }
    }

    fn pair(verify: Verify, client_id: Option<(&str, &str)>) -> (Session, Session) {
        let (cc, sc) = confs(verify, client_id);
        let mut c = Session::new(&cc).unwrap();
        c.set_sni(b"localhost").unwrap();
        let mut s = Session::new(&sc).unwrap();
        pump(&mut c, &mut s);
        (c, s)
    }

    #[test]
    fn both_ends_read_the_peer_certificate() {
        let (c, s) = pair(Verify::Require, Some(("leaf.crt", "leaf.key")));
        assert!(c.handshake_done() && s.handshake_done());
        for who in [&c, &s] {
            assert_eq!(who.peer_field(PeerField::Subject), "CN=localhost");
            assert_eq!(who.peer_field(PeerField::Issuer), "CN=corotls test CA");
            assert_eq!(who.peer_field(PeerField::Sans), "DNS:localhost\nIP:127.0.0.1\nIP:::1");
            let pem = std::fs::read_to_string(cert("leaf.crt")).unwrap();
            assert_eq!(who.peer_field(PeerField::CertPem), pem);
            assert!(who.peer_field(PeerField::ChainPem).starts_with(&pem));
            assert_eq!(who.peer_field(PeerField::Verify), "ok");
            assert_eq!(who.peer_verify(), PeerVerify { present: true, code: 0 });
        }
    }

    #[test]
    fn optional_without_a_certificate_reports_no_peer() {
        let (c, s) = pair(Verify::Peer, None);
        assert!(c.handshake_done() && s.handshake_done());
        assert_eq!(s.peer_verify(), PeerVerify { present: false, code: -1 });
        assert_eq!(s.peer_field(PeerField::Subject), "");
        assert_eq!(s.peer_field(PeerField::ChainPem), "");
        assert_eq!(s.peer_field(PeerField::Verify), "not verified");
    }

    #[test]
    fn require_without_a_certificate_fails_with_no_peer_cert() {
        let (_c, s) = pair(Verify::Require, None);
        assert!(!s.handshake_done());
        let (reason, _) = s.last_reason();
        assert_eq!(reason, crate::error::Reason::COROTLS_REASON_NO_PEER_CERT);
    }

    #[test]
    fn shutdown_states_and_the_ktls_report() {
        let (mut c, mut s) = pair(Verify::None, None);
        assert_eq!(c.shutdown_state(), 0);
        let k = c.ktls_status();
        assert!(!k.send && !k.recv && !k.why.is_empty(), "{k:?}");
        assert!(s.ktls_status().why.contains("not requested"));
        c.shutdown().unwrap();
        assert_eq!(c.shutdown_state(), SHUTDOWN_SENT);
        pump(&mut c, &mut s);
        let mut buf = [0u8; 8];
        assert_eq!(s.read(&mut buf).unwrap_err().code, COROTLS_CLOSED);
        assert_eq!(s.shutdown_state(), SHUTDOWN_RECEIVED);
        s.shutdown().unwrap();
        pump(&mut c, &mut s);
        assert_eq!(c.read(&mut buf).unwrap_err().code, COROTLS_CLOSED);
        assert_eq!(c.shutdown_state(), SHUTDOWN_SENT | SHUTDOWN_RECEIVED);
        assert_eq!(s.shutdown_state(), SHUTDOWN_SENT | SHUTDOWN_RECEIVED);
    }
}
