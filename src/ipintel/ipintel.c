/*
 * ipintel.c: libloc lookups behind a per-address cache.
 *
 * Traps: libloc's objects are refcounted and every lookup hands out a new
 * network (and loc_database_get_as a new AS) that must be unref'd; a lookup
 * that matches no network returns non-zero with no network, which is "not in
 * the database", not an error. loc_database_new maps the FILE it is given, so
 * the FILE stays open for the handle's life.
 */
#include "ipintel/ipintel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libloc/as.h>
#include <libloc/database.h>
#include <libloc/libloc.h>
#include <libloc/network.h>

#include "util/util.h"

/* The address cache is set-associative (CACHE_WAYS slots per set,
 * the least recently used one replaced): a direct-mapped table of the same size
 * lost a fifth of a working set a quarter its size to collisions; 4 ways still
 * thrashed the odd overfull set. */
#define CACHE_WAYS 8
#define CACHE_SETS (IPINTEL_CACHE_SLOTS / CACHE_WAYS)
#define AS_CACHE_SLOTS 1024 /* AS names by number: many addresses share a few ASes */

/* Answers are kept per address, never per network or block: a network found
 * for one address may hold more specific ones (192.241.160.0/19 of AS14061
 * holds 192.241.169.122/32, flagged anonymous proxy), which libloc only
 * reports for the addresses inside them. */
typedef struct {
    uint32_t used_at;      /* 0: empty; else the lookup count when last used */
    unsigned char key[16]; /* v4 as v4-mapped */
    ipintel_info info;
} cache_slot;

typedef struct {
    uint32_t asn; /* 0: empty */
    char name[IPINTEL_AS_NAME_MAX];
} as_slot;

struct ipintel {
    struct loc_ctx *ctx;
    struct loc_database *db;
    FILE *f;
    uint64_t hits, misses;
    uint32_t clock; /* lookups so far, for LRU; wraps harmlessly (a stale order for a while) */
    cache_slot cache[CACHE_SETS][CACHE_WAYS];
    as_slot as_names[AS_CACHE_SLOTS];
};

/* libloc prints its own errors to stderr ("loc_database_check_magic: ..."):
 * veille says what went wrong in its own words, once. */
static void quiet_log(struct loc_ctx *ctx, int priority, const char *file, int line, const char *fn,
                      const char *format, va_list args)
{
    (void)ctx, (void)priority, (void)file, (void)line, (void)fn, (void)format, (void)args;
}

int ipintel_open(const char *path, ipintel **out, char *err, size_t errlen)
{
    *out = NULL;
    if (path == NULL)
        path = IPINTEL_DEFAULT_DB;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return util_err(err, errlen, "%s: cannot open the location database: %s (install libloc-database, or "
                        "give --ip-db FILE)", path, strerror(errno));
    ipintel *db = calloc(1, sizeof *db);
    if (db == NULL) {
        fclose(f);
        return util_err(err, errlen, "ip database: out of memory");
    }
    db->f = f;
    if (loc_new(&db->ctx) != 0) {
        ipintel_close(db);
        return util_err(err, errlen, "ip database: libloc cannot start (out of memory)");
    }
    loc_set_log_fn(db->ctx, quiet_log);
    if (loc_database_new(db->ctx, &db->db, f) != 0 || db->db == NULL) {
        ipintel_close(db);
        return util_err(err, errlen, "%s: not a location database (libloc cannot read it; refresh it with "
                        "`location update`)", path);
    }
    *out = db;
    return 0;
}

void ipintel_close(ipintel *db)
{
    if (db == NULL)
        return;
    if (db->db != NULL)
        loc_database_unref(db->db);
    if (db->ctx != NULL)
        loc_unref(db->ctx);
    if (db->f != NULL)
        fclose(db->f);
    free(db);
}

int64_t ipintel_created_at(const ipintel *db)
{
    return db != NULL ? (int64_t)loc_database_created_at(db->db) : 0;
}

const char *ipintel_vendor(const ipintel *db)
{
    const char *v = db != NULL ? loc_database_get_vendor(db->db) : NULL;
    return v != NULL ? v : "";
}

void ipintel_cache_stats(const ipintel *db, uint64_t *hits, uint64_t *misses)
{
    *hits = db != NULL ? db->hits : 0;
    *misses = db != NULL ? db->misses : 0;
}

static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Text -> 16 bytes, IPv4 (and ::ffff:a.b.c.d) as v4-mapped. */
static bool parse_addr(const char *ip, unsigned char addr[16])
{
    if (ip == NULL || ip[0] == '\0')
        return false;
    if (inet_pton(AF_INET, ip, addr + 12) == 1) {
        memcpy(addr, v4mapped, sizeof v4mapped);
        return true;
    }
    return inet_pton(AF_INET6, ip, addr) == 1;
}

static bool addr_in(const unsigned char *a, const unsigned char *net, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, full) != 0)
        return false;
    return rest == 0 || ((a[full] ^ net[full]) & (unsigned char)(0xffu << (8 - rest))) == 0;
}

static bool addr_private(const unsigned char addr[16])
{
    static const struct {
        unsigned char net[4];
        unsigned prefix;
    } v4[] = {
        {{10, 0, 0, 0}, 8},    {{172, 16, 0, 0}, 12}, {{192, 168, 0, 0}, 16}, /* RFC 1918 */
        {{127, 0, 0, 0}, 8},                                                /* loopback */
        {{169, 254, 0, 0}, 16},                                             /* link-local */
        {{100, 64, 0, 0}, 10},                                              /* CGNAT, RFC 6598 */
    };
    static const struct {
        unsigned char net[16];
        unsigned prefix;
    } v6[] = {
        {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128}, /* ::1 */
        {{0xfe, 0x80}, 10},                                      /* link-local */
        {{0xfc}, 7},                                             /* unique local, IPv6's RFC 1918 */
    };
    if (memcmp(addr, v4mapped, sizeof v4mapped) == 0) {
        for (size_t i = 0; i < sizeof v4 / sizeof v4[0]; i++)
            if (addr_in(addr + 12, v4[i].net, v4[i].prefix))
                return true;
        return false;
    }
    for (size_t i = 0; i < sizeof v6 / sizeof v6[0]; i++)
        if (addr_in(addr, v6[i].net, v6[i].prefix))
            return true;
    return false;
}

bool ipintel_is_private(const char *ip)
{
    unsigned char addr[16];
    return parse_addr(ip, addr) && addr_private(addr);
}

static void db_lookup(ipintel *db, const unsigned char addr[16], ipintel_info *out)
{
    struct in6_addr a;
    memcpy(a.s6_addr, addr, 16);
    struct loc_network *n = NULL;
    if (loc_database_lookup(db->db, &a, &n) != 0 || n == NULL)
        return; /* no network holds it */
    out->in_db = true;
    const char *cc = loc_network_get_country_code(n);
    if (cc != NULL)
        snprintf(out->country, sizeof out->country, "%s", cc);
    out->asn = loc_network_get_asn(n);
    out->anonymous_proxy = loc_network_has_flag(n, LOC_NETWORK_FLAG_ANONYMOUS_PROXY) != 0;
    out->satellite = loc_network_has_flag(n, LOC_NETWORK_FLAG_SATELLITE_PROVIDER) != 0;
    out->anycast = loc_network_has_flag(n, LOC_NETWORK_FLAG_ANYCAST) != 0;
    out->drop = loc_network_has_flag(n, LOC_NETWORK_FLAG_DROP) != 0;
    loc_network_unref(n);
    if (out->asn == 0)
        return;
    as_slot *a_s = &db->as_names[out->asn % AS_CACHE_SLOTS];
    if (a_s->asn != out->asn) {
        /* the AS table is a binary search plus an object: a third of a lookup */
        a_s->asn = out->asn;
        a_s->name[0] = '\0';
        struct loc_as *as = NULL;
        if (loc_database_get_as(db->db, &as, out->asn) == 0 && as != NULL) {
            const char *name = loc_as_get_name(as);
            if (name != NULL)
                util_copy_utf8(a_s->name, sizeof a_s->name, name, strlen(name));
            loc_as_unref(as);
        }
    }
    memcpy(out->as_name, a_s->name, sizeof out->as_name);
}

static uint64_t hash_key(const unsigned char key[16])
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 1099511628211ULL;
    return h;
}

/* The cached answer for key, or NULL; *victim: the slot to replace on a miss. */
static cache_slot *cache_find(ipintel *db, const unsigned char key[16], cache_slot **victim)
{
    cache_slot *set = db->cache[hash_key(key) % CACHE_SETS];
    *victim = &set[0];
    for (int w = 0; w < CACHE_WAYS; w++) {
        cache_slot *s = &set[w];
        if (s->used_at != 0 && memcmp(s->key, key, 16) == 0)
            return s;
        if (s->used_at < (*victim)->used_at)
            *victim = s;
    }
    return NULL;
}

void ipintel_lookup(ipintel *db, const char *ip, ipintel_info *out)
{
    memset(out, 0, sizeof *out);
    unsigned char addr[16];
    if (!parse_addr(ip, addr))
        return;
    out->valid = true;
    out->is_private = addr_private(addr);
    if (db == NULL || out->is_private)
        return; /* no database, or an address no public database knows */
    if (++db->clock == 0)
        db->clock = 1; /* 0 marks an empty slot */
    cache_slot *victim, *s = cache_find(db, addr, &victim);
    if (s != NULL) {
        db->hits++;
        s->used_at = db->clock;
        *out = s->info;
        return;
    }
    db->misses++;
    db_lookup(db, addr, out);
    victim->used_at = db->clock;
    memcpy(victim->key, addr, 16);
    victim->info = *out;
}
