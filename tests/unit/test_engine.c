/* test_engine.c: the rules engine over a real store: each window function at its
 * window edges (exactly at the boundary, one ms past it), by-ip keys, out-of-order
 * events, suppression counts, user fields, missing locations, bounded reads, and
 * the alert record itself. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "engine/engine.h"
#include "rules/rules.h"
#include "store/store.h"
#include "util/util.h"

#define T0 ((int64_t)1767225600000) /* 2026-01-01T00:00:00Z */
#define MIN ((int64_t)60000)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static char tmproot[64];
static int dir_seq;

typedef struct {
    store_alert alerts[64];
    size_t n;
} sink;

typedef struct {
    store *st;
    engine *eng;
    sink out;
    int seq;
} fixture;

static void on_alert(const store_alert *a, void *ctx)
{
    sink *s = ctx;
    if (a->incident_update)
        return; /* incident updates: tests/unit/test_incidents.c, interop incidents.test.mjs */
    if (s->n < 64)
        s->alerts[s->n++] = *a;
}

static bool setup(fixture *f, const char *src)
{
    memset(f, 0, sizeof *f);
    char dir[128], err[UTIL_ERRLEN];
    snprintf(dir, sizeof dir, "%s/e%d", tmproot, ++dir_seq);
    rules_set *set = NULL;
    if (rules_load_buffer("test.rules", src, strlen(src), &set, stdout) != 0)
        return false;
    if (engine_new(set, &f->eng, err, sizeof err) < 0) {
        printf("engine_new: %s\n", err);
        return false;
    }
    if (store_open(&f->st, dir, 0, 256u << 20, err, sizeof err) < 0) {
        printf("store_open: %s\n", err);
        return false;
    }
    return true;
}

static void teardown(fixture *f)
{
    engine_free(f->eng);
    store_close(f->st);
}

typedef struct {
    event_type type;
    const char *user, *ip, *country, *city, *session;
    int64_t at, expire_at;
} ev_spec;

static event_t make_event(fixture *f, const ev_spec *s)
{
    event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.type = s->type;
    snprintf(ev.delivery_id, sizeof ev.delivery_id, "msg_%04d", ++f->seq);
    ev.at_ms = s->at;
    ev.timestamp_ms = s->at;
    if (event_type_is_session(s->type)) {
        snprintf(ev.session.user_id, sizeof ev.session.user_id, "%s", s->user);
        if (s->session)
            snprintf(ev.session.session_id, sizeof ev.session.session_id, "%s", s->session);
        else
            snprintf(ev.session.session_id, sizeof ev.session.session_id, "sess_%04d", f->seq);
        snprintf(ev.session.ip, sizeof ev.session.ip, "%s", s->ip ? s->ip : "");
        snprintf(ev.session.country, sizeof ev.session.country, "%s", s->country ? s->country : "");
        snprintf(ev.session.city, sizeof ev.session.city, "%s", s->city ? s->city : "");
        ev.session.created_at = s->at;
        ev.session.updated_at = s->at;
        ev.session.expire_at = s->expire_at ? s->expire_at : s->at + 7 * DAY;
    } else {
        snprintf(ev.user.id, sizeof ev.user.id, "%s", s->user);
        ev.user.created_at = s->expire_at; /* user events: expire_at carries created_at */
        ev.user.updated_at = s->at;
    }
    return ev;
}

/* Store and evaluate one event in its own transaction, as serve does. Returns
 * the number of alerts it raised, -1 on error. */
static int feed_event(fixture *f, event_t ev)
{
    char err[UTIL_ERRLEN];
    store_txn *t = NULL;
    size_t before = f->out.n;
    engine_hooks hooks = {.on_alert = on_alert, .ctx = &f->out};
    store_outcome outcome;
    if (store_txn_begin(f->st, &t, err, sizeof err) < 0 || store_apply_event(t, &ev, &outcome, err, sizeof err) < 0 ||
        engine_eval_event(f->eng, t, &ev, T0, &hooks, err, sizeof err) < 0 ||
        store_delivery_mark(t, ev.delivery_id, ev.type, T0, err, sizeof err) < 0) {
        printf("feed: %s\n", err);
        store_txn_abort(t);
        return -1;
    }
    if (store_txn_commit(t, err, sizeof err) < 0) {
        printf("commit: %s\n", err);
        engine_settle(f->eng, false);
        return -1;
    }
    engine_settle(f->eng, true);
    return (int)(f->out.n - before);
}

static int feed(fixture *f, ev_spec s)
{
    return feed_event(f, make_event(f, &s));
}

/* A sign-in from the user agent ua (event_attributes.http_request.user_agent). */
static int feed_ua(fixture *f, const char *user, const char *ua, int64_t at)
{
    ev_spec s = {EVENT_SESSION_CREATED, user, "10.0.0.1", "FR", NULL, NULL, at, 0};
    event_t ev = make_event(f, &s);
    snprintf(ev.user_agent, sizeof ev.user_agent, "%s", ua);
    return feed_event(f, ev);
}

#define CREATED(u, ip_, co, at_) ((ev_spec){EVENT_SESSION_CREATED, (u), (ip_), (co), NULL, NULL, (at_), 0})

static const store_evidence *evidence(const store_alert *a, const char *name)
{
    for (size_t i = 0; i < a->n_evidence; i++)
        if (strcmp(a->evidence[i].name, name) == 0)
            return &a->evidence[i];
    return NULL;
}

static void test_count_edges(void)
{
    fixture f;
    CHECK("count: setup", setup(&f, "rule c { severity high on session.created "
                                    "when count(session.created, 10m) >= 3 }"));
    /* exactly at the boundary: t - 10m is inside */
    feed(&f, CREATED("u_edge", "10.0.0.1", "FR", T0));
    feed(&f, CREATED("u_edge", "10.0.0.1", "FR", T0 + MIN));
    CHECK("count: boundary included", feed(&f, CREATED("u_edge", "10.0.0.1", "FR", T0 + 10 * MIN)) == 1);
    /* one ms past it: the first event has left the window */
    feed(&f, CREATED("u_past", "10.0.0.1", "FR", T0));
    feed(&f, CREATED("u_past", "10.0.0.1", "FR", T0 + MIN));
    CHECK("count: 1 ms past excluded", feed(&f, CREATED("u_past", "10.0.0.1", "FR", T0 + 10 * MIN + 1)) == 0);
    CHECK("count: the alert's key", f.out.n == 1 && strcmp(f.out.alerts[0].key, "user:u_edge") == 0);
    const store_evidence *e = f.out.n ? evidence(&f.out.alerts[0], "count(session.created, 10m)") : NULL;
    CHECK("count: evidence names the call", e != NULL && e->kind == STORE_EVIDENCE_NUMBER && e->num == 3);
    /* other types are not counted */
    ev_spec ended = {EVENT_SESSION_ENDED, "u_types", "", "", NULL, NULL, T0, 0};
    feed(&f, ended);
    ended.at = T0 + 1;
    feed(&f, ended);
    CHECK("count: only its type", feed(&f, CREATED("u_types", "10.0.0.1", "FR", T0 + 2)) == 0);
    teardown(&f);
}

static void test_count_cap(void)
{
    fixture f;
    CHECK("cap: setup", setup(&f, "rule c { severity high on session.created "
                                  "when count(session.created, 1h) > 2 }"));
    for (int i = 0; i < 6; i++)
        feed(&f, CREATED("u_cap", "10.0.0.1", "FR", T0 + i * MIN));
    CHECK("cap: one alert per matching event", f.out.n == 4);
    /* 6 records: the key's snapshot holds them all, so the count is finished in
     * memory and exact, not the cap */
    const store_evidence *e = f.out.n == 4 ? evidence(&f.out.alerts[3], "count(session.created, 1h)") : NULL;
    CHECK("cap: in memory the value is exact", e != NULL && e->num == 6 && !e->at_least);
    /* 20 records in the window, more than the snapshot: the read stops at 3 = the
     * cap, reported as a lower bound */
    for (int i = 0; i < 20; i++)
        feed(&f, CREATED("u_capb", "10.0.0.1", "FR", T0 + i * MIN));
    e = f.out.n == 22 ? evidence(&f.out.alerts[21], "count(session.created, 1h)") : NULL;
    CHECK("cap: a read stops at what decides", e != NULL && e->num == 3 && e->at_least);
    teardown(&f);

    /* `>= 1` is decided by the first match, whichever side the count is on:
     * the summary must not say "at least 2" for it */
    CHECK("cap: setup >= 1", setup(&f, "rule ge { severity low on session.created "
                                       "when count(session.created, 1h) >= 1 }\n"
                                       "rule mirrored { severity low on session.created "
                                       "when 1 <= count(session.created, 1h) }"));
    for (int i = 0; i < 20; i++)
        feed(&f, CREATED("u_ge", "10.0.0.1", "FR", T0 + i * MIN));
    e = f.out.n == 40 ? evidence(&f.out.alerts[38], "count(session.created, 1h)") : NULL;
    CHECK("cap: >= 1 reads one match", e != NULL && e->num == 1 && e->at_least);
    e = f.out.n == 40 ? evidence(&f.out.alerts[39], "count(session.created, 1h)") : NULL;
    CHECK("cap: 1 <= count reads one match", e != NULL && e->num == 1 && e->at_least);
    teardown(&f);
}

static void test_distinct(void)
{
    fixture f;
    CHECK("distinct: setup", setup(&f, "rule ips { severity high on session.created when distinct(ip, 1h) >= 3 }\n"
                                       "rule cities { severity low on session.created when distinct(city, 1h) >= 3 }"));
    /* ip (indexed): the first IP at exactly t - 1h still counts */
    feed(&f, CREATED("u_ip", "10.0.0.1", "", T0));
    feed(&f, CREATED("u_ip", "10.0.0.2", "", T0 + MIN));
    feed(&f, CREATED("u_ip", "10.0.0.2", "", T0 + 2 * MIN)); /* repeated value: once */
    CHECK("distinct: boundary included", feed(&f, CREATED("u_ip", "10.0.0.3", "", T0 + HOUR)) == 1);
    /* 4 records, all in the key's snapshot: the count is exact, where the
     * values index stops at the cap */
    const store_evidence *e = f.out.n == 1 ? evidence(&f.out.alerts[0], "distinct(ip, 1h)") : NULL;
    CHECK("distinct: from the snapshot, exact", e != NULL && e->num == 3 && !e->at_least);
    feed(&f, CREATED("u_ip2", "10.0.0.1", "", T0));
    feed(&f, CREATED("u_ip2", "10.0.0.2", "", T0 + MIN));
    CHECK("distinct: 1 ms past", feed(&f, CREATED("u_ip2", "10.0.0.3", "", T0 + HOUR + 1)) == 0);
    /* 17 records in the window, more than the snapshot: the values index */
    feed(&f, CREATED("u_idx", "10.8.0.1", "", T0));
    for (int i = 1; i <= 15; i++)
        feed(&f, CREATED("u_idx", "10.8.0.2", "", T0 + i));
    size_t before = f.out.n;
    CHECK("distinct: index, 1 ms past", feed(&f, CREATED("u_idx", "10.8.0.3", "", T0 + HOUR + 1)) == 0);
    CHECK("distinct: index, boundary included", feed(&f, CREATED("u_idx", "10.8.0.4", "", T0 + HOUR)) == 1);
    e = f.out.n == before + 1 ? evidence(&f.out.alerts[before], "distinct(ip, 1h)") : NULL;
    CHECK("distinct: index, stops at the cap", e != NULL && e->num == 3 && e->at_least);
    /* a value with more entries than the cursor steps before a seek */
    for (int i = 0; i < 6; i++)
        feed(&f, CREATED("u_many", "10.9.0.1", "", T0 + i));
    feed(&f, CREATED("u_many", "10.9.0.2", "", T0 + 2 * HOUR));
    CHECK("distinct: old entries of a value are out", feed(&f, CREATED("u_many", "10.9.0.3", "", T0 + 2 * HOUR + 1)) == 0);
    for (int i = 0; i < 6; i++)
        feed(&f, CREATED("u_many", "10.9.0.0", "", T0 + 2 * HOUR + 2 + i));
    CHECK("distinct: a busy value counts once", feed(&f, CREATED("u_many", "10.9.0.1", "", T0 + 2 * HOUR + 10)) == 1);
    /* city (not indexed): the scan path, same edges */
    ev_spec s = {EVENT_SESSION_CREATED, "u_city", "", "", "Lyon", NULL, T0, 0};
    feed(&f, s);
    s.city = "Nice", s.at = T0 + MIN;
    feed(&f, s);
    s.city = "Lille", s.at = T0 + HOUR;
    CHECK("distinct: scan, boundary included", feed(&f, s) == 1);
    s.user = "u_city2", s.city = "Lyon", s.at = T0;
    feed(&f, s);
    s.city = "Nice", s.at = T0 + MIN;
    feed(&f, s);
    s.city = "Lille", s.at = T0 + HOUR + 1;
    CHECK("distinct: scan, 1 ms past", feed(&f, s) == 0);
    teardown(&f);
}

static void test_first_seen(void)
{
    fixture f;
    CHECK("first_seen: setup",
          setup(&f, "rule nc { severity medium on session.created "
                    "when country != \"\" and first_seen(country, 1d) and count_known(country, 1d) >= 1 }\n"
                    "rule ncity { severity low on session.created "
                    "when first_seen(city, 1d) and count_known(city, 1d) >= 1 }"));
    CHECK("first_seen: a first sign-in raises nothing", feed(&f, CREATED("u_fs", "10.0.0.1", "FR", T0)) == 0);
    CHECK("first_seen: same country again", feed(&f, CREATED("u_fs", "10.0.0.1", "FR", T0 + HOUR)) == 0);
    CHECK("first_seen: a new country", feed(&f, CREATED("u_fs", "10.0.0.1", "DE", T0 + 2 * HOUR)) == 1);
    /* FR last seen at T0 + 1h: exactly 1 day later it is still "seen"... */
    CHECK("first_seen: boundary still seen", feed(&f, CREATED("u_fs", "10.0.0.1", "FR", T0 + HOUR + DAY)) == 0);
    /* ...DE last seen at T0 + 2h: 1 ms past a day it is new again */
    CHECK("first_seen: 1 ms past is new",
          feed(&f, CREATED("u_fs", "10.0.0.1", "DE", T0 + 2 * HOUR + DAY + 1)) == 1);
    CHECK("first_seen: empty country raises nothing", feed(&f, CREATED("u_fs", "10.0.0.1", "", T0 + 3 * DAY)) == 0);
    /* the scan path (city is not indexed) */
    ev_spec s = {EVENT_SESSION_CREATED, "u_fsc", "", "", "Lyon", NULL, T0, 0};
    feed(&f, s);
    s.at = T0 + MIN;
    CHECK("first_seen: scan, same city", feed(&f, s) == 0);
    s.city = "Nice", s.at = T0 + 2 * MIN;
    CHECK("first_seen: scan, new city", feed(&f, s) == 1);
    teardown(&f);
}

/* count_known(FIELD, DUR): the earlier sign-ins (session.created) of the window
 * whose FIELD is known. A session.ended (or pending, removed, revoked) record
 * carries the session's country too, but it is not a sign-in. */
static void test_count_known(void)
{
    fixture f;
    CHECK("count_known: setup", setup(&f, "rule known2 { severity low on session.created "
                                          "when count_known(country, 1d) >= 2 }"));
    feed(&f, CREATED("u_ck", "10.0.0.1", "FR", T0));
    ev_spec ended = {EVENT_SESSION_ENDED, "u_ck", "10.0.0.1", "FR", NULL, "sess_0001", T0 + MIN, 0};
    feed(&f, ended);
    ev_spec pending = {EVENT_SESSION_PENDING, "u_ck", "10.0.0.1", "FR", NULL, NULL, T0 + 2 * MIN, 0};
    feed(&f, pending);
    CHECK("count_known: one sign-in and one ended session are 1, not 2",
          feed(&f, CREATED("u_ck", "10.0.0.1", "FR", T0 + 3 * MIN)) == 0);
    CHECK("count_known: two earlier sign-ins", feed(&f, CREATED("u_ck", "10.0.0.1", "", T0 + 4 * MIN)) == 1);
    const store_evidence *e = f.out.n ? evidence(&f.out.alerts[0], "count_known(country, 1d)") : NULL;
    CHECK("count_known: the value is the sign-ins with a country", e != NULL && e->num == 2 && !e->at_least);
    /* an unlocated sign-in is not known; the window's start is inclusive */
    CHECK("count_known: an empty country is not known", feed(&f, CREATED("u_ck3", "", "", T0)) == 0 &&
                                                            feed(&f, CREATED("u_ck3", "", "FR", T0 + 1)) == 0 &&
                                                            feed(&f, CREATED("u_ck3", "", "FR", T0 + 2)) == 0);
    CHECK("count_known: t - 1d is in", feed(&f, CREATED("u_ck2", "", "FR", T0)) == 0 &&
                                          feed(&f, CREATED("u_ck2", "", "FR", T0 + 1)) == 0 &&
                                          feed(&f, CREATED("u_ck2", "", "FR", T0 + DAY)) == 1);
    CHECK("count_known: 1 ms past is out", feed(&f, CREATED("u_ck2", "", "FR", T0 + DAY + 2)) == 0);
    teardown(&f);
}

static void test_since_last_active(void)
{
    fixture f;
    CHECK("since_last: setup", setup(&f, "rule quick { severity low on session.created "
                                         "when since_last(session.created) < 1m }\n"
                                         "rule flood { severity low on session.created when active_sessions() > 2 }"));
    CHECK("since_last: nothing before is not zero", feed(&f, CREATED("u_sl", "", "", T0)) == 0);
    CHECK("since_last: 59 s later", feed(&f, CREATED("u_sl", "", "", T0 + 59000)) == 1);
    CHECK("since_last: exactly 1 m later", feed(&f, CREATED("u_sl", "", "", T0 + 59000 + MIN)) == 1 &&
                                               strcmp(f.out.alerts[f.out.n - 1].rule, "flood") == 0);

    ev_spec a = {EVENT_SESSION_CREATED, "u_act", "", "", NULL, "sess_a", T0, 0};
    feed(&f, a);
    ev_spec end = {EVENT_SESSION_ENDED, "u_act", "", "", NULL, "sess_a", T0 + 10 * MIN, 0};
    feed(&f, end);
    ev_spec b = {EVENT_SESSION_CREATED, "u_act", "", "", NULL, "sess_b", T0 + 20 * MIN, 0};
    feed(&f, b);
    ev_spec c = {EVENT_SESSION_CREATED, "u_act", "", "", NULL, "sess_c", T0 + 30 * MIN, 0};
    CHECK("active: an ended session does not count", feed(&f, c) == 0);
    ev_spec d = {EVENT_SESSION_CREATED, "u_act", "", "", NULL, "sess_d", T0 + 40 * MIN, 0};
    CHECK("active: three open sessions", feed(&f, d) == 1);
    /* expired sessions do not count */
    ev_spec x = {EVENT_SESSION_CREATED, "u_exp", "", "", NULL, "sess_x", T0, T0 + MIN};
    feed(&f, x);
    x.session = "sess_y", x.at = T0 + 2 * MIN, x.expire_at = T0 + 3 * MIN;
    feed(&f, x);
    x.session = "sess_z", x.at = T0 + 4 * MIN, x.expire_at = 0;
    CHECK("active: expired sessions do not count", feed(&f, x) == 0);
    teardown(&f);

    CHECK("active: setup", setup(&f, "rule flood { severity low on session.created when active_sessions() > 2 }"));
    /* an end at the same millisecond as its creation: records there sort by
     * delivery id, and here the end's (msg_N) sorts before the creation's
     * (msg_N+1), so newest first the creation comes first */
    ev_spec e1 = {EVENT_SESSION_ENDED, "u_same", "", "", NULL, "sess_s1", T0 + 5, 0};
    feed(&f, e1);
    ev_spec c1 = {EVENT_SESSION_CREATED, "u_same", "", "", NULL, "sess_s1", T0 + 5, 0};
    feed(&f, c1);
    ev_spec c2 = {EVENT_SESSION_CREATED, "u_same", "", "", NULL, "sess_s2", T0 + 6, 0};
    feed(&f, c2);
    ev_spec c3 = {EVENT_SESSION_CREATED, "u_same", "", "", NULL, "sess_s3", T0 + 7, 0};
    CHECK("active: ended at the same millisecond it started", feed(&f, c3) == 0);
    ev_spec c4 = {EVENT_SESSION_CREATED, "u_same", "", "", NULL, "sess_s4", T0 + 8, 0};
    CHECK("active: then three open sessions are > 2", feed(&f, c4) == 1);
    teardown(&f);
}

static void test_travel(void)
{
    fixture f;
    CHECK("travel: setup", setup(&f, "rule it { severity high on session.created "
                                     "when travel_km() > 500 and travel_kmh() > 900 }\n"
                                     "rule near { severity low on session.created when travel_km() < 1 }"));
    ev_spec s = {EVENT_SESSION_CREATED, "u_tr", "", "FR", "Paris", NULL, T0, 0};
    CHECK("travel: no previous location, no alert", feed(&f, s) == 0);
    s.country = "US", s.city = "New York", s.at = T0 + HOUR;
    CHECK("travel: Paris to New York in an hour", feed(&f, s) == 1);
    const store_evidence *km = f.out.n ? evidence(&f.out.alerts[0], "travel_km()") : NULL;
    CHECK("travel: distance in the evidence", km != NULL && fabs(km->num - 5835.5) < 20);
    CHECK("travel: previous location in the evidence",
          f.out.n && evidence(&f.out.alerts[0], "previous_location") != NULL &&
              strstr(evidence(&f.out.alerts[0], "previous_location")->str, "FR/Paris") != NULL);
    s.country = "FR", s.city = "Paris", s.at = T0 + 20 * HOUR;
    CHECK("travel: the same trip in 19 h is possible", feed(&f, s) == 0);
    /* a missing location makes the comparison false, not zero: `< 1` must not fire */
    s.country = "", s.city = "", s.at = T0 + 21 * HOUR;
    CHECK("travel: unlocated current event", feed(&f, s) == 0);
    s.country = "ZZ", s.at = T0 + 22 * HOUR;
    CHECK("travel: unknown country", feed(&f, s) == 0);
    s.country = "FR", s.city = "Paris", s.at = T0 + 23 * HOUR;
    CHECK("travel: same place is 0 km", feed(&f, s) == 1);
    teardown(&f);
}

static void test_by_ip(void)
{
    fixture f;
    CHECK("by ip: setup", setup(&f, "rule spray { severity high on session.created by ip "
                                    "when distinct(user, 10m) >= 3 suppress 30m }"));
    feed(&f, CREATED("u_a", "203.0.113.9", "", T0));
    feed(&f, CREATED("u_b", "203.0.113.9", "", T0 + MIN));
    feed(&f, CREATED("u_b", "203.0.113.9", "", T0 + 2 * MIN));
    CHECK("by ip: two users", f.out.n == 0);
    CHECK("by ip: third user", feed(&f, CREATED("u_c", "203.0.113.9", "", T0 + 3 * MIN)) == 1);
    CHECK("by ip: keyed by the IP", f.out.n == 1 && strcmp(f.out.alerts[0].key, "ip:203.0.113.9") == 0 &&
                                        strcmp(f.out.alerts[0].user_id, "u_c") == 0);
    CHECK("by ip: another IP is another key", feed(&f, CREATED("u_d", "203.0.113.10", "", T0 + 4 * MIN)) == 0);
    CHECK("by ip: no IP, no evaluation", feed(&f, CREATED("u_e", "", "", T0 + 5 * MIN)) == 0);
    engine_rule_stats st;
    engine_rule_stats_at(f.eng, 0, &st);
    CHECK("by ip: evaluations exclude events without a key", st.evaluations == 5);
    teardown(&f);
}

static void test_out_of_order(void)
{
    fixture f;
    CHECK("order: setup", setup(&f, "rule two { severity low on session.created "
                                    "when count(session.created, 10m) >= 2 }\n"
                                    "rule three { severity low on session.created "
                                    "when count(session.created, 10m) >= 3 }"));
    /* delivered T0, T0+2m, then T0+1m: the late one is judged at its own time,
     * with T0 in its window and T0+2m (later) not */
    feed(&f, CREATED("u_ooo", "", "", T0));
    CHECK("order: second by arrival", feed(&f, CREATED("u_ooo", "", "", T0 + 2 * MIN)) == 1);
    CHECK("order: the late event sees only the earlier one", feed(&f, CREATED("u_ooo", "", "", T0 + MIN)) == 1);
    CHECK("order: both alerts are rule two", f.out.n == 2 && strcmp(f.out.alerts[0].rule, "two") == 0 &&
                                                 strcmp(f.out.alerts[1].rule, "two") == 0);
    CHECK("order: the alert carries the event time", f.out.n == 2 && f.out.alerts[1].at_ms == T0 + MIN);
    teardown(&f);
}

static int count_cb(const store_alert *a, void *ctx)
{
    sink *s = ctx;
    if (s->n < 64)
        s->alerts[s->n++] = *a;
    return 0;
}

static void test_suppression(void)
{
    fixture f;
    CHECK("suppress: setup", setup(&f, "rule any { severity info on session.created "
                                       "when count(session.created, 1h) >= 1 suppress 10m tags \"t1\", \"t2\" }"));
    feed(&f, CREATED("u_sup", "", "", T0));
    CHECK("suppress: within the window", feed(&f, CREATED("u_sup", "", "", T0 + 5 * MIN)) == 0);
    CHECK("suppress: just inside", feed(&f, CREATED("u_sup", "", "", T0 + 10 * MIN - 1)) == 0);
    CHECK("suppress: at the window's end a new alert", feed(&f, CREATED("u_sup", "", "", T0 + 10 * MIN)) == 1);
    CHECK("suppress: other key not suppressed", feed(&f, CREATED("u_other", "", "", T0 + MIN)) == 1);
    sink stored = {0};
    char err[UTIL_ERRLEN];
    CHECK("suppress: list", store_list_alerts(f.st, 0, count_cb, &stored, err, sizeof err) == 0);
    CHECK("suppress: three alerts stored", stored.n == 3);
    CHECK("suppress: the first counts two folded matches",
          stored.n == 3 && strcmp(stored.alerts[0].key, "user:u_sup") == 0 && stored.alerts[0].suppressed == 2 &&
              stored.alerts[0].last_suppressed_at_ms == T0 + 10 * MIN - 1);
    CHECK("suppress: tags carried", stored.n >= 1 && stored.alerts[0].n_tags == 2 &&
                                        strcmp(stored.alerts[0].tags[1], "t2") == 0);
    engine_rule_stats st;
    engine_rule_stats_at(f.eng, 0, &st);
    CHECK("suppress: counted", st.matches == 5 && st.alerts == 3 && st.suppressed == 2);
    CHECK("suppress: since filter", (stored.n = 0, store_list_alerts(f.st, T0 + 2 * MIN, count_cb, &stored, err,
                                                                     sizeof err) == 0 && stored.n == 1));
    teardown(&f);
}

static void test_user_fields(void)
{
    fixture f;
    CHECK("user: setup", setup(&f, "list office { \"10.1.0.0/16\" }\n"
                                   "rule deleted { severity high on session.created, session.pending "
                                   "when user.deleted }\n"
                                   "rule young { severity low on session.created when user.age < 1h }\n"
                                   "rule outside { severity low on session.created when not ip in office }"));
    ev_spec created = {EVENT_USER_CREATED, "u_new", NULL, NULL, NULL, NULL, T0, T0 - 10 * MIN};
    feed(&f, created);
    CHECK("user: age under an hour", feed(&f, CREATED("u_new", "10.1.2.3", "", T0)) == 1);
    CHECK("user: unknown user has no age", feed(&f, CREATED("u_unknown", "10.1.2.3", "", T0)) == 0);
    ev_spec del = {EVENT_USER_DELETED, "u_new", NULL, NULL, NULL, NULL, T0 + HOUR, 0};
    feed(&f, del);
    CHECK("user: session after delete", feed(&f, CREATED("u_new", "10.1.2.3", "", T0 + 2 * HOUR)) == 1);
    CHECK("user: the rule that fired", f.out.n == 2 && strcmp(f.out.alerts[1].rule, "deleted") == 0);
    CHECK("user: CIDR list, outside", feed(&f, CREATED("u_x", "192.0.2.1", "", T0)) == 1);
    CHECK("user: CIDR list, inside", feed(&f, CREATED("u_x", "10.1.200.1", "", T0 + 1)) == 0);
    teardown(&f);
}

static void test_alert_record(void)
{
    fixture f;
    CHECK("record: setup", setup(&f, "rule r1 { description \"Two quick\" severity critical on session.created "
                                     "when count(session.created, 10m) >= 2 }"));
    feed(&f, CREATED("u_rec", "198.51.100.7", "FR", T0));
    feed(&f, CREATED("u_rec", "198.51.100.7", "FR", T0 + MIN));
    const store_alert *a = f.out.n == 1 ? &f.out.alerts[0] : NULL;
    CHECK("record: raised", a != NULL);
    if (a == NULL) {
        teardown(&f);
        return;
    }
    CHECK("record: id shape", strncmp(a->id, "alr_", 4) == 0 && strlen(a->id) == 28);
    CHECK("record: severity", strcmp(a->severity, "critical") == 0);
    CHECK("record: event id is the delivery", strcmp(a->event_id, "msg_0002") == 0);
    CHECK("record: ip and session", strcmp(a->ip, "198.51.100.7") == 0 && strcmp(a->session_id, "sess_0002") == 0);
    CHECK("record: summary is a sentence", strncmp(a->summary, "Two quick: user u_rec", 21) == 0 &&
                                               a->summary[strlen(a->summary) - 1] == '.');
    /* the id is a function of (rule, key, delivery): the same event cannot raise two ids */
    fixture g;
    CHECK("record: second store", setup(&g, "rule r1 { severity critical on session.created "
                                            "when count(session.created, 10m) >= 2 }"));
    feed(&g, CREATED("u_rec", "198.51.100.7", "FR", T0));
    feed(&g, CREATED("u_rec", "198.51.100.7", "FR", T0 + MIN));
    CHECK("record: stable id", g.out.n == 1 && strcmp(g.out.alerts[0].id, a->id) == 0);
    teardown(&g);
    teardown(&f);
}

/* The summary's numbers, golden: exact where the value is known, "at least N"
 * (never ">= N") where a read stopped early, durations to the millisecond and
 * travel to the tenth as the JSON evidence has them. */
static void summary_is(const char *name, const sink *out, size_t i, const char *want)
{
    const char *got = i < out->n ? out->alerts[i].summary : "(no alert)";
    CHECK(name, strcmp(got, want) == 0);
    if (strcmp(got, want) != 0)
        printf("  got:  %s\n  want: %s\n", got, want);
}

static void test_summary_text(void)
{
    fixture f;
    CHECK("summary: setup",
          setup(&f, "rule quick { description \"Quick\" severity low on session.created "
                    "when count(session.created, 1h) > 2 }\n"
                    "rule again { severity low on session.created when since_last(session.created) < 1m }\n"
                    "rule far { description \"Far\" severity high on session.created "
                    "when travel_km() > 500 and travel_kmh() > 900 }\n"
                    "rule spray { description \"Spray\" severity high on session.created by ip "
                    "when distinct(user, 1h) >= 2 }"));
    /* three sign-ins, all in the key's snapshot: the count is exact */
    feed(&f, (ev_spec){EVENT_SESSION_CREATED, "u_g", "198.51.100.7", "FR", "Paris", NULL, T0, 0});
    feed(&f, (ev_spec){EVENT_SESSION_CREATED, "u_g", "198.51.100.7", "FR", "Paris", NULL, T0 + 10 * MIN, 0});
    feed(&f, (ev_spec){EVENT_SESSION_CREATED, "u_g", "198.51.100.7", "FR", "Paris", NULL, T0 + 20 * MIN, 0});
    summary_is("summary: exact count", &f.out, 0,
               "Quick: user u_g from 198.51.100.7 (Paris, FR); count(session.created, 1h) = 3.");
    /* 59.999 s later: a fixed one-decimal format said 60.0, which `< 1m` contradicts */
    feed(&f, (ev_spec){EVENT_SESSION_CREATED, "u_g", "198.51.100.7", "FR", "Paris", NULL, T0 + 20 * MIN + 59999, 0});
    summary_is("summary: a duration to the millisecond", &f.out, 2,
               "Rule again matched: user u_g from 198.51.100.7 (Paris, FR); since_last(session.created) = 59.999.");
    /* Paris to New York in an hour: km to the tenth, and where the previous sign-in was */
    f.out.n = 0;
    feed(&f, (ev_spec){EVENT_SESSION_CREATED, "u_far", "", "FR", "Paris", NULL, T0, 0});
    feed(&f, (ev_spec){EVENT_SESSION_CREATED, "u_far", "", "US", "New York", NULL, T0 + HOUR, 0});
    summary_is("summary: travel", &f.out, 0,
               "Far: user u_far (New York, US); travel_km() = 5835.5, "
               "previous_location = FR/Paris at 2026-01-01T00:00:00.000Z, travel_kmh() = 5835.5.");
    /* by ip, and a read that stopped early: more than the snapshot holds, and
     * the values index stops at the cap */
    f.out.n = 0;
    feed(&f, CREATED("u_s1", "203.0.113.9", "", T0));
    feed(&f, CREATED("u_s2", "203.0.113.9", "", T0 + 1));
    summary_is("summary: by ip, a lower bound says at least", &f.out, 0,
               "Spray: IP 203.0.113.9 (user u_s2); distinct(user, 1h) = at least 2.");
    f.out.n = 0;
    for (int i = 0; i < 20; i++)
        feed(&f, CREATED("u_many", "10.0.0.1", "", T0 + 2 * HOUR + i * MIN));
    summary_is("summary: a capped count says at least", &f.out, f.out.n - 1,
               "Quick: user u_many from 10.0.0.1; count(session.created, 1h) = at least 3.");
    teardown(&f);

    /* the same count read twice, with caps 3 and 30: the second read knows it */
    CHECK("summary: setup twice", setup(&f, "rule band { description \"Band\" severity low on session.created "
                                            "when count(session.created, 1h) > 2 "
                                            "and count(session.created, 1h) < 30 }"));
    for (int i = 0; i < 20; i++)
        feed(&f, CREATED("u_band", "10.0.0.1", "", T0 + i * MIN));
    summary_is("summary: a value a second read knows is exact", &f.out, f.out.n - 1,
               "Band: user u_band from 10.0.0.1; count(session.created, 1h) = 20.");
    teardown(&f);
}

static void test_bounded(void)
{
    fixture f;
    CHECK("bound: setup", setup(&f, "rule cities { severity low on session.created "
                                    "when distinct(city, 1d) > 100 }"));
    /* a bot: more events in the window than one read may decode */
    char err[UTIL_ERRLEN];
    store_txn *t = NULL;
    bool ok = store_txn_begin(f.st, &t, err, sizeof err) == 0;
    for (int i = 0; ok && i < ENGINE_SCAN_MAX + 100; i++) {
        ev_spec s = {EVENT_SESSION_CREATED, "u_bot", "", "", "Lyon", NULL, T0 + i, 0};
        event_t ev = make_event(&f, &s);
        store_outcome o;
        ok = store_apply_event(t, &ev, &o, err, sizeof err) == 0;
    }
    ok = ok && store_txn_commit(t, err, sizeof err) == 0;
    CHECK("bound: bot stored", ok);
    ev_spec s = {EVENT_SESSION_CREATED, "u_bot", "", "", "Nice", NULL, T0 + HOUR, 0};
    CHECK("bound: evaluates", feed(&f, s) == 0);
    engine_rule_stats st;
    engine_rule_stats_at(f.eng, 0, &st);
    CHECK("bound: the cut read is counted", st.bounded == 1);
    teardown(&f);
}

static void test_settle(void)
{
    fixture f;
    CHECK("settle: setup", setup(&f, "rule gone { severity high on session.created when user.deleted }"));
    ev_spec del = {EVENT_USER_DELETED, "u_gone", NULL, NULL, NULL, NULL, T0, 0};
    feed(&f, del);
    /* an evaluation whose transaction aborts (the batch is retried) counts nothing */
    ev_spec s = CREATED("u_gone", "", "", T0 + MIN);
    event_t ev = make_event(&f, &s);
    char err[UTIL_ERRLEN];
    store_txn *t = NULL;
    store_outcome o;
    engine_hooks hooks = {.on_alert = on_alert, .ctx = &f.out};
    bool ok = store_txn_begin(f.st, &t, err, sizeof err) == 0 && store_apply_event(t, &ev, &o, err, sizeof err) == 0 &&
              engine_eval_event(f.eng, t, &ev, T0, &hooks, err, sizeof err) == 0;
    store_txn_abort(t);
    engine_settle(f.eng, false);
    engine_rule_stats st;
    engine_rule_stats_at(f.eng, 0, &st);
    CHECK("settle: aborted evaluation not counted", ok && st.evaluations == 0 && st.alerts == 0);
    CHECK("settle: committed one counted", feed(&f, s) == 1);
    engine_rule_stats_at(f.eng, 0, &st);
    CHECK("settle: counts", st.evaluations == 1 && st.matches == 1 && st.alerts == 1);
    const store_evidence *e = f.out.n ? evidence(&f.out.alerts[f.out.n - 1], "user.deleted") : NULL;
    CHECK("settle: a field is evidence too", e != NULL && e->kind == STORE_EVIDENCE_BOOL && e->b);
    teardown(&f);
}

static void test_prune(void)
{
    fixture f;
    CHECK("prune: setup", setup(&f, "rule nc { severity low on session.created "
                                    "when first_seen(country, 1000d) and count_known(country, 1000d) >= 1 }"));
    feed(&f, CREATED("u_pr", "", "FR", T0));
    feed(&f, CREATED("u_pr", "", "DE", T0 + HOUR));
    feed(&f, CREATED("u_pr", "", "IT", T0 + 2 * DAY));
    CHECK("prune: DE and IT are new", f.out.n == 2);
    store_prune_result r;
    char err[UTIL_ERRLEN];
    /* retention 1 d at T0 + 2 d: the FR and DE events and the alert at T0 + 1h go */
    CHECK("prune: runs", store_prune(f.st, T0 + 2 * DAY, DAY, 0, 1000, &r, err, sizeof err) == 0);
    CHECK("prune: history and alert pruned", r.history_pruned == 2 && r.alerts_pruned == 1);
    /* the values index went with the records: FR is new again, IT is the known one */
    CHECK("prune: index entries pruned too", feed(&f, CREATED("u_pr", "", "FR", T0 + 2 * DAY + 1)) == 1);
    teardown(&f);
}

#define UA_CHROME(v) "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/" v \
                     ".0.0.0 Safari/537.36"
#define UA_FIREFOX "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
#define UA_CHROME_MAC "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) " \
                      "Chrome/121.0.0.0 Safari/537.36"

/* first_seen(device, ...): the device is (browser, OS, device family), so a
 * browser update is not a new device, another browser or OS is; a user with
 * no device on record is learning, not alerting. */
static void test_first_seen_device(void)
{
    fixture f;
    CHECK("device: setup", setup(&f, "rule new_device { severity low on session.created "
                                     "when first_seen(device, 90d) }\n"
                                     "rule two { severity info on session.created "
                                     "when distinct(device, 90d) == 2 }"));
    CHECK("device: a first device is not new (nothing on record)", feed_ua(&f, "u_dev", UA_CHROME("119"), T0) == 0);
    CHECK("device: a browser update is not a new device", feed_ua(&f, "u_dev", UA_CHROME("120"), T0 + DAY) == 0);
    int n = feed_ua(&f, "u_dev", UA_FIREFOX, T0 + 2 * DAY);
    CHECK("device: another browser family is new, and two devices", n == 2);
    CHECK("device: the alert's rule", f.out.n >= 1 && strcmp(f.out.alerts[0].rule, "new_device") == 0);
    const store_evidence *e = f.out.n >= 1 ? evidence(&f.out.alerts[0], "device_key") : NULL;
    CHECK("device: the evidence names the device",
          e != NULL && e->kind == STORE_EVIDENCE_STRING && strcmp(e->str, "Firefox / Windows / Other") == 0);
    CHECK("device: another OS is new", feed_ua(&f, "u_dev", UA_CHROME_MAC, T0 + 3 * DAY) == 1);
    CHECK("device: a known device again", feed_ua(&f, "u_dev", UA_FIREFOX, T0 + 4 * DAY) == 0);
    CHECK("device: no user agent, no device", feed_ua(&f, "u_dev", "", T0 + 5 * DAY) == 0);
    /* Chrome/Windows last seen at T0 + 1 d: out of the 90 d window at T0 + 92 d */
    CHECK("device: a device not seen within the window is new",
          feed_ua(&f, "u_dev", UA_CHROME("130"), T0 + 92 * DAY) == 1);
    CHECK("device: another user's devices are not this user's", feed_ua(&f, "u_dev2", UA_FIREFOX, T0) == 0 &&
                                                                   feed_ua(&f, "u_dev2", UA_CHROME("120"), T0 + 1) == 2);
    teardown(&f);
}

/* ua.* fields read the user agent; Clerk's browser, device and is_mobile are
 * left as Clerk sent them. */
static void test_ua_fields(void)
{
    fixture f;
    CHECK("ua: setup", setup(&f, "rule r { severity info on session.created "
                                 "when ua.browser == \"Chrome\" and ua.browser_major >= 120 and ua.os == \"Windows\" "
                                 "and ua.os_major == 10 and ua.device == \"Other\" }\n"
                                 "rule clerk { severity info on session.created "
                                 "when browser == \"Safari\" and device == \"desktop\" and ua.browser == \"Firefox\" }\n"
                                 "rule nomajor { severity info on session.created when ua.browser_major < 1000 }"));
    CHECK("ua: Chrome 119 is under 120", feed_ua(&f, "u_ua", UA_CHROME("119"), T0) == 1); /* nomajor only */
    CHECK("ua: Chrome 120 on Windows 10", feed_ua(&f, "u_ua", UA_CHROME("120"), T0 + 1) == 2);
    ev_spec s = {EVENT_SESSION_CREATED, "u_ua", "10.0.0.1", "FR", NULL, NULL, T0 + 2, 0};
    event_t ev = make_event(&f, &s);
    snprintf(ev.user_agent, sizeof ev.user_agent, "%s", UA_FIREFOX);
    snprintf(ev.session.browser, sizeof ev.session.browser, "Safari");
    snprintf(ev.session.device, sizeof ev.session.device, "desktop");
    CHECK("ua: Clerk's fields stay Clerk's", feed_event(&f, ev) == 2);
    CHECK("ua: no version, no major (comparison false)", feed_ua(&f, "u_ua", "zz-agent", T0 + 3) == 0 &&
                                                              feed_ua(&f, "u_ua", "", T0 + 4) == 0);
    const store_alert *a = f.out.n >= 3 ? &f.out.alerts[2] : NULL;
    const store_evidence *e = a != NULL ? evidence(a, "ua.browser_major") : NULL;
    CHECK("ua: the major is evidence, a number", e != NULL && e->kind == STORE_EVIDENCE_NUMBER && e->num == 120);
    teardown(&f);
}

/* A pruned sign-in takes its device index entries with it. */
static void test_prune_device(void)
{
    fixture f;
    CHECK("prune device: setup", setup(&f, "rule nd { severity low on session.created "
                                           "when first_seen(device, 1000d) }"));
    feed_ua(&f, "u_prd", UA_CHROME("120"), T0);
    CHECK("prune device: Firefox is new", feed_ua(&f, "u_prd", UA_FIREFOX, T0 + 2 * DAY) == 1);
    store_prune_result r;
    char err[UTIL_ERRLEN];
    CHECK("prune device: runs", store_prune(f.st, T0 + 2 * DAY, DAY, 0, 1000, &r, err, sizeof err) == 0 &&
                                    r.history_pruned == 2); /* under the user and the IP */
    /* Chrome's only sign-in is gone: Chrome is new again (Firefox is on record) */
    CHECK("prune device: index entries pruned too", feed_ua(&f, "u_prd", UA_CHROME("121"), T0 + 2 * DAY + 1) == 1);
    teardown(&f);
}

/* ---- risk() ---- */

/* A sign-in of user from ip/country with user agent ua; its risk() from the
 * alert of `rule r { ... when risk() >= 0 }`, NAN when missing (no alert). */
static double risk_of(fixture *f, const char *user, const char *ip, const char *country, const char *ua, int64_t at,
                      const store_alert **alert)
{
    ev_spec s = {EVENT_SESSION_CREATED, user, ip, country, NULL, NULL, at, 0};
    event_t ev = make_event(f, &s);
    snprintf(ev.user_agent, sizeof ev.user_agent, "%s", ua);
    if (feed_event(f, ev) != 1)
        return NAN;
    const store_alert *a = &f->out.alerts[f->out.n - 1];
    if (alert != NULL)
        *alert = a;
    const store_evidence *e = evidence(a, "risk()");
    return e != NULL && e->kind == STORE_EVIDENCE_NUMBER ? e->num : NAN;
}

static void test_risk(void)
{
    fixture f;
    CHECK("risk: setup", setup(&f, "rule r { severity info on session.created when risk() >= 0 }"));
    /* 20 other users at home in DE with Firefox: what is common globally */
    char user[32], ip[32];
    for (int u = 0; u < 20; u++)
        for (int k = 0; k < 6; k++) {
            snprintf(user, sizeof user, "u_bg%d", u);
            snprintf(ip, sizeof ip, "198.51.100.%d", u + 1);
            risk_of(&f, user, ip, "DE", UA_FIREFOX, T0 + u * HOUR + k * DAY, NULL);
        }
    /* the user at home: FR, one IP, Chrome 120 */
    bool missing = true;
    for (int k = 0; k < 5; k++)
        missing &= isnan(risk_of(&f, "u_home", "203.0.113.7", "FR", UA_CHROME("120.0.0.0"), T0 + k * DAY, NULL));
    CHECK("risk: missing with fewer than 5 earlier sign-ins", missing);
    const store_alert *a = NULL;
    double home = risk_of(&f, "u_home", "203.0.113.7", "FR", UA_CHROME("120.0.0.0"), T0 + 5 * DAY, &a);
    CHECK("risk: a value from the 6th sign-in (5 earlier)", !isnan(home));
    CHECK("risk: low at home", home < 0.1);
    const store_evidence *ip_why = a != NULL ? evidence(a, "risk.ip") : NULL;
    const store_evidence *ua_why = a != NULL ? evidence(a, "risk.user_agent") : NULL;
    CHECK("risk: the evidence has each feature's value, p, p|u and factor",
          ip_why != NULL && ua_why != NULL && strstr(ip_why->str, "203.0.113.7 (FR): p ") != NULL &&
              strstr(ip_why->str, "p|u ") != NULL && strstr(ip_why->str, "factor ") != NULL &&
              strncmp(ua_why->str, "Chrome 120 (Windows 10)", 23) == 0);
    double update = risk_of(&f, "u_home", "203.0.113.7", "FR", UA_CHROME("121.0.0.0"), T0 + 6 * DAY, NULL);
    double attack = risk_of(&f, "u_home", "198.51.100.200", "DE", UA_FIREFOX, T0 + 7 * DAY, NULL);
    printf("risk: home %.4g, browser update %.4g, new country + IP + browser %.4g\n", home, update, attack);
    CHECK("risk: a browser update is in between", update > home && update < attack);
    CHECK("risk: high from a new country, IP and browser", attack > 1);
    CHECK("risk: another user's history does not count", isnan(risk_of(&f, "u_new", "203.0.113.7", "FR",
                                                                        UA_CHROME("120.0.0.0"), T0 + 8 * DAY, NULL)));
    teardown(&f);
}

/* --risk-history: sign-ins older than it are not the user's history. */
static void test_risk_history(void)
{
    fixture f;
    CHECK("risk history: setup", setup(&f, "rule r { severity info on session.created when risk() >= 0 }"));
    engine_set_risk(f.eng, 30 * DAY, 5);
    for (int k = 0; k < 5; k++)
        risk_of(&f, "u_old", "203.0.113.8", "FR", UA_FIREFOX, T0 + k * HOUR, NULL);
    CHECK("risk history: a value within the history",
          !isnan(risk_of(&f, "u_old", "203.0.113.8", "FR", UA_FIREFOX, T0 + 29 * DAY, NULL)));
    CHECK("risk history: missing once the earlier sign-ins are older than it",
          isnan(risk_of(&f, "u_old", "203.0.113.8", "FR", UA_FIREFOX, T0 + 31 * DAY, NULL)));
    /* and those were deleted by that read: only the two later ones are left */
    char err[UTIL_ERRLEN];
    store_txn *t = NULL;
    store_risk_user u = {0};
    bool ok = store_txn_begin(f.st, &t, err, sizeof err) == 0 &&
              store_txn_risk_user(t, "u_old", 'i', "203.0.113.8", 0, T0 + 40 * DAY, false, &u, err, sizeof err) == 0;
    store_txn_abort(t);
    CHECK("risk history: entries older than it are forgotten", ok && u.n == 2 && u.count == 2);
    teardown(&f);
}

/* The global table keeps STORE_RISK_TOPK values per level, the rest counted. */
static void test_risk_table_bound(void)
{
    fixture f;
    CHECK("risk table: setup", setup(&f, "rule r { severity info on session.created when risk() >= 0 }"));
    char err[UTIL_ERRLEN], v[32], did[32];
    store_txn *t = NULL;
    bool ok = store_txn_begin(f.st, &t, err, sizeof err) == 0;
    for (int i = 0; i < 10000 && ok; i++) {
        snprintf(v, sizeof v, "198.18.%d.%d", i / 256, i % 256);
        snprintf(did, sizeof did, "msg_b%d", i);
        ok = store_txn_risk_record(t, "u_bot", 'i', v, T0 + i, did, err, sizeof err) == 0;
    }
    uint64_t count = 0;
    bool in_table = true;
    store_risk_table tab = {0};
    ok = ok && store_txn_risk_global(t, 'i', "198.18.39.15", &count, &in_table, &tab, err, sizeof err) == 0;
    CHECK("risk table: 10,000 distinct values recorded", ok);
    CHECK("risk table: at most 4096 kept, the rest counted",
          tab.total == 10000 && tab.distinct == STORE_RISK_TOPK && tab.rest == 10000 - STORE_RISK_TOPK);
    CHECK("risk table: a value past the bound is not in the table", !in_table && count == 0);
    ok = store_txn_risk_global(t, 'i', "198.18.0.1", &count, &in_table, &tab, err, sizeof err) == 0;
    CHECK("risk table: an early value is", ok && in_table && count == 1);
    store_risk_user u;
    ok = store_txn_risk_user(t, "u_bot", 'i', "198.18.0.1", 0, T0 + 20000, false, &u, err, sizeof err) == 0;
    CHECK("risk table: a user read is bounded", ok && u.bounded && u.n == STORE_RISK_USER_VISIT_MAX && u.count == 1);
    /* past the bound in value order, a value's own entries are still counted */
    ok = store_txn_risk_user(t, "u_bot", 'i', "198.18.9.99", 0, T0 + 20000, false, &u, err, sizeof err) == 0;
    CHECK("risk table: a bounded read still counts the value asked for", ok && u.bounded && u.count == 1);
    store_txn_abort(t);
    teardown(&f);
}

/* Clerk's lockout: user.locked and not user.was_locked fires once per lockout. */
static int feed_lock(fixture *f, const char *user, bool locked, int64_t at)
{
    ev_spec s = {EVENT_USER_UPDATED, user, NULL, NULL, NULL, NULL, at, T0 - DAY};
    event_t ev = make_event(f, &s);
    ev.user.locked = locked;
    ev.user.lockout_expires_in_s = locked ? 1800 : 0;
    return feed_event(f, ev);
}

static void test_lockout(void)
{
    fixture f;
    CHECK("lockout: setup", setup(&f, "rule locked { severity medium on user.updated "
                                      "when user.locked and not user.was_locked }\n"
                                      "rule banned { severity high on user.updated "
                                      "when user.banned and not user.was_banned }"));
    ev_spec created = {EVENT_USER_CREATED, "u_lk", NULL, NULL, NULL, NULL, T0, T0};
    feed(&f, created);
    CHECK("lockout: an update while unlocked", feed_lock(&f, "u_lk", false, T0 + 1) == 0);
    CHECK("lockout: locked fires", feed_lock(&f, "u_lk", true, T0 + 2) == 1);
    CHECK("lockout: still locked does not", feed_lock(&f, "u_lk", true, T0 + 3) == 0);
    CHECK("lockout: a stale update (older) does not", feed_lock(&f, "u_lk", true, T0 + 2) == 0);
    CHECK("lockout: a sign-in while locked does not matter", feed(&f, CREATED("u_lk", "10.0.0.1", "FR", T0 + 4)) == 0);
    CHECK("lockout: unlocked", feed_lock(&f, "u_lk", false, T0 + 5) == 0);
    CHECK("lockout: locked again fires again", feed_lock(&f, "u_lk", true, T0 + 6) == 1);
    ev_spec s = {EVENT_USER_UPDATED, "u_lk", NULL, NULL, NULL, NULL, T0 + 7, T0 - DAY};
    event_t ev = make_event(&f, &s);
    ev.user.locked = true;
    ev.user.banned = true;
    ev.user.lockout_expires_in_s = 900;
    CHECK("lockout: banned fires once", feed_event(&f, ev) == 1 && strcmp(f.out.alerts[f.out.n - 1].rule, "banned") == 0);
    event_user u;
    bool found = false;
    char err[UTIL_ERRLEN];
    CHECK("lockout: the record keeps lockout_expires_in_seconds and the state before",
          store_get_user(f.st, "u_lk", &u, &found, err, sizeof err) == 0 && found && u.locked && u.was_locked && u.lockout_expires_in_s == 900 &&
              u.banned && !u.was_banned);
    teardown(&f);
}

int main(void)
{
    snprintf(tmproot, sizeof tmproot, "/tmp/veille-engine-XXXXXX");
    if (mkdtemp(tmproot) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_count_edges();
    test_count_cap();
    test_distinct();
    test_first_seen();
    test_count_known();
    test_since_last_active();
    test_travel();
    test_by_ip();
    test_out_of_order();
    test_suppression();
    test_user_fields();
    test_alert_record();
    test_summary_text();
    test_bounded();
    test_settle();
    test_prune();
    test_first_seen_device();
    test_ua_fields();
    test_prune_device();
    test_risk();
    test_risk_history();
    test_risk_table_bound();
    test_lockout();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmproot);
    if (system(cmd) != 0)
        printf("could not remove %s\n", tmproot);
    return check_summary();
}
