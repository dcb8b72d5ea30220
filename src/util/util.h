/*
 * util.h: small helpers every subsystem shares: error buffers, wall-clock time,
 * durations ("30s", "10m", "90d") and RFC 3339 formatting. No state, no allocation.
 */
#ifndef VEILLE_UTIL_H
#define VEILLE_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every fallible function takes (char *err, size_t errlen) and returns 0 or a
 * negative code. util_err() writes the message; it accepts err == NULL. */
#define UTIL_ERRLEN 256
int util_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Milliseconds since the Unix epoch, wall clock (event times are wall-clock). */
int64_t util_now_ms(void);
/* Monotonic nanoseconds, for latency figures only. */
int64_t util_mono_ns(void);

/* "250ms", "30s", "10m", "2h", "90d", "1w" -> milliseconds. A bare number is
 * rejected: a duration without a unit is ambiguous in a security tool. */
int util_parse_duration(const char *s, int64_t *out_ms, char *err, size_t errlen);

/* Decimal, no sign, no trailing junk, fits in int64. */
int util_parse_i64(const char *s, int64_t *out, char *err, size_t errlen);

/* RFC 3339 UTC with milliseconds: "2024-05-28T08:00:00.000Z". buf >= 32 bytes. */
#define UTIL_RFC3339_LEN 32
void util_format_rfc3339(int64_t ms, char *buf, size_t len);

/* Copy at most dstlen-1 bytes, cutting on a UTF-8 boundary; always terminates.
 * Returns true when the source was cut. */
bool util_copy_utf8(char *dst, size_t dstlen, const char *src, size_t srclen);

/* prefix + 24 hex digits: the first 96 bits of SHA-256(data). A stable id for
 * content veille derives ids from (alerts, replayed lines). out needs
 * strlen(prefix) + 25 bytes; it is cut to fit otherwise. */
void util_digest_id(const char *prefix, const void *data, size_t len, char *out, size_t outlen);

/* The first 64 bits of SHA-256(data), big-endian: a stable key for content
 * veille must find again after a restart (a sink's outbox). */
uint64_t util_digest64(const void *data, size_t len);

/* An IP address as text -> its canonical form (inet_ntop of inet_pton): IPv4
 * dotted quad, IPv6 compressed lower-case, and a v4-mapped IPv6 (::ffff:a.b.c.d)
 * normalised to its IPv4 form. len bytes of in are read (no NUL needed); any
 * byte outside the address (a space, a newline, a /prefix, a %zone) makes it
 * invalid. out needs UTIL_IP_LEN bytes. Returns 0, or -1 (out set to "") when in
 * is not an address. */
#define UTIL_IP_LEN 46 /* INET6_ADDRSTRLEN */
int util_ip_canonical(const char *in, size_t len, char *out, size_t outlen);

/* Terminal-safe text (term.c), for every text column the CLI prints: control
 * characters (C0, DEL, C1 U+0080-U+009F) and invalid UTF-8 bytes become visible
 * escapes (\n \r \t \\ \x1b \u009b), and so do bidi controls (U+202A-U+202E,
 * U+2066-U+2069, LRM, RLM), U+2028/2029, U+200B and U+FEFF; the rest of valid
 * UTF-8 is copied. out is always NUL-terminated; text that does not fit is cut
 * between two characters or escapes, never inside one, and ends with U+2026 '…'
 * when outlen leaves room for it. util_term_escape returns true when it cut. */
bool util_term_escape(const char *s, size_t len, char *out, size_t outlen);
/* The same, at most max_cols display columns (0: no limit): a character counts
 * 1, a wide East Asian one or an emoji 2, a combining mark 0, an escape its
 * length; the ellipsis of a cut fits within max_cols. Returns the display width of out; *cut (may be NULL) tells whether
 * it was cut. */
size_t util_term_fit(const char *s, size_t len, size_t max_cols, char *out, size_t outlen, bool *cut);

/* Big-endian 64-bit, for LMDB keys that must sort by time. */
void util_put_be64(unsigned char *p, uint64_t v);
uint64_t util_get_be64(const unsigned char *p);

/* systemd's notify protocol (sdnotify.c, no libsystemd): send state, e.g.
 * "READY=1" or "STOPPING=1", to the unix datagram socket named by
 * $NOTIFY_SOCKET (a path, or an abstract name starting with '@'). 0 when sent
 * or when the variable is unset (not under systemd); negative with err filled
 * otherwise. util_sd_notify() logs that error as a warning instead: a failed
 * notify never stops veille. */
int util_sd_notify_send(const char *state, char *err, size_t errlen);
void util_sd_notify(const char *state);

#endif
