/*
 * loop_flow.c -- corotls_loop data flow: read by size and by delimiter,
 * CLOSED vs EOF, the read limit (pause and resume), listener reload in the
 * middle of traffic, a host-side poll() loop embedding the loop fd, interop
 * with openssl s_server / s_client, ALPN and info, bulk both ways.
 */
#include <poll.h>
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

/* Start a read; return its result, waiting for the callback if PENDING.
 * The data goes to d (copied) either way. */
static corotls_result read_any(corotls_loop *l, int fd, int kind, size_t n, const char *delim, size_t max,
                               struct lu_done *d)
{
    const uint8_t *data = NULL;
    size_t len = 0;
    corotls_result r;
    lu_reset(d);
    if (kind == 0)
        r = corotls_loop_recv(l, fd, 10000, lu_cb, d, &data, &len);
    else if (kind == 1)
        r = corotls_loop_read(l, fd, n, 10000, lu_cb, d, &data, &len);
    else
        r = corotls_loop_read_until(l, fd, (const uint8_t *)delim, strlen(delim), max, 10000, lu_cb, d, &data,
                                    &len);
    if (r == COROTLS_PENDING)
        return lu_wait(l, d, 20000) ? d->r : COROTLS_TIMEOUT;
    if (r == COROTLS_OK) {
        d->data = malloc(len);
        memcpy(d->data, data, len);
        d->len = len;
    }
    return r;
}

TEST(test_read_by_size_and_delimiter)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    struct lu_done d = {0};
    /* The delimiter arrives split across two records. */
    const uint8_t *data;
    size_t len;
    REQUIRE(corotls_loop_read_until(l, sfd, (const uint8_t *)"\r\n", 2, 0, 10000, lu_cb, &d, &data, &len) ==
                COROTLS_PENDING,
            "read_until pending");
    lu_send(l, cfd, "GET / HTTP/1.1\r", 15, 5000, NULL);
    lu_spin(l, 20);
    CHECK(d.calls == 0, "not complete with half a delimiter");
    lu_send(l, cfd, "\nHost: x\r\n\r\nBODY", 16, 5000, NULL);
    REQUIRE(lu_wait(l, &d, 5000) && d.r == COROTLS_OK, "completed");
    CHECK(d.len == 16 && memcmp(d.data, "GET / HTTP/1.1\r\n", 16) == 0, "first line with its delimiter");
    CHECK(read_any(l, sfd, 2, 0, "\r\n", 0, &d) == COROTLS_OK && d.len == 9 && memcmp(d.data, "Host: x\r\n", 9) == 0,
          "second line");
    CHECK(read_any(l, sfd, 2, 0, "\r\n", 0, &d) == COROTLS_OK && d.len == 2, "empty line");
    CHECK(read_any(l, sfd, 1, 4, NULL, 0, &d) == COROTLS_OK && d.len == 4 && memcmp(d.data, "BODY", 4) == 0,
          "read(4)");
    /* max: a line longer than max comes as max bytes. */
    lu_send(l, cfd, "0123456789\n", 11, 5000, NULL);
    CHECK(read_any(l, sfd, 2, 0, "\n", 4, &d) == COROTLS_OK && d.len == 4 && memcmp(d.data, "0123", 4) == 0,
          "read_until with max 4 gives 4 bytes");
    CHECK(read_any(l, sfd, 2, 0, "\n", 100, &d) == COROTLS_OK && d.len == 7, "then the rest of the line");
    /* read(n) larger than the limit still completes. */
    corotls_loop_set_limit(l, sfd, 1000);
    size_t n = 100000;
    uint8_t *p = malloc(n);
    util_fill(p, n, 3);
    struct lu_done sd = {0};
    corotls_result r = corotls_loop_send(l, cfd, p, n, 10000, lu_cb, &sd);
    CHECK(read_any(l, sfd, 1, n, NULL, 0, &d) == COROTLS_OK && d.len == n && memcmp(d.data, p, n) == 0,
          "read(%zu) with a limit of 1000", n);
    if (r == COROTLS_PENDING)
        CHECK(lu_wait(l, &sd, 10000) && sd.r == COROTLS_OK, "send done");
    lu_reset(&sd);
    lu_reset(&d);
    free(p);
    corotls_loop_free(l);
}

TEST(test_closed_and_eof)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    struct lu_done d = {0};
    bool alive = false;

    /* close_notify after data: the data first, then CLOSED. */
    REQUIRE(lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    lu_send(l, cfd, "last words", 10, 5000, NULL);
    corotls_loop_close(l, cfd);
    CHECK(read_any(l, sfd, 0, 0, NULL, 0, &d) == COROTLS_OK && d.len == 10, "data before the close");
    CHECK(read_any(l, sfd, 0, 0, NULL, 0, &d) == COROTLS_CLOSED, "then CLOSED");
    CHECK(has(corotls_last_error(), "close_notify"), "message: %s", corotls_last_error());
    CHECK(read_any(l, sfd, 0, 0, NULL, 0, &d) == COROTLS_CLOSED, "CLOSED again");
    CHECK(corotls_loop_is_alive(l, sfd, &alive) == COROTLS_OK && !alive, "not alive");
    corotls_loop_close(l, sfd);

    /* The TCP stream ends without close_notify: EOF. */
    REQUIRE(lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair 2");
    CHECK(corotls_loop_is_alive(l, sfd, &alive) == COROTLS_OK && alive, "alive");
    lu_send(l, cfd, "cut", 3, 5000, NULL);
    shutdown(cfd, SHUT_WR); /* the real socket: FIN, no close_notify */
    CHECK(read_any(l, sfd, 0, 0, NULL, 0, &d) == COROTLS_OK && d.len == 3, "data before the cut");
    CHECK(read_any(l, sfd, 0, 0, NULL, 0, &d) == COROTLS_EOF, "then EOF");
    CHECK(has(corotls_last_error(), "without close_notify"), "message: %s", corotls_last_error());
    CHECK(read_any(l, sfd, 1, 10, NULL, 0, &d) == COROTLS_EOF, "read(n) after EOF: EOF");
    CHECK(corotls_loop_is_alive(l, sfd, &alive) == COROTLS_OK && !alive, "not alive");
    /* A pending read sees the end too. */
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, cfd);
    REQUIRE(lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair 3");
    const uint8_t *data;
    size_t len;
    lu_reset(&d);
    REQUIRE(corotls_loop_read(l, sfd, 5, 10000, lu_cb, &d, &data, &len) == COROTLS_PENDING, "read(5) pending");
    lu_send(l, cfd, "ab", 2, 5000, NULL);
    corotls_loop_close(l, cfd);
    CHECK(lu_wait(l, &d, 5000) && d.r == COROTLS_CLOSED, "read(5) with 2 bytes then close_notify: CLOSED");
    size_t n = 0;
    CHECK(corotls_loop_unread_bytes(l, sfd, &n) == COROTLS_OK && n == 2, "the 2 bytes stay readable");
    CHECK(read_any(l, sfd, 0, 0, NULL, 0, &d) == COROTLS_OK && d.len == 2, "recv returns them");
    lu_reset(&d);
    corotls_loop_free(l);
}

/* silly's limit: background reading pauses at the limit (the sender
 * stalls), resumes when reads bring the unread bytes below it, or when the
 * limit is lifted. */
TEST(test_read_limit_pause_resume)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    /* The kernel may hold at most 2 x 64 KiB per socket buffer: with the
     * limit and one read over it, far less than n, so the sender must stall.
     * (Smaller buffers prove nothing more; with 4 KiB ones loopback TCP
     * crawls at ~50 KB/s.) */
    lu_small_buffers(cfd, 64 * 1024);
    lu_small_buffers(sfd, 64 * 1024);
    const size_t limit = 16384, slack = 64 * 1024 + 17 * 1024;
    REQUIRE(corotls_loop_set_limit(l, cfd, limit) == COROTLS_OK, "limit 16 KiB");
    const size_t n = 1 << 20;
    uint8_t *p = malloc(n), *got = malloc(n);
    util_fill(p, n, 11);
    struct lu_done sd = {0};
    REQUIRE(corotls_loop_send(l, sfd, p, n, -1, lu_cb, &sd) == COROTLS_PENDING, "server sends %zu bytes", n);

    size_t unread = 0, most = 0;
    long long end = harness_now_ms() + 20000;
    while (unread < limit && harness_now_ms() < end) {
        corotls_loop_dispatch(l, 10, NULL);
        corotls_loop_unread_bytes(l, cfd, &unread);
    }
    CHECK(unread >= limit, "background reading filled up to the limit (%zu unread)", unread);
    for (int i = 0; i < 40; i++) {
        corotls_loop_dispatch(l, 5, NULL);
        corotls_loop_unread_bytes(l, cfd, &unread);
        if (unread > most)
            most = unread;
    }
    CHECK(most <= limit + slack, "paused: never more than the limit plus one read (%zu)", most);
    CHECK(sd.calls == 0, "the sender is stalled while the reader is paused");

    /* Resume by reading. */
    size_t have = 0;
    struct lu_done d = {0};
    while (have < n / 2) {
        corotls_result r = read_any(l, cfd, 0, 0, NULL, 0, &d);
        if (r != COROTLS_OK)
            break;
        memcpy(got + have, d.data, d.len);
        have += d.len;
    }
    CHECK(have >= n / 2, "reading resumed (%zu bytes read)", have);
    CHECK(have < n, "part of the data is left for lifting the limit (%zu bytes)", n - have);
    /* Resume by lifting the limit: the rest arrives without being read. */
    REQUIRE(corotls_loop_set_limit(l, cfd, 0) == COROTLS_OK, "no limit");
    CHECK(lu_wait(l, &sd, 30000) && sd.r == COROTLS_OK && sd.len == n, "the sender finished (%s)",
          corotls_result_name(sd.r));
    end = harness_now_ms() + 20000;
    corotls_loop_unread_bytes(l, cfd, &unread);
    while (unread < n - have && harness_now_ms() < end) {
        corotls_loop_dispatch(l, 10, NULL);
        corotls_loop_unread_bytes(l, cfd, &unread);
    }
    CHECK(unread == n - have, "all the rest is buffered unread (%zu)", unread);
    CHECK(lu_recv_n(l, cfd, got + have, n - have, 5000) == COROTLS_OK, "read it");
    CHECK(memcmp(got, p, n) == 0, "every byte in order");
    lu_reset(&sd);
    lu_reset(&d);
    free(p);
    free(got);
    corotls_loop_free(l);
}

/* Reload: new accepts use the new conf, existing connections keep theirs
 * and keep moving data; the new conf's handle is freed at once. */
TEST(test_listener_reload_mid_traffic)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), c1, s1, c2, s2;
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &c1, &s1) == 0, "first connection");
    uint8_t buf[64];
    CHECK(lu_transfer(l, c1, s1, "before", 6, buf) == COROTLS_OK, "traffic before the reload");

    /* A large send is in flight during the reload. */
    size_t n = (size_t)lu_scale(4 << 20, 512 << 10);
    uint8_t *p = malloc(n), *got = malloc(n);
    util_fill(p, n, 5);
    struct lu_done sd = {0};
    corotls_result sr = corotls_loop_send(l, s1, p, n, 30000, lu_cb, &sd);
    CHECK(sr == COROTLS_PENDING || sr == COROTLS_OK, "server sends %zu bytes", n);

    corotls_conf *alt = util_server_conf("alt1.crt", "alt1.key");
    REQUIRE(alt, "second conf");
    CHECK(corotls_loop_listener_set_conf(l, lfd, alt) == COROTLS_OK, "reload");
    corotls_conf_free(alt);
    REQUIRE(lu_pair_hs(l, lfd, port, lu_cconf, &c2, &s2) == 0, "connection after the reload");
    char subj[256];
    corotls_loop_info(l, c2, COROTLS_INFO_PEER_SUBJECT, subj, sizeof subj, NULL);
    CHECK(has(subj, "alt1.example"), "the new connection got the new certificate (%s)", subj);
    corotls_loop_info(l, c1, COROTLS_INFO_PEER_SUBJECT, subj, sizeof subj, NULL);
    CHECK(has(subj, "localhost"), "the old one keeps its own (%s)", subj);
    CHECK(lu_recv_n(l, c1, got, n, 30000) == COROTLS_OK && memcmp(got, p, n) == 0,
          "the in-flight transfer completes intact");
    if (sr == COROTLS_PENDING)
        CHECK(lu_wait(l, &sd, 30000) && sd.r == COROTLS_OK, "its send completes");
    CHECK(lu_transfer(l, c1, s1, "old-conn", 8, buf) == COROTLS_OK, "old connection still echoes");
    CHECK(lu_transfer(l, s2, c2, "new-conn", 8, buf) == COROTLS_OK, "new connection works");
    lu_reset(&sd);
    free(p);
    free(got);
    corotls_loop_free(l);
}

struct embed {
    corotls_loop *l;
    int done, timeouts, data;
};

static void embed_cb(void *ud, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct embed *e = ud;
    (void)fd;
    (void)data;
    if (r == COROTLS_TIMEOUT)
        e->timeouts++;
    if (r == COROTLS_OK && len > 0)
        e->data++;
    e->done++;
}

static void *later_close(void *arg)
{
    struct closer {
        corotls_loop *l;
        int fd;
    } *c = arg;
    harness_sleep_ms(20);
    corotls_loop_close(c->l, c->fd);
    return NULL;
}

/* A host with its own poll() loop watches the loop fd (and its own fds)
 * and dispatches only when that fd is readable: I/O, deadlines and a
 * completion queued by another thread all wake it. */
TEST(test_embedding_host_poll_loop)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd, c2, s2;
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    REQUIRE(lu_pair_hs(l, lfd, port, lu_cconf, &c2, &s2) == 0, "pair 2");
    struct embed e = {l, 0, 0, 0};
    const uint8_t *data;
    size_t len;
    int host_pipe[2];
    REQUIRE(pipe(host_pipe) == 0, "host's own fd");

    /* 1: data (a recv completed by the peer's send), 2: a deadline (a recv
     * that times out), 3: a close from another thread (CANCELLED). */
    REQUIRE(corotls_loop_recv(l, sfd, -1, embed_cb, &e, &data, &len) == COROTLS_PENDING, "recv 1");
    REQUIRE(corotls_loop_send(l, cfd, (const uint8_t *)"poke", 4, -1, embed_cb, &e) == COROTLS_OK, "send");
    REQUIRE(corotls_loop_recv(l, cfd, 40, embed_cb, &e, &data, &len) == COROTLS_PENDING, "recv 2 (40 ms)");
    REQUIRE(corotls_loop_recv(l, c2, -1, embed_cb, &e, &data, &len) == COROTLS_PENDING, "recv 3");
    struct {
        corotls_loop *l;
        int fd;
    } closer = {l, c2};
    pthread_t t;
    pthread_create(&t, NULL, later_close, &closer);
    if (write(host_pipe[1], "h", 1) != 1)
        CHECK(0, "pipe write");

    int dispatches = 0, spurious = 0, host_events = 0;
    long long end = harness_now_ms() + 20000;
    while (e.done < 3 && harness_now_ms() < end) {
        struct pollfd pf[2] = {{.fd = corotls_loop_fd(l), .events = POLLIN}, {.fd = host_pipe[0], .events = POLLIN}};
        if (poll(pf, 2, 10000) <= 0)
            continue;
        if (pf[1].revents & POLLIN) {
            char c;
            if (read(host_pipe[0], &c, 1) == 1)
                host_events++;
        }
        if (pf[0].revents & POLLIN) {
            size_t ran = 0;
            corotls_loop_dispatch(l, 0, &ran);
            dispatches++;
            if (ran == 0)
                spurious++;
        }
    }
    pthread_join(t, NULL);
    CHECK(e.done == 3, "all three completions arrived through the host's poll loop");
    CHECK(e.data == 1 && e.timeouts == 1, "one with data, one timeout");
    CHECK(host_events == 1, "the host's own fd was served too");
    harness_diag("%d dispatches, %d without a completion (socket events that completed nothing)", dispatches,
                 spurious);
    CHECK(corotls_loop_pending(l) == 0, "nothing pending");
    close(host_pipe[0]);
    close(host_pipe[1]);
    corotls_loop_free(l);
}

/* The loop against openssl s_server (client side) and s_client (server
 * side). */
TEST(test_interop_openssl)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, in_fd, out_fd, fd;
    pid_t pid;
    char buf[4096], ps[16];
    struct lu_done d = {0};

    const char *sargs[] = {NULL};
    REQUIRE(harness_spawn_s_server_io(sargs, &port, &pid, &in_fd, &out_fd) == 0, "openssl s_server");
    snprintf(ps, sizeof ps, "%d", port);
    corotls_result r = corotls_loop_connect(l, "localhost", ps, lu_vconf, 10000, lu_cb, &d, &fd);
    if (r == COROTLS_PENDING) {
        r = lu_wait(l, &d, 10000) ? d.r : COROTLS_TIMEOUT;
        fd = d.fd;
    }
    REQUIRE(r == COROTLS_OK, "connect to s_server by name (%s)", d.msg);
    lu_reset(&d);
    corotls_loop_set_sni(l, fd, "localhost");
    corotls_loop_set_verify_host(l, fd, "localhost");
    CHECK(lu_handshake(l, fd, 10000) == COROTLS_OK, "handshake with verification");
    CHECK(lu_send(l, fd, "hello from the loop\n", 20, 5000, NULL) == COROTLS_OK, "send");
    CHECK(harness_read_until(out_fd, "hello from the loop", 10000, buf, sizeof buf) > 0, "s_server printed it");
    CHECK(write(in_fd, "typed at s_server\n", 18) == 18, "type a line at s_server");
    uint8_t got[18];
    CHECK(lu_recv_n(l, fd, got, 18, 10000) == COROTLS_OK && memcmp(got, "typed at s_server\n", 18) == 0,
          "the loop received it");
    corotls_loop_close(l, fd);
    close(in_fd);
    close(out_fd);
    harness_kill(pid);

    int lfd = lu_listen(l, lu_sconf, &port), sfd;
    REQUIRE(lfd >= 0, "loop listener");
    const char *cargs[] = {"-servername", "localhost", "-verify_return_error", NULL};
    pid = harness_spawn_s_client(port, cargs, &in_fd, &out_fd);
    REQUIRE(pid > 0, "openssl s_client");
    r = corotls_loop_accept(l, lfd, NULL, 10000, lu_cb, &d, &sfd);
    if (r == COROTLS_PENDING) {
        r = lu_wait(l, &d, 10000) ? d.r : COROTLS_TIMEOUT;
        sfd = d.fd;
    }
    REQUIRE(r == COROTLS_OK, "accepted s_client");
    lu_reset(&d);
    CHECK(lu_handshake(l, sfd, 10000) == COROTLS_OK, "server handshake");
    CHECK(write(in_fd, "ping\n", 5) == 5, "type ping at s_client");
    uint8_t ping[5];
    CHECK(lu_recv_n(l, sfd, ping, 5, 10000) == COROTLS_OK && memcmp(ping, "ping\n", 5) == 0, "got ping");
    CHECK(lu_send(l, sfd, "pong-from-loop\n", 15, 5000, NULL) == COROTLS_OK, "send pong");
    CHECK(harness_read_until(out_fd, "pong-from-loop", 10000, buf, sizeof buf) > 0, "s_client printed pong");
    close(in_fd); /* s_client sends close_notify and leaves */
    r = lu_recv_result(l, sfd, 10000);
    CHECK(r == COROTLS_CLOSED || r == COROTLS_EOF, "s_client's close seen (%s)", corotls_result_name(r));
    close(out_fd);
    harness_kill(pid);
    corotls_loop_free(l);
}

TEST(test_alpn_and_info)
{
    corotls_conf_builder *b;
    corotls_conf *s, *c;
    const char *sp[] = {"h2", "http/1.1"}, *cp[] = {"http/1.1", "h2"};
    corotls_conf_builder_new(COROTLS_SERVER, &b);
    corotls_conf_builder_add_identity_file(b, harness_cert("leaf.crt"), harness_cert("leaf.key"), NULL);
    corotls_conf_builder_set_alpn(b, sp, 2);
    REQUIRE(corotls_conf_builder_build(b, &s) == COROTLS_OK, "server conf with ALPN");
    corotls_conf_builder_free(b);
    corotls_conf_builder_new(COROTLS_CLIENT, &b);
    corotls_conf_builder_add_ca_file(b, harness_cert("ca.crt"));
    corotls_conf_builder_set_alpn(b, cp, 2);
    REQUIRE(corotls_conf_builder_build(b, &c) == COROTLS_OK, "client conf with ALPN");
    corotls_conf_builder_free(b);
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, s, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair(l, lfd, port, c, &cfd, &sfd) == 0, "pair");
    char v[256];
    CHECK(corotls_loop_info(l, cfd, COROTLS_INFO_ALPN, v, sizeof v, NULL) == COROTLS_OK && v[0] == 0,
          "no ALPN before the handshake");
    corotls_loop_set_verify_host(l, cfd, "127.0.0.1");
    struct lu_done sd = {0};
    corotls_loop_handshake(l, sfd, 5000, lu_cb, &sd);
    CHECK(lu_handshake(l, cfd, 5000) == COROTLS_OK && lu_wait(l, &sd, 5000) && sd.r == COROTLS_OK, "handshakes");
    lu_reset(&sd);
    CHECK(corotls_loop_info(l, cfd, COROTLS_INFO_ALPN, v, sizeof v, NULL) == COROTLS_OK && strcmp(v, "h2") == 0,
          "client ALPN h2 (server preference): %s", v);
    CHECK(corotls_loop_info(l, sfd, COROTLS_INFO_ALPN, v, sizeof v, NULL) == COROTLS_OK && strcmp(v, "h2") == 0,
          "server ALPN h2");
    CHECK(corotls_loop_info(l, cfd, COROTLS_INFO_CIPHER, v, sizeof v, NULL) == COROTLS_OK && has(v, "TLS_"),
          "cipher %s", v);
    CHECK(corotls_loop_info(l, cfd, COROTLS_INFO_VERIFY, v, sizeof v, NULL) == COROTLS_OK && strcmp(v, "ok") == 0,
          "verify %s", v);
    CHECK(corotls_loop_info(l, cfd, COROTLS_INFO_REMOTE_ADDR, v, sizeof v, NULL) == COROTLS_OK &&
              atoi(strrchr(v, ':') + 1) == port && has(v, "127.0.0.1:"),
          "remote address %s", v);
    CHECK(corotls_loop_info(l, sfd, COROTLS_INFO_ERROR, v, sizeof v, NULL) == COROTLS_OK && v[0] == 0,
          "no error on a healthy fd");
    corotls_loop_free(l);
    corotls_conf_free(s);
    corotls_conf_free(c);
}

/* Bulk in each direction.  (A recv on an fd whose send is in flight is
 * BUSY -- the busy rule -- but background reading keeps taking the peer's
 * data in, up to the limit, while the send runs.) */
TEST(test_bulk_both_ways)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "pair");
    size_t n = (size_t)lu_scale(16 << 20, 1 << 20);
    uint8_t *a = malloc(n), *b = malloc(n), *ga = malloc(n), *gb = malloc(n);
    util_fill(a, n, 21);
    util_fill(b, n, 22);
    struct lu_done da = {0}, db = {0};
    const uint8_t *data;
    size_t len;
    corotls_result r = corotls_loop_send(l, cfd, a, n, 60000, lu_cb, &da);
    CHECK(r == COROTLS_OK || r == COROTLS_PENDING, "client sends %zu bytes", n);
    if (r == COROTLS_PENDING)
        CHECK(corotls_loop_recv(l, cfd, -1, lu_cb, &db, &data, &len) == COROTLS_BUSY, "recv on the same fd: BUSY");
    CHECK(lu_recv_n(l, sfd, ga, n, 60000) == COROTLS_OK && memcmp(ga, a, n) == 0, "%zu bytes client->server", n);
    if (r == COROTLS_PENDING)
        CHECK(lu_wait(l, &da, 60000) && da.r == COROTLS_OK && da.len == n, "client send done");
    r = corotls_loop_send(l, sfd, b, n, 60000, lu_cb, &db);
    CHECK(r == COROTLS_OK || r == COROTLS_PENDING, "server sends %zu bytes", n);
    CHECK(lu_recv_n(l, cfd, gb, n, 60000) == COROTLS_OK && memcmp(gb, b, n) == 0, "%zu bytes server->client", n);
    if (r == COROTLS_PENDING)
        CHECK(lu_wait(l, &db, 60000) && db.r == COROTLS_OK && db.len == n, "server send done");
    lu_reset(&da);
    lu_reset(&db);
    free(a);
    free(b);
    free(ga);
    free(gb);
    corotls_loop_free(l);
}

int main(void)
{
    return lu_main();
}
