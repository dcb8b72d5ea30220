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

#include "alert/alert.h"
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

/* ---------------------------------------------------------------- tables */

void cli_row_start(cli_row *r)
{
    r->n = 0;
    r->buf[0] = '\0';
}

static void row_put(cli_row *r, const char *s, size_t len)
{
    /* the last byte is kept for the newline; a row is cut rather than overflowing */
    size_t room = sizeof r->buf - 2 - r->n;
    if (len > room)
        len = room;
    memcpy(r->buf + r->n, s, len);
    r->n += len;
    r->buf[r->n] = '\0';
}

static void row_pad(cli_row *r, size_t cols)
{
    static const char spaces[] = "                                        ";
    while (cols > 0) {
        size_t k = cols < sizeof spaces - 1 ? cols : sizeof spaces - 1;
        row_put(r, spaces, k);
        cols -= k;
    }
}

void cli_row_cell(cli_row *r, const char *s, size_t width, unsigned flags)
{
    char cell[4096];
    if (r->n > 0)
        row_put(r, "  ", 2);
    size_t max = width != 0 && (flags & CLI_CELL_CUT) ? width : 0;
    size_t cols = util_term_fit(s, strlen(s), max, cell, sizeof cell, NULL);
    size_t pad = cols < width ? width - cols : 0;
    if (flags & CLI_CELL_RIGHT)
        row_pad(r, pad);
    row_put(r, cell, strlen(cell));
    if (!(flags & CLI_CELL_RIGHT) && width != 0)
        row_pad(r, pad);
}

void cli_row_print(cli_row *r, FILE *f)
{
    /* a padded last cell would leave trailing spaces */
    while (r->n > 0 && r->buf[r->n - 1] == ' ')
        r->n--;
    r->buf[r->n++] = '\n';
    fwrite(r->buf, 1, r->n, f);
    cli_row_start(r);
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
    store_reader_guard(dir);
    int rc = store_open(st, dir, STORE_READONLY, 0, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "veille: %s\n", err);
        return rc == STORE_ERR_MISSING ? EXIT_NOT_FOUND : EXIT_RUNTIME;
    }
    return 0;
}

json_t *cli_json_time(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char ts[UTIL_RFC3339_LEN];
    util_format_rfc3339(ms, ts, sizeof ts);
    return json_string(ts);
}

static void json_set_time(json_t *o, const char *key, int64_t ms)
{
    json_object_set_new(o, key, cli_json_time(ms));
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
    bool by_ip; /* history of an IP: a USER column */
    size_t count;
} print_ctx;

/* history's text columns, header and rows alike */
static void history_cells(cli_row *r, bool by_ip, const char *at, const char *event, const char *user,
                          const char *session, const char *ip, const char *loc, const char *instance, const char *dev)
{
    cli_row_cell(r, at, 24, 0);
    cli_row_cell(r, event, 16, 0);
    if (by_ip)
        cli_row_cell(r, user, 32, 0);
    cli_row_cell(r, session, 30, 0);
    cli_row_cell(r, ip, 39, 0);
    cli_row_cell(r, loc, 24, CLI_CELL_CUT);
    cli_row_cell(r, instance, 32, CLI_CELL_CUT); /* the Clerk application (dev, prod...) */
    cli_row_cell(r, dev, 0, 0);
}

static const char *or_dash(const char *s)
{
    return s[0] ? s : "-";
}

/* One history record as `history --json` prints it (also in `alerts show --json`). */
json_t *cli_history_json(const store_history_entry *e)
{
    char at[UTIL_RFC3339_LEN];
    util_format_rfc3339(e->at_ms, at, sizeof at);
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
    json_object_set_new(o, "instance_id", json_text(e->instance_id));
    return o;
}

static int print_history_row(const store_history_entry *e, void *ctx)
{
    print_ctx *c = ctx;
    c->count++;
    char at[UTIL_RFC3339_LEN];
    util_format_rfc3339(e->at_ms, at, sizeof at);
    if (c->json) {
        print_json_line(cli_history_json(e));
        return 0;
    }
    char loc[EVENT_COUNTRY_MAX + EVENT_TEXT_MAX + 4], dev[2 * EVENT_TEXT_MAX + 16];
    snprintf(loc, sizeof loc, "%s%s%s", e->country[0] ? e->country : "-", e->city[0] ? "/" : "", e->city);
    snprintf(dev, sizeof dev, "%s%s%s%s", e->browser[0] ? e->browser : "-", e->device[0] ? " on " : "", e->device,
             e->is_mobile ? " (mobile)" : "");
    cli_row r;
    cli_row_start(&r);
    history_cells(&r, c->by_ip, at, event_type_name(e->type), or_dash(e->user_id), or_dash(e->session_id),
                  or_dash(e->ip), loc, or_dash(e->instance_id), dev);
    cli_row_print(&r, stdout);
    return 0;
}

static int count_history_row(const store_history_entry *e, void *ctx)
{
    (void)e;
    ((print_ctx *)ctx)->count++;
    return 1; /* one is enough */
}

int cli_ip_arg(const char *cmd, const char *arg, char out[UTIL_IP_LEN])
{
    if (util_ip_canonical(arg, strlen(arg), out, UTIL_IP_LEN) == 0)
        return 0;
    char shown[160];
    util_term_escape(arg, strlen(arg), shown, sizeof shown);
    fprintf(stderr, "veille %s: --ip '%s' is not an IP address%s\n", cmd, shown,
            strchr(arg, '/') != NULL ? " (one address, not a network: CIDR ranges are not supported)" : "");
    return -1;
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
    char ip[UTIL_IP_LEN];
    if (kind == STORE_KEY_IP) {
        if (cli_ip_arg("history", key, ip) < 0)
            return EXIT_USAGE;
        key = ip;
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
    print_ctx c = {json, kind == STORE_KEY_IP, 0};
    if (!json) {
        cli_row r;
        cli_row_start(&r);
        history_cells(&r, c.by_ip, "TIME", "EVENT", "USER", "SESSION", "IP", "LOCATION", "INSTANCE", "DEVICE");
        cli_row_print(&r, stdout);
    }
    if (store_history_scan_oldest_first(st, kind, key, since_ms, INT64_MAX, (size_t)limit, print_history_row, &c, err,
                                        sizeof err) < 0) {
        fprintf(stderr, "veille history: %s\n", err);
        status = EXIT_RUNTIME;
        goto out;
    }
    /* An IP has no record of its own: one never seen is "not found", as an
     * unknown user is, rather than an empty table that looks like "all quiet". */
    bool seen = c.count > 0;
    if (!seen && kind == STORE_KEY_IP && since_ms > 0) {
        print_ctx any = {true, true, 0};
        if (store_history_scan(st, kind, key, 0, INT64_MAX, 1, count_history_row, &any, err, sizeof err) < 0) {
            fprintf(stderr, "veille history: %s\n", err);
            status = EXIT_RUNTIME;
            goto out;
        }
        seen = any.count > 0;
    }
    if (!seen && kind == STORE_KEY_IP) {
        fprintf(stderr, "veille history: no sign-in from IP %s in %s\n", key, data);
        status = EXIT_NOT_FOUND;
    }
out:
    store_close(st);
    return status;
}

json_t *cli_user_json(const event_user *u)
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
    json_object_set_new(o, "instance_id", u->instance_id[0] ? json_text(u->instance_id) : json_null());
    return o;
}

/* The label columns of `user` and `stats` (plus the two-space cell gap): the
 * values start where they always did, 17 and 19 columns in. */
#define USER_LABEL_COLS 15
#define STATS_LABEL_COLS 17

/* One "label value" line of `user` and `stats`; the value is escaped. */
static void print_field(size_t width, const char *label, const char *value)
{
    cli_row r;
    cli_row_start(&r);
    cli_row_cell(&r, label, width, 0);
    cli_row_cell(&r, value[0] ? value : "-", 0, 0);
    cli_row_print(&r, stdout);
}

static void print_time_field(size_t width, const char *label, int64_t ms)
{
    char ts[UTIL_RFC3339_LEN] = "-";
    if (ms > 0)
        util_format_rfc3339(ms, ts, sizeof ts);
    print_field(width, label, ts);
}

static void user_name(const event_user *u, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s%s%s", u->first_name, u->first_name[0] && u->last_name[0] ? " " : "", u->last_name);
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
        print_json_line(cli_user_json(&u));
        return 0;
    }
    char name[2 * EVENT_TEXT_MAX + 2];
    user_name(&u, name, sizeof name);
    print_field(USER_LABEL_COLS, "id", u.id);
    print_field(USER_LABEL_COLS, "email", u.email);
    print_field(USER_LABEL_COLS, "name", name);
    print_field(USER_LABEL_COLS, "username", u.username);
    print_field(USER_LABEL_COLS, "external_id", u.external_id);
    print_field(USER_LABEL_COLS, "instance_id", u.instance_id);
    print_time_field(USER_LABEL_COLS, "created_at", u.created_at);
    print_time_field(USER_LABEL_COLS, "updated_at", u.updated_at);
    print_time_field(USER_LABEL_COLS, "last_sign_in_at", u.last_sign_in_at);
    print_field(USER_LABEL_COLS, "banned", u.banned ? "yes" : "no");
    print_field(USER_LABEL_COLS, "locked", u.locked ? "yes" : "no");
    print_field(USER_LABEL_COLS, "deleted", u.deleted ? "yes" : "no");
    if (u.deleted)
        print_time_field(USER_LABEL_COLS, "deleted_at", u.deleted_at);
    if (u.placeholder)
        print_field(USER_LABEL_COLS, "note", "placeholder: sessions seen, user.created not received yet");
    return 0;
}

static void users_cells(const char *id, const char *email, const char *name, const char *state)
{
    cli_row r;
    cli_row_start(&r);
    cli_row_cell(&r, id, 34, 0);
    cli_row_cell(&r, email, 32, CLI_CELL_CUT);
    cli_row_cell(&r, name, 24, CLI_CELL_CUT);
    cli_row_cell(&r, state, 0, 0);
    cli_row_print(&r, stdout);
}

static int print_user_row(const event_user *u, void *ctx)
{
    print_ctx *c = ctx;
    c->count++;
    if (c->json) {
        print_json_line(cli_user_json(u));
        return 0;
    }
    char name[2 * EVENT_TEXT_MAX + 2];
    user_name(u, name, sizeof name);
    const char *state = u->deleted ? "deleted" : u->placeholder ? "placeholder" : u->banned ? "banned" : "active";
    users_cells(u->id, or_dash(u->email), or_dash(name), state);
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
    print_ctx c = {false, false, 0};
    int bad = parse_data_json(argc, argv, "users", &data, &c.json);
    if (bad != 0)
        return bad;
    store *st = NULL;
    int rc = cli_open_readonly(data, &st);
    if (rc != 0)
        return rc;
    if (!c.json)
        users_cells("ID", "EMAIL", "NAME", "STATE");
    char err[UTIL_ERRLEN];
    rc = store_list_users(st, print_user_row, &c, err, sizeof err);
    store_close(st);
    if (rc < 0) {
        fprintf(stderr, "veille users: %s\n", err);
        return EXIT_RUNTIME;
    }
    return 0;
}

/* ---- stats: alerts by severity and the outbox by sink ---- */

#define STATS_SINKS_MAX 64

typedef struct {
    uint64_t sink_id;
    char label[STORE_SINK_LABEL_MAX];
    uint64_t pending, dead;
} sink_counts;

typedef struct {
    uint64_t alerts;
    uint64_t by_severity[RULES_SEV_CRITICAL + 2]; /* the last: a severity this veille does not know */
    uint64_t by_state[STORE_STATE_FP + 1];       /* open, acked, resolved, fp */
    sink_counts sinks[STATS_SINKS_MAX];
    size_t n_sinks;
    uint64_t other_pending, other_dead; /* sinks beyond STATS_SINKS_MAX */
} alert_stats;

static int count_alert(const store_alert *a, int64_t state, void *ctx)
{
    alert_stats *s = ctx;
    s->alerts++;
    if (store_state_name(state) != NULL)
        s->by_state[state]++;
    int rank = alert_severity_rank(a->severity);
    s->by_severity[rank >= 0 && rank <= RULES_SEV_CRITICAL ? rank : RULES_SEV_CRITICAL + 1]++;
    return 0;
}

static sink_counts *sink_slot(alert_stats *s, uint64_t sink_id, const char *label)
{
    for (size_t i = 0; i < s->n_sinks; i++)
        if (s->sinks[i].sink_id == sink_id)
            return &s->sinks[i];
    if (s->n_sinks == STATS_SINKS_MAX)
        return NULL;
    sink_counts *c = &s->sinks[s->n_sinks++];
    c->sink_id = sink_id;
    snprintf(c->label, sizeof c->label, "%s", label[0] ? label : "(unnamed sink)");
    return c;
}

static int count_outbox_entry(const store_outbox_entry *e, const store_alert *a, void *ctx)
{
    (void)a;
    alert_stats *s = ctx;
    sink_counts *c = sink_slot(s, e->sink_id, e->sink);
    bool dead = e->dead_ms != 0;
    *(c == NULL ? (dead ? &s->other_dead : &s->other_pending) : (dead ? &c->dead : &c->pending)) += 1;
    return 0;
}

/* Every alert and outbox entry is read once: cheap next to the history, which
 * stats only counts. */
static int get_alert_stats(store *st, alert_stats *s, char *err, size_t errlen)
{
    store_sink_state *states = calloc(STATS_SINKS_MAX, sizeof *states);
    size_t n = 0;
    if (states == NULL)
        return util_err(err, errlen, "out of memory");
    int rc = store_sink_states(st, states, STATS_SINKS_MAX, &n, err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++)
        sink_slot(s, states[i].sink_id, states[i].sink); /* a sink with an empty queue is listed too */
    free(states);
    if (rc == 0)
        rc = store_list_alert_states(st, 0, count_alert, s, err, errlen);
    if (rc == 0)
        rc = store_outbox_list(st, true, count_outbox_entry, s, err, errlen);
    return rc;
}

static void print_alert_stats(const alert_stats *s)
{
    char line[256];
    size_t n = (size_t)snprintf(line, sizeof line, "%llu (", (unsigned long long)s->alerts);
    for (int r = RULES_SEV_CRITICAL; r >= RULES_SEV_INFO && n < sizeof line; r--)
        n += (size_t)snprintf(line + n, sizeof line - n, "%s%s %llu", r == RULES_SEV_CRITICAL ? "" : ", ",
                              rules_severity_name((rules_severity)r), (unsigned long long)s->by_severity[r]);
    if (s->by_severity[RULES_SEV_CRITICAL + 1] > 0 && n < sizeof line)
        n += (size_t)snprintf(line + n, sizeof line - n, ", other %llu",
                              (unsigned long long)s->by_severity[RULES_SEV_CRITICAL + 1]);
    if (n < sizeof line)
        snprintf(line + n, sizeof line - n, ")");
    print_field(STATS_LABEL_COLS, "alerts", line);
    n = 0;
    for (int k = STORE_STATE_OPEN; k <= STORE_STATE_FP && n < sizeof line; k++)
        n += (size_t)snprintf(line + n, sizeof line - n, "%s%llu %s", k ? ", " : "", (unsigned long long)s->by_state[k],
                              store_state_name(k));
    print_field(STATS_LABEL_COLS, "alert states", line);
    if (s->n_sinks == 0)
        print_field(STATS_LABEL_COLS, "outbox", "no remote sink has queued an alert");
    for (size_t i = 0; i <= s->n_sinks; i++) {
        const sink_counts *c = i < s->n_sinks ? &s->sinks[i] : NULL;
        if (c == NULL && s->other_pending + s->other_dead == 0)
            break;
        char v[STORE_SINK_LABEL_MAX + 64];
        snprintf(v, sizeof v, "%llu pending, %llu dead: %s", (unsigned long long)(c ? c->pending : s->other_pending),
                 (unsigned long long)(c ? c->dead : s->other_dead), c ? c->label : "(other sinks)");
        print_field(STATS_LABEL_COLS, "outbox", v);
    }
}

static void alert_stats_json(json_t *o, const alert_stats *s)
{
    json_t *sev = json_object(), *sinks = json_array();
    for (int r = RULES_SEV_CRITICAL; r >= RULES_SEV_INFO; r--)
        json_object_set_new(sev, rules_severity_name((rules_severity)r), json_integer((json_int_t)s->by_severity[r]));
    if (s->by_severity[RULES_SEV_CRITICAL + 1] > 0)
        json_object_set_new(sev, "other", json_integer((json_int_t)s->by_severity[RULES_SEV_CRITICAL + 1]));
    for (size_t i = 0; i < s->n_sinks; i++) {
        json_t *k = json_object();
        json_object_set_new(k, "sink", json_text(s->sinks[i].label));
        json_object_set_new(k, "pending", json_integer((json_int_t)s->sinks[i].pending));
        json_object_set_new(k, "dead", json_integer((json_int_t)s->sinks[i].dead));
        json_array_append_new(sinks, k);
    }
    json_object_set_new(o, "alerts", json_integer((json_int_t)s->alerts));
    json_object_set_new(o, "alerts_by_severity", sev);
    json_t *states = json_object();
    for (int k = STORE_STATE_OPEN; k <= STORE_STATE_FP; k++)
        json_object_set_new(states, store_state_name(k), json_integer((json_int_t)s->by_state[k]));
    json_object_set_new(o, "alerts_by_state", states);
    json_object_set_new(o, "outbox", sinks);
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
    alert_stats *as = calloc(1, sizeof *as);
    rc = as == NULL ? util_err(err, sizeof err, "out of memory") : store_get_stats(st, &s, err, sizeof err);
    if (rc == 0)
        rc = get_alert_stats(st, as, err, sizeof err);
    store_close(st);
    if (rc < 0) {
        free(as);
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
        alert_stats_json(o, as);
        print_json_line(o);
        free(as);
        return 0;
    }
    printf("%-18s %llu (%llu deleted)\n", "users", (unsigned long long)s.users, (unsigned long long)s.users_deleted);
    printf("%-18s %llu (user and ip keys)\n", "history entries", (unsigned long long)s.history_entries);
    printf("%-18s %llu\n", "delivery ids", (unsigned long long)s.deliveries);
    print_time_field(STATS_LABEL_COLS, "oldest event", s.oldest_event_ms);
    print_time_field(STATS_LABEL_COLS, "newest event", s.newest_event_ms);
    printf("%-18s %.1f MiB of %.0f MiB map\n", "store size", (double)s.file_bytes / 1048576.0,
           (double)s.map_bytes / 1048576.0);
    print_alert_stats(as);
    free(as);
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

/* For `alerts show` (triage.c): the line and field printers of `user`. */
void cli_print_json_line(json_t *o) { print_json_line(o); }
void cli_print_field(size_t width, const char *label, const char *value) { print_field(width, label, value); }
