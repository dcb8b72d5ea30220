/*
 * scenario.c: the Clerk-shaped deliveries `veille simulate` sends. Each scenario
 * is a short script of envelopes shaped as Clerk sends them (see
 * shared/reference/clerk-svix-webhooks.md), built to trip one rule of
 * rules/default.rules. Ids carry the run's tag so a second run is new users,
 * sessions and deliveries, not duplicates of the first (nor folded into its
 * alerts by suppression). Addresses are from the documentation ranges
 * (RFC 5737), which never name a real client.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/internal.h"

#define SCENARIO_INSTANCE "ins_simulate"
#define SCENARIO_UA "Mozilla/5.0 (veille simulate)"

typedef struct {
    const char *tag;
    int64_t now_ms;
    cli_scenario_emit emit;
    void *ctx;
} scenario_run;

/* One envelope around data (stolen), compact, handed to emit. */
static int send_envelope(scenario_run *r, const char *type, json_t *data, int64_t at_ms, const char *ip, char *err,
                         size_t errlen)
{
    json_t *env = json_pack("{s:o,s:s,s:s,s:I,s:s,s:{s:{s:s,s:s}}}", "data", data, "object", "event", "type", type,
                            "timestamp", (json_int_t)at_ms, "instance_id", SCENARIO_INSTANCE, "event_attributes",
                            "http_request", "client_ip", ip, "user_agent", SCENARIO_UA);
    char *body = env != NULL ? json_dumps(env, JSON_COMPACT) : NULL;
    json_decref(env);
    if (body == NULL)
        return util_err(err, errlen, "out of memory building a %s delivery", type);
    int rc = r->emit(type, body, strlen(body), r->ctx);
    free(body);
    return rc;
}

static int user_created(scenario_run *r, const char *user, int64_t at_ms, const char *ip, char *err, size_t errlen)
{
    char email[160], idn[96];
    snprintf(email, sizeof email, "%s@example.org", user);
    snprintf(idn, sizeof idn, "idn_%s", user);
    json_t *data = json_pack("{s:s,s:s,s:I,s:I,s:[{s:s,s:s,s:s,s:{s:s,s:s},s:[]}],s:s,s:n,s:s,s:s,s:n,s:n,"
                             "s:b,s:b,s:{},s:{},s:{}}",
                             "id", user, "object", "user", "created_at", (json_int_t)at_ms, "updated_at",
                             (json_int_t)at_ms, "email_addresses", "id", idn, "email_address", email, "object",
                             "email_address", "verification", "status", "verified", "strategy", "ticket",
                             "linked_to", "primary_email_address_id", idn, "primary_phone_number_id", "first_name",
                             "Simulated", "last_name", "User", "username", "external_id", "banned", 0, "locked", 0,
                             "public_metadata", "private_metadata", "unsafe_metadata");
    if (data == NULL)
        return util_err(err, errlen, "out of memory building a user.created delivery");
    return send_envelope(r, "user.created", data, at_ms, ip, err, errlen);
}

/* A session event; created_at is the sign-in, updated_at the event's time. */
static int session_event(scenario_run *r, const char *type, const char *status, const char *sess, const char *user,
                         int64_t created_ms, int64_t at_ms, const char *ip, const char *country, const char *city,
                         char *err, size_t errlen)
{
    char act[128];
    snprintf(act, sizeof act, "sess_activity_%s", sess);
    json_t *data = json_pack("{s:s,s:s,s:s,s:s,s:s,s:n,s:n,s:I,s:I,s:I,s:I,s:I,"
                             "s:{s:s,s:s,s:s,s:b,s:s,s:s,s:s,s:s,s:s}}",
                             "object", "session", "id", sess, "user_id", user, "client_id", "client_simulate",
                             "status", status, "actor", "last_active_organization_id", "last_active_at",
                             (json_int_t)at_ms, "expire_at", (json_int_t)(created_ms + 86400000), "abandon_at",
                             (json_int_t)(created_ms + (int64_t)30 * 86400000), "created_at", (json_int_t)created_ms,
                             "updated_at", (json_int_t)at_ms, "latest_activity", "object", "session_activity", "id",
                             act, "device_type", "desktop", "is_mobile", 0, "browser_name", "Chrome",
                             "browser_version", "128.0.0.0", "ip_address", ip, "city", city, "country", country);
    if (data == NULL)
        return util_err(err, errlen, "out of memory building a %s delivery", type);
    return send_envelope(r, type, data, at_ms, ip, err, errlen);
}

static int sign_in(scenario_run *r, const char *sess, const char *user, int64_t at_ms, const char *ip,
                   const char *country, const char *city, char *err, size_t errlen)
{
    return session_event(r, "session.created", "active", sess, user, at_ms, at_ms, ip, country, city, err, errlen);
}

/* One user created, signed in, signed out: the whole path, no alert. */
static int scenario_sample(scenario_run *r, char *err, size_t errlen)
{
    char user[96], sess[96];
    snprintf(user, sizeof user, "user_sim_%s", r->tag);
    snprintf(sess, sizeof sess, "sess_sim_%s", r->tag);
    int64_t t = r->now_ms - 60000;
    if (user_created(r, user, t, "198.51.100.20", err, errlen) < 0 ||
        sign_in(r, sess, user, t + 1000, "198.51.100.20", "FR", "Paris", err, errlen) < 0)
        return -1;
    return session_event(r, "session.ended", "ended", sess, user, t + 1000, t + 30000, "198.51.100.20", "FR", "Paris",
                         err, errlen);
}

/* Eight sign-ins of one user within a minute: rapid_logins (more than 5 in 10 min). */
static int scenario_brute_force(scenario_run *r, char *err, size_t errlen)
{
    char user[96];
    snprintf(user, sizeof user, "user_sim_%s", r->tag);
    int64_t t = r->now_ms - 60000;
    if (user_created(r, user, t, "198.51.100.30", err, errlen) < 0)
        return -1;
    for (int i = 1; i <= 8; i++) {
        char sess[112];
        snprintf(sess, sizeof sess, "sess_sim_%s_%d", r->tag, i);
        if (sign_in(r, sess, user, t + i * 5000, "198.51.100.30", "FR", "Paris", err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* Paris, then Tokyo five minutes later (about 9,700 km): impossible_travel, and
 * new_country for the second country. */
static int scenario_impossible_travel(scenario_run *r, char *err, size_t errlen)
{
    char user[96], s1[112], s2[112];
    snprintf(user, sizeof user, "user_sim_%s", r->tag);
    snprintf(s1, sizeof s1, "sess_sim_%s_1", r->tag);
    snprintf(s2, sizeof s2, "sess_sim_%s_2", r->tag);
    int64_t t = r->now_ms - 600000;
    if (user_created(r, user, t, "198.51.100.40", err, errlen) < 0 ||
        sign_in(r, s1, user, t + 1000, "198.51.100.40", "FR", "Paris", err, errlen) < 0)
        return -1;
    return sign_in(r, s2, user, t + 301000, "203.0.113.40", "JP", "Tokyo", err, errlen);
}

/* Twelve users signing in from one address within two minutes: ip_many_users
 * (10 or more distinct users from one IP in 10 min), password spraying. */
static int scenario_spray(scenario_run *r, char *err, size_t errlen)
{
    int64_t t = r->now_ms - 120000;
    for (int i = 1; i <= 12; i++) {
        char user[112], sess[112];
        snprintf(user, sizeof user, "user_sim_%s_%d", r->tag, i);
        snprintf(sess, sizeof sess, "sess_sim_%s_%d", r->tag, i);
        if (sign_in(r, sess, user, t + i * 5000, "203.0.113.50", "FR", "Paris", err, errlen) < 0)
            return -1;
    }
    return 0;
}

static const struct {
    const char *name;
    int (*run)(scenario_run *r, char *err, size_t errlen);
    const char *expected; /* the default rules it raises, for the summary */
} scenarios[] = {
    {"sample", scenario_sample, ""},
    {"brute-force", scenario_brute_force, "rapid_logins"},
    {"impossible-travel", scenario_impossible_travel, "impossible_travel, new_country"},
    {"spray", scenario_spray, "ip_many_users"},
};

const char *cli_scenario_expected(const char *name)
{
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        if (strcmp(scenarios[i].name, name) == 0)
            return scenarios[i].expected;
    return NULL;
}

int cli_scenario_run(const char *name, const char *tag, int64_t now_ms, cli_scenario_emit emit, void *ctx, char *err,
                     size_t errlen)
{
    scenario_run r = {.tag = tag, .now_ms = now_ms, .emit = emit, .ctx = ctx};
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        if (strcmp(scenarios[i].name, name) == 0)
            return scenarios[i].run(&r, err, errlen);
    return util_err(err, errlen, "unknown scenario '%s' (one of: %s)", name, CLI_SCENARIO_NAMES);
}
