/*
 * lexer.c: the rules arena, diagnostics with source line and caret, and the
 * hand-written tokenizer. Lexical errors are reported here and surface as
 * TK_ERROR, so the parser only has to recover.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "rules/internal.h"
#include "util/util.h"

/* ---- arena ---- */

struct arena_block {
    arena_block *next;
    size_t used, cap;
    max_align_t data[];
};

#define ARENA_BLOCK 16384

void *arena_alloc(arena *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (n == 0)
        n = sizeof(max_align_t);
    arena_block *b = a->head;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (b == NULL) {
            a->oom = true;
            return NULL;
        }
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void arena_free(arena *a)
{
    arena_block *b = a->head;
    while (b != NULL) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

int ptrvec_push(arena *a, ptrvec *pv, void *p)
{
    if (pv->n == pv->cap) {
        size_t cap = pv->cap ? pv->cap * 2 : 4;
        void **v = arena_alloc(a, cap * sizeof *v);
        if (v == NULL)
            return -1;
        if (pv->n)
            memcpy(v, pv->v, pv->n * sizeof *v);
        pv->v = v;
        pv->cap = cap;
    }
    pv->v[pv->n++] = p;
    return 0;
}

/* ---- diagnostics ---- */

/* Diagnostics are kept and printed sorted by position, so the parser's and the
 * checker's errors come out in file order. */
typedef struct {
    size_t off;
    size_t seq;
    char *text;
} diag_entry;

/* The source line around off (cut to DIAG_CONTEXT bytes either side) and a
 * caret line under the len bytes from off. */
static void put_source_context(const rules_ctx *c, FILE *m, size_t off, size_t len)
{
    /* Show at most DIAG_CONTEXT bytes either side of the error, so a huge
     * one-line file cannot make each diagnostic (or finding its line) costly. */
    enum { DIAG_CONTEXT = 100 };
    size_t ls = off;
    while (ls > 0 && c->src[ls - 1] != '\n' && off - ls < DIAG_CONTEXT)
        ls--;
    size_t le = off;
    while (le < c->len && c->src[le] != '\n' && le - off < DIAG_CONTEXT)
        le++;
    bool cut_left = ls > 0 && c->src[ls - 1] != '\n';
    bool cut_right = le < c->len && c->src[le] != '\n';
    if (cut_left)
        fputs("...", m);
    fwrite(c->src + ls, 1, le - ls, m);
    fputs(cut_right ? "...\n" : "\n", m);
    if (cut_left)
        fputs("   ", m);
    /* Keep tabs so the caret lines up whatever the tab width. */
    for (size_t i = ls; i < off; i++)
        fputc(c->src[i] == '\t' ? '\t' : ' ', m);
    fputc('^', m);
    /* The span never runs past what was shown. */
    for (size_t i = 1; i < len && off + i < le; i++)
        fputc('~', m);
    fputc('\n', m);
}

static void verror_at(rules_ctx *c, int line, int col, size_t off, size_t len, const char *fmt, va_list ap)
{
    c->errors++;
    if (c->diag == NULL)
        return;
    char *text = NULL;
    size_t tlen = 0;
    FILE *m = open_memstream(&text, &tlen);
    if (m == NULL) {
        c->set->mem.oom = true;
        return;
    }
    fprintf(m, "%s:%d:%d: error: ", c->name, line, col);
    if (c->diag_brief) {
        /* a message may quote source text: keep it on its one line */
        char msg[512];
        vsnprintf(msg, sizeof msg, fmt, ap);
        for (char *p = msg; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        fputs(msg, m);
    } else {
        vfprintf(m, fmt, ap);
    }
    fputc('\n', m);
    if (off > c->len)
        off = c->len;
    if (!c->diag_brief)
        put_source_context(c, m, off, len);
    fclose(m);
    diag_entry *d = arena_alloc(&c->set->mem, sizeof *d);
    if (d != NULL) {
        d->off = off;
        d->seq = c->diags.n;
        d->text = arena_strndup(&c->set->mem, text, tlen);
        ptrvec_push(&c->set->mem, &c->diags, d);
    }
    free(text);
}

static int diag_cmp(const void *a, const void *b)
{
    const diag_entry *x = *(diag_entry *const *)a, *y = *(diag_entry *const *)b;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void rules_flush_diags(rules_ctx *c)
{
    if (c->diag == NULL || c->diags.n == 0)
        return;
    qsort(c->diags.v, c->diags.n, sizeof *c->diags.v, diag_cmp);
    for (size_t i = 0; i < c->diags.n; i++) {
        diag_entry *d = c->diags.v[i];
        if (d->text != NULL)
            fputs(d->text, c->diag);
    }
}

void rules_error_at(rules_ctx *c, int line, int col, size_t off, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror_at(c, line, col, off, len, fmt, ap);
    va_end(ap);
}

void rules_error_tok(rules_ctx *c, const token *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror_at(c, t->line, t->col, t->off, t->len, fmt, ap);
    va_end(ap);
}

/* ---- lexer ---- */

void lex_init(rules_ctx *c)
{
    c->pos = 0;
    c->line = 1;
    c->line_start = 0;
    lex_next(c);
}

bool tok_is_word(const rules_ctx *c, const token *t, const char *word)
{
    size_t n = strlen(word);
    return t->kind == TK_IDENT && t->len == n && memcmp(c->src + t->off, word, n) == 0;
}

const char *tok_describe(const rules_ctx *c, const token *t, char *buf, size_t len)
{
    if (t->kind == TK_EOF) {
        snprintf(buf, len, "end of file");
    } else {
        /* Cut long tokens (a whole string) so messages stay one readable line. */
        int n = t->len > 40 ? 40 : (int)t->len;
        snprintf(buf, len, "'%.*s%s'", n, c->src + t->off, t->len > 40 ? "..." : "");
    }
    return buf;
}

static bool is_ident_start(int ch) { return isalpha(ch) || ch == '_'; }
static bool is_ident_char(int ch) { return isalnum(ch) || ch == '_'; }

static void lex_string(rules_ctx *c, token *t)
{
    const char *s = c->src;
    size_t p = c->pos + 1;
    /* The unescaped value is never longer than the source span. */
    size_t cap = 0;
    while (p + cap < c->len && s[p + cap] != '\n' && s[p + cap] != '"') {
        if (s[p + cap] == '\\' && p + cap + 1 < c->len && s[p + cap + 1] != '\n')
            cap++;
        cap++;
    }
    char *out = arena_alloc(&c->set->mem, cap + 1);
    size_t n = 0;
    for (;;) {
        if (p >= c->len || s[p] == '\n') {
            /* A string never spans lines, so an unterminated one costs one line. */
            rules_error_at(c, t->line, t->col, t->off, 1, "unterminated string");
            t->kind = TK_ERROR;
            c->pos = p;
            return;
        }
        char ch = s[p];
        if (ch == '"')
            break;
        if (ch == '\\') {
            char e = p + 1 < c->len ? s[p + 1] : '\0';
            if (e == '"' || e == '\\') {
                ch = e;
                p++;
            } else {
                int col = t->col + (int)(p - t->off);
                rules_error_at(c, t->line, col, p, 2, "unknown escape sequence in string (only \\\" and \\\\ are allowed)");
            }
        }
        if (out != NULL)
            out[n++] = ch;
        p++;
    }
    if (out != NULL)
        out[n] = '\0';
    c->pos = p + 1;
    t->len = c->pos - t->off;
    t->str = out;
    /* A bad escape was reported; the string stays usable so parsing goes on. */
    t->kind = TK_STRING;
}

static void lex_number(rules_ctx *c, token *t)
{
    const char *s = c->src;
    size_t p = c->pos;
    bool decimal = false;
    while (isdigit((unsigned char)s[p]))
        p++;
    if (s[p] == '.' && isdigit((unsigned char)s[p + 1])) {
        decimal = true;
        p++;
        while (isdigit((unsigned char)s[p]))
            p++;
    }
    if (isalpha((unsigned char)s[p])) {
        /* A number glued to letters is a duration; the unit decides if it is a good one. */
        while (is_ident_char((unsigned char)s[p]))
            p++;
        t->len = p - t->off;
        c->pos = p;
        char text[64], err[UTIL_ERRLEN];
        int n = t->len < sizeof text ? (int)t->len : (int)sizeof text - 1;
        snprintf(text, sizeof text, "%.*s", n, s + t->off);
        /* A bad duration is reported here but stays a duration token, so the
         * parse goes on and later errors in the same rule are reported too. */
        t->kind = TK_DURATION;
        if (decimal)
            rules_error_tok(c, t, "duration '%s' must be a whole number with a unit (e.g. 90m, not 1.5h)", text);
        else if (util_parse_duration(text, &t->ms, err, sizeof err) < 0)
            rules_error_tok(c, t, "%s", err);
        return;
    }
    t->len = p - t->off;
    c->pos = p;
    char text[64];
    if (t->len >= sizeof text) {
        rules_error_tok(c, t, "number is too long");
        t->kind = TK_ERROR;
        return;
    }
    snprintf(text, sizeof text, "%.*s", (int)t->len, s + t->off);
    t->num = strtod(text, NULL);
    t->kind = TK_NUMBER;
}

void lex_next(rules_ctx *c)
{
    const char *s = c->src;
    token *t = &c->tok;
    for (;;) {
        if (c->pos >= c->len)
            break;
        char ch = s[c->pos];
        if (ch == '\n') {
            c->pos++;
            c->line++;
            c->line_start = c->pos;
        } else if (ch == ' ' || ch == '\t' || ch == '\r') {
            c->pos++;
        } else if (ch == '#') {
            while (c->pos < c->len && s[c->pos] != '\n')
                c->pos++;
        } else {
            break;
        }
    }
    memset(t, 0, sizeof *t);
    t->off = c->pos;
    t->line = c->line;
    t->col = (int)(c->pos - c->line_start) + 1;
    t->len = 1;
    if (c->pos >= c->len) {
        t->kind = TK_EOF;
        t->len = 0;
        return;
    }
    unsigned char ch = (unsigned char)s[c->pos];
    if (is_ident_start(ch)) {
        size_t p = c->pos;
        while (is_ident_char((unsigned char)s[p]))
            p++;
        /* Dotted names: session.created, user.deleted, and user.* in `on`. */
        while (s[p] == '.' && (is_ident_start((unsigned char)s[p + 1]) || s[p + 1] == '*')) {
            p++;
            if (s[p] == '*') {
                p++;
                break;
            }
            while (is_ident_char((unsigned char)s[p]))
                p++;
        }
        t->kind = TK_IDENT;
        t->len = p - c->pos;
        c->pos = p;
        return;
    }
    if (isdigit(ch)) {
        lex_number(c, t);
        return;
    }
    if (ch == '"') {
        lex_string(c, t);
        return;
    }
    char next = c->pos + 1 < c->len ? s[c->pos + 1] : '\0';
    c->pos++;
    switch (ch) {
    case '{': t->kind = TK_LBRACE; return;
    case '}': t->kind = TK_RBRACE; return;
    case '(': t->kind = TK_LPAREN; return;
    case ')': t->kind = TK_RPAREN; return;
    case '[': t->kind = TK_LBRACKET; return;
    case ']': t->kind = TK_RBRACKET; return;
    case ',': t->kind = TK_COMMA; return;
    case '<':
    case '>':
        t->kind = ch == '<' ? TK_LT : TK_GT;
        if (next == '=') {
            t->kind = ch == '<' ? TK_LE : TK_GE;
            c->pos++;
            t->len = 2;
        }
        return;
    case '=':
    case '!':
        if (next == '=') {
            t->kind = ch == '=' ? TK_EQ : TK_NE;
            c->pos++;
            t->len = 2;
            return;
        }
        break;
    default:
        break;
    }
    if (ch == '=')
        rules_error_tok(c, t, "unexpected '=' (use '==' to compare)");
    else if (ch == '!')
        rules_error_tok(c, t, "unexpected '!' (use 'not' or '!=')");
    else if (isprint(ch))
        rules_error_tok(c, t, "unexpected character '%c'", ch);
    else
        rules_error_tok(c, t, "unexpected byte 0x%02x", ch);
    t->kind = TK_ERROR;
}
