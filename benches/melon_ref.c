/*
 * melon_ref: a C reference of Melon's own TLS I/O algorithm over raw
 * OpenSSL, written from /work/shared/spec/melon.md §3-§4 (not Melon's
 * code): two memory BIOs between OpenSSL and the fd, flush-wbio through a
 * 16 KiB pending buffer from the connection's pool, drain-socket through a
 * 16 KiB stack buffer, SSL_read into 4 KiB pool chains.  It exports the
 * subset of the mln_tcp_conn_* API that benches/melon_echo.c uses, so the
 * same driver runs over our Melon face (libcorotls_melon) or over this, on
 * the same host fixture (c_tests/melon/melon_host): the instruction counts
 * compare the two algorithms, nothing else.
 *
 * Memory-only chains (the benchmark sends no files); no SNI or host checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mln_alloc.h"
#include "mln_chain.h"
#include "mln_connection.h"

#define M_TLS_CHUNK 16384

int mln_tcp_conn_init(mln_tcp_conn_t *tc, int sockfd)
{
    int fl;
    if ((tc->pool = mln_alloc_init(NULL, 0)) == NULL)
        return -1;
    tc->rcv_head = tc->rcv_tail = tc->snd_head = tc->snd_tail = tc->sent_head = tc->sent_tail = NULL;
    tc->sockfd = sockfd;
    fl = sockfd < 0 ? -1 : fcntl(sockfd, F_GETFL);
    tc->nonblock = fl >= 0 && (fl & O_NONBLOCK) ? 1 : 0;
    tc->ssl = NULL;
    tc->tls_conf = NULL;
    tc->tls_pending = NULL;
    tc->tls_pending_off = tc->tls_pending_len = 0;
    tc->tls_done = tc->tls_want_r = tc->tls_want_w = tc->tls_shut = 0;
    return 0;
}

void mln_tcp_conn_destroy(mln_tcp_conn_t *tc)
{
    if (tc == NULL)
        return;
    if (tc->ssl != NULL) {
        SSL_free(tc->ssl);
        tc->ssl = NULL;
    }
    mln_chain_pool_release_all(tc->snd_head);
    mln_chain_pool_release_all(tc->rcv_head);
    mln_chain_pool_release_all(tc->sent_head);
    mln_alloc_destroy(tc->pool);
}

static mln_chain_t **head_of(mln_tcp_conn_t *tc, int type, mln_chain_t ***tail)
{
    switch (type) {
    case M_C_SEND: *tail = &tc->snd_tail; return &tc->snd_head;
    case M_C_RECV: *tail = &tc->rcv_tail; return &tc->rcv_head;
    default: *tail = &tc->sent_tail; return &tc->sent_head;
    }
}

void mln_tcp_conn_append(mln_tcp_conn_t *tc, mln_chain_t *c, int type)
{
    mln_chain_t **tail, **head = head_of(tc, type, &tail);
    if (*head == NULL)
        *head = *tail = c;
    else {
        (*tail)->next = c;
        *tail = c;
    }
}

mln_chain_t *mln_tcp_conn_remove(mln_tcp_conn_t *tc, int type)
{
    mln_chain_t **tail, **head = head_of(tc, type, &tail), *c = *head;
    *head = *tail = NULL;
    return c;
}

/* Move the SEND head node to SENT. */
static void head_to_sent(mln_tcp_conn_t *tc)
{
    mln_chain_t *c = tc->snd_head;
    if (c == tc->snd_tail)
        tc->snd_head = tc->snd_tail = NULL;
    else
        tc->snd_head = c->next;
    c->next = NULL;
    mln_tcp_conn_append(tc, c, M_C_SENT);
}

mln_tcp_tls_conf_t *mln_tcp_tls_conf_new(mln_u32_t role, mln_string_t *cert, mln_string_t *key, mln_string_t *ca,
                                         mln_string_t *ciphers, mln_u32_t versions, mln_u32_t verify)
{
    (void)ciphers;
    (void)versions;
    mln_tcp_tls_conf_t *conf = calloc(1, sizeof *conf);
    if (conf == NULL)
        return NULL;
    conf->ctx = SSL_CTX_new(role == M_TLS_SERVER ? TLS_server_method() : TLS_client_method());
    conf->role = role;
    conf->verify = verify;
    SSL_CTX_set_min_proto_version(conf->ctx, TLS1_2_VERSION);
    if (cert && (SSL_CTX_use_certificate_chain_file(conf->ctx, (char *)cert->data) != 1 ||
                 SSL_CTX_use_PrivateKey_file(conf->ctx, (char *)key->data, SSL_FILETYPE_PEM) != 1))
        goto fail;
    if (ca && SSL_CTX_load_verify_locations(conf->ctx, (char *)ca->data, NULL) != 1)
        goto fail;
    if (verify)
        SSL_CTX_set_verify(conf->ctx, SSL_VERIFY_PEER, NULL);
    return conf;
fail:
    SSL_CTX_free(conf->ctx);
    free(conf);
    return NULL;
}

void mln_tcp_tls_conf_free(mln_tcp_tls_conf_t *conf)
{
    if (conf) {
        SSL_CTX_free(conf->ctx);
        free(conf);
    }
}

int mln_tcp_conn_tls_init(mln_tcp_conn_t *tc, int sockfd, mln_tcp_tls_conf_t *conf)
{
    BIO *r, *w;
    if (conf == NULL || mln_tcp_conn_init(tc, sockfd) != 0)
        return -1;
    tc->ssl = SSL_new(conf->ctx);
    r = BIO_new(BIO_s_mem());
    w = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(r, -1);
    BIO_set_mem_eof_return(w, -1);
    SSL_set_bio(tc->ssl, r, w);
    if (conf->role == M_TLS_SERVER)
        SSL_set_accept_state(tc->ssl);
    else
        SSL_set_connect_state(tc->ssl);
    tc->tls_conf = conf;
    return 0;
}

/* §4.2 flush-wbio */
static int flush_wbio(mln_tcp_conn_t *tc)
{
    BIO *wbio = SSL_get_wbio(tc->ssl);
    if (tc->tls_pending == NULL && (tc->tls_pending = mln_alloc_m(tc->pool, M_TLS_CHUNK)) == NULL) {
        errno = ENOMEM;
        return M_C_ERROR;
    }
    for (;;) {
        while (tc->tls_pending_len > 0) {
            ssize_t n = send(tc->sockfd, tc->tls_pending + tc->tls_pending_off, tc->tls_pending_len, 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN) {
                    tc->tls_want_w = 1;
                    return M_C_NOTYET;
                }
                return M_C_ERROR;
            }
            if (n == 0)
                return M_C_ERROR;
            tc->tls_pending_off += (size_t)n;
            tc->tls_pending_len -= (size_t)n;
        }
        int got = BIO_read(wbio, tc->tls_pending, M_TLS_CHUNK);
        if (got <= 0) {
            tc->tls_pending_off = tc->tls_pending_len = 0;
            return M_C_FINISH;
        }
        tc->tls_pending_off = 0;
        tc->tls_pending_len = (size_t)got;
    }
}

/* §4.2 drain-socket */
static int drain_socket(mln_tcp_conn_t *tc)
{
    unsigned char buf[M_TLS_CHUNK];
    BIO *rbio = SSL_get_rbio(tc->ssl);
    int got_any = 0;
    for (;;) {
        ssize_t n = recv(tc->sockfd, buf, sizeof buf, 0);
        if (n > 0) {
            if (BIO_write(rbio, buf, (int)n) != n) {
                errno = ENOMEM;
                return M_C_ERROR;
            }
            got_any = 1;
            if (!tc->nonblock)
                return M_C_FINISH;
            continue;
        }
        if (n == 0)
            return got_any ? M_C_FINISH : M_C_CLOSED;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return M_C_FINISH;
        return M_C_ERROR;
    }
}

static void clear_flags(mln_tcp_conn_t *tc)
{
    tc->tls_want_r = tc->tls_want_w = 0;
}

/* §4.3 */
int mln_tcp_conn_tls_handshake(mln_tcp_conn_t *tc)
{
    if (tc->ssl == NULL) {
        errno = EINVAL;
        return M_C_ERROR;
    }
    clear_flags(tc);
    if (tc->tls_done)
        return M_C_FINISH;
    for (;;) {
        clear_flags(tc);
        int r = SSL_do_handshake(tc->ssl), f = flush_wbio(tc);
        if (f != M_C_FINISH)
            return f;
        if (r == 1) {
            tc->tls_done = 1;
            return M_C_FINISH;
        }
        switch (SSL_get_error(tc->ssl, r)) {
        case SSL_ERROR_WANT_READ: {
            size_t pre = BIO_ctrl_pending(SSL_get_rbio(tc->ssl)), post;
            int d = drain_socket(tc);
            if (d == M_C_ERROR || d == M_C_CLOSED)
                return d;
            post = BIO_ctrl_pending(SSL_get_rbio(tc->ssl));
            if (tc->nonblock && post <= pre) {
                tc->tls_want_r = 1;
                return M_C_NOTYET;
            }
            break;
        }
        case SSL_ERROR_WANT_WRITE:
            tc->tls_want_w = 1;
            return M_C_NOTYET;
        default:
            return M_C_ERROR;
        }
    }
}

/* §4.4 (memory bufs only) */
int mln_tcp_conn_send(mln_tcp_conn_t *tc)
{
    int done = 0, r;
    clear_flags(tc);
    if (!tc->tls_done && (r = mln_tcp_conn_tls_handshake(tc)) != M_C_FINISH)
        return r;
    if ((r = flush_wbio(tc)) != M_C_FINISH)
        return r;
    while (tc->snd_head != NULL) {
        mln_buf_t *b = tc->snd_head->buf;
        if (b == NULL) {
            head_to_sent(tc);
            continue;
        }
        size_t left = (size_t)mln_buf_left_size(b);
        if (left == 0) {
            int last = b->last_in_chain;
            head_to_sent(tc);
            if (last) {
                done = 1;
                break;
            }
            continue;
        }
        if (!b->in_memory) {
            errno = EINVAL;
            return M_C_ERROR;
        }
        size_t chunk = left < M_TLS_CHUNK ? left : M_TLS_CHUNK;
        int wr = M_C_FINISH;
        while (chunk > 0) {
            int n = SSL_write(tc->ssl, b->left_pos, (int)chunk);
            if (n > 0) {
                b->left_pos += n;
                chunk -= (size_t)n;
                continue;
            }
            switch (SSL_get_error(tc->ssl, n)) {
            case SSL_ERROR_WANT_READ: tc->tls_want_r = 1; wr = M_C_NOTYET; break;
            case SSL_ERROR_WANT_WRITE: tc->tls_want_w = 1; wr = M_C_NOTYET; break;
            case SSL_ERROR_ZERO_RETURN: wr = M_C_CLOSED; break;
            default: wr = M_C_ERROR; break;
            }
            break;
        }
        if ((r = flush_wbio(tc)) != M_C_FINISH)
            return r;
        if (wr != M_C_FINISH)
            return wr;
        if (mln_buf_left_size(b) == 0) {
            int last = b->last_in_chain;
            head_to_sent(tc);
            if (last) {
                done = 1;
                break;
            }
        }
    }
    return done ? M_C_FINISH : M_C_NOTYET;
}

/* §4.5 */
int mln_tcp_conn_recv(mln_tcp_conn_t *tc, mln_u32_t flag)
{
    int r, dr;
    if (flag != M_C_TYPE_MEMORY) {
        errno = EINVAL;
        return M_C_ERROR;
    }
    clear_flags(tc);
    if (!tc->tls_done && (r = mln_tcp_conn_tls_handshake(tc)) != M_C_FINISH)
        return r;
    if ((dr = drain_socket(tc)) == M_C_ERROR)
        return dr;
    for (;;) {
        clear_flags(tc);
        unsigned char *buf = mln_alloc_m(tc->pool, 4096);
        if (buf == NULL) {
            errno = ENOMEM;
            return M_C_ERROR;
        }
        int p = SSL_read(tc->ssl, buf, 4096);
        if (p > 0) {
            mln_chain_t *c = mln_chain_new_with_buf(tc->pool);
            if (c == NULL) {
                mln_alloc_free(buf);
                errno = ENOMEM;
                return M_C_ERROR;
            }
            mln_buf_t *b = c->buf;
            b->start = b->pos = b->left_pos = buf;
            b->last = b->end = buf + p;
            b->in_memory = 1;
            b->last_buf = 1;
            mln_tcp_conn_append(tc, c, M_C_RECV);
            continue;
        }
        mln_alloc_free(buf);
        switch (SSL_get_error(tc->ssl, p)) {
        case SSL_ERROR_WANT_READ:
            tc->tls_want_r = 1;
            return dr == M_C_CLOSED ? M_C_CLOSED : M_C_NOTYET;
        case SSL_ERROR_WANT_WRITE:
            if ((r = flush_wbio(tc)) != M_C_FINISH)
                return r;
            tc->tls_want_r = 1;
            return M_C_NOTYET;
        case SSL_ERROR_ZERO_RETURN:
            return M_C_CLOSED;
        default:
            return M_C_ERROR;
        }
    }
}
