/*
 * corotls test fixture: Melon's pool allocator API (spec melon.md §5.2).
 * Written for corotls from the spec; the implementation is melon_host.c.
 *
 * A pool owns every block taken from it: mln_alloc_destroy() releases the
 * blocks still live. mln_alloc_free() finds the owning pool from a header
 * stored just before the block, so it takes no pool argument.
 */
#ifndef MELON_HOST_MLN_ALLOC_H
#define MELON_HOST_MLN_ALLOC_H

#include "mln_types.h"

typedef struct mln_alloc_s mln_alloc_t; /* opaque */

/* Only (NULL, 0) is supported: a top-level pool without a capacity limit. */
extern mln_alloc_t *mln_alloc_init(mln_alloc_t *parent, mln_size_t capacity);
/* NULL-safe. Frees the pool and every block (and temp file) it still owns. */
extern void mln_alloc_destroy(mln_alloc_t *pool);
/* Uninitialised block of `size` bytes, 16-byte aligned; NULL on failure. */
extern void *mln_alloc_m(mln_alloc_t *pool, mln_size_t size);
/* Zeroed block, otherwise as mln_alloc_m. */
extern void *mln_alloc_c(mln_alloc_t *pool, mln_size_t size);
/* NULL-safe. Returns a block to the pool that handed it out. */
extern void mln_alloc_free(void *ptr);

#endif
