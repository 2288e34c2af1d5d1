/* libxenevtchn, doubled. Each handle has its own connection to the harness
 * as its file descriptor: the harness writes the 4-byte local port of every
 * event it delivers, so the fd polls readable exactly when
 * xenevtchn_pending() has something, as with /dev/xen/evtchn. Masking is the
 * harness's job (it delivers a port once, then holds further events until
 * xenevtchn_unmask()), because that is where Linux does it too.
 *
 * Bound ports are also remembered here: the Linux driver refuses notify and
 * unbind on ports the handle does not own (ENOTCONN) without asking Xen. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xenevtchn.h>

#include "xendouble.h"

struct xenevtchn_handle {
    struct xd_handle h;
    int fd;
    pthread_mutex_t lock; /* ports[] */
    evtchn_port_t *ports;
    size_t nports, cap;
};

static bool evtchn_owns(xenevtchn_handle *xce, evtchn_port_t port)
{
    bool found = false;

    pthread_mutex_lock(&xce->lock);
    for (size_t i = 0; i < xce->nports && !found; i++)
        found = xce->ports[i] == port;
    pthread_mutex_unlock(&xce->lock);
    return found;
}

static int evtchn_remember(xenevtchn_handle *xce, evtchn_port_t port)
{
    int rc = 0;

    pthread_mutex_lock(&xce->lock);
    if (xce->nports == xce->cap) {
        size_t cap = xce->cap ? xce->cap * 2 : 16;
        evtchn_port_t *ports = realloc(xce->ports, cap * sizeof(*ports));
        if (!ports) {
            rc = -1;
            goto out;
        }
        xce->ports = ports;
        xce->cap = cap;
    }
    xce->ports[xce->nports++] = port;
out:
    pthread_mutex_unlock(&xce->lock);
    return rc;
}

static void evtchn_forget(xenevtchn_handle *xce, evtchn_port_t port)
{
    pthread_mutex_lock(&xce->lock);
    for (size_t i = 0; i < xce->nports; i++) {
        if (xce->ports[i] == port) {
            xce->ports[i] = xce->ports[--xce->nports];
            break;
        }
    }
    pthread_mutex_unlock(&xce->lock);
}

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger, unsigned int flags)
{
    xenevtchn_handle *xce = calloc(1, sizeof(*xce));
    struct json_object *args = json_object_new_object();

    if (!xce || !args) {
        free(xce);
        json_object_put(args);
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&xce->lock, NULL);
    xd_set_u64(args, "flags", flags);
    if (xd_open_handle(&xce->h, "xenevtchn_open", args) < 0)
        goto fail;
    xce->fd = xd_open_event_stream(xce->h.id, !(flags & XENEVTCHN_NO_CLOEXEC));
    if (xce->fd < 0) {
        int saved = errno;
        xd_close_handle(&xce->h, "xenevtchn_close");
        errno = saved;
        goto fail;
    }
    return xce;
fail:
    pthread_mutex_destroy(&xce->lock);
    free(xce);
    return NULL;
}

int xenevtchn_close(xenevtchn_handle *xce)
{
    int rc;

    if (!xce)
        return 0;
    rc = xd_close_handle(&xce->h, "xenevtchn_close");
    close(xce->fd);
    pthread_mutex_destroy(&xce->lock);
    free(xce->ports);
    free(xce);
    return rc;
}

int xenevtchn_fd(xenevtchn_handle *xce)
{
    return xce->fd;
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
                                                     evtchn_port_t remote_port)
{
    struct json_object *args = xd_args(&xce->h);
    int port;

    if (!args)
        return -1;
    xd_set_u64(args, "domid", domid);
    xd_set_u64(args, "remote_port", remote_port);
    port = xd_call_result("xenevtchn_bind_interdomain", args, NULL);
    if (port < 0)
        return -1;
    if (evtchn_remember(xce, (evtchn_port_t)port) < 0) {
        /* Keep the harness consistent with what this handle knows. */
        struct json_object *undo = xd_args(&xce->h);
        if (undo) {
            xd_set_u64(undo, "port", (evtchn_port_t)port);
            xd_call_result("xenevtchn_unbind", undo, NULL);
        }
        errno = ENOMEM;
        return -1;
    }
    return port;
}

int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
    if (!evtchn_owns(xce, port)) {
        errno = ENOTCONN;
        return -1;
    }
    return xd_post_port("xenevtchn_notify", &xce->h, port);
}

xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
    uint8_t buf[sizeof(uint32_t)];
    size_t got = 0;
    uint32_t port;

    while (got < sizeof(buf)) {
        ssize_t n = read(xce->fd, buf + got, sizeof(buf) - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && got) {
            /* Never hand out half a port: the rest is on its way. */
            struct pollfd pfd = { .fd = xce->fd, .events = POLLIN };
            poll(&pfd, 1, -1);
            continue;
        }
        if (n == 0)
            errno = EIO; /* the harness went away */
        return -1;
    }
    memcpy(&port, buf, sizeof(port));
    return (xenevtchn_port_or_error_t)port;
}

int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
    /* Linux ignores ports the handle does not own; the harness does too but
     * records the attempt. */
    return xd_post_port("xenevtchn_unmask", &xce->h, port);
}

int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
    struct json_object *args;

    if (!evtchn_owns(xce, port)) {
        errno = ENOTCONN;
        return -1;
    }
    args = xd_args(&xce->h);
    if (!args)
        return -1;
    xd_set_u64(args, "port", port);
    if (xd_call_result("xenevtchn_unbind", args, NULL) < 0)
        return -1;
    evtchn_forget(xce, port);
    return 0;
}

int xenevtchn_restrict(xenevtchn_handle *xce, domid_t domid)
{
    struct json_object *args = xd_args(&xce->h);

    if (!args)
        return -1;
    xd_set_u64(args, "domid", domid);
    return xd_call_result("xenevtchn_restrict", args, NULL) < 0 ? -1 : 0;
}
