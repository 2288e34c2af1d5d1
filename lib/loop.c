#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct loop_watch {
    struct loop *loop;
    int fd;
    loop_fd_fn fn;
    void *opaque;
    bool deleted;
    struct loop_watch *next_dead;
};

struct loop {
    int epfd;
    bool quit;
    int exit_code;
    struct loop_timer *timers; /* sorted by deadline */
    struct loop_work *work_head, *work_tail;
    /* The round run_deferred() is working through: still "queued", so
     * loop_work_cancel() must be able to take items out of it. */
    struct loop_work *work_running;
    struct loop_watch *dead; /* freed at the end of an iteration */
};

uint64_t loop_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int loop_create(struct loop **out)
{
    struct loop *loop = calloc(1, sizeof(*loop));
    int rc;

    if (!loop)
        return -ENOMEM;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        rc = -errno;
        free(loop);
        return rc;
    }
    *out = loop;
    return 0;
}

static void free_dead_watches(struct loop *loop)
{
    while (loop->dead) {
        struct loop_watch *w = loop->dead;

        loop->dead = w->next_dead;
        free(w);
    }
}

void loop_destroy(struct loop *loop)
{
    if (!loop)
        return;
    free_dead_watches(loop);
    close(loop->epfd);
    free(loop);
}

int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn fn,
                void *opaque, struct loop_watch **out)
{
    struct loop_watch *w = calloc(1, sizeof(*w));
    struct epoll_event ev = {.events = events, .data.ptr = w};

    if (!w)
        return -ENOMEM;
    w->loop = loop;
    w->fd = fd;
    w->fn = fn;
    w->opaque = opaque;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int rc = -errno;

        free(w);
        return rc;
    }
    if (out)
        *out = w;
    return 0;
}

int loop_mod_fd(struct loop_watch *w, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};

    if (epoll_ctl(w->loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
        return -errno;
    return 0;
}

void loop_del_fd(struct loop_watch *w)
{
    if (!w || w->deleted)
        return;
    epoll_ctl(w->loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    /* The same epoll batch may still hold a pointer to w: free it later. */
    w->deleted = true;
    w->next_dead = w->loop->dead;
    w->loop->dead = w;
}

void loop_timer_init(struct loop *loop, struct loop_timer *t, loop_fn fn,
                     void *opaque)
{
    *t = (struct loop_timer){.loop = loop, .fn = fn, .opaque = opaque};
}

void loop_timer_cancel(struct loop_timer *t)
{
    struct loop_timer **pp;

    if (!t->armed)
        return;
    for (pp = &t->loop->timers; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    t->armed = false;
}

void loop_timer_arm(struct loop_timer *t, uint64_t delay_ns)
{
    struct loop_timer **pp;

    loop_timer_cancel(t);
    t->deadline_ns = loop_now_ns() + delay_ns;
    for (pp = &t->loop->timers; *pp && (*pp)->deadline_ns <= t->deadline_ns;
         pp = &(*pp)->next)
        ;
    t->next = *pp;
    *pp = t;
    t->armed = true;
}

void loop_work_init(struct loop_work *w, loop_fn fn, void *opaque)
{
    *w = (struct loop_work){.fn = fn, .opaque = opaque};
}

void loop_defer(struct loop *loop, struct loop_work *w)
{
    if (w->queued)
        return;
    w->queued = true;
    w->next = NULL;
    if (loop->work_tail)
        loop->work_tail->next = w;
    else
        loop->work_head = w;
    loop->work_tail = w;
}

void loop_work_cancel(struct loop *loop, struct loop_work *w)
{
    struct loop_work **pp, *prev = NULL;

    if (!w->queued)
        return;
    w->queued = false;
    for (pp = &loop->work_head; *pp; prev = *pp, pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            if (loop->work_tail == w)
                loop->work_tail = prev;
            return;
        }
    }
    for (pp = &loop->work_running; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            return;
        }
    }
}

static void run_deferred(struct loop *loop)
{
    /* Work queued while running goes into the next round, so a work item
     * that re-queues itself cannot starve file descriptors. */
    loop->work_running = loop->work_head;
    loop->work_head = loop->work_tail = NULL;
    while (loop->work_running) {
        struct loop_work *w = loop->work_running;

        loop->work_running = w->next;
        w->queued = false;
        w->fn(w->opaque);
    }
}

static void run_timers(struct loop *loop)
{
    uint64_t now = loop_now_ns();

    while (loop->timers && loop->timers->deadline_ns <= now) {
        struct loop_timer *t = loop->timers;

        loop->timers = t->next;
        t->armed = false;
        t->fn(t->opaque);
    }
}

static int next_timeout_ms(struct loop *loop, int timeout_ms)
{
    uint64_t now, wait_ms;

    if (loop->work_head)
        return 0;
    if (!loop->timers)
        return timeout_ms;
    now = loop_now_ns();
    if (loop->timers->deadline_ns <= now)
        return 0;
    /* Round up so a timer is never woken for early. */
    wait_ms = (loop->timers->deadline_ns - now + 999999) / 1000000;
    if (timeout_ms >= 0 && (uint64_t)timeout_ms < wait_ms)
        return timeout_ms;
    return wait_ms > 60000 ? 60000 : (int)wait_ms;
}

int loop_run_once(struct loop *loop, int timeout_ms)
{
    struct epoll_event events[32];
    int n, i;

    n = epoll_wait(loop->epfd, events, 32, next_timeout_ms(loop, timeout_ms));
    if (n < 0) {
        if (errno == EINTR)
            n = 0;
        else
            return -errno;
    }
    for (i = 0; i < n; i++) {
        struct loop_watch *w = events[i].data.ptr;

        if (!w->deleted)
            w->fn(w->opaque, events[i].events);
    }
    run_timers(loop);
    run_deferred(loop);
    free_dead_watches(loop);
    return 0;
}

int loop_run(struct loop *loop)
{
    while (!loop->quit) {
        int rc = loop_run_once(loop, -1);

        if (rc < 0) {
            log_err("event loop: epoll_wait failed: %d", rc);
            return 1;
        }
    }
    return loop->exit_code;
}

void loop_quit(struct loop *loop, int code)
{
    loop->quit = true;
    loop->exit_code = code;
}

bool loop_quitting(const struct loop *loop) { return loop->quit; }
