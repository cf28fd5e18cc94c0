/*
 * loop_sclient.c -- examples/tls_echo_server (one loop, one thread) against
 * independent TLS clients: 1,000 concurrent sessions opened by a blocking
 * OpenSSL client written like s_client (SSL_connect, verification against
 * the test CA, SNI, host check), all open at once, every session echoing
 * three rounds with every byte checked; real `openssl s_client` processes
 * at the same time; a clean stop on SIGTERM that sends close_notify to the
 * sessions still open.  Also the example's command-line errors.
 * COROTLS_TEST_QUICK=1: 30 sessions.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop_util.h"

#define SERVER "target/examples/tls_echo_server"

/* Start the server; returns its pid, its port and the read end of its
 * output (stdout + stderr), or -1. */
static pid_t start_server(int *port, int *out_fd)
{
    /* In the valgrind pass (quick mode) the server runs under valgrind too:
     * a memory error or leak makes its exit status 99. */
    const char *argv[] = {"valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
                          "-q", SERVER, "--listen", "127.0.0.1:0", "--cert", harness_cert("leaf.crt"), "--key",
                          harness_cert("leaf.key"), NULL};
    int out;
    pid_t pid = harness_spawn(lu_quick() ? argv : argv + 5, NULL, &out);
    *out_fd = -1;
    if (pid < 0)
        return -1;
    char buf[256];
    if (harness_read_until(out, "\n", 10000, buf, sizeof buf) < 0 || !strstr(buf, "listening 127.0.0.1:")) {
        harness_diag("server said: %s", buf);
        close(out);
        harness_kill(pid);
        return -1;
    }
    *port = atoi(strrchr(buf, ':') + 1);
    *out_fd = out;
    return pid;
}

static SSL_CTX *client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_load_verify_locations(ctx, harness_cert("ca.crt"), NULL) != 1)
        return NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

/* A blocking TLS session like s_client's: TCP connect, SNI, host check,
 * SSL_connect.  NULL on failure. */
static SSL *open_session(SSL_CTX *ctx, int port)
{
    int fd = harness_connect_loopback(port);
    if (fd < 0)
        return NULL;
    /* A server that does not answer makes SSL_connect fail, not hang (a
     * server under valgrind on a busy machine takes its time). */
    struct timeval tv = {.tv_sec = lu_quick() ? 30 : 3};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    SSL_set1_host(ssl, "localhost");
    if (SSL_connect(ssl) != 1) {
        unsigned long e = ERR_get_error();
        harness_diag("SSL_connect: %s", e ? ERR_error_string(e, NULL) : "?");
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    return ssl;
}

static void close_session(SSL *ssl)
{
    int fd = SSL_get_fd(ssl);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
}

static int read_exact(SSL *ssl, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        int r = SSL_read(ssl, buf + got, (int)(n - got));
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

TEST(test_echo_server_holds_1000_sessions)
{
    int n = lu_scale(1000, 30), rounds = 3, port = 0, sout = -1;
    lu_raise_nofile(2L * n + 256);
    pid_t pid = start_server(&port, &sout);
    REQUIRE(pid > 0, "tls_echo_server started");
    SSL_CTX *ctx = client_ctx();
    REQUIRE(ctx, "client SSL_CTX");
    SSL **s = calloc((size_t)n, sizeof *s);
    int opened = 0;
    for (int i = 0; i < n; i++) {
        s[i] = open_session(ctx, port);
        if (!s[i])
            break;
        opened++;
    }
    CHECK(opened == n, "%d TLS sessions open at once (verified, SNI localhost)", opened);

    /* Real openssl s_client processes alongside. */
    int nproc = lu_scale(3, 1), in[3], out[3];
    pid_t cl[3];
    const char *args[] = {"-servername", "localhost", "-verify_return_error", "-quiet", NULL};
    for (int i = 0; i < nproc; i++)
        cl[i] = harness_spawn_s_client(port, args, &in[i], &out[i]);

    /* Every session sends, then every session reads its echo: all n
     * requests are in flight at once. */
    uint8_t msg[2048], got[2048];
    int bad = 0;
    for (int r = 0; r < rounds && opened == n; r++) {
        for (int i = 0; i < n; i++) {
            size_t len = (size_t)((i * 7 + r * 131) % 2000) + 1;
            util_fill(msg, len, (unsigned)(i * 10 + r));
            if (SSL_write(s[i], msg, (int)len) != (int)len)
                bad++;
        }
        for (int i = 0; i < n; i++) {
            size_t len = (size_t)((i * 7 + r * 131) % 2000) + 1;
            util_fill(msg, len, (unsigned)(i * 10 + r));
            if (read_exact(s[i], got, len) != 0 || memcmp(got, msg, len) != 0)
                bad++;
        }
    }
    CHECK(opened == n && bad == 0, "%d rounds on every session, every byte checked (%d bad)", rounds, bad);

    char line[64], buf[4096];
    for (int i = 0; i < nproc; i++) {
        int k = snprintf(line, sizeof line, "openssl-s_client-%d\n", i);
        CHECK(cl[i] > 0 && write(in[i], line, (size_t)k) == k, "s_client %d sends a line", i);
        line[k - 1] = 0;
        CHECK(harness_read_until(out[i], line, 10000, buf, sizeof buf) > 0, "s_client %d got its echo", i);
    }

    /* Close all but one; stop the server; the last session gets its
     * close_notify. */
    for (int i = 1; i < opened; i++)
        close_session(s[i]);
    for (int i = 0; i < nproc; i++) {
        close(in[i]);
        close(out[i]);
        harness_kill(cl[i]);
    }
    int st = harness_kill(pid); /* SIGTERM */
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM: clean exit (status %d)", st);
    if (opened > 0) {
        int r = SSL_read(s[0], got, sizeof got);
        CHECK(r == 0 && SSL_get_error(s[0], r) == SSL_ERROR_ZERO_RETURN,
              "an open session got close_notify at the stop");
        close_session(s[0]);
    }
    char rest[4096];
    ssize_t k = read(sout, rest, sizeof rest - 1);
    rest[k > 0 ? k : 0] = 0;
    CHECK(k == 0, "the server reported no error (%s)", rest);
    close(sout);
    free(s);
    SSL_CTX_free(ctx);
}

/* Out of fds: accept fails (EMFILE), the server says so, keeps serving the
 * connections it has, and accepts again once one of them ends. */
TEST(test_echo_server_survives_fd_exhaustion)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ulimit -n 24 && exec %s --listen 127.0.0.1:0 --cert %s --key %s", SERVER,
             harness_cert("leaf.crt"), harness_cert("leaf.key"));
    const char *argv[] = {"sh", "-c", cmd, NULL};
    int out;
    pid_t pid = harness_spawn(argv, NULL, &out);
    char buf[4096];
    REQUIRE(pid > 0 && harness_read_until(out, "\n", 10000, buf, sizeof buf) > 0 && strstr(buf, "listening"),
            "server with 24 fds");
    int port = atoi(strrchr(buf, ':') + 1);
    SSL_CTX *ctx = client_ctx();
    SSL *s[32] = {0};
    int n = 0;
    while (n < 32 && (s[n] = open_session(ctx, port)) != NULL)
        n++;
    CHECK(n > 2 && n < 32, "%d sessions, then the server ran out of fds", n);
    CHECK(harness_read_until(out, "Too many open files", 10000, buf, sizeof buf) > 0, "it said why");
    uint8_t got[8];
    CHECK(SSL_write(s[0], "still-ok", 8) == 8 && read_exact(s[0], got, 8) == 0 && !memcmp(got, "still-ok", 8),
          "existing sessions still echo");
    close_session(s[n - 1]);
    close_session(s[n - 2]);
    n -= 2;
    SSL *again = NULL;
    for (int i = 0; i < 3 && !again; i++) /* the abandoned attempt may take the first free slot */
        again = open_session(ctx, port);
    CHECK(again && SSL_write(again, "again", 5) == 5 && read_exact(again, got, 5) == 0 && !memcmp(got, "again", 5),
          "after connections ended it accepts and serves again");
    if (again)
        close_session(again);
    for (int i = 0; i < n; i++)
        close_session(s[i]);
    int st = harness_kill(pid);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "clean exit");
    close(out);
    SSL_CTX_free(ctx);
}

TEST(test_echo_server_command_line)
{
    const char *no_key[] = {SERVER, "--listen", "127.0.0.1:0", "--cert", harness_cert("leaf.crt"), NULL};
    const char *bad_listen[] = {SERVER, "--listen", "nocolon", "--cert", harness_cert("leaf.crt"),
                                "--key", harness_cert("leaf.key"), NULL};
    const char *bad_cert[] = {SERVER, "--listen", "127.0.0.1:0", "--cert", harness_cert("garbage.pem"),
                              "--key", harness_cert("leaf.key"), NULL};
    const char *bad_port[] = {SERVER, "--listen", "127.0.0.1:no-such-service-xyz", "--cert",
                              harness_cert("leaf.crt"), "--key", harness_cert("leaf.key"), NULL};
    struct {
        const char *const *argv;
        int status;
        const char *says;
    } cases[] = {{no_key, 2, "usage"},
                 {bad_listen, 1, "cannot listen"},
                 {bad_cert, 1, "configuration"},
                 {bad_port, 1, "cannot resolve"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int out;
        char buf[1024];
        pid_t pid = harness_spawn(cases[i].argv, NULL, &out);
        harness_read_until(out, cases[i].says, 5000, buf, sizeof buf);
        int st = harness_wait(pid, 5000);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == cases[i].status && strstr(buf, cases[i].says),
              "case %zu: exit %d with '%s'", i, cases[i].status, cases[i].says);
        close(out);
    }
}

int main(void)
{
    harness_init();
    return harness_run_all();
}
