/*
 * peers.c -- TLS peers for tests: openssl s_server and s_client, and
 * c_tests/peers/py_tls_server.py, started through spawn.c and waited for
 * until they listen (see harness.h, "openssl peers").
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HARNESS_MAX_EXTRA 64
#define HARNESS_START_TIMEOUT_MS 15000

static int has_arg(const char *const args[], const char *a)
{
    for (int i = 0; args && args[i]; i++)
        if (strcmp(args[i], a) == 0)
            return 1;
    return 0;
}

static int count_args(const char *const args[])
{
    int n = 0;
    while (args && args[n])
        n++;
    return n;
}

/* An unlinked temporary file: *wfd for the child, *rfd to read it back. */
static int capture_open(int *wfd, int *rfd)
{
    const char *dir = getenv("TMPDIR");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/corotls-harness-XXXXXX",
             (dir && *dir) ? dir : "/tmp");
    int w = mkostemp(path, O_CLOEXEC);
    if (w < 0)
        return -1;
    int r = open(path, O_RDONLY | O_CLOEXEC);
    int e = errno;
    unlink(path);
    if (r < 0) {
        close(w);
        errno = e;
        return -1;
    }
    *wfd = w;
    *rfd = r;
    return 0;
}

/* Read what is left in fd (child already dead) into the tail of buf. */
static void slurp_tail(int fd, char *buf, size_t cap)
{
    size_t len = strlen(buf);
    char chunk[512];
    if (fd < 0)
        return;
    harness_set_nonblock(fd);
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (len + 1 >= cap) {
                size_t keep = cap / 2;
                memmove(buf, buf + len - keep, keep);
                len = keep;
            }
            buf[len++] = chunk[i] ? chunk[i] : ' ';
        }
        buf[len] = '\0';
    }
}

static int wait_listening(int port, pid_t pid, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        if (hx_kid_exited(pid)) {
            errno = EPIPE;
            return -1;
        }
        if (hx_port_listening(port))
            return 0;
        if (harness_now_ms() >= deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
        harness_sleep_ms(10);
    }
}

int harness_spawn_s_server_io(const char *const extra_args[], int *port,
                              pid_t *pid, int *stdin_fd, int *stdout_fd)
{
    harness_init();
    int nextra = count_args(extra_args);
    if (!port || !pid || nextra > HARNESS_MAX_EXTRA) {
        errno = EINVAL;
        return -1;
    }
    int quiet = has_arg(extra_args, "-quiet");
    int own_cert = has_arg(extra_args, "-cert") || has_arg(extra_args, "-nocert");
    char buf[4096];

    for (int attempt = 0; attempt < 8; attempt++) {
        int p = harness_free_port();
        if (p < 0) {
            harness_diag("s_server: no free port: %s", strerror(errno));
            return -1;
        }
        char accept_arg[32];
        snprintf(accept_arg, sizeof accept_arg, "127.0.0.1:%d", p);
        const char *argv[HARNESS_MAX_EXTRA + 16];
        int n = 0;
        argv[n++] = hx_openssl_bin();
        argv[n++] = "s_server";
        argv[n++] = "-accept";
        argv[n++] = accept_arg;
        if (!own_cert) {
            argv[n++] = "-cert";
            argv[n++] = harness_cert("leaf.crt");
            argv[n++] = "-key";
            argv[n++] = harness_cert("leaf.key");
        }
        for (int i = 0; i < nextra; i++)
            argv[n++] = extra_args[i];
        argv[n] = NULL;

        int wfd = -1, rfd = -1, in_fd = -1, out_fd = -1;
        if (!stdout_fd && capture_open(&wfd, &rfd) < 0) {
            harness_diag("s_server: cannot create capture file: %s",
                         strerror(errno));
            return -1;
        }
        pid_t c = hx_spawn(argv, stdin_fd ? HX_STDIN_CALLER : HX_STDIN_KEEP, &in_fd,
                             stdout_fd ? &out_fd : NULL, wfd);
        int e = errno;
        hx_close_if(&wfd);
        if (c < 0) {
            hx_close_if(&rfd);
            harness_diag("cannot start %s s_server: %s", argv[0], strerror(e));
            return -1;
        }
        int rd = stdout_fd ? out_fd : rfd;
        int ok;
        buf[0] = '\0';
        if (quiet)
            ok = wait_listening(p, c, HARNESS_START_TIMEOUT_MS) == 0;
        else
            ok = hx_read_until(rd, "ACCEPT\n", HARNESS_START_TIMEOUT_MS, buf,
                                 sizeof buf, c) >= 0;
        if (ok) {
            hx_close_if(&rfd);
            *port = p;
            *pid = c;
            if (stdin_fd)
                *stdin_fd = in_fd;
            if (stdout_fd)
                *stdout_fd = out_fd;
            return 0;
        }
        int timed_out = errno == ETIMEDOUT;
        harness_kill(c);
        slurp_tail(rd, buf, sizeof buf);
        hx_close_if(&rfd);
        hx_close_if(&out_fd);
        hx_close_if(&in_fd);
        if (!timed_out && (strstr(buf, "in use") || strstr(buf, "unable to bind")))
            continue; /* lost the port race: try another port */
        harness_diag("openssl s_server did not start (%s); its output:\n%s",
                     timed_out ? "timed out" : "exited", buf);
        return -1;
    }
    harness_diag("openssl s_server: no port could be bound after 8 attempts");
    return -1;
}

int harness_spawn_s_server(const char *const extra_args[], int *port,
                           pid_t *pid)
{
    return harness_spawn_s_server_io(extra_args, port, pid, NULL, NULL);
}

pid_t harness_spawn_s_client(int port, const char *const extra_args[],
                             int *stdin_fd, int *stdout_fd)
{
    harness_init();
    int nextra = count_args(extra_args);
    if (port <= 0 || port > 65535 || nextra > HARNESS_MAX_EXTRA) {
        errno = EINVAL;
        return -1;
    }
    char connect_arg[32];
    snprintf(connect_arg, sizeof connect_arg, "127.0.0.1:%d", port);
    const char *argv[HARNESS_MAX_EXTRA + 16];
    int n = 0;
    argv[n++] = hx_openssl_bin();
    argv[n++] = "s_client";
    argv[n++] = "-connect";
    argv[n++] = connect_arg;
    argv[n++] = "-CAfile";
    argv[n++] = harness_cert("ca.crt");
    for (int i = 0; i < nextra; i++)
        argv[n++] = extra_args[i];
    argv[n] = NULL;
    return hx_spawn(argv, stdin_fd ? HX_STDIN_CALLER : HX_STDIN_KEEP, stdin_fd,
                      stdout_fd, -1);
}

int harness_spawn_py_peer(const char *const args[], int *port, pid_t *pid,
                          int *stdout_fd)
{
    harness_init();
    int nargs = count_args(args);
    if (!port || !pid || nargs == 0 || nargs > HARNESS_MAX_EXTRA) {
        errno = EINVAL;
        return -1;
    }
    const char *argv[HARNESS_MAX_EXTRA + 8];
    int n = 0;
    argv[n++] = harness_python();
    argv[n++] = harness_py_peer_script();
    for (int i = 0; i < nargs; i++)
        argv[n++] = args[i];
    argv[n] = NULL;

    int wfd = -1, rfd = -1, out_fd = -1;
    if (!stdout_fd && capture_open(&wfd, &rfd) < 0) {
        harness_diag("py peer: cannot create capture file: %s", strerror(errno));
        return -1;
    }
    pid_t c = hx_spawn(argv, HX_STDIN_NULL, NULL, stdout_fd ? &out_fd : NULL, wfd);
    int e = errno;
    hx_close_if(&wfd);
    if (c < 0) {
        hx_close_if(&rfd);
        harness_diag("cannot start %s: %s", argv[0], strerror(e));
        return -1;
    }
    int rd = stdout_fd ? out_fd : rfd;
    char buf[4096], line[64];
    long p = -1;
    buf[0] = '\0';
    if (hx_read_until(rd, "PORT ", HARNESS_START_TIMEOUT_MS, buf, sizeof buf, c) >= 0 &&
        hx_read_until(rd, "\n", 2000, line, sizeof line, c) >= 0) {
        char *end;
        p = strtol(line, &end, 10);
        if (end == line || (*end != '\n' && *end != '\r') || p <= 0 || p > 65535)
            p = -1;
    }
    if (p > 0) {
        hx_close_if(&rfd);
        *port = (int)p;
        *pid = c;
        if (stdout_fd)
            *stdout_fd = out_fd;
        return 0;
    }
    int timed_out = errno == ETIMEDOUT;
    harness_kill(c);
    slurp_tail(rd, buf, sizeof buf);
    hx_close_if(&rfd);
    hx_close_if(&out_fd);
    harness_diag("py peer %s did not report its port (%s); its output:\n%s",
                 args[0], timed_out ? "timed out" : "exited", buf);
    return -1;
}
