/* log.c: logfmt lines on stderr, one write(2) each. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

static log_level current_level = LOG_INFO;

void log_set_level(log_level lvl) { current_level = lvl; }
log_level log_get_level(void) { return current_level; }

int log_parse_level(const char *s, log_level *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    return -1;
}

void log_line(log_level lvl, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (lvl > current_level)
        return;
    char line[2048], ts[UTIL_RFC3339_LEN];
    util_format_rfc3339(util_now_ms(), ts, sizeof ts);
    int n = snprintf(line, sizeof line, "ts=%s level=%s ", ts, names[lvl]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    /* A failed log write has nowhere to be reported; the server must go on. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

const char *log_quote(const char *s, char *buf, size_t len)
{
    /* Control bytes, C1 controls and invalid UTF-8 become visible escapes (\n,
     * \x1b) rather than vanishing: a hostile value can neither start a forged log
     * line nor pass for another value ("1.2.3.4\n5.6.7.8" must not log as
     * "1.2.3.45.6.7.8"). util_term_escape doubles '\', so only '"' is left. */
    char esc[1024];
    util_term_escape(s, strlen(s), esc, sizeof esc);
    bool plain = esc[0] != '\0' && strcmp(esc, s) == 0;
    for (const char *p = esc; *p && plain; p++)
        if (*p == ' ' || *p == '"' || *p == '=')
            plain = false;
    if (plain) {
        util_copy_utf8(buf, len, esc, strlen(esc));
        return buf;
    }
    size_t o = 0;
    buf[o++] = '"';
    for (const char *p = esc; *p && o + 3 < len; p++) {
        if (*p == '"')
            buf[o++] = '\\';
        buf[o++] = *p;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
