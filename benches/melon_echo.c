/*
 * melon_echo: the work of Melon's TLS connections (mln_tcp_conn_send of a
 * memory chain, mln_tcp_conn_recv into pool chains), both ends in one
 * thread over a socketpair, for instruction counts under callgrind
 * (benches/run.sh; collection only around the measured part).  Linked
 * against our Melon face (libcorotls_melon) or against benches/melon_ref.c
 * (Melon's own algorithm over raw OpenSSL), on the same host fixture.
 *
 *   melon_echo echo|bulk|handshake N [CERTDIR]
 */
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

#include "mln_alloc.h"
#include "mln_chain.h"
#include "mln_connection.h"

static mln_tcp_tls_conf_t *srv_conf, *cli_conf;

static void die(const char *what)
{
    fprintf(stderr, "melon_echo: %s\n", what);
    exit(1);
}

static mln_string_t str(char *s)
{
    mln_string_t m = {(mln_u8ptr_t)s, strlen(s), 1, 0, 1};
    return m;
}

static void confs(const char *dir)
{
    static char crt[512], key[512], ca[512];
    snprintf(crt, sizeof crt, "%s/ec.crt", dir);
    snprintf(key, sizeof key, "%s/ec.key", dir);
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    mln_string_t c = str(crt), k = str(key), a = str(ca);
    srv_conf = mln_tcp_tls_conf_new(M_TLS_SERVER, &c, &k, NULL, NULL, 0, 0);
    cli_conf = mln_tcp_tls_conf_new(M_TLS_CLIENT, NULL, NULL, &a, NULL, 0, 1);
    if (srv_conf == NULL || cli_conf == NULL)
        die("conf");
}

struct pair {
    int sv[2];
    mln_tcp_conn_t cli, srv;
};

static void open_pair(struct pair *p)
{
    int big = 1 << 20;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->sv) != 0)
        die("socketpair");
    for (int i = 0; i < 2; i++) {
        setsockopt(p->sv[i], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
        setsockopt(p->sv[i], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    }
    if (mln_tcp_conn_tls_init(&p->cli, p->sv[0], cli_conf) != 0 ||
        mln_tcp_conn_tls_init(&p->srv, p->sv[1], srv_conf) != 0)
        die("tls_init");
    int dc = 0, ds = 0;
    for (int i = 0; i < 50 && !(dc && ds); i++) {
        int r;
        if (!dc && (r = mln_tcp_conn_tls_handshake(&p->cli)) != M_C_NOTYET)
            dc = r == M_C_FINISH ? 1 : (die("client handshake"), 0);
        if (!ds && (r = mln_tcp_conn_tls_handshake(&p->srv)) != M_C_NOTYET)
            ds = r == M_C_FINISH ? 1 : (die("server handshake"), 0);
    }
    if (!(dc && ds))
        die("handshake did not finish");
}

static void close_pair(struct pair *p)
{
    mln_tcp_conn_destroy(&p->cli);
    mln_tcp_conn_destroy(&p->srv);
    close(p->sv[0]);
    close(p->sv[1]);
}

/* Queue `n` bytes of `data` (a pool copy) on `w`, send, and receive them on
 * `r` into `out`: what a Melang script's send and recv do. */
static void transfer(mln_tcp_conn_t *w, mln_tcp_conn_t *r, const void *data, unsigned char *out, size_t n)
{
    mln_chain_t *c = mln_chain_new_with_buf(w->pool);
    unsigned char *m = mln_alloc_m(w->pool, n);
    if (c == NULL || m == NULL)
        die("alloc");
    memcpy(m, data, n);
    mln_buf_t *b = c->buf;
    b->start = b->pos = b->left_pos = m;
    b->last = b->end = m + n;
    b->in_memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;
    mln_tcp_conn_append(w, c, M_C_SEND);
    size_t got = 0;
    int sent = 0;
    for (int spins = 0; got < n; spins++) {
        if (!sent) {
            int s = mln_tcp_conn_send(w);
            if (s == M_C_FINISH)
                sent = 1;
            else if (s != M_C_NOTYET)
                die("send");
        }
        int rc = mln_tcp_conn_recv(r, M_C_TYPE_MEMORY);
        if (rc == M_C_ERROR || rc == M_C_CLOSED)
            die("recv");
        mln_chain_t *in = mln_tcp_conn_remove(r, M_C_RECV);
        for (mln_chain_t *x = in; x != NULL; x = x->next) {
            size_t k = (size_t)mln_buf_size(x->buf);
            if (got + k > n)
                die("too much data");
            memcpy(out + got, x->buf->pos, k);
            got += k;
        }
        mln_chain_pool_release_all(in);
        if (spins > 1000000)
            die("transfer stalled");
    }
    while (!sent) {
        int s = mln_tcp_conn_send(w);
        if (s == M_C_FINISH)
            sent = 1;
        else if (s != M_C_NOTYET)
            die("send");
    }
    mln_chain_pool_release_all(mln_tcp_conn_remove(w, M_C_SENT));
}

int main(int argc, char **argv)
{
    if (argc < 3)
        die("usage: melon_echo echo|bulk|handshake N [CERTDIR]");
    long n = atol(argv[2]);
    confs(argc > 3 ? argv[3] : "target/certs");
    struct pair p;
    if (!strcmp(argv[1], "echo")) {
        unsigned char msg[64], buf[64], back[64];
        open_pair(&p);
        for (long r = -20; r < n; r++) {
            if (r == 0)
                CALLGRIND_TOGGLE_COLLECT;
            memset(msg, 'a' + (int)((r + 20) % 26), sizeof msg);
            transfer(&p.cli, &p.srv, msg, buf, sizeof msg);
            transfer(&p.srv, &p.cli, buf, back, sizeof buf);
            if (r == n - 1)
                CALLGRIND_TOGGLE_COLLECT;
            if (memcmp(msg, back, sizeof msg))
                die("echo: bytes differ");
        }
        close_pair(&p);
    } else if (!strcmp(argv[1], "bulk")) {
        static unsigned char msg[16384], buf[16384];
        open_pair(&p);
        for (long r = -5; r < n; r++) {
            if (r == 0)
                CALLGRIND_TOGGLE_COLLECT;
            msg[0] = (unsigned char)r;
            transfer(&p.cli, &p.srv, msg, buf, sizeof msg);
            if (r == n - 1)
                CALLGRIND_TOGGLE_COLLECT;
            if (memcmp(msg, buf, sizeof msg))
                die("bulk: bytes differ");
        }
        close_pair(&p);
    } else if (!strcmp(argv[1], "handshake")) {
        for (long r = -1; r < n; r++) {
            unsigned char b = 'h', got;
            if (r == 0)
                CALLGRIND_TOGGLE_COLLECT;
            open_pair(&p);
            transfer(&p.cli, &p.srv, &b, &got, 1);
            transfer(&p.srv, &p.cli, &got, &b, 1);
            close_pair(&p);
            if (r == n - 1)
                CALLGRIND_TOGGLE_COLLECT;
        }
    } else
        die("unknown work");
    mln_tcp_tls_conf_free(srv_conf);
    mln_tcp_tls_conf_free(cli_conf);
    return 0;
}
