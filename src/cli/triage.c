/*
 * triage.c: `veille alerts show|ack|resolve|false-positive ID`, one alert at a
 * time. show reads (read-only, beside serve); the others write one triage record
 * (and with --allow one allow-list entry) in one small LMDB write transaction
 * opened with STORE_SIDE_WRITER: it does not take DIR/veille.lock, which serve
 * holds, because LMDB already serialises writers across processes (lock.mdb);
 * veille.lock only keeps two serves from draining one outbox. So triage works
 * while serve runs, and needs no request to it.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"
#include "cli/cli.h"
#include "cli/internal.h"
#include "engine/engine.h"
#include "rules/rules.h"
#include "store/store.h"
#include "util/util.h"

static const char triage_usage[] =
    "usage: veille alerts show ID [--json] [--rules FILE] [--data DIR]\n"
    "       veille alerts ack ID [--note TEXT] [--by WHO] [--data DIR]\n"
    "       veille alerts resolve ID [--note TEXT] [--by WHO] [--data DIR]\n"
    "       veille alerts false-positive ID --note TEXT [--allow] [--by WHO] [--data DIR]\n"
    "show: the alert, its evidence, the triggering event, the user and the key's history\n"
    "within the rule's window around it. The others record who ($USER, or --by) decided\n"
    "what and when; --allow also puts the alert's key on the allow list for its rule.\n"
    "They work while serve runs. An unknown ID exits 1.\n";

#define LABEL_COLS 14
#define SHOW_HISTORY_MAX 100
#define DEFAULT_WINDOW_MS (60 * 60 * 1000) /* a rule not in the file in force */

typedef struct {
    const char *verb;
    int state; /* -1: show */
} triage_verb;

static const triage_verb verbs[] = {
    {"show", -1},
    {"ack", STORE_STATE_ACKED},
    {"resolve", STORE_STATE_RESOLVED},
    {"false-positive", STORE_STATE_FP},
};
#define N_VERBS (sizeof verbs / sizeof verbs[0])

static const triage_verb *find_verb(const char *s)
{
    for (size_t i = 0; i < N_VERBS; i++)
        if (strcmp(verbs[i].verb, s) == 0)
            return &verbs[i];
    return NULL;
}

bool cli_alerts_triage_verb(const char *argv0)
{
    return argv0 != NULL && find_verb(argv0) != NULL;
}

typedef struct {
    const char *id;
    store_alert *out;
    bool found;
} find_ctx;

static int find_alert(const store_alert *a, void *vctx)
{
    find_ctx *f = vctx;
    if (strcmp(a->id, f->id) != 0)
        return 0;
    *f->out = *a;
    f->found = true;
    return 1;
}

/* The alert (with its running counts). 0 found, EXIT_NOT_FOUND, or EXIT_RUNTIME. */
static int load_alert(store *st, const char *id, const char *data, store_alert *a)
{
    char err[UTIL_ERRLEN];
    find_ctx f = {.id = id, .out = a};
    if (store_list_alerts(st, 0, find_alert, &f, err, sizeof err) < 0) {
        fprintf(stderr, "veille alerts: %s\n", err);
        return EXIT_RUNTIME;
    }
    if (!f.found) {
        char shown[96];
        util_term_escape(id, strlen(id), shown, sizeof shown);
        fprintf(stderr, "veille alerts: no alert '%s' in %s (veille alerts lists them)\n", shown, data);
        return EXIT_NOT_FOUND;
    }
    return 0;
}

/* The longest duration a rule's condition reads: the window its alert was judged in. */
static int64_t expr_window(const rules_expr *e)
{
    if (e == NULL)
        return 0;
    int64_t w = e->kind == RULES_E_DURATION && e->type == RULES_T_DURATION ? e->ms : 0;
    for (size_t i = 0; i < e->nargs; i++) {
        int64_t a = expr_window(e->args[i]);
        if (a > w)
            w = a;
    }
    return w;
}

/* The rule's window from the rule file in force; DEFAULT_WINDOW_MS when the file
 * or the rule is not there (an alert outlives edits of the file). */
static int64_t rule_window(const char *rules_given, const char *rule)
{
    char path[PATH_MAX], err[CLI_RULES_ERRLEN];
    int64_t w = 0;
    if (cli_rules_resolve(rules_given, path, sizeof path, err, sizeof err) < 0 || path[0] == '\0')
        return DEFAULT_WINDOW_MS;
    rules_set *set = NULL;
    if (rules_load_file(path, &set, NULL) != 0)
        return DEFAULT_WINDOW_MS;
    for (size_t i = 0; i < rules_count(set); i++) {
        const rules_rule *r = rules_rule_at(set, i);
        if (strcmp(r->name, rule) == 0)
            w = expr_window(r->when);
    }
    rules_free(set);
    return w > 0 ? w : DEFAULT_WINDOW_MS;
}

typedef struct {
    json_t *arr; /* --json; else text rows */
    const char *event_id;
    size_t n;
} show_history_ctx;

static int show_history_row(const store_history_entry *e, void *vctx)
{
    show_history_ctx *c = vctx;
    c->n++;
    if (c->arr != NULL) {
        json_array_append_new(c->arr, cli_history_json(e));
        return 0;
    }
    char at[UTIL_RFC3339_LEN], loc[EVENT_COUNTRY_MAX + EVENT_TEXT_MAX + 4];
    util_format_rfc3339(e->at_ms, at, sizeof at);
    snprintf(loc, sizeof loc, "%s%s%s", e->country[0] ? e->country : "-", e->city[0] ? "/" : "", e->city);
    cli_row r;
    cli_row_start(&r);
    cli_row_cell(&r, strcmp(e->delivery_id, c->event_id) == 0 ? ">" : " ", 1, 0);
    cli_row_cell(&r, at, 24, 0);
    cli_row_cell(&r, event_type_name(e->type), 16, 0);
    cli_row_cell(&r, e->user_id[0] ? e->user_id : "-", 32, 0);
    cli_row_cell(&r, e->ip[0] ? e->ip : "-", 39, 0);
    cli_row_cell(&r, loc, 0, 0);
    cli_row_print(&r, stdout);
    return 0;
}

static void print_triage(const store_triage *t, bool found)
{
    cli_print_field(LABEL_COLS, "state", store_state_name(found ? t->state : STORE_STATE_OPEN));
    if (!found)
        return;
    char at[UTIL_RFC3339_LEN], who[STORE_TRIAGE_BY_MAX + UTIL_RFC3339_LEN + 8];
    util_format_rfc3339(t->at_ms, at, sizeof at);
    snprintf(who, sizeof who, "%s at %s", t->by, at);
    cli_print_field(LABEL_COLS, "decided by", who);
    cli_print_field(LABEL_COLS, "note", t->note);
}

static json_t *text_or_null(const char *s)
{
    json_t *j = s[0] ? json_string(s) : json_null();
    return j != NULL ? j : json_string(""); /* json_string refuses invalid UTF-8 */
}

static json_t *triage_json(const store_triage *t, bool found)
{
    json_t *o = json_object();
    json_object_set_new(o, "state", json_string(store_state_name(found ? t->state : STORE_STATE_OPEN)));
    json_object_set_new(o, "by", found ? text_or_null(t->by) : json_null());
    if (found) {
        char at[UTIL_RFC3339_LEN];
        util_format_rfc3339(t->at_ms, at, sizeof at);
        json_object_set_new(o, "at", json_string(at));
    } else {
        json_object_set_new(o, "at", json_null());
    }
    json_object_set_new(o, "note", found ? text_or_null(t->note) : json_null());
    return o;
}

static int alerts_show(store *st, const store_alert *a, const char *rules_given, bool json)
{
    char err[UTIL_ERRLEN];
    store_triage tr;
    bool tr_found = false;
    event_user u;
    bool u_found = false;
    if (store_triage_get(st, a->id, &tr, &tr_found, err, sizeof err) < 0 ||
        (a->user_id[0] && store_get_user(st, a->user_id, &u, &u_found, err, sizeof err) < 0)) {
        fprintf(stderr, "veille alerts: %s\n", err);
        return EXIT_RUNTIME;
    }
    int64_t window = rule_window(rules_given, a->rule);
    char kind = 0;
    const char *keyval = NULL;
    bool has_key = store_alert_key_split(a->key, &kind, &keyval);
    show_history_ctx hc = {.event_id = a->event_id};
    if (json)
        hc.arr = json_array();
    char wtext[32];
    snprintf(wtext, sizeof wtext, "%llds", (long long)(window / 1000));
    if (!json) {
        cli_print_field(LABEL_COLS, "alert", a->id);
        cli_print_field(LABEL_COLS, "rule", a->rule);
        cli_print_field(LABEL_COLS, "severity", a->severity);
        cli_print_field(LABEL_COLS, "key", a->key);
        print_triage(&tr, tr_found);
        char at[UTIL_RFC3339_LEN], raised[UTIL_RFC3339_LEN], sup[24];
        util_format_rfc3339(a->at_ms, at, sizeof at);
        util_format_rfc3339(a->raised_ms, raised, sizeof raised);
        snprintf(sup, sizeof sup, "%lld", (long long)a->suppressed);
        cli_print_field(LABEL_COLS, "event time", at);
        cli_print_field(LABEL_COLS, "raised", raised);
        cli_print_field(LABEL_COLS, "suppressed", sup);
        cli_print_field(LABEL_COLS, "summary", a->summary);
        fputs("\nevidence\n", stdout);
        for (size_t i = 0; i < a->n_evidence; i++) {
            char val[176];
            engine_evidence_text(&a->evidence[i], val, sizeof val);
            cli_row r;
            cli_row_start(&r);
            cli_row_cell(&r, "", 2, 0);
            cli_row_cell(&r, a->evidence[i].name, 40, 0);
            cli_row_cell(&r, val, 0, 0);
            cli_row_print(&r, stdout);
        }
        fputs("\ntriggering event\n", stdout);
        char loc[EVENT_COUNTRY_MAX + EVENT_TEXT_MAX + 4];
        snprintf(loc, sizeof loc, "%s%s%s", a->country[0] ? a->country : "-", a->city[0] ? "/" : "", a->city);
        cli_print_field(LABEL_COLS, "type", event_type_name(a->event_type));
        cli_print_field(LABEL_COLS, "delivery", a->event_id);
        cli_print_field(LABEL_COLS, "user", a->user_id);
        cli_print_field(LABEL_COLS, "session", a->session_id);
        cli_print_field(LABEL_COLS, "ip", a->ip);
        cli_print_field(LABEL_COLS, "location", loc);
        cli_print_field(LABEL_COLS, "user agent", a->user_agent);
        fputs("\nuser\n", stdout);
        if (!u_found) {
            cli_print_field(LABEL_COLS, "id", a->user_id[0] ? a->user_id : "-");
            cli_print_field(LABEL_COLS, "note", "no record of this user in the store");
        } else {
            char name[2 * EVENT_TEXT_MAX + 2];
            snprintf(name, sizeof name, "%s%s%s", u.first_name, u.first_name[0] && u.last_name[0] ? " " : "",
                     u.last_name);
            cli_print_field(LABEL_COLS, "id", u.id);
            cli_print_field(LABEL_COLS, "email", u.email);
            cli_print_field(LABEL_COLS, "name", name);
            cli_print_field(LABEL_COLS, "username", u.username);
            cli_print_field(LABEL_COLS, "banned", u.banned ? "yes" : "no");
            cli_print_field(LABEL_COLS, "deleted", u.deleted ? "yes" : "no");
        }
        fputs("\nhistory of the key\n", stdout);
        char within[96];
        snprintf(within, sizeof within, "%s before and after the event (the rule's window); > marks it", wtext);
        cli_print_field(LABEL_COLS, "window", within);
    }
    if (has_key && store_history_scan_oldest_first(st, kind, keyval, a->at_ms - window, a->at_ms + window,
                                                    SHOW_HISTORY_MAX, show_history_row, &hc, err, sizeof err) < 0) {
        json_decref(hc.arr);
        fprintf(stderr, "veille alerts: %s\n", err);
        return EXIT_RUNTIME;
    }
    if (!json) {
        if (hc.n == 0)
            cli_print_field(LABEL_COLS, "", "(no event of the key in the store: pruned by retention?)");
        return 0;
    }
    char *aj = alert_to_json(a);
    json_t *alert = aj != NULL ? json_loads(aj, 0, NULL) : NULL;
    free(aj);
    json_t *o = json_object();
    json_object_set_new(o, "alert", alert != NULL ? alert : json_null());
    json_object_set_new(o, "triage", triage_json(&tr, tr_found));
    json_object_set_new(o, "user", u_found ? cli_user_json(&u) : json_null());
    json_object_set_new(o, "window_ms", json_integer(window));
    json_object_set_new(o, "history", hc.arr);
    cli_print_json_line(o);
    return 0;
}

int cli_side_write(const char *cmd, const char *data, cli_side_fill fill, void *ctx)
{
    char err[UTIL_ERRLEN];
    store *st = NULL;
    store_reader_guard(data); /* it reads pages too: a damaged one exits 3, not SIGBUS */
    int rc = store_open(&st, data, STORE_SIDE_WRITER, 0, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "veille %s: %s\n", cmd, err);
        return rc == STORE_ERR_MISSING ? EXIT_NOT_FOUND : EXIT_RUNTIME;
    }
    store_txn *t = NULL;
    rc = store_txn_begin(st, &t, err, sizeof err);
    if (rc == 0)
        rc = fill(t, ctx, err, sizeof err);
    if (rc == 0) {
        rc = store_txn_commit(t, err, sizeof err);
        t = NULL;
    }
    store_txn_abort(t);
    store_close(st);
    if (rc < 0) {
        fprintf(stderr, "veille %s: %s\n", cmd, err);
        return EXIT_RUNTIME;
    }
    return 0;
}

typedef struct {
    const store_triage *tr;
    const store_allow_entry *allow; /* NULL: no --allow */
} decision;

static int write_decision(store_txn *t, void *vctx, char *err, size_t errlen)
{
    const decision *d = vctx;
    return store_txn_triage_decide(t, d->tr, d->allow, err, errlen);
}

/* Record the decision (and the allow entry) in one transaction beside serve. */
static int alerts_decide(const char *data, const store_alert *a, int state, const char *by, const char *note,
                         bool allow)
{
    store_triage tr = {.state = state, .at_ms = util_now_ms()};
    snprintf(tr.alert_id, sizeof tr.alert_id, "%s", a->id);
    snprintf(tr.by, sizeof tr.by, "%s", by);
    snprintf(tr.note, sizeof tr.note, "%s", note != NULL ? note : "");
    store_allow_entry e;
    char err[UTIL_ERRLEN];
    if (allow && store_allow_from_alert(a, &tr, &e, err, sizeof err) < 0) {
        fprintf(stderr, "veille alerts: --allow: %s\n", err);
        return EXIT_USAGE;
    }
    decision d = {&tr, allow ? &e : NULL};
    int rc = cli_side_write("alerts", data, write_decision, &d);
    if (rc != 0)
        return rc;
    printf("%s: %s by %s%s\n", a->id, store_state_name(state), tr.by,
           allow ? "; its key is now on the allow list for the rule" : "");
    return 0;
}

int cli_alerts_triage(int argc, char **argv)
{
    const triage_verb *verb = find_verb(argv[0]);
    if (cli_help_wanted(argc, argv, triage_usage))
        return 0;
    const char *data = "./veille-data", *rules_given = NULL, *note = NULL, *by = NULL, *id = NULL, *v;
    bool json = false, allow = false;
    for (int i = 1; i < argc; i++) {
        int m;
        const char **target = NULL;
        if ((m = cli_flag_value(argc, argv, &i, "--data", &v)) != 0)
            target = &data;
        else if (verb->state < 0 && (m = cli_flag_value(argc, argv, &i, "--rules", &v)) != 0)
            target = &rules_given;
        else if (verb->state >= 0 && (m = cli_flag_value(argc, argv, &i, "--note", &v)) != 0)
            target = &note;
        else if (verb->state >= 0 && (m = cli_flag_value(argc, argv, &i, "--by", &v)) != 0)
            target = &by;
        else if (verb->state < 0 && strcmp(argv[i], "--json") == 0) {
            json = true;
            continue;
        } else if (verb->state == STORE_STATE_FP && strcmp(argv[i], "--allow") == 0) {
            allow = true;
            continue;
        } else if (argv[i][0] != '-' && id == NULL) {
            id = argv[i];
            continue;
        } else {
            fprintf(stderr, "veille alerts %s: unexpected argument '%s'\n%s", verb->verb, argv[i], triage_usage);
            return EXIT_USAGE;
        }
        if (m < 0)
            return EXIT_USAGE;
        *target = v;
    }
    if (id == NULL) {
        fprintf(stderr, "veille alerts %s: which alert? (its ID, from veille alerts)\n%s", verb->verb, triage_usage);
        return EXIT_USAGE;
    }
    if (verb->state == STORE_STATE_FP && (note == NULL || note[0] == '\0')) {
        fprintf(stderr, "veille alerts false-positive: --note TEXT is required: say why, for whoever reads it next\n");
        return EXIT_USAGE;
    }
    if (verb->state >= 0 && by == NULL) {
        by = getenv("USER");
        if (by == NULL || by[0] == '\0')
            by = "unknown";
    }
    if (by != NULL && strlen(by) >= STORE_TRIAGE_BY_MAX) {
        fprintf(stderr, "veille alerts %s: --by: at most %d bytes\n", verb->verb, STORE_TRIAGE_BY_MAX - 1);
        return EXIT_USAGE;
    }
    if (note != NULL && strlen(note) >= STORE_TRIAGE_NOTE_MAX) {
        fprintf(stderr, "veille alerts %s: --note: at most %d bytes\n", verb->verb, STORE_TRIAGE_NOTE_MAX - 1);
        return EXIT_USAGE;
    }
    store *st = NULL;
    int rc = cli_open_readonly(data, &st);
    if (rc != 0)
        return rc;
    store_alert *a = malloc(sizeof *a);
    if (a == NULL) {
        store_close(st);
        fprintf(stderr, "veille alerts: out of memory\n");
        return EXIT_RUNTIME;
    }
    rc = load_alert(st, id, data, a);
    if (rc == 0 && verb->state < 0)
        rc = alerts_show(st, a, rules_given, json);
    store_close(st);
    if (rc == 0 && verb->state >= 0)
        rc = alerts_decide(data, a, verb->state, by, note, allow);
    free(a);
    return rc;
}
