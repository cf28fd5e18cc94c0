/*
 * tls_echo_client: connect, send one message, print the echo.
 *
 *   tls_echo_client --connect HOST:PORT [--sni NAME] [--ca FILE]
 *                   [--verify-host NAME] [--no-verify] [--alpn LIST]
 *                   [--cert FILE --key FILE] [--message TEXT]
 *                   [--reconnect N] [--keylog FILE]
 *
 * Prints the echoed text on stdout and "version=... cipher=... alpn=...
 * resumed=0|1" on stderr; exits 0.  On failure prints the error and exits 1.
 *
 * --reconnect N makes N more connections after the first, one after the
 * other, with the same conf: each resumes the session of the one before
 * through the conf's session cache when the server allows it, and prints
 * its own echo and summary line.  --keylog FILE appends the TLS secrets to
 * FILE (NSS key-log format, for Wireshark): for debugging only.
 *
 * Verification is on unless --no-verify: against --ca if given, else the
 * system store, for the name of --verify-host, else --sni, else HOST.  SNI
 * defaults to HOST unless HOST is an IP literal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corotls.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: tls_echo_client --connect HOST:PORT [--sni NAME] [--ca FILE]\n"
            "                       [--verify-host NAME] [--no-verify] [--alpn LIST]\n"
            "                       [--cert FILE --key FILE] [--message TEXT]\n"
            "                       [--reconnect N] [--keylog FILE]\n");
    exit(2);
}

static int fail(const char *what, const char *detail)
{
    fprintf(stderr, "tls_echo_client: %s: %s\n", what, detail);
    return 1;
}

/* "h2,http/1.1" -> wire format. */
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

static int is_ip_literal(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Split "HOST:PORT" (HOST may be "[v6]"). */
static int split_hostport(const char *arg, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon = strrchr(arg, ':');
    if (colon == NULL || colon == arg || colon[1] == '\0')
        return -1;
    const char *h = arg;
    size_t hlen = (size_t)(colon - arg);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= hcap || strlen(colon + 1) >= pcap)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

static int tcp_connect(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
    int fd = -1;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* Wait for what the last call asked for; 10 s at most. */
static int wait_for(int fd, corotls_result r)
{
    struct pollfd p = {.fd = fd, .events = r == COROTLS_WANT_WRITE ? POLLOUT : POLLIN};
    return poll(&p, 1, 10000) == 1 ? 0 : -1;
}

/* One connection: handshake, send the message, print the echo and the
 * summary line.  0, or 1 after printing the error. */
static int echo_once(corotls_conf *conf, const char *host, const char *port, const char *sni,
                     const char *verify_host, int no_verify, const char *message)
{
    corotls_conn *conn = NULL;
    int status = 1;
    int fd = tcp_connect(host, port);
    if (fd < 0)
        return fail("connect", strerror(errno ? errno : ECONNREFUSED));
    corotls_result r = corotls_conn_new(conf, fd, &conn);
    if (r == COROTLS_OK && sni)
        r = corotls_conn_set_sni(conn, sni);
    if (r == COROTLS_OK && !no_verify)
        r = corotls_conn_set_verify_host(conn, verify_host ? verify_host : sni ? sni : host);
    /* The conf's session cache, under where this connects. */
    if (r == COROTLS_OK)
        r = corotls_conn_set_resume_key(conn, host, (uint16_t)atoi(port));
    if (r != COROTLS_OK) {
        status = fail("setup", corotls_last_error());
        goto out;
    }

    while ((r = corotls_conn_handshake(conn)) == COROTLS_WANT_READ || r == COROTLS_WANT_WRITE)
        if (wait_for(fd, r) != 0) {
            status = fail("handshake", "timed out");
            goto out;
        }
    if (r != COROTLS_OK) {
        status = fail("handshake", corotls_conn_error(conn));
        goto out;
    }

    size_t len = strlen(message), sent = 0, got = 0;
    while (sent < len) {
        size_t n = 0;
        r = corotls_conn_write(conn, (const uint8_t *)message + sent, len - sent, &n);
        sent += n;
        if ((r == COROTLS_WANT_WRITE && wait_for(fd, r) != 0) || (r != COROTLS_OK && r != COROTLS_WANT_WRITE)) {
            status = fail("write", r == COROTLS_WANT_WRITE ? "timed out" : corotls_conn_error(conn));
            goto out;
        }
    }
    char *echo = malloc(len + 1);
    while (echo && got < len) {
        size_t n = 0;
        r = corotls_conn_read(conn, (uint8_t *)echo + got, len - got, &n);
        got += n;
        if (r == COROTLS_OK)
            continue;
        if ((r == COROTLS_WANT_READ || r == COROTLS_WANT_WRITE) && wait_for(fd, r) == 0)
            continue;
        break;
    }
    if (echo == NULL || got < len) {
        status = fail("read", echo == NULL ? "out of memory"
                      : r == COROTLS_WANT_READ ? "timed out" : corotls_conn_error(conn));
        free(echo);
        goto out;
    }
    echo[len] = '\0';
    printf("%s\n", echo);
    fflush(stdout);
    free(echo);
    const corotls_session *s = corotls_conn_session(conn);
    fprintf(stderr, "version=%s cipher=%s alpn=%s resumed=%d\n", corotls_session_version(s),
            corotls_session_cipher(s), corotls_session_alpn(s), corotls_conn_resumed(conn) ? 1 : 0);
    /* One non-blocking close_notify attempt; the echo is already complete. */
    corotls_conn_shutdown(conn);
    status = 0;

out:
    corotls_conn_free(conn);
    close(fd);
    return status;
}

int main(int argc, char **argv)
{
    const char *connect_to = NULL, *sni = NULL, *ca = NULL, *verify_host = NULL;
    const char *alpn = NULL, *cert = NULL, *key = NULL, *message = "hello-from-corotls";
    const char *keylog = NULL;
    int no_verify = 0, reconnect = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-verify")) {
            no_verify = 1;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (!strcmp(a, "--connect")) connect_to = v;
        else if (!strcmp(a, "--sni")) sni = v;
        else if (!strcmp(a, "--ca")) ca = v;
        else if (!strcmp(a, "--verify-host")) verify_host = v;
        else if (!strcmp(a, "--alpn")) alpn = v;
        else if (!strcmp(a, "--cert")) cert = v;
        else if (!strcmp(a, "--key")) key = v;
        else if (!strcmp(a, "--message")) message = v;
        else if (!strcmp(a, "--keylog")) keylog = v;
        else if (!strcmp(a, "--reconnect")) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || n < 0 || n > 1000000)
                return fail("--reconnect", "expected a count from 0 to 1000000");
            reconnect = (int)n;
        }
        else usage();
    }
    if (connect_to == NULL || (cert == NULL) != (key == NULL))
        usage();

    char host[256], port[32];
    if (split_hostport(connect_to, host, sizeof host, port, sizeof port) != 0)
        return fail("--connect", "expected HOST:PORT");
    if (sni == NULL && !is_ip_literal(host))
        sni = host;

    corotls_conf_builder *b = NULL;
    corotls_conf *conf = NULL;
    int status = 1;
    corotls_result r = corotls_conf_builder_new(COROTLS_CLIENT, &b);
    if (r == COROTLS_OK && cert)
        r = corotls_conf_builder_add_identity_file(b, cert, key, NULL);
    if (r == COROTLS_OK && no_verify)
        r = corotls_conf_builder_set_verify(b, COROTLS_VERIFY_NONE);
    if (r == COROTLS_OK && !no_verify)
        r = ca ? corotls_conf_builder_add_ca_file(b, ca) : corotls_conf_builder_add_system_ca(b);
    if (r == COROTLS_OK && keylog)
        r = corotls_conf_builder_set_keylog_file(b, keylog);
    if (r == COROTLS_OK && alpn) {
        unsigned char wire[1024];
        size_t n = alpn_wire(alpn, wire, sizeof wire);
        r = n ? corotls_conf_builder_set_alpn_wire(b, wire, n) : COROTLS_ERR_ARG;
        if (n == 0) {
            status = fail("--alpn", "expected a comma-separated list of names");
            goto out;
        }
    }
    if (r == COROTLS_OK)
        r = corotls_conf_builder_build(b, &conf);
    if (r != COROTLS_OK) {
        status = fail("configuration", corotls_last_error());
        goto out;
    }
    status = 0;
    for (int i = 0; i <= reconnect && status == 0; i++)
        status = echo_once(conf, host, port, sni, verify_host, no_verify, message);

out:
    corotls_conf_free(conf);
    corotls_conf_builder_free(b);
    return status;
}
