/*
 * rules_cmd.c: `veille rules` (every rule of the file in force with its
 * settings, state and hits from the store, like `falco -L`) and `veille rules
 * show NAME` (the rule as written, comments and description included).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/internal.h"
#include "rules/rules.h"
#include "store/store.h"
#include "util/util.h"

static const char rules_usage[] =
    "usage: veille rules [--rules FILE] [--data DIR] [--json]\n"
    "       veille rules show NAME [--rules FILE]\n"
    "Every rule of the rule file in force (--rules, else the installed default) with its\n"
    "severity, on, key, suppression, state (enabled, or disabled by `enabled false`) and\n"
    "its alerts in the last 24 h and 30 d from the store. show: the rule as written.\n";

#define DAY_MS ((int64_t)86400000)

typedef struct {
    const rules_set *set;
    uint64_t *h24, *h30; /* per rule, file order */
    int64_t now_ms;
} hits_ctx;

static int count_hit(const store_alert *a, void *vctx)
{
    hits_ctx *c = vctx;
    for (size_t i = 0; i < rules_count(c->set); i++)
        if (strcmp(rules_rule_at(c->set, i)->name, a->rule) == 0) {
            c->h30[i]++;
            if (a->at_ms >= c->now_ms - DAY_MS)
                c->h24[i]++;
            break;
        }
    return 0;
}

static void duration_text(int64_t ms, char *buf, size_t len)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{604800000, "w"}, {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
    if (ms == 0) {
        snprintf(buf, len, "-");
        return;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms % units[i].ms == 0) {
            snprintf(buf, len, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
            return;
        }
}

static void on_text(const rules_rule *r, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int k = 1; k < EVENT_TYPE_COUNT && n < len; k++)
        if (r->on_mask & (1u << k))
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "," : "", event_type_name((event_type)k));
}

static void rule_cells(const char *name, const char *sev, const char *on, const char *by, const char *sup,
                       const char *state, const char *h24, const char *h30)
{
    cli_row r;
    cli_row_start(&r);
    cli_row_cell(&r, name, 24, 0);
    cli_row_cell(&r, sev, 8, 0);
    cli_row_cell(&r, on, 32, 0);
    cli_row_cell(&r, by, 4, 0);
    cli_row_cell(&r, sup, 8, 0);
    cli_row_cell(&r, state, 8, 0);
    cli_row_cell(&r, h24, 8, CLI_CELL_RIGHT);
    cli_row_cell(&r, h30, 0, 0);
    cli_row_print(&r, stdout);
}

/* The file in force, loaded; its diagnostics on stderr. 0 or an exit status. */
static int load_rules(const char *given, char *path, size_t pathlen, rules_set **set)
{
    char err[CLI_RULES_ERRLEN];
    if (cli_rules_resolve(given, path, pathlen, err, sizeof err) < 0) {
        fprintf(stderr, "veille rules: %s\n", err);
        return EXIT_USAGE;
    }
    if (path[0] == '\0') {
        fprintf(stderr, "veille rules: --rules none: no rule is in force\n");
        return EXIT_NOT_FOUND;
    }
    int errors = rules_load_file(path, set, stderr);
    if (errors != 0) {
        fprintf(stderr, "veille rules: %s %s (check it with `veille check %s`)\n", path,
                errors < 0 ? "cannot be read" : "has errors", path);
        return EXIT_USAGE;
    }
    return 0;
}

/* The rule's text as written, line by line and tab by tab through
 * util_term_escape: a comment may hold any byte, and the terminal must only
 * ever get text (newlines and tabs kept, as the file has them). */
static void print_as_written(const char *src)
{
    char shown[4096];
    for (const char *p = src; *p;) {
        size_t n = strcspn(p, "\n\t");
        for (size_t off = 0; off < n;) { /* a long run in pieces that fit */
            size_t piece = n - off < 512 ? n - off : 512;
            while (off + piece < n && piece > 1 && ((unsigned char)p[off + piece] & 0xC0) == 0x80)
                piece--; /* never between the bytes of one character */
            util_term_escape(p + off, piece, shown, sizeof shown);
            fputs(shown, stdout);
            off += piece;
        }
        p += n;
        if (*p)
            fputc(*p++, stdout);
    }
    fputc('\n', stdout);
}

static int rules_show(const rules_set *set, const char *path, const char *name)
{
    for (size_t i = 0; i < rules_count(set); i++) {
        const rules_rule *r = rules_rule_at(set, i);
        if (strcmp(r->name, name) != 0)
            continue;
        char shown_path[PATH_MAX * 4];
        util_term_escape(path, strlen(path), shown_path, sizeof shown_path);
        printf("# %s:%d (%s)\n", shown_path, r->line, r->disabled ? "disabled" : "enabled");
        print_as_written(r->source ? r->source : "");
        return 0;
    }
    char shown[160];
    util_term_escape(name, strlen(name), shown, sizeof shown);
    fprintf(stderr, "veille rules show: no rule '%s' in %s\n", shown, path);
    return EXIT_NOT_FOUND;
}

int cli_rules(int argc, char **argv)
{
    if (cli_help_wanted(argc, argv, rules_usage))
        return 0;
    const char *data = "./veille-data", *given = NULL, *show = NULL, *v;
    bool json = false, show_verb = argc > 0 && strcmp(argv[0], "show") == 0;
    for (int i = show_verb ? 1 : 0; i < argc; i++) {
        int m;
        if ((m = cli_flag_value(argc, argv, &i, "--rules", &v)) != 0) {
            if (m < 0)
                return EXIT_USAGE;
            given = v;
        } else if (!show_verb && (m = cli_flag_value(argc, argv, &i, "--data", &v)) != 0) {
            if (m < 0)
                return EXIT_USAGE;
            data = v;
        } else if (!show_verb && strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (show_verb && show == NULL && argv[i][0] != '-') {
            show = argv[i];
        } else {
            fprintf(stderr, "veille rules: unexpected argument '%s'\n%s", argv[i], rules_usage);
            return EXIT_USAGE;
        }
    }
    if (show_verb && show == NULL) {
        fprintf(stderr, "veille rules show: which rule?\n%s", rules_usage);
        return EXIT_USAGE;
    }
    char path[PATH_MAX];
    rules_set *set = NULL;
    int rc = load_rules(given, path, sizeof path, &set);
    if (rc != 0)
        return rc;
    if (show_verb) {
        rc = rules_show(set, path, show);
        rules_free(set);
        return rc;
    }
    size_t n = rules_count(set);
    hits_ctx hc = {.set = set, .now_ms = util_now_ms()};
    hc.h24 = calloc(n ? n : 1, sizeof *hc.h24);
    hc.h30 = calloc(n ? n : 1, sizeof *hc.h30);
    bool have_store = false;
    char err[UTIL_ERRLEN];
    store *st = NULL;
    if (hc.h24 == NULL || hc.h30 == NULL) {
        fprintf(stderr, "veille rules: out of memory\n");
        rc = EXIT_RUNTIME;
        goto out;
    }
    store_reader_guard(data);
    int orc = store_open(&st, data, STORE_READONLY, 0, err, sizeof err);
    if (orc == 0) {
        have_store = true;
        if (store_list_alerts(st, hc.now_ms - 30 * DAY_MS, count_hit, &hc, err, sizeof err) < 0) {
            fprintf(stderr, "veille rules: %s\n", err);
            rc = EXIT_RUNTIME;
            goto out;
        }
    } else if (orc != STORE_ERR_MISSING) {
        fprintf(stderr, "veille rules: %s\n", err);
        rc = EXIT_RUNTIME;
        goto out;
    }
    if (!json)
        rule_cells("RULE", "SEVERITY", "ON", "BY", "SUPPRESS", "STATE", "HITS_24H", "HITS_30D");
    for (size_t i = 0; i < n; i++) {
        const rules_rule *r = rules_rule_at(set, i);
        char on[256], sup[32], h24[24] = "-", h30[24] = "-";
        on_text(r, on, sizeof on);
        duration_text(r->suppress_ms, sup, sizeof sup);
        if (have_store) {
            snprintf(h24, sizeof h24, "%llu", (unsigned long long)hc.h24[i]);
            snprintf(h30, sizeof h30, "%llu", (unsigned long long)hc.h30[i]);
        }
        const char *state = r->disabled ? "disabled" : "enabled";
        if (!json) {
            rule_cells(r->name, rules_severity_name(r->severity), on, r->by == RULES_BY_IP ? "ip" : "user", sup, state,
                       h24, h30);
            continue;
        }
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(r->name));
        json_object_set_new(o, "description", r->description ? json_string(r->description) : json_null());
        json_object_set_new(o, "severity", json_string(rules_severity_name(r->severity)));
        json_object_set_new(o, "on", json_string(on));
        json_object_set_new(o, "by", json_string(r->by == RULES_BY_IP ? "ip" : "user"));
        json_object_set_new(o, "suppress_ms", json_integer(r->suppress_ms));
        json_object_set_new(o, "state", json_string(state));
        json_object_set_new(o, "hits_24h", have_store ? json_integer((json_int_t)hc.h24[i]) : json_null());
        json_object_set_new(o, "hits_30d", have_store ? json_integer((json_int_t)hc.h30[i]) : json_null());
        cli_print_json_line(o);
    }
    if (!json)
        fprintf(stderr, "%zu rule%s in %s%s\n", n, n == 1 ? "" : "s", path,
                have_store ? "" : "; no store at --data: hits unknown");
out:
    store_close(st);
    free(hc.h24);
    free(hc.h30);
    rules_free(set);
    return rc;
}
