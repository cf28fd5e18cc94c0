/*
 * corotls: checks the plain (no MLN_TLS) layout of mln_tcp_conn_t declared
 * by include/melon/mln_connection.h: the stock Melon 64-byte ABI that
 * Melon's own mln_fork.o / mln_thread.o / mln_ipc.o are compiled against
 * (spec melon.md §2.2, §7). The TLS layout is checked by melon_layout.c.
 *
 * Build: cc -std=gnu11 -I include/melon -I c_tests/melon/melon_host/include
 *        c_tests/melon/melon_layout_plain.c
 */
#ifdef MLN_TLS
#error "melon_layout_plain.c checks the layout WITHOUT MLN_TLS"
#endif

#include "mln_connection.h"
#include "melon_host/layout_check.h"

int main(void)
{
    EXPECT_SIZE(mln_tcp_conn_t, 64);
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
#if defined(M_TLS_SERVER) || defined(M_TLS_VDEFAULT) || defined(mln_tcp_conn_tls_enabled)
    check(0, "TLS names are hidden without MLN_TLS");
#else
    check(1, "TLS names are hidden without MLN_TLS");
#endif
#if defined(OPENSSL_SSL_H) || defined(HEADER_SSL_H)
    check(0, "<openssl/ssl.h> is not pulled in without MLN_TLS");
#else
    check(1, "<openssl/ssl.h> is not pulled in without MLN_TLS");
#endif
    return check_summary();
}
