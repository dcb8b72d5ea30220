/*
 * store.c: the LMDB environment behind veille: users, per-user and per-IP
 * history, delivery ids for idempotency, and the indexes that let retention
 * prune in time order. Values are msgpack (codec.c); keys are laid out in
 * store.h so that LMDB's byte order is the order we scan in.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/codec.h"
#include "store/internal.h"
#include "util/util.h"

/* 2: values index, alerts. 3: user records in history, next to their events
 * (the users database stays, empty; a read-write open moves a schema 2 store's
 * records there). */
#define STORE_SCHEMA 3
#define STORE_SCHEMA_USERS_APART 2
#define STORE_MIGRATE_BATCH 5000 /* user records moved per transaction: bounds its dirty pages */
#define STORE_MAXDBS 16 /* eight used; room to add some without a schema bump */

static void format_size(uint64_t bytes, char *buf, size_t len)
{
    if (bytes >= ((uint64_t)1 << 30) && bytes % ((uint64_t)1 << 30) == 0)
        snprintf(buf, len, "%llu GiB", (unsigned long long)(bytes >> 30));
    else if (bytes >= ((uint64_t)1 << 20))
        snprintf(buf, len, "%llu MiB", (unsigned long long)(bytes >> 20));
    else
        snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
}

int store_fail(store *s, int rc, const char *what, char *err, size_t errlen)
{
    if (rc == MDB_MAP_FULL) {
        MDB_envinfo info;
        char size[32] = "?";
        if (mdb_env_info(s->env, &info) == 0)
            format_size(info.me_mapsize, size, sizeof size);
        util_err(err, errlen, "store is full (map size %s) while %s: raise --map-size or lower --retention", size,
                 what);
        return STORE_ERR_FULL;
    }
    if (rc == ENOSPC || rc == EDQUOT) {
        util_err(err, errlen, "store: disk full while %s in %s: %s; free space on that disk or lower --retention",
                 what, s->dir, strerror(rc));
        return STORE_ERR_FULL;
    }
    if (rc == EIO) {
        util_err(err, errlen, "store: I/O error while %s in %s: %s", what, s->dir, strerror(rc));
        return STORE_ERR_IO;
    }
    if (rc == MDB_TXN_FULL) {
        util_err(err, errlen, "store: transaction too large while %s: %s", what, mdb_strerror(rc));
        return STORE_ERR;
    }
    util_err(err, errlen, "store: %s in %s failed: %s", what, s->dir, mdb_strerror(rc));
    return STORE_ERR;
}

/* ---- open / close ---- */

static int mkdir_p(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n >= sizeof path)
        return util_err(err, errlen, "store: directory name too long: %s", dir);
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
            return util_err(err, errlen, "store: cannot create %s: %s", path, strerror(errno));
        path[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) < 0)
        return util_err(err, errlen, "store: cannot create %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return util_err(err, errlen, "store: %s exists and is not a directory", dir);
    return 0;
}

static int missing(const char *dir, char *err, size_t errlen)
{
    util_err(err, errlen, "no veille store in %s (run `veille serve --data %s` first)", dir, dir);
    return STORE_ERR_MISSING;
}

/* The PID a holder of veille.lock wrote in it, 0 when unreadable. The holder
 * writes it right after taking the lock: a moment of an empty file is retried. */
static long lock_holder(int fd)
{
    for (int tries = 0; tries < 20; tries++) {
        char buf[32];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            long pid = strtol(buf, NULL, 10);
            if (pid > 0)
                return pid;
        }
        usleep(10 * 1000);
    }
    return 0;
}

/* One writer per store: serve and replay --data both drain and fill the same
 * outbox, so two of them would deliver every alert twice. flock rather than
 * fcntl locks: it belongs to the open file, not to the process, so the readers
 * this process opens (or LMDB's own fcntl use) cannot release it by closing
 * another descriptor. */
static int lock_store(store *s, char *err, size_t errlen)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/veille.lock", s->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return util_err(err, errlen, "store: cannot create %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        long pid = e == EWOULDBLOCK ? lock_holder(fd) : 0;
        close(fd);
        if (e != EWOULDBLOCK)
            return util_err(err, errlen, "store: cannot lock %s: %s", path, strerror(e));
        char who[48] = "another process";
        if (pid > 0)
            snprintf(who, sizeof who, "veille pid %ld", pid);
        util_err(err, errlen,
                 "store: %s is in use by %s (it holds veille.lock): one serve or replay --data per store; stop "
                 "it first. stats, history, alerts and outbox work beside it", s->dir, who);
        return STORE_ERR_LOCKED;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        int e = errno;
        close(fd);
        return util_err(err, errlen, "store: cannot write %s: %s", path, strerror(e));
    }
    s->lock_fd = fd;
    return 0;
}

/* A zero-length data.mdb is what a store whose contents were lost looks like
 * (a bad restore, a disk that dropped it); LMDB would silently start it anew
 * and every user's history would be gone without a word. */
static int refuse_empty(const char *dir, int flags, bool had_lock, char *err, size_t errlen)
{
    char data[PATH_MAX + 16];
    struct stat st;
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    if (stat(data, &st) < 0 || st.st_size != 0)
        return 0; /* none yet (a new store), or LMDB and the integrity check judge it */
    if ((flags & STORE_INIT) && !(flags & STORE_READONLY))
        return 0;
    util_err(err, errlen,
             "store: %s is empty (0 bytes)%s: its contents are lost. Restore it from a backup, or start a new, "
             "empty store there with `veille serve --init`", data,
             had_lock ? ", yet veille.lock shows it was served" : "");
    return STORE_ERR_DAMAGED;
}

/* Before any database is read through the map (open_dbs reads the main DB). */
static int check_file(store *s, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return store_fail(s, rc, "starting the check transaction", err, errlen);
    int ret = store_check_integrity(s, txn, err, errlen);
    mdb_txn_abort(txn);
    return ret;
}

static const char META_SCHEMA[] = "schema";

static int put_schema(store *s, MDB_txn *txn, msgpack_sbuffer *buf, const char *what, char *err, size_t errlen)
{
    if (store_codec_uint_encode(buf, STORE_SCHEMA) < 0)
        return util_err(err, errlen, "store: out of memory encoding the schema version");
    MDB_val k = mval(META_SCHEMA, sizeof META_SCHEMA - 1), v = mval(buf->data, buf->size);
    int rc = mdb_put(txn, s->meta, &k, &v, 0);
    return rc != 0 ? store_fail(s, rc, what, err, errlen) : 0;
}

/* Open the named databases and check the schema in one transaction; committing
 * it (read-only included) is what makes the dbi handles usable afterwards. */
static int open_dbs(store *s, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        size_t off;
    } dbs[] = {
        { "users", offsetof(store, users) },
        { "history", offsetof(store, history) },
        { "history_time", offsetof(store, history_time) },
        { "deliveries", offsetof(store, deliveries) },
        { "deliv_time", offsetof(store, deliv_time) },
        { "meta", offsetof(store, meta) },
        { "alerts", offsetof(store, alerts) },
        { "alert_open", offsetof(store, alert_open) },
        /* added within schema 2: a read-only open of an older store finds them missing */
        { "outbox", offsetof(store, outbox) },
        { "outbox_due", offsetof(store, outbox_due) },
        { "outbox_dead", offsetof(store, outbox_dead) },
        { "riskfreq", offsetof(store, riskfreq) }, /* riskfreq.c; added within schema 2 as the outbox */
        /* added within schema 2 too (triage.c, allow.c) */
        { "triage", offsetof(store, triage) },
        { "allow", offsetof(store, allow) },
        { "incidents", offsetof(store, incidents) }, /* incidents.c; older stores lack them */
        { "incident_keys", offsetof(store, incident_keys) },
    };
    MDB_txn *txn = NULL;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    int ret = STORE_ERR;
    int rc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &txn);
    if (rc != 0) {
        ret = store_fail(s, rc, "starting the opening transaction", err, errlen);
        goto fail;
    }
    s->has_outbox = true;
    s->has_riskfreq = true;
    s->has_triage = true;
    s->has_incidents = true;
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        MDB_dbi *dbi = (MDB_dbi *)((char *)s + dbs[i].off);
        rc = mdb_dbi_open(txn, dbs[i].name, s->readonly ? 0 : MDB_CREATE, dbi);
        if (rc == MDB_NOTFOUND && s->readonly && strcmp(dbs[i].name, "riskfreq") == 0) {
            s->has_riskfreq = false; /* nothing reads it read-only */
            continue;
        }
        if (rc == MDB_NOTFOUND && s->readonly
            && (dbs[i].off == offsetof(store, triage) || dbs[i].off == offsetof(store, allow))) {
            s->has_triage = false; /* no decision, no allow entry yet */
            continue;
        }
        if (rc == MDB_NOTFOUND && s->readonly && strncmp(dbs[i].name, "outbox", 6) == 0) {
            s->has_outbox = false; /* the outbox reads as empty */
            continue;
        }
        if (rc == MDB_NOTFOUND && s->readonly && strncmp(dbs[i].name, "incident", 8) == 0) {
            s->has_incidents = false; /* no incidents yet */
            continue;
        }
        if (rc == MDB_NOTFOUND && s->readonly) {
            ret = missing(s->dir, err, errlen);
            goto fail;
        }
        if (rc != 0) {
            char what[64];
            snprintf(what, sizeof what, "opening database '%s'", dbs[i].name);
            ret = store_fail(s, rc, what, err, errlen);
            goto fail;
        }
    }
    MDB_val k = mval(META_SCHEMA, sizeof META_SCHEMA - 1), v;
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        if (s->readonly) {
            ret = missing(s->dir, err, errlen);
            goto fail;
        }
        if ((ret = put_schema(s, txn, &buf, "writing the schema version", err, errlen)) < 0)
            goto fail;
    } else if (rc != 0) {
        ret = store_fail(s, rc, "reading the schema version", err, errlen);
        goto fail;
    } else {
        uint64_t version = 0;
        if (store_codec_uint_decode(v.mv_data, v.mv_size, &version) < 0) {
            util_err(err, errlen, "store: %s has an unreadable schema version; not a veille store?", s->dir);
            goto fail;
        }
        if (version == STORE_SCHEMA_USERS_APART && !s->readonly) {
            /* Marked first: an older veille then refuses a store whose users are
             * half moved, and migrate_users() finishes what a crash left. */
            if ((ret = put_schema(s, txn, &buf, "upgrading the schema version", err, errlen)) < 0)
                goto fail;
        } else if (version == STORE_SCHEMA_USERS_APART) {
            util_err(err, errlen,
                     "store: %s has schema version %llu (user records apart from their history); this veille "
                     "reads version %d: `veille serve --data %s` upgrades it in place when it starts",
                     s->dir, (unsigned long long)version, STORE_SCHEMA, s->dir);
            goto fail;
        } else if (version != STORE_SCHEMA) {
            util_err(err, errlen,
                     "store: %s has schema version %llu but this veille reads version %d; use the matching "
                     "veille release or start a new --data directory",
                     s->dir, (unsigned long long)version, STORE_SCHEMA);
            goto fail;
        }
    }
    ret = STORE_ERR; /* put_schema() left 0 */
    if (s->readonly) {
        MDB_stat st;
        rc = mdb_stat(txn, s->users, &st);
        if (rc != 0) {
            ret = store_fail(s, rc, "reading the users database", err, errlen);
            goto fail;
        }
        if (st.ms_entries != 0) {
            util_err(err, errlen,
                     "store: the upgrade of %s to schema version %d was interrupted (%llu user records still to "
                     "move): `veille serve --data %s` finishes it when it starts",
                     s->dir, STORE_SCHEMA, (unsigned long long)st.ms_entries, s->dir);
            goto fail;
        }
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0) {
        ret = store_fail(s, rc, "committing the opening transaction", err, errlen);
        goto fail;
    }
    msgpack_sbuffer_destroy(&buf);
    return 0;
fail:
    if (txn != NULL)
        mdb_txn_abort(txn);
    msgpack_sbuffer_destroy(&buf);
    return ret;
}

static int migrate_users(store *s, char *err, size_t errlen);

int store_open(store **out, const char *dir, int flags, size_t map_size, char *err, size_t errlen)
{
    *out = NULL;
    if (dir == NULL || *dir == '\0')
        return util_err(err, errlen, "store: no data directory given");
    store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return util_err(err, errlen, "store: out of memory");
    int ret = STORE_ERR;
    s->readonly = (flags & STORE_READONLY) != 0;
    s->lock_fd = -1;
    bool side = (flags & STORE_SIDE_WRITER) != 0 && !s->readonly;
    if (strlen(dir) + sizeof "/data.mdb" > sizeof s->dir) {
        util_err(err, errlen, "store: directory name too long: %s", dir);
        goto fail;
    }
    snprintf(s->dir, sizeof s->dir, "%s", dir);

    if (s->readonly || side) {
        /* The CLI must not create an empty store by looking at a mistyped path. */
        char data[PATH_MAX + 16];
        struct stat st;
        snprintf(data, sizeof data, "%s/data.mdb", dir);
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || stat(data, &st) < 0) {
            ret = missing(dir, err, errlen);
            goto fail;
        }
    } else if (mkdir_p(dir, err, errlen) < 0) {
        goto fail;
    }
    char lockpath[PATH_MAX + 16];
    snprintf(lockpath, sizeof lockpath, "%s/veille.lock", dir);
    bool had_lock = access(lockpath, F_OK) == 0;
    if (!s->readonly && !side && (ret = lock_store(s, err, errlen)) < 0)
        goto fail;
    if ((ret = refuse_empty(dir, flags, had_lock, err, errlen)) < 0)
        goto fail;

    if ((ret = store_check_integrity(s, NULL, err, errlen)) < 0)
        goto fail;
    ret = STORE_ERR;

    int rc = mdb_env_create(&s->env);
    if (rc != 0) {
        util_err(err, errlen, "store: cannot open %s: %s", dir, mdb_strerror(rc));
        s->env = NULL;
        goto fail;
    }
    rc = mdb_env_set_maxdbs(s->env, STORE_MAXDBS);
    if (rc == 0 && (map_size != 0 || (!s->readonly && !side))) {
        /* A reader without an explicit size takes the one recorded in the file,
         * so it can never be smaller than what the writer uses. */
        rc = mdb_env_set_mapsize(s->env, map_size != 0 ? map_size : STORE_DEFAULT_MAP_SIZE);
    }
    if (rc != 0) {
        util_err(err, errlen, "store: cannot open %s: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    /* NOTLS: read transactions belong to the caller, not to a thread. Never
     * NOSYNC: a commit must reach the disk. NOMETASYNC only when asked: the
     * caller can replay the last transaction (see STORE_NOMETASYNC). */
    unsigned envflags = MDB_NOTLS | (s->readonly ? MDB_RDONLY : 0) |
                        (!s->readonly && (flags & STORE_NOMETASYNC) ? MDB_NOMETASYNC : 0);
    rc = mdb_env_open(s->env, dir, envflags, 0600);
    if (rc != 0) {
        if (s->readonly && rc == ENOENT)
            ret = missing(dir, err, errlen);
        else
            util_err(err, errlen, "store: cannot open %s: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    ret = check_file(s, err, errlen);
    if (ret < 0)
        goto fail;
    ret = open_dbs(s, err, errlen);
    if (ret == 0 && !s->readonly)
        ret = migrate_users(s, err, errlen);
    if (ret < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    if (s->env != NULL)
        mdb_env_close(s->env);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
    return ret;
}

void store_close(store *s)
{
    if (s == NULL)
        return;
    mdb_env_close(s->env);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* after the environment: the lock covers the last commit */
    free(s);
}

/* ---- meta counters ---- */

/* Counts kept in meta so that stats read them rather than walk the store. */
static const char META_USERS[] = "users";                 /* user records, tombstones included */
static const char META_USERS_DELETED[] = "users_deleted"; /* tombstones */

static int meta_counter_get(store *s, MDB_txn *txn, const char *name, uint64_t *out, char *err, size_t errlen)
{
    *out = 0;
    MDB_val k = mval(name, strlen(name)), v;
    int rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0; /* a store with no user yet */
    if (rc != 0)
        return store_fail(s, rc, "reading a counter", err, errlen);
    if (store_codec_uint_decode(v.mv_data, v.mv_size, out) < 0)
        return util_err(err, errlen, "store: the %s counter in %s is corrupt", name, s->dir);
    return 0;
}

static int meta_counter_add(store_txn *t, const char *name, uint64_t add, char *err, size_t errlen)
{
    uint64_t n = 0;
    int ret = meta_counter_get(t->s, t->txn, name, &n, err, errlen);
    if (ret < 0)
        return ret;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    if (store_codec_uint_encode(&buf, n + add) < 0) {
        ret = util_err(err, errlen, "store: out of memory encoding a counter");
    } else {
        MDB_val k = mval(name, strlen(name)), v = mval(buf.data, buf.size);
        int rc = mdb_put(t->txn, t->s->meta, &k, &v, 0);
        if (rc != 0)
            ret = store_fail(t->s, rc, "updating a counter", err, errlen);
    }
    msgpack_sbuffer_destroy(&buf);
    return ret;
}

/* ---- transactions ---- */

int store_read_begin(store *s, MDB_txn **txn, char *err, size_t errlen)
{
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED && s->readonly) {
        /* the writer was restarted with a larger --map-size: adopt it */
        rc = mdb_env_set_mapsize(s->env, 0);
        if (rc == 0)
            rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    }
    if (rc != 0) {
        *txn = NULL;
        return store_fail(s, rc, "starting a read transaction", err, errlen);
    }
    return 0;
}

int store_txn_begin(store *s, store_txn **out, char *err, size_t errlen)
{
    *out = NULL;
    if (s->readonly)
        return util_err(err, errlen, "store: %s is open read-only", s->dir);
    store_txn *t = malloc(sizeof *t);
    if (t == NULL)
        return util_err(err, errlen, "store: out of memory");
    t->s = s;
    t->users_added = 0;
    t->tombstones_added = 0;
    int rc = mdb_txn_begin(s->env, NULL, 0, &t->txn);
    if (rc != 0) {
        free(t);
        return store_fail(s, rc, "starting a write transaction", err, errlen);
    }
    *out = t;
    return 0;
}

int store_txn_commit(store_txn *t, char *err, size_t errlen)
{
    store *s = t->s;
    int ret = 0;
    if (t->users_added != 0)
        ret = meta_counter_add(t, META_USERS, t->users_added, err, errlen);
    if (ret == 0 && t->tombstones_added != 0)
        ret = meta_counter_add(t, META_USERS_DELETED, t->tombstones_added, err, errlen);
    if (ret < 0) {
        store_txn_abort(t);
        return ret;
    }
    /* mdb_txn_commit frees the transaction on failure too */
    int rc = mdb_txn_commit(t->txn);
    free(t);
    if (rc != 0)
        return store_fail(s, rc, "committing", err, errlen);
    return 0;
}

void store_txn_abort(store_txn *t)
{
    if (t == NULL)
        return;
    mdb_txn_abort(t->txn);
    free(t);
}

/* ---- deliveries ---- */

static int check_id(const char *id, const char *what, char *err, size_t errlen)
{
    if (id == NULL || id[0] == '\0')
        return util_err(err, errlen, "store: empty %s", what);
    if (strnlen(id, EVENT_ID_MAX) >= EVENT_ID_MAX)
        return util_err(err, errlen, "store: %s longer than %d bytes", what, EVENT_ID_MAX - 1);
    return 0;
}

int store_delivery_seen(store_txn *t, const char *delivery_id, bool *seen, char *err, size_t errlen)
{
    *seen = false;
    if (check_id(delivery_id, "delivery id", err, errlen) < 0)
        return STORE_ERR;
    MDB_val k = mval(delivery_id, strlen(delivery_id)), v;
    int rc = mdb_get(t->txn, t->s->deliveries, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store_fail(t->s, rc, "looking up a delivery id", err, errlen);
    *seen = true;
    return 0;
}

int store_deliveries_seen(store *s, const char *const *ids, size_t n, bool *seen, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    int ret = store_read_begin(s, &txn, err, errlen);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        seen[i] = false;
        MDB_val k = mval(ids[i], strlen(ids[i])), v;
        int rc = ids[i][0] != '\0' ? mdb_get(txn, s->deliveries, &k, &v) : MDB_NOTFOUND;
        if (rc == 0)
            seen[i] = true;
        else if (rc != MDB_NOTFOUND)
            ret = store_fail(s, rc, "looking up a delivery id", err, errlen);
    }
    if (txn != NULL)
        mdb_txn_abort(txn);
    return ret;
}

static const char applied_key[] = "wal_applied";

int store_txn_set_applied(store_txn *t, uint64_t pos, char *err, size_t errlen)
{
    unsigned char be[8];
    util_put_be64(be, pos);
    MDB_val k = mval(applied_key, sizeof applied_key - 1), v = mval(be, sizeof be);
    int rc = mdb_put(t->txn, t->s->meta, &k, &v, 0);
    return rc != 0 ? store_fail(t->s, rc, "recording the applied log position", err, errlen) : 0;
}

int store_get_applied(store *s, uint64_t *pos, char *err, size_t errlen)
{
    *pos = 0;
    MDB_txn *txn = NULL;
    int ret = store_read_begin(s, &txn, err, errlen);
    if (ret < 0)
        return ret;
    MDB_val k = mval(applied_key, sizeof applied_key - 1), v;
    int rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == 0 && v.mv_size == 8)
        *pos = util_get_be64(v.mv_data);
    else if (rc == 0)
        ret = util_err(err, errlen, "store: %s has a damaged applied log position (%zu bytes)", s->dir, v.mv_size);
    else if (rc != MDB_NOTFOUND)
        ret = store_fail(s, rc, "reading the applied log position", err, errlen);
    mdb_txn_abort(txn);
    return ret;
}

int store_sync(store *s, char *err, size_t errlen)
{
    int rc = mdb_env_sync(s->env, 1);
    return rc != 0 ? store_fail(s, rc, "syncing the store to disk", err, errlen) : 0;
}

static size_t deliv_time_key(unsigned char *buf, int64_t received_ms, const char *id)
{
    size_t n = strlen(id);
    util_put_be64(buf, key_time(received_ms));
    memcpy(buf + 8, id, n);
    return 8 + n;
}

int store_delivery_mark(store_txn *t, const char *delivery_id, event_type type, int64_t received_ms,
                        char *err, size_t errlen)
{
    if (check_id(delivery_id, "delivery id", err, errlen) < 0)
        return STORE_ERR;
    store *s = t->s;
    unsigned char tk[8 + EVENT_ID_MAX];
    MDB_val k = mval(delivery_id, strlen(delivery_id)), v;
    int rc = mdb_get(t->txn, s->deliveries, &k, &v);
    if (rc == 0) {
        /* Re-marked with another time: drop the old index entry, or pruning it
         * later would delete the newer record. */
        int64_t old = 0;
        if (store_codec_delivery_decode(v.mv_data, v.mv_size, &old, NULL) == 0 && old != received_ms) {
            MDB_val ik = mval(tk, deliv_time_key(tk, old, delivery_id));
            rc = mdb_del(t->txn, s->deliv_time, &ik, NULL);
            if (rc != 0 && rc != MDB_NOTFOUND)
                return store_fail(s, rc, "updating a delivery id", err, errlen);
        }
    } else if (rc != MDB_NOTFOUND) {
        return store_fail(s, rc, "looking up a delivery id", err, errlen);
    }

    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    int ret = 0;
    if (store_codec_delivery_encode(&buf, received_ms, type) < 0) {
        ret = util_err(err, errlen, "store: out of memory encoding a delivery id");
        goto done;
    }
    v = mval(buf.data, buf.size);
    rc = mdb_put(t->txn, s->deliveries, &k, &v, 0);
    if (rc == 0) {
        MDB_val ik = mval(tk, deliv_time_key(tk, received_ms, delivery_id)), empty = mval("", 0);
        rc = mdb_put(t->txn, s->deliv_time, &ik, &empty, 0);
    }
    if (rc != 0)
        ret = store_fail(s, rc, "recording a delivery id", err, errlen);
done:
    msgpack_sbuffer_destroy(&buf);
    return ret;
}

/* ---- users ---- */

/* The record of user id lives in history as 'u' id 0x00 then eight 0xFF bytes:
 * a time no event has (key_time() stays below 2^63) and no delivery id, so it
 * sorts right after the user's newest event and before its values index
 * (0x01). A sign-in appends its event and rewrites last_sign_in_at on the same
 * leaf page, where a users database of its own cost one more scattered page.
 * History scans seek below it and never meet it. */
static size_t user_key(unsigned char *buf, const char *id, size_t len)
{
    size_t n = 0;
    buf[n++] = STORE_KEY_USER;
    memcpy(buf + n, id, len);
    n += len;
    buf[n++] = 0x00;
    memset(buf + n, 0xFF, 8);
    return n + 8;
}

static bool is_user_key(const MDB_val *k)
{
    static const unsigned char tail[9] = { 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
    const unsigned char *p = k->mv_data;
    return k->mv_size > 1 + sizeof tail && k->mv_size <= UKEY_MAX && p[0] == STORE_KEY_USER &&
           memcmp(p + k->mv_size - sizeof tail, tail, sizeof tail) == 0;
}

static int txn_get_user(store *s, MDB_txn *txn, const char *id, event_user *u, bool *found, char *err,
                        size_t errlen)
{
    *found = false;
    unsigned char uk[UKEY_MAX];
    MDB_val k = mval(uk, user_key(uk, id, strlen(id))), v;
    int rc = mdb_get(txn, s->history, &k, &v);
    if (rc == MDB_NOTFOUND) {
        memset(u, 0, sizeof *u);
        return 0;
    }
    if (rc != 0)
        return store_fail(s, rc, "reading a user", err, errlen);
    if (store_codec_user_decode(v.mv_data, v.mv_size, u) < 0)
        return util_err(err, errlen, "store: the record of user %s in %s is corrupt", id, s->dir);
    *found = true;
    return 0;
}

int store_txn_get_user(store_txn *t, const char *user_id, event_user *out, bool *found, char *err, size_t errlen)
{
    if (user_id == NULL || user_id[0] == '\0' || strnlen(user_id, EVENT_ID_MAX) >= EVENT_ID_MAX) {
        *found = false;
        memset(out, 0, sizeof *out);
        return 0; /* no such user can be stored */
    }
    return txn_get_user(t->s, t->txn, user_id, out, found, err, errlen);
}

/* Write u, whose stored record is before (NULL: none). A record that encodes
 * to the bytes already stored is not written: a put of the same bytes would
 * still dirty its leaf page and every branch above it (copy-on-write). */
static int txn_put_user(store_txn *t, const event_user *u, const event_user *before, char *err, size_t errlen)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    int ret = 0;
    if (store_codec_user_encode(&buf, u) < 0) {
        ret = util_err(err, errlen, "store: out of memory encoding a user");
        goto done;
    }
    unsigned char uk[UKEY_MAX];
    MDB_val k = mval(uk, user_key(uk, u->id, strlen(u->id))), v;
    int rc = before != NULL ? mdb_get(t->txn, t->s->history, &k, &v) : MDB_NOTFOUND;
    if (rc == 0 && v.mv_size == buf.size && memcmp(v.mv_data, buf.data, buf.size) == 0)
        goto done; /* unchanged */
    v = mval(buf.data, buf.size);
    rc = mdb_put(t->txn, t->s->history, &k, &v, 0);
    if (rc != 0) {
        ret = store_fail(t->s, rc, "writing a user", err, errlen);
        goto done;
    }
    if (before == NULL)
        t->users_added++;
    if (u->deleted && (before == NULL || !before->deleted))
        t->tombstones_added++;
done:
    msgpack_sbuffer_destroy(&buf);
    return ret;
}

/* Schema 2 kept user records in a database of their own: move them next to
 * their history, STORE_MIGRATE_BATCH per transaction (a store of a million
 * users would not fit one). The schema is already 3 (open_dbs), so what a crash
 * leaves in users is moved by the next read-write open, and read-only opens
 * refuse the store until then. A record that does not decode moves as it is:
 * reading it reports it corrupt, as before. */
static int migrate_users(store *s, char *err, size_t errlen)
{
    for (;;) {
        store_txn *t = NULL;
        int ret = store_txn_begin(s, &t, err, errlen);
        if (ret < 0)
            return ret;
        MDB_cursor *cur = NULL;
        int rc = mdb_cursor_open(t->txn, s->users, &cur);
        size_t moved = 0;
        MDB_val k, v;
        while (rc == 0 && moved < STORE_MIGRATE_BATCH && (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
            if (k.mv_size == 0 || k.mv_size >= EVENT_ID_MAX || memchr(k.mv_data, 0, k.mv_size) != NULL) {
                rc = MDB_CORRUPTED; /* no veille wrote such a key */
                break;
            }
            event_user u;
            bool deleted = store_codec_user_decode(v.mv_data, v.mv_size, &u) == 0 && u.deleted;
            unsigned char uk[UKEY_MAX];
            MDB_val nk = mval(uk, user_key(uk, k.mv_data, k.mv_size));
            rc = mdb_put(t->txn, s->history, &nk, &v, 0); /* copies v before the delete below */
            if (rc == 0)
                rc = mdb_cursor_del(cur, 0);
            t->users_added++;
            t->tombstones_added += deleted;
            moved++;
        }
        if (cur != NULL)
            mdb_cursor_close(cur);
        if (rc != 0 && rc != MDB_NOTFOUND) {
            store_txn_abort(t);
            return store_fail(s, rc, "moving user records next to their history (schema upgrade)", err, errlen);
        }
        if (moved == 0) {
            store_txn_abort(t);
            return 0;
        }
        ret = store_txn_commit(t, err, errlen);
        if (ret < 0)
            return ret;
    }
}

#define COPY_STR(dst, src) util_copy_utf8((dst), sizeof(dst), (src), strnlen((src), sizeof(src)))

static int apply_user_upsert(store_txn *t, const event_t *ev, store_outcome *outcome, char *err, size_t errlen)
{
    event_user stored, next;
    bool found = false;
    int rc = txn_get_user(t->s, t->txn, ev->user.id, &stored, &found, err, errlen);
    if (rc < 0)
        return rc;
    if (found && stored.deleted) {
        *outcome = STORE_AFTER_DELETE;
        return 0;
    }
    /* A placeholder's updated_at is ours, not Clerk's: the first real record wins. */
    if (found && !stored.placeholder && ev->user.updated_at < stored.updated_at) {
        *outcome = STORE_STALE_UPDATE;
        return 0;
    }
    next = ev->user;
    COPY_STR(next.id, ev->user.id);
    if (ev->instance_id[0] != '\0')
        COPY_STR(next.instance_id, ev->instance_id);
    else if (found)
        COPY_STR(next.instance_id, stored.instance_id);
    next.deleted = false;
    next.deleted_at = 0;
    next.placeholder = false;
    /* the state before this update, for user.was_locked / was_banned */
    next.was_locked = found && stored.locked;
    next.was_banned = found && stored.banned;
    /* sign-ins seen through session events may be newer than this snapshot */
    if (found && stored.last_sign_in_at > next.last_sign_in_at)
        next.last_sign_in_at = stored.last_sign_in_at;
    rc = txn_put_user(t, &next, found ? &stored : NULL, err, errlen);
    if (rc < 0)
        return rc;
    *outcome = STORE_APPLIED;
    return 0;
}

static int apply_user_deleted(store_txn *t, const event_t *ev, store_outcome *outcome, char *err, size_t errlen)
{
    event_user stored, tomb;
    bool found = false;
    int rc = txn_get_user(t->s, t->txn, ev->user.id, &stored, &found, err, errlen);
    if (rc < 0)
        return rc;
    int64_t deleted_at = ev->timestamp_ms != 0 ? ev->timestamp_ms : ev->at_ms;
    *outcome = STORE_APPLIED;
    /* a repeated delete (another delivery id) keeps the first deletion time */
    if (found && stored.deleted && stored.deleted_at != 0 && stored.deleted_at <= deleted_at)
        return 0;
    /* GDPR: a tombstone keeps only what stops a late user.created from
     * resurrecting the user, nothing that identifies a person. Activity times
     * and the instance are not personal data and the analyst still needs them. */
    memset(&tomb, 0, sizeof tomb);
    COPY_STR(tomb.id, ev->user.id);
    tomb.created_at = found ? stored.created_at : 0;
    tomb.updated_at = found ? stored.updated_at : 0;
    tomb.last_sign_in_at = found ? stored.last_sign_in_at : 0;
    if (ev->instance_id[0] != '\0')
        COPY_STR(tomb.instance_id, ev->instance_id);
    else if (found)
        COPY_STR(tomb.instance_id, stored.instance_id);
    tomb.deleted = true;
    tomb.deleted_at = deleted_at;
    return txn_put_user(t, &tomb, found ? &stored : NULL, err, errlen);
}

static int put_history(store_txn *t, char kind, const char *key, const store_history_entry *e,
                       const msgpack_sbuffer *val, char *err, size_t errlen)
{
    unsigned char tk[TKEY_MAX];
    unsigned char *hk = tk + 8;
    size_t klen = strlen(key), dlen = strlen(e->delivery_id);
    size_t n = 0;
    hk[n++] = (unsigned char)kind;
    memcpy(hk + n, key, klen);
    n += klen;
    hk[n++] = 0x00;
    util_put_be64(hk + n, key_time(e->at_ms));
    n += 8;
    memcpy(hk + n, e->delivery_id, dlen);
    n += dlen;
    util_put_be64(tk, key_time(e->at_ms));

    MDB_val k = mval(hk, n), v = mval(val->data, val->size);
    int rc = mdb_put(t->txn, t->s->history, &k, &v, 0);
    if (rc == 0) {
        MDB_val ik = mval(tk, 8 + n), empty = mval("", 0);
        rc = mdb_put(t->txn, t->s->history_time, &ik, &empty, 0);
    }
    if (rc != 0)
        return store_fail(t->s, rc, "appending history", err, errlen);
    return store_values_put(t, kind, key, e, err, errlen);
}

static void history_from_event(const event_t *ev, store_history_entry *e)
{
    const event_session *ss = &ev->session;
    memset(e, 0, sizeof *e);
    e->type = ev->type;
    e->at_ms = (int64_t)key_time(ev->at_ms); /* the value agrees with its key */
    COPY_STR(e->delivery_id, ev->delivery_id);
    COPY_STR(e->user_id, ss->user_id);
    COPY_STR(e->session_id, ss->session_id);
    COPY_STR(e->client_id, ss->client_id);
    COPY_STR(e->ip, ss->ip);
    COPY_STR(e->country, ss->country);
    COPY_STR(e->city, ss->city);
    COPY_STR(e->browser, ss->browser);
    COPY_STR(e->device, ss->device);
    e->is_mobile = ss->is_mobile;
    e->expire_at = ss->expire_at;
    COPY_STR(e->user_agent, ev->user_agent);
    COPY_STR(e->instance_id, ev->instance_id);
}

static int apply_session(store_txn *t, const event_t *ev, store_outcome *outcome, char *err, size_t errlen)
{
    const event_session *ss = &ev->session;
    if (check_id(ss->user_id, "session user id", err, errlen) < 0)
        return STORE_ERR;
    store_history_entry e;
    history_from_event(ev, &e);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    int ret = 0;
    if (store_codec_history_encode(&buf, &e) < 0) {
        ret = util_err(err, errlen, "store: out of memory encoding history");
        goto done;
    }
    ret = put_history(t, STORE_KEY_USER, ss->user_id, &e, &buf, err, errlen);
    if (ret < 0)
        goto done;
    if (ev->type == EVENT_SESSION_CREATED && ss->ip[0] != '\0') {
        ret = put_history(t, STORE_KEY_IP, ss->ip, &e, &buf, err, errlen);
        if (ret < 0)
            goto done;
    }

    /* The embedded data.user is deliberately ignored: it is a snapshot that may
     * be older than the user.* events already applied. */
    event_user u;
    bool found = false;
    ret = txn_get_user(t->s, t->txn, ss->user_id, &u, &found, err, errlen);
    if (ret < 0)
        goto done;
    event_user before = u;
    bool changed = false;
    if (!found) {
        COPY_STR(u.id, ss->user_id);
        u.placeholder = true;
        changed = true;
    }
    if (u.instance_id[0] == '\0' && ev->instance_id[0] != '\0') {
        COPY_STR(u.instance_id, ev->instance_id);
        changed = true;
    }
    /* a tombstone keeps activity times: a sign-in after the delete is news */
    if (ev->type == EVENT_SESSION_CREATED) {
        int64_t signed_in = ss->created_at != 0 ? ss->created_at : ev->at_ms;
        if (signed_in > u.last_sign_in_at) {
            u.last_sign_in_at = signed_in;
            changed = true;
        }
    }
    if (changed)
        ret = txn_put_user(t, &u, found ? &before : NULL, err, errlen);
done:
    msgpack_sbuffer_destroy(&buf);
    if (ret == 0)
        *outcome = STORE_APPLIED;
    return ret;
}

int store_apply_event(store_txn *t, const event_t *ev, store_outcome *outcome, char *err, size_t errlen)
{
    *outcome = STORE_APPLIED;
    if (check_id(ev->delivery_id, "delivery id", err, errlen) < 0)
        return STORE_ERR;
    switch (ev->type) {
    case EVENT_USER_CREATED:
    case EVENT_USER_UPDATED:
    case EVENT_USER_DELETED:
        if (check_id(ev->user.id, "user id", err, errlen) < 0)
            return STORE_ERR;
        if (ev->type == EVENT_USER_DELETED)
            return apply_user_deleted(t, ev, outcome, err, errlen);
        return apply_user_upsert(t, ev, outcome, err, errlen);
    case EVENT_SESSION_CREATED:
    case EVENT_SESSION_PENDING:
    case EVENT_SESSION_ENDED:
    case EVENT_SESSION_REMOVED:
    case EVENT_SESSION_REVOKED:
        return apply_session(t, ev, outcome, err, errlen);
    case EVENT_UNKNOWN:
    case EVENT_TYPE_COUNT:
        break;
    }
    return util_err(err, errlen, "store: cannot store an event of type %s", event_type_name(ev->type));
}

/* ---- reads ---- */

int store_get_user(store *s, const char *user_id, event_user *out, bool *found, char *err, size_t errlen)
{
    *found = false;
    memset(out, 0, sizeof *out);
    if (check_id(user_id, "user id", err, errlen) < 0)
        return STORE_ERR;
    MDB_txn *txn;
    int rc = store_read_begin(s, &txn, err, errlen);
    if (rc < 0)
        return rc;
    rc = txn_get_user(s, txn, user_id, out, found, err, errlen);
    mdb_txn_abort(txn);
    return rc;
}

int store_history_scan_in(store *s, MDB_txn *txn, char kind, const char *key, int64_t since_ms, int64_t until_ms,
                          size_t limit, bool oldest_first, store_history_cb cb, void *ctx, char *err, size_t errlen)
{
    if (key == NULL || strnlen(key, EVENT_ID_MAX) >= EVENT_ID_MAX)
        return util_err(err, errlen, "store: history key missing or longer than %d bytes", EVENT_ID_MAX - 1);
    /* every stored time is >= 0, see key_time() */
    if (until_ms < 0 || since_ms > until_ms)
        return 0;
    uint64_t since = key_time(since_ms);

    unsigned char seek[1 + EVENT_ID_MAX + 1 + 8];
    size_t plen = 0, klen = strlen(key);
    seek[plen++] = (unsigned char)kind;
    memcpy(seek + plen, key, klen);
    plen += klen;
    seek[plen++] = 0x00;
    /* The first key past every entry at until_ms: until_ms + 1 with no delivery
     * id. It fits: until_ms <= INT64_MAX < UINT64_MAX. */
    util_put_be64(seek + plen, (uint64_t)until_ms + 1);

    MDB_cursor *cur = NULL;
    int ret = 0;
    int rc = mdb_cursor_open(txn, s->history, &cur);
    if (rc != 0)
        return store_fail(s, rc, "scanning history", err, errlen);
    MDB_val k = mval(seek, plen + 8), v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND) /* nothing at or after the seek key: start from the very end */
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    else if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    if (oldest_first) {
        /* Walk back over keys only (no decoding) to the oldest entry wanted, then
         * decode forward: the caller can stream rows in reading order. */
        size_t n = 0;
        bool hit_limit = false;
        while (rc == 0) {
            const unsigned char *kp = k.mv_data;
            if (k.mv_size < plen + 8 || memcmp(kp, seek, plen) != 0 || util_get_be64(kp + plen) < since)
                break;
            if (++n == limit) {
                hit_limit = true;
                break;
            }
            rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
        }
        if (rc != 0 && rc != MDB_NOTFOUND) {
            ret = store_fail(s, rc, "scanning history", err, errlen);
            goto done;
        }
        if (n == 0)
            goto done;
        rc = mdb_cursor_get(cur, &k, &v, hit_limit ? MDB_GET_CURRENT : rc == MDB_NOTFOUND ? MDB_FIRST : MDB_NEXT);
        for (size_t i = 0; i < n && rc == 0; i++) {
            store_history_entry e;
            if (store_codec_history_decode(v.mv_data, v.mv_size, &e) < 0) {
                ret = util_err(err, errlen, "store: a history record of %c:%s in %s is corrupt", kind, key, s->dir);
                goto done;
            }
            if (cb(&e, ctx) != 0)
                break;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
        if (rc != 0)
            ret = store_fail(s, rc, "scanning history", err, errlen);
        goto done;
    }
    size_t count = 0;
    while (rc == 0) {
        const unsigned char *kp = k.mv_data;
        if (k.mv_size < plen + 8 || memcmp(kp, seek, plen) != 0)
            break;
        if (util_get_be64(kp + plen) < since)
            break;
        store_history_entry e;
        if (store_codec_history_decode(v.mv_data, v.mv_size, &e) < 0) {
            ret = util_err(err, errlen, "store: a history record of %c:%s in %s is corrupt", kind, key, s->dir);
            goto done;
        }
        count++;
        if (cb(&e, ctx) != 0)
            break;
        if (limit != 0 && count >= limit)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        ret = store_fail(s, rc, "scanning history", err, errlen);
done:
    mdb_cursor_close(cur);
    return ret;
}

static int history_scan(store *s, char kind, const char *key, int64_t since_ms, int64_t until_ms, size_t limit,
                        bool oldest_first, store_history_cb cb, void *ctx, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    int ret = store_read_begin(s, &txn, err, errlen);
    if (ret < 0)
        return ret;
    ret = store_history_scan_in(s, txn, kind, key, since_ms, until_ms, limit, oldest_first, cb, ctx, err, errlen);
    mdb_txn_abort(txn);
    return ret;
}

int store_history_scan(store *s, char kind, const char *key, int64_t since_ms, int64_t until_ms, size_t limit,
                       store_history_cb cb, void *ctx, char *err, size_t errlen)
{
    return history_scan(s, kind, key, since_ms, until_ms, limit, false, cb, ctx, err, errlen);
}

int store_history_scan_oldest_first(store *s, char kind, const char *key, int64_t since_ms, int64_t until_ms,
                                    size_t limit, store_history_cb cb, void *ctx, char *err, size_t errlen)
{
    return history_scan(s, kind, key, since_ms, until_ms, limit, true, cb, ctx, err, errlen);
}

int store_list_users(store *s, store_user_cb cb, void *ctx, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int ret = store_read_begin(s, &txn, err, errlen);
    if (ret < 0)
        return ret;
    int rc = mdb_cursor_open(txn, s->history, &cur);
    if (rc != 0) {
        ret = store_fail(s, rc, "listing users", err, errlen);
        goto done;
    }
    /* One seek per user rather than a walk of every event: from a user's first
     * key jump to its record (after its events), then past its values index
     * (id 0x01 ...) to the next user's first key. Each seek moves forward. */
    unsigned char seek[UKEY_MAX];
    const char first = STORE_KEY_USER;
    MDB_val k = mval(&first, 1), v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        const unsigned char *p = k.mv_data;
        const unsigned char *nul = k.mv_size > 1 ? memchr(p + 1, 0x00, k.mv_size - 1) : NULL;
        if (p[0] != STORE_KEY_USER || nul == NULL || (size_t)(nul - p - 1) >= EVENT_ID_MAX)
            break; /* past the users ('u' is the last kind) */
        size_t idlen = (size_t)(nul - p - 1);
        memcpy(seek, p, 1 + idlen);
        if (!is_user_key(&k)) {
            k = mval(seek, user_key(seek, (const char *)p + 1, idlen));
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET);
        }
        if (rc == 0) {
            event_user u;
            if (store_codec_user_decode(v.mv_data, v.mv_size, &u) < 0) {
                ret = util_err(err, errlen, "store: a user record in %s is corrupt", s->dir);
                goto done;
            }
            if (cb(&u, ctx) != 0)
                break;
        } else if (rc != MDB_NOTFOUND) {
            break; /* an error */
        } /* else events without a record: not a user (every version writes one) */
        seek[1 + idlen] = 0x02;
        k = mval(seek, 2 + idlen);
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        ret = store_fail(s, rc, "listing users", err, errlen);
done:
    if (cur != NULL)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return ret;
}

static int count_entries(store *s, MDB_txn *txn, MDB_dbi dbi, uint64_t *out, char *err, size_t errlen)
{
    MDB_stat st;
    int rc = mdb_stat(txn, dbi, &st);
    if (rc != 0)
        return store_fail(s, rc, "reading statistics", err, errlen);
    *out = st.ms_entries;
    return 0;
}

int store_get_stats(store *s, store_stats *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int ret = store_read_begin(s, &txn, err, errlen);
    if (ret < 0)
        return ret;
    if ((ret = meta_counter_get(s, txn, META_USERS, &out->users, err, errlen)) < 0 ||
        (ret = meta_counter_get(s, txn, META_USERS_DELETED, &out->users_deleted, err, errlen)) < 0 ||
        /* history_time has one entry per history record; history itself also
         * holds the values index */
        (ret = count_entries(s, txn, s->history_time, &out->history_entries, err, errlen)) < 0 ||
        (ret = count_entries(s, txn, s->deliveries, &out->deliveries, err, errlen)) < 0)
        goto done;

    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->history_time, &cur);
    if (rc == 0) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc == 0 && k.mv_size >= 8)
            out->oldest_event_ms = (int64_t)util_get_be64(k.mv_data);
        if (rc == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        if (rc == 0 && k.mv_size >= 8)
            out->newest_event_ms = (int64_t)util_get_be64(k.mv_data);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        ret = store_fail(s, rc, "reading the history time range", err, errlen);
        goto done;
    }

    MDB_envinfo info;
    rc = mdb_env_info(s->env, &info);
    if (rc != 0) {
        ret = store_fail(s, rc, "reading the map size", err, errlen);
        goto done;
    }
    out->map_bytes = info.me_mapsize;
    char data[PATH_MAX + 16];
    struct stat st;
    snprintf(data, sizeof data, "%s/data.mdb", s->dir);
    if (stat(data, &st) < 0) {
        ret = util_err(err, errlen, "store: cannot stat %s: %s", data, strerror(errno));
        goto done;
    }
    out->file_bytes = (uint64_t)st.st_size;
    ret = 0;
done:
    if (cur != NULL)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return ret;
}

/* ---- pruning ---- */

/* rk is a history key: kind, key, 0x00, be64(at), delivery id. */
static int prune_history_values(store_txn *t, const MDB_val *rk, char *err, size_t errlen)
{
    MDB_val v;
    MDB_val k = *rk;
    int rc = mdb_get(t->txn, t->s->history, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store_fail(t->s, rc, "pruning history", err, errlen);
    const unsigned char *p = rk->mv_data;
    const unsigned char *nul = rk->mv_size > 1 ? memchr(p + 1, 0, rk->mv_size - 1) : NULL;
    store_history_entry e;
    if (nul == NULL || (size_t)(nul - p - 1) >= EVENT_ID_MAX ||
        store_codec_history_decode(v.mv_data, v.mv_size, &e) < 0)
        return 0; /* a corrupt record has no index entries we could name; drop it alone */
    char key[EVENT_ID_MAX];
    memcpy(key, p + 1, (size_t)(nul - p - 1));
    key[nul - p - 1] = '\0';
    return store_values_del(t, (char)p[0], key, &e, err, errlen);
}

/* Contract in internal.h. */
int store_prune_index(store_txn *t, MDB_dbi index, const MDB_dbi *records, int64_t cutoff, size_t budget,
                      uint64_t *pruned, bool *more, const char *what, char *err, size_t errlen)
{
    MDB_cursor *cur = NULL;
    int rc = mdb_cursor_open(t->txn, index, &cur);
    if (rc != 0)
        return store_fail(t->s, rc, what, err, errlen);
    MDB_val k, v;
    /* MDB_FIRST each round: the cursor's position after a delete need not be reasoned about */
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        if (k.mv_size < 8 || (int64_t)util_get_be64(k.mv_data) >= cutoff)
            break;
        if (*pruned >= budget) {
            *more = true;
            break;
        }
        MDB_val rk = mval((const unsigned char *)k.mv_data + 8, k.mv_size - 8);
        if (records != NULL && *records == t->s->history) {
            /* the record names its value-index entries: drop them with it */
            int ret = prune_history_values(t, &rk, err, errlen);
            if (ret < 0) {
                mdb_cursor_close(cur);
                return ret;
            }
        }
        rc = records != NULL ? mdb_del(t->txn, *records, &rk, NULL) : 0;
        if (rc != 0 && rc != MDB_NOTFOUND)
            break;
        rc = mdb_cursor_del(cur, 0);
        if (rc != 0)
            break;
        (*pruned)++;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store_fail(t->s, rc, what, err, errlen);
    return 0;
}

static int prune_once(store *s, int64_t now_ms, int64_t retention_ms, int64_t delivery_keep_ms,
                      size_t max_deletes, store_prune_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    store_txn *t = NULL;
    int ret = store_txn_begin(s, &t, err, errlen);
    if (ret < 0)
        return ret;
    if (retention_ms > 0) {
        ret = store_prune_index(t, s->history_time, &s->history, now_ms - retention_ms, max_deletes,
                                &out->history_pruned, &out->more, "pruning history", err, errlen);
        if (ret < 0)
            goto fail;
    }
    if (retention_ms > 0) {
        /* alerts live as long as the history that explains them */
        size_t left = max_deletes - (size_t)out->history_pruned;
        ret = store_prune_index(t, s->alerts, NULL, now_ms - retention_ms, left, &out->alerts_pruned, &out->more,
                                "pruning alerts", err, errlen);
        if (ret < 0)
            goto fail;
    }
    if (delivery_keep_ms > 0) {
        size_t left = max_deletes - (size_t)out->history_pruned - (size_t)out->alerts_pruned;
        ret = store_prune_index(t, s->deliv_time, &s->deliveries, now_ms - delivery_keep_ms, left,
                          &out->deliveries_pruned, &out->more, "pruning delivery ids", err, errlen);
        if (ret < 0)
            goto fail;
    }
    if (retention_ms > 0) {
        /* alerts given up on stay visible to `veille outbox --dead` as long as alerts do */
        size_t used = (size_t)(out->history_pruned + out->alerts_pruned + out->deliveries_pruned);
        size_t left = max_deletes > used ? max_deletes - used : 0;
        ret = store_prune_index(t, s->outbox_dead, NULL, now_ms - retention_ms, left,
                                &out->outbox_dead_pruned, &out->more, "pruning dead outbox entries", err, errlen);
        if (ret < 0)
            goto fail;
    }
    ret = store_txn_commit(t, err, errlen);
    t = NULL;
    if (ret < 0)
        goto fail;
    return 0;
fail:
    store_txn_abort(t);
    memset(out, 0, sizeof *out);
    return ret;
}

int store_prune(store *s, int64_t now_ms, int64_t retention_ms, int64_t delivery_keep_ms,
                size_t max_deletes, store_prune_result *out, char *err, size_t errlen)
{
    /* Deleting copies pages too, so a full map can refuse a big prune; that is
     * exactly when pruning matters, so retry with smaller steps down to one. */
    for (;;) {
        int ret = prune_once(s, now_ms, retention_ms, delivery_keep_ms, max_deletes, out, err, errlen);
        if (ret != STORE_ERR_FULL || max_deletes <= 1)
            return ret;
        max_deletes /= 2;
    }
}

bool store_is_writable(store *s)
{
    if (s == NULL || s->readonly)
        return false;
    MDB_txn *txn = NULL;
    if (mdb_txn_begin(s->env, NULL, 0, &txn) != 0)
        return false;
    /* An empty commit still takes the writer lock and fails once the env is in
     * a panic state, which is what /healthz needs to see. */
    return mdb_txn_commit(txn) == 0;
}

