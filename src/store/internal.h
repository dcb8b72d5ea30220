/*
 * internal.h (private to src/store): the store's structs and the helpers its
 * files share. store.c opens the environment and writes events; window.c reads
 * windows inside a write transaction for the rules engine; alerts.c keeps alert
 * records and suppression windows.
 */
#ifndef VEILLE_STORE_INTERNAL_H
#define VEILLE_STORE_INTERNAL_H

#include <limits.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

/* kind + id + 0x00 + be64(at) + delivery id */
#define HKEY_MAX (1 + EVENT_ID_MAX + 1 + 8 + EVENT_ID_MAX)
#define TKEY_MAX (8 + HKEY_MAX)
/* a user's record, in history: 'u' + id + 0x00 + 8 bytes 0xFF (see user_key() in store.c) */
#define UKEY_MAX (1 + EVENT_ID_MAX + 1 + 8)
/* values index, in history: kind + id + 0x01 + field tag + value + 0x00 + be64(at) + delivery id */
#define VKEY_MAX (1 + EVENT_ID_MAX + 1 + 1 + EVENT_ID_MAX + 1 + 8 + EVENT_ID_MAX)

struct store {
    MDB_env *env;
    MDB_dbi users, history, history_time, deliveries, deliv_time, meta;
    MDB_dbi alerts, alert_open;
    MDB_dbi outbox, outbox_due, outbox_dead;
    MDB_dbi riskfreq;  /* riskfreq.c */
    bool has_riskfreq; /* false: a read-only open of a store no serve of this version opened yet */
    MDB_dbi triage, allow; /* triage.c, allow.c; absent in a store no serve of this version opened */
    bool has_triage;
    MDB_dbi incidents, incident_keys;
    bool has_incidents; /* false: a read-only open of a store no serve of this version opened yet */
    bool has_outbox; /* false: a read-only open of a store no serve of this version opened yet */
    bool readonly;
    int lock_fd; /* DIR/veille.lock, flock'd exclusive while read-write; -1 read-only */
    char dir[PATH_MAX];
};

struct store_txn {
    store *s;
    MDB_txn *txn;
    /* User records this transaction added, and made tombstones: added to the
     * meta counters at commit, so that counting users reads two numbers
     * instead of walking every user's key in history. */
    uint64_t users_added, tombstones_added;
};

/* Map an LMDB or errno code onto the store's codes, with a message the operator
 * can act on; the HTTP layer answers 503 to the retryable ones. */
int store_fail(store *s, int rc, const char *what, char *err, size_t errlen);
int store_read_begin(store *s, MDB_txn **txn, char *err, size_t errlen);

/* Check data.mdb against LMDB's meta: STORE_ERR_DAMAGED with what is wrong and
 * what to do, 0 when LMDB can use it (integrity.c). txn NULL, before
 * mdb_env_open: the header and the file size only (a missing or empty file
 * passes: the caller decided it may be created). txn a read transaction begun
 * right after mdb_env_open, before any database is read: also walks the
 * B-trees of its snapshot. */
int store_check_integrity(store *s, MDB_txn *txn, char *err, size_t errlen);

/* Negative times cannot be represented in an unsigned big-endian key and no
 * Clerk event predates 1970, so they sort as 0. */
static inline uint64_t key_time(int64_t ms)
{
    return ms < 0 ? 0 : (uint64_t)ms;
}

static inline MDB_val mval(const void *p, size_t n)
{
    MDB_val v = { n, (void *)p };
    return v;
}

/* The value-index entries of one history record (window.c): which fields of a
 * record are indexed under its key kind. Written and pruned with the record. */
int store_values_put(store_txn *t, char kind, const char *key, const store_history_entry *e, char *err,
                     size_t errlen);
int store_values_del(store_txn *t, char kind, const char *key, const store_history_entry *e, char *err,
                     size_t errlen);

/* Scan one key's history newest first within [since_ms, until_ms] in txn. */
int store_history_scan_in(store *s, MDB_txn *txn, char kind, const char *key, int64_t since_ms, int64_t until_ms,
                          size_t limit, bool oldest_first, store_history_cb cb, void *ctx, char *err, size_t errlen);

/* Delete from an index, oldest first, every entry older than cutoff along with
 * the record it points to in *records (the index key minus its 8-byte time
 * prefix; NULL: the index holds the records itself), at most budget of them.
 * *more is set when an eligible entry is left. */
int store_prune_index(store_txn *t, MDB_dbi index, const MDB_dbi *records, int64_t cutoff, size_t budget,
                      uint64_t *pruned, bool *more, const char *what, char *err, size_t errlen);

/* The alert (at_ms, id) from the alerts database; *found false when pruned. */
int store_alert_get_in(store *s, MDB_txn *txn, int64_t at_ms, const char *id, store_alert *out, bool *found,
                       char *err, size_t errlen);

/* store_list_alerts, with the read transaction handed to cb (triage.c reads
 * each alert's state in the same snapshot). */
typedef int (*store_alert_txn_cb)(const store_alert *a, MDB_txn *txn, void *ctx);
int store_list_alerts_in_txn(store *s, int64_t since_ms, store_alert_txn_cb cb, void *ctx, char *err,
                             size_t errlen);

#endif
