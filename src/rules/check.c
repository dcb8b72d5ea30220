/*
 * check.c: the second pass. Resolves names (fields, functions, event types,
 * lists), checks argument kinds and types, parses list entries into networks;
 * then the runtime helpers that need no evaluator: CIDR matching and the
 * normal-form dump used by the golden tests.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rules/internal.h"

static const char *const field_names[RULES_F_COUNT] = {
    "type", "user_id", "session_id", "ip", "country", "city", "browser", "device", "is_mobile",
    "user_agent", "user.deleted", "user.age", "user.email", "user.banned", "user",
    "ua.browser", "ua.browser_major", "ua.os", "ua.os_major", "ua.device",
    "device", /* RULES_F_DEVICE_KEY: never found by name, see arg_field */
    "asn", "as_name", "ip.country", "ip.anonymous_proxy", "ip.satellite",
    "ip.anycast", "ip.drop", "ip.private",
    "user.locked", "user.was_locked", "user.was_banned",
    "instance",
};
static const rules_type field_types[RULES_F_COUNT] = {
    RULES_T_STRING, RULES_T_STRING, RULES_T_STRING, RULES_T_STRING, RULES_T_STRING,
    RULES_T_STRING, RULES_T_STRING, RULES_T_STRING, RULES_T_BOOL, RULES_T_STRING,
    RULES_T_BOOL, RULES_T_DURATION, RULES_T_STRING, RULES_T_BOOL, RULES_T_STRING,
    RULES_T_STRING, RULES_T_NUMBER, RULES_T_STRING, RULES_T_NUMBER, RULES_T_STRING,
    RULES_T_STRING,
    RULES_T_NUMBER, RULES_T_STRING, RULES_T_STRING, RULES_T_BOOL, RULES_T_BOOL,
    RULES_T_BOOL, RULES_T_BOOL, RULES_T_BOOL,
    RULES_T_BOOL, RULES_T_BOOL, RULES_T_BOOL,
    RULES_T_STRING,
};
/* Fields the engine looks up for the event being evaluated and that history
 * records do not hold: a window function over them would compare every earlier
 * event's "" with the current value, so they are refused there. */
static const bool field_looked_up[RULES_F_COUNT] = {
    [RULES_F_ASN] = true, [RULES_F_AS_NAME] = true, [RULES_F_IP_COUNTRY] = true,
};

/* Argument kinds of the window functions. */
enum { A_TYPE, A_FIELD, A_DUR };
static const struct {
    const char *name;
    int nargs;
    int args[2];
    const char *sig; /* for messages */
    rules_type result;
} funcs[RULES_FN_COUNT_] = {
    {"count", 2, {A_TYPE, A_DUR}, "(event type, duration)", RULES_T_NUMBER},
    {"distinct", 2, {A_FIELD, A_DUR}, "(field, duration)", RULES_T_NUMBER},
    {"first_seen", 2, {A_FIELD, A_DUR}, "(field, duration)", RULES_T_BOOL},
    {"count_known", 2, {A_FIELD, A_DUR}, "(field, duration)", RULES_T_NUMBER},
    {"since_last", 1, {A_TYPE}, "(event type)", RULES_T_DURATION},
    {"active_sessions", 0, {0}, "()", RULES_T_NUMBER},
    {"travel_km", 0, {0}, "()", RULES_T_NUMBER},
    {"travel_kmh", 0, {0}, "()", RULES_T_NUMBER},
    {"risk", 0, {0}, "()", RULES_T_NUMBER},
};

const char *rules_field_name(rules_field f) { return (unsigned)f < RULES_F_COUNT ? field_names[f] : "?"; }
const char *rules_func_name(rules_func f) { return (unsigned)f < RULES_FN_COUNT_ ? funcs[f].name : "?"; }

const char *rules_type_name(rules_type t)
{
    switch (t) {
    case RULES_T_NUMBER: return "number";
    case RULES_T_DURATION: return "duration";
    case RULES_T_STRING: return "string";
    case RULES_T_BOOL: return "bool";
    case RULES_T_LIST: return "list";
    default: return "error";
    }
}

static const char *const op_names[] = {"==", "!=", "<", "<=", ">", ">="};

static void error_node(rules_ctx *c, const rules_expr *e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void error_node(rules_ctx *c, const rules_expr *e, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rules_error_at(c, e->line, e->col, e->off, e->len, "%s", msg);
}

static int find_field(const char *name)
{
    for (int i = 0; i < RULES_F_COUNT; i++)
        if (strcmp(field_names[i], name) == 0)
            return i;
    return -1;
}

/* ---- expressions ---- */

static rules_type check_expr(rules_ctx *c, rule_build *rb, rules_expr *e);

/* Resolve an argument that must name an event type. */
static bool arg_type(rules_ctx *c, rules_expr *call, int i, rules_expr *a)
{
    if (a->kind != RULES_E_NAME) {
        error_node(c, a, "%s(): argument %d must be an event type such as session.created", call->str, i + 1);
        return false;
    }
    event_type t = event_type_from_name(a->str);
    if (t == EVENT_UNKNOWN && find_field(a->str) >= 0) {
        error_node(c, a, "%s(): argument %d must be an event type such as session.created, not the field '%s'",
                   call->str, i + 1, a->str);
        return false;
    }
    if (t == EVENT_UNKNOWN) {
        error_node(c, a, "unknown event type '%s'", a->str);
        return false;
    }
    a->kind = RULES_E_EVTYPE;
    a->evtype = t;
    a->type = RULES_T_STRING;
    return true;
}

static bool arg_field(rules_ctx *c, rule_build *rb, rules_expr *call, int i, rules_expr *a)
{
    if (a->kind != RULES_E_NAME) {
        error_node(c, a, "%s(): argument %d must be a field such as ip or country", call->str, i + 1);
        return false;
    }
    int f = find_field(a->str);
    if (f < 0) {
        error_node(c, a, "unknown field '%s'", a->str);
        return false;
    }
    if (f == RULES_F_USER && (call->func != RULES_FN_DISTINCT || rb->r.by != RULES_BY_IP)) {
        error_node(c, a, "'user' as a field is only valid in distinct() in a rule 'by ip'");
        return false;
    }
    if (field_types[f] != RULES_T_STRING) {
        error_node(c, a, "%s(): field '%s' is a %s; window functions count string fields", call->str, a->str,
                   rules_type_name(field_types[f]));
        return false;
    }
    /* A window function asks whether the user has used this device before:
     * Clerk's device_type ("desktop") cannot say, and a version in the key
     * would make every browser update a new device. So there `device` is the
     * device key of the user agent (ua.browser / ua.os / ua.device). */
    if (f == RULES_F_DEVICE)
        f = RULES_F_DEVICE_KEY;
    if (field_looked_up[f]) {
        error_node(c, a, "%s(): field '%s' comes from the IP database for the current event only (history does "
                   "not keep it); window functions read stored fields such as ip or country", call->str, a->str);
        return false;
    }
    a->kind = RULES_E_FIELD;
    a->field = (rules_field)f;
    a->type = RULES_T_STRING;
    return true;
}

static rules_type check_call(rules_ctx *c, rule_build *rb, rules_expr *e)
{
    int fn = -1;
    for (int i = 0; i < RULES_FN_COUNT_; i++)
        if (strcmp(funcs[i].name, e->str) == 0)
            fn = i;
    if (fn < 0) {
        error_node(c, e, "unknown function '%s'", e->str);
        return RULES_T_ERROR;
    }
    e->func = (rules_func)fn;
    if ((int)e->nargs != funcs[fn].nargs) {
        if (funcs[fn].nargs == 0)
            error_node(c, e, "%s() takes no arguments, got %zu", e->str, e->nargs);
        else
            error_node(c, e, "%s() takes %d argument%s %s, got %zu", e->str, funcs[fn].nargs,
                       funcs[fn].nargs == 1 ? "" : "s", funcs[fn].sig, e->nargs);
        return RULES_T_ERROR;
    }
    bool ok = true;
    for (int i = 0; i < funcs[fn].nargs; i++) {
        rules_expr *a = e->args[i];
        switch (funcs[fn].args[i]) {
        case A_TYPE: ok &= arg_type(c, e, i, a); break;
        case A_FIELD: ok &= arg_field(c, rb, e, i, a); break;
        case A_DUR:
            /* Windows are fixed at load time: the store sizes its reads by them. */
            if (a->kind != RULES_E_DURATION) {
                error_node(c, a, "%s(): argument %d must be a duration such as 10m", e->str, i + 1);
                ok = false;
            } else {
                a->type = RULES_T_DURATION;
            }
            break;
        }
    }
    return ok ? funcs[fn].result : RULES_T_ERROR;
}

static rules_type check_name(rules_ctx *c, rules_expr *e)
{
    int f = find_field(e->str);
    if (f < 0 || f == RULES_F_USER) {
        if (event_type_from_name(e->str) != EVENT_UNKNOWN)
            error_node(c, e, "unknown field '%s' (an event type is only valid as an argument of count() or since_last())",
                       e->str);
        else if (f == RULES_F_USER)
            error_node(c, e, "unknown field 'user' (use user_id; 'user' is only valid in distinct())");
        else
            error_node(c, e, "unknown field '%s'", e->str);
        return RULES_T_ERROR;
    }
    e->kind = RULES_E_FIELD;
    e->field = (rules_field)f;
    return field_types[f];
}

static rules_type check_in(rules_ctx *c, rule_build *rb, rules_expr *e)
{
    rules_type lt = check_expr(c, rb, e->args[0]);
    rules_expr *r = e->args[1];
    rules_type et; /* what the left side must be */
    if (r->kind == RULES_E_NAME) {
        const rules_list *l = rules_list_find(c->set, r->str);
        if (l == NULL) {
            error_node(c, r, "unknown list '%s'", r->str);
            return RULES_T_ERROR;
        }
        r->kind = RULES_E_LISTREF;
        r->list = l;
        r->type = RULES_T_LIST;
        /* lists hold networks, matched against an IP string, or ASNs, matched against asn */
        et = l->asn ? RULES_T_NUMBER : RULES_T_STRING;
    } else if (r->kind == RULES_E_LISTLIT) {
        r->type = RULES_T_LIST;
        et = r->nargs ? r->args[0]->kind == RULES_E_STRING ? RULES_T_STRING : RULES_T_NUMBER : lt;
        for (size_t i = 0; i < r->nargs; i++) {
            rules_type it = r->args[i]->kind == RULES_E_STRING ? RULES_T_STRING : RULES_T_NUMBER;
            r->args[i]->type = it;
            if (it != et) {
                error_node(c, r->args[i], "type mismatch: list mixes %s and %s elements", rules_type_name(et),
                           rules_type_name(it));
                return RULES_T_ERROR;
            }
        }
        r->elem_type = et;
    } else {
        error_node(c, r, "'in' needs a list name or a [...] list on its right");
        return RULES_T_ERROR;
    }
    if (lt == RULES_T_ERROR)
        return RULES_T_ERROR;
    if (lt != et) {
        if (r->kind == RULES_E_LISTREF && r->list->asn)
            error_node(c, e, "type mismatch: 'in %s' (a list of ASNs) needs a number such as asn on the left, got %s",
                       r->str, rules_type_name(lt));
        else if (r->kind == RULES_E_LISTREF)
            error_node(c, e, "type mismatch: 'in %s' needs an IP address string on the left, got %s", r->str,
                       rules_type_name(lt));
        else
            error_node(c, e, "type mismatch: %s 'in' a list of %ss", rules_type_name(lt), rules_type_name(et));
        return RULES_T_ERROR;
    }
    return RULES_T_BOOL;
}

static rules_type check_bool_operand(rules_ctx *c, rule_build *rb, rules_expr *op, rules_expr *a)
{
    rules_type t = check_expr(c, rb, a);
    if (t != RULES_T_BOOL && t != RULES_T_ERROR) {
        error_node(c, a, "type mismatch: '%s' needs a bool, got %s",
                   op->kind == RULES_E_AND ? "and" : op->kind == RULES_E_OR ? "or" : "not", rules_type_name(t));
        return RULES_T_ERROR;
    }
    return t;
}

static rules_type check_expr(rules_ctx *c, rule_build *rb, rules_expr *e)
{
    rules_type t = RULES_T_ERROR;
    switch (e->kind) {
    case RULES_E_NUMBER: t = RULES_T_NUMBER; break;
    case RULES_E_DURATION: t = RULES_T_DURATION; break;
    case RULES_E_STRING: t = RULES_T_STRING; break;
    case RULES_E_BOOL: t = RULES_T_BOOL; break;
    case RULES_E_NAME: t = check_name(c, e); break;
    case RULES_E_CALL: t = check_call(c, rb, e); break;
    case RULES_E_LISTLIT:
        error_node(c, e, "a [...] list is only valid on the right of 'in'");
        break;
    case RULES_E_NOT:
        if (check_bool_operand(c, rb, e, e->args[0]) == RULES_T_BOOL)
            t = RULES_T_BOOL;
        break;
    case RULES_E_AND:
    case RULES_E_OR: {
        rules_type a = check_bool_operand(c, rb, e, e->args[0]);
        rules_type b = check_bool_operand(c, rb, e, e->args[1]);
        if (a == RULES_T_BOOL && b == RULES_T_BOOL)
            t = RULES_T_BOOL;
        break;
    }
    case RULES_E_IN: t = check_in(c, rb, e); break;
    case RULES_E_CMP: {
        rules_type a = check_expr(c, rb, e->args[0]);
        rules_type b = check_expr(c, rb, e->args[1]);
        if (a == RULES_T_ERROR || b == RULES_T_ERROR)
            break;
        const char *op = op_names[e->op];
        if (a != b) {
            error_node(c, e, "type mismatch: '%s' compares %s with %s", op, rules_type_name(a), rules_type_name(b));
        } else if ((a == RULES_T_STRING || a == RULES_T_BOOL) && e->op != RULES_OP_EQ && e->op != RULES_OP_NE) {
            error_node(c, e, "type mismatch: '%s' needs numbers or durations, got %s (only == and != work on %ss)",
                       op, rules_type_name(a), rules_type_name(a));
        } else {
            t = RULES_T_BOOL;
        }
        break;
    }
    default: /* LISTREF, FIELD, EVTYPE only exist after resolution */
        break;
    }
    e->type = t;
    return t;
}

/* ---- rules and lists ---- */

static void check_on(rules_ctx *c, rule_build *rb)
{
    for (size_t i = 0; i < rb->on_names.n; i++) {
        token *t = rb->on_names.v[i];
        char name[64];
        snprintf(name, sizeof name, "%.*s", t->len < 63 ? (int)t->len : 63, c->src + t->off);
        if (strcmp(name, "session.*") == 0 || strcmp(name, "user.*") == 0) {
            for (int k = 1; k < EVENT_TYPE_COUNT; k++)
                if (event_type_is_session((event_type)k) == (name[0] == 's'))
                    rb->r.on_mask |= 1u << k;
            continue;
        }
        event_type et = event_type_from_name(name);
        if (et == EVENT_UNKNOWN) {
            rules_error_tok(c, t, "unknown event type '%.*s' (use session.created, session.pending, session.ended, "
                            "session.removed, session.revoked, user.created, user.updated, user.deleted, session.* "
                            "or user.*)", (int)t->len, c->src + t->off);
            continue;
        }
        rb->r.on_mask |= 1u << et;
    }
}

static void check_rule(rules_ctx *c, rule_build *rb)
{
    static const char *const required[] = {"severity", "on", "when"};
    bool have[] = {rb->has_severity, rb->has_on, rb->has_when};
    for (int i = 0; i < 3; i++)
        if (!have[i])
            rules_error_at(c, rb->r.line, rb->r.col, rb->name_off, rb->name_len,
                           "rule '%s' is missing the required '%s' statement", rb->r.name, required[i]);
    /* Alerts carry these verbatim in fixed-size records: refuse what would not fit
     * rather than cut it at evaluation time. */
    if (strlen(rb->r.name) > RULES_NAME_MAX)
        rules_error_at(c, rb->r.line, rb->r.col, rb->name_off, rb->name_len,
                       "rule name '%.20s...' is longer than %d bytes", rb->r.name, RULES_NAME_MAX);
    if (rb->r.description != NULL && strlen(rb->r.description) > RULES_DESCRIPTION_MAX)
        rules_error_at(c, rb->r.line, rb->r.col, rb->name_off, rb->name_len,
                       "rule '%s': description is longer than %d bytes", rb->r.name, RULES_DESCRIPTION_MAX);
    if (rb->r.n_tags > RULES_TAGS_MAX)
        rules_error_at(c, rb->r.line, rb->r.col, rb->name_off, rb->name_len, "rule '%s' has %zu tags (limit %d)",
                       rb->r.name, rb->r.n_tags, RULES_TAGS_MAX);
    for (size_t i = 0; i < rb->r.n_tags; i++)
        if (strlen(rb->r.tags[i]) > RULES_TAG_MAX)
            rules_error_at(c, rb->r.line, rb->r.col, rb->name_off, rb->name_len,
                           "rule '%s': tag %zu is longer than %d bytes", rb->r.name, i + 1, RULES_TAG_MAX);
    check_on(c, rb);
    if (rb->when_expr != NULL) {
        rules_type t = check_expr(c, rb, rb->when_expr);
        if (t != RULES_T_BOOL && t != RULES_T_ERROR)
            error_node(c, rb->when_expr, "type mismatch: 'when' needs a bool expression, got %s", rules_type_name(t));
        rb->r.when = rb->when_expr;
    }
}

/* "192.0.2.0/24", "2001:db8::1" ... -> masked network. */
static int parse_net(const char *s, rules_net *n)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof addr)
        return -1;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    memset(n, 0, sizeof *n);
    unsigned max;
    if (inet_pton(AF_INET, addr, n->addr) == 1) {
        n->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, addr, n->addr) == 1) {
        n->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    n->prefix = max;
    if (slash) {
        const char *p = slash + 1;
        unsigned v = 0;
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || digits > 3 || p[digits] != '\0')
            return -1;
        for (size_t i = 0; i < digits; i++)
            v = v * 10 + (unsigned)(p[i] - '0');
        if (v > max)
            return -2;
        n->prefix = v;
    }
    /* Keep the network address only, so matching is a plain prefix compare. */
    for (unsigned bit = n->prefix; bit < max; bit++)
        n->addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
    return 0;
}

/* "AS14061" (any case) -> 14061; -1 when it is not AS and digits, -2 when the
 * number is not a 32-bit ASN (AS0 is reserved: 0 means none). */
static int parse_asn(const char *s, size_t len, uint32_t *out)
{
    if (len < 3 || (s[0] != 'A' && s[0] != 'a') || (s[1] != 'S' && s[1] != 's'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 2; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > UINT32_MAX)
            return -2;
    }
    if (v == 0)
        return -2;
    *out = (uint32_t)v;
    return 0;
}

/* A list of ASNs: every entry a bare AS word; the first entry decides the
 * list's kind, so one mixed entry is reported where it is. */
static void check_asn_list(rules_ctx *c, list_build *lb)
{
    rules_list *l = &lb->l;
    ptrvec *entries = &lb->entries;
    l->asn = true;
    l->asns = arena_alloc(&c->set->mem, entries->n * sizeof *l->asns);
    if (l->asns == NULL)
        return;
    for (size_t i = 0; i < entries->n; i++) {
        token *t = entries->v[i];
        const char *text = c->src + t->off;
        int rc = t->kind == TK_IDENT ? parse_asn(text, t->len, &l->asns[l->n_asns]) : -3;
        if (rc == 0)
            l->n_asns++;
        else if (rc == -3)
            rules_error_tok(c, t, "list '%s' mixes ASNs and networks: give networks in a list of their own",
                            l->name);
        else if (rc == -2)
            rules_error_tok(c, t, "bad ASN '%.*s' in list '%s': the number must be 1 to 4294967295", (int)t->len,
                            text, l->name);
        else
            rules_error_tok(c, t, "bad ASN '%.*s' in list '%s': write AS and the number, such as AS14061",
                            (int)t->len, text, l->name);
    }
}

static void check_list(rules_ctx *c, list_build *lb)
{
    rules_list *l = &lb->l;
    ptrvec *entries = &lb->entries;
    if (entries->n > 0 && ((token *)entries->v[0])->kind == TK_IDENT) {
        check_asn_list(c, lb);
        return;
    }
    l->nets = arena_alloc(&c->set->mem, (entries->n ? entries->n : 1) * sizeof *l->nets);
    if (l->nets == NULL)
        return;
    for (size_t i = 0; i < entries->n; i++) {
        token *t = entries->v[i];
        if (t->kind == TK_IDENT) {
            rules_error_tok(c, t, "list '%s' mixes networks and ASNs: give ASNs in a list of their own", l->name);
            continue;
        }
        int rc = parse_net(t->str, &l->nets[l->n_nets]);
        if (rc == -2)
            rules_error_tok(c, t, "bad CIDR \"%s\" in list '%s': prefix length out of range (0-%d)", t->str, l->name,
                            strchr(t->str, ':') ? 128 : 32);
        else if (rc < 0)
            rules_error_tok(c, t, "bad IP address or CIDR \"%s\" in list '%s'", t->str, l->name);
        else
            l->n_nets++;
    }
}

typedef struct {
    const char *name;
    size_t idx; /* position in the file */
} named;

static int name_cmp(const void *a, const void *b)
{
    const named *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    /* Ties in file order, so the later definition is the duplicate. */
    return r ? r : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Report every definition after the first of the same name. objs[i] is a
 * rule_build or list_build; both start with their name pointer. */
static void check_duplicates(rules_ctx *c, void **objs, size_t n, bool rules)
{
    if (n < 2)
        return;
    named *v = malloc(n * sizeof *v);
    if (v == NULL) {
        c->set->mem.oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = (named){*(const char **)objs[i], i};
    qsort(v, n, sizeof *v, name_cmp);
    size_t first = 0;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(v[i].name, v[first].name) != 0) {
            first = i;
            continue;
        }
        void *d = objs[v[i].idx], *f = objs[v[first].idx];
        if (rules) {
            rule_build *rd = d, *rf = f;
            rules_error_at(c, rd->r.line, rd->r.col, rd->name_off, rd->name_len,
                           "duplicate rule name '%s' (first defined at line %d)", rd->r.name, rf->r.line);
        } else {
            list_build *ld = d, *lf = f;
            rules_error_at(c, ld->l.line, ld->l.col, ld->name_off, ld->name_len,
                           "duplicate list name '%s' (first defined at line %d)", ld->l.name, lf->l.line);
        }
    }
    free(v);
}

void rules_check(rules_ctx *c)
{
    rules_set *s = c->set;
    for (size_t i = 0; i < s->lists.n; i++)
        check_list(c, s->lists.v[i]);
    check_duplicates(c, s->lists.v, s->lists.n, false);
    check_duplicates(c, s->rules.v, s->rules.n, true);
    for (size_t i = 0; i < s->rules.n; i++)
        check_rule(c, s->rules.v[i]);
}

/* ---- runtime helpers ---- */

bool rules_list_contains(const rules_list *list, const char *ip)
{
    if (list == NULL || ip == NULL)
        return false;
    unsigned char a4[4], a6[16];
    int fam;
    const unsigned char *addr;
    if (inet_pton(AF_INET, ip, a4) == 1) {
        fam = AF_INET;
        addr = a4;
    } else if (inet_pton(AF_INET6, ip, a6) == 1) {
        fam = AF_INET6;
        addr = a6;
    } else {
        return false;
    }
    for (size_t i = 0; i < list->n_nets; i++) {
        const rules_net *n = &list->nets[i];
        if (n->family != fam)
            continue;
        unsigned full = n->prefix / 8, rest = n->prefix % 8;
        if (memcmp(addr, n->addr, full) != 0)
            continue;
        if (rest) {
            unsigned char mask = (unsigned char)(0xffu << (8 - rest));
            if ((addr[full] & mask) != n->addr[full])
                continue;
        }
        return true;
    }
    return false;
}

bool rules_list_contains_asn(const rules_list *list, uint32_t asn)
{
    if (list == NULL || !list->asn)
        return false;
    /* starter lists hold tens of entries: a scan beats keeping them sorted */
    for (size_t i = 0; i < list->n_asns; i++)
        if (list->asns[i] == asn)
            return true;
    return false;
}

/* ---- dump ---- */

static void dump_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void dump_duration(FILE *f, int64_t ms)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{604800000, "w"}, {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms != 0 && ms % units[i].ms == 0) {
            fprintf(f, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    if (ms == 0)
        fputs("0s", f);
    else
        fprintf(f, "%lldms", (long long)ms);
}

static void dump_number(FILE *f, double v)
{
    if (v == floor(v) && fabs(v) < 1e15) {
        fprintf(f, "%.0f", v);
        return;
    }
    /* The shortest form that reads back to the same double. */
    char buf[32];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, f);
}

static void dump_expr(FILE *f, const rules_expr *e)
{
    switch (e->kind) {
    case RULES_E_NUMBER: dump_number(f, e->num); break;
    case RULES_E_DURATION: dump_duration(f, e->ms); break;
    case RULES_E_STRING: dump_string(f, e->str); break;
    case RULES_E_BOOL: fputs(e->b ? "true" : "false", f); break;
    case RULES_E_FIELD: fputs(field_names[e->field], f); break;
    case RULES_E_EVTYPE: fputs(event_type_name(e->evtype), f); break;
    case RULES_E_LISTREF: fputs(e->list->name, f); break;
    case RULES_E_NAME: fputs(e->str, f); break;
    case RULES_E_CALL:
    case RULES_E_LISTLIT:
        fputs(e->kind == RULES_E_CALL ? funcs[e->func].name : "", f);
        fputc(e->kind == RULES_E_CALL ? '(' : '[', f);
        for (size_t i = 0; i < e->nargs; i++) {
            if (i)
                fputs(", ", f);
            dump_expr(f, e->args[i]);
        }
        fputc(e->kind == RULES_E_CALL ? ')' : ']', f);
        break;
    case RULES_E_NOT:
        fputs("(not ", f);
        dump_expr(f, e->args[0]);
        fputc(')', f);
        break;
    case RULES_E_AND:
    case RULES_E_OR:
    case RULES_E_CMP:
    case RULES_E_IN:
        fputc('(', f);
        dump_expr(f, e->args[0]);
        fprintf(f, " %s ", e->kind == RULES_E_AND  ? "and"
                           : e->kind == RULES_E_OR ? "or"
                           : e->kind == RULES_E_IN ? "in"
                                                   : op_names[e->op]);
        dump_expr(f, e->args[1]);
        fputc(')', f);
        break;
    }
}

void rules_expr_text(const rules_expr *e, char *buf, size_t len)
{
    if (len == 0)
        return;
    buf[0] = '\0';
    FILE *f = fmemopen(buf, len, "w");
    if (f == NULL)
        return;
    /* fmemopen writes the terminator itself; a full buffer is cut, not overrun */
    setvbuf(f, NULL, _IONBF, 0);
    dump_expr(f, e);
    fclose(f);
    buf[len - 1] = '\0';
}

static void dump_net(FILE *f, const rules_net *n)
{
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(n->family, n->addr, buf, sizeof buf);
    if (n->prefix == (n->family == AF_INET ? 32u : 128u))
        fprintf(f, "\"%s\"", buf);
    else
        fprintf(f, "\"%s/%u\"", buf, n->prefix);
}

int rules_dump(const rules_set *set, FILE *f)
{
    bool first = true;
    for (size_t i = 0; i < set->lists.n; i++) {
        const rules_list *l = set->lists.v[i];
        fprintf(f, "%slist %s {", first ? "" : "\n", l->name);
        for (size_t k = 0; k < l->n_nets; k++) {
            fputs(k ? ", " : " ", f);
            dump_net(f, &l->nets[k]);
        }
        for (size_t k = 0; k < l->n_asns; k++)
            fprintf(f, "%sAS%u", k ? ", " : " ", (unsigned)l->asns[k]);
        fputs(" }\n", f);
        first = false;
    }
    for (size_t i = 0; i < set->rules.n; i++) {
        const rules_rule *r = rules_rule_at(set, i);
        fprintf(f, "%srule %s {\n", first ? "" : "\n", r->name);
        first = false;
        if (r->description) {
            fputs("  description ", f);
            dump_string(f, r->description);
            fputc('\n', f);
        }
        fprintf(f, "  severity %s\n  on ", rules_severity_name(r->severity));
        const char *sep = "";
        for (int k = 1; k < EVENT_TYPE_COUNT; k++)
            if (r->on_mask & (1u << k)) {
                fprintf(f, "%s%s", sep, event_type_name((event_type)k));
                sep = ", ";
            }
        fprintf(f, "\n  by %s\n  when ", r->by == RULES_BY_IP ? "ip" : "user");
        dump_expr(f, r->when);
        fputc('\n', f);
        if (r->suppress_ms) {
            fputs("  suppress ", f);
            dump_duration(f, r->suppress_ms);
            fputc('\n', f);
        }
        for (size_t k = 0; k < r->n_tags; k++) {
            fputs(k ? ", " : "  tags ", f);
            dump_string(f, r->tags[k]);
        }
        if (r->n_tags)
            fputc('\n', f);
        if (r->disabled)
            fputs("  enabled false\n", f);
        fputs("}\n", f);
    }
    return ferror(f) ? -1 : 0;
}
