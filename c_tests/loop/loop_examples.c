/*
 * loop_examples.c -- the loop examples as a user runs them:
 * examples/two_coroutines (the Melang documentation's server + client
 * flow) and examples/https_get against a local `openssl s_server -www`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop_util.h"

/* Run argv to completion; its output (stdout + stderr) goes to buf.
 * Returns the exit status, or -1.  In the valgrind pass (quick mode) the
 * example runs under valgrind too: a memory error or leak is status 99. */
static int run_as(const char *const argv[], char *buf, size_t cap, int under_valgrind)
{
    const char *vg[32] = {"valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
                          "-q"};
    if (under_valgrind && lu_quick()) {
        size_t i = 5;
        for (size_t j = 0; argv[j] && i < 31; j++)
            vg[i++] = argv[j];
        vg[i] = NULL;
        argv = vg;
    }
    int out;
    pid_t pid = harness_spawn(argv, NULL, &out);
    if (pid < 0)
        return -1;
    size_t n = 0;
    ssize_t k;
    while (n + 1 < cap && (k = read(out, buf + n, cap - 1 - n)) > 0)
        n += (size_t)k;
    buf[n] = 0;
    close(out);
    int st = harness_wait(pid, 120000);
    if (st < 0) {
        harness_kill(pid);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int run(const char *const argv[], char *buf, size_t cap)
{
    return run_as(argv, buf, cap, 1);
}

TEST(test_two_coroutines)
{
    char out[8192];
    const char *argv[] = {"target/examples/two_coroutines", "--cert", harness_cert("leaf.crt"), "--key",
                          harness_cert("leaf.key"), "--ca", harness_cert("ca.crt"), NULL};
    int st = run(argv, out, sizeof out);
    CHECK(st == 0, "two_coroutines exits 0 (%d)", st);
    CHECK(strstr(out, "\nhello-from-corotls\n") != NULL, "the client printed the echoed message");
    const char *steps[] = {"server: listening on", "client: connecting to localhost:", "server: accepted",
                           "client: handshake done (TLSv1.3", "server verified", "server: echoing 18 bytes",
                           "client: closed", "server: the client closed (close_notify)"};
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
        CHECK(strstr(out, steps[i]) != NULL, "output shows '%s'", steps[i]);
    if (st != 0)
        harness_diag("%s", out);
    const char *bad[] = {"target/examples/two_coroutines", NULL};
    CHECK(run(bad, out, sizeof out) == 2 && strstr(out, "usage"), "no arguments: usage, exit 2");
    const char *wrong_ca[] = {"target/examples/two_coroutines", "--cert", harness_cert("leaf.crt"), "--key",
                              harness_cert("leaf.key"), "--ca", harness_cert("selfsigned.crt"), NULL};
    CHECK(run(wrong_ca, out, sizeof out) == 1 && strstr(out, "ERR_VERIFY"), "an untrusted server: ERR_VERIFY, exit 1");
}

TEST(test_https_get)
{
    int port;
    pid_t pid;
    const char *www[] = {"-www", NULL};
    REQUIRE(harness_spawn_s_server(www, &port, &pid) == 0, "openssl s_server -www");
    char url[128], out[16384];
    const char *ca = harness_cert("ca.crt");

    snprintf(url, sizeof url, "https://localhost:%d/", port);
    const char *get[] = {"target/examples/https_get", url, "--ca", ca, NULL};
    int st = run(get, out, sizeof out);
    CHECK(st == 0, "GET %s exits 0 (%d)", url, st);
    CHECK(strncmp(out, "HTTP/1.0 200 ok\r\n", 17) == 0 || strstr(out, "HTTP/1.0 200 ok\r\n"), "status line printed");
    CHECK(strstr(out, "s_server -accept") != NULL, "body printed (s_server's status page)");
    CHECK(strstr(out, "Content-type: text/html") != NULL, "headers on stderr");

    snprintf(url, sizeof url, "https://127.0.0.1:%d/some/path", port);
    const char *by_ip[] = {"target/examples/https_get", url, "--ca", ca, NULL};
    CHECK(run(by_ip, out, sizeof out) == 0 && strstr(out, "200 ok"), "by IPv4 address (IP SAN verified)");

    snprintf(url, sizeof url, "https://localhost:%d/", port);
    const char *untrusted[] = {"target/examples/https_get", url, "--ca", harness_cert("selfsigned.crt"), NULL};
    CHECK(run(untrusted, out, sizeof out) == 1 && strstr(out, "certificate verify failed"),
          "untrusted server: verification error, exit 1");
    harness_kill(pid);

    const char *www2[] = {"-www", "-cert", harness_cert("wronghost.crt"), "-key", harness_cert("wronghost.key"),
                          NULL};
    REQUIRE(harness_spawn_s_server(www2, &port, &pid) == 0, "s_server with a certificate for another name");
    snprintf(url, sizeof url, "https://localhost:%d/", port);
    const char *wrong_name[] = {"target/examples/https_get", url, "--ca", ca, NULL};
    CHECK(run(wrong_name, out, sizeof out) == 1 && strstr(out, "mismatch"), "host name mismatch: exit 1 (%s)", out);
    harness_kill(pid);

    const char *no_url[] = {"target/examples/https_get", "http://plain/", NULL};
    CHECK(run(no_url, out, sizeof out) == 2, "not https: usage, exit 2");
    const char *bad_port[] = {"target/examples/https_get", "https://localhost:/", NULL};
    CHECK(run(bad_port, out, sizeof out) == 2, "empty port: exit 2");
    int free_port = harness_free_port();
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", free_port);
    const char *refused[] = {"target/examples/https_get", url, "--ca", ca, NULL};
    CHECK(run(refused, out, sizeof out) == 1 && strstr(out, "connect"), "nobody listening: connect error, exit 1");
}

/* README's loop snippet compiles and serves. */
TEST(test_doc_snippet)
{
    FILE *f = fopen("README.md", "r");
    REQUIRE(f, "README.md");
    static char doc[65536];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = 0;
    char *start = strstr(doc, "## The loop in one snippet");
    start = start ? strstr(start, "```c\n") : NULL;
    char *end = start ? strstr(start + 5, "```") : NULL;
    REQUIRE(start && end, "the snippet is there");
    start += 5;
    *end = 0;
    /* Its own port instead of 8443, and the test certificates. */
    int port = harness_free_port();
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    const char *dir = "target/c_tests/snippet";
    mkdir(dir, 0755);
    char out[8192];
    char path[256];
    snprintf(path, sizeof path, "%s/snippet.c", dir);
    f = fopen(path, "w");
    REQUIRE(f, "write %s", path);
    for (char *p = start; *p; p++) {
        if (!strncmp(p, "\"8443\"", 6)) {
            fprintf(f, "\"%s\"", ps);
            p += 5;
        } else if (!strncmp(p, "\"cert.pem\"", 10)) {
            fprintf(f, "\"%s\"", harness_cert("leaf.crt"));
            p += 9;
        } else if (!strncmp(p, "\"localhost\"", 11)) {
            fprintf(f, "\"127.0.0.1\"");
            p += 10;
        } else if (!strncmp(p, "\"key.pem\"", 9)) {
            fprintf(f, "\"%s\"", harness_cert("leaf.key"));
            p += 8;
        } else {
            fputc(*p, f);
        }
    }
    fclose(f);
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    const char *const build[] = {cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I", "include", "-o",
                                 "target/c_tests/snippet/snippet", path, "-L", "target/release",
                                 "-Wl,-rpath,target/release", "-lcorotls", NULL};
    int st = run_as(build, out, sizeof out, 0);
    REQUIRE(st == 0, "it compiles with -Wall -Wextra -Werror (%s)", out);
    const char *const argv[] = {"target/c_tests/snippet/snippet", NULL};
    int sout;
    pid_t pid = harness_spawn(argv, NULL, &sout);
    REQUIRE(pid > 0, "it runs");
    long long deadline = harness_now_ms() + 10000;
    int fd = -1;
    while (fd < 0 && harness_now_ms() < deadline) {
        fd = harness_connect_loopback(port);
        if (fd < 0)
            harness_sleep_ms(20);
    }
    if (fd >= 0)
        close(fd);
    for (int i = 0; i < 2; i++) {
        int in, cout;
        const char *args[] = {"-quiet", NULL};
        pid_t c = harness_spawn_s_client(port, args, &in, &cout);
        char line[32], buf[512];
        int k = snprintf(line, sizeof line, "snippet-echo-%d\n", i);
        CHECK(c > 0 && write(in, line, (size_t)k) == k && harness_read_until(cout, "snippet-echo", 10000, buf,
                                                                              sizeof buf) > 0,
              "s_client %d is echoed by the snippet", i);
        close(in);
        close(cout);
        harness_kill(c);
    }
    harness_kill(pid);
    close(sout);
}

int main(void)
{
    harness_init();
    return harness_run_all();
}
