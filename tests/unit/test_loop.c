/* Unit tests for the event loop (lib/loop.c) and for rate limiting and
 * trace-point matching (lib/log.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../lib/loop.h"

#define MS 1000000ull

static int loop_setup(void **state)
{
    struct loop *loop = NULL;

    assert_int_equal(loop_create(&loop), 0);
    *state = loop;
    return 0;
}

static int loop_teardown(void **state)
{
    loop_destroy(*state);
    return 0;
}

/* --- fd watches ---------------------------------------------------------- */

struct pipe_watch {
    int fds[2];
    struct loop_watch *w;
    unsigned calls;
    uint32_t events;
    char buf[16];
    ssize_t got;
    /* Watches to delete when called (may include this one). */
    struct pipe_watch *del[2];
    bool drain;
};

static void on_pipe(void *opaque, uint32_t events)
{
    struct pipe_watch *p = opaque;

    p->calls++;
    p->events = events;
    if (p->drain && (events & EPOLLIN))
        p->got = read(p->fds[0], p->buf, sizeof(p->buf));
    for (int i = 0; i < 2; i++) {
        if (p->del[i] && p->del[i]->w) {
            loop_del_fd(p->del[i]->w);
            p->del[i]->w = NULL;
        }
    }
}

static void pipe_open(struct pipe_watch *p)
{
    memset(p, 0, sizeof(*p));
    assert_int_equal(pipe(p->fds), 0);
    p->drain = true;
}

static void pipe_close(struct pipe_watch *p)
{
    if (p->w)
        loop_del_fd(p->w);
    p->w = NULL;
    if (p->fds[0] >= 0)
        close(p->fds[0]);
    if (p->fds[1] >= 0)
        close(p->fds[1]);
}

static void test_fd_watch(void **state)
{
    struct loop *loop = *state;
    struct pipe_watch p;

    pipe_open(&p);
    assert_int_equal(loop_add_fd(loop, p.fds[0], EPOLLIN, on_pipe, &p, &p.w),
                     0);
    /* Nothing to read: no call. */
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(p.calls, 0);

    assert_int_equal(write(p.fds[1], "hi!", 3), 3);
    assert_int_equal(loop_run_once(loop, 1000), 0);
    assert_int_equal(p.calls, 1);
    assert_true(p.events & EPOLLIN);
    assert_int_equal(p.got, 3);
    assert_memory_equal(p.buf, "hi!", 3);
    /* Level-triggered and drained: quiet again. */
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(p.calls, 1);

    /* Hang-up is reported without being asked for. */
    close(p.fds[1]);
    p.fds[1] = -1;
    p.drain = false;
    assert_int_equal(loop_run_once(loop, 1000), 0);
    assert_int_equal(p.calls, 1 + 1);
    assert_true(p.events & EPOLLHUP);
    pipe_close(&p);
}

static void test_fd_mod_and_errors(void **state)
{
    struct loop *loop = *state;
    struct pipe_watch p;
    struct loop_watch *w = NULL;

    pipe_open(&p);
    p.drain = false;
    /* Watch the write end: not interested in anything at first. */
    assert_int_equal(loop_add_fd(loop, p.fds[1], 0, on_pipe, &p, &p.w), 0);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(p.calls, 0);
    assert_int_equal(loop_mod_fd(p.w, EPOLLOUT), 0);
    assert_int_equal(loop_run_once(loop, 1000), 0);
    assert_int_equal(p.calls, 1);
    assert_true(p.events & EPOLLOUT);
    assert_int_equal(loop_mod_fd(p.w, 0), 0);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(p.calls, 1);

    /* The same fd twice, and a closed fd, are refused. */
    assert_int_equal(loop_add_fd(loop, p.fds[1], EPOLLOUT, on_pipe, &p, &w),
                     -EEXIST);
    assert_null(w);
    assert_int_equal(loop_add_fd(loop, 1000, EPOLLIN, on_pipe, &p, &w), -EBADF);
    assert_null(w);
    pipe_close(&p);
}

static void test_del_own_watch_in_callback(void **state)
{
    struct loop *loop = *state;
    struct pipe_watch p;

    pipe_open(&p);
    p.drain = false; /* stays readable: would fire every iteration */
    p.del[0] = &p;
    assert_int_equal(loop_add_fd(loop, p.fds[0], EPOLLIN, on_pipe, &p, &p.w),
                     0);
    assert_int_equal(write(p.fds[1], "x", 1), 1);
    assert_int_equal(loop_run_once(loop, 1000), 0);
    assert_int_equal(p.calls, 1);
    assert_null(p.w);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(p.calls, 1);
    /* The fd itself is left open for its owner. */
    assert_int_equal(read(p.fds[0], p.buf, 1), 1);
    pipe_close(&p);
}

static void test_del_other_watch_in_same_batch(void **state)
{
    struct loop *loop = *state;
    struct pipe_watch a, b;

    pipe_open(&a);
    pipe_open(&b);
    a.drain = b.drain = false;
    /* Each deletes the other and itself: whichever runs first must be the
     * only one to run, whatever order epoll reports them in. */
    a.del[0] = &b;
    a.del[1] = &a;
    b.del[0] = &a;
    b.del[1] = &b;
    assert_int_equal(loop_add_fd(loop, a.fds[0], EPOLLIN, on_pipe, &a, &a.w),
                     0);
    assert_int_equal(loop_add_fd(loop, b.fds[0], EPOLLIN, on_pipe, &b, &b.w),
                     0);
    assert_int_equal(write(a.fds[1], "a", 1), 1);
    assert_int_equal(write(b.fds[1], "b", 1), 1);
    /* Both ready before we look, so they arrive in one epoll batch. */
    assert_int_equal(loop_run_once(loop, 1000), 0);
    assert_int_equal(a.calls + b.calls, 1);
    assert_null(a.w);
    assert_null(b.w);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(a.calls + b.calls, 1);
    pipe_close(&a);
    pipe_close(&b);
}

static void test_del_then_new_watch_same_fd(void **state)
{
    struct loop *loop = *state;
    struct pipe_watch a, b;

    pipe_open(&a);
    a.drain = false;
    a.del[0] = &a;
    b = a;
    b.del[0] = NULL;
    b.drain = true;
    assert_int_equal(loop_add_fd(loop, a.fds[0], EPOLLIN, on_pipe, &a, &a.w),
                     0);
    assert_int_equal(write(a.fds[1], "z", 1), 1);
    assert_int_equal(loop_run_once(loop, 1000), 0);
    assert_int_equal(a.calls, 1);
    /* The fd is free for a new watch once the old one is deleted. */
    assert_int_equal(loop_add_fd(loop, a.fds[0], EPOLLIN, on_pipe, &b, &b.w),
                     0);
    assert_int_equal(loop_run_once(loop, 1000), 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.got, 1);
    loop_del_fd(b.w);
    loop_del_fd(b.w); /* twice before the loop frees it: harmless */
    b.w = NULL;
    pipe_close(&a);
}

/* --- timers -------------------------------------------------------------- */

struct timer_rec {
    struct loop_timer t;
    int id;
    int *order;
    unsigned *n;
    uint64_t armed_at, delay, fired_at;
    unsigned fired;
    struct loop_timer *cancel; /* cancelled from inside the callback */
    unsigned rearm;            /* re-arm itself this many times */
};

static void on_timer(void *opaque)
{
    struct timer_rec *r = opaque;

    r->fired++;
    r->fired_at = loop_now_ns();
    r->order[(*r->n)++] = r->id;
    if (r->cancel)
        loop_timer_cancel(r->cancel);
    if (r->rearm) {
        r->rearm--;
        loop_timer_arm(&r->t, r->delay);
    }
}

static void timer_rec_init(struct loop *loop, struct timer_rec *r, int id,
                           int *order, unsigned *n)
{
    memset(r, 0, sizeof(*r));
    r->id = id;
    r->order = order;
    r->n = n;
    loop_timer_init(loop, &r->t, on_timer, r);
}

static void arm(struct timer_rec *r, uint64_t delay)
{
    r->delay = delay;
    r->armed_at = loop_now_ns();
    loop_timer_arm(&r->t, delay);
}

static void run_until(struct loop *loop, const unsigned *n, unsigned want)
{
    uint64_t give_up = loop_now_ns() + 2000 * MS;

    while (*n < want && loop_now_ns() < give_up)
        assert_int_equal(loop_run_once(loop, 100), 0);
}

static void test_timers_order(void **state)
{
    struct loop *loop = *state;
    struct timer_rec r[4];
    int order[8] = {0};
    unsigned n = 0;

    for (int i = 0; i < 4; i++)
        timer_rec_init(loop, &r[i], i + 1, order, &n);
    arm(&r[0], 30 * MS);
    arm(&r[1], 10 * MS);
    arm(&r[2], 20 * MS);
    arm(&r[3], 15 * MS);
    loop_timer_cancel(&r[3].t);
    assert_false(r[3].t.armed);
    assert_true(r[0].t.armed);

    run_until(loop, &n, 3);
    assert_int_equal(n, 3);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 3);
    assert_int_equal(order[2], 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].fired, 1);
        assert_false(r[i].t.armed);
        /* Never early. */
        assert_true(r[i].fired_at - r[i].armed_at >= r[i].delay);
    }
    /* The cancelled one never fires. */
    assert_int_equal(loop_run_once(loop, 30), 0);
    assert_int_equal(r[3].fired, 0);
    assert_int_equal(n, 3);
    /* Cancelling twice, or an unarmed timer, is harmless. */
    loop_timer_cancel(&r[3].t);
    loop_timer_cancel(&r[0].t);
}

static void test_timer_rearm_moves_it(void **state)
{
    struct loop *loop = *state;
    struct timer_rec a, b;
    int order[4] = {0};
    unsigned n = 0;

    timer_rec_init(loop, &a, 1, order, &n);
    timer_rec_init(loop, &b, 2, order, &n);
    arm(&a, 5 * MS);
    arm(&b, 20 * MS);
    arm(&a, 40 * MS); /* pushed back behind b */
    run_until(loop, &n, 2);
    assert_int_equal(n, 2);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 1);
    assert_int_equal(a.fired, 1);
    assert_true(a.fired_at - a.armed_at >= 40 * MS);
}

static void test_timer_cancel_from_callback(void **state)
{
    struct loop *loop = *state;
    struct timer_rec a, b, c;
    int order[8] = {0};
    unsigned n = 0;

    timer_rec_init(loop, &a, 1, order, &n);
    timer_rec_init(loop, &b, 2, order, &n);
    timer_rec_init(loop, &c, 3, order, &n);
    /* a and b are both due by the time the loop looks; a cancels b. */
    a.cancel = &b.t;
    arm(&a, 1 * MS);
    arm(&b, 2 * MS);
    /* c re-arms itself twice: three firings in all. */
    c.rearm = 2;
    arm(&c, 3 * MS);
    usleep(5000);
    run_until(loop, &n, 4);
    assert_int_equal(a.fired, 1);
    assert_int_equal(b.fired, 0);
    assert_int_equal(c.fired, 3);
    assert_int_equal(n, 4);
    assert_false(c.t.armed);
}

static void on_quit_timer(void *opaque)
{
    loop_quit(opaque, 42);
}

static void test_loop_run_quit(void **state)
{
    struct loop *loop = *state;
    struct loop_timer t;

    assert_false(loop_quitting(loop));
    loop_timer_init(loop, &t, on_quit_timer, loop);
    loop_timer_arm(&t, 5 * MS);
    assert_int_equal(loop_run(loop), 42);
    assert_true(loop_quitting(loop));
}

/* --- deferred work ------------------------------------------------------- */

struct work_rec {
    struct loop_work w;
    struct loop *loop;
    int id;
    int *order;
    unsigned *n;
    unsigned ran;
    struct work_rec *cancel;  /* cancelled from inside fn */
    struct work_rec *requeue; /* queued from inside fn */
};

static void on_work(void *opaque)
{
    struct work_rec *r = opaque;

    r->ran++;
    r->order[(*r->n)++] = r->id;
    if (r->cancel)
        loop_work_cancel(r->loop, &r->cancel->w);
    if (r->requeue)
        loop_defer(r->loop, &r->requeue->w);
}

static void work_rec_init(struct loop *loop, struct work_rec *r, int id,
                          int *order, unsigned *n)
{
    memset(r, 0, sizeof(*r));
    r->loop = loop;
    r->id = id;
    r->order = order;
    r->n = n;
    loop_work_init(&r->w, on_work, r);
}

static void test_defer_runs_once(void **state)
{
    struct loop *loop = *state;
    struct work_rec a, b;
    int order[8] = {0};
    unsigned n = 0;

    work_rec_init(loop, &a, 1, order, &n);
    work_rec_init(loop, &b, 2, order, &n);
    loop_defer(loop, &a.w);
    loop_defer(loop, &b.w);
    loop_defer(loop, &a.w); /* already queued: no-op */
    assert_true(a.w.queued);
    /* Pending work means the loop does not sleep. */
    uint64_t t0 = loop_now_ns();
    assert_int_equal(loop_run_once(loop, 1000), 0);
    assert_true(loop_now_ns() - t0 < 500 * MS);
    assert_int_equal(a.ran, 1);
    assert_int_equal(b.ran, 1);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 2);
    assert_false(a.w.queued);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(n, 2);
    /* Queued again after running: runs again. */
    loop_defer(loop, &a.w);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(a.ran, 2);
}

static void test_defer_from_callback_runs_next_round(void **state)
{
    struct loop *loop = *state;
    struct work_rec a;
    int order[8] = {0};
    unsigned n = 0;

    work_rec_init(loop, &a, 1, order, &n);
    a.requeue = &a; /* re-queues itself every time */
    loop_defer(loop, &a.w);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(a.ran, 1);
    assert_true(a.w.queued);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(a.ran, 2);
    a.requeue = NULL;
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(a.ran, 3);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(a.ran, 3);
}

static void test_work_cancel(void **state)
{
    struct loop *loop = *state;
    struct work_rec a, b, c;
    int order[8] = {0};
    unsigned n = 0;

    work_rec_init(loop, &a, 1, order, &n);
    work_rec_init(loop, &b, 2, order, &n);
    work_rec_init(loop, &c, 3, order, &n);
    loop_defer(loop, &a.w);
    loop_defer(loop, &b.w);
    loop_defer(loop, &c.w);
    loop_work_cancel(loop, &c.w); /* the tail */
    loop_work_cancel(loop, &a.w); /* the head */
    loop_work_cancel(loop, &a.w); /* not queued: no-op */
    assert_false(a.w.queued);
    /* Queuing after cancelling the tail must not lose the new item. */
    loop_defer(loop, &a.w);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(n, 2);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 1);
    assert_int_equal(c.ran, 0);
}

static void test_work_cancel_later_in_same_batch(void **state)
{
    struct loop *loop = *state;
    struct work_rec a, b, c;
    int order[8] = {0};
    unsigned n = 0;

    work_rec_init(loop, &a, 1, order, &n);
    work_rec_init(loop, &b, 2, order, &n);
    work_rec_init(loop, &c, 3, order, &n);
    a.cancel = &b;
    loop_defer(loop, &a.w);
    loop_defer(loop, &b.w);
    loop_defer(loop, &c.w);
    assert_int_equal(loop_run_once(loop, 0), 0);
    /* b was cancelled before its turn came: it must not run. */
    assert_int_equal(b.ran, 0);
    assert_false(b.w.queued);
    assert_int_equal(a.ran, 1);
    assert_int_equal(c.ran, 1);
    assert_int_equal(n, 2);
}

static void test_work_cancel_and_requeue_in_same_batch(void **state)
{
    struct loop *loop = *state;
    struct work_rec a, b, c;
    int order[8] = {0};
    unsigned n = 0;

    work_rec_init(loop, &a, 1, order, &n);
    work_rec_init(loop, &b, 2, order, &n);
    work_rec_init(loop, &c, 3, order, &n);
    /* a cancels b and queues it again: b moves to the next round, and c,
     * behind it in this round, must still run now. */
    a.cancel = &b;
    a.requeue = &b;
    loop_defer(loop, &a.w);
    loop_defer(loop, &b.w);
    loop_defer(loop, &c.w);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(a.ran, 1);
    assert_int_equal(b.ran, 0);
    assert_int_equal(c.ran, 1);
    assert_false(c.w.queued);
    assert_true(b.w.queued);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(b.ran, 1);
    assert_int_equal(n, 3);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 3);
    assert_int_equal(order[2], 2);
    /* c can be queued again: it did not get stuck as "queued". */
    loop_defer(loop, &c.w);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(c.ran, 2);
}

/* --- rate limiting ------------------------------------------------------- */

static void test_ratelimit_burst_and_refill(void **state)
{
    struct ratelimit rl = {0};
    unsigned suppressed = 99;

    for (int i = 0; i < RATELIMIT_BURST; i++) {
        assert_true(ratelimit_allow(&rl, &suppressed));
        assert_int_equal(suppressed, 0);
    }
    for (int i = 0; i < 7; i++) {
        assert_false(ratelimit_allow(&rl, &suppressed));
        assert_int_equal(suppressed, 0);
    }
    assert_int_equal(rl.suppressed, 7);

    /* One interval later: exactly one more, which reports the 7. */
    rl.last_refill_ns -= RATELIMIT_INTERVAL_MS * MS;
    assert_true(ratelimit_allow(&rl, &suppressed));
    assert_int_equal(suppressed, 7);
    assert_false(ratelimit_allow(&rl, &suppressed));
    assert_int_equal(rl.suppressed, 1);

    /* A long quiet spell refills up to the burst, no further. */
    rl.last_refill_ns -= 100 * RATELIMIT_INTERVAL_MS * MS;
    assert_true(ratelimit_allow(&rl, &suppressed));
    assert_int_equal(suppressed, 1);
    for (int i = 1; i < RATELIMIT_BURST; i++) {
        assert_true(ratelimit_allow(&rl, &suppressed));
        assert_int_equal(suppressed, 0);
    }
    assert_false(ratelimit_allow(&rl, &suppressed));
}

static void test_ratelimit_real_time(void **state)
{
    struct ratelimit rl = {0};
    unsigned suppressed;
    struct timespec ts = {.tv_sec = RATELIMIT_INTERVAL_MS / 1000,
                          .tv_nsec = (RATELIMIT_INTERVAL_MS % 1000) * 1000000L +
                                     20000000L};

    for (int i = 0; i < RATELIMIT_BURST; i++)
        assert_true(ratelimit_allow(&rl, &suppressed));
    assert_false(ratelimit_allow(&rl, &suppressed));
    assert_false(ratelimit_allow(&rl, &suppressed));
    nanosleep(&ts, NULL);
    assert_true(ratelimit_allow(&rl, &suppressed));
    assert_int_equal(suppressed, 2);
    assert_false(ratelimit_allow(&rl, &suppressed));
}

static void test_log_ratelimited_output(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    unsigned lines = 0;

    assert_non_null(mem);
    log_set_stream(mem);
    for (int i = 0; i < RATELIMIT_BURST + 5; i++)
        log_ratelimited(LOG_WARN, "guest poked port %d", i);
    log_set_stream(NULL);
    fclose(mem);
    for (char *p = text; (p = strchr(p, '\n')); p++)
        lines++;
    assert_int_equal(lines, RATELIMIT_BURST);
    assert_non_null(strstr(text, "xen-dm warning: guest poked port 0\n"));
    assert_non_null(strstr(text, "guest poked port 9\n"));
    assert_null(strstr(text, "guest poked port 10"));
    free(text);
}

/* --- trace points -------------------------------------------------------- */

TRACE_POINT(tp_alpha, "unittest_alpha");
TRACE_POINT(tp_beta, "unittest_beta");
TRACE_POINT(tp_beta_two, "unittest_beta_two");

static void test_trace_enable_glob(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem;

    assert_int_equal(trace_enable("unittest_*", false), 3);
    assert_false(tp_alpha.enabled);
    assert_int_equal(trace_enable("unittest_beta*", true), 2);
    assert_false(tp_alpha.enabled);
    assert_true(tp_beta.enabled);
    assert_true(tp_beta_two.enabled);
    assert_int_equal(trace_enable("unittest_?lpha", true), 1);
    assert_true(tp_alpha.enabled);
    assert_int_equal(trace_enable("unittest_beta", false), 1);
    assert_false(tp_beta.enabled);
    assert_true(tp_beta_two.enabled);
    assert_int_equal(trace_enable("unittest_[ab]*", false), 3);
    assert_int_equal(trace_enable("nothing_like_this*", true), 0);
    assert_int_equal(trace_enable("unittest", true), 0);
    /* The log's own point is in every binary. */
    assert_true(trace_enable("*", false) >= 4);

    /* Lists: each pattern must match something. */
    mem = open_memstream(&text, &len);
    assert_non_null(mem);
    log_set_stream(mem);
    assert_int_equal(trace_enable_list("unittest_alpha,unittest_beta_*"), 0);
    assert_true(tp_alpha.enabled);
    assert_true(tp_beta_two.enabled);
    assert_false(tp_beta.enabled);
    assert_int_equal(trace_enable_list("unittest_beta,nomatch"), -ENOENT);
    assert_true(tp_beta.enabled); /* applied up to the bad one */
    trace(tp_alpha, "value %d", 7);
    trace(tp_beta_two, "quiet? %s", "no");
    trace_enable("unittest_beta_two", false);
    trace(tp_beta_two, "this one is off");
    log_set_stream(NULL);
    fclose(mem);
    assert_non_null(strstr(text, "'nomatch'"));
    assert_non_null(strstr(text, "trace unittest_alpha: value 7\n"));
    assert_non_null(strstr(text, "trace unittest_beta_two: quiet? no\n"));
    assert_null(strstr(text, "this one is off"));
    free(text);
    trace_enable("*", false);

    /* trace_list names every point. */
    text = NULL;
    mem = open_memstream(&text, &len);
    assert_non_null(mem);
    trace_list(mem);
    fclose(mem);
    assert_non_null(strstr(text, "unittest_alpha\n"));
    assert_non_null(strstr(text, "unittest_beta_two\n"));
    assert_non_null(strstr(text, "trace_enable\n"));
    free(text);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, loop_setup, loop_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_fd_watch),
        T(test_fd_mod_and_errors),
        T(test_del_own_watch_in_callback),
        T(test_del_other_watch_in_same_batch),
        T(test_del_then_new_watch_same_fd),
        T(test_timers_order),
        T(test_timer_rearm_moves_it),
        T(test_timer_cancel_from_callback),
        T(test_loop_run_quit),
        T(test_defer_runs_once),
        T(test_defer_from_callback_runs_next_round),
        T(test_work_cancel),
        T(test_work_cancel_later_in_same_batch),
        T(test_work_cancel_and_requeue_in_same_batch),
        cmocka_unit_test(test_ratelimit_burst_and_refill),
        cmocka_unit_test(test_ratelimit_real_time),
        cmocka_unit_test(test_log_ratelimited_output),
        cmocka_unit_test(test_trace_enable_glob),
    };

    return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
