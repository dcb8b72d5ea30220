/*
 * test_rules.c: the rule language front end. Golden files (tests/rules/ok: the
 * normal-form dump; tests/rules/fail: the exact diagnostics), the issue's
 * example, CIDR matching, and the limits (nesting, size, missing file).
 * Run from the project root. VEILLE_REGEN=1 rewrites the expected files; review
 * the diff before keeping it.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rules/rules.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

/* Load `path`; *diag gets the diagnostics, *dump the normal form (rc == 0). */
static int load(const char *path, char **diag, char **dump)
{
    size_t dl = 0, ul = 0;
    FILE *d = open_memstream(diag, &dl);
    rules_set *set;
    int rc = rules_load_file(path, &set, d);
    fclose(d);
    FILE *u = open_memstream(dump, &ul);
    if (rc == 0)
        rules_dump(set, u);
    fclose(u);
    rules_free(set);
    return rc;
}

/* Same from memory, counting errors only. */
static int load_str(const char *src, rules_set **out)
{
    rules_set *set;
    int rc = rules_load_buffer("mem", src, strlen(src), &set, NULL);
    if (out)
        *out = set;
    else
        rules_free(set);
    return rc;
}

static bool regen(void) { return getenv("VEILLE_REGEN") != NULL; }

/* Every X.rules under dir, sorted, as "dir/X" (without the extension). */
static size_t list_cases(const char *dir, char names[][256], size_t max)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && n < max) {
        size_t l = strlen(e->d_name);
        if (l > 6 && strcmp(e->d_name + l - 6, ".rules") == 0)
            snprintf(names[n++], 256, "%s/%.*s", dir, (int)(l - 6), e->d_name);
    }
    if (d)
        closedir(d);
    qsort(names, n, 256, (int (*)(const void *, const void *))strcmp);
    return n;
}

static void test_golden_ok(void)
{
    static char names[64][256];
    size_t n = list_cases("tests/rules/ok", names, 64);
    CHECK("golden ok: cases found", n >= 4);
    for (size_t i = 0; i < n; i++) {
        char path[300], out[300], label[700];
        snprintf(path, sizeof path, "%s.rules", names[i]);
        snprintf(out, sizeof out, "%s.out", names[i]);
        char *diag, *dump;
        int rc = load(path, &diag, &dump);
        snprintf(label, sizeof label, "%s loads with 0 errors", path);
        CHECK(label, rc == 0);
        if (rc != 0)
            fputs(diag, stdout);
        if (regen() && rc == 0)
            spit(out, dump);
        char *want = slurp(out);
        snprintf(label, sizeof label, "%s dumps to %s", path, out);
        CHECK(label, want != NULL && strcmp(want, dump) == 0);
        if (want && strcmp(want, dump) != 0)
            printf("--- got:\n%s--- want:\n%s", dump, want);
        /* The normal form is a fixed point: it loads and dumps to itself. */
        char *diag2, *dump2;
        int rc2 = load(out, &diag2, &dump2);
        snprintf(label, sizeof label, "%s is a fixed point of the dump", out);
        CHECK(label, rc2 == 0 && strcmp(dump2, dump) == 0);
        free(diag);
        free(dump);
        free(diag2);
        free(dump2);
        free(want);
    }
}

static void test_golden_fail(void)
{
    static char names[64][256];
    size_t n = list_cases("tests/rules/fail", names, 64);
    CHECK("golden fail: cases found", n >= 17);
    for (size_t i = 0; i < n; i++) {
        char path[300], err[300], label[700];
        snprintf(path, sizeof path, "%s.rules", names[i]);
        snprintf(err, sizeof err, "%s.err", names[i]);
        char *diag, *dump;
        int rc = load(path, &diag, &dump);
        snprintf(label, sizeof label, "%s fails to load", path);
        CHECK(label, rc > 0);
        if (regen() && rc > 0)
            spit(err, diag);
        char *want = slurp(err);
        snprintf(label, sizeof label, "%s reports exactly %s", path, err);
        CHECK(label, want != NULL && strcmp(want, diag) == 0);
        if (want && strcmp(want, diag) != 0)
            printf("--- got:\n%s--- want:\n%s", diag, want);
        /* The count returned is the number of errors printed. */
        int printed = 0;
        for (const char *p = diag; (p = strstr(p, ": error: ")) != NULL; p++)
            printed++;
        snprintf(label, sizeof label, "%s: return value counts the errors", path);
        CHECK(label, rc == printed);
        free(diag);
        free(dump);
        free(want);
    }
}

static void test_example(void)
{
    rules_set *set = NULL;
    int rc = rules_load_file("tests/rules/ok/issue_example.rules", &set, stdout);
    CHECK("issue example: 0 errors", rc == 0 && set != NULL);
    if (set == NULL)
        return;
    CHECK("issue example: 3 rules", rules_count(set) == 3);
    CHECK("issue example: 1 list", rules_list_count(set) == 1);
    const rules_rule *r = rules_rule_at(set, 0);
    CHECK("rapid_logins: name", strcmp(r->name, "rapid_logins") == 0);
    CHECK("rapid_logins: severity high", r->severity == RULES_SEV_HIGH);
    CHECK("rapid_logins: on session.created only", r->on_mask == 1u << EVENT_SESSION_CREATED);
    CHECK("rapid_logins: by user", r->by == RULES_BY_USER);
    CHECK("rapid_logins: suppress 30m", r->suppress_ms == 30 * 60 * 1000);
    CHECK("rapid_logins: 2 tags", r->n_tags == 2 && strcmp(r->tags[1], "brute-force") == 0);
    CHECK("rapid_logins: description",
          r->description && strcmp(r->description, "More than 5 sign-ins within 10 minutes") == 0);
    const rules_expr *w = r->when;
    CHECK("rapid_logins: when is a bool comparison", w->kind == RULES_E_CMP && w->op == RULES_OP_GT &&
                                                         w->type == RULES_T_BOOL);
    const rules_expr *call = w->args[0];
    CHECK("rapid_logins: count() resolved", call->kind == RULES_E_CALL && call->func == RULES_FN_COUNT &&
                                                call->type == RULES_T_NUMBER && call->nargs == 2);
    CHECK("rapid_logins: count() event type arg",
          call->args[0]->kind == RULES_E_EVTYPE && call->args[0]->evtype == EVENT_SESSION_CREATED);
    CHECK("rapid_logins: count() window 10m", call->args[1]->ms == 600000);
    CHECK("rapid_logins: positions", call->line == 9 && call->col == 15 && w->args[1]->num == 5);
    const rules_rule *it = rules_rule_at(set, 2);
    const rules_expr *notin = it->when->args[1];
    CHECK("impossible_travel: not (ip in list)", notin->kind == RULES_E_NOT && notin->args[0]->kind == RULES_E_IN);
    const rules_expr *ref = notin->args[0]->args[1];
    CHECK("impossible_travel: list resolved",
          ref->kind == RULES_E_LISTREF && ref->list == rules_list_find(set, "office_networks"));
    CHECK("impossible_travel: ip field", notin->args[0]->args[0]->field == RULES_F_IP);
    CHECK("rules_rule_at out of range", rules_rule_at(set, 3) == NULL);
    CHECK("rules_list_find miss", rules_list_find(set, "nope") == NULL);
    rules_free(set);
    rules_free(NULL);

    size_t nr = 0, nl = 0;
    CHECK("rules_check_file default catalog", rules_check_file("tests/rules/ok/issue_example.rules", stdout, &nr, &nl) == 0 &&
                                                  nr == 3 && nl == 1);
}

static void test_cidr(void)
{
    rules_set *set = NULL;
    int rc = load_str("list v4 { \"192.0.2.0/24\" }\n"
                      "list host { \"203.0.113.9/32\", \"198.51.100.1\" }\n"
                      "list all4 { \"0.0.0.0/0\" }\n"
                      "list v6 { \"2001:db8::/32\" }\n"
                      "list odd { \"10.1.2.3/12\" }\n",
                      &set);
    CHECK("cidr lists load", rc == 0 && set != NULL);
    if (set == NULL)
        return;
    const rules_list *v4 = rules_list_find(set, "v4"), *host = rules_list_find(set, "host"),
                     *all4 = rules_list_find(set, "all4"), *v6 = rules_list_find(set, "v6"),
                     *odd = rules_list_find(set, "odd");
    CHECK("/24 contains .0", rules_list_contains(v4, "192.0.2.0"));
    CHECK("/24 contains .255", rules_list_contains(v4, "192.0.2.255"));
    CHECK("/24 excludes next net", !rules_list_contains(v4, "192.0.3.1"));
    CHECK("/32 exact match", rules_list_contains(host, "203.0.113.9"));
    CHECK("/32 neighbour excluded", !rules_list_contains(host, "203.0.113.8"));
    CHECK("bare address is a /32", rules_list_contains(host, "198.51.100.1") && !rules_list_contains(host, "198.51.100.2"));
    CHECK("/0 contains everything v4", rules_list_contains(all4, "8.8.8.8") && rules_list_contains(all4, "0.0.0.0"));
    CHECK("/0 v4 excludes v6", !rules_list_contains(all4, "::1"));
    CHECK("v6 /32 contains", rules_list_contains(v6, "2001:db8:1234::1"));
    CHECK("v6 /32 excludes", !rules_list_contains(v6, "2001:db9::1"));
    CHECK("v4 address vs v6 list", !rules_list_contains(v6, "192.0.2.1"));
    CHECK("v4-mapped v6 vs v4 list", !rules_list_contains(v4, "::ffff:192.0.2.1"));
    CHECK("garbage ip", !rules_list_contains(v4, "192.0.2.x") && !rules_list_contains(v4, "") &&
                            !rules_list_contains(v4, "192.0.2.0/24") && !rules_list_contains(v4, NULL));
    CHECK("host bits masked: /12", rules_list_contains(odd, "10.15.255.255") && !rules_list_contains(odd, "10.16.0.0"));
    CHECK("stored network is masked", odd->nets[0].addr[1] == 0 && odd->nets[0].prefix == 12);
    rules_free(set);
}

static void test_limits(void)
{
    char buf[4096];
    /* 64 nested parentheses are fine; 65 are an error, not a crash. */
    for (int depth = 63; depth <= 65; depth++) {
        int n = snprintf(buf, sizeof buf, "rule r { severity low on session.created when ");
        for (int i = 0; i < depth; i++)
            buf[n++] = '(';
        n += snprintf(buf + n, sizeof buf - (size_t)n, "true");
        for (int i = 0; i < depth; i++)
            buf[n++] = ')';
        snprintf(buf + n, sizeof buf - (size_t)n, " }\n");
        int rc = load_str(buf, NULL);
        if (depth <= 64)
            CHECK(depth == 63 ? "63 parentheses ok" : "64 parentheses ok", rc == 0);
        else
            CHECK("65 parentheses: one error", rc == 1);
    }
    /* Deep trees without parentheses: long not chains and long and chains. */
    int n = snprintf(buf, sizeof buf, "rule r { severity low on session.created when ");
    for (int i = 0; i < 1000; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "not ");
    snprintf(buf + n, sizeof buf - (size_t)n, "true }\n");
    CHECK("1000 nots: error", load_str(buf, NULL) == 1);
    n = snprintf(buf, sizeof buf, "rule r { severity low on session.created when true");
    for (int i = 0; i < 300; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, " and true");
    snprintf(buf + n, sizeof buf - (size_t)n, " }\n");
    CHECK("300-term and chain: error", load_str(buf, NULL) == 1);
    /* Nested calls and brackets count too. */
    n = snprintf(buf, sizeof buf, "rule r { severity low on session.created when ");
    for (int i = 0; i < 100; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "f(");
    snprintf(buf + n, sizeof buf - (size_t)n, " }\n");
    CHECK("100 nested calls: error", load_str(buf, NULL) >= 1);

    rules_set *set = (rules_set *)1;
    CHECK("empty buffer: 0 rules, ok", rules_load_buffer("empty", "", 0, &set, NULL) == 0 && set && rules_count(set) == 0);
    rules_free(set);
    size_t nr = 9, nl = 9;
    CHECK("empty file: ok", rules_check_file("tests/rules/ok/empty.rules", stdout, &nr, &nl) == 0 && nr == 0 && nl == 0);

    char *diag = NULL;
    size_t dl = 0;
    FILE *d = open_memstream(&diag, &dl);
    set = (rules_set *)1;
    int rc = rules_load_file("tests/rules/no-such-file.rules", &set, d);
    fclose(d);
    CHECK("missing file: -1", rc == -1 && set == NULL);
    CHECK("missing file: message",
          strcmp(diag, "tests/rules/no-such-file.rules: error: cannot open: No such file or directory\n") == 0);
    free(diag);

    size_t big = RULES_MAX_FILE + 1;
    char *huge = malloc(big);
    memset(huge, '#', big);
    diag = NULL;
    d = open_memstream(&diag, &dl);
    rc = rules_load_buffer("huge", huge, big, &set, d);
    fclose(d);
    CHECK("over 1 MiB: -1", rc == -1 && set == NULL);
    CHECK("over 1 MiB: message", strstr(diag, "huge: error: file is too large") == diag);
    free(diag);
    /* Exactly at the limit is fine (one long comment). */
    CHECK("1 MiB comment: ok", rules_load_buffer("big", huge, RULES_MAX_FILE, &set, NULL) == 0);
    rules_free(set);
    free(huge);

    CHECK("NUL byte: error, no crash", rules_load_buffer("nul", "rule\0x", 6, &set, NULL) >= 1 && set == NULL);
    CHECK("unterminated string at EOF", load_str("list l { \"abc", NULL) >= 1);
    CHECK("lone rule keyword", load_str("rule", NULL) == 1);
}

static void test_tabs(void)
{
    char *diag = NULL;
    size_t dl = 0;
    FILE *d = open_memstream(&diag, &dl);
    rules_set *set;
    const char *src = "rule r {\n\tseverity\tbad\n\ton session.created\n\twhen true\n}\n";
    int rc = rules_load_buffer("tabs", src, strlen(src), &set, d);
    fclose(d);
    CHECK("tab: one error", rc == 1);
    CHECK("tab: caret keeps tabs",
          strcmp(diag, "tabs:2:11: error: unknown severity 'bad' (use info, low, medium, high or critical)\n"
                       "\tseverity\tbad\n\t        \t^~~\n") == 0);
    free(diag);
}

static void test_long_line(void)
{
    /* An error in the middle of a very long line shows a window of it. */
    char src[2200];
    int n = snprintf(src, sizeof src, "rule r { severity low on session.created when ");
    for (int i = 0; i < 40; i++)
        n += snprintf(src + n, sizeof src - (size_t)n, "true and ");
    n += snprintf(src + n, sizeof src - (size_t)n, "bogus");
    for (int i = 0; i < 20; i++)
        n += snprintf(src + n, sizeof src - (size_t)n, " and true");
    snprintf(src + n, sizeof src - (size_t)n, " }\n");
    char *diag = NULL;
    size_t dl = 0;
    FILE *d = open_memstream(&diag, &dl);
    rules_set *set;
    int rc = rules_load_buffer("long", src, strlen(src), &set, d);
    fclose(d);
    CHECK("long line: 1 error", rc == 1);
    char want_head[80];
    snprintf(want_head, sizeof want_head, "long:1:%d: error: unknown field 'bogus'\n...",
             (int)(strstr(src, "bogus") - src) + 1);
    CHECK("long line: position and cut marker", strncmp(diag, want_head, strlen(want_head)) == 0);
    /* Caret sits under 'bogus': 3 for "..." plus 100 bytes of context. */
    const char *caret = strchr(strchr(diag, '\n') + 1, '\n') + 1;
    CHECK("long line: caret under the token", strspn(caret, " ") == 103 && strncmp(caret + 103, "^~~~~\n", 7) == 0);
    CHECK("long line: shown line is bounded", strlen(diag) < 400);
    free(diag);
}

/* `enabled true|false`: parsed, dumped back, kept with the rule's source text;
 * rules_disable (serve --disable-rule) does the same from outside. */
static void test_enabled(void)
{
    const char *src = "rule a { severity low on session.created when count(session.created, 1m) > 1\n"
                      "  # kept as written\n  enabled false }\n"
                      "rule b { severity low on session.created when count(session.created, 1m) > 1 enabled true }\n";
    rules_set *set = NULL;
    CHECK("enabled: loads", load_str(src, &set) == 0 && set != NULL);
    if (set == NULL)
        return;
    const rules_rule *a = rules_rule_at(set, 0), *b = rules_rule_at(set, 1);
    CHECK("enabled false: disabled", a->disabled);
    CHECK("enabled true: enabled", !b->disabled);
    CHECK("source: the rule as written, `rule` to its brace",
          a->source != NULL && strncmp(a->source, "rule a {", 8) == 0 && strstr(a->source, "# kept as written") &&
              a->source[strlen(a->source) - 1] == '}');
    char *dump = NULL;
    size_t dl = 0;
    FILE *u = open_memstream(&dump, &dl);
    rules_dump(set, u);
    fclose(u);
    CHECK("dump: enabled false written back, enabled true the default", dump != NULL &&
          strstr(dump, "  enabled false\n}\n\nrule b") != NULL && strstr(strstr(dump, "rule b"), "enabled") == NULL);
    free(dump);
    CHECK("rules_disable: a known rule", rules_disable(set, "b") == 0 && rules_rule_at(set, 1)->disabled);
    CHECK("rules_disable: an unknown one", rules_disable(set, "zzz") < 0);
    rules_free(set);
    CHECK("enabled: only true or false", load_str("rule c { severity low on session.created "
                                                  "when count(session.created, 1m) > 1 enabled maybe }", NULL) == 1);
    CHECK("enabled: at most once", load_str("rule c { severity low on session.created "
                                            "when count(session.created, 1m) > 1 enabled true enabled false }",
                                            NULL) == 1);
}

int main(void)
{
    test_example();
    test_golden_ok();
    test_golden_fail();
    test_cidr();
    test_limits();
    test_tabs();
    test_long_line();
    test_enabled();
    return check_summary();
}
