/*
 * sdnotify.c: systemd's readiness protocol without libsystemd. With Type=notify
 * the service manager passes $NOTIFY_SOCKET, a unix datagram socket, and waits
 * for "READY=1" before it calls the unit started; "STOPPING=1" tells it the
 * shutdown is veille's own. Outside systemd the variable is unset and nothing
 * is sent.
 *
 * Traps: a name starting with '@' is an abstract socket: the '@' becomes a NUL
 * byte and the address length must count exactly the name's bytes (no
 * terminating NUL, or it names another socket). The path must fit sun_path
 * (108 bytes) or it is refused, never cut. A notify that fails never stops
 * veille: systemd then times the start out itself, which is the loud failure.
 */
#include "util/util.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"

int util_sd_notify_send(const char *state, char *err, size_t errlen)
{
    const char *name = getenv("NOTIFY_SOCKET");
    if (name == NULL || name[0] == '\0')
        return 0;
    if (name[0] != '/' && name[0] != '@')
        return util_err(err, errlen, "NOTIFY_SOCKET '%s' is neither a path nor an @abstract name", name);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t len = strlen(name);
    if (len > sizeof addr.sun_path - (name[0] == '/')) /* a path needs room for its NUL */
        return util_err(err, errlen, "NOTIFY_SOCKET is %zu bytes, more than a unix socket address holds", len);
    memcpy(addr.sun_path, name, len);
    if (name[0] == '@')
        addr.sun_path[0] = '\0';
    socklen_t addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (name[0] == '/'));

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return util_err(err, errlen, "cannot create a socket for NOTIFY_SOCKET: %s", strerror(errno));
    size_t n = strlen(state);
    ssize_t sent = sendto(fd, state, n, MSG_NOSIGNAL, (struct sockaddr *)&addr, addrlen);
    int saved = errno;
    close(fd);
    if (sent < 0)
        return util_err(err, errlen, "cannot send %s to NOTIFY_SOCKET %s: %s", state, name, strerror(saved));
    if ((size_t)sent != n)
        return util_err(err, errlen, "short send of %s to NOTIFY_SOCKET %s", state, name);
    return 0;
}

void util_sd_notify(const char *state)
{
    char err[UTIL_ERRLEN], q[UTIL_ERRLEN + 16];
    if (util_sd_notify_send(state, err, sizeof err) < 0)
        log_line(LOG_WARN, "msg=\"sd_notify failed\" error=%s", log_quote(err, q, sizeof q));
}
