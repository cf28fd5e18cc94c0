/*
 * tls_core.h -- the binding core of Melang's `tls` module over the corotls
 * native loop (spec melang-module.md), independent of Melang.
 *
 * The core holds everything the module decides: the per-lang connection
 * table (fd -> listener / connection, the request in flight), the conf
 * table, request records, the busy rule, every argument check and message,
 * the mapping of corotls results to script values, cancellation when a
 * coroutine dies while it waits, and teardown.  It talks to its host (the
 * Melang glue in mln_lang_tls.c, or the test fixture in c_tests/melang/)
 * through struct mtls_host only: lock, suspend, resume with a value,
 * watch the loop fd.
 *
 * Locking: every mtls_* call except mtls_dispatch and mtls_state_destroy's
 * own callbacks runs with the host's lock held (Melang: lang->lock, held
 * around every internal function, init and ctx-resource free functions).
 * mtls_dispatch runs without it; the corotls callbacks it runs take it,
 * one at a time.  The core has no lock of its own besides the registry's.
 */
#ifndef COROTLS_MELANG_TLS_CORE_H
#define COROTLS_MELANG_TLS_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "corotls.h"

/* The module's functions, in registration order (spec §5.1). */
enum mtls_fn {
    MTLS_CONF_NEW,
    MTLS_CONF_FREE,
    MTLS_LISTEN,
    MTLS_ACCEPT,
    MTLS_CONNECT,
    MTLS_SET_SNI,
    MTLS_SET_VERIFY_HOST,
    MTLS_HANDSHAKE,
    MTLS_SEND,
    MTLS_RECV,
    MTLS_CLOSE,
    MTLS_NFN
};

#define MTLS_MAX_ARGS 6

/* A function's script name and parameter names, in order. */
struct mtls_fn_desc {
    const char *name;
    int nargs;
    const char *args[MTLS_MAX_ARGS];
};
extern const struct mtls_fn_desc mtls_fns[MTLS_NFN];

/* One argument as the script passed it (a missing argument is NIL).
 * Strings are not NUL-terminated and are valid only during the call. */
enum mtls_arg_type { MTLS_ARG_NIL, MTLS_ARG_INT, MTLS_ARG_BOOL, MTLS_ARG_STRING, MTLS_ARG_OTHER };
struct mtls_arg {
    int type;
    int64_t i;        /* INT */
    int b;            /* BOOL */
    const uint8_t *s; /* STRING */
    size_t len;
};

/*
 * What a call gives the script:
 *   NIL / TRUE / FALSE / INT (i) / STRING (s, len: copy it at once, it is
 *     valid only until the next mtls_* call);
 *   FALSE with msg != NULL: print msg (mln_lang_errmsg), then return false;
 *   ERROR: print msg and stop the coroutine (the process function returns
 *     NULL);
 *   SUSPENDED: the core called host->suspend for this coroutine; return the
 *     placeholder `false` (it stands if the resume cannot build a value).
 * A resume (host->resume) carries NIL, TRUE, FALSE, INT or STRING.
 */
enum mtls_ret_kind {
    MTLS_RET_NIL,
    MTLS_RET_TRUE,
    MTLS_RET_FALSE,
    MTLS_RET_INT,
    MTLS_RET_STRING,
    MTLS_RET_SUSPENDED,
    MTLS_RET_ERROR
};
struct mtls_ret {
    int kind;
    int64_t i;
    const uint8_t *s;
    size_t len;
    const char *msg;
};

struct mtls_state; /* one per lang: the loop, the tables */
struct mtls_ctx;   /* one per coroutine: the requests it waits on */

/* What the core needs from its host.  `host` is passed back to each. */
struct mtls_host {
    void *host;
    /* Take / release the lang lock (non-recursive): only the corotls
     * callbacks call these, from mtls_dispatch. */
    void (*lock)(void *host);
    void (*unlock)(void *host);
    /* Park coroutine `hctx` (inside a call, lock held). */
    void (*suspend)(void *host, void *hctx);
    /* Resume parked coroutine `hctx` with `v`, built in that coroutine
     * (lock held, on the thread running mtls_dispatch).  v->s is valid only
     * during the call. */
    void (*resume)(void *host, void *hctx, const struct mtls_ret *v);
    /* Watch the loop's pollable fd: call mtls_dispatch(st) whenever it is
     * readable, persistently, without ever making it blocking.  0 or -1. */
    int (*watch)(void *host, int fd, struct mtls_state *st);
    /* Stop watching it (teardown). */
    void (*unwatch)(void *host, int fd);
};

/* The state of lang `key`, created on first use with a new corotls loop
 * (server handshake deadline off: scripts pass their own timeouts) whose
 * fd is given to host->watch.  Lock held.  NULL on failure, with a reason
 * in *err.  Later calls with the same key return the same state (`host`
 * is then ignored). */
struct mtls_state *mtls_state_get(void *key, const struct mtls_host *host, const char **err);
/* The state of `key`, or NULL. */
struct mtls_state *mtls_state_find(void *key);
/* Free the state of `key` (idempotent: nothing if none): unwatch the loop
 * fd, free the loop (every fd it owns is closed; pending requests end),
 * free the confs.  Lock held.  Never calls back into the host but for
 * unwatch. */
void mtls_state_destroy(void *key);
/* The loop fd and the loop of a state (tests). */
int mtls_state_loop_fd(const struct mtls_state *st);
corotls_loop *mtls_state_loop(const struct mtls_state *st);

/* A coroutine's record (lock held); NULL when out of memory.  The host
 * keeps it with the coroutine and calls mtls_ctx_gone when the coroutine
 * is freed (ends, is killed, or its lang is freed). */
struct mtls_ctx *mtls_ctx_new(struct mtls_state *st, void *hctx);
/* The coroutine is gone (lock held): it will never be resumed.  Each
 * operation it waited on is cancelled in corotls (corotls_loop_cancel): the
 * fd stays open, usable at once by other coroutines, and nothing is lost.
 * A connect in progress is closed.  Frees the record. */
void mtls_ctx_gone(struct mtls_ctx *c);

/* The loop fd is readable (lock NOT held): run the loop once. */
void mtls_dispatch(struct mtls_state *st);

/* Call script function `fn` with mtls_fns[fn].nargs arguments from
 * coroutine `c` (lock held). */
struct mtls_ret mtls_call(struct mtls_state *st, struct mtls_ctx *c, int fn, const struct mtls_arg *args);

#endif
