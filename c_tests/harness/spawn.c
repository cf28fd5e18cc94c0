/*
 * spawn.c -- child processes for tests: start them in their own process
 * group, read their output up to a marker, wait for them, end them.  Every
 * child is registered so that the watchdog, a crash or the summary can
 * kill what a test left behind (see harness.h, "processes").
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define HARNESS_MAX_KIDS 128
#define HARNESS_KILL_GRACE_MS 2000

struct kid {
    volatile pid_t pid; /* 0 = free slot */
    int keep_fd;        /* fd the harness holds for the child, or -1 */
};
static pthread_mutex_t g_kids_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kid g_kids[HARNESS_MAX_KIDS];

void hx_kill_all_kids_now(void)
{
    for (int i = 0; i < HARNESS_MAX_KIDS; i++) {
        pid_t p = g_kids[i].pid;
        if (p > 0) {
            kill(-p, SIGKILL);
            kill(p, SIGKILL);
        }
    }
}

pid_t hx_any_kid(void)
{
    pid_t left = 0;
    pthread_mutex_lock(&g_kids_lock);
    for (int i = 0; i < HARNESS_MAX_KIDS && !left; i++)
        left = g_kids[i].pid;
    pthread_mutex_unlock(&g_kids_lock);
    return left;
}

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
int hx_kid_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
        return errno != EINTR;
    return si.si_pid == pid;
}

void hx_close_if(int *fd)
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

pid_t hx_spawn(const char *const argv[], enum hx_stdin_mode in_mode,
               int *stdin_fd, int *stdout_fd, int out_file)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    int devnull = -1;
    int verbose = hx_env_flag("HARNESS_VERBOSE");

    harness_init();
    if (!argv || !argv[0]) {
        errno = EINVAL;
        return -1;
    }
    if ((in_mode != HX_STDIN_NULL && pipe2(in, O_CLOEXEC) < 0) ||
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
        int ifd = in_mode != HX_STDIN_NULL ? in[0] : devnull;
        int ofd = stdout_fd ? out[1] : out_file >= 0 ? out_file
                                       : verbose     ? -1
                                                     : devnull;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPIPE, &sa, NULL);
        sigaction(SIGALRM, &sa, NULL);
        for (int i = 0; i < hx_ncrash_sigs; i++)
            sigaction(hx_crash_sigs[i], &sa, NULL);
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
    hx_close_if(&err[1]);
    hx_close_if(&in[0]);
    hx_close_if(&out[1]);
    hx_close_if(&devnull);
    int child_errno = 0;
    ssize_t n;
    do
        n = read(err[0], &child_errno, sizeof child_errno);
    while (n < 0 && errno == EINTR);
    hx_close_if(&err[0]);
    if (n == (ssize_t)sizeof child_errno) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        errno = child_errno;
        goto fail;
    }

    kid_add(pid, in_mode == HX_STDIN_KEEP ? in[1] : -1);
    if (in_mode == HX_STDIN_CALLER)
        *stdin_fd = in[1];
    if (stdout_fd)
        *stdout_fd = out[0];
    return pid;

fail:;
    int e = errno;
    hx_close_if(&in[0]);
    hx_close_if(&in[1]);
    hx_close_if(&out[0]);
    hx_close_if(&out[1]);
    hx_close_if(&err[0]);
    hx_close_if(&err[1]);
    hx_close_if(&devnull);
    errno = e;
    return -1;
}

pid_t harness_spawn(const char *const argv[], int *stdin_fd, int *stdout_fd)
{
    return hx_spawn(argv, stdin_fd ? HX_STDIN_CALLER : HX_STDIN_NULL, stdin_fd,
                      stdout_fd, -1);
}

ssize_t hx_read_until(int fd, const char *needle, int timeout_ms, char *buf,
                      size_t cap, pid_t watch)
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
            if (watch > 0 && hx_kid_exited(watch)) {
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
    return hx_read_until(fd, needle, timeout_ms, buf, cap, 0);
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
