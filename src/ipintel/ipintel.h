/*
 * ipintel.h: what the location database (IPFire's libloc, data CC BY-SA 4.0)
 * says of an IP address: its autonomous system, the country its network is
 * registered in, and the network's flags (anonymous proxy, satellite provider,
 * anycast, DROP: a known-bad range). Whether the address is private (RFC 1918,
 * loopback, link-local, CGNAT 100.64.0.0/10, IPv6 ULA fc00::/7) is computed
 * here, not read from the database.
 *
 * A handle keeps the mapped database and a small cache of recent answers
 * (set-associative, least recently used out) keyed by the binary address, so a textual form and its canonical one
 * (util_ip_canonical) share an entry. Real traffic repeats a few addresses: a
 * cached answer costs a hash and a compare.
 *
 * Threads: a handle is used by one thread at a time (the cache is not locked);
 * veille's committer is the only one that evaluates rules.
 */
#ifndef VEILLE_IPINTEL_H
#define VEILLE_IPINTEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where Debian's libloc-database (and `location update`) puts it. */
#define IPINTEL_DEFAULT_DB "/var/lib/location/database.db"
#define IPINTEL_AS_NAME_MAX 128 /* longer AS names are cut on a UTF-8 boundary */
#define IPINTEL_COUNTRY_MAX 8
#define IPINTEL_CACHE_SLOTS 8192 /* addresses remembered (about 1.5 MiB with the AS names) */

typedef struct ipintel ipintel;

typedef struct {
    bool valid;           /* the text was an IP address; false: everything below is empty */
    bool in_db;           /* a network of the database holds it (false too without a database) */
    uint32_t asn;         /* 0: none known */
    char as_name[IPINTEL_AS_NAME_MAX]; /* "" when none */
    char country[IPINTEL_COUNTRY_MAX]; /* ISO 3166 alpha-2 as the database has it; "" none */
    bool anonymous_proxy; /* the database's flags, false when not in_db */
    bool satellite;
    bool anycast;
    bool drop;
    bool is_private;      /* computed locally, known for any valid address */
} ipintel_info;

/* Open the database file at path (NULL: IPINTEL_DEFAULT_DB). -1 with err saying
 * why (missing, unreadable, not a location database). */
int ipintel_open(const char *path, ipintel **out, char *err, size_t errlen);
void ipintel_close(ipintel *db); /* NULL is a no-op */

/* The database's creation time (Unix seconds) and vendor, for the start log line. */
int64_t ipintel_created_at(const ipintel *db);
const char *ipintel_vendor(const ipintel *db);

/* Look ip (IPv4 or IPv6 text) up. db may be NULL (no database): then only
 * valid and is_private are set. An address no network holds is not an error:
 * in_db is false. Never fails; garbage gives valid = false. */
void ipintel_lookup(ipintel *db, const char *ip, ipintel_info *out);

/* The same cache counters the bench reports. */
void ipintel_cache_stats(const ipintel *db, uint64_t *hits, uint64_t *misses);

/* RFC 1918, loopback, link-local, CGNAT, IPv6 ULA; false for garbage. */
bool ipintel_is_private(const char *ip);

#endif
