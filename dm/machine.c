#include "machine.h"

#include <errno.h>
#include <string.h>

#include "../lib/log.h"

const char *run_state_name(enum run_state s)
{
    switch (s) {
    case RUN_PRELAUNCH: return "prelaunch";
    case RUN_RUNNING: return "running";
    case RUN_PAUSED: return "paused";
    case RUN_SHUTDOWN: return "shutdown";
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
    notify_irq(opaque, irq, level);
}

static void sink_pci_intx(void *opaque, unsigned slot, unsigned pin, bool level)
{
    notify_irq(opaque, irq_pci_intx_gsi(slot, pin), level);
}

static const struct irq_sink_ops machine_irq_ops = {
    .isa_irq = sink_isa_irq,
    .pci_intx = sink_pci_intx,
};

int machine_init(struct machine *m, const struct dm_options *opts,
                 struct loop *loop)
{
    struct guest_memory mem;
    int rc;

    memset(m, 0, sizeof(*m));
    m->opts = opts;
    m->loop = loop;
    m->state = opts->start_paused ? RUN_PRELAUNCH : RUN_RUNNING;
    m->irq = (struct irq_sink){.ops = &machine_irq_ops, .opaque = m};
    bus_init(&m->bus);
    pci_bus_init(&m->pci, &m->bus);

    /* Without a domain the guest's RAM lives here, so pointer transfers
     * and qtest memory commands have somewhere to go. */
    rc = local_ram_init(&m->ram, opts->ram_mb << 20);
    if (rc < 0) {
        log_err("cannot reserve %llu MiB of guest RAM: %s",
                (unsigned long long)opts->ram_mb, strerror(-rc));
        goto out;
    }
    local_ram_accessor(&m->ram, &mem);
    dispatcher_init(&m->dispatch, &m->bus, &mem, NULL);

    rc = pci_host_init(&m->host, &m->bus);
    if (rc < 0)
        goto out;
    /* The chipset functions (i440FX, PIIX3, PIIX4 PM, platform device) are
     * added here as they land; until then bus 0 is empty and every
     * configuration read returns all-ones. */
out:
    if (rc < 0)
        machine_fini(m);
    return rc;
}

void machine_fini(struct machine *m)
{
    pci_host_fini(&m->host);
    bus_fini(&m->bus);
    local_ram_fini(&m->ram);
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
    struct machine_event ev = {MACHINE_EVENT_RESET, guest, reason};

    log_info("machine reset (%s)", reason);
    pci_host_reset(&m->host);
    pci_bus_reset(&m->pci);
    notify(m, &ev);
}

void machine_stop(struct machine *m)
{
    struct machine_event ev = {MACHINE_EVENT_STOP, false, NULL};

    if (m->state != RUN_RUNNING)
        return;
    m->state = RUN_PAUSED;
    log_info("machine paused");
    notify(m, &ev);
}

void machine_cont(struct machine *m)
{
    struct machine_event ev = {MACHINE_EVENT_RESUME, false, NULL};

    if (m->state != RUN_PAUSED && m->state != RUN_PRELAUNCH)
        return;
    m->state = RUN_RUNNING;
    log_info("machine running");
    notify(m, &ev);
}

void machine_shutdown(struct machine *m, bool guest, const char *reason)
{
    struct machine_event ev = {MACHINE_EVENT_SHUTDOWN, guest, reason};

    m->state = RUN_SHUTDOWN;
    log_info("shutting down (%s)", reason);
    notify(m, &ev);
    loop_quit(m->loop, 0);
}
