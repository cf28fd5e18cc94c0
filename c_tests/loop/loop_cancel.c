/*
 * loop_cancel.c -- corotls_loop_cancel: the operation in flight completes
 * with ERR_CANCELLED at the next dispatch, exactly once, and the fd stays
 * open and usable with nothing lost (recv, handshake, send, accept); a
 * connect is closed.  Bad input.  Real loopback sockets throughout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop_util.h"

TEST(test_cancel_bad_input)
{
    CHECK(corotls_loop_cancel(NULL, 3) == COROTLS_ERR_ARG, "cancel(NULL loop) is ERR_ARG");
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    CHECK(corotls_loop_cancel(l, -1) == COROTLS_ERR_ARG, "cancel of fd -1");
    CHECK(corotls_loop_cancel(l, 9999) == COROTLS_ERR_ARG, "cancel of an unknown fd");
    CHECK(strstr(corotls_last_error(), "not open") != NULL, "message: %s", corotls_last_error());
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    CHECK(corotls_loop_cancel(l, cfd) == COROTLS_ERR_ARG, "cancel with nothing in flight is ERR_ARG");
    CHECK(strstr(corotls_last_error(), "no operation in flight") != NULL, "message: %s", corotls_last_error());
    CHECK(corotls_loop_cancel(l, lfd) == COROTLS_ERR_ARG, "cancel of an idle listener is ERR_ARG");
    bool alive = false;
    CHECK(corotls_loop_is_alive(l, cfd, &alive) == COROTLS_OK && alive, "the connection is untouched");
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
}

/* A pending recv: cancelled, the fd is usable at once, nothing is lost. */
TEST(test_cancel_recv)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    struct lu_done a = {0}, b = {0};
    const uint8_t *data = NULL;
    size_t len = 0;

    REQUIRE(corotls_loop_recv(l, sfd, -1, lu_cb, &a, &data, &len) == COROTLS_PENDING, "recv pending");
    CHECK(corotls_loop_recv(l, sfd, -1, lu_cb, &b, &data, &len) == COROTLS_BUSY, "a second recv is BUSY");
    CHECK(corotls_loop_cancel(l, sfd) == COROTLS_OK, "cancel is OK");
    CHECK(a.calls == 0, "the callback does not run inside cancel");
    CHECK(corotls_loop_cancel(l, sfd) == COROTLS_ERR_ARG, "a second cancel finds nothing in flight");
    CHECK(corotls_loop_recv(l, sfd, 5000, lu_cb, &b, &data, &len) == COROTLS_PENDING,
          "a new recv is accepted at once (not BUSY)");
    REQUIRE(lu_wait(l, &a, 5000), "the cancelled recv calls back");
    CHECK(a.r == COROTLS_ERR_CANCELLED && a.fd == sfd && a.data == NULL && a.len == 0,
          "with ERR_CANCELLED on its fd, no data (%s)", corotls_result_name(a.r));
    CHECK(strstr(a.msg, "cancelled") != NULL, "message: %s", a.msg);
    CHECK(b.calls == 0, "the new recv still waits");
    CHECK(corotls_loop_send(l, cfd, (const uint8_t *)"after-cancel", 12, -1, lu_cb, &a) == COROTLS_OK, "peer sends");
    REQUIRE(lu_wait(l, &b, 5000), "the new recv completes");
    CHECK(b.r == COROTLS_OK && b.len == 12 && memcmp(b.data, "after-cancel", 12) == 0, "with the data");
    lu_spin(l, 30);
    CHECK(a.calls == 1 && b.calls == 1, "each callback exactly once");

    /* Data that arrives while nobody reads stays buffered across a cancel. */
    lu_reset(&a);
    lu_reset(&b);
    REQUIRE(corotls_loop_recv(l, sfd, -1, lu_cb, &a, &data, &len) == COROTLS_PENDING, "recv pending again");
    CHECK(corotls_loop_cancel(l, sfd) == COROTLS_OK, "cancel");
    CHECK(corotls_loop_send(l, cfd, (const uint8_t *)"kept", 4, -1, lu_cb, &b) == COROTLS_OK, "peer sends");
    REQUIRE(lu_wait(l, &a, 5000), "cancelled callback");
    CHECK(a.r == COROTLS_ERR_CANCELLED && a.data == NULL, "no data went to the cancelled recv");
    size_t n = 0;
    long long end = harness_now_ms() + 5000;
    while (harness_now_ms() < end && corotls_loop_unread_bytes(l, sfd, &n) == COROTLS_OK && n < 4)
        corotls_loop_dispatch(l, 10, NULL);
    CHECK(corotls_loop_recv(l, sfd, -1, lu_cb, &b, &data, &len) == COROTLS_OK && len == 4 &&
              memcmp(data, "kept", 4) == 0,
          "the next recv gets it inline");
    bool alive = false;
    CHECK(corotls_loop_is_alive(l, sfd, &alive) == COROTLS_OK && alive, "alive");
    lu_reset(&a);
    lu_reset(&b);
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
}

/* A pending handshake: cancelled; the next operation finishes it. */
TEST(test_cancel_handshake)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair, no handshake");
    struct lu_done s = {0}, c = {0};
    const uint8_t *data = NULL;
    size_t len = 0;
    REQUIRE(corotls_loop_handshake(l, sfd, -1, lu_cb, &s) == COROTLS_PENDING, "server handshake pending");
    CHECK(corotls_loop_cancel(l, sfd) == COROTLS_OK, "cancel it");
    REQUIRE(lu_wait(l, &s, 5000), "cancelled callback");
    CHECK(s.r == COROTLS_ERR_CANCELLED && s.fd == sfd, "ERR_CANCELLED (%s)", corotls_result_name(s.r));
    lu_reset(&s);
    /* The client handshakes and sends; the server's recv drives the rest. */
    corotls_result rc = corotls_loop_handshake(l, cfd, 5000, lu_cb, &c);
    corotls_result rs = corotls_loop_recv(l, sfd, 5000, lu_cb, &s, &data, &len);
    CHECK(rs == COROTLS_PENDING, "server recv pending (%s)", corotls_result_name(rs));
    if (rc == COROTLS_PENDING && lu_wait(l, &c, 5000))
        rc = c.r;
    CHECK(rc == COROTLS_OK, "client handshake completes (%s)", corotls_result_name(rc));
    CHECK(corotls_loop_send(l, cfd, (const uint8_t *)"hi", 2, -1, lu_cb, &c) == COROTLS_OK, "client sends");
    REQUIRE(lu_wait(l, &s, 5000), "server recv completes");
    CHECK(s.r == COROTLS_OK && s.len == 2 && memcmp(s.data, "hi", 2) == 0, "with the data");
    lu_reset(&s);
    lu_reset(&c);
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
}

/* A pending send against a peer that does not read: cancelled, its count
 * says how much reached the stream, and the stream stays valid: the peer
 * gets exactly that prefix, then what is sent later. */
TEST(test_cancel_send)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    CHECK(corotls_loop_set_limit(l, sfd, 16 * 1024) == COROTLS_OK, "small read limit on the receiver");
    lu_small_buffers(cfd, 16 * 1024);
    size_t big = 4u << 20;
    uint8_t *buf = malloc(big);
    REQUIRE(buf, "malloc");
    for (size_t i = 0; i < big; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    struct lu_done d = {0};
    corotls_result r = corotls_loop_send(l, cfd, buf, big, -1, lu_cb, &d);
    REQUIRE(r == COROTLS_PENDING, "a 4 MiB send goes pending (%s)", corotls_result_name(r));
    lu_spin(l, 50);
    CHECK(d.calls == 0, "still pending");
    CHECK(corotls_loop_cancel(l, cfd) == COROTLS_OK, "cancel the send");
    REQUIRE(lu_wait(l, &d, 5000), "cancelled callback");
    CHECK(d.r == COROTLS_ERR_CANCELLED, "ERR_CANCELLED (%s)", corotls_result_name(d.r));
    size_t committed = d.len;
    CHECK(committed > 0 && committed < big, "a prefix was committed (%zu of %zu)", committed, big);
    lu_reset(&d);
    CHECK(corotls_loop_send(l, cfd, (const uint8_t *)"TAIL", 4, -1, lu_cb, &d) != COROTLS_BUSY,
          "the fd takes a new send at once");
    /* The receiver reads the committed prefix, then TAIL. */
    uint8_t *got = malloc(committed + 4);
    REQUIRE(got, "malloc");
    CHECK(corotls_loop_set_limit(l, sfd, 0) == COROTLS_OK, "no limit");
    r = lu_recv_n(l, sfd, got, committed + 4, 20000);
    CHECK(r == COROTLS_OK, "receiver gets prefix + tail (%s)", corotls_result_name(r));
    CHECK(memcmp(got, buf, committed) == 0, "the prefix is intact");
    CHECK(memcmp(got + committed, "TAIL", 4) == 0, "then the later send, in order");
    if (d.calls == 0)
        lu_wait(l, &d, 5000);
    lu_reset(&d);
    free(got);
    free(buf);
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
}

/* A pending accept: cancelled; the listener is as it was and the next
 * accept gets the connection that waits. */
TEST(test_cancel_accept)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), fd = -1;
    REQUIRE(lfd >= 0, "listen");
    struct lu_done a = {0}, c = {0};
    REQUIRE(corotls_loop_accept(l, lfd, NULL, -1, lu_cb, &a, &fd) == COROTLS_PENDING, "accept pending");
    CHECK(corotls_loop_cancel(l, lfd) == COROTLS_OK, "cancel it");
    /* A client connects before the cancelled callback is even delivered. */
    char ps[16];
    int cfd = -1;
    snprintf(ps, sizeof ps, "%d", port);
    corotls_result r = corotls_loop_connect(l, "127.0.0.1", ps, lu_cconf, 5000, lu_cb, &c, &cfd);
    CHECK(r == COROTLS_OK || r == COROTLS_PENDING, "client connects (%s)", corotls_result_name(r));
    REQUIRE(lu_wait(l, &a, 5000), "cancelled callback");
    CHECK(a.r == COROTLS_ERR_CANCELLED && a.fd == -1, "ERR_CANCELLED with fd -1 (%s, %d)", corotls_result_name(a.r),
          a.fd);
    if (r == COROTLS_PENDING && lu_wait(l, &c, 5000))
        cfd = c.fd;
    lu_spin(l, 20);
    lu_reset(&a);
    int sfd = -1;
    r = corotls_loop_accept(l, lfd, NULL, 5000, lu_cb, &a, &sfd);
    if (r == COROTLS_PENDING && lu_wait(l, &a, 5000)) {
        r = a.r;
        sfd = a.fd;
    }
    CHECK(r == COROTLS_OK && sfd >= 0, "the next accept gets the waiting connection (%s)", corotls_result_name(r));
    lu_reset(&a);
    lu_reset(&c);
    if (sfd >= 0)
        corotls_loop_close(l, sfd);
    if (cfd >= 0)
        corotls_loop_close(l, cfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
}

/* A pending connect: cancelled, its socket closed, its fd gone. */
TEST(test_cancel_connect)
{
    int fill[64], nfill = 0, port;
    int plfd = lu_full_listener(&port, fill, &nfill, 64);
    REQUIRE(plfd >= 0, "a listener with a full accept queue");
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct lu_done c = {0};
    int fd = -1;
    corotls_result r = corotls_loop_connect(l, "127.0.0.1", ps, lu_cconf, -1, lu_cb, &c, &fd);
    REQUIRE(r == COROTLS_PENDING && fd >= 0, "connect pending with its fd (%s, %d)", corotls_result_name(r), fd);
    CHECK(corotls_loop_cancel(l, fd) == COROTLS_OK, "cancel it");
    bool alive = true;
    CHECK(corotls_loop_is_alive(l, fd, &alive) == COROTLS_ERR_ARG, "its fd left the table at once");
    REQUIRE(lu_wait(l, &c, 5000), "cancelled callback");
    CHECK(c.r == COROTLS_ERR_CANCELLED && c.fd == -1, "ERR_CANCELLED with fd -1 (%s)", corotls_result_name(c.r));
    CHECK(corotls_loop_pending(l) == 0, "nothing pending");
    lu_reset(&c);
    corotls_loop_free(l);
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(plfd);
}

/* Cancel, then close before the next dispatch: one callback only. */
TEST(test_cancel_then_close)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    struct lu_done a = {0};
    const uint8_t *data;
    size_t len;
    REQUIRE(corotls_loop_recv(l, sfd, -1, lu_cb, &a, &data, &len) == COROTLS_PENDING, "recv pending");
    CHECK(corotls_loop_cancel(l, sfd) == COROTLS_OK, "cancel");
    CHECK(corotls_loop_close(l, sfd) == COROTLS_OK, "close");
    lu_spin(l, 50);
    CHECK(a.calls == 1 && a.r == COROTLS_ERR_CANCELLED, "exactly one callback, ERR_CANCELLED");
    CHECK(corotls_loop_pending(l) == 0, "nothing pending");
    lu_reset(&a);
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
}

/* Cancel from another thread while the loop thread dispatches. */
struct canceller {
    corotls_loop *l;
    int fd;
    corotls_result r;
};

static void *cancel_from_thread(void *arg)
{
    struct canceller *c = arg;
    c->r = corotls_loop_cancel(c->l, c->fd);
    return NULL;
}

TEST(test_cancel_from_thread)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    struct lu_done a = {0};
    const uint8_t *data;
    size_t len;
    REQUIRE(corotls_loop_recv(l, sfd, -1, lu_cb, &a, &data, &len) == COROTLS_PENDING, "recv pending");
    struct canceller c = {l, sfd, COROTLS_OK};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, cancel_from_thread, &c) == 0, "thread");
    CHECK(lu_wait(l, &a, 5000), "the dispatching thread is woken and calls back");
    pthread_join(t, NULL);
    CHECK(c.r == COROTLS_OK, "cancel from another thread is OK");
    CHECK(a.r == COROTLS_ERR_CANCELLED && pthread_equal(a.thread, pthread_self()),
          "ERR_CANCELLED, on the dispatching thread");
    lu_reset(&a);
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
}

int main(void)
{
    return lu_main();
}
