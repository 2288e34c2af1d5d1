/* PIIX3 PCI-to-ISA bridge, function 00:01.0, plus I/O 0xCF9 and 0x92.
 *
 * Identity and power-on values are what QEMU 7.x presents under
 * -machine xenfv (hw/isa/piix3.c "PIIX3-xen", hw/pci/pci.c, pc_piix.c):
 *  - 8086:7000 (82371SB function 0), revision 0, class 0x0601, created as a
 *    multi-function device in slot 1: the PCI core sets header bit 7 as soon
 *    as the IDE function joins at 00:01.1;
 *  - subsystem 1af4:1100 (hw/pci/pci.c's default for every function);
 *  - piix3_reset()'s register defaults (IORT 0x4d, XBCS 0x0003, PIRQRC 0x80,
 *    TOM 0x02, MBIRQ0 0x80, MBDMA 0x0c, PCSC 0x0002, SMICNTL 0x08, FTMR
 *    0x0f) and status 0x0200 (DEVSEL medium);
 *  - command 0: piix3_reset() writes 0x0007, but the PCI bus's own reset
 *    (pci_do_device_reset) runs after its devices' and clears every
 *    writable command bit, so a guest finds 0 after every reset (seen on
 *    Debian's QEMU 7.2, -M pc, config space read with the monitor's i/o);
 *  - latency timer read-only 0 (QEMU gives it no write mask).
 *
 * PIRQ routing: Xen owns the interrupt controllers, so the routes only mean
 * something once Xen knows them. Every write to PIRQRC[A:D] is passed on as
 * irq_route_pci_link(link, bit 7 ? 0 : value & 0xf), byte by byte, as QEMU's
 * xen_piix_pci_write_config_client does (xen-dm-interfaces.md §2.5); the
 * value is passed on even when unchanged, so the hypervisor's copy cannot
 * drift. Reset reports all four links as disconnected.
 *
 * Resets: QEMU's rcr_write (PIIX3 Reset Control) and port92_write
 * (hw/i386/pc.c / port92.c) request a guest reset; the machine decides what
 * that means (under Xen: SHUTDOWN_reboot, §4.1). */
#include "piix3.h"

#include <errno.h>
#include <string.h>

#include "../lib/log.h"
#include "savestate.h"

TRACE_POINT(trace_piix3, "piix3");

#define PIIX3_VENDOR 0x8086
#define PIIX3_DEVICE 0x7000
#define PIIX3_REVISION 0x00
#define PIIX3_CLASS 0x060100 /* ISA bridge */
#define PIIX3_STATUS_POWER_ON 0x0200 
/* The datasheet's registers, writable byte for byte as in QEMU, with the
 * values QEMU's piix3_reset() gives them. Bytes not listed read 0 and ignore
 * writes; QEMU lets every byte from 0x40 up be written, but nothing is
 * behind the others and no firmware or driver we know writes them. */
static const struct {
    uint8_t reg, width;
    const char *name;
    uint32_t power_on;
} piix3_regs[] = {
    {PIIX3_IORT, 1, "IORT", 0x4d},
    {PIIX3_XBCS, 2, "XBCS", 0x0003},
    {PIIX3_PIRQRC + 0, 1, "PIRQRCA", PIIX3_PIRQ_DISABLE},
    {PIIX3_PIRQRC + 1, 1, "PIRQRCB", PIIX3_PIRQ_DISABLE},
    {PIIX3_PIRQRC + 2, 1, "PIRQRCC", PIIX3_PIRQ_DISABLE},
    {PIIX3_PIRQRC + 3, 1, "PIRQRCD", PIIX3_PIRQ_DISABLE},
    {PIIX3_TOM, 1, "TOM", 0x02},
    {PIIX3_MSTAT, 2, "MSTAT", 0x0000},
    {PIIX3_MBIRQ0, 1, "MBIRQ0", 0x80},
    {PIIX3_MBDMA0 + 0, 1, "MBDMA0", 0x0c},
    {PIIX3_MBDMA0 + 1, 1, "MBDMA1", 0x0c},
    {PIIX3_PCSC, 2, "PCSC", 0x0002},
    {PIIX3_APICBASE, 1, "APICBASE", 0x00},
    {PIIX3_DLC, 1, "DLC", 0x00},
    {PIIX3_SMICNTL, 1, "SMICNTL", 0x08},
    {PIIX3_SMIEN, 2, "SMIEN", 0x0000},
    {PIIX3_SEE, 4, "SEE", 0x00000000},
    {PIIX3_FTMR, 1, "FTMR", 0x0f},
    {PIIX3_SMIREQ, 2, "SMIREQ", 0x0000},
    {PIIX3_CTLTMR, 1, "CTLTMR", 0x00},
    {PIIX3_CTHTMR, 1, "CTHTMR", 0x00},
};

#define PIIX3_NREGS (sizeof(piix3_regs) / sizeof(piix3_regs[0]))

static const char *piix3_reg_name(unsigned reg)
{
    for (size_t i = 0; i < PIIX3_NREGS; i++)
        if (reg >= piix3_regs[i].reg &&
            reg < (unsigned)piix3_regs[i].reg + piix3_regs[i].width)
            return piix3_regs[i].name;
    return NULL;
}

static unsigned pirq_route_value(uint8_t pirqrc)
{
    return pirqrc & PIIX3_PIRQ_DISABLE ? 0 : pirqrc & PIIX3_PIRQ_IRQ_MASK;
}

static void piix3_config_write(struct pci_function *f, unsigned reg,
                               uint32_t value, unsigned size)
{
    struct piix3 *s = f->opaque;

    for (unsigned i = 0; i < size; i++) {
        unsigned r = reg + i;
        uint8_t b = (uint8_t)(value >> (8 * i));
        const char *name = piix3_reg_name(r);

        if (name)
            trace(trace_piix3, "%s[0x%02x] <- 0x%02x", name, r, b);
        if (r >= PIIX3_PIRQRC && r < PIIX3_PIRQRC + PIIX3_NUM_PIRQS)
            irq_route_pci_link(s->irq, r - PIIX3_PIRQRC, pirq_route_value(b));
    }
}

/* Runs after the core restored the power-on config. */
static void piix3_function_reset(struct pci_function *f)
{
    struct piix3 *s = f->opaque;

    s->rcr = 0;
    /* As QEMU's port92_reset: only the reset bit, so that the next 0->1
     * edge is seen; the A20 gate keeps its state. */
    s->port92 &= (uint8_t)~PIIX3_PORT92_FAST_RESET;
    for (unsigned link = 0; link < PIIX3_NUM_PIRQS; link++)
        irq_route_pci_link(s->irq, link, 0);
}

static const struct pci_function_ops piix3_pci_ops = {
    .config_write = piix3_config_write,
    .reset = piix3_function_reset,
};

/* --- Reset Control register, I/O 0xCF9 ---------------------------------- */

static uint64_t piix3_rcr_read(void *opaque)
{
    struct piix3 *s = opaque;

    return s->rcr;
}

static void piix3_rcr_write(void *opaque, uint8_t value)
{
    struct piix3 *s = opaque;

    /* RCPU acts on its 0->1 transition. It is never stored (QEMU's rcr_write
     * keeps only SRST), so it always reads 0 and every write with it set is
     * such a transition. */
    if (value & PIIX3_RCR_RCPU) {
        log_ratelimited(LOG_INFO, "piix3: guest requested a %s reset via 0xcf9",
                        value & PIIX3_RCR_SRST ? "hard" : "soft");
        s->ops.request_reset(s->ops.opaque, "guest-reset");
        return;
    }
    s->rcr = value & PIIX3_RCR_SRST;
}

/* --- System Control Port A, I/O 0x92 ------------------------------------ */

static uint64_t port92_read(void *opaque, uint64_t off, unsigned size)
{
    struct piix3 *s = opaque;

    return s->port92;
}

static void port92_write(void *opaque, uint64_t off, uint64_t value,
                         unsigned size)
{
    struct piix3 *s = opaque;
    uint8_t old = s->port92, v = (uint8_t)value;

    /* The whole byte reads back, as in QEMU. */
    s->port92 = v;
    /* Every write drives the gate, as QEMU's port92_write does: the CPU
     * comes out of reset with A20 on while this byte reads 0, and a first
     * write of 0 must still mask it. */
    if ((old ^ v) & PIIX3_PORT92_A20)
        trace(trace_piix3, "port 0x92: A20 %s",
              v & PIIX3_PORT92_A20 ? "enabled" : "masked");
    if (s->ops.a20_changed)
        s->ops.a20_changed(s->ops.opaque, v & PIIX3_PORT92_A20);
    if ((v & PIIX3_PORT92_FAST_RESET) && !(old & PIIX3_PORT92_FAST_RESET)) {
        log_ratelimited(LOG_INFO, "piix3: guest requested a reset via port 0x92");
        s->ops.request_reset(s->ops.opaque, "guest-reset");
    }
}

static const struct bus_region_ops port92_ops = {
    .read = port92_read,
    .write = port92_write,
    .max_access = 1,
};

/* --- setup --------------------------------------------------------------- */

static void piix3_init_config(struct piix3 *s)
{
    struct pci_function *f = &s->fn;

    pci_function_init(f, "PIIX3", PIIX3_VENDOR, PIIX3_DEVICE, PIIX3_CLASS,
                      PIIX3_REVISION, &piix3_pci_ops, s);
    f->hotpluggable = false;
    pci_set_subsystem(f, PCI_SUBSYSTEM_VENDOR_QEMU, PCI_SUBSYSTEM_ID_QEMU);
    pci_set_word(&f->config[PCI_STATUS], PIIX3_STATUS_POWER_ON);
    for (size_t i = 0; i < PIIX3_NREGS; i++) {
        for (unsigned b = 0; b < piix3_regs[i].width; b++) {
            unsigned r = piix3_regs[i].reg + b;

            f->config[r] = (uint8_t)(piix3_regs[i].power_on >> (8 * b));
            f->wmask[r] = 0xff;
        }
    }
}

int piix3_init(struct piix3 *s, struct pci_bus *pci, struct pci_host *host,
               struct bus *bus, const struct irq_sink *irq,
               const struct piix3_ops *ops)
{
    int rc;

    memset(s, 0, sizeof(*s));
    if (!pci || !host || !bus || !ops || !ops->request_reset)
        return -EINVAL;
    if (host->cf9_read || host->cf9_write) {
        log_err("piix3: the reset control port 0xcf9 is already taken");
        return -EBUSY;
    }
    s->host = host;
    s->bus = bus;
    s->irq = irq;
    s->ops = *ops;
    piix3_init_config(s);

    rc = pci_register_function(pci, &s->fn, PIIX3_DEVFN);
    if (rc < 0)
        goto out;
    bus_region_init(&s->port92_region, "port92", 1, &port92_ops, s);
    rc = bus_map(bus, BUS_PIO, &s->port92_region, PIIX3_PORT92);
    if (rc < 0) {
        pci_unregister_function(&s->fn);
        goto out;
    }
    host->cf9_read = piix3_rcr_read;
    host->cf9_write = piix3_rcr_write;
    host->cf9_opaque = s;
out:
    return rc;
}

void piix3_fini(struct piix3 *s)
{
    if (s->host && s->host->cf9_opaque == s) {
        s->host->cf9_read = NULL;
        s->host->cf9_write = NULL;
        s->host->cf9_opaque = NULL;
    }
    if (s->bus)
        bus_unmap(s->bus, &s->port92_region);
    pci_unregister_function(&s->fn);
}

void piix3_reset(struct piix3 *s) { pci_function_reset(&s->fn); }

int piix3_pirq_to_isa(const struct piix3 *s, unsigned link)
{
    unsigned irq;

    if (link >= PIIX3_NUM_PIRQS)
        return -1;
    irq = pirq_route_value(s->fn.config[PIIX3_PIRQRC + link]);
    return irq ? (int)irq : -1;
}

bool piix3_a20_enabled(const struct piix3 *s)
{
    return s->port92 & PIIX3_PORT92_A20;
}

/* --- save and restore ----------------------------------------------------- */

#define PIIX3_SS_NAME "piix3"
#define PIIX3_SS_VERSION 1

int piix3_save(const struct piix3 *s, struct ss_writer *w)
{
    ss_begin_section(w, PIIX3_SS_NAME, s->fn.devfn, PIIX3_SS_VERSION);
    pci_function_save(&s->fn, w);
    ss_put_u8(w, s->rcr);
    ss_put_u8(w, s->port92);
    return ss_end_section(w);
}

int piix3_load(struct piix3 *s, struct ss_reader *r)
{
    struct pci_function_state st;
    uint8_t rcr, port92;
    bool a20_was = piix3_a20_enabled(s);
    uint32_t version;
    int rc;

    rc = ss_open_section(r, PIIX3_SS_NAME, s->fn.devfn, PIIX3_SS_VERSION,
                         &version);
    if (rc < 0)
        return rc;
    pci_function_load_check(&s->fn, r, &st);
    ss_get_u8(r, "rcr", &rcr);
    /* port92 reads back whatever byte was written last: any value. */
    ss_get_u8(r, "port92", &port92);
    if (ss_ok(r) && (rcr & ~PIIX3_RCR_SRST))
        ss_fail(r, "rcr", "0x%02x: only SRST (0x%02x) is ever kept", rcr,
                PIIX3_RCR_SRST);
    rc = ss_close_section(r);
    if (rc < 0)
        return rc;
    rc = pci_function_restore(&s->fn, &st, r);
    if (rc < 0)
        return rc;
    s->rcr = rcr;
    s->port92 = port92;
    /* Xen knows the routes only from us: the new ones must reach it even
     * where they equal what a freshly built machine reported. */
    for (unsigned link = 0; link < PIIX3_NUM_PIRQS; link++)
        irq_route_pci_link(s->irq, link,
                           pirq_route_value(s->fn.config[PIIX3_PIRQRC + link]));
    if (piix3_a20_enabled(s) != a20_was && s->ops.a20_changed)
        s->ops.a20_changed(s->ops.opaque, piix3_a20_enabled(s));
    return 0;
}
