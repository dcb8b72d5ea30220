/*
 * commit.h (private to http/): the group committer. The event loop fills a batch;
 * the committer thread writes the whole batch in one LMDB transaction and hands it
 * back through an h2o multithread queue, on the loop thread, to be answered.
 * Two batches alternate (one filling, one in flight): while one fsyncs the loop keeps
 * verifying the next deliveries, which is what makes batches grow under load.
 */
#ifndef VEILLE_HTTP_COMMIT_H
#define VEILLE_HTTP_COMMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define H2O_USE_LIBUV 0
#include <h2o.h>
#include <h2o/multithread.h>

#include "alert/alert.h"
#include "deliver/deliver.h"
#include "engine/engine.h"
#include "event/event.h"
#include "store/store.h"

/* Bounded: past this many deliveries waiting, new ones get 503 (Svix retries). */
#define COMMIT_BATCH_MAX 4096

typedef enum {
    COMMIT_PENDING = 0,
    COMMIT_STORED,
    COMMIT_DUPLICATE,
    COMMIT_STALE,        /* user update older than the stored record */
    COMMIT_AFTER_DELETE, /* user update for a deleted user */
    COMMIT_FAILED,       /* storage error: answer 503 */
} commit_result;

struct commit_slot;

typedef struct {
    event_t ev;
    int64_t received_ms;
    int64_t received_ns;     /* monotonic, for latency */
    struct commit_slot *slot; /* link to the waiting request; NULL once it went away */
    commit_result result;
} commit_item;

typedef struct {
    commit_item *items;
    size_t count;
    int rc;                  /* 0, or the store error of a failed batch */
    char err[256];
    int64_t commit_ns;
    bool isolated;           /* the batch failed whole and was retried item by item */
    uint64_t alerts;         /* raised by this batch and committed */
} commit_batch;

typedef void (*commit_done_cb)(commit_batch *b, void *ctx);

/* The store refused the last delivery commit for a reason every delivery
 * shares (map or disk full, I/O error), and no commit that wrote a delivery has
 * succeeded since: what /healthz reports. A delivery refused alone (one bad
 * record) or a batch of duplicates only does not change it. */
typedef struct {
    bool failing;
    int rc;           /* STORE_ERR_FULL or STORE_ERR_IO */
    int64_t since_ms; /* wall clock of the first failure of this run */
    char err[256];
} commit_store_health;

typedef struct {
    store *st;
    int64_t retention_ms, delivery_keep_ms;
    uint64_t map_resident; /* see http_options.map_resident; 0: never release */
    /* The rules engine (NULL: no rules) and the sinks alerts are written to before
     * their transaction commits. The engine is replaced only with commit_set_engine. */
    engine *engine;
    alert_sinks *sinks;
    /* Remote sinks: raised alerts enter their outbox in the batch's transaction,
     * and delivery outcomes are written back between or with batches. */
    deliver *deliver;
    commit_done_cb on_done;
    void *ctx;
    /* private */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    commit_batch batches[2];
    commit_batch *filling, *inflight;
    bool busy, stopping, thread_started;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    h2o_multithread_message_t done_msg;
    store_prune_result last_prune;
    uint64_t pruned_history, pruned_deliveries; /* written by the committer, read under mu */
    commit_store_health health; /* written by the committer, read under mu */
    engine *next_engine;      /* installed once the batch in flight is answered */
    bool has_next_engine;
    /* committer-only: alerts of the transaction being written */
    store_alert *alerts;
    size_t n_alerts, cap_alerts;
} commit_queue;

int commit_start(commit_queue *q, h2o_loop_t *loop, char *err, size_t errlen);
/* A slot in the filling batch, or NULL when it is full. */
commit_item *commit_reserve(commit_queue *q);
/* Hand the filling batch to the committer if it is idle and the batch is not empty. */
void commit_kick(commit_queue *q);
bool commit_idle(const commit_queue *q);
/* Finish: wait for the batch in flight; the caller answers it via on_done while
 * running the loop. Then join the thread. */
void commit_stop(commit_queue *q);
/* On the loop thread: run e (NULL: no rules) from the next batch on; the engine
 * replaced is freed once no batch uses it. Takes ownership of e. */
void commit_set_engine(commit_queue *q, engine *e);
void commit_pruned_totals(commit_queue *q, uint64_t *history, uint64_t *deliveries);
/* Any thread: a copy of the committer's view of the store (see commit_store_health). */
void commit_health(commit_queue *q, commit_store_health *out);
/* Any thread: delivery outcomes wait to be written (deliver_options.wake_committer). */
void commit_wake(void *q);

#endif
