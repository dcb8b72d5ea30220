/*
 * queue.c: serve's side of the pipeline: the batches the event loop fills, the
 * log thread that makes each one durable in the write-ahead log (one
 * fdatasync per batch: group commit) and hands it back to be answered, the
 * backpressure the loop asks before accepting, and start and stop.
 */
#include "pipeline/internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/util.h"

/* ---- the log thread ---- */

static void remove_pending(pipeline_queue *q, pipeline_item *items, size_t n, const bool *added)
{
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < n; i++)
        if (added[i] && items[i].answer != PIPELINE_ANSWER_ACCEPTED)
            pipeline_pending_remove(&q->pending, items[i].ev.delivery_id);
    pthread_mutex_unlock(&q->mu);
}

static void fail_new(pipeline_batch *b, const bool *added, int rc, const char *err)
{
    for (size_t i = 0; i < b->count; i++)
        if (added[i] && b->items[i].answer == PIPELINE_ANSWER_PENDING)
            b->items[i].answer = PIPELINE_ANSWER_FAILED;
    if (b->rc == 0) {
        b->rc = rc < 0 ? rc : -1;
        snprintf(b->err, sizeof b->err, "%s", err);
    }
}

/* Duplicates first: an id pending in the log (checked and added under the
 * lock), then the store. The order is what makes the answer exact: the apply
 * removes an id from the pending set only after its transaction committed, so
 * an id missing from the set at the check is visible to a read transaction
 * begun after it. */
static void log_batch(pipeline_queue *q, pipeline_batch *b, bool *added, const char **ids, bool *seen,
                      size_t *at)
{
    int64_t t0 = util_mono_ns();
    b->rc = 0;
    b->err[0] = '\0';
    size_t n_new = 0;
    pthread_mutex_lock(&q->mu);
    bool log_failed = q->log_failed;
    for (size_t i = 0; i < b->count; i++) {
        pipeline_item *it = &b->items[i];
        added[i] = false;
        if (pipeline_pending_has(&q->pending, it->ev.delivery_id)) {
            it->answer = PIPELINE_ANSWER_DUPLICATE;
        } else if (pipeline_pending_add(&q->pending, it->ev.delivery_id) < 0) {
            it->answer = PIPELINE_ANSWER_FAILED;
            b->rc = STORE_ERR;
            snprintf(b->err, sizeof b->err, "out of memory tracking pending deliveries");
        } else {
            added[i] = true;
            at[n_new] = i;
            ids[n_new++] = it->ev.delivery_id;
        }
    }
    pthread_mutex_unlock(&q->mu);
    char err[256];
    if (log_failed) {
        /* log_err is written once, before log_failed is set, and never again */
        fail_new(b, added, WAL_EPOISONED, q->log_err);
        goto out;
    }
    int rc = n_new > 0 ? store_deliveries_seen(q->c.st, ids, n_new, seen, err, sizeof err) : 0;
    if (rc < 0) {
        fail_new(b, added, rc, err);
        goto out;
    }
    size_t appended = 0;
    unsigned char rec[STORE_EVENT_RECORD_MAX];
    store_event_record r;
    for (size_t k = 0; k < n_new; k++) {
        pipeline_item *it = &b->items[at[k]];
        if (seen[k]) {
            it->answer = PIPELINE_ANSWER_DUPLICATE;
            continue;
        }
        r.ev = it->ev;
        r.received_ms = it->received_ms;
        size_t len = 0;
        uint64_t pos = 0;
        if (store_event_record_encode(&r, rec, sizeof rec, &len) < 0) {
            /* cannot happen within event.h's bounds; refuse this one alone */
            it->answer = PIPELINE_ANSWER_FAILED;
            log_line(LOG_ERROR, "msg=\"delivery not logged: record too large\" id=%s", it->ev.delivery_id);
            continue;
        }
        rc = wal_append(q->log, rec, len, &pos, err, sizeof err);
        if (rc < 0)
            break;
        appended++;
    }
    uint64_t durable = 0;
    if (rc == 0 && appended > 0)
        rc = wal_sync(q->log, &durable, err, sizeof err);
    if (rc < 0) {
        /* poisoned: nothing of this batch is acknowledged, and nothing after it
         * until a restart reopens (and checks) the log */
        pthread_mutex_lock(&q->mu);
        if (!q->log_failed) {
            q->log_failed = true;
            q->log_failed_ms = util_now_ms();
            snprintf(q->log_err, sizeof q->log_err, "write-ahead log: %s; restart veille once the disk is fixed",
                     err);
        }
        pthread_mutex_unlock(&q->mu);
        log_line(LOG_ERROR, "msg=\"write-ahead log failed: refusing deliveries until a restart\" error=\"%s\"", err);
        fail_new(b, added, rc, err);
        goto out;
    }
    for (size_t k = 0; k < n_new; k++)
        if (b->items[at[k]].answer == PIPELINE_ANSWER_PENDING)
            b->items[at[k]].answer = PIPELINE_ANSWER_ACCEPTED;
    if (appended > 0) {
        pthread_mutex_lock(&q->mu);
        q->durable = durable;
        pthread_cond_signal(&q->apply_cv);
        pthread_mutex_unlock(&q->mu);
    }
out:
    remove_pending(q, b->items, b->count, added);
    b->commit_ns = util_mono_ns() - t0;
}

static void *log_main(void *arg)
{
    pipeline_queue *q = arg;
    bool *added = calloc(PIPELINE_BATCH_MAX, sizeof *added);
    bool *seen = calloc(PIPELINE_BATCH_MAX, sizeof *seen);
    const char **ids = calloc(PIPELINE_BATCH_MAX, sizeof *ids);
    size_t *at = calloc(PIPELINE_BATCH_MAX, sizeof *at);
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (!q->inflight_waiting && !q->stop_log)
            pthread_cond_wait(&q->log_cv, &q->mu);
        bool work = q->inflight_waiting;
        q->inflight_waiting = false;
        pipeline_batch *b = q->inflight;
        pthread_mutex_unlock(&q->mu);
        if (!work)
            break;
        if (added == NULL || seen == NULL || ids == NULL || at == NULL) {
            for (size_t i = 0; i < b->count; i++)
                b->items[i].answer = PIPELINE_ANSWER_FAILED;
            b->rc = STORE_ERR;
            snprintf(b->err, sizeof b->err, "out of memory in the log thread");
        } else {
            log_batch(q, b, added, ids, seen, at);
        }
        h2o_multithread_send_message(&q->done_receiver, &q->done_msg);
    }
    free(added);
    free(seen);
    free(ids);
    free(at);
    return NULL;
}

/* ---- the loop's side ---- */

static void drain_messages(h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
    }
}

/* On the loop thread: the batch in flight is durable in the log (or failed); answer it. */
static void on_batch_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    pipeline_queue *q = H2O_STRUCT_FROM_MEMBER(pipeline_queue, done_receiver, receiver);
    drain_messages(messages);
    q->c.on_done(q->inflight, q->c.ctx);
    pthread_mutex_lock(&q->mu);
    q->inflight->count = 0;
    q->busy = false;
    pthread_mutex_unlock(&q->mu);
    pipeline_queue_kick(q);
}

void pipeline_notify_alerts(pipeline_queue *q)
{
    pthread_mutex_lock(&q->mu);
    bool send = q->queue != NULL && !q->alerts_msg_queued;
    q->alerts_msg_queued = q->alerts_msg_queued || send;
    pthread_mutex_unlock(&q->mu);
    if (send)
        h2o_multithread_send_message(&q->alerts_receiver, &q->alerts_msg);
}

static void on_alerts_applied(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    pipeline_queue *q = H2O_STRUCT_FROM_MEMBER(pipeline_queue, alerts_receiver, receiver);
    drain_messages(messages);
    pthread_mutex_lock(&q->mu);
    q->alerts_msg_queued = false;
    uint64_t n = q->alerts_unsent;
    q->alerts_unsent = 0;
    bool stopped = q->loop_stopped;
    pthread_mutex_unlock(&q->mu);
    /* at stop the outbox keeps them: they go out after the restart */
    if (n > 0 && !stopped && q->c.on_alerts != NULL)
        q->c.on_alerts(q->c.ctx);
}

static void log_cut(const wal_cut *cut, void *ctx)
{
    (void)ctx;
    char qf[PATH_MAX + 8];
    log_line(LOG_WARN,
             "msg=\"write-ahead log: torn tail cut (a crash mid-append; that record was never acknowledged)\" "
             "file=%s offset=%llu bytes=%llu last_kept=%llu reason=\"%s\"",
             log_quote(cut->file, qf, sizeof qf), (unsigned long long)cut->offset, (unsigned long long)cut->bytes,
             (unsigned long long)cut->last_pos, cut->reason);
}

static int start_thread(pipeline_queue *q, pthread_t *t, void *(*fn)(void *), const char *name, char *err,
                        size_t errlen)
{
    /* Signals belong to the loop thread: SIGTERM must interrupt its epoll_wait. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(t, NULL, fn, q);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return util_err(err, errlen, "cannot start the %s thread: %s", name, strerror(rc));
    /* A name an operator sees in top -H and /proc, and bench/run.sh reads to split
     * CPU time between threads. Failing to name it is harmless. */
    char tname[16];
    snprintf(tname, sizeof tname, "veille-%s", name);
    (void)pthread_setname_np(*t, tname);
    return 0;
}

int pipeline_queue_start(pipeline_queue **out, const pipeline_queue_config *c, h2o_loop_t *loop, char *err,
                         size_t errlen)
{
    *out = NULL;
    pipeline_queue *q = calloc(1, sizeof *q);
    if (q == NULL) {
        engine_free(c->engine);
        return util_err(err, errlen, "out of memory for the pipeline");
    }
    q->c = *c;
    q->stages.engine = c->engine;
    q->stages.sinks = c->sinks;
    q->stages.deliver = c->deliver;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->log_cv, NULL);
    pthread_cond_init(&q->apply_cv, NULL);
    *out = q; /* from here pipeline_queue_stop frees what was made */
    for (int i = 0; i < 2; i++) {
        q->batches[i].items = calloc(PIPELINE_BATCH_MAX, sizeof(pipeline_item));
        if (q->batches[i].items == NULL)
            return util_err(err, errlen, "out of memory for the log batches");
    }
    q->filling = &q->batches[0];
    q->inflight = &q->batches[1];
    q->applied_ids = calloc(PIPELINE_APPLY_EVENTS, sizeof *q->applied_ids);
    q->applied_received = calloc(PIPELINE_APPLY_EVENTS, sizeof *q->applied_received);
    if (q->applied_ids == NULL || q->applied_received == NULL)
        return util_err(err, errlen, "out of memory for the apply thread");

    uint64_t applied = 0;
    if (store_get_applied(c->st, &applied, err, errlen) < 0)
        return -1;
    /* a new log continues the positions the store has applied */
    wal_options wo = {.max_record = STORE_EVENT_RECORD_MAX, .first_seq = applied + 1, .on_cut = log_cut};
    if (wal_open(&q->log, c->data_dir, &wo, err, errlen) < 0)
        return -1;
    q->applied = q->released = q->before_last = applied;
    if (pipeline_applier_recover(q, err, errlen) < 0)
        return -1;

    q->loop = loop;
    q->queue = h2o_multithread_create_queue(loop);
    if (q->queue == NULL)
        return util_err(err, errlen, "cannot create the pipeline's queue");
    h2o_multithread_register_receiver(q->queue, &q->done_receiver, on_batch_done);
    h2o_multithread_register_receiver(q->queue, &q->alerts_receiver, on_alerts_applied);
    if (start_thread(q, &q->log_thread, log_main, "log", err, errlen) < 0)
        return -1;
    q->log_started = true;
    if (start_thread(q, &q->apply_thread, pipeline_applier_main, "apply", err, errlen) < 0)
        return -1;
    q->apply_started = true;
    return 0;
}

void pipeline_queue_admission(pipeline_queue *q, pipeline_admission *out)
{
    memset(out, 0, sizeof *out);
    out->retry_after_s = 5;
    pthread_mutex_lock(&q->mu);
    bool refusing = q->refusing, log_failed = q->log_failed;
    pipeline_store_health h = q->health;
    uint64_t records = q->durable - q->applied;
    if (log_failed) {
        snprintf(out->reason, sizeof out->reason, "%s", q->log_err);
        out->since_ms = q->log_failed_ms;
    }
    pthread_mutex_unlock(&q->mu);
    wal_stats_info ws;
    wal_stats(q->log, &ws);
    if (refusing) {
        out->refusal = PIPELINE_REFUSE_STOPPING;
        snprintf(out->reason, sizeof out->reason, "shutting down");
    } else if (log_failed) {
        out->refusal = PIPELINE_REFUSE_LOG;
    } else if (h.failing) {
        out->refusal = PIPELINE_REFUSE_STORE;
        out->since_ms = h.since_ms;
        /* the deliveries kept in the log are in /healthz's backlog */
        snprintf(out->reason, sizeof out->reason, "%s: %s",
                 h.rc == STORE_ERR_FULL ? "store full" : h.rc == STORE_ERR_IO ? "store I/O error" : "cannot apply",
                 h.err);
    } else if (records > 0 && ws.backlog_bytes > q->c.max_backlog_bytes) {
        out->refusal = PIPELINE_REFUSE_BACKLOG;
        out->retry_after_s = 2;
        snprintf(out->reason, sizeof out->reason,
                 "server busy: %llu bytes (%llu deliveries) wait to be applied, past --max-backlog %llu",
                 (unsigned long long)ws.backlog_bytes, (unsigned long long)records,
                 (unsigned long long)q->c.max_backlog_bytes);
    } else if (records > 0 && ws.oldest_age_ms > q->c.max_backlog_age_ms) {
        out->refusal = PIPELINE_REFUSE_BACKLOG;
        out->retry_after_s = 2;
        snprintf(out->reason, sizeof out->reason,
                 "server busy: the oldest delivery waiting to be applied was logged %lld ms ago (bound %lld ms)",
                 (long long)ws.oldest_age_ms, (long long)q->c.max_backlog_age_ms);
    } else if (q->filling->count >= PIPELINE_BATCH_MAX) {
        out->refusal = PIPELINE_REFUSE_BUSY;
        out->retry_after_s = 1;
        snprintf(out->reason, sizeof out->reason, "server busy: %d deliveries waiting to be logged",
                 PIPELINE_BATCH_MAX);
    }
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

void pipeline_queue_kick(pipeline_queue *q)
{
    pthread_mutex_lock(&q->mu);
    if (!q->busy && q->filling->count > 0) {
        pipeline_batch *b = q->filling;
        q->filling = q->inflight;
        q->inflight = b;
        q->inflight_waiting = true;
        q->busy = true;
        pthread_cond_signal(&q->log_cv);
    }
    pthread_mutex_unlock(&q->mu);
}

bool pipeline_queue_idle(const pipeline_queue *q)
{
    return !q->busy && q->filling->count == 0;
}

void pipeline_queue_refuse(pipeline_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->refusing = true;
    pthread_mutex_unlock(&q->mu);
}

void pipeline_queue_stop(pipeline_queue *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->mu);
    q->refusing = q->stop_log = true;
    pthread_cond_signal(&q->log_cv);
    pthread_mutex_unlock(&q->mu);
    if (q->log_started)
        pthread_join(q->log_thread, NULL);
    pthread_mutex_lock(&q->mu);
    q->stop_apply = true;
    pthread_cond_signal(&q->apply_cv);
    pthread_mutex_unlock(&q->mu);
    if (q->apply_started)
        pthread_join(q->apply_thread, NULL);
    /* a receiver must be empty when unregistered: let the loop take what the
     * threads sent last (a batch answered late, the last alerts notice) */
    pthread_mutex_lock(&q->mu);
    q->loop_stopped = true;
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; q->queue != NULL && i < 100 && (q->busy || q->alerts_msg_queued); i++)
        h2o_evloop_run(q->loop, 10);
    if (q->queue != NULL) {
        h2o_multithread_unregister_receiver(q->queue, &q->done_receiver);
        h2o_multithread_unregister_receiver(q->queue, &q->alerts_receiver);
        h2o_multithread_destroy_queue(q->queue);
    }
    wal_close(q->log);
    for (int i = 0; i < 2; i++)
        free(q->batches[i].items);
    free(q->applied_ids);
    free(q->applied_received);
    engine_free(q->next_engine);
    engine_free(q->stages.engine);
    pipeline_txn_free(&q->txn);
    pipeline_pending_free(&q->pending);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->log_cv);
    pthread_cond_destroy(&q->apply_cv);
    free(q);
}

void pipeline_queue_set_engine(pipeline_queue *q, engine *e)
{
    pthread_mutex_lock(&q->mu);
    engine *old = q->has_next_engine ? q->next_engine : NULL;
    q->next_engine = e;
    q->has_next_engine = true;
    pthread_cond_signal(&q->apply_cv);
    pthread_mutex_unlock(&q->mu);
    engine_free(old);
}

void pipeline_queue_with_engine(pipeline_queue *q, void (*fn)(const engine *e, void *ctx), void *ctx)
{
    /* the apply thread replaces (and frees) the engine only under mu */
    pthread_mutex_lock(&q->mu);
    fn(q->stages.engine, ctx);
    pthread_mutex_unlock(&q->mu);
}

void pipeline_queue_stats(pipeline_queue *q, pipeline_stats *out)
{
    pthread_mutex_lock(&q->mu);
    *out = q->stats;
    out->log_position = q->durable;
    out->applied_position = q->applied;
    out->backlog_records = q->durable - q->applied;
    pthread_mutex_unlock(&q->mu);
    wal_stats_info ws;
    wal_stats(q->log, &ws);
    out->backlog_bytes = out->backlog_records > 0 ? ws.backlog_bytes : 0;
    out->backlog_oldest_ms = out->backlog_records > 0 ? ws.oldest_age_ms : 0;
}

void pipeline_queue_wake(void *vq)
{
    pipeline_queue *q = vq;
    pthread_mutex_lock(&q->mu);
    pthread_cond_signal(&q->apply_cv);
    pthread_mutex_unlock(&q->mu);
}
