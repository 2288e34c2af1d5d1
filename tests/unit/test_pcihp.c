/* PCI hot-plug controller: the rules of docs/hotplug.md through both
 * register layouts, driven as a guest would (port I/O on a real bus), with a
 * real PCI bus underneath, a fake PM device recording GPE0 status, and a
 * fake control plane recording completions. The last tests run thousands of
 * random operations against a reference model written here. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../hw/bus.h"
#include "../../hw/pci.h"
#include "../../hw/pcihp.h"
#include "../../lib/log.h"

#define LOG_CAP 512

struct removal {
    unsigned slot;
    bool requested;
};

/* The machine around the controller: what dm/machine.c and the PIIX4 PM
 * device would be. */
struct machine {
    enum pcihp_layout layout;
    struct bus bus;
    struct pci_bus pci;
    struct pcihp hp;
    struct pci_function functions[256]; /* storage, by devfn */
    char names[256][16];
    /* PM device: GPE0 status, and how often each bit was raised */
    uint16_t gpe_status;
    unsigned gpe_raises[16];
    /* machine and control plane */
    uint8_t unplugged[LOG_CAP];
    unsigned n_unplugged;
    struct removal removed[LOG_CAP];
    unsigned n_removed;
    /* set to make removed() request the slot's unplug again */
    bool reenter;
    int reenter_rc;
};

static void fake_raise_gpe(void *opaque, unsigned bit)
{
    struct machine *m = opaque;

    assert_true(bit < 16);
    m->gpe_status |= (uint16_t)(1u << bit);
    m->gpe_raises[bit]++;
}

static void fake_unplug_function(void *opaque, uint8_t devfn)
{
    struct machine *m = opaque;
    struct pci_function *f = pci_find_function(&m->pci, devfn);

    assert_non_null(f);
    assert_true(f->hotpluggable);
    assert_true(m->n_unplugged < LOG_CAP);
    m->unplugged[m->n_unplugged++] = devfn;
    pci_unregister_function(f);
}

static void fake_removed(void *opaque, unsigned slot, bool requested)
{
    struct machine *m = opaque;

    assert_true(m->n_removed < LOG_CAP);
    m->removed[m->n_removed++] = (struct removal){slot, requested};
    if (m->reenter)
        m->reenter_rc = pcihp_request_unplug(&m->hp, slot);
}

static const struct pcihp_ops fake_ops = {
    .raise_gpe = fake_raise_gpe,
    .unplug_function = fake_unplug_function,
    .removed = fake_removed,
};

static int add_function(struct machine *m, uint8_t devfn, bool hotpluggable)
{
    struct pci_function *f = &m->functions[devfn];

    snprintf(m->names[devfn], sizeof(m->names[devfn]), "fn-%02x.%x",
             PCI_SLOT(devfn), PCI_FUNC(devfn));
    pci_function_init(f, m->names[devfn], 0x8086, 0x1000 + devfn, 0x020000, 1,
                      NULL, NULL);
    f->hotpluggable = hotpluggable;
    return pci_register_function(&m->pci, f, devfn);
}

static void remove_function(struct machine *m, uint8_t devfn)
{
    struct pci_function *f = pci_find_function(&m->pci, devfn);

    assert_non_null(f);
    pci_unregister_function(f);
}

/* Registers the function and tells the controller, backing out on refusal
 * as the machine must. */
static int plug(struct machine *m, uint8_t devfn, bool hotpluggable,
                enum pcihp_plug_kind kind)
{
    int rc = add_function(m, devfn, hotpluggable);

    assert_int_equal(rc, 0);
    rc = pcihp_plugged(&m->hp, devfn, kind);
    if (rc < 0)
        remove_function(m, devfn);
    return rc;
}

/* i440FX 00.0, PIIX3 01.0/01.1/01.3, VGA 02.0, Xen platform 03.0 (none
 * hot-pluggable), then a cold-plugged hot-pluggable NIC at 04.0. */
static struct machine *machine_new(enum pcihp_layout layout)
{
    static const uint8_t fixed[] = {0x00, 0x08, 0x09, 0x0b, 0x10, 0x18};
    struct machine *m = calloc(1, sizeof(*m));
    struct pcihp_ops ops = fake_ops;

    assert_non_null(m);
    m->layout = layout;
    bus_init(&m->bus);
    pci_bus_init(&m->pci, &m->bus);
    for (size_t i = 0; i < sizeof(fixed); i++)
        assert_int_equal(add_function(m, fixed[i], false), 0);
    ops.opaque = m;
    assert_int_equal(pcihp_init(&m->hp, &m->bus, &m->pci, layout, &ops), 0);
    assert_int_equal(plug(m, 0x20, true, PCIHP_PLUG_COLD), 0);
    return m;
}

static void machine_free(struct machine *m)
{
    pcihp_fini(&m->hp);
    for (unsigned devfn = 0; devfn < 256; devfn++)
        if (m->pci.functions[devfn])
            pci_unregister_function(m->pci.functions[devfn]);
    bus_fini(&m->bus);
    free(m);
}

static void clear_logs(struct machine *m)
{
    memset(m->gpe_raises, 0, sizeof(m->gpe_raises));
    m->n_unplugged = 0;
    m->n_removed = 0;
}

static unsigned raises(const struct machine *m)
{
    return m->gpe_raises[pcihp_gpe_bit(&m->hp)];
}

static unsigned all_raises(const struct machine *m)
{
    unsigned n = 0;

    for (unsigned i = 0; i < 16; i++)
        n += m->gpe_raises[i];
    return n;
}

/* The PM device's side of a guest writing 1 to a GPE0 status bit. */
static void pm_clear_status(struct machine *m, unsigned bit)
{
    if (!(m->gpe_status & (1u << bit)))
        return;
    m->gpe_status &= (uint16_t) ~(1u << bit);
    pcihp_gpe_acked(&m->hp, bit);
}

static void machine_reset(struct machine *m)
{
    m->gpe_status = 0; /* the PM device is reset first */
    pcihp_reset(&m->hp);
}

static uint32_t xen_reg(struct machine *m, unsigned off)
{
    return (uint32_t)bus_read(&m->bus, BUS_PIO, PCIHP_QEMU_XEN_BASE + off, 4);
}

static uint8_t trad_port(struct machine *m, unsigned off)
{
    return (uint8_t)bus_read(&m->bus, BUS_PIO, PCIHP_QEMU_TRAD_BASE + off, 1);
}

static unsigned trad_nibble(struct machine *m, uint8_t devfn)
{
    uint8_t pair = trad_port(m, PCIHP_PH00 + devfn / 2);

    return devfn & 1 ? pair >> 4 : pair & 0xf;
}

/* What _L03 does first. */
static struct pcihp_event guest_read_event(struct machine *m)
{
    struct pcihp_event ev;

    ev.code = trad_port(m, PCIHP_PSTA);
    ev.devfn = trad_port(m, PCIHP_PSTB);
    return ev;
}

/* _EJ0 of the slot's function 0 device in the layout's DSDT. */
static void guest_eject(struct machine *m, unsigned slot)
{
    if (m->layout == PCIHP_LAYOUT_QEMU_XEN)
        bus_write(&m->bus, BUS_PIO, PCIHP_QEMU_XEN_BASE + PCIHP_B0EJ,
                  1u << slot, 4);
    else
        bus_write(&m->bus, BUS_PIO,
                  PCIHP_QEMU_TRAD_BASE + PCIHP_PH00 + slot * 8 / 2,
                  PCIHP_EJECT_EVEN, 1);
}

/* A guest answering every GPE until nothing is left (qemu-trad), so that
 * a test starts from a quiet controller. */
static void guest_handle_all(struct machine *m)
{
    unsigned bit = pcihp_gpe_bit(&m->hp);

    for (int i = 0; i < 2 * PCIHP_QUEUE_LEN && (m->gpe_status & (1u << bit));
         i++) {
        if (m->layout == PCIHP_LAYOUT_QEMU_TRAD)
            guest_read_event(m);
        pm_clear_status(m, bit);
    }
    assert_int_equal(pcihp_queued_events(&m->hp), 0);
    assert_false(m->gpe_status & (1u << bit));
}

static void assert_event(struct pcihp_event ev, uint8_t code, uint8_t devfn)
{
    assert_int_equal(ev.code, code);
    assert_int_equal(ev.devfn, devfn);
}

static void assert_removed(const struct machine *m, unsigned i, unsigned slot,
                           bool requested)
{
    assert_true(i < m->n_removed);
    assert_int_equal(m->removed[i].slot, slot);
    assert_int_equal(m->removed[i].requested, requested);
}

/* --- fixtures: every directed test runs once per layout ------------------ */

static enum pcihp_layout layout_xen = PCIHP_LAYOUT_QEMU_XEN;
static enum pcihp_layout layout_trad = PCIHP_LAYOUT_QEMU_TRAD;

static int setup(void **state)
{
    enum pcihp_layout layout = *(enum pcihp_layout *)*state;

    *state = machine_new(layout);
    return 0;
}

static int teardown(void **state)
{
    machine_free(*state);
    return 0;
}

#define SLOT_BIT(s) (1u << (s))
#define FIXED_SLOTS (SLOT_BIT(0) | SLOT_BIT(1) | SLOT_BIT(2) | SLOT_BIT(3))

/* --- directed tests ------------------------------------------------------ */

static void test_misuse_is_logged(void **state)
{
    struct machine *m = *state;
    char buf[4096] = "";
    FILE *out = tmpfile();
    size_t n;

    assert_non_null(out);
    log_set_stream(out);
    guest_eject(m, 1);
    log_set_stream(NULL);
    rewind(out);
    n = fread(buf, 1, sizeof(buf) - 1, out);
    buf[n] = '\0';
    fclose(out);
    assert_non_null(strstr(buf, "slot 1, which is not hot-pluggable"));
}

static void test_init_state(void **state)
{
    struct machine *m = *state;

    assert_int_equal(pcihp_present(&m->hp), FIXED_SLOTS | SLOT_BIT(4));
    assert_int_equal(pcihp_hotpluggable(&m->hp), ~FIXED_SLOTS);
    assert_int_equal(pcihp_up(&m->hp), SLOT_BIT(4));
    assert_int_equal(pcihp_down(&m->hp), 0);
    assert_int_equal(all_raises(m), 0);
    if (m->layout == PCIHP_LAYOUT_QEMU_XEN) {
        assert_int_equal(pcihp_gpe_bit(&m->hp), 1);
        assert_int_equal(xen_reg(m, PCIHP_PCIU), SLOT_BIT(4));
        assert_int_equal(xen_reg(m, PCIHP_PCID), 0);
        assert_int_equal(xen_reg(m, PCIHP_B0EJ), 0);
        assert_int_equal(xen_reg(m, PCIHP_B0RM), ~FIXED_SLOTS);
        assert_null(bus_find(&m->bus, BUS_PIO, PCIHP_QEMU_TRAD_BASE));
        assert_null(bus_find(&m->bus, BUS_PIO, PCIHP_QEMU_XEN_BASE + 0x10));
        return;
    }
    assert_int_equal(pcihp_gpe_bit(&m->hp), 3);
    assert_null(bus_find(&m->bus, BUS_PIO, PCIHP_QEMU_XEN_BASE));
    assert_null(bus_find(&m->bus, BUS_PIO, PCIHP_QEMU_TRAD_BASE + 0x82));
    /* Every present function reads 0xF, cold and fixed ones included. */
    for (unsigned pair = 0; pair < 0x80; pair++) {
        uint8_t want = 0;

        switch (pair) {
        case 0x00: /* 00.0 */
        case 0x08: /* 02.0 */
        case 0x0c: /* 03.0 */
        case 0x10: /* 04.0 */
            want = 0x0f;
            break;
        case 0x04: /* 01.0 and 01.1 */
            want = 0xff;
            break;
        case 0x05: /* 01.3, odd */
            want = 0xf0;
            break;
        }
        assert_int_equal(trad_port(m, PCIHP_PH00 + pair), want);
    }
    assert_int_equal(pcihp_queued_events(&m->hp), 0);
    assert_event(guest_read_event(m), 0, 0);
}

static void test_cold_plug_raises_nothing(void **state)
{
    struct machine *m = *state;

    assert_int_equal(plug(m, 0x28, true, PCIHP_PLUG_COLD), 0);
    assert_int_equal(plug(m, 0x30, false, PCIHP_PLUG_COLD), 0);
    assert_int_equal(all_raises(m), 0);
    assert_int_equal(pcihp_queued_events(&m->hp), 0);
    assert_int_equal(pcihp_present(&m->hp) & (SLOT_BIT(5) | SLOT_BIT(6)),
                     SLOT_BIT(5) | SLOT_BIT(6));
    /* A function that may never be removed pins its slot. */
    assert_int_equal(pcihp_hotpluggable(&m->hp), ~(FIXED_SLOTS | SLOT_BIT(6)));
    assert_int_equal(pcihp_up(&m->hp), SLOT_BIT(4) | SLOT_BIT(5));
    /* The same after a reset recomputes everything from the bus. */
    machine_reset(m);
    assert_int_equal(pcihp_hotpluggable(&m->hp), ~(FIXED_SLOTS | SLOT_BIT(6)));
    assert_int_equal(pcihp_up(&m->hp), SLOT_BIT(4) | SLOT_BIT(5));
    assert_int_equal(pcihp_request_unplug(&m->hp, 6), -EPERM);
    assert_int_equal(all_raises(m), 0);
}

static void test_hot_plug_raises_event(void **state)
{
    struct machine *m = *state;

    assert_int_equal(plug(m, 0x28, true, PCIHP_PLUG_HOT), 0);
    assert_int_equal(raises(m), 1);
    assert_int_equal(all_raises(m), 1);
    assert_true(m->gpe_status & (1u << pcihp_gpe_bit(&m->hp)));
    assert_int_equal(pcihp_up(&m->hp), SLOT_BIT(4) | SLOT_BIT(5));
    if (m->layout == PCIHP_LAYOUT_QEMU_XEN) {
        assert_int_equal(xen_reg(m, PCIHP_PCIU), SLOT_BIT(4) | SLOT_BIT(5));
        assert_int_equal(xen_reg(m, PCIHP_PCID), 0);
        /* Reading does not consume "up": it is not stored. */
        assert_int_equal(xen_reg(m, PCIHP_PCIU), SLOT_BIT(4) | SLOT_BIT(5));
        pm_clear_status(m, 1);
        assert_int_equal(xen_reg(m, PCIHP_PCIU), SLOT_BIT(4) | SLOT_BIT(5));
        assert_int_equal(raises(m), 1);
        return;
    }
    assert_int_equal(trad_nibble(m, 0x28), 0xf);
    assert_int_equal(trad_nibble(m, 0x29), 0);
    assert_event(guest_read_event(m), PCIHP_EVENT_INSERT, 0x28);
    pm_clear_status(m, 3);
    assert_int_equal(pcihp_queued_events(&m->hp), 0);
    assert_int_equal(raises(m), 1);
    assert_int_equal(trad_nibble(m, 0x28), 0xf);
}

static void test_two_unplugs_before_guest_reads(void **state)
{
    struct machine *m = *state;

    assert_int_equal(plug(m, 0x28, true, PCIHP_PLUG_HOT), 0);
    assert_int_equal(plug(m, 0x30, true, PCIHP_PLUG_HOT), 0);
    guest_handle_all(m);
    clear_logs(m);

    assert_int_equal(pcihp_request_unplug(&m->hp, 5), 0);
    assert_int_equal(pcihp_request_unplug(&m->hp, 6), 0);
    assert_int_equal(raises(m), 2);
    /* The second request did not erase the first. */
    assert_int_equal(pcihp_down(&m->hp), SLOT_BIT(5) | SLOT_BIT(6));
    if (m->layout == PCIHP_LAYOUT_QEMU_XEN) {
        assert_int_equal(xen_reg(m, PCIHP_PCID), SLOT_BIT(5) | SLOT_BIT(6));
        guest_eject(m, 5);
        assert_int_equal(xen_reg(m, PCIHP_PCID), SLOT_BIT(6));
        guest_eject(m, 6);
        assert_int_equal(m->n_removed, 2);
        assert_removed(m, 0, 5, true);
        assert_removed(m, 1, 6, true);
    } else {
        assert_event(guest_read_event(m), PCIHP_EVENT_REMOVE, 0x28);
        pm_clear_status(m, 3);
        assert_int_equal(raises(m), 3); /* raised again for the second */
        assert_event(guest_read_event(m), PCIHP_EVENT_REMOVE, 0x30);
        /* The guest may eject in either order. */
        guest_eject(m, 6);
        guest_eject(m, 5);
        pm_clear_status(m, 3);
        assert_int_equal(m->n_removed, 2);
        assert_removed(m, 0, 6, true);
        assert_removed(m, 1, 5, true);
        assert_int_equal(trad_nibble(m, 0x28), 0);
        assert_int_equal(trad_nibble(m, 0x30), 0);
        assert_int_equal(pcihp_queued_events(&m->hp), 0);
    }
    assert_int_equal(pcihp_down(&m->hp), 0);
    assert_int_equal(pcihp_present(&m->hp) & (SLOT_BIT(5) | SLOT_BIT(6)), 0);
    assert_null(pci_find_function(&m->pci, 0x28));
    assert_null(pci_find_function(&m->pci, 0x30));
    assert_int_equal(m->n_unplugged, 2);
}

static void test_unplug_then_reset(void **state)
{
    struct machine *m = *state;

    assert_int_equal(pcihp_request_unplug(&m->hp, 4), 0);
    machine_reset(m);
    assert_int_equal(m->n_removed, 1);
    assert_removed(m, 0, 4, true);
    assert_int_equal(m->n_unplugged, 1);
    assert_int_equal(m->unplugged[0], 0x20);
    assert_null(pci_find_function(&m->pci, 0x20));
    assert_int_equal(pcihp_down(&m->hp), 0);
    assert_int_equal(pcihp_present(&m->hp), FIXED_SLOTS);
    assert_int_equal(pcihp_hotpluggable(&m->hp), ~FIXED_SLOTS);
    assert_int_equal(pcihp_queued_events(&m->hp), 0);
    assert_int_equal(m->gpe_status, 0);
    /* Nothing is left to complete a second time. */
    machine_reset(m);
    assert_int_equal(m->n_removed, 1);
}

static void test_reset_keeps_pending_insertion(void **state)
{
    struct machine *m = *state;

    assert_int_equal(plug(m, 0x28, true, PCIHP_PLUG_HOT), 0);
    clear_logs(m);
    machine_reset(m);
    assert_int_equal(m->n_removed, 0);
    assert_true(pcihp_function_present(&m->hp, 0x28));
    assert_int_equal(pcihp_up(&m->hp), SLOT_BIT(4) | SLOT_BIT(5));
    if (m->layout == PCIHP_LAYOUT_QEMU_XEN) {
        assert_int_equal(raises(m), 0);
        return;
    }
    /* Still news for the guest: queued and raised again. */
    assert_int_equal(pcihp_queued_events(&m->hp), 1);
    assert_int_equal(raises(m), 1);
    assert_event(guest_read_event(m), PCIHP_EVENT_INSERT, 0x28);
}

static void test_insert_during_unhandled_removal(void **state)
{
    struct machine *m = *state;

    assert_int_equal(pcihp_request_unplug(&m->hp, 4), 0);
    assert_int_equal(plug(m, 0x30, true, PCIHP_PLUG_HOT), 0);
    assert_int_equal(raises(m), 2);
    if (m->layout == PCIHP_LAYOUT_QEMU_XEN) {
        assert_int_equal(xen_reg(m, PCIHP_PCID), SLOT_BIT(4));
        assert_int_equal(xen_reg(m, PCIHP_PCIU), SLOT_BIT(4) | SLOT_BIT(6));
    } else {
        assert_int_equal(pcihp_queued_events(&m->hp), 2);
        assert_event(guest_read_event(m), PCIHP_EVENT_REMOVE, 0x20);
        pm_clear_status(m, 3);
        assert_event(guest_read_event(m), PCIHP_EVENT_INSERT, 0x30);
        assert_int_equal(trad_nibble(m, 0x20), 0xf);
        assert_int_equal(trad_nibble(m, 0x30), 0xf);
    }
    guest_eject(m, 4);
    assert_int_equal(m->n_removed, 1);
    assert_removed(m, 0, 4, true);
    assert_int_equal(pcihp_up(&m->hp), SLOT_BIT(6));
    assert_non_null(pci_find_function(&m->pci, 0x30));
}

static void test_eject_empty_slot_does_nothing(void **state)
{
    struct machine *m = *state;

    guest_eject(m, 10);
    guest_eject(m, 31);
    assert_int_equal(m->n_removed, 0);
    assert_int_equal(m->n_unplugged, 0);
    assert_int_equal(pcihp_present(&m->hp), FIXED_SLOTS | SLOT_BIT(4));
    assert_int_equal(all_raises(m), 0);
}

static void test_eject_non_hotpluggable_slot_does_nothing(void **state)
{
    struct machine *m = *state;

    guest_eject(m, 0);
    guest_eject(m, 1);
    guest_eject(m, 3);
    assert_int_equal(m->n_removed, 0);
    assert_int_equal(m->n_unplugged, 0);
    assert_non_null(pci_find_function(&m->pci, 0x00));
    assert_non_null(pci_find_function(&m->pci, 0x08));
    assert_non_null(pci_find_function(&m->pci, 0x0b));
    assert_non_null(pci_find_function(&m->pci, 0x18));
    assert_int_equal(pcihp_present(&m->hp), FIXED_SLOTS | SLOT_BIT(4));
}

static void test_eject_unrequested_slot_removes_it(void **state)
{
    struct machine *m = *state;

    guest_eject(m, 4);
    assert_int_equal(m->n_removed, 1);
    assert_removed(m, 0, 4, false);
    assert_int_equal(m->n_unplugged, 1);
    assert_int_equal(m->unplugged[0], 0x20);
    assert_int_equal(pcihp_present(&m->hp), FIXED_SLOTS);
    assert_int_equal(all_raises(m), 0);
    /* Gone means gone: a second eject is an empty-slot eject. */
    guest_eject(m, 4);
    assert_int_equal(m->n_removed, 1);
}

static void test_duplicate_unplug_is_already(void **state)
{
    struct machine *m = *state;

    assert_int_equal(pcihp_request_unplug(&m->hp, 4), 0);
    assert_int_equal(raises(m), 1);
    assert_int_equal(pcihp_request_unplug(&m->hp, 4), -EALREADY);
    assert_int_equal(pcihp_request_unplug(&m->hp, 4), -EALREADY);
    assert_int_equal(raises(m), 1);
    assert_int_equal(pcihp_down(&m->hp), SLOT_BIT(4));
    if (m->layout == PCIHP_LAYOUT_QEMU_TRAD)
        assert_int_equal(pcihp_queued_events(&m->hp), 1);
    guest_eject(m, 4);
    assert_int_equal(m->n_removed, 1);
    /* Once ejected, a new request finds the slot empty. */
    assert_int_equal(pcihp_request_unplug(&m->hp, 4), -ENODEV);
}

static void test_unplug_request_errors(void **state)
{
    struct machine *m = *state;

    assert_int_equal(pcihp_request_unplug(&m->hp, 10), -ENODEV);
    assert_int_equal(pcihp_request_unplug(&m->hp, 0), -EPERM);
    assert_int_equal(pcihp_request_unplug(&m->hp, 1), -EPERM);
    assert_int_equal(pcihp_request_unplug(&m->hp, 32), -EINVAL);
    assert_int_equal(pcihp_request_unplug(&m->hp, ~0u), -EINVAL);
    assert_int_equal(pcihp_down(&m->hp), 0);
    assert_int_equal(all_raises(m), 0);
    assert_int_equal(pcihp_queued_events(&m->hp), 0);
}

static void test_plug_errors(void **state)
{
    struct machine *m = *state;

    assert_int_equal(pcihp_plugged(&m->hp, 0x50, PCIHP_PLUG_HOT), -ENODEV);
    assert_int_equal(pcihp_plugged(&m->hp, 0x50, PCIHP_PLUG_COLD), -ENODEV);
    /* 01.2 is free, but slot 1 holds the ISA bridge. */
    assert_int_equal(plug(m, 0x0a, true, PCIHP_PLUG_HOT), -EPERM);
    assert_null(pci_find_function(&m->pci, 0x0a));
    assert_int_equal(plug(m, 0x38, false, PCIHP_PLUG_HOT), -EPERM);
    assert_int_equal(pcihp_plugged(&m->hp, 0x20, PCIHP_PLUG_HOT), -EEXIST);
    assert_int_equal(pcihp_plugged(&m->hp, 0x20, PCIHP_PLUG_COLD), 0);
    assert_int_equal(pcihp_request_unplug(&m->hp, 4), 0);
    clear_logs(m);
    /* It would be ejected together with the slot's pending removal. */
    assert_int_equal(plug(m, 0x21, true, PCIHP_PLUG_HOT), -EBUSY);
    assert_int_equal(plug(m, 0x21, true, PCIHP_PLUG_COLD), -EBUSY);
    assert_int_equal(all_raises(m), 0);
    assert_int_equal(pcihp_present(&m->hp), FIXED_SLOTS | SLOT_BIT(4));
    assert_int_equal(pcihp_hotpluggable(&m->hp), ~FIXED_SLOTS);
    assert_false(pcihp_function_present(&m->hp, 0x21));
}

static void test_multifunction_plug_7_to_0(void **state)
{
    struct machine *m = *state;

    for (int fn = 7; fn >= 1; fn--) {
        assert_int_equal(plug(m, PCI_DEVFN(6, fn), true, PCIHP_PLUG_HOT), 0);
        assert_int_equal(all_raises(m), 0);
    }
    assert_int_equal(plug(m, PCI_DEVFN(6, 0), true, PCIHP_PLUG_HOT), 0);
    assert_int_equal(raises(m), 1);
    assert_int_equal(all_raises(m), 1);
    assert_int_equal(pcihp_up(&m->hp), SLOT_BIT(4) | SLOT_BIT(6));
    if (m->layout == PCIHP_LAYOUT_QEMU_TRAD) {
        for (unsigned devfn = 0x30; devfn < 0x38; devfn += 2)
            assert_int_equal(trad_port(m, PCIHP_PH00 + devfn / 2), 0xff);
        assert_int_equal(pcihp_queued_events(&m->hp), 1);
        assert_event(guest_read_event(m), PCIHP_EVENT_INSERT, 0x30);
        pm_clear_status(m, 3);
        assert_int_equal(raises(m), 1);
    }
    assert_int_equal(pcihp_request_unplug(&m->hp, 6), 0);
    guest_eject(m, 6);
    assert_int_equal(m->n_unplugged, 8);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(m->unplugged[i], PCI_DEVFN(6, 7 - i));
    assert_int_equal(m->n_removed, 1);
    assert_removed(m, 0, 6, true);
    assert_int_equal(pcihp_present(&m->hp), FIXED_SLOTS | SLOT_BIT(4));
    if (m->layout == PCIHP_LAYOUT_QEMU_TRAD)
        for (unsigned devfn = 0x30; devfn < 0x38; devfn += 2)
            assert_int_equal(trad_port(m, PCIHP_PH00 + devfn / 2), 0);
}

static void test_removed_may_reenter(void **state)
{
    struct machine *m = *state;

    m->reenter = true;
    m->reenter_rc = 1;
    assert_int_equal(pcihp_request_unplug(&m->hp, 4), 0);
    guest_eject(m, 4);
    assert_int_equal(m->n_removed, 1);
    /* By the time removed() runs the slot is empty and not pending. */
    assert_int_equal(m->reenter_rc, -ENODEV);
    assert_int_equal(pcihp_down(&m->hp), 0);
}

static void test_fini_unmaps(void **state)
{
    struct machine *m = *state;
    uint64_t base = m->layout == PCIHP_LAYOUT_QEMU_XEN ? PCIHP_QEMU_XEN_BASE
                                                       : PCIHP_QEMU_TRAD_BASE;
    struct pcihp_ops ops = fake_ops;

    assert_non_null(bus_find(&m->bus, BUS_PIO, base));
    pcihp_fini(&m->hp);
    assert_null(bus_find(&m->bus, BUS_PIO, base));
    assert_int_equal(bus_read(&m->bus, BUS_PIO, base, 1), 0xff);
    ops.opaque = m;
    assert_int_equal(pcihp_init(&m->hp, &m->bus, &m->pci, m->layout, &ops), 0);
    /* init takes what is on the bus as present, cold. */
    assert_int_equal(pcihp_present(&m->hp), FIXED_SLOTS | SLOT_BIT(4));
    assert_int_equal(all_raises(m), 0);
}

static void test_init_rejects_unknown_layout(void **state)
{
    struct machine *m = *state;
    struct pcihp hp;

    assert_int_equal(
        pcihp_init(&hp, &m->bus, &m->pci, (enum pcihp_layout)7, NULL), -EINVAL);
    /* The layout's ports are taken by the fixture's controller. */
    assert_int_equal(pcihp_init(&hp, &m->bus, &m->pci, m->layout, NULL),
                     -EEXIST);
}

/* qemu-xen only */

static void test_xen_eject_acts_on_lowest_bit(void **state)
{
    struct machine *m = *state;

    assert_int_equal(plug(m, 0x28, true, PCIHP_PLUG_COLD), 0);
    assert_int_equal(plug(m, 0x48, true, PCIHP_PLUG_COLD), 0);
    bus_write(&m->bus, BUS_PIO, PCIHP_QEMU_XEN_BASE + PCIHP_B0EJ,
              SLOT_BIT(5) | SLOT_BIT(9), 4);
    assert_int_equal(m->n_removed, 1);
    assert_removed(m, 0, 5, false);
    assert_non_null(pci_find_function(&m->pci, 0x48));
    /* Lowest bit names a non-hot-pluggable slot: nothing at all. */
    bus_write(&m->bus, BUS_PIO, PCIHP_QEMU_XEN_BASE + PCIHP_B0EJ,
              SLOT_BIT(1) | SLOT_BIT(9), 4);
    bus_write(&m->bus, BUS_PIO, PCIHP_QEMU_XEN_BASE + PCIHP_B0EJ, 0, 4);
    assert_int_equal(m->n_removed, 1);
    assert_non_null(pci_find_function(&m->pci, 0x48));
}

static void test_xen_narrow_and_readonly_accesses(void **state)
{
    struct machine *m = *state;
    const uint64_t base = PCIHP_QEMU_XEN_BASE;

    assert_int_equal(pcihp_request_unplug(&m->hp, 4), 0);
    for (unsigned off = 0; off < 0x10; off++) {
        assert_int_equal(bus_read(&m->bus, BUS_PIO, base + off, 1), 0);
        if (off <= 0xe)
            assert_int_equal(bus_read(&m->bus, BUS_PIO, base + off, 2), 0);
        if (off & 3 && off <= 0xc)
            assert_int_equal(bus_read(&m->bus, BUS_PIO, base + off, 4), 0);
    }
    /* Narrow or misaligned eject writes are ignored... */
    bus_write(&m->bus, BUS_PIO, base + PCIHP_B0EJ, SLOT_BIT(4), 1);
    bus_write(&m->bus, BUS_PIO, base + PCIHP_B0EJ, SLOT_BIT(4), 2);
    bus_write(&m->bus, BUS_PIO, base + PCIHP_B0EJ + 1, SLOT_BIT(4) >> 8, 1);
    bus_write(&m->bus, BUS_PIO, base + PCIHP_B0EJ + 1, SLOT_BIT(4) << 8, 4);
    /* ...and so are writes to the read-only registers. */
    bus_write(&m->bus, BUS_PIO, base + PCIHP_PCIU, 0, 4);
    bus_write(&m->bus, BUS_PIO, base + PCIHP_PCID, 0, 4);
    bus_write(&m->bus, BUS_PIO, base + PCIHP_B0RM, 0, 4);
    assert_int_equal(m->n_removed, 0);
    assert_int_equal(xen_reg(m, PCIHP_PCIU), SLOT_BIT(4));
    assert_int_equal(xen_reg(m, PCIHP_PCID), SLOT_BIT(4));
    assert_int_equal(xen_reg(m, PCIHP_B0RM), ~FIXED_SLOTS);
    /* Straddling the end: the in-range bytes are narrow reads, 0. */
    assert_int_equal(bus_read(&m->bus, BUS_PIO, base + 0xe, 4), 0xffff0000u);
    /* The GPE is not this device's: acknowledging does nothing here. */
    pm_clear_status(m, 1);
    assert_int_equal(raises(m), 1);
    assert_int_equal(xen_reg(m, PCIHP_PCID), SLOT_BIT(4));
    bus_write(&m->bus, BUS_PIO, base + PCIHP_B0EJ, SLOT_BIT(4), 4);
    assert_int_equal(m->n_removed, 1);
}

/* qemu-trad only */

static void test_trad_queue_order_and_ack(void **state)
{
    struct machine *m = *state;

    assert_int_equal(plug(m, 0x28, true, PCIHP_PLUG_HOT), 0);
    assert_int_equal(plug(m, 0x30, true, PCIHP_PLUG_HOT), 0);
    assert_int_equal(pcihp_request_unplug(&m->hp, 4), 0);
    assert_int_equal(pcihp_queued_events(&m->hp), 3);
    assert_int_equal(raises(m), 3);

    /* Cleared without being read (an OS clearing stale status at boot):
     * the head stays and is raised again. */
    pm_clear_status(m, 3);
    assert_int_equal(raises(m), 4);
    assert_int_equal(pcihp_queued_events(&m->hp), 3);
    assert_true(m->gpe_status & (1u << 3));

    /* Reading without acknowledging shows the same head every time. */
    assert_event(guest_read_event(m), PCIHP_EVENT_INSERT, 0x28);
    assert_event(guest_read_event(m), PCIHP_EVENT_INSERT, 0x28);
    pm_clear_status(m, 3);
    assert_int_equal(raises(m), 5);
    assert_event(pcihp_shown_event(&m->hp), PCIHP_EVENT_INSERT, 0x30);
    assert_event(guest_read_event(m), PCIHP_EVENT_INSERT, 0x30);
    pm_clear_status(m, 3);
    assert_int_equal(raises(m), 6);
    assert_event(guest_read_event(m), PCIHP_EVENT_REMOVE, 0x20);
    pm_clear_status(m, 3);
    /* Nothing left: no GPE, and the registers read 0/0. */
    assert_int_equal(raises(m), 6);
    assert_false(m->gpe_status & (1u << 3));
    assert_int_equal(pcihp_queued_events(&m->hp), 0);
    assert_event(guest_read_event(m), 0, 0);
    /* A stray acknowledgement, or one of another bit, changes nothing. */
    pcihp_gpe_acked(&m->hp, 3);
    pcihp_gpe_acked(&m->hp, 1);
    assert_int_equal(raises(m), 6);
    /* The removal is still pending until the guest ejects. */
    assert_int_equal(pcihp_down(&m->hp), SLOT_BIT(4));
    guest_eject(m, 4);
    assert_removed(m, 0, 4, true);
}

static void test_trad_eject_any_pending_slot(void **state)
{
    struct machine *m = *state;

    assert_int_equal(plug(m, 0x28, true, PCIHP_PLUG_HOT), 0);
    assert_int_equal(plug(m, 0x29, true, PCIHP_PLUG_HOT), 0);
    guest_handle_all(m);
    clear_logs(m);
    assert_int_equal(pcihp_request_unplug(&m->hp, 4), 0);
    assert_int_equal(pcihp_request_unplug(&m->hp, 5), 0);
    assert_event(guest_read_event(m), PCIHP_EVENT_REMOVE, 0x20);
    /* Slot 5 is not the head's, and the write names its odd function. */
    bus_write(&m->bus, BUS_PIO, PCIHP_QEMU_TRAD_BASE + PCIHP_PH00 + 0x29 / 2,
              PCIHP_EJECT_ODD, 1);
    assert_int_equal(m->n_removed, 1);
    assert_removed(m, 0, 5, true);
    assert_int_equal(m->n_unplugged, 2);
    assert_int_equal(m->unplugged[0], 0x29);
    assert_int_equal(m->unplugged[1], 0x28);
    assert_int_equal(trad_port(m, PCIHP_PH00 + 0x28 / 2), 0);
    /* Its queued event went with it; the read head stays. */
    assert_int_equal(pcihp_queued_events(&m->hp), 1);
    pm_clear_status(m, 3);
    assert_int_equal(pcihp_queued_events(&m->hp), 0);
    assert_int_equal(raises(m), 2);
    guest_eject(m, 4);
    assert_removed(m, 1, 4, true);
}

static void test_trad_eject_drops_stale_events(void **state)
{
    struct machine *m = *state;

    assert_int_equal(plug(m, 0x28, true, PCIHP_PLUG_HOT), 0);
    assert_int_equal(plug(m, 0x30, true, PCIHP_PLUG_HOT), 0);
    /* The guest ejects slot 5 before hearing of it: the unread head goes. */
    guest_eject(m, 5);
    assert_removed(m, 0, 5, false);
    assert_int_equal(pcihp_queued_events(&m->hp), 1);
    assert_event(pcihp_shown_event(&m->hp), PCIHP_EVENT_INSERT, 0x30);
    /* Read, then ejected: the head stays until acknowledged. */
    assert_event(guest_read_event(m), PCIHP_EVENT_INSERT, 0x30);
    guest_eject(m, 6);
    assert_removed(m, 1, 6, false);
    assert_int_equal(pcihp_queued_events(&m->hp), 1);
    assert_event(pcihp_shown_event(&m->hp), PCIHP_EVENT_INSERT, 0x30);
    pm_clear_status(m, 3);
    assert_int_equal(pcihp_queued_events(&m->hp), 0);
    assert_int_equal(raises(m), 2);
}

static void test_trad_bad_writes_ignored(void **state)
{
    struct machine *m = *state;
    static const uint8_t junk[] = {0x00, 0x02, 0x11, 0x0f, 0xf0, 0xff, 0x20};

    assert_int_equal(pcihp_request_unplug(&m->hp, 4), 0);
    for (size_t i = 0; i < sizeof(junk); i++)
        bus_write(&m->bus, BUS_PIO, PCIHP_QEMU_TRAD_BASE + PCIHP_PH00 + 0x10,
                  junk[i], 1);
    bus_write(&m->bus, BUS_PIO, PCIHP_QEMU_TRAD_BASE + PCIHP_PSTA, 0x01, 1);
    bus_write(&m->bus, BUS_PIO, PCIHP_QEMU_TRAD_BASE + PCIHP_PSTB, 0x10, 1);
    assert_int_equal(m->n_removed, 0);
    assert_int_equal(trad_nibble(m, 0x20), 0xf);
    assert_event(guest_read_event(m), PCIHP_EVENT_REMOVE, 0x20);
    /* A 16-bit write is two byte writes: 0x01 to 04.0's pair ejects. */
    bus_write(&m->bus, BUS_PIO, PCIHP_QEMU_TRAD_BASE + PCIHP_PH00 + 0x0f,
              0x0100, 2);
    assert_int_equal(m->n_removed, 1);
    assert_removed(m, 0, 4, true);
}

static void test_trad_wide_read(void **state)
{
    struct machine *m = *state;

    /* Byte registers: a word read is 01.0/01.1 then 01.2/01.3. */
    assert_int_equal(
        bus_read(&m->bus, BUS_PIO, PCIHP_QEMU_TRAD_BASE + PCIHP_PH00 + 4, 2),
        0xf0ff);
    assert_int_equal(
        bus_read(&m->bus, BUS_PIO, PCIHP_QEMU_TRAD_BASE + PCIHP_PH00 + 4, 4),
        0x0000f0ff);
    /* The last byte, devfns 0xfe/0xff, and past it. */
    assert_int_equal(plug(m, 0xff, true, PCIHP_PLUG_COLD), 0);
    assert_int_equal(trad_port(m, PCIHP_PH00 + 0x7f), 0xf0);
    assert_int_equal(bus_read(&m->bus, BUS_PIO, PCIHP_QEMU_TRAD_BASE + 0x81, 2),
                     0xfff0);
}

/* --- model-based randomized test ------------------------------------------
 *
 * The model below restates docs/hotplug.md in its own words and data
 * structures; it shares no code with hw/pcihp.c. After every random step
 * the controller's masks, every guest-visible register and every callback
 * are compared with the model, and each event carries an id so that the end
 * of the run can show none was lost or delivered twice. */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dull;
}

static unsigned rng_below(struct rng *r, unsigned n)
{
    return (unsigned)(rng_next(r) % n);
}

static bool rng_percent(struct rng *r, unsigned p)
{
    return rng_below(r, 100) < p;
}

#define MAX_IDS 65536

/* Life of a qemu-trad notification: queued, read by the guest at the head,
 * then acknowledged; or dropped (its slot ejected, or the machine reset)
 * at any point before the acknowledgement. */
enum id_fate { ID_QUEUED = 0, ID_READ, ID_ACKED, ID_DROPPED };

struct model_event {
    uint8_t code, devfn;
    unsigned id;
};

struct model {
    enum pcihp_layout layout;
    /* the machine as the test built it */
    bool on_bus[256], removable_fn[256];
    /* the rules' state */
    bool announced[256];
    bool removable_slot[32];
    bool pending[32];
    unsigned request_id[32]; /* id of the pending request per slot */
    /* qemu-trad notifications, oldest first */
    struct model_event q[512];
    unsigned qn;
    bool q_read;
    /* what the current step must produce */
    unsigned want_raises;
    uint8_t want_unplugged[LOG_CAP];
    unsigned n_want_unplugged;
    struct removal want_removed[LOG_CAP];
    unsigned n_want_removed;
    /* accounting over the run */
    unsigned next_id;
    unsigned char completions[MAX_IDS]; /* per request id */
    unsigned char fate[MAX_IDS];        /* per queued trad event */
    bool is_request[MAX_IDS];
    /* per hot insert: a guest-visible read showed it (qemu-xen: its PCIU
     * bit; qemu-trad: its status nibble; the notification is tracked by
     * fate[]) */
    bool insert_visible[MAX_IDS];
    unsigned insert_at[256]; /* id + 1 of the insert of this devfn, or 0 */
    unsigned requests, inserts, delivered, acked, dropped, unrequested_ejects;
};

static unsigned model_new_id(struct model *md)
{
    assert_true(md->next_id < MAX_IDS);
    return md->next_id++;
}

static uint32_t model_slot_mask(const bool *per_slot)
{
    uint32_t mask = 0;

    for (unsigned s = 0; s < 32; s++)
        if (per_slot[s])
            mask |= 1u << s;
    return mask;
}

static bool model_slot_occupied(const struct model *md, unsigned slot)
{
    for (unsigned fn = 0; fn < 8; fn++)
        if (md->announced[slot * 8 + fn])
            return true;
    return false;
}

static uint32_t model_present(const struct model *md)
{
    uint32_t mask = 0;

    for (unsigned s = 0; s < 32; s++)
        if (model_slot_occupied(md, s))
            mask |= 1u << s;
    return mask;
}

static void model_notify(struct model *md, uint8_t code, uint8_t devfn,
                         unsigned id)
{
    md->want_raises++;
    if (md->layout != PCIHP_LAYOUT_QEMU_TRAD)
        return;
    assert_true(md->qn < 512);
    if (md->qn == 0)
        md->q_read = false;
    md->q[md->qn++] = (struct model_event){code, devfn, id};
}

static void model_forget_event(struct model *md, unsigned i)
{
    assert_true(md->fate[md->q[i].id] == ID_QUEUED ||
                md->fate[md->q[i].id] == ID_READ);
    md->fate[md->q[i].id] = ID_DROPPED;
    md->dropped++;
    for (unsigned j = i + 1; j < md->qn; j++)
        md->q[j - 1] = md->q[j];
    md->qn--;
    if (i == 0)
        md->q_read = false;
}

static void model_eject(struct model *md, unsigned slot)
{
    bool requested = md->pending[slot];

    md->pending[slot] = false;
    for (int fn = 7; fn >= 0; fn--) {
        unsigned devfn = slot * 8 + (unsigned)fn;

        if (md->on_bus[devfn] && md->removable_fn[devfn]) {
            /* No insertion disappears before the guest could see it. */
            if (md->insert_at[devfn])
                assert_true(md->insert_visible[md->insert_at[devfn] - 1]);
            md->insert_at[devfn] = 0;
            md->want_unplugged[md->n_want_unplugged++] = (uint8_t)devfn;
            md->on_bus[devfn] = false;
            md->announced[devfn] = false;
        }
    }
    for (unsigned i = md->q_read ? 1 : 0; i < md->qn;) {
        if (md->q[i].devfn / 8 == slot)
            model_forget_event(md, i);
        else
            i++;
    }
    md->want_removed[md->n_want_removed++] = (struct removal){slot, requested};
    if (requested)
        md->completions[md->request_id[slot]]++;
    else
        md->unrequested_ejects++;
}

static void model_guest_eject(struct model *md, unsigned slot)
{
    if (!md->removable_slot[slot])
        return;
    if (!model_slot_occupied(md, slot) && !md->pending[slot])
        return;
    model_eject(md, slot);
}

static void model_recompute(struct model *md)
{
    for (unsigned s = 0; s < 32; s++)
        md->removable_slot[s] = true;
    for (unsigned devfn = 0; devfn < 256; devfn++) {
        md->announced[devfn] = md->on_bus[devfn];
        if (md->on_bus[devfn] && !md->removable_fn[devfn])
            md->removable_slot[devfn / 8] = false;
    }
}

static void model_reset(struct model *md)
{
    for (unsigned s = 0; s < 32; s++)
        if (md->pending[s])
            model_eject(md, s);
    model_recompute(md);
    if (md->layout != PCIHP_LAYOUT_QEMU_TRAD)
        return;
    for (unsigned i = 0; i < md->qn;) {
        if (md->q[i].code == PCIHP_EVENT_INSERT &&
            md->announced[md->q[i].devfn])
            i++;
        else
            model_forget_event(md, i);
    }
    md->q_read = false;
    if (md->qn)
        md->want_raises++;
}

/* Expected result of pcihp_plugged, with the machine already updated. */
static int model_plug(struct model *md, unsigned devfn, bool hot)
{
    unsigned slot = devfn / 8;

    if (!md->on_bus[devfn])
        return -ENODEV;
    if (md->pending[slot])
        return -EBUSY;
    if (!hot) {
        md->announced[devfn] = true;
        if (!md->removable_fn[devfn])
            md->removable_slot[slot] = false;
        return 0;
    }
    if (!md->removable_slot[slot] || !md->removable_fn[devfn])
        return -EPERM;
    if (md->announced[devfn])
        return -EEXIST;
    md->announced[devfn] = true;
    if (devfn % 8 == 0) {
        unsigned id = model_new_id(md);

        md->inserts++;
        md->insert_at[devfn] = id + 1;
        model_notify(md, PCIHP_EVENT_INSERT, (uint8_t)devfn, id);
    }
    return 0;
}

static int model_request(struct model *md, unsigned slot)
{
    unsigned id, first = 0;

    if (slot > 31)
        return -EINVAL;
    if (!model_slot_occupied(md, slot))
        return -ENODEV;
    if (!md->removable_slot[slot])
        return -EPERM;
    if (md->pending[slot])
        return -EALREADY;
    md->pending[slot] = true;
    id = model_new_id(md);
    md->is_request[id] = true;
    md->request_id[slot] = id;
    md->requests++;
    while (!md->announced[slot * 8 + first])
        first++;
    model_notify(md, PCIHP_EVENT_REMOVE, (uint8_t)(slot * 8 + first), id);
    return 0;
}

static void model_ack(struct model *md)
{
    if (md->layout != PCIHP_LAYOUT_QEMU_TRAD || md->qn == 0)
        return;
    if (!md->q_read) {
        md->want_raises++;
        return;
    }
    assert_int_equal(md->fate[md->q[0].id], ID_READ);
    md->fate[md->q[0].id] = ID_ACKED;
    md->acked++;
    for (unsigned j = 1; j < md->qn; j++)
        md->q[j - 1] = md->q[j];
    md->qn--;
    md->q_read = false;
    if (md->qn)
        md->want_raises++;
}

static struct pcihp_event model_shown(const struct model *md)
{
    if (md->qn)
        return (struct pcihp_event){md->q[0].code, md->q[0].devfn};
    return (struct pcihp_event){0, 0};
}

/* The guest reads PSTA/PSTB. */
static void model_guest_read_event(struct model *md)
{
    if (md->qn == 0)
        return;
    if (md->fate[md->q[0].id] == ID_QUEUED) {
        md->fate[md->q[0].id] = ID_READ;
        md->delivered++;
    }
    md->q_read = true;
}

static void model_begin_step(struct model *md, struct machine *m)
{
    md->want_raises = 0;
    md->n_want_unplugged = 0;
    md->n_want_removed = 0;
    clear_logs(m);
}

static void compare(struct model *md, struct machine *m, unsigned step)
{
    unsigned bit = pcihp_gpe_bit(&m->hp);
    uint32_t present = model_present(md);
    uint32_t removable = model_slot_mask(md->removable_slot);
    uint32_t pending = model_slot_mask(md->pending);

    if (pcihp_present(&m->hp) != present || pcihp_down(&m->hp) != pending ||
        pcihp_hotpluggable(&m->hp) != removable)
        fail_msg("step %u: present %08x/%08x down %08x/%08x hp %08x/%08x", step,
                 pcihp_present(&m->hp), present, pcihp_down(&m->hp), pending,
                 pcihp_hotpluggable(&m->hp), removable);
    assert_int_equal(pcihp_up(&m->hp), present & removable);
    for (unsigned devfn = 0; devfn < 256; devfn++) {
        assert_int_equal(pci_find_function(&m->pci, (uint8_t)devfn) != NULL,
                         md->on_bus[devfn]);
        assert_int_equal(pcihp_function_present(&m->hp, (uint8_t)devfn),
                         md->announced[devfn]);
    }
    if (m->gpe_raises[bit] != md->want_raises)
        fail_msg("step %u: %u GPE raises, model wants %u", step,
                 m->gpe_raises[bit], md->want_raises);
    assert_int_equal(all_raises(m), md->want_raises);
    assert_int_equal(m->n_unplugged, md->n_want_unplugged);
    assert_memory_equal(m->unplugged, md->want_unplugged, m->n_unplugged);
    assert_int_equal(m->n_removed, md->n_want_removed);
    for (unsigned i = 0; i < m->n_removed; i++) {
        assert_int_equal(m->removed[i].slot, md->want_removed[i].slot);
        assert_int_equal(m->removed[i].requested,
                         md->want_removed[i].requested);
    }
    if (m->layout == PCIHP_LAYOUT_QEMU_XEN) {
        /* These reads have no side effect, so they may run every step. */
        uint32_t up = xen_reg(m, PCIHP_PCIU);

        assert_int_equal(up, present & removable);
        for (unsigned s = 0; s < 32; s++)
            if (md->insert_at[s * 8] && (up & (1u << s)))
                md->insert_visible[md->insert_at[s * 8] - 1] = true;
        assert_int_equal(xen_reg(m, PCIHP_PCID), pending);
        assert_int_equal(xen_reg(m, PCIHP_B0EJ), 0);
        assert_int_equal(xen_reg(m, PCIHP_B0RM), removable);
        return;
    }
    for (unsigned devfn = 0; devfn < 256; devfn++) {
        unsigned nibble = trad_nibble(m, (uint8_t)devfn);

        assert_int_equal(nibble, md->announced[devfn] ? 0xf : 0);
        if (md->insert_at[devfn] && nibble == 0xf)
            md->insert_visible[md->insert_at[devfn] - 1] = true;
    }
    assert_int_equal(pcihp_queued_events(&m->hp), md->qn);
    {
        struct pcihp_event got = pcihp_shown_event(&m->hp);
        struct pcihp_event want = model_shown(md);

        if (got.code != want.code || got.devfn != want.devfn)
            fail_msg("step %u: shows %u/%02x, model %u/%02x", step, got.code,
                     got.devfn, want.code, want.devfn);
    }
    /* Whatever is queued has its GPE status set: nothing waits silently. */
    if (md->qn)
        assert_true(m->gpe_status & (1u << bit));
}

/* One function, hot or (rarely) refused, as the machine would plug it. */
static void step_insert(struct model *md, struct machine *m, struct rng *r,
                        unsigned devfn)
{
    bool removable = !rng_percent(r, 4);
    int want, rc;

    if (md->on_bus[devfn]) {
        /* The control plane repeats itself: no new function. */
        want = model_plug(md, devfn, true);
        rc = pcihp_plugged(&m->hp, (uint8_t)devfn, PCIHP_PLUG_HOT);
        assert_int_equal(rc, want);
        return;
    }
    assert_int_equal(add_function(m, (uint8_t)devfn, removable), 0);
    md->on_bus[devfn] = true;
    md->removable_fn[devfn] = removable;
    want = model_plug(md, devfn, true);
    rc = pcihp_plugged(&m->hp, (uint8_t)devfn, PCIHP_PLUG_HOT);
    assert_int_equal(rc, want);
    if (rc < 0) {
        remove_function(m, (uint8_t)devfn);
        md->on_bus[devfn] = false;
    }
}

static void step_guest_eject(struct model *md, struct machine *m, struct rng *r)
{
    unsigned slot = rng_below(r, 32);

    /* A guest mostly ejects what it was asked to. */
    if (rng_percent(r, 50)) {
        for (unsigned s = 0; s < 32; s++)
            if (md->pending[(slot + s) % 32]) {
                slot = (slot + s) % 32;
                break;
            }
    }
    if (m->layout == PCIHP_LAYOUT_QEMU_XEN) {
        uint32_t mask = 1u << slot;
        unsigned size = 4;

        if (rng_percent(r, 15))
            mask |= (uint32_t)rng_next(r) & ~((mask << 1) - 1);
        if (rng_percent(r, 5))
            mask = 0;
        if (rng_percent(r, 5))
            size = rng_percent(r, 50) ? 1 : 2; /* narrow: ignored */
        bus_write(&m->bus, BUS_PIO, PCIHP_QEMU_XEN_BASE + PCIHP_B0EJ, mask,
                  size);
        if (mask && size == 4)
            model_guest_eject(md, (unsigned)__builtin_ctz(mask));
    } else {
        unsigned devfn = slot * 8 + rng_below(r, 8);
        uint8_t value = devfn & 1 ? PCIHP_EJECT_ODD : PCIHP_EJECT_EVEN;

        if (rng_percent(r, 10))
            value = (uint8_t)rng_next(r);
        bus_write(&m->bus, BUS_PIO,
                  PCIHP_QEMU_TRAD_BASE + PCIHP_PH00 + devfn / 2, value, 1);
        if (value == PCIHP_EJECT_EVEN || value == PCIHP_EJECT_ODD)
            model_guest_eject(md, slot);
    }
}

static void step_guest_read(struct model *md, struct machine *m)
{
    if (m->layout == PCIHP_LAYOUT_QEMU_XEN) {
        /* What _E01 reads; no side effect, compare() checks the values. */
        xen_reg(m, PCIHP_PCIU);
        xen_reg(m, PCIHP_PCID);
        return;
    }
    {
        struct pcihp_event want = model_shown(md);
        struct pcihp_event got = guest_read_event(m);

        assert_int_equal(got.code, want.code);
        assert_int_equal(got.devfn, want.devfn);
        model_guest_read_event(md);
    }
}

static void model_init(struct model *md, struct machine *m)
{
    memset(md, 0, sizeof(*md));
    md->layout = m->layout;
    for (unsigned devfn = 0; devfn < 256; devfn++) {
        const struct pci_function *f =
            pci_find_function(&m->pci, (uint8_t)devfn);

        md->on_bus[devfn] = f != NULL;
        md->removable_fn[devfn] = f && f->hotpluggable;
    }
    model_recompute(md);
}

static void run_random(enum pcihp_layout layout, uint64_t seed, unsigned steps)
{
    struct machine *m = machine_new(layout);
    struct model *md = calloc(1, sizeof(*md));
    struct rng r = {seed};
    unsigned bit = pcihp_gpe_bit(&m->hp);
    FILE *quiet = fopen("/dev/null", "w");

    assert_non_null(md);
    assert_non_null(quiet);
    /* Refusals and guest misuse are logged; thousands of them are noise. */
    log_set_stream(quiet);
    model_init(md, m);
    for (unsigned step = 0; step < steps; step++) {
        unsigned op = rng_below(&r, 100);

        model_begin_step(md, m);
        if (op < 18) {
            unsigned slot = rng_below(&r, 32);

            step_insert(md, m, &r,
                        slot * 8 +
                            (rng_percent(&r, 70) ? 0 : rng_below(&r, 8)));
        } else if (op < 21) {
            /* A multi-function device, functions 7 down to 0. */
            unsigned slot = rng_below(&r, 32);

            for (int fn = 7; fn >= 0; fn--)
                step_insert(md, m, &r, slot * 8 + (unsigned)fn);
        } else if (op < 36) {
            unsigned slot = rng_below(&r, 34);

            assert_int_equal(pcihp_request_unplug(&m->hp, slot),
                             model_request(md, slot));
        } else if (op < 56) {
            step_guest_eject(md, m, &r);
        } else if (op < 60) {
            machine_reset(m);
            model_reset(md);
        } else if (op < 78) {
            /* The guest writes 1 to a GPE0 status bit; mostly ours. */
            unsigned which = rng_percent(&r, 85) ? bit : rng_below(&r, 4);

            if (m->gpe_status & (1u << which)) {
                pm_clear_status(m, which);
                if (which == bit)
                    model_ack(md);
            }
        } else if (op < 98) {
            step_guest_read(md, m);
        } else {
            /* Noise: accesses that must change nothing. */
            if (layout == PCIHP_LAYOUT_QEMU_XEN)
                bus_write(&m->bus, BUS_PIO,
                          PCIHP_QEMU_XEN_BASE + 4 * rng_below(&r, 4),
                          rng_next(&r), rng_percent(&r, 50) ? 1 : 2);
            else
                bus_write(&m->bus, BUS_PIO,
                          PCIHP_QEMU_TRAD_BASE + rng_below(&r, 2), rng_next(&r),
                          1);
        }
        compare(md, m, step);
    }

    /* Drain: a guest that now answers every GPE... */
    model_begin_step(md, m);
    for (unsigned i = 0;
         i < 4 * PCIHP_QUEUE_LEN && (m->gpe_status & (1u << bit)); i++) {
        step_guest_read(md, m);
        pm_clear_status(m, bit);
        model_ack(md);
    }
    compare(md, m, steps);
    assert_int_equal(md->qn, 0);
    /* ...and a reset, which completes every removal still pending. */
    model_begin_step(md, m);
    machine_reset(m);
    model_reset(md);
    compare(md, m, steps + 1);
    assert_int_equal(pcihp_down(&m->hp), 0);

    /* Every accepted request was reported complete exactly once, and every
     * trad notification was delivered (read, then acknowledged exactly
     * once) or dropped because its slot was ejected or the machine reset
     * before the guest got to it. */
    for (unsigned id = 0; id < md->next_id; id++) {
        if (md->is_request[id])
            assert_int_equal(md->completions[id], 1);
        else
            assert_true(md->insert_visible[id]);
        if (layout != PCIHP_LAYOUT_QEMU_TRAD)
            continue;
        assert_true(md->fate[id] == ID_ACKED || md->fate[id] == ID_DROPPED);
    }
    /* The run exercised what it claims to. */
    assert_true(md->requests > steps / 50);
    assert_true(md->inserts > steps / 50);
    assert_true(md->unrequested_ejects > 0);
    if (layout == PCIHP_LAYOUT_QEMU_TRAD) {
        assert_int_equal(md->acked + md->dropped, md->next_id);
        assert_true(md->acked > md->next_id / 4);
        assert_true(md->dropped > 0);
    }
    printf("    %s seed %#llx: %u steps, %u inserts, %u unplug requests, "
           "%u unrequested ejects",
           layout == PCIHP_LAYOUT_QEMU_XEN ? "qemu-xen" : "qemu-trad",
           (unsigned long long)seed, steps, md->inserts, md->requests,
           md->unrequested_ejects);
    if (layout == PCIHP_LAYOUT_QEMU_TRAD)
        printf(", %u events read, %u acknowledged, %u dropped", md->delivered,
               md->acked, md->dropped);
    printf("\n");
    free(md);
    machine_free(m);
    log_set_stream(NULL);
    fclose(quiet);
}

static const uint64_t extra_seeds[] = {
    0x1, 0xdeadbeefcafef00dull, 0x0123456789abcdefull, 0x5a5a5a5a5a5a5a5aull};

static void test_random_qemu_xen(void **state)
{
    run_random(PCIHP_LAYOUT_QEMU_XEN, 0x9e3779b97f4a7c15ull, 20000);
    for (size_t i = 0; i < sizeof(extra_seeds) / sizeof(extra_seeds[0]); i++)
        run_random(PCIHP_LAYOUT_QEMU_XEN, extra_seeds[i], 5000);
}

static void test_random_qemu_trad(void **state)
{
    run_random(PCIHP_LAYOUT_QEMU_TRAD, 0x9e3779b97f4a7c15ull, 20000);
    for (size_t i = 0; i < sizeof(extra_seeds) / sizeof(extra_seeds[0]); i++)
        run_random(PCIHP_LAYOUT_QEMU_TRAD, extra_seeds[i], 5000);
}

/* Named per layout, so that a failure says which one. */
#define XEN(fn) {#fn " [qemu-xen]", fn, setup, teardown, &layout_xen}
#define TRAD(fn) {#fn " [qemu-trad]", fn, setup, teardown, &layout_trad}
#define BOTH(fn) XEN(fn), TRAD(fn)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_misuse_is_logged),
        BOTH(test_init_state),
        BOTH(test_cold_plug_raises_nothing),
        BOTH(test_hot_plug_raises_event),
        BOTH(test_two_unplugs_before_guest_reads),
        BOTH(test_unplug_then_reset),
        BOTH(test_reset_keeps_pending_insertion),
        BOTH(test_insert_during_unhandled_removal),
        BOTH(test_eject_empty_slot_does_nothing),
        BOTH(test_eject_non_hotpluggable_slot_does_nothing),
        BOTH(test_eject_unrequested_slot_removes_it),
        BOTH(test_duplicate_unplug_is_already),
        BOTH(test_unplug_request_errors),
        BOTH(test_plug_errors),
        BOTH(test_multifunction_plug_7_to_0),
        BOTH(test_removed_may_reenter),
        BOTH(test_fini_unmaps),
        BOTH(test_init_rejects_unknown_layout),
        XEN(test_xen_eject_acts_on_lowest_bit),
        XEN(test_xen_narrow_and_readonly_accesses),
        TRAD(test_trad_queue_order_and_ack),
        TRAD(test_trad_eject_any_pending_slot),
        TRAD(test_trad_eject_drops_stale_events),
        TRAD(test_trad_bad_writes_ignored),
        TRAD(test_trad_wide_read),
        cmocka_unit_test(test_random_qemu_xen),
        cmocka_unit_test(test_random_qemu_trad),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
