/* isa-debugcon (hw/debugcon.c) through the bus, into a file backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../hw/bus.h"
#include "../../hw/debugcon.h"
#include "../../lib/charbe.h"
#include "../../lib/log.h"
#include "../../lib/loop.h"

struct fixture {
    struct bus bus;
    struct loop *loop;
    struct charbe *be;
    struct debugcon con;
    char dir[64], path[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char spec[160];

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_debugcon.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/out", f->dir);
    snprintf(spec, sizeof(spec), "file:%s", f->path);
    assert_int_equal(loop_create(&f->loop), 0);
    assert_int_equal(charbe_open(f->loop, spec, NULL, &f->be), 0);
    bus_init(&f->bus);
    assert_int_equal(debugcon_init(&f->con, &f->bus, DEBUGCON_FIRMWARE_IOBASE,
                                   f->be),
                     0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    debugcon_fini(&f->con);
    bus_fini(&f->bus);
    charbe_close(f->be);
    loop_destroy(f->loop);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static size_t read_output(struct fixture *f, char *buf, size_t size)
{
    FILE *fp;
    size_t n;

    for (int i = 0; i < 10; i++)
        loop_run_once(f->loop, 1);
    fp = fopen(f->path, "r");
    assert_non_null(fp);
    n = fread(buf, 1, size, fp);
    fclose(fp);
    return n;
}

static void test_bytes_reach_backend(void **state)
{
    struct fixture *f = *state;
    char buf[64];
    const char *msg = "SeaBIOS\n";

    for (const char *p = msg; *p; p++)
        bus_write(&f->bus, BUS_PIO, 0x402, (uint8_t)*p, 1);
    bus_write(&f->bus, BUS_PIO, 0x402, 0x00, 1);
    bus_write(&f->bus, BUS_PIO, 0x402, 0xff, 1);
    /* Word and dword writes: only the low byte is the port's. */
    bus_write(&f->bus, BUS_PIO, 0x402, 0x4142, 2);
    bus_write(&f->bus, BUS_PIO, 0x402, 0x44434241, 4);
    assert_int_equal(read_output(f, buf, sizeof(buf)), 12);
    assert_memory_equal(buf, "SeaBIOS\n\0\xff" "BA", 12);
    assert_int_equal(f->con.bytes, 12);
}

static void test_readback(void **state)
{
    struct fixture *f = *state;
    char buf[8];

    assert_int_equal(bus_read(&f->bus, BUS_PIO, 0x402, 1), 0xe9);
    /* The next port is nobody's. */
    assert_int_equal(bus_read(&f->bus, BUS_PIO, 0x402, 2), 0xffe9);
    assert_int_equal(read_output(f, buf, sizeof(buf)), 0);
    f->con.readback = 0x5a;
    assert_int_equal(bus_read(&f->bus, BUS_PIO, 0x402, 1), 0x5a);
}

static void test_no_backend_and_errors(void **state)
{
    struct fixture *f = *state;
    struct debugcon other;
    FILE *logs = fopen("/dev/null", "w");

    log_set_stream(logs);
    assert_int_equal(debugcon_init(&other, NULL, 0xe9, NULL), -EINVAL);
    assert_int_equal(debugcon_init(&other, &f->bus, 0x402, NULL), -EEXIST);
    assert_int_equal(debugcon_init(&other, &f->bus, 0xe9, NULL), 0);
    for (unsigned i = 0; i < 100000; i++)
        bus_write(&f->bus, BUS_PIO, 0xe9, i, 1 << (i % 3));
    assert_int_equal(bus_read(&f->bus, BUS_PIO, 0xe9, 1), 0xe9);
    debugcon_fini(&other);
    assert_null(bus_find(&f->bus, BUS_PIO, 0xe9));
    log_set_stream(NULL);
    fclose(logs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bytes_reach_backend, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_readback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_backend_and_errors, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
