/* test_wal.c: the write-ahead log: round trip, group commits, segment rolling,
 * reopening, torn and corrupt tails, corruption of acknowledged records,
 * release, a concurrent reader, record bounds and a full disk (RLIMIT_FSIZE). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "util/util.h"
#include "wal/wal.h"

static char tmproot[64];
static int dir_seq;

/* A fresh, existing data directory (wal_open creates DIR/wal inside). */
static void new_dir(char *buf, size_t len)
{
    snprintf(buf, len, "%s/d%d", tmproot, ++dir_seq);
    mkdir(buf, 0700);
}

static void seg_file(const char *dir, uint64_t first, char *buf, size_t len)
{
    snprintf(buf, len, "%s/wal/%016llx.wal", dir, (unsigned long long)first);
}

/* The cut wal_open reported, if any. */
typedef struct {
    int calls;
    uint64_t offset, bytes, last_pos;
    char file[256], reason[64];
} cut_seen;

static void on_cut(const wal_cut *c, void *ctx)
{
    cut_seen *s = ctx;
    s->calls++;
    s->offset = c->offset;
    s->bytes = c->bytes;
    s->last_pos = c->last_pos;
    snprintf(s->file, sizeof s->file, "%s", c->file);
    snprintf(s->reason, sizeof s->reason, "%s", c->reason);
}

static wal *open_log(const char *dir, uint64_t segment_bytes, cut_seen *cut)
{
    char err[UTIL_ERRLEN];
    wal_options o = {.segment_bytes = segment_bytes, .on_cut = on_cut, .ctx = cut};
    wal *w = NULL;
    if (wal_open(&w, dir, &o, err, sizeof err) < 0) {
        printf("wal_open %s: %s\n", dir, err);
        return NULL;
    }
    return w;
}

/* Record contents are a function of the position, of varying length (8..57). */
static size_t payload(uint64_t pos, unsigned char *buf)
{
    size_t len = 8 + (size_t)(pos * 7 % 50);
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(pos * 31 + i);
    return len;
}

static int append_n(wal *w, uint64_t n)
{
    char err[UTIL_ERRLEN];
    for (uint64_t i = 0; i < n; i++) {
        wal_stats_info st;
        wal_stats(w, &st);
        unsigned char buf[64];
        uint64_t pos;
        if (wal_append(w, buf, payload(st.appended + 1, buf), &pos, err, sizeof err) < 0) {
            printf("wal_append: %s\n", err);
            return -1;
        }
    }
    return 0;
}

static int append_sync(wal *w, uint64_t n)
{
    char err[UTIL_ERRLEN];
    if (append_n(w, n) < 0)
        return -1;
    if (wal_sync(w, NULL, err, sizeof err) < 0) {
        printf("wal_sync: %s\n", err);
        return -1;
    }
    return 0;
}

/* Checks each record read: positions after..., in order, once, right contents. */
typedef struct {
    uint64_t next;
    uint64_t count;
    bool bad;
} reading;

static int check_record(uint64_t pos, const void *rec, size_t len, void *ctx)
{
    reading *r = ctx;
    unsigned char want[64];
    size_t wlen = payload(pos, want);
    if (pos != r->next || len != wlen || memcmp(rec, want, len) != 0)
        r->bad = true;
    r->next = pos + 1;
    r->count++;
    return 0;
}

/* Reads every durable record after `after`; true when they are exactly
 * after+1 .. to with the right contents. */
static bool reads_exactly(wal *w, uint64_t after, uint64_t to)
{
    char err[UTIL_ERRLEN];
    reading r = {after + 1, 0, false};
    uint64_t last = 0;
    int rc = wal_read_from(w, after, check_record, &r, &last, err, sizeof err);
    if (rc < 0)
        printf("wal_read_from: %s\n", err);
    return rc == 0 && !r.bad && r.count == to - after && last == to;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int count_segments(const char *dir)
{
    char path[300];
    snprintf(path, sizeof path, "%s/wal", dir);
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL)
        n += strlen(de->d_name) == 20 && strcmp(de->d_name + 16, ".wal") == 0;
    if (d != NULL)
        closedir(d);
    return n;
}

static void flip_byte(const char *path, long off, unsigned char mask)
{
    int fd = open(path, O_RDWR);
    unsigned char c = 0;
    if (fd < 0 || pread(fd, &c, 1, off) != 1)
        printf("flip_byte %s: %s\n", path, strerror(errno));
    c ^= mask;
    if (fd < 0 || pwrite(fd, &c, 1, off) != 1)
        printf("flip_byte %s: %s\n", path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

static void test_crc(void)
{
    CHECK("crc32c check value", wal_crc32c(0, "123456789", 9) == 0xE3069283u);
    CHECK("crc32c continues", wal_crc32c(wal_crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u);
}

static void test_round_trip(void)
{
    char dir[128], err[UTIL_ERRLEN], path[300];
    new_dir(dir, sizeof dir);
    cut_seen cut = {0};
    wal *w = open_log(dir, 0, &cut);
    CHECK("open creates DIR/wal", w != NULL);
    if (w == NULL)
        return;
    seg_file(dir, 1, path, sizeof path);
    CHECK("first segment named 0000000000000001.wal", file_size(path) == 0);
    uint64_t pos = 0, durable = 99;
    CHECK("append gives position 1", wal_append(w, "hello", 5, &pos, err, sizeof err) == 0 && pos == 1);
    CHECK("empty record accepted", wal_append(w, "", 0, &pos, err, sizeof err) == 0 && pos == 2);
    wal_stats_info st;
    wal_stats(w, &st);
    CHECK("appended before sync", st.appended == 2 && st.durable == 0);
    CHECK("sync gives the durable position", wal_sync(w, &durable, err, sizeof err) == 0 && durable == 2);
    CHECK("file holds header + payload per record", file_size(path) == 2 * WAL_HEADER_BYTES + 5);
    wal_stats(w, &st);
    CHECK("stats after sync", st.appended == 2 && st.durable == 2 && st.segments == 1 &&
                                  st.bytes == 2 * WAL_HEADER_BYTES + 5 && st.backlog_records == 2 &&
                                  st.backlog_bytes == st.bytes && !st.poisoned);
    CHECK("an idle sync is a no-op", wal_sync(w, &durable, err, sizeof err) == 0 && durable == 2);
    usleep(30 * 1000);
    wal_stats(w, &st);
    CHECK("backlog age counts from the group commit", st.oldest_age_ms >= 30 && st.oldest_age_ms < 10000);
    CHECK("release of part of a group", wal_release(w, 1, err, sizeof err) == 0);
    wal_stats(w, &st);
    CHECK("backlog after a partial release: one record, the group's bytes",
          st.backlog_records == 1 && st.backlog_bytes == 2 * WAL_HEADER_BYTES + 5 && st.released == 1);
    CHECK("cut not reported on a clean log", cut.calls == 0);
    wal_close(w);

    /* The documented layout, byte for byte. */
    unsigned char b[64];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, b, sizeof b) : -1;
    if (fd >= 0)
        close(fd);
    unsigned char crcbuf[8 + 8 + 5];
    memcpy(crcbuf, b, 8);
    memcpy(crcbuf + 8, b + 12, 8);
    memcpy(crcbuf + 16, b + 20, 5);
    uint32_t crc = (uint32_t)b[8] | (uint32_t)b[9] << 8 | (uint32_t)b[10] << 16 | (uint32_t)b[11] << 24;
    CHECK("record layout: magic, version, flags, length, position, payload",
          n == 45 && b[0] == 'W' && b[1] == 1 && b[2] == 0 && b[3] == 0 && b[4] == 5 && b[5] == 0 &&
              b[12] == 1 && b[13] == 0 && memcmp(b + 20, "hello", 5) == 0 && b[25 + 4] == 0 && b[25 + 12] == 2);
    CHECK("record CRC-32C covers all but itself", wal_crc32c(0, crcbuf, sizeof crcbuf) == crc);
}

static void test_groups_and_reopen(void)
{
    char dir[128], err[UTIL_ERRLEN];
    new_dir(dir, sizeof dir);
    cut_seen cut = {0};
    wal *w = open_log(dir, 0, &cut);
    if (w == NULL)
        return;
    bool ok = true;
    uint64_t total = 0;
    for (int g = 1; g <= 40 && ok; g++) {
        uint64_t durable = 0;
        ok = append_n(w, (uint64_t)(g % 7 + 1)) == 0 && wal_sync(w, &durable, err, sizeof err) == 0;
        total += (uint64_t)(g % 7 + 1);
        ok = ok && durable == total;
    }
    CHECK("40 group commits, each durable up to its last record", ok);
    CHECK("all records read back in order", reads_exactly(w, 0, total));
    CHECK("read from the middle", reads_exactly(w, 17, total));
    CHECK("read from the end gives nothing", reads_exactly(w, total, total));
    /* Appended but not synced: not durable, so not read. */
    CHECK("append 3 unsynced", append_n(w, 3) == 0);
    CHECK("unsynced records are not read", reads_exactly(w, 0, total));
    wal_close(w);

    w = open_log(dir, 0, &cut);
    wal_stats_info st;
    if (w != NULL)
        wal_stats(w, &st);
    CHECK("reopen finds the synced records, not the 3 unsynced", w != NULL && st.durable == total &&
                                                                      reads_exactly(w, 0, total));
    uint64_t pos = 0, before = w != NULL ? st.durable : 0;
    CHECK("reopen continues numbering",
          w != NULL && wal_append(w, "x", 1, &pos, err, sizeof err) == 0 && pos == before + 1);
    wal_close(w);
}

static void test_roll(void)
{
    char dir[128], err[UTIL_ERRLEN];
    new_dir(dir, sizeof dir);
    cut_seen cut = {0};
    wal *w = open_log(dir, 512, &cut);
    if (w == NULL)
        return;
    bool ok = true;
    for (int g = 0; g < 30 && ok; g++)
        ok = append_sync(w, 5) == 0;
    CHECK("150 records in 512-byte segments", ok);
    wal_stats_info st;
    wal_stats(w, &st);
    int files = count_segments(dir);
    CHECK("segments rolled", files > 5 && st.segments == (uint32_t)files);
    CHECK("records read back across segments", reads_exactly(w, 0, 150));
    /* Every segment is named by its first record and kept under the bound. */
    wal_close(w);
    char path[300];
    uint64_t first = 1;
    bool named = true;
    for (int i = 0; i < files && named; i++) {
        seg_file(dir, first, path, sizeof path);
        long sz = file_size(path);
        named = sz > 0 && sz <= 512;
        /* count its records by walking headers */
        int fd = open(path, O_RDONLY);
        unsigned char h[WAL_HEADER_BYTES];
        long off = 0;
        while (named && off < sz && pread(fd, h, sizeof h, off) == (ssize_t)sizeof h) {
            uint64_t seq = 0;
            for (int k = 7; k >= 0; k--)
                seq = seq << 8 | h[12 + k];
            named = seq == first;
            first++;
            off += WAL_HEADER_BYTES + (long)((uint32_t)h[4] | (uint32_t)h[5] << 8);
        }
        close(fd);
    }
    CHECK("each segment named by its first position, within the bound", named && first == 151);
    w = open_log(dir, 512, &cut);
    CHECK("reopen over many segments", w != NULL && reads_exactly(w, 0, 150));
    uint64_t pos = 0;
    CHECK("append after reopen goes on", w != NULL && wal_append(w, "y", 1, &pos, err, sizeof err) == 0 && pos == 151);
    wal_close(w);

    /* A record bigger than the bound goes alone into its own segment. */
    new_dir(dir, sizeof dir);
    w = open_log(dir, 64, &cut);
    unsigned char big[200] = {0};
    uint64_t durable = 0;
    ok = w != NULL && wal_append(w, big, sizeof big, &pos, err, sizeof err) == 0 &&
         wal_append(w, big, sizeof big, &pos, err, sizeof err) == 0 && wal_sync(w, &durable, err, sizeof err) == 0;
    CHECK("records above segment_bytes get a segment each", ok && durable == 2 && count_segments(dir) == 2);
    wal_close(w);
}

/* A fresh data directory (dir) holding a log of 3 records in one segment (path);
 * sets the offset and size of the last record. */
static void three_records(char *dir, size_t dirlen, char *path, size_t pathlen, long *last_off, long *last_len)
{
    new_dir(dir, dirlen);
    seg_file(dir, 1, path, pathlen);
    cut_seen cut = {0};
    wal *w = open_log(dir, 0, &cut);
    if (w == NULL)
        return;
    append_sync(w, 2);
    *last_off = file_size(path);
    append_sync(w, 1);
    *last_len = file_size(path) - *last_off;
    wal_close(w);
}

static void test_torn_tail(void)
{
    char src[128], path[300];
    long last_off = 0, last_len = 0;
    three_records(src, sizeof src, path, sizeof path, &last_off, &last_len);
    unsigned char file[512];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, file, sizeof file) : -1;
    if (fd >= 0)
        close(fd);
    CHECK("three records written", n == last_off + last_len && last_len > WAL_HEADER_BYTES);

    bool all_cut = true, all_kept = true, all_continue = true;
    for (long cutlen = 1; cutlen < last_len; cutlen++) {
        char dir[128], err[UTIL_ERRLEN];
        new_dir(dir, sizeof dir);
        char wdir[160];
        snprintf(wdir, sizeof wdir, "%s/wal", dir);
        mkdir(wdir, 0700);
        seg_file(dir, 1, path, sizeof path);
        fd = open(path, O_WRONLY | O_CREAT, 0600);
        if (fd < 0 || write(fd, file, (size_t)(last_off + cutlen)) != last_off + cutlen)
            printf("writing %s failed\n", path);
        close(fd);
        cut_seen cut = {0};
        wal *w = open_log(dir, 0, &cut);
        if (w == NULL || cut.calls != 1 || cut.offset != (uint64_t)last_off ||
            cut.bytes != (uint64_t)cutlen || cut.last_pos != 2 || strcmp(cut.file, path) != 0 ||
            file_size(path) != last_off) {
            printf("torn tail of %ld bytes: calls %d offset %llu bytes %llu\n", cutlen, cut.calls,
                   (unsigned long long)cut.offset, (unsigned long long)cut.bytes);
            all_cut = false;
        }
        if (w == NULL || !reads_exactly(w, 0, 2))
            all_kept = false;
        uint64_t pos = 0;
        if (w == NULL || append_sync(w, 1) < 0 || !reads_exactly(w, 0, 3) ||
            wal_append(w, "z", 1, &pos, err, sizeof err) < 0 || pos != 4)
            all_continue = false;
        wal_close(w);
    }
    CHECK("a torn last record is cut at every byte offset, and reported", all_cut);
    CHECK("the records before a torn tail are intact", all_kept);
    CHECK("after the cut the log goes on from the last kept record", all_continue);
}

static void test_corrupt_tail(void)
{
    struct {
        const char *name;
        long at; /* offset inside the last record; < 0: from its end */
        unsigned char mask;
        const char *reason;
    } flips[] = {
        {"bit flip in the tail record's payload is cut", -1, 0x04, "bad CRC"},
        {"bit flip making the tail record longer is cut", 4, 0x40, "truncated record"},
        {"bit flip making the tail record shorter is cut", 4, 0x01, "bad CRC"},
        {"bit flip in the tail record's CRC is cut", 9, 0x80, "bad CRC"},
        {"bit flip in the tail record's magic is cut", 0, 0x01, "bad magic byte"},
        {"bit flip in the tail record's position is cut", 12, 0x02, "bad CRC"},
    };
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        char dir[128], path[300];
        long last_off = 0, last_len = 0;
        three_records(dir, sizeof dir, path, sizeof path, &last_off, &last_len);
        long at = flips[i].at < 0 ? last_off + last_len + flips[i].at : last_off + flips[i].at;
        flip_byte(path, at, flips[i].mask);
        cut_seen cut = {0};
        wal *w = open_log(dir, 0, &cut);
        CHECK(flips[i].name, w != NULL && cut.calls == 1 && cut.offset == (uint64_t)last_off &&
                                 strcmp(cut.reason, flips[i].reason) == 0 && reads_exactly(w, 0, 2));
        if (cut.calls == 1 && strcmp(cut.reason, flips[i].reason) != 0)
            printf("  reason was: %s\n", cut.reason);
        wal_close(w);
    }

    /* A whole record written again after itself (valid CRC, wrong position): cut. */
    {
        char dir[128], path[300];
        long last_off = 0, last_len = 0;
        three_records(dir, sizeof dir, path, sizeof path, &last_off, &last_len);
        unsigned char again[128];
        int fd = open(path, O_RDWR);
        bool copied = fd >= 0 && last_len <= (long)sizeof again &&
                      pread(fd, again, (size_t)last_len, last_off) == last_len &&
                      pwrite(fd, again, (size_t)last_len, last_off + last_len) == last_len;
        if (fd >= 0)
            close(fd);
        cut_seen cut = {0};
        wal *w = open_log(dir, 0, &cut);
        CHECK("a repeated record (out of sequence) is cut", copied && w != NULL && cut.calls == 1 &&
                                                              strcmp(cut.reason, "out-of-sequence position") == 0 &&
                                                              reads_exactly(w, 0, 3));
        wal_close(w);
    }

    /* A file whose size grew past the data (zeros after a crash) is a torn tail too. */
    char dir[128], path[300];
    long last_off = 0, last_len = 0;
    three_records(dir, sizeof dir, path, sizeof path, &last_off, &last_len);
    CHECK("zero-filled tail: extend", truncate(path, last_off + last_len + 4096) == 0);
    cut_seen cut = {0};
    wal *w = open_log(dir, 0, &cut);
    CHECK("zero-filled tail is cut, every record kept",
          w != NULL && cut.calls == 1 && cut.bytes == 4096 && reads_exactly(w, 0, 3));
    wal_close(w);
}

static void test_corrupt_middle(void)
{
    /* In an older segment: refused, nothing cut. */
    char dir[128], path[300], err[UTIL_ERRLEN];
    new_dir(dir, sizeof dir);
    cut_seen cut = {0};
    wal *w = open_log(dir, 256, &cut);
    for (int g = 0; g < 10 && w != NULL; g++)
        append_sync(w, 2);
    wal_close(w);
    CHECK("several segments for the middle test", count_segments(dir) >= 3);
    seg_file(dir, 1, path, sizeof path);
    long size_before = file_size(path);
    /* The second record of the first segment, right after the first. */
    unsigned char pl[64];
    long second = WAL_HEADER_BYTES + (long)payload(1, pl);
    flip_byte(path, second + WAL_HEADER_BYTES + 2, 0x10);
    w = NULL;
    wal_options o = {.segment_bytes = 256, .on_cut = on_cut, .ctx = &cut};
    int rc = wal_open(&w, dir, &o, err, sizeof err);
    char want[400];
    snprintf(want, sizeof want, "%s: corrupt record at offset %ld (bad CRC)", path, second);
    CHECK("corrupt record in an older segment is refused", rc == WAL_ECORRUPT && w == NULL);
    CHECK("the refusal names file and offset", strstr(err, want) != NULL);
    if (strstr(err, want) == NULL)
        printf("  got: %s\n  want: %s\n", err, want);
    CHECK("nothing cut on refusal", cut.calls == 0 && file_size(path) == size_before);

    /* The LAST record of an older segment: nothing valid follows it in its file,
     * yet it was acknowledged (a later segment exists): refused, not cut. */
    flip_byte(path, second + WAL_HEADER_BYTES + 2, 0x10); /* repair */
    char next_path[300];
    uint64_t next_first = 2;
    for (; next_first < 20; next_first++) {
        seg_file(dir, next_first, next_path, sizeof next_path);
        if (file_size(next_path) >= 0)
            break;
    }
    long last_off = 0;
    for (uint64_t p = 1; p + 1 < next_first; p++)
        last_off += WAL_HEADER_BYTES + (long)payload(p, pl);
    flip_byte(path, last_off + WAL_HEADER_BYTES, 0x01);
    rc = wal_open(&w, dir, &o, err, sizeof err);
    snprintf(want, sizeof want, "%s: corrupt record at offset %ld (bad CRC) in a segment that is not the last",
             path, last_off);
    CHECK("corrupt last record of an older segment is refused", rc == WAL_ECORRUPT && strstr(err, want) != NULL);
    if (strstr(err, want) == NULL)
        printf("  got: %s\n  want: %s\n", err, want);
    CHECK("...and not cut", cut.calls == 0 && file_size(path) == size_before);

    /* In the last segment, with a valid record after it: refused too. */
    long last_len = 0;
    three_records(dir, sizeof dir, path, sizeof path, &last_off, &last_len);
    flip_byte(path, WAL_HEADER_BYTES + 3, 0x01); /* payload of record 1 */
    rc = wal_open(&w, dir, &o, err, sizeof err);
    CHECK("corrupt record followed by valid ones in the last segment is refused",
          rc == WAL_ECORRUPT && strstr(err, "corrupt record at offset 0 (bad CRC), followed by a valid record") != NULL);
    CHECK("nothing cut from the last segment", file_size(path) == last_off + last_len);

    /* A missing segment in the middle. */
    new_dir(dir, sizeof dir);
    w = open_log(dir, 256, &cut);
    for (int g = 0; g < 10 && w != NULL; g++)
        append_sync(w, 2);
    wal_close(w);
    DIR *d;
    char wdir[160], victim[300] = "";
    snprintf(wdir, sizeof wdir, "%s/wal", dir);
    d = opendir(wdir);
    struct dirent *de;
    uint64_t firsts[64];
    int nf = 0;
    while (d != NULL && (de = readdir(d)) != NULL && nf < 64)
        if (strlen(de->d_name) == 20)
            firsts[nf++] = strtoull(de->d_name, NULL, 16);
    if (d != NULL)
        closedir(d);
    uint64_t mid = 0;
    for (int i = 0; i < nf; i++)
        if (firsts[i] != 1 && (mid == 0 || firsts[i] < mid))
            mid = firsts[i]; /* the second segment */
    seg_file(dir, mid, victim, sizeof victim);
    CHECK("a middle segment removed", nf >= 3 && unlink(victim) == 0);
    rc = wal_open(&w, dir, &o, err, sizeof err);
    CHECK("a gap between segments is refused", rc == WAL_ECORRUPT && strstr(err, "a segment is missing") != NULL);
}

/* A reader that releases each record as it goes. */
typedef struct {
    reading r;
    wal *w;
    int failures;
} releasing;

static int release_each(uint64_t pos, const void *rec, size_t len, void *ctx)
{
    releasing *x = ctx;
    check_record(pos, rec, len, &x->r);
    x->failures += wal_release(x->w, pos, NULL, 0) < 0;
    return 0;
}

static void test_release(void)
{
    char dir[128], err[UTIL_ERRLEN], path[300];
    new_dir(dir, sizeof dir);
    cut_seen cut = {0};
    wal *w = open_log(dir, 256, &cut);
    if (w == NULL)
        return;
    for (int g = 0; g < 10; g++)
        append_sync(w, 2);
    int files = count_segments(dir);
    wal_stats_info st;
    wal_stats(w, &st);
    CHECK("release test has several segments", files >= 3 && st.backlog_records == 20);
    /* Find the second segment's first position: releasing one below it keeps the first. */
    uint64_t second = 0;
    for (uint64_t p = 2; p <= 20 && second == 0; p++) {
        seg_file(dir, p, path, sizeof path);
        if (file_size(path) >= 0)
            second = p;
    }
    CHECK("release below a segment's end keeps it", wal_release(w, second - 2, err, sizeof err) == 0 &&
                                                        count_segments(dir) == files);
    seg_file(dir, 1, path, sizeof path);
    CHECK("release up to a segment's end deletes it",
          wal_release(w, second - 1, err, sizeof err) == 0 && count_segments(dir) == files - 1 &&
              file_size(path) < 0);
    wal_stats(w, &st);
    CHECK("stats after release", st.released == second - 1 && st.first == second &&
                                     st.backlog_records == 20 - (second - 1) && st.segments == (uint32_t)files - 1);
    CHECK("records after the release are still read", reads_exactly(w, second - 1, 20));
    reading r = {0};
    CHECK("reading released records is refused",
          wal_read_from(w, 0, check_record, &r, NULL, err, sizeof err) == WAL_EINVAL && r.count == 0);
    CHECK("release beyond the durable position is refused", wal_release(w, 21, err, sizeof err) == WAL_EINVAL);
    uint64_t bytes_before = st.backlog_bytes;
    CHECK("release of everything keeps the active segment",
          wal_release(w, 20, err, sizeof err) == 0 && count_segments(dir) == 1);
    wal_stats(w, &st);
    CHECK("backlog empty after releasing everything",
          st.backlog_records == 0 && st.backlog_bytes == 0 && bytes_before > 0 && st.oldest_age_ms == 0);
    uint64_t pos = 0;
    CHECK("append after a full release", wal_append(w, "a", 1, &pos, err, sizeof err) == 0 && pos == 21);
    wal_close(w);
    w = open_log(dir, 256, &cut);
    if (w != NULL)
        wal_stats(w, &st);
    CHECK("reopen after release: numbering kept", w != NULL && st.durable >= 20 && st.first > 1);
    wal_close(w);

    /* Releasing from inside the read callback deletes files being read. */
    new_dir(dir, sizeof dir);
    w = open_log(dir, 256, &cut);
    for (int g = 0; g < 10 && w != NULL; g++)
        append_sync(w, 2);
    releasing x = {{1, 0, false}, w, 0};
    int rrc = w != NULL ? wal_read_from(w, 0, release_each, &x, NULL, err, sizeof err) : -1;
    CHECK("a callback may release what it has read", rrc == 0 && !x.r.bad && x.r.count == 20 &&
                                                         x.failures == 0 && count_segments(dir) == 1);
    wal_close(w);

    /* Files that are not segments are left alone. */
    const char *strangers[] = {"notes.txt", "0000000000000001.wal.tmp", "000000000000000A.wal",
                               "0000000000000000.wal", "00000000000001.wal"};
    for (size_t i = 0; i < sizeof strangers / sizeof strangers[0]; i++) {
        snprintf(path, sizeof path, "%s/wal/%s", dir, strangers[i]);
        int fd = open(path, O_WRONLY | O_CREAT, 0600);
        if (fd < 0 || write(fd, "junk", 4) != 4)
            printf("cannot write %s\n", path);
        close(fd);
    }
    w = open_log(dir, 256, &cut);
    if (w != NULL)
        wal_stats(w, &st);
    snprintf(path, sizeof path, "%s/wal/notes.txt", dir);
    CHECK("other file names in the folder are ignored", w != NULL && st.segments == 1 && file_size(path) == 4);
    wal_close(w);

    /* A fresh log can start at a given position (the store's applied one + 1). */
    new_dir(dir, sizeof dir);
    wal_options o = {.first_seq = 1000};
    w = NULL;
    CHECK("first_seq for a new log", wal_open(&w, dir, &o, err, sizeof err) == 0 &&
                                         wal_append(w, "b", 1, &pos, err, sizeof err) == 0 && pos == 1000);
    seg_file(dir, 1000, path, sizeof path);
    CHECK("its segment is named by it", file_size(path) == 0);
    wal_close(w);
}

/* ---- concurrent reader ---- */

#define CONC_RECORDS 3000

typedef struct {
    wal *w;
    reading r; /* the reader thread's own */
    int releases;
} conc;

static void *reader_main(void *arg)
{
    conc *c = arg;
    char err[UTIL_ERRLEN];
    uint64_t applied = 0;
    while (applied < CONC_RECORDS && !c->r.bad) {
        uint64_t last = 0;
        if (wal_read_from(c->w, applied, check_record, &c->r, &last, err, sizeof err) < 0) {
            printf("reader: %s\n", err);
            c->r.bad = true;
            break;
        }
        if (last > applied) {
            applied = last;
            if (wal_release(c->w, applied, err, sizeof err) < 0) {
                printf("reader release: %s\n", err);
                c->r.bad = true;
            }
            c->releases++;
        } else {
            usleep(100);
        }
    }
    return NULL;
}

static void test_concurrent(void)
{
    char dir[128], err[UTIL_ERRLEN];
    new_dir(dir, sizeof dir);
    cut_seen cut = {0};
    conc c = {.r = {.next = 1}};
    c.w = open_log(dir, 4096, &cut);
    if (c.w == NULL)
        return;
    pthread_t t;
    pthread_create(&t, NULL, reader_main, &c);
    bool ok = true;
    uint64_t n = 0;
    for (int g = 0; n < CONC_RECORDS && ok; g++) {
        uint64_t k = (uint64_t)(g % 13 + 1);
        if (n + k > CONC_RECORDS)
            k = CONC_RECORDS - n;
        ok = append_n(c.w, k) == 0 && wal_sync(c.w, NULL, err, sizeof err) == 0;
        n += k;
    }
    pthread_join(t, NULL);
    wal_stats_info st;
    wal_stats(c.w, &st);
    CHECK("appender: every group durable", ok && st.durable == CONC_RECORDS);
    CHECK("concurrent reader sees every record once, in order", !c.r.bad && c.r.next == CONC_RECORDS + 1 && c.r.count == CONC_RECORDS);
    CHECK("concurrent releases left only the tail", c.releases > 0 && st.segments <= 2 && st.backlog_records == 0);
    wal_close(c.w);
}

static void test_bounds(void)
{
    char dir[128], err[UTIL_ERRLEN];
    new_dir(dir, sizeof dir);
    wal_options o = {.max_record = 100};
    wal *w = NULL;
    CHECK("open with max_record 100", wal_open(&w, dir, &o, err, sizeof err) == 0);
    if (w == NULL)
        return;
    unsigned char buf[101] = {0};
    uint64_t pos = 0;
    CHECK("record over max_record refused", wal_append(w, buf, 101, &pos, err, sizeof err) == WAL_ETOOBIG &&
                                                strstr(err, "above max_record (100)") != NULL);
    CHECK("record at max_record accepted, no position lost",
          wal_append(w, buf, 100, &pos, err, sizeof err) == 0 && pos == 1);
    CHECK("refusal does not poison", wal_sync(w, NULL, err, sizeof err) == 0);
    /* A second opener of the same log is turned away. */
    wal *w2 = NULL;
    CHECK("second open of the same log is refused", wal_open(&w2, dir, &o, err, sizeof err) == WAL_EBUSY &&
                                                        w2 == NULL && strstr(err, "in use") != NULL);
    wal_close(w);

    /* On disk, a length above max_record is corruption, not an allocation. */
    o.max_record = 50;
    CHECK("a stored length above max_record reads as a bad tail",
          wal_open(&w, dir, &o, err, sizeof err) == 0 && w != NULL);
    wal_stats_info st;
    if (w != NULL)
        wal_stats(w, &st);
    CHECK("...and is cut (max_record must not shrink between runs)", w != NULL && st.durable == 0 && st.cut_bytes == 120);
    wal_close(w);
    o.max_record = WAL_MAX_MAX_RECORD + 1;
    CHECK("max_record above the limit refused", wal_open(&w, dir, &o, err, sizeof err) == WAL_EINVAL);
    new_dir(dir, sizeof dir);
    char missing[200];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    CHECK("missing data directory refused", wal_open(&w, missing, NULL, err, sizeof err) < 0 &&
                                                strstr(err, "does not exist") != NULL);
}

static void test_disk_full(void)
{
    char dir[128], err[UTIL_ERRLEN], path[300];
    new_dir(dir, sizeof dir);
    cut_seen cut = {0};
    wal *w = open_log(dir, 0, &cut);
    if (w == NULL)
        return;
    append_sync(w, 5);
    seg_file(dir, 1, path, sizeof path);
    long size = file_size(path);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    /* Room for record 6 whole and part of record 7: the write of the group fails
     * half-way through 7, leaving 6 complete but never acknowledged. */
    unsigned char pl[64];
    lim.rlim_cur = (rlim_t)size + WAL_HEADER_BYTES + payload(6, pl) + 30;
    signal(SIGXFSZ, SIG_IGN);
    CHECK("RLIMIT_FSIZE set", setrlimit(RLIMIT_FSIZE, &lim) == 0);
    uint64_t durable = 0;
    append_n(w, 2);
    int rc = wal_sync(w, &durable, err, sizeof err);
    CHECK("sync on a full disk fails with WAL_ENOSPC", rc == WAL_ENOSPC && strstr(err, "File too large") != NULL);
    CHECK("nothing more claimed durable", durable == 5);
    uint64_t pos = 0;
    CHECK("the log refuses appends once poisoned",
          wal_append(w, "q", 1, &pos, err, sizeof err) == WAL_EPOISONED && strstr(err, "reopen") != NULL);
    CHECK("the log refuses syncs once poisoned", wal_sync(w, &durable, err, sizeof err) == WAL_EPOISONED && durable == 5);
    wal_stats_info st;
    wal_stats(w, &st);
    CHECK("stats say poisoned", st.poisoned && st.durable == 5);
    CHECK("the reader still reads what is durable", reads_exactly(w, 0, 5));
    CHECK("the unsynced bytes are taken back at once", file_size(path) == size);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    wal_close(w);
    w = open_log(dir, 0, &cut);
    CHECK("reopen finds nothing to cut", w != NULL && cut.calls == 0);
    CHECK("every acknowledged record survived, and the unacknowledged complete one did not",
          w != NULL && reads_exactly(w, 0, 5));
    CHECK("and the log takes appends again", w != NULL && append_sync(w, 1) == 0 && reads_exactly(w, 0, 6));
    wal_close(w);
}

int main(void)
{
    snprintf(tmproot, sizeof tmproot, "/tmp/veille-test-wal-XXXXXX");
    if (mkdtemp(tmproot) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_crc();
    test_round_trip();
    test_groups_and_reopen();
    test_roll();
    test_torn_tail();
    test_corrupt_tail();
    test_corrupt_middle();
    test_release();
    test_concurrent();
    test_bounds();
    test_disk_full();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmproot);
    if (system(cmd) != 0)
        printf("could not remove %s\n", tmproot);
    return check_summary();
}
