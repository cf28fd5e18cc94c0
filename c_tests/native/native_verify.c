/*
 * native_verify: a client verifies the server's name by default, on every
 * native entry point (builder, corotls_conf_new, conn, session, loop).
 *
 * The peer is `openssl s_server` with wronghost.crt, a certificate from the
 * trusted test CA that names only wrong.example (the "valid certificate for
 * another host" of CWE-297), or with leaf.crt (localhost, 127.0.0.1, ::1).
 * Connecting as localhost to the first must fail, whichever way the client
 * names (or does not name) the server; it succeeds with the right name, an
 * IP SAN, or the explicit chain-only opt-out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corotls.h"
#include "harness.h"
#include "loop_util.h"
#include "tls_util.h"

#define T 10000

/* How the client conf is made. */
enum conf_kind {
    BUILDER,   /* builder defaults + ca.crt */
    CONF_NEW,  /* corotls_conf_new(CLIENT, NULL, NULL, ca.crt, NULL, true) */
    CHAIN_ONLY /* builder + ca.crt + set_verify_name(false) */
};

static const char *kind_name[] = {"builder", "conf_new", "chain-only builder"};

static corotls_conf *client_conf(enum conf_kind k)
{
    corotls_conf *conf = NULL;
    if (k == CONF_NEW) {
        corotls_result r = corotls_conf_new(COROTLS_CLIENT, NULL, NULL, harness_cert("ca.crt"), NULL, true, &conf);
        return r == COROTLS_OK ? conf : NULL;
    }
    corotls_conf_builder *b = NULL;
    corotls_result r = corotls_conf_builder_new(COROTLS_CLIENT, &b);
    if (r == COROTLS_OK)
        r = corotls_conf_builder_add_ca_file(b, harness_cert("ca.crt"));
    if (r == COROTLS_OK && k == CHAIN_ONLY)
        r = corotls_conf_builder_set_verify_name(b, false);
    if (r == COROTLS_OK)
        r = corotls_conf_builder_build(b, &conf);
    corotls_conf_builder_free(b);
    return r == COROTLS_OK ? conf : NULL;
}

static int server_port;
static pid_t server_pid;

static int start_server(const char *cert)
{
    char key[64];
    snprintf(key, sizeof key, "%.*s.key", (int)(strlen(cert) - 4), cert);
    const char *args[] = {"-cert", harness_cert(cert), "-key", harness_cert(key), NULL};
    return harness_spawn_s_server(args, &server_port, &server_pid);
}

/* A conn handshake against the running server.  sni / verify_host: NULL
 * for "not called".  Returns the result; the message goes to msg. */
static corotls_result conn_try(enum conf_kind k, const char *sni, const char *host, char *msg, size_t cap)
{
    corotls_conf *conf = client_conf(k);
    if (!conf) {
        snprintf(msg, cap, "conf: %s", corotls_last_error());
        return COROTLS_ERR_ARG;
    }
    int fd = harness_connect_loopback(server_port);
    corotls_conn *c = NULL;
    corotls_result r = corotls_conn_new(conf, fd, &c);
    if (r == COROTLS_OK && sni)
        r = corotls_conn_set_sni(c, sni);
    if (r == COROTLS_OK && host)
        r = corotls_conn_set_verify_host(c, host);
    if (r == COROTLS_OK)
        r = util_handshake(c, T);
    snprintf(msg, cap, "%s", c ? corotls_conn_error(c) : corotls_last_error());
    corotls_conn_free(c);
    close(fd);
    corotls_conf_free(conf);
    return r;
}

/* corotls_loop_connect(host) + handshake against the running server. */
static corotls_result loop_try(enum conf_kind k, const char *host, char *msg, size_t cap)
{
    corotls_conf *conf = client_conf(k);
    corotls_loop *l = NULL;
    if (!conf || corotls_loop_new(&l) != COROTLS_OK) {
        snprintf(msg, cap, "setup: %s", corotls_last_error());
        corotls_conf_free(conf);
        return COROTLS_ERR_ARG;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", server_port);
    struct lu_done d = {0};
    int fd = -1;
    corotls_result r = corotls_loop_connect(l, host, port, conf, T, lu_cb, &d, &fd);
    if (r == COROTLS_PENDING) {
        r = lu_wait(l, &d, T) ? d.r : COROTLS_TIMEOUT;
        fd = d.fd;
    }
    if (r == COROTLS_OK)
        r = lu_handshake(l, fd, T);
    snprintf(msg, cap, "%s", corotls_last_error());
    lu_reset(&d);
    corotls_loop_free(l);
    corotls_conf_free(conf);
    return r;
}

static void expect(corotls_result r, corotls_result want, const char *msg, const char *says, const char *what)
{
    CHECK(r == want && (!says || strstr(msg, says)), "%s: %s (%s)", what, corotls_result_name(r), msg);
}

/* A certificate for another host from a trusted CA. */
TEST(another_hosts_certificate_is_refused_by_default)
{
    REQUIRE(start_server("wronghost.crt") == 0, "s_server with a certificate for wrong.example only");
    char msg[512], what[128];
    for (int k = BUILDER; k <= CONF_NEW; k++) {
        snprintf(what, sizeof what, "%s, conn, no name", kind_name[k]);
        expect(conn_try(k, NULL, NULL, msg, sizeof msg), COROTLS_ERR_VERIFY, msg, "no host name to verify", what);
        snprintf(what, sizeof what, "%s, conn, SNI localhost only", kind_name[k]);
        expect(conn_try(k, "localhost", NULL, msg, sizeof msg), COROTLS_ERR_VERIFY, msg, "hostname mismatch", what);
        snprintf(what, sizeof what, "%s, conn, verify host localhost", kind_name[k]);
        expect(conn_try(k, NULL, "localhost", msg, sizeof msg), COROTLS_ERR_VERIFY, msg, "hostname mismatch", what);
        snprintf(what, sizeof what, "%s, loop connect to localhost", kind_name[k]);
        expect(loop_try(k, "localhost", msg, sizeof msg), COROTLS_ERR_VERIFY, msg, "hostname mismatch", what);
        snprintf(what, sizeof what, "%s, loop connect to 127.0.0.1", kind_name[k]);
        expect(loop_try(k, "127.0.0.1", msg, sizeof msg), COROTLS_ERR_VERIFY, msg, "IP address mismatch", what);
    }
    /* The name the certificate does carry is accepted. */
    expect(conn_try(BUILDER, "wrong.example", NULL, msg, sizeof msg), COROTLS_OK, msg, NULL,
           "builder, conn, SNI wrong.example (the certificate's name)");
    /* Order: set_verify_host wins over SNI. */
    expect(conn_try(BUILDER, "wrong.example", "localhost", msg, sizeof msg), COROTLS_ERR_VERIFY, msg,
           "hostname mismatch", "builder, conn, SNI wrong.example but verify host localhost");
    /* The explicit opt-out: the chain only. */
    expect(conn_try(CHAIN_ONLY, NULL, NULL, msg, sizeof msg), COROTLS_OK, msg, NULL, "chain only, conn, no name");
    expect(conn_try(CHAIN_ONLY, "localhost", NULL, msg, sizeof msg), COROTLS_OK, msg, NULL,
           "chain only, conn, SNI localhost");
    expect(loop_try(CHAIN_ONLY, "localhost", msg, sizeof msg), COROTLS_OK, msg, NULL, "chain only, loop connect");
    expect(conn_try(CHAIN_ONLY, NULL, "localhost", msg, sizeof msg), COROTLS_ERR_VERIFY, msg, "hostname mismatch",
           "chain only, but verify host localhost given: checked");
    harness_kill(server_pid);
}

TEST(the_right_name_or_address_is_accepted)
{
    REQUIRE(start_server("leaf.crt") == 0, "s_server with leaf.crt (localhost, 127.0.0.1, ::1)");
    char msg[512], what[128];
    for (int k = BUILDER; k <= CONF_NEW; k++) {
        snprintf(what, sizeof what, "%s, conn, SNI localhost", kind_name[k]);
        expect(conn_try(k, "localhost", NULL, msg, sizeof msg), COROTLS_OK, msg, NULL, what);
        snprintf(what, sizeof what, "%s, conn, verify host 127.0.0.1 (IP SAN)", kind_name[k]);
        expect(conn_try(k, NULL, "127.0.0.1", msg, sizeof msg), COROTLS_OK, msg, NULL, what);
        snprintf(what, sizeof what, "%s, loop connect to localhost", kind_name[k]);
        expect(loop_try(k, "localhost", msg, sizeof msg), COROTLS_OK, msg, NULL, what);
        snprintf(what, sizeof what, "%s, loop connect to 127.0.0.1 (IP SAN)", kind_name[k]);
        expect(loop_try(k, "127.0.0.1", msg, sizeof msg), COROTLS_OK, msg, NULL, what);
    }
    /* Still no name at all: refused before anything is sent. */
    expect(conn_try(BUILDER, NULL, NULL, msg, sizeof msg), COROTLS_ERR_VERIFY, msg, "set_verify_host",
           "builder, conn, no name, the right certificate: the message says how to name the server");
    harness_kill(server_pid);
}

/* The session (sans-IO) API: no name fails at the first handshake step,
 * before a ClientHello is produced. */
TEST(session_without_a_name_fails_before_sending)
{
    corotls_conf *cc = client_conf(BUILDER);
    corotls_session *c = NULL;
    REQUIRE(cc && corotls_session_new(cc, &c) == COROTLS_OK, "client session");
    corotls_result r = corotls_session_handshake(c);
    CHECK(r == COROTLS_ERR_VERIFY && strstr(corotls_session_error(c), "no host name"), "handshake: %s (%s)",
          corotls_result_name(r), corotls_session_error(c));
    CHECK(corotls_session_out_pending(c) == 0, "no ClientHello was produced");
    CHECK(corotls_session_handshake(c) == COROTLS_ERR_VERIFY, "the failure is latched");
    corotls_session_free(c);
    corotls_conf_free(cc);
}

/* Verification needs trust: a build without any says how to add it. */
TEST(verifying_without_trust_fails_at_build)
{
    corotls_conf_builder *b = NULL;
    corotls_conf *conf = (corotls_conf *)1;
    REQUIRE(corotls_conf_builder_new(COROTLS_CLIENT, &b) == COROTLS_OK, "client builder");
    corotls_result r = corotls_conf_builder_build(b, &conf);
    CHECK(r == COROTLS_ERR_ARG && conf == NULL && strstr(corotls_last_error(), "add_ca_file"),
          "a verifying client without trust: %s (%s)", corotls_result_name(r), corotls_last_error());
    CHECK(corotls_conf_builder_set_verify(b, COROTLS_VERIFY_NONE) == COROTLS_OK &&
              corotls_conf_builder_build(b, &conf) == COROTLS_OK,
          "with verification off it builds");
    corotls_conf_free(conf);
    corotls_conf_builder_free(b);
    r = corotls_conf_new(COROTLS_CLIENT, NULL, NULL, NULL, NULL, true, &conf);
    CHECK(r == COROTLS_ERR_ARG && strstr(corotls_last_error(), "trusted CA"), "conf_new(verify) without a CA: %s (%s)",
          corotls_result_name(r), corotls_last_error());
    REQUIRE(corotls_conf_builder_new(COROTLS_SERVER, &b) == COROTLS_OK, "server builder");
    REQUIRE(corotls_conf_builder_add_identity_file(b, harness_cert("leaf.crt"), harness_cert("leaf.key"), NULL) ==
                    COROTLS_OK &&
                corotls_conf_builder_set_verify(b, COROTLS_VERIFY_REQUIRE) == COROTLS_OK,
            "a server that requires client certificates");
    r = corotls_conf_builder_build(b, &conf);
    CHECK(r == COROTLS_ERR_ARG && strstr(corotls_last_error(), "verifies clients"),
          "without trust it does not build: %s (%s)", corotls_result_name(r), corotls_last_error());
    corotls_conf_builder_free(b);
}

/* corotls_conf_builder_allow_empty_trust: the explicit way to build a
 * verifying conf with no trust (Melang's conf_new(..., verify=true) without
 * a CA): it builds, and every handshake then fails verification, with a
 * name or without, with the name check on or off. */
TEST(empty_trust_builds_on_request_and_then_fails_every_handshake)
{
    CHECK(corotls_conf_builder_allow_empty_trust(NULL) == COROTLS_ERR_ARG, "NULL builder is ERR_ARG");
    corotls_conf_builder *b = NULL;
    corotls_conf *conf = NULL;
    REQUIRE(corotls_conf_builder_new(COROTLS_CLIENT, &b) == COROTLS_OK, "client builder");
    CHECK(corotls_conf_builder_allow_empty_trust(b) == COROTLS_OK, "allow_empty_trust");
    CHECK(corotls_conf_builder_set_verify_name(b, false) == COROTLS_OK, "chain only");
    corotls_result r = corotls_conf_builder_build(b, &conf);
    REQUIRE(r == COROTLS_OK && conf, "a verifying client without trust builds: %s (%s)", corotls_result_name(r),
            corotls_last_error());
    corotls_conf_builder_free(b);
    REQUIRE(start_server("leaf.crt") == 0, "s_server with leaf.crt");
    const char *names[] = {NULL, "localhost"};
    for (int i = 0; i < 2; i++) {
        int fd = harness_connect_loopback(server_port);
        corotls_conn *c = NULL;
        r = corotls_conn_new(conf, fd, &c);
        if (r == COROTLS_OK && names[i])
            r = corotls_conn_set_verify_host(c, names[i]);
        if (r == COROTLS_OK)
            r = util_handshake(c, T);
        int64_t detail = 0;
        corotls_reason why = c ? corotls_conn_reason(c, &detail) : COROTLS_REASON_NONE;
        CHECK(r == COROTLS_ERR_VERIFY && why == COROTLS_REASON_VERIFY,
              "handshake %s verify_host fails verification: %s, reason %s %lld (%s)", names[i] ? "with" : "without",
              corotls_result_name(r), corotls_reason_name(why), (long long)detail, c ? corotls_conn_error(c) : "");
        corotls_conn_free(c);
        close(fd);
    }
    harness_kill(server_pid);
    corotls_conf_free(conf);

    /* A server that requires client certificates, with no trust. */
    REQUIRE(corotls_conf_builder_new(COROTLS_SERVER, &b) == COROTLS_OK, "server builder");
    REQUIRE(corotls_conf_builder_add_identity_file(b, harness_cert("leaf.crt"), harness_cert("leaf.key"), NULL) ==
                    COROTLS_OK &&
                corotls_conf_builder_set_verify(b, COROTLS_VERIFY_REQUIRE) == COROTLS_OK &&
                corotls_conf_builder_allow_empty_trust(b) == COROTLS_OK,
            "a server that requires client certificates, empty trust allowed");
    conf = NULL;
    r = corotls_conf_builder_build(b, &conf);
    CHECK(r == COROTLS_OK && conf, "builds: %s (%s)", corotls_result_name(r), corotls_last_error());
    corotls_conf_free(conf);
    /* Trust given as well is used as usual. */
    REQUIRE(corotls_conf_builder_add_ca_file(b, harness_cert("ca.crt")) == COROTLS_OK, "add a CA too");
    conf = NULL;
    CHECK(corotls_conf_builder_build(b, &conf) == COROTLS_OK && conf, "still builds");
    corotls_conf_free(conf);
    corotls_conf_builder_free(b);
}

int main(void)
{
    return harness_run_all();
}
