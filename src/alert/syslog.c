/*
 * syslog.c: the bytes of one syslog message per alert.
 *   remote (syslog://, syslog+tcp://), RFC 5424:
 *     <PRI>1 TIMESTAMP HOSTNAME veille PROCID MSGID [veille@32473 id=.. rule=..] BODY
 *   local (syslog, syslog:PATH), the format syslog(3) writes to /dev/log, which
 *   every local daemon (rsyslog, syslog-ng, journald) parses:
 *     <PRI>Mmm dd HH:MM:SS veille[PID]: BODY
 * BODY is the alert in the sink's --format: JSON by default, or a CEF line.
 * 32473 is the enterprise number RFC 5612 sets aside for examples; veille has
 * no number of its own, and an SD-ID with '@' is what RFC 5424 asks of
 * non-IANA names.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alert/alert.h"
#include "util/util.h"

#define SD_ID "veille@32473"
#define MSGID_MAX 32

int alert_syslog_severity(const char *severity)
{
    switch (alert_severity_rank(severity)) {
    case ALERT_SEVERITY_CRITICAL: return 2;
    case ALERT_SEVERITY_HIGH: return 3;
    case ALERT_SEVERITY_MEDIUM: return 4;
    case ALERT_SEVERITY_LOW: return 5;
    default: return 6; /* info, or a severity this version does not know */
    }
}

typedef struct {
    char *buf;
    size_t cap, len;
    bool overflow;
} out_buf;

static void put(out_buf *o, const char *p, size_t n)
{
    if (o->overflow || n > o->cap - o->len) {
        o->overflow = true;
        return;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

static void putf(out_buf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(out_buf *o, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        o->overflow = true;
    else
        put(o, tmp, (size_t)n);
}

/* A header field: printable US-ASCII without spaces, at most max bytes; "-"
 * (the NILVALUE) when nothing is left. */
static void put_token(out_buf *o, const char *s, size_t max)
{
    size_t n = 0;
    for (const char *p = s; *p && n < max; p++)
        if (*p > 32 && *p < 127) {
            put(o, p, 1);
            n++;
        }
    if (n == 0)
        put(o, "-", 1);
}

/* SD-PARAM, left out when empty; '"', '\' and ']' escaped as RFC 5424 says. */
static void put_param(out_buf *o, const char *name, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return;
    putf(o, " %s=\"", name);
    for (const char *p = value; *p; p++) {
        if (*p == '"' || *p == '\\' || *p == ']')
            put(o, "\\", 1);
        put(o, p, 1);
    }
    put(o, "\"", 1);
}

int alert_syslog_format(const alert_sink_config *c, const store_alert *a, const char *hostname, int pid,
                        char *buf, size_t cap, size_t *len, char *err, size_t errlen)
{
    out_buf o = { buf, cap, 0, false };
    int pri = c->facility * 8 + alert_syslog_severity(a->severity);
    if (c->kind == ALERT_SINK_SYSLOG_UDP || c->kind == ALERT_SINK_SYSLOG_TCP) {
        char ts[UTIL_RFC3339_LEN];
        util_format_rfc3339(a->raised_ms, ts, sizeof ts);
        putf(&o, "<%d>1 %s ", pri, ts);
        put_token(&o, hostname, 255);
        putf(&o, " veille %d ", pid);
        put_token(&o, a->rule, MSGID_MAX);
        put(&o, " [" SD_ID, strlen(" [" SD_ID));
        put_param(&o, "id", a->id);
        put_param(&o, "rule", a->rule);
        put_param(&o, "severity", a->severity);
        put_param(&o, "user", a->user_id);
        put_param(&o, "ip", a->ip);
        put_param(&o, "session", a->session_id);
        put(&o, "] ", 2);
    } else {
        time_t secs = (time_t)(a->raised_ms / 1000);
        struct tm tm;
        char ts[32];
        if (localtime_r(&secs, &tm) == NULL || strftime(ts, sizeof ts, "%b %e %H:%M:%S", &tm) == 0)
            snprintf(ts, sizeof ts, "Jan  1 00:00:00");
        putf(&o, "<%d>%s veille[%d]: ", pri, ts, pid);
    }
    char *body = NULL;
    size_t body_len = 0;
    if (alert_render(c, a, &body, &body_len, err, errlen) < 0)
        return -1;
    put(&o, body, body_len);
    free(body);
    if (o.overflow)
        return util_err(err, errlen, "alert %s: the syslog message is longer than %zu bytes", a->id, cap);
    *len = o.len;
    return 0;
}
