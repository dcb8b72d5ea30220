/*
 * transport.c: putting one alert on the wire for each kind of remote sink.
 *   local syslog: a datagram to a unix socket (/dev/log), sent in place
 *   syslog://: a UDP datagram, sent in place; "delivered" means the kernel took it
 *     (veille test-alert also waits briefly for an ICMP port unreachable)
 *   syslog+tcp://: one TCP connection, frames "LEN SP MSG" (RFC 6587 octet
 *     counting); "delivered" means written to the connection
 *   webhook: one h2o http1client request per attempt; delivered on a 2xx
 * All of it runs on the server's event loop and never blocks it: sockets are
 * non-blocking, and host names of syslog sinks are resolved once at start.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "deliver/internal.h"
#include "util/util.h"

#define SYSLOG_MSG_MAX (64 * 1024)

static void fail_slot(slot *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_slot(slot *s, const char *fmt, ...)
{
    char msg[STORE_OUTBOX_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->r->on_result(s, false, msg);
}

static int resolve(remote *r, int socktype, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_NUMERICSERV;
    char port[8];
    snprintf(port, sizeof port, "%d", r->cfg->port);
    int rc = getaddrinfo(r->cfg->host, port, &hints, &res);
    if (rc != 0)
        return util_err(err, errlen, "--alert %s: cannot resolve %s: %s", r->cfg->label, r->cfg->host,
                        gai_strerror(rc));
    memcpy(&r->addr, res->ai_addr, res->ai_addrlen);
    r->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int prepare_tls(remote *r, char *err, size_t errlen)
{
    const alert_sink_config *c = r->cfg;
    r->ssl = SSL_CTX_new(TLS_client_method());
    if (r->ssl == NULL)
        return util_err(err, errlen, "--alert %s: cannot create a TLS context", c->label);
    SSL_CTX_set_min_proto_version(r->ssl, TLS1_2_VERSION);
    SSL_CTX_set_verify(r->ssl, SSL_VERIFY_PEER, NULL);
    int ok = c->ca_file[0] != '\0' ? SSL_CTX_load_verify_locations(r->ssl, c->ca_file, NULL)
                                   : SSL_CTX_set_default_verify_paths(r->ssl);
    if (ok != 1) {
        char why[160];
        ERR_error_string_n(ERR_get_error(), why, sizeof why);
        ERR_clear_error();
        if (c->ca_file[0] != '\0')
            return util_err(err, errlen, "--alert %s: --ca %s: cannot load it as PEM certificates (%s)", c->label,
                            c->ca_file, why);
        return util_err(err, errlen, "--alert %s: cannot load the system's CA certificates (%s); give --ca FILE",
                        c->label, why);
    }
    /* The name is checked by OpenSSL during the handshake, whatever h2o does with it. */
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(r->ssl);
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, c->host, ip) == 1 || inet_pton(AF_INET6, c->host, ip) == 1;
    ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, c->host) : X509_VERIFY_PARAM_set1_host(param, c->host, 0);
    if (ok != 1)
        return util_err(err, errlen, "--alert %s: cannot set the name to verify", c->label);
    return 0;
}

int transport_prepare(remote *r, char *err, size_t errlen)
{
    const alert_sink_config *c = r->cfg;
    r->fd = -1;
    if (gethostname(r->hostname, sizeof r->hostname) != 0)
        snprintf(r->hostname, sizeof r->hostname, "-");
    r->hostname[sizeof r->hostname - 1] = '\0';
    switch (c->kind) {
    case ALERT_SINK_SYSLOG_LOCAL: {
        struct sockaddr_un *sun = (struct sockaddr_un *)&r->addr;
        memset(sun, 0, sizeof *sun);
        sun->sun_family = AF_UNIX;
        size_t pl = strnlen(c->path, sizeof sun->sun_path); /* spec.c refused longer paths */
        memcpy(sun->sun_path, c->path, pl < sizeof sun->sun_path ? pl : sizeof sun->sun_path - 1);
        r->addrlen = sizeof *sun;
        r->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (r->fd < 0)
            return util_err(err, errlen, "--alert %s: socket: %s", c->label, strerror(errno));
        return 0;
    }
    case ALERT_SINK_SYSLOG_UDP: {
        int ret = resolve(r, SOCK_DGRAM, err, errlen);
        if (ret < 0)
            return ret;
        r->fd = socket(r->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        /* connected, so that an ICMP "port unreachable" shows as an error on the next send */
        if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&r->addr, r->addrlen) != 0)
            return util_err(err, errlen, "--alert %s: %s", c->label, strerror(errno));
        return 0;
    }
    case ALERT_SINK_SYSLOG_TCP: return resolve(r, SOCK_STREAM, err, errlen);
    case ALERT_SINK_WEBHOOK: return c->tls ? prepare_tls(r, err, errlen) : 0;
    case ALERT_SINK_STDOUT:
    case ALERT_SINK_FILE: break;
    }
    return util_err(err, errlen, "--alert %s: not a remote sink", c->label);
}

int transport_attach(remote *r, h2o_loop_t *loop, h2o_multithread_receiver_t *getaddr, char *err, size_t errlen)
{
    r->loop = loop;
    if (r->cfg->kind == ALERT_SINK_WEBHOOK) {
        h2o_timeout_init(loop, &r->io_timeout, (uint64_t)r->timeout_ms);
        r->io_timeout_ready = true;
        memset(&r->http, 0, sizeof r->http);
        r->http.loop = loop;
        r->http.getaddr_receiver = getaddr;
        r->http.io_timeout = &r->io_timeout;
        r->http.ssl_ctx = r->ssl;
    }
    return 0;
}

/* ---- syslog datagrams ---- */

static int format_syslog(remote *r, slot *s, char *buf, size_t cap, size_t *len)
{
    char err[UTIL_ERRLEN];
    if (alert_syslog_format(r->cfg, &s->alert, r->hostname, (int)getpid(), buf, cap, len, err, sizeof err) < 0) {
        fail_slot(s, "%s", err);
        return -1;
    }
    return 0;
}

/* UDP has no acknowledgement, but on a connected socket the kernel turns an
 * ICMP port unreachable into a pending ECONNREFUSED (POLLERR). Waiting for it
 * would stall the server's loop, so only veille test-alert (r->d == NULL, a loop
 * of its own) waits, up to UDP_REFUSAL_WAIT_MS; serve sees it on its next send.
 * Returns the socket error that came, or 0. */
#define UDP_REFUSAL_WAIT_MS 200
static int udp_refusal(int fd)
{
    int64_t deadline = util_mono_ns() / 1000000 + UDP_REFUSAL_WAIT_MS;
    for (;;) {
        int64_t left = deadline - util_mono_ns() / 1000000;
        if (left <= 0)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = 0}; /* errors only: a datagram back is no answer */
        int n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        int e = 0;
        socklen_t el = sizeof e;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
            return errno;
        return e;
    }
}

static void send_datagram(remote *r, slot *s, char *buf)
{
    size_t len;
    if (format_syslog(r, s, buf, SYSLOG_MSG_MAX, &len) < 0)
        return;
    s->state = SLOT_SENDING;
    ssize_t n = r->cfg->kind == ALERT_SINK_SYSLOG_LOCAL
                    ? sendto(r->fd, buf, len, 0, (struct sockaddr *)&r->addr, r->addrlen)
                    : send(r->fd, buf, len, 0);
    int refused = 0;
    if (n == (ssize_t)len && r->d == NULL && r->cfg->kind == ALERT_SINK_SYSLOG_UDP)
        refused = udp_refusal(r->fd);
    if (n == (ssize_t)len && refused == ECONNREFUSED) {
        fail_slot(s, "refused: %s:%d answered ICMP port unreachable (nothing listens there)", r->cfg->host, r->cfg->port);
    } else if (n == (ssize_t)len && refused != 0) {
        fail_slot(s, "send: %s", strerror(refused));
    } else if (n == (ssize_t)len) {
        r->on_result(s, true, NULL);
    } else if (n >= 0) {
        fail_slot(s, "datagram cut short (%zd of %zu bytes)", n, len);
    } else if (r->cfg->kind == ALERT_SINK_SYSLOG_LOCAL && (errno == ENOENT || errno == ECONNREFUSED)) {
        fail_slot(s, "no syslog daemon listening on %s (%s)", r->cfg->path, strerror(errno));
    } else {
        fail_slot(s, "send: %s", strerror(errno));
    }
}

/* ---- syslog over TCP ---- */

static void tcp_close(remote *r)
{
    if (r->tcp != NULL) {
        h2o_socket_close(r->tcp);
        r->tcp = NULL;
    }
    r->tcp_connecting = r->tcp_writing = false;
}

/* Every slot in `state` fails with msg (the connection is gone). */
static void tcp_fail_all(remote *r, slot_state state, const char *msg)
{
    for (size_t i = 0; i < DELIVER_SLOTS; i++) {
        slot *s = &r->slots[i];
        if (s->state != state)
            continue;
        free(s->frame);
        s->frame = NULL;
        fail_slot(s, "%s", msg);
    }
}

static void tcp_write_ready(remote *r);

static void on_tcp_written(h2o_socket_t *sock, const char *err)
{
    remote *r = sock->data;
    r->tcp_writing = false;
    for (size_t i = 0; i < DELIVER_SLOTS; i++) {
        slot *s = &r->slots[i];
        if (s->state != SLOT_SENDING)
            continue;
        free(s->frame);
        s->frame = NULL;
        if (err == NULL)
            r->on_result(s, true, NULL);
        else
            fail_slot(s, "write: %s", err);
    }
    if (err != NULL)
        tcp_close(r);
    else
        tcp_write_ready(r);
}

/* The collector never talks back; a read tells us it closed the connection,
 * so the next alert reconnects instead of vanishing into a dead socket. */
static void on_tcp_read(h2o_socket_t *sock, const char *err)
{
    remote *r = sock->data;
    if (err == NULL) {
        h2o_buffer_consume(&sock->input, sock->input->size);
        return;
    }
    tcp_fail_all(r, SLOT_SENDING, "the collector closed the connection");
    tcp_close(r);
}

static void tcp_write_ready(remote *r)
{
    if (r->tcp == NULL || r->tcp_connecting || r->tcp_writing)
        return;
    h2o_iovec_t bufs[DELIVER_SLOTS];
    size_t n = 0;
    char *msg = malloc(SYSLOG_MSG_MAX);
    if (msg == NULL)
        return; /* tried again on the next pass */
    for (size_t i = 0; i < DELIVER_SLOTS; i++) {
        slot *s = &r->slots[i];
        if (s->state != SLOT_READY)
            continue;
        size_t len;
        if (format_syslog(r, s, msg, SYSLOG_MSG_MAX, &len) < 0)
            continue;
        char prefix[16];
        int pl = snprintf(prefix, sizeof prefix, "%zu ", len);
        s->frame = malloc((size_t)pl + len);
        if (s->frame == NULL) {
            fail_slot(s, "out of memory");
            continue;
        }
        memcpy(s->frame, prefix, (size_t)pl);
        memcpy(s->frame + pl, msg, len);
        bufs[n++] = h2o_iovec_init(s->frame, (size_t)pl + len);
        s->state = SLOT_SENDING;
    }
    free(msg);
    if (n == 0)
        return;
    r->tcp_writing = true;
    r->tcp_write_started_ms = util_now_ms();
    h2o_socket_write(r->tcp, bufs, n, on_tcp_written);
}

static void on_tcp_connect(h2o_socket_t *sock, const char *err)
{
    remote *r = sock->data;
    r->tcp_connecting = false;
    if (err != NULL) {
        char msg[STORE_OUTBOX_ERROR_MAX];
        snprintf(msg, sizeof msg, "connect to %.100s:%d: %.60s", r->cfg->host, r->cfg->port, err);
        tcp_close(r);
        tcp_fail_all(r, SLOT_READY, msg);
        return;
    }
    h2o_socket_read_start(sock, on_tcp_read);
    tcp_write_ready(r);
}

static void tcp_send_ready(remote *r, int64_t now_ms)
{
    if (r->tcp_connecting && now_ms - r->tcp_connect_started_ms > r->timeout_ms) {
        tcp_close(r);
        tcp_fail_all(r, SLOT_READY, "connect: timed out");
        return;
    }
    if (r->tcp_writing && now_ms - r->tcp_write_started_ms > r->timeout_ms) {
        /* a collector that stops reading (full disk, stuck) must not hold the sink */
        tcp_fail_all(r, SLOT_SENDING, "write: the collector took nothing for --alert-timeout");
        tcp_close(r);
        return;
    }
    if (r->tcp != NULL) {
        tcp_write_ready(r);
        return;
    }
    bool any = false;
    for (size_t i = 0; i < DELIVER_SLOTS && !any; i++)
        any = r->slots[i].state == SLOT_READY;
    if (!any)
        return;
    r->tcp = h2o_socket_connect(r->loop, (struct sockaddr *)&r->addr, r->addrlen, on_tcp_connect);
    if (r->tcp == NULL) {
        char msg[STORE_OUTBOX_ERROR_MAX];
        snprintf(msg, sizeof msg, "connect to %.100s:%d: %.60s", r->cfg->host, r->cfg->port, strerror(errno));
        tcp_fail_all(r, SLOT_READY, msg);
        return;
    }
    r->tcp->data = r;
    r->tcp_connecting = true;
    r->tcp_connect_started_ms = now_ms;
}

/* ---- webhooks ---- */

static void webhook_done(slot *s, bool ok, const char *error)
{
    free(s->request);
    s->request = NULL;
    s->client = NULL; /* h2o frees it once this callback returns */
    s->r->on_result(s, ok, error);
}

/* h2o reports a failed TLS handshake without its reason; OpenSSL keeps it. */
static void describe_error(const char *errstr, char *out, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (strstr(errstr, "ssl") != NULL && e != 0) {
        char why[120];
        ERR_error_string_n(e, why, sizeof why);
        const char *reason = ERR_reason_error_string(e);
        snprintf(out, len, "TLS: %s (%s)", errstr, reason != NULL ? reason : why);
    } else {
        snprintf(out, len, "%s", errstr);
    }
    ERR_clear_error();
}

static h2o_http1client_body_cb on_webhook_head(h2o_http1client_t *client, const char *errstr, int minor_version,
                                               int status, h2o_iovec_t msg, h2o_header_t *headers,
                                               size_t num_headers, int rlen)
{
    slot *s = client->data;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        char why[STORE_OUTBOX_ERROR_MAX];
        describe_error(errstr, why, sizeof why);
        webhook_done(s, false, why);
        return NULL;
    }
    if (status >= 200 && status < 300) {
        webhook_done(s, true, NULL);
    } else {
        char why[96];
        snprintf(why, sizeof why, "HTTP %d %.*s", status, (int)(msg.len < 40 ? msg.len : 40), msg.base);
        webhook_done(s, false, why);
    }
    return NULL; /* the body is not needed: h2o closes the connection */
}

static h2o_http1client_head_cb on_webhook_connect(h2o_http1client_t *client, const char *errstr,
                                                  h2o_iovec_t **reqbufs, size_t *reqbufcnt, int *method_is_head)
{
    slot *s = client->data;
    if (errstr != NULL) {
        char why[STORE_OUTBOX_ERROR_MAX], full[STORE_OUTBOX_ERROR_MAX];
        describe_error(errstr, why, sizeof why);
        snprintf(full, sizeof full, "%.60s:%d: %.120s", s->r->cfg->host, s->r->cfg->port, why);
        webhook_done(s, false, full);
        return NULL;
    }
    *reqbufs = &s->reqbuf;
    *reqbufcnt = 1;
    *method_is_head = 0;
    return on_webhook_head;
}

static void webhook_send_ready(remote *r, int64_t now_ms)
{
    /* h2o times each wait; a receiver that drips its answer is cut here */
    for (size_t i = 0; i < DELIVER_SLOTS; i++) {
        slot *s = &r->slots[i];
        if (s->state == SLOT_SENDING && s->client != NULL && now_ms - s->started_ms > r->timeout_ms) {
            h2o_http1client_cancel(s->client);
            webhook_done(s, false, "no complete answer within --alert-timeout");
        }
    }
    size_t sending = 0;
    for (size_t i = 0; i < DELIVER_SLOTS; i++)
        sending += r->slots[i].state == SLOT_SENDING;
    for (size_t i = 0; i < DELIVER_SLOTS && sending < DELIVER_WEBHOOK_PARALLEL; i++) {
        slot *s = &r->slots[i];
        if (s->state != SLOT_READY)
            continue;
        char err[UTIL_ERRLEN];
        size_t len;
        if (alert_webhook_request(r->cfg, r->secret, &s->alert, now_ms / 1000, &s->request, &len, err,
                                  sizeof err) < 0) {
            fail_slot(s, "%s", err);
            continue;
        }
        s->reqbuf = h2o_iovec_init(s->request, len);
        s->state = SLOT_SENDING;
        s->started_ms = now_ms;
        sending++;
        h2o_http1client_connect(&s->client, s, &r->http, h2o_iovec_init(r->cfg->host, strlen(r->cfg->host)),
                                (uint16_t)r->cfg->port, r->cfg->tls, on_webhook_connect);
    }
}

void transport_send_ready(remote *r, int64_t now_ms)
{
    switch (r->cfg->kind) {
    case ALERT_SINK_SYSLOG_LOCAL:
    case ALERT_SINK_SYSLOG_UDP: {
        char *buf = malloc(SYSLOG_MSG_MAX);
        for (size_t i = 0; i < DELIVER_SLOTS; i++) {
            slot *s = &r->slots[i];
            if (s->state != SLOT_READY)
                continue;
            if (buf == NULL)
                fail_slot(s, "out of memory");
            else
                send_datagram(r, s, buf);
        }
        free(buf);
        break;
    }
    case ALERT_SINK_SYSLOG_TCP: tcp_send_ready(r, now_ms); break;
    case ALERT_SINK_WEBHOOK: webhook_send_ready(r, now_ms); break;
    case ALERT_SINK_STDOUT:
    case ALERT_SINK_FILE: break;
    }
}

void transport_cancel(remote *r)
{
    for (size_t i = 0; i < DELIVER_SLOTS; i++) {
        slot *s = &r->slots[i];
        if (s->client != NULL) {
            h2o_http1client_cancel(s->client);
            s->client = NULL;
        }
        free(s->request);
        s->request = NULL;
        free(s->frame);
        s->frame = NULL;
        if (s->state == SLOT_SENDING)
            s->state = SLOT_READY;
    }
    tcp_close(r);
}

void transport_dispose(remote *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    if (r->io_timeout_ready && r->loop != NULL)
        h2o_timeout_dispose(r->loop, &r->io_timeout);
    r->io_timeout_ready = false;
    SSL_CTX_free(r->ssl);
    r->ssl = NULL;
}
