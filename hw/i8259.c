/* 8259A PIC pair and PIIX ELCR.
 *
 * Facts from the Intel 8259A data sheet (order no. 231468) and the PIIX/
 * PIIX3 data sheet (ELCR1/ELCR2); behaviour checked against QEMU's
 * hw/intc/i8259.c and Xen's xen/arch/x86/hvm/vpic.c where the data sheet
 * leaves a choice (noted where it matters). */
#include "i8259.h"

#include <errno.h>
#include <string.h>

#include "../lib/log.h"

TRACE_POINT(trace_i8259_write, "i8259_write");
TRACE_POINT(trace_i8259_ack, "i8259_ack");

/* Command-port write decoding. */
#define ICW1_SEL 0x10   /* D4 set on the even port: ICW1 */
#define ICW1_IC4 0x01   /* ICW4 follows */
#define ICW1_SNGL 0x02  /* single chip, no ICW3 */
#define ICW1_LTIM 0x08  /* all inputs level-triggered */
#define OCW3_SEL 0x08   /* D4 clear, D3 set: OCW3; both clear: OCW2 */
#define OCW3_RIS 0x01
#define OCW3_RR 0x02
#define OCW3_P 0x04
#define OCW3_SMM 0x20
#define OCW3_ESMM 0x40
#define ICW4_AEOI 0x02
#define ICW4_SFNM 0x10
#define POLL_INT 0x80   /* poll word: an interrupt is requesting */

/* OCW2 R/SL/EOI commands (bits 7:5). */
enum ocw2_cmd {
    OCW2_ROTATE_AEOI_CLEAR = 0,
    OCW2_NONSPECIFIC_EOI = 1,
    OCW2_NOP = 2,
    OCW2_SPECIFIC_EOI = 3,
    OCW2_ROTATE_AEOI_SET = 4,
    OCW2_ROTATE_NONSPECIFIC_EOI = 5,
    OCW2_SET_PRIORITY = 6,
    OCW2_ROTATE_SPECIFIC_EOI = 7,
};

static uint8_t level_mask(const struct i8259_chip *c)
{
    return c->ltim ? 0xff : c->elcr;
}

/* Position (0 = highest) of the highest-priority bit of bits under the
 * current rotation, 8 if none. */
static unsigned priority_of(const struct i8259_chip *c, uint8_t bits)
{
    unsigned highest = (c->lowest_priority + 1) & 7;

    for (unsigned p = 0; p < 8; p++)
        if (bits & (1u << ((highest + p) & 7)))
            return p;
    return 8;
}

static unsigned level_at(const struct i8259_chip *c, unsigned p)
{
    return (c->lowest_priority + 1 + p) & 7;
}

/* The level the chip would interrupt with now, -1 if none. */
static int chip_pending(const struct i8259_chip *c)
{
    uint8_t blocking = c->isr;
    unsigned want = priority_of(c, c->irr & ~c->imr);

    if (want == 8)
        return -1;
    /* Special mask mode: a masked in-service level no longer holds back
     * lower ones. Special fully nested mode: the master lets a slave
     * interrupt of higher priority through while IR2 is in service. */
    if (c->special_mask)
        blocking &= (uint8_t)~c->imr;
    if (c->is_master && c->special_fully_nested)
        blocking &= (uint8_t)~(1u << I8259_CASCADE_IRQ);
    if (want < priority_of(c, blocking))
        return (int)level_at(c, want);
    return -1;
}

static void chip_set_line(struct i8259_chip *c, unsigned line, bool level)
{
    uint8_t bit = (uint8_t)(1u << line);
    bool was = c->lines & bit;

    if (level) {
        c->lines |= bit;
        /* Level lines request while high; edge lines on the rising edge. */
        if ((level_mask(c) & bit) || !was)
            c->irr |= bit;
    } else {
        c->lines &= (uint8_t)~bit;
        /* A level request goes away with the level. An edge stays latched
         * until INTA: the devices of this machine (the PIT's missed-tick
         * pulse above all) may raise and lower a line within one call, a
         * zero-width pulse that hardware never sees but that must not be
         * lost. QEMU and Xen's vPIC latch edges the same way. */
        if (level_mask(c) & bit)
            c->irr &= (uint8_t)~bit;
    }
}

static void update_outputs(struct i8259 *pic)
{
    bool slave_int = chip_pending(&pic->chip[1]) >= 0;
    bool level;

    chip_set_line(&pic->chip[0], I8259_CASCADE_IRQ, slave_int);
    level = chip_pending(&pic->chip[0]) >= 0;
    if (level == pic->intr_level)
        return;
    pic->intr_level = level;
    if (pic->intr)
        pic->intr(pic->opaque, level);
}

/* Moves level line from requested to in service, as the first INTA pulse
 * (or a poll read) does. */
static void chip_intack(struct i8259_chip *c, unsigned line)
{
    uint8_t bit = (uint8_t)(1u << line);

    if (c->auto_eoi) {
        if (c->rotate_on_aeoi)
            c->lowest_priority = (uint8_t)line;
    } else {
        c->isr |= bit;
    }
    /* An edge request is consumed; a level one stays while the line is
     * high and is held back by the ISR bit until EOI. */
    if (!(level_mask(c) & bit))
        c->irr &= (uint8_t)~bit;
}

int i8259_ack(struct i8259 *pic)
{
    struct i8259_chip *m = &pic->chip[0], *s = &pic->chip[1];
    int line = chip_pending(m), vector;

    if (line < 0) {
        pic->spurious++;
        vector = m->vector_base + 7;
    } else {
        chip_intack(m, (unsigned)line);
        if (line == I8259_CASCADE_IRQ && !m->single) {
            int sline = chip_pending(s);

            if (sline < 0) {
                /* The master's IS2 stays set: the guest's handler for the
                 * slave's IR7 EOIs the master, as on hardware. */
                pic->spurious++;
                vector = s->vector_base + 7;
            } else {
                chip_intack(s, (unsigned)sline);
                vector = s->vector_base + sline;
            }
        } else {
            vector = m->vector_base + line;
        }
    }
    update_outputs(pic);
    trace(trace_i8259_ack, "INTA -> vector 0x%02x", vector);
    return vector;
}

bool i8259_intr_pending(const struct i8259 *pic)
{
    return pic->intr_level;
}

void i8259_set_irq(struct i8259 *pic, unsigned irq, bool level)
{
    if (irq >= I8259_NR_IRQS) {
        log_ratelimited(LOG_WARN, "i8259: no input line %u", irq);
        return;
    }
    /* Master IR2 is the slave's output. An AT's ISA bus has no IRQ2 line
     * (the old IRQ2 pin is wired to IRQ9), so no device can drive it. */
    if (irq == I8259_CASCADE_IRQ) {
        log_ratelimited(LOG_WARN, "i8259: IRQ 2 is the cascade, not a line "
                        "a device can drive: ignored");
        return;
    }
    chip_set_line(&pic->chip[irq >> 3], irq & 7, level);
    update_outputs(pic);
}

/* --- command and data ports ---------------------------------------------- */

/* What ICW1 does besides starting the sequence (data sheet, "Initialization
 * Command Words"): edge-sense circuit reset (an edge line must go low and
 * high again to request), IMR cleared, IR7 lowest priority, special mask
 * mode off, IRR selected for reads, ICW4 functions off unless IC4. The
 * data sheet leaves ISR alone; QEMU and Xen clear it and so do we, or a
 * guest re-initialising with a level in service would never see it again. */
static void chip_icw1(struct i8259_chip *c, uint8_t val)
{
    c->icw_expected = 2;
    c->icw4_needed = val & ICW1_IC4;
    c->single = val & ICW1_SNGL;
    c->ltim = val & ICW1_LTIM;
    c->imr = 0;
    c->isr = 0;
    c->lowest_priority = 7;
    c->special_mask = false;
    c->read_isr = false;
    c->poll = false;
    c->auto_eoi = c->rotate_on_aeoi = c->special_fully_nested = false;
    /* Latched edges are forgotten; a high level line requests at once. */
    c->irr = c->lines & level_mask(c);
}

static void chip_eoi(struct i8259_chip *c, int line, bool rotate)
{
    if (line < 0) {
        /* Non-specific: the highest-priority level in service. */
        unsigned p = priority_of(c, c->isr);

        if (p == 8)
            return;
        line = (int)level_at(c, p);
    }
    c->isr &= (uint8_t)~(1u << line);
    if (rotate)
        c->lowest_priority = (uint8_t)line;
}

static void chip_ocw2(struct i8259_chip *c, uint8_t val)
{
    unsigned level = val & 7;

    switch ((enum ocw2_cmd)(val >> 5)) {
    case OCW2_ROTATE_AEOI_CLEAR:
        c->rotate_on_aeoi = false;
        break;
    case OCW2_ROTATE_AEOI_SET:
        c->rotate_on_aeoi = true;
        break;
    case OCW2_NONSPECIFIC_EOI:
        chip_eoi(c, -1, false);
        break;
    case OCW2_ROTATE_NONSPECIFIC_EOI:
        chip_eoi(c, -1, true);
        break;
    case OCW2_SPECIFIC_EOI:
        chip_eoi(c, (int)level, false);
        break;
    case OCW2_ROTATE_SPECIFIC_EOI:
        chip_eoi(c, (int)level, true);
        break;
    case OCW2_SET_PRIORITY:
        c->lowest_priority = (uint8_t)level;
        break;
    case OCW2_NOP:
        break;
    }
}

static void chip_ocw3(struct i8259_chip *c, uint8_t val)
{
    if (val & OCW3_P)
        c->poll = true;
    if (val & OCW3_RR)
        c->read_isr = val & OCW3_RIS;
    if (val & OCW3_ESMM)
        c->special_mask = val & OCW3_SMM;
}

static void chip_write(struct i8259 *pic, struct i8259_chip *c, unsigned port,
                       uint8_t val)
{
    trace(trace_i8259_write, "%s port %u <- 0x%02x",
          c->is_master ? "master" : "slave", port, val);
    if (port == 0) {
        if (val & ICW1_SEL)
            chip_icw1(c, val);
        else if (val & OCW3_SEL)
            chip_ocw3(c, val);
        else
            chip_ocw2(c, val);
        return;
    }
    switch (c->icw_expected) {
    case 0:
        c->imr = val;
        break;
    case 2:
        c->vector_base = val & 0xf8;
        c->icw_expected = c->single ? (c->icw4_needed ? 4 : 0) : 3;
        break;
    case 3:
        c->icw3 = val;
        c->icw_expected = c->icw4_needed ? 4 : 0;
        break;
    case 4:
        c->auto_eoi = val & ICW4_AEOI;
        c->special_fully_nested = val & ICW4_SFNM;
        c->icw_expected = 0;
        break;
    }
}

/* A poll read is an INTA without the vector cycle: the highest request goes
 * into service and its level is returned (bit 7 set), or 0 if none. The
 * slave's poll does not touch the master: the guest acknowledges IR2 there
 * itself if it wants to. */
static uint8_t chip_poll(struct i8259 *pic, struct i8259_chip *c)
{
    int line = chip_pending(c);

    c->poll = false;
    if (line < 0)
        return 0;
    chip_intack(c, (unsigned)line);
    return (uint8_t)(POLL_INT | line);
}

static uint8_t chip_read(struct i8259 *pic, struct i8259_chip *c,
                         unsigned port)
{
    uint8_t val;

    if (c->poll) {
        val = chip_poll(pic, c);
        update_outputs(pic);
        return val;
    }
    if (port == 1)
        return c->imr;
    return c->read_isr ? c->isr : c->irr;
}

static uint64_t master_read(void *opaque, uint64_t off, unsigned size)
{
    struct i8259 *pic = opaque;

    return chip_read(pic, &pic->chip[0], (unsigned)off);
}

static void master_write(void *opaque, uint64_t off, uint64_t value,
                         unsigned size)
{
    struct i8259 *pic = opaque;

    chip_write(pic, &pic->chip[0], (unsigned)off, (uint8_t)value);
    update_outputs(pic);
}

static uint64_t slave_read(void *opaque, uint64_t off, unsigned size)
{
    struct i8259 *pic = opaque;

    return chip_read(pic, &pic->chip[1], (unsigned)off);
}

static void slave_write(void *opaque, uint64_t off, uint64_t value,
                        unsigned size)
{
    struct i8259 *pic = opaque;

    chip_write(pic, &pic->chip[1], (unsigned)off, (uint8_t)value);
    update_outputs(pic);
}

static const struct bus_region_ops master_ops = {
    .read = master_read, .write = master_write, .max_access = 1};
static const struct bus_region_ops slave_ops = {
    .read = slave_read, .write = slave_write, .max_access = 1};

/* --- ELCR ---------------------------------------------------------------- */

static uint64_t elcr_read(void *opaque, uint64_t off, unsigned size)
{
    struct i8259 *pic = opaque;

    return pic->chip[off].elcr;
}

static void elcr_write(void *opaque, uint64_t off, uint64_t value,
                       unsigned size)
{
    struct i8259 *pic = opaque;
    struct i8259_chip *c = &pic->chip[off];
    uint8_t now_level;

    c->elcr = (uint8_t)value & c->elcr_mask;
    /* A line switched to level requests if it is high; one switched to
     * edge keeps what it had latched. */
    now_level = level_mask(c);
    c->irr = (uint8_t)((c->irr & ~now_level) | (c->lines & now_level));
    update_outputs(pic);
}

static const struct bus_region_ops elcr_ops = {
    .read = elcr_read, .write = elcr_write, .max_access = 1};

/* --- life cycle ---------------------------------------------------------- */

static void chip_reset(struct i8259_chip *c, bool master)
{
    uint8_t lines = c->lines;

    memset(c, 0, sizeof(*c));
    c->lines = lines;
    c->is_master = master;
    c->elcr_mask = master ? I8259_ELCR1_MASK : I8259_ELCR2_MASK;
    c->lowest_priority = 7;
}

void i8259_reset(struct i8259 *pic)
{
    chip_reset(&pic->chip[0], true);
    chip_reset(&pic->chip[1], false);
    /* The cascade input is recomputed from the slave's output. */
    pic->chip[0].lines &= (uint8_t)~(1u << I8259_CASCADE_IRQ);
    update_outputs(pic);
}

static void pic_isa_irq(void *opaque, unsigned irq, bool level)
{
    i8259_set_irq(opaque, irq, level);
}

static const struct irq_sink_ops pic_sink_ops = {.isa_irq = pic_isa_irq};

const struct irq_sink *i8259_irq_sink(struct i8259 *pic)
{
    return &pic->sink;
}

int i8259_init(struct i8259 *pic, struct bus *bus,
               void (*intr)(void *opaque, bool level), void *opaque)
{
    int rc;

    if (!pic || !bus)
        return -EINVAL;
    memset(pic, 0, sizeof(*pic));
    pic->bus = bus;
    pic->intr = intr;
    pic->opaque = opaque;
    pic->sink = (struct irq_sink){&pic_sink_ops, pic};
    i8259_reset(pic);
    bus_region_init(&pic->master_region, "i8259-master", 2, &master_ops, pic);
    bus_region_init(&pic->slave_region, "i8259-slave", 2, &slave_ops, pic);
    bus_region_init(&pic->elcr_region, "i8259-elcr", 2, &elcr_ops, pic);
    rc = bus_map(bus, BUS_PIO, &pic->master_region, I8259_MASTER_BASE);
    if (rc < 0)
        goto out;
    rc = bus_map(bus, BUS_PIO, &pic->slave_region, I8259_SLAVE_BASE);
    if (rc < 0)
        goto out;
    rc = bus_map(bus, BUS_PIO, &pic->elcr_region, I8259_ELCR_BASE);
out:
    if (rc < 0) {
        log_err("i8259: cannot map its ports: %s", bus->error);
        i8259_fini(pic);
    }
    return rc;
}

void i8259_fini(struct i8259 *pic)
{
    if (pic->master_region.mapped)
        bus_unmap(pic->bus, &pic->master_region);
    if (pic->slave_region.mapped)
        bus_unmap(pic->bus, &pic->slave_region);
    if (pic->elcr_region.mapped)
        bus_unmap(pic->bus, &pic->elcr_region);
    if (pic->intr_level) {
        pic->intr_level = false;
        if (pic->intr)
            pic->intr(pic->opaque, false);
    }
}
