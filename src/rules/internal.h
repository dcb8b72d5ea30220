/*
 * internal.h: what the rules lexer, parser and checker share: the arena that
 * owns a set, tokens, the diagnostic printer, and the set under construction.
 */
#ifndef VEILLE_RULES_INTERNAL_H
#define VEILLE_RULES_INTERNAL_H

#include "rules/rules.h"

/* ---- arena: everything a set owns, freed at once ---- */
typedef struct arena_block arena_block;
typedef struct {
    arena_block *head;
    bool oom; /* an allocation failed: the load gives up with -1 */
} arena;

void *arena_alloc(arena *a, size_t n); /* zeroed; NULL on OOM (sets a->oom) */
char *arena_strndup(arena *a, const char *s, size_t n);
void arena_free(arena *a);

/* A growable array of pointers living in the arena (the old copy is wasted,
 * which at most doubles the space). */
typedef struct {
    void **v;
    size_t n, cap;
} ptrvec;
int ptrvec_push(arena *a, ptrvec *pv, void *p);

/* ---- tokens ---- */
typedef enum {
    TK_EOF,
    TK_ERROR, /* the lexer already reported it */
    TK_IDENT, /* also keywords and dotted names such as session.created, user.* */
    TK_STRING,
    TK_NUMBER,
    TK_DURATION,
    TK_LBRACE, TK_RBRACE, TK_LPAREN, TK_RPAREN, TK_LBRACKET, TK_RBRACKET, TK_COMMA,
    TK_EQ, TK_NE, TK_LT, TK_LE, TK_GT, TK_GE,
} tok_kind;

typedef struct {
    tok_kind kind;
    size_t off, len; /* span in the source */
    int line, col;
    const char *str; /* STRING: unescaped value (arena) */
    double num;      /* NUMBER */
    int64_t ms;      /* DURATION */
} token;

/* ---- the load in progress ---- */
struct rules_set {
    arena mem;
    ptrvec rules; /* rules_rule * */
    ptrvec lists; /* rules_list * */
};

typedef struct {
    const char *name; /* file name for diagnostics */
    const char *src;  /* NUL-terminated copy */
    size_t len;
    size_t pos; /* lexer position */
    int line;
    size_t line_start;
    FILE *diag;
    bool diag_brief; /* one line per diagnostic: no source line, no caret */
    int errors;
    ptrvec diags; /* pending diagnostics, printed sorted by offset */
    rules_set *set;
    token tok;           /* current token */
    int depth;           /* parser recursion, bounded by RULES_MAX_NESTING */
} rules_ctx;

/* Report an error at (line, col) spanning len bytes (>= 1 caret). */
void rules_error_at(rules_ctx *c, int line, int col, size_t off, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void rules_error_tok(rules_ctx *c, const token *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Print the collected diagnostics to c->diag in file order. */
void rules_flush_diags(rules_ctx *c);

void lex_init(rules_ctx *c);
void lex_next(rules_ctx *c); /* advances c->tok */
bool tok_is_word(const rules_ctx *c, const token *t, const char *word);
/* Token text for messages: "'foo'", "end of file", ... into buf. */
const char *tok_describe(const rules_ctx *c, const token *t, char *buf, size_t len);

/* Parse everything into c->set (names unresolved); then resolve and type. */
void rules_parse(rules_ctx *c);
void rules_check(rules_ctx *c);

/* Per-rule extras the checker needs: where each statement was, names as written. */
typedef struct {
    rules_rule r;
    size_t name_off, name_len;
    bool has_severity, has_on, has_when;
    ptrvec on_names; /* token * of each `on` type */
    rules_expr *when_expr;
} rule_build;

/* A list as parsed: entries as written (token *), checked into nets later. */
typedef struct {
    rules_list l;
    size_t name_off, name_len;
    ptrvec entries;
} list_build;

#endif
