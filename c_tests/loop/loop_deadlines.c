/*
 * loop_deadlines.c -- the deadlines that protect a server, over loopback:
 * the handshake deadline of accepted connections (expiry with an operation
 * pending and without one, what the fd number does afterwards, turned off,
 * not applying once the handshake is done, kept per connection), the idle
 * deadline, a listener that runs out of fds (connections shed, the pending
 * accept neither failing nor spinning, accepting again once an fd is free),
 * and bad arguments.  Deadlines are short; the only time bounds are the
 * waits for a callback (10 s).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop_util.h"

static int has(const char *s, const char *needle)
{
    return s && strstr(s, needle) != NULL;
}

/* A raw TCP client of 127.0.0.1:port that never speaks, accepted on lfd:
 * returns the accepted fd (or -1); *peer gets the client socket. */
static int accept_silent(corotls_loop *l, int lfd, int port, int *peer)
{
    *peer = harness_connect_loopback(port);
    if (*peer < 0)
        return -1;
    struct lu_done d = {0};
    int fd = -1;
    corotls_result r = corotls_loop_accept(l, lfd, NULL, 10000, lu_cb, &d, &fd);
    if (r == COROTLS_PENDING)
        fd = lu_wait(l, &d, 10000) && d.r == COROTLS_OK ? d.fd : -1;
    else if (r != COROTLS_OK)
        fd = -1;
    lu_reset(&d);
    return fd;
}

/* The peer's end of the connection ended (EOF or reset) within 10 s,
 * while the loop is dispatched. */
static int peer_sees_end(corotls_loop *l, int peer)
{
    char buf[64];
    long long end = harness_now_ms() + 10000;
    while (harness_now_ms() < end) {
        ssize_t n = recv(peer, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            return 1;
        corotls_loop_dispatch(l, 10, NULL);
    }
    return 0;
}

/* The fd number is still taken in this process. */
static int fd_taken(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

TEST(test_bad_arguments)
{
    uint64_t n = 7;
    CHECK(corotls_loop_set_handshake_timeout(NULL, 1000) == COROTLS_ERR_ARG, "set_handshake_timeout(NULL loop)");
    CHECK(has(corotls_last_error(), "loop is NULL"), "message: %s", corotls_last_error());
    CHECK(corotls_loop_set_idle_timeout(NULL, 1000) == COROTLS_ERR_ARG, "set_idle_timeout(NULL loop)");
    CHECK(corotls_loop_shed_count(NULL, 3, &n) == COROTLS_ERR_ARG && n == 0, "shed_count(NULL loop) clears out");

    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int bad[] = {-2, -1000, INT32_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(corotls_loop_set_handshake_timeout(l, bad[i]) == COROTLS_ERR_ARG, "handshake timeout %d: ERR_ARG",
              bad[i]);
        CHECK(has(corotls_last_error(), "invalid"), "message: %s", corotls_last_error());
        CHECK(corotls_loop_set_idle_timeout(l, bad[i]) == COROTLS_ERR_ARG, "idle timeout %d: ERR_ARG", bad[i]);
    }
    int good[] = {-1, 0, 1, 30000, INT32_MAX};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        CHECK(corotls_loop_set_handshake_timeout(l, good[i]) == COROTLS_OK, "handshake timeout %d: OK", good[i]);
        CHECK(corotls_loop_set_idle_timeout(l, good[i]) == COROTLS_OK, "idle timeout %d: OK", good[i]);
    }
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0, "listener");
    CHECK(corotls_loop_shed_count(l, lfd, NULL) == COROTLS_ERR_ARG, "shed_count with NULL out");
    CHECK(corotls_loop_shed_count(l, lfd, &n) == COROTLS_OK && n == 0, "a new listener shed nothing");
    CHECK(corotls_loop_shed_count(l, 9999, &n) == COROTLS_ERR_ARG, "shed_count of an unknown fd");
    REQUIRE(corotls_loop_set_handshake_timeout(l, -1) == COROTLS_OK && corotls_loop_set_idle_timeout(l, -1) ==
                COROTLS_OK,
            "deadlines off");
    REQUIRE(lu_pair(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    corotls_result r = corotls_loop_shed_count(l, sfd, &n);
    CHECK(r == COROTLS_ERR_ARG && has(corotls_last_error(), "not a listener"), "shed_count of a connection: %s",
          corotls_last_error());
    corotls_loop_free(l);
}

/* A peer that connects and never speaks, a handshake pending with no
 * timeout of its own: the deadline ends it with TIMEOUT; then the fd
 * number stays taken, calls say why, close releases it. */
TEST(test_handshake_deadline_with_pending_operation)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    REQUIRE(corotls_loop_set_handshake_timeout(l, 200) == COROTLS_OK, "handshake deadline 200 ms");
    int port, lfd = lu_listen(l, lu_sconf, &port), peer;
    REQUIRE(lfd >= 0, "listener");
    int sfd = accept_silent(l, lfd, port, &peer);
    REQUIRE(sfd >= 0, "accepted a peer that never speaks");
    CHECK(corotls_loop_timeout(l) >= 0 && corotls_loop_timeout(l) <= 200, "the deadline is the loop's next (%d ms)",
          corotls_loop_timeout(l));
    struct lu_done d = {0};
    REQUIRE(corotls_loop_handshake(l, sfd, -1, lu_cb, &d) == COROTLS_PENDING, "handshake pending, no timeout");
    REQUIRE(lu_wait(l, &d, 10000), "called back");
    CHECK(d.calls == 1 && d.r == COROTLS_TIMEOUT && d.fd == sfd, "TIMEOUT (%s)", corotls_result_name(d.r));
    CHECK(has(d.msg, "handshake deadline expired"), "message: %s", d.msg);
    lu_reset(&d);
    CHECK(peer_sees_end(l, peer), "the peer sees its connection end");

    /* The number is reserved until close. */
    CHECK(fd_taken(sfd), "fd %d is still taken (nothing else can get the number)", sfd);
    const uint8_t *data;
    size_t len, n;
    bool alive = true;
    char buf[256];
    CHECK(corotls_loop_recv(l, sfd, -1, lu_cb, &d, &data, &len) == COROTLS_ERR_IO && d.calls == 0,
          "recv afterwards: ERR_IO at once");
    CHECK(has(corotls_last_error(), "shut down by the loop"), "message: %s", corotls_last_error());
    CHECK(corotls_loop_send(l, sfd, (const uint8_t *)"x", 1, -1, lu_cb, &d) == COROTLS_ERR_IO, "send: ERR_IO");
    CHECK(corotls_loop_handshake(l, sfd, -1, lu_cb, &d) == COROTLS_ERR_IO, "handshake: ERR_IO");
    CHECK(corotls_loop_unread_bytes(l, sfd, &n) == COROTLS_ERR_IO, "unread_bytes: ERR_IO");
    CHECK(corotls_loop_set_limit(l, sfd, 10) == COROTLS_ERR_IO, "set_limit: ERR_IO");
    CHECK(corotls_loop_info(l, sfd, COROTLS_INFO_VERSION, buf, sizeof buf, NULL) == COROTLS_ERR_IO, "info: ERR_IO");
    CHECK(corotls_loop_is_alive(l, sfd, &alive) == COROTLS_OK && !alive, "is_alive: false");
    CHECK(corotls_loop_info(l, sfd, COROTLS_INFO_ERROR, buf, sizeof buf, NULL) == COROTLS_OK &&
              has(buf, "deadline expired"),
          "INFO_ERROR says why: %s", buf);
    CHECK(d.calls == 0, "no callback from the refused calls");
    /* A new connection cannot get the number while it is reserved. */
    int peer2, sfd2 = accept_silent(l, lfd, port, &peer2);
    CHECK(sfd2 >= 0 && sfd2 != sfd, "the next accept gets another number (%d, not %d)", sfd2, sfd);
    CHECK(corotls_loop_close(l, sfd) == COROTLS_OK, "close works");
    CHECK(!fd_taken(sfd), "close released the number");
    CHECK(corotls_loop_close(l, sfd) == COROTLS_ERR_ARG, "a second close is ERR_ARG");
    if (sfd2 >= 0)
        corotls_loop_close(l, sfd2);
    CHECK(corotls_loop_pending(l) == 0, "nothing pending");
    close(peer);
    close(peer2);
    corotls_loop_free(l);
}

/* No operation pending when the deadline expires: the next call finds out;
 * a shorter operation timeout still works as before. */
TEST(test_handshake_deadline_without_operation)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    REQUIRE(corotls_loop_set_handshake_timeout(l, 300) == COROTLS_OK, "handshake deadline 300 ms");
    int port, lfd = lu_listen(l, lu_sconf, &port), peer;
    int sfd = accept_silent(l, lfd, port, &peer);
    REQUIRE(sfd >= 0, "accepted a silent peer");
    struct lu_done d = {0};
    REQUIRE(corotls_loop_handshake(l, sfd, 20, lu_cb, &d) == COROTLS_PENDING, "handshake with a 20 ms timeout");
    REQUIRE(lu_wait(l, &d, 10000), "called back");
    CHECK(d.r == COROTLS_TIMEOUT && has(d.msg, "handshake timed out"), "the operation's own TIMEOUT first: %s",
          d.msg);
    lu_reset(&d);
    bool alive = false;
    CHECK(corotls_loop_is_alive(l, sfd, &alive) == COROTLS_OK && alive, "the connection is still there");
    CHECK(peer_sees_end(l, peer), "the deadline ends it with no operation pending");
    CHECK(corotls_loop_is_alive(l, sfd, &alive) == COROTLS_OK && !alive, "is_alive: false");
    corotls_result r = corotls_loop_handshake(l, sfd, -1, lu_cb, &d);
    CHECK(r == COROTLS_ERR_IO && d.calls == 0, "the next handshake: ERR_IO at once (%s)", corotls_last_error());
    CHECK(corotls_loop_close(l, sfd) == COROTLS_OK, "close");
    close(peer);
    corotls_loop_free(l);
}

/* -1 turns it off; a connection keeps the deadline it was accepted with. */
TEST(test_handshake_deadline_off_and_kept_per_connection)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), p1, p2;
    REQUIRE(corotls_loop_set_handshake_timeout(l, 200) == COROTLS_OK, "200 ms");
    int timed = accept_silent(l, lfd, port, &p1);
    REQUIRE(corotls_loop_set_handshake_timeout(l, -1) == COROTLS_OK, "then off");
    int untimed = accept_silent(l, lfd, port, &p2);
    REQUIRE(timed >= 0 && untimed >= 0, "two silent peers accepted");
    struct lu_done d1 = {0}, d2 = {0};
    const uint8_t *data;
    size_t len;
    REQUIRE(corotls_loop_recv(l, timed, -1, lu_cb, &d1, &data, &len) == COROTLS_PENDING, "recv on the first");
    REQUIRE(corotls_loop_recv(l, untimed, -1, lu_cb, &d2, &data, &len) == COROTLS_PENDING, "recv on the second");
    REQUIRE(lu_wait(l, &d1, 10000), "the first is called back");
    CHECK(d1.r == COROTLS_TIMEOUT && has(d1.msg, "handshake deadline"), "the first got its deadline: %s", d1.msg);
    lu_spin(l, 300);
    CHECK(d2.calls == 0, "the one accepted with the deadline off still waits");
    CHECK(corotls_loop_timeout(l) == -1, "no deadline left in the loop");
    bool alive = false;
    CHECK(corotls_loop_is_alive(l, untimed, &alive) == COROTLS_OK && alive, "and is alive");
    corotls_loop_close(l, timed);
    corotls_loop_close(l, untimed);
    CHECK(lu_wait(l, &d2, 10000) && d2.r == COROTLS_ERR_CANCELLED, "closing it cancels its recv");
    lu_reset(&d1);
    lu_reset(&d2);
    close(p1);
    close(p2);
    corotls_loop_free(l);
}

/* Once the handshake is done the handshake deadline no longer applies. */
TEST(test_handshake_deadline_ends_with_the_handshake)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    /* Long enough for a handshake under valgrind. */
    int ms = lu_scale(300, 3000);
    REQUIRE(corotls_loop_set_handshake_timeout(l, ms) == COROTLS_OK, "%d ms", ms);
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair, handshakes done");
    CHECK(corotls_loop_timeout(l) == -1, "the handshake dropped the deadline");
    struct lu_done d = {0};
    const uint8_t *data;
    size_t len;
    REQUIRE(corotls_loop_recv(l, sfd, -1, lu_cb, &d, &data, &len) == COROTLS_PENDING, "recv pending");
    lu_spin(l, ms + 400);
    CHECK(d.calls == 0, "still waiting well after the deadline would have been");
    CHECK(lu_send(l, cfd, "late", 4, 5000, NULL) == COROTLS_OK, "the client sends");
    CHECK(lu_wait(l, &d, 10000) && d.r == COROTLS_OK && d.len == 4 && !memcmp(d.data, "late", 4),
          "the server receives it");
    lu_reset(&d);
    corotls_loop_free(l);
}

/* The idle deadline: bytes either way keep a connection; silence ends it
 * (also after the handshake); connected ends have none. */
TEST(test_idle_deadline)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int idle = lu_scale(500, 1500);
    REQUIRE(corotls_loop_set_idle_timeout(l, idle) == COROTLS_OK, "idle deadline %d ms", idle);
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    /* Traffic every 50 ms for three idle periods. */
    long long end = harness_now_ms() + 3 * idle;
    int rounds = 0, ok = 1;
    uint8_t got[8];
    while (ok && harness_now_ms() < end) {
        ok = lu_transfer(l, rounds % 2 ? cfd : sfd, rounds % 2 ? sfd : cfd, "tick", 4, got) == COROTLS_OK;
        rounds++;
        lu_spin(l, 50);
    }
    CHECK(ok, "%d exchanges over three idle periods, none refused", rounds);
    bool alive = false;
    CHECK(corotls_loop_is_alive(l, sfd, &alive) == COROTLS_OK && alive, "traffic kept the server end");

    /* Data delivered inline stays valid after an expiry until the next
     * operation on the fd (valgrind checks the read below). */
    const uint8_t *data = NULL;
    size_t len = 0, unread = 0;
    CHECK(lu_send(l, cfd, "kept", 4, 5000, NULL) == COROTLS_OK, "the client sends 4 bytes");
    long long until = harness_now_ms() + 10000;
    while ((corotls_loop_unread_bytes(l, sfd, &unread) != COROTLS_OK || unread < 4) && harness_now_ms() < until)
        corotls_loop_dispatch(l, 10, NULL);
    struct lu_done d = {0};
    CHECK(corotls_loop_recv(l, sfd, -1, lu_cb, &d, &data, &len) == COROTLS_OK && len == 4, "received inline");
    until = harness_now_ms() + idle + 10000;
    while (corotls_loop_is_alive(l, sfd, &alive) == COROTLS_OK && alive && harness_now_ms() < until)
        corotls_loop_dispatch(l, 10, NULL);
    CHECK(!alive, "silence: the idle deadline ended it with no operation pending");
    CHECK(data && len == 4 && memcmp(data, "kept", 4) == 0, "the inline chunk is still valid");
    CHECK(corotls_loop_recv(l, sfd, -1, lu_cb, &d, &data, &len) == COROTLS_ERR_IO && d.calls == 0,
          "the next recv: ERR_IO");
    corotls_result r = lu_recv_result(l, cfd, 10000);
    CHECK(r == COROTLS_EOF || r == COROTLS_ERR_IO, "the connected end has no deadline: it sees the end (%s)",
          corotls_result_name(r));
    CHECK(corotls_loop_close(l, sfd) == COROTLS_OK && corotls_loop_close(l, cfd) == COROTLS_OK, "both close");

    /* A pending recv gets TIMEOUT. */
    REQUIRE(lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "another pair");
    REQUIRE(corotls_loop_recv(l, sfd, -1, lu_cb, &d, &data, &len) == COROTLS_PENDING, "recv pending, silence");
    REQUIRE(lu_wait(l, &d, idle + 10000), "called back");
    CHECK(d.r == COROTLS_TIMEOUT && has(d.msg, "idle deadline expired"), "TIMEOUT: %s", d.msg);
    lu_reset(&d);
    CHECK(corotls_loop_close(l, sfd) == COROTLS_OK && corotls_loop_close(l, cfd) == COROTLS_OK, "both close");

    /* The idle deadline also bounds a handshake that never happens. */
    REQUIRE(corotls_loop_set_handshake_timeout(l, -1) == COROTLS_OK, "handshake deadline off");
    REQUIRE(corotls_loop_set_idle_timeout(l, 200) == COROTLS_OK, "idle 200 ms");
    int peer, s2 = accept_silent(l, lfd, port, &peer);
    REQUIRE(s2 >= 0, "silent peer");
    REQUIRE(corotls_loop_handshake(l, s2, -1, lu_cb, &d) == COROTLS_PENDING, "handshake pending");
    REQUIRE(lu_wait(l, &d, 10000), "called back");
    CHECK(d.r == COROTLS_TIMEOUT && has(d.msg, "idle deadline"), "TIMEOUT: %s", d.msg);
    lu_reset(&d);
    corotls_loop_close(l, s2);
    close(peer);
    corotls_loop_free(l);
}

/* Drive a server handshake on the loop and a client corotls_conn on the
 * same thread until both are done. */
static int handshake_both(corotls_loop *l, int sfd, corotls_conn *c)
{
    struct lu_done d = {0};
    corotls_result rs = corotls_loop_handshake(l, sfd, 10000, lu_cb, &d);
    corotls_result rc = COROTLS_WANT_READ;
    long long end = harness_now_ms() + 10000;
    while (harness_now_ms() < end && (rc == COROTLS_WANT_READ || rc == COROTLS_WANT_WRITE ||
                                      (rs == COROTLS_PENDING && d.calls == 0))) {
        if (rc == COROTLS_WANT_READ || rc == COROTLS_WANT_WRITE)
            rc = corotls_conn_handshake(c);
        corotls_loop_dispatch(l, 5, NULL);
    }
    if (rs == COROTLS_PENDING)
        rs = d.calls ? d.r : COROTLS_TIMEOUT;
    lu_reset(&d);
    return rs == COROTLS_OK && rc == COROTLS_OK;
}

/* Out of fds: connections are shed at once (their peers see the end), the
 * pending accept neither fails nor spins, the listener's last error says
 * why; once an fd is free the next connection is accepted and served. */
TEST(test_out_of_fds_sheds_and_recovers)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port);
    REQUIRE(lfd >= 0, "listener");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    enum { NC = 3 };
    int c[NC];
    for (int i = 0; i < NC; i++)
        c[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(c[0] >= 0 && c[1] >= 0 && c[2] >= 0, "client sockets made while fds are left");

    struct rlimit old;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0, "getrlimit");
    int probe = dup(0); /* the lowest free number: about how many are open */
    close(probe);
    struct rlimit low = {.rlim_cur = (rlim_t)probe + 16, .rlim_max = old.rlim_max};
    REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0, "soft RLIMIT_NOFILE lowered to %d", probe + 16);
    int fill[64], nfill = 0;
    while (nfill < 64 && (fill[nfill] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        nfill++;
    int full = nfill < 64 && errno == EMFILE;
    CHECK(full, "the process is out of fds (%d filled)", nfill);

    struct lu_done d = {0};
    int fd = -1;
    corotls_result r = corotls_loop_accept(l, lfd, NULL, -1, lu_cb, &d, &fd);
    CHECK(r == COROTLS_PENDING && fd == -1, "accept with no fd left: PENDING (%s)", corotls_result_name(r));
    int connected = 0;
    for (int i = 0; i < 2; i++)
        connected += connect(c[i], (struct sockaddr *)&a, sizeof a) == 0;
    CHECK(connected == 2, "two peers connect (the kernel queues them)");
    CHECK(peer_sees_end(l, c[0]) && peer_sees_end(l, c[1]), "both are shed: their connections end at once");
    lu_spin(l, 50);
    CHECK(d.calls == 0 && corotls_loop_pending(l) == 1, "the accept neither failed nor completed");
    uint64_t shed = 0;
    CHECK(corotls_loop_shed_count(l, lfd, &shed) == COROTLS_OK, "shed count");
    /* valgrind emulates the fd limit itself: its accept takes the
     * connection and closes it, leaving the loop nothing to shed. */
    CHECK(shed == 2 || (lu_quick() && shed <= 2), "both were shed by the loop (%llu)", (unsigned long long)shed);
    char why[256] = "";
    corotls_loop_info(l, lfd, COROTLS_INFO_ERROR, why, sizeof why, NULL);
    CHECK(lu_quick() || (has(why, "Too many open files") && has(why, "shed")), "the listener says why: %s", why);
    struct pollfd lp = {.fd = corotls_loop_fd(l), .events = POLLIN};
    CHECK(poll(&lp, 1, 200) == 0, "the loop is quiet meanwhile (no spinning on the listener)");

    /* One fd is freed: the next connection is accepted for real. */
    close(fill[--nfill]);
    CHECK(connect(c[2], (struct sockaddr *)&a, sizeof a) == 0, "a third peer connects");
    CHECK(lu_wait(l, &d, 10000) && d.r == COROTLS_OK && d.fd >= 0, "the pending accept completes with it (%s)",
          corotls_result_name(d.r));
    int sfd = d.fd;
    lu_reset(&d);

    while (nfill > 0)
        close(fill[--nfill]);
    CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0, "limit restored");
    if (sfd >= 0) {
        corotls_conn *cc = NULL;
        CHECK(corotls_conn_new(lu_cconf, c[2], &cc) == COROTLS_OK && handshake_both(l, sfd, cc),
              "it is served: both handshakes complete");
        corotls_conn_free(cc);
        corotls_loop_close(l, sfd);
    }
    /* Later accepts work as usual. */
    int cfd2, sfd2;
    CHECK(lu_pair(l, lfd, port, lu_cconf, &cfd2, &sfd2) == 0, "the listener accepts as before");
    for (int i = 0; i < NC; i++)
        close(c[i]);
    corotls_loop_free(l);
}

int main(void)
{
    return lu_main();
}
