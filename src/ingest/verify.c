/*
 * verify.c: Standard Webhooks / Svix signature checks over the raw body, the
 * secret list parser, and the result -> HTTP status / metric label tables.
 * Nothing here looks at the JSON: a delivery is trusted only once this says so.
 */
#include "ingest/ingest.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "util/util.h"

#define SIG_LEN 32          /* HMAC-SHA256 */
#define SIG_B64_MAX 128     /* longer v1 values cannot be a 32-byte signature: skipped undecoded */
#define SECRET_B64_MAX 128  /* 64 bytes need 88 characters; anything past this is refused */
#define TS_DIGITS_MAX 19

static bool b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* The 6-bit value of a base64 character (b64_char is true for it). */
static unsigned b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : 63;
}

/*
 * Strict standard base64 with padding. EVP_DecodeBlock alone is not enough: it
 * skips surrounding whitespace, and it counts '=' padding as zero bytes, so a
 * 31-byte value would come back as 33 bytes and could be compared as a 32-byte one.
 * Canonical only: before padding the last character carries 2 (one '=') or 4
 * (two) bits that are not data, and EVP_DecodeBlock ignores them, so four texts
 * would decode to the same 32-byte MAC. The reference libraries compare the
 * base64 text, so those bits must be zero (found by tests/fuzz/fuzz_verify.c).
 * Returns the real decoded length, or -1 when the text is not valid base64 or
 * does not fit in outlen.
 */
static int b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen)
{
    if (inlen == 0 || inlen % 4 != 0 || inlen > INT32_MAX)
        return -1;
    size_t pad = 0;
    if (in[inlen - 1] == '=')
        pad++;
    if (pad == 1 && in[inlen - 2] == '=')
        pad++;
    for (size_t i = 0; i < inlen - pad; i++)
        if (!b64_char((unsigned char)in[i]))
            return -1;
    if (pad > 0 && (b64_value((unsigned char)in[inlen - pad - 1]) & (pad == 1 ? 0x3 : 0xf)) != 0)
        return -1;
    size_t raw = inlen / 4 * 3;
    if (raw > outlen)
        return -1;
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)inlen);
    if (n < 0 || (size_t)n != raw)
        return -1;
    return (int)(raw - pad);
}

int ingest_parse_secrets(const char *list, ingest_secrets *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (list == NULL)
        return util_err(err, errlen, "no webhook secret given");
    const char *p = list;
    size_t pos = 0;
    for (;;) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        const char *start = p;
        while (*p != '\0' && *p != ',' && !isspace((unsigned char)*p))
            p++;
        size_t len = (size_t)(p - start);
        pos++;
        if (out->count == INGEST_MAX_SECRETS) {
            OPENSSL_cleanse(out, sizeof *out);
            return util_err(err, errlen, "too many secrets (at most %d)", INGEST_MAX_SECRETS);
        }
        if (len > 6 && memcmp(start, "whsec_", 6) == 0) {
            start += 6;
            len -= 6;
        }
        if (len > SECRET_B64_MAX) {
            OPENSSL_cleanse(out, sizeof *out);
            return util_err(err, errlen, "secret #%zu is too long (a key is at most %d bytes)", pos,
                            INGEST_KEY_MAX);
        }
        unsigned char buf[SECRET_B64_MAX / 4 * 3];
        int n = b64_decode(start, len, buf, sizeof buf);
        if (n < 0) {
            OPENSSL_cleanse(out, sizeof *out);
            OPENSSL_cleanse(buf, sizeof buf);
            return util_err(err, errlen, "secret #%zu is not valid base64", pos);
        }
        if (n < 24 || n > INGEST_KEY_MAX) {
            OPENSSL_cleanse(out, sizeof *out);
            OPENSSL_cleanse(buf, sizeof buf);
            return util_err(err, errlen, "secret #%zu decodes to %d bytes; a key must be 24 to %d bytes",
                            pos, n, INGEST_KEY_MAX);
        }
        ingest_secret *s = &out->secrets[out->count++];
        memcpy(s->key, buf, (size_t)n);
        s->len = (size_t)n;
        OPENSSL_cleanse(buf, sizeof buf);
    }
    if (out->count == 0)
        return util_err(err, errlen, "no webhook secret given");
    return 0;
}

int ingest_parse_instances(char *const *envp, ingest_instances *out, char *err, size_t errlen)
{
    static const char prefix[] = INGEST_SECRET_ENV "_";
    const size_t plen = sizeof prefix - 1;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        const char *var = envp[i], *eq = strchr(var, '=');
        if (eq == NULL || strncmp(var, prefix, plen) != 0)
            continue;
        const char *name = var + plen;
        size_t nlen = (size_t)(eq - name);
        /* the variable's name is ours to show; its value never is */
        int vlen = (int)(eq - var);
        if (eq[1] == '\0')
            continue;
        bool ok = nlen > 0 && nlen < INGEST_INSTANCE_NAME_MAX;
        for (size_t k = 0; ok && k < nlen; k++)
            ok = isalnum((unsigned char)name[k]) || name[k] == '_';
        if (!ok) {
            OPENSSL_cleanse(out, sizeof *out);
            return util_err(err, errlen, "%.*s: an instance name is 1 to %d letters, digits or '_'", vlen, var,
                            INGEST_INSTANCE_NAME_MAX - 1);
        }
        if (ingest_instance_secrets(out, name, nlen) != NULL) {
            OPENSSL_cleanse(out, sizeof *out);
            return util_err(err, errlen, "%.*s: instance '%.*s' is set twice (names are case-insensitive)", vlen,
                            var, (int)nlen, name);
        }
        if (out->count == INGEST_MAX_INSTANCES) {
            OPENSSL_cleanse(out, sizeof *out);
            return util_err(err, errlen, "%.*s: too many instances (at most %d)", vlen, var, INGEST_MAX_INSTANCES);
        }
        ingest_instance *in = &out->list[out->count];
        for (size_t k = 0; k < nlen; k++)
            in->name[k] = (char)tolower((unsigned char)name[k]);
        char sub[UTIL_ERRLEN];
        if (ingest_parse_secrets(eq + 1, &in->secrets, sub, sizeof sub) < 0) {
            OPENSSL_cleanse(out, sizeof *out);
            return util_err(err, errlen, "%.*s: %s", vlen, var, sub);
        }
        out->count++;
    }
    return 0;
}

const ingest_secrets *ingest_instance_secrets(const ingest_instances *in, const char *name, size_t len)
{
    if (in == NULL || name == NULL || len == 0 || len >= INGEST_INSTANCE_NAME_MAX)
        return NULL;
    for (size_t i = 0; i < in->count; i++)
        if (strlen(in->list[i].name) == len && strncasecmp(in->list[i].name, name, len) == 0)
            return &in->list[i].secrets;
    return NULL;
}

/* HMAC-SHA256 over "{id}.{ts}.{body}" fed in pieces, so the body is never copied. */
static int hmac_content(EVP_MAC *mac, const ingest_secret *secret, const char *id, size_t id_len,
                        const char *ts, size_t ts_len, const unsigned char *body, size_t body_len,
                        unsigned char out[SIG_LEN])
{
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    if (ctx == NULL)
        return -1;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t outl = 0;
    int ok = EVP_MAC_init(ctx, secret->key, secret->len, params) &&
             EVP_MAC_update(ctx, (const unsigned char *)id, id_len) &&
             EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
             EVP_MAC_update(ctx, (const unsigned char *)ts, ts_len) &&
             EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
             (body_len == 0 || EVP_MAC_update(ctx, body, body_len)) &&
             EVP_MAC_final(ctx, out, &outl, SIG_LEN) && outl == SIG_LEN;
    EVP_MAC_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* The id becomes part of the signed string and the idempotency key: a '.' would
 * make "{id}.{ts}.{body}" ambiguous, and control bytes have no business in a key. */
static bool id_ok(const char *id, size_t len)
{
    if (len == 0 || len > EVENT_ID_MAX - 1)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c <= 0x20 || c >= 0x7f || c == '.')
            return false;
    }
    return true;
}

static int parse_ts(const char *ts, size_t len, int64_t *out)
{
    if (len == 0 || len > TS_DIGITS_MAX)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (ts[i] < '0' || ts[i] > '9')
            return -1;
        int d = ts[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

ingest_result ingest_verify_signature(const ingest_secrets *secrets,
                                      const char *id, size_t id_len,
                                      const char *timestamp, size_t ts_len,
                                      const char *signature, size_t sig_len,
                                      const unsigned char *body, size_t body_len,
                                      int64_t now_s, char *err, size_t errlen)
{
    if (id == NULL || id_len == 0 || timestamp == NULL || ts_len == 0 || signature == NULL ||
        sig_len == 0) {
        util_err(err, errlen, "missing %s header",
                 (id == NULL || id_len == 0)             ? "svix-id"
                 : (timestamp == NULL || ts_len == 0)    ? "svix-timestamp"
                                                         : "svix-signature");
        return INGEST_ERR_MISSING_HEADERS;
    }
    if (!id_ok(id, id_len)) {
        util_err(err, errlen, "svix-id is not a usable id (1 to %d printable bytes, no '.')",
                 EVENT_ID_MAX - 1);
        return INGEST_ERR_MISSING_HEADERS;
    }
    int64_t ts;
    if (parse_ts(timestamp, ts_len, &ts) < 0) {
        util_err(err, errlen, "svix-timestamp is not a whole number of seconds");
        return INGEST_ERR_BAD_TIMESTAMP;
    }
    /* Unsigned differences: no overflow whatever now_s the caller passes. */
    if (now_s > ts && (uint64_t)now_s - (uint64_t)ts > INGEST_TOLERANCE_S) {
        util_err(err, errlen, "timestamp too old");
        return INGEST_ERR_TOO_OLD;
    }
    if (ts > now_s && (uint64_t)ts - (uint64_t)now_s > INGEST_TOLERANCE_S) {
        util_err(err, errlen, "timestamp too new");
        return INGEST_ERR_TOO_NEW;
    }
    /* Fail closed: no secret means nothing can be trusted, not that nothing is checked. */
    if (secrets == NULL || secrets->count == 0 || secrets->count > INGEST_MAX_SECRETS) {
        util_err(err, errlen, "no webhook secret configured");
        return INGEST_ERR_NO_MATCH;
    }
    if (body == NULL && body_len > 0) {
        util_err(err, errlen, "no body");
        return INGEST_ERR_NO_MATCH;
    }

    unsigned char expect[INGEST_MAX_SECRETS][SIG_LEN];
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) {
        util_err(err, errlen, "HMAC unavailable");
        return INGEST_ERR_NO_MATCH;
    }
    for (size_t k = 0; k < secrets->count; k++) {
        if (hmac_content(mac, &secrets->secrets[k], id, id_len, timestamp, ts_len, body, body_len,
                         expect[k]) < 0) {
            EVP_MAC_free(mac);
            util_err(err, errlen, "HMAC computation failed");
            return INGEST_ERR_NO_MATCH;
        }
    }
    EVP_MAC_free(mac);

    /* Every entry is looked at: during rotation the matching one may be anywhere. */
    size_t shaped = 0, v1 = 0;
    bool match = false;
    size_t i = 0;
    while (i < sig_len && !match) {
        while (i < sig_len && signature[i] == ' ')
            i++;
        size_t start = i;
        while (i < sig_len && signature[i] != ' ')
            i++;
        if (i == start)
            break;
        const char *entry = signature + start;
        size_t len = i - start;
        const char *comma = memchr(entry, ',', len);
        if (comma == NULL)
            continue;
        shaped++;
        size_t vlen = (size_t)(comma - entry);
        if (vlen != 2 || memcmp(entry, "v1", 2) != 0)
            continue; /* v1a (ed25519) and unknown versions: not ours to judge */
        v1++;
        const char *val = comma + 1;
        size_t val_len = len - vlen - 1;
        unsigned char got[SIG_B64_MAX / 4 * 3];
        if (val_len > SIG_B64_MAX)
            continue;
        int n = b64_decode(val, val_len, got, sizeof got);
        /* Exact length first: a prefix of the real MAC must never compare equal
         * (CVE-2024-21491). */
        if (n != SIG_LEN)
            continue;
        for (size_t k = 0; k < secrets->count; k++)
            if (CRYPTO_memcmp(got, expect[k], SIG_LEN) == 0)
                match = true;
    }
    OPENSSL_cleanse(expect, sizeof expect);
    if (match)
        return INGEST_OK;
    if (shaped == 0) {
        util_err(err, errlen, "svix-signature has no \"version,signature\" entry");
        return INGEST_ERR_BAD_SIGNATURE_HEADER;
    }
    if (v1 == 0)
        util_err(err, errlen, "no v1 signature in svix-signature");
    else
        util_err(err, errlen, "no signature matched");
    return INGEST_ERR_NO_MATCH;
}

int ingest_sign(const ingest_secret *secret, const char *id, int64_t timestamp_s,
                const unsigned char *body, size_t body_len, char *out, size_t outlen)
{
    char ts[24];
    int tl = snprintf(ts, sizeof ts, "%" PRId64, timestamp_s);
    if (secret == NULL || id == NULL || out == NULL || tl < 0 || (body == NULL && body_len > 0))
        return -1;
    /* "v1," + 44 base64 characters + NUL */
    if (outlen < 3 + 4 * ((SIG_LEN + 2) / 3) + 1)
        return -1;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL)
        return -1;
    unsigned char sig[SIG_LEN];
    int rc = hmac_content(mac, secret, id, strlen(id), ts, (size_t)tl, body, body_len, sig);
    EVP_MAC_free(mac);
    if (rc < 0)
        return -1;
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, sig, SIG_LEN);
    return 0;
}

int ingest_status_of(ingest_result r)
{
    switch (r) {
    case INGEST_OK:
        return 200;
    case INGEST_ERR_MISSING_HEADERS:
    case INGEST_ERR_BAD_TIMESTAMP:
    case INGEST_ERR_BAD_SIGNATURE_HEADER:
    case INGEST_ERR_BAD_JSON:
    case INGEST_ERR_BAD_EVENT:
        return 400;
    case INGEST_ERR_TOO_OLD:
    case INGEST_ERR_TOO_NEW:
    case INGEST_ERR_NO_MATCH:
        return 401;
    case INGEST_ERR_TOO_LARGE:
        return 413;
    }
    return 500;
}

const char *ingest_reason_label(ingest_result r)
{
    switch (r) {
    case INGEST_OK:
        return "ok";
    case INGEST_ERR_MISSING_HEADERS:
        return "missing_headers";
    case INGEST_ERR_BAD_TIMESTAMP:
        return "bad_timestamp";
    case INGEST_ERR_TOO_OLD:
        return "too_old";
    case INGEST_ERR_TOO_NEW:
        return "too_new";
    case INGEST_ERR_NO_MATCH:
        return "no_match";
    case INGEST_ERR_BAD_SIGNATURE_HEADER:
        return "bad_signature_header";
    case INGEST_ERR_BAD_JSON:
        return "bad_json";
    case INGEST_ERR_BAD_EVENT:
        return "bad_event";
    case INGEST_ERR_TOO_LARGE:
        return "too_large";
    }
    return "unknown";
}
