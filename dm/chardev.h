/* Character-device specs as QEMU spells them, and the stream connections the
 * control sockets (QMP, qtest) run over.
 *
 *   unix:PATH[,server[=on|off]][,wait[=on|off]|,nowait]   (-qmp, -qtest)
 *   stdio                                                 (-qtest)
 *   socket,id=ID,path=PATH|fd=N[,server=on][,wait=off]   (-chardev)
 *
 * A server socket accepts any number of clients, one conn each. */
#ifndef XENDM_DM_CHARDEV_H
#define XENDM_DM_CHARDEV_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/loop.h"

enum chardev_kind { CHARDEV_UNIX, CHARDEV_STDIO, CHARDEV_FD };

struct chardev_spec {
    enum chardev_kind kind;
    char *id;   /* -chardev id= */
    char *path; /* unix socket path */
    int fd;     /* CHARDEV_FD: an already listening socket */
    bool server;
    bool wait;
};

/* Parses a spec; errors are written to err. */
int chardev_parse(const char *text, bool is_chardev_option,
                  struct chardev_spec *spec, char *err, size_t errlen);
void chardev_spec_clear(struct chardev_spec *spec);

struct conn;

struct conn_ops {
    /* Bytes arrived; the callee may call conn_close() from here. */
    void (*data)(void *opaque, struct conn *c, const char *buf, size_t len);
    /* The peer went away or the connection was closed. Always called from
     * deferred work, never from inside conn_write() or conn_close(), so a
     * data callback may go on using its state after a write failed. */
    void (*closed)(void *opaque, struct conn *c);
    /* A new client connected (server sockets). */
    void (*opened)(void *opaque, struct conn *c);
};

/* Output a client does not read is buffered up to this much; beyond it the
 * client is disconnected rather than letting it grow dom0's memory. */
#define CONN_MAX_OUTPUT (4u << 20)

int conn_write(struct conn *c, const void *buf, size_t len);
int conn_printf(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Closes after the output queue drained (or at once if it cannot). */
void conn_close(struct conn *c);
void *conn_get_user(const struct conn *c);
void conn_set_user(struct conn *c, void *user);
/* Received file descriptors (SCM_RIGHTS), oldest first; -1 if none. */
int conn_take_fd(struct conn *c);

struct chardev;

/* Opens what spec describes: listens (server), connects (client) or uses
 * stdin/stdout. With server and wait, blocks until the first client. */
int chardev_open(struct loop *loop, const struct chardev_spec *spec,
                 const struct conn_ops *ops, void *opaque,
                 struct chardev **out);
void chardev_close(struct chardev *chr);
/* Calls fn for each open connection. */
void chardev_for_each_conn(struct chardev *chr,
                           void (*fn)(void *arg, struct conn *c), void *arg);

#endif
