/*
 * c10k: 10,000 concurrent connections to one server thread, 10 echo rounds
 * of 64 bytes each, every byte checked.  The server is a forked process:
 * the corotls loop server, the raw OpenSSL C epoll server or plain TCP
 * (benches/servers.c); the client is one epoll thread here (raw OpenSSL,
 * or plain TCP against the TCP server).
 *
 *   c10k [--quick|--smoke] [--certdir DIR] [--tsv FILE]
 *
 * Phase 1 opens all N connections (at most 256 handshakes in flight) and
 * keeps them open; phase 2 runs the rounds on all of them at once (each
 * connection's next round starts when its echo is back and checked).
 * Reported: the seconds of both phases, and the 99th percentile of the
 * round trips of phase 2.  N = 10,000 (1,000 quick).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "servers.h"

#define ROUNDS 10
#define MSG 64

enum { C_HANDSHAKE, C_READY, C_READ, C_DONE };

struct cconn {
	int fd, state, round, got;
	void *c;
	double t0;
	unsigned char buf[MSG];
};

static const struct stack *st;
static int ep;

static void die(const char *what, int i)
{
	fprintf(stderr, "c10k: %s (connection %d)\n", what, i);
	exit(1);
}

static void interest(struct cconn *c, int want)
{
	struct epoll_event ev = {.events = want == WANT_W ? EPOLLOUT : EPOLLIN, .data.ptr = c};
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void pattern(struct cconn *c, int id, unsigned char *out)
{
	for (int i = 0; i < MSG; i++)
		out[i] = (unsigned char)(id * 31 + c->round * 7 + i);
}

static void send_round(struct cconn *c, int id)
{
	unsigned char msg[MSG];
	pattern(c, id, msg);
	c->got = 0;
	c->t0 = now();
	if (write_all(st, c->c, c->fd, msg, MSG) != 0)
		die("write", id);
	c->state = C_READ;
	interest(c, WANT_R);
}

/* Progress on one connection; returns 1 when it changed phase. */
static int step(struct cconn *c, int id, double *lat, int *nlat)
{
	if (c->state == C_HANDSHAKE) {
		int r = st->handshake(c->c);
		if (r == FAILED)
			die("handshake", id);
		if (r > 0) {
			interest(c, r);
			return 0;
		}
		c->state = C_READY;
		return 1;
	}
	if (c->state != C_READ)
		return 0;
	for (;;) {
		int w = WANT_NONE;
		long k = st->read(c->c, c->buf + c->got, (size_t)(MSG - c->got), &w);
		if (k < 0)
			die("read", id);
		if (k == 0)
			return 0;
		c->got += (int)k;
		if (c->got < MSG)
			continue;
		unsigned char want[MSG];
		pattern(c, id, want);
		if (memcmp(want, c->buf, MSG))
			die("echo: bytes differ", id);
		lat[(*nlat)++] = now() - c->t0;
		if (++c->round == ROUNDS) {
			c->state = C_DONE;
			return 1;
		}
		send_round(c, id);
	}
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct result {
	double seconds, p99_ms;
};

static struct result run(const char *kind, int n)
{
	int p[2], port, pid;
	if (pipe(p) != 0)
		exit(1);
	if ((pid = fork()) == 0) {
		close(p[0]);
		server_run_forever(kind, SERVE_ECHO, p[1]);
	}
	close(p[1]);
	if (read(p[0], &port, sizeof port) != sizeof port)
		die("the server did not start", -1);
	close(p[0]);
	st = !strcmp(kind, "tcp") ? &tcp_stack : &openssl_stack;
	ep = epoll_create1(EPOLL_CLOEXEC);
	struct cconn *cs = calloc((size_t)n, sizeof *cs);
	double *lat = malloc(sizeof(double) * (size_t)n * ROUNDS);
	int nlat = 0, opened = 0, ready = 0, done = 0;
	struct epoll_event evs[512];
	double t0 = now();
	while (ready < n) {
		while (opened < n && opened - ready < 256) {
			struct cconn *c = &cs[opened];
			if ((c->fd = connect_loopback(port)) < 0)
				die("connect", opened);
			c->c = st->wrap(c->fd, 0);
			struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
			epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
			ready += step(c, opened, lat, &nlat);
			opened++;
		}
		int k = epoll_wait(ep, evs, 512, 10000);
		if (k <= 0)
			die("phase 1 stalled", ready);
		for (int i = 0; i < k; i++) {
			struct cconn *c = evs[i].data.ptr;
			ready += step(c, (int)(c - cs), lat, &nlat);
		}
	}
	for (int i = 0; i < n; i++)
		send_round(&cs[i], i);
	while (done < n) {
		int k = epoll_wait(ep, evs, 512, 10000);
		if (k <= 0)
			die("phase 2 stalled", done);
		for (int i = 0; i < k; i++) {
			struct cconn *c = evs[i].data.ptr;
			done += step(c, (int)(c - cs), lat, &nlat);
		}
	}
	struct result r = {now() - t0, 0};
	qsort(lat, (size_t)nlat, sizeof *lat, cmp);
	r.p99_ms = lat[(size_t)nlat * 99 / 100] * 1000;
	for (int i = 0; i < n; i++) {
		st->unwrap(cs[i].c);
		close(cs[i].fd);
	}
	close(ep);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	printf("%-8s %d connections x %d rounds: %.2f s, p99 round trip %.2f ms (%d round trips checked)\n", kind, n,
	       ROUNDS, r.seconds, r.p99_ms, nlat);
	free(cs);
	free(lat);
	return r;
}

int main(int argc, char **argv)
{
	const char *certdir = "target/certs", *tsv_path = NULL;
	int n = 10000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			n = 1000;
		else if (!strcmp(argv[i], "--smoke"))
			n = 50;
		else if (!strcmp(argv[i], "--certdir") && i + 1 < argc)
			certdir = argv[++i];
		else if (!strcmp(argv[i], "--tsv") && i + 1 < argc)
			tsv_path = argv[++i];
		else {
			fprintf(stderr, "usage: c10k [--quick|--smoke] [--certdir DIR] [--tsv FILE]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	stacks_init(certdir, 0);
	struct result l = run("loop", n), o = run("openssl", n), t = run("tcp", n);
	FILE *f = tsv_path ? fopen(tsv_path, "w") : NULL;
	struct {
		const char *metric, *unit, *base_name;
		double ours, base;
	} rows[] = {
		{"c10k_seconds", "s", "openssl_c", l.seconds, o.seconds},
		{"c10k_seconds", "s", "tcp", l.seconds, t.seconds},
		{"c10k_p99_ms", "ms", "openssl_c", l.p99_ms, o.p99_ms},
		{"c10k_p99_ms", "ms", "tcp", l.p99_ms, t.p99_ms},
	};
	for (int i = 0; i < 4; i++) {
		printf("%-26s %-12s %10.3f %10.3f %-10s %7.3f\n", rows[i].metric, rows[i].unit, rows[i].ours,
		       rows[i].base, rows[i].base_name, rows[i].base / rows[i].ours);
		if (f)
			fprintf(f, "%s\t%s\t%.3f\t%.3f\t%s\t%.3f\n", rows[i].metric, rows[i].unit, rows[i].ours,
				rows[i].base, rows[i].base_name, rows[i].base / rows[i].ours);
	}
	if (f)
		fclose(f);
	return 0;
}
