/*
 * outbox.c: the operator's view of alert delivery.
 *   veille outbox [--dead] [--json]   what the remote sinks still have to deliver,
 *                                     and why it has not gone yet (also
 *                                     `veille alerts --pending`); read-only, works
 *                                     while serve runs
 *   veille test-alert --alert SPEC    one sample alert through a sink, now
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "alert/alert.h"
#include "cli/cli.h"
#include "cli/internal.h"
#include "deliver/deliver.h"
#include "store/store.h"
#include "util/util.h"

static const char outbox_usage[] =
    "usage: veille outbox [--dead] [--json] [--data DIR]\n"
    "Alerts waiting for a remote sink (syslog, webhook): attempts so far, last error, next try.\n"
    "--dead also lists the alerts given up after --alert-retry-for.\n";

typedef struct {
    bool json;
    size_t pending, dead;
    store_sink_state states[ALERT_SINKS_MAX * 4];
    size_t n_states;
} outbox_view;

/* A failing sink probes with one alert at a time: the others have not been
 * tried, and wait for the sink, not for a schedule of their own. */
static const store_sink_state *failing_sink(const outbox_view *v, uint64_t sink_id)
{
    for (size_t i = 0; i < v->n_states; i++)
        if (v->states[i].sink_id == sink_id && v->states[i].failing_since_ms != 0)
            return &v->states[i];
    return NULL;
}

/* The text columns, header and rows alike; the last error comes from the
 * receiver (an HTTP reason, a TLS message) and is escaped like payload text. */
static void outbox_cells(const char *sink, const char *alert, const char *rule, const char *severity,
                         const char *attempts, const char *queued, const char *next, const char *why)
{
    cli_row r;
    cli_row_start(&r);
    cli_row_cell(&r, sink, 40, 0);
    cli_row_cell(&r, alert, 28, 0);
    cli_row_cell(&r, rule, 20, 0);
    cli_row_cell(&r, severity, 8, 0);
    cli_row_cell(&r, attempts, 8, CLI_CELL_RIGHT);
    cli_row_cell(&r, queued, 24, 0);
    cli_row_cell(&r, next, 24, 0);
    cli_row_cell(&r, why, 0, 0);
    cli_row_print(&r, stdout);
}

static int print_entry(const store_outbox_entry *e, const store_alert *alert, void *vctx)
{
    outbox_view *v = vctx;
    /* an alert pruned by --retention before delivery: its entry says so, the rest is gone */
    store_alert gone;
    memset(&gone, 0, sizeof gone);
    snprintf(gone.rule, sizeof gone.rule, "-");
    snprintf(gone.severity, sizeof gone.severity, "-");
    const store_alert *a = alert != NULL ? alert : &gone;
    bool dead = e->dead_ms != 0;
    if (dead)
        v->dead++;
    else
        v->pending++;
    const store_sink_state *sink = dead ? NULL : failing_sink(v, e->sink_id);
    int64_t next_ms = e->next_ms;
    char why[STORE_OUTBOX_ERROR_MAX + 64];
    snprintf(why, sizeof why, "%s", e->last_error);
    if (sink != NULL && e->attempts == 0) {
        next_ms = sink->next_try_ms > next_ms ? sink->next_try_ms : next_ms;
        snprintf(why, sizeof why, "waiting for the sink (failing, %" PRId64 " attempts in a row): %s", sink->failures,
                 sink->last_error);
    }
    if (v->json) {
        json_t *o = json_object();
        if (o == NULL)
            return 1;
        json_object_set_new(o, "sink", json_string(e->sink));
        json_object_set_new(o, "alert_id", json_string(e->alert_id));
        json_object_set_new(o, "rule", json_string(a->rule));
        json_object_set_new(o, "severity", json_string(a->severity));
        json_object_set_new(o, "state", json_string(dead ? "dead" : "pending"));
        json_object_set_new(o, "attempts", json_integer(e->attempts));
        json_object_set_new(o, "queued_at", cli_json_time(e->queued_ms));
        json_object_set_new(o, "next_try_at", dead ? json_null() : cli_json_time(next_ms));
        json_object_set_new(o, "dead_at", cli_json_time(e->dead_ms));
        json_object_set_new(o, "last_error", why[0] ? json_string(why) : json_null());
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (s != NULL)
            puts(s);
        free(s);
        return 0;
    }
    char queued[UTIL_RFC3339_LEN], next[UTIL_RFC3339_LEN];
    util_format_rfc3339(e->queued_ms, queued, sizeof queued);
    if (dead)
        snprintf(next, sizeof next, "dead");
    else if (e->attempts == 0 && sink == NULL)
        snprintf(next, sizeof next, "now");
    else
        util_format_rfc3339(next_ms, next, sizeof next);
    char attempts[24];
    snprintf(attempts, sizeof attempts, "%" PRId64, e->attempts);
    outbox_cells(e->sink, e->alert_id, a->rule, a->severity, attempts, queued, next, why[0] ? why : "-");
    return 0;
}

int cli_outbox_list(int argc, char **argv, const char *cmd)
{
    const char *data = "./veille-data", *v;
    static outbox_view view; /* the sink states make it large */
    memset(&view, 0, sizeof view);
    bool with_dead = false;
    for (int i = 0; i < argc; i++) {
        int m = cli_flag_value(argc, argv, &i, "--data", &v);
        if (m < 0)
            return EXIT_USAGE;
        if (m == 1) {
            data = v;
        } else if (strcmp(argv[i], "--json") == 0) {
            view.json = true;
        } else if (strcmp(argv[i], "--dead") == 0) {
            with_dead = true;
        } else {
            fprintf(stderr, "veille %s: unexpected argument '%s'\n%s", cmd, argv[i], outbox_usage);
            return EXIT_USAGE;
        }
    }
    store *st = NULL;
    int rc = cli_open_readonly(data, &st);
    if (rc != 0)
        return rc;
    if (!view.json)
        outbox_cells("SINK", "ALERT", "RULE", "SEVERITY", "ATTEMPTS", "QUEUED", "NEXT TRY", "LAST ERROR");
    char err[UTIL_ERRLEN];
    int status = 0;
    if (store_sink_states(st, view.states, sizeof view.states / sizeof view.states[0], &view.n_states, err,
                          sizeof err) < 0 ||
        store_outbox_list(st, with_dead, print_entry, &view, err, sizeof err) < 0) {
        fprintf(stderr, "veille %s: %s\n", cmd, err);
        status = EXIT_RUNTIME;
    } else if (!view.json) {
        fprintf(stderr, "%zu pending", view.pending);
        if (with_dead)
            fprintf(stderr, ", %zu dead", view.dead);
        fputc('\n', stderr);
    }
    store_close(st);
    return status;
}

int cli_outbox(int argc, char **argv)
{
    if (cli_help_wanted(argc, argv, outbox_usage))
        return 0;
    return cli_outbox_list(argc, argv, "outbox");
}

/* ---------------------------------------------------------------- test-alert */

static const char test_usage[] =
    "usage: veille test-alert --alert SPEC [--facility NAME] [--header 'Name: value'] [--ca FILE]\n"
    "                         [--format NAME | --template FILE] [--severity LEVEL] [--alert-timeout DUR]\n"
    "Sends one sample alert (rule veille_test_alert) through the sink now and says what happened;\n"
    "--min-severity is ignored: this checks the wiring. Exit 0 delivered, 1 failed, 2 usage.\n"
    "Webhook sinks sign with VEILLE_ALERT_WEBHOOK_SECRET, as veille serve does.\n";

static void sample_alert(store_alert *a, const char *severity)
{
    memset(a, 0, sizeof *a);
    int64_t now = util_now_ms();
    char seed[64];
    snprintf(seed, sizeof seed, "test-alert %" PRId64 " %d", now, (int)getpid());
    util_digest_id("alr_test_", seed, strlen(seed), a->id, sizeof a->id);
    snprintf(a->rule, sizeof a->rule, "veille_test_alert");
    snprintf(a->severity, sizeof a->severity, "%s", severity);
    snprintf(a->key, sizeof a->key, "user:user_veille_test");
    snprintf(a->user_id, sizeof a->user_id, "user_veille_test");
    snprintf(a->ip, sizeof a->ip, "192.0.2.1");
    snprintf(a->session_id, sizeof a->session_id, "sess_veille_test");
    snprintf(a->event_id, sizeof a->event_id, "msg_veille_test");
    a->event_type = EVENT_SESSION_CREATED;
    a->at_ms = a->raised_ms = now;
    snprintf(a->summary, sizeof a->summary, "veille test alert: if you can read this, the sink works");
    /* a location and a browser, so that every --format shows where they go */
    snprintf(a->country, sizeof a->country, "FR");
    snprintf(a->city, sizeof a->city, "Paris");
    snprintf(a->user_agent, sizeof a->user_agent, "veille test-alert");
    snprintf(a->user_name, sizeof a->user_name, "veille_test");
    snprintf(a->tags[0], sizeof a->tags[0], "test");
    a->n_tags = 1;
}

int cli_test_alert(int argc, char **argv)
{
    if (cli_help_wanted(argc, argv, test_usage))
        return 0;
    alert_sink_config *c = calloc(1, sizeof *c);
    if (c == NULL)
        return EXIT_RUNTIME;
    const char *severity = "info", *v;
    int64_t timeout_ms = 10000;
    bool have_sink = false;
    char err[UTIL_ERRLEN];
    int status = EXIT_USAGE;
    for (int i = 0; i < argc; i++) {
        int m;
        if ((m = cli_flag_value(argc, argv, &i, "--alert", &v)) != 0) {
            if (m < 0)
                goto out;
            if (have_sink) {
                fprintf(stderr, "veille test-alert: one --alert at a time\n");
                goto out;
            }
            if (alert_sink_parse(v, c, err, sizeof err) < 0) {
                fprintf(stderr, "veille test-alert: --alert: %s\n", err);
                goto out;
            }
            have_sink = true;
            continue;
        }
        if ((m = cli_flag_value(argc, argv, &i, "--severity", &v)) != 0) {
            if (m < 0)
                goto out;
            if (alert_severity_rank(v) < 0) {
                fprintf(stderr, "veille test-alert: --severity: '%s' is not one of info, low, medium, high, "
                                "critical\n", v);
                goto out;
            }
            severity = v;
            continue;
        }
        if ((m = cli_flag_value(argc, argv, &i, "--alert-timeout", &v)) != 0) {
            if (m < 0)
                goto out;
            if (util_parse_duration(v, &timeout_ms, err, sizeof err) < 0 || timeout_ms < 1000) {
                fprintf(stderr, "veille test-alert: --alert-timeout: %s\n", timeout_ms < 1000 ? "at least 1s" : err);
                goto out;
            }
            continue;
        }
        bool matched = false;
        const char *const *options = alert_sink_options;
        for (size_t k = 0; options[k] != NULL && !matched; k++) {
            char flag[32];
            snprintf(flag, sizeof flag, "--%s", options[k]);
            if ((m = cli_flag_value(argc, argv, &i, flag, &v)) == 0)
                continue;
            if (m < 0)
                goto out;
            matched = true;
            if (!have_sink) {
                fprintf(stderr, "veille test-alert: %s applies to the sink: give --alert SPEC first\n", flag);
                goto out;
            }
            if (alert_sink_set_option(c, options[k], v, err, sizeof err) < 0) {
                fprintf(stderr, "veille test-alert: --%s\n", err); /* err starts with the option's name */
                goto out;
            }
        }
        if (!matched) {
            fprintf(stderr, "veille test-alert: unexpected argument '%s'\n%s", argv[i], test_usage);
            goto out;
        }
    }
    if (!have_sink) {
        fprintf(stderr, "veille test-alert: which sink? give --alert SPEC\n%s", test_usage);
        goto out;
    }
    ingest_secret secret;
    memset(&secret, 0, sizeof secret);
    if (c->kind == ALERT_SINK_WEBHOOK &&
        alert_webhook_secret_parse(getenv("VEILLE_ALERT_WEBHOOK_SECRET"), &secret, err, sizeof err) < 0) {
        fprintf(stderr, "veille test-alert: %s\n", err);
        goto out;
    }
    store_alert *a = malloc(sizeof *a);
    if (a == NULL) {
        status = EXIT_RUNTIME;
        goto out;
    }
    sample_alert(a, severity);
    char result[UTIL_ERRLEN];
    if (!alert_sink_is_remote(c)) {
        /* local sinks: the same write and fsync as serve */
        alert_sinks *local = NULL;
        int rc = alert_sinks_open(c, 1, &local, result, sizeof result);
        if (rc == 0)
            rc = alert_sinks_write(local, a, result, sizeof result);
        if (rc == 0)
            rc = alert_sinks_sync(local, result, sizeof result);
        alert_sinks_close(local);
        if (rc == 0)
            snprintf(result, sizeof result, "written");
        status = rc == 0 ? 0 : 1;
    } else {
        status = deliver_test(c, &secret, timeout_ms, a, result, sizeof result) == 0 ? 0 : 1;
    }
    if (status == 0)
        fprintf(stdout, "%s: %s: alert %s%s%s%s %s\n",
                c->kind == ALERT_SINK_SYSLOG_UDP ? "sent (UDP gives no acknowledgement)" : "delivered", c->label,
                a->id, c->format_given ? " (" : "", c->format_given ? alert_format_name(c->format) : "",
                c->format_given ? ")" : "", result);
    else
        fprintf(stderr, "failed: %s: %s\n", c->label, result);
    free(a);
out:
    free(c);
    return status;
}
