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
