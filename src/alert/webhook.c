/*
 * webhook.c: the HTTP/1.1 request of one webhook attempt, signed the Standard
 * Webhooks way (webhook-id, webhook-timestamp, webhook-signature: v1,...).
 * The id is the alert id, so a receiver deduplicates retries by it; the
 * timestamp is the attempt's, so a retry hours later is not refused as a
 * replay by a receiver's five-minute tolerance.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "alert/alert.h"
#include "util/util.h"

#define ALERT_WEBHOOK_ENV "VEILLE_ALERT_WEBHOOK_SECRET"

int alert_webhook_secret_parse(const char *text, ingest_secret *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (text == NULL || text[0] == '\0')
        return util_err(err, errlen, "webhook sinks sign every alert: set %s to a secret (whsec_<base64 of 24 "
                                     "to 64 random bytes>) that the receiver verifies with", ALERT_WEBHOOK_ENV);
    ingest_secrets all;
    char sub[UTIL_ERRLEN];
    if (ingest_parse_secrets(text, &all, sub, sizeof sub) < 0)
        return util_err(err, errlen, "%s: %s", ALERT_WEBHOOK_ENV, sub);
    if (all.count != 1) {
        OPENSSL_cleanse(&all, sizeof all);
        return util_err(err, errlen, "%s: give exactly one secret (it signs; receivers may accept several)",
                        ALERT_WEBHOOK_ENV);
    }
    *out = all.secrets[0];
    OPENSSL_cleanse(&all, sizeof all);
    return 0;
}

int alert_webhook_request(const alert_sink_config *c, const ingest_secret *secret, const store_alert *a,
                          int64_t now_s, char **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    *len = 0;
    char *body = NULL;
    size_t body_len = 0;
    if (alert_render(c, a, &body, &body_len, err, errlen) < 0)
        return -1;
    char sig[128];
    if (ingest_sign(secret, a->id, now_s, (const unsigned char *)body, body_len, sig, sizeof sig) < 0) {
        free(body);
        return util_err(err, errlen, "alert %s: signing failed (libcrypto)", a->id);
    }
    char *req = NULL;
    size_t req_len = 0;
    FILE *f = open_memstream(&req, &req_len);
    if (f == NULL) {
        free(body);
        return util_err(err, errlen, "alert %s: out of memory", a->id);
    }
    /* Host carries the port unless it is the scheme's default (RFC 9110 7.2) */
    bool default_port = c->port == (c->tls ? 443 : 80);
    bool v6 = strchr(c->host, ':') != NULL;
    fprintf(f, "POST %s HTTP/1.1\r\nHost: %s%s%s", c->target, v6 ? "[" : "", c->host, v6 ? "]" : "");
    if (!default_port)
        fprintf(f, ":%d", c->port);
    fprintf(f, "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nUser-Agent: veille\r\n"
               "Connection: close\r\nwebhook-id: %s\r\nwebhook-timestamp: %" PRId64 "\r\nwebhook-signature: %s\r\n",
            body_len, a->id, now_s, sig);
    for (size_t i = 0; i < c->n_headers; i++)
        fprintf(f, "%s\r\n", c->headers[i]);
    fputs("\r\n", f);
    fwrite(body, 1, body_len, f);
    free(body);
    if (fclose(f) != 0 || req == NULL) {
        free(req);
        return util_err(err, errlen, "alert %s: out of memory", a->id);
    }
    *out = req;
    *len = req_len;
    return 0;
}
