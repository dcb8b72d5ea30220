/*
 * install.c: what this veille is and where its files are: `veille version` (its
 * own version and those of the libraries it runs with) and the rule file in force
 * when --rules is not given.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <h2o/version.h>
#include <jansson.h>
#include <lmdb.h>
#include <msgpack.h>
#include <openssl/crypto.h>

#include "cli/cli.h"
#include "cli/internal.h"
#include "util/util.h"

#if !defined(VEILLE_VERSION) || !defined(VEILLE_SHARE_DIR)
#error "meson.build defines VEILLE_VERSION and VEILLE_SHARE_DIR"
#endif

static const char version_usage[] =
    "usage: veille version (or veille --version)\n"
    "Prints veille's version, then the versions of the libraries it runs with.\n";

int cli_version(int argc, char **argv)
{
    if (cli_help_wanted(argc, argv, version_usage))
        return 0;
    if (argc > 0) {
        fprintf(stderr, "veille version: unexpected argument '%s'\n%s", argv[0], version_usage);
        return EXIT_USAGE;
    }
    /* the libraries as loaded (run time) where they say so, else as compiled against:
     * a bug report needs what actually ran */
#ifdef HAVE_JANSSON_VERSION_STR
    const char *jansson = jansson_version_str();
#else
    const char *jansson = JANSSON_VERSION;
#endif
    printf("veille %s\n", VEILLE_VERSION);
    printf("  h2o %s\n", H2O_VERSION);
    printf("  %s\n", mdb_version(NULL, NULL, NULL));
    printf("  %s\n", OpenSSL_version(OPENSSL_VERSION));
    printf("  jansson %s\n", jansson);
    printf("  msgpack-c %s\n", msgpack_version());
    return 0;
}

/* ---------------------------------------------------------------- rules */

#define DEFAULT_RULES "rules/default.rules"

/* dir/rules/default.rules, absolute, when it is a regular file. */
static bool default_rules_in(const char *dir, char *path, size_t pathlen)
{
    char cand[PATH_MAX + sizeof DEFAULT_RULES + 1], abs[PATH_MAX];
    struct stat st;
    snprintf(cand, sizeof cand, "%s/%s", dir, DEFAULT_RULES);
    if (realpath(cand, abs) == NULL || stat(abs, &st) != 0 || !S_ISREG(st.st_mode) || strlen(abs) >= pathlen)
        return false;
    snprintf(path, pathlen, "%s", abs);
    return true;
}

int cli_rules_resolve(const char *given, char *path, size_t pathlen, char *err, size_t errlen)
{
    if (given != NULL && strcmp(given, CLI_RULES_NONE) == 0) {
        path[0] = '\0';
        return 0;
    }
    if (given != NULL) {
        /* absolute, so that the log says which file and SIGHUP reloads the same one */
        char abs[PATH_MAX];
        if (realpath(given, abs) == NULL)
            return util_err(err, errlen, "--rules %s: %s", given, strerror(errno));
        if (strlen(abs) >= pathlen)
            return util_err(err, errlen, "--rules %s: path too long", given);
        snprintf(path, pathlen, "%s", abs);
        return 0;
    }
    /* Never the working directory: a service's cwd says nothing about which rules it
     * should run, and a wrong guess used to mean detection silently off. The binary's
     * own directory and its parent come after the installed copy so that build/veille
     * and build-asan/veille find the source tree's rules/ from any cwd. */
    char dirs[3][PATH_MAX];
    size_t n = 0;
    snprintf(dirs[n++], sizeof dirs[0], "%s", VEILLE_SHARE_DIR);
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        for (int up = 0; up < 2; up++) {
            char *slash = strrchr(exe, '/');
            if (slash == NULL || slash == exe)
                break;
            *slash = '\0';
            snprintf(dirs[n++], sizeof dirs[0], "%s", exe);
        }
    }
    char tried[3 * (PATH_MAX + sizeof DEFAULT_RULES + 4)] = "";
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        if (default_rules_in(dirs[i], path, pathlen))
            return 0;
        int w = snprintf(tried + used, sizeof tried - used, "%s%s/%s", i ? ", " : "", dirs[i], DEFAULT_RULES);
        if (w > 0 && (size_t)w < sizeof tried - used)
            used += (size_t)w;
    }
    return util_err(err, errlen, "no rule file: --rules not given and none of %s exists; give --rules FILE, or "
                                 "--rules none to run without detection", tried);
}
