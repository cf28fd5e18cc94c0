//! Loop tests over real loopback sockets (the C tests in c_tests/loop_*.c
//! cover the C ABI and the load cases).

use super::*;
use crate::conf::{ConfBuilder, Identity};
use crate::testutil::cert;
use std::sync::mpsc;

fn server_conf() -> Conf {
    let mut b = ConfBuilder::new(Role::Server);
    b.add_identity(Identity::from_files(&cert("leaf.crt"), &cert("leaf.key"), None).unwrap()).unwrap();
    b.build().unwrap()
}

fn client_conf() -> Conf {
    let mut b = ConfBuilder::new(Role::Client);
    b.add_ca_file(&cert("ca.crt")).unwrap();
    b.build().unwrap()
}

type Got = (RawFd, Code, Vec<u8>, usize, String);

/// A callback that sends its completion down a channel.
fn chan() -> (impl Fn() -> Callback, mpsc::Receiver<Got>) {
    let (tx, rx) = mpsc::channel::<Got>();
    let mk = move || -> Callback {
        let tx = tx.clone();
        Box::new(move |d: &Done<'_>| {
            let _ = tx.send((d.fd, d.code, d.data.to_vec(), d.count, d.msg.to_string()));
        })
    };
    (mk, rx)
}

/// Dispatch until a completion arrives.
fn wait(lp: &Loop, rx: &mpsc::Receiver<Got>) -> Got {
    for _ in 0..2000 {
        if let Ok(g) = rx.try_recv() {
            return g;
        }
        lp.dispatch(Some(Duration::from_millis(10))).unwrap();
    }
    panic!("no completion");
}

fn port_of(lp: &Loop, lfd: RawFd) -> String {
    let a: SocketAddr = lp.info(lfd, Info::LocalAddr).unwrap().parse().unwrap();
    a.port().to_string()
}

/// A listener, a connected client and its accepted server end (no
/// handshake yet).
fn pair(lp: &Loop) -> (RawFd, RawFd, RawFd) {
    let (mk, rx) = chan();
    let lfd = lp.listen(Some("127.0.0.1"), "0", Some(&server_conf())).unwrap();
    let port = port_of(lp, lfd);
    let (r, cfd) = lp.connect("127.0.0.1", &port, &client_conf(), None, mk()).unwrap();
    if r == Ready::Pending {
        let g = wait(lp, &rx);
        assert_eq!(g.1, COROTLS_OK, "{}", g.4);
        assert_eq!(g.0, cfd);
    }
    let sfd = match lp.accept(lfd, None, None, mk()).unwrap() {
        Ready::Now(fd) => fd,
        Ready::Pending => {
            let g = wait(lp, &rx);
            assert_eq!(g.1, COROTLS_OK);
            g.0
        }
    };
    (lfd, cfd, sfd)
}

/// `pair` with both handshakes done.
fn pair_hs(lp: &Loop) -> (RawFd, RawFd, RawFd) {
    let (lfd, cfd, sfd) = pair(lp);
    let (mk, rx) = chan();
    assert_eq!(lp.handshake(sfd, None, mk()).unwrap(), Ready::Pending);
    assert_eq!(lp.handshake(cfd, None, mk()).unwrap(), Ready::Pending);
    assert_eq!(wait(lp, &rx).1, COROTLS_OK);
    assert_eq!(wait(lp, &rx).1, COROTLS_OK);
    (lfd, cfd, sfd)
}

fn send_all(lp: &Loop, fd: RawFd, data: &[u8]) {
    let (mk, rx) = chan();
    if lp.send(fd, data, None, mk()).unwrap() == Ready::Pending {
        let g = wait(lp, &rx);
        assert_eq!(g.1, COROTLS_OK, "{}", g.4);
        assert_eq!(g.3, data.len());
    }
}

fn recv_exact(lp: &Loop, fd: RawFd, n: usize) -> Vec<u8> {
    let (mk, rx) = chan();
    let mut got = Vec::new();
    while got.len() < n {
        match lp.read(fd, Read::Any, None, mk()) {
            // SAFETY: no other operation on fd before the copy.
            Ok(Ready::Now(c)) => got.extend_from_slice(unsafe { c.as_slice() }),
            Ok(Ready::Pending) => {
                let g = wait(lp, &rx);
                assert_eq!(g.1, COROTLS_OK, "{}", g.4);
                got.extend_from_slice(&g.2);
            }
            Err(e) => panic!("{e}"),
        }
    }
    got
}

#[test]
fn echo_both_ways_with_implicit_handshake() {
    let lp = Loop::new().unwrap();
    let (lfd, cfd, sfd) = pair(&lp);
    // The client's send drives its handshake; the server's recv drives its.
    let (mk, rx) = chan();
    assert_eq!(lp.send(cfd, b"hello", None, mk()).unwrap(), Ready::Pending);
    assert_eq!(recv_exact(&lp, sfd, 5), b"hello");
    let g = wait(&lp, &rx);
    assert_eq!((g.1, g.3), (COROTLS_OK, 5));
    send_all(&lp, sfd, b"world");
    assert_eq!(recv_exact(&lp, cfd, 5), b"world");
    assert_eq!(lp.info(cfd, Info::Version).unwrap(), "TLSv1.3");
    assert!(lp.alive(cfd).unwrap());
    // Once the handshake is done a small send completes inline.
    assert_eq!(lp.send(cfd, b"x", None, mk()).unwrap(), Ready::Now(()));
    assert_eq!(recv_exact(&lp, sfd, 1), b"x");
    lp.close(cfd).unwrap();
    // The server sees the close_notify.
    let (mk, rx) = chan();
    let r = lp.read(sfd, Read::Any, None, mk());
    let code = match r {
        Err(e) => e.code,
        Ok(Ready::Pending) => wait(&lp, &rx).1,
        Ok(Ready::Now(_)) => panic!("data after close"),
    };
    assert_eq!(code, COROTLS_CLOSED);
    assert!(!lp.alive(sfd).unwrap());
    lp.close(sfd).unwrap();
    lp.close(lfd).unwrap();
    assert_eq!(lp.close(lfd).unwrap_err().code, COROTLS_ERR_ARG);
    assert_eq!(lp.pending(), 0);
    assert!(lp.is_empty());
}

#[test]
fn busy_rule_and_cancel_on_close() {
    let lp = Loop::new().unwrap();
    let (lfd, cfd, sfd) = pair(&lp);
    let (mk, rx) = chan();
    assert_eq!(lp.read(cfd, Read::Any, None, mk()).unwrap(), Ready::Pending);
    for e in [
        lp.read(cfd, Read::Any, None, mk()).unwrap_err(),
        lp.send(cfd, b"x", None, mk()).unwrap_err(),
        lp.handshake(cfd, None, mk()).unwrap_err(),
    ] {
        assert_eq!(e.code, COROTLS_BUSY, "{e}");
    }
    assert_eq!(lp.accept(lfd, None, None, mk()).unwrap(), Ready::Pending);
    assert_eq!(lp.accept(lfd, None, None, mk()).unwrap_err().code, COROTLS_BUSY);
    assert_eq!(lp.pending(), 2);
    lp.close(cfd).unwrap();
    lp.close(lfd).unwrap();
    let mut codes = [wait(&lp, &rx), wait(&lp, &rx)];
    codes.sort_by_key(|g| g.0);
    assert_eq!(codes[0].0, -1); // the accept
    assert_eq!(codes[0].1, COROTLS_ERR_CANCELLED);
    assert_eq!(codes[1].0, cfd);
    assert_eq!(codes[1].1, COROTLS_ERR_CANCELLED);
    assert_eq!(lp.pending(), 0);
    lp.close(sfd).unwrap();
}

#[test]
fn timeouts_keep_the_stream_valid() {
    let lp = Loop::new().unwrap();
    let (lfd, cfd, sfd) = pair(&lp);
    let (mk, rx) = chan();
    // recv with nothing coming.
    assert_eq!(lp.read(sfd, Read::Any, Some(Duration::from_millis(50)), mk()).unwrap(), Ready::Pending);
    // The client's handshake completes meanwhile (the server's recv drives
    // the server side).
    assert_eq!(lp.handshake(cfd, Some(Duration::from_secs(10)), mk()).unwrap(), Ready::Pending);
    let mut got = [wait(&lp, &rx), wait(&lp, &rx)];
    got.sort_by_key(|g| g.0 == sfd);
    assert_eq!(got[0].1, COROTLS_OK);
    assert_eq!(got[1].1, COROTLS_TIMEOUT);
    // Send against a peer that does not read: small socket buffers.
    for fd in [cfd, sfd] {
        let v: i32 = 4096;
        // SAFETY: plain setsockopt on our sockets.
        unsafe {
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &v as *const _ as *const libc::c_void, 4);
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &v as *const _ as *const libc::c_void, 4);
        }
    }
    lp.set_limit(sfd, 1).unwrap();
    let big: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    assert_eq!(lp.send(cfd, &big, Some(Duration::from_millis(100)), mk()).unwrap(), Ready::Pending);
    let g = wait(&lp, &rx);
    assert_eq!(g.1, COROTLS_TIMEOUT);
    let committed = g.3;
    assert!(committed < big.len());
    assert!(lp.unsent(cfd).unwrap() > 0 || committed > 0);
    // The peer reads again: it gets exactly the committed prefix, then
    // what is sent next, in order.
    lp.set_limit(sfd, 0).unwrap();
    send_all(&lp, cfd, b"after");
    let got = recv_exact(&lp, sfd, committed + 5);
    assert_eq!(&got[..committed], &big[..committed]);
    assert_eq!(&got[committed..], b"after");
    for fd in [cfd, sfd, lfd] {
        lp.close(fd).unwrap();
    }
}

#[test]
fn read_exact_and_until() {
    let lp = Loop::new().unwrap();
    let (lfd, cfd, sfd) = pair(&lp);
    let (mk, rx) = chan();
    assert_eq!(lp.read(sfd, Read::Until { delim: b"\r\n".to_vec(), max: 0 }, None, mk()).unwrap(), Ready::Pending);
    send_all(&lp, cfd, b"line one\r\nline two\r\n1234567");
    let g = wait(&lp, &rx);
    assert_eq!(g.2, b"line one\r\n");
    let r = lp.read(sfd, Read::Until { delim: b"\r\n".to_vec(), max: 0 }, None, mk()).unwrap();
    let Ready::Now(c) = r else { panic!("buffered line should be inline") };
    // SAFETY: no operation on sfd since.
    assert_eq!(unsafe { c.as_slice() }, b"line two\r\n");
    let Ready::Now(c) = lp.read(sfd, Read::Exactly(4), None, mk()).unwrap() else { panic!() };
    // SAFETY: as above.
    assert_eq!(unsafe { c.as_slice() }, b"1234");
    assert_eq!(lp.unread(sfd).unwrap(), 3);
    assert_eq!(lp.read(sfd, Read::Exactly(5), None, mk()).unwrap(), Ready::Pending);
    lp.close(cfd).unwrap();
    let g = wait(&lp, &rx);
    assert_eq!(g.1, COROTLS_CLOSED);
    assert_eq!(lp.unread(sfd).unwrap(), 3);
    let Ready::Now(c) = lp.read(sfd, Read::Any, None, mk()).unwrap() else { panic!() };
    // SAFETY: as above.
    assert_eq!(unsafe { c.as_slice() }, b"567");
    assert_eq!(lp.read(sfd, Read::Any, None, mk()).unwrap_err().code, COROTLS_CLOSED);
    assert_eq!(lp.read(sfd, Read::Exactly(0), None, mk()).unwrap_err().code, COROTLS_ERR_ARG);
    lp.close(sfd).unwrap();
    lp.close(lfd).unwrap();
}

#[test]
fn names_resolve_off_the_loop() {
    let lp = Loop::new().unwrap();
    let (mk, rx) = chan();
    let lfd = lp.listen(Some("localhost"), "0", Some(&server_conf())).unwrap();
    let port = port_of(&lp, lfd);
    let (r, fd) = lp.connect("localhost", &port, &client_conf(), Some(Duration::from_secs(10)), mk()).unwrap();
    assert_eq!((r, fd), (Ready::Pending, -1));
    let g = wait(&lp, &rx);
    assert_eq!(g.1, COROTLS_OK, "{}", g.4);
    let cfd = g.0;
    assert!(cfd >= 0);
    lp.set_sni(cfd, b"localhost").unwrap();
    lp.set_verify_host(cfd, b"localhost").unwrap();
    let sfd = match lp.accept(lfd, None, None, mk()).unwrap() {
        Ready::Now(fd) => fd,
        Ready::Pending => wait(&lp, &rx).0,
    };
    assert_eq!(lp.handshake(cfd, None, mk()).unwrap(), Ready::Pending);
    assert_eq!(lp.handshake(sfd, None, mk()).unwrap(), Ready::Pending);
    assert_eq!(wait(&lp, &rx).1, COROTLS_OK);
    assert_eq!(wait(&lp, &rx).1, COROTLS_OK);
    let e = lp.set_sni(cfd, b"late").unwrap_err();
    assert_eq!(e.code, COROTLS_ERR_ARG);
    // A name that does not resolve fails through the callback.
    let (r, _) = lp.connect("no-such-host.invalid", "443", &client_conf(), None, mk()).unwrap();
    assert_eq!(r, Ready::Pending);
    let g = wait(&lp, &rx);
    assert_eq!((g.0, g.1), (-1, COROTLS_ERR_IO));
    for fd in [cfd, sfd, lfd] {
        lp.close(fd).unwrap();
    }
}

#[test]
fn loop_fd_becomes_readable_for_timers_and_cross_thread_close() {
    loop_fd_readable_when_due(Loop::new().unwrap());
}

/// Where there is no timerfd (BSD, macOS) a thread wakes the poller.
#[test]
fn loop_fd_becomes_readable_for_timers_without_a_timerfd() {
    let lp = Loop::with_alarm_thread().unwrap();
    assert!(lp.sh.timerfd.is_none());
    loop_fd_readable_when_due(lp);
}

fn loop_fd_readable_when_due(lp: Loop) {
    let (lfd, _cfd, sfd) = pair(&lp);
    let (mk, rx) = chan();
    let poll_fd = |ms| {
        let mut p = libc::pollfd { fd: lp.fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, ms) }
    };
    assert_eq!(lp.read(sfd, Read::Any, Some(Duration::from_millis(30)), mk()).unwrap(), Ready::Pending);
    assert_eq!(poll_fd(10_000), 1);
    loop {
        lp.dispatch(Some(Duration::ZERO)).unwrap();
        if rx.try_recv().is_ok() {
            break;
        }
        assert_eq!(poll_fd(10_000), 1);
    }
    assert_eq!(lp.read(sfd, Read::Any, None, mk()).unwrap(), Ready::Pending);
    std::thread::scope(|s| {
        s.spawn(|| lp.close(sfd).unwrap());
    });
    assert_eq!(poll_fd(10_000), 1);
    assert_eq!(lp.dispatch(Some(Duration::ZERO)).unwrap(), 1);
    assert_eq!(rx.try_recv().unwrap().1, COROTLS_ERR_CANCELLED);
    lp.close(lfd).unwrap();
}

#[test]
fn shutdown_cancels_everything_once() {
    let lp = Loop::new().unwrap();
    let (lfd, cfd, _sfd) = pair(&lp);
    let (mk, rx) = chan();
    assert_eq!(lp.read(cfd, Read::Any, None, mk()).unwrap(), Ready::Pending);
    assert_eq!(lp.accept(lfd, None, None, mk()).unwrap(), Ready::Pending);
    let (r, _) = lp.connect("localhost", "1", &client_conf(), None, mk()).unwrap();
    assert_eq!(r, Ready::Pending);
    drop(lp);
    let codes: Vec<Code> = rx.try_iter().map(|g| g.1).collect();
    assert_eq!(codes, vec![COROTLS_ERR_CANCELLED; 3]);
}

#[test]
fn inline_chunk_can_be_echoed_by_the_next_send() {
    let lp = Loop::new().unwrap();
    let (lfd, cfd, sfd) = pair_hs(&lp);
    // Larger than the chunk buffer kept between operations.
    let msg: Vec<u8> = (0..100_000).map(|i| (i % 249) as u8).collect();
    send_all(&lp, cfd, &msg);
    let (mk, _rx) = chan();
    let mut echoed = 0;
    while echoed < msg.len() {
        // All of it at once: a chunk larger than the buffer kept, which the
        // send releases only after use.
        while lp.unread(sfd).unwrap() < msg.len() - echoed {
            lp.dispatch(Some(Duration::from_millis(5))).unwrap();
        }
        let got = match lp.read(sfd, Read::Any, None, mk()).unwrap() {
            Ready::Now(c) => c,
            Ready::Pending => panic!("data should be buffered or arrive inline"),
        };
        // SAFETY: the chunk is valid until the send below returns.
        let data = unsafe { got.as_slice() };
        assert_eq!(lp.send(sfd, data, None, mk()).unwrap(), Ready::Now(()));
        echoed += data.len();
    }
    assert_eq!(recv_exact(&lp, cfd, msg.len()), msg);
    for fd in [cfd, sfd, lfd] {
        lp.close(fd).unwrap();
    }
}

#[test]
fn dispatch_cost_does_not_grow_with_idle_connections() {
    let lp = Loop::new().unwrap();
    let (mk, _rx) = chan();
    // 200 idle pairs, each end with a pending recv and a deadline far away.
    let mut fds = Vec::new();
    for _ in 0..200 {
        let (lfd, cfd, sfd) = pair_hs(&lp);
        lp.close(lfd).unwrap();
        for fd in [cfd, sfd] {
            assert_eq!(lp.read(fd, Read::Any, Some(Duration::from_secs(600)), mk()).unwrap(), Ready::Pending);
        }
        fds.push((cfd, sfd));
    }
    // Let everything settle (tickets and the like), then measure one busy pair.
    for _ in 0..20 {
        lp.dispatch(Some(Duration::from_millis(5))).unwrap();
    }
    let (_, cfd, sfd) = pair_hs(&lp);
    let before = lp.visits();
    let rounds = 100;
    let (mk2, rx2) = chan();
    for i in 0..rounds {
        // The read is pending first, so each round completes through a
        // socket event and a dispatch.
        assert_eq!(lp.read(sfd, Read::Any, None, mk2()).unwrap(), Ready::Pending);
        let msg = format!("round {i}");
        send_all(&lp, cfd, msg.as_bytes());
        assert_eq!(wait(&lp, &rx2).2, msg.as_bytes());
    }
    let per_round = (lp.visits() - before) as f64 / rounds as f64;
    // A round is a handful of events on the busy pair; the 400 idle
    // entries and their 400 deadlines are never looked at.
    eprintln!("{per_round} entries visited per round with 400 idle connections");
    assert!((1.0..10.0).contains(&per_round), "{per_round} entries visited per round");
    assert_eq!(lp.pending(), 400);
    drop(lp);
}

#[test]
fn connect_moves_on_when_a_later_address_fails_at_once() {
    let lp = Loop::new().unwrap();
    // A loopback port nobody listens on: refused in the background.
    let l = net::listen(Some("127.0.0.1"), "0", 8).unwrap();
    let closed = net::local_addr(l).unwrap();
    net::close_fd(l);
    // Link-local without a scope id: connect fails at once (EINVAL, or the
    // socket itself where there is no IPv6).
    let addrs = [closed, "[fe80::1]:443".parse().unwrap()];
    let (mk, rx) = chan();
    let timeout = Some(Duration::from_secs(1));
    let before = lp.visits();
    let (r, _) = lp.sh.connect_addrs(&addrs, "127.0.0.1", &client_conf(), timeout, mk()).unwrap();
    assert_eq!(r, Ready::Pending);
    let end = Instant::now() + Duration::from_secs(20);
    let g = loop {
        if let Ok(g) = rx.try_recv() {
            break g;
        }
        assert!(Instant::now() < end, "no completion");
        lp.dispatch(Some(Duration::from_millis(100))).unwrap();
    };
    let visits = lp.visits() - before;
    // The last address's failure, not the deadline, and no spinning on the
    // dead socket meanwhile.
    assert_eq!((g.0, g.1), (-1, COROTLS_ERR_IO), "{}", g.4);
    assert!(g.4.contains("fe80::1"), "{}", g.4);
    assert!(visits < 10, "{visits} dispatch visits");
    assert_eq!(lp.pending(), 0);
    assert!(lp.is_empty());
}

#[test]
fn dispatch_makes_no_recv_that_cannot_find_data() {
    use crate::transport::recv_calls;
    let lp = Loop::new().unwrap();
    let (lfd, cfd, sfd) = pair_hs(&lp);
    // Let the tickets and the like settle.
    for _ in 0..20 {
        lp.dispatch(Some(Duration::from_millis(5))).unwrap();
    }
    // A read completed by a readable event: the read's own recv, no
    // second one that can only find the socket empty.
    let (mk, rx) = chan();
    let rounds = 50;
    let mut in_dispatch = 0;
    for i in 0..rounds {
        assert_eq!(lp.read(sfd, Read::Any, None, mk()).unwrap(), Ready::Pending);
        let before = recv_calls(sfd);
        let msg = format!("round {i}");
        send_all(&lp, cfd, msg.as_bytes());
        assert_eq!(wait(&lp, &rx).2, msg.as_bytes());
        in_dispatch += recv_calls(sfd) - before;
    }
    let per_round = in_dispatch as f64 / rounds as f64;
    assert!(per_round < 1.5, "{per_round} recv calls per read completed by dispatch");
    // A send completed by writable events on a socket nothing arrives on:
    // no recv at all.
    let v: i32 = 4096;
    // SAFETY: plain setsockopt on our socket.
    unsafe { libc::setsockopt(sfd, libc::SOL_SOCKET, libc::SO_SNDBUF, &v as *const _ as *const libc::c_void, 4) };
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let before = recv_calls(sfd);
    assert_eq!(lp.send(sfd, &big, None, mk()).unwrap(), Ready::Pending);
    assert_eq!(recv_exact(&lp, cfd, big.len()), big);
    assert_eq!(wait(&lp, &rx).1, COROTLS_OK);
    assert_eq!(recv_calls(sfd) - before, 0, "recv calls on the sending end");
    for fd in [cfd, sfd, lfd] {
        lp.close(fd).unwrap();
    }
}

/// Dispatch until `f` holds (or panic after `secs`).
fn until(lp: &Loop, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "condition not reached");
        lp.dispatch(Some(Duration::from_millis(10))).unwrap();
    }
}

/// Accept one connection from a peer that connects with `TcpStream`.
fn accept_raw(lp: &Loop, lfd: RawFd) -> (std::net::TcpStream, RawFd) {
    let peer = std::net::TcpStream::connect(format!("127.0.0.1:{}", port_of(lp, lfd))).unwrap();
    let (mk, rx) = chan();
    let fd = match lp.accept(lfd, None, None, mk()).unwrap() {
        Ready::Now(fd) => fd,
        Ready::Pending => wait(lp, &rx).0,
    };
    (peer, fd)
}

#[test]
fn handshake_deadline_ends_a_silent_peer_and_keeps_the_number() {
    use std::io::Read as _;
    let lp = Loop::new().unwrap();
    assert_eq!(lp.handshake_timeout(), Some(DEFAULT_HANDSHAKE_TIMEOUT));
    lp.set_handshake_timeout(Some(Duration::from_millis(50)));
    let lfd = lp.listen(Some("127.0.0.1"), "0", Some(&server_conf())).unwrap();
    let (mut peer, sfd) = accept_raw(&lp, lfd);
    let (mk, rx) = chan();
    // The operation's own timeout is forever: the deadline ends it.
    assert_eq!(lp.read(sfd, Read::Any, None, mk()).unwrap(), Ready::Pending);
    let g = wait(&lp, &rx);
    assert_eq!((g.0, g.1), (sfd, COROTLS_TIMEOUT));
    assert!(g.4.contains("handshake deadline expired"), "{}", g.4);
    // The peer sees its connection end.
    peer.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(matches!(peer.read(&mut [0u8; 16]), Ok(0) | Err(_)));
    // The number stays taken, every call but close says why.
    // SAFETY: fcntl on an integer fd.
    assert!(unsafe { libc::fcntl(sfd, libc::F_GETFD) } >= 0);
    let e = lp.read(sfd, Read::Any, None, mk()).unwrap_err();
    assert_eq!(e.code, COROTLS_ERR_IO);
    assert!(e.msg.contains("shut down by the loop"), "{}", e.msg);
    assert!(!lp.alive(sfd).unwrap());
    assert!(lp.info(sfd, Info::Error).unwrap().contains("deadline expired"));
    // A new connection cannot get the number.
    let (_peer2, sfd2) = accept_raw(&lp, lfd);
    assert_ne!(sfd2, sfd);
    lp.close(sfd).unwrap();
    assert_eq!(lp.close(sfd).unwrap_err().code, COROTLS_ERR_ARG);
    // Without an operation pending, the next call finds out.
    until(&lp, 10, || lp.alive(sfd2).is_ok_and(|a| !a));
    assert_eq!(lp.handshake(sfd2, None, mk()).unwrap_err().code, COROTLS_ERR_IO);
    lp.close(sfd2).unwrap();
    assert_eq!(lp.pending(), 0);
    assert_eq!(lp.next_timeout(), None);
}

#[test]
fn handshake_deadline_off_and_after_the_handshake() {
    let lp = Loop::new().unwrap();
    lp.set_handshake_timeout(None);
    let lfd = lp.listen(Some("127.0.0.1"), "0", Some(&server_conf())).unwrap();
    let (_peer, sfd) = accept_raw(&lp, lfd);
    assert_eq!(lp.next_timeout(), None, "no deadline");
    lp.close(sfd).unwrap();
    lp.close(lfd).unwrap();

    // A deadline no longer applies once the handshake is done: its timer
    // is dropped (no idle deadline).
    lp.set_handshake_timeout(Some(Duration::from_millis(100)));
    let (lfd, cfd, sfd) = pair_hs(&lp);
    assert_eq!(lp.next_timeout(), None);
    let end = Instant::now() + Duration::from_millis(300);
    while Instant::now() < end {
        lp.dispatch(Some(Duration::from_millis(10))).unwrap();
    }
    send_all(&lp, cfd, b"still here");
    assert_eq!(recv_exact(&lp, sfd, 10), b"still here");
    for fd in [cfd, sfd, lfd] {
        lp.close(fd).unwrap();
    }
}

#[test]
fn idle_deadline_counts_bytes_and_spares_connected_ends() {
    let lp = Loop::new().unwrap();
    lp.set_idle_timeout(Some(Duration::from_millis(400)));
    assert_eq!(lp.idle_timeout(), Some(Duration::from_millis(400)));
    let (lfd, cfd, sfd) = pair_hs(&lp);
    // Traffic every 50 ms for longer than the idle time keeps it open.
    let end = Instant::now() + Duration::from_millis(1000);
    while Instant::now() < end {
        send_all(&lp, cfd, b"x");
        assert_eq!(recv_exact(&lp, sfd, 1), b"x");
        let pause = Instant::now() + Duration::from_millis(50);
        while Instant::now() < pause {
            lp.dispatch(Some(Duration::from_millis(10))).unwrap();
        }
    }
    assert!(lp.alive(sfd).unwrap());
    // Silence: the accepted end is ended, its read gets TIMEOUT.
    let (mk, rx) = chan();
    assert_eq!(lp.read(sfd, Read::Any, None, mk()).unwrap(), Ready::Pending);
    let g = wait(&lp, &rx);
    assert_eq!(g.1, COROTLS_TIMEOUT);
    assert!(g.4.contains("idle deadline expired"), "{}", g.4);
    // The connected end has no deadline: it sees the stream end.
    let code = match lp.read(cfd, Read::Any, None, mk()) {
        Err(e) => e.code,
        Ok(Ready::Pending) => wait(&lp, &rx).1,
        Ok(Ready::Now(_)) => panic!("data from an ended connection"),
    };
    assert!(matches!(code, COROTLS_EOF | COROTLS_ERR_IO), "{code:?}");
    for fd in [cfd, sfd, lfd] {
        lp.close(fd).unwrap();
    }
}

#[test]
fn a_panic_in_a_dispatch_step_completes_the_operation_once_with_internal() {
    use std::io::Write;
    let lp = Loop::new().unwrap();
    let lfd = lp.listen(Some("127.0.0.1"), "0", Some(&server_conf())).unwrap();

    // A pending accept: the panic hits the listener's step.
    let (mk, rx) = chan();
    assert_eq!(lp.accept(lfd, None, None, mk()).unwrap(), Ready::Pending);
    lp.inject_panic();
    let _peer = std::net::TcpStream::connect(format!("127.0.0.1:{}", port_of(&lp, lfd))).unwrap();
    let g = wait(&lp, &rx);
    assert_eq!((g.0, g.1), (-1, COROTLS_ERR_INTERNAL), "{}", g.4);
    assert!(g.4.contains("injected by a test"), "{}", g.4);
    assert_eq!(lp.pending(), 0, "nothing is left pending");
    lp.run().unwrap();
    assert!(rx.try_recv().is_err(), "exactly once");

    // A pending handshake on a connection: it completes with ERR_INTERNAL,
    // and the connection refuses further work.  (A new listener: the first
    // one's backlog still holds the connection above.)
    lp.close(lfd).unwrap();
    let lfd = lp.listen(Some("127.0.0.1"), "0", Some(&server_conf())).unwrap();
    let (mut peer, fd) = accept_raw(&lp, lfd);
    let (mk, rx) = chan();
    assert_eq!(lp.handshake(fd, None, mk()).unwrap(), Ready::Pending);
    lp.inject_panic();
    peer.write_all(b"\x16\x03\x01\x00\x05hello").unwrap();
    let g = wait(&lp, &rx);
    assert_eq!((g.0, g.1), (fd, COROTLS_ERR_INTERNAL), "{}", g.4);
    assert_eq!(lp.pending(), 0);
    lp.run().unwrap();
    let (mk, rx2) = chan();
    match lp.handshake(fd, None, mk()) {
        Err(e) => assert_eq!(e.code, COROTLS_ERR_INTERNAL, "{}", e.msg),
        Ok(r) => panic!("a failed connection took a handshake: {r:?} {:?}", rx2.try_recv()),
    }
    assert!(!lp.alive(fd).unwrap());
    lp.close(fd).unwrap();
    lp.close(lfd).unwrap();
}
