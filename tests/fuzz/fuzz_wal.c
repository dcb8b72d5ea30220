/*
 * fuzz_wal.c: libFuzzer target for the write-ahead log's segment reader and
 * recovery. Each input becomes one or two segment files in a scratch DIR/wal/
 * (on /dev/shm when there is one: wal_open fsyncs), then:
 *   wal_open must refuse (a corrupt record followed by valid ones, a gap) or
 *   succeed; when it succeeds, every durable record must read back, a reopen
 *   must find nothing more to cut (recovery is idempotent), and an append +
 *   sync must read back as the next position.
 * Input layout: byte 0 flags (bit 0: two segments; bits 1-2: max_record 64,
 * 256, 4096 or the default), byte 1 where to split, byte 2 the second
 * segment's first position - 2, then the segment bytes.
 *
 * Run: tests/fuzz/run.sh wal (seeds in tests/fuzz/corpus/wal).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"
#include "wal/wal.h"

static char data_dir[128], wal_dir[160];

static void scratch_clear(void);

/* libFuzzer exits through exit(): leave no scratch folder behind. */
static void scratch_remove(void)
{
    scratch_clear();
    rmdir(wal_dir);
    rmdir(data_dir);
}

static void scratch_init(void)
{
    if (data_dir[0] != '\0')
        return;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(data_dir, sizeof data_dir, "%s/veille-fuzz-wal-%d", base, (int)getpid());
    snprintf(wal_dir, sizeof wal_dir, "%s/wal", data_dir);
    mkdir(data_dir, 0700);
    mkdir(wal_dir, 0700);
    atexit(scratch_remove);
}

static void scratch_clear(void)
{
    DIR *d = opendir(wal_dir);
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", wal_dir, de->d_name);
        unlink(path);
    }
    if (d != NULL)
        closedir(d);
}

static void put_segment(uint64_t first, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%016llx.wal", wal_dir, (unsigned long long)first);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (n > 0 && write(fd, p, n) != (ssize_t)n))
        abort();
    close(fd);
}

typedef struct {
    uint64_t next, count;
} seen;

static int on_record(uint64_t pos, const void *rec, size_t len, void *ctx)
{
    seen *s = ctx;
    if (s->count > 0 && pos != s->next)
        __builtin_trap(); /* out of order */
    if (len > 0 && rec == NULL)
        __builtin_trap();
    s->next = pos + 1;
    s->count++;
    return 0;
}

static int cuts;
static void on_cut(const wal_cut *c, void *ctx)
{
    (void)c;
    (void)ctx;
    cuts++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    scratch_init();
    scratch_clear();
    static const uint32_t max_records[] = {64, 256, 4096, 0};
    wal_options o = {.segment_bytes = 512, .max_record = max_records[(data[0] >> 1) & 3], .on_cut = on_cut};
    const uint8_t *seg = data + 3;
    size_t n = size - 3;
    if (data[0] & 1) {
        size_t split = n * data[1] / 256;
        put_segment(1, seg, split);
        put_segment((uint64_t)data[2] + 2, seg + split, n - split);
    } else {
        put_segment(1, seg, n);
    }

    char err[UTIL_ERRLEN];
    wal *w = NULL;
    if (wal_open(&w, data_dir, &o, err, sizeof err) < 0) {
        if (w != NULL || err[0] == '\0')
            __builtin_trap(); /* a refusal always says why */
        return 0;
    }
    wal_stats_info st;
    wal_stats(w, &st);
    seen s = {0, 0};
    uint64_t last = 0;
    if (wal_read_from(w, st.first - 1, on_record, &s, &last, err, sizeof err) != 0 ||
        last != st.durable || s.count != st.durable - (st.first - 1))
        __builtin_trap(); /* what open accepted must read back whole */
    wal_close(w);

    cuts = 0;
    if (wal_open(&w, data_dir, &o, err, sizeof err) != 0 || cuts != 0)
        __builtin_trap(); /* recovery left a clean log */
    uint64_t pos = 0, durable = 0;
    if (wal_append(w, "fuzz", 4, &pos, err, sizeof err) != 0 || pos != st.durable + 1 ||
        wal_sync(w, &durable, err, sizeof err) != 0 || durable != pos)
        __builtin_trap();
    s = (seen){0, 0};
    if (wal_read_from(w, pos - 1, on_record, &s, &last, err, sizeof err) != 0 || s.count != 1 || last != pos)
        __builtin_trap();
    wal_close(w);
    return 0;
}
