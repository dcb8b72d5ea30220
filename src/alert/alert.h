/*
 * alert.h: where alerts go once raised. Formats an alert as one JSON object
 * (the line every sink carries) and writes it to the configured sinks.
 *
 * Sinks in this version: `stdout` and `file:PATH` (NDJSON, appended, fsync'd
 * before the transaction that holds the alert commits). A write is therefore
 * at-least-once: if the commit then fails, the events are retried and the same
 * alert (same id) is written again.
 *
 * Ownership: alert_sinks owns its file descriptors; one thread writes at a time.
 */
#ifndef VEILLE_ALERT_H
#define VEILLE_ALERT_H

#include <stddef.h>

#include "store/store.h"

#define ALERT_SINKS_MAX 16

typedef struct alert_sinks alert_sinks;

/* Check a --alert SPEC without opening anything (for config checks). */
int alert_spec_check(const char *spec, char *err, size_t errlen);

/* Open every spec; on error nothing stays open and err names the spec. n == 0 is
 * valid (alerts are still stored and counted). */
int alert_sinks_open(const char *const *specs, size_t n, alert_sinks **out, char *err, size_t errlen);
void alert_sinks_close(alert_sinks *s); /* NULL is a no-op */
size_t alert_sinks_count(const alert_sinks *s);

/* Write one alert line to every sink (buffered for files until alert_sinks_sync). */
int alert_sinks_write(alert_sinks *s, const store_alert *a, char *err, size_t errlen);
/* Make what was written durable: flush stdout, fsync files. */
int alert_sinks_sync(alert_sinks *s, char *err, size_t errlen);

/* The alert as one JSON object, no newline, NUL-terminated, malloc'd (caller
 * frees); NULL when out of memory. */
char *alert_to_json(const store_alert *a);

#endif
