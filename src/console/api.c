/*
 * api.c: the console's JSON API (README "Web console" lists it). Each handler
 * reads the store through its read-only calls (one LMDB read transaction per
 * call; the committer thread writes meanwhile) and answers one JSON object.
 * Trap: these run on the event loop thread, the one answering webhooks, so every
 * scan here is bounded (API_SCAN_MAX history records, the alerts of one window).
 */
#include "console/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"
#include "cli/cli.h"
#include "rules/rules.h"
#include "util/log.h"
#include "util/util.h"

#define API_LIST_DEFAULT 200
#define API_LIST_MAX 1000
#define API_HISTORY_MAX 200 /* records a user or IP page shows */
#define API_SCAN_MAX 2000   /* records read for the location and user lists */
#define API_TOP 10

/* ---------------------------------------------------------------- query */

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                                           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* Percent-decode into out (NUL-terminated); -1 when it does not fit or holds a NUL. */
static int url_decode(const char *s, size_t len, char *out, size_t outlen)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '+')
            ch = ' ';
        else if (ch == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            ch = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            i += 2;
        }
        if (ch == 0 || n + 1 >= outlen)
            return -1;
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    return 0;
}

/* The decoded value of name in the query; 0 found, 1 absent, -1 unusable. */
static int query_get(const char *q, size_t qlen, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    const char *end = q + qlen;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp != NULL ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *ke = eq != NULL ? eq : pe;
        if ((size_t)(ke - q) == nlen && memcmp(q, name, nlen) == 0) {
            const char *v = eq != NULL ? eq + 1 : pe;
            return url_decode(v, (size_t)(pe - v), out, outlen);
        }
        q = pe + 1;
    }
    out[0] = '\0';
    return 1;
}

/* ---------------------------------------------------------------- JSON bits */

static json_t *text(const char *s)
{
    json_t *j = json_string(s);
    return j != NULL ? j : json_string("");
}

/* alert_to_json's object (what sinks and `veille alerts --json` give), with its
 * triage state (open when nobody decided). */
static json_t *alert_json(const store_alert *a, int64_t state)
{
    char *s = alert_to_json(a);
    json_t *o = s != NULL ? json_loads(s, 0, NULL) : NULL;
    free(s);
    if (o == NULL)
        o = json_pack("{s:s}", "id", a->id);
    const char *name = store_state_name(state);
    json_object_set_new(o, "state", text(name != NULL ? name : "open"));
    return o;
}

static bool same_ip(const char *stored, const char *wanted)
{
    char canon[UTIL_IP_LEN];
    return strcmp(stored, wanted) == 0 ||
           (util_ip_canonical(stored, strlen(stored), canon, sizeof canon) == 0 && strcmp(canon, wanted) == 0);
}

/* Add one to obj[key]. */
static void bump(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    json_object_set_new(obj, key, json_integer(v != NULL ? json_integer_value(v) + 1 : 1));
}

static int by_count_desc(const void *x, const void *y)
{
    json_int_t a = json_integer_value(json_object_get(*(json_t *const *)x, "count"));
    json_int_t b = json_integer_value(json_object_get(*(json_t *const *)y, "count"));
    return a < b ? 1 : a > b ? -1 : 0;
}

/* {key: n, ...} -> [{name: key, count: n}, ...] by count, at most max (0: all). */
static json_t *ranked(json_t *counts, const char *name, size_t max)
{
    size_t n = json_object_size(counts), i = 0;
    json_t **rows = calloc(n + 1, sizeof *rows);
    json_t *out = json_array();
    const char *k;
    json_t *v;
    if (rows == NULL)
        return out;
    json_object_foreach(counts, k, v)
        rows[i++] = json_pack("{s:s,s:I}", name, k, "count", (json_int_t)json_integer_value(v));
    qsort(rows, n, sizeof *rows, by_count_desc);
    for (i = 0; i < n; i++) {
        if (max == 0 || i < max)
            json_array_append(out, rows[i]);
        json_decref(rows[i]);
    }
    free(rows);
    return out;
}

/* ---------------------------------------------------------------- /api/alerts */

typedef struct {
    char rule[64], severity[16], user[EVENT_ID_MAX], ip[UTIL_IP_LEN];
    int state;      /* store_alert_state; -1: any */
    const char *id; /* one alert */
    size_t limit;
    json_t **ring; /* the newest `limit` matches */
    size_t seen;
} alert_query;

static int collect_alert(const store_alert *a, int64_t state, void *ctx)
{
    alert_query *q = ctx;
    if (q->id != NULL) {
        if (strcmp(a->id, q->id) != 0)
            return 0;
        q->ring[0] = alert_json(a, state);
        q->seen = 1;
        return 1;
    }
    if ((q->rule[0] && strcmp(a->rule, q->rule) != 0) || (q->severity[0] && strcmp(a->severity, q->severity) != 0) ||
        (q->user[0] && strcmp(a->user_id, q->user) != 0) || (q->ip[0] && !same_ip(a->ip, q->ip)) ||
        (q->state >= 0 && state != q->state))
        return 0;
    size_t slot = q->seen++ % q->limit;
    json_decref(q->ring[slot]);
    q->ring[slot] = alert_json(a, state);
    return 0;
}

/* The matches, newest first; q->ring freed. */
static json_t *drain_ring(alert_query *q)
{
    json_t *rows = json_array();
    size_t kept = q->seen < q->limit ? q->seen : q->limit;
    for (size_t i = 0; i < kept; i++)
        json_array_append_new(rows, q->ring[(q->seen - 1 - i) % q->limit]);
    free(q->ring);
    q->ring = NULL;
    return rows;
}

static int list_alerts(struct console *c, alert_query *q, int64_t since_ms, json_t **rows, char *err, size_t errlen)
{
    q->ring = calloc(q->limit, sizeof *q->ring);
    if (q->ring == NULL)
        return util_err(err, errlen, "out of memory");
    int rc = store_list_alert_states(c->st, since_ms, collect_alert, q, err, errlen);
    *rows = drain_ring(q);
    return rc;
}

static int bad_filter(h2o_req_t *req, const char *name)
{
    char msg[128];
    snprintf(msg, sizeof msg, "%s: too long or not URL-encoded text", name);
    return console_send_error(req, 400, msg);
}

static int api_alerts(struct console *c, h2o_req_t *req, const char *query, size_t qlen)
{
    alert_query q = {.limit = API_LIST_DEFAULT, .state = -1};
    char since[32], limit[32], ip[256], state[16], err[UTIL_ERRLEN], msg[UTIL_ERRLEN + 32];
    static const struct {
        const char *name;
        size_t off, len;
    } filters[] = {
        {"rule", offsetof(alert_query, rule), sizeof q.rule},
        {"severity", offsetof(alert_query, severity), sizeof q.severity},
        {"user", offsetof(alert_query, user), sizeof q.user},
    };
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (query_get(query, qlen, filters[i].name, (char *)&q + filters[i].off, filters[i].len) < 0)
            return bad_filter(req, filters[i].name);
    if (query_get(query, qlen, "ip", ip, sizeof ip) < 0)
        return bad_filter(req, "ip");
    if (ip[0] && util_ip_canonical(ip, strlen(ip), q.ip, sizeof q.ip) < 0) {
        snprintf(msg, sizeof msg, "ip: '%.64s' is not an IP address", ip);
        return console_send_error(req, 400, msg);
    }
    if (query_get(query, qlen, "state", state, sizeof state) < 0)
        return bad_filter(req, "state");
    if (state[0] && (q.state = store_state_parse(state)) < 0)
        return console_send_error(req, 400, "state: expected open, acked, resolved or fp");
    int64_t since_ms = 0, d, n;
    if (query_get(query, qlen, "since", since, sizeof since) < 0)
        return bad_filter(req, "since");
    if (since[0]) {
        if (util_parse_duration(since, &d, err, sizeof err) < 0) {
            snprintf(msg, sizeof msg, "since: %s", err);
            return console_send_error(req, 400, msg);
        }
        since_ms = util_now_ms() - d;
    }
    if (query_get(query, qlen, "limit", limit, sizeof limit) < 0)
        return bad_filter(req, "limit");
    if (limit[0]) {
        if (util_parse_i64(limit, &n, NULL, 0) < 0 || n < 1 || n > API_LIST_MAX) {
            snprintf(msg, sizeof msg, "limit: expected a number from 1 to %d", API_LIST_MAX);
            return console_send_error(req, 400, msg);
        }
        q.limit = (size_t)n;
    }
    json_t *rows = NULL;
    if (list_alerts(c, &q, since_ms, &rows, err, sizeof err) < 0) {
        json_decref(rows);
        return console_send_error(req, 500, err);
    }
    return console_send_json(req, 200,
                             json_pack("{s:I,s:I,s:o}", "matched", (json_int_t)q.seen, "shown",
                                       (json_int_t)json_array_size(rows), "alerts", rows));
}

static int api_alert(struct console *c, h2o_req_t *req, const char *id, size_t idlen)
{
    char want[STORE_ALERT_ID_MAX], err[UTIL_ERRLEN];
    if (url_decode(id, idlen, want, sizeof want) < 0 || want[0] == '\0')
        return console_send_error(req, 404, "no such alert");
    json_t *found = NULL;
    alert_query q = {.id = want, .limit = 1, .ring = &found, .state = -1};
    if (store_list_alert_states(c->st, 0, collect_alert, &q, err, sizeof err) < 0) {
        json_decref(found);
        return console_send_error(req, 500, err);
    }
    if (found == NULL)
        return console_send_error(req, 404, "no such alert");
    store_triage tr;
    bool decided = false;
    if (store_triage_get(c->st, want, &tr, &decided, err, sizeof err) < 0) {
        json_decref(found);
        return console_send_error(req, 500, err);
    }
    if (decided)
        json_object_set_new(found, "triage", json_pack("{s:s,s:s,s:o,s:s}", "state", store_state_name(tr.state),
                                                       "by", tr.by, "at", cli_json_time(tr.at_ms), "note", tr.note));
    return console_send_json(req, 200, found);
}

/* ---------------------------------------------------------------- /api/overview */

typedef struct {
    int64_t since_ms, bucket_ms;
    size_t buckets;
    json_t *series;     /* [{start, counts{severity: n}}] */
    json_t *by_sev, *by_rule, *by_state, *by_user, *by_ip;
    uint64_t total;
} overview_scan;

static int count_overview(const store_alert *a, int64_t state, void *ctx)
{
    overview_scan *o = ctx;
    if (a->at_ms < o->since_ms)
        return 0;
    size_t b = (size_t)((a->at_ms - o->since_ms) / o->bucket_ms);
    if (b >= o->buckets)
        b = o->buckets - 1; /* an event stamped a little ahead of this clock */
    bump(json_object_get(json_array_get(o->series, b), "counts"), a->severity[0] ? a->severity : "other");
    bump(o->by_sev, a->severity[0] ? a->severity : "other");
    bump(o->by_rule, a->rule);
    const char *state_name = store_state_name(state);
    bump(o->by_state, state_name != NULL ? state_name : "open");
    if (a->user_id[0])
        bump(o->by_user, a->user_id);
    if (a->ip[0])
        bump(o->by_ip, a->ip);
    o->total++;
    return 0;
}

static const struct {
    const char *name;
    int64_t span_ms, bucket_ms;
} overview_ranges[] = {
    {"24h", 24 * 3600000LL, 3600000LL},
    {"7d", 7 * 86400000LL, 6 * 3600000LL},
    {"30d", 30 * 86400000LL, 86400000LL},
};

static json_t *outbox_json(struct console *c, char *err, size_t errlen, int *rc);

static int api_overview(struct console *c, h2o_req_t *req, const char *query, size_t qlen)
{
    char range[8], err[UTIL_ERRLEN];
    size_t r = 0;
    if (query_get(query, qlen, "range", range, sizeof range) == 0) {
        for (r = 0; r < sizeof overview_ranges / sizeof overview_ranges[0]; r++)
            if (strcmp(overview_ranges[r].name, range) == 0)
                break;
        if (r == sizeof overview_ranges / sizeof overview_ranges[0])
            return console_send_error(req, 400, "range: expected 24h, 7d or 30d");
    }
    int64_t now = util_now_ms();
    overview_scan o = {.bucket_ms = overview_ranges[r].bucket_ms};
    o.buckets = (size_t)(overview_ranges[r].span_ms / o.bucket_ms);
    /* buckets end at the next bucket boundary after now, so they stay put between reloads */
    int64_t end = (now / o.bucket_ms + 1) * o.bucket_ms;
    o.since_ms = end - overview_ranges[r].span_ms;
    o.series = json_array();
    for (size_t i = 0; i < o.buckets; i++)
        json_array_append_new(o.series, json_pack("{s:o,s:I,s:o}", "start", cli_json_time(o.since_ms + (int64_t)i * o.bucket_ms),
                                                  "start_ms", (json_int_t)(o.since_ms + (int64_t)i * o.bucket_ms),
                                                  "counts", json_object()));
    o.by_sev = json_object();
    o.by_rule = json_object();
    o.by_state = json_object();
    o.by_user = json_object();
    o.by_ip = json_object();
    int rc = store_list_alert_states(c->st, o.since_ms, count_overview, &o, err, sizeof err);
    json_t *outbox = rc == 0 ? outbox_json(c, err, sizeof err, &rc) : NULL;
    json_t *body = NULL;
    if (rc == 0) {
        console_live live = {0};
        if (c->live != NULL)
            c->live(c->live_ctx, &live);
        double uptime_s = (double)(now - live.started_ms) / 1000.0;
        body = json_pack("{s:s,s:I,s:o,s:o,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "range", overview_ranges[r].name,
                         "bucket_ms", (json_int_t)o.bucket_ms, "since", cli_json_time(o.since_ms), "until",
                         cli_json_time(end), "total", (json_int_t)o.total, "series", o.series, "by_severity", o.by_sev,
                         "by_rule", ranked(o.by_rule, "rule", 0), "by_state", ranked(o.by_state, "state", 0),
                         "top_users", ranked(o.by_user, "user_id", API_TOP), "top_ips", ranked(o.by_ip, "ip", API_TOP),
                         "outbox", outbox);
        json_object_set_new(
            body, "ingest",
            json_pack("{s:o,s:f,s:I,s:I,s:I,s:f,s:f,s:I}", "started", cli_json_time(live.started_ms), "uptime_s",
                      uptime_s, "deliveries", (json_int_t)live.deliveries, "events_stored",
                      (json_int_t)live.events_stored, "alerts_raised", (json_int_t)live.alerts, "events_per_min",
                      uptime_s > 0 ? (double)live.events_stored * 60.0 / uptime_s : 0.0, "apply_lag_ms",
                      live.lag_count > 0 ? live.lag_seconds_sum * 1000.0 / (double)live.lag_count : 0.0, "waiting",
                      (json_int_t)live.waiting));
        o.series = o.by_sev = NULL;
    }
    json_decref(o.series);
    json_decref(o.by_sev);
    json_decref(o.by_rule);
    json_decref(o.by_state);
    json_decref(o.by_user);
    json_decref(o.by_ip);
    if (rc < 0)
        return console_send_error(req, 500, err);
    return console_send_json(req, 200, body);
}

#define API_SINKS_MAX 64

typedef struct {
    json_t *sinks; /* sink id (hex) -> {sink, pending, dead, ...} */
} outbox_scan;

static json_t *sink_row(outbox_scan *s, uint64_t id, const char *label)
{
    char key[24];
    snprintf(key, sizeof key, "%016llx", (unsigned long long)id);
    json_t *row = json_object_get(s->sinks, key);
    if (row == NULL) {
        row = json_pack("{s:s,s:i,s:i,s:n,s:n}", "sink", label[0] ? label : "(unnamed sink)", "pending", 0, "dead", 0,
                        "failing_since", "last_error");
        json_object_set_new(s->sinks, key, row);
    }
    return row;
}

static int count_entry(const store_outbox_entry *e, const store_alert *a, void *ctx)
{
    (void)a;
    bump(sink_row(ctx, e->sink_id, e->sink), e->dead_ms != 0 ? "dead" : "pending");
    return 0;
}

/* Per sink: pending and dead entries, and since when it fails (null: it works). */
static json_t *outbox_json(struct console *c, char *err, size_t errlen, int *rc)
{
    store_sink_state *states = calloc(API_SINKS_MAX, sizeof *states);
    size_t n = 0;
    outbox_scan s = {.sinks = json_object()};
    *rc = states == NULL ? util_err(err, errlen, "out of memory")
                         : store_sink_states(c->st, states, API_SINKS_MAX, &n, err, errlen);
    for (size_t i = 0; *rc == 0 && i < n; i++) {
        json_t *row = sink_row(&s, states[i].sink_id, states[i].sink);
        json_object_set_new(row, "failing_since", cli_json_time(states[i].failing_since_ms));
        if (states[i].failing_since_ms > 0)
            json_object_set_new(row, "last_error", text(states[i].last_error));
    }
    free(states);
    if (*rc == 0)
        *rc = store_outbox_list(c->st, true, count_entry, &s, err, errlen);
    json_t *out = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(s.sinks, k, v)
        json_array_append(out, v);
    json_decref(s.sinks);
    return out;
}

/* ---------------------------------------------------------------- users and IPs */

typedef struct {
    json_t *history;   /* newest first, at most API_HISTORY_MAX */
    json_t *places;    /* "country\x1fcity\x1fip" -> {country, city, ip, count, first, last} */
    json_t *users;     /* user id -> count */
    size_t read;
} history_scan;

static int collect_history(const store_history_entry *e, void *ctx)
{
    history_scan *h = ctx;
    if (json_array_size(h->history) < API_HISTORY_MAX)
        json_array_append_new(h->history, cli_history_json(e));
    if (e->ip[0] || e->country[0]) {
        char key[EVENT_COUNTRY_MAX + EVENT_TEXT_MAX + EVENT_IP_MAX + 4];
        snprintf(key, sizeof key, "%s\x1f%s\x1f%s", e->country, e->city, e->ip);
        json_t *p = json_object_get(h->places, key);
        if (p == NULL) { /* newest first: the first record seen is the last time */
            p = json_pack("{s:o,s:o,s:o,s:i,s:o}", "country", text(e->country), "city", text(e->city), "ip",
                          text(e->ip), "count", 0, "last", cli_json_time(e->at_ms));
            json_object_set_new(h->places, key, p);
        }
        json_object_set_new(p, "count", json_integer(json_integer_value(json_object_get(p, "count")) + 1));
        json_object_set_new(p, "first", cli_json_time(e->at_ms));
    }
    if (e->user_id[0])
        bump(h->users, e->user_id);
    return ++h->read >= API_SCAN_MAX;
}

static json_t *object_values(json_t *obj)
{
    json_t *out = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
        json_array_append(out, v);
    return out;
}

/* The page of a user ('u') or an IP ('i'). */
static int api_subject(struct console *c, h2o_req_t *req, char kind, const char *raw, size_t rawlen)
{
    char key[EVENT_ID_MAX], err[UTIL_ERRLEN];
    if (url_decode(raw, rawlen, key, sizeof key) < 0 || key[0] == '\0')
        return console_send_error(req, 400, kind == STORE_KEY_USER ? "expected a user id" : "expected an IP address");
    if (kind == STORE_KEY_IP) {
        char canon[UTIL_IP_LEN];
        if (util_ip_canonical(key, strlen(key), canon, sizeof canon) < 0)
            return console_send_error(req, 400, "not an IP address");
        snprintf(key, sizeof key, "%s", canon);
    }
    event_user u;
    bool found = false;
    if (kind == STORE_KEY_USER && store_get_user(c->st, key, &u, &found, err, sizeof err) < 0)
        return console_send_error(req, 500, err);
    history_scan h = {.history = json_array(), .places = json_object(), .users = json_object()};
    int rc = store_history_scan(c->st, kind, key, 0, INT64_MAX, API_SCAN_MAX, collect_history, &h, err, sizeof err);
    alert_query q = {.limit = API_LIST_MAX};
    snprintf(kind == STORE_KEY_USER ? q.user : q.ip, kind == STORE_KEY_USER ? sizeof q.user : sizeof q.ip, "%s", key);
    json_t *alerts = NULL;
    if (rc == 0)
        rc = list_alerts(c, &q, 0, &alerts, err, sizeof err);
    json_t *body = NULL;
    if (rc == 0 && (found || json_array_size(h.history) > 0 || json_array_size(alerts) > 0)) {
        body = json_pack("{s:s,s:O,s:I,s:o}", kind == STORE_KEY_USER ? "user_id" : "ip", key, "history", h.history,
                         "history_read", (json_int_t)h.read, "alerts", alerts);
        alerts = NULL;
        if (kind == STORE_KEY_USER) {
            json_object_set_new(body, "user", found ? cli_user_json(&u) : json_null());
            json_object_set_new(body, "locations", object_values(h.places));
        } else {
            json_object_set_new(body, "users", ranked(h.users, "user_id", 0));
        }
    }
    json_decref(alerts);
    json_decref(h.history);
    json_decref(h.places);
    json_decref(h.users);
    if (rc < 0)
        return console_send_error(req, 500, err);
    if (body == NULL)
        return console_send_error(req, 404, kind == STORE_KEY_USER ? "no such user in the store"
                                                                    : "nothing stored for this IP");
    return console_send_json(req, 200, body);
}

/* ---------------------------------------------------------------- routes */

static bool prefix(const char *path, size_t len, const char *p, size_t *rest)
{
    size_t n = strlen(p);
    if (len <= n || memcmp(path, p, n) != 0)
        return false;
    *rest = n;
    return true;
}

int console_api(struct console *c, h2o_req_t *req, const char *path, size_t len, const char *query, size_t qlen)
{
    size_t at;
    if (h2o_memis(path, len, H2O_STRLIT("/overview")))
        return api_overview(c, req, query, qlen);
    if (h2o_memis(path, len, H2O_STRLIT("/alerts")))
        return api_alerts(c, req, query, qlen);
    if (prefix(path, len, "/alerts/", &at))
        return api_alert(c, req, path + at, len - at);
    if (prefix(path, len, "/users/", &at))
        return api_subject(c, req, STORE_KEY_USER, path + at, len - at);
    if (prefix(path, len, "/ips/", &at))
        return api_subject(c, req, STORE_KEY_IP, path + at, len - at);
    return console_send_error(req, 404,
                              "no such API (GET /api/overview, /api/alerts, /api/alerts/ID, /api/users/ID, /api/ips/IP)");
}

/* ---------------------------------------------------------------- POST /api/alerts/ID/ACTION */

static const struct {
    const char *action;
    int state;
} triage_actions[] = {
    {"ack", STORE_STATE_ACKED},
    {"resolve", STORE_STATE_RESOLVED},
    {"false-positive", STORE_STATE_FP},
};

/* application/json, parameters (charset) allowed. Anything else is refused: a
 * cross-site <form> can only send form or text types, and a browser preflights
 * a cross-site application/json request, which this listener never grants, so
 * this check is what keeps basic auth (which browsers resend on their own)
 * from being used by another site's page. */
static bool body_is_json(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return false;
    h2o_iovec_t v = req->headers.entries[i].value;
    size_t n = 0;
    while (n < v.len && v.base[n] != ';' && v.base[n] != ' ' && v.base[n] != '\t')
        n++;
    return h2o_lcstris(v.base, n, H2O_STRLIT("application/json"));
}

typedef struct {
    const char *id;
    store_alert *out;
    bool found;
} find_alert_ctx;

static int find_alert(const store_alert *a, void *vctx)
{
    find_alert_ctx *f = vctx;
    if (strcmp(a->id, f->id) != 0)
        return 0;
    *f->out = *a;
    f->found = true;
    return 1;
}

/* The request body {note, by?, allow?} into tr (and allow); 0, or -1 with the
 * reason for a 400 in msg. */
static int triage_body(h2o_req_t *req, int state, store_triage *tr, bool *allow, char *msg, size_t msglen)
{
    json_error_t jerr;
    json_t *body = json_loadb(req->entity.base != NULL ? req->entity.base : "", req->entity.len,
                              JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL)
        return util_err(msg, msglen, "the body is not JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                        jerr.column);
    int ret = 0;
    const char *key;
    json_t *v;
    snprintf(tr->by, sizeof tr->by, "console");
    if (!json_is_object(body))
        ret = util_err(msg, msglen, "the body must be a JSON object: {\"note\": TEXT, \"by\": WHO, \"allow\": BOOL}");
    else
        json_object_foreach(body, key, v) {
            if (strcmp(key, "note") == 0 || strcmp(key, "by") == 0) {
                bool is_note = key[0] == 'n';
                size_t max = is_note ? sizeof tr->note : sizeof tr->by;
                if (!json_is_string(v) || json_string_length(v) >= max ||
                    strlen(json_string_value(v)) != json_string_length(v)) {
                    ret = util_err(msg, msglen, "%s: expected a string of at most %zu bytes", key, max - 1);
                    break;
                }
                if (!is_note && json_string_length(v) == 0) {
                    ret = util_err(msg, msglen, "by: empty (leave it out for \"console\")");
                    break;
                }
                snprintf(is_note ? tr->note : tr->by, max, "%s", json_string_value(v));
            } else if (strcmp(key, "allow") == 0) {
                if (!json_is_boolean(v)) {
                    ret = util_err(msg, msglen, "allow: expected true or false");
                    break;
                }
                if (json_is_true(v) && state != STORE_STATE_FP) {
                    ret = util_err(msg, msglen, "allow: only with false-positive");
                    break;
                }
                *allow = json_is_true(v);
            } else {
                ret = util_err(msg, msglen, "unknown field '%.64s' (expected note, by, allow)", key);
                break;
            }
        }
    json_decref(body);
    if (ret == 0 && state == STORE_STATE_FP && tr->note[0] == '\0')
        ret = util_err(msg, msglen, "note: required for a false positive: say why, for whoever reads it next");
    return ret;
}

/* One small write transaction through serve's own store handle, on the loop
 * thread. Trap: LMDB has one writer at a time per environment, so this waits
 * while the apply thread holds the writer lock (at most one apply transaction,
 * ~50 ms), and the loop (webhooks included) waits with it; a decision is rare
 * enough for that. LMDB serialises writers of one environment across threads
 * (its writer mutex), each transaction begun and ended on one thread, which is
 * what store.h asks. The store runs with MDB_NOMETASYNC and this write is in no
 * write-ahead log to replay, so it is synced (store_sync) before the answer. */
static int triage_write(struct console *c, const store_triage *tr, const store_allow_entry *e, char *err,
                        size_t errlen)
{
    store_txn *t = NULL;
    int rc = store_txn_begin(c->st, &t, err, errlen);
    if (rc == 0)
        rc = store_txn_triage_decide(t, tr, e, err, errlen);
    if (rc == 0) {
        rc = store_txn_commit(t, err, errlen);
        t = NULL;
    }
    store_txn_abort(t);
    if (rc == 0)
        rc = store_sync(c->st, err, errlen);
    return rc;
}

int console_api_post(struct console *c, h2o_req_t *req, const char *path, size_t len)
{
    size_t at;
    const char *slash = NULL;
    if (prefix(path, len, "/alerts/", &at))
        slash = memrchr(path + at, '/', len - at);
    int state = -1;
    for (size_t i = 0; slash != NULL && i < sizeof triage_actions / sizeof triage_actions[0]; i++)
        if (h2o_memis(slash + 1, (size_t)(path + len - slash - 1), triage_actions[i].action,
                      strlen(triage_actions[i].action)))
            state = triage_actions[i].state;
    if (state < 0) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD"));
        return console_send_error(req, 405, "POST only to /api/alerts/ID/ack, /resolve or /false-positive");
    }
    if (!body_is_json(req))
        return console_send_error(req, 415, "the body must be JSON, sent as Content-Type: application/json");
    char msg[UTIL_ERRLEN], err[UTIL_ERRLEN];
    store_triage tr = {.state = state, .at_ms = util_now_ms()};
    bool allow = false;
    if (triage_body(req, state, &tr, &allow, msg, sizeof msg) < 0)
        return console_send_error(req, 400, msg);
    if (url_decode(path + at, (size_t)(slash - path - at), tr.alert_id, sizeof tr.alert_id) < 0 ||
        tr.alert_id[0] == '\0')
        return console_send_error(req, 404, "no such alert");
    store_alert *a = malloc(sizeof *a);
    if (a == NULL)
        return console_send_error(req, 500, "out of memory");
    find_alert_ctx f = {.id = tr.alert_id, .out = a};
    int rc = store_list_alerts(c->st, 0, find_alert, &f, err, sizeof err);
    store_allow_entry e;
    if (rc < 0 || !f.found) {
        free(a);
        return rc < 0 ? console_send_error(req, 500, err) : console_send_error(req, 404, "no such alert");
    }
    char why[UTIL_ERRLEN - 8]; /* room for the "allow: " prefix in msg */
    if (allow && store_allow_from_alert(a, &tr, &e, why, sizeof why) < 0) {
        free(a);
        snprintf(msg, sizeof msg, "allow: %s", why);
        return console_send_error(req, 400, msg);
    }
    free(a);
    rc = triage_write(c, &tr, allow ? &e : NULL, err, sizeof err);
    if (rc < 0)
        return console_send_error(req, rc == STORE_ERR_FULL || rc == STORE_ERR_IO ? 503 : 500, err);
    log_line(LOG_INFO, "msg=\"alert triaged in the console\" alert=%s state=%s allow=%s", tr.alert_id,
             store_state_name(state), allow ? "yes" : "no");
    return console_send_json(req, 200,
                             json_pack("{s:s,s:s,s:s,s:o,s:s,s:b}", "id", tr.alert_id, "state",
                                       store_state_name(state), "by", tr.by, "at", cli_json_time(tr.at_ms), "note",
                                       tr.note, "allowed", allow));
}
