/*
 * harness.c -- see harness.h.  No dependency on corotls.
 *
 * The harness never allocates: every buffer is static, thread-local or on
 * the stack, so it stays out of valgrind's leak reports.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HARNESS_DEFAULT_TIMEOUT 30
#define HARNESS_MAX_KIDS 128
#define HARNESS_MAX_TESTS 1024
#define HARNESS_MAX_EXTRA 64
#define HARNESS_START_TIMEOUT_MS 15000
#define HARNESS_KILL_GRACE_MS 2000

/* ------------------------------------------------------------- state */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_passed;
static int g_failed;
static const char *volatile g_test = "";
static volatile int g_test_timeout;

struct kid {
    volatile pid_t pid; /* 0 = free slot */
    int keep_fd;        /* fd the harness holds for the child, or -1 */
};
static pthread_mutex_t g_kids_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kid g_kids[HARNESS_MAX_KIDS];

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

static void kill_all_kids_now(void)
{
    for (int i = 0; i < HARNESS_MAX_KIDS; i++) {
        pid_t p = g_kids[i].pid;
        if (p > 0) {
            kill(-p, SIGKILL);
            kill(p, SIGKILL);
        }
    }
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
    kill_all_kids_now();
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

static const int g_crash_sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};

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
    kill_all_kids_now();
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
    for (size_t i = 0; i < sizeof g_crash_sigs / sizeof g_crash_sigs[0]; i++)
        sigaction(g_crash_sigs[i], &sa, NULL);
}

void harness_init(void)
{
    pthread_once(&g_once, init_once);
}

static int env_flag(const char *name)
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
        pid_t left = 0;
        pthread_mutex_lock(&g_kids_lock);
        for (int i = 0; i < HARNESS_MAX_KIDS && !left; i++)
            left = g_kids[i].pid;
        pthread_mutex_unlock(&g_kids_lock);
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

static const char *openssl_bin(void)
{
    const char *p = getenv("HARNESS_OPENSSL");
    return (p && *p) ? p : "openssl";
}

/* -------------------------------------------------------------- sockets */

static void loopback_addr(struct sockaddr_in *sa, int port)
{
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static int bound_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return -1;
    return ntohs(sa.sin_port);
}

int harness_listen_loopback(int *port)
{
    harness_init();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    struct sockaddr_in sa;
    loopback_addr(&sa, 0);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0)
        goto fail;
    int p = bound_port(fd);
    if (p < 0)
        goto fail;
    if (port)
        *port = p;
    return fd;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

int harness_connect_loopback(int port)
{
    harness_init();
    if (port <= 0 || port > 65535) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    loopback_addr(&sa, port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (errno != EINTR)
            goto fail;
        /* interrupted: the connect goes on; wait for it */
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof err;
        while (poll(&p, 1, -1) < 0)
            if (errno != EINTR)
                goto fail;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            goto fail;
        if (err) {
            errno = err;
            goto fail;
        }
    }
    return fd;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

int harness_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

int harness_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    loopback_addr(&sa, 0);
    int p = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        p = bound_port(fd);
    int e = errno;
    close(fd);
    errno = e;
    return p;
}

/* Is 127.0.0.1:port (or 0.0.0.0:port) in LISTEN state? */
static int port_listening(int port)
{
    FILE *f = fopen("/proc/net/tcp", "re");
    if (!f)
        return 0;
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned addr, lport, state;
        if (sscanf(line, " %*d: %8X:%4X %*X:%*X %X", &addr, &lport, &state) == 3 &&
            (int)lport == port && state == 0x0A &&
            (addr == 0x0100007FU || addr == 0))
            found = 1;
    }
    fclose(f);
    return found;
}

/* ------------------------------------------------------------ processes */

static void kid_add(pid_t pid, int keep_fd)
{
    pthread_mutex_lock(&g_kids_lock);
    for (int i = 0; i < HARNESS_MAX_KIDS; i++) {
        if (g_kids[i].pid == 0) {
            g_kids[i].keep_fd = keep_fd;
            g_kids[i].pid = pid;
            pthread_mutex_unlock(&g_kids_lock);
            return;
        }
    }
    pthread_mutex_unlock(&g_kids_lock);
    /* table full: the child still works, it is just not tracked */
    fprintf(stderr, "harness: more than %d live children; pid %d untracked\n",
            HARNESS_MAX_KIDS, (int)pid);
    if (keep_fd >= 0)
        close(keep_fd); /* gives the child EOF on stdin, better than a leak */
}

static void kid_release(pid_t pid)
{
    int fd = -1;
    pthread_mutex_lock(&g_kids_lock);
    for (int i = 0; i < HARNESS_MAX_KIDS; i++) {
        if (g_kids[i].pid == pid) {
            fd = g_kids[i].keep_fd;
            g_kids[i].keep_fd = -1;
            g_kids[i].pid = 0;
            break;
        }
    }
    pthread_mutex_unlock(&g_kids_lock);
    if (fd >= 0)
        close(fd);
}

/* Has the child exited (without reaping it)?  Unknown pids count as gone. */
static int kid_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
        return errno != EINTR;
    return si.si_pid == pid;
}

static void close_if(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void move_fd(int from, int to)
{
    if (from == to)
        fcntl(to, F_SETFD, 0); /* drop CLOEXEC */
    else
        dup2(from, to);        /* the copy has no CLOEXEC */
}

enum stdin_mode { STDIN_NULL, STDIN_CALLER, STDIN_KEEP };

/* stdout_fd != NULL: pipe for stdout+stderr returned to the caller;
 * else out_file >= 0: stdout+stderr go there; else /dev/null (or inherited
 * with HARNESS_VERBOSE). */
static pid_t spawn_impl(const char *const argv[], enum stdin_mode in_mode,
                        int *stdin_fd, int *stdout_fd, int out_file)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    int devnull = -1;
    int verbose = env_flag("HARNESS_VERBOSE");

    harness_init();
    if (!argv || !argv[0]) {
        errno = EINVAL;
        return -1;
    }
    if ((in_mode != STDIN_NULL && pipe2(in, O_CLOEXEC) < 0) ||
        (stdout_fd && pipe2(out, O_CLOEXEC) < 0) || pipe2(err, O_CLOEXEC) < 0)
        goto fail;
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0)
        goto fail;

    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        goto fail;
    if (pid == 0) {
        int ifd = in_mode != STDIN_NULL ? in[0] : devnull;
        int ofd = stdout_fd ? out[1] : out_file >= 0 ? out_file
                                       : verbose     ? -1
                                                     : devnull;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPIPE, &sa, NULL);
        sigaction(SIGALRM, &sa, NULL);
        for (size_t i = 0; i < sizeof g_crash_sigs / sizeof g_crash_sigs[0]; i++)
            sigaction(g_crash_sigs[i], &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);

        move_fd(ifd, 0);
        if (ofd >= 0) {
            move_fd(ofd, 1);
            move_fd(ofd, 2);
        }
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        execvp(argv[0], (char *const *)argv);
        int e = errno;
        ssize_t w = write(err[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }

    /* parent */
    close_if(&err[1]);
    close_if(&in[0]);
    close_if(&out[1]);
    close_if(&devnull);
    int child_errno = 0;
    ssize_t n;
    do
        n = read(err[0], &child_errno, sizeof child_errno);
    while (n < 0 && errno == EINTR);
    close_if(&err[0]);
    if (n == (ssize_t)sizeof child_errno) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        errno = child_errno;
        goto fail;
    }

    kid_add(pid, in_mode == STDIN_KEEP ? in[1] : -1);
    if (in_mode == STDIN_CALLER)
        *stdin_fd = in[1];
    if (stdout_fd)
        *stdout_fd = out[0];
    return pid;

fail:;
    int e = errno;
    close_if(&in[0]);
    close_if(&in[1]);
    close_if(&out[0]);
    close_if(&out[1]);
    close_if(&err[0]);
    close_if(&err[1]);
    close_if(&devnull);
    errno = e;
    return -1;
}

pid_t harness_spawn(const char *const argv[], int *stdin_fd, int *stdout_fd)
{
    return spawn_impl(argv, stdin_fd ? STDIN_CALLER : STDIN_NULL, stdin_fd,
                      stdout_fd, -1);
}

/* watch > 0: for regular files, stop with EPIPE once that child has exited
 * and everything it wrote was read. */
static ssize_t read_until_impl(int fd, const char *needle, int timeout_ms,
                               char *buf, size_t cap, pid_t watch)
{
    char local[4096];
    if (!buf) {
        buf = local;
        cap = sizeof local;
    }
    if (cap == 0) {
        errno = EINVAL;
        return -1;
    }
    buf[0] = '\0';
    size_t nlen = needle ? strlen(needle) : 0;
    if (fd < 0 || nlen == 0 || cap < 4 || nlen >= cap / 2) {
        errno = EINVAL;
        return -1;
    }
    struct stat st;
    int regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    long long deadline = timeout_ms < 0 ? -1 : harness_now_ms() + timeout_ms;
    size_t len = 0;
    int dead = 0;

    for (;;) {
        int wait_ms = -1;
        if (deadline >= 0) {
            long long left = deadline - harness_now_ms();
            if (left <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            wait_ms = left > INT_MAX ? INT_MAX : (int)left;
        }
        if (!regular) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            int r = poll(&p, 1, wait_ms);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                return -1;
            }
            if (r == 0)
                continue; /* the deadline check above ends it */
        }
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return -1;
        }
        if (n == 0) {
            if (!regular || dead) {
                errno = EPIPE;
                return -1;
            }
            if (watch > 0 && kid_exited(watch)) {
                dead = 1; /* read what it wrote before exiting, then stop */
                continue;
            }
            harness_sleep_ms(wait_ms < 0 || wait_ms > 5 ? 5 : wait_ms);
            continue;
        }
        if (len + 1 >= cap) {
            size_t keep = cap / 2;
            memmove(buf, buf + len - keep, keep);
            len = keep;
        }
        buf[len++] = c;
        buf[len] = '\0';
        if (len >= nlen && memcmp(buf + len - nlen, needle, nlen) == 0)
            return (ssize_t)len;
    }
}

ssize_t harness_read_until(int fd, const char *needle, int timeout_ms,
                           char *buf, size_t cap)
{
    return read_until_impl(fd, needle, timeout_ms, buf, cap, 0);
}

int harness_wait(pid_t pid, int timeout_ms)
{
    if (pid <= 0) {
        errno = ECHILD;
        return -1;
    }
    long long deadline = timeout_ms < 0 ? -1 : harness_now_ms() + timeout_ms;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, timeout_ms < 0 ? 0 : WNOHANG);
        if (r == pid) {
            kid_release(pid);
            return st;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            kid_release(pid);
            errno = e;
            return -1;
        }
        long long left = deadline - harness_now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        harness_sleep_ms(left < 5 ? (int)left : 5);
    }
}

static void signal_kid(pid_t pid, int sig)
{
    if (kill(-pid, sig) < 0)
        kill(pid, sig);
}

int harness_kill(pid_t pid)
{
    if (pid <= 0) {
        errno = EINVAL;
        return -1;
    }
    signal_kid(pid, SIGTERM);
    int st = harness_wait(pid, HARNESS_KILL_GRACE_MS);
    if (st == -1 && errno == ETIMEDOUT) {
        signal_kid(pid, SIGKILL);
        st = harness_wait(pid, -1);
    }
    /* Leftovers of its process group (grandchildren).  The kernel does not
     * reuse a pid while a group of that id exists, so this cannot hit a
     * stranger. */
    int e = errno;
    kill(-pid, SIGKILL);
    errno = e;
    return st;
}

/* ------------------------------------------------------- peer spawning */

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
        if (kid_exited(pid)) {
            errno = EPIPE;
            return -1;
        }
        if (port_listening(port))
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
        argv[n++] = openssl_bin();
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
        pid_t c = spawn_impl(argv, stdin_fd ? STDIN_CALLER : STDIN_KEEP, &in_fd,
                             stdout_fd ? &out_fd : NULL, wfd);
        int e = errno;
        close_if(&wfd);
        if (c < 0) {
            close_if(&rfd);
            harness_diag("cannot start %s s_server: %s", argv[0], strerror(e));
            return -1;
        }
        int rd = stdout_fd ? out_fd : rfd;
        int ok;
        buf[0] = '\0';
        if (quiet)
            ok = wait_listening(p, c, HARNESS_START_TIMEOUT_MS) == 0;
        else
            ok = read_until_impl(rd, "ACCEPT\n", HARNESS_START_TIMEOUT_MS, buf,
                                 sizeof buf, c) >= 0;
        if (ok) {
            close_if(&rfd);
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
        close_if(&rfd);
        close_if(&out_fd);
        close_if(&in_fd);
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
    argv[n++] = openssl_bin();
    argv[n++] = "s_client";
    argv[n++] = "-connect";
    argv[n++] = connect_arg;
    argv[n++] = "-CAfile";
    argv[n++] = harness_cert("ca.crt");
    for (int i = 0; i < nextra; i++)
        argv[n++] = extra_args[i];
    argv[n] = NULL;
    return spawn_impl(argv, stdin_fd ? STDIN_CALLER : STDIN_KEEP, stdin_fd,
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
    pid_t c = spawn_impl(argv, STDIN_NULL, NULL, stdout_fd ? &out_fd : NULL, wfd);
    int e = errno;
    close_if(&wfd);
    if (c < 0) {
        close_if(&rfd);
        harness_diag("cannot start %s: %s", argv[0], strerror(e));
        return -1;
    }
    int rd = stdout_fd ? out_fd : rfd;
    char buf[4096], line[64];
    long p = -1;
    buf[0] = '\0';
    if (read_until_impl(rd, "PORT ", HARNESS_START_TIMEOUT_MS, buf, sizeof buf, c) >= 0 &&
        read_until_impl(rd, "\n", 2000, line, sizeof line, c) >= 0) {
        char *end;
        p = strtol(line, &end, 10);
        if (end == line || (*end != '\n' && *end != '\r') || p <= 0 || p > 65535)
            p = -1;
    }
    if (p > 0) {
        close_if(&rfd);
        *port = (int)p;
        *pid = c;
        if (stdout_fd)
            *stdout_fd = out_fd;
        return 0;
    }
    int timed_out = errno == ETIMEDOUT;
    harness_kill(c);
    slurp_tail(rd, buf, sizeof buf);
    close_if(&rfd);
    close_if(&out_fd);
    harness_diag("py peer %s did not report its port (%s); its output:\n%s",
                 args[0], timed_out ? "timed out" : "exited", buf);
    return -1;
}
