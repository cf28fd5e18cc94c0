/* host.c -- see host.h. */
#include "host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Set while this thread runs mtls_dispatch: the only place a resume may
 * happen (Melang: the loop fd's handler, on a Melang thread). */
static __thread int in_dispatch;

struct mtls_arg A_NIL(void)
{
    struct mtls_arg a = {MTLS_ARG_NIL, 0, 0, NULL, 0};
    return a;
}
struct mtls_arg A_INT(int64_t i)
{
    struct mtls_arg a = {MTLS_ARG_INT, i, 0, NULL, 0};
    return a;
}
struct mtls_arg A_BOOL(int b)
{
    struct mtls_arg a = {MTLS_ARG_BOOL, 0, b, NULL, 0};
    return a;
}
struct mtls_arg A_STR(const char *s)
{
    struct mtls_arg a = {MTLS_ARG_STRING, 0, 0, (const uint8_t *)s, strlen(s)};
    return a;
}
struct mtls_arg A_STRN(const void *s, size_t n)
{
    struct mtls_arg a = {MTLS_ARG_STRING, 0, 0, (const uint8_t *)s, n};
    return a;
}
struct mtls_arg A_OTHER(void)
{
    struct mtls_arg a = {MTLS_ARG_OTHER, 0, 0, NULL, 0};
    return a;
}

static void h_lock(void *h)
{
    struct fx_lang *l = h;
    __atomic_add_fetch(&l->lock_waiters, 1, __ATOMIC_SEQ_CST);
    int rc = pthread_mutex_lock(&l->lock);
    __atomic_sub_fetch(&l->lock_waiters, 1, __ATOMIC_SEQ_CST);
    if (rc != 0)
        CHECK(0, "host lock taken (not already held by this thread): %s", strerror(rc));
}

static void h_unlock(void *h)
{
    struct fx_lang *l = h;
    int rc = pthread_mutex_unlock(&l->lock);
    if (rc != 0)
        CHECK(0, "host lock released by its holder: %s", strerror(rc));
}

/* The lock is held by this thread (an error-checking mutex says EDEADLK). */
static int lock_held(struct fx_lang *l)
{
    int rc = pthread_mutex_lock(&l->lock);
    if (rc == 0) {
        pthread_mutex_unlock(&l->lock);
        return 0;
    }
    return rc == EDEADLK;
}

static void value_set(struct fx_co *c, const struct mtls_ret *v)
{
    free(c->s);
    c->s = NULL;
    c->len = 0;
    c->kind = v->kind;
    c->i = v->i;
    if (v->kind == MTLS_RET_STRING) {
        c->s = malloc(v->len ? v->len : 1);
        memcpy(c->s, v->s, v->len);
        c->len = v->len;
    }
}

static void h_suspend(void *h, void *hctx)
{
    struct fx_lang *l = h;
    struct fx_co *c = hctx;
    if (!lock_held(l) || c->parked) {
        __atomic_add_fetch(&l->bad_resumes, 1, __ATOMIC_SEQ_CST);
        CHECK(0, "suspend with the lock held, of a running coroutine");
    }
    c->parked = 1;
}

static void h_resume(void *h, void *hctx, const struct mtls_ret *v)
{
    struct fx_lang *l = h;
    struct fx_co *c = hctx;
    int ok = in_dispatch && lock_held(l) && c->parked && v->msg == NULL &&
             (v->kind == MTLS_RET_NIL || v->kind == MTLS_RET_TRUE || v->kind == MTLS_RET_FALSE ||
              v->kind == MTLS_RET_INT || v->kind == MTLS_RET_STRING);
    if (!ok) {
        __atomic_add_fetch(&l->bad_resumes, 1, __ATOMIC_SEQ_CST);
        CHECK(0, "resume: inside dispatch (%d), lock held, of a parked coroutine (%d), with a value (kind %d)",
              in_dispatch, c->parked, v->kind);
    }
    value_set(c, v);
    c->resumes++;
    __atomic_store_n(&c->parked, 0, __ATOMIC_SEQ_CST);
}

static int h_watch(void *h, int fd, struct mtls_state *st)
{
    struct fx_lang *l = h;
    (void)st;
    l->watch_calls++;
    l->watched_fd = fd;
    return 0;
}

static void h_unwatch(void *h, int fd)
{
    struct fx_lang *l = h;
    CHECK(fd == l->watched_fd, "unwatch of the watched loop fd");
    l->unwatch_calls++;
    l->watched_fd = -1;
}

int fx_lang_init(struct fx_lang *l)
{
    memset(l, 0, sizeof *l);
    l->watched_fd = -1;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&l->lock, &a);
    pthread_mutexattr_destroy(&a);
    struct mtls_host host = {l, h_lock, h_unlock, h_suspend, h_resume, h_watch, h_unwatch};
    const char *err = NULL;
    pthread_mutex_lock(&l->lock);
    l->st = mtls_state_get(l, &host, &err);
    /* A second Import in the same lang: the same state, no second watch. */
    struct mtls_state *again = l->st ? mtls_state_get(l, &host, &err) : NULL;
    pthread_mutex_unlock(&l->lock);
    if (!l->st || again != l->st || l->watch_calls != 1)
        return -1;
    return 0;
}

void fx_lang_destroy(struct fx_lang *l)
{
    pthread_mutex_lock(&l->lock);
    mtls_state_destroy(l);
    mtls_state_destroy(l); /* idempotent */
    pthread_mutex_unlock(&l->lock);
    l->st = NULL;
    pthread_mutex_destroy(&l->lock);
}

void fx_co_init(struct fx_co *c, struct fx_lang *l)
{
    memset(c, 0, sizeof *c);
    c->lang = l;
    pthread_mutex_lock(&l->lock);
    c->rec = mtls_ctx_new(l->st, c);
    pthread_mutex_unlock(&l->lock);
}

void fx_kill(struct fx_co *c)
{
    pthread_mutex_lock(&c->lang->lock);
    mtls_ctx_gone(c->rec);
    pthread_mutex_unlock(&c->lang->lock);
    c->rec = NULL;
    free(c->s);
    c->s = NULL;
}

int fx_call(struct fx_co *c, int fn, const struct mtls_arg *args)
{
    struct fx_lang *l = c->lang;
    pthread_mutex_lock(&l->lock);
    struct mtls_ret r = mtls_call(l->st, c->rec, fn, args);
    snprintf(c->msg, sizeof c->msg, "%s", r.msg ? r.msg : "");
    if (r.kind != MTLS_RET_SUSPENDED)
        value_set(c, &r);
    else
        c->kind = MTLS_RET_SUSPENDED;
    pthread_mutex_unlock(&l->lock);
    return r.kind;
}

void fx_pump(struct fx_lang *l, int ms)
{
    long long end = harness_now_ms() + ms;
    do {
        struct pollfd p = {l->watched_fd, POLLIN, 0};
        long long left = end - harness_now_ms();
        if (poll(&p, 1, left > 0 ? (int)(left < 10 ? left : 10) : 0) > 0) {
            in_dispatch = 1;
            mtls_dispatch(l->st);
            in_dispatch = 0;
        }
    } while (harness_now_ms() < end);
}

int fx_wait(struct fx_co *c, int ms)
{
    long long end = harness_now_ms() + ms;
    while (__atomic_load_n(&c->parked, __ATOMIC_SEQ_CST) && harness_now_ms() < end) {
        struct pollfd p = {c->lang->watched_fd, POLLIN, 0};
        if (poll(&p, 1, 10) > 0) {
            in_dispatch = 1;
            mtls_dispatch(c->lang->st);
            in_dispatch = 0;
        }
    }
    return !__atomic_load_n(&c->parked, __ATOMIC_SEQ_CST);
}

int fx_run(struct fx_co *c, int fn, const struct mtls_arg *args)
{
    int k = fx_call(c, fn, args);
    if (k == MTLS_RET_SUSPENDED && fx_wait(c, 10000))
        k = c->kind;
    return k;
}

int64_t fx_conf(struct fx_co *c, const char *role, const char *cert, const char *key, const char *ca, int verify)
{
    struct mtls_arg a[6] = {A_STR(role), cert ? A_STR(cert) : A_NIL(), key ? A_STR(key) : A_NIL(),
                            ca ? A_STR(ca) : A_NIL(), A_NIL(), A_BOOL(verify)};
    return fx_call(c, MTLS_CONF_NEW, a) == MTLS_RET_INT ? c->i : -1;
}

int fx_listen(struct fx_co *c, int *port)
{
    if (fx_call(c, MTLS_LISTEN, FX_ARGS(A_STR("127.0.0.1"), A_STR("0"))) != MTLS_RET_INT)
        return -1;
    int fd = (int)c->i;
    struct sockaddr_in sa;
    socklen_t n = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &n) != 0)
        return -1;
    *port = ntohs(sa.sin_port);
    return fd;
}

int fx_pair(struct fx_co *cl, struct fx_co *sv, int lfd, int port, int64_t cconf, int64_t sconf, int *cfd, int *sfd)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (fx_run(cl, MTLS_CONNECT, FX_ARGS(A_STR("127.0.0.1"), A_STR(ps), A_INT(cconf), A_INT(5000))) != MTLS_RET_INT)
        return -1;
    *cfd = (int)cl->i;
    if (fx_run(sv, MTLS_ACCEPT, FX_ARGS(A_INT(lfd), A_INT(sconf), A_INT(5000))) != MTLS_RET_INT)
        return -1;
    *sfd = (int)sv->i;
    int kc = fx_call(cl, MTLS_HANDSHAKE, FX_ARGS(A_INT(*cfd), A_INT(5000)));
    int ks = fx_call(sv, MTLS_HANDSHAKE, FX_ARGS(A_INT(*sfd), A_INT(5000)));
    if (kc == MTLS_RET_SUSPENDED && fx_wait(cl, 5000))
        kc = cl->kind;
    if (ks == MTLS_RET_SUSPENDED && fx_wait(sv, 5000))
        ks = sv->kind;
    return kc == MTLS_RET_TRUE && ks == MTLS_RET_TRUE ? 0 : -1;
}

int fx_is_str(const struct fx_co *c, const char *s)
{
    return c->kind == MTLS_RET_STRING && c->len == strlen(s) && memcmp(c->s, s, c->len) == 0;
}
