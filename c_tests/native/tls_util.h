/*
 * tls_util.h -- helpers shared by the native C tests: confs from the test
 * certificates, blocking-style drivers over corotls_conn with poll(2), an
 * echo server thread, and an in-memory pump between two sessions.
 */
#ifndef COROTLS_C_TESTS_TLS_UTIL_H
#define COROTLS_C_TESTS_TLS_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "corotls.h"

/* A server conf with one identity (files under the cert dir), or NULL. */
corotls_conf *util_server_conf(const char *cert, const char *key);
/* A client conf trusting ca.crt (verify on), or with verification off. */
corotls_conf *util_client_conf(int verify);

/* Poll fd for what r asks (WANT_READ/WANT_WRITE); 0 ready, -1 timeout. */
int util_wait(int fd, corotls_result r, int timeout_ms);

/* Drive a conn call until it stops asking to wait (or timeout_ms passes:
 * then COROTLS_TIMEOUT). */
corotls_result util_handshake(corotls_conn *c, int timeout_ms);
corotls_result util_write_all(corotls_conn *c, const void *data, size_t len, int timeout_ms);
/* Read exactly len bytes (or the first non-wait result). */
corotls_result util_read_n(corotls_conn *c, void *buf, size_t len, int timeout_ms);

/* TCP connect to 127.0.0.1:port and wrap in a client conn; when name is not
 * NULL it is the host to verify, and also the SNI name unless it is an IP
 * address.  Returns NULL on failure; *fd gets the socket. */
corotls_conn *util_connect(corotls_conf *conf, int port, const char *name, int *fd);

/* An echo server on its own thread: one poll(2) loop, corotls_conn per
 * client, echoes until the peer closes. */
struct echo_server {
    pthread_t thread;
    int lfd, port, stop_pipe[2];
    corotls_conf *conf;
    volatile int connections, failures;
};
int util_echo_start(struct echo_server *s, corotls_conf *conf);
void util_echo_stop(struct echo_server *s);

/* Move ciphertext between two sessions until neither has any to send;
 * `step` bytes at a time.  Returns the number of bytes moved. */
size_t util_pump(corotls_session *a, corotls_session *b, size_t step);

/* The thread's last error message mentions `needle` (else a diagnostic
 * line shows the message and 0 is returned). */
int says(const char *needle);

/* A deterministic byte pattern. */
void util_fill(uint8_t *p, size_t n, unsigned seed);

#endif
