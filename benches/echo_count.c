/*
 * echo_count: 64-byte echo round trips through corotls_session_* (in
 * memory) or corotls_conn_* (over a socketpair, one thread), for
 * instruction counts under callgrind (make bench-callgrind): the cost of
 * one round trip is the difference between two runs divided by the
 * difference in rounds, so set-up and handshake cancel out.
 *
 *   echo_count session|conn ROUNDS [CERTDIR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corotls.h"

static corotls_conf *conf(int server, const char *dir)
{
    char crt[512], key[512], ca[512];
    snprintf(crt, sizeof crt, "%s/leaf.crt", dir);
    snprintf(key, sizeof key, "%s/leaf.key", dir);
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    corotls_conf *c = NULL;
    if (server)
        corotls_conf_new(COROTLS_SERVER, crt, key, NULL, NULL, false, &c);
    else
        corotls_conf_new(COROTLS_CLIENT, NULL, NULL, ca, NULL, false, &c);
    if (c == NULL) {
        fprintf(stderr, "conf: %s\n", corotls_last_error());
        exit(1);
    }
    return c;
}

static void pump(corotls_session *a, corotls_session *b)
{
    uint8_t buf[16384];
    size_t n;
    while ((n = corotls_session_out_read(a, buf, sizeof buf)) > 0)
        corotls_session_feed(b, buf, n, NULL);
}

static int sessions(long rounds, corotls_conf *cc, corotls_conf *sc)
{
    corotls_session *c, *s;
    corotls_session_new(cc, &c);
    corotls_session_new(sc, &s);
    for (int i = 0; i < 10 && !(corotls_session_handshake_done(c) && corotls_session_handshake_done(s)); i++) {
        corotls_session_handshake(c);
        pump(c, s);
        corotls_session_handshake(s);
        pump(s, c);
    }
    uint8_t msg[64], buf[64];
    memset(msg, 'x', sizeof msg);
    for (long r = 0; r < rounds; r++) {
        size_t n = 0;
        corotls_session_write(c, msg, sizeof msg);
        pump(c, s);
        if (corotls_session_read(s, buf, sizeof buf, &n) != COROTLS_OK || n != 64)
            return 1;
        corotls_session_write(s, buf, n);
        pump(s, c);
        if (corotls_session_read(c, buf, sizeof buf, &n) != COROTLS_OK || n != 64)
            return 1;
    }
    corotls_session_free(c);
    corotls_session_free(s);
    return 0;
}

static int conns(long rounds, corotls_conf *cc, corotls_conf *sc)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 1;
    corotls_conn *c, *s;
    corotls_conn_new(cc, sv[0], &c);
    corotls_conn_new(sc, sv[1], &s);
    corotls_result rc = COROTLS_WANT_READ, rs = COROTLS_WANT_READ;
    for (int i = 0; i < 20 && (rc != COROTLS_OK || rs != COROTLS_OK); i++) {
        rc = corotls_conn_handshake(c);
        rs = corotls_conn_handshake(s);
    }
    uint8_t msg[64], buf[64];
    memset(msg, 'x', sizeof msg);
    for (long r = 0; r < rounds; r++) {
        size_t n = 0;
        if (corotls_conn_write(c, msg, sizeof msg, &n) != COROTLS_OK || n != 64)
            return 1;
        if (corotls_conn_read(s, buf, sizeof buf, &n) != COROTLS_OK || n != 64)
            return 1;
        if (corotls_conn_write(s, buf, n, &n) != COROTLS_OK || n != 64)
            return 1;
        if (corotls_conn_read(c, buf, sizeof buf, &n) != COROTLS_OK || n != 64)
            return 1;
    }
    corotls_conn_free(c);
    corotls_conn_free(s);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s session|conn ROUNDS [CERTDIR]\n", argv[0]);
        return 2;
    }
    const char *dir = argc > 3 ? argv[3] : "target/certs";
    corotls_conf *cc = conf(0, dir), *sc = conf(1, dir);
    long rounds = atol(argv[2]);
    int rc = !strcmp(argv[1], "conn") ? conns(rounds, cc, sc) : sessions(rounds, cc, sc);
    corotls_conf_free(cc);
    corotls_conf_free(sc);
    if (rc)
        fprintf(stderr, "echo failed: %s\n", corotls_last_error());
    return rc;
}
