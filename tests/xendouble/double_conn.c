/* The connection between the doubled libraries and the test harness. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "xendouble.h"

#define XD_PROTOCOL_VERSION 1

struct xd_process {
    pthread_mutex_t lock; /* one request/reply exchange at a time */
    int fd;               /* control connection, -1 until the first open */
    int mem_fd;
    pid_t pid;            /* the process that made the connection */
    bool broken;          /* the harness went away: every call fails */
    uint64_t seq;
    char *rbuf;           /* bytes received and not yet consumed */
    size_t rlen, rcap;
};

static struct xd_process xd = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .fd = -1,
    .mem_fd = -1,
};

static pthread_once_t xd_atfork_once = PTHREAD_ONCE_INIT;

/* A fork() while another thread talks to the harness must not leave the
 * child with the lock held forever. */
static void xd_atfork_prepare(void) { pthread_mutex_lock(&xd.lock); }
static void xd_atfork_release(void) { pthread_mutex_unlock(&xd.lock); }

static void xd_register_atfork(void)
{
    pthread_atfork(xd_atfork_prepare, xd_atfork_release, xd_atfork_release);
}

static int xd_socket_path(struct sockaddr_un *sun, char *mem_path, size_t mem_len)
{
    const char *dir = getenv("XEN_DOUBLE_DIR");

    if (!dir || !*dir) {
        fprintf(stderr, "xendouble: XEN_DOUBLE_DIR is not set; no Xen here\n");
        errno = ENOENT;
        return -1;
    }
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if ((size_t)snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/sock", dir) >= sizeof(sun->sun_path) ||
        (mem_path && (size_t)snprintf(mem_path, mem_len, "%s/mem", dir) >= mem_len)) {
        fprintf(stderr, "xendouble: XEN_DOUBLE_DIR too long: %s\n", dir);
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

static int xd_dial(bool cloexec)
{
    struct sockaddr_un sun;
    int fd;

    if (xd_socket_path(&sun, NULL, 0) < 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | (cloexec ? SOCK_CLOEXEC : 0), 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int saved = errno;
        fprintf(stderr, "xendouble: cannot reach the harness at %s: %s\n", sun.sun_path, strerror(saved));
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int xd_write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int xd_send_json(int fd, struct json_object *msg)
{
    const char *text = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);
    size_t len = strlen(text);
    char *line = malloc(len + 1);
    int rc;

    if (!line) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(line, text, len);
    line[len] = '\n';
    rc = xd_write_all(fd, line, len + 1);
    free(line);
    return rc;
}

/* Reads the next line from the control connection (lock held). Returns a
 * malloc'd NUL-terminated string without the newline, or NULL. */
static char *xd_read_line(void)
{
    for (;;) {
        char *nl = xd.rlen ? memchr(xd.rbuf, '\n', xd.rlen) : NULL;
        if (nl) {
            size_t len = (size_t)(nl - xd.rbuf);
            char *line = malloc(len + 1);
            if (!line) {
                errno = ENOMEM;
                return NULL;
            }
            memcpy(line, xd.rbuf, len);
            line[len] = '\0';
            memmove(xd.rbuf, nl + 1, xd.rlen - len - 1);
            xd.rlen -= len + 1;
            return line;
        }
        if (xd.rcap - xd.rlen < 4096) {
            size_t cap = xd.rcap ? xd.rcap * 2 : 8192;
            char *nbuf = realloc(xd.rbuf, cap);
            if (!nbuf) {
                errno = ENOMEM;
                return NULL;
            }
            xd.rbuf = nbuf;
            xd.rcap = cap;
        }
        ssize_t n = read(xd.fd, xd.rbuf + xd.rlen, xd.rcap - xd.rlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            errno = EIO;
            return NULL;
        }
        xd.rlen += (size_t)n;
    }
}

static void xd_mark_broken(const char *why)
{
    if (!xd.broken)
        fprintf(stderr, "xendouble: lost the harness (%s); every further Xen call fails with EIO\n", why);
    xd.broken = true;
}

/* Sends msg and, unless oneway, reads and parses the reply (lock held). */
static struct json_object *xd_exchange(struct json_object *msg, bool oneway)
{
    struct json_object *reply;
    char *line;
    uint64_t seq = ++xd.seq;

    if (xd.fd < 0 || xd.broken || xd.pid != getpid()) {
        errno = xd.fd < 0 || xd.broken ? EIO : EBADF;
        return NULL;
    }
    xd_set_u64(msg, "seq", seq);
    if (xd_send_json(xd.fd, msg) < 0) {
        xd_mark_broken(strerror(errno));
        errno = EIO;
        return NULL;
    }
    if (oneway)
        return json_object_new_object();
    line = xd_read_line();
    if (!line) {
        xd_mark_broken("connection closed");
        errno = EIO;
        return NULL;
    }
    reply = json_tokener_parse(line);
    if (!reply || !json_object_is_type(reply, json_type_object) || xd_get_u64(reply, "seq") != seq) {
        fprintf(stderr, "xendouble: bad reply to request %llu: %s\n", (unsigned long long)seq, line);
        json_object_put(reply);
        free(line);
        xd_mark_broken("protocol error");
        errno = EIO;
        return NULL;
    }
    free(line);
    return reply;
}

int xd_connect(void)
{
    struct sockaddr_un sun;
    char mem_path[PATH_MAX];
    struct json_object *hello, *reply = NULL;
    int rc = -1, saved;

    pthread_once(&xd_atfork_once, xd_register_atfork);
    pthread_mutex_lock(&xd.lock);
    if (xd.fd >= 0 && xd.pid == getpid()) {
        rc = xd.broken ? -1 : 0;
        if (rc)
            errno = EIO;
        goto out;
    }
    if (xd.fd >= 0) {
        /* Inherited over fork(): the parent keeps talking on its copy; this
         * process gets a connection of its own. */
        close(xd.fd);
        close(xd.mem_fd);
        xd.fd = xd.mem_fd = -1;
        xd.rlen = 0;
        xd.broken = false;
    }
    if (xd_socket_path(&sun, mem_path, sizeof(mem_path)) < 0)
        goto out;
    xd.fd = xd_dial(true);
    if (xd.fd < 0)
        goto out;
    xd.pid = getpid();
    hello = json_object_new_object();
    json_object_object_add(hello, "op", json_object_new_string("hello"));
    xd_set_i64(hello, "pid", xd.pid);
    xd_set_i64(hello, "version", XD_PROTOCOL_VERSION);
    reply = xd_exchange(hello, false);
    json_object_put(hello);
    if (!reply || xd_get_i64(reply, "errno")) {
        fprintf(stderr, "xendouble: the harness refused this process\n");
        errno = reply ? (int)xd_get_i64(reply, "errno") : EIO;
        goto fail;
    }
    xd.mem_fd = open(mem_path, O_RDWR | O_CLOEXEC);
    if (xd.mem_fd < 0) {
        fprintf(stderr, "xendouble: cannot open guest memory %s: %s\n", mem_path, strerror(errno));
        goto fail;
    }
    rc = 0;
    goto out;
fail:
    saved = errno;
    close(xd.fd);
    xd.fd = -1;
    errno = saved;
out:
    json_object_put(reply);
    pthread_mutex_unlock(&xd.lock);
    return rc;
}

int xd_mem_fd(void)
{
    return xd.mem_fd;
}

static struct json_object *xd_send(const char *op, struct json_object *args, bool oneway)
{
    struct json_object *reply;
    int saved;

    if (!args) {
        errno = ENOMEM;
        return NULL;
    }
    json_object_object_add(args, "op", json_object_new_string(op));
    pthread_mutex_lock(&xd.lock);
    reply = xd_exchange(args, oneway);
    saved = errno;
    pthread_mutex_unlock(&xd.lock);
    json_object_put(args);
    errno = saved;
    return reply;
}

struct json_object *xd_call(const char *op, struct json_object *args)
{
    return xd_send(op, args, false);
}

int xd_post(const char *op, struct json_object *args)
{
    struct json_object *reply = xd_send(op, args, true);

    if (!reply)
        return -1;
    json_object_put(reply);
    return 0;
}

int xd_post_port(const char *op, const struct xd_handle *h, uint32_t port)
{
    char line[160];
    int len, rc = -1;

    if (h->pid != getpid()) {
        errno = EBADF;
        return -1;
    }
    pthread_mutex_lock(&xd.lock);
    if (xd.fd < 0 || xd.broken || xd.pid != getpid()) {
        errno = xd.fd < 0 || xd.broken ? EIO : EBADF;
        goto out;
    }
    /* The same message xd_post() would build, without json-c's objects:
     * this is every request's path through the event channel. */
    len = snprintf(line, sizeof(line), "{\"h\":%lld,\"port\":%u,\"op\":\"%s\",\"seq\":%llu}\n",
                   (long long)h->id, port, op, (unsigned long long)++xd.seq);
    if (len < 0 || (size_t)len >= sizeof(line)) {
        errno = EINVAL;
        goto out;
    }
    if (xd_write_all(xd.fd, line, (size_t)len) < 0) {
        xd_mark_broken(strerror(errno));
        errno = EIO;
        goto out;
    }
    rc = 0;
out:
    pthread_mutex_unlock(&xd.lock);
    return rc;
}

struct json_object *xd_args(const struct xd_handle *h)
{
    struct json_object *args;

    if (h->pid != getpid()) {
        errno = EBADF;
        return NULL;
    }
    args = json_object_new_object();
    if (args)
        xd_set_i64(args, "h", h->id);
    return args;
}

int xd_call_result(const char *op, struct json_object *args, struct json_object **reply_out)
{
    struct json_object *reply;
    int64_t err, ret;

    if (reply_out)
        *reply_out = NULL;
    if (!args)
        return -1;
    reply = xd_call(op, args);
    if (!reply)
        return -1;
    err = xd_get_i64(reply, "errno");
    ret = xd_get_i64(reply, "ret");
    if (err) {
        json_object_put(reply);
        errno = (int)err;
        return -1;
    }
    if (reply_out)
        *reply_out = reply;
    else
        json_object_put(reply);
    return (int)ret;
}

int xd_open_handle(struct xd_handle *h, const char *op, struct json_object *args)
{
    struct json_object *reply;

    if (xd_connect() < 0) {
        json_object_put(args);
        return -1;
    }
    if (xd_call_result(op, args, &reply) < 0)
        return -1;
    h->id = xd_get_i64(reply, "h");
    h->pid = getpid();
    json_object_put(reply);
    return 0;
}

int xd_close_handle(const struct xd_handle *h, const char *op)
{
    /* A handle inherited over fork() may only be closed; the harness keeps
     * it open for the parent. */
    if (h->pid != getpid())
        return 0;
    return xd_call_result(op, xd_args(h), NULL) < 0 ? -1 : 0;
}

int xd_open_event_stream(int64_t handle_id, bool cloexec)
{
    struct json_object *msg, *reply = NULL;
    char line[256];
    size_t len = 0;
    int fd, saved;

    fd = xd_dial(cloexec);
    if (fd < 0)
        return -1;
    msg = json_object_new_object();
    json_object_object_add(msg, "op", json_object_new_string("xenevtchn_attach"));
    xd_set_i64(msg, "h", handle_id);
    xd_set_i64(msg, "pid", getpid());
    if (xd_send_json(fd, msg) < 0) {
        json_object_put(msg);
        goto fail;
    }
    json_object_put(msg);
    /* Byte by byte: once acknowledged, the stream carries binary port
     * numbers, which must stay unread for xenevtchn_pending(). */
    for (;;) {
        ssize_t n = read(fd, line + len, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            errno = EIO;
            goto fail;
        }
        if (line[len] == '\n')
            break;
        if (++len == sizeof(line) - 1) {
            errno = EPROTO;
            goto fail;
        }
    }
    line[len] = '\0';
    reply = json_tokener_parse(line);
    if (!reply || xd_get_i64(reply, "errno")) {
        errno = reply ? (int)xd_get_i64(reply, "errno") : EPROTO;
        goto fail;
    }
    json_object_put(reply);
    return fd;
fail:
    saved = errno;
    json_object_put(reply);
    close(fd);
    errno = saved;
    return -1;
}

int64_t xd_get_i64(struct json_object *obj, const char *key)
{
    struct json_object *v;

    if (!obj || !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_int))
        return 0;
    return json_object_get_int64(v);
}

uint64_t xd_get_u64(struct json_object *obj, const char *key)
{
    struct json_object *v;

    if (!obj || !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_int))
        return 0;
    return json_object_get_uint64(v);
}

void xd_set_i64(struct json_object *obj, const char *key, int64_t v)
{
    json_object_object_add(obj, key, json_object_new_int64(v));
}

void xd_set_u64(struct json_object *obj, const char *key, uint64_t v)
{
    json_object_object_add(obj, key, json_object_new_uint64(v));
}
