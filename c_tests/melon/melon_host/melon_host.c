/*
 * corotls test fixture: a minimal Melon host.
 *
 * Implements the Melon functions that corotls' Melon face imports
 * (spec melon.md §5.2), with Melon's layouts and ownership rules, so the face
 * can be tested without Melon. Written for corotls from the spec; no Melon
 * code is used.
 *
 * Pool design: every block is a malloc'd header + payload; the header links
 * the block into its pool's list (so destroy frees leftovers) and names the
 * pool (so mln_alloc_free needs no pool argument). A magic word turns frees
 * of foreign or already-freed pointers into an immediate abort with a
 * message, which is more useful in a test than Melon's silent corruption.
 *
 * Threads: a pool is used by one thread at a time and is not locked; the
 * global accounting counters are atomic.
 */
#define _GNU_SOURCE /* mkostemp */

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mln_alloc.h"
#include "mln_chain.h"
#include "mln_file.h"
#include "mln_string.h"
#include "melon_host.h"

#define POOL_MAGIC  0x4d4c4e504f4f4c31ULL /* "MLNPOOL1" */
#define BLOCK_MAGIC 0x4d4c4e424c4b3031ULL /* "MLNBLK01" */
#define DEAD_MAGIC  0xdeadbeefdeadbeefULL

/* Block header: `flags` marks temp-file structs whose fd the pool closes. */
#define BLK_TMPFILE 0x1u

typedef struct melon_host_blk {
    struct melon_host_blk *prev;
    struct melon_host_blk *next;
    mln_alloc_t           *pool;
    uint64_t               magic;
    unsigned               flags;
} melon_host_blk_t;

/*
 * The header is padded to a multiple of max_align_t's alignment (a union's
 * size is a multiple of its alignment), so payloads stay as aligned as
 * malloc's.
 */
typedef union {
    melon_host_blk_t b;
    max_align_t      align;
} melon_host_hdr_t;

#define HDR_SIZE sizeof(melon_host_hdr_t)

struct mln_alloc_s {
    uint64_t          magic;
    melon_host_blk_t *head; /* blocks still owned, most recent first */
};

static atomic_size_t live_blocks;
static atomic_size_t live_pools;
static atomic_long   fail_after = -1; /* < 0: fault injection off */

size_t melon_host_live_blocks(void) { return atomic_load(&live_blocks); }
size_t melon_host_live_pools(void)  { return atomic_load(&live_pools); }
void melon_host_fail_alloc_after(long n) { atomic_store(&fail_after, n); }

static void die(const char *what, const void *p)
{
    fprintf(stderr, "melon_host: %s (%p)\n", what, p);
    abort();
}

/* True when fault injection says this allocation must fail. */
static int injected_failure(void)
{
    long n = atomic_load(&fail_after);
    while (n >= 0) {
        if (n == 0) return 1;
        if (atomic_compare_exchange_weak(&fail_after, &n, n - 1)) return 0;
    }
    return 0;
}

mln_alloc_t *mln_alloc_init(mln_alloc_t *parent, mln_size_t capacity)
{
    mln_alloc_t *pool;

    /* Shared-memory and capped pools are not needed by corotls. */
    if (parent != NULL || capacity != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (injected_failure()) {
        errno = ENOMEM;
        return NULL;
    }
    if ((pool = malloc(sizeof(*pool))) == NULL) return NULL;
    pool->magic = POOL_MAGIC;
    pool->head = NULL;
    atomic_fetch_add(&live_pools, 1);
    return pool;
}

static melon_host_blk_t *blk_of(void *ptr)
{
    melon_host_blk_t *blk = (melon_host_blk_t *)((char *)ptr - HDR_SIZE);
    if (blk->magic != BLOCK_MAGIC)
        die(blk->magic == DEAD_MAGIC ? "double free" : "free of a pointer not from mln_alloc_*", ptr);
    return blk;
}

/* Unlink, close a temp file's fd if the block is one, and free. */
static void blk_free(melon_host_blk_t *blk)
{
    mln_alloc_t *pool = blk->pool;

    if (blk->flags & BLK_TMPFILE) {
        mln_file_t *f = (mln_file_t *)((char *)blk + HDR_SIZE);
        if (f->fd >= 0) close(f->fd);
    }
    if (blk->prev != NULL) blk->prev->next = blk->next;
    else pool->head = blk->next;
    if (blk->next != NULL) blk->next->prev = blk->prev;
    blk->magic = DEAD_MAGIC;
    free(blk);
    atomic_fetch_sub(&live_blocks, 1);
}

void mln_alloc_destroy(mln_alloc_t *pool)
{
    if (pool == NULL) return;
    if (pool->magic != POOL_MAGIC) die("destroy of a non-pool or destroyed pool", pool);
    while (pool->head != NULL) blk_free(pool->head);
    pool->magic = DEAD_MAGIC;
    free(pool);
    atomic_fetch_sub(&live_pools, 1);
}

void *mln_alloc_m(mln_alloc_t *pool, mln_size_t size)
{
    melon_host_blk_t *blk;

    /* Melon would crash on these; a clear message is better in tests. */
    if (pool == NULL) die("mln_alloc_m on a NULL pool", pool);
    if (pool->magic != POOL_MAGIC) die("mln_alloc_m on a non-pool or destroyed pool", pool);
    if (injected_failure() || size > SIZE_MAX - HDR_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    if ((blk = malloc(HDR_SIZE + size)) == NULL) return NULL;
    blk->pool = pool;
    blk->magic = BLOCK_MAGIC;
    blk->flags = 0;
    blk->prev = NULL;
    blk->next = pool->head;
    if (pool->head != NULL) pool->head->prev = blk;
    pool->head = blk;
    atomic_fetch_add(&live_blocks, 1);
    return (char *)blk + HDR_SIZE;
}

void *mln_alloc_c(mln_alloc_t *pool, mln_size_t size)
{
    void *p = mln_alloc_m(pool, size);
    if (p != NULL) memset(p, 0, size);
    return p;
}

void mln_alloc_free(void *ptr)
{
    if (ptr == NULL) return;
    blk_free(blk_of(ptr));
}

mln_chain_t *mln_chain_new(mln_alloc_t *pool)
{
    mln_chain_t *c = mln_alloc_m(pool, sizeof(*c));
    if (c != NULL) {
        c->buf = NULL;
        c->next = NULL;
    }
    return c;
}

mln_chain_t *mln_chain_new_with_buf(mln_alloc_t *pool)
{
    mln_chain_t *c = mln_chain_new(pool);
    if (c == NULL) return NULL;
    if ((c->buf = mln_buf_new(pool)) == NULL) {
        mln_alloc_free(c);
        return NULL;
    }
    return c;
}

/* Melon's ownership rules for a buf; see mln_chain.h. */
static void buf_release(mln_buf_t *b)
{
    if (b == NULL) return;
    if (b->shadow == NULL && !b->temporary) {
        if (b->in_memory) {
            mln_alloc_free(b->start != NULL ? b->start : b->pos);
        } else if (b->in_file && b->file != NULL && b->file->is_tmp) {
            /* Closes the fd through the BLK_TMPFILE flag. */
            mln_alloc_free(b->file);
        }
    }
    mln_alloc_free(b);
}

void mln_chain_pool_release(mln_chain_t *c)
{
    if (c == NULL) return;
    buf_release(c->buf);
    mln_alloc_free(c);
}

void mln_chain_pool_release_all(mln_chain_t *c)
{
    while (c != NULL) {
        mln_chain_t *next = c->next;
        mln_chain_pool_release(c);
        c = next;
    }
}

mln_string_t *mln_string_dup(mln_string_t *str)
{
    mln_string_t *s;

    if (str->len > SIZE_MAX - sizeof(*s) - 1) {
        errno = ENOMEM;
        return NULL;
    }
    if ((s = malloc(sizeof(*s) + str->len + 1)) == NULL) return NULL;
    s->data = (mln_u8ptr_t)(s + 1);
    if (str->len > 0) memcpy(s->data, str->data, str->len);
    s->data[str->len] = 0;
    s->len = str->len;
    s->data_ref = 1; /* data lives inside the header's allocation */
    s->pool = 0;
    s->ref = 1;
    return s;
}

mln_file_t *mln_file_tmp_open(mln_alloc_t *pool)
{
    char path[4096];
    const char *dir = getenv("TMPDIR");
    mln_file_t *f;
    int fd, n;

    if (dir == NULL || dir[0] == 0) dir = "/tmp";
    n = snprintf(path, sizeof(path), "%s/melon_host_XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    if ((f = mln_alloc_c(pool, sizeof(*f))) == NULL) return NULL;
    if ((fd = mkostemp(path, O_CLOEXEC)) < 0) {
        mln_alloc_free(f);
        return NULL;
    }
    unlink(path); /* anonymous: the data lives until the fd is closed */
    f->fd = fd;
    f->is_tmp = 1;
    f->refer_cnt = 1;
    f->mtime = f->ctime = f->atime = time(NULL);
    blk_of(f)->flags |= BLK_TMPFILE;
    return f;
}
