/*
 * console.c: the console's listener (its own h2o context on the server's loop),
 * the token check, the security headers, the compiled-in assets, and the routing
 * to api.c. Trap: the console must never answer on the webhook listener, so it
 * has its own globalconf and hosts: a path missing here is a 404 here, never a
 * fall-through to the webhook routes (and the reverse).
 */
#include "console/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "util/log.h"
#include "util/net.h"
#include "util/util.h"

/* The page loads only its own script and style; nothing from another host, no
 * inline script, no framing. */
static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                          "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

struct console_handler {
    h2o_handler_t super;
    struct console *c;
};

int console_parse(console_config *cfg, const char *v, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    /* HOST:PORT, [IPv6]:PORT, :PORT or PORT; no host means loopback */
    const char *colon = strrchr(v, ':');
    const char *port_text = colon != NULL ? colon + 1 : v;
    const char *host = v;
    size_t hlen = colon != NULL ? (size_t)(colon - v) : 0;
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    if (hlen >= sizeof cfg->host)
        return util_err(err, errlen, "the host is too long");
    int64_t port;
    if (util_parse_i64(port_text, &port, NULL, 0) < 0 || port < 0 || port > 65535)
        return util_err(err, errlen, "'%s' is not HOST:PORT or a port number (0-65535)", v);
    if (hlen == 0)
        snprintf(cfg->host, sizeof cfg->host, "127.0.0.1");
    else {
        memcpy(cfg->host, host, hlen);
        cfg->host[hlen] = '\0';
    }
    cfg->port = (int)port;
    /* Loopback is no protection from the other users and processes of the host:
     * a token is required whatever the address. */
    const char *token = getenv(CONSOLE_TOKEN_ENV);
    if (token == NULL || strlen(token) < CONSOLE_TOKEN_MIN || strlen(token) > CONSOLE_TOKEN_MAX)
        return util_err(err, errlen,
                        "the console needs %s, a secret of %d to %d characters (e.g. export %s=$(head -c 24 "
                        "/dev/urandom | base64)), %s",
                        CONSOLE_TOKEN_ENV, CONSOLE_TOKEN_MIN, CONSOLE_TOKEN_MAX, CONSOLE_TOKEN_ENV,
                        token == NULL || token[0] == '\0' ? "and it is not set" : "and the one set has another length");
    snprintf(cfg->token, sizeof cfg->token, "%s", token);
    cfg->enabled = true;
    return 0;
}

static void add_header(h2o_req_t *req, const h2o_token_t *t, const char *v)
{
    h2o_add_header(&req->pool, &req->res.headers, t, NULL, v, strlen(v));
}

static void add_header_by_name(h2o_req_t *req, const char *name, const char *v)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, v, strlen(v));
}

/* Every answer, 401s and 404s included. */
static void security_headers(h2o_req_t *req)
{
    add_header_by_name(req, "content-security-policy", csp);
    add_header_by_name(req, "x-content-type-options", "nosniff");
    add_header_by_name(req, "referrer-policy", "no-referrer");
    add_header_by_name(req, "x-frame-options", "DENY");
    add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-store");
}

int console_send_json(h2o_req_t *req, int status, json_t *body)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : status == 400 ? "Bad Request" : status == 401 ? "Unauthorized"
                      : status == 404 ? "Not Found" : status == 405 ? "Method Not Allowed"
                      : status == 415 ? "Unsupported Media Type" : status == 503 ? "Service Unavailable"
                      : "Internal Server Error";
    add_header(req, H2O_TOKEN_CONTENT_TYPE, "application/json; charset=utf-8");
    if (text == NULL) {
        req->res.status = 500;
        req->res.reason = "Internal Server Error";
        h2o_send_inline(req, H2O_STRLIT("{\"error\":\"cannot encode the answer\"}"));
        return 0;
    }
    h2o_send_inline(req, text, strlen(text)); /* copies */
    free(text);
    return 0;
}

int console_send_error(h2o_req_t *req, int status, const char *message)
{
    return console_send_json(req, status, json_pack("{s:s}", "error", message));
}

/* Bearer TOKEN, or Basic base64(user:TOKEN) with any user name, compared in
 * constant time. */
static bool authorized(struct console *c, h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0)
        return false;
    h2o_iovec_t v = req->headers.entries[i].value;
    const char *given = NULL;
    size_t glen = 0;
    unsigned char decoded[3 * (CONSOLE_TOKEN_MAX + 256) / 4 + 4];
    if (v.len > 7 && h2o_lcstris(v.base, 7, H2O_STRLIT("bearer "))) {
        given = v.base + 7;
        glen = v.len - 7;
    } else if (v.len > 6 && h2o_lcstris(v.base, 6, H2O_STRLIT("basic "))) {
        size_t blen = v.len - 6;
        if (blen > 4 * ((sizeof decoded - 4) / 3))
            return false;
        int n = EVP_DecodeBlock(decoded, (const unsigned char *)v.base + 6, (int)blen);
        if (n < 0)
            return false;
        /* EVP_DecodeBlock counts the '=' padding as zero bytes */
        while (blen > 0 && v.base[6 + blen - 1] == '=' && n > 0) {
            blen--;
            n--;
        }
        const unsigned char *colon = memchr(decoded, ':', (size_t)n);
        if (colon == NULL)
            return false;
        given = (const char *)colon + 1;
        glen = (size_t)n - (size_t)(colon + 1 - decoded);
    } else {
        return false;
    }
    size_t tlen = strlen(c->cfg.token);
    return glen == tlen && CRYPTO_memcmp(given, c->cfg.token, tlen) == 0;
}

static const console_asset *asset_find(const char *path, size_t len)
{
    for (size_t i = 0; i < console_asset_count; i++)
        if (strlen(console_assets[i].path) == len && memcmp(console_assets[i].path, path, len) == 0)
            return &console_assets[i];
    return NULL;
}

static int on_request(h2o_handler_t *self, h2o_req_t *req)
{
    struct console *c = ((struct console_handler *)self)->c;
    security_headers(req);
    if (!authorized(c, req)) {
        /* The challenge makes a browser ask for the token: wanted when a page is
         * opened, not for the page's own fetch() calls, where a prompt would pop
         * up over the page (or hang a headless browser). Those say
         * Sec-Fetch-Mode: cors or same-origin; curl and scripts send none. */
        ssize_t m = h2o_find_header_by_str(&req->headers, H2O_STRLIT("sec-fetch-mode"), -1);
        h2o_iovec_t mode = m >= 0 ? req->headers.entries[m].value : h2o_iovec_init(H2O_STRLIT("navigate"));
        if (h2o_memis(mode.base, mode.len, H2O_STRLIT("navigate")))
            add_header(req, H2O_TOKEN_WWW_AUTHENTICATE, "Basic realm=\"veille console\", charset=\"UTF-8\"");
        return console_send_error(req, 401, "the console needs the token: Authorization: Bearer $" CONSOLE_TOKEN_ENV
                                            ", or basic auth with it as the password");
    }
    /* path_normalized has no query; the raw path holds it after '?' */
    h2o_iovec_t path = req->path_normalized;
    bool is_api = path.len >= 4 && memcmp(path.base, "/api", 4) == 0 && (path.len == 4 || path.base[4] == '/');
    if (is_api && h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")))
        return console_api_post(c, req, path.base + 4, path.len - 4); /* the triage actions */
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        add_header(req, H2O_TOKEN_ALLOW, "GET, HEAD");
        return console_send_error(req, 405, "use GET (POST only to /api/alerts/ID/ack, /resolve or /false-positive)");
    }
    const char *q = memchr(req->path.base, '?', req->path.len);
    const char *query = q != NULL ? q + 1 : "";
    size_t qlen = q != NULL ? req->path.len - (size_t)(q + 1 - req->path.base) : 0;
    if (is_api)
        return console_api(c, req, path.base + 4, path.len - 4, query, qlen);
    const console_asset *a = asset_find(path.base, path.len);
    if (a == NULL && h2o_memis(path.base, path.len, H2O_STRLIT("/index.html")))
        a = asset_find("/", 1);
    if (a == NULL)
        return console_send_error(req, 404, "no such page (the console is at /, its API under /api/)");
    req->res.status = 200;
    req->res.reason = "OK";
    add_header(req, H2O_TOKEN_CONTENT_TYPE, a->content_type);
    h2o_send_inline(req, (const char *)a->data, a->len);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct console *c = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < 16; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        h2o_accept(&c->accept_ctx, sock);
    }
}

static int open_listener(struct console *c, h2o_evloop_t *loop, char *err, size_t errlen)
{
    char addr[UTIL_ADDR_LEN], sub[UTIL_ERRLEN];
    int bound;
    int fd = util_tcp_listen(c->cfg.host, c->cfg.port, 64, addr, &bound, sub, sizeof sub);
    if (fd < 0)
        return util_err(err, errlen, "--console: %s", sub);
    c->listener = h2o_evloop_socket_create(loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    if (c->listener == NULL) {
        close(fd);
        return util_err(err, errlen, "--console: cannot register the listening socket with the event loop");
    }
    c->listener->data = c;
    h2o_socket_read_start(c->listener, on_accept);
    log_line(LOG_INFO, "msg=\"console listening\" addr=%s port=%d", addr, bound);
    return 0;
}

int console_start(console **out, const console_config *cfg, h2o_evloop_t *loop, store *st, console_live_fn *live,
                  void *live_ctx, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg == NULL || !cfg->enabled)
        return 0;
    struct console *c = calloc(1, sizeof *c);
    if (c == NULL)
        return util_err(err, errlen, "--console: out of memory");
    c->cfg = *cfg;
    c->st = st;
    c->live = live;
    c->live_ctx = live_ctx;
    h2o_config_init(&c->config);
    c->config.max_request_entity_size = 16384; /* a triage body: a note of 511 bytes, JSON-escaped */
    c->config.server_name = h2o_iovec_init(H2O_STRLIT("veille"));
    h2o_hostconf_t *host = h2o_config_register_host(&c->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    struct console_handler *h = (struct console_handler *)h2o_create_handler(pathconf, sizeof *h);
    h->super.on_req = on_request;
    h->c = c;
    h2o_context_init(&c->ctx, loop, &c->config);
    c->accept_ctx.ctx = &c->ctx;
    c->accept_ctx.hosts = c->config.hosts;
    if (open_listener(c, loop, err, errlen) < 0) {
        h2o_context_dispose(&c->ctx);
        h2o_config_dispose(&c->config);
        free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void console_stop(console *c)
{
    if (c == NULL || c->listener == NULL)
        return;
    h2o_socket_read_stop(c->listener);
    h2o_socket_close(c->listener);
    c->listener = NULL;
    /* Like the webhook server's, the context is not disposed (h2o 2.2.5 asserts
     * with connections registered): what h2o allocated stays to process exit,
     * and c goes, as the server's own struct does; the loop does not run again. */
    free(c);
}
