/* The pair of 8259A programmable interrupt controllers of a PC (master at
 * 0x20-0x21, slave at 0xA0-0xA1 cascaded on master IR2) and PIIX's edge/level
 * control registers ELCR1/ELCR2 at 0x4D0-0x4D1.
 *
 * Under Xen this is the hypervisor's vPIC (xen-dm-interfaces.md §6.1); the
 * software machine has it as an ordinary device. It is what that machine's
 * irq sink drives: i8259_irq_sink() hands out a sink whose isa_irq op sets
 * an input line. The CPU side is the INTR pin (a level, told through the
 * intr callback whenever it changes) and the INTA cycle, i8259_ack().
 *
 * Modelled: the full ICW1-ICW4 sequence, OCW1-OCW3, fixed and rotating
 * priority, specific and non-specific EOI (with rotation), automatic EOI
 * (with rotation), special mask mode, special fully nested mode, poll mode,
 * IRR/ISR reads, edge and level triggering (per line from the ELCR, or all
 * lines with ICW1.LTIM) and the spurious IR7 of a level request that went
 * away before INTA (on the slave too: its IR7, vector base + 7, with the
 * master's IS2 set). Edge requests stay latched until INTA even if the line
 * falls first: the data sheet's default IR7 for a short edge pulse would
 * lose the zero-width pulses devices here produce. Not modelled: MCS-80/85 mode (ICW4.uPM = 0 is taken as 8086
 * mode, since an x86 CPU only runs 8086-mode INTA cycles) and buffered mode
 * (ICW4.BUF/M/S only matter to the board's bus transceivers). */
#ifndef XENDM_HW_I8259_H
#define XENDM_HW_I8259_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "irq.h"

#define I8259_MASTER_BASE 0x20
#define I8259_SLAVE_BASE 0xa0
#define I8259_ELCR_BASE 0x4d0
#define I8259_CASCADE_IRQ 2
#define I8259_NR_IRQS 16

/* ELCR bits that exist on PIIX: IRQ 0, 1, 2, 8 and 13 are always edge. */
#define I8259_ELCR1_MASK 0xf8
#define I8259_ELCR2_MASK 0xde

struct i8259_chip {
    uint8_t irr;   /* interrupt request register */
    uint8_t isr;   /* in-service register */
    uint8_t imr;   /* interrupt mask register (OCW1) */
    uint8_t lines; /* input levels as the devices drive them */
    uint8_t elcr;  /* PIIX ELCR: 1 = level-triggered */
    uint8_t elcr_mask;
    uint8_t vector_base;  /* ICW2 bits 7:3 */
    uint8_t icw3;         /* cascade wiring, stored only */
    uint8_t icw_expected; /* 0: operational; 2, 3, 4: the ICW to come */
    uint8_t lowest_priority; /* the level rotation made lowest (7 at reset) */
    bool icw4_needed, single, ltim;
    bool auto_eoi, rotate_on_aeoi, special_fully_nested, special_mask;
    bool read_isr; /* OCW3 RIS: the even port reads ISR, not IRR */
    bool poll;     /* OCW3 P: the next even-port read is a poll */
    bool is_master;
};

struct i8259 {
    struct i8259_chip chip[2]; /* 0 master, 1 slave */
    struct bus *bus;
    struct bus_region master_region, slave_region, elcr_region;
    void (*intr)(void *opaque, bool level);
    void *opaque;
    bool intr_level; /* what intr was last told */
    struct irq_sink sink;
    uint64_t spurious; /* INTA cycles answered with a spurious IR7 */
};

/* Maps both chips and the ELCR and resets them. intr (may be NULL) is the
 * CPU's INTR pin. Returns 0, -EINVAL, or bus_map()'s error (nothing stays
 * mapped). */
int i8259_init(struct i8259 *pic, struct bus *bus,
               void (*intr)(void *opaque, bool level), void *opaque);
/* Unmaps; lowers INTR. */
void i8259_fini(struct i8259 *pic);
/* Power-on state: both chips uninitialised (vector base 0, nothing masked,
 * nothing pending or in service except what level lines assert), ELCR 0.
 * The input levels are the devices', not the PIC's, and are kept. */
void i8259_reset(struct i8259 *pic);

/* Drives input line irq (0-15 except 2, the cascade, which is ignored
 * with a log line: no ISA device can drive it on an AT). Edge-triggered
 * lines latch a request on the rising edge, kept until INTA; level-
 * triggered lines request while high. */
void i8259_set_irq(struct i8259 *pic, unsigned irq, bool level);
/* The INTA cycle: returns the vector the CPU takes and moves the request
 * into service (or, in AEOI mode, ends it at once). A request that went
 * away gives the spurious vector base + 7 of the chip that lost it, with no
 * ISR bit set on that chip. Call it only while INTR is high; called with
 * INTR low it also answers with the master's spurious IR7. */
int i8259_ack(struct i8259 *pic);
/* Whether INTR is asserted. */
bool i8259_intr_pending(const struct i8259 *pic);

/* A sink whose isa_irq op is i8259_set_irq (PCI INTx routing is the
 * machine's business: its own sink can forward ISA lines here). */
const struct irq_sink *i8259_irq_sink(struct i8259 *pic);

#endif
