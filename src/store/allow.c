/*
 * allow.c: the allow list, keys that never raise an alert, for one rule or for
 * all (rule ""). Kept in the store rather than the rule file so an analyst can
 * add one from a false positive without a reload; the engine reads it in the
 * write transaction of each event, so a running serve sees an entry at its next
 * batch. The list is meant to be short (people write it): a check walks it.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "store/codec.h"
#include "store/internal.h"
#include "util/util.h"

#define WKEY_MAX (64 + 1 + 1 + STORE_ALLOW_VALUE_MAX)

typedef struct {
    int family;
    unsigned char addr[16];
    unsigned bits; /* prefix length; the full length for a single address */
} ip_prefix;

/* "ADDR" or "ADDR/LEN" (IPv4 or IPv6); -1 when it is neither. */
static int parse_prefix(const char *s, ip_prefix *out)
{
    char buf[STORE_ALLOW_VALUE_MAX];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    char *slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        out->bits = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        out->bits = 128;
    } else {
        return -1;
    }
    if (slash != NULL) {
        char *end = NULL;
        unsigned long len = strtoul(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || len > out->bits)
            return -1;
        out->bits = (unsigned)len;
    }
    return 0;
}

static bool prefix_covers(const ip_prefix *p, const ip_prefix *a)
{
    if (p->family != a->family)
        return false;
    unsigned full = p->bits / 8, rest = p->bits % 8;
    if (memcmp(p->addr, a->addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (p->addr[full] & mask) == (a->addr[full] & mask);
}

int store_allow_check(char kind, const char *value, char *err, size_t errlen)
{
    size_t n = strlen(value);
    if (n == 0)
        return util_err(err, errlen, "an allow entry needs a value");
    if (n >= STORE_ALLOW_VALUE_MAX)
        return util_err(err, errlen, "'%.40s...' is too long for an allow entry (at most %d bytes)", value,
                        STORE_ALLOW_VALUE_MAX - 1);
    ip_prefix p;
    if (kind == STORE_KEY_IP && parse_prefix(value, &p) < 0)
        return util_err(err, errlen, "'%s' is not an IP address or CIDR (e.g. 203.0.113.7, 203.0.113.0/24, "
                        "2001:db8::/32)", value);
    if (kind != STORE_KEY_IP && kind != STORE_KEY_USER)
        return util_err(err, errlen, "an allow entry is for an ip or a user");
    return 0;
}

static size_t allow_key(unsigned char *buf, const char *rule, char kind, const char *value)
{
    size_t rl = strnlen(rule, 64), vl = strnlen(value, STORE_ALLOW_VALUE_MAX);
    if (rl >= 64 || vl == 0 || vl >= STORE_ALLOW_VALUE_MAX)
        return 0;
    memcpy(buf, rule, rl);
    buf[rl] = 0x00;
    buf[rl + 1] = (unsigned char)kind;
    memcpy(buf + rl + 2, value, vl);
    return rl + 2 + vl;
}

/* The key's parts back into e (the value holds the rest). -1 when malformed. */
static int split_key(const MDB_val *k, store_allow_entry *e)
{
    const unsigned char *p = k->mv_data;
    const unsigned char *nul = memchr(p, 0x00, k->mv_size);
    if (nul == NULL)
        return -1;
    size_t rl = (size_t)(nul - p), vl = k->mv_size - rl - 2;
    if (k->mv_size < rl + 3 || rl >= sizeof e->rule || vl >= sizeof e->value)
        return -1;
    memcpy(e->rule, p, rl);
    e->rule[rl] = '\0';
    e->kind = (char)nul[1];
    memcpy(e->value, nul + 2, vl);
    e->value[vl] = '\0';
    return 0;
}

int store_txn_allow_put(store_txn *t, const store_allow_entry *e, char *err, size_t errlen)
{
    if (store_allow_check(e->kind, e->value, err, errlen) < 0)
        return STORE_ERR;
    unsigned char key[WKEY_MAX];
    size_t n = allow_key(key, e->rule, e->kind, e->value);
    if (n == 0)
        return util_err(err, errlen, "store: rule name too long for an allow entry");
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    if (store_codec_allow_encode(&buf, e) < 0) {
        msgpack_sbuffer_destroy(&buf);
        return util_err(err, errlen, "store: out of memory encoding an allow entry");
    }
    MDB_val k = mval(key, n), v = mval(buf.data, buf.size);
    int rc = mdb_put(t->txn, t->s->allow, &k, &v, 0);
    msgpack_sbuffer_destroy(&buf);
    return rc != 0 ? store_fail(t->s, rc, "writing an allow entry", err, errlen) : 0;
}

int store_txn_allow_del(store_txn *t, const char *rule, char kind, const char *value, bool *found, char *err,
                        size_t errlen)
{
    *found = false;
    unsigned char key[WKEY_MAX];
    size_t n = allow_key(key, rule, kind, value);
    if (n == 0)
        return 0;
    MDB_val k = mval(key, n);
    int rc = mdb_del(t->txn, t->s->allow, &k, NULL);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store_fail(t->s, rc, "removing an allow entry", err, errlen);
    *found = true;
    return 0;
}

/* Every entry of txn to cb, in key order. */
static int allow_walk(store *s, MDB_txn *txn, store_allow_cb cb, void *ctx, char *err, size_t errlen)
{
    if (!s->has_triage)
        return 0;
    MDB_cursor *cur = NULL;
    int rc = mdb_cursor_open(txn, s->allow, &cur);
    if (rc != 0)
        return store_fail(s, rc, "reading the allow list", err, errlen);
    store_allow_entry e;
    MDB_val k, v;
    int ret = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (store_codec_allow_decode(v.mv_data, v.mv_size, &e) < 0 || split_key(&k, &e) < 0) {
            ret = util_err(err, errlen, "store: an allow entry in %s is corrupt", s->dir);
            break;
        }
        if (cb(&e, ctx) != 0)
            break;
    }
    if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
        ret = store_fail(s, rc, "reading the allow list", err, errlen);
    mdb_cursor_close(cur);
    return ret;
}

int store_allow_list(store *s, store_allow_cb cb, void *ctx, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    int ret = store_read_begin(s, &txn, err, errlen);
    if (ret < 0)
        return ret;
    ret = allow_walk(s, txn, cb, ctx, err, errlen);
    mdb_txn_abort(txn);
    return ret;
}

typedef struct {
    const char *rule;
    char kind;
    const char *value;
    ip_prefix addr;
    bool addr_ok;
    int64_t now_ms;
    bool allowed;
    store_allow_entry *match;
} allow_query;

static int covers(const store_allow_entry *e, void *vctx)
{
    allow_query *q = vctx;
    if (e->kind != q->kind || (e->rule[0] != '\0' && strcmp(e->rule, q->rule) != 0))
        return 0;
    if (e->expires_ms != 0 && e->expires_ms <= q->now_ms)
        return 0;
    bool hit;
    if (q->kind == STORE_KEY_IP) {
        ip_prefix p;
        hit = q->addr_ok && parse_prefix(e->value, &p) == 0 && prefix_covers(&p, &q->addr);
    } else {
        hit = strcmp(e->value, q->value) == 0;
    }
    if (!hit)
        return 0;
    q->allowed = true;
    if (q->match != NULL)
        *q->match = *e;
    return 1;
}

int store_txn_allowed(store_txn *t, const char *rule, char kind, const char *value, int64_t now_ms, bool *allowed,
                      store_allow_entry *match, char *err, size_t errlen)
{
    allow_query q = {.rule = rule, .kind = kind, .value = value, .now_ms = now_ms, .match = match};
    if (kind == STORE_KEY_IP)
        q.addr_ok = parse_prefix(value, &q.addr) == 0 && q.addr.bits == (q.addr.family == AF_INET ? 32u : 128u);
    int ret = allow_walk(t->s, t->txn, covers, &q, err, errlen);
    *allowed = ret == 0 && q.allowed;
    return ret;
}
