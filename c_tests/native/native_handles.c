/*
 * native_handles: every handle C holds is known to the library.  Freeing
 * twice, passing a freed handle, a handle of another kind or a pointer
 * that never came from corotls gives COROTLS_ERR_ARG ("not a live
 * corotls_conf", reason BAD_ARGUMENT), or the documented value for calls
 * that return one, and reads no freed memory (this program also runs
 * under valgrind and ASan).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corotls.h"
#include "harness.h"
#include "tls_util.h"

/* The last call failed with ERR_ARG, BAD_ARGUMENT, and a message naming `kind`. */
static int refused(corotls_result r, const char *kind)
{
    const char *m = corotls_last_error();
    int ok = r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_BAD_ARGUMENT &&
             strstr(m, "not a live") != NULL && strstr(m, kind) != NULL;
    if (!ok)
        harness_diag("%s: \"%s\" (reason %s)", corotls_result_name(r), m, corotls_reason_name(corotls_last_reason(NULL)));
    return ok;
}

/* A _free of a dead handle sets the last error without returning it. */
static int free_refused(const char *kind)
{
    return refused(COROTLS_ERR_ARG, kind);
}

static void clear_last_error(void)
{
    corotls_conf *c = NULL;
    (void)corotls_conf_new(7, NULL, NULL, NULL, NULL, false, &c); /* any failing call resets it */
}

TEST(double_free_of_each_kind)
{
    corotls_conf_builder *b = NULL;
    REQUIRE(corotls_conf_builder_new(COROTLS_CLIENT, &b) == COROTLS_OK, "builder");
    corotls_conf_builder_free(b);
    clear_last_error();
    corotls_conf_builder_free(b);
    CHECK(free_refused("corotls_conf_builder"), "builder_free twice: refused");
    CHECK(refused(corotls_conf_builder_set_verify(b, 0), "corotls_conf_builder"), "a freed builder is refused");

    corotls_conf *conf = util_server_conf("leaf.crt", "leaf.key");
    REQUIRE(conf != NULL, "conf");
    corotls_conf_free(conf);
    clear_last_error();
    corotls_conf_free(conf);
    CHECK(free_refused("corotls_conf"), "conf_free twice: refused");
    CHECK(corotls_conf_role(conf) == -1, "conf_role of a freed conf is -1");
    corotls_session *s = NULL;
    CHECK(refused(corotls_session_new(conf, &s), "corotls_conf") && s == NULL, "session_new with a freed conf");

    conf = util_client_conf(0);
    REQUIRE(conf != NULL && corotls_session_new(conf, &s) == COROTLS_OK, "session");
    corotls_session_free(s);
    clear_last_error();
    corotls_session_free(s);
    CHECK(free_refused("corotls_session"), "session_free twice: refused (no glibc abort)");
    CHECK(refused(corotls_session_handshake(s), "corotls_session"), "handshake on a freed session");
    CHECK(corotls_session_out_pending(s) == 0 && corotls_session_plain_size(s) == 0, "sizes of a freed session: 0");
    uint8_t buf[16];
    CHECK(corotls_session_out_read(s, buf, sizeof buf) == 0, "out_read of a freed session: 0");
    CHECK(!corotls_session_handshake_done(s) && !corotls_session_peer_closed(s), "flags of a freed session: false");
    CHECK(!strcmp(corotls_session_version(s), "") && !strcmp(corotls_session_error(s), "not a live corotls_session"),
          "strings of a freed session");
    CHECK(corotls_session_reason(s, NULL) == COROTLS_REASON_NONE, "reason of a freed session: NONE");

    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    corotls_loop_free(l);
    clear_last_error();
    corotls_loop_free(l);
    CHECK(free_refused("corotls_loop"), "loop_free twice: refused");
    CHECK(refused(corotls_loop_close(l, 3), "corotls_loop"), "loop_close after loop_free (was SIGSEGV)");
    CHECK(corotls_loop_fd(l) == -1 && corotls_loop_pending(l) == 0 && corotls_loop_timeout(l) == -1,
          "loop values of a freed loop");
    CHECK(refused(corotls_loop_dispatch(l, 0, NULL), "corotls_loop"), "dispatch of a freed loop");
    corotls_conf_free(conf);
}

TEST(wrong_kind_of_handle)
{
    corotls_conf *conf = util_client_conf(0);
    corotls_session *s = NULL;
    corotls_conf_builder *b = NULL;
    corotls_loop *l = NULL;
    REQUIRE(conf != NULL && corotls_session_new(conf, &s) == COROTLS_OK, "conf and session");
    REQUIRE(corotls_conf_builder_new(COROTLS_SERVER, &b) == COROTLS_OK && corotls_loop_new(&l) == COROTLS_OK,
            "builder and loop");
    corotls_session *out = NULL;
    CHECK(refused(corotls_session_new((corotls_conf *)s, &out), "a corotls_session was given"),
          "a session where a conf is expected (was SIGSEGV)");
    CHECK(corotls_conf_role((corotls_conf *)s) == -1, "conf_role of a session: -1");
    CHECK(refused(corotls_conn_handshake((corotls_conn *)s), "corotls_conn"), "a session where a conn is expected");
    CHECK(refused(corotls_session_handshake((corotls_session *)conf), "a corotls_conf was given"),
          "a conf where a session is expected");
    CHECK(refused(corotls_conf_builder_set_verify((corotls_conf_builder *)conf, 0), "corotls_conf_builder"),
          "a conf where a builder is expected");
    CHECK(refused(corotls_loop_close((corotls_loop *)conf, 0), "corotls_loop"), "a conf where a loop is expected");
    int fd = -1;
    CHECK(refused(corotls_loop_listen(l, "127.0.0.1", "0", (corotls_conf *)b, &fd), "corotls_conf") && fd == -1,
          "a builder where a conf is expected");

    /* Frees of the wrong kind free nothing: the objects still work. */
    clear_last_error();
    corotls_conf_free((corotls_conf *)s);
    CHECK(free_refused("corotls_conf"), "conf_free of a session: refused");
    corotls_session_free((corotls_session *)conf);
    CHECK(free_refused("corotls_session"), "session_free of a conf: refused");
    corotls_loop_free((corotls_loop *)b);
    CHECK(free_refused("corotls_loop"), "loop_free of a builder: refused");
    corotls_conf_builder_free((corotls_conf_builder *)l);
    CHECK(free_refused("corotls_conf_builder"), "builder_free of a loop: refused");
    corotls_conn_free((corotls_conn *)s);
    CHECK(free_refused("corotls_conn"), "conn_free of a session: refused");
    CHECK(corotls_conf_role(conf) == COROTLS_CLIENT && corotls_session_handshake(s) == COROTLS_WANT_READ,
          "the objects still work");

    /* Pointers that never came from corotls: nothing is read through them. */
    int on_stack = 42;
    void *bogus[] = {&on_stack, (void *)0x1, (void *)0x1000, (void *)(uintptr_t)-1, (void *)malloc(64)};
    for (size_t i = 0; i < sizeof bogus / sizeof *bogus; i++) {
        CHECK(refused(corotls_session_handshake((corotls_session *)bogus[i]), "corotls_session"),
              "foreign pointer %zu as a session", i);
        CHECK(corotls_conf_role((corotls_conf *)bogus[i]) == -1, "foreign pointer %zu as a conf: -1", i);
        corotls_conf_free((corotls_conf *)bogus[i]);
        CHECK(free_refused("corotls_conf"), "conf_free of foreign pointer %zu: refused", i);
    }
    free(bogus[4]);

    corotls_session_free(s);
    corotls_conf_free(conf);
    corotls_conf_builder_free(b);
    corotls_loop_free(l);
}

static void loop_cb_unused(void *user_data, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    (void)user_data, (void)fd, (void)r, (void)data, (void)len;
}

/* The calls added with resumption, key logs, mTLS, close semantics, kTLS
 * and sendfile go through the same registry: a freed handle of the right
 * kind and a live handle of another kind are refused, value calls give
 * their NULL value. */
TEST(the_newer_calls_refuse_dead_and_wrong_handles)
{
    corotls_conf_builder *b = NULL;
    REQUIRE(corotls_conf_builder_new(COROTLS_SERVER, &b) == COROTLS_OK, "builder");
    corotls_conf_builder_free(b);
    uint8_t key[COROTLS_TICKET_KEY_LEN] = {1};
    bool on = true, p = true;
    int64_t code = 0;
    const char *ca = harness_cert("ca.crt");
    CHECK(refused(corotls_conf_builder_set_tickets(b, true), "corotls_conf_builder"), "set_tickets");
    CHECK(refused(corotls_conf_builder_set_ticket_key(b, key, sizeof key), "corotls_conf_builder"), "set_ticket_key");
    CHECK(refused(corotls_conf_builder_set_session_cache_size(b, 10), "corotls_conf_builder"), "set_session_cache_size");
    CHECK(refused(corotls_conf_builder_set_keylog_callback(b, NULL, NULL), "corotls_conf_builder"),
          "set_keylog_callback");
    CHECK(refused(corotls_conf_builder_set_keylog_file(b, "/dev/null"), "corotls_conf_builder"), "set_keylog_file");
    CHECK(refused(corotls_conf_builder_use_sslkeylogfile(b, &on), "corotls_conf_builder") && !on,
          "use_sslkeylogfile (and *enabled cleared)");
    CHECK(refused(corotls_conf_builder_set_client_ca_file(b, ca), "corotls_conf_builder"), "set_client_ca_file");
    CHECK(refused(corotls_conf_builder_set_client_ca_pem(b, (const uint8_t *)"x", 1), "corotls_conf_builder"),
          "set_client_ca_pem");
    CHECK(refused(corotls_conf_builder_set_ktls(b, true), "corotls_conf_builder"), "set_ktls");

    corotls_conf *sconf = util_server_conf("leaf.crt", "leaf.key"), *dead = util_server_conf("leaf.crt", "leaf.key");
    corotls_conf *cconf = util_client_conf(0);
    REQUIRE(sconf && dead && cconf, "confs");
    corotls_conf_free(dead);
    CHECK(refused(corotls_conf_rotate_ticket_key(dead, NULL, 0, 0), "corotls_conf"), "rotate_ticket_key: freed conf");

    corotls_session *s = NULL;
    REQUIRE(corotls_session_new(cconf, &s) == COROTLS_OK, "session");
    CHECK(refused(corotls_conf_rotate_ticket_key((corotls_conf *)s, NULL, 0, 0), "a corotls_session was given"),
          "rotate_ticket_key: a session as the conf");
    CHECK(refused(corotls_conf_builder_set_ktls((corotls_conf_builder *)sconf, true), "corotls_conf_builder"),
          "set_ktls: a conf as the builder");
    corotls_session_free(s);
    uint8_t buf[64];
    char text[64];
    size_t n = 7;
    CHECK(refused(corotls_session_set_resume_key(s, "h", 1), "corotls_session"), "session_set_resume_key");
    CHECK(!corotls_session_resumed(s), "session_resumed: false");
    CHECK(refused(corotls_session_export(s, buf, sizeof buf, &n), "corotls_session") && n == 0, "session_export");
    CHECK(refused(corotls_session_import(s, buf, 1), "corotls_session"), "session_import");
    n = 7;
    CHECK(refused(corotls_session_peer_cert(s, COROTLS_PEER_SUBJECT, text, sizeof text, &n), "corotls_session") &&
              n == 0,
          "session_peer_cert");
    CHECK(refused(corotls_session_peer_verify(s, &p, &code), "corotls_session") && !p && code == -1,
          "session_peer_verify");
    CHECK(corotls_session_shutdown_state(s) == -1, "session_shutdown_state: -1");
    CHECK(refused(corotls_session_import((corotls_session *)cconf, buf, 1), "a corotls_conf was given"),
          "session_import: a conf as the session");

    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    corotls_conn *c = NULL;
    REQUIRE(corotls_conn_new(cconf, sv[0], &c) == COROTLS_OK, "conn");
    corotls_conn_free(c);
    bool snd = true, rcv = true;
    uint64_t sent = 9;
    CHECK(refused(corotls_conn_set_resume_key(c, "h", 1), "corotls_conn"), "conn_set_resume_key");
    CHECK(!corotls_conn_resumed(c), "conn_resumed: false");
    n = 7;
    CHECK(refused(corotls_conn_export(c, buf, sizeof buf, &n), "corotls_conn") && n == 0, "conn_export");
    CHECK(refused(corotls_conn_import(c, buf, 1), "corotls_conn"), "conn_import");
    CHECK(refused(corotls_conn_peer_cert(c, COROTLS_PEER_SUBJECT, text, sizeof text, &n), "corotls_conn"),
          "conn_peer_cert");
    CHECK(refused(corotls_conn_peer_verify(c, &p, &code), "corotls_conn"), "conn_peer_verify");
    CHECK(corotls_conn_shutdown_state(c) == -1, "conn_shutdown_state: -1");
    CHECK(refused(corotls_conn_close(c), "corotls_conn"), "conn_close of a freed conn");
    CHECK(refused(corotls_conn_ktls(c, &snd, &rcv, text, sizeof text, &n), "corotls_conn"), "conn_ktls");
    CHECK(refused(corotls_conn_sendfile(c, sv[1], 0, 1, &sent), "corotls_conn") && sent == 0, "conn_sendfile");
    CHECK(refused(corotls_conn_close((corotls_conn *)sconf), "a corotls_conf was given"), "conn_close: a conf");

    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    corotls_loop_free(l);
    int32_t st = 5;
    CHECK(refused(corotls_loop_resumed(l, 3, &on), "corotls_loop"), "loop_resumed");
    CHECK(refused(corotls_loop_peer_cert(l, 3, COROTLS_PEER_SUBJECT, text, sizeof text, &n), "corotls_loop"),
          "loop_peer_cert");
    CHECK(refused(corotls_loop_peer_verify(l, 3, &p, &code), "corotls_loop"), "loop_peer_verify");
    CHECK(refused(corotls_loop_shutdown(l, 3, 1000, loop_cb_unused, NULL), "corotls_loop"), "loop_shutdown");
    CHECK(refused(corotls_loop_shutdown_state(l, 3, &st), "corotls_loop"), "loop_shutdown_state");
    CHECK(refused(corotls_loop_ktls(l, 3, &snd, &rcv, text, sizeof text, &n), "corotls_loop"), "loop_ktls");
    CHECK(refused(corotls_loop_sendfile(l, 3, sv[1], 0, 1, 1000, loop_cb_unused, NULL), "corotls_loop"),
          "loop_sendfile");
    CHECK(refused(corotls_loop_sendfile((corotls_loop *)cconf, 3, sv[1], 0, 1, 1000, loop_cb_unused, NULL),
                  "a corotls_conf was given"),
          "loop_sendfile: a conf as the loop");
    close(sv[0]);
    close(sv[1]);
    corotls_conf_free(sconf);
    corotls_conf_free(cconf);
}

TEST(a_freed_handle_stays_dead_when_its_slot_is_reused)
{
    corotls_conf *a = util_client_conf(0);
    REQUIRE(a != NULL, "conf a");
    corotls_conf_free(a);
    corotls_conf *b = util_client_conf(0);
    REQUIRE(b != NULL, "conf b");
    CHECK(corotls_conf_role(a) == -1 && corotls_conf_role(b) == COROTLS_CLIENT, "a is dead, b is live");
    corotls_conf_free(a);
    CHECK(corotls_conf_role(b) == COROTLS_CLIENT, "freeing a again does not free b");
    corotls_conf_free(b);
}

TEST(a_conns_session_is_borrowed)
{
    corotls_conf *conf = util_client_conf(0);
    int sv[2];
    REQUIRE(conf != NULL && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "conf and sockets");
    corotls_conn *c = NULL;
    REQUIRE(corotls_conn_new(conf, sv[0], &c) == COROTLS_OK, "conn");
    const corotls_session *s = corotls_conn_session(c);
    CHECK(s != NULL && s == corotls_conn_session(c), "the same session handle every time");
    CHECK(!strcmp(corotls_session_version(s), "") && !corotls_session_handshake_done(s), "accessors take it");
    clear_last_error();
    corotls_session_free((corotls_session *)s);
    CHECK(free_refused("corotls_session"), "session_free refuses a borrowed session");
    CHECK(corotls_conn_fd(c) == sv[0] && corotls_conn_session(c) == s, "the conn is untouched");
    CHECK(corotls_conn_session((corotls_conn *)s) == NULL, "conn_session of a session: NULL");
    corotls_conn_free(c);
    CHECK(!strcmp(corotls_session_error(s), "not a live corotls_session"), "the borrowed handle dies with its conn");
    CHECK(corotls_conn_fd(c) == -1 && corotls_conn_unsent(c) == 0, "values of a freed conn");
    CHECK(!strcmp(corotls_conn_error(c), "not a live corotls_conn"), "error of a freed conn");
    CHECK(refused(corotls_conn_handshake(c), "corotls_conn"), "handshake on a freed conn");
    clear_last_error();
    corotls_conn_free(c);
    CHECK(free_refused("corotls_conn"), "conn_free twice: refused");
    close(sv[0]);
    close(sv[1]);
    corotls_conf_free(conf);
}

int main(void)
{
    return harness_run_all();
}
