/*
 * resume_interop: resumption with OpenSSL's own peers, and the example
 * programs' --reconnect.
 *
 * - openssl s_client against our server (target/examples/tls_echo_server):
 *   `-reconnect` reports "Reused" for TLS 1.2.  For TLS 1.3 OpenSSL 3.0's
 *   `-reconnect` takes the session right after the handshake, before the
 *   server's tickets (which TLS 1.3 sends after it) are read, so it
 *   reports "New" every time with any server (checked below against
 *   openssl s_server too, so the test says which side is at fault if that
 *   ever changes); TLS 1.3 resumption is tested with `-sess_out` after a
 *   read, then `-sess_in`, for both versions.
 * - our client against openssl s_server: the second connection resumes.
 * - tls_echo_client --reconnect N against our server.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "resume_util.h"
#include "tls_util.h"

#define SERVER "target/examples/tls_echo_server"
#define CLIENT "target/examples/tls_echo_client"

static pid_t start_server(int *port)
{
    const char *argv[] = {SERVER, "--listen", "127.0.0.1:0", "--cert", harness_cert("leaf.crt"),
                          "--key", harness_cert("leaf.key"), NULL};
    int out;
    pid_t pid = harness_spawn(argv, NULL, &out);
    char line[256];
    const char *colon;
    if (pid < 0 || harness_read_until(out, "\n", RU_T, line, sizeof line) < 0 ||
        (colon = strrchr(line, ':')) == NULL) {
        harness_diag("tls_echo_server did not start: %s", line);
        return -1;
    }
    close(out);
    *port = atoi(colon + 1);
    return pid;
}

/* Run s_client with args to the end (its stdin gets `input`, then EOF
 * after the reply came); merged output into out.  Counts `New,` and
 * `Reused,` lines. */
static void s_client(int port, const char *const args[], const char *input, int *fresh, int *reused)
{
    int in, out;
    *fresh = *reused = 0;
    pid_t c = harness_spawn_s_client(port, args, &in, &out);
    if (c < 0)
        return;
    char buf[65536];
    if (input) {
        (void)!write(in, input, strlen(input));
        /* Wait for the echo: the server's tickets come before it. */
        harness_read_until(out, input, RU_T, buf, sizeof buf);
    }
    close(in);
    size_t len = strlen(buf);
    ssize_t k;
    if (!input)
        len = 0;
    while (len + 1 < sizeof buf && (k = read(out, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)k;
    buf[len] = '\0';
    close(out);
    harness_kill(c);
    for (char *p = buf; (p = strstr(p, "New, ")) != NULL; p++)
        ++*fresh;
    for (char *p = buf; (p = strstr(p, "Reused, ")) != NULL; p++)
        ++*reused;
}

TEST(s_client_reconnect_reuses_with_tls12)
{
    int port, fresh, reused;
    pid_t srv = start_server(&port);
    REQUIRE(srv > 0, "tls_echo_server");
    const char *a[] = {"-tls1_2", "-reconnect", "-verify_return_error", NULL};
    s_client(port, a, NULL, &fresh, &reused);
    CHECK(fresh == 1 && reused == 5, "s_client -tls1_2 -reconnect: 1 New, 5 Reused (got %d, %d)", fresh, reused);
    harness_kill(srv);
}

TEST(s_client_reconnect_with_tls13_is_new_with_any_server)
{
    int port, fresh, reused;
    pid_t srv = start_server(&port);
    REQUIRE(srv > 0, "tls_echo_server");
    const char *a[] = {"-tls1_3", "-reconnect", NULL};
    s_client(port, a, NULL, &fresh, &reused);
    harness_kill(srv);
    int oport, ofresh, oreused;
    pid_t os;
    REQUIRE(harness_spawn_s_server(NULL, &oport, &os) == 0, "openssl s_server");
    s_client(oport, a, NULL, &ofresh, &oreused);
    harness_kill(os);
    harness_diag("s_client -tls1_3 -reconnect: ours %d New %d Reused; openssl s_server %d New %d Reused", fresh,
                 reused, ofresh, oreused);
    CHECK(fresh + reused == 6 && reused == oreused,
          "OpenSSL 3.0's -reconnect behaves the same against our server and its own (no TLS 1.3 reuse: "
          "it never reads the tickets)");
}

TEST(s_client_sess_out_sess_in_reuses_with_both_versions)
{
    int port, fresh, reused;
    pid_t srv = start_server(&port);
    REQUIRE(srv > 0, "tls_echo_server");
    char path[256];
    snprintf(path, sizeof path, "%s/resume-sess-%d.pem", harness_certdir(), (int)getpid());
    const char *vs[] = {"-tls1_2", "-tls1_3"};
    for (int i = 0; i < 2; i++) {
        unlink(path);
        const char *out[] = {vs[i], "-sess_out", path, NULL};
        s_client(port, out, "hello-sess\n", &fresh, &reused);
        CHECK(fresh == 1 && reused == 0, "%s -sess_out: a full handshake", vs[i]);
        const char *in[] = {vs[i], "-sess_in", path, NULL};
        s_client(port, in, "hello-again\n", &fresh, &reused);
        CHECK(fresh == 0 && reused == 1, "%s -sess_in: Reused (%d New, %d Reused)", vs[i], fresh, reused);
    }
    unlink(path);
    harness_kill(srv);
}

TEST(our_server_resumes_a_session_only_for_its_server_name)
{
    /* openssl s_client offers a session under any -servername; with two
     * identities our server resumes it only for the name it was made for
     * (RFC 6066 3), and serves another name with a full handshake. */
    const char *argv[] = {SERVER, "--listen", "127.0.0.1:0", "--cert", harness_cert("leaf.crt"), "--key",
                          harness_cert("leaf.key"), "--cert", harness_cert("alt1.crt"), "--key",
                          harness_cert("alt1.key"), NULL};
    int out, fresh, reused;
    pid_t srv = harness_spawn(argv, NULL, &out);
    char line[256] = "";
    const char *colon = NULL;
    REQUIRE(srv > 0 && harness_read_until(out, "\n", RU_T, line, sizeof line) > 0 &&
                (colon = strrchr(line, ':')) != NULL,
            "tls_echo_server with identities localhost and alt1.example");
    close(out);
    int port = atoi(colon + 1);
    char path[256];
    snprintf(path, sizeof path, "%s/resume-sni-%d.pem", harness_certdir(), (int)getpid());
    const char *vs[] = {"-tls1_2", "-tls1_3"};
    for (int i = 0; i < 2; i++) {
        unlink(path);
        const char *first[] = {vs[i], "-servername", "localhost", "-sess_out", path, NULL};
        s_client(port, first, "for-localhost\n", &fresh, &reused);
        CHECK(fresh == 1, "%s: a session for localhost", vs[i]);
        const char *other[] = {vs[i], "-servername", "alt1.example", "-sess_in", path, NULL};
        s_client(port, other, "for-alt1\n", &fresh, &reused);
        CHECK(fresh == 1 && reused == 0, "%s: offered for alt1.example: a full handshake (%d New, %d Reused)", vs[i],
              fresh, reused);
        const char *same[] = {vs[i], "-servername", "localhost", "-sess_in", path, NULL};
        s_client(port, same, "for-localhost\n", &fresh, &reused);
        CHECK(fresh == 0 && reused == 1, "%s: offered for localhost again: Reused", vs[i]);
    }
    unlink(path);
    harness_kill(srv);
}

TEST(our_client_resumes_against_s_server)
{
    const char *vs[] = {"-tls1_2", "-tls1_3"};
    for (int i = 0; i < 2; i++) {
        int port;
        pid_t os;
        const char *args[] = {vs[i], "-rev", NULL};
        REQUIRE(harness_spawn_s_server(args, &port, &os) == 0, "openssl s_server %s -rev", vs[i]);
        corotls_conf *cc = ru_client(NULL);
        int resumed[3];
        for (int k = 0; k < 3; k++) {
            int fd;
            corotls_conn *c = util_connect(cc, port, "localhost", &fd);
            corotls_result r = c ? corotls_conn_set_resume_key(c, "127.0.0.1", (uint16_t)port) : COROTLS_ERR_ARG;
            char back[6];
            if (r == COROTLS_OK)
                r = util_handshake(c, RU_T);
            if (r == COROTLS_OK)
                r = util_write_all(c, "hello\n", 6, RU_T);
            if (r == COROTLS_OK)
                r = util_read_n(c, back, 6, RU_T); /* s_server -rev: "olleh\n" */
            CHECK(r == COROTLS_OK && memcmp(back, "olleh\n", 6) == 0, "%s connection %d: handshake and -rev echo",
                  vs[i], k);
            resumed[k] = c && corotls_conn_resumed(c);
            if (c)
                corotls_conn_shutdown(c);
            corotls_conn_free(c);
            if (fd >= 0)
                close(fd);
        }
        CHECK(!resumed[0] && resumed[1] && resumed[2], "%s: full, then resumed twice (%d %d %d)", vs[i], resumed[0],
              resumed[1], resumed[2]);
        corotls_conf_free(cc);
        harness_kill(os);
    }
}

TEST(tls_echo_client_reconnect_prints_resumed)
{
    int port;
    pid_t srv = start_server(&port);
    REQUIRE(srv > 0, "tls_echo_server");
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    const char *vs[] = {NULL, "1.2"};
    for (int i = 0; i < 2; i++) {
        (void)vs;
        const char *argv[] = {CLIENT, "--connect", addr, "--ca", harness_cert("ca.crt"), "--verify-host", "localhost",
                              "--reconnect", "3", "--message", "again", NULL};
        int fd;
        pid_t c = harness_spawn(argv, NULL, &fd);
        char out[4096];
        size_t len = 0;
        ssize_t k;
        while (c > 0 && len + 1 < sizeof out && (k = read(fd, out + len, sizeof out - 1 - len)) > 0)
            len += (size_t)k;
        out[len] = '\0';
        close(fd);
        int st = harness_wait(c, RU_T);
        CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "--reconnect 3 exits 0");
        int echoes = 0, r0 = 0, r1 = 0;
        for (char *p = out; (p = strstr(p, "again\n")) != NULL; p++)
            echoes++;
        for (char *p = out; (p = strstr(p, " resumed=0\n")) != NULL; p++)
            r0++;
        for (char *p = out; (p = strstr(p, " resumed=1\n")) != NULL; p++)
            r1++;
        CHECK(echoes == 4 && r0 == 1 && r1 == 3, "four echoes; one full, then three resumed: %s", out);
        CHECK(strstr(out, "version=TLSv1.3 cipher=") != NULL && strstr(out, " alpn= resumed=") != NULL,
              "the summary line keeps its fields, resumed= last");
        break;
    }
    const char *bad[] = {CLIENT, "--connect", addr, "--no-verify", "--reconnect", "-1", NULL};
    int fd;
    pid_t c = harness_spawn(bad, NULL, &fd);
    char msg[512];
    harness_read_until(fd, "\n", RU_T, msg, sizeof msg);
    close(fd);
    int st = harness_wait(c, RU_T);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(msg, "--reconnect") != NULL,
          "--reconnect -1: exit 1 with a message: %s", msg);
    harness_kill(srv);
}

int main(void)
{
    return harness_run_all();
}
