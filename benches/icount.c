/*
 * icount: the same TLS work through raw OpenSSL or through corotls_conn,
 * both ends in one thread over a socketpair, for instruction counts under
 * callgrind (benches/run.sh).  Collection is switched on only around the
 * measured part (CALLGRIND_TOGGLE_COLLECT; run callgrind with
 * --collect-atstart=no), after warm-up rounds, so set-up, the first
 * handshake and teardown are not counted: Ir / N is the cost of one unit.
 *
 *   icount openssl|conn echo|bulk|handshake N [CERTDIR]
 *
 *   echo       N round trips of 64 bytes (client write, server read, server
 *              write, client read)
 *   bulk       N records of 16 KiB, client to server
 *   handshake  N full TLS 1.3 handshakes with ECDSA P-256 (client verifies
 *              chain and name), both ends, on a fresh socketpair each
 *
 * Without valgrind it runs the same work uncounted (a smoke test).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif
#endif
#ifndef CALLGRIND_TOGGLE_COLLECT
#define CALLGRIND_TOGGLE_COLLECT
#endif

#include "corotls.h"

static const char *dir = "target/certs";

/* One stack: a connection over fd, non-blocking, WANT means "try again". */
struct stack {
    void *(*wrap)(int fd, int server, int ec);
    int (*handshake)(void *c);                  /* 1 done, 0 again, -1 failed */
    long (*read)(void *c, void *b, size_t n);   /* >0, 0 again, -1 failed */
    long (*write)(void *c, const void *b, size_t n);
    void (*unwrap)(void *c);
};

static void die(const char *what)
{
    fprintf(stderr, "icount: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static void path(char *out, size_t n, const char *file)
{
    snprintf(out, n, "%s/%s", dir, file);
}

/* ---------------------------------------------------------- raw OpenSSL */

static SSL_CTX *o_srv[2], *o_cli;

static void o_init(void)
{
    char crt[512], key[512], ca[512];
    const char *names[2][2] = {{"leaf.crt", "leaf.key"}, {"ec.crt", "ec.key"}};
    for (int ec = 0; ec < 2; ec++) {
        o_srv[ec] = SSL_CTX_new(TLS_server_method());
        path(crt, sizeof crt, names[ec][0]);
        path(key, sizeof key, names[ec][1]);
        if (SSL_CTX_use_certificate_chain_file(o_srv[ec], crt) != 1 ||
            SSL_CTX_use_PrivateKey_file(o_srv[ec], key, SSL_FILETYPE_PEM) != 1)
            die("server cert");
        SSL_CTX_set_min_proto_version(o_srv[ec], TLS1_2_VERSION);
        SSL_CTX_set_mode(o_srv[ec], SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    o_cli = SSL_CTX_new(TLS_client_method());
    path(ca, sizeof ca, "ca.crt");
    if (SSL_CTX_load_verify_locations(o_cli, ca, NULL) != 1)
        die("ca");
    SSL_CTX_set_verify(o_cli, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_min_proto_version(o_cli, TLS1_2_VERSION);
    SSL_CTX_set_mode(o_cli, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}
static void *o_wrap(int fd, int server, int ec)
{
    SSL *s = SSL_new(server ? o_srv[ec] : o_cli);
    SSL_set_fd(s, fd);
    if (server)
        SSL_set_accept_state(s);
    else {
        SSL_set_connect_state(s);
        SSL_set_tlsext_host_name(s, "localhost");
        SSL_set1_host(s, "localhost");
    }
    return s;
}
static int o_again(SSL *s, int r)
{
    int e = SSL_get_error(s, r);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}
static int o_handshake(void *c)
{
    int r = SSL_do_handshake(c);
    return r == 1 ? 1 : o_again(c, r);
}
static long o_read(void *c, void *b, size_t n)
{
    int r = SSL_read(c, b, (int)n);
    return r > 0 ? r : o_again(c, r);
}
static long o_write(void *c, const void *b, size_t n)
{
    int r = SSL_write(c, b, (int)n);
    return r > 0 ? r : o_again(c, r);
}
static void o_unwrap(void *c)
{
    SSL_free(c);
}
static const struct stack openssl_stack = {o_wrap, o_handshake, o_read, o_write, o_unwrap};

/* -------------------------------------------------------------- corotls */

static corotls_conf *c_srv[2], *c_cli;

static void c_init(void)
{
    char crt[512], key[512], ca[512];
    const char *names[2][2] = {{"leaf.crt", "leaf.key"}, {"ec.crt", "ec.key"}};
    for (int ec = 0; ec < 2; ec++) {
        path(crt, sizeof crt, names[ec][0]);
        path(key, sizeof key, names[ec][1]);
        if (corotls_conf_new(COROTLS_SERVER, crt, key, NULL, NULL, false, &c_srv[ec]) != COROTLS_OK)
            die(corotls_last_error());
    }
    path(ca, sizeof ca, "ca.crt");
    if (corotls_conf_new(COROTLS_CLIENT, NULL, NULL, ca, NULL, true, &c_cli) != COROTLS_OK)
        die(corotls_last_error());
}
static void *c_wrap(int fd, int server, int ec)
{
    corotls_conn *c = NULL;
    if (corotls_conn_new(server ? c_srv[ec] : c_cli, fd, &c) != COROTLS_OK)
        die(corotls_last_error());
    if (!server) {
        corotls_conn_set_sni(c, "localhost");
        corotls_conn_set_verify_host(c, "localhost");
    }
    return c;
}
static int c_again(corotls_result r)
{
    return r == COROTLS_WANT_READ || r == COROTLS_WANT_WRITE ? 0 : -1;
}
static int c_handshake(void *c)
{
    corotls_result r = corotls_conn_handshake(c);
    return r == COROTLS_OK ? 1 : c_again(r);
}
static long c_read(void *c, void *b, size_t n)
{
    size_t got = 0;
    corotls_result r = corotls_conn_read(c, b, n, &got);
    return r == COROTLS_OK ? (long)got : c_again(r);
}
static long c_write(void *c, const void *b, size_t n)
{
    size_t put = 0;
    corotls_result r = corotls_conn_write(c, b, n, &put);
    if (put > 0)
        return (long)put;
    return r == COROTLS_OK ? 0 : c_again(r);
}
static void c_unwrap(void *c)
{
    corotls_conn_free(c);
}
static const struct stack corotls_stack = {c_wrap, c_handshake, c_read, c_write, c_unwrap};

/* -------------------------------------------------------------- drivers */

struct pair {
    int sv[2];
    void *cli, *srv;
};

static void pair_open(const struct stack *st, struct pair *p, int ec)
{
    int big = 1 << 20;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->sv) != 0)
        die("socketpair");
    for (int i = 0; i < 2; i++) {
        setsockopt(p->sv[i], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
        setsockopt(p->sv[i], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    }
    p->cli = st->wrap(p->sv[0], 0, ec);
    p->srv = st->wrap(p->sv[1], 1, ec);
}

static void pair_handshake(const struct stack *st, struct pair *p)
{
    int dc = 0, ds = 0;
    for (int i = 0; i < 50 && !(dc && ds); i++) {
        if (!dc && (dc = st->handshake(p->cli)) < 0)
            die("client handshake");
        if (!ds && (ds = st->handshake(p->srv)) < 0)
            die("server handshake");
    }
    if (!(dc && ds))
        die("handshake did not finish");
}

static void pair_close(const struct stack *st, struct pair *p)
{
    st->unwrap(p->cli);
    st->unwrap(p->srv);
    close(p->sv[0]);
    close(p->sv[1]);
}

/* Write all of b on `w`, reading on `r` as it arrives, into `out`. */
static void transfer(const struct stack *st, void *w, void *r, const char *b, char *out, size_t n)
{
    size_t put = 0, got = 0;
    for (int spins = 0; got < n; spins++) {
        if (put < n) {
            long k = st->write(w, b + put, n - put);
            if (k < 0)
                die("write");
            put += (size_t)k;
        }
        long k = st->read(r, out + got, n - got);
        if (k < 0)
            die("read");
        got += (size_t)k;
        if (spins > 1000000)
            die("transfer stalled");
    }
}

static void echo(const struct stack *st, long n)
{
    struct pair p;
    char msg[64], buf[64], back[64];
    pair_open(st, &p, 1);
    pair_handshake(st, &p);
    for (long r = -20; r < n; r++) {
        if (r == 0)
            CALLGRIND_TOGGLE_COLLECT;
        memset(msg, 'a' + (int)((r + 20) % 26), sizeof msg);
        transfer(st, p.cli, p.srv, msg, buf, sizeof msg);
        transfer(st, p.srv, p.cli, buf, back, sizeof buf);
        if (r == n - 1)
            CALLGRIND_TOGGLE_COLLECT;
        if (memcmp(msg, back, sizeof msg))
            die("echo: bytes differ");
    }
    pair_close(st, &p);
}

static void bulk(const struct stack *st, long n)
{
    struct pair p;
    static char msg[16384], buf[16384];
    pair_open(st, &p, 1);
    pair_handshake(st, &p);
    for (long r = -5; r < n; r++) {
        if (r == 0)
            CALLGRIND_TOGGLE_COLLECT;
        msg[0] = (char)r;
        transfer(st, p.cli, p.srv, msg, buf, sizeof msg);
        if (r == n - 1)
            CALLGRIND_TOGGLE_COLLECT;
        if (memcmp(msg, buf, sizeof msg))
            die("bulk: bytes differ");
    }
    pair_close(st, &p);
}

static void handshakes(const struct stack *st, long n)
{
    for (long r = -1; r < n; r++) {
        struct pair p;
        char b = 'h', got = 0;
        if (r == 0)
            CALLGRIND_TOGGLE_COLLECT;
        pair_open(st, &p, 1);
        pair_handshake(st, &p);
        transfer(st, p.cli, p.srv, &b, &got, 1); /* the server's tickets go too */
        transfer(st, p.srv, p.cli, &got, &b, 1);
        pair_close(st, &p);
        if (r == n - 1)
            CALLGRIND_TOGGLE_COLLECT;
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: icount openssl|conn echo|bulk|handshake N [CERTDIR]\n");
        return 2;
    }
    if (argc > 4)
        dir = argv[4];
    long n = atol(argv[3]);
    const struct stack *st;
    if (!strcmp(argv[1], "openssl")) {
        o_init();
        st = &openssl_stack;
    } else if (!strcmp(argv[1], "conn")) {
        c_init();
        st = &corotls_stack;
    } else {
        fprintf(stderr, "icount: unknown stack %s\n", argv[1]);
        return 2;
    }
    if (!strcmp(argv[2], "echo"))
        echo(st, n);
    else if (!strcmp(argv[2], "bulk"))
        bulk(st, n);
    else if (!strcmp(argv[2], "handshake"))
        handshakes(st, n);
    else {
        fprintf(stderr, "icount: unknown work %s\n", argv[2]);
        return 2;
    }
    return 0;
}
