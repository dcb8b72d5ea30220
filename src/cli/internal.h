/*
 * internal.h (private to src/cli): what the subcommand files share beyond cli.h
 * (exit codes, --help, the rule file in force, which serve uses too): flag parsing,
 * opening the store read-only with the CLI's messages, text tables.
 */
#ifndef VEILLE_CLI_INTERNAL_H
#define VEILLE_CLI_INTERNAL_H

#include <stdio.h>

#include "cli/cli.h"
#include "store/store.h"
#include "util/util.h"

/* "--name value" or "--name=value" at argv[*i]; advances *i past what it used.
 * Returns 1 when matched with *value set, 0 when not this flag, -1 on a missing value. */
int cli_flag_value(int argc, char **argv, int *i, const char *name, const char **value);


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

/* JSON of one history record (history --json) and of a user (user --json); one
 * compact JSON line on stdout (takes o); a "label value" line, value escaped. */
#include <jansson.h>
/* cli_history_json and cli_user_json: in cli.h (the console uses them too) */
void cli_print_json_line(json_t *o);
void cli_print_field(size_t width, const char *label, const char *value);

/* One write transaction on the store in data beside a running serve
 * (STORE_SIDE_WRITER, triage.c says why that is safe): fill runs in it, then it
 * commits. 0, or the exit status after printing "veille CMD: why" on stderr. */
typedef int (*cli_side_fill)(store_txn *t, void *ctx, char *err, size_t errlen);
int cli_side_write(const char *cmd, const char *data, cli_side_fill fill, void *ctx);

/* `veille alerts show|ack|resolve|false-positive` (triage.c): argv[0] is the verb. */
int cli_alerts_triage(int argc, char **argv);
/* True when argv0 is one of those verbs. */
bool cli_alerts_triage_verb(const char *argv0);
/* `veille simulate`'s scenarios (scenario.c). Each delivery body is handed to
 * emit in order; emit returns 0, or -1 to stop (it says why itself). tag goes into
 * every user, session and delivery id so each run is new to the store. */
#define CLI_SCENARIO_NAMES "sample, brute-force, impossible-travel, spray"
typedef int (*cli_scenario_emit)(const char *type, const char *body, size_t len, void *ctx);
int cli_scenario_run(const char *name, const char *tag, int64_t now_ms, cli_scenario_emit emit, void *ctx, char *err,
                     size_t errlen);
/* The default rules the scenario raises ("" none), or NULL for an unknown name. */
const char *cli_scenario_expected(const char *name);

#endif
