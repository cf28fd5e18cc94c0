//! Shared parts of the corotls fuzz targets: test certificates made in code
//! at start-up, the confs every target uses, an in-memory handshake, and the
//! small program reader the structure-aware targets interpret.
//!
//! Nothing here is checked in as data: the CA, the server and the client
//! identities are new EC P-256 keys for every process.

pub mod certs;
pub mod melon;
pub mod peer;
pub mod rng;
pub mod silly;

use corotls::{Conf, ConfBuilder, Identity, Role, Session, Verify, Version};
use std::cell::RefCell;

/// The server name the certificates are made for.
pub const HOST: &str = "localhost";

/// Conf variants the targets pick from with a byte of their input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Variant {
    /// TLS 1.2 only (else 1.2 and 1.3).
    pub tls12: bool,
    /// The server requires a client certificate (and the client has one).
    pub client_cert: bool,
    /// Both sides configure ALPN.
    pub alpn: bool,
}

impl Variant {
    pub fn from_byte(b: u8) -> Variant {
        Variant { tls12: b & 1 != 0, client_cert: b & 2 != 0, alpn: b & 4 != 0 }
    }
    fn index(self) -> usize {
        self.tls12 as usize | (self.client_cert as usize) << 1 | (self.alpn as usize) << 2
    }
}

fn build(role: Role, v: Variant) -> Conf {
    let pki = certs::pki();
    let mut b = ConfBuilder::new(role);
    if v.tls12 {
        b.set_versions(Version::Tls12, Version::Tls12).unwrap();
    }
    if v.alpn {
        b.set_alpn_names([&b"h2"[..], b"http/1.1"]).unwrap();
    }
    match role {
        Role::Server => {
            b.add_identity(Identity::from_pem(&pki.server_cert, &pki.server_key, None).unwrap()).unwrap();
            if v.client_cert {
                b.add_ca_pem(&pki.ca_cert).unwrap();
                b.set_verify(Verify::Require);
            }
        }
        Role::Client => {
            b.add_ca_pem(&pki.ca_cert).unwrap();
            if v.client_cert {
                b.add_identity(Identity::from_pem(&pki.client_cert, &pki.client_key, None).unwrap()).unwrap();
            }
        }
    }
    b.build().unwrap()
}

thread_local! {
    static CONFS: RefCell<[Option<(Conf, Conf)>; 8]> = const { RefCell::new([const { None }; 8]) };
}

/// The (server, client) confs of a variant, built once per thread.
pub fn confs(v: Variant) -> (Conf, Conf) {
    CONFS.with(|c| {
        c.borrow_mut()[v.index()].get_or_insert_with(|| (build(Role::Server, v), build(Role::Client, v))).clone()
    })
}

/// What every input starts with: the PKI and every conf variant made
/// (once, in a fixed order), then the random stream at its start, so that
/// the same input always does the same thing and recorded transcripts
/// replay.
pub fn start() {
    thread_local! {
        static READY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !READY.with(|r| r.replace(true)) {
        certs::pki();
        rng::reset(1);
        for b in 0..8 {
            confs(Variant::from_byte(b));
        }
    }
    rng::reset(INPUT_STREAM);
}

/// Where the random stream of every input starts.
pub const INPUT_STREAM: u64 = 2;

/// A server session and a client session (SNI and name check: `HOST`).
pub fn pair(v: Variant) -> (Session, Session) {
    let (sc, cc) = confs(v);
    let server = Session::new(&sc).unwrap();
    let mut client = Session::new(&cc).unwrap();
    client.set_sni(HOST.as_bytes()).unwrap();
    (server, client)
}

/// Everything `s` has produced, taken out.
pub fn drain(s: &mut Session) -> Vec<u8> {
    let mut v = vec![0; s.out_pending()];
    let n = s.out_read(&mut v);
    v.truncate(n);
    v
}

/// Drive both handshakes to the end, moving every flight unchanged.
/// Panics if they do not finish: the targets start from real handshakes.
pub fn handshake(server: &mut Session, client: &mut Session) {
    for _ in 0..16 {
        let c = client.handshake();
        let out = drain(client);
        server.feed(&out).unwrap();
        let s = server.handshake();
        let out = drain(server);
        client.feed(&out).unwrap();
        if c.is_ok() && s.is_ok() && client.handshake().is_ok() {
            return;
        }
    }
    panic!("the in-memory handshake did not finish");
}

/// Reads a fuzz input as a small program: bytes, lengths and slices, with
/// zeros once the input is used up (so every input is a valid program).
pub struct Prog<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Prog<'a> {
    pub fn new(data: &'a [u8]) -> Prog<'a> {
        Prog { data, pos: 0 }
    }
    pub fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    /// A 16-bit big-endian length.
    pub fn len16(&mut self) -> usize {
        (self.byte() as usize) << 8 | self.byte() as usize
    }
    /// The next `n` bytes (fewer at the end of the input).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = start.saturating_add(n);
        &self.data[start..end]
    }
    /// A slice whose length is given by the next two bytes.
    pub fn chunk(&mut self) -> &'a [u8] {
        let n = self.len16();
        self.take(n)
    }
    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let n = self.data.len().saturating_sub(self.pos);
        self.take(n)
    }
}

/// Change a flight the way an active attacker or a bad link would: flip a
/// byte, cut it short, insert, overwrite or drop bytes, duplicate it.
pub fn mutate(flight: &mut Vec<u8>, p: &mut Prog) {
    let how = p.byte() % 6;
    let at = if flight.is_empty() { 0 } else { p.len16() % flight.len() };
    match how {
        0 => {
            let x = p.byte().max(1);
            if let Some(b) = flight.get_mut(at) {
                *b ^= x;
            }
        }
        1 => flight.truncate(at),
        2 => {
            let ins = p.chunk().to_vec();
            flight.splice(at..at, ins);
        }
        3 => {
            let over = p.chunk();
            for (i, b) in over.iter().enumerate() {
                if let Some(d) = flight.get_mut(at + i) {
                    *d = *b;
                }
            }
        }
        4 => {
            let n = p.byte() as usize;
            let end = (at + n).min(flight.len());
            flight.drain(at..end);
        }
        _ => {
            let copy = flight.clone();
            flight.extend_from_slice(&copy);
        }
    }
}
