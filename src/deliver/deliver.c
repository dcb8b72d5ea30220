/*
 * deliver.c: when each outbox entry is tried, and what becomes of it.
 * The loop reads due entries into a sink's slots, hands them to transport.c,
 * and queues each outcome (delivered, retry at T, dead) for the committer
 * thread, which writes it in its next transaction. A slot is reused only once
 * its outcome is committed, so an entry is never in two attempts at once.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deliver/internal.h"
#include "util/log.h"
#include "util/util.h"

#define RUN_IDLE_MS 1000

/* Where h2o's resolver threads post their answers. Static, and never
 * unregistered: a lookup cancelled at shutdown still posts its answer later,
 * and h2o asserts (or writes into freed memory) if the receiver is gone by
 * then. One server per process, so one receiver serves it; the queue, allocated
 * inside h2o, is left to process exit like the rest of h2o's loop. */
static h2o_multithread_receiver_t getaddr_receiver;

typedef struct {
    uint64_t seq;
    remote *r;
    store_outbox_entry entry;
    store_outbox_result result;
    int64_t next_ms;
    char error[STORE_OUTBOX_ERROR_MAX];
    bool left_queue; /* set by the committer: the entry was pending and is no more */
    bool has_state;  /* the sink's failing state changed: record it (state) */
    store_sink_state state;
} settle;

typedef struct {
    settle *v;
    size_t n, cap;
} settle_list;

struct deliver {
    store *st;
    deliver_options opt;
    remote *remotes;
    size_t n;
    h2o_loop_t *loop;
    h2o_multithread_queue_t *getaddr_queue;
    bool kicked;
    uint64_t rng;
    /* shared with the committer */
    pthread_mutex_t mu;
    settle_list waiting, taken;
    uint64_t next_seq, applied_seq;
};

static int settle_push(settle_list *l, const settle *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        settle *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *s;
    return 0;
}

/* xorshift64: jitter only, no need for a secure source */
static uint64_t next_random(deliver *d)
{
    uint64_t x = d->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    d->rng = x;
    return x;
}

/* About 1 s, 2 s, 4 s ... capped at 10 min, each spread over [0.5, 1.5) of
 * itself so that alerts queued together do not retry together. */
static int64_t backoff_ms(deliver *d, int64_t failures)
{
    int shift = failures <= 1 ? 0 : failures > 20 ? 20 : (int)(failures - 1);
    int64_t base = (int64_t)DELIVER_BACKOFF_FIRST_MS << shift;
    if (base > DELIVER_BACKOFF_CAP_MS)
        base = DELIVER_BACKOFF_CAP_MS;
    int64_t wait = base / 2 + (int64_t)(next_random(d) % (uint64_t)base);
    return wait > DELIVER_BACKOFF_CAP_MS ? DELIVER_BACKOFF_CAP_MS : wait;
}

/* ---- outcomes (loop thread) ---- */

/* The loaded entries not sent yet go back to the store untouched: a failing
 * sink is probed with one entry at a time. */
static void unload_unsent(remote *r)
{
    for (size_t i = 0; i < DELIVER_SLOTS; i++)
        if (r->slots[i].state == SLOT_READY && !r->slots[i].expired && !r->slots[i].pruned)
            r->slots[i].state = SLOT_FREE;
}

static void sink_state_of(const remote *r, store_sink_state *st)
{
    memset(st, 0, sizeof *st);
    st->sink_id = r->cfg->id;
    snprintf(st->sink, sizeof st->sink, "%s", r->cfg->label);
    st->failing_since_ms = r->failing_since_ms;
    st->next_try_ms = r->probe_at_ms;
    st->failures = r->sink_failures;
    snprintf(st->last_error, sizeof st->last_error, "%s", r->last_error);
}

static void settle_slot(slot *s, bool ok, const char *error)
{
    remote *r = s->r;
    deliver *d = r->d;
    int64_t now = util_now_ms();
    settle st;
    memset(&st, 0, sizeof st);
    st.r = r;
    st.entry = s->entry;
    char qs[STORE_SINK_LABEL_MAX + 8], qerr[STORE_OUTBOX_ERROR_MAX + 8];
    log_quote(r->cfg->label, qs, sizeof qs);
    if (ok) {
        st.result = STORE_OUTBOX_DELIVERED;
        r->delivered++;
        r->last_success_ms = now;
        r->latency_sum_ms += (uint64_t)(now > s->queued_ms ? now - s->queued_ms : 0);
        r->latency_count++;
        if (r->probe_at_ms != 0 || r->failing_since_ms != 0) {
            log_line(LOG_INFO, "msg=\"alert sink recovered\" sink=%s failed_attempts=%" PRId64, qs, r->sink_failures);
            r->probe_at_ms = r->failing_since_ms = r->sink_failures = 0;
            r->last_error[0] = '\0';
            st.has_state = true;
            sink_state_of(r, &st.state);
        }
    } else if (s->pruned) {
        st.result = STORE_OUTBOX_DEAD;
        snprintf(st.error, sizeof st.error, "the alert was pruned (--retention) before it could be delivered");
        r->dead++;
        log_line(LOG_ERROR, "msg=\"alert given up: pruned by --retention before delivery\" sink=%s alert=%s", qs,
                 s->entry.alert_id);
    } else if (s->expired) {
        st.result = STORE_OUTBOX_DEAD;
        snprintf(st.error, sizeof st.error, "not delivered within --alert-retry-for; last error: %.140s",
                 r->last_error[0] ? r->last_error : "none");
        r->dead++;
        log_line(LOG_ERROR, "msg=\"alert given up: not delivered within --alert-retry-for\" sink=%s alert=%s", qs,
                 s->alert.id);
    } else {
        snprintf(st.error, sizeof st.error, "%s", error != NULL ? error : "failed");
        if (r->probe_at_ms == 0) {
            log_line(LOG_WARN, "msg=\"alert sink failing; alerts wait in the outbox and one at a time probes it\" "
                               "sink=%s error=%s", qs, log_quote(st.error, qerr, sizeof qerr));
            if (r->failing_since_ms == 0)
                r->failing_since_ms = now;
        }
        r->sink_failures++;
        r->probe_at_ms = now + backoff_ms(d, r->sink_failures);
        snprintf(r->last_error, sizeof r->last_error, "%s", st.error);
        st.has_state = true;
        sink_state_of(r, &st.state);
        unload_unsent(r);
        if (now - s->queued_ms >= d->opt.retry_for_ms) {
            st.result = STORE_OUTBOX_DEAD;
            r->dead++;
            log_line(LOG_ERROR, "msg=\"alert given up: not delivered within --alert-retry-for\" sink=%s alert=%s "
                                "attempts=%" PRId64 " error=%s",
                     qs, s->alert.id, s->attempts + 1, log_quote(st.error, qerr, sizeof qerr));
        } else {
            st.result = STORE_OUTBOX_RETRY;
            st.next_ms = now + backoff_ms(d, s->attempts + 1);
            r->retried++;
        }
    }
    pthread_mutex_lock(&d->mu);
    st.seq = ++d->next_seq;
    int rc = settle_push(&d->waiting, &st);
    pthread_mutex_unlock(&d->mu);
    if (rc < 0) {
        /* the entry stays pending in the store and is tried again after a restart */
        log_line(LOG_ERROR, "msg=\"out of memory recording an alert's delivery\" alert=%s", s->alert.id);
        s->state = SLOT_FREE;
        return;
    }
    s->settle_seq = st.seq;
    s->leaving = st.result != STORE_OUTBOX_RETRY;
    s->state = SLOT_SETTLING;
    if (d->opt.wake_committer != NULL)
        d->opt.wake_committer(d->opt.wake_ctx);
}

/* ---- reading due entries (loop thread) ---- */

typedef struct {
    remote *r;
    int64_t now, retry_for_ms;
    bool probe_allowed, probe_taken;
} load_ctx;

static slot *free_slot(remote *r)
{
    for (size_t i = 0; i < DELIVER_SLOTS; i++)
        if (r->slots[i].state == SLOT_FREE)
            return &r->slots[i];
    return NULL;
}

static bool owned(const remote *r, int64_t queued_ms, const char *alert_id)
{
    for (size_t i = 0; i < DELIVER_SLOTS; i++)
        if (r->slots[i].state != SLOT_FREE && r->slots[i].entry.queued_ms == queued_ms &&
            strcmp(r->slots[i].entry.alert_id, alert_id) == 0)
            return true;
    return false;
}

static bool sending(const remote *r)
{
    for (size_t i = 0; i < DELIVER_SLOTS; i++)
        if (r->slots[i].state == SLOT_SENDING)
            return true;
    return false;
}

static int load_due(const store_outbox_entry *e, const store_alert *a, void *vctx)
{
    load_ctx *c = vctx;
    if (owned(c->r, e->queued_ms, e->alert_id))
        return 0;
    bool expired = c->now - e->queued_ms >= c->retry_for_ms;
    if (c->r->probe_at_ms != 0 && !expired && a != NULL) {
        /* failing sink: one probe, and only once its time has come */
        if (!c->probe_allowed || c->probe_taken)
            return 1;
        c->probe_taken = true;
    }
    slot *s = free_slot(c->r);
    if (s == NULL)
        return 1; /* full: the rest waits in the store */
    if (a != NULL)
        s->alert = *a;
    else
        memset(&s->alert, 0, sizeof s->alert);
    memcpy(s->alert.id, e->alert_id, sizeof s->alert.id);
    s->entry = *e;
    s->queued_ms = e->queued_ms;
    s->attempts = e->attempts;
    s->pruned = a == NULL;
    s->expired = expired && c->r->probe_at_ms != 0; /* a working sink still gets one try */
    s->state = SLOT_READY;
    return 0;
}

static void scan_sink(deliver *d, remote *r, int64_t now)
{
    if (free_slot(r) == NULL) {
        r->next_scan_ms = INT64_MAX; /* a released slot triggers the next scan */
        return;
    }
    load_ctx c = { r, now, d->opt.retry_for_ms, r->probe_at_ms != 0 && now >= r->probe_at_ms && !sending(r), false };
    int64_t next_due = 0;
    char err[UTIL_ERRLEN];
    if (store_outbox_due(d->st, r->cfg->id, now, load_due, &c, &next_due, err, sizeof err) < 0) {
        log_line(LOG_ERROR, "msg=\"cannot read the outbox\" error=\"%s\"", err);
        r->next_scan_ms = now + RUN_IDLE_MS;
        return;
    }
    if (r->probe_at_ms != 0)
        r->next_scan_ms = c.probe_taken ? INT64_MAX : r->probe_at_ms > now ? r->probe_at_ms : now + RUN_IDLE_MS;
    else
        r->next_scan_ms = next_due > 0 ? next_due : INT64_MAX;
    if (free_slot(r) == NULL)
        r->next_scan_ms = INT64_MAX; /* full: released slots trigger the next scan */
}

int64_t deliver_run_due(deliver *d)
{
    if (d == NULL || d->n == 0 || d->loop == NULL)
        return RUN_IDLE_MS;
    pthread_mutex_lock(&d->mu);
    uint64_t applied = d->applied_seq;
    pthread_mutex_unlock(&d->mu);
    int64_t now = util_now_ms();
    int64_t wait = RUN_IDLE_MS;
    for (size_t i = 0; i < d->n; i++) {
        remote *r = &d->remotes[i];
        bool released = false;
        for (size_t j = 0; j < DELIVER_SLOTS; j++)
            if (r->slots[j].state == SLOT_SETTLING && r->slots[j].settle_seq <= applied) {
                r->slots[j].state = SLOT_FREE;
                released = true;
            }
        if (released || d->kicked)
            r->next_scan_ms = now;
        if (r->next_scan_ms <= now)
            scan_sink(d, r, now);
        for (size_t j = 0; j < DELIVER_SLOTS; j++)
            if (r->slots[j].state == SLOT_READY && (r->slots[j].expired || r->slots[j].pruned))
                settle_slot(&r->slots[j], false, NULL);
        transport_send_ready(r, now);
        if (r->next_scan_ms != INT64_MAX && r->next_scan_ms - now < wait)
            wait = r->next_scan_ms > now ? r->next_scan_ms - now : 0;
        for (size_t j = 0; j < DELIVER_SLOTS; j++)
            if (r->slots[j].state == SLOT_SETTLING || r->slots[j].state == SLOT_READY)
                wait = wait < 10 ? wait : 10; /* check back for the committer / connection */
    }
    d->kicked = false;
    return wait;
}

void deliver_kick(deliver *d)
{
    if (d != NULL)
        d->kicked = true;
}

/* ---- set-up ---- */

/* Queue depths at start, and a word about queues no configured sink drains. */
static int count_outbox(deliver *d, char *err, size_t errlen)
{
    for (size_t i = 0; i < d->n; i++) {
        remote *r = &d->remotes[i];
        if (store_outbox_pending_count(d->st, r->cfg->id, &r->depth, err, errlen) < 0)
            return -1;
        if (r->depth > 0) {
            char q[STORE_SINK_LABEL_MAX + 8];
            log_line(LOG_INFO, "msg=\"alerts waiting in the outbox\" sink=%s count=%" PRIu64,
                     log_quote(r->cfg->label, q, sizeof q), r->depth);
        }
    }
    store_sink_state *states = calloc(ALERT_SINKS_MAX * 4, sizeof *states);
    size_t n = 0;
    if (states == NULL || store_sink_states(d->st, states, ALERT_SINKS_MAX * 4, &n, err, errlen) < 0) {
        free(states);
        return states == NULL ? util_err(err, errlen, "out of memory") : -1;
    }
    for (size_t j = 0; j < n; j++) {
        bool configured = false;
        for (size_t i = 0; i < d->n && !configured; i++) {
            remote *r = &d->remotes[i];
            configured = r->cfg->id == states[j].sink_id;
            if (configured && states[j].failing_since_ms != 0) {
                /* tried again at once, but a success must clear what was recorded */
                r->failing_since_ms = states[j].failing_since_ms;
                r->sink_failures = states[j].failures;
                snprintf(r->last_error, sizeof r->last_error, "%s", states[j].last_error);
            }
        }
        uint64_t left = 0;
        if (configured || store_outbox_pending_count(d->st, states[j].sink_id, &left, err, errlen) < 0 || left == 0)
            continue;
        char q[STORE_SINK_LABEL_MAX + 8];
        log_line(LOG_WARN, "msg=\"alerts wait in the outbox for a sink that is not configured; they go out if that "
                           "--alert comes back (see veille outbox)\" sink=%s count=%" PRIu64,
                 log_quote(states[j].sink, q, sizeof q), left);
    }
    free(states);
    return 0;
}

int deliver_new(store *st, const alert_sink_config *cfgs, size_t n, const deliver_options *o, deliver **out,
                char *err, size_t errlen)
{
    *out = NULL;
    deliver *d = calloc(1, sizeof *d);
    if (d == NULL)
        return util_err(err, errlen, "out of memory");
    d->st = st;
    d->opt = *o;
    d->rng = (uint64_t)util_mono_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    pthread_mutex_init(&d->mu, NULL);
    size_t remote_n = 0;
    for (size_t i = 0; i < n; i++)
        remote_n += alert_sink_is_remote(&cfgs[i]);
    if (remote_n > 0 && (d->remotes = calloc(remote_n, sizeof *d->remotes)) == NULL) {
        deliver_free(d);
        return util_err(err, errlen, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        if (!alert_sink_is_remote(&cfgs[i]))
            continue;
        if (cfgs[i].kind == ALERT_SINK_WEBHOOK && o->secret == NULL) {
            deliver_free(d);
            return util_err(err, errlen, "--alert %s: webhook sinks sign every alert: set "
                                         "VEILLE_ALERT_WEBHOOK_SECRET (whsec_<base64>)", cfgs[i].label);
        }
        remote *r = &d->remotes[d->n++];
        r->d = d;
        r->cfg = &cfgs[i];
        r->secret = o->secret;
        r->timeout_ms = o->timeout_ms;
        r->on_result = settle_slot;
        r->next_scan_ms = 0;
        for (size_t j = 0; j < DELIVER_SLOTS; j++)
            r->slots[j].r = r;
        if (transport_prepare(r, err, errlen) < 0) {
            deliver_free(d);
            return -1;
        }
    }
    if (count_outbox(d, err, errlen) < 0) {
        deliver_free(d);
        return -1;
    }
    *out = d;
    return 0;
}

int deliver_start(deliver *d, h2o_loop_t *loop, char *err, size_t errlen)
{
    if (d->n == 0)
        return 0;
    d->loop = loop;
    d->getaddr_queue = h2o_multithread_create_queue(loop);
    if (d->getaddr_queue == NULL)
        return util_err(err, errlen, "cannot create the name resolution queue");
    h2o_multithread_register_receiver(d->getaddr_queue, &getaddr_receiver, h2o_hostinfo_getaddr_receiver);
    for (size_t i = 0; i < d->n; i++)
        if (transport_attach(&d->remotes[i], loop, &getaddr_receiver, err, errlen) < 0)
            return -1;
    d->kicked = true;
    return 0;
}

void deliver_stop(deliver *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++)
        transport_cancel(&d->remotes[i]);
}

void deliver_free(deliver *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++)
        transport_dispose(&d->remotes[i]);
    /* getaddr_queue and its receiver stay: see getaddr_receiver */
    free(d->remotes);
    free(d->waiting.v);
    free(d->taken.v);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* ---- committer thread ---- */

int deliver_txn_queue(deliver *d, store_txn *t, const store_alert *a, char *err, size_t errlen)
{
    if (d == NULL)
        return 0;
    /* depth, adds_in_txn and full_in_txn are written by this thread only, so
     * reading them needs no lock; d->mu guards what the loop reads, in
     * deliver_txn_end */
    for (size_t i = 0; i < d->n; i++) {
        remote *r = &d->remotes[i];
        if (!alert_sink_wants(r->cfg, a))
            continue;
        if (r->depth + r->adds_in_txn >= d->opt.outbox_max) {
            /* the alert itself is stored (veille alerts shows it); only this sink misses it */
            r->full_in_txn++;
            continue;
        }
        int ret = store_txn_outbox_add(t, r->cfg->id, r->cfg->label, a, err, errlen);
        if (ret < 0)
            return ret;
        r->adds_in_txn++;
    }
    return 0;
}

int deliver_txn_settle(deliver *d, store_txn *t, int64_t now_ms, size_t *applied, char *err, size_t errlen)
{
    *applied = 0;
    if (d == NULL)
        return 0;
    pthread_mutex_lock(&d->mu);
    /* taken is empty here: every transaction ends with deliver_txn_end */
    settle_list tmp = d->taken;
    d->taken = d->waiting;
    d->waiting = tmp;
    d->waiting.n = 0;
    pthread_mutex_unlock(&d->mu);
    /* counted before writing: when a write fails, the caller retries without them */
    *applied = d->taken.n;
    for (size_t i = 0; i < d->taken.n; i++) {
        settle *s = &d->taken.v[i];
        bool was_pending = false;
        /* a delivered alert has no error; every other outcome counts as an attempt */
        int ret = store_txn_outbox_settle(t, &s->entry, s->result, s->next_ms, now_ms,
                                          s->result == STORE_OUTBOX_DELIVERED ? NULL : s->error, &was_pending, err,
                                          errlen);
        if (ret == 0 && s->has_state)
            ret = store_txn_sink_state_put(t, &s->state, err, errlen);
        if (ret < 0)
            return ret;
        /* the depth moves only for entries that really left the pending queue */
        s->left_queue = was_pending && s->result != STORE_OUTBOX_RETRY;
    }
    return 0;
}

void deliver_txn_end(deliver *d, bool committed)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n; i++) {
        remote *r = &d->remotes[i];
        if (committed) {
            r->depth += r->adds_in_txn;
            r->outbox_full += r->full_in_txn;
            if (r->full_in_txn > 0 && !r->full_logged) {
                char q[STORE_SINK_LABEL_MAX + 8];
                log_line(LOG_ERROR, "msg=\"outbox full: new alerts are stored but not queued for this sink until "
                                    "it drains (see --outbox-max)\" sink=%s pending=%" PRIu64,
                         log_quote(r->cfg->label, q, sizeof q), r->depth);
                r->full_logged = true;
            } else if (r->full_in_txn == 0 && r->adds_in_txn > 0) {
                r->full_logged = false;
            }
        }
        r->adds_in_txn = r->full_in_txn = 0;
    }
    if (committed) {
        for (size_t i = 0; i < d->taken.n; i++) {
            settle *s = &d->taken.v[i];
            if (s->left_queue && s->r->depth > 0)
                s->r->depth--;
            if (s->seq > d->applied_seq)
                d->applied_seq = s->seq;
        }
        d->taken.n = 0;
    } else if (d->taken.n > 0) {
        /* back in front of what arrived meanwhile, in the order they came */
        for (size_t i = 0; i < d->taken.n; i++)
            d->taken.v[i].left_queue = false;
        for (size_t i = 0; i < d->waiting.n; i++)
            if (settle_push(&d->taken, &d->waiting.v[i]) < 0)
                break; /* lost outcomes only mean those alerts are sent again */
        settle_list tmp = d->waiting;
        d->waiting = d->taken;
        d->taken = tmp;
        d->taken.n = 0;
    }
    pthread_mutex_unlock(&d->mu);
}

bool deliver_settles_waiting(deliver *d)
{
    if (d == NULL)
        return false;
    pthread_mutex_lock(&d->mu);
    bool any = d->waiting.n > 0;
    pthread_mutex_unlock(&d->mu);
    return any;
}

/* ---- metrics (loop thread) ---- */

static size_t label_escape(const char *s, char *out, size_t len)
{
    size_t n = 0;
    for (; *s && n + 3 < len; s++) {
        if (*s == '\\' || *s == '"') {
            out[n++] = '\\';
            out[n++] = *s;
        } else if (*s == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else {
            out[n++] = *s;
        }
    }
    out[n] = '\0';
    return n;
}

size_t deliver_render_metrics(deliver *d, char *buf, size_t len)
{
    if (d == NULL || d->n == 0 || len == 0)
        return 0;
    FILE *f = fmemopen(buf, len, "w");
    if (f == NULL)
        return 0;
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"veille_sink_delivered_total", "counter", "Alerts delivered by the sink."},
        {"veille_sink_retried_total", "counter", "Failed attempts that will be retried."},
        {"veille_sink_dead_total", "counter", "Alerts given up after --alert-retry-for."},
        {"veille_sink_queue_depth", "gauge", "Alerts pending in the sink's outbox."},
        {"veille_sink_last_success_timestamp_seconds", "gauge", "Unix time of the last delivery, 0 if none."},
        {"veille_sink_delivery_latency_seconds", "summary", "From the alert entering the outbox to its delivery."},
        {"veille_sink_outbox_full_total", "counter", "Alerts not queued for the sink because its outbox was full."},
    };
    for (size_t k = 0; k < sizeof m / sizeof m[0]; k++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name, m[k].type);
        for (size_t i = 0; i < d->n; i++) {
            remote *r = &d->remotes[i];
            char label[2 * STORE_SINK_LABEL_MAX];
            label_escape(r->cfg->label, label, sizeof label);
            pthread_mutex_lock(&d->mu);
            uint64_t depth = r->depth, full = r->outbox_full, applied = d->applied_seq;
            pthread_mutex_unlock(&d->mu);
            /* what is delivered (or dead) but not yet recorded has left the queue already */
            for (size_t j = 0; j < DELIVER_SLOTS; j++) {
                const slot *s = &r->slots[j];
                if (s->state == SLOT_SETTLING && s->leaving && s->settle_seq > applied && depth > 0)
                    depth--;
            }
            switch (k) {
            case 0: fprintf(f, "%s{sink=\"%s\"} %" PRIu64 "\n", m[k].name, label, r->delivered); break;
            case 1: fprintf(f, "%s{sink=\"%s\"} %" PRIu64 "\n", m[k].name, label, r->retried); break;
            case 2: fprintf(f, "%s{sink=\"%s\"} %" PRIu64 "\n", m[k].name, label, r->dead); break;
            case 3: fprintf(f, "%s{sink=\"%s\"} %" PRIu64 "\n", m[k].name, label, depth); break;
            case 4:
                fprintf(f, "%s{sink=\"%s\"} %.3f\n", m[k].name, label, (double)r->last_success_ms / 1000.0);
                break;
            case 5:
                fprintf(f, "%s_sum{sink=\"%s\"} %.3f\n%s_count{sink=\"%s\"} %" PRIu64 "\n", m[k].name, label,
                        (double)r->latency_sum_ms / 1000.0, m[k].name, label, r->latency_count);
                break;
            default: fprintf(f, "%s{sink=\"%s\"} %" PRIu64 "\n", m[k].name, label, full); break;
            }
        }
    }
    long pos = ftell(f);
    fclose(f);
    return pos > 0 && (size_t)pos < len ? (size_t)pos : 0;
}

/* ---- veille test-alert ---- */

typedef struct {
    bool done, ok;
    char error[STORE_OUTBOX_ERROR_MAX];
} test_outcome;

static void record_test(slot *s, bool ok, const char *error)
{
    test_outcome *t = s->r->result_ctx;
    t->done = true;
    t->ok = ok;
    snprintf(t->error, sizeof t->error, "%s", error != NULL ? error : "");
    s->state = SLOT_FREE;
}

int deliver_test(const alert_sink_config *c, const ingest_secret *secret, int64_t timeout_ms, const store_alert *a,
                 char *result, size_t rlen)
{
    if (!alert_sink_is_remote(c))
        return util_err(result, rlen, "not a remote sink");
    remote *r = calloc(1, sizeof *r);
    if (r == NULL)
        return util_err(result, rlen, "out of memory");
    test_outcome outcome;
    memset(&outcome, 0, sizeof outcome);
    r->result_ctx = &outcome;
    r->cfg = c;
    r->secret = secret;
    r->timeout_ms = timeout_ms;
    r->on_result = record_test;
    for (size_t j = 0; j < DELIVER_SLOTS; j++)
        r->slots[j].r = r;
    int ret = -1;
    h2o_evloop_t *loop = NULL;
    h2o_multithread_queue_t *queue = NULL;
    char err[UTIL_ERRLEN];
    if (transport_prepare(r, err, sizeof err) < 0) {
        util_err(result, rlen, "%s", err);
        goto out;
    }
    loop = h2o_evloop_create();
    queue = h2o_multithread_create_queue(loop);
    h2o_multithread_register_receiver(queue, &getaddr_receiver, h2o_hostinfo_getaddr_receiver);
    if (transport_attach(r, loop, &getaddr_receiver, err, sizeof err) < 0) {
        util_err(result, rlen, "%s", err);
        goto out;
    }
    r->slots[0].alert = *a;
    r->slots[0].queued_ms = util_now_ms();
    r->slots[0].state = SLOT_READY;
    int64_t start = util_mono_ns(), deadline = util_now_ms() + timeout_ms + 1000;
    transport_send_ready(r, util_now_ms());
    while (!outcome.done && util_now_ms() < deadline) {
        h2o_evloop_run(loop, 50);
        transport_send_ready(r, util_now_ms());
    }
    int64_t ms = (util_mono_ns() - start) / 1000000;
    if (!outcome.done) {
        transport_cancel(r);
        util_err(result, rlen, "no outcome within %" PRId64 " ms", timeout_ms);
    } else if (!outcome.ok) {
        util_err(result, rlen, "%s", outcome.error);
    } else {
        snprintf(result, rlen, "in %" PRId64 " ms", ms);
        ret = 0;
    }
out:
    transport_cancel(r);
    transport_dispose(r);
    /* the queue and the evloop are left to process exit (see getaddr_receiver;
     * h2o 2.2.5 has no evloop destroy) */
    free(r);
    return ret;
}
