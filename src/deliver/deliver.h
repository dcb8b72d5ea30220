/*
 * deliver.h: drains the store's outbox to the remote sinks (syslog over
 * /dev/log, UDP or TCP; webhooks over http or https) from the server's event
 * loop, with retries, backoff and a deadline.
 *
 *   committer thread, inside the write transaction of a batch:
 *     deliver_txn_queue()  an alert enters the outbox of every sink that wants it
 *     deliver_txn_settle() outcomes reported by the loop are written back
 *     deliver_txn_end()    after commit (or abort)
 *   loop thread:
 *     deliver_run_due()    read due entries, start attempts; each outcome is
 *                          queued for the committer, never written here, so the
 *                          loop never waits for the single LMDB writer
 *
 * A slow or dead receiver costs the loop nothing but its open attempts: each
 * sink owns at most DELIVER_SLOTS entries at a time, the rest wait in LMDB.
 * At-least-once: an entry leaves the outbox only once its success is
 * committed; a crash in between sends it again, with the same alert id.
 */
#ifndef VEILLE_DELIVER_H
#define VEILLE_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define H2O_USE_LIBUV 0
#include <h2o.h>

#include "alert/alert.h"
#include "ingest/ingest.h"
#include "store/store.h"

#define DELIVER_SLOTS 16           /* entries a sink holds in memory at once */
#define DELIVER_WEBHOOK_PARALLEL 4 /* requests in flight per webhook sink */
#define DELIVER_BACKOFF_FIRST_MS 1000
#define DELIVER_BACKOFF_CAP_MS (10 * 60 * 1000)

typedef struct deliver deliver;

typedef struct {
    int64_t retry_for_ms;   /* an alert not delivered this long after it was queued is dead */
    uint64_t outbox_max;    /* pending entries per sink; past it new alerts are not queued there */
    int64_t timeout_ms;     /* one attempt: connect, TLS, request and answer */
    const ingest_secret *secret; /* signs webhooks; required when a webhook sink is configured */
    /* called on the loop thread when outcomes wait for the committer */
    void (*wake_committer)(void *ctx);
    void *wake_ctx;
} deliver_options;

/* Check and prepare the remote sinks among cfgs (resolve syslog hosts, load CA
 * files, count what the outbox holds for each). cfgs must outlive d. With no
 * remote sink *out is still a valid, idle deliverer. */
int deliver_new(store *st, const alert_sink_config *cfgs, size_t n, const deliver_options *o, deliver **out,
                char *err, size_t errlen);
/* Attach to the loop; attempts start from the next deliver_run_due. */
int deliver_start(deliver *d, h2o_loop_t *loop, char *err, size_t errlen);
/* Loop thread: release settled entries, read what is due, start attempts.
 * Returns the milliseconds until something is due again (at most 1000). */
int64_t deliver_run_due(deliver *d);
/* Loop thread: new entries were committed; look at the outbox now. */
void deliver_kick(deliver *d);
/* Loop thread: abandon attempts in flight (their entries stay pending). */
void deliver_stop(deliver *d);
void deliver_free(deliver *d); /* NULL is a no-op */

/* Prometheus text for every remote sink, appended at buf; returns the length. */
size_t deliver_render_metrics(deliver *d, char *buf, size_t len);

/* ---- committer thread ---- */
int deliver_txn_queue(deliver *d, store_txn *t, const store_alert *a, char *err, size_t errlen);
/* Write the outcomes waiting so far into t; *applied counts them. */
int deliver_txn_settle(deliver *d, store_txn *t, int64_t now_ms, size_t *applied, char *err, size_t errlen);
/* The transaction that used queue/settle committed (true) or was aborted. */
void deliver_txn_end(deliver *d, bool committed);
bool deliver_settles_waiting(deliver *d);

/* ---- veille test-alert ----
 * One attempt through sink c, now, on a loop of its own; outcome fills result
 * ("HTTP 204 in 12 ms", or why it failed). Returns 0 when delivered. */
int deliver_test(const alert_sink_config *c, const ingest_secret *secret, int64_t timeout_ms, const store_alert *a,
                 char *result, size_t rlen);

#endif
