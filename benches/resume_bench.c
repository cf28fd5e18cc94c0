/*
 * resume_bench: full versus resumed handshakes through corotls, TLS 1.2
 * and TLS 1.3 (make bench-resume).
 *
 *   resume_bench [--certdir DIR] [--rows FILE] [--quick] [--no-callgrind]
 *
 * Work: a client and a server corotls_session in one thread, ciphertext
 * moved between them in memory (no sockets, so the number is the TLS work
 * of both ends, not the kernel's); RSA-2048 server certificate
 * (leaf.crt), the default suites and groups.  A "full" handshake is a
 * client session without a resume key; a "resumed" one has the resume key
 * and finds a session in the conf's cache (TLS 1.3: a ticket the previous
 * handshake received, as a real client would; the server renews it).  In
 * both, the client reads what the server sends after the handshake (TLS
 * 1.3 tickets), so both include ticket issuance.  A "resumed" handshake
 * that did not resume ends the program with an error.
 *
 * Wall clock: handshakes per second over ~0.4 s (0.1 s with --quick),
 * in alternating full/resumed pairs, 5 pairs (3 with --quick); the median
 * of each.  Instructions (when valgrind is installed, unless
 * --no-callgrind): the program runs itself under callgrind doing N and
 * then N+10 handshakes of one kind; the difference over 10 is the cost of
 * one handshake, setup excluded.
 *
 * Output: a table on stdout, and rows appended to FILE (default
 * target/bench/rows/resume.tsv, rewritten with its header):
 *   metric  unit  corotls  baseline  baseline_name  ratio
 * resumed_handshake_rps: corotls = resumed per second, baseline = full per
 * second (baseline_name full_handshake), ratio = resumed / full;
 * resumed_handshake_instructions: instructions per handshake, ratio = full
 * / resumed.  Each metric appears once: the plain name is TLS 1.3 (the
 * default version), the `_tls12` name TLS 1.2.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "corotls.h"

static const char *certdir = "target/certs";
static int quick;

static void die(const char *what)
{
    fprintf(stderr, "resume_bench: %s: %s\n", what, corotls_last_error());
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *path(const char *name)
{
    static char buf[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", certdir, name);
    return buf[i];
}

struct pair {
    corotls_conf *server, *client;
};

static struct pair confs(int version)
{
    struct pair p = {0};
    corotls_conf_builder *b;
    if (corotls_conf_builder_new(COROTLS_SERVER, &b) != COROTLS_OK ||
        corotls_conf_builder_add_identity_file(b, path("leaf.crt"), path("leaf.key"), NULL) != COROTLS_OK ||
        corotls_conf_builder_set_versions(b, version, version) != COROTLS_OK ||
        corotls_conf_builder_build(b, &p.server) != COROTLS_OK)
        die("server conf");
    corotls_conf_builder_free(b);
    if (corotls_conf_builder_new(COROTLS_CLIENT, &b) != COROTLS_OK ||
        corotls_conf_builder_add_ca_file(b, path("ca.crt")) != COROTLS_OK ||
        corotls_conf_builder_build(b, &p.client) != COROTLS_OK)
        die("client conf");
    corotls_conf_builder_free(b);
    return p;
}

/* Move what `from` produced into `to`; how many bytes. */
static size_t move(corotls_session *from, corotls_session *to)
{
    static uint8_t buf[1 << 16];
    size_t total = 0, n;
    while ((n = corotls_session_out_read(from, buf, sizeof buf)) > 0) {
        if (corotls_session_feed(to, buf, n, NULL) != COROTLS_OK)
            die("feed");
        total += n;
    }
    return total;
}

/* One handshake; returns whether it resumed. */
static int handshake(const struct pair *p, int resume)
{
    corotls_session *c, *s;
    if (corotls_session_new(p->client, &c) != COROTLS_OK || corotls_session_new(p->server, &s) != COROTLS_OK ||
        corotls_session_set_sni(c, "localhost") != COROTLS_OK ||
        (resume && corotls_session_set_resume_key(c, "bench.invalid", 443) != COROTLS_OK))
        die("session");
    corotls_result r = corotls_session_handshake(c);
    for (int i = 0; i < 20 && !(corotls_session_handshake_done(c) && corotls_session_handshake_done(s)); i++) {
        if (r != COROTLS_OK && r != COROTLS_WANT_READ)
            die("client handshake");
        move(c, s);
        move(s, c);
        r = corotls_session_handshake(c);
    }
    if (!corotls_session_handshake_done(c) || !corotls_session_handshake_done(s))
        die("handshake did not finish");
    move(c, s);
    move(s, c); /* TLS 1.3 tickets reach the client */
    int resumed = corotls_session_resumed(c);
    corotls_session_free(c);
    corotls_session_free(s);
    return resumed;
}

/* n handshakes of one kind (a resumed run starts from a warm cache). */
static void run_n(const struct pair *p, int resume, int n)
{
    for (int i = 0; i < n; i++)
        if (handshake(p, resume) != resume) {
            fprintf(stderr, "resume_bench: a %s handshake %s\n", resume ? "resumed" : "full",
                    resume ? "did not resume" : "resumed");
            exit(1);
        }
}

static double rate(const struct pair *p, int resume, double seconds)
{
    int n = 0;
    double t0 = now_s(), t;
    do {
        run_n(p, resume, 5);
        n += 5;
        t = now_s() - t0;
    } while (t < seconds);
    return n / t;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Instructions of `n` handshakes of one kind under callgrind (whole
 * program), or -1. */
static double callgrind(const char *self, const char *version, const char *kind, int n)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "valgrind --tool=callgrind --callgrind-out-file=/dev/null %s --certdir %s --count %s --version %s "
             "-n %d 2>&1",
             self, certdir, kind, version, n);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    char line[512];
    double ir = -1;
    while (fgets(line, sizeof line, f)) {
        const char *c = strstr(line, "Collected : ");
        if (c)
            ir = strtod(c + 12, NULL);
    }
    return pclose(f) == 0 ? ir : -1;
}

static int version_of(const char *v)
{
    return strcmp(v, "1.2") == 0 ? COROTLS_TLS1_2 : COROTLS_TLS1_3;
}

int main(int argc, char **argv)
{
    const char *rows = "target/bench/rows/resume.tsv", *count = NULL, *version = "1.3";
    int n = 0, use_callgrind = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quick")) quick = 1;
        else if (!strcmp(a, "--no-callgrind")) use_callgrind = 0;
        else if (v && !strcmp(a, "--certdir")) certdir = argv[++i];
        else if (v && !strcmp(a, "--rows")) rows = argv[++i];
        else if (v && !strcmp(a, "--count")) count = argv[++i];
        else if (v && !strcmp(a, "--version")) version = argv[++i];
        else if (v && !strcmp(a, "-n")) n = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: resume_bench [--certdir DIR] [--rows FILE] [--quick] [--no-callgrind]\n");
            return 2;
        }
    }
    if (count) { /* the callgrind driver: n handshakes of one kind */
        struct pair p = confs(version_of(version));
        int resume = strcmp(count, "resumed") == 0;
        if (resume)
            handshake(&p, 1); /* full, with the resume key: fills the cache */
        run_n(&p, resume, n);
        corotls_conf_free(p.server);
        corotls_conf_free(p.client);
        return 0;
    }

    int have_valgrind = use_callgrind && system("valgrind --version >/dev/null 2>&1") == 0;
    char dir[512];
    snprintf(dir, sizeof dir, "%s", rows);
    for (char *s = dir + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        mkdir(dir, 0755);
        *s = '/';
    }
    FILE *out = fopen(rows, "w");
    if (out == NULL) {
        fprintf(stderr, "resume_bench: %s: %s\n", rows, strerror(errno));
        return 1;
    }
    fprintf(out, "metric\tunit\tcorotls\tbaseline\tbaseline_name\tratio\n");
    printf("%-8s %-14s %14s %14s %8s\n", "version", "measure", "full", "resumed", "ratio");
    const char *versions[] = {"1.2", "1.3"};
    const char *suffix[] = {"_tls12", ""}; /* one row per metric and baseline */
    int pairs = quick ? 3 : 5;
    double seconds = quick ? 0.1 : 0.4;
    for (int vi = 0; vi < 2; vi++) {
        struct pair p = confs(version_of(versions[vi]));
        handshake(&p, 1); /* full, with the resume key: fills the cache */
        run_n(&p, 0, 3);
        run_n(&p, 1, 3); /* warm */
        double full[5], res[5];
        for (int k = 0; k < pairs; k++) {
            full[k] = rate(&p, 0, seconds);
            res[k] = rate(&p, 1, seconds);
        }
        qsort(full, (size_t)pairs, sizeof full[0], cmp);
        qsort(res, (size_t)pairs, sizeof res[0], cmp);
        double f = full[pairs / 2], r = res[pairs / 2];
        printf("TLS %-4s %-14s %14.0f %14.0f %8.2f\n", versions[vi], "handshakes/s", f, r, r / f);
        fprintf(out, "resumed_handshake_rps%s\thandshakes/s\t%.1f\t%.1f\tfull_handshake\t%.3f\n", suffix[vi], r, f,
                r / f);
        if (have_valgrind) {
            int lo = 3, hi = 13;
            double f0 = callgrind(argv[0], versions[vi], "full", lo), f1 = callgrind(argv[0], versions[vi], "full", hi);
            double r0 = callgrind(argv[0], versions[vi], "resumed", lo),
                   r1 = callgrind(argv[0], versions[vi], "resumed", hi);
            if (f0 > 0 && f1 > 0 && r0 > 0 && r1 > 0) {
                double fi = (f1 - f0) / (hi - lo), ri = (r1 - r0) / (hi - lo);
                printf("TLS %-4s %-14s %14.0f %14.0f %8.2f\n", versions[vi], "instr/hs", fi, ri, fi / ri);
                fprintf(out, "resumed_handshake_instructions%s\tinstructions\t%.0f\t%.0f\tfull_handshake\t%.3f\n",
                        suffix[vi], ri, fi, fi / ri);
            } else {
                printf("TLS %-4s %-14s callgrind failed\n", versions[vi], "instr/hs");
            }
        }
        corotls_conf_free(p.server);
        corotls_conf_free(p.client);
    }
    if (!have_valgrind)
        printf("(no instruction counts: %s)\n", use_callgrind ? "valgrind is not installed" : "--no-callgrind");
    fclose(out);
    printf("rows: %s\n", rows);
    return 0;
}
