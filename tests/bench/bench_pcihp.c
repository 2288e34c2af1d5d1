/* Hot-plug events per second through the controller, in process: each
 * cycle hot-plugs a function (one event), asks for its removal (one event)
 * and has the guest read the registers and eject it (one event), with a
 * real bus and PCI bus underneath. Prints numbers only; timing never
 * fails the run, a lost completion does. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../hw/bus.h"
#include "../../hw/pci.h"
#include "../../hw/pcihp.h"

#define FIRST_SLOT 4
#define RUN_NS 300000000ull /* per layout */
#define BATCH 1000

struct bench {
    struct bus bus;
    struct pci_bus pci;
    struct pcihp hp;
    struct pci_function functions[PCIHP_SLOTS];
    uint16_t gpe_status;
    uint64_t completions;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void bench_raise_gpe(void *opaque, unsigned bit)
{
    struct bench *b = opaque;

    b->gpe_status |= (uint16_t)(1u << bit);
}

static void bench_unplug_function(void *opaque, uint8_t devfn)
{
    struct bench *b = opaque;

    pci_unregister_function(pci_find_function(&b->pci, devfn));
}

static void bench_removed(void *opaque, unsigned slot, bool requested)
{
    struct bench *b = opaque;

    if (requested)
        b->completions++;
}

/* What the PIIX4 PM device does when the guest clears a GPE0 status bit. */
static void guest_ack(struct bench *b, unsigned bit)
{
    if (b->gpe_status & (1u << bit)) {
        b->gpe_status &= (uint16_t)~(1u << bit);
        pcihp_gpe_acked(&b->hp, bit);
    }
}

static void guest_handle(struct bench *b, unsigned slot)
{
    if (b->hp.layout == PCIHP_LAYOUT_QEMU_XEN) {
        /* _E01: read up and down, then _EJ0 of the slot. */
        guest_ack(b, PCIHP_QEMU_XEN_GPE_BIT);
        bus_read(&b->bus, BUS_PIO, PCIHP_QEMU_XEN_BASE + PCIHP_PCIU, 4);
        bus_read(&b->bus, BUS_PIO, PCIHP_QEMU_XEN_BASE + PCIHP_PCID, 4);
        bus_write(&b->bus, BUS_PIO, PCIHP_QEMU_XEN_BASE + PCIHP_B0EJ,
                  1u << slot, 4);
        return;
    }
    /* _L03 once for the insert, once for the removal, then _EJ0. */
    for (int i = 0; i < 2; i++) {
        bus_read(&b->bus, BUS_PIO, PCIHP_QEMU_TRAD_BASE + PCIHP_PSTA, 1);
        bus_read(&b->bus, BUS_PIO, PCIHP_QEMU_TRAD_BASE + PCIHP_PSTB, 1);
        guest_ack(b, PCIHP_QEMU_TRAD_GPE_BIT);
    }
    bus_write(&b->bus, BUS_PIO,
              PCIHP_QEMU_TRAD_BASE + PCIHP_PH00 + PCI_DEVFN(slot, 0) / 2,
              PCIHP_EJECT_EVEN, 1);
}

static int cycle(struct bench *b, unsigned slot)
{
    struct pci_function *f = &b->functions[slot];
    uint8_t devfn = PCI_DEVFN(slot, 0);
    int rc;

    pci_function_init(f, "bench-nic", 0x8086, 0x100e, 0x020000, 3, NULL, NULL);
    rc = pci_register_function(&b->pci, f, devfn);
    if (rc < 0)
        return rc;
    rc = pcihp_plugged(&b->hp, devfn, PCIHP_PLUG_HOT);
    if (rc < 0)
        return rc;
    rc = pcihp_request_unplug(&b->hp, slot);
    if (rc < 0)
        return rc;
    guest_handle(b, slot);
    return 0;
}

/* Returns events per second, or a negative errno. */
static double run(enum pcihp_layout layout, uint64_t *events_out,
                  uint64_t *ns_out)
{
    struct bench *b = calloc(1, sizeof(*b));
    struct pcihp_ops ops = {
        .raise_gpe = bench_raise_gpe,
        .unplug_function = bench_unplug_function,
        .removed = bench_removed,
    };
    uint64_t cycles = 0, start, elapsed = 0;
    unsigned slot = FIRST_SLOT;
    double rate = -1;
    int rc;

    if (!b)
        return -1;
    ops.opaque = b;
    bus_init(&b->bus);
    pci_bus_init(&b->pci, &b->bus);
    rc = pcihp_init(&b->hp, &b->bus, &b->pci, layout, &ops);
    if (rc < 0)
        goto out;
    start = now_ns();
    while (elapsed < RUN_NS) {
        for (int i = 0; i < BATCH; i++) {
            rc = cycle(b, slot);
            if (rc < 0) {
                fprintf(stderr, "bench_pcihp: cycle failed: %d\n", rc);
                goto out_fini;
            }
            slot = slot == PCIHP_SLOTS - 1 ? FIRST_SLOT : slot + 1;
        }
        cycles += BATCH;
        elapsed = now_ns() - start;
    }
    if (b->completions != cycles || pcihp_queued_events(&b->hp) ||
        pcihp_down(&b->hp)) {
        fprintf(stderr, "bench_pcihp: %" PRIu64 " removals completed of %"
                PRIu64 "\n", b->completions, cycles);
        goto out_fini;
    }
    *events_out = 3 * cycles;
    *ns_out = elapsed;
    rate = 3.0 * (double)cycles * 1e9 / (double)elapsed;
out_fini:
    pcihp_fini(&b->hp);
out:
    bus_fini(&b->bus);
    free(b);
    return rate;
}

int main(void)
{
    static const struct {
        enum pcihp_layout layout;
        const char *name;
    } layouts[] = {{PCIHP_LAYOUT_QEMU_XEN, "qemu-xen"},
                   {PCIHP_LAYOUT_QEMU_TRAD, "qemu-trad"}};
    double rates[2];
    uint64_t events = 0, ns = 0;

    for (int i = 0; i < 2; i++) {
        uint64_t e = 0, t = 0;

        rates[i] = run(layouts[i].layout, &e, &t);
        if (rates[i] < 0)
            return 1;
        events += e;
        ns += t;
    }
    printf("pcihp: %.0f events/s\n", (double)events * 1e9 / (double)ns);
    for (int i = 0; i < 2; i++)
        printf("pcihp %s: %.0f events/s\n", layouts[i].name, rates[i]);
    return 0;
}
