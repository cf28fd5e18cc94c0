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
