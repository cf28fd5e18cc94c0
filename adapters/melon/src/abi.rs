//! The Melon ABI (spec melon.md §2): `#[repr(C)]` mirrors of the structs the
//! host and this library share, checked at compile time, plus the bitfield
//! accessors and the layout report that c_tests/melon_layout.c compares with
//! what the C compiler measures.
//!
//! Bitfields live in 32-bit storage units that callers may leave
//! uninitialised (stack structs).  A bit is read by masking its unit and
//! written by read-modify-write of that unit only; whole units are never
//! compared.

use libc::{c_char, c_int, c_ulong, c_void, off_t};
use openssl_sys::{SSL, SSL_CTX};
use std::mem::{offset_of, size_of};
use std::ptr::{self, addr_of, addr_of_mut};

/// Melon's pool allocator, opaque here.
#[repr(C)]
pub struct MlnAlloc {
    _opaque: [u8; 0],
}

/// `mln_string_t`, 24 bytes.
#[repr(C)]
pub struct MlnString {
    pub data: *mut u8,
    pub len: u64,
    /// bit 0 `data_ref`, bit 1 `pool`, bits 2..31 `ref`.
    pub bits: c_ulong,
}

pub const STR_DATA_REF: c_ulong = 1 << 0;
pub const STR_POOL: c_ulong = 1 << 1;
pub const STR_REF_SHIFT: u32 = 2;
pub const STR_REF_MASK: c_ulong = ((1 << 30) - 1) << STR_REF_SHIFT;

/// The prefix of `mln_file_t` (80 bytes) up to `fd`, the only field read.
#[repr(C)]
pub struct MlnFile {
    _prev: *mut c_void,
    _next: *mut c_void,
    pub fd: c_int,
}

/// `mln_buf_t`, 88 bytes.
#[repr(C)]
pub struct MlnBuf {
    pub left_pos: *mut u8,
    pub pos: *mut u8,
    pub last: *mut u8,
    pub start: *mut u8,
    pub end: *mut u8,
    pub shadow: *mut MlnBuf,
    pub file_left_pos: off_t,
    pub file_pos: off_t,
    pub file_last: off_t,
    pub file: *mut MlnFile,
    pub flags: u32,
    _pad: u32,
}

pub const BUF_TEMPORARY: u32 = 1 << 0;
pub const BUF_MMAP: u32 = 1 << 1;
pub const BUF_IN_MEMORY: u32 = 1 << 2;
pub const BUF_IN_FILE: u32 = 1 << 3;
pub const BUF_FLUSH: u32 = 1 << 4;
pub const BUF_SYNC: u32 = 1 << 5;
pub const BUF_LAST_BUF: u32 = 1 << 6;
pub const BUF_LAST_IN_CHAIN: u32 = 1 << 7;

/// `mln_chain_t`, 16 bytes.
#[repr(C)]
pub struct MlnChain {
    pub buf: *mut MlnBuf,
    pub next: *mut MlnChain,
}

/// `mln_tcp_conn_t` in the MLN_TLS build, 112 bytes.
#[repr(C)]
pub struct TcpConn {
    pub pool: *mut MlnAlloc,
    pub rcv_head: *mut MlnChain,
    pub rcv_tail: *mut MlnChain,
    pub snd_head: *mut MlnChain,
    pub snd_tail: *mut MlnChain,
    pub sent_head: *mut MlnChain,
    pub sent_tail: *mut MlnChain,
    pub sockfd: c_int,
    /// bit 0 `nonblock`.
    pub nb_bits: u32,
    pub ssl: *mut SSL,
    pub tls_conf: *mut TlsConf,
    pub tls_pending: *mut u8,
    pub tls_pending_off: usize,
    pub tls_pending_len: usize,
    /// bit 0 `tls_done`, bit 1 `tls_want_r`, bit 2 `tls_want_w`, bit 3 `tls_shut`.
    pub tls_bits: u32,
    _pad: u32,
}

pub const CONN_NONBLOCK: u32 = 1 << 0;
pub const TLS_DONE: u32 = 1 << 0;
pub const TLS_WANT_R: u32 = 1 << 1;
pub const TLS_WANT_W: u32 = 1 << 2;
pub const TLS_SHUT: u32 = 1 << 3;

/// `mln_tcp_tls_conf_t`, 48 bytes.
#[repr(C)]
pub struct TlsConf {
    pub ctx: *mut SSL_CTX,
    pub cert_file: *mut MlnString,
    pub key_file: *mut MlnString,
    pub ca_file: *mut MlnString,
    pub ciphers: *mut MlnString,
    pub versions: u32,
    /// bit 0 `role`, bit 1 `verify`.
    pub bits: u32,
}

pub const CONF_ROLE: u32 = 1 << 0;
pub const CONF_VERIFY: u32 = 1 << 1;

// ----- compile-time proof of spec §2 ------------------------------------

macro_rules! assert_layout {
    ($t:ty, $size:expr, $($f:ident = $off:expr),* $(,)?) => {
        const _: () = assert!(size_of::<$t>() == $size);
        $(const _: () = assert!(offset_of!($t, $f) == $off);)*
    };
}

assert_layout!(MlnString, 24, data = 0, len = 8, bits = 16);
assert_layout!(MlnFile, 24, fd = 16);
assert_layout!(
    MlnBuf,
    88,
    left_pos = 0,
    pos = 8,
    last = 16,
    start = 24,
    end = 32,
    shadow = 40,
    file_left_pos = 48,
    file_pos = 56,
    file_last = 64,
    file = 72,
    flags = 80
);
assert_layout!(MlnChain, 16, buf = 0, next = 8);
assert_layout!(
    TcpConn,
    112,
    pool = 0,
    rcv_head = 8,
    rcv_tail = 16,
    snd_head = 24,
    snd_tail = 32,
    sent_head = 40,
    sent_tail = 48,
    sockfd = 56,
    nb_bits = 60,
    ssl = 64,
    tls_conf = 72,
    tls_pending = 80,
    tls_pending_off = 88,
    tls_pending_len = 96,
    tls_bits = 104
);
assert_layout!(
    TlsConf,
    48,
    ctx = 0,
    cert_file = 8,
    key_file = 16,
    ca_file = 24,
    ciphers = 32,
    versions = 40,
    bits = 44
);
const _: () = assert!(std::mem::align_of::<TcpConn>() == 8);
const _: () = assert!(size_of::<off_t>() == 8);

// ----- bitfield units ---------------------------------------------------

/// Read one bit of a storage unit.
///
/// # Safety
/// `unit` points into a live struct of the host.
#[inline]
pub unsafe fn bit(unit: *const u32, mask: u32) -> bool {
    ptr::read(unit) & mask != 0
}

/// Set or clear the bits of `mask`, preserving every other bit.
///
/// # Safety
/// `unit` points into a live struct of the host.
#[inline]
pub unsafe fn set_bits(unit: *mut u32, mask: u32, on: bool) {
    let v = ptr::read(unit);
    ptr::write(unit, if on { v | mask } else { v & !mask });
}

// Typed helpers for the fields this library reads and writes most.

impl TcpConn {
    /// # Safety
    /// `tc` points to a live connection struct.
    pub unsafe fn flag(tc: *const TcpConn, mask: u32) -> bool {
        bit(addr_of!((*tc).tls_bits), mask)
    }
    /// # Safety
    /// As `flag`.
    pub unsafe fn set_flag(tc: *mut TcpConn, mask: u32, on: bool) {
        set_bits(addr_of_mut!((*tc).tls_bits), mask, on)
    }
    /// `tls_want_r = tls_want_w = 0`.
    ///
    /// # Safety
    /// As `flag`.
    pub unsafe fn clear_wants(tc: *mut TcpConn) {
        set_bits(addr_of_mut!((*tc).tls_bits), TLS_WANT_R | TLS_WANT_W, false)
    }
    /// # Safety
    /// As `flag`.
    pub unsafe fn nonblock(tc: *const TcpConn) -> bool {
        bit(addr_of!((*tc).nb_bits), CONN_NONBLOCK)
    }
    /// # Safety
    /// As `flag`.
    pub unsafe fn set_nonblock_bit(tc: *mut TcpConn, on: bool) {
        set_bits(addr_of_mut!((*tc).nb_bits), CONN_NONBLOCK, on)
    }
}

impl MlnBuf {
    /// # Safety
    /// `b` points to a live buf.
    pub unsafe fn has(b: *const MlnBuf, mask: u32) -> bool {
        bit(addr_of!((*b).flags), mask)
    }
    /// Make `b` the window on `n` received bytes at `p` (a pool block):
    /// `start=pos=left_pos=p`, `last=end=p+n`, `in_memory`, `last_buf`.
    ///
    /// # Safety
    /// `b` points to a live buf; `p` is valid for `n` bytes.
    pub unsafe fn set_received(b: *mut MlnBuf, p: *mut u8, n: usize) {
        (*b).start = p;
        (*b).pos = p;
        (*b).left_pos = p;
        (*b).last = p.add(n);
        (*b).end = (*b).last;
        set_bits(addr_of_mut!((*b).flags), BUF_IN_MEMORY | BUF_LAST_BUF, true);
    }

    /// `mln_buf_left_size`: bytes still to be consumed (0 for NULL).
    ///
    /// # Safety
    /// `b` is NULL or points to a live buf.
    pub unsafe fn left_size(b: *const MlnBuf) -> usize {
        if b.is_null() {
            return 0;
        }
        if MlnBuf::has(b, BUF_IN_FILE) {
            span((*b).file_left_pos as i128, (*b).file_last as i128)
        } else {
            MlnBuf::mem_left(b)
        }
    }

    /// `last - left_pos`: the bytes in memory from `left_pos` on.
    ///
    /// # Safety
    /// `b` points to a live buf.
    unsafe fn mem_left(b: *const MlnBuf) -> usize {
        span((*b).left_pos as usize as i128, (*b).last as usize as i128)
    }

    /// What the send paths may still take from `b`: `left_size`, but for an
    /// `in_memory` buf never more than `last - left_pos`, the bytes actually
    /// there.  The two differ only for a malformed buf that is also
    /// `in_file` (then `left_size` counts file offsets); the memory path
    /// reads from `left_pos` and must not run past `last`.
    ///
    /// # Safety
    /// As `left_size`.
    pub unsafe fn send_left(b: *const MlnBuf) -> usize {
        let left = MlnBuf::left_size(b);
        if left == 0 || !MlnBuf::has(b, BUF_IN_MEMORY) {
            return left;
        }
        left.min(MlnBuf::mem_left(b))
    }
}

/// `to - from`; a window that runs backwards is empty, never huge.
fn span(from: i128, to: i128) -> usize {
    (to - from).clamp(0, isize::MAX as i128) as usize
}

// ----- layout report (c_tests/melon_layout.c) ---------------------------

#[repr(C)]
pub struct LayoutItem {
    pub name: *const c_char,
    pub value: c_ulong,
}

// SAFETY: the items point only at static string literals.
unsafe impl Sync for LayoutItem {}

macro_rules! item {
    ($name:literal, $v:expr) => {
        LayoutItem { name: concat!($name, "\0").as_ptr() as *const c_char, value: ($v) as c_ulong }
    };
}

/// Absolute bit position (byte offset * 8 + bit) of a one-bit mask.
const fn bitpos(off: usize, mask: u32) -> usize {
    off * 8 + mask.trailing_zeros() as usize
}

/// What this crate uses, named as layout_check.h names the C measurements.
pub static LAYOUT: &[LayoutItem] = &[
    item!("mln_tcp_conn_t.sizeof", size_of::<TcpConn>()),
    item!("mln_tcp_conn_t.pool", offset_of!(TcpConn, pool)),
    item!("mln_tcp_conn_t.rcv_head", offset_of!(TcpConn, rcv_head)),
    item!("mln_tcp_conn_t.rcv_tail", offset_of!(TcpConn, rcv_tail)),
    item!("mln_tcp_conn_t.snd_head", offset_of!(TcpConn, snd_head)),
    item!("mln_tcp_conn_t.snd_tail", offset_of!(TcpConn, snd_tail)),
    item!("mln_tcp_conn_t.sent_head", offset_of!(TcpConn, sent_head)),
    item!("mln_tcp_conn_t.sent_tail", offset_of!(TcpConn, sent_tail)),
    item!("mln_tcp_conn_t.sockfd", offset_of!(TcpConn, sockfd)),
    item!("mln_tcp_conn_t.nonblock@bit", bitpos(offset_of!(TcpConn, nb_bits), CONN_NONBLOCK)),
    item!("mln_tcp_conn_t.nonblock@width", 1),
    item!("mln_tcp_conn_t.ssl", offset_of!(TcpConn, ssl)),
    item!("mln_tcp_conn_t.tls_conf", offset_of!(TcpConn, tls_conf)),
    item!("mln_tcp_conn_t.tls_pending", offset_of!(TcpConn, tls_pending)),
    item!("mln_tcp_conn_t.tls_pending_off", offset_of!(TcpConn, tls_pending_off)),
    item!("mln_tcp_conn_t.tls_pending_len", offset_of!(TcpConn, tls_pending_len)),
    item!("mln_tcp_conn_t.tls_done@bit", bitpos(offset_of!(TcpConn, tls_bits), TLS_DONE)),
    item!("mln_tcp_conn_t.tls_done@width", 1),
    item!("mln_tcp_conn_t.tls_want_r@bit", bitpos(offset_of!(TcpConn, tls_bits), TLS_WANT_R)),
    item!("mln_tcp_conn_t.tls_want_r@width", 1),
    item!("mln_tcp_conn_t.tls_want_w@bit", bitpos(offset_of!(TcpConn, tls_bits), TLS_WANT_W)),
    item!("mln_tcp_conn_t.tls_want_w@width", 1),
    item!("mln_tcp_conn_t.tls_shut@bit", bitpos(offset_of!(TcpConn, tls_bits), TLS_SHUT)),
    item!("mln_tcp_conn_t.tls_shut@width", 1),
    item!("mln_tcp_tls_conf_t.sizeof", size_of::<TlsConf>()),
    item!("mln_tcp_tls_conf_t.ctx", offset_of!(TlsConf, ctx)),
    item!("mln_tcp_tls_conf_t.cert_file", offset_of!(TlsConf, cert_file)),
    item!("mln_tcp_tls_conf_t.key_file", offset_of!(TlsConf, key_file)),
    item!("mln_tcp_tls_conf_t.ca_file", offset_of!(TlsConf, ca_file)),
    item!("mln_tcp_tls_conf_t.ciphers", offset_of!(TlsConf, ciphers)),
    item!("mln_tcp_tls_conf_t.versions", offset_of!(TlsConf, versions)),
    item!("mln_tcp_tls_conf_t.role@bit", bitpos(offset_of!(TlsConf, bits), CONF_ROLE)),
    item!("mln_tcp_tls_conf_t.role@width", 1),
    item!("mln_tcp_tls_conf_t.verify@bit", bitpos(offset_of!(TlsConf, bits), CONF_VERIFY)),
    item!("mln_tcp_tls_conf_t.verify@width", 1),
    item!("mln_buf_t.sizeof", size_of::<MlnBuf>()),
    item!("mln_buf_t.left_pos", offset_of!(MlnBuf, left_pos)),
    item!("mln_buf_t.pos", offset_of!(MlnBuf, pos)),
    item!("mln_buf_t.last", offset_of!(MlnBuf, last)),
    item!("mln_buf_t.start", offset_of!(MlnBuf, start)),
    item!("mln_buf_t.end", offset_of!(MlnBuf, end)),
    item!("mln_buf_t.shadow", offset_of!(MlnBuf, shadow)),
    item!("mln_buf_t.file_left_pos", offset_of!(MlnBuf, file_left_pos)),
    item!("mln_buf_t.file_pos", offset_of!(MlnBuf, file_pos)),
    item!("mln_buf_t.file_last", offset_of!(MlnBuf, file_last)),
    item!("mln_buf_t.file", offset_of!(MlnBuf, file)),
    item!("mln_buf_t.temporary@bit", bitpos(offset_of!(MlnBuf, flags), BUF_TEMPORARY)),
    item!("mln_buf_t.temporary@width", 1),
    item!("mln_buf_t.mmap@bit", bitpos(offset_of!(MlnBuf, flags), BUF_MMAP)),
    item!("mln_buf_t.mmap@width", 1),
    item!("mln_buf_t.in_memory@bit", bitpos(offset_of!(MlnBuf, flags), BUF_IN_MEMORY)),
    item!("mln_buf_t.in_memory@width", 1),
    item!("mln_buf_t.in_file@bit", bitpos(offset_of!(MlnBuf, flags), BUF_IN_FILE)),
    item!("mln_buf_t.in_file@width", 1),
    item!("mln_buf_t.flush@bit", bitpos(offset_of!(MlnBuf, flags), BUF_FLUSH)),
    item!("mln_buf_t.flush@width", 1),
    item!("mln_buf_t.sync@bit", bitpos(offset_of!(MlnBuf, flags), BUF_SYNC)),
    item!("mln_buf_t.sync@width", 1),
    item!("mln_buf_t.last_buf@bit", bitpos(offset_of!(MlnBuf, flags), BUF_LAST_BUF)),
    item!("mln_buf_t.last_buf@width", 1),
    item!("mln_buf_t.last_in_chain@bit", bitpos(offset_of!(MlnBuf, flags), BUF_LAST_IN_CHAIN)),
    item!("mln_buf_t.last_in_chain@width", 1),
    item!("mln_chain_t.sizeof", size_of::<MlnChain>()),
    item!("mln_chain_t.buf", offset_of!(MlnChain, buf)),
    item!("mln_chain_t.next", offset_of!(MlnChain, next)),
    item!("mln_string_t.sizeof", size_of::<MlnString>()),
    item!("mln_string_t.data", offset_of!(MlnString, data)),
    item!("mln_string_t.len", offset_of!(MlnString, len)),
    item!("mln_string_t.data_ref@bit", bitpos(offset_of!(MlnString, bits), STR_DATA_REF as u32)),
    item!("mln_string_t.data_ref@width", 1),
    item!("mln_string_t.pool@bit", bitpos(offset_of!(MlnString, bits), STR_POOL as u32)),
    item!("mln_string_t.pool@width", 1),
    item!("mln_string_t.ref@bit", offset_of!(MlnString, bits) * 8 + STR_REF_SHIFT as usize),
    item!("mln_string_t.ref@width", STR_REF_MASK.count_ones()),
    item!("mln_file_t.fd", offset_of!(MlnFile, fd)),
];
