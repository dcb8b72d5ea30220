/*
 * cli.c: the read-side commands (history, user, users, stats, check) and the flag
 * helper every subcommand shares. Readers open the store read-only, so they work
 * while `serve` runs.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/internal.h"
#include "rules/rules.h"
#include "store/store.h"
#include "util/log.h"
#include "util/util.h"

int cli_flag_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "veille: %s needs a value\n", name);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

bool cli_help_wanted(int argc, char **argv, const char *usage)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return true;
        }
    return false;
}

/* ---------------------------------------------------------------- readers */

int cli_open_readonly(const char *dir, store **st)
{
    char err[UTIL_ERRLEN];
    int rc = store_open(st, dir, STORE_READONLY, 0, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "veille: %s\n", err);
        return rc == STORE_ERR_MISSING ? EXIT_NOT_FOUND : EXIT_RUNTIME;
    }
    return 0;
}

static void json_set_time(json_t *o, const char *key, int64_t ms)
{
    if (ms <= 0) {
        json_object_set_new(o, key, json_null());
        return;
    }
    char ts[UTIL_RFC3339_LEN];
    util_format_rfc3339(ms, ts, sizeof ts);
    json_object_set_new(o, key, json_string(ts));
}

/* json_string() refuses invalid UTF-8; stored text came through jansson, but a
 * damaged record must not make the CLI print nothing. */
static json_t *json_text(const char *s)
{
    json_t *j = json_string(s);
    return j != NULL ? j : json_string("");
}

static void print_json_line(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s != NULL) {
        puts(s);
        free(s);
    }
    json_decref(o);
}

/* What the row printers of history and users need. */
typedef struct {
    bool json;
    size_t count;
} print_ctx;

static int print_history_row(const store_history_entry *e, void *ctx)
{
    print_ctx *c = ctx;
    c->count++;
    char at[UTIL_RFC3339_LEN];
    util_format_rfc3339(e->at_ms, at, sizeof at);
    if (c->json) {
        json_t *o = json_object();
        json_object_set_new(o, "type", json_string(event_type_name(e->type)));
        json_object_set_new(o, "at", json_string(at));
        json_object_set_new(o, "at_ms", json_integer(e->at_ms));
        json_object_set_new(o, "user_id", json_text(e->user_id));
        json_object_set_new(o, "session_id", json_text(e->session_id));
        json_object_set_new(o, "client_id", json_text(e->client_id));
        json_object_set_new(o, "ip", json_text(e->ip));
        json_object_set_new(o, "country", json_text(e->country));
        json_object_set_new(o, "city", json_text(e->city));
        json_object_set_new(o, "browser", json_text(e->browser));
        json_object_set_new(o, "device", json_text(e->device));
        json_object_set_new(o, "is_mobile", json_boolean(e->is_mobile));
        json_object_set_new(o, "delivery_id", json_text(e->delivery_id));
        print_json_line(o);
        return 0;
    }
    char loc[EVENT_COUNTRY_MAX + EVENT_TEXT_MAX + 4], dev[2 * EVENT_TEXT_MAX + 16];
    snprintf(loc, sizeof loc, "%s%s%s", e->country[0] ? e->country : "-", e->city[0] ? "/" : "", e->city);
    snprintf(dev, sizeof dev, "%s%s%s%s", e->browser[0] ? e->browser : "-", e->device[0] ? " on " : "", e->device,
             e->is_mobile ? " (mobile)" : "");
    printf("%-24s  %-16s  %-30s  %-39s  %-24s  %s\n", at, event_type_name(e->type),
           e->session_id[0] ? e->session_id : "-", e->ip[0] ? e->ip : "-", loc, dev);
    return 0;
}

static const char history_usage[] =
    "usage: veille history USER_ID [--since DUR] [--limit N] [--json] [--data DIR]\n"
    "       veille history --ip IP  [--since DUR] [--limit N] [--json] [--data DIR]\n"
    "Shows the most recent events (default limit 100), oldest first.\n";

int cli_history(int argc, char **argv)
{
    if (cli_help_wanted(argc, argv, history_usage))
        return 0;
    const char *data = "./veille-data", *key = NULL, *v;
    int64_t since_ms = 0, limit = 100;
    bool json = false;
    char kind = STORE_KEY_USER;
    char err[UTIL_ERRLEN];
    for (int i = 0; i < argc; i++) {
        int m;
        if ((m = cli_flag_value(argc, argv, &i, "--data", &v)) != 0) {
            if (m < 0) return EXIT_USAGE;
            data = v;
        } else if ((m = cli_flag_value(argc, argv, &i, "--since", &v)) != 0) {
            int64_t d;
            if (m < 0) return EXIT_USAGE;
            if (util_parse_duration(v, &d, err, sizeof err) < 0) {
                fprintf(stderr, "veille history: --since: %s\n", err);
                return EXIT_USAGE;
            }
            since_ms = util_now_ms() - d;
        } else if ((m = cli_flag_value(argc, argv, &i, "--limit", &v)) != 0) {
            if (m < 0) return EXIT_USAGE;
            if (util_parse_i64(v, &limit, err, sizeof err) < 0 || limit <= 0) {
                fprintf(stderr, "veille history: --limit must be a positive whole number\n");
                return EXIT_USAGE;
            }
        } else if ((m = cli_flag_value(argc, argv, &i, "--ip", &v)) != 0) {
            if (m < 0) return EXIT_USAGE;
            kind = STORE_KEY_IP;
            key = v;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(history_usage, stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "veille history: unknown flag '%s'\n%s", argv[i], history_usage);
            return EXIT_USAGE;
        } else if (key == NULL) {
            key = argv[i];
        } else {
            fprintf(stderr, "veille history: unexpected argument '%s'\n%s", argv[i], history_usage);
            return EXIT_USAGE;
        }
    }
    if (key == NULL || key[0] == '\0') {
        fprintf(stderr, "veille history: which user?\n%s", history_usage);
        return EXIT_USAGE;
    }
    store *st = NULL;
    int rc = cli_open_readonly(data, &st);
    if (rc != 0)
        return rc;
    int status = 0;
    if (kind == STORE_KEY_USER) {
        event_user u;
        bool found = false;
        if (store_get_user(st, key, &u, &found, err, sizeof err) < 0) {
            fprintf(stderr, "veille history: %s\n", err);
            status = EXIT_RUNTIME;
            goto out;
        }
        if (!found) {
            fprintf(stderr, "veille history: no user '%s' in %s\n", key, data);
            status = EXIT_NOT_FOUND;
            goto out;
        }
    }
    if (!json)
        printf("%-24s  %-16s  %-30s  %-39s  %-24s  %s\n", "TIME", "EVENT", "SESSION", "IP", "LOCATION", "DEVICE");
    print_ctx c = {json, 0};
    if (store_history_scan_oldest_first(st, kind, key, since_ms, INT64_MAX, (size_t)limit, print_history_row, &c, err,
                                        sizeof err) < 0) {
        fprintf(stderr, "veille history: %s\n", err);
        status = EXIT_RUNTIME;
    }
out:
    store_close(st);
    return status;
}

static json_t *user_json(const event_user *u)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_text(u->id));
    json_object_set_new(o, "email", u->email[0] ? json_text(u->email) : json_null());
    json_object_set_new(o, "first_name", u->first_name[0] ? json_text(u->first_name) : json_null());
    json_object_set_new(o, "last_name", u->last_name[0] ? json_text(u->last_name) : json_null());
    json_object_set_new(o, "username", u->username[0] ? json_text(u->username) : json_null());
    json_object_set_new(o, "external_id", u->external_id[0] ? json_text(u->external_id) : json_null());
    json_set_time(o, "created_at", u->created_at);
    json_set_time(o, "updated_at", u->updated_at);
    json_set_time(o, "last_sign_in_at", u->last_sign_in_at);
    json_object_set_new(o, "banned", json_boolean(u->banned));
    json_object_set_new(o, "locked", json_boolean(u->locked));
    json_object_set_new(o, "deleted", json_boolean(u->deleted));
    json_set_time(o, "deleted_at", u->deleted_at);
    json_object_set_new(o, "placeholder", json_boolean(u->placeholder));
    return o;
}

static void print_time_field(int width, const char *label, int64_t ms)
{
    char ts[UTIL_RFC3339_LEN] = "-";
    if (ms > 0)
        util_format_rfc3339(ms, ts, sizeof ts);
    printf("%-*s %s\n", width, label, ts);
}

static const char user_usage[] = "usage: veille user USER_ID [--json] [--data DIR]\n";

int cli_user(int argc, char **argv)
{
    if (cli_help_wanted(argc, argv, user_usage))
        return 0;
    const char *data = "./veille-data", *id = NULL, *v;
    bool json = false;
    for (int i = 0; i < argc; i++) {
        int m;
        if ((m = cli_flag_value(argc, argv, &i, "--data", &v)) != 0) {
            if (m < 0) return EXIT_USAGE;
            data = v;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(user_usage, stdout);
            return 0;
        } else if (argv[i][0] == '-' || id != NULL) {
            fprintf(stderr, "veille user: unexpected argument '%s'\n%s", argv[i], user_usage);
            return EXIT_USAGE;
        } else {
            id = argv[i];
        }
    }
    if (id == NULL) {
        fprintf(stderr, "veille user: which user?\n%s", user_usage);
        return EXIT_USAGE;
    }
    store *st = NULL;
    int rc = cli_open_readonly(data, &st);
    if (rc != 0)
        return rc;
    event_user u;
    bool found = false;
    char err[UTIL_ERRLEN];
    rc = store_get_user(st, id, &u, &found, err, sizeof err);
    store_close(st);
    if (rc < 0) {
        fprintf(stderr, "veille user: %s\n", err);
        return EXIT_RUNTIME;
    }
    if (!found) {
        fprintf(stderr, "veille user: no user '%s' in %s\n", id, data);
        return EXIT_NOT_FOUND;
    }
    if (json) {
        print_json_line(user_json(&u));
        return 0;
    }
    printf("%-16s %s\n", "id", u.id);
    printf("%-16s %s\n", "email", u.email[0] ? u.email : "-");
    printf("%-16s %s %s\n", "name", u.first_name[0] ? u.first_name : "-", u.last_name);
    printf("%-16s %s\n", "username", u.username[0] ? u.username : "-");
    printf("%-16s %s\n", "external_id", u.external_id[0] ? u.external_id : "-");
    print_time_field(16, "created_at", u.created_at);
    print_time_field(16, "updated_at", u.updated_at);
    print_time_field(16, "last_sign_in_at", u.last_sign_in_at);
    printf("%-16s %s\n", "banned", u.banned ? "yes" : "no");
    printf("%-16s %s\n", "locked", u.locked ? "yes" : "no");
    printf("%-16s %s\n", "deleted", u.deleted ? "yes" : "no");
    if (u.deleted)
        print_time_field(16, "deleted_at", u.deleted_at);
    if (u.placeholder)
        printf("%-16s %s\n", "note", "placeholder: sessions seen, user.created not received yet");
    return 0;
}

static int print_user_row(const event_user *u, void *ctx)
{
    print_ctx *c = ctx;
    c->count++;
    if (c->json) {
        print_json_line(user_json(u));
        return 0;
    }
    char name[2 * EVENT_TEXT_MAX + 2];
    snprintf(name, sizeof name, "%s%s%s", u->first_name, u->first_name[0] && u->last_name[0] ? " " : "", u->last_name);
    const char *state = u->deleted ? "deleted" : u->placeholder ? "placeholder" : u->banned ? "banned" : "active";
    printf("%-34s  %-32s  %-24s  %s\n", u->id, u->email[0] ? u->email : "-", name[0] ? name : "-", state);
    return 0;
}

/* The flags of commands that take only --data and --json. Returns 0, or the exit
 * status for a bad argument. */
static int parse_data_json(int argc, char **argv, const char *cmd, const char **data, bool *json)
{
    const char *v;
    for (int i = 0; i < argc; i++) {
        int m;
        if ((m = cli_flag_value(argc, argv, &i, "--data", &v)) != 0) {
            if (m < 0)
                return EXIT_USAGE;
            *data = v;
        } else if (strcmp(argv[i], "--json") == 0) {
            *json = true;
        } else {
            fprintf(stderr, "veille %s: unexpected argument '%s'\nusage: veille %s [--json] [--data DIR]\n", cmd,
                    argv[i], cmd);
            return EXIT_USAGE;
        }
    }
    return 0;
}

static const char users_usage[] = "usage: veille users [--json] [--data DIR]\n"
                                  "Every synced user: id, email, name, state (active, banned, placeholder, deleted).\n";

int cli_users(int argc, char **argv)
{
    if (cli_help_wanted(argc, argv, users_usage))
        return 0;
    const char *data = "./veille-data";
    print_ctx c = {false, 0};
    int bad = parse_data_json(argc, argv, "users", &data, &c.json);
    if (bad != 0)
        return bad;
    store *st = NULL;
    int rc = cli_open_readonly(data, &st);
    if (rc != 0)
        return rc;
    if (!c.json)
        printf("%-34s  %-32s  %-24s  %s\n", "ID", "EMAIL", "NAME", "STATE");
    char err[UTIL_ERRLEN];
    rc = store_list_users(st, print_user_row, &c, err, sizeof err);
    store_close(st);
    if (rc < 0) {
        fprintf(stderr, "veille users: %s\n", err);
        return EXIT_RUNTIME;
    }
    return 0;
}

static const char stats_usage[] = "usage: veille stats [--json] [--data DIR]\n"
                                  "Store counts (users, history entries, delivery ids), event time span and size.\n";

int cli_stats(int argc, char **argv)
{
    if (cli_help_wanted(argc, argv, stats_usage))
        return 0;
    const char *data = "./veille-data";
    bool json = false;
    int bad = parse_data_json(argc, argv, "stats", &data, &json);
    if (bad != 0)
        return bad;
    store *st = NULL;
    int rc = cli_open_readonly(data, &st);
    if (rc != 0)
        return rc;
    store_stats s;
    char err[UTIL_ERRLEN];
    rc = store_get_stats(st, &s, err, sizeof err);
    store_close(st);
    if (rc < 0) {
        fprintf(stderr, "veille stats: %s\n", err);
        return EXIT_RUNTIME;
    }
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "users", json_integer((json_int_t)s.users));
        json_object_set_new(o, "users_deleted", json_integer((json_int_t)s.users_deleted));
        json_object_set_new(o, "history_entries", json_integer((json_int_t)s.history_entries));
        json_object_set_new(o, "delivery_ids", json_integer((json_int_t)s.deliveries));
        json_set_time(o, "oldest_event", s.oldest_event_ms);
        json_set_time(o, "newest_event", s.newest_event_ms);
        json_object_set_new(o, "file_bytes", json_integer((json_int_t)s.file_bytes));
        json_object_set_new(o, "map_bytes", json_integer((json_int_t)s.map_bytes));
        print_json_line(o);
        return 0;
    }
    printf("%-18s %llu (%llu deleted)\n", "users", (unsigned long long)s.users, (unsigned long long)s.users_deleted);
    printf("%-18s %llu (user and ip keys)\n", "history entries", (unsigned long long)s.history_entries);
    printf("%-18s %llu\n", "delivery ids", (unsigned long long)s.deliveries);
    print_time_field(18, "oldest event", s.oldest_event_ms);
    print_time_field(18, "newest event", s.newest_event_ms);
    printf("%-18s %.1f MiB of %.0f MiB map\n", "store size", (double)s.file_bytes / 1048576.0,
           (double)s.map_bytes / 1048576.0);
    return 0;
}

static const char check_usage[] = "usage: veille check FILE...\n"
                                  "Checks rule files; prints every error as FILE:LINE:COL with the line and a caret.\n";

int cli_check(int argc, char **argv)
{
    if (cli_help_wanted(argc, argv, check_usage))
        return 0;
    for (int i = 0; i < argc; i++)
        if (argv[i][0] == '-' && argv[i][1] != '\0') { /* check takes no flags: never a file named --x */
            fprintf(stderr, "veille check: unknown flag '%s'\n%s", argv[i], check_usage);
            return EXIT_USAGE;
        }
    if (argc == 0) {
        fprintf(stderr, "veille check: which file?\n%s", check_usage);
        return EXIT_USAGE;
    }
    int status = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(check_usage, stdout);
            return 0;
        }
    }
    for (int i = 0; i < argc; i++) {
        size_t n_rules = 0, n_lists = 0;
        int errors = rules_check_file(argv[i], stderr, &n_rules, &n_lists);
        if (errors == 0) {
            printf("%s: %zu rule%s, %zu list%s, ok\n", argv[i], n_rules, n_rules == 1 ? "" : "s", n_lists,
                   n_lists == 1 ? "" : "s");
        } else {
            if (errors > 0)
                fprintf(stderr, "%s: %d error%s\n", argv[i], errors, errors == 1 ? "" : "s");
            status = EXIT_NOT_FOUND;
        }
    }
    return status;
}
