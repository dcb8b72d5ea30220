/*
 * cli.h: the subcommands. Each takes argc/argv after the subcommand name, prints
 * to stdout/stderr itself, and returns the process exit status:
 *   0 success, 1 "not found" / nothing to show, 2 usage or input error, 3 runtime error.
 */
#ifndef VEILLE_CLI_H
#define VEILLE_CLI_H

#include "http/http.h"

int cli_serve(int argc, char **argv);
int cli_history(int argc, char **argv);
int cli_user(int argc, char **argv);
int cli_users(int argc, char **argv);
int cli_stats(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_replay(int argc, char **argv);
int cli_alerts(int argc, char **argv);
int cli_outbox(int argc, char **argv);
int cli_test_alert(int argc, char **argv);
int cli_version(int argc, char **argv);

/* Settings of `veille serve` from a config file: one "key = value" per line, '#'
 * comments, keys named like the long flags without dashes (listen, data, rules,
 * alert (repeatable), max-body, retention, map-size, log-level). Errors come back as
 * "FILE:LINE: message". */
int cli_config_load(const char *path, http_options *o, char *err, size_t errlen);

/* Apply one serve setting by name; shared by flags and the config file so both
 * accept exactly the same values. The message in err starts with the setting's
 * name ("max-body: ..."), so a caller adds only where it came from: "FILE:LINE: "
 * for a config line, "--" for a flag (never the name again). */
int cli_config_set(http_options *o, const char *key, const char *value, char *err, size_t errlen);

#endif
