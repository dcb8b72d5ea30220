/*
 * options.c: the options of `veille serve`, as one table, serve_options[]. Each row
 * drives the flag (--name value, --name=value), the config-file key (name = value),
 * its entry in `veille serve --help` and the prefix of its errors, so that these
 * four can never disagree. Adding or removing an option is adding or removing its
 * row (and its parser when no existing one fits), plus its line in README
 * "Configuration": tests/interop/cli.test.mjs compares that table with --help.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"
#include "serve/internal.h"
#include "util/log.h"
#include "util/util.h"

typedef struct serve_option serve_option;

/* Sets the option in o from its value. The message in err never names the option:
 * option_error adds that, once, with where it came from. */
typedef int serve_option_parser(http_options *o, const serve_option *opt, const char *value, char *err,
                                size_t errlen);

enum {
    OPT_SINK = 1u << 0,        /* applies to the sink of the --alert (alert line) before it */
    OPT_REPEATABLE = 1u << 1,  /* each use adds one (alert, header); of the others the last one wins */
    OPT_FLAG_ONLY = 1u << 2,   /* no config-file key: --config itself (a file does not read another) */
    OPT_CONFIG_ONLY = 1u << 3, /* no flag: for settings that have no business in `ps` output */
    OPT_BOOL = 1u << 4,        /* a switch: the bare flag means true; in a file, name = true|false */
};

struct serve_option {
    const char *name;           /* the flag without "--", and the config key */
    serve_option_parser *parse; /* NULL: --config, read by serve_options_parse before every flag */
    const char *placeholder;    /* the value in --help and in "needs a value" */
    const char *default_text;   /* as --help and README "Configuration" show it (a test compares them) */
    const char *help;
    unsigned flags;             /* OPT_* */
    size_t field;               /* generic parsers: the http_options member (FIELD_* below) */
    const char *min;            /* generic parsers: the least value, in the option's own syntax */
};

/* offsetof a member of http_options that must have the type the parser writes: a
 * row pointing a parser at a member of another type does not compile. */
#define FIELD_I64(m) _Generic(((http_options *)0)->m, int64_t: offsetof(http_options, m))
#define FIELD_U64(m) _Generic(((http_options *)0)->m, uint64_t: offsetof(http_options, m))
#define FIELD_SIZE(m) _Generic(((http_options *)0)->m, size_t: offsetof(http_options, m))
#define FIELD_BOOL(m) _Generic(((http_options *)0)->m, bool: offsetof(http_options, m))

static void *field_of(http_options *o, const serve_option *opt)
{
    return (char *)o + opt->field;
}

/* ---------------------------------------------------------------- parsers */

static int opt_listen(http_options *o, const serve_option *opt, const char *v, char *err, size_t errlen)
{
    (void)opt;
    /* HOST:PORT, [IPv6]:PORT, or :PORT */
    const char *colon = strrchr(v, ':');
    if (colon == NULL)
        return util_err(err, errlen, "'%s' is not HOST:PORT", v);
    const char *host = v;
    size_t hlen = (size_t)(colon - v);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    if (hlen >= sizeof o->listen_host)
        return util_err(err, errlen, "the host is too long");
    int64_t port;
    if (util_parse_i64(colon + 1, &port, NULL, 0) < 0 || port > 65535)
        return util_err(err, errlen, "'%s' is not a port number (0-65535)", colon + 1);
    if (hlen == 0) {
        snprintf(o->listen_host, sizeof o->listen_host, "0.0.0.0");
    } else {
        memcpy(o->listen_host, host, hlen);
        o->listen_host[hlen] = '\0';
    }
    o->listen_port = (int)port;
    return 0;
}

static int copy_path(char *dst, size_t dstlen, const char *v, const char *what, char *err, size_t errlen)
{
    if (v[0] == '\0' || strlen(v) >= dstlen)
        return util_err(err, errlen, "expected the path of %s", what);
    snprintf(dst, dstlen, "%s", v);
    return 0;
}

static int opt_data(http_options *o, const serve_option *opt, const char *v, char *err, size_t errlen)
{
    (void)opt;
    return copy_path(o->data_dir, sizeof o->data_dir, v, "a directory", err, errlen);
}

static int opt_rules(http_options *o, const serve_option *opt, const char *v, char *err, size_t errlen)
{
    (void)opt;
    if (copy_path(o->rules_path, sizeof o->rules_path, v, "a rule file, or none", err, errlen) < 0)
        return -1;
    o->rules_explicit = 1; /* a missing file is then an error, not a search for the default */
    return 0;
}

static int opt_ip_db(http_options *o, const serve_option *opt, const char *v, char *err, size_t errlen)
{
    (void)opt;
    return copy_path(o->ip_db_path, sizeof o->ip_db_path, v, "a location database file, or none", err, errlen);
}

static int opt_disable_rule(http_options *o, const serve_option *opt, const char *v, char *err, size_t errlen)
{
    (void)opt;
    if (o->disabled_count >= HTTP_MAX_DISABLED_RULES)
        return util_err(err, errlen, "at most %d rules", HTTP_MAX_DISABLED_RULES);
    if (*v == '\0' || strlen(v) > RULES_NAME_MAX)
        return util_err(err, errlen, "'%s' is not a rule name (1 to %d characters)", v, RULES_NAME_MAX);
    snprintf(o->disabled_rules[o->disabled_count++], sizeof o->disabled_rules[0], "%s", v);
    return 0;
}

static int opt_console(http_options *o, const serve_option *opt, const char *v, char *err, size_t errlen)
{
    (void)opt;
    return console_parse(&o->console, v, err, errlen);
}

static int opt_alert(http_options *o, const serve_option *opt, const char *v, char *err, size_t errlen)
{
    (void)opt;
    if (o->alert_count >= HTTP_MAX_ALERT_SPECS)
        return util_err(err, errlen, "at most %d sinks", HTTP_MAX_ALERT_SPECS);
    for (size_t i = 0; i < o->alert_count; i++)
        if (strcmp(o->alerts[i].spec, v) == 0)
            return util_err(err, errlen, "sink '%s' given twice", v);
    /* a sink that cannot work is refused now, never accepted and dropped */
    if (alert_sink_parse(v, &o->alerts[o->alert_count], err, errlen) < 0)
        return -1;
    o->alert_count++;
    return 0;
}

/* OPT_SINK rows: serve_option_apply has checked that there is a sink. */
static int opt_sink(http_options *o, const serve_option *opt, const char *v, char *err, size_t errlen)
{
    char sub[UTIL_ERRLEN];
    if (alert_sink_set_option(&o->alerts[o->alert_count - 1], opt->name, v, sub, sizeof sub) == 0)
        return 0;
    /* Trap: alert_sink_set_option's messages start with the option's name (alert.h
     * says so, and test-alert relies on it); ours never do, the caller names it. */
    size_t n = strlen(opt->name);
    const char *msg = sub;
    if (strncmp(msg, opt->name, n) == 0 && strncmp(msg + n, ": ", 2) == 0)
        msg += n + 2;
    return util_err(err, errlen, "%s", msg);
}

static int opt_duration(http_options *o, const serve_option *opt, const char *v, char *err, size_t errlen)
{
    int64_t ms, least;
    if (util_parse_duration(v, &ms, err, errlen) < 0)
        return -1;
    if (opt->min != NULL && util_parse_duration(opt->min, &least, NULL, 0) == 0 && ms < least)
        return util_err(err, errlen, "must be at least %s", opt->min);
    *(int64_t *)field_of(o, opt) = ms;
    return 0;
}

static int opt_count(http_options *o, const serve_option *opt, const char *v, char *err, size_t errlen)
{
    int64_t n;
    if (util_parse_i64(v, &n, NULL, 0) < 0 || n < 1)
        return util_err(err, errlen, "'%s' is not a positive whole number", v);
    *(uint64_t *)field_of(o, opt) = (uint64_t)n;
    return 0;
}

/* Bytes, or with a K/M/G suffix (powers of 1024). */
static int parse_size(const char *v, size_t *out, char *err, size_t errlen)
{
    char num[32];
    size_t n = strlen(v);
    if (n == 0 || n >= sizeof num)
        return util_err(err, errlen, "'%s' is not a size (e.g. 1048576, 512K, 1M, 8G)", v);
    memcpy(num, v, n + 1);
    uint64_t mult = 1;
    char last = (char)toupper((unsigned char)num[n - 1]);
    if (last == 'K' || last == 'M' || last == 'G') {
        mult = last == 'K' ? 1024 : last == 'M' ? 1024 * 1024 : 1024ull * 1024 * 1024;
        num[n - 1] = '\0';
    }
    int64_t x;
    if (util_parse_i64(num, &x, NULL, 0) < 0 || x <= 0 || (uint64_t)x > UINT64_MAX / mult / 2)
        return util_err(err, errlen, "'%s' is not a size (e.g. 1048576, 512K, 1M, 8G)", v);
    *out = (size_t)((uint64_t)x * mult);
    return 0;
}

static int opt_size(http_options *o, const serve_option *opt, const char *v, char *err, size_t errlen)
{
    size_t bytes = 0, least = 0;
    if (parse_size(v, &bytes, err, errlen) < 0)
        return -1;
    if (opt->min != NULL && parse_size(opt->min, &least, NULL, 0) == 0 && bytes < least)
        return util_err(err, errlen, "must be at least %s", opt->min);
    *(size_t *)field_of(o, opt) = bytes;
    return 0;
}

static int opt_bool(http_options *o, const serve_option *opt, const char *v, char *err, size_t errlen)
{
    bool *b = field_of(o, opt);
    if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
        return util_err(err, errlen, "'%s' is not true or false", v);
    *b = strcmp(v, "true") == 0;
    return 0;
}

static int opt_log_level(http_options *o, const serve_option *opt, const char *v, char *err, size_t errlen)
{
    (void)o;
    (void)opt;
    log_level lvl;
    if (log_parse_level(v, &lvl) < 0)
        return util_err(err, errlen, "'%s' is not one of error, warn, info, debug", v);
    log_set_level(lvl);
    return 0;
}

/* ---------------------------------------------------------------- the table */

/* In --help's order; the OPT_SINK rows follow --alert, under which --help groups
 * them. A linear search: 17 rows, read once at start-up, and the order is the
 * help's (a bsearch would need a second, sorted table to keep in step).
 *
 * Adding an option is one row, e.g. a size in http_options.max_backlog:
 *   {"max-backlog", opt_size, "BYTES", "64M", "what it bounds", 0, FIELD_SIZE(max_backlog), "1M"},
 * and removing one is deleting its row; then the same line in
 * README "Configuration", whose flags and defaults a test compares with --help. */
static const serve_option serve_options[] = {
    {"listen", opt_listen, "HOST:PORT", "127.0.0.1:8080",
     "address to listen on ([::1]:PORT for IPv6; port 0 picks a free port and logs it)", 0, 0, NULL},
    {"data", opt_data, "DIR", "./veille-data", "the LMDB store, created (mode 0700) if missing", 0, 0, NULL},
    {"rules", opt_rules, "FILE|none", "the installed default.rules",
     "rule file run on every stored event; one with errors, or a missing one, stops start-up; none runs without "
     "detection; SIGHUP reloads it",
     0, 0, NULL},
    {"ip-db", opt_ip_db, "FILE|none", IPINTEL_DEFAULT_DB,
     "the location database for asn, as_name and ip.* (optional: without it those fields are empty; "
     "`location update` refreshes it, then restart or SIGHUP)",
     0, 0, NULL},
    {"disable-rule", opt_disable_rule, "NAME", "none",
     "do not run this rule of the rule file (as `enabled false` in it), repeatable; an unknown name stops start-up",
     OPT_REPEATABLE, 0, NULL},
    {"console", opt_console, "HOST:PORT", "off",
     "serve the web console there (PORT alone: 127.0.0.1), never on --listen; needs VEILLE_CONSOLE_TOKEN", 0, 0,
     NULL},
    {"alert", opt_alert, "SPEC", "none",
     "where alerts go, up to 16 sinks; SPEC is one of the forms below. Alerts are stored either way "
     "(veille alerts)",
     OPT_REPEATABLE, 0, NULL},
    {"min-severity", opt_sink, "LEVEL", "info",
     "send only alerts of this severity or higher: info < low < medium < high < critical", OPT_SINK, 0, NULL},
    {"facility", opt_sink, "NAME", "authpriv",
     "syslog sinks: kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, local0..local7",
     OPT_SINK, 0, NULL},
    {"header", opt_sink, "'Name: value'", "none",
     "webhook sinks: an extra request header (up to 8), e.g. an auth token; put tokens in a --config file rather "
     "than on the command line",
     OPT_SINK | OPT_REPEATABLE, 0, NULL},
    {"ca", opt_sink, "FILE", "system CAs", "https webhook sinks: the PEM CA bundle to trust instead of the system's",
     OPT_SINK, 0, NULL},
    {"format", opt_sink, "NAME", "json",
     "json, ocsf (any sink), cef (stdout, file, syslog sinks), slack, teams (webhook sinks)", OPT_SINK, 0, NULL},
    {"template", opt_sink, "FILE", "none",
     "instead of --format: the sink's message from a template ({{ field }} placeholders, JSON-escaped unless "
     "| url or | html; see README)",
     OPT_SINK, 0, NULL},
    {"alert-retry-for", opt_duration, "DUR", "72h",
     "a remote sink gives an alert up when it could not deliver it for this long; at most --retention", 0,
     FIELD_I64(alert_retry_for_ms), "1s"},
    {"alert-timeout", opt_duration, "DUR", "10s", "one delivery attempt (connect, TLS, request, answer)", 0,
     FIELD_I64(alert_timeout_ms), "1s"},
    {"outbox-max", opt_count, "N", "100000",
     "alerts waiting per remote sink; past it new alerts are stored but not queued for that sink", 0,
     FIELD_U64(outbox_max), NULL},
    {"incident-window", opt_duration, "DUR", "1h",
     "alerts sharing a user or an IP within this long belong to one incident (veille incidents); 0 makes every "
     "alert its own incident, so sinks get every alert",
     0, FIELD_I64(incident_window_ms), NULL},
    {"incident-update-every", opt_duration, "DUR", "5m",
     "sinks get an incident's first alert, then at most one incident update this often (event time) while it grows",
     0, FIELD_I64(incident_update_ms), "1s"},
    {"max-body", opt_size, "BYTES", "1M", "larger bodies get 413", 0, FIELD_SIZE(max_body), NULL},
    {"retention", opt_duration, "DUR", "90d", "history older than this is pruned in the background", 0,
     FIELD_I64(retention_ms), "1m"},
    {"risk-history", opt_duration, "DUR", "180d", "the history of a user risk() compares a sign-in with", 0,
     FIELD_I64(risk_history_ms), "1d"},
    {"risk-min-history", opt_count, "N", "5", "sign-ins a user needs within --risk-history before risk() has a value",
     0, FIELD_U64(risk_min_history), NULL},
    {"map-size", opt_size, "BYTES", "8G", "LMDB map size: the most the store may grow to (sparse on disk)", 0,
     FIELD_SIZE(map_size), "1M"},
    {"max-backlog", opt_size, "BYTES", "64M",
     "log bytes acknowledged but not yet applied to the store past which deliveries get 503 with Retry-After "
     "(so does a backlog older than 30 s)",
     0, FIELD_SIZE(max_backlog), "1M"},
    {"init", opt_bool, "", "off",
     "start a new, empty store on a zero-length DIR/data.mdb, which is otherwise refused as a store whose "
     "contents were lost",
     OPT_BOOL, FIELD_BOOL(init_store), NULL},
    {"log-level", opt_log_level, "LEVEL", "info",
     "error, warn, info (rejections, duplicates, ignored deliveries, lifecycle), debug (every stored delivery too)",
     0, 0, NULL},
    {"config", NULL, "FILE", "none",
     "the same settings from a file: one 'name = value' per line, # comments, a sink's options after its alert "
     "line; flags override it",
     OPT_FLAG_ONLY, 0, NULL},
};

#define OPTION_COUNT (sizeof serve_options / sizeof serve_options[0])

/* The --alert SPEC forms, for --help (alert_sink_parse is the judge). */
static const struct {
    const char *form, *what;
} alert_spec_forms[] = {
    {"stdout, file:PATH", "JSON lines, written and fsync'd before the answer"},
    {"syslog, syslog:PATH", "local syslog socket (/dev/log by default)"},
    {"syslog://HOST:PORT", "RFC 5424 over UDP (fire-and-forget)"},
    {"syslog+tcp://HOST:PORT", "RFC 5424 over TCP, octet-counted frames"},
    {"webhook:http(s)://HOST/PATH", "Standard Webhooks POST signed with VEILLE_ALERT_WEBHOOK_SECRET"},
};

static const serve_option *option_find(const char *name, size_t len)
{
    for (size_t i = 0; i < OPTION_COUNT; i++)
        if (strlen(serve_options[i].name) == len && memcmp(serve_options[i].name, name, len) == 0)
            return &serve_options[i];
    return NULL;
}

static bool opens_sink(const serve_option *opt)
{
    return opt->parse == opt_alert;
}

/* The message (never naming the option) of setting opt to value. */
static int option_apply(http_options *o, const serve_option *opt, const char *value, char *err, size_t errlen)
{
    if ((opt->flags & OPT_SINK) && o->alert_count == 0)
        return util_err(err, errlen, "applies to the sink before it: give alert (--alert SPEC) first");
    return opt->parse(o, opt, value, err, errlen);
}

/* ---------------------------------------------------------------- config file */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* "colour: unknown setting (listen, data, ...)": every config key, from the table. */
static int unknown_setting(const char *key, char *err, size_t errlen)
{
    char names[512];
    size_t used = 0;
    names[0] = '\0';
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        if (serve_options[i].flags & OPT_FLAG_ONLY)
            continue;
        int w = snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", serve_options[i].name);
        if (w < 0 || (size_t)w >= sizeof names - used)
            break; /* the list is cut; the message stays whole */
        used += (size_t)w;
    }
    return util_err(err, errlen, "%s: unknown setting (%s)", key, names);
}

/* One "name = value" line (comment and spaces already cut) into o; the message is
 * "name: ..." (the caller adds FILE:LINE). */
static int config_line(http_options *o, char *s, char *err, size_t errlen)
{
    char *eq = strchr(s, '=');
    if (eq == NULL)
        return util_err(err, errlen, "expected 'name = value'");
    *eq = '\0';
    char *key = trim(s), *value = trim(eq + 1);
    size_t vl = strlen(value);
    if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
        value[vl - 1] = '\0';
        value++;
    }
    const serve_option *opt = option_find(key, strlen(key));
    if (opt == NULL)
        return unknown_setting(key, err, errlen);
    if (opt->flags & OPT_FLAG_ONLY)
        return util_err(err, errlen, "%s: only as a flag (--%s %s), not in a config file", key, key, opt->placeholder);
    char sub[UTIL_ERRLEN];
    if (option_apply(o, opt, value, sub, sizeof sub) < 0)
        return util_err(err, errlen, "%s: %s", key, sub);
    return 0;
}

static int config_load(const char *path, http_options *o, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return util_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    char line[4096], sub[SERVE_ERRLEN];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            rc = util_err(err, errlen, "%s:%d: line too long", path, lineno);
            break;
        }
        /* Trap: '#' starts a comment anywhere, even inside a value (a header's). */
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        char *s = trim(line);
        if (*s == '\0')
            continue;
        if (config_line(o, s, sub, sizeof sub) < 0) {
            rc = util_err(err, errlen, "%s:%d: %s", path, lineno, sub);
            break;
        }
    }
    if (rc == 0 && ferror(f))
        rc = util_err(err, errlen, "%s: read error", path);
    fclose(f);
    return rc;
}

/* ---------------------------------------------------------------- flags */

/* argv[*i] as an option and its value, *i moved past what it used. */
static int flag_next(int argc, char **argv, int *i, const serve_option **opt, const char **value, char *err,
                     size_t errlen)
{
    const char *a = argv[*i];
    const char *name = a + 2, *eq = strchr(name, '=');
    *opt = NULL;
    if (strncmp(a, "--", 2) == 0)
        *opt = option_find(name, eq != NULL ? (size_t)(eq - name) : strlen(name));
    if (*opt == NULL) {
        util_err(err, errlen, "unknown argument '%s'", a);
        return SERVE_ERR_UNKNOWN;
    }
    if ((*opt)->flags & OPT_CONFIG_ONLY) {
        util_err(err, errlen, "--%s: only in a --config file", (*opt)->name);
        return SERVE_ERR_BAD;
    }
    if (eq != NULL) {
        *value = eq + 1;
        return 0;
    }
    if ((*opt)->flags & OPT_BOOL) {
        *value = "true";
        return 0;
    }
    if (*i + 1 >= argc) {
        util_err(err, errlen, "--%s: needs a value (%s)", (*opt)->name, (*opt)->placeholder);
        return SERVE_ERR_BAD;
    }
    *value = argv[++*i];
    return 0;
}

int serve_options_parse(int argc, char **argv, http_options *o, char *err, size_t errlen)
{
    const serve_option *opt;
    const char *v;
    int rc;
    /* Every --config first, whatever its position, so that flags override the file.
     * This pass also refuses unknown arguments and missing values, so the second
     * meets none. */
    for (int i = 0; i < argc; i++) {
        if ((rc = flag_next(argc, argv, &i, &opt, &v, err, errlen)) < 0)
            return rc;
        if (opt->parse == NULL && config_load(v, o, err, errlen) < 0)
            return SERVE_ERR_BAD;
    }
    char sub[UTIL_ERRLEN];
    for (int i = 0; i < argc; i++) {
        if ((rc = flag_next(argc, argv, &i, &opt, &v, err, errlen)) < 0)
            return rc;
        if (opt->parse != NULL && option_apply(o, opt, v, sub, sizeof sub) < 0) {
            util_err(err, errlen, "--%s: %s", opt->name, sub);
            return SERVE_ERR_BAD;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- --help */

#define USAGE_WIDTH 100
#define USAGE_HELP_COLUMN 36

typedef struct {
    char *buf;
    size_t len, used;
    size_t col; /* of the next byte on its line */
    bool cut;
} usage_text;

static void usage_put(usage_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void usage_put(usage_text *t, const char *fmt, ...)
{
    if (t->cut)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(t->buf + t->used, t->len - t->used, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= t->len - t->used) {
        t->cut = true;
        return;
    }
    for (const char *p = t->buf + t->used; *p != '\0'; p++)
        t->col = *p == '\n' ? 0 : t->col + 1;
    t->used += (size_t)w;
}

/* Spaces up to column col, or a new line indented to it when too close or past. */
static void usage_to_column(usage_text *t, size_t col)
{
    if (t->col + 2 > col) /* two spaces at least between a flag and its help */
        usage_put(t, "\n");
    usage_put(t, "%*s", (int)(col - t->col), "");
}

/* word (n bytes) on the current line, or on a new one indented to indent when it
 * would pass USAGE_WIDTH. */
static void usage_word(usage_text *t, const char *word, size_t n, size_t indent)
{
    if (t->col > indent && t->col + 1 + n > USAGE_WIDTH)
        usage_put(t, "\n%*s", (int)indent, "");
    else if (t->col > indent)
        usage_put(t, " ");
    usage_put(t, "%.*s", (int)n, word);
}

/* text, wrapped at spaces, continuing at column indent. */
static void usage_words(usage_text *t, const char *text, size_t indent)
{
    while (*text != '\0') {
        while (*text == ' ')
            text++;
        size_t n = strcspn(text, " ");
        if (n > 0)
            usage_word(t, text, n, indent);
        text += n;
    }
}

/* "  --name VALUE   help (repeatable) (default: X)"; a config-only option shows
 * as "name = VALUE". */
static void usage_option(usage_text *t, const serve_option *opt, size_t indent)
{
    char head[128], tail[160];
    if (opt->flags & OPT_CONFIG_ONLY)
        snprintf(head, sizeof head, "%*s%s = %s", (int)indent, "", opt->name, opt->placeholder);
    else
        snprintf(head, sizeof head, "%*s--%s%s%s", (int)indent, "", opt->name, opt->placeholder[0] ? " " : "",
                 opt->placeholder);
    usage_put(t, "%s", head);
    usage_to_column(t, USAGE_HELP_COLUMN);
    usage_words(t, opt->help, USAGE_HELP_COLUMN);
    if (opt->flags & OPT_REPEATABLE)
        usage_words(t, "(repeatable)", USAGE_HELP_COLUMN);
    /* one word, so that a default is never split over two lines */
    int w = snprintf(tail, sizeof tail, "(default: %s)", opt->default_text);
    usage_word(t, tail, w > 0 && (size_t)w < sizeof tail ? (size_t)w : strlen(tail), USAGE_HELP_COLUMN);
    usage_put(t, "\n");
}

int serve_usage_format(char *buf, size_t len)
{
    usage_text t = {buf, len, 0, 0, false};
    char word[128];
    usage_put(&t, "usage: veille serve ");
    const size_t synopsis_indent = t.col;
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const serve_option *opt = &serve_options[i];
        if (opt->flags & (OPT_SINK | OPT_CONFIG_ONLY))
            continue;
        snprintf(word, sizeof word, "[--%s%s%s%s]%s", opt->name, opt->placeholder[0] ? " " : "", opt->placeholder,
                 opens_sink(opt) ? " [SINK OPTION]..." : "", opt->flags & OPT_REPEATABLE ? "..." : "");
        usage_word(&t, word, strlen(word), synopsis_indent);
    }
    usage_put(&t, "\nEach option also as --name=value, and in a --config file as 'name = value'.\n\n");
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const serve_option *opt = &serve_options[i];
        if (opt->flags & OPT_SINK)
            continue; /* under their --alert */
        usage_option(&t, opt, 2);
        if (!opens_sink(opt))
            continue;
        for (size_t k = 0; k < sizeof alert_spec_forms / sizeof alert_spec_forms[0]; k++) {
            usage_put(&t, "      %s", alert_spec_forms[k].form);
            usage_to_column(&t, USAGE_HELP_COLUMN);
            usage_words(&t, alert_spec_forms[k].what, USAGE_HELP_COLUMN);
            usage_put(&t, "\n");
        }
        usage_put(&t, "    SINK OPTIONS, for the --alert before them (in a config file, its alert line):\n");
        for (size_t k = 0; k < OPTION_COUNT; k++)
            if (serve_options[k].flags & OPT_SINK)
                usage_option(&t, &serve_options[k], 6);
        usage_put(&t, "    Remote sinks deliver from a durable outbox with retries (see veille outbox).\n");
    }
    usage_put(&t, "\nDurations: 250ms, 30s, 10m, 2h, 90d, 1w. Sizes: bytes, or with K, M, G.\n"
                  "Signing secrets come from VEILLE_WEBHOOK_SECRET (or CLERK_WEBHOOK_SIGNING_SECRET):\n"
                  "one or several whsec_... values separated by spaces or commas.\n"
                  "SIGHUP reloads the --rules file; a file with errors is refused and the rules stay.\n"
                  "Without --rules: the installed rules/default.rules (" VEILLE_SHARE_DIR "), else the one next "
                  "to\nthe binary or in its parent directory; --rules none runs without detection.\n");
    return t.cut ? -1 : 0;
}
