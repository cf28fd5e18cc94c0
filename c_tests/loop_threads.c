/*
 * loop_threads.c -- one loop shared by threads: an accepted fd handed off to
 * another thread, and 4 worker threads x 250 client connections echoing
 * through one table while the main thread dispatches (and runs the echo
 * server in its callbacks).  Workers start operations from their own
 * threads; completions run on the dispatching thread and are posted to the
 * worker's mailbox, like a coroutine scheduler resuming a coroutine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop_util.h"

static corotls_conf *sconf, *cconf;

/* ------------------------------------------------------------ mailbox */

struct msg {
    struct msg *next;
    void *who;
    int fd;
    corotls_result r;
    uint8_t *data;
    size_t len;
};

struct mailbox {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct msg *head, *tail;
};

static void mb_init(struct mailbox *m)
{
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->head = m->tail = NULL;
}

static void mb_destroy(struct mailbox *m)
{
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
}

static void mb_post(struct mailbox *m, void *who, int fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct msg *x = calloc(1, sizeof *x);
    x->who = who;
    x->fd = fd;
    x->r = r;
    x->len = len;
    if (data) {
        x->data = malloc(len);
        memcpy(x->data, data, len);
    }
    pthread_mutex_lock(&m->mu);
    if (m->tail)
        m->tail->next = x;
    else
        m->head = x;
    m->tail = x;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* Next message, waiting up to timeout_ms; NULL on timeout. */
static struct msg *mb_take(struct mailbox *m, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&m->mu);
    while (!m->head)
        if (pthread_cond_timedwait(&m->cv, &m->mu, &ts) != 0)
            break;
    struct msg *x = m->head;
    if (x) {
        m->head = x->next;
        if (!m->head)
            m->tail = NULL;
    }
    pthread_mutex_unlock(&m->mu);
    return x;
}

static void msg_free(struct msg *x)
{
    if (x) {
        free(x->data);
        free(x);
    }
}

/* ------------------------------------------------------- echo server */

/* Runs on the dispatching thread, in callbacks (state machines). */
struct server {
    corotls_loop *l;
    int lfd, accepted, closed, errors;
};

struct sconn {
    struct server *s;
    int fd;
};

static void srv_run(struct sconn *c);

static void srv_done(struct sconn *c, corotls_result r)
{
    if (r != COROTLS_CLOSED && r != COROTLS_EOF)
        c->s->errors++;
    c->s->closed++;
    corotls_loop_close(c->s->l, c->fd);
    free(c);
}

/* Callback of a pending recv or send. */
static void srv_cb(void *ud, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct sconn *c = ud;
    (void)fd;
    if (r != COROTLS_OK) {
        srv_done(c, r);
        return;
    }
    if (data) { /* a recv completed: echo */
        r = corotls_loop_send(c->s->l, c->fd, data, len, 10000, srv_cb, c);
        if (r == COROTLS_PENDING)
            return;
        if (r != COROTLS_OK) {
            srv_done(c, r);
            return;
        }
    }
    srv_run(c);
}

/* recv -> send loop while operations complete inline. */
static void srv_run(struct sconn *c)
{
    for (;;) {
        const uint8_t *data;
        size_t len;
        corotls_result r = corotls_loop_recv(c->s->l, c->fd, -1, srv_cb, c, &data, &len);
        if (r == COROTLS_PENDING)
            return;
        if (r != COROTLS_OK) {
            srv_done(c, r);
            return;
        }
        r = corotls_loop_send(c->s->l, c->fd, data, len, 10000, srv_cb, c);
        if (r == COROTLS_PENDING)
            return;
        if (r != COROTLS_OK) {
            srv_done(c, r);
            return;
        }
    }
}

static void srv_accept(struct server *s);

static void srv_start(struct server *s, int fd)
{
    struct sconn *c = calloc(1, sizeof *c);
    c->s = s;
    c->fd = fd;
    s->accepted++;
    srv_run(c);
}

static void srv_accept_cb(void *ud, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct server *s = ud;
    (void)data;
    (void)len;
    if (r == COROTLS_OK) {
        srv_start(s, fd);
        srv_accept(s);
    } else if (r != COROTLS_ERR_CANCELLED) {
        s->errors++;
    }
}

static void srv_accept(struct server *s)
{
    int fd;
    corotls_result r;
    while ((r = corotls_loop_accept(s->l, s->lfd, NULL, -1, srv_accept_cb, s, &fd)) == COROTLS_OK)
        srv_start(s, fd);
    if (r != COROTLS_PENDING)
        s->errors++;
}

/* ------------------------------------------------------------ hand-off */

struct handoff {
    corotls_loop *l;
    struct mailbox mb;
    int ok;
    int callbacks, foreign; /* callbacks run, and those not on the dispatcher */
    pthread_t dispatcher;
};

static void handoff_cb(void *ud, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct handoff *h = ud;
    h->callbacks++;
    if (!pthread_equal(h->dispatcher, pthread_self()))
        h->foreign++;
    mb_post(&h->mb, NULL, fd, r, data, len);
}

/* The other thread: takes the fd from its mailbox, then uses it as if it
 * had created it. */
static void *handoff_worker(void *arg)
{
    struct handoff *h = arg;
    struct msg *m = mb_take(&h->mb, 10000);
    if (!m)
        return NULL;
    int fd = m->fd;
    msg_free(m);
    const uint8_t *data;
    size_t len;
    uint8_t buf[64];
    size_t got = 0;
    while (got < 13) {
        corotls_result r = corotls_loop_recv(h->l, fd, 10000, handoff_cb, h, &data, &len);
        if (r == COROTLS_PENDING) {
            m = mb_take(&h->mb, 10000);
            if (!m || m->r != COROTLS_OK) {
                msg_free(m);
                return NULL;
            }
            memcpy(buf + got, m->data, m->len);
            got += m->len;
            msg_free(m);
        } else if (r == COROTLS_OK) {
            memcpy(buf + got, data, len);
            got += len;
        } else {
            return NULL;
        }
    }
    char reply[64];
    int n = snprintf(reply, sizeof reply, "thread got %.13s", (char *)buf);
    corotls_result r = corotls_loop_send(h->l, fd, (const uint8_t *)reply, (size_t)n, 10000, handoff_cb, h);
    if (r == COROTLS_PENDING) {
        m = mb_take(&h->mb, 10000);
        r = m ? m->r : COROTLS_TIMEOUT;
        msg_free(m);
    }
    h->ok = r == COROTLS_OK && corotls_loop_close(h->l, fd) == COROTLS_OK;
    return NULL;
}

TEST(test_handoff_to_another_thread)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair(l, lfd, port, cconf, &cfd, &sfd) == 0, "client and accepted fd");
    struct handoff h = {.l = l, .dispatcher = pthread_self()};
    mb_init(&h.mb);
    pthread_t t;
    pthread_create(&t, NULL, handoff_worker, &h);
    mb_post(&h.mb, NULL, sfd, COROTLS_OK, NULL, 0); /* hand the accepted fd over */

    uint8_t reply[64];
    CHECK(lu_send(l, cfd, "hello-handoff", 13, 10000, NULL) == COROTLS_OK, "client sends (handshakes)");
    CHECK(lu_recv_n(l, cfd, reply, 24, 10000) == COROTLS_OK && memcmp(reply, "thread got hello-handoff", 24) == 0,
          "the other thread answered on the handed-off fd");
    struct lu_done d = {0};
    const uint8_t *data;
    size_t len;
    corotls_result r = corotls_loop_recv(l, cfd, 10000, lu_cb, &d, &data, &len);
    if (r == COROTLS_PENDING)
        r = lu_wait(l, &d, 10000) ? d.r : COROTLS_TIMEOUT;
    CHECK(r == COROTLS_CLOSED, "and closed it (%s)", corotls_result_name(r));
    lu_reset(&d);
    pthread_join(t, NULL);
    CHECK(h.ok, "the worker's send and close succeeded");
    CHECK(h.foreign == 0, "its %d completions ran on the dispatching thread", h.callbacks);
    struct msg *m;
    while ((m = mb_take(&h.mb, 0)))
        msg_free(m);
    mb_destroy(&h.mb);
    corotls_loop_free(l);
}

/* ----------------------------------------------------- 4 x 250 clients */

struct worker;

struct cconn {
    struct worker *w;
    int idx, fd, round, phase; /* phase 0 connect, 1 send, 2 recv, 3 done */
    size_t want, got;
    uint8_t *expect, *buf;
};

struct worker {
    pthread_t t;
    corotls_loop *l;
    struct mailbox mb;
    int id, nconn, rounds, port;
    struct cconn *conns;
    int done, failures;
    char first_error[200];
};

static void worker_cb(void *ud, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct cconn *c = ud;
    mb_post(&c->w->mb, c, fd, r, data, len);
}

static void fail(struct cconn *c, const char *what, corotls_result r)
{
    struct worker *w = c->w;
    if (!w->failures++)
        snprintf(w->first_error, sizeof w->first_error, "conn %d round %d: %s: %s (%s)", c->idx, c->round, what,
                 corotls_result_name(r), corotls_last_error());
    if (c->fd >= 0)
        corotls_loop_close(w->l, c->fd);
    c->phase = 3;
    __atomic_fetch_add(&w->done, 1, __ATOMIC_RELEASE);
}

static size_t msg_size(int idx, int round)
{
    return (size_t)((idx * 31 + round * 17) % 3000) + 1;
}

/* Advance one connection as far as inline completions allow.  `r`, `data`,
 * `len`: the completion that resumes it (r = COROTLS_OK, data NULL to
 * start). */
static void advance(struct cconn *c, corotls_result r, const uint8_t *data, size_t len)
{
    struct worker *w = c->w;
    for (;;) {
        if (r != COROTLS_OK) {
            fail(c, c->phase == 0 ? "connect" : c->phase == 1 ? "send" : "recv", r);
            return;
        }
        switch (c->phase) {
        case 0: /* connected (or starting) */
            if (c->fd < 0) {
                char ps[16];
                snprintf(ps, sizeof ps, "%d", w->port);
                r = corotls_loop_connect(w->l, "127.0.0.1", ps, cconf, 20000, worker_cb, c, &c->fd);
                if (r == COROTLS_PENDING)
                    return;
                continue;
            }
            c->phase = 1;
            __attribute__((fallthrough)); /* send round 0 */
        case 1:
            c->want = msg_size(c->idx, c->round);
            util_fill(c->expect, c->want, (unsigned)(c->idx * 1000 + c->round + w->id * 100000));
            c->got = 0;
            c->phase = 2;
            r = corotls_loop_send(w->l, c->fd, c->expect, c->want, 20000, worker_cb, c);
            if (r == COROTLS_PENDING)
                return;
            data = NULL;
            continue;
        case 2:
            if (data) {
                if (c->got + len > c->want) {
                    fail(c, "too much data", COROTLS_ERR_ARG);
                    return;
                }
                memcpy(c->buf + c->got, data, len);
                c->got += len;
                data = NULL;
            }
            if (c->got == c->want) {
                if (memcmp(c->buf, c->expect, c->want) != 0) {
                    fail(c, "echo differs", COROTLS_ERR_ARG);
                    return;
                }
                if (++c->round == w->rounds) {
                    corotls_loop_close(w->l, c->fd);
                    c->phase = 3;
                    __atomic_fetch_add(&w->done, 1, __ATOMIC_RELEASE);
                    return;
                }
                c->phase = 1;
                continue;
            }
            {
                const uint8_t *d;
                size_t n;
                r = corotls_loop_recv(w->l, c->fd, 20000, worker_cb, c, &d, &n);
                if (r == COROTLS_PENDING)
                    return;
                data = d;
                len = n;
            }
            continue;
        default:
            return;
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < w->nconn; i++) {
        struct cconn *c = &w->conns[i];
        c->w = w;
        c->idx = i;
        c->fd = -1;
        c->expect = malloc(3001);
        c->buf = malloc(3001);
        advance(c, COROTLS_OK, NULL, 0);
    }
    while (w->done < w->nconn) {
        struct msg *m = mb_take(&w->mb, 60000);
        if (!m)
            break;
        struct cconn *c = m->who;
        if (c->phase == 0 && m->r == COROTLS_OK)
            c->fd = m->fd;
        advance(c, m->r, m->data, m->len);
        msg_free(m);
    }
    return NULL;
}

TEST(test_four_threads_share_one_table)
{
    int nthreads = 4, nconn = lu_scale(250, 10), rounds = lu_scale(5, 2);
    lu_raise_nofile(4 * nthreads * nconn + 256);
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    struct server s = {.l = l};
    int port;
    s.lfd = lu_listen(l, sconf, &port);
    REQUIRE(s.lfd >= 0, "listen");
    srv_accept(&s);
    struct worker w[4];
    memset(w, 0, sizeof w);
    for (int i = 0; i < nthreads; i++) {
        w[i].l = l;
        w[i].id = i;
        w[i].nconn = nconn;
        w[i].rounds = rounds;
        w[i].port = port;
        w[i].conns = calloc((size_t)nconn, sizeof *w[i].conns);
        mb_init(&w[i].mb);
        pthread_create(&w[i].t, NULL, worker_main, &w[i]);
    }
    /* The main thread dispatches until every worker is done. */
    long long end = harness_now_ms() + 120000;
    int total = nthreads * nconn;
    for (;;) {
        int done = 0;
        for (int i = 0; i < nthreads; i++)
            done += __atomic_load_n(&w[i].done, __ATOMIC_ACQUIRE);
        if (done == total || harness_now_ms() > end)
            break;
        corotls_loop_dispatch(l, 20, NULL);
    }
    int failures = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(w[i].t, NULL);
        failures += w[i].failures;
        if (w[i].failures)
            harness_diag("worker %d: %s", i, w[i].first_error);
    }
    CHECK(failures == 0, "%d threads x %d connections x %d echo rounds, every byte checked (%d failures)",
          nthreads, nconn, rounds, failures);
    /* Let the server see every close. */
    end = harness_now_ms() + 30000;
    while (s.closed < s.accepted && harness_now_ms() < end)
        corotls_loop_dispatch(l, 20, NULL);
    CHECK(s.accepted == total && s.closed == total, "the server accepted and closed %d connections (%d, %d)", total,
          s.accepted, s.closed);
    CHECK(s.errors == 0, "the server saw no errors (%d)", s.errors);
    corotls_loop_close(l, s.lfd);
    lu_spin(l, 10);
    CHECK(corotls_loop_pending(l) == 0, "nothing pending");
    for (int i = 0; i < nthreads; i++) {
        for (int j = 0; j < nconn; j++) {
            free(w[i].conns[j].expect);
            free(w[i].conns[j].buf);
        }
        free(w[i].conns);
        struct msg *m;
        while ((m = mb_take(&w[i].mb, 0)))
            msg_free(m);
        mb_destroy(&w[i].mb);
    }
    corotls_loop_free(l);
}

int main(void)
{
    harness_init();
    sconf = util_server_conf("leaf.crt", "leaf.key");
    cconf = util_client_conf(0);
    if (!sconf || !cconf)
        return 1;
    int rc = harness_run_all();
    corotls_conf_free(sconf);
    corotls_conf_free(cconf);
    return rc;
}
