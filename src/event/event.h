/*
 * event.h: the typed form of a Clerk webhook delivery, shared by ingest (which
 * fills it from JSON), store (which persists it) and the CLI (which prints it).
 * Fixed-size fields: an identifier that does not fit is rejected at decode time;
 * free text (names, city, user agent) is cut on a UTF-8 boundary.
 */
#ifndef VEILLE_EVENT_H
#define VEILLE_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#define EVENT_ID_MAX 128     /* user_..., sess_..., client_..., msg_... ids incl. NUL */
#define EVENT_TEXT_MAX 256   /* names, city, browser, device */
#define EVENT_EMAIL_MAX 320
#define EVENT_IP_MAX 64
#define EVENT_COUNTRY_MAX 8
#define EVENT_UA_MAX 512
#define EVENT_STATUS_MAX 16

typedef enum {
    EVENT_UNKNOWN = 0, /* a type veille does not use: answered 2xx, counted, not stored */
    EVENT_USER_CREATED,
    EVENT_USER_UPDATED,
    EVENT_USER_DELETED,
    EVENT_SESSION_CREATED,
    EVENT_SESSION_PENDING,
    EVENT_SESSION_ENDED,
    EVENT_SESSION_REMOVED,
    EVENT_SESSION_REVOKED,
    EVENT_TYPE_COUNT
} event_type;

/* "user.created" ... ; "unknown" for EVENT_UNKNOWN. */
const char *event_type_name(event_type t);
/* EVENT_UNKNOWN when the name is not one veille handles. */
event_type event_type_from_name(const char *name);
bool event_type_is_session(event_type t);

/* The synced user record. Times are Unix milliseconds, 0 = unknown. */
typedef struct {
    char id[EVENT_ID_MAX];
    char email[EVENT_EMAIL_MAX];     /* primary email, resolved via primary_email_address_id */
    char first_name[EVENT_TEXT_MAX];
    char last_name[EVENT_TEXT_MAX];
    char username[EVENT_TEXT_MAX];
    char external_id[EVENT_TEXT_MAX];
    int64_t created_at;
    int64_t updated_at;
    int64_t last_sign_in_at;
    bool banned;
    bool locked;
    int64_t lockout_expires_in_s; /* Clerk's lockout_expires_in_seconds; 0 none or unknown */
    /* banned and locked before the update last applied (store_apply_event),
     * for user.was_locked / user.was_banned */
    bool was_banned;
    bool was_locked;
    bool deleted;
    int64_t deleted_at;
    bool placeholder; /* created from a session before user.created arrived */
    char instance_id[EVENT_ID_MAX]; /* the Clerk instance of the latest event applied; "" unknown */
} event_user;

/* One session event, with the fields rules read. */
typedef struct {
    char session_id[EVENT_ID_MAX];
    char user_id[EVENT_ID_MAX];
    char client_id[EVENT_ID_MAX];
    char status[EVENT_STATUS_MAX];
    int64_t created_at;
    int64_t updated_at;
    int64_t expire_at;
    /* from latest_activity, each may be "" */
    char ip[EVENT_IP_MAX];
    char country[EVENT_COUNTRY_MAX];
    char city[EVENT_TEXT_MAX];
    char browser[EVENT_TEXT_MAX];
    char device[EVENT_TEXT_MAX];
    bool is_mobile;
} event_session;

/* The IP fields veille reads. A value that is not an IP address is dropped at
 * decode time (the field is left "") and noted in event_t.invalid_ips, so the
 * rest of the event is kept. */
typedef enum {
    EVENT_IP_SESSION = 0, /* data.latest_activity.ip_address -> session.ip */
    EVENT_IP_CLIENT,      /* event_attributes.http_request.client_ip -> client_ip */
    EVENT_IP_FIELD_COUNT
} event_ip_field;

/* The field's path in the delivered JSON: "data.latest_activity.ip_address", ... */
const char *event_ip_field_name(event_ip_field f);

/* What the decoder dropped. Not stored: it is for the server's metric and log line. */
typedef struct {
    unsigned count;                                 /* fields dropped, 0..EVENT_IP_FIELD_COUNT */
    bool dropped[EVENT_IP_FIELD_COUNT];
    char value[EVENT_IP_FIELD_COUNT][EVENT_IP_MAX]; /* as received, cut to fit; hostile: quote it */
} event_ip_drops;

/* Trap: every field of event_t (and of the structs in it) that apply or the
 * rules read must also be a row of event_record_fields in src/store/codec.c:
 * that is the write-ahead log's record, and a field missing there is silently
 * empty between the acknowledgement and the apply. */
typedef struct {
    event_type type;
    char type_name[64];           /* as delivered, cut to fit; for metrics on unknown types */
    char delivery_id[EVENT_ID_MAX]; /* svix-id: the idempotency key */
    int64_t timestamp_ms;         /* envelope timestamp, normalised to ms */
    int64_t at_ms;                /* event time used for ordering (see ingest.h) */
    char instance_id[EVENT_ID_MAX];
    char user_agent[EVENT_UA_MAX]; /* event_attributes.http_request.user_agent */
    char client_ip[EVENT_IP_MAX];  /* event_attributes.http_request.client_ip */
    event_user user;              /* user.* events; for session.* the embedded user if present */
    bool has_user;                /* session.*: data.user was present and decoded */
    event_session session;        /* session.* events */
    event_ip_drops invalid_ips;   /* IP fields dropped as not addresses (see ingest.h) */
} event_t;

#endif
