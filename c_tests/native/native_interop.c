/*
 * native_interop: corotls against real TLS peers over loopback --
 * `openssl s_server` / `s_client` and Python's `ssl` module, TLS 1.2 and
 * 1.3; SNI seen by the peer; host and IP verification, and each failure
 * reported with its reason; ALPN; client certificates.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corotls.h"
#include "harness.h"
#include "tls_util.h"

#define T 10000 /* ms per wait */

/* Connect our client to `port`, handshake; returns the conn (or NULL) and
 * the handshake result in *r. */
static corotls_conn *client_to(corotls_conf *conf, int port, const char *host, int *fd, corotls_result *r)
{
    corotls_conn *c = util_connect(conf, port, host, fd);
    *r = c ? util_handshake(c, T) : COROTLS_ERR_IO;
    return c;
}

static void done(corotls_conn *c, int fd)
{
    corotls_conn_free(c);
    if (fd >= 0)
        close(fd);
}

/* s_server -rev answers each line with the line reversed. */
static void client_vs_s_server(const char *version_flag, const char *want)
{
    const char *args[] = {"-rev", version_flag, NULL};
    int port, fd;
    pid_t pid;
    REQUIRE(harness_spawn_s_server(args, &port, &pid) == 0, "openssl s_server %s", version_flag);
    corotls_conf *conf = util_client_conf(1);
    corotls_result r;
    corotls_conn *c = client_to(conf, port, "localhost", &fd, &r);
    CHECK(r == COROTLS_OK, "handshake with s_server %s: %s", version_flag, c ? corotls_conn_error(c) : "no conn");
    if (r == COROTLS_OK) {
        const corotls_session *s = corotls_conn_session(c);
        CHECK(!strcmp(corotls_session_version(s), want), "negotiated %s", corotls_session_version(s));
        CHECK(!strcmp(corotls_session_verify_result(s), "ok"), "server certificate verified");
        char got[16] = {0};
        CHECK(util_write_all(c, "corotls\n", 8, T) == COROTLS_OK, "write a line");
        CHECK(util_read_n(c, got, 8, T) == COROTLS_OK && !memcmp(got, "sltoroc\n", 8), "s_server reversed it: %.7s", got);
        CHECK(corotls_conn_shutdown(c) == COROTLS_OK, "close_notify sent");
    }
    done(c, fd);
    corotls_conf_free(conf);
    harness_kill(pid);
}

TEST(client_vs_openssl_s_server_tls13)
{
    client_vs_s_server("-tls1_3", "TLSv1.3");
}

TEST(client_vs_openssl_s_server_tls12)
{
    client_vs_s_server("-tls1_2", "TLSv1.2");
}

/* Our echo server; openssl s_client sends a line and must get it back. */
static void s_client_vs_server(const char *version_flag, const char *want)
{
    struct echo_server es;
    corotls_conf *conf = util_server_conf("leaf.crt", "leaf.key");
    REQUIRE(conf && util_echo_start(&es, conf) == 0, "echo server");
    int in, out;
    const char *args[] = {version_flag, "-servername", "localhost", "-verify_return_error", "-ign_eof", NULL};
    pid_t pid = harness_spawn_s_client(es.port, args, &in, &out);
    REQUIRE(pid > 0, "openssl s_client %s", version_flag);
    char buf[8192];
    CHECK(harness_read_until(out, "Verify return code: 0 (ok)", T, buf, sizeof buf) > 0, "s_client verified our server");
    CHECK(strstr(buf, want) != NULL, "s_client reports %s", want);
    CHECK(write(in, "echo-me-please\n", 15) == 15, "s_client sends a line");
    CHECK(harness_read_until(out, "echo-me-please", T, buf, sizeof buf) > 0, "and gets it echoed");
    close(in);
    close(out);
    harness_kill(pid);
    util_echo_stop(&es);
    CHECK(es.failures == 0, "server saw no failure");
    corotls_conf_free(conf);
}

TEST(openssl_s_client_vs_server_tls13)
{
    s_client_vs_server("-tls1_3", "New, TLSv1.3, Cipher is");
}

TEST(openssl_s_client_vs_server_tls12)
{
    s_client_vs_server("-tls1_2", "New, TLSv1.2, Cipher is");
}

static void python_client_vs_server(const char *tls, const char *want)
{
    struct echo_server es;
    corotls_conf *conf = util_server_conf("leaf.crt", "leaf.key");
    REQUIRE(conf && util_echo_start(&es, conf) == 0, "echo server");
    char port[16];
    snprintf(port, sizeof port, "%d", es.port);
    const char *argv[] = {harness_python(), harness_py_peer_script(), "client", "--port", port, "--sni", "localhost",
                          "--tls", tls, "--message", "hello from python", NULL};
    int out;
    pid_t pid = harness_spawn(argv, NULL, &out);
    REQUIRE(pid > 0, "python client");
    char buf[4096];
    CHECK(harness_read_until(out, "reply=hello from python", T, buf, sizeof buf) > 0, "python got its echo (TLS %s)", tls);
    CHECK(strstr(buf, want) != NULL, "python negotiated %s", want);
    int st = harness_wait(pid, T);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "python client exit 0");
    close(out);
    util_echo_stop(&es);
    corotls_conf_free(conf);
}

TEST(python_client_vs_server_tls13)
{
    python_client_vs_server("1.3", "version=TLSv1.3");
}

TEST(python_client_vs_server_tls12)
{
    python_client_vs_server("1.2", "version=TLSv1.2");
}

/* Python echo server: prints per connection what it saw (SNI, ALPN...). */
TEST(sni_sent_and_seen_by_the_peer)
{
    const char *args[] = {"echo", NULL};
    int port, out;
    pid_t pid;
    REQUIRE(harness_spawn_py_peer(args, &port, &pid, &out) == 0, "python echo server");
    corotls_conf *conf = util_client_conf(1);
    char buf[4096];
    int fd;
    corotls_result r;
    corotls_conn *c = client_to(conf, port, "localhost", &fd, &r);
    CHECK(r == COROTLS_OK, "handshake with SNI localhost");
    CHECK(harness_read_until(out, "\n", T, buf, sizeof buf) > 0 && strstr(buf, "sni=localhost") != NULL,
          "the peer saw SNI localhost: %s", buf);
    done(c, fd);

    /* Without SNI (IP literal host): the peer sees none; IP verification. */
    fd = harness_connect_loopback(port);
    c = NULL;
    REQUIRE(corotls_conn_new(conf, fd, &c) == COROTLS_OK, "conn");
    CHECK(corotls_conn_set_verify_host(c, "127.0.0.1") == COROTLS_OK, "verify host 127.0.0.1");
    CHECK(util_handshake(c, T) == COROTLS_OK, "IP SAN verified without SNI");
    CHECK(harness_read_until(out, "sni=", T, buf, sizeof buf) > 0 && harness_read_until(out, "\n", T, buf, sizeof buf) > 0 &&
              buf[0] == '-',
          "the peer saw no SNI");
    done(c, fd);
    corotls_conf_free(conf);
    close(out);
    harness_kill(pid);
}

TEST(alpn_negotiated_with_python)
{
    const char *args[] = {"echo", "--alpn", "h2,http/1.1", NULL};
    int port, out;
    pid_t pid;
    REQUIRE(harness_spawn_py_peer(args, &port, &pid, &out) == 0, "python echo server with ALPN");
    corotls_conf_builder *b = NULL;
    corotls_conf *conf = NULL;
    const char *protos[] = {"http/1.1", "h2"};
    REQUIRE(corotls_conf_builder_new(COROTLS_CLIENT, &b) == COROTLS_OK &&
                corotls_conf_builder_add_ca_file(b, harness_cert("ca.crt")) == COROTLS_OK &&
                corotls_conf_builder_set_alpn(b, protos, 2) == COROTLS_OK && corotls_conf_builder_build(b, &conf) == COROTLS_OK,
            "client conf offering http/1.1,h2");
    int fd;
    corotls_result r;
    corotls_conn *c = client_to(conf, port, "localhost", &fd, &r);
    CHECK(r == COROTLS_OK && !strcmp(corotls_session_alpn(corotls_conn_session(c)), "h2"), "server preference: h2");
    char buf[1024];
    CHECK(harness_read_until(out, "alpn=h2", T, buf, sizeof buf) > 0, "the peer agrees");
    done(c, fd);
    corotls_conf_free(conf);
    corotls_conf_builder_free(b);
    close(out);
    harness_kill(pid);
}

/* Each verification failure, reported with its reason. */
static void verify_failure(const char *cert, const char *key, const char *host, const char *reason)
{
    const char *args[] = {"-cert", harness_cert(cert), "-key", harness_cert(key), NULL};
    int port, fd;
    pid_t pid;
    REQUIRE(harness_spawn_s_server(args, &port, &pid) == 0, "s_server with %s", cert);
    corotls_conf *conf = util_client_conf(1);
    corotls_result r;
    corotls_conn *c = client_to(conf, port, host, &fd, &r);
    const char *msg = c ? corotls_conn_error(c) : "";
    CHECK(r == COROTLS_ERR_VERIFY, "%s / %s: %s", cert, host, corotls_result_name(r));
    CHECK(strstr(msg, reason) != NULL, "message names the reason: \"%s\"", msg);
    CHECK(c && strstr(corotls_session_verify_result(corotls_conn_session(c)), reason) != NULL, "verify_result: %s",
          c ? corotls_session_verify_result(corotls_conn_session(c)) : "");
    done(c, fd);
    corotls_conf_free(conf);
    harness_kill(pid);
}

TEST(verify_failure_expired)
{
    verify_failure("expired.crt", "expired.key", "localhost", "certificate has expired");
}

TEST(verify_failure_wrong_host)
{
    verify_failure("wronghost.crt", "wronghost.key", "localhost", "hostname mismatch");
}

TEST(verify_failure_untrusted)
{
    verify_failure("selfsigned.crt", "selfsigned.key", "localhost", "self-signed certificate");
}

TEST(verify_failure_wrong_ip)
{
    verify_failure("leaf.crt", "leaf.key", "10.1.2.3", "IP address mismatch");
}

TEST(verify_success_dns_and_ip)
{
    int port, fd;
    pid_t pid;
    REQUIRE(harness_spawn_s_server(NULL, &port, &pid) == 0, "s_server");
    corotls_conf *conf = util_client_conf(1);
    const char *hosts[] = {"localhost", "127.0.0.1"};
    for (int i = 0; i < 2; i++) {
        corotls_result r;
        corotls_conn *c = client_to(conf, port, hosts[i], &fd, &r);
        CHECK(r == COROTLS_OK, "verified as %s", hosts[i]);
        done(c, fd);
    }
    corotls_conf_free(conf);
    harness_kill(pid);
}

TEST(client_certificate_required_by_python)
{
    const char *args[] = {"echo", "--require-client-cert", NULL};
    int port, out;
    pid_t pid;
    REQUIRE(harness_spawn_py_peer(args, &port, &pid, &out) == 0, "python echo requiring client certificates");
    corotls_conf *with = NULL, *without = util_client_conf(1);
    REQUIRE(corotls_conf_new(COROTLS_CLIENT, harness_cert("client.crt"), harness_cert("client.key"), harness_cert("ca.crt"),
                             NULL, true, &with) == COROTLS_OK,
            "client conf with a certificate");
    int fd;
    corotls_result r;
    corotls_conn *c = client_to(with, port, "localhost", &fd, &r);
    char buf[2048] = {0};
    CHECK(r == COROTLS_OK && util_write_all(c, "x", 1, T) == COROTLS_OK && util_read_n(c, buf, 1, T) == COROTLS_OK,
          "accepted with a client certificate");
    CHECK(harness_read_until(out, "peer=corotls-client", T, buf, sizeof buf) > 0, "the peer saw our certificate");
    done(c, fd);

    /* Without one: TLS 1.3 reports the refusal on the first read. */
    c = client_to(without, port, "localhost", &fd, &r);
    if (r == COROTLS_OK) {
        util_write_all(c, "x", 1, T);
        r = util_read_n(c, buf, 1, T);
    }
    CHECK(r == COROTLS_ERR_TLS && strstr(corotls_conn_error(c), "certificate required") != NULL, "refused without: %s (%s)",
          corotls_result_name(r), c ? corotls_conn_error(c) : "");
    done(c, fd);
    corotls_conf_free(with);
    corotls_conf_free(without);
    close(out);
    harness_kill(pid);
}

TEST(server_requires_client_certificate_from_s_client)
{
    corotls_conf *conf = NULL;
    REQUIRE(corotls_conf_new(COROTLS_SERVER, harness_cert("leaf.crt"), harness_cert("leaf.key"), harness_cert("ca.crt"), NULL,
                             true, &conf) == COROTLS_OK,
            "server conf requiring client certificates");
    int lfd, port;
    REQUIRE((lfd = harness_listen_loopback(&port)) >= 0, "listener");
    const char *args[] = {"-ign_eof", NULL};
    int in, out;
    pid_t pid = harness_spawn_s_client(port, args, &in, &out);
    int fd = accept(lfd, NULL, NULL);
    corotls_conn *c = NULL;
    REQUIRE(fd >= 0 && corotls_conn_new(conf, fd, &c) == COROTLS_OK, "accepted");
    corotls_result r = util_handshake(c, T);
    CHECK(r == COROTLS_ERR_VERIFY, "no client certificate: %s (%s)", corotls_result_name(r), corotls_conn_error(c));
    done(c, fd);

    const char *args2[] = {"-cert", harness_cert("client.crt"), "-key", harness_cert("client.key"), "-ign_eof", NULL};
    int in2, out2;
    pid_t pid2 = harness_spawn_s_client(port, args2, &in2, &out2);
    fd = accept(lfd, NULL, NULL);
    c = NULL;
    REQUIRE(fd >= 0 && corotls_conn_new(conf, fd, &c) == COROTLS_OK, "accepted");
    CHECK(util_handshake(c, T) == COROTLS_OK, "with a client certificate");
    CHECK(strstr(corotls_session_peer_subject(corotls_conn_session(c)), "CN=corotls-client") != NULL, "subject %s",
          corotls_session_peer_subject(corotls_conn_session(c)));
    done(c, fd);
    close(in);
    close(out);
    close(in2);
    close(out2);
    harness_kill(pid);
    harness_kill(pid2);
    close(lfd);
    corotls_conf_free(conf);
}

int main(void)
{
    return harness_run_all();
}
