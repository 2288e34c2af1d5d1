#include "log.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum log_level current_level = LOG_INFO;
static FILE *log_stream;
static uint64_t byte_limit, bytes_written;

void log_set_byte_limit(uint64_t limit)
{
    byte_limit = limit;
    bytes_written = 0;
}

static const char *const level_names[] = {
    [LOG_ERR] = "error", [LOG_WARN] = "warning", [LOG_INFO] = "info",
    [LOG_DEBUG] = "debug"};

void log_set_level(enum log_level level) { current_level = level; }
enum log_level log_get_level(void) { return current_level; }
void log_set_stream(FILE *stream) { log_stream = stream; }

static void log_vprint(const char *tag, const char *fmt, va_list ap)
{
    FILE *out = log_stream ? log_stream : stderr;
    struct timeval tv;
    struct tm tm;
    char line[1024];
    int n, prefix_len;

    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    prefix_len = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld xen-dm ",
                          tm.tm_hour, tm.tm_min, tm.tm_sec,
                          (long)tv.tv_usec / 1000);
    n = prefix_len + snprintf(line + prefix_len, sizeof(line) - prefix_len,
                              "%s: ", tag);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (byte_limit) {
        size_t len = strlen(line) + 1;

        if (bytes_written >= byte_limit)
            return;
        bytes_written += len;
        if (bytes_written >= byte_limit) {
            /* The same prefix as every line, so log readers parse it. */
            fprintf(out, "%.*swarning: log limit of %llu bytes reached "
                    "(XEN_QEMU_CONSOLE_LIMIT): no further messages\n",
                    prefix_len, line, (unsigned long long)byte_limit);
            fflush(out);
            return;
        }
    }
    /* One write per line keeps lines whole when stderr is shared. */
    fprintf(out, "%s\n", line);
    fflush(out);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    if (level > current_level)
        return;
    va_start(ap, fmt);
    log_vprint(level_names[level], fmt, ap);
    va_end(ap);
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool ratelimit_allow(struct ratelimit *rl, unsigned *suppressed)
{
    const uint64_t interval = RATELIMIT_INTERVAL_MS * 1000000ull;
    uint64_t now = monotonic_ns();

    if (!rl->initialised) {
        rl->initialised = true;
        rl->tokens = RATELIMIT_BURST;
        rl->last_refill_ns = now;
    }
    if (now - rl->last_refill_ns >= interval) {
        uint64_t refill = (now - rl->last_refill_ns) / interval;

        uint64_t tokens = rl->tokens + refill;

        rl->tokens = tokens > RATELIMIT_BURST ? RATELIMIT_BURST : (unsigned)tokens;
        rl->last_refill_ns += refill * interval;
    }
    if (rl->tokens == 0) {
        rl->suppressed++;
        *suppressed = 0;
        return false;
    }
    rl->tokens--;
    *suppressed = rl->suppressed;
    rl->suppressed = 0;
    return true;
}

/* Bounds of the trace-point section, provided by the GNU linker. */
extern struct trace_point __start_xendm_trace[];
extern struct trace_point __stop_xendm_trace[];

/* Keeps the section (and its bounds) present even in binaries without any
 * trace point of their own. */
TRACE_POINT(trace_self, "trace_enable");

void trace_emit(const struct trace_point *tp, const char *fmt, ...)
{
    char tag[64];
    va_list ap;

    snprintf(tag, sizeof(tag), "trace %s", tp->name);
    va_start(ap, fmt);
    log_vprint(tag, fmt, ap);
    va_end(ap);
}

int trace_enable(const char *pattern, bool on)
{
    int matched = 0;

    for (struct trace_point *tp = __start_xendm_trace; tp < __stop_xendm_trace;
         tp++) {
        if (fnmatch(pattern, tp->name, 0) == 0) {
            tp->enabled = on;
            matched++;
        }
    }
    trace(trace_self, "%s '%s': %d points", on ? "on" : "off", pattern,
          matched);
    return matched;
}

int trace_enable_list(const char *list)
{
    char *copy = strdup(list), *save = NULL, *pat;
    int rc = 0;

    if (!copy)
        return -ENOMEM;
    for (pat = strtok_r(copy, ",", &save); pat; pat = strtok_r(NULL, ",", &save)) {
        if (trace_enable(pat, true) == 0) {
            log_err("trace: no trace point matches '%s' (-trace help lists them)",
                    pat);
            rc = -ENOENT;
            goto out;
        }
    }
out:
    free(copy);
    return rc;
}

void trace_list(FILE *out)
{
    for (struct trace_point *tp = __start_xendm_trace; tp < __stop_xendm_trace;
         tp++)
        fprintf(out, "%s\n", tp->name);
}
