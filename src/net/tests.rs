//! Socket helper tests over loopback.

use super::*;

/// Accept the connection a client just started: wait (up to 5 s) for
/// the listener to become readable, then it must be there.
fn accept_one(l: RawFd) -> RawFd {
    let mut pfd = libc::pollfd { fd: l, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, 5000) };
    assert_eq!(n, 1, "the listener became readable");
    accept(l).unwrap().expect("a connection is waiting")
}

#[test]
fn numeric_lookup_never_resolves_names() {
    assert_eq!(resolve(Some("localhost"), "443", false, Lookup::NumericOnly).unwrap(), None);
    assert_eq!(resolve(Some("127.0.0.1"), "https", false, Lookup::NumericOnly).unwrap(), None);
    let v = resolve(Some("[::1]"), "8443", false, Lookup::NumericOnly).unwrap().unwrap();
    assert_eq!(v, vec!["[::1]:8443".parse().unwrap()]);
    let v = resolve(Some("127.0.0.1"), "443", false, Lookup::NumericOnly).unwrap().unwrap();
    assert_eq!(v, vec!["127.0.0.1:443".parse().unwrap()]);
}

#[test]
fn resolve_errors_are_clear() {
    let e = resolve(None, "443", false, Lookup::Any).unwrap_err();
    assert!(e.msg.contains("host is empty"));
    let e = resolve(Some("127.0.0.1"), "", false, Lookup::Any).unwrap_err();
    assert!(e.msg.contains("service is empty"));
    let e = resolve(Some("127.0.0.1"), "no-such-service-xyz", false, Lookup::Any).unwrap_err();
    assert!(e.msg.contains("cannot resolve"), "{}", e.msg);
    let e = resolve(Some("a\0b"), "1", false, Lookup::Any).unwrap_err();
    assert!(e.msg.contains("NUL"));
}

#[test]
fn listen_connect_accept_over_ipv4_and_ipv6() {
    for host in ["127.0.0.1", "::1", "localhost"] {
        let l = listen(Some(host), "0", 8).unwrap();
        let la = local_addr(l).unwrap();
        assert_ne!(la.port(), 0);
        let (c, st) = connect_start(&la).unwrap();
        if st == Connecting::InProgress {
            let mut pfd = libc::pollfd { fd: c, events: libc::POLLOUT, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 5000) };
        }
        assert_eq!(connect_result(c).unwrap(), Some(()));
        let a = accept_one(l);
        assert_eq!(peer_addr(a).unwrap(), local_addr(c).unwrap());
        assert_eq!(accept(l).unwrap(), None);
        for fd in [a, c, l] {
            close_fd(fd);
        }
    }
}

#[test]
fn reuseaddr_lets_a_port_be_listened_on_again() {
    let l = listen(Some("127.0.0.1"), "0", 8).unwrap();
    let port = local_addr(l).unwrap().port().to_string();
    let (c, _) = connect_start(&local_addr(l).unwrap()).unwrap();
    let a = accept_one(l);
    // The server side closes first: its end goes to TIME_WAIT.
    close_fd(a);
    close_fd(c);
    close_fd(l);
    let l2 = listen(Some("127.0.0.1"), &port, 8).unwrap();
    close_fd(l2);
    let e = listen(Some("127.0.0.1"), "no-such-service-xyz", 8).unwrap_err();
    assert!(e.msg.contains("cannot resolve"));
}

#[test]
fn refused_connect_is_reported() {
    let l = listen(Some("127.0.0.1"), "0", 8).unwrap();
    let a = local_addr(l).unwrap();
    close_fd(l);
    match connect_start(&a) {
        Err(e) => assert!(e.msg.contains("refused"), "{}", e.msg),
        Ok((fd, _)) => {
            let mut pfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 5000) };
            let e = connect_result(fd).unwrap_err();
            assert!(e.msg.contains("refused"), "{}", e.msg);
            close_fd(fd);
        }
    }
}
