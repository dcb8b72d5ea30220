/*
 * serve.h: `veille serve`, the webhook receiver's command: its options (one table,
 * src/serve/options.c, drives the flags, the config file, --help and their
 * errors) and its start-up policy (src/serve/startup.c: the signing secrets from
 * the environment, the sinks' checks, the rule file), then http_serve.
 */
#ifndef VEILLE_SERVE_H
#define VEILLE_SERVE_H

/* argc/argv after "serve". Prints its own messages, one "veille serve: " prefix
 * each, and returns the exit status: 0 after a clean stop (SIGTERM, SIGINT) or
 * --help, 2 for a bad option, config file, secret or rule file, 3 when the server
 * cannot start (port in use, store unopenable, ...). */
int serve_main(int argc, char **argv);

#endif
