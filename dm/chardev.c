#include "chardev.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../lib/log.h"

#define CONN_MAX_FDS 8

struct conn {
    struct chardev *chr;
    int in_fd, out_fd;
    struct loop_watch *in_watch, *out_watch;
    bool out_polled; /* waiting for EPOLLOUT */
    char *out;
    size_t out_len, out_cap;
    bool closing, closed;
    int fds[CONN_MAX_FDS];
    unsigned nfds;
    void *user;
    struct conn *next;
    struct loop_work reap;
};

struct chardev {
    struct loop *loop;
    const struct conn_ops *ops;
    void *opaque;
    int listen_fd;
    char *unlink_path;
    struct loop_watch *listen_watch;
    struct conn *conns;
};

static int parse_bool(const char *v, bool *out)
{
    if (!v || !strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true")) {
        *out = true;
        return 0;
    }
    if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false")) {
        *out = false;
        return 0;
    }
    return -EINVAL;
}

void chardev_spec_clear(struct chardev_spec *spec)
{
    free(spec->id);
    free(spec->path);
    memset(spec, 0, sizeof(*spec));
    spec->fd = -1;
}

int chardev_parse(const char *text, bool is_chardev_option,
                  struct chardev_spec *spec, char *err, size_t errlen)
{
    char *copy = strdup(text), *save = NULL, *tok;
    bool first = true, wait_set = false;
    int rc = 0;

    memset(spec, 0, sizeof(*spec));
    spec->fd = -1;
    if (!copy)
        return -ENOMEM;
    for (tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save), first = false) {
        char *eq = strchr(tok, '=');
        const char *val = eq ? eq + 1 : NULL;
        size_t klen = eq ? (size_t)(eq - tok) : strlen(tok);

        if (first && !is_chardev_option) {
            if (!strcmp(tok, "stdio")) {
                spec->kind = CHARDEV_STDIO;
            } else if (!strncmp(tok, "unix:", 5) && tok[5]) {
                spec->kind = CHARDEV_UNIX;
                spec->path = strdup(tok + 5);
            } else {
                snprintf(err, errlen, "unsupported character device '%s' "
                         "(use unix:PATH or stdio)", tok);
                rc = -EINVAL;
                goto out;
            }
            continue;
        }
        if (first) {
            if (strcmp(tok, "socket")) {
                snprintf(err, errlen, "chardev backend '%s' is not supported "
                         "for monitors (use socket)", tok);
                rc = -ENOTSUP;
                goto out;
            }
            continue;
        }
        if (klen == 2 && !strncmp(tok, "id", 2) && val) {
            free(spec->id);
            spec->id = strdup(val);
        } else if (klen == 4 && !strncmp(tok, "path", 4) && val && *val) {
            spec->kind = CHARDEV_UNIX;
            free(spec->path);
            spec->path = strdup(val);
        } else if (klen == 2 && !strncmp(tok, "fd", 2) && val) {
            char *end;
            long fd = strtol(val, &end, 10);

            if (*end || fd < 0 || fd > 65535) {
                snprintf(err, errlen, "bad fd '%s'", val);
                rc = -EINVAL;
                goto out;
            }
            spec->kind = CHARDEV_FD;
            spec->fd = (int)fd;
        } else if (klen == 6 && !strncmp(tok, "server", 6)) {
            if (parse_bool(val, &spec->server) < 0)
                goto bad;
        } else if (klen == 4 && !strncmp(tok, "wait", 4)) {
            if (parse_bool(val, &spec->wait) < 0)
                goto bad;
            wait_set = true;
        } else if (!strcmp(tok, "nowait")) {
            spec->wait = false;
            wait_set = true;
        } else if (!strcmp(tok, "nodelay") || (klen == 6 && !strncmp(tok, "telnet", 6))) {
            /* TCP-only niceties: harmless to accept on a unix socket. */
        } else {
            goto bad;
        }
        continue;
bad:
        snprintf(err, errlen, "unsupported chardev parameter '%s'", tok);
        rc = -EINVAL;
        goto out;
    }
    if (is_chardev_option && !spec->path && spec->fd < 0) {
        snprintf(err, errlen, "socket chardev needs path= or fd=");
        rc = -EINVAL;
        goto out;
    }
    /* As in QEMU: a server waits for its first client unless told not to. */
    if (!wait_set)
        spec->wait = spec->server;
    if (spec->kind == CHARDEV_FD)
        spec->server = true; /* libxl passes a bound, listening socket */
    if (spec->kind == CHARDEV_UNIX && !spec->path)
        rc = -ENOMEM;
out:
    free(copy);
    if (rc < 0)
        chardev_spec_clear(spec);
    return rc;
}

static void conn_reap(void *opaque)
{
    struct conn *c = opaque;
    struct chardev *chr = c->chr;

    /* Here and not in conn_shutdown: a shutdown can happen deep inside a
     * data callback (a reply that cannot be written), and that callback
     * still uses its per-connection state after the write returns. */
    if (chr->ops->closed)
        chr->ops->closed(chr->opaque, c);
    for (struct conn **pp = &chr->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    while (c->nfds)
        close(c->fds[--c->nfds]);
    free(c->out);
    free(c);
}

static void conn_shutdown(struct conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    loop_del_fd(c->in_watch);
    if (c->out_watch)
        loop_del_fd(c->out_watch);
    if (c->in_fd != STDIN_FILENO)
        close(c->in_fd);
    if (c->out_fd != c->in_fd && c->out_fd != STDOUT_FILENO)
        close(c->out_fd);
    /* Freed after the current callback chain has unwound. */
    loop_work_init(&c->reap, conn_reap, c);
    loop_defer(c->chr->loop, &c->reap);
}

static int flush_output(struct conn *c)
{
    while (c->out_len) {
        ssize_t n = write(c->out_fd, c->out, c->out_len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            return -errno;
        }
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (size_t)n;
    }
    return 0;
}

static void update_out_watch(struct conn *c);

static void conn_writable(void *opaque, uint32_t events)
{
    struct conn *c = opaque;

    if (flush_output(c) < 0) {
        conn_shutdown(c);
        return;
    }
    update_out_watch(c);
}

/* A socket uses one fd for both directions and epoll takes each fd only
 * once, so for it the read watch is widened to EPOLLOUT instead of adding a
 * second watch (which failed with EEXIST and dropped the client as soon as
 * its socket buffer filled). */
static int poll_output(struct conn *c, bool on)
{
    int rc = 0;

    if (on == c->out_polled)
        return 0;
    if (c->out_fd == c->in_fd)
        rc = loop_mod_fd(c->in_watch, on ? EPOLLIN | EPOLLOUT : EPOLLIN);
    else if (on)
        rc = loop_add_fd(c->chr->loop, c->out_fd, EPOLLOUT, conn_writable, c,
                         &c->out_watch);
    else {
        loop_del_fd(c->out_watch);
        c->out_watch = NULL;
    }
    if (rc == 0)
        c->out_polled = on;
    return rc;
}

static void update_out_watch(struct conn *c)
{
    if (c->closed)
        return;
    if (c->out_len == 0) {
        poll_output(c, false);
        if (c->closing)
            conn_shutdown(c);
        return;
    }
    if (poll_output(c, true) < 0)
        conn_shutdown(c);
}

int conn_write(struct conn *c, const void *buf, size_t len)
{
    if (c->closed || c->closing)
        return -EPIPE;
    if (c->out_len + len > CONN_MAX_OUTPUT) {
        log_ratelimited(LOG_WARN, "client does not read its replies "
                        "(%zu bytes queued): disconnecting it", c->out_len);
        conn_shutdown(c);
        return -ENOBUFS;
    }
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        char *n;

        while (cap < c->out_len + len)
            cap *= 2;
        n = realloc(c->out, cap);
        if (!n)
            return -ENOMEM;
        c->out = n;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, buf, len);
    c->out_len += len;
    if (flush_output(c) < 0) {
        conn_shutdown(c);
        return -EPIPE;
    }
    update_out_watch(c);
    return 0;
}

int conn_printf(struct conn *c, const char *fmt, ...)
{
    char small[512], *buf = small;
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= sizeof(small)) {
        buf = malloc((size_t)n + 1);
        if (!buf)
            return -ENOMEM;
        va_start(ap, fmt);
        vsnprintf(buf, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    rc = conn_write(c, buf, (size_t)n);
    if (buf != small)
        free(buf);
    return rc;
}

void conn_close(struct conn *c)
{
    if (c->closed)
        return;
    c->closing = true;
    update_out_watch(c);
}

void *conn_get_user(const struct conn *c) { return c->user; }
void conn_set_user(struct conn *c, void *user) { c->user = user; }

int conn_take_fd(struct conn *c)
{
    int fd;

    if (!c->nfds)
        return -1;
    fd = c->fds[0];
    memmove(&c->fds[0], &c->fds[1], (c->nfds - 1) * sizeof(int));
    c->nfds--;
    return fd;
}

static void keep_fds(struct conn *c, struct msghdr *msg)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
        size_t n;
        int *fds;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        fds = (int *)CMSG_DATA(cm);
        for (size_t i = 0; i < n; i++) {
            if (c->nfds < CONN_MAX_FDS)
                c->fds[c->nfds++] = fds[i];
            else
                close(fds[i]); /* a client flooding us with descriptors */
        }
    }
}

static void conn_readable(void *opaque, uint32_t events)
{
    struct conn *c = opaque;
    char buf[4096];
    ssize_t n;

    if (c->in_fd == STDIN_FILENO) {
        n = read(c->in_fd, buf, sizeof(buf));
    } else {
        union {
            char space[CMSG_SPACE(CONN_MAX_FDS * sizeof(int))];
            struct cmsghdr align;
        } control;
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = control.space,
                             .msg_controllen = sizeof(control.space)};

        n = recvmsg(c->in_fd, &msg, MSG_CMSG_CLOEXEC);
        if (n >= 0)
            keep_fds(c, &msg);
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_shutdown(c);
        return;
    }
    if (!c->closing && c->chr->ops->data)
        c->chr->ops->data(c->chr->opaque, c, buf, (size_t)n);
}

/* The read watch; on a socket it also reports EPOLLOUT (see poll_output). */
static void conn_event(void *opaque, uint32_t events)
{
    struct conn *c = opaque;

    if (events & EPOLLOUT)
        conn_writable(c, events);
    if (!c->closed && (events & ~(uint32_t)EPOLLOUT))
        conn_readable(c, events);
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static int conn_create(struct chardev *chr, int in_fd, int out_fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    int rc;

    if (!c)
        return -ENOMEM;
    c->chr = chr;
    c->in_fd = in_fd;
    c->out_fd = out_fd;
    set_nonblock(in_fd);
    set_nonblock(out_fd);
    rc = loop_add_fd(chr->loop, in_fd, EPOLLIN, conn_event, c, &c->in_watch);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->next = chr->conns;
    chr->conns = c;
    if (chr->ops->opened)
        chr->ops->opened(chr->opaque, c);
    return 0;
}

static void accept_client(void *opaque, uint32_t events)
{
    struct chardev *chr = opaque;
    int fd = accept4(chr->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR)
            log_ratelimited(LOG_WARN, "accept failed: %s", strerror(errno));
        return;
    }
    if (conn_create(chr, fd, fd) < 0)
        close(fd);
}

static int unix_address(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    strcpy(sa->sun_path, path);
    return 0;
}

static int open_listener(struct chardev *chr, const struct chardev_spec *spec)
{
    struct sockaddr_un sa;
    int fd, rc;

    if (spec->kind == CHARDEV_FD) {
        chr->listen_fd = spec->fd;
        return set_nonblock(spec->fd);
    }
    rc = unix_address(spec->path, &sa);
    if (rc < 0)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    unlink(spec->path); /* a stale socket from a previous run */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    chr->listen_fd = fd;
    chr->unlink_path = strdup(spec->path);
    return 0;
}

static int wait_first_client(struct chardev *chr)
{
    int fd, fl = fcntl(chr->listen_fd, F_GETFL);

    fcntl(chr->listen_fd, F_SETFL, fl & ~O_NONBLOCK);
    log_info("waiting for a client on the socket");
    fd = accept4(chr->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    fcntl(chr->listen_fd, F_SETFL, fl | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    if (conn_create(chr, fd, fd) < 0) {
        close(fd);
        return -ENOMEM;
    }
    return 0;
}

int chardev_open(struct loop *loop, const struct chardev_spec *spec,
                 const struct conn_ops *ops, void *opaque,
                 struct chardev **out)
{
    struct chardev *chr = calloc(1, sizeof(*chr));
    struct sockaddr_un sa;
    int rc, fd;

    if (!chr)
        return -ENOMEM;
    chr->loop = loop;
    chr->ops = ops;
    chr->opaque = opaque;
    chr->listen_fd = -1;

    if (spec->kind == CHARDEV_STDIO) {
        rc = conn_create(chr, STDIN_FILENO, STDOUT_FILENO);
        goto out;
    }
    if (!spec->server) {
        rc = unix_address(spec->path, &sa);
        if (rc < 0)
            goto out;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -errno;
            goto out;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            rc = -errno;
            close(fd);
            goto out;
        }
        rc = conn_create(chr, fd, fd);
        if (rc < 0)
            close(fd);
        goto out;
    }
    rc = open_listener(chr, spec);
    if (rc < 0)
        goto out;
    rc = loop_add_fd(loop, chr->listen_fd, EPOLLIN, accept_client, chr,
                     &chr->listen_watch);
    if (rc < 0)
        goto out;
    if (spec->wait)
        rc = wait_first_client(chr);
out:
    if (rc < 0) {
        chardev_close(chr);
        return rc;
    }
    *out = chr;
    return 0;
}

void chardev_close(struct chardev *chr)
{
    if (!chr)
        return;
    while (chr->conns) {
        struct conn *c = chr->conns;

        conn_shutdown(c);
        loop_work_cancel(chr->loop, &c->reap);
        conn_reap(c);
    }
    if (chr->listen_watch)
        loop_del_fd(chr->listen_watch);
    if (chr->listen_fd >= 0)
        close(chr->listen_fd);
    if (chr->unlink_path) {
        unlink(chr->unlink_path);
        free(chr->unlink_path);
    }
    free(chr);
}

void chardev_for_each_conn(struct chardev *chr,
                           void (*fn)(void *arg, struct conn *c), void *arg)
{
    for (struct conn *c = chr->conns, *next; c; c = next) {
        next = c->next;
        if (!c->closed && !c->closing)
            fn(arg, c);
    }
}
