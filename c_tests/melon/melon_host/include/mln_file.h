/*
 * corotls test fixture: Melon's file descriptor object (spec melon.md §2.4).
 * Written for corotls from the spec.
 *
 * Only the layout matters to corotls: the struct is 80 bytes and `fd` sits
 * at offset 16 (read through mln_file_fd()). The other members exist so that
 * size and offsets match a real Melon build.
 */
#ifndef MELON_HOST_MLN_FILE_H
#define MELON_HOST_MLN_FILE_H

#include <stddef.h>
#include <time.h>
#include "mln_types.h"
#include "mln_alloc.h"
#include "mln_string.h"

typedef struct mln_fileset_s mln_fileset_t; /* not implemented by the fixture */

typedef struct mln_file_s {
    struct mln_file_s *prev;       /*  0 */
    struct mln_file_s *next;       /*  8 */
    int                fd;         /* 16 */
    mln_u32_t          is_tmp:1;   /* 20 */
    mln_string_t      *file_path;  /* 24 */
    mln_fileset_t     *fset;       /* 32 */
    size_t             refer_cnt;  /* 40 */
    size_t             size;       /* 48 */
    time_t             mtime;      /* 56 */
    time_t             ctime;      /* 64 */
    time_t             atime;      /* 72 */
} mln_file_t;

_Static_assert(sizeof(mln_file_t) == 80, "Melon ABI: mln_file_t is 80 bytes");
_Static_assert(offsetof(mln_file_t, fd) == 16, "Melon ABI: mln_file_t.fd at 16");

#define mln_file_fd(pfile) ((pfile)->fd)

/*
 * An anonymous (already unlinked) read-write temp file, its struct taken from
 * `pool`. Releasing an in_file buf that refers to it closes it (as Melon
 * does); otherwise mln_alloc_destroy(pool) closes it. NULL on failure.
 */
extern mln_file_t *mln_file_tmp_open(mln_alloc_t *pool) __NONNULL1(1);

#endif
