/*
 * apply.c: the per-event pipeline and its transaction, shared by the server's
 * committer and `veille replay`, so both store, mark and alert alike.
 */
#include "pipeline/pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static void collect_alert(const store_alert *a, void *ctx)
{
    pipeline_txn *p = ctx;
    if (p->stages->on_alert != NULL)
        p->stages->on_alert(a, p->stages->ctx);
    if (p->alerts_lost)
        return;
    if (p->n_alerts == p->cap_alerts) {
        size_t cap = p->cap_alerts ? 2 * p->cap_alerts : 16;
        store_alert *grown = realloc(p->alerts, cap * sizeof *grown);
        if (grown == NULL) {
            p->alerts_lost = true; /* pipeline_txn_commit refuses: never commit without them */
            return;
        }
        p->alerts = grown;
        p->cap_alerts = cap;
    }
    p->alerts[p->n_alerts++] = *a;
}

static void explain_through(const engine_explain *x, void *ctx)
{
    pipeline_txn *p = ctx;
    p->stages->on_explain(x, p->stages->ctx);
}

int pipeline_txn_begin(pipeline_txn *p, store *st, const pipeline_stages *stages, char *err, size_t errlen)
{
    p->stages = stages;
    p->n_alerts = 0;
    p->alerts_lost = false;
    p->hooks.on_alert = collect_alert;
    p->hooks.on_explain = stages->on_explain != NULL ? explain_through : NULL;
    p->hooks.ctx = p;
    return store_txn_begin(st, &p->t, err, errlen);
}

int pipeline_apply_event(pipeline_txn *p, const event_t *ev, int64_t received_ms, int64_t now_ms,
                         pipeline_outcome *outcome, char *err, size_t errlen)
{
    bool seen = false;
    int rc = store_delivery_seen(p->t, ev->delivery_id, &seen, err, errlen);
    if (rc < 0)
        return rc;
    if (seen) {
        *outcome = PIPELINE_DUPLICATE;
        return 0;
    }
    store_outcome applied = STORE_APPLIED;
    rc = store_apply_event(p->t, ev, &applied, err, errlen);
    if (rc < 0)
        return rc;
    /* ignored updates changed nothing: no rule runs on them */
    if (p->stages->engine != NULL && applied == STORE_APPLIED) {
        rc = engine_eval_event(p->stages->engine, p->t, ev, now_ms, &p->hooks, err, errlen);
        if (rc < 0)
            return rc;
    }
    rc = store_delivery_mark(p->t, ev->delivery_id, ev->type, received_ms, err, errlen);
    if (rc < 0)
        return rc;
    *outcome = applied == STORE_STALE_UPDATE   ? PIPELINE_STALE
               : applied == STORE_AFTER_DELETE ? PIPELINE_AFTER_DELETE
                                               : PIPELINE_APPLIED;
    return 0;
}

static void end_stages(pipeline_txn *p, bool committed)
{
    if (p->stages->engine != NULL)
        engine_settle(p->stages->engine, committed);
    if (p->stages->deliver != NULL)
        deliver_txn_end(p->stages->deliver, committed);
}

int pipeline_txn_commit(pipeline_txn *p, char *err, size_t errlen)
{
    int rc = 0;
    if (p->alerts_lost)
        rc = util_err(err, errlen, "out of memory holding this transaction's alerts");
    for (size_t i = 0; rc == 0 && p->stages->deliver != NULL && i < p->n_alerts; i++)
        rc = deliver_txn_queue(p->stages->deliver, p->t, &p->alerts[i], err, errlen);
    for (size_t i = 0; rc == 0 && p->stages->sinks != NULL && i < p->n_alerts; i++)
        if (alert_sinks_write(p->stages->sinks, &p->alerts[i], err, errlen) < 0)
            rc = STORE_ERR_IO;
    if (rc == 0 && p->stages->sinks != NULL && p->n_alerts > 0 && alert_sinks_sync(p->stages->sinks, err, errlen) < 0)
        rc = STORE_ERR_IO;
    if (rc < 0) {
        pipeline_txn_abort(p);
        return rc;
    }
    rc = store_txn_commit(p->t, err, errlen);
    p->t = NULL; /* commit frees the transaction whatever it returns */
    end_stages(p, rc == 0);
    return rc;
}

void pipeline_txn_abort(pipeline_txn *p)
{
    if (p->t == NULL)
        return;
    store_txn_abort(p->t);
    p->t = NULL;
    end_stages(p, false);
}

void pipeline_txn_free(pipeline_txn *p)
{
    pipeline_txn_abort(p);
    free(p->alerts);
    p->alerts = NULL;
    p->n_alerts = p->cap_alerts = 0;
}
