/*
 * mtls_test: client certificates end to end (over 600 lines on purpose:
 * one concern, the same fixtures for every mode).  Our server in the three
 * verify modes against `openssl s_client -cert/-key` and Python `ssl`
 * (the CA names it sends, a client without a certificate, an untrusted
 * one); our client with an identity against `openssl s_server -Verify` /
 * `-verify`; our client against our server on one loop; and the peer
 * certificate accessors (subject, issuer, SANs, PEM of the leaf and the
 * chain, the verdict) on session, conn and loop, with their bad input.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corotls.h"
#include "harness.h"
#include "loop_util.h"
#include "tls_util.h"

#define T 10000 /* ms per wait */

static corotls_conf *server_conf(int verify, const char *client_ca)
{
    corotls_conf_builder *b = NULL;
    corotls_conf *c = NULL;
    if (corotls_conf_builder_new(COROTLS_SERVER, &b) == COROTLS_OK &&
        corotls_conf_builder_add_identity_file(b, harness_cert("leaf.crt"), harness_cert("leaf.key"), NULL) == COROTLS_OK &&
        corotls_conf_builder_add_ca_file(b, harness_cert("ca.crt")) == COROTLS_OK &&
        corotls_conf_builder_set_verify(b, verify) == COROTLS_OK &&
        (!client_ca || corotls_conf_builder_set_client_ca_file(b, harness_cert(client_ca)) == COROTLS_OK) &&
        corotls_conf_builder_build(b, &c) != COROTLS_OK)
        harness_diag("server conf: %s", corotls_last_error());
    corotls_conf_builder_free(b);
    return c;
}

/* A client verifying against ca.crt, with an identity when cert != NULL. */
static corotls_conf *client_conf(const char *cert, const char *key)
{
    corotls_conf_builder *b = NULL;
    corotls_conf *c = NULL;
    if (corotls_conf_builder_new(COROTLS_CLIENT, &b) == COROTLS_OK &&
        corotls_conf_builder_add_ca_file(b, harness_cert("ca.crt")) == COROTLS_OK &&
        (!cert || corotls_conf_builder_add_identity_file(b, harness_cert(cert), harness_cert(key), NULL) == COROTLS_OK) &&
        corotls_conf_builder_build(b, &c) != COROTLS_OK)
        harness_diag("client conf: %s", corotls_last_error());
    corotls_conf_builder_free(b);
    return c;
}

/* Accept one connection on the blocking listener lfd and run our server's
 * handshake on it; *r gets the handshake's result. */
static corotls_conn *accept_hs(int lfd, corotls_conf *conf, int *fd, corotls_result *r)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    *fd = -1;
    *r = COROTLS_TIMEOUT;
    if (poll(&p, 1, T) != 1 || (*fd = accept(lfd, NULL, NULL)) < 0)
        return NULL;
    corotls_conn *c = NULL;
    if (corotls_conn_new(conf, *fd, &c) != COROTLS_OK)
        return NULL;
    *r = util_handshake(c, T);
    return c;
}

/* A peer field of a conn, in one of two static buffers. */
static const char *field(corotls_conn *c, int what)
{
    static char bufs[2][16384];
    static int i;
    char *b = bufs[i++ & 1];
    size_t n = 0;
    if (corotls_conn_peer_cert(c, what, b, sizeof bufs[0], &n) != COROTLS_OK)
        snprintf(b, sizeof bufs[0], "<error: %s>", corotls_last_error());
    return b;
}

static char *slurp(const char *path)
{
    static char buf[16384];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
    return buf;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* A chain PEM as OpenSSL's peers send one when given no chain: the leaf
 * `leaf`, then the CA certificate they complete it with from their trust
 * (ca.crt), or the leaf alone. */
static int is_chain(const char *chain, const char *leaf)
{
    char want[16384];
    snprintf(want, sizeof want, "%s", slurp(harness_cert(leaf)));
    if (!strcmp(chain, want))
        return 1;
    strncat(want, slurp(harness_cert("ca.crt")), sizeof want - strlen(want) - 1);
    if (strcmp(chain, want))
        harness_diag("chain: %.300s", chain);
    return !strcmp(chain, want);
}

/* One connection from s_client (args) to our server in a verify mode
 * (and CA list): the conn, the handshake result, s_client's output. */
struct run {
    corotls_conn *conn;
    corotls_result r;
    char out[16384];
};

static void s_client_line(int verify, const char *client_ca, const char *const *args, struct run *run)
{
    corotls_conf *conf = server_conf(verify, client_ca);
    int port, fd = -1, in, out;
    int lfd = harness_listen_loopback(&port);
    memset(run, 0, sizeof *run);
    run->r = COROTLS_ERR_IO;
    REQUIRE(conf && lfd >= 0, "server conf and listener");
    pid_t pid = harness_spawn_s_client(port, args, &in, &out);
    REQUIRE(pid > 0, "openssl s_client");
    CHECK(write(in, "hey\n", 4) == 4, "a line for s_client to send");
    run->conn = accept_hs(lfd, conf, &fd, &run->r);
    if (run->r == COROTLS_OK) {
        char got[4] = {0};
        CHECK(util_read_n(run->conn, got, 4, T) == COROTLS_OK && !memcmp(got, "hey\n", 4), "s_client's line came");
        CHECK(util_write_all(run->conn, "bye\n", 4, T) == COROTLS_OK, "our reply went");
        harness_read_until(out, "bye", T, run->out, sizeof run->out);
    } else {
        harness_read_until(out, "no-such-marker", 1500, run->out, sizeof run->out);
    }
    close(in);
    close(out);
    harness_kill(pid);
    if (fd >= 0)
        close(fd);
    close(lfd);
    corotls_conf_free(conf);
}

TEST(require_mode_verifies_the_s_client_certificate)
{
    struct run run;
    const char *args[] = {"-cert", harness_cert("client.crt"), "-key", harness_cert("client.key"), "-servername",
                          "localhost", "-ign_eof", NULL};
    s_client_line(COROTLS_VERIFY_REQUIRE, NULL, args, &run);
    REQUIRE(run.r == COROTLS_OK, "handshake with s_client -cert client.crt: %s",
            run.conn ? corotls_conn_error(run.conn) : "no conn");
    CHECK(strstr(run.out, "Acceptable client certificate CA names") && strstr(run.out, "CN = corotls test CA"),
          "the CertificateRequest named the trusted CA");
    CHECK(!strcmp(field(run.conn, COROTLS_PEER_SUBJECT), "CN=corotls-client"), "subject: %s",
          field(run.conn, COROTLS_PEER_SUBJECT));
    CHECK(!strcmp(field(run.conn, COROTLS_PEER_ISSUER), "CN=corotls test CA"), "issuer: %s",
          field(run.conn, COROTLS_PEER_ISSUER));
    CHECK(!strcmp(field(run.conn, COROTLS_PEER_SANS), ""), "client.crt has no SAN");
    CHECK(!strcmp(field(run.conn, COROTLS_PEER_CERT_PEM), slurp(harness_cert("client.crt"))),
          "the leaf PEM is client.crt byte for byte");
    CHECK(is_chain(field(run.conn, COROTLS_PEER_CHAIN_PEM), "client.crt"),
          "the chain: client.crt first, then what s_client added from its CA file");
    CHECK(!strcmp(field(run.conn, COROTLS_PEER_VERIFY), "ok"), "verdict: %s", field(run.conn, COROTLS_PEER_VERIFY));
    bool present = false;
    int64_t code = 99;
    CHECK(corotls_conn_peer_verify(run.conn, &present, &code) == COROTLS_OK && present && code == 0,
          "peer_verify: present=%d code=%lld", present, (long long)code);
    /* The session view says the same. */
    const corotls_session *s = corotls_conn_session(run.conn);
    char sub[128];
    size_t n = 0;
    CHECK(corotls_session_peer_cert(s, COROTLS_PEER_SUBJECT, sub, sizeof sub, &n) == COROTLS_OK &&
              !strcmp(sub, "CN=corotls-client") && n == strlen(sub),
          "session_peer_cert agrees");
    CHECK(!strcmp(corotls_session_peer_subject(s), "CN=corotls-client"), "and the older peer_subject");
    corotls_conn_free(run.conn);
}

TEST(a_chain_sent_by_the_client_is_reported_leaf_first)
{
    struct run run;
    const char *args[] = {"-cert", harness_cert("chained.crt"), "-key", harness_cert("chained.key"), "-cert_chain",
                          harness_cert("inter.crt"), "-servername", "localhost", "-ign_eof", NULL};
    s_client_line(COROTLS_VERIFY_REQUIRE, NULL, args, &run);
    REQUIRE(run.r == COROTLS_OK, "handshake with s_client -cert chained.crt -cert_chain inter.crt: %s",
            run.conn ? corotls_conn_error(run.conn) : "no conn");
    const char *chain = field(run.conn, COROTLS_PEER_CHAIN_PEM);
    char want[16384];
    snprintf(want, sizeof want, "%s", slurp(harness_cert("chained.crt")));
    strncat(want, slurp(harness_cert("inter.crt")), sizeof want - strlen(want) - 1);
    CHECK(count(chain, "-----BEGIN CERTIFICATE-----") == 2 && !strcmp(chain, want),
          "chain PEM = chained.crt then inter.crt");
    CHECK(!strcmp(field(run.conn, COROTLS_PEER_ISSUER), "CN=corotls test intermediate CA"), "issuer: %s",
          field(run.conn, COROTLS_PEER_ISSUER));
    CHECK(!strcmp(field(run.conn, COROTLS_PEER_SANS), "DNS:localhost\nIP:127.0.0.1"), "SANs: %s",
          field(run.conn, COROTLS_PEER_SANS));
    corotls_conn_free(run.conn);
}

TEST(require_mode_without_a_certificate_fails_with_no_peer_cert)
{
    struct run run;
    const char *args[] = {"-servername", "localhost", "-ign_eof", NULL};
    s_client_line(COROTLS_VERIFY_REQUIRE, NULL, args, &run);
    CHECK(run.r == COROTLS_ERR_VERIFY, "handshake fails with ERR_VERIFY: %s", corotls_result_name(run.r));
    int64_t d;
    CHECK(corotls_conn_reason(run.conn, &d) == COROTLS_REASON_NO_PEER_CERT, "reason NO_PEER_CERT (%s)",
          corotls_conn_error(run.conn));
    CHECK(strstr(corotls_conn_error(run.conn), "certificate") != NULL, "the message says why: %s",
          corotls_conn_error(run.conn));
    CHECK(strstr(run.out, "alert") != NULL, "s_client got an alert");
    corotls_conn_free(run.conn);
}

TEST(an_untrusted_client_certificate_fails_with_its_x509_code)
{
    struct run run;
    const char *args[] = {"-cert", harness_cert("selfsigned.crt"), "-key", harness_cert("selfsigned.key"),
                          "-servername", "localhost", "-ign_eof", NULL};
    s_client_line(COROTLS_VERIFY_PEER, NULL, args, &run);
    CHECK(run.r == COROTLS_ERR_VERIFY, "optional mode still verifies what is sent: %s", corotls_result_name(run.r));
    int64_t d = 0;
    CHECK(corotls_conn_reason(run.conn, &d) == COROTLS_REASON_VERIFY && d == 18, "reason VERIFY, X509 code %lld",
          (long long)d);
    bool present = true;
    int64_t code = 0;
    CHECK(corotls_conn_peer_verify(run.conn, &present, &code) == COROTLS_OK && !present && code == 18,
          "peer_verify: no certificate kept, code 18 (self-signed)");
    CHECK(strstr(field(run.conn, COROTLS_PEER_VERIFY), "self-signed") != NULL, "verdict: %s",
          field(run.conn, COROTLS_PEER_VERIFY));
    corotls_conn_free(run.conn);
}

TEST(optional_mode_without_a_certificate_succeeds_and_reports_no_peer)
{
    struct run run;
    const char *args[] = {"-servername", "localhost", "-ign_eof", NULL};
    s_client_line(COROTLS_VERIFY_PEER, NULL, args, &run);
    REQUIRE(run.r == COROTLS_OK, "handshake without a client certificate: %s",
            run.conn ? corotls_conn_error(run.conn) : "no conn");
    bool present = true;
    int64_t code = 0;
    CHECK(corotls_conn_peer_verify(run.conn, &present, &code) == COROTLS_OK && !present && code == -1,
          "peer_verify: none sent, nothing verified");
    size_t n = 99;
    CHECK(corotls_conn_peer_cert(run.conn, COROTLS_PEER_SUBJECT, NULL, 0, &n) == COROTLS_OK && n == 0,
          "no subject");
    CHECK(!strcmp(field(run.conn, COROTLS_PEER_VERIFY), "not verified"), "verdict: not verified");
    CHECK(strstr(run.out, "Acceptable client certificate CA names") != NULL, "a certificate was asked for");
    corotls_conn_free(run.conn);
}

TEST(optional_mode_with_a_certificate_verifies_it)
{
    struct run run;
    const char *args[] = {"-cert", harness_cert("client.crt"), "-key", harness_cert("client.key"), "-servername",
                          "localhost", "-ign_eof", "-tls1_2", NULL};
    s_client_line(COROTLS_VERIFY_PEER, NULL, args, &run);
    REQUIRE(run.r == COROTLS_OK, "TLS 1.2 handshake: %s", run.conn ? corotls_conn_error(run.conn) : "no conn");
    bool present = false;
    int64_t code = -1;
    CHECK(corotls_conn_peer_verify(run.conn, &present, &code) == COROTLS_OK && present && code == 0, "verified");
    corotls_conn_free(run.conn);
}

TEST(none_mode_asks_for_no_certificate)
{
    struct run run;
    const char *args[] = {"-cert", harness_cert("client.crt"), "-key", harness_cert("client.key"), "-servername",
                          "localhost", "-ign_eof", NULL};
    s_client_line(COROTLS_VERIFY_NONE, NULL, args, &run);
    REQUIRE(run.r == COROTLS_OK, "handshake");
    CHECK(strstr(run.out, "No client certificate CA names sent") != NULL ||
              strstr(run.out, "Acceptable client certificate CA names") == NULL,
          "no CertificateRequest");
    bool present = true;
    int64_t code = 0;
    CHECK(corotls_conn_peer_verify(run.conn, &present, &code) == COROTLS_OK && !present && code == -1,
          "no peer certificate, nothing verified");
    corotls_conn_free(run.conn);
}

TEST(the_client_ca_list_can_be_given_apart_from_the_trust)
{
    struct run run;
    const char *args[] = {"-cert", harness_cert("client.crt"), "-key", harness_cert("client.key"), "-servername",
                          "localhost", "-ign_eof", NULL};
    s_client_line(COROTLS_VERIFY_REQUIRE, "inter.crt", args, &run);
    REQUIRE(run.r == COROTLS_OK, "handshake");
    CHECK(strstr(run.out, "CN = corotls test intermediate CA") != NULL, "s_client saw the list given");
    CHECK(strstr(run.out, "Acceptable client certificate CA names\nCN = corotls test CA") == NULL,
          "and not the trust's");
    corotls_conn_free(run.conn);
}

/* Python's ssl client with a certificate against our server. */
TEST(python_client_certificate_against_our_server)
{
    corotls_conf *conf = server_conf(COROTLS_VERIFY_REQUIRE, NULL);
    int port, fd;
    int lfd = harness_listen_loopback(&port);
    REQUIRE(conf && lfd >= 0, "server");
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    const char *argv[] = {harness_python(), harness_py_peer_script(), "client", "--port", ps, "--sni", "localhost",
                          "--cert", harness_cert("leaf.crt"), "--key", harness_cert("leaf.key"), "--message", "py",
                          NULL};
    int out;
    pid_t pid = harness_spawn(argv, NULL, &out);
    REQUIRE(pid > 0, "python client");
    corotls_result r;
    corotls_conn *c = accept_hs(lfd, conf, &fd, &r);
    CHECK(r == COROTLS_OK, "handshake with python: %s", c ? corotls_conn_error(c) : "no conn");
    if (r == COROTLS_OK) {
        CHECK(!strcmp(field(c, COROTLS_PEER_SANS), "DNS:localhost\nIP:127.0.0.1\nIP:::1"), "SANs: %s",
              field(c, COROTLS_PEER_SANS));
        char got[2];
        CHECK(util_read_n(c, got, 2, T) == COROTLS_OK && util_write_all(c, got, 2, T) == COROTLS_OK, "echo");
        char buf[1024];
        CHECK(harness_read_until(out, "reply=py", T, buf, sizeof buf) > 0, "python got the echo");
    }
    harness_kill(pid);
    close(out);
    corotls_conn_free(c);
    close(fd);
    close(lfd);
    corotls_conf_free(conf);
}

/* Our client with an identity against s_server -Verify (require). */
static void client_vs_s_server(const char *mode, const char *cert, const char *key, const char *tls, int want_ok)
{
    const char *args[] = {mode, "1", "-CAfile", harness_cert("ca.crt"), "-rev", tls, NULL};
    int port, fd, out;
    pid_t pid;
    REQUIRE(harness_spawn_s_server_io(args, &port, &pid, NULL, &out) == 0, "openssl s_server %s %s", mode, tls);
    corotls_conf *conf = client_conf(cert, key);
    corotls_conn *c = util_connect(conf, port, "localhost", &fd);
    REQUIRE(c, "connect");
    corotls_result r = util_handshake(c, T);
    char got[8] = {0};
    if (r == COROTLS_OK && util_write_all(c, "corotls\n", 8, T) == COROTLS_OK)
        r = util_read_n(c, got, 8, T);
    if (want_ok) {
        CHECK(r == COROTLS_OK && !memcmp(got, "sltoroc\n", 8), "s_server %s took our certificate (%s)", mode,
              corotls_conn_error(c));
        char buf[8192];
        CHECK(harness_read_until(out, "CN = corotls-client", T, buf, sizeof buf) > 0, "s_server saw CN=corotls-client");
        CHECK(!strcmp(field(c, COROTLS_PEER_SUBJECT), "CN=localhost"), "server subject: %s",
              field(c, COROTLS_PEER_SUBJECT));
        CHECK(!strcmp(field(c, COROTLS_PEER_SANS), "DNS:localhost\nIP:127.0.0.1\nIP:::1"), "server SANs");
        CHECK(is_chain(field(c, COROTLS_PEER_CHAIN_PEM), "leaf.crt"), "server chain: leaf.crt first");
        bool present = false;
        int64_t code = -1;
        CHECK(corotls_conn_peer_verify(c, &present, &code) == COROTLS_OK && present && code == 0, "verified");
    } else {
        int64_t d = 0;
        corotls_reason why = corotls_conn_reason(c, &d);
        CHECK(r < 0 && why == COROTLS_REASON_PEER_ALERT, "no certificate: %s, reason %s alert %lld (%s)",
              corotls_result_name(r), corotls_reason_name(why), (long long)d, corotls_conn_error(c));
    }
    corotls_conn_free(c);
    close(fd);
    close(out);
    corotls_conf_free(conf);
    harness_kill(pid);
}

TEST(our_client_certificate_against_s_server_Verify_tls13)
{
    client_vs_s_server("-Verify", "client.crt", "client.key", "-tls1_3", 1);
}

TEST(our_client_certificate_against_s_server_Verify_tls12)
{
    client_vs_s_server("-Verify", "client.crt", "client.key", "-tls1_2", 1);
}

TEST(our_client_certificate_against_s_server_verify_optional)
{
    client_vs_s_server("-verify", "client.crt", "client.key", "-tls1_3", 1);
}

TEST(no_client_certificate_against_s_server_Verify_fails_with_its_alert)
{
    client_vs_s_server("-Verify", NULL, NULL, "-tls1_3", 0);
    client_vs_s_server("-Verify", NULL, NULL, "-tls1_2", 0);
}

/* Our client against our server on one loop: both ends name each other. */
TEST(loop_both_ends_see_each_others_certificate)
{
    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    corotls_conf *sconf = server_conf(COROTLS_VERIFY_REQUIRE, NULL);
    corotls_conf *cconf = client_conf("client.crt", "client.key");
    int port, cfd, sfd;
    int lfd = lu_listen(l, sconf, &port);
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, cconf, &cfd, &sfd) == 0, "loop pair with handshakes");
    char buf[16384];
    size_t n = 0;
    CHECK(corotls_loop_peer_cert(l, sfd, COROTLS_PEER_SUBJECT, buf, sizeof buf, &n) == COROTLS_OK &&
              !strcmp(buf, "CN=corotls-client"),
          "server end: %s", buf);
    CHECK(corotls_loop_peer_cert(l, cfd, COROTLS_PEER_SUBJECT, buf, sizeof buf, &n) == COROTLS_OK &&
              !strcmp(buf, "CN=localhost"),
          "client end: %s", buf);
    CHECK(corotls_loop_peer_cert(l, cfd, COROTLS_PEER_CERT_PEM, NULL, 0, &n) == COROTLS_OK &&
              n == strlen(slurp(harness_cert("leaf.crt"))),
          "size query gives the PEM's length (%zu)", n);
    char small[8];
    CHECK(corotls_loop_peer_cert(l, cfd, COROTLS_PEER_CERT_PEM, small, sizeof small, &n) == COROTLS_ERR_ARG &&
              corotls_last_reason(NULL) == COROTLS_REASON_LIMIT && strlen(small) == 7 && n > 100,
          "a small buffer: ERR_ARG, LIMIT, truncated and terminated, full length given");
    bool present = false;
    int64_t code = -1;
    CHECK(corotls_loop_peer_verify(l, sfd, &present, &code) == COROTLS_OK && present && code == 0, "loop verdict");
    CHECK(corotls_loop_peer_cert(l, lfd, COROTLS_PEER_SUBJECT, buf, sizeof buf, &n) == COROTLS_ERR_ARG,
          "a listener has no peer");
    CHECK(corotls_loop_peer_cert(l, 9999, COROTLS_PEER_SUBJECT, buf, sizeof buf, &n) == COROTLS_ERR_ARG,
          "an fd not open");
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
    corotls_conf_free(sconf);
    corotls_conf_free(cconf);
}

/* Our client without a certificate against our loop server requiring one. */
TEST(loop_require_without_a_client_certificate_fails_cleanly)
{
    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    corotls_conf *sconf = server_conf(COROTLS_VERIFY_REQUIRE, NULL);
    corotls_conf *cconf = client_conf(NULL, NULL);
    int port, cfd, sfd;
    int lfd = lu_listen(l, sconf, &port);
    REQUIRE(lfd >= 0 && lu_pair(l, lfd, port, cconf, &cfd, &sfd) == 0, "loop pair");
    corotls_loop_set_sni(l, cfd, "localhost");
    struct lu_done cd = {0}, sd = {0};
    corotls_result rc = corotls_loop_handshake(l, cfd, T, lu_cb, &cd);
    corotls_result rs = corotls_loop_handshake(l, sfd, T, lu_cb, &sd);
    if (rs == COROTLS_PENDING)
        lu_wait(l, &sd, T);
    else
        sd.r = rs;
    CHECK(sd.r == COROTLS_ERR_VERIFY, "server: ERR_VERIFY (%s)", sd.msg);
    corotls_reason why;
    CHECK(corotls_loop_reason(l, sfd, &why, NULL) == COROTLS_OK && why == COROTLS_REASON_NO_PEER_CERT,
          "server reason NO_PEER_CERT");
    if (rc == COROTLS_PENDING)
        lu_wait(l, &cd, T);
    /* TLS 1.3: the client finished first; its next read gets the alert. */
    corotls_result rr = lu_recv_result(l, cfd, T);
    CHECK(rr < 0, "client: the server's alert ends it (%s)", corotls_result_name(rr));
    lu_reset(&cd);
    lu_reset(&sd);
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
    corotls_conf_free(sconf);
    corotls_conf_free(cconf);
}

TEST(bad_input)
{
    char buf[64];
    size_t n = 7;
    bool p;
    int64_t code;
    CHECK(corotls_session_peer_cert(NULL, 0, buf, sizeof buf, &n) == COROTLS_ERR_ARG && n == 0, "NULL session");
    CHECK(corotls_conn_peer_cert(NULL, 0, buf, sizeof buf, &n) == COROTLS_ERR_ARG, "NULL conn");
    CHECK(corotls_loop_peer_cert(NULL, 3, 0, buf, sizeof buf, &n) == COROTLS_ERR_ARG, "NULL loop");
    CHECK(corotls_session_peer_verify(NULL, &p, &code) == COROTLS_ERR_ARG && code == -1 && !p, "verify: NULL session");
    corotls_conf *conf = client_conf(NULL, NULL);
    corotls_session *s = NULL;
    REQUIRE(corotls_session_new(conf, &s) == COROTLS_OK, "session");
    CHECK(corotls_session_peer_cert(s, 6, buf, sizeof buf, &n) == COROTLS_ERR_ARG, "bad field 6");
    CHECK(corotls_session_peer_cert(s, -1, buf, sizeof buf, &n) == COROTLS_ERR_ARG, "bad field -1");
    CHECK(corotls_session_peer_cert(s, COROTLS_PEER_ISSUER, buf, sizeof buf, &n) == COROTLS_OK && n == 0 && !buf[0],
          "before the handshake: empty");
    CHECK(corotls_session_peer_cert(s, COROTLS_PEER_VERIFY, NULL, 5, &n) == COROTLS_ERR_ARG, "NULL buffer, cap 5");
    CHECK(corotls_session_peer_verify(s, NULL, &code) == COROTLS_ERR_ARG, "NULL present");
    CHECK(corotls_session_peer_verify(s, &p, &code) == COROTLS_OK && !p && code == -1, "nothing verified yet");
    corotls_session_free(s);
    CHECK(corotls_session_peer_cert(s, 0, buf, sizeof buf, &n) == COROTLS_ERR_ARG, "freed session");
    corotls_conf_free(conf);

    corotls_conf_builder *b = NULL;
    REQUIRE(corotls_conf_builder_new(COROTLS_CLIENT, &b) == COROTLS_OK, "client builder");
    corotls_result r = corotls_conf_builder_set_client_ca_file(b, harness_cert("ca.crt"));
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_WRONG_STATE,
          "a client CA list on a client: WRONG_STATE (%s)", corotls_last_error());
    corotls_conf_builder_free(b);
    REQUIRE(corotls_conf_builder_new(COROTLS_SERVER, &b) == COROTLS_OK, "server builder");
    r = corotls_conf_builder_set_client_ca_file(b, harness_cert("missing.pem"));
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_FILE, "missing file: FILE (%s)",
          corotls_last_error());
    r = corotls_conf_builder_set_client_ca_file(b, harness_cert("garbage.pem"));
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_CERT_PARSE, "garbage: CERT_PARSE (%s)",
          corotls_last_error());
    CHECK(corotls_conf_builder_set_client_ca_file(b, NULL) == COROTLS_ERR_ARG, "NULL path");
    CHECK(corotls_conf_builder_set_client_ca_pem(b, NULL, 3) == COROTLS_ERR_ARG, "NULL PEM");
    CHECK(corotls_conf_builder_set_client_ca_file(NULL, harness_cert("ca.crt")) == COROTLS_ERR_ARG, "NULL builder");
    corotls_conf_builder_free(b);
}

/* The client CA list given bad PEM (garbage, a key, nothing, a negative
 * length) or a directory; the conn's peer accessors with a bad field, a
 * small buffer, before the handshake; the loop's with a bad field or a
 * listener.  Each a clear error; the builder and conns keep working. */
TEST(bad_input_conn_and_client_ca_list)
{
    corotls_conf_builder *b = NULL;
    REQUIRE(corotls_conf_builder_new(COROTLS_SERVER, &b) == COROTLS_OK, "server builder");
    const char *garbage = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n";
    corotls_result r = corotls_conf_builder_set_client_ca_pem(b, (const uint8_t *)garbage, strlen(garbage));
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_CERT_PARSE, "garbage PEM: CERT_PARSE (%s)",
          corotls_last_error());
    const char *key = slurp(harness_cert("leaf.key"));
    REQUIRE(key != NULL, "leaf.key");
    r = corotls_conf_builder_set_client_ca_pem(b, (const uint8_t *)key, strlen(key));
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_CERT_PARSE,
          "a private key instead of certificates: CERT_PARSE (%s)", corotls_last_error());
    r = corotls_conf_builder_set_client_ca_pem(b, (const uint8_t *)"", 0);
    CHECK(r == COROTLS_ERR_ARG, "no bytes: ERR_ARG (%s)", corotls_last_error());
    r = corotls_conf_builder_set_client_ca_pem(b, (const uint8_t *)garbage, (size_t)-1);
    CHECK(r == COROTLS_ERR_ARG && says("negative length"), "a negative length: ERR_ARG (%s)", corotls_last_error());
    r = corotls_conf_builder_set_client_ca_file(b, harness_certdir());
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_FILE, "a directory: FILE (%s)",
          corotls_last_error());
    r = corotls_conf_builder_set_client_ca_file(b, harness_cert("empty.pem"));
    CHECK(r == COROTLS_ERR_ARG, "an empty file: ERR_ARG (%s)", corotls_last_error());
    CHECK(corotls_conf_builder_add_identity_file(b, harness_cert("leaf.crt"), harness_cert("leaf.key"), NULL) ==
                  COROTLS_OK &&
              corotls_conf_builder_add_ca_file(b, harness_cert("ca.crt")) == COROTLS_OK &&
              corotls_conf_builder_set_verify(b, COROTLS_VERIFY_REQUIRE) == COROTLS_OK,
          "the builder takes the rest");
    corotls_conf *sconf = NULL, *cconf = client_conf("client.crt", "client.key");
    CHECK(corotls_conf_builder_build(b, &sconf) == COROTLS_OK && cconf, "and builds (%s)", corotls_last_error());
    corotls_conf_builder_free(b);

    int sv[2];
    REQUIRE(sconf && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    corotls_conn *c = NULL, *s = NULL;
    REQUIRE(corotls_conn_new(cconf, sv[0], &c) == COROTLS_OK && corotls_conn_new(sconf, sv[1], &s) == COROTLS_OK,
            "conns");
    corotls_conn_set_sni(c, "localhost");
    char buf[64], small[8];
    size_t n = 7;
    bool p = true;
    int64_t code = 0;
    CHECK(corotls_conn_peer_cert(s, COROTLS_PEER_SUBJECT, buf, sizeof buf, &n) == COROTLS_OK && n == 0 && !buf[0],
          "conn before the handshake: \"\"");
    CHECK(corotls_conn_peer_verify(s, &p, &code) == COROTLS_OK && !p && code == -1,
          "conn verdict before the handshake: none, -1");
    corotls_result rc = COROTLS_WANT_READ, rs = COROTLS_WANT_READ;
    for (int i = 0; i < 50 && (rc != COROTLS_OK || rs != COROTLS_OK); i++) {
        rc = corotls_conn_handshake(c);
        rs = corotls_conn_handshake(s);
    }
    REQUIRE(rc == COROTLS_OK && rs == COROTLS_OK, "handshakes with a client certificate");
    CHECK(corotls_conn_peer_cert(s, 6, buf, sizeof buf, &n) == COROTLS_ERR_ARG, "conn: field 6: ERR_ARG");
    CHECK(corotls_conn_peer_cert(s, -1, buf, sizeof buf, &n) == COROTLS_ERR_ARG, "conn: field -1: ERR_ARG");
    CHECK(corotls_conn_peer_cert(s, COROTLS_PEER_SUBJECT, NULL, 0, &n) == COROTLS_OK && n == strlen("CN=corotls-client"),
          "conn: size query (%zu)", n);
    n = 0;
    r = corotls_conn_peer_cert(s, COROTLS_PEER_SUBJECT, small, sizeof small, &n);
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_LIMIT && !strcmp(small, "CN=coro") &&
              n == strlen("CN=corotls-client"),
          "conn: an 8-byte buffer: ERR_ARG, LIMIT, \"%s\", full length %zu", small, n);
    CHECK(corotls_conn_peer_cert(s, COROTLS_PEER_SUBJECT, NULL, 4, &n) == COROTLS_ERR_ARG, "conn: NULL buffer, cap 4");
    CHECK(corotls_conn_peer_cert(s, COROTLS_PEER_SUBJECT, buf, (size_t)-1, &n) == COROTLS_ERR_ARG,
          "conn: a negative cap: ERR_ARG");
    CHECK(corotls_conn_peer_verify(s, NULL, &code) == COROTLS_ERR_ARG, "conn verdict: NULL present: ERR_ARG");
    CHECK(corotls_conn_peer_verify(s, &p, &code) == COROTLS_OK && p && code == 0, "conn verdict: present, 0");
    CHECK(corotls_conn_peer_cert(s, COROTLS_PEER_SUBJECT, buf, sizeof buf, &n) == COROTLS_OK &&
              !strcmp(buf, "CN=corotls-client"),
          "after every refusal the accessor still answers: %s", buf);
    corotls_conn_free(c);
    corotls_conn_free(s);
    close(sv[0]);
    close(sv[1]);

    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, cfd, sfd;
    int lfd = lu_listen(l, sconf, &port);
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, cconf, &cfd, &sfd) == 0, "loop pair with handshakes");
    CHECK(corotls_loop_peer_cert(l, sfd, 6, buf, sizeof buf, &n) == COROTLS_ERR_ARG, "loop: field 6: ERR_ARG");
    CHECK(corotls_loop_peer_cert(l, sfd, COROTLS_PEER_SUBJECT, NULL, 4, &n) == COROTLS_ERR_ARG,
          "loop: NULL buffer, cap 4: ERR_ARG");
    CHECK(corotls_loop_peer_verify(l, lfd, &p, &code) == COROTLS_ERR_ARG, "loop verdict of a listener: ERR_ARG");
    CHECK(corotls_loop_peer_verify(l, sfd, NULL, &code) == COROTLS_ERR_ARG, "loop verdict: NULL present: ERR_ARG");
    corotls_loop_close(l, sfd);
    CHECK(corotls_loop_peer_verify(l, sfd, &p, &code) == COROTLS_ERR_ARG, "loop verdict of a closed fd: ERR_ARG");
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
    corotls_conf_free(sconf);
    corotls_conf_free(cconf);
}

int main(void)
{
    return harness_run_all();
}
