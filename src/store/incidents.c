/*
 * incidents.c: one incident per attack. Each new alert joins the open incident
 * of its user or of its IP (store.h "incidents" says the rule), in the write
 * transaction that stores the alert, so an incident never counts an alert
 * that was rolled back. The record is small and bounded (the first 64 users,
 * 16 IPs, 16 rules): `veille incidents show` reads every account an IP touched
 * from the values index instead.
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"
#include "util/util.h"

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Severities in rank order; an unknown one ranks below info. */
static const char *const severity_rank[] = { "info", "low", "medium", "high", "critical" };

static int rank(const char *sev)
{
    for (size_t i = 0; i < sizeof severity_rank / sizeof severity_rank[0]; i++)
        if (strcmp(sev, severity_rank[i]) == 0)
            return (int)i;
    return -1;
}

/* ---- the record as msgpack: scalars, then arrays of strings ---- */

typedef struct {
    const char *key;
    size_t off;
} i64_field;

static const i64_field i64_fields[] = {
    { "f", offsetof(store_incident, first_ms) },     { "l", offsetof(store_incident, last_ms) },
    { "n", offsetof(store_incident, count) },        { "ut", offsetof(store_incident, users_total) },
    { "it", offsetof(store_incident, ips_total) },   { "nm", offsetof(store_incident, notified_ms) },
    { "nc", offsetof(store_incident, notified_count) },
};

typedef struct {
    const char *key;
    size_t off, width, max, count_off; /* count_off SIZE_MAX: one string, not an array */
} str_field;

#define ONE(k, m) { k, offsetof(store_incident, m), sizeof(((store_incident *)0)->m), 1, SIZE_MAX }
#define LIST(k, m, n) \
    { k, offsetof(store_incident, m), sizeof(((store_incident *)0)->m[0]), \
      sizeof(((store_incident *)0)->m) / sizeof(((store_incident *)0)->m[0]), offsetof(store_incident, n) }
static const str_field str_fields[] = {
    ONE("id", id), ONE("sv", severity), ONE("mi", merged_into),
    LIST("r", rules, n_rules), LIST("u", users, n_users), LIST("ip", ips, n_ips), LIST("ln", linked, n_linked),
};

static int pack_str(msgpack_packer *pk, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    return msgpack_pack_str_with_body(pk, s, n);
}

static int incident_encode(msgpack_sbuffer *out, const store_incident *inc)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    const unsigned char *base = (const unsigned char *)inc;
    if (msgpack_pack_map(&pk, NELEMS(i64_fields) + NELEMS(str_fields)) != 0)
        return -1;
    for (size_t i = 0; i < NELEMS(i64_fields); i++) {
        int64_t v;
        memcpy(&v, base + i64_fields[i].off, sizeof v);
        if (pack_str(&pk, i64_fields[i].key, 8) != 0 || msgpack_pack_int64(&pk, v) != 0)
            return -1;
    }
    for (size_t i = 0; i < NELEMS(str_fields); i++) {
        const str_field *f = &str_fields[i];
        if (pack_str(&pk, f->key, 8) != 0)
            return -1;
        if (f->count_off == SIZE_MAX) {
            if (pack_str(&pk, (const char *)base + f->off, f->width) != 0)
                return -1;
            continue;
        }
        size_t n;
        memcpy(&n, base + f->count_off, sizeof n);
        n = n < f->max ? n : f->max;
        if (msgpack_pack_array(&pk, n) != 0)
            return -1;
        for (size_t j = 0; j < n; j++)
            if (pack_str(&pk, (const char *)base + f->off + j * f->width, f->width) != 0)
                return -1;
    }
    return 0;
}

static bool key_is(const msgpack_object *k, const char *name)
{
    return k->type == MSGPACK_OBJECT_STR && strlen(name) == k->via.str.size &&
           memcmp(name, k->via.str.ptr, k->via.str.size) == 0;
}

static int decode_str(const msgpack_object *o, char *dst, size_t cap)
{
    if (o->type != MSGPACK_OBJECT_STR || memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
        return -1;
    util_copy_utf8(dst, cap, o->via.str.ptr, o->via.str.size);
    return 0;
}

static int incident_map(const msgpack_object_map *m, store_incident *inc)
{
    unsigned char *base = (unsigned char *)inc;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
        for (size_t j = 0; j < NELEMS(i64_fields); j++) {
            if (!key_is(k, i64_fields[j].key))
                continue;
            int64_t x;
            if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
                x = (int64_t)v->via.u64;
            else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                x = v->via.i64;
            else
                return -1;
            memcpy(base + i64_fields[j].off, &x, sizeof x);
        }
        for (size_t j = 0; j < NELEMS(str_fields); j++) {
            const str_field *f = &str_fields[j];
            if (!key_is(k, f->key))
                continue;
            if (f->count_off == SIZE_MAX) {
                if (decode_str(v, (char *)base + f->off, f->width) < 0)
                    return -1;
                continue;
            }
            if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > f->max)
                return -1;
            for (uint32_t e = 0; e < v->via.array.size; e++)
                if (decode_str(&v->via.array.ptr[e], (char *)base + f->off + e * f->width, f->width) < 0)
                    return -1;
            size_t n = v->via.array.size;
            memcpy(base + f->count_off, &n, sizeof n);
        }
    }
    return 0;
}

static int incident_decode(const void *data, size_t len, store_incident *out)
{
    memset(out, 0, sizeof *out);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc = -1;
    if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len &&
        u.data.type == MSGPACK_OBJECT_MAP)
        rc = incident_map(&u.data.via.map, out);
    msgpack_unpacked_destroy(&u);
    if (rc < 0)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---- reads and writes in a transaction ---- */

static int get_in(store *s, MDB_txn *txn, const char *id, store_incident *out, bool *found, char *err, size_t errlen)
{
    *found = false;
    MDB_val k = mval(id, strnlen(id, STORE_INCIDENT_ID_MAX)), v;
    if (k.mv_size == 0)
        return 0;
    int rc = mdb_get(txn, s->incidents, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store_fail(s, rc, "reading an incident", err, errlen);
    if (incident_decode(v.mv_data, v.mv_size, out) < 0)
        return util_err(err, errlen, "store: incident %s in %s is corrupt", id, s->dir);
    *found = true;
    return 0;
}

static int put_incident(store_txn *t, const store_incident *inc, char *err, size_t errlen)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    if (incident_encode(&buf, inc) < 0) {
        msgpack_sbuffer_destroy(&buf);
        return util_err(err, errlen, "store: out of memory encoding an incident");
    }
    MDB_val k = mval(inc->id, strnlen(inc->id, sizeof inc->id)), v = mval(buf.data, buf.size);
    int rc = mdb_put(t->txn, t->s->incidents, &k, &v, 0);
    msgpack_sbuffer_destroy(&buf);
    return rc != 0 ? store_fail(t->s, rc, "writing an incident", err, errlen) : 0;
}

/* The open incident key last joined (following merges, a bounded number of
 * hops); *found false when none or closed. */
static int open_of_key(store_txn *t, const char *key, int64_t at_ms, int64_t window_ms, store_incident *out,
                       bool *found, char *err, size_t errlen)
{
    *found = false;
    MDB_val k = mval(key, strlen(key)), v;
    int rc = mdb_get(t->txn, t->s->incident_keys, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store_fail(t->s, rc, "reading an incident key", err, errlen);
    char id[STORE_INCIDENT_ID_MAX];
    if (v.mv_size == 0 || v.mv_size >= sizeof id)
        return util_err(err, errlen, "store: incident key %s in %s is corrupt", key, t->s->dir);
    memcpy(id, v.mv_data, v.mv_size);
    id[v.mv_size] = '\0';
    for (int hop = 0; hop <= STORE_INCIDENT_LINKS_MAX; hop++) {
        bool got = false;
        rc = get_in(t->s, t->txn, id, out, &got, err, errlen);
        if (rc < 0 || !got)
            return rc;
        if (out->merged_into[0] == '\0')
            break;
        snprintf(id, sizeof id, "%s", out->merged_into);
    }
    /* open: its last alert within the window of this one (either side: events
     * arrive out of order) */
    int64_t gap = at_ms >= out->last_ms ? at_ms - out->last_ms : 0;
    if (at_ms < out->first_ms)
        gap = out->first_ms - at_ms;
    *found = out->merged_into[0] == '\0' && gap <= window_ms;
    return 0;
}

static int put_key(store_txn *t, const char *key, const char *id, char *err, size_t errlen)
{
    MDB_val k = mval(key, strlen(key)), v = mval(id, strlen(id));
    int rc = mdb_put(t->txn, t->s->incident_keys, &k, &v, 0);
    return rc != 0 ? store_fail(t->s, rc, "writing an incident key", err, errlen) : 0;
}

/* Add s to a bounded set; *total counts distinct values (exact while the set
 * has room). */
static void set_add(char *set, size_t width, size_t max, size_t *n, int64_t *total, const char *s)
{
    if (s[0] == '\0')
        return;
    for (size_t i = 0; i < *n; i++)
        if (strcmp(set + i * width, s) == 0)
            return;
    if (total != NULL)
        (*total)++;
    if (*n < max) {
        snprintf(set + *n * width, width, "%s", s);
        (*n)++;
    }
}

#define SET_ADD(inc, field, total, s)                                                                       \
    set_add((char *)(inc)->field, sizeof (inc)->field[0], NELEMS((inc)->field), &(inc)->n_##field, total, s)

static void absorb(store_incident *into, const store_incident *from)
{
    into->count += from->count;
    if (from->first_ms < into->first_ms)
        into->first_ms = from->first_ms;
    if (from->last_ms > into->last_ms)
        into->last_ms = from->last_ms;
    if (rank(from->severity) > rank(into->severity))
        snprintf(into->severity, sizeof into->severity, "%s", from->severity);
    for (size_t i = 0; i < from->n_rules; i++)
        SET_ADD(into, rules, NULL, from->rules[i]);
    for (size_t i = 0; i < from->n_users; i++)
        SET_ADD(into, users, &into->users_total, from->users[i]);
    for (size_t i = 0; i < from->n_ips; i++)
        SET_ADD(into, ips, &into->ips_total, from->ips[i]);
    SET_ADD(into, linked, NULL, from->id);
}

int store_txn_incident_record(store_txn *t, const store_alert *a, int64_t window_ms, int64_t update_every_ms,
                              store_incident *inc, store_incident_step *step, char *err, size_t errlen)
{
    memset(step, 0, sizeof *step);
    char ukey[STORE_ALERT_KEY_MAX] = "", ikey[STORE_ALERT_KEY_MAX] = "";
    if (a->user_id[0])
        snprintf(ukey, sizeof ukey, "user:%s", a->user_id);
    if (a->ip[0])
        snprintf(ikey, sizeof ikey, "ip:%s", a->ip);
    /* two candidates: the heap holds the second (a record is ~10 KiB) */
    store_incident *other = malloc(sizeof *other);
    if (other == NULL)
        return util_err(err, errlen, "store: out of memory reading incidents");
    bool by_user = false, by_ip = false;
    int rc = 0;
    if (window_ms <= 0) /* grouping off: every alert its own incident */
        ukey[0] = ikey[0] = '\0';
    if (ukey[0])
        rc = open_of_key(t, ukey, a->at_ms, window_ms, inc, &by_user, err, errlen);
    if (rc == 0 && ikey[0])
        rc = open_of_key(t, ikey, a->at_ms, window_ms, other, &by_ip, err, errlen);
    if (rc < 0)
        goto done;
    if (by_ip && !by_user) {
        memcpy(inc, other, sizeof *inc);
    } else if (by_ip && by_user && strcmp(inc->id, other->id) != 0) {
        /* one alert touches two open incidents: the older absorbs the newer */
        bool user_older = inc->first_ms < other->first_ms ||
                          (inc->first_ms == other->first_ms && strcmp(inc->id, other->id) < 0);
        store_incident *older = user_older ? inc : other, *newer = user_older ? other : inc;
        absorb(older, newer);
        snprintf(newer->merged_into, sizeof newer->merged_into, "%s", older->id);
        if ((rc = put_incident(t, newer, err, errlen)) < 0)
            goto done;
        if (!user_older)
            memcpy(inc, other, sizeof *inc);
        step->merged = true;
    }
    if (!by_ip && !by_user) {
        memset(inc, 0, sizeof *inc);
        /* time-ordered: 12 hex digits of ms reach the year 10889 */
        snprintf(inc->id, sizeof inc->id, "inc_%012llx%.8s", (unsigned long long)key_time(a->at_ms),
                 a->id + (strncmp(a->id, "alr_", 4) == 0 ? 4 : 0));
        inc->first_ms = inc->last_ms = a->at_ms;
        inc->notified_ms = a->at_ms;
        inc->notified_count = 1;
        step->first = true;
    }
    inc->count++;
    if (a->at_ms > inc->last_ms)
        inc->last_ms = a->at_ms;
    if (a->at_ms < inc->first_ms)
        inc->first_ms = a->at_ms;
    if (rank(a->severity) > rank(inc->severity))
        snprintf(inc->severity, sizeof inc->severity, "%s", a->severity);
    SET_ADD(inc, rules, NULL, a->rule);
    SET_ADD(inc, users, &inc->users_total, a->user_id);
    SET_ADD(inc, ips, &inc->ips_total, a->ip);
    if (!step->first && inc->count > inc->notified_count && a->at_ms - inc->notified_ms >= update_every_ms) {
        step->update_due = true;
        inc->notified_ms = a->at_ms;
        inc->notified_count = inc->count;
    }
    rc = put_incident(t, inc, err, errlen);
    if (rc == 0 && ukey[0])
        rc = put_key(t, ukey, inc->id, err, errlen);
    if (rc == 0 && ikey[0])
        rc = put_key(t, ikey, inc->id, err, errlen);
done:
    free(other);
    return rc;
}

/* ---- reads ---- */

int store_get_incident(store *s, const char *id, store_incident *out, bool *found, char *err, size_t errlen)
{
    *found = false;
    if (!s->has_incidents)
        return 0;
    MDB_txn *txn = NULL;
    int rc = store_read_begin(s, &txn, err, errlen);
    if (rc < 0)
        return rc;
    rc = get_in(s, txn, id, out, found, err, errlen);
    mdb_txn_abort(txn);
    return rc;
}

int store_list_incidents(store *s, store_incident_cb cb, void *ctx, char *err, size_t errlen)
{
    if (!s->has_incidents)
        return 0;
    MDB_txn *txn = NULL;
    int rc = store_read_begin(s, &txn, err, errlen);
    if (rc < 0)
        return rc;
    MDB_cursor *cur = NULL;
    store_incident *inc = malloc(sizeof *inc);
    int ret = 0;
    if (inc == NULL) {
        ret = util_err(err, errlen, "store: out of memory listing incidents");
        goto done;
    }
    rc = mdb_cursor_open(txn, s->incidents, &cur);
    if (rc != 0) {
        ret = store_fail(s, rc, "listing incidents", err, errlen);
        goto done;
    }
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (incident_decode(v.mv_data, v.mv_size, inc) < 0) {
            ret = util_err(err, errlen, "store: an incident record in %s is corrupt", s->dir);
            goto done;
        }
        if (cb(inc, ctx) != 0)
            break;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        ret = store_fail(s, rc, "listing incidents", err, errlen);
done:
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    free(inc);
    return ret;
}

int store_ip_users(store *s, const char *ip, int64_t since_ms, int64_t until_ms, store_value_cb cb, void *ctx,
                   size_t *count, char *err, size_t errlen)
{
    *count = 0;
    MDB_txn *txn = NULL;
    int rc = store_read_begin(s, &txn, err, errlen);
    if (rc < 0)
        return rc;
    /* the values index reads through a transaction handle; a read one serves */
    store_txn rt = { .s = s, .txn = txn };
    rc = store_txn_value_list(&rt, STORE_KEY_IP, ip, STORE_VALUE_USER, since_ms, until_ms, cb, ctx, count, NULL,
                              err, errlen);
    mdb_txn_abort(txn);
    return rc;
}
