/*
 * integrity.c: refuse a damaged data.mdb before LMDB touches it through the map.
 *
 * LMDB maps the whole file and trusts it: a page number or a node offset that
 * points past the end of the file is a SIGBUS, not an error code. So at open we
 * read the file ourselves with pread (a short read is an error, never a signal)
 * and check it against LMDB's own view:
 *   - the meta page LMDB uses (the valid one of the two with the higher txnid,
 *     or the one of our read transaction) and its page size;
 *   - (mm_last_pg + 1) * page size <= file size: a shorter file was truncated.
 *     A LONGER file is normal: a commit that crashed after writing its pages
 *     but before its meta leaves pages past mm_last_pg, which LMDB never reads
 *     and overwrites as the store grows. Garbage appended there is harmless.
 *   - a walk of the B-trees (free list, main DB, every named DB): each page
 *     carries its own number, the right kind for its level, sane bounds, and
 *     nodes and overflow pages inside the pages in use. Every branch page is
 *     read, and the free list and main DB in full; the named databases' leaf
 *     pages all when the store is small, otherwise those in the most recently
 *     allocated part of the file (where a torn or overwritten tail lands), so
 *     the cost at open stays bounded on a large store (about 40 ms for
 *     150 MiB read in full from the page cache).
 *
 * The on-disk layout below is LMDB 0.9's (mdb.c: MDB_page, MDB_node, MDB_meta,
 * MDB_db), little-endian on the machines veille runs on; offsets verified
 * against real stores with xxd. The walk runs inside a read transaction whose
 * snapshot it checks, so a serve writing at the same time cannot recycle the
 * pages under it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/internal.h"
#include "util/util.h"

/* page header: mp_pgno u64, mp_pad u16, mp_flags u16, mp_lower u16, mp_upper u16
 * (overflow pages: mp_pages u32 in place of lower/upper) */
#define PG_HDR 16
#define PG_OFF_FLAGS 10
#define PG_OFF_LOWER 12
#define PG_OFF_UPPER 14
#define P_BRANCH 0x01
#define P_LEAF 0x02
#define P_OVERFLOW 0x04
#define P_META 0x08
#define P_LEAF2 0x20
#define P_KIND (P_BRANCH | P_LEAF | P_OVERFLOW | P_META | P_LEAF2)

/* node: mn_lo u16, mn_hi u16, mn_flags u16, mn_ksize u16, then key, then data.
 * Leaf: data size = lo | hi << 16. Branch: child = lo | hi << 16 | flags << 32. */
#define NODE_HDR 8
#define F_BIGDATA 0x01
#define F_SUBDATA 0x02
#define F_DUPDATA 0x04

/* MDB_db: md_pad u32 (the free DB's holds the page size in a meta), md_flags u16,
 * md_depth u16, branch/leaf/overflow pages and entries (u64 each), md_root u64 */
#define DB_SIZE 48
#define DB_OFF_PAD 0
#define DB_OFF_DEPTH 6
#define DB_OFF_ROOT 40
/* MDB_meta after the page header: mm_magic u32, mm_version u32, mm_address,
 * mm_mapsize, mm_dbs[2] (free, main), mm_last_pg, mm_txnid */
#define META_OFF_MAGIC (PG_HDR + 0)
#define META_OFF_VERSION (PG_HDR + 4)
#define META_OFF_DBS (PG_HDR + 24)
#define META_OFF_LAST_PG (META_OFF_DBS + 2 * DB_SIZE)
#define META_OFF_TXNID (META_OFF_LAST_PG + 8)
#define META_SIZE (META_OFF_TXNID + 8)
#define MDB_MAGIC_NUMBER 0xBEEFC0DEu
#define MDB_DATA_VER 1
#define P_INVALID_PGNO (~(uint64_t)0)
#define CURSOR_DEPTH_MAX 32 /* LMDB's CURSOR_STACK */

/* Leaf pages read in full below this many pages in use (256 MiB at 4 KiB);
 * past it, leaves among the last STORE_CHECK_TAIL_PAGES allocated. */
#ifndef STORE_CHECK_FULL_PAGES /* a build may lower them to try the sampled walk on a small store */
#define STORE_CHECK_FULL_PAGES 65536u
#define STORE_CHECK_TAIL_PAGES 16384u
#endif
#define STORE_CHECK_DBS_MAX 32

static uint16_t rd16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t rd32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

typedef struct {
    uint32_t psize;
    uint64_t last_pg;
    uint64_t txnid;
    unsigned char dbs[2][DB_SIZE];
} meta_view;

typedef struct {
    int fd;
    const char *path;
    uint32_t psize;
    uint64_t npages;     /* last_pg + 1: the pages in use */
    uint64_t leaf_from;  /* leaves with a lower number are not read */
    uint64_t reads;      /* pages read: each page in use belongs to one tree once */
    unsigned char *buf;  /* CURSOR_DEPTH_MAX + 1 pages */
    char *err;
    size_t errlen;
} walker;

/* The named databases found in the main DB's leaves, walked after it. */
typedef struct {
    unsigned char rec[STORE_CHECK_DBS_MAX][DB_SIZE];
    char name[STORE_CHECK_DBS_MAX][64];
    size_t n;
} named_dbs;

static int damaged(char *err, size_t errlen, const char *path, const char *what)
{
    /* UTIL_ERRLEN is 256: the advice must stay short */
    util_err(err, errlen,
             "store: %s is damaged (%s): restore it from a backup, or salvage it with mdb_dump -a | mdb_load "
             "into a new --data dir", path, what);
    return STORE_ERR_DAMAGED;
}

/* One meta page at off; false when it is not a valid LMDB meta. */
static bool meta_read(int fd, off_t off, meta_view *m)
{
    unsigned char b[META_SIZE];
    if (pread(fd, b, sizeof b, off) != (ssize_t)sizeof b)
        return false;
    if ((rd16(b + PG_OFF_FLAGS) & P_META) == 0 || rd32(b + META_OFF_MAGIC) != MDB_MAGIC_NUMBER ||
        rd32(b + META_OFF_VERSION) != MDB_DATA_VER)
        return false;
    memcpy(m->dbs, b + META_OFF_DBS, sizeof m->dbs);
    m->psize = rd32(m->dbs[0] + DB_OFF_PAD);
    m->last_pg = rd64(b + META_OFF_LAST_PG);
    m->txnid = rd64(b + META_OFF_TXNID);
    return true;
}

static int read_page(walker *w, uint64_t pgno, unsigned char *page, const char *db)
{
    char what[160];
    if (pgno < 2 || pgno >= w->npages) {
        snprintf(what, sizeof what, "'%s' points to page %llu of %llu in use", db,
                 (unsigned long long)pgno, (unsigned long long)w->npages);
        return damaged(w->err, w->errlen, w->path, what);
    }
    /* a pointer loop in otherwise plausible pages must not make the walk endless */
    if (++w->reads > w->npages)
        return damaged(w->err, w->errlen, w->path, "its B-trees reach some pages twice");
    ssize_t n = pread(w->fd, page, w->psize, (off_t)(pgno * w->psize));
    if (n < 0)
        return util_err(w->err, w->errlen, "store: cannot read %s: %s", w->path, strerror(errno));
    if ((size_t)n != w->psize || rd64(page) != pgno) {
        snprintf(what, sizeof what, "page %llu of '%s' overwritten",
                 (unsigned long long)pgno, db);
        return damaged(w->err, w->errlen, w->path, what);
    }
    return 0;
}

static int bad_page(walker *w, uint64_t pgno, const char *db, const char *why)
{
    char what[200];
    snprintf(what, sizeof what, "page %llu of '%s': %s", (unsigned long long)pgno, db, why);
    return damaged(w->err, w->errlen, w->path, what);
}

/* An overflow value of size bytes starting at page op. */
static int check_overflow(walker *w, uint64_t op, uint64_t size, const char *db)
{
    unsigned char *page = w->buf + (size_t)CURSOR_DEPTH_MAX * w->psize;
    int rc = read_page(w, op, page, db);
    if (rc < 0)
        return rc;
    uint64_t need = (PG_HDR + size + w->psize - 1) / w->psize;
    uint32_t pages = rd32(page + PG_OFF_LOWER);
    if ((rd16(page + PG_OFF_FLAGS) & P_KIND) != P_OVERFLOW || pages < need || op + pages > w->npages)
        return bad_page(w, op, db, "not the overflow pages its record names");
    return 0;
}

/* Nodes of a page inside it; on a leaf, every record's value inside its page
 * or its overflow pages. Named databases found in the main DB go to named
 * (NULL: none belongs in this tree). */
static int check_nodes(walker *w, uint64_t pgno, const unsigned char *page, bool leaf, const char *db,
                       named_dbs *named)
{
    uint16_t lower = rd16(page + PG_OFF_LOWER), upper = rd16(page + PG_OFF_UPPER);
    if (lower < PG_HDR || (lower - PG_HDR) % 2 != 0 || lower > upper || upper > w->psize)
        return bad_page(w, pgno, db, "its header bounds are impossible");
    size_t nkeys = (size_t)(lower - PG_HDR) / 2;
    if (nkeys == 0 && !leaf)
        return bad_page(w, pgno, db, "a branch page without a key"); /* the walk needs a child */
    for (size_t i = 0; i < nkeys; i++) {
        uint16_t ptr = rd16(page + PG_HDR + 2 * i);
        if (ptr < upper || (size_t)ptr + NODE_HDR > w->psize)
            return bad_page(w, pgno, db, "a record lies outside the page");
        const unsigned char *node = page + ptr;
        uint16_t flags = rd16(node + 4), ksize = rd16(node + 6);
        uint64_t dsize = (uint64_t)rd16(node) | (uint64_t)rd16(node + 2) << 16;
        size_t end = (size_t)ptr + NODE_HDR + ksize;
        if (end > w->psize)
            return bad_page(w, pgno, db, "a key runs past the page");
        if (!leaf)
            continue; /* the child is checked when the walk reaches it */
        if (flags & ~(F_BIGDATA | F_SUBDATA))
            return bad_page(w, pgno, db, "a record has flags veille never writes");
        if (flags & F_BIGDATA) {
            if (end + 8 > w->psize)
                return bad_page(w, pgno, db, "an overflow reference runs past the page");
            int rc = check_overflow(w, rd64(node + NODE_HDR + ksize), dsize, db);
            if (rc < 0)
                return rc;
            continue;
        }
        if (end + dsize > w->psize)
            return bad_page(w, pgno, db, "a value runs past the page");
        if (flags & F_SUBDATA) {
            if (named == NULL || dsize != DB_SIZE)
                return bad_page(w, pgno, db, "a database record where none belongs");
            if (named->n >= STORE_CHECK_DBS_MAX)
                return bad_page(w, pgno, db, "more named databases than veille creates");
            memcpy(named->rec[named->n], node + NODE_HDR + ksize, DB_SIZE);
            snprintf(named->name[named->n], sizeof named->name[0], "%.*s", ksize < 63 ? (int)ksize : 63,
                     (const char *)node + NODE_HDR);
            named->n++;
        }
    }
    return 0;
}

static size_t page_keys(const unsigned char *page)
{
    return (size_t)(rd16(page + PG_OFF_LOWER) - PG_HDR) / 2;
}

/* Read and check page pgno at one level of a tree of depth levels into the
 * level's buffer. A leaf below w->leaf_from is not read: its parent checked
 * that its number is in use. */
static int visit_page(walker *w, uint64_t pgno, unsigned level, bool leaf, const char *db, named_dbs *named)
{
    unsigned char *page = w->buf + (size_t)level * w->psize;
    if (leaf && pgno >= 2 && pgno < w->npages && pgno < w->leaf_from)
        return 0;
    int rc = read_page(w, pgno, page, db);
    if (rc < 0)
        return rc;
    if ((rd16(page + PG_OFF_FLAGS) & P_KIND) != (leaf ? P_LEAF : P_BRANCH))
        return bad_page(w, pgno, db, leaf ? "a leaf page was expected" : "a branch page was expected");
    return check_nodes(w, pgno, page, leaf, db, named);
}

/* Depth-first over one B-tree, one page buffer per level. */
static int walk_tree(walker *w, const unsigned char *dbrec, const char *db, named_dbs *named)
{
    uint64_t root = rd64(dbrec + DB_OFF_ROOT);
    unsigned depth = rd16(dbrec + DB_OFF_DEPTH);
    char what[128];
    if (root == P_INVALID_PGNO && depth == 0)
        return 0; /* empty */
    if (root == P_INVALID_PGNO || depth == 0 || depth > CURSOR_DEPTH_MAX) {
        snprintf(what, sizeof what, "'%s' has an impossible depth %u", db, depth);
        return damaged(w->err, w->errlen, w->path, what);
    }
    size_t next[CURSOR_DEPTH_MAX]; /* per branch level: the next child to visit */
    unsigned level = 0;
    uint64_t pgno = root;
    for (;;) {
        bool leaf = level + 1 == depth;
        int rc = visit_page(w, pgno, level, leaf, db, named);
        if (rc < 0)
            return rc;
        if (leaf) {
            /* climb to the nearest branch with a child left */
            do {
                if (level == 0)
                    return 0;
                level--;
            } while (next[level] >= page_keys(w->buf + (size_t)level * w->psize));
        } else {
            next[level] = 0; /* check_nodes made sure a branch has a key */
        }
        const unsigned char *page = w->buf + (size_t)level * w->psize;
        const unsigned char *node = page + rd16(page + PG_HDR + 2 * next[level]++);
        pgno = (uint64_t)rd16(node) | (uint64_t)rd16(node + 2) << 16 | (uint64_t)rd16(node + 4) << 32;
        level++;
    }
}

int store_check_integrity(store *s, MDB_txn *txn, char *err, size_t errlen)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/data.mdb", s->dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && txn == NULL)
        return 0; /* a new store: LMDB creates it */
    if (fd < 0)
        return util_err(err, errlen, "store: cannot read %s: %s", path, strerror(errno));
    int ret = 0;
    named_dbs *named = NULL;
    walker w = { .fd = fd, .path = path, .err = err, .errlen = errlen };
    struct stat st;
    meta_view m[2];
    bool ok0 = meta_read(fd, 0, &m[0]);
    bool ok1 = ok0 && m[0].psize >= 512 && m[0].psize <= 65536 && (m[0].psize & (m[0].psize - 1)) == 0 &&
               meta_read(fd, m[0].psize, &m[1]);
    if (fstat(fd, &st) < 0) {
        ret = util_err(err, errlen, "store: cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    if (txn == NULL && st.st_size == 0)
        goto done; /* allowed by the caller (STORE_INIT): LMDB initialises it */
    if (!ok1) {
        /* mdb_env_open reads the same pages and refuses them too */
        ret = damaged(err, errlen, path, "its header pages are not LMDB's");
        goto done;
    }
    /* the snapshot of our read transaction, else what LMDB would pick */
    uint64_t id = txn != NULL ? (uint64_t)mdb_txn_id(txn) : 0;
    const meta_view *use = m[1].txnid == id ? &m[1] : m[0].txnid == id ? &m[0]
                         : m[1].txnid > m[0].txnid ? &m[1] : &m[0];
    bool snapshot = txn != NULL && use->txnid == id;
    w.psize = m[0].psize;
    w.npages = use->last_pg + 1;
    if (use->last_pg < 1 || use->last_pg > (uint64_t)INT64_MAX / w.psize) {
        ret = damaged(err, errlen, path, "its meta page records an impossible size");
        goto done;
    }
    if ((uint64_t)st.st_size < w.npages * w.psize) {
        char what[200];
        snprintf(what, sizeof what, "truncated: %llu bytes of %llu",
                 (unsigned long long)st.st_size, (unsigned long long)(w.npages * w.psize));
        ret = damaged(err, errlen, path, what);
        goto done;
    }
    if (!snapshot)
        goto done; /* before mdb_env_open, or a writer committed twice since txn began: not our pages to walk */
    w.buf = malloc((size_t)(CURSOR_DEPTH_MAX + 1) * w.psize);
    named = malloc(sizeof *named);
    if (w.buf == NULL || named == NULL) {
        ret = util_err(err, errlen, "store: out of memory checking %s", path);
        goto done;
    }
    named->n = 0;
    /* the free list and the main DB (which names the others) in full: both are small */
    ret = walk_tree(&w, use->dbs[0], "free list", NULL);
    if (ret == 0)
        ret = walk_tree(&w, use->dbs[1], "main", named);
    /* A reader (history, stats...) must answer in milliseconds: on a store of a
     * million events even its branch pages are thousands of reads (25 ms). So
     * it checks what LMDB reads first, each named database's root page, and
     * leaves damage further down to the SIGBUS backstop the CLI installs
     * (store_reader_guard). The writer that serves the store walks every
     * branch and the leaves (all, or the newest part), once, at start. */
    w.leaf_from = w.npages <= STORE_CHECK_FULL_PAGES ? 0 : w.npages - STORE_CHECK_TAIL_PAGES;
    for (size_t i = 0; ret == 0 && i < named->n; i++) {
        if (!s->readonly) {
            ret = walk_tree(&w, named->rec[i], named->name[i], NULL);
            continue;
        }
        uint64_t root = rd64(named->rec[i] + DB_OFF_ROOT);
        unsigned depth = rd16(named->rec[i] + DB_OFF_DEPTH);
        if (root == P_INVALID_PGNO && depth == 0)
            continue; /* empty */
        if (root == P_INVALID_PGNO || depth == 0 || depth > CURSOR_DEPTH_MAX) {
            char what[128];
            snprintf(what, sizeof what, "'%s' has an impossible depth %u", named->name[i], depth);
            ret = damaged(err, errlen, path, what);
            break;
        }
        ret = visit_page(&w, root, 0, depth == 1, named->name[i], NULL);
    }
done:
    free(named);
    free(w.buf);
    close(fd);
    return ret;
}

/* The CLI's SIGBUS backstop (store.h). The message is built before any read, so
 * the handler only calls write(2) and _exit(2), both async-signal-safe; this
 * buffer is the one piece of process-wide state, set once by a reader process. */
static char reader_guard_msg[PATH_MAX + 256];
static size_t reader_guard_len;

static void reader_guard_fire(int sig)
{
    (void)sig;
    ssize_t w = write(STDERR_FILENO, reader_guard_msg, reader_guard_len);
    (void)w;
    _exit(3);
}

void store_reader_guard(const char *dir)
{
    char path[PATH_MAX + 16], err[UTIL_ERRLEN];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    damaged(err, sizeof err, path, "a page points past the end of the file");
    int n = snprintf(reader_guard_msg, sizeof reader_guard_msg, "veille: %s\n", err);
    reader_guard_len = n < 0 ? 0 : (size_t)n < sizeof reader_guard_msg ? (size_t)n : sizeof reader_guard_msg - 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = reader_guard_fire;
    sigaction(SIGBUS, &sa, NULL);
}
