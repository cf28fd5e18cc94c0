/*
 * core_table.c -- the Melang extension's binding core against the
 * behaviour table of spec melang-module.md §5 (every function: argument
 * checks and their exact messages, ERR (script stops) vs MSG + false,
 * every return value), through the fixture host, over real loopback
 * sockets.  Both ends of a connection are coroutines of one lang, as in
 * the seed's example.  (One program over 600 lines on purpose: one case
 * per row of the table, in the table's order.)
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "host.h"

#define CALL(c, fn, ...) fx_call(c, fn, FX_ARGS(__VA_ARGS__))
#define RUN(c, fn, ...) fx_run(c, fn, FX_ARGS(__VA_ARGS__))
/* ERR: the message, and the coroutine stops. */
#define IS_ERR(c, k, m) ((k) == MTLS_RET_ERROR && strcmp((c)->msg, (m)) == 0)
/* MSG + false. */
#define IS_MSG(c, k, m) ((k) == MTLS_RET_FALSE && strcmp((c)->msg, (m)) == 0)
/* false, no message. */
#define IS_FALSE(c, k) ((k) == MTLS_RET_FALSE && (c)->msg[0] == 0)

static const char *cert(const char *n)
{
    return harness_cert(n);
}

static char *repeat(char ch, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, ch, n);
    s[n] = 0;
    return s;
}

static int fcntl_ok(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

/* A raw TCP client of 127.0.0.1:port (blocking). */
static int raw_client(int port)
{
    return harness_connect_loopback(port);
}

TEST(conf_new_and_conf_free)
{
    struct fx_lang L;
    REQUIRE(fx_lang_init(&L) == 0, "lang");
    struct fx_co c;
    fx_co_init(&c, &L);
    const char *crt = cert("leaf.crt"), *key = cert("leaf.key");
    int k;

    k = CALL(&c, MTLS_CONF_NEW, A_NIL(), A_NIL(), A_NIL(), A_NIL(), A_NIL(), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'role' must be 'server' or 'client'."), "role nil: ERR (%s)", c.msg);
    k = CALL(&c, MTLS_CONF_NEW, A_STR("Server"), A_NIL(), A_NIL(), A_NIL(), A_NIL(), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'role' must be 'server' or 'client'."), "role 'Server': ERR");
    k = CALL(&c, MTLS_CONF_NEW, A_STRN("server\0", 7), A_NIL(), A_NIL(), A_NIL(), A_NIL(), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'role' must be 'server' or 'client'."), "role 'server\\0': ERR");
    k = CALL(&c, MTLS_CONF_NEW, A_INT(0), A_NIL(), A_NIL(), A_NIL(), A_NIL(), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'role' must be 'server' or 'client'."), "role 0: ERR");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_INT(1), A_NIL(), A_NIL(), A_NIL(), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'cert' must be a string or nil."), "cert int: ERR");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_NIL(), A_BOOL(1), A_NIL(), A_NIL(), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'key' must be a string or nil."), "key bool: ERR");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_NIL(), A_NIL(), A_OTHER(), A_NIL(), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'ca' must be a string or nil."), "ca array: ERR");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_NIL(), A_NIL(), A_NIL(), A_INT(3), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'ciphers' must be a string or nil."), "ciphers int: ERR");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_NIL(), A_NIL(), A_NIL(), A_NIL(), A_STR("yes"));
    CHECK(IS_ERR(&c, k, "Argument 'verify' must be bool, int or nil."), "verify string: ERR");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_NIL(), A_NIL(), A_NIL(), A_NIL(), A_OTHER());
    CHECK(IS_ERR(&c, k, "Argument 'verify' must be bool, int or nil."), "verify other: ERR");
    /* The checks come in order: role before cert. */
    k = CALL(&c, MTLS_CONF_NEW, A_STR("x"), A_INT(1), A_NIL(), A_NIL(), A_NIL(), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'role' must be 'server' or 'client'."), "role is checked first");

    /* Ids: 1, 2, 3 ... per lang. */
    k = CALL(&c, MTLS_CONF_NEW, A_STR("server"), A_STR(crt), A_STR(key), A_NIL(), A_NIL(), A_BOOL(0));
    CHECK(k == MTLS_RET_INT && c.i == 1, "server conf: id 1 (%d, %lld)", k, (long long)c.i);
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_NIL(), A_NIL(), A_NIL(), A_NIL(), A_NIL());
    CHECK(k == MTLS_RET_INT && c.i == 2, "client conf, verify nil: id 2");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_NIL(), A_NIL(), A_STR(cert("ca.crt")), A_NIL(), A_INT(7));
    CHECK(k == MTLS_RET_INT && c.i == 3, "client conf, verify 7 with a CA: id 3");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_NIL(), A_NIL(), A_NIL(), A_NIL(), A_BOOL(1));
    CHECK(k == MTLS_RET_INT && c.i == 4, "verify without a CA builds (every handshake will fail): id 4");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("server"), A_STR(crt), A_STR(key), A_NIL(), A_NIL(), A_BOOL(1));
    CHECK(k == MTLS_RET_INT && c.i == 5, "a server with verify and no CA builds: id 5");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_STR(cert("client.crt")), A_STR(cert("client.key")),
             A_STR(cert("ca.crt")), A_STR("ECDHE+AESGCM"), A_BOOL(1));
    CHECK(k == MTLS_RET_INT && c.i == 6, "a client with a client certificate and ciphers: id 6");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_STR(crt), A_NIL(), A_NIL(), A_NIL(), A_NIL());
    CHECK(k == MTLS_RET_INT && c.i == 7, "a client certificate without its key loads (as in Melon): id 7");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_STR(""), A_STR(""), A_STR(""), A_STR(""), A_NIL());
    CHECK(k == MTLS_RET_INT && c.i == 8, "empty strings mean 'not given': id 8");

    /* Build failures: false, no message. */
    k = CALL(&c, MTLS_CONF_NEW, A_STR("server"), A_NIL(), A_NIL(), A_NIL(), A_NIL(), A_NIL());
    CHECK(IS_FALSE(&c, k), "server without cert/key: false");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("server"), A_STR(""), A_STR(key), A_NIL(), A_NIL(), A_NIL());
    CHECK(IS_FALSE(&c, k), "server with '' cert: false");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("server"), A_STR(crt), A_NIL(), A_NIL(), A_NIL(), A_NIL());
    CHECK(IS_FALSE(&c, k), "server with a cert and no key: false");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_NIL(), A_STR(key), A_NIL(), A_NIL(), A_NIL());
    CHECK(IS_FALSE(&c, k), "a key without a certificate: false");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_STR(cert("garbage.pem")), A_NIL(), A_NIL(), A_NIL(), A_NIL());
    CHECK(IS_FALSE(&c, k), "a client certificate file that is not PEM: false");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("server"), A_STR("/nonexistent.crt"), A_STR(key), A_NIL(), A_NIL(), A_NIL());
    CHECK(IS_FALSE(&c, k), "missing cert file: false");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("server"), A_STR(crt), A_STR(cert("other.key")), A_NIL(), A_NIL(), A_NIL());
    CHECK(IS_FALSE(&c, k), "key mismatch: false");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_NIL(), A_NIL(), A_STR(cert("garbage.pem")), A_NIL(), A_NIL());
    CHECK(IS_FALSE(&c, k), "bad CA file: false");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_NIL(), A_NIL(), A_NIL(), A_STR("NO-SUCH-CIPHER"), A_NIL());
    CHECK(IS_FALSE(&c, k), "bad cipher list: false");
    char withnul[256];
    size_t n = strlen(crt);
    memcpy(withnul, crt, n);
    memcpy(withnul + n, "\0x", 2);
    k = CALL(&c, MTLS_CONF_NEW, A_STR("server"), A_STRN(withnul, n + 2), A_STR(key), A_NIL(), A_NIL(), A_NIL());
    CHECK(IS_FALSE(&c, k), "a path with an embedded NUL: false");

    /* conf_free. */
    k = CALL(&c, MTLS_CONF_FREE, A_STR("1"));
    CHECK(IS_ERR(&c, k, "Argument 'conf' must be an int returned by conf_new."), "conf_free of a string: ERR");
    k = CALL(&c, MTLS_CONF_FREE, A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'conf' must be an int returned by conf_new."), "conf_free of nil: ERR");
    CHECK(CALL(&c, MTLS_CONF_FREE, A_INT(999)) == MTLS_RET_NIL, "conf_free of an unknown id: nil");
    CHECK(CALL(&c, MTLS_CONF_FREE, A_INT(8)) == MTLS_RET_NIL, "conf_free: nil");
    CHECK(CALL(&c, MTLS_CONF_FREE, A_INT(8)) == MTLS_RET_NIL, "a second conf_free: nil");
    k = CALL(&c, MTLS_CONF_NEW, A_STR("client"), A_NIL(), A_NIL(), A_NIL(), A_NIL(), A_NIL());
    CHECK(k == MTLS_RET_INT && c.i == 9, "ids are never reused: 9 (%lld)", (long long)c.i);
    fx_kill(&c);
    fx_lang_destroy(&L);
}

TEST(listen_rows)
{
    struct fx_lang L;
    REQUIRE(fx_lang_init(&L) == 0, "lang");
    struct fx_co c;
    fx_co_init(&c, &L);
    int k;
    char *h128 = repeat('a', 128), *h127 = repeat('a', 127), *s64 = repeat('1', 64);

    k = CALL(&c, MTLS_LISTEN, A_INT(1), A_STR("0"));
    CHECK(IS_ERR(&c, k, "Argument 'host' must be a string."), "host int: ERR");
    k = CALL(&c, MTLS_LISTEN, A_STR(h128), A_STR("0"));
    CHECK(IS_ERR(&c, k, "host too long."), "host of 128 bytes: ERR");
    k = CALL(&c, MTLS_LISTEN, A_STR("127.0.0.1"), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'service' must be a string."), "service nil: ERR");
    k = CALL(&c, MTLS_LISTEN, A_STR("127.0.0.1"), A_STR(s64));
    CHECK(IS_ERR(&c, k, "service too long."), "service of 64 bytes: ERR");
    k = CALL(&c, MTLS_LISTEN, A_STR(h128), A_NIL());
    CHECK(IS_ERR(&c, k, "host too long."), "host is checked before service");
    k = CALL(&c, MTLS_LISTEN, A_STR(h127), A_STR("0"));
    CHECK(IS_FALSE(&c, k), "a 127-byte host that does not resolve: false");
    k = CALL(&c, MTLS_LISTEN, A_STR("127.0.0.1"), A_STR("no-such-service-name"));
    CHECK(IS_FALSE(&c, k), "an unknown service: false");
    k = CALL(&c, MTLS_LISTEN, A_STRN("127.0.0.1\0", 10), A_STR("0"));
    CHECK(IS_FALSE(&c, k), "a host with an embedded NUL: false");
    int port, lfd = fx_listen(&c, &port);
    CHECK(lfd >= 0 && port > 0, "listen 127.0.0.1:0: the fd %d (port %d)", lfd, port);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    k = CALL(&c, MTLS_LISTEN, A_STR("127.0.0.1"), A_STR(ps));
    CHECK(IS_FALSE(&c, k), "a second listen on the port: false (no SO_REUSEPORT)");
    k = CALL(&c, MTLS_LISTEN, A_STR(""), A_STR("0"));
    CHECK(k == MTLS_RET_INT, "'' listens on every address");
    if (k == MTLS_RET_INT)
        CALL(&c, MTLS_CLOSE, A_INT(c.i));
    CHECK(CALL(&c, MTLS_CLOSE, A_INT(lfd)) == MTLS_RET_NIL, "close the listener: nil");
    free(h128);
    free(h127);
    free(s64);
    fx_kill(&c);
    fx_lang_destroy(&L);
}

TEST(accept_rows)
{
    struct fx_lang L;
    REQUIRE(fx_lang_init(&L) == 0, "lang");
    struct fx_co a, b, cl;
    fx_co_init(&a, &L);
    fx_co_init(&b, &L);
    fx_co_init(&cl, &L);
    int64_t sconf = fx_conf(&a, "server", cert("leaf.crt"), cert("leaf.key"), NULL, 0);
    int64_t cconf = fx_conf(&a, "client", NULL, NULL, NULL, 0);
    int port, lfd = fx_listen(&a, &port);
    REQUIRE(sconf > 0 && cconf > 0 && lfd >= 0, "confs and a listener");
    int k;

    k = CALL(&a, MTLS_ACCEPT, A_STR("3"), A_INT(sconf), A_NIL());
    CHECK(IS_ERR(&a, k, "Argument 'fd' must be an int."), "fd string: ERR");
    k = CALL(&a, MTLS_ACCEPT, A_INT(lfd), A_NIL(), A_NIL());
    CHECK(IS_ERR(&a, k, "Argument 'conf' must be an int."), "conf nil: ERR");
    k = CALL(&a, MTLS_ACCEPT, A_INT(lfd), A_INT(sconf), A_INT(-1));
    CHECK(IS_ERR(&a, k, "Argument 'timeout' must be a non-negative int or nil."), "timeout -1: ERR");
    k = CALL(&a, MTLS_ACCEPT, A_INT(lfd), A_INT(sconf), A_STR("10"));
    CHECK(IS_ERR(&a, k, "Argument 'timeout' must be a non-negative int or nil."), "timeout string: ERR");
    k = CALL(&a, MTLS_ACCEPT, A_INT(9999), A_INT(999), A_NIL());
    CHECK(IS_FALSE(&a, k), "unknown fd: false, no message (before the conf check)");
    k = CALL(&a, MTLS_ACCEPT, A_INT(-5), A_INT(sconf), A_NIL());
    CHECK(IS_FALSE(&a, k), "a negative fd: false");
    k = CALL(&a, MTLS_ACCEPT, A_INT((int64_t)1 << 40), A_INT(sconf), A_NIL());
    CHECK(IS_FALSE(&a, k), "an fd beyond int: false");
    k = CALL(&a, MTLS_ACCEPT, A_INT(lfd), A_INT(999), A_NIL());
    CHECK(IS_MSG(&a, k, "Invalid 'conf' handle."), "unknown conf: MSG + false (%s)", a.msg);

    /* Timeout: nil, the listener stays usable. */
    k = RUN(&a, MTLS_ACCEPT, A_INT(lfd), A_INT(sconf), A_INT(50));
    CHECK(k == MTLS_RET_NIL && a.resumes == 1, "accept timed out after 50 ms: nil, through a resume");
    k = RUN(&a, MTLS_ACCEPT, A_INT(lfd), A_INT(sconf), A_INT(0));
    CHECK(k == MTLS_RET_NIL, "timeout 0 with nobody waiting: nil");

    /* Busy: a second accept on the listener. */
    k = CALL(&a, MTLS_ACCEPT, A_INT(lfd), A_INT(sconf), A_NIL());
    CHECK(k == MTLS_RET_SUSPENDED && a.parked, "an accept with nobody waiting suspends");
    k = CALL(&b, MTLS_ACCEPT, A_INT(lfd), A_INT(sconf), A_NIL());
    CHECK(IS_MSG(&b, k, "Listen socket already accepting in another script task."), "second accept: MSG (%s)", b.msg);
    k = CALL(&b, MTLS_ACCEPT, A_INT(lfd), A_INT(999), A_NIL());
    CHECK(IS_MSG(&b, k, "Invalid 'conf' handle."), "the conf is checked before busy");
    /* The conf is freed while the accept waits: it still succeeds. */
    CALL(&b, MTLS_CONF_FREE, A_INT(sconf));
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    k = RUN(&cl, MTLS_CONNECT, A_STR("127.0.0.1"), A_STR(ps), A_INT(cconf), A_INT(5000));
    CHECK(k == MTLS_RET_INT, "a client connects");
    int cfd = (int)cl.i;
    CHECK(fx_wait(&a, 5000) && a.kind == MTLS_RET_INT && a.i >= 0 && a.i != cfd,
          "the waiting accept resumes with the new fd (its conf freed meanwhile)");
    int sfd = (int)a.i;
    k = CALL(&b, MTLS_ACCEPT, A_INT(sfd), A_INT(cconf), A_NIL());
    CHECK(IS_MSG(&b, k, "fd is not a listen socket."), "accept on a connection: MSG (%s)", b.msg);
    k = CALL(&b, MTLS_ACCEPT, A_INT(sfd), A_INT(999), A_NIL());
    CHECK(IS_MSG(&b, k, "fd is not a listen socket."), "the listener check comes before the conf check");
    /* No handshake yet: the accepted fd handshakes now. */
    k = CALL(&cl, MTLS_HANDSHAKE, A_INT(cfd), A_INT(5000));
    int ks = RUN(&a, MTLS_HANDSHAKE, A_INT(sfd), A_INT(5000));
    if (k == MTLS_RET_SUSPENDED && fx_wait(&cl, 5000))
        k = cl.kind;
    CHECK(k == MTLS_RET_TRUE && ks == MTLS_RET_TRUE, "the accepted connection handshakes (the conf lives on)");
    /* A huge timeout is clamped, not refused. */
    int64_t sconf2 = fx_conf(&a, "server", cert("leaf.crt"), cert("leaf.key"), NULL, 0);
    k = CALL(&a, MTLS_ACCEPT, A_INT(lfd), A_INT(sconf2), A_INT((int64_t)1 << 40));
    CHECK(k == MTLS_RET_SUSPENDED, "a timeout beyond int is clamped (%d %s)", k, a.msg);
    CALL(&b, MTLS_CLOSE, A_INT(lfd));
    CHECK(fx_wait(&a, 5000) && IS_FALSE(&a, a.kind), "closing the listener resumes its accept with false");
    CALL(&a, MTLS_CLOSE, A_INT(sfd));
    CALL(&a, MTLS_CLOSE, A_INT(cfd));
    fx_kill(&a);
    fx_kill(&b);
    fx_kill(&cl);
    CHECK(L.bad_resumes == 0, "every resume followed the rules");
    fx_lang_destroy(&L);
}

TEST(connect_rows)
{
    struct fx_lang L;
    REQUIRE(fx_lang_init(&L) == 0, "lang");
    struct fx_co c, s;
    fx_co_init(&c, &L);
    fx_co_init(&s, &L);
    int64_t sconf = fx_conf(&c, "server", cert("leaf.crt"), cert("leaf.key"), NULL, 0);
    int64_t cconf = fx_conf(&c, "client", NULL, NULL, NULL, 0);
    char *h128 = repeat('a', 128), *s64 = repeat('1', 64);
    int k;

    k = CALL(&c, MTLS_CONNECT, A_INT(1), A_STR("1"), A_INT(cconf), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'host' must be a string."), "host int: ERR");
    k = CALL(&c, MTLS_CONNECT, A_STR(h128), A_STR("1"), A_INT(cconf), A_NIL());
    CHECK(IS_ERR(&c, k, "host too long."), "host too long: ERR");
    k = CALL(&c, MTLS_CONNECT, A_STR("127.0.0.1"), A_INT(443), A_INT(cconf), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'service' must be a string."), "service int: ERR");
    k = CALL(&c, MTLS_CONNECT, A_STR("127.0.0.1"), A_STR(s64), A_INT(cconf), A_NIL());
    CHECK(IS_ERR(&c, k, "service too long."), "service too long: ERR");
    k = CALL(&c, MTLS_CONNECT, A_STR("127.0.0.1"), A_STR("1"), A_STR("1"), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'conf' must be an int."), "conf string: ERR");
    k = CALL(&c, MTLS_CONNECT, A_STR("127.0.0.1"), A_STR("1"), A_INT(cconf), A_INT(-2));
    CHECK(IS_ERR(&c, k, "Argument 'timeout' must be a non-negative int or nil."), "timeout -2: ERR");
    k = CALL(&c, MTLS_CONNECT, A_STR("127.0.0.1"), A_STR("1"), A_INT(999), A_NIL());
    CHECK(IS_ERR(&c, k, "Invalid 'conf' handle."), "unknown conf: ERR, the script stops (unlike accept)");

    int free_port = harness_free_port();
    char ps[16];
    snprintf(ps, sizeof ps, "%d", free_port);
    k = RUN(&c, MTLS_CONNECT, A_STR("127.0.0.1"), A_STR(ps), A_INT(cconf), A_INT(5000));
    CHECK(IS_FALSE(&c, k), "connection refused: false");
    k = RUN(&c, MTLS_CONNECT, A_STR("no-such-host.invalid"), A_STR("443"), A_INT(cconf), A_INT(5000));
    CHECK(k == MTLS_RET_FALSE || k == MTLS_RET_NIL, "a name that does not resolve: false (%d)", k);
    k = CALL(&c, MTLS_CONNECT, A_STRN("127.0.0.1\0", 10), A_STR("1"), A_INT(cconf), A_NIL());
    CHECK(IS_FALSE(&c, k), "a host with an embedded NUL: false");

    /* Timeout: a listener whose accept queue is full drops the SYN. */
    int plfd = socket(AF_INET, SOCK_STREAM, 0), fill[64], nfill = 0;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    REQUIRE(bind(plfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(plfd, 0) == 0 &&
                getsockname(plfd, (struct sockaddr *)&sa, &sl) == 0,
            "a plain listener with backlog 0");
    int full_port = ntohs(sa.sin_port);
    for (; nfill < 64; nfill++) {
        int f = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(f, (struct sockaddr *)&sa, sizeof sa);
        fill[nfill] = f;
        harness_sleep_ms(2);
    }
    snprintf(ps, sizeof ps, "%d", full_port);
    long long t0 = harness_now_ms();
    k = RUN(&c, MTLS_CONNECT, A_STR("127.0.0.1"), A_STR(ps), A_INT(cconf), A_INT(150));
    CHECK(k == MTLS_RET_NIL && harness_now_ms() - t0 < 3000, "connect timeout: nil (%d)", k);
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(plfd);

    /* Success: an int fd, no handshake yet; by name too. */
    int port, lfd = fx_listen(&s, &port);
    snprintf(ps, sizeof ps, "%d", port);
    k = RUN(&c, MTLS_CONNECT, A_STR("127.0.0.1"), A_STR(ps), A_INT(cconf), A_NIL());
    CHECK(k == MTLS_RET_INT && c.i >= 0, "connect: the fd");
    int cfd = (int)c.i;
    k = RUN(&s, MTLS_ACCEPT, A_INT(lfd), A_INT(sconf), A_INT(5000));
    CHECK(k == MTLS_RET_INT, "accepted");
    int sfd = (int)s.i;
    CALL(&c, MTLS_CLOSE, A_INT(cfd));
    CALL(&c, MTLS_CLOSE, A_INT(sfd));
    k = RUN(&c, MTLS_CONNECT, A_STR("localhost"), A_STR(ps), A_INT(cconf), A_INT(5000));
    CHECK(k == MTLS_RET_INT, "connect by name (resolved off the script thread): the fd");
    if (k == MTLS_RET_INT)
        CALL(&c, MTLS_CLOSE, A_INT(c.i));
    k = RUN(&s, MTLS_ACCEPT, A_INT(lfd), A_INT(sconf), A_INT(5000));
    if (k == MTLS_RET_INT)
        CALL(&s, MTLS_CLOSE, A_INT(s.i));
    /* A server conf cannot connect (corotls checks the role): false. */
    k = RUN(&c, MTLS_CONNECT, A_STR("127.0.0.1"), A_STR(ps), A_INT(sconf), A_INT(5000));
    CHECK(IS_FALSE(&c, k), "connect with a server conf: false");
    CALL(&s, MTLS_CLOSE, A_INT(lfd));
    free(h128);
    free(s64);
    fx_kill(&c);
    fx_kill(&s);
    fx_lang_destroy(&L);
}

TEST(set_sni_and_set_verify_host_rows)
{
    struct fx_lang L;
    REQUIRE(fx_lang_init(&L) == 0, "lang");
    struct fx_co c, s;
    fx_co_init(&c, &L);
    fx_co_init(&s, &L);
    int64_t sconf = fx_conf(&c, "server", cert("leaf.crt"), cert("leaf.key"), NULL, 0);
    int64_t cconf = fx_conf(&c, "client", NULL, NULL, NULL, 0);
    int port, lfd = fx_listen(&s, &port);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    REQUIRE(RUN(&c, MTLS_CONNECT, A_STR("127.0.0.1"), A_STR(ps), A_INT(cconf), A_INT(5000)) == MTLS_RET_INT,
            "connect");
    int cfd = (int)c.i;
    REQUIRE(RUN(&s, MTLS_ACCEPT, A_INT(lfd), A_INT(sconf), A_INT(5000)) == MTLS_RET_INT, "accept");
    int sfd = (int)s.i;
    /* 255 bytes in labels of 63: the longest name allowed. */
    char n255[256];
    for (int i = 0; i < 255; i++)
        n255[i] = (i % 64 == 63) ? '.' : 'a';
    n255[255] = 0;
    char *n256 = repeat('a', 256);
    for (int fn = MTLS_SET_SNI; fn <= MTLS_SET_VERIFY_HOST; fn++) {
        const char *what = fn == MTLS_SET_SNI ? "set_sni" : "set_verify_host";
        int k = CALL(&c, fn, A_NIL(), A_STR("localhost"));
        CHECK(IS_ERR(&c, k, "Argument 'fd' must be an int."), "%s: fd nil: ERR", what);
        k = CALL(&c, fn, A_INT(cfd), A_INT(5));
        CHECK(IS_ERR(&c, k, "Argument 'hostname' must be a string."), "%s: hostname int: ERR", what);
        CHECK(IS_FALSE(&c, CALL(&c, fn, A_INT(9999), A_STR("localhost"))), "%s: unknown fd: false", what);
        CHECK(IS_FALSE(&c, CALL(&c, fn, A_INT(lfd), A_STR("localhost"))), "%s: a listener: false", what);
        CHECK(IS_FALSE(&c, CALL(&c, fn, A_INT(cfd), A_STR(n256))), "%s: a name of 256 bytes: false", what);
        CHECK(IS_FALSE(&c, CALL(&c, fn, A_INT(cfd), A_STRN("ab\0cd", 5))), "%s: an embedded NUL: false", what);
        CHECK(CALL(&c, fn, A_INT(cfd), A_STR(n255)) == MTLS_RET_TRUE, "%s: a name of 255 bytes: true", what);
        CHECK(CALL(&c, fn, A_INT(cfd), A_STR("localhost")) == MTLS_RET_TRUE, "%s: localhost: true", what);
    }
    CHECK(IS_FALSE(&c, CALL(&c, MTLS_SET_SNI, A_INT(cfd), A_STR(""))), "set_sni(''): false (rejected by TLS)");
    CHECK(CALL(&s, MTLS_SET_VERIFY_HOST, A_INT(sfd), A_STR("")) == MTLS_RET_TRUE,
          "set_verify_host(''): true while no name was given (Melon: clears the check)");
    CHECK(IS_FALSE(&c, CALL(&c, MTLS_SET_VERIFY_HOST, A_INT(cfd), A_STR(""))),
          "set_verify_host(''): false once a name was given (it cannot be taken back)");
    CHECK(IS_FALSE(&s, CALL(&s, MTLS_SET_SNI, A_INT(sfd), A_STR("localhost"))), "set_sni on a server end: false");
    int kc = CALL(&c, MTLS_HANDSHAKE, A_INT(cfd), A_INT(5000));
    int ks = RUN(&s, MTLS_HANDSHAKE, A_INT(sfd), A_INT(5000));
    if (kc == MTLS_RET_SUSPENDED && fx_wait(&c, 5000))
        kc = c.kind;
    CHECK(kc == MTLS_RET_TRUE && ks == MTLS_RET_TRUE, "handshake (verify off: the names do not matter)");
    CHECK(IS_FALSE(&c, CALL(&c, MTLS_SET_SNI, A_INT(cfd), A_STR("localhost"))), "set_sni after the handshake: false");
    CALL(&c, MTLS_CLOSE, A_INT(cfd));
    CALL(&s, MTLS_CLOSE, A_INT(sfd));
    CALL(&s, MTLS_CLOSE, A_INT(lfd));
    free(n256);
    fx_kill(&c);
    fx_kill(&s);
    fx_lang_destroy(&L);
}

/* Verification: chain only, unless set_verify_host; only `ca` is trusted;
 * verify without a CA fails every handshake; a verifying server requires
 * a client certificate. */
static int hs_case(struct fx_lang *L, const char *scert, const char *skey, int64_t sverify_ca, const char *ccert,
                   const char *ckey, const char *ca, int verify, const char *verify_host, int *server_kind)
{
    struct fx_co c, s;
    fx_co_init(&c, L);
    fx_co_init(&s, L);
    int64_t sconf = fx_conf(&s, "server", cert(scert), cert(skey), sverify_ca ? cert("ca.crt") : NULL, (int)sverify_ca);
    int64_t cconf = fx_conf(&c, "client", ccert ? cert(ccert) : NULL, ckey ? cert(ckey) : NULL, ca ? cert(ca) : NULL,
                            verify);
    int port, lfd = fx_listen(&s, &port), cfd = -1, sfd = -1, kc = -1;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    *server_kind = -1;
    if (sconf > 0 && cconf > 0 && lfd >= 0 &&
        RUN(&c, MTLS_CONNECT, A_STR("127.0.0.1"), A_STR(ps), A_INT(cconf), A_INT(5000)) == MTLS_RET_INT) {
        cfd = (int)c.i;
        if (verify_host)
            CALL(&c, MTLS_SET_VERIFY_HOST, A_INT(cfd), A_STR(verify_host));
        if (RUN(&s, MTLS_ACCEPT, A_INT(lfd), A_INT(sconf), A_INT(5000)) == MTLS_RET_INT) {
            sfd = (int)s.i;
            kc = CALL(&c, MTLS_HANDSHAKE, A_INT(cfd), A_INT(5000));
            *server_kind = RUN(&s, MTLS_HANDSHAKE, A_INT(sfd), A_INT(5000));
            if (kc == MTLS_RET_SUSPENDED && fx_wait(&c, 5000))
                kc = c.kind;
        }
    }
    CALL(&c, MTLS_CLOSE, A_INT(cfd));
    CALL(&s, MTLS_CLOSE, A_INT(sfd));
    CALL(&s, MTLS_CLOSE, A_INT(lfd));
    CALL(&s, MTLS_CONF_FREE, A_INT(sconf));
    CALL(&s, MTLS_CONF_FREE, A_INT(cconf));
    fx_kill(&c);
    fx_kill(&s);
    return kc;
}

TEST(verification)
{
    struct fx_lang L;
    REQUIRE(fx_lang_init(&L) == 0, "lang");
    int sk;
    CHECK(hs_case(&L, "wronghost.crt", "wronghost.key", 0, NULL, NULL, "ca.crt", 1, NULL, &sk) == MTLS_RET_TRUE,
          "verify=true: a trusted certificate for another host passes without set_verify_host (chain only)");
    CHECK(hs_case(&L, "wronghost.crt", "wronghost.key", 0, NULL, NULL, "ca.crt", 1, "localhost", &sk) ==
              MTLS_RET_FALSE,
          "with set_verify_host('localhost') the name is checked: false");
    CHECK(hs_case(&L, "wronghost.crt", "wronghost.key", 0, NULL, NULL, "ca.crt", 1, "wrong.example", &sk) ==
              MTLS_RET_TRUE,
          "set_verify_host with the certificate's name: true");
    CHECK(hs_case(&L, "leaf.crt", "leaf.key", 0, NULL, NULL, "ca.crt", 1, "localhost", &sk) == MTLS_RET_TRUE,
          "leaf.crt as localhost: true");
    CHECK(hs_case(&L, "selfsigned.crt", "selfsigned.key", 0, NULL, NULL, "ca.crt", 1, NULL, &sk) == MTLS_RET_FALSE,
          "an untrusted certificate: false");
    CHECK(hs_case(&L, "leaf.crt", "leaf.key", 0, NULL, NULL, NULL, 1, NULL, &sk) == MTLS_RET_FALSE,
          "verify=true without a CA: the conf builds, every handshake fails");
    CHECK(hs_case(&L, "selfsigned.crt", "selfsigned.key", 0, NULL, NULL, "ca.crt", 0, "localhost", &sk) ==
              MTLS_RET_TRUE,
          "verify=false: set_verify_host changes nothing");
    hs_case(&L, "leaf.crt", "leaf.key", 1, NULL, NULL, NULL, 0, NULL, &sk);
    CHECK(sk == MTLS_RET_FALSE, "a verifying server refuses a client without a certificate: false");
    int kc = hs_case(&L, "leaf.crt", "leaf.key", 1, "client.crt", "client.key", NULL, 0, NULL, &sk);
    CHECK(sk == MTLS_RET_TRUE && kc == MTLS_RET_TRUE, "and accepts one with a certificate from its CA");
    fx_lang_destroy(&L);
}

TEST(handshake_send_recv_rows)
{
    struct fx_lang L;
    REQUIRE(fx_lang_init(&L) == 0, "lang");
    struct fx_co c, s, o;
    fx_co_init(&c, &L);
    fx_co_init(&s, &L);
    fx_co_init(&o, &L);
    int64_t sconf = fx_conf(&c, "server", cert("leaf.crt"), cert("leaf.key"), NULL, 0);
    int64_t cconf = fx_conf(&c, "client", NULL, NULL, NULL, 0);
    int port, lfd = fx_listen(&s, &port), cfd, sfd, k;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);

    /* Argument checks. */
    k = CALL(&c, MTLS_HANDSHAKE, A_BOOL(1), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'fd' must be an int."), "handshake fd bool: ERR");
    k = CALL(&c, MTLS_HANDSHAKE, A_INT(lfd), A_INT(-1));
    CHECK(IS_ERR(&c, k, "Argument 'timeout' must be a non-negative int or nil."), "handshake timeout -1: ERR");
    k = CALL(&c, MTLS_SEND, A_INT(lfd), A_NIL(), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'data' must be a string."), "send data nil: ERR");
    k = CALL(&c, MTLS_SEND, A_INT(lfd), A_INT(5), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'data' must be a string."), "send data int: ERR");
    k = CALL(&c, MTLS_SEND, A_INT(lfd), A_STR("x"), A_OTHER());
    CHECK(IS_ERR(&c, k, "Argument 'timeout' must be a non-negative int or nil."), "send timeout: ERR");
    k = CALL(&c, MTLS_RECV, A_STR("x"), A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'fd' must be an int."), "recv fd string: ERR");
    k = CALL(&c, MTLS_RECV, A_INT(lfd), A_BOOL(0));
    CHECK(IS_ERR(&c, k, "Argument 'timeout' must be a non-negative int or nil."), "recv timeout bool: ERR");
    CHECK(IS_FALSE(&c, CALL(&c, MTLS_HANDSHAKE, A_INT(9999), A_NIL())), "handshake unknown fd: false");
    CHECK(IS_FALSE(&c, CALL(&c, MTLS_SEND, A_INT(9999), A_STR("x"), A_NIL())), "send unknown fd: false");
    CHECK(IS_FALSE(&c, CALL(&c, MTLS_RECV, A_INT(9999), A_NIL())), "recv unknown fd: false");
    k = CALL(&c, MTLS_HANDSHAKE, A_INT(lfd), A_NIL());
    CHECK(IS_MSG(&c, k, "fd is a listen socket; cannot handshake."), "handshake on a listener: MSG");
    k = CALL(&c, MTLS_SEND, A_INT(lfd), A_STR("x"), A_NIL());
    CHECK(IS_MSG(&c, k, "Cannot send on a listen socket."), "send on a listener: MSG");
    k = CALL(&c, MTLS_SEND, A_INT(lfd), A_STR(""), A_NIL());
    CHECK(IS_MSG(&c, k, "Cannot send on a listen socket."), "'' on a listener: MSG too");
    k = CALL(&c, MTLS_RECV, A_INT(lfd), A_NIL());
    CHECK(IS_MSG(&c, k, "Cannot recv on a listen socket; use accept."), "recv on a listener: MSG");

    /* A TCP peer: send('') does no I/O (does not start the handshake). */
    int raw = raw_client(port);
    REQUIRE(RUN(&s, MTLS_ACCEPT, A_INT(lfd), A_INT(sconf), A_INT(5000)) == MTLS_RET_INT, "accept a raw client");
    sfd = (int)s.i;
    CHECK(CALL(&s, MTLS_SEND, A_INT(sfd), A_STR(""), A_NIL()) == MTLS_RET_TRUE, "send(''): true at once");
    fx_pump(&L, 50);
    char b[64];
    CHECK(recv(raw, b, sizeof b, MSG_DONTWAIT) < 0, "and nothing was sent");
    /* Handshake timeout against a silent peer: nil. */
    k = RUN(&s, MTLS_HANDSHAKE, A_INT(sfd), A_INT(100));
    CHECK(k == MTLS_RET_NIL, "handshake timeout: nil");
    /* Busy: a recv waits, then handshake / send / recv from another coroutine. */
    k = CALL(&s, MTLS_RECV, A_INT(sfd), A_NIL());
    CHECK(k == MTLS_RET_SUSPENDED, "recv (driving the handshake) suspends");
    CHECK(IS_MSG(&o, CALL(&o, MTLS_HANDSHAKE, A_INT(sfd), A_NIL()), "Socket busy in another script task."),
          "handshake while busy: MSG");
    CHECK(IS_MSG(&o, CALL(&o, MTLS_SEND, A_INT(sfd), A_STR("x"), A_NIL()), "Socket busy in another script task."),
          "send while busy: MSG");
    CHECK(IS_MSG(&o, CALL(&o, MTLS_SEND, A_INT(sfd), A_STR(""), A_NIL()), "Socket busy in another script task."),
          "send('') while busy: MSG (busy is checked first)");
    CHECK(IS_MSG(&o, CALL(&o, MTLS_RECV, A_INT(sfd), A_NIL()), "Socket busy in another script task."),
          "recv while busy: MSG");
    /* The peer leaves without a word: for recv, the end of the stream. */
    close(raw);
    CHECK(fx_wait(&s, 5000) && s.kind == MTLS_RET_TRUE, "recv: the peer closed during the handshake: true (%d)",
          s.kind);
    CALL(&s, MTLS_CLOSE, A_INT(sfd));
    /* For handshake, a failure. */
    raw = raw_client(port);
    REQUIRE(RUN(&s, MTLS_ACCEPT, A_INT(lfd), A_INT(sconf), A_INT(5000)) == MTLS_RET_INT, "accept a raw client");
    sfd = (int)s.i;
    CHECK(CALL(&s, MTLS_HANDSHAKE, A_INT(sfd), A_NIL()) == MTLS_RET_SUSPENDED, "handshake waits");
    close(raw);
    CHECK(fx_wait(&s, 5000) && IS_FALSE(&s, s.kind), "handshake: the peer closed: false (%d)", s.kind);
    CALL(&s, MTLS_CLOSE, A_INT(sfd));

    /* A TLS pair. */
    REQUIRE(fx_pair(&c, &s, lfd, port, cconf, sconf, &cfd, &sfd) == 0, "a handshaken pair");
    CHECK(CALL(&c, MTLS_HANDSHAKE, A_INT(cfd), A_NIL()) == MTLS_RET_TRUE, "handshake when done: true at once");
    CHECK(CALL(&c, MTLS_SEND, A_INT(cfd), A_STR("one,"), A_NIL()) == MTLS_RET_TRUE, "a small send: true inline");
    CHECK(CALL(&c, MTLS_SEND, A_INT(cfd), A_STR("two,"), A_NIL()) == MTLS_RET_TRUE &&
              CALL(&c, MTLS_SEND, A_INT(cfd), A_STR("three"), A_NIL()) == MTLS_RET_TRUE,
          "two more records");
    fx_pump(&L, 100);
    CHECK(CALL(&s, MTLS_RECV, A_INT(sfd), A_NIL()) == MTLS_RET_STRING && fx_is_str(&s, "one,two,three"),
          "recv: everything pending, as one string, inline");
    k = CALL(&s, MTLS_RECV, A_INT(sfd), A_INT(5000));
    CHECK(k == MTLS_RET_SUSPENDED, "recv with nothing pending suspends");
    CALL(&c, MTLS_SEND, A_INT(cfd), A_STR("later"), A_NIL());
    CHECK(fx_wait(&s, 5000) && fx_is_str(&s, "later"), "and resumes with the data");
    k = RUN(&s, MTLS_RECV, A_INT(sfd), A_INT(50));
    CHECK(k == MTLS_RET_NIL, "recv timeout: nil");
    CALL(&c, MTLS_SEND, A_INT(cfd), A_STR("kept"), A_NIL());
    CHECK(RUN(&s, MTLS_RECV, A_INT(sfd), A_INT(5000)) == MTLS_RET_STRING && fx_is_str(&s, "kept"),
          "the stream is intact after a timeout");
    /* A large send to a peer that does not read: suspends; nil on timeout;
     * the stream stays valid. */
    size_t big = 8u << 20;
    char *p = malloc(big);
    memset(p, 'z', big);
    k = RUN(&c, MTLS_SEND, A_INT(cfd), A_STRN(p, big), A_INT(100));
    CHECK(k == MTLS_RET_NIL, "an 8 MiB send to a peer that does not read times out: nil (%d)", k);
    size_t got = 0;
    long long end = harness_now_ms() + 20000;
    while (got < 64 && harness_now_ms() < end) {
        if (RUN(&s, MTLS_RECV, A_INT(sfd), A_INT(5000)) != MTLS_RET_STRING)
            break;
        got += s.len;
    }
    CHECK(got > 0, "the peer reads what was committed (%zu bytes so far)", got);
    free(p);
    /* close_notify: recv gives true. */
    CALL(&c, MTLS_CLOSE, A_INT(cfd));
    end = harness_now_ms() + 20000;
    do
        k = RUN(&s, MTLS_RECV, A_INT(sfd), A_INT(5000));
    while (k == MTLS_RET_STRING && harness_now_ms() < end);
    CHECK(k == MTLS_RET_TRUE, "recv after the peer's close_notify: true (%d)", k);
    CHECK(IS_FALSE(&s, RUN(&s, MTLS_SEND, A_INT(sfd), A_STR("x"), A_INT(1000))) ||
              s.kind == MTLS_RET_TRUE,
          "send after the peer closed: false or true (the socket may still take it)");
    CALL(&s, MTLS_CLOSE, A_INT(sfd));

    /* EOF without close_notify: recv gives true too. */
    REQUIRE(fx_pair(&c, &s, lfd, port, cconf, sconf, &cfd, &sfd) == 0, "another pair");
    shutdown(cfd, SHUT_RDWR); /* the client's socket ends under TLS */
    k = RUN(&s, MTLS_RECV, A_INT(sfd), A_INT(5000));
    CHECK(k == MTLS_RET_TRUE, "recv at a TCP end without close_notify: true (%d)", k);
    CHECK(IS_FALSE(&s, RUN(&s, MTLS_HANDSHAKE, A_INT(sfd), A_INT(1000))) || s.kind == MTLS_RET_TRUE,
          "handshake after the end: its state (done: true)");
    CALL(&c, MTLS_CLOSE, A_INT(cfd));
    CALL(&s, MTLS_CLOSE, A_INT(sfd));

    /* Garbage instead of a record: recv gives false. */
    REQUIRE(fx_pair(&c, &s, lfd, port, cconf, sconf, &cfd, &sfd) == 0, "a third pair");
    CHECK(write(cfd, "\x17\x03\x03\x00\x05garbage-garbage", 20) == 20, "raw garbage under TLS");
    k = RUN(&s, MTLS_RECV, A_INT(sfd), A_INT(5000));
    CHECK(IS_FALSE(&s, k), "recv of a bad record: false (%d)", k);
    CALL(&c, MTLS_CLOSE, A_INT(cfd));
    CALL(&s, MTLS_CLOSE, A_INT(sfd));
    CALL(&s, MTLS_CLOSE, A_INT(lfd));
    fx_kill(&c);
    fx_kill(&s);
    fx_kill(&o);
    CHECK(L.bad_resumes == 0, "every resume followed the rules");
    fx_lang_destroy(&L);
}

TEST(close_rows)
{
    struct fx_lang L;
    REQUIRE(fx_lang_init(&L) == 0, "lang");
    struct fx_co c, s, o;
    fx_co_init(&c, &L);
    fx_co_init(&s, &L);
    fx_co_init(&o, &L);
    int64_t sconf = fx_conf(&c, "server", cert("leaf.crt"), cert("leaf.key"), NULL, 0);
    int64_t cconf = fx_conf(&c, "client", NULL, NULL, NULL, 0);
    int port, lfd = fx_listen(&s, &port), cfd, sfd, k;

    k = CALL(&c, MTLS_CLOSE, A_NIL());
    CHECK(IS_ERR(&c, k, "Argument 'fd' must be an int."), "close(nil): ERR");
    k = CALL(&c, MTLS_CLOSE, A_STR("3"));
    CHECK(IS_ERR(&c, k, "Argument 'fd' must be an int."), "close('3'): ERR");
    CHECK(CALL(&c, MTLS_CLOSE, A_INT(9999)) == MTLS_RET_NIL, "close of an unknown fd: nil");
    /* An fd of another module (here: a plain socket) is not ours to close. */
    int plain = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(CALL(&c, MTLS_CLOSE, A_INT(plain)) == MTLS_RET_NIL && fcntl_ok(plain), "a foreign fd is left open");
    close(plain);

    REQUIRE(fx_pair(&c, &s, lfd, port, cconf, sconf, &cfd, &sfd) == 0, "a pair");
    /* A coroutine parked on the fd resumes with false when another closes it. */
    CHECK(CALL(&s, MTLS_RECV, A_INT(sfd), A_NIL()) == MTLS_RET_SUSPENDED, "recv waits");
    CHECK(CALL(&o, MTLS_SET_SNI, A_INT(sfd), A_STR("x")) == MTLS_RET_FALSE && o.msg[0] == 0,
          "set_sni ignores busy (false here: a server end)");
    CHECK(CALL(&o, MTLS_CLOSE, A_INT(sfd)) == MTLS_RET_NIL, "another coroutine closes it: nil");
    CHECK(s.parked, "the waiting coroutine is resumed by the loop, not inside close");
    int before = s.resumes;
    int w = fx_wait(&s, 5000);
    CHECK(w && IS_FALSE(&s, s.kind) && s.resumes == before + 1, "it resumes with false, once (%d, %d, %d, pending %zu)",
          w, s.kind, s.resumes - before, corotls_loop_pending(mtls_state_loop(L.st)));
    CHECK(CALL(&o, MTLS_CLOSE, A_INT(sfd)) == MTLS_RET_NIL, "a second close: nil");
    CHECK(IS_FALSE(&o, CALL(&o, MTLS_RECV, A_INT(sfd), A_NIL())), "the closed fd is unknown: false");
    /* The peer sees close_notify. */
    CHECK(RUN(&c, MTLS_RECV, A_INT(cfd), A_INT(5000)) == MTLS_RET_TRUE, "the peer's recv: true");
    CALL(&c, MTLS_CLOSE, A_INT(cfd));
    /* The kernel reuses numbers: a new connection on a number whose old
     * operation was cancelled is not busy. */
    REQUIRE(fx_pair(&c, &s, lfd, port, cconf, sconf, &cfd, &sfd) == 0, "a new pair");
    CHECK(CALL(&s, MTLS_RECV, A_INT(sfd), A_INT(5000)) == MTLS_RET_SUSPENDED, "recv on the new fd %d", sfd);
    CALL(&c, MTLS_SEND, A_INT(cfd), A_STR("fresh"), A_NIL());
    CHECK(fx_wait(&s, 5000) && fx_is_str(&s, "fresh"), "works");
    CALL(&c, MTLS_CLOSE, A_INT(cfd));
    CALL(&s, MTLS_CLOSE, A_INT(sfd));
    CALL(&s, MTLS_CLOSE, A_INT(lfd));
    fx_kill(&c);
    fx_kill(&s);
    fx_kill(&o);
    CHECK(L.bad_resumes == 0, "every resume followed the rules");
    fx_lang_destroy(&L);
}

int main(void)
{
    harness_init();
    return harness_run_all();
}
