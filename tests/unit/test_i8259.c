/* 8259A PIC pair and ELCR (hw/i8259.c), programmed through the bus the way
 * a BIOS and an OS do, with the CPU's INTR pin recorded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../hw/bus.h"
#include "../../hw/i8259.h"
#include "../../lib/log.h"

struct fixture {
    struct bus bus;
    struct i8259 pic;
    bool intr;
    unsigned intr_changes;
    char *log_buf;
    size_t log_size;
    FILE *log;
};

static void on_intr(void *opaque, bool level)
{
    struct fixture *f = opaque;

    assert_true(level != f->intr); /* only changes are reported */
    f->intr = level;
    f->intr_changes++;
}

static void outb(struct fixture *f, uint16_t port, uint8_t v)
{
    bus_write(&f->bus, BUS_PIO, port, v, 1);
}

static uint8_t inb(struct fixture *f, uint16_t port)
{
    return (uint8_t)bus_read(&f->bus, BUS_PIO, port, 1);
}

/* SeaBIOS/Linux style: edge, cascade, 8086 mode, vectors 0x08 and 0x70. */
static void init_pics(struct fixture *f, uint8_t icw4)
{
    outb(f, 0x20, 0x11);
    outb(f, 0x21, 0x08);
    outb(f, 0x21, 0x04);
    outb(f, 0x21, icw4);
    outb(f, 0xa0, 0x11);
    outb(f, 0xa1, 0x70);
    outb(f, 0xa1, 0x02);
    outb(f, 0xa1, icw4);
    outb(f, 0x21, 0x00);
    outb(f, 0xa1, 0x00);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->log = open_memstream(&f->log_buf, &f->log_size);
    log_set_stream(f->log);
    bus_init(&f->bus);
    assert_int_equal(i8259_init(&f->pic, &f->bus, on_intr, f), 0);
    init_pics(f, 0x01);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    i8259_fini(&f->pic);
    assert_false(f->intr);
    bus_fini(&f->bus);
    log_set_stream(NULL);
    fclose(f->log);
    free(f->log_buf);
    free(f);
    return 0;
}

static void irq(struct fixture *f, unsigned n, bool level)
{
    irq_set_isa(i8259_irq_sink(&f->pic), n, level);
}

static void eoi_master(struct fixture *f) { outb(f, 0x20, 0x20); }
static void eoi_slave(struct fixture *f) { outb(f, 0xa0, 0x20); }

static uint8_t read_isr(struct fixture *f, uint16_t port)
{
    uint8_t v;

    outb(f, port, 0x0b);
    v = inb(f, port);
    outb(f, port, 0x0a);
    return v;
}

static void test_basic_edge(void **state)
{
    struct fixture *f = *state;

    assert_false(f->intr);
    irq(f, 0, true);
    assert_true(f->intr);
    assert_int_equal(inb(f, 0x20), 0x01); /* IRR */
    assert_int_equal(i8259_ack(&f->pic), 0x08);
    assert_false(f->intr);
    assert_int_equal(inb(f, 0x20), 0x00);
    assert_int_equal(read_isr(f, 0x20), 0x01);
    /* Still high: an edge line does not request again. */
    eoi_master(f);
    assert_int_equal(read_isr(f, 0x20), 0x00);
    assert_false(f->intr);
    irq(f, 0, false);
    irq(f, 0, true);
    assert_true(f->intr);
    assert_int_equal(i8259_ack(&f->pic), 0x08);
}

static void test_priority_and_nesting(void **state)
{
    struct fixture *f = *state;

    irq(f, 3, true);
    irq(f, 1, true);
    assert_int_equal(i8259_ack(&f->pic), 0x09);
    /* 3 is lower than 1 in service: held. */
    assert_false(f->intr);
    irq(f, 0, true); /* higher: nests */
    assert_true(f->intr);
    assert_int_equal(i8259_ack(&f->pic), 0x08);
    assert_int_equal(read_isr(f, 0x20), 0x03);
    eoi_master(f); /* non-specific ends 0 first */
    assert_int_equal(read_isr(f, 0x20), 0x02);
    assert_false(f->intr);
    eoi_master(f);
    assert_true(f->intr);
    assert_int_equal(i8259_ack(&f->pic), 0x0b);
    /* Specific EOI of a level not in service changes nothing. */
    outb(f, 0x20, 0x65);
    assert_int_equal(read_isr(f, 0x20), 0x08);
    outb(f, 0x20, 0x63);
    assert_int_equal(read_isr(f, 0x20), 0x00);
}

static void test_mask(void **state)
{
    struct fixture *f = *state;

    outb(f, 0x21, 0x10);
    assert_int_equal(inb(f, 0x21), 0x10);
    irq(f, 4, true);
    assert_false(f->intr);
    assert_int_equal(inb(f, 0x20), 0x10); /* requested, masked */
    outb(f, 0x21, 0x00);
    assert_true(f->intr);
    assert_int_equal(i8259_ack(&f->pic), 0x0c);
}

static void test_rotation(void **state)
{
    struct fixture *f = *state;

    /* Rotate on non-specific EOI: the serviced level becomes lowest. */
    irq(f, 3, true);
    irq(f, 5, true);
    assert_int_equal(i8259_ack(&f->pic), 0x0b);
    outb(f, 0x20, 0xa0);
    irq(f, 3, false);
    irq(f, 3, true); /* 3 is now lowest: 5 wins */
    assert_int_equal(i8259_ack(&f->pic), 0x0d);
    outb(f, 0x20, 0xa0); /* 5 lowest: 6, 7, 0 .. 4 order; 3 next */
    assert_int_equal(i8259_ack(&f->pic), 0x0b);
    outb(f, 0x20, 0x20);

    /* Set priority: make 6 lowest, so 7 is highest. */
    outb(f, 0x20, 0xc6);
    irq(f, 0, true);
    irq(f, 7, true);
    assert_int_equal(i8259_ack(&f->pic), 0x0f);
    assert_int_equal(read_isr(f, 0x20), 0x80);
    /* 0 is below 7 now: held until 7's EOI. */
    assert_false(f->intr);
    /* Rotate on specific EOI of 7: 7 lowest, 0 highest. */
    outb(f, 0x20, 0xe7);
    assert_int_equal(i8259_ack(&f->pic), 0x08);
}

static void test_auto_eoi(void **state)
{
    struct fixture *f = *state;

    init_pics(f, 0x03);
    irq(f, 4, true);
    assert_int_equal(i8259_ack(&f->pic), 0x0c);
    assert_int_equal(read_isr(f, 0x20), 0x00);
    /* Nothing in service: a lower level is delivered at once. */
    irq(f, 6, true);
    assert_true(f->intr);
    assert_int_equal(i8259_ack(&f->pic), 0x0e);

    /* Rotate in AEOI mode: the level just acknowledged becomes lowest. */
    outb(f, 0x20, 0x80);
    irq(f, 1, true);
    irq(f, 2 + 1, true);
    assert_int_equal(i8259_ack(&f->pic), 0x09);
    irq(f, 1, false);
    irq(f, 1, true);
    assert_int_equal(i8259_ack(&f->pic), 0x0b); /* 3 beats rotated 1 */
    outb(f, 0x20, 0x00);                       /* rotate in AEOI off */
}

static void test_cascade(void **state)
{
    struct fixture *f = *state;

    irq(f, 12, true);
    assert_true(f->intr);
    assert_int_equal(inb(f, 0x20), 0x04);
    assert_int_equal(inb(f, 0xa0), 0x10);
    assert_int_equal(i8259_ack(&f->pic), 0x74);
    assert_false(f->intr);
    assert_int_equal(read_isr(f, 0x20), 0x04);
    assert_int_equal(read_isr(f, 0xa0), 0x10);
    /* Higher slave level while IR2 in service: held in fully nested mode. */
    irq(f, 8, true);
    assert_false(f->intr);
    eoi_slave(f);
    eoi_master(f);
    assert_true(f->intr);
    assert_int_equal(i8259_ack(&f->pic), 0x70);
    eoi_slave(f);
    eoi_master(f);
    /* A master level above 2 beats the slave, one below loses. */
    irq(f, 14, true);
    irq(f, 1, true);
    irq(f, 3, true);
    assert_int_equal(i8259_ack(&f->pic), 0x09);
    eoi_master(f);
    assert_int_equal(i8259_ack(&f->pic), 0x76);
    eoi_slave(f);
    eoi_master(f);
    assert_int_equal(i8259_ack(&f->pic), 0x0b);
    eoi_master(f);
    assert_false(f->intr);
    /* Masking the cascade masks the whole slave. */
    outb(f, 0x21, 0x04);
    irq(f, 9, true);
    assert_false(f->intr);
    outb(f, 0x21, 0x00);
    assert_int_equal(i8259_ack(&f->pic), 0x71);
}

static void test_special_fully_nested(void **state)
{
    struct fixture *f = *state;

    /* ICW4 SFNM on the master only. */
    outb(f, 0x20, 0x11);
    outb(f, 0x21, 0x08);
    outb(f, 0x21, 0x04);
    outb(f, 0x21, 0x11);
    irq(f, 12, true);
    assert_int_equal(i8259_ack(&f->pic), 0x74);
    irq(f, 8, true);
    assert_true(f->intr); /* higher slave level gets through IR2 */
    assert_int_equal(i8259_ack(&f->pic), 0x70);
    assert_int_equal(read_isr(f, 0xa0), 0x11);
}

static void test_special_mask_mode(void **state)
{
    struct fixture *f = *state;

    irq(f, 1, true);
    assert_int_equal(i8259_ack(&f->pic), 0x09);
    irq(f, 5, true);
    assert_false(f->intr);
    /* Mask the in-service level and enter special mask mode: lower
     * levels are enabled. */
    outb(f, 0x21, 0x02);
    outb(f, 0x20, 0x68);
    assert_true(f->intr);
    assert_int_equal(i8259_ack(&f->pic), 0x0d);
    assert_int_equal(read_isr(f, 0x20), 0x22);
    /* Leaving it restores nesting. */
    outb(f, 0x20, 0x48);
    irq(f, 6, true);
    assert_false(f->intr);
}

static void test_spurious(void **state)
{
    struct fixture *f = *state;

    /* A level request gone before INTA: the master's IR7. */
    outb(f, 0x4d0, 0x20);
    irq(f, 5, true);
    assert_true(f->intr);
    irq(f, 5, false);
    assert_false(f->intr);
    assert_int_equal(i8259_ack(&f->pic), 0x0f);
    assert_int_equal(read_isr(f, 0x20), 0x00);
    assert_int_equal(f->pic.spurious, 1);
    /* On the slave: the master latched the cascade's edge, the slave has
     * nothing by INTA: the slave's IR7, with the master's IS2 set. */
    outb(f, 0x4d1, 0x04);
    irq(f, 10, true);
    irq(f, 10, false);
    assert_true(f->intr);
    assert_int_equal(i8259_ack(&f->pic), 0x77);
    assert_int_equal(read_isr(f, 0xa0), 0x00);
    assert_int_equal(read_isr(f, 0x20), 0x04);
    assert_int_equal(f->pic.spurious, 2);
    eoi_master(f);
    /* An edge pulse, however short, is not lost. */
    irq(f, 3, true);
    irq(f, 3, false);
    assert_true(f->intr);
    assert_int_equal(i8259_ack(&f->pic), 0x0b);
    eoi_master(f);
    /* A real IRQ7 does set its ISR bit. */
    irq(f, 7, true);
    assert_int_equal(i8259_ack(&f->pic), 0x0f);
    assert_int_equal(read_isr(f, 0x20), 0x80);
}

static void test_elcr_level(void **state)
{
    struct fixture *f = *state;

    outb(f, 0x4d0, 0xff);
    outb(f, 0x4d1, 0xff);
    assert_int_equal(inb(f, 0x4d0), 0xf8);
    assert_int_equal(inb(f, 0x4d1), 0xde);
    assert_int_equal(bus_read(&f->bus, BUS_PIO, 0x4d0, 2), 0xdef8);
    outb(f, 0x4d1, 0x02); /* IRQ 9 level */
    outb(f, 0x4d0, 0x00);
    irq(f, 9, true);
    assert_int_equal(i8259_ack(&f->pic), 0x71);
    eoi_slave(f);
    eoi_master(f);
    /* Still high: requests again. */
    assert_true(f->intr);
    assert_int_equal(i8259_ack(&f->pic), 0x71);
    irq(f, 9, false);
    eoi_slave(f);
    eoi_master(f);
    assert_false(f->intr);
    /* Switching a high edge line to level makes it request. */
    irq(f, 11, true);
    assert_int_equal(i8259_ack(&f->pic), 0x73);
    eoi_slave(f);
    eoi_master(f);
    assert_false(f->intr);
    outb(f, 0x4d1, 0x0a);
    assert_true(f->intr);
    assert_int_equal(i8259_ack(&f->pic), 0x73);
}

static void test_ltim(void **state)
{
    struct fixture *f = *state;

    irq(f, 4, true);
    assert_int_equal(i8259_ack(&f->pic), 0x0c);
    /* Re-initialise with LTIM: the high line requests without a new edge
     * and again after EOI. */
    outb(f, 0x20, 0x19);
    outb(f, 0x21, 0x20);
    outb(f, 0x21, 0x04);
    outb(f, 0x21, 0x01);
    assert_int_equal(read_isr(f, 0x20), 0x00);
    assert_true(f->intr);
    assert_int_equal(i8259_ack(&f->pic), 0x24);
    eoi_master(f);
    assert_int_equal(i8259_ack(&f->pic), 0x24);
}

static void test_icw1_resets_edge_sense(void **state)
{
    struct fixture *f = *state;

    outb(f, 0x21, 0x55);
    irq(f, 3, true); /* latched, then the chip is re-initialised */
    outb(f, 0x20, 0x13); /* single, ICW4 */
    outb(f, 0x21, 0x40);
    outb(f, 0x21, 0x01); /* no ICW3 in single mode */
    assert_int_equal(inb(f, 0x21), 0x00); /* IMR cleared */
    assert_false(f->intr);
    irq(f, 3, false);
    irq(f, 3, true);
    assert_int_equal(i8259_ack(&f->pic), 0x43);
    /* Single mode: IR2 is an ordinary line of the master... which no
     * device can drive; the slave's output still arrives there. */
    eoi_master(f);
    irq(f, 2, true);
    assert_false(f->intr);
    fflush(f->log);
    assert_non_null(strstr(f->log_buf, "cascade"));
}

static void test_icw_without_icw4(void **state)
{
    struct fixture *f = *state;

    outb(f, 0x20, 0x10); /* cascade, no ICW4 */
    outb(f, 0x21, 0x50);
    outb(f, 0x21, 0x04);
    outb(f, 0x21, 0xf1); /* OCW1 now */
    assert_int_equal(inb(f, 0x21), 0xf1);
    irq(f, 0, true);
    assert_false(f->intr);
    irq(f, 1, true);
    assert_int_equal(i8259_ack(&f->pic), 0x51);
    /* No AEOI without ICW4. */
    assert_int_equal(read_isr(f, 0x20), 0x02);
}

static void test_poll_mode(void **state)
{
    struct fixture *f = *state;

    outb(f, 0x20, 0x0c);
    assert_int_equal(inb(f, 0x20), 0x00); /* nothing requesting */
    assert_int_equal(inb(f, 0x20), 0x00); /* poll was one-shot: IRR */
    irq(f, 6, true);
    irq(f, 4, true);
    outb(f, 0x20, 0x0c);
    assert_int_equal(inb(f, 0x20), 0x84);
    assert_int_equal(read_isr(f, 0x20), 0x10);
    eoi_master(f);
    outb(f, 0xa0, 0x0c); /* the slave's poll knows nothing of the master */
    assert_int_equal(inb(f, 0xa0), 0x00);
    outb(f, 0x20, 0x0c);
    assert_int_equal(inb(f, 0x20), 0x86);
    /* Slave: master reports IR2, the slave's poll the level. */
    eoi_master(f);
    irq(f, 13, true);
    outb(f, 0x20, 0x0c);
    assert_int_equal(inb(f, 0x20), 0x82);
    outb(f, 0xa0, 0x0c);
    assert_int_equal(inb(f, 0xa0), 0x85);
    assert_false(f->intr);
}

static void test_reset(void **state)
{
    struct fixture *f = *state;

    outb(f, 0x4d1, 0x02);
    irq(f, 9, true);
    irq(f, 1, true);
    assert_int_equal(i8259_ack(&f->pic), 0x09);
    i8259_reset(&f->pic);
    assert_int_equal(inb(f, 0x4d1), 0x00);
    assert_int_equal(read_isr(f, 0x20), 0x00);
    assert_int_equal(inb(f, 0x21), 0x00);
    /* Uninitialised chips answer with vector base 0; nothing requests
     * until a fresh edge. */
    assert_false(f->intr);
    irq(f, 1, false);
    irq(f, 1, true);
    assert_int_equal(i8259_ack(&f->pic), 0x01);
}

static void test_init_errors(void **state)
{
    struct fixture *f = *state;
    struct i8259 other;

    assert_int_equal(i8259_init(&other, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(i8259_init(&other, &f->bus, NULL, NULL), -EEXIST);
    /* Nothing of the second stays mapped. */
    assert_ptr_equal(bus_find(&f->bus, BUS_PIO, 0x20), &f->pic.master_region);
    assert_ptr_equal(bus_find(&f->bus, BUS_PIO, 0x4d0), &f->pic.elcr_region);
    irq(f, 16, true);
    irq(f, 1000, true);
    assert_false(f->intr);
}

/* A hostile guest and hostile devices: random port writes, line changes and
 * INTA cycles. INTR must always match what the registers say, vectors must
 * come from one of the two programmed bases, fixed ELCR bits stay 0. */
static void test_fuzz(void **state)
{
    struct fixture *f = *state;
    static const uint16_t ports[] = {0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1};
    unsigned seed = 12345;

    for (unsigned i = 0; i < 200000; i++) {
        unsigned r = (unsigned)rand_r(&seed);

        switch (r % 4) {
        case 0:
            outb(f, ports[(r >> 4) % 6], (uint8_t)(r >> 8));
            break;
        case 1:
            (void)inb(f, ports[(r >> 4) % 6]);
            break;
        case 2:
            irq(f, (r >> 4) % 17, (r >> 9) & 1);
            break;
        case 3: {
            bool was = f->intr;
            uint64_t spurious = f->pic.spurious;
            int v = i8259_ack(&f->pic);
            uint8_t mb = f->pic.chip[0].vector_base;
            uint8_t sb = f->pic.chip[1].vector_base;

            assert_true((v >= mb && v < mb + 8) || (v >= sb && v < sb + 8));
            /* INTR low means the master's spurious IR7; high, a real
             * vector or the slave's spurious IR7. */
            if (!was)
                assert_int_equal(v, mb + 7);
            if (was && f->pic.spurious != spurious)
                assert_int_equal(v, sb + 7);
            assert_true(was || f->pic.spurious != spurious);
            break;
        }
        }
        assert_int_equal(f->intr, i8259_intr_pending(&f->pic));
        assert_int_equal(inb(f, 0x4d0) & ~I8259_ELCR1_MASK, 0);
        assert_int_equal(inb(f, 0x4d1) & ~I8259_ELCR2_MASK, 0);
        assert_true(f->pic.chip[0].icw_expected <= 4);
    }
    /* Still a working PIC afterwards. */
    i8259_reset(&f->pic);
    for (unsigned n = 0; n < 16; n++)
        irq(f, n, false);
    init_pics(f, 0x01);
    irq(f, 15, true);
    assert_int_equal(i8259_ack(&f->pic), 0x77);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_basic_edge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_priority_and_nesting, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_eoi, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cascade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_special_fully_nested, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_special_mask_mode, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_spurious, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elcr_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ltim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_icw1_resets_edge_sense, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_icw_without_icw4, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_poll_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fuzz, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
