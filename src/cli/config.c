/* config.c: `veille serve` settings, from flags or a config file, one parser for both. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "alert/alert.h"
#include "util/log.h"
#include "util/util.h"

static int parse_listen(http_options *o, const char *v, char *err, size_t errlen)
{
    /* HOST:PORT, [IPv6]:PORT, or :PORT */
    const char *colon = strrchr(v, ':');
    if (colon == NULL)
        return util_err(err, errlen, "listen: '%s' is not HOST:PORT", v);
    const char *host = v;
    size_t hlen = (size_t)(colon - v);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    if (hlen >= sizeof o->listen_host)
        return util_err(err, errlen, "listen: the host is too long");
    int64_t port;
    if (util_parse_i64(colon + 1, &port, NULL, 0) < 0 || port > 65535)
        return util_err(err, errlen, "listen: '%s' is not a port number (0-65535)", colon + 1);
    if (hlen == 0) {
        snprintf(o->listen_host, sizeof o->listen_host, "0.0.0.0");
    } else {
        memcpy(o->listen_host, host, hlen);
        o->listen_host[hlen] = '\0';
    }
    o->listen_port = (int)port;
    return 0;
}

static int parse_size(const char *v, size_t *out, char *err, size_t errlen)
{
    /* bytes, or with a K/M/G suffix (powers of 1024) */
    char num[32];
    size_t n = strlen(v);
    if (n == 0 || n >= sizeof num)
        return util_err(err, errlen, "'%s' is not a size (e.g. 1048576, 512K, 1M, 8G)", v);
    memcpy(num, v, n + 1);
    uint64_t mult = 1;
    char last = (char)toupper((unsigned char)num[n - 1]);
    if (last == 'K' || last == 'M' || last == 'G') {
        mult = last == 'K' ? 1024 : last == 'M' ? 1024 * 1024 : 1024ull * 1024 * 1024;
        num[n - 1] = '\0';
    }
    int64_t x;
    if (util_parse_i64(num, &x, NULL, 0) < 0 || x <= 0 || (uint64_t)x > UINT64_MAX / mult / 2)
        return util_err(err, errlen, "'%s' is not a size (e.g. 1048576, 512K, 1M, 8G)", v);
    *out = (size_t)((uint64_t)x * mult);
    return 0;
}

int cli_config_set(http_options *o, const char *key, const char *value, char *err, size_t errlen)
{
    char sub[200];
    if (strcmp(key, "listen") == 0)
        return parse_listen(o, value, err, errlen);
    if (strcmp(key, "data") == 0) {
        if (value[0] == '\0' || strlen(value) >= sizeof o->data_dir)
            return util_err(err, errlen, "data: expected the path of a directory");
        snprintf(o->data_dir, sizeof o->data_dir, "%s", value);
        return 0;
    }
    if (strcmp(key, "rules") == 0) {
        if (value[0] == '\0' || strlen(value) >= sizeof o->rules_path)
            return util_err(err, errlen, "rules: expected the path of a rule file, or none");
        snprintf(o->rules_path, sizeof o->rules_path, "%s", value);
        o->rules_explicit = 1;
        return 0;
    }
    if (strcmp(key, "alert") == 0) {
        if (o->alert_count >= HTTP_MAX_ALERT_SPECS)
            return util_err(err, errlen, "alert: at most %d sinks", HTTP_MAX_ALERT_SPECS);
        for (size_t i = 0; i < o->alert_count; i++)
            if (strcmp(o->alerts[i].spec, value) == 0)
                return util_err(err, errlen, "alert: sink '%s' given twice", value);
        /* a sink that cannot work is refused now, never accepted and dropped */
        if (alert_sink_parse(value, &o->alerts[o->alert_count], sub, sizeof sub) < 0)
            return util_err(err, errlen, "alert: %s", sub);
        o->alert_count++;
        return 0;
    }
    if (strcmp(key, "min-severity") == 0 || strcmp(key, "facility") == 0 || strcmp(key, "header") == 0 ||
        strcmp(key, "ca") == 0) {
        /* a sink's options follow its alert line (or --alert flag) */
        if (o->alert_count == 0)
            return util_err(err, errlen, "%s: applies to the sink before it: give alert (--alert SPEC) first", key);
        /* alert_sink_set_option's messages name the option already */
        return alert_sink_set_option(&o->alerts[o->alert_count - 1], key, value, err, errlen);
    }
    if (strcmp(key, "alert-retry-for") == 0 || strcmp(key, "alert-timeout") == 0) {
        int64_t ms;
        if (util_parse_duration(value, &ms, sub, sizeof sub) < 0)
            return util_err(err, errlen, "%s: %s", key, sub);
        if (ms < 1000)
            return util_err(err, errlen, "%s: must be at least 1s", key);
        if (strcmp(key, "alert-retry-for") == 0)
            o->alert_retry_for_ms = ms;
        else
            o->alert_timeout_ms = ms;
        return 0;
    }
    if (strcmp(key, "outbox-max") == 0) {
        int64_t n;
        if (util_parse_i64(value, &n, NULL, 0) < 0 || n < 1)
            return util_err(err, errlen, "outbox-max: '%s' is not a positive whole number", value);
        o->outbox_max = (uint64_t)n;
        return 0;
    }
    if (strcmp(key, "max-body") == 0) {
        if (parse_size(value, &o->max_body, sub, sizeof sub) < 0)
            return util_err(err, errlen, "max-body: %s", sub);
        return 0;
    }
    if (strcmp(key, "map-size") == 0) {
        if (parse_size(value, &o->map_size, sub, sizeof sub) < 0)
            return util_err(err, errlen, "map-size: %s", sub);
        if (o->map_size < 1024 * 1024)
            return util_err(err, errlen, "map-size: at least 1M");
        return 0;
    }
    if (strcmp(key, "max-backlog") == 0) {
        size_t bytes;
        if (parse_size(value, &bytes, sub, sizeof sub) < 0)
            return util_err(err, errlen, "max-backlog: %s", sub);
        if (bytes < 1024 * 1024)
            return util_err(err, errlen, "max-backlog: at least 1M");
        o->max_backlog = bytes;
        return 0;
    }
    if (strcmp(key, "retention") == 0) {
        if (util_parse_duration(value, &o->retention_ms, sub, sizeof sub) < 0)
            return util_err(err, errlen, "retention: %s", sub);
        if (o->retention_ms < 60 * 1000)
            return util_err(err, errlen, "retention: must be at least 1m");
        return 0;
    }
    if (strcmp(key, "log-level") == 0) {
        log_level lvl;
        if (log_parse_level(value, &lvl) < 0)
            return util_err(err, errlen, "log-level: '%s' is not one of error, warn, info, debug", value);
        log_set_level(lvl);
        return 0;
    }
    return util_err(err, errlen, "%s: unknown setting (listen, data, rules, alert, min-severity, facility, header, "
                                 "ca, alert-retry-for, alert-timeout, outbox-max, max-body, retention, map-size, "
                                 "max-backlog, log-level)", key);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int cli_config_load(const char *path, http_options *o, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return util_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    char line[4096], sub[UTIL_ERRLEN];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            rc = util_err(err, errlen, "%s:%d: line too long", path, lineno);
            break;
        }
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        char *s = trim(line);
        if (*s == '\0')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            rc = util_err(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        size_t vl = strlen(value);
        if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
            value[vl - 1] = '\0';
            value++;
        }
        if (cli_config_set(o, key, value, sub, sizeof sub) < 0) {
            rc = util_err(err, errlen, "%s:%d: %s", path, lineno, sub);
            break;
        }
    }
    if (rc == 0 && ferror(f))
        rc = util_err(err, errlen, "%s: read error", path);
    fclose(f);
    return rc;
}
