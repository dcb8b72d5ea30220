/* test_alert.c: the alert sinks' settings (--alert SPEC and its options), the
 * RFC 5424 and local syslog lines and the signed webhook request, each checked
 * by parsing the bytes produced rather than by comparing with a copy of them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "alert/alert.h"
#include "check.h"
#include "ingest/ingest.h"
#include "util/util.h"

static char err[UTIL_ERRLEN];

/* ---- helpers ---- */

static bool parse(const char *spec, alert_sink_config *c)
{
    err[0] = '\0';
    if (alert_sink_parse(spec, c, err, sizeof err) < 0) {
        printf("parse '%s': %s\n", spec != NULL ? spec : "(null)", err);
        return false;
    }
    return true;
}

/* The spec is refused and the message holds `want`. */
static bool refused(const char *spec, const char *want)
{
    alert_sink_config c;
    err[0] = '\0';
    if (alert_sink_parse(spec, &c, err, sizeof err) == 0) {
        printf("parse '%s' was accepted\n", spec != NULL ? spec : "(null)");
        return false;
    }
    if (strstr(err, want) == NULL) {
        printf("parse '%s': message '%s' lacks '%s'\n", spec != NULL ? spec : "(null)", err, want);
        return false;
    }
    return true;
}

static bool opt(alert_sink_config *c, const char *name, const char *value)
{
    err[0] = '\0';
    if (alert_sink_set_option(c, name, value, err, sizeof err) < 0) {
        printf("option %s=%s: %s\n", name, value, err);
        return false;
    }
    return true;
}

/* The option is refused, the message holds `want` (case-insensitive). */
static bool opt_refused(alert_sink_config *c, const char *name, const char *value, const char *want)
{
    err[0] = '\0';
    if (alert_sink_set_option(c, name, value, err, sizeof err) == 0) {
        printf("option %s=%s was accepted\n", name, value);
        return false;
    }
    if (strcasestr(err, want) == NULL) {
        printf("option %s=%s: message '%s' lacks '%s'\n", name, value, err, want);
        return false;
    }
    return true;
}

/* 1700000000123 ms is 2023-11-14T22:13:20.123Z. */
#define RAISED_MS 1700000000123LL

static void make_alert(store_alert *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->id, sizeof a->id, "alr_0123456789abcdef01234567");
    snprintf(a->rule, sizeof a->rule, "new_country");
    snprintf(a->severity, sizeof a->severity, "high");
    snprintf(a->key, sizeof a->key, "user:user_2abc");
    snprintf(a->user_id, sizeof a->user_id, "user_2abc");
    snprintf(a->ip, sizeof a->ip, "203.0.113.7");
    snprintf(a->session_id, sizeof a->session_id, "sess_9xyz");
    snprintf(a->event_id, sizeof a->event_id, "msg_1");
    a->event_type = EVENT_SESSION_CREATED;
    a->at_ms = 1699999999000LL;
    a->raised_ms = RAISED_MS;
    snprintf(a->summary, sizeof a->summary, "sign-in from a new country (FR)");
    a->n_evidence = 2;
    snprintf(a->evidence[0].name, sizeof a->evidence[0].name, "count(session.created, 10m)");
    a->evidence[0].kind = STORE_EVIDENCE_NUMBER;
    a->evidence[0].num = 7;
    snprintf(a->evidence[1].name, sizeof a->evidence[1].name, "country");
    a->evidence[1].kind = STORE_EVIDENCE_STRING;
    snprintf(a->evidence[1].str, sizeof a->evidence[1].str, "FR");
    a->n_tags = 1;
    snprintf(a->tags[0], sizeof a->tags[0], "account-takeover");
}

/* ---- alert_sink_parse ---- */

static void test_parse_kinds(void)
{
    alert_sink_config c;

    CHECK("parse stdout", parse("stdout", &c) && c.kind == ALERT_SINK_STDOUT && !alert_sink_is_remote(&c));
    CHECK("parse stdout: label is the spec", strcmp(c.label, "stdout") == 0);
    CHECK("parse: default min-severity lets everything through", c.min_severity == ALERT_SEVERITY_INFO);

    CHECK("parse file:PATH", parse("file:/var/log/veille/alerts.ndjson", &c) && c.kind == ALERT_SINK_FILE &&
                                 strcmp(c.path, "/var/log/veille/alerts.ndjson") == 0 && !alert_sink_is_remote(&c));

    CHECK("parse syslog: local, /dev/log", parse("syslog", &c) && c.kind == ALERT_SINK_SYSLOG_LOCAL &&
                                               strcmp(c.path, "/dev/log") == 0 && alert_sink_is_remote(&c));
    CHECK("parse syslog: default facility authpriv (10)", c.facility == 10);
    CHECK("parse syslog:/abs/path", parse("syslog:/run/systemd/journal/syslog", &c) &&
                                        c.kind == ALERT_SINK_SYSLOG_LOCAL &&
                                        strcmp(c.path, "/run/systemd/journal/syslog") == 0);

    CHECK("parse syslog://host:port", parse("syslog://logs.example.com:1514", &c) &&
                                          c.kind == ALERT_SINK_SYSLOG_UDP &&
                                          strcmp(c.host, "logs.example.com") == 0 && c.port == 1514 &&
                                          alert_sink_is_remote(&c));
    CHECK("parse syslog://host: default port 514", parse("syslog://logs.example.com", &c) &&
                                                       c.kind == ALERT_SINK_SYSLOG_UDP &&
                                                       strcmp(c.host, "logs.example.com") == 0 && c.port == 514);
    CHECK("parse syslog+tcp://[::1]:6514", parse("syslog+tcp://[::1]:6514", &c) &&
                                               c.kind == ALERT_SINK_SYSLOG_TCP && strcmp(c.host, "::1") == 0 &&
                                               c.port == 6514);
    CHECK("parse syslog+tcp://host: default port 514",
          parse("syslog+tcp://10.0.0.5", &c) && c.kind == ALERT_SINK_SYSLOG_TCP && c.port == 514);

    CHECK("parse webhook http", parse("webhook:http://h/p?q=1", &c) && c.kind == ALERT_SINK_WEBHOOK &&
                                    strcmp(c.host, "h") == 0 && !c.tls && alert_sink_is_remote(&c));
    CHECK("parse webhook http: default port 80", c.port == 80);
    CHECK("parse webhook http: target is path and query", strcmp(c.target, "/p?q=1") == 0);
    CHECK("parse webhook http: label drops the query", strcmp(c.label, "webhook:http://h/p") == 0);
    CHECK("parse webhook http: label never holds the query", strstr(c.label, "q=1") == NULL);
    CHECK("parse webhook http: spec kept as given", strcmp(c.spec, "webhook:http://h/p?q=1") == 0);

    CHECK("parse webhook https:port", parse("webhook:https://h:8443", &c) && c.kind == ALERT_SINK_WEBHOOK &&
                                          c.tls && strcmp(c.host, "h") == 0 && c.port == 8443);
    CHECK("parse webhook https: no path is target /", strcmp(c.target, "/") == 0);
    CHECK("parse webhook https: default port 443", parse("webhook:https://soar.example.com/hooks/veille", &c) &&
                                                       c.tls && c.port == 443 &&
                                                       strcmp(c.target, "/hooks/veille") == 0);
    CHECK("parse webhook: query without path gets /", parse("webhook:http://h?x=1", &c) &&
                                                          strcmp(c.target, "/?x=1") == 0 &&
                                                          strcmp(c.label, "webhook:http://h") == 0);
    CHECK("parse webhook [v6]:port", parse("webhook:http://[2001:db8::1]:8080/in", &c) &&
                                         strcmp(c.host, "2001:db8::1") == 0 && c.port == 8080 &&
                                         strcmp(c.target, "/in") == 0);
    CHECK("parse webhook: '@' after the path is not credentials",
          parse("webhook:https://h/in?from=a@b", &c) && strcmp(c.host, "h") == 0);
}

static void test_parse_refusals(void)
{
    CHECK("refuse empty", refused("", "empty sink"));
    CHECK("refuse NULL", refused(NULL, "empty sink"));
    CHECK("refuse unknown", refused("carrier-pigeon", "unknown sink"));
    CHECK("refuse unknown: names the spec", refused("carrier-pigeon", "carrier-pigeon"));
    CHECK("refuse stdout with junk", refused("stdout:x", "unknown sink"));
    CHECK("refuse file: without path", refused("file:", "needs a path"));
    CHECK("refuse syslog:relative", refused("syslog:dev/log", "absolute path"));
    CHECK("refuse syslog: with nothing", refused("syslog:", "absolute path"));
    CHECK("refuse port 0", refused("syslog://h:0", "port"));
    CHECK("refuse port 65536", refused("syslog://h:65536", "port"));
    CHECK("refuse port abc", refused("syslog://h:abc", "port"));
    CHECK("refuse empty port", refused("syslog+tcp://h:", "port"));
    CHECK("refuse negative port", refused("syslog://h:-1", "port"));
    CHECK("refuse webhook port 0", refused("webhook:http://h:0/x", "port"));
    CHECK("refuse syslog:// without host", refused("syslog://:514", "no host"));
    CHECK("refuse [v6 without ]", refused("syslog://[::1:514", "']'"));
    CHECK("refuse webhook ftp://", refused("webhook:ftp://h/x", "http:// or https://"));
    CHECK("refuse webhook without scheme", refused("webhook:h/x", "http:// or https://"));
    CHECK("refuse credentials in URL", refused("webhook:https://user:pw@h/x", "credentials"));
    CHECK("refuse user@ in URL", refused("webhook:https://token@h", "credentials"));
    CHECK("refuse credentials: message never shows the password",
          refused("webhook:https://user:s3cr3t@h/x", "credentials") && strstr(err, "s3cr3t") == NULL);
    CHECK("refuse #fragment", refused("webhook:https://h/x#frag", "fragment"));
    CHECK("refuse space in URL path", refused("webhook:https://h/a b", "space"));
    CHECK("refuse space in URL query", refused("webhook:https://h/a?b=c d", "space"));
    CHECK("refuse tab in URL", refused("webhook:https://h/a\tb", "space"));
    CHECK("refuse space in host", refused("webhook:https://h x/a", "host"));

    char spec[ALERT_SPEC_MAX + 64];
    memset(spec, 'a', sizeof spec);
    memcpy(spec, "file:/", 6);
    spec[sizeof spec - 1] = '\0';
    CHECK("refuse over-long spec", refused(spec, "longer than"));
    spec[ALERT_SPEC_MAX] = '\0'; /* 512 bytes: one too many */
    CHECK("refuse spec of ALERT_SPEC_MAX bytes", refused(spec, "longer than"));
    spec[ALERT_SPEC_MAX - 1] = '\0'; /* 511 bytes: the most */
    alert_sink_config c;
    CHECK("accept spec of ALERT_SPEC_MAX-1 bytes", parse(spec, &c) && strcmp(c.path, spec + 5) == 0);
    CHECK("long spec: label cut to fit, terminated", strlen(c.label) == STORE_SINK_LABEL_MAX - 1 &&
                                                        strncmp(c.label, spec, STORE_SINK_LABEL_MAX - 1) == 0);
}

static void test_parse_ids(void)
{
    alert_sink_config a, b;
    CHECK("id: stable for the same spec", parse("webhook:https://h/x?t=1", &a) &&
                                              parse("webhook:https://h/x?t=1", &b) && a.id == b.id);
    CHECK("id: not zero", a.id != 0);
    CHECK("id: differs with the query (same label)", parse("webhook:https://h/x?t=2", &b) &&
                                                         strcmp(a.label, b.label) == 0 && a.id != b.id);
    CHECK("id: differs between kinds", parse("syslog://h:514", &a) && parse("syslog+tcp://h:514", &b) &&
                                           a.id != b.id);
    CHECK("id: differs between files", parse("file:/tmp/a", &a) && parse("file:/tmp/b", &b) && a.id != b.id);
    CHECK("id: unchanged by options", parse("syslog", &a) && parse("syslog", &b) &&
                                          opt(&b, "facility", "local3") && opt(&b, "min-severity", "high") &&
                                          a.id == b.id);
}

/* ---- alert_sink_set_option ---- */

static void test_options(void)
{
    alert_sink_config c;
    static const char *const sev[] = {"info", "low", "medium", "high", "critical"};
    bool all = parse("stdout", &c);
    for (int i = 0; i < 5; i++)
        all = all && opt(&c, "min-severity", sev[i]) && c.min_severity == i;
    CHECK("min-severity: info..critical in rank order", all);
    CHECK("min-severity: unknown value refused", opt_refused(&c, "min-severity", "warning", "min-severity"));
    CHECK("min-severity: refusal leaves the setting", c.min_severity == ALERT_SEVERITY_CRITICAL);
    CHECK("min-severity: empty refused", opt_refused(&c, "min-severity", "", "min-severity"));

    CHECK("facility authpriv = 10", parse("syslog://h", &c) && opt(&c, "facility", "local0") &&
                                        opt(&c, "facility", "authpriv") && c.facility == 10);
    CHECK("facility local3 = 19", opt(&c, "facility", "local3") && c.facility == 19);
    CHECK("facility kern = 0", opt(&c, "facility", "kern") && c.facility == 0);
    CHECK("facility auth = 4", opt(&c, "facility", "auth") && c.facility == 4);
    CHECK("facility local7 = 23", opt(&c, "facility", "local7") && c.facility == 23);
    CHECK("facility unknown name refused", opt_refused(&c, "facility", "local8", "facility"));
    CHECK("facility refusal leaves the setting", c.facility == 23);
    CHECK("facility on local syslog", parse("syslog", &c) && opt(&c, "facility", "daemon") && c.facility == 3);
    CHECK("facility on syslog+tcp", parse("syslog+tcp://h:6514", &c) && opt(&c, "facility", "user") &&
                                        c.facility == 1);
    CHECK("facility on webhook refused",
          parse("webhook:https://h/x", &c) && opt_refused(&c, "facility", "authpriv", "only for syslog"));
    CHECK("facility on stdout refused", parse("stdout", &c) && opt_refused(&c, "facility", "authpriv", "syslog"));
    CHECK("facility on file refused", parse("file:/tmp/x", &c) && opt_refused(&c, "facility", "kern", "syslog"));

    /* header */
    CHECK("header: valid", parse("webhook:https://h/x", &c) && opt(&c, "header", "X-Api-Key: abc123") &&
                               c.n_headers == 1 && strcmp(c.headers[0], "X-Api-Key: abc123") == 0);
    CHECK("header: blanks after ':' normalised",
          opt(&c, "header", "Authorization:   Bearer t0k") && c.n_headers == 2 &&
              strcmp(c.headers[1], "Authorization: Bearer t0k") == 0);
    CHECK("header: Content-Length reserved", opt_refused(&c, "header", "Content-Length: 5", "itself"));
    CHECK("header: WEBHOOK-SIGNATURE reserved", opt_refused(&c, "header", "WEBHOOK-SIGNATURE: v1,abc", "itself"));
    CHECK("header: host reserved", opt_refused(&c, "header", "host: evil.example", "itself"));
    CHECK("header: webhook-id reserved", opt_refused(&c, "header", "Webhook-Id: x", "itself"));
    CHECK("header: webhook-timestamp reserved", opt_refused(&c, "header", "webhook-timestamp: 1", "itself"));
    CHECK("header: Transfer-Encoding reserved", opt_refused(&c, "header", "Transfer-Encoding: chunked", "itself"));
    CHECK("header: Content-Type reserved", opt_refused(&c, "header", "content-type: text/plain", "itself"));
    CHECK("header: Connection reserved", opt_refused(&c, "header", "CONNECTION: keep-alive", "itself"));
    CHECK("header: a name merely starting with a reserved one is fine",
          opt(&c, "header", "Host-Alias: x") && c.n_headers == 3);
    CHECK("header: CR LF in value refused", opt_refused(&c, "header", "X-A: b\r\nX-Injected: 1", "control"));
    CHECK("header: LF in value refused", opt_refused(&c, "header", "X-A: b\nc", "control"));
    CHECK("header: CR in value refused", opt_refused(&c, "header", "X-A: b\rc", "control"));
    CHECK("header: DEL in value refused", opt_refused(&c, "header", "X-A: a\x7f" "b", "control"));
    CHECK("header: User-Agent reserved (veille sends its own)", opt_refused(&c, "header", "User-Agent: mine", "itself"));
    CHECK("header: Expect reserved", opt_refused(&c, "header", "Expect: 100-continue", "itself"));
    CHECK("header: no colon refused", opt_refused(&c, "header", "X-A b", "Name: value"));
    CHECK("header: empty name refused", opt_refused(&c, "header", ": b", "Name: value"));
    CHECK("header: space in name refused", opt_refused(&c, "header", "X A: b", "header name"));
    CHECK("header: refusals added nothing", c.n_headers == 3);
    bool eight = true;
    for (int i = (int)c.n_headers; i < ALERT_HEADERS_MAX; i++) {
        char h[32];
        snprintf(h, sizeof h, "X-N%d: %d", i, i);
        eight = eight && opt(&c, "header", h);
    }
    CHECK("header: eight accepted", eight && c.n_headers == 8);
    CHECK("header: a ninth refused", opt_refused(&c, "header", "X-Ninth: 9", "at most 8"));
    CHECK("header: still eight", c.n_headers == 8);
    char big[ALERT_HEADER_MAX + 8];
    memset(big, 'v', sizeof big);
    memcpy(big, "X-Big: ", 7);
    big[sizeof big - 1] = '\0';
    CHECK("header: too long refused",
          parse("webhook:https://h/x", &c) && opt_refused(&c, "header", big, "longer") && c.n_headers == 0);
    CHECK("header: on syslog refused", parse("syslog", &c) && opt_refused(&c, "header", "X-A: b", "webhook"));
    CHECK("header: on stdout refused", parse("stdout", &c) && opt_refused(&c, "header", "X-A: b", "webhook"));

    /* ca */
    CHECK("ca: https webhook", parse("webhook:https://h/x", &c) && opt(&c, "ca", "/etc/veille/ca.pem") &&
                                   strcmp(c.ca_file, "/etc/veille/ca.pem") == 0);
    CHECK("ca: empty refused", opt_refused(&c, "ca", "", "PEM"));
    CHECK("ca: http webhook refused", parse("webhook:http://h/x", &c) && opt_refused(&c, "ca", "/x.pem", "https"));
    CHECK("ca: syslog refused", parse("syslog+tcp://h:6514", &c) && opt_refused(&c, "ca", "/x.pem", "https"));
    CHECK("ca: stdout refused", parse("stdout", &c) && opt_refused(&c, "ca", "/x.pem", "https"));

    CHECK("unknown option refused", parse("stdout", &c) && opt_refused(&c, "colour", "blue", "unknown sink option"));
}

/* ---- alert_sink_wants ---- */

static bool wants(const alert_sink_config *c, const char *severity)
{
    store_alert a;
    make_alert(&a);
    snprintf(a.severity, sizeof a.severity, "%s", severity);
    return alert_sink_wants(c, &a);
}

static void test_wants(void)
{
    alert_sink_config c;
    parse("syslog", &c);
    CHECK("wants: default takes info", wants(&c, "info"));
    CHECK("wants: default takes critical", wants(&c, "critical"));
    CHECK("wants: min high", opt(&c, "min-severity", "high"));
    CHECK("wants: info below high dropped", !wants(&c, "info"));
    CHECK("wants: low below high dropped", !wants(&c, "low"));
    CHECK("wants: medium below high dropped", !wants(&c, "medium"));
    CHECK("wants: high itself sent (inclusive)", wants(&c, "high"));
    CHECK("wants: critical above high sent", wants(&c, "critical"));
    CHECK("wants: unknown severity let through", wants(&c, "catastrophic"));
    CHECK("wants: empty severity let through", wants(&c, ""));
    opt(&c, "min-severity", "critical");
    CHECK("wants: min critical drops high", !wants(&c, "high"));
    CHECK("wants: min critical takes critical", wants(&c, "critical"));
    CHECK("wants: min critical still lets unknown through", wants(&c, "Critical"));

    CHECK("rank: info 0", alert_severity_rank("info") == 0);
    CHECK("rank: critical 4", alert_severity_rank("critical") == 4);
    CHECK("rank: unknown -1", alert_severity_rank("urgent") == -1);
}

/* ---- syslog ---- */

static void test_syslog_severity(void)
{
    CHECK("syslog severity critical 2", alert_syslog_severity("critical") == 2);
    CHECK("syslog severity high 3", alert_syslog_severity("high") == 3);
    CHECK("syslog severity medium 4", alert_syslog_severity("medium") == 4);
    CHECK("syslog severity low 5", alert_syslog_severity("low") == 5);
    CHECK("syslog severity info 6", alert_syslog_severity("info") == 6);
}

/* A parsed RFC 5424 message. */
#define MAX_PARAMS 16
typedef struct {
    int pri;
    char version[8];
    char timestamp[64];
    char hostname[300];
    char app[64];
    char procid[64];
    char msgid[64];
    char sd_id[64];
    size_t n_params;
    char pname[MAX_PARAMS][40];
    char pvalue[MAX_PARAMS][512];
    char rawvalue[MAX_PARAMS][1024]; /* as on the wire, escapes included */
    const char *msg;
    size_t msg_len;
} rfc5424;

/* HEADER fields are separated by exactly one space; none may be empty. */
static bool take_token(const char **p, const char *end, char *out, size_t cap)
{
    const char *s = *p;
    while (*p < end && **p != ' ')
        (*p)++;
    size_t n = (size_t)(*p - s);
    if (n == 0 || n >= cap || *p >= end)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    (*p)++; /* the space */
    return true;
}

/* Parse buf[0..len) as RFC 5424 (section 6), with exactly one SD-ELEMENT. */
static bool parse_5424(const char *buf, size_t len, rfc5424 *m)
{
    memset(m, 0, sizeof *m);
    const char *p = buf, *end = buf + len;
    if (p >= end || *p++ != '<')
        return false;
    int pri = 0, digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 3) {
        pri = pri * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || p >= end || *p++ != '>' || pri > 191)
        return false;
    m->pri = pri;
    if (!take_token(&p, end, m->version, sizeof m->version) ||
        !take_token(&p, end, m->timestamp, sizeof m->timestamp) ||
        !take_token(&p, end, m->hostname, sizeof m->hostname) || !take_token(&p, end, m->app, sizeof m->app) ||
        !take_token(&p, end, m->procid, sizeof m->procid) || !take_token(&p, end, m->msgid, sizeof m->msgid))
        return false;
    /* header fields are PRINTUSASCII */
    const char *fields[] = {m->hostname, m->app, m->procid, m->msgid};
    for (size_t i = 0; i < 4; i++)
        for (const char *q = fields[i]; *q; q++)
            if (*q < 33 || *q > 126)
                return false;
    if (p >= end || *p++ != '[')
        return false;
    const char *s = p;
    while (p < end && *p != ' ' && *p != ']' && *p != '=' && *p != '"')
        p++;
    if (p == s || (size_t)(p - s) >= sizeof m->sd_id)
        return false;
    memcpy(m->sd_id, s, (size_t)(p - s));
    for (;;) {
        if (p >= end)
            return false;
        if (*p == ']') {
            p++;
            break;
        }
        if (*p++ != ' ' || m->n_params == MAX_PARAMS)
            return false;
        s = p;
        while (p < end && *p != '=' && *p != ' ' && *p != ']' && *p != '"')
            p++;
        if (p == s || p >= end || *p != '=' || (size_t)(p - s) >= sizeof m->pname[0])
            return false;
        size_t i = m->n_params++;
        memcpy(m->pname[i], s, (size_t)(p - s));
        p++;
        if (p >= end || *p++ != '"')
            return false;
        size_t vn = 0, rn = 0;
        for (;;) {
            if (p >= end || vn + 1 >= sizeof m->pvalue[0] || rn + 2 >= sizeof m->rawvalue[0])
                return false;
            if (*p == '"') {
                p++;
                break;
            }
            if (*p == ']') /* must be escaped inside PARAM-VALUE */
                return false;
            if (*p == '\\' && p + 1 < end && (p[1] == '"' || p[1] == '\\' || p[1] == ']')) {
                m->rawvalue[i][rn++] = *p++;
            }
            m->rawvalue[i][rn++] = *p;
            m->pvalue[i][vn++] = *p++;
        }
    }
    if (p >= end || *p++ != ' ')
        return false;
    m->msg = p;
    m->msg_len = (size_t)(end - p);
    return true;
}

static const char *param(const rfc5424 *m, const char *name)
{
    for (size_t i = 0; i < m->n_params; i++)
        if (strcmp(m->pname[i], name) == 0)
            return m->pvalue[i];
    return NULL;
}

static const char *raw_param(const rfc5424 *m, const char *name)
{
    for (size_t i = 0; i < m->n_params; i++)
        if (strcmp(m->pname[i], name) == 0)
            return m->rawvalue[i];
    return NULL;
}

/* The bytes parse as JSON equal to alert_to_json(a), and are exactly as long. */
static bool json_is_alert(const char *p, size_t n, const store_alert *a)
{
    char *want = alert_to_json(a);
    json_error_t je;
    json_t *got = json_loadb(p, n, 0, &je);
    json_t *exp = want != NULL ? json_loads(want, 0, &je) : NULL;
    bool ok = got != NULL && exp != NULL && json_equal(got, exp) && strlen(want) == n;
    if (!ok)
        printf("message JSON: '%.*s'\nexpected:     '%s'\n", (int)n, p, want != NULL ? want : "(null)");
    json_decref(got);
    json_decref(exp);
    free(want);
    return ok;
}

/* The JSON body holds the alert's own fields (checked without alert_to_json). */
static bool json_names_alert(const char *p, size_t n, const store_alert *a)
{
    json_t *o = json_loadb(p, n, 0, NULL);
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *rule = json_string_value(json_object_get(o, "rule"));
    const char *sev = json_string_value(json_object_get(o, "severity"));
    json_t *tags = json_object_get(o, "tags");
    bool ok = json_is_object(o) && id != NULL && strcmp(id, a->id) == 0 && rule != NULL &&
              strcmp(rule, a->rule) == 0 && sev != NULL && strcmp(sev, a->severity) == 0 &&
              json_array_size(tags) == a->n_tags;
    json_decref(o);
    return ok;
}

static int fmt(const alert_sink_config *c, const store_alert *a, const char *host, int pid, char *buf, size_t cap,
               size_t *len)
{
    err[0] = '\0';
    int rc = alert_syslog_format(c, a, host, pid, buf, cap, len, err, sizeof err);
    if (rc < 0)
        printf("syslog format: %s\n", err);
    return rc;
}

static void test_syslog_remote(void)
{
    alert_sink_config c;
    store_alert a;
    make_alert(&a);
    static char buf[8192];
    size_t len = 0;
    rfc5424 m;
    bool ok = parse("syslog://logs.example.com:514", &c) && opt(&c, "facility", "local3");
    CHECK("5424: formats", ok && fmt(&c, &a, "web-1.example.com", 4242, buf, sizeof buf, &len) == 0);
    CHECK("5424: parses", parse_5424(buf, len, &m));
    CHECK("5424: PRI = local3*8 + high", m.pri == 19 * 8 + 3);
    CHECK("5424: begins <155>1 ", len > 7 && memcmp(buf, "<155>1 ", 7) == 0);
    CHECK("5424: version 1", strcmp(m.version, "1") == 0);
    CHECK("5424: timestamp RFC 3339 with millis, Z", strcmp(m.timestamp, "2023-11-14T22:13:20.123Z") == 0);
    CHECK("5424: hostname as given", strcmp(m.hostname, "web-1.example.com") == 0);
    CHECK("5424: app-name veille", strcmp(m.app, "veille") == 0);
    CHECK("5424: procid is the pid", strcmp(m.procid, "4242") == 0);
    CHECK("5424: msgid is the rule", strcmp(m.msgid, "new_country") == 0);
    CHECK("5424: SD-ID veille@32473", strcmp(m.sd_id, "veille@32473") == 0);
    CHECK("5424: six params", m.n_params == 6);
    CHECK("5424: param id", param(&m, "id") != NULL && strcmp(param(&m, "id"), a.id) == 0);
    CHECK("5424: param rule", param(&m, "rule") != NULL && strcmp(param(&m, "rule"), "new_country") == 0);
    CHECK("5424: param severity", param(&m, "severity") != NULL && strcmp(param(&m, "severity"), "high") == 0);
    CHECK("5424: param user", param(&m, "user") != NULL && strcmp(param(&m, "user"), "user_2abc") == 0);
    CHECK("5424: param ip", param(&m, "ip") != NULL && strcmp(param(&m, "ip"), "203.0.113.7") == 0);
    CHECK("5424: param session", param(&m, "session") != NULL && strcmp(param(&m, "session"), "sess_9xyz") == 0);
    CHECK("5424: MSG is the alert JSON", json_is_alert(m.msg, m.msg_len, &a));
    CHECK("5424: MSG names the alert", json_names_alert(m.msg, m.msg_len, &a));
    CHECK("5424: no trailing newline", len > 0 && buf[len - 1] == '}');

    /* facility and severity move PRI */
    snprintf(a.severity, sizeof a.severity, "critical");
    CHECK("5424: PRI authpriv critical = 82", parse("syslog+tcp://[::1]:6514", &c) &&
                                                  fmt(&c, &a, "h", 1, buf, sizeof buf, &len) == 0 &&
                                                  parse_5424(buf, len, &m) && m.pri == 10 * 8 + 2);
    snprintf(a.severity, sizeof a.severity, "info");
    CHECK("5424: PRI kern info = 6", opt(&c, "facility", "kern") && fmt(&c, &a, "h", 1, buf, sizeof buf, &len) == 0 &&
                                         parse_5424(buf, len, &m) && m.pri == 6 && memcmp(buf, "<6>1 ", 5) == 0);

    /* hostname: NILVALUE when empty, spaces removed */
    make_alert(&a);
    CHECK("5424: empty hostname is -", fmt(&c, &a, "", 7, buf, sizeof buf, &len) == 0 && parse_5424(buf, len, &m) &&
                                           strcmp(m.hostname, "-") == 0);
    CHECK("5424: spaces in hostname removed", fmt(&c, &a, "web 1", 7, buf, sizeof buf, &len) == 0 &&
                                                  parse_5424(buf, len, &m) && strcmp(m.hostname, "web1") == 0);
    CHECK("5424: hostname of spaces only is -", fmt(&c, &a, "  ", 7, buf, sizeof buf, &len) == 0 &&
                                                    parse_5424(buf, len, &m) && strcmp(m.hostname, "-") == 0);

    /* MSGID: at most 32 characters; the SD keeps the whole rule */
    snprintf(a.rule, sizeof a.rule, "an_unusually_long_rule_name_for_the_msgid_field");
    CHECK("5424: msgid cut to 32", fmt(&c, &a, "h", 7, buf, sizeof buf, &len) == 0 && parse_5424(buf, len, &m) &&
                                       strlen(m.msgid) == 32 && strncmp(m.msgid, a.rule, 32) == 0);
    CHECK("5424: long rule whole in SD", param(&m, "rule") != NULL && strcmp(param(&m, "rule"), a.rule) == 0);
    snprintf(a.rule, sizeof a.rule, "%.32s", "abcdefghijklmnopqrstuvwxyz012345");
    CHECK("5424: msgid of exactly 32 kept", fmt(&c, &a, "h", 7, buf, sizeof buf, &len) == 0 &&
                                                parse_5424(buf, len, &m) && strcmp(m.msgid, a.rule) == 0);

    /* empty values left out */
    make_alert(&a);
    a.ip[0] = '\0';
    a.session_id[0] = '\0';
    CHECK("5424: empty ip and session left out", fmt(&c, &a, "h", 7, buf, sizeof buf, &len) == 0 &&
                                                     parse_5424(buf, len, &m) && m.n_params == 4 &&
                                                     param(&m, "ip") == NULL && param(&m, "session") == NULL &&
                                                     param(&m, "user") != NULL);
    CHECK("5424: no empty param on the wire", memmem(buf, len, "=\"\"", 3) == NULL);
    CHECK("5424: MSG still the alert JSON", json_is_alert(m.msg, m.msg_len, &a));

    /* escaping */
    make_alert(&a);
    snprintf(a.user_id, sizeof a.user_id, "u\"1\\2]3");
    snprintf(a.session_id, sizeof a.session_id, "]]");
    CHECK("5424: value with \" \\ ] parses", fmt(&c, &a, "h", 7, buf, sizeof buf, &len) == 0 &&
                                                 parse_5424(buf, len, &m) && m.n_params == 6);
    CHECK("5424: escaped value reads back", param(&m, "user") != NULL && strcmp(param(&m, "user"), a.user_id) == 0);
    CHECK("5424: escapes on the wire", raw_param(&m, "user") != NULL &&
                                           strcmp(raw_param(&m, "user"), "u\\\"1\\\\2\\]3") == 0);
    CHECK("5424: ] escaped", param(&m, "session") != NULL && strcmp(param(&m, "session"), "]]") == 0 &&
                                 strcmp(raw_param(&m, "session"), "\\]\\]") == 0);
    CHECK("5424: MSG after escaped SD is the alert JSON", json_is_alert(m.msg, m.msg_len, &a));
}

static void test_syslog_local(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    alert_sink_config c;
    store_alert a;
    make_alert(&a);
    static char buf[8192];
    size_t len = 0;
    const char *want = "<83>Nov 14 22:13:20 veille[4242]: ";
    size_t wl = strlen(want);
    CHECK("local: formats", parse("syslog", &c) && fmt(&c, &a, "ignored-host", 4242, buf, sizeof buf, &len) == 0);
    CHECK("local: <PRI>Mmm dd HH:MM:SS veille[PID]: ", len > wl && memcmp(buf, want, wl) == 0);
    if (len > wl && memcmp(buf, want, wl) != 0)
        printf("local line: '%.*s'\n", (int)len, buf);
    CHECK("local: then the alert JSON", len > wl && json_is_alert(buf + wl, len - wl, &a));
    CHECK("local: no hostname in the line", memmem(buf, len, "ignored-host", 12) == NULL);

    /* a one-digit day is padded with a space (RFC 3164), not a zero */
    a.raised_ms = 1704157445000LL; /* 2024-01-02T01:04:05Z */
    snprintf(a.severity, sizeof a.severity, "low");
    const char *want2 = "<165>Jan  2 01:04:05 veille[1]: ";
    CHECK("local: one-digit day, local4, low", opt(&c, "facility", "local4") &&
                                                   fmt(&c, &a, "h", 1, buf, sizeof buf, &len) == 0 &&
                                                   len > strlen(want2) && memcmp(buf, want2, strlen(want2)) == 0);
    CHECK("local: syslog:PATH is the local format too",
          parse("syslog:/run/log.sock", &c) && fmt(&c, &a, "h", 1, buf, sizeof buf, &len) == 0 &&
              memcmp(buf, "<85>Jan  2 01:04:05 veille[1]: {", 32) == 0);
}

static void test_syslog_small_buffer(void)
{
    alert_sink_config c;
    store_alert a;
    make_alert(&a);
    static char big[8192];
    size_t full = 0, len = 0;
    parse("syslog://h:514", &c);
    CHECK("small: full length known", fmt(&c, &a, "host", 9, big, sizeof big, &full) == 0 && full > 256);

    /* exactly the length fits: checked in a heap block of that size, so that
     * ASan sees any byte written past it */
    char *exact = malloc(full);
    CHECK("small: exact fit succeeds", exact != NULL && fmt(&c, &a, "host", 9, exact, full, &len) == 0 &&
                                           len == full && memcmp(exact, big, full) == 0);
    free(exact);

    char *shorter = malloc(full - 1);
    err[0] = '\0';
    len = 12345;
    int rc = shorter != NULL ? alert_syslog_format(&c, &a, "host", 9, shorter, full - 1, &len, err, sizeof err) : 0;
    CHECK("small: one byte short fails", rc < 0);
    CHECK("small: with a message", strstr(err, "longer than") != NULL);
    free(shorter);

    /* a guard after a small cap stays untouched (body cut, header cut, nothing) */
    static const size_t caps[] = {0, 1, 10, 40, 120};
    bool guard = true;
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        char g[256];
        memset(g, 0x5a, sizeof g);
        rc = alert_syslog_format(&c, &a, "host", 9, g, caps[i], &len, err, sizeof err);
        for (size_t j = caps[i]; j < sizeof g; j++)
            guard = guard && g[j] == 0x5a;
        guard = guard && rc < 0;
    }
    CHECK("small: tiny caps fail, nothing written past cap", guard);

    parse("syslog", &c);
    size_t lfull = 0;
    CHECK("small: local full length", fmt(&c, &a, "host", 9, big, sizeof big, &lfull) == 0);
    char *lshort = malloc(lfull - 1);
    CHECK("small: local one byte short fails",
          lshort != NULL && alert_syslog_format(&c, &a, "host", 9, lshort, lfull - 1, &len, err, sizeof err) < 0);
    free(lshort);
}

/* ---- webhook ---- */

typedef struct {
    char line[1024];
    size_t n;
    char name[32][64];
    char value[32][1024];
    const char *body;
    size_t body_len;
} http_req;

static bool parse_request(const char *req, size_t len, http_req *r)
{
    memset(r, 0, sizeof *r);
    const char *end = req + len;
    const char *hdr_end = memmem(req, len, "\r\n\r\n", 4);
    if (hdr_end == NULL)
        return false;
    const char *p = req;
    const char *eol = memmem(p, (size_t)(hdr_end + 2 - p), "\r\n", 2);
    if (eol == NULL || (size_t)(eol - p) >= sizeof r->line)
        return false;
    memcpy(r->line, p, (size_t)(eol - p));
    p = eol + 2;
    while (p < hdr_end + 2) {
        eol = memmem(p, (size_t)(hdr_end + 2 - p), "\r\n", 2);
        if (eol == NULL || r->n == 32)
            return false;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL || colon == p || (size_t)(colon - p) >= sizeof r->name[0])
            return false;
        for (const char *q = p; q < eol; q++) /* no bare CR or LF inside a field line */
            if (*q == '\r' || *q == '\n')
                return false;
        memcpy(r->name[r->n], p, (size_t)(colon - p));
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        if ((size_t)(eol - v) >= sizeof r->value[0])
            return false;
        memcpy(r->value[r->n], v, (size_t)(eol - v));
        r->n++;
        p = eol + 2;
    }
    r->body = hdr_end + 4;
    r->body_len = (size_t)(end - r->body);
    return true;
}

/* The value of the only field with this name (case-insensitive); NULL when
 * absent or repeated. */
static const char *header(const http_req *r, const char *name)
{
    const char *found = NULL;
    for (size_t i = 0; i < r->n; i++)
        if (strcasecmp(r->name[i], name) == 0) {
            if (found != NULL)
                return NULL;
            found = r->value[i];
        }
    return found;
}

#define WH_NOW 1700000100LL

static void secret_text(const unsigned char key[32], char *out, size_t cap)
{
    unsigned char b64[64];
    int n = EVP_EncodeBlock(b64, key, 32);
    snprintf(out, cap, "whsec_%.*s", n, (const char *)b64);
}

static bool request(const alert_sink_config *c, const ingest_secret *s, const store_alert *a, char **out,
                    size_t *len)
{
    err[0] = '\0';
    if (alert_webhook_request(c, s, a, WH_NOW, out, len, err, sizeof err) < 0) {
        printf("webhook request: %s\n", err);
        return false;
    }
    return true;
}

static ingest_result verify_req(const ingest_secret *s, const http_req *r, const char *body, size_t body_len)
{
    ingest_secrets set;
    memset(&set, 0, sizeof set);
    set.secrets[0] = *s;
    set.count = 1;
    const char *id = header(r, "webhook-id"), *ts = header(r, "webhook-timestamp"), *sig = header(r, "webhook-signature");
    if (id == NULL || ts == NULL || sig == NULL)
        return INGEST_ERR_MISSING_HEADERS;
    char e[UTIL_ERRLEN];
    return ingest_verify_signature(&set, id, strlen(id), ts, strlen(ts), sig, strlen(sig),
                                   (const unsigned char *)body, body_len, WH_NOW, e, sizeof e);
}

static void test_webhook_secret(ingest_secret *secret, ingest_secret *other)
{
    unsigned char key[32], key2[32];
    for (int i = 0; i < 32; i++) {
        key[i] = (unsigned char)(i * 7 + 3);
        key2[i] = (unsigned char)(255 - i);
    }
    char text[128], text2[128];
    secret_text(key, text, sizeof text);
    secret_text(key2, text2, sizeof text2);
    CHECK("secret: whsec_<base64 of 32 bytes> parses",
          alert_webhook_secret_parse(text, secret, err, sizeof err) == 0 && secret->len == 32 &&
              memcmp(secret->key, key, 32) == 0);
    CHECK("secret: another parses", alert_webhook_secret_parse(text2, other, err, sizeof err) == 0 &&
                                        other->len == 32 && memcmp(other->key, key2, 32) == 0);

    ingest_secret s;
    err[0] = '\0';
    CHECK("secret: empty refused", alert_webhook_secret_parse("", &s, err, sizeof err) < 0);
    CHECK("secret: empty names VEILLE_ALERT_WEBHOOK_SECRET", strstr(err, "VEILLE_ALERT_WEBHOOK_SECRET") != NULL);
    err[0] = '\0';
    CHECK("secret: NULL refused", alert_webhook_secret_parse(NULL, &s, err, sizeof err) < 0);
    CHECK("secret: NULL names VEILLE_ALERT_WEBHOOK_SECRET", strstr(err, "VEILLE_ALERT_WEBHOOK_SECRET") != NULL);
    char two[300];
    snprintf(two, sizeof two, "%s %s", text, text2);
    err[0] = '\0';
    CHECK("secret: two refused", alert_webhook_secret_parse(two, &s, err, sizeof err) < 0);
    CHECK("secret: two: message names the variable", strstr(err, "VEILLE_ALERT_WEBHOOK_SECRET") != NULL &&
                                                        strstr(err, "one") != NULL);
    CHECK("secret: two: message never shows a secret", strstr(err, text + 6) == NULL && strstr(err, text2 + 6) == NULL);
    CHECK("secret: two: nothing left in out", s.len == 0);
    snprintf(two, sizeof two, "%s,%s", text, text);
    CHECK("secret: the same twice refused", alert_webhook_secret_parse(two, &s, err, sizeof err) < 0);
    CHECK("secret: bad base64 refused, named",
          alert_webhook_secret_parse("whsec_!!!!", &s, err, sizeof err) < 0 &&
              strstr(err, "VEILLE_ALERT_WEBHOOK_SECRET") != NULL && strstr(err, "!!!!") == NULL);
    CHECK("secret: too short a key refused",
          alert_webhook_secret_parse("whsec_c2hvcnQ=", &s, err, sizeof err) < 0); /* "short", 5 bytes */
}

static void test_webhook_request(const ingest_secret *secret, const ingest_secret *other)
{
    alert_sink_config c;
    store_alert a;
    make_alert(&a);
    char *req = NULL;
    size_t len = 0;
    http_req r;
    bool ok = parse("webhook:https://soar.example.com:8443/hooks/veille?token=abc", &c) &&
              opt(&c, "header", "X-Api-Key: k1") && opt(&c, "header", "Authorization: Bearer t0k");
    CHECK("webhook: request built", ok && request(&c, secret, &a, &req, &len));
    CHECK("webhook: request parses as HTTP/1.1", req != NULL && parse_request(req, len, &r));
    CHECK("webhook: request line", strcmp(r.line, "POST /hooks/veille?token=abc HTTP/1.1") == 0);
    CHECK("webhook: Host with the port", header(&r, "Host") != NULL &&
                                            strcmp(header(&r, "Host"), "soar.example.com:8443") == 0);
    const char *cl = header(&r, "Content-Length");
    char *clend = NULL;
    CHECK("webhook: Content-Length is the body length",
          cl != NULL && strtoull(cl, &clend, 10) == r.body_len && *clend == '\0' && r.body_len > 0);
    CHECK("webhook: Content-Type JSON", header(&r, "Content-Type") != NULL &&
                                           strncmp(header(&r, "Content-Type"), "application/json", 16) == 0);
    CHECK("webhook: webhook-id is the alert id", header(&r, "webhook-id") != NULL &&
                                                    strcmp(header(&r, "webhook-id"), a.id) == 0);
    CHECK("webhook: webhook-timestamp is now_s", header(&r, "webhook-timestamp") != NULL &&
                                                    strcmp(header(&r, "webhook-timestamp"), "1700000100") == 0);
    CHECK("webhook: extra header X-Api-Key", header(&r, "X-Api-Key") != NULL &&
                                                strcmp(header(&r, "X-Api-Key"), "k1") == 0);
    CHECK("webhook: extra header Authorization", header(&r, "Authorization") != NULL &&
                                                    strcmp(header(&r, "Authorization"), "Bearer t0k") == 0);
    CHECK("webhook: no chunked encoding", header(&r, "Transfer-Encoding") == NULL);
    CHECK("webhook: body is the alert JSON", json_is_alert(r.body, r.body_len, &a));
    CHECK("webhook: body names the alert", json_names_alert(r.body, r.body_len, &a));
    CHECK("webhook: the secret is not in the request",
          memmem(req, len, secret->key, secret->len) == NULL);

    /* the signature, by the receiving side's rules */
    const char *sig = header(&r, "webhook-signature");
    CHECK("webhook: signature v1,<base64>", sig != NULL && strncmp(sig, "v1,", 3) == 0);
    CHECK("webhook: signature verifies with the secret", verify_req(secret, &r, r.body, r.body_len) == INGEST_OK);
    CHECK("webhook: another secret fails", verify_req(other, &r, r.body, r.body_len) == INGEST_ERR_NO_MATCH);
    char *tampered = malloc(r.body_len + 1);
    if (tampered != NULL) {
        memcpy(tampered, r.body, r.body_len);
        char *sev = memmem(tampered, r.body_len, "\"high\"", 6);
        if (sev != NULL)
            memcpy(sev, "\"info\"", 6);
        CHECK("webhook: modified body fails",
              sev != NULL && verify_req(secret, &r, tampered, r.body_len) == INGEST_ERR_NO_MATCH);
        free(tampered);
    }
    CHECK("webhook: body with a byte less fails", r.body_len > 0 && verify_req(secret, &r, r.body, r.body_len - 1) ==
                                                                        INGEST_ERR_NO_MATCH);

    /* and independently: HMAC-SHA256(key, "id.timestamp.body"), base64 (Standard Webhooks) */
    char *content = NULL;
    size_t cn = 0;
    FILE *f = open_memstream(&content, &cn);
    if (f != NULL) {
        fprintf(f, "%s.%s.", a.id, "1700000100");
        fwrite(r.body, 1, r.body_len, f);
        fclose(f);
    }
    unsigned char mac[32];
    unsigned int ml = 0;
    unsigned char b64[64];
    bool hm = content != NULL &&
              HMAC(EVP_sha256(), secret->key, (int)secret->len, (unsigned char *)content, cn, mac, &ml) != NULL &&
              ml == 32;
    int bn = hm ? EVP_EncodeBlock(b64, mac, 32) : 0;
    char want[80];
    snprintf(want, sizeof want, "v1,%.*s", bn, (const char *)b64);
    CHECK("webhook: signature is HMAC-SHA256 of id.timestamp.body", hm && sig != NULL && strcmp(sig, want) == 0);
    free(content);
    free(req);
    req = NULL;

    /* Host: port only when not the scheme's default, IPv6 in brackets */
    struct {
        const char *spec, *host, *target;
    } hosts[] = {
        {"webhook:http://h/p?q=1", "h", "/p?q=1"},
        {"webhook:http://h:80/p", "h", "/p"},
        {"webhook:https://h:443", "h", "/"},
        {"webhook:https://h", "h", "/"},
        {"webhook:http://h:8080/x", "h:8080", "/x"},
        {"webhook:https://h:80/x", "h:80", "/x"},
        {"webhook:http://[::1]:8080/x", "[::1]:8080", "/x"},
        {"webhook:https://[2001:db8::1]/in", "[2001:db8::1]", "/in"},
    };
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        char name[700];
        bool hok = parse(hosts[i].spec, &c) && request(&c, secret, &a, &req, &len) && parse_request(req, len, &r);
        snprintf(name, sizeof name, "webhook: %s -> Host: %s", hosts[i].spec, hosts[i].host);
        CHECK(name, hok && header(&r, "Host") != NULL && strcmp(header(&r, "Host"), hosts[i].host) == 0);
        char line[600];
        snprintf(line, sizeof line, "POST %s HTTP/1.1", hosts[i].target);
        snprintf(name, sizeof name, "webhook: %s -> %s", hosts[i].spec, line);
        CHECK(name, hok && strcmp(r.line, line) == 0);
        free(req);
        req = NULL;
    }

    /* an alert with characters JSON must escape: Content-Length still matches, still verifies */
    make_alert(&a);
    snprintf(a.summary, sizeof a.summary, "quote \" backslash \\ newline \n caf\xc3\xa9");
    parse("webhook:http://h/x", &c);
    CHECK("webhook: escaped body: built", request(&c, secret, &a, &req, &len) && parse_request(req, len, &r));
    cl = header(&r, "Content-Length");
    CHECK("webhook: escaped body: Content-Length", cl != NULL && strtoull(cl, NULL, 10) == r.body_len);
    CHECK("webhook: escaped body: JSON", json_is_alert(r.body, r.body_len, &a));
    CHECK("webhook: escaped body: verifies", verify_req(secret, &r, r.body, r.body_len) == INGEST_OK);
    free(req);
}

/* ---- formats: --format / --template, golden files, OCSF required fields ---- */

/* Golden files are tests/alert/FORMAT.golden (the unit tests run from the source
 * root): two alerts, one line each. VEILLE_UPDATE_GOLDEN=1 rewrites them; review
 * the diff. The version is written @VERSION@ so a release does not break them. */
#define GOLDEN_DIR "tests/alert/"

/* make_alert with where it came from: the alert every golden file starts with. */
static void golden_alert(store_alert *a)
{
    make_alert(a);
    snprintf(a->country, sizeof a->country, "FR");
    snprintf(a->city, sizeof a->city, "Paris");
    snprintf(a->user_agent, sizeof a->user_agent, "Mozilla/5.0 (X11; Linux x86_64) Chrome/128.0");
    snprintf(a->user_name, sizeof a->user_name, "jdoe");
    snprintf(a->instance_id, sizeof a->instance_id, "ins_2prod");
}

/* Every character some format must escape, in every field a delivery fills. */
static void hostile_alert(store_alert *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->id, sizeof a->id, "alr_fedcba9876543210fedcba98");
    snprintf(a->rule, sizeof a->rule, "spray_by_ip");
    snprintf(a->severity, sizeof a->severity, "critical");
    snprintf(a->key, sizeof a->key, "ip:2001:db8::7");
    snprintf(a->user_id, sizeof a->user_id, "user_<!channel>&\"q\"|p=1\\b");
    snprintf(a->ip, sizeof a->ip, "2001:db8::7");
    snprintf(a->session_id, sizeof a->session_id, "sess_a=b|c");
    snprintf(a->event_id, sizeof a->event_id, "msg_2");
    a->event_type = EVENT_SESSION_ENDED;
    a->at_ms = 1700000100000LL;
    a->raised_ms = 1700000100456LL;
    a->last_suppressed_at_ms = 1700000200000LL;
    a->suppressed = 3;
    snprintf(a->summary, sizeof a->summary,
             "pipe | backslash \\ equals = newline\nCR\r tab\t <b>&amp; *bold* [x](https://e.test) caf\xc3\xa9");
    snprintf(a->country, sizeof a->country, "ZZ");
    snprintf(a->city, sizeof a->city, "S\xc3\xa3o \"Paulo\"\n=|");
    snprintf(a->user_agent, sizeof a->user_agent, "curl/8 \\ = |");
    a->n_evidence = 1;
    snprintf(a->evidence[0].name, sizeof a->evidence[0].name, "distinct(user, 1h)");
    a->evidence[0].kind = STORE_EVIDENCE_NUMBER;
    a->evidence[0].num = 59.999;
    a->evidence[0].at_least = true;
    a->n_tags = 2;
    snprintf(a->tags[0], sizeof a->tags[0], "spray");
    snprintf(a->tags[1], sizeof a->tags[1], "a,b");
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    static char buf[256 * 1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

/* s with every VEILLE_VERSION replaced by @VERSION@ (malloc'd). */
static char *unversioned(const char *s)
{
    size_t vl = strlen(VEILLE_VERSION), n = 0;
    char *out = malloc(strlen(s) * 2 + 16);
    if (out == NULL)
        return NULL;
    while (*s) {
        if (strncmp(s, VEILLE_VERSION, vl) == 0) {
            memcpy(out + n, "@VERSION@", 9);
            n += 9;
            s += vl;
        } else {
            out[n++] = *s++;
        }
    }
    out[n] = '\0';
    return out;
}

/* The two golden alerts rendered by c, one line each. */
static char *render_both(const alert_sink_config *c)
{
    store_alert *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    char *x = NULL, *y = NULL, *out = NULL;
    golden_alert(a);
    hostile_alert(b);
    if (alert_render(c, a, &x, NULL, err, sizeof err) == 0 && alert_render(c, b, &y, NULL, err, sizeof err) == 0 &&
        (out = malloc(strlen(x) + strlen(y) + 3)) != NULL)
        sprintf(out, "%s\n%s\n", x, y);
    else
        printf("render %s: %s\n", alert_format_name(c->format), err);
    free(x);
    free(y);
    free(a);
    free(b);
    return out;
}

static bool matches_golden(const alert_sink_config *c, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, GOLDEN_DIR "%s.golden", name);
    char *got_raw = render_both(c), *got = got_raw != NULL ? unversioned(got_raw) : NULL;
    free(got_raw);
    if (got == NULL)
        return false;
    const char *update = getenv("VEILLE_UPDATE_GOLDEN");
    if (update != NULL && strcmp(update, "1") == 0) {
        FILE *f = fopen(path, "wb");
        bool ok = f != NULL && fputs(got, f) >= 0;
        if (f != NULL)
            fclose(f);
        printf("wrote %s\n", path);
        free(got);
        return ok;
    }
    char *want = read_text(path);
    bool ok = want != NULL && strcmp(want, got) == 0;
    if (!ok)
        printf("%s differs (VEILLE_UPDATE_GOLDEN=1 rewrites it):\n--- got:\n%s--- want:\n%s", path, got,
               want != NULL ? want : "(missing)\n");
    free(want);
    free(got);
    return ok;
}

static void test_format_options(void)
{
    alert_sink_config c;
    CHECK("format: json is the default", parse("stdout", &c) && c.format == ALERT_FORMAT_JSON && !c.format_given);
    CHECK("format: sink options list format and template",
          alert_sink_is_option("format") && alert_sink_is_option("template") && alert_sink_is_option("ca") &&
              !alert_sink_is_option("alert"));
    CHECK("format: ocsf on stdout", opt(&c, "format", "ocsf") && c.format == ALERT_FORMAT_OCSF);
    CHECK("format: a second --format refused", opt_refused(&c, "format", "json", "one per sink"));
    CHECK("format: cef on file", parse("file:/tmp/x", &c) && opt(&c, "format", "cef") && c.format == ALERT_FORMAT_CEF);
    CHECK("format: cef on syslog+tcp", parse("syslog+tcp://h:514", &c) && opt(&c, "format", "cef"));
    CHECK("format: cef on webhook refused",
          parse("webhook:https://h/x", &c) && opt_refused(&c, "format", "cef", "stdout, file and syslog"));
    CHECK("format: slack on webhook", opt(&c, "format", "slack") && c.format == ALERT_FORMAT_SLACK);
    CHECK("format: teams on webhook", parse("webhook:https://h/x", &c) && opt(&c, "format", "teams"));
    CHECK("format: slack on syslog refused", parse("syslog", &c) && opt_refused(&c, "format", "slack", "webhook"));
    CHECK("format: teams on file refused", parse("file:/x", &c) && opt_refused(&c, "format", "teams", "webhook"));
    CHECK("format: unknown name refused, names the choices",
          parse("stdout", &c) && opt_refused(&c, "format", "xml", "json, ocsf, cef, slack, teams"));
    CHECK("format: 'template' is not a --format name", opt_refused(&c, "format", "template", "--template FILE"));
    CHECK("format: refusals leave json", c.format == ALERT_FORMAT_JSON && !c.format_given);

    CHECK("template: the golden template loads", parse("webhook:http://h/x", &c) &&
                                                     opt(&c, "template", GOLDEN_DIR "template.tmpl") &&
                                                     c.format == ALERT_FORMAT_TEMPLATE);
    CHECK("template: then --format refused", opt_refused(&c, "format", "json", "one per sink"));
    CHECK("template: missing file refused",
          parse("stdout", &c) && opt_refused(&c, "template", "/nonexistent/t", "cannot open"));
    struct {
        const char *text, *want;
    } bad[] = {
        {"a {{ nope }}", ":1:3: unknown placeholder 'nope'"},
        {"x\ny {{rule | shell}}\n", ":2:3: unknown escaping 'shell'"},
        {"{{ rule", ":1:1: '{{' without its closing '}}'"},
        {"{{ rule\n}}", ":1:1: '{{' without"},
        {"ok {{rule}} then {{}}", ":1:18: unknown placeholder ''"},
        {"\n", "is empty"},
        {"{{ $(id) }}", "unknown placeholder '$(id)'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[] = "/tmp/veille-test-template-XXXXXX";
        int fd = mkstemp(path);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (f != NULL) {
            fputs(bad[i].text, f);
            fclose(f);
        }
        char name[128];
        snprintf(name, sizeof name, "template: refused with '%s'", bad[i].want);
        CHECK(name, parse("stdout", &c) && opt_refused(&c, "template", path, bad[i].want) &&
                        strstr(err, path) != NULL && c.format == ALERT_FORMAT_JSON);
        unlink(path);
    }
    char big[] = "/tmp/veille-test-template-XXXXXX";
    int fd = mkstemp(big);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    for (int i = 0; f != NULL && i < ALERT_TEMPLATE_MAX; i++)
        fputc('x', f);
    if (f != NULL)
        fclose(f);
    CHECK("template: over the size limit refused", parse("stdout", &c) && opt_refused(&c, "template", big, "larger"));
    unlink(big);
}

static void test_format_golden(void)
{
    alert_sink_config c;
    static const char *const names[] = {"json", "ocsf", "cef", "slack", "teams"};
    static const char *const specs[] = {"stdout", "stdout", "syslog", "webhook:https://hooks.slack.test/x",
                                        "webhook:https://teams.test/x"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "golden: %s", names[i]);
        bool ok = parse(specs[i], &c) && (i == 0 || opt(&c, "format", names[i]));
        CHECK(name, ok && matches_golden(&c, names[i]));
    }
    CHECK("golden: template", parse("webhook:https://tickets.test/x", &c) &&
                                  opt(&c, "template", GOLDEN_DIR "template.tmpl") && matches_golden(&c, "template"));
    /* json is today's shape: alert_to_json, byte for byte */
    store_alert a;
    golden_alert(&a);
    char *r = NULL, *j = alert_to_json(&a);
    CHECK("json format is alert_to_json", parse("stdout", &c) && alert_render(&c, &a, &r, NULL, err, sizeof err) == 0 &&
                                              j != NULL && strcmp(r, j) == 0);
    free(r);
    free(j);
}

/* Every text format is one line: a newline from a delivery cannot add a line. */
static void test_format_one_line(void)
{
    alert_sink_config c;
    store_alert a;
    hostile_alert(&a);
    static const char *const names[] = {"json", "ocsf", "cef"};
    for (size_t i = 0; i < 3; i++) {
        char *r = NULL, name[64];
        snprintf(name, sizeof name, "%s: one line whatever the alert holds", names[i]);
        CHECK(name, parse("file:/tmp/x", &c) && opt(&c, "format", names[i]) &&
                        alert_render(&c, &a, &r, NULL, err, sizeof err) == 0 && strchr(r, '\n') == NULL &&
                        strchr(r, '\r') == NULL);
        free(r);
    }
}

/* CEF read back the way a CEF parser does: 7 unescaped '|' end the header;
 * the extension splits at unescaped '=' preceded by a key. */
static void test_cef_parse_back(void)
{
    alert_sink_config c;
    store_alert a;
    hostile_alert(&a);
    char *r = NULL;
    bool ok = parse("syslog", &c) && opt(&c, "format", "cef") && alert_render(&c, &a, &r, NULL, err, sizeof err) == 0;
    char hdr[8][600];
    size_t nh = 0, k = 0;
    const char *p = r;
    while (ok && *p && nh < 7) {
        if (*p == '\\' && (p[1] == '|' || p[1] == '\\')) {
            hdr[nh][k++] = p[1];
            p += 2;
        } else if (*p == '|') {
            hdr[nh++][k] = '\0';
            k = 0;
            p++;
        } else {
            hdr[nh][k++] = *p++;
        }
    }
    CHECK("cef: seven header fields", ok && nh == 7);
    CHECK("cef: CEF:0, vendor, product", nh == 7 && strcmp(hdr[0], "CEF:0") == 0 && strcmp(hdr[1], "veille") == 0 &&
                                             strcmp(hdr[2], "veille") == 0 && strcmp(hdr[3], VEILLE_VERSION) == 0);
    CHECK("cef: signature is the rule", nh == 7 && strcmp(hdr[4], "spray_by_ip") == 0);
    CHECK("cef: name is the summary, '|' and '\\' unescaped back, control bytes as spaces",
          nh == 7 && strncmp(hdr[5], "pipe | backslash \\ equals = newline CR  tab  <b>", 48) == 0);
    CHECK("cef: critical is 10", nh == 7 && strcmp(hdr[6], "10") == 0);
    /* extension: key=value pairs */
    char keys[32][64], vals[32][700];
    size_t nk = 0;
    while (ok && *p && nk < 32) {
        size_t kl = strcspn(p, "=");
        snprintf(keys[nk], sizeof keys[nk], "%.*s", (int)kl, p);
        p += kl + (p[kl] == '=');
        size_t vl = 0;
        for (;;) {
            if (*p == '\0')
                break;
            if (*p == '\\' && p[1]) {
                vals[nk][vl++] = p[1] == 'n' ? '\n' : p[1] == 'r' ? '\r' : p[1];
                p += 2;
                continue;
            }
            if (*p == '=') { /* the start of the next key: back to the last space */
                while (vl > 0 && vals[nk][vl - 1] != ' ') {
                    vl--;
                    p--;
                }
                vl--; /* the space */
                break;
            }
            vals[nk][vl++] = *p++;
        }
        vals[nk][vl] = '\0';
        nk++;
    }
    const char *want[][2] = {
        {"rt", "1700000100456"}, {"start", "1700000100000"}, {"externalId", "alr_fedcba9876543210fedcba98"},
        {"suser", "user_<!channel>&\"q\"|p=1\\b"}, {"src", "2001:db8::7"},
        {"requestClientApplication", "curl/8 \\ = |"},
        {"cat", "session.ended"}, {"cnt", "4"}, {"cs1", "ip:2001:db8::7"}, {"cs1Label", "key"},
        {"cs2", "sess_a=b|c"}, {"cs5", "S\xc3\xa3o \"Paulo\"\n=|, ZZ"}, {"cs6", "spray,a,b"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *got = NULL;
        for (size_t j = 0; j < nk; j++)
            if (strcmp(keys[j], want[i][0]) == 0)
                got = vals[j];
        char name[128];
        snprintf(name, sizeof name, "cef: %s reads back as sent", want[i][0]);
        CHECK(name, got != NULL && strcmp(got, want[i][1]) == 0);
        if (got == NULL || strcmp(got, want[i][1]) != 0)
            printf("  got '%s'\n  in: %s\n", got != NULL ? got : "(none)", r);
    }
    free(r);
}

/* path "a.b.c" in o, NULL when absent */
static json_t *json_path(json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = o;
    for (char *save = NULL, *part = strtok_r(buf, ".", &save); part != NULL && cur != NULL;
         part = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, part);
    return cur;
}

/* Each required path of class_uid in req (tests/alert/ocsf-required.json) is in o. */
static bool has_required(json_t *req, json_t *o, const char *what)
{
    json_int_t cls = json_integer_value(json_object_get(o, "class_uid"));
    char key[16];
    snprintf(key, sizeof key, "%lld", (long long)cls);
    json_t *spec = json_object_get(json_object_get(req, "classes"), key);
    if (spec == NULL) {
        printf("%s: class_uid %s is not in ocsf-required.json\n", what, key);
        return false;
    }
    bool ok = true;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(spec, "required"), i, v) {
        json_t *got = json_path(o, json_string_value(v));
        if (got == NULL || json_is_null(got)) {
            printf("%s (class %s): required %s is missing\n", what, key, json_string_value(v));
            ok = false;
        }
    }
    json_int_t cat = json_integer_value(json_object_get(spec, "category_uid"));
    json_int_t act = json_integer_value(json_object_get(o, "activity_id"));
    if (json_integer_value(json_object_get(o, "category_uid")) != cat ||
        json_integer_value(json_object_get(o, "type_uid")) != cls * 100 + act) {
        printf("%s: category_uid must be %lld and type_uid class_uid*100+activity_id\n", what, (long long)cat);
        ok = false;
    }
    const char *product_name = json_string_value(json_path(o, "metadata.product.name"));
    return ok && product_name != NULL && json_array_size(json_object_get(spec, "required")) >= 7;
}

static void test_ocsf_required(void)
{
    json_error_t je;
    json_t *req = json_load_file(GOLDEN_DIR "ocsf-required.json", 0, &je);
    CHECK("ocsf: ocsf-required.json loads", req != NULL);
    if (req == NULL) {
        printf("  %s:%d: %s\n", GOLDEN_DIR "ocsf-required.json", je.line, je.text);
        return;
    }
    alert_sink_config c;
    store_alert a;
    event_type types[] = {EVENT_SESSION_CREATED, EVENT_SESSION_ENDED, EVENT_USER_CREATED, EVENT_USER_UPDATED};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        for (int hostile = 0; hostile < 2; hostile++) {
            if (hostile)
                hostile_alert(&a);
            else
                golden_alert(&a);
            a.event_type = types[t];
            char *r = NULL, name[128];
            json_t *o = parse("stdout", &c) && opt(&c, "format", "ocsf") &&
                                alert_render(&c, &a, &r, NULL, err, sizeof err) == 0
                            ? json_loads(r, 0, &je)
                            : NULL;
            snprintf(name, sizeof name, "ocsf %s%s: the finding has 2004's required fields",
                     event_type_name(types[t]), hostile ? " (hostile)" : "");
            CHECK(name, o != NULL && json_integer_value(json_object_get(o, "class_uid")) == 2004 &&
                            has_required(req, o, "finding"));
            json_t *ev = json_array_get(json_object_get(o, "evidences"), 0);
            json_int_t want = event_type_is_session(types[t]) ? 3002 : 3001;
            snprintf(name, sizeof name, "ocsf %s%s: the evidence is a %lld with its required fields",
                     event_type_name(types[t]), hostile ? " (hostile)" : "", (long long)want);
            CHECK(name, ev != NULL && json_integer_value(json_object_get(ev, "class_uid")) == want &&
                            has_required(req, ev, "evidence"));
            json_decref(o);
            free(r);
        }
    }
    golden_alert(&a);
    char *r = NULL;
    json_t *o = parse("stdout", &c) && opt(&c, "format", "ocsf") && alert_render(&c, &a, &r, NULL, err, sizeof err) == 0
                    ? json_loads(r, 0, &je)
                    : NULL;
    CHECK("ocsf: severity high is 4", json_integer_value(json_object_get(o, "severity_id")) == 4);
    CHECK("ocsf: time is raised_ms", json_integer_value(json_object_get(o, "time")) == RAISED_MS);
    CHECK("ocsf: finding uid is the alert id",
          strcmp(json_string_value(json_path(o, "finding_info.uid")) ?: "", a.id) == 0);
    CHECK("ocsf: evidence src_endpoint.location.country",
          strcmp(json_string_value(json_path(json_array_get(json_object_get(o, "evidences"), 0),
                                             "src_endpoint.location.country")) ?: "", "FR") == 0);
    json_decref(o);
    free(r);
    json_decref(req);
}

int main(void)
{
    test_parse_kinds();
    test_parse_refusals();
    test_parse_ids();
    test_options();
    test_wants();
    test_syslog_severity();
    test_syslog_remote();
    test_syslog_local();
    test_syslog_small_buffer();
    ingest_secret secret, other;
    test_webhook_secret(&secret, &other);
    test_webhook_request(&secret, &other);
    test_format_options();
    test_format_golden();
    test_format_one_line();
    test_cef_parse_back();
    test_ocsf_required();
    return check_summary();
}
