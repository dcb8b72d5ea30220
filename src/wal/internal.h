/*
 * internal.h (private to src/wal): the record codec and the segment reader that
 * wal.c and the fuzz target share. The format is documented in wal.h.
 */
#ifndef VEILLE_WAL_INTERNAL_H
#define VEILLE_WAL_INTERNAL_H

#include "wal/wal.h"

#define WAL_MAGIC 0x57
#define WAL_VERSION 1

/* Fills hdr (WAL_HEADER_BYTES) for a record of len bytes at position seq. */
void wal_record_header(unsigned char *hdr, uint64_t seq, const void *payload, uint32_t len);

/* A buffered reader over one segment file, by offset (pread: the fd's own
 * offset is untouched, so the appender's fd and a reader's never interfere). */
typedef struct {
    int fd;
    uint64_t size; /* file size when the reader was set up */
    unsigned char *buf;
    size_t cap;
    uint64_t buf_off; /* file offset of buf[0] */
    size_t buf_len;
    int io_errno; /* set when a read failed (not at end of file) */
} wal_segr;

int wal_segr_init(wal_segr *r, int fd, char *err, size_t errlen);
void wal_segr_free(wal_segr *r);

/* Walks a segment from offset off, where the record at position seq starts (0
 * and the segment's first position to walk it all). Records must be valid and
 * numbered seq, seq + 1, ...; fn (may be NULL) gets those with position > after. Stops
 * at the end of the file, at the first bad record, after the record at position
 * limit, or when fn returns non-zero. */
typedef struct {
    uint64_t end;       /* offset after the last valid record walked */
    uint64_t last_seq;  /* its position (seq - 1: none) */
    uint64_t count;     /* valid records walked */
    const char *bad;    /* why the record at `end` is bad; NULL when none */
    int fn_rc;          /* what fn returned when it stopped the walk, else 0 */
} wal_walk;

/* Returns 0, or WAL_ERR on a read error (message in err). A bad record is not an
 * error here: the caller decides (torn tail or corruption) from w->bad. */
int wal_seg_walk(wal_segr *r, uint64_t off, uint64_t seq, uint32_t max_record, uint64_t after,
                 uint64_t limit, wal_read_fn fn, void *ctx, wal_walk *w, char *err, size_t errlen);

/* After a bad record at offset bad_off: is there a valid record (any position
 * > after_seq) anywhere later in the file? Returns its offset, or -1 when none
 * (the bad record is a torn tail), or -2 on a read error. */
int64_t wal_seg_find_valid(wal_segr *r, uint64_t bad_off, uint64_t after_seq, uint32_t max_record);

#endif
