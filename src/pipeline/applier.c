/*
 * applier.c: the apply thread. It reads the log after the store's applied
 * position and runs each record through pipeline_apply_event, in transactions
 * as large as the backlog allows (PIPELINE_APPLY_EVENTS events or
 * PIPELINE_APPLY_MS), each of which also records the last position it applied
 * (store_txn_set_applied): a crash between two transactions replays exactly
 * what the store does not have. Between transactions it writes the alert
 * delivery outcomes the loop reported, and prunes.
 *
 * RELEASING THE LOG. The store runs with MDB_NOMETASYNC: a commit fdatasyncs
 * data.mdb's data pages but not its meta page, so a crash can roll the store
 * back to the transaction before the last one. A log segment may be deleted
 * only once every record in it is in a commit that survives a crash:
 *  - the commit before the last one does: the last commit's fdatasync of
 *    data.mdb flushed every dirty page of the file, the previous meta page
 *    included (before_last);
 *  - the last one does after store_sync (mdb_env_sync force), done at most
 *    every RELEASE_SYNC_MS while records wait to be released, and at stop.
 */
#include "pipeline/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/util.h"

#define PRUNE_STEP_MAX 10000
#define PRUNE_INTERVAL_MS 1000
#define APPLY_RETRY_MS 1000   /* after a failed apply (store full): try again this often */
#define SETTLE_RETRY_MS 1000
#define RELEASE_SYNC_MS 1000
#define RECOVER_PAD_MAX 100000 /* positions a cut log tail may have lost (see recover) */
/* The log could not be read (WAL_ECORRUPT...). Trap: the wal codes overlap the
 * store's (WAL_ECORRUPT == STORE_ERR_FULL == -2), so they never travel as
 * they are: a log read failure must be retried, never mistaken for one
 * record's fault and skipped. */
#define APPLY_ERR_LOG (-100)
/* No write transaction could be begun (an env in panic state): every record shares it. */
#define APPLY_ERR_BEGIN (-101)

const double pipeline_lag_le[PIPELINE_LAG_BUCKETS - 1] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30};

typedef struct {
    pipeline_queue *q;
    size_t max_events, count;
    int64_t started_ns, now_ms;
    uint64_t last;              /* last position handled */
    uint64_t outcomes[4];
    uint64_t skipped;           /* records that are not ours: logged, passed over */
    int rc;                     /* the store error that stopped the read */
    char *err;
    size_t errlen;
} apply_ctx;

static int apply_record(uint64_t pos, const void *rec, size_t len, void *vctx)
{
    apply_ctx *c = vctx;
    pipeline_queue *q = c->q;
    store_event_record r;
    if (store_event_record_decode(rec, len, &r) < 0) {
        /* its CRC was right, so veille wrote it: a bug or a newer veille's record.
         * Applying nothing of it is all that can be done; say so loudly. */
        log_line(LOG_ERROR, "msg=\"write-ahead log record is not an event this veille reads: skipped\" position=%llu "
                 "bytes=%zu", (unsigned long long)pos, len);
        c->skipped++;
    } else {
        pipeline_outcome outcome = PIPELINE_APPLIED;
        int rc = pipeline_apply_event(&q->txn, &r.ev, r.received_ms, c->now_ms, &outcome, c->err, c->errlen);
        if (rc < 0) {
            c->rc = rc;
            return -1;
        }
        c->outcomes[outcome]++;
        memcpy(q->applied_ids[c->count], r.ev.delivery_id, EVENT_ID_MAX);
        q->applied_received[c->count] = r.received_ms;
        c->count++;
    }
    c->last = pos;
    if (c->count >= c->max_events || (util_mono_ns() - c->started_ns) / 1000000 >= PIPELINE_APPLY_MS)
        return 1;
    return 0;
}

/* A failure every record shares: the apply stops and retries, deliveries are refused. */
static bool shared_failure(int rc)
{
    return rc == STORE_ERR_FULL || rc == STORE_ERR_IO || rc == APPLY_ERR_LOG || rc == APPLY_ERR_BEGIN;
}

static void note_failure(pipeline_queue *q, int rc, const char *err)
{
    bool shared = shared_failure(rc);
    pthread_mutex_lock(&q->mu);
    q->stats.apply_failures++;
    pipeline_store_health *h = &q->health;
    bool first = !h->failing;
    if (shared) {
        if (first)
            h->since_ms = util_now_ms();
        h->failing = true;
        h->rc = rc;
        snprintf(h->err, sizeof h->err, "%s", err);
    }
    pthread_mutex_unlock(&q->mu);
    if (!shared || first)
        log_line(LOG_ERROR, "msg=\"apply failed: deliveries stay in the write-ahead log%s\" error=\"%s\"",
                 shared ? "; refusing new ones until it succeeds, retrying every second" : "", err);
}

static void release_log(pipeline_queue *q, uint64_t upto)
{
    if (upto <= q->released)
        return;
    char err[256];
    if (wal_release(q->log, upto, err, sizeof err) < 0)
        log_line(LOG_WARN, "msg=\"write-ahead log: cannot release applied segments\" error=\"%s\"", err);
    else
        q->released = upto;
}

/* Records after q->applied, at most max_events of them, with the outcomes
 * waiting when with_settles, in one transaction. Returns 0 (also when there
 * was nothing to apply) or the store error; *done how many records it passed. */
static int apply_once(pipeline_queue *q, size_t max_events, bool with_settles, size_t *settled, uint64_t *done,
                      char *err, size_t errlen)
{
    apply_ctx c = {.q = q, .max_events = max_events, .started_ns = util_mono_ns(), .now_ms = util_now_ms(),
                   .last = q->applied, .err = err, .errlen = errlen};
    *settled = 0;
    *done = 0;
    int rc = pipeline_txn_begin(&q->txn, q->c.st, &q->stages, err, errlen);
    if (rc == STORE_ERR)
        return APPLY_ERR_BEGIN;
    if (rc == 0 && with_settles && q->c.deliver != NULL)
        rc = deliver_txn_settle(q->c.deliver, q->txn.t, c.now_ms, settled, err, errlen);
    if (rc == 0) {
        rc = wal_read_from(q->log, q->applied, apply_record, &c, NULL, err, errlen);
        if (rc < 0)
            rc = c.rc < 0 ? c.rc : APPLY_ERR_LOG; /* the store's code, or the reader's failure */
    }
    if (rc == 0 && c.last > q->applied)
        rc = store_txn_set_applied(q->txn.t, c.last, err, errlen);
    if (rc == 0 && c.last == q->applied && *settled == 0) {
        pipeline_txn_abort(&q->txn); /* nothing to write */
        return 0;
    }
    size_t alerts = q->txn.n_alerts;
    if (rc == 0)
        rc = pipeline_txn_commit(&q->txn, err, errlen);
    else
        pipeline_txn_abort(&q->txn);
    if (rc < 0)
        return rc;

    int64_t now = util_now_ms();
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < c.count; i++) {
        pipeline_pending_remove(&q->pending, q->applied_ids[i]);
        double lag = (double)(now - q->applied_received[i]) / 1000.0;
        size_t b = 0;
        while (b < PIPELINE_LAG_BUCKETS - 1 && lag > pipeline_lag_le[b])
            b++;
        q->stats.lag_bucket[b]++;
        q->stats.lag_seconds_sum += lag > 0 ? lag : 0;
    }
    q->stats.lag_count += c.count;
    for (int k = 0; k < 4; k++)
        q->stats.applied[k] += c.outcomes[k];
    q->stats.apply_txns++;
    q->stats.alerts += alerts;
    q->alerts_unsent += alerts;
    q->health.failing = false;
    uint64_t before = q->applied;
    q->applied = c.last;
    pthread_mutex_unlock(&q->mu);
    if (alerts > 0)
        pipeline_notify_alerts(q);
    *done = c.last - before;
    /* see RELEASING THE LOG */
    release_log(q, q->before_last);
    q->before_last = before;
    return 0;
}

/* One apply step; a failure that one record alone may cause (not full, not
 * I/O) is narrowed down record by record, and a record the store refuses alone
 * is passed over with an error line rather than blocking every later one. */
static int apply_step(pipeline_queue *q, uint64_t *done)
{
    char err[256];
    size_t settled = 0;
    int rc = apply_once(q, PIPELINE_APPLY_EVENTS, true, &settled, done, err, sizeof err);
    if (rc < 0 && settled > 0) /* the outcomes must never be what keeps events out */
        rc = apply_once(q, PIPELINE_APPLY_EVENTS, false, &settled, done, err, sizeof err);
    if (rc == 0 || shared_failure(rc)) {
        if (rc < 0)
            note_failure(q, rc, err);
        return rc;
    }
    rc = apply_once(q, 1, false, &settled, done, err, sizeof err);
    if (rc == 0)
        return 0; /* the culprit is further on: the next steps find it */
    if (shared_failure(rc)) {
        note_failure(q, rc, err);
        return rc;
    }
    /* this record alone fails: record it as applied (so the log moves on) */
    uint64_t pos = q->applied + 1;
    log_line(LOG_ERROR, "msg=\"write-ahead log record refused by the store: skipped\" position=%llu error=\"%s\"",
             (unsigned long long)pos, err);
    store_txn *t = NULL;
    char err2[256];
    int rc2 = store_txn_begin(q->c.st, &t, err2, sizeof err2);
    if (rc2 == 0)
        rc2 = store_txn_set_applied(t, pos, err2, sizeof err2);
    if (rc2 == 0) {
        rc2 = store_txn_commit(t, err2, sizeof err2);
        t = NULL;
    }
    store_txn_abort(t);
    if (rc2 < 0) {
        note_failure(q, rc2, err2);
        return rc2;
    }
    pthread_mutex_lock(&q->mu);
    q->applied = pos;
    pthread_mutex_unlock(&q->mu);
    *done = 1;
    return 0;
}

int pipeline_applier_recover(pipeline_queue *q, char *err, size_t errlen)
{
    wal_stats_info ws;
    wal_stats(q->log, &ws);
    if (ws.durable < q->applied && q->applied - ws.durable > RECOVER_PAD_MAX)
        return util_err(err, errlen,
                        "%s/wal ends at record %llu but the store has applied up to %llu: the log is not this "
                        "store's (move %s/wal aside to start a new one)",
                        q->c.data_dir, (unsigned long long)ws.durable, (unsigned long long)q->applied,
                        q->c.data_dir);
    if (ws.durable < q->applied) {
        /* The log's tail was cut after the store applied it (a hand-cut file, or
         * a tail the disk lost): nothing is missing, the store has those
         * records. But new records must not take positions the store counts as
         * applied, so fill the gap with empty records, never read (the apply
         * reads after the applied position). */
        log_line(LOG_WARN, "msg=\"write-ahead log ends before the store's applied position: its cut tail was "
                 "applied already; padding\" log_end=%llu applied=%llu", (unsigned long long)ws.durable,
                 (unsigned long long)q->applied);
        uint64_t pos = ws.durable;
        int rc = 0;
        while (rc == 0 && pos < q->applied)
            rc = wal_append(q->log, "", 0, &pos, err, errlen);
        if (rc == 0)
            rc = wal_sync(q->log, NULL, err, errlen);
        if (rc < 0)
            return rc;
        wal_stats(q->log, &ws);
    }
    if (ws.durable > q->applied && ws.first > q->applied + 1)
        return util_err(err, errlen,
                        "%s/wal starts at record %llu but the store has applied only up to %llu: records are "
                        "missing from the log",
                        q->c.data_dir, (unsigned long long)ws.first, (unsigned long long)q->applied);
    q->durable = ws.durable;
    uint64_t waiting = ws.durable - q->applied, replayed = 0, done = 0;
    if (waiting == 0)
        return 0;
    log_line(LOG_INFO, "msg=\"write-ahead log: applying records logged before the restart\" records=%llu",
             (unsigned long long)waiting);
    int64_t t0 = util_now_ms();
    while (q->applied < q->durable && apply_step(q, &done) == 0)
        replayed += done;
    if (q->applied < q->durable)
        log_line(LOG_WARN, "msg=\"write-ahead log: not all applied at start; serving refuses deliveries until they "
                 "are\" applied=%llu waiting=%llu", (unsigned long long)replayed,
                 (unsigned long long)(q->durable - q->applied));
    else
        log_line(LOG_INFO, "msg=\"write-ahead log replayed\" records=%llu ms=%lld", (unsigned long long)replayed,
                 (long long)(util_now_ms() - t0));
    return 0;
}

static void prune_step(pipeline_queue *q, bool *more)
{
    char err[256];
    store_prune_result r;
    memset(&r, 0, sizeof r);
    *more = false;
    if (store_prune(q->c.st, util_now_ms(), q->c.retention_ms, q->c.delivery_keep_ms, PRUNE_STEP_MAX, &r, err,
                    sizeof err) < 0) {
        log_line(LOG_WARN, "msg=\"prune failed\" error=\"%s\"", err);
        return;
    }
    if (r.history_pruned || r.deliveries_pruned)
        log_line(LOG_DEBUG, "msg=pruned history=%llu delivery_ids=%llu", (unsigned long long)r.history_pruned,
                 (unsigned long long)r.deliveries_pruned);
    pthread_mutex_lock(&q->mu);
    q->stats.pruned_history += r.history_pruned;
    q->stats.pruned_deliveries += r.deliveries_pruned;
    pthread_mutex_unlock(&q->mu);
    *more = r.more;
}

/* Outcomes reported while no record came to carry them: their own transaction. */
static int settle_step(pipeline_queue *q)
{
    char err[256];
    store_txn *t = NULL;
    size_t settled = 0;
    int rc = store_txn_begin(q->c.st, &t, err, sizeof err);
    if (rc == 0)
        rc = deliver_txn_settle(q->c.deliver, t, util_now_ms(), &settled, err, sizeof err);
    if (rc == 0) {
        rc = store_txn_commit(t, err, sizeof err);
        t = NULL;
    }
    store_txn_abort(t);
    deliver_txn_end(q->c.deliver, rc == 0);
    if (rc < 0)
        log_line(LOG_WARN, "msg=\"cannot record alert deliveries; retrying in 1 s\" error=\"%s\"", err);
    return rc;
}

/* The last commit made durable (see RELEASING THE LOG), then its records released. */
static void sync_and_release(pipeline_queue *q)
{
    char err[256];
    q->synced_ms = util_now_ms();
    if (store_sync(q->c.st, err, sizeof err) < 0) {
        log_line(LOG_WARN, "msg=\"cannot sync the store; the log is kept\" error=\"%s\"", err);
        return;
    }
    q->before_last = q->applied;
    release_log(q, q->applied);
}

static bool settles_waiting(pipeline_queue *q)
{
    return q->c.deliver != NULL && deliver_settles_waiting(q->c.deliver);
}

static void wait_until(pipeline_queue *q, int64_t deadline_ms)
{
    int64_t wait_ms = deadline_ms - util_now_ms();
    if (wait_ms <= 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += wait_ms / 1000;
    ts.tv_nsec += (wait_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&q->apply_cv, &q->mu, &ts);
}

void *pipeline_applier_main(void *arg)
{
    pipeline_queue *q = arg;
    int64_t next_prune = util_now_ms() + PRUNE_INTERVAL_MS, apply_after = 0, settle_after = 0;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        int64_t now = util_now_ms();
        bool records = q->durable > q->applied && now >= apply_after;
        bool unreleased = q->applied > q->released && now - q->synced_ms >= RELEASE_SYNC_MS;
        if (!records && !q->stop_apply && !q->has_next_engine && now < next_prune && !unreleased &&
            !(now >= settle_after && settles_waiting(q))) {
            int64_t until = next_prune;
            if (q->applied > q->released && q->synced_ms + RELEASE_SYNC_MS < until)
                until = q->synced_ms + RELEASE_SYNC_MS;
            if (q->durable > q->applied && apply_after < until)
                until = apply_after;
            wait_until(q, until);
            pthread_mutex_unlock(&q->mu);
            continue;
        }
        engine *old = NULL;
        if (q->has_next_engine) { /* between transactions, under mu: see pipeline_queue_with_engine */
            old = q->stages.engine;
            q->stages.engine = q->next_engine;
            q->next_engine = NULL;
            q->has_next_engine = false;
        }
        bool stop = q->stop_apply;
        pthread_mutex_unlock(&q->mu);
        engine_free(old);
        if (stop)
            break;
        uint64_t done = 0;
        if (records) {
            if (apply_step(q, &done) < 0)
                apply_after = util_now_ms() + APPLY_RETRY_MS;
        } else if (now >= settle_after && settles_waiting(q)) {
            if (settle_step(q) < 0)
                settle_after = util_now_ms() + SETTLE_RETRY_MS;
        }
        if (util_now_ms() >= next_prune) {
            bool more = false;
            prune_step(q, &more);
            next_prune = util_now_ms() + (more ? 0 : PRUNE_INTERVAL_MS);
        }
        if (unreleased)
            sync_and_release(q);
    }
    /* SIGTERM: what the log holds is applied now, within a bound; the rest at the next start */
    int64_t deadline = util_now_ms() + PIPELINE_STOP_APPLY_MS;
    uint64_t done = 0;
    while (q->applied < q->durable && util_now_ms() < deadline && apply_step(q, &done) == 0)
        ;
    if (settles_waiting(q))
        settle_step(q); /* what the loop learnt before stopping is not sent again after a restart */
    if (q->applied < q->durable)
        log_line(LOG_WARN, "msg=\"stopping with deliveries not yet applied; they are applied at the next start\" "
                 "waiting=%llu", (unsigned long long)(q->durable - q->applied));
    sync_and_release(q);
    return NULL;
}
