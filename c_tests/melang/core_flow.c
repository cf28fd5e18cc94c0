/*
 * core_flow.c -- the Melang extension's binding core beyond single calls:
 * hand-off of an fd between coroutines (Eval), a coroutine killed while it
 * waits (nothing lost, the fd usable at once: corotls_loop_cancel), the
 * race where it dies after its operation completed (the result is kept
 * for the next caller), threads like `melang -t=N`, the server handshake
 * deadline turned off, and teardown (destroy) with everything still open.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "host.h"

#define CALL(c, fn, ...) fx_call(c, fn, FX_ARGS(__VA_ARGS__))
#define RUN(c, fn, ...) fx_run(c, fn, FX_ARGS(__VA_ARGS__))

static const char *cert(const char *n)
{
    return harness_cert(n);
}

static int fcntl_closed(int fd)
{
    return fcntl(fd, F_GETFD) == -1;
}

struct world {
    struct fx_lang L;
    struct fx_co boss; /* makes the confs and the listener */
    int64_t sconf, cconf;
    int lfd, port;
    char ps[16];
};

static int world_init(struct world *w)
{
    if (fx_lang_init(&w->L) != 0)
        return -1;
    fx_co_init(&w->boss, &w->L);
    w->sconf = fx_conf(&w->boss, "server", cert("leaf.crt"), cert("leaf.key"), NULL, 0);
    w->cconf = fx_conf(&w->boss, "client", NULL, NULL, NULL, 0);
    w->lfd = fx_listen(&w->boss, &w->port);
    snprintf(w->ps, sizeof w->ps, "%d", w->port);
    return w->sconf > 0 && w->cconf > 0 && w->lfd >= 0 ? 0 : -1;
}

static void world_free(struct world *w)
{
    CALL(&w->boss, MTLS_CLOSE, A_INT(w->lfd));
    fx_kill(&w->boss);
    CHECK(w->L.bad_resumes == 0, "every resume followed the rules");
    fx_lang_destroy(&w->L);
}

/* The acceptor hands the fd to a worker (Eval) and exits without closing
 * it; the worker uses it; the client's fd is used by a third coroutine. */
TEST(hand_off)
{
    struct world w;
    REQUIRE(world_init(&w) == 0, "world");
    struct fx_co acceptor, worker, client, client2;
    fx_co_init(&acceptor, &w.L);
    fx_co_init(&client, &w.L);
    int cfd, sfd;
    REQUIRE(fx_pair(&client, &acceptor, w.lfd, w.port, w.cconf, w.sconf, &cfd, &sfd) == 0, "a pair");
    fx_kill(&acceptor); /* Eval(worker, sfd); the acceptor ends */
    fx_kill(&client);   /* and the client hands its fd on too */
    fx_co_init(&worker, &w.L);
    fx_co_init(&client2, &w.L);
    CHECK(CALL(&client2, MTLS_SEND, A_INT(cfd), A_STR("ping"), A_NIL()) == MTLS_RET_TRUE,
          "another coroutine sends on the client fd");
    CHECK(RUN(&worker, MTLS_RECV, A_INT(sfd), A_INT(5000)) == MTLS_RET_STRING && fx_is_str(&worker, "ping"),
          "the worker receives on the handed-off fd");
    CHECK(CALL(&worker, MTLS_SEND, A_INT(sfd), A_STR("pong"), A_NIL()) == MTLS_RET_TRUE, "and answers");
    CHECK(RUN(&client2, MTLS_RECV, A_INT(cfd), A_INT(5000)) == MTLS_RET_STRING && fx_is_str(&client2, "pong"),
          "pong");
    CALL(&worker, MTLS_CLOSE, A_INT(sfd));
    CALL(&client2, MTLS_CLOSE, A_INT(cfd));
    fx_kill(&worker);
    fx_kill(&client2);
    world_free(&w);
}

/* Killed while parked: the operation is cancelled in corotls, the fd is
 * free at once for another coroutine, and nothing is lost. */
TEST(killed_while_waiting)
{
    struct world w;
    REQUIRE(world_init(&w) == 0, "world");
    struct fx_co a, b, cl, sv;
    fx_co_init(&cl, &w.L);
    fx_co_init(&sv, &w.L);
    int cfd, sfd;
    REQUIRE(fx_pair(&cl, &sv, w.lfd, w.port, w.cconf, w.sconf, &cfd, &sfd) == 0, "a pair");

    /* recv */
    fx_co_init(&a, &w.L);
    fx_co_init(&b, &w.L);
    CHECK(CALL(&a, MTLS_RECV, A_INT(sfd), A_NIL()) == MTLS_RET_SUSPENDED, "A waits in recv");
    CHECK(CALL(&cl, MTLS_SEND, A_INT(cfd), A_STR("for-whoever-reads"), A_NIL()) == MTLS_RET_TRUE,
          "the peer sends (not yet dispatched)");
    fx_kill(&a);
    CHECK(a.resumes == 0, "A is never resumed");
    CHECK(RUN(&b, MTLS_RECV, A_INT(sfd), A_INT(5000)) == MTLS_RET_STRING && fx_is_str(&b, "for-whoever-reads"),
          "B reads at once (not busy), and gets the data A was waiting for");
    fx_pump(&w.L, 30);

    /* handshake + send on a fresh pair, accept, connect */
    int cfd2, sfd2;
    struct fx_co c2, s2;
    fx_co_init(&c2, &w.L);
    fx_co_init(&s2, &w.L);
    REQUIRE(RUN(&c2, MTLS_CONNECT, A_STR("127.0.0.1"), A_STR(w.ps), A_INT(w.cconf), A_INT(5000)) == MTLS_RET_INT,
            "connect");
    cfd2 = (int)c2.i;
    REQUIRE(RUN(&s2, MTLS_ACCEPT, A_INT(w.lfd), A_INT(w.sconf), A_INT(5000)) == MTLS_RET_INT, "accept");
    sfd2 = (int)s2.i;
    struct fx_co h;
    fx_co_init(&h, &w.L);
    CHECK(CALL(&h, MTLS_HANDSHAKE, A_INT(sfd2), A_NIL()) == MTLS_RET_SUSPENDED, "H waits in the server handshake");
    fx_kill(&h);
    int kc = CALL(&c2, MTLS_HANDSHAKE, A_INT(cfd2), A_INT(5000));
    int ks = RUN(&s2, MTLS_HANDSHAKE, A_INT(sfd2), A_INT(5000));
    if (kc == MTLS_RET_SUSPENDED && fx_wait(&c2, 5000))
        kc = c2.kind;
    CHECK(kc == MTLS_RET_TRUE && ks == MTLS_RET_TRUE, "another coroutine finishes the handshake H started");

    size_t big = 8u << 20;
    char *p = malloc(big);
    memset(p, 'q', big);
    struct fx_co snd;
    fx_co_init(&snd, &w.L);
    CHECK(CALL(&snd, MTLS_SEND, A_INT(cfd2), A_STRN(p, big), A_NIL()) == MTLS_RET_SUSPENDED,
          "S waits in an 8 MiB send to a peer that does not read");
    fx_kill(&snd);
    CHECK(CALL(&c2, MTLS_SEND, A_INT(cfd2), A_STR("|after"), A_NIL()) != MTLS_RET_FALSE || c2.msg[0] == 0,
          "the fd takes a new send at once (not busy)");
    fx_wait(&c2, 10000);
    /* The stream stays valid: the reader gets 'q's, then "|after". */
    size_t got = 0;
    int ended = 0, clean = 1;
    long long end = harness_now_ms() + 60000;
    while (!ended && harness_now_ms() < end) {
        if (RUN(&s2, MTLS_RECV, A_INT(sfd2), A_INT(10000)) != MTLS_RET_STRING)
            break;
        for (size_t i = 0; i < s2.len; i++) {
            if (s2.s[i] == '|') {
                ended = s2.len - i == 6 && memcmp(s2.s + i, "|after", 6) == 0;
                break;
            }
            if (s2.s[i] != 'q')
                clean = 0;
        }
        got += s2.len;
    }
    CHECK(ended && clean, "the reader gets a prefix of the cancelled send, then the later send, intact (%zu bytes)",
          got);
    free(p);

    /* accept */
    struct fx_co acc, acc2, conn;
    fx_co_init(&acc, &w.L);
    fx_co_init(&acc2, &w.L);
    fx_co_init(&conn, &w.L);
    CHECK(CALL(&acc, MTLS_ACCEPT, A_INT(w.lfd), A_INT(w.sconf), A_NIL()) == MTLS_RET_SUSPENDED, "X waits in accept");
    fx_kill(&acc);
    CHECK(RUN(&conn, MTLS_CONNECT, A_STR("127.0.0.1"), A_STR(w.ps), A_INT(w.cconf), A_INT(5000)) == MTLS_RET_INT,
          "a client connects after X died");
    int cfd3 = (int)conn.i;
    fx_pump(&w.L, 30);
    CHECK(RUN(&acc2, MTLS_ACCEPT, A_INT(w.lfd), A_INT(w.sconf), A_INT(5000)) == MTLS_RET_INT,
          "the next accept (not busy) gets the connection");
    int sfd3 = (int)acc2.i;

    /* connect: killed while connecting (a listener with a full queue). */
    int plfd = socket(AF_INET, SOCK_STREAM, 0), fill[64], nfill = 0;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    REQUIRE(bind(plfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(plfd, 0) == 0 &&
                getsockname(plfd, (struct sockaddr *)&sa, &sl) == 0,
            "a plain listener with backlog 0");
    for (; nfill < 64; nfill++) {
        fill[nfill] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[nfill], (struct sockaddr *)&sa, sizeof sa);
        harness_sleep_ms(2);
    }
    char fps[16];
    snprintf(fps, sizeof fps, "%d", ntohs(sa.sin_port));
    struct fx_co k;
    fx_co_init(&k, &w.L);
    size_t pending0 = corotls_loop_pending(mtls_state_loop(w.L.st));
    CHECK(CALL(&k, MTLS_CONNECT, A_STR("127.0.0.1"), A_STR(fps), A_INT(w.cconf), A_NIL()) == MTLS_RET_SUSPENDED,
          "K waits in a connect that cannot finish");
    fx_kill(&k);
    fx_pump(&w.L, 50);
    CHECK(corotls_loop_pending(mtls_state_loop(w.L.st)) == pending0, "its connect is gone from the loop");
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(plfd);

    CALL(&cl, MTLS_CLOSE, A_INT(cfd));
    CALL(&cl, MTLS_CLOSE, A_INT(sfd));
    CALL(&cl, MTLS_CLOSE, A_INT(cfd2));
    CALL(&cl, MTLS_CLOSE, A_INT(sfd2));
    CALL(&cl, MTLS_CLOSE, A_INT(cfd3));
    CALL(&cl, MTLS_CLOSE, A_INT(sfd3));
    struct fx_co *all[] = {&b, &cl, &sv, &c2, &s2, &acc2, &conn};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        fx_kill(all[i]);
    world_free(&w);
}

/* The race of `-t=N`: a coroutine dies after its operation completed in
 * corotls but before the callback could take the lock.  corotls_loop_cancel
 * cannot take the operation back; the result is kept for the next caller
 * on that fd (recv data, an accepted fd), and the fd is busy until then. */
struct dispatcher {
    struct fx_lang *L;
    volatile int stop;
};

static void *dispatch_thread(void *arg)
{
    struct dispatcher *d = arg;
    while (!d->stop)
        fx_pump(d->L, 20);
    return NULL;
}

/* Hold the lock until a dispatching thread waits for it in a callback. */
static int hold_until_callback_waits(struct fx_lang *L)
{
    long long end = harness_now_ms() + 5000;
    while (__atomic_load_n(&L->lock_waiters, __ATOMIC_SEQ_CST) == 0 && harness_now_ms() < end)
        harness_sleep_ms(1);
    return __atomic_load_n(&L->lock_waiters, __ATOMIC_SEQ_CST) > 0;
}

TEST(died_after_completion)
{
    struct world w;
    REQUIRE(world_init(&w) == 0, "world");
    struct fx_co a, b, cl, sv;
    fx_co_init(&cl, &w.L);
    fx_co_init(&sv, &w.L);
    int cfd, sfd;
    REQUIRE(fx_pair(&cl, &sv, w.lfd, w.port, w.cconf, w.sconf, &cfd, &sfd) == 0, "a pair");
    fx_co_init(&a, &w.L);
    fx_co_init(&b, &w.L);
    CHECK(CALL(&a, MTLS_RECV, A_INT(sfd), A_NIL()) == MTLS_RET_SUSPENDED, "A waits in recv");

    pthread_mutex_lock(&w.L.lock); /* a script thread runs an internal function */
    struct dispatcher d = {&w.L, 0};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, dispatch_thread, &d) == 0, "a Melang thread runs the loop");
    struct mtls_ret r = mtls_call(w.L.st, cl.rec, MTLS_SEND, FX_ARGS(A_INT(cfd), A_STR("owed"), A_NIL()));
    CHECK(r.kind == MTLS_RET_TRUE, "the peer sends");
    CHECK(hold_until_callback_waits(&w.L), "A's recv completed; its callback waits for the lock");
    mtls_ctx_gone(a.rec); /* Kill(A) */
    a.rec = NULL;
    r = mtls_call(w.L.st, b.rec, MTLS_RECV, FX_ARGS(A_INT(sfd), A_NIL()));
    CHECK(r.kind == MTLS_RET_FALSE && r.msg && strcmp(r.msg, "Socket busy in another script task.") == 0,
          "until the callback ran, the fd is busy");
    pthread_mutex_unlock(&w.L.lock);
    fx_pump(&w.L, 0);
    harness_sleep_ms(100);
    CHECK(RUN(&b, MTLS_RECV, A_INT(sfd), A_INT(5000)) == MTLS_RET_STRING && fx_is_str(&b, "owed"),
          "B's recv gets what A's completed recv took, inline");
    CHECK(a.resumes == 0, "A was never resumed");

    /* The same for accept. */
    fx_co_init(&a, &w.L);
    CHECK(CALL(&a, MTLS_ACCEPT, A_INT(w.lfd), A_INT(w.sconf), A_NIL()) == MTLS_RET_SUSPENDED, "A waits in accept");
    pthread_mutex_lock(&w.L.lock);
    int raw = harness_connect_loopback(w.port);
    CHECK(hold_until_callback_waits(&w.L), "A's accept completed; its callback waits for the lock");
    mtls_ctx_gone(a.rec);
    a.rec = NULL;
    pthread_mutex_unlock(&w.L.lock);
    harness_sleep_ms(100);
    CHECK(RUN(&b, MTLS_ACCEPT, A_INT(w.lfd), A_INT(w.sconf), A_INT(5000)) == MTLS_RET_INT,
          "B's accept gets the connection A's accept took, inline");
    int afd = (int)b.i;
    d.stop = 1;
    pthread_join(t, NULL);
    close(raw);
    CALL(&b, MTLS_CLOSE, A_INT(afd));
    CALL(&b, MTLS_CLOSE, A_INT(cfd));
    CALL(&b, MTLS_CLOSE, A_INT(sfd));
    fx_kill(&b);
    fx_kill(&cl);
    fx_kill(&sv);
    world_free(&w);
}

/* `melang -t=N`: one lang, one loop, N threads that run coroutines and
 * dispatch the loop; completions resume coroutines parked by other threads. */
#define NT 4
struct pairjob {
    struct world *w;
    int rounds, ok;
};

static void *thread_job(void *arg)
{
    struct pairjob *j = arg;
    struct world *w = j->w;
    struct fx_co cl, sv;
    fx_co_init(&cl, &w->L);
    fx_co_init(&sv, &w->L);
    int port, lfd = fx_listen(&sv, &port);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (lfd >= 0 && RUN(&cl, MTLS_CONNECT, A_STR("127.0.0.1"), A_STR(ps), A_INT(w->cconf), A_INT(10000)) == MTLS_RET_INT &&
        RUN(&sv, MTLS_ACCEPT, A_INT(lfd), A_INT(w->sconf), A_INT(10000)) == MTLS_RET_INT) {
        int cfd = (int)cl.i, sfd = (int)sv.i;
        for (int r = 0; r < j->rounds; r++) {
            char msg[64];
            snprintf(msg, sizeof msg, "round-%d-%p", r, (void *)&cl);
            /* The server end waits; the client's send (from this thread)
             * completes it, and whichever thread dispatches resumes it. */
            int k = CALL(&sv, MTLS_RECV, A_INT(sfd), A_INT(10000));
            if (RUN(&cl, MTLS_SEND, A_INT(cfd), A_STR(msg), A_INT(10000)) != MTLS_RET_TRUE)
                break;
            if (k == MTLS_RET_SUSPENDED && !fx_wait(&sv, 10000))
                break;
            if (!fx_is_str(&sv, msg))
                break;
            if (RUN(&sv, MTLS_SEND, A_INT(sfd), A_STR(msg), A_INT(10000)) != MTLS_RET_TRUE ||
                RUN(&cl, MTLS_RECV, A_INT(cfd), A_INT(10000)) != MTLS_RET_STRING || !fx_is_str(&cl, msg))
                break;
            j->ok++;
        }
        CALL(&cl, MTLS_CLOSE, A_INT(cfd));
        CALL(&sv, MTLS_CLOSE, A_INT(sfd));
    }
    CALL(&sv, MTLS_CLOSE, A_INT(lfd));
    fx_kill(&cl);
    fx_kill(&sv);
    return NULL;
}

TEST(threads)
{
    struct world w;
    REQUIRE(world_init(&w) == 0, "world");
    int rounds = getenv("COROTLS_TEST_QUICK") ? 10 : 100;
    struct pairjob jobs[NT];
    pthread_t t[NT];
    for (int i = 0; i < NT; i++) {
        jobs[i] = (struct pairjob){&w, rounds, 0};
        REQUIRE(pthread_create(&t[i], NULL, thread_job, &jobs[i]) == 0, "thread");
    }
    int total = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(t[i], NULL);
        total += jobs[i].ok;
    }
    CHECK(total == NT * rounds, "%d threads x %d echo rounds through one lang and one loop (%d ok)", NT, rounds,
          total);
    world_free(&w);
}

/* Scripts pass their own timeouts: accepted connections get no handshake
 * deadline from the loop (the native default is 30 s). */
TEST(no_server_handshake_deadline)
{
    struct world w;
    REQUIRE(world_init(&w) == 0, "world");
    CHECK(w.L.watched_fd == mtls_state_loop_fd(w.L.st), "the loop fd was given to the host to watch, once");
    struct fx_co s;
    fx_co_init(&s, &w.L);
    int raw = harness_connect_loopback(w.port);
    REQUIRE(RUN(&s, MTLS_ACCEPT, A_INT(w.lfd), A_INT(w.sconf), A_INT(5000)) == MTLS_RET_INT, "accept a silent peer");
    CHECK(corotls_loop_timeout(mtls_state_loop(w.L.st)) == -1,
          "no deadline is armed for the accepted connection (corotls_loop_timeout -1)");
    CALL(&s, MTLS_CLOSE, A_INT(s.i));
    close(raw);
    fx_kill(&s);
    world_free(&w);
}

/* destroy(lang) with listeners, connections, confs, a pending accept of a
 * coroutine already gone, and a coroutine record that outlives the state. */
TEST(teardown)
{
    struct fx_lang L;
    REQUIRE(fx_lang_init(&L) == 0, "lang");
    struct fx_co c, s, a, late;
    fx_co_init(&c, &L);
    fx_co_init(&s, &L);
    fx_co_init(&a, &L);
    fx_co_init(&late, &L);
    int64_t sconf = fx_conf(&c, "server", cert("leaf.crt"), cert("leaf.key"), NULL, 0);
    int64_t cconf = fx_conf(&c, "client", NULL, NULL, NULL, 0);
    int port, port2, lfd = fx_listen(&s, &port), lfd2 = fx_listen(&s, &port2), cfd, sfd;
    REQUIRE(fx_pair(&c, &s, lfd, port, cconf, sconf, &cfd, &sfd) == 0, "a pair");
    CALL(&c, MTLS_SEND, A_INT(cfd), A_STR("unread"), A_NIL());
    CHECK(CALL(&a, MTLS_ACCEPT, A_INT(lfd2), A_INT(sconf), A_NIL()) == MTLS_RET_SUSPENDED, "an accept waits");
    fx_kill(&a); /* every coroutine is freed before the lang */
    fx_kill(&c);
    fx_kill(&s);
    int loop_fd = L.watched_fd;
    fx_lang_destroy(&L); /* destroy(lang), twice: idempotent */
    CHECK(L.unwatch_calls == 1 && L.watched_fd == -1, "the loop fd was unwatched (%d)", loop_fd);
    CHECK(mtls_state_find(&L) == NULL, "the state is gone");
    CHECK(fcntl_closed(cfd) && fcntl_closed(sfd) && fcntl_closed(lfd), "its sockets are closed");
    mtls_ctx_gone(late.rec); /* an embedder freeing a coroutine after the lang */
}

int main(void)
{
    harness_init();
    return harness_run_all();
}
