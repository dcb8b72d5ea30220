/*
 * wal_bench.c: what the write-ahead log costs per delivery, apart from HTTP and
 * LMDB. Appends N records of SIZE bytes (default 20,000 of 1 KiB, about a
 * verified delivery) in group commits of GROUP (default 32: wal_append each,
 * then one wal_sync = write + fdatasync), and prints records/s, microseconds
 * per group commit (mean, p50, p99) and log bytes per event. Uses a fresh
 * folder under --dir (default /tmp), removed afterwards. Asserts nothing.
 *
 *   veille-wal-bench [--records N] [--size BYTES] [--group N] [--dir DIR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"
#include "wal/wal.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int usage(void)
{
    fprintf(stderr, "usage: veille-wal-bench [--records N] [--size BYTES] [--group N] [--dir DIR]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int64_t records = 20000, size = 1024, group = 32;
    const char *base = "/tmp";
    char err[UTIL_ERRLEN];
    for (int i = 1; i < argc; i++) {
        int64_t *num = strcmp(argv[i], "--records") == 0 ? &records
                       : strcmp(argv[i], "--size") == 0  ? &size
                       : strcmp(argv[i], "--group") == 0 ? &group
                                                         : NULL;
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--dir") == 0) {
            base = argv[++i];
        } else if (num == NULL) {
            return usage();
        } else if (util_parse_i64(argv[++i], num, err, sizeof err) < 0 || *num <= 0) {
            fprintf(stderr, "veille-wal-bench: %s: %s\n", argv[i - 1], *num <= 0 ? "must be > 0" : err);
            return 2;
        }
    }
    if (size > WAL_DEFAULT_MAX_RECORD) {
        fprintf(stderr, "veille-wal-bench: --size above %u\n", WAL_DEFAULT_MAX_RECORD);
        return 2;
    }
    char dir[512];
    snprintf(dir, sizeof dir, "%s/veille-wal-bench-XXXXXX", base);
    if (mkdtemp(dir) == NULL) {
        perror("veille-wal-bench: mkdtemp");
        return 3;
    }
    wal *w = NULL;
    if (wal_open(&w, dir, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "veille-wal-bench: %s\n", err);
        return 3;
    }
    unsigned char *rec = malloc((size_t)size);
    size_t ngroups = (size_t)((records + group - 1) / group);
    int64_t *sync_ns = malloc(ngroups * sizeof *sync_ns);
    if (rec == NULL || sync_ns == NULL) {
        fprintf(stderr, "veille-wal-bench: out of memory\n");
        return 3;
    }
    for (int64_t i = 0; i < size; i++)
        rec[i] = (unsigned char)('a' + i % 26);

    int rc = 0;
    size_t g = 0;
    int64_t t0 = util_mono_ns();
    for (int64_t done = 0; done < records && rc == 0; g++) {
        int64_t gs = util_mono_ns();
        for (int64_t k = 0; k < group && done < records && rc == 0; k++, done++)
            rc = wal_append(w, rec, (size_t)size, NULL, err, sizeof err);
        if (rc == 0)
            rc = wal_sync(w, NULL, err, sizeof err);
        sync_ns[g] = util_mono_ns() - gs;
    }
    int64_t total_ns = util_mono_ns() - t0;
    wal_stats_info st;
    wal_stats(w, &st);
    wal_close(w);
    if (rc < 0) {
        fprintf(stderr, "veille-wal-bench: %s\n", err);
        return 3;
    }
    qsort(sync_ns, g, sizeof *sync_ns, cmp_i64);
    double mean = 0;
    for (size_t i = 0; i < g; i++)
        mean += (double)sync_ns[i];
    mean /= (double)g;
    printf("records          %lld of %lld bytes, groups of %lld (%zu group commits)\n", (long long)records,
           (long long)size, (long long)group, g);
    printf("records/s        %.0f\n", (double)records * 1e9 / (double)total_ns);
    printf("group commit us  mean %.1f  p50 %.1f  p99 %.1f\n", mean / 1e3, (double)sync_ns[g / 2] / 1e3,
           (double)sync_ns[g * 99 / 100] / 1e3);
    printf("bytes per event  %.1f (payload %lld + %d header)\n", (double)st.bytes / (double)records,
           (long long)size, WAL_HEADER_BYTES);
    printf("segments         %u\n", st.segments);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "veille-wal-bench: could not remove %s\n", dir);
    free(rec);
    free(sync_ns);
    return 0;
}
