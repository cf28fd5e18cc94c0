/*
 * harness_selftest.c -- checks the shared C test harness itself: the
 * certificate directory, sockets, process helpers, the openssl and Python
 * peers, and the framework's own reporting (failing checks, exact summary,
 * watchdog, crash report), the latter by re-running this binary in a child
 * mode and inspecting its output.
 */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *g_self; /* argv[0] */

/* ------------------------------------------------------- child modes */

static void child_failing(void)
{
    CHECK(1 + 1 == 2, "passes");
    CHECK(1 + 1 == 3, "deliberately fails");
}

static void child_passing(void)
{
    CHECK(1, "first");
    CHECK(2 > 1, "second");
}

static void child_hang(void)
{
    const char *argv[] = {"sleep", "60", NULL};
    pid_t sleeper = harness_spawn(argv, NULL, NULL);
    printf("sleeper %d\n", (int)sleeper);
    CHECK(sleeper > 0, "about to hang");
    for (;;)
        pause();
}

static void child_crash(void)
{
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    CHECK(1, "about to crash");
    raise(SIGSEGV);
}

static int child_main(const char *mode)
{
    if (strcmp(mode, "--child-fail") == 0)
        run_test("child_failing", child_failing);
    else if (strcmp(mode, "--child-pass") == 0)
        run_test("child_passing", child_passing);
    else if (strcmp(mode, "--child-hang") == 0) {
        setenv("HARNESS_TEST_TIMEOUT", "1", 1);
        run_test("child_hang", child_hang);
    } else if (strcmp(mode, "--child-crash") == 0)
        run_test("child_crash", child_crash);
    else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return harness_summary();
}

/* Run this binary in `mode`; collect all its output into buf; return the
 * wait status (or -1). */
static int run_self(const char *mode, char *buf, size_t cap, long long *ms)
{
    const char *argv[] = {g_self, mode, NULL};
    int out = -1;
    long long t0 = harness_now_ms();
    pid_t pid = harness_spawn(argv, NULL, &out);
    if (pid < 0)
        return -1;
    /* read until EOF: the needle never appears */
    harness_read_until(out, "\x01never\x01", 20000, buf, cap);
    close(out);
    int st = harness_wait(pid, 10000);
    if (st == -1)
        harness_kill(pid);
    if (ms)
        *ms = harness_now_ms() - t0;
    return st;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* A pid that is gone or a zombie (our container's init may not reap). */
static int pid_dead(pid_t pid)
{
    char path[64], stat[256];
    if (kill(pid, 0) < 0)
        return 1;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 1;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *rp = strrchr(stat, ')');
    return rp && rp[1] == ' ' && rp[2] == 'Z';
}

/* ------------------------------------------------------------- tests */

TEST(test_certdir)
{
    static const char *const files[] = {
        "ca.crt", "ca.key", "leaf.crt", "leaf.key", "leaf.pkcs1.key",
        "leaf.enc.key", "expired.crt", "expired.key", "wronghost.crt",
        "wronghost.key", "selfsigned.crt", "selfsigned.key", "inter.crt",
        "inter.key", "chained.crt", "chained.key", "chained-full.crt",
        "client.crt", "client.key", "alt1.crt", "alt1.key", "alt2.crt",
        "alt2.key", "garbage.pem", "other.key", ".done", NULL};
    struct stat st;

    CHECK(harness_certdir() && *harness_certdir(), "certdir is %s",
          harness_certdir());
    for (int i = 0; files[i]; i++) {
        const char *p = harness_cert(files[i]);
        int ok = stat(p, &st) == 0 &&
                 (st.st_size > 0 || strcmp(files[i], ".done") == 0);
        CHECK(ok, "%s exists and is not empty", p);
    }
    CHECK(stat(harness_cert("empty.pem"), &st) == 0 && st.st_size == 0,
          "empty.pem exists and is empty");

    char want[1100];
    snprintf(want, sizeof want, "%s/leaf.crt", harness_certdir());
    const char *a = harness_cert("leaf.crt"), *b = harness_cert("leaf.key");
    CHECK(strcmp(a, want) == 0, "harness_cert builds %s", want);
    CHECK(a != b && strcmp(a, want) == 0 && ends_with(b, "/leaf.key"),
          "two harness_cert results stay valid together");
}

TEST(test_loopback_sockets)
{
    int port = 0;
    int lfd = harness_listen_loopback(&port);
    REQUIRE(lfd >= 0 && port > 0 && port < 65536, "listen on 127.0.0.1:%d", port);
    int cfd = harness_connect_loopback(port);
    CHECK(cfd >= 0, "connect to the listener");
    int afd = accept(lfd, NULL, NULL);
    CHECK(afd >= 0, "accept the connection");
    CHECK(write(cfd, "ping", 4) == 4, "write 4 bytes");
    char buf[64];
    CHECK(harness_read_until(afd, "ping", 2000, buf, sizeof buf) == 4 &&
              strcmp(buf, "ping") == 0,
          "read_until on a socket");
    CHECK(harness_set_nonblock(afd) == 0, "set_nonblock");
    errno = 0;
    CHECK(recv(afd, buf, sizeof buf, 0) == -1 &&
              (errno == EAGAIN || errno == EWOULDBLOCK),
          "non-blocking recv on an idle socket says EAGAIN");
    close(afd);
    close(cfd);
    close(lfd);
    CHECK(harness_connect_loopback(port) == -1 && errno == ECONNREFUSED,
          "connect to a closed port is refused");

    int fp = harness_free_port();
    CHECK(fp > 0 && fp < 65536, "free_port gives %d", fp);
}

TEST(test_spawn_and_read_until)
{
    const char *argv[] = {"sh", "-c", "echo one; echo two >&2; echo three", NULL};
    int out = -1;
    char buf[256];
    pid_t pid = harness_spawn(argv, NULL, &out);
    REQUIRE(pid > 0 && out >= 0, "spawn sh");
    CHECK(harness_read_until(out, "two\n", 5000, buf, sizeof buf) > 0 &&
              strcmp(buf, "one\ntwo\n") == 0,
          "stderr is merged into stdout, read up to the needle only");
    CHECK(harness_read_until(out, "three\n", 5000, buf, sizeof buf) == 6 &&
              strcmp(buf, "three\n") == 0,
          "the next read starts right after the previous needle");
    errno = 0;
    CHECK(harness_read_until(out, "more", 5000, buf, sizeof buf) == -1 &&
              errno == EPIPE,
          "EOF before the needle gives -1/EPIPE");
    close(out);
    int st = harness_wait(pid, 5000);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
          "harness_wait reaps exit status 0");

    /* stdin pipe + a small buffer that slides */
    const char *cat[] = {"cat", NULL};
    int in = -1;
    out = -1;
    pid = harness_spawn(cat, &in, &out);
    REQUIRE(pid > 0 && in >= 0 && out >= 0, "spawn cat with both pipes");
    const char *msg = "0123456789abcdefghijklmnopqrstuvwxyz-END\n";
    CHECK(write(in, msg, strlen(msg)) == (ssize_t)strlen(msg), "write to stdin");
    char small[16];
    ssize_t n = harness_read_until(out, "END", 5000, small, sizeof small);
    CHECK(n > 0 && ends_with(small, "-END") && (size_t)n < sizeof small,
          "a full buffer keeps the tail (%s)", small);
    close(in);
    CHECK(harness_read_until(out, "\n", 5000, NULL, 0) == 1,
          "NULL buffer uses an internal one");
    st = harness_wait(pid, 5000);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
          "cat exits 0 on stdin EOF");
    close(out);

    errno = 0;
    CHECK(harness_read_until(-1, "x", 10, buf, sizeof buf) == -1 && errno == EINVAL,
          "bad fd is EINVAL");

    const char *missing[] = {"/nonexistent/corotls-no-such-binary", NULL};
    errno = 0;
    CHECK(harness_spawn(missing, NULL, NULL) == -1 && errno == ENOENT,
          "spawning a missing program fails with ENOENT");
}

TEST(test_timeout_and_kill)
{
    const char *argv[] = {"sleep", "30", NULL};
    int out = -1;
    char buf[64];
    pid_t pid = harness_spawn(argv, NULL, &out);
    REQUIRE(pid > 0, "spawn sleep");
    long long t0 = harness_now_ms();
    errno = 0;
    ssize_t r = harness_read_until(out, "x", 200, buf, sizeof buf);
    long long dt = harness_now_ms() - t0;
    CHECK(r == -1 && errno == ETIMEDOUT, "read_until times out");
    CHECK(dt >= 190 && dt < 3000, "after about 200 ms (%lld ms)", dt);
    CHECK(harness_wait(pid, 50) == -1 && errno == ETIMEDOUT,
          "harness_wait times out on a running child");
    int st = harness_kill(pid);
    CHECK(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM,
          "harness_kill ends it with SIGTERM");
    close(out);

    const char *stubborn[] = {"sh", "-c", "trap '' TERM; echo ready; exec sleep 30",
                              NULL};
    out = -1;
    pid = harness_spawn(stubborn, NULL, &out);
    REQUIRE(pid > 0, "spawn a child that ignores SIGTERM");
    CHECK(harness_read_until(out, "ready\n", 5000, buf, sizeof buf) > 0,
          "it is ready");
    t0 = harness_now_ms();
    st = harness_kill(pid);
    dt = harness_now_ms() - t0;
    CHECK(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
          "harness_kill escalates to SIGKILL");
    CHECK(dt >= 1900 && dt < 6000, "after the 2 s grace (%lld ms)", dt);
    close(out);
    CHECK(harness_kill(pid) == -1, "killing a reaped child fails cleanly");
}

TEST(test_s_server)
{
    int port = 0;
    pid_t srv = 0;
    REQUIRE(harness_spawn_s_server(NULL, &port, &srv) == 0, "s_server starts");
    CHECK(port > 0 && srv > 0, "on port %d, pid %d", port, (int)srv);
    int fd = harness_connect_loopback(port);
    CHECK(fd >= 0, "raw TCP connect to s_server");
    if (fd >= 0)
        close(fd);
    int st = harness_kill(srv);
    CHECK(st != -1, "s_server killed and reaped");

    /* -quiet: no ACCEPT line, the harness watches /proc/net/tcp */
    const char *quiet[] = {"-quiet", NULL};
    REQUIRE(harness_spawn_s_server(quiet, &port, &srv) == 0, "s_server -quiet starts");
    fd = harness_connect_loopback(port);
    CHECK(fd >= 0, "raw TCP connect to s_server -quiet");
    if (fd >= 0)
        close(fd);
    harness_kill(srv);

    /* a real handshake: s_client -> s_server -rev */
    const char *rev[] = {"-rev", NULL};
    int sout = -1;
    REQUIRE(harness_spawn_s_server_io(rev, &port, &srv, NULL, &sout) == 0,
            "s_server -rev starts with its stdout handed over");
    const char *cargs[] = {"-servername", "localhost", "-verify_return_error",
                           "-quiet", NULL};
    int cin = -1, cout = -1;
    pid_t cli = harness_spawn_s_client(port, cargs, &cin, &cout);
    REQUIRE(cli > 0, "s_client starts");
    CHECK(write(cin, "hello\n", 6) == 6, "type a line into s_client");
    char buf[4096];
    CHECK(harness_read_until(cout, "olleh\n", 10000, buf, sizeof buf) > 0,
          "s_client gets the reversed line back over TLS");
    CHECK(harness_read_until(sout, "Protocol version: TLSv1.3\n", 10000, buf,
                             sizeof buf) > 0,
          "s_server reports a TLSv1.3 connection");
    close(cin);
    close(cout);
    harness_kill(cli);
    close(sout);
    harness_kill(srv);

    /* bad arguments: a diagnostic and -1, no hang */
    const char *bad[] = {"-cert", "/nonexistent/cert.pem", NULL};
    pid_t none = 0;
    CHECK(harness_spawn_s_server(bad, &port, &none) == -1,
          "s_server with a missing cert fails to start");
}

TEST(test_py_peer_echo)
{
    const char *args[] = {"echo", "--alpn", "h2,http/1.1", NULL};
    int port = 0, pout = -1;
    pid_t peer = 0;
    char buf[4096];
    REQUIRE(harness_spawn_py_peer(args, &port, &peer, &pout) == 0,
            "python echo peer starts");
    CHECK(port > 0 && port < 65536, "it printed PORT %d", port);

    /* the peer's own client mode */
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *cli[] = {harness_python(), harness_py_peer_script(), "client",
                         "--port", portstr, "--sni", "localhost", "--alpn", "h2",
                         "--message", "ping", NULL};
    int cout = -1;
    pid_t c = harness_spawn(cli, NULL, &cout);
    REQUIRE(c > 0, "python client starts");
    CHECK(harness_read_until(cout, "reply=ping\n", 15000, buf, sizeof buf) > 0 &&
              strstr(buf, "version=TLSv1.3 ") && strstr(buf, "alpn=h2"),
          "python client gets its echo over TLS 1.3 with ALPN h2");
    int st = harness_wait(c, 10000);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "python client exits 0");
    close(cout);
    CHECK(harness_read_until(pout, "\n", 10000, buf, sizeof buf) > 0 &&
              strncmp(buf, "conn version=TLSv1.3 ", 21) == 0 &&
              strstr(buf, " alpn=h2 ") && strstr(buf, " sni=localhost "),
          "peer logs the connection: %s", buf);
    CHECK(harness_read_until(pout, "\n", 10000, buf, sizeof buf) > 0 &&
              strcmp(buf, "closed how=close_notify bytes=4\n") == 0,
          "peer logs a clean close: %s", buf);

    /* openssl s_client against it, TLS 1.2 */
    const char *sargs[] = {"-servername", "localhost", "-verify_return_error",
                           "-tls1_2", "-quiet", NULL};
    int sin = -1, sout = -1;
    pid_t sc = harness_spawn_s_client(port, sargs, &sin, &sout);
    REQUIRE(sc > 0, "s_client starts");
    CHECK(write(sin, "abc\n", 4) == 4, "type into s_client");
    CHECK(harness_read_until(sout, "abc\n", 10000, buf, sizeof buf) > 0,
          "s_client gets its echo");
    CHECK(harness_read_until(pout, "\n", 10000, buf, sizeof buf) > 0 &&
              strncmp(buf, "conn version=TLSv1.2 ", 21) == 0 &&
              strstr(buf, " sni=localhost "),
          "peer logs TLSv1.2: %s", buf);
    close(sin);
    close(sout);
    harness_kill(sc);
    close(pout);
    harness_kill(peer);
}

TEST(test_py_peer_raw_modes)
{
    int port = 0, fd;
    pid_t peer = 0;
    char buf[256];

    const char *garbage[] = {"garbage", NULL};
    REQUIRE(harness_spawn_py_peer(garbage, &port, &peer, NULL) == 0,
            "garbage peer starts");
    fd = harness_connect_loopback(port);
    CHECK(fd >= 0, "connect to garbage peer");
    CHECK(write(fd, "\x16\x03\x01\x00\x01\x01", 6) == 6, "send a fake record");
    CHECK(harness_read_until(fd, "this is not TLS", 5000, buf, sizeof buf) > 0,
          "garbage peer sends non-TLS bytes");
    close(fd);
    harness_kill(peer);

    const char *silent[] = {"silent", NULL};
    REQUIRE(harness_spawn_py_peer(silent, &port, &peer, NULL) == 0,
            "silent peer starts");
    fd = harness_connect_loopback(port);
    CHECK(fd >= 0, "connect to silent peer");
    errno = 0;
    CHECK(harness_read_until(fd, "x", 300, buf, sizeof buf) == -1 && errno == ETIMEDOUT,
          "silent peer says nothing");
    close(fd);
    harness_kill(peer);

    const char *hangup[] = {"hangup", NULL};
    REQUIRE(harness_spawn_py_peer(hangup, &port, &peer, NULL) == 0,
            "hangup peer starts");
    fd = harness_connect_loopback(port);
    CHECK(fd >= 0, "connect to hangup peer");
    CHECK(write(fd, "\x16\x03\x01\x00\x02\x01\x00", 7) == 7, "send one record");
    errno = 0;
    CHECK(harness_read_until(fd, "x", 5000, buf, sizeof buf) == -1 && errno == EPIPE,
          "hangup peer closes after the record");
    close(fd);
    harness_kill(peer);

    const char *midway[] = {"midway", NULL};
    int pout = -1;
    REQUIRE(harness_spawn_py_peer(midway, &port, &peer, &pout) == 0,
            "midway peer starts");
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *cli[] = {harness_python(), harness_py_peer_script(), "client",
                         "--port", portstr, "--message", "x", NULL};
    int cout = -1;
    pid_t c = harness_spawn(cli, NULL, &cout);
    REQUIRE(c > 0, "python client starts");
    CHECK(harness_read_until(cout, "error ", 15000, buf, sizeof buf) > 0,
          "a client of the midway peer fails its handshake");
    int st = harness_wait(c, 10000);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "python client exits 1");
    close(cout);
    CHECK(harness_read_until(pout, "\n", 5000, buf, sizeof buf) > 0 &&
              strncmp(buf, "conn mode=midway sent=", 22) == 0,
          "midway peer logs a partial flight: %s", buf);
    close(pout);
    harness_kill(peer);
}

TEST(test_failing_check_is_counted)
{
    char out[4096];
    int st = run_self("--child-fail", out, sizeof out, NULL);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
          "a run with a failing check exits 1");
    CHECK(strstr(out, "# child_failing\n") != NULL, "test header printed");
    CHECK(strstr(out, "\nok - passes\n") != NULL, "passing check printed");
    CHECK(strstr(out, "\nFAIL - deliberately fails: 1 + 1 == 3 failed in "
                      "child_failing (" __FILE__ ":") != NULL,
          "failing check printed with expression, test and file:line");
    CHECK(ends_with(out, "\n1 passed, 1 failed\n"), "summary counts the failure");
}

TEST(test_summary_format)
{
    char out[4096];
    int st = run_self("--child-pass", out, sizeof out, NULL);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
          "an all-passing run exits 0");
    CHECK(strcmp(out, "# child_passing\nok - first\nok - second\n"
                      "2 passed, 0 failed\n") == 0,
          "output is exactly as specified");
}

TEST(test_watchdog)
{
    char out[4096];
    long long ms = 0;
    int st = run_self("--child-hang", out, sizeof out, &ms);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
          "a hanging test makes the run exit 1");
    CHECK(ms < 8000, "within the 1 s watchdog (%lld ms)", ms);
    CHECK(strstr(out, "\nFAIL - child_hang: timed out after 1 s (watchdog)\n") != NULL,
          "the hang is reported with the test name");
    CHECK(ends_with(out, "\n1 passed, 1 failed\n"), "then the summary line");
    const char *s = strstr(out, "sleeper ");
    int sleeper = s ? atoi(s + 8) : 0;
    CHECK(sleeper > 0, "the hanging test had spawned pid %d", sleeper);
    int dead = 0;
    for (int i = 0; sleeper > 0 && i < 200 && !dead; i++) {
        dead = pid_dead(sleeper);
        if (!dead)
            harness_sleep_ms(10);
    }
    CHECK(dead, "the watchdog killed the hanging test's children");
}

TEST(test_crash_report)
{
    char out[4096];
    int st = run_self("--child-crash", out, sizeof out, NULL);
    CHECK(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
          "a crashing test dies by its signal");
    CHECK(strstr(out, "\nFAIL - child_crash: crashed with signal 11 (SIGSEGV)\n") != NULL,
          "the crash is reported with the test name");
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return child_main(argv[1]);
    g_self = argv[0];
    return harness_run_all();
}
