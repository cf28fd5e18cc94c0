/*
 * keylog_tshark: the key log decrypts real traffic.  tshark captures one
 * loopback session between the example programs (tls_echo_client and
 * tls_echo_server, each with --keylog FILE), in TLS 1.3 and TLS 1.2; then
 * tshark reads the capture with each side's key log and must show the
 * message in the decrypted stream, and without a key log must not.
 *
 * Skipped, with a message, only when tshark is not installed (CI installs
 * it: scripts/deps.sh).  Capturing on lo needs root or the capture
 * capabilities on dumpcap; a capture that does not start is a failure.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define T 20000
#define SERVER "target/examples/tls_echo_server"
#define CLIENT "target/examples/tls_echo_client"

static int have_tshark(void)
{
    return system("command -v tshark >/dev/null 2>&1") == 0;
}

/* Run argv to its end; its merged output into out (cap).  Exit status or -1. */
static int run(const char *const argv[], char *out, size_t cap)
{
    int fd;
    pid_t pid = harness_spawn(argv, NULL, &fd);
    if (pid < 0)
        return -1;
    size_t len = 0;
    ssize_t k;
    while (len + 1 < cap && (k = read(fd, out + len, cap - 1 - len)) > 0)
        len += (size_t)k;
    out[len] = '\0';
    /* Drain the rest so the child never blocks on a full pipe. */
    char sink[4096];
    while (read(fd, sink, sizeof sink) > 0)
        ;
    close(fd);
    int st = harness_wait(pid, T);
    if (st < 0)
        harness_kill(pid);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void capture_and_decrypt(const char *version)
{
    char dir[256], cap[300], ckl[300], skl[300], msg[64], addr[64], filter[64], port_s[16];
    snprintf(dir, sizeof dir, "%s", harness_certdir());
    snprintf(cap, sizeof cap, "%s/keylog-%d-%s.pcapng", dir, (int)getpid(), version);
    snprintf(ckl, sizeof ckl, "%s/keylog-%d-%s-client.txt", dir, (int)getpid(), version);
    snprintf(skl, sizeof skl, "%s/keylog-%d-%s-server.txt", dir, (int)getpid(), version);
    snprintf(msg, sizeof msg, "plaintext-only-the-keylog-reveals-%d", (int)getpid());
    unlink(cap);
    unlink(ckl);
    unlink(skl);

    const char *sargv[] = {SERVER, "--listen", "127.0.0.1:0", "--cert", harness_cert("leaf.crt"), "--key",
                           harness_cert("leaf.key"), "--max-version", version, "--keylog", skl, NULL};
    int sout;
    pid_t srv = harness_spawn(sargv, NULL, &sout);
    char line[256];
    REQUIRE(srv > 0 && harness_read_until(sout, "\n", T, line, sizeof line) > 0 &&
                sscanf(line, "listening %63s", addr) == 1,
            "TLS %s: tls_echo_server --keylog", version);
    int port = atoi(strrchr(addr, ':') + 1);
    snprintf(filter, sizeof filter, "tcp port %d", port);
    snprintf(port_s, sizeof port_s, "%d", port);

    const char *targv[] = {"tshark", "-n", "-i", "lo", "-f", filter, "-w", cap, NULL};
    int tout;
    pid_t ts = harness_spawn(targv, NULL, &tout);
    char buf[4096] = "";
    int capturing = ts > 0 && harness_read_until(tout, "Capturing on", T, buf, sizeof buf) > 0;
    if (!CHECK(capturing, "TLS %s: tshark captures on lo (needs root or dumpcap's capabilities): %s", version,
               buf)) {
        harness_kill(ts);
        harness_kill(srv);
        return;
    }
    harness_sleep_ms(300); /* the capture is live once the filter is in place */

    const char *cargv[] = {CLIENT, "--connect", addr, "--ca", harness_cert("ca.crt"), "--verify-host", "localhost",
                           "--message", msg, "--keylog", ckl, NULL};
    static char out[65536];
    CHECK(run(cargv, out, sizeof out) == 0 && strstr(out, msg) != NULL, "TLS %s: the client's echo came back",
          version);
    harness_sleep_ms(500);
    kill(ts, SIGINT); /* tshark writes out the capture and exits */
    int st = harness_wait(ts, T);
    if (st < 0)
        harness_kill(ts);
    close(tout);
    kill(srv, SIGTERM);
    if (harness_wait(srv, T) < 0)
        harness_kill(srv);
    close(sout);

    char opt_c[400], opt_s[400], decode[64];
    snprintf(opt_c, sizeof opt_c, "tls.keylog_file:%s", ckl);
    snprintf(opt_s, sizeof opt_s, "tls.keylog_file:%s", skl);
    snprintf(decode, sizeof decode, "tcp.port==%d,tls", port);
    const char *with_c[] = {"tshark", "-n", "-r", cap, "-d", decode, "-o", opt_c, "-q", "-z", "follow,tls,ascii,0", NULL};
    const char *with_s[] = {"tshark", "-n", "-r", cap, "-d", decode, "-o", opt_s, "-q", "-z", "follow,tls,ascii,0", NULL};
    const char *without[] = {"tshark", "-n", "-r", cap, "-d", decode, "-q", "-z", "follow,tls,ascii,0", NULL};
    int rc = run(with_c, out, sizeof out);
    char *hit = strstr(out, msg);
    if (!CHECK(rc == 0 && hit != NULL, "TLS %s: with the client's key log tshark decrypts the message", version))
        harness_diag("tshark output: %.2000s", out);
    CHECK(run(with_s, out, sizeof out) == 0 && strstr(out, msg) != NULL,
          "TLS %s: the server's key log decrypts it too", version);
    CHECK(run(without, out, sizeof out) == 0 && strstr(out, msg) == NULL,
          "TLS %s: without a key log the capture does not show it", version);
    /* The capture holds this session, in this version: the ServerHello's
     * supported_versions says 0x0304 in TLS 1.3 and is absent in 1.2. */
    const char *hello[] = {"tshark", "-n", "-r", cap, "-d", decode, "-Y", "tls.handshake.type == 2", "-T", "fields",
                           "-e", "tls.handshake.extensions.supported_version", NULL};
    int seen = run(hello, out, sizeof out) == 0;
    char *tail = strrchr(out, '.'); /* after tshark's "... could be dangerous." when run as root */
    const char *fields = tail && strstr(out, "dangerous") ? tail + 1 : out;
    int tls13 = strstr(fields, "0x0304") != NULL;
    CHECK(seen && tls13 == (strcmp(version, "1.3") == 0), "TLS %s: tshark parses the ServerHello of that version (%s)",
          version, fields);
    unlink(cap);
    unlink(ckl);
    unlink(skl);
}

TEST(tshark_decrypts_a_loopback_capture_with_the_key_log)
{
    if (!have_tshark()) {
        harness_diag("SKIP: tshark is not installed (apt-get install tshark, or scripts/deps.sh): "
                     "the capture is not decrypted here; keylog_api still checks the line format");
        return;
    }
    capture_and_decrypt("1.3");
    capture_and_decrypt("1.2");
}

int main(void)
{
    return harness_run_all();
}
