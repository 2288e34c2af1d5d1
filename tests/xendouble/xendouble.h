/* The test double of the Xen libraries: private interface between its parts.
 *
 * libxendouble.so defines the functions of libxendevicemodel,
 * libxenforeignmemory, libxenevtchn, libxenctrl and libxentoolcore that a
 * device model uses. Loaded with LD_PRELOAD it takes their place; every call
 * that would reach the hypervisor becomes a JSON request to the test harness
 * (tests/integration/xendouble.py, protocol in README.md), which plays Xen.
 *
 * Unlike the daemon, this library has process-wide state: the interface it
 * imitates is process-wide (handles are opened from anywhere), and there is
 * one harness connection per process. */
#ifndef XENDOUBLE_H
#define XENDOUBLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

/* The library's own helpers stay out of the daemon's symbol namespace. */
#pragma GCC visibility push(hidden)

#define XD_PAGE_SHIFT 12
#define XD_PAGE_SIZE (1UL << XD_PAGE_SHIFT)

/* What every doubled handle starts with: the harness's id for it and the
 * process that opened it (a handle used after fork() is refused, as the real
 * libraries require). */
struct xd_handle {
    int64_t id;
    pid_t pid;
};

/* Connects this process to the harness if it is not yet (first open), and
 * opens the guest memory file. 0, or -1 with errno. */
int xd_connect(void);

/* The guest memory file (RAM and ioreq pages) shared with the harness. */
int xd_mem_fd(void);

/* Sends {"op": op, ...args} and waits for the reply. args is consumed. The
 * reply is returned (caller puts it); NULL with errno = EIO when the harness
 * cannot be reached. */
struct json_object *xd_call(const char *op, struct json_object *args);

/* Sends {"op": op, ...args} without waiting for a reply (event-channel notify
 * and unmask, which real Xen does not answer either). args is consumed.
 * 0, or -1 with errno. */
int xd_post(const char *op, struct json_object *args);

/* xd_post() of {"h": h, "port": port}, built without json-c: notify and
 * unmask, the calls on every request's path. */
int xd_post_port(const char *op, const struct xd_handle *h, uint32_t port);

/* A request for an operation on handle h: {"h": id}. NULL with errno set
 * (EBADF) if h belongs to another process. */
struct json_object *xd_args(const struct xd_handle *h);

/* xd_call, then the usual library return convention: the reply's "ret"
 * (>= 0), or -1 with errno from the reply. *reply_out, if given, receives
 * the reply on success (caller puts it). */
int xd_call_result(const char *op, struct json_object *args, struct json_object **reply_out);

/* Opens a handle of the given kind: connects, sends op with args (consumed),
 * and fills h. 0, or -1 with errno. */
int xd_open_handle(struct xd_handle *h, const char *op, struct json_object *args);

/* Closes a handle: tells the harness (when h belongs to this process).
 * Returns the library result. */
int xd_close_handle(const struct xd_handle *h, const char *op);

/* A second connection to the harness, used as an event-channel fd. The
 * harness is told which evtchn handle it serves. fd, or -1 with errno. */
int xd_open_event_stream(int64_t handle_id, bool cloexec);

/* Reply accessors: missing or mistyped members give 0. */
int64_t xd_get_i64(struct json_object *obj, const char *key);
uint64_t xd_get_u64(struct json_object *obj, const char *key);

/* Adds a member. */
void xd_set_i64(struct json_object *obj, const char *key, int64_t v);
void xd_set_u64(struct json_object *obj, const char *key, uint64_t v);

#pragma GCC visibility pop

#endif
