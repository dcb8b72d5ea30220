/*
 * incidents.c: `veille incidents`, the stored incidents (read-only, works while
 * serve runs), oldest first, and `veille incidents show ID` with every account
 * each of its IPs touched (from the store's values index: the record itself
 * keeps only the first 64 users).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/internal.h"
#include "engine/engine.h"
#include "store/store.h"
#include "util/util.h"

static const char incidents_usage[] =
    "usage: veille incidents [--open] [--incident-window DUR] [--json] [--data DIR]\n"
    "       veille incidents show ID [--incident-window DUR] [--json] [--data DIR]\n"
    "Incidents (alerts sharing a user or an IP), oldest first. --open: those whose last alert is\n"
    "within --incident-window (default 1h, as serve's) of now. show: one incident, with every\n"
    "account each of its IPs touched from the window before its first alert to its last.\n";

typedef struct {
    bool open_only, json;
    int64_t now_ms, window_ms;
    size_t shown;
} list_ctx;

/* a string list "a, b, c" of n entries of width bytes, cut to fit */
static void join(char *out, size_t cap, const char *items, size_t width, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && len < cap; i++) {
        int w = snprintf(out + len, cap - len, "%s%s", i ? ", " : "", items + i * width);
        len = w < 0 ? cap : len + (size_t)w;
    }
}

static json_t *str_array(const char *items, size_t width, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++)
        if (json_array_append_new(a, json_string(items + i * width)) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

#define LIST_JSON(inc, f) str_array((const char *)(inc)->f, sizeof (inc)->f[0], (inc)->n_##f)

static json_t *incident_json(const store_incident *inc)
{
    char first[UTIL_RFC3339_LEN], last[UTIL_RFC3339_LEN];
    util_format_rfc3339(inc->first_ms, first, sizeof first);
    util_format_rfc3339(inc->last_ms, last, sizeof last);
    return json_pack("{s:s,s:s,s:s,s:I,s:s,s:o*,s:o*,s:I,s:o*,s:I,s:s,s:o*}", "id", inc->id, "first_at", first,
                     "last_at", last, "count", (json_int_t)inc->count, "severity", inc->severity, "rules",
                     LIST_JSON(inc, rules), "users", LIST_JSON(inc, users), "users_total",
                     (json_int_t)inc->users_total, "ips", LIST_JSON(inc, ips), "ips_total",
                     (json_int_t)inc->ips_total, "merged_into", inc->merged_into, "linked", LIST_JSON(inc, linked));
}

static void print_json(json_t *o)
{
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (s != NULL)
        puts(s);
    free(s);
}

static void incident_cells(const char *id, const char *first, const char *last, const char *count,
                           const char *severity, const char *users, const char *ips, const char *rules)
{
    cli_row r;
    cli_row_start(&r);
    cli_row_cell(&r, id, 28, 0);
    cli_row_cell(&r, first, 24, 0);
    cli_row_cell(&r, last, 24, 0);
    cli_row_cell(&r, count, 6, CLI_CELL_RIGHT);
    cli_row_cell(&r, severity, 8, 0);
    cli_row_cell(&r, users, 6, CLI_CELL_RIGHT);
    cli_row_cell(&r, ips, 4, CLI_CELL_RIGHT);
    cli_row_cell(&r, rules, 0, 0);
    cli_row_print(&r, stdout);
}

static int print_incident_row(const store_incident *inc, void *vctx)
{
    list_ctx *c = vctx;
    if (inc->merged_into[0])
        return 0; /* listed within the incident that absorbed it */
    if (c->open_only && c->now_ms - inc->last_ms > c->window_ms)
        return 0;
    c->shown++;
    if (c->json) {
        json_t *o = incident_json(inc);
        print_json(o);
        json_decref(o);
        return 0;
    }
    char first[UTIL_RFC3339_LEN], last[UTIL_RFC3339_LEN], count[24], users[24], ips[24], rules[256];
    util_format_rfc3339(inc->first_ms, first, sizeof first);
    util_format_rfc3339(inc->last_ms, last, sizeof last);
    snprintf(count, sizeof count, "%lld", (long long)inc->count);
    snprintf(users, sizeof users, "%lld", (long long)inc->users_total);
    snprintf(ips, sizeof ips, "%lld", (long long)inc->ips_total);
    join(rules, sizeof rules, inc->rules[0], sizeof inc->rules[0], inc->n_rules);
    incident_cells(inc->id, first, last, count, inc->severity, users, ips, rules);
    return 0;
}

typedef struct {
    json_t *users; /* --json: collected here; else printed */
} users_ctx;

static int ip_user(const char *user, void *vctx)
{
    users_ctx *c = vctx;
    if (c->users != NULL)
        return json_array_append_new(c->users, json_string(user)) != 0 ? -1 : 0;
    printf("    %s\n", user);
    return 0;
}

static int show(store *st, const char *id, const list_ctx *c)
{
    char err[UTIL_ERRLEN];
    store_incident *inc = malloc(sizeof *inc);
    if (inc == NULL) {
        fprintf(stderr, "veille incidents: out of memory\n");
        return EXIT_RUNTIME;
    }
    bool found = false;
    int status = 0;
    if (store_get_incident(st, id, inc, &found, err, sizeof err) < 0) {
        fprintf(stderr, "veille incidents: %s\n", err);
        status = EXIT_RUNTIME;
        goto out;
    }
    if (!found) {
        char shown[96];
        util_term_escape(id, strlen(id), shown, sizeof shown);
        fprintf(stderr, "veille incidents: no incident '%s' (veille incidents lists them)\n", shown);
        status = EXIT_NOT_FOUND;
        goto out;
    }
    json_t *o = c->json ? incident_json(inc) : NULL, *by_ip = c->json ? json_object() : NULL;
    if (!c->json) {
        char first[UTIL_RFC3339_LEN], last[UTIL_RFC3339_LEN], list[4096];
        util_format_rfc3339(inc->first_ms, first, sizeof first);
        util_format_rfc3339(inc->last_ms, last, sizeof last);
        printf("incident     %s\nfirst        %s\nlast         %s\nalerts       %lld\nseverity     %s\n", inc->id,
               first, last, (long long)inc->count, inc->severity);
        join(list, sizeof list, inc->rules[0], sizeof inc->rules[0], inc->n_rules);
        printf("rules        %s\n", list);
        join(list, sizeof list, inc->users[0], sizeof inc->users[0], inc->n_users);
        printf("users        %lld: %s%s\n", (long long)inc->users_total, list,
               inc->users_total > (int64_t)inc->n_users ? ", ..." : "");
        join(list, sizeof list, inc->ips[0], sizeof inc->ips[0], inc->n_ips);
        printf("ips          %lld: %s\n", (long long)inc->ips_total, list);
        if (inc->merged_into[0])
            printf("merged into  %s\n", inc->merged_into);
        if (inc->n_linked > 0) {
            join(list, sizeof list, inc->linked[0], sizeof inc->linked[0], inc->n_linked);
            printf("linked       %s\n", list);
        }
    }
    for (size_t i = 0; i < inc->n_ips && status == 0; i++) {
        users_ctx u = {.users = c->json ? json_array() : NULL};
        if (!c->json)
            printf("accounts of %s:\n", inc->ips[i]);
        size_t n = 0;
        if (store_ip_users(st, inc->ips[i], inc->first_ms - c->window_ms, inc->last_ms, ip_user, &u, &n, err,
                           sizeof err) < 0) {
            fprintf(stderr, "veille incidents: %s\n", err);
            status = EXIT_RUNTIME;
        }
        if (c->json)
            json_object_set_new(by_ip, inc->ips[i], u.users);
        else
            printf("  (%zu account%s)\n", n, n == 1 ? "" : "s");
    }
    if (c->json && status == 0) {
        json_object_set_new(o, "accounts_by_ip", by_ip);
        by_ip = NULL;
        print_json(o);
    }
    json_decref(by_ip);
    json_decref(o);
out:
    free(inc);
    return status;
}

int cli_incidents(int argc, char **argv)
{
    if (cli_help_wanted(argc, argv, incidents_usage))
        return 0;
    const char *data = "./veille-data", *show_id = NULL, *v;
    list_ctx c = {.now_ms = util_now_ms(), .window_ms = ENGINE_INCIDENT_WINDOW_DEFAULT_MS};
    char err[UTIL_ERRLEN];
    for (int i = 0; i < argc; i++) {
        int m;
        if ((m = cli_flag_value(argc, argv, &i, "--data", &v)) != 0) {
            if (m < 0)
                return EXIT_USAGE;
            data = v;
        } else if ((m = cli_flag_value(argc, argv, &i, "--incident-window", &v)) != 0) {
            if (m < 0)
                return EXIT_USAGE;
            if (util_parse_duration(v, &c.window_ms, err, sizeof err) < 0) {
                fprintf(stderr, "veille incidents: --incident-window: %s\n", err);
                return EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--open") == 0) {
            c.open_only = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            c.json = true;
        } else if (strcmp(argv[i], "show") == 0 && show_id == NULL && i + 1 < argc && argv[i + 1][0] != '-') {
            show_id = argv[++i];
        } else {
            fprintf(stderr, "veille incidents: unexpected argument '%s'\n%s", argv[i], incidents_usage);
            return EXIT_USAGE;
        }
    }
    store *st = NULL;
    int rc = cli_open_readonly(data, &st);
    if (rc != 0)
        return rc;
    int status = 0;
    if (show_id != NULL) {
        status = show(st, show_id, &c);
    } else {
        if (!c.json)
            incident_cells("ID", "FIRST", "LAST", "ALERTS", "SEVERITY", "USERS", "IPS", "RULES");
        if (store_list_incidents(st, print_incident_row, &c, err, sizeof err) < 0) {
            fprintf(stderr, "veille incidents: %s\n", err);
            status = EXIT_RUNTIME;
        } else if (!c.json) {
            fprintf(stderr, "%zu incident%s\n", c.shown, c.shown == 1 ? "" : "s");
        }
    }
    store_close(st);
    return status;
}
