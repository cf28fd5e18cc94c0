/*
 * resume_util.h -- helpers of the resumption tests: confs with resumption
 * settings, and one echo round trip over a conn that may resume.
 */
#ifndef COROTLS_C_TESTS_RESUME_UTIL_H
#define COROTLS_C_TESTS_RESUME_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "corotls.h"

#define RU_T 15000

/* A server conf: leaf.crt (and alt1.crt when `sni` is set) for TLS
 * version `v` only (COROTLS_TLS1_2 / _3, or 0 for both); `key` (80 bytes)
 * the ticket key when not NULL; tickets on unless `no_tickets`. */
corotls_conf *ru_server(int v, const uint8_t *key, int sni, int no_tickets);
/* A client conf verifying against ca.crt (`ca` overrides the file). */
corotls_conf *ru_client(const char *ca);

/* One echo round trip to 127.0.0.1:port: connect, SNI `name` (also the
 * name verified), with the resume key ("127.0.0.1", port) unless
 * `no_key`, importing `import` (len `ilen`) when not NULL, handshake,
 * send a line, read its echo (which also reads TLS 1.3 tickets).  When
 * `exp` is not NULL the session is exported into it (cap `*exp_len`,
 * size stored back).  Returns 1 resumed, 0 full handshake, -1 on failure
 * (diagnosed). */
int ru_echo(corotls_conf *cc, int port, const char *name, int no_key, const uint8_t *import, size_t ilen,
            uint8_t *exp, size_t *exp_len);

#endif
