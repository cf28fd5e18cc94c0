/*
 * corotls: the TLS path of the Melon face. Re-expresses the 12 TLS scenarios
 * of Melon's connection test (spec melon.md §6.1) in our own code, over
 * real sockets, with SSL objects the test creates and attaches itself
 * (tls_conf NULL) where the spec says so; then the conf_new rules of §3.5.
 * (One test program over 600 lines on purpose: it follows its spec
 * section scenario by scenario over shared fixtures.)
 */
#include "melon_util.h"

#define P(name) printf("# %s\n", name)

static SSL_CTX *srv_ctx, *cli_ctx;

/* A connected, attached pair over a socketpair; both handshakes done. */
static int attached_pair(mln_tcp_conn_t *s, mln_tcp_conn_t *c, int sv[2])
{
    mu_pair(sv, 1);
    mu_attach(s, sv[0], srv_ctx, 1);
    mu_attach(c, sv[1], cli_ctx, 0);
    return mu_handshake_pair(c, s, 256, NULL);
}

static void close_pair(mln_tcp_conn_t *s, mln_tcp_conn_t *c, int sv[2])
{
    mln_tcp_conn_destroy(s);
    mln_tcp_conn_destroy(c);
    close(sv[0]);
    close(sv[1]);
}

/* ---- 1: blocking handshake across two threads ------------------------- */

struct hs_arg { mln_tcp_conn_t *c; int r; };

static void *hs_thread(void *p)
{
    struct hs_arg *a = p;
    a->r = mln_tcp_conn_tls_handshake(a->c);
    return NULL;
}

static void t_handshake_blocking(void)
{
    mln_tcp_conn_t s, c;
    int sv[2];
    pthread_t th;
    P("tls 1 handshake_blocking");
    mu_pair(sv, 0);
    mu_attach(&s, sv[0], srv_ctx, 1);
    mu_attach(&c, sv[1], cli_ctx, 0);
    check(s.tls_conf == NULL && s.nonblock == 0, "attached SSL, tls_conf NULL, blocking fd");
    struct hs_arg a = {&s, 0};
    pthread_create(&th, NULL, hs_thread, &a);
    int rc = mln_tcp_conn_tls_handshake(&c);
    pthread_join(th, NULL);
    check(rc == M_C_FINISH && a.r == M_C_FINISH && c.tls_done && s.tls_done,
          "one handshake call per side -> FINISH/FINISH (%d/%d), tls_done set", rc, a.r);
    check(mln_tcp_conn_tls_handshake(&c) == M_C_FINISH && !c.tls_want_r && !c.tls_want_w,
          "handshake once done -> FINISH at once, flags clear");
    close_pair(&s, &c, sv);
}

/* ---- 2: non-blocking handshake ----------------------------------------- */

static void t_handshake_nonblock(void)
{
    mln_tcp_conn_t s, c;
    int sv[2], notyet = 0, wants_ok = 1;
    P("tls 2 handshake_nonblock");
    mu_pair(sv, 1);
    mu_attach(&s, sv[0], srv_ctx, 1);
    mu_attach(&c, sv[1], cli_ctx, 0);
    int rc = M_C_NOTYET, rs = M_C_NOTYET, rounds = 0, bad = 0;
    for (; rounds < 128 && !(rc == M_C_FINISH && rs == M_C_FINISH); rounds++) {
        if (rc != M_C_FINISH) {
            rc = mln_tcp_conn_tls_handshake(&c);
            if (rc == M_C_NOTYET) { notyet++; wants_ok &= c.tls_want_r || c.tls_want_w; }
        }
        if (rs != M_C_FINISH) {
            rs = mln_tcp_conn_tls_handshake(&s);
            if (rs == M_C_NOTYET) { notyet++; wants_ok &= s.tls_want_r || s.tls_want_w; }
        }
        bad += rc == M_C_ERROR || rs == M_C_ERROR || rc == M_C_CLOSED || rs == M_C_CLOSED;
    }
    check(bad == 0 && rc == M_C_FINISH && rs == M_C_FINISH && c.tls_done && s.tls_done,
          "both done in %d rounds, never ERROR", rounds);
    check(notyet > 0 && wants_ok, "NOTYET seen (%d), each with a want flag", notyet);
    close_pair(&s, &c, sv);
}

/* ---- 3: partial record, no spin ---------------------------------------- */

static void t_partial_record(void)
{
    mln_tcp_conn_t s;
    int sv[2];
    P("tls 3 handshake_partial_record_no_spin");
    mu_pair(sv, 1);
    mu_attach(&s, sv[0], srv_ctx, 1);
    /* A TLS handshake record header announcing 512 bytes, cut after 4 bytes. */
    static const unsigned char hdr[4] = {0x16, 0x03, 0x01, 0x02};
    BIO_write(SSL_get_rbio(s.ssl), hdr, sizeof(hdr));
    double t0 = mu_now();
    int r = mln_tcp_conn_tls_handshake(&s);
    double dt = mu_now() - t0;
    check(r == M_C_NOTYET && (s.tls_want_r || s.tls_want_w), "-> NOTYET with a want flag (r=%d want_r=%d)", r,
          (int)s.tls_want_r);
    check(dt < (mu_light ? 5.0 : 0.5), "returned in %.1f ms (limit %d ms)", dt * 1000, mu_light ? 5000 : 500);
    mln_tcp_conn_destroy(&s);
    close(sv[0]);
    close(sv[1]);
}

/* ---- 4: conf validation ----------------------------------------------- */

static void t_conf_validation(void)
{
    mln_tcp_conn_t s, c, uninit;
    int sv[2];
    unsigned char snap[sizeof(uninit)];
    P("tls 4 conf_validation");
    mln_string_t *cert = mu_str(harness_cert("leaf.crt")), *key = mu_str(harness_cert("leaf.key"));
    mln_string_t empty = mln_string("");

    errno = 0;
    check(mln_tcp_tls_conf_new(99, cert, key, NULL, NULL, M_TLS_VDEFAULT, 0) == NULL && errno == EINVAL,
          "role 99 -> NULL, EINVAL");
    errno = 0;
    check(mln_tcp_tls_conf_new(M_TLS_SERVER, NULL, NULL, NULL, NULL, M_TLS_VDEFAULT, 0) == NULL && errno == EINVAL,
          "server with NULL cert/key -> NULL, EINVAL");
    errno = 0;
    check(mln_tcp_tls_conf_new(M_TLS_SERVER, cert, &empty, NULL, NULL, M_TLS_VDEFAULT, 0) == NULL && errno == EINVAL,
          "server with a zero-length key -> NULL, EINVAL");
    errno = 0;
    check(mln_tcp_tls_conf_new(M_TLS_SERVER, cert, NULL, NULL, NULL, 0, 0) == NULL && errno == EINVAL,
          "server with cert but NULL key -> NULL, EINVAL");
    const unsigned bad_versions[] = {0x100, 0x1, 0x2, 0x10, 0xD};
    for (size_t i = 0; i < sizeof(bad_versions) / sizeof(bad_versions[0]); i++) {
        errno = 0;
        check(mln_tcp_tls_conf_new(M_TLS_CLIENT, NULL, NULL, NULL, NULL, bad_versions[i], 0) == NULL && errno == EINVAL,
              "versions 0x%x -> NULL, EINVAL", bad_versions[i]);
    }
    /* Validation comes before any file is touched: the role is checked first. */
    errno = 0;
    check(mln_tcp_tls_conf_new(2, NULL, NULL, NULL, NULL, 0x100, 0) == NULL && errno == EINVAL,
          "bad role and bad versions -> NULL, EINVAL");

    memset(&uninit, 0xC3, sizeof(uninit));
    memcpy(snap, &uninit, sizeof(snap));
    errno = 0;
    check(mln_tcp_conn_tls_init(&uninit, -1, NULL) == -1 && errno == EINVAL && memcmp(snap, &uninit, sizeof(snap)) == 0,
          "tls_init(&uninit, -1, NULL) -> -1, EINVAL, struct untouched");
    mln_tcp_tls_conf_t *noctx = calloc(1, sizeof(*noctx));
    errno = 0;
    check(mln_tcp_conn_tls_init(&uninit, 3, noctx) == -1 && errno == EINVAL && memcmp(snap, &uninit, sizeof(snap)) == 0,
          "tls_init with conf->ctx NULL -> -1, EINVAL, struct untouched");
    free(noctx);

    mu_pair(sv, 1);
    mu_attach(&s, sv[0], srv_ctx, 1);
    mu_attach(&c, sv[1], cli_ctx, 0);
    char longname[300];
    memset(longname, 'a', sizeof(longname));
    mln_string_t n300 = {(mln_u8ptr_t)longname, 300, 1, 0, 1};
    mln_string_t n256 = {(mln_u8ptr_t)longname, 256, 1, 0, 1};
    mln_string_t n255 = {(mln_u8ptr_t)longname, 255, 1, 0, 1};
    mln_string_t nul = {(mln_u8ptr_t)"ab\0cd", 5, 1, 0, 1};
    mln_string_t good = mln_string("example.test");
    errno = 0;
    check(mln_tcp_conn_tls_set_sni(&c, &n300) == -1 && errno == EINVAL, "SNI of 300 bytes -> -1, EINVAL");
    errno = 0;
    check(mln_tcp_conn_tls_set_sni(&c, &n256) == -1 && errno == EINVAL, "SNI of 256 bytes -> -1, EINVAL");
    errno = 0;
    check(mln_tcp_conn_tls_set_sni(&c, &nul) == -1 && errno == EINVAL, "SNI \"ab\\0cd\" -> -1, EINVAL");
    errno = 0;
    check(mln_tcp_conn_tls_set_verify_host(&c, &n300) == -1 && errno == EINVAL, "verify_host of 300 bytes -> -1, EINVAL");
    errno = 0;
    check(mln_tcp_conn_tls_set_verify_host(&c, &nul) == -1 && errno == EINVAL, "verify_host \"ab\\0cd\" -> -1, EINVAL");
    check(mln_tcp_conn_tls_set_sni(&c, &good) == 0 && mln_tcp_conn_tls_set_verify_host(&c, &good) == 0,
          "\"example.test\" -> 0 for SNI and verify_host before the handshake");
    check(mln_tcp_conn_tls_set_verify_host(&c, &n255) == 0, "a 255-byte name passes the length check");
    check(mln_tcp_conn_tls_set_sni(&c, &empty) == -1, "an empty SNI is refused (OpenSSL rejects it)");
    check(mln_tcp_conn_tls_set_verify_host(&c, &empty) == 0, "an empty verify_host clears the host check -> 0");
    mln_tcp_conn_t plain;
    mln_tcp_conn_init(&plain, -1);
    errno = 0;
    check(mln_tcp_conn_tls_set_sni(&plain, &good) == -1 && errno == EINVAL, "SNI on a plain connection -> -1, EINVAL");
    errno = 0;
    check(mln_tcp_conn_tls_set_verify_host(&plain, &good) == -1 && errno == EINVAL,
          "verify_host on a plain connection -> -1, EINVAL");
    errno = 0;
    check(mln_tcp_conn_tls_handshake(&plain) == M_C_ERROR && errno == EINVAL, "handshake on a plain connection -> EINVAL/ERROR");
    plain.tls_want_r = 1;
    check(mln_tcp_conn_tls_shutdown(&plain) == M_C_FINISH && plain.tls_want_r,
          "shutdown on a plain connection -> FINISH, flags untouched");
    mln_tcp_conn_destroy(&plain);
    close_pair(&s, &c, sv);
    mu_str_free(cert);
    mu_str_free(key);
}

/* ---- 5: one send + one recv deliver 15 bytes --------------------------- */

static void t_send_recv_short(void)
{
    mln_tcp_conn_t s, c;
    int sv[2];
    unsigned char got[64];
    P("tls 5 send_recv_short");
    if (!check(attached_pair(&s, &c, sv), "handshake pair")) return;
    mln_tcp_conn_append(&c, mu_mem_chain(c.pool, "Hello over TLS!", 15, 1), M_C_SEND);
    int r = mln_tcp_conn_send(&c);
    check(r == M_C_FINISH || r == M_C_NOTYET, "one send -> %d", r);
    check(r != M_C_FINISH || (mln_tcp_conn_send_empty(&c) && !mln_tcp_conn_sent_empty(&c)),
          "FINISH: the chain moved to SENT");
    r = mln_tcp_conn_recv(&s, M_C_TYPE_MEMORY);
    check(r == M_C_NOTYET || r == M_C_FINISH, "one recv -> %d", r);
    check(r != M_C_NOTYET || s.tls_want_r, "recv NOTYET comes with want_r");
    mln_chain_t *h = mln_tcp_conn_head(&s, M_C_RECV);
    check(h && h->buf->in_memory && h->buf->last_buf && !h->buf->last_in_chain && h->buf->start == h->buf->pos &&
          h->buf->left_pos == h->buf->pos && h->buf->end == h->buf->last, "RECV buf shape (§8.5)");
    size_t n = mu_take_recv(&s, got, sizeof(got));
    check(n == 15 && memcmp(got, "Hello over TLS!", 15) == 0, "all 15 bytes delivered");
    mu_release_sent(&c);
    close_pair(&s, &c, sv);
}

/* ---- 6: 4 MiB --------------------------------------------------------- */

static void t_send_recv_large(void)
{
    mln_tcp_conn_t s, c;
    int sv[2], bad = 0, rs = 0, rr = 0;
    size_t total = 4u << 20, got = 0;
    P("tls 6 send_recv_large");
    if (!check(attached_pair(&s, &c, sv), "handshake pair")) return;
    unsigned char *data = malloc(total), *rx = malloc(total);
    mu_pattern(data, total, 6);
    mln_tcp_conn_append(&c, mu_mem_chain(c.pool, data, total, 1), M_C_SEND);
    rs = M_C_NOTYET;
    int rounds = 0, max_chunk = 0;
    for (; rounds < 65536 && got < total; rounds++) {
        if (rs != M_C_FINISH) {
            rs = mln_tcp_conn_send(&c);
            if (rs != M_C_FINISH && rs != M_C_NOTYET) { bad++; break; }
        }
        rr = mln_tcp_conn_recv(&s, M_C_TYPE_MEMORY);
        if (rr != M_C_NOTYET && rr != M_C_FINISH) { bad++; break; }
        for (mln_chain_t *it = s.rcv_head; it; it = it->next) {
            int l = (int)(it->buf->last - it->buf->pos);
            if (l > max_chunk) max_chunk = l;
        }
        got += mu_take_recv(&s, rx + got, total - got);
    }
    check(bad == 0, "send always FINISH/NOTYET, recv always NOTYET/FINISH (last %d/%d)", rs, rr);
    check(got == total && memcmp(rx, data, total) == 0, "4 MiB intact in %d rounds", rounds);
    check(max_chunk > 0 && max_chunk <= 4096, "RECV chains hold at most 4096 bytes (max %d)", max_chunk);
    mu_release_sent(&c);
    free(data);
    free(rx);
    close_pair(&s, &c, sv);
}

/* ---- 7: file-backed buf ------------------------------------------------ */

static mln_chain_t *file_chain(mln_alloc_t *pool, const void *data, size_t len, mln_file_t **fout)
{
    mln_file_t *f = mln_file_tmp_open(pool);
    if (f == NULL || pwrite(mln_file_fd(f), data, len, 0) != (ssize_t)len) abort();
    mln_chain_t *ch = mln_chain_new(pool);
    ch->buf = mln_buf_new(pool);
    ch->buf->file = f;
    ch->buf->in_file = 1;
    ch->buf->file_left_pos = ch->buf->file_pos = 0;
    ch->buf->file_last = (off_t)len;
    ch->buf->last_in_chain = 1;
    if (fout) *fout = f;
    return ch;
}

static void t_send_in_file(void)
{
    mln_tcp_conn_t s, c;
    int sv[2];
    unsigned char got[64];
    const char msg[] = "thirty-four bytes from a temp file"; /* 34 */
    P("tls 7 send_in_file");
    if (!check(attached_pair(&s, &c, sv), "handshake pair")) return;
    mln_tcp_conn_append(&c, file_chain(c.pool, msg, 34, NULL), M_C_SEND);
    int r = mln_tcp_conn_send(&c);
    check(r == M_C_FINISH, "one send of a 34-byte in_file buf -> FINISH (%d)", r);
    mln_tcp_conn_recv(&s, M_C_TYPE_MEMORY);
    check(mu_take_recv(&s, got, sizeof(got)) == 34 && memcmp(got, msg, 34) == 0, "one recv delivers the 34 bytes");
    mu_release_sent(&c);

    /* A file larger than one chunk goes out in 16 KiB pieces, all of it. */
    size_t big = 100000, n = 0;
    unsigned char *data = malloc(big), *rx = malloc(big);
    mu_pattern(data, big, 7);
    mln_chain_t *fc = file_chain(c.pool, data, big, NULL);
    fc->buf->file_left_pos = fc->buf->file_pos = 10; /* start inside the file */
    mln_tcp_conn_append(&c, fc, M_C_SEND);
    r = M_C_NOTYET;
    for (int i = 0; i < 10000 && (r != M_C_FINISH || n < big - 10); i++) {
        if (r != M_C_FINISH) r = mln_tcp_conn_send(&c);
        if (r == M_C_ERROR || r == M_C_CLOSED) break;
        mln_tcp_conn_recv(&s, M_C_TYPE_MEMORY);
        n += mu_take_recv(&s, rx + n, big - n);
    }
    check(r == M_C_FINISH && n == big - 10 && memcmp(rx, data + 10, n) == 0,
          "a 100000-byte file from offset 10 arrives intact (%zu bytes)", n);
    mu_release_sent(&c);
    free(data);
    free(rx);
    close_pair(&s, &c, sv);
}

/*
 * A malformed buf with both in_memory and in_file set: mln_buf_left_size
 * counts its file offsets (64 KiB here), but the memory path takes its bytes
 * from left_pos, and there are only 16.  Only those are encrypted: nothing
 * is read past `last` (valgrind), no spin.
 */
static void t_send_both_kinds(void)
{
    mln_tcp_conn_t s, c;
    int sv[2];
    unsigned char got[64];
    P("tls send: a buf flagged both in_memory and in_file");
    if (!check(attached_pair(&s, &c, sv), "handshake pair")) return;
    mln_chain_t *odd = mu_both_kinds_chain(c.pool);
    mln_tcp_conn_append(&c, odd, M_C_SEND);
    int r = mln_tcp_conn_send(&c);
    check(r == M_C_FINISH && mln_tcp_conn_send_empty(&c) && mln_tcp_conn_head(&c, M_C_SENT) == odd,
          "send -> FINISH, the buf moved to SENT (%d)", r);
    mln_tcp_conn_recv(&s, M_C_TYPE_MEMORY);
    size_t n = mu_take_recv(&s, got, sizeof(got));
    check(n == MU_BOTH_KINDS_LEN && memcmp(got, MU_BOTH_KINDS_DATA, MU_BOTH_KINDS_LEN) == 0,
          "exactly its %d memory bytes arrive (%zu)", MU_BOTH_KINDS_LEN, n);
    mu_release_sent(&c);
    close_pair(&s, &c, sv);
}

/* ---- 8: shutdown ------------------------------------------------------ */

static void t_shutdown(void)
{
    mln_tcp_conn_t s, c;
    int sv[2];
    P("tls 8 shutdown");
    if (!check(attached_pair(&s, &c, sv), "handshake pair")) return;
    int r = mln_tcp_conn_tls_shutdown(&c);
    check(r == M_C_FINISH || r == M_C_NOTYET, "client shutdown -> %d", r);
    check(r != M_C_NOTYET || c.tls_want_r || c.tls_want_w, "NOTYET comes with a want flag");
    int rr = mln_tcp_conn_recv(&s, M_C_TYPE_MEMORY);
    check(rr == M_C_CLOSED, "server recv sees the close_notify -> CLOSED (%d)", rr);
    int r2 = mln_tcp_conn_tls_shutdown(&s);
    check(r2 == M_C_FINISH && s.tls_shut, "server shutdown after the peer's close_notify -> FINISH, tls_shut");
    r = mln_tcp_conn_tls_shutdown(&c);
    check(r == M_C_FINISH, "client shutdown again, the peer's close_notify arrived -> FINISH (%d)", r);
    close_pair(&s, &c, sv);

    /* Before the handshake: FINISH, nothing sent. */
    mu_pair(sv, 1);
    mu_attach(&c, sv[1], cli_ctx, 0);
    check(mln_tcp_conn_tls_shutdown(&c) == M_C_FINISH && recv(sv[0], (char[1]){0}, 1, MSG_DONTWAIT) < 0,
          "shutdown before the handshake -> FINISH, nothing on the wire");
    mln_tcp_conn_destroy(&c);
    close(sv[0]);
    close(sv[1]);
}

/* ---- 9: plain path unchanged ------------------------------------------ */

static void t_plain_unchanged(void)
{
    mln_tcp_conn_t a, b;
    int sv[2];
    unsigned char got[16];
    P("tls 9 plain_unchanged");
    mu_pair(sv, 1);
    mln_tcp_conn_init(&a, sv[0]);
    mln_tcp_conn_init(&b, sv[1]);
    check(!mln_tcp_conn_tls_enabled(&a) && !mln_tcp_conn_tls_enabled(&b), "init gives tls_enabled false");
    mln_tcp_conn_append(&a, mu_mem_chain(a.pool, "plaintext", 9, 1), M_C_SEND);
    check(mln_tcp_conn_send(&a) == M_C_FINISH, "plain send -> FINISH");
    ssize_t n = recv(sv[1], got, sizeof(got), 0);
    check(n == 9 && memcmp(got, "plaintext", 9) == 0, "the bytes on the wire are the plaintext");
    mln_tcp_conn_destroy(&a);
    mln_tcp_conn_destroy(&b);
    close(sv[0]);
    close(sv[1]);
}

/* ---- 10, 11: throughput ------------------------------------------------ */

static double throughput(int tls)
{
    mln_tcp_conn_t s, c;
    int sv[2];
    size_t total = (size_t)(getenv("MLN_BENCH_TOTAL_MB") ? atoi(getenv("MLN_BENCH_TOTAL_MB")) : 1) << 20;
    size_t chunk = 64 << 10, sent = 0, got = 0;
    unsigned char *block = malloc(chunk), *rx = malloc(chunk * 4);
    mu_pattern(block, chunk, 10);
    if (tls) {
        if (!attached_pair(&s, &c, sv)) return -1;
    } else {
        mu_pair(sv, 1);
        mln_tcp_conn_init(&s, sv[0]);
        mln_tcp_conn_init(&c, sv[1]);
    }
    double t0 = mu_now();
    int r = M_C_FINISH, ok = 1;
    for (int i = 0; i < 1000000 && got < total && ok; i++) {
        if (mln_tcp_conn_send_empty(&c) && sent < total) {
            mln_tcp_conn_append(&c, mu_mem_chain(c.pool, block, chunk, 1), M_C_SEND);
            sent += chunk;
        }
        r = mln_tcp_conn_send(&c);
        mu_release_sent(&c);
        ok &= r == M_C_FINISH || r == M_C_NOTYET;
        int rr = mln_tcp_conn_recv(&s, M_C_TYPE_MEMORY);
        ok &= rr == M_C_NOTYET || rr == M_C_FINISH;
        got += mu_take_recv(&s, rx, chunk * 4);
    }
    double dt = mu_now() - t0;
    close_pair(&s, &c, sv);
    free(block);
    free(rx);
    return ok && got == total ? (total / 1048576.0) / (dt > 0 ? dt : 1e-9) : -1;
}

static void t_perf(void)
{
    P("tls 10 plain_perf_throughput");
    double p = throughput(0);
    check(p > 0, "plain: %.1f MiB/s", p);
    P("tls 11 tls_perf_throughput");
    double t = throughput(1);
    check(t > 0, "TLS: %.1f MiB/s", t);
    if (t > 0 && t < 20 && !mu_light) printf("[WARN] TLS throughput below 20 MiB/s\n");
}

/* ---- 12: HTTPS end to end over TCP ------------------------------------- */

struct https_side {
    int fd, server, rounds_ok, ok;
    char why[160];
};

static int wait_op(mln_tcp_conn_t *c, double deadline)
{
    if (mu_now() > deadline) return -1;
    return mu_wait(c, 5000) >= 0 ? 0 : -1;
}

/* Send until FINISH (the chain ends with last_in_chain). */
static int https_send(mln_tcp_conn_t *c, const char *msg, size_t len)
{
    double deadline = mu_now() + 15;
    mln_chain_t *h = mu_mem_chain(c->pool, msg, len / 2, 0);
    h->next = mu_mem_chain(c->pool, msg + len / 2, len - len / 2, 1);
    mln_tcp_conn_append_chain(c, h, NULL, M_C_SEND);
    for (;;) {
        int r = mln_tcp_conn_send(c);
        mu_release_sent(c);
        if (r == M_C_FINISH) return 0;
        if (r != M_C_NOTYET || wait_op(c, deadline) < 0) return -1;
    }
}

/*
 * Receive one HTTP message: headers ending in CRLFCRLF plus Content-Length
 * bytes. Bytes after the message are put back on RECV with append_chain,
 * as a parser that consumed part of the queue does.
 */
static int https_recv(mln_tcp_conn_t *c, char *out, size_t cap, size_t *outlen)
{
    double deadline = mu_now() + 15;
    for (;;) {
        int r = mln_tcp_conn_recv(c, M_C_TYPE_MEMORY);
        if (r == M_C_ERROR) return -1;
        size_t have = mu_chain_left(c->rcv_head);
        if (have > 0) {
            char *buf = malloc(have + 1);
            size_t n = 0;
            for (mln_chain_t *it = c->rcv_head; it; it = it->next) {
                size_t l = (size_t)mln_buf_left_size(it->buf);
                memcpy(buf + n, it->buf->left_pos, l);
                n += l;
            }
            buf[n] = 0;
            char *eoh = strstr(buf, "\r\n\r\n");
            if (eoh != NULL) {
                char *cl = strcasestr(buf, "Content-Length:");
                size_t body = cl && cl < eoh ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
                size_t need = (size_t)(eoh + 4 - buf) + body;
                if (n >= need && need <= cap) {
                    memcpy(out, buf, need);
                    *outlen = need;
                    mln_chain_t *all = mln_tcp_conn_remove(c, M_C_RECV);
                    mln_chain_pool_release_all(all);
                    if (n > need) {
                        mln_chain_t *rem = mu_mem_chain(c->pool, buf + need, n - need, 0);
                        mln_tcp_conn_append_chain(c, rem, NULL, M_C_RECV);
                    }
                    free(buf);
                    return 0;
                }
            }
            free(buf);
        }
        if (r == M_C_CLOSED) return -1; /* CLOSED before a complete message */
        if (wait_op(c, deadline) < 0) return -1;
    }
}

static mln_tcp_tls_conf_t *https_srv_conf, *https_cli_conf;

static void *https_thread(void *p)
{
    struct https_side *sd = p;
    mln_tcp_conn_t conn;
    char buf[2048];
    size_t n;
    double deadline;

    if (mln_tcp_conn_tls_init(&conn, sd->fd, sd->server ? https_srv_conf : https_cli_conf) != 0 ||
        mln_tcp_conn_set_nonblock(&conn, 1) != 0) {
        snprintf(sd->why, sizeof(sd->why), "tls_init/set_nonblock failed");
        return NULL;
    }
    if (!sd->server) {
        mln_string_t host = mln_string("localhost");
        if (mln_tcp_conn_tls_set_sni(&conn, &host) != 0 || mln_tcp_conn_tls_set_verify_host(&conn, &host) != 0) {
            snprintf(sd->why, sizeof(sd->why), "set_sni/verify_host failed");
            goto out;
        }
    }
    deadline = mu_now() + 15;
    for (;;) {
        int r = mln_tcp_conn_tls_handshake(&conn);
        if (r == M_C_FINISH) break;
        if (r != M_C_NOTYET || wait_op(&conn, deadline) < 0) {
            snprintf(sd->why, sizeof(sd->why), "handshake -> %d", r);
            goto out;
        }
    }
    for (int i = 0; i < 10; i++) {
        char msg[512];
        if (sd->server) {
            if (https_recv(&conn, buf, sizeof(buf) - 1, &n) < 0) { snprintf(sd->why, sizeof(sd->why), "server recv %d", i); goto out; }
            buf[n] = 0;
            if (strncmp(buf, "GET /round/", 11) != 0) { snprintf(sd->why, sizeof(sd->why), "bad request %d", i); goto out; }
            char text[64];
            int body = snprintf(text, sizeof(text), "round %d ok", i);
            int len = snprintf(msg, sizeof(msg), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Iter: %d\r\n\r\n%s", body, i, text);
            if (https_send(&conn, msg, (size_t)len) < 0) { snprintf(sd->why, sizeof(sd->why), "server send %d", i); goto out; }
        } else {
            /* Requests 8 and 9 go back to back: the server's parser puts
             * the second one back on RECV (append_chain). */
            int len = snprintf(msg, sizeof(msg), "GET /round/%d HTTP/1.1\r\nHost: localhost\r\n\r\n", i);
            if (i == 8) /* pipelined: rounds 8 and 9 go out together */
                len += snprintf(msg + len, sizeof(msg) - (size_t)len, "GET /round/9 HTTP/1.1\r\nHost: localhost\r\n\r\n");
            if (i != 9 && https_send(&conn, msg, (size_t)len) < 0) { snprintf(sd->why, sizeof(sd->why), "client send %d", i); goto out; }
            if (https_recv(&conn, buf, sizeof(buf) - 1, &n) < 0) { snprintf(sd->why, sizeof(sd->why), "client recv %d", i); goto out; }
            buf[n] = 0;
            char want[32];
            snprintf(want, sizeof(want), "round %d ok", i);
            if (strncmp(buf, "HTTP/1.1 200", 12) != 0 || strstr(buf, want) == NULL) {
                snprintf(sd->why, sizeof(sd->why), "bad response %d", i);
                goto out;
            }
        }
        sd->rounds_ok++;
    }
    deadline = mu_now() + 15;
    for (int i = 0; i < 32; i++) {
        int r = mln_tcp_conn_tls_shutdown(&conn);
        if (r == M_C_FINISH) { sd->ok = 1; break; }
        if (r != M_C_NOTYET) { snprintf(sd->why, sizeof(sd->why), "shutdown -> %d", r); break; }
        mu_wait(&conn, 200);
        /* The server must read the client's close_notify to finish. */
    }
out:
    mln_tcp_conn_destroy(&conn);
    return NULL;
}

static void t_https_e2e(void)
{
    int port = 0, l;
    pthread_t ts, tc;
    struct https_side s = {0}, c = {0};
    P("tls 12 https_e2e_nonblocking");
    https_srv_conf = mu_conf(M_TLS_SERVER, "leaf.crt", "leaf.key", NULL, M_TLS_VDEFAULT, 0);
    https_cli_conf = mu_conf(M_TLS_CLIENT, NULL, NULL, "ca.crt", M_TLS_VDEFAULT, 1);
    if (!check(https_srv_conf && https_cli_conf, "server and client confs")) return;
    l = harness_listen_loopback(&port);
    c.fd = harness_connect_loopback(port);
    s.fd = accept(l, NULL, NULL);
    close(l);
    s.server = 1;
    pthread_create(&ts, NULL, https_thread, &s);
    pthread_create(&tc, NULL, https_thread, &c);
    pthread_join(ts, NULL);
    pthread_join(tc, NULL);
    check(s.rounds_ok == 10 && c.rounds_ok == 10, "ten GET/200 rounds over TCP (server %d%s%s, client %d%s%s)",
          s.rounds_ok, s.why[0] ? ": " : "", s.why, c.rounds_ok, c.why[0] ? ": " : "", c.why);
    check(s.ok && c.ok, "both sides shut down ok");
    close(s.fd);
    close(c.fd);
    mln_tcp_tls_conf_free(https_srv_conf);
    mln_tcp_tls_conf_free(https_cli_conf);
}

/* ---- conf_new details (§3.5) ------------------------------------------ */

static void t_conf_details(void)
{
    P("conf_new details");
    mln_string_t *cert = mu_str(harness_cert("leaf.crt")), *key = mu_str(harness_cert("leaf.key"));
    mln_string_t *ca = mu_str(harness_cert("ca.crt")), *ciph = mu_str("ECDHE-RSA-AES128-GCM-SHA256");
    mln_tcp_tls_conf_t *conf = mln_tcp_tls_conf_new(M_TLS_SERVER, cert, key, ca, ciph, 0, 1);
    if (!check(conf != NULL, "server conf with cert, key, ca, ciphers, verify")) return;
    check(conf->ctx != NULL && conf->versions == M_TLS_VDEFAULT && conf->role == M_TLS_SERVER && conf->verify == 1,
          "ctx set, versions 0 normalised to 0xC, role 0, verify 1");
    mln_string_t *cs[4] = {conf->cert_file, conf->key_file, conf->ca_file, conf->ciphers};
    mln_string_t *os[4] = {cert, key, ca, ciph};
    int deep = 1;
    for (int i = 0; i < 4; i++)
        deep &= cs[i] && cs[i] != os[i] && cs[i]->data != os[i]->data && cs[i]->len == os[i]->len &&
                memcmp(cs[i]->data, os[i]->data, os[i]->len) == 0 && cs[i]->data[cs[i]->len] == 0 &&
                cs[i]->data_ref == 1 && cs[i]->pool == 0 && cs[i]->ref == 1 && cs[i]->data == (mln_u8ptr_t)(cs[i] + 1);
    check(deep, "strings deep-copied in mln_string_dup's shape (one malloc, NUL, data_ref=1 pool=0 ref=1)");
    check((SSL_CTX_get_verify_mode(conf->ctx) & (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT)) ==
          (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT), "server verify -> PEER|FAIL_IF_NO_PEER_CERT");
    check((SSL_CTX_get_mode(conf->ctx) & (SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER)) ==
          (SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), "partial-write and moving-buffer modes");
    check(SSL_CTX_get_min_proto_version(conf->ctx) == TLS1_2_VERSION && SSL_CTX_get_max_proto_version(conf->ctx) == TLS1_3_VERSION,
          "0xC -> TLS 1.2 .. 1.3");
    mln_tcp_tls_conf_free(conf);
    mln_tcp_tls_conf_free(NULL);

    mln_tcp_tls_conf_t *c12 = mln_tcp_tls_conf_new(M_TLS_CLIENT, NULL, NULL, NULL, NULL, M_TLS_V1_2, 0);
    mln_tcp_tls_conf_t *c13 = mln_tcp_tls_conf_new(M_TLS_CLIENT, NULL, NULL, NULL, NULL, M_TLS_V1_3, 1);
    check(c12 && SSL_CTX_get_min_proto_version(c12->ctx) == TLS1_2_VERSION &&
          SSL_CTX_get_max_proto_version(c12->ctx) == TLS1_2_VERSION && SSL_CTX_get_verify_mode(c12->ctx) == SSL_VERIFY_NONE,
          "0x4 -> TLS 1.2 only; verify 0 -> VERIFY_NONE");
    check(c13 && SSL_CTX_get_min_proto_version(c13->ctx) == TLS1_3_VERSION &&
          SSL_CTX_get_max_proto_version(c13->ctx) == TLS1_3_VERSION && SSL_CTX_get_verify_mode(c13->ctx) == SSL_VERIFY_PEER &&
          c13->role == M_TLS_CLIENT && c13->cert_file == NULL,
          "0x8 -> TLS 1.3 only; client verify -> VERIFY_PEER; NULL strings stay NULL");
    mln_tcp_tls_conf_free(c12);
    mln_tcp_tls_conf_free(c13);

    mln_string_t *missing = mu_str("/nonexistent/corotls.pem"), *other = mu_str(harness_cert("other.key"));
    mln_string_t *garbage = mu_str(harness_cert("garbage.pem")), *badc = mu_str("NOT-A-CIPHER");
    mln_string_t *ckey = mu_str(harness_cert("client.key")), *ccrt = mu_str(harness_cert("client.crt"));
    mln_string_t empty = mln_string("");
    check(mln_tcp_tls_conf_new(M_TLS_SERVER, missing, key, NULL, NULL, 0, 0) == NULL, "missing cert file -> NULL");
    check(mln_tcp_tls_conf_new(M_TLS_SERVER, cert, other, NULL, NULL, 0, 0) == NULL, "mismatched key -> NULL");
    check(mln_tcp_tls_conf_new(M_TLS_CLIENT, NULL, NULL, garbage, NULL, 0, 1) == NULL, "CA file that is not PEM -> NULL");
    check(mln_tcp_tls_conf_new(M_TLS_CLIENT, NULL, NULL, missing, NULL, 0, 1) == NULL, "missing CA file -> NULL");
    check(mln_tcp_tls_conf_new(M_TLS_CLIENT, NULL, NULL, NULL, badc, 0, 0) == NULL, "bad cipher list -> NULL");
    check(mln_tcp_tls_conf_new(M_TLS_CLIENT, NULL, ckey, NULL, NULL, 0, 0) == NULL, "client key without a cert -> NULL");
    mln_tcp_tls_conf_t *cc = mln_tcp_tls_conf_new(M_TLS_CLIENT, ccrt, ckey, ca, &empty, 0, 1);
    check(cc != NULL && cc->ciphers != NULL && cc->ciphers->len == 0, "client with a client certificate; empty ciphers ignored but copied");
    mln_tcp_tls_conf_free(cc);
    cc = mln_tcp_tls_conf_new(M_TLS_CLIENT, ccrt, NULL, NULL, NULL, 0, 0);
    check(cc != NULL, "client with a cert and no key -> conf (the cert is never presented)");
    mln_tcp_tls_conf_free(cc);
    /* A stale error left in the queue does not break the next handshake. */
    check(mln_tcp_tls_global_init() == 0, "mln_tcp_tls_global_init() -> 0");
    mln_tcp_tls_global_destroy();
    mu_str_free(missing); mu_str_free(other); mu_str_free(garbage); mu_str_free(badc);
    mu_str_free(ckey); mu_str_free(ccrt);
    mu_str_free(cert); mu_str_free(key); mu_str_free(ca); mu_str_free(ciph);
}

int main(int argc, char **argv)
{
    mu_setup(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    srv_ctx = mu_raw_ctx(1);
    cli_ctx = mu_raw_ctx(0);
    t_handshake_blocking();
    t_handshake_nonblock();
    t_partial_record();
    t_conf_validation();
    t_send_recv_short();
    t_send_recv_large();
    t_send_in_file();
    t_send_both_kinds();
    t_shutdown();
    t_plain_unchanged();
    t_perf();
    t_https_e2e();
    t_conf_details();
    SSL_CTX_free(srv_ctx);
    SSL_CTX_free(cli_ctx);
    check(melon_host_live_pools() == 0 && melon_host_live_blocks() == 0, "no pool or block left alive");
    return check_summary();
}
