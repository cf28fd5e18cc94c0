/*
 * keylog_api: key logging through the native API.  A client and a server
 * session handshake in memory; each side's callback collects its lines.
 * Checked: the NSS key-log format of every line (label, 32-byte client
 * random, secret), the labels of TLS 1.2 and 1.3, that both sides log the
 * very same secrets, the file sink (appends, mode 0600, errors), the
 * SSLKEYLOGFILE opt-in, and that nothing is logged unless asked.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "tls_util.h"

#define MAXL 32

struct lines {
    int n;
    char l[MAXL][300];
};

static void collect(void *ud, const char *line)
{
    struct lines *ls = ud;
    if (ls->n < MAXL)
        snprintf(ls->l[ls->n++], sizeof ls->l[0], "%s", line);
}

static int is_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)p[i]) || isupper((unsigned char)p[i]))
            return 0;
    return 1;
}

/* LABEL <64 hex> <hex of 2*secret_len>; the label among `labels`. */
static int well_formed(const char *line, const char *const labels[], size_t secret_hex)
{
    const char *sp = strchr(line, ' ');
    if (sp == NULL)
        return 0;
    int known = 0;
    for (int i = 0; labels[i]; i++)
        known |= strlen(labels[i]) == (size_t)(sp - line) && strncmp(line, labels[i], (size_t)(sp - line)) == 0;
    const char *random = sp + 1, *sp2 = strchr(random, ' ');
    return known && sp2 && sp2 - random == 64 && is_hex(random, 64) && strlen(sp2 + 1) == secret_hex &&
           is_hex(sp2 + 1, secret_hex);
}

static corotls_conf_builder *builder(int role, int version)
{
    corotls_conf_builder *b = NULL;
    corotls_result r = corotls_conf_builder_new(role, &b);
    if (r == COROTLS_OK && role == COROTLS_SERVER)
        r = corotls_conf_builder_add_identity_file(b, harness_cert("leaf.crt"), harness_cert("leaf.key"), NULL);
    if (r == COROTLS_OK && role == COROTLS_CLIENT)
        r = corotls_conf_builder_add_ca_file(b, harness_cert("ca.crt"));
    if (r == COROTLS_OK && version)
        r = corotls_conf_builder_set_versions(b, version, version);
    if (r != COROTLS_OK)
        harness_diag("builder: %s", corotls_last_error());
    return b;
}

static corotls_conf *build(corotls_conf_builder *b)
{
    corotls_conf *c = NULL;
    if (corotls_conf_builder_build(b, &c) != COROTLS_OK)
        harness_diag("build: %s", corotls_last_error());
    corotls_conf_builder_free(b);
    return c;
}

/* A handshake between sessions of cc and sc, in memory; 0 when both
 * finished. */
static int handshake(corotls_conf *cc, corotls_conf *sc)
{
    corotls_session *c = NULL, *s = NULL;
    int ok = corotls_session_new(cc, &c) == COROTLS_OK && corotls_session_new(sc, &s) == COROTLS_OK &&
             corotls_session_set_sni(c, "localhost") == COROTLS_OK;
    for (int i = 0; ok && i < 20 && !(corotls_session_handshake_done(c) && corotls_session_handshake_done(s)); i++) {
        corotls_session_handshake(c);
        util_pump(c, s, 1 << 16);
        corotls_session_handshake(s);
        util_pump(c, s, 1 << 16);
    }
    ok = ok && corotls_session_handshake_done(c) && corotls_session_handshake_done(s);
    corotls_session_free(c);
    corotls_session_free(s);
    return ok ? 0 : -1;
}

static int same_sets(const struct lines *a, const struct lines *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++) {
        int found = 0;
        for (int j = 0; j < b->n && !found; j++)
            found = strcmp(a->l[i], b->l[j]) == 0;
        if (!found)
            return 0;
    }
    return 1;
}

TEST(callback_lines_are_nss_keylog_format_and_match_on_both_sides)
{
    static const char *const tls13[] = {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                                        "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET",
                                        NULL};
    static const char *const tls12[] = {"CLIENT_RANDOM", NULL};
    int versions[] = {COROTLS_TLS1_3, COROTLS_TLS1_2};
    for (int v = 0; v < 2; v++) {
        static struct lines cl, sl;
        memset(&cl, 0, sizeof cl);
        memset(&sl, 0, sizeof sl);
        corotls_conf_builder *cb = builder(COROTLS_CLIENT, versions[v]), *sb = builder(COROTLS_SERVER, versions[v]);
        REQUIRE(cb && sb, "builders");
        CHECK(corotls_conf_builder_set_keylog_callback(cb, collect, &cl) == COROTLS_OK &&
                  corotls_conf_builder_set_keylog_callback(sb, collect, &sl) == COROTLS_OK,
              "callbacks set");
        corotls_conf *cc = build(cb), *sc = build(sb);
        REQUIRE(cc && sc && handshake(cc, sc) == 0, "handshake");
        const char *name = v == 0 ? "TLS 1.3" : "TLS 1.2";
        CHECK(cl.n == (v == 0 ? 5 : 1), "%s: the client logged %d lines", name, cl.n);
        int good = 1;
        for (int i = 0; i < cl.n; i++)
            good &= well_formed(cl.l[i], v == 0 ? tls13 : tls12, 96); /* SHA-384 suites: 48-byte secrets */
        CHECK(good, "%s: every line is `LABEL <client random, 64 hex> <secret, 96 hex>`: %s", name, cl.l[0]);
        int one_random = 1;
        for (int i = 1; i < cl.n; i++)
            one_random &= strncmp(strchr(cl.l[i], ' '), strchr(cl.l[0], ' '), 65) == 0;
        CHECK(one_random, "%s: one handshake, one client random", name);
        CHECK(same_sets(&cl, &sl), "%s: the server logged the same secrets", name);
        corotls_conf_free(cc);
        corotls_conf_free(sc);
    }
}

TEST(nothing_is_logged_unless_asked)
{
    char path[256];
    snprintf(path, sizeof path, "%s/keylog-env-%d.txt", harness_certdir(), (int)getpid());
    unlink(path);
    setenv("SSLKEYLOGFILE", path, 1);
    corotls_conf *cc = build(builder(COROTLS_CLIENT, 0)), *sc = build(builder(COROTLS_SERVER, 0));
    REQUIRE(cc && sc && handshake(cc, sc) == 0, "a handshake with SSLKEYLOGFILE set, no key-log call");
    CHECK(access(path, F_OK) != 0, "SSLKEYLOGFILE alone writes nothing (no file)");
    corotls_conf_free(cc);

    static struct lines cl;
    memset(&cl, 0, sizeof cl);
    corotls_conf_builder *cb = builder(COROTLS_CLIENT, 0);
    CHECK(corotls_conf_builder_set_keylog_callback(cb, collect, &cl) == COROTLS_OK &&
              corotls_conf_builder_set_keylog_callback(cb, NULL, NULL) == COROTLS_OK,
          "a callback, then NULL: off again");
    cc = build(cb);
    CHECK(cc && handshake(cc, sc) == 0 && cl.n == 0, "no line after the callback was cleared");
    corotls_conf_free(cc);

    bool on = true;
    unsetenv("SSLKEYLOGFILE");
    cb = builder(COROTLS_CLIENT, 0);
    CHECK(corotls_conf_builder_use_sslkeylogfile(cb, &on) == COROTLS_OK && !on,
          "use_sslkeylogfile without SSLKEYLOGFILE: OK, off");
    corotls_conf_builder_free(cb);
    setenv("SSLKEYLOGFILE", path, 1);
    cb = builder(COROTLS_CLIENT, 0);
    CHECK(corotls_conf_builder_use_sslkeylogfile(cb, &on) == COROTLS_OK && on, "with SSLKEYLOGFILE: on");
    cc = build(cb);
    CHECK(cc && handshake(cc, sc) == 0, "handshake");
    FILE *f = fopen(path, "r");
    char line[400];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += line[strlen(line) - 1] == '\n';
    if (f)
        fclose(f);
    CHECK(n == 5, "the file named by SSLKEYLOGFILE got 5 whole lines (%d)", n);
    unsetenv("SSLKEYLOGFILE");
    unlink(path);
    corotls_conf_free(cc);
    corotls_conf_free(sc);
}

TEST(the_file_sink_appends_privately_and_refuses_bad_paths)
{
    char path[256];
    snprintf(path, sizeof path, "%s/keylog-file-%d.txt", harness_certdir(), (int)getpid());
    unlink(path);
    corotls_conf *sc = build(builder(COROTLS_SERVER, COROTLS_TLS1_2));
    for (int round = 0; round < 2; round++) {
        corotls_conf_builder *cb = builder(COROTLS_CLIENT, 0);
        CHECK(corotls_conf_builder_set_keylog_file(cb, path) == COROTLS_OK, "set_keylog_file (round %d)", round);
        corotls_conf *cc = build(cb);
        CHECK(cc && handshake(cc, sc) == 0, "handshake");
        corotls_conf_free(cc);
    }
    struct stat st;
    memset(&st, 0, sizeof st);
    int stat_ok = stat(path, &st) == 0;
    CHECK(stat_ok && (st.st_mode & 0777) == 0600, "created with mode 0600 (%o)", (unsigned)(st.st_mode & 0777));
    FILE *f = fopen(path, "r");
    char line[400];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strncmp(line, "CLIENT_RANDOM ", 14) == 0 && line[strlen(line) - 1] == '\n';
    if (f)
        fclose(f);
    CHECK(n == 2, "two handshakes, two CLIENT_RANDOM lines: appended, not truncated (%d)", n);
    unlink(path);

    corotls_conf_builder *cb = builder(COROTLS_CLIENT, 0);
    CHECK(corotls_conf_builder_set_keylog_file(cb, "/nonexistent-dir/keys.txt") == COROTLS_ERR_ARG &&
              says("cannot open key log file") && corotls_last_reason(NULL) == COROTLS_REASON_FILE,
          "a file that cannot be created: ERR_ARG, reason FILE");
    CHECK(corotls_conf_builder_set_keylog_file(cb, harness_certdir()) == COROTLS_ERR_ARG && says("directory"),
          "a directory: ERR_ARG");
    CHECK(corotls_conf_builder_set_keylog_file(cb, NULL) == COROTLS_ERR_ARG, "NULL path: ERR_ARG");
    CHECK(corotls_conf_builder_set_keylog_file(NULL, path) == COROTLS_ERR_ARG, "NULL builder: ERR_ARG");
    CHECK(corotls_conf_builder_set_keylog_callback(NULL, collect, NULL) == COROTLS_ERR_ARG, "NULL builder: ERR_ARG");
    CHECK(corotls_conf_builder_use_sslkeylogfile(NULL, NULL) == COROTLS_ERR_ARG, "NULL builder: ERR_ARG");
    corotls_conf_builder_free(cb);
    corotls_conf_free(sc);
}

/* Files that are not regular files: a FIFO nobody reads (opening it for
 * writing would wait for a reader), the same FIFO with a reader, a
 * device; and SSLKEYLOGFILE naming a file that cannot be opened.  Each a
 * clear error (FILE), at once. */
TEST(the_file_sink_refuses_fifos_and_devices_without_waiting)
{
    char fifo[256];
    snprintf(fifo, sizeof fifo, "%s/keylog-fifo-%d", harness_certdir(), (int)getpid());
    unlink(fifo);
    REQUIRE(mkfifo(fifo, 0600) == 0, "mkfifo");
    corotls_conf_builder *cb = builder(COROTLS_CLIENT, 0);
    corotls_result r = corotls_conf_builder_set_keylog_file(cb, fifo);
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_FILE,
          "a FIFO without a reader: ERR_ARG, FILE, no wait (%s)", corotls_last_error());
    int reader = open(fifo, O_RDONLY | O_NONBLOCK);
    REQUIRE(reader >= 0, "a reader on the FIFO");
    r = corotls_conf_builder_set_keylog_file(cb, fifo);
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_FILE && says("not a regular file"),
          "a FIFO with a reader: ERR_ARG, FILE, not a regular file (%s)", corotls_last_error());
    close(reader);
    unlink(fifo);
    r = corotls_conf_builder_set_keylog_file(cb, "/dev/null");
    CHECK(r == COROTLS_ERR_ARG && says("not a regular file"), "a device: ERR_ARG, not a regular file");
    r = corotls_conf_builder_set_keylog_file(cb, "");
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_FILE, "an empty path: ERR_ARG, FILE (%s)",
          corotls_last_error());

    bool on = true;
    setenv("SSLKEYLOGFILE", "/nonexistent-dir/keys.txt", 1);
    r = corotls_conf_builder_use_sslkeylogfile(cb, &on);
    CHECK(r == COROTLS_ERR_ARG && corotls_last_reason(NULL) == COROTLS_REASON_FILE && !on,
          "SSLKEYLOGFILE naming a file that cannot be created: ERR_ARG, FILE, *enabled false (%s)",
          corotls_last_error());
    setenv("SSLKEYLOGFILE", "", 1);
    on = true;
    CHECK(corotls_conf_builder_use_sslkeylogfile(cb, &on) == COROTLS_OK && !on, "SSLKEYLOGFILE empty: OK, off");
    unsetenv("SSLKEYLOGFILE");
    corotls_conf *sc = build(builder(COROTLS_SERVER, 0)), *cc = build(cb);
    CHECK(cc && sc && handshake(cc, sc) == 0, "after every refusal the builder still builds a working conf");
    corotls_conf_free(cc);
    corotls_conf_free(sc);
}

int main(void)
{
    return harness_run_all();
}
