/*
 * two_coroutines: the flow of the Melang `tls` module's documented example,
 * in C over the corotls loop -- a server and a client as two coroutines on
 * one loop, in one thread.
 *
 *   two_coroutines --cert FILE --key FILE [--ca FILE] [--host NAME]
 *
 * The server listens on NAME (default localhost) at a free port, accepts,
 * handshakes and echoes until the peer closes.  The client connects to
 * NAME (resolved off the loop), sets SNI, handshakes (verifying the server
 * against --ca when given), sends "hello-from-corotls", prints the reply
 * and closes.  Exit status 0 when the reply equals what was sent.
 *
 * Each coroutine is a function that resumes where it left off (a
 * switch-based "protothread"): AWAIT(call) starts an operation; if it
 * completes inline the coroutine simply goes on, if it is PENDING the
 * coroutine returns (yields) and the loop's callback resumes it with the
 * result.  That is exactly what a script runtime's binding does with its
 * own coroutines (Melang, silly, Lua, Python...).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corotls.h"

struct co {
    int pc;                /* where to resume */
    corotls_result r;      /* result of the last AWAIT */
    int fd;                /* fd the last callback named */
    const uint8_t *data;   /* its data: valid until the coroutine yields */
    size_t len;
    void (*body)(struct co *);
};

/* Every callback resumes the coroutine that started the operation. */
static void resume(void *user_data, int32_t fd, corotls_result r, const uint8_t *data, size_t len)
{
    struct co *co = user_data;
    co->r = r;
    co->fd = fd;
    co->data = data;
    co->len = len;
    co->body(co);
}

#define CO_BEGIN(co) switch ((co)->pc) { case 0:
#define CO_END(co) } (co)->pc = -1
/* `call` is one corotls_loop_* operation taking (..., resume, co, ...). */
#define AWAIT(co, call)                         \
    do {                                        \
        (co)->fd = -1;                          \
        (co)->r = (call);                       \
        if ((co)->r == COROTLS_PENDING) {       \
            (co)->pc = __LINE__;                \
            return;                             \
        case __LINE__:;                         \
        }                                       \
    } while (0)

static corotls_loop *loop;
static const char *cert, *key, *ca, *host = "localhost";
static char port[16];
static int failed;

static void say(const char *who, const char *what, corotls_result r)
{
    if (r == COROTLS_OK)
        printf("%s: %s\n", who, what);
    else
        printf("%s: %s: %s (%s)\n", who, what, corotls_result_name(r), corotls_last_error());
    fflush(stdout);
}

/* ------------------------------------------------------------- server
 *
 *   conf = tls.conf_new('server', cert, key, nil, nil, false);
 *   lfd  = tls.listen('localhost', port);
 *   cfd  = tls.accept(lfd, conf, 10000);
 *   tls.handshake(cfd, 10000);
 *   while (1) { msg = tls.recv(cfd, 10000); if (not a string) break; tls.send(cfd, msg, 10000); }
 *   tls.close(cfd); tls.close(lfd); tls.conf_free(conf);
 */
static struct {
    struct co co;
    corotls_conf *conf;
    int lfd, cfd;
} srv;

static void server(struct co *co)
{
    CO_BEGIN(co);
    if (corotls_conf_new(COROTLS_SERVER, cert, key, NULL, NULL, false, &srv.conf) != COROTLS_OK) {
        say("server", "conf_new", COROTLS_ERR_ARG);
        failed = 1;
        return;
    }
    if (corotls_loop_listen(loop, host, "0", NULL, &srv.lfd) != COROTLS_OK) {
        say("server", "listen", COROTLS_ERR_IO);
        failed = 1;
        corotls_conf_free(srv.conf);
        return;
    }
    {
        char addr[80];
        corotls_loop_info(loop, srv.lfd, COROTLS_INFO_LOCAL_ADDR, addr, sizeof addr, NULL);
        snprintf(port, sizeof port, "%s", strrchr(addr, ':') + 1);
        printf("server: listening on %s\n", addr);
    }
    AWAIT(co, corotls_loop_accept(loop, srv.lfd, srv.conf, 10000, resume, co, &srv.cfd));
    if (co->r != COROTLS_OK) {
        say("server", "accept", co->r);
        failed = 1;
        goto out;
    }
    if (co->fd >= 0)
        srv.cfd = co->fd; /* accepted through the callback */
    say("server", "accepted a connection", COROTLS_OK);
    AWAIT(co, corotls_loop_handshake(loop, srv.cfd, 10000, resume, co));
    say("server", "handshake done", co->r);
    if (co->r != COROTLS_OK) {
        failed = 1;
        goto out_conn;
    }
    for (;;) {
        AWAIT(co, corotls_loop_recv(loop, srv.cfd, 10000, resume, co, &co->data, &co->len));
        if (co->r != COROTLS_OK)
            break; /* true (CLOSED), false (EOF, error) or nil (TIMEOUT): the loop ends */
        printf("server: echoing %zu bytes\n", co->len);
        AWAIT(co, corotls_loop_send(loop, srv.cfd, co->data, co->len, 10000, resume, co));
        if (co->r != COROTLS_OK)
            break;
    }
    if (co->r == COROTLS_CLOSED)
        say("server", "the client closed (close_notify)", COROTLS_OK);
    else
        say("server", "the connection ended", co->r);
out_conn:
    corotls_loop_close(loop, srv.cfd);
out:
    corotls_loop_close(loop, srv.lfd);
    corotls_conf_free(srv.conf);
    CO_END(co);
}

/* ------------------------------------------------------------- client
 *
 *   conf = tls.conf_new('client', nil, nil, ca, nil, ca != nil);
 *   fd   = tls.connect('localhost', port, conf, 10000);
 *   tls.set_sni(fd, 'localhost');
 *   tls.handshake(fd, 10000);
 *   tls.send(fd, 'hello-from-corotls', 10000);
 *   sys.print(tls.recv(fd, 10000));
 *   tls.close(fd); tls.conf_free(conf);
 */
static const char hello[] = "hello-from-corotls";

static struct {
    struct co co;
    corotls_conf *conf;
    int fd;
    char reply[64];
    size_t got;
} cli;

static void client(struct co *co)
{
    CO_BEGIN(co);
    if (corotls_conf_new(COROTLS_CLIENT, NULL, NULL, ca, NULL, ca != NULL, &cli.conf) != COROTLS_OK) {
        say("client", "conf_new", COROTLS_ERR_ARG);
        failed = 1;
        return;
    }
    printf("client: connecting to %s:%s\n", host, port);
    AWAIT(co, corotls_loop_connect(loop, host, port, cli.conf, 10000, resume, co, &cli.fd));
    if (co->r != COROTLS_OK) {
        say("client", "connect", co->r);
        failed = 1;
        goto out;
    }
    if (co->fd >= 0)
        cli.fd = co->fd; /* connected through the callback */
    corotls_loop_set_sni(loop, cli.fd, host);
    if (ca)
        corotls_loop_set_verify_host(loop, cli.fd, host);
    AWAIT(co, corotls_loop_handshake(loop, cli.fd, 10000, resume, co));
    {
        char v[64] = "", c[64] = "";
        corotls_loop_info(loop, cli.fd, COROTLS_INFO_VERSION, v, sizeof v, NULL);
        corotls_loop_info(loop, cli.fd, COROTLS_INFO_CIPHER, c, sizeof c, NULL);
        if (co->r == COROTLS_OK)
            printf("client: handshake done (%s, %s%s)\n", v, c, ca ? ", server verified" : "");
        else
            say("client", "handshake", co->r);
    }
    if (co->r != COROTLS_OK) {
        failed = 1;
        goto out_conn;
    }
    AWAIT(co, corotls_loop_send(loop, cli.fd, (const uint8_t *)hello, strlen(hello), 10000, resume, co));
    if (co->r != COROTLS_OK) {
        say("client", "send", co->r);
        failed = 1;
        goto out_conn;
    }
    /* A reply may come in several pieces: collect until it is complete. */
    while (cli.got < strlen(hello)) {
        AWAIT(co, corotls_loop_recv(loop, cli.fd, 10000, resume, co, &co->data, &co->len));
        if (co->r != COROTLS_OK || cli.got + co->len >= sizeof cli.reply) {
            say("client", "recv", co->r);
            failed = 1;
            goto out_conn;
        }
        memcpy(cli.reply + cli.got, co->data, co->len);
        cli.got += co->len;
    }
    printf("%s\n", cli.reply);
    if (strcmp(cli.reply, hello) != 0)
        failed = 1;
out_conn:
    corotls_loop_close(loop, cli.fd);
    printf("client: closed\n");
out:
    corotls_conf_free(cli.conf);
    CO_END(co);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--cert"))
            cert = argv[i + 1];
        else if (!strcmp(argv[i], "--key"))
            key = argv[i + 1];
        else if (!strcmp(argv[i], "--ca"))
            ca = argv[i + 1];
        else if (!strcmp(argv[i], "--host"))
            host = argv[i + 1];
        else
            cert = NULL;
    }
    if (!cert || !key || argc % 2 == 0) {
        fprintf(stderr, "usage: two_coroutines --cert FILE --key FILE [--ca FILE] [--host NAME]\n");
        return 2;
    }
    if (corotls_loop_new(&loop) != COROTLS_OK) {
        fprintf(stderr, "two_coroutines: %s\n", corotls_last_error());
        return 1;
    }
    srv.co.body = server;
    srv.cfd = -1;
    cli.co.body = client;
    cli.fd = -1;
    /* Both run until their first yield; then the loop drives them. */
    server(&srv.co);
    if (!failed)
        client(&cli.co);
    corotls_result r = corotls_loop_run(loop);
    if (r != COROTLS_OK)
        fprintf(stderr, "two_coroutines: run: %s\n", corotls_last_error());
    corotls_loop_free(loop);
    return failed || r != COROTLS_OK || srv.co.pc != -1 || cli.co.pc != -1;
}
