/* Tests for the xenstore client (xenstore/xs.c). The path builders and
 * parsers are tested on their own; everything else runs against a real
 * xenstored (Debian's C daemon under the hypervisor shim, see
 * tests/xenstored/), started afresh in a private directory for each test.
 * Without that daemon those tests are skipped, saying why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xenstore.h>

#include "../../lib/log.h"
#include "../../lib/loop.h"
#include "../../xenstore/xs.h"
#include "xenstored_helper.h"

#define MS 1000000ull
#define EVENT_TIMEOUT_MS 5000
/* After the expected events: how long to wait for unexpected ones. */
#define QUIET_MS 150

/* --- fixture: a daemon, a loop, a client and a second, raw libxenstore
 * connection playing the other side (libxl, a guest's backend...) ------- */

struct fx {
    struct xsd xsd;
    struct loop *loop;
    struct xsw *xs;
    struct xs_handle *peer;
    unsigned int reconnected_calls;
    char *log_buf;
    size_t log_len;
    FILE *log;
};

static void on_reconnected(void *opaque)
{
    struct fx *fx = opaque;

    fx->reconnected_calls++;
}

static int fx_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    const char *why;
    struct xsw_config cfg = {
        .dm_domid = 0,
        .domid = 7,
        .retry_min_ns = 10 * MS,
        .retry_max_ns = 40 * MS,
        .liveness_ns = 20 * MS,
        .reconnected = on_reconnected,
    };

    assert_non_null(fx);
    *state = fx;
    why = xsd_locate(&fx->xsd);
    if (why) {
        print_message("SKIPPED: %s\n", why);
        return 0;
    }
    xsd_make_dir(&fx->xsd);
    xsd_start(&fx->xsd);

    fx->log = open_memstream(&fx->log_buf, &fx->log_len);
    assert_non_null(fx->log);
    log_set_stream(fx->log);
    assert_int_equal(loop_create(&fx->loop), 0);
    cfg.opaque = fx;
    assert_int_equal(xsw_open(fx->loop, &cfg, &fx->xs), 0);
    fx->peer = xs_open(0);
    assert_non_null(fx->peer);
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *fx = *state;

    if (fx->peer)
        xs_close(fx->peer);
    xsw_close(fx->xs);
    loop_destroy(fx->loop);
    log_set_stream(NULL);
    if (fx->log)
        fclose(fx->log);
    free(fx->log_buf);
    xsd_stop(&fx->xsd, SIGTERM);
    xsd_remove_dir(&fx->xsd);
    free(fx);
    return 0;
}

/* Every xenstored test starts with this: skips when there is no daemon. */
static struct fx *fx_get(void **state)
{
    struct fx *fx = *state;

    if (!fx->xs)
        skip();
    return fx;
}

static const char *fx_log(struct fx *fx)
{
    fflush(fx->log);
    return fx->log_buf ? fx->log_buf : "";
}

static void peer_write(struct fx *fx, const char *path, const char *value)
{
    assert_true(xs_write(fx->peer, XBT_NULL, path, value, strlen(value)));
}

/* Runs the loop until *counter reaches want (failing after a generous
 * timeout), then a little longer to catch anything extra. */
static void run_until_count(struct fx *fx, const unsigned int *counter,
                            unsigned int want)
{
    uint64_t deadline = loop_now_ns() + EVENT_TIMEOUT_MS * MS;

    while (*counter < want && loop_now_ns() < deadline)
        loop_run_once(fx->loop, 10);
    assert_int_equal(*counter, want);
    deadline = loop_now_ns() + QUIET_MS * MS;
    while (loop_now_ns() < deadline)
        loop_run_once(fx->loop, 10);
    assert_int_equal(*counter, want);
}

static void run_until_connected(struct fx *fx, bool want)
{
    uint64_t deadline = loop_now_ns() + EVENT_TIMEOUT_MS * MS;

    while (xsw_connected(fx->xs) != want && loop_now_ns() < deadline)
        loop_run_once(fx->loop, 10);
    assert_int_equal(xsw_connected(fx->xs), want);
}

struct recorder {
    unsigned int calls;
    char last_path[XSW_PATH_MAX + 1];
    char last_token[64];
    /* Filled by the callback: */
    struct xsw *xs;
    struct xsw_watch *unwatch; /* removed from inside the callback */
    char value[64];
    int read_rc;
};

static void on_event(void *opaque, const char *path, const char *token)
{
    struct recorder *r = opaque;

    r->calls++;
    snprintf(r->last_path, sizeof(r->last_path), "%s", path);
    snprintf(r->last_token, sizeof(r->last_token), "%s", token);
    if (r->xs)
        r->read_rc = xsw_read(r->xs, path, r->value, sizeof(r->value));
    if (r->unwatch) {
        xsw_unwatch(r->xs, r->unwatch);
        r->unwatch = NULL;
    }
}

/* --- path builders and parsers (no daemon needed) ------------------------ */

static void test_path_builders(void **state)
{
    xsw_path_t p;
    char small[8];

    (void)state;
    assert_int_equal(xsw_path(p, sizeof(p), "/local/domain/%u/backend/%s/%u/%u",
                              0u, "vbd", 7u, 768u),
                     (int)strlen("/local/domain/0/backend/vbd/7/768"));
    assert_string_equal(p, "/local/domain/0/backend/vbd/7/768");
    /* Truncation is an error and leaves an empty string, never a prefix. */
    assert_int_equal(xsw_path(small, sizeof(small), "/local/%s", "domain"),
                     -ENAMETOOLONG);
    assert_string_equal(small, "");
    assert_int_equal(xsw_path(small, sizeof(small), "/local/"), 7);
    assert_string_equal(small, "/local/");
}

static void test_dm_paths(void **state)
{
    struct fx *fx = fx_get(state);
    xsw_path_t p;
    char small[31]; /* the root and its NUL, nothing more */
    char big[XSW_PATH_MAX * 2];
    char *longname = malloc(XSW_PATH_MAX);

    assert_int_equal(xsw_dm_path(fx->xs, p, sizeof(p), NULL), 30);
    assert_string_equal(p, "/local/domain/0/device-model/7");
    assert_int_equal(xsw_dm_path(fx->xs, p, sizeof(p), "state"), 36);
    assert_string_equal(p, "/local/domain/0/device-model/7/state");
    assert_int_equal(xsw_dm_path(fx->xs, p, sizeof(p), "logdirty/%s", "cmd"),
                     (int)strlen("/local/domain/0/device-model/7/logdirty/cmd"));
    assert_string_equal(p, "/local/domain/0/device-model/7/logdirty/cmd");
    assert_int_equal(xsw_dom_path(fx->xs, p, sizeof(p), "serial/%u/tty", 1u),
                     (int)strlen("/local/domain/7/serial/1/tty"));
    assert_string_equal(p, "/local/domain/7/serial/1/tty");
    assert_int_equal(xsw_dom_path(fx->xs, p, sizeof(p), NULL), 15);
    assert_string_equal(p, "/local/domain/7");
    assert_int_equal(xsw_dm_home_path(fx->xs, p, sizeof(p), "device-model"),
                     (int)strlen("/local/domain/0/device-model"));
    assert_string_equal(p, "/local/domain/0/device-model");

    /* Truncation is an error, never a shorter path. */
    assert_int_equal(xsw_dm_path(fx->xs, small, sizeof(small), "state"),
                     -ENAMETOOLONG);
    assert_string_equal(small, "");
    assert_int_equal(xsw_dm_path(fx->xs, small, sizeof(small), NULL), 30);
    assert_string_equal(small, "/local/domain/0/device-model/7");
    /* Exactly fitting: 30 + "/state" + NUL = 37 bytes. */
    assert_int_equal(xsw_dm_path(fx->xs, big, 37, "state"), 36);
    assert_string_equal(big, "/local/domain/0/device-model/7/state");
    assert_int_equal(xsw_dm_path(fx->xs, big, 36, "state"), -ENAMETOOLONG);
    /* A suffix may not escape to an absolute path. */
    assert_int_equal(xsw_dom_path(fx->xs, p, sizeof(p), "/etc"), -EINVAL);
    /* Longer than xenstore allows even if the buffer is large. */
    assert_non_null(longname);
    memset(longname, 'a', XSW_PATH_MAX - 1);
    longname[XSW_PATH_MAX - 1] = '\0';
    assert_int_equal(xsw_dom_path(fx->xs, big, sizeof(big), "%s", longname),
                     -ENAMETOOLONG);
    free(longname);
}

static void test_parse_uint(void **state)
{
    uint64_t v = 12345;
    unsigned int domid = 99;

    (void)state;
    assert_int_equal(xsw_parse_uint("0", 10, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(xsw_parse_uint("007", 10, 10, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(xsw_parse_uint("18446744073709551615", 10, UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(xsw_parse_uint("0x1f", 16, 255, &v), 0);
    assert_int_equal(v, 0x1f);
    assert_int_equal(xsw_parse_uint("FF", 16, 255, &v), 0);
    assert_int_equal(v, 255);
    assert_int_equal(xsw_parse_uint("0XaB", 16, 255, &v), 0);
    assert_int_equal(v, 0xab);
    assert_int_equal(xsw_parse_uint("ffffffffffffffff", 16, UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);

    v = 4242;
    /* Everything strtoull would let through with a smile. */
    const char *bad10[] = {"", " 1", "1 ", "+1", "-1", "1a", "0x1", "1\n",
                           "1.0", "\xd9\xa1"};
    for (size_t i = 0; i < sizeof(bad10) / sizeof(bad10[0]); i++)
        assert_int_equal(xsw_parse_uint(bad10[i], 10, UINT64_MAX, &v), -EINVAL);
    const char *bad16[] = {"", "0x", "x1", "0x-1", "g", "0x 1", "1h"};
    for (size_t i = 0; i < sizeof(bad16) / sizeof(bad16[0]); i++)
        assert_int_equal(xsw_parse_uint(bad16[i], 16, UINT64_MAX, &v), -EINVAL);
    assert_int_equal(xsw_parse_uint(NULL, 10, 1, &v), -EINVAL);
    assert_int_equal(xsw_parse_uint("1", 8, 1, &v), -EINVAL);
    assert_int_equal(xsw_parse_uint("11", 10, 10, &v), -ERANGE);
    assert_int_equal(xsw_parse_uint("18446744073709551616", 10, UINT64_MAX, &v),
                     -ERANGE);
    assert_int_equal(xsw_parse_uint("10000000000000000", 16, UINT64_MAX, &v),
                     -ERANGE);
    /* Overflow with junk after it is still junk. */
    assert_int_equal(xsw_parse_uint("99999999999999999999x", 10, UINT64_MAX, &v),
                     -EINVAL);
    assert_int_equal(v, 4242);

    assert_int_equal(xsw_parse_domid("0", &domid), 0);
    assert_int_equal(domid, 0);
    assert_int_equal(xsw_parse_domid("32751", &domid), 0);
    assert_int_equal(domid, 0x7FEF);
    assert_int_equal(xsw_parse_domid("32752", &domid), -ERANGE);
    assert_int_equal(xsw_parse_domid("0x10", &domid), -EINVAL);
    assert_int_equal(domid, 0x7FEF);
}

static void test_path_is_under(void **state)
{
    (void)state;
    assert_true(xsw_path_is_under("/a/b", "/a/b"));
    assert_true(xsw_path_is_under("/a/b", "/a/b/c"));
    assert_false(xsw_path_is_under("/a/b", "/a/bc"));
    assert_false(xsw_path_is_under("/a/b", "/a"));
    assert_true(xsw_path_is_under("/", "/a"));
    assert_true(xsw_path_is_under("@releaseDomain", "@releaseDomain"));
    assert_false(xsw_path_is_under("@releaseDomain", "@releaseDomainX"));
}

/* --- against xenstored --------------------------------------------------- */

static void test_read_write_rm(void **state)
{
    struct fx *fx = fx_get(state);
    char buf[32], **entries = NULL;
    unsigned int count = 99, i;
    bool seen_a = false, seen_b = false;

    assert_int_equal(xsw_write(fx->xs, "/t/a", "hello"), 0);
    assert_int_equal(xsw_printf(fx->xs, "/t/b", "0x%x", 0x1f), 0);
    assert_int_equal(xsw_read(fx->xs, "/t/a", buf, sizeof(buf)), 5);
    assert_string_equal(buf, "hello");
    assert_int_equal(xsw_read(fx->xs, "/t/b", buf, sizeof(buf)), 4);
    assert_string_equal(buf, "0x1f");
    /* The other side sees it too. */
    {
        unsigned int len = 0;
        char *v = xs_read(fx->peer, XBT_NULL, "/t/a", &len);

        assert_non_null(v);
        assert_int_equal(len, 5);
        assert_memory_equal(v, "hello", 5);
        free(v);
    }
    /* An empty value is a value. */
    assert_int_equal(xsw_write(fx->xs, "/t/empty", ""), 0);
    assert_int_equal(xsw_read(fx->xs, "/t/empty", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");

    assert_int_equal(xsw_directory(fx->xs, "/t", &entries, &count), 0);
    assert_int_equal(count, 3);
    for (i = 0; i < count; i++) {
        seen_a |= strcmp(entries[i], "a") == 0;
        seen_b |= strcmp(entries[i], "b") == 0;
    }
    assert_true(seen_a && seen_b);
    free(entries);

    assert_int_equal(xsw_mkdir(fx->xs, "/t/dir"), 0);
    assert_int_equal(xsw_read(fx->xs, "/t/dir", buf, sizeof(buf)), 0);

    assert_int_equal(xsw_rm(fx->xs, "/t"), 0);
    assert_int_equal(xsw_read(fx->xs, "/t/a", buf, sizeof(buf)), -ENOENT);
    assert_string_equal(buf, "");
    assert_int_equal(xsw_directory(fx->xs, "/t", &entries, &count), -ENOENT);
    assert_null(entries);
    assert_int_equal(count, 0);
    /* Removing what is not there is success: the goal is reached. */
    assert_int_equal(xsw_rm(fx->xs, "/t"), 0);
    assert_int_equal(xsw_rm(fx->xs, "/never/was"), 0);
    /* A missing key is normal and not worth a log line. */
    assert_null(strstr(fx_log(fx), "failed"));
}

static void test_read_untrusted_values(void **state)
{
    struct fx *fx = fx_get(state);
    char buf[8];
    uint64_t v = 77;

    /* Fits exactly: 7 characters and the NUL. */
    peer_write(fx, "/u/seven", "1234567");
    assert_int_equal(xsw_read(fx->xs, "/u/seven", buf, sizeof(buf)), 7);
    assert_string_equal(buf, "1234567");
    /* One more does not fit: nothing is returned, not a truncated value. */
    peer_write(fx, "/u/eight", "12345678");
    assert_int_equal(xsw_read(fx->xs, "/u/eight", buf, sizeof(buf)), -E2BIG);
    assert_string_equal(buf, "");
    /* A NUL byte inside would make the C string disagree with the value. */
    assert_true(xs_write(fx->peer, XBT_NULL, "/u/nul", "1\0002", 3));
    assert_int_equal(xsw_read(fx->xs, "/u/nul", buf, sizeof(buf)), -EINVAL);
    assert_string_equal(buf, "");
    assert_non_null(strstr(fx_log(fx), "value of /u/nul contains a NUL byte"));

    /* Numbers. */
    peer_write(fx, "/u/dec", "42");
    assert_int_equal(xsw_read_uint(fx->xs, "/u/dec", 10, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(xsw_read_uint(fx->xs, "/u/dec", 10, 41, &v), -ERANGE);
    peer_write(fx, "/u/hex", "0x2a");
    assert_int_equal(xsw_read_uint(fx->xs, "/u/hex", 16, 0xff, &v), 0);
    assert_int_equal(v, 0x2a);
    assert_int_equal(xsw_read_uint(fx->xs, "/u/hex", 10, 0xff, &v), -EINVAL);
    peer_write(fx, "/u/junk", "42 ");
    v = 5;
    assert_int_equal(xsw_read_uint(fx->xs, "/u/junk", 10, 100, &v), -EINVAL);
    assert_int_equal(xsw_read_uint(fx->xs, "/u/nul", 10, 100, &v), -EINVAL);
    peer_write(fx, "/u/long", "000000000000000000000000000000000000001");
    assert_int_equal(xsw_read_uint(fx->xs, "/u/long", 10, 100, &v), -EINVAL);
    assert_int_equal(xsw_read_uint(fx->xs, "/u/none", 10, 100, &v), -ENOENT);
    assert_int_equal(v, 5);
}

static void test_invalid_requests(void **state)
{
    struct fx *fx = fx_get(state);
    char buf[8];
    char *huge = malloc(XSW_VALUE_MAX + 2);

    assert_int_equal(xsw_read(fx->xs, "relative", buf, sizeof(buf)), -EINVAL);
    assert_int_equal(xsw_read(fx->xs, "", buf, sizeof(buf)), -EINVAL);
    assert_int_equal(xsw_read(fx->xs, "/a", buf, 0), -EINVAL);
    assert_int_equal(xsw_write(fx->xs, NULL, "x"), -EINVAL);
    assert_non_null(huge);
    memset(huge, 'v', XSW_VALUE_MAX + 1);
    huge[XSW_VALUE_MAX + 1] = '\0';
    assert_int_equal(xsw_write(fx->xs, "/h", huge), -E2BIG);
    free(huge);

    /* xenstored refuses a path with a space: EINVAL from a healthy daemon,
     * which must neither kill the connection nor go unlogged. */
    assert_int_equal(xsw_write(fx->xs, "/bad path", "x"), -EINVAL);
    assert_non_null(strstr(fx_log(fx), "write /bad path failed"));
    for (int i = 0; i < 10; i++)
        loop_run_once(fx->loop, 10);
    assert_true(xsw_connected(fx->xs));
    assert_int_equal(xsw_write(fx->xs, "/good", "x"), 0);
    assert_int_equal(xsw_read(fx->xs, "/good", buf, sizeof(buf)), 1);
}

static void test_watch_events(void **state)
{
    struct fx *fx = fx_get(state);
    struct recorder r = {0};
    struct xsw_watch *w = NULL;

    r.xs = fx->xs;
    assert_int_equal(xsw_watch(fx->xs, "/local/domain/0/device-model/7/command",
                               "cmd", on_event, &r, &w),
                     0);
    assert_non_null(w);
    /* xenstored fires a new watch once, for the watched path itself. */
    run_until_count(fx, &r.calls, 1);
    assert_string_equal(r.last_path, "/local/domain/0/device-model/7/command");
    assert_string_equal(r.last_token, "cmd");
    assert_int_equal(r.read_rc, -ENOENT);

    peer_write(fx, "/local/domain/0/device-model/7/command", "pci-ins");
    run_until_count(fx, &r.calls, 2);
    assert_string_equal(r.last_path, "/local/domain/0/device-model/7/command");
    assert_string_equal(r.value, "pci-ins");

    /* Children fire the watch, with their own path. */
    peer_write(fx, "/local/domain/0/device-model/7/command/sub", "x");
    run_until_count(fx, &r.calls, 3);
    assert_string_equal(r.last_path,
                        "/local/domain/0/device-model/7/command/sub");
    /* A sibling does not. */
    peer_write(fx, "/local/domain/0/device-model/7/commandx", "x");
    run_until_count(fx, &r.calls, 3);

    /* Removing the subtree fires once, for the removed node (the callback
     * then reads ENOENT): how a dm-command handler sees its own delete. */
    assert_true(xs_rm(fx->peer, XBT_NULL, "/local/domain/0/device-model/7/command"));
    run_until_count(fx, &r.calls, 4);
    assert_string_equal(r.last_path, "/local/domain/0/device-model/7/command");
    assert_int_equal(r.read_rc, -ENOENT);

    xsw_unwatch(fx->xs, w);
    peer_write(fx, "/local/domain/0/device-model/7/command", "again");
    run_until_count(fx, &r.calls, 4);
}

static void test_watch_tokens_and_duplicates(void **state)
{
    struct fx *fx = fx_get(state);
    struct recorder outer = {0}, inner = {0}, special = {0};

    /* The same token on nested paths: each watch sees its own events once. */
    assert_int_equal(xsw_watch(fx->xs, "/n", "t", on_event, &outer, NULL), 0);
    assert_int_equal(xsw_watch(fx->xs, "/n/b", "t", on_event, &inner, NULL), 0);
    assert_int_equal(xsw_watch(fx->xs, "/n", "t", on_event, &outer, NULL),
                     -EEXIST);
    assert_int_equal(xsw_watch(fx->xs, "/n", "", on_event, &outer, NULL),
                     -EINVAL);
    assert_int_equal(xsw_watch(fx->xs, "n", "t", on_event, &outer, NULL),
                     -EINVAL);
    assert_int_equal(xsw_watch(fx->xs, "/n", "t", NULL, &outer, NULL), -EINVAL);
    run_until_count(fx, &outer.calls, 1);
    assert_int_equal(inner.calls, 1);

    peer_write(fx, "/n/b/c", "1");
    run_until_count(fx, &outer.calls, 2);
    assert_int_equal(inner.calls, 2);
    assert_string_equal(outer.last_path, "/n/b/c");
    assert_string_equal(inner.last_path, "/n/b/c");
    peer_write(fx, "/n/a", "1");
    run_until_count(fx, &outer.calls, 3);
    assert_int_equal(inner.calls, 2);

    /* Special paths: introducing a domain fires @introduceDomain. */
    assert_int_equal(xsw_watch(fx->xs, "@introduceDomain", "intro", on_event,
                               &special, NULL),
                     0);
    run_until_count(fx, &special.calls, 1);
    assert_true(xs_introduce_domain(fx->peer, 9, 0x1234, 5));
    run_until_count(fx, &special.calls, 2);
    assert_string_equal(special.last_path, "@introduceDomain");
    assert_string_equal(special.last_token, "intro");
}

static void test_unwatch_from_callback_and_queued(void **state)
{
    struct fx *fx = fx_get(state);
    struct recorder self = {0}, other = {0}, queued = {0};
    struct xsw_watch *w_self = NULL, *w_other = NULL, *w_queued = NULL;

    assert_int_equal(xsw_watch(fx->xs, "/s", "self", on_event, &self, &w_self), 0);
    assert_int_equal(xsw_watch(fx->xs, "/o", "other", on_event, &other, &w_other),
                     0);
    run_until_count(fx, &self.calls, 1);
    run_until_count(fx, &other.calls, 1);

    /* A callback removes itself and another watch. */
    self.xs = fx->xs;
    self.unwatch = w_self;
    peer_write(fx, "/s", "1");
    run_until_count(fx, &self.calls, 2);
    peer_write(fx, "/s", "2");
    run_until_count(fx, &self.calls, 2);

    /* A callback removes another watch (here on its first, initial event). */
    struct recorder trigger = {.xs = fx->xs, .unwatch = w_other};
    assert_int_equal(xsw_watch(fx->xs, "/trig", "trig", on_event, &trigger, NULL),
                     0);
    run_until_count(fx, &trigger.calls, 1);
    peer_write(fx, "/o", "2");
    run_until_count(fx, &other.calls, 1);

    /* Events already queued in libxenstore for a removed watch are dropped. */
    assert_int_equal(xsw_watch(fx->xs, "/q", "q", on_event, &queued, &w_queued),
                     0);
    run_until_count(fx, &queued.calls, 1);
    peer_write(fx, "/q", "1");
    peer_write(fx, "/q", "2");
    /* Give libxenstore's reader thread time to queue both. */
    xsd_sleep_ms(50);
    xsw_unwatch(fx->xs, w_queued);
    run_until_count(fx, &queued.calls, 1);
}

static void test_several_clients(void **state)
{
    struct fx *fx = fx_get(state);
    struct xsw_config cfg = {.dm_domid = 0, .domid = 8};
    struct xsw *second = NULL;
    struct recorder r1 = {0}, r2 = {0};
    char buf[16];
    xsw_path_t p;

    assert_int_equal(xsw_open(fx->loop, &cfg, &second), 0);
    assert_int_equal(xsw_dm_path(second, p, sizeof(p), "state"), 36);
    assert_string_equal(p, "/local/domain/0/device-model/8/state");
    assert_int_equal(xsw_watch(fx->xs, "/shared", "one", on_event, &r1, NULL), 0);
    assert_int_equal(xsw_watch(second, "/shared", "two", on_event, &r2, NULL), 0);
    run_until_count(fx, &r1.calls, 1);
    run_until_count(fx, &r2.calls, 1);

    assert_int_equal(xsw_write(second, "/shared/k", "from-second"), 0);
    run_until_count(fx, &r1.calls, 2);
    assert_int_equal(r2.calls, 2);
    assert_int_equal(xsw_read(fx->xs, "/shared/k", buf, sizeof(buf)), 11);
    assert_string_equal(buf, "from-second");
    assert_string_equal(r1.last_token, "one");
    assert_string_equal(r2.last_token, "two");
    xsw_close(second);

    /* Closing one client leaves the other's watches alone. */
    peer_write(fx, "/shared/k", "x");
    run_until_count(fx, &r1.calls, 3);
    assert_int_equal(r2.calls, 2);
}

static void test_restart_with_watches(void **state)
{
    struct fx *fx = fx_get(state);
    struct recorder r = {0};
    char buf[16];

    r.xs = fx->xs;
    assert_int_equal(xsw_watch(fx->xs, "/local/domain/0/device-model/7/command",
                               "cmd", on_event, &r, NULL),
                     0);
    run_until_count(fx, &r.calls, 1);
    assert_int_equal(xsw_write(fx->xs, "/before", "1"), 0);

    /* xenstored dies (SIGKILL: no clean-up, the socket file stays). */
    xs_close(fx->peer);
    fx->peer = NULL;
    xsd_stop(&fx->xsd, SIGKILL);
    /* Noticed without any request of ours (liveness check). */
    run_until_connected(fx, false);
    assert_non_null(strstr(fx_log(fx), "connection to xenstored lost"));
    assert_int_equal(xsw_write(fx->xs, "/during", "1"), -ENOTCONN);
    assert_int_equal(xsw_read(fx->xs, "/before", buf, sizeof(buf)), -ENOTCONN);

    /* Nobody listening for a while: retries keep failing, with backoff. */
    {
        uint64_t until = loop_now_ns() + 200 * MS;

        while (loop_now_ns() < until)
            loop_run_once(fx->loop, 10);
    }
    assert_false(xsw_connected(fx->xs));
    assert_non_null(strstr(fx_log(fx), "xenstored still unreachable"));
    /* Watches may be added and removed while disconnected. */
    struct recorder late = {0};
    assert_int_equal(xsw_watch(fx->xs, "/late", "late", on_event, &late, NULL), 0);

    xsd_start(&fx->xsd);
    run_until_connected(fx, true);
    assert_int_equal(xsw_reconnects(fx->xs), 1);
    assert_int_equal(fx->reconnected_calls, 1);
    assert_non_null(strstr(fx_log(fx), "reconnected to xenstored"));
    /* Re-registration fires every watch once. */
    run_until_count(fx, &r.calls, 2);
    run_until_count(fx, &late.calls, 1);

    /* The new daemon starts empty; the watches work on it. */
    fx->peer = xs_open(0);
    assert_non_null(fx->peer);
    assert_int_equal(xsw_read(fx->xs, "/before", buf, sizeof(buf)), -ENOENT);
    peer_write(fx, "/local/domain/0/device-model/7/command", "save");
    run_until_count(fx, &r.calls, 3);
    assert_string_equal(r.value, "save");
    peer_write(fx, "/late", "x");
    run_until_count(fx, &late.calls, 2);
    assert_int_equal(xsw_write(fx->xs, "/after", "1"), 0);

    /* And again: a second restart is handled the same way. */
    xs_close(fx->peer);
    fx->peer = NULL;
    xsd_stop(&fx->xsd, SIGTERM);
    run_until_connected(fx, false);
    xsd_start(&fx->xsd);
    run_until_connected(fx, true);
    assert_int_equal(xsw_reconnects(fx->xs), 2);
    run_until_count(fx, &r.calls, 4);
    fx->peer = xs_open(0);
    assert_non_null(fx->peer);
}

static void test_restart_without_watches(void **state)
{
    struct fx *fx = fx_get(state);
    char buf[8];

    /* Without a watch libxenstore has no reader thread and nothing notices
     * the loss until a request fails: that request reports it. */
    assert_int_equal(xsw_write(fx->xs, "/x", "1"), 0);
    xs_close(fx->peer);
    fx->peer = NULL;
    xsd_stop(&fx->xsd, SIGKILL);
    assert_int_equal(xsw_read(fx->xs, "/x", buf, sizeof(buf)), -ENOTCONN);
    assert_false(xsw_connected(fx->xs));
    xsd_start(&fx->xsd);
    run_until_connected(fx, true);
    assert_int_equal(xsw_write(fx->xs, "/x", "2"), 0);
    assert_int_equal(xsw_read(fx->xs, "/x", buf, sizeof(buf)), 1);
    assert_string_equal(buf, "2");
    assert_int_equal(fx->reconnected_calls, 1);
}

static void test_open_without_daemon(void **state)
{
    struct fx *fx = fx_get(state);
    struct xsw_config cfg = {.domid = 1};
    struct xsw *xs = (struct xsw *)0x1;
    char missing[128];

    snprintf(missing, sizeof(missing), "%s/nothing-here", fx->xsd.dir);
    setenv("XENSTORED_PATH", missing, 1);
    assert_int_equal(xsw_open(fx->loop, &cfg, &xs), -ENOENT);
    assert_ptr_equal(xs, (struct xsw *)0x1);
    setenv("XENSTORED_PATH", fx->xsd.socket, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_builders),
        cmocka_unit_test(test_parse_uint),
        cmocka_unit_test(test_path_is_under),
        cmocka_unit_test_setup_teardown(test_dm_paths, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_read_write_rm, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_read_untrusted_values, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_requests, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_watch_events, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_watch_tokens_and_duplicates,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_unwatch_from_callback_and_queued,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_several_clients, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_restart_with_watches, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_restart_without_watches, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_open_without_daemon, fx_setup,
                                        fx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
