/* test_decode.c: every fixture shape in tests/fixtures/events/, field by field. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ingest/ingest.h"

#define FIXTURES "tests/fixtures/events/"

static char err[256];

/* Tests run with the project root as working directory (tests/meson.build). */
static ingest_result decode_file(const char *name, event_t *ev)
{
    char path[256];
    snprintf(path, sizeof path, FIXTURES "%s", name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        printf("cannot open %s\n", path);
        exit(2);
    }
    char *buf = malloc(1 << 16);
    size_t n = fread(buf, 1, 1 << 16, f);
    fclose(f);
    err[0] = '\0';
    ingest_result r = ingest_decode_event(buf, n, "msg_test", ev, err, sizeof err);
    free(buf);
    return r;
}

static ingest_result decode_str(const char *body, event_t *ev)
{
    err[0] = '\0';
    return ingest_decode_event(body, strlen(body), "msg_test", ev, err, sizeof err);
}

static void test_user_created(void)
{
    event_t ev;
    CHECK("user.created decodes", decode_file("user_created.json", &ev) == INGEST_OK);
    CHECK("user.created type", ev.type == EVENT_USER_CREATED);
    CHECK("user.created type_name", strcmp(ev.type_name, "user.created") == 0);
    CHECK("user.created delivery_id", strcmp(ev.delivery_id, "msg_test") == 0);
    CHECK("user.created timestamp_ms", ev.timestamp_ms == 1654012591835LL);
    CHECK("user.created at_ms = updated_at", ev.at_ms == 1654012591835LL);
    CHECK("user.created instance_id", strcmp(ev.instance_id, "ins_123") == 0);
    CHECK("user.created client_ip", strcmp(ev.client_ip, "198.51.100.7") == 0);
    CHECK("user.created user_agent", strcmp(ev.user_agent, "Mozilla/5.0 (X11; Linux x86_64)") == 0);
    CHECK("user.created id", strcmp(ev.user.id, "user_29w83sxmDNGwOuEthce5gg56FcC") == 0);
    CHECK("user.created email via primary id", strcmp(ev.user.email, "example@example.org") == 0);
    CHECK("user.created first_name", strcmp(ev.user.first_name, "Example") == 0);
    CHECK("user.created last_name", strcmp(ev.user.last_name, "Example") == 0);
    CHECK("user.created username null -> \"\"", ev.user.username[0] == '\0');
    CHECK("user.created external_id", strcmp(ev.user.external_id, "567772") == 0);
    CHECK("user.created created_at", ev.user.created_at == 1654012591514LL);
    CHECK("user.created updated_at", ev.user.updated_at == 1654012591835LL);
    CHECK("user.created last_sign_in_at", ev.user.last_sign_in_at == 1654012591514LL);
    CHECK("user.created banned", !ev.user.banned);
    CHECK("user.created locked", !ev.user.locked);
    CHECK("user.created not deleted", !ev.user.deleted && ev.user.deleted_at == 0);
    CHECK("user.created not placeholder", !ev.user.placeholder);
    CHECK("user.created has_user false", !ev.has_user);
    CHECK("user.created session empty", ev.session.session_id[0] == '\0');
}

static void test_user_updated(void)
{
    event_t ev;
    CHECK("user.updated decodes", decode_file("user_updated.json", &ev) == INGEST_OK);
    CHECK("user.updated type", ev.type == EVENT_USER_UPDATED);
    CHECK("user.updated type_name", strcmp(ev.type_name, "user.updated") == 0);
    CHECK("user.updated timestamp_ms", ev.timestamp_ms == 1716884000123LL);
    CHECK("user.updated at_ms", ev.at_ms == 1716884000000LL);
    CHECK("user.updated instance_id", strcmp(ev.instance_id, "ins_2g7n") == 0);
    CHECK("user.updated empty client_ip", ev.client_ip[0] == '\0');
    CHECK("user.updated empty user_agent", ev.user_agent[0] == '\0');
    CHECK("user.updated id", strcmp(ev.user.id, "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S") == 0);
    CHECK("user.updated email is the primary, not the first",
          strcmp(ev.user.email, "zo\xc3\xab@example.com") == 0);
    CHECK("user.updated first_name utf-8", strcmp(ev.user.first_name, "Zo\xc3\xab") == 0);
    CHECK("user.updated last_name null", ev.user.last_name[0] == '\0');
    CHECK("user.updated username", strcmp(ev.user.username, "zoe") == 0);
    CHECK("user.updated external_id null", ev.user.external_id[0] == '\0');
    CHECK("user.updated created_at", ev.user.created_at == 1716883000000LL);
    CHECK("user.updated updated_at", ev.user.updated_at == 1716884000000LL);
    CHECK("user.updated last_sign_in_at null -> 0", ev.user.last_sign_in_at == 0);
    CHECK("user.updated banned", ev.user.banned);
    CHECK("user.updated locked", ev.user.locked);
    CHECK("user.updated no lockout expiry", ev.user.lockout_expires_in_s == 0);
    /* Clerk's lockout: locked with the seconds until it expires */
    CHECK("user.updated locked decodes", decode_file("user_locked.json", &ev) == INGEST_OK);
    CHECK("user.updated lockout_expires_in_seconds", ev.user.locked && ev.user.lockout_expires_in_s == 1800);
    CHECK("user.updated the request's client_ip", strcmp(ev.client_ip, "203.0.113.9") == 0);
}

static void test_user_deleted(void)
{
    event_t ev;
    CHECK("user.deleted minimal decodes", decode_file("user_deleted_minimal.json", &ev) == INGEST_OK);
    CHECK("user.deleted type", ev.type == EVENT_USER_DELETED);
    CHECK("user.deleted type_name", strcmp(ev.type_name, "user.deleted") == 0);
    CHECK("user.deleted id", strcmp(ev.user.id, "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S") == 0);
    CHECK("user.deleted deleted", ev.user.deleted);
    CHECK("user.deleted deleted_at = envelope", ev.user.deleted_at == 1716885000000LL);
    CHECK("user.deleted at_ms = envelope", ev.at_ms == 1716885000000LL);
    CHECK("user.deleted timestamp_ms", ev.timestamp_ms == 1716885000000LL);
    CHECK("user.deleted no external_id", ev.user.external_id[0] == '\0');
    CHECK("user.deleted no email", ev.user.email[0] == '\0');
    CHECK("user.deleted no instance_id", ev.instance_id[0] == '\0');
    CHECK("user.deleted no attributes", ev.client_ip[0] == '\0' && ev.user_agent[0] == '\0');

    CHECK("user.deleted external_id decodes",
          decode_file("user_deleted_external_id.json", &ev) == INGEST_OK);
    CHECK("user.deleted external_id", strcmp(ev.user.external_id, "ext-42") == 0);
    CHECK("user.deleted external_id: id", strcmp(ev.user.id, "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S") == 0);
    CHECK("user.deleted external_id: deleted", ev.user.deleted && ev.user.deleted_at == 1716885000000LL);
    CHECK("user.deleted external_id: instance", strcmp(ev.instance_id, "ins_2g7n") == 0);
}

static void test_session_created(void)
{
    event_t ev;
    CHECK("session.created decodes", decode_file("session_created.json", &ev) == INGEST_OK);
    CHECK("session.created type", ev.type == EVENT_SESSION_CREATED);
    CHECK("session.created type_name", strcmp(ev.type_name, "session.created") == 0);
    CHECK("session.created timestamp_ms", ev.timestamp_ms == 1716883200999LL);
    CHECK("session.created at_ms = created_at", ev.at_ms == 1716883200000LL);
    CHECK("session.created instance_id", strcmp(ev.instance_id, "ins_2g7n") == 0);
    CHECK("session.created client_ip", strcmp(ev.client_ip, "192.168.1.100") == 0);
    CHECK("session.created user_agent", strcmp(ev.user_agent, "Mozilla/5.0 Chrome/128.0.0.0") == 0);
    const event_session *s = &ev.session;
    CHECK("session.created id", strcmp(s->session_id, "sess_2g7nSESSIONaaaaaaaaaaaaaa") == 0);
    CHECK("session.created user_id", strcmp(s->user_id, "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S") == 0);
    CHECK("session.created client_id", strcmp(s->client_id, "client_2g7nCLIENTbbbbbbbbbbbbbb") == 0);
    CHECK("session.created status", strcmp(s->status, "active") == 0);
    CHECK("session.created created_at", s->created_at == 1716883200000LL);
    CHECK("session.created updated_at", s->updated_at == 1716883200500LL);
    CHECK("session.created expire_at", s->expire_at == 1716969600000LL);
    CHECK("session.created ip", strcmp(s->ip, "192.168.1.100") == 0);
    CHECK("session.created country", strcmp(s->country, "US") == 0);
    CHECK("session.created city", strcmp(s->city, "San Francisco") == 0);
    CHECK("session.created browser", strcmp(s->browser, "Chrome") == 0);
    CHECK("session.created device", strcmp(s->device, "desktop") == 0);
    CHECK("session.created is_mobile", !s->is_mobile);
    CHECK("session.created has_user", ev.has_user);
    CHECK("session.created user.id", strcmp(ev.user.id, "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S") == 0);
    CHECK("session.created user.email", strcmp(ev.user.email, "a@example.com") == 0);
    CHECK("session.created user.first_name", strcmp(ev.user.first_name, "Ada") == 0);
    CHECK("session.created user.last_name", strcmp(ev.user.last_name, "Lovelace") == 0);
    CHECK("session.created user.created_at", ev.user.created_at == 1716880000000LL);
    CHECK("session.created user.updated_at", ev.user.updated_at == 1716881000000LL);
    CHECK("session.created user flags", !ev.user.banned && !ev.user.locked && !ev.user.deleted);

    CHECK("session.created without activity decodes",
          decode_file("session_created_no_activity.json", &ev) == INGEST_OK);
    s = &ev.session;
    CHECK("no activity: type", ev.type == EVENT_SESSION_CREATED);
    CHECK("no activity: id", strcmp(s->session_id, "sess_old") == 0);
    CHECK("no activity: user_id", strcmp(s->user_id, "user_old") == 0);
    CHECK("no activity: client_id", strcmp(s->client_id, "client_old") == 0);
    CHECK("no activity: status", strcmp(s->status, "active") == 0);
    CHECK("no activity: times", s->created_at == 1716883200000LL && s->updated_at == 1716883200000LL &&
                                    s->expire_at == 1716969600000LL);
    CHECK("no activity: at_ms", ev.at_ms == 1716883200000LL);
    CHECK("no activity: activity fields empty", s->ip[0] == '\0' && s->country[0] == '\0' &&
                                                    s->city[0] == '\0' && s->browser[0] == '\0' &&
                                                    s->device[0] == '\0' && !s->is_mobile);
    CHECK("no activity: no user", !ev.has_user && ev.user.id[0] == '\0');
    CHECK("no activity: no attributes", ev.client_ip[0] == '\0' && ev.user_agent[0] == '\0');

    CHECK("session.created nulls decodes", decode_file("session_created_nulls.json", &ev) == INGEST_OK);
    s = &ev.session;
    CHECK("nulls: id", strcmp(s->session_id, "sess_nulls") == 0);
    CHECK("nulls: user_id", strcmp(s->user_id, "user_nulls") == 0);
    CHECK("nulls: client_id null -> \"\"", s->client_id[0] == '\0');
    CHECK("nulls: created_at null -> 0", s->created_at == 0);
    CHECK("nulls: updated_at", s->updated_at == 1716883200000LL);
    CHECK("nulls: expire_at", s->expire_at == 1716969600000LL);
    CHECK("nulls: at_ms falls back to envelope", ev.at_ms == 1716883202000LL);
    CHECK("nulls: latest_activity null", s->ip[0] == '\0' && s->city[0] == '\0' && !s->is_mobile);
    CHECK("nulls: user null", !ev.has_user);

    CHECK("session.created with broken embedded user still decodes",
          decode_file("session_created_bad_embedded_user.json", &ev) == INGEST_OK);
    CHECK("broken embedded user dropped", !ev.has_user && ev.user.id[0] == '\0');
    CHECK("broken embedded user: session kept", strcmp(ev.session.session_id, "sess_emb") == 0 &&
                                                    strcmp(ev.session.user_id, "user_emb") == 0);
}

static void test_session_others(void)
{
    static const struct {
        const char *file, *name, *status;
        event_type type;
    } cases[] = {
        {"session_ended.json", "session.ended", "ended", EVENT_SESSION_ENDED},
        {"session_removed.json", "session.removed", "removed", EVENT_SESSION_REMOVED},
        {"session_revoked.json", "session.revoked", "revoked", EVENT_SESSION_REVOKED},
        {"session_pending.json", "session.pending", "pending", EVENT_SESSION_PENDING},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        event_t ev;
        char name[96], want[64];
        const event_session *s = &ev.session;
#define CK(what, cond)                                                   \
    do {                                                                 \
        snprintf(name, sizeof name, "%s %s", cases[i].name, what);       \
        CHECK(name, cond);                                               \
    } while (0)
        CK("decodes", decode_file(cases[i].file, &ev) == INGEST_OK);
        CK("type", ev.type == cases[i].type);
        CK("type_name", strcmp(ev.type_name, cases[i].name) == 0);
        CK("timestamp_ms", ev.timestamp_ms == 1716890000100LL);
        CK("at_ms = updated_at", ev.at_ms == 1716890000000LL);
        snprintf(want, sizeof want, "sess_%s", cases[i].status);
        CK("id", strcmp(s->session_id, want) == 0);
        snprintf(want, sizeof want, "client_%s", cases[i].status);
        CK("client_id", strcmp(s->client_id, want) == 0);
        CK("user_id", strcmp(s->user_id, "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S") == 0);
        CK("status", strcmp(s->status, cases[i].status) == 0);
        CK("created_at", s->created_at == 1716883200000LL);
        CK("updated_at", s->updated_at == 1716890000000LL);
        CK("expire_at", s->expire_at == 1716969600000LL);
        CK("ip v6", strcmp(s->ip, "2001:db8::1") == 0);
        CK("country", strcmp(s->country, "CH") == 0);
        CK("city utf-8", strcmp(s->city, "Z\xc3\xbcrich") == 0);
        CK("browser", strcmp(s->browser, "Safari") == 0);
        CK("device", strcmp(s->device, "iPhone") == 0);
        CK("is_mobile", s->is_mobile);
        CK("no user", !ev.has_user);
#undef CK
    }
}

static void test_envelope(void)
{
    event_t ev;
    CHECK("timestamp in seconds decodes", decode_file("timestamp_seconds.json", &ev) == INGEST_OK);
    CHECK("timestamp in seconds -> ms", ev.timestamp_ms == 1654012591000LL);
    CHECK("timestamp in seconds: at_ms", ev.at_ms == 1654012591000LL);
    CHECK("timestamp in seconds: deleted_at", ev.user.deleted_at == 1654012591000LL);
    CHECK("timestamp in seconds: id", strcmp(ev.user.id, "user_secs") == 0);

    CHECK("unknown type decodes", decode_file("unknown_email_created.json", &ev) == INGEST_OK);
    CHECK("unknown type is EVENT_UNKNOWN", ev.type == EVENT_UNKNOWN);
    CHECK("unknown type keeps its name", strcmp(ev.type_name, "email.created") == 0);
    CHECK("unknown type timestamp", ev.timestamp_ms == 1716890000000LL && ev.at_ms == 1716890000000LL);
    CHECK("unknown type instance", strcmp(ev.instance_id, "ins_2g7n") == 0);
    CHECK("unknown type leaves user/session empty",
          ev.user.id[0] == '\0' && ev.session.session_id[0] == '\0' && !ev.has_user);

    CHECK("real timestamp accepted",
          decode_str("{\"type\":\"x.y\",\"data\":{},\"timestamp\":1716890000000.0}", &ev) == INGEST_OK &&
              ev.timestamp_ms == 1716890000000LL);
    CHECK("missing timestamp reads as 0",
          decode_str("{\"type\":\"x.y\",\"data\":{}}", &ev) == INGEST_OK && ev.timestamp_ms == 0 &&
              ev.at_ms == 0);
    CHECK("string timestamp refused",
          decode_str("{\"type\":\"x.y\",\"data\":{},\"timestamp\":\"1\"}", &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("string timestamp message", strcmp(err, "timestamp is not a number") == 0);
    CHECK("negative timestamp refused",
          decode_str("{\"type\":\"x.y\",\"data\":{},\"timestamp\":-5}", &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("unknown type still needs object data",
          decode_str("{\"type\":\"x.y\",\"data\":[]}", &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("data not an object message", strcmp(err, "data is not an object") == 0);

    /* type_name is cut to fit but the type is matched on the whole name */
    char body[256];
    snprintf(body, sizeof body, "{\"type\":\"user.created%080d\",\"data\":{}}", 0);
    CHECK("long unknown type decodes", decode_str(body, &ev) == INGEST_OK && ev.type == EVENT_UNKNOWN);
    CHECK("long type name cut", strlen(ev.type_name) == sizeof ev.type_name - 1);

    CHECK("delivery id kept", decode_str("{\"type\":\"x\",\"data\":{}}", &ev) == INGEST_OK &&
                                  strcmp(ev.delivery_id, "msg_test") == 0);
    CHECK("NULL delivery id ok",
          ingest_decode_event("{\"type\":\"x\",\"data\":{}}", 22, NULL, &ev, err, sizeof err) ==
                  INGEST_OK &&
              ev.delivery_id[0] == '\0');

    /* the body length is honoured: trailing bytes outside it are not read */
    const char *padded = "{\"type\":\"x\",\"data\":{}}GARBAGE";
    CHECK("exact length honoured", ingest_decode_event(padded, 22, "m", &ev, err, sizeof err) == INGEST_OK);
    CHECK("trailing garbage refused",
          ingest_decode_event(padded, strlen(padded), "m", &ev, err, sizeof err) == INGEST_ERR_BAD_JSON);

    CHECK("attributes not an object refused",
          decode_str("{\"type\":\"x\",\"data\":{},\"event_attributes\":\"a\"}", &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("attributes message", strcmp(err, "event_attributes is not an object") == 0);
    CHECK("client_ip not a string refused",
          decode_str("{\"type\":\"x\",\"data\":{},\"event_attributes\":{\"http_request\":{\"client_ip\":1}}}",
                     &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("client_ip message", strcmp(err, "event_attributes.http_request.client_ip is not a string") == 0);
    CHECK("event_attributes null ok",
          decode_str("{\"type\":\"x\",\"data\":{},\"event_attributes\":null}", &ev) == INGEST_OK);
}

static void test_bad(void)
{
    event_t ev;
    CHECK("not JSON", decode_file("bad_not_json.json", &ev) == INGEST_ERR_BAD_JSON);
    CHECK("not JSON keeps delivery id only", strcmp(ev.delivery_id, "msg_test") == 0 && ev.type == 0);
    CHECK("not JSON message", strstr(err, "not valid JSON") != NULL);
    CHECK("status of bad JSON is 400", ingest_status_of(INGEST_ERR_BAD_JSON) == 400);

    CHECK("data missing", decode_file("bad_data_missing.json", &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("data missing message", strcmp(err, "data is missing") == 0);
    CHECK("failed decode zeroes the event", ev.type == EVENT_UNKNOWN && ev.type_name[0] == '\0');

    CHECK("data.user_id missing", decode_file("bad_session_no_user_id.json", &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("data.user_id message", strcmp(err, "data.user_id is missing") == 0);
    CHECK("failed decode leaves no session id", ev.session.session_id[0] == '\0');

    CHECK("type not a string", decode_file("bad_type_not_string.json", &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("type message", strcmp(err, "type is not a string") == 0);

    CHECK("id too long", decode_file("bad_id_too_long.json", &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("id too long message", strcmp(err, "data.id is longer than 127 bytes") == 0);

    CHECK("latest_activity a string",
          decode_file("bad_latest_activity_string.json", &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("latest_activity message", strcmp(err, "data.latest_activity is not an object") == 0);

    CHECK("type missing", decode_str("{\"data\":{}}", &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("type missing message", strcmp(err, "type is missing") == 0);
    CHECK("top level array", decode_str("[1]", &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("empty body", decode_str("", &ev) == INGEST_ERR_BAD_JSON);
    CHECK("duplicate keys refused",
          decode_str("{\"type\":\"user.deleted\",\"type\":\"x\",\"data\":{}}", &ev) == INGEST_ERR_BAD_JSON);
    CHECK("NUL escape refused", decode_str("{\"type\":\"a\\u0000b\",\"data\":{}}", &ev) == INGEST_ERR_BAD_JSON);

    CHECK("user.created without id",
          decode_str("{\"type\":\"user.created\",\"data\":{\"first_name\":\"A\"}}", &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("user id message", strcmp(err, "data.id is missing") == 0);
    CHECK("user.created with null id",
          decode_str("{\"type\":\"user.created\",\"data\":{\"id\":null}}", &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("user.created with empty id",
          decode_str("{\"type\":\"user.created\",\"data\":{\"id\":\"\"}}", &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("user.created banned a string",
          decode_str("{\"type\":\"user.created\",\"data\":{\"id\":\"u\",\"banned\":\"no\"}}", &ev) ==
              INGEST_ERR_BAD_EVENT);
    CHECK("banned message", strcmp(err, "data.banned is not a boolean") == 0);
    CHECK("user.created updated_at a string",
          decode_str("{\"type\":\"user.created\",\"data\":{\"id\":\"u\",\"updated_at\":\"1\"}}", &ev) ==
              INGEST_ERR_BAD_EVENT);
    CHECK("updated_at message", strcmp(err, "data.updated_at is not a number") == 0);
    CHECK("email_addresses not an array",
          decode_str("{\"type\":\"user.created\",\"data\":{\"id\":\"u\",\"email_addresses\":{}}}", &ev) ==
              INGEST_ERR_BAD_EVENT);
    CHECK("email_addresses message", strcmp(err, "data.email_addresses is not an array") == 0);
    CHECK("email entry not an object",
          decode_str("{\"type\":\"user.created\",\"data\":{\"id\":\"u\",\"primary_email_address_id\":\"i\","
                     "\"email_addresses\":[1]}}",
                     &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("email entry message", strcmp(err, "data.email_addresses[0] is not an object") == 0);
    CHECK("no primary id leaves email empty",
          decode_str("{\"type\":\"user.created\",\"data\":{\"id\":\"u\","
                     "\"email_addresses\":[{\"id\":\"i\",\"email_address\":\"a@b\"}]}}",
                     &ev) == INGEST_OK &&
              ev.user.email[0] == '\0');
    CHECK("unmatched primary id leaves email empty",
          decode_str("{\"type\":\"user.created\",\"data\":{\"id\":\"u\",\"primary_email_address_id\":\"j\","
                     "\"email_addresses\":[{\"id\":\"i\",\"email_address\":\"a@b\"}]}}",
                     &ev) == INGEST_OK &&
              ev.user.email[0] == '\0');
    CHECK("is_mobile a string",
          decode_str("{\"type\":\"session.ended\",\"data\":{\"id\":\"s\",\"user_id\":\"u\","
                     "\"latest_activity\":{\"is_mobile\":\"yes\"}}}",
                     &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("is_mobile message", strcmp(err, "data.latest_activity.is_mobile is not a boolean") == 0);
    CHECK("session id a number",
          decode_str("{\"type\":\"session.ended\",\"data\":{\"id\":5,\"user_id\":\"u\"}}", &ev) ==
              INGEST_ERR_BAD_EVENT);
    CHECK("session id message", strcmp(err, "data.id is not a string") == 0);
}

/* Identifiers: 127 bytes fit, 128 do not; free text is cut on a code point boundary. */
static void test_lengths(void)
{
    event_t ev;
    char body[4096];
    char id[200];
    memset(id, 'a', 127);
    id[127] = '\0';
    snprintf(body, sizeof body, "{\"type\":\"session.ended\",\"data\":{\"id\":\"%s\",\"user_id\":\"u\"}}", id);
    CHECK("127-byte id fits", decode_str(body, &ev) == INGEST_OK && strcmp(ev.session.session_id, id) == 0);
    snprintf(body, sizeof body, "{\"type\":\"session.ended\",\"data\":{\"id\":\"s\",\"user_id\":\"%sb\"}}", id);
    CHECK("128-byte user_id refused", decode_str(body, &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("user_id too long message", strcmp(err, "data.user_id is longer than 127 bytes") == 0);
    /* ids are store keys: a control byte would cross into another user's keys */
    snprintf(body, sizeof body, "{\"type\":\"session.ended\",\"data\":{\"id\":\"s\",\"user_id\":\"a\\u0001c\"}}");
    CHECK("user_id with \\u0001 refused", decode_str(body, &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("user_id key-separator byte message",
          strcmp(err, "data.user_id holds byte 0x01, which no id may hold (byte 1)") == 0);
    snprintf(body, sizeof body, "{\"type\":\"user.created\",\"data\":{\"id\":\"u\\u0002x\"}}");
    CHECK("user id with 0x02 refused", decode_str(body, &ev) == INGEST_ERR_BAD_EVENT);
    snprintf(body, sizeof body, "{\"type\":\"user.created\",\"data\":{\"id\":\"u\\u001bx\"}}");
    CHECK("user id with ESC kept (escaped on output)", decode_str(body, &ev) == INGEST_OK);

    /* 255 bytes of 'x' then a 2-byte character: it must not be split */
    char name[300];
    memset(name, 'x', 254);
    memcpy(name + 254, "\xc3\xa9", 3);
    snprintf(body, sizeof body, "{\"type\":\"user.created\",\"data\":{\"id\":\"u\",\"first_name\":\"%s\"}}", name);
    CHECK("long first_name accepted", decode_str(body, &ev) == INGEST_OK);
    CHECK("long first_name cut before the split code point", strlen(ev.user.first_name) == 254);

    char ip[80];
    memset(ip, '1', 64);
    ip[64] = '\0';
    snprintf(body, sizeof body,
             "{\"type\":\"session.created\",\"data\":{\"id\":\"s\",\"user_id\":\"u\","
             "\"latest_activity\":{\"ip_address\":\"%s\"}}}",
             ip);
    /* no address is that long: it is dropped like any non-address, never cut */
    CHECK("overlong ip dropped, event kept", decode_str(body, &ev) == INGEST_OK && ev.session.ip[0] == '\0' &&
                                                 ev.invalid_ips.count == 1 &&
                                                 strcmp(ev.session.session_id, "s") == 0);
    CHECK("overlong ip: the value noted is cut to fit", strlen(ev.invalid_ips.value[EVENT_IP_SESSION]) == EVENT_IP_MAX - 1);

    char ua[700];
    memset(ua, 'u', 600);
    ua[600] = '\0';
    snprintf(body, sizeof body,
             "{\"type\":\"x\",\"data\":{},\"event_attributes\":{\"http_request\":{\"user_agent\":\"%s\"}}}", ua);
    CHECK("long user agent cut", decode_str(body, &ev) == INGEST_OK && strlen(ev.user_agent) == EVENT_UA_MAX - 1);

    snprintf(body, sizeof body,
             "{\"type\":\"session.created\",\"data\":{\"id\":\"s\",\"user_id\":\"u\","
             "\"latest_activity\":{\"country\":\"ABCDEFGHIJ\"}}}");
    CHECK("long country cut", decode_str(body, &ev) == INGEST_OK && strcmp(ev.session.country, "ABCDEFG") == 0);

    memset(id, 'm', 128);
    id[128] = '\0';
    CHECK("overlong delivery id refused",
          ingest_decode_event("{\"type\":\"x\",\"data\":{}}", 22, id, &ev, err, sizeof err) ==
              INGEST_ERR_BAD_EVENT);
}

/* One IP value (JSON-escaped) in each IP field: what is stored, what is noted. */
static void test_ips(void)
{
    static const struct {
        const char *json, *raw, *want; /* want NULL: dropped */
    } cases[] = {
        {"not-an-ip", "not-an-ip", NULL},
        {"../../etc/passwd", "../../etc/passwd", NULL},
        {"1.2.3.4\\n5.6.7.8", "1.2.3.4\n5.6.7.8", NULL},
        {"1.2.3.4\\n", "1.2.3.4\n", NULL},
        {" 1.2.3.4", " 1.2.3.4", NULL},
        {"1.2.3.4/8", "1.2.3.4/8", NULL},
        {"fe80::1%eth0", "fe80::1%eth0", NULL},
        {"1.2.3", "1.2.3", NULL},
        {"::ffff:10.1.2.3", NULL, "10.1.2.3"},
        {"2001:DB8::1", NULL, "2001:db8::1"},
        {"2001:0db8:0000:0000:0000:0000:0000:0001", NULL, "2001:db8::1"},
        {"198.51.100.7", NULL, "198.51.100.7"},
        {"", NULL, ""},
    };
    char body[1024], name[160];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool drop = cases[i].want == NULL;
        event_t ev;
        const event_ip_drops *d = &ev.invalid_ips;
        snprintf(body, sizeof body,
                 "{\"type\":\"session.created\",\"data\":{\"id\":\"sess_ip\",\"user_id\":\"user_ip\","
                 "\"latest_activity\":{\"ip_address\":\"%s\",\"city\":\"Paris\"}}}",
                 cases[i].json);
        snprintf(name, sizeof name, "ip_address \"%s\": %s", cases[i].json, drop ? "dropped, event kept" : cases[i].want);
        CHECK(name, decode_str(body, &ev) == INGEST_OK && strcmp(ev.session.ip, drop ? "" : cases[i].want) == 0 &&
                        strcmp(ev.session.user_id, "user_ip") == 0 && strcmp(ev.session.city, "Paris") == 0);
        snprintf(name, sizeof name, "ip_address \"%s\": noted %s", cases[i].json, drop ? "with its value" : "nothing");
        CHECK(name, drop ? d->count == 1 && d->dropped[EVENT_IP_SESSION] && !d->dropped[EVENT_IP_CLIENT] &&
                               strcmp(d->value[EVENT_IP_SESSION], cases[i].raw) == 0
                         : d->count == 0 && !d->dropped[EVENT_IP_SESSION]);

        snprintf(body, sizeof body,
                 "{\"type\":\"user.updated\",\"data\":{\"id\":\"user_ip\"},"
                 "\"event_attributes\":{\"http_request\":{\"client_ip\":\"%s\",\"user_agent\":\"UA\"}}}",
                 cases[i].json);
        snprintf(name, sizeof name, "client_ip \"%s\": %s", cases[i].json, drop ? "dropped, event kept" : cases[i].want);
        CHECK(name, decode_str(body, &ev) == INGEST_OK && strcmp(ev.client_ip, drop ? "" : cases[i].want) == 0 &&
                        strcmp(ev.user.id, "user_ip") == 0 && strcmp(ev.user_agent, "UA") == 0 &&
                        (drop ? d->count == 1 && d->dropped[EVENT_IP_CLIENT] && !d->dropped[EVENT_IP_SESSION] &&
                                    strcmp(d->value[EVENT_IP_CLIENT], cases[i].raw) == 0
                              : d->count == 0));
    }

    event_t ev;
    const event_ip_drops *d = &ev.invalid_ips;
    CHECK("both ip fields bad: both dropped, both noted",
          decode_str("{\"type\":\"session.created\",\"data\":{\"id\":\"s\",\"user_id\":\"u\","
                     "\"latest_activity\":{\"ip_address\":\"x\"}},"
                     "\"event_attributes\":{\"http_request\":{\"client_ip\":\"y\"}}}",
                     &ev) == INGEST_OK &&
              d->count == 2 && d->dropped[EVENT_IP_SESSION] && d->dropped[EVENT_IP_CLIENT] &&
              strcmp(d->value[EVENT_IP_SESSION], "x") == 0 && strcmp(d->value[EVENT_IP_CLIENT], "y") == 0 &&
              ev.session.ip[0] == '\0' && ev.client_ip[0] == '\0');
    CHECK("fixture with good ips notes nothing", decode_file("session_created.json", &ev) == INGEST_OK && d->count == 0);

    CHECK("ip_address not a string refused",
          decode_str("{\"type\":\"session.created\",\"data\":{\"id\":\"s\",\"user_id\":\"u\","
                     "\"latest_activity\":{\"ip_address\":16909060}}}",
                     &ev) == INGEST_ERR_BAD_EVENT);
    CHECK("ip_address message", strcmp(err, "data.latest_activity.ip_address is not a string") == 0);
    CHECK("refused event notes nothing", d->count == 0);

    CHECK("ip field names",
          strcmp(event_ip_field_name(EVENT_IP_SESSION), "data.latest_activity.ip_address") == 0 &&
              strcmp(event_ip_field_name(EVENT_IP_CLIENT), "event_attributes.http_request.client_ip") == 0 &&
              strcmp(event_ip_field_name(EVENT_IP_FIELD_COUNT), "unknown") == 0);
}

int main(void)
{
    test_user_created();
    test_user_updated();
    test_user_deleted();
    test_session_created();
    test_session_others();
    test_envelope();
    test_bad();
    test_lengths();
    test_ips();
    return check_summary();
}
