/*
 * fuzz_verify.c: libFuzzer target for the webhook signature check and the
 * secret list parser (src/ingest/verify.c). The first byte picks what the rest is:
 *   mode 0  "id\nTIMESTAMP\nSIGNATURE-HEADER\nBODY": the whole delivery;
 *   mode 1  the svix-signature header alone (fixed id, timestamp and body);
 *   mode 2  a secret list for ingest_parse_secrets.
 * In modes 0 and 1, bit 2 of the first byte appends the real "v1,<base64>" entry
 * (computed here) to the header, bit 3 puts it first instead.
 * Oracles (each a finding when broken), with a fixed secret list and a fixed "now":
 *   - accepted implies that one space-separated entry of the header is exactly
 *     "v1," + base64(HMAC-SHA256(secret, "id.timestamp.body")) for one secret,
 *     recomputed here with OpenSSL's one-shot HMAC, not with verify.c's code;
 *   - with the real entry added, the result is never "no match" or "bad header":
 *     only the id and timestamp checks may still refuse;
 *   - the error text never holds a secret;
 *   - a parsed secret list holds 1..8 keys of 24..64 bytes and verifies what is
 *     signed with its first key; a refused one is wiped and its error names no entry.
 * Built and run by run.sh (target "verify").
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ingest/ingest.h"

#define NOW_S 1700000000
#define SECRET_1 "ZnV6ei1zZWNyZXQtbnVtYmVyLW9uZSEh"             /* 24 bytes */
#define SECRET_2 "dGhlIHNlY29uZCBmdXp6aW5nIGtleSwgMzIgYnl0ZXM=" /* 32 bytes */
#define SIG_TEXT 44                                              /* base64 of 32 bytes */

static ingest_secrets secrets;

static void finding(const char *what)
{
    fprintf(stderr, "fuzz_verify: %s\n", what);
    abort();
}

/* base64(HMAC-SHA256(key, id "." ts "." body)) into out[SIG_TEXT + 1]. */
static void expected_sig(const ingest_secret *key, const char *id, size_t id_len, const char *ts, size_t ts_len,
                         const unsigned char *body, size_t body_len, char *out)
{
    size_t n = id_len + 1 + ts_len + 1 + body_len;
    unsigned char *content = malloc(n ? n : 1);
    if (content == NULL)
        abort();
    memcpy(content, id, id_len);
    content[id_len] = '.';
    memcpy(content + id_len + 1, ts, ts_len);
    content[id_len + 1 + ts_len] = '.';
    if (body_len > 0)
        memcpy(content + id_len + 2 + ts_len, body, body_len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (HMAC(EVP_sha256(), key->key, (int)key->len, content, n, mac, &maclen) == NULL || maclen != 32)
        finding("HMAC failed in the oracle");
    free(content);
    EVP_EncodeBlock((unsigned char *)out, mac, 32);
}

/* True when one space-separated entry of sig is exactly "v1,<want>". */
static bool header_has(const char *sig, size_t sig_len, const char *want)
{
    size_t i = 0;
    while (i < sig_len) {
        while (i < sig_len && sig[i] == ' ')
            i++;
        size_t start = i;
        while (i < sig_len && sig[i] != ' ')
            i++;
        if (i - start == 3 + SIG_TEXT && memcmp(sig + start, "v1,", 3) == 0 &&
            memcmp(sig + start + 3, want, SIG_TEXT) == 0)
            return true;
    }
    return false;
}

static void check_err_clean(const char *err)
{
    if (strstr(err, SECRET_1) != NULL || strstr(err, SECRET_2) != NULL)
        finding("an error message holds a secret");
}

static void verify_one(const char *id, size_t id_len, const char *ts, size_t ts_len, const char *sig,
                       size_t sig_len, const unsigned char *body, size_t body_len, unsigned flags)
{
    char want[INGEST_MAX_SECRETS][SIG_TEXT + 1];
    for (size_t k = 0; k < secrets.count; k++)
        expected_sig(&secrets.secrets[k], id, id_len, ts, ts_len, body, body_len, want[k]);

    /* The header as sent: the fuzzed one, with the real entry added when asked. */
    bool added = flags & 4;
    size_t hlen = sig_len + (added ? 1 + 3 + SIG_TEXT : 0);
    char *header = malloc(hlen ? hlen : 1);
    if (header == NULL)
        abort();
    if (!added) {
        memcpy(header, sig, sig_len);
    } else if (flags & 8) {
        memcpy(header, "v1,", 3);
        memcpy(header + 3, want[0], SIG_TEXT);
        header[3 + SIG_TEXT] = ' ';
        memcpy(header + 4 + SIG_TEXT, sig, sig_len);
    } else {
        memcpy(header, sig, sig_len);
        header[sig_len] = ' ';
        memcpy(header + sig_len + 1, "v1,", 3);
        memcpy(header + sig_len + 4, want[0], SIG_TEXT);
    }

    char err[256] = "";
    ingest_result r = ingest_verify_signature(&secrets, id, id_len, ts, ts_len, header, hlen, body, body_len, NOW_S,
                                              err, sizeof err);
    if (ingest_status_of(r) == 500)
        finding("a result outside the enum");
    if (r == INGEST_OK) {
        bool real = false;
        for (size_t k = 0; k < secrets.count; k++)
            real |= header_has(header, hlen, want[k]);
        if (!real)
            finding("accepted without a real HMAC of the body in the header");
    } else {
        if (err[0] == '\0')
            finding("refused without a reason");
        check_err_clean(err);
        if (added && (r == INGEST_ERR_NO_MATCH || r == INGEST_ERR_BAD_SIGNATURE_HEADER))
            finding("the real signature was in the header and did not match");
    }
    free(header);
}

/* Next '\n'-terminated field of [*p, end); the last one runs to the end. */
static const char *next_field(const char **p, const char *end, size_t *len)
{
    const char *start = *p;
    const char *nl = memchr(start, '\n', (size_t)(end - start));
    const char *stop = nl != NULL ? nl : end;
    *len = (size_t)(stop - start);
    *p = nl != NULL ? nl + 1 : end;
    return start;
}

static void fuzz_secrets(const char *text, size_t len)
{
    char *list = malloc(len + 1);
    if (list == NULL)
        abort();
    memcpy(list, text, len);
    list[len] = '\0'; /* an embedded NUL ends the list, as in a C string from the config */
    ingest_secrets parsed;
    memset(&parsed, 0xa5, sizeof parsed);
    char err[256] = "";
    if (ingest_parse_secrets(list, &parsed, err, sizeof err) != 0) {
        const unsigned char *b = (const unsigned char *)&parsed;
        for (size_t i = 0; i < sizeof parsed; i++)
            if (b[i] != 0)
                finding("a refused secret list is not wiped");
        if (err[0] == '\0')
            finding("a refused secret list without a reason");
        /* "names the entry by position, never its value": no long token of the list in err */
        for (char *tok = strtok(list, ", \t\n\v\f\r"); tok != NULL; tok = strtok(NULL, ", \t\n\v\f\r"))
            if (strlen(tok) >= 12 && strstr(err, tok) != NULL)
                finding("the error message quotes a secret");
        free(list);
        return;
    }
    free(list);
    if (parsed.count < 1 || parsed.count > INGEST_MAX_SECRETS)
        finding("a parsed secret list with a count outside 1..8");
    for (size_t k = 0; k < parsed.count; k++)
        if (parsed.secrets[k].len < 24 || parsed.secrets[k].len > INGEST_KEY_MAX)
            finding("a parsed key outside 24..64 bytes");
    char sig[128];
    static const unsigned char body[] = "{\"type\":\"user.created\"}";
    if (ingest_sign(&parsed.secrets[0], "msg_1", NOW_S, body, sizeof body - 1, sig, sizeof sig) != 0)
        finding("ingest_sign failed with a parsed key");
    if (ingest_verify_signature(&parsed, "msg_1", 5, "1700000000", 10, sig, strlen(sig), body, sizeof body - 1,
                                NOW_S, err, sizeof err) != INGEST_OK)
        finding("a parsed key does not verify its own signature");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256];
    if (ingest_parse_secrets("whsec_" SECRET_1 " " SECRET_2, &secrets, err, sizeof err) != 0 || secrets.count != 2) {
        fprintf(stderr, "fuzz_verify: the fixed secrets do not parse: %s\n", err);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned flags = data[0];
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    switch (flags % 3) {
    case 0: {
        size_t id_len, ts_len, sig_len;
        const char *id = next_field(&p, end, &id_len);
        const char *ts = next_field(&p, end, &ts_len);
        const char *sig = next_field(&p, end, &sig_len);
        verify_one(id, id_len, ts, ts_len, sig, sig_len, (const unsigned char *)p, (size_t)(end - p), flags);
        break;
    }
    case 1: {
        static const char body[] = "{\"type\":\"session.created\",\"data\":{}}";
        verify_one("msg_fuzz", 8, "1700000100", 10, p, (size_t)(end - p), (const unsigned char *)body,
                   sizeof body - 1, flags);
        break;
    }
    default:
        fuzz_secrets(p, (size_t)(end - p));
        break;
    }
    return 0;
}
