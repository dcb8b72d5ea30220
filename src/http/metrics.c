/* metrics.c: Prometheus text for GET /metrics. */
#include "http/metrics.h"

#include <stdarg.h>
#include <stdio.h>

#include "util/util.h"

static const double batch_le[METRICS_BATCH_BUCKETS - 1] = {1, 4, 16, 64, 256, 1024, 4096};
static const double latency_le_ms[METRICS_LATENCY_BUCKETS - 1] = {0.5, 1, 2, 5, 10, 25, 50, 100, 250};
static const char *const outcome_names[METRICS_OUTCOME_COUNT] = {
    "accepted", "duplicate", "ignored_type", "rejected", "unavailable"};

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

/* The cumulative buckets of one histogram: n counts, the last one +Inf, the
 * others at le[i] * scale. */
static void emit_buckets(out_buf *o, const char *name, const uint64_t *counts, const double *le, size_t n,
                         double scale)
{
    uint64_t cum = 0;
    for (size_t b = 0; b < n; b++) {
        cum += counts[b];
        if (b < n - 1)
            emit(o, "%s_bucket{le=\"%g\"} %llu\n", name, le[b] * scale, (unsigned long long)cum);
        else
            emit(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    }
}

size_t metrics_render(const metrics_counters *m, char *buf, size_t len)
{
    out_buf o = {buf, len, 0};
    emit(&o, "# HELP veille_deliveries_total Webhook deliveries by event type and outcome.\n"
             "# TYPE veille_deliveries_total counter\n");
    for (int t = 0; t < EVENT_TYPE_COUNT; t++)
        for (int k = 0; k < METRICS_OUTCOME_COUNT; k++)
            if (m->deliveries[t][k] || (t != EVENT_UNKNOWN && k == METRICS_ACCEPTED))
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
    emit(&o, "# HELP veille_commit_batch_size Deliveries per group commit of the write-ahead log.\n"
             "# TYPE veille_commit_batch_size histogram\n");
    emit_buckets(&o, "veille_commit_batch_size", m->batch_size_bucket, batch_le, METRICS_BATCH_BUCKETS, 1);
    emit(&o, "veille_commit_batch_size_sum %llu\nveille_commit_batch_size_count %llu\n",
         (unsigned long long)m->batch_size_sum, (unsigned long long)m->batches);
    emit(&o, "# HELP veille_commit_seconds Time to append and fdatasync one batch to the write-ahead log.\n"
             "# TYPE veille_commit_seconds histogram\n");
    emit_buckets(&o, "veille_commit_seconds", m->commit_latency_bucket, latency_le_ms, METRICS_LATENCY_BUCKETS,
                 1 / 1000.0);
    emit(&o, "veille_commit_seconds_sum %.6f\nveille_commit_seconds_count %llu\n", m->commit_seconds_sum,
         (unsigned long long)m->batches);
    emit(&o, "# HELP veille_commit_failures_total Batches the write-ahead log refused (answered 503).\n"
             "# TYPE veille_commit_failures_total counter\nveille_commit_failures_total %llu\n",
         (unsigned long long)m->batch_failures);
    emit(&o, "# HELP veille_pruned_total Records removed by retention.\n# TYPE veille_pruned_total counter\n"
             "veille_pruned_total{kind=\"history\"} %llu\nveille_pruned_total{kind=\"delivery_id\"} %llu\n",
         (unsigned long long)m->history_pruned, (unsigned long long)m->deliveries_pruned);
    emit(&o, "# HELP veille_start_time_seconds When this process started.\n# TYPE veille_start_time_seconds gauge\n"
             "veille_start_time_seconds %lld\n", (long long)(m->started_ms / 1000));
    return o.used;
}

size_t metrics_render_pipeline(const pipeline_stats *s, char *buf, size_t len)
{
    out_buf o = {buf, len, 0};
    emit(&o, "# HELP veille_backlog_records Deliveries durable in the write-ahead log, not yet applied.\n"
             "# TYPE veille_backlog_records gauge\nveille_backlog_records %llu\n"
             "# HELP veille_backlog_bytes Bytes of the write-ahead log not yet released.\n"
             "# TYPE veille_backlog_bytes gauge\nveille_backlog_bytes %llu\n"
             "# HELP veille_backlog_oldest_seconds Age of the oldest delivery waiting to be applied.\n"
             "# TYPE veille_backlog_oldest_seconds gauge\nveille_backlog_oldest_seconds %.3f\n",
         (unsigned long long)s->backlog_records, (unsigned long long)s->backlog_bytes,
         (double)s->backlog_oldest_ms / 1000.0);
    emit(&o, "# HELP veille_log_position Last write-ahead log position durable, and applied.\n"
             "# TYPE veille_log_position gauge\nveille_log_position{at=\"durable\"} %llu\n"
             "veille_log_position{at=\"applied\"} %llu\n",
         (unsigned long long)s->log_position, (unsigned long long)s->applied_position);
    static const char *const applied_names[4] = {"applied", "duplicate", "stale", "after_delete"};
    emit(&o, "# HELP veille_applied_total Logged deliveries applied to the store, by outcome.\n"
             "# TYPE veille_applied_total counter\n");
    for (int k = 0; k < 4; k++)
        emit(&o, "veille_applied_total{outcome=\"%s\"} %llu\n", applied_names[k], (unsigned long long)s->applied[k]);
    emit(&o, "# HELP veille_apply_transactions_total Store transactions of the apply thread.\n"
             "# TYPE veille_apply_transactions_total counter\nveille_apply_transactions_total %llu\n"
             "# HELP veille_apply_failures_total Apply transactions that failed (retried).\n"
             "# TYPE veille_apply_failures_total counter\nveille_apply_failures_total %llu\n",
         (unsigned long long)s->apply_txns, (unsigned long long)s->apply_failures);
    emit(&o, "# HELP veille_apply_lag_seconds From acknowledgement to applied (and alerted): the time to alert.\n"
             "# TYPE veille_apply_lag_seconds histogram\n");
    emit_buckets(&o, "veille_apply_lag_seconds", s->lag_bucket, pipeline_lag_le, PIPELINE_LAG_BUCKETS, 1);
    emit(&o, "veille_apply_lag_seconds_sum %.6f\nveille_apply_lag_seconds_count %llu\n", s->lag_seconds_sum,
         (unsigned long long)s->lag_count);
    emit(&o, "# HELP veille_alerts_total Alerts raised and committed since start.\n# TYPE veille_alerts_total counter\n"
             "veille_alerts_total %llu\n", (unsigned long long)s->alerts);
    return o.used;
}
