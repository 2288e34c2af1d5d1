/* The daemon's log captured in memory, for unit tests that assert what was
 * (or was not) logged. Linked into every unit test binary. */
#ifndef XENDM_TESTS_LOG_CAPTURE_H
#define XENDM_TESTS_LOG_CAPTURE_H

#include <stddef.h>
#include <stdio.h>

struct log_capture {
    FILE *stream;
    char *text;
    size_t len;
    const char *trace; /* the trace point enabled while capturing, if any */
};

/* Sends the log to memory; with trace non-NULL also enables that trace
 * point (which must exist). */
void log_capture_begin(struct log_capture *c, const char *trace);
/* Restores the default log stream (and disables the trace point); returns
 * everything logged since begin, valid until log_capture_free. */
const char *log_capture_end(struct log_capture *c);
void log_capture_free(struct log_capture *c);

#endif
