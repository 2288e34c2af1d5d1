/* xen-dm: a device model for Xen HVM guests. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <xen/sched.h>

#include <fcntl.h>

#include "../ioreq/xen.h"
#include "../lib/log.h"
#include "../lib/loop.h"
#include "machine.h"
#include "options.h"
#include "qmp.h"
#include "qtest.h"
#include "xenstore_plane.h"

struct daemon {
    struct dm_options opts;
    struct loop *loop;
    struct machine machine;
    bool machine_up;
    struct xen_transport *xen;
    struct xenstore_plane *xenstore;
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
    machine_shutdown(&d->machine, false, "host-signal");
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

/* Guest power requests under Xen (xen-dm-interfaces.md §4.1, §5.1). */
static int xen_reboot(void *opaque)
{
    return xen_transport_shutdown(opaque, SHUTDOWN_reboot);
}

static int xen_poweroff(void *opaque)
{
    return xen_transport_shutdown(opaque, SHUTDOWN_poweroff);
}

static int xen_suspend(void *opaque)
{
    return xen_transport_set_acpi_s_state(opaque, 3);
}

static int xen_wakeup(void *opaque)
{
    return xen_transport_set_acpi_s_state(opaque, 0);
}

static void xen_log_dirty(void *opaque, bool on)
{
    xen_transport_set_log_dirty(opaque, on);
}

static int attach_domain(struct daemon *d)
{
    struct machine_platform_ops ops;
    struct passthrough_ops pt_ops;
    int rc;

    rc = xen_transport_open(d->loop, &d->machine.bus, &d->machine.dispatch,
                            (uint32_t)d->opts.domid, &d->xen);
    if (rc < 0)
        return rc;
    ops = (struct machine_platform_ops){.reboot = xen_reboot,
                                        .poweroff = xen_poweroff,
                                        .suspend = xen_suspend,
                                        .wakeup = xen_wakeup,
                                        .set_log_dirty = xen_log_dirty,
                                        .opaque = d->xen};
    machine_set_platform_ops(&d->machine, &ops);
    machine_set_irq_backend(&d->machine, xen_transport_irq_sink(d->xen));
    xen_transport_passthrough_ops(d->xen, &pt_ops);
    machine_set_passthrough_ops(&d->machine, &pt_ops);
    return 0;
}

/* -loadvm FILE / -incoming fd:N: the device state of a saved or migrated
 * guest, loaded into the freshly built machine before anything runs. */
static int restore_state(struct daemon *d)
{
    char err[256] = "";
    int fd = d->opts.incoming_fd, rc;

    if (d->opts.loadvm) {
        fd = open(d->opts.loadvm, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            rc = -errno;
            log_err("restore: cannot open %s: %s", d->opts.loadvm,
                    strerror(-rc));
            return rc;
        }
    }
    if (fd < 0)
        return 0;
    rc = machine_load_state_err(&d->machine, fd, err, sizeof(err));
    close(fd);
    if (rc < 0) {
        log_err("restore: device state refused: %s", err);
        return rc;
    }
    log_info("restore: device state loaded from %s",
             d->opts.loadvm ? d->opts.loadvm : "the incoming descriptor");
    return 0;
}

static void stop_all(struct daemon *d)
{
    for (unsigned i = 0; i < OPT_MAX_MONITORS; i++)
        qmp_stop(d->qmp[i]);
    qtest_stop(d->qtest);
    xenstore_plane_stop(d->xenstore);
    /* Before the machine: the server goes away while its ranges still
     * exist, so nothing is unregistered one by one. */
    if (d->machine_up && d->xen) {
        /* Devices still lower their lines while they are torn down. */
        machine_set_irq_backend(&d->machine, NULL);
        /* Mappings and pirqs are undone while the handles still work. */
        machine_release_passthrough(&d->machine);
        machine_set_platform_ops(&d->machine,
                                 &(struct machine_platform_ops){0});
    }
    xen_transport_close(d->xen);
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
    const char *limit_env = getenv("XEN_QEMU_CONSOLE_LIMIT");
    int rc;

    /* libxl sets it (1 MiB) for every device model it spawns. */
    if (limit_env && *limit_env) {
        char *end;
        unsigned long long limit = strtoull(limit_env, &end, 10);

        if (!*end)
            log_set_byte_limit(limit);
    }

    rc = options_parse(argc, argv, &d.opts);
    if (rc != 0) {
        options_free(&d.opts);
        return rc > 0 ? 0 : 2;
    }
    if (trace_env && *trace_env && trace_enable_list(trace_env) < 0) {
        rc = -EINVAL;
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
    if (d.opts.domid >= 0) {
        rc = attach_domain(&d);
        if (rc < 0)
            goto out;
        rc = restore_state(&d);
        if (rc < 0)
            goto out;
        rc = xenstore_plane_start(&d.machine, d.xen, &d.xenstore);
        if (rc < 0)
            goto out;
        log_info("xen-dm %s: serving domain %d (%s flavour, machine %s)",
                 XEN_DM_VERSION, d.opts.domid,
                 d.opts.flavour == FLAVOUR_QEMU_TRAD ? "qemu-trad" : "qemu-xen",
                 d.opts.machine_type);
    } else if (d.opts.sim) {
        rc = restore_state(&d);
        if (rc < 0)
            goto out;
        log_info("xen-dm %s: software machine, %llu MiB", XEN_DM_VERSION,
                 (unsigned long long)d.opts.ram_mb);
    } else {
        rc = restore_state(&d);
        if (rc < 0)
            goto out;
        log_info("xen-dm %s: no domain, serving sockets only (machine %s, "
                 "%llu MiB)", XEN_DM_VERSION, d.opts.machine_type,
                 (unsigned long long)d.opts.ram_mb);
    }
    rc = start_sockets(&d);
    if (rc < 0)
        goto out;
    if (d.opts.sim)
        rc = sim_run(&d.machine.sim);
    else
        rc = loop_run(d.loop);
out:
    stop_all(&d);
    if (rc < 0) {
        log_err("exiting: %s", strerror(-rc));
        return 1;
    }
    return rc;
}
