/* isa-debug-exit (hw/debug_exit.c) through the bus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../hw/bus.h"
#include "../../hw/debug_exit.h"
#include "../../lib/log.h"

struct fixture {
    struct bus bus;
    struct debug_exit dev;
    int status[8];
    unsigned calls;
    FILE *log;
};

static void on_exit_request(void *opaque, int status)
{
    struct fixture *f = opaque;

    if (f->calls < 8)
        f->status[f->calls] = status;
    f->calls++;
}

static struct fixture *fixture_new(uint16_t base, unsigned size)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->log = fopen("/dev/null", "w");
    log_set_stream(f->log);
    bus_init(&f->bus);
    assert_int_equal(debug_exit_init(&f->dev, &f->bus, base, size,
                                     on_exit_request, f),
                     0);
    return f;
}

static int setup_default(void **state)
{
    *state = fixture_new(DEBUG_EXIT_DEFAULT_IOBASE, DEBUG_EXIT_DEFAULT_IOSIZE);
    return 0;
}

static int setup_f4(void **state)
{
    *state = fixture_new(0xf4, 4);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    debug_exit_fini(&f->dev);
    assert_null(bus_find(&f->bus, BUS_PIO, f->dev.region.base));
    bus_fini(&f->bus);
    log_set_stream(NULL);
    fclose(f->log);
    free(f);
    return 0;
}

static void test_default_widths(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(f->dev.region.base, 0x501);
    assert_int_equal(f->dev.region.len, 2);
    bus_write(&f->bus, BUS_PIO, 0x501, 0x00, 1);
    bus_write(&f->bus, BUS_PIO, 0x501, 0x10, 1);
    bus_write(&f->bus, BUS_PIO, 0x501, 0x1234, 2);
    bus_write(&f->bus, BUS_PIO, 0x502, 0x7f, 1);
    assert_int_equal(f->calls, 4);
    assert_int_equal(f->status[0], 1);
    assert_int_equal(f->status[1], 0x21);
    assert_int_equal(f->status[2], 0x2469);
    assert_int_equal(f->status[3], 0xff);
    /* Reads are 0 and have no effect. */
    assert_int_equal(bus_read(&f->bus, BUS_PIO, 0x501, 2), 0);
    assert_int_equal(bus_read(&f->bus, BUS_PIO, 0x501, 1), 0);
    assert_int_equal(f->calls, 4);
    /* Wider than the region: byte by byte, low byte first. */
    bus_write(&f->bus, BUS_PIO, 0x501, 0x44332211, 4);
    assert_int_equal(f->calls, 6);
    assert_int_equal(f->status[4], 0x23);
    assert_int_equal(f->status[5], 0x45);
}

static void test_f4_dword(void **state)
{
    struct fixture *f = *state;

    bus_write(&f->bus, BUS_PIO, 0xf4, 0x10, 4);
    bus_write(&f->bus, BUS_PIO, 0xf4, 0x31, 1);
    bus_write(&f->bus, BUS_PIO, 0xf4, 0x0102, 2);
    bus_write(&f->bus, BUS_PIO, 0xf4, 0x12345678, 4);
    assert_int_equal(f->calls, 4);
    assert_int_equal(f->status[0], 0x21);
    assert_int_equal(f->status[1], 0x63);
    assert_int_equal(f->status[2], 0x0205);
    assert_int_equal(f->status[3], 0x2468acf1);
    assert_int_equal(bus_read(&f->bus, BUS_PIO, 0xf4, 4), 0);
}

static void test_init_errors(void **state)
{
    struct fixture *f = *state;
    struct debug_exit d;

    assert_int_equal(debug_exit_init(&d, &f->bus, 0x600, 3, on_exit_request,
                                     f),
                     -EINVAL);
    assert_int_equal(debug_exit_init(&d, &f->bus, 0x600, 0, on_exit_request,
                                     f),
                     -EINVAL);
    assert_int_equal(debug_exit_init(&d, &f->bus, 0x600, 1, NULL, f),
                     -EINVAL);
    assert_int_equal(debug_exit_init(&d, &f->bus, 0xfffe, 4, on_exit_request,
                                     f),
                     -EINVAL);
    assert_int_equal(debug_exit_init(&d, &f->bus, 0x500, 2, on_exit_request,
                                     f),
                     -EEXIST);
    debug_exit_fini(&d);
    assert_int_equal(debug_exit_init(&d, &f->bus, 0xfffc, 4, on_exit_request,
                                     f),
                     0);
    bus_write(&f->bus, BUS_PIO, 0xfffc, 1, 4);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->status[0], 3);
    debug_exit_fini(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_widths, setup_default,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_f4_dword, setup_f4, teardown),
        cmocka_unit_test_setup_teardown(test_init_errors, setup_default,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
