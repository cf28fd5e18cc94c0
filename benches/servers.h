/*
 * benches/servers.h -- what the wall-clock, memory and c10k benchmarks
 * share (benches/servers.c): TLS stacks behind one non-blocking interface
 * (raw OpenSSL with SSL_set_fd, corotls_conn, plain TCP), socket helpers,
 * and two event-driven servers over loopback:
 *
 *   epoll_server  one thread, epoll, any stack: the raw OpenSSL C baseline
 *                 (and corotls_conn, and plain TCP)
 *   loop_server   one thread running a corotls_loop: accept, recv, send
 *                 with callbacks, the path the runtimes' faces use
 *
 * Both serve one of two protocols on every connection: ECHO (every byte
 * back) or SINK (one 'k' back per MiB received; bulk throughput).
 */
#ifndef BENCH_SERVERS_H
#define BENCH_SERVERS_H

#include <stddef.h>
#include <stdint.h>

#include "corotls.h"

enum { WANT_NONE = 0, WANT_R = 1, WANT_W = 2, FAILED = -1 };
enum serve_mode { SERVE_ECHO, SERVE_SINK };
#define SINK_ACK_BYTES (1 << 20)

struct stack {
	const char *name;
	void *(*wrap)(int fd, int server);
	int (*handshake)(void *c);                        /* 0 done, WANT_*, FAILED */
	long (*read)(void *c, void *b, size_t n, int *w); /* >0; 0 and *w; -1 */
	long (*write)(void *c, const void *b, size_t n, int *w);
	void (*unwrap)(void *c);
};

extern const struct stack tcp_stack, openssl_stack, conn_stack;

/* Certificates: CERTDIR/{ec,leaf}.{crt,key} and ca.crt; `rsa` picks leaf
 * (RSA-2048) over ec (ECDSA P-256) for servers made after the call. */
void stacks_init(const char *certdir, int rsa);
corotls_conf *stacks_server_conf(void);

double now(void);
long rss_kib(int pid); /* 0: this process */
void raise_nofile(void);
int listen_loopback(int *port);
int connect_loopback(int port); /* non-blocking, TCP_NODELAY */
void wait_fd(int fd, int want);
int do_handshake(const struct stack *st, void *c, int fd);
int write_all(const struct stack *st, void *c, int fd, const void *b, size_t n);
int read_n(const struct stack *st, void *c, int fd, void *b, size_t n);

/* A server thread; stop it with server_stop (joins). */
struct server;
struct server *epoll_server_start(const struct stack *st, enum serve_mode mode, int *port);
struct server *loop_server_start(enum serve_mode mode, int *port);
void server_stop(struct server *s);
/* The same servers in this thread until SIGTERM (for a forked child);
 * SIGUSR1 makes it malloc_trim(0). */
void server_run_forever(const char *kind, enum serve_mode mode, int port_pipe_fd);

#endif
