/* test_incidents.c: grouping alerts into incidents (src/store/incidents.c) on
 * a real LMDB store: one IP across 15 users is one incident listing the 15;
 * one user from two IPs is one; a gap longer than the window starts a new
 * one; an alert touching two open incidents merges them into the older; the
 * update cadence; the records read back after commit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "store/store.h"
#include "util/util.h"

#define MIN_MS (60 * 1000)
#define WINDOW_MS (60 * MIN_MS)
#define UPDATE_MS (5 * MIN_MS)
#define T0 1768035600000LL /* 2026-01-10T09:00:00Z */

static char tmproot[64];
static int dir_seq;
static char err[UTIL_ERRLEN];
static int alert_seq;

static store *open_new(void)
{
    char dir[128];
    snprintf(dir, sizeof dir, "%s/s%d", tmproot, ++dir_seq);
    store *s = NULL;
    if (store_open(&s, dir, 0, 0, err, sizeof err) < 0) {
        printf("store_open %s: %s\n", dir, err);
        return NULL;
    }
    return s;
}

/* Record one alert of user/ip at at_ms in its own transaction; *inc after it. */
static int record(store *s, const char *rule, const char *severity, const char *user, const char *ip, int64_t at_ms,
                  store_incident *inc, store_incident_step *step)
{
    store_alert a;
    memset(&a, 0, sizeof a);
    snprintf(a.id, sizeof a.id, "alr_%024x", ++alert_seq);
    snprintf(a.rule, sizeof a.rule, "%s", rule);
    snprintf(a.severity, sizeof a.severity, "%s", severity);
    snprintf(a.user_id, sizeof a.user_id, "%s", user);
    snprintf(a.ip, sizeof a.ip, "%s", ip);
    snprintf(a.key, sizeof a.key, "user:%s", user);
    a.at_ms = at_ms;
    store_txn *t = NULL;
    if (store_txn_begin(s, &t, err, sizeof err) < 0)
        return -1;
    if (store_txn_incident_record(t, &a, WINDOW_MS, UPDATE_MS, inc, step, err, sizeof err) < 0) {
        printf("record: %s\n", err);
        store_txn_abort(t);
        return -1;
    }
    return store_txn_commit(t, err, sizeof err);
}

static store_incident inc, got;

static void test_one_ip_many_users(void)
{
    store *s = open_new();
    CHECK("spray: open", s != NULL);
    if (s == NULL)
        return;
    store_incident_step step;
    char first_id[STORE_INCIDENT_ID_MAX] = "";
    bool same = true, firsts_ok = true;
    for (int i = 0; i < 15; i++) {
        char user[32];
        snprintf(user, sizeof user, "user_%02d", i);
        if (record(s, i == 14 ? "ip_many_users" : "new_country", i == 14 ? "high" : "medium", user, "203.0.113.50",
                   T0 + i * 40000, &inc, &step) < 0) {
            same = false;
            break;
        }
        if (i == 0)
            snprintf(first_id, sizeof first_id, "%s", inc.id);
        same &= strcmp(inc.id, first_id) == 0;
        firsts_ok &= step.first == (i == 0);
    }
    CHECK("spray: every alert joins the first one's incident", same);
    CHECK("spray: only the first alert opens it", firsts_ok);
    bool found = false;
    CHECK("spray: read back", store_get_incident(s, first_id, &got, &found, err, sizeof err) == 0 && found);
    CHECK("spray: 15 alerts", got.count == 15);
    CHECK("spray: 15 accounts listed", got.users_total == 15 && got.n_users == 15 &&
                                           strcmp(got.users[0], "user_00") == 0 &&
                                           strcmp(got.users[14], "user_14") == 0);
    CHECK("spray: one IP", got.ips_total == 1 && strcmp(got.ips[0], "203.0.113.50") == 0);
    CHECK("spray: the top severity", strcmp(got.severity, "high") == 0);
    CHECK("spray: both rules", got.n_rules == 2 && strcmp(got.rules[0], "new_country") == 0 &&
                                   strcmp(got.rules[1], "ip_many_users") == 0);
    CHECK("spray: first and last times", got.first_ms == T0 && got.last_ms == T0 + 14 * 40000);
    CHECK("spray: id is inc_ + time", strncmp(got.id, "inc_019ba72246", 14) == 0);
    store_close(s);
}

static void test_one_user_two_ips(void)
{
    store *s = open_new();
    CHECK("traveller: open", s != NULL);
    if (s == NULL)
        return;
    store_incident_step step;
    char id[STORE_INCIDENT_ID_MAX];
    int rc = record(s, "new_country", "medium", "user_a", "192.0.2.1", T0, &inc, &step);
    snprintf(id, sizeof id, "%s", inc.id);
    rc |= record(s, "impossible_travel", "high", "user_a", "198.51.100.9", T0 + 10 * MIN_MS, &inc, &step);
    CHECK("traveller: recorded", rc == 0);
    CHECK("traveller: one incident", strcmp(inc.id, id) == 0 && !step.first);
    CHECK("traveller: two IPs, one user", inc.ips_total == 2 && inc.users_total == 1 && inc.count == 2);
    store_close(s);
}

static void test_window_expiry(void)
{
    store *s = open_new();
    CHECK("expiry: open", s != NULL);
    if (s == NULL)
        return;
    store_incident_step step;
    char id[STORE_INCIDENT_ID_MAX];
    int rc = record(s, "new_country", "medium", "user_a", "192.0.2.1", T0, &inc, &step);
    snprintf(id, sizeof id, "%s", inc.id);
    rc |= record(s, "new_country", "medium", "user_a", "192.0.2.1", T0 + WINDOW_MS, &inc, &step);
    CHECK("expiry: within the window (bound included): the same", rc == 0 && strcmp(inc.id, id) == 0);
    rc = record(s, "new_country", "medium", "user_a", "192.0.2.1", T0 + 2 * WINDOW_MS + 1, &inc, &step);
    CHECK("expiry: past it: a new incident", rc == 0 && strcmp(inc.id, id) != 0 && step.first && inc.count == 1);
    bool found = false;
    CHECK("expiry: the old one keeps its two", store_get_incident(s, id, &got, &found, err, sizeof err) == 0 &&
                                                   found && got.count == 2);
    store_close(s);
}

static void test_merge(void)
{
    store *s = open_new();
    CHECK("merge: open", s != NULL);
    if (s == NULL)
        return;
    store_incident_step step;
    char older[STORE_INCIDENT_ID_MAX], newer[STORE_INCIDENT_ID_MAX];
    int rc = record(s, "new_country", "medium", "user_a", "192.0.2.1", T0, &inc, &step);
    snprintf(older, sizeof older, "%s", inc.id);
    rc |= record(s, "new_country", "low", "user_b", "198.51.100.9", T0 + MIN_MS, &inc, &step);
    snprintf(newer, sizeof newer, "%s", inc.id);
    CHECK("merge: two incidents first", rc == 0 && strcmp(older, newer) != 0);
    /* user_b (newer incident) from 192.0.2.1 (older incident) */
    rc = record(s, "impossible_travel", "high", "user_b", "192.0.2.1", T0 + 2 * MIN_MS, &inc, &step);
    CHECK("merge: joins the older", rc == 0 && strcmp(inc.id, older) == 0 && step.merged && !step.first);
    CHECK("merge: the older holds all three", inc.count == 3 && inc.users_total == 2 && inc.ips_total == 2);
    CHECK("merge: and lists the newer as linked", inc.n_linked == 1 && strcmp(inc.linked[0], newer) == 0);
    bool found = false;
    CHECK("merge: the newer says where it went",
          store_get_incident(s, newer, &got, &found, err, sizeof err) == 0 && found &&
              strcmp(got.merged_into, older) == 0);
    /* a later alert by the newer's other key lands in the older too */
    rc = record(s, "new_country", "medium", "user_c", "198.51.100.9", T0 + 3 * MIN_MS, &inc, &step);
    CHECK("merge: keys of the newer follow the merge", rc == 0 && strcmp(inc.id, older) == 0 && inc.count == 4);
    store_close(s);
}

static void test_update_cadence(void)
{
    store *s = open_new();
    CHECK("updates: open", s != NULL);
    if (s == NULL)
        return;
    store_incident_step step;
    int due_at[16], n_due = 0, rc = 0;
    for (int m = 0; m <= 12; m++) {
        char user[32];
        snprintf(user, sizeof user, "user_%02d", m);
        rc |= record(s, "new_country", "medium", user, "203.0.113.50", T0 + m * MIN_MS, &inc, &step);
        if (step.update_due)
            due_at[n_due++] = m;
    }
    CHECK("updates: recorded", rc == 0);
    /* an alert a minute: one update at 5 and 10 minutes, not one per alert */
    CHECK("updates: every 5 minutes of event time", n_due == 2 && due_at[0] == 5 && due_at[1] == 10);
    store_close(s);
}

int main(void)
{
    snprintf(tmproot, sizeof tmproot, "/tmp/veille-incidents-XXXXXX");
    if (mkdtemp(tmproot) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_one_ip_many_users();
    test_one_user_two_ips();
    test_window_expiry();
    test_merge();
    test_update_cadence();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmproot);
    if (system(cmd) != 0)
        printf("could not remove %s\n", tmproot);
    return check_summary();
}
