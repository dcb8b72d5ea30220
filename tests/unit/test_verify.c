/* test_verify.c: signature checks against the reference vectors and the known attacks. */
#include <string.h>

#include <openssl/evp.h>

#include "check.h"
#include "ingest/ingest.h"

/* Vector A: standard-webhooks libraries' tests */
#define A_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define A_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define A_TS "1614265330"
#define A_TS_N 1614265330LL
#define A_BODY "{\"test\": 2432232314}"
#define A_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define A_SIG_BAD "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="

/* Vector B: svix Rust library's test_sign */
#define B_SECRET "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
#define B_ID "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"
#define B_TS "1649367553"
#define B_TS_N 1649367553LL
#define B_BODY "{\"email\":\"test@example.com\",\"username\":\"test_user\"}"
#define B_SIG "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="

static char err[256];

static ingest_result verify(const ingest_secrets *s, const char *id, const char *ts, const char *sig,
                            const char *body, int64_t now)
{
    err[0] = '\0';
    return ingest_verify_signature(s, id, id ? strlen(id) : 0, ts, ts ? strlen(ts) : 0, sig,
                                   sig ? strlen(sig) : 0, (const unsigned char *)body, strlen(body), now,
                                   err, sizeof err);
}

static ingest_secrets parse(const char *list)
{
    ingest_secrets s;
    err[0] = '\0';
    if (ingest_parse_secrets(list, &s, err, sizeof err) != 0)
        printf("parse failed: %s\n", err);
    return s;
}

/* "v1," + base64 of the first n bytes of sig (n may exceed 32: extra bytes are 0x41). */
static void resized(const char *valid, size_t n, char *out)
{
    unsigned char raw[64], tmp[64];
    memset(raw, 0x41, sizeof raw);
    EVP_DecodeBlock(tmp, (const unsigned char *)valid + 3, (int)strlen(valid + 3));
    memcpy(raw, tmp, 32);
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, raw, (int)n);
}

static void test_vectors(void)
{
    ingest_secrets a = parse(A_SECRET), b = parse(B_SECRET);
    CHECK("vector A verifies", verify(&a, A_ID, A_TS, A_SIG, A_BODY, A_TS_N) == INGEST_OK);
    CHECK("vector B verifies", verify(&b, B_ID, B_TS, B_SIG, B_BODY, B_TS_N) == INGEST_OK);
    CHECK("vector A wrong last char fails", verify(&a, A_ID, A_TS, A_SIG_BAD, A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);
    CHECK("no match message", strcmp(err, "no signature matched") == 0);
    CHECK("vector A with B's secret fails", verify(&b, A_ID, A_TS, A_SIG, A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);

    char prefix[16];
    memcpy(prefix, A_SIG, 11); /* "v1," + first 8 base64 characters */
    prefix[11] = '\0';
    CHECK("first 8 chars of a valid signature fail", verify(&a, A_ID, A_TS, prefix, A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);
    memcpy(prefix, A_SIG + 3, 8);
    prefix[8] = '\0';
    CHECK("first 8 chars, no version, fail", verify(&a, A_ID, A_TS, prefix, A_BODY, A_TS_N) < 0);
    CHECK("bare v1, fails", verify(&a, A_ID, A_TS, "v1,", A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);
    CHECK("bare v1, is 401", ingest_status_of(verify(&a, A_ID, A_TS, "v1,", A_BODY, A_TS_N)) == 401);
    CHECK("v1 without padding fails",
          verify(&a, A_ID, A_TS, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE", A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);

    CHECK("valid entry last among several passes",
          verify(&a, A_ID, A_TS, "v1,Zm9vYmFy v2,abc " A_SIG_BAD " v1a,xyz= " A_SIG, A_BODY, A_TS_N) == INGEST_OK);
    CHECK("valid entry first among several passes",
          verify(&a, A_ID, A_TS, A_SIG " " A_SIG_BAD " v2,x", A_BODY, A_TS_N) == INGEST_OK);
    CHECK("extra spaces between entries tolerated",
          verify(&a, A_ID, A_TS, "  v2,x   " A_SIG "  ", A_BODY, A_TS_N) == INGEST_OK);
    CHECK("valid value under another version fails",
          verify(&a, A_ID, A_TS, "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);
    CHECK("valid value under V1 fails",
          verify(&a, A_ID, A_TS, "V1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);
    /* 'F' differs from 'E' only in the 2 bits past the MAC's last byte: same bytes,
     * other text, which the reference libraries (comparing text) refuse */
    CHECK("non-canonical base64 of the real MAC fails",
          verify(&a, A_ID, A_TS, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=", A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);
    CHECK("invalid base64 entry skipped, valid one later passes",
          verify(&a, A_ID, A_TS, "v1,!!!! v1,==== " A_SIG, A_BODY, A_TS_N) == INGEST_OK);

    char sig[128];
    resized(A_SIG, 31, sig);
    CHECK("signature decoded to 31 bytes fails", verify(&a, A_ID, A_TS, sig, A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);
    resized(A_SIG, 33, sig);
    CHECK("signature decoded to 33 bytes fails", verify(&a, A_ID, A_TS, sig, A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);
    resized(A_SIG, 64, sig);
    CHECK("signature decoded to 64 bytes fails", verify(&a, A_ID, A_TS, sig, A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);
    resized(A_SIG, 32, sig);
    CHECK("resized helper sanity: 32 bytes passes", verify(&a, A_ID, A_TS, sig, A_BODY, A_TS_N) == INGEST_OK);

    CHECK("tampered body fails", verify(&a, A_ID, A_TS, A_SIG, "{\"test\": 2432232315}", A_TS_N) == INGEST_ERR_NO_MATCH);
    CHECK("body with trailing newline fails", verify(&a, A_ID, A_TS, A_SIG, A_BODY "\n", A_TS_N) == INGEST_ERR_NO_MATCH);
    CHECK("re-serialised body fails", verify(&a, A_ID, A_TS, A_SIG, "{\"test\":2432232314}", A_TS_N) == INGEST_ERR_NO_MATCH);
    CHECK("tampered id fails", verify(&a, "msg_p5jXN8AQM9LWM0D4loKWxJel", A_TS, A_SIG, A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);
    CHECK("other timestamp fails", verify(&a, A_ID, "1614265331", A_SIG, A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);
    CHECK("leading zero timestamp is other content",
          verify(&a, A_ID, "01614265330", A_SIG, A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);
}

static void test_secrets_forms(void)
{
    ingest_secrets s = parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    CHECK("secret without whsec_ accepted", s.count == 1 && s.secrets[0].len == 24);
    CHECK("secret without whsec_ verifies", verify(&s, A_ID, A_TS, A_SIG, A_BODY, A_TS_N) == INGEST_OK);

    s = parse(B_SECRET " " A_SECRET);
    CHECK("rotation: two secrets parsed", s.count == 2);
    CHECK("rotation: signature by the second passes", verify(&s, A_ID, A_TS, A_SIG, A_BODY, A_TS_N) == INGEST_OK);
    CHECK("rotation: signature by the first passes", verify(&s, B_ID, B_TS, B_SIG, B_BODY, B_TS_N) == INGEST_OK);
    CHECK("rotation: two entries, second secret's last",
          verify(&s, A_ID, A_TS, A_SIG_BAD " " A_SIG, A_BODY, A_TS_N) == INGEST_OK);

    ingest_secrets none;
    memset(&none, 0, sizeof none);
    CHECK("no secret fails closed", verify(&none, A_ID, A_TS, A_SIG, A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);
    CHECK("NULL secrets fail closed", verify(NULL, A_ID, A_TS, A_SIG, A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);
}

static void test_timestamps(void)
{
    ingest_secrets a = parse(A_SECRET);
    CHECK("301 s old is TOO_OLD", verify(&a, A_ID, A_TS, A_SIG, A_BODY, A_TS_N + 301) == INGEST_ERR_TOO_OLD);
    CHECK("too old message", strcmp(err, "timestamp too old") == 0);
    CHECK("301 s ahead is TOO_NEW", verify(&a, A_ID, A_TS, A_SIG, A_BODY, A_TS_N - 301) == INGEST_ERR_TOO_NEW);
    CHECK("too new message", strcmp(err, "timestamp too new") == 0);
    CHECK("exactly 300 s old passes", verify(&a, A_ID, A_TS, A_SIG, A_BODY, A_TS_N + 300) == INGEST_OK);
    CHECK("exactly 300 s ahead passes", verify(&a, A_ID, A_TS, A_SIG, A_BODY, A_TS_N - 300) == INGEST_OK);
    CHECK("too old checked even with a bad signature",
          verify(&a, A_ID, A_TS, "v1,", A_BODY, A_TS_N + 10000) == INGEST_ERR_TOO_OLD);
    CHECK("now far in the future, no overflow",
          verify(&a, A_ID, A_TS, A_SIG, A_BODY, INT64_MAX) == INGEST_ERR_TOO_OLD);
    CHECK("now far in the past, no overflow",
          verify(&a, A_ID, A_TS, A_SIG, A_BODY, INT64_MIN) == INGEST_ERR_TOO_NEW);

    CHECK("non-numeric timestamp", verify(&a, A_ID, "abc", A_SIG, A_BODY, A_TS_N) == INGEST_ERR_BAD_TIMESTAMP);
    CHECK("signed timestamp", verify(&a, A_ID, "+1614265330", A_SIG, A_BODY, A_TS_N) == INGEST_ERR_BAD_TIMESTAMP);
    CHECK("negative timestamp", verify(&a, A_ID, "-1614265330", A_SIG, A_BODY, A_TS_N) == INGEST_ERR_BAD_TIMESTAMP);
    CHECK("timestamp with space", verify(&a, A_ID, " 1614265330", A_SIG, A_BODY, A_TS_N) == INGEST_ERR_BAD_TIMESTAMP);
    CHECK("timestamp with fraction", verify(&a, A_ID, "1614265330.5", A_SIG, A_BODY, A_TS_N) == INGEST_ERR_BAD_TIMESTAMP);
    CHECK("timestamp in ms is too new", verify(&a, A_ID, "1614265330000", A_SIG, A_BODY, A_TS_N) == INGEST_ERR_TOO_NEW);
    CHECK("20-digit timestamp", verify(&a, A_ID, "16142653300000000000", A_SIG, A_BODY, A_TS_N) == INGEST_ERR_BAD_TIMESTAMP);
    CHECK("19-digit overflow", verify(&a, A_ID, "9999999999999999999", A_SIG, A_BODY, A_TS_N) == INGEST_ERR_BAD_TIMESTAMP);
    CHECK("bad timestamp is 400", ingest_status_of(INGEST_ERR_BAD_TIMESTAMP) == 400);
}

static void test_headers(void)
{
    ingest_secrets a = parse(A_SECRET);
    CHECK("missing id", verify(&a, NULL, A_TS, A_SIG, A_BODY, A_TS_N) == INGEST_ERR_MISSING_HEADERS);
    CHECK("missing id message", strcmp(err, "missing svix-id header") == 0);
    CHECK("empty id", verify(&a, "", A_TS, A_SIG, A_BODY, A_TS_N) == INGEST_ERR_MISSING_HEADERS);
    CHECK("missing timestamp", verify(&a, A_ID, NULL, A_SIG, A_BODY, A_TS_N) == INGEST_ERR_MISSING_HEADERS);
    CHECK("empty timestamp", verify(&a, A_ID, "", A_SIG, A_BODY, A_TS_N) == INGEST_ERR_MISSING_HEADERS);
    CHECK("missing signature", verify(&a, A_ID, A_TS, NULL, A_BODY, A_TS_N) == INGEST_ERR_MISSING_HEADERS);
    CHECK("empty signature", verify(&a, A_ID, A_TS, "", A_BODY, A_TS_N) == INGEST_ERR_MISSING_HEADERS);
    CHECK("id with a dot", verify(&a, "msg.1", A_TS, A_SIG, A_BODY, A_TS_N) == INGEST_ERR_MISSING_HEADERS);
    CHECK("id with a newline", verify(&a, "msg\n1", A_TS, A_SIG, A_BODY, A_TS_N) == INGEST_ERR_MISSING_HEADERS);
    char longid[200];
    memset(longid, 'm', 128);
    longid[128] = '\0';
    CHECK("id of 128 bytes", verify(&a, longid, A_TS, A_SIG, A_BODY, A_TS_N) == INGEST_ERR_MISSING_HEADERS);
    longid[127] = '\0';
    CHECK("id of 127 bytes reaches the signature check",
          verify(&a, longid, A_TS, A_SIG, A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);

    CHECK("header without any version,value entry",
          verify(&a, A_ID, A_TS, "garbage", A_BODY, A_TS_N) == INGEST_ERR_BAD_SIGNATURE_HEADER);
    CHECK("header of spaces only", verify(&a, A_ID, A_TS, "   ", A_BODY, A_TS_N) == INGEST_ERR_BAD_SIGNATURE_HEADER);
    CHECK("only other versions", verify(&a, A_ID, A_TS, "v2,abc v1a,def", A_BODY, A_TS_N) == INGEST_ERR_NO_MATCH);
    CHECK("only other versions message", strcmp(err, "no v1 signature in svix-signature") == 0);

    /* the signature header length is honoured, not its NUL */
    err[0] = '\0';
    const char *two = A_SIG " v2,x";
    CHECK("signature length honoured",
          ingest_verify_signature(&a, A_ID, strlen(A_ID), A_TS, strlen(A_TS), two, strlen(A_SIG),
                                  (const unsigned char *)A_BODY, strlen(A_BODY), A_TS_N, err, sizeof err) == INGEST_OK);
    CHECK("signature cut by length fails",
          ingest_verify_signature(&a, A_ID, strlen(A_ID), A_TS, strlen(A_TS), two, strlen(A_SIG) - 1,
                                  (const unsigned char *)A_BODY, strlen(A_BODY), A_TS_N, err, sizeof err) ==
              INGEST_ERR_NO_MATCH);
}

static void test_sign(void)
{
    ingest_secrets a = parse(A_SECRET), b = parse(B_SECRET);
    char out[128];
    CHECK("sign A", ingest_sign(&a.secrets[0], A_ID, A_TS_N, (const unsigned char *)A_BODY, strlen(A_BODY), out,
                                sizeof out) == 0);
    CHECK("sign A matches the vector", strcmp(out, A_SIG) == 0);
    CHECK("sign B", ingest_sign(&b.secrets[0], B_ID, B_TS_N, (const unsigned char *)B_BODY, strlen(B_BODY), out,
                                sizeof out) == 0);
    CHECK("sign B matches the vector", strcmp(out, B_SIG) == 0);

    const char *body = "{\"type\":\"user.created\",\"data\":{}}";
    CHECK("sign round-trip", ingest_sign(&b.secrets[0], "msg_round", 1700000000, (const unsigned char *)body,
                                         strlen(body), out, sizeof out) == 0);
    CHECK("round-trip verifies", verify(&b, "msg_round", "1700000000", out, body, 1700000100) == INGEST_OK);
    CHECK("round-trip with other secret fails",
          verify(&a, "msg_round", "1700000000", out, body, 1700000100) == INGEST_ERR_NO_MATCH);
    CHECK("sign empty body", ingest_sign(&b.secrets[0], "msg_e", 1700000000, NULL, 0, out, sizeof out) == 0);
    CHECK("empty body verifies", verify(&b, "msg_e", "1700000000", out, "", 1700000000) == INGEST_OK);
    CHECK("sign refuses a small buffer",
          ingest_sign(&b.secrets[0], "msg_e", 1700000000, NULL, 0, out, 47) < 0);
}

static void test_parse_secrets(void)
{
    ingest_secrets s;
    CHECK("list \"whsec_a, whsec_b\"",
          ingest_parse_secrets(A_SECRET ", " B_SECRET, &s, err, sizeof err) == 0 && s.count == 2);
    CHECK("list keys decoded", s.secrets[0].len == 24 && s.secrets[1].len == 24 &&
                                   memcmp(s.secrets[0].key, "\x31\xf2\x90", 3) == 0);
    CHECK("comma without space", ingest_parse_secrets(A_SECRET "," B_SECRET, &s, err, sizeof err) == 0 && s.count == 2);
    CHECK("empty list", ingest_parse_secrets("", &s, err, sizeof err) < 0 && s.count == 0);
    CHECK("empty list message", strcmp(err, "no webhook secret given") == 0);
    CHECK("separators only", ingest_parse_secrets(" , ,", &s, err, sizeof err) < 0);
    CHECK("NULL list", ingest_parse_secrets(NULL, &s, err, sizeof err) < 0);
    CHECK("bare prefix", ingest_parse_secrets("whsec_", &s, err, sizeof err) < 0);

    CHECK("bad base64", ingest_parse_secrets(A_SECRET " whsec_NOT*VALID*SECRET*zzzz", &s, err, sizeof err) < 0);
    CHECK("bad base64 names the position", strcmp(err, "secret #2 is not valid base64") == 0);
    CHECK("bad base64 message hides the value", strstr(err, "NOT*VALID") == NULL && strstr(err, "whsec") == NULL);
    CHECK("failed parse leaves nothing", s.count == 0 && s.secrets[0].len == 0);
    CHECK("unpadded base64 refused", ingest_parse_secrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", &s, err, sizeof err) < 0);

    /* 23 bytes: one short of the minimum */
    const char *short23 = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaQ=";
    CHECK("key of 23 bytes refused", ingest_parse_secrets(short23, &s, err, sizeof err) < 0);
    CHECK("short key message", strstr(err, "secret #1 decodes to 23 bytes") != NULL);
    CHECK("short key message hides the value", strstr(err, "MfKQ") == NULL);

    unsigned char raw[65];
    char list[512];
    memset(raw, 7, sizeof raw);
    memcpy(list, "whsec_", 6);
    EVP_EncodeBlock((unsigned char *)list + 6, raw, 64);
    CHECK("key of 64 bytes accepted", ingest_parse_secrets(list, &s, err, sizeof err) == 0 && s.secrets[0].len == 64);
    EVP_EncodeBlock((unsigned char *)list + 6, raw, 65);
    CHECK("key of 65 bytes refused", ingest_parse_secrets(list, &s, err, sizeof err) < 0);

    list[0] = '\0';
    for (int i = 0; i < INGEST_MAX_SECRETS; i++)
        strcat(list, A_SECRET " ");
    CHECK("8 secrets accepted", ingest_parse_secrets(list, &s, err, sizeof err) == 0 && s.count == 8);
    strcat(list, B_SECRET);
    CHECK("9 secrets refused", ingest_parse_secrets(list, &s, err, sizeof err) < 0 && s.count == 0);
    CHECK("too many message", strstr(err, "too many secrets") != NULL);
}

static void test_status(void)
{
    CHECK("ok is 200", ingest_status_of(INGEST_OK) == 200);
    CHECK("too old is 401", ingest_status_of(INGEST_ERR_TOO_OLD) == 401);
    CHECK("too new is 401", ingest_status_of(INGEST_ERR_TOO_NEW) == 401);
    CHECK("no match is 401", ingest_status_of(INGEST_ERR_NO_MATCH) == 401);
    CHECK("missing headers is 400", ingest_status_of(INGEST_ERR_MISSING_HEADERS) == 400);
    CHECK("bad signature header is 400", ingest_status_of(INGEST_ERR_BAD_SIGNATURE_HEADER) == 400);
    CHECK("bad json is 400", ingest_status_of(INGEST_ERR_BAD_JSON) == 400);
    CHECK("bad event is 400", ingest_status_of(INGEST_ERR_BAD_EVENT) == 400);
    CHECK("too large is 413", ingest_status_of(INGEST_ERR_TOO_LARGE) == 413);
    CHECK("label missing_headers", strcmp(ingest_reason_label(INGEST_ERR_MISSING_HEADERS), "missing_headers") == 0);
    CHECK("label too_old", strcmp(ingest_reason_label(INGEST_ERR_TOO_OLD), "too_old") == 0);
    CHECK("label too_new", strcmp(ingest_reason_label(INGEST_ERR_TOO_NEW), "too_new") == 0);
    CHECK("label no_match", strcmp(ingest_reason_label(INGEST_ERR_NO_MATCH), "no_match") == 0);
    CHECK("label bad_signature_header",
          strcmp(ingest_reason_label(INGEST_ERR_BAD_SIGNATURE_HEADER), "bad_signature_header") == 0);
    CHECK("label bad_timestamp", strcmp(ingest_reason_label(INGEST_ERR_BAD_TIMESTAMP), "bad_timestamp") == 0);
    CHECK("label bad_json", strcmp(ingest_reason_label(INGEST_ERR_BAD_JSON), "bad_json") == 0);
    CHECK("label bad_event", strcmp(ingest_reason_label(INGEST_ERR_BAD_EVENT), "bad_event") == 0);
    CHECK("label too_large", strcmp(ingest_reason_label(INGEST_ERR_TOO_LARGE), "too_large") == 0);
    CHECK("label ok", strcmp(ingest_reason_label(INGEST_OK), "ok") == 0);
}

/* VEILLE_WEBHOOK_SECRET_<NAME>: one secret list per instance, looked up by route name. */
static void test_parse_instances(void)
{
    static ingest_instances in;
    char e[256] = "";
    char *env[] = {"PATH=/bin", "VEILLE_WEBHOOK_SECRET=" A_SECRET, "VEILLE_WEBHOOK_SECRET_DEV=" A_SECRET,
                   "VEILLE_WEBHOOK_SECRET_Prod_2=" B_SECRET " " A_SECRET, "VEILLE_WEBHOOK_SECRET_EMPTY=",
                   "VEILLE_WEBHOOK_SECRETS=x", NULL};
    CHECK("instances: parsed", ingest_parse_instances(env, &in, e, sizeof e) == 0 && in.count == 2);
    CHECK("instances: names lower-cased", strcmp(in.list[0].name, "dev") == 0 && strcmp(in.list[1].name, "prod_2") == 0);
    const ingest_secrets *dev = ingest_instance_secrets(&in, "dev", 3), *prod = ingest_instance_secrets(&in, "PROD_2", 6);
    CHECK("instances: found case-insensitively", dev != NULL && dev->count == 1 && prod != NULL && prod->count == 2);
    CHECK("instances: unknown and prefix names not found",
          ingest_instance_secrets(&in, "de", 2) == NULL && ingest_instance_secrets(&in, "devx", 4) == NULL &&
              ingest_instance_secrets(&in, "empty", 5) == NULL && ingest_instance_secrets(&in, "", 0) == NULL);
    CHECK("instances: each verifies with its own secret",
          verify(dev, A_ID, A_TS, A_SIG, A_BODY, A_TS_N) == INGEST_OK &&
              verify(ingest_instance_secrets(&in, "prod_2", 6), B_ID, B_TS, B_SIG, B_BODY, B_TS_N) == INGEST_OK &&
              verify(dev, B_ID, B_TS, B_SIG, B_BODY, B_TS_N) == INGEST_ERR_NO_MATCH);
    char *bad_name[] = {"VEILLE_WEBHOOK_SECRET_BAD-NAME=" A_SECRET, NULL};
    CHECK("instances: bad name refused, named", ingest_parse_instances(bad_name, &in, e, sizeof e) < 0 &&
                                                     in.count == 0 && strstr(e, "VEILLE_WEBHOOK_SECRET_BAD-NAME:") != NULL);
    char *twice[] = {"VEILLE_WEBHOOK_SECRET_DEV=" A_SECRET, "VEILLE_WEBHOOK_SECRET_dev=" B_SECRET, NULL};
    CHECK("instances: the same name twice refused", ingest_parse_instances(twice, &in, e, sizeof e) < 0 &&
                                                        strstr(e, "set twice") != NULL);
    char *bad_secret[] = {"VEILLE_WEBHOOK_SECRET_DEV=whsec_short", NULL};
    CHECK("instances: bad secret refused, naming the variable not the value",
          ingest_parse_instances(bad_secret, &in, e, sizeof e) < 0 && strstr(e, "VEILLE_WEBHOOK_SECRET_DEV: secret #1") &&
              strstr(e, "short") == NULL);
    char *none[] = {NULL};
    CHECK("instances: none is not an error", ingest_parse_instances(none, &in, e, sizeof e) == 0 && in.count == 0);
}

int main(void)
{
    test_vectors();
    test_secrets_forms();
    test_timestamps();
    test_headers();
    test_sign();
    test_parse_secrets();
    test_parse_instances();
    test_status();
    return check_summary();
}
