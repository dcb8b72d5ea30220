/*
 * pipeline.h: what happens to a decoded delivery, in one place for `veille
 * serve` and `veille replay`.
 *
 *   per event, inside one store write transaction (pipeline_apply_event):
 *     seen?  -> apply to the store -> rules (only when applied) -> mark the id
 *   per transaction (pipeline_txn_commit):
 *     raised alerts -> outbox of the remote sinks -> file/stdout sinks, fsync
 *     -> LMDB commit
 *   The alerts reach the sinks (and disk) before the commit: a crash in between
 *   repeats them on retry (same ids) rather than losing them.
 *
 * The queue (pipeline_queue_*) is serve's: the event loop fills a batch; the
 * committer thread writes it and hands it back, on the loop thread, to be
 * answered. Threads: a pipeline_txn belongs to one thread; the queue's
 * functions say which thread calls them.
 */
#ifndef VEILLE_PIPELINE_H
#define VEILLE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alert/alert.h"
#include "deliver/deliver.h"
#include "engine/engine.h"
#include "event/event.h"
#include "store/store.h"

/* ---- one transaction of events ---- */

typedef enum {
    PIPELINE_APPLIED = 0,  /* stored, rules ran */
    PIPELINE_DUPLICATE,    /* the delivery id was recorded before: nothing done */
    PIPELINE_STALE,        /* user update older than the stored record: id recorded, no rule */
    PIPELINE_AFTER_DELETE, /* user update for a deleted user: id recorded, no rule */
} pipeline_outcome;

typedef struct {
    engine *engine;      /* NULL: no rules */
    alert_sinks *sinks;  /* NULL: none; written and synced before the commit */
    deliver *deliver;    /* NULL: no remote sink; alerts enter its outbox in the transaction */
    /* Called for every alert raised, before the commit; may be NULL (replay prints here). */
    engine_alert_cb on_alert;
    engine_explain_cb on_explain;
    void *ctx;
} pipeline_stages;

typedef struct {
    store_txn *t;
    const pipeline_stages *stages;
    engine_hooks hooks;
    store_alert *alerts; /* raised in this transaction */
    size_t n_alerts, cap_alerts;
    bool alerts_lost;    /* out of memory holding one: the commit refuses */
} pipeline_txn;

/* p is the caller's; its alert buffer is kept across transactions until
 * pipeline_txn_free. */
int pipeline_txn_begin(pipeline_txn *p, store *st, const pipeline_stages *stages, char *err, size_t errlen);
/* ev is applied in p's transaction at now_ms (the alerts' raise time);
 * received_ms is recorded with its delivery id. A negative return is a store
 * error: the caller must pipeline_txn_abort. */
int pipeline_apply_event(pipeline_txn *p, const event_t *ev, int64_t received_ms, int64_t now_ms,
                         pipeline_outcome *outcome, char *err, size_t errlen);
/* Alerts to the outbox and the sinks, then the store commit. Ends p's
 * transaction whatever it returns (no abort after it). */
int pipeline_txn_commit(pipeline_txn *p, char *err, size_t errlen);
void pipeline_txn_abort(pipeline_txn *p); /* no transaction open: a no-op */
void pipeline_txn_free(pipeline_txn *p);

/* ---- serve's queue: group commit between the event loop and the committer ---- */

struct st_h2o_evloop_t; /* h2o_loop_t: this header is also for code without h2o */

/* Bounded: past this many deliveries waiting, new ones get 503 (Svix retries). */
#define PIPELINE_BATCH_MAX 4096

/* What a delivery is answered. */
typedef enum {
    PIPELINE_ANSWER_PENDING = 0,
    PIPELINE_ANSWER_STORED,
    PIPELINE_ANSWER_DUPLICATE,
    PIPELINE_ANSWER_STALE,        /* user update older than the stored record */
    PIPELINE_ANSWER_AFTER_DELETE, /* user update for a deleted user */
    PIPELINE_ANSWER_FAILED,       /* storage error: answer 503 */
} pipeline_answer;

struct pipeline_slot; /* the server's link to the waiting request */

typedef struct {
    event_t ev;
    int64_t received_ms;
    int64_t received_ns;         /* monotonic, for latency */
    struct pipeline_slot *slot;  /* NULL once the request went away */
    pipeline_answer answer;
} pipeline_item;

typedef struct {
    pipeline_item *items;
    size_t count;
    int rc;                      /* 0, or the store error of a failed batch */
    char err[256];
    int64_t commit_ns;
    bool isolated;               /* the batch failed whole and was retried item by item */
    uint64_t alerts;             /* raised by this batch and committed */
} pipeline_batch;

typedef void (*pipeline_done_cb)(pipeline_batch *b, void *ctx);

/* The store refused the last delivery commit for a reason every delivery
 * shares (map or disk full, I/O error), and no commit that wrote a delivery has
 * succeeded since: what /healthz reports. A delivery refused alone (one bad
 * record) or a batch of duplicates only does not change it. */
typedef struct {
    bool failing;
    int rc;           /* STORE_ERR_FULL or STORE_ERR_IO */
    int64_t since_ms; /* wall clock of the first failure of this run */
    char err[256];
} pipeline_health;

typedef struct {
    store *st;
    int64_t retention_ms, delivery_keep_ms;
    engine *engine;         /* NULL: no rules; the queue owns it from pipeline_queue_start on */
    alert_sinks *sinks;
    deliver *deliver;
    pipeline_done_cb on_done; /* loop thread: a batch is durable (or failed), answer it */
    void *ctx;
} pipeline_queue_config;

typedef struct pipeline_queue pipeline_queue;

/* Starts the committer thread. Takes the engine whatever it returns. */
int pipeline_queue_start(pipeline_queue **out, const pipeline_queue_config *c, struct st_h2o_evloop_t *loop,
                         char *err, size_t errlen);
/* Loop thread: a slot in the filling batch, or NULL when it is full. */
pipeline_item *pipeline_queue_reserve(pipeline_queue *q);
/* Loop thread: give back the slot pipeline_queue_reserve returned last (nothing to store). */
void pipeline_queue_unreserve(pipeline_queue *q);
bool pipeline_queue_full(const pipeline_queue *q);
/* Loop thread: hand the filling batch over if the committer is idle and it is not empty. */
void pipeline_queue_kick(pipeline_queue *q);
bool pipeline_queue_idle(const pipeline_queue *q);
/* Finish: wait for the batch in flight (answered through on_done while the loop
 * runs), join the thread, free the engine and q. NULL is a no-op. */
void pipeline_queue_stop(pipeline_queue *q);
/* Loop thread: run e (NULL: no rules) from the next batch on; the engine
 * replaced is freed once no batch uses it. Takes ownership of e. */
void pipeline_queue_set_engine(pipeline_queue *q, engine *e);
/* Loop thread: the engine rules run with now (NULL: none), for its counters. */
const engine *pipeline_queue_engine(const pipeline_queue *q);
void pipeline_queue_pruned_totals(pipeline_queue *q, uint64_t *history, uint64_t *deliveries);
/* Any thread: the committer's view of the store (see pipeline_health). */
void pipeline_queue_health(pipeline_queue *q, pipeline_health *out);
/* Any thread: delivery outcomes wait to be written (deliver_options.wake_committer). */
void pipeline_queue_wake(void *q);

#endif
