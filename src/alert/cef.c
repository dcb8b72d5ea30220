/*
 * cef.c: the alert as one ArcSight CEF line (Common Event Format, revision 25):
 *   CEF:0|veille|veille|VERSION|RULE|SUMMARY|SEVERITY|rt=.. suser=.. src=.. cs1=.. cs1Label=..
 * Escaping is what CEF asks, and differs between the two halves (the trap):
 *   header fields: '\' -> "\\", '|' -> "\|" ('=' stays as it is)
 *   extension values: '\' -> "\\", '=' -> "\=", newline -> "\n", CR -> "\r" ('|' stays)
 * Other control bytes have no CEF escape: they become spaces, so one alert is
 * always one line whatever a delivery carried. Keys with an empty value are left
 * out. Severity is CEF's 0-10 scale.
 */
#include <stdlib.h>
#include <string.h>

#include "alert/internal.h"

/* CEF 0-10 from veille's levels: info 1, low 3, medium 5, high 8, critical 10
 * (ArcSight reads 0-3 low, 4-6 medium, 7-8 high, 9-10 very high). */
static int cef_severity(const char *severity)
{
    static const int map[] = {1, 3, 5, 8, 10};
    int r = alert_severity_rank(severity);
    return r < 0 ? map[0] : map[r]; /* unknown: as info, like the syslog severity */
}

static void put_header(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\\' || *p == '|')
            fputc('\\', f);
        fputc(*p < 0x20 || *p == 0x7f ? ' ' : *p, f);
    }
    fputc('|', f);
}

static void put_ext(FILE *f, bool *first, const char *key, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return;
    fprintf(f, "%s%s=", *first ? "" : " ", key);
    *first = false;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p == '\\' || *p == '=')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\r')
            fputs("\\r", f);
        else
            fputc(*p < 0x20 || *p == 0x7f ? ' ' : *p, f);
    }
}

char *alert_format_cef(const store_alert *a)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (f == NULL)
        return NULL;
    fputs("CEF:0|", f);
    put_header(f, "veille");
    put_header(f, "veille");
    put_header(f, VEILLE_VERSION);
    put_header(f, a->rule);
    put_header(f, a->summary);
    fprintf(f, "%d|", cef_severity(a->severity));

    char rt[24], start[24], cnt[24], location[EVENT_TEXT_MAX + 96], tags[STORE_ALERT_TAGS_MAX * 64] = "";
    snprintf(rt, sizeof rt, "%lld", (long long)a->raised_ms);
    snprintf(start, sizeof start, "%lld", (long long)a->at_ms);
    snprintf(cnt, sizeof cnt, "%lld", (long long)(1 + a->suppressed));
    alert_location_text(a, location, sizeof location);
    for (size_t i = 0, used = 0; i < a->n_tags && i < STORE_ALERT_TAGS_MAX; i++) {
        int w = snprintf(tags + used, sizeof tags - used, "%s%s", i ? "," : "", a->tags[i]);
        used = w < 0 || (size_t)w >= sizeof tags - used ? sizeof tags - 1 : used + (size_t)w;
    }
    /* standard keys first, then the custom strings, each with its label */
    const struct {
        const char *key, *value, *label;
    } ext[] = {
        {"rt", rt, NULL},
        {"start", start, NULL},
        {"externalId", a->id, NULL},
        {"suser", a->user_id, NULL},
        {"src", a->ip, NULL},
        {"requestClientApplication", a->user_agent, NULL},
        {"cat", event_type_name(a->event_type), NULL},
        {"cnt", cnt, NULL},
        {"cs1", a->key, "key"},
        {"cs2", a->session_id, "sessionId"},
        {"cs3", a->event_id, "deliveryId"},
        {"cs4", a->instance_id, "clerkInstance"},
        {"cs5", location, "location"},
        {"cs6", tags, "tags"},
    };
    bool first = true;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        if (ext[i].value[0] == '\0')
            continue;
        put_ext(f, &first, ext[i].key, ext[i].value);
        if (ext[i].label != NULL) {
            char lk[16];
            snprintf(lk, sizeof lk, "%sLabel", ext[i].key);
            put_ext(f, &first, lk, ext[i].label);
        }
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
