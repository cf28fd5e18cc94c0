/*
 * silly_tls.c -- silly's `silly.tls.ctx` and `silly.tls.tls` Lua modules
 * over the corotls sans-IO session API.  (One file over 600 lines on
 * purpose: both modules share the ctx userdata, whose conf a tls object
 * keeps, and the error helpers; the rules below bind every function here.)
 *
 * One shared object (tls.so, with ctx.so as a link to it) exports
 * luaopen_silly_tls_ctx and luaopen_silly_tls_tls.  Dropped into silly's
 * luaclib/silly/tls/ it replaces the built-in modules that
 * lualib/silly/net/tls.lua uses, with the same Lua-visible contract:
 * functions, return values, error strings, buffer ownership.
 *
 * Rules this file keeps:
 *  - Lua errors longjmp.  Every argument is checked, and every Lua object
 *    that may need memory (userdata, strings on the stack) is created,
 *    before a corotls call; no Lua call that can raise happens while a
 *    corotls object is owned only by a C local.
 *  - A buffer received by push was allocated with silly_malloc: it is
 *    released with silly_free on every path, errors included.
 *  - Ciphertext goes out only through silly_tcp_send (one call per
 *    handshake/write), which takes ownership of the silly_malloc'ed buffer.
 *  - A tls object holds its own reference to the configuration, so freeing
 *    or collecting a ctx (listener:reload) never invalidates a connection.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "corotls.h"
#include "silly_api.h"

#define EXPORT __attribute__((visibility("default")))

#define META_CTX "silly.tls.ctx"
#define META_TLS "silly.tls.tls"
#define UPVAL_ERROR_TABLE (1)

/* ------------------------------------------------------------ objects */

/* A userdata is live while `meta` points at its tag; free/close clear it,
 * after which every call but free/close/__gc raises a type error. */
static const char ctx_tag = 'C';
static const char tls_tag = 'T';

struct lctx {
	const void *meta;
	corotls_conf *conf; /* our reference; sessions hold their own */
	int verify;         /* client ctx built with {verify = true} */
};

struct ltls {
	const void *meta;
	silly_socket_id_t fd;
	corotls_session *s;
};

/* The userdata at `idx` if it carries our metatable, else NULL. */
static void *to_object(lua_State *L, int idx, const char *meta)
{
	return luaL_testudata(L, idx, meta);
}

static struct lctx *check_ctx(lua_State *L, int idx)
{
	struct lctx *c = to_object(L, idx, META_CTX);
	if (c == NULL || c->meta != &ctx_tag)
		luaL_typeerror(L, idx, META_CTX);
	return c;
}

static struct ltls *check_tls(lua_State *L, int idx)
{
	struct ltls *t = to_object(L, idx, META_TLS);
	if (t == NULL || t->meta != &tls_tag)
		luaL_typeerror(L, idx, META_TLS);
	return t;
}

/* A new, inert ctx userdata (freeing it does nothing until it is armed). */
static struct lctx *new_ctx(lua_State *L)
{
	struct lctx *c = lua_newuserdatauv(L, sizeof(*c), 0);
	memset(c, 0, sizeof(*c));
	luaL_setmetatable(L, META_CTX);
	return c;
}

/* ------------------------------------------------------------ logging */

static void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void log_error(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;
	if (SILLY_LOG_ERROR < silly_log_get_level())
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	if ((size_t)n >= sizeof(buf)) { /* truncated: keep the line ending */
		n = (int)sizeof(buf) - 1;
		buf[n - 1] = '\n';
	}
	silly_log_write(SILLY_LOG_ERROR, buf, (size_t)n);
}

static unsigned long long fd_num(const struct ltls *t)
{
	return (unsigned long long)t->fd;
}

/* ------------------------------------------------------------ errors */

static void push_error(lua_State *L, int code)
{
	silly_push_error(L, lua_upvalueindex(UPVAL_ERROR_TABLE), code);
}

/* The silly error for a failed session call, logged like the built-in
 * module logs OpenSSL errors: "[tls] openssl fd:<fd> error: <reason>". */
static void push_session_error(lua_State *L, struct ltls *t, int rc)
{
	switch (rc) {
	case COROTLS_CLOSED:
	case COROTLS_EOF:
		push_error(L, EXEOF);
		return;
	case COROTLS_ERR_TLS:
	case COROTLS_ERR_VERIFY:
		log_error("[tls] openssl fd:%llu error: %s\n", fd_num(t),
			  corotls_session_error(t->s));
		break;
	case COROTLS_WANT_READ:
	case COROTLS_WANT_WRITE:
		log_error("[tls] openssl fd:%llu error: the handshake is not complete\n",
			  fd_num(t));
		break;
	default:
		log_error("[tls] openssl fd:%llu error: %s: %s\n", fd_num(t),
			  corotls_result_name(rc), corotls_session_error(t->s));
		break;
	}
	push_error(L, EXTLS);
}

/* Messages of the built-in module (ltls.c), keyed by corotls' reasons
 * (never by message text). */
static const char *legacy_conf_error(corotls_reason reason)
{
	switch (reason) {
	case COROTLS_REASON_CHAIN_CERT_REJECTED:
		return "SSL_CTX_add_extra_chain_cert fail";
	case COROTLS_REASON_CERT_REJECTED:
		return "SSL_CTX_use_certificate fail";
	case COROTLS_REASON_CERT_PARSE:
		return "PEM_read_bio_X509 fail";
	case COROTLS_REASON_KEY_MISMATCH:
		return "SSL_CTX_check_private_key fail";
	case COROTLS_REASON_KEY_REJECTED:
		return "SSL_CTX_use_PrivateKey fail";
	case COROTLS_REASON_KEY_PARSE:
	case COROTLS_REASON_KEY_PASSWORD:
		return "PEM_read_bio_PrivateKey fail";
	case COROTLS_REASON_CIPHER_LIST:
		return "SSL_CTX_set_cipher_list";
	case COROTLS_REASON_NOMEM:
		return "SSL_CTX_new fail";
	default:
		return NULL;
	}
}

/* Copy corotls' last error for this thread into `buf`, and its reason. */
static corotls_reason save_last_error(char *buf, size_t cap)
{
	snprintf(buf, cap, "%s", corotls_last_error());
	return corotls_last_reason(NULL);
}

/* ------------------------------------------------------------ ctx */

/* ctx.client([opts]) -> ctx | nil, err
 *
 * Without opts (what tls.lua does) the client does not verify the server,
 * exactly like the built-in module.  Extension: opts = { verify = true,
 * ca = "<PEM>", cafile = "<path>" } verifies the server against `ca` /
 * `cafile` (the system store when neither is given), and tls.open checks
 * the certificate against its hostname argument. */
static int lctx_client(lua_State *L)
{
	int verify = 0;
	const char *ca = NULL, *cafile = NULL;
	size_t calen = 0;
	corotls_conf_builder *b = NULL;
	corotls_conf *conf = NULL;
	struct lctx *c;
	char err[512];
	int rc;

	if (!lua_isnoneornil(L, 1)) {
		luaL_checktype(L, 1, LUA_TTABLE);
		lua_settop(L, 1);
		lua_getfield(L, 1, "verify"); /* 2 */
		lua_getfield(L, 1, "ca");     /* 3 */
		lua_getfield(L, 1, "cafile"); /* 4 */
		verify = lua_toboolean(L, 2);
		if (!lua_isnil(L, 3) && lua_type(L, 3) != LUA_TSTRING)
			luaL_argerror(L, 1, "field 'ca' must be a PEM string");
		if (!lua_isnil(L, 4) && lua_type(L, 4) != LUA_TSTRING)
			luaL_argerror(L, 1, "field 'cafile' must be a path string");
		ca = lua_tolstring(L, 3, &calen);
		cafile = lua_tostring(L, 4);
	}
	c = new_ctx(L);

	err[0] = '\0';
	rc = corotls_conf_builder_new(COROTLS_CLIENT, &b);
	if (rc == COROTLS_OK)
		rc = corotls_conf_builder_set_verify(b, verify ? COROTLS_VERIFY_PEER : COROTLS_VERIFY_NONE);
	/* The documented extension checks the name given to tls.open, and the
	 * chain alone without one: corotls' explicit chain-only opt-out. */
	if (rc == COROTLS_OK && verify)
		rc = corotls_conf_builder_set_verify_name(b, false);
	if (rc == COROTLS_OK && verify && ca != NULL)
		rc = corotls_conf_builder_add_ca_pem(b, (const uint8_t *)ca, calen);
	if (rc == COROTLS_OK && verify && cafile != NULL)
		rc = corotls_conf_builder_add_ca_file(b, cafile);
	if (rc == COROTLS_OK && verify && ca == NULL && cafile == NULL)
		rc = corotls_conf_builder_add_system_ca(b);
	if (rc == COROTLS_OK)
		rc = corotls_conf_builder_build(b, &conf);
	if (rc != COROTLS_OK)
		(void)save_last_error(err, sizeof(err));
	corotls_conf_builder_free(b);

	if (rc != COROTLS_OK) {
		lua_pushnil(L);
		lua_pushstring(L, verify ? err : "SSL_CTX_new fail");
		return 2;
	}
	c->conf = conf;
	c->verify = verify;
	c->meta = &ctx_tag;
	return 1;
}

/* ctx.server(certs, ciphers?, alpn_wire?) -> ctx | nil, err
 *
 * certs = { {cert = "<leaf PEM, then chain>", key = "<key PEM>"}, ... };
 * the order is the SNI order, certs[1] the default. */
static int lctx_server(lua_State *L)
{
	lua_Integer n, i;
	const char *ciphers = NULL;
	const char *alpn = NULL;
	size_t alpn_len = 0;
	int pairs, rc, bad_ciphers = 0;
	corotls_conf_builder *b = NULL;
	corotls_conf *conf = NULL;
	struct lctx *c;
	const char *legacy = NULL;
	corotls_reason reason = COROTLS_REASON_NONE;
	char err[512];

	luaL_checktype(L, 1, LUA_TTABLE);
	n = luaL_len(L, 1);
	if (!lua_isnoneornil(L, 2))
		ciphers = luaL_checkstring(L, 2);
	alpn = luaL_optlstring(L, 3, NULL, &alpn_len);
	lua_settop(L, 3);
	if (n <= 0) {
		lua_pushnil(L);
		lua_pushliteral(L, "no certificate");
		return 2;
	}
	if (n > 100000)
		return luaL_argerror(L, 1, "too many certificates");
	/* Keep every cert/key string on the stack: they stay alive (and are
	 * not converted again) while corotls copies them. */
	luaL_checkstack(L, (int)(2 * n + 8), "too many certificates");
	pairs = lua_gettop(L) + 1;
	for (i = 1; i <= n; i++) {
		static const char *const field[2] = { "cert", "key" };
		int k;
		if (lua_geti(L, 1, i) != LUA_TTABLE)
			return luaL_argerror(L, 1, lua_pushfstring(L,
				"certs[%d] must be a table, got %s", (int)i,
				luaL_typename(L, -1)));
		for (k = 0; k < 2; k++) {
			lua_getfield(L, -1 - k, field[k]);
			if (!lua_isstring(L, -1))
				return luaL_argerror(L, 1, lua_pushfstring(L,
					"certs[%d].%s must be a string, got %s",
					(int)i, field[k], luaL_typename(L, -1)));
			lua_tostring(L, -1); /* a number becomes its string */
		}
		lua_remove(L, -3); /* the entry table */
	}
	c = new_ctx(L);

	err[0] = '\0';
	rc = corotls_conf_builder_new(COROTLS_SERVER, &b);
	for (i = 0; rc == COROTLS_OK && i < n; i++) {
		size_t cert_len, key_len;
		const char *cert = lua_tolstring(L, pairs + 2 * (int)i, &cert_len);
		const char *key = lua_tolstring(L, pairs + 2 * (int)i + 1, &key_len);
		rc = corotls_conf_builder_add_identity_pem(b, (const uint8_t *)cert, cert_len,
							   (const uint8_t *)key, key_len, NULL);
	}
	/* The built-in module reports certificate errors before cipher-list
	 * errors: remember a bad list and let the build report the rest. */
	if (rc == COROTLS_OK && ciphers != NULL &&
	    corotls_conf_builder_set_ciphers(b, ciphers) != COROTLS_OK) {
		reason = save_last_error(err, sizeof(err));
		bad_ciphers = 1;
	}
	if (rc == COROTLS_OK && alpn != NULL && alpn_len > 0)
		rc = corotls_conf_builder_set_alpn_wire(b, (const uint8_t *)alpn, alpn_len);
	if (rc == COROTLS_OK)
		rc = corotls_conf_builder_build(b, &conf);
	if (rc != COROTLS_OK)
		reason = save_last_error(err, sizeof(err));
	corotls_conf_builder_free(b);
	if (rc == COROTLS_OK && bad_ciphers) {
		corotls_conf_free(conf);
		conf = NULL;
		rc = COROTLS_ERR_ARG;
	}

	if (rc != COROTLS_OK) {
		legacy = legacy_conf_error(reason);
		log_error("[tls] server certificate setup failed: %s\n", err);
		lua_pushnil(L);
		lua_pushstring(L, legacy != NULL ? legacy : err);
		return 2;
	}
	c->conf = conf;
	c->meta = &ctx_tag;
	return 1;
}

/* ctx.free(ctx) and __gc: drop this handle's reference.  Connections
 * opened from the ctx keep working.  A second call does nothing. */
static int lctx_free(lua_State *L)
{
	struct lctx *c = to_object(L, 1, META_CTX);
	if (c == NULL)
		return luaL_typeerror(L, 1, META_CTX);
	if (c->meta != NULL) {
		c->meta = NULL;
		corotls_conf_free(c->conf);
		c->conf = NULL;
	}
	return 0;
}

/* ------------------------------------------------------------ tls */

/* tls.open(ctx, fd, hostname?, alpn_wire?) -> tls
 * hostname (SNI) and alpn_wire (the ALPN offer) apply to client ctxs. */
static int ltls_open(lua_State *L)
{
	struct lctx *c = check_ctx(L, 1);
	lua_Integer fd = luaL_checkinteger(L, 2);
	const char *host = lua_tostring(L, 3);
	size_t alpn_len = 0;
	const char *alpn = luaL_optlstring(L, 4, NULL, &alpn_len);
	struct ltls *t;
	int rc;

	t = lua_newuserdatauv(L, sizeof(*t), 0);
	memset(t, 0, sizeof(*t));
	luaL_setmetatable(L, META_TLS);
	t->fd = (silly_socket_id_t)fd;
	if (corotls_session_new(c->conf, &t->s) != COROTLS_OK)
		return luaL_error(L, "SSL_new fail");
	/* From here the userdata owns the session: a later error frees it
	 * through __gc. */
	t->meta = &tls_tag;
	if (corotls_conf_role(c->conf) != COROTLS_CLIENT)
		return 1;
	if (host != NULL && host[0] != '\0') {
		/* Like SSL_set_tlsext_host_name in the built-in module, a name
		 * that cannot be sent (too long, or an IP address, which RFC
		 * 6066 keeps out of SNI) is simply not sent. */
		(void)corotls_session_set_sni(t->s, host);
		if (c->verify) {
			rc = corotls_session_set_verify_host(t->s, host);
			if (rc != COROTLS_OK)
				return luaL_error(L, "invalid hostname to verify: %s",
						  corotls_session_error(t->s));
		}
	}
	if (alpn != NULL && alpn_len > 0) {
		rc = corotls_session_set_alpn_wire(t->s, (const uint8_t *)alpn, alpn_len);
		if (rc != COROTLS_OK)
			return luaL_error(L, "invalid ALPN protocol list: %s",
					  corotls_session_error(t->s));
	}
	return 1;
}

/* tls.close(tls) and __gc: free the session (no close_notify, as silly
 * never sends one).  A second call does nothing. */
static int ltls_close(lua_State *L)
{
	struct ltls *t = to_object(L, 1, META_TLS);
	if (t == NULL)
		return luaL_typeerror(L, 1, META_TLS);
	if (t->meta != NULL) {
		t->meta = NULL;
		corotls_session_free(t->s);
		t->s = NULL;
	}
	return 0;
}

static size_t plain_size(const struct ltls *t)
{
	return corotls_session_plain_size(t->s);
}

/* tls.push(tls, ptr, size) -> buffered plaintext size
 * `ptr` is a light userdata allocated with silly_malloc: always freed. */
static int ltls_push(lua_State *L)
{
	void *ptr = lua_type(L, 2) == LUA_TLIGHTUSERDATA ? lua_touserdata(L, 2) : NULL;
	int isint = 0;
	lua_Integer size = lua_tointegerx(L, 3, &isint);
	struct ltls *t = to_object(L, 1, META_TLS);
	int bad_tls = t == NULL || t->meta != &tls_tag, bad_size = !isint || size < 0;
	size_t buffered = 0;

	/* Decrypts every complete record and drives the handshake; the
	 * handshake's reply waits for the next handshake()/write().  A fatal
	 * error is latched for handshake() to report (as upstream, push itself
	 * never fails); a failed session takes no more ciphertext, and what it
	 * decrypted before stays readable. */
	if (!bad_tls && !bad_size)
		corotls_session_feed(t->s, ptr, ptr != NULL ? (size_t)size : 0, &buffered);
	/* The buffer is ours on every path, errors included. */
	if (ptr != NULL)
		silly_free(ptr);
	if (bad_tls)
		return luaL_typeerror(L, 1, META_TLS);
	if (bad_size)
		return luaL_argerror(L, 3, "size must be a non-negative integer");
	lua_pushinteger(L, (lua_Integer)buffered);
	return 1;
}

/* Send all pending ciphertext with one silly_tcp_send: 0 or -errno. */
static int flush(struct ltls *t)
{
	size_t n = corotls_session_out_pending(t->s), got;
	uint8_t *buf;
	if (n == 0)
		return 0;
	buf = silly_malloc(n);
	if (buf == NULL)
		return -ENOMEM;
	got = corotls_session_out_read(t->s, buf, n);
	return silly_tcp_send(t->fd, buf, got, NULL);
}

/* tls.handshake(tls) -> 1, alpn | -1, nil | 0, err */
static int ltls_handshake(lua_State *L)
{
	struct ltls *t = check_tls(L, 1);
	int rc = corotls_session_handshake(t->s);
	int ret;
	if (rc == COROTLS_OK) {
		lua_pushinteger(L, 1);
		lua_pushstring(L, corotls_session_alpn(t->s)); /* "" when none */
	} else if (rc == COROTLS_WANT_READ || rc == COROTLS_WANT_WRITE) {
		lua_pushinteger(L, -1);
		lua_pushnil(L);
	} else {
		lua_pushinteger(L, 0);
		push_session_error(L, t, rc);
	}
	/* Always flush: the next flight, or the alert of a failure. */
	ret = flush(t);
	if (ret < 0) {
		lua_pop(L, 2);
		lua_pushinteger(L, 0);
		push_error(L, -ret);
	}
	return 2;
}

/* The first n buffered bytes, or, with delim >= 0, everything up to and
 * including the first delimiter; nil when that much is not buffered.  One
 * copy: from the session's buffer into the Lua string. */
static void read_prefix(lua_State *L, struct ltls *t, size_t n, int delim)
{
	const uint8_t *data = NULL, *x;
	size_t len = 0;
	/* An empty buffer answers nil without touching TLS, as upstream. */
	if (plain_size(t) == 0 || corotls_session_peek(t->s, &data, &len) != COROTLS_OK) {
		lua_pushnil(L);
		return;
	}
	if (delim >= 0) {
		x = memchr(data, delim, len);
		n = x != NULL ? (size_t)(x - data) + 1 : len + 1;
	}
	if (n > len) {
		lua_pushnil(L);
		return;
	}
	lua_pushlstring(L, (const char *)data, n);
	corotls_session_consume(t->s, n);
}

/* tls.read(tls, n | delim) -> data | nil, buffered size */
static int ltls_read(lua_State *L)
{
	struct ltls *t = check_tls(L, 1);
	switch (lua_type(L, 2)) {
	case LUA_TNUMBER: {
		lua_Integer n = lua_tointeger(L, 2);
		if (n <= 0)
			lua_pushnil(L);
		else
			read_prefix(L, t, (size_t)n, -1);
		break;
	}
	case LUA_TSTRING: {
		size_t len;
		const char *d = lua_tolstring(L, 2, &len);
		luaL_argcheck(L, len == 1, 2, "delimiter length must be 1");
		read_prefix(L, t, 0, (unsigned char)d[0]);
		break;
	}
	default:
		return luaL_error(L, "invalid read argument type");
	}
	lua_pushinteger(L, (lua_Integer)plain_size(t));
	return 2;
}

/* tls.write(tls, string | {string...}) -> true, nil | false, err */
static int ltls_write(lua_State *L)
{
	struct ltls *t = check_tls(L, 1);
	int first, last, i, rc, ret;

	switch (lua_type(L, 2)) {
	case LUA_TSTRING:
		first = last = 2;
		break;
	case LUA_TTABLE: {
		lua_Integer n = luaL_len(L, 2), k;
		luaL_argcheck(L, n > 0, 2, "table must not be empty");
		luaL_checkstack(L, (int)n + 4, "too many pieces");
		lua_settop(L, 2);
		for (k = 1; k <= n; k++) {
			lua_geti(L, 2, k);
			if (!lua_isstring(L, -1))
				return luaL_argerror(L, 2, lua_pushfstring(L,
					"piece %d: string expected, got %s", (int)k,
					luaL_typename(L, -1)));
			lua_tostring(L, -1); /* a number becomes its string */
		}
		first = 3;
		last = 2 + (int)n;
		break;
	}
	default:
		return luaL_error(L, "invalid data type");
	}

	for (i = first; i <= last; i++) {
		size_t len;
		const char *p = lua_tolstring(L, i, &len);
		if (len == 0)
			continue;
		rc = corotls_session_write(t->s, (const uint8_t *)p, len);
		if (rc != COROTLS_OK) {
			lua_pushboolean(L, 0);
			push_session_error(L, t, rc);
			return 2;
		}
	}
	ret = flush(t);
	lua_pushboolean(L, ret >= 0);
	if (ret < 0)
		push_error(L, -ret);
	else
		lua_pushnil(L);
	return 2;
}

/* tls.size(tls) -> buffered plaintext size */
static int ltls_size(lua_State *L)
{
	struct ltls *t = check_tls(L, 1);
	lua_pushinteger(L, (lua_Integer)plain_size(t));
	return 1;
}

/* ------------------------------------------------------------ modules */

static void new_metatable(lua_State *L, const char *name, lua_CFunction gc)
{
	/* The module table is at -1. */
	luaL_newmetatable(L, name);
	lua_pushvalue(L, -2);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
}

EXPORT int luaopen_silly_tls_ctx(lua_State *L)
{
	static const luaL_Reg funcs[] = {
		{ "client", lctx_client },
		{ "server", lctx_server },
		{ "free", lctx_free },
		{ NULL, NULL },
	};
	luaL_checkversion(L);
	luaL_newlibtable(L, funcs);
	luaL_setfuncs(L, funcs, 0);
	new_metatable(L, META_CTX, lctx_free);
	return 1;
}

EXPORT int luaopen_silly_tls_tls(lua_State *L)
{
	static const luaL_Reg funcs[] = {
		{ "open", ltls_open },
		{ "close", ltls_close },
		{ "read", ltls_read },
		{ "write", ltls_write },
		{ "handshake", ltls_handshake },
		{ "push", ltls_push },
		{ "size", ltls_size },
		{ NULL, NULL },
	};
	luaL_checkversion(L);
	luaL_newlibtable(L, funcs);
	silly_error_table(L);
	luaL_setfuncs(L, funcs, 1);
	new_metatable(L, META_TLS, ltls_close);
	return 1;
}
