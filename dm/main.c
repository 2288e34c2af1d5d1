/* xen-dm: a device model for Xen HVM guests. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/loop.h"
#include "machine.h"
#include "options.h"
#include "qmp.h"
#include "qtest.h"

struct daemon {
    struct dm_options opts;
    struct loop *loop;
    struct machine machine;
    bool machine_up;
    struct qtest *qtest;
    struct qmp_server *qmp[OPT_MAX_MONITORS];
    int signal_fd;
    struct loop_watch *signal_watch;
};

static void on_signal(void *opaque, uint32_t events)
{
    struct daemon *d = opaque;
    struct signalfd_siginfo si;

    if (read(d->signal_fd, &si, sizeof(si)) != sizeof(si))
        return;
    log_info("%s received: shutting down", strsignal((int)si.ssi_signo));
    /* libxl kills device models with SIGHUP (or by removing the xenstore
     * directory); both mean "go away cleanly". */
    machine_shutdown(&d->machine, false,
                     si.ssi_signo == SIGHUP ? "host-signal" : "host-signal");
}

static int setup_signals(struct daemon *d)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -errno;
    /* A client that vanishes mid-reply must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    d->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (d->signal_fd < 0)
        return -errno;
    return loop_add_fd(d->loop, d->signal_fd, EPOLLIN, on_signal, d,
                       &d->signal_watch);
}

static int start_sockets(struct daemon *d)
{
    int rc;

    if (d->opts.has_qtest) {
        rc = qtest_start(&d->machine, &d->opts.qtest, &d->qtest);
        if (rc < 0)
            return rc;
        log_info("qtest: serving on %s",
                 d->opts.qtest.kind == CHARDEV_STDIO ? "stdio" : d->opts.qtest.path);
    }
    for (unsigned i = 0; i < d->opts.n_qmp; i++) {
        const struct chardev_spec *spec = &d->opts.qmp[i];

        rc = qmp_start(&d->machine, spec, &d->qmp[i]);
        if (rc < 0)
            return rc;
        if (spec->kind == CHARDEV_FD)
            log_info("qmp: serving on fd %d", spec->fd);
        else
            log_info("qmp: serving on %s", spec->path);
    }
    return 0;
}

static void stop_all(struct daemon *d)
{
    for (unsigned i = 0; i < OPT_MAX_MONITORS; i++)
        qmp_stop(d->qmp[i]);
    qtest_stop(d->qtest);
    if (d->machine_up)
        machine_fini(&d->machine);
    loop_del_fd(d->signal_watch);
    if (d->signal_fd >= 0)
        close(d->signal_fd);
    loop_destroy(d->loop);
    options_free(&d->opts);
}

int main(int argc, char **argv)
{
    struct daemon d = {.signal_fd = -1};
    const char *trace_env = getenv("XEN_DM_TRACE");
    int rc;

    rc = options_parse(argc, argv, &d.opts);
    if (rc != 0) {
        options_free(&d.opts);
        return rc > 0 ? 0 : 2;
    }
    if (trace_env && *trace_env && trace_enable_list(trace_env) < 0) {
        rc = -EINVAL;
        goto out;
    }
    if (d.opts.domid >= 0) {
        /* Attaching to a domain needs the Xen ioreq transport (ioreq/xen.c),
         * which is not in this build yet. Refuse rather than pretend. */
        log_err("attaching to domain %d is not supported by this build yet: "
                "the Xen ioreq transport is missing", d.opts.domid);
        rc = -ENOSYS;
        goto out;
    }
    rc = loop_create(&d.loop);
    if (rc < 0)
        goto out;
    rc = setup_signals(&d);
    if (rc < 0)
        goto out;
    rc = machine_init(&d.machine, &d.opts, d.loop);
    if (rc < 0)
        goto out;
    d.machine_up = true;
    log_info("xen-dm %s: no domain, serving sockets only (machine %s, %llu MiB)",
             XEN_DM_VERSION, d.opts.machine_type,
             (unsigned long long)d.opts.ram_mb);
    rc = start_sockets(&d);
    if (rc < 0)
        goto out;
    rc = loop_run(d.loop);
out:
    stop_all(&d);
    if (rc < 0) {
        log_err("exiting: %s", strerror(-rc));
        return 1;
    }
    return rc;
}
