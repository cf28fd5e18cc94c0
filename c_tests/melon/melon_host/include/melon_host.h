/*
 * corotls test fixture: accounting and fault injection for the Melon host
 * (c_tests/melon/melon_host/melon_host.c). Not part of Melon's API.
 */
#ifndef MELON_HOST_H
#define MELON_HOST_H

#include <stddef.h>

/* Blocks handed out by mln_alloc_m/_c and not yet freed, over all pools. */
extern size_t melon_host_live_blocks(void);
/* Pools created by mln_alloc_init and not yet destroyed. */
extern size_t melon_host_live_pools(void);
/*
 * Fault injection: after `n` more successful allocations (mln_alloc_m/_c,
 * mln_alloc_init), every further one fails with ENOMEM until this is called
 * again; n < 0 disables it (the default). Process-wide, so use it only while
 * a single thread allocates.
 */
extern void melon_host_fail_alloc_after(long n);

#endif
