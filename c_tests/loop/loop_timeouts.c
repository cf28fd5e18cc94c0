/*
 * loop_timeouts.c -- every operation's timeout, over loopback only: accept
 * with no client, a handshake against a peer that never speaks (both
 * roles), recv and read with nothing coming, send against a peer that never
 * reads (the stream stays valid afterwards), connect to a listener whose
 * backlog is full, timeout 0, and corotls_loop_timeout.  No assertion is
 * about how long anything took.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop_util.h"

static int has(const char *s, const char *needle)
{
    return s && strstr(s, needle) != NULL;
}

TEST(test_accept_timeout)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), fd;
    struct lu_done d = {0};
    REQUIRE(corotls_loop_accept(l, lfd, NULL, 50, lu_cb, &d, &fd) == COROTLS_PENDING, "accept pending");
    REQUIRE(lu_wait(l, &d, 10000), "called back");
    CHECK(d.r == COROTLS_TIMEOUT && d.fd == -1, "accept TIMEOUT, no fd (%s)", corotls_result_name(d.r));
    CHECK(has(d.msg, "timed out"), "message: %s", d.msg);
    lu_reset(&d);
    /* The listener is still usable. */
    int cfd, sfd;
    CHECK(lu_pair(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "accept works after the timeout");
    corotls_loop_free(l);
}

/* A client handshake against a TCP server that never speaks, and a server
 * handshake against a TCP client that never speaks. */
TEST(test_handshake_timeout_silent_peer)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    struct lu_done d = {0};
    int port, silent = harness_listen_loopback(&port), cfd;
    REQUIRE(silent >= 0, "plain listener that never accepts");
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    corotls_result r = corotls_loop_connect(l, "127.0.0.1", ps, lu_cconf, 5000, lu_cb, &d, &cfd);
    if (r == COROTLS_PENDING) {
        REQUIRE(lu_wait(l, &d, 5000) && d.r == COROTLS_OK, "TCP connect completes (the kernel queues it)");
        cfd = d.fd;
    }
    lu_reset(&d);
    REQUIRE(corotls_loop_handshake(l, cfd, 80, lu_cb, &d) == COROTLS_PENDING, "client handshake pending");
    REQUIRE(lu_wait(l, &d, 10000), "called back");
    CHECK(d.r == COROTLS_TIMEOUT && d.fd == cfd, "client handshake TIMEOUT (%s)", corotls_result_name(d.r));
    lu_reset(&d);
    bool alive = false;
    CHECK(corotls_loop_is_alive(l, cfd, &alive) == COROTLS_OK, "the fd stays open after a timeout");
    corotls_loop_close(l, cfd);
    close(silent);

    int lfd = lu_listen(l, lu_sconf, &port), sfd;
    int raw = harness_connect_loopback(port);
    REQUIRE(raw >= 0, "raw TCP client that never speaks");
    r = corotls_loop_accept(l, lfd, NULL, 5000, lu_cb, &d, &sfd);
    if (r == COROTLS_PENDING) {
        REQUIRE(lu_wait(l, &d, 5000) && d.r == COROTLS_OK, "accepted");
        sfd = d.fd;
    }
    lu_reset(&d);
    REQUIRE(corotls_loop_handshake(l, sfd, 80, lu_cb, &d) == COROTLS_PENDING, "server handshake pending");
    REQUIRE(lu_wait(l, &d, 10000), "called back");
    CHECK(d.r == COROTLS_TIMEOUT && d.fd == sfd, "server handshake TIMEOUT (%s)", corotls_result_name(d.r));
    lu_reset(&d);
    /* A second timed handshake also times out, then the peer vanishes:
     * EOF. */
    REQUIRE(corotls_loop_handshake(l, sfd, 60000, lu_cb, &d) == COROTLS_PENDING, "handshake again");
    close(raw);
    REQUIRE(lu_wait(l, &d, 10000), "called back");
    CHECK(d.r == COROTLS_EOF, "peer gone during the handshake: EOF (%s: %s)", corotls_result_name(d.r), d.msg);
    lu_reset(&d);
    corotls_loop_free(l);
}

/* A handshake that timed out (the server was not driving its side) is
 * resumed by the next operation. */
TEST(test_handshake_resumes_after_timeout)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair (no operation on the server yet)");
    struct lu_done d = {0};
    REQUIRE(corotls_loop_handshake(l, cfd, 50, lu_cb, &d) == COROTLS_PENDING, "client handshake, 50 ms");
    REQUIRE(lu_wait(l, &d, 10000), "called back");
    CHECK(d.r == COROTLS_TIMEOUT, "TIMEOUT: the server did not answer yet (%s)", corotls_result_name(d.r));
    lu_reset(&d);
    uint8_t buf[8];
    CHECK(lu_transfer(l, cfd, sfd, "resumed", 7, buf) == COROTLS_OK,
          "the client's send resumes the handshake once the server's recv drives its side");
    char v[32];
    CHECK(corotls_loop_info(l, cfd, COROTLS_INFO_VERSION, v, sizeof v, NULL) == COROTLS_OK && v[0], "version %s", v);
    corotls_loop_free(l);
}

/* recv / read / read_until time out; buffered data survives. */
TEST(test_recv_timeouts_keep_data)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    struct lu_done d = {0};
    const uint8_t *data;
    size_t len = 0, n = 0;

    REQUIRE(corotls_loop_recv(l, sfd, 50, lu_cb, &d, &data, &len) == COROTLS_PENDING, "recv pending");
    REQUIRE(lu_wait(l, &d, 10000), "called back");
    CHECK(d.r == COROTLS_TIMEOUT && d.fd == sfd && d.data == NULL, "recv TIMEOUT");
    lu_reset(&d);

    CHECK(lu_send(l, cfd, "123", 3, 5000, NULL) == COROTLS_OK, "peer sends 3 bytes");
    REQUIRE(corotls_loop_read(l, sfd, 5, 50, lu_cb, &d, &data, &len) == COROTLS_PENDING, "read(5) pending");
    REQUIRE(lu_wait(l, &d, 10000), "called back");
    CHECK(d.r == COROTLS_TIMEOUT, "read(5) TIMEOUT with 3 bytes there");
    lu_reset(&d);
    CHECK(corotls_loop_unread_bytes(l, sfd, &n) == COROTLS_OK && n == 3, "the 3 bytes stay buffered (%zu)", n);
    REQUIRE(corotls_loop_read_until(l, sfd, (const uint8_t *)"\n", 1, 0, 50, lu_cb, &d, &data, &len) ==
                COROTLS_PENDING,
            "read_until pending");
    REQUIRE(lu_wait(l, &d, 10000), "called back");
    CHECK(d.r == COROTLS_TIMEOUT, "read_until TIMEOUT");
    lu_reset(&d);
    CHECK(lu_send(l, cfd, "45\n", 3, 5000, NULL) == COROTLS_OK, "peer sends the rest");
    REQUIRE(corotls_loop_read(l, sfd, 5, 5000, lu_cb, &d, &data, &len) != COROTLS_ERR_ARG, "read(5)");
    if (d.calls == 0 && data) {
        CHECK(len == 5 && memcmp(data, "12345", 5) == 0, "read(5) gets 12345 inline");
    } else {
        CHECK(lu_wait(l, &d, 5000) && d.len == 5 && memcmp(d.data, "12345", 5) == 0, "read(5) gets 12345");
    }
    lu_reset(&d);
    corotls_result r = corotls_loop_read_until(l, sfd, (const uint8_t *)"\n", 1, 0, 5000, lu_cb, &d, &data, &len);
    CHECK(r == COROTLS_OK && len == 1 && data[0] == '\n', "the line's end is still there");

    /* Timeout 0: not finished inline -> TIMEOUT at the next dispatch. */
    REQUIRE(corotls_loop_recv(l, sfd, 0, lu_cb, &d, &data, &len) == COROTLS_PENDING, "recv(timeout 0)");
    size_t ran = 0;
    corotls_loop_dispatch(l, 0, &ran);
    CHECK(d.calls == 1 && d.r == COROTLS_TIMEOUT, "timeout 0 expires at the next dispatch");
    lu_reset(&d);
    CHECK(corotls_loop_send(l, cfd, (const uint8_t *)"now", 3, 0, lu_cb, &d) == COROTLS_OK,
          "a send that fits completes inline even with timeout 0");
    corotls_loop_free(l);
}

/* send to a peer that never reads: TIMEOUT with the committed count; the
 * peer later receives exactly that prefix, then the next message. */
TEST(test_send_timeout_stream_stays_valid)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    lu_small_buffers(cfd, 4096);
    lu_small_buffers(sfd, 4096);
    REQUIRE(corotls_loop_set_limit(l, sfd, 1) == COROTLS_OK, "the peer stops reading");
    size_t big = (size_t)lu_scale(8, 2) << 20;
    uint8_t *p = malloc(big + 16);
    util_fill(p, big, 7);
    struct lu_done d = {0};
    REQUIRE(corotls_loop_send(l, cfd, p, big, 100, lu_cb, &d) == COROTLS_PENDING, "big send pending");
    REQUIRE(lu_wait(l, &d, 30000), "called back");
    CHECK(d.r == COROTLS_TIMEOUT && d.data == NULL, "send TIMEOUT (%s)", corotls_result_name(d.r));
    size_t committed = d.len;
    CHECK(committed < big, "%zu of %zu bytes committed", committed, big);
    lu_reset(&d);
    size_t unsent = 0;
    CHECK(corotls_loop_unsent_bytes(l, cfd, &unsent) == COROTLS_OK, "unsent bytes: %zu", unsent);

    /* The peer reads again. */
    REQUIRE(corotls_loop_set_limit(l, sfd, 0) == COROTLS_OK, "the peer reads again");
    memcpy(p + committed, "after-timeout", 13);
    uint8_t *got = malloc(committed + 13);
    struct lu_done sd = {0};
    REQUIRE(corotls_loop_send(l, cfd, (const uint8_t *)"after-timeout", 13, 30000, lu_cb, &sd) != COROTLS_ERR_ARG,
            "send after the timeout");
    CHECK(lu_recv_n(l, sfd, got, committed + 13, 30000) == COROTLS_OK, "received %zu bytes", committed + 13);
    CHECK(memcmp(got, p, committed + 13) == 0, "exactly the committed prefix, then the next message, in order");
    if (sd.calls == 0)
        lu_wait(l, &sd, 30000);
    CHECK(corotls_loop_unsent_bytes(l, cfd, &unsent) == COROTLS_OK && unsent == 0, "nothing left unsent");
    lu_reset(&sd);
    free(got);
    free(p);
    corotls_loop_free(l);
}

/* connect to a listener whose backlog is full: TIMEOUT, and the fd that
 * PENDING reported is closed. */
TEST(test_connect_timeout_full_backlog)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int fill[16], nfill, port;
    int lfd = lu_full_listener(&port, fill, &nfill, 16);
    REQUIRE(lfd >= 0, "listener with a full backlog (%d sockets fill it)", nfill);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct lu_done d = {0};
    int fd;
    REQUIRE(corotls_loop_connect(l, "127.0.0.1", ps, lu_cconf, 100, lu_cb, &d, &fd) == COROTLS_PENDING && fd >= 0,
            "connect pending");
    int t = corotls_loop_timeout(l);
    CHECK(t >= 0 && t <= 100, "corotls_loop_timeout reports the deadline (%d ms)", t);
    REQUIRE(lu_wait(l, &d, 10000), "called back");
    CHECK(d.r == COROTLS_TIMEOUT && d.fd == -1, "connect TIMEOUT, fd -1 (%s)", corotls_result_name(d.r));
    lu_reset(&d);
    CHECK(corotls_loop_close(l, fd) == COROTLS_ERR_ARG, "the timed-out connect's fd is gone");
    CHECK(corotls_loop_timeout(l) == -1, "no deadline left");
    /* By name: the deadline covers resolution and connection. */
    REQUIRE(corotls_loop_connect(l, "localhost", ps, lu_cconf, 100, lu_cb, &d, &fd) == COROTLS_PENDING && fd == -1,
            "connect by name pending, fd unknown yet");
    REQUIRE(lu_wait(l, &d, 10000), "called back");
    CHECK(d.r == COROTLS_TIMEOUT && d.fd == -1, "named connect TIMEOUT (%s)", corotls_result_name(d.r));
    lu_reset(&d);
    CHECK(corotls_loop_pending(l) == 0, "nothing pending");
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(lfd);
    corotls_loop_free(l);
}

int main(void)
{
    return lu_main();
}
