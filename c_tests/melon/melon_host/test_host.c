/*
 * corotls: self-test of the Melon host fixture (melon_host.c).
 * Run it under valgrind too: the fixture must neither leak nor touch memory
 * it does not own. Output: one line per check, then "N passed, M failed".
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mln_alloc.h"
#include "mln_chain.h"
#include "mln_file.h"
#include "mln_string.h"
#include "melon_host.h"
#include "check.h"

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

static void test_pool(void)
{
    mln_alloc_t *pool, *bad;
    unsigned char *m, *c;
    size_t base = melon_host_live_blocks();

    check(melon_host_live_pools() == 0 && base == 0, "pool: nothing live at start");
    pool = mln_alloc_init(NULL, 0);
    if (!check(pool != NULL && melon_host_live_pools() == 1, "pool: init(NULL, 0) creates a pool"))
        return;

    errno = 0;
    bad = mln_alloc_init(pool, 0);
    check(bad == NULL && errno == EINVAL, "pool: init with a parent is refused (EINVAL)");
    errno = 0;
    bad = mln_alloc_init(NULL, 4096);
    check(bad == NULL && errno == EINVAL, "pool: init with a capacity is refused (EINVAL)");

    m = mln_alloc_m(pool, 100);
    c = mln_alloc_c(pool, 256);
    check(m != NULL && c != NULL && melon_host_live_blocks() == 2, "pool: alloc_m + alloc_c give 2 live blocks");
    check(((uintptr_t)m % _Alignof(max_align_t)) == 0 && ((uintptr_t)c % _Alignof(max_align_t)) == 0,
          "pool: blocks are max_align_t aligned");
    check(all_zero(c, 256), "pool: alloc_c zeroes");
    memset(m, 0xa5, 100); /* writable over its whole size (valgrind checks) */
    mln_alloc_free(m);
    check(melon_host_live_blocks() == 1, "pool: alloc_free returns one block");
    mln_alloc_free(NULL);
    check(melon_host_live_blocks() == 1, "pool: alloc_free(NULL) does nothing");

    /* Leave blocks behind on purpose: destroy must free them. */
    (void)mln_alloc_m(pool, 10);
    (void)mln_alloc_m(pool, 0);
    mln_alloc_destroy(pool);
    check(melon_host_live_blocks() == 0 && melon_host_live_pools() == 0,
          "pool: destroy frees the blocks still owned");
    mln_alloc_destroy(NULL);
    check(1, "pool: destroy(NULL) does nothing");
}

static void test_chain(void)
{
    static char literal[] = "static, not from the pool";
    mln_alloc_t *pool = mln_alloc_init(NULL, 0);
    mln_chain_t *c1, *c2, *c3, *c4, *c5;
    mln_buf_t *b;
    unsigned char *data;

    if (!check(pool != NULL, "chain: pool")) return;

    c1 = mln_chain_new(pool);
    check(c1 != NULL && c1->buf == NULL && c1->next == NULL, "chain: chain_new has buf=NULL next=NULL");
    c2 = mln_chain_new_with_buf(pool);
    check(c2 != NULL && c2->next == NULL && c2->buf != NULL && all_zero(c2->buf, sizeof(mln_buf_t)),
          "chain: chain_new_with_buf has a zeroed 88-byte buf");
    b = mln_buf_new(pool);
    check(b != NULL && all_zero(b, sizeof(*b)), "chain: mln_buf_new (static inline) zeroes");
    mln_alloc_free(b);
    check(melon_host_live_blocks() == 3, "chain: 3 live blocks (c1, c2, c2->buf)");

    /* A memory buf owns its data: release frees chain, buf and start. */
    data = mln_alloc_m(pool, 64);
    memcpy(data, "hello", 5);
    c2->buf->start = c2->buf->pos = c2->buf->left_pos = data;
    c2->buf->last = c2->buf->end = data + 5;
    c2->buf->in_memory = 1;
    c2->buf->last_buf = c2->buf->last_in_chain = 1;
    check(mln_buf_size(c2->buf) == 5 && mln_buf_left_size(c2->buf) == 5, "chain: memory buf size 5");
    c2->buf->left_pos += 2;
    check(mln_buf_left_size(c2->buf) == 3 && mln_buf_size(c2->buf) == 5, "chain: left_size follows left_pos");
    check(mln_buf_size((mln_buf_t *)NULL) == 0 && mln_buf_left_size((mln_buf_t *)NULL) == 0,
          "chain: size macros give 0 for NULL");
    mln_chain_pool_release(c2);
    mln_chain_pool_release(c1);
    check(melon_host_live_blocks() == 0, "chain: release frees chain, buf and start");
    mln_chain_pool_release(NULL);

    /* start NULL: Melon frees pos instead. */
    c1 = mln_chain_new_with_buf(pool);
    c1->buf->pos = c1->buf->left_pos = mln_alloc_m(pool, 8);
    c1->buf->last = c1->buf->pos + 8;
    c1->buf->in_memory = 1;
    /* temporary: the memory is not owned (static here; freeing it would abort). */
    c2 = mln_chain_new_with_buf(pool);
    c2->buf->start = c2->buf->pos = c2->buf->left_pos = (mln_u8ptr_t)literal;
    c2->buf->last = c2->buf->end = (mln_u8ptr_t)literal + sizeof(literal) - 1;
    c2->buf->in_memory = c2->buf->temporary = 1;
    /* shadow: c4 views c3's memory; only c3 frees it. */
    c3 = mln_chain_new_with_buf(pool);
    c3->buf->start = c3->buf->pos = c3->buf->left_pos = mln_alloc_m(pool, 16);
    c3->buf->last = c3->buf->end = c3->buf->start + 16;
    c3->buf->in_memory = 1;
    c4 = mln_chain_new_with_buf(pool);
    *c4->buf = *c3->buf;
    c4->buf->shadow = c3->buf;
    /* A node without a buf. */
    c5 = mln_chain_new(pool);
    c1->next = c2; c2->next = c3; c3->next = c4; c4->next = c5;
    check(melon_host_live_blocks() == 11, "chain: 5 nodes, 4 bufs, 2 owned data blocks live");
    mln_chain_pool_release_all(c1);
    check(melon_host_live_blocks() == 0, "chain: release_all frees the list (pos, temporary, shadow, NULL buf)");
    mln_chain_pool_release_all(NULL);

    mln_alloc_destroy(pool);
    check(melon_host_live_pools() == 0, "chain: pool destroyed");
}

static void test_string(void)
{
    mln_string_t lit = mln_string("hello");
    mln_string_t empty = mln_string("");
    mln_string_t *d, *e, *p;
    mln_alloc_t *pool;

    check(lit.data != NULL && memcmp(lit.data, "hello", 5) == 0 && lit.len == 5
          && lit.data_ref == 1 && lit.pool == 0 && lit.ref == 1,
          "string: mln_string(\"hello\") initialiser");

    d = mln_string_dup(&lit);
    check(d != NULL && d->len == 5 && memcmp(d->data, "hello", 5) == 0 && d->data[5] == 0,
          "string: dup copies data and NUL-terminates");
    check(d != NULL && d->data == (mln_u8ptr_t)(d + 1) && d->data != lit.data,
          "string: dup is one allocation (data follows the header)");
    check(d != NULL && d->data_ref == 1 && d->pool == 0 && d->ref == 1,
          "string: dup sets data_ref=1 pool=0 ref=1");
    if (d != NULL) {
        d->ref++; /* a second holder */
        mln_string_free(d);
        check(d->ref == 1 && d->data[0] == 'h', "string: free with ref 2 only drops a reference");
        mln_string_free(d); /* frees (valgrind would report a leak otherwise) */
    }

    e = mln_string_dup(&empty);
    check(e != NULL && e->len == 0 && e->data[0] == 0, "string: dup of an empty string");
    mln_string_free(e);
    mln_string_free((mln_string_t *)NULL);

    /* The pool bit routes both frees to mln_alloc_free. */
    pool = mln_alloc_init(NULL, 0);
    p = mln_alloc_m(pool, sizeof(*p));
    p->data = mln_alloc_m(pool, 4);
    p->len = 4;
    p->data_ref = 0;
    p->pool = 1;
    p->ref = 1;
    mln_string_free(p);
    check(melon_host_live_blocks() == 0, "string: free of a pool string returns header and data");
    mln_alloc_destroy(pool);
}

static int fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void test_tmpfile(void)
{
    mln_alloc_t *pool = mln_alloc_init(NULL, 0);
    mln_file_t *f;
    mln_chain_t *c;
    struct stat st;
    char back[4] = {0};
    int fd, raw_fd;

    f = mln_file_tmp_open(pool);
    if (!check(f != NULL && mln_file_fd(f) >= 0, "tmpfile: open gives an fd")) {
        mln_alloc_destroy(pool);
        return;
    }
    fd = mln_file_fd(f);
    memcpy(&raw_fd, (const char *)f + 16, sizeof(raw_fd));
    check(raw_fd == fd, "tmpfile: fd is at offset 16");
    check(f->is_tmp == 1, "tmpfile: is_tmp set");
    check(write(fd, "abc", 3) == 3 && pread(fd, back, 3, 0) == 3 && memcmp(back, "abc", 3) == 0,
          "tmpfile: read-write");
    check(fstat(fd, &st) == 0 && st.st_nlink == 0, "tmpfile: already unlinked");
    check((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, "tmpfile: close-on-exec");
    mln_alloc_destroy(pool);
    check(!fd_is_open(fd), "tmpfile: pool destroy closes it");

    /* Releasing an in_file buf closes its temp file, as in Melon. */
    pool = mln_alloc_init(NULL, 0);
    f = mln_file_tmp_open(pool);
    c = mln_chain_new_with_buf(pool);
    if (f == NULL || c == NULL) {
        check(0, "tmpfile: setup for release");
        mln_alloc_destroy(pool);
        return;
    }
    fd = mln_file_fd(f);
    c->buf->file = f;
    c->buf->in_file = 1;
    c->buf->file_left_pos = c->buf->file_pos = 0;
    c->buf->file_last = 3;
    check(mln_buf_size(c->buf) == 3 && mln_buf_left_size(c->buf) == 3, "tmpfile: in_file buf size from file offsets");
    mln_chain_pool_release(c);
    check(!fd_is_open(fd) && melon_host_live_blocks() == 0, "tmpfile: in_file buf release closes and frees the file");
    mln_alloc_destroy(pool);
}

static void test_fault_injection(void)
{
    mln_alloc_t *pool = mln_alloc_init(NULL, 0);
    void *a, *b;
    mln_chain_t *c;

    melon_host_fail_alloc_after(1);
    a = mln_alloc_m(pool, 8);
    errno = 0;
    b = mln_alloc_m(pool, 8);
    check(a != NULL && b == NULL && errno == ENOMEM, "fault: fail_alloc_after(1) fails the 2nd allocation with ENOMEM");
    melon_host_fail_alloc_after(1);
    c = mln_chain_new_with_buf(pool);
    check(c == NULL && melon_host_live_blocks() == 1, "fault: chain_new_with_buf fails without leaking the node");
    melon_host_fail_alloc_after(0);
    check(mln_alloc_init(NULL, 0) == NULL, "fault: pool creation can fail too");
    melon_host_fail_alloc_after(-1);
    b = mln_alloc_m(pool, 8);
    check(b != NULL, "fault: fail_alloc_after(-1) switches it off");
    mln_alloc_destroy(pool);
}

static void *thread_main(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    mln_alloc_t *pool = mln_alloc_init(NULL, 0);
    void *slots[64] = {0};

    if (pool == NULL) return (void *)1;
    for (int i = 0; i < 20000; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 16) % 64;
        if (slots[k] != NULL) {
            mln_alloc_free(slots[k]);
            slots[k] = NULL;
        } else {
            slots[k] = mln_alloc_m(pool, 1 + (seed >> 8) % 512);
            if (slots[k] == NULL) return (void *)1;
        }
    }
    mln_alloc_destroy(pool); /* frees whatever is still in the slots */
    return NULL;
}

static void test_threads(void)
{
    pthread_t t[2];
    void *r0 = (void *)1, *r1 = (void *)1;
    int ok = pthread_create(&t[0], NULL, thread_main, (void *)1) == 0;

    if (pthread_create(&t[1], NULL, thread_main, (void *)2) != 0) ok = 0;
    else pthread_join(t[1], &r1);
    if (ok) pthread_join(t[0], &r0);
    check(ok && r0 == NULL && r1 == NULL, "threads: two threads with their own pools");
    check(melon_host_live_blocks() == 0 && melon_host_live_pools() == 0,
          "threads: counters balance to zero");
}

int main(void)
{
    test_pool();
    test_chain();
    test_string();
    test_tmpfile();
    test_fault_injection();
    test_threads();
    check(melon_host_live_blocks() == 0 && melon_host_live_pools() == 0,
          "end: no live blocks or pools");
    return check_summary();
}
