/*
 * test_ipintel.c: lookups against the real Debian location database
 * (libloc-database, the 2022-10-29 snapshot in bookworm), for the facts checked
 * with `location lookup`. Without the database the lookup tests are skipped
 * with a message; the private-range and no-database tests always run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ipintel/ipintel.h"

static void check_private(void)
{
    static const struct {
        const char *ip;
        bool priv;
    } cases[] = {
        {"10.1.2.3", true},       {"172.16.0.1", true},    {"172.31.255.255", true}, {"172.32.0.1", false},
        {"192.168.1.1", true},    {"127.0.0.1", true},     {"169.254.10.1", true},   {"100.64.0.1", true},
        {"100.127.255.255", true}, {"100.128.0.1", false}, {"100.63.255.255", false}, {"82.64.1.1", false},
        {"::1", true},            {"fe80::1", true},       {"fd12:3456::1", true},   {"2001:4860::1", false},
        {"::ffff:10.0.0.1", true}, {"::ffff:8.8.8.8", false}, {"", false},           {"not an ip", false},
        {"10.0.0.1/8", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "private %s is %s", cases[i].ip, cases[i].priv ? "private" : "not private");
        CHECK(name, ipintel_is_private(cases[i].ip) == cases[i].priv);
    }
}

static void check_no_database(void)
{
    ipintel *db = NULL;
    char err[256] = "";
    CHECK("a missing database file is refused", ipintel_open("/nonexistent/location.db", &db, err, sizeof err) < 0 &&
                                                    db == NULL);
    CHECK("the message names the file and the package", strstr(err, "/nonexistent/location.db") != NULL &&
                                                             strstr(err, "libloc-database") != NULL);
    char tmp[] = "/tmp/veille-ipintel-XXXXXX";
    int fd = mkstemp(tmp);
    if (fd >= 0) {
        (void)!write(fd, "not a database at all\n", 22);
        close(fd);
        err[0] = '\0';
        CHECK("a file that is not a location database is refused",
              ipintel_open(tmp, &db, err, sizeof err) < 0 && strstr(err, "not a location database") != NULL);
        unlink(tmp);
    }
    ipintel_info in;
    ipintel_lookup(NULL, "82.64.1.1", &in);
    CHECK("without a database: valid, public, nothing known",
          in.valid && !in.is_private && !in.in_db && in.asn == 0 && in.as_name[0] == '\0' && in.country[0] == '\0');
    ipintel_lookup(NULL, "192.168.0.1", &in);
    CHECK("without a database private is still known", in.valid && in.is_private);
    ipintel_lookup(NULL, "garbage", &in);
    CHECK("garbage is not valid", !in.valid && !in.is_private);
}

static void check_database(ipintel *db)
{
    static const struct {
        const char *ip;
        uint32_t asn;
        const char *as_name; /* a prefix of it */
        const char *country;
    } facts[] = {
        {"82.64.1.1", 12322, "Free SAS", "FR"},       {"90.12.1.1", 3215, "Orange", "FR"},
        {"73.1.2.3", 7922, "COMCAST", "US"},          {"159.89.0.1", 14061, "DIGITALOCEAN", "US"},
        {"51.68.1.1", 16276, "OVH", "FR"},            {"::ffff:51.68.1.1", 16276, "OVH", "FR"},
        {"2001:4860:4860::8888", 15169, "GOOGLE", "US"},
    };
    for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++) {
        ipintel_info in;
        ipintel_lookup(db, facts[i].ip, &in);
        char name[128];
        snprintf(name, sizeof name, "%s is AS%u %s in %s", facts[i].ip, facts[i].asn, facts[i].as_name,
                 facts[i].country);
        CHECK(name, in.valid && in.in_db && in.asn == facts[i].asn &&
                        strncmp(in.as_name, facts[i].as_name, strlen(facts[i].as_name)) == 0 &&
                        strcmp(in.country, facts[i].country) == 0 && !in.anonymous_proxy && !in.drop &&
                        !in.is_private);
    }
    ipintel_info in;
    ipintel_lookup(db, "185.220.101.1", &in);
    CHECK("185.220.101.1 (Tor exits, AS60729, DE) is an anonymous proxy",
          in.asn == 60729 && strcmp(in.country, "DE") == 0 && in.anonymous_proxy && !in.drop);
    ipintel_lookup(db, "1.10.16.1", &in);
    CHECK("1.10.16.1 is in a DROP range", in.in_db && in.drop && !in.anonymous_proxy);
    ipintel_lookup(db, "8.8.8.8", &in);
    CHECK("8.8.8.8 is anycast", in.asn == 15169 && in.anycast && !in.drop);
    ipintel_lookup(db, "5.8.184.1", &in);
    CHECK("5.8.184.1 is a satellite provider", in.satellite);
    ipintel_lookup(db, "10.0.0.1", &in);
    CHECK("a private address is private and not looked up", in.valid && in.is_private && !in.in_db && in.asn == 0);

    /* the cache answers the same address again, in any textual form */
    uint64_t h0, m0, h1, m1;
    ipintel_cache_stats(db, &h0, &m0);
    ipintel_lookup(db, "82.64.1.1", &in);
    ipintel_lookup(db, "::ffff:82.64.1.1", &in);
    ipintel_cache_stats(db, &h1, &m1);
    CHECK("repeated lookups are cache hits", h1 - h0 == 2 && m1 == m0);
    CHECK("a cached answer is the same answer", in.asn == 12322 && strcmp(in.country, "FR") == 0);
    /* a network may hold a more specific one: answers are per address, never
     * shared across the block (a cache keyed by /24 gave .122 the /19's answer) */
    ipintel_lookup(db, "192.241.169.121", &in);
    CHECK("192.241.169.121 is DigitalOcean, not a proxy", in.asn == 14061 && !in.anonymous_proxy);
    ipintel_lookup(db, "192.241.169.122", &in);
    CHECK("192.241.169.122/32 inside it is an anonymous proxy", in.asn == 14061 && in.anonymous_proxy);
    ipintel_lookup(db, "192.241.169.123", &in);
    CHECK("192.241.169.123 is not", in.asn == 14061 && !in.anonymous_proxy);
    /* a working set well within the cache stays cached: a direct-mapped cache
     * of 2048 slots lost a fifth of it to collisions; eight ways keep all
     * but the odd overfull set (private addresses are not cached at all) */
    char ips[1000][32];
    for (int i = 0; i < 1000; i++)
        snprintf(ips[i], sizeof ips[i], "%d.%d.%d.%d", 20 + i % 150, i / 150 + 1, (i * 7) % 256, 1 + i % 200);
    for (int i = 0; i < 1000; i++)
        ipintel_lookup(db, ips[i], &in);
    ipintel_cache_stats(db, &h0, &m0);
    for (int i = 0; i < 1000; i++)
        ipintel_lookup(db, ips[i], &in);
    ipintel_cache_stats(db, &h1, &m1);
    int public_ips = 0;
    for (int i = 0; i < 1000; i++)
        public_ips += !ipintel_is_private(ips[i]);
    CHECK("a working set within the cache is (almost) all hits the second time",
          h1 - h0 + (m1 - m0) == (uint64_t)public_ips && m1 - m0 <= 10);
    printf("     (second pass: %llu hits, %llu misses)\n", (unsigned long long)(h1 - h0),
           (unsigned long long)(m1 - m0));
    ipintel_lookup(db, "garbage", &in);
    CHECK("garbage is not valid, with a database too", !in.valid && !in.in_db);
    CHECK("the database has a creation time", ipintel_created_at(db) > 1600000000);
}

int main(void)
{
    check_private();
    check_no_database();
    ipintel *db = NULL;
    char err[256];
    if (ipintel_open(NULL, &db, err, sizeof err) < 0) {
        printf("SKIP lookups against the real database: %s\n", err);
    } else {
        check_database(db);
        ipintel_close(db);
    }
    return check_summary();
}
