/*
 * h2o-ceiling.c: the benchmark's ceiling. A bare libh2o evloop server, the same
 * HTTP stack and loop as `veille serve`, that answers every request 200
 * {"status":"received"} without reading the headers, verifying or storing anything.
 * What veille reaches beside it is what its own work costs; what this reaches is
 * what the stack and the load generator allow on this machine.
 * Usage: veille-h2o-ceiling PORT   (listens on 127.0.0.1 only; SIGTERM/SIGINT stop it)
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int on_request(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    static const char body[] = "{\"status\":\"received\"}";
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_send_inline(req, body, sizeof body - 1);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    /* One readiness event may stand for many connections, as in veille's server. */
    for (int i = 0; i < 64; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        h2o_accept(listener->data, sock);
    }
}

int main(int argc, char **argv)
{
    char *end = NULL;
    long port = argc == 2 ? strtol(argv[1], &end, 10) : 0;
    if (argc != 2 || end == argv[1] || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "usage: veille-h2o-ceiling PORT (1..65535; listens on 127.0.0.1)\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "veille-h2o-ceiling: socket: %s\n", strerror(errno));
        return 3;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        fprintf(stderr, "veille-h2o-ceiling: SO_REUSEADDR: %s\n", strerror(errno));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "veille-h2o-ceiling: cannot listen on 127.0.0.1:%ld: %s\n", port, strerror(errno));
        close(fd);
        return 3;
    }

    h2o_globalconf_t config;
    h2o_config_init(&config);
    config.server_name = h2o_iovec_init(H2O_STRLIT("veille-h2o-ceiling"));
    h2o_hostconf_t *host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof *handler);
    handler->on_req = on_request;

    h2o_context_t ctx;
    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_context_init(&ctx, loop, &config);
    h2o_accept_ctx_t accept_ctx = {.ctx = &ctx, .hosts = config.hosts};
    h2o_socket_t *listener = h2o_evloop_socket_create(loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    if (listener == NULL) {
        fprintf(stderr, "veille-h2o-ceiling: cannot register the listening socket with the event loop\n");
        close(fd);
        return 3;
    }
    listener->data = &accept_ctx;
    h2o_socket_read_start(listener, on_accept);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait must return on a signal */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "veille-h2o-ceiling: listening on 127.0.0.1:%ld\n", port);
    while (!g_stop)
        h2o_evloop_run(loop, 100);
    /* Like veille: h2o 2.2.5 asserts when a context with open keep-alive connections is
     * disposed, so the process exits with them still registered. */
    h2o_socket_close(listener);
    return 0;
}
