/*
 * corotls test fixture: Melon's scalar typedefs (spec melon.md §2.1,
 * x86_64 / LP64 Linux). Written for corotls from the spec.
 *
 * The header guards of this fixture differ from Melon's on purpose: mixing
 * fixture headers with real Melon headers in one translation unit then fails
 * loudly with redefinitions instead of silently picking one of them.
 */
#ifndef MELON_HOST_MLN_TYPES_H
#define MELON_HOST_MLN_TYPES_H

#include <stddef.h>
#include <sys/types.h>
#include "mln_utils.h"

typedef unsigned char  mln_u8_t;
typedef unsigned int   mln_u32_t;
typedef int            mln_s32_t;
typedef unsigned long  mln_u64_t;
typedef long           mln_s64_t;
typedef unsigned char *mln_u8ptr_t;
typedef size_t         mln_size_t;
typedef off_t          mln_off_t;
typedef unsigned long  mln_uauto_t;

_Static_assert(sizeof(mln_u64_t) == 8, "Melon ABI: mln_u64_t is 64-bit (LP64)");
_Static_assert(sizeof(mln_off_t) == 8, "Melon ABI: off_t must be 64-bit");
_Static_assert(sizeof(void *) == 8, "Melon ABI: LP64 only");

#endif
