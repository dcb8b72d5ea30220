/*
 * functions.c: the window functions. Each reads the rule key's history newest
 * first from the event's own time, stops as soon as its answer is decided (the
 * cap the comparison needs) and never decodes more than ENGINE_SCAN_MAX records.
 * first_seen() and distinct() of the indexed fields (country and ip under a
 * user, user under an IP) use the store's values index instead: their cost
 * follows the number of distinct values a key has, not its number of events.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "geo/geo.h"
#include "util/util.h"

#define ACTIVE_LOOKBACK_MS ((int64_t)30 * 86400000) /* a session older than this counts as expired */
#define TRAVEL_MIN_HOURS (1.0 / 60.0)               /* clock jitter must not make speeds infinite */
#define ACTIVE_PENDING_MAX 16                       /* sign-ins of one user at one millisecond held back */

/* A device field of a history record: its user agent parsed (cached) into the
 * context's scratch, valid until the next call. */
static const char *entry_device_field(eval_ctx *c, const store_history_entry *e, rules_field f)
{
    /* Only sign-ins, as the values index (engine.c): the request of a
     * session.ended or .revoked may be an admin's or the backend's. */
    if (c->ua == NULL || e->type != EVENT_SESSION_CREATED)
        return "";
    device_parse(c->ua, e->user_agent, &c->ua_entry);
    switch (f) {
    case RULES_F_UA_BROWSER: return c->ua_entry.browser;
    case RULES_F_UA_OS: return c->ua_entry.os;
    case RULES_F_UA_DEVICE: return c->ua_entry.device;
    case RULES_F_DEVICE_KEY:
        device_key(&c->ua_entry, c->entry_device_key, sizeof c->entry_device_key);
        return c->entry_device_key;
    default: return "";
    }
}

static const char *entry_field(eval_ctx *c, const store_history_entry *e, rules_field f)
{
    switch (f) {
    case RULES_F_UA_BROWSER:
    case RULES_F_UA_OS:
    case RULES_F_UA_DEVICE:
    case RULES_F_DEVICE_KEY: return entry_device_field(c, e, f);
    case RULES_F_TYPE: return event_type_name(e->type);
    case RULES_F_USER_ID:
    case RULES_F_USER: return e->user_id;
    case RULES_F_SESSION_ID: return e->session_id;
    case RULES_F_IP: return e->ip;
    case RULES_F_COUNTRY: return e->country;
    case RULES_F_CITY: return e->city;
    case RULES_F_BROWSER: return e->browser;
    case RULES_F_DEVICE: return e->device;
    case RULES_F_USER_AGENT: return e->user_agent;
    case RULES_F_INSTANCE: return e->instance_id;
    default: return "";
    }
}

const char *engine_event_ip(const event_t *ev)
{
    return ev->session.ip[0] != '\0' ? ev->session.ip : ev->client_ip;
}

const char *engine_event_field(const eval_ctx *c, rules_field f)
{
    const event_t *ev = c->ev;
    bool session = event_type_is_session(ev->type);
    switch (f) {
    case RULES_F_TYPE: return event_type_name(ev->type);
    case RULES_F_USER_ID:
    case RULES_F_USER: return session ? ev->session.user_id : ev->user.id;
    case RULES_F_SESSION_ID: return ev->session.session_id;
    /* user.* events have no session: the IP is the one of the HTTP request */
    case RULES_F_IP: return session ? ev->session.ip : ev->client_ip;
    /* Clerk's, else the IP database's (the alert's evidence then says so) */
    case RULES_F_COUNTRY: return ev->session.country[0] != '\0' ? ev->session.country : c->ipinfo.country;
    case RULES_F_CITY: return ev->session.city;
    case RULES_F_BROWSER: return ev->session.browser;
    case RULES_F_DEVICE: return ev->session.device;
    case RULES_F_USER_AGENT: return ev->user_agent;
    case RULES_F_USER_EMAIL: return c->user.email;
    case RULES_F_UA_BROWSER: return c->ua_event.browser;
    case RULES_F_UA_OS: return c->ua_event.os;
    case RULES_F_UA_DEVICE: return c->ua_event.device;
    case RULES_F_DEVICE_KEY: return c->device_key;
    case RULES_F_INSTANCE: return ev->instance_id;
    default: return "";
    }
}

/* The values-index field for f under kind, or 0 when f is not indexed there. */
static store_value_field indexed_field(char kind, rules_field f)
{
    store_value_field vf = f == RULES_F_COUNTRY                          ? STORE_VALUE_COUNTRY
                           : f == RULES_F_IP                             ? STORE_VALUE_IP
                           : (f == RULES_F_USER || f == RULES_F_USER_ID) ? STORE_VALUE_USER
                           : f == RULES_F_DEVICE_KEY                     ? STORE_VALUE_DEVICE
                                                                         : (store_value_field)0;
    return vf != 0 && store_value_indexed(kind, vf) ? vf : (store_value_field)0;
}

/* A set of 64-bit string hashes (FNV-1a), for distinct values and session ids
 * within one bounded read. Collisions are negligible at ENGINE_SCAN_MAX. Two
 * live in the evaluation context for the engine's life; a slot belongs to the
 * current read when its generation is current, so clearing costs nothing. */
#define HSET_SLOTS (2 * ENGINE_SCAN_MAX)
struct hset {
    uint64_t hash[HSET_SLOTS];
    uint32_t gen[HSET_SLOTS];
    uint32_t cur;
    size_t n;
};
typedef struct hset hset;

int engine_scratch_init(eval_ctx *c)
{
    c->set_a = calloc(1, sizeof *c->set_a);
    c->set_b = calloc(1, sizeof *c->set_b);
    c->snap_user = calloc(1, sizeof *c->snap_user);
    if (c->set_a == NULL || c->set_b == NULL || c->snap_user == NULL)
        return -1;
    c->set_a->cur = c->set_b->cur = 1;
    return 0;
}

void engine_scratch_free(eval_ctx *c)
{
    free(c->set_a);
    free(c->set_b);
    free(c->snap_user);
}

void engine_snapshots_reset(eval_ctx *c)
{
    c->snap_user->loaded = false;
}

static int on_snapshot(const store_history_entry *e, void *ctx)
{
    key_snapshot *k = ctx;
    k->e[k->n++] = *e;
    return 0;
}

/* The snapshot of the rule's key, loaded on first use in this event. */
static int snapshot(eval_ctx *c, key_snapshot **out)
{
    key_snapshot *k = c->snap_user;
    if (!k->loaded) {
        k->n = 0;
        int rc = store_txn_history_scan(c->t, c->kind, c->key, 0, c->at, ENGINE_SNAPSHOT_MAX, on_snapshot, k, c->err,
                                        c->errlen);
        if (rc < 0)
            return rc;
        k->loaded = true;
        k->complete = k->n < ENGINE_SNAPSHOT_MAX;
    }
    *out = k;
    return 0;
}

static void hset_clear(hset *h)
{
    h->n = 0;
    if (++h->cur == 0) { /* after 4 billion reads: really clear once */
        memset(h->gen, 0, sizeof h->gen);
        h->cur = 1;
    }
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Adds the string of hash x; returns true when it was not there yet. */
static bool hset_add_hash(hset *h, uint64_t x)
{
    if (h->n >= HSET_SLOTS / 2)
        return false; /* cannot happen within ENGINE_SCAN_MAX records */
    for (size_t i = x % HSET_SLOTS;; i = (i + 1) % HSET_SLOTS) {
        if (h->gen[i] != h->cur) {
            h->gen[i] = h->cur;
            h->hash[i] = x;
            h->n++;
            return true;
        }
        if (h->hash[i] == x)
            return false;
    }
}

static bool hset_has_hash(const hset *h, uint64_t x)
{
    for (size_t i = x % HSET_SLOTS;; i = (i + 1) % HSET_SLOTS) {
        if (h->gen[i] != h->cur)
            return false;
        if (h->hash[i] == x)
            return true;
    }
}

static bool hset_add(hset *h, const char *s) { return hset_add_hash(h, hash_str(s)); }
static bool hset_has(const hset *h, const char *s) { return hset_has_hash(h, hash_str(s)); }

typedef struct {
    eval_ctx *c;
    const rules_expr *call;
    size_t cap;
    size_t read;     /* records decoded */
    bool decided;    /* stopped because the answer was known */
    double n;        /* counts */
    bool found;
    hset *set, *closed;
    /* travel */
    geo_point here, there;
    int64_t there_at;
    const store_history_entry *prev;
    char prev_where[160];
    /* active_sessions: the open sessions created at the millisecond being read,
     * counted once the scan has left it (see on_active) */
    int64_t pend_at;
    size_t n_pend;
    uint64_t pend[ACTIVE_PENDING_MAX]; /* session id hashes, as the sets keep them */
} scan;

static bool is_current(const scan *s, const store_history_entry *e)
{
    return strcmp(e->delivery_id, s->c->ev->delivery_id) == 0;
}

static int stop_at_cap(scan *s)
{
    if (s->cap != 0 && s->n >= (double)s->cap) {
        s->decided = true;
        return 1;
    }
    return 0;
}

static int on_count(const store_history_entry *e, void *ctx)
{
    scan *s = ctx;
    s->read++;
    if (e->type == s->call->args[0]->evtype)
        s->n++;
    return stop_at_cap(s);
}

static int on_distinct(const store_history_entry *e, void *ctx)
{
    scan *s = ctx;
    s->read++;
    const char *v = entry_field(s->c, e, s->call->args[0]->field);
    if (v[0] != '\0' && hset_add(s->set, v))
        s->n++;
    return stop_at_cap(s);
}

static int on_first_seen(const store_history_entry *e, void *ctx)
{
    scan *s = ctx;
    s->read++;
    if (!is_current(s, e) &&
        strcmp(entry_field(s->c, e, s->call->args[0]->field), engine_event_field(s->c, s->call->args[0]->field)) == 0) {
        s->found = true;
        s->decided = true;
        return 1;
    }
    return 0;
}

/* Earlier sign-ins with a known FIELD. Only session.created: the other session
 * records (ended, removed, revoked, pending) repeat the session's country and
 * IP, so counting them made one sign-in and its sign-out look like two. */
static int on_count_known(const store_history_entry *e, void *ctx)
{
    scan *s = ctx;
    s->read++;
    if (e->type == EVENT_SESSION_CREATED && !is_current(s, e) && entry_field(s->c, e, s->call->args[0]->field)[0] != '\0')
        s->n++;
    return stop_at_cap(s);
}

static int on_since_last(const store_history_entry *e, void *ctx)
{
    scan *s = ctx;
    s->read++;
    if (!is_current(s, e) && e->type == s->call->args[0]->evtype) {
        s->found = true;
        s->there_at = e->at_ms;
        s->decided = true;
        return 1;
    }
    return 0;
}

/* Count the held-back sessions of the millisecond the scan has left: by now
 * every end recorded at that millisecond has been seen. */
static void active_flush(scan *s)
{
    for (size_t i = 0; i < s->n_pend; i++)
        if (!hset_has_hash(s->closed, s->pend[i]) && hset_add_hash(s->set, s->pend[i]))
            s->n++;
    s->n_pend = 0;
}

/* Newest first, an end is met before the creation it ends, except at the same
 * millisecond: records there sort by delivery id, so a session.ended may come
 * after its session.created. A creation is therefore held back until the scan
 * leaves its millisecond (more than ACTIVE_PENDING_MAX of them at one
 * millisecond: the oldest held one is counted at once). */
static int on_active(const store_history_entry *e, void *ctx)
{
    scan *s = ctx;
    s->read++;
    if (s->n_pend > 0 && e->at_ms != s->pend_at) {
        active_flush(s);
        if (stop_at_cap(s))
            return 1;
    }
    if (e->session_id[0] == '\0')
        return 0;
    switch (e->type) {
    case EVENT_SESSION_ENDED:
    case EVENT_SESSION_REMOVED:
    case EVENT_SESSION_REVOKED:
        hset_add(s->closed, e->session_id);
        return 0;
    case EVENT_SESSION_CREATED:
        if (hset_has(s->closed, e->session_id))
            return 0;
        if (e->expire_at != 0 && e->expire_at <= s->c->at)
            return 0;
        if (s->n_pend == ACTIVE_PENDING_MAX) {
            if (hset_add_hash(s->set, s->pend[0]))
                s->n++;
            memmove(&s->pend[0], &s->pend[1], sizeof s->pend[0] * (ACTIVE_PENDING_MAX - 1));
            s->n_pend--;
        }
        s->pend_at = e->at_ms;
        s->pend[s->n_pend++] = hash_str(e->session_id);
        return 0;
    default:
        return 0;
    }
}

static int on_travel(const store_history_entry *e, void *ctx)
{
    scan *s = ctx;
    s->read++;
    if (is_current(s, e) || e->type != EVENT_SESSION_CREATED)
        return 0;
    if (geo_locate(e->country, e->city, &s->there) < 0)
        return 0;
    s->found = true;
    s->there_at = e->at_ms;
    char when[UTIL_RFC3339_LEN];
    util_format_rfc3339(e->at_ms, when, sizeof when);
    snprintf(s->prev_where, sizeof s->prev_where, "%.7s%s%.100s at %s", e->country, e->city[0] ? "/" : "", e->city,
             when);
    s->decided = true;
    return 1;
}

/* The key's snapshot when it covers the window from since, else *out = NULL.
 * Only users: an IP's records are many users' sign-ins, rarely covered by 16
 * records, and few rules read them. Covered when it holds the whole key, or
 * its oldest record is older than the window (records at that same
 * millisecond might be missing). */
static int covering_snapshot(eval_ctx *c, int64_t since, key_snapshot **out)
{
    key_snapshot *k = NULL;
    *out = NULL;
    if (c->kind == STORE_KEY_USER) {
        int rc = snapshot(c, &k);
        if (rc < 0)
            return rc;
        if (k->complete || k->e[k->n - 1].at_ms < since)
            *out = k;
    }
    return 0;
}

static int read_window(eval_ctx *c, scan *s, int64_t since, store_history_cb cb)
{
    key_snapshot *k = NULL;
    int rc = covering_snapshot(c, since, &k);
    if (rc < 0)
        return rc;
    if (k != NULL) {
        /* In memory, finishing a count costs nothing, and an exact value reads
         * better than a lower bound: no cap here. */
        s->cap = 0;
        for (size_t i = 0; i < k->n && k->e[i].at_ms >= since; i++)
            if (cb(&k->e[i], s) != 0)
                break;
        return 0;
    }
    rc = store_txn_history_scan(c->t, c->kind, c->key, since, c->at, ENGINE_SCAN_MAX, cb, s, c->err, c->errlen);
    if (rc < 0)
        return rc;
    if (!s->decided && s->read >= ENGINE_SCAN_MAX)
        c->bounded_reads++;
    return 0;
}

static int64_t window_start(const eval_ctx *c, int64_t dur)
{
    return c->at > dur ? c->at - dur : 0;
}

int engine_call(eval_ctx *c, const rules_expr *call, size_t cap, value *v, char *prev_where)
{
    memset(v, 0, sizeof *v);
    scan s;
    memset(&s, 0, sizeof s);
    s.c = c;
    s.call = call;
    s.cap = cap;
    uint64_t bounded_before = c->bounded_reads;
    int64_t dur = call->nargs == 2 ? call->args[1]->ms : 0;
    int rc = 0;
    switch (call->func) {
    case RULES_FN_COUNT:
        rc = read_window(c, &s, window_start(c, dur), on_count);
        *v = (value){.k = V_NUM, .num = s.n, .at_least = s.decided};
        break;
    case RULES_FN_DISTINCT: {
        store_value_field vf = indexed_field(c->kind, call->args[0]->field);
        key_snapshot *k = NULL;
        /* the index stops at the cap; a snapshot that covers the window gives
         * the exact count for the price of a few records in memory */
        if (vf != 0 && (rc = covering_snapshot(c, window_start(c, dur), &k)) < 0)
            break;
        if (vf != 0 && k == NULL) {
            size_t n = 0;
            bool bounded = false;
            rc = store_txn_value_distinct(c->t, c->kind, c->key, vf, window_start(c, dur), c->at, cap, &n, &bounded,
                                          c->err, c->errlen);
            *v = (value){.k = V_NUM, .num = (double)n, .at_least = cap != 0 && n >= cap};
            if (bounded)
                c->bounded_reads++;
            break;
        }
        s.set = c->set_a;
        hset_clear(s.set);
        rc = read_window(c, &s, window_start(c, dur), on_distinct);
        *v = (value){.k = V_NUM, .num = s.n, .at_least = s.decided};
        break;
    }
    case RULES_FN_FIRST_SEEN: {
        rules_field f = call->args[0]->field;
        const char *cur = engine_event_field(c, f);
        if (cur[0] == '\0') {
            /* an unknown value is not a new one */
            *v = (value){.k = V_BOOL, .b = false};
            break;
        }
        store_value_field vf = indexed_field(c->kind, f);
        if (vf != 0) {
            rc = store_txn_value_seen(c->t, c->kind, c->key, vf, cur, window_start(c, dur), c->at,
                                      c->ev->delivery_id, &s.found, c->err, c->errlen);
            if (rc == 0 && !s.found && vf == STORE_VALUE_DEVICE) {
                /* A user with no device on record at all (signed up, or last
                 * seen, before the rules read devices) has nothing to compare
                 * with: not a new device, or loading a rule that reads devices
                 * would raise one alert per user. */
                size_t known = 0;
                rc = store_txn_value_distinct(c->t, c->kind, c->key, vf, 0, c->at, 1, &known, NULL, c->err,
                                              c->errlen);
                s.found = known == 0;
            }
        } else {
            rc = read_window(c, &s, window_start(c, dur), on_first_seen);
        }
        *v = (value){.k = V_BOOL, .b = !s.found};
        break;
    }
    case RULES_FN_COUNT_KNOWN:
        rc = read_window(c, &s, window_start(c, dur), on_count_known);
        *v = (value){.k = V_NUM, .num = s.n, .at_least = s.decided};
        break;
    case RULES_FN_SINCE_LAST:
        rc = read_window(c, &s, 0, on_since_last);
        *v = s.found ? (value){.k = V_DUR, .ms = c->at - s.there_at} : (value){.k = V_NULL};
        break;
    case RULES_FN_ACTIVE_SESSIONS:
        s.set = c->set_a;
        s.closed = c->set_b;
        hset_clear(s.set);
        hset_clear(s.closed);
        rc = read_window(c, &s, window_start(c, ACTIVE_LOOKBACK_MS), on_active);
        active_flush(&s);
        *v = (value){.k = V_NUM, .num = s.n, .at_least = s.decided};
        break;
    case RULES_FN_TRAVEL_KM:
    case RULES_FN_TRAVEL_KMH: {
        if (geo_locate(engine_event_field(c, RULES_F_COUNTRY), engine_event_field(c, RULES_F_CITY), &s.here) < 0) {
            *v = (value){.k = V_NULL};
            break;
        }
        rc = read_window(c, &s, 0, on_travel);
        if (rc < 0 || !s.found) {
            *v = (value){.k = V_NULL};
            break;
        }
        double km = geo_distance_km(s.here, s.there);
        double hours = (double)(c->at - s.there_at) / 3600000.0;
        if (hours < TRAVEL_MIN_HOURS)
            hours = TRAVEL_MIN_HOURS;
        double x = call->func == RULES_FN_TRAVEL_KM ? km : km / hours;
        /* a tenth is finer than the country-level points deserve; it reads better */
        *v = (value){.k = V_NUM, .num = round(x * 10) / 10};
        if (prev_where != NULL)
            snprintf(prev_where, 160, "%s", s.prev_where);
        break;
    }
    case RULES_FN_RISK:
        rc = engine_risk(c, v);
        break;
    case RULES_FN_COUNT_:
        return util_err(c->err, c->errlen, "rules: unknown function");
    }
    if (rc < 0)
        return rc;
    v->bounded = c->bounded_reads != bounded_before;
    if (!isfinite(v->num))
        v->num = 0;
    return 0;
}
