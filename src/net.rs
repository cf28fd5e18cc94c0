//! Socket helpers of the transport layer: name resolution (getaddrinfo,
//! blocking: callers that must not block run it off their thread), a plain
//! TCP listener on (host, service), non-blocking connect, accept4, and
//! address formatting.  Every socket is created non-blocking and
//! close-on-exec.  Knows nothing of TLS or event loops.

use crate::error::{Error, Reason::*, Result};
use std::ffi::{CStr, CString};
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Listen backlog used by `listen`.
pub const BACKLOG: i32 = 1024;

/// How a name is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Numeric host and numeric port only: never touches the network or
    /// any database.  A name gives `Ok(None)`.
    NumericOnly,
    /// Anything getaddrinfo accepts (may block on DNS).
    Any,
}

/// `[::1]` -> `::1`: the bracketed form people write for IPv6 literals.
fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

fn cstr(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::arg(format!("{what} contains a NUL byte")))
}

/// A service is a port number (1-65535; 0 too for a listener, which then
/// gets an ephemeral port) or a service name (`https`).  getaddrinfo would
/// silently wrap "99999" to 34463.
fn check_service(service: &str, passive: bool) -> Result<()> {
    if service.is_empty() {
        return Err(Error::arg("service is empty").because(COROTLS_REASON_ADDRESS));
    }
    if !service.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(());
    }
    match service.parse::<u32>() {
        Ok(0) if passive => Ok(()),
        Ok(p) if (1..=65535).contains(&p) => Ok(()),
        _ => Err(Error::arg(format!("port {service} is out of range: use 1-65535 or a service name"))
            .because(COROTLS_REASON_ADDRESS)),
    }
}

/// `fd` is a stream socket (what a TLS connection runs over).
pub fn check_stream_socket(fd: RawFd) -> Result<()> {
    let mut ty: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: ty and len are valid locals for getsockopt's output.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            &mut ty as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENOTSOCK) => Error::arg(format!("fd {fd} is not a socket")),
            Some(libc::EBADF) => Error::arg(format!("fd {fd} is not open")),
            _ => Error::os(&format!("fd {fd}"), e),
        });
    }
    if ty != libc::SOCK_STREAM {
        return Err(Error::arg(format!("fd {fd} is not a stream (TCP or Unix stream) socket")));
    }
    Ok(())
}

/// Resolve `host` (None or "" with `passive`: the wildcard address) and
/// `service` (a port number or a service name) to stream socket addresses,
/// in getaddrinfo's order.
pub fn resolve(host: Option<&str>, service: &str, passive: bool, lookup: Lookup) -> Result<Option<Vec<SocketAddr>>> {
    let host = host.map(strip_brackets).filter(|h| !h.is_empty());
    if host.is_none() && !passive {
        return Err(Error::arg("host is empty").because(COROTLS_REASON_ADDRESS));
    }
    check_service(service, passive)?;
    let chost = host.map(|h| cstr("host", h)).transpose()?;
    let cserv = cstr("service", service)?;
    // SAFETY: an all-zero addrinfo is the documented "no hints" value.
    let mut hints: libc::addrinfo = unsafe { zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    hints.ai_protocol = libc::IPPROTO_TCP;
    if passive {
        hints.ai_flags |= libc::AI_PASSIVE;
    }
    if lookup == Lookup::NumericOnly {
        hints.ai_flags |= libc::AI_NUMERICHOST | libc::AI_NUMERICSERV;
    }
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: the strings are NUL-terminated and live across the call;
    // `res` receives a list we free below.
    let rc = unsafe {
        libc::getaddrinfo(chost.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()), cserv.as_ptr(), &hints, &mut res)
    };
    if rc != 0 {
        if lookup == Lookup::NumericOnly && rc == libc::EAI_NONAME {
            return Ok(None);
        }
        let msg = if rc == libc::EAI_SYSTEM {
            std::io::Error::last_os_error().to_string()
        } else {
            // SAFETY: gai_strerror returns a static string.
            unsafe { CStr::from_ptr(libc::gai_strerror(rc)) }.to_string_lossy().into_owned()
        };
        return Err(Error::new(
            crate::error::Code::COROTLS_ERR_IO,
            format!("cannot resolve {}:{service}: {msg}", host.unwrap_or("*")),
        )
        .because(COROTLS_REASON_ADDRESS));
    }
    let mut out = Vec::new();
    let mut p = res;
    while !p.is_null() {
        // SAFETY: p walks the list getaddrinfo returned; each ai_addr is
        // valid for ai_addrlen bytes.
        unsafe {
            let ai = &*p;
            if let Some(a) = sockaddr_to_std(ai.ai_addr as *const libc::sockaddr_storage, ai.ai_addrlen) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            p = ai.ai_next;
        }
    }
    // SAFETY: res came from a successful getaddrinfo.
    unsafe { libc::freeaddrinfo(res) };
    if out.is_empty() {
        return Err(Error::new(crate::error::Code::COROTLS_ERR_IO, "no IPv4 or IPv6 address found")
            .because(COROTLS_REASON_ADDRESS));
    }
    Ok(Some(out))
}

/// # Safety
/// `sa` is valid for `len` bytes.
unsafe fn sockaddr_to_std(sa: *const libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match (*sa).ss_family as i32 {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            let a = &*(sa as *const libc::sockaddr_in);
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            let a = &*(sa as *const libc::sockaddr_in6);
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            // An IPv4 peer of a dual-stack socket reads as plain IPv4.
            if let Some(v4) = ip.to_ipv4_mapped() {
                return Some(SocketAddr::V4(SocketAddrV4::new(v4, u16::from_be(a.sin6_port))));
            }
            Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id)))
        }
        _ => None,
    }
}

fn std_to_sockaddr(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned
            // for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn family(a: &SocketAddr) -> i32 {
    if a.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    }
}

/// A new non-blocking, close-on-exec stream socket.
fn stream_socket(domain: i32) -> Result<RawFd> {
    #[cfg(not(target_vendor = "apple"))]
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    #[cfg(target_vendor = "apple")]
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM, 0) };
    if fd < 0 {
        return Err(Error::last_os("socket"));
    }
    #[cfg(target_vendor = "apple")]
    if let Err(e) = set_nonblocking(fd).and_then(|_| apple::set_cloexec_nosigpipe(fd)) {
        close_fd(fd);
        return Err(e);
    }
    Ok(fd)
}

/// Darwin lacks accept4, dup3 and the SOCK_* creation flags: the same
/// results take a call or two more there.  Written for macOS, built and
/// tested on Linux only (README says so).
#[cfg(target_vendor = "apple")]
mod apple {
    use super::*;

    /// Close-on-exec, and SO_NOSIGPIPE: a vanished peer is EPIPE, never a
    /// SIGPIPE, on writes that cannot take MSG_NOSIGNAL.
    pub fn set_cloexec_nosigpipe(fd: RawFd) -> Result<()> {
        let one: libc::c_int = 1;
        // SAFETY: plain fcntl/setsockopt on our fd; `one` lives across the call.
        unsafe {
            if libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) < 0 {
                return Err(Error::last_os("fcntl(F_SETFD)"));
            }
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_NOSIGPIPE,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        Ok(())
    }
}

/// Make `dst` a close-on-exec duplicate of `src` (atomically replacing
/// what `dst` was).  -1 on failure, with errno set.
fn dup_onto(src: RawFd, dst: RawFd) -> libc::c_int {
    #[cfg(not(target_vendor = "apple"))]
    // SAFETY: plain syscall on fds the caller owns.
    return unsafe { libc::dup3(src, dst, libc::O_CLOEXEC) };
    #[cfg(target_vendor = "apple")]
    // SAFETY: plain syscalls on fds the caller owns.
    unsafe {
        let rc = libc::dup2(src, dst);
        if rc >= 0 {
            libc::fcntl(dst, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        rc
    }
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, v: i32) -> std::io::Result<()> {
    // SAFETY: v lives across the call and its size is given.
    let rc = unsafe {
        libc::setsockopt(fd, level, name, &v as *const i32 as *const libc::c_void, size_of::<i32>() as libc::socklen_t)
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Close an fd, ignoring errors (used on failure paths and by owners).
pub fn close_fd(fd: RawFd) {
    // SAFETY: the caller owns fd and does not use it afterwards.
    unsafe { libc::close(fd) };
}

/// A plain TCP listener on (host, service): the first address getaddrinfo
/// gives that can be bound.  `host` None or "" means every local address
/// (IPv6 wildcard when available, which on Linux also accepts IPv4).
/// SO_REUSEADDR is set.  Resolution is synchronous.
pub fn listen(host: Option<&str>, service: &str, backlog: i32) -> Result<RawFd> {
    let mut addrs = resolve(host, service, true, Lookup::Any)?.unwrap_or_default();
    if host.map_or(true, |h| h.is_empty()) {
        // Prefer the IPv6 wildcard (dual-stack) when the host names none.
        addrs.sort_by_key(|a| a.is_ipv4());
    }
    let mut last = Error::arg("no address to listen on");
    for a in &addrs {
        match listen_on(a, backlog) {
            Ok(fd) => return Ok(fd),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn listen_on(a: &SocketAddr, backlog: i32) -> Result<RawFd> {
    let fd = stream_socket(family(a))?;
    let r = (|| {
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).map_err(|e| Error::os("SO_REUSEADDR", e))?;
        let (ss, len) = std_to_sockaddr(a);
        // SAFETY: ss is a valid sockaddr of len bytes.
        if unsafe { libc::bind(fd, &ss as *const _ as *const libc::sockaddr, len) } < 0 {
            return Err(Error::last_os(&format!("bind {a}")));
        }
        // SAFETY: plain syscall on our socket.
        if unsafe { libc::listen(fd, backlog) } < 0 {
            return Err(Error::last_os(&format!("listen {a}")));
        }
        Ok(())
    })();
    match r {
        Ok(()) => Ok(fd),
        Err(e) => {
            close_fd(fd);
            Err(e)
        }
    }
}

/// Progress of a non-blocking connect.
#[derive(Debug, PartialEq, Eq)]
pub enum Connecting {
    /// Connected already (loopback sometimes is).
    Done,
    /// In progress: wait for writability, then `connect_result`.
    InProgress,
}

/// Start a non-blocking connect to `a` on a new socket.
pub fn connect_start(a: &SocketAddr) -> Result<(RawFd, Connecting)> {
    let fd = stream_socket(family(a))?;
    match connect_on(fd, a) {
        Ok(c) => Ok((fd, c)),
        Err(e) => {
            close_fd(fd);
            Err(e)
        }
    }
}

/// Start a non-blocking connect to `a` with a fresh socket that takes the
/// number `fd` (the old socket behind `fd` is closed by the replacement).
/// Used to try the next address of a name without changing the fd a
/// caller already holds.
pub fn connect_again(fd: RawFd, a: &SocketAddr) -> Result<Connecting> {
    let s = stream_socket(family(a))?;
    // Both are our sockets; the duplicate atomically replaces fd.
    let rc = dup_onto(s, fd);
    close_fd(s);
    if rc < 0 {
        return Err(Error::last_os("dup3"));
    }
    // Non-blocking already: O_NONBLOCK belongs to the open file, which the
    // duplicate shares.
    connect_on(fd, a)
}

fn connect_on(fd: RawFd, a: &SocketAddr) -> Result<Connecting> {
    let _ = set_nodelay(fd);
    let (ss, len) = std_to_sockaddr(a);
    // SAFETY: ss is a valid sockaddr of len bytes.
    if unsafe { libc::connect(fd, &ss as *const _ as *const libc::sockaddr, len) } == 0 {
        return Ok(Connecting::Done);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        // EINTR: the connect goes on asynchronously, like EINPROGRESS.
        Some(libc::EINPROGRESS) | Some(libc::EALREADY) | Some(libc::EINTR) => Ok(Connecting::InProgress),
        _ => Err(Error::os(&format!("connect {a}"), e)),
    }
}

/// The outcome of a connect that reported writability: Ok once connected.
pub fn connect_result(fd: RawFd) -> Result<Option<()>> {
    let mut err: i32 = 0;
    let mut len = size_of::<i32>() as libc::socklen_t;
    // SAFETY: err and len are valid for getsockopt to fill.
    let rc = unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, &mut err as *mut i32 as *mut libc::c_void, &mut len)
    };
    if rc < 0 {
        return Err(Error::last_os("getsockopt(SO_ERROR)"));
    }
    match err {
        0 => {}
        libc::EINPROGRESS | libc::EALREADY => return Ok(None),
        e => {
            let peer = peer_addr(fd).map(|a| a.to_string()).unwrap_or_else(|_| "peer".into());
            return Err(Error::os(&format!("connect {peer}"), std::io::Error::from_raw_os_error(e)));
        }
    }
    // SO_ERROR 0 with no peer means still in progress.
    match raw_name(fd, libc::getpeername) {
        Ok(_) => Ok(Some(())),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(None),
        Err(e) => Err(Error::os("getpeername", e)),
    }
}

/// Accept one connection: Ok(None) when none is waiting.  The new socket
/// is non-blocking and close-on-exec, with TCP_NODELAY.
pub fn accept(lfd: RawFd) -> Result<Option<RawFd>> {
    try_accept(lfd).map_err(|e| Error::os("accept", e))
}

/// `accept` with the OS error as it came, for callers that handle some
/// (running out of fds: see `out_of_fds`).
pub fn try_accept(lfd: RawFd) -> std::io::Result<Option<RawFd>> {
    loop {
        #[cfg(not(target_vendor = "apple"))]
        // SAFETY: plain syscall; we do not ask for the peer address.
        let fd = unsafe {
            libc::accept4(lfd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        };
        #[cfg(target_vendor = "apple")]
        // SAFETY: plain syscall; we do not ask for the peer address.
        let fd = unsafe { libc::accept(lfd, std::ptr::null_mut(), std::ptr::null_mut()) };
        #[cfg(target_vendor = "apple")]
        if fd >= 0 {
            if let Err(e) = set_nonblocking(fd).and_then(|_| apple::set_cloexec_nosigpipe(fd)) {
                close_fd(fd);
                return Err(std::io::Error::other(e.msg));
            }
        }
        if fd >= 0 {
            let _ = set_nodelay(fd);
            return Ok(Some(fd));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) => return Ok(None),
            // The connection died in the queue: take the next one.
            Some(libc::EINTR) | Some(libc::ECONNABORTED) | Some(libc::EPROTO) => continue,
            _ => return Err(e),
        }
    }
}

/// The process (EMFILE) or the system (ENFILE) has no fd left.
pub fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// A spare fd (/dev/null, close-on-exec): held so that it can be given up
/// when the process runs out of fds, and as what a shut-down socket's
/// number is made to point at while its owner still holds the number.
pub fn open_spare() -> Result<RawFd> {
    // SAFETY: the path is a NUL-terminated literal.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Error::last_os("open /dev/null"));
    }
    Ok(fd)
}

/// End a connection at once in both directions (the peer sees the end of
/// the stream, or a reset if input was left unread) while keeping `fd`'s
/// number taken: the socket is shut down and, with `placeholder` (an open
/// fd), replaced by a duplicate of it, which releases the socket itself.
/// Closing `fd` later releases the number.
pub fn end_keeping_number(fd: RawFd, placeholder: Option<RawFd>) {
    // SAFETY: plain syscall on an fd the caller owns.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    // The duplicate atomically replaces fd, closing the socket behind it.
    if let Some(p) = placeholder {
        dup_onto(p, fd);
    }
}

/// Read and drop up to `max` bytes that have already arrived (never
/// waits).  Closing a socket with unread input makes the kernel answer
/// with a reset, which can destroy data still in flight to the peer (such
/// as a close_notify sent just before): drain first.
pub fn discard_input(fd: RawFd, max: usize) {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < max {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), libc::MSG_DONTWAIT) };
        if n <= 0 {
            break;
        }
        total += n as usize;
    }
}

/// Put `fd` in non-blocking mode.
pub fn set_nonblocking(fd: RawFd) -> Result<()> {
    // SAFETY: fcntl on an integer fd; failures are reported via errno.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(Error::last_os("fcntl(F_GETFL)"));
        }
        if flags & libc::O_NONBLOCK == 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(Error::last_os("fcntl(F_SETFL)"));
        }
    }
    Ok(())
}

/// Disable Nagle: TLS already writes whole records.
pub fn set_nodelay(fd: RawFd) -> Result<()> {
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1).map_err(|e| Error::os("TCP_NODELAY", e))
}

type NameFn = unsafe extern "C" fn(i32, *mut libc::sockaddr, *mut libc::socklen_t) -> i32;

fn raw_name(fd: RawFd, f: NameFn) -> std::io::Result<Option<SocketAddr>> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: ss/len describe a writable buffer of the right size.
    if unsafe { f(fd, &mut ss as *mut _ as *mut libc::sockaddr, &mut len) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel filled len bytes of ss.
    Ok(unsafe { sockaddr_to_std(&ss, len) })
}

fn name_of(fd: RawFd, what: &str, f: NameFn) -> Result<SocketAddr> {
    match raw_name(fd, f) {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(Error::arg(format!("{what}: not an IP socket"))),
        Err(e) => Err(Error::os(what, e)),
    }
}

/// The socket's local address.
pub fn local_addr(fd: RawFd) -> Result<SocketAddr> {
    name_of(fd, "getsockname", libc::getsockname)
}

/// The connected peer's address.
pub fn peer_addr(fd: RawFd) -> Result<SocketAddr> {
    name_of(fd, "getpeername", libc::getpeername)
}

#[cfg(test)]
mod tests;
