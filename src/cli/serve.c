/*
 * serve.c: `veille serve` start-up policy: options from the config file and flags,
 * secrets from the environment, the rule file, then the HTTP server.
 */
#include "cli/cli.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"
#include "cli/internal.h"
#include "ingest/ingest.h"
#include "rules/rules.h"
#include "util/log.h"
#include "util/util.h"

static const char serve_usage[] =
    "usage: veille serve [--listen HOST:PORT] [--data DIR] [--rules FILE|none] [--alert SPEC]...\n"
    "                    [--alert-retry-for DUR] [--alert-timeout DUR] [--outbox-max N]\n"
    "                    [--max-body BYTES] [--retention DUR] [--map-size BYTES]\n"
    "                    [--max-backlog BYTES] [--log-level error|warn|info|debug] [--config FILE]\n"
    "Signing secrets come from VEILLE_WEBHOOK_SECRET (or CLERK_WEBHOOK_SIGNING_SECRET):\n"
    "one or several whsec_... values separated by spaces or commas.\n"
    "--alert SPEC (repeatable):\n"
    "  stdout, file:PATH           JSON lines, written and fsync'd before the apply commits\n"
    "  syslog, syslog:PATH         local syslog socket (/dev/log by default)\n"
    "  syslog://HOST:PORT          RFC 5424 over UDP (fire-and-forget)\n"
    "  syslog+tcp://HOST:PORT      RFC 5424 over TCP, octet-counted frames\n"
    "  webhook:http(s)://HOST/PATH Standard Webhooks POST signed with VEILLE_ALERT_WEBHOOK_SECRET\n"
    "Options of the --alert before them: --min-severity info|low|medium|high|critical,\n"
    "  --facility NAME (syslog, default authpriv), --header 'Name: value' and --ca FILE (webhook).\n"
    "Remote sinks deliver from a durable outbox with retries (see veille outbox).\n"
    "SIGHUP reloads the --rules file; a file with errors is refused and the rules stay.\n"
    "Without --rules: the installed rules/default.rules (" VEILLE_SHARE_DIR "), else the one next to\n"
    "the binary or in its parent directory; --rules none runs without detection.\n";

int cli_serve(int argc, char **argv)
{
    if (cli_help_wanted(argc, argv, serve_usage))
        return 0;
    static http_options opt; /* large (paths); lives as long as the server */
    http_options_defaults(&opt);
    char err[UTIL_ERRLEN];
    /* The config file first, whatever its position, so flags override it. */
    for (int i = 0; i < argc; i++) {
        const char *v;
        int m = cli_flag_value(argc, argv, &i, "--config", &v);
        if (m < 0)
            return EXIT_USAGE;
        if (m == 1 && cli_config_load(v, &opt, err, sizeof err) < 0) {
            fprintf(stderr, "veille serve: %s\n", err);
            return EXIT_USAGE;
        }
    }
    static const char *const keys[] = {"listen", "data", "rules", "alert", "min-severity", "facility", "header", "ca",
                                       "alert-retry-for", "alert-timeout", "outbox-max", "max-body", "retention",
                                       "map-size", "max-backlog", "log-level"};
    for (int i = 0; i < argc; i++) {
        const char *v;
        int m = cli_flag_value(argc, argv, &i, "--config", &v);
        if (m != 0)
            continue;
        bool matched = false;
        for (size_t k = 0; k < sizeof keys / sizeof keys[0] && !matched; k++) {
            char flag[32];
            snprintf(flag, sizeof flag, "--%s", keys[k]);
            m = cli_flag_value(argc, argv, &i, flag, &v);
            if (m < 0)
                return EXIT_USAGE;
            if (m == 1) {
                matched = true;
                if (cli_config_set(&opt, keys[k], v, err, sizeof err) < 0) {
                    /* err starts with the setting's name: "--" makes it the flag's */
                    fprintf(stderr, "veille serve: --%s\n", err);
                    return EXIT_USAGE;
                }
            }
        }
        if (!matched) {
            fprintf(stderr, "veille serve: unknown argument '%s'\n%s", argv[i], serve_usage);
            return EXIT_USAGE;
        }
    }

    const char *env_name = "VEILLE_WEBHOOK_SECRET";
    const char *secret = getenv(env_name);
    if (secret == NULL || secret[0] == '\0') {
        env_name = "CLERK_WEBHOOK_SIGNING_SECRET";
        secret = getenv(env_name);
    }
    if (secret == NULL || secret[0] == '\0') {
        fprintf(stderr, "veille: no webhook signing secret: set VEILLE_WEBHOOK_SECRET (or "
                        "CLERK_WEBHOOK_SIGNING_SECRET) to the whsec_... value from the Clerk dashboard\n");
        return EXIT_USAGE;
    }
    if (ingest_parse_secrets(secret, &opt.secrets, err, sizeof err) < 0) {
        fprintf(stderr, "veille: %s: %s\n", env_name, err);
        return EXIT_USAGE;
    }

    for (size_t i = 0; i < opt.alert_count; i++) {
        /* outbox entries name their alert; retention must not prune it while it may still be sent */
        if (alert_sink_is_remote(&opt.alerts[i]) && opt.retention_ms < opt.alert_retry_for_ms) {
            fprintf(stderr, "veille: --retention (%llds) is shorter than --alert-retry-for (%llds): alerts would be "
                            "pruned before --alert %s gives up on them; raise --retention or lower "
                            "--alert-retry-for\n", (long long)(opt.retention_ms / 1000),
                    (long long)(opt.alert_retry_for_ms / 1000), opt.alerts[i].label);
            return EXIT_USAGE;
        }
        if (opt.alerts[i].kind != ALERT_SINK_WEBHOOK || opt.has_alert_secret)
            continue;
        if (alert_webhook_secret_parse(getenv("VEILLE_ALERT_WEBHOOK_SECRET"), &opt.alert_secret, err, sizeof err) < 0) {
            fprintf(stderr, "veille: --alert %s: %s\n", opt.alerts[i].label, err);
            return EXIT_USAGE;
        }
        opt.has_alert_secret = true;
    }

    char rules_err[CLI_RULES_ERRLEN];
    if (cli_rules_resolve(opt.rules_explicit ? opt.rules_path : NULL, opt.rules_path, sizeof opt.rules_path, rules_err,
                          sizeof rules_err) < 0) {
        fprintf(stderr, "veille serve: %s\n", rules_err);
        return EXIT_USAGE;
    }
    char qr[PATH_MAX + 8];
    if (opt.rules_path[0] == '\0') {
        log_line(LOG_WARN, "msg=\"detection off (--rules none): events are stored, no alert is raised\"");
    } else {
        /* A broken rule file is refused now rather than discovered during an
         * incident; the diagnostics are the same as `veille check`'s. */
        int errors = rules_load_file(opt.rules_path, &opt.rules, stderr);
        if (errors != 0) {
            fprintf(stderr, "veille: %s: %s; not starting (check it with `veille check %s`)\n", opt.rules_path,
                    errors < 0 ? "cannot be read" : "has errors", opt.rules_path);
            return EXIT_USAGE;
        }
        log_line(LOG_INFO, "msg=\"rules loaded\" rules=%s count=%zu lists=%zu",
                 log_quote(opt.rules_path, qr, sizeof qr), rules_count(opt.rules), rules_list_count(opt.rules));
    }

    char qdir[PATH_MAX + 8];
    log_line(LOG_INFO, "msg=starting version=%s rules=%s data=%s secrets=%zu max_body=%zu retention_s=%lld",
             VEILLE_VERSION, opt.rules_path[0] ? log_quote(opt.rules_path, qr, sizeof qr) : CLI_RULES_NONE,
             log_quote(opt.data_dir, qdir, sizeof qdir), opt.secrets.count, opt.max_body,
             (long long)(opt.retention_ms / 1000));
    if (http_serve(&opt, err, sizeof err) < 0) {
        log_line(LOG_ERROR, "msg=\"cannot start\" error=\"%s\"", err);
        fprintf(stderr, "veille: %s\n", err);
        return EXIT_RUNTIME;
    }
    return 0;
}

