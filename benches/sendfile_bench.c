/*
 * sendfile_bench: throughput of corotls_conn_sendfile against the same file
 * sent by a corotls_conn_write loop (pread 64 KiB, write), over loopback TCP
 * to a corotls conn server on its own thread that reads and counts every
 * byte until close_notify.  Same file, same TLS 1.3 suite, best of N runs.
 *
 *   sendfile_bench --certdir DIR [--quick] [--out FILE]
 *
 * Writes one row to FILE (default target/bench/rows/sendfile.tsv):
 *   metric  unit  corotls  baseline  baseline_name  ratio
 *   sendfile_mibps  MiB/s  <sendfile>  <write loop>  conn_send  <ratio>
 * and prints it, with the kTLS report of the sending connection (kernel
 * offload is not built: both columns measure user-space encryption, so
 * the ratio is the cost of the file path against the buffer path).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "corotls.h"

static char certdir[512] = "target/certs";

static const char *cert(const char *name)
{
    static char bufs[4][1024];
    static int i;
    char *b = bufs[i++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", certdir, name);
    return b;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "sendfile_bench: %s: %s\n", what, why);
    exit(1);
}

static void wait_fd(int fd, corotls_result r)
{
    struct pollfd p = {.fd = fd, .events = r == COROTLS_WANT_WRITE ? POLLOUT : POLLIN};
    if (poll(&p, 1, 30000) != 1)
        die("poll", "timed out");
}

static corotls_conf *sconf, *cconf;

struct sink {
    int lfd;
    pthread_t thread;
    unsigned long long bytes;
    corotls_result end;
};

static void *sink_main(void *arg)
{
    struct sink *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    corotls_conn *c = NULL;
    if (fd < 0 || corotls_conn_new(sconf, fd, &c) != COROTLS_OK)
        die("sink", "accept");
    static __thread uint8_t buf[256 * 1024];
    for (;;) {
        size_t n = 0;
        corotls_result r = corotls_conn_read(c, buf, sizeof buf, &n);
        if (r == COROTLS_OK) {
            s->bytes += n;
        } else if (r == COROTLS_WANT_READ || r == COROTLS_WANT_WRITE) {
            wait_fd(fd, r);
        } else {
            s->end = r;
            break;
        }
    }
    corotls_conn_free(c);
    close(fd);
    return NULL;
}

/* One connection to a fresh sink; returns the client conn (fd in *fd). */
static corotls_conn *connect_sink(struct sink *s, int *fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof a) || listen(s->lfd, 1) ||
        getsockname(s->lfd, (struct sockaddr *)&a, &len))
        die("listen", strerror(errno));
    s->bytes = 0;
    pthread_create(&s->thread, NULL, sink_main, s);
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*fd < 0 || connect(*fd, (struct sockaddr *)&a, sizeof a))
        die("connect", strerror(errno));
    corotls_conn *c = NULL;
    corotls_result r = corotls_conn_new(cconf, *fd, &c);
    if (r == COROTLS_OK)
        r = corotls_conn_set_sni(c, "localhost");
    while (r == COROTLS_OK && (r = corotls_conn_handshake(c)) != COROTLS_OK) {
        if (r != COROTLS_WANT_READ && r != COROTLS_WANT_WRITE)
            break;
        wait_fd(*fd, r);
        r = COROTLS_OK;
    }
    if (r != COROTLS_OK)
        die("handshake", corotls_last_error());
    return c;
}

static void finish(corotls_conn *c, int fd, struct sink *s, unsigned long long want)
{
    corotls_result r;
    while ((r = corotls_conn_shutdown(c)) == COROTLS_WANT_WRITE)
        wait_fd(fd, r);
    pthread_join(s->thread, NULL);
    close(s->lfd);
    if (s->end != COROTLS_CLOSED || s->bytes != want)
        die("sink", "did not get every byte before close_notify");
    corotls_conn_free(c);
    close(fd);
}

/* MiB/s of one transfer of the file with sendfile (1) or the write loop (0). */
static double run(int file, unsigned long long size, int use_sendfile, char *ktls_why, size_t why_cap)
{
    struct sink s = {0};
    int fd;
    corotls_conn *c = connect_sink(&s, &fd);
    static uint8_t buf[64 * 1024];
    double t0 = now_s();
    unsigned long long done = 0;
    while (done < size) {
        corotls_result r;
        if (use_sendfile) {
            uint64_t sent = 0;
            r = corotls_conn_sendfile(c, file, done, size - done, &sent);
            if (r == COROTLS_OK)
                done += sent;
        } else {
            size_t want = size - done < sizeof buf ? (size_t)(size - done) : sizeof buf;
            ssize_t n = pread(file, buf, want, (off_t)done);
            if (n <= 0)
                die("pread", strerror(errno));
            size_t off = 0;
            r = COROTLS_OK;
            while (off < (size_t)n) {
                size_t w = 0;
                r = corotls_conn_write(c, buf + off, (size_t)n - off, &w);
                if (r == COROTLS_OK)
                    off += w;
                else if (r == COROTLS_WANT_WRITE || r == COROTLS_WANT_READ)
                    wait_fd(fd, r);
                else
                    break;
            }
            if (off == (size_t)n) {
                done += (unsigned long long)n;
                r = COROTLS_OK;
            }
        }
        if (r == COROTLS_WANT_WRITE || r == COROTLS_WANT_READ)
            wait_fd(fd, r);
        else if (r != COROTLS_OK)
            die("send", corotls_conn_error(c));
    }
    if (ktls_why) {
        bool ks, kr;
        corotls_conn_ktls(c, &ks, &kr, ktls_why, why_cap, NULL);
    }
    finish(c, fd, &s, size);
    double t = now_s() - t0;
    return (double)size / (1024.0 * 1024.0) / t;
}

static corotls_conf *conf_of(int role)
{
    corotls_conf_builder *b = NULL;
    corotls_conf *c = NULL;
    corotls_result r = corotls_conf_builder_new(role, &b);
    if (r == COROTLS_OK && role == COROTLS_SERVER)
        r = corotls_conf_builder_add_identity_file(b, cert("leaf.crt"), cert("leaf.key"), NULL);
    if (r == COROTLS_OK && role == COROTLS_CLIENT)
        r = corotls_conf_builder_add_ca_file(b, cert("ca.crt"));
    if (r == COROTLS_OK && role == COROTLS_CLIENT)
        r = corotls_conf_builder_set_ktls(b, true);
    if (r == COROTLS_OK)
        r = corotls_conf_builder_set_suites(b, "TLS_AES_128_GCM_SHA256");
    if (r == COROTLS_OK)
        r = corotls_conf_builder_build(b, &c);
    corotls_conf_builder_free(b);
    if (r != COROTLS_OK)
        die("conf", corotls_last_error());
    return c;
}

int main(int argc, char **argv)
{
    const char *out = "target/bench/rows/sendfile.tsv";
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--certdir") && i + 1 < argc)
            snprintf(certdir, sizeof certdir, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else
            die("usage", "sendfile_bench --certdir DIR [--quick] [--out FILE]");
    }
    sconf = conf_of(COROTLS_SERVER);
    cconf = conf_of(COROTLS_CLIENT);

    unsigned long long size = quick ? 8ull << 20 : 128ull << 20;
    int runs = quick ? 1 : 5;
    char path[] = "/tmp/corotls-sendfile-bench-XXXXXX";
    int file = mkstemp(path);
    if (file < 0)
        die("mkstemp", strerror(errno));
    unlink(path);
    static uint8_t chunk[1 << 20];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (uint8_t)(i * 2654435761u >> 24);
    for (unsigned long long w = 0; w < size; w += sizeof chunk)
        if (write(file, chunk, sizeof chunk) != (ssize_t)sizeof chunk)
            die("write", strerror(errno));

    char why[512] = "";
    double best_sf = 0, best_wr = 0;
    /* Alternate, so that neither side gets a warmer machine. */
    for (int i = 0; i < runs; i++) {
        double a = run(file, size, 1, why, sizeof why);
        double b = run(file, size, 0, NULL, 0);
        if (a > best_sf)
            best_sf = a;
        if (b > best_wr)
            best_wr = b;
    }
    close(file);

    char dir[512];
    snprintf(dir, sizeof dir, "%s", out);
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0777);
            *p = '/';
        }
    FILE *f = fopen(out, "w");
    if (!f)
        die(out, strerror(errno));
    const char *header = "metric\tunit\tcorotls\tbaseline\tbaseline_name\tratio\n";
    char row[256];
    snprintf(row, sizeof row, "sendfile_mibps\tMiB/s\t%.1f\t%.1f\tconn_send\t%.2f\n", best_sf, best_wr,
             best_wr > 0 ? best_sf / best_wr : 0);
    fputs(header, f);
    fputs(row, f);
    fclose(f);
    printf("%s%s", header, row);
    printf("# %llu MiB file, best of %d, TLS_AES_128_GCM_SHA256 over loopback; kTLS: %s\n", size >> 20, runs,
           why[0] ? why : "active");
    corotls_conf_free(sconf);
    corotls_conf_free(cconf);
    return 0;
}
