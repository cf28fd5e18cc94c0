/*
 * internal.h -- what the four parts of the harness share with each other.
 * Not for tests: they include harness.h only.
 *
 *   core.c    the framework: checks, tests, watchdog and crash reports,
 *             summary, time, file paths
 *   net.c     loopback sockets
 *   spawn.c   child processes: spawn, read their output, wait, kill
 *   peers.c   openssl s_server / s_client and the Python peer
 *
 * The harness never allocates: every buffer is static, thread-local or on
 * the stack, so it stays out of valgrind's leak reports.
 */
#ifndef COROTLS_C_TESTS_HARNESS_INTERNAL_H
#define COROTLS_C_TESTS_HARNESS_INTERNAL_H

#include "harness.h"

#include <sys/types.h>

/* ---- core.c */

/* The signals whose handlers report a crash (children reset them). */
extern const int hx_crash_sigs[];
extern const int hx_ncrash_sigs;

/* Is environment variable name set to something other than "" and "0"? */
int hx_env_flag(const char *name);

/* The openssl CLI: $HARNESS_OPENSSL or "openssl". */
const char *hx_openssl_bin(void);

/* ---- net.c */

/* Is 127.0.0.1:port (or 0.0.0.0:port) in LISTEN state? */
int hx_port_listening(int port);

/* ---- spawn.c */

/* SIGKILL every registered child and its group (async-signal-safe: for the
 * watchdog and crash handlers). */
void hx_kill_all_kids_now(void);

/* A registered child's pid, or 0 when there is none. */
pid_t hx_any_kid(void);

/* Has the child exited (without reaping it)?  Unknown pids count as gone. */
int hx_kid_exited(pid_t pid);

/* close(*fd) when it is open, then *fd = -1. */
void hx_close_if(int *fd);

enum hx_stdin_mode { HX_STDIN_NULL, HX_STDIN_CALLER, HX_STDIN_KEEP };

/* harness_spawn with more control.  in_mode: /dev/null, a pipe handed to
 * the caller (*stdin_fd), or a pipe the harness keeps open for the child's
 * life.  stdout_fd != NULL: pipe for stdout+stderr returned to the caller;
 * else out_file >= 0: stdout+stderr go there; else /dev/null (or inherited
 * with HARNESS_VERBOSE). */
pid_t hx_spawn(const char *const argv[], enum hx_stdin_mode in_mode,
               int *stdin_fd, int *stdout_fd, int out_file);

/* harness_read_until; watch > 0: for regular files, stop with EPIPE once
 * that child has exited and everything it wrote was read. */
ssize_t hx_read_until(int fd, const char *needle, int timeout_ms, char *buf,
                      size_t cap, pid_t watch);

#endif /* COROTLS_C_TESTS_HARNESS_INTERNAL_H */
