/* i440FX host bridge: identity, write masks, PAM/SMRAM storage, reset. The
 * expected bytes are QEMU 7.x's (hw/pci-host/i440fx.c, hw/pci/pci.c). */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../hw/bus.h"
#include "../../lib/log.h"
#include "log_capture.h"
#include "../../hw/i440fx.h"
#include "../../hw/pci.h"

struct fixture {
    struct bus bus;
    struct pci_bus pci;
    struct pci_host host;
    struct i440fx nb;
};

/* 00:00.0 after power-on for a 1 GiB guest. */
static const uint8_t i440fx_power_on[256] = {
    [0x00] = 0x86, [0x01] = 0x80, [0x02] = 0x37, [0x03] = 0x12, /* 8086:1237 */
    [0x08] = 0x02,                                              /* revision */
    [0x0a] = 0x00, [0x0b] = 0x06,                               /* 0x0600 */
    [0x2c] = 0xf4, [0x2d] = 0x1a, [0x2e] = 0x00, [0x2f] = 0x11, /* 1af4:1100 */
    [0x57] = 0x80, /* 1024 MiB / 8 MiB */
    [0x72] = 0x02, /* SMRAM: C_BASE_SEG 010 */
};

/* The same after 0xff was written to every byte. */
static uint8_t i440fx_all_ones[256];

static void build_all_ones_table(void)
{
    memcpy(i440fx_all_ones, i440fx_power_on, 256);
    i440fx_all_ones[0x04] = 0x07; /* I/O, memory, bus master */
    i440fx_all_ones[0x05] = 0x05; /* SERR, INTx disable */
    i440fx_all_ones[0x0c] = 0xff; /* cache line size */
    i440fx_all_ones[0x3c] = 0xff; /* interrupt line */
    for (unsigned r = 0x59; r <= 0x5f; r++)
        i440fx_all_ones[r] = 0xff; /* PAM0-6 */
    i440fx_all_ones[0x72] = 0xff;  /* SMRAM */
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    bus_init(&fx->bus);
    pci_bus_init(&fx->pci, &fx->bus);
    assert_int_equal(pci_host_init(&fx->host, &fx->bus), 0);
    assert_int_equal(i440fx_init(&fx->nb, &fx->pci), 0);
    i440fx_set_ram_size(&fx->nb, 1024ull << 20);
    build_all_ones_table();
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    i440fx_fini(&fx->nb);
    pci_host_fini(&fx->host);
    bus_fini(&fx->bus);
    free(fx);
    return 0;
}

static uint32_t cfg_read_via_host(struct fixture *fx, uint8_t devfn,
                                  unsigned reg, unsigned size)
{
    bus_write(&fx->bus, BUS_PIO, 0xcf8,
              0x80000000u | (devfn << 8) | (reg & 0xfc), 4);
    return (uint32_t)bus_read(&fx->bus, BUS_PIO, 0xcfc + (reg & 3), size);
}

static void cfg_write_via_host(struct fixture *fx, uint8_t devfn, unsigned reg,
                               uint32_t value, unsigned size)
{
    bus_write(&fx->bus, BUS_PIO, 0xcf8,
              0x80000000u | (devfn << 8) | (reg & 0xfc), 4);
    bus_write(&fx->bus, BUS_PIO, 0xcfc + (reg & 3), value, size);
}

/* Reads all 256 bytes through 0xCF8/0xCFC, dword by dword, and names the
 * first byte that differs. */
static void expect_config(struct fixture *fx, uint8_t devfn,
                          const uint8_t *want)
{
    for (unsigned reg = 0; reg < 256; reg += 4) {
        uint32_t v = cfg_read_via_host(fx, devfn, reg, 4);

        for (unsigned i = 0; i < 4; i++) {
            uint8_t got = (uint8_t)(v >> (8 * i));

            if (got != want[reg + i])
                fail_msg("config byte 0x%02x: got 0x%02x, want 0x%02x",
                         reg + i, got, want[reg + i]);
        }
    }
}

static void test_power_on_dump(void **state)
{
    struct fixture *fx = *state;

    expect_config(fx, I440FX_DEVFN, i440fx_power_on);
    /* The same bytes through the PCI_CONFIG space directly. */
    assert_int_equal(bus_read(&fx->bus, BUS_PCI_CFG,
                              BUS_PCI_CFG_ADDR(0, 0x00), 4), 0x12378086);
    assert_int_equal(bus_read(&fx->bus, BUS_PCI_CFG,
                              BUS_PCI_CFG_ADDR(0, 0x08), 4), 0x06000002);
}

static void test_placement(void **state)
{
    struct fixture *fx = *state;
    struct i440fx second;

    assert_ptr_equal(pci_find_function(&fx->pci, 0), &fx->nb.fn);
    assert_false(fx->nb.fn.hotpluggable);
    /* Header type 0: nothing else lives in slot 0. */
    assert_int_equal(fx->nb.fn.config[PCI_HEADER_TYPE], 0x00);
    assert_int_equal(i440fx_init(&second, &fx->pci), -EEXIST);
}

static void test_write_masks(void **state)
{
    struct fixture *fx = *state;

    for (unsigned reg = 0; reg < 256; reg++)
        bus_write(&fx->bus, BUS_PCI_CFG, BUS_PCI_CFG_ADDR(0, reg), 0xff, 1);
    expect_config(fx, I440FX_DEVFN, i440fx_all_ones);
}

static void test_pam_smram_read_back(void **state)
{
    struct fixture *fx = *state;

    /* SeaBIOS-style: a dword over PAM3-PAM6, then single bytes. */
    cfg_write_via_host(fx, 0, 0x5c, 0x33221130, 4);
    cfg_write_via_host(fx, 0, 0x59, 0x10, 1);
    cfg_write_via_host(fx, 0, 0x5a, 0x3311, 2);
    assert_int_equal(cfg_read_via_host(fx, 0, 0x58, 4), 0x33111000);
    assert_int_equal(cfg_read_via_host(fx, 0, 0x5c, 4), 0x33221130);
    cfg_write_via_host(fx, 0, 0x72, 0x4a, 1); /* D_OPEN | G_SMRAME */
    assert_int_equal(cfg_read_via_host(fx, 0, 0x72, 1), 0x4a);
    /* A neighbour of SMRAM stays read-only. */
    cfg_write_via_host(fx, 0, 0x70, 0xffffffff, 4);
    assert_int_equal(cfg_read_via_host(fx, 0, 0x70, 4), 0x00ff0000);
}

static void test_reset_restores_power_on(void **state)
{
    struct fixture *fx = *state;

    cfg_write_via_host(fx, 0, 0x58, 0xffffffff, 4);
    cfg_write_via_host(fx, 0, 0x72, 0x0a, 1);
    cfg_write_via_host(fx, 0, 0x04, 0x0007, 2);
    pci_bus_reset(&fx->pci);
    expect_config(fx, I440FX_DEVFN, i440fx_power_on);

    cfg_write_via_host(fx, 0, 0x5c, 0x30303030, 4);
    i440fx_reset(&fx->nb);
    expect_config(fx, I440FX_DEVFN, i440fx_power_on);
}

static void test_ram_size_register(void **state)
{
    struct fixture *fx = *state;

    i440fx_set_ram_size(&fx->nb, 2040ull << 20);
    assert_int_equal(cfg_read_via_host(fx, 0, 0x57, 1), 255);
    i440fx_set_ram_size(&fx->nb, 5ull << 30); /* capped */
    assert_int_equal(cfg_read_via_host(fx, 0, 0x57, 1), 255);
    i440fx_set_ram_size(&fx->nb, 100ull << 20); /* rounds down */
    assert_int_equal(cfg_read_via_host(fx, 0, 0x57, 1), 12);
    /* Read-only to the guest, and part of the power-on state. */
    cfg_write_via_host(fx, 0, 0x57, 0x00, 1);
    assert_int_equal(cfg_read_via_host(fx, 0, 0x57, 1), 12);
    i440fx_reset(&fx->nb);
    assert_int_equal(cfg_read_via_host(fx, 0, 0x57, 1), 12);
}

static void write_pam1(struct fixture *fx)
{
    cfg_write_via_host(fx, 0, 0x5a, 0x33, 1);
}

static void test_trace_names_registers(void **state)
{
    struct log_capture cap;
    const char *out;

    log_capture_begin(&cap, "i440fx");
    write_pam1(*state);
    out = log_capture_end(&cap);

    assert_non_null(strstr(out, "PAM1 <- 0x33 (now 0x33)"));
    log_capture_free(&cap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_power_on_dump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_masks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pam_smram_read_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reset_restores_power_on, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ram_size_register, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_trace_names_registers, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
