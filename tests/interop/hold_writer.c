/*
 * hold_writer.c: a test helper, not a unit test. `hold-writer DIR` opens the
 * LMDB environment of the veille store in DIR, begins a write transaction
 * (LMDB's writer lock is one per environment, across processes), prints "held"
 * and keeps it until its standard input closes. A `veille serve` on DIR then
 * cannot apply anything: its apply thread waits, the log keeps accepting, and
 * the backlog grows as fast as the test sends (health.test.mjs, backpressure).
 * It goes to LMDB directly, not through store_open: that takes veille.lock,
 * which the serve under test holds. Exit 3 when the environment cannot be
 * opened or written.
 */
#include <stdio.h>

#include <lmdb.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: hold-writer DIR (holds the store's writer lock until stdin closes)\n");
        return 2;
    }
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    int rc = mdb_env_create(&env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(env, 64);
    if (rc == 0)
        rc = mdb_env_open(env, argv[1], 0, 0600);
    if (rc == 0)
        rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc != 0) {
        fprintf(stderr, "hold-writer: %s: %s\n", argv[1], mdb_strerror(rc));
        if (env != NULL)
            mdb_env_close(env);
        return 3;
    }
    printf("held\n");
    fflush(stdout);
    while (getchar() != EOF)
        ;
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return 0;
}
