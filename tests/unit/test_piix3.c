/* PIIX3 ISA bridge: identity (QEMU 7.x hw/isa/piix3.c), write masks, PIRQ
 * mirroring to the irq sink, reset control at 0xCF9, port 0x92. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../hw/bus.h"
#include "../../lib/log.h"
#include "log_capture.h"
#include "../../hw/irq.h"
#include "../../hw/pci.h"
#include "../../hw/piix3.h"
#include "../../hw/piix_ide.h"

#define MAX_CALLS 32

struct route_call {
    unsigned link, irq;
};

struct fixture {
    struct bus bus;
    struct pci_bus pci;
    struct pci_host host;
    struct piix3 isa;
    struct piix_ide ide;
    struct irq_sink sink;
    struct route_call routes[MAX_CALLS];
    unsigned nroutes;
    unsigned resets;
    const char *last_reason;
    bool a20_calls[MAX_CALLS];
    unsigned na20;
};

/* 00:01.0 after power-on, with the IDE function present at 00:01.1. */
static const uint8_t piix3_power_on[256] = {
    [0x00] = 0x86, [0x01] = 0x80, [0x02] = 0x00, [0x03] = 0x70, /* 8086:7000 */
    [0x06] = 0x00, [0x07] = 0x02,                               /* DEVSEL */
    [0x0a] = 0x01, [0x0b] = 0x06,                               /* 0x0601 */
    [0x0e] = 0x80,                                              /* multi-fn */
    [0x2c] = 0xf4, [0x2d] = 0x1a, [0x2e] = 0x00, [0x2f] = 0x11, /* 1af4:1100 */
    [0x4c] = 0x4d,                                              /* IORT */
    [0x4e] = 0x03, [0x4f] = 0x00,                               /* XBCS */
    [0x60] = 0x80, [0x61] = 0x80, [0x62] = 0x80, [0x63] = 0x80, /* PIRQRC */
    [0x69] = 0x02,                                              /* TOM */
    [0x70] = 0x80,                                              /* MBIRQ0 */
    [0x76] = 0x0c, [0x77] = 0x0c,                               /* MBDMA */
    [0x78] = 0x02, [0x79] = 0x00,                               /* PCSC */
    [0xa0] = 0x08,                                              /* SMICNTL */
    [0xa8] = 0x0f,                                              /* FTMR */
};

/* Every byte the guest can change. */
static const uint8_t piix3_writable[] = {
    0x4c, 0x4e, 0x4f, 0x60, 0x61, 0x62, 0x63, 0x69, 0x6a, 0x6b, 0x70,
    0x76, 0x77, 0x78, 0x79, 0x80, 0x82, 0xa0, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xaa, 0xab, 0xac, 0xae,
};

static void record_route(void *opaque, unsigned link, unsigned irq)
{
    struct fixture *fx = opaque;

    assert_true(fx->nroutes < MAX_CALLS);
    fx->routes[fx->nroutes++] = (struct route_call){link, irq};
}

static const struct irq_sink_ops sink_ops = {.pci_link_route = record_route};

static void record_reset(void *opaque, const char *reason)
{
    struct fixture *fx = opaque;

    fx->resets++;
    fx->last_reason = reason;
}

static void record_a20(void *opaque, bool enabled)
{
    struct fixture *fx = opaque;

    assert_true(fx->na20 < MAX_CALLS);
    fx->a20_calls[fx->na20++] = enabled;
}

static struct piix3_ops fixture_ops(struct fixture *fx)
{
    return (struct piix3_ops){.request_reset = record_reset,
                              .a20_changed = record_a20,
                              .opaque = fx};
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct piix3_ops ops = fixture_ops(fx);

    assert_non_null(fx);
    bus_init(&fx->bus);
    pci_bus_init(&fx->pci, &fx->bus);
    assert_int_equal(pci_host_init(&fx->host, &fx->bus), 0);
    fx->sink = (struct irq_sink){.ops = &sink_ops, .opaque = fx};
    assert_int_equal(piix3_init(&fx->isa, &fx->pci, &fx->host, &fx->bus,
                                &fx->sink, &ops), 0);
    assert_int_equal(piix_ide_init(&fx->ide, &fx->pci), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    piix_ide_fini(&fx->ide);
    piix3_fini(&fx->isa);
    pci_host_fini(&fx->host);
    bus_fini(&fx->bus);
    free(fx);
    return 0;
}

static uint32_t cfg_read(struct fixture *fx, unsigned reg, unsigned size)
{
    return (uint32_t)bus_read(&fx->bus, BUS_PCI_CFG,
                              BUS_PCI_CFG_ADDR(PIIX3_DEVFN, reg), size);
}

static void cfg_write(struct fixture *fx, unsigned reg, uint32_t value,
                      unsigned size)
{
    bus_write(&fx->bus, BUS_PCI_CFG, BUS_PCI_CFG_ADDR(PIIX3_DEVFN, reg), value,
              size);
}

static void expect_config(struct fixture *fx, const uint8_t *want)
{
    for (unsigned reg = 0; reg < 256; reg += 4) {
        uint32_t v = cfg_read(fx, reg, 4);

        for (unsigned i = 0; i < 4; i++) {
            uint8_t got = (uint8_t)(v >> (8 * i));

            if (got != want[reg + i])
                fail_msg("config byte 0x%02x: got 0x%02x, want 0x%02x",
                         reg + i, got, want[reg + i]);
        }
    }
}

static void expect_routes(struct fixture *fx, const struct route_call *want,
                          unsigned n)
{
    if (fx->nroutes != n)
        fail_msg("%u route calls, want %u", fx->nroutes, n);
    for (unsigned i = 0; i < n; i++)
        if (fx->routes[i].link != want[i].link ||
            fx->routes[i].irq != want[i].irq)
            fail_msg("route call %u: (%u, %u), want (%u, %u)", i,
                     fx->routes[i].link, fx->routes[i].irq, want[i].link,
                     want[i].irq);
    fx->nroutes = 0;
}

static void test_power_on_dump(void **state)
{
    struct fixture *fx = *state;

    expect_config(fx, piix3_power_on);
    assert_false(fx->isa.fn.hotpluggable);
    assert_ptr_equal(pci_find_function(&fx->pci, PCI_DEVFN(1, 0)), &fx->isa.fn);
    /* Through 0xCF8/0xCFC as hvmloader probes devfn 0x08. */
    bus_write(&fx->bus, BUS_PIO, 0xcf8, 0x80000800, 4);
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0xcfc, 4), 0x70008086);
    bus_write(&fx->bus, BUS_PIO, 0xcf8, 0x80000808, 4);
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0xcfc, 4), 0x06010000);
    assert_int_equal(fx->nroutes, 0); /* nothing reported before a write */
}

static void test_header_single_function_without_ide(void **state)
{
    struct fixture *fx = *state;

    piix_ide_fini(&fx->ide);
    assert_int_equal(cfg_read(fx, PCI_HEADER_TYPE, 1), 0x00);
    assert_int_equal(piix_ide_init(&fx->ide, &fx->pci), 0);
    assert_int_equal(cfg_read(fx, PCI_HEADER_TYPE, 1), 0x80);
}

static void test_write_masks(void **state)
{
    struct fixture *fx = *state;
    uint8_t want[256];

    memcpy(want, piix3_power_on, sizeof(want));
    want[0x04] = 0x07;
    want[0x05] = 0x05;
    want[0x0c] = 0xff;
    want[0x3c] = 0xff;
    for (size_t i = 0; i < sizeof(piix3_writable); i++)
        want[piix3_writable[i]] = 0xff;
    for (unsigned reg = 0; reg < 256; reg++)
        cfg_write(fx, reg, 0xff, 1);
    expect_config(fx, want);
}

static void test_pirq_byte_writes(void **state)
{
    struct fixture *fx = *state;

    cfg_write(fx, 0x60, 0x0b, 1);
    expect_routes(fx, (struct route_call[]){{0, 11}}, 1);
    assert_int_equal(cfg_read(fx, 0x60, 1), 0x0b);
    assert_int_equal(piix3_pirq_to_isa(&fx->isa, 0), 11);

    cfg_write(fx, 0x61, 0x8a, 1); /* disabled: reported as disconnected */
    expect_routes(fx, (struct route_call[]){{1, 0}}, 1);
    assert_int_equal(cfg_read(fx, 0x61, 1), 0x8a);
    assert_int_equal(piix3_pirq_to_isa(&fx->isa, 1), -1);

    cfg_write(fx, 0x63, 0x7f, 1); /* reserved bits 6:4 do not route */
    expect_routes(fx, (struct route_call[]){{3, 15}}, 1);
    assert_int_equal(piix3_pirq_to_isa(&fx->isa, 3), 15);

    cfg_write(fx, 0x62, 0x00, 1); /* "IRQ 0": disconnected */
    expect_routes(fx, (struct route_call[]){{2, 0}}, 1);
    assert_int_equal(piix3_pirq_to_isa(&fx->isa, 2), -1);

    /* An unchanged value is passed on again. */
    cfg_write(fx, 0x60, 0x0b, 1);
    expect_routes(fx, (struct route_call[]){{0, 11}}, 1);

    assert_int_equal(piix3_pirq_to_isa(&fx->isa, 4), -1);
}

static void test_pirq_wide_writes(void **state)
{
    struct fixture *fx = *state;

    /* hvmloader's routing (IRQ 5, 10, 11, 5) in one dword. */
    cfg_write(fx, 0x60, 0x050b0a05, 4);
    expect_routes(fx,
                  (struct route_call[]){{0, 5}, {1, 10}, {2, 11}, {3, 5}}, 4);
    assert_int_equal(cfg_read(fx, 0x60, 4), 0x050b0a05);

    cfg_write(fx, 0x62, 0x8b0b, 2);
    expect_routes(fx, (struct route_call[]){{2, 11}, {3, 0}}, 2);

    /* Writes next to the PIRQ registers report nothing. */
    cfg_write(fx, 0x5c, 0xffffffff, 4);
    cfg_write(fx, 0x64, 0xffffffff, 4);
    cfg_write(fx, 0x69, 0x10, 1);
    expect_routes(fx, NULL, 0);

    /* Through configuration mechanism #1, byte 2 of the dword. */
    bus_write(&fx->bus, BUS_PIO, 0xcf8, 0x80000860, 4);
    bus_write(&fx->bus, BUS_PIO, 0xcfe, 0x09, 1);
    expect_routes(fx, (struct route_call[]){{2, 9}}, 1);
    assert_int_equal(piix3_pirq_to_isa(&fx->isa, 2), 9);
}

static void test_reset(void **state)
{
    struct fixture *fx = *state;

    cfg_write(fx, 0x60, 0x050b0a05, 4);
    cfg_write(fx, 0x4c, 0x00, 1);
    cfg_write(fx, 0x04, 0x0007, 2);
    bus_write(&fx->bus, BUS_PIO, 0xcf9, 0x02, 1);
    bus_write(&fx->bus, BUS_PIO, 0x92, 0x02, 1);
    fx->nroutes = 0;

    pci_bus_reset(&fx->pci);
    expect_routes(fx,
                  (struct route_call[]){{0, 0}, {1, 0}, {2, 0}, {3, 0}}, 4);
    expect_config(fx, piix3_power_on);
    for (unsigned link = 0; link < 4; link++)
        assert_int_equal(piix3_pirq_to_isa(&fx->isa, link), -1);
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0xcf9, 1), 0x00);
    /* Port 0x92 keeps A20 across a reset, as QEMU's port92_reset. */
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0x92, 1), 0x02);
    assert_int_equal(fx->resets, 0);

    cfg_write(fx, 0x61, 0x0a, 1);
    fx->nroutes = 0;
    piix3_reset(&fx->isa);
    expect_routes(fx,
                  (struct route_call[]){{0, 0}, {1, 0}, {2, 0}, {3, 0}}, 4);
    assert_int_equal(cfg_read(fx, 0x61, 1), 0x80);
}

static void test_reset_control_cf9(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0xcf9, 1), 0x00);
    bus_write(&fx->bus, BUS_PIO, 0xcf9, 0x0b, 1); /* SRST kept, no RCPU */
    assert_int_equal(fx->resets, 0);
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0xcf9, 1), 0x02);

    bus_write(&fx->bus, BUS_PIO, 0xcf9, 0x06, 1); /* hard reset */
    assert_int_equal(fx->resets, 1);
    assert_string_equal(fx->last_reason, "guest-reset");
    /* RCPU is not stored, so the next write with it is another edge. */
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0xcf9, 1), 0x02);
    bus_write(&fx->bus, BUS_PIO, 0xcf9, 0x04, 1); /* soft reset */
    assert_int_equal(fx->resets, 2);

    bus_write(&fx->bus, BUS_PIO, 0xcf9, 0x00, 1);
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0xcf9, 1), 0x00);
    assert_int_equal(fx->resets, 2);

    /* A dword at 0xCF8 is CONFIG_ADDRESS, never a reset. */
    bus_write(&fx->bus, BUS_PIO, 0xcf8, 0x80000600, 4);
    assert_int_equal(fx->resets, 2);
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0xcf8, 4), 0x80000600);
}

static void test_port92(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0x92, 1), 0x00);
    assert_false(piix3_a20_enabled(&fx->isa));

    bus_write(&fx->bus, BUS_PIO, 0x92, 0x02, 1);
    assert_true(piix3_a20_enabled(&fx->isa));
    assert_int_equal(fx->na20, 1);
    assert_true(fx->a20_calls[0]);
    assert_int_equal(fx->resets, 0);
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0x92, 1), 0x02);

    bus_write(&fx->bus, BUS_PIO, 0x92, 0x03, 1); /* fast reset: 0 -> 1 */
    assert_int_equal(fx->resets, 1);
    assert_string_equal(fx->last_reason, "guest-reset");
    /* Every write drives the gate, changed or not (QEMU's port92_write):
     * the CPU's A20 may differ from this byte after a reset. */
    assert_int_equal(fx->na20, 2);
    assert_true(fx->a20_calls[1]);
    bus_write(&fx->bus, BUS_PIO, 0x92, 0x03, 1); /* no edge */
    assert_int_equal(fx->resets, 1);

    bus_write(&fx->bus, BUS_PIO, 0x92, 0x01, 1); /* A20 off, still no edge */
    assert_false(piix3_a20_enabled(&fx->isa));
    assert_int_equal(fx->na20, 4);
    assert_false(fx->a20_calls[3]);
    assert_int_equal(fx->resets, 1);

    bus_write(&fx->bus, BUS_PIO, 0x92, 0x00, 1);
    bus_write(&fx->bus, BUS_PIO, 0x92, 0x01, 1);
    assert_int_equal(fx->resets, 2);

    /* The whole byte reads back; 0x93 is not ours. */
    bus_write(&fx->bus, BUS_PIO, 0x92, 0xc2, 1);
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0x92, 2), 0xffc2);

    /* Reset clears only the fast-reset bit, re-arming the edge. */
    bus_write(&fx->bus, BUS_PIO, 0x92, 0x03, 1);
    assert_int_equal(fx->resets, 3);
    piix3_reset(&fx->isa);
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0x92, 1), 0x02);
    bus_write(&fx->bus, BUS_PIO, 0x92, 0x03, 1);
    assert_int_equal(fx->resets, 4);
}

static void test_init_errors_and_fini(void **state)
{
    struct fixture *fx = *state;
    struct piix3 other;
    struct piix3_ops ops = fixture_ops(fx), no_reset = {.opaque = fx};
    struct pci_bus pci2;

    /* 0xCF9 already taken. */
    assert_int_equal(piix3_init(&other, &fx->pci, &fx->host, &fx->bus,
                                &fx->sink, &ops), -EBUSY);
    assert_int_equal(piix3_init(&other, &fx->pci, &fx->host, &fx->bus,
                                &fx->sink, &no_reset), -EINVAL);

    piix3_fini(&fx->isa);
    assert_null(fx->host.cf9_read);
    assert_null(fx->host.cf9_write);
    assert_null(bus_find(&fx->bus, BUS_PIO, 0x92));
    assert_null(pci_find_function(&fx->pci, PIIX3_DEVFN));
    assert_int_equal(bus_read(&fx->bus, BUS_PIO, 0xcf9, 1), 0xff);
    bus_write(&fx->bus, BUS_PIO, 0xcf9, 0x06, 1);
    assert_int_equal(fx->resets, 0);

    /* devfn 0x08 taken on a second PCI bus over the same address spaces:
     * init fails and leaves neither the port nor the hook behind. */
    pci_bus_init(&pci2, &fx->bus);
    pci2.functions[PIIX3_DEVFN] = &fx->ide.fn;
    assert_int_equal(piix3_init(&other, &pci2, &fx->host, &fx->bus, &fx->sink,
                                &ops), -EEXIST);
    assert_null(fx->host.cf9_write);
    assert_null(bus_find(&fx->bus, BUS_PIO, 0x92));

    /* And it comes back. */
    assert_int_equal(piix3_init(&fx->isa, &fx->pci, &fx->host, &fx->bus,
                                &fx->sink, &ops), 0);
    bus_write(&fx->bus, BUS_PIO, 0xcf9, 0x06, 1);
    assert_int_equal(fx->resets, 1);
}

static void write_pirq_b(struct fixture *fx)
{
    cfg_write(fx, 0x61, 0x0a, 1);
    bus_write(&fx->bus, BUS_PIO, 0x92, 0x02, 1);
}

static void test_trace_names_registers(void **state)
{
    struct log_capture cap;
    const char *out;

    log_capture_begin(&cap, "piix3");
    write_pirq_b(*state);
    out = log_capture_end(&cap);

    assert_non_null(strstr(out, "PIRQRCB[0x61] <- 0x0a"));
    assert_non_null(strstr(out, "port 0x92: A20 enabled"));
    log_capture_free(&cap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_power_on_dump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_single_function_without_ide,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_masks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pirq_byte_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pirq_wide_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_control_cf9, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_port92, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_errors_and_fini, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_trace_names_registers, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
