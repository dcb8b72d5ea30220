/*
 * net.h: a listening TCP socket, for the servers on the h2o loop (the webhook
 * listener, the console). POSIX only; the caller hands the fd to its loop.
 */
#ifndef VEILLE_UTIL_NET_H
#define VEILLE_UTIL_NET_H

#include <stddef.h>

#define UTIL_ADDR_LEN 46 /* INET6_ADDRSTRLEN */

/* Bind and listen on host:port (port 0: a free one), the first address of
 * host that works, SO_REUSEADDR, close-on-exec. Returns the fd, the address and
 * port actually bound in addr (UTIL_ADDR_LEN bytes; "?" when unknown) and
 * *bound_port; or -1 with err saying why ("cannot resolve 'HOST': ...",
 * "cannot listen on HOST:PORT: ..."), which the caller prefixes with its option. */
int util_tcp_listen(const char *host, int port, int backlog, char *addr, int *bound_port, char *err, size_t errlen);

#endif
