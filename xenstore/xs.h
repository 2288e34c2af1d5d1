/* The daemon's xenstore client: a thin layer over libxenstore that
 *
 *  - puts watches into the event loop (libxenstore's watch pipe is an fd
 *    source; callbacks run from the loop, never from libxenstore's thread),
 *  - survives xenstored going away: the loss is logged, reconnection is
 *    retried from a loop timer with exponential backoff, and every watch is
 *    registered again once connected (which fires each of them once, so a
 *    callback that re-reads its key catches up on what it missed),
 *  - never makes a failed read or write fatal: every call returns 0 (or a
 *    length) or a negative errno and logs failures rate-limited; while the
 *    connection is down every request returns -ENOTCONN at once,
 *  - treats values as untrusted: reads copy into a caller's bounded buffer,
 *    NUL-terminated, and reject values with embedded NUL bytes; integers
 *    are parsed strictly (no sign, no blanks, no trailing junk, no overflow),
 *  - builds every path from the domain ids it was opened with.
 *
 * Single-threaded like the loop. Calls may be made from watch callbacks,
 * including xsw_watch() and xsw_unwatch() (of any watch, the running one
 * too); xsw_close() may not. */
#ifndef XENDM_XENSTORE_XS_H
#define XENDM_XENSTORE_XS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct xsw;
struct xsw_watch;

/* XENSTORE_ABS_PATH_MAX and XENSTORE_PAYLOAD_MAX of the wire protocol: no
 * path or value xenstored accepts is longer. */
#define XSW_PATH_MAX 3072
#define XSW_VALUE_MAX 4096

/* A buffer large enough for any path (NUL included). */
typedef char xsw_path_t[XSW_PATH_MAX + 1];

/* path: the node that changed (at or below the watched path, or the special
 * "@..." path itself); token: the caller's token given to xsw_watch(). The
 * path is only valid during the call. */
typedef void (*xsw_watch_fn)(void *opaque, const char *path,
                             const char *token);

struct xsw_config {
    /* Domain the device model runs in (0 for a dom0 device model) and the
     * guest it serves: every xsw_*_path() helper builds on these. */
    unsigned int dm_domid;
    unsigned int domid;
    /* Reconnection backoff: the first retry comes after retry_min_ns, each
     * failure doubles the delay up to retry_max_ns. 0 = 100 ms / 5 s. */
    uint64_t retry_min_ns;
    uint64_t retry_max_ns;
    /* How often the connection is checked while idle (a local check, no
     * traffic: libxenstore closes its descriptor when its reader thread sees
     * the daemon go away, but does not wake the watch pipe). 0 = 1 s. */
    uint64_t liveness_ns;
    /* Optional: called after a reconnection, once every watch is registered
     * again (xenstored may have lost its contents). */
    void (*reconnected)(void *opaque);
    void *opaque;
};

/* Connects with xs_open(0) (XENSTORED_PATH and XENSTORED_RUNDIR are
 * honoured by libxenstore). Fails with a negative errno if xenstored cannot
 * be reached now: only an established connection is kept alive. */
int xsw_open(struct loop *loop, const struct xsw_config *cfg,
             struct xsw **out);
/* Removes every watch, closes the connection, frees xs. NULL is a no-op. */
void xsw_close(struct xsw *xs);
bool xsw_connected(const struct xsw *xs);
/* Number of connections established after a loss (for logs and tests). */
unsigned int xsw_reconnects(const struct xsw *xs);

/* Registers fn for changes at or below the absolute path (or a special
 * "@introduceDomain"-style path). xenstored fires a new watch once right
 * away. The same (path, token) pair twice is -EEXIST. While disconnected
 * the watch is only recorded and is registered on reconnection. *out (may
 * be NULL) is the handle for xsw_unwatch(). */
int xsw_watch(struct xsw *xs, const char *path, const char *token,
              xsw_watch_fn fn, void *opaque, struct xsw_watch **out);
/* Removes the watch; its callback is not called again, even for events
 * already queued. */
void xsw_unwatch(struct xsw *xs, struct xsw_watch *w);

/* Reads a value into buf (size bytes, NUL-terminated on success) and
 * returns its length. -ENOENT (not logged) if the node does not exist,
 * -E2BIG if the value does not fit (buf then holds nothing), -EINVAL if it
 * contains a NUL byte, -ENOTCONN while disconnected. */
int xsw_read(struct xsw *xs, const char *path, char *buf, size_t size);
/* Reads and parses a decimal (base 10) or hexadecimal (base 16, optional
 * 0x prefix) unsigned integer no larger than max; -EINVAL if the value is
 * not exactly that, -ERANGE above max. */
int xsw_read_uint(struct xsw *xs, const char *path, int base, uint64_t max,
                  uint64_t *out);
int xsw_write(struct xsw *xs, const char *path, const char *value);
int xsw_printf(struct xsw *xs, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int xsw_mkdir(struct xsw *xs, const char *path);
/* Removes the node and everything below it; a missing node is success. */
int xsw_rm(struct xsw *xs, const char *path);
/* Lists the children of path: *entries is one allocation holding *count
 * NUL-terminated names, release it with free(). -ENOENT if path does not
 * exist (not logged). */
int xsw_directory(struct xsw *xs, const char *path, char ***entries,
                  unsigned int *count);

/* Path builders: write "<root>[/<suffix formatted>]" into buf (size bytes,
 * at least XSW_PATH_MAX + 1 is always enough) and return its length, or
 * -ENAMETOOLONG. The suffix may be NULL; it must not start with '/'.
 *   dm:  /local/domain/<dm_domid>/device-model/<domid>
 *   dom: /local/domain/<domid>
 *   dm_home: /local/domain/<dm_domid> */
int xsw_dm_path(const struct xsw *xs, char *buf, size_t size,
                const char *suffix_fmt, ...)
    __attribute__((format(printf, 4, 5)));
int xsw_dom_path(const struct xsw *xs, char *buf, size_t size,
                 const char *suffix_fmt, ...)
    __attribute__((format(printf, 4, 5)));
int xsw_dm_home_path(const struct xsw *xs, char *buf, size_t size,
                     const char *suffix_fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Any path, same contract ("/local/domain/%u/backend/%s/%u/%u", ...). */
int xsw_path(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Strict parsers for values read from xenstore: the whole string must be
 * digits of the base (base 16 may start with 0x/0X), non-empty, and at most
 * max. 0, -EINVAL or -ERANGE; *out is written only on success. */
int xsw_parse_uint(const char *s, int base, uint64_t max, uint64_t *out);
/* A domain id: decimal, below DOMID_FIRST_RESERVED (0x7FF0). */
int xsw_parse_domid(const char *s, unsigned int *out);
/* True if child is parent itself or lies below it (component-wise). */
bool xsw_path_is_under(const char *parent, const char *child);

#endif
