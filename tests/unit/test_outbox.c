/* test_outbox.c: the store's outbox, the durable queue of the remote sinks:
 * adding, settling (delivered, retry, dead), due order and bounds, pruning of
 * dead entries, read-only access and aborted transactions, on a real LMDB store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "store/store.h"
#include "util/util.h"

static char tmproot[64];
static int dir_seq;
static char err[UTIL_ERRLEN];

/* Sink ids: pairs next to each other, so that one sink's keys follow
 * another's, as with any two of veille's hashed ids. */
#define SINK_A 0x1000ULL
#define SINK_B 0x1001ULL
#define SINK_C 0x2000ULL
#define SINK_D 0x2001ULL
#define SINK_U 0x3000ULL
#define SINK_N 0x4000ULL

static void new_dir(char *buf, size_t len)
{
    snprintf(buf, len, "%s/s%d", tmproot, ++dir_seq);
}

static store *open_rw(const char *dir)
{
    store *s = NULL;
    if (store_open(&s, dir, 0, 0, err, sizeof err) < 0) {
        printf("store_open %s: %s\n", dir, err);
        return NULL;
    }
    return s;
}

/* raised_ms is when the alert entered the outbox (its queued_ms). */
static store_alert make_alert(const char *id, const char *rule, const char *severity, int64_t raised_ms)
{
    store_alert a;
    memset(&a, 0, sizeof a);
    snprintf(a.id, sizeof a.id, "%s", id);
    snprintf(a.rule, sizeof a.rule, "%s", rule);
    snprintf(a.severity, sizeof a.severity, "%s", severity);
    snprintf(a.key, sizeof a.key, "user:user_1");
    snprintf(a.user_id, sizeof a.user_id, "user_1");
    snprintf(a.ip, sizeof a.ip, "2001:db8::7");
    snprintf(a.session_id, sizeof a.session_id, "sess_1");
    snprintf(a.event_id, sizeof a.event_id, "msg_%s", id);
    a.event_type = EVENT_SESSION_CREATED;
    a.at_ms = raised_ms > 100 ? raised_ms - 100 : raised_ms; /* the event came a little before */
    a.raised_ms = raised_ms;
    snprintf(a.summary, sizeof a.summary, "7 sign-ins in 10 minutes \xc3\xa0 Paris");
    a.n_evidence = 3;
    snprintf(a.evidence[0].name, sizeof a.evidence[0].name, "count(session.created, 10m)");
    a.evidence[0].kind = STORE_EVIDENCE_NUMBER;
    a.evidence[0].num = 7;
    a.evidence[0].at_least = true;
    snprintf(a.evidence[1].name, sizeof a.evidence[1].name, "country");
    a.evidence[1].kind = STORE_EVIDENCE_STRING;
    snprintf(a.evidence[1].str, sizeof a.evidence[1].str, "FR");
    snprintf(a.evidence[2].name, sizeof a.evidence[2].name, "is_mobile");
    a.evidence[2].kind = STORE_EVIDENCE_BOOL;
    a.evidence[2].b = true;
    a.n_tags = 2;
    snprintf(a.tags[0], sizeof a.tags[0], "brute-force");
    snprintf(a.tags[1], sizeof a.tags[1], "T1110");
    return a;
}

/* One committed transaction storing a (when store_alert) and queueing it for sink,
 * as the committer does. */
static int add2(store *s, uint64_t sink, const char *label, const store_alert *a, bool store_alert_too)
{
    store_txn *t = NULL;
    int rc = store_txn_begin(s, &t, err, sizeof err);
    if (rc == 0) {
        if (store_alert_too)
            rc = store_txn_alert_add(t, a, false, err, sizeof err);
        if (rc == 0)
            rc = store_txn_outbox_add(t, sink, label, a, err, sizeof err);
        if (rc < 0)
            store_txn_abort(t);
        else
            rc = store_txn_commit(t, err, sizeof err);
    }
    if (rc < 0)
        printf("outbox add %s: %s\n", a->id, err);
    return rc;
}

static int add(store *s, uint64_t sink, const char *label, const store_alert *a)
{
    return add2(s, sink, label, a, true);
}

/* One committed transaction settling e. */
static int settle(store *s, const store_outbox_entry *e, store_outbox_result r, int64_t next, int64_t now,
                  const char *error, bool *was_pending)
{
    store_txn *t = NULL;
    int rc = store_txn_begin(s, &t, err, sizeof err);
    if (rc == 0) {
        rc = store_txn_outbox_settle(t, e, r, next, now, error, was_pending, err, sizeof err);
        if (rc < 0)
            store_txn_abort(t);
        else
            rc = store_txn_commit(t, err, sizeof err);
    }
    if (rc < 0)
        printf("outbox settle %s: %s\n", e->alert_id, err);
    return rc;
}

#define MAXC 16
typedef struct {
    int n;
    store_outbox_entry e[MAXC];
    bool has_alert[MAXC];
    char ids[MAXC][STORE_ALERT_ID_MAX]; /* the nested alert's id, "" when none */
    store_alert first;                  /* the nested alert of the first entry */
    int stop_after;                     /* 0 = never */
    int rc;                             /* what the scan returned */
    int64_t next_due;
} collect;

static int collect_cb(const store_outbox_entry *e, const store_alert *a, void *ctx)
{
    collect *c = ctx;
    if (c->n == 0 && a != NULL)
        c->first = *a;
    if (c->n < MAXC) {
        c->e[c->n] = *e;
        c->has_alert[c->n] = a != NULL;
        snprintf(c->ids[c->n], sizeof c->ids[0], "%s", a != NULL ? a->id : "");
    }
    c->n++;
    return c->stop_after != 0 && c->n >= c->stop_after;
}

static collect *due(store *s, uint64_t sink, int64_t due_by, int stop_after)
{
    static collect c;
    memset(&c, 0, sizeof c);
    c.stop_after = stop_after;
    c.next_due = -42;
    c.rc = store_outbox_due(s, sink, due_by, collect_cb, &c, &c.next_due, err, sizeof err);
    if (c.rc < 0)
        printf("outbox due: %s\n", err);
    return &c;
}

static collect *list(store *s, bool with_dead)
{
    static collect c;
    memset(&c, 0, sizeof c);
    c.rc = store_outbox_list(s, with_dead, collect_cb, &c, err, sizeof err);
    if (c.rc < 0)
        printf("outbox list: %s\n", err);
    return &c;
}

static uint64_t pending(store *s, uint64_t sink)
{
    uint64_t n = 999;
    if (store_outbox_pending_count(s, sink, &n, err, sizeof err) < 0) {
        printf("pending count: %s\n", err);
        return 999;
    }
    return n;
}

/* The index of the entry of alert id in c, -1 when absent. */
static int find(const collect *c, const char *id)
{
    for (int i = 0; i < c->n && i < MAXC; i++)
        if (strcmp(c->e[i].alert_id, id) == 0)
            return i;
    return -1;
}

/* How many entries of c are for alert id. */
static int count_of(const collect *c, const char *id)
{
    int n = 0;
    for (int i = 0; i < c->n && i < MAXC; i++)
        n += strcmp(c->e[i].alert_id, id) == 0;
    return n;
}

/* The pending entry of alert id for sink, as the deliverer reads it. */
static bool pending_entry(store *s, uint64_t sink, const char *id, store_outbox_entry *out)
{
    collect *c = due(s, sink, INT64_MAX, 0);
    int i = find(c, id);
    if (c->rc < 0 || i < 0) {
        printf("no pending entry for %s\n", id);
        memset(out, 0, sizeof *out);
        return false;
    }
    *out = c->e[i];
    return true;
}

static bool same_alert(const store_alert *x, const store_alert *y)
{
    if (strcmp(x->id, y->id) != 0 || strcmp(x->rule, y->rule) != 0 || strcmp(x->severity, y->severity) != 0 ||
        strcmp(x->key, y->key) != 0 || strcmp(x->user_id, y->user_id) != 0 || strcmp(x->ip, y->ip) != 0 ||
        strcmp(x->session_id, y->session_id) != 0 || strcmp(x->event_id, y->event_id) != 0 ||
        x->event_type != y->event_type || x->at_ms != y->at_ms || x->raised_ms != y->raised_ms ||
        strcmp(x->summary, y->summary) != 0 || x->n_evidence != y->n_evidence || x->n_tags != y->n_tags)
        return false;
    for (size_t i = 0; i < x->n_evidence; i++) {
        const store_evidence *a = &x->evidence[i], *b = &y->evidence[i];
        if (strcmp(a->name, b->name) != 0 || a->kind != b->kind || a->at_least != b->at_least)
            return false;
        if (a->kind == STORE_EVIDENCE_NUMBER && a->num != b->num)
            return false;
        if (a->kind == STORE_EVIDENCE_BOOL && a->b != b->b)
            return false;
        if (a->kind == STORE_EVIDENCE_STRING && strcmp(a->str, b->str) != 0)
            return false;
    }
    for (size_t i = 0; i < x->n_tags; i++)
        if (strcmp(x->tags[i], y->tags[i]) != 0)
            return false;
    return true;
}

/* ---- tests ---- */

#define ID_A "alr_000000000000000000000001"
#define ID_B "alr_000000000000000000000002"

static void test_add_due(store *s)
{
    store_alert a = make_alert(ID_A, "brute_force", "high", 1000);
    CHECK("add: empty store has nothing due", due(s, SINK_A, INT64_MAX, 0)->n == 0 && pending(s, SINK_A) == 0);
    CHECK("add: empty store lists nothing", list(s, true)->n == 0);
    CHECK("add: commits", add(s, SINK_A, "webhook:https://soar.example.com/in", &a) == 0);
    collect *c = due(s, SINK_A, 1000, 0);
    CHECK("add: due at once", c->rc == 0 && c->n == 1);
    CHECK("add: nothing after it, next_due 0", c->next_due == 0);
    CHECK("add: sink label", strcmp(c->e[0].sink, "webhook:https://soar.example.com/in") == 0);
    CHECK("add: sink id", c->e[0].sink_id == SINK_A);
    CHECK("add: alert id", strcmp(c->e[0].alert_id, ID_A) == 0);
    CHECK("add: queued_ms is the alert's raised_ms", c->e[0].queued_ms == 1000);
    CHECK("add: next_ms is the queue time", c->e[0].next_ms == 1000);
    CHECK("add: attempts 0", c->e[0].attempts == 0);
    CHECK("add: not dead", c->e[0].dead_ms == 0);
    CHECK("add: no last error", c->e[0].last_error[0] == '\0');
    CHECK("add: the alert comes with it", c->has_alert[0] && strcmp(c->ids[0], ID_A) == 0);
    CHECK("add: nested alert round-trips", same_alert(&c->first, &a));
    CHECK("add: nested alert rule", strcmp(c->first.rule, "brute_force") == 0);
    CHECK("add: nested alert severity", strcmp(c->first.severity, "high") == 0);
    CHECK("add: nested evidence", c->first.n_evidence == 3 &&
                                      strcmp(c->first.evidence[0].name, "count(session.created, 10m)") == 0 &&
                                      c->first.evidence[0].kind == STORE_EVIDENCE_NUMBER &&
                                      c->first.evidence[0].num == 7 && c->first.evidence[0].at_least &&
                                      c->first.evidence[1].kind == STORE_EVIDENCE_STRING &&
                                      strcmp(c->first.evidence[1].str, "FR") == 0 &&
                                      c->first.evidence[2].kind == STORE_EVIDENCE_BOOL && c->first.evidence[2].b);
    CHECK("add: nested tags", c->first.n_tags == 2 && strcmp(c->first.tags[0], "brute-force") == 0 &&
                                  strcmp(c->first.tags[1], "T1110") == 0);
    c = due(s, SINK_A, 999, 0);
    CHECK("add: not due before its time", c->rc == 0 && c->n == 0);
    CHECK("add: next_due tells when", c->next_due == 1000);
    CHECK("add: pending count 1", pending(s, SINK_A) == 1);
    CHECK("add: other sink empty", due(s, SINK_B, INT64_MAX, 0)->n == 0 && pending(s, SINK_B) == 0);
    CHECK("add: listed", list(s, false)->n == 1);

    /* the same alert again for the same sink: one entry */
    CHECK("add twice: commits", add(s, SINK_A, "webhook:https://soar.example.com/in", &a) == 0);
    c = due(s, SINK_A, INT64_MAX, 0);
    CHECK("add twice: one entry", c->n == 1 && pending(s, SINK_A) == 1);
    CHECK("add twice: unchanged", c->e[0].queued_ms == 1000 && c->e[0].next_ms == 1000 && c->e[0].attempts == 0);

    /* the same alert for another sink: a queue of its own */
    CHECK("two sinks: add to B", add(s, SINK_B, "syslog+tcp://logs:6514", &a) == 0);
    c = due(s, SINK_B, INT64_MAX, 0);
    CHECK("two sinks: B has it, with B's label", c->n == 1 && strcmp(c->e[0].sink, "syslog+tcp://logs:6514") == 0 &&
                                                     c->e[0].sink_id == SINK_B && strcmp(c->e[0].alert_id, ID_A) == 0);
    CHECK("two sinks: A's label unchanged", strcmp(due(s, SINK_A, INT64_MAX, 0)->e[0].sink,
                                                   "webhook:https://soar.example.com/in") == 0);
    CHECK("two sinks: A still one", pending(s, SINK_A) == 1 && due(s, SINK_A, INT64_MAX, 0)->n == 1);
    store_alert b = make_alert(ID_B, "new_country", "medium", 1200);
    CHECK("two sinks: second alert to B", add(s, SINK_B, "syslog+tcp://logs:6514", &b) == 0);
    CHECK("two sinks: B two, A one", pending(s, SINK_B) == 2 && pending(s, SINK_A) == 1);
    c = due(s, SINK_A, INT64_MAX, 0);
    CHECK("two sinks: A's scan stops at B's keys", c->n == 1 && c->e[0].sink_id == SINK_A && c->next_due == 0);
    c = due(s, SINK_B, INT64_MAX, 0);
    CHECK("two sinks: B's scan sees its two", c->n == 2 && c->e[0].sink_id == SINK_B && c->e[1].sink_id == SINK_B &&
                                                  find(c, ID_A) == 0 && find(c, ID_B) == 1);
    CHECK("two sinks: each entry with its own alert", strcmp(c->ids[0], ID_A) == 0 && strcmp(c->ids[1], ID_B) == 0);
    CHECK("two sinks: list shows all three", list(s, false)->n == 3);

    /* an alert without raised_ms is queued now */
    store_alert u = make_alert("alr_00000000000000000000u001", "rule_u", "low", 0);
    int64_t before = util_now_ms();
    CHECK("unset raised_ms: add", add(s, SINK_U, "syslog", &u) == 0);
    int64_t after = util_now_ms();
    c = due(s, SINK_U, INT64_MAX, 0);
    CHECK("unset raised_ms: queued at now", c->n == 1 && c->e[0].queued_ms >= before && c->e[0].queued_ms <= after &&
                                                c->e[0].next_ms == c->e[0].queued_ms);
    bool was = false;
    CHECK("unset raised_ms: settles", c->n == 1 && settle(s, &c->e[0], STORE_OUTBOX_DELIVERED, 0, after, NULL, &was) ==
                                                       0 && was && pending(s, SINK_U) == 0);

    /* queueing it again after a failed attempt (rescheduled at the same time)
     * keeps that attempt's state */
    store_alert r = make_alert("alr_00000000000000000000r001", "rule_r", "low", 2000);
    store_outbox_entry re;
    CHECK("add again after an attempt: set up",
          add(s, SINK_U, "syslog", &r) == 0 && pending_entry(s, SINK_U, r.id, &re) &&
              settle(s, &re, STORE_OUTBOX_RETRY, 2000, 2100, "refused", &was) == 0 && was);
    CHECK("add again after an attempt: commits", add(s, SINK_U, "syslog", &r) == 0);
    c = due(s, SINK_U, INT64_MAX, 0);
    CHECK("add again after an attempt: one entry, attempt kept",
          c->n == 1 && c->e[0].attempts == 1 && strcmp(c->e[0].last_error, "refused") == 0 && pending(s, SINK_U) == 1);
    CHECK("add again after an attempt: cleanup",
          c->n == 1 && settle(s, &c->e[0], STORE_OUTBOX_DELIVERED, 0, 2200, NULL, &was) == 0 && was &&
              pending(s, SINK_U) == 0);

    /* an entry whose alert is not (or no longer) in the store comes with a NULL alert */
    store_alert n = make_alert("alr_00000000000000000000n001", "rule_n", "low", 1500);
    CHECK("alert missing: queued", add2(s, SINK_N, "syslog", &n, false) == 0);
    c = due(s, SINK_N, INT64_MAX, 0);
    CHECK("alert missing: entry with a NULL alert", c->rc == 0 && c->n == 1 && !c->has_alert[0] &&
                                                        strcmp(c->e[0].alert_id, n.id) == 0);
    CHECK("alert missing: cleanup", c->n == 1 && settle(s, &c->e[0], STORE_OUTBOX_DELIVERED, 0, 1, NULL, &was) == 0 &&
                                        was && pending(s, SINK_N) == 0);
}

static void test_retry(store *s)
{
    store_outbox_entry e, e2;
    bool was = false;
    CHECK("retry: entry read", pending_entry(s, SINK_A, ID_A, &e));
    CHECK("retry: settle", settle(s, &e, STORE_OUTBOX_RETRY, 5000, 1500, "connect: refused", &was) == 0);
    CHECK("retry: was pending", was);
    collect *c = due(s, SINK_A, 4999, 0);
    CHECK("retry: not due before next_ms", c->rc == 0 && c->n == 0);
    CHECK("retry: next_due is next_ms", c->next_due == 5000);
    c = due(s, SINK_A, 1500, 0);
    CHECK("retry: not due at the old time", c->n == 0 && c->next_due == 5000);
    c = due(s, SINK_A, 5000, 0);
    CHECK("retry: due at next_ms (inclusive)", c->n == 1);
    CHECK("retry: attempts 1", c->e[0].attempts == 1);
    CHECK("retry: last_error kept", strcmp(c->e[0].last_error, "connect: refused") == 0);
    CHECK("retry: next_ms moved", c->e[0].next_ms == 5000);
    CHECK("retry: queued_ms unchanged", c->e[0].queued_ms == 1000);
    CHECK("retry: label unchanged", strcmp(c->e[0].sink, "webhook:https://soar.example.com/in") == 0);
    CHECK("retry: still pending", c->e[0].dead_ms == 0 && pending(s, SINK_A) == 1);
    CHECK("retry: nested alert kept", c->has_alert[0] && strcmp(c->first.rule, "brute_force") == 0 &&
                                          c->first.n_tags == 2);
    CHECK("retry: B untouched", pending(s, SINK_B) == 2 && due(s, SINK_B, 1200, 0)->n == 2);

    /* a second report about the attempt already settled changes nothing */
    was = true;
    CHECK("retry: duplicate report not an error",
          settle(s, &e, STORE_OUTBOX_RETRY, 7000, 1600, "dup", &was) == 0 && !was);
    c = due(s, SINK_A, INT64_MAX, 0);
    CHECK("retry: duplicate report ignored", c->n == 1 && c->e[0].next_ms == 5000 && c->e[0].attempts == 1 &&
                                                 strcmp(c->e[0].last_error, "connect: refused") == 0);
    was = true;
    CHECK("retry: stale DELIVERED report ignored",
          settle(s, &e, STORE_OUTBOX_DELIVERED, 0, 1700, NULL, &was) == 0 && !was && pending(s, SINK_A) == 1);

    CHECK("retry again: entry read", pending_entry(s, SINK_A, ID_A, &e2));
    CHECK("retry again", settle(s, &e2, STORE_OUTBOX_RETRY, 9000, 5000, "HTTP 503", &was) == 0 && was);
    c = due(s, SINK_A, INT64_MAX, 0);
    CHECK("retry again: one entry, attempts 2", c->n == 1 && c->e[0].attempts == 2 && c->e[0].next_ms == 9000);
    CHECK("retry again: newest error", strcmp(c->e[0].last_error, "HTTP 503") == 0);
    CHECK("retry again: one index key", pending(s, SINK_A) == 1 && due(s, SINK_A, 8999, 0)->n == 0);
    /* an earlier time than now is allowed: due from then */
    CHECK("retry: entry read once more", pending_entry(s, SINK_A, ID_A, &e2));
    CHECK("retry: next_ms in the past", settle(s, &e2, STORE_OUTBOX_RETRY, 100, 9500, "x", &was) == 0 && was);
    CHECK("retry: due from next_ms", due(s, SINK_A, 100, 0)->n == 1 && due(s, SINK_A, 99, 0)->n == 0);
}

static void test_delivered(store *s)
{
    store_outbox_entry e;
    bool was = false;
    CHECK("delivered: entry read", pending_entry(s, SINK_A, ID_A, &e));
    CHECK("delivered: settle", settle(s, &e, STORE_OUTBOX_DELIVERED, 0, 10000, NULL, &was) == 0 && was);
    CHECK("delivered: gone from due", due(s, SINK_A, INT64_MAX, 0)->n == 0);
    CHECK("delivered: pending 0", pending(s, SINK_A) == 0);
    collect *c = list(s, true);
    CHECK("delivered: not listed, even with dead", c->rc == 0 && c->n == 2 && find(c, ID_A) >= 0 &&
                                                       c->e[find(c, ID_A)].sink_id == SINK_B);
    was = true;
    CHECK("delivered again: not an error", settle(s, &e, STORE_OUTBOX_DELIVERED, 0, 11000, NULL, &was) == 0);
    CHECK("delivered again: was_pending false", !was);
    was = true;
    CHECK("retry after delivered: not an error",
          settle(s, &e, STORE_OUTBOX_RETRY, 12000, 11000, "late report", &was) == 0 && !was);
    CHECK("retry after delivered: does not bring it back",
          due(s, SINK_A, INT64_MAX, 0)->n == 0 && pending(s, SINK_A) == 0);
    was = true;
    CHECK("dead after delivered: nothing", settle(s, &e, STORE_OUTBOX_DEAD, 0, 11000, "x", &was) == 0 && !was &&
                                               list(s, true)->n == 2);
    store_outbox_entry unknown = e;
    snprintf(unknown.alert_id, sizeof unknown.alert_id, "alr_ffffffffffffffffffffffff");
    was = true;
    CHECK("settle unknown id: not an error",
          settle(s, &unknown, STORE_OUTBOX_DELIVERED, 0, 1, NULL, &was) == 0 && !was);
    CHECK("settle NULL was_pending accepted", settle(s, &unknown, STORE_OUTBOX_RETRY, 5, 1, "e", NULL) == 0);
    CHECK("delivered on A left B's copy", pending(s, SINK_B) == 2);
}

static void test_dead(store *s)
{
    store_outbox_entry e;
    bool was = false;
    CHECK("dead: entry read", pending_entry(s, SINK_B, ID_A, &e));
    CHECK("dead: settle", settle(s, &e, STORE_OUTBOX_DEAD, 0, 7000, "HTTP 410 Gone", &was) == 0 && was);
    collect *c = due(s, SINK_B, INT64_MAX, 0);
    CHECK("dead: gone from due", c->n == 1 && find(c, ID_A) < 0 && find(c, ID_B) == 0);
    CHECK("dead: pending count 1", pending(s, SINK_B) == 1);
    c = list(s, false);
    CHECK("dead: not listed without with_dead", c->rc == 0 && c->n == 1 && find(c, ID_A) < 0);
    c = list(s, true);
    int i = find(c, ID_A);
    CHECK("dead: listed with with_dead, after the pending", c->rc == 0 && c->n == 2 && i == 1);
    CHECK("dead: dead_ms set", i >= 0 && c->e[i].dead_ms == 7000);
    CHECK("dead: attempt counted, error kept",
          i >= 0 && c->e[i].attempts == 1 && strcmp(c->e[i].last_error, "HTTP 410 Gone") == 0);
    CHECK("dead: sink and label",
          i >= 0 && c->e[i].sink_id == SINK_B && strcmp(c->e[i].sink, "syslog+tcp://logs:6514") == 0);
    CHECK("dead: queued_ms kept", i >= 0 && c->e[i].queued_ms == 1000);
    CHECK("dead: alert still shown", i >= 0 && c->has_alert[i] && strcmp(c->ids[i], ID_A) == 0);

    was = true;
    CHECK("dead then retry: not an error", settle(s, &e, STORE_OUTBOX_RETRY, 8000, 7500, "again", &was) == 0 && !was);
    was = true;
    CHECK("dead then delivered: not an error",
          settle(s, &e, STORE_OUTBOX_DELIVERED, 0, 7600, NULL, &was) == 0 && !was);
    was = true;
    CHECK("dead then dead: not an error", settle(s, &e, STORE_OUTBOX_DEAD, 0, 7700, "z", &was) == 0 && !was);
    if (i >= 0) {
        store_outbox_entry listed = c->e[i];
        was = true;
        CHECK("dead: settling the listed dead entry does nothing",
              settle(s, &listed, STORE_OUTBOX_RETRY, 8000, 7800, "y", &was) == 0 && !was);
    }
    c = list(s, true);
    i = find(c, ID_A);
    CHECK("dead: stays dead as it was", i >= 0 && c->n == 2 && count_of(c, ID_A) == 1 && c->e[i].dead_ms == 7000 &&
                                            c->e[i].attempts == 1 && strcmp(c->e[i].last_error, "HTTP 410 Gone") == 0);
    CHECK("dead: still not due", due(s, SINK_B, INT64_MAX, 0)->n == 1 && pending(s, SINK_B) == 1);
}

#define ID_C1 "alr_00000000000000000000c001"
#define ID_C2 "alr_00000000000000000000c002"
#define ID_C3 "alr_00000000000000000000c003"
#define ID_C4 "alr_00000000000000000000c004"

static void test_order_and_stop(store *s)
{
    /* ids in an order unrelated to their next tries */
    const char *ids[] = {ID_C1, ID_C2, ID_C3, ID_C4};
    const int64_t next[] = {400, 200, 300, 0}; /* 0: not settled, due at its queue time 100 */
    bool ok = true;
    for (int i = 0; i < 4; i++) {
        store_alert a = make_alert(ids[i], "rule_c", "low", 100);
        ok = ok && add(s, SINK_C, "syslog://c", &a) == 0;
        store_outbox_entry e;
        if (next[i] != 0)
            ok = ok && pending_entry(s, SINK_C, ids[i], &e) &&
                 settle(s, &e, STORE_OUTBOX_RETRY, next[i], 100, "down", NULL) == 0;
    }
    store_alert d = make_alert("alr_00000000000000000000d001", "rule_d", "low", 50);
    ok = ok && add(s, SINK_D, "syslog://d", &d) == 0; /* the next sink's keys, right after C's */
    CHECK("order: set up", ok);
    collect *c = due(s, SINK_C, INT64_MAX, 0);
    CHECK("order: four due", c->rc == 0 && c->n == 4);
    CHECK("order: next try first", c->n == 4 && c->e[0].next_ms == 100 && c->e[1].next_ms == 200 &&
                                       c->e[2].next_ms == 300 && c->e[3].next_ms == 400);
    CHECK("order: by entry", c->n == 4 && strcmp(c->e[0].alert_id, ID_C4) == 0 &&
                                 strcmp(c->e[1].alert_id, ID_C2) == 0 && strcmp(c->e[2].alert_id, ID_C3) == 0 &&
                                 strcmp(c->e[3].alert_id, ID_C1) == 0);
    CHECK("order: each with its own alert", c->n == 4 && strcmp(c->ids[0], ID_C4) == 0 &&
                                                strcmp(c->ids[3], ID_C1) == 0);
    CHECK("order: no other sink's entry", c->next_due == 0);
    c = due(s, SINK_C, 250, 0);
    CHECK("order: due_by cuts", c->n == 2 && c->next_due == 300);
    c = due(s, SINK_C, 300, 0);
    CHECK("order: due_by inclusive", c->n == 3 && c->next_due == 400);

    c = due(s, SINK_C, INT64_MAX, 2);
    CHECK("stop: callback stops after two", c->rc == 0 && c->n == 2);
    CHECK("stop: next_due is the first entry left", c->next_due == 300);
    c = due(s, SINK_C, INT64_MAX, 1);
    CHECK("stop: after one", c->rc == 0 && c->n == 1 && c->next_due == 200);
    c = due(s, SINK_C, INT64_MAX, 4);
    CHECK("stop: on the last entry, next_due 0 (not the next sink's)", c->rc == 0 && c->n == 4 && c->next_due == 0);
    c = due(s, SINK_D, INT64_MAX, 1);
    CHECK("stop: last sink in the store", c->rc == 0 && c->n == 1 && c->next_due == 0);
    c = list(s, true);
    CHECK("list: every entry", c->rc == 0 && c->n == 7);
    int pos[4];
    for (int i = 0; i < 4; i++)
        pos[i] = find(c, ids[i]);
    CHECK("list: pending by next try within a sink",
          pos[3] >= 0 && pos[3] < pos[1] && pos[1] < pos[2] && pos[2] < pos[0]);
    CHECK("list: sinks in order", find(c, ID_B) < pos[3] && pos[0] < find(c, "alr_00000000000000000000d001"));
    CHECK("list: dead ones last", find(c, ID_A) == c->n - 1 && c->e[c->n - 1].dead_ms != 0);
    static collect stop;
    memset(&stop, 0, sizeof stop);
    stop.stop_after = 3;
    CHECK("list: callback stops it", store_outbox_list(s, true, collect_cb, &stop, err, sizeof err) == 0 &&
                                         stop.n == 3);
}

static void test_add_refused(store *s)
{
    store_txn *t = NULL;
    store_alert a = make_alert("", "r", "low", 1);
    bool ok = store_txn_begin(s, &t, err, sizeof err) == 0;
    CHECK("add: empty alert id refused", ok && store_txn_outbox_add(t, SINK_A, "x", &a, err, sizeof err) < 0);
    store_txn_abort(t);
    CHECK("add: nothing left by the refusal", pending(s, SINK_A) == 0);
}

static void test_abort(store *s)
{
    store_txn *t = NULL;
    store_alert a = make_alert("alr_0000000000000000000ab001", "rule_ab", "critical", 20000);
    bool was1 = false, was2 = false, was3 = false;
    uint64_t c_before = pending(s, SINK_C);
    store_outbox_entry c1, c2, queued;
    memset(&queued, 0, sizeof queued);
    queued.sink_id = SINK_A;
    queued.queued_ms = queued.next_ms = 20000;
    snprintf(queued.alert_id, sizeof queued.alert_id, "%s", a.id);
    bool ok = pending_entry(s, SINK_C, ID_C1, &c1) && pending_entry(s, SINK_C, ID_C2, &c2) &&
              store_txn_begin(s, &t, err, sizeof err) == 0;
    ok = ok && store_txn_alert_add(t, &a, false, err, sizeof err) == 0 &&
         store_txn_outbox_add(t, SINK_A, "sink a", &a, err, sizeof err) == 0 &&
         store_txn_outbox_settle(t, &queued, STORE_OUTBOX_RETRY, 30000, 20000, "x", &was1, err, sizeof err) == 0 &&
         store_txn_outbox_settle(t, &c1, STORE_OUTBOX_DELIVERED, 0, 20000, NULL, &was2, err, sizeof err) == 0 &&
         store_txn_outbox_settle(t, &c2, STORE_OUTBOX_DEAD, 0, 20000, "gone", &was3, err, sizeof err) == 0;
    if (!ok)
        printf("abort set-up: %s\n", err);
    store_txn_abort(t);
    CHECK("abort: the transaction did its work", ok && was1 && was2 && was3);
    CHECK("abort: added entry not there", due(s, SINK_A, INT64_MAX, 0)->n == 0 && pending(s, SINK_A) == 0);
    collect *c = due(s, SINK_C, INT64_MAX, 0);
    int i1 = find(c, ID_C1), i2 = find(c, ID_C2);
    CHECK("abort: delivered entry still pending", i1 >= 0 && c->e[i1].next_ms == c1.next_ms &&
                                                      c->e[i1].attempts == c1.attempts);
    CHECK("abort: dead entry still pending", i2 >= 0 && c->e[i2].next_ms == c2.next_ms &&
                                                 c->e[i2].attempts == c2.attempts);
    CHECK("abort: sink C unchanged", pending(s, SINK_C) == c_before && c->n == (int)c_before);
    c = list(s, true);
    CHECK("abort: list unchanged", c->n == 7 && find(c, a.id) < 0);

    /* the same work committed is visible: the abort above is what undid it */
    ok = store_txn_begin(s, &t, err, sizeof err) == 0;
    ok = ok && store_txn_alert_add(t, &a, false, err, sizeof err) == 0 &&
         store_txn_outbox_add(t, SINK_A, "sink a", &a, err, sizeof err) == 0 &&
         store_txn_outbox_settle(t, &queued, STORE_OUTBOX_RETRY, 30000, 20000, "x", &was1, err, sizeof err) == 0;
    if (ok)
        ok = store_txn_commit(t, err, sizeof err) == 0;
    else
        store_txn_abort(t);
    c = due(s, SINK_A, INT64_MAX, 0);
    CHECK("commit: add and retry in one transaction", ok && c->n == 1 && c->e[0].attempts == 1 &&
                                                         c->e[0].next_ms == 30000 && c->e[0].queued_ms == 20000);
    CHECK("commit: cleanup", c->n == 1 && settle(s, &c->e[0], STORE_OUTBOX_DELIVERED, 0, 1, NULL, &was1) == 0 && was1);
}

static void test_readonly(store *s, const char *dir)
{
    int to_child[2], to_parent[2];
    if (pipe(to_child) < 0 || pipe(to_parent) < 0) {
        CHECK("read-only: pipe", 0);
        return;
    }
    uint64_t want_c = pending(s, SINK_C);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(to_child[1]);
        close(to_parent[0]);
        char e[UTIL_ERRLEN] = "", ch = 0;
        store *ro = NULL;
        int code = 0;
        if (store_open(&ro, dir, STORE_READONLY, 0, e, sizeof e) < 0)
            code = 1;
        uint64_t n = 0;
        if (!code && (store_outbox_pending_count(ro, SINK_C, &n, e, sizeof e) < 0 || n != want_c))
            code = 2;
        collect c;
        memset(&c, 0, sizeof c);
        int64_t nd = -1;
        if (!code && (store_outbox_due(ro, SINK_C, INT64_MAX, collect_cb, &c, &nd, e, sizeof e) < 0 ||
                      (uint64_t)c.n != want_c || c.e[0].next_ms != 100 || !c.has_alert[0] ||
                      strcmp(c.e[0].sink, "syslog://c") != 0))
            code = 3;
        memset(&c, 0, sizeof c);
        if (!code && (store_outbox_list(ro, true, collect_cb, &c, e, sizeof e) < 0 || c.n != 7 ||
                      c.e[6].dead_ms != 7000))
            code = 4;
        if (write(to_parent[1], "o", 1) != 1 || read(to_child[0], &ch, 1) != 1)
            code = code ? code : 5;
        memset(&c, 0, sizeof c);
        if (!code && (store_outbox_due(ro, SINK_A, INT64_MAX, collect_cb, &c, &nd, e, sizeof e) < 0 || c.n != 1 ||
                      strcmp(c.e[0].alert_id, "alr_0000000000000000000ro001") != 0 || !c.has_alert[0]))
            code = 6;
        if (code)
            printf("read-only child: code %d: %s\n", code, e);
        store_close(ro);
        _exit(code);
    }
    close(to_child[0]);
    close(to_parent[1]);
    char ch = 0;
    CHECK("read-only: child opened and read", read(to_parent[0], &ch, 1) == 1);
    store_alert a = make_alert("alr_0000000000000000000ro001", "rule_ro", "info", 30000);
    CHECK("read-only: writer adds meanwhile", add(s, SINK_A, "sink a", &a) == 0);
    CHECK("read-only: resume child", write(to_child[1], "g", 1) == 1);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        printf("read-only child status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    CHECK("read-only: same outbox (due, count, list with dead), later commits seen",
          WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(to_child[1]);
    close(to_parent[0]);
    store_outbox_entry e;
    bool was = false;
    CHECK("read-only: cleanup", pending_entry(s, SINK_A, a.id, &e) &&
                                    settle(s, &e, STORE_OUTBOX_DELIVERED, 0, 1, NULL, &was) == 0 && was);
}

static void test_prune(void)
{
    char dir[256];
    new_dir(dir, sizeof dir);
    store *s = open_rw(dir);
    CHECK("prune: open", s != NULL);
    if (s == NULL)
        return;
    const char *spec = "webhook:https://h/x";
    const uint64_t sink = util_digest64(spec, strlen(spec));
    const char *d1 = "alr_000000000000000000000d01", *d2 = "alr_000000000000000000000d02",
               *d3 = "alr_000000000000000000000d03", *d4 = "alr_000000000000000000000d04",
               *p1 = "alr_000000000000000000000p01";
    const char *all[] = {d1, d2, d3, d4, p1};
    const int64_t dead_at[] = {10000, 50000, 40000, 39999, 0};
    bool ok = true;
    for (int i = 0; i < 5; i++) {
        store_alert a = make_alert(all[i], "r", "high", 90000); /* alerts newer than any cutoff below */
        ok = ok && add(s, sink, spec, &a) == 0;
    }
    for (int i = 0; i < 5; i++) {
        store_outbox_entry e;
        ok = ok && pending_entry(s, sink, all[i], &e) &&
             settle(s, &e, dead_at[i] ? STORE_OUTBOX_DEAD : STORE_OUTBOX_RETRY, 160000, dead_at[i] ? dead_at[i] : 10000,
                    "down", NULL) == 0;
    }
    CHECK("prune: set up", ok && pending(s, sink) == 1 && list(s, true)->n == 5);

    store_prune_result r;
    /* now 100000, retention 60000: cutoff 40000; d1 (10000) and d4 (39999) are
     * older, d3 (40000) is at the cutoff */
    CHECK("prune: runs", store_prune(s, 100000, 60000, 0, 100, &r, err, sizeof err) == 0);
    CHECK("prune: two dead entries counted", r.outbox_dead_pruned == 2 && !r.more);
    CHECK("prune: no alert pruned", r.alerts_pruned == 0);
    collect *c = list(s, true);
    CHECK("prune: older dead entry gone", c->rc == 0 && find(c, d1) < 0);
    CHECK("prune: dead entry 1 ms before the cutoff gone", find(c, d4) < 0);
    CHECK("prune: dead entry at the cutoff kept", find(c, d3) >= 0);
    CHECK("prune: newer dead entry kept", find(c, d2) >= 0);
    CHECK("prune: pending entry kept though queued before the cutoff", find(c, p1) >= 0 && pending(s, sink) == 1);
    CHECK("prune: three left", c->n == 3);

    CHECK("prune: again prunes nothing", store_prune(s, 100000, 60000, 0, 100, &r, err, sizeof err) == 0 &&
                                             r.outbox_dead_pruned == 0);
    CHECK("prune: retention 0 disables it", store_prune(s, 1000000, 0, 0, 100, &r, err, sizeof err) == 0 &&
                                                r.outbox_dead_pruned == 0 && list(s, true)->n == 3);
    /* now 150000, retention 60000: cutoff 90000, the alerts (at 89900) go first */
    CHECK("prune: bounded by max_deletes", store_prune(s, 150000, 60000, 0, 6, &r, err, sizeof err) == 0 &&
                                               r.alerts_pruned == 5 && r.outbox_dead_pruned == 1 && r.more);
    CHECK("prune: rest", store_prune(s, 150000, 60000, 0, 100, &r, err, sizeof err) == 0 &&
                             r.outbox_dead_pruned == 1 && !r.more);
    c = list(s, true);
    CHECK("prune: only the pending entry left", c->rc == 0 && c->n == 1 && strcmp(c->e[0].alert_id, p1) == 0 &&
                                                    c->e[0].dead_ms == 0);
    c = due(s, sink, INT64_MAX, 0);
    CHECK("prune: still due, its alert gone with retention", c->rc == 0 && c->n == 1 && c->e[0].next_ms == 160000 &&
                                                                 !c->has_alert[0]);
    store_close(s);

    /* reopening finds the queue again */
    s = open_rw(dir);
    CHECK("reopen: queue found again", s != NULL && pending(s, sink) == 1 && due(s, sink, 160000, 0)->n == 1 &&
                                           strcmp(due(s, sink, 160000, 0)->e[0].sink, spec) == 0);
    store_close(s);
}

int main(void)
{
    snprintf(tmproot, sizeof tmproot, "/tmp/veille-test-outbox-XXXXXX");
    if (mkdtemp(tmproot) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char dir[256];
    new_dir(dir, sizeof dir);
    store *s = open_rw(dir);
    CHECK("open", s != NULL);
    if (s != NULL) {
        test_add_due(s);
        test_retry(s);
        test_delivered(s);
        test_dead(s);
        test_order_and_stop(s);
        test_add_refused(s);
        test_abort(s);
        test_readonly(s, dir);
        store_close(s);
    }
    test_prune();

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmproot);
    if (system(cmd) != 0)
        printf("could not remove %s\n", tmproot);
    return check_summary();
}
