/*
 * device.h: what a user agent says about the browser, the OS and the device,
 * with uap-core's regexes (Debian `uap-core`, /usr/share/uap-core/regexes.yaml),
 * loaded at run time with libyaml and matched with PCRE2's JIT.
 *
 * The rules read the result as ua.browser, ua.browser_major, ua.os, ua.os_major
 * and ua.device, and `first_seen(device, ...)` the device key: (browser family,
 * OS family, device family), so that a browser update is not a new device.
 *
 * Semantics are uap-core's specification (specification.md in the package):
 * three lists, first match wins in file order, `$1`..`$9` in the replacements,
 * "Other" when nothing matches, results trimmed. Versions are kept to the major.
 *
 * Traps:
 *  - The user agent is whatever the client sent: hostile. Every match runs
 *    under PCRE2 match and depth limits, so a string built to make one of the
 *    1,100 regexes backtrack costs a bounded time; a regex that hits a limit
 *    counts as not matching (DEVICE_MATCH_LIMIT).
 *  - Matching all three lists costs about 100 microseconds, even with the
 *    literal prefilter (device.c); real traffic repeats a small set of user
 *    agents, so results are cached by the whole string (bounded, least
 *    recently used evicted).
 *
 * Ownership: a device_parser owns its compiled regexes and its cache. It is
 * not thread-safe (the cache and the match data are written by every parse):
 * one thread parses, as one thread evaluates the rules.
 */
#ifndef VEILLE_DEVICE_H
#define VEILLE_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEVICE_REGEXES_DEFAULT "/usr/share/uap-core/regexes.yaml"
#define DEVICE_FAMILY_MAX 96   /* a family (cut on a UTF-8 boundary) incl. NUL */
#define DEVICE_VERSION_MAX 24  /* a major version incl. NUL */
#define DEVICE_KEY_MAX 128     /* device_key(): fits the store's values index */
#define DEVICE_CACHE_DEFAULT 4096
#define DEVICE_MATCH_LIMIT 100000 /* PCRE2 match limit per regex and user agent */

/* "" for a field the user agent does not give (a version), "Other" for a
 * family no regex recognised, as uap-core says. */
typedef struct {
    char browser[DEVICE_FAMILY_MAX];
    char browser_major[DEVICE_VERSION_MAX];
    char os[DEVICE_FAMILY_MAX];
    char os_major[DEVICE_VERSION_MAX];
    char device[DEVICE_FAMILY_MAX];
} device_info;

typedef struct device_parser device_parser;

typedef struct {
    size_t browser_regexes, os_regexes, device_regexes; /* compiled */
    size_t jit_failed;      /* compiled but interpreted (the JIT refused them) */
    uint64_t parses;        /* device_parse calls with a non-empty user agent */
    uint64_t cache_hits;
    uint64_t limit_hits;    /* matches stopped by DEVICE_MATCH_LIMIT */
} device_stats;

/* Load and compile path's regexes (NULL: DEVICE_REGEXES_DEFAULT). cache_max is
 * the number of user agents remembered (0: no cache, every parse matches).
 * Errors name the file, and the line and column for YAML errors and regexes
 * PCRE2 refuses: "regexes.yaml:1805:12: ...". */
int device_parser_new(const char *path, size_t cache_max, device_parser **out, char *err, size_t errlen);
void device_parser_free(device_parser *p); /* NULL is a no-op */

/* Parse ua (NUL-terminated, any bytes). An empty ua gives all fields "" (not
 * "Other": there was nothing to parse). Never fails. */
void device_parse(device_parser *p, const char *ua, device_info *out);

/* The device key of d: "browser family / OS family / device family", cut to
 * DEVICE_KEY_MAX-1 bytes on a UTF-8 boundary; "" when d has no browser family
 * (an empty user agent). buf needs DEVICE_KEY_MAX bytes. */
void device_key(const device_info *d, char *buf, size_t len);

void device_parser_stats(const device_parser *p, device_stats *out);

#endif
