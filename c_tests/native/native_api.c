/*
 * native_api: the native C API without sockets -- bad input on every
 * function, configuration errors with their messages, and client/server
 * sessions pumping bytes to each other in memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corotls.h"
#include "harness.h"
#include "tls_util.h"

#define IS(r, want) ((r) == (want))
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(1 << 16);
    *len = buf ? fread(buf, 1, 1 << 16, f) : 0;
    fclose(f);
    return buf;
}

TEST(result_names_and_version)
{
    CHECK(!strcmp(corotls_result_name(COROTLS_OK), "OK"), "OK");
    CHECK(!strcmp(corotls_result_name(COROTLS_WANT_WRITE), "WANT_WRITE"), "WANT_WRITE");
    CHECK(!strcmp(corotls_result_name(COROTLS_ERR_VERIFY), "ERR_VERIFY"), "ERR_VERIFY");
    CHECK(!strcmp(corotls_result_name(COROTLS_ERR_CANCELLED), "ERR_CANCELLED"), "ERR_CANCELLED");
    CHECK(!strcmp(corotls_result_name(1234), "UNKNOWN"), "an unknown value is UNKNOWN");
    CHECK(!strcmp(corotls_version(), COROTLS_VERSION_STRING), "corotls_version() is COROTLS_VERSION_STRING (%s)",
          corotls_version());
    char v[64];
    snprintf(v, sizeof v, "%d.%d.%d", COROTLS_VERSION_MAJOR, COROTLS_VERSION_MINOR, COROTLS_VERSION_PATCH);
    size_t n = strlen(v);
    int same = !strncmp(v, COROTLS_VERSION_STRING, n); /* then a "" or -pre / +build rest */
    const char *rest = same ? COROTLS_VERSION_STRING + n : "?";
    CHECK(same && (*rest == '\0' || *rest == '-' || *rest == '+'), "MAJOR.MINOR.PATCH (%s) begin COROTLS_VERSION_STRING",
          v);
}

TEST(null_pointers_everywhere)
{
    corotls_conf_builder *b = NULL;
    corotls_conf *conf = util_server_conf("leaf.crt", "leaf.key");
    corotls_session *s = NULL;
    corotls_conn *c = NULL;
    size_t n = 7;
    const uint8_t *p = (const uint8_t *)"x";
    uint8_t buf[8];
    REQUIRE(conf != NULL, "server conf");

    CHECK(IS(corotls_conf_builder_new(COROTLS_CLIENT, NULL), COROTLS_ERR_ARG) && says("NULL"), "builder_new(out=NULL)");
    CHECK(IS(corotls_conf_builder_add_identity_file(NULL, "a", "b", NULL), COROTLS_ERR_ARG), "add_identity_file(NULL builder)");
    CHECK(IS(corotls_conf_builder_add_identity_pem(NULL, p, 1, p, 1, NULL), COROTLS_ERR_ARG), "add_identity_pem(NULL builder)");
    CHECK(IS(corotls_conf_builder_add_ca_file(NULL, "x"), COROTLS_ERR_ARG), "add_ca_file(NULL)");
    CHECK(IS(corotls_conf_builder_add_ca_dir(NULL, "x"), COROTLS_ERR_ARG), "add_ca_dir(NULL)");
    CHECK(IS(corotls_conf_builder_add_ca_pem(NULL, p, 1), COROTLS_ERR_ARG), "add_ca_pem(NULL)");
    CHECK(IS(corotls_conf_builder_add_system_ca(NULL), COROTLS_ERR_ARG), "add_system_ca(NULL)");
    CHECK(IS(corotls_conf_builder_set_verify(NULL, 0), COROTLS_ERR_ARG), "set_verify(NULL)");
    CHECK(IS(corotls_conf_builder_set_versions(NULL, COROTLS_TLS1_2, COROTLS_TLS1_3), COROTLS_ERR_ARG), "set_versions(NULL)");
    CHECK(IS(corotls_conf_builder_set_ciphers(NULL, "DEFAULT"), COROTLS_ERR_ARG), "set_ciphers(NULL)");
    CHECK(IS(corotls_conf_builder_set_suites(NULL, "TLS_AES_128_GCM_SHA256"), COROTLS_ERR_ARG), "set_suites(NULL)");
    CHECK(IS(corotls_conf_builder_set_alpn(NULL, NULL, 0), COROTLS_ERR_ARG), "set_alpn(NULL)");
    CHECK(IS(corotls_conf_builder_set_alpn_wire(NULL, p, 1), COROTLS_ERR_ARG), "set_alpn_wire(NULL)");
    CHECK(IS(corotls_conf_builder_build(NULL, NULL), COROTLS_ERR_ARG), "build(NULL, NULL)");
    corotls_conf_builder_free(NULL);
    corotls_conf_free(NULL);
    corotls_session_free(NULL);
    corotls_conn_free(NULL);
    CHECK(1, "the _free functions accept NULL");

    REQUIRE(corotls_conf_builder_new(COROTLS_SERVER, &b) == COROTLS_OK, "builder");
    CHECK(IS(corotls_conf_builder_add_identity_file(b, NULL, "k", NULL), COROTLS_ERR_ARG) && says("certificate file is NULL"),
          "add_identity_file(cert=NULL)");
    CHECK(IS(corotls_conf_builder_add_identity_file(b, "c", NULL, NULL), COROTLS_ERR_ARG) && says("key file is NULL"),
          "add_identity_file(key=NULL)");
    CHECK(IS(corotls_conf_builder_add_identity_pem(b, NULL, 5, p, 1, NULL), COROTLS_ERR_ARG), "add_identity_pem(cert=NULL, len 5)");
    CHECK(IS(corotls_conf_builder_add_ca_file(b, NULL), COROTLS_ERR_ARG), "add_ca_file(path=NULL)");
    CHECK(IS(corotls_conf_builder_add_ca_dir(b, NULL), COROTLS_ERR_ARG), "add_ca_dir(path=NULL)");
    CHECK(IS(corotls_conf_builder_add_ca_pem(b, NULL, 3), COROTLS_ERR_ARG), "add_ca_pem(pem=NULL)");
    CHECK(IS(corotls_conf_builder_set_ciphers(b, NULL), COROTLS_ERR_ARG), "set_ciphers(list=NULL)");
    CHECK(IS(corotls_conf_builder_set_suites(b, NULL), COROTLS_ERR_ARG), "set_suites(list=NULL)");
    const char *names[] = {"h2", NULL};
    CHECK(IS(corotls_conf_builder_set_alpn(b, names, 2), COROTLS_ERR_ARG), "set_alpn with a NULL name");
    CHECK(IS(corotls_conf_builder_set_alpn_wire(b, NULL, 4), COROTLS_ERR_ARG), "set_alpn_wire(wire=NULL)");
    CHECK(IS(corotls_conf_builder_build(b, NULL), COROTLS_ERR_ARG), "build(out=NULL)");
    CHECK(IS(corotls_conf_new(COROTLS_CLIENT, NULL, NULL, NULL, NULL, false, NULL), COROTLS_ERR_ARG), "conf_new(out=NULL)");
    CHECK(corotls_conf_role(NULL) == -1, "conf_role(NULL)");

    CHECK(IS(corotls_session_new(NULL, &s), COROTLS_ERR_ARG) && s == NULL && says("conf is NULL"), "session_new(conf=NULL)");
    CHECK(IS(corotls_session_new(conf, NULL), COROTLS_ERR_ARG), "session_new(out=NULL)");
    CHECK(IS(corotls_session_set_sni(NULL, "x"), COROTLS_ERR_ARG), "session_set_sni(NULL)");
    CHECK(IS(corotls_session_set_verify_host(NULL, "x"), COROTLS_ERR_ARG), "session_set_verify_host(NULL)");
    CHECK(IS(corotls_session_set_alpn_wire(NULL, p, 1), COROTLS_ERR_ARG), "session_set_alpn_wire(NULL)");
    CHECK(IS(corotls_session_feed(NULL, p, 1, &n), COROTLS_ERR_ARG) && n == 0, "session_feed(NULL) sets *plain_size 0");
    CHECK(IS(corotls_session_feed_eof(NULL), COROTLS_ERR_ARG), "session_feed_eof(NULL)");
    CHECK(corotls_session_out_pending(NULL) == 0, "session_out_pending(NULL)");
    CHECK(corotls_session_out_read(NULL, buf, sizeof buf) == 0, "session_out_read(NULL)");
    CHECK(IS(corotls_session_handshake(NULL), COROTLS_ERR_ARG), "session_handshake(NULL)");
    CHECK(IS(corotls_session_write(NULL, p, 1), COROTLS_ERR_ARG), "session_write(NULL)");
    CHECK(IS(corotls_session_read(NULL, buf, 1, &n), COROTLS_ERR_ARG), "session_read(NULL)");
    CHECK(corotls_session_plain_size(NULL) == 0, "session_plain_size(NULL)");
    CHECK(IS(corotls_session_peek(NULL, &p, &n), COROTLS_ERR_ARG), "session_peek(NULL)");
    CHECK(IS(corotls_session_consume(NULL, 1), COROTLS_ERR_ARG), "session_consume(NULL)");
    CHECK(IS(corotls_session_read_exact(NULL, buf, 1), COROTLS_ERR_ARG), "session_read_exact(NULL)");
    CHECK(IS(corotls_session_read_until(NULL, '\n', buf, 1, &n), COROTLS_ERR_ARG), "session_read_until(NULL)");
    CHECK(IS(corotls_session_shutdown(NULL), COROTLS_ERR_ARG), "session_shutdown(NULL)");
    CHECK(!corotls_session_peer_closed(NULL) && !corotls_session_handshake_done(NULL), "session predicates on NULL");
    CHECK(!strcmp(corotls_session_version(NULL), "") && !strcmp(corotls_session_alpn(NULL), ""), "session accessors on NULL");
    CHECK(strlen(corotls_session_error(NULL)) > 0, "session_error(NULL) says so");

    REQUIRE(corotls_session_new(conf, &s) == COROTLS_OK, "server session");
    CHECK(IS(corotls_session_set_verify_host(s, NULL), COROTLS_ERR_ARG), "session_set_verify_host(name=NULL)");
    CHECK(IS(corotls_session_feed(s, NULL, 3, NULL), COROTLS_ERR_ARG), "session_feed(data=NULL, len=3)");
    CHECK(IS(corotls_session_feed(s, NULL, 0, NULL), COROTLS_OK), "session_feed(NULL, 0) is an empty feed");
    CHECK(IS(corotls_session_write(s, NULL, 2), COROTLS_ERR_ARG), "session_write(data=NULL)");
    CHECK(IS(corotls_session_read(s, NULL, 5, &n), COROTLS_ERR_ARG), "session_read(buf=NULL)");
    CHECK(IS(corotls_session_peek(s, NULL, &n), COROTLS_ERR_ARG), "session_peek(data=NULL)");
    CHECK(IS(corotls_session_read_exact(s, NULL, 4), COROTLS_ERR_ARG), "session_read_exact(buf=NULL)");
    CHECK(IS(corotls_session_read_exact(s, buf, 0), COROTLS_ERR_ARG), "session_read_exact(n=0)");
    CHECK(IS(corotls_session_read_until(s, '\n', NULL, 4, &n), COROTLS_ERR_ARG), "session_read_until(buf=NULL)");
    CHECK(corotls_session_out_read(s, NULL, 10) == 0, "session_out_read(dst=NULL)");
    corotls_session_free(s);

    CHECK(IS(corotls_conn_new(NULL, 0, &c), COROTLS_ERR_ARG) && c == NULL, "conn_new(conf=NULL)");
    CHECK(IS(corotls_conn_new(conf, -1, &c), COROTLS_ERR_ARG) && says("file descriptor"), "conn_new(fd=-1)");
    CHECK(IS(corotls_conn_new(conf, 0, NULL), COROTLS_ERR_ARG), "conn_new(out=NULL)");
    CHECK(IS(corotls_conn_set_sni(NULL, "x"), COROTLS_ERR_ARG), "conn_set_sni(NULL)");
    CHECK(IS(corotls_conn_set_verify_host(NULL, "x"), COROTLS_ERR_ARG), "conn_set_verify_host(NULL)");
    CHECK(IS(corotls_conn_set_alpn_wire(NULL, p, 1), COROTLS_ERR_ARG), "conn_set_alpn_wire(NULL)");
    CHECK(IS(corotls_conn_handshake(NULL), COROTLS_ERR_ARG), "conn_handshake(NULL)");
    CHECK(IS(corotls_conn_read(NULL, buf, 1, &n), COROTLS_ERR_ARG), "conn_read(NULL)");
    CHECK(IS(corotls_conn_write(NULL, p, 1, &n), COROTLS_ERR_ARG), "conn_write(NULL)");
    CHECK(IS(corotls_conn_flush(NULL), COROTLS_ERR_ARG), "conn_flush(NULL)");
    CHECK(IS(corotls_conn_shutdown(NULL), COROTLS_ERR_ARG), "conn_shutdown(NULL)");
    CHECK(corotls_conn_unsent(NULL) == 0 && corotls_conn_fd(NULL) == -1 && corotls_conn_session(NULL) == NULL,
          "conn accessors on NULL");
    CHECK(!strcmp(corotls_conn_error(NULL), "conn is NULL"), "conn_error(NULL)");
    corotls_conf_builder_free(b);
    corotls_conf_free(conf);
}

TEST(configuration_errors)
{
    corotls_conf_builder *b = NULL;
    corotls_conf *conf = NULL;
    CHECK(IS(corotls_conf_builder_new(7, &b), COROTLS_ERR_ARG) && b == NULL && says("role 7"), "wrong role");
    CHECK(IS(corotls_conf_new(-2, NULL, NULL, NULL, NULL, false, &conf), COROTLS_ERR_ARG) && conf == NULL, "conf_new wrong role");
    CHECK(IS(corotls_conf_new(COROTLS_SERVER, NULL, NULL, NULL, NULL, false, &conf), COROTLS_ERR_ARG) &&
              says("server needs a certificate"),
          "conf_new server without cert/key");
    CHECK(IS(corotls_conf_new(COROTLS_SERVER, harness_cert("leaf.crt"), "", NULL, NULL, false, &conf), COROTLS_ERR_ARG),
          "conf_new server with an empty key path");
    CHECK(IS(corotls_conf_new(COROTLS_SERVER, "/nonexistent.crt", harness_cert("leaf.key"), NULL, NULL, false, &conf),
             COROTLS_ERR_ARG) && says("No such file"),
          "missing certificate file");
    CHECK(IS(corotls_conf_new(COROTLS_CLIENT, NULL, NULL, harness_cert("garbage.pem"), NULL, true, &conf), COROTLS_ERR_ARG) &&
              says("no PEM certificate"),
          "CA file that is not PEM");
    CHECK(IS(corotls_conf_new(COROTLS_CLIENT, NULL, NULL, NULL, "NO-SUCH-CIPHER", false, &conf), COROTLS_ERR_ARG) &&
              says("invalid TLS 1.2 cipher list"),
          "conf_new with an invalid cipher list");

    REQUIRE(corotls_conf_builder_new(COROTLS_SERVER, &b) == COROTLS_OK, "server builder");
    CHECK(IS(corotls_conf_builder_build(b, &conf), COROTLS_ERR_ARG) && conf == NULL && says("needs an identity"),
          "a server without identity does not build");
    CHECK(IS(corotls_conf_builder_add_identity_file(b, harness_cert("garbage.pem"), harness_cert("leaf.key"), NULL),
             COROTLS_ERR_ARG) && says("certificate:"),
          "certificate that is not PEM");
    CHECK(IS(corotls_conf_builder_add_identity_file(b, harness_cert("empty.pem"), harness_cert("leaf.key"), NULL),
             COROTLS_ERR_ARG) && says("certificate:"),
          "empty certificate file");
    CHECK(IS(corotls_conf_builder_add_identity_file(b, harness_cert("leaf.crt"), harness_cert("garbage.pem"), NULL),
             COROTLS_ERR_ARG) && says("private key:"),
          "key that is not PEM");
    CHECK(IS(corotls_conf_builder_add_identity_file(b, harness_cert("leaf.crt"), harness_cert("other.key"), NULL),
             COROTLS_ERR_ARG) && says("private key does not match the certificate"),
          "key that does not match the certificate");
    CHECK(IS(corotls_conf_builder_add_identity_file(b, harness_cert("leaf.crt"), harness_cert("leaf.enc.key"), "nope"),
             COROTLS_ERR_ARG) && says("wrong password"),
          "encrypted key with the wrong password");
    CHECK(IS(corotls_conf_builder_add_identity_file(b, harness_cert("leaf.crt"), harness_cert("leaf.enc.key"), NULL),
             COROTLS_ERR_ARG) && says("no password"),
          "encrypted key without a password");
    CHECK(IS(corotls_conf_builder_add_identity_file(b, harness_cert("leaf.crt"), harness_cert("leaf.enc.key"), "secret"),
             COROTLS_OK),
          "encrypted key with the right password");
    CHECK(IS(corotls_conf_builder_add_identity_file(b, harness_cert("leaf.crt"), harness_cert("leaf.pkcs1.key"), NULL),
             COROTLS_OK),
          "PKCS#1 key");
    size_t cl = 0, kl = 0;
    char *cert = slurp(harness_cert("chained-full.crt"), &cl), *key = slurp(harness_cert("chained.key"), &kl);
    CHECK(IS(corotls_conf_builder_add_identity_pem(b, (uint8_t *)cert, cl, (uint8_t *)key, kl, NULL), COROTLS_OK),
          "identity from PEM in memory (leaf + intermediate)");
    CHECK(IS(corotls_conf_builder_add_identity_pem(b, (uint8_t *)key, kl, (uint8_t *)key, kl, NULL), COROTLS_ERR_ARG) &&
              says("certificate:"),
          "a key given as the certificate");
    CHECK(IS(corotls_conf_builder_add_ca_pem(b, (uint8_t *)cert, cl), COROTLS_OK), "CA from PEM in memory");
    free(cert);
    free(key);

    CHECK(IS(corotls_conf_builder_set_ciphers(b, "NOPE-NOPE"), COROTLS_ERR_ARG) && says("invalid TLS 1.2 cipher list"),
          "invalid cipher list");
    CHECK(IS(corotls_conf_builder_set_suites(b, "TLS_NOPE"), COROTLS_ERR_ARG) && says("invalid TLS 1.3 suite list"),
          "invalid suite list");
    CHECK(IS(corotls_conf_builder_set_ciphers(b, "ECDHE+AESGCM"), COROTLS_OK), "valid cipher list");
    CHECK(IS(corotls_conf_builder_set_suites(b, "TLS_AES_128_GCM_SHA256"), COROTLS_OK), "valid suite list");
    CHECK(IS(corotls_conf_builder_set_versions(b, COROTLS_TLS1_3, COROTLS_TLS1_2), COROTLS_ERR_ARG) && says("above the maximum"),
          "versions min > max");
    CHECK(IS(corotls_conf_builder_set_versions(b, 0x0301, COROTLS_TLS1_3), COROTLS_ERR_ARG) && says("not supported"),
          "TLS 1.0 is not supported");
    CHECK(IS(corotls_conf_builder_set_verify(b, 9), COROTLS_ERR_ARG), "unknown verify mode");
    const char *empty[] = {""};
    CHECK(IS(corotls_conf_builder_set_alpn(b, empty, 1), COROTLS_ERR_ARG) && says("empty"), "empty ALPN name");
    char longname[300];
    memset(longname, 'a', 299);
    longname[299] = '\0';
    const char *longv[] = {longname};
    CHECK(IS(corotls_conf_builder_set_alpn(b, longv, 1), COROTLS_ERR_ARG) && says("255"), "ALPN name over 255 bytes");
    CHECK(IS(corotls_conf_builder_set_alpn_wire(b, (const uint8_t *)"\x05h2", 3), COROTLS_ERR_ARG) && says("truncated"),
          "truncated ALPN wire list");
    CHECK(IS(corotls_conf_builder_add_ca_file(b, "/nonexistent/ca.pem"), COROTLS_ERR_ARG) && says("No such file"),
          "missing CA file");
    CHECK(IS(corotls_conf_builder_add_ca_dir(b, harness_cert("ca.crt")), COROTLS_ERR_ARG) && says("not a directory"),
          "CA dir that is a file");
    CHECK(IS(corotls_conf_builder_add_ca_dir(b, harness_certdir()), COROTLS_OK), "CA dir");
    const char *protos[] = {"h2", "http/1.1"};
    CHECK(IS(corotls_conf_builder_set_alpn(b, protos, 2), COROTLS_OK), "ALPN list");
    CHECK(IS(corotls_conf_builder_build(b, &conf), COROTLS_OK) && conf != NULL, "builds after the errors");
    CHECK(corotls_conf_role(conf) == COROTLS_SERVER, "conf role");
    corotls_conf_free(conf);
    conf = NULL;
    /* The builder is reusable: a second build is independent. */
    CHECK(IS(corotls_conf_builder_build(b, &conf), COROTLS_OK), "builds twice");
    corotls_conf_free(conf);
    corotls_conf_builder_free(b);

    REQUIRE(corotls_conf_builder_new(COROTLS_CLIENT, &b) == COROTLS_OK, "client builder");
    CHECK(IS(corotls_conf_builder_add_identity_file(b, harness_cert("client.crt"), harness_cert("client.key"), NULL), COROTLS_OK),
          "client certificate");
    CHECK(IS(corotls_conf_builder_add_identity_file(b, harness_cert("client.crt"), harness_cert("client.key"), NULL),
             COROTLS_ERR_ARG) && says("one identity"),
          "a second client identity");
    corotls_conf_builder_free(b);
}

/* A connected pair of sessions (client verifies localhost). */
static int session_pair(corotls_conf **sc, corotls_conf **cc, corotls_session **c, corotls_session **s, size_t step)
{
    *sc = util_server_conf("leaf.crt", "leaf.key");
    *cc = util_client_conf(1);
    if (!*sc || !*cc || corotls_session_new(*cc, c) != COROTLS_OK || corotls_session_new(*sc, s) != COROTLS_OK)
        return -1;
    corotls_session_set_sni(*c, "localhost");
    corotls_session_set_verify_host(*c, "localhost");
    util_pump(*c, *s, step);
    return corotls_session_handshake_done(*c) && corotls_session_handshake_done(*s) ? 0 : -1;
}

static void session_pair_free(corotls_conf *sc, corotls_conf *cc, corotls_session *c, corotls_session *s)
{
    corotls_session_free(c);
    corotls_session_free(s);
    corotls_conf_free(sc);
    corotls_conf_free(cc);
}

TEST(sessions_in_memory)
{
    corotls_conf *sc = NULL, *cc = NULL;
    corotls_session *c = NULL, *s = NULL;
    REQUIRE(session_pair(&sc, &cc, &c, &s, 0) == 0, "handshake in memory");
    CHECK(!strcmp(corotls_session_version(c), "TLSv1.3"), "version %s", corotls_session_version(c));
    CHECK(strstr(corotls_session_peer_subject(c), "CN=localhost") != NULL, "peer subject %s", corotls_session_peer_subject(c));
    CHECK(!strcmp(corotls_session_verify_result(c), "ok"), "verify result %s", corotls_session_verify_result(c));
    CHECK(!strcmp(corotls_session_alpn(c), ""), "no ALPN is \"\"");

    const char *msg = "first line\nsecond line\ntail";
    CHECK(IS(corotls_session_write(c, (const uint8_t *)msg, strlen(msg)), COROTLS_OK), "client write");
    uint8_t ct[4096];
    size_t n = corotls_session_out_read(c, ct, sizeof ct), plain = 0;
    CHECK(n > strlen(msg) && corotls_session_out_pending(c) == 0, "ciphertext taken (%zu bytes)", n);
    CHECK(IS(corotls_session_feed(s, ct, n, &plain), COROTLS_OK) && plain == strlen(msg), "feed decrypts: %zu plaintext bytes", plain);
    CHECK(corotls_session_plain_size(s) == strlen(msg), "plain_size");

    char line[64];
    size_t len = 0;
    CHECK(IS(corotls_session_read_until(s, '\n', (uint8_t *)line, 4, &len), COROTLS_ERR_ARG) && len == 11,
          "read_until with a small buffer says what it needs (%zu)", len);
    CHECK(IS(corotls_session_read_until(s, '\n', (uint8_t *)line, sizeof line, &len), COROTLS_OK) && len == 11 &&
              !memcmp(line, "first line\n", 11),
          "read_until includes the delimiter");
    CHECK(IS(corotls_session_read_exact(s, (uint8_t *)line, 100), COROTLS_WANT_READ) && corotls_session_plain_size(s) == 16,
          "read_exact of too much leaves everything buffered");
    CHECK(IS(corotls_session_read_exact(s, (uint8_t *)line, 6), COROTLS_OK) && !memcmp(line, "second", 6), "read_exact");
    const uint8_t *view = NULL;
    CHECK(IS(corotls_session_peek(s, &view, &len), COROTLS_OK) && len == 10 && !memcmp(view, " line\ntail", 10), "peek");
    CHECK(IS(corotls_session_consume(s, 11), COROTLS_ERR_ARG), "consume more than buffered");
    CHECK(IS(corotls_session_consume(s, 6), COROTLS_OK) && corotls_session_plain_size(s) == 4, "consume");
    CHECK(IS(corotls_session_read_until(s, '\n', (uint8_t *)line, sizeof line, &len), COROTLS_WANT_READ) && len == 0,
          "no delimiter yet: WANT_READ");
    CHECK(IS(corotls_session_read(s, (uint8_t *)line, sizeof line, &len), COROTLS_OK) && len == 4 && !memcmp(line, "tail", 4),
          "read drains the buffer");
    CHECK(IS(corotls_session_read(s, (uint8_t *)line, sizeof line, &len), COROTLS_WANT_READ), "then WANT_READ");
    CHECK(IS(corotls_session_peek(s, &view, &len), COROTLS_WANT_READ) && view == NULL && len == 0, "peek on empty");

    /* close_notify: CLOSED after the data. */
    CHECK(IS(corotls_session_write(s, (const uint8_t *)"bye", 3), COROTLS_OK) && IS(corotls_session_shutdown(s), COROTLS_OK),
          "server writes and shuts down");
    CHECK(IS(corotls_session_write(s, (const uint8_t *)"x", 1), COROTLS_ERR_ARG) && says("after shutdown"),
          "write after shutdown");
    n = corotls_session_out_read(s, ct, sizeof ct);
    CHECK(IS(corotls_session_feed(c, ct, n, NULL), COROTLS_OK), "client feeds data + close_notify");
    CHECK(IS(corotls_session_read(c, (uint8_t *)line, sizeof line, &len), COROTLS_OK) && len == 3, "data before the close");
    CHECK(IS(corotls_session_read(c, (uint8_t *)line, sizeof line, &len), COROTLS_CLOSED) && corotls_session_peer_closed(c),
          "then CLOSED");
    CHECK(IS(corotls_session_read(c, (uint8_t *)line, sizeof line, &len), COROTLS_CLOSED), "read after close stays CLOSED");
    session_pair_free(sc, cc, c, s);
}

TEST(sessions_one_byte_at_a_time)
{
    corotls_conf *sc = NULL, *cc = NULL;
    corotls_session *c = NULL, *s = NULL;
    REQUIRE(session_pair(&sc, &cc, &c, &s, 1) == 0, "handshake one byte at a time");
    enum { N = 5000 };
    uint8_t *msg = malloc(N), *got = malloc(N), b;
    util_fill(msg, N, 3);
    CHECK(IS(corotls_session_write(s, msg, N), COROTLS_OK), "server writes %d bytes", N);
    size_t have = 0, feeds = 0;
    while (corotls_session_out_read(s, &b, 1) == 1) {
        size_t plain = 0;
        corotls_session_feed(c, &b, 1, &plain);
        feeds++;
        size_t n = 0;
        while (corotls_session_read(c, got + have, N - have, &n) == COROTLS_OK)
            have += n;
    }
    CHECK(have == N && !memcmp(msg, got, N), "all %zu bytes intact after %zu one-byte feeds", have, feeds);
    free(msg);
    free(got);
    session_pair_free(sc, cc, c, s);
}

TEST(sessions_wrong_state_and_garbage)
{
    corotls_conf *sc = util_server_conf("leaf.crt", "leaf.key"), *cc = util_client_conf(1);
    corotls_session *s = NULL, *c = NULL;
    REQUIRE(sc && cc && corotls_session_new(sc, &s) == COROTLS_OK && corotls_session_new(cc, &c) == COROTLS_OK, "sessions");
    CHECK(IS(corotls_session_write(s, (const uint8_t *)"early", 5), COROTLS_WANT_READ), "server write before a ClientHello: WANT_READ");
    CHECK(corotls_session_out_pending(s) == 0, "nothing produced");
    CHECK(IS(corotls_session_set_sni(s, "localhost"), COROTLS_ERR_ARG) && says("client"), "SNI on a server session");
    char longname[300];
    memset(longname, 'h', 299);
    longname[299] = '\0';
    CHECK(IS(corotls_session_set_sni(c, longname), COROTLS_ERR_ARG) && says("255"), "SNI of 299 bytes");
    CHECK(IS(corotls_session_set_verify_host(c, longname), COROTLS_ERR_ARG) && says("255"), "verify host of 299 bytes");
    CHECK(IS(corotls_session_set_sni(c, ""), COROTLS_ERR_ARG) && says("empty"), "empty SNI");
    CHECK(IS(corotls_session_set_alpn_wire(c, (const uint8_t *)"\x00", 1), COROTLS_ERR_ARG), "bad ALPN wire on a session");
    CHECK(IS(corotls_session_set_sni(c, "localhost"), COROTLS_OK), "SNI names the server");
    CHECK(IS(corotls_session_handshake(c), COROTLS_WANT_READ), "client handshake starts");
    CHECK(IS(corotls_session_set_sni(c, "localhost"), COROTLS_ERR_ARG) && says("before the handshake"), "SNI after the start");

    const char *junk = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    corotls_result r = corotls_session_feed(s, (const uint8_t *)junk, strlen(junk), NULL);
    CHECK(IS(r, COROTLS_ERR_TLS), "garbage on the wire: %s (%s)", corotls_result_name(r), corotls_session_error(s));
    CHECK(IS(corotls_session_handshake(s), COROTLS_ERR_TLS), "the error is latched");
    CHECK(strlen(corotls_session_error(s)) > 0 && strlen(corotls_last_error()) > 0, "with a message: %s", corotls_session_error(s));

    CHECK(IS(corotls_session_feed_eof(c), COROTLS_OK) && IS(corotls_session_handshake(c), COROTLS_EOF) &&
              strstr(corotls_session_error(c), "during the handshake"),
          "transport EOF during the handshake: EOF");
    corotls_session_free(s);
    corotls_session_free(c);
    corotls_conf_free(sc);
    corotls_conf_free(cc);
}

TEST(buffered_plaintext_survives_a_fatal_error)
{
    corotls_conf *sc = NULL, *cc = NULL;
    corotls_session *c = NULL, *s = NULL;
    REQUIRE(session_pair(&sc, &cc, &c, &s, 0) == 0, "handshake in memory");
    uint8_t ct[4096], bad[37] = {0x17, 0x03, 0x03, 0x00, 0x20};
    memset(bad + 5, 0x5a, 32);
    CHECK(corotls_session_write(c, (const uint8_t *)"line\ntwelve", 11) == COROTLS_OK, "client writes 11 bytes");
    size_t n = corotls_session_out_read(c, ct, sizeof ct - sizeof bad), plain = 99;
    memcpy(ct + n, bad, sizeof bad); /* a good record, then a forged one */
    corotls_result r = corotls_session_feed(s, ct, n + sizeof bad, &plain);
    CHECK(r == COROTLS_ERR_TLS && plain == 11, "feed fails on the forged record; plain_size is still %zu", plain);
    CHECK(corotls_session_feed(s, ct, 100, &plain) == COROTLS_ERR_TLS && plain == 11, "more ciphertext is refused");
    uint8_t out[32];
    size_t len = 0;
    CHECK(corotls_session_read_until(s, '\n', out, sizeof out, &len) == COROTLS_OK && len == 5, "read_until serves the buffer");
    CHECK(corotls_session_read_exact(s, out, 3) == COROTLS_OK && !memcmp(out, "twe", 3), "read_exact serves the buffer");
    const uint8_t *view = NULL;
    CHECK(corotls_session_peek(s, &view, &len) == COROTLS_OK && len == 3 && !memcmp(view, "lve", 3), "peek serves the buffer");
    CHECK(corotls_session_consume(s, 3) == COROTLS_OK, "consume");
    CHECK(corotls_session_peek(s, &view, &len) == COROTLS_ERR_TLS && len == 0, "then the error");
    CHECK(corotls_session_read_exact(s, out, 1) == COROTLS_ERR_TLS, "for every read form");
    const char *nul[] = {"h2"};
    corotls_conf_builder *b = NULL;
    REQUIRE(corotls_conf_builder_new(COROTLS_CLIENT, &b) == COROTLS_OK, "builder");
    CHECK(corotls_conf_builder_set_alpn_wire(b, (const uint8_t *)"\x03h\0x", 4) == COROTLS_ERR_ARG && says("NUL"),
          "ALPN name with a NUL byte");
    CHECK(corotls_conf_builder_set_alpn(b, nul, 1) == COROTLS_OK, "ALPN h2");
    corotls_conf_builder_free(b);
    session_pair_free(sc, cc, c, s);
}

TEST(conf_freed_while_sessions_live)
{
    corotls_conf *sc = util_server_conf("leaf.crt", "leaf.key"), *cc = util_client_conf(1);
    corotls_session *s = NULL, *c = NULL;
    REQUIRE(sc && cc && corotls_session_new(sc, &s) == COROTLS_OK && corotls_session_new(cc, &c) == COROTLS_OK, "sessions");
    CHECK(corotls_session_set_verify_host(c, "localhost") == COROTLS_OK, "the client names the server");
    corotls_conf_free(sc);
    corotls_conf_free(cc);
    util_pump(c, s, 0);
    CHECK(corotls_session_handshake_done(c) && corotls_session_handshake_done(s), "handshake after both confs were freed");
    corotls_session_free(s);
    corotls_session_free(c);
}

int main(void)
{
    return harness_run_all();
}
