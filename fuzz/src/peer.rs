//! A program of operations between an endpoint under test and a real
//! corotls peer: real flights, flights the attacker changed, raw bytes, and
//! the endpoint's own calls in any order.  `handshake_mutate`, `melon` and
//! `silly` run it, each with its own endpoint.
//!
//! Program bytes (see `Prog`): an operation byte, then its arguments.
//! `fuzz-corpus` writes programs of real handshakes in this encoding.

use crate::{drain, mutate, Prog};
use corotls::Session;

/// What the program may do to the side under test.
pub trait Endpoint {
    /// Ciphertext arrives from the network.
    fn deliver(&mut self, ct: &[u8]);
    /// Ciphertext the endpoint has sent since the last call.
    fn collect(&mut self) -> Vec<u8>;
    /// One call of the endpoint's API, chosen by `op`, with `data` for
    /// writes and `arg` for sizes and delimiters.
    fn call(&mut self, op: u8, arg: u8, data: &[u8]);
}

/// Operation bytes (`op % OPS`).
pub const PEER_TO_ENDPOINT: u8 = 0;
pub const PEER_TO_ENDPOINT_MUTATED: u8 = 1;
pub const RAW_TO_ENDPOINT: u8 = 2;
pub const ENDPOINT_CALL: u8 = 3;
pub const ENDPOINT_TO_PEER: u8 = 4;
pub const PEER_WRITE: u8 = 5;
pub const PEER_SHUTDOWN: u8 = 6;
pub const ENDPOINT_TO_PEER_MUTATED: u8 = 7;
pub const OPS: u8 = 8;

/// At most this many operations per input (each is bounded too), so every
/// input ends quickly.
pub const MAX_OPS: usize = 256;

/// Let the peer do what it can now: its handshake, else its reads.
fn peer_step(peer: &mut Session) {
    if !peer.handshake_done() {
        let _ = peer.handshake();
    } else {
        let _ = peer.fill_plain();
        let n = peer.plain().len();
        peer.consume(n);
    }
}

/// Run the program in `p` between `ep` and `peer`.
pub fn run(ep: &mut dyn Endpoint, peer: &mut Session, p: &mut Prog) {
    for _ in 0..MAX_OPS {
        if p.done() {
            break;
        }
        let op = p.byte() % OPS;
        match op {
            PEER_TO_ENDPOINT => {
                peer_step(peer);
                ep.deliver(&drain(peer));
            }
            PEER_TO_ENDPOINT_MUTATED => {
                peer_step(peer);
                let mut f = drain(peer);
                mutate(&mut f, p);
                ep.deliver(&f);
            }
            RAW_TO_ENDPOINT => {
                let raw = p.chunk();
                ep.deliver(raw);
            }
            ENDPOINT_CALL => {
                let (op, arg) = (p.byte(), p.byte());
                let data = if op % 8 == 2 { p.chunk() } else { &[] };
                ep.call(op, arg, data);
            }
            ENDPOINT_TO_PEER | ENDPOINT_TO_PEER_MUTATED => {
                let mut f = ep.collect();
                if op == ENDPOINT_TO_PEER_MUTATED {
                    mutate(&mut f, p);
                }
                let _ = peer.feed(&f);
                peer_step(peer);
            }
            PEER_WRITE => {
                let data = p.chunk();
                if peer.handshake_done() && !data.is_empty() {
                    let _ = peer.write(data);
                }
            }
            _ => {
                let _ = peer.shutdown();
            }
        }
    }
}

/// A corotls session as the side under test (`handshake_mutate`).
pub struct Side(pub Session);

impl Endpoint for Side {
    fn deliver(&mut self, ct: &[u8]) {
        let _ = self.0.feed(ct);
    }
    fn collect(&mut self) -> Vec<u8> {
        drain(&mut self.0)
    }
    fn call(&mut self, op: u8, arg: u8, data: &[u8]) {
        let s = &mut self.0;
        match op % 8 {
            0 => {
                let _ = s.handshake();
            }
            1 => {
                let _ = s.fill_plain();
                let n = s.plain().len().min(arg as usize * 64);
                s.consume(n);
            }
            2 => {
                let _ = s.write(data);
            }
            3 => {
                let _ = s.shutdown();
            }
            4 => s.feed_eof(),
            _ => {
                let mut buf = vec![0u8; 1 + arg as usize];
                let _ = s.read(&mut buf);
            }
        }
    }
}
