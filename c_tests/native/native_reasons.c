/*
 * native_reasons: every failure carries a stable corotls_reason (and a
 * number where one exists: errno, X509_V_ERR_* code, alert) beside its
 * result code, per thread and per object -- what hosts map, instead of
 * message text.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "corotls.h"
#include "harness.h"
#include "loop_util.h"
#include "tls_util.h"

#define T 10000

/* The thread's last reason is `want` (and its detail `detail`, unless -1). */
static int reason_is(corotls_reason want, int64_t detail)
{
    int64_t d = -99;
    corotls_reason r = corotls_last_reason(&d);
    if (r != want || (detail != -1 && d != detail)) {
        harness_diag("last reason %s (%lld), wanted %s (%lld): %s", corotls_reason_name(r), (long long)d,
                     corotls_reason_name(want), (long long)detail, corotls_last_error());
        return 0;
    }
    return 1;
}

TEST(reason_names_are_stable)
{
    CHECK(!strcmp(corotls_reason_name(COROTLS_REASON_NONE), "NONE"), "NONE");
    CHECK(!strcmp(corotls_reason_name(COROTLS_REASON_VERIFY), "VERIFY"), "VERIFY");
    CHECK(!strcmp(corotls_reason_name(COROTLS_REASON_PEER_ALERT), "PEER_ALERT"), "PEER_ALERT");
    CHECK(!strcmp(corotls_reason_name(COROTLS_REASON_INTERNAL), "INTERNAL"), "INTERNAL (the last)");
    CHECK(!strcmp(corotls_reason_name(-1), "UNKNOWN") && !strcmp(corotls_reason_name(1000), "UNKNOWN"), "UNKNOWN");
    CHECK(!strcmp(corotls_result_name(COROTLS_ERR_INTERNAL), "ERR_INTERNAL"), "the result ERR_INTERNAL has a name");
    CHECK(corotls_last_reason(NULL) >= COROTLS_REASON_NONE, "detail may be NULL");
}

TEST(configuration_reasons)
{
    corotls_conf_builder *b = NULL;
    corotls_conf *conf = NULL;
    CHECK(corotls_conf_builder_new(COROTLS_SERVER, NULL) == COROTLS_ERR_ARG && reason_is(COROTLS_REASON_NULL_ARGUMENT, 0),
          "NULL out-pointer: NULL_ARGUMENT");
    CHECK(corotls_conf_builder_new(9, &b) == COROTLS_ERR_ARG && reason_is(COROTLS_REASON_BAD_ARGUMENT, 0),
          "role 9: BAD_ARGUMENT");
    REQUIRE(corotls_conf_builder_new(COROTLS_SERVER, &b) == COROTLS_OK, "builder");
    const char *leaf = harness_cert("leaf.crt"), *key = harness_cert("leaf.key");
    CHECK(corotls_conf_builder_add_identity_file(b, "/nonexistent/c.pem", key, NULL) == COROTLS_ERR_ARG &&
              reason_is(COROTLS_REASON_FILE, ENOENT),
          "missing certificate file: FILE, ENOENT");
    CHECK(corotls_conf_builder_add_identity_file(b, "/dev/zero", key, NULL) == COROTLS_ERR_ARG &&
              reason_is(COROTLS_REASON_FILE, 0),
          "a device as certificate file: FILE, 0");
    CHECK(corotls_conf_builder_add_identity_file(b, harness_cert("garbage.pem"), key, NULL) == COROTLS_ERR_ARG &&
              reason_is(COROTLS_REASON_CERT_PARSE, 0),
          "garbage certificate: CERT_PARSE");
    CHECK(corotls_conf_builder_add_identity_file(b, leaf, harness_cert("garbage.pem"), NULL) == COROTLS_ERR_ARG &&
              reason_is(COROTLS_REASON_KEY_PARSE, 0),
          "garbage key: KEY_PARSE");
    CHECK(corotls_conf_builder_add_identity_file(b, leaf, harness_cert("leaf.enc.key"), "nope") == COROTLS_ERR_ARG &&
              reason_is(COROTLS_REASON_KEY_PASSWORD, 0),
          "wrong password: KEY_PASSWORD");
    CHECK(corotls_conf_builder_add_identity_file(b, leaf, harness_cert("other.key"), NULL) == COROTLS_ERR_ARG &&
              reason_is(COROTLS_REASON_KEY_MISMATCH, 0),
          "someone else's key: KEY_MISMATCH");
    CHECK(corotls_conf_builder_add_ca_file(b, harness_cert("garbage.pem")) == COROTLS_ERR_ARG &&
              reason_is(COROTLS_REASON_TRUST, 0),
          "garbage CA file: TRUST");
    CHECK(corotls_conf_builder_set_ciphers(b, "aNULL") == COROTLS_ERR_ARG && reason_is(COROTLS_REASON_CIPHER_LIST, 0),
          "aNULL: CIPHER_LIST");
    CHECK(corotls_conf_builder_set_suites(b, "TLS_NOPE") == COROTLS_ERR_ARG && reason_is(COROTLS_REASON_SUITE_LIST, 0),
          "unknown suite: SUITE_LIST");
    CHECK(corotls_conf_builder_set_groups(b, "P-999") == COROTLS_ERR_ARG && reason_is(COROTLS_REASON_GROUP_LIST, 0),
          "unknown group: GROUP_LIST");
    CHECK(corotls_conf_builder_set_alpn_wire(b, (const uint8_t *)"\x05h2", 3) == COROTLS_ERR_ARG &&
              reason_is(COROTLS_REASON_ALPN, 0),
          "truncated ALPN: ALPN");
    CHECK(corotls_conf_builder_build(b, &conf) == COROTLS_ERR_ARG && reason_is(COROTLS_REASON_WRONG_STATE, 0),
          "a server without an identity: WRONG_STATE");
    CHECK(corotls_conf_builder_set_verify(b, COROTLS_VERIFY_NONE) == COROTLS_OK &&
              reason_is(COROTLS_REASON_WRONG_STATE, 0),
          "a call that succeeds leaves the last reason alone");
    corotls_conf_builder_free(b);
    REQUIRE(corotls_conf_builder_new(COROTLS_CLIENT, &b) == COROTLS_OK, "client builder");
    CHECK(corotls_conf_builder_build(b, &conf) == COROTLS_ERR_ARG && reason_is(COROTLS_REASON_TRUST, 0),
          "a verifying client without trust: TRUST");
    corotls_conf_builder_free(b);
}

/* Per object: a conn against servers that fail it, each for its reason. */
static void conn_reason(const char *cert, const char *host, corotls_reason want, int64_t detail)
{
    char key[64];
    snprintf(key, sizeof key, "%.*s.key", (int)(strlen(cert) - 4), cert);
    const char *args[] = {"-cert", harness_cert(cert), "-key", harness_cert(key), NULL};
    int port, fd;
    pid_t pid;
    REQUIRE(harness_spawn_s_server(args, &port, &pid) == 0, "s_server with %s", cert);
    corotls_conf *conf = util_client_conf(1);
    corotls_conn *c = util_connect(conf, port, host, &fd);
    corotls_result r = c ? util_handshake(c, T) : COROTLS_ERR_IO;
    int64_t d = -1;
    corotls_reason got = corotls_conn_reason(c, &d);
    CHECK(r == COROTLS_ERR_VERIFY && got == want && d == detail, "%s as %s: %s, %s (%lld)", cert, host,
          corotls_result_name(r), corotls_reason_name(got), (long long)d);
    corotls_conn_free(c);
    close(fd);
    corotls_conf_free(conf);
    harness_kill(pid);
}

TEST(verification_reasons_carry_the_x509_code)
{
    conn_reason("expired.crt", "localhost", COROTLS_REASON_VERIFY, 10 /* X509_V_ERR_CERT_HAS_EXPIRED */);
    conn_reason("wronghost.crt", "localhost", COROTLS_REASON_VERIFY, 62 /* X509_V_ERR_HOSTNAME_MISMATCH */);
    conn_reason("leaf.crt", "10.1.2.3", COROTLS_REASON_VERIFY, 64 /* X509_V_ERR_IP_ADDRESS_MISMATCH */);
    CHECK(corotls_conn_reason(NULL, NULL) == COROTLS_REASON_NONE, "conn_reason(NULL)");
}

/* Sessions in memory: garbage is a protocol error; the peer of a client
 * that rejects the certificate hears the client's alert. */
TEST(session_reasons)
{
    corotls_conf *sc = util_server_conf("selfsigned.crt", "selfsigned.key"), *cc = util_client_conf(1);
    corotls_session *s = NULL, *c = NULL;
    REQUIRE(sc && cc && corotls_session_new(sc, &s) == COROTLS_OK && corotls_session_new(cc, &c) == COROTLS_OK,
            "sessions");
    CHECK(corotls_session_reason(c, NULL) == COROTLS_REASON_NONE, "no failure yet: NONE");
    corotls_session_set_sni(c, "localhost");
    util_pump(c, s, 0);
    int64_t d = -1;
    CHECK(corotls_session_reason(c, &d) == COROTLS_REASON_VERIFY && d == 18, "client: VERIFY, self-signed (%lld)",
          (long long)d);
    CHECK(corotls_session_reason(s, &d) == COROTLS_REASON_PEER_ALERT && d == 48,
          "server: PEER_ALERT, unknown_ca (%lld)", (long long)d);
    corotls_session_free(s);
    REQUIRE(corotls_session_new(sc, &s) == COROTLS_OK, "another server session");
    const char *junk = "GET / HTTP/1.1\r\n\r\n";
    CHECK(corotls_session_feed(s, (const uint8_t *)junk, strlen(junk), NULL) == COROTLS_ERR_TLS &&
              corotls_session_reason(s, NULL) == COROTLS_REASON_PROTOCOL && reason_is(COROTLS_REASON_PROTOCOL, -1),
          "garbage: PROTOCOL, for the session and the thread");
    CHECK(corotls_session_set_sni(s, "localhost") == COROTLS_ERR_ARG && reason_is(COROTLS_REASON_WRONG_STATE, 0),
          "SNI on a server: WRONG_STATE");
    CHECK(corotls_session_reason(NULL, NULL) == COROTLS_REASON_NONE, "session_reason(NULL)");
    corotls_session_free(s);
    corotls_session_free(c);
    corotls_conf_free(sc);
    corotls_conf_free(cc);
}

/* The loop: a refused connect reports IO with its errno, in the callback
 * (thread) and for the fd. */
TEST(loop_reasons)
{
    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    corotls_conf *cc = util_client_conf(0);
    int port = harness_free_port();
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct lu_done d = {0};
    int fd = -1;
    corotls_result r = corotls_loop_connect(l, "127.0.0.1", service, cc, T, lu_cb, &d, &fd);
    if (r == COROTLS_PENDING) {
        CHECK(lu_wait(l, &d, T), "the connect completes");
        r = d.r;
    }
    CHECK(r == COROTLS_ERR_IO && reason_is(COROTLS_REASON_IO, ECONNREFUSED), "connect to a closed port: IO, ECONNREFUSED");
    corotls_reason reason = COROTLS_REASON_NONE;
    CHECK(corotls_loop_reason(l, 12345, &reason, NULL) == COROTLS_ERR_ARG, "loop_reason of an fd not in the loop");
    CHECK(corotls_loop_reason(l, 0, NULL, NULL) == COROTLS_ERR_ARG && reason_is(COROTLS_REASON_NULL_ARGUMENT, 0),
          "loop_reason with a NULL out-pointer");
    int lfd, sfd, cfd;
    int lport;
    lfd = lu_listen(l, lu_sconf, &lport);
    REQUIRE(lfd >= 0 && lu_pair(l, lfd, lport, cc, &cfd, &sfd) == 0, "a pair");
    CHECK(corotls_loop_set_sni(l, sfd, "localhost") == COROTLS_ERR_ARG, "SNI on the server side fails");
    int64_t detail = -1;
    CHECK(corotls_loop_reason(l, sfd, &reason, &detail) == COROTLS_OK && reason == COROTLS_REASON_WRONG_STATE,
          "the fd remembers WRONG_STATE: %s", corotls_reason_name(reason));
    lu_reset(&d);
    corotls_loop_free(l);
    corotls_conf_free(cc);
}

int main(void)
{
    return lu_main();
}
