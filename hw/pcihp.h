/* PCI hot-plug controller for bus 0 (slots 0-31), race-free.
 *
 * One per-slot state (functions present, hot-pluggable, removal pending) is
 * shown to the guest through one of two register layouts, chosen at init to
 * match the DSDT hvmloader gives the guest:
 *
 *   qemu-xen:  0xAE00-0xAE0F, four 32-bit registers (PCIU up, PCID down,
 *              B0EJ eject, B0RM removable), GPE0 status bit 1.
 *   qemu-trad: 0x10C0-0x1141, byte registers (PSTA event code, PSTB event
 *              devfn, PH00..PHFE status nibbles per devfn pair), GPE0 status
 *              bit 3, with an event queue behind PSTA/PSTB.
 *
 * The rules are those of ../shared/docs/hotplug.md: "up" is never stored
 * (it reads present & hotpluggable), "down" is sticky per slot until that
 * slot is ejected or the machine is reset, a reset ejects every slot whose
 * removal is pending, and no request is ever dropped.
 *
 * The controller owns neither the GPE0 block (the PIIX4 PM device does) nor
 * the devices (the machine does): it talks to both through pcihp_ops. */
#ifndef XENDM_HW_PCIHP_H
#define XENDM_HW_PCIHP_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "pci.h"

#define PCIHP_SLOTS 32

enum pcihp_layout { PCIHP_LAYOUT_QEMU_XEN, PCIHP_LAYOUT_QEMU_TRAD };

/* Cold: part of the machine before the guest runs, announced to nobody.
 * Hot: inserted while the guest runs; function 0 raises an event. */
enum pcihp_plug_kind { PCIHP_PLUG_COLD, PCIHP_PLUG_HOT };

/* qemu-xen layout (tools/libacpi/mk_dsdt.c, --dm-version qemu-xen). */
#define PCIHP_QEMU_XEN_BASE 0xae00
#define PCIHP_QEMU_XEN_LEN 0x10
#define PCIHP_QEMU_XEN_GPE_BIT 1
enum {
    PCIHP_PCIU = 0x0, /* up: present & hotpluggable (read-only) */
    PCIHP_PCID = 0x4, /* down: removal pending (read-only) */
    PCIHP_B0EJ = 0x8, /* eject: write a one-hot slot mask; reads 0 */
    PCIHP_B0RM = 0xc, /* removable: hot-pluggable slots (read-only) */
};

/* qemu-trad layout (mk_dsdt.c --dm-version qemu-xen-traditional). */
#define PCIHP_QEMU_TRAD_BASE 0x10c0
#define PCIHP_QEMU_TRAD_LEN 0x82
#define PCIHP_QEMU_TRAD_GPE_BIT 3
enum {
    PCIHP_PSTA = 0x0, /* event code of the queue head (read-only) */
    PCIHP_PSTB = 0x1, /* devfn of the queue head (read-only) */
    PCIHP_PH00 = 0x2, /* PHxx at PH00 + devfn / 2: status of a devfn pair */
};
#define PCIHP_EVENT_INSERT 0 /* Notify(Sxx, 0): bus check */
#define PCIHP_EVENT_REMOVE 3 /* Notify(Sxx, 3): eject request */
#define PCIHP_STATUS_PRESENT 0xf /* nibble of a present function */
#define PCIHP_EJECT_EVEN 0x01 /* _EJ0 of the even devfn of a pair */
#define PCIHP_EJECT_ODD 0x10  /* _EJ0 of the odd devfn of a pair */

struct pcihp_ops {
    /* Sets GPE0 status bit `bit`; the PM device raises the SCI if the guest
     * enabled it. May be called from inside pcihp_gpe_acked(). */
    void (*raise_gpe)(void *opaque, unsigned bit);
    /* Removes and frees the function at devfn (pci_unregister_function and
     * whatever the device needs). Called for every hot-pluggable function of
     * an ejected slot, function 7 first. */
    void (*unplug_function)(void *opaque, uint8_t devfn);
    /* Slot `slot` has been ejected. requested: the control plane asked for it
     * (xenstore state pci-removed / QMP DEVICE_DELETED is due); false: the
     * guest ejected on its own. Called exactly once per ejected slot, after
     * the controller's state is final, so it may call back into it. */
    void (*removed)(void *opaque, unsigned slot, bool requested);
    void *opaque;
};

struct pcihp_event {
    uint8_t code; /* PCIHP_EVENT_* */
    uint8_t devfn;
};

/* Per slot at most one insert and one remove event can be queued (a second
 * of either kind is refused before it gets here, and eject and reset drop a
 * slot's events), plus a head the guest has read but not acknowledged. */
#define PCIHP_QUEUE_LEN (2 * PCIHP_SLOTS + 1)

struct pcihp {
    struct bus *bus;
    struct pci_bus *pci;
    enum pcihp_layout layout;
    struct pcihp_ops ops;
    struct bus_region region;
    /* Per slot, bit fn set: the function is known present (and, for the
     * qemu-trad status nibbles, reported as 0xF). */
    uint8_t functions_present[PCIHP_SLOTS];
    uint32_t hotpluggable;
    uint32_t removal_pending;
    /* qemu-trad only: events not yet acknowledged, head first. */
    struct pcihp_event queue[PCIHP_QUEUE_LEN];
    unsigned queue_len;
    bool head_read; /* the guest read PSTA or PSTB since the head changed */
};

/* Computes present/hotpluggable from what is registered on `pci` and maps
 * the layout's ports on `bus`. ops may be NULL (nothing is told). Returns 0,
 * -EINVAL for an unknown layout, or bus_map's error. */
int pcihp_init(struct pcihp *hp, struct bus *bus, struct pci_bus *pci,
               enum pcihp_layout layout, const struct pcihp_ops *ops);
void pcihp_fini(struct pcihp *hp);

/* GPE0 status bit of this layout: 1 (qemu-xen) or 3 (qemu-trad). */
unsigned pcihp_gpe_bit(const struct pcihp *hp);

/* Guest reset (0xCF9, keyboard controller, S3, system_reset): ejects every
 * slot whose removal is pending (removed(slot, true) for each), then
 * recomputes present and hotpluggable from the PCI bus. Queued qemu-trad
 * events survive only as inserts of functions still present, and raise the
 * GPE again; so reset the PM device (its GPE0 block) before this. */
void pcihp_reset(struct pcihp *hp);

/* The machine has just registered the function at devfn on the PCI bus.
 * Hot plug of function 0 raises the layout's event; other functions are
 * only marked present, so plug a multi-function device 7 down to 0 as libxl
 * does. Returns 0, or (nothing changed; the machine should unregister the
 * function again):
 *   -ENODEV  nothing registered at devfn
 *   -EBUSY   the slot's removal is pending (it would be ejected with it)
 *   -EPERM   hot plug into a slot that is not hot-pluggable, or of a function
 *            that is not (cold plug of such a function makes its slot not
 *            hot-pluggable instead)
 *   -EEXIST  hot plug of a function already present (cold plug of one is a
 *            no-op returning 0) */
int pcihp_plugged(struct pcihp *hp, uint8_t devfn, enum pcihp_plug_kind kind);

/* Control plane asks for the slot's removal (pci-rem, device_del): marks it
 * pending and raises the event. The guest ejects it later, or a reset does.
 * Returns 0, -EINVAL (slot > 31), -ENODEV (empty), -EPERM (not
 * hot-pluggable), or -EALREADY ("already in the process of unplug": nothing
 * is raised again). */
int pcihp_request_unplug(struct pcihp *hp, unsigned slot);

/* The PM device tells that the guest cleared GPE0 status bit `bit` (a set
 * bit, written 1 to clear). qemu-trad: if the guest read the queue head, the
 * next event is shown and the GPE raised again; if it did not (e.g. an OS
 * clearing stale status at boot), the head stays and the GPE is raised
 * again, so no event is lost to a blind clear. Other bits and the qemu-xen
 * layout: nothing to do. */
void pcihp_gpe_acked(struct pcihp *hp, unsigned bit);

/* Side-effect-free views, for tests, QMP and benchmarks. */
uint32_t pcihp_present(const struct pcihp *hp);      /* slots with a function */
uint32_t pcihp_hotpluggable(const struct pcihp *hp); /* B0RM */
uint32_t pcihp_up(const struct pcihp *hp);           /* PCIU */
uint32_t pcihp_down(const struct pcihp *hp);         /* PCID */
bool pcihp_function_present(const struct pcihp *hp, uint8_t devfn);
/* qemu-trad: events waiting (including the one shown); 0 for qemu-xen. */
unsigned pcihp_queued_events(const struct pcihp *hp);
/* qemu-trad: what PSTA/PSTB read now (0/0 when the queue is empty), without
 * counting as a guest read. */
struct pcihp_event pcihp_shown_event(const struct pcihp *hp);

struct ss_writer;
struct ss_reader;
/* Section "pcihp", instance = the layout's base port: functions present,
 * hot-pluggable and removal-pending slots, and (qemu-trad) the event queue
 * with whether the guest has read its head. Load checks the state against
 * the PCI bus as it is now (the machine re-creates hot-plugged functions
 * first) and against the rules of hotplug.md: nothing marked present that
 * is not plugged, removals only of present hot-pluggable slots, queued
 * events only for what is present or being removed, no slot announced
 * twice. It raises nothing: the GPE status is the PM device's state. */
int pcihp_save(const struct pcihp *hp, struct ss_writer *w);
int pcihp_load(struct pcihp *hp, struct ss_reader *r);

#endif
