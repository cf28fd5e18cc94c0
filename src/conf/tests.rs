use super::*;
use crate::testutil::cert;

#[test]
fn check_cert_file_counts_the_chain_and_refuses_what_is_not_one() {
    assert_eq!(Identity::check_cert_file(&cert("leaf.crt")).unwrap(), 1);
    assert_eq!(Identity::check_cert_file(&cert("chained-full.crt")).unwrap(), 2);
    let e = Identity::check_cert_file(&cert("leaf.key")).unwrap_err();
    assert!(e.msg.starts_with("certificate: no PEM certificate found"), "{}", e.msg);
    let e = Identity::check_cert_file(Path::new("/nonexistent/cert.pem")).unwrap_err();
    assert!(e.msg.starts_with("cannot read certificate file"), "{}", e.msg);
    assert!(Identity::check_cert_file(Path::new("/dev/zero")).is_err());
}

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The DER inside a one-certificate PEM file.
fn der_of(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).unwrap();
    let body: Vec<u8> = text.lines().filter(|l| !l.starts_with("-----")).flat_map(|l| l.bytes()).collect();
    let vals: Vec<u32> =
        body.iter().filter(|&&c| c != b'=').map(|&c| B64.iter().position(|&b| b == c).unwrap() as u32).collect();
    let mut out = Vec::new();
    for q in vals.chunks(4) {
        let n = q.iter().enumerate().fold(0u32, |n, (i, v)| n | v << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..q.len()]);
    }
    out
}

fn pem_of(der: &[u8]) -> Vec<u8> {
    let mut b64 = Vec::new();
    for t in der.chunks(3) {
        let n = t.iter().enumerate().fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            b64.push(if i <= t.len() { B64[(n >> (18 - 6 * i) & 63) as usize] } else { b'=' });
        }
    }
    let mut pem = b"-----BEGIN CERTIFICATE-----\n".to_vec();
    for line in b64.chunks(64) {
        pem.extend_from_slice(line);
        pem.push(b'\n');
    }
    pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    pem
}

/// Found by the identity fuzz target: a chain certificate whose public
/// key does not decode was taken by from_pem and refused only by
/// build().  Now from_pem refuses it, saying which certificate.
#[test]
fn a_chain_certificate_whose_key_does_not_decode_is_refused_when_given() {
    let leaf = std::fs::read(cert("chained.crt")).unwrap();
    let key = std::fs::read(cert("chained.key")).unwrap();
    let inter = std::fs::read(cert("inter.crt")).unwrap();
    assert_eq!(pem_of(&der_of(&inter)), inter, "the test's base64 round-trips");
    // rsaEncryption, NULL, then the BIT STRING holding SEQUENCE { n, e }:
    // make that SEQUENCE a SET, so the key no longer decodes.
    let mut der = der_of(&inter);
    let spki = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00, 0x03];
    let at = der.windows(spki.len()).position(|w| w == spki).expect("an RSA key") + spki.len();
    let len_bytes = if der[at] & 0x80 != 0 { 1 + (der[at] & 0x7f) as usize } else { 1 };
    let seq = at + len_bytes + 1;
    assert_eq!(der[seq], 0x30);
    der[seq] = 0x31;
    let good = Identity::from_pem(&[leaf.clone(), inter].concat(), &key, None).unwrap();
    let mut b = ConfBuilder::new(Role::Server);
    b.add_identity(good).unwrap();
    b.build().unwrap();
    let e = Identity::from_pem(&[leaf, pem_of(&der)].concat(), &key, None).err().expect("refused when given");
    assert_eq!(e.reason, COROTLS_REASON_CERT_PARSE);
    assert!(e.msg.starts_with("certificate: certificate 2 of the chain"), "{}", e.msg);
}

/// Found by the identity fuzz target: OpenSSL stops a password at a NUL,
/// so the right password followed by a NUL and anything opened the key.
#[test]
fn a_password_with_a_nul_byte_is_refused() {
    let crt = std::fs::read(cert("leaf.crt")).unwrap();
    let key = std::fs::read(cert("leaf.enc.key")).unwrap();
    Identity::from_pem(&crt, &key, Some(b"secret")).unwrap();
    for pw in [&b"secret\0"[..], b"secret\0x", b"\0"] {
        let e = Identity::from_pem(&crt, &key, Some(pw)).err().expect("refused");
        assert_eq!(e.reason, COROTLS_REASON_KEY_PASSWORD, "{e:?}");
        assert!(e.msg.contains("NUL"), "{}", e.msg);
    }
}

/// Found by the cipher_lists fuzz target: a cipher list may raise the
/// security level (`@SECLEVEL=4`: 192 bits) above what an identity
/// offers (P-256: 128 bits).  The order of the settings must not
/// matter, so the list is accepted when given and build() refuses the
/// identity, cleanly, naming it.
#[test]
fn a_security_level_above_the_identity_fails_the_build_cleanly() {
    let id = || Identity::from_files(&cert("ec.crt"), &cert("ec.key"), None).unwrap();
    let mut b = ConfBuilder::new(Role::Server);
    b.add_identity(id()).unwrap();
    b.set_ciphers("ALL:@SECLEVEL=4").unwrap();
    let e = b.build().unwrap_err();
    assert_eq!((e.code, e.reason), (crate::Code::COROTLS_ERR_ARG, COROTLS_REASON_CERT_REJECTED), "{e:?}");
    assert!(e.msg.starts_with("certificate rejected"), "{}", e.msg);
    b.set_ciphers("ALL:@SECLEVEL=3").unwrap();
    b.build().unwrap();
}
