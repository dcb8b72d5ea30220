/* segment.c: the record codec (CRC-32C, header) and the buffered segment reader. */
#include "wal/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

/* The first read of a segment: big enough that a replay reads many records per
 * pread, small enough to allocate per reader. Grows for a bigger record. */
#define SEGR_INITIAL_CAP (256u << 10)

static const uint32_t crc32c_table[256] = {
#include "wal/crc32c.inc"
};

uint32_t wal_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint32_t c = crc ^ 0xffffffffu;
    for (size_t i = 0; i < len; i++)
        c = crc32c_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Everything but the CRC field itself (bytes 8-11) is covered. */
static uint32_t record_crc(const unsigned char *hdr, const void *payload, uint32_t len)
{
    uint32_t c = wal_crc32c(0, hdr, 8);
    c = wal_crc32c(c, hdr + 12, 8);
    return wal_crc32c(c, payload, len);
}

void wal_record_header(unsigned char *hdr, uint64_t seq, const void *payload, uint32_t len)
{
    hdr[0] = WAL_MAGIC;
    hdr[1] = WAL_VERSION;
    hdr[2] = hdr[3] = 0;
    put_le32(hdr + 4, len);
    put_le64(hdr + 12, seq);
    put_le32(hdr + 8, record_crc(hdr, payload, len));
}

int wal_segr_init(wal_segr *r, int fd, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return util_err(err, errlen, "wal: fstat failed: %s", strerror(errno));
    r->size = (uint64_t)st.st_size;
    return 0;
}

void wal_segr_free(wal_segr *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = r->buf_len = 0;
}

/* n bytes at off, valid until the next call; NULL when the file holds fewer
 * (io_errno set when a read failed). n is bounded by the callers: a header, or
 * a header + a length already checked against max_record and the file size. */
static const unsigned char *segr_peek(wal_segr *r, uint64_t off, size_t n)
{
    if (off >= r->buf_off && off + n <= r->buf_off + r->buf_len)
        return r->buf + (off - r->buf_off);
    if (off > r->size || n > r->size - off)
        return NULL;
    if (n > r->cap) {
        size_t cap = n > SEGR_INITIAL_CAP ? n : SEGR_INITIAL_CAP;
        unsigned char *nb = realloc(r->buf, cap);
        if (nb == NULL) {
            r->io_errno = ENOMEM;
            return NULL;
        }
        r->buf = nb;
        r->cap = cap;
    }
    size_t want = r->size - off < r->cap ? (size_t)(r->size - off) : r->cap;
    size_t got = 0;
    r->buf_off = off;
    r->buf_len = 0;
    while (got < want) {
        ssize_t k = pread(r->fd, r->buf + got, want - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            r->io_errno = errno;
            return NULL;
        }
        if (k == 0)
            break; /* the file shrank under us: what is there is all there is */
        got += (size_t)k;
    }
    r->buf_len = got;
    return got >= n ? r->buf : NULL;
}

/* Checks the header at p (WAL_HEADER_BYTES) for what needs no payload; NULL when
 * fine, else why not. */
static const char *header_problem(const unsigned char *p, uint32_t max_record)
{
    if (p[0] != WAL_MAGIC)
        return "bad magic byte";
    if (p[1] != WAL_VERSION)
        return "unknown record version";
    if (p[2] != 0 || p[3] != 0)
        return "reserved flags set";
    if (get_le32(p + 4) > max_record)
        return "length above max_record";
    return NULL;
}

int wal_seg_walk(wal_segr *r, uint64_t off, uint64_t seq, uint32_t max_record, uint64_t after,
                 uint64_t limit, wal_read_fn fn, void *ctx, wal_walk *w, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    w->end = off;
    w->last_seq = seq - 1;
    for (; seq <= limit && off < r->size; seq++) {
        const unsigned char *p = segr_peek(r, off, WAL_HEADER_BYTES);
        if (p == NULL && r->io_errno == 0) {
            w->bad = "truncated header";
            break;
        }
        if (p == NULL)
            return util_err(err, errlen, "read at offset %llu failed: %s", (unsigned long long)off,
                            strerror(r->io_errno));
        if ((w->bad = header_problem(p, max_record)) != NULL)
            break;
        uint32_t len = get_le32(p + 4);
        if ((uint64_t)WAL_HEADER_BYTES + len > r->size - off) {
            w->bad = "truncated record";
            break;
        }
        p = segr_peek(r, off, WAL_HEADER_BYTES + (size_t)len);
        if (p == NULL)
            return util_err(err, errlen, "read at offset %llu failed: %s", (unsigned long long)off,
                            strerror(r->io_errno ? r->io_errno : EIO));
        if (get_le32(p + 8) != record_crc(p, p + WAL_HEADER_BYTES, len)) {
            w->bad = "bad CRC";
            break;
        }
        if (get_le64(p + 12) != seq) {
            w->bad = "out-of-sequence position";
            break;
        }
        int rc = 0;
        if (fn != NULL && seq > after)
            rc = fn(seq, p + WAL_HEADER_BYTES, len, ctx);
        off += WAL_HEADER_BYTES + (uint64_t)len;
        w->end = off;
        w->last_seq = seq;
        w->count++;
        if (rc != 0) {
            w->fn_rc = rc;
            break;
        }
    }
    return 0;
}

int64_t wal_seg_find_valid(wal_segr *r, uint64_t bad_off, uint64_t after_seq, uint32_t max_record)
{
    /* A later record can only carry a position a little above after_seq: one per
     * header that fits in what is left. Checking that before the CRC keeps a
     * garbage tail from costing a CRC per byte. */
    for (uint64_t off = bad_off + 1; off + WAL_HEADER_BYTES <= r->size; off++) {
        const unsigned char *p = segr_peek(r, off, WAL_HEADER_BYTES);
        if (p == NULL)
            return r->io_errno ? -2 : -1;
        if (header_problem(p, max_record) != NULL)
            continue;
        uint32_t len = get_le32(p + 4);
        uint64_t seq = get_le64(p + 12);
        uint64_t room = r->size - off;
        if ((uint64_t)WAL_HEADER_BYTES + len > room || seq <= after_seq ||
            seq - after_seq > (r->size - bad_off) / WAL_HEADER_BYTES + 1)
            continue;
        uint32_t crc = get_le32(p + 8);
        p = segr_peek(r, off, WAL_HEADER_BYTES + (size_t)len);
        if (p == NULL)
            return r->io_errno ? -2 : -1;
        if (crc == record_crc(p, p + WAL_HEADER_BYTES, len))
            return (int64_t)off;
    }
    return -1;
}
