/* loop_util.c -- see loop_util.h. */
#include "loop_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

void lu_cb(void *user_data, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct lu_done *d = user_data;
    d->calls++;
    d->fd = fd;
    d->r = r;
    d->len = len;
    d->thread = pthread_self();
    free(d->data);
    d->data = NULL;
    if (data) {
        d->data = malloc(len ? len : 1);
        memcpy(d->data, data, len);
    }
    snprintf(d->msg, sizeof d->msg, "%s", r == COROTLS_OK ? "" : corotls_last_error());
}

void lu_reset(struct lu_done *d)
{
    free(d->data);
    memset(d, 0, sizeof *d);
}

int lu_wait(corotls_loop *l, struct lu_done *d, int timeout_ms)
{
    long long end = harness_now_ms() + timeout_ms;
    while (d->calls == 0 && harness_now_ms() < end)
        corotls_loop_dispatch(l, 10, NULL);
    return d->calls > 0;
}

void lu_spin(corotls_loop *l, int ms)
{
    long long end = harness_now_ms() + ms;
    while (harness_now_ms() < end)
        corotls_loop_dispatch(l, 5, NULL);
}

int lu_quick(void)
{
    const char *q = getenv("COROTLS_TEST_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

int lu_scale(int full, int quick)
{
    return lu_quick() ? quick : full;
}

void lu_raise_nofile(long want)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0)
        return;
    if ((long)r.rlim_cur >= want)
        return;
    r.rlim_cur = r.rlim_max == RLIM_INFINITY || (long)r.rlim_max > want ? (rlim_t)want : r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
}

int lu_listen(corotls_loop *l, corotls_conf *conf, int *port)
{
    int lfd = -1;
    char addr[64];
    if (corotls_loop_listen(l, "127.0.0.1", "0", conf, &lfd) != COROTLS_OK)
        return -1;
    if (corotls_loop_info(l, lfd, COROTLS_INFO_LOCAL_ADDR, addr, sizeof addr, NULL) != COROTLS_OK)
        return -1;
    *port = atoi(strrchr(addr, ':') + 1);
    return lfd;
}

int lu_pair(corotls_loop *l, int lfd, int port, corotls_conf *cconf, int *cfd, int *sfd)
{
    struct lu_done c = {0}, s = {0};
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    corotls_result r = corotls_loop_connect(l, "127.0.0.1", ps, cconf, 5000, lu_cb, &c, cfd);
    if (r == COROTLS_PENDING) {
        if (!lu_wait(l, &c, 5000) || c.r != COROTLS_OK)
            return -1;
        *cfd = c.fd;
    } else if (r != COROTLS_OK) {
        return -1;
    }
    r = corotls_loop_accept(l, lfd, NULL, 5000, lu_cb, &s, sfd);
    if (r == COROTLS_PENDING) {
        if (!lu_wait(l, &s, 5000) || s.r != COROTLS_OK)
            return -1;
        *sfd = s.fd;
    } else if (r != COROTLS_OK) {
        return -1;
    }
    lu_reset(&c);
    lu_reset(&s);
    return 0;
}

int lu_pair_hs(corotls_loop *l, int lfd, int port, corotls_conf *cconf, int *cfd, int *sfd)
{
    if (lu_pair(l, lfd, port, cconf, cfd, sfd) != 0)
        return -1;
    struct lu_done c = {0}, s = {0};
    corotls_result rc = corotls_loop_handshake(l, *cfd, 5000, lu_cb, &c);
    corotls_result rs = corotls_loop_handshake(l, *sfd, 5000, lu_cb, &s);
    if (rc == COROTLS_PENDING && lu_wait(l, &c, 5000))
        rc = c.r;
    if (rs == COROTLS_PENDING && lu_wait(l, &s, 5000))
        rs = s.r;
    lu_reset(&c);
    lu_reset(&s);
    return rc == COROTLS_OK && rs == COROTLS_OK ? 0 : -1;
}

corotls_result lu_handshake(corotls_loop *l, int fd, int timeout_ms)
{
    struct lu_done d = {0};
    corotls_result r = corotls_loop_handshake(l, fd, timeout_ms, lu_cb, &d);
    if (r == COROTLS_PENDING)
        r = lu_wait(l, &d, 10000) ? d.r : COROTLS_TIMEOUT;
    lu_reset(&d);
    return r;
}

corotls_result lu_send(corotls_loop *l, int fd, const void *p, size_t n, int timeout_ms, size_t *count)
{
    struct lu_done d = {0};
    corotls_result r = corotls_loop_send(l, fd, p, n, timeout_ms, lu_cb, &d);
    if (count)
        *count = r == COROTLS_OK ? n : 0;
    if (r == COROTLS_PENDING) {
        r = lu_wait(l, &d, 60000) ? d.r : COROTLS_TIMEOUT;
        if (count)
            *count = d.len;
    }
    lu_reset(&d);
    return r;
}

corotls_result lu_recv_n(corotls_loop *l, int fd, void *buf, size_t n, int timeout_ms)
{
    uint8_t *out = buf;
    size_t got = 0;
    while (got < n) {
        struct lu_done d = {0};
        const uint8_t *data = NULL;
        size_t len = 0;
        corotls_result r = corotls_loop_recv(l, fd, timeout_ms, lu_cb, &d, &data, &len);
        if (r == COROTLS_PENDING) {
            r = lu_wait(l, &d, 60000) ? d.r : COROTLS_TIMEOUT;
            data = d.data;
            len = d.len;
        }
        if (r == COROTLS_OK) {
            if (len > n - got) {
                lu_reset(&d);
                return COROTLS_ERR_ARG; /* more than expected */
            }
            memcpy(out + got, data, len);
            got += len;
        }
        lu_reset(&d);
        if (r != COROTLS_OK)
            return r;
    }
    return COROTLS_OK;
}

void lu_small_buffers(int fd, int bytes)
{
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

int lu_full_listener(int *port, int *fill, int *nfill, int max)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    *nfill = 0;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 0) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
        if (lfd >= 0)
            close(lfd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    for (int i = 0; i < max; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            break;
        fill[(*nfill)++] = fd;
        if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
            break;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 300) == 0)
            return lfd; /* this one hangs: the queue is full */
    }
    for (int i = 0; i < *nfill; i++)
        close(fill[i]);
    *nfill = 0;
    close(lfd);
    return -1;
}

corotls_result lu_transfer(corotls_loop *l, int from, int to, const void *p, size_t n, void *out)
{
    struct lu_done sd = {0};
    corotls_result rs = corotls_loop_send(l, from, p, n, 10000, lu_cb, &sd);
    if (rs != COROTLS_OK && rs != COROTLS_PENDING)
        return rs;
    corotls_result rr = lu_recv_n(l, to, out, n, 10000);
    if (rs == COROTLS_PENDING)
        rs = lu_wait(l, &sd, 10000) ? sd.r : COROTLS_TIMEOUT;
    lu_reset(&sd);
    if (rr == COROTLS_OK && memcmp(p, out, n) != 0)
        rr = COROTLS_ERR_ARG;
    return rr != COROTLS_OK ? rr : rs;
}
