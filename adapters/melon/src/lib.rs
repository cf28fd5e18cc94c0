//! corotls' Melon face: libcorotls_melon.so, a drop-in for the TLS build of
//! Melon's connection module (`mln_connection.h` with `MLN_TLS`), over the
//! corotls engine.  The contract is spec/melon.md; the header is
//! include/melon/mln_connection.h.
//!
//! Exports: the 14 functions of stock `mln_connection.o`, the 7 TLS
//! functions, the two legacy no-ops, and `corotls_melon_layout_report`.
//! Imports: `mln_alloc_*`, `mln_chain_pool_release[_all]` and
//! `mln_file_tmp_open` from the host (see `host`), so this library is loaded
//! by a Melon host that links it ahead of Melon, never on its own.
//!
//! Every export catches panics (none is expected) and turns them into the
//! function's failure value; C never sees an unwind.

mod abi;
mod conf;
mod host;
mod plain;
mod queue;
mod tls;

use abi::*;
use corotls::session::HostSsl;
use corotls::Role;
use host::set_errno;
use libc::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{self, addr_of_mut};

pub const M_C_FINISH: i32 = 1;
pub const M_C_NOTYET: i32 = 2;
pub const M_C_ERROR: i32 = 3;
pub const M_C_CLOSED: i32 = 4;

/// Run an export's body; a panic becomes `fail` (with errno EFAULT).
fn guard<R: Copy>(fail: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            set_errno(libc::EFAULT);
            fail
        }
    }
}

/// O_NONBLOCK of `fd`; false for fd < 0 or a failing fcntl.
fn fd_is_nonblock(fd: c_int) -> bool {
    if fd < 0 {
        return false;
    }
    // SAFETY: F_GETFL takes no pointer.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL, 0) };
    fl >= 0 && fl & libc::O_NONBLOCK != 0
}

// ----- lifecycle ----------------------------------------------------------

/// Plain init.  Writes only through raw pointers: `tc` may be uninitialised.
unsafe fn init(tc: *mut TcpConn, sockfd: c_int) -> c_int {
    let pool = host::mln_alloc_init(ptr::null_mut(), 0);
    ptr::write(addr_of_mut!((*tc).pool), pool);
    if pool.is_null() {
        return -1;
    }
    for slot in [
        addr_of_mut!((*tc).rcv_head),
        addr_of_mut!((*tc).rcv_tail),
        addr_of_mut!((*tc).snd_head),
        addr_of_mut!((*tc).snd_tail),
        addr_of_mut!((*tc).sent_head),
        addr_of_mut!((*tc).sent_tail),
    ] {
        ptr::write(slot, ptr::null_mut());
    }
    ptr::write(addr_of_mut!((*tc).sockfd), sockfd);
    TcpConn::set_nonblock_bit(tc, fd_is_nonblock(sockfd));
    ptr::write(addr_of_mut!((*tc).ssl), ptr::null_mut());
    ptr::write(addr_of_mut!((*tc).tls_conf), ptr::null_mut());
    ptr::write(addr_of_mut!((*tc).tls_pending), ptr::null_mut());
    ptr::write(addr_of_mut!((*tc).tls_pending_off), 0);
    ptr::write(addr_of_mut!((*tc).tls_pending_len), 0);
    TcpConn::set_flag(tc, TLS_DONE | TLS_WANT_R | TLS_WANT_W | TLS_SHUT, false);
    0
}

/// # Safety
/// `tc` points to writable storage of 112 bytes (may be uninitialised).
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_init(tc: *mut TcpConn, sockfd: c_int) -> c_int {
    if tc.is_null() {
        set_errno(libc::EINVAL);
        return -1;
    }
    guard(-1, || init(tc, sockfd))
}

/// Frees the SSL (no I/O: the fd may be closed or reused by now), the
/// queues and the pool.  Never closes the fd or frees `tc` or the conf.
///
/// # Safety
/// `tc` is NULL or an initialised connection.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_destroy(tc: *mut TcpConn) {
    if tc.is_null() {
        return;
    }
    guard((), || {
        // SAFETY (caller): `ssl` is NULL or an SSL this connection owns.
        HostSsl::free((*tc).ssl);
        (*tc).ssl = ptr::null_mut();
        for ty in [queue::M_C_SEND, queue::M_C_RECV, queue::M_C_SENT] {
            let c = queue::remove(tc, ty);
            if !c.is_null() {
                host::mln_chain_pool_release_all(c);
            }
        }
        if !(*tc).pool.is_null() {
            host::mln_alloc_destroy((*tc).pool);
        }
        // Freed with the pool: leave no dangling pointer for a second destroy.
        (*tc).pool = ptr::null_mut();
        (*tc).tls_pending = ptr::null_mut();
        (*tc).tls_pending_off = 0;
        (*tc).tls_pending_len = 0;
    })
}

/// # Safety
/// `tc` is a live connection struct.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_fd_set(tc: *mut TcpConn, fd: c_int) {
    if tc.is_null() {
        return;
    }
    guard((), || {
        ptr::write(addr_of_mut!((*tc).sockfd), fd);
        TcpConn::set_nonblock_bit(tc, fd_is_nonblock(fd));
    })
}

/// # Safety
/// `tc` is a live connection struct.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_set_nonblock(tc: *mut TcpConn, nb: c_int) -> c_int {
    if tc.is_null() {
        set_errno(libc::EINVAL);
        return -1;
    }
    guard(-1, || {
        let fd = (*tc).sockfd;
        if fd >= 0 {
            let fl = libc::fcntl(fd, libc::F_GETFL, 0);
            if fl < 0 {
                return -1;
            }
            let new = if nb != 0 { fl | libc::O_NONBLOCK } else { fl & !libc::O_NONBLOCK };
            if libc::fcntl(fd, libc::F_SETFL, new) < 0 {
                return -1;
            }
        }
        TcpConn::set_nonblock_bit(tc, nb != 0);
        0
    })
}

// ----- queues -------------------------------------------------------------

/// # Safety
/// `tc` is live; `head` is NULL or a list of live chains.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_append_chain(
    tc: *mut TcpConn,
    head: *mut MlnChain,
    tail: *mut MlnChain,
    ty: c_int,
) {
    if tc.is_null() {
        return;
    }
    guard((), || queue::append_chain(tc, head, tail, ty))
}

/// # Safety
/// `tc` is live; `c` is NULL or a live chain.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_append(tc: *mut TcpConn, c: *mut MlnChain, ty: c_int) {
    if tc.is_null() {
        return;
    }
    guard((), || queue::append(tc, c, ty))
}

/// # Safety
/// `tc` is live.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_head(tc: *mut TcpConn, ty: c_int) -> *mut MlnChain {
    if tc.is_null() {
        return ptr::null_mut();
    }
    guard(ptr::null_mut(), || queue::head(tc, ty))
}

/// # Safety
/// `tc` is live.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_tail(tc: *mut TcpConn, ty: c_int) -> *mut MlnChain {
    if tc.is_null() {
        return ptr::null_mut();
    }
    guard(ptr::null_mut(), || queue::tail(tc, ty))
}

/// # Safety
/// `tc` is live.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_remove(tc: *mut TcpConn, ty: c_int) -> *mut MlnChain {
    if tc.is_null() {
        return ptr::null_mut();
    }
    guard(ptr::null_mut(), || queue::remove(tc, ty))
}

/// # Safety
/// `tc` is live.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_pop(tc: *mut TcpConn, ty: c_int) -> *mut MlnChain {
    if tc.is_null() {
        return ptr::null_mut();
    }
    guard(ptr::null_mut(), || queue::pop(tc, ty))
}

/// # Safety
/// `tc` is live.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_move_sent(tc: *mut TcpConn) {
    if tc.is_null() {
        return;
    }
    guard((), || queue::move_sent(tc))
}

// ----- I/O ------------------------------------------------------------------

/// # Safety
/// `tc` is an initialised connection.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_send(tc: *mut TcpConn) -> c_int {
    if tc.is_null() {
        set_errno(libc::EINVAL);
        return M_C_ERROR;
    }
    guard(M_C_ERROR, || match tls::ssl_of(tc) {
        Some(ssl) => tls::send(tc, ssl),
        None => plain::send(tc),
    })
}

/// # Safety
/// `tc` is an initialised connection.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_recv(tc: *mut TcpConn, flag: u32) -> c_int {
    if tc.is_null() {
        set_errno(libc::EINVAL);
        return M_C_ERROR;
    }
    guard(M_C_ERROR, || match tls::ssl_of(tc) {
        Some(_) if flag != plain::M_C_TYPE_MEMORY => {
            set_errno(libc::EINVAL);
            M_C_ERROR
        }
        Some(ssl) => tls::recv(tc, ssl),
        None => plain::recv(tc, flag),
    })
}

/// # Safety
/// `tc` is an initialised connection; `chain` is NULL or live chains.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_send_chain(tc: *mut TcpConn, chain: *mut MlnChain) -> c_int {
    if tc.is_null() {
        set_errno(libc::EINVAL);
        return M_C_ERROR;
    }
    guard(M_C_ERROR, || {
        queue::append_chain(tc, chain, ptr::null_mut(), queue::M_C_SEND);
        mln_tcp_conn_send(tc)
    })
}

// ----- TLS ------------------------------------------------------------------

/// # Safety
/// String arguments are NULL or live `mln_string_t`s.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_tls_conf_new(
    role: u32,
    cert_file: *mut MlnString,
    key_file: *mut MlnString,
    ca_file: *mut MlnString,
    ciphers: *mut MlnString,
    versions: u32,
    verify: u32,
) -> *mut TlsConf {
    guard(ptr::null_mut(), || conf::conf_new(role, cert_file, key_file, ca_file, ciphers, versions, verify))
}

/// # Safety
/// `conf` is NULL or from `mln_tcp_tls_conf_new`, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_tls_conf_free(conf: *mut TlsConf) {
    guard((), || conf::conf_free(conf))
}

/// # Safety
/// `tc` points to writable 112-byte storage; `conf` is NULL or a live conf
/// whose `ctx` is NULL or a live SSL_CTX.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_tls_init(tc: *mut TcpConn, sockfd: c_int, conf: *mut TlsConf) -> c_int {
    if tc.is_null() || conf.is_null() || (*conf).ctx.is_null() {
        set_errno(libc::EINVAL);
        return -1;
    }
    guard(-1, || {
        if init(tc, sockfd) != 0 {
            return -1;
        }
        let role = if abi::bit(ptr::addr_of!((*conf).bits), CONF_ROLE) { Role::Client } else { Role::Server };
        // SAFETY (caller): ctx is a live SSL_CTX (checked non-NULL above).
        match HostSsl::new_mem((*conf).ctx, role) {
            Ok(ssl) => {
                (*tc).ssl = ssl;
                (*tc).tls_conf = conf;
                0
            }
            Err(_) => {
                // Frees the queues and the pool and leaves `pool` NULL (§3.7).
                mln_tcp_conn_destroy(tc);
                set_errno(libc::ENOMEM);
                -1
            }
        }
    })
}

/// # Safety
/// `tc` is an initialised connection.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_tls_handshake(tc: *mut TcpConn) -> c_int {
    if tc.is_null() {
        set_errno(libc::EINVAL);
        return M_C_ERROR;
    }
    guard(M_C_ERROR, || tls::handshake(tc))
}

/// # Safety
/// `tc` is an initialised connection.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_tls_shutdown(tc: *mut TcpConn) -> c_int {
    if tc.is_null() {
        set_errno(libc::EINVAL);
        return M_C_ERROR;
    }
    guard(M_C_ERROR, || tls::shutdown(tc))
}

/// What both host-name setters need first (§3.8): a TLS connection and a
/// string.  None with errno EINVAL.  The name itself (fewer than 256 bytes,
/// no NUL) is checked by the engine's `HostSsl::set_sni` /
/// `set_verify_host`, before any OpenSSL call; the setters map that
/// rejection to EINVAL and -1 as well.
unsafe fn host_name_arg<'a>(tc: *mut TcpConn, name: *const MlnString) -> Option<(HostSsl, &'a [u8])> {
    let ssl = if tc.is_null() { None } else { tls::ssl_of(tc) };
    match (ssl, conf::bytes(name)) {
        (Some(ssl), Some(b)) => Some((ssl, b)),
        _ => {
            set_errno(libc::EINVAL);
            None
        }
    }
}

/// # Safety
/// `tc` is an initialised connection; `hostname` a live string.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_tls_set_sni(tc: *mut TcpConn, hostname: *mut MlnString) -> c_int {
    guard(-1, || {
        let Some((ssl, name)) = host_name_arg(tc, hostname) else { return -1 };
        match ssl.set_sni(name) {
            Ok(()) => 0,
            Err(_) => {
                set_errno(libc::EINVAL);
                -1
            }
        }
    })
}

/// # Safety
/// `tc` is an initialised connection; `hostname` a live string.
#[no_mangle]
pub unsafe extern "C" fn mln_tcp_conn_tls_set_verify_host(tc: *mut TcpConn, hostname: *mut MlnString) -> c_int {
    guard(-1, || {
        let Some((ssl, name)) = host_name_arg(tc, hostname) else { return -1 };
        // An empty name clears the host check, as OpenSSL does for length 0.
        match ssl.set_verify_host(name) {
            Ok(()) => 0,
            Err(_) => {
                set_errno(libc::EINVAL);
                -1
            }
        }
    })
}

/// Legacy (older TLS revision): nothing to initialise with OpenSSL 3.
#[no_mangle]
pub extern "C" fn mln_tcp_tls_global_init() -> c_int {
    0
}

/// Legacy (older TLS revision): does nothing.
#[no_mangle]
pub extern "C" fn mln_tcp_tls_global_destroy() {}

/// The layout this library uses, for c_tests/melon_layout.c: `*count`
/// items named like the C test's measurements ("<type>.sizeof",
/// "<type>.<field>", "<type>.<field>@bit", "<type>.<field>@width").  The
/// array is static.
///
/// # Safety
/// `count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn corotls_melon_layout_report(count: *mut usize) -> *const LayoutItem {
    if !count.is_null() {
        *count = LAYOUT.len();
    }
    LAYOUT.as_ptr()
}
