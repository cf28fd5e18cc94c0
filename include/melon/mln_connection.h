/*
 * corotls: replacement for Melon's mln_connection.h (the TCP connection
 * module), ABI-compatible with Melon's TLS revision of that header.
 * Written for corotls from spec/melon.md (§2, §3, §5.1); no Melon code.
 *
 * Install it IN PLACE OF Melon's mln_connection.h (other Melon headers include
 * it with quotes, so an earlier -I directory does not shadow it). Without
 * MLN_TLS it declares exactly the stock 64-byte ABI; with MLN_TLS the struct
 * grows to 112 bytes and the TLS API appears. Never mix the two layouts across
 * one call (spec §7).
 *
 * Ownership:
 *   - mln_tcp_conn_t: the CALLER owns the storage (stack, heap or embedded).
 *     init creates `pool`; destroy frees the queues, the pool (and the pending
 *     ciphertext buffer in it) and the SSL, but never the struct, the fd or
 *     the conf. Destroy does no socket I/O.
 *   - Everything on the SEND/RECV/SENT queues, and the queues' chains and
 *     bufs, come from (and are released to) `pool` via mln_alloc_*.
 *   - mln_tcp_tls_conf_t: calloc'd by mln_tcp_tls_conf_new, freed (with its
 *     four deep-copied strings and a reference to its SSL_CTX) by
 *     mln_tcp_tls_conf_free. A connection does NOT own `tls_conf` and never
 *     reads it after tls_init: the conf may be freed while connections built
 *     from it are alive (each SSL holds its own SSL_CTX reference).
 *   - `ssl` may be attached by the caller (with tls_conf NULL); once set,
 *     destroy frees it.
 *
 * Bitfields (nonblock, tls_*) may live in uninitialised caller memory: read
 * them individually, write them one at a time, never compare whole words.
 */
#ifndef __MLN_CONNECTION_H /* Melon's own guard: the two must never both apply */
#define __MLN_CONNECTION_H

#include <sys/socket.h>
#include <sys/types.h>
#include "mln_types.h"
#include "mln_alloc.h"
#include "mln_string.h"
#include "mln_chain.h"
#if defined(MLN_TLS)
#include <openssl/ssl.h>
#endif

/* Queue selectors (`type` arguments). */
#define M_C_SEND 1
#define M_C_RECV 2
#define M_C_SENT 3

/* Results of send / recv / handshake / shutdown. */
#define M_C_FINISH 1
#define M_C_NOTYET 2
#define M_C_ERROR  3
#define M_C_CLOSED 4

/* mln_tcp_conn_recv flags (TLS connections accept M_C_TYPE_MEMORY only). */
#define M_C_TYPE_MEMORY 0x1
#define M_C_TYPE_FILE   0x2
#define M_C_TYPE_FOLLOW 0x8

#if defined(MLN_TLS)
/* TLS role. */
#define M_TLS_SERVER 0
#define M_TLS_CLIENT 1

/* Protocol version mask; 0 means M_TLS_VDEFAULT. */
#define M_TLS_V1_2     0x4
#define M_TLS_V1_3     0x8
#define M_TLS_VDEFAULT (M_TLS_V1_2 | M_TLS_V1_3)

/* 48 bytes. */
typedef struct mln_tcp_tls_conf_s {
    SSL_CTX      *ctx;         /*  0 */
    mln_string_t *cert_file;   /*  8: deep copies, or NULL */
    mln_string_t *key_file;    /* 16 */
    mln_string_t *ca_file;     /* 24 */
    mln_string_t *ciphers;     /* 32 */
    mln_u32_t     versions;    /* 40: whole word, normalised mask */
    mln_u32_t     role:1;      /* 44 bit 0: M_TLS_SERVER / M_TLS_CLIENT */
    mln_u32_t     verify:1;    /*    bit 1 */
} mln_tcp_tls_conf_t;
#endif

/* 64 bytes; 112 with MLN_TLS. */
typedef struct {
    mln_alloc_t *pool;       /*  0: created by init */
    mln_chain_t *rcv_head;   /*  8 */
    mln_chain_t *rcv_tail;   /* 16 */
    mln_chain_t *snd_head;   /* 24 */
    mln_chain_t *snd_tail;   /* 32 */
    mln_chain_t *sent_head;  /* 40 */
    mln_chain_t *sent_tail;  /* 48 */
    int          sockfd;     /* 56 */
    mln_u32_t    nonblock:1; /* 60 bit 0: mirrors O_NONBLOCK */
#if defined(MLN_TLS)
    SSL                *ssl;             /*  64: NULL on a plain connection */
    mln_tcp_tls_conf_t *tls_conf;        /*  72: not owned; may dangle */
    mln_u8ptr_t         tls_pending;     /*  80: ciphertext the socket has not
                                                  taken yet; from `pool` */
    mln_size_t          tls_pending_off; /*  88 */
    mln_size_t          tls_pending_len; /*  96 */
    mln_u32_t           tls_done:1;      /* 104 bit 0: handshake finished */
    mln_u32_t           tls_want_r:1;    /*     bit 1: NOTYET, wait readable */
    mln_u32_t           tls_want_w:1;    /*     bit 2: NOTYET, wait writable */
    mln_u32_t           tls_shut:1;      /*     bit 3: close_notify sent */
#endif
} mln_tcp_conn_t;

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L && defined(__LP64__)
#include <stddef.h>
#if defined(MLN_TLS)
_Static_assert(sizeof(mln_tcp_conn_t) == 112, "Melon ABI: mln_tcp_conn_t is 112 bytes with MLN_TLS");
_Static_assert(offsetof(mln_tcp_conn_t, tls_pending_len) == 96, "Melon ABI: mln_tcp_conn_t TLS fields");
_Static_assert(sizeof(mln_tcp_tls_conf_t) == 48, "Melon ABI: mln_tcp_tls_conf_t is 48 bytes");
_Static_assert(offsetof(mln_tcp_tls_conf_t, versions) == 40, "Melon ABI: mln_tcp_tls_conf_t.versions");
#else
_Static_assert(sizeof(mln_tcp_conn_t) == 64, "Melon ABI: mln_tcp_conn_t is 64 bytes without MLN_TLS");
#endif
_Static_assert(offsetof(mln_tcp_conn_t, sockfd) == 56, "Melon ABI: mln_tcp_conn_t.sockfd");
#endif

/* Field access only: callers read these fields directly. */
#define mln_tcp_conn_send_empty(pconn) ((pconn)->snd_head == NULL)
#define mln_tcp_conn_recv_empty(pconn) ((pconn)->rcv_head == NULL)
#define mln_tcp_conn_sent_empty(pconn) ((pconn)->sent_head == NULL)
#define mln_tcp_conn_fd_get(pconn)     ((pconn)->sockfd)
#define mln_tcp_conn_pool_get(pconn)   ((pconn)->pool)

/* Lifecycle. init: 0, or -1 when the pool cannot be created. */
extern int mln_tcp_conn_init(mln_tcp_conn_t *tc, int sockfd) __NONNULL1(1);
extern void mln_tcp_conn_destroy(mln_tcp_conn_t *tc); /* NULL-safe */
/* Sets sockfd and re-reads nonblock from the fd; touches nothing else. */
extern void mln_tcp_conn_fd_set(mln_tcp_conn_t *tc, int fd) __NONNULL1(1);
/* Really sets O_NONBLOCK (fd >= 0), then the bit. 0, or -1 if fcntl fails. */
extern int mln_tcp_conn_set_nonblock(mln_tcp_conn_t *tc, int nb) __NONNULL1(1);

/* Queues (no I/O); `type` is M_C_SEND, M_C_RECV or M_C_SENT. */
extern void mln_tcp_conn_append_chain(mln_tcp_conn_t *tc,
                                      mln_chain_t *c_head,
                                      mln_chain_t *c_tail, /* NULL: walk to it */
                                      int type) __NONNULL1(1);
extern void mln_tcp_conn_append(mln_tcp_conn_t *tc, mln_chain_t *c, int type) __NONNULL2(1, 2);
extern mln_chain_t *mln_tcp_conn_head(mln_tcp_conn_t *tc, int type) __NONNULL1(1);
extern mln_chain_t *mln_tcp_conn_remove(mln_tcp_conn_t *tc, int type) __NONNULL1(1);
extern mln_chain_t *mln_tcp_conn_pop(mln_tcp_conn_t *tc, int type) __NONNULL1(1);
extern mln_chain_t *mln_tcp_conn_tail(mln_tcp_conn_t *tc, int type) __NONNULL1(1);
extern void mln_tcp_conn_move_sent(mln_tcp_conn_t *tc) __NONNULL1(1);

/* I/O: M_C_FINISH / M_C_NOTYET / M_C_ERROR / M_C_CLOSED. */
extern int mln_tcp_conn_send(mln_tcp_conn_t *tc) __NONNULL1(1);
extern int mln_tcp_conn_recv(mln_tcp_conn_t *tc, mln_u32_t flag) __NONNULL1(1);
extern int mln_tcp_conn_send_chain(mln_tcp_conn_t *tc, mln_chain_t *chain) __NONNULL2(1, 2);

#if defined(MLN_TLS)
/*
 * A TLS connection is an mln_tcp_conn_t set up by mln_tcp_conn_tls_init
 * instead of mln_tcp_conn_init; mln_tcp_conn_send/recv then encrypt and
 * decrypt. After M_C_NOTYET, tls_want_r / tls_want_w say what to wait for.
 * A successful TLS recv returns M_C_NOTYET with data on the RECV queue: check
 * the queue, not only the result.
 */

/*
 * A conf (calloc'd; free it with mln_tcp_tls_conf_free). The strings may be
 * NULL and are deep-copied. A server needs a non-empty cert and key. `ca`
 * is the only trust source (no system store). versions: M_TLS_V* mask, 0 for
 * the default. NULL on failure (EINVAL for a bad role, version mask or
 * missing server identity).
 */
extern mln_tcp_tls_conf_t *mln_tcp_tls_conf_new(mln_u32_t role,
                                                mln_string_t *cert_file,
                                                mln_string_t *key_file,
                                                mln_string_t *ca_file,
                                                mln_string_t *ciphers,
                                                mln_u32_t versions,
                                                mln_u32_t verify);
extern void mln_tcp_tls_conf_free(mln_tcp_tls_conf_t *conf); /* NULL-safe */

/*
 * Plain init plus an SSL over two memory BIOs, in the conf's role. The conf
 * is not consumed and is not read again after this call. -1 with EINVAL and
 * `tc` untouched for a NULL conf / ctx; -1 with `pool` NULL on later failure.
 */
extern int mln_tcp_conn_tls_init(mln_tcp_conn_t *tc, int sockfd, mln_tcp_tls_conf_t *conf)
    __NONNULL1(1);

/* Optional: the first send or recv drives the handshake too. */
extern int mln_tcp_conn_tls_handshake(mln_tcp_conn_t *tc) __NONNULL1(1);
/* Sends close_notify (M_C_FINISH at once on a plain connection). */
extern int mln_tcp_conn_tls_shutdown(mln_tcp_conn_t *tc) __NONNULL1(1);

/* Client side, before the handshake. 0, or -1 (EINVAL: not TLS, name >= 256
 * bytes or with an embedded NUL). */
extern int mln_tcp_conn_tls_set_sni(mln_tcp_conn_t *tc, mln_string_t *hostname)
    __NONNULL2(1, 2);
extern int mln_tcp_conn_tls_set_verify_host(mln_tcp_conn_t *tc, mln_string_t *hostname)
    __NONNULL2(1, 2);

/* Legacy no-ops kept for link compatibility with older TLS revisions. */
extern int mln_tcp_tls_global_init(void);   /* returns 0 */
extern void mln_tcp_tls_global_destroy(void);

#define mln_tcp_conn_tls_enabled(pconn)    ((pconn)->ssl != NULL)
#define mln_tcp_conn_tls_done(pconn)       ((pconn)->tls_done)
#define mln_tcp_conn_tls_want_read(pconn)  ((pconn)->tls_want_r)
#define mln_tcp_conn_tls_want_write(pconn) ((pconn)->tls_want_w)
#endif /* MLN_TLS */

#endif /* __MLN_CONNECTION_H */
