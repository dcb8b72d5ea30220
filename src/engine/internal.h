/*
 * internal.h (private to src/engine): the evaluation context shared by the
 * expression evaluator (engine.c) and the window functions (functions.c).
 */
#ifndef VEILLE_ENGINE_INTERNAL_H
#define VEILLE_ENGINE_INTERNAL_H

#include "device/device.h"
#include "engine/engine.h"

typedef enum { V_NULL, V_NUM, V_DUR, V_STR, V_BOOL } value_kind;

typedef struct {
    value_kind k;
    double num;
    int64_t ms;
    const char *str;
    bool b;
    bool at_least; /* a count whose read stopped once the comparison was decided */
    bool bounded;  /* the read hit ENGINE_SCAN_MAX */
} value;

#define ENGINE_CACHE_MAX 32
#define ENGINE_SNAPSHOT_MAX 16 /* newest records of a key read once per event */

/* The newest records of the user up to the event's time, decoded once per
 * event and shared by every window read it covers: most users have few events,
 * and then one scan serves every rule. */
typedef struct {
    bool loaded;
    bool complete;   /* holds every record of the key up to t */
    size_t n;        /* newest first */
    store_history_entry e[ENGINE_SNAPSHOT_MAX];
} key_snapshot;

/* One window function result, reused by every rule of the event that asks the
 * same question of the same key. */
typedef struct {
    char kind;
    rules_func func;
    int arg;         /* field or event type, -1 when none */
    int64_t dur_ms;
    size_t cap;
    value v;
    char str[160];   /* travel: where the previous sign-in was */
} cache_entry;

/* risk(): one feature's contribution, for the evidence (risk.c) */
#define ENGINE_RISK_LEVELS 7
typedef struct {
    char name[32];
    char text[160];
} engine_risk_why;

typedef struct {
    store_txn *t;
    const event_t *ev;
    int64_t at;           /* the event's time */
    bool explain;
    /* the rule being run */
    const rules_rule *rule;
    char kind;            /* STORE_KEY_USER / STORE_KEY_IP */
    const char *key;
    /* what the location database says of the event's IP, looked up once per event */
    ipintel *ipdb;
    ipintel_info ipinfo;
    /* user record, read once per event */
    bool user_loaded, user_found;
    event_user user;
    /* evidence of the rule being run */
    store_evidence evidence[STORE_EVIDENCE_MAX];
    const rules_expr *evidence_src[STORE_EVIDENCE_MAX]; /* a call whose name is rendered later */
    bool evidence_bounded[STORE_EVIDENCE_MAX];
    size_t n_evidence;
    cache_entry cache[ENGINE_CACHE_MAX];
    size_t n_cache;
    uint64_t bounded_reads;
    key_snapshot *snap_user;
    /* the user agent read by uap-core (NULL parser: the rules read no device) */
    device_parser *ua;
    device_info ua_event;              /* the event's, parsed once per event */
    char device_key[DEVICE_KEY_MAX];   /* its device key */
    device_info ua_entry;              /* scratch of entry_field: a history record's */
    char entry_device_key[DEVICE_KEY_MAX];
    /* scratch sets of the window functions, reused: cleared by generation */
    struct hset *set_a, *set_b;
    /* risk(): its settings (engine_set_risk) and the last score's contributions */
    int64_t risk_history_ms;
    uint64_t risk_min_history;
    engine_risk_why risk_why[2];
    size_t n_risk_why;
    char *err;
    size_t errlen;
} eval_ctx;

int engine_scratch_init(eval_ctx *c);
void engine_scratch_free(eval_ctx *c);
/* Forget the key snapshots: called once per event. */
void engine_snapshots_reset(eval_ctx *c);

/* The event's IP for the location database: latest_activity's, else the
 * request's client_ip. */
const char *engine_event_ip(const event_t *ev);

/* The current event's value of a string field ("" when it has none). */
const char *engine_event_field(const eval_ctx *c, rules_field f);

/* Evaluate one window-function call. cap > 0: the caller only needs to know
 * whether a count reaches cap. *v is V_NULL when the value does not exist.
 * prev_where (may be NULL, >= 160 bytes) receives travel's previous location. */
int engine_call(eval_ctx *c, const rules_expr *call, size_t cap, value *v, char *prev_where);

/* risk() of the event for its user (risk.c): V_NULL below the minimum
 * history; fills c->risk_why. */
int engine_risk(eval_ctx *c, value *v);
/* After the rules: count a sign-in's values for later risk() reads. */
int engine_risk_record(eval_ctx *c);

#endif
