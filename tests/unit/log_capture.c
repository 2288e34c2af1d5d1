#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../lib/log.h"
#include "log_capture.h"

void log_capture_begin(struct log_capture *c, const char *trace)
{
    *c = (struct log_capture){.trace = trace};
    c->stream = open_memstream(&c->text, &c->len);
    assert_non_null(c->stream);
    log_set_stream(c->stream);
    if (trace)
        assert_int_equal(trace_enable(trace, true), 1);
}

const char *log_capture_end(struct log_capture *c)
{
    if (c->trace)
        trace_enable(c->trace, false);
    log_set_stream(NULL);
    fclose(c->stream);
    c->stream = NULL;
    return c->text;
}

void log_capture_free(struct log_capture *c)
{
    free(c->text);
    c->text = NULL;
}
