/*
 * loop_load.c -- 1,000 concurrent TLS connections on one loop thread (the
 * echo server's 1,000 ends on the same loop: 2,000 sessions), each doing 20
 * echo rounds of 1..3000 bytes with every byte checked.  All connections
 * are handshaken and open before the first round starts.
 * COROTLS_TEST_QUICK=1 (the valgrind run): 40 connections x 5 rounds.
 */
#include <stdlib.h>
#include <string.h>

#include "loop_util.h"

TEST(test_thousand_connections_one_thread)
{
    int n = lu_scale(1000, 40), rounds = lu_scale(20, 5);
    lu_raise_nofile(2L * n + 256);
    corotls_conf *s_conf = util_server_conf("leaf.crt", "leaf.key"), *c_conf = util_client_conf(1);
    REQUIRE(s_conf && c_conf, "confs (the clients verify the server)");
    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    struct lu_server s;
    int port;
    REQUIRE(lu_server_start(&s, l, s_conf, &port) == 0, "echo server");
    struct lu_clients cs = {.l = l, .conf = c_conf, .port = port, .n = n, .rounds = rounds, .seed = 7};
    lu_clients_start(&cs);

    int most_open = 0;
    long long end = harness_now_ms() + 240000;
    while (lu_clients_done(&cs) < n && harness_now_ms() < end) {
        corotls_loop_dispatch(l, 50, NULL);
        if (s.accepted - s.closed > most_open)
            most_open = s.accepted - s.closed;
    }
    if (cs.failures)
        harness_diag("%s", cs.first_error);
    CHECK(cs.failures == 0 && lu_clients_done(&cs) == n, "%d connections x %d rounds on one thread (%d failures)",
          n, rounds, cs.failures);
    CHECK(most_open == n, "all %d were open at once (%d)", n, most_open);
    end = harness_now_ms() + 30000;
    while (s.closed < s.accepted && harness_now_ms() < end)
        corotls_loop_dispatch(l, 20, NULL);
    CHECK(s.accepted == n && s.closed == n && s.errors == 0, "server: %d accepted, %d closed, %d errors", s.accepted,
          s.closed, s.errors);
    CHECK(corotls_loop_pending(l) == 1, "only the server's next accept is pending");
    lu_clients_free(&cs);
    corotls_loop_free(l);
    corotls_conf_free(s_conf);
    corotls_conf_free(c_conf);
}

int main(void)
{
    return harness_run_all();
}
