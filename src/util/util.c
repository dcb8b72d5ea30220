/* util.c: error buffers, clocks, durations, RFC 3339 and byte-order helpers. */
#include "util/util.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int util_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int util_parse_i64(const char *s, int64_t *out, char *err, size_t errlen)
{
    if (s == NULL || *s == '\0')
        return util_err(err, errlen, "expected a number, got nothing");
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return util_err(err, errlen, "'%s' is not a whole number", s);
        int d = *p - '0';
        if (v > (INT64_MAX - d) / 10)
            return util_err(err, errlen, "'%s' is too large", s);
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int util_parse_duration(const char *s, int64_t *out_ms, char *err, size_t errlen)
{
    if (s == NULL || *s == '\0')
        return util_err(err, errlen, "expected a duration such as 30s, 10m, 2h or 90d");
    const char *p = s;
    int64_t v = 0;
    if (!isdigit((unsigned char)*p))
        return util_err(err, errlen, "'%s' is not a duration (expected e.g. 30s, 10m, 2h, 90d)", s);
    while (isdigit((unsigned char)*p)) {
        int d = *p - '0';
        if (v > (INT64_MAX / 1000 / 604800 - d) / 10)
            return util_err(err, errlen, "duration '%s' is too large", s);
        v = v * 10 + d;
        p++;
    }
    int64_t mult;
    if (strcmp(p, "ms") == 0) mult = 1;
    else if (strcmp(p, "s") == 0) mult = 1000;
    else if (strcmp(p, "m") == 0) mult = 60 * 1000;
    else if (strcmp(p, "h") == 0) mult = 3600 * 1000;
    else if (strcmp(p, "d") == 0) mult = 86400 * 1000;
    else if (strcmp(p, "w") == 0) mult = (int64_t)604800 * 1000;
    else if (*p == '\0')
        return util_err(err, errlen, "duration '%s' needs a unit (ms, s, m, h, d or w)", s);
    else
        return util_err(err, errlen, "duration '%s' has an unknown unit '%s' (use ms, s, m, h, d or w)", s, p);
    *out_ms = v * mult;
    return 0;
}

void util_format_rfc3339(int64_t ms, char *buf, size_t len)
{
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int millis = (int)(ms - (int64_t)secs * 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, len, "invalid-time");
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

bool util_copy_utf8(char *dst, size_t dstlen, const char *src, size_t srclen)
{
    if (dstlen == 0)
        return srclen > 0;
    size_t n = srclen;
    bool cut = false;
    if (n > dstlen - 1) {
        n = dstlen - 1;
        cut = true;
        /* back off continuation bytes so we never split a code point */
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
    return cut;
}

void util_put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

uint64_t util_get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

uint64_t util_digest64(const void *data, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1)
        memset(md, 0, sizeof md); /* cannot happen with a working libcrypto */
    return util_get_be64(md);
}

void util_digest_id(const char *prefix, const void *data, size_t len, char *out, size_t outlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1)
        memset(md, 0, sizeof md); /* cannot happen with a working libcrypto */
    char hex[25];
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 12; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[24] = '\0';
    snprintf(out, outlen, "%s%s", prefix, hex);
}

int util_ip_canonical(const char *in, size_t len, char *out, size_t outlen)
{
    char buf[UTIL_IP_LEN];
    unsigned char addr[16];
    if (outlen > 0)
        out[0] = '\0';
    if (in == NULL || len == 0 || len >= sizeof buf || outlen < UTIL_IP_LEN)
        return -1;
    memcpy(buf, in, len);
    buf[len] = '\0';
    if (memchr(buf, '\0', len) != NULL) /* an embedded NUL would hide what follows it */
        return -1;
    if (inet_pton(AF_INET, buf, addr) == 1)
        return inet_ntop(AF_INET, addr, out, (socklen_t)outlen) != NULL ? 0 : -1;
    if (inet_pton(AF_INET6, buf, addr) != 1)
        return -1;
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(addr, v4mapped, sizeof v4mapped) == 0)
        return inet_ntop(AF_INET, addr + 12, out, (socklen_t)outlen) != NULL ? 0 : -1;
    return inet_ntop(AF_INET6, addr, out, (socklen_t)outlen) != NULL ? 0 : -1;
}
