/*
 * memory: what a server keeps per connection, measured as the RSS of a
 * server process (forked, so nothing of the client counts), loop server
 * (corotls_loop) against the raw OpenSSL C epoll server (benches/servers.c).
 *
 *   memory [--quick|--smoke] [--certdir DIR] [--tsv FILE]
 *
 * For each server: warm up (10 connections, closed), malloc_trim(0) in the
 * server (SIGUSR1), then the pre-load RSS;
 *   idle      N established TLS connections (handshake and one byte each
 *             way), left idle for 3 s: (RSS - pre-load) / N
 *   closed    all closed, 3 s later: RSS as a percentage of pre-load
 *   half-open N TCP connections that sent the first 100 bytes of a
 *             ClientHello and nothing more: (RSS - RSS before) / N
 * (with --quick: 2 s after the close; none with --smoke.)
 * N = 5,000 (500 quick).  RLIMIT_NOFILE is raised to its hard limit.
 */
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "servers.h"

struct child {
	int pid, port;
};

static struct child spawn(const char *kind)
{
	int p[2];
	struct child c = {0, 0};
	if (pipe(p) != 0)
		exit(1);
	c.pid = fork();
	if (c.pid == 0) {
		close(p[0]);
		server_run_forever(kind, SERVE_ECHO, p[1]);
	}
	close(p[1]);
	if (read(p[0], &c.port, sizeof c.port) != sizeof c.port) {
		fprintf(stderr, "memory: the %s server did not start\n", kind);
		exit(1);
	}
	close(p[0]);
	return c;
}

/* The first 100 bytes of a real ClientHello. */
static int client_hello(unsigned char *out)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *s = SSL_new(ctx);
	BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
	SSL_set_bio(s, r, w);
	SSL_set_tlsext_host_name(s, "localhost");
	SSL_set_connect_state(s);
	SSL_do_handshake(s);
	int n = BIO_read(w, out, 100);
	SSL_free(s);
	SSL_CTX_free(ctx);
	return n;
}

struct result {
	double idle_bytes, halfopen_bytes, after_close_pct;
};

static int settle = 3;     /* seconds the server gets before the idle reading */
static int close_wait = 3; /* ... and after all closed */

static struct result measure(const char *kind, int n)
{
	struct child c = spawn(kind);
	int *fds = malloc(sizeof(int) * (size_t)n);
	void **cs = malloc(sizeof(void *) * (size_t)n);
	unsigned char hello[100];
	char b;
	struct result res;
	for (int i = 0; i < 10; i++) {
		int fd = connect_loopback(c.port);
		void *s = openssl_stack.wrap(fd, 0);
		b = 'w';
		if (do_handshake(&openssl_stack, s, fd) || write_all(&openssl_stack, s, fd, &b, 1) ||
		    read_n(&openssl_stack, s, fd, &b, 1))
			exit(1);
		openssl_stack.unwrap(s);
		close(fd);
	}
	/* Both servers start from a trimmed heap: what the warm-up left free
	 * is not counted as theirs. */
	sleep((unsigned)(settle > 1 ? 1 : settle));
	kill(c.pid, SIGUSR1);
	usleep(300000);
	long pre = rss_kib(c.pid);
	for (int i = 0; i < n; i++) {
		fds[i] = connect_loopback(c.port);
		cs[i] = openssl_stack.wrap(fds[i], 0);
		b = 'i';
		if (fds[i] < 0 || do_handshake(&openssl_stack, cs[i], fds[i]) ||
		    write_all(&openssl_stack, cs[i], fds[i], &b, 1) || read_n(&openssl_stack, cs[i], fds[i], &b, 1) ||
		    b != 'i') {
			fprintf(stderr, "memory: connection %d to the %s server failed\n", i, kind);
			exit(1);
		}
	}
	sleep((unsigned)settle);
	long idle = rss_kib(c.pid);
	for (int i = 0; i < n; i++) {
		openssl_stack.unwrap(cs[i]);
		close(fds[i]);
	}
	sleep((unsigned)close_wait); /* the trim comes with the next sweep */
	long after = rss_kib(c.pid);
	int hl = client_hello(hello);
	for (int i = 0; i < n; i++) {
		fds[i] = connect_loopback(c.port);
		if (fds[i] < 0 || send(fds[i], hello, (size_t)hl, MSG_NOSIGNAL) != hl) {
			fprintf(stderr, "memory: half-open connection %d to the %s server failed\n", i, kind);
			exit(1);
		}
	}
	sleep((unsigned)(settle > 0 ? 1 : 0)); /* nothing to sweep: only the hello to read */
	long half = rss_kib(c.pid);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	kill(c.pid, SIGTERM);
	waitpid(c.pid, NULL, 0);
	free(fds);
	free(cs);
	res.idle_bytes = (double)(idle - pre) * 1024 / n;
	res.after_close_pct = 100.0 * (double)after / (double)pre;
	res.halfopen_bytes = (double)(half - after) * 1024 / n;
	printf("%-10s pre-load %ld KiB, %d idle %ld KiB, closed %ld KiB, %d half-open %ld KiB\n", kind, pre, n, idle,
	       after, n, half);
	return res;
}

int main(int argc, char **argv)
{
	const char *certdir = "target/certs", *tsv_path = NULL;
	int n = 5000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			n = 500, close_wait = 2;
		else if (!strcmp(argv[i], "--smoke"))
			n = 20, settle = close_wait = 0;
		else if (!strcmp(argv[i], "--certdir") && i + 1 < argc)
			certdir = argv[++i];
		else if (!strcmp(argv[i], "--tsv") && i + 1 < argc)
			tsv_path = argv[++i];
		else {
			fprintf(stderr, "usage: memory [--quick|--smoke] [--certdir DIR] [--tsv FILE]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	stacks_init(certdir, 0);
	struct result o = measure("openssl", n), l = measure("loop", n);
	FILE *t = tsv_path ? fopen(tsv_path, "w") : NULL;
	struct {
		const char *metric, *unit;
		double ours, base;
	} rows[] = {
		{"loop_idle_bytes", "bytes/conn", l.idle_bytes, o.idle_bytes},
		{"loop_halfopen_bytes", "bytes/conn", l.halfopen_bytes, o.halfopen_bytes},
		{"rss_after_close_pct", "%pre-load", l.after_close_pct, o.after_close_pct},
	};
	for (int i = 0; i < 3; i++) {
		/* A cost: baseline / corotls (a non-positive growth counts as 1 byte). */
		double ours = rows[i].ours > 1 ? rows[i].ours : 1, base = rows[i].base > 1 ? rows[i].base : 1;
		printf("%-26s %-12s %10.0f %10.0f openssl_c %7.3f\n", rows[i].metric, rows[i].unit, rows[i].ours,
		       rows[i].base, base / ours);
		if (t)
			fprintf(t, "%s\t%s\t%.0f\t%.0f\topenssl_c\t%.3f\n", rows[i].metric, rows[i].unit, rows[i].ours,
				rows[i].base, base / ours);
	}
	if (t)
		fclose(t);
	return 0;
}
