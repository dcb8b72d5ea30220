/*
 * hold_writer.c: a test helper, not a unit test. `hold-writer DIR` opens the
 * veille store in DIR, begins a write transaction (LMDB's writer lock is one
 * per environment, across processes), prints "held" and keeps it until its
 * standard input closes. A `veille serve` on DIR then cannot apply anything:
 * its apply thread waits, the log keeps accepting, and the backlog grows as
 * fast as the test sends (health.test.mjs, backpressure). Exit 3 when the
 * store cannot be opened or written.
 */
#include <stdio.h>

#include "store/store.h"
#include "util/util.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: hold-writer DIR (holds the store's writer lock until stdin closes)\n");
        return 2;
    }
    char err[UTIL_ERRLEN];
    store *s = NULL;
    store_txn *t = NULL;
    if (store_open(&s, argv[1], 0, 0, err, sizeof err) < 0 || store_txn_begin(s, &t, err, sizeof err) < 0) {
        fprintf(stderr, "hold-writer: %s\n", err);
        store_close(s);
        return 3;
    }
    printf("held\n");
    fflush(stdout);
    while (getchar() != EOF)
        ;
    store_txn_abort(t);
    store_close(s);
    return 0;
}
