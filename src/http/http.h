/*
 * http.h: `veille serve`, the webhook receiver. One h2o event loop thread parses,
 * verifies and decodes deliveries; the log thread appends them to the write-ahead
 * log in group-commit batches; answers go out once the batch is durable there;
 * the apply thread moves them into the store behind (src/pipeline/).
 *
 *   request -> server.c (route, headers, limits, backpressure)
 *           -> ingest (verify signature on raw bytes, decode JSON)
 *           -> pipeline/ (batch, one log append + fdatasync per batch)
 *           -> server.c (answer every request of the batch)
 *           ... pipeline/ apply thread: log -> LMDB, rules, alerts
 */
#ifndef VEILLE_HTTP_H
#define VEILLE_HTTP_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "alert/alert.h"
#include "console/console.h"
#include "ingest/ingest.h"
#include "ipintel/ipintel.h"
#include "rules/rules.h"

#define HTTP_MAX_ALERT_SPECS ALERT_SINKS_MAX
#define HTTP_MAX_DISABLED_RULES 64

typedef struct {
    char listen_host[256];
    int listen_port;
    char data_dir[PATH_MAX];
    char rules_path[PATH_MAX];
    int rules_explicit;            /* --rules given: a missing file is an error */
    rules_set *rules;              /* loaded and checked by the caller; http_serve takes it.
                                    * NULL with rules_path "": --rules none (detection off) */
    char disabled_rules[HTTP_MAX_DISABLED_RULES][RULES_NAME_MAX + 1]; /* --disable-rule, at start and reload */
    size_t disabled_count;
    alert_sink_config alerts[HTTP_MAX_ALERT_SPECS]; /* --alert, with the options that followed each */
    size_t alert_count;
    int64_t alert_retry_for_ms;    /* remote sinks give an alert up after this long */
    uint64_t outbox_max;           /* pending alerts per remote sink */
    int64_t alert_timeout_ms;      /* one delivery attempt */
    bool has_alert_secret;
    ingest_secret alert_secret;    /* VEILLE_ALERT_WEBHOOK_SECRET, signs webhook sinks */
    size_t max_body;               /* bytes; larger bodies get 413 */
    int64_t retention_ms;          /* history older than this is pruned */
    int64_t risk_history_ms;       /* --risk-history: the user history risk() reads */
    uint64_t risk_min_history;     /* --risk-min-history: sign-ins before risk() has a value */
    int64_t delivery_keep_ms;      /* idempotency records kept at least this long */
    size_t map_size;               /* LMDB map size */
    bool init_store;               /* --init: a zero-length data.mdb starts a new store (else refused) */
    size_t max_backlog;             /* log bytes waiting to be applied past which deliveries get 503 */
    ingest_secrets secrets;        /* /webhooks/clerk; count 0 when only named instances are set */
    ingest_instances instances;    /* /webhooks/clerk/<name> */
    char ip_db_path[PATH_MAX];     /* --ip-db FILE|none; "" the default (IPINTEL_DEFAULT_DB, optional) */
    ipintel *ipdb;                 /* opened by the caller, borrowed by the server; NULL: none */
    console_config console;        /* --console HOST:PORT and VEILLE_CONSOLE_TOKEN; off by default */
    int64_t incident_window_ms;    /* --incident-window */
    int64_t incident_update_ms;    /* --incident-update-every */
} http_options;

/* Apply o's --disable-rule names to set, then log one `rule disabled` line per
 * rule that is off (by --disable-rule or `enabled false`), at start and reload.
 * -1 with err when set has no rule of one of those names. */
int http_rules_disable(rules_set *set, const http_options *o, char *err, size_t errlen);

/* Defaults as documented in README.md. */
void http_options_defaults(http_options *o);

/* Run until SIGTERM/SIGINT; SIGHUP reloads rules_path (an invalid file is
 * reported and the running rules stay). Returns 0 on a clean stop, negative with err filled when
 * start-up fails (port in use, store unopenable, ...). */
int http_serve(const http_options *o, char *err, size_t errlen);

#endif
