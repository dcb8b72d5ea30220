/*
 * risk.c: risk(), the score of Freeman et al. (NDSS 2016) as Wiefling et al.
 * implement it (das-group/rba-algorithm):
 *
 *   risk = PROD over features  p(value) / p(value | user)     (higher = more unusual)
 *
 * Two hierarchical features, each the weighted sum of its levels:
 *   ip:         ip 0.6, asn 0.3, country 0.1
 *   user_agent: full string 0.539, browser+major 0.268, OS+major 0.188, device 0.005
 * A level the event has no value for (no IP database: no asn) is left out and
 * the others' weights renormalised; a feature with no level at all counts 1.
 *
 * Smoothing (add-one, so a value never seen is never a division by zero):
 *   p(v | u) = (count(v, u) + 1) / (n_u + d_u + 1)
 *     n_u: the user's sign-ins with this level within --risk-history,
 *     d_u: their distinct values; the + 1 is the slot of "a value not seen".
 *   p(v)     = (count(v) + 1) / (N + D + 1)
 *     over every user's sign-ins (all time), D the values in the global table;
 *     a value not in the table (unseen, or arrived after the table filled)
 *     takes count = the table's `rest` (store/riskfreq.c bounds it).
 * Both read before the current sign-in is counted (engine_risk_record runs
 * after the rules), so the event is judged against its past only.
 * Missing (comparisons false) below --risk-min-history sign-ins.
 * Cost: 7 global lookups and 7 reads of the user's entries of one level each
 * (bounded by STORE_RISK_USER_VISIT_MAX), plus 14 puts when recording.
 */
#include <stdio.h>
#include <string.h>

#include "engine/internal.h"
#include "util/util.h"

enum { FEATURE_IP, FEATURE_UA, FEATURE_COUNT };

static const char *const feature_names[FEATURE_COUNT] = {"risk.ip", "risk.user_agent"};

/* The tags are stored (store/riskfreq.c keys): never change one, only add. */
static const struct {
    char tag;
    int feature;
    double weight;
} levels[ENGINE_RISK_LEVELS] = {
    {'i', FEATURE_IP, 0.6},   {'a', FEATURE_IP, 0.3},   {'c', FEATURE_IP, 0.1},
    {'U', FEATURE_UA, 0.539}, {'b', FEATURE_UA, 0.268}, {'o', FEATURE_UA, 0.188}, {'t', FEATURE_UA, 0.005},
};

static void join(char *buf, size_t len, const char *a, const char *b)
{
    if (a[0] == '\0')
        buf[0] = '\0';
    else
        snprintf(buf, len, "%s %s", a, b);
}

/* The event's value of each level ("" none). */
static void level_values(const eval_ctx *c, char vals[ENGINE_RISK_LEVELS][EVENT_UA_MAX])
{
    const device_info *d = &c->ua_event;
    snprintf(vals[0], EVENT_UA_MAX, "%s", engine_event_ip(c->ev));
    if (c->ipinfo.asn != 0)
        snprintf(vals[1], EVENT_UA_MAX, "AS%u", (unsigned)c->ipinfo.asn);
    else
        vals[1][0] = '\0';
    snprintf(vals[2], EVENT_UA_MAX, "%s", engine_event_field(c, RULES_F_COUNTRY));
    snprintf(vals[3], EVENT_UA_MAX, "%s", c->ev->user_agent);
    join(vals[4], EVENT_UA_MAX, d->browser, d->browser_major);
    join(vals[5], EVENT_UA_MAX, d->os, d->os_major);
    snprintf(vals[6], EVENT_UA_MAX, "%s", d->device);
}

static const char *risk_user(const eval_ctx *c)
{
    return engine_event_field(c, RULES_F_USER_ID);
}

int engine_risk(eval_ctx *c, value *v)
{
    *v = (value){.k = V_NULL};
    c->n_risk_why = 0;
    const char *user = risk_user(c);
    if (user[0] == '\0')
        return 0;
    char vals[ENGINE_RISK_LEVELS][EVENT_UA_MAX];
    level_values(c, vals);
    int64_t since = c->risk_history_ms > 0 && c->at > c->risk_history_ms ? c->at - c->risk_history_ms : 0;
    double pg[FEATURE_COUNT] = {0}, pu[FEATURE_COUNT] = {0}, w[FEATURE_COUNT] = {0};
    uint64_t n_user = 0;
    for (size_t i = 0; i < ENGINE_RISK_LEVELS; i++) {
        store_risk_user u;
        int rc = store_txn_risk_user(c->t, user, levels[i].tag, vals[i], since, c->at, true, &u, c->err,
                                     c->errlen);
        if (rc < 0)
            return rc;
        if (u.bounded)
            c->bounded_reads++;
        if (u.n > n_user)
            n_user = u.n;
        if (vals[i][0] == '\0')
            continue;
        uint64_t count = 0;
        bool in_table = false;
        store_risk_table tab;
        rc = store_txn_risk_global(c->t, levels[i].tag, vals[i], &count, &in_table, &tab, c->err, c->errlen);
        if (rc < 0)
            return rc;
        if (!in_table)
            count = tab.rest;
        int f = levels[i].feature;
        w[f] += levels[i].weight;
        pg[f] += levels[i].weight * ((double)count + 1) / ((double)(tab.total + tab.distinct) + 1);
        pu[f] += levels[i].weight * ((double)u.count + 1) / ((double)(u.n + u.distinct) + 1);
    }
    if (n_user < c->risk_min_history)
        return 0;
    double score = 1;
    for (int f = 0; f < FEATURE_COUNT; f++) {
        engine_risk_why *why = &c->risk_why[c->n_risk_why++];
        snprintf(why->name, sizeof why->name, "%s", feature_names[f]);
        if (w[f] == 0) {
            snprintf(why->text, sizeof why->text, "none: factor 1");
            continue;
        }
        double g = pg[f] / w[f], p = pu[f] / w[f], factor = g / p;
        score *= factor;
        /* the most specific level that is not a full user agent names the value */
        const char *shown = f == FEATURE_IP ? vals[0] : vals[4][0] != '\0' ? vals[4] : vals[3];
        char where[64] = "";
        if (f == FEATURE_IP)
            snprintf(where, sizeof where, "%.16s%s%.8s", vals[1], vals[1][0] && vals[2][0] ? " " : "", vals[2]);
        else
            snprintf(where, sizeof where, "%.60s", vals[5]);
        snprintf(why->text, sizeof why->text, "%.60s (%.40s): p %.3g, p|u %.3g, factor %.3g", shown, where, g, p,
                 factor);
    }
    *v = (value){.k = V_NUM, .num = score};
    return 0;
}

int engine_risk_record(eval_ctx *c)
{
    const char *user = risk_user(c);
    if (c->ev->type != EVENT_SESSION_CREATED || user[0] == '\0')
        return 0;
    char vals[ENGINE_RISK_LEVELS][EVENT_UA_MAX];
    level_values(c, vals);
    for (size_t i = 0; i < ENGINE_RISK_LEVELS; i++) {
        int rc = store_txn_risk_record(c->t, user, levels[i].tag, vals[i], c->at, c->ev->delivery_id, c->err,
                                       c->errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}
