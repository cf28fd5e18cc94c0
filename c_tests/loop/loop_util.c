/* loop_util.c -- see loop_util.h.  (Just over 600 lines: the fixtures every
 * loop suite shares; one file keeps them one link unit.) */
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

corotls_conf *lu_sconf, *lu_cconf, *lu_vconf;

int lu_main(void)
{
    harness_init();
    lu_sconf = util_server_conf("leaf.crt", "leaf.key");
    lu_cconf = util_client_conf(0);
    lu_vconf = util_client_conf(1);
    if (!lu_sconf || !lu_cconf || !lu_vconf)
        return 1;
    int rc = harness_run_all();
    corotls_conf_free(lu_sconf);
    corotls_conf_free(lu_cconf);
    corotls_conf_free(lu_vconf);
    return rc;
}

corotls_result lu_recv_result(corotls_loop *l, int fd, int timeout_ms)
{
    struct lu_done d = {0};
    const uint8_t *data;
    size_t len;
    corotls_result r = corotls_loop_recv(l, fd, timeout_ms, lu_cb, &d, &data, &len);
    if (r == COROTLS_PENDING)
        r = lu_wait(l, &d, timeout_ms < 0 ? 60000 : timeout_ms + 10000) ? d.r : COROTLS_TIMEOUT;
    lu_reset(&d);
    return r;
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

/* ------------------------------------------------------------ mailbox */

void lu_mb_init(struct lu_mailbox *m)
{
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->head = m->tail = NULL;
}

void lu_mb_destroy(struct lu_mailbox *m)
{
    struct lu_msg *x;
    while ((x = lu_mb_take(m, 0)))
        lu_msg_free(x);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
}

void lu_mb_post(struct lu_mailbox *m, void *who, int fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct lu_msg *x = calloc(1, sizeof *x);
    x->who = who;
    x->fd = fd;
    x->r = r;
    x->len = len;
    if (data) {
        x->data = malloc(len ? len : 1);
        memcpy(x->data, data, len);
    }
    pthread_mutex_lock(&m->mu);
    if (m->tail)
        m->tail->next = x;
    else
        m->head = x;
    m->tail = x;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

struct lu_msg *lu_mb_take(struct lu_mailbox *m, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&m->mu);
    while (!m->head)
        if (pthread_cond_timedwait(&m->cv, &m->mu, &ts) != 0)
            break;
    struct lu_msg *x = m->head;
    if (x) {
        m->head = x->next;
        if (!m->head)
            m->tail = NULL;
    }
    pthread_mutex_unlock(&m->mu);
    return x;
}

void lu_msg_free(struct lu_msg *x)
{
    if (x) {
        free(x->data);
        free(x);
    }
}

/* -------------------------------------------------------- echo server */

struct lu_sconn {
    struct lu_server *s;
    int fd;
};

static void srv_run(struct lu_sconn *c);

static void srv_done(struct lu_sconn *c, corotls_result r)
{
    if (r != COROTLS_CLOSED && r != COROTLS_EOF)
        c->s->errors++;
    c->s->closed++;
    corotls_loop_close(c->s->l, c->fd);
    free(c);
}

/* Callback of a pending recv (data set) or send (data NULL). */
static void srv_cb(void *ud, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct lu_sconn *c = ud;
    (void)fd;
    if (r == COROTLS_OK && data)
        r = corotls_loop_send(c->s->l, c->fd, data, len, 10000, srv_cb, c);
    if (r == COROTLS_PENDING)
        return;
    if (r != COROTLS_OK)
        srv_done(c, r);
    else
        srv_run(c);
}

/* recv -> send while operations complete inline (the inline chunk may be
 * passed straight to send). */
static void srv_run(struct lu_sconn *c)
{
    for (;;) {
        const uint8_t *data;
        size_t len;
        corotls_result r = corotls_loop_recv(c->s->l, c->fd, -1, srv_cb, c, &data, &len);
        if (r == COROTLS_OK)
            r = corotls_loop_send(c->s->l, c->fd, data, len, 10000, srv_cb, c);
        if (r == COROTLS_PENDING)
            return;
        if (r != COROTLS_OK) {
            srv_done(c, r);
            return;
        }
    }
}

static void srv_start(struct lu_server *s, int fd)
{
    struct lu_sconn *c = calloc(1, sizeof *c);
    c->s = s;
    c->fd = fd;
    s->accepted++;
    srv_run(c);
}

static int srv_accept_more(struct lu_server *s);

static void srv_accept_cb(void *ud, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct lu_server *s = ud;
    (void)data;
    (void)len;
    if (r == COROTLS_OK) {
        srv_start(s, fd);
        srv_accept_more(s);
    } else if (r != COROTLS_ERR_CANCELLED) {
        s->errors++;
    }
}

int lu_server_start(struct lu_server *s, corotls_loop *l, corotls_conf *conf, int *port)
{
    *s = (struct lu_server){.l = l};
    s->lfd = lu_listen(l, conf, port);
    return s->lfd >= 0 ? srv_accept_more(s) : -1;
}

static int srv_accept_more(struct lu_server *s)
{
    int fd;
    corotls_result r;
    while ((r = corotls_loop_accept(s->l, s->lfd, NULL, -1, srv_accept_cb, s, &fd)) == COROTLS_OK)
        srv_start(s, fd);
    if (r != COROTLS_PENDING) {
        s->errors++;
        return -1;
    }
    return 0;
}

/* -------------------------------------------------------- echo clients */

enum { C_CONNECT, C_HANDSHAKE, C_READY, C_SEND, C_RECV, C_DONE };

struct lu_cconn {
    struct lu_clients *cs;
    int idx, fd, round, phase;
    size_t want, got;
    uint8_t expect[3001], buf[3001];
};

static void client_advance(struct lu_cconn *c, corotls_result r, const uint8_t *data, size_t len);

static void client_cb(void *ud, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct lu_cconn *c = ud;
    if (c->cs->mb) {
        lu_mb_post(c->cs->mb, c, fd, r, data, len);
        return;
    }
    if (c->phase == C_CONNECT && r == COROTLS_OK)
        c->fd = fd;
    client_advance(c, r, data, len);
}

/* One more client is handshaken (or failed before): the last one releases
 * every client waiting at the barrier. */
static void barrier_arrive(struct lu_clients *cs)
{
    if (++cs->ready < cs->n)
        return;
    for (int i = 0; i < cs->n; i++)
        if (cs->conns[i].phase == C_READY) {
            cs->conns[i].phase = C_SEND;
            client_advance(&cs->conns[i], COROTLS_OK, NULL, 0);
        }
}

static void client_end(struct lu_cconn *c, const char *what, corotls_result r)
{
    struct lu_clients *cs = c->cs;
    int early = c->phase < C_READY;
    if (what && !cs->failures++)
        snprintf(cs->first_error, sizeof cs->first_error, "client %d round %d: %s: %s (%s)", c->idx, c->round, what,
                 corotls_result_name(r), corotls_last_error());
    if (c->fd >= 0)
        corotls_loop_close(cs->l, c->fd);
    c->phase = C_DONE;
    __atomic_fetch_add(&cs->done, 1, __ATOMIC_RELEASE);
    if (early)
        barrier_arrive(cs);
}

static const char *phase_name(int phase)
{
    static const char *names[] = {"connect", "handshake", "ready", "send", "recv", "done"};
    return names[phase];
}

/* Advance one client as far as inline completions allow; (r, data, len)
 * is the completion that resumes it (COROTLS_OK, NULL to start). */
static void client_advance(struct lu_cconn *c, corotls_result r, const uint8_t *data, size_t len)
{
    struct lu_clients *cs = c->cs;
    for (;;) {
        if (r != COROTLS_OK) {
            client_end(c, phase_name(c->phase), r);
            return;
        }
        switch (c->phase) {
        case C_CONNECT:
            if (c->fd < 0) {
                char ps[16];
                snprintf(ps, sizeof ps, "%d", cs->port);
                r = corotls_loop_connect(cs->l, "127.0.0.1", ps, cs->conf, 60000, client_cb, c, &c->fd);
                if (r == COROTLS_PENDING)
                    return;
                continue;
            }
            c->phase = C_HANDSHAKE;
            r = corotls_loop_handshake(cs->l, c->fd, 60000, client_cb, c);
            if (r == COROTLS_PENDING)
                return;
            continue;
        case C_HANDSHAKE:
            c->phase = C_READY;
            barrier_arrive(cs); /* may advance this client too */
            return;
        case C_READY:
            return;
        case C_SEND:
            c->want = (size_t)((c->idx * 31 + c->round * 17) % 3000) + 1;
            util_fill(c->expect, c->want, (unsigned)(cs->seed + c->idx * 1000 + c->round));
            c->got = 0;
            c->phase = C_RECV;
            r = corotls_loop_send(cs->l, c->fd, c->expect, c->want, 60000, client_cb, c);
            if (r == COROTLS_PENDING)
                return;
            data = NULL;
            continue;
        case C_RECV:
            if (data) {
                if (c->got + len > c->want) {
                    client_end(c, "more data than sent", COROTLS_ERR_ARG);
                    return;
                }
                memcpy(c->buf + c->got, data, len);
                c->got += len;
                data = NULL;
            }
            if (c->got == c->want) {
                if (memcmp(c->buf, c->expect, c->want) != 0) {
                    client_end(c, "echo differs", COROTLS_ERR_ARG);
                    return;
                }
                if (++c->round == cs->rounds) {
                    client_end(c, NULL, COROTLS_OK);
                    return;
                }
                c->phase = C_SEND;
                continue;
            }
            {
                const uint8_t *d;
                size_t n;
                r = corotls_loop_recv(cs->l, c->fd, 60000, client_cb, c, &d, &n);
                if (r == COROTLS_PENDING)
                    return;
                data = d;
                len = n;
            }
            continue;
        default:
            return;
        }
    }
}

void lu_clients_start(struct lu_clients *cs)
{
    cs->conns = calloc((size_t)cs->n, sizeof *cs->conns);
    for (int i = 0; i < cs->n; i++) {
        cs->conns[i].cs = cs;
        cs->conns[i].idx = i;
        cs->conns[i].fd = -1;
    }
    for (int i = 0; i < cs->n; i++)
        client_advance(&cs->conns[i], COROTLS_OK, NULL, 0);
}

void lu_clients_pump(struct lu_clients *cs, int timeout_ms)
{
    while (cs->done < cs->n) {
        struct lu_msg *m = lu_mb_take(cs->mb, timeout_ms);
        if (!m)
            return;
        struct lu_cconn *c = m->who;
        if (c->phase == C_CONNECT && m->r == COROTLS_OK)
            c->fd = m->fd;
        client_advance(c, m->r, m->data, m->len);
        lu_msg_free(m);
    }
}

int lu_clients_done(struct lu_clients *cs)
{
    return __atomic_load_n(&cs->done, __ATOMIC_ACQUIRE);
}

void lu_clients_free(struct lu_clients *cs)
{
    free(cs->conns);
    cs->conns = NULL;
}
