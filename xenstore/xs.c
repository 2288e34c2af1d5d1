#include "xs.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <xenstore.h>

#include "../lib/log.h"
#include "../lib/loop.h"

#define XSW_RETRY_MIN_NS 100000000ull   /* 100 ms */
#define XSW_RETRY_MAX_NS 5000000000ull  /* 5 s */
#define XSW_LIVENESS_NS 1000000000ull   /* 1 s */
/* Watch events handled per wake-up; the pipe stays readable while more are
 * queued, so the rest follow in the next loop iteration. */
#define XSW_DRAIN_BATCH 64
/* Xen's DOMID_FIRST_RESERVED. */
#define XSW_DOMID_FIRST_RESERVED 0x7FF0u

TRACE_POINT(trace_xsw_event, "xenstore_watch_event");
TRACE_POINT(trace_xsw_connect, "xenstore_connect");

struct xsw_watch {
    char *path;
    char *token;      /* the caller's */
    char *wire_token; /* "<token>:<serial>", unique within one client */
    xsw_watch_fn fn;
    void *opaque;
    /* Unwatched while events were being dispatched: freed afterwards. */
    bool dead;
    struct xsw_watch *next;
};

struct xsw {
    struct loop *loop;
    struct xsw_config cfg;
    /* NULL while disconnected. */
    struct xs_handle *h;
    struct loop_watch *pipe_watch;
    /* The first connection went through xenstored's UNIX socket: reconnect
     * only through it (see try_connect()). */
    bool via_socket;
    /* The connection is known dead; h is torn down by teardown_work, never
     * from inside a libxenstore call or a dispatch that still uses it. */
    bool broken;
    struct loop_work teardown_work;
    struct loop_work drain_work;
    struct loop_timer retry_timer;
    struct loop_timer liveness_timer;
    uint64_t retry_delay_ns;
    unsigned int retry_attempts;
    unsigned int reconnects;
    unsigned int next_serial;
    unsigned int dispatch_depth;
    struct xsw_watch *watches;
};

static bool connected(const struct xsw *xs) { return xs->h && !xs->broken; }

bool xsw_connected(const struct xsw *xs) { return connected(xs); }

unsigned int xsw_reconnects(const struct xsw *xs) { return xs->reconnects; }

/* Errors that mean the channel to xenstored is gone, as opposed to an error
 * reply from a healthy daemon (those come from xsd_errors and never include
 * these). */
static bool is_connection_error(int err)
{
    switch (err) {
    case EBADF:
    case EPIPE:
    case ECONNRESET:
    case ECONNREFUSED:
    case ECONNABORTED:
    case ENOTCONN:
    case ESHUTDOWN:
        return true;
    default:
        return false;
    }
}

static void connection_lost(struct xsw *xs, const char *what, int err)
{
    if (!connected(xs))
        return;
    xs->broken = true;
    log_warn("xenstore: connection to xenstored lost (%s: %s); reconnecting",
             what, strerror(err));
    loop_defer(xs->loop, &xs->teardown_work);
}

/* A failed call. EINVAL is ambiguous: xenstored uses it for bad requests,
 * and libxenstore returns it for a request in flight when its reader thread
 * saw the connection close. The drain that follows tells the two apart. */
static int call_failed(struct xsw *xs, const char *op, const char *path,
                       int err)
{
    if (is_connection_error(err)) {
        connection_lost(xs, op, err);
        return -ENOTCONN;
    }
    if (err == EINVAL)
        loop_defer(xs->loop, &xs->drain_work);
    log_ratelimited(LOG_WARN, "xenstore: %s %s failed: %s", op, path,
                    strerror(err));
    return err ? -err : -EIO;
}

static void free_watch(struct xsw_watch *w)
{
    free(w->path);
    free(w->token);
    free(w->wire_token);
    free(w);
}

static void reap_dead_watches(struct xsw *xs)
{
    struct xsw_watch **pp = &xs->watches;

    if (xs->dispatch_depth)
        return;
    while (*pp) {
        struct xsw_watch *w = *pp;

        if (w->dead) {
            *pp = w->next;
            free_watch(w);
        } else {
            pp = &w->next;
        }
    }
}

bool xsw_path_is_under(const char *parent, const char *child)
{
    size_t plen = strlen(parent);

    if (strncmp(parent, child, plen) != 0)
        return false;
    return child[plen] == '\0' || child[plen] == '/' ||
           (plen > 0 && parent[plen - 1] == '/');
}

static void dispatch(struct xsw *xs, const char *path, const char *wire_token)
{
    struct xsw_watch *w;

    for (w = xs->watches; w; w = w->next) {
        if (w->dead || strcmp(w->wire_token, wire_token) != 0)
            continue;
        if (!xsw_path_is_under(w->path, path)) {
            log_ratelimited(LOG_WARN,
                            "xenstore: event for %s on a watch of %s ignored",
                            path, w->path);
            return;
        }
        trace(trace_xsw_event, "path=%s token=%s", path, w->token);
        w->fn(w->opaque, path, w->token);
        return;
    }
    /* A watch removed since the event was queued. */
}

static void drain(struct xsw *xs)
{
    unsigned int n;

    if (!connected(xs))
        return;
    xs->dispatch_depth++;
    for (n = 0; n < XSW_DRAIN_BATCH && connected(xs); n++) {
        char **ev = xs_check_watch(xs->h);

        if (!ev) {
            /* EAGAIN: nothing queued. Anything else: libxenstore's reader
             * thread has closed the connection. */
            if (errno != EAGAIN)
                connection_lost(xs, "watch", errno);
            break;
        }
        dispatch(xs, ev[XS_WATCH_PATH], ev[XS_WATCH_TOKEN]);
        free(ev);
    }
    xs->dispatch_depth--;
    reap_dead_watches(xs);
}

static void on_watch_fd(void *opaque, uint32_t events) { drain(opaque); }

static void on_drain_work(void *opaque) { drain(opaque); }

static void on_liveness(void *opaque)
{
    struct xsw *xs = opaque;

    drain(xs);
    if (connected(xs))
        loop_timer_arm(&xs->liveness_timer, xs->cfg.liveness_ns);
}

/* libxenstore's xs_open() tries the daemon socket and, if that fails,
 * silently opens the xenbus device instead (/dev/xen/xenbus on a Linux
 * dom0). While xenstored is down that open still succeeds, and every
 * request on it then blocks in the kernel until a daemon serves the ring,
 * which would freeze the event loop. So a client that came in through the
 * socket reconnects only once the socket accepts connections again. */
static int socket_accepts(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd, rc = 0;

    if (strlen(path) >= sizeof(addr.sun_path))
        return -ENAMETOOLONG;
    memcpy(addr.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

static bool is_socket(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int try_connect(struct xsw *xs)
{
    struct xs_handle *h;
    int fd, rc;

    if (xs->via_socket) {
        rc = socket_accepts(xs_daemon_socket());
        if (rc < 0)
            return rc;
    }
    h = xs_open(0);
    if (!h)
        return errno ? -errno : -ECONNREFUSED;
    /* The watch pipe must exist before the first event arrives: libxenstore
     * only writes its wake-up byte into a pipe that exists at that time. */
    fd = xs_fileno(h);
    if (fd < 0) {
        rc = errno ? -errno : -EIO;
        goto fail;
    }
    rc = loop_add_fd(xs->loop, fd, EPOLLIN, on_watch_fd, xs, &xs->pipe_watch);
    if (rc < 0)
        goto fail;
    xs->h = h;
    xs->broken = false;
    loop_timer_arm(&xs->liveness_timer, xs->cfg.liveness_ns);
    trace(trace_xsw_connect, "fd=%d", fd);
    return 0;
fail:
    xs_close(h);
    return rc;
}

static void teardown(void *opaque)
{
    struct xsw *xs = opaque;

    if (!xs->h)
        return;
    loop_del_fd(xs->pipe_watch);
    xs->pipe_watch = NULL;
    loop_timer_cancel(&xs->liveness_timer);
    loop_work_cancel(xs->loop, &xs->drain_work);
    xs_close(xs->h);
    xs->h = NULL;
    xs->broken = false;
    xs->retry_attempts = 0;
    xs->retry_delay_ns = xs->cfg.retry_min_ns;
    loop_timer_arm(&xs->retry_timer, xs->retry_delay_ns);
}

/* Registers every recorded watch on the current connection; false if the
 * connection broke meanwhile. */
static bool register_all(struct xsw *xs)
{
    struct xsw_watch *w;

    for (w = xs->watches; w && connected(xs); w = w->next) {
        if (w->dead || xs_watch(xs->h, w->path, w->wire_token))
            continue;
        if (is_connection_error(errno))
            connection_lost(xs, "watch", errno);
        else
            log_warn("xenstore: cannot watch %s again: %s", w->path,
                     strerror(errno));
    }
    return connected(xs);
}

static void on_retry(void *opaque)
{
    struct xsw *xs = opaque;
    int rc;

    if (xs->h)
        return;
    xs->retry_attempts++;
    rc = try_connect(xs);
    if (rc < 0) {
        /* The first failure and then every tenth: with the backoff at its
         * cap that is one line a minute. */
        if (xs->retry_attempts % 10 == 1)
            log_warn("xenstore: xenstored still unreachable after %u "
                     "attempt(s): %s",
                     xs->retry_attempts, strerror(-rc));
        xs->retry_delay_ns *= 2;
        if (xs->retry_delay_ns > xs->cfg.retry_max_ns)
            xs->retry_delay_ns = xs->cfg.retry_max_ns;
        loop_timer_arm(&xs->retry_timer, xs->retry_delay_ns);
        return;
    }
    if (!register_all(xs))
        return;
    xs->reconnects++;
    log_info("xenstore: reconnected to xenstored after %u attempt(s)",
             xs->retry_attempts);
    if (xs->cfg.reconnected)
        xs->cfg.reconnected(xs->cfg.opaque);
}

int xsw_open(struct loop *loop, const struct xsw_config *cfg,
             struct xsw **out)
{
    struct xsw *xs = calloc(1, sizeof(*xs));
    int rc;

    if (!xs)
        return -ENOMEM;
    xs->loop = loop;
    xs->cfg = *cfg;
    if (!xs->cfg.retry_min_ns)
        xs->cfg.retry_min_ns = XSW_RETRY_MIN_NS;
    if (!xs->cfg.retry_max_ns)
        xs->cfg.retry_max_ns = XSW_RETRY_MAX_NS;
    if (xs->cfg.retry_max_ns < xs->cfg.retry_min_ns)
        xs->cfg.retry_max_ns = xs->cfg.retry_min_ns;
    if (!xs->cfg.liveness_ns)
        xs->cfg.liveness_ns = XSW_LIVENESS_NS;
    loop_work_init(&xs->teardown_work, teardown, xs);
    loop_work_init(&xs->drain_work, on_drain_work, xs);
    loop_timer_init(loop, &xs->retry_timer, on_retry, xs);
    loop_timer_init(loop, &xs->liveness_timer, on_liveness, xs);
    xs->retry_delay_ns = xs->cfg.retry_min_ns;

    rc = try_connect(xs);
    if (rc < 0) {
        log_err("xenstore: cannot connect to xenstored (%s): %s",
                xs_daemon_socket(), strerror(-rc));
        free(xs);
        return rc;
    }
    xs->via_socket = is_socket(xs_daemon_socket());
    *out = xs;
    return 0;
}

void xsw_close(struct xsw *xs)
{
    if (!xs)
        return;
    loop_timer_cancel(&xs->retry_timer);
    loop_timer_cancel(&xs->liveness_timer);
    loop_work_cancel(xs->loop, &xs->teardown_work);
    loop_work_cancel(xs->loop, &xs->drain_work);
    if (xs->h) {
        loop_del_fd(xs->pipe_watch);
        /* xenstored drops a connection's watches with the connection. */
        xs_close(xs->h);
    }
    while (xs->watches) {
        struct xsw_watch *w = xs->watches;

        xs->watches = w->next;
        free_watch(w);
    }
    free(xs);
}

static bool valid_path(const char *path)
{
    size_t len = path ? strnlen(path, XSW_PATH_MAX + 1) : 0;

    return len > 0 && len <= XSW_PATH_MAX && (path[0] == '/' || path[0] == '@');
}

int xsw_watch(struct xsw *xs, const char *path, const char *token,
              xsw_watch_fn fn, void *opaque, struct xsw_watch **out)
{
    struct xsw_watch *w;
    int n, rc;

    if (!valid_path(path) || !token || !*token || !fn ||
        strnlen(token, XSW_PATH_MAX + 1) > XSW_PATH_MAX)
        return -EINVAL;
    for (w = xs->watches; w; w = w->next) {
        if (!w->dead && strcmp(w->path, path) == 0 &&
            strcmp(w->token, token) == 0)
            return -EEXIST;
    }
    w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->fn = fn;
    w->opaque = opaque;
    w->path = strdup(path);
    w->token = strdup(token);
    n = asprintf(&w->wire_token, "%s:%u", token, xs->next_serial++);
    if (!w->path || !w->token || n < 0) {
        if (n < 0)
            w->wire_token = NULL;
        rc = -ENOMEM;
        goto fail;
    }
    if (connected(xs) && !xs_watch(xs->h, w->path, w->wire_token)) {
        int err = errno;

        /* A lost connection is not the caller's problem: the watch is
         * registered again on reconnection. */
        if (!is_connection_error(err)) {
            rc = call_failed(xs, "watch", path, err);
            goto fail;
        }
        connection_lost(xs, "watch", err);
    }
    w->next = xs->watches;
    xs->watches = w;
    if (out)
        *out = w;
    return 0;
fail:
    free_watch(w);
    return rc;
}

void xsw_unwatch(struct xsw *xs, struct xsw_watch *w)
{
    if (!w || w->dead)
        return;
    w->dead = true;
    if (connected(xs) && !xs_unwatch(xs->h, w->path, w->wire_token))
        call_failed(xs, "unwatch", w->path, errno);
    reap_dead_watches(xs);
}

int xsw_read(struct xsw *xs, const char *path, char *buf, size_t size)
{
    unsigned int len = 0;
    char *value;
    int rc;

    if (!buf || size == 0 || !valid_path(path))
        return -EINVAL;
    buf[0] = '\0';
    if (!connected(xs))
        return -ENOTCONN;
    value = xs_read(xs->h, XBT_NULL, path, &len);
    if (!value) {
        if (errno == ENOENT)
            return -ENOENT;
        return call_failed(xs, "read", path, errno);
    }
    if (memchr(value, '\0', len)) {
        log_ratelimited(LOG_WARN, "xenstore: value of %s contains a NUL byte",
                        path);
        rc = -EINVAL;
    } else if ((size_t)len >= size) {
        log_ratelimited(LOG_WARN,
                        "xenstore: value of %s too long (%u bytes, at most "
                        "%zu expected)",
                        path, len, size - 1);
        rc = -E2BIG;
    } else {
        memcpy(buf, value, len);
        buf[len] = '\0';
        rc = (int)len;
    }
    free(value);
    return rc;
}

int xsw_read_uint(struct xsw *xs, const char *path, int base, uint64_t max,
                  uint64_t *out)
{
    /* Longer than any 64-bit number with a 0x prefix: anything that does not
     * fit is not a number this reader accepts. */
    char buf[24];
    int rc = xsw_read(xs, path, buf, sizeof(buf));

    if (rc == -E2BIG)
        return -EINVAL;
    if (rc < 0)
        return rc;
    rc = xsw_parse_uint(buf, base, max, out);
    if (rc < 0)
        log_ratelimited(LOG_WARN, "xenstore: %s is not a valid %s number%s",
                        path, base == 16 ? "hexadecimal" : "decimal",
                        rc == -ERANGE ? " in range" : "");
    return rc;
}

int xsw_write(struct xsw *xs, const char *path, const char *value)
{
    size_t len;

    if (!valid_path(path) || !value)
        return -EINVAL;
    len = strnlen(value, XSW_VALUE_MAX + 1);
    if (len > XSW_VALUE_MAX)
        return -E2BIG;
    if (!connected(xs))
        return -ENOTCONN;
    if (!xs_write(xs->h, XBT_NULL, path, value, (unsigned int)len))
        return call_failed(xs, "write", path, errno);
    return 0;
}

int xsw_printf(struct xsw *xs, const char *path, const char *fmt, ...)
{
    char value[XSW_VALUE_MAX + 1];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= sizeof(value))
        return -E2BIG;
    return xsw_write(xs, path, value);
}

int xsw_mkdir(struct xsw *xs, const char *path)
{
    if (!valid_path(path))
        return -EINVAL;
    if (!connected(xs))
        return -ENOTCONN;
    if (!xs_mkdir(xs->h, XBT_NULL, path))
        return call_failed(xs, "mkdir", path, errno);
    return 0;
}

int xsw_rm(struct xsw *xs, const char *path)
{
    if (!valid_path(path))
        return -EINVAL;
    if (!connected(xs))
        return -ENOTCONN;
    if (!xs_rm(xs->h, XBT_NULL, path)) {
        if (errno == ENOENT)
            return 0;
        return call_failed(xs, "rm", path, errno);
    }
    return 0;
}

int xsw_directory(struct xsw *xs, const char *path, char ***entries,
                  unsigned int *count)
{
    unsigned int num = 0;
    char **list;

    *entries = NULL;
    *count = 0;
    if (!valid_path(path))
        return -EINVAL;
    if (!connected(xs))
        return -ENOTCONN;
    list = xs_directory(xs->h, XBT_NULL, path, &num);
    if (!list) {
        if (errno == ENOENT)
            return -ENOENT;
        return call_failed(xs, "directory", path, errno);
    }
    *entries = list;
    *count = num;
    return 0;
}

/* root + "/" + formatted suffix, bounded by size and by XSW_PATH_MAX. */
static int build_path(char *buf, size_t size, const char *root,
                      const char *fmt, va_list ap)
{
    size_t len = strlen(root);
    int n;

    if (!buf || size == 0)
        return -EINVAL;
    if (len >= size)
        goto too_long;
    memcpy(buf, root, len + 1);
    if (fmt && *fmt) {
        if (len + 1 >= size)
            goto too_long;
        buf[len++] = '/';
        n = vsnprintf(buf + len, size - len, fmt, ap);
        if (n < 0) {
            buf[0] = '\0';
            return -EINVAL;
        }
        if ((size_t)n >= size - len)
            goto too_long;
        if (n == 0 || buf[len] == '/') {
            buf[0] = '\0';
            return -EINVAL;
        }
        len += (size_t)n;
    }
    if (len > XSW_PATH_MAX)
        goto too_long;
    return (int)len;
too_long:
    buf[0] = '\0';
    return -ENAMETOOLONG;
}

int xsw_dm_path(const struct xsw *xs, char *buf, size_t size,
                const char *suffix_fmt, ...)
{
    char root[64];
    va_list ap;
    int rc;

    snprintf(root, sizeof(root), "/local/domain/%u/device-model/%u",
             xs->cfg.dm_domid, xs->cfg.domid);
    va_start(ap, suffix_fmt);
    rc = build_path(buf, size, root, suffix_fmt, ap);
    va_end(ap);
    return rc;
}

int xsw_dom_path(const struct xsw *xs, char *buf, size_t size,
                 const char *suffix_fmt, ...)
{
    char root[32];
    va_list ap;
    int rc;

    snprintf(root, sizeof(root), "/local/domain/%u", xs->cfg.domid);
    va_start(ap, suffix_fmt);
    rc = build_path(buf, size, root, suffix_fmt, ap);
    va_end(ap);
    return rc;
}

int xsw_dm_home_path(const struct xsw *xs, char *buf, size_t size,
                     const char *suffix_fmt, ...)
{
    char root[32];
    va_list ap;
    int rc;

    snprintf(root, sizeof(root), "/local/domain/%u", xs->cfg.dm_domid);
    va_start(ap, suffix_fmt);
    rc = build_path(buf, size, root, suffix_fmt, ap);
    va_end(ap);
    return rc;
}

int xsw_path(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!buf || size == 0)
        return -EINVAL;
    va_start(ap, fmt);
    n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0) {
        buf[0] = '\0';
        return -EINVAL;
    }
    if ((size_t)n >= size || n > XSW_PATH_MAX) {
        buf[0] = '\0';
        return -ENAMETOOLONG;
    }
    return n;
}

int xsw_parse_uint(const char *s, int base, uint64_t max, uint64_t *out)
{
    uint64_t value = 0;
    bool overflow = false;
    const char *p;

    if (!s || (base != 10 && base != 16))
        return -EINVAL;
    p = s;
    if (base == 16 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        p += 2;
    if (*p == '\0')
        return -EINVAL;
    for (; *p; p++) {
        unsigned int digit;

        if (*p >= '0' && *p <= '9')
            digit = (unsigned int)(*p - '0');
        else if (base == 16 && *p >= 'a' && *p <= 'f')
            digit = (unsigned int)(*p - 'a') + 10;
        else if (base == 16 && *p >= 'A' && *p <= 'F')
            digit = (unsigned int)(*p - 'A') + 10;
        else
            return -EINVAL;
        if (value > (UINT64_MAX - digit) / (unsigned int)base)
            overflow = true;
        else
            value = value * (unsigned int)base + digit;
    }
    if (overflow || value > max)
        return -ERANGE;
    *out = value;
    return 0;
}

int xsw_parse_domid(const char *s, unsigned int *out)
{
    uint64_t v;
    int rc = xsw_parse_uint(s, 10, XSW_DOMID_FIRST_RESERVED - 1, &v);

    if (rc == 0)
        *out = (unsigned int)v;
    return rc;
}
