/*
 * decode.c: a verified Clerk webhook body -> event_t. Strict about types (a field
 * of the wrong type is a broken or forged producer, not something to guess at),
 * lenient about absence (Clerk adds and drops optional fields between versions).
 * Identifiers that do not fit are refused; free text is cut on a UTF-8 boundary;
 * an IP that is not an address is dropped from the event, which is kept.
 */
#include "ingest/ingest.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "util/util.h"

typedef enum { F_OPTIONAL, F_REQUIRED } need;

/* How a string field is stored: an identifier must fit whole, text may be cut. */
typedef enum { S_ID, S_TEXT } kind;

typedef struct {
    char *err;
    size_t errlen;
} errbuf;

static int bad(const errbuf *e, const char *fmt, const char *path, const char *key)
{
    char full[128];
    snprintf(full, sizeof full, "%s%s%s", path, *path ? "." : "", key);
    util_err(e->err, e->errlen, fmt, full);
    return -1;
}

/* Missing or null reads as "" unless required (then it must be a non-empty string). */
static int get_str(const errbuf *e, json_t *obj, const char *path, const char *key, need n, kind k,
                   char *dst, size_t dstlen)
{
    dst[0] = '\0';
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v)) {
        if (n == F_REQUIRED)
            return bad(e, v == NULL ? "%s is missing" : "%s is null", path, key);
        return 0;
    }
    if (!json_is_string(v))
        return bad(e, "%s is not a string", path, key);
    /* jansson refuses \u0000 by default, so the length is also the C length. */
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (n == F_REQUIRED && len == 0)
        return bad(e, "%s is empty", path, key);
    if (k == S_ID && len > dstlen - 1) {
        char full[128];
        snprintf(full, sizeof full, "%s%s%s", path, *path ? "." : "", key);
        util_err(e->err, e->errlen, "%s is longer than %zu bytes", full, dstlen - 1);
        return -1;
    }
    /* An id is part of store keys, where bytes 0x00-0x02 separate a key's parts:
     * "a\u0001c" as a user id would land inside user "a"'s values index. jansson
     * refuses \u0000; 0x01 and 0x02 are refused here. Other control bytes are
     * kept (what an attacker sent is evidence) and escaped wherever text is shown. */
    if (k == S_ID)
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)s[i] == 0x01 || (unsigned char)s[i] == 0x02) {
                char full[128];
                snprintf(full, sizeof full, "%s%s%s", path, *path ? "." : "", key);
                util_err(e->err, e->errlen, "%s holds byte 0x%02x, which no id may hold (byte %zu)", full,
                         (unsigned char)s[i], i);
                return -1;
            }
    util_copy_utf8(dst, dstlen, s, len);
    return 0;
}

_Static_assert(EVENT_IP_MAX >= UTIL_IP_LEN, "an event's IP buffer must hold any canonical address");

/* An IP field: present, it must be a string (another type is a broken producer,
 * refused like any field of the wrong type). A string that is not an address -
 * "not-an-ip", a path, "1.2.3.4\n5.6.7.8", a /prefix, a %zone, one too long - is
 * dropped (dst left "") and noted in *drops: one odd field is no reason to lose
 * the sign-in it came with. A valid one is stored canonical (inet_ntop form,
 * v4-mapped v6 as v4) so one address is one history key however it was spelled. */
static int get_ip(const errbuf *e, json_t *obj, const char *path, const char *key, event_ip_field f, char *dst,
                  size_t dstlen, event_ip_drops *drops)
{
    dst[0] = '\0';
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return bad(e, "%s is not a string", path, key);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0 || util_ip_canonical(s, len, dst, dstlen) == 0)
        return 0;
    if (!drops->dropped[f])
        drops->count++;
    drops->dropped[f] = true;
    util_copy_utf8(drops->value[f], sizeof drops->value[f], s, len);
    return 0;
}

/* Times and the like: integer, or a real with an integral int64 value; null reads as 0. */
static int get_i64(const errbuf *e, json_t *obj, const char *path, const char *key, int64_t *out)
{
    *out = 0;
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        /* 9.2e18 keeps the conversion defined; the bound is below INT64_MAX. */
        if (!isfinite(d) || d < -9.2e18 || d > 9.2e18)
            return bad(e, "%s is out of range", path, key);
        *out = (int64_t)d;
        return 0;
    }
    return bad(e, "%s is not a number", path, key);
}

static int get_bool(const errbuf *e, json_t *obj, const char *path, const char *key, bool *out)
{
    *out = false;
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return bad(e, "%s is not a boolean", path, key);
    *out = json_is_true(v);
    return 0;
}

/* An optional object: NULL (absent or null) or the object; anything else is an error. */
static int get_obj(const errbuf *e, json_t *obj, const char *path, const char *key, json_t **out)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return bad(e, "%s is not an object", path, key);
    *out = v;
    return 0;
}

/* The primary email is the entry whose id is primary_email_address_id; with no
 * primary id the email stays "" rather than guessing the first entry. */
static int decode_email(const errbuf *e, json_t *data, const char *path, event_user *u)
{
    char primary[EVENT_ID_MAX];
    if (get_str(e, data, path, "primary_email_address_id", F_OPTIONAL, S_ID, primary, sizeof primary) < 0)
        return -1;
    json_t *list = json_object_get(data, "email_addresses");
    if (list == NULL || json_is_null(list))
        return 0;
    if (!json_is_array(list))
        return bad(e, "%s is not an array", path, "email_addresses");
    if (primary[0] == '\0')
        return 0;
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item) {
        char ipath[96];
        snprintf(ipath, sizeof ipath, "%s.email_addresses[%zu]", path, i);
        if (!json_is_object(item)) {
            util_err(e->err, e->errlen, "%s is not an object", ipath);
            return -1;
        }
        char id[EVENT_ID_MAX];
        if (get_str(e, item, ipath, "id", F_OPTIONAL, S_ID, id, sizeof id) < 0)
            return -1;
        if (strcmp(id, primary) != 0)
            continue;
        /* A cut address would be someone else's: refuse instead. */
        return get_str(e, item, ipath, "email_address", F_OPTIONAL, S_ID, u->email, sizeof u->email);
    }
    return 0;
}

static int decode_user(const errbuf *e, json_t *data, const char *path, event_user *u)
{
    memset(u, 0, sizeof *u);
    if (get_str(e, data, path, "id", F_REQUIRED, S_ID, u->id, sizeof u->id) < 0 ||
        decode_email(e, data, path, u) < 0 ||
        get_str(e, data, path, "first_name", F_OPTIONAL, S_TEXT, u->first_name, sizeof u->first_name) < 0 ||
        get_str(e, data, path, "last_name", F_OPTIONAL, S_TEXT, u->last_name, sizeof u->last_name) < 0 ||
        get_str(e, data, path, "username", F_OPTIONAL, S_TEXT, u->username, sizeof u->username) < 0 ||
        get_str(e, data, path, "external_id", F_OPTIONAL, S_ID, u->external_id, sizeof u->external_id) < 0 ||
        get_i64(e, data, path, "created_at", &u->created_at) < 0 ||
        get_i64(e, data, path, "updated_at", &u->updated_at) < 0 ||
        get_i64(e, data, path, "last_sign_in_at", &u->last_sign_in_at) < 0 ||
        get_bool(e, data, path, "banned", &u->banned) < 0 ||
        get_bool(e, data, path, "locked", &u->locked) < 0 ||
        get_i64(e, data, path, "lockout_expires_in_seconds", &u->lockout_expires_in_s) < 0)
        return -1;
    return 0;
}

static int decode_user_deleted(const errbuf *e, json_t *data, event_t *ev)
{
    event_user *u = &ev->user;
    bool flag;
    if (get_str(e, data, "data", "id", F_REQUIRED, S_ID, u->id, sizeof u->id) < 0 ||
        get_str(e, data, "data", "external_id", F_OPTIONAL, S_ID, u->external_id, sizeof u->external_id) < 0 ||
        get_bool(e, data, "data", "deleted", &flag) < 0)
        return -1;
    /* The event type is the fact; the flag is informational in the schema. */
    u->deleted = true;
    u->deleted_at = ev->timestamp_ms;
    return 0;
}

static int decode_session(const errbuf *e, json_t *data, event_t *ev)
{
    event_session *s = &ev->session;
    json_t *act, *user;
    if (get_str(e, data, "data", "id", F_REQUIRED, S_ID, s->session_id, sizeof s->session_id) < 0 ||
        get_str(e, data, "data", "user_id", F_REQUIRED, S_ID, s->user_id, sizeof s->user_id) < 0 ||
        get_str(e, data, "data", "client_id", F_OPTIONAL, S_ID, s->client_id, sizeof s->client_id) < 0 ||
        get_str(e, data, "data", "status", F_OPTIONAL, S_TEXT, s->status, sizeof s->status) < 0 ||
        get_i64(e, data, "data", "created_at", &s->created_at) < 0 ||
        get_i64(e, data, "data", "updated_at", &s->updated_at) < 0 ||
        get_i64(e, data, "data", "expire_at", &s->expire_at) < 0 ||
        get_obj(e, data, "data", "latest_activity", &act) < 0)
        return -1;
    if (act != NULL) {
        const char *p = "data.latest_activity";
        if (get_ip(e, act, p, "ip_address", EVENT_IP_SESSION, s->ip, sizeof s->ip, &ev->invalid_ips) < 0 ||
            get_str(e, act, p, "country", F_OPTIONAL, S_TEXT, s->country, sizeof s->country) < 0 ||
            get_str(e, act, p, "city", F_OPTIONAL, S_TEXT, s->city, sizeof s->city) < 0 ||
            get_str(e, act, p, "browser_name", F_OPTIONAL, S_TEXT, s->browser, sizeof s->browser) < 0 ||
            get_str(e, act, p, "device_type", F_OPTIONAL, S_TEXT, s->device, sizeof s->device) < 0 ||
            get_bool(e, act, p, "is_mobile", &s->is_mobile) < 0)
            return -1;
    }
    /* The embedded user is a bonus: a session event is still worth keeping when
     * its copy of the user is odd, so a failure here only drops the copy. */
    user = json_object_get(data, "user");
    if (json_is_object(user)) {
        event_user tmp;
        errbuf quiet = {NULL, 0};
        if (decode_user(&quiet, user, "data.user", &tmp) == 0) {
            ev->user = tmp;
            ev->has_user = true;
        }
    }
    return 0;
}

static int decode_attributes(const errbuf *e, json_t *root, event_t *ev)
{
    json_t *attrs, *req;
    if (get_obj(e, root, "", "event_attributes", &attrs) < 0)
        return -1;
    if (attrs == NULL)
        return 0;
    if (get_obj(e, attrs, "event_attributes", "http_request", &req) < 0)
        return -1;
    if (req == NULL)
        return 0;
    const char *p = "event_attributes.http_request";
    if (get_ip(e, req, p, "client_ip", EVENT_IP_CLIENT, ev->client_ip, sizeof ev->client_ip, &ev->invalid_ips) < 0 ||
        get_str(e, req, p, "user_agent", F_OPTIONAL, S_TEXT, ev->user_agent, sizeof ev->user_agent) < 0)
        return -1;
    return 0;
}

static int decode_envelope(const errbuf *e, json_t *root, event_t *ev, json_t **data)
{
    json_t *type = json_object_get(root, "type");
    if (type == NULL)
        return bad(e, "%s is missing", "", "type");
    if (!json_is_string(type))
        return bad(e, "%s is not a string", "", "type");
    const char *tname = json_string_value(type);
    util_copy_utf8(ev->type_name, sizeof ev->type_name, tname, json_string_length(type));
    ev->type = event_type_from_name(tname);

    *data = json_object_get(root, "data");
    if (*data == NULL)
        return bad(e, "%s is missing", "", "data");
    if (!json_is_object(*data))
        return bad(e, "%s is not an object", "", "data");

    int64_t ts;
    if (get_i64(e, root, "", "timestamp", &ts) < 0)
        return -1;
    if (ts < 0)
        return bad(e, "%s is negative", "", "timestamp");
    /* Real deliveries send ms, some OpenAPI examples seconds; 1e11 s is year 5138,
     * 1e11 ms is 1973, so the ranges do not overlap for any real event. */
    ev->timestamp_ms = ts < 100000000000LL ? ts * 1000 : ts;

    if (get_str(e, root, "", "instance_id", F_OPTIONAL, S_ID, ev->instance_id, sizeof ev->instance_id) < 0)
        return -1;
    return decode_attributes(e, root, ev);
}

ingest_result ingest_decode_event(const char *body, size_t body_len, const char *delivery_id,
                                  event_t *ev, char *err, size_t errlen)
{
    errbuf e = {err, errlen};
    memset(ev, 0, sizeof *ev);
    if (delivery_id != NULL) {
        size_t dlen = strlen(delivery_id);
        if (dlen > sizeof ev->delivery_id - 1) {
            util_err(err, errlen, "delivery id is longer than %zu bytes", sizeof ev->delivery_id - 1);
            return INGEST_ERR_BAD_EVENT;
        }
        memcpy(ev->delivery_id, delivery_id, dlen + 1);
    }
    if (body == NULL) {
        util_err(err, errlen, "empty body");
        return INGEST_ERR_BAD_JSON;
    }

    json_error_t jerr;
    json_t *root = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        util_err(err, errlen, "body is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        return INGEST_ERR_BAD_JSON;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        util_err(err, errlen, "body is not a JSON object");
        return INGEST_ERR_BAD_EVENT;
    }

    json_t *data = NULL;
    int rc = decode_envelope(&e, root, ev, &data);
    if (rc == 0) {
        switch (ev->type) {
        case EVENT_USER_CREATED:
        case EVENT_USER_UPDATED:
            rc = decode_user(&e, data, "data", &ev->user);
            ev->at_ms = ev->user.updated_at;
            break;
        case EVENT_USER_DELETED:
            rc = decode_user_deleted(&e, data, ev);
            break;
        case EVENT_SESSION_CREATED:
            rc = decode_session(&e, data, ev);
            ev->at_ms = ev->session.created_at;
            break;
        case EVENT_SESSION_PENDING:
        case EVENT_SESSION_ENDED:
        case EVENT_SESSION_REMOVED:
        case EVENT_SESSION_REVOKED:
            rc = decode_session(&e, data, ev);
            ev->at_ms = ev->session.updated_at;
            break;
        case EVENT_UNKNOWN:
        case EVENT_TYPE_COUNT:
            break;
        }
        if (ev->at_ms == 0)
            ev->at_ms = ev->timestamp_ms;
    }
    json_decref(root);
    if (rc < 0) {
        /* Keep the delivery id for the caller's log line; drop half-decoded fields. */
        char id[EVENT_ID_MAX];
        memcpy(id, ev->delivery_id, sizeof id);
        memset(ev, 0, sizeof *ev);
        memcpy(ev->delivery_id, id, sizeof id);
        return INGEST_ERR_BAD_EVENT;
    }
    return INGEST_OK;
}
