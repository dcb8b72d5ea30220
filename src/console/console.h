/*
 * console.h: the web console of `veille serve --console HOST:PORT`. A second
 * listener on the server's h2o loop, never the webhook one, serving a read-only
 * page (assets compiled into the binary, src/console/assets) and the JSON API
 * under /api/ that the page and scripts use. Every request needs
 * VEILLE_CONSOLE_TOKEN, as "Authorization: Bearer TOKEN" or as the password of
 * HTTP basic auth (any user name); every answer carries a strict
 * Content-Security-Policy. The store is read on the loop thread, and written
 * there only by the triage actions (POST /api/alerts/ID/ACTION, api.c).
 */
#ifndef VEILLE_CONSOLE_H
#define VEILLE_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "store/store.h"

#define CONSOLE_TOKEN_MIN 16
#define CONSOLE_TOKEN_MAX 256
#define CONSOLE_TOKEN_ENV "VEILLE_CONSOLE_TOKEN"

typedef struct {
    bool enabled;                      /* --console given */
    char host[256];                    /* 127.0.0.1 when only :PORT or PORT is given */
    int port;                          /* 0 picks a free port (logged) */
    char token[CONSOLE_TOKEN_MAX + 1]; /* from VEILLE_CONSOLE_TOKEN */
} console_config;

/* --console HOST:PORT, [IPv6]:PORT, :PORT or PORT, and the token from the
 * environment: refused (-1, err says what to do) without a token of at least
 * CONSOLE_TOKEN_MIN characters, loopback or not. The message never names the
 * option (the caller does). */
int console_parse(console_config *cfg, const char *value, char *err, size_t errlen);

/* What the console shows of the running server, filled on request. */
typedef struct {
    int64_t started_ms;
    uint64_t events_stored;   /* deliveries stored since start */
    uint64_t deliveries;      /* deliveries answered since start, any outcome */
    uint64_t alerts;          /* alerts raised since start */
    uint64_t lag_count;        /* events applied since start */
    double lag_seconds_sum;    /* apply lag: acknowledgement to applied, summed over them */
    uint64_t waiting;         /* deliveries waiting to be committed now */
} console_live;

typedef void console_live_fn(void *ctx, console_live *out);

typedef struct console console;

/* Open the console listener on loop, reading st (borrowed) and live (called on
 * the loop thread). cfg->enabled false: *out NULL and 0. */
int console_start(console **out, const console_config *cfg, h2o_evloop_t *loop, store *st, console_live_fn *live,
                   void *live_ctx, char *err, size_t errlen);
/* Stop accepting; NULL is a no-op. Open connections are left to process exit
 * (h2o 2.2.5 asserts when a context with connections is disposed). */
void console_stop(console *c);

#endif
