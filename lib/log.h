/* Logging, rate limiting and named trace points.
 *
 * Everything goes to stderr: libxl redirects a device model's stderr into
 * /var/log/xen/qemu-dm-<name>.log, so that is where an administrator looks.
 * Messages that a guest (or any other untrusted peer) can provoke must go
 * through log_ratelimited() so a hostile guest cannot fill dom0's disk. */
#ifndef XENDM_LIB_LOG_H
#define XENDM_LIB_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Redirects log output (tests capture it); NULL restores stderr. */
void log_set_stream(FILE *stream);
/* Caps the bytes ever written (libxl's XEN_QEMU_CONSOLE_LIMIT, XSA-180:
 * a guest must not fill dom0's disk through our log); 0 = no cap. Once
 * reached, one last line says so and the log falls silent. */
void log_set_byte_limit(uint64_t limit);
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A token bucket per call site: RATELIMIT_BURST messages, then one per
 * RATELIMIT_INTERVAL_MS; the number suppressed is reported with the next
 * message that gets through. */
#define RATELIMIT_BURST 10
#define RATELIMIT_INTERVAL_MS 1000

struct ratelimit {
    uint64_t last_refill_ns;
    unsigned tokens;
    unsigned suppressed;
    bool initialised;
};

/* Returns true if a message may be printed now; *suppressed receives how
 * many were dropped since the last one that got through. */
bool ratelimit_allow(struct ratelimit *rl, unsigned *suppressed);

#define log_ratelimited(level, ...)                                            \
    do {                                                                       \
        static struct ratelimit log_rl_;                                       \
        unsigned log_dropped_;                                                 \
        if (ratelimit_allow(&log_rl_, &log_dropped_)) {                        \
            if (log_dropped_)                                                  \
                log_msg(level, "(%u similar messages suppressed)",             \
                        log_dropped_);                                         \
            log_msg(level, __VA_ARGS__);                                       \
        }                                                                      \
    } while (0)

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                         \
    do {                                                                       \
        if (log_get_level() >= LOG_DEBUG)                                      \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                   \
    } while (0)

/* Trace points: off by default, switched on by name or glob pattern with
 * -trace PATTERN (or XEN_DM_TRACE=PATTERN[,PATTERN...]). Each point lives in
 * its own linker section so that `-trace help` can list every point in the
 * binary without a central registry. */
struct trace_point {
    const char *name;
    bool enabled;
};

#define TRACE_POINT(var, str)                                                  \
    static struct trace_point var                                              \
        __attribute__((used, section("xendm_trace"), aligned(16))) = {str,     \
                                                                     false}

#define trace(tp, ...)                                                         \
    do {                                                                       \
        if (__builtin_expect((tp).enabled, 0))                                 \
            trace_emit(&(tp), __VA_ARGS__);                                    \
    } while (0)

void trace_emit(const struct trace_point *tp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Enables every point matching the glob; returns how many matched. */
int trace_enable(const char *pattern, bool on);
/* Applies a comma-separated list of patterns; returns -ENOENT naming the
 * first pattern that matched nothing. */
int trace_enable_list(const char *list);
void trace_list(FILE *out);

#endif
