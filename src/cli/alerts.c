/*
 * alerts.c: `veille alerts`, the stored alerts (read-only, works while serve
 * runs), oldest first by event time, filtered by user, IP, rule, age, triage state
 * and severity.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"
#include "cli/cli.h"
#include "cli/internal.h"
#include "rules/rules.h"
#include "store/store.h"
#include "util/util.h"

static const char alerts_usage[] =
    "usage: veille alerts [--user ID] [--ip IP] [--rule NAME] [--since DUR] [--state STATE] [--severity LEVEL]\n"
    "                     [--rules FILE] [--json] [--data DIR]\n"
    "       veille alerts show|ack|resolve|false-positive ID ...   (veille alerts show --help)\n"
    "       veille alerts --pending [--dead] [--json] [--data DIR]\n"
    "Stored alerts, oldest first by event time. --since 24h: events of the last 24 hours.\n"
    "--state open|acked|resolved|fp: only alerts in that triage state; --severity LEVEL: that severity or higher.\n"
    "--pending: the alerts remote sinks have not delivered yet (as veille outbox).\n";

typedef struct {
    const char *user, *ip, *rule;
    int state;        /* -1: any */
    int min_severity; /* rank; -1: any */
    bool json;
    size_t shown;
    bool rule_stored; /* an alert of --rule exists, whatever the other filters */
    bool probe;       /* only looking for rule_stored: print nothing, stop at the first */
} alerts_filter;

/* The text columns, header and rows alike. */
static void alert_cells(const char *at, const char *rule, const char *severity, const char *state, const char *key,
                        const char *suppressed, const char *ip, const char *id, const char *instance,
                        const char *summary)
{
    cli_row r;
    cli_row_start(&r);
    cli_row_cell(&r, at, 24, 0);
    cli_row_cell(&r, rule, 20, 0);
    cli_row_cell(&r, severity, 8, 0);
    cli_row_cell(&r, state, 8, 0);
    cli_row_cell(&r, key, 40, 0);
    cli_row_cell(&r, suppressed, 10, CLI_CELL_RIGHT);
    cli_row_cell(&r, ip, 39, 0);
    cli_row_cell(&r, id, 28, 0);
    cli_row_cell(&r, instance, 32, CLI_CELL_CUT);
    cli_row_cell(&r, summary, 0, 0);
    cli_row_print(&r, stdout);
}

/* --ip is canonical; an alert stored before ingest canonicalised IPs may hold
 * another form of the same address. */
static bool same_ip(const char *stored, const char *wanted)
{
    char canon[UTIL_IP_LEN];
    if (strcmp(stored, wanted) == 0)
        return true;
    return util_ip_canonical(stored, strlen(stored), canon, sizeof canon) == 0 && strcmp(canon, wanted) == 0;
}

static int print_alert_row(const store_alert *a, int64_t state, void *vctx)
{
    alerts_filter *f = vctx;
    if (f->rule && strcmp(a->rule, f->rule) != 0)
        return 0;
    f->rule_stored = true;
    if (f->probe)
        return 1;
    if ((f->user && strcmp(a->user_id, f->user) != 0) || (f->ip && !same_ip(a->ip, f->ip)))
        return 0;
    if (f->min_severity >= 0 && alert_severity_rank(a->severity) < f->min_severity)
        return 0;
    if (f->state >= 0 && state != f->state)
        return 0;
    const char *state_name = store_state_name(state) ? store_state_name(state) : "?";
    f->shown++;
    if (f->json) {
        /* the object the sinks receive, unchanged (tests compare the two); the
         * decision is in `alerts show --json` */
        char *json = alert_to_json(a);
        if (json != NULL)
            puts(json);
        free(json);
        return 0;
    }
    char at[UTIL_RFC3339_LEN], suppressed[24];
    util_format_rfc3339(a->at_ms, at, sizeof at);
    snprintf(suppressed, sizeof suppressed, "%lld", (long long)a->suppressed);
    alert_cells(at, a->rule, a->severity, state_name, a->key, suppressed, a->ip[0] ? a->ip : "-", a->id,
                a->instance_id[0] ? a->instance_id : "-", a->summary);
    return 0;
}

/* Whether rule is in the rule file in force (cli_rules_resolve: --rules, else the
 * installed default). path receives the file looked at ("" when none). */
static int rule_in_file(const char *given, const char *rule, char *path, size_t pathlen, bool *loaded, bool *found)
{
    *loaded = *found = false;
    char err[CLI_RULES_ERRLEN];
    if (cli_rules_resolve(given, path, pathlen, err, sizeof err) < 0) {
        if (given == NULL) { /* no default rule file: only the store can know the rule */
            path[0] = '\0';
            return 0;
        }
        fprintf(stderr, "veille alerts: %s\n", err);
        return -1;
    }
    if (path[0] == '\0') /* --rules none */
        return 0;
    rules_set *set = NULL;
    int errors = rules_load_file(path, &set, stderr);
    if (errors != 0) {
        fprintf(stderr, "veille alerts: --rules %s: %s (check it with `veille check %s`)\n", path,
                errors < 0 ? "cannot be read" : "has errors", path);
        return -1;
    }
    *loaded = true;
    for (size_t i = 0; i < rules_count(set) && !*found; i++)
        *found = strcmp(rules_rule_at(set, i)->name, rule) == 0;
    rules_free(set);
    return 0;
}

int cli_alerts(int argc, char **argv)
{
    if (argc > 0 && cli_alerts_triage_verb(argv[0]))
        return cli_alerts_triage(argc, argv);
    if (cli_help_wanted(argc, argv, alerts_usage))
        return 0;
    const char *data = "./veille-data", *rules_given = NULL, *v;
    char rules_path[PATH_MAX];
    alerts_filter f = {.state = -1, .min_severity = -1};
    int64_t since_ms = 0;
    char err[UTIL_ERRLEN];
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--pending") == 0) {
            /* the outbox view takes the remaining flags */
            memmove(&argv[i], &argv[i + 1], (size_t)(argc - i - 1) * sizeof *argv);
            return cli_outbox_list(argc - 1, argv, "alerts --pending");
        }
    for (int i = 0; i < argc; i++) {
        int m;
        const char **target = NULL;
        if ((m = cli_flag_value(argc, argv, &i, "--data", &v)) != 0)
            target = &data;
        else if ((m = cli_flag_value(argc, argv, &i, "--user", &v)) != 0)
            target = &f.user;
        else if ((m = cli_flag_value(argc, argv, &i, "--ip", &v)) != 0)
            target = &f.ip;
        else if ((m = cli_flag_value(argc, argv, &i, "--rule", &v)) != 0)
            target = &f.rule;
        else if ((m = cli_flag_value(argc, argv, &i, "--state", &v)) != 0) {
            if (m < 0)
                return EXIT_USAGE;
            if ((f.state = store_state_parse(v)) < 0) {
                fprintf(stderr, "veille alerts: --state: '%s' is not one of open, acked, resolved, fp\n", v);
                return EXIT_USAGE;
            }
            continue;
        } else if ((m = cli_flag_value(argc, argv, &i, "--severity", &v)) != 0) {
            if (m < 0)
                return EXIT_USAGE;
            if ((f.min_severity = alert_severity_rank(v)) < 0) {
                fprintf(stderr, "veille alerts: --severity: '%s' is not one of info, low, medium, high, critical\n", v);
                return EXIT_USAGE;
            }
            continue;
        } else if ((m = cli_flag_value(argc, argv, &i, "--rules", &v)) != 0) {
            target = &rules_given;
        }
        else if ((m = cli_flag_value(argc, argv, &i, "--since", &v)) != 0) {
            int64_t d;
            if (m < 0)
                return EXIT_USAGE;
            if (util_parse_duration(v, &d, err, sizeof err) < 0) {
                fprintf(stderr, "veille alerts: --since: %s\n", err);
                return EXIT_USAGE;
            }
            since_ms = util_now_ms() - d;
            continue;
        } else if (strcmp(argv[i], "--json") == 0) {
            f.json = true;
            continue;
        } else {
            fprintf(stderr, "veille alerts: unexpected argument '%s'\n%s", argv[i], alerts_usage);
            return EXIT_USAGE;
        }
        if (m < 0)
            return EXIT_USAGE;
        *target = v;
    }
    char ip[UTIL_IP_LEN];
    if (f.ip != NULL) {
        if (cli_ip_arg("alerts", f.ip, ip) < 0)
            return EXIT_USAGE;
        f.ip = ip;
    }
    bool rules_loaded = false, rule_known = false;
    if (f.rule != NULL && rule_in_file(rules_given, f.rule, rules_path, sizeof rules_path, &rules_loaded, &rule_known) < 0)
        return EXIT_USAGE;
    store *st = NULL;
    int rc = cli_open_readonly(data, &st);
    if (rc != 0)
        return rc;
    if (!f.json)
        alert_cells("TIME", "RULE", "SEVERITY", "STATE", "KEY", "SUPPRESSED", "IP", "ID", "INSTANCE", "SUMMARY");
    int status = 0;
    if (store_list_alert_states(st, since_ms, print_alert_row, &f, err, sizeof err) < 0) {
        fprintf(stderr, "veille alerts: %s\n", err);
        status = EXIT_RUNTIME;
        goto out;
    }
    /* a --since window hides older alerts of the rule: look at them all */
    if (f.rule != NULL && !rule_known && !f.rule_stored && since_ms > 0) {
        alerts_filter any = {.rule = f.rule, .probe = true};
        if (store_list_alert_states(st, 0, print_alert_row, &any, err, sizeof err) < 0) {
            fprintf(stderr, "veille alerts: %s\n", err);
            status = EXIT_RUNTIME;
            goto out;
        }
        f.rule_stored = any.rule_stored;
    }
    if (f.rule != NULL && !rule_known && !f.rule_stored) {
        /* a typo must not read as "no alerts": name where we looked */
        char shown[160];
        util_term_escape(f.rule, strlen(f.rule), shown, sizeof shown);
        if (rules_loaded)
            fprintf(stderr, "veille alerts: no rule '%s' in %s nor in any alert stored in %s\n", shown, rules_path,
                    data);
        else
            fprintf(stderr, "veille alerts: no rule '%s' in any alert stored in %s (and no rule file in force)\n",
                    shown, data);
        status = EXIT_NOT_FOUND;
    } else if (!f.json) {
        fprintf(stderr, "%zu alert%s\n", f.shown, f.shown == 1 ? "" : "s");
    }
out:
    store_close(st);
    return status;
}
