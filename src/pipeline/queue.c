/*
 * queue.c: serve's group committer thread. One LMDB write transaction (one
 * fsync) per batch of deliveries; the loop answers them when the batch comes
 * back. Two batches alternate (one filling, one in flight): while one fsyncs
 * the loop keeps verifying the next deliveries, which is what makes batches
 * grow under load. Between batches the same thread prunes old history and
 * delivery ids in bounded steps, so retention never competes with ingestion
 * for the single LMDB writer.
 */
#include "pipeline/pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdio.h>
#include <unistd.h>

#define H2O_USE_LIBUV 0
#include <h2o.h>
#include <h2o/multithread.h>

#include "util/log.h"
#include "util/util.h"

#define PRUNE_STEP_MAX 10000
#define PRUNE_INTERVAL_MS 1000

struct pipeline_queue {
    pipeline_queue_config c;
    pipeline_stages stages;   /* engine, sinks, deliver: what write_items runs */
    pipeline_txn txn;         /* committer-only */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pipeline_batch batches[2];
    pipeline_batch *filling, *inflight;
    /* inflight was handed over and not yet written: the committer's cue */
    bool inflight_waiting;
    bool busy, stopping, thread_started;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    h2o_multithread_message_t done_msg;
    uint64_t pruned_history, pruned_deliveries; /* written by the committer, read under mu */
    pipeline_health health;   /* written by the committer, read under mu */
    engine *next_engine;      /* installed once the batch in flight is answered */
    bool has_next_engine;
};

/* After each delivery transaction: a commit that wrote something clears the
 * failing state; a failure every delivery would share sets it (keeping the time
 * of the first one). Other failures (one record the store refuses, a bug) say
 * nothing about the next delivery, so they leave it as it is. */
static void note_health(pipeline_queue *q, int rc, const pipeline_item *items, size_t n, const char *err)
{
    bool wrote = false;
    for (size_t i = 0; rc == 0 && i < n && !wrote; i++)
        wrote = items[i].answer != PIPELINE_ANSWER_DUPLICATE;
    bool shared_failure = rc == STORE_ERR_FULL || rc == STORE_ERR_IO;
    if (!wrote && !shared_failure)
        return;
    pthread_mutex_lock(&q->mu);
    pipeline_health *h = &q->health;
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
static int write_items(pipeline_queue *q, pipeline_item *items, size_t n, bool with_settles, size_t *settled,
                       uint64_t *alerts, char *err, size_t errlen)
{
    pipeline_txn *p = &q->txn;
    *settled = 0;
    int64_t now = util_now_ms();
    int rc = pipeline_txn_begin(p, q->c.st, &q->stages, err, errlen);
    if (rc == 0 && with_settles)
        rc = deliver_txn_settle(q->c.deliver, p->t, now, settled, err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        pipeline_outcome outcome = PIPELINE_APPLIED;
        rc = pipeline_apply_event(p, &items[i].ev, items[i].received_ms, now, &outcome, err, errlen);
        items[i].answer = outcome == PIPELINE_DUPLICATE      ? PIPELINE_ANSWER_DUPLICATE
                          : outcome == PIPELINE_STALE        ? PIPELINE_ANSWER_STALE
                          : outcome == PIPELINE_AFTER_DELETE ? PIPELINE_ANSWER_AFTER_DELETE
                                                             : PIPELINE_ANSWER_STORED;
    }
    size_t raised = p->n_alerts;
    if (rc == 0)
        rc = pipeline_txn_commit(p, err, errlen);
    else
        pipeline_txn_abort(p);
    if (rc == 0) {
        *alerts += raised;
        note_health(q, 0, items, n, "");
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        items[i].answer = PIPELINE_ANSWER_FAILED;
    note_health(q, rc, items, n, err);
    return rc;
}

static void write_batch(pipeline_queue *q, pipeline_batch *b)
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
    q->pruned_history += r.history_pruned;
    q->pruned_deliveries += r.deliveries_pruned;
    pthread_mutex_unlock(&q->mu);
    *more = r.more;
}

/* Outcomes reported while no batch came to carry them: their own transaction. */
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

void pipeline_queue_wake(void *vq)
{
    pipeline_queue *q = vq;
    pthread_mutex_lock(&q->mu);
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static void *committer_main(void *arg)
{
    pipeline_queue *q = arg;
    int64_t next_prune = util_now_ms() + PRUNE_INTERVAL_MS;
    int64_t settle_after = 0; /* after a failed settle transaction, wait before the next */
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (!(q->busy && q->inflight->count > 0 && q->inflight_waiting) && !q->stopping) {
            int64_t now = util_now_ms();
            if (now >= next_prune || (now >= settle_after && deliver_settles_waiting(q->c.deliver)))
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
        bool work = q->busy && q->inflight_waiting;
        q->inflight_waiting = false;
        bool stop = q->stopping;
        pipeline_batch *b = q->inflight;
        pthread_mutex_unlock(&q->mu);
        if (work) {
            write_batch(q, b);
            h2o_multithread_send_message(&q->receiver, &q->done_msg);
            continue;
        }
        if (stop) {
            /* what the loop learnt before stopping is not sent again after a restart */
            if (deliver_settles_waiting(q->c.deliver))
                settle_step(q);
            break;
        }
        if (util_now_ms() >= settle_after && deliver_settles_waiting(q->c.deliver)) {
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
    pipeline_queue *q = H2O_STRUCT_FROM_MEMBER(pipeline_queue, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
    }
    q->c.on_done(q->inflight, q->c.ctx);
    pthread_mutex_lock(&q->mu);
    q->inflight->count = 0;
    q->busy = false;
    engine *old = NULL;
    if (q->has_next_engine) {
        old = q->stages.engine;
        q->stages.engine = q->next_engine;
        q->next_engine = NULL;
        q->has_next_engine = false;
    }
    pthread_mutex_unlock(&q->mu);
    engine_free(old);
    pipeline_queue_kick(q);
}

int pipeline_queue_start(pipeline_queue **out, const pipeline_queue_config *c, h2o_loop_t *loop, char *err,
                         size_t errlen)
{
    *out = NULL;
    pipeline_queue *q = calloc(1, sizeof *q);
    if (q == NULL) {
        engine_free(c->engine);
        return util_err(err, errlen, "out of memory for the committer");
    }
    q->c = *c;
    q->stages.engine = c->engine;
    q->stages.sinks = c->sinks;
    q->stages.deliver = c->deliver;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    *out = q; /* from here pipeline_queue_stop frees what was made */
    for (int i = 0; i < 2; i++) {
        q->batches[i].items = calloc(PIPELINE_BATCH_MAX, sizeof(pipeline_item));
        if (q->batches[i].items == NULL)
            return util_err(err, errlen, "out of memory for the commit batches");
    }
    q->filling = &q->batches[0];
    q->inflight = &q->batches[1];
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

pipeline_item *pipeline_queue_reserve(pipeline_queue *q)
{
    if (q->filling->count >= PIPELINE_BATCH_MAX)
        return NULL;
    pipeline_item *it = &q->filling->items[q->filling->count++];
    memset(&it->ev, 0, sizeof it->ev);
    it->slot = NULL;
    it->answer = PIPELINE_ANSWER_PENDING;
    return it;
}

void pipeline_queue_unreserve(pipeline_queue *q)
{
    if (q->filling->count > 0)
        q->filling->count--;
}

bool pipeline_queue_full(const pipeline_queue *q)
{
    return q->filling->count >= PIPELINE_BATCH_MAX;
}

void pipeline_queue_kick(pipeline_queue *q)
{
    pthread_mutex_lock(&q->mu);
    if (!q->busy && q->filling->count > 0) {
        pipeline_batch *b = q->filling;
        q->filling = q->inflight;
        q->inflight = b;
        q->inflight_waiting = true;
        q->busy = true;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
}

bool pipeline_queue_idle(const pipeline_queue *q)
{
    return !q->busy && q->filling->count == 0;
}

void pipeline_queue_stop(pipeline_queue *q)
{
    if (q == NULL)
        return;
    if (q->thread_started) {
        pthread_mutex_lock(&q->mu);
        q->stopping = true;
        pthread_cond_signal(&q->cv);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->thread, NULL);
    }
    if (q->queue != NULL) {
        h2o_multithread_unregister_receiver(q->queue, &q->receiver);
        h2o_multithread_destroy_queue(q->queue);
    }
    for (int i = 0; i < 2; i++)
        free(q->batches[i].items);
    engine_free(q->next_engine);
    engine_free(q->stages.engine);
    pipeline_txn_free(&q->txn);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}

void pipeline_queue_set_engine(pipeline_queue *q, engine *e)
{
    engine *old = NULL;
    pthread_mutex_lock(&q->mu);
    if (!q->busy) {
        /* the committer runs the engine only while busy, which only this thread sets */
        old = q->stages.engine;
        q->stages.engine = e;
    } else {
        old = q->has_next_engine ? q->next_engine : NULL;
        q->next_engine = e;
        q->has_next_engine = true;
    }
    pthread_mutex_unlock(&q->mu);
    engine_free(old);
}

const engine *pipeline_queue_engine(const pipeline_queue *q)
{
    return q->stages.engine;
}

void pipeline_queue_pruned_totals(pipeline_queue *q, uint64_t *history, uint64_t *deliveries)
{
    pthread_mutex_lock(&q->mu);
    *history = q->pruned_history;
    *deliveries = q->pruned_deliveries;
    pthread_mutex_unlock(&q->mu);
}

void pipeline_queue_health(pipeline_queue *q, pipeline_health *out)
{
    pthread_mutex_lock(&q->mu);
    *out = q->health;
    pthread_mutex_unlock(&q->mu);
}
