/*
 * corotls: the plain (non-TLS) path of the Melon face. Re-expresses the 16
 * plain scenarios of Melon's connection test (spec melon.md §6.1) in our own
 * code, then the plain-path details of §3.1-§3.4: bitfield hygiene, fd -1,
 * file receive with FOLLOW, sendfile, no dropped bufs, allocation failure.
 * (One test program over 600 lines on purpose: it follows its spec
 * section scenario by scenario over shared fixtures.)
 */
#include "melon_util.h"

#define P(name) printf("# %s\n", name)

/* 1 */
static void t_basic(void)
{
    mln_tcp_conn_t c;
    int sv[2];
    P("plain 1 basic");
    mu_pair(sv, 0);
    check(mln_tcp_conn_init(&c, sv[0]) == 0, "init returns 0");
    check(mln_tcp_conn_fd_get(&c) == sv[0] && mln_tcp_conn_pool_get(&c) != NULL, "fd_get / pool_get");
    check(mln_tcp_conn_send_empty(&c) && mln_tcp_conn_recv_empty(&c) && mln_tcp_conn_sent_empty(&c),
          "three queues empty");
    mln_tcp_conn_destroy(&c);
    close(sv[0]);
    close(sv[1]);
}

/* 2 */
static void t_queue_ops(void)
{
    mln_tcp_conn_t c;
    mln_chain_t *c1, *c2, *c3, *c4, *c5, *p;
    P("plain 2 queue_ops");
    mln_tcp_conn_init(&c, -1);
    mln_alloc_t *pool = mln_tcp_conn_pool_get(&c);
    c1 = mln_chain_new(pool); c2 = mln_chain_new(pool); c3 = mln_chain_new(pool);
    c4 = mln_chain_new(pool); c5 = mln_chain_new(pool);
    mln_tcp_conn_append(&c, c1, M_C_SEND);
    check(mln_tcp_conn_head(&c, M_C_SEND) == c1 && mln_tcp_conn_tail(&c, M_C_SEND) == c1, "append 1: head=tail=c1");
    mln_tcp_conn_append(&c, c2, M_C_SEND);
    mln_tcp_conn_append(&c, c3, M_C_SEND);
    check(mln_tcp_conn_head(&c, M_C_SEND) == c1 && mln_tcp_conn_tail(&c, M_C_SEND) == c3, "append 3: head c1 tail c3");
    c4->next = c5;
    mln_tcp_conn_append_chain(&c, c4, c5, M_C_RECV);
    check(mln_tcp_conn_head(&c, M_C_RECV) == c4 && mln_tcp_conn_tail(&c, M_C_RECV) == c5, "append_chain(c4,c5) to RECV");
    p = mln_tcp_conn_pop(&c, M_C_SEND);
    check(p == c1 && p->next == NULL && mln_tcp_conn_head(&c, M_C_SEND) == c2, "pop -> c1, next cleared");
    p = mln_tcp_conn_pop(&c, M_C_SEND);
    check(p == c2 && mln_tcp_conn_head(&c, M_C_SEND) == c3 && mln_tcp_conn_tail(&c, M_C_SEND) == c3, "pop -> c2");
    p = mln_tcp_conn_pop(&c, M_C_SEND);
    check(p == c3 && mln_tcp_conn_send_empty(&c) && mln_tcp_conn_tail(&c, M_C_SEND) == NULL, "pop of the tail empties SEND");
    check(mln_tcp_conn_pop(&c, M_C_SEND) == NULL, "pop of an empty queue -> NULL");
    p = mln_tcp_conn_remove(&c, M_C_RECV);
    check(p == c4 && p->next == c5 && mln_tcp_conn_recv_empty(&c) && mln_tcp_conn_tail(&c, M_C_RECV) == NULL,
          "remove(RECV) returns c4 and empties RECV");
    mln_chain_pool_release_all(p);
    mln_chain_pool_release(c1); mln_chain_pool_release(c2); mln_chain_pool_release(c3);
    /* append_chain with a NULL tail walks to it; a NULL head does nothing */
    c1 = mln_chain_new(pool); c2 = mln_chain_new(pool); c1->next = c2;
    mln_tcp_conn_append_chain(&c, NULL, NULL, M_C_SENT);
    check(mln_tcp_conn_sent_empty(&c), "append_chain(NULL) does nothing");
    mln_tcp_conn_append_chain(&c, c1, NULL, M_C_SENT);
    check(mln_tcp_conn_tail(&c, M_C_SENT) == c2, "append_chain(c1, NULL) finds the tail c2");
    /* pop of a single-node queue whose node has a stale next keeps that next */
    c3 = mln_chain_new(pool);
    c3->next = c1;
    mln_tcp_conn_append(&c, c3, M_C_RECV);
    p = mln_tcp_conn_pop(&c, M_C_RECV);
    check(p == c3 && p->next == c1 && mln_tcp_conn_recv_empty(&c), "pop of the tail leaves its next as it was");
    mln_chain_pool_release(c3);
    /* unknown selectors are harmless */
    mln_tcp_conn_append(&c, c4 = mln_chain_new(pool), 99);
    check(mln_tcp_conn_head(&c, 99) == NULL && mln_tcp_conn_pop(&c, 0) == NULL && mln_tcp_conn_remove(&c, -1) == NULL &&
          mln_tcp_conn_tail(&c, 7) == NULL, "unknown queue selector: no effect, NULL results");
    mln_chain_pool_release(c4);
    mln_tcp_conn_destroy(&c);
}

static int send_all_blocking(mln_tcp_conn_t *c, const void *data, size_t len)
{
    mln_tcp_conn_append(c, mu_mem_chain(mln_tcp_conn_pool_get(c), data, len, 1), M_C_SEND);
    int r = mln_tcp_conn_send(c);
    mu_release_sent(c);
    return r;
}

/* 3 */
static void t_send_recv(void)
{
    mln_tcp_conn_t a, b;
    int sv[2];
    const char msg[] = "Hello, Melon!";
    P("plain 3 send_recv");
    mu_pair(sv, 0);
    mln_tcp_conn_init(&a, sv[0]);
    mln_tcp_conn_init(&b, sv[1]);
    check(send_all_blocking(&a, msg, 13) == M_C_FINISH, "blocking send of 13 bytes -> FINISH");
    int r = mln_tcp_conn_recv(&b, M_C_TYPE_MEMORY);
    mln_chain_t *h = mln_tcp_conn_head(&b, M_C_RECV);
    check(r != M_C_ERROR && h != NULL && h->buf->last - h->buf->pos == 13 && memcmp(h->buf->start, msg, 13) == 0,
          "recv(MEMORY) -> %d, RECV head holds the 13 bytes", r);
    check(h != NULL && h->buf->in_memory && h->buf->last_buf && h->buf->left_pos == h->buf->start &&
          h->buf->end == h->buf->last, "plain recv buf: start=pos=left_pos, last=end, in_memory, last_buf");
    mln_tcp_conn_destroy(&a);
    mln_tcp_conn_destroy(&b);
    close(sv[0]);
    close(sv[1]);
}

/* 4 */
static void t_large(void)
{
    mln_tcp_conn_t a, b;
    int sv[2];
    unsigned char data[8192], got[8192];
    size_t n = 0;
    P("plain 4 large_data");
    mu_pattern(data, sizeof(data), 4);
    mu_pair(sv, 0);
    mln_tcp_conn_init(&a, sv[0]);
    mln_tcp_conn_init(&b, sv[1]);
    check(send_all_blocking(&a, data, sizeof(data)) == M_C_FINISH, "blocking send of 8192 bytes -> FINISH");
    for (int i = 0; i < 64 && n < sizeof(data); i++) {
        int r = mln_tcp_conn_recv(&b, M_C_TYPE_MEMORY);
        if (r == M_C_ERROR || r == M_C_CLOSED) break;
        n += mu_take_recv(&b, got + n, sizeof(got) - n);
    }
    check(n == sizeof(data) && memcmp(got, data, n) == 0, "8192 bytes arrive in order (%zu)", n);
    mln_tcp_conn_destroy(&a);
    mln_tcp_conn_destroy(&b);
    close(sv[0]);
    close(sv[1]);
}

/* 5 */
static void t_move_sent(void)
{
    mln_tcp_conn_t c;
    P("plain 5 move_sent");
    mln_tcp_conn_init(&c, -1);
    mln_chain_t *c1 = mln_chain_new(c.pool), *c2 = mln_chain_new(c.pool), *c0 = mln_chain_new(c.pool);
    mln_tcp_conn_move_sent(&c);
    check(mln_tcp_conn_sent_empty(&c), "move_sent of an empty SEND changes nothing");
    mln_tcp_conn_append(&c, c1, M_C_SEND);
    mln_tcp_conn_append(&c, c2, M_C_SEND);
    mln_tcp_conn_move_sent(&c);
    check(mln_tcp_conn_send_empty(&c) && mln_tcp_conn_head(&c, M_C_SENT) == c1 && mln_tcp_conn_tail(&c, M_C_SENT) == c2,
          "SEND empty; SENT head/tail c1/c2");
    mln_tcp_conn_append(&c, c0, M_C_SEND);
    mln_tcp_conn_move_sent(&c);
    check(mln_tcp_conn_tail(&c, M_C_SENT) == c0 && c2->next == c0, "a second move_sent appends to SENT");
    mln_tcp_conn_destroy(&c);
}

/* 6 */
static void t_send_chain(void)
{
    mln_tcp_conn_t a, b;
    int sv[2];
    unsigned char got[64];
    P("plain 6 send_chain");
    mu_pair(sv, 0);
    mln_tcp_conn_init(&a, sv[0]);
    mln_tcp_conn_init(&b, sv[1]);
    mln_chain_t *h = mu_mem_chain(a.pool, "chain-", 6, 0);
    h->next = mu_mem_chain(a.pool, "data", 4, 1);
    check(mln_tcp_conn_send_chain(&a, h) == M_C_FINISH, "send_chain -> FINISH");
    mu_release_sent(&a);
    mln_tcp_conn_recv(&b, M_C_TYPE_MEMORY);
    size_t n = mu_take_recv(&b, got, sizeof(got));
    check(n == 10 && memcmp(got, "chain-data", 10) == 0, "the data arrives");
    mln_tcp_conn_destroy(&a);
    mln_tcp_conn_destroy(&b);
    close(sv[0]);
    close(sv[1]);
}

/* 7 */
static void t_macros(void)
{
    mln_tcp_conn_t c;
    int sv[2];
    P("plain 7 macros");
    mu_pair(sv, 0);
    mln_tcp_conn_init(&c, -1);
    mln_tcp_conn_fd_set(&c, sv[0]);
    check(mln_tcp_conn_fd_get(&c) == sv[0] && c.nonblock == 0, "fd_set updates fd_get (blocking fd)");
    check(mln_tcp_conn_set_nonblock(&c, 1) == 0 && c.nonblock == 1 && (fcntl(sv[0], F_GETFL) & O_NONBLOCK),
          "set_nonblock(1): bit and O_NONBLOCK set");
    check(mln_tcp_conn_set_nonblock(&c, 0) == 0 && c.nonblock == 0 && !(fcntl(sv[0], F_GETFL) & O_NONBLOCK),
          "set_nonblock(0): bit and O_NONBLOCK cleared");
    harness_set_nonblock(sv[1]);
    mln_tcp_conn_fd_set(&c, sv[1]);
    check(c.nonblock == 1, "fd_set re-derives nonblock from the fd");
    mln_tcp_conn_destroy(&c);
    close(sv[0]);
    close(sv[1]);
}

/* 8 */
static void t_cycles(void)
{
    mln_tcp_conn_t a, b;
    int sv[2], ok = 1;
    const char *msgs[] = {"first", "second message", "third and last message"};
    unsigned char got[64];
    P("plain 8 multiple_cycles");
    mu_pair(sv, 0);
    mln_tcp_conn_init(&a, sv[0]);
    mln_tcp_conn_init(&b, sv[1]);
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(msgs[i]);
        ok &= send_all_blocking(&a, msgs[i], l) == M_C_FINISH;
        mln_tcp_conn_recv(&b, M_C_TYPE_MEMORY);
        ok &= mu_take_recv(&b, got, sizeof(got)) == l && memcmp(got, msgs[i], l) == 0;
        ok &= mln_tcp_conn_recv_empty(&b);
    }
    check(ok, "three messages: FINISH, contents match, RECV released between them");
    mln_tcp_conn_destroy(&a);
    mln_tcp_conn_destroy(&b);
    close(sv[0]);
    close(sv[1]);
}

/* 9 */
static void t_perf(void)
{
    mln_tcp_conn_t a, b;
    int sv[2], ok = 1, rounds = mu_light ? 2000 : 100000;
    unsigned char got[8];
    P("plain 9 performance");
    mu_pair(sv, 0);
    mln_tcp_conn_init(&a, sv[0]);
    mln_tcp_conn_init(&b, sv[1]);
    double t0 = mu_now();
    for (int i = 0; i < rounds && ok; i++) {
        unsigned char x = (unsigned char)i;
        ok &= send_all_blocking(&a, &x, 1) == M_C_FINISH;
        ok &= mln_tcp_conn_recv(&b, M_C_TYPE_MEMORY) == M_C_NOTYET;
        ok &= mu_take_recv(&b, got, sizeof(got)) == 1 && got[0] == x;
    }
    double dt = mu_now() - t0;
    check(ok, "%d one-byte blocking send+recv rounds (%.0f rounds/s)", rounds, rounds / (dt > 0 ? dt : 1e-9));
    mln_tcp_conn_destroy(&a);
    mln_tcp_conn_destroy(&b);
    close(sv[0]);
    close(sv[1]);
}

/* 10 */
static void t_stability(void)
{
    size_t base = melon_host_live_blocks();
    int ok = 1;
    P("plain 10 stability");
    for (int i = 0; i < 100; i++) {
        mln_tcp_conn_t c;
        ok &= mln_tcp_conn_init(&c, -1) == 0;
        for (int j = 0; j < 50; j++) {
            mln_chain_t *ch = mln_chain_new(c.pool);
            ch->buf = mln_buf_new(c.pool);
            mln_tcp_conn_append(&c, ch, (j % 3) + 1);
        }
        mln_chain_pool_release_all(mln_tcp_conn_remove(&c, M_C_SEND));
        mln_tcp_conn_destroy(&c);
    }
    check(ok && melon_host_live_blocks() == base && melon_host_live_pools() == 0,
          "100 connections x 50 appends, release, destroy: nothing left");
}

/* 11 */
static void t_recv_closed(void)
{
    mln_tcp_conn_t c;
    int sv[2];
    P("plain 11 recv_closed");
    mu_pair(sv, 0);
    mln_tcp_conn_init(&c, sv[0]);
    close(sv[1]);
    check(mln_tcp_conn_recv(&c, M_C_TYPE_MEMORY) == M_C_CLOSED, "peer closed -> CLOSED");
    mln_tcp_conn_destroy(&c);
    close(sv[0]);
}

/* 12 */
static void t_recv_notyet_nb(void)
{
    mln_tcp_conn_t c;
    int sv[2];
    P("plain 12 recv_notyet_nonblock");
    mu_pair(sv, 1);
    mln_tcp_conn_init(&c, sv[0]);
    check(c.nonblock == 1 && mln_tcp_conn_recv(&c, M_C_TYPE_MEMORY) == M_C_NOTYET && mln_tcp_conn_recv_empty(&c),
          "no data, non-blocking -> NOTYET");
    mln_tcp_conn_destroy(&c);
    close(sv[0]);
    close(sv[1]);
}

/* 13 */
static void t_recv_notyet_blk(void)
{
    mln_tcp_conn_t c;
    int sv[2];
    P("plain 13 recv_notyet_blocking");
    mu_pair(sv, 0);
    mln_tcp_conn_init(&c, sv[0]);
    if (write(sv[1], "xyz", 3) != 3) abort();
    check(mln_tcp_conn_recv(&c, M_C_TYPE_MEMORY) == M_C_NOTYET && !mln_tcp_conn_recv_empty(&c),
          "blocking recv after data -> NOTYET, RECV not empty");
    mln_tcp_conn_destroy(&c);
    close(sv[0]);
    close(sv[1]);
}

/* 14 */
static void t_recv_error(void)
{
    mln_tcp_conn_t c;
    P("plain 14 recv_error");
    mln_tcp_conn_init(&c, -1);
    check(c.nonblock == 0 && mln_tcp_conn_recv(&c, M_C_TYPE_MEMORY) == M_C_ERROR, "init(-1) then recv -> ERROR");
    check(mln_tcp_conn_send(&c) == M_C_NOTYET, "send with an empty SEND -> NOTYET (no I/O)");
    mln_tcp_conn_append(&c, mu_mem_chain(c.pool, "x", 1, 1), M_C_SEND);
    check(mln_tcp_conn_send(&c) == M_C_ERROR && !mln_tcp_conn_send_empty(&c), "send on fd -1 -> ERROR, SEND kept");
    mln_tcp_conn_destroy(&c);
}

/* 15 */
static void t_send_finish(void)
{
    mln_tcp_conn_t a, b;
    int sv[2];
    const char msg[] = "non-blocking small send";
    size_t len = sizeof(msg) - 1;
    P("plain 15 send_finish");
    mu_pair(sv, 1);
    mln_tcp_conn_init(&a, sv[0]);
    mln_tcp_conn_init(&b, sv[1]);
    mln_tcp_conn_append(&a, mu_mem_chain(a.pool, msg, len, 1), M_C_SEND);
    check(mln_tcp_conn_send(&a) == M_C_FINISH && mln_tcp_conn_send_empty(&a) && !mln_tcp_conn_sent_empty(&a),
          "non-blocking small send -> FINISH, SEND empty, SENT not empty");
    check(mln_tcp_conn_recv(&b, M_C_TYPE_MEMORY) == M_C_NOTYET, "recv -> NOTYET");
    mln_chain_t *h = mln_tcp_conn_head(&b, M_C_RECV);
    check(h != NULL && h->next == NULL && (size_t)(h->buf->last - h->buf->pos) == len && memcmp(h->buf->pos, msg, len) == 0,
          "exactly len bytes with matching content");
    mln_tcp_conn_destroy(&a);
    mln_tcp_conn_destroy(&b);
    close(sv[0]);
    close(sv[1]);
}

/* 16 */
static void t_recv_after_nb_send(void)
{
    mln_tcp_conn_t a, b;
    int sv[2];
    unsigned char got[64];
    P("plain 16 recv_after_nonblock_send");
    mu_pair(sv, 1);
    mln_tcp_conn_init(&a, sv[0]);
    mln_tcp_conn_init(&b, sv[1]);
    mln_tcp_conn_append(&a, mu_mem_chain(a.pool, "0123456789", 10, 1), M_C_SEND);
    int r = mln_tcp_conn_send(&a);
    check(r == M_C_FINISH || r == M_C_NOTYET, "send -> FINISH or NOTYET (%d)", r);
    check(mln_tcp_conn_recv(&b, M_C_TYPE_MEMORY) == M_C_NOTYET, "recv -> NOTYET");
    check(mu_take_recv(&b, got, sizeof(got)) == 10 && memcmp(got, "0123456789", 10) == 0, "data matches");
    mln_tcp_conn_destroy(&a);
    mln_tcp_conn_destroy(&b);
    close(sv[0]);
    close(sv[1]);
}

/* ---- beyond the 16 ------------------------------------------------------ */

/* Init on garbage: all TLS fields zeroed, unrelated bits preserved (§2.2). */
static void t_init_hygiene(void)
{
    mln_tcp_conn_t c;
    P("plain init on an uninitialised struct");
    memset(&c, 0xA5, sizeof(c));
    check(mln_tcp_conn_init(&c, -1) == 0, "init on 0xA5 garbage -> 0");
    unsigned char *raw = (unsigned char *)&c;
    uint32_t nbw, flw;
    memcpy(&nbw, raw + 60, 4);
    memcpy(&flw, raw + 104, 4);
    check(c.ssl == NULL && c.tls_conf == NULL && c.tls_pending == NULL && c.tls_pending_off == 0 &&
          c.tls_pending_len == 0 && !c.tls_done && !c.tls_want_r && !c.tls_want_w && !c.tls_shut,
          "ssl, tls_conf, pending, off, len and the four flags are zero");
    check(c.rcv_head == NULL && c.snd_tail == NULL && c.sent_head == NULL && c.sockfd == -1 && c.nonblock == 0,
          "queues NULL, sockfd -1, nonblock 0");
    check((nbw & ~1u) == (0xA5A5A5A5u & ~1u) && (flw & ~0xFu) == (0xA5A5A5A5u & ~0xFu),
          "bits outside nonblock / tls_* are preserved (read-modify-write)");
    mln_tcp_conn_destroy(&c);
    check(c.pool == NULL, "destroy leaves pool NULL (a second destroy is harmless)");
    mln_tcp_conn_destroy(&c);
    mln_tcp_conn_destroy(NULL);
    check(1, "destroy twice and destroy(NULL) do not crash");
}

static void t_fd_set_and_nonblock_edges(void)
{
    mln_tcp_conn_t k;
    P("plain fd_set / set_nonblock edges");
    memset(&k, 0, sizeof(k));
    mln_tcp_conn_fd_set(&k, 42);
    check(k.sockfd == 42 && k.pool == NULL && k.nonblock == 0, "fd_set on a memset-0 key struct touches only sockfd/nonblock");
    mln_tcp_conn_fd_set(&k, -1);
    check(mln_tcp_conn_set_nonblock(&k, 1) == 0 && k.nonblock == 1, "set_nonblock(1) with fd -1: only the bit");
    check(mln_tcp_conn_set_nonblock(&k, 0) == 0 && k.nonblock == 0, "set_nonblock(0) with fd -1: only the bit");
    int fd = open("/dev/null", O_RDONLY);
    close(fd); /* fd now names nothing */
    k.sockfd = fd;
    check(mln_tcp_conn_set_nonblock(&k, 1) == -1 && k.nonblock == 0, "set_nonblock on a closed fd -> -1, bit unchanged");
}

/* M_C_TYPE_FILE receive into a temp file, then FOLLOW appends to it. */
static void t_recv_file(void)
{
    mln_tcp_conn_t c;
    int sv[2];
    char got[32];
    P("plain recv M_C_TYPE_FILE (+FOLLOW)");
    mu_pair(sv, 0);
    mln_tcp_conn_init(&c, sv[0]);
    if (write(sv[1], "file-part-1;", 12) != 12) abort();
    check(mln_tcp_conn_recv(&c, M_C_TYPE_FILE) == M_C_NOTYET, "blocking FILE recv -> NOTYET");
    mln_buf_t *b1 = c.rcv_head ? c.rcv_head->buf : NULL;
    check(b1 && b1->in_file && b1->last_buf && b1->file && b1->file_pos == 0 && b1->file_last == 12,
          "buf in_file, offsets 0..12");
    if (write(sv[1], "part-2", 6) != 6) abort();
    mln_tcp_conn_recv(&c, M_C_TYPE_FILE | M_C_TYPE_FOLLOW);
    mln_buf_t *b2 = c.rcv_tail ? c.rcv_tail->buf : NULL;
    check(b2 && b2 != b1 && b2->file == b1->file && b1->shadow == b2 && b2->file_pos == 12 && b2->file_last == 18,
          "FOLLOW appends to the same file and links shadow");
    if (b1 && b1->file) {
        ssize_t n = pread(mln_file_fd(b1->file), got, sizeof(got), 0);
        check(n == 18 && memcmp(got, "file-part-1;part-2", 18) == 0, "the temp file holds both parts");
    }
    check(mln_tcp_conn_recv(&c, 0x4) == M_C_ERROR && errno == EINVAL, "recv with neither MEMORY nor FILE -> EINVAL/ERROR");
    mln_tcp_conn_destroy(&c);
    close(sv[0]);
    close(sv[1]);
}

/* An in_file buf goes out with sendfile, between memory bufs, in order. */
static void t_send_file_mixed(void)
{
    mln_tcp_conn_t a, b;
    int sv[2];
    unsigned char got[256];
    P("plain send memory + in_file + memory");
    mu_pair(sv, 1);
    mln_tcp_conn_init(&a, sv[0]);
    mln_tcp_conn_init(&b, sv[1]);
    mln_file_t *f = mln_file_tmp_open(a.pool);
    if (f == NULL || pwrite(mln_file_fd(f), "<FILE-BYTES>", 12, 0) != 12) abort();
    mln_chain_t *h = mu_mem_chain(a.pool, "head|", 5, 0);
    mln_chain_t *fc = mln_chain_new(a.pool);
    fc->buf = mln_buf_new(a.pool);
    fc->buf->file = f;
    fc->buf->in_file = 1;
    fc->buf->file_left_pos = fc->buf->file_pos = 0;
    fc->buf->file_last = 12;
    h->next = fc;
    fc->next = mu_mem_chain(a.pool, "|tail", 5, 1);
    mln_tcp_conn_append_chain(&a, h, NULL, M_C_SEND);
    int r = mln_tcp_conn_send(&a);
    check(r == M_C_FINISH && mln_tcp_conn_send_empty(&a), "send -> FINISH, SEND empty");
    mln_tcp_conn_recv(&b, M_C_TYPE_MEMORY);
    size_t n = mu_take_recv(&b, got, sizeof(got));
    check(n == 22 && memcmp(got, "head|<FILE-BYTES>|tail", 22) == 0, "bytes arrive in queue order");
    mln_tcp_conn_destroy(&a);
    mln_tcp_conn_destroy(&b);
    close(sv[0]);
    close(sv[1]);
}

/* FINISH only after the last_in_chain buf is out; nothing is dropped. */
static void t_send_no_drop(void)
{
    mln_tcp_conn_t a;
    int sv[2];
    P("plain send: queued bufs are never dropped");
    mu_pair(sv, 1);
    mln_tcp_conn_init(&a, sv[0]);
    /* Only empty bufs and a NULL-buf chain, no last_in_chain: NOTYET, all in SENT. */
    mln_chain_t *e1 = mu_mem_chain(a.pool, "", 0, 0), *e2 = mln_chain_new(a.pool);
    mln_tcp_conn_append(&a, e1, M_C_SEND);
    mln_tcp_conn_append(&a, e2, M_C_SEND);
    check(mln_tcp_conn_send(&a) == M_C_NOTYET && mln_tcp_conn_send_empty(&a) && mln_tcp_conn_head(&a, M_C_SENT) == e1,
          "empty bufs move to SENT (not released), NOTYET without last_in_chain");
    mu_release_sent(&a);
    /* A buf that is neither in memory nor in a file but claims data: EINVAL. */
    mln_chain_t *odd = mu_mem_chain(a.pool, "abc", 3, 1);
    odd->buf->in_memory = 0;
    mln_tcp_conn_append(&a, odd, M_C_SEND);
    check(mln_tcp_conn_send(&a) == M_C_ERROR && errno == EINVAL && mln_tcp_conn_head(&a, M_C_SEND) == odd,
          "a buf of no known kind -> EINVAL/ERROR, kept in SEND");
    odd->buf->in_memory = 1;
    mln_tcp_conn_destroy(&a);
    /* Non-blocking: fill the socket; the last buf is partly written -> NOTYET, not FINISH. */
    mln_tcp_conn_init(&a, sv[0]);
    size_t big = 4 << 20;
    unsigned char *data = malloc(big);
    mu_pattern(data, big, 9);
    mln_tcp_conn_append(&a, mu_mem_chain(a.pool, data, big, 1), M_C_SEND);
    int r = mln_tcp_conn_send(&a);
    check(r == M_C_NOTYET && !mln_tcp_conn_send_empty(&a) && mln_tcp_conn_sent_empty(&a),
          "a partly written last_in_chain buf -> NOTYET, stays in SEND");
    /* Drain on the other side while sending; every byte arrives. */
    size_t got = 0, bad = 0;
    unsigned char *rx = malloc(65536);
    for (int i = 0; i < 100000 && (r != M_C_FINISH || got < big); i++) {
        if (r != M_C_FINISH) r = mln_tcp_conn_send(&a);
        ssize_t n = read(sv[1], rx, 65536);
        if (n > 0) {
            if (memcmp(rx, data + got, (size_t)n) != 0) bad++;
            got += (size_t)n;
        }
    }
    check(r == M_C_FINISH && got == big && bad == 0, "4 MiB non-blocking: FINISH after the last byte, intact");
    free(rx);
    free(data);
    mln_tcp_conn_destroy(&a);
    close(sv[0]);
    close(sv[1]);
}

/*
 * A malformed buf with both in_memory and in_file set: mln_buf_left_size
 * counts its file offsets (64 KiB here), but its bytes are the 16 in memory.
 * Only those go out: nothing is read past `last` (valgrind), no spin.
 */
static void t_send_both_kinds(void)
{
    mln_tcp_conn_t a;
    int sv[2];
    unsigned char got[64];
    P("plain send: a buf flagged both in_memory and in_file");
    mu_pair(sv, 1);
    mln_tcp_conn_init(&a, sv[0]);
    mln_chain_t *odd = mu_both_kinds_chain(a.pool);
    mln_tcp_conn_append(&a, odd, M_C_SEND);
    int r = mln_tcp_conn_send(&a);
    check(r == M_C_FINISH && mln_tcp_conn_send_empty(&a) && mln_tcp_conn_head(&a, M_C_SENT) == odd,
          "send -> FINISH, the buf moved to SENT (%d)", r);
    ssize_t n = read(sv[1], got, sizeof(got));
    check(n == MU_BOTH_KINDS_LEN && memcmp(got, MU_BOTH_KINDS_DATA, MU_BOTH_KINDS_LEN) == 0,
          "exactly its %d memory bytes went out (%zd)", MU_BOTH_KINDS_LEN, n);
    mln_tcp_conn_destroy(&a);
    close(sv[0]);
    close(sv[1]);
}

/* Allocation failures give -1 / ERROR with ENOMEM, never a crash. */
static void t_alloc_failure(void)
{
    mln_tcp_conn_t c;
    int sv[2];
    P("plain allocation failures");
    melon_host_fail_alloc_after(0);
    memset(&c, 0x5A, sizeof(c));
    check(mln_tcp_conn_init(&c, -1) == -1 && c.pool == NULL, "init with a failing mln_alloc_init -> -1, pool NULL");
    melon_host_fail_alloc_after(-1);
    mu_pair(sv, 1);
    mln_tcp_conn_init(&c, sv[0]);
    if (write(sv[1], "data", 4) != 4) abort();
    melon_host_fail_alloc_after(1);
    int r = mln_tcp_conn_recv(&c, M_C_TYPE_MEMORY);
    int e = errno;
    melon_host_fail_alloc_after(-1);
    check(r == M_C_ERROR && e == ENOMEM && mln_tcp_conn_recv_empty(&c), "recv with the pool exhausted -> ENOMEM/ERROR");
    check(mln_tcp_conn_recv(&c, M_C_TYPE_MEMORY) == M_C_NOTYET && mu_chain_left(c.rcv_head) == 4,
          "the bytes are still there once memory is back");
    mln_tcp_conn_destroy(&c);
    close(sv[0]);
    close(sv[1]);
}

int main(int argc, char **argv)
{
    mu_setup(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    t_basic();
    t_queue_ops();
    t_send_recv();
    t_large();
    t_move_sent();
    t_send_chain();
    t_macros();
    t_cycles();
    t_perf();
    t_stability();
    t_recv_closed();
    t_recv_notyet_nb();
    t_recv_notyet_blk();
    t_recv_error();
    t_send_finish();
    t_recv_after_nb_send();
    t_init_hygiene();
    t_fd_set_and_nonblock_edges();
    t_recv_file();
    t_send_file_mixed();
    t_send_no_drop();
    t_send_both_kinds();
    t_alloc_failure();
    check(melon_host_live_pools() == 0 && melon_host_live_blocks() == 0, "no pool or block left alive");
    return check_summary();
}
