#include "charbe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"

enum charbe_kind {
    CHARBE_NULL,
    CHARBE_STDIO,
    CHARBE_FILE,
    CHARBE_PTY,
    CHARBE_UNIX_SERVER,
    CHARBE_UNIX_CLIENT,
};

/* One file descriptor and its registration in the loop. */
struct charbe_fd {
    int fd;
    struct loop_watch *watch;
    uint32_t events;
    bool unpollable; /* epoll refuses it: a regular file or /dev/null */
};

struct charbe {
    enum charbe_kind kind;
    struct loop *loop;
    char *filename;
    char *path; /* pty slave, file, or socket path */

    struct charbe_ops fe;
    bool has_fe;

    /* For a pty or a socket in and out are the same fd, and the in slot's
     * watch serves both directions. */
    struct charbe_fd in, out;
    /* The frontend said it is full: EPOLLIN is off until it has room. */
    bool in_paused;
    /* The peer hung up while input was paused: its last bytes are read
     * from deferred work as the frontend makes room, then the connection
     * ends. (A level-triggered hang-up cannot stay in epoll meanwhile.) */
    bool in_hup;
    struct loop_work pump_work;
    /* Bumped whenever the connection changes, so an fd callback notices
     * that an earlier step of the same callback tore it down. */
    unsigned generation;

    /* Output ring. */
    uint8_t *out_buf;
    size_t out_head, out_len;
    bool out_dead; /* stdout or the file failed for good */
    bool dropping; /* in a run of drops: logged once at its start */

    /* pty: the reader closed the slave. Until one opens it again the
     * master reports a hang-up, so it is polled instead of watched. */
    bool pty_hup;
    struct loop_timer pty_timer;

    /* unix server */
    int listen_fd;
    struct loop_watch *listen_watch;

    /* stdio: restored at close */
    int stdin_flags, stdout_flags;
    bool stdin_flags_saved, stdout_flags_saved, termios_saved;
    struct termios saved_termios;

    struct charbe_stats stats;
};

static void update_watches(struct charbe *be);
static void input_ended(struct charbe *be);

static bool is_socket(const struct charbe *be)
{
    return be->kind == CHARBE_UNIX_SERVER || be->kind == CHARBE_UNIX_CLIENT;
}

static bool shares_fd(const struct charbe *be)
{
    return be->in.fd >= 0 && be->in.fd == be->out.fd;
}

static int set_nonblock(int fd, int *old_flags)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0)
        return -errno;
    if (old_flags)
        *old_flags = fl;
    if (fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static size_t frontend_room(struct charbe *be)
{
    if (!be->has_fe || !be->fe.can_receive || !be->fe.receive)
        return 0;
    return be->fe.can_receive(be->fe.opaque);
}

static void note_drop(struct charbe *be, size_t len, const char *why)
{
    be->stats.dropped += len;
    if (be->dropping)
        return;
    be->dropping = true;
    log_ratelimited(LOG_INFO, "%s: dropping output (%s)", be->filename, why);
}

static bool output_open(const struct charbe *be)
{
    switch (be->kind) {
    case CHARBE_NULL:
        return true;
    case CHARBE_PTY:
        return !be->pty_hup && !be->in_hup;
    case CHARBE_UNIX_SERVER:
    case CHARBE_UNIX_CLIENT:
        return be->out.fd >= 0 && !be->in_hup;
    case CHARBE_STDIO:
    case CHARBE_FILE:
        return be->out.fd >= 0 && !be->out_dead;
    }
    return false;
}

static void discard_output(struct charbe *be)
{
    if (be->out_len)
        note_drop(be, be->out_len, "the reader went away");
    be->out_head = be->out_len = 0;
}

/* ---- watches ---- */

static void on_in_event(void *opaque, uint32_t events);
static void on_out_event(void *opaque, uint32_t events);

static void set_watch(struct charbe *be, struct charbe_fd *slot,
                      uint32_t events, bool keep, loop_fd_fn fn)
{
    int rc;

    if (slot->fd < 0 || (!events && !keep)) {
        if (slot->watch) {
            loop_del_fd(slot->watch);
            slot->watch = NULL;
        }
        return;
    }
    if (slot->watch) {
        if (events != slot->events) {
            rc = loop_mod_fd(slot->watch, events);
            if (rc < 0)
                log_ratelimited(LOG_WARN, "%s: epoll_ctl: %s", be->filename,
                                strerror(-rc));
            else
                slot->events = events;
        }
        return;
    }
    if (slot->unpollable)
        return;
    rc = loop_add_fd(be->loop, slot->fd, events, fn, be, &slot->watch);
    if (rc == -EPERM) {
        slot->unpollable = true;
        slot->watch = NULL;
        return;
    }
    if (rc < 0) {
        slot->watch = NULL;
        log_ratelimited(LOG_WARN, "%s: cannot watch fd %d: %s", be->filename,
                        slot->fd, strerror(-rc));
        return;
    }
    slot->events = events;
}

static void update_watches(struct charbe *be)
{
    bool reading = be->in.fd >= 0 && !be->in_paused && !be->in_hup &&
                   !be->pty_hup && !be->in.unpollable;
    bool writing = be->out.fd >= 0 && be->out_len && !be->out.unpollable &&
                   output_open(be);
    uint32_t in_ev = reading ? EPOLLIN : 0, out_ev = writing ? EPOLLOUT : 0;

    /* A connected stream stays watched with no events so that a hang-up is
     * noticed even while the frontend is full. */
    bool keep_in = be->in.fd >= 0 && !be->in_hup && !be->pty_hup &&
                   !be->in.unpollable;

    if (shares_fd(be)) {
        set_watch(be, &be->in, in_ev | out_ev, keep_in, on_in_event);
        return;
    }
    set_watch(be, &be->in, in_ev, keep_in, on_in_event);
    set_watch(be, &be->out, out_ev, false, on_out_event);
    /* Only a failing write leaves bytes queued for a regular file, and
     * nothing would ever say it drained: give them up. */
    if (be->out.unpollable && be->out_len)
        discard_output(be);
    /* stdin from a regular file or /dev/null: always readable, so read it
     * from deferred work instead. */
    if (be->in.fd >= 0 && be->in.unpollable && !be->in_paused)
        loop_defer(be->loop, &be->pump_work);
}

/* ---- input ---- */

static void read_input(struct charbe *be)
{
    uint8_t buf[4096];
    size_t room;
    ssize_t n;

    if (be->in.fd < 0 || be->pty_hup)
        return;
    room = frontend_room(be);
    if (!room) {
        be->in_paused = true;
        update_watches(be);
        return;
    }
    if (room > sizeof(buf))
        room = sizeof(buf);
    do {
        n = read(be->in.fd, buf, room);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        be->stats.received += (uint64_t)n;
        be->fe.receive(be->fe.opaque, buf, (size_t)n);
        if (!frontend_room(be)) {
            be->in_paused = true;
            update_watches(be);
        } else if (be->in_hup || be->in.unpollable) {
            /* Nothing will wake us for the rest: keep draining. */
            loop_defer(be->loop, &be->pump_work);
        }
        return;
    }
    if (n < 0 && errno == EAGAIN && !be->in_hup)
        return;
    /* End of input: EOF, EIO from a pty whose reader left, a socket error,
     * or a hung-up peer with nothing left to read. */
    input_ended(be);
}

static void pump_input(void *opaque)
{
    read_input(opaque);
}

static void resume_input(struct charbe *be)
{
    be->in_paused = false;
    if (be->in.fd < 0)
        return;
    if (be->in_hup || be->in.unpollable)
        loop_defer(be->loop, &be->pump_work);
    else
        update_watches(be);
}

/* ---- output ---- */

/* Returns bytes written (0 when the fd would block) or -errno. */
static ssize_t raw_write(struct charbe *be, const uint8_t *buf, size_t len)
{
    ssize_t n;

    do {
        if (is_socket(be))
            n = send(be->out.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        else
            n = write(be->out.fd, buf, len);
    } while (n < 0 && errno == EINTR);
    if (n >= 0)
        return n;
    if (errno == EAGAIN)
        return 0;
    return -errno;
}

static void output_failed(struct charbe *be, int err)
{
    switch (be->kind) {
    case CHARBE_PTY:
    case CHARBE_UNIX_SERVER:
    case CHARBE_UNIX_CLIENT:
        /* The reader is gone; reading will tell the same story. */
        input_ended(be);
        break;
    default:
        log_ratelimited(LOG_WARN, "%s: write failed: %s; output is dropped "
                        "from now on", be->filename, strerror(err));
        be->out_dead = true;
        discard_output(be);
        update_watches(be);
        break;
    }
}

static void flush_output(struct charbe *be)
{
    while (be->out_len) {
        size_t seg = CHARBE_OUT_QUEUE - be->out_head;
        ssize_t n;

        if (seg > be->out_len)
            seg = be->out_len;
        n = raw_write(be, be->out_buf + be->out_head, seg);
        if (n < 0) {
            output_failed(be, (int)-n);
            return;
        }
        if (n == 0)
            break;
        be->stats.written += (uint64_t)n;
        be->out_head = (be->out_head + (size_t)n) % CHARBE_OUT_QUEUE;
        be->out_len -= (size_t)n;
    }
    if (!be->out_len)
        be->out_head = 0;
    update_watches(be);
}

static size_t queue_output(struct charbe *be, const uint8_t *buf, size_t len)
{
    size_t space, take, tail, first;

    if (!be->out_buf) {
        be->out_buf = malloc(CHARBE_OUT_QUEUE);
        if (!be->out_buf)
            return 0;
    }
    space = CHARBE_OUT_QUEUE - be->out_len;
    take = len < space ? len : space;
    tail = (be->out_head + be->out_len) % CHARBE_OUT_QUEUE;
    first = CHARBE_OUT_QUEUE - tail;
    if (first > take)
        first = take;
    memcpy(be->out_buf + tail, buf, first);
    memcpy(be->out_buf, buf + first, take - first);
    be->out_len += take;
    return take;
}

static bool pty_has_reader(struct charbe *be);
static void pty_reader_back(struct charbe *be);

size_t charbe_write(struct charbe *be, const uint8_t *buf, size_t len)
{
    size_t done = 0, queued = 0;
    bool was_empty;

    if (!be || !len)
        return 0;
    if (be->kind == CHARBE_NULL) {
        be->stats.written += len;
        return len;
    }
    if (be->kind == CHARBE_PTY && be->pty_hup && pty_has_reader(be))
        pty_reader_back(be);
    if (!output_open(be)) {
        note_drop(be, len, "nobody is connected");
        return 0;
    }
    was_empty = be->out_len == 0;
    if (was_empty) {
        ssize_t n = raw_write(be, buf, len);

        if (n < 0) {
            output_failed(be, (int)-n);
            note_drop(be, len, strerror((int)-n));
            return 0;
        }
        done = (size_t)n;
        be->stats.written += done;
    }
    /* An fd epoll cannot watch never signals that it drained, so nothing
     * is queued for it; such fds (regular files) do not block anyway. */
    if (done < len && !be->out.unpollable)
        queued = queue_output(be, buf + done, len - done);
    if (done + queued < len)
        note_drop(be, len - done - queued, "the reader does not keep up");
    else
        be->dropping = false;
    if (was_empty && be->out_len)
        update_watches(be);
    return done + queued;
}

static void on_out_event(void *opaque, uint32_t events)
{
    struct charbe *be = opaque;

    if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLOUT)) {
        output_failed(be, EPIPE);
        return;
    }
    flush_output(be);
}

static void on_in_event(void *opaque, uint32_t events)
{
    struct charbe *be = opaque;
    unsigned generation = be->generation;

    if (events & EPOLLOUT) {
        flush_output(be);
        if (generation != be->generation)
            return;
    }
    if (events & EPOLLIN) {
        read_input(be);
        if (generation != be->generation)
            return;
    }
    if (!(events & (EPOLLHUP | EPOLLERR)))
        return;
    if (!be->in_paused) {
        /* Read what is left; the hang-up is reported again while there
         * is more, and the end of it ends the connection. */
        if (!(events & EPOLLIN))
            read_input(be);
        return;
    }
    /* Paused: stop watching (the hang-up would be reported forever) and
     * drain from deferred work once the frontend has room. */
    be->in_hup = true;
    if (shares_fd(be))
        discard_output(be);
    update_watches(be);
}

/* ---- connection changes ---- */

static void on_listen_event(void *opaque, uint32_t events);

static void listen_watch_set(struct charbe *be, bool on)
{
    int rc;

    if (!on) {
        if (be->listen_watch) {
            loop_del_fd(be->listen_watch);
            be->listen_watch = NULL;
        }
        return;
    }
    if (be->listen_watch)
        return;
    rc = loop_add_fd(be->loop, be->listen_fd, EPOLLIN, on_listen_event, be,
                     &be->listen_watch);
    if (rc < 0) {
        be->listen_watch = NULL;
        log_err("%s: cannot watch the listening socket: %s", be->filename,
                strerror(-rc));
    }
}

static void attach_client(struct charbe *be, int fd)
{
    be->generation++;
    be->in = (struct charbe_fd){.fd = fd};
    be->out = be->in;
    be->in_hup = false;
    be->dropping = false;
    listen_watch_set(be, false);
    update_watches(be);
    log_ratelimited(LOG_INFO, "%s: client connected", be->filename);
}

static void detach_client(struct charbe *be)
{
    be->generation++;
    loop_work_cancel(be->loop, &be->pump_work);
    if (be->in.watch)
        loop_del_fd(be->in.watch);
    if (be->in.fd >= 0)
        close(be->in.fd);
    be->in = (struct charbe_fd){.fd = -1};
    be->out = be->in;
    be->in_hup = false;
    discard_output(be);
    log_ratelimited(LOG_INFO, "%s: client disconnected", be->filename);
    if (be->kind == CHARBE_UNIX_SERVER)
        listen_watch_set(be, true);
}

static void on_listen_event(void *opaque, uint32_t events)
{
    struct charbe *be = opaque;
    int fd;

    if (be->in.fd >= 0)
        return;
    fd = accept4(be->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            log_ratelimited(LOG_WARN, "%s: accept: %s", be->filename,
                            strerror(errno));
        return;
    }
    attach_client(be, fd);
}

static bool pty_has_reader(struct charbe *be)
{
    struct pollfd p = {.fd = be->in.fd, .events = POLLIN};

    if (poll(&p, 1, 0) < 0)
        return false;
    return !(p.revents & POLLHUP);
}

static void pty_poll_reader(void *opaque)
{
    struct charbe *be = opaque;

    if (!be->pty_hup)
        return;
    if (pty_has_reader(be))
        pty_reader_back(be);
    else
        loop_timer_arm(&be->pty_timer, CHARBE_PTY_POLL_NS);
}

static void pty_reader_back(struct charbe *be)
{
    be->generation++;
    be->pty_hup = false;
    be->in_hup = false;
    be->dropping = false;
    loop_timer_cancel(&be->pty_timer);
    update_watches(be);
    log_ratelimited(LOG_INFO, "%s: reader attached", be->filename);
}

static void pty_reader_gone(struct charbe *be)
{
    be->generation++;
    loop_work_cancel(be->loop, &be->pump_work);
    be->pty_hup = true;
    be->in_hup = false;
    discard_output(be);
    update_watches(be);
    loop_timer_arm(&be->pty_timer, CHARBE_PTY_POLL_NS);
    log_ratelimited(LOG_INFO, "%s: reader detached", be->filename);
}

static void input_ended(struct charbe *be)
{
    switch (be->kind) {
    case CHARBE_PTY:
        pty_reader_gone(be);
        break;
    case CHARBE_UNIX_SERVER:
    case CHARBE_UNIX_CLIENT:
        detach_client(be);
        break;
    default:
        /* stdin reached its end: output goes on. */
        be->generation++;
        loop_work_cancel(be->loop, &be->pump_work);
        if (be->in.watch)
            loop_del_fd(be->in.watch);
        be->in = (struct charbe_fd){.fd = -1};
        be->in_hup = false;
        break;
    }
}

/* ---- opening ---- */

static int open_pty(struct charbe *be)
{
    char name[64];
    struct termios t;
    int fd, rc;

    fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (grantpt(fd) < 0 || unlockpt(fd) < 0 || ptsname_r(fd, name, sizeof(name))) {
        rc = -errno;
        goto fail;
    }
    /* The guest sends and expects raw bytes: no echo, no line editing, no
     * newline translation on the slave side. */
    if (tcgetattr(fd, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(fd, TCSANOW, &t);
    }
    rc = set_nonblock(fd, NULL);
    if (rc < 0)
        goto fail;
    be->path = strdup(name);
    if (!be->path || asprintf(&be->filename, "pty:%s", name) < 0) {
        be->filename = NULL;
        rc = -ENOMEM;
        goto fail;
    }
    be->in = (struct charbe_fd){.fd = fd};
    be->out = be->in;
    return 0;
fail:
    close(fd);
    return rc;
}

static int open_file(struct charbe *be, const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY |
                  O_NONBLOCK, 0666);

    if (fd < 0) {
        int rc = -errno;

        log_err("cannot open %s: %s", path, strerror(errno));
        return rc;
    }
    be->out = (struct charbe_fd){.fd = fd};
    return 0;
}

static int open_stdio(struct charbe *be)
{
    int rc;

    be->in = (struct charbe_fd){.fd = STDIN_FILENO};
    be->out = (struct charbe_fd){.fd = STDOUT_FILENO};
    rc = set_nonblock(STDIN_FILENO, &be->stdin_flags);
    if (rc < 0)
        return rc;
    be->stdin_flags_saved = true;
    rc = set_nonblock(STDOUT_FILENO, &be->stdout_flags);
    if (rc < 0)
        return rc;
    be->stdout_flags_saved = true;
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &be->saved_termios) == 0) {
        struct termios t = be->saved_termios;

        /* Keystrokes go to the guest as typed, but ^C still stops us. */
        cfmakeraw(&t);
        t.c_lflag |= ISIG;
        t.c_oflag |= OPOST | ONLCR;
        be->termios_saved = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
    }
    return 0;
}

static int unix_address(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return -EINVAL;
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

static int open_unix_server(struct charbe *be, bool wait)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd, rc;

    rc = unix_address(be->path, &sa);
    if (rc < 0)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    /* A socket left by an earlier run; anything else at the path is not
     * ours to remove. */
    if (lstat(be->path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(be->path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
        rc = -errno;
        close(fd);
        log_err("%s: cannot listen: %s", be->filename, strerror(-rc));
        return rc;
    }
    be->listen_fd = fd;
    if (wait) {
        int client;

        log_info("%s: waiting for a client to connect", be->filename);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        do {
            client = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        } while (client < 0 && errno == EINTR);
        rc = client < 0 ? -errno : 0;
        set_nonblock(fd, NULL);
        if (rc < 0)
            return rc;
        attach_client(be, client);
        return 0;
    }
    listen_watch_set(be, true);
    return be->listen_watch ? 0 : -EIO;
}

static int open_unix_client(struct charbe *be)
{
    struct sockaddr_un sa;
    int fd, rc;

    rc = unix_address(be->path, &sa);
    if (rc < 0)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = -errno;
        close(fd);
        log_err("%s: cannot connect: %s", be->filename, strerror(-rc));
        return rc;
    }
    rc = set_nonblock(fd, NULL);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    attach_client(be, fd);
    return 0;
}

static int parse_switch(const char *val, bool *out)
{
    if (!val || !strcmp(val, "on")) {
        *out = true;
        return 0;
    }
    if (!strcmp(val, "off")) {
        *out = false;
        return 0;
    }
    return -EINVAL;
}

/* unix:PATH[,server[=on|off]][,wait[=on|off]][,nowait] */
static int parse_unix(const char *rest, char **path, bool *server, bool *wait)
{
    char *copy = strdup(rest), *save = NULL, *tok;
    bool wait_set = false;
    int rc = 0;

    if (!copy)
        return -ENOMEM;
    *server = false;
    *wait = false;
    tok = strtok_r(copy, ",", &save);
    if (!tok || rest[0] == ',') {
        rc = -EINVAL;
        goto out;
    }
    *path = strdup(tok);
    if (!*path) {
        rc = -ENOMEM;
        goto out;
    }
    while ((tok = strtok_r(NULL, ",", &save))) {
        char *eq = strchr(tok, '=');
        const char *val = eq ? eq + 1 : NULL;

        if (eq)
            *eq = '\0';
        if (!strcmp(tok, "server")) {
            rc = parse_switch(val, server);
        } else if (!strcmp(tok, "wait")) {
            rc = parse_switch(val, wait);
            wait_set = true;
        } else if (!strcmp(tok, "nowait") && !val) {
            *wait = false;
            wait_set = true;
        } else {
            rc = -EINVAL;
        }
        if (rc < 0) {
            free(*path);
            *path = NULL;
            goto out;
        }
    }
    /* As in QEMU, a server waits for its first client unless told not to. */
    if (!wait_set)
        *wait = *server;
    if (!*server)
        *wait = false;
out:
    free(copy);
    return rc;
}

static void charbe_init_fields(struct charbe *be, struct loop *loop)
{
    be->loop = loop;
    be->in = (struct charbe_fd){.fd = -1};
    be->out = be->in;
    be->listen_fd = -1;
    be->in_paused = true;
    loop_work_init(&be->pump_work, pump_input, be);
    loop_timer_init(loop, &be->pty_timer, pty_poll_reader, be);
}

int charbe_open(struct loop *loop, const char *spec,
                const struct charbe_ops *ops, struct charbe **out)
{
    struct charbe *be;
    int rc = 0;

    *out = NULL;
    if (!spec)
        return -EINVAL;
    if (!strcmp(spec, "none"))
        return 0;
    be = calloc(1, sizeof(*be));
    if (!be)
        return -ENOMEM;
    charbe_init_fields(be, loop);

    if (!strcmp(spec, "null")) {
        be->kind = CHARBE_NULL;
        be->filename = strdup("null");
    } else if (!strcmp(spec, "stdio")) {
        be->kind = CHARBE_STDIO;
        be->filename = strdup("stdio");
        if (be->filename)
            rc = open_stdio(be);
    } else if (!strcmp(spec, "pty")) {
        be->kind = CHARBE_PTY;
        rc = open_pty(be);
        if (rc < 0)
            log_err("cannot open a pty: %s", strerror(-rc));
    } else if (!strncmp(spec, "file:", 5) && spec[5]) {
        be->kind = CHARBE_FILE;
        be->path = strdup(spec + 5);
        be->filename = strdup(spec);
        if (be->path && be->filename)
            rc = open_file(be, be->path);
    } else if (!strncmp(spec, "unix:", 5) && spec[5]) {
        bool server, wait;

        rc = parse_unix(spec + 5, &be->path, &server, &wait);
        if (rc == -EINVAL) {
            log_err("bad unix socket backend '%s' (use unix:PATH[,server]"
                    "[,wait=off|,nowait])", spec);
            goto out;
        }
        if (rc < 0)
            goto out;
        be->kind = server ? CHARBE_UNIX_SERVER : CHARBE_UNIX_CLIENT;
        if (asprintf(&be->filename, "unix:%s%s", be->path,
                     server ? ",server" : "") < 0) {
            be->filename = NULL;
            rc = -ENOMEM;
            goto out;
        }
        {
            struct sockaddr_un sa;

            if (unix_address(be->path, &sa) < 0) {
                log_err("unix socket path too long in '%s'", spec);
                rc = -EINVAL;
                goto out;
            }
        }
        rc = server ? open_unix_server(be, wait) : open_unix_client(be);
    } else {
        log_err("unsupported character backend '%s' (use pty, stdio, "
                "file:PATH, null, none, unix:PATH[,server][,nowait])", spec);
        rc = -EINVAL;
        goto out;
    }
    if (rc == 0 && !be->filename)
        rc = -ENOMEM;
out:
    if (rc < 0) {
        charbe_close(be);
        return rc;
    }
    if (ops)
        charbe_set_frontend(be, ops);
    *out = be;
    return 0;
}

void charbe_set_frontend(struct charbe *be, const struct charbe_ops *ops)
{
    if (!be)
        return;
    if (!ops) {
        be->has_fe = false;
        be->in_paused = true;
        loop_work_cancel(be->loop, &be->pump_work);
        update_watches(be);
        return;
    }
    be->fe = *ops;
    be->has_fe = true;
    resume_input(be);
}

void charbe_accept_input(struct charbe *be)
{
    if (!be || !be->in_paused || !be->has_fe)
        return;
    resume_input(be);
}

void charbe_close(struct charbe *be)
{
    if (!be)
        return;
    loop_timer_cancel(&be->pty_timer);
    loop_work_cancel(be->loop, &be->pump_work);
    if (be->in.watch)
        loop_del_fd(be->in.watch);
    if (be->out.watch && be->out.watch != be->in.watch)
        loop_del_fd(be->out.watch);
    listen_watch_set(be, false);
    if (be->kind == CHARBE_STDIO) {
        if (be->termios_saved)
            tcsetattr(STDIN_FILENO, TCSANOW, &be->saved_termios);
        if (be->stdin_flags_saved)
            fcntl(STDIN_FILENO, F_SETFL, be->stdin_flags);
        if (be->stdout_flags_saved)
            fcntl(STDOUT_FILENO, F_SETFL, be->stdout_flags);
    } else {
        if (be->in.fd >= 0)
            close(be->in.fd);
        if (be->out.fd >= 0 && be->out.fd != be->in.fd)
            close(be->out.fd);
    }
    if (be->listen_fd >= 0) {
        close(be->listen_fd);
        if (be->path)
            unlink(be->path);
    }
    free(be->out_buf);
    free(be->filename);
    free(be->path);
    free(be);
}

const char *charbe_filename(const struct charbe *be)
{
    return be ? be->filename : "none";
}

const char *charbe_pty_path(const struct charbe *be)
{
    return be && be->kind == CHARBE_PTY ? be->path : NULL;
}

bool charbe_connected(const struct charbe *be)
{
    return be && output_open(be);
}

void charbe_get_stats(const struct charbe *be, struct charbe_stats *stats)
{
    if (be)
        *stats = be->stats;
    else
        memset(stats, 0, sizeof(*stats));
}
