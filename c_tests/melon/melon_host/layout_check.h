/*
 * corotls C tests: helpers for the Melon layout programs
 * (c_tests/melon/melon_layout.c, c_tests/melon/melon_layout_plain.c).
 *
 * Every measurement is printed as one check and also recorded under a stable
 * name, so that it can later be compared with the layout the Rust face
 * reports (see COROTLS_MELON_LAYOUT_REPORT in melon_layout.c). Names:
 *   "<type>.sizeof"        sizeof
 *   "<type>.<field>"       offsetof
 *   "<type>.<field>@bit"   absolute position of the field's lowest bit
 *                          (byte offset * 8 + bit within the byte)
 *   "<type>.<field>@width" number of bits of the field
 */
#ifndef COROTLS_LAYOUT_CHECK_H
#define COROTLS_LAYOUT_CHECK_H

#include <stddef.h>
#include <string.h>
#include "check.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the Melon ABI checked here is little-endian (x86_64 / aarch64)"
#endif

#define LAYOUT_MAX_RECORDS 128

struct layout_record {
    char          name[80];
    unsigned long value;
};

static struct layout_record layout_records[LAYOUT_MAX_RECORDS];
static size_t layout_nrecords;

CHECK_UNUSED static void layout_record(const char *name, unsigned long value)
{
    if (layout_nrecords == LAYOUT_MAX_RECORDS) {
        check(0, "layout record table full at %s", name);
        return;
    }
    snprintf(layout_records[layout_nrecords].name,
             sizeof(layout_records[0].name), "%s", name);
    layout_records[layout_nrecords++].value = value;
}

/* The C-side value recorded under `name`, or NULL. */
CHECK_UNUSED static const struct layout_record *layout_find(const char *name)
{
    for (size_t i = 0; i < layout_nrecords; i++)
        if (strcmp(layout_records[i].name, name) == 0) return &layout_records[i];
    return NULL;
}

CHECK_UNUSED static void expect_value(const char *name, const char *what,
                                      unsigned long got, unsigned long want)
{
    layout_record(name, got);
    check(got == want, "%-36s %-7s %3lu (want %lu)", name, what, got, want);
}

#define EXPECT_SIZE(T, want) expect_value(#T ".sizeof", "sizeof", sizeof(T), (want))
#define EXPECT_OFF(T, f, want) expect_value(#T "." #f, "offset", offsetof(T, f), (want))

/*
 * `obj` is a zeroed struct in which exactly one bitfield was set to all ones.
 * Its raw bytes must equal zeros except `want_width` bits starting at bit
 * `want_bit` of the storage unit at byte `unit_off`.
 */
CHECK_UNUSED static void expect_bits(const char *name, const unsigned char *obj,
                                     size_t size, size_t unit_off,
                                     unsigned want_bit, unsigned want_width)
{
    char key[96];
    unsigned long lowest = 0, count = 0, want_abs = unit_off * 8 + want_bit;
    int contiguous = 1;

    /* Measure: where are the set bits, and are they one run? */
    for (size_t i = 0; i < size * 8; i++) {
        if (!(obj[i / 8] & (1u << (i % 8)))) continue;
        if (count == 0) lowest = i;
        else if (i != lowest + count) contiguous = 0;
        count++;
    }
    snprintf(key, sizeof(key), "%s@bit", name);
    layout_record(key, lowest);
    snprintf(key, sizeof(key), "%s@width", name);
    layout_record(key, count);

    check(contiguous && lowest == want_abs && count == want_width,
          "%-36s bits    byte %lu bit %lu width %lu (want byte %zu bit %u width %u)",
          name, lowest / 8, lowest % 8, count, unit_off + want_bit / 8,
          want_bit % 8, want_width);
}

/* Sets T.f to all ones in a zeroed T and checks where the bits landed. */
#define EXPECT_BITS(T, f, unit_off, bit, width) do {                        \
        T s_;                                                               \
        memset(&s_, 0, sizeof(s_));                                         \
        s_.f = (1ul << (width)) - 1;                                        \
        expect_bits(#T "." #f, (const unsigned char *)&s_, sizeof(s_),      \
                    (unit_off), (bit), (width));                            \
    } while (0)
#define EXPECT_BIT(T, f, unit_off, bit) EXPECT_BITS(T, f, unit_off, bit, 1)

#endif
