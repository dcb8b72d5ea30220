/*
 * riskfreq.c: what the risk score (src/engine/risk.c) counts, in the
 * "riskfreq" database:
 *   'G' level                                  -> be64 total, be64 distinct, be64 rest
 *   'g' level value                            -> be64 count   (global table)
 *   'u' user 0x00 level value 0x00 be64(at) delivery -> ""     (the user's values)
 * level is one byte naming a feature level (the engine's table). The global
 * table holds at most STORE_RISK_TOPK values per level: the first ones seen;
 * a value arriving once the table is full is counted in `rest` only, so the
 * table cannot grow with a flood of distinct values (a bot rotating user
 * agents). The trap: a value first seen after the table filled stays in
 * `rest` however common it becomes (no eviction: an eviction order would need
 * a second index by count); with 4096 values per level that is a corner case.
 * Values longer than STORE_RISK_VALUE_MAX (full user agents) are replaced by
 * '#' and 16 hex digits of their digest, so keys stay under LMDB's 511 bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "store/internal.h"
#include "util/util.h"

#define RISK_KEY_MAX (1 + EVENT_ID_MAX + 1 + 1 + STORE_RISK_VALUE_MAX + 1 + 8 + EVENT_ID_MAX)

/* value, or its digest when it is too long for a key */
static const char *key_value(const char *value, char buf[STORE_RISK_VALUE_MAX + 1])
{
    size_t n = strlen(value);
    if (n <= STORE_RISK_VALUE_MAX)
        return value;
    snprintf(buf, STORE_RISK_VALUE_MAX + 1, "#%016llx", (unsigned long long)util_digest64(value, n));
    return buf;
}

static int risk_db(store_txn *t, char *err, size_t errlen)
{
    if (!t->s->has_riskfreq)
        return util_err(err, errlen, "store: the riskfreq database is missing (open the store read-write once)");
    return 0;
}

static int get_u64s(store_txn *t, const unsigned char *k, size_t kn, uint64_t *out, size_t n, bool *found,
                    char *err, size_t errlen)
{
    MDB_val key = mval(k, kn), v;
    memset(out, 0, n * sizeof *out);
    *found = false;
    int rc = mdb_get(t->txn, t->s->riskfreq, &key, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store_fail(t->s, rc, "reading the risk frequencies", err, errlen);
    if (v.mv_size != n * 8)
        return util_err(err, errlen, "store: a risk frequency record has %zu bytes, not %zu", v.mv_size, n * 8);
    for (size_t i = 0; i < n; i++)
        out[i] = util_get_be64((const unsigned char *)v.mv_data + 8 * i);
    *found = true;
    return 0;
}

static int put_u64s(store_txn *t, const unsigned char *k, size_t kn, const uint64_t *in, size_t n, char *err,
                    size_t errlen)
{
    unsigned char buf[24];
    for (size_t i = 0; i < n; i++)
        util_put_be64(buf + 8 * i, in[i]);
    MDB_val key = mval(k, kn), v = mval(buf, n * 8);
    int rc = mdb_put(t->txn, t->s->riskfreq, &key, &v, 0);
    return rc != 0 ? store_fail(t->s, rc, "writing the risk frequencies", err, errlen) : 0;
}

static size_t global_key(unsigned char *buf, char level, const char *value)
{
    size_t n = strlen(value);
    buf[0] = 'g';
    buf[1] = (unsigned char)level;
    memcpy(buf + 2, value, n);
    return 2 + n;
}

/* 'u' user 0x00 level: the prefix of one user's values of one level */
static size_t user_prefix(unsigned char *buf, const char *user, char level)
{
    size_t n = strnlen(user, EVENT_ID_MAX);
    if (n >= EVENT_ID_MAX)
        return 0;
    buf[0] = 'u';
    memcpy(buf + 1, user, n);
    buf[1 + n] = 0x00;
    buf[2 + n] = (unsigned char)level;
    return 3 + n;
}

int store_txn_risk_global(store_txn *t, char level, const char *value, uint64_t *count, bool *in_table,
                          store_risk_table *tab, char *err, size_t errlen)
{
    int rc = risk_db(t, err, errlen);
    if (rc < 0)
        return rc;
    char vb[STORE_RISK_VALUE_MAX + 1];
    const char *kv = key_value(value, vb);
    unsigned char hk[2] = {'G', (unsigned char)level}, gk[RISK_KEY_MAX];
    uint64_t h[3];
    bool found;
    if ((rc = get_u64s(t, hk, sizeof hk, h, 3, &found, err, errlen)) < 0)
        return rc;
    *tab = (store_risk_table){.total = h[0], .distinct = h[1], .rest = h[2]};
    return get_u64s(t, gk, global_key(gk, level, kv), count, 1, in_table, err, errlen);
}

int store_txn_risk_record(store_txn *t, const char *user, char level, const char *value, int64_t at_ms,
                          const char *delivery_id, char *err, size_t errlen)
{
    int rc = risk_db(t, err, errlen);
    if (rc < 0 || value == NULL || value[0] == '\0')
        return rc;
    char vb[STORE_RISK_VALUE_MAX + 1];
    const char *kv = key_value(value, vb);
    /* the user's entry; putting it again (a retried event) changes nothing, and
     * then the global counts are not bumped twice either */
    unsigned char uk[RISK_KEY_MAX];
    size_t un = user_prefix(uk, user, level), vlen = strlen(kv), dlen = strnlen(delivery_id, EVENT_ID_MAX);
    if (un == 0 || dlen >= EVENT_ID_MAX)
        return util_err(err, errlen, "store: user or delivery id too long for the risk frequencies");
    memcpy(uk + un, kv, vlen);
    uk[un + vlen] = 0x00;
    util_put_be64(uk + un + vlen + 1, key_time(at_ms));
    memcpy(uk + un + vlen + 9, delivery_id, dlen);
    MDB_val k = mval(uk, un + vlen + 9 + dlen), empty = mval("", 0);
    rc = mdb_put(t->txn, t->s->riskfreq, &k, &empty, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST)
        return 0;
    if (rc != 0)
        return store_fail(t->s, rc, "writing the risk frequencies", err, errlen);
    unsigned char hk[2] = {'G', (unsigned char)level}, gk[RISK_KEY_MAX];
    size_t gn = global_key(gk, level, kv);
    uint64_t h[3], c;
    bool found;
    if ((rc = get_u64s(t, hk, sizeof hk, h, 3, &found, err, errlen)) < 0 ||
        (rc = get_u64s(t, gk, gn, &c, 1, &found, err, errlen)) < 0)
        return rc;
    h[0]++;
    if (found || h[1] < STORE_RISK_TOPK) {
        h[1] += !found;
        c++;
        if ((rc = put_u64s(t, gk, gn, &c, 1, err, errlen)) < 0)
            return rc;
    } else {
        h[2]++;
    }
    return put_u64s(t, hk, sizeof hk, h, 3, err, errlen);
}

/* A read cut by the visit bound has seen the values sorting first only: count
 * the asked value's own entries with a seek (bounded too), and take n as at
 * least that. */
static int count_value(MDB_cursor *cur, unsigned char *prefix, size_t pn, const char *kv, size_t vlen,
                       uint64_t since, uint64_t until, store_risk_user *out)
{
    memcpy(prefix + pn, kv, vlen);
    prefix[pn + vlen] = 0x00;
    size_t n = pn + vlen + 1, visited = 0;
    MDB_val k = mval(prefix, n), v;
    out->count = 0;
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && visited++ < STORE_RISK_USER_VISIT_MAX;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < n + 8 || memcmp(k.mv_data, prefix, n) != 0)
            break;
        uint64_t at = util_get_be64((const unsigned char *)k.mv_data + n);
        out->count += at >= since && at <= until;
    }
    if (out->n < out->count)
        out->n = out->count;
    return rc;
}

int store_txn_risk_user(store_txn *t, const char *user, char level, const char *value, int64_t since_ms,
                        int64_t until_ms, bool forget_older, store_risk_user *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc = risk_db(t, err, errlen);
    if (rc < 0)
        return rc;
    char vb[STORE_RISK_VALUE_MAX + 1];
    const char *kv = key_value(value, vb);
    size_t vlen = strlen(kv);
    unsigned char prefix[RISK_KEY_MAX];
    size_t pn = user_prefix(prefix, user, level);
    if (pn == 0)
        return 0;
    MDB_cursor *cur = NULL;
    rc = mdb_cursor_open(t->txn, t->s->riskfreq, &cur);
    if (rc != 0)
        return store_fail(t->s, rc, "reading the risk frequencies", err, errlen);
    uint64_t since = key_time(since_ms), until = key_time(until_ms);
    MDB_val k = mval(prefix, pn), v;
    unsigned char last[STORE_RISK_VALUE_MAX]; /* the previous in-window value: entries sort by value */
    size_t last_n = SIZE_MAX;
    size_t visited = 0;
    /* Entries of the user's level, value by value. Bounded: a user with more
     * than STORE_RISK_USER_VISIT_MAX entries (of all times) is counted on the
     * first ones in value order, and out->bounded says so. */
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const unsigned char *kp = k.mv_data;
        if (k.mv_size < pn || memcmp(kp, prefix, pn) != 0)
            break;
        if (++visited > STORE_RISK_USER_VISIT_MAX) {
            out->bounded = true;
            break;
        }
        const unsigned char *nul = memchr(kp + pn, 0, k.mv_size - pn);
        if (nul == NULL || (size_t)(kp + k.mv_size - nul) < 9)
            continue; /* not an entry we wrote */
        size_t n = (size_t)(nul - (kp + pn));
        uint64_t at = util_get_be64(nul + 1);
        if (at < since && forget_older) {
            /* older than any later read's window too (since only grows with
             * the event time it is read at): drop it. After a delete the cursor
             * is on the next entry, which MDB_NEXT then returns. */
            rc = mdb_cursor_del(cur, 0);
            if (rc != 0)
                break;
            out->forgotten++;
            continue;
        }
        if (at < since || at > until)
            continue;
        out->n++;
        if (n > sizeof last)
            continue;
        if (last_n != n || memcmp(last, kp + pn, n) != 0)
            out->distinct++;
        memcpy(last, kp + pn, n);
        last_n = n;
        if (n == vlen && memcmp(kp + pn, kv, n) == 0)
            out->count++;
    }
    if (out->bounded && (rc == 0 || rc == MDB_NOTFOUND))
        rc = count_value(cur, prefix, pn, kv, vlen, since, until, out);
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store_fail(t->s, rc, "reading the risk frequencies", err, errlen);
    return 0;
}
