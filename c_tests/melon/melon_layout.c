/*
 * corotls: checks, from C, the Melon ABI that include/melon/mln_connection.h
 * and the host fixture headers declare (spec melon.md §2), in the MLN_TLS
 * build. The plain (64-byte) build is checked by melon_layout_plain.c.
 *
 * Build: cc -std=gnu11 -DMLN_TLS -I include/melon -I c_tests/melon/melon_host/include
 *        c_tests/melon/melon_layout.c
 * Offsets and sizes come from the compiler; bitfield positions are measured
 * at run time from the raw bytes of a zeroed struct with one field set.
 */
#ifndef MLN_TLS
#error "melon_layout.c checks the MLN_TLS layout: build it with -DMLN_TLS"
#endif

#include "mln_connection.h"
#include "melon_host/layout_check.h"

static void check_conn(void)
{
    EXPECT_SIZE(mln_tcp_conn_t, 112);
    check(_Alignof(mln_tcp_conn_t) == 8, "%-36s align   %3zu (want 8)",
          "mln_tcp_conn_t", (size_t)_Alignof(mln_tcp_conn_t));
    EXPECT_OFF(mln_tcp_conn_t, pool, 0);
    EXPECT_OFF(mln_tcp_conn_t, rcv_head, 8);
    EXPECT_OFF(mln_tcp_conn_t, rcv_tail, 16);
    EXPECT_OFF(mln_tcp_conn_t, snd_head, 24);
    EXPECT_OFF(mln_tcp_conn_t, snd_tail, 32);
    EXPECT_OFF(mln_tcp_conn_t, sent_head, 40);
    EXPECT_OFF(mln_tcp_conn_t, sent_tail, 48);
    EXPECT_OFF(mln_tcp_conn_t, sockfd, 56);
    EXPECT_BIT(mln_tcp_conn_t, nonblock, 60, 0);
    EXPECT_OFF(mln_tcp_conn_t, ssl, 64);
    EXPECT_OFF(mln_tcp_conn_t, tls_conf, 72);
    EXPECT_OFF(mln_tcp_conn_t, tls_pending, 80);
    EXPECT_OFF(mln_tcp_conn_t, tls_pending_off, 88);
    EXPECT_OFF(mln_tcp_conn_t, tls_pending_len, 96);
    EXPECT_BIT(mln_tcp_conn_t, tls_done, 104, 0);
    EXPECT_BIT(mln_tcp_conn_t, tls_want_r, 104, 1);
    EXPECT_BIT(mln_tcp_conn_t, tls_want_w, 104, 2);
    EXPECT_BIT(mln_tcp_conn_t, tls_shut, 104, 3);
}

static void check_conf(void)
{
    EXPECT_SIZE(mln_tcp_tls_conf_t, 48);
    EXPECT_OFF(mln_tcp_tls_conf_t, ctx, 0);
    EXPECT_OFF(mln_tcp_tls_conf_t, cert_file, 8);
    EXPECT_OFF(mln_tcp_tls_conf_t, key_file, 16);
    EXPECT_OFF(mln_tcp_tls_conf_t, ca_file, 24);
    EXPECT_OFF(mln_tcp_tls_conf_t, ciphers, 32);
    EXPECT_OFF(mln_tcp_tls_conf_t, versions, 40);
    EXPECT_BIT(mln_tcp_tls_conf_t, role, 44, 0);
    EXPECT_BIT(mln_tcp_tls_conf_t, verify, 44, 1);
}

static void check_buf_chain(void)
{
    EXPECT_SIZE(mln_buf_t, 88);
    EXPECT_OFF(mln_buf_t, left_pos, 0);
    EXPECT_OFF(mln_buf_t, pos, 8);
    EXPECT_OFF(mln_buf_t, last, 16);
    EXPECT_OFF(mln_buf_t, start, 24);
    EXPECT_OFF(mln_buf_t, end, 32);
    EXPECT_OFF(mln_buf_t, shadow, 40);
    EXPECT_OFF(mln_buf_t, file_left_pos, 48);
    EXPECT_OFF(mln_buf_t, file_pos, 56);
    EXPECT_OFF(mln_buf_t, file_last, 64);
    EXPECT_OFF(mln_buf_t, file, 72);
    EXPECT_BIT(mln_buf_t, temporary, 80, 0);
    EXPECT_BIT(mln_buf_t, mmap, 80, 1);
    EXPECT_BIT(mln_buf_t, in_memory, 80, 2);
    EXPECT_BIT(mln_buf_t, in_file, 80, 3);
    EXPECT_BIT(mln_buf_t, flush, 80, 4);
    EXPECT_BIT(mln_buf_t, sync, 80, 5);
    EXPECT_BIT(mln_buf_t, last_buf, 80, 6);
    EXPECT_BIT(mln_buf_t, last_in_chain, 80, 7);

    EXPECT_SIZE(mln_chain_t, 16);
    EXPECT_OFF(mln_chain_t, buf, 0);
    EXPECT_OFF(mln_chain_t, next, 8);
}

static void check_string_file(void)
{
    EXPECT_SIZE(mln_string_t, 24);
    EXPECT_OFF(mln_string_t, data, 0);
    EXPECT_OFF(mln_string_t, len, 8);
    EXPECT_BIT(mln_string_t, data_ref, 16, 0);
    EXPECT_BIT(mln_string_t, pool, 16, 1);
    EXPECT_BITS(mln_string_t, ref, 16, 2, 30);

    EXPECT_SIZE(mln_file_t, 80);
    EXPECT_OFF(mln_file_t, fd, 16);
}

/* The macros of spec §2.7 read the fields they should. */
static void check_macros(void)
{
    mln_tcp_conn_t c;
    mln_chain_t ch;

    memset(&c, 0, sizeof(c));
    c.sockfd = 7;
    c.pool = (mln_alloc_t *)&c;
    check(mln_tcp_conn_fd_get(&c) == 7 && mln_tcp_conn_pool_get(&c) == (mln_alloc_t *)&c,
          "macros fd_get / pool_get read sockfd / pool");
    check(mln_tcp_conn_send_empty(&c) && mln_tcp_conn_recv_empty(&c) && mln_tcp_conn_sent_empty(&c),
          "macros *_empty true on NULL heads");
    c.snd_head = c.rcv_head = c.sent_head = &ch;
    check(!mln_tcp_conn_send_empty(&c) && !mln_tcp_conn_recv_empty(&c) && !mln_tcp_conn_sent_empty(&c),
          "macros *_empty false on non-NULL heads");
    check(!mln_tcp_conn_tls_enabled(&c), "macro tls_enabled false with ssl NULL");
    c.ssl = (SSL *)&c;
    check(mln_tcp_conn_tls_enabled(&c), "macro tls_enabled true with ssl set");
    c.tls_done = 1;
    c.tls_want_r = 1;
    check(mln_tcp_conn_tls_done(&c) && mln_tcp_conn_tls_want_read(&c) && !mln_tcp_conn_tls_want_write(&c),
          "macros tls_done / want_read / want_write read their own bit");
}

/*
 * ---- comparison with the Rust face --------------------------------------
 * Built with -DCOROTLS_MELON_LAYOUT_REPORT and linked against
 * libcorotls_melon (target/c_tests/melon_layout_face), this program also
 * reads corotls_melon_layout_report(): the offsets the Rust face actually
 * uses, under the names of layout_check.h ("<type>.sizeof",
 * "<type>.<field>", "<type>.<field>@bit", "<type>.<field>@width"), as an
 * array of `count` items. Every reported item must equal what C measured,
 * and every C record of the types in required_types[] must be reported.
 */
#ifdef COROTLS_MELON_LAYOUT_REPORT
struct corotls_melon_layout_item {
    const char   *name;
    unsigned long value;
};
extern const struct corotls_melon_layout_item *corotls_melon_layout_report(size_t *count);

static void compare_with_rust_report(void)
{
    static const char *const required_types[] = {
        "mln_tcp_conn_t.", "mln_tcp_tls_conf_t.", "mln_buf_t.", "mln_chain_t.",
    };
    size_t n = 0;
    const struct corotls_melon_layout_item *items = corotls_melon_layout_report(&n);

    if (!check(items != NULL && n > 0, "rust report: %zu items", n)) return;
    for (size_t i = 0; i < n; i++) {
        const struct layout_record *r = layout_find(items[i].name);
        if (r == NULL)
            check(0, "rust %-31s %lu: not measured by C", items[i].name, items[i].value);
        else
            check(r->value == items[i].value, "rust %-31s %3lu (C: %lu)",
                  items[i].name, items[i].value, r->value);
    }
    for (size_t j = 0; j < layout_nrecords; j++) {
        const char *name = layout_records[j].name;
        int required = 0, found = 0;
        for (size_t t = 0; t < sizeof(required_types) / sizeof(required_types[0]); t++)
            if (strncmp(name, required_types[t], strlen(required_types[t])) == 0) required = 1;
        if (!required) continue;
        for (size_t i = 0; i < n && !found; i++)
            found = items[i].name != NULL && strcmp(items[i].name, name) == 0;
        if (!found) check(0, "rust report lacks %s", name);
    }
}
static void (*const layout_report_hook)(void) = compare_with_rust_report;
#else
static void (*const layout_report_hook)(void) = NULL;
#endif
/* ---- end of HOOK ------------------------------------------------------- */

int main(void)
{
    check_conn();
    check_conf();
    check_buf_chain();
    check_string_file();
    check_macros();
    check(M_C_SEND == 1 && M_C_RECV == 2 && M_C_SENT == 3, "constants M_C_SEND/RECV/SENT = 1/2/3");
    check(M_C_FINISH == 1 && M_C_NOTYET == 2 && M_C_ERROR == 3 && M_C_CLOSED == 4,
          "constants M_C_FINISH/NOTYET/ERROR/CLOSED = 1/2/3/4");
    check(M_C_TYPE_MEMORY == 0x1 && M_C_TYPE_FILE == 0x2 && M_C_TYPE_FOLLOW == 0x8,
          "constants M_C_TYPE_MEMORY/FILE/FOLLOW = 0x1/0x2/0x8");
    check(M_TLS_SERVER == 0 && M_TLS_CLIENT == 1, "constants M_TLS_SERVER/CLIENT = 0/1");
    check(M_TLS_V1_2 == 0x4 && M_TLS_V1_3 == 0x8 && M_TLS_VDEFAULT == 0xC,
          "constants M_TLS_V1_2/V1_3/VDEFAULT = 0x4/0x8/0xC");
    if (layout_report_hook != NULL) layout_report_hook();
    else printf("note Rust layout report not compared (build with -DCOROTLS_MELON_LAYOUT_REPORT)\n");
    return check_summary();
}
