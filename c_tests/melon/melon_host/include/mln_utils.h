/*
 * corotls test fixture: the subset of Melon's mln_utils.h that the
 * connection header needs (spec melon.md §2.1). Written for corotls from the
 * spec; this is not Melon's header.
 */
#ifndef MELON_HOST_MLN_UTILS_H
#define MELON_HOST_MLN_UTILS_H

#include <sys/cdefs.h> /* glibc's __nonnull */

/*
 * Melon marks pointer arguments non-NULL with glibc's attribute, so a
 * compiler may assume them non-NULL (and drop NULL checks inside callees).
 */
#define __NONNULL1(x)     __nonnull((x))
#define __NONNULL2(x, y)  __nonnull((x)) __nonnull((y))
#define __NONNULL3(x, y, z) __nonnull((x)) __nonnull((y)) __nonnull((z))

/* Debug-only assertion, as in Melon: nothing unless __DEBUG__. */
#if defined(__DEBUG__)
#include <assert.h>
#define ASSERT(x) assert(x)
#else
#define ASSERT(x)
#endif

#endif
