/*
 * corotls test fixture: Melon's counted string (spec melon.md §2.5).
 * Written for corotls from the spec.
 */
#ifndef MELON_HOST_MLN_STRING_H
#define MELON_HOST_MLN_STRING_H

#include <stddef.h>
#include <stdlib.h>
#include "mln_types.h"
#include "mln_alloc.h"

typedef struct {
    mln_u8ptr_t data;        /*  0 */
    mln_u64_t   len;         /*  8 */
    mln_uauto_t data_ref:1;  /* 16, bit 0: `data` is not owned separately */
    mln_uauto_t pool:1;      /*      bit 1: memory from mln_alloc_*, not malloc */
    mln_uauto_t ref:30;      /*      bits 2..31: reference count */
} mln_string_t;

_Static_assert(sizeof(mln_string_t) == 24, "Melon ABI: mln_string_t is 24 bytes");
_Static_assert(offsetof(mln_string_t, data) == 0, "Melon ABI: mln_string_t.data at 0");
_Static_assert(offsetof(mln_string_t, len) == 8, "Melon ABI: mln_string_t.len at 8");

/* Static initialiser for a string literal: data_ref=1, pool=0, ref=1. */
#define mln_string(lit) { (mln_u8ptr_t)(lit), sizeof(lit) - 1, 1, 0, 1 }

/*
 * Drop one reference. On Linux Melon this is a macro, not a symbol, so
 * corotls must never import it. When the count drops from 1 (or less), the
 * data is freed unless data_ref is set, then the header; the `pool` bit picks
 * mln_alloc_free over free for both.
 */
#define mln_string_free(pstr) do {                                     \
    mln_string_t *mln_sf_s_ = (pstr);                                  \
    if (mln_sf_s_ != NULL && mln_sf_s_->ref-- <= 1) {                  \
        if (!mln_sf_s_->data_ref && mln_sf_s_->data != NULL) {         \
            if (mln_sf_s_->pool) mln_alloc_free(mln_sf_s_->data);      \
            else free(mln_sf_s_->data);                                \
        }                                                              \
        if (mln_sf_s_->pool) mln_alloc_free(mln_sf_s_);                \
        else free(mln_sf_s_);                                          \
    }                                                                  \
} while (0)

/*
 * Deep copy in ONE malloc: header, then `len` data bytes, then a NUL.
 * The copy has data_ref=1, pool=0, ref=1 (so mln_string_free frees it with
 * a single free). NULL on allocation failure.
 */
extern mln_string_t *mln_string_dup(mln_string_t *str) __NONNULL1(1);

#endif
