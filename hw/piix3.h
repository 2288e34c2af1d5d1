/* PIIX3 PCI-to-ISA bridge (82371SB function 0) at 00:01.0, with the two
 * reset sources that live beside it: the Reset Control register at I/O 0xCF9
 * and System Control Port A at I/O 0x92 (fast reset, fast A20).
 *
 * The keyboard-controller reset (0xFE written to port 0x64) belongs to the
 * 8042, which is not emulated yet; when it is, the machine wires it to the
 * same reset request. */
#ifndef XENDM_HW_PIIX3_H
#define XENDM_HW_PIIX3_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "irq.h"
#include "pci.h"

#define PIIX3_DEVFN PCI_DEVFN(1, 0)
#define PIIX3_NUM_PIRQS 4
#define PIIX3_RCR_PORT 0xcf9
#define PIIX3_PORT92 0x92

/* Device-specific registers (82371SB datasheet 290550, section 2.2). */
enum {
    PIIX3_IORT = 0x4c,     /* ISA I/O recovery timer */
    PIIX3_XBCS = 0x4e,     /* X-Bus chip select, 16 bit */
    PIIX3_PIRQRC = 0x60,   /* PIRQRC[A:D], 0x60-0x63 */
    PIIX3_TOM = 0x69,      /* top of memory */
    PIIX3_MSTAT = 0x6a,    /* miscellaneous status, 16 bit */
    PIIX3_MBIRQ0 = 0x70,   /* motherboard device IRQ route */
    PIIX3_MBDMA0 = 0x76,   /* motherboard device DMA, 0x76-0x77 */
    PIIX3_PCSC = 0x78,     /* programmable chip select control, 16 bit */
    PIIX3_APICBASE = 0x80, /* APIC base address relocation */
    PIIX3_DLC = 0x82,      /* deterministic latency control */
    PIIX3_SMICNTL = 0xa0,  /* SMI control */
    PIIX3_SMIEN = 0xa2,    /* SMI enable, 16 bit */
    PIIX3_SEE = 0xa4,      /* system event enable, 32 bit */
    PIIX3_FTMR = 0xa8,     /* fast off timer */
    PIIX3_SMIREQ = 0xaa,   /* SMI request, 16 bit */
    PIIX3_CTLTMR = 0xac,   /* clock scale STPCLK# low timer */
    PIIX3_CTHTMR = 0xae,   /* clock scale STPCLK# high timer */
};

#define PIIX3_PIRQ_DISABLE 0x80 /* IRQROUTEN: 1 = link not routed */
#define PIIX3_PIRQ_IRQ_MASK 0x0f

/* Reset Control register (I/O 0xCF9). */
#define PIIX3_RCR_SRST 0x02 /* system reset: 1 = hard, 0 = soft */
#define PIIX3_RCR_RCPU 0x04 /* reset CPU */

/* System Control Port A (I/O 0x92). */
#define PIIX3_PORT92_FAST_RESET 0x01
#define PIIX3_PORT92_A20 0x02

struct piix3_ops {
    /* The guest asked for a system reset; reason is QEMU's spelling
     * ("guest-reset"). Required. It may reset the machine before it
     * returns. */
    void (*request_reset)(void *opaque, const char *reason);
    /* Port 0x92 was written (or loaded): the A20 gate it now asks for,
     * told on every write, changed or not. Optional: the software CPU
     * needs it, Xen does not (the hypervisor keeps A20 on for HVM
     * guests). */
    void (*a20_changed)(void *opaque, bool enabled);
    void *opaque;
};

struct piix3 {
    struct pci_function fn;
    struct pci_host *host;
    struct bus *bus;
    const struct irq_sink *irq;
    struct piix3_ops ops;
    struct bus_region port92_region;
    uint8_t rcr;    /* Reset Control, only SRST is kept */
    uint8_t port92; /* System Control Port A as last written */
};

/* Registers the function at 00:01.0, takes the host's 0xCF9 hook (-EBUSY if
 * someone else holds it) and maps port 0x92 on bus. PIRQ route changes are
 * reported on irq with irq_route_pci_link. */
int piix3_init(struct piix3 *s, struct pci_bus *pci, struct pci_host *host,
               struct bus *bus, const struct irq_sink *irq,
               const struct piix3_ops *ops);
void piix3_fini(struct piix3 *s);
/* Restores the power-on state (pci_function_reset, which also runs on
 * pci_bus_reset): PIRQ links disabled and reported as such, RCR 0, port
 * 0x92's fast-reset bit cleared. */
void piix3_reset(struct piix3 *s);

/* The ISA IRQ PIRQ link (0-3 = A-D) is routed to, or -1 if it is disabled,
 * routed to "IRQ 0" (which the Xen interface means as disconnected) or link
 * is out of range. */
int piix3_pirq_to_isa(const struct piix3 *s, unsigned link);
/* Port 0x92 bit 1 (fast A20 gate). */
bool piix3_a20_enabled(const struct piix3 *s);

struct ss_writer;
struct ss_reader;
/* Section "piix3", instance = devfn: configuration space, RCR and port
 * 0x92. Load reports the four PIRQ routes on the irq sink again (the
 * hypervisor's copy must follow) and an A20 change to ops.a20_changed; it
 * requests no reset, whatever the bytes say. */
int piix3_save(const struct piix3 *s, struct ss_writer *w);
int piix3_load(struct piix3 *s, struct ss_reader *r);

#endif
