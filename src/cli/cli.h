/*
 * cli.h: the subcommands but serve (src/serve/serve.h). Each takes argc/argv after
 * the subcommand name, prints to stdout/stderr itself, and returns the process exit
 * status, for every command serve included:
 *   0 success, 1 "not found" / nothing to show, 2 usage or input error, 3 runtime error.
 */
#ifndef VEILLE_CLI_H
#define VEILLE_CLI_H

#include "ipintel/ipintel.h"

#include <stdbool.h>
#include <stddef.h>

enum { EXIT_NOT_FOUND = 1, EXIT_USAGE = 2, EXIT_RUNTIME = 3 };

int cli_history(int argc, char **argv);
int cli_user(int argc, char **argv);
int cli_users(int argc, char **argv);
int cli_stats(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_replay(int argc, char **argv);
int cli_alerts(int argc, char **argv);
int cli_outbox(int argc, char **argv);
int cli_incidents(int argc, char **argv);
int cli_test_alert(int argc, char **argv);
int cli_version(int argc, char **argv);
int cli_allow(int argc, char **argv);
int cli_rules(int argc, char **argv);
int cli_simulate(int argc, char **argv);

/* What `veille serve` (src/serve) shares with the commands here. */

/* -h or --help anywhere in argv: prints usage on stdout and returns true. Each
 * command asks first, so `CMD --help` works whatever else is on the line. */
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

#include <jansson.h>
#include "store/store.h"
/* A time as JSON: RFC 3339 UTC with milliseconds, or null for 0 ("never",
 * "unknown"). Every JSON output of the CLI and the console writes times so. */
json_t *cli_json_time(int64_t ms);
/* The JSON of a user record and of one history record, as `user --json` and
 * `history --json` print them (the console's API serves the same objects).
 * The caller owns the result. */
json_t *cli_user_json(const event_user *u);
json_t *cli_history_json(const store_history_entry *e);

#endif
