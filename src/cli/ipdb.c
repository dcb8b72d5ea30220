/* ipdb.c: --ip-db, the location database serve and replay open, with one policy. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/internal.h"

int cli_ip_db_open(const char *given, ipintel **out, char *msg, size_t msglen, bool *warn)
{
    *out = NULL;
    *warn = false;
    if (given != NULL && strcmp(given, CLI_IP_DB_NONE) == 0) {
        snprintf(msg, msglen, "no ip database (--ip-db none): asn, as_name and ip.* other than ip.private are "
                              "empty, country has no fallback");
        return 0;
    }
    char err[UTIL_ERRLEN];
    if (ipintel_open(given, out, err, sizeof err) < 0) {
        snprintf(msg, msglen, "%s", err);
        if (given != NULL)
            return -1; /* asked for by name: a typo must not pass for "no data" */
        /* the default one is optional: detection without it, said once */
        *warn = true;
        snprintf(msg, msglen, "%s; asn, as_name and ip.* other than ip.private stay empty", err);
        return 0;
    }
    char when[UTIL_RFC3339_LEN];
    util_format_rfc3339(ipintel_created_at(*out) * 1000, when, sizeof when);
    snprintf(msg, msglen, "ip database %s (%s, built %.10s)", given != NULL ? given : IPINTEL_DEFAULT_DB,
             ipintel_vendor(*out), when);
    return 0;
}
