/*
 * native_profile: the default profile against `openssl s_client` offering
 * one thing at a time.  A corotls server (builder defaults, RSA and ECDSA
 * certificates) takes only TLS 1.2 ECDHE with AES-GCM or ChaCha20-Poly1305
 * and the TLS 1.3 default suites, only groups X25519, P-256 and P-384,
 * prefers its own cipher order, and refuses TLS 1.0 and 1.1.  (The sslyze
 * and testssl.sh gates check the same from the outside.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corotls.h"
#include "harness.h"
#include "tls_util.h"

#define T 10000

/* What s_client printed up to its verify line. */
static char transcript[16384];

/* s_client with `extra` against port; 1 if the handshake completed, and
 * the negotiated cipher into cipher (from "Cipher is X"). */
static int s_client_handshake(int port, const char *const extra[], char *cipher, size_t cap)
{
    const char *args[16] = {"-servername", "localhost", "-verify_return_error", "-ign_eof"};
    int n = 4;
    for (int i = 0; extra[i] && n < 15; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    int in, out;
    pid_t pid = harness_spawn_s_client(port, args, &in, &out);
    if (pid <= 0)
        return 0;
    char *buf = transcript;
    /* Either the handshake completes or s_client exits with an error. */
    ssize_t got = harness_read_until(out, "Verify return code:", T, buf, sizeof transcript);
    int ok = got > 0 && strstr(buf, "Cipher is ") && !strstr(buf, "Cipher is (NONE)");
    cipher[0] = 0;
    const char *c = ok ? strstr(buf, "Cipher is ") : NULL;
    if (c)
        sscanf(c + 10, "%63s", cipher);
    (void)cap;
    close(in);
    close(out);
    harness_kill(pid);
    return ok;
}

static void profile_of(const char *cert, const char *key)
{
    struct echo_server es;
    corotls_conf *conf = util_server_conf(cert, key);
    REQUIRE(conf && util_echo_start(&es, conf) == 0, "echo server with %s", cert);
    char cipher[64];
    /* Refused: what the default profile does not offer. */
    const char *const refused[][5] = {
        {"-tls1_2", "-cipher", "AES128-SHA", NULL},                  /* static RSA, CBC */
        {"-tls1_2", "-cipher", "AES256-GCM-SHA384", NULL},           /* static RSA, no forward secrecy */
        {"-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA", NULL}, /* ECDHE, CBC */
        {"-tls1_2", "-cipher", "ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES256-SHA384", NULL},
        {"-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256", NULL},   /* finite-field DHE */
        {"-tls1_2", "-curves", "secp521r1", NULL},
        {"-tls1_3", "-curves", "X448:secp521r1", NULL},
        {"-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256", NULL},
        {"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", NULL},
        {"-tls1", "-cipher", "DEFAULT:@SECLEVEL=0", NULL},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        CHECK(!s_client_handshake(es.port, refused[i], cipher, sizeof cipher), "%s: s_client %s %s %s is refused", cert,
              refused[i][0], refused[i][1], refused[i][2]);
    /* Accepted, and the server's order wins: the client lists AES-128 first,
     * the server picks AES-256. */
    const char *const gcm[] = {"-tls1_2", "-cipher",
                               "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:"
                               "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES256-GCM-SHA384",
                               NULL};
    CHECK(s_client_handshake(es.port, gcm, cipher, sizeof cipher) && strstr(cipher, "AES256-GCM"),
          "%s: TLS 1.2 ECDHE AES-GCM, server order: %s", cert, cipher);
    const char *const chacha[] = {"-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-CHACHA20-POLY1305",
                                  NULL};
    CHECK(s_client_handshake(es.port, chacha, cipher, sizeof cipher) && strstr(cipher, "CHACHA20"),
          "%s: TLS 1.2 ECDHE ChaCha20-Poly1305: %s", cert, cipher);
    const char *const groups[] = {"-tls1_3", "-curves", "P-384", NULL};
    CHECK(s_client_handshake(es.port, groups, cipher, sizeof cipher), "%s: TLS 1.3 with P-384 only", cert);
    /* (In TLS 1.2 the client's groups also bound an ECDSA certificate's
     * curve, so P-256 is offered too, after X25519.) */
    const char *const x25519[] = {"-tls1_2", "-curves", "X25519:P-256", NULL};
    CHECK(s_client_handshake(es.port, x25519, cipher, sizeof cipher) && strstr(transcript, "Server Temp Key: X25519"),
          "%s: TLS 1.2 key exchange over X25519", cert);
    const char *const p256[] = {"-tls1_3", "-curves", "secp521r1:P-256", NULL};
    CHECK(s_client_handshake(es.port, p256, cipher, sizeof cipher) && strstr(transcript, "Server Temp Key: ECDH, prime256v1"),
          "%s: TLS 1.3 over P-256 when P-521 is offered first", cert);
    const char *const suites[] = {"-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384", NULL};
    CHECK(s_client_handshake(es.port, suites, cipher, sizeof cipher) && !strcmp(cipher, "TLS_AES_256_GCM_SHA384"),
          "%s: TLS 1.3, server order: %s", cert, cipher);
    util_echo_stop(&es);
    corotls_conf_free(conf);
}

TEST(default_profile_rsa)
{
    profile_of("leaf.crt", "leaf.key");
}

TEST(default_profile_ecdsa)
{
    profile_of("ec.crt", "ec.key");
}

int main(void)
{
    return harness_run_all();
}
