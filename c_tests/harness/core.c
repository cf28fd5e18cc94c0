/*
 * core.c -- the test framework: checks, registered tests, the watchdog and
 * crash reports, the summary line, time and file paths.  See harness.h;
 * internal.h says how the parts fit.  No dependency on corotls.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HARNESS_DEFAULT_TIMEOUT 30
#define HARNESS_MAX_TESTS 1024

/* ------------------------------------------------------------- state */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_passed;
static int g_failed;
static const char *volatile g_test = "";
static volatile int g_test_timeout;

struct reg_test {
    const char *name;
    void (*fn)(void);
    const char *file;
    int line;
};
static struct reg_test g_tests[HARNESS_MAX_TESTS];
static int g_ntests;

/* -------------------------------------------- async-signal-safe output */

struct sbuf {
    char b[1024];
    size_t n;
};

static void sb_str(struct sbuf *s, const char *str)
{
    while (*str && s->n < sizeof s->b)
        s->b[s->n++] = *str++;
}

static void sb_int(struct sbuf *s, long v)
{
    char tmp[24];
    int i = 0;
    unsigned long u = v < 0 ? (unsigned long)-v : (unsigned long)v;
    do {
        tmp[i++] = (char)('0' + u % 10);
        u /= 10;
    } while (u && i < (int)sizeof tmp);
    if (v < 0)
        sb_str(s, "-");
    while (i > 0 && s->n < sizeof s->b)
        s->b[s->n++] = tmp[--i];
}

static void sb_flush(struct sbuf *s, int fd)
{
    size_t off = 0;
    while (off < s->n) {
        ssize_t w = write(fd, s->b + off, s->n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    s->n = 0;
}

static const char *test_name_or_dash(void)
{
    const char *t = g_test;
    return (t && *t) ? t : "-";
}
static void on_alarm(int sig)
{
    (void)sig;
    struct sbuf s = {.n = 0};
    sb_str(&s, "FAIL - ");
    sb_str(&s, test_name_or_dash());
    sb_str(&s, ": timed out after ");
    sb_int(&s, g_test_timeout);
    sb_str(&s, " s (watchdog)\n");
    sb_int(&s, __atomic_load_n(&g_passed, __ATOMIC_SEQ_CST));
    sb_str(&s, " passed, ");
    sb_int(&s, __atomic_load_n(&g_failed, __ATOMIC_SEQ_CST) + 1);
    sb_str(&s, " failed\n");
    sb_flush(&s, STDOUT_FILENO);
    hx_kill_all_kids_now();
    _exit(1);
}

static const char *sig_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGABRT: return "SIGABRT";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    default: return "?";
    }
}
const int hx_crash_sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
const int hx_ncrash_sigs = sizeof hx_crash_sigs / sizeof hx_crash_sigs[0];

static void on_crash(int sig)
{
    struct sbuf s = {.n = 0};
    sb_str(&s, "FAIL - ");
    sb_str(&s, test_name_or_dash());
    sb_str(&s, ": crashed with signal ");
    sb_int(&s, sig);
    sb_str(&s, " (");
    sb_str(&s, sig_name(sig));
    sb_str(&s, ")\n");
    sb_flush(&s, STDOUT_FILENO);
    hx_kill_all_kids_now();
    /* SA_RESETHAND restored the default action: re-raise to die by it. */
    raise(sig);
}

/* ---------------------------------------------------------------- init */

static void init_once(void)
{
    /* fds 0..2 must exist, or pipes/sockets could land on them. */
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) < 0) {
            int n = open("/dev/null", O_RDWR);
            if (n >= 0 && n != fd) {
                dup2(n, fd);
                close(n);
            }
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);

    sa.sa_handler = on_crash;
    sa.sa_flags = SA_RESETHAND;
    for (int i = 0; i < hx_ncrash_sigs; i++)
        sigaction(hx_crash_sigs[i], &sa, NULL);
}

void harness_init(void)
{
    pthread_once(&g_once, init_once);
}

int hx_env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static int read_timeout_env(void)
{
    const char *v = getenv("HARNESS_TEST_TIMEOUT");
    if (!v || !*v)
        return HARNESS_DEFAULT_TIMEOUT;
    char *end;
    errno = 0;
    long t = strtol(v, &end, 10);
    if (errno || *end || t < 0 || t > 24 * 3600)
        return HARNESS_DEFAULT_TIMEOUT;
    return (int)t;
}

/* ----------------------------------------------------------- framework */

int harness_check_(int ok, const char *expr, const char *file, int line,
                   const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    harness_init();
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* one line per check: trailing newlines go, inner ones become spaces */
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
        msg[--len] = '\0';
    for (char *c = msg; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    const char *name = msg[0] ? msg : expr;

    flockfile(stdout);
    if (ok) {
        __atomic_add_fetch(&g_passed, 1, __ATOMIC_SEQ_CST);
        printf("ok - %s\n", name);
    } else {
        __atomic_add_fetch(&g_failed, 1, __ATOMIC_SEQ_CST);
        printf("FAIL - %s: %s failed in %s (%s:%d)\n", name, expr,
               test_name_or_dash(), file, line);
    }
    fflush(stdout);
    funlockfile(stdout);
    return ok ? 1 : 0;
}

void harness_diag(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    harness_init();
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    /* one "# " prefix per line */
    flockfile(stdout);
    char *p = msg;
    for (;;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        printf("# %s\n", p);
        if (!nl || !nl[1])
            break;
        p = nl + 1;
    }
    fflush(stdout);
    funlockfile(stdout);
}

void run_test(const char *name, void (*fn)(void))
{
    harness_init();
    if (!name || !fn)
        return;
    const char *only = getenv("HARNESS_ONLY");
    if (only && *only && !strstr(name, only))
        return;

    int timeout = read_timeout_env();
    g_test = name;
    printf("# %s\n", name);
    fflush(stdout);
    g_test_timeout = timeout;
    alarm((unsigned)timeout); /* 0 disarms */
    fn();
    alarm(0);
    g_test = "";
}

void harness_register_(const char *name, void (*fn)(void), const char *file,
                       int line)
{
    if (g_ntests >= HARNESS_MAX_TESTS) {
        fprintf(stderr, "harness: too many TEST()s, %s dropped\n", name);
        return;
    }
    g_tests[g_ntests].name = name;
    g_tests[g_ntests].fn = fn;
    g_tests[g_ntests].file = file;
    g_tests[g_ntests].line = line;
    g_ntests++;
}

static int cmp_reg(const void *a, const void *b)
{
    const struct reg_test *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    if (c)
        return c;
    return (x->line > y->line) - (x->line < y->line);
}

int harness_run_all(void)
{
    harness_init();
    qsort(g_tests, (size_t)g_ntests, sizeof g_tests[0], cmp_reg);
    for (int i = 0; i < g_ntests; i++)
        run_test(g_tests[i].name, g_tests[i].fn);
    return harness_summary();
}

const char *harness_current_test(void)
{
    const char *t = g_test;
    return t ? t : "";
}

int harness_passed(void)
{
    return __atomic_load_n(&g_passed, __ATOMIC_SEQ_CST);
}

int harness_failed(void)
{
    return __atomic_load_n(&g_failed, __ATOMIC_SEQ_CST);
}

int harness_summary(void)
{
    harness_init();
    for (;;) {
        pid_t left = hx_any_kid();
        if (!left)
            break;
        harness_diag("child %d was still registered at the end; killing it",
                     (int)left);
        harness_kill(left);
    }
    int passed = harness_passed(), failed = harness_failed();
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    return failed == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- time */

long long harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_sleep_ms(int ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* --------------------------------------------------------------- files */

const char *harness_certdir(void)
{
    const char *d = getenv("COROTLS_CERTDIR");
    return (d && *d) ? d : "target/certs";
}

static __thread char g_ring[16][1024];
static __thread unsigned g_ring_i;

static const char *ring_path(const char *dir, const char *name)
{
    char *slot = g_ring[g_ring_i++ % 16];
    snprintf(slot, sizeof g_ring[0], "%s/%s", dir, name ? name : "");
    return slot;
}

const char *harness_cert(const char *name)
{
    return ring_path(harness_certdir(), name);
}

const char *harness_py_peer_script(void)
{
    const char *d = getenv("COROTLS_PEERDIR");
    return ring_path((d && *d) ? d : "c_tests/peers", "py_tls_server.py");
}

const char *harness_python(void)
{
    const char *p = getenv("HARNESS_PYTHON");
    return (p && *p) ? p : "python3";
}

const char *hx_openssl_bin(void)
{
    const char *p = getenv("HARNESS_OPENSSL");
    return (p && *p) ? p : "openssl";
}
