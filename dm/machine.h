/* The machine: which devices exist and where. Reading machine.c tells you the
 * guest's whole hardware. It also owns the run state (what QMP's
 * query-status reports) and fans machine events and interrupts out to
 * whoever listens (QMP clients, the qtest socket, the Xen transport). */
#ifndef XENDM_DM_MACHINE_H
#define XENDM_DM_MACHINE_H

#include <stdbool.h>

#include "../hw/bus.h"
#include "../hw/irq.h"
#include "../hw/pci.h"
#include "../ioreq/dispatch.h"
#include "../ioreq/ram.h"
#include "../lib/loop.h"
#include "options.h"

enum run_state { RUN_PRELAUNCH, RUN_RUNNING, RUN_PAUSED, RUN_SHUTDOWN };

enum machine_event_kind {
    MACHINE_EVENT_RESET,
    MACHINE_EVENT_STOP,
    MACHINE_EVENT_RESUME,
    MACHINE_EVENT_SHUTDOWN,
};

struct machine_event {
    enum machine_event_kind kind;
    bool guest;         /* caused by the guest rather than the host */
    const char *reason; /* QEMU's ShutdownCause spelling, for RESET/SHUTDOWN */
};

struct machine_observer {
    void (*event)(void *opaque, const struct machine_event *ev);
    /* An interrupt line changed: ISA irq n, or a PCI INTx as its GSI. */
    void (*irq)(void *opaque, unsigned line, bool level);
    void *opaque;
    struct machine_observer *next;
};

struct machine {
    const struct dm_options *opts;
    struct loop *loop;
    struct bus bus;
    struct pci_bus pci;
    struct pci_host host;
    struct local_ram ram;
    struct dispatcher dispatch;
    struct irq_sink irq;
    enum run_state state;
    struct machine_observer *observers;
};

int machine_init(struct machine *m, const struct dm_options *opts,
                 struct loop *loop);
void machine_fini(struct machine *m);

void machine_add_observer(struct machine *m, struct machine_observer *obs);
void machine_remove_observer(struct machine *m, struct machine_observer *obs);

/* Resets every device. reason is QEMU's spelling, e.g. "host-qmp-system-reset"
 * or "guest-reset". */
void machine_reset(struct machine *m, bool guest, const char *reason);
void machine_stop(struct machine *m);
/* Leaves prelaunch or paused. */
void machine_cont(struct machine *m);
/* The daemon is going away (QMP quit, signal): SHUTDOWN is announced. */
void machine_shutdown(struct machine *m, bool guest, const char *reason);

const char *run_state_name(enum run_state s);

#endif
