#include "pcihp.h"

#include <errno.h>
#include <string.h>

#include "../lib/log.h"
#include "savestate.h"

TRACE_POINT(trace_pcihp_event, "pcihp_event");
TRACE_POINT(trace_pcihp_eject, "pcihp_eject");
TRACE_POINT(trace_pcihp_access, "pcihp_access");

static const char *layout_name(enum pcihp_layout layout)
{
    return layout == PCIHP_LAYOUT_QEMU_XEN ? "qemu-xen" : "qemu-trad";
}

static unsigned lowest_bit(uint32_t mask)
{
    return (unsigned)__builtin_ctz(mask);
}

static void raise_gpe(struct pcihp *hp)
{
    if (hp->ops.raise_gpe)
        hp->ops.raise_gpe(hp->ops.opaque, pcihp_gpe_bit(hp));
}

/* Functions of the slot registered on the bus, one bit per function. */
static uint8_t registered_functions(const struct pcihp *hp, unsigned slot)
{
    uint8_t mask = 0;

    for (unsigned fn = 0; fn < 8; fn++)
        if (pci_find_function(hp->pci, PCI_DEVFN(slot, fn)))
            mask |= (uint8_t)(1u << fn);
    return mask;
}

/* --- qemu-trad event queue ----------------------------------------------- */

static void queue_remove_at(struct pcihp *hp, unsigned i)
{
    memmove(&hp->queue[i], &hp->queue[i + 1],
            (hp->queue_len - i - 1) * sizeof(hp->queue[0]));
    hp->queue_len--;
    if (i == 0)
        hp->head_read = false;
}

static void queue_event(struct pcihp *hp, uint8_t code, uint8_t devfn)
{
    if (hp->queue_len == PCIHP_QUEUE_LEN) {
        /* Cannot happen (see PCIHP_QUEUE_LEN); if it did, the masks still
         * hold the state and the status bytes still show it. */
        log_err("pcihp: event queue full, event %u for 00:%02x.%x not queued",
                code, PCI_SLOT(devfn), PCI_FUNC(devfn));
    } else {
        if (hp->queue_len == 0)
            hp->head_read = false;
        hp->queue[hp->queue_len++] = (struct pcihp_event){code, devfn};
    }
    /* Always raised, not only for a new head: should the GPE status have
     * been lost (a PM reset after ours), the next event brings it back. */
    raise_gpe(hp);
}

/* The slot is gone: its events would announce a device that no longer
 * exists. A head the guest has already read stays, since its handler may
 * still be running and will acknowledge it. */
static void queue_drop_slot(struct pcihp *hp, unsigned slot)
{
    unsigned i = hp->head_read ? 1 : 0;

    while (i < hp->queue_len) {
        if (PCI_SLOT(hp->queue[i].devfn) == slot)
            queue_remove_at(hp, i);
        else
            i++;
    }
}

/* --- state changes shared by both layouts -------------------------------- */

static void recompute(struct pcihp *hp)
{
    hp->hotpluggable = 0;
    for (unsigned slot = 0; slot < PCIHP_SLOTS; slot++) {
        bool removable = true;

        hp->functions_present[slot] = registered_functions(hp, slot);
        for (unsigned fn = 0; fn < 8; fn++) {
            const struct pci_function *f =
                pci_find_function(hp->pci, PCI_DEVFN(slot, fn));

            if (f && !f->hotpluggable)
                removable = false;
        }
        if (removable)
            hp->hotpluggable |= 1u << slot;
    }
}

/* Removes the slot's hot-pluggable functions and completes the removal,
 * whoever asked for it. The caller has checked that this is allowed. */
static void eject_slot(struct pcihp *hp, unsigned slot)
{
    uint32_t bit = 1u << slot;
    bool requested = hp->removal_pending & bit;

    hp->removal_pending &= ~bit;
    for (int fn = 7; fn >= 0; fn--) {
        uint8_t devfn = PCI_DEVFN(slot, (unsigned)fn);
        const struct pci_function *f = pci_find_function(hp->pci, devfn);

        if (f && f->hotpluggable && hp->ops.unplug_function)
            hp->ops.unplug_function(hp->ops.opaque, devfn);
    }
    hp->functions_present[slot] &= registered_functions(hp, slot);
    if (hp->functions_present[slot])
        log_ratelimited(LOG_WARN, "pcihp: slot %u still has functions 0x%02x "
                        "after eject", slot, hp->functions_present[slot]);
    if (hp->layout == PCIHP_LAYOUT_QEMU_TRAD)
        queue_drop_slot(hp, slot);
    trace(trace_pcihp_eject, "slot %u ejected (%s)", slot,
          requested ? "requested" : "by the guest alone");
    if (hp->ops.removed)
        hp->ops.removed(hp->ops.opaque, slot, requested);
}

/* An eject written by the guest: only a present (or pending) hot-pluggable
 * slot goes; anything else is answered by doing nothing. */
static void guest_eject(struct pcihp *hp, unsigned slot)
{
    uint32_t bit = 1u << slot;

    if (!(hp->hotpluggable & bit)) {
        log_ratelimited(LOG_WARN, "pcihp: guest ejected slot %u, which is not "
                        "hot-pluggable: ignored", slot);
        return;
    }
    if (!hp->functions_present[slot] && !(hp->removal_pending & bit)) {
        log_ratelimited(LOG_WARN, "pcihp: guest ejected empty slot %u: "
                        "ignored", slot);
        return;
    }
    eject_slot(hp, slot);
}

/* --- qemu-xen registers -------------------------------------------------- */

static uint64_t qemu_xen_read(void *opaque, uint64_t off, unsigned size)
{
    struct pcihp *hp = opaque;
    uint32_t value = 0;

    /* The DSDT's fields are DWordAcc: anything else is not a register. */
    if (size != 4 || (off & 3)) {
        log_ratelimited(LOG_WARN, "pcihp: %u-byte read at 0x%x ignored "
                        "(32-bit registers)", size,
                        (unsigned)(PCIHP_QEMU_XEN_BASE + off));
        return 0;
    }
    switch (off) {
    case PCIHP_PCIU:
        value = pcihp_up(hp);
        break;
    case PCIHP_PCID:
        value = pcihp_down(hp);
        break;
    case PCIHP_B0RM:
        value = pcihp_hotpluggable(hp);
        break;
    case PCIHP_B0EJ:
    default:
        break;
    }
    trace(trace_pcihp_access, "read 0x%x = 0x%08x",
          (unsigned)(PCIHP_QEMU_XEN_BASE + off), value);
    return value;
}

static void qemu_xen_write(void *opaque, uint64_t off, uint64_t value,
                           unsigned size)
{
    struct pcihp *hp = opaque;

    if (size != 4 || (off & 3)) {
        log_ratelimited(LOG_WARN, "pcihp: %u-byte write at 0x%x ignored "
                        "(32-bit registers)", size,
                        (unsigned)(PCIHP_QEMU_XEN_BASE + off));
        return;
    }
    trace(trace_pcihp_access, "write 0x%x = 0x%08x",
          (unsigned)(PCIHP_QEMU_XEN_BASE + off), (uint32_t)value);
    /* Up, down and removable are read-only (QEMU ba737541ed, 31745aabcd). */
    if (off != PCIHP_B0EJ)
        return;
    if ((uint32_t)value == 0) {
        log_ratelimited(LOG_WARN, "pcihp: guest wrote an empty eject mask");
        return;
    }
    /* A mask with several bits is a guest bug; the lowest one is what
     * PIIX4 hardware (and QEMU) act on. */
    guest_eject(hp, lowest_bit((uint32_t)value));
}

static const struct bus_region_ops qemu_xen_ops = {
    .read = qemu_xen_read,
    .write = qemu_xen_write,
    .max_access = 4,
    .refuse_wide = true,
};

/* --- qemu-trad registers ------------------------------------------------- */

static uint64_t qemu_trad_read(void *opaque, uint64_t off, unsigned size)
{
    struct pcihp *hp = opaque;
    uint8_t value;

    if (off == PCIHP_PSTA || off == PCIHP_PSTB) {
        struct pcihp_event ev = pcihp_shown_event(hp);

        /* _L03 reads PSTA then PSTB; from here on an acknowledgement
         * means the guest has handled this event. */
        if (hp->queue_len)
            hp->head_read = true;
        value = off == PCIHP_PSTA ? ev.code : ev.devfn;
    } else {
        unsigned even = (unsigned)(off - PCIHP_PH00) * 2;

        value = (uint8_t)((pcihp_function_present(hp, (uint8_t)even)
                               ? PCIHP_STATUS_PRESENT
                               : 0) |
                          (pcihp_function_present(hp, (uint8_t)(even + 1))
                               ? PCIHP_STATUS_PRESENT << 4
                               : 0));
    }
    trace(trace_pcihp_access, "read 0x%x = 0x%02x",
          (unsigned)(PCIHP_QEMU_TRAD_BASE + off), value);
    return value;
}

static void qemu_trad_write(void *opaque, uint64_t off, uint64_t value,
                            unsigned size)
{
    struct pcihp *hp = opaque;
    unsigned devfn;

    trace(trace_pcihp_access, "write 0x%x = 0x%02x",
          (unsigned)(PCIHP_QEMU_TRAD_BASE + off), (unsigned)value);
    if (off == PCIHP_PSTA || off == PCIHP_PSTB) {
        log_ratelimited(LOG_WARN, "pcihp: guest wrote 0x%02x to read-only "
                        "port 0x%x: ignored", (unsigned)value,
                        (unsigned)(PCIHP_QEMU_TRAD_BASE + off));
        return;
    }
    devfn = (unsigned)(off - PCIHP_PH00) * 2;
    if (value == PCIHP_EJECT_ODD) {
        devfn++;
    } else if (value != PCIHP_EJECT_EVEN) {
        log_ratelimited(LOG_WARN, "pcihp: guest wrote 0x%02x to status port "
                        "0x%x, not an eject command: ignored",
                        (unsigned)value,
                        (unsigned)(PCIHP_QEMU_TRAD_BASE + off));
        return;
    }
    /* Unlike qemu-dm, any slot may be ejected, not only the queue head's:
     * with several removals queued the guest may handle them in any order. */
    guest_eject(hp, PCI_SLOT(devfn));
}

static const struct bus_region_ops qemu_trad_ops = {
    .read = qemu_trad_read,
    .write = qemu_trad_write,
    .max_access = 1, /* the DSDT's fields are ByteAcc; wider ones split */
};

/* --- public interface ---------------------------------------------------- */

int pcihp_init(struct pcihp *hp, struct bus *bus, struct pci_bus *pci,
               enum pcihp_layout layout, const struct pcihp_ops *ops)
{
    int rc;

    memset(hp, 0, sizeof(*hp));
    if (layout != PCIHP_LAYOUT_QEMU_XEN && layout != PCIHP_LAYOUT_QEMU_TRAD) {
        rc = -EINVAL;
        goto out;
    }
    hp->bus = bus;
    hp->pci = pci;
    hp->layout = layout;
    if (ops)
        hp->ops = *ops;
    recompute(hp);
    if (layout == PCIHP_LAYOUT_QEMU_XEN) {
        bus_region_init(&hp->region, "pcihp-qemu-xen", PCIHP_QEMU_XEN_LEN,
                        &qemu_xen_ops, hp);
        rc = bus_map(bus, BUS_PIO, &hp->region, PCIHP_QEMU_XEN_BASE);
    } else {
        bus_region_init(&hp->region, "pcihp-qemu-trad", PCIHP_QEMU_TRAD_LEN,
                        &qemu_trad_ops, hp);
        rc = bus_map(bus, BUS_PIO, &hp->region, PCIHP_QEMU_TRAD_BASE);
    }
out:
    return rc;
}

void pcihp_fini(struct pcihp *hp)
{
    if (hp->bus)
        bus_unmap(hp->bus, &hp->region);
}

unsigned pcihp_gpe_bit(const struct pcihp *hp)
{
    return hp->layout == PCIHP_LAYOUT_QEMU_XEN ? PCIHP_QEMU_XEN_GPE_BIT
                                               : PCIHP_QEMU_TRAD_GPE_BIT;
}

void pcihp_reset(struct pcihp *hp)
{
    unsigned i = 0;

    /* A guest that never answered a removal still loses the device by
     * rebooting: this is where the 2012 race fix flushes "down". */
    while (hp->removal_pending)
        eject_slot(hp, lowest_bit(hp->removal_pending));
    recompute(hp);
    if (hp->layout != PCIHP_LAYOUT_QEMU_TRAD)
        return;
    /* Removals are all done and no handler is mid-event any more. Inserts
     * of functions still present stay queued: a guest resuming from S3 has
     * not rescanned its buses, and a rebooted one takes the extra bus check
     * as a no-op. */
    while (i < hp->queue_len) {
        const struct pcihp_event *ev = &hp->queue[i];

        if (ev->code == PCIHP_EVENT_INSERT &&
            pcihp_function_present(hp, ev->devfn))
            i++;
        else
            queue_remove_at(hp, i);
    }
    hp->head_read = false;
    if (hp->queue_len)
        raise_gpe(hp);
}

int pcihp_plugged(struct pcihp *hp, uint8_t devfn, enum pcihp_plug_kind kind)
{
    unsigned slot = PCI_SLOT(devfn), fn = PCI_FUNC(devfn);
    const struct pci_function *f = pci_find_function(hp->pci, devfn);
    uint32_t bit = 1u << slot;
    int rc = 0;

    if (!f) {
        rc = -ENODEV;
        goto out;
    }
    if (hp->removal_pending & bit) {
        log_ratelimited(LOG_WARN, "pcihp: cannot plug '%s' at 00:%02x.%x: "
                        "the slot is being removed", f->name, slot, fn);
        rc = -EBUSY;
        goto out;
    }
    if (kind == PCIHP_PLUG_COLD) {
        hp->functions_present[slot] |= (uint8_t)(1u << fn);
        if (!f->hotpluggable)
            hp->hotpluggable &= ~bit;
        goto out;
    }
    if (!(hp->hotpluggable & bit) || !f->hotpluggable) {
        log_ratelimited(LOG_WARN, "pcihp: cannot hot-plug '%s' at "
                        "00:%02x.%x: %s", f->name, slot, fn,
                        f->hotpluggable ? "slot is not hot-pluggable"
                                        : "device is not hot-pluggable");
        rc = -EPERM;
        goto out;
    }
    if (pcihp_function_present(hp, devfn)) {
        rc = -EEXIST;
        goto out;
    }
    hp->functions_present[slot] |= (uint8_t)(1u << fn);
    trace(trace_pcihp_event, "%s: insert 00:%02x.%x", layout_name(hp->layout),
          slot, fn);
    /* The guest looks at a slot through function 0: announcing it before
     * the other functions exist would make it miss them. */
    if (fn != 0)
        goto out;
    if (hp->layout == PCIHP_LAYOUT_QEMU_TRAD)
        queue_event(hp, PCIHP_EVENT_INSERT, devfn);
    else
        raise_gpe(hp);
out:
    return rc;
}

int pcihp_request_unplug(struct pcihp *hp, unsigned slot)
{
    uint32_t bit;
    int rc = 0;

    if (slot >= PCIHP_SLOTS) {
        rc = -EINVAL;
        goto out;
    }
    bit = 1u << slot;
    if (!hp->functions_present[slot]) {
        rc = -ENODEV;
        goto out;
    }
    if (!(hp->hotpluggable & bit)) {
        rc = -EPERM;
        goto out;
    }
    if (hp->removal_pending & bit) {
        /* Raising again would only repeat a notification the guest has;
         * the caller reports "already in the process of unplug". */
        rc = -EALREADY;
        goto out;
    }
    hp->removal_pending |= bit;
    trace(trace_pcihp_event, "%s: removal of slot %u requested",
          layout_name(hp->layout), slot);
    if (hp->layout == PCIHP_LAYOUT_QEMU_TRAD)
        /* The DSDT device of the slot's first present function takes the
         * eject request; its _EJ0 ejects the whole slot. */
        queue_event(hp, PCIHP_EVENT_REMOVE,
                    PCI_DEVFN(slot, lowest_bit(hp->functions_present[slot])));
    else
        raise_gpe(hp);
out:
    return rc;
}

void pcihp_gpe_acked(struct pcihp *hp, unsigned bit)
{
    if (hp->layout != PCIHP_LAYOUT_QEMU_TRAD ||
        bit != PCIHP_QEMU_TRAD_GPE_BIT || hp->queue_len == 0)
        return;
    if (hp->head_read) {
        trace(trace_pcihp_event, "qemu-trad: event %u for 00:%02x.%x handled",
              hp->queue[0].code, PCI_SLOT(hp->queue[0].devfn),
              PCI_FUNC(hp->queue[0].devfn));
        queue_remove_at(hp, 0);
        if (hp->queue_len == 0)
            return;
    }
    raise_gpe(hp);
}

uint32_t pcihp_present(const struct pcihp *hp)
{
    uint32_t mask = 0;

    for (unsigned slot = 0; slot < PCIHP_SLOTS; slot++)
        if (hp->functions_present[slot])
            mask |= 1u << slot;
    return mask;
}

uint32_t pcihp_hotpluggable(const struct pcihp *hp) { return hp->hotpluggable; }

uint32_t pcihp_up(const struct pcihp *hp)
{
    return pcihp_present(hp) & hp->hotpluggable;
}

uint32_t pcihp_down(const struct pcihp *hp) { return hp->removal_pending; }

bool pcihp_function_present(const struct pcihp *hp, uint8_t devfn)
{
    return hp->functions_present[PCI_SLOT(devfn)] & (1u << PCI_FUNC(devfn));
}

unsigned pcihp_queued_events(const struct pcihp *hp) { return hp->queue_len; }

struct pcihp_event pcihp_shown_event(const struct pcihp *hp)
{
    if (hp->queue_len)
        return hp->queue[0];
    return (struct pcihp_event){PCIHP_EVENT_INSERT, 0};
}

/* --- save and restore ----------------------------------------------------- */

#define PCIHP_SS_NAME "pcihp"
#define PCIHP_SS_VERSION 1

struct pcihp_saved {
    uint8_t layout;
    uint8_t functions_present[PCIHP_SLOTS];
    uint32_t hotpluggable, removal_pending;
    uint8_t queue_len;
    struct pcihp_event queue[PCIHP_QUEUE_LEN];
    bool head_read;
};

int pcihp_save(const struct pcihp *hp, struct ss_writer *w)
{
    ss_begin_section(w, PCIHP_SS_NAME, (uint32_t)hp->region.base,
                     PCIHP_SS_VERSION);
    ss_put_u8(w, (uint8_t)hp->layout);
    ss_put_bytes(w, hp->functions_present, sizeof(hp->functions_present));
    ss_put_u32(w, hp->hotpluggable);
    ss_put_u32(w, hp->removal_pending);
    ss_put_u8(w, (uint8_t)hp->queue_len);
    for (unsigned i = 0; i < hp->queue_len; i++) {
        ss_put_u8(w, hp->queue[i].code);
        ss_put_u8(w, hp->queue[i].devfn);
    }
    ss_put_bool(w, hp->head_read);
    return ss_end_section(w);
}

static void check_slots(const struct pcihp *hp, struct ss_reader *r,
                        const struct pcihp_saved *sv)
{
    uint32_t present = 0;

    /* Which slots can be ejected follows from the chipset the machine was
     * built with; a different answer means a different machine. */
    if (sv->hotpluggable != hp->hotpluggable) {
        ss_fail(r, "hotpluggable", "0x%08x, this machine's slots give "
                "0x%08x", sv->hotpluggable, hp->hotpluggable);
        return;
    }
    for (unsigned slot = 0; slot < PCIHP_SLOTS; slot++) {
        uint8_t extra = sv->functions_present[slot] &
                        (uint8_t)~registered_functions(hp, slot);

        if (extra) {
            ss_fail(r, "functions_present", "slot %u functions 0x%02x marked "
                    "present, but nothing is plugged there", slot, extra);
            return;
        }
        if (sv->functions_present[slot])
            present |= 1u << slot;
    }
    if (sv->removal_pending & ~(present & sv->hotpluggable))
        ss_fail(r, "removal_pending", "0x%08x includes slots that are empty "
                "or not hot-pluggable (present 0x%08x, hot-pluggable 0x%08x)",
                sv->removal_pending, present, sv->hotpluggable);
}

static bool saved_present(const struct pcihp_saved *sv, uint8_t devfn)
{
    return sv->functions_present[PCI_SLOT(devfn)] & (1u << PCI_FUNC(devfn));
}

/* The queue as eject, reset and the one-event-per-kind rule leave it. A
 * head the guest has read may outlive its slot (its handler still runs),
 * so only its code is checked. */
static void check_queue(const struct pcihp *hp, struct ss_reader *r,
                        const struct pcihp_saved *sv)
{
    uint32_t inserts = 0, removes = 0;

    if (hp->layout != PCIHP_LAYOUT_QEMU_TRAD) {
        if (sv->queue_len || sv->head_read)
            ss_fail(r, "queue_len", "%u events: the qemu-xen layout has no "
                    "queue", sv->queue_len);
        return;
    }
    if (sv->head_read && !sv->queue_len) {
        ss_fail(r, "head_read", "set with an empty queue");
        return;
    }
    for (unsigned i = 0; i < sv->queue_len; i++) {
        const struct pcihp_event *ev = &sv->queue[i];
        unsigned slot = PCI_SLOT(ev->devfn);
        uint32_t bit = 1u << slot;

        if (ev->code != PCIHP_EVENT_INSERT && ev->code != PCIHP_EVENT_REMOVE) {
            ss_fail(r, "queue", "event %u has code %u", i, ev->code);
            return;
        }
        if (i == 0 && sv->head_read)
            continue;
        if (ev->code == PCIHP_EVENT_INSERT) {
            if (PCI_FUNC(ev->devfn) != 0 || !saved_present(sv, ev->devfn) ||
                (inserts & bit)) {
                ss_fail(r, "queue", "event %u: insert of 00:%02x.%x, which "
                        "is %s", i, slot, PCI_FUNC(ev->devfn),
                        inserts & bit ? "announced twice"
                        : PCI_FUNC(ev->devfn) ? "not function 0"
                                              : "not present");
                return;
            }
            inserts |= bit;
        } else {
            /* Announced on the slot's first present function (a pending
             * slot always has one). */
            unsigned first = (unsigned)__builtin_ctz(
                sv->functions_present[slot] | 0x100u);

            if (!(sv->removal_pending & bit) || (removes & bit) ||
                PCI_FUNC(ev->devfn) != first) {
                ss_fail(r, "queue", "event %u: removal of 00:%02x.%x, which "
                        "is %s", i, slot, PCI_FUNC(ev->devfn),
                        removes & bit ? "announced twice"
                        : !(sv->removal_pending & bit)
                            ? "not being removed"
                            : "not the slot's first function");
                return;
            }
            removes |= bit;
        }
    }
}

int pcihp_load(struct pcihp *hp, struct ss_reader *r)
{
    struct pcihp_saved sv = {0};
    uint32_t version;
    int rc;

    rc = ss_open_section(r, PCIHP_SS_NAME, (uint32_t)hp->region.base,
                         PCIHP_SS_VERSION, &version);
    if (rc < 0)
        return rc;
    ss_get_u8(r, "layout", &sv.layout);
    if (ss_ok(r) && sv.layout != (uint8_t)hp->layout)
        ss_fail(r, "layout", "%s registers, this machine has %s",
                sv.layout == PCIHP_LAYOUT_QEMU_XEN    ? "qemu-xen"
                : sv.layout == PCIHP_LAYOUT_QEMU_TRAD ? "qemu-trad"
                                                      : "unknown",
                layout_name(hp->layout));
    ss_get_bytes(r, "functions_present", sv.functions_present,
                 sizeof(sv.functions_present));
    ss_get_u32(r, "hotpluggable", &sv.hotpluggable);
    ss_get_u32(r, "removal_pending", &sv.removal_pending);
    ss_get_u8(r, "queue_len", &sv.queue_len);
    if (ss_ok(r) && sv.queue_len > PCIHP_QUEUE_LEN)
        ss_fail(r, "queue_len", "%u events, the queue holds %d",
                sv.queue_len, PCIHP_QUEUE_LEN);
    for (unsigned i = 0; ss_ok(r) && i < sv.queue_len; i++) {
        ss_get_u8(r, "queue.code", &sv.queue[i].code);
        ss_get_u8(r, "queue.devfn", &sv.queue[i].devfn);
    }
    ss_get_bool(r, "head_read", &sv.head_read);
    if (ss_ok(r))
        check_slots(hp, r, &sv);
    if (ss_ok(r))
        check_queue(hp, r, &sv);
    rc = ss_close_section(r);
    if (rc < 0)
        return rc;
    memcpy(hp->functions_present, sv.functions_present,
           sizeof(hp->functions_present));
    hp->removal_pending = sv.removal_pending;
    memcpy(hp->queue, sv.queue, sv.queue_len * sizeof(hp->queue[0]));
    hp->queue_len = sv.queue_len;
    hp->head_read = sv.head_read;
    return 0;
}
