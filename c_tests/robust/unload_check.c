/*
 * unload_check: libcorotls.so and the silly face's tls.so are loaded,
 * used and unloaded (dlopen / dlclose, three times each) and nothing is
 * left behind: after each unload the object is really gone (dlopen with
 * RTLD_NOLOAD fails), and LeakSanitizer finds no leak (when the program
 * runs under it: make check-asan; under valgrind, make check, a leak shows
 * at exit as "definitely lost").
 *
 *     unload_check LIBCOROTLS_SO SILLY_MODDIR
 *
 * What a use makes: the FIFO BIO method (a session), the SSL_CTX ex_data
 * index (a server conf with ALPN and two identities), handles in the
 * registry.  The silly tls.so is loaded by Lua (require, then lua_close
 * unloads it, as silly does at exit); this program stands in for silly's
 * host functions with stubs, and links libssl, as silly does.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <openssl/ssl.h>

#include "corotls.h"
#include "harness.h"
#include "silly_api.h"

/* LeakSanitizer's explicit check, when the program runs under it. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static void no_leak(const char *after)
{
    if (__lsan_do_recoverable_leak_check == NULL) {
        CHECK(1, "%s: not under LeakSanitizer (valgrind checks at exit)", after);
        return;
    }
    CHECK(__lsan_do_recoverable_leak_check() == 0, "%s: LeakSanitizer finds no leak", after);
}

/* ------------------------------------------------------------ libcorotls.so */

#define SYM(h, name) __typeof__(&name) p_##name = (__typeof__(&name))dlsym(h, #name)

static char certdir[512];

static void path_of(char *buf, size_t cap, const char *file)
{
    snprintf(buf, cap, "%s/%s", certdir, file);
}

static void use_library(void *h)
{
    SYM(h, corotls_conf_builder_new);
    SYM(h, corotls_conf_builder_add_identity_file);
    SYM(h, corotls_conf_builder_set_alpn_wire);
    SYM(h, corotls_conf_builder_build);
    SYM(h, corotls_conf_builder_free);
    SYM(h, corotls_conf_new);
    SYM(h, corotls_conf_free);
    SYM(h, corotls_session_new);
    SYM(h, corotls_session_free);
    SYM(h, corotls_session_set_alpn_wire);
    SYM(h, corotls_session_handshake);
    SYM(h, corotls_session_out_read);
    SYM(h, corotls_session_feed);
    REQUIRE(p_corotls_session_free != NULL && p_corotls_conf_new != NULL, "symbols found");

    char crt[600], key[600], crt2[600], key2[600], ca[600];
    path_of(crt, sizeof crt, "leaf.crt");
    path_of(key, sizeof key, "leaf.key");
    path_of(crt2, sizeof crt2, "alt1.crt");
    path_of(key2, sizeof key2, "alt1.key");
    path_of(ca, sizeof ca, "ca.crt");
    static const uint8_t alpn[] = "\x02h2\x08http/1.1";

    corotls_conf_builder *b = NULL;
    corotls_conf *server = NULL, *client = NULL;
    REQUIRE(p_corotls_conf_builder_new(COROTLS_SERVER, &b) == COROTLS_OK, "builder");
    CHECK(p_corotls_conf_builder_add_identity_file(b, crt, key, NULL) == COROTLS_OK, "identity 1");
    CHECK(p_corotls_conf_builder_add_identity_file(b, crt2, key2, NULL) == COROTLS_OK, "identity 2 (SNI table)");
    CHECK(p_corotls_conf_builder_set_alpn_wire(b, alpn, sizeof alpn - 1) == COROTLS_OK, "server ALPN");
    CHECK(p_corotls_conf_builder_build(b, &server) == COROTLS_OK, "server conf");
    p_corotls_conf_builder_free(b);
    CHECK(p_corotls_conf_new(COROTLS_CLIENT, NULL, NULL, ca, NULL, false, &client) == COROTLS_OK, "client conf");

    corotls_session *c = NULL, *s = NULL;
    REQUIRE(p_corotls_session_new(client, &c) == COROTLS_OK && p_corotls_session_new(server, &s) == COROTLS_OK,
            "sessions");
    CHECK(p_corotls_session_set_alpn_wire(c, alpn, sizeof alpn - 1) == COROTLS_OK, "client ALPN");
    uint8_t buf[32768];
    int done = 0;
    for (int i = 0; i < 10 && done != 2; i++) {
        done = 0;
        done += p_corotls_session_handshake(c) == COROTLS_OK;
        size_t n = p_corotls_session_out_read(c, buf, sizeof buf);
        p_corotls_session_feed(s, buf, n, NULL);
        done += p_corotls_session_handshake(s) == COROTLS_OK;
        n = p_corotls_session_out_read(s, buf, sizeof buf);
        p_corotls_session_feed(c, buf, n, NULL);
    }
    CHECK(done == 2, "an in-memory handshake completes");
    p_corotls_session_free(c);
    p_corotls_session_free(s);
    p_corotls_conf_free(client);
    p_corotls_conf_free(server);
}

TEST(libcorotls_loads_and_unloads_cleanly)
{
    const char *so = getenv("UNLOAD_LIBCOROTLS");
    REQUIRE(so != NULL, "UNLOAD_LIBCOROTLS names libcorotls.so");
    for (int round = 1; round <= 3; round++) {
        void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
        REQUIRE(h != NULL, "round %d: dlopen: %s", round, dlerror());
        use_library(h);
        CHECK(dlclose(h) == 0, "round %d: dlclose", round);
        void *still = dlopen(so, RTLD_NOW | RTLD_NOLOAD);
        CHECK(still == NULL, "round %d: the library is unloaded", round);
        if (still != NULL)
            dlclose(still);
        char what[64];
        snprintf(what, sizeof what, "libcorotls.so round %d", round);
        no_leak(what);
    }
}

/* ------------------------------------------------------------ silly tls.so */

/* silly's host functions, as stubs: nothing here sends. */
void *silly_malloc(size_t sz) { return malloc(sz); }
void silly_free(void *p) { free(p); }
enum silly_log_level silly_log_get_level(void) { return SILLY_LOG_ERROR; }
void silly_log_write(enum silly_log_level level, const char *buf, size_t len)
{
    (void)level;
    fwrite(buf, 1, len, stderr);
}
int silly_tcp_send(silly_socket_id_t sid, uint8_t *buff, size_t sz, void (*freex)(void *))
{
    (void)sid;
    (void)sz;
    if (freex)
        freex(buff);
    else
        free(buff);
    return 0;
}
void silly_error_table(lua_State *L) { lua_newtable(L); }
void silly_push_error(lua_State *L, int stk, int code)
{
    (void)stk;
    lua_pushfstring(L, "error (%d)", code);
}

static const char script[] =
    "local ctx = require 'silly.tls.ctx'\n"
    "local tls = require 'silly.tls.tls'\n"
    "local f = assert(io.open(CERTDIR .. '/leaf.crt')); local crt = f:read('a'); f:close()\n"
    "f = assert(io.open(CERTDIR .. '/leaf.key')); local key = f:read('a'); f:close()\n"
    "local s = assert(ctx.server({{cert = crt, key = key}}, nil, '\\2h2'))\n"
    "local c = assert(ctx.client())\n"
    "local t = tls.open(c, 7, 'localhost', '\\2h2')\n"
    "assert(tls.handshake(t) == -1)\n"
    "tls.close(t)\n"
    "ctx.free(s); ctx.free(c)\n";

TEST(silly_tls_so_loads_and_unloads_cleanly)
{
    const char *dir = getenv("UNLOAD_SILLY_MODDIR");
    REQUIRE(dir != NULL, "UNLOAD_SILLY_MODDIR names the luaclib directory of tls.so");
    char so[600];
    snprintf(so, sizeof so, "%s/silly/tls/tls.so", dir);
    for (int round = 1; round <= 3; round++) {
        lua_State *L = luaL_newstate();
        REQUIRE(L != NULL, "lua state");
        luaL_openlibs(L);
        lua_getglobal(L, "package");
        lua_pushfstring(L, "%s/?.so", dir);
        lua_setfield(L, -2, "cpath");
        lua_pop(L, 1);
        lua_pushstring(L, certdir);
        lua_setglobal(L, "CERTDIR");
        int rc = luaL_dostring(L, script);
        CHECK(rc == LUA_OK, "round %d: the script runs (%s)", round, rc == LUA_OK ? "ok" : lua_tostring(L, -1));
        void *loaded = dlopen(so, RTLD_NOW | RTLD_NOLOAD);
        CHECK(loaded != NULL, "round %d: tls.so is loaded", round);
        if (loaded != NULL)
            dlclose(loaded);
        lua_close(L); /* unloads tls.so, as silly does at exit */
        void *still = dlopen(so, RTLD_NOW | RTLD_NOLOAD);
        CHECK(still == NULL, "round %d: tls.so is unloaded by lua_close", round);
        if (still != NULL)
            dlclose(still);
        char what[64];
        snprintf(what, sizeof what, "silly tls.so round %d", round);
        no_leak(what);
    }
}

int main(void)
{
    const char *d = getenv("COROTLS_CERTDIR");
    snprintf(certdir, sizeof certdir, "%s", d ? d : "target/certs");
    /* libssl stays loaded, as in silly (which links it). */
    OPENSSL_init_ssl(0, NULL);
    return harness_run_all();
}
