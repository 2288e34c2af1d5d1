/* The event loop: one epoll set for file descriptors, a list of one-shot
 * timers on the monotonic clock, and deferred work that runs once at the end
 * of the current iteration (used to leave a callback before acting, e.g. to
 * close a connection from inside its own read handler). Single-threaded. */
#ifndef XENDM_LIB_LOOP_H
#define XENDM_LIB_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct loop;
struct loop_watch;

typedef void (*loop_fd_fn)(void *opaque, uint32_t events);
typedef void (*loop_fn)(void *opaque);

struct loop_timer {
    struct loop *loop;
    loop_fn fn;
    void *opaque;
    uint64_t deadline_ns;
    bool armed;
    struct loop_timer *next;
};

struct loop_work {
    loop_fn fn;
    void *opaque;
    bool queued;
    struct loop_work *next;
};

int loop_create(struct loop **out);
void loop_destroy(struct loop *loop);

/* Watches fd for EPOLLIN/EPOLLOUT; errors and hang-ups are always reported. */
int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn fn,
                void *opaque, struct loop_watch **out);
int loop_mod_fd(struct loop_watch *w, uint32_t events);
/* Safe from inside any callback, including w's own. Does not close fd. */
void loop_del_fd(struct loop_watch *w);

void loop_timer_init(struct loop *loop, struct loop_timer *t, loop_fn fn,
                     void *opaque);
void loop_timer_arm(struct loop_timer *t, uint64_t delay_ns);
void loop_timer_cancel(struct loop_timer *t);

void loop_work_init(struct loop_work *w, loop_fn fn, void *opaque);
/* Queues w to run once after the current batch of events; queuing an already
 * queued item is a no-op. */
void loop_defer(struct loop *loop, struct loop_work *w);
void loop_work_cancel(struct loop *loop, struct loop_work *w);

/* Runs until loop_quit(); returns the code passed to it. */
int loop_run(struct loop *loop);
/* Runs one iteration, waiting at most timeout_ms (-1 = until an event). */
int loop_run_once(struct loop *loop, int timeout_ms);
void loop_quit(struct loop *loop, int code);
bool loop_quitting(const struct loop *loop);

uint64_t loop_now_ns(void);

#endif
