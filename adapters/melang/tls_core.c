/*
 * tls_core.c -- the binding core of Melang's `tls` module (see tls_core.h).
 *
 * Every script-visible rule of spec melang-module.md §5 is decided here,
 * before any corotls call (arguments are checked first: a Melang error
 * never unwinds through a Rust frame).  corotls results are mapped by
 * result code alone (§5.2), never by message text.
 *
 * (One file over 600 lines on purpose: the table, the request records and
 * the script functions are one state machine; split, each part would
 * reach into the others' internals.)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tls_core.h"

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

const struct mtls_fn_desc mtls_fns[MTLS_NFN] = {
    [MTLS_CONF_NEW] = {"conf_new", 6, {"role", "cert", "key", "ca", "ciphers", "verify"}},
    [MTLS_CONF_FREE] = {"conf_free", 1, {"conf"}},
    [MTLS_LISTEN] = {"listen", 2, {"host", "service"}},
    [MTLS_ACCEPT] = {"accept", 3, {"fd", "conf", "timeout"}},
    [MTLS_CONNECT] = {"connect", 4, {"host", "service", "conf", "timeout"}},
    [MTLS_SET_SNI] = {"set_sni", 2, {"fd", "hostname"}},
    [MTLS_SET_VERIFY_HOST] = {"set_verify_host", 2, {"fd", "hostname"}},
    [MTLS_HANDSHAKE] = {"handshake", 2, {"fd", "timeout"}},
    [MTLS_SEND] = {"send", 3, {"fd", "data", "timeout"}},
    [MTLS_RECV] = {"recv", 2, {"fd", "timeout"}},
    [MTLS_CLOSE] = {"close", 1, {"fd"}},
};

/* Messages (spec §5.3, exact). */
#define M_NOMEM "No memory."
#define M_BUSY "Socket busy in another script task."
#define M_ACCEPTING "Listen socket already accepting in another script task."
#define M_NOT_LISTENER "fd is not a listen socket."
#define M_BAD_CONF "Invalid 'conf' handle."
#define M_HS_LISTENER "fd is a listen socket; cannot handshake."
#define M_SEND_LISTENER "Cannot send on a listen socket."
#define M_RECV_LISTENER "Cannot recv on a listen socket; use accept."
#define M_ARG_FD "Argument 'fd' must be an int."
#define M_ARG_CONF "Argument 'conf' must be an int."
#define M_ARG_CONF_FREE "Argument 'conf' must be an int returned by conf_new."
#define M_ARG_TIMEOUT "Argument 'timeout' must be a non-negative int or nil."
#define M_ARG_HOST "Argument 'host' must be a string."
#define M_ARG_SERVICE "Argument 'service' must be a string."
#define M_HOST_LONG "host too long."
#define M_SERVICE_LONG "service too long."
#define M_ARG_HOSTNAME "Argument 'hostname' must be a string."
#define M_ARG_DATA "Argument 'data' must be a string."
#define M_ARG_ROLE "Argument 'role' must be 'server' or 'client'."
#define M_ARG_VERIFY "Argument 'verify' must be bool, int or nil."

/* Limits of [F]: listen/connect names, SNI / verify-host names (melon.md §3.8). */
#define HOST_MAX 127
#define SERVICE_MAX 63
#define NAME_MAX_LEN 255

enum op { OP_ACCEPT, OP_CONNECT, OP_HANDSHAKE, OP_SEND, OP_RECV };
enum kind { K_NONE, K_LISTENER, K_CONN };

struct mtls_req {
    struct mtls_state *st;
    struct mtls_ctx *ctx; /* NULL once the coroutine is gone */
    struct mtls_req *prev, *next; /* in ctx->reqs */
    int fd;                       /* the op's fd (listener for accept; -1 for a connect resolving a name) */
    unsigned gen;                 /* the fd entry's generation when the op started */
    enum op op;
};

struct mtls_ctx {
    struct mtls_state *st; /* NULL once the state is destroyed */
    void *hctx;
    struct mtls_req *reqs;
    struct mtls_ctx *prev, *next; /* in st->ctxs */
};

struct fd_entry {
    enum kind kind;
    unsigned gen;
    bool named; /* set_verify_host gave a name */
    struct mtls_req *pending; /* the op in flight (busy rule) */
    /* Results that reached a coroutine that was gone (only when it died
     * between the completion and its callback: corotls_loop_cancel could
     * not take the op back).  The next recv / accept returns them. */
    uint8_t *stash;
    size_t stash_len;
    int *accepted;
    size_t n_accepted, cap_accepted;
};

struct conf_slot {
    int64_t id;
    corotls_conf *conf;
};

struct mtls_state {
    void *key;
    struct mtls_state *next; /* registry */
    struct mtls_host host;
    corotls_loop *loop;
    int loop_fd;
    bool tearing_down;
    struct fd_entry *fds;
    size_t nfds;
    unsigned next_gen;
    struct conf_slot *confs;
    size_t nconfs, capconfs;
    int64_t next_conf_id;
    struct mtls_ctx *ctxs;
    uint8_t *hold; /* a stash handed to the host, freed at the next call */
};

/* ------------------------------------------------------------ registry */

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mtls_state *registry;

struct mtls_state *mtls_state_find(void *key)
{
    pthread_mutex_lock(&registry_mu);
    struct mtls_state *st = registry;
    while (st && st->key != key)
        st = st->next;
    pthread_mutex_unlock(&registry_mu);
    return st;
}

static void registry_remove(struct mtls_state *st)
{
    pthread_mutex_lock(&registry_mu);
    for (struct mtls_state **p = &registry; *p; p = &(*p)->next) {
        if (*p == st) {
            *p = st->next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_mu);
}

struct mtls_state *mtls_state_get(void *key, const struct mtls_host *host, const char **err)
{
    struct mtls_state *st = mtls_state_find(key);
    if (st)
        return st;
    *err = M_NOMEM;
    st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->key = key;
    st->host = *host;
    st->next_conf_id = 1;
    st->loop_fd = -1;
    if (corotls_loop_new(&st->loop) != COROTLS_OK) {
        *err = "TLS resources unavailable.";
        free(st);
        return NULL;
    }
    /* Scripts pass their own timeouts: no server handshake deadline
     * (the native default is 30 s), so a script sees exactly the
     * documented behaviour. */
    corotls_loop_set_handshake_timeout(st->loop, -1);
    st->loop_fd = corotls_loop_fd(st->loop);
    if (st->loop_fd < 0 || st->host.watch(st->host.host, st->loop_fd, st) != 0) {
        *err = "TLS resources unavailable.";
        corotls_loop_free(st->loop);
        free(st);
        return NULL;
    }
    pthread_mutex_lock(&registry_mu);
    st->next = registry;
    registry = st;
    pthread_mutex_unlock(&registry_mu);
    *err = NULL;
    return st;
}

int mtls_state_loop_fd(const struct mtls_state *st)
{
    return st->loop_fd;
}

corotls_loop *mtls_state_loop(const struct mtls_state *st)
{
    return st->loop;
}

static void entry_clear(struct fd_entry *e)
{
    free(e->stash);
    free(e->accepted);
    unsigned gen = e->gen;
    memset(e, 0, sizeof *e);
    e->gen = gen;
}

void mtls_state_destroy(void *key)
{
    struct mtls_state *st = mtls_state_find(key);
    if (!st)
        return;
    registry_remove(st);
    st->tearing_down = true;
    st->host.unwatch(st->host.host, st->loop_fd);
    /* Closes every fd; pending callbacks run now, on this thread, and only
     * free their requests (tearing_down). */
    corotls_loop_free(st->loop);
    st->loop = NULL;
    for (size_t i = 0; i < st->nconfs; i++)
        corotls_conf_free(st->confs[i].conf);
    free(st->confs);
    for (size_t i = 0; i < st->nfds; i++)
        entry_clear(&st->fds[i]);
    free(st->fds);
    /* Coroutine records still alive (an embedder that frees the lang
     * before its coroutines) no longer point here. */
    for (struct mtls_ctx *c = st->ctxs; c; c = c->next) {
        c->st = NULL;
        c->reqs = NULL;
    }
    free(st->hold);
    free(st);
}

/* ------------------------------------------------------------ tables */

static struct fd_entry *entry_of(struct mtls_state *st, int fd)
{
    if (fd < 0 || (size_t)fd >= st->nfds || st->fds[fd].kind == K_NONE)
        return NULL;
    return &st->fds[fd];
}

/* Add fd as `kind` (it must not be in the table).  -1 when out of memory. */
static int entry_add(struct mtls_state *st, int fd, enum kind kind)
{
    if (fd < 0)
        return -1;
    if ((size_t)fd >= st->nfds) {
        size_t n = st->nfds ? st->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct fd_entry *f = realloc(st->fds, n * sizeof *f);
        if (!f)
            return -1;
        memset(f + st->nfds, 0, (n - st->nfds) * sizeof *f);
        st->fds = f;
        st->nfds = n;
    }
    struct fd_entry *e = &st->fds[fd];
    entry_clear(e);
    e->kind = kind;
    e->gen = ++st->next_gen;
    return 0;
}

/* Remove fd from the table at once (spec pitfall 12: the kernel may reuse
 * the number before a cancelled op calls back). */
static void entry_remove(struct mtls_state *st, int fd)
{
    struct fd_entry *e = entry_of(st, fd);
    if (e)
        entry_clear(e);
}

static corotls_conf *conf_of(struct mtls_state *st, int64_t id)
{
    for (size_t i = 0; i < st->nconfs; i++)
        if (st->confs[i].id == id)
            return st->confs[i].conf;
    return NULL;
}

/* ------------------------------------------------------------ coroutines */

struct mtls_ctx *mtls_ctx_new(struct mtls_state *st, void *hctx)
{
    struct mtls_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->st = st;
    c->hctx = hctx;
    c->next = st->ctxs;
    if (st->ctxs)
        st->ctxs->prev = c;
    st->ctxs = c;
    return c;
}

static void req_link(struct mtls_ctx *c, struct mtls_req *q)
{
    q->ctx = c;
    q->prev = NULL;
    q->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = q;
    c->reqs = q;
}

static void req_unlink(struct mtls_req *q)
{
    struct mtls_ctx *c = q->ctx;
    if (!c)
        return;
    if (q->prev)
        q->prev->next = q->next;
    else
        c->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
    q->ctx = NULL;
}

void mtls_ctx_gone(struct mtls_ctx *c)
{
    struct mtls_state *st = c->st;
    if (st) {
        while (c->reqs) {
            struct mtls_req *q = c->reqs;
            req_unlink(q); /* detached: its callback frees it */
            if (q->op == OP_CONNECT) {
                /* The connection does not exist yet: end it.  A name
                 * still being resolved has no fd; its callback closes
                 * what it gets. */
                if (q->fd >= 0)
                    corotls_loop_cancel(st->loop, q->fd);
                continue;
            }
            struct fd_entry *e = entry_of(st, q->fd);
            /* Taken back: the fd is free for others at once, and the
             * cancelled callback brings nothing.  Else the op has already
             * completed and its callback is on its way: the fd stays busy
             * until it stashes the result for the next caller. */
            if (e && e->pending == q && corotls_loop_cancel(st->loop, q->fd) == COROTLS_OK)
                e->pending = NULL;
        }
        if (c->prev)
            c->prev->next = c->next;
        else
            st->ctxs = c->next;
        if (c->next)
            c->next->prev = c->prev;
    }
    free(c);
}

/* ------------------------------------------------------------ results */

static struct mtls_ret ret_kind(int kind)
{
    struct mtls_ret r = {kind, 0, NULL, 0, NULL};
    return r;
}
static struct mtls_ret ret_int(int64_t i)
{
    struct mtls_ret r = {MTLS_RET_INT, i, NULL, 0, NULL};
    return r;
}
static struct mtls_ret ret_str(const uint8_t *s, size_t len)
{
    struct mtls_ret r = {MTLS_RET_STRING, 0, s, len, NULL};
    return r;
}
static struct mtls_ret ret_msg(const char *msg) /* MSG(msg) + false */
{
    struct mtls_ret r = {MTLS_RET_FALSE, 0, NULL, 0, msg};
    return r;
}
static struct mtls_ret ret_err(const char *msg) /* ERR(msg): the coroutine stops */
{
    struct mtls_ret r = {MTLS_RET_ERROR, 0, NULL, 0, msg};
    return r;
}

/* Spec §5.2.  `fd`: the new connection of an accept / connect. */
static struct mtls_ret map_result(enum op op, corotls_result r, int fd, const uint8_t *data, size_t len)
{
    switch (r) {
    case COROTLS_OK:
        if (op == OP_ACCEPT || op == OP_CONNECT)
            return ret_int(fd);
        if (op == OP_RECV)
            return ret_str(data, len);
        return ret_kind(MTLS_RET_TRUE);
    case COROTLS_CLOSED:
    case COROTLS_EOF:
        /* End of stream: recv gives true, with or without close_notify
         * (as Melon's TLS recv does, spec §5.2). */
        return ret_kind(op == OP_RECV ? MTLS_RET_TRUE : MTLS_RET_FALSE);
    case COROTLS_TIMEOUT:
        return ret_kind(MTLS_RET_NIL);
    case COROTLS_BUSY:
        return ret_msg(op == OP_ACCEPT ? M_ACCEPTING : M_BUSY);
    default: /* ERR_CANCELLED (closed meanwhile) and every error */
        return ret_kind(MTLS_RET_FALSE);
    }
}

/* ------------------------------------------------------------ callbacks */

static void stash_accepted(struct fd_entry *l, int fd)
{
    if (l->n_accepted == l->cap_accepted) {
        size_t n = l->cap_accepted ? 2 * l->cap_accepted : 4;
        int *a = realloc(l->accepted, n * sizeof *a);
        if (!a)
            return;
        l->accepted = a;
        l->cap_accepted = n;
    }
    l->accepted[l->n_accepted++] = fd;
}

/* A result that reached no coroutine: keep what the next caller is owed. */
static void detached_result(struct mtls_state *st, struct mtls_req *q, corotls_result r, int nfd,
                            const uint8_t *data, size_t len)
{
    struct fd_entry *e = entry_of(st, q->fd);
    bool same = e && e->gen == q->gen;
    if (r != COROTLS_OK)
        return;
    switch (q->op) {
    case OP_RECV:
        if (same && len > 0) {
            uint8_t *p = realloc(e->stash, e->stash_len + len);
            if (p) {
                memcpy(p + e->stash_len, data, len);
                e->stash = p;
                e->stash_len += len;
            }
        }
        break;
    case OP_ACCEPT:
        if (same && e->kind == K_LISTENER) {
            size_t before = e->n_accepted;
            stash_accepted(e, nfd);
            if (e->n_accepted > before)
                break;
        }
        entry_remove(st, nfd);
        corotls_loop_close(st->loop, nfd);
        break;
    case OP_CONNECT:
        corotls_loop_close(st->loop, nfd);
        break;
    default: /* a handshake or send finished: nothing is owed */
        break;
    }
}

static void on_done(void *ud, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct mtls_req *q = ud;
    struct mtls_state *st = q->st;
    if (st->tearing_down) {
        /* corotls_loop_free from mtls_state_destroy, lock already held. */
        free(q);
        return;
    }
    st->host.lock(st->host.host);
    struct fd_entry *e = entry_of(st, q->fd);
    if (e && e->pending == q)
        e->pending = NULL;
    struct mtls_ctx *c = q->ctx;
    req_unlink(q);
    if (r == COROTLS_OK && (q->op == OP_ACCEPT || (q->op == OP_CONNECT && c))) {
        if (entry_add(st, fd, K_CONN) != 0) {
            corotls_loop_close(st->loop, fd);
            r = COROTLS_ERR_NOMEM;
        }
    }
    if (c) {
        struct mtls_ret v = map_result(q->op, r, fd, data, len);
        v.msg = NULL; /* a resume carries a value only */
        st->host.resume(st->host.host, c->hctx, &v);
    } else {
        detached_result(st, q, r, fd, data, len);
    }
    st->host.unlock(st->host.host);
    free(q);
}

void mtls_dispatch(struct mtls_state *st)
{
    /* BUSY (another thread dispatches) is fine: it does the work. */
    corotls_loop_dispatch(st->loop, 0, NULL);
}

/* A request for an operation about to start on entry `e` (NULL: connect). */
static struct mtls_req *req_new(struct mtls_state *st, enum op op, int fd, struct fd_entry *e)
{
    struct mtls_req *q = calloc(1, sizeof *q);
    if (q) {
        q->st = st;
        q->op = op;
        q->fd = fd;
        q->gen = e ? e->gen : 0;
    }
    return q;
}

/* An operation started: finished inline (r != PENDING: free the request,
 * map the result) or parked (link the request, suspend the coroutine). */
static struct mtls_ret started(struct mtls_state *st, struct mtls_ctx *c, struct mtls_req *q, struct fd_entry *e,
                               corotls_result r, int nfd, const uint8_t *data, size_t len)
{
    if (r == COROTLS_PENDING) {
        if (e)
            e->pending = q;
        req_link(c, q);
        st->host.suspend(st->host.host, c->hctx);
        return ret_kind(MTLS_RET_SUSPENDED);
    }
    enum op op = q->op;
    free(q);
    if (r == COROTLS_OK && (op == OP_ACCEPT || op == OP_CONNECT) && entry_add(st, nfd, K_CONN) != 0) {
        corotls_loop_close(st->loop, nfd);
        return ret_err(M_NOMEM);
    }
    return map_result(op, r, nfd, data, len);
}

/* ------------------------------------------------------------ arguments */

/* fd argument: an int (else ERR); a value no fd can have is unknown (-1). */
static bool arg_fd(const struct mtls_arg *a, int *fd)
{
    if (a->type != MTLS_ARG_INT)
        return false;
    *fd = a->i >= 0 && a->i <= INT_MAX ? (int)a->i : -1;
    return true;
}

/* timeout argument: nil -> -1 (forever), an int >= 0 -> ms (clamped). */
static bool arg_timeout(const struct mtls_arg *a, int *ms)
{
    if (a->type == MTLS_ARG_NIL) {
        *ms = -1;
        return true;
    }
    if (a->type != MTLS_ARG_INT || a->i < 0)
        return false;
    *ms = a->i > INT_MAX ? INT_MAX : (int)a->i;
    return true;
}

/* A script string as a C string (malloc'd into *out).  NIL or "" -> NULL
 * ("not given").  Returns false for an embedded NUL or out of memory
 * (*nomem set). */
static bool cstr(const struct mtls_arg *a, char **out, bool *nomem)
{
    *out = NULL;
    if (a->type != MTLS_ARG_STRING || a->len == 0)
        return true;
    if (memchr(a->s, 0, a->len))
        return false;
    char *p = malloc(a->len + 1);
    if (!p) {
        *nomem = true;
        return false;
    }
    memcpy(p, a->s, a->len);
    p[a->len] = 0;
    *out = p;
    return true;
}

/* A string argument copied onto the stack-sized buffer `buf` (cap bytes).
 * false for an embedded NUL. */
static bool copy_name(const struct mtls_arg *a, char *buf, size_t cap)
{
    if (a->len >= cap || memchr(a->s, 0, a->len))
        return false;
    memcpy(buf, a->s, a->len);
    buf[a->len] = 0;
    return true;
}

static bool is_str_or_nil(const struct mtls_arg *a)
{
    return a->type == MTLS_ARG_STRING || a->type == MTLS_ARG_NIL;
}

/* ------------------------------------------------------------ functions */

/* Build the conf of tls.conf_new, the way Melon's conf_new means it (spec
 * §5.3, melon.md §3.5): only `ca` is trusted (never the system store); a
 * client verifies the chain only unless set_verify_host names the host
 * (corotls's explicit chain-only opt-out); verify without a CA builds and
 * then fails every handshake (the explicit empty-trust call); a server
 * with verify requires a client certificate. */
static corotls_conf *build_conf(bool server, const char *cert, const char *key, const char *ca, const char *ciphers,
                                bool verify)
{
    corotls_conf_builder *b = NULL;
    corotls_conf *conf = NULL;
    if (corotls_conf_builder_new(server ? COROTLS_SERVER : COROTLS_CLIENT, &b) != COROTLS_OK)
        return NULL;
    bool ok = true;
    if (cert && key) {
        ok = corotls_conf_builder_add_identity_file(b, cert, key, NULL) == COROTLS_OK;
    } else if (key) {
        ok = false; /* a key without a certificate, either role */
    } else if (cert) {
        /* A server needs both.  A client certificate without its key can
         * never be presented; Melon loads it all the same, so it must be a
         * readable PEM chain (checked with a scratch builder). */
        corotls_conf_builder *chk = NULL;
        ok = !server && corotls_conf_builder_new(COROTLS_CLIENT, &chk) == COROTLS_OK &&
             corotls_conf_builder_add_ca_file(chk, cert) == COROTLS_OK;
        corotls_conf_builder_free(chk);
    } else if (server) {
        ok = false;
    }
    if (ok && ca)
        ok = corotls_conf_builder_add_ca_file(b, ca) == COROTLS_OK;
    if (ok && ciphers)
        ok = corotls_conf_builder_set_ciphers(b, ciphers) == COROTLS_OK;
    if (ok) {
        int mode = !verify ? COROTLS_VERIFY_NONE : server ? COROTLS_VERIFY_REQUIRE : COROTLS_VERIFY_PEER;
        ok = corotls_conf_builder_set_verify(b, mode) == COROTLS_OK;
    }
    if (ok && !server)
        ok = corotls_conf_builder_set_verify_name(b, false) == COROTLS_OK;
    if (ok && verify && !ca)
        ok = corotls_conf_builder_allow_empty_trust(b) == COROTLS_OK;
    if (ok && corotls_conf_builder_build(b, &conf) != COROTLS_OK)
        conf = NULL;
    corotls_conf_builder_free(b);
    return ok ? conf : NULL;
}

static struct mtls_ret fn_conf_new(struct mtls_state *st, const struct mtls_arg *a)
{
    bool server;
    if (a[0].type == MTLS_ARG_STRING && a[0].len == 6 && memcmp(a[0].s, "server", 6) == 0)
        server = true;
    else if (a[0].type == MTLS_ARG_STRING && a[0].len == 6 && memcmp(a[0].s, "client", 6) == 0)
        server = false;
    else
        return ret_err(M_ARG_ROLE);
    if (!is_str_or_nil(&a[1]))
        return ret_err("Argument 'cert' must be a string or nil.");
    if (!is_str_or_nil(&a[2]))
        return ret_err("Argument 'key' must be a string or nil.");
    if (!is_str_or_nil(&a[3]))
        return ret_err("Argument 'ca' must be a string or nil.");
    if (!is_str_or_nil(&a[4]))
        return ret_err("Argument 'ciphers' must be a string or nil.");
    bool verify;
    if (a[5].type == MTLS_ARG_NIL)
        verify = false;
    else if (a[5].type == MTLS_ARG_BOOL)
        verify = a[5].b != 0;
    else if (a[5].type == MTLS_ARG_INT)
        verify = a[5].i != 0;
    else
        return ret_err(M_ARG_VERIFY);

    if (st->nconfs == st->capconfs) {
        size_t n = st->capconfs ? 2 * st->capconfs : 8;
        struct conf_slot *p = realloc(st->confs, n * sizeof *p);
        if (!p)
            return ret_err(M_NOMEM);
        st->confs = p;
        st->capconfs = n;
    }
    char *s[4] = {NULL, NULL, NULL, NULL};
    bool nomem = false, ok = true;
    for (int i = 0; i < 4 && ok; i++)
        ok = cstr(&a[1 + i], &s[i], &nomem);
    corotls_conf *conf = ok ? build_conf(server, s[0], s[1], s[2], s[3], verify) : NULL;
    for (int i = 0; i < 4; i++)
        free(s[i]);
    if (nomem)
        return ret_err(M_NOMEM);
    if (!conf)
        return ret_kind(MTLS_RET_FALSE); /* bad file, key mismatch, bad cipher list, ... */
    int64_t id = st->next_conf_id++;
    st->confs[st->nconfs].id = id;
    st->confs[st->nconfs].conf = conf;
    st->nconfs++;
    return ret_int(id);
}

static struct mtls_ret fn_conf_free(struct mtls_state *st, const struct mtls_arg *a)
{
    if (a[0].type != MTLS_ARG_INT)
        return ret_err(M_ARG_CONF_FREE);
    for (size_t i = 0; i < st->nconfs; i++) {
        if (st->confs[i].id == a[0].i) {
            /* Connections and pending accepts / connects hold their own
             * reference. */
            corotls_conf_free(st->confs[i].conf);
            st->confs[i] = st->confs[--st->nconfs];
            break;
        }
    }
    return ret_kind(MTLS_RET_NIL);
}

/* host / service of listen and connect: ERR for a wrong type or length. */
static const char *check_host_service(const struct mtls_arg *a)
{
    if (a[0].type != MTLS_ARG_STRING)
        return M_ARG_HOST;
    if (a[0].len > HOST_MAX)
        return M_HOST_LONG;
    if (a[1].type != MTLS_ARG_STRING)
        return M_ARG_SERVICE;
    if (a[1].len > SERVICE_MAX)
        return M_SERVICE_LONG;
    return NULL;
}

static struct mtls_ret fn_listen(struct mtls_state *st, const struct mtls_arg *a)
{
    const char *bad = check_host_service(a);
    if (bad)
        return ret_err(bad);
    char host[HOST_MAX + 1], service[SERVICE_MAX + 1];
    if (!copy_name(&a[0], host, sizeof host) || !copy_name(&a[1], service, sizeof service))
        return ret_kind(MTLS_RET_FALSE);
    int fd = -1;
    if (corotls_loop_listen(st->loop, host, service, NULL, &fd) != COROTLS_OK)
        return ret_kind(MTLS_RET_FALSE);
    if (entry_add(st, fd, K_LISTENER) != 0) {
        corotls_loop_close(st->loop, fd);
        return ret_err(M_NOMEM);
    }
    return ret_int(fd);
}

static struct mtls_ret fn_accept(struct mtls_state *st, struct mtls_ctx *c, const struct mtls_arg *a)
{
    int lfd, ms;
    if (!arg_fd(&a[0], &lfd))
        return ret_err(M_ARG_FD);
    if (a[1].type != MTLS_ARG_INT)
        return ret_err(M_ARG_CONF);
    if (!arg_timeout(&a[2], &ms))
        return ret_err(M_ARG_TIMEOUT);
    struct fd_entry *e = entry_of(st, lfd);
    if (!e)
        return ret_kind(MTLS_RET_FALSE);
    if (e->kind != K_LISTENER)
        return ret_msg(M_NOT_LISTENER);
    corotls_conf *conf = conf_of(st, a[1].i);
    if (!conf)
        return ret_msg(M_BAD_CONF);
    if (e->pending)
        return ret_msg(M_ACCEPTING);
    if (e->n_accepted > 0) {
        int fd = e->accepted[0];
        memmove(e->accepted, e->accepted + 1, --e->n_accepted * sizeof *e->accepted);
        return ret_int(fd);
    }
    struct mtls_req *q = req_new(st, OP_ACCEPT, lfd, e);
    if (!q)
        return ret_err(M_NOMEM);
    int nfd = -1;
    corotls_result r = corotls_loop_accept(st->loop, lfd, conf, ms, on_done, q, &nfd);
    return started(st, c, q, e, r, nfd, NULL, 0);
}

static struct mtls_ret fn_connect(struct mtls_state *st, struct mtls_ctx *c, const struct mtls_arg *a)
{
    const char *bad = check_host_service(a);
    if (bad)
        return ret_err(bad);
    int ms;
    if (a[2].type != MTLS_ARG_INT)
        return ret_err(M_ARG_CONF);
    if (!arg_timeout(&a[3], &ms))
        return ret_err(M_ARG_TIMEOUT);
    corotls_conf *conf = conf_of(st, a[2].i);
    if (!conf)
        return ret_err(M_BAD_CONF); /* unlike accept, the script stops */
    char host[HOST_MAX + 1], service[SERVICE_MAX + 1];
    if (!copy_name(&a[0], host, sizeof host) || !copy_name(&a[1], service, sizeof service))
        return ret_kind(MTLS_RET_FALSE);
    struct mtls_req *q = req_new(st, OP_CONNECT, -1, NULL);
    if (!q)
        return ret_err(M_NOMEM);
    int fd = -1;
    corotls_result r = corotls_loop_connect(st->loop, host, service, conf, ms, on_done, q, &fd);
    q->fd = fd; /* PENDING: the fd being connected (-1 while a name resolves) */
    return started(st, c, q, NULL, r, fd, NULL, 0);
}

static struct mtls_ret fn_set_name(struct mtls_state *st, const struct mtls_arg *a, bool sni)
{
    int fd;
    if (!arg_fd(&a[0], &fd))
        return ret_err(M_ARG_FD);
    if (a[1].type != MTLS_ARG_STRING)
        return ret_err(M_ARG_HOSTNAME);
    struct fd_entry *e = entry_of(st, fd);
    char name[NAME_MAX_LEN + 1];
    if (!e || e->kind != K_CONN || !copy_name(&a[1], name, sizeof name))
        return ret_kind(MTLS_RET_FALSE);
    if (!sni && name[0] == 0) {
        /* Melon: an empty name clears the host check.  Nothing to clear
         * while no name was given (the conf checks the chain only); a
         * name already given cannot be taken back: false. */
        return ret_kind(e->named ? MTLS_RET_FALSE : MTLS_RET_TRUE);
    }
    corotls_result r =
        sni ? corotls_loop_set_sni(st->loop, fd, name) : corotls_loop_set_verify_host(st->loop, fd, name);
    if (r == COROTLS_OK && !sni)
        e->named = true;
    return ret_kind(r == COROTLS_OK ? MTLS_RET_TRUE : MTLS_RET_FALSE);
}

/* fd of handshake / send / recv: the connection's entry, or the answer. */
static struct fd_entry *conn_for_op(struct mtls_state *st, int fd, const char *listener_msg, struct mtls_ret *out)
{
    struct fd_entry *e = entry_of(st, fd);
    if (!e) {
        *out = ret_kind(MTLS_RET_FALSE);
        return NULL;
    }
    if (e->kind == K_LISTENER) {
        *out = ret_msg(listener_msg);
        return NULL;
    }
    if (e->pending) {
        *out = ret_msg(M_BUSY);
        return NULL;
    }
    return e;
}

static struct mtls_ret fn_handshake(struct mtls_state *st, struct mtls_ctx *c, const struct mtls_arg *a)
{
    int fd, ms;
    struct mtls_ret out;
    if (!arg_fd(&a[0], &fd))
        return ret_err(M_ARG_FD);
    if (!arg_timeout(&a[1], &ms))
        return ret_err(M_ARG_TIMEOUT);
    struct fd_entry *e = conn_for_op(st, fd, M_HS_LISTENER, &out);
    if (!e)
        return out;
    struct mtls_req *q = req_new(st, OP_HANDSHAKE, fd, e);
    if (!q)
        return ret_err(M_NOMEM);
    corotls_result r = corotls_loop_handshake(st->loop, fd, ms, on_done, q); /* OK at once when done */
    return started(st, c, q, e, r, fd, NULL, 0);
}

static struct mtls_ret fn_send(struct mtls_state *st, struct mtls_ctx *c, const struct mtls_arg *a)
{
    int fd, ms;
    struct mtls_ret out;
    if (!arg_fd(&a[0], &fd))
        return ret_err(M_ARG_FD);
    if (a[1].type != MTLS_ARG_STRING)
        return ret_err(M_ARG_DATA);
    if (!arg_timeout(&a[2], &ms))
        return ret_err(M_ARG_TIMEOUT);
    struct fd_entry *e = conn_for_op(st, fd, M_SEND_LISTENER, &out);
    if (!e)
        return out;
    if (a[1].len == 0)
        return ret_kind(MTLS_RET_TRUE); /* no I/O: an empty send would drive the handshake */
    struct mtls_req *q = req_new(st, OP_SEND, fd, e);
    if (!q)
        return ret_err(M_NOMEM);
    /* corotls copies what the socket does not take now. */
    corotls_result r = corotls_loop_send(st->loop, fd, a[1].s, a[1].len, ms, on_done, q);
    return started(st, c, q, e, r, fd, NULL, 0);
}

static struct mtls_ret fn_recv(struct mtls_state *st, struct mtls_ctx *c, const struct mtls_arg *a)
{
    int fd, ms;
    struct mtls_ret out;
    if (!arg_fd(&a[0], &fd))
        return ret_err(M_ARG_FD);
    if (!arg_timeout(&a[1], &ms))
        return ret_err(M_ARG_TIMEOUT);
    struct fd_entry *e = conn_for_op(st, fd, M_RECV_LISTENER, &out);
    if (!e)
        return out;
    if (e->stash) {
        /* Owed by a recv whose coroutine died after it completed. */
        st->hold = e->stash;
        out = ret_str(e->stash, e->stash_len);
        e->stash = NULL;
        e->stash_len = 0;
        return out;
    }
    struct mtls_req *q = req_new(st, OP_RECV, fd, e);
    if (!q)
        return ret_err(M_NOMEM);
    const uint8_t *data = NULL;
    size_t len = 0;
    corotls_result r = corotls_loop_recv(st->loop, fd, ms, on_done, q, &data, &len);
    return started(st, c, q, e, r, fd, data, len);
}

static struct mtls_ret fn_close(struct mtls_state *st, const struct mtls_arg *a)
{
    int fd;
    if (!arg_fd(&a[0], &fd))
        return ret_err(M_ARG_FD);
    struct fd_entry *e = entry_of(st, fd);
    if (e) {
        /* One non-blocking close_notify attempt, then close; a coroutine
         * parked on it is resumed with false by the cancelled callback. */
        for (size_t i = 0; i < e->n_accepted; i++) {
            corotls_loop_close(st->loop, e->accepted[i]);
            entry_remove(st, e->accepted[i]);
        }
        corotls_loop_close(st->loop, fd);
        entry_remove(st, fd);
    }
    return ret_kind(MTLS_RET_NIL);
}

struct mtls_ret mtls_call(struct mtls_state *st, struct mtls_ctx *c, int fn, const struct mtls_arg *args)
{
    free(st->hold);
    st->hold = NULL;
    switch (fn) {
    case MTLS_CONF_NEW:
        return fn_conf_new(st, args);
    case MTLS_CONF_FREE:
        return fn_conf_free(st, args);
    case MTLS_LISTEN:
        return fn_listen(st, args);
    case MTLS_ACCEPT:
        return fn_accept(st, c, args);
    case MTLS_CONNECT:
        return fn_connect(st, c, args);
    case MTLS_SET_SNI:
        return fn_set_name(st, args, true);
    case MTLS_SET_VERIFY_HOST:
        return fn_set_name(st, args, false);
    case MTLS_HANDSHAKE:
        return fn_handshake(st, c, args);
    case MTLS_SEND:
        return fn_send(st, c, args);
    case MTLS_RECV:
        return fn_recv(st, c, args);
    case MTLS_CLOSE:
        return fn_close(st, args);
    default:
        return ret_err("Not implemented.");
    }
}
