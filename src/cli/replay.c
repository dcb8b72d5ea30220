/*
 * replay.c: `veille replay`, for tuning rules before deploying them. Feeds
 * recorded Clerk event envelopes (NDJSON, no signature) through the same decoder,
 * store and rules engine as `serve`, in file order, into a temporary store unless
 * --data names one; alerts go to stdout as the sinks would write them, a per-rule
 * summary (and with --explain, every alert and near miss with its values) to stderr.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alert/alert.h"
#include "cli/cli.h"
#include "cli/internal.h"
#include "engine/engine.h"
#include "ingest/ingest.h"
#include "pipeline/pipeline.h"
#include "rules/rules.h"
#include "store/store.h"
#include "util/log.h"
#include "util/util.h"

#define REPLAY_TXN_EVENTS 512 /* events per write transaction */

static const char replay_usage[] =
    "usage: veille replay [--rules FILE|none] [--data DIR] [--ip-db FILE|none] [--risk-history DUR]\n"
    "                     [--risk-min-history N] [--explain] EVENTS.ndjson|-\n"
    "One Clerk event envelope per line (as delivered, no signature), processed in order.\n"
    "Alerts on stdout (JSON lines); a per-rule summary on stderr. Without --data the\n"
    "events go to a temporary store, removed at the end. Without --rules, the installed\n"
    "default.rules (as veille serve); without --ip-db, " IPINTEL_DEFAULT_DB " if it is there.\n";

typedef struct {
    size_t line;
    uint64_t alerts;
    bool explain_failed;
} replay_ctx;

static void print_alert(const store_alert *a, void *vctx)
{
    replay_ctx *c = vctx;
    if (a->incident_update)
        return; /* a message for the sinks: replay prints every alert instead */
    char *json = alert_to_json(a);
    if (json != NULL) {
        puts(json);
        free(json);
    }
    c->alerts++;
}

static void print_explain(const engine_explain *x, void *vctx)
{
    replay_ctx *c = vctx;
    if (!x->matched && !x->near_miss)
        return;
    const char *what = x->allowed      ? "allowed (allow list), nothing raised"
                       : x->suppressed ? "suppressed into"
                       : x->matched    ? "alert"
                                       : "near miss";
    /* the key and the values come from payloads: terminal-safe, as in every text output */
    char key[256], val[176], shown[352];
    util_term_escape(x->key, strlen(x->key), key, sizeof key);
    fprintf(stderr, "explain: line %zu: %s %s -> %s%s%s:", c->line, x->rule->name, key, what,
            x->alert_id ? " " : "", x->alert_id ? x->alert_id : "");
    for (size_t i = 0; i < x->n_values; i++) {
        /* the alert summary's text of each value, so that the two agree */
        engine_evidence_text(&x->values[i], val, sizeof val);
        util_term_escape(val, strlen(val), shown, sizeof shown);
        fprintf(stderr, "%s %s = %s", i ? "," : "", x->values[i].name, shown);
    }
    fputc('\n', stderr);
}

static void remove_temp_store(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/veille.lock", dir);
    unlink(p);
    rmdir(dir);
}

int cli_replay(int argc, char **argv)
{
    if (cli_help_wanted(argc, argv, replay_usage))
        return 0;
    const char *rules_given = NULL, *data = NULL, *input = NULL, *ip_db = NULL, *v;
    bool explain = false;
    int64_t risk_history_ms = ENGINE_RISK_HISTORY_DEFAULT_MS;
    int64_t risk_min_history = ENGINE_RISK_MIN_HISTORY_DEFAULT;
    for (int i = 0; i < argc; i++) {
        int m;
        if ((m = cli_flag_value(argc, argv, &i, "--rules", &v)) != 0) {
            if (m < 0)
                return EXIT_USAGE;
            rules_given = v;
        } else if ((m = cli_flag_value(argc, argv, &i, "--data", &v)) != 0) {
            if (m < 0)
                return EXIT_USAGE;
            data = v;
        } else if ((m = cli_flag_value(argc, argv, &i, "--ip-db", &v)) != 0) {
            if (m < 0)
                return EXIT_USAGE;
            ip_db = v;
        } else if ((m = cli_flag_value(argc, argv, &i, "--risk-history", &v)) != 0) {
            char why[UTIL_ERRLEN];
            if (m < 0)
                return EXIT_USAGE;
            if (util_parse_duration(v, &risk_history_ms, why, sizeof why) < 0 || risk_history_ms <= 0) {
                fprintf(stderr, "veille replay: --risk-history: '%s' is not a positive duration (e.g. 180d)\n", v);
                return EXIT_USAGE;
            }
        } else if ((m = cli_flag_value(argc, argv, &i, "--risk-min-history", &v)) != 0) {
            if (m < 0)
                return EXIT_USAGE;
            if (util_parse_i64(v, &risk_min_history, NULL, 0) < 0 || risk_min_history < 1) {
                fprintf(stderr, "veille replay: --risk-min-history: '%s' is not a positive whole number\n", v);
                return EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--explain") == 0) {
            explain = true;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "veille replay: unknown flag '%s'\n%s", argv[i], replay_usage);
            return EXIT_USAGE;
        } else if (input == NULL) {
            input = argv[i];
        } else {
            fprintf(stderr, "veille replay: unexpected argument '%s'\n%s", argv[i], replay_usage);
            return EXIT_USAGE;
        }
    }
    if (input == NULL) {
        fprintf(stderr, "veille replay: which events? (a file, or - for standard input)\n%s", replay_usage);
        return EXIT_USAGE;
    }
    char rules_path[PATH_MAX], rules_err[CLI_RULES_ERRLEN];
    if (cli_rules_resolve(rules_given, rules_path, sizeof rules_path, rules_err, sizeof rules_err) < 0) {
        fprintf(stderr, "veille replay: %s\n", rules_err);
        return EXIT_USAGE;
    }
    rules_set *rules = NULL;
    /* --rules none: no rule at all, the events are still decoded and stored */
    int errors = rules_path[0] != '\0' ? rules_load_file(rules_path, &rules, stderr)
                                        : rules_load_buffer(CLI_RULES_NONE, "", 0, &rules, stderr);
    if (errors != 0) {
        fprintf(stderr, "veille replay: %s: %s\n", rules_path, errors < 0 ? "cannot be read" : "has errors");
        return EXIT_USAGE;
    }
    size_t n_rules = rules_count(rules);
    fprintf(stderr, "replay: rules %s (%zu rule%s)\n", rules_path[0] ? rules_path : CLI_RULES_NONE, n_rules,
            n_rules == 1 ? "" : "s");
    char ipmsg[UTIL_ERRLEN + 128];
    bool ipwarn = false;
    ipintel *ipdb = NULL;
    if (cli_ip_db_open(ip_db, &ipdb, ipmsg, sizeof ipmsg, &ipwarn) < 0) {
        fprintf(stderr, "veille replay: --ip-db: %s\n", ipmsg);
        rules_free(rules);
        return EXIT_USAGE;
    }
    fprintf(stderr, "replay: %s%s\n", ipwarn ? "warning: " : "", ipmsg);
    char err[UTIL_ERRLEN];
    engine *eng = NULL;
    if (engine_new(rules, &eng, err, sizeof err) < 0) {
        fprintf(stderr, "veille replay: %s\n", err);
        ipintel_close(ipdb);
        return EXIT_RUNTIME;
    }
    engine_set_ipintel(eng, ipdb);
    engine_set_risk(eng, risk_history_ms, (uint64_t)risk_min_history);
    FILE *in = strcmp(input, "-") == 0 ? stdin : fopen(input, "r");
    if (in == NULL) {
        fprintf(stderr, "veille replay: cannot open %s: %s\n", input, strerror(errno));
        engine_free(eng);
        ipintel_close(ipdb);
        return EXIT_USAGE;
    }
    char tmpdir[4096] = "";
    if (data == NULL) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/veille-replay-XXXXXX", base && *base ? base : "/tmp");
        if (mkdtemp(tmpdir) == NULL) {
            fprintf(stderr, "veille replay: cannot create a temporary store in %s: %s\n", tmpdir, strerror(errno));
            engine_free(eng);
            ipintel_close(ipdb);
            if (in != stdin)
                fclose(in);
            return EXIT_RUNTIME;
        }
        data = tmpdir;
    }
    store *st = NULL;
    int status = 0;
    /* read-write: refused (STORE_ERR_LOCKED) while a serve holds the store */
    int orc = store_open(&st, data, 0, 0, err, sizeof err);
    if (orc < 0) {
        fprintf(stderr, "veille replay: %s\n", err);
        if (orc == STORE_ERR_LOCKED)
            fprintf(stderr, "veille replay: without --data, replay uses a temporary store of its own\n");
        status = EXIT_RUNTIME;
        goto out;
    }

    replay_ctx rc = {0};
    /* the server's pipeline, with stdout for sinks and no outbox */
    pipeline_stages stages = {.engine = eng, .on_alert = print_alert, .on_explain = explain ? print_explain : NULL,
                              .ctx = &rc};
    pipeline_txn p = {0};
    event_t *ev = malloc(sizeof *ev);
    if (ev == NULL) {
        fprintf(stderr, "veille replay: out of memory\n");
        status = EXIT_RUNTIME;
        goto out;
    }
    uint64_t lines = 0, stored = 0, duplicates = 0, ignored = 0, rejected = 0;
    size_t in_txn = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    bool store_failed = false;
    const char *name = in == stdin ? "<stdin>" : input;
    while ((len = getline(&line, &cap, in)) >= 0) {
        rc.line++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (strspn(line, " \t") == (size_t)len)
            continue; /* blank lines separate groups in hand-written files */
        lines++;
        /* the id is the content's: replaying a line twice is a duplicate, as a
         * Svix retry would be */
        char id[40];
        util_digest_id("replay_", line, (size_t)len, id, sizeof id);
        ingest_result r = ingest_decode_event(line, (size_t)len, id, ev, err, sizeof err);
        if (r != INGEST_OK) {
            fprintf(stderr, "%s:%zu: error: %s\n", name, rc.line, err);
            rejected++;
            continue;
        }
        if (ev->type == EVENT_UNKNOWN) {
            ignored++;
            continue;
        }
        /* the event is kept, as serve keeps it; say what it lost (quoted: the
         * value may hold a newline) */
        for (int f = 0; f < EVENT_IP_FIELD_COUNT; f++) {
            char qv[2 * EVENT_IP_MAX + 4];
            if (ev->invalid_ips.dropped[f])
                fprintf(stderr, "%s:%zu: warning: %s is not an IP address, dropped: %s\n", name, rc.line,
                        event_ip_field_name((event_ip_field)f), log_quote(ev->invalid_ips.value[f], qv, sizeof qv));
        }
        pipeline_outcome outcome;
        int64_t now = util_now_ms();
        if ((p.t == NULL && pipeline_txn_begin(&p, st, &stages, err, sizeof err) < 0) ||
            pipeline_apply_event(&p, ev, now, now, &outcome, err, sizeof err) < 0) {
            store_failed = true;
            break;
        }
        duplicates += outcome == PIPELINE_DUPLICATE;
        stored += outcome == PIPELINE_APPLIED;
        ignored += outcome == PIPELINE_STALE || outcome == PIPELINE_AFTER_DELETE;
        if (++in_txn >= REPLAY_TXN_EVENTS) {
            in_txn = 0;
            if (pipeline_txn_commit(&p, err, sizeof err) < 0) {
                store_failed = true;
                break;
            }
        }
    }
    bool read_failed = ferror(in) != 0;
    bool failed = store_failed || read_failed;
    if (!failed && p.t != NULL)
        failed = pipeline_txn_commit(&p, err, sizeof err) < 0;
    pipeline_txn_free(&p);
    free(line);
    free(ev);
    fflush(stdout);
    if (failed) {
        fprintf(stderr, "veille replay: %s:%zu: %s\n", name, rc.line, read_failed ? strerror(errno) : err);
        status = EXIT_RUNTIME;
        goto out;
    }

    fprintf(stderr, "replay: %llu events: %llu stored, %llu duplicates, %llu ignored, %llu rejected; %llu alerts\n",
            (unsigned long long)lines, (unsigned long long)stored, (unsigned long long)duplicates,
            (unsigned long long)ignored, (unsigned long long)rejected, (unsigned long long)rc.alerts);
    fprintf(stderr, "%-24s %10s %10s %10s %10s %10s\n", "RULE", "EVALUATED", "MATCHED", "ALERTS", "SUPPRESSED",
            "ALLOWED");
    for (size_t i = 0; i < engine_rule_count(eng); i++) {
        engine_rule_stats s;
        engine_rule_stats_at(eng, i, &s);
        fprintf(stderr, "%-24s %10llu %10llu %10llu %10llu %10llu%s\n", rules_rule_at(engine_rules(eng), i)->name,
                (unsigned long long)s.evaluations, (unsigned long long)s.matches, (unsigned long long)s.alerts,
                (unsigned long long)s.suppressed, (unsigned long long)s.allowed,
                s.bounded ? "  (some window reads were bounded)" : "");
    }
    if (rejected > 0)
        status = EXIT_USAGE;
out:
    store_close(st);
    if (tmpdir[0] != '\0')
        remove_temp_store(tmpdir);
    engine_free(eng);
    ipintel_close(ipdb);
    if (in != stdin)
        fclose(in);
    return status;
}
