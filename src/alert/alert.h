/*
 * alert.h: where alerts go once raised. This module knows the sinks' settings
 * (spec.c), the alert's JSON form and the local sinks (alert.c), its other
 * formats (format.c and the renderers), and the exact bytes each remote sink
 * sends: syslog lines (syslog.c) and signed webhook requests (webhook.c).
 * Sending them over the network is src/deliver's job.
 *
 * Local sinks (`stdout`, `file:PATH`) are written and fsync'd before the
 * transaction that holds the alert commits: at-least-once, the same id on a
 * retry. Remote sinks (syslog, webhook) are fed from the store's outbox.
 *
 * Ownership: alert_sinks owns its file descriptors; one thread writes at a time.
 */
#ifndef VEILLE_ALERT_H
#define VEILLE_ALERT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest/ingest.h"
#include "store/store.h"

#define ALERT_SINKS_MAX 16
#define ALERT_SPEC_MAX 512
#define ALERT_HEADERS_MAX 8
#define ALERT_HEADER_MAX 512
#define ALERT_TEMPLATE_MAX 8192 /* bytes of a --template file */

/* ---- sink settings (spec.c) ---- */

typedef enum {
    ALERT_SINK_STDOUT,
    ALERT_SINK_FILE,
    ALERT_SINK_SYSLOG_LOCAL, /* unix datagram socket, /dev/log by default */
    ALERT_SINK_SYSLOG_UDP,
    ALERT_SINK_SYSLOG_TCP,
    ALERT_SINK_WEBHOOK,
} alert_sink_kind;

/* What a sink sends for each alert (--format NAME, --template FILE). */
typedef enum {
    ALERT_FORMAT_JSON = 0, /* veille's own object (alert_to_json): every sink, the default */
    ALERT_FORMAT_OCSF,     /* OCSF 1.1 Detection Finding (2004): every sink */
    ALERT_FORMAT_CEF,      /* ArcSight CEF:0 text: stdout, file and syslog sinks */
    ALERT_FORMAT_SLACK,    /* Slack incoming-webhook blocks: webhook sinks */
    ALERT_FORMAT_TEAMS,    /* Teams message with an Adaptive Card: webhook sinks */
    ALERT_FORMAT_TEMPLATE, /* the sink's --template, placeholders filled and escaped */
} alert_format;

/* Severities in rank order; ALERT_SEVERITY_ANY lets every alert through. */
enum { ALERT_SEVERITY_INFO = 0, ALERT_SEVERITY_LOW, ALERT_SEVERITY_MEDIUM, ALERT_SEVERITY_HIGH,
       ALERT_SEVERITY_CRITICAL, ALERT_SEVERITY_ANY = ALERT_SEVERITY_INFO };

typedef struct {
    char spec[ALERT_SPEC_MAX];         /* as given */
    alert_sink_kind kind;
    char label[STORE_SINK_LABEL_MAX];  /* spec without user:password@ or ?query: metrics, logs, outbox */
    uint64_t id;                       /* outbox key: a hash of spec */
    int min_severity;                  /* rank; alerts below it are not sent here */
    int facility;                      /* syslog facility number (authpriv = 10) */
    char path[PATH_MAX];               /* file: and local syslog socket */
    char host[256];                    /* remote syslog, webhook */
    int port;
    bool tls;                          /* webhook https */
    char target[ALERT_SPEC_MAX];       /* webhook request target: path and query */
    char headers[ALERT_HEADERS_MAX][ALERT_HEADER_MAX]; /* webhook extra "Name: value" */
    size_t n_headers;
    char ca_file[PATH_MAX];            /* webhook https: CA bundle instead of the system's */
    alert_format format;               /* --format, ALERT_FORMAT_JSON unless given */
    bool format_given;                 /* --format or --template was given: a second one is refused */
    char template_path[PATH_MAX];      /* --template FILE, for messages */
    char template_text[ALERT_TEMPLATE_MAX]; /* its text, read and checked when the option is set */
} alert_sink_config;

/* Parse one --alert SPEC: stdout, file:PATH, syslog, syslog:PATH,
 * syslog://HOST:PORT, syslog+tcp://HOST:PORT, webhook:http(s)://HOST[:PORT]/PATH.
 * Opens nothing. Defaults: every severity, facility authpriv. */
int alert_sink_parse(const char *spec, alert_sink_config *out, char *err, size_t errlen);
/* Apply a per-sink option (min-severity, facility, header, ca, format,
 * template) to the sink it follows; an option that means nothing for that kind
 * of sink is an error. The message starts with the option's name ("facility:
 * ..."): callers add no name. template reads FILE now and refuses a template
 * with errors (FILE:LINE:COL: ...), so a typo shows at start-up. */
int alert_sink_set_option(alert_sink_config *c, const char *name, const char *value, char *err, size_t errlen);
/* The per-sink option names, in the order of the usage text; NULL-terminated.
 * CLI parsers (serve, config file, test-alert) take their sink options from it. */
extern const char *const alert_sink_options[];
bool alert_sink_is_option(const char *name);
/* True for the sinks fed from the outbox (syslog and webhook). */
bool alert_sink_is_remote(const alert_sink_config *c);
/* Whether a goes to this sink (its severity reaches min_severity, and it is
 * not a later alert of an incident: incident_quiet). */
bool alert_sink_wants(const alert_sink_config *c, const store_alert *a);
/* "info".."critical" -> 0..4; -1 for anything else. */
int alert_severity_rank(const char *severity);

/* ---- the alert as JSON (alert.c) ---- */

/* The alert as one JSON object, no newline, NUL-terminated, malloc'd (caller
 * frees); NULL when out of memory. */
char *alert_to_json(const store_alert *a);

/* ---- formats (format.c; ocsf.c, cef.c, chat.c, template.c) ---- */

/* "json", "ocsf", "cef", "slack", "teams", "template". */
const char *alert_format_name(alert_format f);
/* The bytes c sends for a, in c's format: one JSON object, CEF text or the
 * filled template, without a line end; NUL-terminated, malloc'd (caller frees),
 * *len its length (may be NULL). Every value from a delivery is escaped for the
 * format. Fails on no memory (or text jansson refuses as invalid UTF-8). */
int alert_render(const alert_sink_config *c, const store_alert *a, char **out, size_t *len, char *err,
                 size_t errlen);
/* The OCSF schema version the ocsf format follows. */
#define ALERT_OCSF_VERSION "1.1.0"

/* ---- local sinks (alert.c) ---- */

typedef struct alert_sinks alert_sinks;

/* Open the local sinks among cfgs (remote ones are skipped); on error nothing
 * stays open and err names the sink. n == 0 is valid. */
int alert_sinks_open(const alert_sink_config *cfgs, size_t n, alert_sinks **out, char *err, size_t errlen);
void alert_sinks_close(alert_sinks *s); /* NULL is a no-op */
size_t alert_sinks_count(const alert_sinks *s);
/* Write one alert line to every local sink that wants it (buffered for files
 * until alert_sinks_sync). */
int alert_sinks_write(alert_sinks *s, const store_alert *a, char *err, size_t errlen);
/* Make what was written durable: flush stdout, fsync files. */
int alert_sinks_sync(alert_sinks *s, char *err, size_t errlen);

/* ---- syslog messages (syslog.c) ---- */

/* syslog severity of an alert: critical 2, high 3, medium 4, low 5, info 6. */
int alert_syslog_severity(const char *severity);
/* The message for c: RFC 5424 for syslog:// and syslog+tcp:// (without the TCP
 * length prefix), the traditional local format otherwise. Writes at most cap
 * bytes, no NUL; *len is the length. Fails when it does not fit or on no memory. */
int alert_syslog_format(const alert_sink_config *c, const store_alert *a, const char *hostname, int pid,
                        char *buf, size_t cap, size_t *len, char *err, size_t errlen);

/* ---- webhook requests (webhook.c) ---- */

/* The signing scheme is Svix's, which Standard Webhooks took over: the same
 * secret format and HMAC as the deliveries veille verifies (src/ingest). */

/* Parse the one secret ("whsec_<base64>") of VEILLE_ALERT_WEBHOOK_SECRET. */
int alert_webhook_secret_parse(const char *text, ingest_secret *out, char *err, size_t errlen);
/* The whole HTTP/1.1 request for one attempt: POST c->target with the alert
 * body in c's format (alert_render), signed the Standard Webhooks way at now_s, plus c's extra headers.
 * malloc'd (caller frees), *len its length. */
int alert_webhook_request(const alert_sink_config *c, const ingest_secret *secret, const store_alert *a,
                          int64_t now_s, char **out, size_t *len, char *err, size_t errlen);

#endif
