/*
 * format.c: which bytes a sink sends for an alert (--format, --template), and
 * the helpers the renderers share. The renderers themselves: alert.c (json),
 * ocsf.c, cef.c, chat.c (slack, teams), template.c.
 */
#include <stdlib.h>
#include <string.h>

#include "alert/internal.h"
#include "engine/engine.h"
#include "geo/geo.h"
#include "util/util.h"

static const char *const format_names[] = {
    [ALERT_FORMAT_JSON] = "json",   [ALERT_FORMAT_OCSF] = "ocsf",   [ALERT_FORMAT_CEF] = "cef",
    [ALERT_FORMAT_SLACK] = "slack", [ALERT_FORMAT_TEAMS] = "teams", [ALERT_FORMAT_TEMPLATE] = "template",
};

const char *alert_format_name(alert_format f)
{
    return (size_t)f < sizeof format_names / sizeof format_names[0] ? format_names[f] : "?";
}

char *alert_json_dump(json_t *o)
{
    if (o == NULL)
        return NULL;
    /* evidence reals with the digits engine_evidence_text prints, as alert_to_json */
    char *out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(ENGINE_EVIDENCE_DIGITS));
    json_decref(o);
    return out;
}

void alert_location_text(const store_alert *a, char *buf, size_t len)
{
    const char *name = a->country[0] ? geo_country_name(a->country) : NULL;
    const char *sep = a->city[0] && a->country[0] ? ", " : "";
    if (name != NULL)
        snprintf(buf, len, "%s%s%s (%s)", a->city, sep, name, a->country);
    else
        snprintf(buf, len, "%s%s%s", a->city, sep, a->country);
}

const char *alert_severity_title(const char *severity)
{
    static const char *const titles[] = {"Info", "Low", "Medium", "High", "Critical"};
    int r = alert_severity_rank(severity);
    return r < 0 ? "Unknown" : titles[r];
}

int alert_render(const alert_sink_config *c, const store_alert *a, char **out, size_t *len, char *err,
                 size_t errlen)
{
    char *s = NULL;
    /* an incident update has a shape of its own in json and OCSF (an Update
     * of the finding); the other formats send its json */
    alert_format f = a->incident_update && c->format != ALERT_FORMAT_OCSF ? ALERT_FORMAT_JSON : c->format;
    switch (f) {
    case ALERT_FORMAT_JSON: s = alert_to_json(a); break;
    case ALERT_FORMAT_OCSF: s = alert_format_ocsf(a); break;
    case ALERT_FORMAT_CEF: s = alert_format_cef(a); break;
    case ALERT_FORMAT_SLACK: s = alert_format_slack(a); break;
    case ALERT_FORMAT_TEAMS: s = alert_format_teams(a); break;
    case ALERT_FORMAT_TEMPLATE: s = alert_template_render(c, a); break;
    }
    *out = s;
    if (s == NULL)
        return util_err(err, errlen, "alert %s: cannot format it as %s (out of memory or invalid text)", a->id,
                        alert_format_name(c->format));
    if (len != NULL)
        *len = strlen(s);
    return 0;
}
