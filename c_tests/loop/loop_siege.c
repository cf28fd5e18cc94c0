/*
 * loop_siege.c -- examples/tls_echo_server under the attacks its deadlines
 * are for, over loopback:
 *   - 80 TCP peers that never send a byte, against a server limited to 64
 *     fds (soft and hard) with --handshake-timeout 2000: a healthy TLS
 *     client still completes a handshake within 10 s, and every silent
 *     peer's connection ends;
 *   - slowloris: 100 peers each dripping one byte of a ClientHello every
 *     200 ms, plus 20 healthy clients, against --handshake-timeout 2000:
 *     every healthy client is served (echo checked) and every drip peer
 *     sees its connection end within the deadline + 5 s;
 *   - the server's memory per half-open connection (reported, bounded);
 *   - the new options' command-line errors.
 * COROTLS_TEST_QUICK=1 (the valgrind pass): the slowloris test runs the
 * server under valgrind with 30 drip peers and 5 healthy clients, a 6 s
 * deadline (a handshake under valgrind is slow) and 10 s of slack; the
 * 64-fd and memory tests are skipped (valgrind keeps fds of its own under
 * the process's limit, and RSS under valgrind measures valgrind).
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "loop_util.h"

#define SERVER "target/examples/tls_echo_server"
#define DEADLINE_MS 2000

/* Start the server through `sh -c` (for `ulimit`), `pre` first (may be
 * ""), with `opts` after the certificate.  Returns its pid (the server's
 * own: sh execs it), the port and the read end of its output, or -1. */
static pid_t start_server(const char *pre, const char *opts, int under_valgrind, int *port, int *out_fd)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%sexec %s%s --listen 127.0.0.1:0 --cert %s --key %s %s", pre,
             under_valgrind ? "valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite -q "
                            : "",
             SERVER, harness_cert("leaf.crt"), harness_cert("leaf.key"), opts);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    int out;
    pid_t pid = harness_spawn(argv, NULL, &out);
    *out_fd = -1;
    if (pid < 0)
        return -1;
    char buf[512];
    if (harness_read_until(out, "\n", 30000, buf, sizeof buf) < 0 || !strstr(buf, "listening 127.0.0.1:")) {
        harness_diag("server said: %s", buf);
        close(out);
        harness_kill(pid);
        return -1;
    }
    *port = atoi(strrchr(buf, ':') + 1);
    *out_fd = out;
    return pid;
}

/* Stop the server (SIGTERM); its exit status, and what it printed after
 * `listening` in rest. */
static int stop_server(pid_t pid, int out, char *rest, size_t cap)
{
    int st = harness_kill(pid);
    size_t n = 0;
    ssize_t k;
    while (n + 1 < cap && (k = read(out, rest + n, cap - 1 - n)) > 0)
        n += (size_t)k;
    rest[n] = 0;
    close(out);
    return st;
}

static SSL_CTX *client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_load_verify_locations(ctx, harness_cert("ca.crt"), NULL) != 1)
        return NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

/* A blocking verified TLS session, or NULL (the server shed or ended the
 * connection, or did not answer within wait_s). */
static SSL *open_session(SSL_CTX *ctx, int port, int wait_s)
{
    int fd = harness_connect_loopback(port);
    if (fd < 0)
        return NULL;
    struct timeval tv = {.tv_sec = wait_s};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    SSL_set1_host(ssl, "localhost");
    if (SSL_connect(ssl) != 1) {
        ERR_clear_error();
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

/* Write msg and read the same bytes back. */
static int echo_ok(SSL *ssl, const char *msg)
{
    int n = (int)strlen(msg);
    char got[256];
    int have = 0;
    if (SSL_write(ssl, msg, n) != n)
        return 0;
    while (have < n) {
        int r = SSL_read(ssl, got + have, n - have);
        if (r <= 0)
            return 0;
        have += r;
    }
    return memcmp(got, msg, (size_t)n) == 0;
}

/* The peer's connection has ended (EOF or reset), without waiting. */
static int ended(int fd)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

TEST(test_silent_peers_do_not_stop_service)
{
    if (lu_quick()) {
        harness_diag("skipped in the valgrind pass: valgrind keeps fds of its own under a 64-fd limit");
        return;
    }
    lu_raise_nofile(512);
    int port, out;
    char opts[64];
    snprintf(opts, sizeof opts, "--handshake-timeout %d", DEADLINE_MS);
    pid_t pid = start_server("ulimit -n 64 && ", opts, 0, &port, &out);
    REQUIRE(pid > 0, "tls_echo_server with 64 fds (soft and hard) and --handshake-timeout %d", DEADLINE_MS);
    enum { NSILENT = 80 };
    int silent[NSILENT], nsilent = 0;
    for (int i = 0; i < NSILENT; i++)
        if ((silent[nsilent] = harness_connect_loopback(port)) >= 0)
            nsilent++;
    CHECK(nsilent == NSILENT, "%d TCP peers connected and send nothing", nsilent);

    SSL_CTX *ctx = client_ctx();
    REQUIRE(ctx, "client SSL_CTX");
    long long start = harness_now_ms();
    SSL *ssl = NULL;
    int attempts = 0;
    while (!ssl && harness_now_ms() - start < 10000) {
        attempts++;
        if (!(ssl = open_session(ctx, port, 3)))
            harness_sleep_ms(100);
    }
    long long took = harness_now_ms() - start;
    CHECK(ssl != NULL, "a healthy client completed a handshake in %lld ms (%d attempts; bound 10 s)", took, attempts);
    CHECK(ssl && echo_ok(ssl, "healthy-after-siege"), "and is echoed");
    if (ssl)
        close_session(ssl);

    int closed = 0;
    long long end = harness_now_ms() + DEADLINE_MS + 8000;
    while (closed < nsilent && harness_now_ms() < end) {
        for (int i = 0; i < nsilent; i++)
            if (silent[i] >= 0 && ended(silent[i])) {
                close(silent[i]);
                silent[i] = -1;
                closed++;
            }
        if (closed < nsilent)
            harness_sleep_ms(50);
    }
    CHECK(closed == nsilent, "every silent peer's connection ended (%d of %d): shed at once or by the deadline",
          closed, nsilent);
    for (int i = 0; i < nsilent; i++)
        if (silent[i] >= 0)
            close(silent[i]);
    char rest[4096];
    int st = stop_server(pid, out, rest, sizeof rest);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM: clean exit (status %d)", st);
    const char *first = strstr(rest, "Too many open files");
    CHECK(first && !strstr(first + 1, "Too many open files"), "the server said once that it sheds connections");
    int lines = 0;
    for (const char *p = rest; *p; p++)
        lines += *p == '\n';
    CHECK(lines == 1, "and nothing else (%d lines: %s)", lines, rest);
    SSL_CTX_free(ctx);
}

/* ------------------------------------------------------------ slowloris */

struct drip {
    int n, port, deadline;
    int fd[100];
    long long opened[100], ended_at[100];
    int open_failures;
    volatile int connected; /* all are connected: healthy clients may start */
};

/* The start of a ClientHello: a handshake record of 512 bytes, then a
 * ClientHello header and TLS 1.2 legacy version; the rest is never sent
 * (at 5 bytes a second the record takes 100 s). */
static const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};

static void *drip_run(void *arg)
{
    struct drip *d = arg;
    for (int i = 0; i < d->n; i++) {
        d->fd[i] = harness_connect_loopback(d->port);
        d->opened[i] = harness_now_ms();
        d->ended_at[i] = 0;
        if (d->fd[i] < 0)
            d->open_failures++;
    }
    __atomic_store_n(&d->connected, 1, __ATOMIC_SEQ_CST);
    long long stop = harness_now_ms() + d->deadline + 30000;
    for (int step = 0; harness_now_ms() < stop; step++) {
        int open = 0;
        for (int i = 0; i < d->n; i++) {
            if (d->fd[i] < 0 || d->ended_at[i])
                continue;
            if (ended(d->fd[i])) {
                d->ended_at[i] = harness_now_ms();
                continue;
            }
            open++;
            /* Past the prefix: any byte of the record body. */
            unsigned char b = step < (int)sizeof hello ? hello[step] : (unsigned char)step;
            if (send(d->fd[i], &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN)
                d->ended_at[i] = harness_now_ms();
        }
        if (!open)
            break;
        /* One byte per peer every 200 ms; look for ends every 20 ms. */
        for (int k = 0; k < 10; k++) {
            harness_sleep_ms(20);
            for (int i = 0; i < d->n; i++)
                if (d->fd[i] >= 0 && !d->ended_at[i] && ended(d->fd[i]))
                    d->ended_at[i] = harness_now_ms();
        }
    }
    return NULL;
}

TEST(test_slowloris_drip_peers_are_cut_and_healthy_clients_served)
{
    int vg = lu_quick();
    int ndrip = lu_scale(100, 30), nhealthy = lu_scale(20, 5), slack = lu_scale(5000, 10000);
    /* Under valgrind a healthy handshake itself can take a second or two. */
    int deadline = lu_scale(DEADLINE_MS, 6000);
    lu_raise_nofile(1024);
    int port, out;
    char opts[64];
    snprintf(opts, sizeof opts, "--handshake-timeout %d", deadline);
    pid_t pid = start_server("", opts, vg, &port, &out);
    REQUIRE(pid > 0, "tls_echo_server --handshake-timeout %d%s", deadline, vg ? " under valgrind" : "");
    static struct drip d;
    memset(&d, 0, sizeof d);
    d.n = ndrip;
    d.port = port;
    d.deadline = deadline;
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, drip_run, &d) == 0, "drip thread");
    while (!__atomic_load_n(&d.connected, __ATOMIC_SEQ_CST))
        harness_sleep_ms(10);
    CHECK(d.open_failures == 0, "%d drip peers connected", ndrip);

    /* The healthy clients: all open at once, then each echoes. */
    SSL_CTX *ctx = client_ctx();
    SSL *s[20] = {0};
    int opened = 0, echoed = 0;
    for (int i = 0; i < nhealthy; i++)
        opened += (s[i] = open_session(ctx, port, 20)) != NULL;
    for (int i = 0; i < nhealthy; i++) {
        char msg[64];
        snprintf(msg, sizeof msg, "healthy-%d-among-drippers", i);
        echoed += s[i] && echo_ok(s[i], msg);
    }
    CHECK(opened == nhealthy && echoed == nhealthy, "every healthy client is served: %d of %d handshaken, %d echoed",
          opened, nhealthy, echoed);
    for (int i = 0; i < nhealthy; i++)
        if (s[i])
            close_session(s[i]);

    pthread_join(t, NULL);
    int cut = 0, in_time = 0;
    long long lo = -1, hi = -1;
    for (int i = 0; i < ndrip; i++) {
        if (d.fd[i] < 0 || !d.ended_at[i])
            continue;
        cut++;
        long long lived = d.ended_at[i] - d.opened[i];
        in_time += lived <= deadline + slack;
        if (lo < 0 || lived < lo)
            lo = lived;
        if (lived > hi)
            hi = lived;
    }
    harness_diag("drip peers lived %lld .. %lld ms (deadline %d ms)", lo, hi, deadline);
    CHECK(cut == ndrip, "every drip peer's connection was ended (%d of %d)", cut, ndrip);
    CHECK(in_time == ndrip, "each within the deadline + %d ms (%d of %d)", slack, in_time, ndrip);
    for (int i = 0; i < ndrip; i++)
        if (d.fd[i] >= 0)
            close(d.fd[i]);
    char rest[4096];
    int st = stop_server(pid, out, rest, sizeof rest);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM: clean exit (status %d%s)", st,
          vg ? "; 99: a valgrind error" : "");
    CHECK(rest[0] == 0, "the server printed nothing (deadline ends are quiet): %s", rest);
    SSL_CTX_free(ctx);
}

/* ------------------------------------------------------------- memory */

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

static int open_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(path);
    int n = 0;
    while (dir && readdir(dir))
        n++;
    if (dir)
        closedir(dir);
    return n;
}

/* RSS growth of the server per accepted connection whose peer never sends
 * a byte (a recv pending on each, as the server always has). */
TEST(test_memory_per_half_open_connection)
{
    if (lu_quick()) {
        harness_diag("skipped in the valgrind pass: RSS under valgrind measures valgrind");
        return;
    }
    int n = 1000, port, out;
    lu_raise_nofile(n + 512);
    pid_t pid = start_server("", "--handshake-timeout 120000", 0, &port, &out);
    REQUIRE(pid > 0, "server");
    /* Warm up: one real session loads what the first handshake loads. */
    SSL_CTX *ctx = client_ctx();
    SSL *ssl = open_session(ctx, port, 5);
    CHECK(ssl && echo_ok(ssl, "warm-up"), "a warm-up session");
    if (ssl)
        close_session(ssl);
    harness_sleep_ms(200);
    long before = rss_kb(pid);
    int base = open_fds(pid);
    int *peer = malloc(sizeof *peer * (size_t)n), made = 0;
    for (int i = 0; i < n; i++)
        if ((peer[made] = harness_connect_loopback(port)) >= 0)
            made++;
    long long end = harness_now_ms() + 20000;
    while (open_fds(pid) < base + made && harness_now_ms() < end)
        harness_sleep_ms(20);
    harness_sleep_ms(300);
    int accepted = open_fds(pid) - base;
    long after = rss_kb(pid);
    double per = accepted > 0 ? (double)(after - before) / accepted : 0;
    harness_diag("server RSS %ld -> %ld KiB for %d half-open connections: %.1f KiB each", before, after, accepted,
                 per);
    CHECK(accepted == made && made == n, "%d half-open connections accepted", accepted);
    CHECK(per < 24, "memory per half-open connection %.1f KiB (bound 24 KiB)", per);
    for (int i = 0; i < made; i++)
        close(peer[i]);
    free(peer);
    char rest[4096];
    int st = stop_server(pid, out, rest, sizeof rest);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "clean exit");
    SSL_CTX_free(ctx);
}

TEST(test_deadline_options)
{
    const char *bad[] = {"-2", "abc", "", "10x", "99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        for (int which = 0; which < 2; which++) {
            const char *argv[] = {SERVER, "--listen", "127.0.0.1:0", "--cert", harness_cert("leaf.crt"), "--key",
                                  harness_cert("leaf.key"), which ? "--idle-timeout" : "--handshake-timeout", bad[i],
                                  NULL};
            int out;
            char buf[1024] = "";
            pid_t pid = harness_spawn(argv, NULL, &out);
            harness_read_until(out, "--handshake-timeout MS", 5000, buf, sizeof buf);
            int st = harness_wait(pid, 5000);
            CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 2 && strstr(buf, "--handshake-timeout MS"),
                  "%s '%s': usage (naming the options), exit 2", argv[7], bad[i]);
            if (st < 0)
                harness_kill(pid);
            close(out);
        }
    }
    int port, out;
    pid_t pid = start_server("", "--handshake-timeout -1 --idle-timeout 0", 0, &port, &out);
    CHECK(pid > 0, "-1 and 0 are accepted");
    if (pid > 0) {
        char rest[1024];
        int st = stop_server(pid, out, rest, sizeof rest);
        CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "clean exit");
    }
}

int main(void)
{
    harness_init();
    return harness_run_all();
}
