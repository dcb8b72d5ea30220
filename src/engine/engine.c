/*
 * engine.c: runs the rules on one event. Picks the rules whose `on` matches,
 * evaluates `when` (short-circuit, with caps so window reads stop once a
 * comparison is decided), then either folds the match into an open alert of
 * the same rule and key (suppression, counted) or stores a new alert, all in
 * the caller's write transaction.
 */
#include "engine/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "util/util.h"

struct engine {
    rules_set *rules;
    size_t n_rules;
    /* rules by event type, file order: what "only the rules whose on matches" costs */
    size_t *by_type[EVENT_TYPE_COUNT];
    size_t n_by_type[EVENT_TYPE_COUNT];
    engine_rule_stats *stats;   /* settled counters: written with atomics, read from any thread */
    engine_rule_stats *pending; /* of the transaction being written; evaluating thread only */
    /* scratch of the evaluating thread, allocated once: large, and needed per event */
    eval_ctx *ctx;
    store_alert *alert;
    store_alert *update;        /* an incident update for the sinks (scratch) */
    store_incident *incident;   /* the incident the last alert joined (scratch) */
    int64_t incident_window_ms, incident_update_ms;
    device_parser *ua; /* loaded when a rule reads a device (expr_reads_devices) */
    ipintel *ipdb;        /* borrowed; NULL: no location database */
    bool *rule_reads_country; /* per rule: its condition reads the event's country */
    bool needs_ipinfo;        /* some rule reads the country or an ip field: look the IP up */
    bool uses_risk;           /* some rule calls risk(): count every sign-in's values (risk.c) */
};

static bool expr_calls_risk(const rules_expr *e)
{
    if (e == NULL)
        return false;
    if (e->kind == RULES_E_CALL && e->func == RULES_FN_RISK)
        return true;
    for (size_t i = 0; i < e->nargs; i++)
        if (expr_calls_risk(e->args[i]))
            return true;
    return false;
}

/* True when e reads a field of the user agent's parse (ua.*, or `device` in a
 * window function). */
static bool expr_reads_devices(const rules_expr *e)
{
    if (e == NULL)
        return false;
    /* named one by one, not as a range: other fields may be added among them */
    static const bool device_field[RULES_F_COUNT] = {
        [RULES_F_UA_BROWSER] = true, [RULES_F_UA_BROWSER_MAJOR] = true, [RULES_F_UA_OS] = true,
        [RULES_F_UA_OS_MAJOR] = true, [RULES_F_UA_DEVICE] = true,      [RULES_F_DEVICE_KEY] = true,
    };
    if (e->kind == RULES_E_FIELD && (unsigned)e->field < RULES_F_COUNT && device_field[e->field])
        return true;
    for (size_t i = 0; i < e->nargs; i++)
        if (expr_reads_devices(e->args[i]))
            return true;
    return false;
}

static bool is_ip_field(rules_field f)
{
    switch (f) {
    case RULES_F_ASN:
    case RULES_F_AS_NAME:
    case RULES_F_IP_COUNTRY:
    case RULES_F_IP_ANONYMOUS_PROXY:
    case RULES_F_IP_SATELLITE:
    case RULES_F_IP_ANYCAST:
    case RULES_F_IP_DROP:
    case RULES_F_IP_PRIVATE: return true;
    default: return false;
    }
}

/* Whether an expression reads the event's country (the field itself, or the
 * travel functions, which locate the event by it) or, with ip_fields, any
 * field of the location database. */
static bool reads_country(const rules_expr *x, bool ip_fields)
{
    if (x == NULL)
        return false;
    if ((x->kind == RULES_E_FIELD && (x->field == RULES_F_COUNTRY || (ip_fields && is_ip_field(x->field)))) ||
        (x->kind == RULES_E_CALL && (x->func == RULES_FN_TRAVEL_KM || x->func == RULES_FN_TRAVEL_KMH)))
        return true;
    for (size_t i = 0; i < x->nargs; i++)
        if (reads_country(x->args[i], ip_fields))
            return true;
    return false;
}

int engine_new(rules_set *rules, engine **out, char *err, size_t errlen)
{
    *out = NULL;
    engine *e = calloc(1, sizeof *e);
    if (e == NULL) {
        rules_free(rules);
        return util_err(err, errlen, "rules: out of memory");
    }
    e->rules = rules;
    e->n_rules = rules_count(rules);
    e->stats = calloc(e->n_rules ? e->n_rules : 1, sizeof *e->stats);
    e->pending = calloc(e->n_rules ? e->n_rules : 1, sizeof *e->pending);
    e->ctx = calloc(1, sizeof *e->ctx);
    e->alert = calloc(1, sizeof *e->alert);
    e->update = calloc(1, sizeof *e->update);
    e->incident = calloc(1, sizeof *e->incident);
    e->incident_window_ms = ENGINE_INCIDENT_WINDOW_DEFAULT_MS;
    e->incident_update_ms = ENGINE_INCIDENT_UPDATE_DEFAULT_MS;
    if (e->update == NULL || e->incident == NULL)
        goto oom;
    e->rule_reads_country = calloc(e->n_rules ? e->n_rules : 1, sizeof *e->rule_reads_country);
    if (e->stats == NULL || e->pending == NULL || e->ctx == NULL || e->alert == NULL || e->rule_reads_country == NULL)
        goto oom;
    for (size_t i = 0; i < e->n_rules; i++) {
        const rules_expr *when = rules_rule_at(rules, i)->when;
        e->rule_reads_country[i] = reads_country(when, false);
        e->needs_ipinfo |= reads_country(when, true);
        e->uses_risk |= expr_calls_risk(when);
    }
    /* risk() reads the ASN and the parsed user agent */
    e->needs_ipinfo |= e->uses_risk;
    e->ctx->risk_history_ms = ENGINE_RISK_HISTORY_DEFAULT_MS;
    e->ctx->risk_min_history = ENGINE_RISK_MIN_HISTORY_DEFAULT;
    if (engine_scratch_init(e->ctx) < 0)
        goto oom;
    bool devices = e->uses_risk;
    for (size_t i = 0; i < e->n_rules && !devices; i++)
        devices = expr_reads_devices(rules_rule_at(rules, i)->when);
    /* 40-100 ms for 1,162 regexes: paid only by rule sets that read devices */
    if (devices && device_parser_new(NULL, DEVICE_CACHE_DEFAULT, &e->ua, err, errlen) < 0) {
        char why[UTIL_ERRLEN];
        snprintf(why, sizeof why, "%s", err);
        engine_free(e);
        return util_err(err, errlen, "rules read devices (ua.*, device or risk()): %s", why);
    }
    e->ctx->ua = e->ua;
    for (int t = 0; t < EVENT_TYPE_COUNT; t++) {
        e->by_type[t] = calloc(e->n_rules ? e->n_rules : 1, sizeof(size_t));
        if (e->by_type[t] == NULL)
            goto oom;
        for (size_t i = 0; i < e->n_rules; i++)
            if ((rules_rule_at(rules, i)->on_mask & (1u << t)) && !rules_rule_at(rules, i)->disabled)
                e->by_type[t][e->n_by_type[t]++] = i;
    }
    *out = e;
    return 0;
oom:
    engine_free(e);
    return util_err(err, errlen, "rules: out of memory");
}

void engine_free(engine *e)
{
    if (e == NULL)
        return;
    for (int t = 0; t < EVENT_TYPE_COUNT; t++)
        free(e->by_type[t]);
    free(e->stats);
    free(e->pending);
    if (e->ctx != NULL)
        engine_scratch_free(e->ctx);
    free(e->ctx);
    free(e->alert);
    free(e->update);
    free(e->incident);
    device_parser_free(e->ua);
    free(e->rule_reads_country);
    rules_free(e->rules);
    free(e);
}

void engine_set_risk(engine *e, int64_t history_ms, uint64_t min_history)
{
    e->ctx->risk_history_ms = history_ms;
    e->ctx->risk_min_history = min_history;
}

const rules_set *engine_rules(const engine *e) { return e->rules; }
void engine_set_ipintel(engine *e, ipintel *db) { e->ipdb = db; }
size_t engine_rule_count(const engine *e) { return e->n_rules; }

void engine_rule_stats_at(const engine *e, size_t i, engine_rule_stats *out)
{
    memset(out, 0, sizeof *out);
    if (i >= e->n_rules)
        return;
    const engine_rule_stats *s = &e->stats[i];
    out->evaluations = __atomic_load_n(&s->evaluations, __ATOMIC_RELAXED);
    out->matches = __atomic_load_n(&s->matches, __ATOMIC_RELAXED);
    out->alerts = __atomic_load_n(&s->alerts, __ATOMIC_RELAXED);
    out->suppressed = __atomic_load_n(&s->suppressed, __ATOMIC_RELAXED);
    out->bounded = __atomic_load_n(&s->bounded, __ATOMIC_RELAXED);
    out->allowed = __atomic_load_n(&s->allowed, __ATOMIC_RELAXED);
}

void engine_settle(engine *e, bool committed)
{
    for (size_t i = 0; i < e->n_rules; i++) {
        engine_rule_stats *p = &e->pending[i], *s = &e->stats[i];
        if (committed) {
            __atomic_fetch_add(&s->evaluations, p->evaluations, __ATOMIC_RELAXED);
            __atomic_fetch_add(&s->matches, p->matches, __ATOMIC_RELAXED);
            __atomic_fetch_add(&s->alerts, p->alerts, __ATOMIC_RELAXED);
            __atomic_fetch_add(&s->suppressed, p->suppressed, __ATOMIC_RELAXED);
            __atomic_fetch_add(&s->bounded, p->bounded, __ATOMIC_RELAXED);
            __atomic_fetch_add(&s->allowed, p->allowed, __ATOMIC_RELAXED);
        }
        memset(p, 0, sizeof *p);
    }
}

#define BUMP(field, n) ((field) += (n))

/* ---- evaluation ---- */

static int load_user(eval_ctx *c)
{
    if (c->user_loaded)
        return 0;
    c->user_loaded = true;
    return store_txn_get_user(c->t, engine_event_field(c, RULES_F_USER_ID), &c->user, &c->user_found, c->err,
                              c->errlen);
}

/* Evidence is recorded on every evaluation but read only when a rule matches
 * (or in explain mode), so a call's name is rendered then, by
 * finish_evidence(): rendering text costs more than most window reads. */
static store_evidence *new_evidence(eval_ctx *c, const char *name, const rules_expr *src, bool bounded)
{
    /* named by name, or by the call it is about (and whether it is the call's
     * value or the note that its read was bounded) */
    for (size_t i = 0; i < c->n_evidence; i++)
        if (c->evidence_bounded[i] == bounded &&
            (src != NULL ? c->evidence_src[i] == src
                         : c->evidence_src[i] == NULL && strcmp(c->evidence[i].name, name) == 0))
            return NULL;
    if (c->n_evidence >= STORE_EVIDENCE_MAX)
        return NULL;
    size_t i = c->n_evidence++;
    store_evidence *e = &c->evidence[i];
    e->name[0] = '\0';
    e->str[0] = '\0';
    e->num = 0;
    e->b = e->at_least = false;
    c->evidence_src[i] = src;
    c->evidence_bounded[i] = bounded;
    if (name != NULL)
        snprintf(e->name, sizeof e->name, "%s", name);
    return e;
}

static void add_evidence(eval_ctx *c, const char *name, const rules_expr *src, const value *v, const char *where)
{
    store_evidence *e = new_evidence(c, name, src, false);
    if (e == NULL)
        return;
    switch (v->k) {
    case V_NULL: e->kind = STORE_EVIDENCE_NULL; break;
    case V_NUM: e->kind = STORE_EVIDENCE_NUMBER; e->num = v->num; break;
    case V_DUR: e->kind = STORE_EVIDENCE_NUMBER; e->num = (double)v->ms / 1000.0; break; /* seconds */
    case V_BOOL: e->kind = STORE_EVIDENCE_BOOL; e->b = v->b; break;
    case V_STR:
        e->kind = STORE_EVIDENCE_STRING;
        util_copy_utf8(e->str, sizeof e->str, v->str, strlen(v->str));
        break;
    }
    e->at_least = v->at_least;
    if (where != NULL && where[0] != '\0' && (e = new_evidence(c, "previous_location", NULL, false)) != NULL) {
        e->kind = STORE_EVIDENCE_STRING;
        util_copy_utf8(e->str, sizeof e->str, where, strlen(where));
    }
    if (v->bounded && src != NULL && (e = new_evidence(c, NULL, src, true)) != NULL) {
        e->kind = STORE_EVIDENCE_NUMBER;
        e->num = ENGINE_SCAN_MAX;
    }
}

/* Render the deferred names; the same call written twice in a rule is kept
 * once, with the best value its reads found: `count(...) > 2 and count(...) < 30`
 * reads the count twice, with caps 3 and 30, and the second read may know the
 * exact value the first only bounded. */
static void finish_evidence(eval_ctx *c)
{
    size_t out = 0;
    for (size_t i = 0; i < c->n_evidence; i++) {
        store_evidence *e = &c->evidence[i];
        if (c->evidence_src[i] != NULL) {
            char text[96];
            rules_expr_text(c->evidence_src[i], text, sizeof text);
            snprintf(e->name, sizeof e->name, "%s%.80s", c->evidence_bounded[i] ? "read_bounded:" : "", text);
        }
        bool dup = false;
        for (size_t k = 0; k < out && !dup; k++) {
            store_evidence *kept = &c->evidence[k];
            dup = strcmp(kept->name, e->name) == 0;
            if (dup && kept->kind == STORE_EVIDENCE_NUMBER && e->kind == STORE_EVIDENCE_NUMBER && kept->at_least &&
                (!e->at_least || e->num > kept->num)) {
                kept->num = e->num;
                kept->at_least = e->at_least;
            }
        }
        if (!dup) {
            if (out != i)
                c->evidence[out] = *e;
            out++;
        }
    }
    c->n_evidence = out;
}

static int call_cached(eval_ctx *c, const rules_expr *call, size_t cap, value *v)
{
    int arg = call->nargs >= 1 ? (call->args[0]->kind == RULES_E_EVTYPE ? (int)call->args[0]->evtype
                                                                         : (int)call->args[0]->field)
                               : -1;
    int64_t dur = call->nargs == 2 ? call->args[1]->ms : 0;
    cache_entry *hit = NULL;
    for (size_t i = 0; i < c->n_cache; i++) {
        cache_entry *ce = &c->cache[i];
        /* an exact value answers any cap; a capped one only the same or a lower cap */
        if (ce->kind == c->kind && ce->func == call->func && ce->arg == arg && ce->dur_ms == dur &&
            (!ce->v.at_least || (cap != 0 && cap <= ce->cap))) {
            hit = ce;
            break;
        }
    }
    char where[160] = "";
    if (hit != NULL) {
        *v = hit->v;
        snprintf(where, sizeof where, "%s", hit->str);
    } else {
        int rc = engine_call(c, call, cap, v, where);
        if (rc < 0)
            return rc;
        if (c->n_cache < ENGINE_CACHE_MAX) {
            cache_entry *ce = &c->cache[c->n_cache++];
            *ce = (cache_entry){.kind = c->kind, .func = call->func, .arg = arg, .dur_ms = dur, .cap = cap, .v = *v};
            snprintf(ce->str, sizeof ce->str, "%s", where);
        }
    }
    add_evidence(c, NULL, call, v, where);
    /* "first_seen(device, 90d) = true" does not say which device: name it */
    if (call->nargs >= 1 && call->args[0]->kind == RULES_E_FIELD && call->args[0]->field == RULES_F_DEVICE_KEY &&
        c->device_key[0] != '\0') {
        value key = {.k = V_STR, .str = c->device_key};
        add_evidence(c, "device_key", NULL, &key, NULL);
    }
    /* risk() = 41.2 does not say why: each feature's value, p, p|u, factor */
    for (size_t i = 0; call->func == RULES_FN_RISK && v->k != V_NULL && i < c->n_risk_why; i++) {
        value why = {.k = V_STR, .str = c->risk_why[i].text};
        add_evidence(c, c->risk_why[i].name, NULL, &why, NULL);
    }
    return 0;
}

static int eval(eval_ctx *c, const rules_expr *e, size_t cap, value *v);

static bool is_count_call(const rules_expr *e)
{
    return e->kind == RULES_E_CALL && e->type == RULES_T_NUMBER && e->func != RULES_FN_TRAVEL_KM &&
           e->func != RULES_FN_TRAVEL_KMH && e->func != RULES_FN_RISK;
}

/* The cap a comparison of a count with the literal n needs: the smallest count
 * from which the comparison's answer no longer changes. `x >= 1` is decided
 * by the first match, `x > 5` by the sixth; == and != by one past n. With the
 * count on the right (`5 < x`) the operator is mirrored first. A capped read
 * reports at least the cap, so the human summary must not show `>= 2` for a
 * rule that asked `>= 1`: the cap is exactly what the rule needed. */
static size_t cap_for(rules_op op, const rules_expr *lit, bool count_on_right)
{
    if (lit->kind != RULES_E_NUMBER || !(lit->num >= 0) || lit->num > 1e9)
        return 0;
    if (count_on_right) {
        static const rules_op mirror[] = {
            [RULES_OP_EQ] = RULES_OP_EQ, [RULES_OP_NE] = RULES_OP_NE, [RULES_OP_LT] = RULES_OP_GT,
            [RULES_OP_LE] = RULES_OP_GE, [RULES_OP_GT] = RULES_OP_LT, [RULES_OP_GE] = RULES_OP_LE,
        };
        op = mirror[op];
    }
    double n = lit->num;
    switch (op) {
    case RULES_OP_GE: /* true from ceil(n) on */
    case RULES_OP_LT: /* false from ceil(n) on */
        return n < 1 ? 1 : (size_t)ceil(n);
    case RULES_OP_GT:
    case RULES_OP_LE:
    case RULES_OP_EQ:
    case RULES_OP_NE: break;
    }
    return (size_t)floor(n) + 1;
}

static bool compare(rules_op op, double a, double b)
{
    switch (op) {
    case RULES_OP_EQ: return a == b;
    case RULES_OP_NE: return a != b;
    case RULES_OP_LT: return a < b;
    case RULES_OP_LE: return a <= b;
    case RULES_OP_GT: return a > b;
    case RULES_OP_GE: return a >= b;
    }
    return false;
}

static int eval_cmp(eval_ctx *c, const rules_expr *e, value *v)
{
    const rules_expr *l = e->args[0], *r = e->args[1];
    size_t lcap = 0, rcap = 0;
    if (!c->explain) {
        if (is_count_call(l))
            lcap = cap_for(e->op, r, false);
        if (is_count_call(r))
            rcap = cap_for(e->op, l, true);
    }
    value a, b;
    int rc = eval(c, l, lcap, &a);
    if (rc == 0)
        rc = eval(c, r, rcap, &b);
    if (rc < 0)
        return rc;
    *v = (value){.k = V_BOOL, .b = false};
    if (a.k == V_NULL || b.k == V_NULL)
        return 0; /* a value that does not exist compares false, never as zero */
    switch (a.k) {
    case V_NUM: v->b = compare(e->op, a.num, b.num); break;
    case V_DUR: v->b = compare(e->op, (double)a.ms, (double)b.ms); break;
    case V_STR: {
        int d = strcmp(a.str, b.str);
        v->b = compare(e->op, (double)(d > 0) - (double)(d < 0), 0);
        break;
    }
    case V_BOOL: v->b = compare(e->op, a.b, b.b); break;
    case V_NULL: break;
    }
    return 0;
}

static int eval_in(eval_ctx *c, const rules_expr *e, value *v)
{
    value a;
    int rc = eval(c, e->args[0], 0, &a);
    if (rc < 0)
        return rc;
    const rules_expr *r = e->args[1];
    *v = (value){.k = V_BOOL, .b = false};
    if (a.k == V_NULL)
        return 0;
    if (r->kind == RULES_E_LISTREF) {
        v->b = r->list->asn ? a.k == V_NUM && a.num >= 1 && a.num <= UINT32_MAX &&
                                  rules_list_contains_asn(r->list, (uint32_t)a.num)
                            : a.k == V_STR && rules_list_contains(r->list, a.str);
        return 0;
    }
    for (size_t i = 0; i < r->nargs && !v->b; i++) {
        const rules_expr *x = r->args[i];
        if (a.k == V_STR && x->kind == RULES_E_STRING)
            v->b = strcmp(a.str, x->str) == 0;
        else if (a.k == V_NUM && x->kind == RULES_E_NUMBER)
            v->b = a.num == x->num;
        else if (a.k == V_DUR && x->kind == RULES_E_DURATION)
            v->b = a.ms == x->ms;
    }
    return 0;
}

static int eval_field_value(eval_ctx *c, rules_field f, value *v);

/* A field's value is evidence too: "user.deleted = true" explains an alert. */
static int eval_field(eval_ctx *c, rules_field f, value *v)
{
    int rc = eval_field_value(c, f, v);
    if (rc == 0)
        add_evidence(c, rules_field_name(f), NULL, v, NULL);
    return rc;
}

/* The location database's fields: missing (comparisons false) without a
 * database or a value; the flags are known for any valid address once a
 * database is open (a private address is none of them). */
static void ip_field_value(const eval_ctx *c, rules_field f, value *v)
{
    const ipintel_info *in = &c->ipinfo;
    bool known = c->ipdb != NULL && in->valid;
    *v = (value){.k = V_NULL};
    switch (f) {
    case RULES_F_ASN:
        if (in->asn != 0)
            *v = (value){.k = V_NUM, .num = in->asn};
        break;
    case RULES_F_AS_NAME:
        if (in->as_name[0] != '\0')
            *v = (value){.k = V_STR, .str = in->as_name};
        break;
    case RULES_F_IP_COUNTRY:
        if (in->country[0] != '\0')
            *v = (value){.k = V_STR, .str = in->country};
        break;
    case RULES_F_IP_ANONYMOUS_PROXY: if (known) *v = (value){.k = V_BOOL, .b = in->anonymous_proxy}; break;
    case RULES_F_IP_SATELLITE: if (known) *v = (value){.k = V_BOOL, .b = in->satellite}; break;
    case RULES_F_IP_ANYCAST: if (known) *v = (value){.k = V_BOOL, .b = in->anycast}; break;
    case RULES_F_IP_DROP: if (known) *v = (value){.k = V_BOOL, .b = in->drop}; break;
    case RULES_F_IP_PRIVATE: if (in->valid) *v = (value){.k = V_BOOL, .b = in->is_private}; break;
    default: break;
    }
}

static int eval_field_value(eval_ctx *c, rules_field f, value *v)
{
    if (is_ip_field(f)) {
        ip_field_value(c, f, v);
        return 0;
    }
    switch (f) {
    case RULES_F_IS_MOBILE:
        *v = (value){.k = V_BOOL, .b = c->ev->session.is_mobile};
        return 0;
    case RULES_F_UA_BROWSER_MAJOR:
    case RULES_F_UA_OS_MAJOR: {
        /* a number when the user agent gives one ("120"); else it does not exist */
        const char *m = f == RULES_F_UA_BROWSER_MAJOR ? c->ua_event.browser_major : c->ua_event.os_major;
        char *end = NULL;
        double x = m[0] >= '0' && m[0] <= '9' ? strtod(m, &end) : 0;
        *v = end != NULL && *end == '\0' ? (value){.k = V_NUM, .num = x} : (value){.k = V_NULL};
        return 0;
    }
    case RULES_F_USER_LOCKED:
    case RULES_F_USER_WAS_LOCKED:
    case RULES_F_USER_WAS_BANNED: {
        int rc = load_user(c);
        if (rc < 0)
            return rc;
        /* The record keeps the state before the update last applied to it
         * (store.c). That is this event's "before" only when this event is
         * that update; otherwise (a session event, a stale update) the event
         * changed nothing and before = now, so `locked and not was_locked`
         * fires once per lockout. */
        const event_user *u = &c->user;
        bool this_update = (c->ev->type == EVENT_USER_CREATED || c->ev->type == EVENT_USER_UPDATED) &&
                           c->user_found && u->updated_at == c->ev->user.updated_at;
        bool b = f == RULES_F_USER_LOCKED       ? u->locked
                 : f == RULES_F_USER_WAS_LOCKED ? (this_update ? u->was_locked : u->locked)
                                                : (this_update ? u->was_banned : u->banned);
        *v = (value){.k = V_BOOL, .b = c->user_found && b};
        return 0;
    }
    case RULES_F_USER_DELETED:
    case RULES_F_USER_BANNED:
    case RULES_F_USER_AGE:
    case RULES_F_USER_EMAIL: {
        int rc = load_user(c);
        if (rc < 0)
            return rc;
        if (f == RULES_F_USER_DELETED)
            *v = (value){.k = V_BOOL, .b = c->user_found && c->user.deleted};
        else if (f == RULES_F_USER_BANNED)
            *v = (value){.k = V_BOOL, .b = c->user_found && c->user.banned};
        else if (f == RULES_F_USER_EMAIL)
            *v = (value){.k = V_STR, .str = c->user.email};
        else if (c->user_found && c->user.created_at > 0)
            *v = (value){.k = V_DUR, .ms = c->at - c->user.created_at};
        else
            *v = (value){.k = V_NULL};
        return 0;
    }
    default:
        *v = (value){.k = V_STR, .str = engine_event_field(c, f)};
        return 0;
    }
}

static int eval(eval_ctx *c, const rules_expr *e, size_t cap, value *v)
{
    int rc = 0;
    value a;
    switch (e->kind) {
    case RULES_E_NUMBER: *v = (value){.k = V_NUM, .num = e->num}; return 0;
    case RULES_E_DURATION: *v = (value){.k = V_DUR, .ms = e->ms}; return 0;
    case RULES_E_STRING: *v = (value){.k = V_STR, .str = e->str}; return 0;
    case RULES_E_BOOL: *v = (value){.k = V_BOOL, .b = e->b}; return 0;
    case RULES_E_FIELD: return eval_field(c, e->field, v);
    case RULES_E_CALL: return call_cached(c, e, cap, v);
    case RULES_E_NOT:
        rc = eval(c, e->args[0], 0, &a);
        *v = (value){.k = V_BOOL, .b = !(a.k == V_BOOL && a.b)};
        return rc;
    case RULES_E_AND:
    case RULES_E_OR: {
        rc = eval(c, e->args[0], 0, &a);
        if (rc < 0)
            return rc;
        bool l = a.k == V_BOOL && a.b;
        bool decided = e->kind == RULES_E_AND ? !l : l;
        if (decided && !c->explain) {
            *v = (value){.k = V_BOOL, .b = l};
            return 0;
        }
        value b;
        rc = eval(c, e->args[1], 0, &b);
        bool r = b.k == V_BOOL && b.b;
        *v = (value){.k = V_BOOL, .b = e->kind == RULES_E_AND ? (l && r) : (l || r)};
        return rc;
    }
    case RULES_E_CMP: return eval_cmp(c, e, v);
    case RULES_E_IN: return eval_in(c, e, v);
    case RULES_E_EVTYPE:
    case RULES_E_LISTLIT:
    case RULES_E_LISTREF:
    case RULES_E_NAME: break;
    }
    return util_err(c->err, c->errlen, "rules: cannot evaluate this expression");
}

/* Near miss (explain only): the condition failed on a threshold alone. Every
 * `and` term at its top level held but one, and that one compares a window
 * function with a number (`> N` or `>= N`) and reached at least half of N:
 * the cases a lower threshold would have turned into alerts. */
static int near_miss(eval_ctx *c, const rules_expr *e, int *failed, bool *threshold)
{
    if (e->kind == RULES_E_AND) {
        int rc = near_miss(c, e->args[0], failed, threshold);
        return rc < 0 ? rc : near_miss(c, e->args[1], failed, threshold);
    }
    value v;
    int rc = eval(c, e, 0, &v);
    if (rc < 0 || (v.k == V_BOOL && v.b))
        return rc;
    (*failed)++;
    const rules_expr *l = e->kind == RULES_E_CMP ? e->args[0] : NULL;
    if (l == NULL || l->kind != RULES_E_CALL || e->args[1]->kind != RULES_E_NUMBER ||
        (e->op != RULES_OP_GT && e->op != RULES_OP_GE))
        return 0;
    value x;
    rc = eval(c, l, 0, &x);
    if (rc == 0 && x.k == V_NUM && x.num > 0 && x.num >= e->args[1]->num / 2)
        *threshold = true;
    return rc;
}

/* ---- alerts ---- */

static void alert_id(const char *rule, const char *key, const char *delivery, char out[STORE_ALERT_ID_MAX])
{
    /* Stable: the same rule, key and delivery always name the same alert, so a
     * sink that receives it twice (at-least-once) can tell. */
    char buf[64 + STORE_ALERT_KEY_MAX + EVENT_ID_MAX];
    int n = snprintf(buf, sizeof buf, "%s%c%s%c%s", rule, 0, key, 0, delivery);
    util_digest_id("alr_", buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1, out,
                   STORE_ALERT_ID_MAX);
}

void engine_evidence_text(const store_evidence *e, char *buf, size_t len)
{
    switch (e->kind) {
    case STORE_EVIDENCE_NULL: snprintf(buf, len, "none"); break;
    case STORE_EVIDENCE_BOOL: snprintf(buf, len, "%s", e->b ? "true" : "false"); break;
    case STORE_EVIDENCE_STRING: snprintf(buf, len, "%s", e->str); break;
    case STORE_EVIDENCE_NUMBER:
        /* %.15g: a duration's milliseconds (59.999 s) and travel's tenth show as
         * they are, where a fixed %.1f rounded 59.999 s up to "60.0" */
        snprintf(buf, len, "%s%.*g", e->at_least ? "at least " : "", ENGINE_EVIDENCE_DIGITS, e->num == 0 ? 0 : e->num);
        break;
    }
}

static void build_alert(eval_ctx *c, const char *key, int64_t now_ms, store_alert *a)
{
    const rules_rule *r = c->rule;
    const event_t *ev = c->ev;
    memset(a, 0, sizeof *a);
    alert_id(r->name, key, ev->delivery_id, a->id);
    snprintf(a->rule, sizeof a->rule, "%s", r->name);
    snprintf(a->severity, sizeof a->severity, "%s", rules_severity_name(r->severity));
    snprintf(a->key, sizeof a->key, "%s", key);
    snprintf(a->user_id, sizeof a->user_id, "%s", engine_event_field(c, RULES_F_USER_ID));
    snprintf(a->ip, sizeof a->ip, "%s", engine_event_field(c, RULES_F_IP));
    snprintf(a->session_id, sizeof a->session_id, "%s", ev->session.session_id);
    snprintf(a->event_id, sizeof a->event_id, "%s", ev->delivery_id);
    snprintf(a->instance_id, sizeof a->instance_id, "%s", ev->instance_id);
    snprintf(a->country, sizeof a->country, "%s", engine_event_field(c, RULES_F_COUNTRY));
    snprintf(a->city, sizeof a->city, "%s", engine_event_field(c, RULES_F_CITY));
    snprintf(a->user_agent, sizeof a->user_agent, "%s", engine_event_field(c, RULES_F_USER_AGENT));
    if (ev->has_user || !event_type_is_session(ev->type))
        snprintf(a->user_name, sizeof a->user_name, "%.*s", (int)sizeof a->user_name - 1,
                 ev->user.username[0] ? ev->user.username : ev->user.email);
    a->event_type = ev->type;
    a->at_ms = c->at;
    a->raised_ms = now_ms;
    memcpy(a->evidence, c->evidence, c->n_evidence * sizeof c->evidence[0]);
    a->n_evidence = c->n_evidence;
    for (size_t i = 0; i < r->n_tags && i < STORE_ALERT_TAGS_MAX; i++)
        snprintf(a->tags[i], sizeof a->tags[i], "%s", r->tags[i]);
    a->n_tags = r->n_tags < STORE_ALERT_TAGS_MAX ? r->n_tags : STORE_ALERT_TAGS_MAX;

    /* One sentence: what the rule says, who, from where, and the numbers. */
    size_t n = 0;
    char *s = a->summary;
    size_t cap = sizeof a->summary;
#define APPEND(...)                                                      \
    do {                                                                 \
        if (n < cap) {                                                   \
            int w_ = snprintf(s + n, cap - n, __VA_ARGS__);              \
            n = w_ < 0 ? cap : n + (size_t)w_;                           \
        }                                                                \
    } while (0)
    if (r->description != NULL)
        APPEND("%s", r->description);
    else
        APPEND("Rule %s matched", r->name);
    APPEND(": %s %s", r->by == RULES_BY_IP ? "IP" : "user", key + (r->by == RULES_BY_IP ? 3 : 5));
    if (r->by == RULES_BY_IP && a->user_id[0])
        APPEND(" (user %s)", a->user_id);
    if (r->by == RULES_BY_USER && a->ip[0])
        APPEND(" from %s", a->ip);
    const char *country = engine_event_field(c, RULES_F_COUNTRY), *city = engine_event_field(c, RULES_F_CITY);
    if (country[0])
        APPEND(" (%s%s%s)", city, city[0] ? ", " : "", country);
    for (size_t i = 0; i < c->n_evidence; i++) {
        char val[176];
        engine_evidence_text(&c->evidence[i], val, sizeof val);
        APPEND("%s%s = %s", i == 0 ? "; " : ", ", c->evidence[i].name, val);
    }
    APPEND(".");
#undef APPEND
    if (n >= cap)
        memcpy(s + cap - 4, "...", 4);
}

/* ---- incidents ---- */

void engine_set_incidents(engine *e, int64_t window_ms, int64_t update_every_ms)
{
    e->incident_window_ms = window_ms;
    e->incident_update_ms = update_every_ms;
}

static int add_user(const char *value, void *ctx)
{
    store_alert *a = ctx;
    if (a->n_users < STORE_ALERT_USERS_MAX)
        snprintf(a->users[a->n_users++], sizeof a->users[0], "%s", value);
    return 0;
}

/* The update the sinks get for a grown incident: stored as an alert record
 * (incident_update set) so the outbox can name it like any alert. */
static void build_update(const store_incident *inc, int64_t now_ms, store_alert *u)
{
    memset(u, 0, sizeof *u);
    char buf[STORE_INCIDENT_ID_MAX + 24];
    int n = snprintf(buf, sizeof buf, "%s%c%lld", inc->id, 0, (long long)inc->count);
    util_digest_id("alr_", buf, n < 0 ? 0 : (size_t)n, u->id, sizeof u->id);
    u->incident_update = true;
    snprintf(u->rule, sizeof u->rule, "incident_update");
    snprintf(u->severity, sizeof u->severity, "%s", inc->severity);
    snprintf(u->key, sizeof u->key, "incident:%s", inc->id);
    snprintf(u->incident_id, sizeof u->incident_id, "%s", inc->id);
    u->event_type = EVENT_UNKNOWN;
    u->at_ms = inc->last_ms;
    u->raised_ms = now_ms;
    for (size_t i = 0; i < inc->n_users && i < STORE_ALERT_USERS_MAX; i++)
        snprintf(u->users[u->n_users++], sizeof u->users[0], "%s", inc->users[i]);
    u->users_total = inc->users_total;
    for (size_t i = 0; i < inc->n_rules && i < STORE_ALERT_TAGS_MAX; i++)
        snprintf(u->tags[u->n_tags++], sizeof u->tags[0], "%s", inc->rules[i]);
    store_evidence *ev = u->evidence;
    size_t k = 0;
    ev[k] = (store_evidence){.name = "count", .kind = STORE_EVIDENCE_NUMBER, .num = (double)inc->count};
    k++;
    ev[k] = (store_evidence){.name = "first_ms", .kind = STORE_EVIDENCE_NUMBER, .num = (double)inc->first_ms};
    k++;
    ev[k] = (store_evidence){.name = "ips_total", .kind = STORE_EVIDENCE_NUMBER, .num = (double)inc->ips_total};
    k++;
    for (size_t i = 0; i < inc->n_ips && k < STORE_EVIDENCE_MAX; i++, k++)
        ev[k] = (store_evidence){.name = "ip", .kind = STORE_EVIDENCE_STRING};
    for (size_t i = 3; i < k; i++)
        snprintf(ev[i].str, sizeof ev[i].str, "%s", inc->ips[i - 3]);
    u->n_evidence = k;
    snprintf(u->summary, sizeof u->summary, "Incident %s grew: %lld alerts (%s), %lld users, %lld IPs.", inc->id,
             (long long)inc->count, inc->severity, (long long)inc->users_total, (long long)inc->ips_total);
}

/* Join a to its incident (a->incident_id), list a by-ip alert's accounts, and
 * prepare e->update when one is due (stored here, sent by the caller). */
static int alert_incident(engine *e, store_txn *t, store_alert *a, int64_t now_ms, store_incident_step *step,
                          char *err, size_t errlen)
{
    if (strncmp(a->key, "ip:", 3) == 0 && a->ip[0]) {
        size_t total = 0;
        int rc = store_txn_value_list(t, STORE_KEY_IP, a->ip, STORE_VALUE_USER, a->at_ms - e->incident_window_ms,
                                      a->at_ms, add_user, a, &total, NULL, err, errlen);
        if (rc < 0)
            return rc;
        a->users_total = (int64_t)total;
    }
    int rc = store_txn_incident_record(t, a, e->incident_window_ms, e->incident_update_ms, e->incident, step, err,
                                       errlen);
    if (rc < 0)
        return rc;
    snprintf(a->incident_id, sizeof a->incident_id, "%s", e->incident->id);
    if (step->update_due) {
        build_update(e->incident, now_ms, e->update);
        rc = store_txn_alert_add(t, e->update, false, err, errlen);
    }
    return rc;
}

/* ---- per event ---- */

int engine_eval_event(engine *e, store_txn *t, const event_t *ev, int64_t now_ms, const engine_hooks *hooks,
                      char *err, size_t errlen)
{
    if (ev->type <= EVENT_UNKNOWN || ev->type >= EVENT_TYPE_COUNT ||
        (e->n_by_type[ev->type] == 0 && (e->ua == NULL || ev->type != EVENT_SESSION_CREATED)))
        return 0;
    eval_ctx *c = e->ctx;
    if (e->ua != NULL) {
        device_parse(e->ua, ev->user_agent, &c->ua_event);
        device_key(&c->ua_event, c->device_key, sizeof c->device_key);
    } else {
        memset(&c->ua_event, 0, sizeof c->ua_event);
        c->device_key[0] = '\0';
    }
    store_alert *a = e->alert;
    c->n_cache = 0;
    engine_snapshots_reset(c);
    c->user_loaded = c->user_found = false;
    c->bounded_reads = 0;
    c->t = t;
    c->ev = ev;
    c->at = ev->at_ms < 0 ? 0 : ev->at_ms; /* as the store keys it */
    c->explain = hooks != NULL && hooks->on_explain != NULL;
    c->err = err;
    c->errlen = errlen;
    /* once per event, before any rule, when a rule reads the country (its
     * fallback) or an ip field; the cache makes a repeated IP cheap */
    c->ipdb = e->ipdb;
    if (e->needs_ipinfo)
        ipintel_lookup(e->ipdb, engine_event_ip(ev), &c->ipinfo);
    else
        memset(&c->ipinfo, 0, sizeof c->ipinfo);
    bool country_from_ip = ev->session.country[0] == '\0' && c->ipinfo.country[0] != '\0';
    int rc = 0;
    for (size_t k = 0; k < e->n_by_type[ev->type] && rc == 0; k++) {
        size_t idx = e->by_type[ev->type][k];
        const rules_rule *r = rules_rule_at(e->rules, idx);
        engine_rule_stats *st = &e->pending[idx];
        const char *keyval = engine_event_field(c, r->by == RULES_BY_IP ? RULES_F_IP : RULES_F_USER_ID);
        if (keyval[0] == '\0')
            continue; /* no key, no window: the rule does not apply */
        char key[STORE_ALERT_KEY_MAX];
        snprintf(key, sizeof key, "%s:%s", r->by == RULES_BY_IP ? "ip" : "user", keyval);
        c->rule = r;
        c->kind = r->by == RULES_BY_IP ? STORE_KEY_IP : STORE_KEY_USER;
        c->key = keyval;
        c->n_evidence = 0;
        uint64_t bounded_before = c->bounded_reads;
        BUMP(st->evaluations, 1);
        value v;
        rc = eval(c, r->when, 0, &v);
        if (rc < 0)
            break;
        bool matched = v.k == V_BOOL && v.b;
        if (country_from_ip && e->rule_reads_country[idx] && (matched || c->explain)) {
            /* say where the country came from: Clerk gave none */
            value src = {.k = V_STR, .str = "ip_database"};
            add_evidence(c, "country_source", NULL, &src, NULL);
        }
        char open_id[STORE_ALERT_ID_MAX] = ""; /* outlives the branch: x points at it */
        engine_explain x = {.rule = r, .ev = ev, .key = key, .matched = matched};
        if (c->bounded_reads != bounded_before)
            BUMP(st->bounded, c->bounded_reads - bounded_before);
        bool allowed = false;
        if (matched) {
            /* read here, in the event's transaction: an entry added by the CLI
             * beside serve counts from the next batch on */
            rc = store_txn_allowed(t, r->name, c->kind, keyval, now_ms, &allowed, NULL, err, errlen);
            if (rc < 0)
                break;
        }
        if (matched && allowed) {
            BUMP(st->matches, 1);
            BUMP(st->allowed, 1);
            x.allowed = true;
        } else if (matched) {
            BUMP(st->matches, 1);
            bool suppressed = false;
            rc = store_txn_alert_suppress(t, r->name, key, c->at, r->suppress_ms, &suppressed, open_id, err, errlen);
            if (rc < 0)
                break;
            if (suppressed) {
                BUMP(st->suppressed, 1);
                x.suppressed = true;
                x.alert_id = open_id;
            } else {
                finish_evidence(c);
                build_alert(c, key, now_ms, a);
                store_incident_step step;
                rc = alert_incident(e, t, a, now_ms, &step, err, errlen);
                if (rc == 0)
                    rc = store_txn_alert_add(t, a, r->suppress_ms > 0, err, errlen);
                if (rc < 0)
                    break;
                BUMP(st->alerts, 1);
                x.alert_id = a->id;
                /* the sinks get an incident's first alert, then an update at
                 * most every incident_update_ms: not one message per alert
                 * (alert_sink_wants reads incident_quiet; replay shows all) */
                a->incident_quiet = !step.first;
                if (hooks != NULL && hooks->on_alert != NULL)
                    hooks->on_alert(a, hooks->ctx);
                if (hooks != NULL && hooks->on_alert != NULL && step.update_due)
                    hooks->on_alert(e->update, hooks->ctx);
            }
        } else if (c->explain) {
            int failed = 0;
            bool threshold = false;
            rc = near_miss(c, r->when, &failed, &threshold);
            if (rc < 0)
                break;
            x.near_miss = failed == 1 && threshold;
        }
        if (c->explain) {
            finish_evidence(c);
            x.values = c->evidence;
            x.n_values = c->n_evidence;
            hooks->on_explain(&x, hooks->ctx);
        }
    }
    /* Every sign-in's device goes into the user's values index, whichever
     * rules ran, after them: first_seen(device) then finds the earlier ones. */
    const char *user = engine_event_field(c, RULES_F_USER_ID);
    if (rc == 0 && ev->type == EVENT_SESSION_CREATED && c->device_key[0] != '\0' && user[0] != '\0')
        rc = store_txn_value_put(t, STORE_KEY_USER, user, STORE_VALUE_DEVICE, c->device_key, c->at,
                                 ev->delivery_id, err, errlen);
    /* and, for risk(), its values, after the rules: the score judges the past */
    if (rc == 0 && e->uses_risk)
        rc = engine_risk_record(c);
    return rc;
}
