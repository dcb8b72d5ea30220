/*
 * loadgen.c: veille's load generator. One thread, one epoll set, N non-blocking
 * keep-alive HTTP/1.1 connections to a webhook receiver on the loopback. Every
 * delivery is a Clerk session event signed with the Svix scheme (on the fly, or all
 * before the clock starts with --presign) and a unique, time-ordered svix-id as
 * Svix's own are. Counts answers by status, measures each request's latency
 * (first byte written -> whole response read, CLOCK_MONOTONIC) and prints a human
 * summary plus one "RESULT key=value ..." line for scripts (bench/run.sh).
 * The load is always bounded: by --events, and by --duration (at most 600 s).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "ingest/ingest.h"
#include "util/util.h"

#define MAX_CONNECTIONS 4096
#define MAX_EVENTS 20000000ULL   /* latency samples are kept: 4 bytes each */
#define MAX_DURATION_S 600
#define DEFAULT_DURATION_S 120   /* the cap when only --events is given */
#define REQ_CAP 4096             /* one request: headers + a ~800-byte body */
#define RESP_MAX (1 << 20)       /* a webhook answer is tiny; more is a broken peer */
#define SAMPLE_MAX 160
#define PRESIGN_MAX_EVENTS 2000000 /* ~1.3 KiB each: 2.6 GiB at most */
#define PRESIGN_MAX_DURATION_S 240 /* signing + load inside Svix's 300 s tolerance */

enum conn_state { C_IDLE, C_CONNECTING, C_SENDING, C_READING, C_BACKOFF };

typedef struct {
    int fd;
    enum conn_state state;
    bool want_out;       /* EPOLLOUT currently armed */
    bool reused;         /* has completed at least one exchange */
    char out[REQ_CAP];   /* the request signed on the fly (not --presign) */
    const char *outp;    /* the request in flight: out, or one of the pre-signed load */
    size_t out_len, out_off;
    char *in;
    size_t in_len, in_cap;
    int64_t t_send_ns;   /* first byte of the in-flight request written */
    int64_t retry_at_ns; /* C_BACKOFF: reconnect after this */
    int backoff_ms;
} conn_t;

typedef enum { MODE_CREATED, MODE_ENDED, MODE_MIXED } ev_mode;

static struct {
    /* target */
    char host[256];
    char port[16];
    char path[512];
    struct sockaddr_storage addr;
    socklen_t addrlen;
    /* load shape */
    int connections;
    uint64_t events;       /* 0 = only bounded by duration */
    int duration_s;
    uint64_t users;
    uint64_t ips;          /* --ips: home IPs the users share (0: one per user) */
    const char *user_id;   /* --user-id: every event for this one user */
    ev_mode mode;
    int64_t start_ms;
    int64_t step_ms;
    char run_id[32];
    int timeout_s;
    bool expect_2xx;
    bool quiet;
    bool presign;          /* --presign: every request built and signed before the clock starts */
    /* signing */
    ingest_secret secret;
    EVP_MAC_CTX *mac_tmpl; /* keyed once; dup'ed per request, far cheaper than a fetch+init */
} cfg;

static struct {
    uint64_t next_seq;      /* next event number to send */
    uint64_t in_flight;
    uint64_t done;          /* responses fully read */
    uint64_t ok_2xx, non_2xx, duplicates;
    uint64_t by_word[5];    /* 2xx answers by their "status" word: k_status_words */
    uint64_t errors;        /* deliveries lost to a connection error or protocol error */
    uint64_t timeouts;
    uint64_t connect_failures, reconnects;
    uint64_t status_counts[600];
    char first_non2xx[SAMPLE_MAX];
    int first_non2xx_status;
    char first_error[SAMPLE_MAX];
    int64_t last_progress_ns; /* last successful connect or response */
    uint32_t *lat_us;
    size_t lat_len, lat_cap;
    int64_t t0_ns, t_last_ns;
} st;

static volatile sig_atomic_t g_interrupted;
static int g_ep = -1;

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: veille-loadgen --secret whsec_... [--url http://127.0.0.1:PORT/webhooks/clerk]\n"
            "                      [--events N] [--duration SECONDS] [--connections N] [options]\n"
            "  --url URL            http://HOST:PORT/PATH (loopback hosts only)\n"
            "  --host H --port P --path /p   the same, in parts (default 127.0.0.1, /webhooks/clerk)\n"
            "  --secret S           whsec_... (default: $VEILLE_WEBHOOK_SECRET)\n"
            "  --connections N      concurrent keep-alive connections (default 64, max %d)\n"
            "  --events N           total deliveries (default 100000 unless --duration is given)\n"
            "  --duration S         stop sending after S seconds (max %d; default cap %d)\n"
            "  --users N            spread events over N users (default 50000)\n"
            "  --ips N              the users share N home IPs (default 508: ~100 users per IP\n"
            "                       at 50000 users, like a large NAT); 0: one IP per user\n"
            "  --user-id ID         send every event for this one user (history benchmark)\n"
            "  --type T             session.created | session.ended | mixed (default session.created)\n"
            "  --start-ms MS        event time of the first delivery (default: now - 1 day)\n"
            "  --step-ms MS         event time step between deliveries (default 10)\n"
            "  --run-id ID          seeds every svix-id (msg_ + a KSUID: time, run, n; ids sort\n"
            "                       in sending order) and session id (default: random)\n"
            "  --presign            build and sign every request before the clock starts\n"
            "                       (needs --events <= %d; caps --duration at %d s: the\n"
            "                       receiver's 300 s timestamp tolerance)\n"
            "  --unique-ids         accepted for clarity: ids are always unique\n"
            "  --timeout S          per-request timeout (default 10)\n"
            "  --expect-2xx         exit 1 unless every delivery got a 2xx\n"
            "  --quiet              no progress lines\n",
            MAX_CONNECTIONS, MAX_DURATION_S, DEFAULT_DURATION_S, PRESIGN_MAX_EVENTS, PRESIGN_MAX_DURATION_S);
}

static int64_t now_ns(void)
{
    return util_mono_ns();
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out, const char *what)
{
    int64_t v;
    char err[UTIL_ERRLEN];
    if (util_parse_i64(s, &v, err, sizeof err) < 0 || (uint64_t)v < min || (uint64_t)v > max) {
        fprintf(stderr, "veille-loadgen: %s must be a whole number in %" PRIu64 "..%" PRIu64 " (got '%s')\n",
                what, min, max, s);
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

/* http://HOST[:PORT][/PATH]; IPv6 literals in brackets. */
static bool parse_url(const char *url)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0) {
        fprintf(stderr, "veille-loadgen: only http:// URLs are supported (got '%s')\n", url);
        return false;
    }
    p += 7;
    const char *host_end;
    const char *after;
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (host_end == NULL)
            goto bad;
        p++;
        after = host_end + 1;
    } else {
        host_end = p + strcspn(p, ":/");
        after = host_end;
    }
    size_t hl = (size_t)(host_end - p);
    if (hl == 0 || hl >= sizeof cfg.host)
        goto bad;
    memcpy(cfg.host, p, hl);
    cfg.host[hl] = '\0';
    if (*after == ':') {
        after++;
        size_t pl = strcspn(after, "/");
        if (pl == 0 || pl >= sizeof cfg.port)
            goto bad;
        memcpy(cfg.port, after, pl);
        cfg.port[pl] = '\0';
        after += pl;
    } else {
        snprintf(cfg.port, sizeof cfg.port, "80");
    }
    if (*after == '\0')
        snprintf(cfg.path, sizeof cfg.path, "/");
    else if (strlen(after) < sizeof cfg.path)
        snprintf(cfg.path, sizeof cfg.path, "%s", after);
    else
        goto bad;
    return true;
bad:
    fprintf(stderr, "veille-loadgen: cannot parse URL '%s'\n", url);
    return false;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

/* Resolve once; load is only ever sent to this machine (127.0.0.0/8 or ::1). */
static bool resolve_target(void)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(cfg.host, cfg.port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "veille-loadgen: cannot resolve %s:%s: %s\n", cfg.host, cfg.port, gai_strerror(rc));
        return false;
    }
    bool found = false;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (is_loopback(ai->ai_addr) && ai->ai_addrlen <= sizeof cfg.addr) {
            memcpy(&cfg.addr, ai->ai_addr, ai->ai_addrlen);
            cfg.addrlen = ai->ai_addrlen;
            found = true;
            break;
        }
    }
    freeaddrinfo(res);
    if (!found)
        fprintf(stderr, "veille-loadgen: %s is not a loopback address; load is only sent to this machine\n",
                cfg.host);
    return found;
}

static bool setup_mac(void)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) {
        fprintf(stderr, "veille-loadgen: OpenSSL has no HMAC\n");
        return false;
    }
    cfg.mac_tmpl = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context keeps its own reference */
    if (cfg.mac_tmpl == NULL) {
        fprintf(stderr, "veille-loadgen: EVP_MAC_CTX_new failed\n");
        return false;
    }
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (!EVP_MAC_init(cfg.mac_tmpl, cfg.secret.key, cfg.secret.len, params)) {
        fprintf(stderr, "veille-loadgen: EVP_MAC_init failed\n");
        return false;
    }
    return true;
}

/* "v1,<base64 HMAC-SHA256(id.ts.body)>" into out (>= 48 bytes). */
static bool sign(const char *id, size_t id_len, const char *ts, size_t ts_len, const char *body,
                 size_t body_len, char *out)
{
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(cfg.mac_tmpl);
    if (ctx == NULL)
        return false;
    unsigned char sig[32];
    size_t outl = 0;
    int ok = EVP_MAC_update(ctx, (const unsigned char *)id, id_len) &&
             EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
             EVP_MAC_update(ctx, (const unsigned char *)ts, ts_len) &&
             EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
             EVP_MAC_update(ctx, (const unsigned char *)body, body_len) &&
             EVP_MAC_final(ctx, sig, &outl, sizeof sig) && outl == sizeof sig;
    EVP_MAC_CTX_free(ctx);
    if (!ok)
        return false;
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, sig, (int)sizeof sig);
    return true;
}

/* Per-user profile, deterministic so reruns produce the same shape of data. */
static const struct {
    const char *city, *country;
} k_places[] = {{"Paris", "FR"}, {"New York", "US"}, {"Berlin", "DE"}, {"London", "GB"}, {"Sao Paulo", "BR"}};
static const struct {
    const char *name, *version, *device;
    bool mobile;
} k_browsers[] = {{"Chrome", "128.0.0.0", "desktop", false},
                  {"Firefox", "130.0", "desktop", false},
                  {"Safari", "17.6", "iPhone", true}};

/*
 * Body of event n. Users are taken round-robin (n % users), so each user's events
 * arrive in time order and spread evenly; every 16th event of a user comes from an
 * unusual place (a documentation-range IP in JP), as a real stream would have some.
 * Mixed mode pairs events: 2k creates session k, 2k+1 ends it.
 */
static int build_body(uint64_t n, char *buf, size_t cap)
{
    uint64_t k = cfg.mode == MODE_MIXED ? n / 2 : n;
    bool ended = cfg.mode == MODE_ENDED || (cfg.mode == MODE_MIXED && (n & 1));
    uint64_t u = cfg.user_id ? 0 : k % cfg.users;
    uint64_t round = cfg.user_id ? k : k / cfg.users;
    char user[EVENT_ID_MAX];
    if (cfg.user_id)
        snprintf(user, sizeof user, "%s", cfg.user_id);
    else
        snprintf(user, sizeof user, "user_bench%08" PRIu64, u);
    int64_t at = cfg.start_ms + (int64_t)n * cfg.step_ms;
    int64_t created = ended && cfg.mode == MODE_MIXED ? at - cfg.step_ms : at;
    bool away = round % 16 == 15;
    char ip[32];
    if (away)
        snprintf(ip, sizeof ip, "192.0.2.%u", (unsigned)(u % 254 + 1));
    else if (cfg.ips == 508)
        snprintf(ip, sizeof ip, "%s.%u", (u / 254) % 2 ? "198.51.100" : "203.0.113", (unsigned)(u % 254 + 1));
    else {
        uint64_t h = cfg.ips ? u % cfg.ips : u; /* 10.0.0.0/8 holds 16M homes */
        snprintf(ip, sizeof ip, "10.%u.%u.%u", (unsigned)(h >> 16 & 255), (unsigned)(h >> 8 & 255),
                 (unsigned)(h & 255));
    }
    const char *city = away ? "Tokyo" : k_places[u % 5].city;
    const char *country = away ? "JP" : k_places[u % 5].country;
    unsigned b = (unsigned)(u % 3);
    return snprintf(buf, cap,
                    "{\"data\":{\"object\":\"session\",\"id\":\"sess_%s_%" PRIu64 "\",\"user_id\":\"%s\","
                    "\"client_id\":\"client_bench%08" PRIu64 "\",\"status\":\"%s\","
                    "\"created_at\":%" PRId64 ",\"updated_at\":%" PRId64 ",\"expire_at\":%" PRId64 ","
                    "\"last_active_at\":%" PRId64 ",\"abandon_at\":%" PRId64 ","
                    "\"latest_activity\":{\"object\":\"session_activity\",\"id\":\"sess_activity_%s_%" PRIu64 "\","
                    "\"device_type\":\"%s\",\"is_mobile\":%s,\"browser_name\":\"%s\",\"browser_version\":\"%s\","
                    "\"ip_address\":\"%s\",\"city\":\"%s\",\"country\":\"%s\"}},"
                    "\"object\":\"event\",\"type\":\"%s\",\"timestamp\":%" PRId64 ",\"instance_id\":\"ins_bench\","
                    "\"event_attributes\":{\"http_request\":{\"client_ip\":\"%s\","
                    "\"user_agent\":\"Mozilla/5.0 (bench) %s/%s\"}}}",
                    cfg.run_id, k, user, u, ended ? "ended" : "active", created, at,
                    created + (int64_t)7 * 86400000, at, created + (int64_t)30 * 86400000, cfg.run_id, k,
                    k_browsers[b].device, k_browsers[b].mobile ? "true" : "false", k_browsers[b].name,
                    k_browsers[b].version, ip, city, country, ended ? "session.ended" : "session.created",
                    at, ip, k_browsers[b].name, k_browsers[b].version);
}

/*
 * The svix-id of delivery n, shaped as Svix's own: "msg_" + a KSUID, 20 bytes as 27
 * base62 digits (0-9A-Za-z, which sort in ASCII order as the numbers do). Bytes 0-3
 * are the time (seconds since the KSUID epoch 1400000000, big-endian), so ids made
 * together sort together and land next to each other in a B-tree keyed on them, as
 * real deliveries do; random ids would scatter every insert over the whole index.
 * Svix fills the other 16 bytes at random; here bytes 4-11 are a hash of the run id
 * and bytes 12-19 are n, big-endian: unique per run, and strictly increasing within
 * one (the time never goes back within a run: n grows with it).
 */
#define KSUID_EPOCH_S 1400000000LL
#define KSUID_BYTES 20
#define KSUID_DIGITS 27 /* ceil(160 / log2(62)) */
static void delivery_id(uint64_t n, int64_t now_s, char out[4 + KSUID_DIGITS + 1])
{
    static const char k_base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char num[KSUID_BYTES];
    uint64_t t = now_s > KSUID_EPOCH_S ? (uint64_t)(now_s - KSUID_EPOCH_S) : 0;
    uint64_t run = 1469598103934665603ULL; /* FNV-1a 64 of the run id */
    for (const char *p = cfg.run_id; *p; p++)
        run = (run ^ (unsigned char)*p) * 1099511628211ULL;
    for (int i = 0; i < 4; i++)
        num[i] = (unsigned char)(t >> (24 - 8 * i));
    for (int i = 0; i < 8; i++) {
        num[4 + i] = (unsigned char)(run >> (56 - 8 * i));
        num[12 + i] = (unsigned char)(n >> (56 - 8 * i));
    }
    /* Long division of the 160-bit big-endian number by 62, least significant digit first. */
    char digits[KSUID_DIGITS];
    for (int d = KSUID_DIGITS - 1; d >= 0; d--) {
        unsigned rem = 0;
        for (int i = 0; i < KSUID_BYTES; i++) {
            unsigned acc = rem * 256u + num[i];
            num[i] = (unsigned char)(acc / 62u);
            rem = acc % 62u;
        }
        digits[d] = k_base62[rem];
    }
    memcpy(out, "msg_", 4);
    memcpy(out + 4, digits, KSUID_DIGITS);
    out[4 + KSUID_DIGITS] = '\0';
}

/* The whole HTTP request for event n into buf (cap bytes); its length, or 0 on a
 * formatting/signing failure. */
static size_t build_request(uint64_t n, char *buf, size_t cap)
{
    char body[2048];
    int bl = build_body(n, body, sizeof body);
    if (bl < 0 || (size_t)bl >= sizeof body)
        return 0;
    /* Signed when built (just before the load when pre-signed: --presign caps the run
     * well inside the receiver's 300 s tolerance). */
    int64_t now_s = util_now_ms() / 1000;
    char id[4 + KSUID_DIGITS + 1];
    delivery_id(n, now_s, id);
    int il = (int)strlen(id);
    char ts[24];
    int tl = snprintf(ts, sizeof ts, "%" PRId64, now_s);
    char sig[64];
    if (tl < 0 || !sign(id, (size_t)il, ts, (size_t)tl, body, (size_t)bl, sig))
        return 0;
    int hl = snprintf(buf, cap,
                      "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                      "svix-id: %s\r\nsvix-timestamp: %s\r\nsvix-signature: %s\r\n"
                      "Content-Length: %d\r\n\r\n",
                      cfg.path, cfg.host, cfg.port, id, ts, sig, bl);
    if (hl < 0 || (size_t)hl + (size_t)bl > cap)
        return 0;
    memcpy(buf + hl, body, (size_t)bl);
    return (size_t)hl + (size_t)bl;
}

/* Signatures must agree with veille's own ingest_sign(): checked once before any load. */
static bool self_check_signature(void)
{
    char body[2048];
    int bl = build_body(0, body, sizeof body);
    if (bl < 0 || (size_t)bl >= sizeof body)
        return false;
    const char *id = "msg_selfcheck";
    const char *ts = "1700000000";
    char mine[64], theirs[128];
    if (!sign(id, strlen(id), ts, strlen(ts), body, (size_t)bl, mine))
        return false;
    if (ingest_sign(&cfg.secret, id, 1700000000, (const unsigned char *)body, (size_t)bl, theirs,
                    sizeof theirs) != 0) {
        fprintf(stderr, "veille-loadgen: ingest_sign failed\n");
        return false;
    }
    if (strcmp(mine, theirs) != 0) {
        fprintf(stderr, "veille-loadgen: signature self-check failed (loadgen and ingest_sign disagree)\n");
        return false;
    }
    return true;
}

static void record_latency(int64_t ns)
{
    if (st.lat_len == st.lat_cap) {
        size_t ncap = st.lat_cap ? st.lat_cap * 2 : 65536;
        uint32_t *p = realloc(st.lat_us, ncap * sizeof *p);
        if (p == NULL) {
            /* Out of memory for samples: keep counting, lose only this sample. */
            return;
        }
        st.lat_us = p;
        st.lat_cap = ncap;
    }
    int64_t us = ns / 1000;
    st.lat_us[st.lat_len++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void note_error(const char *fmt, const char *detail)
{
    if (st.first_error[0] == '\0')
        snprintf(st.first_error, sizeof st.first_error, fmt, detail);
}

static bool ep_set(conn_t *c, bool want_out, int op)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0u), .data.ptr = c};
    if (epoll_ctl(g_ep, op, c->fd, &ev) < 0) {
        fprintf(stderr, "veille-loadgen: epoll_ctl: %s\n", strerror(errno));
        return false;
    }
    c->want_out = want_out;
    return true;
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0) {
        /* close() also drops it from the epoll set. */
        if (close(c->fd) < 0 && errno != EINTR)
            fprintf(stderr, "veille-loadgen: close: %s\n", strerror(errno));
        c->fd = -1;
    }
    c->in_len = 0;
    c->reused = false;
    c->state = C_IDLE;
}

/* A connection failed: the in-flight delivery (if any) is counted lost, never resent,
 * so the load stays bounded; the connection comes back after a growing pause. */
static void conn_fail(conn_t *c, const char *why)
{
    if (c->state == C_SENDING || c->state == C_READING) {
        st.errors++;
        st.in_flight--;
        note_error("delivery lost: %s", why);
    }
    conn_close(c);
    c->backoff_ms = c->backoff_ms ? (c->backoff_ms * 2 > 1000 ? 1000 : c->backoff_ms * 2) : 10;
    c->retry_at_ns = now_ns() + (int64_t)c->backoff_ms * 1000000;
    c->state = C_BACKOFF;
}

static bool conn_open(conn_t *c)
{
    c->fd = socket(cfg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fprintf(stderr, "veille-loadgen: socket: %s\n", strerror(errno));
        return false;
    }
    int one = 1;
    /* Requests go out in one write; Nagle would only add latency to a partial one. */
    if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        fprintf(stderr, "veille-loadgen: TCP_NODELAY: %s\n", strerror(errno));
    int rc = connect(c->fd, (const struct sockaddr *)&cfg.addr, cfg.addrlen);
    if (rc < 0 && errno != EINPROGRESS) {
        st.connect_failures++;
        note_error("connect: %s", strerror(errno));
        conn_fail(c, strerror(errno));
        return true;
    }
    c->state = C_CONNECTING;
    if (!ep_set(c, true, EPOLL_CTL_ADD))
        return false;
    return true;
}

static bool sending_allowed(int64_t deadline_ns)
{
    if (g_interrupted || now_ns() >= deadline_ns)
        return false;
    return cfg.events == 0 || st.next_seq < cfg.events;
}

static void try_send(conn_t *c);

/*
 * --presign: all cfg.events requests built and signed before the load, back to back
 * in one buffer, so the load generator spends the run's CPU on sockets only (it shares
 * the cores with the server it measures) and every server is offered the same bytes.
 */
static struct {
    char *buf;
    size_t *off; /* request n is buf[off[n] .. off[n + 1]) */
} g_load;

static bool presign_load(void)
{
    size_t cap = (size_t)cfg.events * 1536, len = 0;
    g_load.buf = malloc(cap);
    g_load.off = malloc(((size_t)cfg.events + 1) * sizeof *g_load.off);
    if (g_load.buf == NULL || g_load.off == NULL) {
        fprintf(stderr, "veille-loadgen: --presign: no memory for %" PRIu64 " requests\n", cfg.events);
        return false;
    }
    for (uint64_t n = 0; n < cfg.events; n++) {
        if (cap - len < REQ_CAP) {
            char *p = realloc(g_load.buf, cap * 2);
            if (p == NULL) {
                fprintf(stderr, "veille-loadgen: --presign: no memory for %" PRIu64 " requests\n", cfg.events);
                return false;
            }
            g_load.buf = p;
            cap *= 2;
        }
        g_load.off[n] = len;
        size_t w = build_request(n, g_load.buf + len, REQ_CAP);
        if (w == 0) {
            fprintf(stderr, "veille-loadgen: cannot build request %" PRIu64 "\n", n);
            return false;
        }
        len += w;
    }
    g_load.off[cfg.events] = len;
    return true;
}

/* Start the next delivery on an idle, connected connection, or leave it parked. */
static void next_request(conn_t *c, int64_t deadline_ns)
{
    if (!sending_allowed(deadline_ns)) {
        c->state = C_IDLE;
        if (c->want_out)
            (void)ep_set(c, false, EPOLL_CTL_MOD);
        return;
    }
    uint64_t n = st.next_seq++;
    if (cfg.presign) {
        c->outp = g_load.buf + g_load.off[n];
        c->out_len = g_load.off[n + 1] - g_load.off[n];
    } else {
        c->outp = c->out;
        c->out_len = build_request(n, c->out, sizeof c->out);
    }
    c->out_off = 0;
    if (c->out_len == 0) {
        fprintf(stderr, "veille-loadgen: cannot build request %" PRIu64 "\n", n);
        st.errors++;
        note_error("%s", "request build failed");
        c->state = C_IDLE;
        return;
    }
    st.in_flight++;
    c->state = C_SENDING;
    c->in_len = 0;
    c->t_send_ns = now_ns();
    try_send(c);
}

static void try_send(conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->outp + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w > 0) {
            c->out_off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out && !ep_set(c, true, EPOLL_CTL_MOD))
                conn_fail(c, "epoll_ctl");
            return;
        }
        conn_fail(c, w < 0 ? strerror(errno) : "send returned 0");
        return;
    }
    c->state = C_READING;
    if (c->want_out && !ep_set(c, false, EPOLL_CTL_MOD))
        conn_fail(c, "epoll_ctl");
}

static bool ci_prefix(const char *p, const char *end, const char *name)
{
    size_t n = strlen(name);
    return (size_t)(end - p) >= n && strncasecmp(p, name, n) == 0;
}

/*
 * Parse one response at the start of c->in.
 * Returns >0 = bytes consumed (complete), 0 = need more, -1 = malformed.
 * status, keep_alive, body and body_len are set on completion. Handles
 * Content-Length, chunked, and 1xx interim answers (skipped).
 */
static long parse_response(const char *buf, size_t len, bool at_eof, int *status, bool *keep_alive,
                           const char **body, size_t *body_len)
{
    size_t base = 0;
    for (;;) {
        const char *start = buf + base;
        size_t avail = len - base;
        const char *hdr_end = memmem(start, avail, "\r\n\r\n", 4);
        if (hdr_end == NULL)
            return avail > 65536 ? -1 : 0;
        const char *end = hdr_end + 2; /* keep the last header's CRLF */
        if (avail < 12 || strncmp(start, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)start[9]) ||
            !isdigit((unsigned char)start[10]) || !isdigit((unsigned char)start[11]))
            return -1;
        int minor = start[7] - '0';
        int code = (start[9] - '0') * 100 + (start[10] - '0') * 10 + (start[11] - '0');
        bool ka = minor >= 1;
        long long clen = -1;
        bool chunked = false;
        const char *line = memchr(start, '\n', (size_t)(end - start));
        line = line ? line + 1 : end;
        while (line < end) {
            const char *eol = memchr(line, '\n', (size_t)(end - line));
            if (eol == NULL)
                eol = end;
            const char *colon = memchr(line, ':', (size_t)(eol - line));
            if (colon != NULL) {
                const char *v = colon + 1;
                while (v < eol && (*v == ' ' || *v == '\t'))
                    v++;
                if (ci_prefix(line, colon, "content-length") && colon - line == 14) {
                    char *e = NULL;
                    errno = 0;
                    clen = strtoll(v, &e, 10);
                    if (errno != 0 || e == v || clen < 0 || clen > RESP_MAX)
                        return -1;
                } else if (ci_prefix(line, colon, "transfer-encoding") && colon - line == 17) {
                    for (const char *q = v; q + 7 <= eol; q++)
                        if (strncasecmp(q, "chunked", 7) == 0)
                            chunked = true;
                } else if (ci_prefix(line, colon, "connection") && colon - line == 10) {
                    for (const char *q = v; q + 5 <= eol; q++) {
                        if (strncasecmp(q, "close", 5) == 0)
                            ka = false;
                        if (q + 10 <= eol && strncasecmp(q, "keep-alive", 10) == 0)
                            ka = true;
                    }
                }
            }
            line = eol + 1;
        }
        size_t hlen = (size_t)(hdr_end + 4 - start);
        if (code >= 100 && code < 200) { /* interim answer: skip it, the real one follows */
            base += hlen;
            continue;
        }
        *status = code;
        *keep_alive = ka;
        const char *b = start + hlen;
        size_t blen_avail = avail - hlen;
        if (code == 204 || code == 304) {
            *body = b;
            *body_len = 0;
            return (long)(base + hlen);
        }
        if (chunked) {
            /* Walk the chunks; the body sample is only the first chunk (enough for a label). */
            size_t off = 0;
            const char *first = NULL;
            size_t first_len = 0;
            for (;;) {
                const char *crlf = memmem(b + off, blen_avail - off, "\r\n", 2);
                if (crlf == NULL)
                    return blen_avail - off > 64 ? -1 : 0;
                char *e = NULL;
                unsigned long long sz = strtoull(b + off, &e, 16);
                if (e == b + off || sz > RESP_MAX)
                    return -1;
                off = (size_t)(crlf + 2 - b);
                if (sz == 0) {
                    /* Trailers end with an empty line. */
                    const char *fin = memmem(b + off, blen_avail - off, "\r\n", 2);
                    while (fin != NULL && fin != b + off) {
                        off = (size_t)(fin + 2 - b);
                        fin = memmem(b + off, blen_avail - off, "\r\n", 2);
                    }
                    if (fin == NULL)
                        return 0;
                    off += 2;
                    *body = first ? first : b;
                    *body_len = first_len;
                    return (long)(base + hlen + off);
                }
                if (blen_avail - off < sz + 2)
                    return 0;
                if (first == NULL) {
                    first = b + off;
                    first_len = (size_t)sz;
                }
                off += (size_t)sz + 2;
            }
        }
        if (clen >= 0) {
            if (blen_avail < (size_t)clen)
                return 0;
            *body = b;
            *body_len = (size_t)clen;
            return (long)(base + hlen + (size_t)clen);
        }
        /* No length: the body runs to the close. */
        *keep_alive = false;
        if (!at_eof)
            return blen_avail > RESP_MAX ? -1 : 0;
        *body = b;
        *body_len = blen_avail;
        return (long)(base + hlen + blen_avail);
    }
}

/*
 * The "status" word of a 2xx answer. veille answers "stored" when it acknowledges
 * after its LMDB commit and "accepted" when it acknowledges from its write-ahead log
 * (applied later): both are a success. "duplicate" under unique ids, or "ignored",
 * means the load did not do what it was meant to; anything else ("received", "ok"
 * from the other receivers) is counted as other.
 */
enum { WORD_STORED, WORD_ACCEPTED, WORD_DUPLICATE, WORD_IGNORED, WORD_OTHER };
static const char *const k_status_words[] = {"stored", "accepted", "duplicate", "ignored", "other"};

static int status_word(const char *body, size_t len)
{
    const char *key = memmem(body, len, "\"status\"", 8);
    if (key == NULL)
        return WORD_OTHER;
    const char *p = key + 8, *end = body + len;
    while (p < end && (*p == ' ' || *p == ':'))
        p++;
    if (p >= end || *p != '"')
        return WORD_OTHER;
    p++;
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (q == NULL)
        return WORD_OTHER;
    for (int w = 0; w < WORD_OTHER; w++)
        if ((size_t)(q - p) == strlen(k_status_words[w]) && memcmp(p, k_status_words[w], (size_t)(q - p)) == 0)
            return w;
    return WORD_OTHER;
}

static void complete(conn_t *c, int status, const char *body, size_t body_len)
{
    int64_t t = now_ns();
    record_latency(t - c->t_send_ns);
    st.t_last_ns = t;
    st.in_flight--;
    st.done++;
    if (status >= 0 && status < 600)
        st.status_counts[status]++;
    if (status >= 200 && status < 300) {
        st.ok_2xx++;
        int w = status_word(body, body_len);
        st.by_word[w]++;
        if (w == WORD_DUPLICATE)
            st.duplicates++;
    } else {
        st.non_2xx++;
        if (st.first_non2xx_status == 0) {
            st.first_non2xx_status = status;
            size_t n = body_len < SAMPLE_MAX - 1 ? body_len : SAMPLE_MAX - 1;
            memcpy(st.first_non2xx, body, n);
            st.first_non2xx[n] = '\0';
            for (size_t i = 0; i < n; i++)
                if (!isprint((unsigned char)st.first_non2xx[i]))
                    st.first_non2xx[i] = '.';
            fprintf(stderr, "veille-loadgen: NON-2xx response: HTTP %d %s\n", status, st.first_non2xx);
        }
    }
    st.last_progress_ns = t;
    c->backoff_ms = 0;
    c->reused = true;
}

static void on_readable(conn_t *c, int64_t deadline_ns)
{
    bool eof = false;
    for (;;) {
        if (c->in_cap - c->in_len < 4096) {
            size_t ncap = c->in_cap ? c->in_cap * 2 : 8192;
            if (ncap > RESP_MAX + 65536) {
                conn_fail(c, "response too large");
                return;
            }
            char *p = realloc(c->in, ncap);
            if (p == NULL) {
                conn_fail(c, "out of memory");
                return;
            }
            c->in = p;
            c->in_cap = ncap;
        }
        size_t room = c->in_cap - c->in_len;
        ssize_t r = recv(c->fd, c->in + c->in_len, room, 0);
        if (r > 0) {
            c->in_len += (size_t)r;
            /* A short read drained the socket: skip the recv that would only say EAGAIN
             * (level-triggered epoll reports whatever arrives later). The loadgen shares
             * two cores with the server, so every syscall saved is server time. */
            if ((size_t)r < room)
                break;
            continue;
        }
        if (r == 0) {
            eof = true;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        conn_fail(c, strerror(errno));
        return;
    }
    if (c->state != C_READING && c->state != C_SENDING) {
        /* Nothing asked: a keep-alive close from the server, or stray bytes. */
        if (c->in_len > 0)
            note_error("%s", "unsolicited bytes from server");
        if (eof || c->in_len > 0) {
            st.reconnects++;
            conn_close(c);
            c->state = C_BACKOFF;
            c->retry_at_ns = 0;
        }
        return;
    }
    if (c->in_len > 0) {
        int status = 0;
        bool ka = true;
        const char *body = NULL;
        size_t blen = 0;
        long used = parse_response(c->in, c->in_len, eof, &status, &ka, &body, &blen);
        if (used < 0) {
            conn_fail(c, "malformed HTTP response");
            return;
        }
        if (used > 0) {
            complete(c, status, body, blen);
            bool extra = (size_t)used != c->in_len;
            c->in_len = 0;
            if (!ka || eof || extra || c->state == C_SENDING) {
                /* Closed by the peer, or an answer before the request was fully sent:
                 * this connection's framing can no longer be trusted. */
                if (extra)
                    note_error("%s", "bytes after the response");
                st.reconnects++;
                conn_close(c);
                c->state = C_BACKOFF;
                c->retry_at_ns = 0;
                return;
            }
            c->state = C_IDLE;
            next_request(c, deadline_ns);
            return;
        }
    }
    if (eof)
        conn_fail(c, c->reused ? "server closed a reused connection mid-request" : "server closed the connection");
}

static void on_writable(conn_t *c, int64_t deadline_ns)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
            err = errno;
        if (err != 0) {
            st.connect_failures++;
            note_error("connect: %s", strerror(err));
            conn_fail(c, strerror(err));
            return;
        }
        st.last_progress_ns = now_ns();
        c->state = C_IDLE;
        next_request(c, deadline_ns);
        return;
    }
    if (c->state == C_SENDING)
        try_send(c);
    else if (c->want_out)
        (void)ep_set(c, false, EPOLL_CTL_MOD);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(double p)
{
    if (st.lat_len == 0)
        return 0.0;
    /* Nearest-rank percentile. */
    size_t rank = (size_t)(p / 100.0 * (double)st.lat_len + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > st.lat_len)
        rank = st.lat_len;
    return st.lat_us[rank - 1] / 1000.0;
}

static bool parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, 0, 'u'},         {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'P'},        {"path", required_argument, 0, 'p'},
        {"secret", required_argument, 0, 's'},      {"connections", required_argument, 0, 'c'},
        {"events", required_argument, 0, 'n'},      {"duration", required_argument, 0, 'd'},
        {"users", required_argument, 0, 'U'},       {"user-id", required_argument, 0, 'i'},
        {"ips", required_argument, 0, 'N'},
        {"type", required_argument, 0, 't'},        {"start-ms", required_argument, 0, 'S'},
        {"step-ms", required_argument, 0, 'T'},     {"run-id", required_argument, 0, 'r'},
        {"unique-ids", no_argument, 0, 'I'},        {"timeout", required_argument, 0, 'o'},
        {"expect-2xx", no_argument, 0, 'x'},        {"quiet", no_argument, 0, 'q'},
        {"presign", no_argument, 0, 'G'},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0},
    };
    const char *secret = getenv("VEILLE_WEBHOOK_SECRET");
    uint64_t v;
    bool have_start = false, have_duration = false;
    snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
    snprintf(cfg.port, sizeof cfg.port, "8080");
    snprintf(cfg.path, sizeof cfg.path, "/webhooks/clerk");
    cfg.connections = 64;
    cfg.users = 50000;
    cfg.ips = 508;
    cfg.mode = MODE_CREATED;
    cfg.step_ms = 10;
    cfg.timeout_s = 10;
    cfg.duration_s = DEFAULT_DURATION_S;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u':
            if (!parse_url(optarg))
                return false;
            break;
        case 'H':
            if (strlen(optarg) >= sizeof cfg.host)
                return false;
            snprintf(cfg.host, sizeof cfg.host, "%s", optarg);
            break;
        case 'P':
            if (!parse_u64(optarg, 1, 65535, &v, "--port"))
                return false;
            snprintf(cfg.port, sizeof cfg.port, "%" PRIu64, v);
            break;
        case 'p':
            if (optarg[0] != '/' || strlen(optarg) >= sizeof cfg.path) {
                fprintf(stderr, "veille-loadgen: --path must start with '/'\n");
                return false;
            }
            snprintf(cfg.path, sizeof cfg.path, "%s", optarg);
            break;
        case 's':
            secret = optarg;
            break;
        case 'c':
            if (!parse_u64(optarg, 1, MAX_CONNECTIONS, &v, "--connections"))
                return false;
            cfg.connections = (int)v;
            break;
        case 'n':
            if (!parse_u64(optarg, 1, MAX_EVENTS, &cfg.events, "--events"))
                return false;
            break;
        case 'd':
            if (!parse_u64(optarg, 1, MAX_DURATION_S, &v, "--duration"))
                return false;
            cfg.duration_s = (int)v;
            have_duration = true;
            break;
        case 'N':
            if (!parse_u64(optarg, 0, 100000000, &cfg.ips, "--ips"))
                return false;
            break;
        case 'U':
            if (!parse_u64(optarg, 1, 100000000, &cfg.users, "--users"))
                return false;
            break;
        case 'i':
            if (strlen(optarg) == 0 || strlen(optarg) >= 64 || strpbrk(optarg, "\"\\ ") != NULL) {
                fprintf(stderr, "veille-loadgen: --user-id must be 1..63 characters, no quotes or spaces\n");
                return false;
            }
            cfg.user_id = optarg;
            break;
        case 't':
            if (strcmp(optarg, "session.created") == 0)
                cfg.mode = MODE_CREATED;
            else if (strcmp(optarg, "session.ended") == 0)
                cfg.mode = MODE_ENDED;
            else if (strcmp(optarg, "mixed") == 0)
                cfg.mode = MODE_MIXED;
            else {
                fprintf(stderr, "veille-loadgen: --type must be session.created, session.ended or mixed\n");
                return false;
            }
            break;
        case 'S':
            if (!parse_u64(optarg, 0, 4102444800000ULL, &v, "--start-ms"))
                return false;
            cfg.start_ms = (int64_t)v;
            have_start = true;
            break;
        case 'T':
            if (!parse_u64(optarg, 0, 86400000, &v, "--step-ms"))
                return false;
            cfg.step_ms = (int64_t)v;
            break;
        case 'r':
            if (strlen(optarg) == 0 || strlen(optarg) >= sizeof cfg.run_id ||
                strspn(optarg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") !=
                    strlen(optarg)) {
                fprintf(stderr, "veille-loadgen: --run-id must be 1..31 letters or digits\n");
                return false;
            }
            snprintf(cfg.run_id, sizeof cfg.run_id, "%s", optarg);
            break;
        case 'I':
            break;
        case 'o':
            if (!parse_u64(optarg, 1, 120, &v, "--timeout"))
                return false;
            cfg.timeout_s = (int)v;
            break;
        case 'x':
            cfg.expect_2xx = true;
            break;
        case 'q':
            cfg.quiet = true;
            break;
        case 'G':
            cfg.presign = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return false;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "veille-loadgen: unexpected argument '%s'\n", argv[optind]);
        return false;
    }
    if (cfg.events == 0 && !have_duration)
        cfg.events = 100000;
    if (cfg.presign && (cfg.events == 0 || cfg.events > PRESIGN_MAX_EVENTS)) {
        fprintf(stderr, "veille-loadgen: --presign needs --events 1..%d\n", PRESIGN_MAX_EVENTS);
        return false;
    }
    if (cfg.presign && cfg.duration_s > PRESIGN_MAX_DURATION_S) {
        if (have_duration) {
            fprintf(stderr, "veille-loadgen: --presign allows --duration up to %d s (signatures expire after 300 s)\n",
                    PRESIGN_MAX_DURATION_S);
            return false;
        }
        cfg.duration_s = PRESIGN_MAX_DURATION_S;
    }
    if (secret == NULL || secret[0] == '\0') {
        fprintf(stderr, "veille-loadgen: no secret: pass --secret whsec_... or set VEILLE_WEBHOOK_SECRET\n");
        return false;
    }
    ingest_secrets secrets;
    char err[UTIL_ERRLEN];
    if (ingest_parse_secrets(secret, &secrets, err, sizeof err) < 0) {
        fprintf(stderr, "veille-loadgen: bad secret: %s\n", err);
        return false;
    }
    cfg.secret = secrets.secrets[0];
    OPENSSL_cleanse(&secrets, sizeof secrets);
    if (!have_start)
        cfg.start_ms = util_now_ms() - 86400000LL;
    if (cfg.run_id[0] == '\0') {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ ((uint64_t)ts.tv_nsec << 16) ^ (uint64_t)getpid();
        snprintf(cfg.run_id, sizeof cfg.run_id, "%08" PRIx64, x & (uint64_t)0xffffffffff);
    }
    return true;
}

int main(int argc, char **argv)
{
    if (!parse_args(argc, argv))
        return 2;
    if (!resolve_target() || !setup_mac() || !self_check_signature())
        return 2;

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
        perror("veille-loadgen: sigaction");
        return 3;
    }
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) { /* send() uses MSG_NOSIGNAL; this is belt and braces */
        perror("veille-loadgen: signal");
        return 3;
    }

    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (g_ep < 0) {
        perror("veille-loadgen: epoll_create1");
        return 3;
    }
    conn_t *conns = calloc((size_t)cfg.connections, sizeof *conns);
    if (conns == NULL) {
        perror("veille-loadgen: calloc");
        return 3;
    }
    if (cfg.events > 0 && cfg.events <= MAX_EVENTS) {
        st.lat_cap = (size_t)cfg.events;
        st.lat_us = malloc(st.lat_cap * sizeof *st.lat_us);
        if (st.lat_us == NULL)
            st.lat_cap = 0;
    }

    if (!cfg.quiet)
        fprintf(stderr,
                "veille-loadgen: target http://%s:%s%s, %d connections, %s%" PRIu64 " events, %d s cap, %s, run %s\n",
                cfg.host, cfg.port, cfg.path, cfg.connections, cfg.events ? "" : "unbounded count / ",
                cfg.events, cfg.duration_s, cfg.user_id ? cfg.user_id : "spread over users", cfg.run_id);

    if (cfg.presign) {
        int64_t t = now_ns();
        if (!presign_load())
            return 3;
        if (!cfg.quiet)
            fprintf(stderr, "veille-loadgen: %" PRIu64 " requests signed in %.2f s (%zu bytes)\n", cfg.events,
                    (double)(now_ns() - t) / 1e9, g_load.off[cfg.events]);
    }
    st.t0_ns = now_ns();
    st.t_last_ns = st.t0_ns;
    st.last_progress_ns = st.t0_ns;
    const int64_t deadline = st.t0_ns + (int64_t)cfg.duration_s * 1000000000LL;
    /* In-flight requests get their own timeout to finish after the deadline. */
    const int64_t hard_deadline = deadline + (int64_t)cfg.timeout_s * 1000000000LL + 1000000000LL;
    const int64_t timeout_ns = (int64_t)cfg.timeout_s * 1000000000LL;
    /* With nothing in flight, this long without a connect or an answer means the
     * server is gone: stop instead of spinning until the deadline. */
    const int64_t give_up_ns = 5000000000LL;
    int rc_fatal = 0;

    for (int i = 0; i < cfg.connections; i++) {
        conns[i].fd = -1;
        if (!conn_open(&conns[i])) {
            rc_fatal = 3;
            break;
        }
    }

    struct epoll_event evs[256];
    int64_t next_progress = st.t0_ns + (isatty(2) ? 1 : 10) * 1000000000LL;
    uint64_t prev_done = 0;
    int64_t prev_t = st.t0_ns;
    while (rc_fatal == 0) {
        int n = epoll_wait(g_ep, evs, 256, 20);
        if (n < 0 && errno != EINTR) {
            perror("veille-loadgen: epoll_wait");
            rc_fatal = 3;
            break;
        }
        int64_t t = now_ns();
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            uint32_t e = evs[i].events;
            if ((e & EPOLLOUT) && c->fd >= 0)
                on_writable(c, deadline);
            if ((e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && c->fd >= 0) {
                if (c->state == C_CONNECTING)
                    on_writable(c, deadline); /* a refused connect reports as ERR/HUP */
                else
                    on_readable(c, deadline);
            }
        }
        bool may_send = sending_allowed(deadline);
        for (int i = 0; i < cfg.connections; i++) {
            conn_t *c = &conns[i];
            if ((c->state == C_SENDING || c->state == C_READING) && t - c->t_send_ns > timeout_ns) {
                st.timeouts++;
                conn_fail(c, "request timed out");
                continue;
            }
            if (c->state == C_BACKOFF && may_send && t >= c->retry_at_ns) {
                if (!conn_open(c)) {
                    rc_fatal = 3;
                    break;
                }
            } else if (c->state == C_IDLE && c->fd >= 0 && may_send) {
                next_request(c, deadline);
            }
        }
        if (st.in_flight == 0 && may_send && t - st.last_progress_ns > give_up_ns) {
            fprintf(stderr, "veille-loadgen: no connection to %s:%s for 5 s (%s); giving up\n", cfg.host,
                    cfg.port, st.first_error[0] ? st.first_error : "no answer");
            rc_fatal = 3;
            break;
        }
        if (!sending_allowed(deadline) && st.in_flight == 0)
            break;
        if (t >= hard_deadline) {
            fprintf(stderr, "veille-loadgen: %" PRIu64 " requests still in flight at the hard deadline\n",
                    st.in_flight);
            st.errors += st.in_flight;
            st.timeouts += st.in_flight;
            st.in_flight = 0;
            break;
        }
        if (!cfg.quiet && t >= next_progress) {
            double dt = (double)(t - prev_t) / 1e9;
            fprintf(stderr, "veille-loadgen: [%5.1fs] done %" PRIu64 " (%.0f/s), 2xx %" PRIu64 ", non-2xx %" PRIu64
                            ", errors %" PRIu64 "\n",
                    (double)(t - st.t0_ns) / 1e9, st.done, (double)(st.done - prev_done) / dt, st.ok_2xx,
                    st.non_2xx, st.errors);
            prev_done = st.done;
            prev_t = t;
            next_progress = t + (isatty(2) ? 1 : 10) * 1000000000LL;
        }
    }
    for (int i = 0; i < cfg.connections; i++) {
        conns[i].state = C_IDLE; /* what was still in flight is already counted */
        conn_close(&conns[i]);
        free(conns[i].in);
    }
    free(conns);
    if (close(g_ep) < 0)
        perror("veille-loadgen: close epoll");
    EVP_MAC_CTX_free(cfg.mac_tmpl);
    OPENSSL_cleanse(&cfg.secret, sizeof cfg.secret);

    double elapsed = (double)(st.t_last_ns - st.t0_ns) / 1e9;
    if (elapsed <= 0)
        elapsed = 1e-9;
    qsort(st.lat_us, st.lat_len, sizeof *st.lat_us, cmp_u32);
    double p50 = pct_ms(50), p90 = pct_ms(90), p99 = pct_ms(99), p999 = pct_ms(99.9);
    double mx = st.lat_len ? st.lat_us[st.lat_len - 1] / 1000.0 : 0.0;
    double rate = (double)st.ok_2xx / elapsed;
    uint64_t unsent = cfg.events > st.next_seq ? cfg.events - st.next_seq : 0;

    printf("veille-loadgen: %" PRIu64 " deliveries to http://%s:%s%s over %d connections in %.3f s\n", st.done,
           cfg.host, cfg.port, cfg.path, cfg.connections, elapsed);
    printf("  throughput  %.0f events/s (2xx answers per second)\n", rate);
    printf("  latency     p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n", p50, p90, p99,
           p999, mx);
    printf("  answers     2xx %" PRIu64 " (duplicate %" PRIu64 ")  non-2xx %" PRIu64 "  lost %" PRIu64
           " (timeouts %" PRIu64 ")  connect failures %" PRIu64 "  reconnects %" PRIu64 "\n",
           st.ok_2xx, st.duplicates, st.non_2xx, st.errors, st.timeouts, st.connect_failures, st.reconnects);
    printf("  2xx words  ");
    for (int w = 0; w <= WORD_OTHER; w++)
        printf(" %s %" PRIu64, k_status_words[w], st.by_word[w]);
    printf("\n");
    printf("  statuses   ");
    for (int s = 0; s < 600; s++)
        if (st.status_counts[s])
            printf(" %d x %" PRIu64, s, st.status_counts[s]);
    printf("\n");
    if (unsent)
        printf("  NOT SENT    %" PRIu64 " of %" PRIu64 " events (time limit or interrupt)\n", unsent, cfg.events);
    printf("RESULT events=%" PRIu64 " ok_2xx=%" PRIu64 " non_2xx=%" PRIu64 " errors=%" PRIu64 " timeouts=%" PRIu64
           " duplicates=%" PRIu64 " unsent=%" PRIu64 " connections=%d elapsed_s=%.3f events_per_s=%.0f"
           " p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f",
           st.done, st.ok_2xx, st.non_2xx, st.errors, st.timeouts, st.duplicates, unsent, cfg.connections,
           elapsed, rate, p50, p90, p99, p999, mx);
    for (int s = 0; s < 600; s++)
        if (st.status_counts[s])
            printf(" status_%d=%" PRIu64, s, st.status_counts[s]);
    for (int w = 0; w <= WORD_OTHER; w++)
        printf(" %s=%" PRIu64, k_status_words[w], st.by_word[w]);
    printf("\n");
    if (fflush(stdout) != 0)
        perror("veille-loadgen: stdout");

    bool bad = st.non_2xx > 0 || st.errors > 0;
    if (st.non_2xx > 0)
        fprintf(stderr, "veille-loadgen: !!! %" PRIu64 " NON-2xx ANSWERS (first: HTTP %d %s)\n", st.non_2xx,
                st.first_non2xx_status, st.first_non2xx);
    if (st.errors > 0)
        fprintf(stderr, "veille-loadgen: !!! %" PRIu64 " DELIVERIES LOST (first: %s)\n", st.errors, st.first_error);
    free(st.lat_us);
    free(g_load.buf);
    free(g_load.off);
    if (rc_fatal)
        return rc_fatal;
    if (cfg.expect_2xx && (bad || unsent > 0 || g_interrupted))
        return 1;
    return 0;
}
