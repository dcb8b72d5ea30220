/*
 * outbox.c: the durable queue between the rules engine and the remote sinks.
 * The committer adds entries in the transaction that raises their alerts and
 * settles them (delivered, retry later, dead) as the deliverer reports; the
 * deliverer reads due entries in read-only transactions of its own.
 *
 * An entry is one key in outbox_due (pending) or outbox_dead (given up), never
 * both; its value is the small delivery state, and the alert itself is read
 * from the alerts database when the entry is.
 */
#include <stdlib.h>
#include <string.h>

#include "store/codec.h"
#include "store/internal.h"
#include "util/util.h"

#define OBKEY_MAX (8 + 8 + 8 + STORE_ALERT_ID_MAX)

/* time_first: dead key (t, sink, queued, id); otherwise due key (sink, t, queued, id). */
static size_t entry_key(unsigned char *buf, bool time_first, uint64_t sink_id, int64_t t, int64_t queued_ms,
                        const char *alert_id)
{
    size_t il = strnlen(alert_id, STORE_ALERT_ID_MAX);
    if (il == 0 || il >= STORE_ALERT_ID_MAX)
        return 0;
    util_put_be64(buf + (time_first ? 8 : 0), sink_id);
    util_put_be64(buf + (time_first ? 0 : 8), key_time(t));
    util_put_be64(buf + 16, key_time(queued_ms));
    memcpy(buf + 24, alert_id, il);
    return 24 + il;
}

/* Fill e's key-derived fields from an index key; false when it is not one. */
static bool parse_key(const MDB_val *k, bool time_first, store_outbox_entry *e)
{
    if (k->mv_size <= 24 || k->mv_size >= OBKEY_MAX)
        return false;
    const unsigned char *p = k->mv_data;
    e->sink_id = util_get_be64(p + (time_first ? 8 : 0));
    int64_t t = (int64_t)util_get_be64(p + (time_first ? 0 : 8));
    if (time_first)
        e->dead_ms = t;
    else
        e->next_ms = t;
    e->queued_ms = (int64_t)util_get_be64(p + 16);
    memcpy(e->alert_id, p + 24, k->mv_size - 24);
    e->alert_id[k->mv_size - 24] = '\0';
    return true;
}

static int put_state(store_txn *t, MDB_dbi dbi, const unsigned char *key, size_t n, const store_outbox_entry *e,
                     unsigned flags, const char *what, char *err, size_t errlen)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    int ret = 0;
    if (store_codec_outbox_encode(&buf, e) < 0) {
        ret = util_err(err, errlen, "store: out of memory encoding an outbox entry");
    } else {
        MDB_val k = mval(key, n), v = mval(buf.data, buf.size);
        int rc = mdb_put(t->txn, dbi, &k, &v, flags);
        if (rc != 0 && rc != MDB_KEYEXIST)
            ret = store_fail(t->s, rc, what, err, errlen);
    }
    msgpack_sbuffer_destroy(&buf);
    return ret;
}

static int put_sink_record(store_txn *t, const store_sink_state *st, unsigned flags, char *err, size_t errlen)
{
    unsigned char key[8];
    util_put_be64(key, st->sink_id);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    int ret = 0;
    if (store_codec_sink_state_encode(&buf, st) < 0) {
        ret = util_err(err, errlen, "store: out of memory encoding a sink's state");
    } else {
        MDB_val k = mval(key, 8), v = mval(buf.data, buf.size);
        int rc = mdb_put(t->txn, t->s->outbox, &k, &v, flags);
        if (rc != 0 && rc != MDB_KEYEXIST)
            ret = store_fail(t->s, rc, "recording a sink", err, errlen);
    }
    msgpack_sbuffer_destroy(&buf);
    return ret;
}

int store_txn_outbox_add(store_txn *t, uint64_t sink_id, const char *sink_label, const store_alert *a, char *err,
                         size_t errlen)
{
    unsigned char key[OBKEY_MAX];
    int64_t queued = a->raised_ms > 0 ? a->raised_ms : util_now_ms();
    size_t n = entry_key(key, false, sink_id, queued, queued, a->id);
    if (n == 0)
        return util_err(err, errlen, "store: alert id '%s' cannot key the outbox", a->id);
    store_outbox_entry e;
    memset(&e, 0, sizeof e);
    e.alert_at_ms = a->at_ms;
    int ret = put_state(t, t->s->outbox_due, key, n, &e, MDB_NOOVERWRITE, "queueing an alert", err, errlen);
    if (ret < 0)
        return ret;
    /* the sink's label, for veille outbox; kept if already there (it may hold a failing state) */
    store_sink_state st;
    memset(&st, 0, sizeof st);
    st.sink_id = sink_id;
    util_copy_utf8(st.sink, sizeof st.sink, sink_label, strlen(sink_label));
    return put_sink_record(t, &st, MDB_NOOVERWRITE, err, errlen);
}

int store_txn_outbox_settle(store_txn *t, const store_outbox_entry *e, store_outbox_result r, int64_t next_ms,
                            int64_t now_ms, const char *error, bool *was_pending, char *err, size_t errlen)
{
    if (was_pending != NULL)
        *was_pending = false;
    unsigned char key[OBKEY_MAX];
    size_t n = entry_key(key, false, e->sink_id, e->next_ms, e->queued_ms, e->alert_id);
    if (n == 0)
        return util_err(err, errlen, "store: alert id '%s' cannot key the outbox", e->alert_id);
    MDB_val k = mval(key, n), v;
    int rc = mdb_get(t->txn, t->s->outbox_due, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0; /* settled already, or rescheduled under another key */
    if (rc != 0)
        return store_fail(t->s, rc, "reading the outbox", err, errlen);
    store_outbox_entry cur;
    if (store_codec_outbox_decode(v.mv_data, v.mv_size, &cur) < 0)
        return util_err(err, errlen, "store: the outbox entry of alert %s in %s is corrupt", e->alert_id,
                        t->s->dir);
    if (was_pending != NULL)
        *was_pending = true;
    rc = mdb_del(t->txn, t->s->outbox_due, &k, NULL);
    if (rc != 0)
        return store_fail(t->s, rc, "settling an alert", err, errlen);
    if (r == STORE_OUTBOX_DELIVERED)
        return 0;
    cur.attempts++;
    util_copy_utf8(cur.last_error, sizeof cur.last_error, error != NULL ? error : "", error != NULL ? strlen(error) : 0);
    if (r == STORE_OUTBOX_RETRY) {
        n = entry_key(key, false, e->sink_id, next_ms, e->queued_ms, e->alert_id);
        return put_state(t, t->s->outbox_due, key, n, &cur, 0, "rescheduling an alert", err, errlen);
    }
    n = entry_key(key, true, e->sink_id, now_ms, e->queued_ms, e->alert_id);
    return put_state(t, t->s->outbox_dead, key, n, &cur, 0, "giving up on an alert", err, errlen);
}

int store_txn_sink_state_put(store_txn *t, const store_sink_state *st, char *err, size_t errlen)
{
    return put_sink_record(t, st, 0, err, errlen);
}

/* A read transaction and a cursor on dbi; on failure neither is left open. */
static int read_cursor(store *s, MDB_dbi dbi, MDB_txn **txn, MDB_cursor **cur, char *err, size_t errlen)
{
    *cur = NULL;
    int ret = store_read_begin(s, txn, err, errlen);
    if (ret < 0)
        return ret;
    int rc = mdb_cursor_open(*txn, dbi, cur);
    if (rc != 0) {
        mdb_txn_abort(*txn);
        return store_fail(s, rc, "reading the outbox", err, errlen);
    }
    return 0;
}

int store_sink_states(store *s, store_sink_state *out, size_t max, size_t *n, char *err, size_t errlen)
{
    *n = 0;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int ret = s->has_outbox ? read_cursor(s, s->outbox, &txn, &cur, err, errlen) : 0;
    if (ret < 0 || !s->has_outbox)
        return ret;
    int rc;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && *n < max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8)
            continue;
        if (store_codec_sink_state_decode(v.mv_data, v.mv_size, &out[*n]) < 0) {
            ret = util_err(err, errlen, "store: a sink record in %s is corrupt", s->dir);
            break;
        }
        out[*n].sink_id = util_get_be64(k.mv_data);
        (*n)++;
    }
    if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
        ret = store_fail(s, rc, "reading sink records", err, errlen);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return ret;
}

typedef struct {
    MDB_dbi index;
    bool time_first;              /* dead index */
    const unsigned char *prefix;  /* sink id, or NULL */
    int64_t due_by;               /* due index: stop past this next_ms; INT64_MAX: no bound */
    int64_t *next_due_ms;
    store_outbox_cb cb;
    void *ctx;
} walk_spec;

/* The label of e's sink, from its record (one lookup per sink change). */
static void label_of(store *s, MDB_txn *txn, store_outbox_entry *e, store_sink_state *cache)
{
    if (cache->sink_id == e->sink_id && cache->sink[0] != '\0') {
        memcpy(e->sink, cache->sink, sizeof e->sink);
        return;
    }
    unsigned char key[8];
    util_put_be64(key, e->sink_id);
    MDB_val k = mval(key, 8), v;
    memset(cache, 0, sizeof *cache);
    if (mdb_get(txn, s->outbox, &k, &v) == 0)
        (void)store_codec_sink_state_decode(v.mv_data, v.mv_size, cache);
    cache->sink_id = e->sink_id;
    memcpy(e->sink, cache->sink, sizeof e->sink);
}

static int walk_in(store *s, MDB_txn *txn, const walk_spec *w, bool *stopped, char *err, size_t errlen)
{
    store_outbox_entry e;
    store_sink_state cache;
    memset(&cache, 0, sizeof cache);
    store_alert *a = malloc(sizeof *a);
    if (a == NULL)
        return util_err(err, errlen, "store: out of memory");
    MDB_cursor *cur = NULL;
    int ret = 0, rc = mdb_cursor_open(txn, w->index, &cur);
    size_t plen = w->prefix != NULL ? 8 : 0;
    MDB_val k = mval(w->prefix, plen), v;
    for (rc = rc != 0 ? rc : mdb_cursor_get(cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (plen > 0 && (k.mv_size < plen || memcmp(k.mv_data, w->prefix, plen) != 0))
            break;
        if (store_codec_outbox_decode(v.mv_data, v.mv_size, &e) < 0 || !parse_key(&k, w->time_first, &e)) {
            ret = util_err(err, errlen, "store: an outbox entry in %s is corrupt", s->dir);
            break;
        }
        if (!w->time_first && e.next_ms > w->due_by) {
            if (w->next_due_ms != NULL)
                *w->next_due_ms = e.next_ms;
            break;
        }
        label_of(s, txn, &e, &cache);
        bool found = false;
        ret = store_alert_get_in(s, txn, e.alert_at_ms, e.alert_id, a, &found, err, errlen);
        if (ret < 0)
            break;
        if (w->cb(&e, found ? a : NULL, w->ctx) != 0) {
            *stopped = true;
            /* the next entry's time tells the caller when to look again */
            if (w->next_due_ms != NULL && plen > 0 && mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0 &&
                k.mv_size > 24 && memcmp(k.mv_data, w->prefix, plen) == 0)
                *w->next_due_ms = (int64_t)util_get_be64((const unsigned char *)k.mv_data + 8);
            break;
        }
    }
    if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND && !*stopped)
        ret = store_fail(s, rc, "reading the outbox", err, errlen);
    mdb_cursor_close(cur);
    free(a);
    return ret;
}

static int walk(store *s, const walk_spec *w, bool *stopped, char *err, size_t errlen)
{
    if (!s->has_outbox)
        return 0;
    MDB_txn *txn = NULL;
    int ret = store_read_begin(s, &txn, err, errlen);
    if (ret < 0)
        return ret;
    ret = walk_in(s, txn, w, stopped, err, errlen);
    mdb_txn_abort(txn);
    return ret;
}

int store_outbox_due(store *s, uint64_t sink_id, int64_t due_by, store_outbox_cb cb, void *ctx,
                     int64_t *next_due_ms, char *err, size_t errlen)
{
    if (next_due_ms != NULL)
        *next_due_ms = 0;
    unsigned char prefix[8];
    util_put_be64(prefix, sink_id);
    walk_spec w = { s->outbox_due, false, prefix, due_by, next_due_ms, cb, ctx };
    bool stopped = false;
    return walk(s, &w, &stopped, err, errlen);
}

int store_outbox_list(store *s, bool with_dead, store_outbox_cb cb, void *ctx, char *err, size_t errlen)
{
    walk_spec w = { s->outbox_due, false, NULL, INT64_MAX, NULL, cb, ctx };
    bool stopped = false;
    int ret = walk(s, &w, &stopped, err, errlen);
    if (ret < 0 || stopped || !with_dead)
        return ret;
    w.index = s->outbox_dead;
    w.time_first = true;
    return walk(s, &w, &stopped, err, errlen);
}

int store_outbox_pending_count(store *s, uint64_t sink_id, uint64_t *count, char *err, size_t errlen)
{
    *count = 0;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int ret = s->has_outbox ? read_cursor(s, s->outbox_due, &txn, &cur, err, errlen) : 0;
    if (ret < 0 || !s->has_outbox)
        return ret;
    int rc;
    unsigned char prefix[8];
    util_put_be64(prefix, sink_id);
    MDB_val k = mval(prefix, 8), v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 8 || memcmp(k.mv_data, prefix, 8) != 0)
            break;
        (*count)++;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        ret = store_fail(s, rc, "counting the outbox", err, errlen);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return ret;
}
