/* event.c: names of the event types veille handles and of the IP fields it reads. */
#include "event/event.h"

#include <string.h>

static const char *const type_names[EVENT_TYPE_COUNT] = {
    [EVENT_UNKNOWN] = "unknown",
    [EVENT_USER_CREATED] = "user.created",
    [EVENT_USER_UPDATED] = "user.updated",
    [EVENT_USER_DELETED] = "user.deleted",
    [EVENT_SESSION_CREATED] = "session.created",
    [EVENT_SESSION_PENDING] = "session.pending",
    [EVENT_SESSION_ENDED] = "session.ended",
    [EVENT_SESSION_REMOVED] = "session.removed",
    [EVENT_SESSION_REVOKED] = "session.revoked",
};

const char *event_type_name(event_type t)
{
    if ((int)t < 0 || t >= EVENT_TYPE_COUNT)
        return "unknown";
    return type_names[t];
}

event_type event_type_from_name(const char *name)
{
    for (int t = 1; t < EVENT_TYPE_COUNT; t++)
        if (strcmp(type_names[t], name) == 0)
            return (event_type)t;
    return EVENT_UNKNOWN;
}

bool event_type_is_session(event_type t)
{
    return t >= EVENT_SESSION_CREATED && t <= EVENT_SESSION_REVOKED;
}

static const char *const ip_field_names[EVENT_IP_FIELD_COUNT] = {
    [EVENT_IP_SESSION] = "data.latest_activity.ip_address",
    [EVENT_IP_CLIENT] = "event_attributes.http_request.client_ip",
};

const char *event_ip_field_name(event_ip_field f)
{
    if ((int)f < 0 || f >= EVENT_IP_FIELD_COUNT)
        return "unknown";
    return ip_field_names[f];
}
