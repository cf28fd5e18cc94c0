/*
 * close_test: how TLS streams end, on every path (session, conn, loop),
 * against real peers.  CLOSED means the peer's close_notify came; EOF means
 * the transport ended without it; the data decrypted before either comes
 * first, and the end is reported on the next call (and every call after).
 * Over 600 lines on purpose: one concern, the same peers and helpers for
 * every path.
 *
 * Peers: Python `ssl` (py_tls_server.py echo, `--then close_notify` sends
 * its data and then close_notify through unwrap(); `--then eof` closes TCP
 * without it; the client mode unwraps after its reply), `openssl s_server
 * -www` (answers a request, then close_notify), `openssl s_server` told
 * `q` on stdin (closes the socket without close_notify), `openssl
 * s_client` (close_notify on stdin EOF; none when killed).  Also the
 * shutdown states, corotls_conn_close (two-way) and corotls_loop_shutdown
 * (half-close: recv goes on).
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corotls.h"
#include "harness.h"
#include "loop_util.h"
#include "tls_util.h"

#define T 10000 /* ms per wait */
#define GET "GET / HTTP/1.0\r\n\r\n"

static corotls_conf *vconf; /* client verifying against ca.crt */
static corotls_conf *sconf; /* server with leaf.crt */

/* ------------------------------------------------------------- peers */

/* py_tls_server.py echo [--then how]; its output fd in *out. */
static pid_t py_echo(const char *then, int *port, int *out)
{
    const char *args[] = {"echo", then ? "--then" : NULL, then, NULL};
    pid_t pid;
    if (harness_spawn_py_peer(args, port, &pid, out) != 0)
        return -1;
    return pid;
}

/* openssl s_server -www (stdin kept by the harness), or plain with its
 * stdin in *in (lines typed there go to the client; "q" closes). */
static pid_t s_server(int www, int *port, int *in)
{
    const char *www_args[] = {"-www", NULL};
    pid_t pid;
    if (harness_spawn_s_server_io(www ? www_args : NULL, port, &pid, www ? NULL : in, NULL) != 0)
        return -1;
    return pid;
}

/* ------------------------------------------------------------- conn */

/* Read until a result other than OK; the bytes go to got (NUL-terminated). */
static corotls_result conn_read_all(corotls_conn *c, char *got, size_t cap, size_t *n)
{
    *n = 0;
    for (;;) {
        size_t k = 0;
        corotls_result r = corotls_conn_read(c, (uint8_t *)got + *n, cap - 1 - *n, &k);
        if (r == COROTLS_OK) {
            *n += k;
            continue;
        }
        if ((r == COROTLS_WANT_READ || r == COROTLS_WANT_WRITE) && util_wait(corotls_conn_fd(c), r, T) == 0)
            continue;
        got[*n] = 0;
        return r;
    }
}

/* corotls_conn_close until it stops asking to wait; every wait must be
 * the one the state names (WANT_READ: ours is out, the peer's is not). */
static corotls_result conn_close_all(corotls_conn *c, int *waits_ok)
{
    *waits_ok = 1;
    for (;;) {
        corotls_result r = corotls_conn_close(c);
        int st = corotls_conn_shutdown_state(c);
        if (r == COROTLS_WANT_READ && st != COROTLS_SHUTDOWN_SENT)
            *waits_ok = 0;
        if ((r == COROTLS_WANT_READ || r == COROTLS_WANT_WRITE) && util_wait(corotls_conn_fd(c), r, T) == 0)
            continue;
        return r;
    }
}

static void conn_client_end(const char *then, corotls_result want)
{
    int port, out, fd;
    pid_t pid = py_echo(then, &port, &out);
    REQUIRE(pid > 0, "python echo --then %s", then);
    corotls_conn *c = util_connect(vconf, port, "localhost", &fd);
    REQUIRE(c && util_handshake(c, T) == COROTLS_OK, "handshake with python");
    CHECK(util_write_all(c, "hello", 5, T) == COROTLS_OK, "write");
    char got[64];
    size_t n;
    corotls_result r = conn_read_all(c, got, sizeof got, &n);
    CHECK(n == 5 && !memcmp(got, "hello", 5), "the data before the end came first (%zu bytes)", n);
    CHECK(r == want, "then %s (got %s: %s)", corotls_result_name(want), corotls_result_name(r), corotls_conn_error(c));
    size_t k;
    CHECK(corotls_conn_read(c, (uint8_t *)got, sizeof got, &k) == want, "and again on the next call");
    int st = corotls_conn_shutdown_state(c);
    CHECK(st == (want == COROTLS_CLOSED ? COROTLS_SHUTDOWN_RECEIVED : COROTLS_SHUTDOWN_NONE), "state %d", st);
    if (want == COROTLS_CLOSED) {
        int waits_ok;
        CHECK(conn_close_all(c, &waits_ok) == COROTLS_OK, "conn_close answers with ours: OK at once");
        CHECK(corotls_conn_shutdown_state(c) == COROTLS_SHUTDOWN_BOTH, "state BOTH");
        char buf[1024];
        CHECK(harness_read_until(out, "closed how=server bytes=5", T, buf, sizeof buf) > 0,
              "python's unwrap() got our close_notify");
    } else {
        int waits_ok;
        corotls_result cr = conn_close_all(c, &waits_ok);
        CHECK(cr == COROTLS_EOF || cr == COROTLS_ERR_IO, "conn_close after EOF: %s, not OK", corotls_result_name(cr));
    }
    corotls_conn_free(c);
    close(fd);
    close(out);
    harness_kill(pid);
}

TEST(conn_client_python_close_notify_gives_data_then_closed)
{
    conn_client_end("close_notify", COROTLS_CLOSED);
}

TEST(conn_client_python_tcp_close_gives_data_then_eof)
{
    conn_client_end("eof", COROTLS_EOF);
}

TEST(conn_client_s_server_www_gives_data_then_closed)
{
    int port, fd;
    pid_t pid = s_server(1, &port, NULL);
    REQUIRE(pid > 0, "s_server -www");
    corotls_conn *c = util_connect(vconf, port, "localhost", &fd);
    REQUIRE(c && util_handshake(c, T) == COROTLS_OK, "handshake");
    CHECK(util_write_all(c, GET, strlen(GET), T) == COROTLS_OK, "request");
    static char got[65536];
    size_t n;
    corotls_result r = conn_read_all(c, got, sizeof got, &n);
    CHECK(n > 100 && !strncmp(got, "HTTP/1.0 200 ok", 15), "the page came first (%zu bytes)", n);
    CHECK(r == COROTLS_CLOSED, "then CLOSED: %s", corotls_result_name(r));
    corotls_conn_free(c);
    close(fd);
    harness_kill(pid);
}

TEST(conn_client_s_server_q_gives_data_then_eof)
{
    int port, fd, in;
    pid_t pid = s_server(0, &port, &in);
    REQUIRE(pid > 0, "s_server");
    corotls_conn *c = util_connect(vconf, port, "localhost", &fd);
    REQUIRE(c && util_handshake(c, T) == COROTLS_OK, "handshake");
    CHECK(write(in, "line\n", 5) == 5, "s_server sends a line");
    char got[64];
    CHECK(util_read_n(c, got, 5, T) == COROTLS_OK && !memcmp(got, "line\n", 5), "it came");
    CHECK(write(in, "q\n", 2) == 2, "s_server told to quit (no close_notify)");
    size_t n;
    corotls_result r = conn_read_all(c, got, sizeof got, &n);
    CHECK(r == COROTLS_EOF && n == 0, "EOF: %s", corotls_result_name(r));
    int64_t d;
    corotls_conn_reason(c, &d);
    corotls_conn_free(c);
    close(fd);
    close(in);
    harness_kill(pid);
}

/* Half-close: our close_notify goes out, the peer's data still comes. */
TEST(conn_half_close_keeps_reading_until_the_peers_close_notify)
{
    int port, out, fd;
    pid_t pid = py_echo(NULL, &port, &out);
    REQUIRE(pid > 0, "python echo");
    corotls_conn *c = util_connect(vconf, port, "localhost", &fd);
    REQUIRE(c && util_handshake(c, T) == COROTLS_OK, "handshake");
    CHECK(util_write_all(c, "abc", 3, T) == COROTLS_OK, "write");
    CHECK(corotls_conn_shutdown(c) == COROTLS_OK, "shutdown: close_notify on the wire");
    CHECK(corotls_conn_shutdown_state(c) == COROTLS_SHUTDOWN_SENT, "state SENT");
    size_t k;
    CHECK(corotls_conn_write(c, (const uint8_t *)"x", 1, &k) == COROTLS_ERR_ARG, "no write after it");
    char got[64];
    size_t n;
    corotls_result r = conn_read_all(c, got, sizeof got, &n);
    CHECK(n == 3 && !memcmp(got, "abc", 3), "the echo sent after our close_notify came (%zu)", n);
    CHECK(r == COROTLS_CLOSED, "then CLOSED: %s", corotls_result_name(r));
    CHECK(corotls_conn_shutdown_state(c) == COROTLS_SHUTDOWN_BOTH, "state BOTH");
    char buf[1024];
    CHECK(harness_read_until(out, "closed how=close_notify bytes=3", T, buf, sizeof buf) > 0,
          "python saw our close_notify and unwrapped");
    corotls_conn_free(c);
    close(fd);
    close(out);
    harness_kill(pid);
}

/* Two conns of ours: the waits of a non-blocking close are deterministic. */
TEST(conn_close_reports_what_it_waits_for)
{
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    corotls_conn *c = NULL, *s = NULL;
    REQUIRE(corotls_conn_new(vconf, sv[0], &c) == COROTLS_OK && corotls_conn_new(sconf, sv[1], &s) == COROTLS_OK,
            "conns");
    corotls_conn_set_sni(c, "localhost");
    corotls_result rc = COROTLS_WANT_READ, rs = COROTLS_WANT_READ;
    for (int i = 0; i < 50 && (rc != COROTLS_OK || rs != COROTLS_OK); i++) {
        rc = corotls_conn_handshake(c);
        rs = corotls_conn_handshake(s);
    }
    REQUIRE(rc == COROTLS_OK && rs == COROTLS_OK, "handshakes");
    CHECK(corotls_conn_close(c) == COROTLS_WANT_READ, "client close: WANT_READ (the server has not answered)");
    CHECK(corotls_conn_shutdown_state(c) == COROTLS_SHUTDOWN_SENT, "state SENT: waiting for RECEIVED");
    CHECK(corotls_conn_close(c) == COROTLS_WANT_READ, "still, when called again");
    uint8_t b[16];
    size_t n;
    CHECK(corotls_conn_read(s, b, sizeof b, &n) == COROTLS_CLOSED, "the server reads CLOSED");
    CHECK(corotls_conn_shutdown_state(s) == COROTLS_SHUTDOWN_RECEIVED, "server state RECEIVED");
    CHECK(corotls_conn_close(s) == COROTLS_OK && corotls_conn_shutdown_state(s) == COROTLS_SHUTDOWN_BOTH,
          "server close: OK at once, BOTH");
    CHECK(corotls_conn_close(c) == COROTLS_OK && corotls_conn_shutdown_state(c) == COROTLS_SHUTDOWN_BOTH,
          "client close: OK, BOTH");
    CHECK(corotls_conn_close(c) == COROTLS_OK, "a second close: OK");
    corotls_conn_free(c);
    corotls_conn_free(s);
    close(sv[0]);
    close(sv[1]);
    CHECK(corotls_conn_close(NULL) == COROTLS_ERR_ARG && corotls_conn_shutdown_state(NULL) == -1, "NULL conn");
}

/* Our conn server; s_client sends a line and then closes (stdin EOF:
 * close_notify) or is killed (no close_notify). */
static void conn_server_vs_s_client(int kill_it)
{
    int port, in, out, fd;
    int lfd = harness_listen_loopback(&port);
    REQUIRE(lfd >= 0, "listener");
    const char *args[] = {"-servername", "localhost", NULL};
    pid_t pid = harness_spawn_s_client(port, args, &in, &out);
    REQUIRE(pid > 0, "s_client");
    fd = accept(lfd, NULL, NULL);
    corotls_conn *c = NULL;
    REQUIRE(fd >= 0 && corotls_conn_new(sconf, fd, &c) == COROTLS_OK, "accepted");
    CHECK(util_handshake(c, T) == COROTLS_OK, "handshake");
    CHECK(write(in, "hi\n", 3) == 3, "s_client sends a line");
    char got[64];
    CHECK(util_read_n(c, got, 3, T) == COROTLS_OK && !memcmp(got, "hi\n", 3), "it came");
    if (kill_it) {
        /* Once s_client has read all we sent (tickets too), its death is a
         * FIN, not a reset for unread data. */
        char buf[8192];
        CHECK(util_write_all(c, "ok-to-die\n", 10, T) == COROTLS_OK &&
                  harness_read_until(out, "ok-to-die", T, buf, sizeof buf) > 0,
              "s_client read everything");
        kill(pid, SIGKILL);
        harness_wait(pid, T);
    } else {
        close(in);
        in = -1;
    }
    size_t n;
    corotls_result r = conn_read_all(c, got, sizeof got, &n);
    corotls_result want = kill_it ? COROTLS_EOF : COROTLS_CLOSED;
    CHECK(r == want, "%s: %s", kill_it ? "killed" : "stdin EOF", corotls_result_name(r));
    corotls_conn_free(c);
    close(fd);
    close(lfd);
    if (in >= 0)
        close(in);
    close(out);
    harness_kill(pid);
}

TEST(conn_server_s_client_close_notify_is_closed)
{
    conn_server_vs_s_client(0);
}

TEST(conn_server_s_client_killed_is_eof)
{
    conn_server_vs_s_client(1);
}

TEST(conn_server_python_client_unwrap_is_closed)
{
    int port, fd, out;
    int lfd = harness_listen_loopback(&port);
    REQUIRE(lfd >= 0, "listener");
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    const char *argv[] = {harness_python(), harness_py_peer_script(), "client", "--port", ps, "--sni", "localhost",
                          "--message", "ping", NULL};
    pid_t pid = harness_spawn(argv, NULL, &out);
    REQUIRE(pid > 0, "python client");
    fd = accept(lfd, NULL, NULL);
    corotls_conn *c = NULL;
    REQUIRE(fd >= 0 && corotls_conn_new(sconf, fd, &c) == COROTLS_OK, "accepted");
    char got[64];
    CHECK(util_read_n(c, got, 4, T) == COROTLS_OK && util_write_all(c, got, 4, T) == COROTLS_OK, "echo");
    size_t n;
    CHECK(conn_read_all(c, got, sizeof got, &n) == COROTLS_CLOSED, "python's unwrap(): CLOSED");
    int waits_ok;
    CHECK(conn_close_all(c, &waits_ok) == COROTLS_OK, "our close_notify answers it");
    int st = harness_wait(pid, T);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "python's unwrap() returned (exit 0)");
    corotls_conn_free(c);
    close(fd);
    close(lfd);
    close(out);
}

/* ---------------------------------------------------------- session */

/* Move ciphertext between session s and the blocking socket fd: send what
 * the session has, then give it what arrives (EOF: feed_eof). */
static int pump(corotls_session *s, int fd, int wait_ms)
{
    uint8_t buf[16384];
    size_t n;
    while ((n = corotls_session_out_read(s, buf, sizeof buf)) > 0)
        if (write(fd, buf, n) != (ssize_t)n)
            return -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, wait_ms) != 1)
        return 0;
    ssize_t k = read(fd, buf, sizeof buf);
    if (k <= 0)
        return corotls_session_feed_eof(s) == COROTLS_OK ? 1 : -1;
    return corotls_session_feed(s, buf, (size_t)k, NULL) == COROTLS_OK ? 1 : -1;
}

static corotls_session *session_client(int port, int *fd)
{
    corotls_session *s = NULL;
    *fd = harness_connect_loopback(port);
    if (*fd < 0 || corotls_session_new(vconf, &s) != COROTLS_OK || corotls_session_set_sni(s, "localhost") != COROTLS_OK)
        return s;
    corotls_result r;
    long long end = harness_now_ms() + T;
    while ((r = corotls_session_handshake(s)) == COROTLS_WANT_READ && harness_now_ms() < end)
        pump(s, *fd, 100);
    pump(s, *fd, 0);
    CHECK(r == COROTLS_OK, "session handshake: %s", corotls_session_error(s));
    return s;
}

static corotls_result session_read_all(corotls_session *s, int fd, char *got, size_t cap, size_t *n)
{
    *n = 0;
    long long end = harness_now_ms() + T;
    for (;;) {
        size_t k = 0;
        corotls_result r = corotls_session_read(s, (uint8_t *)got + *n, cap - 1 - *n, &k);
        if (r == COROTLS_OK) {
            *n += k;
            continue;
        }
        if (r == COROTLS_WANT_READ && harness_now_ms() < end && pump(s, fd, 100) >= 0)
            continue;
        got[*n] = 0;
        return r;
    }
}

static void session_vs_python(const char *then, corotls_result want)
{
    int port, out, fd;
    pid_t pid = py_echo(then, &port, &out);
    REQUIRE(pid > 0, "python echo --then %s", then);
    corotls_session *s = session_client(port, &fd);
    REQUIRE(s, "session");
    CHECK(corotls_session_write(s, (const uint8_t *)"hello", 5) == COROTLS_OK, "write");
    char got[64];
    size_t n;
    corotls_result r = session_read_all(s, fd, got, sizeof got, &n);
    CHECK(n == 5 && !memcmp(got, "hello", 5), "data first (%zu)", n);
    CHECK(r == want, "then %s: %s", corotls_result_name(want), corotls_result_name(r));
    size_t k;
    CHECK(corotls_session_read(s, (uint8_t *)got, sizeof got, &k) == want, "and on the next call");
    CHECK(corotls_session_peer_closed(s) == (want == COROTLS_CLOSED), "peer_closed");
    int st = corotls_session_shutdown_state(s);
    CHECK(st == (want == COROTLS_CLOSED ? COROTLS_SHUTDOWN_RECEIVED : COROTLS_SHUTDOWN_NONE), "state %d", st);
    if (want == COROTLS_CLOSED) {
        CHECK(corotls_session_shutdown(s) == COROTLS_OK && corotls_session_shutdown_state(s) == COROTLS_SHUTDOWN_BOTH,
              "our close_notify queued: BOTH");
        pump(s, fd, 0);
        char buf[1024];
        CHECK(harness_read_until(out, "closed how=server bytes=5", T, buf, sizeof buf) > 0,
              "python's unwrap() got it");
    }
    corotls_session_free(s);
    close(fd);
    close(out);
    harness_kill(pid);
}

TEST(session_python_close_notify_is_closed)
{
    session_vs_python("close_notify", COROTLS_CLOSED);
}

TEST(session_python_tcp_close_is_eof)
{
    session_vs_python("eof", COROTLS_EOF);
}

static void session_vs_s_server(int www)
{
    int port, fd, in = -1;
    pid_t pid = s_server(www, &port, &in);
    REQUIRE(pid > 0, "s_server");
    corotls_session *s = session_client(port, &fd);
    REQUIRE(s, "session");
    if (www) {
        CHECK(corotls_session_write(s, (const uint8_t *)GET, strlen(GET)) == COROTLS_OK, "request");
    } else {
        CHECK(write(in, "line\n", 5) == 5, "a line from s_server");
        char got[8];
        long long end = harness_now_ms() + T;
        corotls_result r;
        while ((r = corotls_session_read_exact(s, (uint8_t *)got, 5)) == COROTLS_WANT_READ && harness_now_ms() < end)
            pump(s, fd, 100);
        CHECK(r == COROTLS_OK && !memcmp(got, "line\n", 5), "it came");
        CHECK(write(in, "q\n", 2) == 2, "then q: the socket closes without close_notify");
    }
    static char got[65536];
    size_t n;
    corotls_result r = session_read_all(s, fd, got, sizeof got, &n);
    if (www)
        CHECK(n > 100 && r == COROTLS_CLOSED, "-www: the page (%zu bytes), then CLOSED: %s", n, corotls_result_name(r));
    else
        CHECK(n == 0 && r == COROTLS_EOF, "q: EOF: %s", corotls_result_name(r));
    corotls_session_free(s);
    close(fd);
    if (in >= 0)
        close(in);
    harness_kill(pid);
}

TEST(session_s_server_www_is_closed)
{
    session_vs_s_server(1);
}

TEST(session_s_server_q_is_eof)
{
    session_vs_s_server(0);
}

/* Our session as a server over an accepted socket; s_client sends a line,
 * then closes (stdin EOF: close_notify) or is killed (none). */
static void session_server_vs_s_client(int kill_it)
{
    int port, in, out;
    int lfd = harness_listen_loopback(&port);
    REQUIRE(lfd >= 0, "listener");
    const char *args[] = {"-servername", "localhost", NULL};
    pid_t pid = harness_spawn_s_client(port, args, &in, &out);
    REQUIRE(pid > 0, "s_client");
    int fd = accept(lfd, NULL, NULL);
    corotls_session *s = NULL;
    REQUIRE(fd >= 0 && corotls_session_new(sconf, &s) == COROTLS_OK, "accepted");
    corotls_result r;
    long long end = harness_now_ms() + T;
    while ((r = corotls_session_handshake(s)) == COROTLS_WANT_READ && harness_now_ms() < end)
        pump(s, fd, 100);
    pump(s, fd, 0);
    CHECK(r == COROTLS_OK, "session server handshake: %s", corotls_session_error(s));
    CHECK(write(in, "hi\n", 3) == 3, "s_client sends a line");
    char got[64];
    end = harness_now_ms() + T;
    while ((r = corotls_session_read_exact(s, (uint8_t *)got, 3)) == COROTLS_WANT_READ && harness_now_ms() < end)
        pump(s, fd, 100);
    CHECK(r == COROTLS_OK && !memcmp(got, "hi\n", 3), "it came");
    if (kill_it) {
        /* Its death must be a FIN: let it read what we sent (tickets). */
        char buf[8192];
        CHECK(corotls_session_write(s, (const uint8_t *)"ok-to-die\n", 10) == COROTLS_OK && pump(s, fd, 0) >= 0 &&
                  harness_read_until(out, "ok-to-die", T, buf, sizeof buf) > 0,
              "s_client read everything");
        kill(pid, SIGKILL);
        harness_wait(pid, T);
    } else {
        close(in);
        in = -1;
    }
    size_t n;
    r = session_read_all(s, fd, got, sizeof got, &n);
    CHECK(r == (kill_it ? COROTLS_EOF : COROTLS_CLOSED), "%s: %s", kill_it ? "killed" : "stdin EOF",
          corotls_result_name(r));
    corotls_session_free(s);
    close(fd);
    close(lfd);
    if (in >= 0)
        close(in);
    close(out);
    harness_kill(pid);
}

TEST(session_server_s_client_close_notify_is_closed)
{
    session_server_vs_s_client(0);
}

TEST(session_server_s_client_killed_is_eof)
{
    session_server_vs_s_client(1);
}

/* Half-close on a session: ours queued and sent, the echo still comes. */
TEST(session_half_close_keeps_reading)
{
    int port, out, fd;
    pid_t pid = py_echo(NULL, &port, &out);
    REQUIRE(pid > 0, "python echo");
    corotls_session *s = session_client(port, &fd);
    REQUIRE(s, "session");
    CHECK(corotls_session_write(s, (const uint8_t *)"abc", 3) == COROTLS_OK, "write");
    CHECK(corotls_session_shutdown(s) == COROTLS_OK && corotls_session_shutdown_state(s) == COROTLS_SHUTDOWN_SENT,
          "shutdown: SENT (queued)");
    CHECK(corotls_session_write(s, (const uint8_t *)"x", 1) == COROTLS_ERR_ARG, "no write after it");
    char got[64];
    size_t n;
    corotls_result r = session_read_all(s, fd, got, sizeof got, &n);
    CHECK(n == 3 && !memcmp(got, "abc", 3) && r == COROTLS_CLOSED, "the echo, then CLOSED (%zu, %s)", n,
          corotls_result_name(r));
    CHECK(corotls_session_shutdown_state(s) == COROTLS_SHUTDOWN_BOTH, "BOTH");
    char buf[1024];
    CHECK(harness_read_until(out, "closed how=close_notify bytes=3", T, buf, sizeof buf) > 0, "python unwrapped");
    corotls_session_free(s);
    close(fd);
    close(out);
    harness_kill(pid);
}

/* ------------------------------------------------------------- loop */

static int loop_connect(corotls_loop *l, int port)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct lu_done d = {0};
    int fd = -1;
    corotls_result r = corotls_loop_connect(l, "127.0.0.1", ps, vconf, T, lu_cb, &d, &fd);
    if (r == COROTLS_PENDING && lu_wait(l, &d, T)) {
        r = d.r;
        fd = d.fd;
    }
    lu_reset(&d);
    if (r != COROTLS_OK)
        return -1;
    if (lu_handshake(l, fd, T) != COROTLS_OK) {
        corotls_loop_close(l, fd);
        return -1;
    }
    return fd;
}

/* recv until a result other than OK, gathering the data. */
static corotls_result loop_recv_all(corotls_loop *l, int fd, char *got, size_t cap, size_t *n)
{
    *n = 0;
    for (;;) {
        const uint8_t *data = NULL;
        size_t len = 0;
        struct lu_done d = {0};
        corotls_result r = corotls_loop_recv(l, fd, T, lu_cb, &d, &data, &len);
        if (r == COROTLS_PENDING) {
            lu_wait(l, &d, T);
            r = d.r;
            data = d.data;
            len = d.len;
        }
        if (r == COROTLS_OK && *n + len < cap) {
            memcpy(got + *n, data, len);
            *n += len;
        }
        lu_reset(&d);
        if (r != COROTLS_OK) {
            got[*n] = 0;
            return r;
        }
    }
}

static void loop_client_vs_python(const char *then, corotls_result want)
{
    corotls_loop *l = NULL;
    int port, out;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    pid_t pid = py_echo(then, &port, &out);
    REQUIRE(pid > 0, "python echo");
    int fd = loop_connect(l, port);
    REQUIRE(fd >= 0, "loop connect + handshake");
    CHECK(lu_send(l, fd, "hello", 5, T, NULL) == COROTLS_OK, "send");
    char got[64];
    size_t n;
    corotls_result r = loop_recv_all(l, fd, got, sizeof got, &n);
    CHECK(n == 5 && !memcmp(got, "hello", 5), "the data first (%zu)", n);
    CHECK(r == want, "then %s: %s", corotls_result_name(want), corotls_result_name(r));
    CHECK(lu_recv_result(l, fd, T) == want, "and on the next recv");
    int st = -1;
    CHECK(corotls_loop_shutdown_state(l, fd, &st) == COROTLS_OK &&
              st == (want == COROTLS_CLOSED ? COROTLS_SHUTDOWN_RECEIVED : COROTLS_SHUTDOWN_NONE),
          "state %d", st);
    bool alive = true;
    CHECK(corotls_loop_is_alive(l, fd, &alive) == COROTLS_OK && !alive, "not alive");
    corotls_loop_close(l, fd);
    corotls_loop_free(l);
    close(out);
    harness_kill(pid);
}

TEST(loop_client_python_close_notify_is_closed)
{
    loop_client_vs_python("close_notify", COROTLS_CLOSED);
}

TEST(loop_client_python_tcp_close_is_eof)
{
    loop_client_vs_python("eof", COROTLS_EOF);
}

static void loop_client_vs_s_server(int www)
{
    corotls_loop *l = NULL;
    int port, in = -1;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    pid_t pid = s_server(www, &port, &in);
    REQUIRE(pid > 0, "s_server");
    int fd = loop_connect(l, port);
    REQUIRE(fd >= 0, "loop connect + handshake");
    if (www) {
        CHECK(lu_send(l, fd, GET, strlen(GET), T, NULL) == COROTLS_OK, "request");
    } else {
        char got[8];
        CHECK(write(in, "line\n", 5) == 5, "a line from s_server");
        CHECK(lu_recv_n(l, fd, got, 5, T) == COROTLS_OK && !memcmp(got, "line\n", 5), "it came");
        CHECK(write(in, "q\n", 2) == 2, "then q");
    }
    static char got[65536];
    size_t n;
    corotls_result r = loop_recv_all(l, fd, got, sizeof got, &n);
    if (www)
        CHECK(n > 100 && r == COROTLS_CLOSED, "-www: page (%zu), then CLOSED: %s", n, corotls_result_name(r));
    else
        CHECK(n == 0 && r == COROTLS_EOF, "q: EOF: %s", corotls_result_name(r));
    corotls_loop_close(l, fd);
    corotls_loop_free(l);
    if (in >= 0)
        close(in);
    harness_kill(pid);
}

TEST(loop_client_s_server_www_is_closed)
{
    loop_client_vs_s_server(1);
}

TEST(loop_client_s_server_q_is_eof)
{
    loop_client_vs_s_server(0);
}

static void loop_server_vs_s_client(int kill_it)
{
    corotls_loop *l = NULL;
    int port, in, out;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int lfd = lu_listen(l, sconf, &port);
    REQUIRE(lfd >= 0, "listener");
    const char *args[] = {"-servername", "localhost", NULL};
    pid_t pid = harness_spawn_s_client(port, args, &in, &out);
    REQUIRE(pid > 0, "s_client");
    struct lu_done d = {0};
    int fd = -1;
    corotls_result r = corotls_loop_accept(l, lfd, NULL, T, lu_cb, &d, &fd);
    if (r == COROTLS_PENDING && lu_wait(l, &d, T)) {
        r = d.r;
        fd = d.fd;
    }
    lu_reset(&d);
    REQUIRE(r == COROTLS_OK, "accepted");
    CHECK(write(in, "hi\n", 3) == 3, "s_client sends a line");
    char got[64];
    CHECK(lu_recv_n(l, fd, got, 3, T) == COROTLS_OK && !memcmp(got, "hi\n", 3), "it came");
    if (kill_it) {
        /* As for the conn: its death must be a FIN, not a reset. */
        char buf[8192];
        CHECK(lu_send(l, fd, "ok-to-die\n", 10, T, NULL) == COROTLS_OK &&
                  harness_read_until(out, "ok-to-die", T, buf, sizeof buf) > 0,
              "s_client read everything");
        kill(pid, SIGKILL);
        harness_wait(pid, T);
    } else {
        close(in);
        in = -1;
    }
    size_t n;
    r = loop_recv_all(l, fd, got, sizeof got, &n);
    CHECK(r == (kill_it ? COROTLS_EOF : COROTLS_CLOSED), "%s: %s", kill_it ? "killed" : "stdin EOF",
          corotls_result_name(r));
    corotls_loop_close(l, fd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
    if (in >= 0)
        close(in);
    close(out);
    harness_kill(pid);
}

TEST(loop_server_s_client_close_notify_is_closed)
{
    loop_server_vs_s_client(0);
}

TEST(loop_server_s_client_killed_is_eof)
{
    loop_server_vs_s_client(1);
}

TEST(loop_shutdown_half_closes_and_recv_goes_on)
{
    corotls_loop *l = NULL;
    int port, out;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    pid_t pid = py_echo(NULL, &port, &out);
    REQUIRE(pid > 0, "python echo");
    int fd = loop_connect(l, port);
    REQUIRE(fd >= 0, "loop connect + handshake");
    CHECK(lu_send(l, fd, "abc", 3, T, NULL) == COROTLS_OK, "send");
    struct lu_done d = {0};
    corotls_result r = corotls_loop_shutdown(l, fd, T, lu_cb, &d);
    if (r == COROTLS_PENDING && lu_wait(l, &d, T))
        r = d.r;
    lu_reset(&d);
    CHECK(r == COROTLS_OK, "loop_shutdown: close_notify on the wire (%s)", corotls_result_name(r));
    int st = -1;
    CHECK(corotls_loop_shutdown_state(l, fd, &st) == COROTLS_OK && st == COROTLS_SHUTDOWN_SENT, "state SENT (%d)", st);
    CHECK(corotls_loop_send(l, fd, (const uint8_t *)"x", 1, T, lu_cb, &d) == COROTLS_ERR_ARG &&
              corotls_last_reason(NULL) == COROTLS_REASON_WRONG_STATE,
          "send after it: ERR_ARG, WRONG_STATE");
    char got[64];
    size_t n;
    r = loop_recv_all(l, fd, got, sizeof got, &n);
    CHECK(n == 3 && !memcmp(got, "abc", 3), "the echo still came (%zu)", n);
    CHECK(r == COROTLS_CLOSED, "then CLOSED: %s", corotls_result_name(r));
    CHECK(corotls_loop_shutdown_state(l, fd, &st) == COROTLS_OK && st == COROTLS_SHUTDOWN_BOTH, "state BOTH");
    char buf[1024];
    CHECK(harness_read_until(out, "closed how=close_notify bytes=3", T, buf, sizeof buf) > 0,
          "python saw our close_notify");
    r = corotls_loop_shutdown(l, fd, T, lu_cb, &d);
    CHECK(r == COROTLS_OK, "a second shutdown: OK (nothing more to send)");
    corotls_loop_close(l, fd);
    corotls_loop_free(l);
    close(out);
    harness_kill(pid);
}

TEST(loop_shutdown_bad_input)
{
    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port;
    int lfd = lu_listen(l, sconf, &port);
    struct lu_done d = {0};
    int st;
    CHECK(corotls_loop_shutdown(l, lfd, T, lu_cb, &d) == COROTLS_ERR_ARG, "a listener");
    CHECK(corotls_loop_shutdown(l, 9999, T, lu_cb, &d) == COROTLS_ERR_ARG, "an fd not open");
    CHECK(corotls_loop_shutdown(NULL, 3, T, lu_cb, &d) == COROTLS_ERR_ARG, "NULL loop");
    CHECK(corotls_loop_shutdown_state(l, lfd, &st) == COROTLS_ERR_ARG, "state of a listener");
    CHECK(corotls_loop_shutdown_state(l, lfd, NULL) == COROTLS_ERR_ARG, "NULL out");
    CHECK(d.calls == 0, "no callback");
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
    CHECK(corotls_session_shutdown_state(NULL) == -1, "NULL session");
}

/* Nothing buffered on `fd` (a raw socket): MSG_DONTWAIT finds no byte. */
static int nothing_arrived(int fd)
{
    char b;
    return recv(fd, &b, 1, MSG_DONTWAIT) < 0;
}

/* Close before the handshake (nothing to close: OK, nothing sent), close
 * after the peer vanished without close_notify, shutdown twice, shutdown
 * with a bad timeout or callback or after loop_close. */
TEST(close_and_shutdown_in_the_wrong_state)
{
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    corotls_conn *c = NULL;
    REQUIRE(corotls_conn_new(vconf, sv[0], &c) == COROTLS_OK, "conn");
    CHECK(corotls_conn_close(c) == COROTLS_OK && corotls_conn_close(c) == COROTLS_OK && nothing_arrived(sv[1]),
          "conn_close before the handshake, twice: OK, nothing sent");
    size_t w = 9;
    corotls_result wr = corotls_conn_write(c, (const uint8_t *)"x", 1, &w);
    CHECK(wr == COROTLS_ERR_ARG && corotls_conn_reason(c, NULL) == COROTLS_REASON_WRONG_STATE && w == 0 &&
              nothing_arrived(sv[1]),
          "write after it: ERR_ARG, WRONG_STATE, and no handshake is started (%s)", corotls_conn_error(c));
    corotls_conn_free(c);
    close(sv[0]);
    close(sv[1]);

    /* Peer handshakes, then its socket closes with no close_notify. */
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    corotls_conn *s = NULL;
    REQUIRE(corotls_conn_new(vconf, sv[0], &c) == COROTLS_OK && corotls_conn_new(sconf, sv[1], &s) == COROTLS_OK,
            "conns");
    corotls_conn_set_sni(c, "localhost");
    corotls_result rc = COROTLS_WANT_READ, rs = COROTLS_WANT_READ;
    for (int i = 0; i < 50 && (rc != COROTLS_OK || rs != COROTLS_OK); i++) {
        rc = corotls_conn_handshake(c);
        rs = corotls_conn_handshake(s);
    }
    REQUIRE(rc == COROTLS_OK && rs == COROTLS_OK, "handshakes");
    corotls_conn_free(s);
    close(sv[1]);
    corotls_result r = corotls_conn_close(c);
    if (r == COROTLS_WANT_READ && util_wait(sv[0], r, T) == 0)
        r = corotls_conn_close(c);
    CHECK(r == COROTLS_EOF || r == COROTLS_ERR_IO, "conn_close when the peer vanished: %s (no hang)",
          corotls_result_name(r));
    corotls_conn_free(c);
    close(sv[0]);

    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    int port, cfd, sfd;
    int lfd = lu_listen(l, sconf, &port);
    REQUIRE(lfd >= 0 && lu_pair(l, lfd, port, vconf, &cfd, &sfd) == 0, "a loop pair, no handshake");
    struct lu_done d = {0};
    int st = -1;
    CHECK(corotls_loop_shutdown(l, cfd, T, lu_cb, &d) == COROTLS_OK, "loop_shutdown before the handshake: OK inline");
    CHECK(corotls_loop_shutdown(l, cfd, T, lu_cb, &d) == COROTLS_OK, "and again: OK");
    CHECK(corotls_loop_shutdown_state(l, cfd, &st) == COROTLS_OK, "state readable (%d)", st);
    corotls_result r2 = corotls_loop_send(l, cfd, (const uint8_t *)"x", 1, T, lu_cb, &d);
    if (r2 == COROTLS_PENDING && lu_wait(l, &d, T))
        r2 = d.r;
    CHECK(r2 == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_WRONG_STATE,
          "send after it: ERR_ARG, WRONG_STATE (%s: %s, %d callbacks)", corotls_result_name(r2), corotls_last_error(), d.calls);
    lu_reset(&d);
    CHECK(corotls_loop_shutdown(l, sfd, -2, lu_cb, &d) == COROTLS_ERR_ARG, "timeout -2: ERR_ARG");
    CHECK(corotls_loop_shutdown(l, sfd, T, NULL, &d) == COROTLS_ERR_ARG, "no callback: ERR_ARG");
    corotls_loop_close(l, cfd);
    CHECK(corotls_loop_shutdown(l, cfd, T, lu_cb, &d) == COROTLS_ERR_ARG, "shutdown after loop_close: ERR_ARG");
    st = 7;
    CHECK(corotls_loop_shutdown_state(l, cfd, &st) == COROTLS_ERR_ARG && st == 0, "its state: ERR_ARG, 0");
    CHECK(corotls_loop_shutdown_state(NULL, sfd, &st) == COROTLS_ERR_ARG, "state with a NULL loop: ERR_ARG");
    CHECK(d.calls == 0, "no callback for any of it");
    corotls_loop_close(l, sfd);
    corotls_loop_close(l, lfd);
    corotls_loop_free(l);
}

int main(void)
{
    vconf = util_client_conf(1);
    sconf = util_server_conf("leaf.crt", "leaf.key");
    int rc = harness_run_all();
    corotls_conf_free(vconf);
    corotls_conf_free(sconf);
    return rc;
}
