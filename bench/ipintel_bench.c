/*
 * ipintel_bench.c: what a location-database lookup costs per event, the part the
 * rules engine adds for the ip fields (engine_eval_event looks the event's IP up
 * once). Three situations:
 *   miss  - every address new (random public IPv4): libloc's own lookup, AS name included
 *   hit   - a working set that fits the cache (repeat sign-ins from the same IPs)
 *   skewed - 20,000 addresses (five times the cache) drawn with a power law, a few
 *           of them most of the time: what a busy instance sees (offices, carriers,
 *           users' home IPs), short of replaying real traffic
 * Prints figures; asserts nothing.
 *
 *   veille-ipintel-bench [--ip-db FILE] [--n N]
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipintel/ipintel.h"
#include "util/util.h"

static uint64_t rng = 88172645463325252ULL;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

/* A random address outside 0/8, 10/8, 127/8 and the multicast/reserved top. */
static void random_ip(char *buf, size_t len)
{
    uint32_t a;
    do
        a = next_rand();
    while ((a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 24) >= 224);
    snprintf(buf, len, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

/* Index i of lookup number k: every address in turn, or a power-law draw. */
static size_t pick(size_t k, size_t n_ips, bool skewed)
{
    if (!skewed)
        return k % n_ips;
    double u = (double)next_rand() / 4294967296.0;
    return (size_t)((double)n_ips * u * u * u * u);
}

static void bench(ipintel *db, const char *label, char (*ips)[UTIL_IP_LEN], size_t n_ips, size_t n, bool skewed)
{
    uint64_t h0, m0, h1, m1;
    ipintel_cache_stats(db, &h0, &m0);
    volatile uint32_t sink = 0;
    ipintel_info in;
    int64_t t0 = util_mono_ns();
    for (size_t i = 0; i < n; i++) {
        ipintel_lookup(db, ips[pick(i, n_ips, skewed)], &in);
        sink += in.asn;
    }
    int64_t ns = util_mono_ns() - t0;
    ipintel_cache_stats(db, &h1, &m1);
    printf("%-7s lookups=%zu distinct_ips=%zu mean_us=%.3f cache_hits=%llu cache_misses=%llu\n", label, n, n_ips,
           (double)ns / (double)n / 1000.0, (unsigned long long)(h1 - h0), (unsigned long long)(m1 - m0));
    (void)sink;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long n = 200000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ip-db") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
            n = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: veille-ipintel-bench [--ip-db FILE] [--n N]\n");
            return 2;
        }
    }
    if (n < 1) {
        fprintf(stderr, "veille-ipintel-bench: --n must be positive\n");
        return 2;
    }
    ipintel *db = NULL;
    char err[UTIL_ERRLEN];
    if (ipintel_open(path, &db, err, sizeof err) < 0) {
        fprintf(stderr, "veille-ipintel-bench: %s\n", err);
        return 1;
    }
    size_t n_miss = (size_t)n < 40000 ? 40000 : (size_t)n, n_hit = IPINTEL_CACHE_SLOTS / 4, n_skewed = 20000;
    char(*ips)[UTIL_IP_LEN] = calloc(n_miss, sizeof *ips);
    if (ips == NULL) {
        fprintf(stderr, "veille-ipintel-bench: out of memory\n");
        ipintel_close(db);
        return 1;
    }
    for (size_t i = 0; i < n_miss; i++)
        random_ip(ips[i], sizeof ips[i]);
    printf("ip_db=%s cache_slots=%d\n", path != NULL ? path : IPINTEL_DEFAULT_DB, IPINTEL_CACHE_SLOTS);
    bench(db, "miss", ips, n_miss, n_miss, false);
    bench(db, "hit", ips, n_hit, (size_t)n, false);
    bench(db, "skewed", ips + n_hit, n_skewed, (size_t)n, true);
    free(ips);
    ipintel_close(db);
    return 0;
}
