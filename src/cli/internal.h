/*
 * internal.h (private to src/cli): what the subcommand files share: exit codes,
 * flag parsing and opening the store read-only with the CLI's messages.
 */
#ifndef VEILLE_CLI_INTERNAL_H
#define VEILLE_CLI_INTERNAL_H

#include <stdio.h>

#include "ipintel/ipintel.h"
#include "store/store.h"
#include "util/util.h"

enum { EXIT_NOT_FOUND = 1, EXIT_USAGE = 2, EXIT_RUNTIME = 3 };

/* "--name value" or "--name=value" at argv[*i]; advances *i past what it used.
 * Returns 1 when matched with *value set, 0 when not this flag, -1 on a missing value. */
int cli_flag_value(int argc, char **argv, int *i, const char *name, const char **value);

/* -h or --help anywhere in argv: prints usage on stdout and returns true. Each
 * subcommand asks first, so `CMD --help` works whatever else is on the line. */
bool cli_help_wanted(int argc, char **argv, const char *usage);

/* `--rules none`: run without detection, said out loud rather than by a missing file. */
#define CLI_RULES_NONE "none"
/* Room for the message naming every default path tried. */
#define CLI_RULES_ERRLEN 2048

/* The rule file in force as an absolute path, from --rules (given; NULL when not
 * given): CLI_RULES_NONE gives "", a FILE its absolute path (it must exist), and no
 * --rules the first of VEILLE_SHARE_DIR/rules/default.rules, then rules/default.rules
 * in the binary's directory and its parent; never the working directory. -1 with
 * err naming the paths tried when there is none. given may alias path. */
int cli_rules_resolve(const char *given, char *path, size_t pathlen, char *err, size_t errlen);

/* --ip-db FILE|none: the location database for the ip fields. given NULL:
 * IPINTEL_DEFAULT_DB, whose absence is not an error (0, *out NULL, *warn true,
 * msg saying so); "none": no database (0, *out NULL); a FILE that cannot be
 * read: -1. msg says what was opened, or why not. */
#define CLI_IP_DB_NONE "none"
int cli_ip_db_open(const char *given, ipintel **out, char *msg, size_t msglen, bool *warn);

/* `veille outbox` under the name cmd (`veille alerts --pending` shares it). */
int cli_outbox_list(int argc, char **argv, const char *cmd);

/* --ip ARG of cmd in canonical form (util_ip_canonical: ::ffff:1.2.3.4 is
 * 1.2.3.4, as stored). -1 after printing why ARG is not an address. */
int cli_ip_arg(const char *cmd, const char *arg, char out[UTIL_IP_LEN]);

/* 0, or the exit status after printing why the store cannot be read. */
int cli_open_readonly(const char *dir, store **st);

/* One row of a text table (cli.c). Every cell goes through util_term_fit, so
 * payload text cannot reach the terminal raw, and is padded by display width
 * (Chloé is 5 columns, not 6 bytes). Cells are separated by two spaces. */
typedef struct {
    char buf[8192];
    size_t n;
} cli_row;

enum {
    CLI_CELL_CUT = 1,   /* free text: cut to the width with an ellipsis (ids overflow, whole) */
    CLI_CELL_RIGHT = 2, /* numbers: right-aligned */
};
void cli_row_start(cli_row *r);
/* width 0: the last cell, neither padded nor cut. */
void cli_row_cell(cli_row *r, const char *s, size_t width, unsigned flags);
/* Ends the row with a newline and writes it to f. */
void cli_row_print(cli_row *r, FILE *f);

#endif
