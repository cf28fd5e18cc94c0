/*
 * wall: wall-clock rates over loopback, server side measured, A/B pairs.
 *
 *   wall [--quick|--smoke] [--pairs N] [--certdir DIR] [--tsv FILE]
 *
 * The client is the same raw OpenSSL C program for every server (plain TCP
 * for the tcp rows), in this thread; the server runs in another thread:
 *   openssl_c  raw OpenSSL (SSL_set_fd), epoll, one thread
 *   loop       corotls_loop (accept, recv, send with callbacks): the path
 *              the runtimes' faces use
 *   conn       corotls_conn under the same epoll server as openssl_c
 *   tcp        plain TCP under the same epoll server
 * Work: 64-byte echo round trips on one connection; bulk, 16 KiB writes
 * (the server acks each MiB); full handshakes (TLS 1.3, no resumption;
 * connect, handshake, one byte each way, close), ECDSA P-256 and RSA-2048.
 * Each measurement runs its variants in turn (A, B, C, A, B, C...) for N
 * pairs; the rows report the medians.  Rows (benches/run.sh's TSV):
 *   metric unit corotls baseline baseline_name ratio
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "servers.h"

enum kind { K_OPENSSL, K_LOOP, K_CONN, K_TCP, NKINDS };
static const char *kind_name[NKINDS] = {"openssl_c", "loop", "conn", "tcp"};

static struct server *start(enum kind k, enum serve_mode m, int *port)
{
	switch (k) {
	case K_LOOP: return loop_server_start(m, port);
	case K_CONN: return epoll_server_start(&conn_stack, m, port);
	case K_TCP: return epoll_server_start(&tcp_stack, m, port);
	default: return epoll_server_start(&openssl_stack, m, port);
	}
}

static const struct stack *client_of(enum kind k)
{
	return k == K_TCP ? &tcp_stack : &openssl_stack;
}

static double fail(const char *what, enum kind k)
{
	fprintf(stderr, "wall: %s against the %s server failed\n", what, kind_name[k]);
	exit(1);
}

static double echo(enum kind k, int rounds)
{
	int port;
	struct server *s = start(k, SERVE_ECHO, &port);
	const struct stack *st = client_of(k);
	int fd = connect_loopback(port);
	void *c = st->wrap(fd, 0);
	char msg[64], back[64];
	if (do_handshake(st, c, fd) != 0)
		fail("echo handshake", k);
	double t0 = now();
	for (int r = 0; r < rounds; r++) {
		memset(msg, 'a' + r % 26, sizeof msg);
		if (write_all(st, c, fd, msg, sizeof msg) || read_n(st, c, fd, back, sizeof back) ||
		    memcmp(msg, back, sizeof msg))
			fail("echo", k);
	}
	double dt = now() - t0;
	st->unwrap(c);
	close(fd);
	server_stop(s);
	return rounds / dt;
}

static double bulk(enum kind k, int mib)
{
	int port;
	struct server *s = start(k, SERVE_SINK, &port);
	const struct stack *st = client_of(k);
	int fd = connect_loopback(port);
	void *c = st->wrap(fd, 0);
	static char buf[16384], acks[4096];
	if (do_handshake(st, c, fd) != 0)
		fail("bulk handshake", k);
	double t0 = now();
	for (long sent = 0; sent < (long)mib << 20; sent += sizeof buf)
		if (write_all(st, c, fd, buf, sizeof buf))
			fail("bulk write", k);
	if (read_n(st, c, fd, acks, (size_t)mib)) /* one 'k' per MiB: the server has it all */
		fail("bulk ack", k);
	double dt = now() - t0;
	st->unwrap(c);
	close(fd);
	server_stop(s);
	return mib / dt;
}

static double handshakes(enum kind k, int n)
{
	int port;
	struct server *s = start(k, SERVE_ECHO, &port);
	const struct stack *st = client_of(k);
	double t0 = now();
	for (int i = 0; i < n; i++) {
		char b = 'h';
		int fd = connect_loopback(port);
		void *c = st->wrap(fd, 0);
		if (fd < 0 || do_handshake(st, c, fd) != 0 || write_all(st, c, fd, &b, 1) || read_n(st, c, fd, &b, 1) ||
		    b != 'h')
			fail("handshake", k);
		st->unwrap(c);
		close(fd);
	}
	double dt = now() - t0;
	server_stop(s);
	return n / dt;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static FILE *tsv;

static void row(const char *metric, const char *unit, double ours, double base, const char *base_name)
{
	printf("%-26s %-14s %12.1f %12.1f %-10s %7.3f\n", metric, unit, ours, base, base_name, ours / base);
	if (tsv)
		fprintf(tsv, "%s\t%s\t%.1f\t%.1f\t%s\t%.3f\n", metric, unit, ours, base, base_name, ours / base);
	fflush(stdout);
}

/* Run `f(kind, size)` for each kind in `kinds`, in turn, `pairs` times;
 * medians into med[kind]. */
static void measure(double (*f)(enum kind, int), int size, const enum kind *kinds, int nk, int pairs,
		    double med[NKINDS])
{
	double v[NKINDS][64];
	for (int p = 0; p < pairs; p++)
		for (int i = 0; i < nk; i++)
			v[kinds[i]][p] = f(kinds[i], size);
	for (int i = 0; i < nk; i++)
		med[kinds[i]] = median(v[kinds[i]], pairs);
}

int main(int argc, char **argv)
{
	const char *certdir = "target/certs", *tsv_path = NULL;
	int quick = 0, smoke = 0, pairs = 5;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--smoke"))
			smoke = quick = 1;
		else if (!strcmp(argv[i], "--pairs") && i + 1 < argc)
			pairs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--certdir") && i + 1 < argc)
			certdir = argv[++i];
		else if (!strcmp(argv[i], "--tsv") && i + 1 < argc)
			tsv_path = argv[++i];
		else {
			fprintf(stderr, "usage: wall [--quick|--smoke] [--pairs N] [--certdir DIR] [--tsv FILE]\n");
			return 2;
		}
	}
	if (quick && pairs > 3)
		pairs = 3;
	if (smoke)
		pairs = 1;
	if (pairs < 1 || pairs > 64)
		pairs = 3;
	signal(SIGPIPE, SIG_IGN);
	if (tsv_path && (tsv = fopen(tsv_path, "w")) == NULL) {
		perror(tsv_path);
		return 1;
	}
	int echo_n = smoke ? 200 : quick ? 3000 : 30000, bulk_mib = smoke ? 4 : quick ? 64 : 512;
	int hs_ec = smoke ? 10 : quick ? 100 : 1000, hs_rsa = smoke ? 5 : quick ? 40 : 400;
	double m[NKINDS];
	const enum kind all[] = {K_OPENSSL, K_LOOP, K_CONN, K_TCP}, tls[] = {K_OPENSSL, K_LOOP, K_CONN},
			two[] = {K_OPENSSL, K_LOOP};
	printf("wall-clock, loopback, server measured (client: raw OpenSSL C), medians of %d pairs%s\n", pairs,
	       quick ? " (quick)" : "");
	printf("%-26s %-14s %12s %12s %-10s %7s\n", "metric", "unit", "corotls", "baseline", "name", "ratio");
	stacks_init(certdir, 0);
	measure(echo, echo_n, all, 4, pairs, m);
	row("echo64_rps", "round-trips/s", m[K_LOOP], m[K_OPENSSL], "openssl_c");
	row("echo64_rps", "round-trips/s", m[K_LOOP], m[K_TCP], "tcp");
	row("echo64_rps_conn", "round-trips/s", m[K_CONN], m[K_OPENSSL], "openssl_c");
	measure(bulk, bulk_mib, all, 4, pairs, m);
	row("bulk_mibps", "MiB/s", m[K_LOOP], m[K_OPENSSL], "openssl_c");
	row("bulk_mibps", "MiB/s", m[K_LOOP], m[K_TCP], "tcp");
	row("bulk_mibps_conn", "MiB/s", m[K_CONN], m[K_OPENSSL], "openssl_c");
	measure(handshakes, hs_ec, tls, 3, pairs, m);
	row("handshake_rps", "handshakes/s", m[K_LOOP], m[K_OPENSSL], "openssl_c");
	row("handshake_rps_conn", "handshakes/s", m[K_CONN], m[K_OPENSSL], "openssl_c");
	stacks_init(certdir, 1);
	measure(handshakes, hs_rsa, two, 2, pairs, m);
	row("handshake_rps_rsa2048", "handshakes/s", m[K_LOOP], m[K_OPENSSL], "openssl_c");
	if (tsv)
		fclose(tsv);
	return 0;
}
