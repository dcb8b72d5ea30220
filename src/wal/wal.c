/* wal.c: the write-ahead log: recovery at open, group-committed appends,
 * segment rolling, reading back and releasing. Format and contract in wal.h. */
#include "wal/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

/* Pending bytes are written out (not synced) past this, so a big group does not
 * grow the buffer without bound. */
#define WAL_PENDING_FLUSH (1u << 20)
/* Group-commit marks kept for the backlog figures; past this the newest absorbs
 * the next (the oldest, whose age is reported, stays exact). */
#define WAL_MARKS 1024
/* "/" + 16 hex digits + ".wal" */
#define WAL_NAME_LEN 21

typedef struct {
    uint64_t first; /* position of its first record: its name */
    uint64_t size;  /* bytes of durable records in it */
} wal_seg;

typedef struct {
    uint64_t last_seq;  /* last position of a group commit */
    uint64_t end_bytes; /* log bytes up to and with it (counted from open) */
    int64_t at_ms;      /* when it became durable (wall clock) */
} wal_mark;

struct wal {
    char dir[PATH_MAX - WAL_NAME_LEN - 1]; /* DIR/wal */
    int dirfd;                             /* holds the flock */
    uint64_t segment_bytes;
    uint32_t max_record;

    /* The appender's own: touched only by wal_append / wal_sync. */
    int fd;             /* the active (last) segment */
    uint64_t active_first; /* its name (segs[] moves under a release) */
    uint64_t write_off; /* bytes written to it */
    uint64_t synced_off; /* of which covered by the last good fdatasync */
    unsigned char *pend;
    size_t pend_len, pend_cap;
    uint64_t next_seq;
    uint64_t bytes_cum; /* log bytes appended since open, pending included */

    /* The reader's own: where its last wal_read_from stopped, so the next one
     * does not walk the segment from its start again. */
    uint64_t hint_seq, hint_first, hint_off;

    /* Shared, under mu. */
    pthread_mutex_t mu;
    wal_seg *segs;
    size_t nsegs, segcap;
    uint64_t appended, durable, released;
    uint64_t durable_bytes, released_bytes; /* log bytes, counted like bytes_cum */
    wal_mark marks[WAL_MARKS];
    size_t mark_head, mark_n;
    uint64_t cut_bytes;
    bool poisoned;
    char poison[UTIL_ERRLEN];
};

static void seg_path(const wal *w, uint64_t first, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%016llx.wal", w->dir, (unsigned long long)first);
}

/* "0000000000000001.wal" -> 1; false for any other name (ignored). */
static bool parse_seg_name(const char *name, uint64_t *first)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    if (strcmp(name + 16, ".wal") != 0 || v == 0)
        return false;
    *first = v;
    return true;
}

static int errno_code(int e)
{
    return e == ENOSPC || e == EFBIG || e == EDQUOT ? WAL_ENOSPC : WAL_ERR;
}

static int seg_push(wal *w, uint64_t first, uint64_t size)
{
    if (w->nsegs == w->segcap) {
        size_t cap = w->segcap ? w->segcap * 2 : 16;
        wal_seg *ns = realloc(w->segs, cap * sizeof *ns);
        if (ns == NULL)
            return -1;
        w->segs = ns;
        w->segcap = cap;
    }
    w->segs[w->nsegs].first = first;
    w->segs[w->nsegs].size = size;
    w->nsegs++;
    return 0;
}

/* Under mu (or before any thread runs). */
static void mark_push(wal *w, uint64_t last_seq, uint64_t end_bytes, int64_t at_ms)
{
    if (w->mark_n == WAL_MARKS) {
        wal_mark *m = &w->marks[(w->mark_head + w->mark_n - 1) % WAL_MARKS];
        m->last_seq = last_seq;
        m->end_bytes = end_bytes;
        return;
    }
    w->marks[(w->mark_head + w->mark_n) % WAL_MARKS] = (wal_mark){last_seq, end_bytes, at_ms};
    w->mark_n++;
}

static int fsync_dir(int dirfd, const char *dir, char *err, size_t errlen)
{
    if (fsync(dirfd) < 0) {
        int e = errno;
        util_err(err, errlen, "wal: fsync of folder %s failed: %s", dir, strerror(e));
        return errno_code(e);
    }
    return 0;
}

/* ---- open ---- */

/* Puts "wal: PATH: " before the message a segment function left in err. */
static int prefix_path(int rc, const char *path, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        char msg[UTIL_ERRLEN];
        snprintf(msg, sizeof msg, "%s", err);
        util_err(err, errlen, "wal: %s: %s", path, msg);
    }
    return rc;
}

static int cmp_seg(const void *a, const void *b)
{
    uint64_t x = ((const wal_seg *)a)->first, y = ((const wal_seg *)b)->first;
    return (x > y) - (x < y);
}

static int list_segments(wal *w, char *err, size_t errlen)
{
    int fd = dup(w->dirfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return util_err(err, errlen, "wal: cannot list %s: %s", w->dir, strerror(errno));
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        uint64_t first;
        if (parse_seg_name(de->d_name, &first) && seg_push(w, first, 0) < 0)
            rc = util_err(err, errlen, "wal: out of memory listing %s", w->dir);
    }
    closedir(d);
    if (rc == 0 && w->nsegs > 1)
        qsort(w->segs, w->nsegs, sizeof *w->segs, cmp_seg);
    return rc;
}

static int create_segment(wal *w, uint64_t first, int *fd_out, char *err, size_t errlen)
{
    char path[PATH_MAX];
    seg_path(w, first, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        util_err(err, errlen, "wal: cannot create %s: %s", path, strerror(e));
        return errno_code(e);
    }
    /* The file and its name in the folder must be durable before a record in
     * it is acknowledged: fdatasync of the file later does not cover the name. */
    if (fsync(fd) < 0) {
        int e = errno;
        close(fd);
        util_err(err, errlen, "wal: fsync of new %s failed: %s", path, strerror(e));
        return errno_code(e);
    }
    int rc = fsync_dir(w->dirfd, w->dir, err, errlen);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

/* The last segment had a bad record at wk->end: cut it when nothing valid
 * follows (a torn tail), refuse when something does. */
static int recover_tail(wal *w, const char *path, int fd, wal_segr *r, const wal_walk *wk,
                        const wal_options *opt, char *err, size_t errlen)
{
    int64_t later = wal_seg_find_valid(r, wk->end, wk->last_seq, w->max_record);
    if (later == -2)
        return util_err(err, errlen, "wal: reading %s failed: %s", path, strerror(r->io_errno));
    if (later >= 0) {
        util_err(err, errlen,
                 "wal: %s: corrupt record at offset %llu (%s), followed by a valid record at "
                 "offset %lld: refusing to cut acknowledged records",
                 path, (unsigned long long)wk->end, wk->bad, (long long)later);
        return WAL_ECORRUPT;
    }
    if (ftruncate(fd, (off_t)wk->end) < 0 || fsync(fd) < 0) {
        int e = errno;
        util_err(err, errlen, "wal: cutting the torn tail of %s failed: %s", path, strerror(e));
        return errno_code(e);
    }
    w->cut_bytes = r->size - wk->end;
    if (opt != NULL && opt->on_cut != NULL) {
        wal_cut cut = {path, wk->end, r->size - wk->end, wk->last_seq, wk->bad};
        opt->on_cut(&cut, opt->ctx);
    }
    return 0;
}

/* Checks segment i; the last one is kept open for appending in w->fd. */
static int check_segment(wal *w, size_t i, const wal_options *opt, char *err, size_t errlen)
{
    bool last = i + 1 == w->nsegs;
    char path[PATH_MAX];
    seg_path(w, w->segs[i].first, path, sizeof path);
    /* Segments follow each other without a gap (an empty one is only ever the last). */
    if (i > 0 && w->segs[i].first != w->next_seq) {
        util_err(err, errlen,
                 "wal: %s starts at position %llu but the segment before it ends at %llu: "
                 "a segment is missing or damaged",
                 path, (unsigned long long)w->segs[i].first, (unsigned long long)(w->next_seq - 1));
        return WAL_ECORRUPT;
    }
    int fd = open(path, (last ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return util_err(err, errlen, "wal: cannot open %s: %s", path, strerror(errno));
    wal_segr r;
    wal_walk wk;
    struct stat st;
    int rc = wal_segr_init(&r, fd, err, errlen);
    if (rc == 0 && wal_seg_walk(&r, 0, w->segs[i].first, w->max_record, UINT64_MAX, UINT64_MAX,
                                NULL, NULL, &wk, err, errlen) < 0)
        rc = prefix_path(WAL_ERR, path, err, errlen);
    if (rc == 0 && wk.bad != NULL && !last) {
        util_err(err, errlen,
                 "wal: %s: corrupt record at offset %llu (%s) in a segment that is not the last: "
                 "its records were acknowledged, refusing to cut them",
                 path, (unsigned long long)wk.end, wk.bad);
        rc = WAL_ECORRUPT;
    } else if (rc == 0 && wk.bad != NULL) {
        rc = recover_tail(w, path, fd, &r, &wk, opt, err, errlen);
    }
    wal_segr_free(&r);
    if (rc == 0 && fstat(fd, &st) == 0 && wk.count > 0)
        mark_push(w, wk.last_seq, w->bytes_cum + wk.end,
                  (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000);
    if (rc < 0 || !last) {
        close(fd);
    } else if (fdatasync(fd) < 0) {
        /* The last process may have died between its write and its fdatasync:
         * what this open reads from the page cache must be durable before it is
         * reported durable. */
        int e = errno;
        close(fd);
        util_err(err, errlen, "wal: fdatasync of %s failed: %s", path, strerror(e));
        rc = errno_code(e);
    } else {
        w->fd = fd;
        w->write_off = w->synced_off = wk.end;
    }
    if (rc == 0) {
        w->segs[i].size = wk.end;
        w->bytes_cum += wk.end;
        w->next_seq = wk.last_seq + 1;
    }
    return rc;
}

static int open_dir(wal *w, const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return util_err(err, errlen, "wal: data directory %s does not exist", dir);
    if ((size_t)snprintf(w->dir, sizeof w->dir, "%s/wal", dir) >= sizeof w->dir)
        return util_err(err, errlen, "wal: directory name too long: %s", dir);
    if (mkdir(w->dir, 0700) == 0) {
        int pfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int rc = pfd < 0 ? -1 : fsync(pfd);
        if (pfd >= 0)
            close(pfd);
        if (rc < 0)
            return util_err(err, errlen, "wal: fsync of %s failed: %s", dir, strerror(errno));
    } else if (errno != EEXIST) {
        return util_err(err, errlen, "wal: cannot create %s: %s", w->dir, strerror(errno));
    }
    w->dirfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dirfd < 0)
        return util_err(err, errlen, "wal: cannot open %s: %s", w->dir, strerror(errno));
    if (flock(w->dirfd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) {
            util_err(err, errlen, "wal: %s is in use by another process", w->dir);
            return WAL_EBUSY;
        }
        return util_err(err, errlen, "wal: cannot lock %s: %s", w->dir, strerror(errno));
    }
    return 0;
}

int wal_open(wal **out, const char *dir, const wal_options *opt, char *err, size_t errlen)
{
    *out = NULL;
    wal_options o = {0};
    if (opt != NULL)
        o = *opt;
    if (o.segment_bytes == 0)
        o.segment_bytes = WAL_DEFAULT_SEGMENT_BYTES;
    if (o.max_record == 0)
        o.max_record = WAL_DEFAULT_MAX_RECORD;
    if (o.first_seq == 0)
        o.first_seq = 1;
    if (o.max_record > WAL_MAX_MAX_RECORD) {
        util_err(err, errlen, "wal: max_record %u is above the limit of %u bytes", o.max_record,
                 WAL_MAX_MAX_RECORD);
        return WAL_EINVAL;
    }
    wal *w = calloc(1, sizeof *w);
    if (w == NULL)
        return util_err(err, errlen, "wal: out of memory");
    w->fd = w->dirfd = -1;
    w->segment_bytes = o.segment_bytes;
    w->max_record = o.max_record;
    pthread_mutex_init(&w->mu, NULL);

    int rc = open_dir(w, dir, err, errlen);
    if (rc == 0)
        rc = list_segments(w, err, errlen);
    if (rc == 0 && w->nsegs == 0) {
        w->next_seq = o.first_seq;
        rc = create_segment(w, o.first_seq, &w->fd, err, errlen);
        if (rc == 0 && seg_push(w, o.first_seq, 0) < 0)
            rc = util_err(err, errlen, "wal: out of memory");
    } else {
        for (size_t i = 0; rc == 0 && i < w->nsegs; i++)
            rc = check_segment(w, i, opt, err, errlen);
    }
    if (rc < 0) {
        wal_close(w);
        return rc;
    }
    w->active_first = w->segs[w->nsegs - 1].first;
    w->appended = w->durable = w->next_seq - 1;
    w->released = w->segs[0].first - 1;
    w->durable_bytes = w->bytes_cum;
    *out = w;
    return 0;
}

/* ---- append / sync ---- */

static int poisoned(wal *w, char *err, size_t errlen)
{
    pthread_mutex_lock(&w->mu);
    bool p = w->poisoned;
    if (p)
        util_err(err, errlen, "wal: refusing writes after an earlier failure (%s); reopen the log",
                 w->poison);
    pthread_mutex_unlock(&w->mu);
    return p ? WAL_EPOISONED : 0;
}

/* Records why the log stopped taking writes; returns code. The bytes written
 * since the last good fdatasync are taken back (ftruncate): they were never
 * acknowledged, and left in the page cache a later open would read them as
 * valid, report them durable, and a crash could then lose records a store had
 * applied, whose positions would be handed out again. */
static int poison(wal *w, int code, char *err, size_t errlen)
{
    const char *why = err != NULL && errlen > 0 ? err : "write failed";
    bool cut = w->fd < 0 || ftruncate(w->fd, (off_t)w->synced_off) == 0;
    pthread_mutex_lock(&w->mu);
    w->poisoned = true;
    snprintf(w->poison, sizeof w->poison, "%s%s", why, cut ? "" : "; taking back the unsynced bytes failed too");
    pthread_mutex_unlock(&w->mu);
    return code;
}

static int write_pending(wal *w, char *err, size_t errlen)
{
    size_t done = 0;
    while (done < w->pend_len) {
        ssize_t k = pwrite(w->fd, w->pend + done, w->pend_len - done, (off_t)(w->write_off + done));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            char path[PATH_MAX];
            seg_path(w, w->active_first, path, sizeof path);
            util_err(err, errlen, "wal: write to %s failed: %s", path, strerror(e));
            return poison(w, errno_code(e), err, errlen);
        }
        done += (size_t)k;
    }
    w->write_off += w->pend_len;
    w->pend_len = 0;
    return 0;
}

/* Writes and fdatasyncs the active segment: everything appended is durable. */
static int sync_active(wal *w, char *err, size_t errlen)
{
    int rc = write_pending(w, err, errlen);
    if (rc < 0)
        return rc;
    if (fdatasync(w->fd) < 0) {
        int e = errno;
        char path[PATH_MAX];
        seg_path(w, w->active_first, path, sizeof path);
        util_err(err, errlen, "wal: fdatasync of %s failed: %s", path, strerror(e));
        return poison(w, errno_code(e), err, errlen);
    }
    w->synced_off = w->write_off;
    pthread_mutex_lock(&w->mu);
    if (w->durable != w->next_seq - 1) {
        w->durable = w->next_seq - 1;
        w->durable_bytes = w->bytes_cum;
        mark_push(w, w->durable, w->durable_bytes, util_now_ms());
    }
    w->segs[w->nsegs - 1].size = w->write_off;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

static int roll(wal *w, char *err, size_t errlen)
{
    int rc = sync_active(w, err, errlen);
    int fd = -1;
    if (rc == 0)
        rc = create_segment(w, w->next_seq, &fd, err, errlen);
    if (rc < 0)
        return poison(w, rc, err, errlen);
    pthread_mutex_lock(&w->mu);
    int pushed = seg_push(w, w->next_seq, 0);
    pthread_mutex_unlock(&w->mu);
    if (pushed < 0) {
        close(fd);
        util_err(err, errlen, "wal: out of memory");
        return poison(w, WAL_ERR, err, errlen);
    }
    close(w->fd);
    w->fd = fd;
    w->active_first = w->next_seq;
    w->write_off = w->synced_off = 0;
    return 0;
}

int wal_append(wal *w, const void *rec, size_t len, uint64_t *pos_out, char *err, size_t errlen)
{
    int rc = poisoned(w, err, errlen);
    if (rc < 0)
        return rc;
    if (len > w->max_record) {
        util_err(err, errlen, "wal: record of %zu bytes is above max_record (%u)", len, w->max_record);
        return WAL_ETOOBIG;
    }
    size_t need = WAL_HEADER_BYTES + len;
    uint64_t active = w->write_off + w->pend_len;
    if (active > 0 && active + need > w->segment_bytes && (rc = roll(w, err, errlen)) < 0)
        return rc;
    if (w->pend_len > 0 && w->pend_len + need > WAL_PENDING_FLUSH && (rc = write_pending(w, err, errlen)) < 0)
        return rc;
    if (w->pend_len + need > w->pend_cap) {
        size_t cap = w->pend_cap ? w->pend_cap : 64u << 10;
        while (cap < w->pend_len + need)
            cap *= 2;
        unsigned char *np = realloc(w->pend, cap);
        if (np == NULL)
            return util_err(err, errlen, "wal: out of memory buffering a record of %zu bytes", len);
        w->pend = np;
        w->pend_cap = cap;
    }
    uint64_t seq = w->next_seq;
    unsigned char *p = w->pend + w->pend_len;
    if (len > 0)
        memcpy(p + WAL_HEADER_BYTES, rec, len);
    wal_record_header(p, seq, p + WAL_HEADER_BYTES, (uint32_t)len);
    w->pend_len += need;
    w->bytes_cum += need;
    w->next_seq++;
    pthread_mutex_lock(&w->mu);
    w->appended = seq;
    pthread_mutex_unlock(&w->mu);
    if (pos_out != NULL)
        *pos_out = seq;
    return 0;
}

int wal_sync(wal *w, uint64_t *durable_out, char *err, size_t errlen)
{
    int rc = poisoned(w, err, errlen);
    if (rc == 0 && (w->pend_len > 0 || w->durable != w->next_seq - 1))
        rc = sync_active(w, err, errlen);
    if (durable_out != NULL) {
        pthread_mutex_lock(&w->mu);
        *durable_out = w->durable;
        pthread_mutex_unlock(&w->mu);
    }
    return rc;
}

/* ---- read / release / stats ---- */

typedef struct {
    uint64_t first;
    int fd;
} wal_open_seg;

/* Opens, under mu, the segments holding after + 1 .. durable, so a release that
 * runs meanwhile cannot take a file away (an open fd outlives the unlink). */
static int snapshot(wal *w, uint64_t after, wal_open_seg **segs, size_t *n, uint64_t *limit,
                    char *err, size_t errlen)
{
    *segs = NULL;
    *n = 0;
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    *limit = w->durable;
    size_t i0 = 0;
    while (i0 + 1 < w->nsegs && w->segs[i0 + 1].first <= after + 1)
        i0++;
    if (after + 1 < w->segs[0].first) {
        util_err(err, errlen, "wal: records after %llu were asked for, but the log starts at %llu",
                 (unsigned long long)after, (unsigned long long)w->segs[0].first);
        rc = WAL_EINVAL;
    } else if (after < *limit) {
        size_t i1 = i0;
        while (i1 + 1 < w->nsegs && w->segs[i1 + 1].first <= *limit)
            i1++;
        *segs = calloc(i1 - i0 + 1, sizeof **segs);
        if (*segs == NULL)
            rc = util_err(err, errlen, "wal: out of memory");
        for (size_t i = i0; rc == 0 && i <= i1; i++) {
            char path[PATH_MAX];
            seg_path(w, w->segs[i].first, path, sizeof path);
            (*segs)[*n].first = w->segs[i].first;
            (*segs)[*n].fd = open(path, O_RDONLY | O_CLOEXEC);
            if ((*segs)[*n].fd < 0)
                rc = util_err(err, errlen, "wal: cannot open %s: %s", path, strerror(errno));
            else
                (*n)++;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int wal_read_from(wal *w, uint64_t after_pos, wal_read_fn fn, void *ctx, uint64_t *last_out,
                  char *err, size_t errlen)
{
    wal_open_seg *segs;
    size_t n;
    uint64_t limit, last = after_pos;
    int rc = snapshot(w, after_pos, &segs, &n, &limit, err, errlen);
    for (size_t i = 0; rc == 0 && i < n && last < limit; i++) {
        char path[PATH_MAX];
        seg_path(w, segs[i].first, path, sizeof path);
        uint64_t off = 0, seq = segs[i].first;
        if (w->hint_first == segs[i].first && w->hint_seq <= last && w->hint_seq >= seq) {
            off = w->hint_off; /* resume where the last read stopped */
            seq = w->hint_seq + 1;
        }
        wal_segr r;
        wal_walk wk;
        rc = wal_segr_init(&r, segs[i].fd, err, errlen);
        if (rc == 0)
            rc = wal_seg_walk(&r, off, seq, w->max_record, last, limit, fn, ctx, &wk, err, errlen);
        wal_segr_free(&r);
        if (rc < 0) {
            prefix_path(rc, path, err, errlen);
            break;
        }
        if (wk.count > 0) {
            w->hint_first = segs[i].first;
            w->hint_seq = wk.last_seq;
            w->hint_off = wk.end;
        }
        if (wk.last_seq > last)
            last = wk.last_seq;
        if (wk.fn_rc != 0) {
            rc = wk.fn_rc < 0 ? wk.fn_rc : 0;
            limit = last; /* stopped by the caller: not a missing record */
            break;
        }
        if (wk.bad != NULL && last < limit) {
            util_err(err, errlen, "wal: %s: corrupt record at offset %llu (%s) below the durable position %llu",
                     path, (unsigned long long)wk.end, wk.bad, (unsigned long long)limit);
            rc = WAL_ECORRUPT;
        }
    }
    if (rc == 0 && last < limit) {
        util_err(err, errlen, "wal: record %llu is durable but missing from the segments",
                 (unsigned long long)(last + 1));
        rc = WAL_ECORRUPT;
    }
    for (size_t i = 0; i < n; i++)
        close(segs[i].fd);
    free(segs);
    if (last_out != NULL)
        *last_out = last;
    return rc;
}

int wal_release(wal *w, uint64_t applied_pos, char *err, size_t errlen)
{
    pthread_mutex_lock(&w->mu);
    if (applied_pos > w->durable) {
        uint64_t d = w->durable;
        pthread_mutex_unlock(&w->mu);
        util_err(err, errlen, "wal: cannot release up to %llu: only %llu is durable",
                 (unsigned long long)applied_pos, (unsigned long long)d);
        return WAL_EINVAL;
    }
    if (applied_pos > w->released)
        w->released = applied_pos;
    while (w->mark_n > 0 && w->marks[w->mark_head].last_seq <= w->released) {
        w->released_bytes = w->marks[w->mark_head].end_bytes;
        w->mark_head = (w->mark_head + 1) % WAL_MARKS;
        w->mark_n--;
    }
    size_t k = 0;
    while (k + 1 < w->nsegs && w->segs[k + 1].first <= w->released + 1)
        k++;
    uint64_t *gone = k > 0 ? malloc(k * sizeof *gone) : NULL;
    if (gone != NULL) {
        for (size_t i = 0; i < k; i++)
            gone[i] = w->segs[i].first;
        memmove(w->segs, w->segs + k, (w->nsegs - k) * sizeof *w->segs);
        w->nsegs -= k;
    } else {
        k = 0; /* out of memory: the files stay until a later release */
    }
    pthread_mutex_unlock(&w->mu);

    /* Unlinking a big file can take milliseconds: not under mu, where the
     * appender waits. A deletion lost in a crash only leaves applied records,
     * which the caller skips, so the folder is not fsync'd for it. */
    int rc = 0;
    for (size_t i = 0; i < k; i++) {
        char path[PATH_MAX];
        seg_path(w, gone[i], path, sizeof path);
        if (unlink(path) < 0 && errno != ENOENT && rc == 0)
            rc = util_err(err, errlen, "wal: cannot delete %s: %s", path, strerror(errno));
    }
    free(gone);
    return rc;
}

void wal_stats(wal *w, wal_stats_info *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&w->mu);
    out->appended = w->appended;
    out->durable = w->durable;
    out->released = w->released;
    out->first = w->segs[0].first;
    for (size_t i = 0; i < w->nsegs; i++)
        out->bytes += w->segs[i].size;
    out->segments = (uint32_t)w->nsegs;
    out->backlog_records = w->durable - w->released;
    out->backlog_bytes = w->durable_bytes - w->released_bytes;
    if (out->backlog_records > 0 && w->mark_n > 0) {
        out->oldest_age_ms = util_now_ms() - w->marks[w->mark_head].at_ms;
        if (out->oldest_age_ms < 0)
            out->oldest_age_ms = 0;
    }
    out->cut_bytes = w->cut_bytes;
    out->poisoned = w->poisoned;
    pthread_mutex_unlock(&w->mu);
}

void wal_close(wal *w)
{
    if (w == NULL)
        return;
    /* Pending records were never made durable, so never acknowledged: dropped. */
    if (w->fd >= 0)
        close(w->fd);
    if (w->dirfd >= 0)
        close(w->dirfd); /* drops the flock */
    pthread_mutex_destroy(&w->mu);
    free(w->segs);
    free(w->pend);
    free(w);
}
