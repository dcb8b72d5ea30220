/*
 * ocsf.c: the alert as an OCSF 1.1 Detection Finding (class 2004, category 2
 * Findings), with the triggering event as its evidence, shaped as an OCSF
 * Authentication (3002) for session.* events and an Account Change (3001) for
 * user.* events. Fields veille has no OCSF place for (the rule's key and
 * evidence values) go under "unmapped", as OCSF provides.
 * Traps: OCSF times are Unix milliseconds (timestamp_t), not RFC 3339; type_uid
 * is class_uid * 100 + activity_id; location.country is ISO 3166-1 alpha-2,
 * which is what Clerk sends. tests/alert/ocsf-required.json lists the required
 * fields the unit test checks.
 */
#include <stdlib.h>
#include <string.h>

#include "alert/internal.h"
#include "engine/engine.h"

#define CLASS_DETECTION_FINDING 2004
#define CATEGORY_FINDINGS 2
#define CLASS_AUTHENTICATION 3002
#define CLASS_ACCOUNT_CHANGE 3001
#define CATEGORY_IAM 3

static json_t *product(const char *name, const char *version)
{
    json_t *p = json_object();
    if (p == NULL || alert_json_set(p, "name", json_string(name)) < 0 ||
        alert_json_set(p, "vendor_name", json_string(name)) < 0 ||
        (version != NULL && alert_json_set(p, "version", json_string(version)) < 0)) {
        json_decref(p);
        return NULL;
    }
    return p;
}

static json_t *metadata(json_t *prod, const char *uid)
{
    json_t *m = json_object();
    if (m == NULL) {
        json_decref(prod);
        return NULL;
    }
    if (alert_json_set(m, "version", json_string(ALERT_OCSF_VERSION)) < 0 ||
        alert_json_set(m, "product", prod) < 0 || alert_json_set_text(m, "uid", uid) < 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* OCSF severity_id: 1 Informational .. 5 Critical, 0 Unknown. */
static int severity_id(const char *severity)
{
    int r = alert_severity_rank(severity);
    return r < 0 ? 0 : r + 1;
}

typedef struct {
    int class_uid, activity_id, status_id;
    const char *class_name, *activity_name, *status;
} event_class;

/* The OCSF class and activity of the event that raised the alert. */
static event_class class_of(event_type t)
{
    switch (t) {
    case EVENT_SESSION_CREATED: return (event_class){CLASS_AUTHENTICATION, 1, 1, "Authentication", "Logon", "Success"};
    case EVENT_SESSION_PENDING: return (event_class){CLASS_AUTHENTICATION, 1, 99, "Authentication", "Logon", "Pending"};
    case EVENT_SESSION_ENDED:
    case EVENT_SESSION_REMOVED:
    case EVENT_SESSION_REVOKED: return (event_class){CLASS_AUTHENTICATION, 2, 1, "Authentication", "Logoff", "Success"};
    case EVENT_USER_CREATED: return (event_class){CLASS_ACCOUNT_CHANGE, 1, 1, "Account Change", "Create", "Success"};
    case EVENT_USER_DELETED: return (event_class){CLASS_ACCOUNT_CHANGE, 6, 1, "Account Change", "Delete", "Success"};
    default: return (event_class){CLASS_ACCOUNT_CHANGE, 99, 1, "Account Change", "Other", "Success"};
    }
}

static int set_class(json_t *o, int class_uid, const char *class_name, int category_uid, const char *category_name,
                     int activity_id, const char *activity_name)
{
    char type_name[96];
    snprintf(type_name, sizeof type_name, "%s: %s", class_name, activity_name);
    return alert_json_set(o, "activity_id", json_integer(activity_id)) < 0 ||
                   alert_json_set(o, "activity_name", json_string(activity_name)) < 0 ||
                   alert_json_set(o, "category_uid", json_integer(category_uid)) < 0 ||
                   alert_json_set(o, "category_name", json_string(category_name)) < 0 ||
                   alert_json_set(o, "class_uid", json_integer(class_uid)) < 0 ||
                   alert_json_set(o, "class_name", json_string(class_name)) < 0 ||
                   alert_json_set(o, "type_uid", json_integer((json_int_t)class_uid * 100 + activity_id)) < 0 ||
                   alert_json_set(o, "type_name", json_string(type_name)) < 0
               ? -1
               : 0;
}

/* The triggering event: user, src_endpoint {ip, location}, http_request, session. */
static json_t *evidence_event(const store_alert *a)
{
    event_class k = class_of(a->event_type);
    json_t *e = json_object(), *user = json_object();
    if (e == NULL || user == NULL ||
        set_class(e, k.class_uid, k.class_name, CATEGORY_IAM, "Identity & Access Management", k.activity_id,
                  k.activity_name) < 0)
        goto fail;
    if (alert_json_set(e, "severity_id", json_integer(1)) < 0 ||
        alert_json_set(e, "severity", json_string("Informational")) < 0 ||
        alert_json_set(e, "status_id", json_integer(k.status_id)) < 0 ||
        alert_json_set(e, "status", json_string(k.status)) < 0 ||
        alert_json_set(e, "time", json_integer(a->at_ms)) < 0 ||
        alert_json_set(e, "metadata", metadata(product("Clerk", NULL), a->event_id)) < 0)
        goto fail;
    if (alert_json_set_text(user, "uid", a->user_id) < 0 || alert_json_set_text(user, "name", a->user_name) < 0)
        goto fail;
    int rc = alert_json_set(e, "user", user);
    user = NULL;
    if (rc < 0)
        goto fail;
    if (a->ip[0] || a->country[0] || a->city[0]) {
        json_t *src = json_object(), *loc = json_object();
        bool ok = src != NULL && loc != NULL && alert_json_set_text(src, "ip", a->ip) == 0;
        if (ok && (a->country[0] || a->city[0])) {
            ok = alert_json_set_text(loc, "country", a->country) == 0 &&
                 alert_json_set_text(loc, "city", a->city) == 0 && alert_json_set(src, "location", loc) == 0;
            loc = NULL;
        }
        json_decref(loc);
        if (!ok) {
            json_decref(src);
            goto fail;
        }
        if (alert_json_set(e, "src_endpoint", src) < 0)
            goto fail;
    }
    if (a->user_agent[0] && alert_json_set(e, "http_request", json_pack("{s:s}", "user_agent", a->user_agent)) < 0)
        goto fail;
    if (a->session_id[0] && alert_json_set(e, "session", json_pack("{s:s}", "uid", a->session_id)) < 0)
        goto fail;
    if (a->instance_id[0] &&
        alert_json_set(e, "service", json_pack("{s:s,s:s}", "name", "Clerk", "uid", a->instance_id)) < 0)
        goto fail;
    return e;
fail:
    json_decref(user);
    json_decref(e);
    return NULL;
}

static json_t *finding_info(const store_alert *a)
{
    json_t *f = json_object(), *types = json_array();
    if (f == NULL || types == NULL)
        goto fail;
    for (size_t i = 0; i < a->n_tags && i < STORE_ALERT_TAGS_MAX; i++)
        if (json_array_append_new(types, json_string(a->tags[i])) != 0)
            goto fail;
    if (json_array_size(types) == 0 && json_array_append_new(types, json_string(a->rule)) != 0)
        goto fail;
    int64_t last = a->last_suppressed_at_ms > a->at_ms ? a->last_suppressed_at_ms : a->at_ms;
    /* an incident update updates the finding of the incident */
    const char *uid = a->incident_update ? a->incident_id : a->id;
    if (alert_json_set(f, "uid", json_string(uid)) < 0 || alert_json_set(f, "title", json_string(a->rule)) < 0 ||
        alert_json_set(f, "desc", json_string(a->summary)) < 0)
        goto fail;
    int rc = alert_json_set(f, "types", types);
    types = NULL;
    if (rc < 0 || alert_json_set(f, "first_seen_time", json_integer(a->at_ms)) < 0 ||
        alert_json_set(f, "last_seen_time", json_integer(last)) < 0 ||
        alert_json_set(f, "analytic", json_pack("{s:s,s:i,s:s}", "name", a->rule, "type_id", 1, "type", "Rule")) < 0)
        goto fail;
    if (a->event_id[0]) {
        event_class k = class_of(a->event_type);
        char type[96];
        snprintf(type, sizeof type, "%s: %s", k.class_name, k.activity_name);
        json_t *rel = json_pack("[{s:s,s:I,s:s}]", "uid", a->event_id, "type_uid",
                                (json_int_t)k.class_uid * 100 + k.activity_id, "type", type);
        if (alert_json_set(f, "related_events", rel) < 0)
            goto fail;
    }
    return f;
fail:
    json_decref(types);
    json_decref(f);
    return NULL;
}

/* veille's own fields with no OCSF attribute. */
static json_t *unmapped(const store_alert *a)
{
    json_t *u = json_object(), *ev = json_object(), *atl = json_array();
    if (u == NULL || ev == NULL || atl == NULL || alert_json_set(u, "key", json_string(a->key)) < 0 ||
        alert_json_set(u, "event_type", json_string(event_type_name(a->event_type))) < 0 ||
        alert_json_set_text(u, "instance_id", a->instance_id) < 0 ||
        alert_json_set_text(u, "incident_id", a->incident_id) < 0)
        goto fail;
    for (size_t i = 0; i < a->n_evidence && i < STORE_EVIDENCE_MAX; i++) {
        if (alert_json_set(ev, a->evidence[i].name, alert_evidence_json(&a->evidence[i])) < 0)
            goto fail;
        if (a->evidence[i].at_least && json_array_append_new(atl, json_string(a->evidence[i].name)) != 0)
            goto fail;
    }
    int rc = alert_json_set(u, "evidence", ev);
    ev = NULL;
    if (rc < 0)
        goto fail;
    /* as in the json format: values that are lower bounds */
    if (json_array_size(atl) > 0) {
        rc = alert_json_set(u, "at_least", atl);
        atl = NULL;
        if (rc < 0)
            goto fail;
    }
    json_decref(atl);
    return u;
fail:
    json_decref(atl);
    json_decref(ev);
    json_decref(u);
    return NULL;
}

char *alert_format_ocsf(const store_alert *a)
{
    json_t *o = json_object(), *evs = json_array();
    if (o == NULL || evs == NULL || json_array_append_new(evs, evidence_event(a)) != 0 ||
        set_class(o, CLASS_DETECTION_FINDING, "Detection Finding", CATEGORY_FINDINGS, "Findings",
                  a->incident_update ? 2 : 1, a->incident_update ? "Update" : "Create") < 0)
        goto fail;
    int sev = severity_id(a->severity);
    static const char *const sev_names[] = {"Unknown", "Informational", "Low", "Medium", "High", "Critical"};
    if (alert_json_set(o, "severity_id", json_integer(sev)) < 0 ||
        alert_json_set(o, "severity", json_string(sev_names[sev])) < 0 ||
        alert_json_set(o, "status_id", json_integer(1)) < 0 || alert_json_set(o, "status", json_string("New")) < 0 ||
        alert_json_set(o, "time", json_integer(a->raised_ms)) < 0 ||
        alert_json_set(o, "message", json_string(a->summary)) < 0 ||
        alert_json_set(o, "count", json_integer(1 + a->suppressed)) < 0 ||
        alert_json_set(o, "metadata", metadata(product("veille", VEILLE_VERSION), a->id)) < 0 ||
        alert_json_set(o, "finding_info", finding_info(a)) < 0)
        goto fail;
    int rc = alert_json_set(o, "evidences", evs);
    evs = NULL;
    if (rc < 0 || alert_json_set(o, "unmapped", unmapped(a)) < 0)
        goto fail;
    return alert_json_dump(o);
fail:
    json_decref(evs);
    json_decref(o);
    return NULL;
}
