/*
 * alerts.c: `veille alerts`, the stored alerts (read-only, works while serve
 * runs), oldest first by event time, filtered by user, IP, rule and age.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"
#include "cli/cli.h"
#include "cli/internal.h"
#include "store/store.h"
#include "util/util.h"

static const char alerts_usage[] =
    "usage: veille alerts [--user ID] [--ip IP] [--rule NAME] [--since DUR] [--json] [--data DIR]\n"
    "       veille alerts --pending [--dead] [--json] [--data DIR]\n"
    "Stored alerts, oldest first by event time. --since 24h: events of the last 24 hours.\n"
    "--pending: the alerts remote sinks have not delivered yet (as veille outbox).\n";

typedef struct {
    const char *user, *ip, *rule;
    bool json;
    size_t shown;
} alerts_filter;

static int print_alert_row(const store_alert *a, void *vctx)
{
    alerts_filter *f = vctx;
    if ((f->user && strcmp(a->user_id, f->user) != 0) || (f->ip && strcmp(a->ip, f->ip) != 0) ||
        (f->rule && strcmp(a->rule, f->rule) != 0))
        return 0;
    f->shown++;
    if (f->json) {
        char *json = alert_to_json(a);
        if (json != NULL)
            puts(json);
        free(json);
        return 0;
    }
    char at[UTIL_RFC3339_LEN];
    util_format_rfc3339(a->at_ms, at, sizeof at);
    printf("%-24s  %-20s  %-8s  %-40s  %10lld  %s\n", at, a->rule, a->severity, a->key, (long long)a->suppressed,
           a->summary);
    return 0;
}

int cli_alerts(int argc, char **argv)
{
    if (cli_help_wanted(argc, argv, alerts_usage))
        return 0;
    const char *data = "./veille-data", *v;
    alerts_filter f = {0};
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
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(alerts_usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "veille alerts: unexpected argument '%s'\n%s", argv[i], alerts_usage);
            return EXIT_USAGE;
        }
        if (m < 0)
            return EXIT_USAGE;
        *target = v;
    }
    store *st = NULL;
    int rc = cli_open_readonly(data, &st);
    if (rc != 0)
        return rc;
    if (!f.json)
        printf("%-24s  %-20s  %-8s  %-40s  %10s  %s\n", "TIME", "RULE", "SEVERITY", "KEY", "SUPPRESSED", "SUMMARY");
    int status = 0;
    if (store_list_alerts(st, since_ms, print_alert_row, &f, err, sizeof err) < 0) {
        fprintf(stderr, "veille alerts: %s\n", err);
        status = EXIT_RUNTIME;
    } else if (!f.json) {
        fprintf(stderr, "%zu alert%s\n", f.shown, f.shown == 1 ? "" : "s");
    }
    store_close(st);
    return status;
}
