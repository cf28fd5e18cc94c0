/*
 * host.c -- a stand-in for the silly executable, to test adapters/silly's
 * tls.so without silly.  (One file over 600 lines on purpose: it is one
 * program, and the silly_* exports and the Lua `host` API share its tables.)
 *
 *     silly_host MODDIR SCRIPT.lua [ARGS...]
 *
 * Embeds Lua 5.4, puts MODDIR/?.so first on package.cpath (so
 * require "silly.tls.tls" loads MODDIR/silly/tls/tls.so, as silly's
 * per-module slot does) and runs SCRIPT with the global `host` below.
 *
 * It implements the silly host functions tls.so imports, with silly's
 * semantics:
 *  - silly_malloc / silly_free with allocation accounting: after the
 *    script and lua_close, every block must have been freed;
 *  - silly_tcp_send: takes ownership of the buffer in every case, queues it
 *    on the socket (sid == fd) and writes it out non-blocking, like silly's
 *    socket thread; -EXCLOSED for a socket that is gone;
 *  - silly_error_table / silly_push_error: silly's interned error strings
 *    ("TLS error (10005)", ...);
 *  - silly_log_get_level / silly_log_write: captured for host.logs().
 *
 * `host` gives the script a small event loop over real sockets (socketpair,
 * TCP listen/accept/connect) whose data events carry silly_malloc'ed
 * buffers for tls.push, plus checks (`ok - ` / `FAIL - ` lines and one final
 * `N passed, M failed`), child processes (openssl s_client) and a
 * watchdog.  Exit status 0 iff every check passed, the script raised no
 * error and the accounting balanced.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "silly_api.h"

#define MAX_FD 1024
#define MAX_CHILDREN 16

/* ------------------------------------------------------------ checks */

static int n_passed, n_failed;

static void check(int ok, const char *msg)
{
	if (ok)
		n_passed++;
	else
		n_failed++;
	printf("%s - %s\n", ok ? "ok" : "FAIL", msg);
}

static pid_t children[MAX_CHILDREN];

static void kill_children(void)
{
	int i;
	for (i = 0; i < MAX_CHILDREN; i++) {
		if (children[i] > 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
			children[i] = 0;
		}
	}
}

static void on_alarm(int sig)
{
	(void)sig;
	/* printf is not async-signal-safe, but the process ends here. */
	printf("FAIL - watchdog: the script did not finish in time\n");
	printf("%d passed, %d failed\n", n_passed, n_failed + 1);
	fflush(stdout);
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0)
			kill(children[i], SIGKILL);
	_exit(1);
}

/* ------------------------------------------------------------ memory */

static long mem_blocks;   /* live silly_malloc blocks */
static size_t mem_bytes;  /* their usable size */
static long mem_total;    /* silly_malloc calls */

static void account_new(void *p)
{
	mem_blocks++;
	mem_total++;
	mem_bytes += malloc_usable_size(p);
}

void *silly_malloc(size_t sz)
{
	void *p = malloc(sz);
	if (p == NULL && sz == 0)
		p = malloc(1);
	if (p == NULL) {
		fprintf(stderr, "silly_host: out of memory (%zu bytes)\n", sz);
		abort(); /* as silly does */
	}
	account_new(p);
	return p;
}

void silly_free(void *p)
{
	if (p == NULL)
		return;
	mem_blocks--;
	mem_bytes -= malloc_usable_size(p);
	free(p);
}

/* ------------------------------------------------------------ logging */

static enum silly_log_level log_level = SILLY_LOG_DEBUG;
static char *log_buf;
static size_t log_len, log_cap;

enum silly_log_level silly_log_get_level(void)
{
	return log_level;
}

void silly_log_write(enum silly_log_level level, const char *buf, size_t len)
{
	(void)level;
	if (log_len + len + 1 > log_cap) {
		size_t cap = (log_len + len + 1) * 2;
		char *p = realloc(log_buf, cap);
		if (p == NULL)
			return;
		log_buf = p;
		log_cap = cap;
	}
	memcpy(log_buf + log_len, buf, len);
	log_len += len;
	log_buf[log_len] = '\0';
	if (getenv("SILLY_HOST_VERBOSE") != NULL)
		fprintf(stderr, "[log] %.*s", (int)len, buf);
}

/* ------------------------------------------------------------ errors */

static const char error_table_key = 'E';

static void new_error_table(lua_State *L)
{
	static const struct {
		int code;
		const char *text;
	} ex[] = {
		{ 10000, "Address resolution failed" },
		{ 10001, "No free socket available" },
		{ 10002, "Socket is closing" },
		{ EXCLOSED, "Socket is closed" },
		{ EXEOF, "End of file" },
		{ EXTLS, "TLS error" },
	};
	size_t i;
	lua_newtable(L);
	for (i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
		lua_pushfstring(L, "%s (%d)", ex[i].text, ex[i].code);
		lua_rawseti(L, -2, ex[i].code);
	}
	lua_rawsetp(L, LUA_REGISTRYINDEX, &error_table_key);
}

void silly_error_table(lua_State *L)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &error_table_key);
}

void silly_push_error(lua_State *L, int stk, int code)
{
	if (code == 0) {
		lua_pushnil(L);
		return;
	}
	if (lua_rawgeti(L, stk, code) == LUA_TNIL) {
		lua_pop(L, 1);
		lua_pushfstring(L, "%s (%d)", strerror(code), code);
		lua_pushvalue(L, -1);
		lua_rawseti(L, stk, code);
	}
}

/* ------------------------------------------------------------ sockets */

struct chunk {
	struct chunk *next;
	uint8_t *buf;
	size_t off, len;
	void (*freex)(void *);
};

enum { S_FREE = 0, S_STREAM, S_LISTEN };

struct sock {
	int kind;
	int read_off;  /* readenable(false) */
	int eof;       /* close event delivered */
	int fail_send; /* silly_tcp_send reports EXCLOSED */
	struct chunk *head, *tail;
	size_t queued;
	long sends;    /* silly_tcp_send calls */
	size_t sent;   /* bytes handed to silly_tcp_send */
};

static struct sock socks[MAX_FD];
static size_t recv_chunk = 256 * 1024;

/* What silly's socket layer does with a buffer it owns: freex, else
 * silly's own free. */
static void free_sent(uint8_t *buf, void (*freex)(void *))
{
	if (freex != NULL)
		freex(buf);
	else
		silly_free(buf);
}

static void release(struct chunk *c)
{
	free_sent(c->buf, c->freex);
	free(c);
}

static void drop_queue(struct sock *s)
{
	while (s->head != NULL) {
		struct chunk *c = s->head;
		s->head = c->next;
		release(c);
	}
	s->tail = NULL;
	s->queued = 0;
}

/* Write what the socket takes now; 0, or -1 when the peer is gone. */
static int try_flush(int fd)
{
	struct sock *s = &socks[fd];
	while (s->head != NULL) {
		struct chunk *c = s->head;
		ssize_t n = send(fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return 0;
			/* silly closes a socket whose write fails: later sends
			 * report EXCLOSED */
			drop_queue(s);
			s->fail_send = 1;
			return -1;
		}
		c->off += (size_t)n;
		s->queued -= (size_t)n;
		if (c->off == c->len) {
			s->head = c->next;
			if (s->head == NULL)
				s->tail = NULL;
			release(c);
		}
	}
	return 0;
}

int silly_tcp_send(silly_socket_id_t sid, uint8_t *buff, size_t sz, void (*freex)(void *))
{
	struct chunk *c;
	struct sock *s;
	if (sid < 0 || sid >= MAX_FD || socks[sid].kind != S_STREAM || socks[sid].fail_send) {
		free_sent(buff, freex);
		return -EXCLOSED;
	}
	s = &socks[sid];
	s->sends++;
	s->sent += sz;
	if (sz == 0) {
		free_sent(buff, freex);
		return 0;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort();
	c->buf = buff;
	c->len = sz;
	c->freex = freex;
	if (s->tail != NULL)
		s->tail->next = c;
	else
		s->head = c;
	s->tail = c;
	s->queued += sz;
	try_flush((int)sid);
	return 0;
}

static int add_sock(lua_State *L, int fd, int kind)
{
	if (fd >= MAX_FD) {
		close(fd);
		return luaL_error(L, "fd %d beyond the fixture's table", fd);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	memset(&socks[fd], 0, sizeof(socks[fd]));
	socks[fd].kind = kind;
	return fd;
}

static int check_fd(lua_State *L, int idx)
{
	lua_Integer fd = luaL_checkinteger(L, idx);
	luaL_argcheck(L, fd >= 0 && fd < MAX_FD && socks[fd].kind != S_FREE, idx, "not a host socket");
	return (int)fd;
}

/* host.socketpair() -> fd1, fd2 */
static int h_socketpair(lua_State *L)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return luaL_error(L, "socketpair: %s", strerror(errno));
	lua_pushinteger(L, add_sock(L, sv[0], S_STREAM));
	lua_pushinteger(L, add_sock(L, sv[1], S_STREAM));
	return 2;
}

/* host.listen() -> fd, port (127.0.0.1, ephemeral port) */
static int h_listen(lua_State *L)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return luaL_error(L, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 64) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
		int e = errno;
		close(fd);
		return luaL_error(L, "listen: %s", strerror(e));
	}
	lua_pushinteger(L, add_sock(L, fd, S_LISTEN));
	lua_pushinteger(L, ntohs(a.sin_port));
	return 2;
}

/* host.connect(port) -> fd (to 127.0.0.1; blocking connect) */
static int h_connect(lua_State *L)
{
	struct sockaddr_in a;
	lua_Integer port = luaL_checkinteger(L, 1);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return luaL_error(L, "socket: %s", strerror(errno));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int e = errno;
		close(fd);
		return luaL_error(L, "connect: %s", strerror(e));
	}
	lua_pushinteger(L, add_sock(L, fd, S_STREAM));
	return 1;
}

/* host.close(fd): queued output is dropped (its buffers released). */
static int h_close(lua_State *L)
{
	int fd = check_fd(L, 1);
	drop_queue(&socks[fd]);
	socks[fd].kind = S_FREE;
	close(fd);
	return 0;
}

/* host.shutdown(fd): half-close (FIN) after flushing what is queued. */
static int h_shutdown(lua_State *L)
{
	int fd = check_fd(L, 1);
	while (socks[fd].head != NULL) {
		struct pollfd p = { fd, POLLOUT, 0 };
		if (try_flush(fd) != 0)
			break;
		if (socks[fd].head != NULL)
			poll(&p, 1, 1000);
	}
	shutdown(fd, SHUT_WR);
	return 0;
}

static int push_close_event(lua_State *L, int fd, int err)
{
	lua_createtable(L, 0, 3);
	lua_pushliteral(L, "close");
	lua_setfield(L, -2, "ev");
	lua_pushinteger(L, fd);
	lua_setfield(L, -2, "fd");
	silly_error_table(L);
	silly_push_error(L, lua_gettop(L), err);
	lua_setfield(L, -3, "err");
	lua_pop(L, 1);
	socks[fd].eof = 1;
	return 1;
}

/* Read once from a readable stream socket; pushes an event or nothing. */
static int read_event(lua_State *L, int fd)
{
	static uint8_t tmp[4 * 1024 * 1024];
	size_t cap = recv_chunk < sizeof(tmp) ? recv_chunk : sizeof(tmp);
	ssize_t n = recv(fd, tmp, cap, MSG_DONTWAIT);
	uint8_t *p;
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		return push_close_event(L, fd, errno);
	}
	if (n == 0)
		return push_close_event(L, fd, EXEOF);
	p = silly_malloc((size_t)n);
	memcpy(p, tmp, (size_t)n);
	lua_createtable(L, 0, 4);
	lua_pushliteral(L, "data");
	lua_setfield(L, -2, "ev");
	lua_pushinteger(L, fd);
	lua_setfield(L, -2, "fd");
	lua_pushlightuserdata(L, p);
	lua_setfield(L, -2, "ptr");
	lua_pushinteger(L, n);
	lua_setfield(L, -2, "size");
	return 1;
}

/* host.poll(timeout_ms) -> { events }:
 *   {ev="data", fd=, ptr=<silly_malloc block>, size=}  (the script must
 *       tls.push or host.free it)
 *   {ev="close", fd=, err=}   peer closed (err "End of file (10004)")
 *   {ev="accept", fd=<listener>, conn=<new fd>}
 * Queued output is written as sockets become writable. */
static int h_poll(lua_State *L)
{
	static struct pollfd pfd[MAX_FD];
	int timeout = (int)luaL_optinteger(L, 1, 0);
	int n = 0, i, r, nev = 0;
	for (i = 0; i < MAX_FD; i++) {
		struct sock *s = &socks[i];
		short ev = 0;
		if (s->kind == S_LISTEN)
			ev = POLLIN;
		else if (s->kind == S_STREAM) {
			if (!s->read_off && !s->eof)
				ev |= POLLIN;
			if (s->head != NULL)
				ev |= POLLOUT;
		}
		if (ev != 0) {
			pfd[n].fd = i;
			pfd[n].events = ev;
			pfd[n].revents = 0;
			n++;
		}
	}
	lua_newtable(L);
	r = poll(pfd, (nfds_t)n, timeout);
	if (r < 0 && errno != EINTR)
		return luaL_error(L, "poll: %s", strerror(errno));
	for (i = 0; r > 0 && i < n; i++) {
		int fd = pfd[i].fd;
		short re = pfd[i].revents;
		if (re == 0)
			continue;
		if (socks[fd].kind == S_LISTEN) {
			int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
			if (c < 0)
				continue;
			lua_createtable(L, 0, 3);
			lua_pushliteral(L, "accept");
			lua_setfield(L, -2, "ev");
			lua_pushinteger(L, fd);
			lua_setfield(L, -2, "fd");
			lua_pushinteger(L, add_sock(L, c, S_STREAM));
			lua_setfield(L, -2, "conn");
			lua_rawseti(L, -2, ++nev);
			continue;
		}
		if ((re & POLLOUT) && try_flush(fd) != 0 && !socks[fd].eof) {
			push_close_event(L, fd, EPIPE);
			lua_rawseti(L, -2, ++nev);
			continue;
		}
		if ((re & (POLLIN | POLLHUP | POLLERR)) && !socks[fd].read_off && !socks[fd].eof) {
			if (read_event(L, fd))
				lua_rawseti(L, -2, ++nev);
		}
	}
	return 1;
}

/* host.readenable(fd, bool) */
static int h_readenable(lua_State *L)
{
	int fd = check_fd(L, 1);
	socks[fd].read_off = !lua_toboolean(L, 2);
	return 0;
}

/* host.sendinfo(fd) -> queued bytes, silly_tcp_send calls, bytes handed over */
static int h_sendinfo(lua_State *L)
{
	int fd = check_fd(L, 1);
	lua_pushinteger(L, (lua_Integer)socks[fd].queued);
	lua_pushinteger(L, socks[fd].sends);
	lua_pushinteger(L, (lua_Integer)socks[fd].sent);
	return 3;
}

/* host.fail_send(fd, bool): make silly_tcp_send report EXCLOSED */
static int h_fail_send(lua_State *L)
{
	int fd = check_fd(L, 1);
	socks[fd].fail_send = lua_toboolean(L, 2);
	return 0;
}

/* host.rawsend(fd, bytes): send bytes as they are (through silly_tcp_send) */
static int h_rawsend(lua_State *L)
{
	lua_Integer fd = luaL_checkinteger(L, 1);
	size_t len;
	const char *s = luaL_checklstring(L, 2, &len);
	uint8_t *p = silly_malloc(len);
	memcpy(p, s, len);
	lua_pushinteger(L, silly_tcp_send(fd, p, len, NULL));
	return 1;
}

/* host.chunk(n): read at most n bytes per data event (default 256 KiB) */
static int h_chunk(lua_State *L)
{
	lua_Integer n = luaL_checkinteger(L, 1);
	luaL_argcheck(L, n > 0, 1, "must be positive");
	recv_chunk = (size_t)n;
	return 0;
}

/* ------------------------------------------------------------ memory API */

/* host.dup(string) -> lightuserdata (silly_malloc copy), size */
static int h_dup(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	uint8_t *p = silly_malloc(len);
	memcpy(p, s, len);
	lua_pushlightuserdata(L, p);
	lua_pushinteger(L, (lua_Integer)len);
	return 2;
}

/* host.free(ptr) */
static int h_free(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TLIGHTUSERDATA);
	silly_free(lua_touserdata(L, 1));
	return 0;
}

/* host.null() -> a light userdata holding NULL */
static int h_null(lua_State *L)
{
	lua_pushlightuserdata(L, NULL);
	return 1;
}

/* host.mem() -> live blocks, live bytes, silly_malloc calls so far */
static int h_mem(lua_State *L)
{
	lua_pushinteger(L, mem_blocks);
	lua_pushinteger(L, (lua_Integer)mem_bytes);
	lua_pushinteger(L, mem_total);
	return 3;
}

/* ------------------------------------------------------------ misc */

/* host.ok(cond, msg) -> cond */
static int h_ok(lua_State *L)
{
	int ok = lua_toboolean(L, 1);
	check(ok, luaL_optstring(L, 2, "(no message)"));
	lua_pushboolean(L, ok);
	return 1;
}

/* host.diag(msg): a `# ...` line */
static int h_diag(lua_State *L)
{
	printf("# %s\n", luaL_checkstring(L, 1));
	return 0;
}

/* host.logs() -> what tls.so logged since the last call */
static int h_logs(lua_State *L)
{
	lua_pushlstring(L, log_buf != NULL ? log_buf : "", log_len);
	log_len = 0;
	return 1;
}

/* host.loglevel(level) */
static int h_loglevel(lua_State *L)
{
	log_level = (enum silly_log_level)luaL_checkinteger(L, 1);
	return 0;
}

/* host.now() -> monotonic milliseconds */
static int h_now(lua_State *L)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	return 1;
}

/* host.spawn({argv...}, outfile) -> pid: stdin /dev/null, stdout+stderr
 * to outfile. */
static int h_spawn(lua_State *L)
{
	const char *argv[64];
	const char *out = luaL_checkstring(L, 2);
	lua_Integer n, i;
	int slot;
	pid_t pid;
	luaL_checktype(L, 1, LUA_TTABLE);
	n = luaL_len(L, 1);
	luaL_argcheck(L, n > 0 && n < 63, 1, "1..62 arguments");
	lua_settop(L, 2);
	for (i = 1; i <= n; i++) {
		lua_geti(L, 1, i);
		argv[i - 1] = luaL_checkstring(L, -1); /* stays on the stack */
	}
	argv[n] = NULL;
	for (slot = 0; slot < MAX_CHILDREN && children[slot] != 0; slot++)
		;
	if (slot == MAX_CHILDREN)
		return luaL_error(L, "too many children");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return luaL_error(L, "fork: %s", strerror(errno));
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (in < 0 || o < 0)
			_exit(126);
		dup2(in, 0);
		dup2(o, 1);
		dup2(o, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	children[slot] = pid;
	lua_pushinteger(L, pid);
	return 1;
}

/* host.wait(pid) -> exit status, or nil while it runs */
static int h_wait(lua_State *L)
{
	pid_t pid = (pid_t)luaL_checkinteger(L, 1);
	int status, i;
	pid_t r = waitpid(pid, &status, WNOHANG);
	if (r == 0)
		return 0;
	for (i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
	if (r < 0)
		lua_pushinteger(L, -1);
	else
		lua_pushinteger(L, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return 1;
}

static const luaL_Reg host_funcs[] = {
	{ "socketpair", h_socketpair },
	{ "listen", h_listen },
	{ "connect", h_connect },
	{ "close", h_close },
	{ "shutdown", h_shutdown },
	{ "poll", h_poll },
	{ "readenable", h_readenable },
	{ "sendinfo", h_sendinfo },
	{ "fail_send", h_fail_send },
	{ "rawsend", h_rawsend },
	{ "chunk", h_chunk },
	{ "dup", h_dup },
	{ "free", h_free },
	{ "null", h_null },
	{ "mem", h_mem },
	{ "ok", h_ok },
	{ "diag", h_diag },
	{ "logs", h_logs },
	{ "loglevel", h_loglevel },
	{ "now", h_now },
	{ "spawn", h_spawn },
	{ "wait", h_wait },
	{ NULL, NULL },
};

static int traceback(lua_State *L)
{
	luaL_traceback(L, L, lua_tostring(L, 1), 1);
	return 1;
}

int main(int argc, char **argv)
{
	lua_State *L;
	int i, status, fd;
	char msg[256];
	const char *timeout, *slash;

	if (argc < 3) {
		fprintf(stderr, "usage: %s MODDIR SCRIPT.lua [ARGS...]\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	timeout = getenv("SILLY_HOST_TIMEOUT");
	alarm(timeout != NULL ? (unsigned)atoi(timeout) : 120);

	L = luaL_newstate();
	luaL_openlibs(L);
	new_error_table(L);
	luaL_newlib(L, host_funcs);
	lua_setglobal(L, "host");
	/* package.cpath = MODDIR/?.so (nothing else: the module under test
	 * must come from there), package.path = SCRIPTDIR/?.lua, and
	 * arg = {[0] = SCRIPT, ARGS...} */
	lua_getglobal(L, "package");
	lua_pushfstring(L, "%s/?.so", argv[1]);
	lua_setfield(L, -2, "cpath");
	slash = strrchr(argv[2], '/');
	if (slash != NULL)
		lua_pushlstring(L, argv[2], (size_t)(slash - argv[2]));
	else
		lua_pushliteral(L, ".");
	lua_pushfstring(L, "%s/?.lua", lua_tostring(L, -1));
	lua_setfield(L, -3, "path");
	lua_pop(L, 2);
	lua_createtable(L, argc, 0);
	for (i = 2; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i - 2);
	}
	lua_setglobal(L, "arg");

	lua_pushcfunction(L, traceback);
	status = luaL_loadfile(L, argv[2]);
	if (status == LUA_OK)
		status = lua_pcall(L, 0, 0, -2);
	if (status != LUA_OK) {
		const char *e = lua_tostring(L, -1);
		printf("# %s\n", e != NULL ? e : "(error object is not a string)");
		check(0, "the test script ran to its end");
	}
	lua_close(L); /* collects every tls/ctx object: __gc frees sessions */

	for (fd = 0; fd < MAX_FD; fd++) {
		if (socks[fd].kind != S_FREE) {
			drop_queue(&socks[fd]);
			close(fd);
			socks[fd].kind = S_FREE;
		}
	}
	kill_children();
	snprintf(msg, sizeof(msg),
		 "silly_malloc accounting balanced after lua_close (%ld allocations, %ld blocks / %zu bytes left)",
		 mem_total, mem_blocks, mem_bytes);
	check(mem_blocks == 0 && mem_bytes == 0, msg);
	free(log_buf);
	printf("%d passed, %d failed\n", n_passed, n_failed);
	return n_failed == 0 ? 0 : 1;
}
