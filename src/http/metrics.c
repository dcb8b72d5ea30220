/* metrics.c: Prometheus text for GET /metrics. */
#include "http/metrics.h"

#include <stdarg.h>
#include <stdio.h>

#include "util/util.h"

static const double batch_le[METRICS_BATCH_BUCKETS - 1] = {1, 4, 16, 64, 256, 1024, 4096};
static const double latency_le_ms[METRICS_LATENCY_BUCKETS - 1] = {0.5, 1, 2, 5, 10, 25, 50, 100, 250};
static const char *const outcome_names[METRICS_OUTCOME_COUNT] = {
    "stored", "duplicate", "ignored_type", "stale", "rejected", "unavailable"};

void metrics_record_batch(metrics_counters *m, size_t size, int64_t commit_ns, int failed)
{
    m->batches++;
    if (failed)
        m->batch_failures++;
    m->batch_size_sum += size;
    size_t b = 0;
    while (b < METRICS_BATCH_BUCKETS - 1 && (double)size > batch_le[b])
        b++;
    m->batch_size_bucket[b]++;
    double ms = (double)commit_ns / 1e6;
    m->commit_seconds_sum += ms / 1000.0;
    size_t l = 0;
    while (l < METRICS_LATENCY_BUCKETS - 1 && ms > latency_le_ms[l])
        l++;
    m->commit_latency_bucket[l]++;
}

typedef struct {
    char *buf;
    size_t len, used;
} out_buf;

static void emit(out_buf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(out_buf *o, const char *fmt, ...)
{
    if (o->used >= o->len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->used += (size_t)n < o->len - o->used ? (size_t)n : o->len - o->used - 1;
}

size_t metrics_render(const metrics_counters *m, char *buf, size_t len)
{
    out_buf o = {buf, len, 0};
    emit(&o, "# HELP veille_deliveries_total Webhook deliveries by event type and outcome.\n"
             "# TYPE veille_deliveries_total counter\n");
    for (int t = 0; t < EVENT_TYPE_COUNT; t++)
        for (int k = 0; k < METRICS_OUTCOME_COUNT; k++)
            if (m->deliveries[t][k] || (t != EVENT_UNKNOWN && k == METRICS_STORED))
                emit(&o, "veille_deliveries_total{type=\"%s\",outcome=\"%s\"} %llu\n",
                     event_type_name((event_type)t), outcome_names[k],
                     (unsigned long long)m->deliveries[t][k]);
    emit(&o, "# HELP veille_rejected_total Deliveries refused before storage, by reason.\n"
             "# TYPE veille_rejected_total counter\n");
    for (int r = 1; r < METRICS_REASON_COUNT; r++)
        emit(&o, "veille_rejected_total{reason=\"%s\"} %llu\n", ingest_reason_label((ingest_result)-r),
             (unsigned long long)m->rejected_by_reason[r]);
    emit(&o, "# HELP veille_signature_failures_total Deliveries whose signature did not verify, by reason.\n"
             "# TYPE veille_signature_failures_total counter\n");
    const ingest_result sig[] = {INGEST_ERR_MISSING_HEADERS, INGEST_ERR_BAD_TIMESTAMP, INGEST_ERR_TOO_OLD,
                                 INGEST_ERR_TOO_NEW, INGEST_ERR_NO_MATCH, INGEST_ERR_BAD_SIGNATURE_HEADER};
    for (size_t i = 0; i < sizeof sig / sizeof sig[0]; i++)
        emit(&o, "veille_signature_failures_total{reason=\"%s\"} %llu\n", ingest_reason_label(sig[i]),
             (unsigned long long)m->rejected_by_reason[-sig[i]]);
    emit(&o, "# HELP veille_duplicates_total Deliveries whose id was already stored (Svix retries).\n"
             "# TYPE veille_duplicates_total counter\nveille_duplicates_total %llu\n",
         (unsigned long long)m->duplicates);
    emit(&o, "# HELP veille_invalid_ip_total IPs that were not addresses, dropped from recorded deliveries, by field.\n"
             "# TYPE veille_invalid_ip_total counter\n");
    for (int f = 0; f < EVENT_IP_FIELD_COUNT; f++)
        emit(&o, "veille_invalid_ip_total{field=\"%s\"} %llu\n", event_ip_field_name((event_ip_field)f),
             (unsigned long long)m->invalid_ips[f]);
    emit(&o, "# HELP veille_commit_batch_size Deliveries per group-commit transaction.\n"
             "# TYPE veille_commit_batch_size histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b < METRICS_BATCH_BUCKETS; b++) {
        cum += m->batch_size_bucket[b];
        if (b < METRICS_BATCH_BUCKETS - 1)
            emit(&o, "veille_commit_batch_size_bucket{le=\"%g\"} %llu\n", batch_le[b], (unsigned long long)cum);
        else
            emit(&o, "veille_commit_batch_size_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    emit(&o, "veille_commit_batch_size_sum %llu\nveille_commit_batch_size_count %llu\n",
         (unsigned long long)m->batch_size_sum, (unsigned long long)m->batches);
    emit(&o, "# HELP veille_commit_seconds Time to write and fsync one batch.\n"
             "# TYPE veille_commit_seconds histogram\n");
    cum = 0;
    for (int b = 0; b < METRICS_LATENCY_BUCKETS; b++) {
        cum += m->commit_latency_bucket[b];
        if (b < METRICS_LATENCY_BUCKETS - 1)
            emit(&o, "veille_commit_seconds_bucket{le=\"%g\"} %llu\n", latency_le_ms[b] / 1000.0,
                 (unsigned long long)cum);
        else
            emit(&o, "veille_commit_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    emit(&o, "veille_commit_seconds_sum %.6f\nveille_commit_seconds_count %llu\n", m->commit_seconds_sum,
         (unsigned long long)m->batches);
    emit(&o, "# HELP veille_commit_failures_total Batches whose transaction failed (answered 503).\n"
             "# TYPE veille_commit_failures_total counter\nveille_commit_failures_total %llu\n",
         (unsigned long long)m->batch_failures);
    emit(&o, "# HELP veille_pruned_total Records removed by retention.\n# TYPE veille_pruned_total counter\n"
             "veille_pruned_total{kind=\"history\"} %llu\nveille_pruned_total{kind=\"delivery_id\"} %llu\n",
         (unsigned long long)m->history_pruned, (unsigned long long)m->deliveries_pruned);
    emit(&o, "# HELP veille_start_time_seconds When this process started.\n# TYPE veille_start_time_seconds gauge\n"
             "veille_start_time_seconds %lld\n", (long long)(m->started_ms / 1000));
    return o.used;
}
