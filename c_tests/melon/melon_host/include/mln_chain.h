/*
 * corotls test fixture: Melon's buffers and chains (spec melon.md §2.4, §5.2).
 * Written for corotls from the spec.
 */
#ifndef MELON_HOST_MLN_CHAIN_H
#define MELON_HOST_MLN_CHAIN_H

#include <stddef.h>
#include <string.h>
#include "mln_types.h"
#include "mln_alloc.h"
#include "mln_string.h"
#include "mln_file.h"

/*
 * A buffer is a window either on memory ([left_pos, last) still to be
 * consumed, [pos, last) the data, [start, end) the allocation) or on a file
 * (file_left_pos / file_pos / file_last). The flags share one 32-bit unit at
 * byte 80. `mmap` is present on every non-MSVC build, so the later flags sit
 * one bit higher than their declaration order without it would suggest.
 */
typedef struct mln_buf_s {
    mln_u8ptr_t       left_pos;        /*  0 */
    mln_u8ptr_t       pos;             /*  8 */
    mln_u8ptr_t       last;            /* 16 */
    mln_u8ptr_t       start;           /* 24 */
    mln_u8ptr_t       end;             /* 32 */
    struct mln_buf_s *shadow;          /* 40: set => does not own memory/file */
    mln_off_t         file_left_pos;   /* 48 */
    mln_off_t         file_pos;        /* 56 */
    mln_off_t         file_last;       /* 64 */
    mln_file_t       *file;            /* 72 */
    mln_u32_t         temporary:1;     /* 80 bit 0: memory not owned */
    mln_u32_t         mmap:1;          /*    bit 1 */
    mln_u32_t         in_memory:1;     /*    bit 2 */
    mln_u32_t         in_file:1;       /*    bit 3 */
    mln_u32_t         flush:1;         /*    bit 4 */
    mln_u32_t         sync:1;          /*    bit 5 */
    mln_u32_t         last_buf:1;      /*    bit 6 */
    mln_u32_t         last_in_chain:1; /*    bit 7 */
} mln_buf_t;

typedef struct mln_chain_s {
    mln_buf_t          *buf;   /* 0 */
    struct mln_chain_s *next;  /* 8 */
} mln_chain_t;

_Static_assert(sizeof(mln_buf_t) == 88, "Melon ABI: mln_buf_t is 88 bytes");
_Static_assert(offsetof(mln_buf_t, left_pos) == 0, "Melon ABI: mln_buf_t.left_pos");
_Static_assert(offsetof(mln_buf_t, pos) == 8, "Melon ABI: mln_buf_t.pos");
_Static_assert(offsetof(mln_buf_t, last) == 16, "Melon ABI: mln_buf_t.last");
_Static_assert(offsetof(mln_buf_t, start) == 24, "Melon ABI: mln_buf_t.start");
_Static_assert(offsetof(mln_buf_t, end) == 32, "Melon ABI: mln_buf_t.end");
_Static_assert(offsetof(mln_buf_t, shadow) == 40, "Melon ABI: mln_buf_t.shadow");
_Static_assert(offsetof(mln_buf_t, file_left_pos) == 48, "Melon ABI: mln_buf_t.file_left_pos");
_Static_assert(offsetof(mln_buf_t, file_pos) == 56, "Melon ABI: mln_buf_t.file_pos");
_Static_assert(offsetof(mln_buf_t, file_last) == 64, "Melon ABI: mln_buf_t.file_last");
_Static_assert(offsetof(mln_buf_t, file) == 72, "Melon ABI: mln_buf_t.file");
_Static_assert(sizeof(mln_chain_t) == 16, "Melon ABI: mln_chain_t is 16 bytes");
_Static_assert(offsetof(mln_chain_t, buf) == 0, "Melon ABI: mln_chain_t.buf");
_Static_assert(offsetof(mln_chain_t, next) == 8, "Melon ABI: mln_chain_t.next");

/* Bytes still to be consumed / bytes held; 0 for a NULL buf. */
#define mln_buf_size(pbuf)                                             \
    ((pbuf) == NULL ? 0 :                                              \
     ((pbuf)->in_file ? (pbuf)->file_last - (pbuf)->file_pos           \
                      : (pbuf)->last - (pbuf)->pos))
#define mln_buf_left_size(pbuf)                                        \
    ((pbuf) == NULL ? 0 :                                              \
     ((pbuf)->in_file ? (pbuf)->file_last - (pbuf)->file_left_pos      \
                      : (pbuf)->last - (pbuf)->left_pos))

/*
 * A zeroed buf from `pool`. In stock Melon master this is a static inline,
 * not an exported symbol, which is why corotls must not import it.
 */
static inline mln_buf_t *mln_buf_new(mln_alloc_t *pool)
{
    mln_buf_t *b = (mln_buf_t *)mln_alloc_m(pool, sizeof(mln_buf_t));
    if (b != NULL) memset(b, 0, sizeof(*b));
    return b;
}

/* A chain node with buf=NULL, next=NULL; NULL on failure. */
extern mln_chain_t *mln_chain_new(mln_alloc_t *pool);
/* A chain node holding a zeroed buf, both from `pool`; NULL on failure. */
extern mln_chain_t *mln_chain_new_with_buf(mln_alloc_t *pool);
/*
 * Release one node (its `next` is ignored) with its buf, following Melon's
 * ownership rules:
 *   - buf with `shadow` or `temporary` set: only the buf struct is freed;
 *   - `in_memory`: the memory at `start` (or `pos` if start is NULL) goes
 *     back to its pool with the buf;
 *   - `in_file`: a temp file from mln_file_tmp_open() is closed and freed.
 * Every pointer freed here must come from mln_alloc_*. NULL-safe.
 */
extern void mln_chain_pool_release(mln_chain_t *c);
/* mln_chain_pool_release() on every node along `next`. NULL-safe. */
extern void mln_chain_pool_release_all(mln_chain_t *c);

#endif
