/*
 * check.h: the unit tests' tiny harness. Each CHECK prints "PASS name" or
 * "FAIL name (file:line): expr"; check_summary() prints "N passed, N failed" and
 * gives the exit status. tests/run.sh adds those lines up across binaries.
 */
#ifndef VEILLE_CHECK_H
#define VEILLE_CHECK_H

#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(name, cond)                                                          \
    do {                                                                           \
        if (cond) {                                                                \
            check_passed++;                                                        \
            printf("PASS %s\n", (name));                                           \
        } else {                                                                   \
            check_failed++;                                                        \
            printf("FAIL %s (%s:%d): %s\n", (name), __FILE__, __LINE__, #cond);    \
        }                                                                          \
    } while (0)

static inline int check_summary(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
