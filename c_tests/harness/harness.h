/*
 * harness.h -- the tiny test framework shared by every corotls C test.
 *
 * Nothing here depends on the corotls API.  Build a test as
 *     $(CC) $(HARNESS_CFLAGS) $(HARNESS_INC) my_test.c $(HARNESS_SRC)
 * (see c_tests/harness/harness.mk; the implementation is in four parts,
 * core.c, net.c, spawn.c and peers.c, described in internal.h).  A test
 * program looks like
 *
 *     #include "harness.h"
 *     static void test_echo(void) {
 *         int port; pid_t pid;
 *         REQUIRE(harness_spawn_s_server(NULL, &port, &pid) == 0, "s_server up");
 *         int fd = harness_connect_loopback(port);
 *         CHECK(fd >= 0, "tcp connect to port %d", port);
 *         ...
 *         close(fd);
 *         harness_kill(pid);
 *     }
 *     int main(void) { RUN_TEST(test_echo); return harness_summary(); }
 *
 * or, with registration, `TEST(test_echo) { ... }` and
 * `int main(void) { return harness_run_all(); }`.
 *
 * Output (stdout, line-buffered, one line per event):
 *     # <test name>                       when a test starts
 *     ok - <message>                      a passing CHECK
 *     FAIL - <message>: <expr> failed in <test> (<file>:<line>)
 *     FAIL - <test>: timed out after <N> s (watchdog)
 *     FAIL - <test>: crashed with signal <N> (<name>)
 *     # <diagnostic>                      harness_diag()
 *     N passed, M failed                  harness_summary(), exactly once
 * N and M count CHECKs (a watchdog timeout or crash counts as one failure).
 *
 * Watchdog: each test runs under alarm(2) (default 30 s, env
 * HARNESS_TEST_TIMEOUT=<seconds> overrides, 0 disables).  On expiry the
 * harness prints the FAIL line and the summary line, SIGKILLs every child it
 * spawned, and exits with status 1: a hang never blocks CI.  The harness owns
 * SIGALRM; tests must not use alarm(2) themselves.  Crash signals (SEGV, BUS,
 * ABRT, FPE, ILL) print a FAIL line naming the test, kill the children and
 * re-raise.
 *
 * Other environment variables:
 *     HARNESS_ONLY=<substring>  run only tests whose name contains it
 *     HARNESS_VERBOSE=1         children spawned without a stdout pipe
 *                               inherit the test's stdout/stderr instead of
 *                               /dev/null (debugging)
 *     COROTLS_CERTDIR           certificate directory (default target/certs)
 *     COROTLS_PEERDIR           directory of py_tls_server.py
 *                               (default c_tests/peers)
 *     HARNESS_PYTHON            python interpreter (default python3)
 *     HARNESS_OPENSSL           openssl CLI (default openssl)
 *
 * Memory: the harness never calls malloc itself; all its state is static.
 * File descriptors it creates are O_CLOEXEC, so spawned peers never inherit
 * a test's sockets.  SIGPIPE is ignored from harness_init() on (children get
 * the default disposition back).
 *
 * Children: every process started through harness_spawn*() is registered;
 * it runs in its own process group, gets SIGKILL if the test process dies
 * (PR_SET_PDEATHSIG; spawn from a thread that outlives the child, normally
 * the main thread), and must be ended with harness_kill() or
 * harness_wait().  harness_summary() kills (and reports) any left over.
 */
#ifndef COROTLS_C_TESTS_HARNESS_H
#define COROTLS_C_TESTS_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ framework */

/* Idempotent; called implicitly by everything below.  Ignores SIGPIPE,
 * makes stdout line-buffered, makes sure fds 0..2 are open, installs the
 * watchdog and crash handlers, reads HARNESS_TEST_TIMEOUT. */
void harness_init(void);

/* Record one check.  Prints `ok - <msg>` or the FAIL line; returns ok (0/1).
 * Thread-safe.  Use through CHECK / REQUIRE. */
int harness_check_(int ok, const char *expr, const char *file, int line,
                   const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* CHECK(cond, fmt, ...): evaluates cond once, records pass/fail, and is an
 * expression whose value is 1 when cond held, else 0. */
#define CHECK(cond, ...) \
    harness_check_((cond) ? 1 : 0, #cond, __FILE__, __LINE__, __VA_ARGS__)

/* REQUIRE(cond, fmt, ...): CHECK, and `return;` from the (void) test
 * function when it fails. */
#define REQUIRE(cond, ...)                  \
    do {                                    \
        if (!CHECK(cond, __VA_ARGS__))      \
            return;                         \
    } while (0)

/* Print a `# ...` diagnostic line (not counted). */
void harness_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Run fn as test `name` under the watchdog: prints `# name`, arms alarm,
 * calls fn, disarms.  Skipped silently when HARNESS_ONLY does not match. */
void run_test(const char *name, void (*fn)(void));
#define RUN_TEST(fn) run_test(#fn, fn)

/* Registration: `TEST(name) { body }` defines static void name(void) and
 * registers it (before main) for harness_run_all(). */
void harness_register_(const char *name, void (*fn)(void), const char *file,
                       int line);
#define TEST(name)                                                        \
    static void name(void);                                               \
    __attribute__((constructor)) static void harness_reg_##name(void)     \
    {                                                                     \
        harness_register_(#name, name, __FILE__, __LINE__);               \
    }                                                                     \
    static void name(void)

/* Run every TEST() in source order (file, then line), then return
 * harness_summary(). */
int harness_run_all(void);

/* Name of the running test ("" outside tests). */
const char *harness_current_test(void);

/* Kill leftover children, print exactly one line `N passed, M failed`,
 * return the process exit status: 0 iff M == 0, else 1. */
int harness_summary(void);

/* Counters so far (checks). */
int harness_passed(void);
int harness_failed(void);

/* --------------------------------------------------------------- time */

/* Monotonic clock in milliseconds. */
long long harness_now_ms(void);
/* Sleep ms milliseconds (restarts after signals). */
void harness_sleep_ms(int ms);

/* -------------------------------------------------------------- files */

/* $COROTLS_CERTDIR, or "target/certs" when unset/empty. */
const char *harness_certdir(void);

/* "<certdir>/<name>" in a thread-local ring of 16 buffers: the pointer stays
 * valid for the next 15 calls on the same thread, so several may be used in
 * one expression.  Never NULL (truncated paths cannot happen below 1 KiB). */
const char *harness_cert(const char *name);

/* Path of c_tests/peers/py_tls_server.py ($COROTLS_PEERDIR overrides the
 * directory) and the interpreter to run it ($HARNESS_PYTHON or python3). */
const char *harness_py_peer_script(void);
const char *harness_python(void);

/* ------------------------------------------------------------ sockets */

/* TCP listener on 127.0.0.1, ephemeral port (SO_REUSEADDR, backlog 128,
 * blocking, CLOEXEC).  Returns the fd and stores the port in *port (may be
 * NULL); -1 with errno on failure. */
int harness_listen_loopback(int *port);

/* Blocking TCP connect to 127.0.0.1:port (CLOEXEC).  Returns fd or -1. */
int harness_connect_loopback(int port);

/* Set O_NONBLOCK on fd.  0 or -1. */
int harness_set_nonblock(int fd);

/* A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it,
 * close).  Racy by nature: callers retry on EADDRINUSE.  -1 on failure. */
int harness_free_port(void);

/* ---------------------------------------------------------- processes */

/* Start argv[0] (PATH lookup) with argv.  stdin_fd: NULL -> child's stdin is
 * /dev/null; else a pipe, *stdin_fd receives its write end (close it to give
 * the child EOF).  stdout_fd: NULL -> child's stdout+stderr go to /dev/null
 * (inherited when HARNESS_VERBOSE is set); else one pipe carrying both
 * stdout and stderr, *stdout_fd receives its read end (blocking, CLOEXEC).
 * Returns the pid, or -1 with errno (also when exec fails: the exec errno).
 * The caller closes the fds it received. */
pid_t harness_spawn(const char *const argv[], int *stdin_fd, int *stdout_fd);

/* Read from fd until `needle` appears in what was read.  Reads one byte at a
 * time, so nothing after the needle is consumed (call again for the next
 * marker).  buf (cap bytes, may be NULL to use an internal 4 KiB buffer)
 * receives the text read, NUL-terminated; when it fills up the oldest half
 * is dropped, so it always holds the tail.  strlen(needle) must be below
 * cap/2.  timeout_ms < 0 waits forever (the watchdog still applies).
 * Returns the number of bytes in buf when found; -1 otherwise with errno
 * ETIMEDOUT (time out), EPIPE (EOF first), EINVAL, or the read error --
 * buf still holds what was read. */
ssize_t harness_read_until(int fd, const char *needle, int timeout_ms,
                           char *buf, size_t cap);

/* Wait up to timeout_ms (< 0: forever) for the child to exit on its own.
 * Returns its wait status (use WIFEXITED/WEXITSTATUS), or -1 with errno
 * ETIMEDOUT (still running, still registered) or ECHILD. */
int harness_wait(pid_t pid, int timeout_ms);

/* End a child: SIGTERM to its process group, wait up to 2 s, then SIGKILL;
 * reap it and release what the harness kept for it.  Returns the wait
 * status, or -1 (pid <= 0 or not a child).  Safe on an exited child. */
int harness_kill(pid_t pid);

/* ------------------------------------------------------- openssl peers */

/* Start `openssl s_server -accept 127.0.0.1:<port> -cert <certdir>/leaf.crt
 * -key <certdir>/leaf.key <extra_args...>` (the default cert/key are left
 * out when extra_args has -cert or -nocert; later options override earlier
 * ones) on a free port, retrying with another port when the bind fails, and
 * return once it listens: after it printed `ACCEPT`, or, with -quiet (which
 * suppresses that line), once the port shows up in /proc/net/tcp.
 * extra_args is NULL-terminated (NULL for none).  Its stdin is a pipe kept
 * open by the harness (s_server quits on stdin EOF); its output goes to an
 * unlinked temporary file (never blocks, never fills a pipe).
 * Returns 0 with *port and *pid set, -1 on failure (after a `#` diagnostic
 * with the tail of its output). */
int harness_spawn_s_server(const char *const extra_args[], int *port,
                           pid_t *pid);

/* Same, with s_server's stdin (write end; s_server sends typed lines to the
 * client, and quits on EOF) and/or merged stdout+stderr (read end, positioned
 * just after `ACCEPT\n`) handed to the caller when the pointers are
 * non-NULL.  A caller taking stdout must keep reading it or s_server blocks
 * once the pipe is full. */
int harness_spawn_s_server_io(const char *const extra_args[], int *port,
                              pid_t *pid, int *stdin_fd, int *stdout_fd);

/* Start `openssl s_client -connect 127.0.0.1:<port> -CAfile <certdir>/ca.crt
 * <extra_args...>` and return at once (pid, or -1).  stdin_fd: NULL -> a pipe
 * kept open by the harness (no EOF); else its write end (lines typed there
 * go to the server; without -quiet/-ign_eof, EOF makes s_client send
 * close_notify and exit; lines starting with Q/R/k/K are commands unless
 * -nocommands).  stdout_fd: NULL -> /dev/null; else merged stdout+stderr.
 * Useful markers: "CONNECTED(" after TCP connect, "Verify return code: "
 * after the handshake (both absent with -quiet). */
pid_t harness_spawn_s_client(int port, const char *const extra_args[],
                             int *stdin_fd, int *stdout_fd);

/* Start `$HARNESS_PYTHON py_tls_server.py <args...>` (args[0] is the mode:
 * echo, garbage, silent, hangup, midway) and wait for its `PORT <n>` line.
 * stdout_fd: NULL -> its output goes to an unlinked temporary file; else the
 * read end of its merged stdout+stderr, positioned after the PORT line (read
 * the per-connection `conn ...` lines there; keep reading it if many
 * connections are made).  Returns 0 with *port, *pid set, or -1 after a `#`
 * diagnostic.  For `client` mode use harness_spawn() with
 * harness_python() / harness_py_peer_script(). */
int harness_spawn_py_peer(const char *const args[], int *port, pid_t *pid,
                          int *stdout_fd);

#ifdef __cplusplus
}
#endif

#endif /* COROTLS_C_TESTS_HARNESS_H */
