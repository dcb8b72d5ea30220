/*
 * triage.c: what an analyst decided about an alert (ack, resolve, false
 * positive), one record per alert id in its own database. The alert record
 * itself stays serve's: a CLI writing beside serve (STORE_SIDE_WRITER) never
 * rewrites a record serve may be folding suppressed counts into.
 */
#include <stdlib.h>
#include <string.h>

#include "store/codec.h"
#include "store/internal.h"
#include "util/util.h"

static const char *const state_names[] = {
    [STORE_STATE_OPEN] = "open",
    [STORE_STATE_ACKED] = "acked",
    [STORE_STATE_RESOLVED] = "resolved",
    [STORE_STATE_FP] = "fp",
};
#define N_STATES (sizeof state_names / sizeof state_names[0])

const char *store_state_name(int64_t state)
{
    return state >= 0 && (uint64_t)state < N_STATES ? state_names[state] : NULL;
}

int store_state_parse(const char *name)
{
    for (size_t i = 0; i < N_STATES; i++)
        if (strcmp(state_names[i], name) == 0)
            return (int)i;
    return -1;
}

static int triage_get_in(store *s, MDB_txn *txn, const char *id, store_triage *out, bool *found, char *err,
                         size_t errlen)
{
    *found = false;
    memset(out, 0, sizeof *out);
    if (!s->has_triage)
        return 0;
    size_t n = strnlen(id, STORE_ALERT_ID_MAX);
    if (n == 0 || n >= STORE_ALERT_ID_MAX)
        return 0;
    MDB_val k = mval(id, n), v;
    int rc = mdb_get(txn, s->triage, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store_fail(s, rc, "reading a triage record", err, errlen);
    if (store_codec_triage_decode(v.mv_data, v.mv_size, out) < 0)
        return util_err(err, errlen, "store: the triage record of alert %s in %s is corrupt", id, s->dir);
    *found = true;
    return 0;
}

int store_triage_get(store *s, const char *alert_id, store_triage *out, bool *found, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    int ret = store_read_begin(s, &txn, err, errlen);
    if (ret < 0)
        return ret;
    ret = triage_get_in(s, txn, alert_id, out, found, err, errlen);
    mdb_txn_abort(txn);
    return ret;
}

int store_txn_triage_get(store_txn *t, const char *alert_id, store_triage *out, bool *found, char *err,
                         size_t errlen)
{
    return triage_get_in(t->s, t->txn, alert_id, out, found, err, errlen);
}

int store_txn_triage_put(store_txn *t, const store_triage *r, char *err, size_t errlen)
{
    size_t n = strnlen(r->alert_id, STORE_ALERT_ID_MAX);
    if (n == 0 || n >= STORE_ALERT_ID_MAX)
        return util_err(err, errlen, "store: alert id empty or too long");
    if (store_state_name(r->state) == NULL)
        return util_err(err, errlen, "store: unknown alert state %lld", (long long)r->state);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    if (store_codec_triage_encode(&buf, r) < 0) {
        msgpack_sbuffer_destroy(&buf);
        return util_err(err, errlen, "store: out of memory encoding a triage record");
    }
    MDB_val k = mval(r->alert_id, n), v = mval(buf.data, buf.size);
    int rc = mdb_put(t->txn, t->s->triage, &k, &v, 0);
    msgpack_sbuffer_destroy(&buf);
    return rc != 0 ? store_fail(t->s, rc, "writing a triage record", err, errlen) : 0;
}

typedef struct {
    store *s;
    MDB_txn *txn;
    store_alert_state_cb cb;
    void *ctx;
    char *err;
    size_t errlen;
    int ret;
} states_ctx;

static int with_state(const store_alert *a, MDB_txn *txn, void *vctx)
{
    states_ctx *c = vctx;
    store_triage t;
    bool found = false;
    if ((c->ret = triage_get_in(c->s, txn, a->id, &t, &found, c->err, c->errlen)) < 0)
        return 1;
    return c->cb(a, found ? t.state : STORE_STATE_OPEN, c->ctx);
}

int store_list_alert_states(store *s, int64_t since_ms, store_alert_state_cb cb, void *ctx, char *err,
                            size_t errlen)
{
    states_ctx c = {.s = s, .cb = cb, .ctx = ctx, .err = err, .errlen = errlen};
    int ret = store_list_alerts_in_txn(s, since_ms, with_state, &c, err, errlen);
    return ret < 0 ? ret : c.ret;
}

bool store_alert_key_split(const char *key, char *kind, const char **value)
{
    if (strncmp(key, "user:", 5) == 0) {
        *kind = STORE_KEY_USER;
        *value = key + 5;
        return true;
    }
    if (strncmp(key, "ip:", 3) == 0) {
        *kind = STORE_KEY_IP;
        *value = key + 3;
        return true;
    }
    return false;
}

int store_allow_from_alert(const store_alert *a, const store_triage *tr, store_allow_entry *out, char *err,
                           size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *value;
    if (!store_alert_key_split(a->key, &out->kind, &value))
        return util_err(err, errlen, "the alert's key '%.64s' is neither user:ID nor ip:ADDR", a->key);
    snprintf(out->rule, sizeof out->rule, "%s", a->rule);
    snprintf(out->value, sizeof out->value, "%s", value);
    snprintf(out->by, sizeof out->by, "%s", tr->by);
    out->added_ms = tr->at_ms;
    char note_all[STORE_TRIAGE_NOTE_MAX + 64];
    snprintf(note_all, sizeof note_all, "false positive %s: %s", a->id, tr->note);
    util_copy_utf8(out->note, sizeof out->note, note_all, strlen(note_all)); /* cut on a character */
    return 0;
}

int store_txn_triage_decide(store_txn *t, const store_triage *tr, const store_allow_entry *allow, char *err,
                            size_t errlen)
{
    int rc = store_txn_triage_put(t, tr, err, errlen);
    if (rc == 0 && allow != NULL)
        rc = store_txn_allow_put(t, allow, err, errlen);
    return rc;
}
