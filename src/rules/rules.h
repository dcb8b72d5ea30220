/*
 * rules.h: the rule language front end. Loads a rule file (lists and rules),
 * checks every name, argument and type at load time, and keeps the typed AST for
 * the evaluator. Diagnostics are written as
 *
 *   FILE:LINE:COL: error: MESSAGE
 *   <the source line>
 *   <spaces>^~~~          (under the offending token)
 *
 * and loading recovers at the next `rule` / `list` keyword, so one run reports
 * every error. Columns are 1-based byte offsets.
 *
 * Ownership: a rules_set owns everything reachable from it (rules, lists,
 * expressions, strings) in one arena; pointers obtained from it stay valid until
 * rules_free(). A loaded set is immutable, so it can be shared between threads.
 * No global mutable state.
 *
 * The language (examples: the .rules files under tests/rules/ok):
 *   list NAME { "198.51.100.0/24", "2001:db8::1", ... }
 *   list NAME { AS14061, AS16509, ... }                 (autonomous systems)
 *   rule NAME { description STR  severity LEVEL  on TYPE, ...  by user|ip
 *               when EXPR  suppress DURATION  tags STR, ...  enabled true|false }
 * Literal lists in expressions use brackets, strings or numbers of one type:
 * country in ["FR", "BE"]. Numbers are non-negative (no unary minus); durations
 * are a whole number glued to ms|s|m|h|d|w. Event types may be written as
 * `session.*` / `user.*` in `on` (all of that kind). Precedence, loosest first:
 * or, and, not, comparison (== != < <= > >= in; not chainable), primary.
 * Diagnostics come out sorted by position in the file.
 */
#ifndef VEILLE_RULES_H
#define VEILLE_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "event/event.h"

#define RULES_MAX_FILE (1024 * 1024) /* larger sources are refused */
#define RULES_MAX_NESTING 64         /* parentheses / not / brackets nested deeper: error */
/* Alerts copy these into fixed-size records; longer ones are load errors. */
#define RULES_NAME_MAX 63
#define RULES_DESCRIPTION_MAX 255
#define RULES_TAGS_MAX 8
#define RULES_TAG_MAX 63

typedef enum {
    RULES_T_ERROR = 0, /* only while checking: a subexpression that already failed */
    RULES_T_NUMBER,
    RULES_T_DURATION,
    RULES_T_STRING,
    RULES_T_BOOL,
    RULES_T_LIST, /* a list literal or a declared list */
} rules_type;

typedef enum { RULES_SEV_INFO, RULES_SEV_LOW, RULES_SEV_MEDIUM, RULES_SEV_HIGH, RULES_SEV_CRITICAL } rules_severity;
typedef enum { RULES_BY_USER, RULES_BY_IP } rules_key;

/* Fields an expression can read. RULES_F_USER is only valid as distinct()'s
 * first argument in a `by ip` rule (distinct user ids). */
typedef enum {
    RULES_F_TYPE, RULES_F_USER_ID, RULES_F_SESSION_ID, RULES_F_IP, RULES_F_COUNTRY,
    RULES_F_CITY, RULES_F_BROWSER, RULES_F_DEVICE, RULES_F_IS_MOBILE, RULES_F_USER_AGENT,
    RULES_F_USER_DELETED, RULES_F_USER_AGE, RULES_F_USER_EMAIL, RULES_F_USER_BANNED,
    RULES_F_USER,
    /* uap-core's reading of user_agent (src/device); the majors are numbers */
    RULES_F_UA_BROWSER, RULES_F_UA_BROWSER_MAJOR, RULES_F_UA_OS, RULES_F_UA_OS_MAJOR, RULES_F_UA_DEVICE,
    /* `device` as the argument of a window function: the device key (browser,
     * OS and device family), not Clerk's device_type (check.c says why) */
    RULES_F_DEVICE_KEY,
    /* from the location database (src/ipintel), looked up by the engine */
    RULES_F_ASN, RULES_F_AS_NAME, RULES_F_IP_COUNTRY, RULES_F_IP_ANONYMOUS_PROXY, RULES_F_IP_SATELLITE,
    RULES_F_IP_ANYCAST, RULES_F_IP_DROP, RULES_F_IP_PRIVATE,
    /* Clerk's lockout and ban state: now, and before this event (engine.c) */
    RULES_F_USER_LOCKED, RULES_F_USER_WAS_LOCKED, RULES_F_USER_WAS_BANNED,
    RULES_F_INSTANCE, /* the Clerk instance_id (ins_...) of the event */
    RULES_F_COUNT
} rules_field;

typedef enum {
    RULES_FN_COUNT,           /* count(TYPE, DUR) -> number */
    RULES_FN_DISTINCT,        /* distinct(FIELD, DUR) -> number */
    RULES_FN_FIRST_SEEN,      /* first_seen(FIELD, DUR) -> bool */
    RULES_FN_COUNT_KNOWN,     /* count_known(FIELD, DUR) -> number */
    RULES_FN_SINCE_LAST,      /* since_last(TYPE) -> duration */
    RULES_FN_ACTIVE_SESSIONS, /* active_sessions() -> number */
    RULES_FN_TRAVEL_KM,       /* travel_km() -> number */
    RULES_FN_TRAVEL_KMH,      /* travel_kmh() -> number */
    RULES_FN_RISK,            /* risk() -> number (src/engine/risk.c) */
    RULES_FN_COUNT_
} rules_func;

typedef enum {
    RULES_E_NUMBER,   /* num */
    RULES_E_DURATION, /* ms */
    RULES_E_STRING,   /* str */
    RULES_E_BOOL,     /* b */
    RULES_E_FIELD,    /* field */
    RULES_E_EVTYPE,   /* evtype: an event type given as a function argument */
    RULES_E_CALL,     /* func, args[0..nargs) */
    RULES_E_LISTLIT,  /* args[0..nargs): literals of one type (elem_type) */
    RULES_E_LISTREF,  /* list: a declared list */
    RULES_E_NOT,      /* args[0] */
    RULES_E_AND,      /* args[0], args[1] */
    RULES_E_OR,
    RULES_E_CMP,      /* op, args[0] op args[1] */
    RULES_E_IN,       /* args[0] in args[1] (LISTLIT or LISTREF) */
    RULES_E_NAME,     /* parser only: an identifier not yet resolved; never in a loaded set */
} rules_expr_kind;

typedef enum { RULES_OP_EQ, RULES_OP_NE, RULES_OP_LT, RULES_OP_LE, RULES_OP_GT, RULES_OP_GE } rules_op;

typedef struct rules_list rules_list;
typedef struct rules_expr rules_expr;

struct rules_expr {
    rules_expr_kind kind;
    rules_type type;      /* result type */
    rules_type elem_type; /* RULES_E_LISTLIT: type of the elements */
    /* The node's main token: the operator for and/or/not/comparisons/in, the
     * name for fields and calls, '[' for list literals. For diagnostics. */
    int line, col;
    size_t off, len;
    int height; /* of this subtree, 1 for a leaf; bounded by RULES_MAX_NESTING */
    rules_op op;
    double num;
    int64_t ms;
    bool b;
    const char *str; /* STRING value; NAME/CALL/LISTREF: the identifier as written */
    rules_field field;
    rules_func func;
    event_type evtype;
    const rules_list *list;
    rules_expr **args;
    size_t nargs;
};

/* One network of a list: 4- or 16-byte address (masked) and prefix length. */
typedef struct {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;
} rules_net;

struct rules_list {
    const char *name;
    int line, col;
    rules_net *nets;
    size_t n_nets;
    /* a list of autonomous systems (`list x { AS14061, AS16509 }`) holds no
     * network: `asn in x` is its only use */
    bool asn;
    uint32_t *asns;
    size_t n_asns;
};

typedef struct {
    const char *name;
    int line, col;
    const char *description; /* NULL when not given */
    rules_severity severity;
    uint32_t on_mask;        /* bit (1u << event_type) per type the rule runs on */
    rules_key by;
    const rules_expr *when;  /* type RULES_T_BOOL */
    int64_t suppress_ms;     /* 0: no suppression */
    const char **tags;
    size_t n_tags;
    bool disabled;           /* `enabled false`: loaded, listed, never run */
    const char *source;      /* the rule as written, `rule` to its '}' (comments inside kept) */
} rules_rule;

typedef struct rules_set rules_set;

/*
 * Load rules from memory. `name` is used in diagnostics. Every error goes to
 * `diag` (NULL: counted, not printed). Returns the number of errors: 0 means
 * *out holds a new set (free with rules_free); > 0 means *out is NULL. Returns -1
 * when nothing could be parsed at all (source larger than RULES_MAX_FILE, out of
 * memory), with a one-line message on diag.
 */
int rules_load_buffer(const char *name, const char *src, size_t len, rules_set **out, FILE *diag);
/* Same, reading `path` (which also names it in diagnostics). -1 when the file
 * cannot be read, with "PATH: error: ..." on diag. */
int rules_load_file(const char *path, rules_set **out, FILE *diag);
/* Same, but each diagnostic is exactly one line, "PATH:LINE:COL: error: MESSAGE"
 * (no source line, no caret; newlines in MESSAGE become spaces): for logs, where
 * one line stands for one error (the SIGHUP reload). */
int rules_load_file_brief(const char *path, rules_set **out, FILE *diag);
/* For `veille check`: load, report, count, free. Return value as rules_load_file;
 * n_rules / n_lists (may be NULL) are set when it returns 0. */
int rules_check_file(const char *path, FILE *diag, size_t *n_rules, size_t *n_lists);

void rules_free(rules_set *set); /* NULL: no-op */

size_t rules_count(const rules_set *set);
const rules_rule *rules_rule_at(const rules_set *set, size_t i); /* file order */
/* Turn rule `name` off as `enabled false` would (serve --disable-rule), before the
 * set is shared; -1 when the set has no such rule. */
int rules_disable(rules_set *set, const char *name);
size_t rules_list_count(const rules_set *set);
const rules_list *rules_list_at(const rules_set *set, size_t i);
const rules_list *rules_list_find(const rules_set *set, const char *name); /* NULL: none */

/* True when `ip` (textual IPv4 or IPv6) falls in one of the list's networks. An
 * IPv4 address never matches an IPv6 network and vice versa; garbage is false. */
bool rules_list_contains(const rules_list *list, const char *ip);
/* True when the ASN list holds asn; false for a list of networks. */
bool rules_list_contains_asn(const rules_list *list, uint32_t asn);

/* Print the set back in normal form: lists first then rules, file order, one
 * statement per line, canonical durations and spacing, every binary / not / in
 * expression parenthesised. Returns 0 or -1 on a write error. */
int rules_dump(const rules_set *set, FILE *out);
/* One expression in the same normal form, e.g. "count(session.created, 10m)",
 * into buf (cut to fit, always terminated). For alert evidence. */
void rules_expr_text(const rules_expr *e, char *buf, size_t len);

const char *rules_severity_name(rules_severity s);
const char *rules_field_name(rules_field f);
const char *rules_func_name(rules_func f);
const char *rules_type_name(rules_type t);

#endif
