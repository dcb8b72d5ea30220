/*
 * server.c: the h2o side of `veille serve`: listening socket, routes, request
 * limits, and the answers. Verification and decoding happen here on the loop thread
 * (they are CPU-only); storage happens in src/pipeline/.
 *
 * Routes: POST /webhooks/clerk, GET /healthz, GET /metrics.
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "http/metrics.h"
#include "pipeline/pipeline.h"
#include "rules/rules.h"
#include "store/store.h"
#include "util/log.h"
#include "util/net.h"
#include "util/util.h"

#define SHUTDOWN_DRAIN_MS 10000

/* Set from the signal handlers only; the loop polls them. */
static volatile sig_atomic_t stop_requested, reload_requested;

struct server {
    const http_options *opt;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_evloop_t *loop;
    h2o_socket_t *listener;
    store *st;
    pipeline_queue *commits;
    alert_sinks *sinks;
    deliver *deliver;
    metrics_counters metrics;
    console *console; /* --console: its own listener on this loop; NULL when off */
};

struct route_handler {
    h2o_handler_t super;
    struct server *srv;
};

/* Lives in the request's pool; the pool's destructor tells the batch that the
 * request is gone (client closed), so the answer is not sent to freed memory. */
struct pipeline_slot {
    h2o_req_t *req;
    pipeline_item *item;
};

static void on_slot_dispose(void *p)
{
    struct pipeline_slot *slot = p;
    if (slot->item != NULL)
        slot->item->slot = NULL;
}

/* deliver_options.wake_committer: the deliverer exists before the queue does */
static void wake_committer(void *ctx)
{
    struct server *srv = ctx;
    if (srv->commits != NULL)
        pipeline_queue_wake(srv->commits);
}

/* pipeline_queue_config.on_alerts: they are in the outbox now */
static void alerts_applied(void *ctx)
{
    struct server *srv = ctx;
    deliver_kick(srv->deliver);
}

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
}

/* What an engine takes from serve's options besides its rules: at start and on
 * every SIGHUP reload alike. */
static void engine_configure(engine *e, const http_options *o)
{
    engine_set_ipintel(e, o->ipdb);
    engine_set_risk(e, o->risk_history_ms, o->risk_min_history);
    engine_set_incidents(e, o->incident_window_ms, o->incident_update_ms);
}

int http_rules_disable(rules_set *set, const http_options *o, char *err, size_t errlen)
{
    for (size_t i = 0; i < o->disabled_count; i++)
        if (rules_disable(set, o->disabled_rules[i]) < 0)
            return util_err(err, errlen, "--disable-rule: no rule '%s' in %s (`veille rules --rules %s` lists them)",
                            o->disabled_rules[i], o->rules_path, o->rules_path);
    for (size_t i = 0; i < rules_count(set); i++) {
        const rules_rule *r = rules_rule_at(set, i);
        if (r->disabled)
            log_line(LOG_INFO, "msg=\"rule disabled\" rule=%s", r->name); /* names are identifiers: no quoting */
    }
    return 0;
}

/* SIGHUP: load the rule file again. The new rules run from the next batch on;
 * a file with errors is logged and changes nothing: one line per error,
 * error="FILE:LINE:COL: message" (the loader's brief form, without the source
 * and caret lines a terminal wants), then one summary line. */
static void reload_rules(struct server *srv)
{
    const char *path = srv->opt->rules_path;
    if (path[0] == '\0') { /* --rules none: nothing to reload, and nothing is wrong */
        log_line(LOG_INFO, "msg=\"rules reload: --rules none, detection stays off\"");
        return;
    }
    char *diag = NULL;
    size_t dlen = 0;
    FILE *mem = open_memstream(&diag, &dlen);
    rules_set *set = NULL;
    int errors = rules_load_file_brief(path, &set, mem);
    if (mem != NULL)
        fclose(mem);
    char qp[PATH_MAX + 8];
    log_quote(path, qp, sizeof qp);
    if (errors != 0) {
        size_t plen = strlen(path);
        for (char *line = diag, *next; line != NULL && *line; line = next) {
            next = strchr(line, '\n');
            if (next != NULL)
                *next++ = '\0';
            /* "FILE:LINE:COL: error: message": level=error says "error" already */
            char *word = strlen(line) > plen ? strstr(line + plen, ": error: ") : NULL;
            if (word != NULL)
                memmove(word + 2, word + 9, strlen(word + 9) + 1);
            char ql[1024];
            log_line(LOG_ERROR, "msg=\"rules reload refused\" error=%s", log_quote(line, ql, sizeof ql));
        }
        log_line(LOG_ERROR, "msg=\"rules reload refused: the running rules stay in force\" rules=%s errors=%d", qp,
                 errors);
        srv->metrics.rules_reload_failures++;
        free(diag);
        return;
    }
    free(diag);
    engine *e = NULL;
    char err[UTIL_ERRLEN];
    size_t n = rules_count(set);
    if (http_rules_disable(set, srv->opt, err, sizeof err) < 0) {
        char qe[UTIL_ERRLEN + 8];
        log_line(LOG_ERROR, "msg=\"rules reload refused\" rules=%s error=%s", qp, log_quote(err, qe, sizeof qe));
        srv->metrics.rules_reload_failures++;
        rules_free(set);
        return;
    }
    if (engine_new(set, &e, err, sizeof err) < 0) {
        log_line(LOG_ERROR, "msg=\"rules reload refused\" rules=%s error=\"%s\"", qp, err);
        srv->metrics.rules_reload_failures++;
        return;
    }
    engine_configure(e, srv->opt);
    pipeline_queue_set_engine(srv->commits, e);
    srv->metrics.rules_reloads++;
    log_line(LOG_INFO, "msg=\"rules reloaded\" rules=%s count=%zu", qp, n);
}

static int send_json(h2o_req_t *req, int status, const char *reason, json_t *body)
{
    char buf[1024];
    size_t n = json_dumpb(body, buf, sizeof buf, JSON_COMPACT);
    json_decref(body);
    if (n == 0 || n >= sizeof buf) {
        memcpy(buf, "{}", 2);
        n = 2;
    }
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, buf, n);
    return 0;
}

static int send_status(h2o_req_t *req, const char *status)
{
    return send_json(req, 200, "OK", json_pack("{s:s}", "status", status));
}

static int send_error(h2o_req_t *req, int status, const char *reason, const char *message)
{
    return send_json(req, status, reason, json_pack("{s:s}", "error", message));
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void peer_address(h2o_req_t *req, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    buf[0] = '\0';
    if (sl == 0)
        return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)len);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)len);
}

/* Find a header by its lower-case name; returns its value or {NULL, 0}. */
static h2o_iovec_t header_value(h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0)
        return h2o_iovec_init(NULL, 0);
    return req->headers.entries[i].value;
}

static int reject_delivery(struct server *srv, h2o_req_t *req, ingest_result r, event_type type, const char *id,
                           const char *message)
{
    int status = ingest_status_of(r);
    int idx = -(int)r;
    if (idx > 0 && idx < METRICS_REASON_COUNT)
        srv->metrics.rejected_by_reason[idx]++;
    srv->metrics.deliveries[type][METRICS_REJECTED]++;
    char peer[64], qid[160], qmsg[320];
    peer_address(req, peer, sizeof peer);
    log_line(LOG_WARN, "msg=rejected status=%d reason=%s id=%s remote=%s error=%s", status, ingest_reason_label(r),
             log_quote(id, qid, sizeof qid), peer[0] ? peer : "-", log_quote(message, qmsg, sizeof qmsg));
    return send_error(req, status, reason_phrase(status), message);
}

static int handle_webhook(struct server *srv, h2o_req_t *req, const ingest_secrets *secrets)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("POST"));
        return send_error(req, 405, "Method Not Allowed", "use POST");
    }
    /* svix-* first, webhook-* (Standard Webhooks) otherwise, as a set: mixing the
     * two families would let a proxy-added header change what was signed. */
    const char *prefix = header_value(req, "svix-id").base != NULL || header_value(req, "svix-signature").base != NULL
                             ? "svix-"
                             : "webhook-";
    char name[32];
    snprintf(name, sizeof name, "%sid", prefix);
    h2o_iovec_t id = header_value(req, name);
    snprintf(name, sizeof name, "%stimestamp", prefix);
    h2o_iovec_t ts = header_value(req, name);
    snprintf(name, sizeof name, "%ssignature", prefix);
    h2o_iovec_t sig = header_value(req, name);

    char id_str[EVENT_ID_MAX] = "";
    if (id.base != NULL)
        util_copy_utf8(id_str, sizeof id_str, id.base, id.len);

    if (req->entity.len > srv->opt->max_body) /* h2o enforces this too, before buffering */
        return reject_delivery(srv, req, INGEST_ERR_TOO_LARGE, EVENT_UNKNOWN, id_str, "body too large");

    const unsigned char *body = req->entity.base != NULL ? (const unsigned char *)req->entity.base
                                                         : (const unsigned char *)"";
    char err[256] = "";
    int64_t now_ms = util_now_ms();
    ingest_result r = ingest_verify_signature(secrets, id.base, id.len, ts.base, ts.len, sig.base, sig.len,
                                              body, req->entity.len, now_ms / 1000, err, sizeof err);
    if (r != INGEST_OK)
        return reject_delivery(srv, req, r, EVENT_UNKNOWN, id_str, err);
    if (id.len >= EVENT_ID_MAX)
        return reject_delivery(srv, req, INGEST_ERR_MISSING_HEADERS, EVENT_UNKNOWN, id_str, "delivery id too long");

    /* Backpressure before the work: a delivery that cannot be acknowledged now
     * costs no decoding, and Svix retries it. */
    pipeline_admission adm;
    pipeline_queue_admission(srv->commits, &adm);
    pipeline_item *it = adm.refusal == PIPELINE_ADMIT ? pipeline_queue_reserve(srv->commits) : NULL;
    if (it == NULL) {
        srv->metrics.deliveries[EVENT_UNKNOWN][METRICS_UNAVAILABLE]++;
        char qr[sizeof adm.reason + 8], ra[16];
        log_line(LOG_WARN, "msg=\"not accepting, answering 503\" id=%s reason=%s", id_str,
                 log_quote(adm.reason, qr, sizeof qr));
        snprintf(ra, sizeof ra, "%d", adm.retry_after_s);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, ra, strlen(ra));
        return send_error(req, 503, "Service Unavailable", adm.reason);
    }
    r = ingest_decode_event((const char *)body, req->entity.len, id_str, &it->ev, err, sizeof err);
    if (r != INGEST_OK || it->ev.type == EVENT_UNKNOWN) {
        char type_name[64];
        memcpy(type_name, it->ev.type_name, sizeof type_name);
        pipeline_queue_unreserve(srv->commits); /* nothing to store */
        if (r != INGEST_OK)
            return reject_delivery(srv, req, r, EVENT_UNKNOWN, id_str, err);
        srv->metrics.deliveries[EVENT_UNKNOWN][METRICS_IGNORED_TYPE]++;
        char qt[96];
        log_line(LOG_INFO, "msg=ignored id=%s type=%s reason=\"type not used by veille\"", id_str,
                 log_quote(type_name, qt, sizeof qt));
        return send_json(req, 200, "OK", json_pack("{s:s,s:s}", "status", "ignored", "reason", "event type not used"));
    }
    it->received_ms = now_ms;
    it->received_ns = util_mono_ns();
    struct pipeline_slot *slot = h2o_mem_alloc_shared(&req->pool, sizeof *slot, on_slot_dispose);
    slot->req = req;
    slot->item = it;
    it->slot = slot;
    return 0; /* answered by answer_batch() once the batch is durable */
}

/* IPs the decoder dropped: counted and logged once per delivery id, which is
 * simply "when this delivery is accepted": a Svix retry of it is a duplicate
 * and says nothing; a failed append logs nothing and its retry is the first time. The values are the
 * sender's: log_quote keeps a "\n" in one from starting a forged log line. */
static void count_invalid_ips(struct server *srv, const pipeline_item *it)
{
    const event_ip_drops *d = &it->ev.invalid_ips;
    if (d->count == 0 || it->answer != PIPELINE_ANSWER_ACCEPTED)
        return;
    char fields[EVENT_IP_FIELD_COUNT * 192] = "", qid[160], qv[2 * EVENT_IP_MAX + 4];
    size_t n = 0;
    for (int f = 0; f < EVENT_IP_FIELD_COUNT; f++) {
        if (!d->dropped[f])
            continue;
        srv->metrics.invalid_ips[f]++;
        if (n >= sizeof fields)
            continue;
        int w = snprintf(fields + n, sizeof fields - n, " %s=%s", event_ip_field_name((event_ip_field)f),
                         log_quote(d->value[f], qv, sizeof qv));
        n = w < 0 ? sizeof fields : n + (size_t)w;
    }
    log_line(LOG_WARN, "msg=\"invalid ip dropped\" id=%s type=%s%s", log_quote(it->ev.delivery_id, qid, sizeof qid),
             event_type_name(it->ev.type), fields);
}

static void answer_item(struct server *srv, pipeline_item *it, const pipeline_batch *b)
{
    event_type type = it->ev.type;
    metrics_outcome outcome;
    const char *status_word;
    switch (it->answer) {
    case PIPELINE_ANSWER_ACCEPTED: outcome = METRICS_ACCEPTED; status_word = "accepted"; break;
    case PIPELINE_ANSWER_DUPLICATE: outcome = METRICS_DUPLICATE; status_word = "duplicate"; break;
    default: outcome = METRICS_UNAVAILABLE; status_word = "failed"; break;
    }
    srv->metrics.deliveries[type][outcome]++;
    if (it->answer == PIPELINE_ANSWER_DUPLICATE)
        srv->metrics.duplicates++;
    count_invalid_ips(srv, it);
    char qid[160];
    log_line(it->answer == PIPELINE_ANSWER_ACCEPTED ? LOG_DEBUG : it->answer == PIPELINE_ANSWER_FAILED ? LOG_ERROR : LOG_INFO,
             "msg=delivery id=%s type=%s outcome=%s latency_us=%lld%s", log_quote(it->ev.delivery_id, qid, sizeof qid),
             event_type_name(type), status_word, (long long)((util_mono_ns() - it->received_ns) / 1000),
             it->slot == NULL ? " client=gone" : "");
    if (it->slot == NULL)
        return; /* the client closed; Svix will retry and get "duplicate" */
    h2o_req_t *req = it->slot->req;
    it->slot->item = NULL;
    it->slot = NULL;
    switch (it->answer) {
    case PIPELINE_ANSWER_ACCEPTED:
    case PIPELINE_ANSWER_DUPLICATE:
        send_status(req, status_word);
        break;
    default:
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("5"));
        send_error(req, 503, "Service Unavailable", b->err[0] ? b->err : "storage unavailable");
        break;
    }
}

static void answer_batch(pipeline_batch *b, void *ctx)
{
    struct server *srv = ctx;
    metrics_record_batch(&srv->metrics, b->count, b->commit_ns, b->rc < 0);
    if (b->rc < 0)
        log_line(LOG_ERROR, "msg=\"write-ahead log append failed\" size=%zu error=\"%s\"", b->count, b->err);
    for (size_t i = 0; i < b->count; i++)
        answer_item(srv, &b->items[i], b);
}

typedef struct {
    struct server *srv;
    char *buf;
    size_t len, n;
} rule_metrics_out;

/* Per-rule counters of the running engine (they restart at 0 on a reload). */
static void render_rule_metrics(const engine *e, void *vctx)
{
    rule_metrics_out *o = vctx;
    char *buf = o->buf;
    size_t len = o->len, n = 0;
#define OUT(...)                                                     \
    do {                                                             \
        if (n < len) {                                               \
            int w_ = snprintf(buf + n, len - n, __VA_ARGS__);        \
            n = w_ < 0 || (size_t)w_ >= len - n ? len : n + (size_t)w_; \
        }                                                            \
    } while (0)
    OUT("# HELP veille_rules_loaded Rules the engine is running.\n# TYPE veille_rules_loaded gauge\n"
        "veille_rules_loaded %zu\n", e != NULL ? engine_rule_count(e) : 0);
    static const char *const names[] = {"evaluations", "matches", "alerts", "suppressed", "bounded_reads",
                                        "allowed"};
    static const char *const help[] = {"Events a rule ran on.", "Evaluations whose condition held.",
                                       "Matches that raised a new alert.",
                                       "Matches folded into an open alert (suppression).",
                                       "Window reads cut at the per-read record bound.",
                                       "Matches skipped because their key is on the allow list."};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        OUT("# HELP veille_rule_%s_total %s\n# TYPE veille_rule_%s_total counter\n", names[k], help[k], names[k]);
        for (size_t i = 0; e != NULL && i < engine_rule_count(e); i++) {
            engine_rule_stats st;
            engine_rule_stats_at(e, i, &st);
            uint64_t v[] = {st.evaluations, st.matches, st.alerts, st.suppressed, st.bounded, st.allowed};
            OUT("veille_rule_%s_total{rule=\"%s\"} %llu\n", names[k], rules_rule_at(engine_rules(e), i)->name,
                (unsigned long long)v[k]);
        }
    }
    OUT("# HELP veille_rules_reloads_total SIGHUP reloads, by result.\n# TYPE veille_rules_reloads_total counter\n"
        "veille_rules_reloads_total{result=\"ok\"} %llu\nveille_rules_reloads_total{result=\"refused\"} %llu\n",
        (unsigned long long)o->srv->metrics.rules_reloads, (unsigned long long)o->srv->metrics.rules_reload_failures);
#undef OUT
    o->n = n;
}

/* Open (undecided) alerts by rule and severity, read from the store at each
 * scrape: triage happens in another process (the CLI), so only the store knows.
 * One read transaction over the alerts kept (retention bounds them). */
#define OPEN_ALERT_SERIES_MAX 128
typedef struct {
    struct {
        char rule[64], severity[16];
        uint64_t n;
    } series[OPEN_ALERT_SERIES_MAX];
    size_t n;
} open_alerts;

static int count_open_alert(const store_alert *a, int64_t state, void *vctx)
{
    open_alerts *o = vctx;
    if (state != STORE_STATE_OPEN)
        return 0;
    size_t i = 0;
    while (i < o->n && (strcmp(o->series[i].rule, a->rule) != 0 || strcmp(o->series[i].severity, a->severity) != 0))
        i++;
    if (i == o->n) {
        if (o->n == OPEN_ALERT_SERIES_MAX)
            return 0; /* more (rule, severity) pairs than rules plausibly have */
        snprintf(o->series[i].rule, sizeof o->series[i].rule, "%s", a->rule);
        snprintf(o->series[i].severity, sizeof o->series[i].severity, "%s", a->severity);
        o->n++;
    }
    o->series[i].n++;
    return 0;
}

static size_t render_open_alerts(struct server *srv, char *buf, size_t len)
{
    open_alerts *o = calloc(1, sizeof *o);
    char err[UTIL_ERRLEN];
    size_t n = 0;
    if (o == NULL || store_list_alert_states(srv->st, 0, count_open_alert, o, err, sizeof err) < 0) {
        free(o);
        return 0;
    }
    int w = snprintf(buf, len, "# HELP veille_alerts_open Stored alerts not yet acked, resolved or marked false "
                               "positive.\n# TYPE veille_alerts_open gauge\n");
    n = w < 0 || (size_t)w >= len ? len : (size_t)w;
    for (size_t i = 0; i < o->n && n < len; i++) {
        /* rule names are identifiers; severities come from the rules: no escaping needed */
        w = snprintf(buf + n, len - n, "veille_alerts_open{rule=\"%s\",severity=\"%s\"} %llu\n", o->series[i].rule,
                     o->series[i].severity, (unsigned long long)o->series[i].n);
        n = w < 0 || (size_t)w >= len - n ? len : n + (size_t)w;
    }
    free(o);
    return n;
}

static int handle_metrics(struct server *srv, h2o_req_t *req)
{
    pipeline_stats ps;
    pipeline_queue_stats(srv->commits, &ps);
    srv->metrics.history_pruned = ps.pruned_history;
    srv->metrics.deliveries_pruned = ps.pruned_deliveries;
    size_t cap = 65536;
    char *buf = h2o_mem_alloc_pool(&req->pool, cap);
    size_t n = metrics_render(&srv->metrics, buf, cap);
    n += metrics_render_pipeline(&ps, buf + n, cap - n);
    rule_metrics_out ro = {srv, buf + n, cap - n, 0};
    pipeline_queue_with_engine(srv->commits, render_rule_metrics, &ro);
    n += ro.n;
    n += deliver_render_metrics(srv->deliver, buf + n, cap - n);
    n += render_open_alerts(srv, buf + n, cap - n);
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4"));
    h2o_send_inline(req, buf, n);
    return 0;
}

/* GET /healthz: what a delivery would get now (pipeline_queue_admission): 503
 * while stopping, while the log or the store refuses (the store's failures are
 * those every delivery shares: full, I/O error, no write transaction), while
 * the backlog waiting to be applied passes its bound, or while the batch being
 * filled is full; 200 otherwise. Trap: it must not try a write transaction
 * itself (store_is_writable): that waits for LMDB's writer lock, held by every
 * apply transaction (and by any other process writing the store), and the
 * event loop would stall behind it. The reason is the one a
 * delivery would get, so a load balancer's log says what to fix. The backlog
 * is shown either way. */
static int handle_healthz(struct server *srv, h2o_req_t *req)
{
    pipeline_admission adm;
    pipeline_queue_admission(srv->commits, &adm);
    pipeline_stats ps;
    pipeline_queue_stats(srv->commits, &ps);
    json_t *backlog = json_pack("{s:I,s:I,s:f}", "records", (json_int_t)ps.backlog_records, "bytes",
                                (json_int_t)ps.backlog_bytes, "oldest_seconds", (double)ps.backlog_oldest_ms / 1000.0);
    if (stop_requested && adm.refusal == PIPELINE_ADMIT) {
        adm.refusal = PIPELINE_REFUSE_STOPPING;
        snprintf(adm.reason, sizeof adm.reason, "shutting down");
    }
    if (adm.refusal == PIPELINE_ADMIT)
        return send_json(req, 200, "OK", json_pack("{s:s,s:o}", "status", "ok", "backlog", backlog));
    char since[UTIL_RFC3339_LEN] = "", ra[16];
    json_t *body = json_pack("{s:s,s:s,s:o}", "status", "unavailable", "reason", adm.reason, "backlog", backlog);
    if (adm.since_ms > 0) {
        util_format_rfc3339(adm.since_ms, since, sizeof since);
        json_object_set_new(body, "since", json_string(since));
    }
    snprintf(ra, sizeof ra, "%d", adm.retry_after_s);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, ra, strlen(ra));
    return send_json(req, 503, "Service Unavailable", body);
}

/* Why a request's body framing is ambiguous, or NULL. Two Content-Length
 * headers, or Content-Length with Transfer-Encoding, let a proxy in front and
 * veille disagree on where the body ends (request smuggling).
 * Trap: h2o 2.2.5 does not show these headers to a handler. lib/http1.c
 * (init_headers) keeps both out of req->headers, frames the body by the FIRST
 * Content-Length, and lets Transfer-Encoding win over it. So read the header
 * block itself: for an HTTP/1 request with a body, h2o leaves the raw request
 * in the socket's input buffer until the request is done, the header block
 * first and the body (req->entity) right after it. A request without a body
 * has neither header. When the buffer does not look like that, nothing is
 * refused; tests/interop/health.test.mjs fails then. */
static const char *ambiguous_framing(h2o_req_t *req)
{
    if (req->entity.base == NULL || req->version >= 0x200)
        return NULL;
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock == NULL || sock->input == NULL)
        return NULL;
    const char *p = sock->input->bytes, *end = req->entity.base;
    if (end < p || end > p + sock->input->size)
        return NULL;
    /* picohttpparser skips an empty line before the request line: so must this */
    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    if ((size_t)(end - p) < req->method.len ||
        memcmp(p, req->method.base, req->method.len) != 0)
        return NULL;
    int content_length = 0, transfer_encoding = 0;
    bool request_line = true;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl != NULL ? nl : end;
        size_t len = (size_t)(line_end - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        /* continuation lines (obsolete folding) start with a space or a tab */
        const char *colon = memchr(p, ':', len);
        if (!request_line && len > 0 && p[0] != ' ' && p[0] != '\t' && colon != NULL) {
            size_t nlen = (size_t)(colon - p);
            content_length += h2o_lcstris(p, nlen, H2O_STRLIT("content-length"));
            transfer_encoding += h2o_lcstris(p, nlen, H2O_STRLIT("transfer-encoding"));
        }
        request_line = false;
        p = line_end + 1;
    }
    if (content_length > 1)
        return "ambiguous body framing: more than one Content-Length header";
    if (content_length > 0 && transfer_encoding > 0)
        return "ambiguous body framing: Content-Length together with Transfer-Encoding";
    if (transfer_encoding > 1)
        return "ambiguous body framing: more than one Transfer-Encoding header";
    return NULL;
}

static int on_request(h2o_handler_t *self, h2o_req_t *req)
{
    struct server *srv = ((struct route_handler *)self)->srv;
    const char *ambiguous = ambiguous_framing(req);
    if (ambiguous != NULL) {
        /* the bytes after the body h2o framed may be another request to a proxy:
         * close the connection rather than read them as the next one */
        req->http1_is_persistent = 0;
        char peer[64];
        peer_address(req, peer, sizeof peer);
        log_line(LOG_WARN, "msg=\"refused: ambiguous body framing\" status=400 remote=%s error=\"%s\"",
                 peer[0] ? peer : "-", ambiguous);
        return send_error(req, 400, "Bad Request", ambiguous);
    }
    h2o_iovec_t path = req->path_normalized;
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/webhooks/clerk"))) {
        if (srv->opt->secrets.count == 0) /* only named instances: never verify against nothing */
            return send_error(req, 404, "Not Found", "no unnamed secret (VEILLE_WEBHOOK_SECRET) is set: POST to "
                                                     "/webhooks/clerk/<name> of a VEILLE_WEBHOOK_SECRET_<NAME>");
        return handle_webhook(srv, req, &srv->opt->secrets);
    }
    if (path.len > sizeof "/webhooks/clerk/" - 1 && memcmp(path.base, H2O_STRLIT("/webhooks/clerk/")) == 0) {
        size_t skip = sizeof "/webhooks/clerk/" - 1;
        const ingest_secrets *named = ingest_instance_secrets(&srv->opt->instances, path.base + skip, path.len - skip);
        if (named == NULL)
            return send_error(req, 404, "Not Found", "no such instance: set VEILLE_WEBHOOK_SECRET_<NAME> for "
                                                     "/webhooks/clerk/<name>");
        return handle_webhook(srv, req, named);
    }
    bool is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
                  h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/healthz"))) {
        if (!is_get)
            return send_error(req, 405, "Method Not Allowed", "use GET");
        return handle_healthz(srv, req);
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/metrics"))) {
        if (!is_get)
            return send_error(req, 405, "Method Not Allowed", "use GET");
        return handle_metrics(srv, req);
    }
    return send_error(req, 404, "Not Found", "no such endpoint (POST /webhooks/clerk, GET /healthz, GET /metrics)");
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct server *srv = listener->data;
    if (err != NULL)
        return;
    /* Drain the backlog: one readiness event may stand for many connections. */
    for (int i = 0; i < 64; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        h2o_accept(&srv->accept_ctx, sock);
    }
}

static int open_listener(struct server *srv, char *err, size_t errlen)
{
    const http_options *o = srv->opt;
    char addr[UTIL_ADDR_LEN], sub[UTIL_ERRLEN];
    int bound_port = o->listen_port;
    int fd = util_tcp_listen(o->listen_host, o->listen_port, SOMAXCONN, addr, &bound_port, sub, sizeof sub);
    if (fd < 0)
        return util_err(err, errlen, "--listen: %s", sub);
    srv->listener = h2o_evloop_socket_create(srv->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    if (srv->listener == NULL) {
        close(fd);
        return util_err(err, errlen, "cannot register the listening socket with the event loop");
    }
    srv->listener->data = srv;
    h2o_socket_read_start(srv->listener, on_accept);
    log_line(LOG_INFO, "msg=listening addr=%s port=%d endpoint=/webhooks/clerk", addr, bound_port);
    return 0;
}

void http_options_defaults(http_options *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->listen_host, sizeof o->listen_host, "127.0.0.1");
    o->listen_port = 8080;
    snprintf(o->data_dir, sizeof o->data_dir, "./veille-data");
    snprintf(o->rules_path, sizeof o->rules_path, "rules/default.rules");
    o->max_body = 1024 * 1024;
    o->retention_ms = (int64_t)90 * 86400 * 1000;
    o->risk_history_ms = ENGINE_RISK_HISTORY_DEFAULT_MS;
    o->risk_min_history = ENGINE_RISK_MIN_HISTORY_DEFAULT;
    o->delivery_keep_ms = (int64_t)72 * 3600 * 1000;
    o->map_size = STORE_DEFAULT_MAP_SIZE;
    o->max_backlog = PIPELINE_DEFAULT_MAX_BACKLOG;
    o->alert_retry_for_ms = (int64_t)72 * 3600 * 1000;
    o->incident_window_ms = ENGINE_INCIDENT_WINDOW_DEFAULT_MS;
    o->incident_update_ms = ENGINE_INCIDENT_UPDATE_DEFAULT_MS;
    o->outbox_max = 100000;
    o->alert_timeout_ms = 10000;
}

/* What the web console shows of the running server (src/console). */
static void console_live_of(void *ctx, console_live *out)
{
    const struct server *srv = ctx;
    const metrics_counters *m = &srv->metrics;
    out->started_ms = m->started_ms;
    for (int t = 0; t < EVENT_TYPE_COUNT; t++)
        for (int k = 0; k < METRICS_OUTCOME_COUNT; k++) {
            out->deliveries += m->deliveries[t][k];
            out->events_stored += k == METRICS_ACCEPTED ? m->deliveries[t][k] : 0;
        }
    pipeline_stats ps;
    pipeline_queue_stats(srv->commits, &ps);
    out->alerts = ps.alerts;
    out->lag_count = ps.lag_count;
    out->lag_seconds_sum = ps.lag_seconds_sum;
    out->waiting = ps.backlog_records;
}

/* Stop accepting, let the batches in flight reach the log and be answered,
 * then return (pipeline_queue_stop applies what the log holds). */
static void drain(struct server *srv)
{
    if (srv->listener != NULL) {
        h2o_socket_read_stop(srv->listener);
        h2o_socket_close(srv->listener);
        srv->listener = NULL;
    }
    int64_t deadline = util_now_ms() + SHUTDOWN_DRAIN_MS;
    while (!pipeline_queue_idle(srv->commits) && util_now_ms() < deadline) {
        pipeline_queue_kick(srv->commits);
        h2o_evloop_run(srv->loop, 10);
    }
    /* give the answers a moment to leave the socket buffers */
    int64_t flush_until = util_now_ms() + 100;
    while (util_now_ms() < flush_until)
        h2o_evloop_run(srv->loop, 10);
}

int http_serve(const http_options *o, char *err, size_t errlen)
{
    struct server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return util_err(err, errlen, "out of memory");
    int rc = -1;
    srv->opt = o;
    srv->metrics.started_ms = util_now_ms();
    /* the rules are ours from here whatever happens: settle that first */
    engine *eng = NULL; /* the committer's once it starts */
    if (o->rules != NULL && engine_new(o->rules, &eng, err, errlen) < 0) {
        free(srv);
        return -1;
    }
    if (eng != NULL)
        engine_configure(eng, o);

    /* sinks first: a bad one must not leave a new, empty store behind */
    if (alert_sinks_open(o->alerts, o->alert_count, &srv->sinks, err, errlen) < 0)
        goto out;
    /* takes DIR/veille.lock for the life of the server: one serve per store.
     * NOMETASYNC: the write-ahead log replays a transaction a crash rolls back */
    if (store_open(&srv->st, o->data_dir, STORE_NOMETASYNC | (o->init_store ? STORE_INIT : 0), o->map_size, err,
                   errlen) < 0)
        goto out;
    deliver_options dopt = {
        .retry_for_ms = o->alert_retry_for_ms,
        .outbox_max = o->outbox_max,
        .timeout_ms = o->alert_timeout_ms,
        .secret = o->has_alert_secret ? &o->alert_secret : NULL,
        .wake_committer = wake_committer,
        .wake_ctx = srv,
    };
    if (deliver_new(srv->st, o->alerts, o->alert_count, &dopt, &srv->deliver, err, errlen) < 0)
        goto out;

    h2o_config_init(&srv->config);
    srv->config.max_request_entity_size = o->max_body;
    srv->config.server_name = h2o_iovec_init(H2O_STRLIT("veille"));
    h2o_hostconf_t *host = h2o_config_register_host(&srv->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    struct route_handler *handler = (struct route_handler *)h2o_create_handler(pathconf, sizeof *handler);
    handler->super.on_req = on_request;
    handler->srv = srv;

    srv->loop = h2o_evloop_create();
    h2o_context_init(&srv->ctx, srv->loop, &srv->config);
    srv->accept_ctx.ctx = &srv->ctx;
    srv->accept_ctx.hosts = srv->config.hosts;

    pipeline_queue_config qc = {
        .st = srv->st,
        .data_dir = o->data_dir,
        .max_backlog_bytes = o->max_backlog,
        .max_backlog_age_ms = PIPELINE_DEFAULT_MAX_BACKLOG_AGE_MS,
        .on_alerts = alerts_applied,
        .retention_ms = o->retention_ms,
        .delivery_keep_ms = o->delivery_keep_ms,
        .engine = eng,
        .sinks = srv->sinks,
        .deliver = srv->deliver,
        .on_done = answer_batch,
        .ctx = srv,
    };
    eng = NULL; /* the queue's now, whatever pipeline_queue_start returns */
    if (pipeline_queue_start(&srv->commits, &qc, srv->loop, err, errlen) < 0)
        goto out_commit;
    if (deliver_start(srv->deliver, srv->loop, err, errlen) < 0)
        goto out_commit;
    /* Handlers before the listener logs `listening`: a SIGHUP (systemctl reload, a
     * script) sent as soon as that line appears must reload, not kill the process. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait must return on a signal */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (open_listener(srv, err, errlen) < 0)
        goto out_commit;
    util_sd_notify("READY=1"); /* store open, rules loaded, listener up: systemd may call us started */
    if (console_start(&srv->console, &o->console, srv->loop, srv->st, console_live_of, srv, err, errlen) < 0)
        goto out_commit;


    while (!stop_requested) {
        if (reload_requested) {
            reload_requested = 0;
            reload_rules(srv);
        }
        /* Block only when nothing waits to be committed; otherwise poll and hand
         * the batch over as soon as the committer is free. */
        int64_t due = deliver_run_due(srv->deliver);
        h2o_evloop_run(srv->loop, pipeline_queue_idle(srv->commits) ? (int32_t)due : 1);
        pipeline_queue_kick(srv->commits);
    }
    log_line(LOG_INFO, "msg=\"stopping: finishing deliveries in flight\"");
    util_sd_notify("STOPPING=1");
    pipeline_queue_refuse(srv->commits);
    drain(srv);
    rc = 0;
out_commit:
    /* alerts in flight to a sink stay in the outbox and go out after a restart */
    deliver_stop(srv->deliver);
    pipeline_queue_stop(srv->commits);
    srv->commits = NULL;
    console_stop(srv->console); /* the loop runs no more: nothing can reach it */
    if (srv->listener != NULL)
        h2o_socket_close(srv->listener);
    /* h2o 2.2.5 cannot dispose a context or destroy an evloop while client
     * connections (idle keep-alives) are still registered: it asserts. Those are
     * left to process exit, which follows; the store is what must close cleanly. */
    if (rc < 0) {
        h2o_context_dispose(&srv->ctx);
        h2o_config_dispose(&srv->config);
    }
out:
    deliver_free(srv->deliver);
    alert_sinks_close(srv->sinks);
    engine_free(eng);
    store_close(srv->st);
    if (rc == 0)
        log_line(LOG_INFO, "msg=stopped");
    free(srv);
    return rc;
}
