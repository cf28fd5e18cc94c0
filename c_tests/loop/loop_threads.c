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

/* ------------------------------------------------------------ hand-off */

struct handoff {
    corotls_loop *l;
    struct lu_mailbox mb;
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
    lu_mb_post(&h->mb, NULL, fd, r, data, len);
}

/* The other thread: takes the fd from its mailbox, then uses it as if it
 * had created it. */
static void *handoff_worker(void *arg)
{
    struct handoff *h = arg;
    struct lu_msg *m = lu_mb_take(&h->mb, 10000);
    if (!m)
        return NULL;
    int fd = m->fd;
    lu_msg_free(m);
    const uint8_t *data;
    size_t len;
    uint8_t buf[64];
    size_t got = 0;
    while (got < 13) {
        corotls_result r = corotls_loop_recv(h->l, fd, 10000, handoff_cb, h, &data, &len);
        if (r == COROTLS_PENDING) {
            m = lu_mb_take(&h->mb, 10000);
            if (!m || m->r != COROTLS_OK) {
                lu_msg_free(m);
                return NULL;
            }
            memcpy(buf + got, m->data, m->len);
            got += m->len;
            lu_msg_free(m);
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
        m = lu_mb_take(&h->mb, 10000);
        r = m ? m->r : COROTLS_TIMEOUT;
        lu_msg_free(m);
    }
    h->ok = r == COROTLS_OK && corotls_loop_close(h->l, fd) == COROTLS_OK;
    return NULL;
}

TEST(test_handoff_to_another_thread)
{
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, lu_sconf, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair(l, lfd, port, lu_cconf, &cfd, &sfd) == 0, "client and accepted fd");
    struct handoff h = {.l = l, .dispatcher = pthread_self()};
    lu_mb_init(&h.mb);
    pthread_t t;
    pthread_create(&t, NULL, handoff_worker, &h);
    lu_mb_post(&h.mb, NULL, sfd, COROTLS_OK, NULL, 0); /* hand the accepted fd over */

    uint8_t reply[64];
    CHECK(lu_send(l, cfd, "hello-handoff", 13, 10000, NULL) == COROTLS_OK, "client sends (handshakes)");
    CHECK(lu_recv_n(l, cfd, reply, 24, 10000) == COROTLS_OK && memcmp(reply, "thread got hello-handoff", 24) == 0,
          "the other thread answered on the handed-off fd");
    corotls_result r = lu_recv_result(l, cfd, 10000);
    CHECK(r == COROTLS_CLOSED, "and closed it (%s)", corotls_result_name(r));
    pthread_join(t, NULL);
    CHECK(h.ok, "the worker's send and close succeeded");
    CHECK(h.foreign == 0, "its %d completions ran on the dispatching thread", h.callbacks);
    lu_mb_destroy(&h.mb);
    corotls_loop_free(l);
}

/* ----------------------------------------------------- 4 x 250 clients */

struct worker {
    pthread_t t;
    struct lu_mailbox mb;
    struct lu_clients cs;
};

/* A worker thread starts its clients' operations itself and resumes them
 * from its mailbox. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    lu_clients_start(&w->cs);
    lu_clients_pump(&w->cs, 60000);
    return NULL;
}

TEST(test_four_threads_share_one_table)
{
    int nthreads = 4, nconn = lu_scale(250, 10), rounds = lu_scale(5, 2);
    lu_raise_nofile(4L * nthreads * nconn + 256);
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    struct lu_server s;
    int port;
    REQUIRE(lu_server_start(&s, l, lu_sconf, &port) == 0, "echo server");
    struct worker w[4];
    memset(w, 0, sizeof w);
    for (int i = 0; i < nthreads; i++) {
        lu_mb_init(&w[i].mb);
        w[i].cs = (struct lu_clients){
            .l = l, .conf = lu_cconf, .mb = &w[i].mb, .port = port, .n = nconn, .rounds = rounds, .seed = i * 100000};
        pthread_create(&w[i].t, NULL, worker_main, &w[i]);
    }
    /* The main thread dispatches until every worker is done. */
    long long end = harness_now_ms() + 120000;
    int total = nthreads * nconn;
    for (;;) {
        int done = 0;
        for (int i = 0; i < nthreads; i++)
            done += lu_clients_done(&w[i].cs);
        if (done == total || harness_now_ms() > end)
            break;
        corotls_loop_dispatch(l, 20, NULL);
    }
    int failures = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(w[i].t, NULL);
        failures += w[i].cs.failures;
        if (w[i].cs.failures)
            harness_diag("worker %d: %s", i, w[i].cs.first_error);
    }
    CHECK(failures == 0, "%d threads x %d connections x %d echo rounds, every byte checked (%d failures)",
          nthreads, nconn, rounds, failures);
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
        lu_clients_free(&w[i].cs);
        lu_mb_destroy(&w[i].mb);
    }
    corotls_loop_free(l);
}

int main(void)
{
    return lu_main();
}
