/*
 * loop_api.c -- corotls_loop: bad input, the busy rule, the inline rule,
 * close while pending, conf lifetimes, listeners (IPv4, IPv6, names,
 * services, SO_REUSEADDR), SNI and host verification, freeing a busy loop.
 * Real loopback sockets throughout; no timing assertions.  (One test
 * program over 600 lines on purpose: every case is a few lines over the
 * same loop_util fixtures; splitting it would only add binaries.)
 */
#include <arpa/inet.h>
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

/* Every call with a NULL loop, unknown fds, bad arguments. */
TEST(test_bad_input)
{
    struct lu_done d = {0};
    const uint8_t *data = (const uint8_t *)"x";
    size_t len = 0, n = 0;
    bool alive = true;
    int fd = 7;
    char buf[64];

    CHECK(corotls_loop_new(NULL) == COROTLS_ERR_ARG, "loop_new(NULL) is ERR_ARG");
    corotls_loop_free(NULL);
    CHECK(corotls_loop_fd(NULL) == -1, "fd of NULL is -1");
    CHECK(corotls_loop_pending(NULL) == 0, "pending of NULL is 0");
    CHECK(corotls_loop_timeout(NULL) == -1, "timeout of NULL is -1");
    CHECK(corotls_loop_dispatch(NULL, 0, NULL) == COROTLS_ERR_ARG, "dispatch(NULL)");
    CHECK(has(corotls_last_error(), "loop is NULL"), "message names the NULL loop: %s", corotls_last_error());
    CHECK(corotls_loop_run(NULL) == COROTLS_ERR_ARG, "run(NULL)");
    CHECK(corotls_loop_listen(NULL, "127.0.0.1", "0", NULL, &fd) == COROTLS_ERR_ARG && fd == -1,
          "listen(NULL loop) is ERR_ARG and clears the fd");
    CHECK(corotls_loop_send(NULL, 3, data, 1, -1, lu_cb, &d) == COROTLS_ERR_ARG, "send(NULL loop)");
    CHECK(corotls_loop_close(NULL, 3) == COROTLS_ERR_ARG, "close(NULL loop)");

    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK && l, "loop_new");
    CHECK(corotls_loop_fd(l) >= 0, "the loop has a pollable fd");
    CHECK(corotls_loop_run(l) == COROTLS_OK, "run with nothing pending returns at once");

    /* Unknown fds. */
    int unknown[] = {-1, 9999, 0};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        int u = unknown[i];
        CHECK(corotls_loop_handshake(l, u, -1, lu_cb, &d) == COROTLS_ERR_ARG, "handshake on unknown fd %d", u);
        CHECK(has(corotls_last_error(), "not open"), "message: %s", corotls_last_error());
        CHECK(corotls_loop_send(l, u, data, 1, -1, lu_cb, &d) == COROTLS_ERR_ARG, "send on unknown fd %d", u);
        CHECK(corotls_loop_recv(l, u, -1, lu_cb, &d, &data, &len) == COROTLS_ERR_ARG, "recv on unknown fd %d", u);
        CHECK(corotls_loop_read(l, u, 4, -1, lu_cb, &d, &data, &len) == COROTLS_ERR_ARG, "read on unknown fd");
        CHECK(corotls_loop_read_until(l, u, (const uint8_t *)"\n", 1, 0, -1, lu_cb, &d, &data, &len) ==
                  COROTLS_ERR_ARG,
              "read_until on unknown fd");
        CHECK(corotls_loop_close(l, u) == COROTLS_ERR_ARG, "close of unknown fd %d", u);
        CHECK(corotls_loop_set_sni(l, u, "x") == COROTLS_ERR_ARG, "set_sni on unknown fd");
        CHECK(corotls_loop_set_verify_host(l, u, "x") == COROTLS_ERR_ARG, "set_verify_host on unknown fd");
        CHECK(corotls_loop_set_limit(l, u, 10) == COROTLS_ERR_ARG, "set_limit on unknown fd");
        CHECK(corotls_loop_unread_bytes(l, u, &n) == COROTLS_ERR_ARG, "unread_bytes on unknown fd");
        CHECK(corotls_loop_unsent_bytes(l, u, &n) == COROTLS_ERR_ARG, "unsent_bytes on unknown fd");
        CHECK(corotls_loop_is_alive(l, u, &alive) == COROTLS_ERR_ARG && !alive, "is_alive on unknown fd");
        CHECK(corotls_loop_info(l, u, COROTLS_INFO_ERROR, buf, sizeof buf, NULL) == COROTLS_ERR_ARG,
              "info on unknown fd");
        CHECK(corotls_loop_accept(l, u, lu_sconf, -1, lu_cb, &d, &fd) == COROTLS_ERR_ARG && fd == -1,
              "accept on unknown fd");
        CHECK(corotls_loop_listener_set_conf(l, u, lu_sconf) == COROTLS_ERR_ARG, "set_conf on unknown fd");
    }

    /* A listener used as a connection and the reverse. */
    int port, lfd = lu_listen(l, lu_sconf, &port);
    REQUIRE(lfd >= 0, "listen");
    CHECK(corotls_loop_send(l, lfd, (const uint8_t *)"x", 1, -1, lu_cb, &d) == COROTLS_ERR_ARG,
          "send on a listener");
    CHECK(has(corotls_last_error(), "is a listener"), "message: %s", corotls_last_error());
    CHECK(corotls_loop_recv(l, lfd, -1, lu_cb, &d, &data, &len) == COROTLS_ERR_ARG, "recv on a listener");
    CHECK(corotls_loop_handshake(l, lfd, -1, lu_cb, &d) == COROTLS_ERR_ARG, "handshake on a listener");
    CHECK(corotls_loop_set_sni(l, lfd, "x") == COROTLS_ERR_ARG, "set_sni on a listener");
    CHECK(corotls_loop_unread_bytes(l, lfd, &n) == COROTLS_ERR_ARG, "unread_bytes on a listener");
    CHECK(corotls_loop_set_limit(l, lfd, 1) == COROTLS_ERR_ARG, "set_limit on a listener");
    CHECK(corotls_loop_info(l, lfd, COROTLS_INFO_VERSION, buf, sizeof buf, NULL) == COROTLS_ERR_ARG,
          "VERSION of a listener");
    CHECK(corotls_loop_info(l, lfd, COROTLS_INFO_LOCAL_ADDR, buf, sizeof buf, NULL) == COROTLS_OK &&
              has(buf, "127.0.0.1:"),
          "LOCAL_ADDR of a listener: %s", buf);
    CHECK(corotls_loop_is_alive(l, lfd, &alive) == COROTLS_OK && alive, "a listener is alive");

    int cfd, sfd;
    REQUIRE(lu_pair(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    CHECK(corotls_loop_accept(l, cfd, lu_sconf, -1, lu_cb, &d, &fd) == COROTLS_ERR_ARG, "accept on a connection");
    CHECK(has(corotls_last_error(), "not a listener"), "message: %s", corotls_last_error());
    CHECK(corotls_loop_listener_set_conf(l, cfd, lu_sconf) == COROTLS_ERR_ARG, "set_conf on a connection");

    /* NULL data, callbacks, out-pointers; bad sizes and delimiters. */
    CHECK(corotls_loop_send(l, cfd, NULL, 5, -1, lu_cb, &d) == COROTLS_ERR_ARG, "send(NULL, 5)");
    CHECK(has(corotls_last_error(), "data is NULL"), "message: %s", corotls_last_error());
    CHECK(corotls_loop_send(l, cfd, (const uint8_t *)"x", 1, -1, NULL, &d) == COROTLS_ERR_ARG,
          "send with a NULL callback");
    CHECK(has(corotls_last_error(), "callback is NULL"), "message: %s", corotls_last_error());
    CHECK(corotls_loop_recv(l, cfd, -1, lu_cb, &d, NULL, &len) == COROTLS_ERR_ARG, "recv with NULL data ptr");
    CHECK(corotls_loop_recv(l, cfd, -1, lu_cb, &d, &data, NULL) == COROTLS_ERR_ARG, "recv with NULL len ptr");
    CHECK(corotls_loop_read(l, cfd, 0, -1, lu_cb, &d, &data, &len) == COROTLS_ERR_ARG, "read of 0 bytes");
    CHECK(corotls_loop_read_until(l, cfd, NULL, 1, 0, -1, lu_cb, &d, &data, &len) == COROTLS_ERR_ARG,
          "read_until with a NULL delimiter");
    CHECK(corotls_loop_read_until(l, cfd, (const uint8_t *)"", 0, 0, -1, lu_cb, &d, &data, &len) ==
              COROTLS_ERR_ARG,
          "read_until with an empty delimiter");
    uint8_t delim[65] = {0};
    CHECK(corotls_loop_read_until(l, cfd, delim, 65, 0, -1, lu_cb, &d, &data, &len) == COROTLS_ERR_ARG,
          "read_until with a 65-byte delimiter");
    CHECK(corotls_loop_accept(l, lfd, lu_sconf, -1, lu_cb, &d, NULL) == COROTLS_ERR_ARG, "accept with NULL out_fd");
    CHECK(corotls_loop_listen(l, "127.0.0.1", "0", NULL, NULL) == COROTLS_ERR_ARG, "listen with NULL out_fd");
    CHECK(corotls_loop_connect(l, NULL, "1", lu_cconf, -1, lu_cb, &d, &fd) == COROTLS_ERR_ARG, "connect(NULL host)");
    CHECK(corotls_loop_connect(l, "127.0.0.1", NULL, lu_cconf, -1, lu_cb, &d, &fd) == COROTLS_ERR_ARG,
          "connect(NULL service)");
    CHECK(corotls_loop_connect(l, "127.0.0.1", "1", NULL, -1, lu_cb, &d, &fd) == COROTLS_ERR_ARG,
          "connect(NULL conf)");
    CHECK(corotls_loop_unread_bytes(l, cfd, NULL) == COROTLS_ERR_ARG, "unread_bytes(NULL out)");
    CHECK(corotls_loop_is_alive(l, cfd, NULL) == COROTLS_ERR_ARG, "is_alive(NULL out)");
    CHECK(corotls_loop_set_sni(l, cfd, NULL) == COROTLS_ERR_ARG, "set_sni(NULL)");

    /* Timeouts below -1. */
    CHECK(corotls_loop_handshake(l, cfd, -2, lu_cb, &d) == COROTLS_ERR_ARG, "handshake timeout -2");
    CHECK(has(corotls_last_error(), "timeout -2"), "message: %s", corotls_last_error());
    CHECK(corotls_loop_send(l, cfd, data, 1, -5, lu_cb, &d) == COROTLS_ERR_ARG, "send timeout -5");
    CHECK(corotls_loop_recv(l, cfd, -100, lu_cb, &d, &data, &len) == COROTLS_ERR_ARG, "recv timeout -100");
    CHECK(corotls_loop_read(l, cfd, 3, -2, lu_cb, &d, &data, &len) == COROTLS_ERR_ARG, "read timeout -2");
    CHECK(corotls_loop_read_until(l, cfd, (const uint8_t *)"\n", 1, 0, -3, lu_cb, &d, &data, &len) ==
              COROTLS_ERR_ARG,
          "read_until timeout -3");
    CHECK(corotls_loop_accept(l, lfd, NULL, -2, lu_cb, &d, &fd) == COROTLS_ERR_ARG, "accept timeout -2");
    CHECK(corotls_loop_connect(l, "127.0.0.1", "1", lu_cconf, -2, lu_cb, &d, &fd) == COROTLS_ERR_ARG,
          "connect timeout -2");
    CHECK(corotls_loop_dispatch(l, -2, NULL) == COROTLS_ERR_ARG, "dispatch timeout -2");

    /* Wrong roles. */
    int x;
    CHECK(corotls_loop_listen(l, "127.0.0.1", "0", lu_cconf, &x) == COROTLS_ERR_ARG, "listen with a client conf");
    CHECK(has(corotls_last_error(), "server conf"), "message: %s", corotls_last_error());
    CHECK(corotls_loop_accept(l, lfd, lu_cconf, -1, lu_cb, &d, &x) == COROTLS_ERR_ARG, "accept with a client conf");
    CHECK(corotls_loop_listener_set_conf(l, lfd, lu_cconf) == COROTLS_ERR_ARG, "reload with a client conf");
    CHECK(corotls_loop_listener_set_conf(l, lfd, NULL) == COROTLS_ERR_ARG, "reload with NULL");
    CHECK(corotls_loop_connect(l, "127.0.0.1", "1", lu_sconf, -1, lu_cb, &d, &x) == COROTLS_ERR_ARG,
          "connect with a server conf");
    CHECK(has(corotls_last_error(), "client conf"), "message: %s", corotls_last_error());
    CHECK(corotls_loop_set_sni(l, sfd, "x") == COROTLS_ERR_ARG, "SNI on a server connection");

    /* info: bad selector, small buffer. */
    CHECK(corotls_loop_info(l, cfd, 42, buf, sizeof buf, NULL) == COROTLS_ERR_ARG, "info selector 42");
    CHECK(corotls_loop_info(l, cfd, COROTLS_INFO_REMOTE_ADDR, NULL, 10, NULL) == COROTLS_ERR_ARG,
          "info into NULL");
    char small[4];
    CHECK(corotls_loop_info(l, cfd, COROTLS_INFO_REMOTE_ADDR, small, sizeof small, &n) == COROTLS_ERR_ARG &&
              n > 4 && strlen(small) == 3,
          "info into a small buffer truncates and says so (needs %zu)", n);

    /* Listeners: bad services and hosts. */
    CHECK(corotls_loop_listen(l, "127.0.0.1", "no-such-service-xyz", NULL, &x) == COROTLS_ERR_IO,
          "unknown service name");
    CHECK(has(corotls_last_error(), "cannot resolve"), "message: %s", corotls_last_error());
    CHECK(corotls_loop_listen(l, "127.0.0.1", NULL, NULL, &x) == COROTLS_ERR_ARG, "NULL service");

    /* Double close. */
    CHECK(corotls_loop_close(l, cfd) == COROTLS_OK, "close");
    CHECK(corotls_loop_close(l, cfd) == COROTLS_ERR_ARG, "second close is ERR_ARG");
    CHECK(has(corotls_last_error(), "not open"), "message: %s", corotls_last_error());
    CHECK(corotls_loop_close(l, sfd) == COROTLS_OK && corotls_loop_close(l, lfd) == COROTLS_OK, "close the rest");
    CHECK(corotls_loop_close(l, lfd) == COROTLS_ERR_ARG, "listener double close");
    CHECK(d.calls == 0, "no callback ran for any refused call");
    CHECK(corotls_loop_pending(l) == 0, "nothing pending");
    corotls_loop_free(l);
}

/* A pending recv, handshake, send, connect and accept each make the other
 * operations on their fd return BUSY at once, with no callback. */
TEST(test_busy_rule)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    struct lu_done first = {0}, other = {0};
    const uint8_t *data;
    size_t len;
    int fd;

#define ALL_BUSY(fd, what)                                                                                  \
    do {                                                                                                    \
        CHECK(corotls_loop_handshake(l, fd, -1, lu_cb, &other) == COROTLS_BUSY, "handshake BUSY during " what); \
        CHECK(has(corotls_last_error(), "in flight"), "message: %s", corotls_last_error());               \
        CHECK(corotls_loop_send(l, fd, (const uint8_t *)"x", 1, -1, lu_cb, &other) == COROTLS_BUSY,          \
              "send BUSY during " what);                                                                    \
        CHECK(corotls_loop_recv(l, fd, -1, lu_cb, &other, &data, &len) == COROTLS_BUSY,                     \
              "recv BUSY during " what);                                                                    \
        CHECK(corotls_loop_read(l, fd, 2, -1, lu_cb, &other, &data, &len) == COROTLS_BUSY,                  \
              "read BUSY during " what);                                                                    \
        CHECK(corotls_loop_read_until(l, fd, (const uint8_t *)"\n", 1, 0, -1, lu_cb, &other, &data, &len) == \
                  COROTLS_BUSY,                                                                             \
              "read_until BUSY during " what);                                                              \
    } while (0)

    /* recv in flight (it drives the server's handshake). */
    REQUIRE(corotls_loop_recv(l, sfd, -1, lu_cb, &first, &data, &len) == COROTLS_PENDING, "recv pending");
    ALL_BUSY(sfd, "recv");
    /* handshake in flight on the client. */
    REQUIRE(corotls_loop_handshake(l, cfd, -1, lu_cb, &first) == COROTLS_PENDING, "handshake pending");
    ALL_BUSY(cfd, "handshake");
    REQUIRE(lu_wait(l, &first, 5000) && first.r == COROTLS_OK && first.fd == cfd, "client handshake done");
    lu_reset(&first);
    /* The server's recv is still pending: close cancels it. */
    REQUIRE(corotls_loop_close(l, sfd) == COROTLS_OK, "close the server end");
    REQUIRE(lu_wait(l, &first, 5000), "cancelled recv called back");
    CHECK(first.r == COROTLS_ERR_CANCELLED && first.fd == sfd, "recv CANCELLED by close (%s)",
          corotls_result_name(first.r));
    lu_reset(&first);

    /* send in flight: a peer that does not read, small buffers. */
    corotls_loop_close(l, cfd);
    REQUIRE(lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "second pair");
    lu_small_buffers(cfd, 4096);
    lu_small_buffers(sfd, 4096);
    corotls_loop_set_limit(l, sfd, 1);
    size_t big = 8u << 20;
    uint8_t *p = malloc(big);
    util_fill(p, big, 1);
    REQUIRE(corotls_loop_send(l, cfd, p, big, -1, lu_cb, &first) == COROTLS_PENDING, "big send pending");
    free(p); /* the loop copied what it still has to send */
    ALL_BUSY(cfd, "send");
    corotls_loop_close(l, cfd);
    REQUIRE(lu_wait(l, &first, 5000), "cancelled send called back");
    CHECK(first.r == COROTLS_ERR_CANCELLED, "send CANCELLED by close");
    lu_reset(&first);
    corotls_loop_close(l, sfd);

    /* connect in flight: a listener whose backlog is full. */
    int fill[16], nfill, fport;
    int flfd = lu_full_listener(&fport, fill, &nfill, 16);
    REQUIRE(flfd >= 0, "full-backlog listener");
    char ps[16];
    snprintf(ps, sizeof ps, "%d", fport);
    REQUIRE(corotls_loop_connect(l, "127.0.0.1", ps, lu_cconf, -1, lu_cb, &first, &fd) == COROTLS_PENDING && fd >= 0,
            "connect pending with its fd known");
    ALL_BUSY(fd, "connect");
    CHECK(corotls_loop_set_sni(l, fd, "localhost") == COROTLS_OK, "SNI may be set while connecting");
    corotls_loop_close(l, fd);
    REQUIRE(lu_wait(l, &first, 5000), "cancelled connect called back");
    CHECK(first.r == COROTLS_ERR_CANCELLED && first.fd == -1, "connect CANCELLED, fd -1");
    lu_reset(&first);
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(flfd);

    /* accept in flight. */
    REQUIRE(corotls_loop_accept(l, lfd, NULL, -1, lu_cb, &first, &fd) == COROTLS_PENDING, "accept pending");
    CHECK(corotls_loop_accept(l, lfd, NULL, -1, lu_cb, &other, &fd) == COROTLS_BUSY && fd == -1,
          "second accept BUSY");
    CHECK(corotls_loop_pending(l) == 1, "one operation pending");
    corotls_loop_close(l, lfd);
    REQUIRE(lu_wait(l, &first, 5000), "cancelled accept called back");
    CHECK(first.r == COROTLS_ERR_CANCELLED && first.fd == -1, "accept CANCELLED");
    lu_spin(l, 50);
    CHECK(other.calls == 0, "no BUSY call ever called back");
    CHECK(first.calls == 1, "each cancelled operation called back exactly once");
    CHECK(corotls_loop_pending(l) == 0, "nothing pending");
    lu_reset(&first);
    corotls_loop_free(l);
#undef ALL_BUSY
}

/* Inline completions are returned, never also called back; recv data stays
 * valid until the next operation on the fd. */
TEST(test_inline_rule)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    struct lu_done d = {0};
    const uint8_t *data = NULL;
    size_t len = 0, n = 0;

    CHECK(corotls_loop_send(l, cfd, (const uint8_t *)"hello", 5, -1, lu_cb, &d) == COROTLS_OK,
          "a small send completes inline");
    CHECK(corotls_loop_send(l, cfd, NULL, 0, -1, lu_cb, &d) == COROTLS_OK, "an empty send is OK inline");
    /* Let the data arrive (background reading takes it in). */
    long long end = harness_now_ms() + 5000;
    while (harness_now_ms() < end && corotls_loop_unread_bytes(l, sfd, &n) == COROTLS_OK && n < 5)
        corotls_loop_dispatch(l, 10, NULL);
    CHECK(n == 5, "5 bytes unread on the server (%zu)", n);
    CHECK(corotls_loop_recv(l, sfd, -1, lu_cb, &d, &data, &len) == COROTLS_OK, "recv completes inline");
    CHECK(len == 5 && memcmp(data, "hello", 5) == 0, "with the data");
    lu_spin(l, 30);
    CHECK(memcmp(data, "hello", 5) == 0, "still valid after dispatching");
    CHECK(corotls_loop_unread_bytes(l, sfd, &n) == COROTLS_OK && n == 0, "nothing unread");
    CHECK(d.calls == 0, "no callback for inline completions");
    /* Three sends are three records; one recv takes all that arrived. */
    CHECK(corotls_loop_send(l, cfd, (const uint8_t *)"one,", 4, -1, lu_cb, &d) == COROTLS_OK &&
              corotls_loop_send(l, cfd, (const uint8_t *)"two,", 4, -1, lu_cb, &d) == COROTLS_OK &&
              corotls_loop_send(l, cfd, (const uint8_t *)"three", 5, -1, lu_cb, &d) == COROTLS_OK,
          "three records sent");
    end = harness_now_ms() + 5000;
    while (harness_now_ms() < end && corotls_loop_unread_bytes(l, sfd, &n) == COROTLS_OK && n < 13)
        corotls_loop_dispatch(l, 10, NULL);
    CHECK(corotls_loop_recv(l, sfd, -1, lu_cb, &d, &data, &len) == COROTLS_OK && len == 13 &&
              memcmp(data, "one,two,three", 13) == 0,
          "one recv delivers all three records as one chunk");
    CHECK(corotls_loop_recv(l, sfd, -1, lu_cb, &d, &data, &len) == COROTLS_PENDING && data == NULL && len == 0,
          "a recv with nothing to read is PENDING, out-params cleared");
    CHECK(corotls_loop_send(l, cfd, (const uint8_t *)"again", 5, -1, lu_cb, &d) == COROTLS_OK, "send again");
    REQUIRE(lu_wait(l, &d, 5000), "the pending recv completes");
    CHECK(d.r == COROTLS_OK && d.fd == sfd && d.len == 5 && memcmp(d.data, "again", 5) == 0,
          "through its callback, with the data");
    CHECK(corotls_loop_pending(l) == 0, "nothing pending");
    lu_spin(l, 30);
    CHECK(d.calls == 1, "exactly once");
    lu_reset(&d);
    char v[32];
    CHECK(corotls_loop_info(l, cfd, COROTLS_INFO_VERSION, v, sizeof v, NULL) == COROTLS_OK &&
              strcmp(v, "TLSv1.3") == 0,
          "version %s", v);
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
}

struct closer {
    corotls_loop *l;
    int fd;
};

static void *close_from_thread(void *arg)
{
    struct closer *c = arg;
    corotls_loop_close(c->l, c->fd);
    return NULL;
}

static void close_in_callback(void *ud, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct closer *c = ud;
    (void)data;
    (void)len;
    (void)r;
    /* A callback may call back into the loop: close the peer it names. */
    corotls_loop_close(c->l, fd);
    corotls_loop_close(c->l, c->fd);
    c->fd = -2;
}

/* close with an operation in flight: CANCELLED at the next dispatch (never
 * inside close), from any thread, also from a callback; no leak. */
TEST(test_close_cancels)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    struct lu_done d = {0};
    const uint8_t *data;
    size_t len;

    REQUIRE(corotls_loop_recv(l, sfd, -1, lu_cb, &d, &data, &len) == COROTLS_PENDING, "recv pending");
    CHECK(corotls_loop_close(l, sfd) == COROTLS_OK, "close succeeds with an operation in flight");
    CHECK(d.calls == 0, "the callback does not run inside close");
    CHECK(corotls_loop_pending(l) == 1, "still counted as pending");
    size_t ran = 0;
    CHECK(corotls_loop_dispatch(l, 0, &ran) == COROTLS_OK && ran == 1, "the next dispatch runs it");
    CHECK(d.calls == 1 && d.r == COROTLS_ERR_CANCELLED && d.fd == sfd, "CANCELLED");
    CHECK(has(d.msg, "closed"), "message: %s", d.msg);
    lu_reset(&d);
    /* The peer sees our close_notify (inline if background reading got it
     * already). */
    corotls_result r = lu_recv_result(l, cfd, 5000);
    CHECK(r == COROTLS_CLOSED, "client gets CLOSED (%s)", corotls_result_name(r));
    corotls_loop_close(l, cfd);

    /* From another thread. */
    REQUIRE(lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair 2");
    REQUIRE(corotls_loop_recv(l, cfd, -1, lu_cb, &d, &data, &len) == COROTLS_PENDING, "recv pending");
    struct closer c = {l, cfd};
    pthread_t t;
    pthread_create(&t, NULL, close_from_thread, &c);
    pthread_join(t, NULL);
    CHECK(lu_wait(l, &d, 5000) && d.r == COROTLS_ERR_CANCELLED, "closed from another thread: CANCELLED");
    CHECK(pthread_equal(d.thread, pthread_self()), "called back on the dispatching thread");
    lu_reset(&d);

    /* From a callback: the server's recv completes, its callback closes
     * both ends. */
    struct closer cc = {l, -1};
    int cfd3, sfd3;
    REQUIRE(lu_pair_hs(l, lfd, port, lu_cconf, &cfd3, &sfd3) == 0, "pair 3");
    corotls_loop_close(l, sfd);
    cc.fd = cfd3;
    REQUIRE(corotls_loop_recv(l, sfd3, -1, close_in_callback, &cc, &data, &len) == COROTLS_PENDING, "recv");
    CHECK(corotls_loop_send(l, cfd3, (const uint8_t *)"z", 1, -1, lu_cb, &d) == COROTLS_OK, "send");
    long long end = harness_now_ms() + 5000;
    while (cc.fd != -2 && harness_now_ms() < end)
        corotls_loop_dispatch(l, 10, NULL);
    CHECK(cc.fd == -2, "the callback closed both ends");
    CHECK(corotls_loop_close(l, sfd3) == COROTLS_ERR_ARG && corotls_loop_close(l, cfd3) == COROTLS_ERR_ARG,
          "both are gone");
    CHECK(corotls_loop_pending(l) == 0 && d.calls == 0, "nothing pending");
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
}

/* Confs are refcounted: freeing the handles while connections, listeners
 * and a pending accept use them is safe. */
TEST(test_conf_freed_while_used)
{
    corotls_conf *s = util_server_conf("leaf.crt", "leaf.key"), *c = util_client_conf(1);
    REQUIRE(s && c, "confs");
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, s, &port), cfd, sfd, fd;
    REQUIRE(lfd >= 0 && lu_pair(l, lfd, port, c, &cfd, &sfd) == 0, "pair");
    struct lu_done acc = {0}, con = {0};
    REQUIRE(corotls_loop_accept(l, lfd, s, -1, lu_cb, &acc, &fd) == COROTLS_PENDING, "accept pending with conf");
    corotls_conf_free(s);
    corotls_conf_free(c);
    corotls_loop_set_verify_host(l, cfd, "localhost");
    uint8_t buf[64];
    CHECK(lu_transfer(l, cfd, sfd, "after free", 10, buf) == COROTLS_OK, "handshakes and a transfer after the free");
    CHECK(lu_transfer(l, sfd, cfd, "and back", 8, buf) == COROTLS_OK, "and back");
    /* The pending accept still has its conf. */
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    corotls_conf *c2 = util_client_conf(1);
    int cfd2;
    corotls_result r = corotls_loop_connect(l, "127.0.0.1", ps, c2, 5000, lu_cb, &con, &cfd2);
    corotls_conf_free(c2);
    if (r == COROTLS_PENDING)
        CHECK(lu_wait(l, &con, 5000) && con.r == COROTLS_OK, "connect");
    REQUIRE(lu_wait(l, &acc, 5000) && acc.r == COROTLS_OK, "the pending accept completes");
    CHECK(lu_transfer(l, cfd2, acc.fd, "x", 1, buf) == COROTLS_OK, "and its connection works");
    lu_reset(&acc);
    lu_reset(&con);
    corotls_loop_free(l); /* closes everything */
}

/* Listeners on IPv4, IPv6, names, service names; SO_REUSEADDR. */
TEST(test_listeners)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    const char *hosts[] = {"127.0.0.1", "::1", "[::1]", "localhost", NULL, ""};
    for (size_t i = 0; i < sizeof hosts / sizeof *hosts; i++) {
        int lfd, cfd, sfd, fd;
        char addr[80], ps[16];
        struct lu_done d = {0};
        REQUIRE(corotls_loop_listen(l, hosts[i], "0", lu_sconf, &lfd) == COROTLS_OK, "listen on %s",
                hosts[i] ? hosts[i] : "(NULL)");
        corotls_loop_info(l, lfd, COROTLS_INFO_LOCAL_ADDR, addr, sizeof addr, NULL);
        snprintf(ps, sizeof ps, "%s", strrchr(addr, ':') + 1);
        const char *to = hosts[i] && *hosts[i] ? hosts[i] : "127.0.0.1";
        if (hosts[i] && strcmp(hosts[i], "localhost") == 0)
            to = strchr(addr, '[') ? "::1" : "127.0.0.1";
        corotls_result r = corotls_loop_connect(l, to, ps, lu_vconf, 5000, lu_cb, &d, &cfd);
        if (r == COROTLS_PENDING) {
            r = lu_wait(l, &d, 5000) ? d.r : COROTLS_TIMEOUT;
            cfd = d.fd;
        }
        lu_reset(&d);
        REQUIRE(r == COROTLS_OK, "connect to %s port %s", to, ps);
        const char *vh = strcmp(to, "[::1]") == 0 ? "::1" : to;
        CHECK(corotls_loop_set_verify_host(l, cfd, vh) == COROTLS_OK, "verify host %s", vh);
        r = corotls_loop_accept(l, lfd, NULL, 5000, lu_cb, &d, &sfd);
        if (r == COROTLS_PENDING) {
            r = lu_wait(l, &d, 5000) ? d.r : COROTLS_TIMEOUT;
            sfd = d.fd;
        }
        lu_reset(&d);
        REQUIRE(r == COROTLS_OK, "accept on %s", addr);
        uint8_t b[4];
        CHECK(lu_transfer(l, cfd, sfd, "ping", 4, b) == COROTLS_OK, "TLS over %s (listening %s), verified as %s", to,
              addr, vh);
        char ra[80];
        corotls_loop_info(l, sfd, COROTLS_INFO_REMOTE_ADDR, ra, sizeof ra, NULL);
        corotls_loop_info(l, cfd, COROTLS_INFO_LOCAL_ADDR, addr, sizeof addr, NULL);
        CHECK(strcmp(ra, addr) == 0, "the server's REMOTE_ADDR is the client's LOCAL_ADDR (%s)", ra);
        fd = -1;
        (void)fd;
        corotls_loop_close(l, cfd);
        corotls_loop_close(l, sfd);
        corotls_loop_close(l, lfd);
    }

    /* A service name is resolved (as root the bind may succeed; else the
     * error names the port the name resolved to). */
    int lfd;
    corotls_result r = corotls_loop_listen(l, "127.0.0.1", "echo", NULL, &lfd);
    CHECK(r == COROTLS_OK || has(corotls_last_error(), ":7"), "service 'echo' resolves to port 7 (%s)",
          r == COROTLS_OK ? "bound" : corotls_last_error());
    if (r == COROTLS_OK)
        corotls_loop_close(l, lfd);

    /* SO_REUSEADDR: the port is free again at once although the closed
     * connection's server end is in TIME_WAIT. */
    int port, cfd, sfd;
    lfd = lu_listen(l, lu_sconf, &port);
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    corotls_loop_close(l, sfd); /* the server closes first: TIME_WAIT on its side */
    lu_spin(l, 20);
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, lfd);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    CHECK(corotls_loop_listen(l, "127.0.0.1", ps, lu_sconf, &lfd) == COROTLS_OK, "listen again on port %d", port);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
}

/* SNI and host verification between connect and the handshake. */
TEST(test_sni_and_verify_host)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    corotls_conf_builder *b;
    corotls_conf *multi;
    corotls_conf_builder_new(COROTLS_SERVER, &b);
    corotls_conf_builder_add_identity_file(b, harness_cert("leaf.crt"), harness_cert("leaf.key"), NULL);
    corotls_conf_builder_add_identity_file(b, harness_cert("alt1.crt"), harness_cert("alt1.key"), NULL);
    REQUIRE(corotls_conf_builder_build(b, &multi) == COROTLS_OK, "SNI server conf");
    corotls_conf_builder_free(b);
    int port, lfd = lu_listen(l, multi, &port), cfd, sfd;
    REQUIRE(lfd >= 0, "listen");

    /* SNI alt1.example selects the second identity; verification against
     * that name passes. */
    REQUIRE(lu_pair(l, lfd, port, lu_vconf, &cfd, &sfd) == 0, "pair");
    CHECK(corotls_loop_set_sni(l, cfd, "alt1.example") == COROTLS_OK, "set_sni");
    CHECK(corotls_loop_set_verify_host(l, cfd, "alt1.example") == COROTLS_OK, "set_verify_host");
    struct lu_done sd = {0};
    CHECK(corotls_loop_handshake(l, sfd, 5000, lu_cb, &sd) == COROTLS_PENDING, "server handshake pending");
    CHECK(lu_handshake(l, cfd, 5000) == COROTLS_OK, "client handshake");
    CHECK(lu_wait(l, &sd, 5000) && sd.r == COROTLS_OK, "server handshake");
    lu_reset(&sd);
    char subj[256];
    corotls_loop_info(l, cfd, COROTLS_INFO_PEER_SUBJECT, subj, sizeof subj, NULL);
    CHECK(has(subj, "alt1.example"), "the server presented alt1 (%s)", subj);
    CHECK(corotls_loop_set_sni(l, cfd, "late") == COROTLS_ERR_ARG, "SNI after the handshake is ERR_ARG");
    CHECK(has(corotls_last_error(), "before the handshake"), "message: %s", corotls_last_error());
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, sfd);

    /* A name the certificate does not carry fails verification, and the
     * server's pending handshake sees the alert. */
    REQUIRE(lu_pair(l, lfd, port, lu_vconf, &cfd, &sfd) == 0, "pair 2");
    corotls_loop_set_verify_host(l, cfd, "wrong.example");
    CHECK(corotls_loop_handshake(l, sfd, 5000, lu_cb, &sd) == COROTLS_PENDING, "server handshake pending");
    corotls_result r = lu_handshake(l, cfd, 5000);
    CHECK(r == COROTLS_ERR_VERIFY, "client: ERR_VERIFY (%s)", corotls_result_name(r));
    char msg[256];
    corotls_loop_info(l, cfd, COROTLS_INFO_ERROR, msg, sizeof msg, NULL);
    CHECK(has(msg, "mismatch") || has(msg, "hostname"), "the fd's error names the reason: %s", msg);
    CHECK(lu_wait(l, &sd, 5000) && sd.r < 0, "server: %s (%s)", corotls_result_name(sd.r), sd.msg);
    bool alive = true;
    CHECK(corotls_loop_is_alive(l, cfd, &alive) == COROTLS_OK && !alive, "the failed connection is not alive");
    lu_reset(&sd);
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, lfd);
    corotls_conf_free(multi);
    corotls_loop_free(l);
}

static int freed_cancelled, refused_during_free;
static corotls_loop *freeing;
static void count_cancel(void *ud, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    (void)ud;
    (void)data;
    (void)len;
    if (r == COROTLS_ERR_CANCELLED)
        freed_cancelled++;
    /* A callback run by corotls_loop_free may still call the loop. */
    int nfd;
    const uint8_t *d;
    size_t n;
    if (corotls_loop_close(freeing, fd) == COROTLS_ERR_ARG &&
        corotls_loop_recv(freeing, fd, -1, count_cancel, NULL, &d, &n) == COROTLS_ERR_ARG &&
        corotls_loop_listen(freeing, "127.0.0.1", "0", NULL, &nfd) == COROTLS_ERR_CANCELLED)
        refused_during_free++;
}

/* Freeing a loop with operations pending calls each back once with
 * CANCELLED (valgrind checks that nothing leaks). */
TEST(test_free_with_pending)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd, fd;
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    const uint8_t *data;
    size_t len;
    CHECK(corotls_loop_recv(l, cfd, -1, count_cancel, NULL, &data, &len) == COROTLS_PENDING, "recv pending");
    CHECK(corotls_loop_read(l, sfd, 100, 60000, count_cancel, NULL, &data, &len) == COROTLS_PENDING,
          "read pending");
    CHECK(corotls_loop_accept(l, lfd, NULL, -1, count_cancel, NULL, &fd) == COROTLS_PENDING, "accept pending");
    CHECK(corotls_loop_connect(l, "localhost", "1", lu_cconf, 60000, count_cancel, NULL, &fd) == COROTLS_PENDING,
          "connect by name pending");
    CHECK(corotls_loop_pending(l) == 4, "4 pending");
    freeing = l;
    corotls_loop_free(l);
    CHECK(freed_cancelled == 4, "free called each back with CANCELLED (%d)", freed_cancelled);
    CHECK(refused_during_free == 4, "calls from those callbacks were refused cleanly (%d)", refused_during_free);
}

int main(void)
{
    return lu_main();
}
