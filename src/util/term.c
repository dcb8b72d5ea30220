/*
 * term.c: text that is safe to print on an analyst's terminal, and its display
 * width, for the CLI's tables.
 *
 * Stored text comes from webhook payloads (names, cities, user agents): anyone
 * who can sign up can put ESC sequences in them, which retitle or clear the
 * terminal, or \r and \n, which forge or hide rows. Every byte that is not
 * printable text becomes a visible escape. The trap is that "printable" is not
 * "valid UTF-8": C1 controls (U+0080-U+009F) are valid and some terminals obey
 * them (U+009B is CSI), and bidi overrides (U+202E) reorder what follows on the
 * screen, so these are escaped too.
 */
#include "util/util.h"

#include <string.h>

/* One step of the input: a code point printed as is, or an escape. */
typedef struct {
    size_t in_len;     /* input bytes consumed */
    char text[12];     /* what is written (an escape, or the input bytes) */
    size_t text_len;
    size_t cols;       /* display columns of text */
} term_unit;

typedef struct {
    uint32_t lo, hi;
} cp_range;

/* Valid code points that still act on the terminal or on the order of what is
 * shown, or hide text: escaped as \uXXXX. */
static const cp_range escaped_ranges[] = {
    {0x0080, 0x009F}, /* C1 controls (U+009B is CSI on some terminals) */
    {0x061C, 0x061C}, /* arabic letter mark */
    {0x200B, 0x200B}, /* zero width space: hides a difference between two ids */
    {0x200E, 0x200F}, /* LRM, RLM */
    {0x2028, 0x2029}, /* line and paragraph separators */
    {0x202A, 0x202E}, /* bidi embeddings and overrides */
    {0x2066, 0x2069}, /* bidi isolates */
    {0xFEFF, 0xFEFF}, /* byte order mark / zero width no-break space */
};

/* Zero-width marks combining with the previous character (the common blocks;
 * not all of Unicode: a rare mark counted as 1 column only shifts its row). */
static const cp_range combining_ranges[] = {
    {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x0610, 0x061A}, {0x064B, 0x065F},
    {0x0E31, 0x0E31}, {0x0E34, 0x0E3A}, {0x0E47, 0x0E4E}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF},
    {0x200C, 0x200D}, {0x20D0, 0x20FF}, {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F},
};

/* East Asian wide and fullwidth characters and emoji: 2 columns. */
static const cp_range wide_ranges[] = {
    {0x1100, 0x115F},   {0x2E80, 0x303E},   {0x3041, 0x33FF},   {0x3400, 0x4DBF}, {0x4E00, 0x9FFF},
    {0xA000, 0xA4CF},   {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},   {0xFE30, 0xFE4F}, {0xFF00, 0xFF60},
    {0xFFE0, 0xFFE6},   {0x1F300, 0x1F64F}, {0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
};

static bool in_ranges(const cp_range *r, size_t n, uint32_t cp)
{
    for (size_t i = 0; i < n; i++)
        if (cp >= r[i].lo && cp <= r[i].hi)
            return true;
    return false;
}

#define NRANGES(a) (sizeof(a) / sizeof((a)[0]))

/* The length of the valid UTF-8 sequence at s (strict: no overlong forms, no
 * surrogates, nothing above U+10FFFF), 0 when invalid; *cp its code point. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* bounds of the second byte */
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        *cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        *cp = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        *cp = c & 0x07;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3F);
    }
    return n;
}

static void unit_escape(term_unit *u, const char *fmt, unsigned v)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (const char *f = fmt; *f; f++)
        u->text[n++] = *f;
    int digits = fmt[1] == 'x' ? 2 : 4;
    for (int i = digits - 1; i >= 0; i--)
        u->text[n++] = hex[(v >> (4 * i)) & 15];
    u->text_len = n;
    u->cols = n;
}

static void next_unit(const unsigned char *s, size_t len, term_unit *u)
{
    uint32_t cp = 0;
    size_t n = utf8_decode(s, len, &cp);
    if (n == 0) {
        u->in_len = 1;
        unit_escape(u, "\\x", s[0]); /* invalid UTF-8: the byte itself */
        return;
    }
    u->in_len = n;
    static const struct {
        unsigned char c;
        char esc[3];
    } named[] = {{'\n', "\\n"}, {'\r', "\\r"}, {'\t', "\\t"}, {'\\', "\\\\"}};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (cp == named[i].c) {
            memcpy(u->text, named[i].esc, 2);
            u->text_len = u->cols = 2;
            return;
        }
    if (cp < 0x20 || cp == 0x7F) {
        unit_escape(u, "\\x", cp);
        return;
    }
    if (in_ranges(escaped_ranges, NRANGES(escaped_ranges), cp)) {
        unit_escape(u, "\\u", cp);
        return;
    }
    memcpy(u->text, s, n);
    u->text_len = n;
    u->cols = in_ranges(combining_ranges, NRANGES(combining_ranges), cp) ? 0
              : in_ranges(wide_ranges, NRANGES(wide_ranges), cp)     ? 2
                                                                      : 1;
}

static const char ellipsis[] = "\xE2\x80\xA6"; /* U+2026, one column */
#define ELLIPSIS_LEN (sizeof ellipsis - 1)

size_t util_term_fit(const char *s, size_t len, size_t max_cols, char *out, size_t outlen, bool *cut)
{
    if (cut != NULL)
        *cut = false;
    if (outlen == 0)
        return 0;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0, cols = 0;
    /* the longest prefix written so far that still leaves room for the ellipsis */
    size_t mark_n = 0, mark_cols = 0;
    bool mark_ok = outlen > ELLIPSIS_LEN; /* an empty prefix and the ellipsis fit */
    size_t i = 0;
    while (i < len) {
        term_unit u;
        next_unit(p + i, len - i, &u);
        bool fits = n + u.text_len < outlen && (max_cols == 0 || cols + u.cols <= max_cols);
        if (!fits) {
            /* cut between two units, never inside an escape or a code point */
            if (mark_ok) {
                memcpy(out + mark_n, ellipsis, ELLIPSIS_LEN);
                n = mark_n + ELLIPSIS_LEN;
                cols = mark_cols + 1;
            }
            if (cut != NULL)
                *cut = true;
            break;
        }
        memcpy(out + n, u.text, u.text_len);
        n += u.text_len;
        cols += u.cols;
        i += u.in_len;
        if (n + ELLIPSIS_LEN < outlen && (max_cols == 0 || cols + 1 <= max_cols)) {
            mark_n = n;
            mark_cols = cols;
        }
    }
    out[n] = '\0';
    return cols;
}

bool util_term_escape(const char *s, size_t len, char *out, size_t outlen)
{
    bool cut = false;
    util_term_fit(s, len, 0, out, outlen, &cut);
    return cut;
}
