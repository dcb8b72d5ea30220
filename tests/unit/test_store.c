/* test_store.c: the LMDB store: user merging, history order and bounds,
 * idempotency, read-only access, stats, pruning, map full and corrupt records. */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "store/codec.h"
#include "store/store.h"
#include "util/util.h"

/* The largest single malloc request since the last reset, to check the codec's
 * allocation bound: the decoders refuse a lying record either way, the question
 * is whether they first ask for 100 GiB. glibc's allocator does the work; ASan
 * builds keep ASan's, which aborts on such a request by itself. */
#if defined(__SANITIZE_ADDRESS__)
#define TRACK_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TRACK_MALLOC 0
#endif
#endif
#ifndef TRACK_MALLOC
#define TRACK_MALLOC 1
extern void *__libc_malloc(size_t n);
static size_t largest_malloc;
void *malloc(size_t n)
{
    if (n > __atomic_load_n(&largest_malloc, __ATOMIC_RELAXED))
        __atomic_store_n(&largest_malloc, n, __ATOMIC_RELAXED);
    return __libc_malloc(n);
}
#else
static size_t largest_malloc;
#endif

static char tmproot[64];
static int dir_seq;

/* A fresh store directory path (not created: store_open must do that). */
static void new_dir(char *buf, size_t len)
{
    snprintf(buf, len, "%s/s%d/nested", tmproot, ++dir_seq);
}

static store *open_rw(const char *dir, size_t map_size)
{
    char err[UTIL_ERRLEN];
    store *s = NULL;
    if (store_open(&s, dir, 0, map_size, err, sizeof err) < 0) {
        printf("store_open %s: %s\n", dir, err);
        return NULL;
    }
    return s;
}

static event_t user_event(event_type type, const char *delivery, const char *id, int64_t updated_at)
{
    event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    snprintf(ev.delivery_id, sizeof ev.delivery_id, "%s", delivery);
    snprintf(ev.user.id, sizeof ev.user.id, "%s", id);
    ev.user.updated_at = updated_at;
    ev.user.created_at = 1000;
    ev.timestamp_ms = updated_at;
    ev.at_ms = updated_at;
    return ev;
}

static event_t session_event(event_type type, const char *delivery, const char *user, const char *ip, int64_t at)
{
    event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    snprintf(ev.delivery_id, sizeof ev.delivery_id, "%s", delivery);
    snprintf(ev.session.user_id, sizeof ev.session.user_id, "%s", user);
    snprintf(ev.session.session_id, sizeof ev.session.session_id, "sess_%s", delivery);
    snprintf(ev.session.client_id, sizeof ev.session.client_id, "client_1");
    snprintf(ev.session.ip, sizeof ev.session.ip, "%s", ip);
    snprintf(ev.session.country, sizeof ev.session.country, "FR");
    snprintf(ev.session.city, sizeof ev.session.city, "Paris");
    snprintf(ev.session.browser, sizeof ev.session.browser, "Firefox");
    snprintf(ev.session.device, sizeof ev.session.device, "desktop");
    snprintf(ev.user_agent, sizeof ev.user_agent, "Mozilla/5.0 test");
    ev.session.created_at = at;
    ev.timestamp_ms = at;
    ev.at_ms = at;
    return ev;
}

/* Apply one event and mark its delivery in its own transaction. */
static int apply1(store *s, const event_t *ev, store_outcome *outcome)
{
    char err[UTIL_ERRLEN];
    store_txn *t = NULL;
    store_outcome o = STORE_APPLIED;
    int rc = store_txn_begin(s, &t, err, sizeof err);
    if (rc < 0)
        goto fail;
    rc = store_apply_event(t, ev, &o, err, sizeof err);
    if (rc == 0)
        rc = store_delivery_mark(t, ev->delivery_id, ev->type, ev->at_ms, err, sizeof err);
    if (rc < 0) {
        store_txn_abort(t);
        goto fail;
    }
    rc = store_txn_commit(t, err, sizeof err);
    if (rc < 0)
        goto fail;
    if (outcome != NULL)
        *outcome = o;
    return 0;
fail:
    printf("apply %s: %s\n", ev->delivery_id, err);
    return rc;
}

static bool get_user(store *s, const char *id, event_user *u)
{
    char err[UTIL_ERRLEN];
    bool found = false;
    if (store_get_user(s, id, u, &found, err, sizeof err) < 0) {
        printf("get_user %s: %s\n", id, err);
        return false;
    }
    return found;
}

typedef struct {
    int n;
    int64_t at[16];
    store_history_entry first;
    int stop_after; /* 0 = never */
} collect;

static int collect_cb(const store_history_entry *e, void *ctx)
{
    collect *c = ctx;
    if (c->n == 0)
        c->first = *e;
    if (c->n < 16)
        c->at[c->n] = e->at_ms;
    c->n++;
    return c->stop_after != 0 && c->n >= c->stop_after;
}

static collect scan(store *s, char kind, const char *key, int64_t since, int64_t until, size_t limit)
{
    char err[UTIL_ERRLEN];
    collect c;
    memset(&c, 0, sizeof c);
    if (store_history_scan(s, kind, key, since, until, limit, collect_cb, &c, err, sizeof err) < 0) {
        printf("scan: %s\n", err);
        c.n = -1;
    }
    return c;
}

static void test_user_round_trip(store *s)
{
    event_t ev = user_event(EVENT_USER_CREATED, "msg_rt", "user_rt", 2000);
    event_user *u = &ev.user;
    snprintf(u->email, sizeof u->email, "ada@example.org");
    snprintf(u->first_name, sizeof u->first_name, "Ada");
    snprintf(u->last_name, sizeof u->last_name, "Lovelace \xc3\xa9");
    snprintf(u->username, sizeof u->username, "ada");
    snprintf(u->external_id, sizeof u->external_id, "567772");
    u->created_at = 1654012591514;
    u->updated_at = 1654012591835;
    u->last_sign_in_at = 1654012591514;
    u->banned = true;
    u->locked = true;
    store_outcome o = -1;
    CHECK("round trip: apply", apply1(s, &ev, &o) == 0 && o == STORE_APPLIED);
    event_user got;
    CHECK("round trip: found", get_user(s, "user_rt", &got));
    CHECK("round trip: every field", memcmp(&got, u, sizeof got) == 0 ||
                                         (strcmp(got.id, u->id) == 0 && strcmp(got.email, u->email) == 0 &&
                                          strcmp(got.first_name, u->first_name) == 0 &&
                                          strcmp(got.last_name, u->last_name) == 0 &&
                                          strcmp(got.username, u->username) == 0 &&
                                          strcmp(got.external_id, u->external_id) == 0 &&
                                          got.created_at == u->created_at && got.updated_at == u->updated_at &&
                                          got.last_sign_in_at == u->last_sign_in_at && got.banned && got.locked &&
                                          !got.deleted && got.deleted_at == 0 && !got.placeholder));
    bool found = true;
    char err[UTIL_ERRLEN];
    CHECK("unknown user: not found, no error",
          store_get_user(s, "user_nobody", &got, &found, err, sizeof err) == 0 && !found);
}

static void test_newest_wins(store *s)
{
    event_t ev = user_event(EVENT_USER_CREATED, "msg_nw1", "user_nw", 100);
    snprintf(ev.user.first_name, sizeof ev.user.first_name, "First");
    CHECK("newest wins: create", apply1(s, &ev, NULL) == 0);
    event_t old = user_event(EVENT_USER_UPDATED, "msg_nw2", "user_nw", 50);
    snprintf(old.user.first_name, sizeof old.user.first_name, "Older");
    store_outcome o = -1;
    CHECK("older update is stale", apply1(s, &old, &o) == 0 && o == STORE_STALE_UPDATE);
    event_user u;
    CHECK("older update ignored", get_user(s, "user_nw", &u) && strcmp(u.first_name, "First") == 0);
    event_t same = user_event(EVENT_USER_UPDATED, "msg_nw3", "user_nw", 100);
    snprintf(same.user.first_name, sizeof same.user.first_name, "Equal");
    CHECK("equal update applies", apply1(s, &same, &o) == 0 && o == STORE_APPLIED);
    CHECK("equal update stored", get_user(s, "user_nw", &u) && strcmp(u.first_name, "Equal") == 0);
    event_t newer = user_event(EVENT_USER_UPDATED, "msg_nw4", "user_nw", 101);
    snprintf(newer.user.first_name, sizeof newer.user.first_name, "Newer");
    CHECK("newer update applies", apply1(s, &newer, &o) == 0 && o == STORE_APPLIED);
    CHECK("newer update stored", get_user(s, "user_nw", &u) && strcmp(u.first_name, "Newer") == 0 &&
                                     u.updated_at == 101);
}

static bool first_entry(store *s, const char *user, store_history_entry *out);

static void test_tombstone(store *s)
{
    event_t ev = user_event(EVENT_USER_CREATED, "msg_t1", "user_del", 100);
    ev.user.created_at = 77;
    snprintf(ev.user.email, sizeof ev.user.email, "gone@example.org");
    snprintf(ev.user.first_name, sizeof ev.user.first_name, "Gone");
    snprintf(ev.user.last_name, sizeof ev.user.last_name, "Person");
    snprintf(ev.user.username, sizeof ev.user.username, "gone");
    snprintf(ev.user.external_id, sizeof ev.user.external_id, "ext1");
    CHECK("tombstone: create", apply1(s, &ev, NULL) == 0);
    event_t del = user_event(EVENT_USER_DELETED, "msg_t2", "user_del", 0);
    del.timestamp_ms = 5000;
    del.at_ms = 5000;
    store_outcome o = -1;
    CHECK("tombstone: delete applies", apply1(s, &del, &o) == 0 && o == STORE_APPLIED);
    event_user u;
    CHECK("tombstone: record kept", get_user(s, "user_del", &u));
    CHECK("tombstone: deleted with deleted_at", u.deleted && u.deleted_at == 5000);
    CHECK("tombstone: created_at kept", u.created_at == 77);
    CHECK("tombstone: personal fields erased", u.email[0] == '\0' && u.first_name[0] == '\0' &&
                                                   u.last_name[0] == '\0' && u.username[0] == '\0' &&
                                                   u.external_id[0] == '\0');
    event_t late = user_event(EVENT_USER_UPDATED, "msg_t3", "user_del", 90);
    snprintf(late.user.email, sizeof late.user.email, "back@example.org");
    CHECK("tombstone: older update after delete ignored", apply1(s, &late, &o) == 0 && o == STORE_AFTER_DELETE);
    event_t later = user_event(EVENT_USER_UPDATED, "msg_t4", "user_del", 9000);
    snprintf(later.user.email, sizeof later.user.email, "back@example.org");
    CHECK("tombstone: newer update after delete ignored", apply1(s, &later, &o) == 0 && o == STORE_AFTER_DELETE);
    CHECK("tombstone: not resurrected", get_user(s, "user_del", &u) && u.deleted && u.email[0] == '\0');

    /* deleted_at falls back to at_ms when the envelope had no timestamp */
    event_t del2 = user_event(EVENT_USER_DELETED, "msg_t5", "user_del2", 0);
    del2.timestamp_ms = 0;
    del2.at_ms = 4242;
    CHECK("tombstone: delete without timestamp", apply1(s, &del2, NULL) == 0);
    CHECK("tombstone: deleted_at from at_ms", get_user(s, "user_del2", &u) && u.deleted && u.deleted_at == 4242);

    /* out of order: the delete arrives before the create */
    event_t d = user_event(EVENT_USER_DELETED, "msg_o1", "user_ooo", 0);
    d.timestamp_ms = 3000;
    CHECK("out of order: delete of unknown user", apply1(s, &d, &o) == 0 && o == STORE_APPLIED);
    CHECK("out of order: tombstone written", get_user(s, "user_ooo", &u) && u.deleted);
    event_t c = user_event(EVENT_USER_CREATED, "msg_o2", "user_ooo", 1000);
    snprintf(c.user.email, sizeof c.user.email, "ooo@example.org");
    CHECK("out of order: create after delete ignored", apply1(s, &c, &o) == 0 && o == STORE_AFTER_DELETE);
    CHECK("out of order: stays deleted", get_user(s, "user_ooo", &u) && u.deleted && u.email[0] == '\0');

    /* a session for a deleted user is recorded, the user is not resurrected */
    event_t sess = session_event(EVENT_SESSION_CREATED, "msg_o3", "user_ooo", "10.0.0.9", 8000);
    CHECK("session after delete: applied", apply1(s, &sess, &o) == 0 && o == STORE_APPLIED);
    CHECK("session after delete: history kept", scan(s, STORE_KEY_USER, "user_ooo", 0, INT64_MAX, 0).n == 1);
    CHECK("session after delete: still deleted", get_user(s, "user_ooo", &u) && u.deleted && !u.placeholder);
    CHECK("session after delete: last sign-in recorded", u.last_sign_in_at == 8000);

    /* the tombstone erases personal fields, not activity times nor the instance */
    event_t act = session_event(EVENT_SESSION_CREATED, "msg_a1", "user_act", "10.0.0.8", 6000);
    snprintf(act.instance_id, sizeof act.instance_id, "ins_test");
    CHECK("activity: sign-in", apply1(s, &act, NULL) == 0);
    store_history_entry he;
    CHECK("activity: instance in history", scan(s, STORE_KEY_USER, "user_act", 0, INT64_MAX, 0).n == 1 &&
                                               first_entry(s, "user_act", &he) && strcmp(he.instance_id, "ins_test") == 0);
    event_t gone = user_event(EVENT_USER_DELETED, "msg_a2", "user_act", 0);
    gone.timestamp_ms = 7000;
    CHECK("activity: delete", apply1(s, &gone, NULL) == 0);
    CHECK("activity: tombstone keeps last sign-in and instance",
          get_user(s, "user_act", &u) && u.deleted && u.last_sign_in_at == 6000 && strcmp(u.instance_id, "ins_test") == 0);
}

static int take_first(const store_history_entry *e, void *ctx)
{
    *(store_history_entry *)ctx = *e;
    return 1;
}

static bool first_entry(store *s, const char *user, store_history_entry *out)
{
    char err[UTIL_ERRLEN];
    memset(out, 0, sizeof *out);
    return store_history_scan(s, STORE_KEY_USER, user, 0, INT64_MAX, 1, take_first, out, err, sizeof err) == 0 &&
           out->delivery_id[0] != '\0';
}

static void test_placeholder(store *s)
{
    event_t sess = session_event(EVENT_SESSION_CREATED, "msg_p1", "user_ph", "10.0.0.1", 7000);
    CHECK("placeholder: session for unknown user", apply1(s, &sess, NULL) == 0);
    event_user u;
    CHECK("placeholder: created", get_user(s, "user_ph", &u) && u.placeholder && !u.deleted);
    CHECK("placeholder: last sign-in from session", u.last_sign_in_at == 7000);
    event_t c = user_event(EVENT_USER_CREATED, "msg_p2", "user_ph", 500);
    snprintf(c.user.email, sizeof c.user.email, "ph@example.org");
    c.user.last_sign_in_at = 6000;
    store_outcome o = -1;
    CHECK("placeholder: user.created fills it", apply1(s, &c, &o) == 0 && o == STORE_APPLIED);
    CHECK("placeholder: filled", get_user(s, "user_ph", &u) && !u.placeholder &&
                                     strcmp(u.email, "ph@example.org") == 0 && u.updated_at == 500);
    CHECK("placeholder: newer sign-in kept", u.last_sign_in_at == 7000);
    event_t later = session_event(EVENT_SESSION_CREATED, "msg_p3", "user_ph", "", 9000);
    CHECK("last sign-in: newer session", apply1(s, &later, NULL) == 0);
    CHECK("last sign-in: updated", get_user(s, "user_ph", &u) && u.last_sign_in_at == 9000 &&
                                       strcmp(u.email, "ph@example.org") == 0);
    event_t older = session_event(EVENT_SESSION_CREATED, "msg_p4", "user_ph", "", 8000);
    CHECK("last sign-in: older session", apply1(s, &older, NULL) == 0);
    CHECK("last sign-in: not moved back", get_user(s, "user_ph", &u) && u.last_sign_in_at == 9000);
    event_t ended = session_event(EVENT_SESSION_ENDED, "msg_p5", "user_ph", "", 12000);
    CHECK("last sign-in: session.ended", apply1(s, &ended, NULL) == 0);
    CHECK("last sign-in: ended does not count", get_user(s, "user_ph", &u) && u.last_sign_in_at == 9000);
}

static void test_history(store *s)
{
    const int64_t order[] = { 3000, 1000, 2000 };
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "msg_h%d", i);
        event_t ev = session_event(EVENT_SESSION_CREATED, id, "user_h", "192.0.2.7", order[i]);
        CHECK("history: insert", apply1(s, &ev, NULL) == 0);
    }
    collect c = scan(s, STORE_KEY_USER, "user_h", 0, INT64_MAX, 0);
    CHECK("history: newest first by event time", c.n == 3 && c.at[0] == 3000 && c.at[1] == 2000 && c.at[2] == 1000);
    CHECK("history: fields stored", strcmp(c.first.delivery_id, "msg_h0") == 0 &&
                                        c.first.type == EVENT_SESSION_CREATED &&
                                        strcmp(c.first.user_id, "user_h") == 0 &&
                                        strcmp(c.first.session_id, "sess_msg_h0") == 0 &&
                                        strcmp(c.first.client_id, "client_1") == 0 &&
                                        strcmp(c.first.ip, "192.0.2.7") == 0 && strcmp(c.first.country, "FR") == 0 &&
                                        strcmp(c.first.city, "Paris") == 0 &&
                                        strcmp(c.first.browser, "Firefox") == 0 &&
                                        strcmp(c.first.device, "desktop") == 0 && !c.first.is_mobile &&
                                        strcmp(c.first.user_agent, "Mozilla/5.0 test") == 0);
    c = scan(s, STORE_KEY_USER, "user_h", 1000, 2000, 0);
    CHECK("bounds: both ends inclusive", c.n == 2 && c.at[0] == 2000 && c.at[1] == 1000);
    c = scan(s, STORE_KEY_USER, "user_h", 1001, 1999, 0);
    CHECK("bounds: 1 ms inside excludes both", c.n == 0);
    c = scan(s, STORE_KEY_USER, "user_h", 1000, 1000, 0);
    CHECK("bounds: since == until == at", c.n == 1 && c.at[0] == 1000);
    c = scan(s, STORE_KEY_USER, "user_h", 3001, INT64_MAX, 0);
    CHECK("bounds: after the newest", c.n == 0);
    c = scan(s, STORE_KEY_USER, "user_h", 0, 999, 0);
    CHECK("bounds: before the oldest", c.n == 0);
    c = scan(s, STORE_KEY_USER, "user_h", 2000, 1000, 0);
    CHECK("bounds: since > until is empty", c.n == 0);
    c = scan(s, STORE_KEY_USER, "user_h", -50, -1, 0);
    CHECK("bounds: negative until is empty", c.n == 0);
    c = scan(s, STORE_KEY_USER, "user_h", 0, INT64_MAX, 2);
    CHECK("limit: 2 newest", c.n == 2 && c.at[0] == 3000 && c.at[1] == 2000);
    c.stop_after = 0;
    collect stop;
    memset(&stop, 0, sizeof stop);
    stop.stop_after = 1;
    char err[UTIL_ERRLEN];
    CHECK("callback stop is not an error",
          store_history_scan(s, STORE_KEY_USER, "user_h", 0, INT64_MAX, 0, collect_cb, &stop, err, sizeof err) == 0 &&
              stop.n == 1);
    CHECK("unknown key: empty", scan(s, STORE_KEY_USER, "user_none", 0, INT64_MAX, 0).n == 0);
    /* "user_h" must not see "user_h2"'s events: the 0x00 separator */
    event_t other = session_event(EVENT_SESSION_CREATED, "msg_h9", "user_h2", "", 2500);
    CHECK("prefix: insert user_h2", apply1(s, &other, NULL) == 0);
    CHECK("prefix: user_h unchanged", scan(s, STORE_KEY_USER, "user_h", 0, INT64_MAX, 0).n == 3);
    CHECK("prefix: user_h2 alone", scan(s, STORE_KEY_USER, "user_h2", 0, INT64_MAX, 0).n == 1);
    /* events of "user_z" after "user_h" in key order must not leak into MDB_LAST */
    event_t z = session_event(EVENT_SESSION_CREATED, "msg_hz", "user_zz", "", 500);
    CHECK("prefix: insert user_zz", apply1(s, &z, NULL) == 0);
    c = scan(s, STORE_KEY_USER, "user_zz", 0, INT64_MAX, 0);
    CHECK("last key in db: found via MDB_LAST", c.n == 1 && c.at[0] == 500);
    c = scan(s, STORE_KEY_USER, "user_zz", 501, INT64_MAX, 0);
    CHECK("last key in db: since excludes", c.n == 0);

    /* the same delivery stored twice (a retry past the idempotency window) is one entry */
    event_t dup = session_event(EVENT_SESSION_CREATED, "msg_h0", "user_h", "192.0.2.7", 3000);
    CHECK("duplicate delivery: applied again", apply1(s, &dup, NULL) == 0);
    CHECK("duplicate delivery: not duplicated", scan(s, STORE_KEY_USER, "user_h", 0, INT64_MAX, 0).n == 3);

    /* ip history: session.created with an ip only */
    c = scan(s, STORE_KEY_IP, "192.0.2.7", 0, INT64_MAX, 0);
    CHECK("ip key: session.created with ip", c.n == 3 && strcmp(c.first.user_id, "user_h") == 0);
    event_t ended = session_event(EVENT_SESSION_ENDED, "msg_h10", "user_h", "198.51.100.1", 4000);
    event_t noip = session_event(EVENT_SESSION_CREATED, "msg_h11", "user_h", "", 4001);
    CHECK("ip key: ended with ip", apply1(s, &ended, NULL) == 0);
    CHECK("ip key: created without ip", apply1(s, &noip, NULL) == 0);
    CHECK("ip key: not for session.ended", scan(s, STORE_KEY_IP, "198.51.100.1", 0, INT64_MAX, 0).n == 0);
    CHECK("ip key: empty ip not indexed", scan(s, STORE_KEY_IP, "", 0, INT64_MAX, 0).n == 0);
    c = scan(s, STORE_KEY_USER, "user_h", 0, INT64_MAX, 0);
    CHECK("user key: every session type", c.n == 5 && c.at[0] == 4001 && c.at[1] == 4000);
}

static void test_deliveries(store *s)
{
    char err[UTIL_ERRLEN];
    store_txn *t = NULL;
    bool seen = true;
    CHECK("delivery: begin", store_txn_begin(s, &t, err, sizeof err) == 0);
    CHECK("delivery: unseen", store_delivery_seen(t, "msg_d1", &seen, err, sizeof err) == 0 && !seen);
    CHECK("delivery: mark", store_delivery_mark(t, "msg_d1", EVENT_USER_CREATED, 100, err, sizeof err) == 0);
    CHECK("delivery: seen in the same txn", store_delivery_seen(t, "msg_d1", &seen, err, sizeof err) == 0 && seen);
    CHECK("delivery: commit", store_txn_commit(t, err, sizeof err) == 0);
    CHECK("delivery: begin 2", store_txn_begin(s, &t, err, sizeof err) == 0);
    seen = false;
    CHECK("delivery: seen across txns", store_delivery_seen(t, "msg_d1", &seen, err, sizeof err) == 0 && seen);
    CHECK("delivery: other id unseen", store_delivery_seen(t, "msg_d2", &seen, err, sizeof err) == 0 && !seen);
    CHECK("delivery: empty id refused", store_delivery_seen(t, "", &seen, err, sizeof err) < 0);

    /* aborted transaction leaves nothing */
    event_t ev = user_event(EVENT_USER_CREATED, "msg_ab", "user_ab", 10);
    event_t sess = session_event(EVENT_SESSION_CREATED, "msg_ab2", "user_ab2", "203.0.113.5", 10);
    store_outcome o;
    CHECK("abort: apply", store_apply_event(t, &ev, &o, err, sizeof err) == 0 &&
                              store_apply_event(t, &sess, &o, err, sizeof err) == 0 &&
                              store_delivery_mark(t, "msg_ab", ev.type, 10, err, sizeof err) == 0);
    store_txn_abort(t);
    store_txn_abort(NULL);
    event_user u;
    CHECK("abort: user not stored", !get_user(s, "user_ab", &u) && !get_user(s, "user_ab2", &u));
    CHECK("abort: history not stored", scan(s, STORE_KEY_IP, "203.0.113.5", 0, INT64_MAX, 0).n == 0);
    CHECK("abort: begin 3", store_txn_begin(s, &t, err, sizeof err) == 0);
    CHECK("abort: delivery not stored", store_delivery_seen(t, "msg_ab", &seen, err, sizeof err) == 0 && !seen);
    event_t unknown = ev;
    unknown.type = EVENT_UNKNOWN;
    CHECK("unknown event type refused", store_apply_event(t, &unknown, &o, err, sizeof err) < 0);
    store_txn_abort(t);
    CHECK("writable", store_is_writable(s));
}

static void test_missing(void)
{
    char dir[256], err[UTIL_ERRLEN];
    store *s = (store *)1;
    snprintf(dir, sizeof dir, "%s/does/not/exist", tmproot);
    CHECK("missing: read-only open of missing dir",
          store_open(&s, dir, STORE_READONLY, 0, err, sizeof err) == STORE_ERR_MISSING && s == NULL);
    CHECK("missing: message says how", strstr(err, "no veille store in") != NULL &&
                                           strstr(err, "veille serve --data") != NULL);
    CHECK("missing: nothing created", access(dir, F_OK) < 0);
    snprintf(dir, sizeof dir, "%s", tmproot);
    CHECK("missing: empty dir", store_open(&s, dir, STORE_READONLY, 0, err, sizeof err) == STORE_ERR_MISSING);
}

/* The CLI reads while `veille serve` writes: a second process opens read-only,
 * sees committed data, and sees what the writer commits after it opened. */
static void test_readonly_concurrent(store *s, const char *dir)
{
    int to_child[2], to_parent[2];
    if (pipe(to_child) < 0 || pipe(to_parent) < 0) {
        CHECK("read-only: pipe", 0);
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(to_child[1]);
        close(to_parent[0]);
        char err[UTIL_ERRLEN], c = 0;
        store *ro = NULL;
        int code = 0;
        if (store_open(&ro, dir, STORE_READONLY, 0, err, sizeof err) < 0)
            code = 1;
        event_user u;
        bool found = false;
        if (!code && (store_get_user(ro, "user_rt", &u, &found, err, sizeof err) < 0 || !found ||
                      strcmp(u.email, "ada@example.org") != 0))
            code = 2;
        store_txn *t = NULL;
        if (!code && store_txn_begin(ro, &t, err, sizeof err) == 0)
            code = 3;
        if (!code && store_is_writable(ro))
            code = 4;
        if (write(to_parent[1], "o", 1) != 1 || read(to_child[0], &c, 1) != 1)
            code = code ? code : 5;
        if (!code && (store_get_user(ro, "user_late", &u, &found, err, sizeof err) < 0 || !found))
            code = 6;
        store_stats st;
        if (!code && (store_get_stats(ro, &st, err, sizeof err) < 0 || st.users == 0))
            code = 7;
        store_close(ro);
        _exit(code);
    }
    close(to_child[0]);
    close(to_parent[1]);
    char c = 0;
    CHECK("read-only: child opened", read(to_parent[0], &c, 1) == 1);
    event_t late = user_event(EVENT_USER_CREATED, "msg_late", "user_late", 1);
    CHECK("read-only: writer commits meanwhile", apply1(s, &late, NULL) == 0);
    CHECK("read-only: resume child", write(to_child[1], "g", 1) == 1);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        printf("read-only child status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    CHECK("read-only: open, read, refuse writes, see later commits", WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(to_child[1]);
    close(to_parent[0]);
}

static void test_stats_prune(void)
{
    char dir[256], err[UTIL_ERRLEN];
    new_dir(dir, sizeof dir);
    store *s = open_rw(dir, 0);
    CHECK("stats: open", s != NULL);
    if (s == NULL)
        return;
    store_stats st;
    CHECK("stats: empty", store_get_stats(s, &st, err, sizeof err) == 0 && st.users == 0 &&
                              st.history_entries == 0 && st.oldest_event_ms == 0 && st.newest_event_ms == 0 &&
                              st.map_bytes == STORE_DEFAULT_MAP_SIZE && st.file_bytes > 0);
    /* 10 sessions at t=1000..10000 with ips: 20 history entries, 10 delivery ids */
    for (int i = 1; i <= 10; i++) {
        char id[32];
        snprintf(id, sizeof id, "msg_s%02d", i);
        event_t ev = session_event(EVENT_SESSION_CREATED, id, i % 2 ? "user_a" : "user_b", "10.1.1.1", i * 1000);
        apply1(s, &ev, NULL);
    }
    event_t d = user_event(EVENT_USER_DELETED, "msg_sdel", "user_a", 11000);
    apply1(s, &d, NULL);
    CHECK("stats: counts", store_get_stats(s, &st, err, sizeof err) == 0 && st.users == 2 &&
                               st.users_deleted == 1 && st.history_entries == 20 && st.deliveries == 11);
    CHECK("stats: oldest/newest", st.oldest_event_ms == 1000 && st.newest_event_ms == 10000);

    /* now=20000, retention 15000 -> history before 5000 goes (t=1000..4000: 8
     * entries); keep 12000 -> delivery ids received before 8000 go (7). */
    store_prune_result r;
    CHECK("prune: bounded step", store_prune(s, 20000, 15000, 12000, 5, &r, err, sizeof err) == 0);
    CHECK("prune: max_deletes respected, more", r.history_pruned == 5 && r.deliveries_pruned == 0 && r.more);
    CHECK("prune: rest", store_prune(s, 20000, 15000, 12000, 100, &r, err, sizeof err) == 0);
    CHECK("prune: rest counted, no more", r.history_pruned == 3 && r.deliveries_pruned == 7 && !r.more);
    CHECK("prune: nothing left", store_prune(s, 20000, 15000, 12000, 100, &r, err, sizeof err) == 0 &&
                                     r.history_pruned == 0 && r.deliveries_pruned == 0 && !r.more);
    CHECK("prune: stats after", store_get_stats(s, &st, err, sizeof err) == 0 && st.history_entries == 12 &&
                                    st.deliveries == 4 && st.oldest_event_ms == 5000 && st.newest_event_ms == 10000);
    collect c = scan(s, STORE_KEY_IP, "10.1.1.1", 0, INT64_MAX, 0);
    CHECK("prune: history entries and index agree", c.n == 6 && c.at[5] == 5000);
    store_txn *t = NULL;
    bool seen = true;
    if (store_txn_begin(s, &t, err, sizeof err) == 0) {
        CHECK("prune: old delivery id forgotten",
              store_delivery_seen(t, "msg_s07", &seen, err, sizeof err) == 0 && !seen);
        CHECK("prune: recent delivery id kept",
              store_delivery_seen(t, "msg_s08", &seen, err, sizeof err) == 0 && seen);
        store_txn_abort(t);
    }
    CHECK("prune: users kept", store_get_stats(s, &st, err, sizeof err) == 0 && st.users == 2);
    CHECK("prune: exactly at the cutoff kept",
          store_prune(s, 20000, 15000, 0, 100, &r, err, sizeof err) == 0 && r.history_pruned == 0);
    CHECK("prune: max_deletes 0 reports more",
          store_prune(s, 20000, 1000, 0, 0, &r, err, sizeof err) == 0 && r.history_pruned == 0 && r.more);
    store_close(s);
}

static void test_map_full(void)
{
    char dir[256], err[UTIL_ERRLEN] = "";
    new_dir(dir, sizeof dir);
    store *s = open_rw(dir, (size_t)1 << 20);
    CHECK("map full: open 1 MiB", s != NULL);
    if (s == NULL)
        return;
    int rc = 0, i;
    for (i = 0; i < 20000 && rc == 0; i++) {
        store_txn *t = NULL;
        rc = store_txn_begin(s, &t, err, sizeof err);
        if (rc < 0)
            break;
        for (int j = 0; j < 10 && rc == 0; j++) {
            char id[64], ip[32];
            snprintf(id, sizeof id, "msg_full_%d_%d", i, j);
            snprintf(ip, sizeof ip, "10.%d.%d.%d", i / 250 % 250, i % 250, j);
            event_t ev = session_event(EVENT_SESSION_CREATED, id, id, ip, i * 10 + j);
            memset(ev.user_agent, 'A', sizeof ev.user_agent - 1);
            store_outcome o;
            rc = store_apply_event(t, &ev, &o, err, sizeof err);
            if (rc == 0)
                rc = store_delivery_mark(t, id, ev.type, i, err, sizeof err);
        }
        if (rc < 0)
            store_txn_abort(t);
        else
            rc = store_txn_commit(t, err, sizeof err);
    }
    CHECK("map full: STORE_ERR_FULL returned", rc == STORE_ERR_FULL);
    CHECK("map full: message says what to do", strstr(err, "store is full (map size 1 MiB)") != NULL &&
                                                    strstr(err, "--map-size") != NULL);
    printf("map full after %d txns: %s\n", i, err);
    store_stats st;
    CHECK("map full: still readable", store_get_stats(s, &st, err, sizeof err) == 0 && st.users > 0);
    /* pruning makes room again */
    store_prune_result r;
    rc = store_prune(s, INT64_MAX / 2, 1, 1, 1000, &r, err, sizeof err);
    if (rc < 0)
        printf("prune on a full store: %s\n", err);
    CHECK("map full: prune frees", rc == 0 && r.history_pruned > 0);
    event_t ev = session_event(EVENT_SESSION_CREATED, "msg_after", "user_after", "", 1);
    CHECK("map full: writes again after prune", apply1(s, &ev, NULL) == 0);
    store_close(s);
}

/* Poke raw bytes into a closed store, as a bug or an older/newer veille might. */
static int count_user_cb(const event_user *u, void *ctx)
{
    (void)u;
    ++*(int *)ctx;
    return 0;
}

/* The store's environment opened by hand, with a write transaction. */
static int raw_begin(const char *dir, MDB_env **env, MDB_txn **txn)
{
    *env = NULL;
    *txn = NULL;
    int rc = mdb_env_create(env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(*env, 16);
    if (rc == 0)
        rc = mdb_env_open(*env, dir, 0, 0600);
    if (rc == 0)
        rc = mdb_txn_begin(*env, NULL, 0, txn);
    return rc;
}

/* Commit (rc 0) or abort raw_begin's transaction, close the environment; rc. */
static int raw_end(MDB_env *env, MDB_txn *txn, int rc)
{
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else if (txn != NULL)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return rc;
}

static int raw_put(const char *dir, const char *db, const char *key, const void *val, size_t len)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int rc = raw_begin(dir, &env, &txn);
    if (rc == 0)
        rc = mdb_dbi_open(txn, db, 0, &dbi);
    if (rc == 0) {
        MDB_val k = { strlen(key), (void *)key }, v = { len, (void *)val };
        rc = mdb_put(txn, dbi, &k, &v, 0);
    }
    return raw_end(env, txn, rc);
}

static void test_corrupt_and_schema(void)
{
    char dir[256], err[UTIL_ERRLEN];
    new_dir(dir, sizeof dir);
    store *s = open_rw(dir, 0);
    CHECK("corrupt: open", s != NULL);
    store_close(s);
    const unsigned char junk[] = { 0x85, 0xa2, 'i', 'd' }; /* a map of 5 cut short */
    CHECK("corrupt: poke", raw_put(dir, "users", "user_bad", junk, sizeof junk) == 0);
    const unsigned char wrong[] = { 0x81, 0xa2, 'i', 'd', 0x05 }; /* {"id": 5} */
    CHECK("corrupt: poke wrong type", raw_put(dir, "users", "user_wrong", wrong, sizeof wrong) == 0);
    s = open_rw(dir, 0);
    event_user u;
    bool found = true;
    CHECK("corrupt: truncated record is an error",
          s != NULL && store_get_user(s, "user_bad", &u, &found, err, sizeof err) < 0 && !found);
    CHECK("corrupt: message", strstr(err, "corrupt") != NULL);
    CHECK("corrupt: wrong type is an error",
          s != NULL && store_get_user(s, "user_wrong", &u, &found, err, sizeof err) < 0);
    CHECK("corrupt: listing users reports it", s != NULL && store_list_users(s, count_user_cb, &(int){ 0 }, err,
                                                                              sizeof err) < 0);
    store_close(s);

    const unsigned char v9[] = { 0x09 };
    CHECK("schema: poke version 9", raw_put(dir, "meta", "schema", v9, sizeof v9) == 0);
    s = NULL;
    CHECK("schema: other store refused", store_open(&s, dir, 0, 0, err, sizeof err) < 0 && s == NULL);
    CHECK("schema: message", strstr(err, "schema version 9") != NULL);
    CHECK("schema: refused read-only too", store_open(&s, dir, STORE_READONLY, 0, err, sizeof err) < 0);
}

static void test_codec(void)
{
    /* forward compatible: unknown keys skipped, missing keys zero */
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "id", 2);
    msgpack_pack_str_with_body(&pk, "user_x", 6);
    msgpack_pack_str_with_body(&pk, "future", 6);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_nil(&pk);
    msgpack_pack_str_with_body(&pk, "ua", 2);
    msgpack_pack_int64(&pk, 42);
    event_user u;
    memset(&u, 0x55, sizeof u);
    CHECK("codec: unknown key skipped", store_codec_user_decode(b.data, b.size, &u) == 0 &&
                                            strcmp(u.id, "user_x") == 0 && u.updated_at == 42);
    CHECK("codec: missing keys zero", u.email[0] == '\0' && u.created_at == 0 && !u.deleted && !u.placeholder);
    CHECK("codec: trailing bytes refused", (msgpack_sbuffer_write(&b, "\xc0", 1), 1) &&
                                               store_codec_user_decode(b.data, b.size, &u) < 0);
    CHECK("codec: empty refused", store_codec_user_decode("", 0, &u) < 0);
    CHECK("codec: not a map refused", store_codec_user_decode("\x05", 1, &u) < 0);
    msgpack_sbuffer_destroy(&b);

    /* an over-long string from a future version is cut, not overflowed */
    msgpack_sbuffer_init(&b);
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    char big[1000];
    memset(big, 'x', sizeof big);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "co", 2);
    msgpack_pack_str_with_body(&pk, big, sizeof big);
    store_history_entry e;
    CHECK("codec: long string cut to fit", store_codec_history_decode(b.data, b.size, &e) == 0 &&
                                               strlen(e.country) == EVENT_COUNTRY_MAX - 1);
    msgpack_sbuffer_destroy(&b);

    /* every width of integer msgpack-c may write, and containers, bin and ext
     * under unknown keys: the in-place reader must agree with the format */
    msgpack_sbuffer_init(&b);
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 9);
    msgpack_pack_str_with_body(&pk, "ca", 2);
    msgpack_pack_int16(&pk, -300);
    msgpack_pack_str_with_body(&pk, "ua", 2);
    msgpack_pack_uint32(&pk, 4000000000u);
    msgpack_pack_str_with_body(&pk, "ls", 2);
    msgpack_pack_int8(&pk, -5);
    msgpack_pack_str_with_body(&pk, "da", 2);
    msgpack_pack_int64(&pk, -1234567890123LL);
    msgpack_pack_str_with_body(&pk, "x1", 2);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "deep", 4);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_double(&pk, 1.5);
    msgpack_pack_float(&pk, 2.5f);
    msgpack_pack_str_with_body(&pk, "x2", 2);
    msgpack_pack_bin_with_body(&pk, "\x00\x01", 2);
    msgpack_pack_str_with_body(&pk, "x3", 2);
    msgpack_pack_ext_with_body(&pk, "abc", 3, 7);
    msgpack_pack_str_with_body(&pk, "b", 1);
    msgpack_pack_true(&pk);
    msgpack_pack_str_with_body(&pk, "id", 2);
    msgpack_pack_str_with_body(&pk, "user_w", 6);
    CHECK("codec: integer widths and skipped containers",
          store_codec_user_decode(b.data, b.size, &u) == 0 && u.created_at == -300 && u.updated_at == 4000000000LL &&
              u.last_sign_in_at == -5 && u.deleted_at == -1234567890123LL && u.banned && strcmp(u.id, "user_w") == 0);
    /* every cut of a valid record is refused, none read past its end */
    bool all_refused = true;
    for (size_t cut = 0; cut < b.size; cut++)
        all_refused &= store_codec_user_decode(b.data, cut, &u) < 0;
    CHECK("codec: every truncation refused", all_refused);
    msgpack_sbuffer_destroy(&b);
    CHECK("codec: wrong type for a known key refused", store_codec_user_decode("\x81\xa2id\x05", 5, &u) < 0);
    CHECK("codec: huge declared count refused", store_codec_user_decode("\xdf\xff\xff\xff\xff", 5, &u) < 0);
    CHECK("codec: a string longer than the record refused", store_codec_user_decode("\x81\xa2id\xd9\x40" "ab", 7, &u) < 0);

    /* 24 bytes declaring 4 G evidence entries: msgpack-c's unpacker would ask its
     * zone for 4 G objects (~128 GiB) before reading one; a bare huge map too. */
    static const char huge_alert[] = "\x83\xa2id\xa2" "a1" "\xa1r\xa6rule_x" "\xa2" "ev\xdd\xff\xff\xff\xff";
    store_alert *al = malloc(sizeof *al);
    largest_malloc = 0;
    CHECK("codec: 24-byte alert declaring 4 G evidence entries refused",
          sizeof huge_alert - 1 == 24 && al != NULL && store_codec_alert_decode(huge_alert, 24, al) < 0);
    uint64_t n = 0;
    CHECK("codec: a bare map declaring 4 G pairs refused", store_codec_uint_decode("\xdf\xff\xff\xff\xff", 5, &n) < 0);
    CHECK("codec: no allocation sized by a declared count", !TRACK_MALLOC || largest_malloc < 1024 * 1024);
    free(al);

    msgpack_sbuffer_init(&b);
    int64_t r = 0;
    event_type ty = EVENT_UNKNOWN;
    CHECK("codec: delivery round trip", store_codec_delivery_encode(&b, -5, EVENT_SESSION_REVOKED) == 0 &&
                                            store_codec_delivery_decode(b.data, b.size, &r, &ty) == 0 &&
                                            r == -5 && ty == EVENT_SESSION_REVOKED);
    msgpack_sbuffer_destroy(&b);
}

static collect scan_oldest(store *s, char kind, const char *key, int64_t since, int64_t until, size_t limit)
{
    char err[UTIL_ERRLEN];
    collect c;
    memset(&c, 0, sizeof c);
    if (store_history_scan_oldest_first(s, kind, key, since, until, limit, collect_cb, &c, err, sizeof err) < 0) {
        printf("scan_oldest: %s\n", err);
        c.n = -1;
    }
    return c;
}

/* Oldest-first is what the CLI prints: the most recent `limit` entries, in time order.
 * A fresh store so that "aaa" holds the very first key (the MDB_FIRST path) and "zzz"
 * the very last. */
static void test_history_oldest_first(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    store *s = open_rw(dir, 0);
    if (s == NULL) {
        CHECK("oldest-first: open", 0);
        return;
    }
    const char *users[] = {"aaa", "mmm", "zzz"};
    for (int u = 0; u < 3; u++)
        for (int i = 4; i >= 0; i--) { /* inserted newest first: order must come from event time */
            char d[64];
            snprintf(d, sizeof d, "msg_of_%s_%d", users[u], i);
            event_t ev = session_event(EVENT_SESSION_ENDED, d, users[u], "", 1000 + i * 10);
            apply1(s, &ev, NULL);
        }
    for (int u = 0; u < 3; u++) {
        char name[96];
        collect c = scan_oldest(s, STORE_KEY_USER, users[u], 0, INT64_MAX, 0);
        snprintf(name, sizeof name, "oldest-first %s: all five in time order", users[u]);
        CHECK(name, c.n == 5 && c.at[0] == 1000 && c.at[1] == 1010 && c.at[4] == 1040);
        c = scan_oldest(s, STORE_KEY_USER, users[u], 0, INT64_MAX, 2);
        snprintf(name, sizeof name, "oldest-first %s: limit keeps the two most recent, oldest first", users[u]);
        CHECK(name, c.n == 2 && c.at[0] == 1030 && c.at[1] == 1040);
        c = scan_oldest(s, STORE_KEY_USER, users[u], 1010, 1030, 0);
        snprintf(name, sizeof name, "oldest-first %s: since and until are inclusive", users[u]);
        CHECK(name, c.n == 3 && c.at[0] == 1010 && c.at[2] == 1030);
        c = scan_oldest(s, STORE_KEY_USER, users[u], 1011, 1029, 0);
        snprintf(name, sizeof name, "oldest-first %s: 1 ms inside each bound", users[u]);
        CHECK(name, c.n == 1 && c.at[0] == 1020);
        c = scan_oldest(s, STORE_KEY_USER, users[u], 0, INT64_MAX, 5);
        snprintf(name, sizeof name, "oldest-first %s: limit equal to the count", users[u]);
        CHECK(name, c.n == 5 && c.at[0] == 1000);
    }
    collect c = scan_oldest(s, STORE_KEY_USER, "nobody", 0, INT64_MAX, 0);
    CHECK("oldest-first: unknown key gives nothing", c.n == 0);
    c = scan_oldest(s, STORE_KEY_USER, "aaa", 2000, INT64_MAX, 0);
    CHECK("oldest-first: nothing since gives nothing", c.n == 0);
    store_close(s);
}

static void fill_max(char *p, size_t cap, char c)
{
    memset(p, c, cap - 1);
    p[cap - 1] = '\0';
}

/* The write-ahead log's record of a decoded delivery: every field comes back,
 * at its longest too; a cut or damaged record is refused, never half-read. */
static void test_event_record(void)
{
    store_event_record r, back;
    memset(&r, 0, sizeof r);
    r.ev = session_event(EVENT_SESSION_CREATED, "msg_rec_1", "user_rec", "2001:db8::1", 1700000000123);
    r.received_ms = 1700000000999;
    r.ev.has_user = true;
    r.ev.session.is_mobile = true;
    r.ev.session.expire_at = -5;
    snprintf(r.ev.user.email, sizeof r.ev.user.email, "a@b.example");
    r.ev.user.banned = true;
    r.ev.user.updated_at = 42;
    unsigned char buf[STORE_EVENT_RECORD_MAX];
    size_t len = 0;
    CHECK("record: encodes", store_event_record_encode(&r, buf, sizeof buf, &len) == 0 && len > 0 && len < 600);
    CHECK("record: decodes", store_event_record_decode(buf, len, &back) == 0);
    CHECK("record: round trip", memcmp(&r, &back, sizeof r) == 0);
    bool cut_refused = true;
    for (size_t n = 0; n < len; n++)
        cut_refused = cut_refused && store_event_record_decode(buf, n, &back) < 0;
    CHECK("record: every cut is refused", cut_refused);
    CHECK("record: a refused decode leaves nothing", back.ev.delivery_id[0] == '\0');
    CHECK("record: too small a buffer is refused", store_event_record_encode(&r, buf, len - 1, &len) < 0);

    /* every string at its longest: still fits STORE_EVENT_RECORD_MAX */
    memset(&r, 0, sizeof r);
    r.ev.type = EVENT_USER_UPDATED;
    fill_max(r.ev.delivery_id, sizeof r.ev.delivery_id, 'd');
    fill_max(r.ev.instance_id, sizeof r.ev.instance_id, 'i');
    fill_max(r.ev.user_agent, sizeof r.ev.user_agent, 'a');
    fill_max(r.ev.client_ip, sizeof r.ev.client_ip, '1');
    fill_max(r.ev.user.id, sizeof r.ev.user.id, 'u');
    fill_max(r.ev.user.email, sizeof r.ev.user.email, 'e');
    fill_max(r.ev.user.first_name, sizeof r.ev.user.first_name, 'f');
    fill_max(r.ev.user.last_name, sizeof r.ev.user.last_name, 'l');
    fill_max(r.ev.user.username, sizeof r.ev.user.username, 'n');
    fill_max(r.ev.user.external_id, sizeof r.ev.user.external_id, 'x');
    fill_max(r.ev.user.instance_id, sizeof r.ev.user.instance_id, 'j');
    fill_max(r.ev.session.session_id, sizeof r.ev.session.session_id, 's');
    fill_max(r.ev.session.user_id, sizeof r.ev.session.user_id, 'v');
    fill_max(r.ev.session.client_id, sizeof r.ev.session.client_id, 'c');
    fill_max(r.ev.session.status, sizeof r.ev.session.status, 't');
    fill_max(r.ev.session.ip, sizeof r.ev.session.ip, 'p');
    fill_max(r.ev.session.country, sizeof r.ev.session.country, 'C');
    fill_max(r.ev.session.city, sizeof r.ev.session.city, 'y');
    fill_max(r.ev.session.browser, sizeof r.ev.session.browser, 'b');
    fill_max(r.ev.session.device, sizeof r.ev.session.device, 'D');
    r.ev.user.created_at = INT64_MAX;
    r.ev.at_ms = INT64_MIN;
    CHECK("record: longest fields fit", store_event_record_encode(&r, buf, sizeof buf, &len) == 0);
    CHECK("record: longest fields round trip",
          store_event_record_decode(buf, len, &back) == 0 && memcmp(&r, &back, sizeof r) == 0);

    /* not a record of ours */
    static const unsigned char garbage[] = {0x81, 0xa1, 't', 0x05};
    CHECK("record: a wrong field type is refused", store_event_record_decode(garbage, sizeof garbage, &back) < 0);
    static const unsigned char no_type[] = {0x81, 0xa3, 'r', 'c', 'v', 0x01};
    CHECK("record: no type or id is refused", store_event_record_decode(no_type, sizeof no_type, &back) < 0);
}

/* ---- one writer per store, damaged files (issue 10) ---- */

static void test_lock(void)
{
    char dir[256], err[UTIL_ERRLEN], want[64], path[300], buf[32] = "";
    new_dir(dir, sizeof dir);
    store *s = open_rw(dir, 0);
    CHECK("lock: first read-write open", s != NULL);
    store *second = NULL;
    int rc = store_open(&second, dir, 0, 0, err, sizeof err);
    CHECK("lock: a second read-write open is refused", rc == STORE_ERR_LOCKED && second == NULL);
    snprintf(want, sizeof want, "in use by veille pid %ld ", (long)getpid());
    CHECK("lock: the message names the holder's pid", strstr(err, want) != NULL);
    snprintf(path, sizeof path, "%s/veille.lock", dir);
    FILE *f = fopen(path, "r");
    CHECK("lock: veille.lock holds the pid", f != NULL && fgets(buf, sizeof buf, f) != NULL &&
                                                 strtol(buf, NULL, 10) == (long)getpid());
    if (f != NULL)
        fclose(f);
    store *ro = NULL;
    CHECK("lock: a read-only open works beside it", store_open(&ro, dir, STORE_READONLY, 0, err, sizeof err) == 0);
    store_close(ro);
    store_close(s);
    s = NULL;
    CHECK("lock: released by close", store_open(&s, dir, 0, 0, err, sizeof err) == 0);
    store_close(s);
}

/* A store with some pages and an overflow record, closed. */
static bool make_store(const char *dir)
{
    store *s = open_rw(dir, 0);
    if (s == NULL)
        return false;
    bool ok = true;
    char err[UTIL_ERRLEN];
    store_txn *t = NULL;
    ok = store_txn_begin(s, &t, err, sizeof err) == 0;
    for (int i = 0; ok && i < 400; i++) {
        char id[32], user[32];
        snprintf(id, sizeof id, "msg_dmg_%d", i);
        snprintf(user, sizeof user, "user_dmg_%d", i % 37);
        event_t ev = session_event(EVENT_SESSION_CREATED, id, user, "192.0.2.1", 1000000 + i);
        store_outcome o;
        ok = store_apply_event(t, &ev, &o, err, sizeof err) == 0 &&
             store_delivery_mark(t, id, ev.type, 1000000 + i, err, sizeof err) == 0;
    }
    if (ok)
        ok = store_txn_commit(t, err, sizeof err) == 0;
    else
        store_txn_abort(t);
    store_close(s);
    static unsigned char big[10000]; /* larger than a page: an overflow record */
    memset(big, 0xc0, sizeof big);
    return ok && raw_put(dir, "users", "user_big", big, sizeof big) == 0;
}

static int open_err(const char *dir, int flags, char *err, size_t errlen)
{
    store *s = NULL;
    int rc = store_open(&s, dir, flags, 0, err, errlen);
    store_close(s);
    return rc;
}

static bool write_at(const char *file, off_t off, const void *p, size_t n)
{
    FILE *f = fopen(file, "r+b");
    bool ok = f != NULL && fseeko(f, off, SEEK_SET) == 0 && fwrite(p, 1, n, f) == n;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    return ok;
}

/* The main DB's root page in the newer meta (LMDB 0.9 layout, see integrity.c). */
static uint64_t main_root(const char *file)
{
    unsigned char m[2][160];
    FILE *f = fopen(file, "rb");
    if (f == NULL)
        return 0;
    bool ok = fread(m[0], 1, 160, f) == 160 && fseek(f, 4096, SEEK_SET) == 0 && fread(m[1], 1, 160, f) == 160;
    fclose(f);
    uint64_t txn[2], root[2];
    for (int i = 0; i < 2; i++) {
        memcpy(&txn[i], m[i] + 0x90, 8);
        memcpy(&root[i], m[i] + 0x80, 8);
    }
    return ok ? root[txn[1] > txn[0]] : 0;
}

static void test_damaged(void)
{
    char dir[256], file[300], err[UTIL_ERRLEN];
    struct stat st;

    new_dir(dir, sizeof dir);
    CHECK("damaged: make a store", make_store(dir));
    CHECK("damaged: a sound store with an overflow record opens",
          open_err(dir, 0, err, sizeof err) == 0 && open_err(dir, STORE_READONLY, err, sizeof err) == 0);

    new_dir(dir, sizeof dir);
    snprintf(file, sizeof file, "%s/data.mdb", dir);
    CHECK("truncated: make a store", make_store(dir) && stat(file, &st) == 0);
    CHECK("truncated: cut to half", truncate(file, st.st_size / 2 / 4096 * 4096) == 0);
    CHECK("truncated: read-write refused", open_err(dir, 0, err, sizeof err) == STORE_ERR_DAMAGED);
    CHECK("truncated: says so", strstr(err, "truncated") != NULL && strstr(err, "backup") != NULL);
    CHECK("truncated: read-only refused", open_err(dir, STORE_READONLY, err, sizeof err) == STORE_ERR_DAMAGED);
    CHECK("truncated: --init does not help", open_err(dir, STORE_INIT, err, sizeof err) == STORE_ERR_DAMAGED);

    new_dir(dir, sizeof dir);
    snprintf(file, sizeof file, "%s/data.mdb", dir);
    CHECK("overwritten: make a store", make_store(dir));
    uint64_t root = main_root(file);
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 131 + 7);
    CHECK("overwritten: garbage over the main DB's root",
          root >= 2 && write_at(file, (off_t)root * 4096, junk, sizeof junk));
    CHECK("overwritten: refused", open_err(dir, 0, err, sizeof err) == STORE_ERR_DAMAGED);
    CHECK("overwritten: names the page", strstr(err, "'main'") != NULL);
    CHECK("overwritten: read-only refused", open_err(dir, STORE_READONLY, err, sizeof err) == STORE_ERR_DAMAGED);

    new_dir(dir, sizeof dir);
    snprintf(file, sizeof file, "%s/data.mdb", dir);
    CHECK("header: make a store", make_store(dir));
    CHECK("header: garbage over both meta pages", write_at(file, 0, junk, sizeof junk) &&
                                                     write_at(file, 4096, junk, sizeof junk));
    CHECK("header: refused", open_err(dir, 0, err, sizeof err) == STORE_ERR_DAMAGED &&
                                 strstr(err, "header") != NULL);

    new_dir(dir, sizeof dir);
    snprintf(file, sizeof file, "%s/data.mdb", dir);
    CHECK("empty: make a store", make_store(dir));
    CHECK("empty: emptied", truncate(file, 0) == 0);
    CHECK("empty: refused", open_err(dir, 0, err, sizeof err) == STORE_ERR_DAMAGED);
    CHECK("empty: says what to do", strstr(err, "empty (0 bytes)") != NULL && strstr(err, "--init") != NULL &&
                                        strstr(err, "veille.lock") != NULL);
    CHECK("empty: read-only refused", open_err(dir, STORE_READONLY, err, sizeof err) == STORE_ERR_DAMAGED);
    CHECK("empty: read-only --init still refused",
          open_err(dir, STORE_READONLY | STORE_INIT, err, sizeof err) == STORE_ERR_DAMAGED);
    CHECK("empty: left as found", stat(file, &st) == 0 && st.st_size == 0);
    store *s = NULL;
    CHECK("empty: STORE_INIT starts a new store", store_open(&s, dir, STORE_INIT, 0, err, sizeof err) == 0);
    event_user u;
    CHECK("empty: the new store is empty and works", s != NULL && !get_user(s, "user_dmg_1", &u) &&
                                                         store_is_writable(s));
    store_close(s);
}

/* ---- pages written per event ----
 * Without MDB_WRITEMAP LMDB pwrite()s every page a commit dirtied (4 KiB each)
 * plus a few bytes of its meta page, so the bytes this process handed to write
 * calls around a commit (/proc/self/io wchar) count the pages; nothing else
 * writes in between. Durability costs per scattered page, not per byte. */
static uint64_t proc_wchar(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    unsigned long long v = 0;
    char line[128];
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "wchar: %llu", &v) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return v;
}

/* A delivery id as Svix makes them (KSUID-based, time first): msg_ then the
 * time in 9 base-62 digits, then a sequence. random_order: the same id with the
 * digits hashed, as a receiver of random (UUID-like) ids would store them. */
static void delivery_id(char *buf, size_t len, uint64_t seq, bool random_order)
{
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    uint64_t x = random_order ? (seq + 1) * 0x9E3779B97F4A7C15ULL : 1700000000000ULL + seq;
    char d[12];
    for (int i = 10; i >= 0; i--) {
        d[i] = b62[x % 62];
        x /= 62;
    }
    d[11] = '\0';
    snprintf(buf, len, "msg_%s%06llu", d, (unsigned long long)(seq % 1000000));
}

typedef struct {
    size_t users, preload, batch;
    bool shared_ip;   /* users share users/100 IPs (a NAT); else one IP per user */
    bool random_ids;  /* delivery ids in random order rather than time first */
} pages_load;

/* Apply n session.created events from seq on, for users drawn pseudo-randomly,
 * in one transaction, and mark their deliveries, as serve does. */
static bool apply_load(store *s, const pages_load *l, uint64_t seq, size_t n, uint64_t *pages)
{
    char err[UTIL_ERRLEN];
    store_txn *t = NULL;
    bool ok = store_txn_begin(s, &t, err, sizeof err) == 0;
    for (size_t i = 0; ok && i < n; i++, seq++) {
        uint64_t u = (seq * 2654435761ULL >> 7) % l->users;
        uint64_t home = l->shared_ip ? u % (l->users / 100 + 1) : u;
        char id[48], user[32], ip[32];
        delivery_id(id, sizeof id, seq, l->random_ids);
        snprintf(user, sizeof user, "user_%08llu", (unsigned long long)u);
        snprintf(ip, sizeof ip, "10.%u.%u.%u", (unsigned)(home >> 16 & 255), (unsigned)(home >> 8 & 255),
                 (unsigned)(home & 255));
        event_t ev = session_event(EVENT_SESSION_CREATED, id, user, ip, 1700000000000LL + (int64_t)seq * 10);
        store_outcome o;
        ok = store_apply_event(t, &ev, &o, err, sizeof err) == 0 &&
             store_delivery_mark(t, id, ev.type, ev.at_ms, err, sizeof err) == 0;
    }
    if (!ok) {
        printf("apply_load: %s\n", err);
        store_txn_abort(t);
        return false;
    }
    uint64_t before = proc_wchar();
    ok = store_txn_commit(t, err, sizeof err) == 0;
    if (pages != NULL)
        *pages = (proc_wchar() - before) / 4096;
    return ok;
}

/* Pages per event of one transaction of l->batch events into a store holding
 * l->preload events already (committed 1,000 at a time); -1 on failure. */
static double pages_per_event(const pages_load *l)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    store *s = open_rw(dir, 0);
    bool ok = s != NULL;
    uint64_t seq = 0, pages = 0;
    for (; ok && seq < l->preload; seq += 1000)
        ok = apply_load(s, l, seq, 1000, NULL);
    ok = ok && apply_load(s, l, seq, l->batch, &pages);
    struct stat st;
    char data[300];
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    double per = ok ? (double)pages / (double)l->batch : -1;
    if (ok && stat(data, &st) == 0)
        printf("INFO %zu users, %s, %s ids, %zu events stored: %zu in one transaction write %.2f pages "
               "(%.0f bytes) per event; data.mdb %.0f bytes per event\n",
               l->users, l->shared_ip ? "shared IPs" : "one IP per user", l->random_ids ? "random" : "time-first",
               l->preload, l->batch, per, per * 4096, (double)st.st_size / (double)(l->preload + l->batch));
    store_close(s);
    return per;
}

static void test_pages_per_event(void)
{
    /* VEILLE_TEST_PAGES=users,preload scales it up for the README's figures */
    pages_load l = { .users = 5000, .preload = 20000, .batch = 2000, .shared_ip = true };
    const char *env = getenv("VEILLE_TEST_PAGES");
    if (env != NULL && sscanf(env, "%zu,%zu", &l.users, &l.preload) != 2)
        l.users = 5000, l.preload = 20000;
    double shared = pages_per_event(&l);
    l.shared_ip = false;
    double own = pages_per_event(&l);
    l.random_ids = true;
    double random_ids = pages_per_event(&l);
    CHECK("pages: measured", shared > 0 && own > 0 && random_ids > 0);
    /* time-first ids land on the last leaves of deliveries, shared by the batch */
    CHECK("pages: time-first delivery ids write fewer pages than random ones", own + 0.15 < random_ids);
}

/* ---- records that did not change are not written ---- */

/* Pages the commit of t wrote (see proc_wchar). */
static uint64_t commit_pages(store_txn *t)
{
    char err[UTIL_ERRLEN];
    uint64_t before = proc_wchar();
    if (store_txn_commit(t, err, sizeof err) < 0) {
        printf("commit: %s\n", err);
        return UINT64_MAX;
    }
    return (proc_wchar() - before) / 4096;
}

/* Apply ev alone in one transaction (no delivery mark): the pages its commit wrote. */
static uint64_t apply_pages(store *s, const event_t *ev)
{
    char err[UTIL_ERRLEN];
    store_txn *t = NULL;
    store_outcome o;
    if (store_txn_begin(s, &t, err, sizeof err) < 0 || store_apply_event(t, ev, &o, err, sizeof err) < 0) {
        printf("apply_pages: %s\n", err);
        store_txn_abort(t);
        return UINT64_MAX;
    }
    return commit_pages(t);
}

static void test_unchanged_not_rewritten(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    store *s = open_rw(dir, 0);
    CHECK("unchanged: open", s != NULL);
    if (s == NULL)
        return;
    /* enough users that every database is more than one page deep */
    char err[UTIL_ERRLEN];
    store_txn *t = NULL;
    bool ok = store_txn_begin(s, &t, err, sizeof err) == 0;
    for (int i = 0; ok && i < 3000; i++) {
        char id[32], user[32];
        snprintf(id, sizeof id, "msg_u%05d", i);
        snprintf(user, sizeof user, "user_u%05d", i % 1000);
        event_t ev = session_event(EVENT_SESSION_CREATED, id, user, "", 100000 + i);
        store_outcome o;
        ok = store_apply_event(t, &ev, &o, err, sizeof err) == 0;
    }
    event_t up = user_event(EVENT_USER_UPDATED, "msg_up1", "user_u00500", 5000);
    snprintf(up.user.email, sizeof up.user.email, "u@example.org");
    store_outcome o;
    ok = ok && store_apply_event(t, &up, &o, err, sizeof err) == 0;
    CHECK("unchanged: setup", ok && store_txn_commit(t, err, sizeof err) == 0);

    /* Svix retries with the same id, but Clerk may send the same state twice */
    event_t again = up;
    snprintf(again.delivery_id, sizeof again.delivery_id, "msg_up2");
    CHECK("unchanged: the same user.updated writes no page", apply_pages(s, &again) == 0);
    event_user u;
    CHECK("unchanged: the user is as it was", get_user(s, "user_u00500", &u) && strcmp(u.email, "u@example.org") == 0);
    event_t newer = up;
    snprintf(newer.delivery_id, sizeof newer.delivery_id, "msg_up3");
    snprintf(newer.user.email, sizeof newer.user.email, "v@example.org");
    CHECK("unchanged: a changed user.updated writes", apply_pages(s, &newer) > 0);
    CHECK("unchanged: and is stored", get_user(s, "user_u00500", &u) && strcmp(u.email, "v@example.org") == 0);

    /* A sign-in moves last_sign_in_at; a session.ended changes no user record.
     * With the record next to the user's newest event both dirty the same
     * pages; with users apart the sign-in cost their leaf and branches too. */
    event_t ended = session_event(EVENT_SESSION_ENDED, "msg_e1", "user_u00700", "", 200000);
    event_t signin = session_event(EVENT_SESSION_CREATED, "msg_c1", "user_u00300", "", 200001);
    uint64_t ended_pages = apply_pages(s, &ended), signin_pages = apply_pages(s, &signin);
    printf("INFO one session.ended wrote %llu pages, one sign-in %llu\n", (unsigned long long)ended_pages,
           (unsigned long long)signin_pages);
    CHECK("unchanged: a sign-in writes no page more than an event that changes no user",
          signin_pages <= ended_pages);
    CHECK("unchanged: the sign-in is recorded", get_user(s, "user_u00300", &u) && u.last_sign_in_at == 200001);
    store_close(s);
}

/* ---- schema 2 stores: users in a database of their own ---- */

/* Turn a schema 3 store back into what schema 2 wrote: every user record moved
 * from history ('u' id 0x00 then 0xFF x 8) into users, the version set to 2. */
static int make_schema2(const char *dir, int *moved)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi hist, users, meta;
    *moved = 0;
    int rc = raw_begin(dir, &env, &txn);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "history", 0, &hist);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "users", 0, &users);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "meta", 0, &meta);
    if (rc == 0)
        rc = mdb_cursor_open(txn, hist, &cur);
    MDB_val k, v;
    static const unsigned char tail[9] = { 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
    for (int r = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : rc; rc == 0 && r == 0;
         r = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const unsigned char *p = k.mv_data;
        if (k.mv_size <= 10 || p[0] != 'u' || memcmp(p + k.mv_size - 9, tail, 9) != 0)
            continue;
        MDB_val uk = { k.mv_size - 10, (void *)(p + 1) };
        rc = mdb_put(txn, users, &uk, &v, 0);
        if (rc == 0)
            rc = mdb_cursor_del(cur, 0);
        ++*moved;
    }
    const unsigned char v2[] = { 0x02 };
    MDB_val sk = { 6, "schema" }, sv = { 1, (void *)v2 };
    if (rc == 0)
        rc = mdb_put(txn, meta, &sk, &sv, 0);
    MDB_val ck = { 5, "users" }, dk = { 13, "users_deleted" };
    if (rc == 0 && (rc = mdb_del(txn, meta, &ck, NULL)) == MDB_NOTFOUND)
        rc = 0;
    if (rc == 0 && (rc = mdb_del(txn, meta, &dk, NULL)) == MDB_NOTFOUND)
        rc = 0;
    if (cur != NULL)
        mdb_cursor_close(cur);
    return raw_end(env, txn, rc);
}

typedef struct {
    int n;
    char ids[8][EVENT_ID_MAX];
} user_list;

static int list_user_cb(const event_user *u, void *ctx)
{
    user_list *l = ctx;
    if (l->n < 8)
        snprintf(l->ids[l->n], sizeof l->ids[0], "%s", u->id);
    l->n++;
    return 0;
}

static void test_users_layout_and_upgrade(void)
{
    char dir[256], err[UTIL_ERRLEN];
    new_dir(dir, sizeof dir);
    store *s = open_rw(dir, 0);
    CHECK("upgrade: open", s != NULL);
    if (s == NULL)
        return;
    /* ids that are prefixes of each other, users with and without events */
    static const char *ids[] = { "user_1", "user_10", "user_1x", "user_2" };
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof id, "msg_l%d", i);
        event_t ev = session_event(EVENT_SESSION_CREATED, id, ids[i], "10.9.9.9", 1000 + i);
        apply1(s, &ev, NULL);
        snprintf(id, sizeof id, "msg_m%d", i);
        ev = session_event(EVENT_SESSION_ENDED, id, ids[i], "", 2000 + i);
        apply1(s, &ev, NULL);
    }
    event_t only = user_event(EVENT_USER_CREATED, "msg_l9", "user_0", 500);
    apply1(s, &only, NULL);
    event_t del = user_event(EVENT_USER_DELETED, "msg_l8", "user_10", 3000);
    apply1(s, &del, NULL);
    user_list l = { 0 };
    CHECK("users: listed in id order",
          store_list_users(s, list_user_cb, &l, err, sizeof err) == 0 && l.n == 5 &&
              strcmp(l.ids[0], "user_0") == 0 && strcmp(l.ids[1], "user_1") == 0 &&
              strcmp(l.ids[2], "user_10") == 0 && strcmp(l.ids[3], "user_1x") == 0 && strcmp(l.ids[4], "user_2") == 0);
    store_stats st;
    CHECK("users: counted", store_get_stats(s, &st, err, sizeof err) == 0 && st.users == 5 && st.users_deleted == 1 &&
                                st.history_entries == 12);
    collect c = { 0 };
    CHECK("users: history around the record", store_history_scan(s, STORE_KEY_USER, "user_1", 0, INT64_MAX, 0,
                                                                  collect_cb, &c, err, sizeof err) == 0 &&
                                                   c.n == 2 && c.at[0] == 2000 && c.at[1] == 1000);
    store_close(s);

    int moved = 0;
    CHECK("upgrade: a schema 2 store made", make_schema2(dir, &moved) == 0 && moved == 5);
    s = NULL;
    CHECK("upgrade: read-only open refuses schema 2",
          store_open(&s, dir, STORE_READONLY, 0, err, sizeof err) < 0 && s == NULL);
    CHECK("upgrade: and says what to do", strstr(err, "schema version 2") != NULL &&
                                              strstr(err, "veille serve --data") != NULL);
    s = open_rw(dir, 0);
    CHECK("upgrade: read-write open upgrades", s != NULL);
    store_close(s);
    CHECK("upgrade: read-only open works after",
          store_open(&s, dir, STORE_READONLY, 0, err, sizeof err) == 0 && s != NULL);
    event_user u;
    l.n = 0;
    CHECK("upgrade: users moved", s != NULL && get_user(s, "user_1x", &u) && u.last_sign_in_at == 1002 &&
                                      get_user(s, "user_0", &u) && !u.placeholder && get_user(s, "user_10", &u) &&
                                      u.deleted);
    CHECK("upgrade: listed", s != NULL && store_list_users(s, list_user_cb, &l, err, sizeof err) == 0 && l.n == 5);
    CHECK("upgrade: counted", s != NULL && store_get_stats(s, &st, err, sizeof err) == 0 && st.users == 5 &&
                                  st.users_deleted == 1);
    store_close(s);

    /* a crash after the version was set: users still holds records */
    static const unsigned char rec[] = { 0x81, 0xa2, 'i', 'd', 0xa6, 'u', 's', 'e', 'r', '_', '7' };
    CHECK("upgrade: interrupted one made", raw_put(dir, "users", "user_7", rec, sizeof rec) == 0);
    s = NULL;
    CHECK("upgrade: read-only open refuses an interrupted upgrade",
          store_open(&s, dir, STORE_READONLY, 0, err, sizeof err) < 0 && strstr(err, "interrupted") != NULL);
    s = open_rw(dir, 0);
    CHECK("upgrade: read-write open finishes it", s != NULL && get_user(s, "user_7", &u));
    CHECK("upgrade: counted once", s != NULL && store_get_stats(s, &st, err, sizeof err) == 0 && st.users == 6);
    store_close(s);
}

/* The allow list and triage records, written by a second process with
 * STORE_SIDE_WRITER while this one holds the store read-write (as the CLI beside
 * serve), then read in this process's write transaction (as the engine does). */
static void test_allow_side_writer(void)
{
    char dir[256], err[UTIL_ERRLEN];
    new_dir(dir, sizeof dir);
    store *s = open_rw(dir, 0);
    CHECK("allow: the serving store opens", s != NULL);
    if (s == NULL)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        store *w = NULL;
        store_txn *t = NULL;
        store_allow_entry net = {.kind = STORE_KEY_IP, .value = "203.0.113.0/24", .note = "office"};
        store_allow_entry user = {.rule = "r1", .kind = STORE_KEY_USER, .value = "user_1", .note = "svc"};
        store_allow_entry v6 = {.kind = STORE_KEY_IP, .value = "2001:db8::/32", .expires_ms = 1000};
        store_triage tr = {.alert_id = "alr_1", .state = STORE_STATE_FP, .by = "ana", .at_ms = 5, .note = "n"};
        int ok = store_open(&w, dir, STORE_SIDE_WRITER, 0, err, sizeof err) == 0 &&
                 store_txn_begin(w, &t, err, sizeof err) == 0 && store_txn_allow_put(t, &net, err, sizeof err) == 0 &&
                 store_txn_allow_put(t, &user, err, sizeof err) == 0 &&
                 store_txn_allow_put(t, &v6, err, sizeof err) == 0 &&
                 store_txn_triage_put(t, &tr, err, sizeof err) == 0 && store_txn_commit(t, err, sizeof err) == 0;
        if (!ok)
            printf("side writer: %s\n", err);
        store_close(w);
        _exit(ok ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK("allow: a side writer writes beside the holder of veille.lock", WIFEXITED(status) && WEXITSTATUS(status) == 0);
    store_txn *t = NULL;
    bool a[8] = {0};
    store_allow_entry m = {0};
    if (store_txn_begin(s, &t, err, sizeof err) == 0) {
        store_txn_allowed(t, "any", STORE_KEY_IP, "203.0.113.7", 0, &a[0], &m, err, sizeof err);
        store_txn_allowed(t, "any", STORE_KEY_IP, "203.0.114.7", 0, &a[1], NULL, err, sizeof err);
        store_txn_allowed(t, "r1", STORE_KEY_USER, "user_1", 0, &a[2], NULL, err, sizeof err);
        store_txn_allowed(t, "r2", STORE_KEY_USER, "user_1", 0, &a[3], NULL, err, sizeof err);
        store_txn_allowed(t, "r1", STORE_KEY_IP, "2001:db8:ffff::1", 999, &a[4], NULL, err, sizeof err);
        store_txn_allowed(t, "r1", STORE_KEY_IP, "2001:db8:ffff::1", 1000, &a[5], NULL, err, sizeof err);
        store_txn_allowed(t, "r1", STORE_KEY_IP, "2001:db9::1", 0, &a[6], NULL, err, sizeof err);
        store_txn_allowed(t, "r1", STORE_KEY_USER, "203.0.113.7", 0, &a[7], NULL, err, sizeof err);
        store_txn_abort(t);
    }
    CHECK("allow: an address in a CIDR, for every rule", a[0] && strcmp(m.note, "office") == 0);
    CHECK("allow: an address outside it", !a[1]);
    CHECK("allow: a user for its rule only", a[2] && !a[3]);
    CHECK("allow: IPv6 CIDR until it expires", a[4] && !a[5] && !a[6]);
    CHECK("allow: an ip entry never covers a user key", !a[7]);
    store_triage tr;
    bool found = false;
    CHECK("triage: the side writer's record reads back",
          store_triage_get(s, "alr_1", &tr, &found, err, sizeof err) == 0 && found && tr.state == STORE_STATE_FP &&
              strcmp(tr.by, "ana") == 0);
    CHECK("triage: an alert without a record is open",
          store_triage_get(s, "alr_2", &tr, &found, err, sizeof err) == 0 && !found);
    CHECK("triage: state names round trip", store_state_parse("acked") == STORE_STATE_ACKED &&
                                                strcmp(store_state_name(STORE_STATE_FP), "fp") == 0 &&
                                                store_state_parse("closed") < 0 && store_state_name(9) == NULL);
    CHECK("allow: bad values are refused", store_allow_check(STORE_KEY_IP, "10.0.0.0/33", err, sizeof err) < 0 &&
                                               store_allow_check(STORE_KEY_IP, "host", err, sizeof err) < 0 &&
                                               store_allow_check(STORE_KEY_USER, "", err, sizeof err) < 0 &&
                                               store_allow_check(STORE_KEY_IP, "::1", err, sizeof err) == 0);
    store_close(s);
    char missing[256];
    new_dir(missing, sizeof missing);
    store *w = NULL;
    CHECK("side writer: a missing store is not created",
          store_open(&w, missing, STORE_SIDE_WRITER, 0, err, sizeof err) == STORE_ERR_MISSING &&
              access(missing, F_OK) != 0);
}

int main(void)
{
    snprintf(tmproot, sizeof tmproot, "/tmp/veille-test-store-XXXXXX");
    if (mkdtemp(tmproot) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char dir[256];
    new_dir(dir, sizeof dir);
    store *s = open_rw(dir, 0);
    CHECK("open creates the directory", s != NULL && access(dir, F_OK) == 0);
    if (s != NULL) {
        test_user_round_trip(s);
        test_newest_wins(s);
        test_tombstone(s);
        test_placeholder(s);
        test_history(s);
        test_deliveries(s);
        test_readonly_concurrent(s, dir);
        store_close(s);
        char err[UTIL_ERRLEN];
        s = NULL;
        event_user u;
        CHECK("reopen keeps data", store_open(&s, dir, 0, 0, err, sizeof err) == 0 && get_user(s, "user_rt", &u));
        store_close(s);
    }
    store_close(NULL);
    test_missing();
    test_stats_prune();
    test_map_full();
    test_corrupt_and_schema();
    test_codec();
    test_event_record();
    test_history_oldest_first();
    test_lock();
    test_damaged();
    test_pages_per_event();
    test_unchanged_not_rewritten();
    test_users_layout_and_upgrade();
    test_allow_side_writer();

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmproot);
    if (system(cmd) != 0)
        printf("could not remove %s\n", tmproot);
    return check_summary();
}
