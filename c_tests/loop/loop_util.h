/*
 * loop_util.h -- helpers shared by the corotls_loop C tests: a recording
 * callback, blocking-style drivers that dispatch until an operation
 * completes, loopback pairs, and test scaling.
 */
#ifndef COROTLS_C_TESTS_LOOP_UTIL_H
#define COROTLS_C_TESTS_LOOP_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "corotls.h"
#include "harness.h"
#include "tls_util.h"

/* One completion, recorded by lu_cb (user_data = struct lu_done *). */
struct lu_done {
    int calls;            /* callbacks received: must end at exactly 1 */
    int fd;
    corotls_result r;
    uint8_t *data;        /* malloc'd copy of the callback's data (or NULL) */
    size_t len;           /* the callback's len (data size, or send count) */
    char msg[256];        /* corotls_last_error() during the callback */
    pthread_t thread;     /* thread the callback ran on */
};

void lu_cb(void *user_data, int32_t fd, corotls_result r, const uint8_t *data, size_t len);
/* Free the recorded data and zero the record. */
void lu_reset(struct lu_done *d);

/* Dispatch in 10 ms steps until d->calls > 0; 1 if it came, 0 after
 * timeout_ms. */
int lu_wait(corotls_loop *l, struct lu_done *d, int timeout_ms);
/* Dispatch for about ms milliseconds. */
void lu_spin(corotls_loop *l, int ms);

/* Confs of the test certificates, made by lu_main: a server with leaf.crt,
 * a client that does not verify, a client that verifies against ca.crt. */
extern corotls_conf *lu_sconf, *lu_cconf, *lu_vconf;
/* main() of a loop test: make the confs, run every TEST, free them. */
int lu_main(void);

/* The result of a recv on fd: inline, or waited for (up to timeout_ms). */
corotls_result lu_recv_result(corotls_loop *l, int fd, int timeout_ms);

/* full normally; quick when COROTLS_TEST_QUICK is set (valgrind run). */
int lu_scale(int full, int quick);
int lu_quick(void);
/* Raise RLIMIT_NOFILE's soft limit to at least want (up to the hard one). */
void lu_raise_nofile(long want);

/* A listener on 127.0.0.1, any port, accepting with conf; -1 on failure. */
int lu_listen(corotls_loop *l, corotls_conf *conf, int *port);
/* Connect a client (conf cconf) to port and accept it on lfd; no
 * handshake.  0 with *cfd, *sfd set, -1 on failure. */
int lu_pair(corotls_loop *l, int lfd, int port, corotls_conf *cconf, int *cfd, int *sfd);
/* lu_pair plus both handshakes. */
int lu_pair_hs(corotls_loop *l, int lfd, int port, corotls_conf *cconf, int *cfd, int *sfd);

/* Blocking-style operations on a single-threaded loop: start, and if
 * PENDING dispatch until the callback.  *count (may be NULL): the send
 * count. */
corotls_result lu_handshake(corotls_loop *l, int fd, int timeout_ms);
corotls_result lu_send(corotls_loop *l, int fd, const void *p, size_t n, int timeout_ms, size_t *count);
/* recv until exactly n bytes are in buf (or the first other result). */
corotls_result lu_recv_n(corotls_loop *l, int fd, void *buf, size_t n, int timeout_ms);

/* Send n bytes from fd `from` and receive them on fd `to` (both on loop
 * l; drives both handshakes), into out (n bytes), checking them.  OK or the
 * first failure (ERR_ARG if the bytes differ). */
corotls_result lu_transfer(corotls_loop *l, int from, int to, const void *p, size_t n, void *out);

/* Set SO_SNDBUF and SO_RCVBUF of a socket. */
void lu_small_buffers(int fd, int bytes);


/* A plain 127.0.0.1 listener whose accept queue is full, so that a new
 * connect to *port hangs (its SYN is dropped).  The sockets that filled the
 * queue are stored in fill[0 .. *nfill) (close them, and the listener, when
 * done).  Returns the listener fd or -1. */
int lu_full_listener(int *port, int *fill, int *nfill, int max);

/* ------------------------------------------------------------ mailbox */

/* A thread's queue of completions: callbacks run on the dispatching thread
 * post there; the owning thread takes them (a coroutine being resumed). */
struct lu_msg {
    struct lu_msg *next;
    void *who;
    int fd;
    corotls_result r;
    uint8_t *data; /* copy, or NULL */
    size_t len;
};

struct lu_mailbox {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct lu_msg *head, *tail;
};

void lu_mb_init(struct lu_mailbox *m);
/* Frees any messages left. */
void lu_mb_destroy(struct lu_mailbox *m);
void lu_mb_post(struct lu_mailbox *m, void *who, int fd, corotls_result r, const uint8_t *data, size_t len);
/* The next message, waiting up to timeout_ms; NULL on timeout. */
struct lu_msg *lu_mb_take(struct lu_mailbox *m, int timeout_ms);
void lu_msg_free(struct lu_msg *x);

/* -------------------------------------------------------- echo server */

/* An echo server as callbacks on the dispatching thread: accepts on lfd
 * (with the listener's conf) and echoes every connection until it ends. */
struct lu_server {
    corotls_loop *l;
    int lfd;
    int accepted, closed, errors; /* errors: ends other than CLOSED/EOF */
};

/* Listen on 127.0.0.1 (any port, stored in *port) with conf, and start
 * accepting; 0 or -1. */
int lu_server_start(struct lu_server *s, corotls_loop *l, corotls_conf *conf, int *port);

/* -------------------------------------------------------- echo clients */

/* n echo clients of port: each connects (numeric), handshakes, waits until
 * all n are handshaken (so all are open at once), then does `rounds`
 * rounds of send + receive-the-echo (sizes 1..3000, every byte checked)
 * and closes.  With mb set, callbacks post to it and the owning thread
 * calls lu_clients_pump; else they advance the clients directly. */
struct lu_cconn;

struct lu_clients {
    corotls_loop *l;
    corotls_conf *conf;
    struct lu_mailbox *mb;
    int port, n, rounds, seed;
    int ready, done, failures; /* done is read with __atomic_load_n */
    char first_error[200];
    struct lu_cconn *conns;
};

void lu_clients_start(struct lu_clients *cs);
/* Process mailbox messages until every client is done (or no message for
 * timeout_ms).  Mailbox mode only. */
void lu_clients_pump(struct lu_clients *cs, int timeout_ms);
int lu_clients_done(struct lu_clients *cs);
void lu_clients_free(struct lu_clients *cs);

#endif
