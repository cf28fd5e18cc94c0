/*
 * melon_fuzz.c -- the Melon face (mln_tcp_conn_* over the host fixture
 * c_tests/melon/melon_host) as the fuzz target `melon` drives it: a TLS
 * connection on one end of a non-blocking socketpair, its handshake, recv
 * and send, as Melang's tls module calls them.  Built by fuzz/build.rs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mln_connection.h"
#include "melon_host.h"

static mln_tcp_tls_conf_t *confs[2]; /* [0] server, [1] client */

static mln_string_t *str(const char *s)
{
    mln_string_t tmp;
    tmp.data = (mln_u8ptr_t)s;
    tmp.len = strlen(s);
    return mln_string_dup(&tmp);
}

/* The server conf (cert + key) and the client conf (verifying against ca).
 * 0, or -1 if either cannot be made. */
int melon_fuzz_init(const char *cert, const char *key, const char *ca)
{
    mln_string_t *c = str(cert), *k = str(key), *a = str(ca);
    confs[0] = mln_tcp_tls_conf_new(M_TLS_SERVER, c, k, NULL, NULL, M_TLS_VDEFAULT, 0);
    confs[1] = mln_tcp_tls_conf_new(M_TLS_CLIENT, NULL, NULL, a, NULL, M_TLS_VDEFAULT, 1);
    mln_string_free(c);
    mln_string_free(k);
    mln_string_free(a);
    return confs[0] != NULL && confs[1] != NULL ? 0 : -1;
}

/* A TLS connection in `role` (0 server, 1 client) on the non-blocking fd. */
mln_tcp_conn_t *melon_fuzz_open(int role, int fd)
{
    mln_tcp_conn_t *tc = calloc(1, sizeof(*tc));
    if (tc == NULL)
        return NULL;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (mln_tcp_conn_tls_init(tc, fd, confs[role != 0]) != 0) {
        free(tc);
        return NULL;
    }
    if (role != 0) {
        mln_string_t *h = str("localhost");
        mln_tcp_conn_tls_set_sni(tc, h);
        mln_tcp_conn_tls_set_verify_host(tc, h);
        mln_string_free(h);
    }
    return tc;
}

int melon_fuzz_handshake(mln_tcp_conn_t *tc)
{
    return mln_tcp_conn_tls_handshake(tc);
}

/* One recv into the RECV queue; the queue's bytes (at most cap) are copied
 * to dst and the queue released.  The recv's return value. */
int melon_fuzz_recv(mln_tcp_conn_t *tc, uint8_t *dst, size_t cap, size_t *got)
{
    int rc = mln_tcp_conn_recv(tc, M_C_TYPE_MEMORY);
    mln_chain_t *h = mln_tcp_conn_remove(tc, M_C_RECV), *it;
    size_t n = 0;
    for (it = h; it != NULL; it = it->next) {
        mln_buf_t *b = it->buf;
        if (b == NULL || !b->in_memory)
            continue;
        size_t l = (size_t)mln_buf_left_size(b);
        if (l > cap - n)
            l = cap - n;
        memcpy(dst + n, b->left_pos, l);
        n += l;
    }
    mln_chain_pool_release_all(h);
    *got = n;
    return rc;
}

/* Queue `len` bytes (one in-memory buffer) and send; sent chains are
 * released.  The send's return value. */
int melon_fuzz_send(mln_tcp_conn_t *tc, const uint8_t *data, size_t len)
{
    if (len > 0) {
        mln_alloc_t *pool = mln_tcp_conn_pool_get(tc);
        mln_chain_t *c = mln_chain_new(pool);
        mln_buf_t *b = mln_buf_new(pool);
        mln_u8ptr_t p = mln_alloc_m(pool, len);
        if (c == NULL || b == NULL || p == NULL)
            abort();
        memcpy(p, data, len);
        b->left_pos = b->pos = b->start = p;
        b->last = b->end = p + len;
        b->in_memory = 1;
        b->last_buf = 1;
        c->buf = b;
        mln_tcp_conn_append(tc, c, M_C_SEND);
    }
    int rc = mln_tcp_conn_send(tc);
    mln_chain_pool_release_all(mln_tcp_conn_remove(tc, M_C_SENT));
    return rc;
}

int melon_fuzz_shutdown(mln_tcp_conn_t *tc)
{
    return mln_tcp_conn_tls_shutdown(tc);
}

/* Destroy the connection (its fd stays open: the caller's). */
void melon_fuzz_close(mln_tcp_conn_t *tc)
{
    mln_tcp_conn_destroy(tc);
    free(tc);
}

/* Pools and blocks of the host fixture still live. */
size_t melon_fuzz_live_pools(void)
{
    return melon_host_live_pools();
}
