/*
 * silly_echo: the work of silly's TLS layer (tls.write, then the socket
 * hands the ciphertext to tls.push, then tls.read(n)), both ends in one
 * thread over a socketpair, driven from Lua 5.4 the way silly drives it,
 * for instruction counts under callgrind (benches/run.sh; collection only
 * around the measured part).  It loads silly.tls.ctx / silly.tls.tls from
 * MODDIR: our shim (adapters/silly, target/silly-test/luaclib) or
 * benches/silly_ref.c (silly's own algorithm over raw OpenSSL).
 *
 *   silly_echo MODDIR echo|bulk|handshake N [CERTDIR]
 *
 * It exports the silly_* host functions the modules import (malloc-based,
 * silly_tcp_send writes the buffer to the socket and frees it: what silly's
 * socket thread does).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif
#endif
#ifndef CALLGRIND_TOGGLE_COLLECT
#define CALLGRIND_TOGGLE_COLLECT
#endif

#include "silly_api.h"

void *silly_malloc(size_t sz)
{
	return malloc(sz);
}
void silly_free(void *p)
{
	free(p);
}
enum silly_log_level silly_log_get_level(void)
{
	return SILLY_LOG_ERROR;
}
void silly_log_write(enum silly_log_level level, const char *buf, size_t len)
{
	(void)level;
	fwrite(buf, 1, len, stderr);
}
int silly_tcp_send(silly_socket_id_t sid, uint8_t *buff, size_t sz, void (*freex)(void *))
{
	size_t off = 0;
	while (off < sz) {
		ssize_t n = send((int)sid, buff + off, sz - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			(freex ? freex : free)(buff);
			return -EXCLOSED;
		}
		off += (size_t)n;
	}
	(freex ? freex : free)(buff);
	return 0;
}
void silly_error_table(lua_State *L)
{
	lua_newtable(L);
}
void silly_push_error(lua_State *L, int stk, int code)
{
	(void)stk;
	if (code == 0)
		lua_pushnil(L);
	else
		lua_pushfstring(L, "error (%d)", code);
}

/* host.recv(fd) -> lightuserdata, size (a malloc'ed buffer) or nil */
static int host_recv(lua_State *L)
{
	int fd = (int)luaL_checkinteger(L, 1);
	uint8_t *b = malloc(65536);
	ssize_t n = recv(fd, b, 65536, 0);
	if (n <= 0) {
		free(b);
		lua_pushnil(L);
		return 1;
	}
	lua_pushlightuserdata(L, b);
	lua_pushinteger(L, n);
	return 2;
}

static int host_toggle(lua_State *L)
{
	(void)L;
	CALLGRIND_TOGGLE_COLLECT;
	return 0;
}

static const char script[] =
	"local work, n, certdir, fd0, fd1 = ...\n"
	"local ctx = require 'silly.tls.ctx'\n"
	"local tls = require 'silly.tls.tls'\n"
	"local function slurp(p) local f = assert(io.open(p)); local s = f:read('a'); f:close(); return s end\n"
	"local sctx = ctx.server({{cert = slurp(certdir .. '/ec.crt'), key = slurp(certdir .. '/ec.key')}})\n"
	"local cctx = ctx.client()\n"
	"local function pump(t, fd)\n"
	"  local p, sz = host.recv(fd)\n"
	"  if p then return tls.push(t, p, sz) end\n"
	"  return tls.size(t)\n"
	"end\n"
	"local function pair()\n"
	"  local c, s = tls.open(cctx, fd0, 'localhost'), tls.open(sctx, fd1)\n"
	"  local dc, ds\n"
	"  for i = 1, 50 do\n"
	"    if not dc then dc = tls.handshake(c) == 1 end\n"
	"    pump(s, fd1)\n"
	"    if not ds then ds = tls.handshake(s) == 1 end\n"
	"    pump(c, fd0)\n"
	"    if dc and ds then return c, s end\n"
	"  end\n"
	"  error('handshake did not finish')\n"
	"end\n"
	"local function transfer(w, r, rfd, data)\n"
	"  assert(tls.write(w, data))\n"
	"  local got\n"
	"  for i = 1, 1000 do\n"
	"    pump(r, rfd)\n"
	"    got = tls.read(r, #data)\n"
	"    if got then return got end\n"
	"  end\n"
	"  error('transfer stalled')\n"
	"end\n"
	"if work == 'echo' then\n"
	"  local c, s = pair()\n"
	"  for r = -20, n - 1 do\n"
	"    if r == 0 then host.toggle() end\n"
	"    local msg = string.rep(string.char(97 + (r + 20) % 26), 64)\n"
	"    local back = transfer(s, c, fd0, transfer(c, s, fd1, msg))\n"
	"    if r == n - 1 then host.toggle() end\n"
	"    assert(back == msg, 'echo: bytes differ')\n"
	"  end\n"
	"  tls.close(c); tls.close(s)\n"
	"elseif work == 'bulk' then\n"
	"  local c, s = pair()\n"
	"  local msg = string.rep('b', 16384)\n"
	"  for r = -5, n - 1 do\n"
	"    if r == 0 then host.toggle() end\n"
	"    local got = transfer(c, s, fd1, msg)\n"
	"    if r == n - 1 then host.toggle() end\n"
	"    assert(got == msg, 'bulk: bytes differ')\n"
	"  end\n"
	"  tls.close(c); tls.close(s)\n"
	"elseif work == 'handshake' then\n"
	"  for r = -1, n - 1 do\n"
	"    if r == 0 then host.toggle() end\n"
	"    local c, s = pair()\n"
	"    assert(transfer(s, c, fd0, transfer(c, s, fd1, 'h')) == 'h')\n"
	"    tls.close(c); tls.close(s)\n"
	"    if r == n - 1 then host.toggle() end\n"
	"  end\n"
	"else error('unknown work ' .. work) end\n"
	"ctx.free(sctx); ctx.free(cctx)\n";

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: silly_echo MODDIR echo|bulk|handshake N [CERTDIR]\n");
		return 2;
	}
	int sv[2], big = 1 << 20;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
		return 1;
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
	}
	lua_State *L = luaL_newstate();
	luaL_openlibs(L);
	lua_getglobal(L, "package");
	lua_pushfstring(L, "%s/?.so", argv[1]);
	lua_setfield(L, -2, "cpath");
	lua_pop(L, 1);
	lua_newtable(L);
	lua_pushcfunction(L, host_recv);
	lua_setfield(L, -2, "recv");
	lua_pushcfunction(L, host_toggle);
	lua_setfield(L, -2, "toggle");
	lua_setglobal(L, "host");
	if (luaL_loadstring(L, script) != LUA_OK) {
		fprintf(stderr, "silly_echo: %s\n", lua_tostring(L, -1));
		return 1;
	}
	lua_pushstring(L, argv[2]);
	lua_pushinteger(L, atol(argv[3]));
	lua_pushstring(L, argc > 4 ? argv[4] : "target/certs");
	lua_pushinteger(L, sv[0]);
	lua_pushinteger(L, sv[1]);
	int rc = lua_pcall(L, 5, 0, 0);
	if (rc != LUA_OK)
		fprintf(stderr, "silly_echo: %s\n", lua_tostring(L, -1));
	lua_close(L);
	close(sv[0]);
	close(sv[1]);
	return rc == LUA_OK ? 0 : 1;
}
