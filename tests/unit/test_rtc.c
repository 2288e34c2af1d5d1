/* MC146818 RTC (hw/rtc.c) behind the CMOS ports, on a virtual clock. */
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
#include "../../hw/cmos.h"
#include "../../hw/rtc.h"

#define S 1000000000ull
#define T0 (5 * S) /* clock time at init: the divider phase starts here */
/* Wed 2024-02-28 23:59:58 UTC */
#define START 1709164798

struct fixture {
    struct bus bus;
    struct cmos cmos;
    struct hw_clock clock;
    uint64_t now;
    struct irq_sink sink;
    struct rtc rtc;
    bool level;
    unsigned raises;
};

static uint64_t clock_now(void *opaque)
{
    return ((struct fixture *)opaque)->now;
}

static void rec_irq(void *opaque, unsigned irq, bool level)
{
    struct fixture *f = opaque;

    assert_int_equal(irq, 8);
    assert_true(level != f->level);
    f->level = level;
    f->raises += level;
}

static const struct irq_sink_ops rec_ops = {.isa_irq = rec_irq};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cmos_config cfg = {.ram_below_4g = 128 << 20, .ncpus = 1};

    assert_non_null(f);
    bus_init(&f->bus);
    assert_int_equal(cmos_init(&f->cmos, &f->bus, &cfg), 0);
    f->clock = (struct hw_clock){clock_now, f};
    f->sink = (struct irq_sink){&rec_ops, f};
    f->now = T0;
    assert_int_equal(rtc_init(&f->rtc, &f->cmos, &f->clock, &f->sink, START),
                     0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    rtc_fini(&f->rtc);
    assert_false(f->level);
    /* Detached: the clock registers read as nobody's. */
    bus_write(&f->bus, BUS_PIO, 0x70, 0x00, 1);
    assert_int_equal(bus_read(&f->bus, BUS_PIO, 0x71, 1), 0xff);
    cmos_fini(&f->cmos);
    bus_fini(&f->bus);
    free(f);
    return 0;
}

static uint8_t rd(struct fixture *f, uint8_t index)
{
    bus_write(&f->bus, BUS_PIO, 0x70, index, 1);
    return (uint8_t)bus_read(&f->bus, BUS_PIO, 0x71, 1);
}

static void wr(struct fixture *f, uint8_t index, uint8_t v)
{
    bus_write(&f->bus, BUS_PIO, 0x70, index, 1);
    bus_write(&f->bus, BUS_PIO, 0x71, v, 1);
}

/* sec, min, hour, dow, day, month, year */
static void expect_time(struct fixture *f, const uint8_t want[7])
{
    static const uint8_t idx[7] = {0, 2, 4, 6, 7, 8, 9};

    for (int i = 0; i < 7; i++)
        if (rd(f, idx[i]) != want[i])
            fail_msg("register 0x%02x = 0x%02x, expected 0x%02x", idx[i],
                     rd(f, idx[i]), want[i]);
}

static void set_time(struct fixture *f, const uint8_t v[7])
{
    static const uint8_t idx[7] = {0, 2, 4, 6, 7, 8, 9};

    wr(f, 0x0b, (uint8_t)(rd(f, 0x0b) | 0x80));
    for (int i = 0; i < 7; i++)
        wr(f, idx[i], v[i]);
    wr(f, 0x0b, (uint8_t)(rd(f, 0x0b) & 0x7f));
}

static void test_power_on_and_leap_day(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(rd(f, 0x0a), 0x26);
    assert_int_equal(rd(f, 0x0b), 0x02);
    assert_int_equal(rd(f, 0x0c), 0x00);
    assert_int_equal(rd(f, 0x0d), 0x80);
    expect_time(f, (const uint8_t[]){0x58, 0x59, 0x23, 0x04, 0x28, 0x02,
                                     0x24});
    /* Index writes with the NMI bit set reach the same registers. */
    bus_write(&f->bus, BUS_PIO, 0x70, 0x80, 1);
    assert_int_equal(bus_read(&f->bus, BUS_PIO, 0x71, 1), 0x58);
    f->now = T0 + S - 1;
    assert_int_equal(rd(f, 0x00), 0x58);
    f->now = T0 + S;
    assert_int_equal(rd(f, 0x00), 0x59);
    f->now = T0 + 2 * S;
    expect_time(f, (const uint8_t[]){0x00, 0x00, 0x00, 0x05, 0x29, 0x02,
                                     0x24});
    f->now = T0 + 2 * S + 86400 * S;
    expect_time(f, (const uint8_t[]){0x00, 0x00, 0x00, 0x06, 0x01, 0x03,
                                     0x24});
    assert_int_equal(rtc_get_time(&f->rtc), START + 2 + 86400);
}

static void test_set_and_year_rollover(void **state)
{
    struct fixture *f = *state;

    f->now = T0 + S / 2;
    /* 2099-12-31 23:59:58, a Thursday (5). */
    set_time(f, (const uint8_t[]){0x58, 0x59, 0x23, 0x05, 0x31, 0x12, 0x99});
    expect_time(f, (const uint8_t[]){0x58, 0x59, 0x23, 0x05, 0x31, 0x12,
                                     0x99});
    /* The divider phase is kept: the next second comes at T0 + 1 s. */
    f->now = T0 + S;
    assert_int_equal(rd(f, 0x00), 0x59);
    f->now = T0 + 2 * S;
    expect_time(f, (const uint8_t[]){0x00, 0x00, 0x00, 0x06, 0x01, 0x01,
                                     0x00});
    /* 2100 is not a leap year. */
    f->now = T0 + 2 * S + 58ull * 86400 * S;
    expect_time(f, (const uint8_t[]){0x00, 0x00, 0x00, 0x01, 0x28, 0x02,
                                     0x00});
    f->now += 86400 * S;
    expect_time(f, (const uint8_t[]){0x00, 0x00, 0x00, 0x02, 0x01, 0x03,
                                     0x00});
}

static void test_set_bit_holds(void **state)
{
    struct fixture *f = *state;

    wr(f, 0x0b, 0x82 | 0x10); /* SET with UIE: UIE is dropped */
    assert_int_equal(rd(f, 0x0b), 0x82);
    f->now = T0 + 10 * S;
    assert_int_equal(rd(f, 0x00), 0x58); /* frozen */
    assert_int_equal(rd(f, 0x0a) & 0x80, 0); /* no UIP while SET */
    wr(f, 0x02, 0x30);
    wr(f, 0x04, 0x12);
    f->now = T0 + 20 * S + S / 4;
    assert_int_equal(rd(f, 0x02), 0x30);
    wr(f, 0x0b, 0x02);
    /* Sticks and counts: 12:30:58, next second at the divider's edge. */
    assert_int_equal(rd(f, 0x04), 0x12);
    assert_int_equal(rd(f, 0x02), 0x30);
    assert_int_equal(rd(f, 0x00), 0x58);
    f->now = T0 + 21 * S;
    assert_int_equal(rd(f, 0x00), 0x59);
    f->now = T0 + 22 * S;
    assert_int_equal(rd(f, 0x02), 0x31);
    /* Writing a time register while running takes effect at once. */
    wr(f, 0x04, 0x07);
    f->now = T0 + 3622 * S;
    assert_int_equal(rd(f, 0x04), 0x08);
    assert_int_equal(rd(f, 0x02), 0x31);
}

static void test_binary_and_12h(void **state)
{
    struct fixture *f = *state;

    wr(f, 0x0b, 0x04); /* binary, 12 h */
    expect_time(f, (const uint8_t[]){58, 59, 0x80 | 11, 4, 28, 2, 24});
    f->now = T0 + 2 * S; /* midnight is 12 AM */
    assert_int_equal(rd(f, 0x04), 12);
    f->now = T0 + 2 * S + 12 * 3600 * S; /* noon is 12 PM */
    assert_int_equal(rd(f, 0x04), 0x80 | 12);
    /* BCD 12 h: 1 PM. */
    wr(f, 0x0b, 0x00);
    f->now += 3600 * S;
    assert_int_equal(rd(f, 0x04), 0x81);
    /* Setting in 12 h BCD: 11 PM. */
    set_time(f, (const uint8_t[]){0x00, 0x00, 0x91, 0x05, 0x01, 0x01, 0x25});
    wr(f, 0x0b, 0x02);
    assert_int_equal(rd(f, 0x04), 0x23);
}

static void test_uip_window(void **state)
{
    struct fixture *f = *state;

    f->now = T0 + S - RTC_UIP_NS - 1;
    assert_int_equal(rd(f, 0x0a), 0x26);
    f->now = T0 + S - RTC_UIP_NS;
    assert_int_equal(rd(f, 0x0a), 0xa6);
    assert_int_equal(rd(f, 0x00), 0x58); /* not yet updated */
    f->now = T0 + S;
    assert_int_equal(rd(f, 0x0a), 0x26);
    assert_int_equal(rd(f, 0x00), 0x59);
    /* UIP is read-only. */
    wr(f, 0x0a, 0xa6);
    assert_int_equal(rd(f, 0x0a), 0x26);
}

static void test_periodic(void **state)
{
    struct fixture *f = *state;
    uint64_t d;

    /* Nothing enabled: no deadline, but PF is still set by time. */
    assert_int_equal(rtc_next_deadline_ns(&f->rtc), HW_CLOCK_NEVER);
    f->now = T0 + 1000000;
    assert_int_equal(rd(f, 0x0c), 0x40);
    assert_int_equal(rd(f, 0x0c), 0x00);
    assert_false(f->level);
    /* 1024 Hz with PIE: 976562.5 ns. */
    wr(f, 0x0b, 0x42);
    d = rtc_next_deadline_ns(&f->rtc);
    assert_int_equal(d, T0 + 1953125);
    f->now = d - 1;
    rtc_update(&f->rtc);
    assert_false(f->level);
    f->now = d;
    rtc_update(&f->rtc);
    assert_true(f->level);
    assert_int_equal(rtc_next_deadline_ns(&f->rtc), HW_CLOCK_NEVER);
    assert_int_equal(rd(f, 0x0c), 0xc0);
    assert_false(f->level);
    assert_int_equal(rtc_next_deadline_ns(&f->rtc), T0 + 2929688);
    /* RS 15: 2 Hz; RS 1 repeats RS 8 (256 Hz). */
    wr(f, 0x0a, 0x2f);
    assert_int_equal(rtc_next_deadline_ns(&f->rtc), T0 + S / 2);
    wr(f, 0x0a, 0x21);
    assert_int_equal(rtc_next_deadline_ns(&f->rtc), T0 + 3906250);
    /* RS 0: off. */
    wr(f, 0x0a, 0x20);
    assert_int_equal(rtc_next_deadline_ns(&f->rtc), HW_CLOCK_NEVER);
    /* 100 periods at 8 Hz in the machine's loop: 100 interrupts. */
    wr(f, 0x0a, 0x2d);
    f->raises = 0;
    for (int i = 0; i < 100; i++) {
        f->now = rtc_next_deadline_ns(&f->rtc);
        rtc_update(&f->rtc);
        assert_true(f->level);
        assert_int_equal(rd(f, 0x0c) & 0xc0, 0xc0);
    }
    assert_int_equal(f->raises, 100);
    assert_int_equal(f->now, T0 + 12500000000ull + 0 * S);
}

static void test_alarm_and_update(void **state)
{
    struct fixture *f = *state;

    wr(f, 0x0a, 0x20); /* no periodic flag in the way */
    /* Alarm at 00:00:01 (tomorrow, three seconds away). */
    wr(f, 0x01, 0x01);
    wr(f, 0x03, 0x00);
    wr(f, 0x05, 0x00);
    wr(f, 0x0b, 0x22);
    assert_int_equal(rtc_next_deadline_ns(&f->rtc), T0 + S);
    f->now = T0 + S;
    rtc_update(&f->rtc);
    assert_false(f->level);
    assert_int_equal(rd(f, 0x0c), 0x10); /* UF without UIE */
    f->now = T0 + 3 * S - 1;
    rtc_update(&f->rtc);
    assert_false(f->level);
    f->now = T0 + 3 * S;
    rtc_update(&f->rtc);
    assert_true(f->level);
    assert_int_equal(rd(f, 0x0c), 0xb0);
    assert_false(f->level);
    /* A late look still finds an alarm that matched in between. */
    f->now = T0 + 86400 * S + 10 * S;
    rtc_update(&f->rtc);
    assert_true(f->level);
    assert_int_equal(rd(f, 0x0c), 0xb0);
    /* Don't-care everywhere: every second. */
    wr(f, 0x01, 0xc0);
    wr(f, 0x03, 0xff);
    wr(f, 0x05, 0xc5);
    f->now += S;
    rtc_update(&f->rtc);
    assert_int_equal(rd(f, 0x0c), 0xb0);
    /* An alarm that can never match (minute 0x61): nothing. */
    wr(f, 0x03, 0x61);
    f->now += 2 * 86400 * S;
    rtc_update(&f->rtc);
    assert_int_equal(rd(f, 0x0c), 0x10);
    /* Update-ended interrupt. */
    wr(f, 0x0b, 0x12);
    f->now = rtc_next_deadline_ns(&f->rtc);
    assert_int_equal(f->now % S, T0 % S);
    rtc_update(&f->rtc);
    assert_true(f->level);
    assert_int_equal(rd(f, 0x0c) & 0x90, 0x90);
}

static void test_divider_reset(void **state)
{
    struct fixture *f = *state;

    f->now = T0 + S / 4;
    wr(f, 0x0a, 0x76); /* chain in reset: time stops */
    f->now = T0 + 100 * S;
    assert_int_equal(rd(f, 0x00), 0x58);
    wr(f, 0x0a, 0x26);
    f->now += S / 2 - 1;
    assert_int_equal(rd(f, 0x00), 0x58);
    f->now += 1;
    assert_int_equal(rd(f, 0x00), 0x59);
    /* C and D ignore writes. */
    wr(f, 0x0c, 0xff);
    wr(f, 0x0d, 0x00);
    assert_int_equal(rd(f, 0x0d), 0x80);
}

static void test_reset(void **state)
{
    struct fixture *f = *state;

    wr(f, 0x0b, 0x7a);
    f->now = T0 + 2 * S;
    rtc_update(&f->rtc);
    assert_true(f->level);
    rtc_reset(&f->rtc);
    assert_false(f->level);
    assert_int_equal(rd(f, 0x0b), 0x02);
    assert_int_equal(rd(f, 0x0c), 0x00);
    assert_int_equal(rd(f, 0x00), 0x00); /* the time keeps going */
}

static void test_fuzz(void **state)
{
    struct fixture *f = *state;
    unsigned seed = 4242;

    for (unsigned i = 0; i < 100000; i++) {
        unsigned r = (unsigned)rand_r(&seed);

        switch (r % 4) {
        case 0:
            wr(f, (uint8_t)((r >> 4) % 0x0e), (uint8_t)(r >> 12));
            break;
        case 1:
            (void)rd(f, (uint8_t)((r >> 4) % 0x0e));
            break;
        case 2:
            f->now += (r >> 4) % (3 * S / 2);
            break;
        case 3: {
            uint64_t d = rtc_next_deadline_ns(&f->rtc);

            if (d != HW_CLOCK_NEVER && d > f->now && (r >> 4) % 2)
                f->now = d;
            rtc_update(&f->rtc);
            break;
        }
        }
        assert_int_equal(f->level, f->rtc.irq_level);
        assert_int_equal(rd(f, 0x0d), 0x80);
    }
    /* Still a working clock. */
    wr(f, 0x0a, 0x26);
    wr(f, 0x0b, 0x02);
    set_time(f, (const uint8_t[]){0x00, 0x00, 0x10, 0x02, 0x01, 0x06, 0x26});
    f->now += 3 * S;
    assert_int_equal(rd(f, 0x00), 0x03);
    assert_int_equal(rd(f, 0x04), 0x10);
    assert_int_equal(rd(f, 0x08), 0x06);
}

static void test_init_errors(void **state)
{
    struct fixture *f = *state;
    struct rtc other;

    assert_int_equal(rtc_init(&other, NULL, &f->clock, NULL, 0), -EINVAL);
    assert_int_equal(rtc_init(&other, &f->cmos, NULL, NULL, 0), -EINVAL);
    /* NVRAM stays cmos.c's. */
    wr(f, 0x32, 0x21);
    assert_int_equal(rd(f, 0x32), 0x21);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_power_on_and_leap_day, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_set_and_year_rollover, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_set_bit_holds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_and_12h, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uip_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_periodic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alarm_and_update, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_divider_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fuzz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_errors, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
