/*
 * native_settings: every setting is checked when it is given, and fails at
 * once with COROTLS_ERR_ARG and a message naming the offending part --
 * cipher and suite lists, groups, ports, SNI names, files that are not
 * regular files, ALPN clearing, required out-pointers, lengths no buffer
 * has -- and the default profile is what SECURITY.md says.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corotls.h"
#include "harness.h"
#include "loop_util.h"
#include "tls_util.h"

#define IS(r, want) ((r) == (want))

static corotls_conf_builder *builder(int role)
{
    corotls_conf_builder *b = NULL;
    corotls_conf_builder_new(role, &b);
    return b;
}

TEST(cipher_lists_are_checked_entry_by_entry)
{
    corotls_conf_builder *b = builder(COROTLS_SERVER);
    REQUIRE(b, "builder");
    struct {
        const char *list, *names;
    } refused[] = {
        {"eNULL", "'eNULL' selects eNULL"},
        {"aNULL", "'aNULL' selects aNULL"},
        {"aNULL:@SECLEVEL=0", "'aNULL'"},
        {"HIGH:@SECLEVEL=0", "@SECLEVEL=0"},
        {"EXPORT", "'EXPORT'"},
        {"RC4", "'RC4'"},
        {"ECDHE+AESGCM:NOT-A-CIPHER", "'NOT-A-CIPHER' is not a cipher name"},
        {"", "empty"},
        {"MD5", "does not encrypt"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        CHECK(IS(corotls_conf_builder_set_ciphers(b, refused[i].list), COROTLS_ERR_ARG) && says(refused[i].names),
              "set_ciphers(\"%s\") refused, naming %s", refused[i].list, refused[i].names);
    const char *accepted[] = {"ECDHE+AESGCM", "HIGH:!aNULL:!MD5", "HIGH:!aNULL:!RC4:!EXPORT", "ECDHE-RSA-AES128-GCM-SHA256"};
    for (size_t i = 0; i < sizeof accepted / sizeof *accepted; i++) {
        corotls_result r = corotls_conf_builder_set_ciphers(b, accepted[i]);
        CHECK(IS(r, COROTLS_OK), "set_ciphers(\"%s\") accepted: %s", accepted[i], r ? corotls_last_error() : "");
    }
    CHECK(IS(corotls_conf_builder_set_suites(b, ""), COROTLS_ERR_ARG) && says("empty"), "set_suites(\"\") refused");
    CHECK(IS(corotls_conf_builder_set_suites(b, "TLS_AES_128_GCM_SHA256:TLS_NOPE"), COROTLS_ERR_ARG) &&
              says("'TLS_NOPE' is not a TLS 1.3 suite"),
          "an unknown suite in a list is named");
    CHECK(IS(corotls_conf_builder_set_suites(b, "TLS_CHACHA20_POLY1305_SHA256"), COROTLS_OK), "one known suite");
    CHECK(IS(corotls_conf_builder_set_groups(b, "X25519:NOT-A-GROUP"), COROTLS_ERR_ARG) && says("'NOT-A-GROUP'"),
          "an unknown group is named");
    CHECK(IS(corotls_conf_builder_set_groups(b, ""), COROTLS_ERR_ARG) && says("empty"), "an empty group list");
    CHECK(IS(corotls_conf_builder_set_groups(b, "P-521:X25519"), COROTLS_OK), "groups P-521:X25519");
    CHECK(IS(corotls_conf_builder_set_groups(NULL, "X25519"), COROTLS_ERR_ARG) && says("builder is NULL"),
          "set_groups(NULL builder)");
    CHECK(IS(corotls_conf_builder_set_groups(b, NULL), COROTLS_ERR_ARG) && says("group list is NULL"),
          "set_groups(NULL list)");
    CHECK(IS(corotls_conf_builder_set_verify_name(NULL, false), COROTLS_ERR_ARG), "set_verify_name(NULL builder)");
    corotls_conf_builder_free(b);
}

/* A conf_new cipher list is checked the same way. */
TEST(conf_new_checks_its_cipher_list)
{
    corotls_conf *conf = NULL;
    CHECK(IS(corotls_conf_new(COROTLS_SERVER, harness_cert("leaf.crt"), harness_cert("leaf.key"), NULL, "aNULL", false,
                              &conf),
             COROTLS_ERR_ARG) &&
              conf == NULL && says("aNULL"),
          "conf_new with ciphers aNULL");
}

TEST(ports_are_1_to_65535_or_a_service_name)
{
    corotls_loop *l = NULL;
    REQUIRE(corotls_loop_new(&l) == COROTLS_OK, "loop");
    corotls_conf *cc = util_client_conf(0);
    struct lu_done d = {0};
    int fd = 99;
    const char *bad[] = {"99999", "65536", "4294967297", "0"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        corotls_result r = corotls_loop_connect(l, "127.0.0.1", bad[i], cc, 1000, lu_cb, &d, &fd);
        CHECK(IS(r, COROTLS_ERR_ARG) && says("out of range") && fd == -1 && d.calls == 0, "connect to port %s: %s",
              bad[i], corotls_result_name(r));
    }
    int lfd = 99;
    CHECK(IS(corotls_loop_listen(l, "127.0.0.1", "99999", NULL, &lfd), COROTLS_ERR_ARG) && says("out of range"),
          "listen on port 99999");
    CHECK(IS(corotls_loop_listen(l, "127.0.0.1", "0", NULL, &lfd), COROTLS_OK) && lfd >= 0,
          "listen on port 0 (an ephemeral port)");
    corotls_loop_free(l);
    corotls_conf_free(cc);
}

TEST(sni_must_be_a_dns_name)
{
    corotls_conf *cc = util_client_conf(1);
    corotls_session *s = NULL;
    REQUIRE(cc && corotls_session_new(cc, &s) == COROTLS_OK, "client session");
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    struct {
        const char *name, *why;
    } refused[] = {
        {"127.0.0.1", "IP address"},  {"::1", "IP address"}, {"bad\nname", "0x0a"}, {"bad\x7fname", "0x7f"},
        {"example.com.", "empty label"}, {"a b.example", "not a DNS name"}, {longname, "255"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        CHECK(IS(corotls_session_set_sni(s, refused[i].name), COROTLS_ERR_ARG) && says(refused[i].why),
              "SNI \"%.20s\" refused (%s)", refused[i].name, refused[i].why);
    CHECK(IS(corotls_session_set_sni(s, "xn--caf-dma.example"), COROTLS_OK), "an A-label is a DNS name");
    CHECK(IS(corotls_session_set_verify_host(s, "127.0.0.1"), COROTLS_OK), "an IP is verified, not sent");
    corotls_session_free(s);
    corotls_conf_free(cc);
}

/* A FIFO would block a reader forever; /dev/zero would be read until memory
 * runs out.  Both are refused before any read (the watchdog catches a
 * hang). */
TEST(loaders_take_regular_files_only)
{
    char dir[] = "/tmp/corotls-settings-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL, "temp dir");
    char fifo[128];
    snprintf(fifo, sizeof fifo, "%s/ca.pem", dir);
    REQUIRE(mkfifo(fifo, 0600) == 0, "mkfifo");
    corotls_conf_builder *b = builder(COROTLS_SERVER);
    const char *specials[] = {fifo, "/dev/zero", "/dev/null", "/tmp"};
    for (size_t i = 0; i < sizeof specials / sizeof *specials; i++) {
        const char *f = specials[i];
        CHECK(IS(corotls_conf_builder_add_ca_file(b, f), COROTLS_ERR_ARG) && says("not a regular file"), "CA file %s", f);
        CHECK(IS(corotls_conf_builder_add_identity_file(b, f, harness_cert("leaf.key"), NULL), COROTLS_ERR_ARG) &&
                  says("not a regular file"),
              "certificate file %s", f);
        CHECK(IS(corotls_conf_builder_add_identity_file(b, harness_cert("leaf.crt"), f, NULL), COROTLS_ERR_ARG) &&
                  says("not a regular file"),
              "key file %s", f);
    }
    corotls_conf *conf = NULL;
    CHECK(IS(corotls_conf_new(COROTLS_CLIENT, NULL, NULL, fifo, NULL, true, &conf), COROTLS_ERR_ARG) &&
              says("not a regular file"),
          "conf_new with a FIFO as CA file");
    corotls_conf_builder_free(b);
    unlink(fifo);
    rmdir(dir);
}

/* A builder reused for a reload can drop its ALPN list again. */
TEST(alpn_can_be_cleared)
{
    const char *h2[] = {"h2"};
    corotls_conf_builder *sb = builder(COROTLS_SERVER);
    REQUIRE(sb && corotls_conf_builder_add_identity_file(sb, harness_cert("leaf.crt"), harness_cert("leaf.key"), NULL) ==
                      COROTLS_OK,
            "server builder");
    CHECK(IS(corotls_conf_builder_set_alpn(sb, h2, 1), COROTLS_OK), "ALPN h2");
    CHECK(IS(corotls_conf_builder_set_alpn(sb, NULL, 0), COROTLS_OK), "set_alpn(NULL, 0) clears it");
    CHECK(IS(corotls_conf_builder_set_alpn(sb, NULL, 1), COROTLS_ERR_ARG), "set_alpn(NULL, 1) is an error");
    corotls_conf *sc = NULL, *cc = NULL;
    REQUIRE(corotls_conf_builder_build(sb, &sc) == COROTLS_OK, "server conf");
    corotls_conf_builder *cb = builder(COROTLS_CLIENT);
    REQUIRE(cb && corotls_conf_builder_set_verify(cb, COROTLS_VERIFY_NONE) == COROTLS_OK &&
                corotls_conf_builder_set_alpn_wire(cb, (const uint8_t *)"\x02h2", 3) == COROTLS_OK &&
                corotls_conf_builder_build(cb, &cc) == COROTLS_OK,
            "client offering h2");
    corotls_session *c = NULL, *s = NULL;
    REQUIRE(corotls_session_new(cc, &c) == COROTLS_OK && corotls_session_new(sc, &s) == COROTLS_OK, "sessions");
    util_pump(c, s, 0);
    CHECK(corotls_session_handshake_done(c) && !strcmp(corotls_session_alpn(c), ""),
          "the rebuilt server selects no ALPN: \"%s\"", corotls_session_alpn(c));
    corotls_session_free(c);
    corotls_session_free(s);
    corotls_conf_free(cc);
    CHECK(IS(corotls_conf_builder_set_alpn_wire(cb, NULL, 0), COROTLS_OK), "set_alpn_wire(NULL, 0) clears it");
    CHECK(IS(corotls_conf_builder_set_alpn_wire(cb, NULL, 3), COROTLS_ERR_ARG), "set_alpn_wire(NULL, 3) is an error");
    corotls_conf_builder_free(cb);
    corotls_conf_builder_free(sb);
    corotls_conf_free(sc);
}

TEST(out_pointers_and_lengths_are_checked)
{
    corotls_conf *cc = util_client_conf(0);
    corotls_session *s = NULL;
    REQUIRE(cc && corotls_session_new(cc, &s) == COROTLS_OK, "session");
    uint8_t buf[16];
    CHECK(IS(corotls_session_read(s, buf, sizeof buf, NULL), COROTLS_ERR_ARG) && says("length output pointer"),
          "session_read(out_len=NULL)");
    CHECK(IS(corotls_session_read_until(s, '\n', buf, sizeof buf, NULL), COROTLS_ERR_ARG) &&
              says("length output pointer"),
          "session_read_until(out_len=NULL)");
    size_t plain = 7;
    CHECK(IS(corotls_session_feed(s, buf, SIZE_MAX, &plain), COROTLS_ERR_ARG) && says("larger than any buffer") &&
              plain == 0,
          "session_feed(len=SIZE_MAX): an error, no abort");
    CHECK(IS(corotls_session_feed(s, buf, (size_t)-5, NULL), COROTLS_ERR_ARG), "session_feed(len=-5)");
    CHECK(IS(corotls_session_write(s, buf, SIZE_MAX), COROTLS_ERR_ARG), "session_write(len=SIZE_MAX)");
    CHECK(IS(corotls_session_read(s, buf, SIZE_MAX, &plain), COROTLS_ERR_ARG), "session_read(cap=SIZE_MAX)");
    corotls_session_free(s);
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    corotls_conn *c = NULL;
    REQUIRE(corotls_conn_new(cc, sv[0], &c) == COROTLS_OK, "conn");
    CHECK(IS(corotls_conn_read(c, buf, sizeof buf, NULL), COROTLS_ERR_ARG) && says("length output pointer"),
          "conn_read(out_len=NULL)");
    CHECK(IS(corotls_conn_write(c, buf, 1, NULL), COROTLS_ERR_ARG) && says("length output pointer"),
          "conn_write(out_len=NULL)");
    CHECK(IS(corotls_conn_write(c, buf, SIZE_MAX, &plain), COROTLS_ERR_ARG), "conn_write(len=SIZE_MAX)");
    corotls_conn_free(c);
    close(sv[0]);
    close(sv[1]);
    corotls_conf_free(cc);
}

int main(void)
{
    return harness_run_all();
}
