/*
 * internal.h (private to src/alert): the renderers behind alert_render and the
 * helpers they share. Each renderer returns a malloc'd NUL-terminated string, or
 * NULL when out of memory or when jansson refuses a value (invalid UTF-8).
 */
#ifndef VEILLE_ALERT_INTERNAL_H
#define VEILLE_ALERT_INTERNAL_H

#include <jansson.h>
#include <stdio.h>

#include "alert/alert.h"

/* The command a person runs to see the alert; chat and template formats show it. */
#define ALERT_SHOW_COMMAND "veille alerts show "

/* json_object_set_new that takes a NULL value (out of memory) as failure. */
static inline int alert_json_set(json_t *o, const char *k, json_t *v)
{
    return v != NULL && json_object_set_new(o, k, v) == 0 ? 0 : -1;
}

/* alert.c: "users" and "users_total" into o (by-ip alerts, incident updates);
 * an incident update's JSON (the json rendering of every format without a
 * shape of its own for it). */
int alert_users_json(json_t *o, const store_alert *a);
char *alert_incident_update_json(const store_alert *a);

/* The same, leaving the key out when s is empty. */
static inline int alert_json_set_text(json_t *o, const char *k, const char *s)
{
    return s[0] == '\0' ? 0 : alert_json_set(o, k, json_string(s));
}

/* An evidence value as JSON: integers without a fraction, reals, booleans,
 * strings, null (alert.c). */
json_t *alert_evidence_json(const store_evidence *e);

/* Compact, in insertion order: what every JSON format sends. NULL on failure;
 * o is released either way. */
char *alert_json_dump(json_t *o);

/* "Paris, France (FR)", "France (FR)", "Paris", or "" when the event had no
 * location. The country's name comes from geo (ISO 3166); an unknown code is
 * shown as given. */
void alert_location_text(const store_alert *a, char *buf, size_t len);

/* Severity word with a capital ("High"), "Unknown" for a level veille does not know. */
const char *alert_severity_title(const char *severity);

char *alert_format_ocsf(const store_alert *a);
char *alert_format_cef(const store_alert *a);
char *alert_format_slack(const store_alert *a);
char *alert_format_teams(const store_alert *a);

/* template.c */
/* Check text (from path, for messages) and keep it in c; FILE:LINE:COL errors. */
int alert_template_load(alert_sink_config *c, const char *path, char *err, size_t errlen);
/* c's template filled for a; NULL on no memory. */
char *alert_template_render(const alert_sink_config *c, const store_alert *a);

#endif
