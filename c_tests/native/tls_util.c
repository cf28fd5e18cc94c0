/* tls_util.c -- see tls_util.h. */
#include "tls_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

corotls_conf *util_server_conf(const char *cert, const char *key)
{
    corotls_conf *c = NULL;
    if (corotls_conf_new(COROTLS_SERVER, harness_cert(cert), harness_cert(key), NULL, NULL, false, &c) !=
        COROTLS_OK)
        harness_diag("server conf: %s", corotls_last_error());
    return c;
}

corotls_conf *util_client_conf(int verify)
{
    corotls_conf *c = NULL;
    if (corotls_conf_new(COROTLS_CLIENT, NULL, NULL, verify ? harness_cert("ca.crt") : NULL, NULL, verify, &c) !=
        COROTLS_OK)
        harness_diag("client conf: %s", corotls_last_error());
    return c;
}

int util_wait(int fd, corotls_result r, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = r == COROTLS_WANT_WRITE ? POLLOUT : POLLIN};
    int n;
    do
        n = poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -1;
}

static int waits(corotls_result r)
{
    return r == COROTLS_WANT_READ || r == COROTLS_WANT_WRITE;
}

corotls_result util_handshake(corotls_conn *c, int timeout_ms)
{
    corotls_result r;
    while (waits(r = corotls_conn_handshake(c)))
        if (util_wait(corotls_conn_fd(c), r, timeout_ms) != 0)
            return COROTLS_TIMEOUT;
    return r;
}

corotls_result util_write_all(corotls_conn *c, const void *data, size_t len, int timeout_ms)
{
    const uint8_t *p = data;
    while (len > 0) {
        size_t n = 0;
        corotls_result r = corotls_conn_write(c, p, len, &n);
        p += n;
        len -= n;
        if (waits(r)) {
            if (util_wait(corotls_conn_fd(c), r, timeout_ms) != 0)
                return COROTLS_TIMEOUT;
        } else if (r != COROTLS_OK) {
            return r;
        }
    }
    return COROTLS_OK;
}

corotls_result util_read_n(corotls_conn *c, void *buf, size_t len, int timeout_ms)
{
    uint8_t *p = buf;
    while (len > 0) {
        size_t n = 0;
        corotls_result r = corotls_conn_read(c, p, len, &n);
        p += n;
        len -= n;
        if (waits(r)) {
            if (util_wait(corotls_conn_fd(c), r, timeout_ms) != 0)
                return COROTLS_TIMEOUT;
        } else if (r != COROTLS_OK) {
            return r;
        }
    }
    return COROTLS_OK;
}

corotls_conn *util_connect(corotls_conf *conf, int port, const char *name, int *fd)
{
    corotls_conn *c = NULL;
    *fd = harness_connect_loopback(port);
    if (*fd < 0)
        return NULL;
    /* SNI carries DNS names only; an IP address is verified, not sent. */
    int is_ip = name && (strchr(name, ':') || strspn(name, "0123456789.") == strlen(name));
    if (corotls_conn_new(conf, *fd, &c) != COROTLS_OK ||
        (name && ((!is_ip && corotls_conn_set_sni(c, name) != COROTLS_OK) ||
                  corotls_conn_set_verify_host(c, name) != COROTLS_OK))) {
        harness_diag("conn setup: %s", corotls_last_error());
        corotls_conn_free(c);
        close(*fd);
        *fd = -1;
        return NULL;
    }
    return c;
}

/* ----------------------------------------------------------- echo server */

#define ECHO_MAX 256
#define ECHO_BUF 16384

struct echo_client {
    int fd;
    corotls_conn *conn;
    corotls_result want;
    size_t off, len;
    uint8_t buf[ECHO_BUF];
};

/* Returns 0 to keep the client, 1 when it closed cleanly, -1 on failure. */
static int echo_step(struct echo_client *c)
{
    for (;;) {
        size_t n = 0;
        corotls_result r;
        if (c->len > 0) {
            r = corotls_conn_write(c->conn, c->buf + c->off, c->len, &n);
            c->off += n;
            c->len -= n;
        } else {
            r = corotls_conn_read(c->conn, c->buf, sizeof c->buf, &n);
            if (r == COROTLS_OK) {
                c->off = 0;
                c->len = n;
            }
        }
        if (r == COROTLS_OK)
            continue;
        if (waits(r)) {
            c->want = r;
            return 0;
        }
        if (r == COROTLS_CLOSED) {
            corotls_conn_shutdown(c->conn);
            return 1;
        }
        return r == COROTLS_EOF ? 1 : -1;
    }
}

static void *echo_main(void *arg)
{
    struct echo_server *s = arg;
    struct echo_client *cl[ECHO_MAX];
    struct pollfd pf[ECHO_MAX + 2];
    int n = 0;
    for (;;) {
        pf[0] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        pf[1] = (struct pollfd){.fd = s->stop_pipe[0], .events = POLLIN};
        for (int i = 0; i < n; i++)
            pf[i + 2] = (struct pollfd){.fd = cl[i]->fd, .events = cl[i]->want == COROTLS_WANT_WRITE ? POLLOUT : POLLIN};
        if (poll(pf, (nfds_t)n + 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break;
        for (int i = n - 1; i >= 0; i--) {
            if (!pf[i + 2].revents)
                continue;
            int st = echo_step(cl[i]);
            if (st == 0)
                continue;
            if (st < 0)
                __atomic_add_fetch(&s->failures, 1, __ATOMIC_SEQ_CST);
            corotls_conn_free(cl[i]->conn);
            close(cl[i]->fd);
            free(cl[i]);
            cl[i] = cl[--n];
        }
        if ((pf[0].revents & POLLIN) && n < ECHO_MAX) {
            int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0)
                continue;
            struct echo_client *c = calloc(1, sizeof *c);
            if (c == NULL || corotls_conn_new(s->conf, fd, &c->conn) != COROTLS_OK) {
                free(c);
                close(fd);
                continue;
            }
            c->fd = fd;
            c->want = COROTLS_WANT_READ;
            cl[n++] = c;
            __atomic_add_fetch(&s->connections, 1, __ATOMIC_SEQ_CST);
        }
    }
    for (int i = 0; i < n; i++) {
        corotls_conn_free(cl[i]->conn);
        close(cl[i]->fd);
        free(cl[i]);
    }
    return NULL;
}

int util_echo_start(struct echo_server *s, corotls_conf *conf)
{
    memset(s, 0, sizeof *s);
    s->conf = conf;
    s->lfd = harness_listen_loopback(&s->port);
    if (s->lfd < 0 || pipe2(s->stop_pipe, O_CLOEXEC) != 0)
        return -1;
    return pthread_create(&s->thread, NULL, echo_main, s) == 0 ? 0 : -1;
}

void util_echo_stop(struct echo_server *s)
{
    (void)!write(s->stop_pipe[1], "x", 1);
    pthread_join(s->thread, NULL);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    close(s->lfd);
}

/* ------------------------------------------------------------------ misc */

size_t util_pump(corotls_session *a, corotls_session *b, size_t step)
{
    uint8_t buf[65536];
    size_t total = 0, moved;
    if (step == 0 || step > sizeof buf)
        step = sizeof buf;
    do {
        moved = 0;
        corotls_session *from[2] = {a, b}, *to[2] = {b, a};
        for (int i = 0; i < 2; i++) {
            size_t n = corotls_session_out_read(from[i], buf, step);
            if (n > 0) {
                corotls_session_feed(to[i], buf, n, NULL);
                moved += n;
            }
        }
        if (!corotls_session_handshake_done(a))
            corotls_session_handshake(a);
        if (!corotls_session_handshake_done(b))
            corotls_session_handshake(b);
        total += moved;
    } while (moved > 0 || corotls_session_out_pending(a) > 0 || corotls_session_out_pending(b) > 0);
    return total;
}

void util_fill(uint8_t *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

int says(const char *needle)
{
    const char *m = corotls_last_error();
    if (strstr(m, needle) == NULL) {
        harness_diag("last error: \"%s\" (wanted \"%s\")", m, needle);
        return 0;
    }
    return 1;
}
