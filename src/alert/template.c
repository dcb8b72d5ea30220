/*
 * template.c: --template FILE, a text with placeholders, for chat tools and
 * ticketing webhooks veille has no format of its own for.
 *   {{ name }}          the alert's field, escaped as a JSON string's content
 *   {{ name | url }}    percent-encoded (query strings, form bodies)
 *   {{ name | html }}   & < > " ' as entities
 * That is the whole language: a placeholder names a field from a fixed table
 * and one escaping; nothing is evaluated, so a template cannot run code or
 * read anything but the alert. Everything else is copied as it is. "{{" always
 * opens a placeholder. The file is read and checked once, when the option is
 * given, with FILE:LINE:COL errors; one final line end is dropped (editors add
 * it; a sink adds its own).
 * The trap: escaping is by default, and JSON's, because a template is most often
 * a JSON body; a value from a delivery ("\"}, \"x\": \"") then stays inside its
 * string.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alert/internal.h"
#include "engine/engine.h"
#include "util/util.h"

typedef enum {
    T_ID, T_RULE, T_SEVERITY, T_KEY, T_USER_ID, T_USER_NAME, T_IP, T_COUNTRY, T_CITY, T_LOCATION, T_USER_AGENT,
    T_SESSION_ID, T_EVENT_ID, T_EVENT_TYPE, T_INSTANCE_ID, T_AT, T_RAISED_AT, T_AT_MS, T_RAISED_MS, T_SUMMARY,
    T_SUPPRESSED, T_TAGS, T_EVIDENCE, T_COMMAND,
} field_id;

static const char *const field_names[] = {
    [T_ID] = "id", [T_RULE] = "rule", [T_SEVERITY] = "severity", [T_KEY] = "key", [T_USER_ID] = "user_id",
    [T_USER_NAME] = "user_name", [T_IP] = "ip", [T_COUNTRY] = "country", [T_CITY] = "city",
    [T_LOCATION] = "location", [T_USER_AGENT] = "user_agent", [T_SESSION_ID] = "session_id",
    [T_EVENT_ID] = "event_id", [T_EVENT_TYPE] = "event_type", [T_INSTANCE_ID] = "instance_id", [T_AT] = "at",
    [T_RAISED_AT] = "raised_at", [T_AT_MS] = "at_ms", [T_RAISED_MS] = "raised_ms", [T_SUMMARY] = "summary",
    [T_SUPPRESSED] = "suppressed", [T_TAGS] = "tags", [T_EVIDENCE] = "evidence", [T_COMMAND] = "command",
};
#define N_FIELDS (sizeof field_names / sizeof field_names[0])

typedef enum { ESC_JSON, ESC_URL, ESC_HTML } escape_kind;
static const char *const escape_names[] = {[ESC_JSON] = "json", [ESC_URL] = "url", [ESC_HTML] = "html"};
#define N_ESCAPES (sizeof escape_names / sizeof escape_names[0])

static int lookup(const char *const *names, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
            return (int)i;
    return -1;
}

typedef struct {
    field_id field;
    escape_kind escape;
    size_t end; /* offset just past the closing braces */
} placeholder;

/* The placeholder whose "{{" is at text + at. On error fills err with
 * PATH:LINE:COL and returns -1. */
static int parse_placeholder(const char *path, const char *text, size_t at, placeholder *ph, char *err, size_t errlen)
{
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at; i++) {
        if (text[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    const char *p = text + at + 2, *close = strstr(p, "}}");
    const char *nl = strchr(p, '\n');
    if (close == NULL || (nl != NULL && nl < close))
        return util_err(err, errlen, "%s:%zu:%zu: '{{' without its closing '}}' on the same line", path, line, col);
    const char *bar = memchr(p, '|', (size_t)(close - p));
    const char *name_end = bar != NULL ? bar : close;
    while (p < name_end && isspace((unsigned char)*p))
        p++;
    const char *q = name_end;
    while (q > p && isspace((unsigned char)q[-1]))
        q--;
    int f = lookup(field_names, N_FIELDS, p, (size_t)(q - p));
    if (f < 0) /* the whole list does not fit in an error message */
        return util_err(err, errlen, "%s:%zu:%zu: unknown placeholder '%.*s' (fields: id, rule, severity, user_id, "
                        "ip, location, summary, command, ...; README lists them all)", path, line, col,
                        (int)(q - p > 64 ? 64 : q - p), p);
    ph->field = (field_id)f;
    ph->escape = ESC_JSON;
    if (bar != NULL) {
        const char *e = bar + 1, *ee = close;
        while (e < ee && isspace((unsigned char)*e))
            e++;
        while (ee > e && isspace((unsigned char)ee[-1]))
            ee--;
        int k = lookup(escape_names, N_ESCAPES, e, (size_t)(ee - e));
        if (k < 0)
            return util_err(err, errlen, "%s:%zu:%zu: unknown escaping '%.*s' (json, url, html)", path, line, col,
                            (int)(ee - e > 64 ? 64 : ee - e), e);
        ph->escape = (escape_kind)k;
    }
    ph->end = (size_t)(close + 2 - text);
    return 0;
}

int alert_template_load(alert_sink_config *c, const char *path, char *err, size_t errlen)
{
    if (path[0] == '\0' || strlen(path) >= sizeof c->template_path)
        return util_err(err, errlen, "template: expected the path of a template file");
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return util_err(err, errlen, "template: cannot open %s: %s", path, strerror(errno));
    char *text = c->template_text;
    size_t n = fread(text, 1, sizeof c->template_text, f);
    bool read_error = ferror(f) != 0;
    fclose(f);
    if (read_error)
        return util_err(err, errlen, "template: cannot read %s", path);
    if (n >= sizeof c->template_text)
        return util_err(err, errlen, "template: %s is larger than %d bytes", path, ALERT_TEMPLATE_MAX - 1);
    text[n] = '\0';
    if (strlen(text) != n)
        return util_err(err, errlen, "template: %s holds a NUL byte: is it a text file?", path);
    if (n > 0 && text[n - 1] == '\n')
        text[--n] = '\0';
    if (n > 0 && text[n - 1] == '\r')
        text[--n] = '\0';
    if (n == 0)
        return util_err(err, errlen, "template: %s is empty", path);
    char sub[UTIL_ERRLEN];
    for (const char *p = strstr(text, "{{"); p != NULL;) {
        placeholder ph;
        if (parse_placeholder(path, text, (size_t)(p - text), &ph, sub, sizeof sub) < 0) {
            c->template_text[0] = '\0';
            return util_err(err, errlen, "template: %s", sub);
        }
        p = strstr(text + ph.end, "{{");
    }
    snprintf(c->template_path, sizeof c->template_path, "%s", path);
    return 0;
}

/* The field's text into buf (which may be unused: a pointer into a is returned). */
static const char *field_text(const store_alert *a, field_id f, char *buf, size_t len)
{
    switch (f) {
    case T_ID: return a->id;
    case T_RULE: return a->rule;
    case T_SEVERITY: return a->severity;
    case T_KEY: return a->key;
    case T_USER_ID: return a->user_id;
    case T_USER_NAME: return a->user_name;
    case T_IP: return a->ip;
    case T_COUNTRY: return a->country;
    case T_CITY: return a->city;
    case T_LOCATION: alert_location_text(a, buf, len); return buf;
    case T_USER_AGENT: return a->user_agent;
    case T_SESSION_ID: return a->session_id;
    case T_EVENT_ID: return a->event_id;
    case T_EVENT_TYPE: return event_type_name(a->event_type);
    case T_INSTANCE_ID: return a->instance_id;
    case T_AT: util_format_rfc3339(a->at_ms, buf, len); return buf;
    case T_RAISED_AT: util_format_rfc3339(a->raised_ms, buf, len); return buf;
    case T_AT_MS: snprintf(buf, len, "%lld", (long long)a->at_ms); return buf;
    case T_RAISED_MS: snprintf(buf, len, "%lld", (long long)a->raised_ms); return buf;
    case T_SUMMARY: return a->summary;
    case T_SUPPRESSED: snprintf(buf, len, "%lld", (long long)a->suppressed); return buf;
    case T_TAGS:
    case T_EVIDENCE: {
        /* "a, b" and "name = value, ..." as the summary shows them */
        size_t used = 0;
        buf[0] = '\0';
        size_t n = f == T_TAGS ? a->n_tags : a->n_evidence;
        for (size_t i = 0; i < n && i < (f == T_TAGS ? STORE_ALERT_TAGS_MAX : STORE_EVIDENCE_MAX) && used < len; i++) {
            int w;
            if (f == T_TAGS) {
                w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", a->tags[i]);
            } else {
                char val[176];
                engine_evidence_text(&a->evidence[i], val, sizeof val);
                w = snprintf(buf + used, len - used, "%s%s = %s", i ? ", " : "", a->evidence[i].name, val);
            }
            used = w < 0 ? len : used + (size_t)w;
        }
        return buf;
    }
    case T_COMMAND: snprintf(buf, len, ALERT_SHOW_COMMAND "%s", a->id); return buf;
    }
    return "";
}

static void put_escaped(FILE *out, escape_kind k, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        switch (k) {
        case ESC_JSON:
            if (ch == '"' || ch == '\\')
                fprintf(out, "\\%c", ch);
            else if (ch == '\n')
                fputs("\\n", out);
            else if (ch == '\r')
                fputs("\\r", out);
            else if (ch == '\t')
                fputs("\\t", out);
            else if (ch < 0x20 || ch == 0x7f)
                fprintf(out, "\\u%04x", ch);
            else
                fputc(ch, out);
            break;
        case ESC_URL:
            if (isalnum(ch) || strchr("-._~", ch) != NULL)
                fputc(ch, out);
            else
                fprintf(out, "%%%02X", ch);
            break;
        case ESC_HTML:
            switch (ch) {
            case '&': fputs("&amp;", out); break;
            case '<': fputs("&lt;", out); break;
            case '>': fputs("&gt;", out); break;
            case '"': fputs("&quot;", out); break;
            case '\'': fputs("&#39;", out); break;
            default: fputc(ch < 0x20 || ch == 0x7f ? ' ' : ch, out); /* one line, like the other escapings */
            }
            break;
        }
    }
}

char *alert_template_render(const alert_sink_config *c, const store_alert *a)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *out = open_memstream(&buf, &n);
    if (out == NULL)
        return NULL;
    const char *text = c->template_text;
    char err[UTIL_ERRLEN];
    size_t at = 0;
    for (const char *p = strstr(text, "{{"); p != NULL; p = strstr(text + at, "{{")) {
        placeholder ph;
        /* checked at load: a failure here means the text changed, and the rest is copied */
        if (parse_placeholder(c->template_path, text, (size_t)(p - text), &ph, err, sizeof err) < 0)
            break;
        fwrite(text + at, 1, (size_t)(p - text) - at, out);
        char tmp[STORE_EVIDENCE_MAX * 300];
        put_escaped(out, ph.escape, field_text(a, ph.field, tmp, sizeof tmp));
        at = ph.end;
    }
    fputs(text + at, out);
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
