/*
 * bench: corotls against raw OpenSSL and plain TCP, the same work side by
 * side in one run, over loopback.
 *
 *   bench [--quick] [--only NAME] [--certdir DIR]
 *
 * Every variant uses the same I/O model -- non-blocking sockets, poll(2),
 * one thread per side -- so the ratios compare TLS stacks, not designs:
 *   tcp      plain send/recv
 *   openssl  raw OpenSSL: SSL_set_fd (socket BIO), SSL_read/SSL_write
 *   corotls  corotls_conn (memory BIOs, coalesced sends)
 *
 * Benchmarks: full handshakes per second (connect, handshake, one byte each
 * way, close); bulk throughput (16 KiB writes, one direction); small-message
 * echo round trips per second (64 bytes); idle memory per established
 * connection (RSS growth / endpoints).
 *
 * Output: a table, then one stable line per benchmark:
 *   summary <name> <unit> tcp=<v> openssl=<v> corotls=<v> corotls/openssl=<r> corotls/tcp=<r>
 * (tcp=- where plain TCP has no meaning, e.g. handshakes).
 */

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "corotls.h"

enum { WANT_NONE = 0, WANT_R = 1, WANT_W = 2, FAILED = -1 };

/* One TLS (or not) stack behind a common, non-blocking interface. */
struct stack {
    const char *name;
    void *(*wrap)(int fd, int server);
    int (*handshake)(void *c);                       /* 0 done, WANT_*, FAILED */
    long (*read)(void *c, void *b, size_t n, int *w); /* >0 bytes; 0 + *w; -1 */
    long (*write)(void *c, const void *b, size_t n, int *w);
    void (*unwrap)(void *c);
};

static const char *certdir = "target/certs";
static char cert_path[512], key_path[512], ca_path[512];

/* ------------------------------------------------------------ plain TCP */

static void *tcp_wrap(int fd, int server)
{
    (void)server;
    return (void *)(intptr_t)(fd + 1);
}
static int tcp_handshake(void *c)
{
    (void)c;
    return 0;
}
static long tcp_io(long n, int *w, int want)
{
    if (n > 0)
        return n;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        *w = want;
        return 0;
    }
    return -1;
}
static long tcp_read(void *c, void *b, size_t n, int *w)
{
    return tcp_io(recv((int)(intptr_t)c - 1, b, n, 0), w, WANT_R);
}
static long tcp_write(void *c, const void *b, size_t n, int *w)
{
    return tcp_io(send((int)(intptr_t)c - 1, b, n, MSG_NOSIGNAL), w, WANT_W);
}
static void tcp_unwrap(void *c)
{
    (void)c;
}
static const struct stack tcp_stack = {"tcp", tcp_wrap, tcp_handshake, tcp_read, tcp_write, tcp_unwrap};

/* ---------------------------------------------------------- raw OpenSSL */

static SSL_CTX *ossl_server_ctx, *ossl_client_ctx;

static void ossl_init(void)
{
    ossl_server_ctx = SSL_CTX_new(TLS_server_method());
    ossl_client_ctx = SSL_CTX_new(TLS_client_method());
    if (SSL_CTX_use_certificate_chain_file(ossl_server_ctx, cert_path) != 1 ||
        SSL_CTX_use_PrivateKey_file(ossl_server_ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_load_verify_locations(ossl_client_ctx, ca_path, NULL) != 1) {
        ERR_print_errors_fp(stderr);
        exit(1);
    }
    SSL_CTX_set_verify(ossl_client_ctx, SSL_VERIFY_PEER, NULL);
    /* The same mode corotls sets. */
    SSL_CTX_set_mode(ossl_server_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_mode(ossl_client_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}
static void *ossl_wrap(int fd, int server)
{
    SSL *s = SSL_new(server ? ossl_server_ctx : ossl_client_ctx);
    SSL_set_fd(s, fd);
    if (server)
        SSL_set_accept_state(s);
    else {
        SSL_set_connect_state(s);
        SSL_set1_host(s, "localhost");
    }
    return s;
}
static int ossl_want(SSL *s, int r)
{
    switch (SSL_get_error(s, r)) {
    case SSL_ERROR_WANT_READ:
        return WANT_R;
    case SSL_ERROR_WANT_WRITE:
        return WANT_W;
    default:
        return FAILED;
    }
}
static int ossl_handshake(void *c)
{
    int r = SSL_do_handshake(c);
    return r == 1 ? 0 : ossl_want(c, r);
}
static long ossl_read(void *c, void *b, size_t n, int *w)
{
    int r = SSL_read(c, b, (int)n);
    if (r > 0)
        return r;
    return (*w = ossl_want(c, r)) == FAILED ? -1 : 0;
}
static long ossl_write(void *c, const void *b, size_t n, int *w)
{
    int r = SSL_write(c, b, (int)n);
    if (r > 0)
        return r;
    return (*w = ossl_want(c, r)) == FAILED ? -1 : 0;
}
static void ossl_unwrap(void *c)
{
    SSL_free(c);
}
static const struct stack ossl_stack = {"openssl", ossl_wrap, ossl_handshake, ossl_read, ossl_write, ossl_unwrap};

/* -------------------------------------------------------------- corotls */

static corotls_conf *coro_server_conf, *coro_client_conf;

static void coro_init(void)
{
    if (corotls_conf_new(COROTLS_SERVER, cert_path, key_path, NULL, NULL, false, &coro_server_conf) != COROTLS_OK ||
        corotls_conf_new(COROTLS_CLIENT, NULL, NULL, ca_path, NULL, true, &coro_client_conf) != COROTLS_OK) {
        fprintf(stderr, "corotls conf: %s\n", corotls_last_error());
        exit(1);
    }
}
static void *coro_wrap(int fd, int server)
{
    corotls_conn *c = NULL;
    if (corotls_conn_new(server ? coro_server_conf : coro_client_conf, fd, &c) != COROTLS_OK)
        return NULL;
    if (!server)
        corotls_conn_set_verify_host(c, "localhost");
    return c;
}
static int coro_want(corotls_result r)
{
    return r == COROTLS_WANT_READ ? WANT_R : r == COROTLS_WANT_WRITE ? WANT_W : FAILED;
}
static int coro_handshake(void *c)
{
    corotls_result r = corotls_conn_handshake(c);
    return r == COROTLS_OK ? 0 : coro_want(r);
}
static long coro_read(void *c, void *b, size_t n, int *w)
{
    size_t got = 0;
    corotls_result r = corotls_conn_read(c, b, n, &got);
    if (r == COROTLS_OK)
        return (long)got;
    return (*w = coro_want(r)) == FAILED ? -1 : 0;
}
static long coro_write(void *c, const void *b, size_t n, int *w)
{
    size_t put = 0;
    corotls_result r = corotls_conn_write(c, b, n, &put);
    if (put > 0)
        return (long)put;
    if (r == COROTLS_OK)
        return 0;
    return (*w = coro_want(r)) == FAILED ? -1 : 0;
}
static void coro_unwrap(void *c)
{
    corotls_conn_free(c);
}
static const struct stack coro_stack = {"corotls", coro_wrap, coro_handshake, coro_read, coro_write, coro_unwrap};

/* ------------------------------------------------------------- drivers */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void wait_fd(int fd, int want)
{
    struct pollfd p = {.fd = fd, .events = want == WANT_W ? POLLOUT : POLLIN};
    while (poll(&p, 1, 10000) < 0 && errno == EINTR)
        ;
}

static int do_handshake(const struct stack *st, void *c, int fd)
{
    int r;
    while ((r = st->handshake(c)) > 0)
        wait_fd(fd, r);
    return r;
}

static int write_all(const struct stack *st, void *c, int fd, const char *b, size_t n)
{
    while (n > 0) {
        int w = WANT_NONE;
        long k = st->write(c, b, n, &w);
        if (k < 0)
            return -1;
        if (k == 0) {
            wait_fd(fd, w);
            continue;
        }
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static int read_n(const struct stack *st, void *c, int fd, char *b, size_t n)
{
    while (n > 0) {
        int w = WANT_NONE;
        long k = st->read(c, b, n, &w);
        if (k < 0)
            return -1;
        if (k == 0) {
            wait_fd(fd, w);
            continue;
        }
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4096) != 0)
        return -1;
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return fd;
}

static int connect_loopback(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static int accept_nb(int lfd)
{
    int one = 1, fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* The server side of every benchmark runs in this thread. */
struct server_job {
    const struct stack *st;
    int lfd, kind, count;
    size_t bytes, msg;
    int failed;
};
enum { JOB_HANDSHAKE, JOB_BULK, JOB_ECHO };

static void *server_main(void *arg)
{
    struct server_job *j = arg;
    char *buf = malloc(1 << 16);
    for (int i = 0; i < j->count && !j->failed; i++) {
        int fd = accept_nb(j->lfd);
        void *c = j->st->wrap(fd, 1);
        if (c == NULL || do_handshake(j->st, c, fd) != 0) {
            j->failed = 1;
        } else if (j->kind == JOB_HANDSHAKE) {
            j->failed = read_n(j->st, c, fd, buf, 1) || write_all(j->st, c, fd, buf, 1);
        } else if (j->kind == JOB_BULK) {
            for (size_t got = 0; got < j->bytes && !j->failed;) {
                int w = WANT_NONE;
                long k = j->st->read(c, buf, 1 << 16, &w);
                if (k < 0)
                    j->failed = 1;
                else if (k == 0)
                    wait_fd(fd, w);
                got += (size_t)(k > 0 ? k : 0);
            }
            j->failed |= write_all(j->st, c, fd, "k", 1);
        } else {
            for (int r = 0; r < (int)j->bytes && !j->failed; r++)
                j->failed = read_n(j->st, c, fd, buf, j->msg) || write_all(j->st, c, fd, buf, j->msg);
        }
        if (c)
            j->st->unwrap(c);
        close(fd);
    }
    free(buf);
    return NULL;
}

static double run_handshakes(const struct stack *st, int n)
{
    struct server_job j = {.st = st, .kind = JOB_HANDSHAKE, .count = n};
    int port;
    j.lfd = listen_loopback(&port);
    pthread_t t;
    pthread_create(&t, NULL, server_main, &j);
    double t0 = now();
    int failed = 0;
    for (int i = 0; i < n && !failed; i++) {
        char b = 'x';
        int fd = connect_loopback(port);
        void *c = st->wrap(fd, 0);
        failed = c == NULL || do_handshake(st, c, fd) != 0 || write_all(st, c, fd, &b, 1) || read_n(st, c, fd, &b, 1);
        if (c)
            st->unwrap(c);
        close(fd);
    }
    double dt = now() - t0;
    pthread_join(t, NULL);
    close(j.lfd);
    return failed || j.failed ? -1 : n / dt;
}

static double run_bulk(const struct stack *st, size_t total)
{
    struct server_job j = {.st = st, .kind = JOB_BULK, .count = 1, .bytes = total};
    int port;
    j.lfd = listen_loopback(&port);
    pthread_t t;
    pthread_create(&t, NULL, server_main, &j);
    int fd = connect_loopback(port);
    void *c = st->wrap(fd, 0);
    char *buf = calloc(1, 16384), ack;
    int failed = c == NULL || do_handshake(st, c, fd) != 0;
    double t0 = now();
    for (size_t sent = 0; sent < total && !failed; sent += 16384)
        failed = write_all(st, c, fd, buf, 16384);
    failed = failed || read_n(st, c, fd, &ack, 1); /* the server has it all */
    double dt = now() - t0;
    if (c)
        st->unwrap(c);
    close(fd);
    free(buf);
    pthread_join(t, NULL);
    close(j.lfd);
    return failed || j.failed ? -1 : (double)total / (1 << 20) / dt;
}

static double run_echo(const struct stack *st, int rounds, size_t msg)
{
    struct server_job j = {.st = st, .kind = JOB_ECHO, .count = 1, .bytes = (size_t)rounds, .msg = msg};
    int port;
    j.lfd = listen_loopback(&port);
    pthread_t t;
    pthread_create(&t, NULL, server_main, &j);
    int fd = connect_loopback(port);
    void *c = st->wrap(fd, 0);
    char buf[256];
    memset(buf, 'e', sizeof buf);
    int failed = c == NULL || do_handshake(st, c, fd) != 0;
    double t0 = now();
    for (int r = 0; r < rounds && !failed; r++)
        failed = write_all(st, c, fd, buf, msg) || read_n(st, c, fd, buf, msg);
    double dt = now() - t0;
    if (c)
        st->unwrap(c);
    close(fd);
    pthread_join(t, NULL);
    close(j.lfd);
    return failed || j.failed ? -1 : rounds / dt;
}

static long rss_kib(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Both ends in this thread: n connections, handshaken, then idle. */
static double run_idle_memory(const struct stack *st, int n)
{
    int port, lfd = listen_loopback(&port);
    int *fds = malloc(sizeof(int) * 2 * (size_t)n);
    void **cs = malloc(sizeof(void *) * 2 * (size_t)n);
    long before = rss_kib();
    int failed = 0;
    for (int i = 0; i < n && !failed; i++) {
        fds[2 * i] = connect_loopback(port);
        fds[2 * i + 1] = accept_nb(lfd);
        cs[2 * i] = st->wrap(fds[2 * i], 0);
        cs[2 * i + 1] = st->wrap(fds[2 * i + 1], 1);
        int rc = WANT_R, rs = WANT_R;
        for (int k = 0; k < 100000 && (rc > 0 || rs > 0); k++) {
            if (rc > 0)
                rc = st->handshake(cs[2 * i]);
            if (rs > 0)
                rs = st->handshake(cs[2 * i + 1]);
        }
        /* One byte each way finishes TLS 1.3 ticket traffic too. */
        char b = 'i';
        failed = rc != 0 || rs != 0 || write_all(st, cs[2 * i], fds[2 * i], &b, 1) ||
                 read_n(st, cs[2 * i + 1], fds[2 * i + 1], &b, 1) ||
                 write_all(st, cs[2 * i + 1], fds[2 * i + 1], &b, 1) || read_n(st, cs[2 * i], fds[2 * i], &b, 1);
    }
    long after = rss_kib();
    for (int i = 0; i < 2 * n; i++) {
        st->unwrap(cs[i]);
        close(fds[i]);
    }
    free(fds);
    free(cs);
    close(lfd);
    return failed ? -1 : (double)(after - before) / (2.0 * n);
}

/* ---------------------------------------------------------------- main */

struct row {
    const char *name, *unit;
    double v[3]; /* tcp, openssl, corotls */
    int has_tcp;
};

int main(int argc, char **argv)
{
    int quick = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--certdir") && i + 1 < argc)
            certdir = argv[++i];
        else {
            fprintf(stderr, "usage: bench [--quick] [--only NAME] [--certdir DIR]\n");
            return 2;
        }
    }
    snprintf(cert_path, sizeof cert_path, "%s/leaf.crt", certdir);
    snprintf(key_path, sizeof key_path, "%s/leaf.key", certdir);
    snprintf(ca_path, sizeof ca_path, "%s/ca.crt", certdir);
    signal(SIGPIPE, SIG_IGN);
    ossl_init();
    coro_init();

    const struct stack *stacks[3] = {&tcp_stack, &ossl_stack, &coro_stack};
    int hs = quick ? 20 : 400, echo = quick ? 500 : 20000, idle = quick ? 20 : 300;
    size_t bulk = (size_t)(quick ? 16 : 512) << 20;
    struct row rows[] = {
        {"handshake", "handshakes/s", {0}, 0},
        {"bulk", "MiB/s", {0}, 1},
        {"echo64", "round-trips/s", {0}, 1},
        {"idle_memory", "KiB/endpoint", {0}, 0},
    };
    int nrows = (int)(sizeof rows / sizeof rows[0]);
    printf("corotls %s vs %s vs plain TCP, loopback, non-blocking + poll(2), one thread per side%s\n",
           corotls_version(), OpenSSL_version(OPENSSL_VERSION), quick ? " (quick)" : "");
    printf("%-12s %-14s %12s %12s %12s %16s %12s\n", "benchmark", "unit", "tcp", "openssl", "corotls", "corotls/openssl",
           "corotls/tcp");
    for (int r = 0; r < nrows; r++) {
        if (only && strcmp(only, rows[r].name))
            continue;
        for (int s = 0; s < 3; s++) {
            if (s == 0 && !rows[r].has_tcp) {
                rows[r].v[s] = -2;
                continue;
            }
            switch (r) {
            case 0: rows[r].v[s] = run_handshakes(stacks[s], hs); break;
            case 1: rows[r].v[s] = run_bulk(stacks[s], bulk); break;
            case 2: rows[r].v[s] = run_echo(stacks[s], echo, 64); break;
            case 3: rows[r].v[s] = run_idle_memory(stacks[s], idle); break;
            }
        }
        double *v = rows[r].v;
        double ro = v[1] > 0 && v[2] >= 0 ? v[2] / v[1] : -1, rt = v[0] > 0 && v[2] >= 0 ? v[2] / v[0] : -1;
        char tcp_s[32], ro_s[32], rt_s[32];
        snprintf(tcp_s, sizeof tcp_s, v[0] == -2 ? "-" : "%.1f", v[0]);
        snprintf(ro_s, sizeof ro_s, ro < 0 ? "-" : "%.3f", ro);
        snprintf(rt_s, sizeof rt_s, rt < 0 ? "-" : "%.3f", rt);
        printf("%-12s %-14s %12s %12.1f %12.1f %16s %12s\n", rows[r].name, rows[r].unit, tcp_s, v[1], v[2], ro_s, rt_s);
    }
    printf("\n");
    for (int r = 0; r < nrows; r++) {
        if (only && strcmp(only, rows[r].name))
            continue;
        double *v = rows[r].v;
        printf("summary %s %s tcp=", rows[r].name, rows[r].unit);
        if (v[0] == -2)
            printf("-");
        else
            printf("%.1f", v[0]);
        printf(" openssl=%.1f corotls=%.1f corotls/openssl=", v[1], v[2]);
        if (v[1] > 0 && v[2] >= 0)
            printf("%.3f", v[2] / v[1]);
        else
            printf("-");
        printf(" corotls/tcp=");
        if (v[0] > 0 && v[2] >= 0)
            printf("%.3f", v[2] / v[0]);
        else
            printf("-");
        printf("\n");
    }
    int failed = 0;
    for (int r = 0; r < nrows; r++)
        for (int s = 0; s < 3; s++)
            failed |= rows[r].v[s] == -1;
    corotls_conf_free(coro_server_conf);
    corotls_conf_free(coro_client_conf);
    SSL_CTX_free(ossl_server_ctx);
    SSL_CTX_free(ossl_client_ctx);
    return failed ? 1 : 0;
}
