/*
 * fuzz_rules.c: libFuzzer target for the rule-file front end. Loads arbitrary
 * bytes as a rule file; when they load, dumps the set, renders every `when` into
 * a small (truncating) and a large buffer, and checks that the normal form is a
 * fixed point (dump -> load -> dump gives the same text). Built by run.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules.h"

/* Dumps `set` into a malloc'd buffer; NULL when rules_dump or the stream fails. */
static char *dump_to_memory(const rules_set *set, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (f == NULL)
        return NULL;
    int rc = rules_dump(set, f);
    if (fclose(f) != 0 || rc != 0) {
        free(text);
        return NULL;
    }
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
        abort();

    rules_set *set = NULL;
    if (rules_load_buffer("fuzz.rules", (const char *)data, size, &set, NULL) != 0)
        return 0;

    if (rules_dump(set, devnull) != 0)
        __builtin_trap();
    for (size_t i = 0; i < rules_count(set); i++) {
        const rules_rule *rule = rules_rule_at(set, i);
        char small[24], large[8192];
        rules_expr_text(rule->when, small, sizeof small);
        rules_expr_text(rule->when, large, sizeof large);
        if (strnlen(small, sizeof small) >= sizeof small || strnlen(large, sizeof large) >= sizeof large)
            __builtin_trap(); /* not terminated */
        if (strncmp(small, large, strlen(small)) != 0)
            __builtin_trap(); /* the cut text is not a prefix of the whole */
    }

    /* Round trip: the normal form must load and dump to itself. */
    size_t len1 = 0, len2 = 0;
    char *text1 = dump_to_memory(set, &len1);
    if (text1 == NULL)
        __builtin_trap();
    rules_set *again = NULL;
    int errors = rules_load_buffer("dump.rules", text1, len1, &again, stderr);
    if (errors != 0) {
        fprintf(stderr, "fuzz_rules: the dump does not load (%d errors):\n%s", errors, text1);
        __builtin_trap();
    }
    char *text2 = dump_to_memory(again, &len2);
    if (text2 == NULL)
        __builtin_trap();
    if (len1 != len2 || memcmp(text1, text2, len1) != 0) {
        fprintf(stderr, "fuzz_rules: dump is not a fixed point\n--- first:\n%s--- second:\n%s", text1, text2);
        __builtin_trap();
    }
    free(text1);
    free(text2);
    rules_free(again);
    rules_free(set);
    return 0;
}
