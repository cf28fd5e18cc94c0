/*
 * host.h -- a fixture host for the Melang extension's binding core
 * (adapters/melang/tls_core.c): what Melang gives the module, without
 * Melang.
 *
 * - A lang (struct fx_lang) has a lock like lang->lock: a plain mutex,
 *   here of the error-checking kind, so that taking it twice, or
 *   releasing it unheld, is a test failure (Melang would deadlock).
 * - Coroutines (struct fx_co) are parked by the core's suspend and
 *   resumed with a value; the fixture checks that a resume happens only
 *   for a parked coroutine, exactly once, with the lock held, and only on
 *   a thread inside mtls_dispatch (Melang's rule: resume only from the
 *   handler of the loop fd).
 * - The loop fd is watched like Melon's event loop does: fx_pump polls it
 *   and calls mtls_dispatch without the lock.
 * - Script calls (fx_call) run with the lock held, like Melang's internal
 *   functions; a killed coroutine (fx_kill) runs mtls_ctx_gone with the
 *   lock held, like the ctx-resource free function.
 */
#ifndef COROTLS_C_TESTS_MELANG_HOST_H
#define COROTLS_C_TESTS_MELANG_HOST_H

#include <pthread.h>
#include <stdint.h>

#include "harness.h"
#include "tls_core.h"

struct fx_lang {
    pthread_mutex_t lock;
    struct mtls_state *st;
    int watched_fd;  /* the fd given to watch (-1: none) */
    int watch_calls, unwatch_calls;
    int bad_resumes; /* resumes that broke a rule (counted, reported) */
    int lock_waiters; /* threads blocked in the host lock (stash tests) */
};

struct fx_co {
    struct fx_lang *lang;
    struct mtls_ctx *rec;
    int parked;  /* suspended, waiting for its resume */
    int resumes; /* resumes received */
    /* The last value: a call's inline answer or the resume's. */
    int kind;
    int64_t i;
    uint8_t *s; /* malloc'd copy */
    size_t len;
    char msg[160]; /* the message printed by the last call ("" if none) */
};

/* Script arguments. */
struct mtls_arg A_NIL(void);
struct mtls_arg A_INT(int64_t i);
struct mtls_arg A_BOOL(int b);
struct mtls_arg A_STR(const char *s);
struct mtls_arg A_STRN(const void *s, size_t n);
struct mtls_arg A_OTHER(void);

/* A lang with its state (the first Import). 0 or -1. */
int fx_lang_init(struct fx_lang *l);
/* destroy(lang): mtls_state_destroy with the lock held. */
void fx_lang_destroy(struct fx_lang *l);

/* A coroutine that imported tls. */
void fx_co_init(struct fx_co *c, struct fx_lang *l);
/* The coroutine ends or is killed (its ctx resource is freed). */
void fx_kill(struct fx_co *c);

/* Call tls.<fn>(args...) in coroutine c.  Returns the kind (MTLS_RET_*);
 * the value is in c (kind, i, s/len), a printed message in c->msg.  A
 * SUSPENDED call leaves c->parked set until the resume. */
int fx_call(struct fx_co *c, int fn, const struct mtls_arg *args);

/* Run the loop for up to ms (poll its fd, dispatch without the lock). */
void fx_pump(struct fx_lang *l, int ms);
/* Pump until c is no longer parked; 1, or 0 after ms. */
int fx_wait(struct fx_co *c, int ms);

/* Shorthands: call, and if parked wait (up to 10 s) for the resume. */
int fx_run(struct fx_co *c, int fn, const struct mtls_arg *args);

/* Helpers over fx_run for the common calls: the value kind; *out_fd /
 * the int result where there is one (-1 otherwise). */
int64_t fx_conf(struct fx_co *c, const char *role, const char *cert, const char *key, const char *ca, int verify);
int fx_listen(struct fx_co *c, int *port); /* 127.0.0.1, any port; the fd or -1 */
/* connect + accept + both handshakes (client conf cconf, server conf sconf). */
int fx_pair(struct fx_co *cl, struct fx_co *sv, int lfd, int port, int64_t cconf, int64_t sconf, int *cfd, int *sfd);

/* c's value is a string equal to s. */
int fx_is_str(const struct fx_co *c, const char *s);

#define FX_ARGS(...) ((const struct mtls_arg[]){__VA_ARGS__})

#endif
