//! The ALPN wire-format parser (`ossl::check_alpn_wire`), the name-list
//! builder, the conf and session setters that use them, and, for valid
//! lists, a real handshake in which the client offers the list and the
//! server selects from its own.
//!
//! Input: a selector byte, then the wire bytes.
//! Oracle: the parser agrees with a reference reading of RFC 7301 (each
//! name 1..=255 bytes, no NUL, lengths that end exactly at the end, total
//! at most 65535); names round-trip; the setters accept exactly what the
//! parser accepts; a negotiated protocol is the first of the server's list
//! that the client offered (server preference), or none.
#![no_main]
use corotls::ossl::{alpn_wire_from_names, check_alpn_wire};
use corotls::{ConfBuilder, Role};
use corotls_fuzz::{drain, handshake, pair, Prog, Variant, HOST};
use libfuzzer_sys::fuzz_target;

/// The names of a valid list, or None.
fn reference(wire: &[u8]) -> Option<Vec<&[u8]>> {
    if wire.is_empty() || wire.len() > 65535 {
        return None;
    }
    let mut names = Vec::new();
    let mut rest = wire;
    while let Some((&n, tail)) = rest.split_first() {
        let n = n as usize;
        if n == 0 || tail.len() < n || tail[..n].contains(&0) {
            return None;
        }
        names.push(&tail[..n]);
        rest = &tail[n..];
    }
    Some(names)
}

fuzz_target!(|data: &[u8]| {
    corotls_fuzz::start();
    let mut p = Prog::new(data);
    let sel = p.byte();
    let wire = p.rest();
    let names = reference(wire);
    assert_eq!(check_alpn_wire(wire).is_ok(), names.is_some(), "check_alpn_wire disagrees with RFC 7301");
    if let Some(names) = &names {
        assert_eq!(alpn_wire_from_names(names.iter().copied()).unwrap(), wire, "names do not round-trip");
    }
    let mut b = ConfBuilder::new(Role::Client);
    assert_eq!(b.set_alpn_wire(wire).is_ok(), names.is_some());
    // The same bytes split at ',' as a list of names.
    let split: Vec<&[u8]> = wire.split(|&c| c == b',').collect();
    if let Ok(w) = alpn_wire_from_names(split.iter().copied()) {
        assert!(check_alpn_wire(&w).is_ok());
    }

    let Some(offer) = names else { return };
    if sel & 1 == 0 {
        return;
    }
    // A real handshake: the client offers `wire`, the server (variant with
    // ALPN: h2, http/1.1) picks.
    let v = Variant { tls12: sel & 2 != 0, client_cert: false, alpn: true };
    let (mut server, mut client) = pair(v);
    client.set_alpn_wire(wire).unwrap();
    handshake(&mut server, &mut client);
    drain(&mut client);
    let got = server.info().alpn.as_bytes().to_vec();
    let want = [&b"h2"[..], b"http/1.1"].into_iter().find(|n| offer.contains(n)).unwrap_or(b"");
    assert_eq!(got, want, "server preference");
    assert_eq!(client.info().alpn.as_bytes(), want);
    let _ = HOST;
});
