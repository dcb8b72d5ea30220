/*
 * store.h: veille's only persistent state, an LMDB environment with msgpack values.
 * This module alone owns the MDB_env; nobody else includes lmdb.h.
 *
 * Layout (named databases, keys are raw bytes, big-endian numbers so that
 * LMDB's lexicographic order is the order we scan in):
 *   history      kind(1: 'u' user, 'i' ip) key 0x00 be64(at_ms) delivery_id
 *                                                            -> msgpack event map
 *                'u' user 0x00 0xFF x 8                      -> msgpack user map (after
 *                                                               the user's newest event)
 *                'u' user 0x01 tag value 0x00 be64(at_ms) delivery_id
 *                                                            -> "" (values index, below)
 *                'u' user 0x01 'D' be64(at_ms) delivery_id   -> device key (store_txn_value_put)
 *   history_time be64(at_ms) history-key                     -> "" (retention index)
 *   deliveries   delivery_id                                 -> msgpack {received_ms, type}
 *   deliv_time   be64(received_ms) delivery_id               -> "" (pruning index)
 *   alerts, alert_open                                       -> see "alerts" below
 *   outbox, outbox_due, outbox_dead                          -> see "outbox" below
 *   meta         "schema", "users", "users_deleted"          -> msgpack uint
 *                "wal_applied"                               -> be64 log position
 *   users        (schema 2's user records; empty since schema 3)
 * A session event is stored under its user ('u'); session.created also under
 * its IP ('i') when the IP is known. Keys never exceed LMDB's 511-byte limit
 * because event.h bounds every identifier.
 *
 * Ownership: nothing returned points into LMDB memory; records are decoded
 * into caller-provided structs before the transaction ends.
 * Threads: one store per process; a write transaction is begun and ended on one
 * thread. LMDB serialises the write transactions of threads (serve's apply
 * thread, the console's triage on the loop thread): a second one waits in begin.
 */
#ifndef VEILLE_STORE_H
#define VEILLE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event/event.h"

typedef struct store store;
typedef struct store_txn store_txn;

/* Error codes beyond the generic -1, so the HTTP layer can pick 503 vs 500. */
enum {
    STORE_ERR = -1,
    STORE_ERR_FULL = -2,     /* map full / disk full: retryable (503) */
    STORE_ERR_IO = -3,       /* disk error: retryable (503) */
    STORE_ERR_MISSING = -4,  /* read-only open of a directory holding no store */
    STORE_ERR_DAMAGED = -5,  /* data.mdb truncated, overwritten or emptied: refused at open */
    STORE_ERR_LOCKED = -6,   /* a read-write open while another process holds DIR/veille.lock */
};

#define STORE_READONLY 0x1
/* Read-write: a zero-length data.mdb starts a new, empty store rather than
 * being refused as a store whose contents were lost (serve --init). */
#define STORE_INIT 0x2
/* MDB_NOMETASYNC: a commit fdatasyncs its data pages but not the meta page, so a
 * crash may roll back the last committed transaction (never corrupt the store).
 * Only for a writer that can replay that transaction (serve, from its
 * write-ahead log). The next commit's fdatasync, or store_sync, makes it durable. */
#define STORE_NOMETASYNC 0x4
/* STORE_SIDE_WRITER (0x8) is with the triage records below. Flags are bits:
 * a new one takes the next free bit, never a value already used above. */
#define STORE_DEFAULT_MAP_SIZE ((size_t)8 << 30) /* sparse; grows nothing on disk by itself */

/* Open (and in read-write mode create, with its directory) the store in dir.
 * map_size 0: STORE_DEFAULT_MAP_SIZE read-write, the size recorded in the file
 * read-only. STORE_READONLY works while another process has the store open
 * read-write; a directory without a store gives STORE_ERR_MISSING and creates
 * nothing. A store of another schema version is refused, but for version 2: a
 * read-write open upgrades it in place (moves its user records into history,
 * in several transactions) before returning; a read-only one refuses it, and a
 * store whose upgrade a crash interrupted, saying what to do.
 * A read-write open takes DIR/veille.lock (flock, exclusive, the PID written in
 * it) for the life of the store: a second one fails with STORE_ERR_LOCKED naming
 * the holder's PID. The kernel drops the lock when its holder dies, however it
 * dies, so a stale file never blocks. LMDB's lock.mdb is something else (the
 * reader table); read-only opens take no lock.
 * Every open checks data.mdb against LMDB's own meta (integrity.c) before
 * anything reads it through the map, and fails with STORE_ERR_DAMAGED and what
 * to do rather than letting a truncated or overwritten file end the process
 * with SIGBUS. A zero-length data.mdb is refused too unless STORE_INIT.
 * The check is bounded: a read-write open (serve) walks every branch page and the
 * leaves (all of them on a store up to 256 MiB, the most recently allocated 64 MiB
 * beyond); a read-only open walks the branch pages only, so that a CLI query
 * stays in milliseconds. Its backstop is store_reader_guard(). */
int store_open(store **out, const char *dir, int flags, size_t map_size, char *err, size_t errlen);
/* NULL is a no-op. Waits for nothing: the caller has committed or aborted. */
void store_close(store *s);

/* For a process that only reads (the CLI): a damaged leaf page that the
 * read-only check did not read can still point LMDB past the end of the file.
 * This turns the SIGBUS that would end the process into the same refusal as
 * store_open's: the message naming DIR/data.mdb and what to do on stderr, then
 * exit status 3. Process-wide (a signal handler); call it once, before reading. */
void store_reader_guard(const char *dir);

/* One write transaction; the group commit of the HTTP layer puts a whole batch of
 * deliveries in one. Committing makes everything in it durable (fsync) before
 * returning 0. After any error inside, the caller must abort. Commit frees t
 * whatever it returns (do not abort after a failed commit). Fails on a read-only
 * store. */
int store_txn_begin(store *s, store_txn **out, char *err, size_t errlen);
int store_txn_commit(store_txn *t, char *err, size_t errlen);
void store_txn_abort(store_txn *t); /* NULL is a no-op */

/* Idempotency. *seen is true when this delivery id was recorded before, in an
 * earlier transaction or earlier in this one. */
int store_delivery_seen(store_txn *t, const char *delivery_id, bool *seen, char *err, size_t errlen);
int store_delivery_mark(store_txn *t, const char *delivery_id, event_type type, int64_t received_ms,
                        char *err, size_t errlen);

/* What applying an event did, for logs and metrics. */
typedef enum {
    STORE_APPLIED = 0,       /* user record written and/or history appended */
    STORE_STALE_UPDATE = 1,  /* user.* older than the stored updated_at: ignored */
    STORE_AFTER_DELETE = 2,  /* user.created/updated for a tombstoned user: ignored */
} store_outcome;

/* Apply a decoded event inside t:
 *  user.created/updated: newest wins on updated_at (equal applies); never resurrects
 *    a tombstone; fills a placeholder.
 *  user.deleted: tombstone with deleted_at (envelope timestamp, else at_ms);
 *    only id and created_at survive (GDPR); an unknown user gets a tombstone too.
 *  session.*: history under 'u'+user_id (and 'i'+ip for session.created with an
 *    ip); creates a placeholder user if unknown; records last_sign_in_at for
 *    session.created when newer. Events for a tombstoned user are still recorded
 *    (the rules need to see them), the user is not resurrected.
 * History is keyed by at_ms (negative clamped to 0) and delivery_id, which must
 * be non-empty: re-applying one delivery overwrites rather than duplicates.
 * EVENT_UNKNOWN must not be passed. */
int store_apply_event(store_txn *t, const event_t *ev, store_outcome *outcome, char *err, size_t errlen);

/* The write-ahead log position applied so far (meta "wal_applied"; 0 when
 * never set), written in the transaction that applies the records. */
int store_txn_set_applied(store_txn *t, uint64_t pos, char *err, size_t errlen);
int store_get_applied(store *s, uint64_t *pos, char *err, size_t errlen);
/* Flush everything committed to disk, meta page included (mdb_env_sync force):
 * under STORE_NOMETASYNC, what makes the last commit durable. */
int store_sync(store *s, char *err, size_t errlen);

/* A decoded delivery as the write-ahead log keeps it: the event (without its
 * invalid_ips notes) and when it was received. Encoded as a msgpack map of
 * short keys, zero fields left out (a sign-in is about 400 bytes); decoding is
 * bounds-checked against the buffer and every field's array. Returns 0, or -1
 * (encode: it does not fit in cap; decode: not such a record). */
typedef struct {
    event_t ev;
    int64_t received_ms;
} store_event_record;
#define STORE_EVENT_RECORD_MAX 8192 /* above any event event.h's bounds allow */
int store_event_record_encode(const store_event_record *r, void *buf, size_t cap, size_t *len);
int store_event_record_decode(const void *data, size_t len, store_event_record *out);

/* ---- reads (each opens its own read-only transaction) ---- */

/* seen[i]: delivery ids[i] was recorded, in one read transaction. */
int store_deliveries_seen(store *s, const char *const *ids, size_t n, bool *seen, char *err, size_t errlen);

/* *found false (and 0 returned) when the id is unknown. */
int store_get_user(store *s, const char *user_id, event_user *out, bool *found, char *err, size_t errlen);

/* One stored history record. */
typedef struct {
    event_type type;
    int64_t at_ms;
    char delivery_id[EVENT_ID_MAX];
    char user_id[EVENT_ID_MAX];
    char session_id[EVENT_ID_MAX];
    char client_id[EVENT_ID_MAX];
    char ip[EVENT_IP_MAX];
    char country[EVENT_COUNTRY_MAX];
    char city[EVENT_TEXT_MAX];
    char browser[EVENT_TEXT_MAX];
    char device[EVENT_TEXT_MAX];
    bool is_mobile;
    char user_agent[EVENT_UA_MAX];
    int64_t expire_at; /* session.*: when Clerk expires the session, 0 unknown */
    char instance_id[EVENT_ID_MAX]; /* the Clerk instance; "" in records older than the field */
} store_history_entry;

/* Return non-zero from a callback to stop the scan early (not an error). */
typedef int (*store_history_cb)(const store_history_entry *e, void *ctx);
typedef int (*store_user_cb)(const event_user *u, void *ctx);

#define STORE_KEY_USER 'u'
#define STORE_KEY_IP 'i'

/* Events of one key with since_ms <= at_ms <= until_ms, NEWEST FIRST, at most
 * limit of them (0 = no limit). Cost is proportional to what is returned. */
int store_history_scan(store *s, char kind, const char *key, int64_t since_ms, int64_t until_ms,
                       size_t limit, store_history_cb cb, void *ctx, char *err, size_t errlen);

/* The same selection (the most recent `limit` within the bounds) delivered OLDEST
 * FIRST, as people read history. It steps back over keys only, then decodes
 * forward, so the caller can print as it goes without buffering records. */
int store_history_scan_oldest_first(store *s, char kind, const char *key, int64_t since_ms, int64_t until_ms,
                                    size_t limit, store_history_cb cb, void *ctx, char *err, size_t errlen);

/* All users in id order. */
int store_list_users(store *s, store_user_cb cb, void *ctx, char *err, size_t errlen);

typedef struct {
    uint64_t users;
    uint64_t users_deleted;
    uint64_t history_entries;   /* all keys, user and ip */
    uint64_t deliveries;        /* idempotency records held */
    int64_t oldest_event_ms;    /* 0 when empty */
    int64_t newest_event_ms;
    uint64_t file_bytes;        /* data.mdb size on disk */
    uint64_t map_bytes;         /* configured map size */
} store_stats;

int store_get_stats(store *s, store_stats *out, char *err, size_t errlen);

/* Background pruning in bounded steps: deletes at most max_deletes records, history
 * older than now-retention and delivery ids older than now-keep, in one write
 * transaction. *more is true when there is more to prune. A retention or keep
 * <= 0 disables that half. On a full map it retries with smaller steps, since
 * deleting also needs free pages. */
typedef struct {
    uint64_t history_pruned;
    uint64_t deliveries_pruned;
    uint64_t alerts_pruned;
    uint64_t outbox_dead_pruned;
    bool more;
} store_prune_result;

int store_prune(store *s, int64_t now_ms, int64_t retention_ms, int64_t delivery_keep_ms,
                size_t max_deletes, store_prune_result *out, char *err, size_t errlen);

/* ---- reads inside a write transaction ----
 * The rules engine reads its windows in the transaction that stores the event,
 * so it sees the event itself and everything stored before it in the same batch,
 * and an alert commits with the event that raised it. */

int store_txn_get_user(store_txn *t, const char *user_id, event_user *out, bool *found, char *err, size_t errlen);
/* As store_history_scan (newest first), in t. */
int store_txn_history_scan(store_txn *t, char kind, const char *key, int64_t since_ms, int64_t until_ms,
                           size_t limit, store_history_cb cb, void *ctx, char *err, size_t errlen);

/* The values index: per key, the history records ordered by (field value,
 * time), so "did this value occur in the window" is one seek and "how many
 * distinct values in the window" costs about one step per value the key ever
 * had, whatever the number of events. Indexed: country and ip under a user, the
 * user id under an IP. The entries live in the history database right after
 * the key's own records, so a user's cost few extra pages. Under an IP shared
 * by many users each event lands at a random place among its users (an extra
 * page per commit); without it, a bot's 100,000 sign-ins from one IP would make
 * every later `distinct(user, ...)` on that IP read the read bound. */
typedef enum {
    STORE_VALUE_COUNTRY = 'c',
    STORE_VALUE_IP = 'p',   /* under 'u' keys */
    STORE_VALUE_USER = 'u', /* under 'i' keys */
    STORE_VALUE_DEVICE = 'd', /* under 'u' keys; not in the record: see store_txn_value_put */
} store_value_field;

/* True when kind/key has `field` indexed. */
bool store_value_indexed(char kind, store_value_field field);
/* *found: a record of kind/key with field == value and since_ms <= at <= until_ms,
 * other than the delivery exclude_delivery (NULL: none excluded). */
int store_txn_value_seen(store_txn *t, char kind, const char *key, store_value_field field, const char *value,
                         int64_t since_ms, int64_t until_ms, const char *exclude_delivery, bool *found, char *err,
                         size_t errlen);
/* *count: distinct non-empty values of field among the records of kind/key with
 * since_ms <= at <= until_ms, stopping once it reaches cap (0: no cap). Values
 * outside the window are visited too, so at most STORE_VALUES_VISIT_MAX values
 * are: *bounded (may be NULL) tells that the count stopped there. */
#define STORE_VALUES_VISIT_MAX 4096
/* Index a value the record does not hold (STORE_VALUE_DEVICE: the device key
 * the rules engine derives from the user agent, src/device) for the history
 * record (kind, key, at_ms, delivery_id) stored in t. A second entry, kind key
 * 0x01 'D' be64(at) delivery -> value, lets pruning the record find and drop
 * both (the record alone cannot name the value). Putting it again is a no-op. */
int store_txn_value_put(store_txn *t, char kind, const char *key, store_value_field field, const char *value,
                        int64_t at_ms, const char *delivery_id, char *err, size_t errlen);
int store_txn_value_distinct(store_txn *t, char kind, const char *key, store_value_field field, int64_t since_ms,
                             int64_t until_ms, size_t cap, size_t *count, bool *bounded, char *err, size_t errlen);

/* ---- risk frequencies (riskfreq.c) ----
 * What risk() counts: per feature level (a byte the engine names), a global
 * table of value counts over every user's sign-ins, bounded to the first
 * STORE_RISK_TOPK distinct values plus a count of the rest; and per user, an
 * entry per sign-in and level, read by value like the values index. */
#define STORE_RISK_TOPK 4096
#define STORE_RISK_VALUE_MAX 120          /* longer values are keyed by a digest */
#define STORE_RISK_USER_VISIT_MAX 512     /* entries one user read visits at most (per level) */

typedef struct {
    uint64_t total;    /* values counted, in the table or not */
    uint64_t distinct; /* values in the table, <= STORE_RISK_TOPK */
    uint64_t rest;     /* values counted outside the table (it was full) */
} store_risk_table;

typedef struct {
    uint64_t n;        /* the user's entries of the level in the window */
    uint64_t distinct; /* distinct values among them */
    uint64_t count;    /* of which equal the value asked for */
    bool bounded;      /* the read stopped at STORE_RISK_USER_VISIT_MAX */
    uint64_t forgotten; /* entries older than since_ms deleted (forget_older) */
} store_risk_user;

/* The level's table and value's count; *in_table false: the value is not in
 * the table (never seen, or counted in rest). */
int store_txn_risk_global(store_txn *t, char level, const char *value, uint64_t *count, bool *in_table,
                          store_risk_table *tab, char *err, size_t errlen);
/* Count one sign-in's value of a level: the global table and the user's
 * entry. Recording the same (user, level, value, at, delivery) again is a
 * no-op. An empty value is not recorded. */
int store_txn_risk_record(store_txn *t, const char *user, char level, const char *value, int64_t at_ms,
                          const char *delivery_id, char *err, size_t errlen);
/* The user's entries of the level with since_ms <= at <= until_ms.
 * forget_older: delete the entries older than since_ms on the way, which
 * keeps a user's entries to its --risk-history (the history's retention does
 * not reach this database). */
int store_txn_risk_user(store_txn *t, const char *user, char level, const char *value, int64_t since_ms,
                        int64_t until_ms, bool forget_older, store_risk_user *out, char *err, size_t errlen);
/* Each distinct value of field in the window, in value order (cb returns
 * non-zero to stop); *count how many were told, *bounded as for distinct. */
typedef int (*store_value_cb)(const char *value, void *ctx);
int store_txn_value_list(store_txn *t, char kind, const char *key, store_value_field field, int64_t since_ms,
                         int64_t until_ms, store_value_cb cb, void *ctx, size_t *count, bool *bounded, char *err,
                         size_t errlen);

/* ---- alerts ----
 * alerts      be64(at_ms) alert_id   -> msgpack alert (queryable by time)
 * alert_open  rule 0x00 key          -> msgpack {at, id, suppressed, last}: the alert
 *                                       a later match is folded into, with the running
 *                                       count (moved into the alert when it closes) */

#define STORE_ALERT_ID_MAX 32      /* "alr_" + 24 hex digits */
#define STORE_ALERT_KEY_MAX (8 + EVENT_ID_MAX) /* "user:ID" or "ip:ADDR" */
#define STORE_EVIDENCE_MAX 16
#define STORE_ALERT_TAGS_MAX 8

typedef enum { STORE_EVIDENCE_NULL, STORE_EVIDENCE_NUMBER, STORE_EVIDENCE_BOOL, STORE_EVIDENCE_STRING } store_evidence_kind;

/* One value that made (or failed to make) a rule true, named as written in
 * the rule, e.g. "count(session.created, 10m)" = 7. */
typedef struct {
    char name[96];
    store_evidence_kind kind;
    double num;
    bool b;
    char str[160];
    bool at_least; /* the read stopped once the comparison was decided: num is a lower bound */
} store_evidence;

typedef struct {
    char id[STORE_ALERT_ID_MAX];
    char rule[64];
    char severity[16];
    char key[STORE_ALERT_KEY_MAX];
    char user_id[EVENT_ID_MAX];
    char ip[EVENT_IP_MAX];
    char session_id[EVENT_ID_MAX];
    char event_id[EVENT_ID_MAX]; /* the delivery id of the event that raised it */
    event_type event_type;
    int64_t at_ms;               /* event time */
    int64_t raised_ms;           /* wall clock when veille raised it */
    char summary[512];
    store_evidence evidence[STORE_EVIDENCE_MAX];
    size_t n_evidence;
    char tags[STORE_ALERT_TAGS_MAX][64];
    size_t n_tags;
    int64_t suppressed;          /* later matches folded into this alert */
    int64_t last_suppressed_at_ms;
    char instance_id[EVENT_ID_MAX]; /* the Clerk instance of the event; "" in older alerts */
    /* where the triggering event came from, for the alert formats (OCSF, CEF,
     * chat); "" when unknown or in alerts older than the fields */
    char country[EVENT_COUNTRY_MAX];
    char city[EVENT_TEXT_MAX];
    char user_agent[EVENT_UA_MAX];
    char user_name[EVENT_TEXT_MAX]; /* the user's username, else primary email, when the event carries the user */
    char incident_id[32];        /* the incident it belongs to (incidents.c); "" in older alerts */
    /* by-ip alerts: the accounts the IP touched in the incident window (the
     * first STORE_ALERT_USERS_MAX, in id order) and how many there are */
    char users[20][EVENT_ID_MAX];
    size_t n_users;
    int64_t users_total;
    bool incident_update;        /* not an alert: an incident update for the sinks (incident below) */
    bool incident_quiet;         /* not stored: a later alert of its incident, which the sinks skip */
} store_alert;
#define STORE_ALERT_USERS_MAX 20

/* Suppression: when an alert of (rule, key) exists with |at_ms - its at| <
 * window_ms, add one to its suppressed count and set *suppressed (and copy its
 * id to open_id when not NULL). Otherwise *suppressed is false. */
int store_txn_alert_suppress(store_txn *t, const char *rule, const char *key, int64_t at_ms, int64_t window_ms,
                             bool *suppressed, char open_id[STORE_ALERT_ID_MAX], char *err, size_t errlen);
/* Store a new alert; opens_window: record it as (rule, key)'s open alert. */
int store_txn_alert_add(store_txn *t, const store_alert *a, bool opens_window, char *err, size_t errlen);

typedef int (*store_alert_cb)(const store_alert *a, void *ctx);
/* Alerts with at_ms >= since_ms, oldest first (event time); the incident
 * updates stored for the outbox are left out. */
int store_list_alerts(store *s, int64_t since_ms, store_alert_cb cb, void *ctx, char *err, size_t errlen);

/* ---- triage (triage.c) ----
 * triage      alert_id -> msgpack {st, by, at, note}: what an analyst decided about an
 *                         alert. No record: the alert is open. Kept apart from the alert
 *                         so that the serve writing alerts and a CLI writing decisions
 *                         never rewrite each other's records. */
typedef enum {
    STORE_STATE_OPEN = 0,
    STORE_STATE_ACKED = 1,
    STORE_STATE_RESOLVED = 2,
    STORE_STATE_FP = 3, /* false positive */
} store_alert_state;
#define STORE_TRIAGE_BY_MAX 64
#define STORE_TRIAGE_NOTE_MAX 512

typedef struct {
    char alert_id[STORE_ALERT_ID_MAX];
    int64_t state;                 /* store_alert_state */
    char by[STORE_TRIAGE_BY_MAX];  /* who decided ($USER or --by) */
    int64_t at_ms;                 /* when */
    char note[STORE_TRIAGE_NOTE_MAX];
} store_triage;

/* "open", "acked", "resolved", "fp"; NULL for an unknown state. */
const char *store_state_name(int64_t state);
/* -1 when name is none of those. */
int store_state_parse(const char *name);

/* *found false (state open) when the alert has no triage record. */
int store_triage_get(store *s, const char *alert_id, store_triage *out, bool *found, char *err, size_t errlen);
int store_txn_triage_get(store_txn *t, const char *alert_id, store_triage *out, bool *found, char *err,
                         size_t errlen);
int store_txn_triage_put(store_txn *t, const store_triage *r, char *err, size_t errlen);

/* Every alert with at_ms >= since_ms and its triage state (open when undecided),
 * oldest first, in one read transaction: for counts by state (stats, /metrics). */
typedef int (*store_alert_state_cb)(const store_alert *a, int64_t state, void *ctx);
int store_list_alert_states(store *s, int64_t since_ms, store_alert_state_cb cb, void *ctx, char *err,
                            size_t errlen);

/* Read-write without DIR/veille.lock, for the CLI's small writes (triage, allow
 * list) beside a running serve. Safe: LMDB serialises write transactions across
 * processes itself (lock.mdb); veille.lock only keeps two serves from draining one
 * outbox. The store must exist (STORE_ERR_MISSING otherwise, nothing is created)
 * and the map size recorded in the file is kept, so serve never sees it change. */
#define STORE_SIDE_WRITER 0x8

/* ---- allow list (allow.c) ----
 * allow       rule 0x00 kind value -> msgpack {note, by, add, exp}: keys that never
 *                                     raise, for one rule or (rule "") all of them.
 * kind STORE_KEY_IP: value an address or a CIDR (1.2.3.0/24, 2001:db8::/32);
 * kind STORE_KEY_USER: a user id. Read by the engine in the transaction that stores
 * each event, so serve sees a change at its next batch. */
#define STORE_ALLOW_VALUE_MAX 64
#define STORE_ALLOW_NOTE_MAX 256

typedef struct {
    char rule[64];                    /* "" for every rule */
    char kind;                        /* STORE_KEY_IP or STORE_KEY_USER */
    char value[STORE_ALLOW_VALUE_MAX];
    char note[STORE_ALLOW_NOTE_MAX];
    char by[STORE_TRIAGE_BY_MAX];
    int64_t added_ms;
    int64_t expires_ms;               /* 0: never */
} store_allow_entry;

/* 0, or -1 with err when value is not an address/CIDR (ip) or is empty or too long. */
int store_allow_check(char kind, const char *value, char *err, size_t errlen);
int store_txn_allow_put(store_txn *t, const store_allow_entry *e, char *err, size_t errlen);
/* An alert key "user:ID" / "ip:ADDR" into its kind (STORE_KEY_USER, STORE_KEY_IP)
 * and value (pointing into key); false for another form. */
bool store_alert_key_split(const char *key, char *kind, const char **value);
/* The allow-list entry a false positive's --allow adds: the alert's key
 * (user:ID or ip:ADDR) for its rule, by and when from the decision tr, the note
 * "false positive ALERT: NOTE" cut on a character. -1 with err ("the alert's
 * key '...' is neither user:ID nor ip:ADDR") for a key of another form. */
int store_allow_from_alert(const store_alert *a, const store_triage *tr, store_allow_entry *out, char *err,
                           size_t errlen);
/* An analyst's decision in t and, when allow is not NULL, its allow entry: both
 * or neither (the CLI beside serve and the console write it the same way). */
int store_txn_triage_decide(store_txn *t, const store_triage *tr, const store_allow_entry *allow, char *err,
                            size_t errlen);
/* *found false when there was no such entry. */
int store_txn_allow_del(store_txn *t, const char *rule, char kind, const char *value, bool *found, char *err,
                        size_t errlen);
typedef int (*store_allow_cb)(const store_allow_entry *e, void *ctx);
/* Every entry, expired ones too (the caller shows them as such), in key order. */
int store_allow_list(store *s, store_allow_cb cb, void *ctx, char *err, size_t errlen);
/* *allowed: an entry unexpired at now_ms covers (rule, kind, value); its copy in
 * match when not NULL. value is the alert key's value (a user id or an address). */
int store_txn_allowed(store_txn *t, const char *rule, char kind, const char *value, int64_t now_ms, bool *allowed,
                      store_allow_entry *match, char *err, size_t errlen);

/* ---- outbox ----
 * What the remote sinks (syslog, webhooks) still have to deliver. An entry is
 * added in the transaction of the event that raised its alert, so an alert the
 * HTTP layer acknowledged is never lost by a crash or a dead receiver.
 *   outbox_due   be64(sink) be64(next_ms) be64(queued_ms) alert_id
 *                                  -> msgpack {at, tries, error}   pending, next try first
 *   outbox_dead  be64(dead_ms) be64(sink) be64(queued_ms) alert_id
 *                                  -> the same                      given up; pruned with retention
 *   outbox       be64(sink)        -> msgpack sink record (label, failing state)
 * An entry names its alert (at, id) in the alerts database rather than copying
 * it: queueing an alert is one small key appended in time order per sink,
 * which is what keeps a dead receiver from slowing ingestion. sink is a hash of
 * the sink's spec (util_digest64), so a restart with the same --alert finds its
 * queue again; queued_ms is the alert's raised_ms. */

#define STORE_SINK_LABEL_MAX 256
#define STORE_OUTBOX_ERROR_MAX 200

typedef struct {
    uint64_t sink_id;
    char sink[STORE_SINK_LABEL_MAX];  /* the sink as shown to operators ("" if unknown) */
    char alert_id[STORE_ALERT_ID_MAX];
    int64_t alert_at_ms;              /* the alert's event time: its key in alerts */
    int64_t queued_ms;                /* when the alert entered the outbox */
    int64_t next_ms;                  /* next try (pending) */
    int64_t attempts;                 /* failed attempts so far */
    int64_t dead_ms;                  /* 0 while pending */
    char last_error[STORE_OUTBOX_ERROR_MAX];
} store_outbox_entry;

/* Queue a for the sink; due at once. Queueing the same alert again while its
 * entry is untouched changes nothing (a batch retried after a failed commit).
 * The engine raises an alert once (its id comes from the delivery, which is
 * stored once), so an entry already retried or dead is never queued again. */
int store_txn_outbox_add(store_txn *t, uint64_t sink_id, const char *sink_label, const store_alert *a,
                         char *err, size_t errlen);

typedef enum {
    STORE_OUTBOX_DELIVERED, /* remove the entry */
    STORE_OUTBOX_RETRY,     /* one more failed attempt; next try at next_ms */
    STORE_OUTBOX_DEAD,      /* one more failed attempt (or none: expired); given up */
} store_outbox_result;

/* Record the outcome of one attempt at e (as read by store_outbox_due).
 * *was_pending (may be NULL) tells whether e was still there: an entry already
 * settled (a duplicate report) is left alone, which is not an error. */
int store_txn_outbox_settle(store_txn *t, const store_outbox_entry *e, store_outbox_result r, int64_t next_ms,
                            int64_t now_ms, const char *error, bool *was_pending, char *err, size_t errlen);

/* A sink's record: its label and, while it fails, why its entries wait. */
typedef struct {
    uint64_t sink_id;
    char sink[STORE_SINK_LABEL_MAX];
    int64_t failing_since_ms;   /* 0: the sink works */
    int64_t next_try_ms;        /* the next probe */
    int64_t failures;           /* attempts failed in a row */
    char last_error[STORE_OUTBOX_ERROR_MAX];
} store_sink_state;

int store_txn_sink_state_put(store_txn *t, const store_sink_state *st, char *err, size_t errlen);
/* Up to max sink records into out (working ones too); *n how many. */
int store_sink_states(store *s, store_sink_state *out, size_t max, size_t *n, char *err, size_t errlen);

/* Return non-zero to stop (not an error). e and a are valid during the call
 * only; a is NULL when the alert is no longer in the store (pruned by
 * retention before it could be delivered). */
typedef int (*store_outbox_cb)(const store_outbox_entry *e, const store_alert *a, void *ctx);

/* Pending entries of one sink with next_ms <= due_by, next try first, in one
 * read transaction. *next_due_ms (may be NULL) receives the next try of the
 * first entry left after the scan stopped, 0 when none. */
int store_outbox_due(store *s, uint64_t sink_id, int64_t due_by, store_outbox_cb cb, void *ctx,
                     int64_t *next_due_ms, char *err, size_t errlen);
/* Every entry, pending ones (by sink, next try first) then, when with_dead,
 * dead ones (oldest first). */
int store_outbox_list(store *s, bool with_dead, store_outbox_cb cb, void *ctx, char *err, size_t errlen);
/* Pending entries of one sink (for the queue-depth gauge at start). */
int store_outbox_pending_count(store *s, uint64_t sink_id, uint64_t *count, char *err, size_t errlen);

/* ---- incidents (incidents.c) ----
 * incidents      id                  -> msgpack incident record
 * incident_keys  "user:ID" / "ip:ADDR" -> incident id: the incident the key last joined
 * Alerts that share a key (their user or their IP) while the incident is open
 * (its last alert within window_ms of this one, event time) belong to it. An
 * alert whose user and IP lead to two different open incidents joins the
 * older (earlier first alert; then smaller id); the newer is merged into it
 * (its counts, rules, users and IPs) and records merged_into, the older lists
 * it in linked. Ids are "inc_" + 12 hex digits of the first alert's time + 8
 * of its id, so id order is time order. window_ms 0: every alert is its own
 * incident. */
#define STORE_INCIDENT_ID_MAX 32
#define STORE_INCIDENT_USERS_MAX 64
#define STORE_INCIDENT_IPS_MAX 16
#define STORE_INCIDENT_RULES_MAX 16
#define STORE_INCIDENT_LINKS_MAX 8

typedef struct {
    char id[STORE_INCIDENT_ID_MAX];
    int64_t first_ms, last_ms; /* event times of its first and last alert */
    int64_t count;             /* alerts */
    char severity[16];         /* the highest of its alerts */
    char rules[STORE_INCIDENT_RULES_MAX][64];
    size_t n_rules;
    char users[STORE_INCIDENT_USERS_MAX][EVENT_ID_MAX]; /* the first ones, in arrival order */
    size_t n_users;
    int64_t users_total;       /* distinct users (exact up to STORE_INCIDENT_USERS_MAX, then a lower bound) */
    char ips[STORE_INCIDENT_IPS_MAX][EVENT_IP_MAX];
    size_t n_ips;
    int64_t ips_total;
    char merged_into[STORE_INCIDENT_ID_MAX]; /* "" unless merged into an older incident */
    char linked[STORE_INCIDENT_LINKS_MAX][STORE_INCIDENT_ID_MAX]; /* incidents merged into this one */
    size_t n_linked;
    int64_t notified_ms;       /* event time of the last message sent for it (first alert or update) */
    int64_t notified_count;    /* its count then */
} store_incident;

/* What recording one alert did. */
typedef struct {
    bool first;       /* a new incident: send the alert */
    bool update_due;  /* it grew and the last message is update_every_ms old (event time): send an update */
    bool merged;      /* two open incidents were joined */
} store_incident_step;

/* Record alert a (its incident_id is not read) into its incident in t; *inc
 * receives the incident after it. On update_due the incident is marked as
 * notified now. */
int store_txn_incident_record(store_txn *t, const store_alert *a, int64_t window_ms,
                              int64_t update_every_ms, store_incident *inc, store_incident_step *step, char *err,
                              size_t errlen);
/* *found false when unknown. Follows nothing: a merged incident reads as it is. */
int store_get_incident(store *s, const char *id, store_incident *out, bool *found, char *err, size_t errlen);
typedef int (*store_incident_cb)(const store_incident *inc, void *ctx);
/* Every incident in id (= first alert time) order. */
int store_list_incidents(store *s, store_incident_cb cb, void *ctx, char *err, size_t errlen);
/* The distinct users an IP's sign-ins name within [since_ms, until_ms], in id order. */
int store_ip_users(store *s, const char *ip, int64_t since_ms, int64_t until_ms, store_value_cb cb, void *ctx,
                   size_t *count, char *err, size_t errlen);

/* True when a write transaction can be opened and committed (for /healthz). */
bool store_is_writable(store *s);

#endif
