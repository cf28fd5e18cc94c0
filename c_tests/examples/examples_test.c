/*
 * examples_test: the example programs' command lines and output are a
 * contract.  Runs target/examples/tls_echo_server and tls_echo_client with
 * their documented options against each other, openssl s_client and
 * Python's ssl, and checks what they print and how they exit.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define T 15000
#define SERVER "target/examples/tls_echo_server"
#define CLIENT "target/examples/tls_echo_client"

struct server {
    pid_t pid;
    int out;
    char addr[64];
};

/* Start the echo server with `extra` options (NULL-terminated) after
 * --listen 127.0.0.1:0; wait for its `listening HOST:PORT` line. */
static int start_server(struct server *s, const char *const extra[])
{
    const char *argv[32] = {SERVER, "--listen", "127.0.0.1:0"};
    int n = 3;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    s->pid = harness_spawn(argv, NULL, &s->out);
    char line[256];
    if (s->pid < 0 || harness_read_until(s->out, "\n", T, line, sizeof line) < 0 ||
        sscanf(line, "listening %63s", s->addr) != 1) {
        harness_diag("server did not start: %s", s->pid < 0 ? "spawn failed" : line);
        return -1;
    }
    return 0;
}

static int port_of(const struct server *s)
{
    const char *colon = strrchr(s->addr, ':');
    return colon ? atoi(colon + 1) : -1;
}

/* Stop with `sig`; return the exit status (or -1). */
static int stop_server(struct server *s, int sig)
{
    kill(s->pid, sig);
    int st = harness_wait(s->pid, T);
    if (st < 0)
        harness_kill(s->pid);
    close(s->out);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Run the client with `args`; collect its merged output.  Returns its exit
 * status (-1 if it did not exit normally). */
static int run_client(const char *const args[], char *out, size_t cap)
{
    const char *argv[32] = {CLIENT};
    int n = 1, fd;
    for (int i = 0; args[i] && n < 30; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = harness_spawn(argv, NULL, &fd);
    if (pid < 0)
        return -1;
    size_t len = 0;
    ssize_t k;
    while (len + 1 < cap && (k = read(fd, out + len, cap - 1 - len)) > 0)
        len += (size_t)k;
    out[len] = '\0';
    close(fd);
    int st = harness_wait(pid, T);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(server_prints_its_address_and_echoes_for_s_client)
{
    struct server s;
    const char *opts[] = {"--cert", harness_cert("leaf.crt"), "--key", harness_cert("leaf.key"), NULL};
    REQUIRE(start_server(&s, opts) == 0, "tls_echo_server --listen 127.0.0.1:0 prints `listening %s`", s.addr);
    CHECK(strncmp(s.addr, "127.0.0.1:", 10) == 0 && port_of(&s) > 0, "the real port is shown");
    const char *versions[] = {"-tls1_3", "-tls1_2"};
    for (int i = 0; i < 2; i++) {
        const char *args[] = {versions[i], "-verify_return_error", "-quiet", NULL};
        int in, out;
        pid_t c = harness_spawn_s_client(port_of(&s), args, &in, &out);
        char buf[512];
        CHECK(c > 0 && write(in, "ping-from-s_client\n", 19) == 19, "s_client %s sends a line", versions[i]);
        CHECK(harness_read_until(out, "ping-from-s_client", T, buf, sizeof buf) > 0, "and gets it echoed");
        close(in);
        close(out);
        harness_kill(c);
    }
    CHECK(stop_server(&s, SIGTERM) == 0, "SIGTERM: clean exit 0");
}

TEST(client_prints_echo_and_session_line)
{
    struct server s;
    const char *opts[] = {"--cert", harness_cert("leaf.crt"), "--key", harness_cert("leaf.key"), NULL};
    REQUIRE(start_server(&s, opts) == 0, "server");
    char out[2048];
    const char *a1[] = {"--connect", s.addr, "--ca", harness_cert("ca.crt"), "--verify-host", "localhost", NULL};
    CHECK(run_client(a1, out, sizeof out) == 0, "client exits 0");
    CHECK(strstr(out, "hello-from-corotls\n") != NULL, "default message echoed on stdout");
    CHECK(strstr(out, "version=TLSv1.3 cipher=TLS_") != NULL && strstr(out, " alpn= resumed=0\n") != NULL,
          "`version=... cipher=... alpn=` on stderr: %s", out);
    const char *a2[] = {"--connect", s.addr, "--ca", harness_cert("ca.crt"), "--sni", "localhost", "--message", "custom text", NULL};
    CHECK(run_client(a2, out, sizeof out) == 0 && strstr(out, "custom text\n") != NULL, "--message and --sni");
    const char *a3[] = {"--connect", s.addr, "--no-verify", NULL};
    CHECK(run_client(a3, out, sizeof out) == 0, "--no-verify");
    const char *a4[] = {"--connect", s.addr, "--ca", harness_cert("ca.crt"), "--verify-host", "wrong.example", NULL};
    CHECK(run_client(a4, out, sizeof out) == 1 && strstr(out, "hostname mismatch") != NULL, "a verification failure exits 1: %s",
          out);
    CHECK(stop_server(&s, SIGINT) == 0, "SIGINT: clean exit 0");
    const char *a5[] = {"--connect", s.addr, "--no-verify", NULL};
    CHECK(run_client(a5, out, sizeof out) == 1 && strstr(out, "connect") != NULL, "nobody listening: exit 1: %s", out);
    const char *a6[] = {"--connect", "no-port-here", NULL};
    CHECK(run_client(a6, out, sizeof out) != 0, "a malformed --connect is refused");
}

TEST(server_options)
{
    struct server s;
    const char *opts[] = {"--cert", harness_cert("leaf.crt"), "--key", harness_cert("leaf.key"),
                          "--cert", harness_cert("alt1.crt"), "--key", harness_cert("alt1.key"),
                          "--alpn", "h2,http/1.1", "--max-version", "1.2", "--ciphers", "ECDHE-RSA-AES128-GCM-SHA256", NULL};
    REQUIRE(start_server(&s, opts) == 0, "server with two identities, ALPN, TLS 1.2 only, one cipher");
    char out[2048];
    const char *a1[] = {"--connect", s.addr, "--ca", harness_cert("ca.crt"), "--sni", "alt1.example", "--alpn", "http/1.1", NULL};
    CHECK(run_client(a1, out, sizeof out) == 0, "SNI alt1.example is served by the second identity: %s", out);
    CHECK(strstr(out, "version=TLSv1.2 cipher=ECDHE-RSA-AES128-GCM-SHA256 alpn=http/1.1") != NULL, "version, cipher, ALPN: %s",
          out);
    const char *a2[] = {"--connect", s.addr, "--ca", harness_cert("ca.crt"), "--verify-host", "localhost", "--alpn", "x,h2", NULL};
    CHECK(run_client(a2, out, sizeof out) == 0 && strstr(out, "alpn=h2") != NULL, "no SNI: the first identity; ALPN h2");
    CHECK(stop_server(&s, SIGTERM) == 0, "stops");

    const char *o2[] = {"--cert", harness_cert("leaf.crt"), "--key", harness_cert("leaf.key"), "--min-version", "1.3",
                        "--suites", "TLS_CHACHA20_POLY1305_SHA256", NULL};
    REQUIRE(start_server(&s, o2) == 0, "server TLS 1.3 only");
    const char *a3[] = {"--connect", s.addr, "--ca", harness_cert("ca.crt"), "--verify-host", "localhost", NULL};
    CHECK(run_client(a3, out, sizeof out) == 0 && strstr(out, "cipher=TLS_CHACHA20_POLY1305_SHA256") != NULL, "--suites: %s", out);
    const char *args[] = {"-tls1_2", "-quiet", NULL};
    int in, cout;
    pid_t c = harness_spawn_s_client(port_of(&s), args, &in, &cout);
    char buf[2048];
    CHECK(harness_read_until(cout, "alert", T, buf, sizeof buf) > 0, "s_client -tls1_2 is refused");
    close(in);
    close(cout);
    harness_kill(c);
    CHECK(stop_server(&s, SIGTERM) == 0, "stops");
}

TEST(client_certificates)
{
    struct server s;
    const char *opts[] = {"--cert", harness_cert("leaf.crt"), "--key", harness_cert("leaf.key"), "--ca", harness_cert("ca.crt"),
                          "--verify-client", NULL};
    REQUIRE(start_server(&s, opts) == 0, "server --verify-client");
    char out[2048];
    const char *a1[] = {"--connect", s.addr, "--ca", harness_cert("ca.crt"), "--cert", harness_cert("client.crt"), "--key",
                        harness_cert("client.key"), NULL};
    CHECK(run_client(a1, out, sizeof out) == 0, "with --cert/--key: echoed (%s)", out);
    const char *a2[] = {"--connect", s.addr, "--ca", harness_cert("ca.crt"), NULL};
    CHECK(run_client(a2, out, sizeof out) == 1, "without: exit 1 (%s)", out);
    CHECK(stop_server(&s, SIGTERM) == 0, "stops");
}

TEST(concurrent_clients)
{
    struct server s;
    const char *opts[] = {"--cert", harness_cert("leaf.crt"), "--key", harness_cert("leaf.key"), NULL};
    REQUIRE(start_server(&s, opts) == 0, "server");
    enum { N = 8 };
    int in[N], out[N];
    pid_t pid[N];
    const char *args[] = {"-quiet", NULL};
    for (int i = 0; i < N; i++)
        pid[i] = harness_spawn_s_client(port_of(&s), args, &in[i], &out[i]);
    int ok = 0;
    for (int i = N - 1; i >= 0; i--) { /* served in any order */
        char msg[32], buf[256];
        int len = snprintf(msg, sizeof msg, "client-%d\n", i);
        if (pid[i] > 0 && write(in[i], msg, (size_t)len) == len && harness_read_until(out[i], msg, T, buf, sizeof buf) > 0)
            ok++;
    }
    CHECK(ok == N, "%d clients open at once, each echoed (%d)", N, ok);
    for (int i = 0; i < N; i++) {
        close(in[i]);
        close(out[i]);
        harness_kill(pid[i]);
    }
    CHECK(stop_server(&s, SIGTERM) == 0, "stops with clients gone");
}

TEST(server_rejects_bad_options)
{
    char out[1024];
    const char *argv1[] = {SERVER, "--listen", "127.0.0.1:0", NULL};
    int fd;
    pid_t p = harness_spawn(argv1, NULL, &fd);
    int st = harness_wait(p, T);
    ssize_t n = read(fd, out, sizeof out - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2 && strstr(out, "usage"), "no --cert: usage, exit 2");
    const char *argv2[] = {SERVER, "--listen", "127.0.0.1:0", "--cert", harness_cert("leaf.crt"), "--key",
                           harness_cert("other.key"), NULL};
    p = harness_spawn(argv2, NULL, &fd);
    st = harness_wait(p, T);
    n = read(fd, out, sizeof out - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(out, "does not match"), "mismatched key: exit 1, says why: %s", out);
}

int main(void)
{
    return harness_run_all();
}
