/*
 * ingest.h: turns one raw webhook delivery into a trusted, typed event.
 * Two steps, in this order and never the other: verify the Standard Webhooks /
 * Svix signature over the exact bytes received, then decode the JSON.
 * See ../shared/reference/clerk-svix-webhooks.md for the scheme.
 */
#ifndef VEILLE_INGEST_H
#define VEILLE_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "event/event.h"

#define INGEST_MAX_SECRETS 8
#define INGEST_KEY_MAX 64
#define INGEST_TOLERANCE_S 300

typedef struct {
    unsigned char key[INGEST_KEY_MAX];
    size_t len;
} ingest_secret;

typedef struct {
    ingest_secret secrets[INGEST_MAX_SECRETS];
    size_t count;
} ingest_secrets;

/* Parse one or several secrets separated by spaces and/or commas: "whsec_<base64>"
 * (or bare base64, as the reference libraries accept). Each must decode to 24..64
 * bytes. Fails (never silently skips) on an empty list or any bad entry; the message
 * names the entry by position, never its value. Base64 is the standard alphabet with
 * its '=' padding, nothing else. On failure *out is wiped (count 0). */
int ingest_parse_secrets(const char *list, ingest_secrets *out, char *err, size_t errlen);

/* Several Clerk applications (a development and a production instance): one
 * secret list per name, from VEILLE_WEBHOOK_SECRET_<NAME>=..., served at
 * /webhooks/clerk/<name> (NAME lower-cased). The unnamed VEILLE_WEBHOOK_SECRET
 * is not one of them: it keeps /webhooks/clerk. */
#define INGEST_SECRET_ENV "VEILLE_WEBHOOK_SECRET"
#define INGEST_MAX_INSTANCES 16
#define INGEST_INSTANCE_NAME_MAX 32

typedef struct {
    char name[INGEST_INSTANCE_NAME_MAX]; /* lower case: the route's last segment */
    ingest_secrets secrets;
} ingest_instance;

typedef struct {
    ingest_instance list[INGEST_MAX_INSTANCES];
    size_t count;
} ingest_instances;

/* Every VEILLE_WEBHOOK_SECRET_<NAME> of envp (an environ-style NULL-terminated
 * array); an empty value is unset, as for the unnamed variable. NAME is letters,
 * digits and '_' (1..31), matched case-insensitively: DEV and dev are one
 * instance, and given twice is an error. err names the variable, never its value.
 * On failure *out is wiped (count 0). */
int ingest_parse_instances(char *const *envp, ingest_instances *out, char *err, size_t errlen);

/* The secrets of instance name[0..len) (case-insensitive), or NULL. */
const ingest_secrets *ingest_instance_secrets(const ingest_instances *in, const char *name, size_t len);

/* Why a delivery was refused. Each maps to one HTTP status (see ingest_status_of). */
typedef enum {
    INGEST_OK = 0,
    INGEST_ERR_MISSING_HEADERS = -1, /* 400: id / timestamp / signature absent, or id unusable */
    INGEST_ERR_BAD_TIMESTAMP = -2,   /* 400: not 1..19 digits */
    INGEST_ERR_TOO_OLD = -3,         /* 401 */
    INGEST_ERR_TOO_NEW = -4,         /* 401 */
    INGEST_ERR_NO_MATCH = -5,        /* 401: no v1 entry matched */
    INGEST_ERR_BAD_SIGNATURE_HEADER = -6, /* 400: no "version,value" entry at all */
    INGEST_ERR_BAD_JSON = -7,        /* 400 */
    INGEST_ERR_BAD_EVENT = -8,       /* 400: a required field missing or of the wrong type */
    INGEST_ERR_TOO_LARGE = -9,       /* 413: set by the HTTP layer, never by this module */
} ingest_result;

/* 200 for INGEST_OK, 500 for a value outside the enum. */
int ingest_status_of(ingest_result r);
/* Short metric label: "missing_headers", "too_old", "no_match", ... */
const char *ingest_reason_label(ingest_result r);

/* Verify one delivery. id/timestamp/signature are the header values (not
 * NUL-terminated, with lengths). now_s is the current Unix time in seconds.
 * Accepts if ANY "v1,<base64>" entry matches ANY secret; entries of other versions
 * are skipped; a decoded signature of the wrong length never matches; comparison
 * is constant time (CRYPTO_memcmp). The id and timestamp must not contain '.'.
 * err gets a human reason ("timestamp too old"), never key material.
 * Checked in this order, first failure wins:
 *   - any header NULL or empty                                  -> MISSING_HEADERS
 *   - id longer than EVENT_ID_MAX-1, or holding '.', space,
 *     control or non-ASCII bytes (it is part of the signed
 *     string and the idempotency key)                           -> MISSING_HEADERS
 *   - timestamp not 1..19 ASCII digits (no sign, no space)      -> BAD_TIMESTAMP
 *   - more than INGEST_TOLERANCE_S off now_s, either way
 *     (exactly 300 s passes)                                    -> TOO_OLD / TOO_NEW
 *   - no secret configured (secrets NULL or count 0): fail closed -> NO_MATCH
 *   - header (entries split on spaces) holds no entry with a ','
 *     at all                                                    -> BAD_SIGNATURE_HEADER
 *   - otherwise, nothing matched, including a bare "v1,", invalid
 *     base64, a decoded length other than 32, or only v1a/v2... -> NO_MATCH
 * The timestamp is hashed as received, not re-formatted. */
ingest_result ingest_verify_signature(const ingest_secrets *secrets,
                                      const char *id, size_t id_len,
                                      const char *timestamp, size_t ts_len,
                                      const char *signature, size_t sig_len,
                                      const unsigned char *body, size_t body_len,
                                      int64_t now_s, char *err, size_t errlen);

/* Produce "v1,<base64>" for (id, timestamp, body) with one secret; out >= 128 bytes
 * (48 is the real minimum). Returns 0, or -1 on a too-small buffer or a crypto failure.
 * Used by tests and the benchmark's load generator. */
int ingest_sign(const ingest_secret *secret, const char *id, int64_t timestamp_s,
                const unsigned char *body, size_t body_len, char *out, size_t outlen);

/* Decode a verified body into *ev (zeroed first). delivery_id is copied in.
 * Envelope: "type" (string) and "data" (object) are required; "timestamp" in ms or
 * s (values below 1e11 are seconds); event_attributes optional.
 * An unknown type yields INGEST_OK with ev->type == EVENT_UNKNOWN.
 * user.created/updated: data.id required; email resolved via
 *   primary_email_address_id in email_addresses[]; nulls read as "" / 0.
 * user.deleted: data.id required (deleted_at = envelope timestamp).
 * session.*: data.id and data.user_id required; latest_activity, user, actor may be
 *   missing or null. Event time (at_ms): session.created -> data.created_at, other
 *   session events -> data.updated_at, user.* -> data.updated_at, falling back to
 *   the envelope timestamp when absent.
 * Identifiers too long for event.h's buffers are INGEST_ERR_BAD_EVENT. Identifiers
 *   here include ids, external_id and the primary email (a cut one would name someone
 *   else); names, city, browser, device, country, status and user agent are free
 *   text, cut on a UTF-8 boundary.
 * IPs (data.latest_activity.ip_address, event_attributes.http_request.client_ip) are
 *   parsed with util_ip_canonical() and stored canonical ("2001:DB8::1" -> "2001:db8::1",
 *   "::ffff:10.1.2.3" -> "10.1.2.3"). A string that is not an address (garbage, a
 *   newline, "/8", "%eth0", too long) is dropped: the field reads "", the event is
 *   INGEST_OK, and ev->invalid_ips counts it, names the field and keeps the value (cut
 *   to EVENT_IP_MAX-1) for the caller's log. An IP that is not a string is BAD_EVENT.
 * Results: body not JSON, trailing bytes, duplicate keys or "\u0000" -> BAD_JSON;
 *   valid JSON that is not an object, a required field missing/null/empty, or any
 *   known field of the wrong type (a string timestamp, latest_activity as a string)
 *   -> BAD_EVENT, err naming the field path ("data.user_id is missing").
 *   Envelope "timestamp" missing or null reads as 0; a negative one is BAD_EVENT.
 * session.*: a data.user that fails to decode is dropped (has_user false), the
 *   session event is still accepted.
 * On error *ev is zeroed again except delivery_id (kept for the caller's log). */
ingest_result ingest_decode_event(const char *body, size_t body_len, const char *delivery_id,
                                  event_t *ev, char *err, size_t errlen);

#endif
