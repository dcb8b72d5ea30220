/*
 * log.h: one structured line per event of interest on stderr:
 *   ts=2024-05-28T08:00:00.000Z level=info msg=delivery id=msg_x status=200 ...
 * Each line goes out in a single write(2) so lines from two threads never interleave.
 * Callers never pass secrets; values with spaces are quoted with log_quote().
 */
#ifndef VEILLE_LOG_H
#define VEILLE_LOG_H

#include <stddef.h>

typedef enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } log_level;

/* The one piece of process-wide state besides the server: set once at start-up. */
void log_set_level(log_level lvl);
log_level log_get_level(void);
int log_parse_level(const char *s, log_level *out);

void log_line(log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Render s as a logfmt value: bare when safe, else "quoted" with \" escaped; control
 * bytes and invalid UTF-8 become visible escapes (\n, \x1b) and \ is doubled, as in
 * the CLI's text output (util_term_escape). Cut to fit (len, and 1 KiB of input).
 * Returns buf. */
const char *log_quote(const char *s, char *buf, size_t len);

#endif
