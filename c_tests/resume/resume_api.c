/*
 * resume_api: session resumption through the native API, our client
 * against our server over loopback: the conf's session cache (conn and
 * loop), export and import, the names a session is bound to, ticket-key
 * rotation with a grace period, tickets turned off, and bad input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "loop_util.h"
#include "resume_util.h"
#include "tls_util.h"

static const int versions[] = {COROTLS_TLS1_2, COROTLS_TLS1_3};
static const char *vname(int v) { return v == COROTLS_TLS1_2 ? "TLS 1.2" : "TLS 1.3"; }

TEST(the_conf_cache_resumes_in_both_versions)
{
    for (int i = 0; i < 2; i++) {
        corotls_conf *sc = ru_server(versions[i], NULL, 0, 0), *cc = ru_client(NULL);
        struct echo_server es;
        REQUIRE(sc && cc && util_echo_start(&es, sc) == 0, "%s: echo server", vname(versions[i]));
        CHECK(ru_echo(cc, es.port, "localhost", 0, NULL, 0, NULL, NULL) == 0, "%s: the first handshake is full",
              vname(versions[i]));
        for (int k = 0; k < 4; k++)
            CHECK(ru_echo(cc, es.port, "localhost", 0, NULL, 0, NULL, NULL) == 1, "%s: reconnection %d resumes",
                  vname(versions[i]), k + 1);
        CHECK(ru_echo(cc, es.port, "localhost", 1, NULL, 0, NULL, NULL) == 0,
              "%s: a conn without a resume key does not use the cache", vname(versions[i]));
        corotls_conf *other = ru_client(NULL);
        CHECK(ru_echo(other, es.port, "localhost", 0, NULL, 0, NULL, NULL) == 0,
              "%s: another conf has its own cache (and trust): a full handshake", vname(versions[i]));
        util_echo_stop(&es);
        CHECK(es.failures == 0, "%s: the server saw no failure", vname(versions[i]));
        corotls_conf_free(other);
        corotls_conf_free(cc);
        corotls_conf_free(sc);
    }
}

TEST(no_resumption_across_sni_names)
{
    corotls_conf *sc = ru_server(0, NULL, 1, 0), *cc = ru_client(NULL);
    struct echo_server es;
    REQUIRE(sc && cc && util_echo_start(&es, sc) == 0, "echo server with identities localhost and alt1.example");
    CHECK(ru_echo(cc, es.port, "localhost", 0, NULL, 0, NULL, NULL) == 0, "localhost: full");
    CHECK(ru_echo(cc, es.port, "alt1.example", 0, NULL, 0, NULL, NULL) == 0,
          "alt1.example, same host and port: a full handshake, not localhost's session");
    CHECK(ru_echo(cc, es.port, "alt1.example", 0, NULL, 0, NULL, NULL) == 1, "alt1.example again: resumes its own");
    CHECK(ru_echo(cc, es.port, "localhost", 0, NULL, 0, NULL, NULL) == 1, "localhost again: resumes its own");
    util_echo_stop(&es);
    corotls_conf_free(cc);
    corotls_conf_free(sc);
}

TEST(export_and_import_with_their_checks)
{
    for (int i = 0; i < 2; i++) {
        const char *v = vname(versions[i]);
        corotls_conf *sc = ru_server(versions[i], NULL, 1, 0), *cc = ru_client(NULL);
        struct echo_server es;
        REQUIRE(sc && cc && util_echo_start(&es, sc) == 0, "%s: echo server", v);
        uint8_t der[8192];
        size_t len = sizeof der;
        CHECK(ru_echo(cc, es.port, "localhost", 1, NULL, 0, der, &len) == 0 && len > 0 && len < sizeof der,
              "%s: export after the echo (%zu bytes)", v, len);
        /* A new conf, same trust: the bytes carry the session. */
        corotls_conf *cc2 = ru_client(NULL);
        CHECK(ru_echo(cc2, es.port, "localhost", 1, der, len, NULL, NULL) == 1, "%s: an imported session resumes", v);
        CHECK(ru_echo(cc2, es.port, "localhost", 1, der, len, NULL, NULL) == 1, "%s: and again (a copy each time)", v);

        int fd;
        corotls_conn *c = util_connect(cc2, es.port, "alt1.example", &fd);
        REQUIRE(c != NULL, "%s: conn for alt1.example", v);
        CHECK(corotls_conn_import(c, der, len) == COROTLS_ERR_ARG && says("is for 'localhost'"),
              "%s: a session for localhost is refused for alt1.example", v);
        int64_t d;
        CHECK(corotls_conn_reason(c, &d) == COROTLS_REASON_HOST_NAME, "%s: reason HOST_NAME", v);
        CHECK(util_handshake(c, RU_T) == COROTLS_OK && !corotls_conn_resumed(c),
              "%s: the refused import left a usable conn: full handshake", v);
        corotls_conn_free(c);
        close(fd);

        /* Trust: a conf trusting another CA refuses the session. */
        corotls_conf *stranger = ru_client(harness_cert("selfsigned.crt"));
        c = util_connect(stranger, es.port, "localhost", &fd);
        REQUIRE(c != NULL, "%s: conn of a conf with other trust", v);
        CHECK(corotls_conn_import(c, der, len) == COROTLS_ERR_VERIFY && corotls_conn_reason(c, &d) == COROTLS_REASON_VERIFY &&
                  says("does not verify against this conf"),
              "%s: a conf with other trust refuses it (ERR_VERIFY, VERIFY)", v);
        corotls_conn_free(c);
        close(fd);
        corotls_conf_free(stranger);

        /* Truncated and garbage bytes. */
        c = util_connect(cc2, es.port, "localhost", &fd);
        REQUIRE(c != NULL, "%s: conn", v);
        CHECK(corotls_conn_import(c, der, len / 2) == COROTLS_ERR_ARG && says("not a TLS session"),
              "%s: truncated bytes: ERR_ARG, `not a TLS session`", v);
        CHECK(corotls_conn_import(c, (const uint8_t *)"garbage", 7) == COROTLS_ERR_ARG && says("not a TLS session"),
              "%s: garbage: ERR_ARG", v);
        CHECK(corotls_conn_reason(c, &d) == COROTLS_REASON_BAD_ARGUMENT, "%s: reason BAD_ARGUMENT", v);
        CHECK(corotls_conn_import(c, NULL, 0) == COROTLS_ERR_ARG && says("empty"), "%s: nothing: ERR_ARG", v);
        CHECK(corotls_conn_import(c, NULL, 5) == COROTLS_ERR_ARG, "%s: NULL with a length: ERR_ARG", v);
        uint8_t trail[8200];
        memcpy(trail, der, len);
        trail[len] = 0;
        CHECK(corotls_conn_import(c, trail, len + 1) == COROTLS_ERR_ARG && says("trailing"),
              "%s: trailing bytes: ERR_ARG", v);
        size_t n = 99;
        CHECK(corotls_conn_export(c, NULL, 0, &n) == COROTLS_ERR_ARG && n == 0 && says("before the handshake"),
              "%s: export before the handshake: ERR_ARG", v);
        CHECK(util_handshake(c, RU_T) == COROTLS_OK, "%s: after all that, a full handshake works", v);
        CHECK(corotls_conn_import(c, der, len) == COROTLS_ERR_ARG && says("before the handshake"),
              "%s: import after the handshake: ERR_ARG", v);
        CHECK(corotls_conn_export(c, NULL, 0, NULL) == COROTLS_ERR_ARG, "%s: export without out_len: ERR_ARG", v);
        corotls_conn_free(c);
        close(fd);

        /* Sizes: ask first, then a buffer too small. */
        uint8_t small[16];
        len = sizeof der;
        CHECK(ru_echo(cc, es.port, "localhost", 1, NULL, 0, der, &len) == 0, "%s: export again", v);
        c = util_connect(cc, es.port, "localhost", &fd);
        char line[] = "x";
        CHECK(c && util_handshake(c, RU_T) == COROTLS_OK && util_write_all(c, line, 1, RU_T) == COROTLS_OK &&
                  util_read_n(c, line, 1, RU_T) == COROTLS_OK,
              "%s: a conn to export from", v);
        size_t need = 0, got = 0;
        CHECK(corotls_conn_export(c, NULL, 0, &need) == COROTLS_OK && need > sizeof small, "%s: size query: %zu", v,
              need);
        CHECK(corotls_conn_export(c, small, sizeof small, &got) == COROTLS_ERR_ARG && got == need,
              "%s: a small buffer: ERR_ARG, the size stored", v);
        corotls_conn_free(c);
        close(fd);

        util_echo_stop(&es);
        corotls_conf_free(cc2);
        corotls_conf_free(cc);
        corotls_conf_free(sc);
    }
}

TEST(ticket_key_rotation_keeps_the_grace_period_then_stops)
{
    uint8_t k1[COROTLS_TICKET_KEY_LEN], k2[COROTLS_TICKET_KEY_LEN];
    util_fill(k1, sizeof k1, 1);
    util_fill(k2, sizeof k2, 2);
    for (int i = 0; i < 2; i++) {
        const char *v = vname(versions[i]);
        corotls_conf *sc = ru_server(versions[i], k1, 0, 0), *cc = ru_client(NULL);
        struct echo_server es;
        REQUIRE(sc && cc && util_echo_start(&es, sc) == 0, "%s: echo server with ticket key k1", v);
        uint8_t der[8192];
        size_t len = sizeof der;
        CHECK(ru_echo(cc, es.port, "localhost", 1, NULL, 0, der, &len) == 0, "%s: a ticket under k1", v);
        CHECK(corotls_conf_rotate_ticket_key(sc, k2, sizeof k2, 1500) == COROTLS_OK, "%s: rotate to k2, grace 1.5 s", v);
        CHECK(ru_echo(cc, es.port, "localhost", 1, der, len, NULL, NULL) == 1, "%s: k1's ticket resumes in the grace period",
              v);
        /* The cache path too: its session gets a k2 ticket on this resumption. */
        CHECK(ru_echo(cc, es.port, "localhost", 0, der, len, NULL, NULL) == 1, "%s: resumed and renewed under k2", v);
        harness_sleep_ms(1700);
        CHECK(ru_echo(cc, es.port, "localhost", 1, der, len, NULL, NULL) == 0,
              "%s: after the grace period k1's ticket gets a full handshake, not an error", v);
        CHECK(ru_echo(cc, es.port, "localhost", 0, NULL, 0, NULL, NULL) == 1,
              "%s: the renewed ticket (k2) in the cache resumes", v);
        CHECK(corotls_conf_rotate_ticket_key(sc, NULL, 0, 0) == COROTLS_OK, "%s: rotate to a random key, no grace", v);
        CHECK(ru_echo(cc, es.port, "localhost", 0, NULL, 0, NULL, NULL) == 0, "%s: k2 stops at once", v);
        util_echo_stop(&es);
        CHECK(es.failures == 0, "%s: no server failures", v);
        corotls_conf_free(cc);
        corotls_conf_free(sc);
    }
}

TEST(the_same_ticket_key_resumes_across_confs)
{
    uint8_t k[COROTLS_TICKET_KEY_LEN];
    util_fill(k, sizeof k, 7);
    corotls_conf *a = ru_server(0, k, 0, 0), *b = ru_server(0, k, 0, 0), *c = ru_server(0, NULL, 0, 0);
    corotls_conf *cc = ru_client(NULL);
    struct echo_server ea, eb, ec;
    REQUIRE(a && b && c && util_echo_start(&ea, a) == 0 && util_echo_start(&eb, b) == 0 && util_echo_start(&ec, c) == 0,
            "three servers");
    uint8_t der[8192];
    size_t len = sizeof der;
    CHECK(ru_echo(cc, ea.port, "localhost", 1, NULL, 0, der, &len) == 0, "a session from server A");
    CHECK(ru_echo(cc, eb.port, "localhost", 1, der, len, NULL, NULL) == 1, "server B, same ticket key: resumes");
    CHECK(ru_echo(cc, ec.port, "localhost", 1, der, len, NULL, NULL) == 0, "server C, its own random key: full");
    util_echo_stop(&ea);
    util_echo_stop(&eb);
    util_echo_stop(&ec);
    corotls_conf_free(a);
    corotls_conf_free(b);
    corotls_conf_free(c);
    corotls_conf_free(cc);
}

TEST(tickets_off_and_cache_off)
{
    corotls_conf *sc = ru_server(COROTLS_TLS1_3, NULL, 0, 1), *cc = ru_client(NULL);
    struct echo_server es;
    REQUIRE(sc && cc && util_echo_start(&es, sc) == 0, "TLS 1.3 server with tickets off");
    CHECK(ru_echo(cc, es.port, "localhost", 0, NULL, 0, NULL, NULL) == 0, "full");
    CHECK(ru_echo(cc, es.port, "localhost", 0, NULL, 0, NULL, NULL) == 0, "no ticket, no resumption");
    CHECK(corotls_conf_rotate_ticket_key(sc, NULL, 0, 0) == COROTLS_ERR_ARG && says("no tickets"),
          "rotating without tickets: ERR_ARG");
    util_echo_stop(&es);
    corotls_conf_free(sc);
    sc = ru_server(0, NULL, 0, 0);
    corotls_conf_builder *b;
    corotls_conf *nocache = NULL;
    REQUIRE(corotls_conf_builder_new(COROTLS_CLIENT, &b) == COROTLS_OK, "builder");
    CHECK(corotls_conf_builder_add_ca_file(b, harness_cert("ca.crt")) == COROTLS_OK &&
              corotls_conf_builder_set_session_cache_size(b, 0) == COROTLS_OK &&
              corotls_conf_builder_build(b, &nocache) == COROTLS_OK,
          "a client conf with the cache off");
    REQUIRE(util_echo_start(&es, sc) == 0, "server");
    CHECK(ru_echo(nocache, es.port, "localhost", 0, NULL, 0, NULL, NULL) == 0 &&
              ru_echo(nocache, es.port, "localhost", 0, NULL, 0, NULL, NULL) == 0,
          "cache off: never resumes");
    uint8_t der[8192];
    size_t len = sizeof der;
    CHECK(ru_echo(nocache, es.port, "localhost", 0, NULL, 0, der, &len) == 0 &&
              ru_echo(nocache, es.port, "localhost", 0, der, len, NULL, NULL) == 1,
          "but export and import still work");
    util_echo_stop(&es);
    corotls_conf_builder_free(b);
    corotls_conf_free(nocache);
    corotls_conf_free(sc);
    corotls_conf_free(cc);
}

TEST(loop_connect_uses_the_cache)
{
    corotls_conf *sc = ru_server(0, NULL, 0, 0), *cc = ru_client(NULL);
    corotls_loop *l;
    REQUIRE(sc && cc && corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, sc, &port);
    REQUIRE(lfd >= 0, "listener");
    for (int k = 0; k < 3; k++) {
        int cfd, sfd;
        REQUIRE(lu_pair(l, lfd, port, cc, &cfd, &sfd) == 0, "connection %d", k);
        CHECK(corotls_loop_set_verify_host(l, cfd, "localhost") == COROTLS_OK, "verify localhost");
        uint8_t out[4];
        bool cres = true, sres = true;
        CHECK(lu_transfer(l, cfd, sfd, "ping", 4, out) == COROTLS_OK, "%d: ping client to server", k);
        /* The echo back carries the TLS 1.3 tickets to the client first. */
        CHECK(lu_transfer(l, sfd, cfd, "pong", 4, out) == COROTLS_OK, "%d: pong server to client", k);
        CHECK(corotls_loop_resumed(l, cfd, &cres) == COROTLS_OK && corotls_loop_resumed(l, sfd, &sres) == COROTLS_OK &&
                  cres == (k > 0) && sres == (k > 0),
              "connection %d: resumed %d/%d (client/server)", k, cres, sres);
        corotls_loop_close(l, cfd);
        corotls_loop_close(l, sfd);
    }
    bool x = true;
    CHECK(corotls_loop_resumed(l, 9999, &x) == COROTLS_ERR_ARG && !x, "an fd that is not a connection: ERR_ARG");
    CHECK(corotls_loop_resumed(l, lfd, NULL) == COROTLS_ERR_ARG, "NULL out: ERR_ARG");
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
    corotls_conf_free(cc);
    corotls_conf_free(sc);
}

TEST(bad_arguments)
{
    corotls_conf_builder *sb, *cb;
    REQUIRE(corotls_conf_builder_new(COROTLS_SERVER, &sb) == COROTLS_OK &&
                corotls_conf_builder_new(COROTLS_CLIENT, &cb) == COROTLS_OK,
            "builders");
    uint8_t key[COROTLS_TICKET_KEY_LEN] = {0};
    CHECK(corotls_conf_builder_set_ticket_key(sb, key, 79) == COROTLS_ERR_ARG && says("80 bytes"),
          "a 79-byte ticket key: ERR_ARG");
    CHECK(corotls_conf_builder_set_ticket_key(sb, NULL, 80) == COROTLS_ERR_ARG, "NULL key: ERR_ARG");
    CHECK(corotls_conf_builder_set_ticket_key(cb, key, 80) == COROTLS_ERR_ARG && says("server"),
          "a ticket key on a client: ERR_ARG");
    CHECK(corotls_conf_builder_set_tickets(cb, false) == COROTLS_ERR_ARG, "tickets on a client: ERR_ARG");
    CHECK(corotls_conf_builder_set_session_cache_size(sb, 10) == COROTLS_ERR_ARG && says("client"),
          "a session cache on a server: ERR_ARG");
    CHECK(corotls_conf_builder_set_tickets(NULL, true) == COROTLS_ERR_ARG, "NULL builder: ERR_ARG");
    corotls_conf *cc = ru_client(NULL), *sc = ru_server(0, key, 0, 0);
    CHECK(corotls_conf_rotate_ticket_key(cc, NULL, 0, 0) == COROTLS_ERR_ARG, "rotating a client conf: ERR_ARG");
    CHECK(corotls_conf_rotate_ticket_key(sc, key, sizeof key, 0) == COROTLS_ERR_ARG && says("in use"),
          "rotating to the current key: ERR_ARG");
    CHECK(corotls_conf_rotate_ticket_key(NULL, NULL, 0, 0) == COROTLS_ERR_ARG, "NULL conf: ERR_ARG");
    corotls_session *s, *srv;
    REQUIRE(corotls_session_new(cc, &s) == COROTLS_OK && corotls_session_new(sc, &srv) == COROTLS_OK, "sessions");
    CHECK(corotls_session_set_resume_key(s, NULL, 1) == COROTLS_ERR_ARG, "NULL host: ERR_ARG");
    CHECK(corotls_session_set_resume_key(s, "", 1) == COROTLS_ERR_ARG, "empty host: ERR_ARG");
    CHECK(corotls_session_set_resume_key(srv, "h", 1) == COROTLS_ERR_ARG, "a server session: ERR_ARG");
    CHECK(corotls_session_import(s, (const uint8_t *)"x", 1) == COROTLS_ERR_ARG, "import garbage: ERR_ARG");
    CHECK(corotls_session_import(srv, (const uint8_t *)"x", 1) == COROTLS_ERR_ARG, "import on a server: ERR_ARG");
    size_t n;
    CHECK(corotls_session_export(srv, NULL, 0, &n) == COROTLS_ERR_ARG, "export on a server: ERR_ARG");
    CHECK(!corotls_session_resumed(s) && !corotls_session_resumed(NULL) && !corotls_conn_resumed(NULL),
          "resumed: false before a handshake and for NULL");
    CHECK(corotls_session_set_sni(s, "localhost") == COROTLS_OK && corotls_session_set_resume_key(s, "h", 443) == COROTLS_OK,
          "a client session takes a resume key");
    corotls_session_free(s);
    corotls_session_free(srv);
    corotls_conf_free(cc);
    corotls_conf_free(sc);
    corotls_conf_builder_free(sb);
    corotls_conf_builder_free(cb);
}

/* Ticket keys of the wrong length, a grace period that is a negative
 * number cast to uint64_t, a conf without tickets, resume keys too long
 * or on a server, export before the handshake, resumed on a loop fd that
 * is not a connection or has not shaken hands: each a clear error, and
 * the objects keep working. */
TEST(bad_keys_grace_periods_and_states)
{
    uint8_t key[COROTLS_TICKET_KEY_LEN + 1], key2[COROTLS_TICKET_KEY_LEN];
    memset(key, 7, sizeof key);
    memset(key2, 9, sizeof key2);
    corotls_conf *sc = ru_server(0, key, 0, 0), *off = ru_server(0, NULL, 0, 1), *cc = ru_client(NULL);
    REQUIRE(sc && off && cc, "confs");
    CHECK(corotls_conf_rotate_ticket_key(sc, key2, COROTLS_TICKET_KEY_LEN - 1, 0) == COROTLS_ERR_ARG &&
              says("80 bytes"),
          "rotate to a 79-byte key: ERR_ARG");
    CHECK(corotls_conf_rotate_ticket_key(sc, key, COROTLS_TICKET_KEY_LEN + 1, 0) == COROTLS_ERR_ARG && says("80 bytes"),
          "rotate to an 81-byte key: ERR_ARG");
    CHECK(corotls_conf_rotate_ticket_key(sc, NULL, COROTLS_TICKET_KEY_LEN, 0) == COROTLS_ERR_ARG,
          "rotate to NULL with a length: ERR_ARG");
    CHECK(corotls_conf_rotate_ticket_key(sc, key2, (size_t)-1, 0) == COROTLS_ERR_ARG && says("negative length"),
          "rotate with a negative length: ERR_ARG");
    corotls_result r = corotls_conf_rotate_ticket_key(sc, key2, sizeof key2, (uint64_t)-1);
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_BAD_ARGUMENT && says("grace"),
          "a grace period of -1 ms (cast): ERR_ARG, BAD_ARGUMENT (%s: %s)", corotls_result_name(r),
          corotls_last_error());
    r = corotls_conf_rotate_ticket_key(sc, key2, sizeof key2, (uint64_t)INT64_MAX + 1);
    CHECK(r == COROTLS_ERR_ARG && says("grace"), "a grace period above INT64_MAX ms: ERR_ARG (%s)",
          corotls_last_error());
    CHECK(corotls_conf_rotate_ticket_key(sc, key2, sizeof key2, 1000) == COROTLS_OK,
          "after the refusals, the same rotation with a real grace period: OK");
    CHECK(corotls_conf_rotate_ticket_key(sc, NULL, 0, 0) == COROTLS_OK, "and to a random key without grace: OK");
    struct echo_server es;
    REQUIRE(util_echo_start(&es, sc) == 0, "echo server on the rotated conf");
    CHECK(ru_echo(cc, es.port, "localhost", 0, NULL, 0, NULL, NULL) == 0 &&
              ru_echo(cc, es.port, "localhost", 0, NULL, 0, NULL, NULL) == 1,
          "the rotated conf serves and resumes");
    util_echo_stop(&es);
    CHECK(es.failures == 0, "the server saw no failure");
    CHECK(corotls_conf_rotate_ticket_key(off, NULL, 0, 0) == COROTLS_ERR_ARG, "rotate a conf with tickets off: ERR_ARG");

    char longhost[300];
    memset(longhost, 'a', sizeof longhost - 1);
    longhost[sizeof longhost - 1] = 0;
    corotls_session *s = NULL, *srv = NULL;
    REQUIRE(corotls_session_new(cc, &s) == COROTLS_OK && corotls_session_new(sc, &srv) == COROTLS_OK, "sessions");
    CHECK(corotls_session_set_resume_key(s, longhost, 443) == COROTLS_ERR_ARG &&
              corotls_last_reason(NULL) == COROTLS_REASON_HOST_NAME,
          "a 299-byte resume host: ERR_ARG, HOST_NAME");
    uint8_t der[16];
    size_t n = 99;
    CHECK(corotls_session_export(s, der, sizeof der, &n) == COROTLS_ERR_ARG && n == 0 &&
              corotls_last_reason(NULL) == COROTLS_REASON_WRONG_STATE,
          "session export before the handshake: ERR_ARG, WRONG_STATE");
    CHECK(corotls_session_export(s, der, sizeof der, NULL) == COROTLS_ERR_ARG, "session export, out_len NULL: ERR_ARG");
    CHECK(corotls_session_export(s, NULL, 5, &n) == COROTLS_ERR_ARG, "session export, NULL buffer with cap 5: ERR_ARG");
    CHECK(corotls_session_import(s, der, (size_t)-1) == COROTLS_ERR_ARG && says("negative length"),
          "session import with a negative length: ERR_ARG");
    CHECK(corotls_session_import(s, NULL, 0) == COROTLS_ERR_ARG, "session import of nothing: ERR_ARG");
    CHECK(!corotls_session_resumed(srv), "a server session before its handshake: not resumed");
    corotls_session_free(s);
    corotls_session_free(srv);

    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    corotls_conn *sconn = NULL;
    REQUIRE(corotls_conn_new(sc, sv[0], &sconn) == COROTLS_OK, "server conn");
    CHECK(corotls_conn_set_resume_key(sconn, "h", 1) == COROTLS_ERR_ARG, "conn resume key on a server: ERR_ARG");
    CHECK(corotls_conn_import(sconn, (const uint8_t *)"x", 1) == COROTLS_ERR_ARG, "conn import on a server: ERR_ARG");
    CHECK(corotls_conn_export(sconn, NULL, 0, &n) == COROTLS_ERR_ARG && n == 0, "conn export on a server: ERR_ARG");
    CHECK(!corotls_conn_resumed(sconn), "conn resumed before the handshake: false");
    corotls_conn_free(sconn);
    close(sv[0]);
    close(sv[1]);

    corotls_loop *l;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, lfd = lu_listen(l, sc, &port), cfd, sfd;
    REQUIRE(lfd >= 0 && lu_pair(l, lfd, port, cc, &cfd, &sfd) == 0, "a loop pair, no handshake yet");
    bool x = true;
    CHECK(corotls_loop_resumed(l, cfd, &x) == COROTLS_OK && !x, "loop resumed before the handshake: OK, false");
    x = true;
    CHECK(corotls_loop_resumed(l, lfd, &x) == COROTLS_ERR_ARG && !x, "loop resumed of a listener: ERR_ARG");
    CHECK(corotls_loop_resumed(l, -1, &x) == COROTLS_ERR_ARG, "loop resumed of fd -1: ERR_ARG");
    corotls_loop_close(l, cfd);
    CHECK(corotls_loop_resumed(l, cfd, &x) == COROTLS_ERR_ARG, "loop resumed of a closed fd: ERR_ARG");
    CHECK(corotls_loop_resumed(NULL, sfd, &x) == COROTLS_ERR_ARG, "NULL loop: ERR_ARG");
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
    corotls_conf_free(cc);
    corotls_conf_free(off);
    corotls_conf_free(sc);
}

int main(void)
{
    return lu_main();
}
