//! A deterministic random source for OpenSSL in the fuzz processes only:
//! every input starts from the same state, so a recorded transcript
//! replays exactly (the server's random, key share and signatures are
//! what they were when `fuzz-corpus` recorded it) and a crash reproduces.
//! The certificates are made from it too, with fixed dates, so every
//! process has the same PKI.
//!
//! OpenSSL 3.0 sends every RAND_bytes / RAND_priv_bytes (key generation,
//! nonces, randoms) to a RAND_METHOD set with RAND_set_rand_method.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

#[repr(C)]
struct RandMethod {
    seed: Option<unsafe extern "C" fn(*const libc::c_void, libc::c_int) -> libc::c_int>,
    bytes: Option<unsafe extern "C" fn(*mut u8, libc::c_int) -> libc::c_int>,
    cleanup: Option<unsafe extern "C" fn()>,
    add: Option<unsafe extern "C" fn(*const libc::c_void, libc::c_int, f64) -> libc::c_int>,
    pseudorand: Option<unsafe extern "C" fn(*mut u8, libc::c_int) -> libc::c_int>,
    status: Option<unsafe extern "C" fn() -> libc::c_int>,
}

extern "C" {
    fn RAND_set_rand_method(meth: *const RandMethod) -> libc::c_int;
}

static STATE: AtomicU64 = AtomicU64::new(0);

/// splitmix64: plenty for a fuzzer; nothing here protects a secret.
fn next() -> u64 {
    let mut z = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

unsafe extern "C" fn bytes(buf: *mut u8, num: libc::c_int) -> libc::c_int {
    if num < 0 || (buf.is_null() && num > 0) {
        return 0;
    }
    // SAFETY: OpenSSL passes a buffer of `num` bytes.
    let out = unsafe { std::slice::from_raw_parts_mut(buf, num as usize) };
    for piece in out.chunks_mut(8) {
        piece.copy_from_slice(&next().to_le_bytes()[..piece.len()]);
    }
    1
}

unsafe extern "C" fn seed(_: *const libc::c_void, _: libc::c_int) -> libc::c_int {
    1
}

unsafe extern "C" fn add(_: *const libc::c_void, _: libc::c_int, _: f64) -> libc::c_int {
    1
}

unsafe extern "C" fn status() -> libc::c_int {
    1
}

static METHOD: RandMethod = RandMethod {
    seed: Some(seed),
    bytes: Some(bytes),
    cleanup: None,
    add: Some(add),
    pseudorand: Some(bytes),
    status: Some(status),
};

/// Install the method (once) and start the stream at `state`.
pub fn reset(state: u64) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        openssl_sys::init();
        // SAFETY: a static method table that lives for the process.
        assert_eq!(unsafe { RAND_set_rand_method(&METHOD) }, 1, "RAND_set_rand_method");
    });
    STATE.store(state, Ordering::Relaxed);
}

/// Where the stream is now (to switch between two sides' streams).
pub fn state() -> u64 {
    STATE.load(Ordering::Relaxed)
}

/// Run `f` on the stream saved in `*saved`, and save where it ended: each
/// side of a recorded handshake draws from its own stream, as it does when
/// a target replays that side alone.
pub fn on_stream<T>(saved: &mut u64, f: impl FnOnce() -> T) -> T {
    reset(*saved);
    let r = f();
    *saved = state();
    r
}
