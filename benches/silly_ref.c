/*
 * silly_ref: a C reference of silly's own TLS module (luaclib-src/ltls.c)
 * over raw OpenSSL, written from /work/shared/spec/silly.md §2 (not
 * silly's code), for benches/silly_echo.c: memory BIOs with
 * mem_eof_return -1; push = BIO_write, silly_free, SSL_read until <= 0 into
 * a plaintext buffer growing 1.5x (BUF_SIZE 1024); write = ERR_clear_error,
 * SSL_write, flush (BIO_pending, silly_malloc, BIO_read, silly_tcp_send);
 * handshake = ERR_clear_error, SSL_do_handshake, flush; read(n) from the
 * buffer.  It exports the same luaopen_ functions as our shim (tls.so and a
 * ctx.so link), so one driver loads either.  Server ctx: one certificate,
 * no SNI, no ALPN, no cipher list (the benchmark uses none).
 */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "silly_api.h"

#define BUF_SIZE 1024
#define EXPORT __attribute__((visibility("default")))

struct ctx {
	SSL_CTX *ssl_ctx;
	int server;
};

struct tls {
	silly_socket_id_t fd;
	SSL *ssl;
	BIO *in_bio, *out_bio;
	uint8_t *buf;
	int offset, size, cap;
};

static int ctx_gc(lua_State *L)
{
	struct ctx *c = luaL_checkudata(L, 1, "ref.ctx");
	if (c->ssl_ctx) {
		SSL_CTX_free(c->ssl_ctx);
		c->ssl_ctx = NULL;
	}
	return 0;
}

static struct ctx *new_ctx(lua_State *L, int server)
{
	struct ctx *c = lua_newuserdatauv(L, sizeof *c, 0);
	c->ssl_ctx = SSL_CTX_new(TLS_method());
	c->server = server;
	luaL_setmetatable(L, "ref.ctx");
	return c;
}

static int lctx_client(lua_State *L)
{
	new_ctx(L, 0);
	return 1;
}

/* ctx.server({{cert=PEM, key=PEM}}) */
static int lctx_server(lua_State *L)
{
	size_t cl, kl;
	lua_geti(L, 1, 1);
	lua_getfield(L, -1, "cert");
	const char *cert = luaL_checklstring(L, -1, &cl);
	lua_getfield(L, -2, "key");
	const char *key = luaL_checklstring(L, -1, &kl);
	struct ctx *c = new_ctx(L, 1);
	SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_1_VERSION);
	BIO *b = BIO_new_mem_buf(cert, (int)cl);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	b = BIO_new_mem_buf(key, (int)kl);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	if (x == NULL || k == NULL || SSL_CTX_use_certificate(c->ssl_ctx, x) != 1 ||
	    SSL_CTX_use_PrivateKey(c->ssl_ctx, k) != 1 || SSL_CTX_check_private_key(c->ssl_ctx) != 1)
		return luaL_error(L, "ctx.server: bad certificate or key");
	X509_free(x);
	EVP_PKEY_free(k);
	return 1;
}

static int lctx_free(lua_State *L)
{
	return ctx_gc(L);
}

static struct tls *check_tls(lua_State *L)
{
	return luaL_checkudata(L, 1, "ref.tls");
}

static int tls_gc(lua_State *L)
{
	struct tls *t = check_tls(L);
	if (t->ssl) {
		SSL_free(t->ssl);
		t->ssl = NULL;
	}
	silly_free(t->buf);
	t->buf = NULL;
	return 0;
}

/* tls.open(ctx, fd, hostname?) */
static int ltls_open(lua_State *L)
{
	struct ctx *c = luaL_checkudata(L, 1, "ref.ctx");
	silly_socket_id_t fd = luaL_checkinteger(L, 2);
	const char *host = lua_tostring(L, 3);
	struct tls *t = lua_newuserdatauv(L, sizeof *t, 0);
	memset(t, 0, sizeof *t);
	t->fd = fd;
	t->ssl = SSL_new(c->ssl_ctx);
	t->in_bio = BIO_new(BIO_s_mem());
	t->out_bio = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(t->in_bio, -1);
	BIO_set_mem_eof_return(t->out_bio, -1);
	SSL_set_bio(t->ssl, t->in_bio, t->out_bio);
	if (c->server)
		SSL_set_accept_state(t->ssl);
	else {
		if (host)
			SSL_set_tlsext_host_name(t->ssl, host);
		SSL_set_connect_state(t->ssl);
	}
	luaL_setmetatable(L, "ref.tls");
	return 1;
}

static int ltls_close(lua_State *L)
{
	return tls_gc(L);
}

/* Room for at least BUF_SIZE more bytes; compact only when growing. */
static void reserve(struct tls *t)
{
	if (t->cap - t->size >= BUF_SIZE)
		return;
	int used = t->size - t->offset;
	if (t->offset > 0) {
		memmove(t->buf, t->buf + t->offset, (size_t)used);
		t->offset = 0;
		t->size = used;
	}
	if (t->cap - t->size >= BUF_SIZE)
		return;
	int cap = t->cap == 0 ? BUF_SIZE : t->cap;
	while (cap - t->size < BUF_SIZE)
		cap = cap * 3 / 2;
	uint8_t *nb = silly_malloc((size_t)cap);
	if (t->size > 0)
		memcpy(nb, t->buf, (size_t)t->size);
	silly_free(t->buf);
	t->buf = nb;
	t->cap = cap;
}

/* tls.push(t, lightuserdata, size) -> buffered size */
static int ltls_push(lua_State *L)
{
	struct tls *t = check_tls(L);
	uint8_t *p = lua_touserdata(L, 2);
	int n = (int)luaL_checkinteger(L, 3);
	BIO_write(t->in_bio, p, n);
	silly_free(p);
	for (;;) {
		reserve(t);
		int r = SSL_read(t->ssl, t->buf + t->size, t->cap - t->size);
		if (r <= 0)
			break;
		t->size += r;
	}
	lua_pushinteger(L, t->size - t->offset);
	return 1;
}

static int flush(struct tls *t)
{
	int n = (int)BIO_pending(t->out_bio);
	if (n <= 0)
		return 0;
	uint8_t *dat = silly_malloc((size_t)n);
	BIO_read(t->out_bio, dat, n);
	return silly_tcp_send(t->fd, dat, (size_t)n, NULL);
}

static int ltls_handshake(lua_State *L)
{
	struct tls *t = check_tls(L);
	ERR_clear_error();
	int r = SSL_do_handshake(t->ssl), ret;
	if (r == 1) {
		const unsigned char *a = NULL;
		unsigned int al = 0;
		SSL_get0_alpn_selected(t->ssl, &a, &al);
		lua_pushinteger(L, 1);
		lua_pushlstring(L, (const char *)a, al);
	} else {
		int e = SSL_get_error(t->ssl, r);
		lua_pushinteger(L, e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? -1 : 0);
		lua_pushnil(L);
	}
	if ((ret = flush(t)) < 0) {
		lua_pushinteger(L, 0);
		silly_push_error(L, lua_upvalueindex(1), -ret);
		return 2;
	}
	return 2;
}

/* tls.read(t, n) -> exactly n bytes or nil, remaining size */
static int ltls_read(lua_State *L)
{
	struct tls *t = check_tls(L);
	lua_Integer n = luaL_checkinteger(L, 2);
	int have = t->size - t->offset;
	if (n <= 0 || n > have) {
		lua_pushnil(L);
	} else {
		lua_pushlstring(L, (const char *)t->buf + t->offset, (size_t)n);
		t->offset += (int)n;
		if (t->offset == t->size)
			t->offset = t->size = 0;
	}
	lua_pushinteger(L, t->size - t->offset);
	return 2;
}

/* tls.write(t, string) -> true, nil */
static int ltls_write(lua_State *L)
{
	struct tls *t = check_tls(L);
	size_t n;
	const char *d = luaL_checklstring(L, 2, &n);
	ERR_clear_error();
	if (n > 0 && SSL_write(t->ssl, d, (int)n) <= 0) {
		lua_pushboolean(L, 0);
		lua_pushliteral(L, "SSL_write failed");
		return 2;
	}
	int ret = flush(t);
	if (ret < 0) {
		lua_pushboolean(L, 0);
		silly_push_error(L, lua_upvalueindex(1), -ret);
		return 2;
	}
	lua_pushboolean(L, 1);
	lua_pushnil(L);
	return 2;
}

static int ltls_size(lua_State *L)
{
	struct tls *t = check_tls(L);
	lua_pushinteger(L, t->size - t->offset);
	return 1;
}

static void metatable(lua_State *L, const char *name, lua_CFunction gc)
{
	luaL_newmetatable(L, name);
	lua_pushcfunction(L, gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
}

EXPORT int luaopen_silly_tls_ctx(lua_State *L)
{
	static const luaL_Reg f[] = {{"client", lctx_client}, {"server", lctx_server}, {"free", lctx_free}, {NULL, NULL}};
	luaL_newlib(L, f);
	metatable(L, "ref.ctx", ctx_gc);
	return 1;
}

EXPORT int luaopen_silly_tls_tls(lua_State *L)
{
	static const luaL_Reg f[] = {{"open", ltls_open},   {"close", ltls_close},         {"read", ltls_read},
				     {"write", ltls_write}, {"handshake", ltls_handshake}, {"push", ltls_push},
				     {"size", ltls_size},   {NULL, NULL}};
	luaL_newlibtable(L, f);
	silly_error_table(L);
	luaL_setfuncs(L, f, 1);
	metatable(L, "ref.tls", tls_gc);
	return 1;
}
