/*
 * internal.h (private to src/cli): what the subcommand files share: exit codes,
 * flag parsing and opening the store read-only with the CLI's messages.
 */
#ifndef VEILLE_CLI_INTERNAL_H
#define VEILLE_CLI_INTERNAL_H

#include "store/store.h"

enum { EXIT_NOT_FOUND = 1, EXIT_USAGE = 2, EXIT_RUNTIME = 3 };

/* "--name value" or "--name=value" at argv[*i]; advances *i past what it used.
 * Returns 1 when matched with *value set, 0 when not this flag, -1 on a missing value. */
int cli_flag_value(int argc, char **argv, int *i, const char *name, const char **value);

/* `veille outbox` under the name cmd (`veille alerts --pending` shares it). */
int cli_outbox_list(int argc, char **argv, const char *cmd);

/* 0, or the exit status after printing why the store cannot be read. */
int cli_open_readonly(const char *dir, store **st);

#endif
