/*
 * native_conn: corotls_conn over real sockets -- 16 MiB through one
 * connection, a peer that vanishes at every point of the handshake (a relay
 * that cuts the stream after N bytes), garbage on the wire, close_notify vs
 * TCP EOF, and ciphertext queued under backpressure staying in order.
 *
 * COROTLS_TEST_QUICK=1 (set for the valgrind run) shrinks the transfers and
 * the number of cut points; the code paths are the same.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corotls.h"
#include "harness.h"
#include "tls_util.h"

#define T 10000

static int quick(void)
{
    const char *q = getenv("COROTLS_TEST_QUICK");
    return q && *q && *q != '0';
}

/* Write `total` pattern bytes and read the echo back at the same time:
 * both directions in one poll loop, so neither side's buffers fill up. */
TEST(sixteen_mib_through_one_connection)
{
    size_t total = (quick() ? 2 : 16) << 20;
    struct echo_server es;
    corotls_conf *sc = util_server_conf("leaf.crt", "leaf.key"), *cc = util_client_conf(1);
    REQUIRE(sc && cc && util_echo_start(&es, sc) == 0, "echo server");
    int fd;
    corotls_conn *c = util_connect(cc, es.port, "localhost", &fd);
    REQUIRE(c && util_handshake(c, T) == COROTLS_OK, "handshake");
    uint8_t *out = malloc(total), *in = malloc(total);
    REQUIRE(out && in, "buffers");
    util_fill(out, total, 16);
    size_t sent = 0, got = 0;
    int stuck = 0;
    while (got < total && !stuck) {
        corotls_result wr = COROTLS_OK, rr;
        if (sent < total) {
            size_t n = 0;
            wr = corotls_conn_write(c, out + sent, total - sent > 65536 ? 65536 : total - sent, &n);
            sent += n;
            if (wr != COROTLS_OK && wr != COROTLS_WANT_WRITE && wr != COROTLS_WANT_READ)
                break;
        }
        size_t n = 0;
        rr = corotls_conn_read(c, in + got, total - got, &n);
        got += n;
        if (rr != COROTLS_OK && rr != COROTLS_WANT_READ && rr != COROTLS_WANT_WRITE)
            break;
        if (n == 0 && (sent == total || wr != COROTLS_OK)) {
            struct pollfd p = {.fd = fd, .events = POLLIN | (sent < total || corotls_conn_unsent(c) ? POLLOUT : 0)};
            stuck = poll(&p, 1, T) != 1;
        }
    }
    CHECK(sent == total && got == total, "sent %zu, echoed back %zu of %zu bytes", sent, got, total);
    CHECK(got == total && !memcmp(out, in, total), "every byte intact and in order");
    CHECK(corotls_conn_shutdown(c) == COROTLS_OK, "close_notify");
    free(out);
    free(in);
    corotls_conn_free(c);
    close(fd);
    util_echo_stop(&es);
    CHECK(es.failures == 0, "the server saw no failure");
    corotls_conf_free(sc);
    corotls_conf_free(cc);
}

/* -------------------------------------------------------------- relay */

/* Forwards one connection between a client and `upstream_port`; after
 * `cut` bytes have gone in direction `dir` (0: server->client, 1:
 * client->server) it closes both sides.  cut < 0: never. */
struct relay {
    int lfd, port, upstream_port, dir;
    long cut;
    long moved[2];
    pthread_t thread;
};

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    int down = accept(r->lfd, NULL, NULL);
    int up = down >= 0 ? harness_connect_loopback(r->upstream_port) : -1;
    int fds[2] = {up, down}; /* direction d reads fds[d], writes fds[1-d] */
    char buf[4096];
    while (up >= 0 && down >= 0) {
        struct pollfd p[2] = {{.fd = up, .events = POLLIN}, {.fd = down, .events = POLLIN}};
        if (poll(p, 2, T) <= 0)
            break;
        int stop = 0;
        for (int d = 0; d < 2 && !stop; d++) {
            if (!p[d].revents)
                continue;
            size_t want = sizeof buf;
            if (d == r->dir && r->cut >= 0)
                want = (size_t)(r->cut - r->moved[d]) < want ? (size_t)(r->cut - r->moved[d]) : want;
            ssize_t n = want ? read(fds[d], buf, want) : 0;
            if (n <= 0 || write(fds[1 - d], buf, (size_t)n) != n) {
                stop = 1;
                break;
            }
            r->moved[d] += n;
            if (d == r->dir && r->moved[d] >= r->cut && r->cut >= 0)
                stop = 1;
        }
        if (stop)
            break;
    }
    if (up >= 0)
        close(up);
    if (down >= 0)
        close(down);
    return NULL;
}

static int relay_start(struct relay *r, int upstream_port, int dir, long cut)
{
    memset(r, 0, sizeof *r);
    r->upstream_port = upstream_port;
    r->dir = dir;
    r->cut = cut;
    r->lfd = harness_listen_loopback(&r->port);
    return r->lfd >= 0 && pthread_create(&r->thread, NULL, relay_main, r) == 0 ? 0 : -1;
}

static void relay_join(struct relay *r)
{
    pthread_join(r->thread, NULL);
    close(r->lfd);
}

/* Handshake through a relay cutting after `cut` bytes; returns the result
 * and the bytes the relay moved in each direction. */
static corotls_result handshake_through(corotls_conf *cc, int upstream, int dir, long cut, long moved[2])
{
    struct relay r;
    if (relay_start(&r, upstream, dir, cut) != 0)
        return COROTLS_ERR_IO;
    int fd;
    corotls_conn *c = util_connect(cc, r.port, "localhost", &fd);
    corotls_result res = c ? util_handshake(c, T) : COROTLS_ERR_IO;
    if (res == COROTLS_OK) {
        /* The server may still fail after our side is done (TLS 1.3): a
         * round trip tells. */
        char b = 0;
        res = util_write_all(c, "z", 1, T);
        if (res == COROTLS_OK)
            res = util_read_n(c, &b, 1, T);
    }
    corotls_conn_free(c);
    if (fd >= 0)
        close(fd);
    relay_join(&r);
    moved[0] = r.moved[0];
    moved[1] = r.moved[1];
    return res;
}

TEST(peer_vanishes_at_every_handshake_step)
{
    struct echo_server es;
    corotls_conf *sc = util_server_conf("leaf.crt", "leaf.key"), *cc = util_client_conf(1);
    REQUIRE(sc && cc && util_echo_start(&es, sc) == 0, "echo server");
    long full[2] = {0, 0};
    corotls_result whole = handshake_through(cc, es.port, 0, -1, full);
    REQUIRE(whole == COROTLS_OK && full[0] > 0 && full[1] > 0, "through an uncut relay (%ld / %ld bytes)", full[0], full[1]);
    int steps = quick() ? 6 : 40;
    for (int dir = 0; dir < 2; dir++) {
        int ok = 1, eofs = 0, errors = 0, codes[2] = {0, 0};
        for (int i = 0; i < steps; i++) {
            long cut = full[dir] * i / steps, moved[2];
            corotls_result r = handshake_through(cc, es.port, dir, cut, moved);
            /* A cut stream must end in EOF or an error: never OK, never a
             * hang (util_* would report TIMEOUT). */
            if (r == COROTLS_EOF)
                eofs++;
            else if (r == COROTLS_ERR_TLS || r == COROTLS_ERR_IO)
                errors++, codes[r == COROTLS_ERR_IO]++;
            else {
                ok = 0;
                harness_diag("cut %s after %ld bytes: %s", dir ? "client->server" : "server->client", cut,
                             corotls_result_name(r));
            }
        }
        CHECK(ok, "%s cut at %d points: %d EOF, %d errors (%d TLS, %d IO), no hang, no success",
              dir ? "client->server" : "server->client", steps, eofs, errors, codes[0], codes[1]);
    }
    util_echo_stop(&es);
    CHECK(es.failures >= 0, "server survived %d connections", es.connections);
    corotls_conf_free(sc);
    corotls_conf_free(cc);
}

static corotls_result handshake_with_py(const char *const args[], char *detail, size_t cap)
{
    int port, fd;
    pid_t pid;
    if (harness_spawn_py_peer(args, &port, &pid, NULL) != 0)
        return COROTLS_ERR_IO;
    corotls_conf *cc = util_client_conf(1);
    corotls_conn *c = util_connect(cc, port, "localhost", &fd);
    corotls_result r = c ? util_handshake(c, T) : COROTLS_ERR_IO;
    snprintf(detail, cap, "%s", c ? corotls_conn_error(c) : "");
    corotls_conn_free(c);
    if (fd >= 0)
        close(fd);
    corotls_conf_free(cc);
    harness_kill(pid);
    return r;
}

TEST(peer_hangs_up_mid_handshake)
{
    char msg[512];
    const char *hangup[] = {"hangup", NULL}, *rst[] = {"hangup", "--rst", NULL}, *midway[] = {"midway", NULL};
    corotls_result r = handshake_with_py(hangup, msg, sizeof msg);
    CHECK(r == COROTLS_EOF && strstr(msg, "during the handshake"), "FIN after the ClientHello: %s (%s)", corotls_result_name(r), msg);
    r = handshake_with_py(rst, msg, sizeof msg);
    CHECK(r == COROTLS_ERR_IO || r == COROTLS_EOF, "RST after the ClientHello: %s (%s)", corotls_result_name(r), msg);
    r = handshake_with_py(midway, msg, sizeof msg);
    CHECK(r == COROTLS_EOF, "half a server flight, then FIN: %s (%s)", corotls_result_name(r), msg);
}

TEST(peer_sends_garbage)
{
    char msg[512];
    const char *garbage[] = {"garbage", NULL};
    corotls_result r = handshake_with_py(garbage, msg, sizeof msg);
    CHECK(r == COROTLS_ERR_TLS && msg[0], "plaintext instead of TLS: %s (%s)", corotls_result_name(r), msg);

    /* And a server fed garbage by a client. */
    corotls_conf *sc = util_server_conf("leaf.crt", "leaf.key");
    int lfd = -1, port = 0;
    REQUIRE(sc && (lfd = harness_listen_loopback(&port)) >= 0, "listener");
    int cfd = harness_connect_loopback(port), fd = accept(lfd, NULL, NULL);
    corotls_conn *c = NULL;
    REQUIRE(cfd >= 0 && fd >= 0 && corotls_conn_new(sc, fd, &c) == COROTLS_OK, "server conn");
    uint8_t junk[3000];
    util_fill(junk, sizeof junk, 9);
    junk[0] = 0x16; /* looks like a handshake record at first */
    CHECK(write(cfd, junk, sizeof junk) == (ssize_t)sizeof junk, "client writes 3000 random bytes");
    r = util_handshake(c, T);
    CHECK(r == COROTLS_ERR_TLS, "server: %s (%s)", corotls_result_name(r), corotls_conn_error(c));
    CHECK(corotls_conn_handshake(c) == COROTLS_ERR_TLS, "latched");
    corotls_conn_free(c);
    close(fd);
    close(cfd);
    close(lfd);
    corotls_conf_free(sc);
}

static void end_of_stream(const char *how, corotls_result want)
{
    const char *args[] = {"echo", "--then", how, NULL};
    int port, fd, out;
    pid_t pid;
    REQUIRE(harness_spawn_py_peer(args, &port, &pid, &out) == 0, "python echo --then %s", how);
    corotls_conf *cc = util_client_conf(1);
    corotls_conn *c = util_connect(cc, port, "localhost", &fd);
    char buf[16] = {0};
    REQUIRE(c && util_handshake(c, T) == COROTLS_OK && util_write_all(c, "12345", 5, T) == COROTLS_OK, "handshake, write");
    CHECK(util_read_n(c, buf, 5, T) == COROTLS_OK && !memcmp(buf, "12345", 5), "the echo arrives first");
    corotls_result r = util_read_n(c, buf, 1, T);
    CHECK(r == want, "then %s (%s)", corotls_result_name(r), corotls_conn_error(c));
    CHECK(corotls_session_peer_closed(corotls_conn_session(c)) == (want == COROTLS_CLOSED), "peer_closed matches");
    corotls_conn_free(c);
    close(fd);
    close(out);
    corotls_conf_free(cc);
    harness_kill(pid);
}

TEST(close_notify_is_closed)
{
    end_of_stream("close_notify", COROTLS_CLOSED);
}

TEST(tcp_eof_is_eof)
{
    end_of_stream("eof", COROTLS_EOF);
}

TEST(our_close_notify_reaches_the_peer)
{
    const char *args[] = {"echo", NULL};
    int port, fd, out;
    pid_t pid;
    REQUIRE(harness_spawn_py_peer(args, &port, &pid, &out) == 0, "python echo");
    corotls_conf *cc = util_client_conf(1);
    corotls_conn *c = util_connect(cc, port, "localhost", &fd);
    char buf[1024];
    REQUIRE(c && util_handshake(c, T) == COROTLS_OK, "handshake");
    CHECK(corotls_conn_shutdown(c) == COROTLS_OK && corotls_conn_unsent(c) == 0, "shutdown: close_notify on the wire");
    CHECK(corotls_conn_write(c, (const uint8_t *)"x", 1, NULL) == COROTLS_ERR_ARG, "no writes after shutdown");
    CHECK(util_read_n(c, buf, 1, T) == COROTLS_CLOSED, "the peer answers with its close_notify");
    CHECK(harness_read_until(out, "closed how=close_notify", T, buf, sizeof buf) > 0, "the peer saw our close_notify");
    corotls_conn_free(c);
    close(fd);
    close(out);
    corotls_conf_free(cc);
    harness_kill(pid);
}

/* Both ends in this thread over loopback TCP: the server writes while the
 * client does not read, so the socket fills; queued ciphertext must go out
 * first and in order once the client reads. */
TEST(backpressure_keeps_order)
{
    corotls_conf *sc = util_server_conf("leaf.crt", "leaf.key"), *cc = util_client_conf(1);
    int lfd = -1, port = 0;
    REQUIRE(sc && cc && (lfd = harness_listen_loopback(&port)) >= 0, "listener");
    int cfd = harness_connect_loopback(port), sfd = accept(lfd, NULL, NULL);
    /* Fixed buffer sizes turn off TCP autotuning, which could otherwise
     * make room between two writes while the client is not reading. */
    int sz = 256 * 1024;
    setsockopt(cfd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    setsockopt(sfd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    corotls_conn *c = NULL, *s = NULL;
    REQUIRE(corotls_conn_new(cc, cfd, &c) == COROTLS_OK && corotls_conn_new(sc, sfd, &s) == COROTLS_OK, "conns");
    corotls_conn_set_verify_host(c, "localhost");
    corotls_result rc = COROTLS_WANT_READ, rs = COROTLS_WANT_READ;
    for (int i = 0; i < 1000 && (rc != COROTLS_OK || rs != COROTLS_OK); i++) {
        if (rc != COROTLS_OK)
            rc = corotls_conn_handshake(c);
        if (rs != COROTLS_OK)
            rs = corotls_conn_handshake(s);
        if ((rc != COROTLS_OK && rc > COROTLS_WANT_WRITE) || (rs != COROTLS_OK && rs > COROTLS_WANT_WRITE) || rc < 0 || rs < 0)
            break;
        harness_sleep_ms(1);
    }
    REQUIRE(rc == COROTLS_OK && rs == COROTLS_OK, "handshake in one thread");

    size_t total = (quick() ? 4 : 32) << 20, sent = 0, got = 0;
    uint8_t *out = malloc(total), *in = malloc(total);
    util_fill(out, total, 77);
    corotls_result r;
    size_t n = 0;
    while ((r = corotls_conn_write(s, out + sent, total - sent, &n)) == COROTLS_OK && sent + n < total)
        sent += n;
    sent += n;
    CHECK(r == COROTLS_WANT_WRITE && sent < total, "the socket filled after %zu bytes: %s", sent, corotls_result_name(r));
    CHECK(corotls_conn_unsent(s) > 0, "%zu bytes of ciphertext wait in corotls", corotls_conn_unsent(s));
    CHECK(corotls_conn_write(s, out + sent, total - sent, &n) == COROTLS_WANT_WRITE && n == 0,
          "writing again while full: WANT_WRITE, nothing accepted");
    while (got < total) {
        n = 0;
        r = corotls_conn_read(c, in + got, total - got, &n);
        got += n;
        if (r != COROTLS_OK && r != COROTLS_WANT_READ)
            break;
        if (sent < total) {
            size_t w = 0;
            corotls_result wr = corotls_conn_write(s, out + sent, total - sent, &w);
            sent += w;
            if (wr != COROTLS_OK && wr != COROTLS_WANT_WRITE)
                break;
        } else if (corotls_conn_unsent(s) > 0) {
            corotls_conn_flush(s);
        }
        if (r == COROTLS_WANT_READ && n == 0 && util_wait(cfd, r, T) != 0)
            break;
    }
    CHECK(got == total && !memcmp(in, out, total), "%zu of %zu bytes arrived intact and in order", got, total);
    free(out);
    free(in);
    corotls_conn_free(c);
    corotls_conn_free(s);
    close(cfd);
    close(sfd);
    close(lfd);
    corotls_conf_free(sc);
    corotls_conf_free(cc);
}

TEST(io_errors_are_reported)
{
    corotls_conf *sc = util_server_conf("leaf.crt", "leaf.key");
    int sv[2];
    REQUIRE(sc && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    corotls_conn *c = NULL;
    REQUIRE(corotls_conn_new(sc, sv[0], &c) == COROTLS_OK, "conn over a socketpair");
    close(sv[1]);
    corotls_result r = corotls_conn_handshake(c);
    CHECK(r == COROTLS_EOF, "peer gone before a byte: %s", corotls_result_name(r));
    corotls_conn_free(c);
    close(sv[0]);
    /* An fd that is not a stream socket is refused at once. */
    int p[2];
    REQUIRE(pipe(p) == 0, "pipe");
    c = (corotls_conn *)1;
    r = corotls_conn_new(sc, p[0], &c);
    CHECK(r == COROTLS_ERR_ARG && c == NULL && strstr(corotls_last_error(), "not a socket"), "conn over a pipe: %s (%s)",
          corotls_result_name(r), corotls_last_error());
    close(p[0]);
    close(p[1]);
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    r = corotls_conn_new(sc, udp, &c);
    CHECK(r == COROTLS_ERR_ARG && strstr(corotls_last_error(), "not a stream"), "conn over UDP: %s (%s)",
          corotls_result_name(r), corotls_last_error());
    close(udp);
    r = corotls_conn_new(sc, 1000, &c);
    CHECK(r == COROTLS_ERR_ARG && strstr(corotls_last_error(), "not open"), "conn over a closed fd: %s (%s)",
          corotls_result_name(r), corotls_last_error());
    corotls_conf_free(sc);
}

int main(void)
{
    return harness_run_all();
}
