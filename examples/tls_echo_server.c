/*
 * tls_echo_server: echo every byte of every connection back, over TLS.
 *
 *   tls_echo_server --listen HOST:PORT --cert FILE --key FILE
 *                   [--cert FILE --key FILE]... [--ca FILE] [--verify-client]
 *                   [--alpn LIST] [--ciphers STR] [--suites STR]
 *                   [--min-version 1.2|1.3] [--max-version 1.2|1.3]
 *
 * Prints "listening HOST:PORT" (the real port when 0 was given) once ready,
 * serves connections concurrently from one poll(2) loop, and stops cleanly
 * on SIGINT or SIGTERM.  Several --cert/--key pairs give SNI selection (the
 * first whose certificate matches the client's name, else the first).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corotls.h"

#define MAX_IDS 16
#define BUF 16384

struct client {
    int fd;
    corotls_conn *conn;
    corotls_result want; /* what the last call waits for */
    size_t off, len;     /* echo bytes not yet written */
    unsigned char buf[BUF];
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: tls_echo_server --listen HOST:PORT --cert FILE --key FILE [--cert FILE --key FILE]...\n"
            "                       [--ca FILE] [--verify-client] [--alpn LIST] [--ciphers STR]\n"
            "                       [--suites STR] [--min-version 1.2|1.3] [--max-version 1.2|1.3]\n");
    exit(2);
}

static int version_of(const char *v)
{
    if (!strcmp(v, "1.2"))
        return COROTLS_TLS1_2;
    if (!strcmp(v, "1.3"))
        return COROTLS_TLS1_3;
    usage();
    return 0;
}

static size_t alpn_wire(const char *list, unsigned char *out, size_t cap)
{
    size_t n = 0;
    while (*list) {
        size_t len = strcspn(list, ",");
        if (len == 0 || len > 255 || n + 1 + len > cap)
            return 0;
        out[n++] = (unsigned char)len;
        memcpy(out + n, list, len);
        n += len;
        list += len;
        if (*list == ',')
            list++;
    }
    return n;
}

static int tcp_listen(const char *spec, char *shown, size_t cap)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || (size_t)(colon - spec) >= sizeof host)
        return -1;
    size_t hlen = (size_t)(colon - spec);
    const char *h = spec;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    if (getaddrinfo(hlen ? host : NULL, colon + 1, &hints, &res) != 0)
        return -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char addr[INET6_ADDRSTRLEN] = "?";
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    int port = 0;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof addr);
        port = ntohs(s6->sin6_port);
        snprintf(shown, cap, "[%s]:%d", addr, port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
        port = ntohs(s4->sin_port);
        snprintf(shown, cap, "%s:%d", addr, port);
    }
    return fd;
}

/* Advance one client as far as it goes without blocking.  Returns 0 to
 * keep it, -1 when it is finished. */
static int step(struct client *c)
{
    for (;;) {
        if (c->len > 0) {
            size_t n = 0;
            corotls_result r = corotls_conn_write(c->conn, c->buf + c->off, c->len, &n);
            c->off += n;
            c->len -= n;
            if (r == COROTLS_WANT_WRITE || r == COROTLS_WANT_READ) {
                c->want = r;
                return 0;
            }
            if (r != COROTLS_OK)
                return -1;
            continue;
        }
        size_t n = 0;
        corotls_result r = corotls_conn_read(c->conn, c->buf, sizeof c->buf, &n);
        if (r == COROTLS_OK) {
            c->off = 0;
            c->len = n;
            continue;
        }
        if (r == COROTLS_WANT_READ || r == COROTLS_WANT_WRITE) {
            c->want = r;
            return 0;
        }
        if (r == COROTLS_CLOSED) /* answer the peer's close_notify with ours */
            corotls_conn_shutdown(c->conn);
        else if (r != COROTLS_EOF)
            fprintf(stderr, "tls_echo_server: connection: %s\n", corotls_conn_error(c->conn));
        return -1;
    }
}

static void drop(struct client *c)
{
    corotls_conn_free(c->conn);
    close(c->fd);
    free(c);
}

int main(int argc, char **argv)
{
    const char *listen_on = NULL, *ca = NULL, *alpn = NULL, *ciphers = NULL, *suites = NULL;
    const char *certs[MAX_IDS], *keys[MAX_IDS];
    int ncert = 0, nkey = 0, verify_client = 0, vmin = COROTLS_TLS1_2, vmax = COROTLS_TLS1_3;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--verify-client")) {
            verify_client = 1;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (!strcmp(a, "--listen")) listen_on = v;
        else if (!strcmp(a, "--cert") && ncert < MAX_IDS) certs[ncert++] = v;
        else if (!strcmp(a, "--key") && nkey < MAX_IDS) keys[nkey++] = v;
        else if (!strcmp(a, "--ca")) ca = v;
        else if (!strcmp(a, "--alpn")) alpn = v;
        else if (!strcmp(a, "--ciphers")) ciphers = v;
        else if (!strcmp(a, "--suites")) suites = v;
        else if (!strcmp(a, "--min-version")) vmin = version_of(v);
        else if (!strcmp(a, "--max-version")) vmax = version_of(v);
        else usage();
    }
    if (listen_on == NULL || ncert == 0 || ncert != nkey)
        usage();

    corotls_conf_builder *b = NULL;
    corotls_conf *conf = NULL;
    corotls_result r = corotls_conf_builder_new(COROTLS_SERVER, &b);
    for (int i = 0; r == COROTLS_OK && i < ncert; i++)
        r = corotls_conf_builder_add_identity_file(b, certs[i], keys[i], NULL);
    if (r == COROTLS_OK && ca)
        r = corotls_conf_builder_add_ca_file(b, ca);
    if (r == COROTLS_OK && verify_client)
        r = corotls_conf_builder_set_verify(b, COROTLS_VERIFY_REQUIRE);
    if (r == COROTLS_OK)
        r = corotls_conf_builder_set_versions(b, vmin, vmax);
    if (r == COROTLS_OK && ciphers)
        r = corotls_conf_builder_set_ciphers(b, ciphers);
    if (r == COROTLS_OK && suites)
        r = corotls_conf_builder_set_suites(b, suites);
    if (r == COROTLS_OK && alpn) {
        unsigned char wire[1024];
        size_t n = alpn_wire(alpn, wire, sizeof wire);
        r = n ? corotls_conf_builder_set_alpn_wire(b, wire, n) : COROTLS_ERR_ARG;
    }
    if (r == COROTLS_OK)
        r = corotls_conf_builder_build(b, &conf);
    corotls_conf_builder_free(b);
    if (r != COROTLS_OK) {
        fprintf(stderr, "tls_echo_server: configuration: %s\n",
                alpn && r == COROTLS_ERR_ARG && !*corotls_last_error() ? "bad --alpn list" : corotls_last_error());
        corotls_conf_free(conf);
        return 1;
    }

    char shown[300];
    int lfd = tcp_listen(listen_on, shown, sizeof shown);
    if (lfd < 0) {
        fprintf(stderr, "tls_echo_server: cannot listen on %s: %s\n", listen_on, strerror(errno));
        corotls_conf_free(conf);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("listening %s\n", shown);
    fflush(stdout);

    size_t nclients = 0, cap = 0;
    struct client **clients = NULL;
    struct pollfd *pfds = NULL;
    while (!stopping) {
        if (cap < nclients + 1) {
            cap = cap ? cap * 2 : 64;
            clients = realloc(clients, cap * sizeof *clients);
            pfds = realloc(pfds, (cap + 1) * sizeof *pfds);
            if (clients == NULL || pfds == NULL) {
                fprintf(stderr, "tls_echo_server: out of memory\n");
                break;
            }
        }
        pfds[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (size_t i = 0; i < nclients; i++)
            pfds[i + 1] = (struct pollfd){.fd = clients[i]->fd,
                                          .events = clients[i]->want == COROTLS_WANT_WRITE ? POLLOUT : POLLIN};
        if (poll(pfds, nclients + 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        /* Serve ready clients; finished ones are swapped out. */
        for (size_t i = nclients; i-- > 0;) {
            if (pfds[i + 1].revents == 0)
                continue;
            if (step(clients[i]) != 0) {
                drop(clients[i]);
                clients[i] = clients[--nclients];
            }
        }
        if (pfds[0].revents & POLLIN) {
            int fd;
            while (nclients < cap && (fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                struct client *c = calloc(1, sizeof *c);
                if (c == NULL || corotls_conn_new(conf, fd, &c->conn) != COROTLS_OK) {
                    free(c);
                    close(fd);
                    continue;
                }
                c->fd = fd;
                if (step(c) != 0)
                    drop(c);
                else
                    clients[nclients++] = c;
            }
        }
    }

    for (size_t i = 0; i < nclients; i++)
        drop(clients[i]);
    free(clients);
    free(pfds);
    close(lfd);
    corotls_conf_free(conf);
    return 0;
}
