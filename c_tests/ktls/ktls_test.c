/*
 * ktls_test: kernel TLS on request and sending files (just over 600
 * lines: the report and sendfile share their peers and fixtures).
 *
 * The report: off unless asked for; asked for, off before the handshake,
 * and after it off with the reason this host gives (a kernel without the
 * TLS ULP names /proc/sys/net/ipv4/tcp_available_ulp; one with it gets
 * "not built": corotls' FIFO transport does not hand records to the
 * kernel).  The same on conn and loop.
 *
 * sendfile (the user-space path, the one used here): byte-exact output to
 * real peers, checked by SHA-256 on the peer's side: Python ssl
 * (py_tls_server.py sink) and openssl s_server -quiet (its stdout); conn
 * and loop; an offset and a length inside the file; a small socket buffer
 * so the loop operation goes PENDING and completes in its callback with
 * the count; bad input (length 0, a bad fd, a file shorter than the
 * range) and the busy rule.
 */
#include <fcntl.h>
#include <openssl/evp.h>
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

#define T 20000 /* ms per wait */

static corotls_conf *kconf; /* verifying client asking for kTLS */
static corotls_conf *pconf; /* the same without kTLS */

static corotls_conf *client_conf(int ktls)
{
    corotls_conf_builder *b = NULL;
    corotls_conf *c = NULL;
    if (corotls_conf_builder_new(COROTLS_CLIENT, &b) == COROTLS_OK &&
        corotls_conf_builder_add_ca_file(b, harness_cert("ca.crt")) == COROTLS_OK &&
        corotls_conf_builder_set_ktls(b, ktls) == COROTLS_OK && corotls_conf_builder_build(b, &c) != COROTLS_OK)
        harness_diag("conf: %s", corotls_last_error());
    corotls_conf_builder_free(b);
    return c;
}

/* A file of `size` pattern bytes (unlinked: it goes when its fd closes). */
static int make_file(size_t size)
{
    char path[] = "/tmp/corotls-ktls-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    unlink(path);
    uint8_t *buf = malloc(size);
    util_fill(buf, size, 7);
    ssize_t w = write(fd, buf, size);
    free(buf);
    return w == (ssize_t)size ? fd : -1;
}

/* SHA-256 of file bytes [off, off + len), in hex. */
static void file_sha(int fd, off_t off, size_t len, char hex[65])
{
    uint8_t *buf = malloc(len);
    unsigned char md[32];
    unsigned int mdlen = 0;
    ssize_t r = pread(fd, buf, len, off);
    EVP_Digest(buf, r > 0 ? (size_t)r : 0, md, &mdlen, EVP_sha256(), NULL);
    free(buf);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
}

static int os_has_tls_ulp(void)
{
    char buf[256] = {0};
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    for (char *p = strtok(buf, " \n"); p; p = strtok(NULL, " \n"))
        if (!strcmp(p, "tls"))
            return 1;
    return 0;
}

/* ------------------------------------------------------------ report */

static void check_off_reason(const char *why, const char *where)
{
    if (os_has_tls_ulp())
        CHECK(strstr(why, "not built") != NULL, "%s: the kernel has the TLS ULP; offload is not built: %s", where, why);
    else
        CHECK(strstr(why, "no TLS ULP") != NULL && strstr(why, "tcp_available_ulp") != NULL,
              "%s: this kernel has no TLS ULP, and the reason says so: %s", where, why);
}

TEST(conn_report_says_off_and_why)
{
    struct echo_server es;
    corotls_conf *sconf = util_server_conf("leaf.crt", "leaf.key");
    REQUIRE(sconf && util_echo_start(&es, sconf) == 0, "echo server");
    int fd;
    corotls_conn *c = util_connect(kconf, es.port, "localhost", &fd);
    REQUIRE(c, "connect");
    bool send = true, recv = true;
    char why[1024];
    size_t n = 0;
    CHECK(corotls_conn_ktls(c, &send, &recv, why, sizeof why, &n) == COROTLS_OK && !send && !recv &&
              strstr(why, "handshake") && n == strlen(why),
          "before the handshake: off (%s)", why);
    REQUIRE(util_handshake(c, T) == COROTLS_OK, "handshake");
    CHECK(corotls_conn_ktls(c, &send, &recv, why, sizeof why, &n) == COROTLS_OK && !send && !recv, "after it: off");
    check_off_reason(why, "conn");
    CHECK(corotls_conn_ktls(c, &send, &recv, NULL, 0, &n) == COROTLS_OK && n == strlen(why), "reason skipped: OK");
    CHECK(corotls_conn_ktls(c, NULL, &recv, why, sizeof why, &n) == COROTLS_ERR_ARG, "NULL send pointer");
    CHECK(corotls_conn_ktls(NULL, &send, &recv, why, sizeof why, &n) == COROTLS_ERR_ARG, "NULL conn");
    corotls_conn_free(c);
    close(fd);

    c = util_connect(pconf, es.port, "localhost", &fd);
    REQUIRE(c && util_handshake(c, T) == COROTLS_OK, "a conn that did not ask");
    CHECK(corotls_conn_ktls(c, &send, &recv, why, sizeof why, &n) == COROTLS_OK && !send && !recv &&
              strstr(why, "not requested"),
          "not asked: %s", why);
    corotls_conn_free(c);
    close(fd);
    util_echo_stop(&es);
    corotls_conf_free(sconf);
}

TEST(loop_report_says_off_and_why)
{
    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    corotls_conf *sconf = util_server_conf("leaf.crt", "leaf.key");
    int port, cfd, sfd;
    int lfd = lu_listen(l, sconf, &port);
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, kconf, &cfd, &sfd) == 0, "loop pair");
    bool send = true, recv = true;
    char why[1024];
    CHECK(corotls_loop_ktls(l, cfd, &send, &recv, why, sizeof why, NULL) == COROTLS_OK && !send && !recv,
          "client end: off");
    check_off_reason(why, "loop");
    CHECK(corotls_loop_ktls(l, sfd, &send, &recv, why, sizeof why, NULL) == COROTLS_OK && strstr(why, "not requested"),
          "the server's conf did not ask: %s", why);
    CHECK(corotls_loop_ktls(l, lfd, &send, &recv, why, sizeof why, NULL) == COROTLS_ERR_ARG, "a listener");
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
    corotls_conf_free(sconf);
}

/* ---------------------------------------------------------- sendfile */

/* A python sink; returns its pid, output fd in *out. */
static pid_t sink(int *port, int *out)
{
    const char *args[] = {"sink", NULL};
    pid_t pid;
    return harness_spawn_py_peer(args, port, &pid, out) == 0 ? pid : -1;
}

/* The sink's verdict for the connection that just closed matches. */
static void check_sink(int out, size_t len, const char *hex)
{
    char want[160], buf[4096];
    snprintf(want, sizeof want, "sink bytes=%zu sha256=%s how=close_notify", len, hex);
    CHECK(harness_read_until(out, want, T, buf, sizeof buf) > 0, "python received %zu bytes, SHA-256 %.16s...", len,
          hex);
}

static void conn_sendfile_all(corotls_conn *c, int file, off_t off, size_t len, int *calls)
{
    uint64_t done = 0;
    *calls = 0;
    while (done < len) {
        uint64_t sent = 0;
        corotls_result r = corotls_conn_sendfile(c, file, (uint64_t)off + done, len - done, &sent);
        (*calls)++;
        if (r == COROTLS_OK) {
            done += sent;
            continue;
        }
        if ((r == COROTLS_WANT_WRITE || r == COROTLS_WANT_READ) && util_wait(corotls_conn_fd(c), r, T) == 0)
            continue;
        CHECK(0, "sendfile: %s (%s)", corotls_result_name(r), corotls_conn_error(c));
        return;
    }
}

TEST(conn_sendfile_is_byte_exact_to_python)
{
    size_t size = lu_scale(6 << 20, 1 << 20) + 12345;
    int file = make_file(size);
    REQUIRE(file >= 0, "test file");
    int port, out, fd;
    pid_t pid = sink(&port, &out);
    REQUIRE(pid > 0, "python sink");
    corotls_conn *c = util_connect(kconf, port, "localhost", &fd);
    REQUIRE(c && util_handshake(c, T) == COROTLS_OK, "handshake");
    lu_small_buffers(fd, 32768); /* many partial sends */
    off_t off = 1000;
    size_t len = size - 1000 - 77;
    int calls;
    conn_sendfile_all(c, file, off, len, &calls);
    harness_diag("%zu bytes in %d sendfile calls", len, calls);
    CHECK(lseek(file, 0, SEEK_CUR) == (off_t)size, "the file offset did not move");
    CHECK(corotls_conn_shutdown(c) == COROTLS_OK || util_wait(fd, COROTLS_WANT_WRITE, T) == 0, "close_notify");
    while (corotls_conn_shutdown(c) == COROTLS_WANT_WRITE)
        util_wait(fd, COROTLS_WANT_WRITE, T);
    char hex[65];
    file_sha(file, off, len, hex);
    check_sink(out, len, hex);
    corotls_conn_free(c);
    close(fd);
    close(out);
    close(file);
    harness_kill(pid);
}

/* openssl s_server -quiet writes what it receives to its stdout. */
TEST(conn_sendfile_is_byte_exact_to_openssl_s_server)
{
    size_t len = lu_scale(3 << 20, 512 << 10) + 333;
    int file = make_file(len);
    REQUIRE(file >= 0, "test file");
    const char *args[] = {"-quiet", NULL};
    int port, out, fd;
    pid_t pid;
    REQUIRE(harness_spawn_s_server_io(args, &port, &pid, NULL, &out) == 0, "s_server -quiet");
    corotls_conn *c = util_connect(kconf, port, "localhost", &fd);
    REQUIRE(c && util_handshake(c, T) == COROTLS_OK, "handshake");
    int calls;
    conn_sendfile_all(c, file, 0, len, &calls);
    /* Read exactly len bytes of s_server's output and hash them. */
    uint8_t *got = malloc(len);
    size_t n = 0;
    while (n < len) {
        struct pollfd p = {.fd = out, .events = POLLIN};
        if (poll(&p, 1, T) != 1)
            break;
        ssize_t k = read(out, got + n, len - n);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    unsigned char md[32];
    unsigned int mdlen;
    EVP_Digest(got, n, md, &mdlen, EVP_sha256(), NULL);
    char hex[65], want[65];
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
    file_sha(file, 0, len, want);
    CHECK(n == len && !strcmp(hex, want), "s_server wrote %zu of %zu bytes, SHA-256 %s", n, len,
          !strcmp(hex, want) ? "equal" : "differs");
    free(got);
    corotls_conn_free(c);
    close(fd);
    close(out);
    close(file);
    harness_kill(pid);
}

TEST(loop_sendfile_is_byte_exact_and_calls_back_with_the_count)
{
    size_t size = lu_scale(8 << 20, 1 << 20) + 4321;
    int file = make_file(size);
    REQUIRE(file >= 0, "test file");
    int port, out;
    pid_t pid = sink(&port, &out);
    REQUIRE(pid > 0, "python sink");
    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct lu_done d = {0};
    int fd = -1;
    corotls_result r = corotls_loop_connect(l, "127.0.0.1", ps, kconf, T, lu_cb, &d, &fd);
    if (r == COROTLS_PENDING && lu_wait(l, &d, T))
        r = d.r, fd = d.fd;
    lu_reset(&d);
    REQUIRE(r == COROTLS_OK && lu_handshake(l, fd, T) == COROTLS_OK, "connect + handshake");
    lu_small_buffers(fd, 16384);
    off_t off = 4096;
    size_t len = size - 4096 - 1;
    r = corotls_loop_sendfile(l, fd, file, (uint64_t)off, len, T, lu_cb, &d);
    CHECK(r == COROTLS_PENDING, "a large file with a small socket buffer goes PENDING: %s", corotls_result_name(r));
    CHECK(corotls_loop_send(l, fd, (const uint8_t *)"x", 1, T, lu_cb, &d) == COROTLS_BUSY, "busy meanwhile");
    CHECK(corotls_loop_sendfile(l, fd, file, 0, 10, T, lu_cb, &d) == COROTLS_BUSY, "a second sendfile: BUSY");
    if (r == COROTLS_PENDING) {
        CHECK(lu_wait(l, &d, T) && d.calls == 1 && d.r == COROTLS_OK && d.len == len,
              "the callback: OK, len = %zu (got %zu, %s)", len, d.len, corotls_result_name(d.r));
    }
    lu_reset(&d);
    r = corotls_loop_shutdown(l, fd, T, lu_cb, &d);
    if (r == COROTLS_PENDING && lu_wait(l, &d, T))
        r = d.r;
    lu_reset(&d);
    CHECK(r == COROTLS_OK, "close_notify after it");
    char hex[65];
    file_sha(file, off, len, hex);
    check_sink(out, len, hex);
    /* A small range completes inline. */
    corotls_loop_close(l, fd);
    corotls_loop_free(l);
    close(out);
    close(file);
    harness_kill(pid);
}

TEST(loop_sendfile_small_range_inline_to_openssl)
{
    int file = make_file(5000);
    REQUIRE(file >= 0, "test file");
    const char *args[] = {"-quiet", NULL};
    int port, out;
    pid_t pid;
    REQUIRE(harness_spawn_s_server_io(args, &port, &pid, NULL, &out) == 0, "s_server -quiet");
    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct lu_done d = {0};
    int fd = -1;
    corotls_result r = corotls_loop_connect(l, "127.0.0.1", ps, kconf, T, lu_cb, &d, &fd);
    if (r == COROTLS_PENDING && lu_wait(l, &d, T))
        r = d.r, fd = d.fd;
    lu_reset(&d);
    REQUIRE(r == COROTLS_OK && lu_handshake(l, fd, T) == COROTLS_OK, "connect + handshake");
    r = corotls_loop_sendfile(l, fd, file, 100, 4000, T, lu_cb, &d);
    CHECK(r == COROTLS_OK && d.calls == 0, "4000 bytes: inline OK, no callback (%s)", corotls_result_name(r));
    char got[4000];
    size_t n = 0;
    while (n < sizeof got) {
        struct pollfd p = {.fd = out, .events = POLLIN};
        if (poll(&p, 1, T) != 1)
            break;
        ssize_t k = read(out, got + n, sizeof got - n);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    char want[4000];
    CHECK(pread(file, want, sizeof want, 100) == (ssize_t)sizeof want && n == sizeof got &&
              !memcmp(got, want, sizeof got),
          "s_server got file bytes 100..4099 exactly (%zu)", n);
    corotls_loop_close(l, fd);
    corotls_loop_free(l);
    close(out);
    close(file);
    harness_kill(pid);
}

/* A peer that does not read: the sendfile times out (or is cancelled)
 * with the count of the bytes that will still reach the peer, and they do,
 * exactly the file's prefix. */
static void sendfile_cut_short(int cancel)
{
    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    corotls_conf *sconf = util_server_conf("leaf.crt", "leaf.key");
    int port, cfd, sfd;
    int lfd = lu_listen(l, sconf, &port);
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, kconf, &cfd, &sfd) == 0, "loop pair");
    lu_small_buffers(cfd, 16384);
    lu_small_buffers(sfd, 16384);
    size_t size = 4 << 20;
    int file = make_file(size);
    struct lu_done d = {0};
    corotls_result r = corotls_loop_sendfile(l, cfd, file, 0, size, cancel ? -1 : 300, lu_cb, &d);
    REQUIRE(r == COROTLS_PENDING, "4 MiB into small buffers nobody reads: PENDING");
    if (cancel) {
        lu_spin(l, 100);
        CHECK(corotls_loop_cancel(l, cfd) == COROTLS_OK, "cancel");
    }
    CHECK(lu_wait(l, &d, T) && d.calls == 1, "one callback");
    corotls_result want = cancel ? COROTLS_ERR_CANCELLED : COROTLS_TIMEOUT;
    CHECK(d.r == want && d.len > 0 && d.len < size, "%s with %zu of %zu bytes committed", corotls_result_name(d.r),
          d.len, size);
    size_t committed = d.len;
    lu_reset(&d);
    uint8_t *got = malloc(committed), *want_bytes = malloc(committed);
    CHECK(lu_recv_n(l, sfd, got, committed, T) == COROTLS_OK, "the peer reads all %zu committed bytes", committed);
    CHECK(pread(file, want_bytes, committed, 0) == (ssize_t)committed && !memcmp(got, want_bytes, committed),
          "exactly the file's prefix");
    CHECK(lu_send(l, cfd, "after", 5, T, NULL) == COROTLS_OK, "the stream goes on");
    char tail[5];
    CHECK(lu_recv_n(l, sfd, tail, 5, T) == COROTLS_OK && !memcmp(tail, "after", 5), "in order");
    free(got);
    free(want_bytes);
    close(file);
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
    corotls_conf_free(sconf);
}

TEST(loop_sendfile_timeout_commits_a_prefix_and_loses_nothing)
{
    sendfile_cut_short(0);
}

TEST(loop_sendfile_cancel_commits_a_prefix_and_loses_nothing)
{
    sendfile_cut_short(1);
}

TEST(sendfile_bad_input)
{
    struct echo_server es;
    corotls_conf *sconf = util_server_conf("leaf.crt", "leaf.key");
    REQUIRE(sconf && util_echo_start(&es, sconf) == 0, "echo server");
    int fd;
    corotls_conn *c = util_connect(kconf, es.port, "localhost", &fd);
    REQUIRE(c && util_handshake(c, T) == COROTLS_OK, "handshake");
    int file = make_file(1000);
    uint64_t sent = 9;
    CHECK(corotls_conn_sendfile(c, file, 0, 0, &sent) == COROTLS_ERR_ARG && sent == 0, "length 0");
    CHECK(corotls_conn_sendfile(c, file, 0, 10, NULL) == COROTLS_ERR_ARG, "NULL sent pointer");
    CHECK(corotls_conn_sendfile(NULL, file, 0, 10, &sent) == COROTLS_ERR_ARG, "NULL conn");
    corotls_result r = corotls_conn_sendfile(c, 987654, 0, 10, &sent);
    CHECK(r == COROTLS_ERR_ARG && corotls_conn_reason(c, NULL) == COROTLS_REASON_FILE, "a bad file fd: FILE (%s)",
          corotls_conn_error(c));
    r = corotls_conn_sendfile(c, file, 900, 200, &sent);
    CHECK(r == COROTLS_OK && sent == 100, "a range past the end: the 100 bytes there go first (%s, %llu)",
          corotls_result_name(r), (unsigned long long)sent);
    r = corotls_conn_sendfile(c, file, 1000, 100, &sent);
    CHECK(r == COROTLS_ERR_ARG && corotls_conn_reason(c, NULL) == COROTLS_REASON_FILE && sent == 0,
          "then the short file is an error: %s", corotls_conn_error(c));
    uint8_t echo[100];
    CHECK(util_read_n(c, echo, 100, T) == COROTLS_OK, "the stream is intact: the 100 bytes echo back");
    uint8_t want[100];
    CHECK(pread(file, want, 100, 900) == 100 && !memcmp(echo, want, 100), "byte for byte");
    corotls_conn_free(c);
    close(fd);

    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, cfd, sfd;
    int lfd = lu_listen(l, sconf, &port);
    REQUIRE(lfd >= 0 && lu_pair_hs(l, lfd, port, kconf, &cfd, &sfd) == 0, "loop pair");
    struct lu_done d = {0};
    CHECK(corotls_loop_sendfile(l, cfd, file, 0, 0, T, lu_cb, &d) == COROTLS_ERR_ARG, "loop: length 0");
    CHECK(corotls_loop_sendfile(l, cfd, -1, 0, 10, T, lu_cb, &d) == COROTLS_ERR_ARG, "loop: fd -1");
    CHECK(corotls_loop_sendfile(l, cfd, file, 0, 10, T, NULL, &d) == COROTLS_ERR_ARG, "loop: no callback");
    CHECK(corotls_loop_sendfile(l, lfd, file, 0, 10, T, lu_cb, &d) == COROTLS_ERR_ARG, "loop: a listener");
    CHECK(corotls_loop_sendfile(l, cfd, file, 0, 10, -2, lu_cb, &d) == COROTLS_ERR_ARG, "loop: timeout -2");
    r = corotls_loop_sendfile(l, cfd, file, 990, 20, T, lu_cb, &d);
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_FILE, "loop: short file: FILE (%s)",
          corotls_last_error());
    char got[10];
    CHECK(lu_recv_n(l, sfd, got, 10, T) == COROTLS_OK && !memcmp(got, want + 90, 10),
          "the 10 bytes before the end of the file reached the peer");
    CHECK(d.calls == 0, "no callback for inline results");
    corotls_loop_close(l, cfd);
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
    close(file);
    util_echo_stop(&es);
    corotls_conf_free(sconf);
}

/* Files sendfile cannot read (a pipe, a socket, a directory, a closed fd,
 * a write-only fd), an offset that is a negative number cast, a range
 * beyond the end, the call before the handshake and after close: each a
 * clear error that sends nothing, and the stream stays usable. */
TEST(sendfile_bad_files_and_states)
{
    struct echo_server es;
    corotls_conf *sconf = util_server_conf("leaf.crt", "leaf.key");
    REQUIRE(sconf && util_echo_start(&es, sconf) == 0, "echo server");
    int fd;
    corotls_conn *c = util_connect(kconf, es.port, "localhost", &fd);
    REQUIRE(c, "connect (no handshake yet)");
    int file = make_file(1000);
    REQUIRE(file >= 0, "file");
    uint64_t sent = 9;
    int calls = 0;
    conn_sendfile_all(c, file, 100, 50, &calls);
    CHECK(corotls_session_handshake_done(corotls_conn_session(c)), "sendfile before the handshake drives it (%d calls)", calls);
    uint8_t echo[64], want[64];
    CHECK(util_read_n(c, echo, 50, T) == COROTLS_OK && pread(file, want, 50, 100) == 50 && !memcmp(echo, want, 50),
          "and the 50 bytes echo back byte for byte");

    int pipefd[2], sp[2];
    REQUIRE(pipe(pipefd) == 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "a pipe and a socketpair");
    REQUIRE(write(pipefd[1], "abcdef", 6) == 6 && write(sp[1], "abcdef", 6) == 6, "with bytes in them");
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY);
    int wronly = open("/dev/null", O_WRONLY);
    int closed = dup(file);
    close(closed);
    struct {
        const char *what;
        int fd;
    } bad[] = {{"a pipe", pipefd[0]}, {"a socket", sp[0]}, {"a directory", dir}, {"a closed fd", closed},
               {"a write-only fd", wronly}, {"fd -1", -1}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sent = 9;
        corotls_result r = corotls_conn_sendfile(c, bad[i].fd, 0, 6, &sent);
        int64_t errno_detail = 0;
        corotls_reason why = corotls_conn_reason(c, &errno_detail);
        CHECK(r == COROTLS_ERR_ARG && why == COROTLS_REASON_FILE && sent == 0 && errno_detail > 0,
              "conn: %s: ERR_ARG, FILE, errno %lld, nothing sent (%s)", bad[i].what, (long long)errno_detail,
              corotls_conn_error(c));
    }
    sent = 9;
    corotls_result r = corotls_conn_sendfile(c, file, (uint64_t)-1, 10, &sent);
    CHECK(r == COROTLS_ERR_ARG && corotls_conn_reason(c, NULL) == COROTLS_REASON_BAD_ARGUMENT && sent == 0,
          "conn: offset -1 (cast): ERR_ARG, BAD_ARGUMENT (%s)", corotls_conn_error(c));
    r = corotls_conn_sendfile(c, file, 5000, 10, &sent);
    CHECK(r == COROTLS_ERR_ARG && corotls_conn_reason(c, NULL) == COROTLS_REASON_FILE && sent == 0,
          "conn: offset 5000 of a 1000-byte file: ERR_ARG, FILE (%s)", corotls_conn_error(c));
    CHECK(util_write_all(c, "still", 5, T) == COROTLS_OK && util_read_n(c, echo, 5, T) == COROTLS_OK &&
              !memcmp(echo, "still", 5),
          "conn: after every refusal the stream still echoes");
    bool ks = true, kr = true;
    char small[8];
    size_t wl = 0;
    r = corotls_conn_ktls(c, &ks, &kr, small, sizeof small, &wl);
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_LIMIT && strlen(small) == 7 && wl > 7 &&
              !ks && !kr,
          "conn_ktls, an 8-byte reason buffer: ERR_ARG, LIMIT, truncated, full length %zu", wl);
    r = corotls_conn_ktls(c, &ks, &kr, small, (size_t)-1, &wl);
    CHECK(r == COROTLS_ERR_ARG && says("negative length"), "conn_ktls, a negative cap: ERR_ARG (%s)",
          corotls_last_error());
    CHECK(corotls_conn_ktls(c, &ks, &kr, NULL, 4, &wl) == COROTLS_ERR_ARG, "conn_ktls, NULL buffer with cap 4: ERR_ARG");
    r = corotls_conn_close(c);
    CHECK(r == COROTLS_OK || r == COROTLS_WANT_READ, "conn_close: %s", corotls_result_name(r));
    r = corotls_conn_sendfile(c, file, 0, 10, &sent);
    CHECK(r == COROTLS_ERR_ARG && corotls_conn_reason(c, NULL) == COROTLS_REASON_WRONG_STATE && sent == 0,
          "conn: sendfile after close: ERR_ARG, WRONG_STATE (%s: %s)", corotls_result_name(r), corotls_conn_error(c));
    corotls_conn_free(c);
    close(fd);

    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, cfd, sfd;
    int lfd = lu_listen(l, sconf, &port);
    REQUIRE(lfd >= 0 && lu_pair(l, lfd, port, kconf, &cfd, &sfd) == 0, "loop pair, no handshake yet");
    struct lu_done d = {0};
    r = corotls_loop_sendfile(l, cfd, file, 200, 40, T, lu_cb, &d);
    char got[64];
    CHECK((r == COROTLS_OK || r == COROTLS_PENDING) && lu_recv_n(l, sfd, got, 40, T) == COROTLS_OK &&
              pread(file, want, 40, 200) == 40 && !memcmp(got, want, 40),
          "loop: sendfile before the handshake drives it and the 40 bytes arrive (%s)", corotls_result_name(r));
    CHECK(r == COROTLS_OK || (lu_wait(l, &d, T) && d.calls == 1 && d.r == COROTLS_OK && d.len == 40),
          "loop: its callback once, OK, 40");
    lu_reset(&d);
    /* The loop's sockets may have taken the closed number: close another. */
    bad[3].fd = dup(file);
    close(bad[3].fd);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        /* fd -1 is refused before any read (BAD_ARGUMENT), the others by pread. */
        corotls_reason want = bad[i].fd < 0 ? COROTLS_REASON_BAD_ARGUMENT : COROTLS_REASON_FILE;
        r = corotls_loop_sendfile(l, cfd, bad[i].fd, 0, 6, T, lu_cb, &d);
        CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == want, "loop: %s: ERR_ARG, %s (%s)", bad[i].what,
              corotls_reason_name(want), corotls_last_error());
    }
    r = corotls_loop_sendfile(l, cfd, file, (uint64_t)-1, 10, T, lu_cb, &d);
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_BAD_ARGUMENT,
          "loop: offset -1 (cast): ERR_ARG, BAD_ARGUMENT (%s)", corotls_last_error());
    r = corotls_loop_sendfile(l, cfd, file, 5000, 10, T, lu_cb, &d);
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_FILE,
          "loop: offset beyond the end: ERR_ARG, FILE (%s)", corotls_last_error());
    CHECK(corotls_loop_sendfile(l, 9999, file, 0, 10, T, lu_cb, &d) == COROTLS_ERR_ARG, "loop: an fd not open");
    char why[256];
    CHECK(corotls_loop_ktls(l, 9999, &ks, &kr, why, sizeof why, NULL) == COROTLS_ERR_ARG, "loop_ktls: an fd not open");
    CHECK(corotls_loop_ktls(l, cfd, NULL, &kr, why, sizeof why, NULL) == COROTLS_ERR_ARG, "loop_ktls: NULL send");
    CHECK(corotls_loop_ktls(l, cfd, &ks, &kr, why, (size_t)-1, NULL) == COROTLS_ERR_ARG, "loop_ktls: a negative cap");
    CHECK(corotls_loop_ktls(NULL, cfd, &ks, &kr, why, sizeof why, NULL) == COROTLS_ERR_ARG, "loop_ktls: NULL loop");
    CHECK(d.calls == 0, "loop: no callback for any refusal");
    CHECK(lu_send(l, cfd, "still", 5, T, NULL) == COROTLS_OK && lu_recv_n(l, sfd, got, 5, T) == COROTLS_OK &&
              !memcmp(got, "still", 5),
          "loop: the connection still carries data");
    corotls_loop_close(l, cfd);
    CHECK(corotls_loop_sendfile(l, cfd, file, 0, 10, T, lu_cb, &d) == COROTLS_ERR_ARG && d.calls == 0,
          "loop: a closed connection: ERR_ARG");
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
    close(pipefd[0]);
    close(pipefd[1]);
    close(sp[0]);
    close(sp[1]);
    close(dir);
    close(wronly);
    close(file);
    util_echo_stop(&es);
    corotls_conf_free(sconf);
}

int main(void)
{
    kconf = client_conf(1);
    pconf = client_conf(0);
    int rc = harness_run_all();
    corotls_conf_free(kconf);
    corotls_conf_free(pconf);
    return rc;
}
