/*
 * alert.c: the alert's JSON form and the local sinks (stdout, file:PATH), which
 * write one line per alert in their sink's format (alert_render).
 * JSON is built with jansson: the store keeps msgpack, JSON exists only here
 * at the edge.
 */
#include "alert/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "util/util.h"

typedef struct {
    const alert_sink_config *cfg; /* owned by the caller of alert_sinks_open, which outlives us */
    int fd;
    bool dirty; /* written since the last sync */
} sink;

struct alert_sinks {
    sink sinks[ALERT_SINKS_MAX];
    size_t n;
};

int alert_sinks_open(const alert_sink_config *cfgs, size_t n, alert_sinks **out, char *err, size_t errlen)
{
    *out = NULL;
    if (n > ALERT_SINKS_MAX)
        return util_err(err, errlen, "--alert: at most %d sinks", ALERT_SINKS_MAX);
    alert_sinks *s = calloc(1, sizeof *s);
    if (s == NULL)
        return util_err(err, errlen, "alert: out of memory");
    for (size_t i = 0; i < n; i++) {
        const alert_sink_config *c = &cfgs[i];
        if (alert_sink_is_remote(c))
            continue;
        sink *k = &s->sinks[s->n];
        k->cfg = c;
        if (c->kind == ALERT_SINK_STDOUT) {
            k->fd = STDOUT_FILENO;
        } else {
            k->fd = open(c->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
            if (k->fd < 0) {
                int e = errno;
                alert_sinks_close(s);
                return util_err(err, errlen, "--alert %s: cannot open %s: %s", c->spec, c->path, strerror(e));
            }
        }
        s->n++;
    }
    *out = s;
    return 0;
}

void alert_sinks_close(alert_sinks *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        if (s->sinks[i].cfg->kind == ALERT_SINK_FILE && s->sinks[i].fd >= 0)
            close(s->sinks[i].fd);
    free(s);
}

size_t alert_sinks_count(const alert_sinks *s)
{
    return s != NULL ? s->n : 0;
}

json_t *alert_evidence_json(const store_evidence *e)
{
    switch (e->kind) {
    case STORE_EVIDENCE_NUMBER:
        if (e->num == (double)(long long)e->num && e->num > -1e15 && e->num < 1e15)
            return json_integer((json_int_t)e->num);
        return json_real(e->num);
    case STORE_EVIDENCE_BOOL: return json_boolean(e->b);
    case STORE_EVIDENCE_STRING: return json_string(e->str);
    case STORE_EVIDENCE_NULL: break;
    }
    return json_null();
}

/* short for alert_json_set: alert_to_json sets many */
static int set(json_t *o, const char *k, json_t *v)
{
    return alert_json_set(o, k, v);
}

/* "users" (the first STORE_ALERT_USERS_MAX) and "users_total" into o. */
int alert_users_json(json_t *o, const store_alert *a)
{
    json_t *users = json_array();
    if (users == NULL)
        return -1;
    for (size_t i = 0; i < a->n_users && i < STORE_ALERT_USERS_MAX; i++)
        if (json_array_append_new(users, json_string(a->users[i])) != 0) {
            json_decref(users);
            return -1;
        }
    if (set(o, "users", users) < 0 || set(o, "users_total", json_integer(a->users_total)) < 0)
        return -1;
    return 0;
}

/* An incident update (engine.c build_update says where each value is held):
 * {"type":"incident_update","incident_id","first_at","last_at","count",
 *  "severity","rules","users","users_total","ips","ips_total","summary"}. */
char *alert_incident_update_json(const store_alert *a)
{
    char first[UTIL_RFC3339_LEN], last[UTIL_RFC3339_LEN];
    int64_t count = 0, first_ms = a->at_ms, ips_total = 0;
    json_t *o = json_object(), *rules = json_array(), *ips = json_array();
    char *out = NULL;
    if (o == NULL || rules == NULL || ips == NULL)
        goto done;
    for (size_t i = 0; i < a->n_evidence && i < STORE_EVIDENCE_MAX; i++) {
        const store_evidence *e = &a->evidence[i];
        if (strcmp(e->name, "count") == 0)
            count = (int64_t)e->num;
        else if (strcmp(e->name, "first_ms") == 0)
            first_ms = (int64_t)e->num;
        else if (strcmp(e->name, "ips_total") == 0)
            ips_total = (int64_t)e->num;
        else if (strcmp(e->name, "ip") == 0 && json_array_append_new(ips, json_string(e->str)) != 0)
            goto done;
    }
    for (size_t i = 0; i < a->n_tags && i < STORE_ALERT_TAGS_MAX; i++)
        if (json_array_append_new(rules, json_string(a->tags[i])) != 0)
            goto done;
    util_format_rfc3339(first_ms, first, sizeof first);
    util_format_rfc3339(a->at_ms, last, sizeof last);
    if (set(o, "type", json_string("incident_update")) < 0 || set(o, "id", json_string(a->id)) < 0 ||
        set(o, "incident_id", json_string(a->incident_id)) < 0 || set(o, "first_at", json_string(first)) < 0 ||
        set(o, "last_at", json_string(last)) < 0 || set(o, "count", json_integer(count)) < 0 ||
        set(o, "severity", json_string(a->severity)) < 0)
        goto done;
    json_t *r = rules, *p = ips;
    rules = ips = NULL;
    if (set(o, "rules", r) < 0 || alert_users_json(o, a) < 0 || set(o, "ips", p) < 0 ||
        set(o, "ips_total", json_integer(ips_total)) < 0 || set(o, "summary", json_string(a->summary)) < 0)
        goto done;
    out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
    json_decref(o);
    json_decref(rules);
    json_decref(ips);
    return out;
}

char *alert_to_json(const store_alert *a)
{
    if (a->incident_update)
        return alert_incident_update_json(a);
    char at[UTIL_RFC3339_LEN], raised[UTIL_RFC3339_LEN];
    util_format_rfc3339(a->at_ms, at, sizeof at);
    util_format_rfc3339(a->raised_ms, raised, sizeof raised);
    json_t *o = json_object(), *ev = json_object(), *tags = json_array(), *atl = json_array();
    char *out = NULL;
    if (o == NULL || ev == NULL || tags == NULL || atl == NULL)
        goto done;
    for (size_t i = 0; i < a->n_evidence && i < STORE_EVIDENCE_MAX; i++) {
        if (set(ev, a->evidence[i].name, alert_evidence_json(&a->evidence[i])) < 0)
            goto done;
        if (a->evidence[i].at_least && json_array_append_new(atl, json_string(a->evidence[i].name)) != 0)
            goto done;
    }
    for (size_t i = 0; i < a->n_tags && i < STORE_ALERT_TAGS_MAX; i++)
        if (json_array_append_new(tags, json_string(a->tags[i])) != 0)
            goto done;
    if (set(o, "id", json_string(a->id)) < 0 || set(o, "rule", json_string(a->rule)) < 0 ||
        set(o, "severity", json_string(a->severity)) < 0 || set(o, "key", json_string(a->key)) < 0 ||
        set(o, "user_id", json_string(a->user_id)) < 0 || set(o, "ip", json_string(a->ip)) < 0 ||
        set(o, "session_id", json_string(a->session_id)) < 0 || set(o, "event_id", json_string(a->event_id)) < 0 ||
        set(o, "event_type", json_string(event_type_name(a->event_type))) < 0 ||
        set(o, "instance_id", json_string(a->instance_id)) < 0 ||
        set(o, "at", json_string(at)) < 0 || set(o, "raised_at", json_string(raised)) < 0 ||
        set(o, "summary", json_string(a->summary)) < 0)
        goto done;
    if (set(o, "evidence", ev) < 0) {
        ev = NULL;
        goto done;
    }
    ev = NULL;
    if (json_array_size(atl) > 0) {
        if (set(o, "at_least", atl) < 0) {
            atl = NULL;
            goto done;
        }
        atl = NULL;
    }
    if (set(o, "tags", tags) < 0) {
        tags = NULL;
        goto done;
    }
    tags = NULL;
    if (set(o, "suppressed", json_integer(a->suppressed)) < 0 ||
        alert_json_set_text(o, "incident_id", a->incident_id) < 0)
        goto done;
    if (strncmp(a->key, "ip:", 3) == 0 && alert_users_json(o, a) < 0)
        goto done;
    /* Strings come from fixed-size records cut on UTF-8 boundaries; anything
     * invalid is refused by jansson rather than sent garbled. */
    /* evidence reals with the digits engine_evidence_text prints: 59.999, not 59.999000000000002 */
    out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(ENGINE_EVIDENCE_DIGITS));
done:
    json_decref(o);
    json_decref(ev);
    json_decref(tags);
    json_decref(atl);
    return out;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int alert_sinks_write(alert_sinks *s, const store_alert *a, char *err, size_t errlen)
{
    if (s == NULL || s->n == 0)
        return 0;
    int ret = 0;
    for (size_t i = 0; i < s->n && ret == 0; i++) {
        sink *k = &s->sinks[i];
        if (!alert_sink_wants(k->cfg, a))
            continue;
        /* each sink has its own format: rendered per sink */
        char *line = NULL;
        size_t len = 0;
        if (alert_render(k->cfg, a, &line, &len, err, errlen) < 0)
            return -1;
        line[len] = '\n'; /* the terminator becomes the line end; write len + 1 bytes */
        /* one write per line: O_APPEND keeps lines whole even with other writers */
        if (write_all(k->fd, line, len + 1) < 0)
            ret = util_err(err, errlen, "--alert %s: write failed: %s", k->cfg->spec, strerror(errno));
        k->dirty = true;
        free(line);
    }
    return ret;
}

int alert_sinks_sync(alert_sinks *s, char *err, size_t errlen)
{
    if (s == NULL)
        return 0;
    for (size_t i = 0; i < s->n; i++) {
        sink *k = &s->sinks[i];
        if (!k->dirty)
            continue;
        k->dirty = false;
        /* stdout may be a pipe or terminal: nothing to fsync there */
        if (k->cfg->kind == ALERT_SINK_FILE && fsync(k->fd) < 0)
            return util_err(err, errlen, "--alert %s: fsync failed: %s", k->cfg->spec, strerror(errno));
    }
    return 0;
}
