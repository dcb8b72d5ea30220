/*
 * internal.h (private to src/serve): what startup.c asks of options.c: the options
 * of `veille serve` read into an http_options, and the --help text, both from the
 * one table of options in options.c.
 */
#ifndef VEILLE_SERVE_INTERNAL_H
#define VEILLE_SERVE_INTERNAL_H

#include <stddef.h>

#include "http/http.h"

/* Room for an option's message: a config error names the file and may list every
 * setting ("FILE:LINE: colour: unknown setting (listen, data, ...)"). */
#define SERVE_ERRLEN 1024
/* Room for the --help text (serve_usage_format refuses rather than cut it). */
#define SERVE_USAGE_MAX 16384

/* serve_options_parse's failures; err says what, with one prefix naming where:
 * "--max-body: ..." for a flag, "FILE:LINE: max-body: ..." for a config line. */
enum {
    SERVE_ERR_BAD = -1,     /* a bad value, a missing value, an unreadable or bad config file */
    SERVE_ERR_UNKNOWN = -2, /* an argument that is no option ("unknown argument '--x'"): show the usage */
};

/* Fills o, which holds http_options_defaults(), from serve's arguments: every
 * --config FILE first, whatever its position and in their order, then the flags in
 * theirs, so a flag overrides the file and a sink option (--min-severity, ...)
 * applies to the --alert before it. Each flag is "--name value" or "--name=value";
 * a config line is "name = value". Stops at the first error: 0, or a SERVE_ERR_*. */
int serve_options_parse(int argc, char **argv, http_options *o, char *err, size_t errlen);

/* `veille serve --help` into buf: the synopsis, every option of the table with its
 * value, default and help (the sink options under --alert, with the SPEC forms),
 * then the environment and signals. 0, or -1 when len is too small (nothing cut). */
int serve_usage_format(char *buf, size_t len);

#endif
