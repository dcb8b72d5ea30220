/*
 * allow.c: `veille allow add|list|rm`, the store's allow list: keys (an IP or
 * CIDR, a user id) that never raise, for one rule or all. add and rm write one
 * LMDB transaction beside a running serve (STORE_SIDE_WRITER, see triage.c for
 * why that is safe); serve reads the list in each batch's transaction, so a
 * change counts from its next batch, without a restart or a reload.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/internal.h"
#include "store/store.h"
#include "util/util.h"

static const char allow_usage[] =
    "usage: veille allow add ip ADDR|CIDR|user ID [--rule NAME] [--for DUR] --note TEXT [--by WHO] [--data DIR]\n"
    "       veille allow list [--json] [--data DIR]\n"
    "       veille allow rm ip ADDR|CIDR|user ID [--rule NAME] [--data DIR]\n"
    "An allowed key raises no alert (for --rule NAME, else for every rule); a match is\n"
    "counted instead (veille_rule_allowed_total, replay --explain). --for 7d: the entry\n"
    "expires then. Works while serve runs; serve sees a change at its next batch.\n";

typedef struct {
    const char *word;
    char kind;
} allow_kind;

static const allow_kind kinds[] = {{"ip", STORE_KEY_IP}, {"user", STORE_KEY_USER}};

static const char *kind_word(char kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].kind == kind)
            return kinds[i].word;
    return "?";
}

typedef struct {
    const char *data, *rule, *note, *by, *value;
    char kind;
    int64_t for_ms;
    bool json;
} allow_args;

/* KIND VALUE and the flags after the verb. 0, or EXIT_USAGE after saying why. */
static int parse_args(int argc, char **argv, const char *verb, allow_args *a)
{
    const char *v;
    char err[UTIL_ERRLEN];
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        int m;
        const char **target = NULL;
        if ((m = cli_flag_value(argc, argv, &i, "--data", &v)) != 0)
            target = &a->data;
        else if (strcmp(verb, "list") != 0 && (m = cli_flag_value(argc, argv, &i, "--rule", &v)) != 0)
            target = &a->rule;
        else if (strcmp(verb, "add") == 0 && (m = cli_flag_value(argc, argv, &i, "--note", &v)) != 0)
            target = &a->note;
        else if (strcmp(verb, "add") == 0 && (m = cli_flag_value(argc, argv, &i, "--by", &v)) != 0)
            target = &a->by;
        else if (strcmp(verb, "add") == 0 && (m = cli_flag_value(argc, argv, &i, "--for", &v)) != 0) {
            if (m < 0)
                return EXIT_USAGE;
            if (util_parse_duration(v, &a->for_ms, err, sizeof err) < 0 || a->for_ms <= 0) {
                fprintf(stderr, "veille allow add: --for: %s\n", a->for_ms <= 0 && err[0] == '\0' ? "must be > 0" : err);
                return EXIT_USAGE;
            }
            continue;
        } else if (strcmp(verb, "list") == 0 && strcmp(argv[i], "--json") == 0) {
            a->json = true;
            continue;
        } else if (strcmp(verb, "list") != 0 && argv[i][0] != '-' && positional < 2) {
            if (positional++ == 0) {
                for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
                    if (strcmp(argv[i], kinds[k].word) == 0)
                        a->kind = kinds[k].kind;
                if (a->kind == 0) {
                    fprintf(stderr, "veille allow %s: '%s' is neither ip nor user\n%s", verb, argv[i], allow_usage);
                    return EXIT_USAGE;
                }
            } else {
                a->value = argv[i];
            }
            continue;
        } else {
            fprintf(stderr, "veille allow %s: unexpected argument '%s'\n%s", verb, argv[i], allow_usage);
            return EXIT_USAGE;
        }
        if (m < 0)
            return EXIT_USAGE;
        *target = v;
    }
    if (strcmp(verb, "list") == 0)
        return 0;
    if (a->value == NULL) {
        fprintf(stderr, "veille allow %s: which key? (ip ADDR|CIDR or user ID)\n%s", verb, allow_usage);
        return EXIT_USAGE;
    }
    if (store_allow_check(a->kind, a->value, err, sizeof err) < 0) {
        fprintf(stderr, "veille allow %s: %s\n", verb, err);
        return EXIT_USAGE;
    }
    if (a->rule != NULL && (a->rule[0] == '\0' || strlen(a->rule) > 63)) {
        fprintf(stderr, "veille allow %s: --rule: '%s' is not a rule name\n", verb, a->rule);
        return EXIT_USAGE;
    }
    if (strcmp(verb, "add") == 0 && (a->note == NULL || a->note[0] == '\0')) {
        fprintf(stderr, "veille allow add: --note TEXT is required: say why this key is trusted\n");
        return EXIT_USAGE;
    }
    if (a->note != NULL && strlen(a->note) >= STORE_ALLOW_NOTE_MAX) {
        fprintf(stderr, "veille allow add: --note: at most %d bytes\n", STORE_ALLOW_NOTE_MAX - 1);
        return EXIT_USAGE;
    }
    if (a->by != NULL && strlen(a->by) >= STORE_TRIAGE_BY_MAX) {
        fprintf(stderr, "veille allow add: --by: at most %d bytes\n", STORE_TRIAGE_BY_MAX - 1);
        return EXIT_USAGE;
    }
    return 0;
}

/* An IP entry is kept in canonical form, as alerts name addresses (CIDRs as given). */
static const char *canonical_value(const allow_args *a, char buf[UTIL_IP_LEN])
{
    if (a->kind == STORE_KEY_IP && strchr(a->value, '/') == NULL &&
        util_ip_canonical(a->value, strlen(a->value), buf, UTIL_IP_LEN) == 0)
        return buf;
    return a->value;
}

typedef struct {
    const allow_args *a;
    const char *value;
    bool add, found;
} allow_change;

static int write_change(store_txn *t, void *vctx, char *err, size_t errlen)
{
    allow_change *c = vctx;
    const allow_args *a = c->a;
    if (!c->add)
        return store_txn_allow_del(t, a->rule ? a->rule : "", a->kind, c->value, &c->found, err, errlen);
    store_allow_entry e = {.kind = a->kind, .added_ms = util_now_ms()};
    snprintf(e.rule, sizeof e.rule, "%s", a->rule ? a->rule : "");
    snprintf(e.value, sizeof e.value, "%s", c->value);
    snprintf(e.note, sizeof e.note, "%s", a->note);
    const char *by = a->by ? a->by : getenv("USER");
    snprintf(e.by, sizeof e.by, "%s", by && by[0] ? by : "unknown");
    if (a->for_ms > 0)
        e.expires_ms = e.added_ms + a->for_ms;
    c->found = true;
    return store_txn_allow_put(t, &e, err, errlen);
}

static int allow_write(const allow_args *a, bool add)
{
    char canon[UTIL_IP_LEN];
    const char *value = canonical_value(a, canon);
    allow_change c = {a, value, add, false};
    int rc = cli_side_write(add ? "allow add" : "allow rm", a->data, write_change, &c);
    if (rc != 0)
        return rc;
    bool found = c.found;
    char shown[STORE_ALLOW_VALUE_MAX * 4];
    util_term_escape(value, strlen(value), shown, sizeof shown);
    if (!found) {
        fprintf(stderr, "veille allow rm: no entry %s %s%s%s (veille allow list shows them)\n", kind_word(a->kind),
                shown, a->rule ? " for rule " : " for every rule", a->rule ? a->rule : "");
        return EXIT_NOT_FOUND;
    }
    printf("%s %s %s%s%s\n", add ? "allowed" : "removed", kind_word(a->kind), shown,
           a->rule ? " for rule " : " for every rule", a->rule ? a->rule : "");
    return 0;
}

typedef struct {
    bool json;
    int64_t now_ms;
    size_t n;
} list_ctx;

static void allow_cells(const char *kind, const char *value, const char *rule, const char *expires, const char *by,
                        const char *note)
{
    cli_row r;
    cli_row_start(&r);
    cli_row_cell(&r, kind, 4, 0);
    cli_row_cell(&r, value, 43, 0);
    cli_row_cell(&r, rule, 20, 0);
    cli_row_cell(&r, expires, 32, 0);
    cli_row_cell(&r, by, 12, 0);
    cli_row_cell(&r, note, 0, 0);
    cli_row_print(&r, stdout);
}

static int print_entry(const store_allow_entry *e, void *vctx)
{
    list_ctx *c = vctx;
    c->n++;
    bool expired = e->expires_ms != 0 && e->expires_ms <= c->now_ms;
    char added[UTIL_RFC3339_LEN], expires[UTIL_RFC3339_LEN + 12] = "never";
    util_format_rfc3339(e->added_ms, added, sizeof added);
    if (e->expires_ms != 0) {
        util_format_rfc3339(e->expires_ms, expires, UTIL_RFC3339_LEN);
        if (expired)
            strcat(expires, " (expired)");
    }
    if (!c->json) {
        allow_cells(kind_word(e->kind), e->value, e->rule[0] ? e->rule : "*", expires, e->by, e->note);
        return 0;
    }
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(kind_word(e->kind)));
    json_object_set_new(o, "value", json_string(e->value));
    json_object_set_new(o, "rule", e->rule[0] ? json_string(e->rule) : json_null());
    json_object_set_new(o, "note", json_string(e->note));
    json_object_set_new(o, "by", json_string(e->by));
    json_object_set_new(o, "added_at", json_string(added));
    if (e->expires_ms != 0) {
        util_format_rfc3339(e->expires_ms, expires, UTIL_RFC3339_LEN);
        json_object_set_new(o, "expires_at", json_string(expires));
    } else {
        json_object_set_new(o, "expires_at", json_null());
    }
    json_object_set_new(o, "expired", json_boolean(expired));
    cli_print_json_line(o);
    return 0;
}

static int allow_list(const allow_args *a)
{
    store *st = NULL;
    int rc = cli_open_readonly(a->data, &st);
    if (rc != 0)
        return rc;
    list_ctx c = {.json = a->json, .now_ms = util_now_ms()};
    char err[UTIL_ERRLEN];
    if (!c.json)
        allow_cells("KIND", "VALUE", "RULE", "EXPIRES", "BY", "NOTE");
    rc = store_allow_list(st, print_entry, &c, err, sizeof err);
    store_close(st);
    if (rc < 0) {
        fprintf(stderr, "veille allow list: %s\n", err);
        return EXIT_RUNTIME;
    }
    if (!c.json)
        fprintf(stderr, "%zu entr%s\n", c.n, c.n == 1 ? "y" : "ies");
    return 0;
}

int cli_allow(int argc, char **argv)
{
    if (cli_help_wanted(argc, argv, allow_usage))
        return 0;
    if (argc < 1) {
        fprintf(stderr, "veille allow: add, list or rm?\n%s", allow_usage);
        return EXIT_USAGE;
    }
    static const char *const verbs[] = {"add", "list", "rm"};
    int verb = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(argv[0], verbs[i]) == 0)
            verb = i;
    if (verb < 0) {
        fprintf(stderr, "veille allow: unknown '%s' (add, list or rm)\n%s", argv[0], allow_usage);
        return EXIT_USAGE;
    }
    allow_args a = {.data = "./veille-data"};
    int rc = parse_args(argc, argv, verbs[verb], &a);
    if (rc != 0)
        return rc;
    return verb == 1 ? allow_list(&a) : allow_write(&a, verb == 0);
}
