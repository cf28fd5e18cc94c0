/*
 * alloc_fail: OpenSSL's Nth allocation fails, for every N, across one
 * whole use of the library: building a server conf (builder: identity
 * from files, ALPN) and a client conf (corotls_conf_new, verifying), a
 * full client and server handshake in memory (sessions, SNI), a write and
 * a read each way, and shutdown.
 *
 * OpenSSL's allocator hooks (CRYPTO_set_mem_functions, installed first in
 * main, before anything allocates) count the allocations and fail the Nth.
 * Every run must end cleanly: each call returns OK, a wait, or a clean
 * error (COROTLS_ERR_NOMEM, or ERR_TLS / ERR_ARG / ERR_VERIFY where
 * OpenSSL reports the failure as such), never ERR_INTERNAL, and no crash;
 * every object made can still be freed; and the blocks OpenSSL holds
 * afterwards are those it held after the first (warm-up) run: nothing
 * leaked (LeakSanitizer checks the same at exit under make check-asan).
 *
 * Rust allocations cannot be failed this way (the Rust global allocator
 * aborts on failure): only OpenSSL's are.  ALLOC_FAIL_STEP=k tries every
 * kth N only (default 1: every N).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "corotls.h"
#include "harness.h"

/* ------------------------------------------------------------ the hooks */

static long count;   /* allocations since the run started */
static long fail_at; /* 0: none fails */
static int failed;   /* the Nth was failed */
static long live;    /* blocks OpenSSL holds */
static long seq;     /* allocations ever */

/* Every block OpenSSL holds is on this list, with where it was made, so
 * that a leak can be named. */
struct block {
    struct block *prev, *next;
    const char *file;
    long line, seq;
};
static struct block blocks = {&blocks, &blocks, "", 0, 0};
#define HDR sizeof(struct block) /* 32: keeps the alignment malloc gives */

/* Blocks of OpenSSL's per-thread error queue are not counted: the queue
 * keeps the text buffers of its 16 slots for reuse, so it grows until
 * every slot has one, and frees them with the thread. */
static int counted(const char *file)
{
    return file == NULL || strstr(file, "crypto/err/") == NULL;
}

static void link_block(struct block *b, const char *file, int line)
{
    b->file = file;
    b->line = line;
    b->seq = ++seq;
    b->next = blocks.next;
    b->prev = &blocks;
    blocks.next->prev = b;
    blocks.next = b;
    live += counted(file);
}

static void unlink_block(struct block *b)
{
    b->prev->next = b->next;
    b->next->prev = b->prev;
    live -= counted(b->file);
}

static void *t_malloc(size_t n, const char *file, int line)
{
    if (++count == fail_at) {
        failed = 1;
        return NULL;
    }
    struct block *b = malloc(n + HDR);
    if (b == NULL)
        return NULL;
    link_block(b, file, line);
    return b + 1;
}

static void t_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    if (p == NULL)
        return;
    struct block *b = (struct block *)p - 1;
    unlink_block(b);
    free(b);
}

/* Name the blocks made since allocation number `since` that are still held. */
static void name_leaks(long since)
{
    int shown = 0;
    for (struct block *b = blocks.next; b != &blocks && shown < 4; b = b->next)
        if (b->seq > since && counted(b->file)) {
            harness_diag("  held: allocated at %s:%ld", b->file ? b->file : "?", b->line);
            shown++;
        }
}

static void *t_realloc(void *p, size_t n, const char *file, int line)
{
    if (p == NULL)
        return t_malloc(n, file, line);
    if (n == 0) {
        t_free(p, file, line);
        return NULL;
    }
    if (++count == fail_at) {
        failed = 1;
        return NULL;
    }
    struct block *b = (struct block *)p - 1;
    unlink_block(b);
    struct block *q = realloc(b, n + HDR);
    if (q == NULL) {
        link_block(b, file, line);
        return NULL;
    }
    link_block(q, file, line);
    return q + 1;
}

/* ------------------------------------------------------------ one use */

struct outcome {
    int internal;     /* a call returned ERR_INTERNAL */
    int unexpected;   /* a result outside the clean set */
    corotls_result first_error; /* the first error (OK if none) */
    int completed;    /* handshake, write, read and shutdown all worked */
};

static char certdir[512];

static void note(struct outcome *o, corotls_result r)
{
    if (r == COROTLS_ERR_INTERNAL)
        o->internal = 1;
    switch (r) {
    case COROTLS_OK:
    case COROTLS_WANT_READ:
    case COROTLS_WANT_WRITE:
    case COROTLS_CLOSED:
    case COROTLS_EOF:
        return;
    case COROTLS_ERR_NOMEM:
    case COROTLS_ERR_TLS:
    case COROTLS_ERR_ARG:
    case COROTLS_ERR_VERIFY:
        break;
    default:
        o->unexpected = 1;
        harness_diag("N=%ld: unexpected %s: %s", fail_at, corotls_result_name(r), corotls_last_error());
        break;
    }
    if (o->first_error == COROTLS_OK)
        o->first_error = r;
}

/* Move ciphertext between the sessions until neither has any. */
static void pump(struct outcome *o, corotls_session *a, corotls_session *b)
{
    uint8_t buf[16384];
    for (int i = 0; i < 8; i++) {
        size_t n = corotls_session_out_read(a, buf, sizeof buf);
        size_t m = 0;
        if (n > 0)
            note(o, corotls_session_feed(b, buf, n, NULL));
        m = corotls_session_out_read(b, buf, sizeof buf);
        if (m > 0)
            note(o, corotls_session_feed(a, buf, m, NULL));
        if (n == 0 && m == 0)
            return;
    }
}

static void path(char *buf, size_t cap, const char *f)
{
    snprintf(buf, cap, "%s/%s", certdir, f);
}

static struct outcome use_once(void)
{
    struct outcome o = {0, 0, COROTLS_OK, 0};
    char crt[600], key[600], ca[600];
    path(crt, sizeof crt, "leaf.crt");
    path(key, sizeof key, "leaf.key");
    path(ca, sizeof ca, "ca.crt");
    static const uint8_t alpn[] = "\x08http/1.1";
    corotls_conf_builder *b = NULL;
    corotls_conf *sconf = NULL, *cconf = NULL;
    corotls_session *c = NULL, *s = NULL;
    corotls_result r;

    note(&o, r = corotls_conf_builder_new(COROTLS_SERVER, &b));
    if (r == COROTLS_OK) {
        note(&o, corotls_conf_builder_add_identity_file(b, crt, key, NULL));
        note(&o, corotls_conf_builder_set_alpn_wire(b, alpn, sizeof alpn - 1));
        note(&o, corotls_conf_builder_build(b, &sconf));
    }
    note(&o, corotls_conf_new(COROTLS_CLIENT, NULL, NULL, ca, NULL, true, &cconf));
    if (sconf != NULL && cconf != NULL) {
        note(&o, corotls_session_new(cconf, &c));
        note(&o, corotls_session_new(sconf, &s));
    }
    if (c != NULL && s != NULL) {
        note(&o, corotls_session_set_sni(c, "localhost"));
        note(&o, corotls_session_set_alpn_wire(c, alpn, sizeof alpn - 1));
        int done = 0;
        for (int i = 0; i < 12 && o.first_error == COROTLS_OK && done != 2; i++) {
            corotls_result rc = corotls_session_handshake(c), rs = corotls_session_handshake(s);
            note(&o, rc);
            note(&o, rs);
            done = (rc == COROTLS_OK) + (rs == COROTLS_OK);
            pump(&o, c, s);
        }
        uint8_t buf[64];
        size_t n = 0;
        if (done == 2 && o.first_error == COROTLS_OK) {
            note(&o, corotls_session_write(c, (const uint8_t *)"ping", 4));
            pump(&o, c, s);
            note(&o, r = corotls_session_read(s, buf, sizeof buf, &n));
            if (r == COROTLS_OK && n == 4) {
                note(&o, corotls_session_write(s, buf, n));
                pump(&o, s, c);
                note(&o, r = corotls_session_read(c, buf, sizeof buf, &n));
                if (r == COROTLS_OK && n == 4 && !memcmp(buf, "ping", 4)) {
                    note(&o, corotls_session_shutdown(c));
                    note(&o, corotls_session_shutdown(s));
                    pump(&o, c, s);
                    o.completed = o.first_error == COROTLS_OK && corotls_session_peer_closed(s) &&
                                  corotls_session_peer_closed(c);
                }
            }
        }
        /* The accessors work whatever happened. */
        (void)corotls_session_version(c);
        (void)corotls_session_error(s);
    }
    corotls_session_free(c);
    corotls_session_free(s);
    corotls_conf_free(cconf);
    corotls_conf_free(sconf);
    corotls_conf_builder_free(b);
    return o;
}

TEST(every_openssl_allocation_fails_once)
{
    /* Warm-up: OpenSSL's process-wide caches (providers, algorithms, error
     * strings) fill during the first use; what it holds then is the
     * baseline every later run must come back to. */
    fail_at = 0;
    count = 0;
    struct outcome o = use_once();
    REQUIRE(o.completed && o.first_error == COROTLS_OK, "a run without failures completes (%s)",
            corotls_result_name(o.first_error));
    count = 0;
    o = use_once();
    long total = count, baseline = live;
    REQUIRE(o.completed, "a second run completes too");
    o = use_once();
    CHECK(live == baseline, "a third run leaves OpenSSL holding what it held (%ld blocks, then %ld)", baseline, live);
    baseline = live;
    harness_diag("one use makes %ld OpenSSL allocations; failing each in turn", total);

    const char *st = getenv("ALLOC_FAIL_STEP");
    long step = st ? atol(st) : 1;
    if (step < 1)
        step = 1;
    long runs = 0, stuck = 0, nomem = 0, other = 0, survived = 0, internal = 0, unexpected = 0, leaky = 0, not_hit = 0;
    for (long n = 1; n <= total; n += step) {
        fail_at = n;
        failed = 0;
        count = 0;
        long since = seq;
        o = use_once();
        fail_at = 0;
        runs++;
        if (!failed)
            not_hit++;
        if (o.internal) {
            internal++;
            harness_diag("N=%ld: ERR_INTERNAL: %s", n, corotls_last_error());
        }
        unexpected += o.unexpected;
        if (o.first_error == COROTLS_ERR_NOMEM)
            nomem++;
        else if (o.first_error != COROTLS_OK)
            other++;
        else if (o.completed)
            survived++;
        else {
            stuck++;
            if (stuck <= 3)
                harness_diag("N=%ld: no error, yet the use did not complete", n);
        }
        if (live != baseline) {
            if (leaky < 5) {
                harness_diag("N=%ld: OpenSSL holds %ld blocks, %ld before (%s: %s)", n, live, baseline,
                             corotls_result_name(o.first_error), corotls_last_error());
                name_leaks(since);
            }
            leaky++;
            baseline = live;
        }
    }
    harness_diag("%ld runs: %ld ended in ERR_NOMEM, %ld in another clean error, %ld completed or recovered "
                 "(OpenSSL absorbed the failure), %ld did not reach N",
                 runs, nomem, other, survived, not_hit);
    CHECK(stuck == 0, "no run stops without an error (%ld did)", stuck);
    CHECK(internal == 0, "no run ends in ERR_INTERNAL (%ld did)", internal);
    CHECK(unexpected == 0, "every result is OK, a wait, or a clean error (%ld were not)", unexpected);
    CHECK(leaky == 0, "no run leaves a block behind (%ld did)", leaky);
    CHECK(nomem > 0, "failed allocations surface as COROTLS_ERR_NOMEM (%ld runs)", nomem);
}

int main(void)
{
    /* Before anything allocates through OpenSSL. */
    if (!CRYPTO_set_mem_functions(t_malloc, t_realloc, t_free)) {
        printf("FAIL - CRYPTO_set_mem_functions: OpenSSL allocated before main\n0 passed, 1 failed\n");
        return 1;
    }
    const char *d = getenv("COROTLS_CERTDIR");
    snprintf(certdir, sizeof certdir, "%s", d ? d : "target/certs");
    return harness_run_all();
}
