/* main.c: `veille SUBCOMMAND ...` dispatch; serve lives in src/serve, the others in src/cli. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "serve/serve.h"

static const char usage[] =
    "veille: security-anomaly detection for Clerk authentication events\n"
    "\n"
    "usage: veille COMMAND [ARGS]\n"
    "  serve     receive signed Clerk webhooks and store them (see veille serve --help)\n"
    "  history   what a user (or an IP, --ip) has been doing\n"
    "  user      the synced record of one user\n"
    "  users     every synced user\n"
    "  stats     store counts and size\n"
    "  check     validate rule files (FILE:LINE:COL errors)\n"
    "  replay    run rules over recorded events (NDJSON) to tune them\n"
    "  alerts    the alerts raised, by user, IP, rule, age or state; alerts show|ack|resolve ID\n"
    "  outbox    alerts waiting for a remote sink, and why\n"
    "  rules     the rules in force, their state and hits (rules show NAME: as written)\n"
    "  allow     keys that never raise: allow add|list|rm\n"
    "  incidents alerts grouped by attack (shared user or IP); show ID for one\n"
    "  test-alert  send a sample alert through a sink to check its wiring\n"
    "  simulate  send signed sample deliveries (scenarios or a recorded file) to a running serve\n"
    "  version   veille's version and the libraries it runs with (also --version)\n"
    "veille COMMAND --help shows a command's flags.\n";

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } commands[] = {
        {"serve", serve_main}, {"history", cli_history}, {"user", cli_user},
        {"users", cli_users}, {"stats", cli_stats}, {"check", cli_check},
        {"replay", cli_replay}, {"alerts", cli_alerts}, {"outbox", cli_outbox},
        {"test-alert", cli_test_alert}, {"version", cli_version},
        {"allow", cli_allow}, {"rules", cli_rules},
        {"simulate", cli_simulate},
        {"incidents", cli_incidents},
    };
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0)
        return cli_version(argc - 2, argv + 2);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "veille: unknown command '%s'\n\n%s", argv[1], usage);
    return 2;
}
