/*
 * silly_api.h -- the few silly host functions the corotls silly face calls.
 *
 * silly (https://github.com/findstr/silly) exports these from its executable
 * (linked with -rdynamic); tls.so leaves them undefined and the dynamic
 * loader binds them when silly loads the module.  The prototypes restate
 * silly's src/silly.h (v0.7.x); the test fixture c_tests/silly/host.c
 * implements them for `make silly-check`.
 *
 * Ownership rules that matter:
 *  - silly_malloc / silly_free are silly's allocator (jemalloc's in normal
 *    builds).  A buffer silly hands to tls.push was allocated with
 *    silly_malloc and must be released with silly_free, never free().
 *  - silly_tcp_send ALWAYS takes ownership of `buff`, also when it fails;
 *    with freex == NULL the socket layer releases it with silly's allocator.
 *    It returns 0 or -EXCLOSED (the socket is gone).
 */
#ifndef COROTLS_SILLY_API_H
#define COROTLS_SILLY_API_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

typedef int64_t silly_socket_id_t;

enum silly_log_level {
	SILLY_LOG_DEBUG = 0,
	SILLY_LOG_INFO = 1,
	SILLY_LOG_WARN = 2,
	SILLY_LOG_ERROR = 3,
};

/* silly's error codes beyond errno (src/errnoex.h). */
#define EXCLOSED (10003) /* "Socket is closed (10003)" */
#define EXEOF (10004)    /* "End of file (10004)" */
#define EXTLS (10005)    /* "TLS error (10005)" */

void *silly_malloc(size_t sz);
void silly_free(void *ptr);

enum silly_log_level silly_log_get_level(void);
void silly_log_write(enum silly_log_level level, const char *buf, size_t len);

int silly_tcp_send(silly_socket_id_t sid, uint8_t *buff, size_t sz, void (*freex)(void *));

/* Push silly's error table (the interning cache of error strings). */
void silly_error_table(lua_State *L);
/* Push "<strerror(code) or silly's text> (<code>)" using the error table at
 * stack index `stk`; code 0 pushes nil. */
void silly_push_error(lua_State *L, int stk, int code);

#endif
