/* Unit tests for the dispatcher (ioreq/dispatch.c) over a local RAM: every
 * class of bad ioreq is refused without side effects, and valid requests
 * (single, rep ins/outs/movs/stos in both directions, PCI config, hooks)
 * reach the right device addresses and guest memory in the right order. */
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
#include "../../hw/pci.h"
#include "../../ioreq/dispatch.h"
#include "../../ioreq/ram.h"
#include "../../lib/log.h"

#define RAM_SIZE 0x10000u
#define PORT_BASE 0x100u
#define PORT_LEN 8u
#define MMIO_BASE 0xfe000000ull
#define MMIO_LEN 0x1000u
#define TEST_DEVFN PCI_DEVFN(3, 0)

#define MAX_LOG (IOREQ_MAX_COUNT + 16)

struct access {
    bool write;
    uint64_t off;
    unsigned size;
    uint64_t value;
};

/* A device that logs every access. Port reads return a running sequence
 * number (so the order elements arrive in can be checked); MMIO is memory
 * backed. */
struct test_dev {
    struct bus_region region;
    struct access *log;
    unsigned n;
    uint64_t next_value;
    uint8_t mem[MMIO_LEN];
};

struct fixture {
    struct bus bus;
    struct local_ram ram;
    uint8_t *ram_copy;
    struct dispatcher d;
    struct test_dev port, mmio;
    struct pci_bus pci;
    struct pci_function fn, fn_bus1;
    unsigned invalidations, timeoffsets;
    int64_t last_delta;
    /* For the failing accessor. */
    struct guest_memory real_mem;
    unsigned mem_calls, fail_at;
};

static uint64_t port_read(void *opaque, uint64_t off, unsigned size)
{
    struct test_dev *t = opaque;
    uint64_t v = t->next_value++;

    assert_true(t->n < MAX_LOG);
    t->log[t->n++] = (struct access){false, off, size, v};
    return v;
}

static void port_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    struct test_dev *t = opaque;

    assert_true(t->n < MAX_LOG);
    t->log[t->n++] = (struct access){true, off, size, value};
}

static uint64_t mmio_read(void *opaque, uint64_t off, unsigned size)
{
    struct test_dev *t = opaque;
    uint64_t v = 0;

    assert_true(off + size <= MMIO_LEN);
    memcpy(&v, &t->mem[off], size);
    assert_true(t->n < MAX_LOG);
    t->log[t->n++] = (struct access){false, off, size, v};
    return v;
}

static void mmio_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    struct test_dev *t = opaque;

    assert_true(off + size <= MMIO_LEN);
    memcpy(&t->mem[off], &value, size);
    assert_true(t->n < MAX_LOG);
    t->log[t->n++] = (struct access){true, off, size, value};
}

static const struct bus_region_ops port_ops = {
    .read = port_read, .write = port_write, .max_access = 4};
static const struct bus_region_ops mmio_ops = {
    .read = mmio_read, .write = mmio_write};

static void hook_invalidate(void *opaque)
{
    struct fixture *fx = opaque;

    fx->invalidations++;
}

static void hook_timeoffset(void *opaque, int64_t delta)
{
    struct fixture *fx = opaque;

    fx->timeoffsets++;
    fx->last_delta = delta;
}

static FILE *devnull;

static int group_setup(void **state)
{
    devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    log_set_stream(devnull);
    return 0;
}

static int group_teardown(void **state)
{
    log_set_stream(NULL);
    fclose(devnull);
    return 0;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct guest_memory mem;
    struct dispatch_hooks hooks = {hook_invalidate, hook_timeoffset, fx};

    assert_non_null(fx);
    bus_init(&fx->bus);
    assert_int_equal(local_ram_init(&fx->ram, RAM_SIZE), 0);
    /* A recognisable pattern so "nothing was written" can be checked. */
    for (unsigned i = 0; i < RAM_SIZE; i++)
        fx->ram.base[i] = (uint8_t)(i * 7 + 3);
    fx->ram_copy = malloc(RAM_SIZE);
    assert_non_null(fx->ram_copy);
    memcpy(fx->ram_copy, fx->ram.base, RAM_SIZE);

    fx->port.log = calloc(MAX_LOG, sizeof(struct access));
    fx->mmio.log = calloc(MAX_LOG, sizeof(struct access));
    assert_non_null(fx->port.log);
    assert_non_null(fx->mmio.log);
    fx->port.next_value = 0x11;
    for (unsigned i = 0; i < MMIO_LEN; i++)
        fx->mmio.mem[i] = (uint8_t)(0xa0 + i);
    bus_region_init(&fx->port.region, "test-port", PORT_LEN, &port_ops,
                    &fx->port);
    bus_region_init(&fx->mmio.region, "test-mmio", MMIO_LEN, &mmio_ops,
                    &fx->mmio);
    assert_int_equal(bus_map(&fx->bus, BUS_PIO, &fx->port.region, PORT_BASE), 0);
    assert_int_equal(bus_map(&fx->bus, BUS_MMIO, &fx->mmio.region, MMIO_BASE), 0);

    pci_bus_init(&fx->pci, &fx->bus);
    pci_function_init(&fx->fn, "test-fn", 0x8086, 0x7010, 0x010180, 0, NULL,
                      NULL);
    assert_int_equal(pci_register_function(&fx->pci, &fx->fn, TEST_DEVFN), 0);

    local_ram_accessor(&fx->ram, &mem);
    fx->real_mem = mem;
    dispatcher_init(&fx->d, &fx->bus, &mem, &hooks);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    pci_unregister_function(&fx->fn);
    bus_fini(&fx->bus);
    local_ram_fini(&fx->ram);
    free(fx->ram_copy);
    free(fx->port.log);
    free(fx->mmio.log);
    free(fx);
    return 0;
}

static ioreq_t make_req(uint8_t type, uint8_t dir, uint64_t addr,
                        uint32_t size, uint32_t count, uint64_t data,
                        bool data_is_ptr, bool df)
{
    ioreq_t r;

    memset(&r, 0, sizeof(r));
    r.type = type;
    r.dir = dir;
    r.addr = addr;
    r.size = size;
    r.count = count;
    r.data = data;
    r.data_is_ptr = data_is_ptr;
    r.df = df;
    r.state = STATE_IOREQ_READY;
    return r;
}

static uint64_t all_ones(uint32_t size)
{
    return size == 1 || size == 2 || size == 4 ? (1ull << (size * 8)) - 1
                                               : ~0ull;
}

/* Dispatches req, which must be refused as class e with no side effects. */
static void expect_refused(struct fixture *fx, ioreq_t req,
                           enum dispatch_error e)
{
    uint64_t before[DISPATCH_NR_ERRORS], handled = fx->d.handled;
    uint64_t data = req.data;
    unsigned port_n = fx->port.n, mmio_n = fx->mmio.n;
    uint8_t header[64];

    memcpy(before, fx->d.errors, sizeof(before));
    memcpy(header, fx->fn.config, sizeof(header));
    assert_int_equal(dispatch_ioreq(&fx->d, &req), -EINVAL);
    for (int i = 0; i < DISPATCH_NR_ERRORS; i++)
        assert_int_equal(fx->d.errors[i], before[i] + (i == (int)e));
    assert_int_equal(fx->d.handled, handled);
    assert_int_equal(fx->port.n, port_n);
    assert_int_equal(fx->mmio.n, mmio_n);
    assert_int_equal(fx->invalidations, 0);
    assert_int_equal(fx->timeoffsets, 0);
    assert_memory_equal(fx->ram.base, fx->ram_copy, RAM_SIZE);
    assert_memory_equal(fx->fn.config, header, sizeof(header));
    if (req.dir == IOREQ_READ && !req.data_is_ptr)
        assert_int_equal(req.data, all_ones(req.size));
    else
        assert_int_equal(req.data, data);
}

/* Both directions, with and without a pointer where that makes sense. */
static void expect_refused_rw(struct fixture *fx, ioreq_t req,
                              enum dispatch_error e)
{
    req.dir = IOREQ_READ;
    req.data = 0x5a5a5a5a5a5a5a5aull;
    expect_refused(fx, req, e);
    req.dir = IOREQ_WRITE;
    req.data = 0x1234;
    expect_refused(fx, req, e);
}

/* --- refused requests ---------------------------------------------------- */

static void test_bad_type(void **state)
{
    struct fixture *fx = *state;
    const uint8_t types[] = {3, 4, 5, 6, 9, 255};

    for (size_t i = 0; i < sizeof(types); i++) {
        expect_refused_rw(fx, make_req(types[i], 0, PORT_BASE, 4, 1, 0, false,
                                       false),
                          DISPATCH_BAD_TYPE);
        expect_refused_rw(fx, make_req(types[i], 0, 0x100, 1, 4, 0x100, true,
                                       false),
                          DISPATCH_BAD_TYPE);
    }
    assert_int_equal(fx->d.errors[DISPATCH_BAD_TYPE], 24);
    assert_int_equal(dispatch_error_total(&fx->d), 24);
}

static void test_bad_size(void **state)
{
    struct fixture *fx = *state;
    const uint32_t sizes[] = {0, 3, 5, 16, 6, 7, 9, 0xffffffffu};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        expect_refused_rw(fx, make_req(IOREQ_TYPE_PIO, 0, PORT_BASE, sizes[i],
                                       1, 0, false, false),
                          DISPATCH_BAD_SIZE);
        expect_refused_rw(fx, make_req(IOREQ_TYPE_COPY, 0, MMIO_BASE,
                                       sizes[i], 1, 0, false, false),
                          DISPATCH_BAD_SIZE);
        expect_refused_rw(fx, make_req(IOREQ_TYPE_PCI_CONFIG, 0, 0, sizes[i],
                                       1, 0, false, false),
                          DISPATCH_BAD_SIZE);
    }
    /* 8 is valid for MMIO only. */
    expect_refused_rw(fx, make_req(IOREQ_TYPE_PIO, 0, PORT_BASE, 8, 1, 0,
                                   false, false),
                      DISPATCH_BAD_SIZE);
    expect_refused_rw(fx, make_req(IOREQ_TYPE_PCI_CONFIG, 0,
                                   ((uint64_t)TEST_DEVFN << 32), 8, 1, 0,
                                   false, false),
                      DISPATCH_BAD_SIZE);
    expect_refused_rw(fx, make_req(IOREQ_TYPE_PIO, 0, PORT_BASE, 8, 2, 0x100,
                                   true, false),
                      DISPATCH_BAD_SIZE);
    assert_int_equal(fx->d.errors[DISPATCH_BAD_SIZE],
                     2 * (3 * sizeof(sizes) / sizeof(sizes[0]) + 3));
}

static void test_bad_count(void **state)
{
    struct fixture *fx = *state;

    expect_refused_rw(fx, make_req(IOREQ_TYPE_PIO, 0, PORT_BASE, 1, 0, 0,
                                   false, false),
                      DISPATCH_BAD_COUNT);
    expect_refused_rw(fx, make_req(IOREQ_TYPE_PIO, 0, PORT_BASE, 1, 0, 0x100,
                                   true, false),
                      DISPATCH_BAD_COUNT);
    expect_refused_rw(fx, make_req(IOREQ_TYPE_COPY, 0, MMIO_BASE, 4, 0, 0x100,
                                   true, false),
                      DISPATCH_BAD_COUNT);
    expect_refused_rw(fx, make_req(IOREQ_TYPE_PIO, 0, PORT_BASE, 1,
                                   IOREQ_MAX_COUNT + 1, 0x100, true, false),
                      DISPATCH_BAD_COUNT);
    expect_refused_rw(fx, make_req(IOREQ_TYPE_COPY, 0, MMIO_BASE, 1,
                                   IOREQ_MAX_COUNT + 1, 0, false, false),
                      DISPATCH_BAD_COUNT);
    expect_refused_rw(fx, make_req(IOREQ_TYPE_COPY, 0, MMIO_BASE, 8,
                                   0xffffffffu, 0x100, true, true),
                      DISPATCH_BAD_COUNT);
    expect_refused_rw(fx, make_req(IOREQ_TYPE_PCI_CONFIG, 0,
                                   ((uint64_t)TEST_DEVFN << 32), 4, 0, 0,
                                   false, false),
                      DISPATCH_BAD_COUNT);
    assert_int_equal(fx->d.errors[DISPATCH_BAD_COUNT], 14);
}

static void test_bad_port(void **state)
{
    struct fixture *fx = *state;

    expect_refused_rw(fx, make_req(IOREQ_TYPE_PIO, 0, 0x10000, 1, 1, 0, false,
                                   false),
                      DISPATCH_BAD_PORT);
    expect_refused_rw(fx, make_req(IOREQ_TYPE_PIO, 0, 0xffff, 2, 1, 0, false,
                                   false),
                      DISPATCH_BAD_PORT);
    expect_refused_rw(fx, make_req(IOREQ_TYPE_PIO, 0, 0xfffd, 4, 1, 0, false,
                                   false),
                      DISPATCH_BAD_PORT);
    expect_refused_rw(fx, make_req(IOREQ_TYPE_PIO, 0, 0xffffffffffffffffull, 1,
                                   1, 0, false, false),
                      DISPATCH_BAD_PORT);
    /* Port + PORT_BASE aliasing modulo 2^16 must not reach the device. */
    expect_refused_rw(fx, make_req(IOREQ_TYPE_PIO, 0, 0x10000 + PORT_BASE, 1,
                                   1, 0x100, true, false),
                      DISPATCH_BAD_PORT);
    assert_int_equal(fx->d.errors[DISPATCH_BAD_PORT], 10);
}

static void test_last_ports_valid(void **state)
{
    struct fixture *fx = *state;
    ioreq_t r = make_req(IOREQ_TYPE_PIO, IOREQ_READ, 0xffff, 1, 1, 0, false,
                         false);

    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, 0xff);
    r = make_req(IOREQ_TYPE_PIO, IOREQ_READ, 0xfffc, 4, 1, 0, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, 0xffffffffu);
    assert_int_equal(dispatch_error_total(&fx->d), 0);
    assert_int_equal(fx->bus.unassigned_reads, 2);
}

static void test_mmio_wrap(void **state)
{
    struct fixture *fx = *state;

    /* Forwards: a single element hanging over the top... */
    expect_refused_rw(fx, make_req(IOREQ_TYPE_COPY, 0, 0xfffffffffffffffeull,
                                   4, 1, 0, false, false),
                      DISPATCH_BAD_ADDRESS);
    /* ...or the last of several. */
    expect_refused_rw(fx, make_req(IOREQ_TYPE_COPY, 0, 0xfffffffffffffff0ull,
                                   8, 3, 0, false, false),
                      DISPATCH_BAD_ADDRESS);
    expect_refused_rw(fx, make_req(IOREQ_TYPE_COPY, 0, 0xfffffffffffffff0ull,
                                   8, 3, 0x100, true, false),
                      DISPATCH_BAD_ADDRESS);
    /* Backwards below zero. */
    expect_refused_rw(fx, make_req(IOREQ_TYPE_COPY, 0, 4, 4, 3, 0, false,
                                   true),
                      DISPATCH_BAD_ADDRESS);
    expect_refused_rw(fx, make_req(IOREQ_TYPE_COPY, 0, 0, 1, 2, 0x100, true,
                                   true),
                      DISPATCH_BAD_ADDRESS);
    /* Backwards, but the first element already hangs over the top. */
    expect_refused_rw(fx, make_req(IOREQ_TYPE_COPY, 0, 0xfffffffffffffffcull,
                                   8, 2, 0, false, true),
                      DISPATCH_BAD_ADDRESS);
    assert_int_equal(fx->d.errors[DISPATCH_BAD_ADDRESS], 12);
}

static void test_mmio_edges_valid(void **state)
{
    struct fixture *fx = *state;
    ioreq_t r;

    /* Exactly reaching the top, and exactly reaching zero backwards. */
    r = make_req(IOREQ_TYPE_COPY, IOREQ_READ, 0xfffffffffffffff0ull, 8, 2, 0,
                 false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, ~0ull);
    r = make_req(IOREQ_TYPE_COPY, IOREQ_READ, 8, 4, 3, 0, false, true);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, 0xffffffffu);
    assert_int_equal(dispatch_error_total(&fx->d), 0);
    assert_int_equal(fx->bus.unassigned_reads, 5);
}

static void test_bad_pci_register(void **state)
{
    struct fixture *fx = *state;
    uint64_t sbdf = (uint64_t)TEST_DEVFN << 32;

    expect_refused_rw(fx, make_req(IOREQ_TYPE_PCI_CONFIG, 0, sbdf | 0x1000, 1,
                                   1, 0, false, false),
                      DISPATCH_BAD_ADDRESS);
    expect_refused_rw(fx, make_req(IOREQ_TYPE_PCI_CONFIG, 0, sbdf | 0xffe, 4,
                                   1, 0, false, false),
                      DISPATCH_BAD_ADDRESS);
    /* Register bits above 12 must not alias back onto a real register. */
    expect_refused_rw(fx, make_req(IOREQ_TYPE_PCI_CONFIG, 0,
                                   sbdf | 0x10000000 | PCI_INTERRUPT_LINE, 1,
                                   1, 0, false, false),
                      DISPATCH_BAD_ADDRESS);
    assert_int_equal(fx->d.errors[DISPATCH_BAD_ADDRESS], 6);
}

/* --- the guest buffer of data_is_ptr requests ---------------------------- */

static void check_pointer(struct fixture *fx, uint8_t type, uint64_t addr,
                          uint32_t size, uint32_t count, bool df,
                          uint64_t data, bool ok)
{
    for (int dir = 0; dir < 2; dir++) {
        ioreq_t r = make_req(type, (uint8_t)dir, addr, size, count, data, true,
                             df);

        if (!ok) {
            expect_refused(fx, r, DISPATCH_BAD_POINTER);
            continue;
        }
        assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
        /* Restore RAM for the next refusal check; keep the logs short. */
        memcpy(fx->ram.base, fx->ram_copy, RAM_SIZE);
        fx->port.n = fx->mmio.n = 0;
    }
}

static void test_pointer_bounds(void **state)
{
    struct fixture *fx = *state;
    const uint8_t types[] = {IOREQ_TYPE_PIO, IOREQ_TYPE_COPY};

    for (size_t t = 0; t < 2; t++) {
        uint8_t ty = types[t];
        uint64_t a = ty == IOREQ_TYPE_PIO ? PORT_BASE : MMIO_BASE + 0x800;
        const uint32_t n = 4, sz = 2, span = n * sz;

        /* Comfortably inside. */
        check_pointer(fx, ty, a, sz, n, false, 0x1000, true);
        check_pointer(fx, ty, a, sz, n, true, 0x1000, true);
        /* Forwards: first byte 0; last byte RAM_SIZE - 1; one past it. */
        check_pointer(fx, ty, a, sz, n, false, 0, true);
        check_pointer(fx, ty, a, sz, n, false, RAM_SIZE - span, true);
        check_pointer(fx, ty, a, sz, n, false, RAM_SIZE - span + 1, false);
        check_pointer(fx, ty, a, sz, n, false, RAM_SIZE, false);
        /* Backwards: the lowest element at 0; one below 0 (underflow). */
        check_pointer(fx, ty, a, sz, n, true, span - sz, true);
        check_pointer(fx, ty, a, sz, n, true, span - sz - 1, false);
        check_pointer(fx, ty, a, sz, n, true, 0, false);
        /* Backwards: the first element ends at the last byte; one past. */
        check_pointer(fx, ty, a, sz, n, true, RAM_SIZE - sz, true);
        check_pointer(fx, ty, a, sz, n, true, RAM_SIZE - sz + 1, false);
        /* Buffers wrapping 2^64 either way. */
        check_pointer(fx, ty, a, sz, n, false, 0xfffffffffffffffaull, false);
        check_pointer(fx, ty, a, sz, n, true, 0xffffffffffffffffull, false);
        /* The single-element case at both edges. */
        check_pointer(fx, ty, a, 4, 1, false, RAM_SIZE - 4, true);
        check_pointer(fx, ty, a, 4, 1, true, RAM_SIZE - 3, false);
        /* The biggest request the RAM can hold. */
        check_pointer(fx, ty, a, 1, IOREQ_MAX_COUNT, false,
                      RAM_SIZE - IOREQ_MAX_COUNT, true);
        check_pointer(fx, ty, a, 1, IOREQ_MAX_COUNT, true,
                      IOREQ_MAX_COUNT - 2, false);
    }
    assert_int_equal(fx->d.errors[DISPATCH_BAD_POINTER], 2 * 2 * 9);
    assert_int_equal(dispatch_error_total(&fx->d), 2 * 2 * 9);
}

static void test_pointer_without_memory(void **state)
{
    struct fixture *fx = *state;
    ioreq_t r = make_req(IOREQ_TYPE_PIO, IOREQ_READ, PORT_BASE, 1, 1, 0, true,
                         false);

    /* A dispatcher with no guest memory refuses every pointer. */
    dispatcher_init(&fx->d, &fx->bus, NULL, NULL);
    expect_refused(fx, r, DISPATCH_BAD_POINTER);
    /* Non-pointer requests still work, hooks are simply absent. */
    r = make_req(IOREQ_TYPE_PIO, IOREQ_READ, PORT_BASE, 1, 1, 0, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, 0x11);
    r = make_req(IOREQ_TYPE_INVALIDATE, IOREQ_WRITE, 0, 0, 0, 0, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    r = make_req(IOREQ_TYPE_TIMEOFFSET, IOREQ_WRITE, 0, 0, 0, 5, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(fx->invalidations, 0);
    assert_int_equal(fx->timeoffsets, 0);
    assert_int_equal(fx->d.handled, 3);
}

/* --- valid requests ------------------------------------------------------ */

static void test_single_pio(void **state)
{
    struct fixture *fx = *state;
    ioreq_t r;

    r = make_req(IOREQ_TYPE_PIO, IOREQ_READ, PORT_BASE + 2, 2, 1, 0xdead, false,
                 false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, 0x11);
    assert_int_equal(fx->port.n, 1);
    assert_int_equal(fx->port.log[0].off, 2);
    assert_int_equal(fx->port.log[0].size, 2);

    r = make_req(IOREQ_TYPE_PIO, IOREQ_WRITE, PORT_BASE + 1, 1, 1,
                 0x12345678, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    r = make_req(IOREQ_TYPE_PIO, IOREQ_WRITE, PORT_BASE + 4, 4, 1,
                 0xffffffff87654321ull, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    r = make_req(IOREQ_TYPE_PIO, IOREQ_WRITE, PORT_BASE, 2, 1, 0xabcdef, false,
                 false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(fx->port.n, 4);
    assert_true(fx->port.log[1].write);
    assert_int_equal(fx->port.log[1].off, 1);
    assert_int_equal(fx->port.log[1].value, 0x78);
    assert_int_equal(fx->port.log[2].value, 0x87654321);
    assert_int_equal(fx->port.log[3].value, 0xcdef);
    assert_int_equal(fx->d.handled, 4);
    assert_int_equal(dispatch_error_total(&fx->d), 0);
}

static void test_single_mmio(void **state)
{
    struct fixture *fx = *state;
    ioreq_t r;

    r = make_req(IOREQ_TYPE_COPY, IOREQ_READ, MMIO_BASE + 0x10, 8, 1, 0, false,
                 false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, 0xb7b6b5b4b3b2b1b0ull);
    r = make_req(IOREQ_TYPE_COPY, IOREQ_READ, MMIO_BASE + 0x21, 1, 1, 0, false,
                 false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, 0xc1);

    r = make_req(IOREQ_TYPE_COPY, IOREQ_WRITE, MMIO_BASE + 0x40, 2, 1,
                 0xdeadbeef, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(fx->mmio.log[2].value, 0xbeef);
    assert_int_equal(fx->mmio.mem[0x40], 0xef);
    assert_int_equal(fx->mmio.mem[0x41], 0xbe);
    assert_int_equal(fx->mmio.mem[0x42], 0xe2); /* untouched */
    r = make_req(IOREQ_TYPE_COPY, IOREQ_WRITE, MMIO_BASE + 0x48, 4, 1,
                 0x1122334455667788ull, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(fx->mmio.log[3].value, 0x55667788);
    assert_int_equal(fx->mmio.mem[0x4c], 0xec);
    assert_int_equal(fx->mmio.n, 4);
    assert_int_equal(fx->d.handled, 4);
}

/* rep ins: the port is read count times, results stored at data stepping
 * by size in the direction df gives. */
static void check_rep_ins(struct fixture *fx, bool df)
{
    const uint32_t n = 5, sz = 2;
    const uint64_t data = 0x2000;
    ioreq_t r = make_req(IOREQ_TYPE_PIO, IOREQ_READ, PORT_BASE + 6, sz, n, data,
                         true, df);

    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, data); /* the pointer is not overwritten */
    assert_int_equal(fx->port.n, n);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t gpa = df ? data - i * sz : data + i * sz;

        assert_false(fx->port.log[i].write);
        assert_int_equal(fx->port.log[i].off, 6);
        assert_int_equal(fx->port.log[i].size, sz);
        assert_int_equal(fx->ram.base[gpa], 0x11 + i);
        assert_int_equal(fx->ram.base[gpa + 1], 0);
    }
    /* Nothing outside the span was written. */
    {
        uint64_t lo = df ? data - (n - 1) * sz : data;
        uint64_t hi = lo + n * sz;

        assert_memory_equal(fx->ram.base, fx->ram_copy, lo);
        assert_memory_equal(fx->ram.base + hi, fx->ram_copy + hi, RAM_SIZE - hi);
    }
}

static void test_rep_ins_forward(void **state) { check_rep_ins(*state, false); }
static void test_rep_ins_backward(void **state) { check_rep_ins(*state, true); }

static void check_rep_outs(struct fixture *fx, bool df)
{
    const uint32_t n = 6, sz = 4;
    const uint64_t data = 0x3000;
    ioreq_t r = make_req(IOREQ_TYPE_PIO, IOREQ_WRITE, PORT_BASE, sz, n, data,
                         true, df);

    for (uint32_t i = 0; i < (2 * n - 1) * sz; i++)
        fx->ram.base[data - (n - 1) * sz + i] = (uint8_t)(0x40 + i);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(fx->port.n, n);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t gpa = df ? data - i * sz : data + i * sz;
        uint32_t want;

        memcpy(&want, &fx->ram.base[gpa], sz);
        assert_true(fx->port.log[i].write);
        assert_int_equal(fx->port.log[i].off, 0);
        assert_int_equal(fx->port.log[i].size, sz);
        assert_int_equal(fx->port.log[i].value, want);
    }
    /* The first element is the one at data itself. */
    assert_int_equal(fx->port.log[0].value, 0x57565554);
}

static void test_rep_outs_forward(void **state) { check_rep_outs(*state, false); }
static void test_rep_outs_backward(void **state) { check_rep_outs(*state, true); }

/* MMIO with a guest pointer (rep movs): both sides step. */
static void check_rep_movs(struct fixture *fx, uint8_t dir, bool df)
{
    const uint32_t n = 4, sz = 8;
    const uint64_t dev_off = 0x100, data = 0x4000;
    ioreq_t r = make_req(IOREQ_TYPE_COPY, dir, MMIO_BASE + dev_off, sz, n,
                         data, true, df);

    for (uint32_t i = 0; i < 0x40; i++)
        fx->ram.base[data - 0x20 + i] = (uint8_t)(0x80 + i);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(fx->mmio.n, n);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t off = df ? dev_off - i * sz : dev_off + i * sz;
        uint64_t gpa = df ? data - i * sz : data + i * sz;

        assert_int_equal(fx->mmio.log[i].write, dir == IOREQ_WRITE);
        assert_int_equal(fx->mmio.log[i].off, off);
        assert_int_equal(fx->mmio.log[i].size, sz);
        assert_memory_equal(&fx->mmio.mem[off], &fx->ram.base[gpa], sz);
    }
}

/* The spot checks pin exact bytes, so a copy in the wrong direction cannot
 * pass by comparing two equally wrong places. */
static void test_rep_movs_read_forward(void **state)
{
    struct fixture *fx = *state;

    check_rep_movs(fx, IOREQ_READ, false);
    assert_int_equal(fx->ram.base[0x4000], 0xa0);
    assert_int_equal(fx->ram.base[0x4018], 0xb8);
}

static void test_rep_movs_read_backward(void **state)
{
    struct fixture *fx = *state;

    check_rep_movs(fx, IOREQ_READ, true);
    assert_int_equal(fx->ram.base[0x3fe8], 0x88);
    assert_int_equal(fx->ram.base[0x4008], 0xa8); /* not reached */
}

static void test_rep_movs_write_forward(void **state)
{
    struct fixture *fx = *state;

    check_rep_movs(fx, IOREQ_WRITE, false);
    assert_int_equal(fx->mmio.mem[0x118], 0xb8);
}

static void test_rep_movs_write_backward(void **state)
{
    struct fixture *fx = *state;

    check_rep_movs(fx, IOREQ_WRITE, true);
    assert_int_equal(fx->mmio.mem[0xe8], 0x88);
    assert_int_equal(fx->mmio.mem[0x108], 0xa8); /* not reached */
}

static void check_rep_stos(struct fixture *fx, bool df)
{
    const uint32_t n = 3, sz = 4;
    ioreq_t r = make_req(IOREQ_TYPE_COPY, IOREQ_WRITE, MMIO_BASE + 0x200, sz,
                         n, 0xfeedfacecafef00dull, false, df);

    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(fx->mmio.n, n);
    for (uint32_t i = 0; i < n; i++) {
        assert_true(fx->mmio.log[i].write);
        assert_int_equal(fx->mmio.log[i].off, df ? 0x200 - i * sz : 0x200 + i * sz);
        assert_int_equal(fx->mmio.log[i].value, 0xcafef00d);
    }
    assert_memory_equal(fx->ram.base, fx->ram_copy, RAM_SIZE);
}

static void test_rep_stos_forward(void **state) { check_rep_stos(*state, false); }
static void test_rep_stos_backward(void **state) { check_rep_stos(*state, true); }

static void test_mmio_read_count_no_pointer(void **state)
{
    struct fixture *fx = *state;
    ioreq_t r = make_req(IOREQ_TYPE_COPY, IOREQ_READ, MMIO_BASE + 0x10, 1, 3, 0,
                         false, false);

    /* Each element is read; the last one is the answer. */
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(fx->mmio.n, 3);
    assert_int_equal(fx->mmio.log[2].off, 0x12);
    assert_int_equal(r.data, 0xb2);
}

static void test_pio_count_no_pointer(void **state)
{
    struct fixture *fx = *state;
    ioreq_t r = make_req(IOREQ_TYPE_PIO, IOREQ_WRITE, PORT_BASE + 3, 1, 100,
                         0x1a5, false, true);

    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(fx->port.n, 1);
    assert_int_equal(fx->port.log[0].off, 3);
    assert_int_equal(fx->port.log[0].value, 0xa5);
    r = make_req(IOREQ_TYPE_PIO, IOREQ_READ, PORT_BASE + 3, 1, 100, 0, false,
                 false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(fx->port.n, 2);
    assert_int_equal(r.data, 0x11);
}

static void test_pci_config(void **state)
{
    struct fixture *fx = *state;
    uint64_t sbdf = TEST_DEVFN;
    ioreq_t r;

    r = make_req(IOREQ_TYPE_PCI_CONFIG, IOREQ_READ,
                 (sbdf << 32) | PCI_VENDOR_ID, 2, 1, 0, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, 0x8086);
    r = make_req(IOREQ_TYPE_PCI_CONFIG, IOREQ_READ,
                 (sbdf << 32) | PCI_VENDOR_ID, 4, 1, 0, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, 0x70108086);
    r = make_req(IOREQ_TYPE_PCI_CONFIG, IOREQ_READ,
                 (sbdf << 32) | (PCI_CLASS_DEVICE + 1), 1, 1, 0, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, 0x01);

    /* Writes go through the function's write mask. */
    r = make_req(IOREQ_TYPE_PCI_CONFIG, IOREQ_WRITE,
                 (sbdf << 32) | PCI_INTERRUPT_LINE, 1, 1, 0x10b, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(fx->fn.config[PCI_INTERRUPT_LINE], 0x0b);
    r = make_req(IOREQ_TYPE_PCI_CONFIG, IOREQ_WRITE,
                 (sbdf << 32) | PCI_VENDOR_ID, 2, 1, 0x1234, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(pci_get_word(&fx->fn.config[PCI_VENDOR_ID]), 0x8086);

    /* The same devfn on bus 1, or on segment 1, is another function. */
    r = make_req(IOREQ_TYPE_PCI_CONFIG, IOREQ_READ,
                 ((sbdf | 0x100) << 32) | PCI_VENDOR_ID, 2, 1, 0, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, 0xffff);
    r = make_req(IOREQ_TYPE_PCI_CONFIG, IOREQ_READ,
                 ((sbdf | 0x10000) << 32) | PCI_VENDOR_ID, 4, 1, 0, false,
                 false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, 0xffffffffu);
    /* An empty devfn on bus 0. */
    r = make_req(IOREQ_TYPE_PCI_CONFIG, IOREQ_READ,
                 ((uint64_t)PCI_DEVFN(4, 0) << 32) | PCI_VENDOR_ID, 2, 1, 0,
                 false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, 0xffff);
    /* Extended registers beyond 256 bytes are valid but unimplemented. */
    r = make_req(IOREQ_TYPE_PCI_CONFIG, IOREQ_READ, (sbdf << 32) | 0xffc, 4, 1,
                 0, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(r.data, 0xffffffffu);
    assert_int_equal(dispatch_error_total(&fx->d), 0);
}

static void test_invalidate_and_timeoffset(void **state)
{
    struct fixture *fx = *state;
    ioreq_t r;

    /* These carry no address: garbage in the other fields is fine. */
    r = make_req(IOREQ_TYPE_INVALIDATE, IOREQ_WRITE, 0xffffffffffffffffull, 3,
                 0, 0, true, true);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(fx->invalidations, 1);
    assert_int_equal(fx->timeoffsets, 0);

    r = make_req(IOREQ_TYPE_TIMEOFFSET, IOREQ_WRITE, 0, 8, 1,
                 (uint64_t)(int64_t)-3600, false, false);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(fx->timeoffsets, 1);
    assert_int_equal(fx->last_delta, -3600);
    r.data = 86400;
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(fx->timeoffsets, 2);
    assert_int_equal(fx->last_delta, 86400);
    assert_int_equal(fx->invalidations, 1);
    assert_int_equal(fx->d.handled, 3);
    assert_int_equal(fx->port.n + fx->mmio.n, 0);
    assert_memory_equal(fx->ram.base, fx->ram_copy, RAM_SIZE);
}

/* --- guest memory failing part-way --------------------------------------- */

static bool flaky_contains(void *opaque, uint64_t gpa, uint64_t len)
{
    struct fixture *fx = opaque;

    return fx->real_mem.contains(fx->real_mem.opaque, gpa, len);
}

static int flaky_read(void *opaque, uint64_t gpa, void *buf, size_t len)
{
    struct fixture *fx = opaque;

    if (++fx->mem_calls == fx->fail_at)
        return -EFAULT;
    return fx->real_mem.read(fx->real_mem.opaque, gpa, buf, len);
}

static int flaky_write(void *opaque, uint64_t gpa, const void *buf, size_t len)
{
    struct fixture *fx = opaque;

    if (++fx->mem_calls == fx->fail_at)
        return -EFAULT;
    return fx->real_mem.write(fx->real_mem.opaque, gpa, buf, len);
}

static void use_flaky_memory(struct fixture *fx, unsigned fail_at)
{
    struct guest_memory mem = {flaky_contains, flaky_read, flaky_write, fx};
    struct dispatch_hooks hooks = {hook_invalidate, hook_timeoffset, fx};

    fx->mem_calls = 0;
    fx->fail_at = fail_at;
    dispatcher_init(&fx->d, &fx->bus, &mem, &hooks);
}

static void test_mem_fault_rep_ins(void **state)
{
    struct fixture *fx = *state;
    ioreq_t r = make_req(IOREQ_TYPE_PIO, IOREQ_READ, PORT_BASE, 1, 5, 0x100,
                         true, false);

    use_flaky_memory(fx, 3);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), -EFAULT);
    assert_int_equal(fx->d.errors[DISPATCH_MEM_FAULT], 1);
    assert_int_equal(dispatch_error_total(&fx->d), 1);
    assert_int_equal(fx->d.handled, 0);
    /* Three port reads, two stored, then the transfer stopped. */
    assert_int_equal(fx->port.n, 3);
    assert_int_equal(fx->ram.base[0x100], 0x11);
    assert_int_equal(fx->ram.base[0x101], 0x12);
    assert_int_equal(fx->ram.base[0x102], fx->ram_copy[0x102]);
    assert_int_equal(fx->ram.base[0x103], fx->ram_copy[0x103]);
}

static void test_mem_fault_rep_outs(void **state)
{
    struct fixture *fx = *state;
    ioreq_t r = make_req(IOREQ_TYPE_COPY, IOREQ_WRITE, MMIO_BASE + 0x100, 4, 4,
                         0x200, true, true);

    use_flaky_memory(fx, 2);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), -EFAULT);
    assert_int_equal(fx->d.errors[DISPATCH_MEM_FAULT], 1);
    /* One element went out before the second could not be read. */
    assert_int_equal(fx->mmio.n, 1);
    assert_int_equal(fx->mmio.log[0].off, 0x100);
    assert_memory_equal(&fx->mmio.mem[0x100], &fx->ram.base[0x200], 4);
    /* First element fails: nothing reaches the device. */
    use_flaky_memory(fx, 1);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), -EFAULT);
    assert_int_equal(fx->d.errors[DISPATCH_MEM_FAULT], 1);
    assert_int_equal(fx->mmio.n, 1);
    /* And with a healthy accessor the same request goes through. */
    use_flaky_memory(fx, 0);
    assert_int_equal(dispatch_ioreq(&fx->d, &r), 0);
    assert_int_equal(fx->mmio.n, 5);
    assert_int_equal(fx->mmio.log[4].off, 0xf4);
    assert_memory_equal(&fx->mmio.mem[0xf4], &fx->ram.base[0x1f4], 4);
    assert_int_equal(dispatch_error_total(&fx->d), 0);
}

static void test_error_names(void **state)
{
    assert_string_equal(dispatch_error_name(DISPATCH_BAD_TYPE), "bad type");
    assert_string_equal(dispatch_error_name(DISPATCH_BAD_POINTER),
                        "bad guest buffer");
    assert_string_equal(dispatch_error_name(DISPATCH_MEM_FAULT),
                        "guest memory fault");
    assert_string_equal(dispatch_error_name(DISPATCH_NR_ERRORS), "?");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_bad_type),
        T(test_bad_size),
        T(test_bad_count),
        T(test_bad_port),
        T(test_last_ports_valid),
        T(test_mmio_wrap),
        T(test_mmio_edges_valid),
        T(test_bad_pci_register),
        T(test_pointer_bounds),
        T(test_pointer_without_memory),
        T(test_single_pio),
        T(test_single_mmio),
        T(test_rep_ins_forward),
        T(test_rep_ins_backward),
        T(test_rep_outs_forward),
        T(test_rep_outs_backward),
        T(test_rep_movs_read_forward),
        T(test_rep_movs_read_backward),
        T(test_rep_movs_write_forward),
        T(test_rep_movs_write_backward),
        T(test_rep_stos_forward),
        T(test_rep_stos_backward),
        T(test_mmio_read_count_no_pointer),
        T(test_pio_count_no_pointer),
        T(test_pci_config),
        T(test_invalidate_and_timeoffset),
        T(test_mem_fault_rep_ins),
        T(test_mem_fault_rep_outs),
        T(test_error_names),
    };

    return cmocka_run_group_tests_name("dispatch", tests, group_setup,
                                       group_teardown);
}
