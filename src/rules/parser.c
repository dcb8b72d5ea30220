/*
 * parser.c: recursive descent from tokens to rules_rule / rules_list with
 * unresolved names, plus the load entry points. A syntax error abandons the
 * current rule or list and skips to the next `rule` / `list` keyword; errors
 * that leave the syntax intact (unknown severity, statement twice) do not, so
 * the rest of that rule is still checked.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rules/internal.h"

static const char *const severity_names[] = {"info", "low", "medium", "high", "critical"};

const char *rules_severity_name(rules_severity s)
{
    return (unsigned)s < 5 ? severity_names[s] : "?";
}

/* A syntax error: report it and make every caller unwind. */
#define SYNTAX(c, t, ...)                 \
    do {                                  \
        rules_error_tok((c), (t), __VA_ARGS__); \
        return NULL;                      \
    } while (0)

static bool at_word(rules_ctx *c, const char *w) { return tok_is_word(c, &c->tok, w); }

static bool is_reserved(rules_ctx *c, const token *t)
{
    static const char *const words[] = {"and", "or", "not", "in", "rule", "list", NULL};
    for (int i = 0; words[i]; i++)
        if (tok_is_word(c, t, words[i]))
            return true;
    return false;
}

/* "expected X, got Y" — unless the lexer already reported the token. */
static void *unexpected(rules_ctx *c, const char *what)
{
    if (c->tok.kind != TK_ERROR) {
        char buf[64];
        rules_error_tok(c, &c->tok, "expected %s, got %s", what, tok_describe(c, &c->tok, buf, sizeof buf));
    }
    return NULL;
}

static token *save_tok(rules_ctx *c)
{
    token *t = arena_alloc(&c->set->mem, sizeof *t);
    if (t != NULL)
        *t = c->tok;
    return t;
}

static rules_expr *new_node(rules_ctx *c, rules_expr_kind kind, const token *at)
{
    rules_expr *e = arena_alloc(&c->set->mem, sizeof *e);
    if (e == NULL)
        return NULL;
    e->kind = kind;
    e->line = at->line;
    e->col = at->col;
    e->off = at->off;
    e->len = at->len;
    e->height = 1;
    return e;
}

/* Attach children; checks the height bound so no later pass recurses deeply. */
static rules_expr *set_children(rules_ctx *c, rules_expr *e, rules_expr **kids, size_t n)
{
    if (e == NULL)
        return NULL;
    if (n > 0) {
        e->args = arena_alloc(&c->set->mem, n * sizeof *kids);
        if (e->args == NULL)
            return NULL;
        memcpy(e->args, kids, n * sizeof *kids);
    }
    e->nargs = n;
    for (size_t i = 0; i < n; i++)
        if (kids[i]->height + 1 > e->height)
            e->height = kids[i]->height + 1;
    if (e->height > RULES_MAX_NESTING) {
        token t = {.off = e->off, .len = e->len, .line = e->line, .col = e->col};
        SYNTAX(c, &t, "expression nested too deeply (more than %d levels)", RULES_MAX_NESTING);
    }
    return e;
}

static rules_expr *parse_or(rules_ctx *c);

static bool enter(rules_ctx *c)
{
    if (++c->depth > RULES_MAX_NESTING) {
        rules_error_tok(c, &c->tok, "expression nested too deeply (more than %d levels)", RULES_MAX_NESTING);
        return false;
    }
    return true;
}

/* '[' literal, ... ']' — strings or numbers; the checker wants one type. */
static rules_expr *parse_list_literal(rules_ctx *c)
{
    rules_expr *e = new_node(c, RULES_E_LISTLIT, &c->tok);
    lex_next(c);
    ptrvec items = {0};
    while (c->tok.kind != TK_RBRACKET) {
        rules_expr *it;
        if (c->tok.kind == TK_STRING) {
            it = new_node(c, RULES_E_STRING, &c->tok);
            if (it)
                it->str = c->tok.str;
        } else if (c->tok.kind == TK_NUMBER) {
            it = new_node(c, RULES_E_NUMBER, &c->tok);
            if (it)
                it->num = c->tok.num;
        } else {
            return unexpected(c, items.n ? "a string, a number or ']'" : "a string or a number");
        }
        if (it == NULL || ptrvec_push(&c->set->mem, &items, it) < 0)
            return NULL;
        lex_next(c);
        if (c->tok.kind == TK_COMMA)
            lex_next(c);
        else if (c->tok.kind != TK_RBRACKET)
            return unexpected(c, "',' or ']'");
    }
    lex_next(c);
    return set_children(c, e, (rules_expr **)items.v, items.n);
}

static rules_expr *parse_primary(rules_ctx *c)
{
    token t = c->tok;
    rules_expr *e = NULL;
    switch (t.kind) {
    case TK_NUMBER:
        if ((e = new_node(c, RULES_E_NUMBER, &t)))
            e->num = t.num;
        lex_next(c);
        return e;
    case TK_DURATION:
        if ((e = new_node(c, RULES_E_DURATION, &t)))
            e->ms = t.ms;
        lex_next(c);
        return e;
    case TK_STRING:
        if ((e = new_node(c, RULES_E_STRING, &t)))
            e->str = t.str;
        lex_next(c);
        return e;
    case TK_LPAREN: {
        if (!enter(c))
            return NULL;
        lex_next(c);
        e = parse_or(c);
        if (e == NULL)
            return NULL;
        if (c->tok.kind != TK_RPAREN)
            return unexpected(c, "')'");
        lex_next(c);
        c->depth--;
        return e;
    }
    case TK_LBRACKET:
        return parse_list_literal(c);
    case TK_IDENT:
        break;
    default:
        return unexpected(c, "an expression");
    }
    if (is_reserved(c, &t))
        return unexpected(c, "an expression");
    if (tok_is_word(c, &t, "true") || tok_is_word(c, &t, "false")) {
        if ((e = new_node(c, RULES_E_BOOL, &t)))
            e->b = tok_is_word(c, &t, "true");
        lex_next(c);
        return e;
    }
    char *name = arena_strndup(&c->set->mem, c->src + t.off, t.len);
    lex_next(c);
    if (c->tok.kind != TK_LPAREN) {
        if ((e = new_node(c, RULES_E_NAME, &t)))
            e->str = name;
        return e;
    }
    /* A call: arguments are parsed as expressions, their kinds checked later. */
    if (!enter(c))
        return NULL;
    e = new_node(c, RULES_E_CALL, &t);
    if (e == NULL)
        return NULL;
    e->str = name;
    lex_next(c);
    ptrvec args = {0};
    while (c->tok.kind != TK_RPAREN) {
        rules_expr *a = parse_or(c);
        if (a == NULL || ptrvec_push(&c->set->mem, &args, a) < 0)
            return NULL;
        if (c->tok.kind == TK_COMMA)
            lex_next(c);
        else if (c->tok.kind != TK_RPAREN)
            return unexpected(c, "',' or ')'");
    }
    lex_next(c);
    c->depth--;
    return set_children(c, e, (rules_expr **)args.v, args.n);
}

static bool cmp_op(tok_kind k, rules_op *op)
{
    switch (k) {
    case TK_EQ: *op = RULES_OP_EQ; return true;
    case TK_NE: *op = RULES_OP_NE; return true;
    case TK_LT: *op = RULES_OP_LT; return true;
    case TK_LE: *op = RULES_OP_LE; return true;
    case TK_GT: *op = RULES_OP_GT; return true;
    case TK_GE: *op = RULES_OP_GE; return true;
    default: return false;
    }
}

static rules_expr *parse_cmp(rules_ctx *c)
{
    rules_expr *l = parse_primary(c);
    if (l == NULL)
        return NULL;
    rules_op op = RULES_OP_EQ;
    bool is_in = at_word(c, "in");
    if (!is_in && !cmp_op(c->tok.kind, &op))
        return l;
    token optok = c->tok;
    lex_next(c);
    rules_expr *r = parse_primary(c);
    if (r == NULL)
        return NULL;
    rules_expr *e = new_node(c, is_in ? RULES_E_IN : RULES_E_CMP, &optok);
    if (e == NULL)
        return NULL;
    e->op = op;
    rules_expr *kids[2] = {l, r};
    if (set_children(c, e, kids, 2) == NULL)
        return NULL;
    rules_op dummy;
    if (cmp_op(c->tok.kind, &dummy) || at_word(c, "in"))
        SYNTAX(c, &c->tok, "comparisons cannot be chained; combine them with 'and'");
    return e;
}

static rules_expr *parse_not(rules_ctx *c)
{
    if (!at_word(c, "not"))
        return parse_cmp(c);
    token t = c->tok;
    if (!enter(c))
        return NULL;
    lex_next(c);
    rules_expr *x = parse_not(c);
    if (x == NULL)
        return NULL;
    c->depth--;
    rules_expr *e = new_node(c, RULES_E_NOT, &t);
    return set_children(c, e, &x, 1);
}

static rules_expr *parse_binary(rules_ctx *c, const char *word, rules_expr_kind kind,
                                rules_expr *(*sub)(rules_ctx *))
{
    rules_expr *l = sub(c);
    while (l != NULL && at_word(c, word)) {
        token t = c->tok;
        lex_next(c);
        rules_expr *r = sub(c);
        if (r == NULL)
            return NULL;
        rules_expr *kids[2] = {l, r};
        l = set_children(c, new_node(c, kind, &t), kids, 2);
    }
    return l;
}

static rules_expr *parse_and(rules_ctx *c) { return parse_binary(c, "and", RULES_E_AND, parse_not); }
static rules_expr *parse_or(rules_ctx *c) { return parse_binary(c, "or", RULES_E_OR, parse_and); }

/* ---- statements ---- */

/* Skip to the next `rule` or `list` keyword (or the end). */
static void sync(rules_ctx *c)
{
    while (c->tok.kind != TK_EOF && !at_word(c, "rule") && !at_word(c, "list"))
        lex_next(c);
}

static const char *const statements[] = {"description", "severity", "on",      "by",
                                         "when",        "suppress", "tags",    "enabled", NULL};
#define N_STATEMENTS 8

/* STRING (',' STRING)* into *out. NULL on a syntax error. */
static void *parse_strings(rules_ctx *c, ptrvec *out)
{
    for (;;) {
        if (c->tok.kind != TK_STRING)
            return unexpected(c, "a string");
        if (ptrvec_push(&c->set->mem, out, (void *)c->tok.str) < 0)
            return NULL;
        lex_next(c);
        if (c->tok.kind != TK_COMMA)
            return out;
        lex_next(c);
    }
}

/* One statement; returns NULL on a syntax error (rule abandoned). */
static void *parse_statement(rules_ctx *c, rule_build *rb, token seen[])
{
    int which = -1;
    for (int i = 0; statements[i]; i++)
        if (at_word(c, statements[i]))
            which = i;
    if (which < 0) {
        if (c->tok.kind != TK_IDENT)
            return unexpected(c, "a statement or '}'");
        char buf[64];
        SYNTAX(c, &c->tok,
               "unknown statement %s (expected description, severity, on, by, when, suppress, tags or enabled)",
               tok_describe(c, &c->tok, buf, sizeof buf));
    }
    token kw = c->tok;
    bool dup = seen[which].len != 0;
    if (dup)
        rules_error_tok(c, &kw, "'%s' given twice in rule '%s' (first at line %d)", statements[which], rb->r.name,
                        seen[which].line);
    else
        seen[which] = kw;
    lex_next(c);
    rules_rule scratch; /* a duplicate is parsed into scratch and dropped */
    rules_rule *r = dup ? &scratch : &rb->r;
    switch (which) {
    case 0: /* description */
        if (c->tok.kind != TK_STRING)
            return unexpected(c, "a string");
        r->description = c->tok.str;
        lex_next(c);
        break;
    case 1: { /* severity */
        if (c->tok.kind != TK_IDENT || is_reserved(c, &c->tok))
            return unexpected(c, "a severity (info, low, medium, high or critical)");
        int s = -1;
        for (int i = 0; i < 5; i++)
            if (at_word(c, severity_names[i]))
                s = i;
        if (s < 0) {
            char buf[64];
            rules_error_tok(c, &c->tok, "unknown severity %s (use info, low, medium, high or critical)",
                            tok_describe(c, &c->tok, buf, sizeof buf));
        } else {
            r->severity = (rules_severity)s;
        }
        if (!dup)
            rb->has_severity = true; /* reported here; not "missing" as well */
        lex_next(c);
        break;
    }
    case 2: { /* on */
        ptrvec scratch_names = {0};
        ptrvec *names = dup ? &scratch_names : &rb->on_names;
        for (;;) {
            if (c->tok.kind != TK_IDENT || is_reserved(c, &c->tok))
                return unexpected(c, "an event type such as session.created");
            token *t = save_tok(c);
            if (t == NULL || ptrvec_push(&c->set->mem, names, t) < 0)
                return NULL;
            lex_next(c);
            if (c->tok.kind != TK_COMMA)
                break;
            lex_next(c);
        }
        if (!dup)
            rb->has_on = true;
        break;
    }
    case 3: /* by */
        if (at_word(c, "user")) {
            r->by = RULES_BY_USER;
        } else if (at_word(c, "ip")) {
            r->by = RULES_BY_IP;
        } else if (c->tok.kind == TK_IDENT && !is_reserved(c, &c->tok)) {
            char buf[64];
            rules_error_tok(c, &c->tok, "unknown window key %s (use user or ip)",
                            tok_describe(c, &c->tok, buf, sizeof buf));
        } else {
            return unexpected(c, "user or ip");
        }
        lex_next(c);
        break;
    case 4: { /* when */
        c->depth = 0;
        rules_expr *e = parse_or(c);
        if (e == NULL)
            return NULL;
        if (!dup) {
            rb->when_expr = e;
            rb->has_when = true;
        }
        break;
    }
    case 5: /* suppress */
        if (c->tok.kind == TK_NUMBER) {
            rules_error_tok(c, &c->tok, "duration '%.*s' needs a unit (ms, s, m, h, d or w)", (int)c->tok.len,
                            c->src + c->tok.off);
        } else if (c->tok.kind == TK_DURATION) {
            r->suppress_ms = c->tok.ms;
        } else {
            return unexpected(c, "a duration such as 30m");
        }
        lex_next(c);
        break;
    case 6: { /* tags */
        ptrvec tags = {0};
        if (parse_strings(c, &tags) == NULL)
            return NULL;
        r->tags = (const char **)tags.v;
        r->n_tags = tags.n;
        break;
    }
    case 7: /* enabled true|false: a rule kept in the file but not run */
        if (at_word(c, "true") || at_word(c, "false"))
            r->disabled = at_word(c, "false");
        else
            return unexpected(c, "true or false");
        lex_next(c);
        break;
    }
    return rb;
}

/* After `rule` / `list`: the name must be a plain, unreserved identifier. On
 * anything else, report it and skip to the next declaration. */
static bool expect_declared_name(rules_ctx *c, const char *what)
{
    if (c->tok.kind == TK_IDENT && !is_reserved(c, &c->tok) && memchr(c->src + c->tok.off, '.', c->tok.len) == NULL)
        return true;
    unexpected(c, what);
    sync(c);
    return false;
}

static void parse_rule(rules_ctx *c)
{
    size_t start = c->tok.off; /* of `rule`: the rule as written starts here */
    lex_next(c); /* rule */
    if (!expect_declared_name(c, "a rule name"))
        return;
    rule_build *rb = arena_alloc(&c->set->mem, sizeof *rb);
    if (rb == NULL)
        return;
    rb->r.name = arena_strndup(&c->set->mem, c->src + c->tok.off, c->tok.len);
    rb->r.line = c->tok.line;
    rb->r.col = c->tok.col;
    rb->name_off = c->tok.off;
    rb->name_len = c->tok.len;
    lex_next(c);
    if (c->tok.kind != TK_LBRACE) {
        unexpected(c, "'{'");
        sync(c);
        return;
    }
    token open = c->tok;
    lex_next(c);
    token seen[N_STATEMENTS];
    memset(seen, 0, sizeof seen);
    for (;;) {
        if (c->tok.kind == TK_RBRACE) {
            rb->r.source = arena_strndup(&c->set->mem, c->src + start, c->tok.off + c->tok.len - start);
            lex_next(c);
            break;
        }
        if (c->tok.kind == TK_EOF || at_word(c, "rule") || at_word(c, "list")) {
            /* Report at the brace that was never closed; what follows is parsed normally. */
            rules_error_tok(c, &open, "unterminated block: rule '%s' has no closing '}'", rb->r.name);
            break;
        }
        if (parse_statement(c, rb, seen) == NULL) {
            sync(c);
            return;
        }
    }
    if (c->set->mem.oom)
        return;
    ptrvec_push(&c->set->mem, &c->set->rules, rb);
}

static void parse_list(rules_ctx *c)
{
    lex_next(c); /* list */
    if (!expect_declared_name(c, "a list name"))
        return;
    list_build *lb = arena_alloc(&c->set->mem, sizeof *lb);
    if (lb == NULL)
        return;
    rules_list *l = &lb->l;
    ptrvec *entries = &lb->entries;
    l->name = arena_strndup(&c->set->mem, c->src + c->tok.off, c->tok.len);
    l->line = c->tok.line;
    l->col = c->tok.col;
    lb->name_off = c->tok.off;
    lb->name_len = c->tok.len;
    lex_next(c);
    if (c->tok.kind != TK_LBRACE) {
        unexpected(c, "'{'");
        sync(c);
        return;
    }
    token open = c->tok;
    lex_next(c);
    while (c->tok.kind != TK_RBRACE) {
        if (c->tok.kind == TK_EOF || at_word(c, "rule") || at_word(c, "list")) {
            rules_error_tok(c, &open, "unterminated block: list '%s' has no closing '}'", l->name);
            break;
        }
        /* networks are strings; an ASN is a bare word such as AS14061 (checked later) */
        if (c->tok.kind != TK_STRING && c->tok.kind != TK_IDENT) {
            unexpected(c, entries->n ? "a string, an ASN or '}'"
                                     : "a string such as \"192.0.2.0/24\" or an ASN such as AS14061");
            sync(c);
            return;
        }
        token *t = save_tok(c);
        if (t == NULL || ptrvec_push(&c->set->mem, entries, t) < 0)
            return;
        lex_next(c);
        if (c->tok.kind == TK_COMMA) {
            lex_next(c);
        } else if (c->tok.kind != TK_RBRACE && c->tok.kind != TK_EOF && !at_word(c, "rule") &&
                   !at_word(c, "list")) {
            unexpected(c, "',' or '}'");
            sync(c);
            return;
        }
    }
    if (c->tok.kind == TK_RBRACE)
        lex_next(c);
    ptrvec_push(&c->set->mem, &c->set->lists, lb);
}

void rules_parse(rules_ctx *c)
{
    lex_init(c);
    while (c->tok.kind != TK_EOF && !c->set->mem.oom) {
        if (at_word(c, "rule")) {
            parse_rule(c);
        } else if (at_word(c, "list")) {
            parse_list(c);
        } else {
            unexpected(c, "'rule' or 'list'");
            lex_next(c);
            sync(c);
        }
    }
}

/* ---- entry points ---- */

static int load_buffer(const char *name, const char *src, size_t len, rules_set **out, FILE *diag, bool brief)
{
    *out = NULL;
    if (len > RULES_MAX_FILE) {
        if (diag)
            fprintf(diag, "%s: error: file is too large (%zu bytes, limit %d)\n", name, len, RULES_MAX_FILE);
        return -1;
    }
    rules_set *set = calloc(1, sizeof *set);
    if (set == NULL)
        goto oom;
    rules_ctx c = {.name = name, .len = len, .diag = diag, .diag_brief = brief, .set = set};
    /* NUL-terminated copy: the lexer may peek one byte past a token. */
    char *copy = arena_strndup(&set->mem, len ? src : "", len);
    if (copy == NULL)
        goto oom;
    c.src = copy;
    rules_parse(&c);
    if (!set->mem.oom)
        rules_check(&c);
    if (!set->mem.oom)
        rules_flush_diags(&c);
    if (set->mem.oom)
        goto oom;
    if (c.errors > 0) {
        rules_free(set);
        return c.errors;
    }
    *out = set;
    return 0;
oom:
    rules_free(set);
    if (diag)
        fprintf(diag, "%s: error: out of memory\n", name);
    return -1;
}

int rules_load_buffer(const char *name, const char *src, size_t len, rules_set **out, FILE *diag)
{
    return load_buffer(name, src, len, out, diag, false);
}

static int load_file(const char *path, rules_set **out, FILE *diag, bool brief)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (diag)
            fprintf(diag, "%s: error: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    /* Read one byte past the limit to tell "exactly at" from "over". */
    char *buf = malloc(RULES_MAX_FILE + 1);
    if (buf == NULL) {
        fclose(f);
        if (diag)
            fprintf(diag, "%s: error: out of memory\n", path);
        return -1;
    }
    size_t n = fread(buf, 1, RULES_MAX_FILE + 1, f);
    bool bad = ferror(f);
    int saved = errno;
    fclose(f);
    if (bad) {
        free(buf);
        if (diag)
            fprintf(diag, "%s: error: cannot read: %s\n", path, strerror(saved));
        return -1;
    }
    int rc;
    if (n > RULES_MAX_FILE) {
        if (diag)
            fprintf(diag, "%s: error: file is too large (limit %d bytes)\n", path, RULES_MAX_FILE);
        rc = -1;
    } else {
        rc = load_buffer(path, buf, n, out, diag, brief);
    }
    free(buf);
    return rc;
}

int rules_load_file(const char *path, rules_set **out, FILE *diag)
{
    return load_file(path, out, diag, false);
}

int rules_load_file_brief(const char *path, rules_set **out, FILE *diag)
{
    return load_file(path, out, diag, true);
}

int rules_check_file(const char *path, FILE *diag, size_t *n_rules, size_t *n_lists)
{
    rules_set *set;
    int rc = rules_load_file(path, &set, diag);
    if (rc == 0) {
        if (n_rules)
            *n_rules = rules_count(set);
        if (n_lists)
            *n_lists = rules_list_count(set);
    }
    rules_free(set);
    return rc;
}

void rules_free(rules_set *set)
{
    if (set == NULL)
        return;
    arena_free(&set->mem);
    free(set);
}

size_t rules_count(const rules_set *set) { return set->rules.n; }
const rules_rule *rules_rule_at(const rules_set *set, size_t i)
{
    return i < set->rules.n ? &((rule_build *)set->rules.v[i])->r : NULL;
}
int rules_disable(rules_set *set, const char *name)
{
    for (size_t i = 0; i < set->rules.n; i++) {
        rules_rule *r = &((rule_build *)set->rules.v[i])->r;
        if (strcmp(r->name, name) == 0) {
            r->disabled = true;
            return 0;
        }
    }
    return -1;
}
size_t rules_list_count(const rules_set *set) { return set->lists.n; }
const rules_list *rules_list_at(const rules_set *set, size_t i)
{
    return i < set->lists.n ? set->lists.v[i] : NULL;
}
const rules_list *rules_list_find(const rules_set *set, const char *name)
{
    for (size_t i = 0; i < set->lists.n; i++)
        if (strcmp(((rules_list *)set->lists.v[i])->name, name) == 0)
            return set->lists.v[i];
    return NULL;
}
