/*
 * benches/servers.c -- stacks, socket helpers and the two servers the
 * wall-clock, memory and c10k benchmarks share (see servers.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "servers.h"

static char cert_path[512], key_path[512], ca_path[512];

static void die(const char *what)
{
	fprintf(stderr, "bench: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

/* ------------------------------------------------------------ plain TCP */

static void *tcp_wrap(int fd, int server)
{
	(void)server;
	return (void *)(intptr_t)(fd + 1);
}
static int tcp_handshake(void *c)
{
	(void)c;
	return 0;
}
static long tcp_io(long n, int *w, int want)
{
	if (n > 0)
		return n;
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		*w = want;
		return 0;
	}
	return -1;
}
static long tcp_read(void *c, void *b, size_t n, int *w)
{
	return tcp_io(recv((int)(intptr_t)c - 1, b, n, 0), w, WANT_R);
}
static long tcp_write(void *c, const void *b, size_t n, int *w)
{
	return tcp_io(send((int)(intptr_t)c - 1, b, n, MSG_NOSIGNAL), w, WANT_W);
}
static void tcp_unwrap(void *c)
{
	(void)c;
}
const struct stack tcp_stack = {"tcp", tcp_wrap, tcp_handshake, tcp_read, tcp_write, tcp_unwrap};

/* ---------------------------------------------------------- raw OpenSSL */

static SSL_CTX *ossl_srv, *ossl_cli;
static corotls_conf *coro_srv, *coro_cli;

void stacks_init(const char *certdir, int rsa)
{
	snprintf(cert_path, sizeof cert_path, "%s/%s.crt", certdir, rsa ? "leaf" : "ec");
	snprintf(key_path, sizeof key_path, "%s/%s.key", certdir, rsa ? "leaf" : "ec");
	snprintf(ca_path, sizeof ca_path, "%s/ca.crt", certdir);
	if (ossl_srv)
		SSL_CTX_free(ossl_srv);
	ossl_srv = SSL_CTX_new(TLS_server_method());
	if (SSL_CTX_use_certificate_chain_file(ossl_srv, cert_path) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ossl_srv, key_path, SSL_FILETYPE_PEM) != 1)
		die("server certificate");
	SSL_CTX_set_min_proto_version(ossl_srv, TLS1_2_VERSION);
	SSL_CTX_set_mode(ossl_srv, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (ossl_cli == NULL) {
		ossl_cli = SSL_CTX_new(TLS_client_method());
		if (SSL_CTX_load_verify_locations(ossl_cli, ca_path, NULL) != 1)
			die("CA");
		SSL_CTX_set_verify(ossl_cli, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_min_proto_version(ossl_cli, TLS1_2_VERSION);
		SSL_CTX_set_mode(ossl_cli, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		/* Full handshakes every time: the resumed rate is another row. */
		SSL_CTX_set_session_cache_mode(ossl_cli, SSL_SESS_CACHE_OFF);
	}
	if (coro_srv)
		corotls_conf_free(coro_srv);
	if (corotls_conf_new(COROTLS_SERVER, cert_path, key_path, NULL, NULL, false, &coro_srv) != COROTLS_OK)
		die(corotls_last_error());
	if (coro_cli == NULL &&
	    corotls_conf_new(COROTLS_CLIENT, NULL, NULL, ca_path, NULL, true, &coro_cli) != COROTLS_OK)
		die(corotls_last_error());
}

corotls_conf *stacks_server_conf(void)
{
	return coro_srv;
}

static void *ossl_wrap(int fd, int server)
{
	SSL *s = SSL_new(server ? ossl_srv : ossl_cli);
	SSL_set_fd(s, fd);
	if (server)
		SSL_set_accept_state(s);
	else {
		SSL_set_connect_state(s);
		SSL_set_tlsext_host_name(s, "localhost");
		SSL_set1_host(s, "localhost");
	}
	return s;
}
static int ossl_want(SSL *s, int r)
{
	int e = SSL_get_error(s, r);
	if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
		ERR_clear_error();
	return e == SSL_ERROR_WANT_READ ? WANT_R : e == SSL_ERROR_WANT_WRITE ? WANT_W : FAILED;
}
static int ossl_handshake(void *c)
{
	int r = SSL_do_handshake(c);
	return r == 1 ? 0 : ossl_want(c, r);
}
static long ossl_read(void *c, void *b, size_t n, int *w)
{
	int r = SSL_read(c, b, (int)n);
	if (r > 0)
		return r;
	return (*w = ossl_want(c, r)) == FAILED ? -1 : 0;
}
static long ossl_write(void *c, const void *b, size_t n, int *w)
{
	int r = SSL_write(c, b, (int)n);
	if (r > 0)
		return r;
	return (*w = ossl_want(c, r)) == FAILED ? -1 : 0;
}
static void ossl_unwrap(void *c)
{
	SSL_free(c);
}
const struct stack openssl_stack = {"openssl_c", ossl_wrap, ossl_handshake, ossl_read, ossl_write, ossl_unwrap};

/* -------------------------------------------------------- corotls_conn */

static void *coro_wrap(int fd, int server)
{
	corotls_conn *c = NULL;
	if (corotls_conn_new(server ? coro_srv : coro_cli, fd, &c) != COROTLS_OK)
		return NULL;
	if (!server) {
		corotls_conn_set_sni(c, "localhost");
		corotls_conn_set_verify_host(c, "localhost");
	}
	return c;
}
static int coro_want(corotls_result r)
{
	return r == COROTLS_WANT_READ ? WANT_R : r == COROTLS_WANT_WRITE ? WANT_W : FAILED;
}
static int coro_handshake(void *c)
{
	corotls_result r = corotls_conn_handshake(c);
	return r == COROTLS_OK ? 0 : coro_want(r);
}
static long coro_read(void *c, void *b, size_t n, int *w)
{
	size_t got = 0;
	corotls_result r = corotls_conn_read(c, b, n, &got);
	if (r == COROTLS_OK)
		return (long)got;
	return (*w = coro_want(r)) == FAILED ? -1 : 0;
}
static long coro_write(void *c, const void *b, size_t n, int *w)
{
	size_t put = 0;
	corotls_result r = corotls_conn_write(c, b, n, &put);
	if (put > 0)
		return (long)put;
	if (r == COROTLS_OK)
		return 0;
	return (*w = coro_want(r)) == FAILED ? -1 : 0;
}
static void coro_unwrap(void *c)
{
	corotls_conn_free(c);
}
const struct stack conn_stack = {"corotls_conn", coro_wrap, coro_handshake, coro_read, coro_write, coro_unwrap};

/* ------------------------------------------------------------- helpers */

double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

long rss_kib(int pid)
{
	char path[64];
	long pages = 0, rss = 0;
	snprintf(path, sizeof path, pid ? "/proc/%d/statm" : "/proc/self/statm", pid);
	FILE *f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

void raise_nofile(void)
{
	struct rlimit r;
	if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_NOFILE, &r);
	}
}

int listen_loopback(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4096) != 0)
		die("listen");
	getsockname(fd, (struct sockaddr *)&a, &l);
	*port = ntohs(a.sin_port);
	return fd;
}

int connect_loopback(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

void wait_fd(int fd, int want)
{
	struct pollfd p = {.fd = fd, .events = want == WANT_W ? POLLOUT : POLLIN};
	while (poll(&p, 1, 10000) < 0 && errno == EINTR)
		;
}

int do_handshake(const struct stack *st, void *c, int fd)
{
	int r;
	while ((r = st->handshake(c)) > 0)
		wait_fd(fd, r);
	return r;
}

int write_all(const struct stack *st, void *c, int fd, const void *b, size_t n)
{
	const char *p = b;
	while (n > 0) {
		int w = WANT_NONE;
		long k = st->write(c, p, n, &w);
		if (k < 0)
			return -1;
		if (k == 0) {
			wait_fd(fd, w);
			continue;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int read_n(const struct stack *st, void *c, int fd, void *b, size_t n)
{
	char *p = b;
	while (n > 0) {
		int w = WANT_NONE;
		long k = st->read(c, p, n, &w);
		if (k < 0)
			return -1;
		if (k == 0) {
			wait_fd(fd, w);
			continue;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* ------------------------------------------------------- the servers */

struct server {
	pthread_t thread;
	volatile int stop;
	enum serve_mode mode;
	int lfd;
	const struct stack *st; /* NULL: the loop server */
	corotls_loop *loop;
};

/* Bytes to send back for `n` received. */
static size_t acks(enum serve_mode mode, size_t *sunk, size_t n)
{
	if (mode == SERVE_ECHO)
		return n;
	size_t k = (*sunk + n) / SINK_ACK_BYTES;
	*sunk = (*sunk + n) % SINK_ACK_BYTES;
	return k;
}

struct econn {
	void *c;
	int fd, done;
	size_t sunk;
};

static void econn_close(struct server *s, int ep, struct econn *e)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, e->fd, NULL);
	if (e->c)
		s->st->unwrap(e->c);
	close(e->fd);
	free(e);
}

static void *epoll_main(void *arg)
{
	struct server *s = arg;
	static __thread char buf[1 << 16], kbuf[64];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[256];
	epoll_ctl(ep, EPOLL_CTL_ADD, s->lfd, &ev);
	memset(kbuf, 'k', sizeof kbuf);
	while (!s->stop) {
		int n = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			struct econn *e = evs[i].data.ptr;
			if (e == NULL) {
				int one = 1, fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (fd < 0)
					continue;
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
				e = calloc(1, sizeof *e);
				e->fd = fd;
				e->c = s->st->wrap(fd, 1);
				struct epoll_event ce = {.events = EPOLLIN, .data.ptr = e};
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
				continue;
			}
			if (!e->done) {
				int r = s->st->handshake(e->c);
				if (r == FAILED) {
					econn_close(s, ep, e);
					continue;
				}
				if (r != 0)
					continue;
				e->done = 1;
			}
			for (;;) {
				int w = WANT_NONE;
				long k = s->st->read(e->c, buf, sizeof buf, &w);
				if (k == 0)
					break;
				size_t back = k < 0 ? 0 : acks(s->mode, &e->sunk, (size_t)k);
				if (k < 0 || (back > 0 && write_all(s->st, e->c, e->fd, s->mode == SERVE_ECHO ? buf : kbuf,
								    back) != 0)) {
					econn_close(s, ep, e);
					break;
				}
			}
		}
	}
	close(ep);
	return NULL;
}

struct server *epoll_server_start(const struct stack *st, enum serve_mode mode, int *port)
{
	struct server *s = calloc(1, sizeof *s);
	s->st = st;
	s->mode = mode;
	s->lfd = listen_loopback(port);
	fcntl(s->lfd, F_SETFL, O_NONBLOCK);
	pthread_create(&s->thread, NULL, epoll_main, s);
	return s;
}

/* The loop server: callbacks chain accept -> recv -> send -> recv. */
struct lconn {
	struct server *s;
	int fd;
	size_t sunk;
};

static void start_recv(struct lconn *c);
static void start_accept(struct server *s);

static void lconn_close(struct lconn *c)
{
	corotls_loop_close(c->s->loop, c->fd);
	free(c);
}

static void on_sent(void *ud, int32_t fd, corotls_result r, const uint8_t *d, size_t n)
{
	(void)fd, (void)d, (void)n;
	if (r == COROTLS_OK)
		start_recv(ud);
	else if (r != COROTLS_ERR_CANCELLED)
		lconn_close(ud);
}

/* 1: go on reading now; 0: a callback takes over (or the conn is gone). */
static int got_data(struct lconn *c, corotls_result r, const uint8_t *d, size_t n)
{
	static const uint8_t ks[64] = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
	if (r != COROTLS_OK) {
		if (r != COROTLS_ERR_CANCELLED)
			lconn_close(c);
		return 0;
	}
	size_t back = acks(c->s->mode, &c->sunk, n);
	if (back == 0)
		return 1;
	corotls_result s = corotls_loop_send(c->s->loop, c->fd, c->s->mode == SERVE_ECHO ? d : ks,
					     c->s->mode == SERVE_ECHO ? back : back > sizeof ks ? sizeof ks : back, -1, on_sent, c);
	if (s == COROTLS_OK)
		return 1;
	if (s != COROTLS_PENDING)
		lconn_close(c);
	return 0;
}

static void on_recv(void *ud, int32_t fd, corotls_result r, const uint8_t *d, size_t n)
{
	(void)fd;
	if (got_data(ud, r, d, n))
		start_recv(ud);
}

static void start_recv(struct lconn *c)
{
	for (;;) {
		const uint8_t *d = NULL;
		size_t n = 0;
		corotls_result r = corotls_loop_recv(c->s->loop, c->fd, -1, on_recv, c, &d, &n);
		if (r == COROTLS_PENDING || !got_data(c, r, d, n))
			return;
	}
}

static void new_lconn(struct server *s, int fd)
{
	struct lconn *c = calloc(1, sizeof *c);
	c->s = s;
	c->fd = fd;
	start_recv(c);
}

static void on_accept(void *ud, int32_t fd, corotls_result r, const uint8_t *d, size_t n)
{
	(void)d, (void)n;
	if (r == COROTLS_ERR_CANCELLED)
		return;
	if (r == COROTLS_OK)
		new_lconn(ud, fd);
	start_accept(ud);
}

static void start_accept(struct server *s)
{
	int32_t fd = -1;
	corotls_result r;
	while ((r = corotls_loop_accept(s->loop, s->lfd, NULL, -1, on_accept, s, &fd)) == COROTLS_OK)
		new_lconn(s, fd);
}

static void *loop_main(void *arg)
{
	struct server *s = arg;
	start_accept(s);
	while (!s->stop)
		corotls_loop_dispatch(s->loop, 100, NULL);
	corotls_loop_free(s->loop);
	return NULL;
}

struct server *loop_server_start(enum serve_mode mode, int *port)
{
	struct server *s = calloc(1, sizeof *s);
	char addr[128];
	s->mode = mode;
	if (corotls_loop_new(&s->loop) != COROTLS_OK ||
	    corotls_loop_listen(s->loop, "127.0.0.1", "0", stacks_server_conf(), &s->lfd) != COROTLS_OK ||
	    corotls_loop_info(s->loop, s->lfd, COROTLS_INFO_LOCAL_ADDR, addr, sizeof addr, NULL) != COROTLS_OK)
		die(corotls_last_error());
	*port = atoi(strrchr(addr, ':') + 1);
	pthread_create(&s->thread, NULL, loop_main, s);
	return s;
}

void server_stop(struct server *s)
{
	s->stop = 1;
	pthread_join(s->thread, NULL);
	if (s->st)
		close(s->lfd);
	free(s);
}

static volatile sig_atomic_t trim_asked;

static void on_usr1(int sig)
{
	(void)sig;
	trim_asked = 1;
}

/* SIGUSR1: malloc_trim(0) (the memory benchmark's common starting point). */
void server_run_forever(const char *kind, enum serve_mode mode, int port_pipe_fd)
{
	int port;
	raise_nofile();
	if (!strcmp(kind, "loop"))
		loop_server_start(mode, &port);
	else
		epoll_server_start(!strcmp(kind, "tcp") ? &tcp_stack : !strcmp(kind, "conn") ? &conn_stack : &openssl_stack,
				   mode, &port);
	if (write(port_pipe_fd, &port, sizeof port) != sizeof port)
		exit(1);
	close(port_pipe_fd);
	signal(SIGUSR1, on_usr1);
	for (;;) {
		pause();
		if (trim_asked) {
			trim_asked = 0;
			malloc_trim(0);
		}
	}
}
