/*
 * alerts.c: alert records and suppression windows. Alerts are written in the
 * transaction of the event that raised them, keyed by event time so that
 * `veille alerts --since` and retention read them in order; alert_open remembers,
 * per (rule, key), the alert a later match may be folded into.
 */
#include <stdlib.h>
#include <string.h>

#include "store/codec.h"
#include "store/internal.h"
#include "util/util.h"

#define OKEY_MAX (64 + 1 + STORE_ALERT_KEY_MAX)
#define AKEY_MAX (8 + STORE_ALERT_ID_MAX)

static size_t open_key(unsigned char *buf, const char *rule, const char *key)
{
    size_t rl = strnlen(rule, 64), kl = strnlen(key, STORE_ALERT_KEY_MAX);
    if (rl >= 64 || kl >= STORE_ALERT_KEY_MAX)
        return 0;
    memcpy(buf, rule, rl);
    buf[rl] = 0x00;
    memcpy(buf + rl + 1, key, kl);
    return rl + 1 + kl;
}

static size_t alert_key(unsigned char *buf, int64_t at_ms, const char *id)
{
    size_t il = strnlen(id, STORE_ALERT_ID_MAX);
    if (il >= STORE_ALERT_ID_MAX)
        return 0;
    util_put_be64(buf, key_time(at_ms));
    memcpy(buf + 8, id, il);
    return 8 + il;
}

int store_alert_get_in(store *s, MDB_txn *txn, int64_t at_ms, const char *id, store_alert *out, bool *found,
                       char *err, size_t errlen)
{
    *found = false;
    unsigned char ak[AKEY_MAX];
    size_t n = alert_key(ak, at_ms, id);
    if (n == 0)
        return 0;
    MDB_val k = mval(ak, n), v;
    int rc = mdb_get(txn, s->alerts, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store_fail(s, rc, "reading an alert", err, errlen);
    if (store_codec_alert_decode(v.mv_data, v.mv_size, out) < 0)
        return util_err(err, errlen, "store: alert %s in %s is corrupt", id, s->dir);
    *found = true;
    return 0;
}

static int put_alert(store_txn *t, const store_alert *a, char *err, size_t errlen)
{
    unsigned char ak[AKEY_MAX];
    size_t n = alert_key(ak, a->at_ms, a->id);
    if (n == 0)
        return util_err(err, errlen, "store: alert id too long");
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    int ret = 0;
    if (store_codec_alert_encode(&buf, a) < 0) {
        ret = util_err(err, errlen, "store: out of memory encoding an alert");
        goto done;
    }
    MDB_val k = mval(ak, n), v = mval(buf.data, buf.size);
    int rc = mdb_put(t->txn, t->s->alerts, &k, &v, 0);
    if (rc != 0)
        ret = store_fail(t->s, rc, "writing an alert", err, errlen);
done:
    msgpack_sbuffer_destroy(&buf);
    return ret;
}

/* The open alert of (rule, key); *found false when none. */
static int get_open(MDB_txn *txn, store *st, const unsigned char *ok, size_t n, store_open_alert *out, bool *found,
                    const char *rule, char *err, size_t errlen)
{
    *found = false;
    MDB_val k = mval(ok, n), v;
    int rc = mdb_get(txn, st->alert_open, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store_fail(st, rc, "reading an open alert", err, errlen);
    if (store_codec_open_alert_decode(v.mv_data, v.mv_size, out) < 0)
        return util_err(err, errlen, "store: an open-alert record of rule %s in %s is corrupt", rule, st->dir);
    *found = true;
    return 0;
}

static int put_open(store_txn *t, const unsigned char *ok, size_t n, const store_open_alert *r, char *err,
                    size_t errlen)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    if (store_codec_open_alert_encode(&buf, r) < 0) {
        msgpack_sbuffer_destroy(&buf);
        return util_err(err, errlen, "store: out of memory encoding an open alert");
    }
    MDB_val k = mval(ok, n), v = mval(buf.data, buf.size);
    int rc = mdb_put(t->txn, t->s->alert_open, &k, &v, 0);
    msgpack_sbuffer_destroy(&buf);
    return rc != 0 ? store_fail(t->s, rc, "writing an open alert", err, errlen) : 0;
}

int store_txn_alert_suppress(store_txn *t, const char *rule, const char *key, int64_t at_ms, int64_t window_ms,
                             bool *suppressed, char open_id[STORE_ALERT_ID_MAX], char *err, size_t errlen)
{
    *suppressed = false;
    if (window_ms <= 0)
        return 0;
    unsigned char ok[OKEY_MAX];
    size_t n = open_key(ok, rule, key);
    if (n == 0)
        return util_err(err, errlen, "store: rule name or alert key too long");
    store_open_alert r;
    bool found = false;
    int ret = get_open(t->txn, t->s, ok, n, &r, &found, rule, err, errlen);
    if (ret < 0 || !found)
        return ret;
    int64_t d = at_ms > r.at_ms ? at_ms - r.at_ms : r.at_ms - at_ms;
    if (d >= window_ms)
        return 0;
    /* Counted in the small open record: a busy key's matches touch one small
     * page rather than rewriting its alert every time. */
    r.suppressed++;
    if (at_ms > r.last_suppressed_at_ms)
        r.last_suppressed_at_ms = at_ms;
    ret = put_open(t, ok, n, &r, err, errlen);
    if (ret == 0) {
        *suppressed = true;
        if (open_id != NULL)
            memcpy(open_id, r.id, STORE_ALERT_ID_MAX);
    }
    return ret;
}

/* The closing open alert's counts move into its record before it is replaced. */
static int fold_open_counts(store_txn *t, const store_open_alert *r, char *err, size_t errlen)
{
    if (r->suppressed == 0)
        return 0;
    unsigned char ak[AKEY_MAX];
    size_t an = alert_key(ak, r->at_ms, r->id);
    if (an == 0)
        return 0;
    MDB_val k = mval(ak, an), v;
    int rc = mdb_get(t->txn, t->s->alerts, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0; /* pruned with its history */
    if (rc != 0)
        return store_fail(t->s, rc, "reading an alert", err, errlen);
    store_alert *a = malloc(sizeof *a);
    if (a == NULL)
        return util_err(err, errlen, "store: out of memory");
    int ret = 0;
    if (store_codec_alert_decode(v.mv_data, v.mv_size, a) < 0) {
        ret = util_err(err, errlen, "store: alert %s in %s is corrupt", r->id, t->s->dir);
    } else {
        a->suppressed = r->suppressed;
        a->last_suppressed_at_ms = r->last_suppressed_at_ms;
        ret = put_alert(t, a, err, errlen);
    }
    free(a);
    return ret;
}

int store_txn_alert_add(store_txn *t, const store_alert *a, bool opens_window, char *err, size_t errlen)
{
    int ret = put_alert(t, a, err, errlen);
    if (ret < 0 || !opens_window)
        return ret;
    unsigned char ok[OKEY_MAX];
    size_t n = open_key(ok, a->rule, a->key);
    if (n == 0)
        return util_err(err, errlen, "store: rule name or alert key too long");
    store_open_alert prev, r;
    bool found = false;
    ret = get_open(t->txn, t->s, ok, n, &prev, &found, a->rule, err, errlen);
    if (ret == 0 && found)
        ret = fold_open_counts(t, &prev, err, errlen);
    if (ret < 0)
        return ret;
    memset(&r, 0, sizeof r);
    r.at_ms = a->at_ms;
    memcpy(r.id, a->id, sizeof r.id);
    return put_open(t, ok, n, &r, err, errlen);
}

int store_list_alerts_in_txn(store *s, int64_t since_ms, store_alert_txn_cb cb, void *ctx, char *err,
                             size_t errlen)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int ret = store_read_begin(s, &txn, err, errlen);
    if (ret < 0)
        return ret;
    store_alert *a = malloc(sizeof *a);
    if (a == NULL) {
        mdb_txn_abort(txn);
        return util_err(err, errlen, "store: out of memory");
    }
    int rc = mdb_cursor_open(txn, s->alerts, &cur);
    unsigned char seek[8];
    util_put_be64(seek, key_time(since_ms));
    MDB_val k = mval(seek, 8), v;
    for (rc = rc != 0 ? rc : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (store_codec_alert_decode(v.mv_data, v.mv_size, a) < 0) {
            ret = util_err(err, errlen, "store: an alert record in %s is corrupt", s->dir);
            break;
        }
        /* an alert still open has its running counts in alert_open */
        unsigned char ok[OKEY_MAX];
        size_t n = open_key(ok, a->rule, a->key);
        store_open_alert r;
        bool found = false;
        if (n != 0 && (ret = get_open(txn, s, ok, n, &r, &found, a->rule, err, errlen)) < 0)
            break;
        if (found && strcmp(r.id, a->id) == 0) {
            a->suppressed = r.suppressed;
            a->last_suppressed_at_ms = r.last_suppressed_at_ms;
        }
        if (a->incident_update)
            continue; /* a message the sinks got (engine.c build_update), not an alert */
        if (cb(a, txn, ctx) != 0)
            break;
    }
    if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
        ret = store_fail(s, rc, "listing alerts", err, errlen);
    if (cur != NULL)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    free(a);
    return ret;
}

typedef struct {
    store_alert_cb cb;
    void *ctx;
} plain_cb;

static int call_plain(const store_alert *a, MDB_txn *txn, void *vctx)
{
    (void)txn;
    plain_cb *p = vctx;
    return p->cb(a, p->ctx);
}

int store_list_alerts(store *s, int64_t since_ms, store_alert_cb cb, void *ctx, char *err, size_t errlen)
{
    plain_cb p = {cb, ctx};
    return store_list_alerts_in_txn(s, since_ms, call_plain, &p, err, errlen);
}
