/* 8254 PIT and port 0x61 (hw/i8254.c) on a virtual clock the test moves by
 * hand, programmed through the bus, IRQ 0 recorded with the time of each
 * edge. */
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
#include "../../hw/clock.h"
#include "../../hw/i8254.h"
#include "../../hw/i8259.h"
#include "../../lib/log.h"

#define MAX_EDGES 4096

struct fixture {
    struct bus bus;
    struct hw_clock clock;
    uint64_t now;
    struct irq_sink sink;
    struct i8254 pit;
    bool level;
    unsigned raises, lowers;
    uint64_t raise_ns[MAX_EDGES];
};

static uint64_t clock_now(void *opaque)
{
    return ((struct fixture *)opaque)->now;
}

static void rec_irq(void *opaque, unsigned irq, bool level)
{
    struct fixture *f = opaque;

    assert_int_equal(irq, 0);
    assert_true(level != f->level);
    f->level = level;
    if (level) {
        f->raise_ns[f->raises % MAX_EDGES] = f->now;
        f->raises++;
    } else {
        f->lowers++;
    }
}

static const struct irq_sink_ops rec_ops = {.isa_irq = rec_irq};

/* The first nanosecond of tick n. */
static uint64_t tick_ns(uint64_t n)
{
    return (uint64_t)(((unsigned __int128)n * 1000000000u + I8254_HZ - 1) /
                      I8254_HZ);
}

static void at_tick(struct fixture *f, uint64_t n)
{
    f->now = tick_ns(n);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    bus_init(&f->bus);
    f->clock = (struct hw_clock){clock_now, f};
    f->sink = (struct irq_sink){&rec_ops, f};
    at_tick(f, 1000);
    assert_int_equal(i8254_init(&f->pit, &f->bus, &f->clock, &f->sink), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    i8254_fini(&f->pit);
    assert_false(f->level);
    bus_fini(&f->bus);
    free(f);
    return 0;
}

static void outb(struct fixture *f, uint16_t port, uint8_t v)
{
    bus_write(&f->bus, BUS_PIO, port, v, 1);
}

static uint8_t inb(struct fixture *f, uint16_t port)
{
    return (uint8_t)bus_read(&f->bus, BUS_PIO, port, 1);
}

/* Control word, then an LSB/MSB count. */
static void program(struct fixture *f, unsigned ch, unsigned mode,
                    uint16_t count)
{
    outb(f, 0x43, (uint8_t)(ch << 6 | 0x30 | mode << 1));
    outb(f, (uint16_t)(0x40 + ch), (uint8_t)count);
    outb(f, (uint16_t)(0x40 + ch), (uint8_t)(count >> 8));
}

static uint16_t latch_read(struct fixture *f, unsigned ch)
{
    uint16_t v;

    outb(f, 0x43, (uint8_t)(ch << 6));
    v = inb(f, (uint16_t)(0x40 + ch));
    return (uint16_t)(v | inb(f, (uint16_t)(0x40 + ch)) << 8);
}

/* Runs the machine's loop: advance to each deadline up to tick `end`,
 * update there. */
static void run_until(struct fixture *f, uint64_t end)
{
    uint64_t end_ns = tick_ns(end);

    for (;;) {
        uint64_t d = i8254_next_deadline_ns(&f->pit);

        if (d == HW_CLOCK_NEVER || d > end_ns)
            break;
        assert_true(d >= f->now);
        f->now = d;
        i8254_update(&f->pit);
    }
    f->now = end_ns;
    i8254_update(&f->pit);
}

static void test_reset_state(void **state)
{
    struct fixture *f = *state;

    /* Mode 3, 65536, loaded at tick 1000: OUT0 high, so IRQ0 is up. */
    assert_true(f->level);
    assert_int_equal(i8254_next_deadline_ns(&f->pit), tick_ns(1000 + 32768));
    run_until(f, 1000 + 65536 * 3);
    assert_int_equal(f->raises, 1 + 3);
    assert_int_equal(f->raise_ns[1], tick_ns(1000 + 65536));
    /* Read-back status of channel 0: OUT high, LSB/MSB, mode 3, binary. */
    outb(f, 0x43, 0xe2);
    assert_int_equal(inb(f, 0x40), 0x80 | 0x36);
    /* Channel 2 is gated off. */
    assert_int_equal(inb(f, 0x61) & 0x0f, 0);
}

static void test_mode0(void **state)
{
    struct fixture *f = *state;

    program(f, 0, 0, 100);
    assert_false(f->level);
    assert_int_equal(latch_read(f, 0), 100);
    at_tick(f, 1050);
    assert_int_equal(latch_read(f, 0), 50);
    assert_int_equal(i8254_next_deadline_ns(&f->pit), tick_ns(1100));
    at_tick(f, 1099);
    i8254_update(&f->pit);
    assert_false(f->level);
    assert_int_equal(latch_read(f, 0), 1);
    /* One nanosecond before the deadline nothing has happened yet. */
    f->now = tick_ns(1100) - 1;
    i8254_update(&f->pit);
    assert_false(f->level);
    at_tick(f, 1100);
    i8254_update(&f->pit);
    assert_true(f->level);
    assert_int_equal(latch_read(f, 0), 0);
    at_tick(f, 1101);
    assert_int_equal(latch_read(f, 0), 0xffff); /* keeps counting */
    assert_int_equal(i8254_next_deadline_ns(&f->pit), HW_CLOCK_NEVER);
    /* Writing a new count restarts and drops OUT. */
    program(f, 0, 0, 10);
    assert_false(f->level);
    run_until(f, 1200);
    assert_true(f->level);
    assert_int_equal(f->raise_ns[f->raises - 1], tick_ns(1111));
}

static void test_mode2_rate_no_drift(void **state)
{
    struct fixture *f = *state;
    const unsigned n = 1193; /* ~1000 Hz, a period that is not whole ns */
    unsigned base;

    program(f, 0, 2, (uint16_t)n);
    assert_true(f->level);
    base = f->raises;
    assert_int_equal(latch_read(f, 0), n);
    run_until(f, 1000 + 1000 * n);
    assert_int_equal(f->raises - base, 1000);
    for (unsigned k = 1; k <= 1000; k++)
        assert_int_equal(f->raise_ns[base + k - 1], tick_ns(1000 + k * n));

    at_tick(f, 1000 + 1000 * n + 1);
    assert_int_equal(latch_read(f, 0), n - 1);
    at_tick(f, 1000 + 1002 * n + 500);
    assert_int_equal(latch_read(f, 0), n - 500);
    /* OUT low exactly on the tick where the count is 1. */
    at_tick(f, 1000 + 1003 * n - 1);
    assert_false(i8254_out(&f->pit, 0));
    assert_int_equal(latch_read(f, 0), 1);
    at_tick(f, 1000 + 1003 * n);
    assert_true(i8254_out(&f->pit, 0));
}

static void test_late_update_one_edge(void **state)
{
    struct fixture *f = *state;
    unsigned before;

    program(f, 0, 2, 100);
    before = f->raises;
    /* Ten periods pass unobserved: one edge, line high. */
    at_tick(f, 1000 + 1000 + 5);
    i8254_update(&f->pit);
    assert_int_equal(f->raises - before, 1);
    assert_true(f->level);
    /* Nothing more until the next period. */
    i8254_update(&f->pit);
    assert_int_equal(f->raises - before, 1);
    assert_int_equal(i8254_next_deadline_ns(&f->pit), tick_ns(2000 + 99));

    /* Mode 3, update lands in the low half: a pulse, ending low. */
    program(f, 0, 3, 100);
    before = f->raises;
    at_tick(f, 2005 + 300 + 60);
    i8254_update(&f->pit);
    assert_int_equal(f->raises - before, 1);
    assert_false(f->level);
    /* The deadline is overdue-safe: never before the last update. */
    assert_int_equal(i8254_next_deadline_ns(&f->pit), tick_ns(2005 + 400));
}

static void test_mode3_square_wave(void **state)
{
    struct fixture *f = *state;

    program(f, 0, 3, 10);
    for (unsigned d = 0; d < 30; d++) {
        at_tick(f, 1000 + d);
        assert_int_equal(i8254_out(&f->pit, 0), d % 10 < 5);
        assert_int_equal(latch_read(f, 0), 10 - 2 * (d % 5));
    }
    /* Odd count: high (N+1)/2, low (N-1)/2. */
    at_tick(f, 2000);
    program(f, 0, 3, 11);
    for (unsigned d = 0; d < 33; d++) {
        at_tick(f, 2000 + d);
        assert_int_equal(i8254_out(&f->pit, 0), d % 11 < 6);
    }
    /* Mode 7 is mode 3, and the status byte says 7. */
    at_tick(f, 3000);
    outb(f, 0x43, 0x3e);
    outb(f, 0x40, 4);
    outb(f, 0x40, 0);
    at_tick(f, 3002);
    assert_false(i8254_out(&f->pit, 0));
    outb(f, 0x43, 0xe2);
    assert_int_equal(inb(f, 0x40) & 0x3f, 0x3e);
}

static void test_mode4_strobe(void **state)
{
    struct fixture *f = *state;

    program(f, 0, 4, 20);
    assert_true(f->level);
    run_until(f, 1019);
    assert_true(f->level);
    at_tick(f, 1020);
    assert_int_equal(i8254_next_deadline_ns(&f->pit), tick_ns(1020));
    i8254_update(&f->pit);
    assert_false(f->level);
    assert_int_equal(i8254_next_deadline_ns(&f->pit), tick_ns(1021));
    run_until(f, 1100);
    assert_true(f->level);
    assert_int_equal(i8254_next_deadline_ns(&f->pit), HW_CLOCK_NEVER);
}

static void test_gate_modes_1_and_5(void **state)
{
    struct fixture *f = *state;

    /* Mode 1 on channel 2: nothing until the gate rises. */
    program(f, 2, 1, 50);
    at_tick(f, 1100);
    assert_true(i8254_out(&f->pit, 2));
    assert_int_equal(latch_read(f, 2), 50);
    outb(f, 0x61, 0x01);
    assert_false(i8254_out(&f->pit, 2));
    assert_int_equal(inb(f, 0x61) & 0x20, 0);
    at_tick(f, 1130);
    assert_int_equal(latch_read(f, 2), 20);
    /* Retrigger: starts again from 50. */
    outb(f, 0x61, 0x00);
    outb(f, 0x61, 0x01);
    at_tick(f, 1179);
    assert_false(i8254_out(&f->pit, 2));
    at_tick(f, 1180);
    assert_true(i8254_out(&f->pit, 2));
    assert_int_equal(inb(f, 0x61) & 0x21, 0x21);

    /* Mode 5: a one-tick low pulse N ticks after the gate edge. */
    outb(f, 0x61, 0x00);
    program(f, 2, 5, 30);
    at_tick(f, 1200);
    outb(f, 0x61, 0x01);
    at_tick(f, 1229);
    assert_true(i8254_out(&f->pit, 2));
    at_tick(f, 1230);
    assert_false(i8254_out(&f->pit, 2));
    at_tick(f, 1231);
    assert_true(i8254_out(&f->pit, 2));
}

/* Modes 2 and 3: gate low suspends counting, so the counter holds the
 * value it had (data sheet, GATE "disables counting"), and a count written
 * for the end of the period waits with it; the rising edge reloads. */
static void test_gate_low_holds_count_modes_2_3(void **state)
{
    struct fixture *f = *state;

    outb(f, 0x61, 0x01);
    program(f, 2, 2, 100); /* loaded at tick 1000 */
    at_tick(f, 1030);
    outb(f, 0x61, 0x00);
    at_tick(f, 2000);
    assert_int_equal(latch_read(f, 2), 70);
    assert_true(i8254_out(&f->pit, 2));
    outb(f, 0x61, 0x01);
    assert_int_equal(latch_read(f, 2), 100);

    /* A new count pending for the period's end (tick 2100) when the gate
     * drops at 2040: the counter stays at 60 past 2100, the new count
     * comes with the rising edge. */
    at_tick(f, 2030);
    outb(f, 0x42, 50);
    outb(f, 0x42, 0);
    at_tick(f, 2040);
    outb(f, 0x61, 0x00);
    at_tick(f, 3000);
    assert_int_equal(latch_read(f, 2), 60);
    outb(f, 0x61, 0x01);
    assert_int_equal(latch_read(f, 2), 50);
    at_tick(f, 3049);
    assert_false(i8254_out(&f->pit, 2));

    /* Mode 3 counts by two: 20 ticks into a 100 period it reads 60. */
    program(f, 2, 3, 100); /* at 3049 */
    at_tick(f, 3069);
    outb(f, 0x61, 0x00);
    at_tick(f, 4000);
    assert_int_equal(latch_read(f, 2), 60);
}

static void test_gate_modes_0_2_3(void **state)
{
    struct fixture *f = *state;

    /* Mode 0: gate low suspends the count. */
    outb(f, 0x61, 0x01);
    program(f, 2, 0, 100);
    at_tick(f, 1040);
    outb(f, 0x61, 0x00);
    at_tick(f, 5000);
    assert_int_equal(latch_read(f, 2), 60);
    outb(f, 0x61, 0x01);
    at_tick(f, 5059);
    assert_false(i8254_out(&f->pit, 2));
    at_tick(f, 5060);
    assert_true(i8254_out(&f->pit, 2));

    /* Mode 2: gate low forces OUT high and stops; the rising edge reloads. */
    program(f, 2, 2, 10);
    at_tick(f, 5069);
    assert_false(i8254_out(&f->pit, 2));
    outb(f, 0x61, 0x00);
    assert_true(i8254_out(&f->pit, 2));
    at_tick(f, 6000);
    assert_true(i8254_out(&f->pit, 2));
    outb(f, 0x61, 0x01);
    assert_int_equal(latch_read(f, 2), 10);
    at_tick(f, 6009);
    assert_false(i8254_out(&f->pit, 2));

    /* Mode 3 with the gate low from the start: no square wave. */
    outb(f, 0x61, 0x00);
    program(f, 2, 3, 10);
    at_tick(f, 7000);
    for (unsigned d = 0; d < 10; d++) {
        at_tick(f, 7000 + d);
        assert_true(i8254_out(&f->pit, 2));
    }
    outb(f, 0x61, 0x03); /* gate on, speaker data on */
    at_tick(f, 7014);
    assert_int_equal(inb(f, 0x61) & 0x23, 0x03);
    at_tick(f, 7019);
    assert_int_equal(inb(f, 0x61) & 0x23, 0x23);
}

static void test_port61(void **state)
{
    struct fixture *f = *state;
    uint8_t a, b;

    outb(f, 0x61, 0xff);
    assert_int_equal(inb(f, 0x61) & 0x0f, 0x0f);
    outb(f, 0x61, 0x0c);
    assert_int_equal(inb(f, 0x61) & 0x0f, 0x0c);
    /* The refresh bit follows time: 15.085 us per toggle. */
    f->now = 100 * I8254_REFRESH_NS;
    a = inb(f, 0x61) & 0x10;
    f->now = 101 * I8254_REFRESH_NS - 1;
    b = inb(f, 0x61) & 0x10;
    assert_int_equal(a, 0);
    assert_int_equal(b, 0);
    f->now = 101 * I8254_REFRESH_NS;
    assert_int_equal(inb(f, 0x61) & 0x10, 0x10);
    f->now = 102 * I8254_REFRESH_NS + 7;
    assert_int_equal(inb(f, 0x61) & 0x10, 0);
    /* Port 0x61 is one byte; 0x60 and 0x62 are not ours. */
    assert_null(bus_find(&f->bus, BUS_PIO, 0x60));
    assert_null(bus_find(&f->bus, BUS_PIO, 0x62));
}

static void test_latch_and_access_modes(void **state)
{
    struct fixture *f = *state;

    program(f, 1, 2, 0x1234);
    outb(f, 0x43, 0x40); /* latch channel 1 */
    at_tick(f, 1100);
    outb(f, 0x43, 0x40); /* ignored: already latched */
    assert_int_equal(inb(f, 0x41), 0x34);
    at_tick(f, 1200);
    assert_int_equal(inb(f, 0x41), 0x12);
    /* Live LSB/MSB reads alternate. */
    at_tick(f, 1000 + 0x34);
    assert_int_equal(inb(f, 0x41), 0x00);
    assert_int_equal(inb(f, 0x41), 0x12);

    /* LSB only: the high byte of the count is 0. */
    at_tick(f, 2000);
    outb(f, 0x43, 0x54); /* ch1, LSB, mode 2 */
    outb(f, 0x41, 200);
    at_tick(f, 2050);
    assert_int_equal(inb(f, 0x41), 150);
    assert_int_equal(inb(f, 0x41), 150);
    /* MSB only. */
    outb(f, 0x43, 0x64); /* ch1, MSB, mode 2 */
    outb(f, 0x41, 0x02);
    at_tick(f, 2050 + 0x100);
    assert_int_equal(inb(f, 0x41), 0x01);
    outb(f, 0x43, 0x40);
    assert_int_equal(inb(f, 0x41), 0x01);
    /* A new control word drops a latch half read. */
    program(f, 1, 2, 0x1234);
    outb(f, 0x43, 0x40);
    (void)inb(f, 0x41);
    program(f, 1, 2, 0x5678);
    assert_int_equal(latch_read(f, 1), 0x5678);
}

static void test_read_back(void **state)
{
    struct fixture *f = *state;
    unsigned lo;

    /* After a control word, before the count: null count. */
    outb(f, 0x43, 0xb4); /* ch2, LSB/MSB, mode 2 */
    outb(f, 0x43, 0xe8); /* read-back status of ch2 */
    assert_int_equal(inb(f, 0x42), 0x80 | 0x40 | 0x34);
    outb(f, 0x42, 0x00);
    outb(f, 0x42, 0x10);
    outb(f, 0x43, 0xe8);
    assert_int_equal(inb(f, 0x42), 0x80 | 0x34);
    /* Status and count together: status first. Gate off: count held. */
    at_tick(f, 1500);
    outb(f, 0x43, 0xc8);
    at_tick(f, 1600);
    assert_int_equal(inb(f, 0x42), 0x80 | 0x34);
    assert_int_equal(inb(f, 0x42), 0x00);
    assert_int_equal(inb(f, 0x42), 0x10);
    /* Several channels in one command; channel 0 runs from reset. */
    program(f, 1, 0, 500);
    at_tick(f, 1700);
    outb(f, 0x43, 0xd6); /* count only, ch0 and ch1 */
    at_tick(f, 1800);
    lo = inb(f, 0x41);
    assert_int_equal(lo | inb(f, 0x41) << 8, 400);
    lo = inb(f, 0x40);
    assert_int_equal(lo | inb(f, 0x40) << 8, 0x10000 - 2 * 700);
    /* Mode 2 reprogrammed while counting: null count until the new count
     * is loaded at the end of the period. */
    program(f, 1, 2, 1000);
    at_tick(f, 2100);
    outb(f, 0x41, 0xf4);
    outb(f, 0x41, 0x01); /* 500 */
    outb(f, 0x43, 0xe4);
    assert_int_equal(inb(f, 0x41) & 0x40, 0x40);
    at_tick(f, 2799);
    assert_int_equal(latch_read(f, 1), 1);
    at_tick(f, 2800);
    outb(f, 0x43, 0xe4);
    assert_int_equal(inb(f, 0x41) & 0x40, 0);
    assert_int_equal(latch_read(f, 1), 500);
    at_tick(f, 3299);
    assert_false(i8254_out(&f->pit, 1));
    at_tick(f, 3300);
    assert_true(i8254_out(&f->pit, 1));
}

static void test_reprogram_rate_irq(void **state)
{
    struct fixture *f = *state;
    unsigned base;

    program(f, 0, 2, 1000);
    base = f->raises;
    at_tick(f, 1300);
    outb(f, 0x40, 0xf4);
    outb(f, 0x40, 0x01); /* 500 from the end of this period */
    run_until(f, 3100);
    assert_int_equal(f->raises - base, 3);
    assert_int_equal(f->raise_ns[base + 0], tick_ns(2000));
    assert_int_equal(f->raise_ns[base + 1], tick_ns(2500));
    assert_int_equal(f->raise_ns[base + 2], tick_ns(3000));
}

static void test_bcd(void **state)
{
    struct fixture *f = *state;

    outb(f, 0x43, 0x71); /* ch1, LSB/MSB, mode 0, BCD */
    outb(f, 0x41, 0x00);
    outb(f, 0x41, 0x10); /* 1000 */
    at_tick(f, 1001);
    assert_int_equal(latch_read(f, 1), 0x0999);
    at_tick(f, 1999);
    assert_int_equal(latch_read(f, 1), 0x0001);
    at_tick(f, 2000);
    assert_true(i8254_out(&f->pit, 1));
    at_tick(f, 2001);
    assert_int_equal(latch_read(f, 1), 0x9999);
    /* Count 0 in BCD is 10000. */
    outb(f, 0x43, 0x75); /* mode 2, BCD */
    outb(f, 0x41, 0x00);
    outb(f, 0x41, 0x00);
    at_tick(f, 2002);
    assert_int_equal(latch_read(f, 1), 0x9999);
    at_tick(f, 2001 + 9999);
    assert_false(i8254_out(&f->pit, 1));
    at_tick(f, 2001 + 10000);
    assert_true(i8254_out(&f->pit, 1));
    /* Hostile digits decode without trouble. */
    outb(f, 0x43, 0x71);
    outb(f, 0x41, 0xff);
    outb(f, 0x41, 0xff);
    assert_int_equal(latch_read(f, 1), 0x6665); /* 16665 mod 10000 */
}

static void test_irq_never_without_channel0(void **state)
{
    struct fixture *f = *state;

    /* Mode 1 on channel 0: its gate never rises, nothing ever happens. */
    program(f, 0, 1, 10);
    assert_true(f->level);
    assert_int_equal(i8254_next_deadline_ns(&f->pit), HW_CLOCK_NEVER);
    /* Control word alone: mode 0 drops OUT, and stays so. */
    outb(f, 0x43, 0x30);
    assert_false(f->level);
    assert_int_equal(i8254_next_deadline_ns(&f->pit), HW_CLOCK_NEVER);
    /* Reads of 0x43 are 0. */
    assert_int_equal(inb(f, 0x43), 0);
}

static void test_init_errors(void **state)
{
    struct fixture *f = *state;
    struct i8254 other;

    assert_int_equal(i8254_init(&other, &f->bus, NULL, NULL), -EINVAL);
    assert_int_equal(i8254_init(&other, &f->bus, &f->clock, NULL), -EEXIST);
    assert_ptr_equal(bus_find(&f->bus, BUS_PIO, 0x61), &f->pit.port61_region);
    assert_int_equal(i8254_read_count(&f->pit, 3), 0);
    assert_false(i8254_out(&f->pit, 7));
}

/* Random port writes and reads at random times, updates at deadlines or
 * late: the line always ends at OUT0 after an update, deadlines never
 * precede the last update, edges only happen at rising edges of OUT0. */
static void test_fuzz(void **state)
{
    struct fixture *f = *state;
    static const uint16_t ports[] = {0x40, 0x41, 0x42, 0x43, 0x61};
    unsigned seed = 777;

    for (unsigned i = 0; i < 200000; i++) {
        unsigned r = (unsigned)rand_r(&seed);

        switch (r % 5) {
        case 0:
            outb(f, ports[(r >> 4) % 5], (uint8_t)(r >> 8));
            break;
        case 1:
            (void)inb(f, ports[(r >> 4) % 5]);
            break;
        case 2:
            f->now += (r >> 4) % 5000;
            break;
        case 3:
            if ((r >> 4) % 1000 == 0)
                f->now += (uint64_t)r << 20; /* a long stall */
            break;
        case 4: {
            uint64_t d = i8254_next_deadline_ns(&f->pit);

            if (d != HW_CLOCK_NEVER && d > f->now && (r >> 4) % 2)
                f->now = d;
            i8254_update(&f->pit);
            assert_int_equal(f->level, i8254_out(&f->pit, 0));
            d = i8254_next_deadline_ns(&f->pit);
            assert_true(d == HW_CLOCK_NEVER || d > f->now);
            break;
        }
        }
    }
    /* Still exact afterwards. */
    program(f, 0, 2, 100);
    {
        uint64_t start = f->pit.ch[0].load_tick;
        unsigned base = f->raises;

        run_until(f, start + 1000);
        assert_int_equal(f->raises - base, 10);
        assert_int_equal(f->raise_ns[(base + 9) % MAX_EDGES],
                         tick_ns(start + 1000));
    }
}

/* The PIT wired to the PIC as in the software machine: SeaBIOS's 18.2 Hz
 * mode 3 tick reaches the CPU once per period even when the machine polls
 * late, in the low half of the square wave (where the PIT gives a
 * zero-width pulse). */
static void test_with_pic(void **state)
{
    struct fixture *f = *state;
    struct i8259 pic;
    struct i8254 pit;
    struct bus bus;
    unsigned delivered = 0;

    bus_init(&bus);
    assert_int_equal(i8259_init(&pic, &bus, NULL, NULL), 0);
    assert_int_equal(i8254_init(&pit, &bus, &f->clock, i8259_irq_sink(&pic)),
                     0);
    bus_write(&bus, BUS_PIO, 0x20, 0x11, 1);
    bus_write(&bus, BUS_PIO, 0x21, 0x08, 1);
    bus_write(&bus, BUS_PIO, 0x21, 0x04, 1);
    bus_write(&bus, BUS_PIO, 0x21, 0x01, 1);
    bus_write(&bus, BUS_PIO, 0x21, 0xfe, 1);
    bus_write(&bus, BUS_PIO, 0x43, 0x36, 1);
    bus_write(&bus, BUS_PIO, 0x40, 0x00, 1);
    bus_write(&bus, BUS_PIO, 0x40, 0x00, 1);
    for (unsigned k = 1; k <= 20; k++) {
        /* Three quarters into period k: OUT0 is low again. */
        at_tick(f, 1000 + k * 65536 + 49152);
        i8254_update(&pit);
        assert_false(pit.irq_level);
        if (i8259_intr_pending(&pic)) {
            assert_int_equal(i8259_ack(&pic), 0x08);
            bus_write(&bus, BUS_PIO, 0x20, 0x20, 1);
            delivered++;
        }
    }
    assert_int_equal(delivered, 20);
    i8254_fini(&pit);
    i8259_fini(&pic);
    bus_fini(&bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reset_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode2_rate_no_drift, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_late_update_one_edge, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mode3_square_wave, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mode4_strobe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gate_modes_1_and_5, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gate_low_holds_count_modes_2_3,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_gate_modes_0_2_3, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_port61, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latch_and_access_modes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reprogram_rate_irq, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bcd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_irq_never_without_channel0, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_init_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fuzz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_with_pic, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
