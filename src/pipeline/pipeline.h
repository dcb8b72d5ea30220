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

/* ---- serve's queue: acknowledge from the write-ahead log, apply behind ----
 *
 *   loop thread     verify, decode, admit (backpressure), fill a batch
 *   log thread      per batch: duplicates (ids pending in the log, then the
 *                   store in one read txn), append the new ones to DATA/wal/,
 *                   one fdatasync; hand the batch back to be answered
 *   apply thread    reads the log after the store's applied position and runs
 *                   pipeline_apply_event on each record, up to
 *                   PIPELINE_APPLY_EVENTS events or PIPELINE_APPLY_MS per
 *                   transaction, which also records the position; prunes and
 *                   writes alert-delivery outcomes between transactions
 * Two batches alternate (one filling, one being logged), so the batches grow
 * with the load, as group commit does. A delivery is answered "accepted" once
 * its record is durable in the log: a crash after that replays it at the next
 * start, before serving. */

struct st_h2o_evloop_t; /* h2o_loop_t */

#define PIPELINE_BATCH_MAX 4096     /* deliveries waiting for the log; past it, 503 */
#define PIPELINE_APPLY_EVENTS 2000  /* events per apply transaction, at most */
#define PIPELINE_APPLY_MS 50        /* and milliseconds of apply work */
#define PIPELINE_DEFAULT_MAX_BACKLOG ((uint64_t)64 << 20)
#define PIPELINE_DEFAULT_MAX_BACKLOG_AGE_MS 30000

/* What a delivery is answered. */
typedef enum {
    PIPELINE_ANSWER_PENDING = 0,
    PIPELINE_ANSWER_ACCEPTED,     /* durable in the log */
    PIPELINE_ANSWER_DUPLICATE,    /* its id is in the log or the store already */
    PIPELINE_ANSWER_FAILED,       /* the log or the store refused: 503 */
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
    int rc;                      /* 0, or the error of a batch that failed */
    char err[384];               /* room for the log's failure (pipeline_queue's log_err) */
    int64_t commit_ns;           /* the log's append + fdatasync */
} pipeline_batch;

typedef void (*pipeline_done_cb)(pipeline_batch *b, void *ctx);

/* Why deliveries are not acknowledged now (what /healthz says), or none. */
typedef enum {
    PIPELINE_ADMIT = 0,
    PIPELINE_REFUSE_STOPPING,
    PIPELINE_REFUSE_LOG,      /* the log's disk failed: restart once it has room */
    PIPELINE_REFUSE_STORE,    /* the apply cannot commit (map or disk full, I/O) */
    PIPELINE_REFUSE_BACKLOG,  /* the unapplied backlog passed its bound */
    PIPELINE_REFUSE_BUSY,     /* the batch being filled is full */
} pipeline_refusal;

typedef struct {
    pipeline_refusal refusal;
    char reason[512];         /* for the answer and /healthz */
    int64_t since_ms;         /* store or log failure: wall clock of its first occurrence */
    int retry_after_s;
} pipeline_admission;

#define PIPELINE_LAG_BUCKETS 10
extern const double pipeline_lag_le[PIPELINE_LAG_BUCKETS - 1]; /* seconds, the buckets' upper bounds */
typedef struct {
    /* backlog: durable in the log, not yet applied */
    uint64_t backlog_records, backlog_bytes;
    int64_t backlog_oldest_ms;
    uint64_t log_position, applied_position;
    /* apply */
    uint64_t applied[4];      /* by pipeline_outcome */
    uint64_t apply_txns, apply_failures, alerts;
    double lag_seconds_sum;   /* acknowledgement to applied: the time to alert */
    uint64_t lag_count;
    uint64_t lag_bucket[PIPELINE_LAG_BUCKETS]; /* le pipeline_lag_le, then +Inf */
    uint64_t pruned_history, pruned_deliveries;
} pipeline_stats;

typedef struct {
    store *st;               /* opened with STORE_NOMETASYNC */
    const char *data_dir;    /* the log goes in DATA/wal/ */
    int64_t retention_ms, delivery_keep_ms;
    uint64_t max_backlog_bytes;
    int64_t max_backlog_age_ms;
    engine *engine;          /* NULL: no rules; the queue owns it from pipeline_queue_start on */
    alert_sinks *sinks;
    deliver *deliver;
    pipeline_done_cb on_done; /* loop thread: a batch is durable (or failed), answer it */
    void (*on_alerts)(void *ctx); /* loop thread: applied transactions raised alerts */
    void *ctx;
} pipeline_queue_config;

typedef struct pipeline_queue pipeline_queue;

/* Opens the log (logging a cut torn tail), applies what it holds after the
 * store's applied position (logging how many), then starts the log and apply
 * threads. A failing apply (store full) does not stop the start: the server
 * comes up refusing deliveries, and retries. Takes the engine whatever it
 * returns; on failure *out is still to be pipeline_queue_stop'ped. */
int pipeline_queue_start(pipeline_queue **out, const pipeline_queue_config *c, struct st_h2o_evloop_t *loop,
                         char *err, size_t errlen);
/* Loop thread: may a delivery be acknowledged now? */
void pipeline_queue_admission(pipeline_queue *q, pipeline_admission *out);
/* Loop thread: a slot in the filling batch, or NULL when it is full. */
pipeline_item *pipeline_queue_reserve(pipeline_queue *q);
/* Loop thread: give back the slot pipeline_queue_reserve returned last (nothing to log). */
void pipeline_queue_unreserve(pipeline_queue *q);
/* Loop thread: hand the filling batch to the log thread if it is idle and the batch is not empty. */
void pipeline_queue_kick(pipeline_queue *q);
bool pipeline_queue_idle(const pipeline_queue *q);
/* Loop thread, at SIGTERM: refuse from now on (PIPELINE_REFUSE_STOPPING). */
void pipeline_queue_refuse(pipeline_queue *q);
/* Finish: the log thread ends (the caller has answered what was in flight),
 * the apply thread applies what the log holds for at most PIPELINE_STOP_APPLY_MS
 * (the rest is applied at the next start), syncs the store, releases the log,
 * and everything is freed. NULL is a no-op. */
#define PIPELINE_STOP_APPLY_MS 10000
void pipeline_queue_stop(pipeline_queue *q);
/* Loop thread: run e (NULL: no rules) from the next apply transaction on; the
 * engine replaced is freed. Takes ownership of e. */
void pipeline_queue_set_engine(pipeline_queue *q, engine *e);
/* Any thread: fn(engine, ctx) with the engine in force (NULL: none), which
 * stays alive during the call (for its counters). */
void pipeline_queue_with_engine(pipeline_queue *q, void (*fn)(const engine *e, void *ctx), void *ctx);
/* Any thread. */
void pipeline_queue_stats(pipeline_queue *q, pipeline_stats *out);
/* Any thread: delivery outcomes wait to be written (deliver_options.wake_committer). */
void pipeline_queue_wake(void *q);

#endif
