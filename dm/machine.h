/* The machine: which devices exist and where. Reading machine.c tells you the
 * guest's whole hardware. It also owns the run state (what QMP's
 * query-status reports) and fans machine events and interrupts out to
 * whoever listens (QMP clients, the qtest socket, the Xen transport). */
#ifndef XENDM_DM_MACHINE_H
#define XENDM_DM_MACHINE_H

#include <stdbool.h>

#include "../block/disk.h"
#include "../hw/bus.h"
#include "../hw/cmos.h"
#include "../hw/i440fx.h"
#include "../hw/irq.h"
#include "../hw/pci.h"
#include "../hw/passthrough.h"
#include "../hw/pci_testdev.h"
#include "../hw/pcihp.h"
#include "../hw/piix3.h"
#include "../hw/piix4_pm.h"
#include "../hw/piix_ide.h"
#include "../hw/uart.h"
#include "../hw/xen_platform.h"
#include "../lib/charbe.h"
#include "../ioreq/dispatch.h"
#include "../ioreq/ram.h"
#include "../lib/loop.h"
#include "fdset.h"
#include "options.h"
#include "sim.h"

enum run_state {
    RUN_PRELAUNCH,
    RUN_RUNNING,
    RUN_PAUSED,
    RUN_SUSPENDED,
    RUN_SHUTDOWN,
    /* -machine sim: the vCPU met something it cannot emulate; only a
     * reset (QMP system_reset) revives it, into paused as in QEMU. */
    RUN_INTERNAL_ERROR,
};

enum machine_event_kind {
    MACHINE_EVENT_RESET,
    MACHINE_EVENT_STOP,
    MACHINE_EVENT_RESUME,
    MACHINE_EVENT_SHUTDOWN,
    MACHINE_EVENT_SUSPEND,
    MACHINE_EVENT_WAKEUP,
    MACHINE_EVENT_DEVICE_DELETED,
};

struct machine_event {
    enum machine_event_kind kind;
    bool guest;         /* caused by the guest rather than the host */
    const char *reason; /* QEMU's ShutdownCause spelling, for RESET/SHUTDOWN */
    const char *device; /* DEVICE_DELETED: the id ("" if none) */
};

struct machine_observer {
    void (*event)(void *opaque, const struct machine_event *ev);
    /* An interrupt line changed: ISA irq n, or a PCI INTx as its GSI. */
    void (*irq)(void *opaque, unsigned line, bool level);
    void *opaque;
    struct machine_observer *next;
};

/* Where the platform device sits (xen-dm-interfaces.md §6.2: QEMU's xenfv
 * creates it right after the chipset). */
#define MACHINE_PLATFORM_DEVFN PCI_DEVFN(2, 0)
#define MACHINE_MAX_UARTS 2

/* A function added by the control plane (QMP device_add, xenstore
 * pci-ins) rather than by the machine itself: a pci-testdev or a
 * pass-through host function (exactly one of the two). */
struct machine_pci_device {
    char *id;
    uint8_t devfn;
    struct pci_testdev *testdev;
    struct passthrough *pt;
    struct machine_pci_device *next;
};

/* What the platform under the machine does with the guest's power requests.
 * Under Xen the hypervisor rebuilds or destroys the domain; without one
 * (NULL hooks) the machine resets or stops itself. */
struct machine_platform_ops {
    int (*reboot)(void *opaque);
    int (*poweroff)(void *opaque);
    int (*suspend)(void *opaque); /* S3: after the devices were reset */
    int (*wakeup)(void *opaque);
    /* Live migration: report the pages the daemon writes. */
    void (*set_log_dirty)(void *opaque, bool on);
    void *opaque;
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
    /* Where interrupts really go (Xen's virtual controllers), if anywhere;
     * observers (qtest) see them as well. */
    const struct irq_sink *irq_backend;
    struct machine_platform_ops platform_ops;
    enum run_state state;
    struct machine_observer *observers;
    struct loop_work reset_work, poweroff_work, suspend_work;
    const char *pending_reset_reason;

    struct i440fx i440fx;
    struct piix3 piix3;
    struct piix_ide ide;
    struct cmos cmos;
    bool has_pm;
    struct piix4_pm pm;
    bool has_hotplug;
    struct pcihp hotplug;
    bool has_platform;
    struct xen_platform platform;
    unsigned n_uarts;
    struct uart uarts[MACHINE_MAX_UARTS];
    struct charbe *serial[MACHINE_MAX_UARTS];
    struct machine_pci_device *pci_devices;
    /* How pass-through functions reach the hypervisor; without (no domain)
     * each step is only logged. */
    bool has_passthrough_ops;
    struct passthrough_ops passthrough_ops;
    /* Descriptors the control planes were handed (QMP add-fd). */
    struct fdsets fdsets;
    bool log_dirty;
    /* Disks described by -drive or xenstore's vbd keys. */
    struct disk_list disks;
    bool building; /* machine_init is running: devices are cold-plugged */
    /* -machine sim: the vCPU, the devices Xen would emulate, the run loop. */
    bool has_sim;
    struct sim sim;
};

int machine_init(struct machine *m, const struct dm_options *opts,
                 struct loop *loop);
void machine_fini(struct machine *m);

/* Attaching to a hypervisor: where interrupts and power requests go. */
void machine_set_irq_backend(struct machine *m, const struct irq_sink *sink);
void machine_set_platform_ops(struct machine *m,
                              const struct machine_platform_ops *ops);

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

/* -machine sim: the vCPU cannot go on; the machine stops in
 * RUN_INTERNAL_ERROR and says so to observers (QMP STOP). */
void machine_internal_error(struct machine *m);

/* Takes over the disk list (from -drive or xenstore) and logs it: the IDE
 * engine that will serve it is not emulated yet. */
void machine_set_disks(struct machine *m, struct disk_list *disks);

/* Live-migration dirty logging (QMP xen-set-global-dirty-log, xenstore
 * logdirty/cmd). */
void machine_set_log_dirty(struct machine *m, bool on);

/* The ACPI power button (QMP system_powerdown): -machine sim only, where
 * PM1a is ours; -EOPNOTSUPP otherwise. */
int machine_powerdown(struct machine *m);

/* S3 wake-up (QMP system_wakeup). */
int machine_wakeup(struct machine *m);

/* Control-plane hot-plug. device_add places a pci-testdev (pass-through
 * goes through machine_passthrough_add) at addr "SLOT[.FN]" (hex) or the first free
 * hot-pluggable slot; device_del asks the guest to eject it, and
 * DEVICE_DELETED follows when it has (or a reset flushed it). Errors are
 * negative errnos with QEMU's wording in err. */
int machine_device_add(struct machine *m, const char *driver, const char *id,
                       const char *addr, char *err, size_t errlen);
int machine_device_del(struct machine *m, const char *id, char *err,
                       size_t errlen);
/* Pass-through of host function host ("SSSS:BB:DD.F", read under
 * passthrough_sysfs_root()) at guest vdevfn, or at function 0 of the first
 * free hot-pluggable slot when vdevfn < 0. Errors as machine_device_add;
 * -ENOENT when the host function does not exist. */
int machine_passthrough_add(struct machine *m, const char *host, int vdevfn,
                            bool permissive, const char *id, char *err,
                            size_t errlen);
/* QEMU's addr property: "S", "S.F", "0xS", hex. Returns the devfn or
 * -EINVAL. */
int machine_parse_pci_addr(const char *addr);
/* Hypervisor side of pass-through, from now on (NULL: logging only). Set
 * before any pass-through function is added. */
void machine_set_passthrough_ops(struct machine *m,
                                 const struct passthrough_ops *ops);
/* The daemon is leaving while the hypervisor handles still work: every
 * pass-through function is unmapped, unbound and removed (the guest is not
 * told), and later ones would only log. */
void machine_release_passthrough(struct machine *m);
const struct machine_pci_device *machine_find_device(const struct machine *m,
                                                     const char *id);

/* Device state (hw/savestate.h has the stream format). Save writes every
 * device the machine has, plus the control-plane devices (driver, id,
 * devfn), to fd. Load expects a machine built from the same command line
 * (as QEMU's -incoming and libxl's restore do): it re-creates the
 * control-plane devices the stream lists and the machine lacks, then loads
 * every device. It is all or nothing: on any error (the stream is
 * untrusted) the machine is put back exactly as it was, re-created devices
 * removed, and the reason logged and, if err is not NULL, written there.
 * The run state, guest RAM and host-side counters are not part of it. */
int machine_save_state(struct machine *m, int fd);
int machine_load_state(struct machine *m, int fd);
int machine_load_state_err(struct machine *m, int fd, char *err,
                           size_t errlen);

#endif
