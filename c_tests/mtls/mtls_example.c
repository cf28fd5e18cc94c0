/*
 * mtls_example: tls_echo_server --verify-client optional|require (with
 * --ca, and --client-ca) against tls_echo_client --cert/--key and openssl
 * s_client: each connection's peer subject (or "none") on the server's
 * stderr; a client without a certificate refused in require mode with the
 * reason; the old form, --verify-client alone, still means require.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define T 10000
#define SERVER "target/examples/tls_echo_server"
#define CLIENT "target/examples/tls_echo_client"

struct server {
    pid_t pid;
    int out;
    char addr[64];
};

static int start_server(struct server *s, const char *const extra[])
{
    const char *argv[32] = {SERVER, "--listen", "127.0.0.1:0", "--cert", harness_cert("leaf.crt"), "--key",
                            harness_cert("leaf.key"), "--ca", harness_cert("ca.crt")};
    int n = 9;
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

static void stop_server(struct server *s)
{
    kill(s->pid, SIGTERM);
    int st = harness_wait(s->pid, T);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "server: clean exit");
    if (st < 0)
        harness_kill(s->pid);
    close(s->out);
}

/* tls_echo_client to the server, with an identity when cert != NULL;
 * returns its exit status. */
static int client(const struct server *s, const char *cert, const char *key)
{
    const char *argv[16] = {CLIENT, "--connect", s->addr, "--sni", "localhost", "--ca", harness_cert("ca.crt"),
                            "--message", "hello-mtls"};
    int n = 9;
    if (cert) {
        argv[n++] = "--cert";
        argv[n++] = harness_cert(cert);
        argv[n++] = "--key";
        argv[n++] = harness_cert(key);
    }
    argv[n] = NULL;
    int fd;
    pid_t pid = harness_spawn(argv, NULL, &fd);
    char buf[2048];
    harness_read_until(fd, "no-such-marker", T, buf, sizeof buf);
    close(fd);
    int st = harness_wait(pid, T);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(optional_names_each_peer_or_none)
{
    struct server s;
    const char *opts[] = {"--verify-client", "optional", NULL};
    REQUIRE(start_server(&s, opts) == 0, "tls_echo_server --verify-client optional");
    char buf[4096];
    CHECK(client(&s, "client.crt", "client.key") == 0, "a client with a certificate is echoed");
    CHECK(harness_read_until(s.out, "peer subject: CN=corotls-client (verify: ok)\n", T, buf, sizeof buf) > 0,
          "the server names it on stderr");
    CHECK(client(&s, NULL, NULL) == 0, "a client without one is served too");
    CHECK(harness_read_until(s.out, "peer subject: none\n", T, buf, sizeof buf) > 0, "the server says none");
    stop_server(&s);
}

TEST(require_refuses_a_client_without_a_certificate)
{
    struct server s;
    const char *opts[] = {"--verify-client", "require", NULL};
    REQUIRE(start_server(&s, opts) == 0, "tls_echo_server --verify-client require");
    char buf[4096];
    CHECK(client(&s, "client.crt", "client.key") == 0, "a client with a certificate is echoed");
    CHECK(harness_read_until(s.out, "peer subject: CN=corotls-client (verify: ok)\n", T, buf, sizeof buf) > 0,
          "named");
    CHECK(client(&s, NULL, NULL) != 0, "a client without one fails");
    CHECK(harness_read_until(s.out, "connection: ", T, buf, sizeof buf) > 0 &&
              harness_read_until(s.out, "\n", T, buf, sizeof buf) > 0 && strstr(buf, "certificate"),
          "and the server says why: %s", buf);
    stop_server(&s);
}

TEST(verify_client_alone_still_means_require_and_client_ca_names_the_list)
{
    struct server s;
    const char *opts[] = {"--verify-client", "--client-ca", harness_cert("inter.crt"), NULL};
    REQUIRE(start_server(&s, opts) == 0, "tls_echo_server --verify-client --client-ca inter.crt");
    const char *args[] = {"-servername", "localhost", "-ign_eof", NULL};
    int in, out;
    pid_t c = harness_spawn_s_client(atoi(strrchr(s.addr, ':') + 1), args, &in, &out);
    char buf[8192];
    CHECK(c > 0 && harness_read_until(out, "CN = corotls test intermediate CA", T, buf, sizeof buf) > 0,
          "s_client sees the --client-ca list");
    close(in);
    close(out);
    harness_kill(c);
    CHECK(client(&s, NULL, NULL) != 0, "no certificate: refused (require)");
    stop_server(&s);
}

int main(void)
{
    return harness_run_all();
}
