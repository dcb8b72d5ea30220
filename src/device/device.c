/*
 * device.c: uap-core's three regex lists, loaded from YAML (libyaml's document
 * API: the file is 200 KB, read once), compiled with PCRE2 and its JIT, and a
 * set-associative cache of parsed user agents in front of them.
 *
 * Why load at run time rather than compile the YAML to C at build time: the
 * regexes are data that Debian updates on its own schedule (new browsers, new
 * phones); read from the installed file, an `apt upgrade uap-core` reaches
 * veille at its next start without a rebuild. PCRE2 compiles at run time in
 * either case, so generating C would only save the YAML parse (a few ms).
 *
 * Most of the 1,162 regexes name a product and most user agents lack it, so
 * each regex gets, at load time, a literal every match must contain, and a
 * user agent without it skips the regex (required_literal): half the cost of
 * an uncached parse, the same answers on uap-core's 30,662 test strings.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "device/device.h"

#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util/util.h"

#define CACHE_WAYS 4
#define CACHE_UA_MAX 512     /* longer user agents are parsed every time */
#define JIT_STACK_MAX (512 * 1024)
#define OVECTOR_PAIRS 10     /* $0..$9 */

enum { LIST_BROWSER, LIST_OS, LIST_DEVICE, LIST_COUNT };
/* Per list, the replacement keys of the two values veille keeps: the family
 * ($1 by default) and the major version ($2 by default; none for devices). */
static const struct {
    const char *name;
    const char *family_key;
    const char *major_key;
} lists[LIST_COUNT] = {
    [LIST_BROWSER] = {"user_agent_parsers", "family_replacement", "v1_replacement"},
    [LIST_OS] = {"os_parsers", "os_replacement", "os_v1_replacement"},
    [LIST_DEVICE] = {"device_parsers", "device_replacement", NULL},
};

#define LITERAL_MAX 32
#define LITERAL_MIN 2

typedef struct {
    pcre2_code *code;
    char *family_repl; /* NULL: group 1 */
    char *major_repl;  /* NULL: group 2 */
    /* A string every match contains (required_literal), "" when none is
     * known: a user agent without it is skipped without running the regex. */
    char literal[LITERAL_MAX];
    bool caseless;
} matcher;

typedef struct {
    uint64_t hash;
    uint64_t used; /* tick of the last hit; 0: empty */
    char ua[CACHE_UA_MAX];
    device_info info;
} cache_entry;

struct device_parser {
    matcher *m[LIST_COUNT];
    size_t n[LIST_COUNT];
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    cache_entry *cache;
    size_t n_sets; /* 0: no cache */
    uint64_t tick;
    device_stats st;
};

/* ---- loading ---- */

static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k != NULL && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

static const char *scalar(yaml_node_t *n)
{
    return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (s == NULL)
        return 0;
    *out = strdup(s);
    return *out == NULL ? -1 : 0;
}

/* The end of the group or class that starts at re[i] ('(' or '['), or 0 when
 * the pattern is not understood. Escapes and classes inside are skipped. */
static size_t skip_class(const char *re, size_t i)
{
    size_t j = i + 1;
    if (re[j] == '^')
        j++;
    if (re[j] == ']')
        j++; /* a leading ']' is a member */
    for (; re[j] != '\0'; j++) {
        if (re[j] == '\\' && re[j + 1] != '\0')
            j++;
        else if (re[j] == '[' && re[j + 1] == ':')
            return 0; /* POSIX classes: not worth understanding */
        else if (re[j] == ']')
            return j;
    }
    return 0;
}

static size_t skip_group(const char *re, size_t i)
{
    int depth = 0;
    for (size_t j = i; re[j] != '\0'; j++) {
        if (re[j] == '\\' && re[j + 1] != '\0')
            j++;
        else if (re[j] == '[') {
            if ((j = skip_class(re, j)) == 0)
                return 0;
        } else if (re[j] == '(')
            depth++;
        else if (re[j] == ')' && --depth == 0)
            return j;
    }
    return 0;
}

/* Length of a quantifier at re[i] ({m,n}, ?, *, +, and a lazy or possessive
 * suffix); *optional: it allows zero. 0 when re[i] is none. -1 (as SIZE_MAX)
 * when a '{' is not a quantifier PCRE2 would take. */
static size_t quantifier(const char *re, size_t i, bool *optional)
{
    size_t n = 0;
    *optional = false;
    if (re[i] == '?' || re[i] == '*' || re[i] == '+') {
        *optional = re[i] != '+';
        n = 1;
    } else if (re[i] == '{') {
        size_t j = i + 1;
        if (re[j] < '0' || re[j] > '9')
            return (size_t)-1;
        *optional = re[j] == '0' && (re[j + 1] < '0' || re[j + 1] > '9');
        while ((re[j] >= '0' && re[j] <= '9') || re[j] == ',')
            j++;
        if (re[j] != '}')
            return (size_t)-1;
        n = j - i + 1;
    }
    if (n > 0 && (re[i + n] == '?' || re[i + n] == '+'))
        n++;
    return n;
}

/* True when the group at re[i..end] (end its ')') has no '|' of its own:
 * nested groups and classes are skipped. */
static bool group_has_no_alternation(const char *re, size_t i, size_t end)
{
    for (size_t j = i + 1; j < end; j++) {
        if (re[j] == '\\')
            j++;
        else if (re[j] == '[')
            j = skip_class(re, j);
        else if (re[j] == '(')
            j = skip_group(re, j);
        else if (re[j] == '|')
            return false;
        if (j == 0)
            return false;
    }
    return true;
}

/* re with the parentheses of every plain group that matches exactly once
 * removed, into out (the same size as re at most): "(Firefox)/(\\d+)" gives
 * "Firefox/\\d+", so the literal can reach inside groups. A group stays
 * when it alternates, is quantified, or is not a plain (or (?:) group
 * (lookarounds, names). Removing such parentheses changes no matched text. */
static void flatten_groups(const char *re, char *out, size_t outlen)
{
    size_t n = strlen(re);
    if (n + 1 > outlen) {
        out[0] = '\0';
        return;
    }
    memcpy(out, re, n + 1);
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; out[i] != '\0'; i++) {
            if (out[i] == '\\' && out[i + 1] != '\0') {
                i++;
                continue;
            }
            if (out[i] == '[') {
                size_t e = skip_class(out, i);
                if (e == 0)
                    return;
                i = e;
                continue;
            }
            if (out[i] != '(')
                continue;
            size_t open = out[i + 1] == '?' ? (out[i + 2] == ':' ? 3 : 0) : 1;
            size_t end = skip_group(out, i);
            bool optional = false;
            if (end == 0)
                return;
            if (open == 0 || quantifier(out, end + 1, &optional) != 0 || !group_has_no_alternation(out, i, end))
                continue;
            /* drop ')' then the opening */
            memmove(out + end, out + end + 1, strlen(out + end + 1) + 1);
            memmove(out + i, out + i + open, strlen(out + i + open) + 1);
            changed = true;
            break;
        }
    }
}

/* The longest run of literal bytes outside every group and class of re, which
 * every match must therefore contain, into out ("" when none is safe to
 * claim: an alternation at the top, inline option changes, escapes that are
 * not plain punctuation, non-ASCII bytes). Conservative by design: a wrong
 * literal would make a regex miss, so anything not understood gives "". */
static void required_literal(const char *re, char out[LITERAL_MAX])
{
    char run[LITERAL_MAX];
    size_t rn = 0, best = 0;
    out[0] = '\0';
    for (const char *q = re; (q = strstr(q, "(?")) != NULL; q += 2)
        if (strchr("imsxnJU-^", q[2]) != NULL)
            return;
#define END_RUN()                                          \
    do {                                                   \
        if (rn > best && rn >= LITERAL_MIN) {              \
            memcpy(out, run, rn);                          \
            out[rn] = '\0';                                \
            best = rn;                                     \
        }                                                  \
        rn = 0;                                            \
    } while (0)
    for (size_t i = 0; re[i] != '\0';) {
        unsigned char ch = (unsigned char)re[i];
        size_t next;
        bool literal = false;
        if (ch == '|' || ch >= 0x80) {
            out[0] = '\0';
            return;
        } else if (ch == '\\') {
            unsigned char e = (unsigned char)re[i + 1];
            if (e == '\0' || e >= 0x80) {
                out[0] = '\0';
                return;
            }
            if (isalnum(e) && strchr("dDsSwWbBhHvV", e) == NULL) {
                out[0] = '\0'; /* \x.., \p{..}, \Q, back-references: not understood */
                return;
            }
            literal = !isalnum(e);
            ch = e;
            next = i + 2;
        } else if (ch == '(' || ch == '[') {
            size_t end = ch == '(' ? skip_group(re, i) : skip_class(re, i);
            if (end == 0) {
                out[0] = '\0';
                return;
            }
            next = end + 1;
        } else if (ch == '.' || ch == '^' || ch == '$') {
            next = i + 1;
        } else if (ch == ')' || ch == ']' || ch == '{' || ch == '?' || ch == '*' || ch == '+') {
            out[0] = '\0'; /* out of place: not a pattern this reads */
            return;
        } else {
            literal = true;
            next = i + 1;
        }
        bool optional = false;
        size_t qn = quantifier(re, next, &optional);
        if (qn == (size_t)-1) {
            out[0] = '\0';
            return;
        }
        if (literal && !optional && rn < LITERAL_MAX - 1)
            run[rn++] = (char)ch;
        else if (literal && !optional)
            END_RUN();
        if (!literal || optional || qn > 0)
            END_RUN(); /* after "b+" more b's may follow: the run ends with it */
        i = next + qn;
    }
    END_RUN();
#undef END_RUN
}

static int compile_list(device_parser *p, int list, yaml_document_t *doc, yaml_node_t *seq, const char *path,
                        char *err, size_t errlen)
{
    if (seq == NULL || seq->type != YAML_SEQUENCE_NODE)
        return util_err(err, errlen, "%s: no '%s' list: is this uap-core's regexes.yaml?", path, lists[list].name);
    size_t cap = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    p->m[list] = calloc(cap ? cap : 1, sizeof(matcher));
    if (p->m[list] == NULL)
        return util_err(err, errlen, "%s: out of memory", path);
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
        yaml_node_t *item = yaml_document_get_node(doc, *it);
        yaml_node_t *re_node = map_get(doc, item, "regex");
        const char *re = scalar(re_node);
        unsigned long line = item != NULL ? item->start_mark.line + 1 : 0;
        unsigned long col = item != NULL ? item->start_mark.column + 1 : 0;
        if (re == NULL)
            return util_err(err, errlen, "%s:%lu:%lu: an entry of '%s' has no regex", path, line, col,
                            lists[list].name);
        const char *flag = scalar(map_get(doc, item, "regex_flag"));
        uint32_t opts = flag != NULL && strchr(flag, 'i') != NULL ? PCRE2_CASELESS : 0;
        int code = 0;
        PCRE2_SIZE off = 0;
        matcher *m = &p->m[list][p->n[list]];
        m->code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);
        if (m->code == NULL) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof msg);
            return util_err(err, errlen, "%s:%lu:%lu: PCRE2 refuses this regex at offset %zu: %s", path,
                            re_node->start_mark.line + 1, re_node->start_mark.column + 1, (size_t)off,
                            (const char *)msg);
        }
        p->n[list]++;
        char flat[2048];
        flatten_groups(re, flat, sizeof flat);
        required_literal(flat, m->literal);
        m->caseless = (opts & PCRE2_CASELESS) != 0;
        /* The JIT can refuse a pattern (or be missing on the CPU): the
         * interpreter then runs it, slower but the same answers. */
        if (pcre2_jit_compile(m->code, PCRE2_JIT_COMPLETE) != 0)
            p->st.jit_failed++;
        if (dup_opt(scalar(map_get(doc, item, lists[list].family_key)), &m->family_repl) < 0 ||
            (lists[list].major_key != NULL &&
             dup_opt(scalar(map_get(doc, item, lists[list].major_key)), &m->major_repl) < 0))
            return util_err(err, errlen, "%s: out of memory", path);
    }
    return 0;
}

static int load_yaml(FILE *f, const char *path, yaml_document_t *doc, char *err, size_t errlen)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return util_err(err, errlen, "%s: out of memory", path);
    yaml_parser_set_input_file(&parser, f);
    int ok = yaml_parser_load(&parser, doc);
    int rc = 0;
    if (!ok)
        rc = util_err(err, errlen, "%s:%lu:%lu: YAML error: %s", path, (unsigned long)parser.problem_mark.line + 1,
                      (unsigned long)parser.problem_mark.column + 1,
                      parser.problem != NULL ? parser.problem : "cannot parse");
    else if (yaml_document_get_root_node(doc) == NULL) {
        yaml_document_delete(doc);
        rc = util_err(err, errlen, "%s: empty file", path);
    }
    yaml_parser_delete(&parser);
    return rc;
}

int device_parser_new(const char *path, size_t cache_max, device_parser **out, char *err, size_t errlen)
{
    *out = NULL;
    if (path == NULL)
        path = DEVICE_REGEXES_DEFAULT;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return util_err(err, errlen, "%s: %s (uap-core's regexes: apt-get install uap-core)", path,
                        strerror(errno));
    yaml_document_t doc;
    int rc = load_yaml(f, path, &doc, err, errlen);
    fclose(f);
    if (rc < 0)
        return rc;
    device_parser *p = calloc(1, sizeof *p);
    if (p == NULL) {
        yaml_document_delete(&doc);
        return util_err(err, errlen, "%s: out of memory", path);
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    for (int l = 0; l < LIST_COUNT && rc == 0; l++)
        rc = compile_list(p, l, &doc, map_get(&doc, root, lists[l].name), path, err, errlen);
    yaml_document_delete(&doc);
    if (rc == 0) {
        p->md = pcre2_match_data_create(OVECTOR_PAIRS, NULL);
        p->mctx = pcre2_match_context_create(NULL);
        p->jit_stack = pcre2_jit_stack_create(32 * 1024, JIT_STACK_MAX, NULL);
        if (p->md == NULL || p->mctx == NULL || p->jit_stack == NULL)
            rc = util_err(err, errlen, "%s: out of memory", path);
    }
    if (rc == 0) {
        /* a hostile user agent must not buy unbounded backtracking */
        pcre2_set_match_limit(p->mctx, DEVICE_MATCH_LIMIT);
        pcre2_set_depth_limit(p->mctx, DEVICE_MATCH_LIMIT / 10);
        pcre2_jit_stack_assign(p->mctx, NULL, p->jit_stack);
        p->n_sets = (cache_max + CACHE_WAYS - 1) / CACHE_WAYS;
        if (p->n_sets > 0 && (p->cache = calloc(p->n_sets * CACHE_WAYS, sizeof *p->cache)) == NULL)
            rc = util_err(err, errlen, "%s: out of memory for a cache of %zu user agents", path, cache_max);
    }
    if (rc < 0) {
        device_parser_free(p);
        return rc;
    }
    p->st.browser_regexes = p->n[LIST_BROWSER];
    p->st.os_regexes = p->n[LIST_OS];
    p->st.device_regexes = p->n[LIST_DEVICE];
    *out = p;
    return 0;
}

void device_parser_free(device_parser *p)
{
    if (p == NULL)
        return;
    for (int l = 0; l < LIST_COUNT; l++) {
        for (size_t i = 0; i < p->n[l]; i++) {
            pcre2_code_free(p->m[l][i].code);
            free(p->m[l][i].family_repl);
            free(p->m[l][i].major_repl);
        }
        free(p->m[l]);
    }
    pcre2_match_data_free(p->md);
    pcre2_match_context_free(p->mctx);
    pcre2_jit_stack_free(p->jit_stack);
    free(p->cache);
    free(p);
}

/* ---- matching ---- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
                                   : s[0] >= 0xF0 && s[0] <= 0xF4                                 ? 4
                                                                                                  : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) || (s[0] == 0xF0 && s[1] < 0x90) ||
        (s[0] == 0xF4 && s[1] > 0x8F))
        return 0; /* overlong, surrogate, above U+10FFFF */
    return len;
}

/* Copy src[0..n) into out trimmed of surrounding white space, cut on a UTF-8
 * boundary to fit. Trap: the user agent is valid UTF-8 (it came out of JSON),
 * but the regexes run on bytes, so a group can end inside a character; a
 * byte of a broken sequence becomes '?', or the alert's JSON could not hold
 * the value. */
static void put_trimmed(char *out, size_t outlen, const char *src, size_t n)
{
    while (n > 0 && isspace((unsigned char)src[0])) {
        src++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)src[n - 1]))
        n--;
    util_copy_utf8(out, outlen, src, n);
    unsigned char *u = (unsigned char *)out;
    for (size_t i = 0, len = strlen(out); i < len;) {
        size_t k = utf8_len(u + i, len - i);
        if (k == 0) {
            u[i++] = '?';
            continue;
        }
        i += k;
    }
}

/* Group g of the last match as (start, length); length 0 when unset. */
static size_t group(const device_parser *p, int rc, unsigned g, const char *ua, const char **start)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
    *start = ua;
    if (g >= (unsigned)rc || g >= OVECTOR_PAIRS || ov[2 * g] == PCRE2_UNSET)
        return 0;
    *start = ua + ov[2 * g];
    return ov[2 * g + 1] - ov[2 * g];
}

/* The value of one slot: the replacement with $1..$9 substituted, else group
 * `dflt` of the match; trimmed. */
static void slot(const device_parser *p, int rc, const char *ua, const char *repl, unsigned dflt, char *out,
                 size_t outlen)
{
    const char *s;
    if (repl == NULL) {
        size_t n = group(p, rc, dflt, ua, &s);
        put_trimmed(out, outlen, s, n);
        return;
    }
    char buf[2 * DEVICE_FAMILY_MAX];
    size_t n = 0;
    for (const char *r = repl; *r && n < sizeof buf - 1; r++) {
        if (r[0] == '$' && r[1] >= '1' && r[1] <= '9') {
            size_t gl = group(p, rc, (unsigned)(r[1] - '0'), ua, &s);
            if (gl > sizeof buf - 1 - n)
                gl = sizeof buf - 1 - n;
            memcpy(buf + n, s, gl);
            n += gl;
            r++;
        } else {
            buf[n++] = *r;
        }
    }
    put_trimmed(out, outlen, buf, n);
}

/* The first matcher of list l that matches ua; rc of pcre2_match, or -1. */
static int first_match(device_parser *p, int l, const char *ua, size_t len, const matcher **hit)
{
    for (size_t i = 0; i < p->n[l]; i++) {
        const matcher *m = &p->m[l][i];
        /* most regexes name a product; most user agents lack it: skip those */
        if (m->literal[0] != '\0' && (m->caseless ? strcasestr(ua, m->literal) : strstr(ua, m->literal)) == NULL)
            continue;
        int rc = pcre2_match(p->m[l][i].code, (PCRE2_SPTR)ua, len, 0, 0, p->md, p->mctx);
        if (rc > 0) {
            *hit = &p->m[l][i];
            return rc;
        }
        if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT)
            p->st.limit_hits++;
    }
    return -1;
}

static void parse_uncached(device_parser *p, const char *ua, size_t len, device_info *d)
{
    char *family[LIST_COUNT] = {d->browser, d->os, d->device};
    char *major[LIST_COUNT] = {d->browser_major, d->os_major, NULL};
    for (int l = 0; l < LIST_COUNT; l++) {
        const matcher *m = NULL;
        int rc = first_match(p, l, ua, len, &m);
        if (rc > 0) {
            slot(p, rc, ua, m->family_repl, 1, family[l], DEVICE_FAMILY_MAX);
            if (major[l] != NULL)
                slot(p, rc, ua, m->major_repl, 2, major[l], DEVICE_VERSION_MAX);
        }
        if (family[l][0] == '\0')
            snprintf(family[l], DEVICE_FAMILY_MAX, "Other");
    }
}

static uint64_t hash_ua(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

void device_parse(device_parser *p, const char *ua, device_info *out)
{
    memset(out, 0, sizeof *out);
    size_t len = strlen(ua);
    if (len == 0)
        return;
    p->st.parses++;
    if (p->n_sets == 0 || len >= CACHE_UA_MAX) {
        parse_uncached(p, ua, len, out);
        return;
    }
    uint64_t h = hash_ua(ua, len);
    cache_entry *set = &p->cache[(h >> 8) % p->n_sets], *victim = &set[0];
    p->tick++;
    for (int w = 0; w < CACHE_WAYS; w++) {
        cache_entry *e = &set[w];
        if (e->used != 0 && e->hash == h && strcmp(e->ua, ua) == 0) {
            e->used = p->tick;
            *out = e->info;
            p->st.cache_hits++;
            return;
        }
        if (e->used < victim->used)
            victim = e;
    }
    parse_uncached(p, ua, len, out);
    victim->hash = h;
    victim->used = p->tick;
    memcpy(victim->ua, ua, len + 1);
    victim->info = *out;
}

void device_key(const device_info *d, char *buf, size_t len)
{
    if (len == 0)
        return;
    buf[0] = '\0';
    if (d->browser[0] == '\0')
        return;
    char full[3 * DEVICE_FAMILY_MAX + 8];
    int n = snprintf(full, sizeof full, "%s / %s / %s", d->browser, d->os, d->device);
    util_copy_utf8(buf, len < DEVICE_KEY_MAX ? len : DEVICE_KEY_MAX, full,
                   n < 0 ? 0 : (size_t)n < sizeof full ? (size_t)n : sizeof full - 1);
}

void device_parser_stats(const device_parser *p, device_stats *out)
{
    *out = p->st;
}
