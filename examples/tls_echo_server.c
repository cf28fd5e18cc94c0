/*
 * tls_echo_server: echo every byte of every connection back, over TLS.
 *
 *   tls_echo_server --listen HOST:PORT --cert FILE --key FILE
 *                   [--cert FILE --key FILE]... [--ca FILE]
 *                   [--verify-client [optional|require]] [--client-ca FILE]
 *                   [--alpn LIST] [--ciphers STR] [--suites STR]
 *                   [--min-version 1.2|1.3] [--max-version 1.2|1.3]
 *                   [--handshake-timeout MS] [--idle-timeout MS]
 *                   [--keylog FILE]
 *
 * Prints "listening HOST:PORT" (the real port when 0 was given) once ready,
 * serves every connection from one corotls loop in one thread, and stops
 * cleanly on SIGINT or SIGTERM (each open connection gets a close_notify).
 * Several --cert/--key pairs give SNI selection (the first whose
 * certificate matches the client's name, else the first).
 *
 * Client certificates (mTLS): --verify-client require (or --verify-client
 * alone) refuses clients without a certificate trusted by --ca; optional
 * asks for one and verifies it if sent.  The CertificateRequest names the
 * CAs of --ca, or those of --client-ca FILE.  With either mode each
 * connection prints, after its handshake, one line on stderr:
 *     tls_echo_server: peer subject: CN=corotls-client (verify: ok)
 *     tls_echo_server: peer subject: none
 *
 * Deadlines: a connection must finish its handshake within
 * --handshake-timeout ms of accept (default 10000) and is closed after
 * --idle-timeout ms without a byte either way (default 300000); -1 turns
 * either off.  Connections ended by a deadline are closed quietly.
 * --keylog FILE appends the TLS secrets to FILE (NSS key-log format, for
 * Wireshark): for debugging only.  Session tickets are on (the conf's
 * default), so clients that keep them resume.  When
 * the process runs out of fds the loop sheds new connections (closes them
 * at once) and keeps serving; the server says so once.
 *
 * Structure: each connection is a small state machine driven by loop
 * callbacks (recv, then send what came, again), with inline completions
 * handled in place.  The program embeds the loop in its own poll(2) loop,
 * which watches the loop's fd and a self-pipe written by the signal
 * handler.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "corotls.h"

#define MAX_IDS 16

static corotls_loop *loop;
static int lfd = -1;
static int accepting; /* an accept is pending (or being started) */
static int shed_told; /* the line about shedding was printed */
static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    if (write(sig_pipe[1], "x", 1) < 0) {
        /* the pipe is full: a stop is already pending */
    }
    errno = saved;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: tls_echo_server --listen HOST:PORT --cert FILE --key FILE [--cert FILE --key FILE]...\n"
            "                       [--ca FILE] [--verify-client [optional|require]] [--client-ca FILE]\n"
            "                       [--alpn LIST] [--ciphers STR]\n"
            "                       [--suites STR] [--min-version 1.2|1.3] [--max-version 1.2|1.3]\n"
            "                       [--handshake-timeout MS] [--idle-timeout MS]\n"
            "                       [--keylog FILE]\n");
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

/* A deadline in ms: -1 (off) or more. */
static int ms_of(const char *v)
{
    char *end;
    long ms = strtol(v, &end, 10);
    if (*v == 0 || *end != 0 || ms < -1 || ms > 2147483647L)
        usage();
    return (int)ms;
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

/* One connection: recv -> send what came -> recv ... until it ends. */
struct client {
    int fd;
};

static void client_run(struct client *c);
static void accept_more(void);

static void client_end(struct client *c, corotls_result r)
{
    /* CLOSED: the peer's close_notify (close answers with ours); EOF: it
     * left without one; CANCELLED: the server is stopping; TIMEOUT: a
     * deadline ended it (not worth a line each: under attack there are
     * many). */
    if (r != COROTLS_CLOSED && r != COROTLS_EOF && r != COROTLS_ERR_CANCELLED && r != COROTLS_TIMEOUT)
        fprintf(stderr, "tls_echo_server: connection: %s\n", corotls_last_error());
    corotls_loop_close(loop, c->fd);
    free(c);
    if (!accepting && r != COROTLS_ERR_CANCELLED)
        accept_more(); /* accepting stopped on an error: try again now that a connection ended */
}

/* Completion of a recv (data != NULL) or of a send. */
static void client_cb(void *user_data, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct client *c = user_data;
    (void)fd;
    if (r == COROTLS_OK && data) /* echo it; send copies what it cannot send now */
        r = corotls_loop_send(loop, c->fd, data, len, -1, client_cb, c);
    if (r == COROTLS_PENDING)
        return;
    if (r != COROTLS_OK)
        client_end(c, r);
    else
        client_run(c);
}

/* Go on while operations complete inline. */
static void client_run(struct client *c)
{
    for (;;) {
        const uint8_t *data;
        size_t len;
        corotls_result r = corotls_loop_recv(loop, c->fd, -1, client_cb, c, &data, &len);
        if (r == COROTLS_OK) /* data stays valid while send uses it */
            r = corotls_loop_send(loop, c->fd, data, len, -1, client_cb, c);
        if (r == COROTLS_PENDING)
            return;
        if (r != COROTLS_OK) {
            client_end(c, r);
            return;
        }
    }
}

static int verify_client; /* 0, COROTLS_VERIFY_PEER (optional) or _REQUIRE */

/* mTLS: say who the peer is, once its handshake is done. */
static void say_peer(int fd)
{
    char subject[1024];
    bool present = false;
    int64_t code = -1;
    corotls_loop_peer_verify(loop, fd, &present, &code);
    if (!present) {
        fprintf(stderr, "tls_echo_server: peer subject: none\n");
        return;
    }
    char verdict[256] = "";
    corotls_loop_peer_cert(loop, fd, COROTLS_PEER_SUBJECT, subject, sizeof subject, NULL);
    corotls_loop_peer_cert(loop, fd, COROTLS_PEER_VERIFY, verdict, sizeof verdict, NULL);
    fprintf(stderr, "tls_echo_server: peer subject: %s (verify: %s)\n", subject, verdict);
}

static void handshake_cb(void *user_data, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct client *c = user_data;
    (void)fd;
    (void)data;
    (void)len;
    if (r != COROTLS_OK) {
        client_end(c, r);
        return;
    }
    say_peer(c->fd);
    client_run(c);
}

static void serve(int fd)
{
    struct client *c = malloc(sizeof *c);
    if (!c) {
        corotls_loop_close(loop, fd);
        return;
    }
    c->fd = fd;
    if (verify_client) { /* the handshake first, to name the peer */
        corotls_result r = corotls_loop_handshake(loop, fd, -1, handshake_cb, c);
        if (r != COROTLS_PENDING)
            handshake_cb(c, fd, r, NULL, 0);
        return;
    }
    client_run(c);
}

static void accept_cb(void *user_data, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    (void)user_data;
    (void)data;
    (void)len;
    accepting = 0;
    if (r == COROTLS_ERR_CANCELLED)
        return; /* stopping */
    if (r == COROTLS_OK)
        serve(fd);
    else /* an error (running out of fds is none: the loop sheds): accepting pauses until a connection ends */
        fprintf(stderr, "tls_echo_server: accept: %s\n", corotls_last_error());
    if (r == COROTLS_OK && !accepting)
        accept_more();
}

/* Accept with the listener's conf; connections already waiting come at
 * once, the next one through accept_cb.  On an error accepting pauses until
 * a connection ends.  Running out of fds is not one: the loop sheds the
 * connections it cannot take and the accept stays pending. */
static void accept_more(void)
{
    int fd;
    corotls_result r;
    accepting = 1;
    while ((r = corotls_loop_accept(loop, lfd, NULL, -1, accept_cb, NULL, &fd)) == COROTLS_OK)
        serve(fd);
    if (r != COROTLS_PENDING) {
        accepting = 0;
        fprintf(stderr, "tls_echo_server: accept: %s\n", corotls_last_error());
    }
}

/* Split HOST:PORT ([v6]:PORT, :PORT for every address). */
static int split_hostport(const char *spec, char *host, size_t cap, const char **port)
{
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || (size_t)(colon - spec) >= cap || colon[1] == 0)
        return -1;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = 0;
    *port = colon + 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *listen_on = NULL, *ca = NULL, *client_ca = NULL, *alpn = NULL, *ciphers = NULL, *suites = NULL;
    const char *keylog = NULL;
    const char *certs[MAX_IDS], *keys[MAX_IDS];
    int ncert = 0, nkey = 0, vmin = COROTLS_TLS1_2, vmax = COROTLS_TLS1_3;
    int handshake_ms = 10000, idle_ms = 300000;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--verify-client")) { /* alone (the first form): require */
            verify_client = COROTLS_VERIFY_REQUIRE;
            if (v && !strcmp(v, "optional"))
                verify_client = COROTLS_VERIFY_PEER, i++;
            else if (v && !strcmp(v, "require"))
                i++;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (!strcmp(a, "--listen")) listen_on = v;
        else if (!strcmp(a, "--cert") && ncert < MAX_IDS) certs[ncert++] = v;
        else if (!strcmp(a, "--key") && nkey < MAX_IDS) keys[nkey++] = v;
        else if (!strcmp(a, "--ca")) ca = v;
        else if (!strcmp(a, "--client-ca")) client_ca = v;
        else if (!strcmp(a, "--alpn")) alpn = v;
        else if (!strcmp(a, "--ciphers")) ciphers = v;
        else if (!strcmp(a, "--suites")) suites = v;
        else if (!strcmp(a, "--min-version")) vmin = version_of(v);
        else if (!strcmp(a, "--max-version")) vmax = version_of(v);
        else if (!strcmp(a, "--handshake-timeout")) handshake_ms = ms_of(v);
        else if (!strcmp(a, "--idle-timeout")) idle_ms = ms_of(v);
        else if (!strcmp(a, "--keylog")) keylog = v;
        else usage();
    }
    if (listen_on == NULL || ncert == 0 || ncert != nkey)
        usage();

    corotls_conf_builder *b = NULL;
    corotls_conf *conf = NULL;
    corotls_result r = corotls_conf_builder_new(COROTLS_SERVER, &b);
    /* Secrets to a file, for Wireshark: only when asked (debugging). */
    if (r == COROTLS_OK && keylog)
        r = corotls_conf_builder_set_keylog_file(b, keylog);
    for (int i = 0; r == COROTLS_OK && i < ncert; i++)
        r = corotls_conf_builder_add_identity_file(b, certs[i], keys[i], NULL);
    if (r == COROTLS_OK && ca)
        r = corotls_conf_builder_add_ca_file(b, ca);
    if (r == COROTLS_OK && verify_client)
        r = corotls_conf_builder_set_verify(b, verify_client);
    if (r == COROTLS_OK && client_ca)
        r = corotls_conf_builder_set_client_ca_file(b, client_ca);
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

    char host[256];
    const char *port;
    corotls_result lr = COROTLS_ERR_ARG;
    if (split_hostport(listen_on, host, sizeof host, &port) == 0 && corotls_loop_new(&loop) == COROTLS_OK &&
        corotls_loop_set_handshake_timeout(loop, handshake_ms) == COROTLS_OK &&
        corotls_loop_set_idle_timeout(loop, idle_ms) == COROTLS_OK)
        lr = corotls_loop_listen(loop, host, port, conf, &lfd);
    corotls_conf_free(conf); /* the listener keeps its own reference */
    if (lr != COROTLS_OK) {
        fprintf(stderr, "tls_echo_server: cannot listen on %s: %s\n", listen_on,
                *corotls_last_error() ? corotls_last_error() : "expected HOST:PORT");
        corotls_loop_free(loop);
        return 1;
    }

    /* Many concurrent connections need many fds. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        perror("tls_echo_server: pipe");
        corotls_loop_free(loop);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char shown[300];
    corotls_loop_info(loop, lfd, COROTLS_INFO_LOCAL_ADDR, shown, sizeof shown, NULL);
    printf("listening %s\n", shown);
    fflush(stdout);
    accept_more();

    /* The host's own event loop: the corotls loop's fd and the signal pipe. */
    for (;;) {
        struct pollfd p[2] = {{.fd = corotls_loop_fd(loop), .events = POLLIN}, {.fd = sig_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (p[0].revents && corotls_loop_dispatch(loop, 0, NULL) != COROTLS_OK) {
            fprintf(stderr, "tls_echo_server: %s\n", corotls_last_error());
            break;
        }
        uint64_t shed = 0;
        if (!shed_told && corotls_loop_shed_count(loop, lfd, &shed) == COROTLS_OK && shed > 0) {
            char why[512];
            if (corotls_loop_info(loop, lfd, COROTLS_INFO_ERROR, why, sizeof why, NULL) != COROTLS_OK)
                snprintf(why, sizeof why, "out of file descriptors");
            fprintf(stderr, "tls_echo_server: %s\n", why);
            shed_told = 1;
        }
    }
    /* Closes every connection (close_notify) and the listener; the pending
     * operations' callbacks run with CANCELLED and free their state. */
    corotls_loop_free(loop);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    return 0;
}
