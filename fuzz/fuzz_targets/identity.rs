//! Identity, key and trust loading (PEM in memory, CA file) from
//! arbitrary bytes: PEM text as given,
//! or DER bytes inside PEM armour (so OpenSSL's DER decoders see arbitrary
//! input), keys encrypted or not, with or without a password; the real
//! certificate or key on the other side, so the key-match check runs too.
//!
//! Input: a selector byte, a password (length byte, bytes), then the
//! bytes.  Seeds (`make fuzz-corpus`): the fuzz PKI as PEM and DER, an
//! encrypted key (password `fuzz-password`).
//! Oracle: no crash or leak; only the real pair loads, with every chain
//! key decodable, and builds (a certificate may be refused only by the
//! security level: a weak key or signature digest); only the right
//! password opens the encrypted key; a CA that loads gives a conf that
//! builds.
#![no_main]
use corotls::error::Reason;
use corotls::ossl::public_key_decodes;
use corotls::{ConfBuilder, Identity, Role};
use corotls_fuzz::certs::pki;
use corotls_fuzz::Prog;
use libfuzzer_sys::fuzz_target;

const LABELS: [&str; 6] =
    ["CERTIFICATE", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "X509 CRL"];

/// DER bytes in PEM armour with `label` (and, for the legacy encrypted
/// form, the Proc-Type and DEK-Info headers).
fn armour(der: &[u8], label: &str, legacy_encrypted: bool) -> Vec<u8> {
    let mut pem = format!("-----BEGIN {label}-----\n");
    if legacy_encrypted {
        pem.push_str("Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\n");
    }
    let b64 = openssl::base64::encode_block(der);
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem.into_bytes()
}

fuzz_target!(|data: &[u8]| {
    corotls_fuzz::start();
    let mut p = Prog::new(data);
    let sel = p.byte();
    let pw_len = p.byte() as usize;
    let password = p.take(pw_len % 64);
    let password = if sel & 0x80 != 0 { Some(password) } else { None };
    let raw = p.rest();
    let label = LABELS[(sel as usize >> 3) % LABELS.len()];
    let bytes = if sel & 0x40 != 0 { armour(raw, label, sel & 0x20 != 0) } else { raw.to_vec() };
    let real = pki();
    let id = match sel & 7 {
        // The bytes as the certificate (chain), the real key.
        0 => Some(Identity::from_pem(&bytes, &real.server_key, None)),
        // The real certificate, the bytes as the key.
        1 => Some(Identity::from_pem(&real.server_cert, &bytes, password)),
        // The real certificate, the bytes as an encrypted key's password:
        // only the right password opens the key.
        2 => {
            let id = Identity::from_pem(&real.server_cert, &real.server_key_encrypted, Some(raw));
            assert_eq!(id.is_ok(), raw == corotls_fuzz::certs::PASSWORD, "password check");
            Some(id)
        }
        // Both halves from the bytes, split in the middle.
        3 => {
            let (c, k) = bytes.split_at(bytes.len() / 2);
            Some(Identity::from_pem(c, k, password))
        }
        _ => None,
    };
    if let Some(Ok(id)) = id {
        // Only the real pair can match: a forged key for the real
        // certificate, or a certificate for the real key, is impossible.
        // Every certificate of a loaded chain has a key that decodes (a
        // finding: fuzz/regressions/identity/chain-cert-key-does-not-decode),
        // so build() can refuse a certificate only for the strength of its
        // key or of its signature's digest (an unknown signature algorithm
        // has none: identity/leaf-signature-algorithm-unknown), which the
        // security level decides; the cipher list may change that level,
        // before or after the identity is added.
        assert!(id.chain.iter().all(public_key_decodes), "a chain certificate whose key does not decode was loaded");
        let mut b = ConfBuilder::new(Role::Server);
        b.add_identity(id).unwrap();
        if let Err(e) = b.build() {
            let security_level =
                [Reason::COROTLS_REASON_CERT_REJECTED, Reason::COROTLS_REASON_CHAIN_CERT_REJECTED].contains(&e.reason);
            assert!(security_level, "a loaded identity does not build: {e:?}");
        }
    }
    if sel & 7 >= 4 {
        // The bytes as trust anchors: a PEM CA bundle in memory, or a CA
        // file (read, then parsed like the bundle).
        let mut b = ConfBuilder::new(Role::Client);
        let loaded = if sel & 7 == 5 {
            let path = std::env::temp_dir().join(format!("corotls-fuzz-ca-{}.pem", std::process::id()));
            std::fs::write(&path, &bytes).unwrap();
            let r = b.add_ca_file(&path);
            std::fs::remove_file(&path).unwrap();
            r
        } else {
            b.add_ca_pem(&bytes)
        };
        if loaded.is_ok() {
            b.build().expect("a client conf with loaded trust builds");
        }
    }
});
