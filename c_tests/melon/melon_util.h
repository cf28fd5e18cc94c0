/*
 * corotls C tests of the Melon face (libcorotls_melon): shared helpers.
 * Our own code, written from spec/melon.md; no Melon code.
 *
 * Tests link libcorotls_melon first, then the melon_host fixture archive,
 * then libssl/libcrypto (spec §7.5). Certificates come from c_tests/harness/certs.sh;
 * the directory is argv[1], else $COROTLS_CERTDIR, else target/certs
 * (mu_setup hands argv[1] to harness_certdir / harness_cert).
 *
 * Output goes through c_tests/harness/harness.h (ok/FAIL lines, "N passed, M
 * failed"). MELON_TEST_LIGHT=1 (set for the valgrind runs) shrinks the performance
 * rounds and relaxes wall-clock limits; every functional check stays.
 */
#ifndef COROTLS_MELON_UTIL_H
#define COROTLS_MELON_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "mln_connection.h"
#include "melon_host.h"
#include "harness.h"

/* One check line ("ok - ..." / "FAIL - ...") through the shared harness;
 * the value is whether `ok` held. */
#define check(ok, ...) harness_check_((ok) ? 1 : 0, #ok, __FILE__, __LINE__, __VA_ARGS__)
#define check_summary() harness_summary()

#define MU_UNUSED __attribute__((unused))

static int mu_light;

MU_UNUSED static void mu_setup(int argc, char **argv)
{
    if (argc > 1) setenv("COROTLS_CERTDIR", argv[1], 1);
    const char *l = getenv("MELON_TEST_LIGHT");
    mu_light = l != NULL && l[0] != 0 && strcmp(l, "0") != 0;
    harness_init();
}

/* Monotonic seconds with sub-millisecond resolution (harness_now_ms counts
 * whole milliseconds, and a timed section here can be shorter than one). */
MU_UNUSED static double mu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A heap mln_string_t over a copy of `s` (freed with mu_str_free). */
MU_UNUSED static mln_string_t *mu_str(const char *s)
{
    mln_string_t tmp;
    tmp.data = (mln_u8ptr_t)s;
    tmp.len = strlen(s);
    return mln_string_dup(&tmp);
}

MU_UNUSED static mln_string_t *mu_strn(const void *p, size_t n)
{
    mln_string_t tmp;
    tmp.data = (mln_u8ptr_t)p;
    tmp.len = n;
    return mln_string_dup(&tmp);
}

MU_UNUSED static void mu_str_free(mln_string_t *s) { mln_string_free(s); }

/* Server and client confs from the test PKI (leaf = CN=localhost). */
MU_UNUSED static mln_tcp_tls_conf_t *mu_conf(int role, const char *cert, const char *key,
                                             const char *ca, mln_u32_t versions, int verify)
{
    mln_string_t *c = cert ? mu_str(harness_cert(cert)) : NULL;
    mln_string_t *k = key ? mu_str(harness_cert(key)) : NULL;
    mln_string_t *a = ca ? mu_str(harness_cert(ca)) : NULL;
    mln_tcp_tls_conf_t *conf = mln_tcp_tls_conf_new(role, c, k, a, NULL, versions, verify);
    mu_str_free(c);
    mu_str_free(k);
    mu_str_free(a);
    return conf;
}

MU_UNUSED static mln_tcp_tls_conf_t *mu_server_conf(void)
{
    return mu_conf(M_TLS_SERVER, "leaf.crt", "leaf.key", NULL, M_TLS_VDEFAULT, 0);
}

MU_UNUSED static mln_tcp_tls_conf_t *mu_client_conf(void)
{
    return mu_conf(M_TLS_CLIENT, NULL, NULL, "ca.crt", M_TLS_VDEFAULT, 1);
}

/* ---- sockets ---------------------------------------------------------- */

MU_UNUSED static int mu_pair(int sv[2], int nonblock)
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return -1;
    if (nonblock) {
        harness_set_nonblock(sv[0]);
        harness_set_nonblock(sv[1]);
    }
    return 0;
}

/* A connected TCP pair over loopback (blocking). */
MU_UNUSED static int mu_tcp_pair(int sv[2])
{
    int port = 0, l = harness_listen_loopback(&port);
    if (l < 0) return -1;
    sv[0] = harness_connect_loopback(port);
    sv[1] = sv[0] < 0 ? -1 : accept(l, NULL, NULL);
    close(l);
    return sv[0] < 0 || sv[1] < 0 ? -1 : 0;
}

/* Wait for what the connection's want flags say (both if neither). */
MU_UNUSED static int mu_wait(mln_tcp_conn_t *c, int timeout_ms)
{
    struct pollfd p;
    p.fd = mln_tcp_conn_fd_get(c);
    p.events = 0;
    if (mln_tcp_conn_tls_want_read(c)) p.events |= POLLIN;
    if (mln_tcp_conn_tls_want_write(c)) p.events |= POLLOUT;
    if (p.events == 0) p.events = POLLIN | POLLOUT;
    p.revents = 0;
    return poll(&p, 1, timeout_ms);
}

/* ---- chains ------------------------------------------------------------- */

/* A chain with a pool copy of `data` (in_memory, last_buf, last_in_chain). */
MU_UNUSED static mln_chain_t *mu_mem_chain(mln_alloc_t *pool, const void *data, size_t len, int last)
{
    mln_chain_t *c = mln_chain_new(pool);
    mln_buf_t *b = mln_buf_new(pool);
    mln_u8ptr_t p = len ? mln_alloc_m(pool, len) : NULL;
    if (c == NULL || b == NULL || (len && p == NULL)) abort();
    if (len) memcpy(p, data, len);
    b->left_pos = b->pos = b->start = p;
    b->last = b->end = p + len;
    b->in_memory = 1;
    b->last_buf = 1;
    b->last_in_chain = last ? 1 : 0;
    c->buf = b;
    return c;
}

/*
 * A malformed chain (last_in_chain): MU_BOTH_KINDS_LEN bytes in memory, but
 * also flagged in_file, with file offsets (no file) that claim 64 KiB, so
 * mln_buf_left_size says 64 KiB.
 */
#define MU_BOTH_KINDS_DATA "0123456789abcdef"
#define MU_BOTH_KINDS_LEN 16
MU_UNUSED static mln_chain_t *mu_both_kinds_chain(mln_alloc_t *pool)
{
    mln_chain_t *c = mu_mem_chain(pool, MU_BOTH_KINDS_DATA, MU_BOTH_KINDS_LEN, 1);
    c->buf->in_file = 1;
    c->buf->file_left_pos = c->buf->file_pos = 0;
    c->buf->file_last = 65536;
    return c;
}

/* Sum of mln_buf_left_size over a chain list. */
MU_UNUSED static size_t mu_chain_left(mln_chain_t *c)
{
    size_t n = 0;
    for (; c != NULL; c = c->next) n += (size_t)mln_buf_left_size(c->buf);
    return n;
}

/*
 * Move every RECV byte (from left_pos) into `dst` (up to cap), release the
 * queue; returns the byte count. What Melang's recv does.
 */
MU_UNUSED static size_t mu_take_recv(mln_tcp_conn_t *c, unsigned char *dst, size_t cap)
{
    mln_chain_t *h = mln_tcp_conn_remove(c, M_C_RECV), *it;
    size_t n = 0;
    for (it = h; it != NULL; it = it->next) {
        mln_buf_t *b = it->buf;
        size_t l = (size_t)mln_buf_left_size(b);
        if (b == NULL || !b->in_memory) continue;
        if (n + l > cap) l = cap - n;
        memcpy(dst + n, b->left_pos, l);
        n += l;
    }
    mln_chain_pool_release_all(h);
    return n;
}

MU_UNUSED static void mu_release_sent(mln_tcp_conn_t *c)
{
    mln_chain_pool_release_all(mln_tcp_conn_remove(c, M_C_SENT));
}

/* ---- attached SSL (spec §6.1 "attach": tls_conf stays NULL) ------------ */

MU_UNUSED static SSL_CTX *mu_raw_ctx(int server)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL) abort();
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (server) {
        if (SSL_CTX_use_certificate_chain_file(ctx, harness_cert("leaf.crt")) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, harness_cert("leaf.key"), SSL_FILETYPE_PEM) != 1)
            abort();
    } else {
        if (SSL_CTX_load_verify_locations(ctx, harness_cert("ca.crt"), NULL) != 1) abort();
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    return ctx;
}

/* mln_tcp_conn_init, then our own SSL with two memory BIOs (eof -1). */
MU_UNUSED static int mu_attach(mln_tcp_conn_t *c, int fd, SSL_CTX *ctx, int server)
{
    BIO *r, *w;
    if (mln_tcp_conn_init(c, fd) != 0) return -1;
    c->ssl = SSL_new(ctx);
    r = BIO_new(BIO_s_mem());
    w = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || r == NULL || w == NULL) abort();
    BIO_set_mem_eof_return(r, -1);
    BIO_set_mem_eof_return(w, -1);
    SSL_set_bio(c->ssl, r, w);
    if (server) SSL_set_accept_state(c->ssl);
    else SSL_set_connect_state(c->ssl);
    return 0;
}

/*
 * Drive both handshakes alternately (non-blocking) for up to `rounds`;
 * 1 when both are done, 0 otherwise. *saw_notyet counts NOTYET results.
 */
MU_UNUSED static int mu_handshake_pair(mln_tcp_conn_t *a, mln_tcp_conn_t *b, int rounds, int *saw_notyet)
{
    int ra = M_C_NOTYET, rb = M_C_NOTYET;
    for (int i = 0; i < rounds; i++) {
        if (ra != M_C_FINISH) ra = mln_tcp_conn_tls_handshake(a);
        if (rb != M_C_FINISH) rb = mln_tcp_conn_tls_handshake(b);
        if (saw_notyet != NULL) *saw_notyet += (ra == M_C_NOTYET) + (rb == M_C_NOTYET);
        if (ra == M_C_ERROR || ra == M_C_CLOSED || rb == M_C_ERROR || rb == M_C_CLOSED) return 0;
        if (ra == M_C_FINISH && rb == M_C_FINISH) return 1;
    }
    return 0;
}

/* Fill `p` with a pattern that depends on the offset. */
MU_UNUSED static void mu_pattern(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)((i * 131u + seed * 7u + (i >> 9)) & 0xff);
}

#endif
