//! Test PKI made in code when a process starts: a CA, a server identity for
//! `localhost` and a client identity, all EC P-256, plus the server key
//! encrypted with `PASSWORD`.  The keys come from the deterministic random
//! stream of `rng`, so every fuzz process makes the same PKI (and recorded
//! handshakes replay); never use such keys outside a fuzzer.  Nothing is read from or written to disk
//! (but by `write_files`, for the Melon face, whose confs take file names).

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::symm::Cipher;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Name, X509};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The password of `Pki::server_key_encrypted`.
pub const PASSWORD: &[u8] = b"fuzz-password";

/// PEM text of every certificate and key (DER beside, for seeds).
pub struct Pki {
    pub ca_cert: Vec<u8>,
    pub server_cert: Vec<u8>,
    pub server_key: Vec<u8>,
    pub server_key_encrypted: Vec<u8>,
    pub client_cert: Vec<u8>,
    pub client_key: Vec<u8>,
    pub server_cert_der: Vec<u8>,
    pub server_key_der: Vec<u8>,
}

fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn name(cn: &str) -> X509Name {
    let mut n = X509Name::builder().unwrap();
    n.append_entry_by_text("O", "corotls fuzz").unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

/// A certificate for `cn` signed by `issuer` (self-signed when None).
fn cert(cn: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>, san: Option<&str>) -> X509 {
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap()).unwrap();
    let subject = name(cn);
    b.set_subject_name(&subject).unwrap();
    b.set_issuer_name(issuer.map(|(c, _)| c.subject_name()).unwrap_or(&subject)).unwrap();
    b.set_pubkey(key).unwrap();
    // Fixed dates: the same certificate in every process (see rng).
    b.set_not_before(&Asn1Time::from_str("20250101000000Z").unwrap()).unwrap();
    b.set_not_after(&Asn1Time::from_str("20991231235959Z").unwrap()).unwrap();
    if issuer.is_none() {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap();
        b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build().unwrap()).unwrap();
    } else {
        b.append_extension(BasicConstraints::new().critical().build().unwrap()).unwrap();
    }
    if let Some(dns) = san {
        let ext =
            SubjectAlternativeName::new().dns(dns).build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None)).unwrap();
        b.append_extension(ext).unwrap();
    }
    b.sign(issuer.map(|(_, k)| k).unwrap_or(key), MessageDigest::sha256()).unwrap();
    b.build()
}

fn make() -> Pki {
    crate::rng::reset(0);
    let ca_key = key();
    let ca = cert("corotls fuzz CA", &ca_key, None, None);
    let server_key = key();
    let server = cert(crate::HOST, &server_key, Some((&ca, &ca_key)), Some(crate::HOST));
    let client_key = key();
    let client = cert("fuzz client", &client_key, Some((&ca, &ca_key)), None);
    Pki {
        ca_cert: ca.to_pem().unwrap(),
        server_cert: server.to_pem().unwrap(),
        server_key: server_key.private_key_to_pem_pkcs8().unwrap(),
        server_key_encrypted: server_key.private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), PASSWORD).unwrap(),
        client_cert: client.to_pem().unwrap(),
        client_key: client_key.private_key_to_pem_pkcs8().unwrap(),
        server_cert_der: server.to_der().unwrap(),
        server_key_der: server_key.private_key_to_der().unwrap(),
    }
}

/// This process's PKI, made on first use.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(make)
}

/// Write the server identity and the CA to `dir` as `server.crt`,
/// `server.key`, `ca.crt`; returns their paths in that order.
pub fn write_files(dir: &Path) -> [PathBuf; 3] {
    let p = pki();
    std::fs::create_dir_all(dir).unwrap();
    let files = [("server.crt", &p.server_cert), ("server.key", &p.server_key), ("ca.crt", &p.ca_cert)];
    files.map(|(name, pem)| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    })
}
