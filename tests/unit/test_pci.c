/* Unit tests for the PCI core (hw/pci.c): configuration mechanism #1 on the
 * bus, write masks, BAR sizing and decoding, multi-function headers, reset,
 * registration and the device hooks. */
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
#include "../../lib/log.h"

#define FN_DEVFN PCI_DEVFN(2, 0)
#define CF8_ENABLE 0x80000000u

struct bar_dev {
    unsigned reads, writes;
    uint64_t last_off, last_value;
    unsigned last_size;
};

struct fixture {
    struct bus bus;
    struct pci_bus pci;
    struct pci_host host;
    struct pci_function fn;
    struct bar_dev io_dev, mem_dev, rom_dev;
    /* Hook records. */
    unsigned cf9_reads, cf9_writes;
    uint8_t cf9_value;
    unsigned resets, hook_reads, hook_writes;
    unsigned hook_reg, hook_size;
    uint32_t hook_value;
};

static uint64_t bar_read(void *opaque, uint64_t off, unsigned size)
{
    struct bar_dev *d = opaque;

    d->reads++;
    d->last_off = off;
    d->last_size = size;
    return 0x5a5a5a5a00000000ull | (0xb0 + off);
}

static void bar_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    struct bar_dev *d = opaque;

    d->writes++;
    d->last_off = off;
    d->last_value = value;
    d->last_size = size;
}

static const struct bus_region_ops bar_ops = {
    .read = bar_read, .write = bar_write, .max_access = 4};

static struct fixture *fx_of(struct pci_function *f)
{
    return f->opaque;
}

/* Makes the status register look live: bit 3 (interrupt status) is what
 * the device reports, whatever config[] holds. */
static uint32_t hook_config_read(struct pci_function *f, unsigned reg,
                                 unsigned size, uint32_t value)
{
    struct fixture *fx = fx_of(f);

    fx->hook_reads++;
    if (reg == PCI_STATUS && size == 2)
        value |= PCI_STATUS_INTERRUPT;
    return value;
}

static void hook_config_write(struct pci_function *f, unsigned reg,
                              uint32_t value, unsigned size)
{
    struct fixture *fx = fx_of(f);

    fx->hook_writes++;
    fx->hook_reg = reg;
    fx->hook_value = value;
    fx->hook_size = size;
}

static void hook_reset(struct pci_function *f)
{
    fx_of(f)->resets++;
}

static const struct pci_function_ops fn_ops = {
    hook_config_read, hook_config_write, hook_reset};

static uint64_t cf9_read(void *opaque)
{
    struct fixture *fx = opaque;

    fx->cf9_reads++;
    return fx->cf9_value;
}

static void cf9_write(void *opaque, uint8_t value)
{
    struct fixture *fx = opaque;

    fx->cf9_writes++;
    fx->cf9_value = value;
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

    assert_non_null(fx);
    bus_init(&fx->bus);
    pci_bus_init(&fx->pci, &fx->bus);
    assert_int_equal(pci_host_init(&fx->host, &fx->bus), 0);
    pci_function_init(&fx->fn, "test-nic", 0x10ec, 0x8139, 0x020000, 0x20,
                      &fn_ops, fx);
    pci_set_subsystem(&fx->fn, 0x5853, 0x0001);
    pci_set_interrupt_pin(&fx->fn, 1);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    for (unsigned devfn = 0; devfn < 256; devfn++)
        if (fx->pci.functions[devfn])
            pci_unregister_function(fx->pci.functions[devfn]);
    pci_host_fini(&fx->host);
    /* Anything a test mapped itself lived in its stack frame. */
    for (int s = 0; s < BUS_NR_SPACES; s++)
        fx->bus.spaces[s].count = 0;
    bus_fini(&fx->bus);
    free(fx);
    return 0;
}

static void add_standard_bars(struct fixture *fx)
{
    assert_int_equal(pci_function_add_bar(&fx->fn, 0, 0x100, PCI_BAR_IO,
                                          "nic-io", &bar_ops, &fx->io_dev), 0);
    assert_int_equal(pci_function_add_bar(&fx->fn, 1, 0x1000, PCI_BAR_MEM32,
                                          "nic-mmio", &bar_ops, &fx->mem_dev),
                     0);
    assert_int_equal(pci_function_add_bar(&fx->fn, PCI_ROM_SLOT, 0x10000,
                                          PCI_BAR_MEM32, "nic-rom", &bar_ops,
                                          &fx->rom_dev), 0);
}

static void register_fn(struct fixture *fx)
{
    assert_int_equal(pci_register_function(&fx->pci, &fx->fn, FN_DEVFN), 0);
}

/* Port I/O through the bus, as the guest does it. */
static void out(struct fixture *fx, uint16_t port, uint32_t v, unsigned size)
{
    bus_write(&fx->bus, BUS_PIO, port, v, size);
}

static uint32_t in(struct fixture *fx, uint16_t port, unsigned size)
{
    return (uint32_t)bus_read(&fx->bus, BUS_PIO, port, size);
}

static uint32_t cf8(uint8_t bus, uint8_t devfn, uint8_t reg)
{
    return CF8_ENABLE | (uint32_t)bus << 16 | (uint32_t)devfn << 8 | reg;
}

static uint32_t cfg_read(struct fixture *fx, uint8_t reg, unsigned size)
{
    out(fx, 0xcf8, cf8(0, FN_DEVFN, reg & 0xfc), 4);
    return in(fx, (uint16_t)(0xcfc + (reg & 3)), size);
}

static void cfg_write(struct fixture *fx, uint8_t reg, uint32_t v,
                      unsigned size)
{
    out(fx, 0xcf8, cf8(0, FN_DEVFN, reg & 0xfc), 4);
    out(fx, (uint16_t)(0xcfc + (reg & 3)), v, size);
}

/* --- configuration mechanism #1 ------------------------------------------ */

static void test_cf8_cfc_widths(void **state)
{
    struct fixture *fx = *state;

    register_fn(fx);
    out(fx, 0xcf8, cf8(0, FN_DEVFN, PCI_VENDOR_ID), 4);
    assert_int_equal(in(fx, 0xcfc, 4), 0x813910ec);
    assert_int_equal(in(fx, 0xcfc, 2), 0x10ec);
    assert_int_equal(in(fx, 0xcfe, 2), 0x8139);
    assert_int_equal(in(fx, 0xcfc, 1), 0xec);
    assert_int_equal(in(fx, 0xcfd, 1), 0x10);
    assert_int_equal(in(fx, 0xcfe, 1), 0x39);
    assert_int_equal(in(fx, 0xcff, 1), 0x81);
    /* Any width at any offset within the data window. */
    assert_int_equal(in(fx, 0xcfd, 2), 0x3910);

    out(fx, 0xcf8, cf8(0, FN_DEVFN, PCI_REVISION_ID), 4);
    assert_int_equal(in(fx, 0xcfc, 4), 0x02000020);
    assert_int_equal(in(fx, 0xcfc, 1), 0x20);
    assert_int_equal(in(fx, 0xcfe, 2), 0x0200);
    out(fx, 0xcf8, cf8(0, FN_DEVFN, PCI_SUBSYSTEM_VENDOR_ID), 4);
    assert_int_equal(in(fx, 0xcfc, 4), 0x00015853);
    out(fx, 0xcf8, cf8(0, FN_DEVFN, PCI_INTERRUPT_LINE), 4);
    assert_int_equal(in(fx, 0xcfd, 1), 1);

    /* Writes at each offset and width. */
    cfg_write(fx, PCI_INTERRUPT_LINE, 0x0a, 1);
    assert_int_equal(fx->fn.config[PCI_INTERRUPT_LINE], 0x0a);
    cfg_write(fx, PCI_CACHE_LINE_SIZE, 0x4010, 2);
    assert_int_equal(fx->fn.config[PCI_CACHE_LINE_SIZE], 0x10);
    assert_int_equal(fx->fn.config[PCI_LATENCY_TIMER], 0); /* read-only */
    cfg_write(fx, PCI_LATENCY_TIMER, 0x20, 1);
    assert_int_equal(cfg_read(fx, PCI_CACHE_LINE_SIZE, 2), 0x0010);
    cfg_write(fx, PCI_CACHE_LINE_SIZE, 0x00000008, 4);
    assert_int_equal(cfg_read(fx, PCI_CACHE_LINE_SIZE, 4), 0x00000008);
}

static void test_cf8_disabled(void **state)
{
    struct fixture *fx = *state;

    register_fn(fx);
    out(fx, 0xcf8, cf8(0, FN_DEVFN, PCI_INTERRUPT_LINE) & ~CF8_ENABLE, 4);
    assert_int_equal(in(fx, 0xcfc, 4), 0xffffffffu);
    assert_int_equal(in(fx, 0xcfc, 1), 0xff);
    assert_int_equal(in(fx, 0xcfe, 2), 0xffff);
    out(fx, 0xcfc, 0x0b, 1);
    out(fx, 0xcfc, 0x0b0b0b0b, 4);
    assert_int_equal(fx->fn.config[PCI_INTERRUPT_LINE], 0);
    assert_int_equal(fx->hook_writes, 0);
    assert_int_equal(fx->hook_reads, 0);
}

static void test_cf8_other_bus(void **state)
{
    struct fixture *fx = *state;

    register_fn(fx);
    for (unsigned bus = 1; bus < 256; bus += 127) {
        out(fx, 0xcf8, cf8((uint8_t)bus, FN_DEVFN, PCI_INTERRUPT_LINE), 4);
        assert_int_equal(in(fx, 0xcfc, 4), 0xffffffffu);
        out(fx, 0xcfc, 0x0b, 1);
    }
    assert_int_equal(fx->fn.config[PCI_INTERRUPT_LINE], 0);
    assert_int_equal(fx->hook_writes, 0);
}

static void test_cf8_empty_devfn(void **state)
{
    struct fixture *fx = *state;

    register_fn(fx);
    out(fx, 0xcf8, cf8(0, PCI_DEVFN(2, 1), 0), 4);
    assert_int_equal(in(fx, 0xcfc, 4), 0xffffffffu);
    assert_int_equal(in(fx, 0xcfe, 2), 0xffff);
    out(fx, 0xcf8, cf8(0, PCI_DEVFN(31, 7), 0), 4);
    assert_int_equal(in(fx, 0xcfc, 4), 0xffffffffu);
    out(fx, 0xcfc, 0x12345678, 4);
    /* Writes to nowhere are counted as unassigned, not crashed on. */
    assert_true(fx->bus.unassigned_writes >= 1);
}

static void test_cf8_readback_and_narrow(void **state)
{
    struct fixture *fx = *state;

    out(fx, 0xcf8, 0x80001234, 4);
    assert_int_equal(in(fx, 0xcf8, 4), 0x80001234);
    assert_int_equal(fx->host.config_address, 0x80001234);
    /* Narrow accesses other than the 0xcf9 byte leave it alone... */
    out(fx, 0xcf8, 0x00, 1);
    out(fx, 0xcf8, 0x0000, 2);
    out(fx, 0xcfa, 0x0000, 2);
    out(fx, 0xcfa, 0xff, 1);
    out(fx, 0xcfb, 0x00, 1);
    assert_int_equal(in(fx, 0xcf8, 4), 0x80001234);
    /* ...and read as all-ones. */
    assert_int_equal(in(fx, 0xcf8, 1), 0xff);
    assert_int_equal(in(fx, 0xcf8, 2), 0xffff);
    assert_int_equal(in(fx, 0xcfa, 2), 0xffff);
    /* No cf9 hook installed: the byte reads all-ones, writes go nowhere. */
    assert_int_equal(in(fx, 0xcf9, 1), 0xff);
    out(fx, 0xcf9, 0x06, 1);
    assert_int_equal(in(fx, 0xcf8, 4), 0x80001234);

    pci_host_reset(&fx->host);
    assert_int_equal(in(fx, 0xcf8, 4), 0);
}

static void test_cf9_hooks(void **state)
{
    struct fixture *fx = *state;

    fx->host.cf9_read = cf9_read;
    fx->host.cf9_write = cf9_write;
    fx->host.cf9_opaque = fx;
    out(fx, 0xcf8, 0x80000000, 4);
    fx->cf9_value = 0x02;
    assert_int_equal(in(fx, 0xcf9, 1), 0x02);
    assert_int_equal(fx->cf9_reads, 1);
    out(fx, 0xcf9, 0x06, 1);
    assert_int_equal(fx->cf9_writes, 1);
    assert_int_equal(fx->cf9_value, 0x06);
    assert_int_equal(fx->host.config_address, 0x80000000);
    /* Only byte accesses are the reset control register. */
    assert_int_equal(in(fx, 0xcf9, 2), 0xffff);
    out(fx, 0xcf9, 0x0e0e, 2);
    assert_int_equal(fx->cf9_reads, 1);
    assert_int_equal(fx->cf9_writes, 1);
    assert_int_equal(fx->cf9_value, 0x06);
    /* Wider accesses covering 0xcf9 are CONFIG_ADDRESS or nothing. */
    out(fx, 0xcf8, 0x80000800, 4);
    assert_int_equal(fx->cf9_writes, 1);
    out(fx, 0xcf8, 0xffff, 2);
    assert_int_equal(fx->cf9_writes, 1);
    assert_int_equal(in(fx, 0xcf8, 2), 0xffff);
    assert_int_equal(fx->cf9_reads, 1);
    assert_int_equal(in(fx, 0xcf8, 4), 0x80000800);
}

static void test_host_map_conflict(void **state)
{
    struct fixture *fx = *state;
    struct pci_host other;
    struct bus_region blocker;

    /* A second host on the same bus cannot take the ports. */
    assert_int_equal(pci_host_init(&other, &fx->bus), -EEXIST);
    assert_false(other.addr_region.mapped);
    assert_false(other.data_region.mapped);
    /* If only the data port is taken, the address port is given back. */
    pci_host_fini(&fx->host);
    bus_region_init(&blocker, "blocker", 1, &bar_ops, &fx->io_dev);
    assert_int_equal(bus_map(&fx->bus, BUS_PIO, &blocker, 0xcfe), 0);
    assert_int_equal(pci_host_init(&other, &fx->bus), -EEXIST);
    assert_false(other.addr_region.mapped);
    assert_ptr_equal(bus_find(&fx->bus, BUS_PIO, 0xcf8), NULL);
    bus_unmap(&fx->bus, &blocker);
    assert_int_equal(pci_host_init(&fx->host, &fx->bus), 0);
}

/* --- config space masks -------------------------------------------------- */

static void test_wmask_read_only(void **state)
{
    struct fixture *fx = *state;
    uint8_t before[PCI_CONFIG_SIZE];

    register_fn(fx);
    memcpy(before, fx->fn.config, sizeof(before));
    /* Blast all-ones over the whole space. */
    for (unsigned reg = 0; reg < PCI_CONFIG_SIZE; reg += 4)
        cfg_write(fx, (uint8_t)reg, 0xffffffffu, 4);
    for (unsigned reg = 0; reg < PCI_CONFIG_SIZE; reg++) {
        uint8_t want = before[reg];

        if (reg == PCI_COMMAND)
            want = 0x07;
        else if (reg == PCI_COMMAND + 1)
            want = 0x05;
        else if (reg == PCI_CACHE_LINE_SIZE || reg == PCI_INTERRUPT_LINE)
            want = 0xff;
        assert_int_equal(fx->fn.config[reg], want);
    }
    assert_int_equal(cfg_read(fx, PCI_VENDOR_ID, 4), 0x813910ec);
    assert_int_equal(cfg_read(fx, PCI_INTERRUPT_PIN, 1), 1);
}

static void test_w1c_status(void **state)
{
    struct fixture *fx = *state;

    register_fn(fx);
    /* Device raised every error bit; capability list bit is read-only. */
    pci_set_word(&fx->fn.config[PCI_STATUS], 0xf910);
    cfg_write(fx, PCI_STATUS, 0x0100, 2); /* master data parity error */
    assert_int_equal(pci_get_word(&fx->fn.config[PCI_STATUS]), 0xf810);
    cfg_write(fx, PCI_STATUS, 0x0000, 2);
    assert_int_equal(pci_get_word(&fx->fn.config[PCI_STATUS]), 0xf810);
    cfg_write(fx, PCI_STATUS + 1, 0x80, 1); /* detected parity error */
    assert_int_equal(pci_get_word(&fx->fn.config[PCI_STATUS]), 0x7810);
    /* A dword write to command+status clears status bits too. */
    cfg_write(fx, PCI_COMMAND, 0x30000002, 4);
    assert_int_equal(pci_get_word(&fx->fn.config[PCI_STATUS]), 0x4810);
    assert_int_equal(pci_get_word(&fx->fn.config[PCI_COMMAND]), 0x0002);
    /* All-ones clears every error bit and sets nothing. */
    cfg_write(fx, PCI_STATUS, 0xffff, 2);
    assert_int_equal(pci_get_word(&fx->fn.config[PCI_STATUS]), 0x0010);
    /* The read hook's live bit shows on reads only. */
    assert_int_equal(cfg_read(fx, PCI_STATUS, 2), 0x0018);
}

/* --- BAR sizing ---------------------------------------------------------- */

static uint32_t size_bar(struct fixture *fx, uint8_t reg)
{
    cfg_write(fx, reg, 0xffffffffu, 4);
    return cfg_read(fx, reg, 4);
}

static void test_bar_sizing(void **state)
{
    struct fixture *fx = *state;
    struct bar_dev d = {0};

    assert_int_equal(pci_function_add_bar(&fx->fn, 0, 4, PCI_BAR_IO, "io4",
                                          &bar_ops, &d), 0);
    assert_int_equal(pci_function_add_bar(&fx->fn, 1, 0x100, PCI_BAR_IO,
                                          "io256", &bar_ops, &d), 0);
    assert_int_equal(pci_function_add_bar(&fx->fn, 2, 0x1000, PCI_BAR_MEM32,
                                          "mem4k", &bar_ops, &d), 0);
    assert_int_equal(pci_function_add_bar(&fx->fn, 3, 0x4000,
                                          PCI_BAR_MEM64 | PCI_BAR_PREFETCH,
                                          "mem64", &bar_ops, &d), 0);
    assert_int_equal(pci_function_add_bar(&fx->fn, 5, 0x1000000,
                                          PCI_BAR_MEM32 | PCI_BAR_PREFETCH,
                                          "pref16m", &bar_ops, &d), 0);
    assert_int_equal(pci_function_add_bar(&fx->fn, PCI_ROM_SLOT, 0x10000,
                                          PCI_BAR_MEM32, "rom", &bar_ops, &d),
                     0);
    register_fn(fx);

    /* Before sizing, the type bits are visible. */
    assert_int_equal(cfg_read(fx, PCI_BASE_ADDRESS_0, 4), PCI_BAR_IO);
    assert_int_equal(cfg_read(fx, PCI_BASE_ADDRESS_0 + 12, 4), 0xc);

    assert_int_equal(size_bar(fx, PCI_BASE_ADDRESS_0), 0xfffffffdu);
    assert_int_equal(size_bar(fx, PCI_BASE_ADDRESS_0 + 4), 0xffffff01u);
    assert_int_equal(size_bar(fx, PCI_BASE_ADDRESS_0 + 8), 0xfffff000u);
    assert_int_equal(size_bar(fx, PCI_BASE_ADDRESS_0 + 12), 0xffffc00cu);
    assert_int_equal(size_bar(fx, PCI_BASE_ADDRESS_0 + 16), 0xffffffffu);
    assert_int_equal(size_bar(fx, PCI_BASE_ADDRESS_0 + 20), 0xff000008u);
    assert_int_equal(size_bar(fx, PCI_ROM_ADDRESS), 0xffff0001u);
    cfg_write(fx, PCI_ROM_ADDRESS, 0xfffffffeu, 4);
    assert_int_equal(cfg_read(fx, PCI_ROM_ADDRESS, 4), 0xffff0000u);

    /* Programming addresses: the low bits stay what the BAR says. */
    cfg_write(fx, PCI_BASE_ADDRESS_0, 0xc004, 4);
    assert_int_equal(cfg_read(fx, PCI_BASE_ADDRESS_0, 4), 0xc005);
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 4, 0xc1ff, 4);
    assert_int_equal(cfg_read(fx, PCI_BASE_ADDRESS_0 + 4, 4), 0xc101);
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 8, 0xfebf1234, 4);
    assert_int_equal(cfg_read(fx, PCI_BASE_ADDRESS_0 + 8, 4), 0xfebf1000);
    /* Reset puts the sized BARs back to their power-on values. */
    pci_function_reset(&fx->fn);
    assert_int_equal(cfg_read(fx, PCI_BASE_ADDRESS_0 + 16, 4), 0);
    assert_int_equal(cfg_read(fx, PCI_BASE_ADDRESS_0 + 12, 4), 0xc);
}

static void test_bar_sizing_large_mem64(void **state)
{
    struct fixture *fx = *state;
    struct bar_dev d = {0};
    struct pci_function empty;

    assert_int_equal(pci_function_add_bar(&fx->fn, 0, 8ull << 30,
                                          PCI_BAR_MEM64 | PCI_BAR_PREFETCH,
                                          "big", &bar_ops, &d), 0);
    register_fn(fx);
    assert_int_equal(size_bar(fx, PCI_BASE_ADDRESS_0), 0x0000000cu);
    assert_int_equal(size_bar(fx, PCI_BASE_ADDRESS_0 + 4), 0xfffffffeu);
    /* An unimplemented BAR reads 0 whatever is written. */
    assert_int_equal(size_bar(fx, PCI_BASE_ADDRESS_0 + 8), 0);

    /* A function with no BARs at all. */
    pci_function_init(&empty, "empty", 0x8086, 0x1237, 0x060000, 2, NULL, NULL);
    assert_int_equal(pci_register_function(&fx->pci, &empty,
                                           PCI_DEVFN(0, 0)), 0);
    out(fx, 0xcf8, cf8(0, 0, PCI_BASE_ADDRESS_0), 4);
    out(fx, 0xcfc, 0xffffffffu, 4);
    assert_int_equal(in(fx, 0xcfc, 4), 0);
    pci_unregister_function(&empty);
}

static void test_add_bar_invalid(void **state)
{
    struct fixture *fx = *state;
    struct bar_dev d = {0};
    struct pci_function *f = &fx->fn;

    /* 64-bit BAR needs two slots. */
    assert_int_equal(pci_function_add_bar(f, 5, 0x1000, PCI_BAR_MEM64, "x",
                                          &bar_ops, &d), -EINVAL);
    assert_int_equal(pci_function_add_bar(f, 7, 0x1000, PCI_BAR_MEM32, "x",
                                          &bar_ops, &d), -EINVAL);
    /* ROM must be plain memory. */
    assert_int_equal(pci_function_add_bar(f, PCI_ROM_SLOT, 0x1000, PCI_BAR_IO,
                                          "x", &bar_ops, &d), -EINVAL);
    assert_int_equal(pci_function_add_bar(f, PCI_ROM_SLOT, 0x400,
                                          PCI_BAR_MEM32, "x", &bar_ops, &d),
                     -EINVAL);
    /* Sizes: powers of two, minimums, maximums. */
    assert_int_equal(pci_function_add_bar(f, 0, 0, PCI_BAR_MEM32, "x",
                                          &bar_ops, &d), -EINVAL);
    assert_int_equal(pci_function_add_bar(f, 0, 0x3000, PCI_BAR_MEM32, "x",
                                          &bar_ops, &d), -EINVAL);
    assert_int_equal(pci_function_add_bar(f, 0, 8, PCI_BAR_MEM32, "x",
                                          &bar_ops, &d), -EINVAL);
    assert_int_equal(pci_function_add_bar(f, 0, 2, PCI_BAR_IO, "x", &bar_ops,
                                          &d), -EINVAL);
    assert_int_equal(pci_function_add_bar(f, 0, 0x20000, PCI_BAR_IO, "x",
                                          &bar_ops, &d), -EINVAL);
    assert_int_equal(pci_function_add_bar(f, 0, 1ull << 32, PCI_BAR_MEM32,
                                          "x", &bar_ops, &d), -EINVAL);
    /* Twice at the same index. */
    assert_int_equal(pci_function_add_bar(f, 0, 0x10, PCI_BAR_IO, "x",
                                          &bar_ops, &d), 0);
    assert_int_equal(pci_function_add_bar(f, 0, 0x10, PCI_BAR_IO, "x",
                                          &bar_ops, &d), -EBUSY);
    /* Nothing of the refused ones left a trace. */
    for (unsigned i = 1; i <= PCI_ROM_SLOT; i++)
        assert_int_equal(f->bar[i].size, 0);
    assert_int_equal(pci_get_long(&f->wmask[PCI_ROM_ADDRESS]), 0);
}

/* --- BAR decoding -------------------------------------------------------- */

static void test_bar_decode_io(void **state)
{
    struct fixture *fx = *state;

    add_standard_bars(fx);
    register_fn(fx);
    cfg_write(fx, PCI_BASE_ADDRESS_0, 0xc000, 4);
    /* Not decoded until the command register says so. */
    assert_ptr_equal(bus_find(&fx->bus, BUS_PIO, 0xc000), NULL);
    assert_int_equal(in(fx, 0xc010, 1), 0xff);
    assert_int_equal(fx->io_dev.reads, 0);

    cfg_write(fx, PCI_COMMAND, PCI_COMMAND_IO, 2);
    assert_ptr_equal(bus_find(&fx->bus, BUS_PIO, 0xc000),
                     &fx->fn.bar[0].region);
    assert_ptr_equal(bus_find(&fx->bus, BUS_PIO, 0xc0ff),
                     &fx->fn.bar[0].region);
    assert_ptr_equal(bus_find(&fx->bus, BUS_PIO, 0xc100), NULL);
    assert_int_equal(in(fx, 0xc010, 1), 0xc0);
    assert_int_equal(fx->io_dev.last_off, 0x10);
    out(fx, 0xc0fe, 0xbeef, 2);
    assert_int_equal(fx->io_dev.writes, 1);
    assert_int_equal(fx->io_dev.last_off, 0xfe);
    assert_int_equal(fx->io_dev.last_value, 0xbeef);
    /* Memory BAR is not touched by the I/O enable. */
    assert_false(fx->fn.bar[1].region.mapped);

    /* Moving it remaps. */
    cfg_write(fx, PCI_BASE_ADDRESS_0, 0xd100, 4);
    assert_ptr_equal(bus_find(&fx->bus, BUS_PIO, 0xc000), NULL);
    assert_ptr_equal(bus_find(&fx->bus, BUS_PIO, 0xd100),
                     &fx->fn.bar[0].region);
    assert_int_equal(fx->fn.bar[0].addr, 0xd100);
    /* A byte write to the middle of the BAR moves it too. */
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 1, 0xe2, 1);
    assert_ptr_equal(bus_find(&fx->bus, BUS_PIO, 0xe200),
                     &fx->fn.bar[0].region);
    assert_int_equal(fx->bus.spaces[BUS_PIO].count, 3); /* cf8, cfc, BAR */

    /* Decoding off unmaps. */
    cfg_write(fx, PCI_COMMAND, 0, 2);
    assert_false(fx->fn.bar[0].region.mapped);
    assert_ptr_equal(bus_find(&fx->bus, BUS_PIO, 0xe200), NULL);
    /* An I/O BAR beyond port 0xffff, or at 0, is not decoded. */
    cfg_write(fx, PCI_BASE_ADDRESS_0, 0x10000, 4);
    cfg_write(fx, PCI_COMMAND, PCI_COMMAND_IO, 2);
    assert_false(fx->fn.bar[0].region.mapped);
    cfg_write(fx, PCI_BASE_ADDRESS_0, 0x1ff00, 4);
    assert_false(fx->fn.bar[0].region.mapped);
    cfg_write(fx, PCI_BASE_ADDRESS_0, 0, 4);
    assert_false(fx->fn.bar[0].region.mapped);
    cfg_write(fx, PCI_BASE_ADDRESS_0, 0xff00, 4);
    assert_true(fx->fn.bar[0].region.mapped);
}

static void test_bar_decode_mem(void **state)
{
    struct fixture *fx = *state;

    add_standard_bars(fx);
    register_fn(fx);
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 4, 0xf0001000, 4);
    cfg_write(fx, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    assert_ptr_equal(bus_find(&fx->bus, BUS_MMIO, 0xf0001000),
                     &fx->fn.bar[1].region);
    assert_ptr_equal(bus_find(&fx->bus, BUS_MMIO, 0xf0001fff),
                     &fx->fn.bar[1].region);
    assert_false(fx->fn.bar[0].region.mapped); /* I/O not enabled */
    assert_int_equal(bus_read(&fx->bus, BUS_MMIO, 0xf0001008, 4), 0xb8);
    assert_int_equal(fx->mem_dev.last_off, 8);
    /* The region's max_access applies: an 8-byte access is split. */
    bus_write(&fx->bus, BUS_MMIO, 0xf0001010, 0x1122334455667788ull, 8);
    assert_int_equal(fx->mem_dev.writes, 2);
    assert_int_equal(fx->mem_dev.last_off, 0x14);
    assert_int_equal(fx->mem_dev.last_value, 0x11223344);

    /* Move, then turn decoding off. */
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 4, 0xe0000000, 4);
    assert_ptr_equal(bus_find(&fx->bus, BUS_MMIO, 0xf0001000), NULL);
    assert_ptr_equal(bus_find(&fx->bus, BUS_MMIO, 0xe0000000),
                     &fx->fn.bar[1].region);
    cfg_write(fx, PCI_COMMAND, PCI_COMMAND_IO, 2);
    assert_false(fx->fn.bar[1].region.mapped);
    assert_false(fx->fn.bar[0].region.mapped); /* BAR0 is still at 0 */
    assert_int_equal(fx->bus.spaces[BUS_MMIO].count, 0);

    /* ROM: needs both memory decoding and its own enable bit. */
    cfg_write(fx, PCI_ROM_ADDRESS, 0xfeb00000, 4);
    cfg_write(fx, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    assert_false(fx->fn.bar[PCI_ROM_SLOT].region.mapped);
    cfg_write(fx, PCI_ROM_ADDRESS, 0xfeb00001, 4);
    assert_ptr_equal(bus_find(&fx->bus, BUS_MMIO, 0xfeb0ffff),
                     &fx->fn.bar[PCI_ROM_SLOT].region);
    assert_int_equal(bus_read(&fx->bus, BUS_MMIO, 0xfeb00000, 2), 0xb0);
    assert_int_equal(fx->rom_dev.reads, 1);
    cfg_write(fx, PCI_ROM_ADDRESS, 0xfeb00000, 1); /* low byte: enable off */
    assert_false(fx->fn.bar[PCI_ROM_SLOT].region.mapped);
}

static void test_bar_over_other_region(void **state)
{
    struct fixture *fx = *state;
    struct bar_dev other_dev = {0};
    struct bus_region other;

    add_standard_bars(fx);
    register_fn(fx);
    bus_region_init(&other, "lapic-like", 0x1000, &bar_ops, &other_dev);
    assert_int_equal(bus_map(&fx->bus, BUS_MMIO, &other, 0xfee00800), 0);
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 4, 0xfee00000, 4);
    cfg_write(fx, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_IO, 2);
    /* Stays off, the other region keeps its range. */
    assert_false(fx->fn.bar[1].region.mapped);
    assert_ptr_equal(bus_find(&fx->bus, BUS_MMIO, 0xfee00800), &other);
    assert_ptr_equal(bus_find(&fx->bus, BUS_MMIO, 0xfee00000), NULL);
    bus_read(&fx->bus, BUS_MMIO, 0xfee00800, 4);
    assert_int_equal(other_dev.reads, 1);
    assert_int_equal(fx->mem_dev.reads, 0);
    /* Overlapping the other end: same. */
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 4, 0xfee01000, 4);
    assert_false(fx->fn.bar[1].region.mapped);
    assert_int_equal(fx->bus.spaces[BUS_MMIO].count, 1);
    /* Moved to a free place it maps. */
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 4, 0xfed00000, 4);
    assert_true(fx->fn.bar[1].region.mapped);
    assert_int_equal(fx->fn.bar[1].addr, 0xfed00000);
    /* And back over the other region: unmapped from the old place too. */
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 4, 0xfee00000, 4);
    assert_false(fx->fn.bar[1].region.mapped);
    assert_ptr_equal(bus_find(&fx->bus, BUS_MMIO, 0xfed00000), NULL);
    bus_unmap(&fx->bus, &other);
}

static void test_bar_sizing_value_unmapped(void **state)
{
    struct fixture *fx = *state;
    struct bar_dev d = {0};

    add_standard_bars(fx);
    assert_int_equal(pci_function_add_bar(&fx->fn, 2, 0x4000, PCI_BAR_MEM64,
                                          "mem64", &bar_ops, &d), 0);
    register_fn(fx);
    cfg_write(fx, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_IO, 2);
    /* Sizing with decoding on must not map anything at the top. */
    size_bar(fx, PCI_BASE_ADDRESS_0 + 4);
    assert_false(fx->fn.bar[1].region.mapped);
    size_bar(fx, PCI_BASE_ADDRESS_0 + 8);
    size_bar(fx, PCI_BASE_ADDRESS_0 + 12);
    assert_false(fx->fn.bar[2].region.mapped);
    size_bar(fx, PCI_ROM_ADDRESS);
    assert_false(fx->fn.bar[PCI_ROM_SLOT].region.mapped);
    size_bar(fx, PCI_BASE_ADDRESS_0);
    assert_false(fx->fn.bar[0].region.mapped);
    assert_int_equal(fx->bus.spaces[BUS_MMIO].count, 0);
    assert_int_equal(fx->bus.spaces[BUS_PIO].count, 2);
    /* A 32-bit BAR ending exactly below 4 GiB is legal... */
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 4, 0xffffe000, 4);
    assert_true(fx->fn.bar[1].region.mapped);
    /* ...but not one whose last byte is 0xffffffff. */
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 4, 0xfffff000, 4);
    assert_false(fx->fn.bar[1].region.mapped);
}

static void test_bar_64bit_above_4g(void **state)
{
    struct fixture *fx = *state;
    struct bar_dev d = {0};

    assert_int_equal(pci_function_add_bar(&fx->fn, 2, 0x4000,
                                          PCI_BAR_MEM64 | PCI_BAR_PREFETCH,
                                          "mem64", &bar_ops, &d), 0);
    register_fn(fx);
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 8, 0x00004000, 4);
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 12, 0x00000012, 4);
    cfg_write(fx, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    assert_true(fx->fn.bar[2].region.mapped);
    assert_int_equal(fx->fn.bar[2].addr, 0x1200004000ull);
    assert_ptr_equal(bus_find(&fx->bus, BUS_MMIO, 0x1200007fffull),
                     &fx->fn.bar[2].region);
    assert_ptr_equal(bus_find(&fx->bus, BUS_MMIO, 0x00004000), NULL);
    assert_int_equal(bus_read(&fx->bus, BUS_MMIO, 0x1200004004ull, 1), 0xb4);
    assert_int_equal(d.last_off, 4);
    /* Changing only the high half moves it. */
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 12, 0x00000001, 4);
    assert_int_equal(fx->fn.bar[2].addr, 0x100004000ull);
    assert_ptr_equal(bus_find(&fx->bus, BUS_MMIO, 0x100004000ull),
                     &fx->fn.bar[2].region);
    assert_ptr_equal(bus_find(&fx->bus, BUS_MMIO, 0x1200004000ull), NULL);
    /* And below 4 GiB a 64-bit BAR works as well. */
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 12, 0, 4);
    assert_int_equal(fx->fn.bar[2].addr, 0x4000);
    assert_int_equal(fx->bus.spaces[BUS_MMIO].count, 1);
}

/* --- multi-function ------------------------------------------------------ */

static void test_multifunction(void **state)
{
    struct fixture *fx = *state;
    struct pci_function f1, f2;

    pci_function_init(&f1, "fn1", 0x8086, 0x7111, 0x010180, 0, NULL, NULL);
    pci_function_init(&f2, "fn2", 0x8086, 0x7112, 0x0c0300, 0, NULL, NULL);

    /* Function 1 first (libxl adds 7 down to 0), then function 0. */
    assert_int_equal(pci_register_function(&fx->pci, &f1, PCI_DEVFN(2, 1)), 0);
    register_fn(fx);
    assert_int_equal(cfg_read(fx, PCI_HEADER_TYPE, 1), 0x80);
    assert_int_equal(f1.config[PCI_HEADER_TYPE], 0);
    /* Reset keeps it. */
    pci_function_reset(&fx->fn);
    assert_int_equal(fx->fn.config[PCI_HEADER_TYPE], 0x80);

    /* Remove function 1, and the bit goes. */
    pci_unregister_function(&f1);
    assert_int_equal(cfg_read(fx, PCI_HEADER_TYPE, 1), 0);
    pci_function_reset(&fx->fn);
    assert_int_equal(fx->fn.config[PCI_HEADER_TYPE], 0);

    /* Function 0 first, then 2 and 1; the bit stays until both are gone. */
    assert_int_equal(pci_register_function(&fx->pci, &f2, PCI_DEVFN(2, 7)), 0);
    assert_int_equal(cfg_read(fx, PCI_HEADER_TYPE, 1), 0x80);
    assert_int_equal(pci_register_function(&fx->pci, &f1, PCI_DEVFN(2, 1)), 0);
    pci_unregister_function(&f2);
    assert_int_equal(cfg_read(fx, PCI_HEADER_TYPE, 1), 0x80);
    pci_unregister_function(&f1);
    assert_int_equal(cfg_read(fx, PCI_HEADER_TYPE, 1), 0);
    /* A neighbour slot does not count. */
    assert_int_equal(pci_register_function(&fx->pci, &f1, PCI_DEVFN(3, 1)), 0);
    assert_int_equal(cfg_read(fx, PCI_HEADER_TYPE, 1), 0);
    /* Readable through CF8 with a dword access too (header type is byte 2). */
    out(fx, 0xcf8, cf8(0, FN_DEVFN, PCI_CACHE_LINE_SIZE), 4);
    assert_int_equal((in(fx, 0xcfc, 4) >> 16) & 0xff, 0);
    pci_unregister_function(&f1);
}

/* --- registration, reset, hooks ------------------------------------------ */

static void test_register_occupied(void **state)
{
    struct fixture *fx = *state;
    struct pci_function other;

    register_fn(fx);
    pci_function_init(&other, "intruder", 0x1234, 0x5678, 0, 0, NULL, NULL);
    assert_int_equal(pci_register_function(&fx->pci, &other, FN_DEVFN), -EEXIST);
    assert_false(other.registered);
    assert_ptr_equal(pci_find_function(&fx->pci, FN_DEVFN), &fx->fn);
    assert_int_equal(cfg_read(fx, PCI_VENDOR_ID, 2), 0x10ec);
    /* Elsewhere it is fine. */
    assert_int_equal(pci_register_function(&fx->pci, &other, PCI_DEVFN(9, 0)),
                     0);
    assert_ptr_equal(pci_find_function(&fx->pci, PCI_DEVFN(9, 0)), &other);
    assert_int_equal(other.devfn, PCI_DEVFN(9, 0));
    pci_unregister_function(&other);
    assert_ptr_equal(pci_find_function(&fx->pci, PCI_DEVFN(9, 0)), NULL);
}

static void test_register_twice(void **state)
{
    struct fixture *fx = *state;

    register_fn(fx);
    /* The same function a second time, elsewhere: refused, nothing moves. */
    assert_int_equal(pci_register_function(&fx->pci, &fx->fn, PCI_DEVFN(5, 0)),
                     -EBUSY);
    assert_true(fx->fn.registered);
    assert_int_equal(fx->fn.devfn, FN_DEVFN);
    assert_ptr_equal(pci_find_function(&fx->pci, PCI_DEVFN(5, 0)), NULL);
    assert_int_equal(fx->bus.spaces[BUS_PCI_CFG].count, 1);
    assert_ptr_equal(bus_find(&fx->bus, BUS_PCI_CFG,
                              BUS_PCI_CFG_ADDR(FN_DEVFN, 0)),
                     &fx->fn.cfg_region);
    pci_unregister_function(&fx->fn);
    assert_int_equal(fx->bus.spaces[BUS_PCI_CFG].count, 0);
    assert_ptr_equal(pci_find_function(&fx->pci, FN_DEVFN), NULL);
    pci_unregister_function(&fx->fn); /* twice: harmless */
}

static void test_unregister_unmaps(void **state)
{
    struct fixture *fx = *state;

    add_standard_bars(fx);
    register_fn(fx);
    cfg_write(fx, PCI_BASE_ADDRESS_0, 0xc000, 4);
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 4, 0xf0000000, 4);
    cfg_write(fx, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_IO, 2);
    assert_true(fx->fn.bar[0].region.mapped);
    assert_true(fx->fn.bar[1].region.mapped);
    pci_unregister_function(&fx->fn);
    assert_false(fx->fn.bar[0].region.mapped);
    assert_false(fx->fn.bar[1].region.mapped);
    assert_false(fx->fn.registered);
    assert_int_equal(cfg_read(fx, PCI_VENDOR_ID, 4), 0xffffffffu);
    assert_int_equal(fx->bus.spaces[BUS_MMIO].count, 0);
    assert_int_equal(fx->bus.spaces[BUS_PIO].count, 2);
}

static void test_reset(void **state)
{
    struct fixture *fx = *state;
    uint8_t power_on[PCI_CONFIG_SIZE];

    add_standard_bars(fx);
    register_fn(fx);
    memcpy(power_on, fx->fn.config, sizeof(power_on));
    cfg_write(fx, PCI_BASE_ADDRESS_0, 0xc000, 4);
    cfg_write(fx, PCI_BASE_ADDRESS_0 + 4, 0xf0000000, 4);
    cfg_write(fx, PCI_ROM_ADDRESS, 0xf1000001, 4);
    cfg_write(fx, PCI_INTERRUPT_LINE, 0x0b, 1);
    cfg_write(fx, PCI_LATENCY_TIMER, 0x40, 1);
    cfg_write(fx, PCI_COMMAND, 0x0507, 2);
    assert_int_equal(fx->bus.spaces[BUS_MMIO].count, 2);
    assert_int_equal(fx->bus.spaces[BUS_PIO].count, 3);

    pci_function_reset(&fx->fn);
    assert_int_equal(fx->resets, 1);
    assert_memory_equal(fx->fn.config, power_on, sizeof(power_on));
    assert_int_equal(fx->bus.spaces[BUS_MMIO].count, 0);
    assert_int_equal(fx->bus.spaces[BUS_PIO].count, 2);
    for (unsigned i = 0; i <= PCI_ROM_SLOT; i++)
        assert_false(fx->fn.bar[i].region.mapped);
    assert_int_equal(cfg_read(fx, PCI_BASE_ADDRESS_0, 4), PCI_BAR_IO);
    /* Still registered and usable: programming again maps again. */
    cfg_write(fx, PCI_BASE_ADDRESS_0, 0xc000, 4);
    cfg_write(fx, PCI_COMMAND, PCI_COMMAND_IO, 2);
    assert_true(fx->fn.bar[0].region.mapped);

    /* Bus-wide reset reaches every function. */
    pci_bus_reset(&fx->pci);
    assert_int_equal(fx->resets, 2);
    assert_false(fx->fn.bar[0].region.mapped);
}

static void test_config_hooks(void **state)
{
    struct fixture *fx = *state;

    register_fn(fx);
    fx->hook_reads = 0;
    assert_int_equal(cfg_read(fx, PCI_STATUS, 2), PCI_STATUS_INTERRUPT);
    assert_int_equal(fx->hook_reads, 1);
    /* Other widths see the stored value. */
    assert_int_equal(cfg_read(fx, PCI_STATUS, 1), 0);
    assert_int_equal(fx->hook_reads, 2);

    /* The write hook sees the masked-in value after the core applied it. */
    cfg_write(fx, PCI_COMMAND, 0xffff, 2);
    assert_int_equal(fx->hook_writes, 1);
    assert_int_equal(fx->hook_reg, PCI_COMMAND);
    assert_int_equal(fx->hook_size, 2);
    assert_int_equal(fx->hook_value, 0xffff);
    assert_int_equal(pci_get_word(&fx->fn.config[PCI_COMMAND]), 0x0507);
    /* Even writes to read-only registers reach it (the device may care). */
    cfg_write(fx, PCI_VENDOR_ID + 1, 0x12, 1);
    assert_int_equal(fx->hook_writes, 2);
    assert_int_equal(fx->hook_reg, PCI_VENDOR_ID + 1);
    assert_int_equal(fx->hook_size, 1);
}

static void test_config_out_of_range(void **state)
{
    struct fixture *fx = *state;

    /* Direct calls with bad sizes and offsets answer safely. */
    assert_int_equal(pci_config_read(&fx->fn, 0x100, 1), 0xffffffffu);
    assert_int_equal(pci_config_read(&fx->fn, 0, 0), 0xffffffffu);
    assert_int_equal(pci_config_read(&fx->fn, 0, 8), 0xffffffffu);
    fx->fn.config[0xfe] = 0x12;
    fx->fn.config[0xff] = 0x34;
    fx->hook_reads = 0;
    assert_int_equal(pci_config_read(&fx->fn, 0xfe, 4), 0xffff3412u);
    fx->fn.wmask[0xff] = 0xff;
    pci_config_write(&fx->fn, 0xff, 0xaabbccdd, 4);
    assert_int_equal(fx->fn.config[0xff], 0xdd);
    assert_int_equal(fx->hook_size, 1);
    pci_config_write(&fx->fn, 0x100, 0xff, 1);
    pci_config_write(&fx->fn, 0x3c, 0xff, 0);
    pci_config_write(&fx->fn, 0x3c, 0xff, 5);
    assert_int_equal(fx->fn.config[PCI_INTERRUPT_LINE], 0);
    assert_int_equal(fx->hook_writes, 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_cf8_cfc_widths),
        T(test_cf8_disabled),
        T(test_cf8_other_bus),
        T(test_cf8_empty_devfn),
        T(test_cf8_readback_and_narrow),
        T(test_cf9_hooks),
        T(test_host_map_conflict),
        T(test_wmask_read_only),
        T(test_w1c_status),
        T(test_bar_sizing),
        T(test_bar_sizing_large_mem64),
        T(test_add_bar_invalid),
        T(test_bar_decode_io),
        T(test_bar_decode_mem),
        T(test_bar_over_other_region),
        T(test_bar_sizing_value_unmapped),
        T(test_bar_64bit_above_4g),
        T(test_multifunction),
        T(test_register_occupied),
        T(test_register_twice),
        T(test_unregister_unmaps),
        T(test_reset),
        T(test_config_hooks),
        T(test_config_out_of_range),
    };

    return cmocka_run_group_tests_name("pci", tests, group_setup,
                                       group_teardown);
}
