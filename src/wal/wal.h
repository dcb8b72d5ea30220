/*
 * wal.h: the write-ahead log. An append-only sequence of opaque records (the
 * caller decides what goes in them) in segment files under DIR/wal/, made
 * durable a group at a time by fdatasync, read back in order from any position,
 * and deleted a segment at a time once the caller says it has applied them.
 * `veille serve` acknowledges from it (src/pipeline/; README.md, "Write-ahead log (format)").
 *
 * POSITIONS
 *   Every record has a position: its sequence number, 1 for the first record of
 *   a new log (or wal_options.first_seq), then +1 per record. A durable
 *   record's position is never handed out again; those of records that never
 *   became durable (dropped at close, or cut after a failure) are. Position 0
 *   means "none" (read everything).
 *
 * FILES
 *   DIR/wal/                       created by wal_open (DIR must exist)
 *   DIR/wal/<16 hex digits>.wal    a segment, named by the position of its first
 *                                  record, lower-case hex, zero-padded
 *                                  (0000000000000001.wal). A segment created
 *                                  before its first record is written is empty.
 *                                  Other file names in the folder are ignored.
 *   Segments follow each other without gaps: the next segment's name is the
 *   last position of the previous one + 1. A segment is closed (a new one
 *   started) before a record would take it past wal_options.segment_bytes; a
 *   record bigger than that still goes alone into a segment of its own.
 *
 * RECORD FORMAT (all integers little-endian; 20-byte header, then the payload)
 *   offset 0   u8   magic 0x57 ('W')
 *   offset 1   u8   version 1
 *   offset 2   u16  flags, 0 (any other value is corruption: reserved)
 *   offset 4   u32  payload length (above wal_options.max_record: corruption,
 *                   never an allocation)
 *   offset 8   u32  CRC-32C (Castagnoli) over header bytes 0-7, 12-19 and the
 *                   payload: everything but the CRC itself
 *   offset 12  u64  position (sequence number) of the record
 *   offset 20       payload, `length` bytes; the next record follows at once
 *   A record is valid when all of that holds and its position is the previous
 *   record's + 1 (the segment's name for its first record).
 *
 * RECOVERY (wal_open)
 *   Every segment is read and checked. In the last segment, a bad record after
 *   which no valid record follows is a torn tail (a crash mid-append, or a
 *   failed write): the file is cut at the last valid record (ftruncate +
 *   fsync) and wal_options.on_cut is told. A bad record anywhere else (an older
 *   segment, or the last one with valid records after it) is corruption of
 *   records that were acknowledged: wal_open refuses, naming file and offset,
 *   and cuts nothing. Lowering max_record between runs can make valid records
 *   look corrupt: don't.
 *
 * ERRORS AND FSYNCGATE
 *   After a failed write or fdatasync (ENOSPC, EFBIG, EIO...) the log is
 *   POISONED: what reached the disk is unknown (Linux may drop dirty pages after
 *   reporting the error once, so a second fdatasync can "succeed" without the
 *   data). The durable position stays where it was, the bytes written since the
 *   last good fdatasync are cut off the file at once (ftruncate: left in the
 *   page cache, a reopen would read them as valid and call them durable), and
 *   every later wal_append and wal_sync fails with WAL_EPOISONED until the log
 *   is closed and reopened. Reopening checks the files again, cuts a torn tail,
 *   and fdatasyncs the last segment before reporting its records durable (the
 *   previous process may have died between a write and its fdatasync). Records
 *   the caller never saw durable were not acknowledged: if one survives (the
 *   ftruncate failed too, or a process died after writing it), it is replayed
 *   like the others, and the caller's idempotency absorbs the repeat.
 *
 * THREADS
 *   One appender thread calls wal_append and wal_sync. At the same time, one
 *   other thread (the apply thread) may call wal_read_from, wal_release and
 *   wal_stats; wal_stats is safe from any thread. wal_open and wal_close run
 *   alone. wal_read_from reads with file descriptors of its own and only up to
 *   the durable position, so it never sees a half-written record.
 */
#ifndef VEILLE_WAL_H
#define VEILLE_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wal wal;

enum {
    WAL_OK = 0,
    WAL_ERR = -1,        /* I/O or system error (message says which) */
    WAL_ECORRUPT = -2,   /* a record that was acknowledged is damaged: refuse, don't cut */
    WAL_EPOISONED = -3,  /* an earlier write/sync failed: close and reopen */
    WAL_ETOOBIG = -4,    /* record above max_record: refused, nothing written */
    WAL_ENOSPC = -5,     /* the disk (or a size limit) is full: ENOSPC, EFBIG, EDQUOT */
    WAL_EBUSY = -6,      /* another process holds the log open */
    WAL_EINVAL = -7,     /* bad argument (position beyond the durable one, bad option) */
};

#define WAL_HEADER_BYTES 20
#define WAL_DEFAULT_SEGMENT_BYTES (64ull << 20)
#define WAL_DEFAULT_MAX_RECORD (4u << 20)
#define WAL_MAX_MAX_RECORD (1u << 30)

/* What wal_open cut from the end of the last segment. */
typedef struct {
    const char *file;   /* path of the segment */
    uint64_t offset;    /* where the cut record started (the new file size) */
    uint64_t bytes;     /* bytes removed */
    uint64_t last_pos;  /* position of the last record kept (0: none in the log) */
    const char *reason; /* "truncated header", "bad CRC", ... */
} wal_cut;

typedef struct {
    uint64_t segment_bytes; /* 0: WAL_DEFAULT_SEGMENT_BYTES */
    uint32_t max_record;    /* 0: WAL_DEFAULT_MAX_RECORD; at most WAL_MAX_MAX_RECORD */
    uint64_t first_seq;     /* 0: 1. Position of the first record of a NEW log (an empty
                             * DIR/wal/): lets a caller whose store has applied up to N
                             * start a fresh log at N + 1 */
    /* Called by wal_open (from its thread) when it cuts a torn tail, so the caller logs it. */
    void (*on_cut)(const wal_cut *cut, void *ctx);
    void *ctx;
} wal_options;

typedef struct {
    uint64_t appended; /* last position handed out by wal_append (durable - 0 .. pending) */
    uint64_t durable;  /* last position covered by a successful fdatasync */
    uint64_t released; /* highest position given to wal_release (or first - 1) */
    uint64_t first;    /* position of the first record still on disk (released + 1 at most) */
    uint64_t bytes;    /* bytes in segment files, durable records only */
    uint32_t segments; /* segment files */
    /* Backpressure: what is durable but not yet released (applied). */
    uint64_t backlog_records;
    uint64_t backlog_bytes; /* counts a partly released group commit whole */
    int64_t oldest_age_ms;  /* since the group commit of the oldest unreleased record; 0: none.
                             * For records found at open: since their segment file last changed */
    uint64_t cut_bytes;     /* cut from the tail by wal_open */
    bool poisoned;
} wal_stats_info;

/* Opens (creating when missing) DIR/wal/, checks every segment, cuts a torn
 * tail (see RECOVERY), takes an exclusive lock on the folder (WAL_EBUSY when
 * another process has it) and positions for appending. opt may be NULL. */
int wal_open(wal **out, const char *dir, const wal_options *opt, char *err, size_t errlen);

/* Closes the files and frees; records appended since the last wal_sync are
 * dropped (never durable, so never acknowledged). wal_close(NULL) is a no-op. */
void wal_close(wal *w);

/* Buffers one record (no sync) and sets *pos_out to its position. The record is
 * not durable until a wal_sync returns a durable position >= it. Rolling to a new
 * segment happens here: it writes and fdatasyncs the old segment and fsyncs the
 * new file and the folder, so an append may block on the disk once a segment.
 * len > max_record: WAL_ETOOBIG, nothing consumed. */
int wal_append(wal *w, const void *rec, size_t len, uint64_t *pos_out, char *err, size_t errlen);

/* Writes everything appended and fdatasyncs it: one group commit. Sets
 * *durable_out (may be NULL) to the last durable position. On failure the log
 * is poisoned (see FSYNCGATE) and *durable_out still says what is durable. */
int wal_sync(wal *w, uint64_t *durable_out, char *err, size_t errlen);

/* Called for each record by wal_read_from, in position order. rec is valid
 * only during the call. Return 0 to go on, > 0 to stop (wal_read_from returns
 * 0), < 0 to abort (wal_read_from returns that value). */
typedef int (*wal_read_fn)(uint64_t pos, const void *rec, size_t len, void *ctx);

/* Calls fn for every durable record after after_pos, in order, up to the
 * durable position when the call starts. *last_out (may be NULL) is the last
 * position passed to fn (after_pos when none). Records before the first one on
 * disk are gone: after_pos + 1 < first is WAL_EINVAL. A damaged record is
 * WAL_ECORRUPT, naming file and offset. fn may call wal_release: the segments
 * being read are held open, so deleting them does not disturb the read. */
int wal_read_from(wal *w, uint64_t after_pos, wal_read_fn fn, void *ctx, uint64_t *last_out,
                  char *err, size_t errlen);

/* The caller has applied (durably) everything up to applied_pos: deletes the
 * segments all of whose records are <= applied_pos, never the active (last)
 * one. applied_pos beyond the durable position is WAL_EINVAL. */
int wal_release(wal *w, uint64_t applied_pos, char *err, size_t errlen);

void wal_stats(wal *w, wal_stats_info *out);

/* CRC-32C of buf, continuing from crc (0 to start). Exposed for the tests. */
uint32_t wal_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
