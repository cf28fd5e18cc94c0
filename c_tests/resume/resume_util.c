/* resume_util.c -- see resume_util.h. */
#include "resume_util.h"

#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tls_util.h"

corotls_conf *ru_server(int v, const uint8_t *key, int sni, int no_tickets)
{
    corotls_conf_builder *b = NULL;
    corotls_conf *c = NULL;
    corotls_result r = corotls_conf_builder_new(COROTLS_SERVER, &b);
    if (r == COROTLS_OK)
        r = corotls_conf_builder_add_identity_file(b, harness_cert("leaf.crt"), harness_cert("leaf.key"), NULL);
    if (r == COROTLS_OK && sni)
        r = corotls_conf_builder_add_identity_file(b, harness_cert("alt1.crt"), harness_cert("alt1.key"), NULL);
    if (r == COROTLS_OK && v)
        r = corotls_conf_builder_set_versions(b, v, v);
    if (r == COROTLS_OK && key)
        r = corotls_conf_builder_set_ticket_key(b, key, COROTLS_TICKET_KEY_LEN);
    if (r == COROTLS_OK && no_tickets)
        r = corotls_conf_builder_set_tickets(b, false);
    if (r == COROTLS_OK)
        r = corotls_conf_builder_build(b, &c);
    if (r != COROTLS_OK)
        harness_diag("server conf: %s", corotls_last_error());
    corotls_conf_builder_free(b);
    return c;
}

corotls_conf *ru_client(const char *ca)
{
    corotls_conf_builder *b = NULL;
    corotls_conf *c = NULL;
    corotls_result r = corotls_conf_builder_new(COROTLS_CLIENT, &b);
    if (r == COROTLS_OK)
        r = corotls_conf_builder_add_ca_file(b, ca ? ca : harness_cert("ca.crt"));
    if (r == COROTLS_OK)
        r = corotls_conf_builder_build(b, &c);
    if (r != COROTLS_OK)
        harness_diag("client conf: %s", corotls_last_error());
    corotls_conf_builder_free(b);
    return c;
}

int ru_echo(corotls_conf *cc, int port, const char *name, int no_key, const uint8_t *import, size_t ilen,
            uint8_t *exp, size_t *exp_len)
{
    int fd, ret = -1;
    corotls_conn *c = util_connect(cc, port, name, &fd);
    if (c == NULL)
        return -1;
    corotls_result r = COROTLS_OK;
    if (!no_key)
        r = corotls_conn_set_resume_key(c, "127.0.0.1", (uint16_t)port);
    if (r == COROTLS_OK && import)
        r = corotls_conn_import(c, import, ilen);
    if (r == COROTLS_OK)
        r = util_handshake(c, RU_T);
    static const char line[] = "resume-me\n";
    char back[sizeof line - 1];
    if (r == COROTLS_OK)
        r = util_write_all(c, line, sizeof line - 1, RU_T);
    if (r == COROTLS_OK)
        r = util_read_n(c, back, sizeof back, RU_T);
    if (r == COROTLS_OK && memcmp(back, line, sizeof back) != 0)
        r = COROTLS_ERR_TLS;
    if (r == COROTLS_OK && exp)
        r = corotls_conn_export(c, exp, *exp_len, exp_len);
    if (r == COROTLS_OK) {
        ret = corotls_conn_resumed(c) ? 1 : 0;
        corotls_conn_shutdown(c);
    } else {
        harness_diag("echo with %s: %s: %s / %s", name, corotls_result_name(r), corotls_conn_error(c), corotls_last_error());
    }
    corotls_conn_free(c);
    close(fd);
    return ret;
}
