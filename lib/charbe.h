/* Host character backends: where a guest's serial port (or any other byte
 * stream device) meets the host. The specs are the ones libxl passes with
 * -serial:
 *
 *   pty                                   a new pseudo-terminal; its slave path
 *                                         is what `xl console` opens
 *   stdio                                 the daemon's stdin/stdout
 *   file:PATH                             output appended to PATH (no input)
 *   null                                  output discarded, no input
 *   unix:PATH,server[=on][,wait=on|off|,nowait]
 *                                         listen on PATH, one client at a time;
 *                                         later clients wait in the backlog
 *                                         until the current one leaves
 *   unix:PATH                             connect to PATH as a client
 *   none                                  no device at all (*out is NULL)
 *
 * Two promises to the daemon: output never blocks (non-blocking fds, a
 * bounded queue, beyond which bytes are dropped and counted), and input is
 * never lost to flow control (the host fd is only read while the frontend
 * says it has room; the frontend calls charbe_accept_input() when room
 * comes back, and the kernel buffers hold the rest meanwhile).
 *
 * Writers should run with SIGPIPE ignored (the daemon does): sockets use
 * MSG_NOSIGNAL, but stdout may be a pipe. */
#ifndef XENDM_LIB_CHARBE_H
#define XENDM_LIB_CHARBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

/* Output the host side does not take at once is queued up to this much. */
#define CHARBE_OUT_QUEUE (64u * 1024)
/* How often a pty whose reader left is checked for a new reader. Output
 * also checks on the spot, so this only bounds the delay before input from
 * a newly attached reader is read. */
#define CHARBE_PTY_POLL_NS (1000ull * 1000 * 1000)

struct charbe;

/* The frontend (the emulated device). The struct is copied. Callbacks run
 * from the event loop, never from inside charbe_write() or
 * charbe_accept_input(), and must not close the backend. */
struct charbe_ops {
    /* How many bytes the frontend takes right now; 0 pauses input until
     * charbe_accept_input(). */
    size_t (*can_receive)(void *opaque);
    /* At most what can_receive() last returned. */
    void (*receive)(void *opaque, const uint8_t *buf, size_t len);
    void *opaque;
};

struct charbe_stats {
    uint64_t written;  /* bytes handed to the host (or discarded by null) */
    uint64_t dropped;  /* bytes lost: no reader, queue full, write error */
    uint64_t received; /* bytes passed to the frontend */
};

/* Opens the backend spec names. ops may be NULL (input then waits until a
 * frontend is attached with charbe_set_frontend()). Returns -EINVAL, with a
 * log line saying why, for a spec it does not understand; for "none"
 * returns 0 with *out = NULL, meaning the device should not exist. A
 * server with wait=on (the default for server, as in QEMU) blocks here
 * until the first client connects. */
int charbe_open(struct loop *loop, const char *spec,
                const struct charbe_ops *ops, struct charbe **out);
/* Closes fds (not stdin/stdout), unlinks a server's socket, restores a
 * terminal. NULL is a no-op. */
void charbe_close(struct charbe *be);

/* Replaces the frontend; NULL detaches it (input pauses). */
void charbe_set_frontend(struct charbe *be, const struct charbe_ops *ops);

/* Never blocks. Returns how many bytes were written or queued; the rest
 * were dropped (counted, with a rate-limited log line when dropping
 * starts). NULL backend: everything is dropped silently. */
size_t charbe_write(struct charbe *be, const uint8_t *buf, size_t len);

/* The frontend has room again: input resumes from the event loop. */
void charbe_accept_input(struct charbe *be);

/* QMP query-chardev's filename: "pty:/dev/pts/N", "file:PATH",
 * "unix:PATH,server", "unix:PATH", "null", "stdio"; "none" for NULL. */
const char *charbe_filename(const struct charbe *be);
/* The slave path of a pty backend ("/dev/pts/N"), NULL otherwise: what
 * goes to xenstore as serial/<n>/tty. */
const char *charbe_pty_path(const struct charbe *be);
/* Whether output currently reaches someone: a client is connected, a pty
 * has (or has not yet lost) a reader, a file or stdout is open. */
bool charbe_connected(const struct charbe *be);
void charbe_get_stats(const struct charbe *be, struct charbe_stats *stats);

#endif
