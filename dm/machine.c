#include "machine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../hw/savestate.h"
#include "../lib/log.h"
#include "drive.h"

/* Guest RAM below 4 GiB ends where Xen's MMIO hole starts (hvmloader's
 * HVM_BELOW_4G_MMIO_START); the rest is relocated above 4 GiB. */
#define MACHINE_BELOW_4G_LIMIT 0xf0000000ull

const char *run_state_name(enum run_state s)
{
    switch (s) {
    case RUN_PRELAUNCH: return "prelaunch";
    case RUN_RUNNING: return "running";
    case RUN_PAUSED: return "paused";
    case RUN_SUSPENDED: return "suspended";
    case RUN_SHUTDOWN: return "shutdown";
    case RUN_INTERNAL_ERROR: return "internal-error";
    }
    return "?";
}

static void notify(struct machine *m, const struct machine_event *ev)
{
    for (struct machine_observer *o = m->observers, *next; o; o = next) {
        next = o->next;
        if (o->event)
            o->event(o->opaque, ev);
    }
}

static void notify_irq(struct machine *m, unsigned line, bool level)
{
    for (struct machine_observer *o = m->observers, *next; o; o = next) {
        next = o->next;
        if (o->irq)
            o->irq(o->opaque, line, level);
    }
}

static void sink_isa_irq(void *opaque, unsigned irq, bool level)
{
    struct machine *m = opaque;

    irq_set_isa(m->irq_backend, irq, level);
    notify_irq(m, irq, level);
}

static void sink_pci_intx(void *opaque, unsigned slot, unsigned pin, bool level)
{
    struct machine *m = opaque;

    irq_set_pci_intx(m->irq_backend, slot, pin, level);
    notify_irq(m, irq_pci_intx_gsi(slot, pin), level);
}

static void sink_pci_link_route(void *opaque, unsigned link, unsigned irq)
{
    struct machine *m = opaque;

    irq_route_pci_link(m->irq_backend, link, irq);
}

static const struct irq_sink_ops machine_irq_ops = {
    .isa_irq = sink_isa_irq,
    .pci_intx = sink_pci_intx,
    .pci_link_route = sink_pci_link_route,
};

void machine_set_irq_backend(struct machine *m, const struct irq_sink *sink)
{
    m->irq_backend = sink;
}

void machine_set_platform_ops(struct machine *m,
                              const struct machine_platform_ops *ops)
{
    m->platform_ops = *ops;
}

/* --- requests from the guest -------------------------------------------- */

/* The software CPU runs the guest in slices; a request that must take effect
 * before the guest's next instruction ends the slice. */
static void kick_cpu(struct machine *m)
{
    if (m->has_sim)
        sim_kick(&m->sim);
}

/* Guest resets and power-offs arrive from inside a device's register
 * handler; acting on them there would reset the device under its own feet,
 * so they run from the event loop once the access has completed. */
static void run_guest_reset(void *opaque)
{
    struct machine *m = opaque;

    /* Under Xen a reboot is the toolstack's job: it destroys and rebuilds
     * the domain, and this process with it. */
    if (m->platform_ops.reboot) {
        m->platform_ops.reboot(m->platform_ops.opaque);
        return;
    }
    if (m->has_sim && m->opts->no_reboot) {
        machine_shutdown(m, true, m->pending_reset_reason);
        return;
    }
    machine_reset(m, true, m->pending_reset_reason);
}

static void request_reset(void *opaque, const char *reason)
{
    struct machine *m = opaque;

    m->pending_reset_reason = reason;
    loop_defer(m->loop, &m->reset_work);
    kick_cpu(m);
}

static void a20_changed(void *opaque, bool enabled)
{
    struct machine *m = opaque;

    if (m->has_sim)
        sim_set_a20(&m->sim, enabled);
}

static void run_guest_poweroff(void *opaque)
{
    struct machine *m = opaque;
    struct machine_event ev = {.kind = MACHINE_EVENT_SHUTDOWN, .guest = true,
                               .reason = "guest-shutdown"};

    log_info("guest powered off (ACPI S5)");
    if (m->platform_ops.poweroff) {
        m->platform_ops.poweroff(m->platform_ops.opaque);
        return;
    }
    if (!m->opts->no_shutdown) {
        machine_shutdown(m, true, "guest-shutdown");
        return;
    }
    /* -no-shutdown (libxl always passes it): stop, announce, stay. */
    m->state = RUN_SHUTDOWN;
    notify(m, &ev);
}

static void request_poweroff(void *opaque)
{
    struct machine *m = opaque;

    loop_defer(m->loop, &m->poweroff_work);
    kick_cpu(m);
}

static void run_guest_suspend(void *opaque)
{
    struct machine *m = opaque;
    struct machine_event ev = {.kind = MACHINE_EVENT_SUSPEND, .guest = true};

    if (m->state != RUN_RUNNING)
        return;
    log_info("guest suspended to RAM (ACPI S3)");
    if (m->platform_ops.suspend) {
        /* Xen pauses the domain and resets the vCPUs and its own devices;
         * ours are reset here, as a real S3 cuts their power. */
        machine_reset(m, true, "guest-suspend");
        m->platform_ops.suspend(m->platform_ops.opaque);
    }
    m->state = RUN_SUSPENDED;
    notify(m, &ev);
}

static void request_suspend(void *opaque)
{
    struct machine *m = opaque;

    loop_defer(m->loop, &m->suspend_work);
    kick_cpu(m);
}

void machine_set_disks(struct machine *m, struct disk_list *disks)
{
    disk_list_free(&m->disks);
    m->disks = *disks;
    disk_list_init(disks);
    for (unsigned i = 0; i < m->disks.count; i++) {
        const struct disk_desc *d = &m->disks.disks[i];

        log_warn("disk %s: %s %s%s (%s): not served, xen-dm has no IDE "
                 "emulation yet", disk_index_name(d->index),
                 d->cdrom ? "CD-ROM" : "disk", d->path ? d->path : "(empty)",
                 d->readonly ? ", read-only" : "",
                 d->format ? d->format : "no format");
    }
}

/* -drive and -device from the qemu-xen command line: disks go to the disk
 * list, pci-testdevs are cold-plugged, anything else is said once. */
static int add_command_line_devices(struct machine *m)
{
    const struct dm_options *o = m->opts;
    struct drive_opts drives[OPT_MAX_LIST];
    const char *ide_devices[OPT_MAX_LIST];
    unsigned n_ide = 0, n = 0;
    struct disk_list disks;
    char err[256];
    int rc = 0;

    for (unsigned i = 0; i < o->n_devices; i++) {
        const char *dev = o->devices[i];
        char id[64] = "", addr[16] = "";

        if (options_device_is(dev, "ide-cd") || options_device_is(dev, "ide-hd")) {
            ide_devices[n_ide++] = dev;
        } else if (options_device_is(dev, "pci-testdev")) {
            options_device_prop(dev, "id", id, sizeof(id));
            options_device_prop(dev, "addr", addr, sizeof(addr));
            rc = machine_device_add(m, "pci-testdev", id, addr[0] ? addr : NULL,
                                    err, sizeof(err));
            if (rc < 0) {
                log_err("-device %s: %s", dev, err);
                return rc;
            }
        } else if (options_device_is(dev, "isa-debug-exit") ||
                   options_device_is(dev, "isa-debugcon")) {
            /* The software machine's devices (sim.c). */
            if (!m->has_sim)
                log_warn("-device %s: only with -machine sim; ignored", dev);
        } else {
            log_warn("-device %s: not supported yet; ignored", dev);
        }
    }
    /* Byte-stream chardevs only mean something to a device that names
     * them; libxl's channels (virtserialport) are not emulated. */
    for (unsigned b = 0; b < o->n_backends; b++) {
        char ref[80];
        bool used = false;

        snprintf(ref, sizeof(ref), ",chardev=%s", o->backend_ids[b]);
        for (unsigned i = 0; i < o->n_devices && !used; i++) {
            const char *hit = strstr(o->devices[i], ref);

            used = m->has_sim && !strncmp(o->devices[i], "isa-debugcon", 12) &&
                   hit && (hit[strlen(ref)] == '\0' || hit[strlen(ref)] == ',');
        }
        if (!used)
            log_warn("-chardev %s,id=%s: no emulated device uses it; ignored",
                     o->backend_specs[b], o->backend_ids[b]);
    }
    for (; n < o->n_drives; n++) {
        rc = drive_parse(o->drives[n], &drives[n], err, sizeof(err));
        if (rc < 0) {
            log_err("-drive %s: %s", o->drives[n], err);
            goto out;
        }
    }
    rc = drives_to_disks(drives, n, ide_devices, n_ide, &disks, err,
                         sizeof(err));
    if (rc < 0) {
        log_err("disks: %s", err);
        goto out;
    }
    machine_set_disks(m, &disks);
out:
    while (n)
        drive_opts_free(&drives[--n]);
    return rc;
}

void machine_set_log_dirty(struct machine *m, bool on)
{
    if (m->log_dirty != on)
        log_info("dirty-page logging %s", on ? "on" : "off");
    m->log_dirty = on;
    if (m->platform_ops.set_log_dirty)
        m->platform_ops.set_log_dirty(m->platform_ops.opaque, on);
}

int machine_powerdown(struct machine *m)
{
    if (!m->has_sim || !m->has_pm)
        return -EOPNOTSUPP;
    log_info("power button pressed");
    return piix4_pm_power_button(&m->pm);
}

int machine_wakeup(struct machine *m)
{
    struct machine_event ev = {.kind = MACHINE_EVENT_WAKEUP};

    if (m->state != RUN_SUSPENDED)
        return -EINVAL;
    if (m->platform_ops.wakeup) {
        /* Xen unpauses the domain when the S state goes back to 0. */
        if (m->platform_ops.wakeup(m->platform_ops.opaque) < 0)
            return -EIO;
    } else {
        /* Waking from S3 goes through the firmware's reset path. */
        machine_reset(m, false, "wakeup");
    }
    m->state = RUN_RUNNING;
    notify(m, &ev);
    return 0;
}

/* --- hot-plug glue -------------------------------------------------------- */

static void pm_gpe_cleared(void *opaque, unsigned bit)
{
    struct machine *m = opaque;

    if (m->has_hotplug)
        pcihp_gpe_acked(&m->hotplug, bit);
}

static void hotplug_raise_gpe(void *opaque, unsigned bit)
{
    struct machine *m = opaque;

    piix4_pm_gpe_raise(&m->pm, bit);
}

static struct machine_pci_device **find_device_link(struct machine *m,
                                                    uint8_t devfn)
{
    struct machine_pci_device **pp;

    for (pp = &m->pci_devices; *pp; pp = &(*pp)->next)
        if ((*pp)->devfn == devfn)
            return pp;
    return NULL;
}

static void destroy_device(struct machine_pci_device *d)
{
    pci_testdev_destroy(d->testdev);
    /* Unmaps and unbinds whatever the guest had set up. */
    passthrough_destroy(d->pt);
    free(d->id);
    free(d);
}

static void hotplug_unplug_function(void *opaque, uint8_t devfn)
{
    struct machine *m = opaque;
    struct machine_pci_device **pp = find_device_link(m, devfn), *d;
    struct machine_event ev = {.kind = MACHINE_EVENT_DEVICE_DELETED};
    struct pci_function *f;

    if (!pp) {
        f = pci_find_function(&m->pci, devfn);
        if (f)
            pci_unregister_function(f);
        return;
    }
    d = *pp;
    *pp = d->next;
    log_info("device '%s' at 00:%02x.%x removed", d->id, PCI_SLOT(devfn),
             PCI_FUNC(devfn));
    ev.device = d->id;
    notify(m, &ev);
    destroy_device(d);
}

static void hotplug_removed(void *opaque, unsigned slot, bool requested)
{
    log_info("slot %u ejected (%s)", slot,
             requested ? "as requested" : "by the guest on its own");
}

/* --- platform device glue ------------------------------------------------- */

static void platform_unplug_disks(void *opaque, enum xen_platform_disks which)
{
    log_info("PV drivers unplug emulated %s: this machine has none",
             which == XEN_PLATFORM_UNPLUG_NVME ? "NVMe disks" : "IDE/SCSI disks");
}

static void platform_unplug_nics(void *opaque)
{
    log_info("PV drivers unplug emulated NICs: this machine has none");
}

/* --- construction --------------------------------------------------------- */

static enum pcihp_layout hotplug_layout(const struct dm_options *o)
{
    switch (o->hotplug_layout) {
    case HOTPLUG_LAYOUT_XEN: return PCIHP_LAYOUT_QEMU_XEN;
    case HOTPLUG_LAYOUT_TRAD: return PCIHP_LAYOUT_QEMU_TRAD;
    default:
        return o->flavour == FLAVOUR_QEMU_TRAD ? PCIHP_LAYOUT_QEMU_TRAD
                                              : PCIHP_LAYOUT_QEMU_XEN;
    }
}

/* vCPUs online at start: -vcpu_avail's bitmap (qemu-trad) or -smp N. */
static unsigned online_vcpus(const struct dm_options *o, uint8_t extra[16])
{
    unsigned n = 0;

    memset(extra, 0, 16);
    if (!o->vcpu_avail)
        return o->vcpus;
    /* A hex string, least significant vCPU last. */
    for (size_t i = strlen(o->vcpu_avail), bit = 0; i-- > 0; bit += 4) {
        char ch = o->vcpu_avail[i];
        unsigned v = ch >= 'a' ? (unsigned)(ch - 'a' + 10)
                     : ch >= 'A' ? (unsigned)(ch - 'A' + 10)
                                 : (unsigned)(ch - '0');

        if (ch == 'x' || ch == 'X')
            break;
        for (unsigned b = 0; b < 4 && bit + b < 128; b++)
            if (v & (1u << b))
                extra[(bit + b) / 8] |= (uint8_t)(1u << ((bit + b) % 8));
    }
    /* The contiguous run from vCPU 0 is the PM device's initial map; the
     * rest is set one by one. */
    while (n < 128 && (extra[n / 8] & (1u << (n % 8)))) {
        extra[n / 8] &= (uint8_t)~(1u << (n % 8));
        n++;
    }
    return n;
}

static int add_acpi(struct machine *m)
{
    const struct dm_options *o = m->opts;
    bool trad = o->flavour == FLAVOUR_QEMU_TRAD;
    uint8_t extra[16];
    struct piix4_pm_config cfg = {
        /* qemu-dm hard-codes the PM block at 0xB000 and powers up with
         * SCI_EN set; QEMU's xenfv follows PMBA and starts with it clear. */
        .fixed_pmba = trad,
        .sci_en_at_reset = trad,
        .ncpus_online = online_vcpus(o, extra),
        /* Without Xen, PM1a_EVT and the PM timer are ours. */
        .emulate_pm1_evt_and_timer = m->has_sim,
        .clock = m->has_sim ? &m->sim.clock : NULL,
    };
    struct piix4_pm_ops pm_ops = {
        .request_poweroff = request_poweroff,
        .request_suspend = request_suspend,
        .gpe_cleared = pm_gpe_cleared,
        .opaque = m,
    };
    struct pcihp_ops hp_ops = {
        .raise_gpe = hotplug_raise_gpe,
        .unplug_function = hotplug_unplug_function,
        .removed = hotplug_removed,
        .opaque = m,
    };
    int rc;

    rc = piix4_pm_init(&m->pm, &m->pci, &m->bus, &m->irq, &cfg, &pm_ops);
    if (rc < 0)
        return rc;
    m->has_pm = true;
    for (unsigned cpu = 0; cpu < 128; cpu++)
        if (extra[cpu / 8] & (1u << (cpu % 8)))
            piix4_pm_set_cpu_online(&m->pm, cpu, true);
    /* Before the hot-plug controller, so it sees every cold-plugged
     * function when it computes which slots are hot-pluggable. */
    if (m->opts->platform_device) {
        struct xen_platform_ops ops = {
            .unplug_disks = platform_unplug_disks,
            .unplug_nics = platform_unplug_nics,
            .opaque = m,
        };

        rc = xen_platform_init(&m->platform, &m->pci, &m->bus,
                               MACHINE_PLATFORM_DEVFN, &ops);
        if (rc < 0)
            return rc;
        m->has_platform = true;
    }
    rc = pcihp_init(&m->hotplug, &m->bus, &m->pci, hotplug_layout(o), &hp_ops);
    if (rc < 0)
        return rc;
    m->has_hotplug = true;
    log_info("ACPI hot-plug: %s layout (GPE0 bit %u)",
             hotplug_layout(o) == PCIHP_LAYOUT_QEMU_TRAD ? "qemu-trad 0x10c0"
                                                         : "qemu-xen 0xae00",
             pcihp_gpe_bit(&m->hotplug));
    return 0;
}

static const uint16_t uart_bases[MACHINE_MAX_UARTS] = {0x3f8, 0x2f8};
static const unsigned uart_irqs[MACHINE_MAX_UARTS] = {4, 3};
static const char *const uart_names[MACHINE_MAX_UARTS] = {"serial0", "serial1"};

static int add_serial_ports(struct machine *m)
{
    const struct dm_options *o = m->opts;
    int rc;

    for (unsigned i = 0; i < o->n_serial; i++) {
        if (!strcmp(o->serial[i], "none"))
            continue;
        if (m->n_uarts == MACHINE_MAX_UARTS) {
            log_warn("-serial %s: only %d serial ports are emulated; ignored",
                     o->serial[i], MACHINE_MAX_UARTS);
            continue;
        }
        rc = charbe_open(m->loop, o->serial[i], NULL, &m->serial[m->n_uarts]);
        if (rc < 0)
            return rc;
        rc = uart_init(&m->uarts[m->n_uarts], uart_names[m->n_uarts], &m->bus,
                       uart_bases[m->n_uarts], uart_irqs[m->n_uarts], &m->irq,
                       m->loop, m->serial[m->n_uarts]);
        if (rc < 0) {
            charbe_close(m->serial[m->n_uarts]);
            m->serial[m->n_uarts] = NULL;
            return rc;
        }
        log_info("%s: 16550A at 0x%x irq %u on %s", uart_names[m->n_uarts],
                 uart_bases[m->n_uarts], uart_irqs[m->n_uarts],
                 charbe_filename(m->serial[m->n_uarts]));
        m->n_uarts++;
    }
    return 0;
}

int machine_init(struct machine *m, const struct dm_options *opts,
                 struct loop *loop)
{
    struct piix3_ops piix3_ops = {.request_reset = request_reset,
                                  .a20_changed = a20_changed, .opaque = m};
    struct cmos_config cmos_cfg;
    struct guest_memory mem;
    uint64_t ram = opts->ram_mb << 20;
    int rc;

    memset(m, 0, sizeof(*m));
    m->opts = opts;
    m->loop = loop;
    m->state = opts->start_paused ? RUN_PRELAUNCH : RUN_RUNNING;
    m->irq = (struct irq_sink){.ops = &machine_irq_ops, .opaque = m};
    loop_work_init(&m->reset_work, run_guest_reset, m);
    loop_work_init(&m->poweroff_work, run_guest_poweroff, m);
    loop_work_init(&m->suspend_work, run_guest_suspend, m);
    bus_init(&m->bus);
    pci_bus_init(&m->pci, &m->bus);
    fdsets_init(&m->fdsets);
    disk_list_init(&m->disks);

    /* Without a domain the guest's RAM lives here, so pointer transfers
     * and qtest memory commands have somewhere to go. With one, the Xen
     * transport points the dispatcher at the domain's memory. */
    rc = local_ram_init(&m->ram, opts->domid >= 0 ? 0 : ram);
    if (rc < 0) {
        log_err("cannot reserve %llu MiB of guest RAM: %s",
                (unsigned long long)opts->ram_mb, strerror(-rc));
        goto out;
    }
    local_ram_accessor(&m->ram, &mem);
    dispatcher_init(&m->dispatch, &m->bus, &mem, NULL);

    /* The PC, in the order QEMU's xenfv builds it (slot numbers are guest
     * ABI): host bridge 00:00.0, PIIX3 00:01.0 with IDE 00:01.1 and PM
     * 00:01.3, then the Xen platform device 00:02.0. */
    rc = pci_host_init(&m->host, &m->bus);
    if (rc < 0)
        goto out;
    rc = i440fx_init(&m->i440fx, &m->pci);
    if (rc < 0)
        goto out;
    i440fx_set_ram_size(&m->i440fx, ram);
    rc = piix3_init(&m->piix3, &m->pci, &m->host, &m->bus, &m->irq, &piix3_ops);
    if (rc < 0)
        goto out;
    rc = piix_ide_init(&m->ide, &m->pci);
    if (rc < 0)
        goto out;
    if (opts->sim) {
        /* Before the PM function: it needs the sim clock. */
        m->has_sim = true;
        rc = sim_init(&m->sim, m);
        if (rc < 0)
            goto out;
        /* No hypervisor: interrupts go to the software PIC. */
        m->irq_backend = &m->sim.irq;
    }
    if (opts->acpi) {
        rc = add_acpi(m);
    } else if (opts->platform_device) {
        struct xen_platform_ops ops = {.unplug_disks = platform_unplug_disks,
                                       .unplug_nics = platform_unplug_nics,
                                       .opaque = m};

        rc = xen_platform_init(&m->platform, &m->pci, &m->bus,
                               MACHINE_PLATFORM_DEVFN, &ops);
        m->has_platform = rc == 0;
    }
    if (rc < 0)
        goto out;
    cmos_cfg = (struct cmos_config){
        .ram_below_4g = ram < MACHINE_BELOW_4G_LIMIT ? ram : MACHINE_BELOW_4G_LIMIT,
        .ram_above_4g = ram < MACHINE_BELOW_4G_LIMIT ? 0 : ram - MACHINE_BELOW_4G_LIMIT,
        .boot_order = opts->boot_order ? opts->boot_order : "cad",
        .ncpus = opts->vcpus,
    };
    rc = cmos_init(&m->cmos, &m->bus, &cmos_cfg);
    if (rc < 0)
        goto out;
    rc = add_serial_ports(m);
    if (rc < 0)
        goto out;
    if (m->has_sim) {
        rc = sim_add_devices(&m->sim);
        if (rc < 0)
            goto out;
    }
    m->building = true;
    rc = add_command_line_devices(m);
    m->building = false;
    if (rc < 0)
        goto out;
    if (m->has_pm)
        piix4_pm_machine_ready(&m->pm);
out:
    if (rc < 0)
        machine_fini(m);
    return rc;
}

void machine_fini(struct machine *m)
{
    loop_work_cancel(m->loop, &m->reset_work);
    loop_work_cancel(m->loop, &m->poweroff_work);
    loop_work_cancel(m->loop, &m->suspend_work);
    while (m->pci_devices) {
        struct machine_pci_device *d = m->pci_devices;

        m->pci_devices = d->next;
        destroy_device(d);
    }
    for (unsigned i = 0; i < m->n_uarts; i++) {
        uart_fini(&m->uarts[i]);
        charbe_close(m->serial[i]);
    }
    m->n_uarts = 0;
    if (m->has_sim) {
        m->irq_backend = NULL;
        sim_fini(&m->sim);
        m->has_sim = false;
    }
    if (m->has_hotplug)
        pcihp_fini(&m->hotplug);
    if (m->has_platform)
        xen_platform_fini(&m->platform);
    if (m->has_pm)
        piix4_pm_fini(&m->pm);
    m->has_hotplug = m->has_platform = m->has_pm = false;
    cmos_fini(&m->cmos);
    piix_ide_fini(&m->ide);
    piix3_fini(&m->piix3);
    i440fx_fini(&m->i440fx);
    pci_host_fini(&m->host);
    bus_fini(&m->bus);
    local_ram_fini(&m->ram);
    fdsets_fini(&m->fdsets);
    disk_list_free(&m->disks);
}

void machine_add_observer(struct machine *m, struct machine_observer *obs)
{
    obs->next = m->observers;
    m->observers = obs;
}

void machine_remove_observer(struct machine *m, struct machine_observer *obs)
{
    for (struct machine_observer **pp = &m->observers; *pp; pp = &(*pp)->next) {
        if (*pp == obs) {
            *pp = obs->next;
            return;
        }
    }
}

void machine_reset(struct machine *m, bool guest, const char *reason)
{
    struct machine_event ev = {.kind = MACHINE_EVENT_RESET, .guest = guest,
                               .reason = reason};

    /* A guest can reset in a loop (a triple fault every boot on the
     * software machine), so its resets are rate-limited. */
    if (guest)
        log_ratelimited(LOG_INFO, "machine reset (%s)", reason);
    else
        log_info("machine reset (%s)", reason);
    pci_host_reset(&m->host);
    /* Every PCI function, the PM device's GPE0 block included, before the
     * hot-plug controller: it flushes pending removals and may raise GPEs
     * again for insertions that survive the reset. */
    pci_bus_reset(&m->pci);
    for (unsigned i = 0; i < m->n_uarts; i++)
        uart_reset(&m->uarts[i]);
    if (m->has_hotplug)
        pcihp_reset(&m->hotplug);
    if (m->has_sim)
        sim_reset(&m->sim);
    /* As QEMU: a machine that needed a reset comes back paused. */
    if (m->state == RUN_INTERNAL_ERROR)
        m->state = RUN_PAUSED;
    notify(m, &ev);
}

void machine_internal_error(struct machine *m)
{
    struct machine_event ev = {.kind = MACHINE_EVENT_STOP};

    if (m->state == RUN_SHUTDOWN)
        return;
    m->state = RUN_INTERNAL_ERROR;
    notify(m, &ev);
}

void machine_stop(struct machine *m)
{
    struct machine_event ev = {.kind = MACHINE_EVENT_STOP};

    if (m->state != RUN_RUNNING)
        return;
    m->state = RUN_PAUSED;
    log_info("machine paused");
    notify(m, &ev);
}

void machine_cont(struct machine *m)
{
    struct machine_event ev = {.kind = MACHINE_EVENT_RESUME};

    if (m->state != RUN_PAUSED && m->state != RUN_PRELAUNCH)
        return;
    m->state = RUN_RUNNING;
    log_info("machine running");
    notify(m, &ev);
}

void machine_shutdown(struct machine *m, bool guest, const char *reason)
{
    struct machine_event ev = {.kind = MACHINE_EVENT_SHUTDOWN, .guest = guest,
                               .reason = reason};

    m->state = RUN_SHUTDOWN;
    log_info("shutting down (%s)", reason);
    notify(m, &ev);
    loop_quit(m->loop, 0);
}

/* --- control-plane hot-plug ----------------------------------------------- */

const struct machine_pci_device *machine_find_device(const struct machine *m,
                                                     const char *id)
{
    for (const struct machine_pci_device *d = m->pci_devices; d; d = d->next)
        if (*id && !strcmp(d->id, id))
            return d;
    return NULL;
}

int machine_parse_pci_addr(const char *addr)
{
    unsigned long slot, fn = 0;
    char *end;

    errno = 0;
    slot = strtoul(addr, &end, 16);
    if (errno || end == addr || slot > 31)
        return -EINVAL;
    if (*end == '.') {
        const char *f = end + 1;

        fn = strtoul(f, &end, 16);
        if (end == f || fn > 7)
            return -EINVAL;
    }
    if (*end)
        return -EINVAL;
    return PCI_DEVFN(slot, fn);
}

static int free_hotplug_slot(struct machine *m, uint8_t *devfn)
{
    uint32_t usable = m->has_hotplug ? pcihp_hotpluggable(&m->hotplug) : ~0u;

    for (unsigned slot = 1; slot < 32; slot++) {
        bool empty = true;

        for (unsigned fn = 0; fn < 8; fn++)
            empty &= !pci_find_function(&m->pci, PCI_DEVFN(slot, fn));
        if (empty && (usable & (1u << slot))) {
            *devfn = PCI_DEVFN(slot, 0);
            return 0;
        }
    }
    return -ENOSPC;
}

void machine_set_passthrough_ops(struct machine *m,
                                 const struct passthrough_ops *ops)
{
    m->has_passthrough_ops = ops != NULL;
    if (ops)
        m->passthrough_ops = *ops;
}

void machine_release_passthrough(struct machine *m)
{
    struct machine_pci_device **pp = &m->pci_devices;

    while (*pp) {
        struct machine_pci_device *d = *pp;

        if (!d->pt) {
            pp = &d->next;
            continue;
        }
        *pp = d->next;
        log_info("device '%s': pass-through released", d->id);
        destroy_device(d);
    }
    m->has_passthrough_ops = false;
}

/* Places a control-plane function at vdevfn (< 0: first free hot-pluggable
 * slot): a pass-through of *host if host is not NULL, else a pci-testdev. */
static int place_device(struct machine *m, const char *driver, const char *id,
                        int vdevfn, const struct pci_host_addr *host,
                        bool permissive, char *err, size_t errlen)
{
    bool hot = m->state != RUN_PRELAUNCH && !m->building;
    struct machine_pci_device *d;
    uint8_t devfn;
    int rc;

    if (id && machine_find_device(m, id)) {
        snprintf(err, errlen, "Duplicate device ID '%.64s'", id);
        return -EEXIST;
    }
    if (hot && !m->has_hotplug) {
        snprintf(err, errlen, "Bus 'pci.0' does not support hotplugging");
        return -EPERM;
    }
    if (vdevfn >= 0) {
        devfn = (uint8_t)vdevfn;
    } else if (free_hotplug_slot(m, &devfn) < 0) {
        snprintf(err, errlen, "no free hot-pluggable PCI slot");
        return -ENOSPC;
    }
    if (pci_find_function(&m->pci, devfn)) {
        snprintf(err, errlen, "PCI: slot %d function %d not available for %s, "
                 "in use by %s", PCI_SLOT(devfn), PCI_FUNC(devfn), driver,
                 pci_find_function(&m->pci, devfn)->name);
        return -EBUSY;
    }
    /* The guest looks at a slot through function 0 and only when it is
     * announced: a function added behind a present function 0 would never
     * be seen (QEMU refuses it the same way). */
    if (hot && PCI_FUNC(devfn) &&
        pci_find_function(&m->pci, PCI_DEVFN(PCI_SLOT(devfn), 0))) {
        snprintf(err, errlen, "PCI: slot %d function 0 already occupied by "
                 "%s, new func %s cannot be exposed to guest.",
                 PCI_SLOT(devfn),
                 pci_find_function(&m->pci, PCI_DEVFN(PCI_SLOT(devfn), 0))->name,
                 driver);
        return -EBUSY;
    }
    d = calloc(1, sizeof(*d));
    if (!d || !(d->id = strdup(id ? id : ""))) {
        free(d);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    d->devfn = devfn;
    if (host) {
        rc = passthrough_create(NULL, host, permissive,
                                m->has_passthrough_ops ? &m->passthrough_ops
                                                       : NULL,
                                d->id, &d->pt, err, errlen);
        if (rc == 0) {
            rc = passthrough_attach(d->pt, &m->pci, devfn);
            if (rc < 0)
                snprintf(err, errlen, "cannot place %s: %s", driver,
                         strerror(-rc));
        }
        if (rc < 0)
            goto fail;
    } else {
        rc = pci_testdev_create(&m->pci, devfn, d->id, &d->testdev);
        if (rc < 0) {
            snprintf(err, errlen, "cannot create %s: %s", driver,
                     strerror(-rc));
            goto fail;
        }
    }
    if (m->has_hotplug) {
        rc = pcihp_plugged(&m->hotplug, devfn,
                           hot ? PCIHP_PLUG_HOT : PCIHP_PLUG_COLD);
        if (rc < 0) {
            snprintf(err, errlen, rc == -EBUSY
                     ? "slot %d is being unplugged" : "slot %d does not accept "
                     "hot-plugged devices", PCI_SLOT(devfn));
            goto fail;
        }
    }
    d->next = m->pci_devices;
    m->pci_devices = d;
    log_info("device '%s' (%s) added at 00:%02x.%x%s", d->id, driver,
             PCI_SLOT(devfn), PCI_FUNC(devfn), hot ? ", hot-plugged" : "");
    return 0;
fail:
    destroy_device(d);
    return rc;
}

int machine_device_add(struct machine *m, const char *driver, const char *id,
                       const char *addr, char *err, size_t errlen)
{
    int vdevfn = -1;

    if (!strcmp(driver, "xen-pci-passthrough")) {
        snprintf(err, errlen, "Property 'xen-pci-passthrough.hostaddr' is "
                 "missing");
        return -EINVAL;
    }
    if (strcmp(driver, "pci-testdev")) {
        snprintf(err, errlen, "'%.64s' is not a valid device model name", driver);
        return -EINVAL;
    }
    if (addr && (vdevfn = machine_parse_pci_addr(addr)) < 0) {
        snprintf(err, errlen, "Property 'addr' does not accept '%.32s'", addr);
        return -EINVAL;
    }
    return place_device(m, driver, id, vdevfn, NULL, false, err, errlen);
}

int machine_passthrough_add(struct machine *m, const char *host, int vdevfn,
                            bool permissive, const char *id, char *err,
                            size_t errlen)
{
    struct pci_host_addr h;

    if (pci_host_addr_parse(host, &h, NULL) < 0) {
        snprintf(err, errlen, "Property 'xen-pci-passthrough.hostaddr' does "
                 "not accept '%.32s'", host ? host : "");
        return -EINVAL;
    }
    if (vdevfn > 0xff) {
        snprintf(err, errlen, "invalid guest devfn 0x%x", vdevfn);
        return -EINVAL;
    }
    /* One host function, one guest function: two would share (and fight
     * over) the same pirqs and BAR mappings. */
    for (const struct machine_pci_device *d = m->pci_devices; d; d = d->next)
        if (d->pt && d->pt->host.seg == h.seg && d->pt->host.bus == h.bus &&
            d->pt->host.dev == h.dev && d->pt->host.fn == h.fn) {
            snprintf(err, errlen, "host PCI device %04x:%02x:%02x.%u is "
                     "already attached as '%.64s'", h.seg, h.bus, h.dev, h.fn,
                     d->id);
            return -EBUSY;
        }
    return place_device(m, "xen-pci-passthrough", id, vdevfn < 0 ? -1 : vdevfn,
                        &h, permissive, err, errlen);
}

int machine_device_del(struct machine *m, const char *id, char *err,
                       size_t errlen)
{
    const struct machine_pci_device *d = machine_find_device(m, id);
    int rc;

    if (!d) {
        snprintf(err, errlen, "Device '%.64s' not found", id);
        return -ENODEV;
    }
    if (!m->has_hotplug) {
        snprintf(err, errlen, "Bus 'pci.0' does not support hotplugging");
        return -EPERM;
    }
    rc = pcihp_request_unplug(&m->hotplug, PCI_SLOT(d->devfn));
    if (rc == -EALREADY)
        snprintf(err, errlen, "Device %.64s is already in the process of unplug",
                 id);
    else if (rc < 0)
        snprintf(err, errlen, "Device %.64s cannot be unplugged: %s", id,
                 strerror(-rc));
    return rc;
}

/* --- device state save and restore ---------------------------------------- */

#define MACHINE_SS_NAME "machine"
#define MACHINE_SS_VERSION 1
#define MACHINE_SS_DRIVER_MAX 32
#define MACHINE_SS_MAX_DEVICES 256

/* A control-plane device as the stream lists it. */
struct saved_device {
    char driver[MACHINE_SS_DRIVER_MAX];
    char *id;
    uint8_t devfn;
};

static int save_machine_section(const struct machine *m, struct ss_writer *w)
{
    uint16_t n = 0;

    for (const struct machine_pci_device *d = m->pci_devices; d; d = d->next) {
        if (d->pt) {
            /* libxl detaches PCI devices before a save and attaches them
             * again after the restore: their host state is not ours. */
            log_err("savestate: pass-through device '%s' cannot be saved; "
                    "detach it first", d->id);
            return -EOPNOTSUPP;
        }
        if (!d->testdev) {
            log_err("savestate: device '%s' has no savable driver", d->id);
            return -EOPNOTSUPP;
        }
        n++;
    }
    ss_begin_section(w, MACHINE_SS_NAME, 0, MACHINE_SS_VERSION);
    /* What the command line decided; the sections say the rest. */
    ss_put_bool(w, m->has_pm);
    ss_put_bool(w, m->has_hotplug);
    ss_put_bool(w, m->has_platform);
    ss_put_u8(w, (uint8_t)m->n_uarts);
    ss_put_u16(w, n);
    for (const struct machine_pci_device *d = m->pci_devices; d; d = d->next) {
        ss_put_string(w, "pci-testdev");
        ss_put_string(w, d->id);
        ss_put_u8(w, d->devfn);
    }
    return ss_end_section(w);
}

static int save_devices(const struct machine *m, struct ss_writer *w)
{
    int rc = save_machine_section(m, w);

    if (rc < 0)
        return rc;
    pci_host_save(&m->host, w);
    i440fx_save(&m->i440fx, w);
    piix3_save(&m->piix3, w);
    piix_ide_save(&m->ide, w);
    if (m->has_pm)
        piix4_pm_save(&m->pm, w);
    if (m->has_platform)
        xen_platform_save(&m->platform, w);
    for (const struct machine_pci_device *d = m->pci_devices; d; d = d->next)
        pci_testdev_save(d->testdev, w);
    if (m->has_hotplug)
        pcihp_save(&m->hotplug, w);
    cmos_save(&m->cmos, w);
    for (unsigned i = 0; i < m->n_uarts; i++)
        uart_save(&m->uarts[i], w);
    return ss_writer_finish(w);
}

static void check_config(const struct machine *m, struct ss_reader *r,
                         bool has_pm, bool has_hotplug, bool has_platform,
                         uint8_t n_uarts)
{
    if (has_pm != m->has_pm || has_hotplug != m->has_hotplug)
        ss_fail(r, "has_pm", "ACPI %s, hot-plug %s; this machine has ACPI %s, "
                "hot-plug %s", has_pm ? "on" : "off",
                has_hotplug ? "on" : "off", m->has_pm ? "on" : "off",
                m->has_hotplug ? "on" : "off");
    else if (has_platform != m->has_platform)
        ss_fail(r, "has_platform", "platform device %s, this machine %s",
                has_platform ? "present" : "absent",
                m->has_platform ? "has one" : "has none");
    else if (n_uarts != m->n_uarts)
        ss_fail(r, "n_uarts", "%u serial ports, this machine has %u", n_uarts,
                m->n_uarts);
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e)
            return false;
    return true;
}

static void check_device(struct machine *m, struct ss_reader *r,
                         const struct saved_device *list, size_t i)
{
    const struct saved_device *sd = &list[i];
    const struct pci_function *f = pci_find_function(&m->pci, sd->devfn);
    struct machine_pci_device **pp;

    if (strcmp(sd->driver, "pci-testdev")) {
        ss_fail(r, "devices", "device %zu: driver '%s' is unknown", i,
                sd->driver);
        return;
    }
    if (!printable(sd->id)) {
        ss_fail(r, "devices", "device %zu: id with unprintable bytes", i);
        return;
    }
    for (size_t j = 0; j < i; j++) {
        if (list[j].devfn == sd->devfn || (*sd->id && !strcmp(list[j].id,
                                                              sd->id))) {
            ss_fail(r, "devices", "device %zu ('%s' at 00:%02x.%x) collides "
                    "with device %zu", i, sd->id, PCI_SLOT(sd->devfn),
                    PCI_FUNC(sd->devfn), j);
            return;
        }
    }
    pp = find_device_link(m, sd->devfn);
    if (pp && strcmp((*pp)->id, sd->id))
        ss_fail(r, "devices", "00:%02x.%x holds '%s' here, the stream has "
                "'%s'", PCI_SLOT(sd->devfn), PCI_FUNC(sd->devfn), (*pp)->id,
                sd->id);
    else if (!pp && f)
        ss_fail(r, "devices", "00:%02x.%x is '%s', part of this machine",
                PCI_SLOT(sd->devfn), PCI_FUNC(sd->devfn), f->name);
}

/* Reads the machine section and makes the control-plane devices match its
 * list, recording in created[] the devfns it added. */
static int load_machine_section(struct machine *m, struct ss_reader *r,
                                uint8_t *created, unsigned *n_created)
{
    struct saved_device *list = NULL;
    bool has_pm, has_hotplug, has_platform;
    uint8_t n_uarts;
    uint16_t n = 0;
    uint32_t version;
    char *idbuf = NULL;
    size_t i;
    int rc;

    rc = ss_open_section(r, MACHINE_SS_NAME, 0, MACHINE_SS_VERSION, &version);
    if (rc < 0)
        return rc;
    ss_get_bool(r, "has_pm", &has_pm);
    ss_get_bool(r, "has_hotplug", &has_hotplug);
    ss_get_bool(r, "has_platform", &has_platform);
    ss_get_u8(r, "n_uarts", &n_uarts);
    if (ss_ok(r))
        check_config(m, r, has_pm, has_hotplug, has_platform, n_uarts);
    ss_get_u16(r, "n_devices", &n);
    if (ss_ok(r) && n > MACHINE_SS_MAX_DEVICES)
        ss_fail(r, "n_devices", "%u devices, a PCI bus holds %d", n,
                MACHINE_SS_MAX_DEVICES);
    if (!ss_ok(r))
        goto close;
    list = calloc(n ? n : 1, sizeof(*list));
    idbuf = malloc(SS_STRING_MAX + 1);
    if (!list || !idbuf) {
        rc = -ENOMEM;
        goto out;
    }
    for (i = 0; i < n && ss_ok(r); i++) {
        ss_get_string(r, "devices.driver", list[i].driver,
                      sizeof(list[i].driver));
        ss_get_string(r, "devices.id", idbuf, SS_STRING_MAX + 1);
        ss_get_u8(r, "devices.devfn", &list[i].devfn);
        if (!ss_ok(r))
            break;
        list[i].id = strdup(idbuf);
        if (!list[i].id) {
            rc = -ENOMEM;
            goto out;
        }
        check_device(m, r, list, i);
    }
    /* Every device of ours must be in the stream: loading cannot unplug. */
    for (const struct machine_pci_device *d = m->pci_devices; d && ss_ok(r);
         d = d->next) {
        bool listed = false;

        for (i = 0; i < n; i++)
            listed |= list[i].devfn == d->devfn;
        if (!listed)
            ss_fail(r, "devices", "'%s' at 00:%02x.%x is not in the stream",
                    d->id, PCI_SLOT(d->devfn), PCI_FUNC(d->devfn));
    }
close:
    rc = ss_close_section(r);
    if (rc < 0)
        goto out;
    /* Oldest first, so the list ends up in the order it was saved in. */
    for (i = n; i-- > 0;) {
        struct machine_pci_device *d;

        if (find_device_link(m, list[i].devfn))
            continue;
        d = calloc(1, sizeof(*d));
        if (!d) {
            rc = -ENOMEM;
            goto out;
        }
        d->id = list[i].id;
        list[i].id = NULL;
        d->devfn = list[i].devfn;
        rc = pci_testdev_create(&m->pci, d->devfn, d->id, &d->testdev);
        if (rc < 0) {
            ss_fail(r, "devices", "cannot re-create '%s' at 00:%02x.%x: %s",
                    d->id, PCI_SLOT(d->devfn), PCI_FUNC(d->devfn),
                    strerror(-rc));
            destroy_device(d);
            goto out;
        }
        d->next = m->pci_devices;
        m->pci_devices = d;
        if (created)
            created[(*n_created)++] = d->devfn;
    }
out:
    if (rc == -ENOMEM)
        ss_fail(r, NULL, "out of memory");
    for (i = 0; list && i < n; i++)
        free(list[i].id);
    free(list);
    free(idbuf);
    return rc < 0 ? rc : 0;
}

static int load_devices(struct machine *m, struct ss_reader *r,
                        uint8_t *created, unsigned *n_created)
{
    int rc;

    rc = load_machine_section(m, r, created, n_created);
    if (rc < 0)
        return rc;
    /* Every BAR off first: the stream's placement is free of overlaps, the
     * one the machine has now need not be compatible with it. The PM block
     * moves before any BAR decodes again, for the same reason. */
    pci_bus_unmap_bars(&m->pci);
    rc = pci_host_load(&m->host, r);
    if (rc == 0 && m->has_pm)
        rc = piix4_pm_load(&m->pm, r);
    if (rc == 0)
        rc = i440fx_load(&m->i440fx, r);
    if (rc == 0)
        rc = piix3_load(&m->piix3, r);
    if (rc == 0)
        rc = piix_ide_load(&m->ide, r);
    if (rc == 0 && m->has_platform)
        rc = xen_platform_load(&m->platform, r);
    for (struct machine_pci_device *d = m->pci_devices; d && rc == 0;
         d = d->next)
        rc = pci_testdev_load(d->testdev, r);
    if (rc == 0 && m->has_hotplug)
        rc = pcihp_load(&m->hotplug, r);
    if (rc == 0)
        rc = cmos_load(&m->cmos, r);
    for (unsigned i = 0; i < m->n_uarts && rc == 0; i++)
        rc = uart_load(&m->uarts[i], r);
    if (rc < 0)
        return rc;
    /* Events wait behind a raised GPE (pcihp_gpe_acked re-raises while any
     * are left), so a queue without it would never be delivered. */
    if (ss_ok(r) && m->has_hotplug && m->has_pm &&
        pcihp_queued_events(&m->hotplug) &&
        !(m->pm.gpe_sts & (1u << pcihp_gpe_bit(&m->hotplug))))
        ss_fail(r, NULL, "%u hot-plug events queued but GPE0 bit %u is clear",
                pcihp_queued_events(&m->hotplug), pcihp_gpe_bit(&m->hotplug));
    return ss_reader_finish(r);
}

int machine_save_state(struct machine *m, int fd)
{
    struct ss_writer w;
    int rc;

    /* The stream is Xen's device state: the software machine's vCPU, RAM
     * and its own timers are not in it, so it would restore a guest that
     * never existed. */
    if (m->has_sim) {
        log_warn("savestate: -machine sim does not save its state");
        return -EOPNOTSUPP;
    }
    ss_writer_init(&w);
    rc = save_devices(m, &w);
    if (rc < 0)
        log_err("savestate: cannot save the device state: %s", strerror(-rc));
    else
        rc = ss_write_fd(fd, w.buf, w.len);
    ss_writer_fini(&w);
    return rc;
}

/* Puts the machine back as the snapshot (our own save, moments old) has it
 * after a refused load. */
static void undo_load(struct machine *m, const struct ss_writer *snapshot,
                      const uint8_t *created, unsigned n_created)
{
    struct ss_reader r;
    unsigned none = 0;
    int rc;

    for (unsigned i = 0; i < n_created; i++) {
        struct machine_pci_device **pp = find_device_link(m, created[i]), *d;

        if (!pp)
            continue;
        d = *pp;
        *pp = d->next;
        destroy_device(d);
    }
    rc = ss_reader_init(&r, snapshot->buf, snapshot->len);
    if (rc == 0)
        rc = load_devices(m, &r, NULL, &none);
    if (rc < 0)
        log_err("savestate: could not restore the state before the refused "
                "load: %s", ss_reader_error(&r));
    ss_reader_fini(&r);
}

int machine_load_state_err(struct machine *m, int fd, char *err,
                           size_t errlen)
{
    uint8_t created[MACHINE_SS_MAX_DEVICES];
    unsigned n_created = 0;
    struct ss_writer snapshot;
    struct ss_reader r;
    int rc;

    if (m->has_sim) {
        snprintf(err, errlen, "-machine sim does not restore state");
        return -EOPNOTSUPP;
    }
    ss_writer_init(&snapshot);
    rc = ss_reader_read_fd(&r, fd);
    if (rc < 0)
        goto out;
    rc = save_devices(m, &snapshot);
    if (rc < 0) {
        ss_fail(&r, NULL, "cannot snapshot the machine: %s", strerror(-rc));
        goto out;
    }
    rc = load_devices(m, &r, created, &n_created);
    if (rc < 0)
        undo_load(m, &snapshot, created, n_created);
    else
        log_info("device state loaded (%zu bytes, %zu sections)", r.len,
                 r.n_sections);
out:
    if (rc < 0 && err)
        snprintf(err, errlen, "%s", ss_reader_error(&r));
    ss_reader_fini(&r);
    ss_writer_fini(&snapshot);
    return rc;
}

int machine_load_state(struct machine *m, int fd)
{
    return machine_load_state_err(m, fd, NULL, 0);
}
