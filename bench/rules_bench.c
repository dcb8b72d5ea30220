/*
 * rules_bench.c: what the rules engine costs per event, apart from HTTP. Loads a
 * rule file (default: the shipped catalog), then times engine_eval_event alone,
 * inside real write transactions on a real store, in three situations:
 *   ordinary  - many users with a few sign-ins each (the common case)
 *   hot user  - one user already holding N events (default 100,000: a bot), whose
 *               later sign-ins must not pay for that history
 *   hot, new  - the same user, each later sign-in from a new country and IP, so
 *               first_seen/distinct cannot stop at the first record
 * and, for scale, what storing the event costs (store_apply_event) in the same
 * transactions. Prints figures; asserts nothing.
 *
 *   veille-rules-bench [--rules FILE] [--hot N] [--users N] [--dir DIR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "rules/rules.h"
#include "store/store.h"
#include "util/util.h"

#define TXN_EVENTS 512

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static const char *const countries[] = {"FR", "DE", "US", "JP", "BR", "GB", "ES", "IT", "AU", "CA"};

/* A few common browsers: real traffic repeats a small set of user agents (the
 * device parser's cache relies on it). */
static const char *const user_agents[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
    "Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
};

static void make(event_t *ev, int seq, const char *user, const char *ip, const char *country, int64_t at)
{
    memset(ev, 0, sizeof *ev);
    ev->type = EVENT_SESSION_CREATED;
    snprintf(ev->delivery_id, sizeof ev->delivery_id, "msg_bench_%d", seq);
    snprintf(ev->session.user_id, sizeof ev->session.user_id, "%s", user);
    snprintf(ev->session.session_id, sizeof ev->session.session_id, "sess_%d", seq);
    snprintf(ev->session.ip, sizeof ev->session.ip, "%s", ip);
    snprintf(ev->session.country, sizeof ev->session.country, "%s", country);
    ev->session.created_at = ev->session.updated_at = ev->at_ms = ev->timestamp_ms = at;
    ev->session.expire_at = at + 7 * 86400000LL;
    snprintf(ev->user_agent, sizeof ev->user_agent, "%s", user_agents[(unsigned)seq % 4]);
}

typedef struct {
    int64_t *eval_ns, *apply_ns;
    size_t n;
    uint64_t alerts;
} timing;

static void count_alert(const store_alert *a, void *ctx)
{
    (void)a;
    ((timing *)ctx)->alerts++;
}

/* Store events[0..n) in transactions of TXN_EVENTS; time apply and (if e) eval. */
static int run(store *st, engine *e, event_t *evs, size_t n, timing *tm)
{
    char err[UTIL_ERRLEN];
    engine_hooks hooks = {.on_alert = count_alert, .ctx = tm};
    for (size_t i = 0; i < n;) {
        store_txn *t = NULL;
        if (store_txn_begin(st, &t, err, sizeof err) < 0)
            goto fail;
        for (size_t k = 0; k < TXN_EVENTS && i < n; k++, i++) {
            store_outcome o;
            int64_t t0 = util_mono_ns();
            if (store_apply_event(t, &evs[i], &o, err, sizeof err) < 0)
                goto fail_txn;
            int64_t t1 = util_mono_ns();
            if (e != NULL && engine_eval_event(e, t, &evs[i], 0, &hooks, err, sizeof err) < 0)
                goto fail_txn;
            int64_t t2 = util_mono_ns();
            if (tm != NULL) {
                tm->apply_ns[tm->n] = t1 - t0;
                tm->eval_ns[tm->n++] = t2 - t1;
            }
            continue;
        fail_txn:
            store_txn_abort(t);
            goto fail;
        }
        if (store_txn_commit(t, err, sizeof err) < 0)
            goto fail;
        if (e != NULL)
            engine_settle(e, true);
    }
    return 0;
fail:
    fprintf(stderr, "veille-rules-bench: %s\n", err);
    return -1;
}

static void report(const char *label, timing *tm)
{
    if (tm->n == 0)
        return;
    double sum_e = 0, sum_a = 0;
    for (size_t i = 0; i < tm->n; i++) {
        sum_e += (double)tm->eval_ns[i];
        sum_a += (double)tm->apply_ns[i];
    }
    qsort(tm->eval_ns, tm->n, sizeof tm->eval_ns[0], cmp_i64);
    qsort(tm->apply_ns, tm->n, sizeof tm->apply_ns[0], cmp_i64);
    size_t p99 = tm->n * 99 / 100;
    printf("%-10s events=%zu eval_mean_us=%.1f eval_p50_us=%.1f eval_p99_us=%.1f eval_max_us=%.1f "
           "store_mean_us=%.1f store_p99_us=%.1f alerts=%llu\n",
           label, tm->n, sum_e / (double)tm->n / 1000.0, (double)tm->eval_ns[tm->n / 2] / 1000.0,
           (double)tm->eval_ns[p99] / 1000.0, (double)tm->eval_ns[tm->n - 1] / 1000.0, sum_a / (double)tm->n / 1000.0,
           (double)tm->apply_ns[p99] / 1000.0, (unsigned long long)tm->alerts);
}

int main(int argc, char **argv)
{
    const char *rules_path = "rules/default.rules", *dir = NULL;
    long hot = 100000, users = 5000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rules") == 0 && i + 1 < argc)
            rules_path = argv[++i];
        else if (strcmp(argv[i], "--hot") == 0 && i + 1 < argc)
            hot = atol(argv[++i]);
        else if (strcmp(argv[i], "--users") == 0 && i + 1 < argc)
            users = atol(argv[++i]);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else {
            fprintf(stderr, "usage: veille-rules-bench [--rules FILE] [--hot N] [--users N] [--dir DIR]\n");
            return 2;
        }
    }
    if (hot < 1 || users < 1) {
        fprintf(stderr, "veille-rules-bench: --hot and --users must be positive\n");
        return 2;
    }
    char tmpl[] = "/tmp/veille-rules-bench-XXXXXX";
    if (dir == NULL && (dir = mkdtemp(tmpl)) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    rules_set *set = NULL;
    if (rules_load_file(rules_path, &set, stderr) != 0)
        return 2;
    char err[UTIL_ERRLEN];
    engine *eng = NULL;
    store *st = NULL;
    if (engine_new(set, &eng, err, sizeof err) < 0 || store_open(&st, dir, 0, (size_t)4 << 30, err, sizeof err) < 0) {
        fprintf(stderr, "veille-rules-bench: %s\n", err);
        return 1;
    }
    printf("rules=%s rule_count=%zu hot_events=%ld users=%ld store=%s\n", rules_path, engine_rule_count(eng), hot,
           users, dir);

    size_t per_user = 4, n_ord = (size_t)users * per_user, n_late = 2000;
    size_t cap = (size_t)hot > n_ord ? (size_t)hot : n_ord;
    event_t *evs = calloc(cap, sizeof *evs);
    timing tm = {calloc(cap, sizeof(int64_t)), calloc(cap, sizeof(int64_t)), 0, 0};
    if (evs == NULL || tm.eval_ns == NULL || tm.apply_ns == NULL) {
        fprintf(stderr, "veille-rules-bench: out of memory\n");
        return 1;
    }
    int64_t t0 = util_now_ms() - 3 * 86400000LL;
    int seq = 0;

    /* ordinary: each user signs in 4 times over a day, from home and office */
    for (size_t i = 0; i < n_ord; i++) {
        char user[32], ip[32];
        size_t u = i % (size_t)users, k = i / (size_t)users;
        snprintf(user, sizeof user, "user_%zu", u);
        snprintf(ip, sizeof ip, "10.%zu.%zu.%zu", u / 65536 % 256, u / 256 % 256, (u + k % 2) % 256);
        make(&evs[i], ++seq, user, ip, "FR", t0 + (int64_t)k * 6 * 3600000 + (int64_t)u);
    }
    if (run(st, eng, evs, n_ord, &tm) < 0)
        return 1;
    report("ordinary", &tm);

    /* hot user: N events in the last 2 hours (not timed: this is the history) */
    for (long i = 0; i < hot; i++)
        make(&evs[i], ++seq, "user_hot", "203.0.113.66", "FR", t0 + 2 * 86400000LL + i * (7200000 / hot));
    if (run(st, NULL, evs, (size_t)hot, NULL) < 0)
        return 1;
    int64_t late = t0 + 2 * 86400000LL + 7200000;
    timing hot_tm = {tm.eval_ns, tm.apply_ns, 0, 0};
    for (size_t i = 0; i < n_late; i++)
        make(&evs[i], ++seq, "user_hot", "203.0.113.66", "FR", late + (int64_t)i);
    if (run(st, eng, evs, n_late, &hot_tm) < 0)
        return 1;
    report("hot", &hot_tm);

    timing new_tm = {tm.eval_ns, tm.apply_ns, 0, 0};
    for (size_t i = 0; i < n_late; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "198.51.%zu.%zu", i / 256 % 256, i % 256);
        make(&evs[i], ++seq, "user_hot", ip, countries[i % 10], late + 10000 + (int64_t)i * 1000);
    }
    if (run(st, eng, evs, n_late, &new_tm) < 0)
        return 1;
    report("hot,new", &new_tm);

    for (size_t i = 0; i < engine_rule_count(eng); i++) {
        engine_rule_stats s;
        engine_rule_stats_at(eng, i, &s);
        printf("rule=%s evaluations=%llu alerts=%llu suppressed=%llu bounded_reads=%llu\n",
               rules_rule_at(engine_rules(eng), i)->name, (unsigned long long)s.evaluations,
               (unsigned long long)s.alerts, (unsigned long long)s.suppressed, (unsigned long long)s.bounded);
    }
    engine_free(eng);
    store_close(st);
    free(evs);
    free(tm.eval_ns);
    free(tm.apply_ns);
    if (dir == tmpl) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpl);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpl);
    }
    return 0;
}
