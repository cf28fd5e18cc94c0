/*
 * silly_fuzz.c -- the silly face (adapters/silly/silly_tls.c, linked in)
 * as the fuzz target `silly` drives it: a Lua 5.4 state with the two
 * modules, a server ctx and one tls object, and calls of tls.push,
 * handshake, read, write and size through lua_pcall, as silly's tls.lua
 * makes them.  It provides the silly host functions the module imports:
 * silly_malloc/silly_free with a count of live blocks, silly_tcp_send
 * into a buffer the target reads back, the error strings, a silent log.
 * Built by fuzz/build.rs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "silly_api.h"

int luaopen_silly_tls_ctx(lua_State *L);
int luaopen_silly_tls_tls(lua_State *L);

/* ---- the host functions ------------------------------------------------ */

static long live_blocks;
static uint8_t *sent;
static size_t sent_len, sent_cap;
static const char error_table_key = 'E';

void *silly_malloc(size_t sz)
{
    void *p = malloc(sz ? sz : 1);
    if (p != NULL)
        live_blocks++;
    return p;
}

void silly_free(void *ptr)
{
    if (ptr != NULL) {
        live_blocks--;
        free(ptr);
    }
}

enum silly_log_level silly_log_get_level(void) { return SILLY_LOG_DEBUG; }
void silly_log_write(enum silly_log_level level, const char *buf, size_t len)
{
    (void)level, (void)buf, (void)len;
}

/* Takes the buffer in every case, like silly's socket layer. */
int silly_tcp_send(silly_socket_id_t sid, uint8_t *buff, size_t sz, void (*freex)(void *))
{
    (void)sid;
    if (sent_len + sz > sent_cap) {
        size_t cap = (sent_len + sz) * 2;
        uint8_t *p = realloc(sent, cap);
        if (p == NULL)
            abort();
        sent = p;
        sent_cap = cap;
    }
    memcpy(sent + sent_len, buff, sz);
    sent_len += sz;
    (freex != NULL ? freex : silly_free)(buff);
    return 0;
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
        lua_pushfstring(L, "error (%d)", code);
        lua_pushvalue(L, -1);
        lua_rawseti(L, stk, code);
    }
}

/* ---- the fuzz calls ----------------------------------------------------- */

/* Globals of the state: `tls` (the module), `T` (the tls object). */
static lua_State *L;

/* A fresh state with a server ctx for cert/key (and an ALPN list when
 * alpn_len > 0) and one tls object on fd 7.  0, or -1 when ctx.server or
 * tls.open fails (the message is left in silly_fuzz_error()). */
int silly_fuzz_open(const char *cert, size_t cert_len, const char *key, size_t key_len,
                    const char *alpn, size_t alpn_len)
{
    L = luaL_newstate();
    if (L == NULL)
        abort();
    luaL_openlibs(L);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &error_table_key);
    luaL_requiref(L, "silly.tls.ctx", luaopen_silly_tls_ctx, 0);
    luaL_requiref(L, "silly.tls.tls", luaopen_silly_tls_tls, 0);
    lua_setglobal(L, "tls");
    /* ctx.server({{cert = ..., key = ...}}, nil, alpn) */
    lua_getfield(L, -1, "server");
    lua_newtable(L);
    lua_newtable(L);
    lua_pushlstring(L, cert, cert_len);
    lua_setfield(L, -2, "cert");
    lua_pushlstring(L, key, key_len);
    lua_setfield(L, -2, "key");
    lua_rawseti(L, -2, 1);
    lua_pushnil(L);
    if (alpn_len > 0)
        lua_pushlstring(L, alpn, alpn_len);
    else
        lua_pushnil(L);
    if (lua_pcall(L, 3, 2, 0) != LUA_OK || lua_isnil(L, -2))
        return -1;
    lua_pop(L, 1);
    lua_setglobal(L, "C");
    lua_pop(L, 1); /* the ctx module */
    lua_getglobal(L, "tls");
    lua_getfield(L, -1, "open");
    lua_getglobal(L, "C");
    lua_pushinteger(L, 7);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK)
        return -1;
    lua_setglobal(L, "T");
    lua_settop(L, 0);
    return 0;
}

const char *silly_fuzz_error(void)
{
    return L != NULL && lua_gettop(L) > 0 && lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
}

/* Push tls.<fn> and T; the caller pushes the other arguments. */
static void prepare(const char *fn)
{
    lua_settop(L, 0);
    lua_getglobal(L, "tls");
    lua_getfield(L, 1, fn);
    lua_remove(L, 1);
    lua_getglobal(L, "T");
}

/* The call's status: 0 when it returned, -1 when it raised. */
static int call(int nargs)
{
    return lua_pcall(L, nargs + 1, LUA_MULTRET, 0) == LUA_OK ? 0 : -1;
}

/* tls.push(T, ptr, len) with a silly_malloc'ed copy of the bytes. */
int silly_fuzz_push(const uint8_t *data, size_t len)
{
    void *p = len > 0 ? silly_malloc(len) : NULL;
    if (len > 0)
        memcpy(p, data, len);
    prepare("push");
    if (p != NULL)
        lua_pushlightuserdata(L, p);
    else
        lua_pushnil(L);
    lua_pushinteger(L, (lua_Integer)len);
    return call(2);
}

/* tls.handshake(T): 1 done, -1 wants more, 0 failed; -2 if it raised. */
int silly_fuzz_handshake(void)
{
    prepare("handshake");
    if (call(0) != 0)
        return -2;
    return (int)lua_tointeger(L, 1);
}

/* tls.read(T, n) (delim < 0) or tls.read(T, <delim byte>): the length of
 * the data returned, -1 for nil, -2 if it raised. */
long silly_fuzz_read(long n, int delim)
{
    prepare("read");
    if (delim >= 0) {
        char d = (char)delim;
        lua_pushlstring(L, &d, 1);
    } else {
        lua_pushinteger(L, n);
    }
    if (call(1) != 0)
        return -2;
    return lua_isstring(L, 1) ? (long)lua_rawlen(L, 1) : -1;
}

/* tls.write(T, data) -- as pieces of a table when pieces > 1.  1 for
 * true, 0 for false, -2 if it raised. */
int silly_fuzz_write(const uint8_t *data, size_t len, int pieces)
{
    prepare("write");
    if (pieces <= 1) {
        lua_pushlstring(L, (const char *)data, len);
    } else {
        size_t step = len / (size_t)pieces + 1, off = 0;
        int i = 1;
        lua_newtable(L);
        for (; off < len || i == 1; i++) {
            size_t n = len - off < step ? len - off : step;
            lua_pushlstring(L, (const char *)data + off, n);
            lua_rawseti(L, -2, i);
            off += n;
        }
    }
    if (call(1) != 0)
        return -2;
    return lua_toboolean(L, 1);
}

/* tls.size(T); -2 if it raised. */
long silly_fuzz_size(void)
{
    prepare("size");
    if (call(0) != 0)
        return -2;
    return (long)lua_tointeger(L, 1);
}

/* Ciphertext the module sent since the last call (at most cap bytes; the
 * rest waits). */
size_t silly_fuzz_take_sent(uint8_t *dst, size_t cap)
{
    size_t n = sent_len < cap ? sent_len : cap;
    memcpy(dst, sent, n);
    memmove(sent, sent + n, sent_len - n);
    sent_len -= n;
    return n;
}

size_t silly_fuzz_sent_len(void) { return sent_len; }

/* tls.close(T) alone (the object stays, closed); 0, -2 if it raised. */
int silly_fuzz_tls_close(void)
{
    prepare("close");
    return call(0) == 0 ? 0 : -2;
}

/* tls.close(T), then the state; the silly_malloc blocks still live. */
long silly_fuzz_close(void)
{
    if (L != NULL) {
        lua_settop(L, 0);
        prepare("close");
        (void)call(0);
        lua_close(L);
        L = NULL;
    }
    sent_len = 0;
    return live_blocks;
}
