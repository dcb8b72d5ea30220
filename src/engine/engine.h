/*
 * engine.h: the rules engine. Runs a loaded rule set over each stored event,
 * reading its windows inside the write transaction that stored the event, and
 * stores the alerts it raises in that same transaction: an alert commits with
 * the event that caused it, or neither does.
 *
 * Semantics (README.md "Rules" documents them for users):
 *  - Only the rules whose `on` lists the event's type run.
 *  - A window function reads the history of the rule's key (the user, or the IP
 *    for `by ip`) with event times in [t - DUR, t], t the event's own time, so an
 *    out-of-order event is judged against what was stored around its time and
 *    later events are ignored. Both bounds are inclusive.
 *  - "Earlier events" (first_seen, count_known, since_last, travel_*) are the
 *    other events of the window; events at the same millisecond count as earlier.
 *    count_known and travel_* count sign-ins (session.created) only.
 *  - Devices (src/device): when a rule reads ua.* or `device` in a window
 *    function, engine_new loads uap-core's regexes (an error when they are
 *    missing) and every event's user agent is parsed (cached). Each sign-in's
 *    device key then goes into the user's values index after the rules ran
 *    (store_txn_value_put), so first_seen(device) and distinct(device) cost
 *    an index seek. first_seen(device) is false for a user with no device on
 *    record: there is nothing to compare with.
 *  - A comparison with a value that does not exist (travel without a location,
 *    since_last with no previous event, user.age of an unknown user) is false.
 *  - Reads stop as soon as a comparison is decided (count(...) > 5 reads at
 *    most 6 matching events, except from the in-memory snapshot, where they
 *    finish and are exact) and never read more than ENGINE_SCAN_MAX records;
 *    a read cut by that bound is reported in the alert's evidence and counted.
 *  - A match whose key is on the store's allow list (for that rule or all) raises
 *    nothing and is counted (allowed); a disabled rule (`enabled false`) never runs.
 *
 * Ownership: engine_new takes the rules set; engine_free frees both. One thread
 * evaluates at a time (the committer); the counters may be read from another.
 */
#ifndef VEILLE_ENGINE_H
#define VEILLE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event/event.h"
#include "ipintel/ipintel.h"
#include "rules/rules.h"
#include "store/store.h"

#define ENGINE_SCAN_MAX 4096 /* history records one window read may decode */

typedef struct engine engine;

typedef struct {
    uint64_t evaluations; /* events the rule ran on */
    uint64_t matches;     /* of which its condition held */
    uint64_t alerts;      /* of which raised a new alert */
    uint64_t suppressed;  /* of which were folded into an open alert */
    uint64_t bounded;     /* window reads cut at ENGINE_SCAN_MAX */
    uint64_t allowed;     /* matches whose key is on the store's allow list: nothing raised */
} engine_rule_stats;

/* --explain: one rule run on one event, with every window function's value. */
typedef struct {
    const rules_rule *rule;
    const event_t *ev;
    const char *key;          /* "user:ID" / "ip:ADDR" */
    bool matched;
    bool near_miss;           /* not matched only because one `> N` / `>= N` threshold was
                               * missed, with the value at least N/2 (see engine.c) */
    bool suppressed;
    bool allowed;             /* matched, but the key is on the allow list: nothing raised */
    const char *alert_id;     /* raised or folded into; NULL otherwise */
    const store_evidence *values;
    size_t n_values;
} engine_explain;

typedef void (*engine_alert_cb)(const store_alert *a, void *ctx);
typedef void (*engine_explain_cb)(const engine_explain *x, void *ctx);

typedef struct {
    engine_alert_cb on_alert;     /* a new alert, already in the transaction; may be NULL */
    engine_explain_cb on_explain; /* non-NULL turns explain mode on: every function is read fully */
    void *ctx;
} engine_hooks;

/* Takes ownership of rules (also on failure). */
int engine_new(rules_set *rules, engine **out, char *err, size_t errlen);
void engine_free(engine *e); /* NULL is a no-op */
/* The location database the ip fields (asn, as_name, ip.*) and the country
 * fallback read; NULL (the default) leaves them empty, so their comparisons
 * are false, except ip.private, computed without it. Borrowed: db must outlive
 * the engine, and is used from the evaluating thread only (its cache). */
void engine_set_ipintel(engine *e, ipintel *db);
const rules_set *engine_rules(const engine *e);
/* risk(): the user history it reads (--risk-history, ms) and the sign-ins a
 * user needs in it before it has a value (--risk-min-history). */
#define ENGINE_RISK_HISTORY_DEFAULT_MS (180LL * 86400000)
#define ENGINE_RISK_MIN_HISTORY_DEFAULT 5
void engine_set_risk(engine *e, int64_t history_ms, uint64_t min_history);
/* Incidents (store.h): alerts sharing a user or IP within window_ms join one;
 * the sinks get its first alert and then, while it grows, an update at most
 * every update_every_ms of event time (later alerts are stored, not sent). */
#define ENGINE_INCIDENT_WINDOW_DEFAULT_MS (60 * 60 * 1000)
#define ENGINE_INCIDENT_UPDATE_DEFAULT_MS (5 * 60 * 1000)
void engine_set_incidents(engine *e, int64_t window_ms, int64_t update_every_ms);

/* Run the rules on ev, which t has just stored (store_apply_event). now_ms is
 * the wall clock recorded as the alerts' raise time. A negative return is a
 * store error: the caller must abort t (no alert of it survives). */
int engine_eval_event(engine *e, store_txn *t, const event_t *ev, int64_t now_ms, const engine_hooks *hooks,
                      char *err, size_t errlen);

/* After the transaction the evaluations ran in: committed, their counts join
 * the rule counters; aborted (to be retried), they are dropped, so a retried
 * event is not counted twice. */
void engine_settle(engine *e, bool committed);

/* The text of one evidence value: what the alert summary and `replay --explain`
 * print after "NAME = ", so that both always agree. "6"; "at least 6" when the
 * read stopped once the comparison was decided (a lower bound, never ">= 6");
 * "59.999" (seconds) or "5835.5" (km): numbers with ENGINE_EVIDENCE_DIGITS
 * significant digits, the precision the alert's JSON evidence is written with
 * too; "true"/"false"; "none" for a value that does not exist; or the string. */
#define ENGINE_EVIDENCE_DIGITS 15
void engine_evidence_text(const store_evidence *e, char *buf, size_t len);

size_t engine_rule_count(const engine *e);
/* Settled counters of rule i (file order), safe to call while another thread
 * evaluates. */
void engine_rule_stats_at(const engine *e, size_t i, engine_rule_stats *out);

#endif
