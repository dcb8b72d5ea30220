/*
 * internal.h (private to src/pipeline): the queue's state, shared by queue.c
 * (the loop's side and the log thread) and applier.c (the apply thread), and
 * the set of delivery ids in the log but not yet applied (pending.c).
 */
#ifndef VEILLE_PIPELINE_INTERNAL_H
#define VEILLE_PIPELINE_INTERNAL_H

#include <pthread.h>

#define H2O_USE_LIBUV 0
#include <h2o.h>
#include <h2o/multithread.h>

#include "pipeline/pipeline.h"
#include "wal/wal.h"

/* A multiset of delivery ids (a count per id: the same id can be in the log
 * twice only through a crash between log and apply, and each apply removes
 * one). Not thread-safe: the queue's mutex guards it. */
typedef struct pipeline_pending_entry pipeline_pending_entry;
typedef struct {
    pipeline_pending_entry **buckets;
    size_t nbuckets, count;
} pipeline_pending;

int pipeline_pending_add(pipeline_pending *p, const char *id); /* 0, or -1 out of memory */
bool pipeline_pending_has(const pipeline_pending *p, const char *id);
void pipeline_pending_remove(pipeline_pending *p, const char *id); /* absent: a no-op */
void pipeline_pending_free(pipeline_pending *p);

/* The store refused an apply for a reason every record shares (map or disk
 * full, I/O error), and no apply has committed since. */
typedef struct {
    bool failing;
    int rc;           /* STORE_ERR_FULL, STORE_ERR_IO, or the log unreadable (another value) */
    int64_t since_ms; /* wall clock of the first failure in a row */
    char err[256];
} pipeline_store_health;

struct pipeline_queue {
    pipeline_queue_config c;
    pipeline_stages stages; /* engine, sinks, deliver: what the apply runs */
    wal *log;

    pthread_mutex_t mu;
    pthread_cond_t log_cv;   /* the log thread waits for a batch */
    pthread_cond_t apply_cv; /* the apply thread waits for records or work */
    pthread_t log_thread, apply_thread;
    bool log_started, apply_started;

    /* loop <-> log thread, under mu */
    pipeline_batch batches[2];
    pipeline_batch *filling, *inflight;
    bool busy;            /* inflight is with the log thread or waits to be answered */
    bool inflight_waiting; /* inflight was handed over and the log thread has not taken it */
    bool stop_log, stop_apply, refusing;
    h2o_multithread_queue_t *queue;
    h2o_loop_t *loop;
    h2o_multithread_receiver_t done_receiver, alerts_receiver;
    h2o_multithread_message_t done_msg, alerts_msg;

    /* under mu */
    pipeline_pending pending;
    uint64_t durable;     /* last log position durable (log thread) */
    uint64_t applied;     /* last position the store committed (apply thread) */
    bool log_failed;      /* the log is poisoned: no append until a restart */
    int64_t log_failed_ms;
    char log_err[384];
    pipeline_store_health health;
    pipeline_stats stats; /* the apply's figures; backlog filled in when read */
    uint64_t alerts_unsent; /* raised since the loop last kicked the deliverer */
    /* alerts_msg is queued to the loop and not yet handled. Trap: h2o links the
     * message itself into the receiver's list, so sending it again before the
     * loop took it would corrupt the list; and a receiver must be empty when it
     * is unregistered. */
    bool alerts_msg_queued;
    bool loop_stopped; /* pipeline_queue_stop runs: handlers no longer call back */
    engine *next_engine;
    bool has_next_engine;

    /* apply thread only (and pipeline_queue_start before it runs) */
    pipeline_txn txn;
    uint64_t released;      /* given to wal_release */
    uint64_t before_last;   /* applied position of the commit before the last one */
    int64_t synced_ms;      /* last store_sync */
    char (*applied_ids)[EVENT_ID_MAX]; /* of the transaction being written */
    int64_t *applied_received;
};

/* The apply thread's notice to the loop that alerts were raised (at most one queued). */
void pipeline_notify_alerts(pipeline_queue *q);

/* applier.c */
int pipeline_applier_recover(pipeline_queue *q, char *err, size_t errlen);
void *pipeline_applier_main(void *arg);

#endif
