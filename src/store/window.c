/*
 * window.c: what the rules engine reads inside the write transaction that
 * stores an event: the user record, a key's history by time, and the values
 * index that answers "seen before?" and "how many distinct?" without walking
 * every event of a busy key.
 *
 * Values index key: kind, key, 0x01, field tag, value, 0x00, be64(at), delivery
 * id, in the history database. The 0x01 puts a key's index entries right after
 * its history records (kind, key, 0x00, ...), on the same leaf pages: storing an
 * event dirties about as many pages as before the index existed, and history
 * scans, which stop at the end of the 0x00 prefix, never see them. Values
 * never contain a NUL (they come from C strings), so every entry of one value
 * sorts before the first key starting with value + 0x01.
 */
#include <string.h>

#include "store/codec.h"
#include "store/internal.h"
#include "util/util.h"

#define VALUE_STEPS 4 /* cursor steps tried before a seek, per value */

bool store_value_indexed(char kind, store_value_field field)
{
    switch (field) {
    case STORE_VALUE_COUNTRY: return kind == STORE_KEY_USER;
    case STORE_VALUE_IP: return kind == STORE_KEY_USER;
    case STORE_VALUE_USER: return kind == STORE_KEY_IP;
    case STORE_VALUE_DEVICE: return kind == STORE_KEY_USER;
    }
    return false;
}

/* kind key 0x00 tag: the prefix every entry of (key, field) shares. 0 when the
 * key does not fit (never for keys the store accepted). */
static size_t value_prefix(unsigned char *buf, char kind, const char *key, store_value_field field)
{
    size_t klen = strnlen(key, EVENT_ID_MAX);
    if (klen >= EVENT_ID_MAX)
        return 0;
    size_t n = 0;
    buf[n++] = (unsigned char)kind;
    memcpy(buf + n, key, klen);
    n += klen;
    buf[n++] = 0x01;
    buf[n++] = (unsigned char)field;
    return n;
}

/* prefix value 0x00: the start of one value's entries. */
static size_t value_key(unsigned char *buf, char kind, const char *key, store_value_field field, const char *value)
{
    size_t n = value_prefix(buf, kind, key, field);
    size_t vlen = strnlen(value, EVENT_ID_MAX);
    if (n == 0 || vlen >= EVENT_ID_MAX)
        return 0;
    memcpy(buf + n, value, vlen);
    n += vlen;
    buf[n++] = 0x00;
    return n;
}

/* The fields of e indexed under kind, with their values. */
static size_t indexed_values(char kind, const store_history_entry *e, store_value_field fields[2],
                             const char *values[2])
{
    size_t n = 0;
    if (kind == STORE_KEY_USER && e->country[0] != '\0') {
        fields[n] = STORE_VALUE_COUNTRY;
        values[n++] = e->country;
    }
    if (kind == STORE_KEY_USER && e->ip[0] != '\0') {
        fields[n] = STORE_VALUE_IP;
        values[n++] = e->ip;
    }
    if (kind == STORE_KEY_IP && e->user_id[0] != '\0') {
        fields[n] = STORE_VALUE_USER;
        values[n++] = e->user_id;
    }
    return n;
}

/* buf[0..n) + be64(at) + delivery id; 0 when n is 0 or the id does not fit. */
static size_t append_time_delivery(unsigned char *buf, size_t n, int64_t at_ms, const char *delivery_id)
{
    size_t dlen = strnlen(delivery_id, EVENT_ID_MAX);
    if (n == 0 || dlen >= EVENT_ID_MAX)
        return 0;
    util_put_be64(buf + n, key_time(at_ms));
    memcpy(buf + n + 8, delivery_id, dlen);
    return n + 8 + dlen;
}

/* The reverse entry of a derived value (store_txn_value_put): prefix with
 * 'D' for the field tag, be64(at), delivery id. 0 when it does not fit. */
#define DEVICE_REVERSE_TAG 'D'
static size_t derived_reverse_key(unsigned char *buf, char kind, const char *key, int64_t at_ms,
                                  const char *delivery_id)
{
    return append_time_delivery(buf, value_prefix(buf, kind, key, (store_value_field)DEVICE_REVERSE_TAG), at_ms,
                                delivery_id);
}

/* value key + be64(at) + delivery id: one index entry. 0 when it does not fit. */
static size_t entry_key(unsigned char *buf, char kind, const char *key, store_value_field field, const char *value,
                        int64_t at_ms, const char *delivery_id)
{
    return append_time_delivery(buf, value_key(buf, kind, key, field, value), at_ms, delivery_id);
}

int store_txn_value_put(store_txn *t, char kind, const char *key, store_value_field field, const char *value,
                        int64_t at_ms, const char *delivery_id, char *err, size_t errlen)
{
    if (field != STORE_VALUE_DEVICE || !store_value_indexed(kind, field))
        return util_err(err, errlen, "store: field '%c' is not a derived index under '%c' keys", field, kind);
    if (value == NULL || value[0] == '\0')
        return 0;
    unsigned char vk[VKEY_MAX], rk[VKEY_MAX];
    size_t n = entry_key(vk, kind, key, field, value, at_ms, delivery_id);
    size_t rn = derived_reverse_key(rk, kind, key, at_ms, delivery_id);
    if (n == 0 || rn == 0)
        return util_err(err, errlen, "store: key or value too long for the values index");
    MDB_val k = mval(vk, n), empty = mval("", 0), r = mval(rk, rn), rv = mval(value, strlen(value));
    int rc = mdb_put(t->txn, t->s->history, &k, &empty, 0);
    if (rc == 0)
        rc = mdb_put(t->txn, t->s->history, &r, &rv, 0);
    return rc != 0 ? store_fail(t->s, rc, "writing the values index", err, errlen) : 0;
}

/* Pruning a user's record: drop its derived entries, found through the
 * reverse entry. */
static int derived_del(store_txn *t, char kind, const char *key, const store_history_entry *e, char *err,
                       size_t errlen)
{
    unsigned char rk[VKEY_MAX], vk[VKEY_MAX];
    size_t rn = derived_reverse_key(rk, kind, key, e->at_ms, e->delivery_id);
    if (kind != STORE_KEY_USER || rn == 0)
        return 0;
    MDB_val r = mval(rk, rn), v;
    int rc = mdb_get(t->txn, t->s->history, &r, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc == 0) {
        char value[EVENT_ID_MAX];
        size_t vlen = v.mv_size < sizeof value ? v.mv_size : sizeof value - 1;
        memcpy(value, v.mv_data, vlen);
        value[vlen] = '\0';
        size_t n = entry_key(vk, kind, key, STORE_VALUE_DEVICE, value, e->at_ms, e->delivery_id);
        MDB_val k = mval(vk, n);
        rc = n == 0 ? 0 : mdb_del(t->txn, t->s->history, &k, NULL);
        if (rc == 0 || rc == MDB_NOTFOUND)
            rc = mdb_del(t->txn, t->s->history, &r, NULL);
    }
    return rc != 0 && rc != MDB_NOTFOUND ? store_fail(t->s, rc, "pruning the values index", err, errlen) : 0;
}

static int values_write(store_txn *t, char kind, const char *key, const store_history_entry *e, bool del,
                        char *err, size_t errlen)
{
    if (del) {
        int rc = derived_del(t, kind, key, e, err, errlen);
        if (rc < 0)
            return rc;
    }
    store_value_field fields[2];
    const char *values[2];
    size_t nv = indexed_values(kind, e, fields, values);
    for (size_t i = 0; i < nv; i++) {
        unsigned char vk[VKEY_MAX];
        size_t n = entry_key(vk, kind, key, fields[i], values[i], e->at_ms, e->delivery_id);
        if (n == 0)
            return util_err(err, errlen, "store: key or value too long for the values index");
        MDB_val k = mval(vk, n), empty = mval("", 0);
        int rc = del ? mdb_del(t->txn, t->s->history, &k, NULL) : mdb_put(t->txn, t->s->history, &k, &empty, 0);
        if (rc == MDB_NOTFOUND && del)
            continue;
        if (rc != 0)
            return store_fail(t->s, rc, del ? "pruning the values index" : "writing the values index", err,
                              errlen);
    }
    return 0;
}

int store_values_put(store_txn *t, char kind, const char *key, const store_history_entry *e, char *err,
                     size_t errlen)
{
    return values_write(t, kind, key, e, false, err, errlen);
}

int store_values_del(store_txn *t, char kind, const char *key, const store_history_entry *e, char *err,
                     size_t errlen)
{
    return values_write(t, kind, key, e, true, err, errlen);
}

int store_txn_history_scan(store_txn *t, char kind, const char *key, int64_t since_ms, int64_t until_ms,
                           size_t limit, store_history_cb cb, void *ctx, char *err, size_t errlen)
{
    return store_history_scan_in(t->s, t->txn, kind, key, since_ms, until_ms, limit, false, cb, ctx, err, errlen);
}

/* Position cur on the first entry of `start` (a value key) at or after since,
 * and tell whether it is an entry of that value with at <= until. The entry's
 * delivery id is returned through did/dlen. */
static int seek_value(MDB_cursor *cur, const unsigned char *start, size_t n, uint64_t since, uint64_t until,
                      bool *in_window, MDB_val *k)
{
    unsigned char seek[VKEY_MAX];
    memcpy(seek, start, n);
    util_put_be64(seek + n, since);
    *k = mval(seek, n + 8);
    MDB_val v;
    int rc = mdb_cursor_get(cur, k, &v, MDB_SET_RANGE);
    *in_window = false;
    if (rc != 0)
        return rc;
    const unsigned char *kp = k->mv_data;
    if (k->mv_size >= n + 8 && memcmp(kp, start, n) == 0 && util_get_be64(kp + n) <= until)
        *in_window = true;
    return 0;
}

/* A cursor on the values index of (kind, field), which must be indexed. */
static int values_cursor(store_txn *t, char kind, store_value_field field, MDB_cursor **cur, char *err,
                         size_t errlen)
{
    *cur = NULL;
    if (!store_value_indexed(kind, field))
        return util_err(err, errlen, "store: field '%c' is not indexed under '%c' keys", field, kind);
    int rc = mdb_cursor_open(t->txn, t->s->history, cur);
    return rc != 0 ? store_fail(t->s, rc, "reading the values index", err, errlen) : 0;
}

int store_txn_value_seen(store_txn *t, char kind, const char *key, store_value_field field, const char *value,
                         int64_t since_ms, int64_t until_ms, const char *exclude_delivery, bool *found, char *err,
                         size_t errlen)
{
    *found = false;
    MDB_cursor *cur = NULL;
    int rc = values_cursor(t, kind, field, &cur, err, errlen);
    if (rc < 0)
        return rc;
    unsigned char start[VKEY_MAX];
    size_t n = value == NULL ? 0 : value_key(start, kind, key, field, value);
    if (value == NULL || value[0] == '\0' || until_ms < 0 || since_ms > until_ms || n == 0) {
        mdb_cursor_close(cur);
        return 0;
    }
    uint64_t since = key_time(since_ms), until = (uint64_t)until_ms;
    size_t xlen = exclude_delivery != NULL ? strlen(exclude_delivery) : 0;
    MDB_val k, v;
    bool in = false;
    rc = seek_value(cur, start, n, since, until, &in, &k);
    /* At most a few steps: only entries of the excluded delivery are skipped. */
    while (rc == 0 && in) {
        const unsigned char *kp = k.mv_data;
        size_t dlen = k.mv_size - n - 8;
        if (!(exclude_delivery != NULL && dlen == xlen && memcmp(kp + n + 8, exclude_delivery, xlen) == 0)) {
            *found = true;
            break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        if (rc != 0)
            break;
        kp = k.mv_data;
        in = k.mv_size >= n + 8 && memcmp(kp, start, n) == 0 && util_get_be64(kp + n) <= until;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store_fail(t->s, rc, "reading the values index", err, errlen);
    return 0;
}

/* distinct, telling each value in the window to cb (NULL: counts only) */
static int values_distinct(store_txn *t, char kind, const char *key, store_value_field field, int64_t since_ms,
                           int64_t until_ms, size_t cap, size_t *count, bool *bounded, store_value_cb cb, void *ctx,
                           char *err, size_t errlen)
{
    *count = 0;
    if (bounded != NULL)
        *bounded = false;
    size_t visited = 0;
    MDB_cursor *cur = NULL;
    int rc = values_cursor(t, kind, field, &cur, err, errlen);
    if (rc < 0)
        return rc;
    unsigned char prefix[VKEY_MAX];
    size_t plen = value_prefix(prefix, kind, key, field);
    if (until_ms < 0 || since_ms > until_ms || plen == 0) {
        mdb_cursor_close(cur);
        return 0;
    }
    uint64_t since = key_time(since_ms), until = (uint64_t)until_ms;
    MDB_val k = mval(prefix, plen), v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    /* One round per distinct value: find its first entry in the window, then
     * move past all its entries. Most values have a few entries, so a few
     * cursor steps (same page) replace each of those two seeks (a B-tree
     * descent); a value with more entries falls back to the seek. */
    while (rc == 0) {
        const unsigned char *kp = k.mv_data;
        if (k.mv_size < plen || memcmp(kp, prefix, plen) != 0)
            break;
        const unsigned char *nul = memchr(kp + plen, 0, k.mv_size - plen);
        if (nul == NULL)
            break; /* not an entry we wrote */
        unsigned char start[VKEY_MAX];
        size_t n = (size_t)(nul - kp) + 1;
        if (n > VKEY_MAX - 8)
            break;
        if (++visited > STORE_VALUES_VISIT_MAX) {
            /* a key with more distinct values than this (an IP behind a large
             * NAT, over the retention period) is counted on what was seen */
            if (bounded != NULL)
                *bounded = true;
            break;
        }
        memcpy(start, kp, n);
        bool in = false, past = false; /* past: the cursor already left this value */
        for (int step = 0;; step++) {
            kp = k.mv_data;
            if (k.mv_size < n + 8 || memcmp(kp, start, n) != 0) {
                past = true;
                break;
            }
            uint64_t at = util_get_be64(kp + n);
            if (at >= since) {
                in = at <= until;
                break;
            }
            if (step == VALUE_STEPS) {
                rc = seek_value(cur, start, n, since, until, &in, &k);
                past = rc == 0 && !in; /* landed on another value, or past the window */
                break;
            }
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            if (rc != 0)
                break;
        }
        if (rc != 0 && rc != MDB_NOTFOUND)
            break;
        if (in && cb != NULL) {
            char val[EVENT_ID_MAX];
            size_t vl = n - 1 - plen < sizeof val - 1 ? n - 1 - plen : sizeof val - 1;
            memcpy(val, start + plen, vl);
            val[vl] = '\0';
            if (cb(val, ctx) != 0)
                break;
        }
        if (in && ++*count == cap && cap != 0)
            break;
        if (rc == MDB_NOTFOUND)
            break; /* nothing after this value */
        for (int step = 0; !past; step++) {
            kp = k.mv_data;
            if (k.mv_size < n || memcmp(kp, start, n) != 0)
                break;
            if (step == VALUE_STEPS) {
                /* the same bytes with 0x01 for the 0x00 sort after all its entries */
                start[n - 1] = 0x01;
                k = mval(start, n);
                rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
                break;
            }
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            if (rc != 0)
                break;
        }
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store_fail(t->s, rc, "reading the values index", err, errlen);
    return 0;
}

int store_txn_value_distinct(store_txn *t, char kind, const char *key, store_value_field field, int64_t since_ms,
                             int64_t until_ms, size_t cap, size_t *count, bool *bounded, char *err, size_t errlen)
{
    return values_distinct(t, kind, key, field, since_ms, until_ms, cap, count, bounded, NULL, NULL, err, errlen);
}

int store_txn_value_list(store_txn *t, char kind, const char *key, store_value_field field, int64_t since_ms,
                         int64_t until_ms, store_value_cb cb, void *ctx, size_t *count, bool *bounded, char *err,
                         size_t errlen)
{
    return values_distinct(t, kind, key, field, since_ms, until_ms, 0, count, bounded, cb, ctx, err, errlen);
}
