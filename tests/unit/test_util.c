/* test_util.c: durations, integers, RFC 3339, UTF-8 cutting, big-endian keys, IP text and terminal cells. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "util/log.h"
#include "util/util.h"

static void test_duration(void)
{
    char err[UTIL_ERRLEN];
    int64_t ms = -1;
    CHECK("duration 250ms", util_parse_duration("250ms", &ms, err, sizeof err) == 0 && ms == 250);
    CHECK("duration 30s", util_parse_duration("30s", &ms, err, sizeof err) == 0 && ms == 30000);
    CHECK("duration 10m", util_parse_duration("10m", &ms, err, sizeof err) == 0 && ms == 600000);
    CHECK("duration 2h", util_parse_duration("2h", &ms, err, sizeof err) == 0 && ms == 7200000);
    CHECK("duration 90d", util_parse_duration("90d", &ms, err, sizeof err) == 0 && ms == 90LL * 86400000);
    CHECK("duration 1w", util_parse_duration("1w", &ms, err, sizeof err) == 0 && ms == 604800000LL);
    CHECK("duration 0s", util_parse_duration("0s", &ms, err, sizeof err) == 0 && ms == 0);
    ms = 42;
    CHECK("bare number refused", util_parse_duration("30", &ms, err, sizeof err) < 0);
    CHECK("bare number leaves output alone", ms == 42);
    CHECK("bare number message names the units", strstr(err, "needs a unit") != NULL);
    CHECK("unknown unit refused", util_parse_duration("3y", &ms, err, sizeof err) < 0);
    CHECK("unknown unit message", strstr(err, "unknown unit 'y'") != NULL);
    CHECK("empty refused", util_parse_duration("", &ms, err, sizeof err) < 0);
    CHECK("NULL refused", util_parse_duration(NULL, &ms, err, sizeof err) < 0);
    CHECK("negative refused", util_parse_duration("-5s", &ms, err, sizeof err) < 0);
    CHECK("unit first refused", util_parse_duration("s30", &ms, err, sizeof err) < 0);
    CHECK("space refused", util_parse_duration("30 s", &ms, err, sizeof err) < 0);
    CHECK("trailing junk refused", util_parse_duration("30sx", &ms, err, sizeof err) < 0);
    CHECK("overflow refused", util_parse_duration("99999999999999999w", &ms, err, sizeof err) < 0);
    CHECK("overflow message", strstr(err, "too large") != NULL);
    CHECK("NULL err accepted", util_parse_duration("x", &ms, NULL, 0) < 0);
}

static void test_i64(void)
{
    char err[UTIL_ERRLEN];
    int64_t v = -1;
    CHECK("i64 0", util_parse_i64("0", &v, err, sizeof err) == 0 && v == 0);
    CHECK("i64 12345", util_parse_i64("12345", &v, err, sizeof err) == 0 && v == 12345);
    CHECK("i64 max", util_parse_i64("9223372036854775807", &v, err, sizeof err) == 0 && v == INT64_MAX);
    v = 7;
    CHECK("i64 max + 1 refused", util_parse_i64("9223372036854775808", &v, err, sizeof err) < 0);
    CHECK("i64 overflow leaves output alone", v == 7);
    CHECK("i64 overflow message", strstr(err, "too large") != NULL);
    CHECK("i64 sign refused", util_parse_i64("-1", &v, err, sizeof err) < 0);
    CHECK("i64 plus refused", util_parse_i64("+1", &v, err, sizeof err) < 0);
    CHECK("i64 junk refused", util_parse_i64("12a", &v, err, sizeof err) < 0);
    CHECK("i64 junk message", strcmp(err, "'12a' is not a whole number") == 0);
    CHECK("i64 space refused", util_parse_i64(" 1", &v, err, sizeof err) < 0);
    CHECK("i64 empty refused", util_parse_i64("", &v, err, sizeof err) < 0);
    CHECK("i64 NULL refused", util_parse_i64(NULL, &v, err, sizeof err) < 0);
}

static void test_rfc3339(void)
{
    char buf[UTIL_RFC3339_LEN];
    util_format_rfc3339(0, buf, sizeof buf);
    CHECK("rfc3339 epoch", strcmp(buf, "1970-01-01T00:00:00.000Z") == 0);
    util_format_rfc3339(1716883200000LL, buf, sizeof buf);
    CHECK("rfc3339 2024-05-28", strcmp(buf, "2024-05-28T08:00:00.000Z") == 0);
    util_format_rfc3339(1654012591514LL, buf, sizeof buf);
    CHECK("rfc3339 millis", strcmp(buf, "2022-05-31T15:56:31.514Z") == 0);
    util_format_rfc3339(951782400999LL, buf, sizeof buf);
    CHECK("rfc3339 leap day", strcmp(buf, "2000-02-29T00:00:00.999Z") == 0);
    util_format_rfc3339(-1, buf, sizeof buf);
    CHECK("rfc3339 before epoch", strcmp(buf, "1969-12-31T23:59:59.999Z") == 0);
    char small[11];
    util_format_rfc3339(0, small, sizeof small);
    CHECK("rfc3339 small buffer terminated", strcmp(small, "1970-01-01") == 0);
}

static void test_copy_utf8(void)
{
    char dst[8];
    CHECK("copy short not cut", !util_copy_utf8(dst, sizeof dst, "abc", 3) && strcmp(dst, "abc") == 0);
    CHECK("copy exact fit not cut", !util_copy_utf8(dst, sizeof dst, "abcdefg", 7) && strcmp(dst, "abcdefg") == 0);
    CHECK("copy ascii cut", util_copy_utf8(dst, sizeof dst, "abcdefgh", 8) && strcmp(dst, "abcdefg") == 0);
    CHECK("copy honours srclen", !util_copy_utf8(dst, sizeof dst, "abcdef", 2) && strcmp(dst, "ab") == 0);
    CHECK("copy empty", !util_copy_utf8(dst, sizeof dst, "", 0) && dst[0] == '\0');

    /* "abcdef" + e-acute (2 bytes): 8 bytes into 7 -> the e-acute must go whole */
    CHECK("copy does not split a 2-byte code point",
          util_copy_utf8(dst, sizeof dst, "abcdef\xc3\xa9", 8) && strcmp(dst, "abcdef") == 0);
    /* "abcde" + euro sign (3 bytes): 8 bytes into 7 */
    CHECK("copy does not split a 3-byte code point",
          util_copy_utf8(dst, sizeof dst, "abcde\xe2\x82\xac", 8) && strcmp(dst, "abcde") == 0);
    /* "abcd" + U+1F600 (4 bytes) + "x": cut inside the emoji */
    CHECK("copy does not split a 4-byte code point",
          util_copy_utf8(dst, sizeof dst, "abcd\xf0\x9f\x98\x80x", 9) && strcmp(dst, "abcd") == 0);
    /* "abc" + U+1F600: 7 bytes fit exactly, kept whole */
    CHECK("copy keeps a code point that fits",
          !util_copy_utf8(dst, sizeof dst, "abc\xf0\x9f\x98\x80", 7) && strcmp(dst, "abc\xf0\x9f\x98\x80") == 0);
    /* cut right after a whole code point */
    CHECK("copy cut at a boundary keeps the code point",
          util_copy_utf8(dst, sizeof dst, "abcde\xc3\xa9z", 8) && strcmp(dst, "abcde\xc3\xa9") == 0);

    char one[1] = {'x'};
    CHECK("copy into 1 byte", util_copy_utf8(one, 1, "a", 1) && one[0] == '\0');
    CHECK("copy into 0 bytes reports the cut", util_copy_utf8(NULL, 0, "a", 1));
}

static void test_be64(void)
{
    unsigned char b[8];
    util_put_be64(b, 0x0102030405060708ULL);
    CHECK("be64 byte order", memcmp(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) == 0);
    CHECK("be64 round-trip", util_get_be64(b) == 0x0102030405060708ULL);
    util_put_be64(b, UINT64_MAX);
    CHECK("be64 max", util_get_be64(b) == UINT64_MAX);
    unsigned char lo[8], hi[8];
    util_put_be64(lo, 1716883200000ULL);
    util_put_be64(hi, 1716883200001ULL);
    CHECK("be64 sorts like the numbers", memcmp(lo, hi, 8) < 0);
    util_put_be64(lo, 255);
    util_put_be64(hi, 256);
    CHECK("be64 sorts across a byte carry", memcmp(lo, hi, 8) < 0);
}

/* log_quote: a hostile value stays one visible field of one line. */
static void test_log_quote(void)
{
    char b[128];
    CHECK("log_quote: plain value stays bare", strcmp(log_quote("msg_2abc", b, sizeof b), "msg_2abc") == 0);
    CHECK("log_quote: a space quotes", strcmp(log_quote("a b", b, sizeof b), "\"a b\"") == 0);
    CHECK("log_quote: a newline shows as \\n, not dropped",
          strcmp(log_quote("1.2.3.4\n5.6.7.8", b, sizeof b), "\"1.2.3.4\\n5.6.7.8\"") == 0);
    CHECK("log_quote: ESC and BEL visible", strcmp(log_quote("\x1b]0;x\a", b, sizeof b), "\"\\x1b]0;x\\x07\"") == 0);
    CHECK("log_quote: quote and backslash escaped", strcmp(log_quote("a\"b\\", b, sizeof b), "\"a\\\"b\\\\\"") == 0);
    CHECK("log_quote: invalid UTF-8 visible", strcmp(log_quote("a\xff", b, sizeof b), "\"a\\xff\"") == 0);
    CHECK("log_quote: accented text stays bare", strcmp(log_quote("Gen\xc3\xa8ve", b, sizeof b), "Gen\xc3\xa8ve") == 0);
    CHECK("log_quote: empty is \"\"", strcmp(log_quote("", b, sizeof b), "\"\"") == 0);
}

static void test_err(void)
{
    char err[8];
    CHECK("util_err returns -1", util_err(err, sizeof err, "%s", "a long message") == -1);
    CHECK("util_err truncates and terminates", strcmp(err, "a long ") == 0);
    CHECK("util_err accepts NULL", util_err(NULL, 0, "x") == -1);
    CHECK("clock is after 2020", util_now_ms() > 1577836800000LL);
    int64_t a = util_mono_ns(), b = util_mono_ns();
    CHECK("monotonic clock does not go back", b >= a);
}

/* util_ip_canonical reads exactly len bytes: the cases give it explicitly. */
static void test_ip_canonical(void)
{
    static const struct {
        const char *what, *in;
        size_t len;
        const char *want; /* NULL: not an address */
    } cases[] = {
        {"v4", "192.0.2.1", 9, "192.0.2.1"},
        {"v4 0.0.0.0", "0.0.0.0", 7, "0.0.0.0"},
        {"v6 compressed stays", "2001:db8::1", 11, "2001:db8::1"},
        {"v6 upper-case lowered", "2001:DB8::1", 11, "2001:db8::1"},
        {"v6 full form compressed", "2001:0DB8:0000:0000:0000:0000:0000:0001", 39, "2001:db8::1"},
        {"v6 loopback", "::1", 3, "::1"},
        {"v4-mapped v6 -> v4", "::ffff:10.1.2.3", 15, "10.1.2.3"},
        {"v4-mapped v6 upper-case -> v4", "::FFFF:10.1.2.3", 15, "10.1.2.3"},
        {"v4-mapped v6 in hex -> v4", "::ffff:a01:203", 14, "10.1.2.3"},
        {"45 bytes (the longest text form) fits", "0000:0000:0000:0000:0000:ffff:192.168.100.200", 45,
         "192.168.100.200"},
        {"only len bytes are read", "1.2.3.4xyz", 7, "1.2.3.4"},
        {"garbage", "not-an-ip", 9, NULL},
        {"path", "../../etc/passwd", 16, NULL},
        {"trailing newline", "1.2.3.4\n", 8, NULL},
        {"two addresses on two lines", "1.2.3.4\n5.6.7.8", 15, NULL},
        {"leading space", " 1.2.3.4", 8, NULL},
        {"embedded NUL", "1.2.3.4\0junk", 12, NULL},
        {"v4 /prefix", "1.2.3.4/8", 9, NULL},
        {"v6 %zone", "fe80::1%eth0", 12, NULL},
        {"v4 shorthand", "1.2.3", 5, NULL},
        {"v4 octet over 255", "1.2.3.256", 9, NULL},
        {"v4 octal-looking leading zero", "010.1.2.3", 9, NULL},
        {"v6 two ::", "1::2::3", 7, NULL},
        {"46 bytes: too long", "0000:0000:0000:0000:0000:ffff:192.168.100.200 ", 46, NULL},
        {"empty", "", 0, NULL},
    };
    char out[UTIL_IP_LEN], name[96];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(out, "junk", 5);
        int rc = util_ip_canonical(cases[i].in, cases[i].len, out, sizeof out);
        snprintf(name, sizeof name, "ip %s", cases[i].what);
        if (cases[i].want != NULL)
            CHECK(name, rc == 0 && strcmp(out, cases[i].want) == 0);
        else
            CHECK(name, rc == -1 && out[0] == '\0');
    }
    char big[200];
    memset(big, '1', sizeof big);
    CHECK("ip far too long refused", util_ip_canonical(big, sizeof big, out, sizeof out) == -1 && out[0] == '\0');
    CHECK("ip NULL refused", util_ip_canonical(NULL, 3, out, sizeof out) == -1 && out[0] == '\0');
    char small[UTIL_IP_LEN - 1];
    CHECK("ip out shorter than UTIL_IP_LEN refused",
          util_ip_canonical("1.2.3.4", 7, small, sizeof small) == -1 && small[0] == '\0');
}

/* util_term_escape is a defence: expect exact visible escapes. */
static bool escapes_to(const char *in, size_t len, const char *want)
{
    char out[256];
    bool cut = util_term_escape(in, len, out, sizeof out);
    if (cut || strcmp(out, want) != 0) {
        printf("  got '%s' want '%s'\n", out, want);
        return false;
    }
    return true;
}

/* True when no byte of s is a C0 control, DEL or part of a C1 control. */
static bool terminal_safe(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
            return false;
    return true;
}

static void test_term_escape(void)
{
    CHECK("term: plain ascii kept", escapes_to("Ada Lovelace", 12, "Ada Lovelace"));
    CHECK("term: accents kept", escapes_to("Chlo\xc3\xa9 Z\xc3\xbcrich", 14, "Chlo\xc3\xa9 Z\xc3\xbcrich"));
    CHECK("term: OSC title and clear screen escaped",
          escapes_to("\x1b]0;pwned\a\x1b[2J", 14, "\\x1b]0;pwned\\x07\\x1b[2J"));
    CHECK("term: CR LF TAB named", escapes_to("a\r\nb\tc", 6, "a\\r\\nb\\tc"));
    CHECK("term: backslash doubled (an escape cannot be forged)", escapes_to("a\\x1b", 5, "a\\\\x1b"));
    CHECK("term: DEL escaped", escapes_to("a\x7f", 2, "a\\x7f"));
    CHECK("term: NUL inside len escaped", escapes_to("a\0b", 3, "a\\x00b"));
    CHECK("term: C1 CSI escaped", escapes_to("\xc2\x9b" "2J", 4, "\\u009b2J"));
    CHECK("term: bidi override escaped", escapes_to("gpj.\xe2\x80\xae" "exe", 10, "gpj.\\u202eexe"));
    CHECK("term: invalid byte escaped", escapes_to("a\xff" "b", 3, "a\\xffb"));
    CHECK("term: lone continuation escaped", escapes_to("\x80", 1, "\\x80"));
    CHECK("term: overlong slash escaped", escapes_to("\xc0\xaf", 2, "\\xc0\\xaf"));
    CHECK("term: surrogate escaped", escapes_to("\xed\xa0\x80", 3, "\\xed\\xa0\\x80"));
    CHECK("term: truncated sequence escaped", escapes_to("\xe2\x82", 2, "\\xe2\\x82"));
    CHECK("term: above U+10FFFF escaped", escapes_to("\xf4\x90\x80\x80", 4, "\\xf4\\x90\\x80\\x80"));
    CHECK("term: emoji kept", escapes_to("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"));

    /* bounded: never cut inside an escape, always terminated */
    char small[6];
    bool cut = util_term_escape("ab\x1b[2J", 6, small, sizeof small);
    CHECK("term: bounded output cut between escapes, with an ellipsis", cut && strcmp(small, "ab\xe2\x80\xa6") == 0);
    cut = util_term_escape("\x1b\x1b", 2, small, 5);
    CHECK("term: the ellipsis wins over half the text", cut && strcmp(small, "\xe2\x80\xa6") == 0);
    cut = util_term_escape("\x1b\x1b", 2, small, 3);
    CHECK("term: no room for the ellipsis: cut at an escape", cut && small[0] == '\0');
    char one[1];
    cut = util_term_escape("x", 1, one, sizeof one);
    CHECK("term: one-byte buffer is empty", cut && one[0] == '\0');

    /* every byte value, alone and in pairs: the output is terminal-safe */
    bool safe = true;
    for (int a = 0; a < 256 && safe; a++)
        for (int b = 0; b < 256 && safe; b++) {
            char in[3] = {(char)a, (char)b, (char)0x9b}, out[64];
            util_term_escape(in, sizeof in, out, sizeof out);
            safe = terminal_safe(out);
        }
    CHECK("term: every byte pair comes out terminal-safe", safe);
}

static void test_term_fit(void)
{
    char out[64];
    bool cut = true;
    CHECK("fit: width counts code points", util_term_fit("Chlo\xc3\xa9", 6, 0, out, sizeof out, &cut) == 5 && !cut);
    CHECK("fit: wide chars count 2", util_term_fit("\xe6\x9d\xb1\xe4\xba\xac", 6, 0, out, sizeof out, NULL) == 4);
    CHECK("fit: combining mark counts 0", util_term_fit("e\xcc\x81", 3, 0, out, sizeof out, NULL) == 1);
    CHECK("fit: escape counts its length", util_term_fit("\x1b", 1, 0, out, sizeof out, NULL) == 4);
    size_t w = util_term_fit("Gen\xc3\xa8ve-Z\xc3\xbcrich", 15, 8, out, sizeof out, &cut);
    CHECK("fit: cut with an ellipsis within the width",
          w == 8 && cut && strcmp(out, "Gen\xc3\xa8ve-\xe2\x80\xa6") == 0);
    w = util_term_fit("\xc3\xa9\xc3\xa9\xc3\xa9", 6, 3, out, sizeof out, &cut);
    CHECK("fit: exact width not cut", w == 3 && !cut);
    w = util_term_fit("ab\x1b[2J", 6, 5, out, sizeof out, &cut);
    CHECK("fit: never cuts an escape", w == 3 && cut && strcmp(out, "ab\xe2\x80\xa6") == 0);
    w = util_term_fit("a\xe6\x9d\xb1\xe4\xba\xac", 7, 3, out, sizeof out, &cut);
    CHECK("fit: a wide char that does not fit is dropped whole", w == 2 && cut && strcmp(out, "a\xe2\x80\xa6") == 0);
}

int main(void)
{
    test_duration();
    test_i64();
    test_rfc3339();
    test_copy_utf8();
    test_be64();
    test_err();
    test_log_quote();
    test_ip_canonical();
    test_term_escape();
    test_term_fit();
    return check_summary();
}
