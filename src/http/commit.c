/*
 * commit.c: the group committer thread. One LMDB write transaction (one fsync) per
 * batch of deliveries; the loop answers them when the batch comes back. Between
 * batches the same thread prunes old history and delivery ids in bounded steps, so
 * retention never competes with ingestion for the single LMDB writer.
 */
#include "http/commit.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdio.h>
#include <unistd.h>

#include "util/log.h"
#include "util/util.h"

#define PRUNE_STEP_MAX 10000
#define PRUNE_INTERVAL_MS 1000
#define RELEASE_CHECK_MS 20

static void collect_alert(const store_alert *a, void *ctx)
{
    commit_queue *q = ctx;
    if (q->n_alerts == q->cap_alerts) {
        size_t cap = q->cap_alerts ? 2 * q->cap_alerts : 16;
        store_alert *p = realloc(q->alerts, cap * sizeof *p);
        if (p == NULL) {
            q->n_alerts = SIZE_MAX; /* remembered as a failure by write_items */
            return;
        }
        q->alerts = p;
        q->cap_alerts = cap;
    }
    if (q->n_alerts != SIZE_MAX)
        q->alerts[q->n_alerts++] = *a;
}

/* The alerts of a transaction reach the sinks (and disk) before it commits: a
 * crash in between repeats them on retry (same ids) rather than losing them. */
static int emit_alerts(commit_queue *q, char *err, size_t errlen)
{
    if (q->n_alerts == SIZE_MAX)
        return util_err(err, errlen, "out of memory holding this batch's alerts");
    for (size_t i = 0; i < q->n_alerts; i++)
        if (alert_sinks_write(q->sinks, &q->alerts[i], err, errlen) < 0)
            return STORE_ERR_IO;
    if (alert_sinks_sync(q->sinks, err, errlen) < 0)
        return STORE_ERR_IO;
    return 0;
}

/* After each delivery transaction: a commit that wrote something clears the
 * failing state; a failure every delivery would share sets it (keeping the time
 * of the first one). Other failures (one record the store refuses, a bug) say
 * nothing about the next delivery, so they leave it as it is. */
static void note_health(commit_queue *q, int rc, const commit_item *items, size_t n, const char *err)
{
    bool wrote = false;
    for (size_t i = 0; rc == 0 && i < n && !wrote; i++)
        wrote = items[i].result != COMMIT_DUPLICATE;
    bool shared_failure = rc == STORE_ERR_FULL || rc == STORE_ERR_IO;
    if (!wrote && !shared_failure)
        return;
    pthread_mutex_lock(&q->mu);
    commit_store_health *h = &q->health;
    if (wrote) {
        h->failing = false;
    } else {
        if (!h->failing)
            h->since_ms = util_now_ms();
        h->failing = true;
        h->rc = rc;
        snprintf(h->err, sizeof h->err, "%s", err);
    }
    pthread_mutex_unlock(&q->mu);
}

/* Write items[0..n) in one transaction, with the delivery outcomes waiting when
 * with_settles (*settled counts them). On any failure every item of this call is
 * marked failed and nothing of it is stored (the transaction is aborted, and the
 * outcomes wait for the next one). */
static int write_items(commit_queue *q, commit_item *items, size_t n, bool with_settles, size_t *settled,
                       uint64_t *alerts, char *err, size_t errlen)
{
    store_txn *t = NULL;
    q->n_alerts = 0;
    *settled = 0;
    engine_hooks hooks = {.on_alert = collect_alert, .ctx = q};
    int64_t now = util_now_ms();
    int rc = store_txn_begin(q->st, &t, err, errlen);
    if (rc < 0)
        goto fail;
    if (with_settles) {
        rc = deliver_txn_settle(q->deliver, t, now, settled, err, errlen);
        if (rc < 0)
            goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        commit_item *it = &items[i];
        bool seen = false;
        rc = store_delivery_seen(t, it->ev.delivery_id, &seen, err, errlen);
        if (rc < 0)
            goto fail;
        if (seen) {
            it->result = COMMIT_DUPLICATE;
            continue;
        }
        store_outcome outcome = STORE_APPLIED;
        rc = store_apply_event(t, &it->ev, &outcome, err, errlen);
        if (rc < 0)
            goto fail;
        /* ignored updates changed nothing: no rule runs on them */
        if (q->engine != NULL && outcome == STORE_APPLIED) {
            rc = engine_eval_event(q->engine, t, &it->ev, now, &hooks, err, errlen);
            if (rc < 0)
                goto fail;
        }
        rc = store_delivery_mark(t, it->ev.delivery_id, it->ev.type, it->received_ms, err, errlen);
        if (rc < 0)
            goto fail;
        it->result = outcome == STORE_STALE_UPDATE   ? COMMIT_STALE
                     : outcome == STORE_AFTER_DELETE ? COMMIT_AFTER_DELETE
                                                     : COMMIT_STORED;
    }
    for (size_t i = 0; i < q->n_alerts && q->n_alerts != SIZE_MAX; i++) {
        rc = deliver_txn_queue(q->deliver, t, &q->alerts[i], err, errlen);
        if (rc < 0)
            goto fail;
    }
    rc = emit_alerts(q, err, errlen);
    if (rc < 0)
        goto fail;
    rc = store_txn_commit(t, err, errlen);
    t = NULL; /* commit frees the transaction whatever it returns */
    if (rc < 0)
        goto fail;
    *alerts += q->n_alerts;
    if (q->engine != NULL)
        engine_settle(q->engine, true);
    deliver_txn_end(q->deliver, true);
    note_health(q, 0, items, n, "");
    return 0;
fail:
    store_txn_abort(t);
    if (q->engine != NULL)
        engine_settle(q->engine, false);
    deliver_txn_end(q->deliver, false);
    for (size_t i = 0; i < n; i++)
        items[i].result = COMMIT_FAILED;
    rc = rc < 0 ? rc : STORE_ERR;
    note_health(q, rc, items, n, err);
    return rc;
}

static void write_batch(commit_queue *q, commit_batch *b)
{
    int64_t t0 = util_mono_ns();
    b->isolated = false;
    b->alerts = 0;
    size_t settled = 0;
    b->rc = write_items(q, b->items, b->count, true, &settled, &b->alerts, b->err, sizeof b->err);
    if (b->rc < 0 && settled > 0) /* the outcomes must never be what keeps events out */
        b->rc = write_items(q, b->items, b->count, false, &settled, &b->alerts, b->err, sizeof b->err);
    if (b->rc < 0 && b->count > 1) {
        /* One bad delivery must not cost its neighbours their answer: retry each
         * alone so only the deliveries that really fail get a 503. */
        b->isolated = true;
        char err[256];
        for (size_t i = 0; i < b->count; i++)
            if (write_items(q, &b->items[i], 1, false, &settled, &b->alerts, err, sizeof err) < 0)
                log_line(LOG_ERROR, "msg=\"delivery not stored\" id=%s error=\"%s\"", b->items[i].ev.delivery_id,
                         err);
    }
    b->commit_ns = util_mono_ns() - t0;
}

/* Resident file-backed (shared) bytes of this process: almost all of it is the
 * LMDB map. 0 when /proc is unreadable, which disables the release. */
static uint64_t shared_resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0, shared = 0;
    int n = f != NULL ? fscanf(f, "%lu %lu %lu", &size, &resident, &shared) : 0;
    if (f != NULL)
        fclose(f);
    return n == 3 ? (uint64_t)shared * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

static void prune_step(commit_queue *q, bool *more)
{
    char err[256];
    store_prune_result r;
    memset(&r, 0, sizeof r);
    *more = false;
    if (store_prune(q->st, util_now_ms(), q->retention_ms, q->delivery_keep_ms, PRUNE_STEP_MAX, &r, err,
                    sizeof err) < 0) {
        log_line(LOG_WARN, "msg=\"prune failed\" error=\"%s\"", err);
        return;
    }
    if (r.history_pruned || r.deliveries_pruned)
        log_line(LOG_DEBUG, "msg=pruned history=%llu delivery_ids=%llu", (unsigned long long)r.history_pruned,
                 (unsigned long long)r.deliveries_pruned);
    pthread_mutex_lock(&q->mu);
    q->pruned_history += r.history_pruned;
    q->pruned_deliveries += r.deliveries_pruned;
    pthread_mutex_unlock(&q->mu);
    *more = r.more;
}

/* Outcomes reported while no batch came to carry them: their own transaction. */
static int settle_step(commit_queue *q)
{
    char err[256];
    store_txn *t = NULL;
    size_t settled = 0;
    int rc = store_txn_begin(q->st, &t, err, sizeof err);
    if (rc == 0)
        rc = deliver_txn_settle(q->deliver, t, util_now_ms(), &settled, err, sizeof err);
    if (rc == 0) {
        rc = store_txn_commit(t, err, sizeof err);
        t = NULL;
    }
    store_txn_abort(t);
    deliver_txn_end(q->deliver, rc == 0);
    if (rc < 0)
        log_line(LOG_WARN, "msg=\"cannot record alert deliveries; retrying in 1 s\" error=\"%s\"", err);
    return rc;
}

void commit_wake(void *vq)
{
    commit_queue *q = vq;
    pthread_mutex_lock(&q->mu);
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static void *committer_main(void *arg)
{
    commit_queue *q = arg;
    int64_t next_prune = util_now_ms() + PRUNE_INTERVAL_MS;
    int64_t last_release_check = 0;
    int64_t settle_after = 0; /* after a failed settle transaction, wait before the next */
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (!(q->busy && q->inflight->count > 0 && q->inflight->rc == 1) && !q->stopping) {
            int64_t now = util_now_ms();
            if (now >= next_prune || (now >= settle_after && deliver_settles_waiting(q->deliver)))
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wait_ms = next_prune - now;
            ts.tv_sec += wait_ms / 1000;
            ts.tv_nsec += (wait_ms % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&q->cv, &q->mu, &ts);
        }
        bool work = q->busy && q->inflight->rc == 1;
        bool stop = q->stopping;
        commit_batch *b = q->inflight;
        pthread_mutex_unlock(&q->mu);
        if (work) {
            write_batch(q, b);
            /* Bound RSS: the B-tree pages this thread walks stay mapped until
             * released. Releasing costs re-faults (when many users share an IP,
             * about 40% of the throughput), so do it only once the mapped pages
             * pass --map-resident, checked at most every RELEASE_CHECK_MS. */
            int64_t now = util_now_ms();
            if (q->map_resident != 0 && now - last_release_check >= RELEASE_CHECK_MS) {
                last_release_check = now;
                if (shared_resident_bytes() > q->map_resident)
                    store_release_mapped_pages(q->st);
            }
            h2o_multithread_send_message(&q->receiver, &q->done_msg);
            continue;
        }
        if (stop) {
            /* what the loop learnt before stopping is not sent again after a restart */
            if (deliver_settles_waiting(q->deliver))
                settle_step(q);
            break;
        }
        if (util_now_ms() >= settle_after && deliver_settles_waiting(q->deliver)) {
            if (settle_step(q) < 0)
                settle_after = util_now_ms() + 1000;
            else if (util_now_ms() < next_prune)
                continue;
        }
        bool more = false;
        prune_step(q, &more);
        next_prune = util_now_ms() + (more ? 0 : PRUNE_INTERVAL_MS);
    }
    return NULL;
}

/* On the loop thread: the batch in flight is durable (or failed); answer it. */
static void on_batch_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    commit_queue *q = H2O_STRUCT_FROM_MEMBER(commit_queue, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
    }
    q->on_done(q->inflight, q->ctx);
    pthread_mutex_lock(&q->mu);
    q->inflight->count = 0;
    q->busy = false;
    engine *old = NULL;
    if (q->has_next_engine) {
        old = q->engine;
        q->engine = q->next_engine;
        q->next_engine = NULL;
        q->has_next_engine = false;
    }
    pthread_mutex_unlock(&q->mu);
    engine_free(old);
    commit_kick(q);
}

int commit_start(commit_queue *q, h2o_loop_t *loop, char *err, size_t errlen)
{
    for (int i = 0; i < 2; i++) {
        q->batches[i].items = calloc(COMMIT_BATCH_MAX, sizeof(commit_item));
        if (q->batches[i].items == NULL)
            return util_err(err, errlen, "out of memory for the commit batches");
        q->batches[i].count = 0;
    }
    q->filling = &q->batches[0];
    q->inflight = &q->batches[1];
    q->busy = q->stopping = false;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->queue = h2o_multithread_create_queue(loop);
    if (q->queue == NULL)
        return util_err(err, errlen, "cannot create the committer's queue");
    h2o_multithread_register_receiver(q->queue, &q->receiver, on_batch_done);
    /* Signals belong to the loop thread: SIGTERM must interrupt its epoll_wait. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&q->thread, NULL, committer_main, q);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return util_err(err, errlen, "cannot start the committer thread: %s", strerror(rc));
    /* A name an operator sees in top -H and /proc, and bench/run.sh reads to split
     * CPU time between the loop and the committer. Failing to name it is harmless. */
    (void)pthread_setname_np(q->thread, "veille-commit");
    q->thread_started = true;
    return 0;
}

commit_item *commit_reserve(commit_queue *q)
{
    if (q->filling->count >= COMMIT_BATCH_MAX)
        return NULL;
    commit_item *it = &q->filling->items[q->filling->count++];
    memset(&it->ev, 0, sizeof it->ev);
    it->slot = NULL;
    it->result = COMMIT_PENDING;
    return it;
}

void commit_kick(commit_queue *q)
{
    pthread_mutex_lock(&q->mu);
    if (!q->busy && q->filling->count > 0) {
        commit_batch *b = q->filling;
        q->filling = q->inflight;
        q->inflight = b;
        b->rc = 1; /* marks "handed over, not yet written" for the committer */
        q->busy = true;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
}

bool commit_idle(const commit_queue *q)
{
    return !q->busy && q->filling->count == 0;
}

void commit_stop(commit_queue *q)
{
    if (q->thread_started) {
        pthread_mutex_lock(&q->mu);
        q->stopping = true;
        pthread_cond_signal(&q->cv);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->thread, NULL);
        q->thread_started = false;
    }
    if (q->queue != NULL) {
        h2o_multithread_unregister_receiver(q->queue, &q->receiver);
        h2o_multithread_destroy_queue(q->queue);
        q->queue = NULL;
    }
    for (int i = 0; i < 2; i++) {
        free(q->batches[i].items);
        q->batches[i].items = NULL;
    }
    engine_free(q->next_engine);
    q->next_engine = NULL;
    q->has_next_engine = false;
    free(q->alerts);
    q->alerts = NULL;
    q->n_alerts = q->cap_alerts = 0;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
}

void commit_set_engine(commit_queue *q, engine *e)
{
    engine *old = NULL;
    pthread_mutex_lock(&q->mu);
    if (!q->busy) {
        /* the committer runs the engine only while busy, which only this thread sets */
        old = q->engine;
        q->engine = e;
    } else {
        old = q->has_next_engine ? q->next_engine : NULL;
        q->next_engine = e;
        q->has_next_engine = true;
    }
    pthread_mutex_unlock(&q->mu);
    engine_free(old);
}

void commit_pruned_totals(commit_queue *q, uint64_t *history, uint64_t *deliveries)
{
    pthread_mutex_lock(&q->mu);
    *history = q->pruned_history;
    *deliveries = q->pruned_deliveries;
    pthread_mutex_unlock(&q->mu);
}

void commit_health(commit_queue *q, commit_store_health *out)
{
    pthread_mutex_lock(&q->mu);
    *out = q->health;
    pthread_mutex_unlock(&q->mu);
}
