/*
 * net.c -- loopback sockets for tests (see harness.h, "sockets").
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
int hx_port_listening(int port)
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
