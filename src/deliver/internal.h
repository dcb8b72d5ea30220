/*
 * internal.h (private to src/deliver): one remote sink, its slots, and the
 * transports. deliver.c decides what to send and when; transport.c sends one
 * slot's message and reports through sink_result().
 */
#ifndef VEILLE_DELIVER_INTERNAL_H
#define VEILLE_DELIVER_INTERNAL_H

#include <netdb.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#define H2O_USE_LIBUV 0
#include <h2o.h>
#include <h2o/http1client.h>

#include "deliver/deliver.h"

typedef enum {
    SLOT_FREE = 0,
    SLOT_READY,    /* loaded from the outbox, not sent yet */
    SLOT_SENDING,  /* an attempt is under way */
    SLOT_SETTLING, /* outcome queued for the committer; freed once it is written */
} slot_state;

typedef struct remote remote;

typedef struct {
    remote *r;
    slot_state state;
    store_alert alert;
    store_outbox_entry entry; /* as read: settling names it by its key */
    int64_t queued_ms;
    int64_t attempts;      /* failed attempts before this one */
    uint64_t settle_seq;
    bool leaving;          /* the outcome queued takes the entry out of the queue (delivered, dead) */
    int64_t started_ms;
    bool expired;          /* past --alert-retry-for before this attempt: goes dead untried */
    bool pruned;           /* the alert left the store (retention) before delivery: dead */
    /* webhook */
    h2o_http1client_t *client;
    char *request;
    h2o_iovec_t reqbuf;
    /* TCP syslog: this slot's frame within the write in flight */
    char *frame;
} slot;

struct remote {
    deliver *d;                 /* NULL for veille test-alert */
    const alert_sink_config *cfg;
    slot slots[DELIVER_SLOTS];
    int64_t next_scan_ms;       /* INT64_MAX: nothing due until kicked */
    /* Circuit breaker: once an attempt fails, the sink is "failing" and only one
     * entry at a time probes it, at backed-off times, until one gets through.
     * A dead receiver then costs one attempt per backoff step, not one per alert. */
    int64_t probe_at_ms;        /* 0: the sink works */
    int64_t failing_since_ms;
    int64_t sink_failures;      /* attempts failed in a row */
    char last_error[STORE_OUTBOX_ERROR_MAX];
    /* the loop's figures */
    uint64_t delivered, retried, dead;
    int64_t last_success_ms;
    uint64_t latency_sum_ms, latency_count;
    /* the committer's figures: written by it alone, under d->mu when the loop reads them (depth, outbox_full) */
    uint64_t depth, outbox_full, adds_in_txn, full_in_txn;
    bool full_logged;
    /* transport */
    int fd;                     /* UDP and local datagram sockets */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    h2o_socket_t *tcp;
    bool tcp_connecting, tcp_writing;
    int64_t tcp_connect_started_ms, tcp_write_started_ms;
    SSL_CTX *ssl;
    h2o_http1client_ctx_t http;
    h2o_timeout_t io_timeout;
    bool io_timeout_ready;
    h2o_loop_t *loop;
    const ingest_secret *secret;
    int64_t timeout_ms;
    char hostname[256];
    /* outcome of an attempt: deliver.c settles it, test-alert records it */
    void (*on_result)(slot *s, bool ok, const char *error);
    void *result_ctx; /* veille test-alert's outcome */
};

/* Set up what c's transport needs before the loop runs (resolve, sockets, TLS). */
int transport_prepare(remote *r, char *err, size_t errlen);
int transport_attach(remote *r, h2o_loop_t *loop, h2o_multithread_receiver_t *getaddr, char *err, size_t errlen);
/* Send every READY slot that can go now; each ends in r->on_result. */
void transport_send_ready(remote *r, int64_t now_ms);
/* Abandon attempts in flight without reporting them; close sockets. */
void transport_cancel(remote *r);
void transport_dispose(remote *r);

#endif
