/* CMOS NVRAM: contents QEMU 7.x's PC machine gives (hw/i386/pc.c
 * pc_cmos_init, hw/i386/x86.c x86_rtc_set_cpus_count), the index/data port
 * behaviour Xen's forwarding produces, and the RTC hook. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "../../hw/bus.h"
#include "../../lib/log.h"
#include "log_capture.h"
#include "../../hw/cmos.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

struct fixture {
    struct bus bus;
    struct cmos cmos;
    /* RTC hook record */
    unsigned rtc_reads, rtc_writes, rtc_last_index;
    uint8_t rtc_last_value;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    bus_init(&fx->bus);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    cmos_fini(&fx->cmos);
    bus_fini(&fx->bus);
    free(fx);
    return 0;
}

/* A byte as the guest reads it: index write (Xen forwards it with the NMI
 * bit as the guest wrote it), then a data read. */
static uint8_t guest_read(struct fixture *fx, unsigned index)
{
    bus_write(&fx->bus, BUS_PIO, 0x70, index, 1);
    return (uint8_t)bus_read(&fx->bus, BUS_PIO, 0x71, 1);
}

static void guest_write(struct fixture *fx, unsigned index, uint8_t value)
{
    bus_write(&fx->bus, BUS_PIO, 0x70, index, 1);
    bus_write(&fx->bus, BUS_PIO, 0x71, value, 1);
}

/* Compares NVRAM bytes 0x0E-0x7F, read through the ports, with want. */
static void expect_nvram(struct fixture *fx, const uint8_t *want)
{
    for (unsigned i = CMOS_RTC_REGS; i < CMOS_SIZE; i++) {
        uint8_t got = guest_read(fx, i);

        if (got != want[i])
            fail_msg("CMOS 0x%02x: got 0x%02x, want 0x%02x", i, got, want[i]);
        assert_int_equal(cmos_get(&fx->cmos, i), want[i]);
    }
}

/* want plus the century byte, which QEMU sets from the host clock: the
 * current century in BCD (0x20 until 2100). */
static const uint8_t *with_century(const uint8_t *want)
{
    static uint8_t buf[CMOS_SIZE];
    time_t now = time(NULL);
    struct tm tm;
    unsigned c;

    assert_non_null(gmtime_r(&now, &tm));
    c = (unsigned)(tm.tm_year + 1900) / 100;
    memcpy(buf, want, CMOS_SIZE);
    assert_int_equal(buf[CMOS_CENTURY], 0);
    buf[CMOS_CENTURY] = (uint8_t)((c / 10) << 4 | c % 10);
    return buf;
}

static void test_1g_guest(void **state)
{
    struct fixture *fx = *state;
    const struct cmos_config cfg = {.ram_below_4g = 1 * GiB,
                                    .ram_above_4g = 0,
                                    .boot_order = "cda",
                                    .ncpus = 2};
    static const uint8_t want[CMOS_SIZE] = {
        [0x14] = 0x06,                /* FPU, PS/2 mouse */
        [0x15] = 0x80, [0x16] = 0x02, /* 640 KiB */
        [0x17] = 0xff, [0x18] = 0xff, /* 1023 MiB in KiB, capped */
        [0x30] = 0xff, [0x31] = 0xff,
        [0x34] = 0x00, [0x35] = 0x3f, /* (1024 - 16) MiB / 64 KiB = 0x3f00 */
        [0x38] = 0x10,                /* third: floppy; signature check on */
        [0x3d] = 0x32,                /* first: disk, second: CD-ROM */
        [0x5f] = 0x01,                /* 2 CPUs */
    };

    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, &cfg), 0);
    expect_nvram(fx, with_century(want));
    /* No checksum kept, as QEMU. */
    assert_int_equal(cmos_get(&fx->cmos, CMOS_CHECKSUM_HI), 0);
    assert_int_equal(cmos_get(&fx->cmos, CMOS_CHECKSUM_LO), 0);
}

static void test_5g_guest(void **state)
{
    struct fixture *fx = *state;
    /* Xen's split for 5 GiB: RAM up to the 0xF0000000 hole, the rest above
     * 4 GiB. */
    const struct cmos_config cfg = {.ram_below_4g = 0xf0000000ull,
                                    .ram_above_4g = 5 * GiB - 0xf0000000ull,
                                    .boot_order = "cda",
                                    .ncpus = 4};
    static const uint8_t want[CMOS_SIZE] = {
        [0x14] = 0x06,
        [0x15] = 0x80, [0x16] = 0x02,
        [0x17] = 0xff, [0x18] = 0xff,
        [0x30] = 0xff, [0x31] = 0xff,
        [0x34] = 0x00, [0x35] = 0xef, /* (3840 - 16) MiB / 64 KiB = 0xef00 */
        [0x38] = 0x10,
        [0x3d] = 0x32,
        [0x5b] = 0x00, [0x5c] = 0x50, [0x5d] = 0x00, /* 1280 MiB / 64 KiB */
        [0x5f] = 0x03,
    };

    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, &cfg), 0);
    expect_nvram(fx, with_century(want));
}

static void test_small_and_huge_memory(void **state)
{
    struct fixture *fx = *state;
    struct cmos_config cfg = {.ram_below_4g = 512 * 1024, .ncpus = 1};

    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, &cfg), 0);
    assert_int_equal(cmos_get(&fx->cmos, 0x15), 0x00); /* 512 KiB */
    assert_int_equal(cmos_get(&fx->cmos, 0x16), 0x02);
    assert_int_equal(cmos_get(&fx->cmos, 0x17), 0x00);
    assert_int_equal(cmos_get(&fx->cmos, 0x18), 0x00);
    assert_int_equal(cmos_get(&fx->cmos, 0x35), 0x00);
    assert_int_equal(cmos_get(&fx->cmos, 0x5f), 0x00);
    cmos_fini(&fx->cmos);

    cfg.ram_below_4g = 15 * MiB; /* 14 MiB extended, nothing above 16 MiB */
    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, &cfg), 0);
    assert_int_equal(cmos_get(&fx->cmos, 0x17), 0x00);
    assert_int_equal(cmos_get(&fx->cmos, 0x18), 0x38);
    assert_int_equal(cmos_get(&fx->cmos, 0x30), 0x00);
    assert_int_equal(cmos_get(&fx->cmos, 0x31), 0x38);
    assert_int_equal(cmos_get(&fx->cmos, 0x34), 0x00);
    assert_int_equal(cmos_get(&fx->cmos, 0x35), 0x00);
    cmos_fini(&fx->cmos);

    /* 0x5B-0x5D hold 24 bits without saturation, as QEMU. */
    cfg.ram_below_4g = 3 * GiB;
    cfg.ram_above_4g = 1024 * GiB + 3 * 64 * 1024;
    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, &cfg), 0);
    assert_int_equal(cmos_get(&fx->cmos, 0x5b), 0x03);
    assert_int_equal(cmos_get(&fx->cmos, 0x5c), 0x00);
    assert_int_equal(cmos_get(&fx->cmos, 0x5d), 0x00);
    assert_int_equal(cmos_get(&fx->cmos, 0x35), 0xbf); /* 0xbf00 */
}

static void test_cpu_count(void **state)
{
    struct fixture *fx = *state;
    struct cmos_config cfg = {.ram_below_4g = 1 * GiB, .ncpus = 255};

    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, &cfg), 0);
    assert_int_equal(cmos_get(&fx->cmos, CMOS_CPU_COUNT), 254);
    cmos_fini(&fx->cmos);
    cfg.ncpus = 256; /* does not fit: 0 */
    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, &cfg), 0);
    assert_int_equal(cmos_get(&fx->cmos, CMOS_CPU_COUNT), 0);
    cmos_fini(&fx->cmos);
    cfg.ncpus = 0;
    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, &cfg), -EINVAL);
    assert_null(bus_find(&fx->bus, BUS_PIO, 0x70));
}

static void test_boot_order(void **state)
{
    struct fixture *fx = *state;
    struct cmos_config cfg = {.ram_below_4g = 1 * GiB, .ncpus = 1};

    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, &cfg), 0);
    /* NULL: QEMU's PC default "cad". */
    assert_int_equal(cmos_get(&fx->cmos, 0x3d), 0x12);
    assert_int_equal(cmos_get(&fx->cmos, 0x38), 0x30);

    assert_int_equal(cmos_set_boot_order(&fx->cmos, "n"), 0);
    assert_int_equal(cmos_get(&fx->cmos, 0x3d), 0x04);
    assert_int_equal(cmos_get(&fx->cmos, 0x38), 0x00);
    assert_int_equal(cmos_set_boot_order(&fx->cmos, "dc"), 0);
    assert_int_equal(cmos_get(&fx->cmos, 0x3d), 0x23);
    assert_int_equal(cmos_get(&fx->cmos, 0x38), 0x00);
    assert_int_equal(cmos_set_boot_order(&fx->cmos, "bnd"), 0);
    assert_int_equal(cmos_get(&fx->cmos, 0x3d), 0x41);
    assert_int_equal(cmos_get(&fx->cmos, 0x38), 0x30);
    assert_int_equal(cmos_set_boot_order(&fx->cmos, ""), 0);
    assert_int_equal(cmos_get(&fx->cmos, 0x3d), 0x00);
    assert_int_equal(cmos_get(&fx->cmos, 0x38), 0x00);

    /* Errors change nothing. */
    assert_int_equal(cmos_set_boot_order(&fx->cmos, "cda"), 0);
    assert_int_equal(cmos_set_boot_order(&fx->cmos, "cdan"), -EINVAL);
    assert_int_equal(cmos_set_boot_order(&fx->cmos, "cx"), -EINVAL);
    assert_int_equal(cmos_set_boot_order(&fx->cmos, "C"), -EINVAL);
    assert_int_equal(cmos_get(&fx->cmos, 0x3d), 0x32);
    assert_int_equal(cmos_get(&fx->cmos, 0x38), 0x10);
    cmos_fini(&fx->cmos);

    cfg.boot_order = "z";
    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, &cfg), -EINVAL);
    assert_null(bus_find(&fx->bus, BUS_PIO, 0x71));
}

static void test_index_port(void **state)
{
    struct fixture *fx = *state;
    const struct cmos_config cfg = {.ram_below_4g = 1 * GiB, .ncpus = 1};

    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, &cfg), 0);
    /* NMI bit set: 0x8E selects 0x0E. */
    bus_write(&fx->bus, BUS_PIO, 0x70, 0x8e, 1);
    bus_write(&fx->bus, BUS_PIO, 0x71, 0x5a, 1);
    assert_int_equal(cmos_get(&fx->cmos, 0x0e), 0x5a);
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0x71, 1), 0x5a);
    assert_int_equal(guest_read(fx, 0x0e), 0x5a);
    /* 0xFF selects 0x7F, the last byte. */
    guest_write(fx, 0xff, 0xa5);
    assert_int_equal(cmos_get(&fx->cmos, 0x7f), 0xa5);
    assert_int_equal(guest_read(fx, 0x7f), 0xa5);

    /* The index register reads 0xff; the latched index stays. */
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0x70, 1), 0xff);
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0x71, 1), 0xa5);

    /* Repeated data accesses hit the same byte (no auto-increment). */
    bus_write(&fx->bus, BUS_PIO, 0x70, 0x40, 1);
    bus_write(&fx->bus, BUS_PIO, 0x71, 0x11, 1);
    bus_write(&fx->bus, BUS_PIO, 0x71, 0x22, 1);
    assert_int_equal(cmos_get(&fx->cmos, 0x40), 0x22);
    assert_int_equal(cmos_get(&fx->cmos, 0x41), 0x00);

    /* A word write to 0x70 is index then data, as two byte cycles. */
    bus_write(&fx->bus, BUS_PIO, 0x70, 0x7750, 2);
    assert_int_equal(cmos_get(&fx->cmos, 0x50), 0x77);
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0x70, 2), 0x77ff);

    /* hvmloader-style rewrite of a memory size byte. */
    guest_write(fx, 0x34, 0x12);
    assert_int_equal(guest_read(fx, 0x34), 0x12);

    /* Host-side accessors ignore the clock range. */
    assert_int_equal(cmos_get(&fx->cmos, 0x0d), 0xff);
    assert_int_equal(cmos_get(&fx->cmos, 0x80), 0xff);
    cmos_set(&fx->cmos, 0x05, 0x12);
    cmos_set(&fx->cmos, 0x200, 0x12);
    cmos_set(&fx->cmos, 0x12, 0xf0);
    assert_int_equal(guest_read(fx, 0x12), 0xf0);
}

static uint8_t rtc_read(void *opaque, unsigned index)
{
    struct fixture *fx = opaque;

    fx->rtc_reads++;
    fx->rtc_last_index = index;
    return (uint8_t)(0x40 + index);
}

static void rtc_write(void *opaque, unsigned index, uint8_t value)
{
    struct fixture *fx = opaque;

    fx->rtc_writes++;
    fx->rtc_last_index = index;
    fx->rtc_last_value = value;
}

static const struct cmos_rtc_ops rtc_ops = {.read = rtc_read,
                                            .write = rtc_write};

static void test_clock_registers(void **state)
{
    struct fixture *fx = *state;
    const struct cmos_config cfg = {.ram_below_4g = 1 * GiB, .ncpus = 1};

    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, &cfg), 0);
    /* No clock plugged in: reads 0xff, writes dropped. */
    assert_int_equal(guest_read(fx, 0x00), 0xff);
    assert_int_equal(guest_read(fx, 0x8d), 0xff);
    guest_write(fx, 0x0b, 0x02);
    assert_int_equal(guest_read(fx, 0x0b), 0xff);

    cmos_set_rtc(&fx->cmos, &rtc_ops, fx);
    assert_int_equal(guest_read(fx, 0x8a), 0x4a); /* register A, NMI off */
    assert_int_equal(fx->rtc_reads, 1);
    assert_int_equal(fx->rtc_last_index, 0x0a);
    guest_write(fx, 0x0b, 0x06);
    assert_int_equal(fx->rtc_writes, 1);
    assert_int_equal(fx->rtc_last_index, 0x0b);
    assert_int_equal(fx->rtc_last_value, 0x06);
    /* NVRAM bytes never reach the clock. */
    guest_write(fx, 0x0e, 0x01);
    assert_int_equal(guest_read(fx, 0x0e), 0x01);
    assert_int_equal(fx->rtc_reads, 1);
    assert_int_equal(fx->rtc_writes, 1);
    /* Host-side reads never reach it either (reading C has side effects). */
    assert_int_equal(cmos_get(&fx->cmos, 0x0c), 0xff);
    assert_int_equal(fx->rtc_reads, 1);
}

static void test_reset(void **state)
{
    struct fixture *fx = *state;
    const struct cmos_config cfg = {.ram_below_4g = 1 * GiB,
                                    .boot_order = "cda",
                                    .ncpus = 2};

    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, &cfg), 0);
    guest_write(fx, CMOS_SHUTDOWN_STATUS, 0x0a); /* "jump via 40:67" */
    guest_write(fx, 0x70, 0x99);
    guest_write(fx, 0x34, 0x12);
    cmos_reset(&fx->cmos);
    /* NVRAM kept, except the shutdown status byte. */
    assert_int_equal(cmos_get(&fx->cmos, CMOS_SHUTDOWN_STATUS), 0x00);
    assert_int_equal(cmos_get(&fx->cmos, 0x70), 0x99);
    assert_int_equal(cmos_get(&fx->cmos, 0x34), 0x12);
    assert_int_equal(cmos_get(&fx->cmos, 0x3d), 0x32);
    assert_int_equal(cmos_get(&fx->cmos, 0x15), 0x80);
    /* The latched index survives too. */
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0x71, 1), 0x12);

    /* The S3 resume marker survives a reset. */
    guest_write(fx, CMOS_SHUTDOWN_STATUS, 0xfe);
    cmos_reset(&fx->cmos);
    assert_int_equal(cmos_get(&fx->cmos, CMOS_SHUTDOWN_STATUS), 0xfe);
}

static void test_bad_arguments(void **state)
{
    struct fixture *fx = *state;
    const struct cmos_config cfg = {.ram_below_4g = 1 * GiB, .ncpus = 1};
    struct cmos other;

    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, NULL), -EINVAL);
    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, &cfg), 0);
    /* The ports are taken. */
    assert_int_equal(cmos_init(&other, &fx->bus, &cfg), -EEXIST);
    assert_ptr_equal(bus_find(&fx->bus, BUS_PIO, 0x70), &fx->cmos.region);
}

static void touch_nvram(struct fixture *fx)
{
    guest_write(fx, 0x8e, 0x5a);
    guest_read(fx, 0x3d);
}

static void test_trace_accesses(void **state)
{
    struct fixture *fx = *state;
    const struct cmos_config cfg = {.ram_below_4g = 1 * GiB,
                                    .boot_order = "cda",
                                    .ncpus = 1};
    struct log_capture cap;
    const char *out;

    assert_int_equal(cmos_init(&fx->cmos, &fx->bus, &cfg), 0);
    log_capture_begin(&cap, "cmos");
    touch_nvram(fx);
    out = log_capture_end(&cap);
    assert_non_null(strstr(out, "write [0x0e] = 0x5a"));
    assert_non_null(strstr(out, "read [0x3d] = 0x32"));
    log_capture_free(&cap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_1g_guest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_5g_guest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_and_huge_memory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cpu_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_boot_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_accesses, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
