/*
 * simulate.c: `veille simulate`, a local sender. Signs Clerk-shaped deliveries
 * with the secret serve reads and posts them to a running serve, prints each
 * answer, then the alerts the store raised for them (read-only, as `veille
 * alerts`), so the whole path can be seen working before Clerk is pointed at it.
 *
 * The client is a plain blocking socket, one connection per delivery (as Svix
 * sends them), not h2o's http1client on an event loop as src/deliver does: the
 * deliveries go one after the other, to loopback by default, and the answer to
 * one is printed before the next is sent, so a loop buys nothing and a blocking
 * client is a few lines anyone can audit. The price: plain http:// only (no TLS).
 *
 * Traps: the URL's host must be loopback unless --allow-remote (a test sender
 * pointed at production by mistake writes fake sign-ins into real history);
 * every address the name resolves to is checked, not just the first.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/internal.h"
#include "ingest/ingest.h"
#include "store/store.h"
#include "util/util.h"

#define SIM_TIMEOUT_S 15       /* Svix's own limit for an answer */
#define SIM_ANSWER_MAX 65536   /* an answer longer than this is cut */
#define SIM_RATE_MAX 10000.0
#define SIM_APPLY_WAIT_MS 10000 /* for serve to apply what it accepted */
#define SIM_FILE_RATE 10.0     /* deliveries per second in --file mode unless --rate */

static const char simulate_usage[] =
    "usage: veille simulate [--url URL] [--allow-remote] [--data DIR] [--rate N/s] [SCENARIO]\n"
    "       veille simulate [--url URL] [--allow-remote] [--data DIR] [--rate N/s] --file EVENTS.ndjson|-\n"
    "Signs Clerk-shaped deliveries with the secret serve reads (VEILLE_WEBHOOK_SECRET, else\n"
    "CLERK_WEBHOOK_SIGNING_SECRET; for a URL ending /webhooks/clerk/NAME, VEILLE_WEBHOOK_SECRET_NAME),\n"
    "posts them to a running veille serve, prints each answer, then the alerts the store in\n"
    "--data (default ./veille-data) raised for them.\n"
    "  --url URL        default http://127.0.0.1:8080/webhooks/clerk; plain http only\n"
    "  --allow-remote   send to a host that is not loopback\n"
    "  --rate N/s       deliveries per second (--file: default 10/s; scenarios: no pause)\n"
    "  --file FILE      send recorded envelopes, one JSON object a line (as veille replay reads)\n"
    "SCENARIO: sample (default; user created, signed in, signed out), brute-force, impossible-travel, spray.\n"
    "Exit: 0 every delivery answered 2xx, 2 usage, 3 a delivery failed or was refused.\n";

typedef struct {
    char host[256];  /* without the brackets of an IPv6 literal */
    char port[8];
    char path[1024];
    char hostport[300]; /* the Host header, as written in the URL */
} sim_url;

typedef struct {
    struct addrinfo *addrs;
    const sim_url *url;
    const ingest_secret *secret;
    char id_prefix[64];   /* "msg_sim_<tag>_": every delivery of this run */
    unsigned seq;
    char last_accepted[96]; /* the newest delivery answered "accepted" ("" none) */
    double rate;          /* per second; 0: no pause */
    int64_t started_ns;
    size_t sent, ok, failed;
} sim_ctx;

/* http://HOST[:PORT][/PATH]; HOST may be [v6]. */
static int parse_url(const char *s, sim_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    if (strncmp(s, "https://", 8) == 0)
        return util_err(err, errlen, "--url %s: https is not supported (simulate speaks plain http, for a serve on "
                                     "this machine or behind a TLS proxy you reach over http)", s);
    if (strncmp(s, "http://", 7) != 0)
        return util_err(err, errlen, "--url %s: expected http://HOST[:PORT]/PATH", s);
    const char *p = s + 7, *end = p + strcspn(p, "/");
    size_t hplen = (size_t)(end - p);
    if (hplen == 0 || hplen >= sizeof u->hostport)
        return util_err(err, errlen, "--url %s: no host, or a host too long", s);
    memcpy(u->hostport, p, hplen);
    const char *port = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', hplen);
        if (close == NULL || (close + 1 != end && close[1] != ':'))
            return util_err(err, errlen, "--url %s: bad [IPv6] host", s);
        memcpy(u->host, p + 1, (size_t)(close - p - 1));
        port = close + 1 != end ? close + 2 : NULL;
    } else {
        const char *colon = memchr(p, ':', hplen);
        memcpy(u->host, p, (size_t)((colon ? colon : end) - p));
        port = colon ? colon + 1 : NULL;
    }
    if (u->host[0] == '\0')
        return util_err(err, errlen, "--url %s: no host", s);
    size_t plen = port ? (size_t)(end - port) : 0;
    if (port != NULL) {
        bool digits = plen > 0 && plen < 6;
        for (size_t i = 0; digits && i < plen; i++)
            digits = port[i] >= '0' && port[i] <= '9';
        if (!digits || atoi(port) < 1 || atoi(port) > 65535)
            return util_err(err, errlen, "--url %s: the port must be 1 to 65535", s);
        memcpy(u->port, port, plen);
    } else {
        snprintf(u->port, sizeof u->port, "80");
    }
    snprintf(u->path, sizeof u->path, "%s", *end ? end : "/");
    for (const char *c = u->path; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return util_err(err, errlen, "--url %s: the path holds a space or control character", s);
    return 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

/* The secret list serve uses for the URL's route: a named one for
 * /webhooks/clerk/NAME, the unnamed one otherwise. Deliveries are signed with its
 * first secret (serve accepts any of the list). */
static int route_secrets(const char *path, ingest_secrets *out, ingest_instances *named, char *env_name,
                         size_t env_len, char *err, size_t errlen)
{
    extern char **environ;
    static const char named_prefix[] = "/webhooks/clerk/";
    const char *name = strncmp(path, named_prefix, sizeof named_prefix - 1) == 0 ? path + sizeof named_prefix - 1
                                                                                  : NULL;
    char sub[UTIL_ERRLEN];
    if (name != NULL && *name != '\0') {
        size_t nlen = strcspn(name, "/?");
        if (ingest_parse_instances(environ, named, sub, sizeof sub) < 0)
            return util_err(err, errlen, "%s", sub);
        snprintf(env_name, env_len, "%s_%.*s", INGEST_SECRET_ENV, (int)nlen, name);
        for (char *c = env_name + sizeof INGEST_SECRET_ENV; *c; c++)
            if (*c >= 'a' && *c <= 'z')
                *c = (char)(*c - 'a' + 'A');
        const ingest_secrets *s = ingest_instance_secrets(named, name, nlen);
        if (s == NULL)
            return util_err(err, errlen, "%s is not set: the route %s verifies with that instance's secret", env_name,
                            path);
        *out = *s;
        return 0;
    }
    const char *v = getenv(INGEST_SECRET_ENV);
    snprintf(env_name, env_len, "%s", INGEST_SECRET_ENV);
    if (v == NULL || v[0] == '\0') {
        v = getenv("CLERK_WEBHOOK_SIGNING_SECRET");
        snprintf(env_name, env_len, "CLERK_WEBHOOK_SIGNING_SECRET");
    }
    if (v == NULL || v[0] == '\0')
        return util_err(err, errlen, "no webhook signing secret: set VEILLE_WEBHOOK_SECRET (or "
                                     "CLERK_WEBHOOK_SIGNING_SECRET) to the secret serve runs with");
    if (ingest_parse_secrets(v, out, sub, sizeof sub) < 0)
        return util_err(err, errlen, "%s: %s", env_name, sub);
    return 0;
}

/* Write all of buf; false on an error or the timeout. */
static bool write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

static int connect_any(const struct addrinfo *addrs, char *err, size_t errlen)
{
    int saved = 0;
    for (const struct addrinfo *a = addrs; a != NULL; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        /* SO_SNDTIMEO bounds connect() too on Linux */
        struct timeval tv = {.tv_sec = SIM_TIMEOUT_S};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            return fd;
        saved = errno;
        close(fd);
    }
    return util_err(err, errlen, "%s", strerror(saved ? saved : ECONNREFUSED));
}

/* The first line of an answer's body, chunked or not, escaped for the terminal.
 * serve's answers are one short JSON line; anything longer is cut. */
static void answer_body(char *answer, char *out, size_t outlen)
{
    char *body = strstr(answer, "\r\n\r\n");
    if (body == NULL) {
        snprintf(out, outlen, "-");
        return;
    }
    *body = '\0';
    body += 4;
    bool chunked = false;
    for (char *line = strstr(answer, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, "transfer-encoding:", 18) == 0 && strcasestr(line + 2, "chunked") != NULL)
            chunked = true;
    if (chunked) { /* the first chunk holds the line: "<hex>\r\n<data>\r\n..." */
        char *end;
        unsigned long n = strtoul(body, &end, 16);
        char *data = strstr(end, "\r\n");
        if (data != NULL && n <= strlen(data + 2)) {
            body = data + 2;
            body[n] = '\0';
        }
    }
    util_term_escape(body, strcspn(body, "\r\n"), out, outlen);
}

/* One delivery: sign, POST, print the answer. Returns 0 when it was answered 2xx,
 * -1 when answered otherwise, -2 when there was no answer at all. */
static int post_one(sim_ctx *c, const char *type, const char *body, size_t len)
{
    char id[96], sig[160], err[UTIL_ERRLEN];
    snprintf(id, sizeof id, "%s%u", c->id_prefix, ++c->seq);
    int64_t now_s = util_now_ms() / 1000;
    c->sent++;
    if (ingest_sign(c->secret, id, now_s, (const unsigned char *)body, len, sig, sizeof sig) < 0) {
        fprintf(stderr, "veille simulate: cannot sign %s (OpenSSL failed)\n", id);
        c->failed++;
        return -1;
    }
    char head[2048];
    int hn = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: veille-simulate/%s\r\n"
                      "Content-Type: application/json\r\nsvix-id: %s\r\nsvix-timestamp: %lld\r\n"
                      "svix-signature: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      c->url->path, c->url->hostport, VEILLE_VERSION, id, (long long)now_s, sig, len);
    if (hn < 0 || (size_t)hn >= sizeof head) {
        fprintf(stderr, "veille simulate: the request head for %s does not fit\n", id);
        c->failed++;
        return -1;
    }
    int fd = connect_any(c->addrs, err, sizeof err);
    if (fd < 0) {
        fprintf(stderr, "veille simulate: cannot connect to %s: %s (is veille serve running there?)\n",
                c->url->hostport, err);
        c->failed++;
        return -2;
    }
    static char answer[SIM_ANSWER_MAX + 1];
    size_t got = 0;
    bool sent = write_all(fd, head, (size_t)hn) && write_all(fd, body, len);
    /* read even after a failed write: serve may have answered early (413) */
    for (;;) {
        if (got == SIM_ANSWER_MAX)
            break;
        ssize_t n = recv(fd, answer + got, SIM_ANSWER_MAX - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    answer[got] = '\0';
    int status = 0;
    char reason[64] = "";
    if (sscanf(answer, "HTTP/1.%*1[01] %3d %63[^\r\n]", &status, reason) < 1) {
        fprintf(stderr, "veille simulate: %s %s: %s\n", type, id,
                got == 0 ? (sent ? "no answer (timed out or closed)" : "the request could not be sent")
                         : "the answer is not HTTP");
        c->failed++;
        return -2;
    }
    char shown[1024];
    answer_body(answer, shown, sizeof shown);
    printf("%-16s %s -> %d %s %s\n", type, id, status, reason, shown);
    fflush(stdout);
    if (status < 200 || status > 299) {
        c->failed++;
        return -1;
    }
    if (strstr(shown, "\"accepted\"") != NULL)
        snprintf(c->last_accepted, sizeof c->last_accepted, "%s", id);
    c->ok++;
    return 0;
}

/* Keeps --rate: the n-th delivery leaves n/rate seconds after the first. */
static void pace(sim_ctx *c)
{
    if (c->rate <= 0)
        return;
    int64_t due = c->started_ns + (int64_t)((double)c->sent * 1e9 / c->rate);
    int64_t wait = due - util_mono_ns();
    if (wait > 0) {
        struct timespec ts = {.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        }
    }
}

static int emit_delivery(const char *type, const char *body, size_t len, void *vctx)
{
    sim_ctx *c = vctx;
    pace(c);
    /* a refused delivery is printed and the rest still go (the summary counts it);
     * no answer at all stops: the next ones would fail the same way */
    return post_one(c, type, body, len) == -2 ? -1 : 0;
}

static int send_file(sim_ctx *c, const char *path)
{
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (in == NULL) {
        fprintf(stderr, "veille simulate: --file %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        size_t lead = strspn(line, " \t");
        if ((size_t)n == lead)
            continue; /* blank lines, as replay skips them */
        /* the label names the line and, when it has one, the event's type; a line
         * that is not JSON is still sent: serve's 400 says what is wrong with it */
        char label[96];
        json_t *ev = json_loadb(line, (size_t)n, 0, NULL);
        const char *type = json_string_value(json_object_get(ev, "type"));
        char shown[64] = "";
        if (type != NULL)
            util_term_escape(type, strlen(type), shown, sizeof shown);
        snprintf(label, sizeof label, "line %zu%s%s", lineno, shown[0] ? " " : "", shown);
        json_decref(ev);
        if (emit_delivery(label, line, (size_t)n, c) < 0) {
            rc = -1;
            break;
        }
    }
    bool read_error = ferror(in);
    free(line);
    if (in != stdin)
        fclose(in);
    if (read_error) {
        fprintf(stderr, "veille simulate: --file %s: read error\n", path);
        return EXIT_RUNTIME;
    }
    if (lineno == 0 && c->sent == 0) {
        fprintf(stderr, "veille simulate: --file %s: no event in it\n", path);
        return EXIT_USAGE;
    }
    return rc < 0 ? EXIT_RUNTIME : 0;
}

typedef struct {
    const char *prefix;
    size_t shown;
} sim_alerts;

static int print_sim_alert(const store_alert *a, void *vctx)
{
    sim_alerts *f = vctx;
    if (strncmp(a->event_id, f->prefix, strlen(f->prefix)) != 0)
        return 0;
    char rule[96], key[160], summary[600];
    util_term_escape(a->rule, strlen(a->rule), rule, sizeof rule);
    util_term_escape(a->key, strlen(a->key), key, sizeof key);
    util_term_escape(a->summary, strlen(a->summary), summary, sizeof summary);
    printf("  %-20s %-8s %-40s %s  (id %s)\n", rule, a->severity, key, summary, a->id);
    f->shown++;
    return 0;
}

/* The alerts whose triggering delivery is one of this run's. */
static void show_alerts(const sim_ctx *c, const char *data, const char *expected)
{
    store *st = NULL;
    char err[UTIL_ERRLEN];
    store_reader_guard(data);
    if (store_open(&st, data, STORE_READONLY, 0, err, sizeof err) < 0) {
        printf("alerts: not shown, the store in %s cannot be read (%s); give serve's --data to see them\n", data,
               err);
        return;
    }
    /* serve answers "accepted" once a delivery is in its write-ahead log and
     * applies it (raising its alerts) a few milliseconds later, in log order: wait
     * until the newest accepted one is applied, up to SIM_APPLY_WAIT_MS. */
    bool applied = c->last_accepted[0] == '\0';
    const char *last = c->last_accepted;
    for (int64_t until = util_now_ms() + SIM_APPLY_WAIT_MS; !applied && util_now_ms() < until;) {
        if (store_deliveries_seen(st, &last, 1, &applied, err, sizeof err) < 0)
            break;
        if (!applied)
            usleep(20 * 1000);
    }
    if (!applied)
        printf("alerts: %s was not applied within %d ms; the list below may be short\n", last, SIM_APPLY_WAIT_MS);
    sim_alerts f = {.prefix = c->id_prefix};
    printf("alerts raised for these deliveries (store %s):\n", data);
    if (store_list_alerts(st, 0, print_sim_alert, &f, err, sizeof err) < 0)
        printf("  (reading the alerts failed: %s)\n", err);
    else if (f.shown == 0)
        printf("  none\n");
    if (expected != NULL)
        printf("expected with the default rules: %s\n", expected[0] ? expected : "none");
    store_close(st);
}

static int parse_rate(const char *v, double *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    double r = strtod(v, &end);
    if (end == v || errno != 0 || !(r > 0 && r <= SIM_RATE_MAX) || (*end != '\0' && strcmp(end, "/s") != 0))
        return util_err(err, errlen, "--rate %s: expected N or N/s with 0 < N <= %g", v, SIM_RATE_MAX);
    *out = r;
    return 0;
}

int cli_simulate(int argc, char **argv)
{
    if (cli_help_wanted(argc, argv, simulate_usage))
        return 0;
    const char *url_arg = "http://127.0.0.1:8080/webhooks/clerk", *data = "./veille-data", *file = NULL;
    const char *scenario = NULL, *v;
    bool allow_remote = false;
    double rate = -1;
    char err[UTIL_ERRLEN];
    for (int i = 0; i < argc; i++) {
        int m;
        if ((m = cli_flag_value(argc, argv, &i, "--url", &v)) != 0)
            url_arg = v;
        else if ((m = cli_flag_value(argc, argv, &i, "--data", &v)) != 0)
            data = v;
        else if ((m = cli_flag_value(argc, argv, &i, "--file", &v)) != 0)
            file = v;
        else if ((m = cli_flag_value(argc, argv, &i, "--rate", &v)) != 0) {
            if (m > 0 && parse_rate(v, &rate, err, sizeof err) < 0) {
                fprintf(stderr, "veille simulate: %s\n", err);
                return EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--allow-remote") == 0) {
            allow_remote = true;
            continue;
        } else if (argv[i][0] != '-' && scenario == NULL) {
            scenario = argv[i];
            continue;
        } else {
            fprintf(stderr, "veille simulate: unexpected argument '%s'\n%s", argv[i], simulate_usage);
            return EXIT_USAGE;
        }
        if (m < 0)
            return EXIT_USAGE;
    }
    if (file != NULL && scenario != NULL) {
        fprintf(stderr, "veille simulate: give a SCENARIO or --file, not both\n");
        return EXIT_USAGE;
    }
    if (scenario == NULL && file == NULL)
        scenario = "sample";
    const char *expected = scenario ? cli_scenario_expected(scenario) : NULL;
    if (scenario != NULL && expected == NULL) {
        fprintf(stderr, "veille simulate: unknown scenario '%s' (one of: %s)\n", scenario, CLI_SCENARIO_NAMES);
        return EXIT_USAGE;
    }
    sim_url url;
    if (parse_url(url_arg, &url, err, sizeof err) < 0) {
        fprintf(stderr, "veille simulate: %s\n", err);
        return EXIT_USAGE;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *addrs = NULL;
    int gai = getaddrinfo(url.host, url.port, &hints, &addrs);
    if (gai != 0) {
        fprintf(stderr, "veille simulate: --url: cannot resolve %s: %s\n", url.host, gai_strerror(gai));
        return EXIT_USAGE;
    }
    for (const struct addrinfo *a = addrs; a != NULL && !allow_remote; a = a->ai_next)
        if (!is_loopback(a->ai_addr)) {
            fprintf(stderr, "veille simulate: refusing to send to %s: it is not a loopback address, and test "
                            "deliveries would land in that server's real history; give --allow-remote to do so\n",
                    url.host);
            freeaddrinfo(addrs);
            return EXIT_USAGE;
        }
    static ingest_secrets secrets;
    static ingest_instances named;
    char env_name[96];
    if (route_secrets(url.path, &secrets, &named, env_name, sizeof env_name, err, sizeof err) < 0) {
        fprintf(stderr, "veille simulate: %s\n", err);
        freeaddrinfo(addrs);
        return EXIT_USAGE;
    }
    sim_ctx c = {.addrs = addrs, .url = &url, .secret = &secrets.secrets[0],
                 .rate = rate > 0 ? rate : (file != NULL ? SIM_FILE_RATE : 0), .started_ns = util_mono_ns()};
    /* the run's tag: milliseconds in base 36, new on every run */
    char tag[16];
    uint64_t t = (uint64_t)util_now_ms();
    size_t tn = 0;
    char rev[16];
    do {
        rev[tn++] = "0123456789abcdefghijklmnopqrstuvwxyz"[t % 36];
        t /= 36;
    } while (t > 0 && tn < sizeof rev);
    for (size_t i = 0; i < tn; i++)
        tag[i] = rev[tn - 1 - i];
    tag[tn] = '\0';
    snprintf(c.id_prefix, sizeof c.id_prefix, "msg_sim_%s_", tag);
    printf("sending %s to %s (signed with %s)\n", file ? file : scenario, url_arg, env_name);
    int status = 0;
    if (file != NULL) {
        status = send_file(&c, file);
    } else {
        err[0] = '\0';
        if (cli_scenario_run(scenario, tag, util_now_ms(), emit_delivery, &c, err, sizeof err) < 0) {
            if (err[0])
                fprintf(stderr, "veille simulate: %s\n", err);
            status = EXIT_RUNTIME;
        }
    }
    freeaddrinfo(addrs);
    memset(&secrets, 0, sizeof secrets);
    memset(&named, 0, sizeof named);
    printf("%zu sent, %zu answered 2xx, %zu failed\n", c.sent, c.ok, c.failed);
    if (status == EXIT_USAGE)
        return status;
    if (c.sent > 0 && c.ok > 0)
        show_alerts(&c, data, expected);
    return status != 0 || c.failed > 0 ? EXIT_RUNTIME : 0;
}
