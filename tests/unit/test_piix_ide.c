/* PIIX3 IDE function: identity (QEMU 7.x hw/ide/piix.c), write masks, the
 * timing registers hvmloader programs, BAR4 sizing and mapping, and the
 * bus-master registers behind it. */
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
#include "../../hw/pci.h"
#include "../../hw/piix_ide.h"

struct fixture {
    struct bus bus;
    struct pci_bus pci;
    struct pci_host host;
    struct piix_ide ide;
};

/* 00:01.1 after power-on. */
static const uint8_t ide_power_on[256] = {
    [0x00] = 0x86, [0x01] = 0x80, [0x02] = 0x10, [0x03] = 0x70, /* 8086:7010 */
    [0x06] = 0x80, [0x07] = 0x02, /* fast back-to-back, DEVSEL medium */
    [0x09] = 0x80,                /* prog-if: bus master, legacy mode */
    [0x0a] = 0x01, [0x0b] = 0x01, /* IDE */
    [0x20] = 0x01,                /* BAR4: I/O, unassigned */
    [0x2c] = 0xf4, [0x2d] = 0x1a, [0x2e] = 0x00, [0x2f] = 0x11, /* 1af4:1100 */
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    bus_init(&fx->bus);
    pci_bus_init(&fx->pci, &fx->bus);
    assert_int_equal(pci_host_init(&fx->host, &fx->bus), 0);
    assert_int_equal(piix_ide_init(&fx->ide, &fx->pci), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    piix_ide_fini(&fx->ide);
    pci_host_fini(&fx->host);
    bus_fini(&fx->bus);
    free(fx);
    return 0;
}

/* Config accesses the way hvmloader makes them: through 0xCF8/0xCFC. */
static uint32_t cfg_read(struct fixture *fx, unsigned reg, unsigned size)
{
    bus_write(&fx->bus, BUS_PIO, 0xcf8,
              0x80000000u | (PIIX_IDE_DEVFN << 8) | (reg & 0xfc), 4);
    return (uint32_t)bus_read(&fx->bus, BUS_PIO, 0xcfc + (reg & 3), size);
}

static void cfg_write(struct fixture *fx, unsigned reg, uint32_t value,
                      unsigned size)
{
    bus_write(&fx->bus, BUS_PIO, 0xcf8,
              0x80000000u | (PIIX_IDE_DEVFN << 8) | (reg & 0xfc), 4);
    bus_write(&fx->bus, BUS_PIO, 0xcfc + (reg & 3), value, size);
}

static void expect_config(struct fixture *fx, const uint8_t *want)
{
    for (unsigned reg = 0; reg < 256; reg += 4) {
        uint32_t v = (uint32_t)bus_read(&fx->bus, BUS_PCI_CFG,
                                        BUS_PCI_CFG_ADDR(PIIX_IDE_DEVFN, reg),
                                        4);

        for (unsigned i = 0; i < 4; i++) {
            uint8_t got = (uint8_t)(v >> (8 * i));

            if (got != want[reg + i])
                fail_msg("config byte 0x%02x: got 0x%02x, want 0x%02x",
                         reg + i, got, want[reg + i]);
        }
    }
}

static uint64_t pio_read(struct fixture *fx, uint64_t port, unsigned size)
{
    return bus_read(&fx->bus, BUS_PIO, port, size);
}

static void pio_write(struct fixture *fx, uint64_t port, uint64_t v,
                      unsigned size)
{
    bus_write(&fx->bus, BUS_PIO, port, v, size);
}

/* hvmloader's steps for the function: legacy decode on, BAR4 sized and
 * placed at base, then I/O and bus-master decode enabled. */
static void hvmloader_program(struct fixture *fx, uint32_t base)
{
    uint32_t orig, size;

    cfg_write(fx, PIIX_IDE_IDETIM_PRI, PIIX_IDE_IDETIM_IDE, 2);
    cfg_write(fx, PIIX_IDE_IDETIM_SEC, PIIX_IDE_IDETIM_IDE, 2);
    cfg_write(fx, PCI_COMMAND, 0, 2);
    orig = cfg_read(fx, 0x20, 4);
    cfg_write(fx, 0x20, 0xffffffff, 4);
    size = cfg_read(fx, 0x20, 4);
    cfg_write(fx, 0x20, orig, 4);
    assert_int_equal(size, 0xfffffff1);
    size &= ~3u;
    assert_int_equal(size & ~(size - 1), 16);
    cfg_write(fx, 0x20, base | (orig & 3), 4);
    cfg_write(fx, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MASTER, 2);
}

static void test_power_on_dump(void **state)
{
    struct fixture *fx = *state;

    expect_config(fx, ide_power_on);
    assert_false(fx->ide.fn.hotpluggable);
    assert_ptr_equal(pci_find_function(&fx->pci, PCI_DEVFN(1, 1)), &fx->ide.fn);
    assert_int_equal(cfg_read(fx, 0x08, 4), 0x01018000);
}

static void test_write_masks(void **state)
{
    struct fixture *fx = *state;
    uint8_t want[256];

    memcpy(want, ide_power_on, sizeof(want));
    want[0x04] = 0x07;
    want[0x05] = 0x05;
    want[0x0c] = 0xff;
    want[0x3c] = 0xff;
    want[0x20] = 0xf1; /* 16-byte I/O BAR: bits 3:0 fixed */
    want[0x21] = 0xff;
    want[0x22] = 0xff;
    want[0x23] = 0xff;
    for (unsigned r = 0x40; r <= 0x44; r++)
        want[r] = 0xff; /* IDETIM primary/secondary, SIDETIM */
    for (unsigned reg = 0; reg < 256; reg++)
        bus_write(&fx->bus, BUS_PCI_CFG, BUS_PCI_CFG_ADDR(PIIX_IDE_DEVFN, reg),
                  0xff, 1);
    expect_config(fx, want);
    /* A BAR reaching past 0xffff does not decode. */
    assert_false(fx->ide.fn.bar[PIIX_IDE_BM_BAR].region.mapped);
}

static void test_timing_registers(void **state)
{
    struct fixture *fx = *state;

    cfg_write(fx, PIIX_IDE_IDETIM_PRI, 0x8000, 2);
    cfg_write(fx, PIIX_IDE_IDETIM_SEC, 0x8000, 2);
    assert_int_equal(cfg_read(fx, 0x40, 4), 0x80008000);
    cfg_write(fx, PIIX_IDE_IDETIM_PRI, 0xa307, 2);
    cfg_write(fx, PIIX_IDE_SIDETIM, 0x5a, 1);
    assert_int_equal(cfg_read(fx, 0x40, 2), 0xa307);
    assert_int_equal(cfg_read(fx, 0x42, 2), 0x8000);
    /* SIDETIM is one byte; 0x45-0x47 stay 0. */
    cfg_write(fx, 0x44, 0xffffffff, 4);
    assert_int_equal(cfg_read(fx, 0x44, 4), 0x000000ff);
}

static void test_bar4_sizing_and_mapping(void **state)
{
    struct fixture *fx = *state;
    struct bus_region *r;

    hvmloader_program(fx, 0xc000);
    assert_int_equal(cfg_read(fx, 0x20, 4), 0x0000c001);
    assert_int_equal(cfg_read(fx, 0x40, 4), 0x80008000);
    r = bus_find(&fx->bus, BUS_PIO, 0xc000);
    assert_ptr_equal(r, &fx->ide.fn.bar[PIIX_IDE_BM_BAR].region);
    assert_int_equal(r->base, 0xc000);
    assert_int_equal(r->len, 16);
    assert_ptr_equal(bus_find(&fx->bus, BUS_PIO, 0xc00f), r);
    assert_null(bus_find(&fx->bus, BUS_PIO, 0xc010));

    /* Moving the BAR moves the registers. */
    pio_write(fx, 0xc004, 0x1000, 4);
    cfg_write(fx, 0x20, 0xc101, 4);
    assert_null(bus_find(&fx->bus, BUS_PIO, 0xc000));
    assert_int_equal(pio_read(fx, 0xc000, 1), 0xff);
    assert_int_equal(pio_read(fx, 0xc104, 4), 0x1000);

    /* I/O decode off: gone. */
    cfg_write(fx, PCI_COMMAND, 0, 2);
    assert_null(bus_find(&fx->bus, BUS_PIO, 0xc100));
}

static void test_bus_master_registers(void **state)
{
    struct fixture *fx = *state;

    hvmloader_program(fx, 0xc000);
    assert_int_equal(pio_read(fx, 0xc000, 1), 0x00);
    assert_int_equal(pio_read(fx, 0xc002, 1), 0x00);

    /* Command: SSBM and RWCON kept, start marks the channel active. */
    pio_write(fx, 0xc000, 0xff, 1);
    assert_int_equal(pio_read(fx, 0xc000, 1), 0x09);
    assert_int_equal(pio_read(fx, 0xc002, 1), 0x01);
    pio_write(fx, 0xc000, 0x08, 1); /* stop */
    assert_int_equal(pio_read(fx, 0xc000, 1), 0x08);
    assert_int_equal(pio_read(fx, 0xc002, 1), 0x00);

    /* Status: bits 5-6 writable, 1-2 write-1-to-clear, 0 read-only. The
     * error and interrupt bits are set by the (future) ATA engine. */
    fx->ide.bm[0].status |= PIIX_IDE_BMISTA_ERR | PIIX_IDE_BMISTA_IDEINTS;
    pio_write(fx, 0xc002, 0x61, 1); /* DMA0CAP|DMA1CAP, try bit 0 */
    assert_int_equal(pio_read(fx, 0xc002, 1), 0x66);
    pio_write(fx, 0xc002, 0x64, 1); /* clear IDEINTS */
    assert_int_equal(pio_read(fx, 0xc002, 1), 0x62);
    pio_write(fx, 0xc002, 0x02, 1); /* clear ERR, drop the capable bits */
    assert_int_equal(pio_read(fx, 0xc002, 1), 0x00);

    /* Reserved bytes, and command/status are byte registers. */
    assert_int_equal(pio_read(fx, 0xc001, 1), 0xff);
    assert_int_equal(pio_read(fx, 0xc003, 1), 0xff);
    assert_int_equal(pio_read(fx, 0xc000, 2), 0xffff);
    assert_int_equal(pio_read(fx, 0xc000, 4), 0xffffffff);
    pio_write(fx, 0xc000, 0x0101, 2); /* ignored: no start */
    assert_int_equal(pio_read(fx, 0xc000, 1), 0x08);
    assert_int_equal(pio_read(fx, 0xc002, 1), 0x00);

    /* Descriptor table pointer: any width, dword aligned. */
    pio_write(fx, 0xc004, 0x12345677, 4);
    assert_int_equal(pio_read(fx, 0xc004, 4), 0x12345674);
    pio_write(fx, 0xc006, 0xabcd, 2);
    assert_int_equal(pio_read(fx, 0xc004, 4), 0xabcd5674);
    pio_write(fx, 0xc004, 0xff, 1);
    assert_int_equal(pio_read(fx, 0xc004, 4), 0xabcd56fc);
    assert_int_equal(pio_read(fx, 0xc005, 1), 0x56);
    assert_int_equal(pio_read(fx, 0xc006, 2), 0xabcd);

    /* The secondary channel is separate. */
    assert_int_equal(pio_read(fx, 0xc00c, 4), 0);
    pio_write(fx, 0xc008, 0x01, 1);
    assert_int_equal(pio_read(fx, 0xc00a, 1), 0x01);
    assert_int_equal(pio_read(fx, 0xc002, 1), 0x00);
    pio_write(fx, 0xc00c, 0x00100000, 4);
    assert_int_equal(fx->ide.bm[1].prd, 0x00100000);
    assert_int_equal(fx->ide.bm[0].prd, 0xabcd56fc);

    /* An access straddling status and pointer is split at the boundary:
     * the status half is a wide access and reads all-ones. */
    assert_int_equal(pio_read(fx, 0xc00a, 4), 0x0000ffff);
    pio_write(fx, 0xc00a, 0x12340000, 4); /* only the pointer half lands */
    assert_int_equal(pio_read(fx, 0xc00c, 4), 0x00101234);
    pio_write(fx, 0xc00b, 0x00567800, 4); /* reserved byte, then 3 bytes */
    assert_int_equal(pio_read(fx, 0xc00c, 4), 0x00005678);
    assert_int_equal(pio_read(fx, 0xc00a, 1), 0x01);
    /* An 8-byte access splits into two dwords. */
    assert_int_equal(pio_read(fx, 0xc008, 8), 0x00005678ffffffffull);
}

static void test_reset(void **state)
{
    struct fixture *fx = *state;

    hvmloader_program(fx, 0xc000);
    pio_write(fx, 0xc000, 0x09, 1);
    pio_write(fx, 0xc004, 0x2000, 4);
    cfg_write(fx, 0x44, 0x33, 1);

    pci_bus_reset(&fx->pci);
    expect_config(fx, ide_power_on);
    assert_null(bus_find(&fx->bus, BUS_PIO, 0xc000));
    assert_int_equal(fx->ide.bm[0].cmd, 0);
    assert_int_equal(fx->ide.bm[0].status, 0);
    assert_int_equal(fx->ide.bm[0].prd, 0);

    hvmloader_program(fx, 0xc040);
    assert_int_equal(pio_read(fx, 0xc044, 4), 0);
    pio_write(fx, 0xc048, 0x01, 1);
    piix_ide_reset(&fx->ide);
    expect_config(fx, ide_power_on);
    assert_int_equal(fx->ide.bm[1].status, 0);
}

static void test_init_conflict(void **state)
{
    struct fixture *fx = *state;
    struct piix_ide other;

    assert_int_equal(piix_ide_init(&other, &fx->pci), -EEXIST);
    assert_ptr_equal(pci_find_function(&fx->pci, PIIX_IDE_DEVFN), &fx->ide.fn);
}

static void program_and_start(struct fixture *fx)
{
    hvmloader_program(fx, 0xc000);
    pio_write(fx, 0xc004, 0x1000, 4);
    pio_write(fx, 0xc000, 0x01, 1);
    pio_write(fx, 0xc000, 0x00, 1);
}

static void test_trace_names_registers(void **state)
{
    struct log_capture cap;
    const char *out;

    log_capture_begin(&cap, "piix_ide");
    program_and_start(*state);
    out = log_capture_end(&cap);

    assert_non_null(strstr(out, "IDETIM(primary) now 0x8000"));
    assert_non_null(strstr(out, "IDETIM(secondary) now 0x8000"));
    assert_non_null(strstr(out, "channel 0 bus master started (PRD table "
                                "0x00001000)"));
    assert_non_null(strstr(out, "channel 0 bus master stopped"));
    log_capture_free(&cap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_power_on_dump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_masks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timing_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bar4_sizing_and_mapping, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bus_master_registers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_names_registers, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
