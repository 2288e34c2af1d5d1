#include "xenstore_plane.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../xenstore/dmcommand.h"
#include "../xenstore/vbd.h"
#include "../xenstore/xs.h"

struct xenstore_plane {
    struct machine *m;
    struct xen_transport *transport;
    struct xsw *xs;
    struct dm_command *dc;
    struct machine_observer observer;
    struct vbd_watch *media;
};

static void plane_media_changed(void *opaque, unsigned index, const char *path,
                                const char *format)
{
    log_info("xenstore: CD-ROM %s: %s%s%s%s", disk_index_name(index),
             path ? "medium " : "ejected", path ? path : "",
             path ? " " : "", path ? format : "");
}

/* pci-ins plugs the host function under the id libxl's QMP path gives it
 * ("pci-pt-BB_DD.F"), so both control planes name it alike. */
static void host_device_id(const struct pci_host_addr *h, char *id, size_t len)
{
    snprintf(id, len, "pci-pt-%02x_%02x.%x", h->bus, h->dev, h->fn);
}

static int plane_pci_insert(void *opaque, const struct pci_insert_request *req,
                            char *err, size_t errlen)
{
    struct xenstore_plane *p = opaque;
    char id[32], host[16];
    const struct machine_pci_device *d;
    int rc;

    host_device_id(&req->host, id, sizeof(id));
    snprintf(host, sizeof(host), "%04x:%02x:%02x.%x", req->host.seg,
             req->host.bus, req->host.dev, req->host.fn);
    rc = machine_passthrough_add(p->m, host,
                                 req->has_vdevfn ? req->vdevfn : -1,
                                 req->permissive, id, err, errlen);
    if (rc == -ENOSPC)
        snprintf(err, errlen, "no free hotplug devfn");
    else if (rc == -EINVAL || rc == -EBUSY || rc == -EEXIST)
        snprintf(err, errlen, "wrong bdf or vdevfn");
    if (rc < 0)
        return rc;
    d = machine_find_device(p->m, id);
    return d->devfn;
}

static int plane_pci_remove(void *opaque, const struct pci_host_addr *host,
                            char *err, size_t errlen)
{
    struct xenstore_plane *p = opaque;
    char id[32];
    int rc;

    host_device_id(host, id, sizeof(id));
    rc = machine_device_del(p->m, id, err, errlen);
    /* Asked twice: the first request is still pending, completion comes. */
    return rc == -EALREADY ? 0 : rc;
}

static int plane_save(void *opaque, const char *path)
{
    struct xenstore_plane *p = opaque;
    int fd, rc;

    if (p->transport)
        xen_transport_pause(p->transport, true);
    machine_stop(p->m);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        log_err("save: cannot create %s: %s", path, strerror(-rc));
        return rc;
    }
    rc = machine_save_state(p->m, fd);
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0)
        log_err("save: writing %s failed: %s", path, strerror(-rc));
    else
        log_info("save: device state written to %s", path);
    return rc;
}

static void plane_resume(void *opaque)
{
    struct xenstore_plane *p = opaque;

    machine_cont(p->m);
    if (p->transport)
        xen_transport_pause(p->transport, false);
}

static void plane_log_dirty(void *opaque, bool on)
{
    struct xenstore_plane *p = opaque;

    machine_set_log_dirty(p->m, on);
}

static void plane_cpu_online(void *opaque, unsigned cpu, bool online)
{
    struct xenstore_plane *p = opaque;

    if (p->m->has_pm && piix4_pm_set_cpu_online(&p->m->pm, cpu, online) < 0)
        log_ratelimited(LOG_WARN, "xenstore: vCPU %u out of range", cpu);
}

static void plane_quit(void *opaque)
{
    struct xenstore_plane *p = opaque;

    machine_shutdown(p->m, false, "host-xenstore");
}

static void on_machine_event(void *opaque, const struct machine_event *ev)
{
    struct xenstore_plane *p = opaque;
    unsigned bus, dev, fn;
    int used = 0;

    switch (ev->kind) {
    case MACHINE_EVENT_RESUME:
        dm_command_set_state(p->dc, "running");
        break;
    case MACHINE_EVENT_DEVICE_DELETED:
        if (sscanf(ev->device, "pci-pt-%2x_%2x.%1x%n", &bus, &dev, &fn,
                   &used) == 3 && !ev->device[used]) {
            struct pci_host_addr h = {0, (uint8_t)bus, (uint8_t)dev,
                                      (uint8_t)fn};

            dm_command_pci_removed(p->dc, &h);
        }
        break;
    default:
        break;
    }
}

int xenstore_plane_start(struct machine *m, struct xen_transport *transport,
                         struct xenstore_plane **out)
{
    const struct dm_options *o = m->opts;
    struct xenstore_plane *p = calloc(1, sizeof(*p));
    struct xsw_config xcfg = {.dm_domid = 0, .domid = (unsigned)o->domid};
    const char *lib_dir = getenv("XEN_DM_LIB_DIR");
    struct dm_command_config cfg = {
        .domid = (unsigned)o->domid,
        .trad = o->flavour == FLAVOUR_QEMU_TRAD,
        .lib_dir = lib_dir && *lib_dir ? lib_dir : "/var/lib/xen",
    };
    struct dm_command_ops ops = {
        .pci_insert = plane_pci_insert,
        .pci_remove = plane_pci_remove,
        .save = plane_save,
        .resume = plane_resume,
        .set_log_dirty = plane_log_dirty,
        .cpu_online = plane_cpu_online,
        .quit = plane_quit,
        .opaque = p,
    };
    int rc;

    if (!p)
        return -ENOMEM;
    p->m = m;
    p->transport = transport;
    rc = xsw_open(m->loop, &xcfg, &p->xs);
    if (rc < 0) {
        log_err("xenstore: cannot connect to xenstored: %s", strerror(-rc));
        goto out;
    }
    rc = dm_command_start(p->xs, &cfg, &ops, &p->dc);
    if (rc < 0)
        goto out;
    p->observer = (struct machine_observer){.event = on_machine_event,
                                            .opaque = p};
    machine_add_observer(m, &p->observer);
    /* qemu-dm takes its disks from xenstore (§4.6); qemu-xen's come on the
     * command line. */
    if (o->flavour == FLAVOUR_QEMU_TRAD) {
        struct disk_list disks;

        disk_list_init(&disks);
        if (vbd_read_disks(p->xs, (unsigned)o->domid, &disks) == 0) {
            machine_set_disks(m, &disks);
            if (vbd_watch_media(p->xs, (unsigned)o->domid, &m->disks,
                                plane_media_changed, p, &p->media) < 0)
                log_warn("xenstore: CD-ROM media changes are not watched");
        }
    }
    for (unsigned i = 0; i < m->n_uarts; i++) {
        const char *pty = charbe_pty_path(m->serial[i]);

        if (pty)
            dm_command_publish_serial(p->dc, i, pty);
    }
    /* libxl's start-up wait (60 s) ends here; with -S it ends at cont. */
    if (m->state == RUN_RUNNING)
        dm_command_set_state(p->dc, "running");
    log_info("xenstore: serving device-model commands");
    *out = p;
    return 0;
out:
    xenstore_plane_stop(p);
    return rc;
}

void xenstore_plane_stop(struct xenstore_plane *p)
{
    if (!p)
        return;
    if (p->dc)
        machine_remove_observer(p->m, &p->observer);
    vbd_unwatch_media(p->media);
    dm_command_stop(p->dc);
    xsw_close(p->xs);
    free(p);
}
