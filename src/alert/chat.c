/*
 * chat.c: the alert as a chat message, for webhook sinks pointed at a chat's
 * incoming webhook.
 *   slack: {"text": fallback, "blocks": [header, section (summary; fields rule,
 *          severity, user, IP, location), context (the command to run)]}
 *   teams: {"type": "message", "attachments": [an Adaptive Card 1.4]}
 * JSON escaping is jansson's. On top of it each value from a delivery is
 * escaped for the markup it lands in (the trap: JSON-valid is not inert):
 *   Slack mrkdwn: '&' '<' '>' as &amp; &lt; &gt; (Slack's own rule; '<' would
 *     otherwise open a link or an @channel mention)
 *   Adaptive Card markdown (TextBlock, FactSet): the characters of the markup
 *     Adaptive Cards render (emphasis, links, code) get CommonMark's backslash,
 *     so a city of "[x](https://...)" is text
 * and control bytes become spaces in both. plain_text (Slack's header) is not
 * markup and is left as it is.
 */
#include <stdlib.h>
#include <string.h>

#include "alert/internal.h"

typedef enum { MARKUP_SLACK, MARKUP_TEAMS } markup;

/* s escaped for m into out (cut to fit on a character boundary). */
static void escape_markup(markup m, const char *s, char *out, size_t len)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[8];
        const char *rep = tmp;
        tmp[0] = (char)(*p < 0x20 || *p == 0x7f ? ' ' : *p);
        tmp[1] = '\0';
        if (m == MARKUP_SLACK)
            rep = *p == '&' ? "&amp;" : *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : tmp;
        else if (strchr("\\`*_[]()~", *p) != NULL) {
            tmp[0] = '\\';
            tmp[1] = (char)*p;
            tmp[2] = '\0';
        }
        size_t rl = strlen(rep);
        if (n + rl >= len)
            break;
        /* a multi-byte character goes whole or not at all */
        if ((*p & 0xC0) == 0xC0) {
            size_t cl = (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : 4;
            if (n + cl >= len)
                break;
        }
        memcpy(out + n, rep, rl);
        n += rl;
    }
    out[n] = '\0';
}

/* The values both messages show, escaped for m; "-" for what is unknown. */
typedef struct {
    char rule[3 * 64], severity[64], user[3 * EVENT_ID_MAX], ip[3 * EVENT_IP_MAX];
    char location[3 * (EVENT_TEXT_MAX + 96)], summary[3 * 512], command[3 * STORE_ALERT_ID_MAX + 32];
} chat_fields;

static void fields_of(const store_alert *a, markup m, chat_fields *f)
{
    char loc[EVENT_TEXT_MAX + 96], cmd[STORE_ALERT_ID_MAX + 32];
    alert_location_text(a, loc, sizeof loc);
    snprintf(cmd, sizeof cmd, ALERT_SHOW_COMMAND "%s", a->id);
    escape_markup(m, a->rule, f->rule, sizeof f->rule);
    escape_markup(m, alert_severity_title(a->severity), f->severity, sizeof f->severity);
    escape_markup(m, a->user_id[0] ? a->user_id : "-", f->user, sizeof f->user);
    escape_markup(m, a->ip[0] ? a->ip : "-", f->ip, sizeof f->ip);
    escape_markup(m, loc[0] ? loc : "-", f->location, sizeof f->location);
    escape_markup(m, a->summary, f->summary, sizeof f->summary);
    escape_markup(m, cmd, f->command, sizeof f->command);
}

/* The five facts both messages list, each made into an element by make. */
static json_t *fact_list(const chat_fields *f, json_t *(*make)(const char *title, const char *value))
{
    const char *const titles[] = {"Rule", "Severity", "User", "IP", "Location"};
    const char *const values[] = {f->rule, f->severity, f->user, f->ip, f->location};
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < sizeof titles / sizeof titles[0]; i++)
        if (json_array_append_new(list, make(titles[i], values[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    return list;
}

static json_t *slack_field(const char *title, const char *value)
{
    char text[2048];
    snprintf(text, sizeof text, "*%s*\n%s", title, value);
    return json_pack("{s:s,s:s}", "type", "mrkdwn", "text", text);
}

char *alert_format_slack(const store_alert *a)
{
    chat_fields f;
    fields_of(a, MARKUP_SLACK, &f);
    /* Slack caps a header at 150 characters; rule names are at most 63 bytes */
    char header[160], fallback[2048], command[sizeof f.command + 2];
    snprintf(header, sizeof header, "%s alert: %s", alert_severity_title(a->severity), a->rule);
    snprintf(fallback, sizeof fallback, "[%s] %s: %s", f.severity, f.rule, f.summary);
    snprintf(command, sizeof command, "`%s`", f.command);
    json_t *fields = fact_list(&f, slack_field);
    if (fields == NULL)
        return NULL;
    /* "o" steals the fields array, also when json_pack fails */
    return alert_json_dump(json_pack(
        "{s:s,s:[{s:s,s:{s:s,s:s}},{s:s,s:{s:s,s:s},s:o},{s:s,s:[{s:s,s:s}]}]}", "text", fallback, "blocks",
        "type", "header", "text", "type", "plain_text", "text", header,
        "type", "section", "text", "type", "mrkdwn", "text", f.summary, "fields", fields,
        "type", "context", "elements", "type", "mrkdwn", "text", command));
}

static json_t *fact(const char *title, const char *value)
{
    return json_pack("{s:s,s:s}", "title", title, "value", value);
}

char *alert_format_teams(const store_alert *a)
{
    chat_fields f;
    fields_of(a, MARKUP_TEAMS, &f);
    char title[sizeof f.severity + sizeof f.rule + 16];
    snprintf(title, sizeof title, "%s alert: %s", f.severity, f.rule);
    int rank = alert_severity_rank(a->severity);
    const char *color = rank >= ALERT_SEVERITY_HIGH     ? "Attention"
                        : rank == ALERT_SEVERITY_MEDIUM ? "Warning"
                                                        : "Default";
    json_t *facts = fact_list(&f, fact);
    if (facts == NULL)
        return NULL;
    json_t *card = json_pack(
        "{s:s,s:s,s:s,s:[{s:s,s:s,s:s,s:s,s:s,s:b},{s:s,s:s,s:b},{s:s,s:o},{s:s,s:s,s:s,s:b,s:b}]}",
        "$schema", "http://adaptivecards.io/schemas/adaptive-card.json", "type", "AdaptiveCard", "version", "1.4",
        "body",
        "type", "TextBlock", "text", title, "weight", "Bolder", "size", "Medium", "color", color, "wrap", 1,
        "type", "TextBlock", "text", f.summary, "wrap", 1,
        "type", "FactSet", "facts", facts,
        "type", "TextBlock", "text", f.command, "fontType", "Monospace", "isSubtle", 1, "wrap", 1);
    return alert_json_dump(json_pack("{s:s,s:[{s:s,s:n,s:o}]}", "type", "message", "attachments", "contentType",
                                     "application/vnd.microsoft.card.adaptive", "contentUrl", "content", card));
}
