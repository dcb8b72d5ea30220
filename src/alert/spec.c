/*
 * spec.c: `--alert SPEC` and the per-sink options that follow it, parsed into
 * an alert_sink_config. Everything a sink needs is checked here, at start-up,
 * so that a typo is refused before the first alert rather than when it fires.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "alert/internal.h"
#include "util/util.h"

#define DEFAULT_FACILITY 10 /* authpriv: security messages, readable by root only */
#define DEFAULT_LOCAL_SOCKET "/dev/log"

static const char *const severities[] = {"info", "low", "medium", "high", "critical"};

int alert_severity_rank(const char *severity)
{
    for (int i = 0; i < (int)(sizeof severities / sizeof severities[0]); i++)
        if (strcmp(severity, severities[i]) == 0)
            return i;
    return -1;
}

static const struct {
    const char *name;
    int code;
} facilities[] = {
    {"kern", 0},    {"user", 1},    {"mail", 2},    {"daemon", 3},  {"auth", 4},    {"syslog", 5},
    {"lpr", 6},     {"news", 7},    {"uucp", 8},    {"cron", 9},    {"authpriv", 10}, {"ftp", 11},
    {"local0", 16}, {"local1", 17}, {"local2", 18}, {"local3", 19}, {"local4", 20}, {"local5", 21},
    {"local6", 22}, {"local7", 23},
};

/* HOST:PORT or [V6]:PORT; port may be left out when default_port > 0. */
static int parse_host_port(const char *s, size_t n, int default_port, alert_sink_config *c, char *err,
                           size_t errlen)
{
    const char *end = s + n, *host = s, *host_end, *colon = NULL;
    if (n > 0 && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (rb == NULL)
            return util_err(err, errlen, "'%.*s': an IPv6 address needs its closing ']'", (int)n, s);
        host = s + 1;
        host_end = rb;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return util_err(err, errlen, "'%.*s': expected ':PORT' after ']'", (int)n, s);
            colon = rb + 1;
        }
    } else {
        colon = memchr(s, ':', n);
        host_end = colon != NULL ? colon : end;
    }
    size_t hl = (size_t)(host_end - host);
    if (hl == 0)
        return util_err(err, errlen, "'%.*s': no host", (int)n, s);
    if (hl >= sizeof c->host)
        return util_err(err, errlen, "host name longer than %zu bytes", sizeof c->host - 1);
    for (size_t i = 0; i < hl; i++)
        if (!isalnum((unsigned char)host[i]) && strchr(".-_:", host[i]) == NULL)
            return util_err(err, errlen, "'%.*s' is not a host name or address", (int)hl, host);
    memcpy(c->host, host, hl);
    c->host[hl] = '\0';
    if (colon == NULL) {
        if (default_port <= 0)
            return util_err(err, errlen, "'%.*s': give the port, HOST:PORT", (int)n, s);
        c->port = default_port;
        return 0;
    }
    char num[8];
    size_t pl = (size_t)(end - colon - 1);
    if (pl == 0 || pl >= sizeof num)
        return util_err(err, errlen, "'%.*s': the port must be 1-65535", (int)n, s);
    memcpy(num, colon + 1, pl);
    num[pl] = '\0';
    int64_t port;
    if (util_parse_i64(num, &port, NULL, 0) < 0 || port < 1 || port > 65535)
        return util_err(err, errlen, "'%s' is not a port (1-65535)", num);
    c->port = (int)port;
    return 0;
}

static int parse_webhook(const char *url, alert_sink_config *c, char *err, size_t errlen)
{
    const char *rest;
    if (strncmp(url, "https://", 8) == 0) {
        c->tls = true;
        rest = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        rest = url + 7;
    } else {
        return util_err(err, errlen, "webhook: needs an http:// or https:// URL, e.g. "
                                     "webhook:https://soar.example.com/hooks/veille");
    }
    size_t auth_len = strcspn(rest, "/?#");
    if (memchr(rest, '@', auth_len) != NULL)
        return util_err(err, errlen, "webhook: credentials in the URL would show in logs and metrics; "
                                     "give them as a header instead (--header 'Authorization: ...')");
    if (strchr(url, '#') != NULL)
        return util_err(err, errlen, "webhook: a URL fragment ('#...') is never sent; remove it");
    int ret = parse_host_port(rest, auth_len, c->tls ? 443 : 80, c, err, errlen);
    if (ret < 0)
        return ret;
    const char *target = rest + auth_len;
    for (const char *p = target; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return util_err(err, errlen, "webhook: the URL holds a space or a non-ASCII byte; percent-encode it");
    snprintf(c->target, sizeof c->target, "%s%s", target[0] == '/' ? "" : "/", target);
    return 0;
}

/* The spec as operators see it in metrics and logs: without the query string,
 * which often carries a token. */
static void make_label(alert_sink_config *c)
{
    size_t n = strcspn(c->spec, "?");
    if (n >= sizeof c->label)
        n = sizeof c->label - 1;
    memcpy(c->label, c->spec, n);
    c->label[n] = '\0';
}

int alert_sink_parse(const char *spec, alert_sink_config *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->min_severity = ALERT_SEVERITY_ANY;
    c->facility = DEFAULT_FACILITY;
    static const char kinds[] = "stdout, file:PATH, syslog, syslog:PATH, syslog://HOST:PORT, "
                                "syslog+tcp://HOST:PORT, webhook:URL";
    if (spec == NULL || spec[0] == '\0')
        return util_err(err, errlen, "empty sink (use %s)", kinds);
    if (strlen(spec) >= sizeof c->spec)
        return util_err(err, errlen, "sink spec longer than %zu bytes", sizeof c->spec - 1);
    snprintf(c->spec, sizeof c->spec, "%s", spec);
    int ret = 0;
    if (strcmp(spec, "stdout") == 0) {
        c->kind = ALERT_SINK_STDOUT;
    } else if (strncmp(spec, "file:", 5) == 0) {
        c->kind = ALERT_SINK_FILE;
        if (spec[5] == '\0')
            return util_err(err, errlen, "file: needs a path, e.g. file:/var/log/veille/alerts.ndjson");
        snprintf(c->path, sizeof c->path, "%s", spec + 5);
    } else if (strncmp(spec, "syslog://", 9) == 0 || strncmp(spec, "syslog+tcp://", 13) == 0) {
        bool tcp = spec[6] == '+';
        c->kind = tcp ? ALERT_SINK_SYSLOG_TCP : ALERT_SINK_SYSLOG_UDP;
        const char *hp = spec + (tcp ? 13 : 9);
        ret = parse_host_port(hp, strlen(hp), 514, c, err, errlen);
    } else if (strcmp(spec, "syslog") == 0 || strncmp(spec, "syslog:", 7) == 0) {
        c->kind = ALERT_SINK_SYSLOG_LOCAL;
        const char *path = spec[6] == ':' ? spec + 7 : DEFAULT_LOCAL_SOCKET;
        if (path[0] != '/')
            return util_err(err, errlen, "'%s': a local syslog socket is an absolute path, e.g. syslog:/dev/log "
                                         "(remote: syslog://HOST:PORT or syslog+tcp://HOST:PORT)", spec);
        if (strlen(path) >= 108) /* sun_path */
            return util_err(err, errlen, "'%s': socket path longer than 107 bytes", spec);
        snprintf(c->path, sizeof c->path, "%s", path);
    } else if (strncmp(spec, "webhook:", 8) == 0) {
        c->kind = ALERT_SINK_WEBHOOK;
        ret = parse_webhook(spec + 8, c, err, errlen);
    } else {
        return util_err(err, errlen, "unknown sink '%s' (available: %s)", spec, kinds);
    }
    if (ret < 0)
        return ret;
    make_label(c);
    c->id = util_digest64(c->spec, strlen(c->spec));
    return 0;
}

bool alert_sink_is_remote(const alert_sink_config *c)
{
    return c->kind != ALERT_SINK_STDOUT && c->kind != ALERT_SINK_FILE;
}

bool alert_sink_wants(const alert_sink_config *c, const store_alert *a)
{
    if (a->incident_quiet)
        return false; /* its incident's first alert was sent; updates follow */
    int rank = alert_severity_rank(a->severity);
    /* a severity this version does not know is sent rather than dropped */
    return rank < 0 || rank >= c->min_severity;
}

static bool is_syslog(const alert_sink_config *c)
{
    return c->kind == ALERT_SINK_SYSLOG_LOCAL || c->kind == ALERT_SINK_SYSLOG_UDP || c->kind == ALERT_SINK_SYSLOG_TCP;
}

/* Headers veille sets itself: overriding them would break the request or its signature. */
static bool header_reserved(const char *name, size_t n)
{
    static const char *const reserved[] = {"host", "content-type", "content-length", "connection",
                                           "transfer-encoding", "expect", "user-agent", "webhook-id",
                                           "webhook-timestamp", "webhook-signature"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strlen(reserved[i]) == n && strncasecmp(reserved[i], name, n) == 0)
            return true;
    return false;
}

static int set_header(alert_sink_config *c, const char *value, char *err, size_t errlen)
{
    const char *colon = strchr(value, ':');
    if (colon == NULL || colon == value)
        return util_err(err, errlen, "header: expected 'Name: value', got '%s'", value);
    size_t nl = (size_t)(colon - value);
    for (size_t i = 0; i < nl; i++)
        if (!isalnum((unsigned char)value[i]) && strchr("!#$%&'*+-.^_`|~", value[i]) == NULL)
            return util_err(err, errlen, "header: '%.*s' is not a header name", (int)nl, value);
    if (header_reserved(value, nl))
        return util_err(err, errlen, "header: veille sets %.*s itself", (int)nl, value);
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    for (const char *p = v; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
            return util_err(err, errlen, "header %.*s: the value holds a control character", (int)nl, value);
    if (c->n_headers >= ALERT_HEADERS_MAX)
        return util_err(err, errlen, "header: at most %d per sink", ALERT_HEADERS_MAX);
    if (nl + 2 + strlen(v) >= ALERT_HEADER_MAX)
        return util_err(err, errlen, "header %.*s: longer than %d bytes", (int)nl, value, ALERT_HEADER_MAX - 1);
    snprintf(c->headers[c->n_headers++], ALERT_HEADER_MAX, "%.*s: %s", (int)nl, value, v);
    return 0;
}

const char *const alert_sink_options[] = {"min-severity", "facility", "header", "ca", "format", "template", NULL};

bool alert_sink_is_option(const char *name)
{
    for (size_t i = 0; alert_sink_options[i] != NULL; i++)
        if (strcmp(name, alert_sink_options[i]) == 0)
            return true;
    return false;
}

/* Which formats each kind of sink can carry: CEF is a line for syslog and
 * files; the chat formats are JSON bodies for a chat's incoming webhook. */
static bool format_fits(alert_format f, alert_sink_kind k)
{
    switch (f) {
    case ALERT_FORMAT_CEF: return k != ALERT_SINK_WEBHOOK;
    case ALERT_FORMAT_SLACK:
    case ALERT_FORMAT_TEAMS: return k == ALERT_SINK_WEBHOOK;
    default: return true;
    }
}

static int set_format(alert_sink_config *c, const char *name, const char *value, char *err, size_t errlen)
{
    if (c->format_given)
        return util_err(err, errlen, "%s: this sink has a format already (--format %s%s%s): one per sink", name,
                        alert_format_name(c->format), c->template_path[0] ? " from " : "", c->template_path);
    if (strcmp(name, "template") == 0) {
        int rc = alert_template_load(c, value, err, errlen);
        if (rc < 0)
            return rc;
        c->format = ALERT_FORMAT_TEMPLATE;
        c->format_given = true;
        return 0;
    }
    /* "template" is not a --format name: the file says what the template is */
    for (alert_format f = ALERT_FORMAT_JSON; f < ALERT_FORMAT_TEMPLATE; f++) {
        if (strcmp(value, alert_format_name(f)) != 0)
            continue;
        if (!format_fits(f, c->kind))
            return util_err(err, errlen, "format: %s is for %s sinks, not %s", value,
                            f == ALERT_FORMAT_CEF ? "stdout, file and syslog" : "webhook", c->label);
        c->format = f;
        c->format_given = true;
        return 0;
    }
    return util_err(err, errlen, "format: '%s' is not one of json, ocsf, cef, slack, teams (or give --template FILE)",
                    value);
}

int alert_sink_set_option(alert_sink_config *c, const char *name, const char *value, char *err, size_t errlen)
{
    if (strcmp(name, "format") == 0 || strcmp(name, "template") == 0)
        return set_format(c, name, value, err, errlen);
    if (strcmp(name, "min-severity") == 0) {
        int r = alert_severity_rank(value);
        if (r < 0)
            return util_err(err, errlen, "min-severity: '%s' is not one of info, low, medium, high, critical", value);
        c->min_severity = r;
        return 0;
    }
    if (strcmp(name, "facility") == 0) {
        if (!is_syslog(c))
            return util_err(err, errlen, "facility: only for syslog sinks, not %s", c->label);
        for (size_t i = 0; i < sizeof facilities / sizeof facilities[0]; i++)
            if (strcmp(value, facilities[i].name) == 0) {
                c->facility = facilities[i].code;
                return 0;
            }
        return util_err(err, errlen, "facility: '%s' is not a syslog facility (auth, authpriv, daemon, user, "
                                     "local0..local7, ...)", value);
    }
    if (strcmp(name, "header") == 0) {
        if (c->kind != ALERT_SINK_WEBHOOK)
            return util_err(err, errlen, "header: only for webhook sinks, not %s", c->label);
        return set_header(c, value, err, errlen);
    }
    if (strcmp(name, "ca") == 0) {
        if (c->kind != ALERT_SINK_WEBHOOK || !c->tls)
            return util_err(err, errlen, "ca: only for https webhook sinks, not %s", c->label);
        if (value[0] == '\0' || strlen(value) >= sizeof c->ca_file)
            return util_err(err, errlen, "ca: expected the path of a PEM file");
        snprintf(c->ca_file, sizeof c->ca_file, "%s", value);
        return 0;
    }
    return util_err(err, errlen, "%s: unknown sink option", name);
}
