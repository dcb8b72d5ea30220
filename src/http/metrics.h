/*
 * metrics.h (private to http/): counters behind GET /metrics. Updated only on the
 * event-loop thread (the committer hands its figures back with each batch), so no
 * atomics are needed.
 */
#ifndef VEILLE_HTTP_METRICS_H
#define VEILLE_HTTP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "event/event.h"
#include "ingest/ingest.h"
#include "pipeline/pipeline.h"

/* Delivery outcomes, one Prometheus label each. */
typedef enum {
    METRICS_ACCEPTED = 0, /* durable in the write-ahead log */
    METRICS_DUPLICATE,
    METRICS_IGNORED_TYPE,
    METRICS_REJECTED,     /* 4xx: signature, headers, JSON, size */
    METRICS_UNAVAILABLE,  /* 503: storage failure or overload */
    METRICS_OUTCOME_COUNT
} metrics_outcome;

#define METRICS_REASON_COUNT 10   /* indexed by -ingest_result */
#define METRICS_BATCH_BUCKETS 8
#define METRICS_LATENCY_BUCKETS 10

typedef struct {
    uint64_t deliveries[EVENT_TYPE_COUNT][METRICS_OUTCOME_COUNT];
    uint64_t rejected_by_reason[METRICS_REASON_COUNT];
    uint64_t duplicates;
    uint64_t invalid_ips[EVENT_IP_FIELD_COUNT]; /* IPs dropped from recorded deliveries, by field */
    uint64_t batches;
    uint64_t batch_failures;
    uint64_t batch_size_sum;
    uint64_t batch_size_bucket[METRICS_BATCH_BUCKETS];     /* le 1,4,16,64,256,1024,4096,+Inf */
    double commit_seconds_sum;
    uint64_t commit_latency_bucket[METRICS_LATENCY_BUCKETS]; /* le .5,1,2,5,10,25,50,100,250ms,+Inf */
    uint64_t history_pruned;
    uint64_t deliveries_pruned;
    uint64_t rules_reloads, rules_reload_failures;
    int64_t started_ms;
} metrics_counters;

void metrics_record_batch(metrics_counters *m, size_t size, int64_t commit_ns, int failed);

/* Prometheus text exposition into buf; returns the length written (cut at len). */
size_t metrics_render(const metrics_counters *m, char *buf, size_t len);
/* The write-ahead log's backlog and the apply (its lag is the time to alert). */
size_t metrics_render_pipeline(const pipeline_stats *s, char *buf, size_t len);

#endif
