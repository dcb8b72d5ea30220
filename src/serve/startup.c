/*
 * startup.c: `veille serve`'s start-up policy, in the order a refusal is cheapest:
 * the options (options.c), the signing secrets from the environment, the sinks'
 * checks against the other options, the rule file, then http_serve. Everything
 * that can be refused is refused here, before the store is opened or the port
 * bound, with a message naming what to fix.
 */
#include "serve/serve.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"
#include "cli/cli.h"
#include "ingest/ingest.h"
#include "rules/rules.h"
#include "serve/internal.h"
#include "util/log.h"
#include "util/util.h"

/* VEILLE_WEBHOOK_SECRET, else Clerk's own name for it, for /webhooks/clerk; and
 * VEILLE_WEBHOOK_SECRET_<NAME> for each /webhooks/clerk/<name>. Either is enough:
 * a server of named instances only answers 404 on the unnamed route. */
static int startup_secrets(http_options *o, char *err, size_t errlen)
{
    extern char **environ;
    char sub[UTIL_ERRLEN];
    if (ingest_parse_instances(environ, &o->instances, sub, sizeof sub) < 0)
        return util_err(err, errlen, "%s", sub);
    const char *env_name = INGEST_SECRET_ENV;
    const char *secret = getenv(env_name);
    if (secret == NULL || secret[0] == '\0') {
        env_name = "CLERK_WEBHOOK_SIGNING_SECRET";
        secret = getenv(env_name);
    }
    if ((secret == NULL || secret[0] == '\0') && o->instances.count > 0)
        return 0;
    if (secret == NULL || secret[0] == '\0')
        return util_err(err, errlen, "no webhook signing secret: set VEILLE_WEBHOOK_SECRET (or "
                                     "CLERK_WEBHOOK_SIGNING_SECRET) to the whsec_... value from the Clerk dashboard, "
                                     "or VEILLE_WEBHOOK_SECRET_<NAME> for each instance served at /webhooks/clerk/<name>");
    /* the messages name the bad entry by position, never its value */
    if (ingest_parse_secrets(secret, &o->secrets, sub, sizeof sub) < 0)
        return util_err(err, errlen, "%s: %s", env_name, sub);
    return 0;
}

/* What a sink needs from the other options and the environment. */
static int startup_sinks(http_options *o, char *err, size_t errlen)
{
    char sub[UTIL_ERRLEN];
    for (size_t i = 0; i < o->alert_count; i++) {
        /* outbox entries name their alert; retention must not prune it while it may still be sent */
        if (alert_sink_is_remote(&o->alerts[i]) && o->retention_ms < o->alert_retry_for_ms)
            return util_err(err, errlen, "--retention (%llds) is shorter than --alert-retry-for (%llds): alerts "
                                         "would be pruned before --alert %s gives up on them; raise --retention or "
                                         "lower --alert-retry-for",
                            (long long)(o->retention_ms / 1000), (long long)(o->alert_retry_for_ms / 1000),
                            o->alerts[i].label);
        if (o->alerts[i].kind != ALERT_SINK_WEBHOOK || o->has_alert_secret)
            continue;
        if (alert_webhook_secret_parse(getenv("VEILLE_ALERT_WEBHOOK_SECRET"), &o->alert_secret, sub, sizeof sub) < 0)
            return util_err(err, errlen, "--alert %s: %s", o->alerts[i].label, sub);
        o->has_alert_secret = true;
    }
    return 0;
}

/* The rule file in force, loaded and checked: a broken one is refused now rather
 * than discovered during an incident. Its diagnostics go to stderr as `veille
 * check`'s do; err then says what to run. */
static int startup_rules(http_options *o, char *err, size_t errlen)
{
    char rules_err[CLI_RULES_ERRLEN];
    if (cli_rules_resolve(o->rules_explicit ? o->rules_path : NULL, o->rules_path, sizeof o->rules_path, rules_err,
                          sizeof rules_err) < 0)
        return util_err(err, errlen, "%s", rules_err);
    char qr[PATH_MAX + 8];
    if (o->rules_path[0] == '\0') {
        log_line(LOG_WARN, "msg=\"detection off (--rules none): events are stored, no alert is raised\"");
        return 0;
    }
    int errors = rules_load_file(o->rules_path, &o->rules, stderr);
    if (errors != 0)
        return util_err(err, errlen, "%s: %s; not starting (check it with `veille check %s`)", o->rules_path,
                        errors < 0 ? "cannot be read" : "has errors", o->rules_path);
    if (http_rules_disable(o->rules, o, err, errlen) < 0) {
        rules_free(o->rules);
        o->rules = NULL;
        return -1;
    }
    log_line(LOG_INFO, "msg=\"rules loaded\" rules=%s count=%zu lists=%zu", log_quote(o->rules_path, qr, sizeof qr),
             rules_count(o->rules), rules_list_count(o->rules));
    return 0;
}

int serve_main(int argc, char **argv)
{
    char usage[SERVE_USAGE_MAX];
    if (serve_usage_format(usage, sizeof usage) < 0) {
        fprintf(stderr, "veille serve: the --help text does not fit SERVE_USAGE_MAX\n");
        return EXIT_RUNTIME;
    }
    if (cli_help_wanted(argc, argv, usage))
        return 0;
    static http_options opt; /* large (paths); lives as long as the server */
    http_options_defaults(&opt);
    /* the rule-file message names every default path tried: the longest */
    _Static_assert(CLI_RULES_ERRLEN >= SERVE_ERRLEN, "err holds the options' messages too");
    char err[CLI_RULES_ERRLEN];
    int rc = serve_options_parse(argc, argv, &opt, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "veille serve: %s\n%s", err, rc == SERVE_ERR_UNKNOWN ? usage : "");
        return EXIT_USAGE;
    }
    if (startup_secrets(&opt, err, sizeof err) < 0 || startup_sinks(&opt, err, sizeof err) < 0 ||
        startup_rules(&opt, err, sizeof err) < 0) {
        fprintf(stderr, "veille serve: %s\n", err);
        return EXIT_USAGE;
    }

    char ipmsg[UTIL_ERRLEN + 128], qm[2 * sizeof ipmsg];
    bool ipwarn = false;
    if (cli_ip_db_open(opt.ip_db_path[0] ? opt.ip_db_path : NULL, &opt.ipdb, ipmsg, sizeof ipmsg, &ipwarn) < 0) {
        fprintf(stderr, "veille serve: --ip-db: %s\n", ipmsg);
        return EXIT_USAGE;
    }
    log_line(ipwarn ? LOG_WARN : LOG_INFO, "msg=%s", log_quote(ipmsg, qm, sizeof qm));

    char qr[PATH_MAX + 8], qdir[PATH_MAX + 8];
    log_line(LOG_INFO, "msg=starting version=%s rules=%s data=%s secrets=%zu max_body=%zu retention_s=%lld",
             VEILLE_VERSION, opt.rules_path[0] ? log_quote(opt.rules_path, qr, sizeof qr) : CLI_RULES_NONE,
             log_quote(opt.data_dir, qdir, sizeof qdir), opt.secrets.count, opt.max_body,
             (long long)(opt.retention_ms / 1000));
    for (size_t i = 0; i < opt.instances.count; i++)
        log_line(LOG_INFO, "msg=instance name=%s endpoint=/webhooks/clerk/%s secrets=%zu", opt.instances.list[i].name,
                 opt.instances.list[i].name, opt.instances.list[i].secrets.count);
    int served = http_serve(&opt, err, sizeof err);
    ipintel_close(opt.ipdb); /* the server and its engines are gone */
    opt.ipdb = NULL;
    if (served < 0) {
        log_line(LOG_ERROR, "msg=\"cannot start\" error=\"%s\"", err);
        fprintf(stderr, "veille serve: %s\n", err);
        return EXIT_RUNTIME;
    }
    return 0;
}
