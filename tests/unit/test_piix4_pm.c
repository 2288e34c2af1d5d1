/* Unit tests for the PIIX4 PM function (hw/piix4_pm.c), driven the way a
 * guest does: configuration cycles through 0xCF8/0xCFC and port I/O on a
 * real struct bus, interrupts recorded from the irq sink. */
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
#include "../../hw/irq.h"
#include "../../hw/pci.h"
#include "../../hw/piix4_pm.h"
#include "../../lib/log.h"

#define MAX_EVENTS 64

struct irq_event {
    unsigned irq;
    bool level;
};

struct fixture {
    struct bus bus;
    struct pci_bus pci;
    struct pci_host host;
    struct piix4_pm pm;
    struct irq_sink sink;
    struct irq_event irqs[MAX_EVENTS];
    unsigned nirqs;
    unsigned poweroffs, suspends;
    unsigned cleared[MAX_EVENTS];
    unsigned ncleared;
    /* gpe_cleared re-raises this bit when set (a queued hot-plug event). */
    int reraise_bit;
    char *log_buf;
    size_t log_size;
    FILE *log;
    /* The software machine's clock (emulate_pm1_evt_and_timer). */
    struct hw_clock clock;
    uint64_t now;
    bool sci;
};

static void rec_isa_irq(void *opaque, unsigned irq, bool level)
{
    struct fixture *f = opaque;

    assert_true(f->nirqs < MAX_EVENTS);
    f->irqs[f->nirqs++] = (struct irq_event){irq, level};
    f->sci = level;
}

static uint64_t clock_now(void *opaque)
{
    return ((struct fixture *)opaque)->now;
}

static const struct irq_sink_ops rec_ops = {.isa_irq = rec_isa_irq};

static void on_poweroff(void *opaque) { ((struct fixture *)opaque)->poweroffs++; }
static void on_suspend(void *opaque) { ((struct fixture *)opaque)->suspends++; }

static void on_gpe_cleared(void *opaque, unsigned bit)
{
    struct fixture *f = opaque;

    assert_true(f->ncleared < MAX_EVENTS);
    f->cleared[f->ncleared++] = bit;
    if (f->reraise_bit >= 0) {
        unsigned again = (unsigned)f->reraise_bit;

        f->reraise_bit = -1;
        piix4_pm_gpe_raise(&f->pm, again);
    }
}

static struct fixture *fixture_new(const struct piix4_pm_config *config)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct piix4_pm_ops ops = {on_poweroff, on_suspend, on_gpe_cleared, NULL};
    struct piix4_pm_config sim, *cfg = &sim;

    assert_non_null(f);
    f->reraise_bit = -1;
    f->log = open_memstream(&f->log_buf, &f->log_size);
    assert_non_null(f->log);
    log_set_stream(f->log);
    bus_init(&f->bus);
    pci_bus_init(&f->pci, &f->bus);
    assert_int_equal(pci_host_init(&f->host, &f->bus), 0);
    f->sink = (struct irq_sink){&rec_ops, f};
    ops.opaque = f;
    sim = *config;
    f->clock = (struct hw_clock){clock_now, f};
    f->now = 1000;
    if (sim.emulate_pm1_evt_and_timer)
        sim.clock = &f->clock;
    assert_int_equal(piix4_pm_init(&f->pm, &f->pci, &f->bus, &f->sink, cfg,
                                   &ops),
                     0);
    return f;
}

static int setup_default(void **state)
{
    static const struct piix4_pm_config cfg = {.ncpus_online = 1};

    *state = fixture_new(&cfg);
    return 0;
}

static int setup_trad(void **state)
{
    static const struct piix4_pm_config cfg = {
        .fixed_pmba = true, .sci_en_at_reset = true, .ncpus_online = 2};

    *state = fixture_new(&cfg);
    return 0;
}

static int setup_sim(void **state)
{
    static const struct piix4_pm_config cfg = {
        .ncpus_online = 1, .emulate_pm1_evt_and_timer = true};

    *state = fixture_new(&cfg);
    return 0;
}

static int setup_sim_trad_32bit(void **state)
{
    static const struct piix4_pm_config cfg = {
        .fixed_pmba = true, .sci_en_at_reset = true, .ncpus_online = 1,
        .emulate_pm1_evt_and_timer = true, .pm_timer_32bit = true};

    *state = fixture_new(&cfg);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    piix4_pm_fini(&f->pm);
    pci_host_fini(&f->host);
    bus_fini(&f->bus);
    log_set_stream(NULL);
    fclose(f->log);
    free(f->log_buf);
    free(f);
    return 0;
}

/* --- guest-side helpers -------------------------------------------------- */

static uint32_t inp(struct fixture *f, uint16_t port, unsigned size)
{
    return (uint32_t)bus_read(&f->bus, BUS_PIO, port, size);
}

static void outp(struct fixture *f, uint16_t port, uint32_t value,
                 unsigned size)
{
    bus_write(&f->bus, BUS_PIO, port, value, size);
}

/* Configuration mechanism #1, as hvmloader's pci_read/pci_write do it. */
static void cf8_select(struct fixture *f, uint8_t devfn, unsigned reg)
{
    outp(f, 0xcf8, 0x80000000u | (uint32_t)devfn << 8 | (reg & 0xfc), 4);
}

static uint32_t cfg_read(struct fixture *f, unsigned reg, unsigned size)
{
    cf8_select(f, PIIX4_PM_DEVFN, reg);
    return inp(f, (uint16_t)(0xcfc + (reg & 3)), size);
}

static void cfg_write(struct fixture *f, unsigned reg, uint32_t value,
                      unsigned size)
{
    cf8_select(f, PIIX4_PM_DEVFN, reg);
    outp(f, (uint16_t)(0xcfc + (reg & 3)), value, size);
}

/* hvmloader's pci_setup() for class 0x0680 (tools/firmware/hvmloader/pci.c),
 * in its order and with its access widths. */
static void hvmloader_program(struct fixture *f)
{
    cfg_write(f, 0x20, 0x0000, 2);
    cfg_write(f, 0xd2, 0x0000, 2);
    cfg_write(f, 0x22, 0x0000, 2);
    cfg_write(f, 0x3c, 0x0009, 2);
    cfg_write(f, 0x3d, 0x0001, 2);
    cfg_write(f, 0x40, 0xb000 | 1, 4);
    cfg_write(f, 0x80, 0x01, 1);
}

static void dump_config(struct fixture *f, uint8_t out[256])
{
    for (unsigned reg = 0; reg < 256; reg += 4)
        pci_set_long(&out[reg], cfg_read(f, reg, 4));
}

static void assert_config(struct fixture *f, const uint8_t expected[256])
{
    uint8_t got[256];

    dump_config(f, got);
    for (unsigned i = 0; i < 256; i++) {
        if (got[i] != expected[i])
            fail_msg("config[0x%02x] = 0x%02x, expected 0x%02x", i, got[i],
                     expected[i]);
    }
}

static void expect_irqs(struct fixture *f, const struct irq_event *want,
                        unsigned n)
{
    assert_int_equal(f->nirqs, n);
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(f->irqs[i].irq, want[i].irq);
        assert_int_equal(f->irqs[i].level, want[i].level);
    }
    f->nirqs = 0;
}

static const struct irq_event SCI_UP = {9, true}, SCI_DOWN = {9, false};

/* QEMU's PIIX4_PM on xenfv as the guest first sees it (hw/acpi/piix4.c
 * realize and machine_ready with no LPT or COM port, hw/pci/pci.c defaults). */
static const uint8_t power_on_config[256] = {
    [0x00] = 0x86, [0x01] = 0x80, [0x02] = 0x13, [0x03] = 0x71,
    [0x06] = 0x80, [0x07] = 0x02,
    [0x08] = 0x03, [0x0a] = 0x80, [0x0b] = 0x06,
    [0x2c] = 0xf4, [0x2d] = 0x1a, [0x2e] = 0x00, [0x2f] = 0x11,
    [0x3d] = 0x01,
    [0x40] = 0x01,
    [0x5b] = 0x02,
    [0x5f] = 0x10,
    [0x63] = 0x60,
    [0x90] = 0x01, [0x91] = 0xb1,
    [0xd2] = 0x09,
};

/* --- configuration space ------------------------------------------------- */

static void test_config_power_on(void **state)
{
    struct fixture *f = *state;

    assert_config(f, power_on_config);
    assert_false(f->pm.fn.hotpluggable);
    assert_int_equal(f->pm.fn.devfn, 0x0b);
    assert_ptr_equal(pci_find_function(&f->pci, PCI_DEVFN(1, 3)), &f->pm.fn);
}

static void test_config_after_hvmloader(void **state)
{
    struct fixture *f = *state;
    uint8_t expected[256];

    memcpy(expected, power_on_config, sizeof(expected));
    hvmloader_program(f);
    expected[0x3c] = 0x09;
    expected[0x40] = 0x01;
    expected[0x41] = 0xb0;
    expected[0x80] = 0x01;
    expected[0xd2] = 0x00;
    assert_config(f, expected);
}

static void test_config_write_masks(void **state)
{
    struct fixture *f = *state;

    /* PMBA: bit 0 hard-wired, bits 5:1 and 31:16 reserved. */
    cfg_write(f, 0x40, 0xffffffff, 4);
    assert_int_equal(cfg_read(f, 0x40, 4), 0x0000ffc1);
    cfg_write(f, 0x40, 0x00000000, 4);
    assert_int_equal(cfg_read(f, 0x40, 4), 0x00000001);
    /* BAR4 (0x20/0x22) is not implemented: hvmloader's writes land on
     * read-only zeroes, as in QEMU. */
    cfg_write(f, 0x20, 0xffffffff, 4);
    assert_int_equal(cfg_read(f, 0x20, 4), 0);
    /* Identity and interrupt pin are read-only, interrupt line is not. */
    cfg_write(f, 0x00, 0xffffffff, 4);
    cfg_write(f, 0x3c, 0xffffffff, 4);
    assert_int_equal(cfg_read(f, 0x00, 4), 0x71138086);
    assert_int_equal(cfg_read(f, 0x3c, 4), 0x000001ff);
    /* The rest of the device area is storage, as QEMU's wmask makes it. */
    cfg_write(f, 0xd2, 0x5a, 1);
    cfg_write(f, 0xfc, 0xdeadbeef, 4);
    assert_int_equal(cfg_read(f, 0xd2, 1), 0x5a);
    assert_int_equal(cfg_read(f, 0xfc, 4), 0xdeadbeef);
}

/* --- PM1a_CNT ------------------------------------------------------------ */

static void test_pm1_cnt_follows_pmba(void **state)
{
    struct fixture *f = *state;

    /* Not decoded until hvmloader enables PM I/O. */
    assert_int_equal(inp(f, 0xb004, 2), 0xffff);
    cfg_write(f, 0x40, 0xb001, 4);
    assert_int_equal(inp(f, 0xb004, 2), 0xffff);
    cfg_write(f, 0x80, 0x01, 1);
    assert_int_equal(inp(f, 0xb004, 2), 0x0000);
    outp(f, 0xb004, 0x0001, 2);
    assert_int_equal(inp(f, 0xb004, 2), 0x0001);
    /* Only PM1a_CNT is ours: PM1a_EVT and the timer stay Xen's. */
    assert_null(bus_find(&f->bus, BUS_PIO, 0xb000));
    assert_null(bus_find(&f->bus, BUS_PIO, 0xb008));

    /* Moving PMBA moves the register, by bytes too. */
    cfg_write(f, 0x41, 0xc0, 1);
    assert_int_equal(inp(f, 0xb004, 2), 0xffff);
    assert_int_equal(inp(f, 0xc004, 2), 0x0001);
    /* Clearing PMIOSE turns it off, setting it brings it back. */
    cfg_write(f, 0x80, 0x00, 1);
    assert_int_equal(inp(f, 0xc004, 2), 0xffff);
    cfg_write(f, 0x80, 0x01, 1);
    assert_int_equal(inp(f, 0xc004, 1), 0x01);
    assert_int_equal(inp(f, 0xc005, 1), 0x00);
}

static void test_pm1_cnt_blocked_by_other_device(void **state)
{
    struct fixture *f = *state;
    static const struct bus_region_ops none = {0};
    struct bus_region other;

    bus_region_init(&other, "other", 2, &none, NULL);
    assert_int_equal(bus_map(&f->bus, BUS_PIO, &other, 0xc004), 0);
    cfg_write(f, 0x40, 0xc001, 4);
    cfg_write(f, 0x80, 0x01, 1);
    assert_ptr_equal(bus_find(&f->bus, BUS_PIO, 0xc004), &other);
    assert_false(f->pm.pm1_cnt_region.mapped);
    /* Moved somewhere free, it decodes again. */
    cfg_write(f, 0x40, 0xb001, 4);
    assert_int_equal(inp(f, 0xb004, 2), 0x0000);
    bus_unmap(&f->bus, &other);
}

static void test_s5_request(void **state)
{
    struct fixture *f = *state;

    hvmloader_program(f);
    outp(f, 0xb004, 0x0001, 2);
    /* \_S5 is {0, 0}: SLP_TYP 0 with SLP_EN. */
    outp(f, 0xb004, 0x2001, 2);
    assert_int_equal(f->poweroffs, 1);
    assert_int_equal(f->suspends, 0);
    /* SLP_EN is write-only. */
    assert_int_equal(inp(f, 0xb004, 2), 0x0001);
    /* SLP_TYP without SLP_EN does nothing. */
    outp(f, 0xb004, 0x0001, 2);
    assert_int_equal(f->poweroffs, 1);
}

static void test_s3_request(void **state)
{
    struct fixture *f = *state;

    hvmloader_program(f);
    /* \_S3 is {1, 1}. */
    outp(f, 0xb004, 0x2401, 2);
    assert_int_equal(f->suspends, 1);
    assert_int_equal(f->poweroffs, 0);
    assert_int_equal(inp(f, 0xb004, 2), 0x0401);
    /* The high byte alone, as a byte-access AML field would write it. */
    outp(f, 0xb005, 0x24, 1);
    assert_int_equal(f->suspends, 2);
    assert_int_equal(inp(f, 0xb004, 2), 0x0401);
    /* A low-byte write keeps SLP_TYP. */
    outp(f, 0xb004, 0x00, 1);
    assert_int_equal(inp(f, 0xb004, 2), 0x0400);
}

static void test_other_sleep_types_ignored(void **state)
{
    struct fixture *f = *state;

    hvmloader_program(f);
    for (unsigned typ = 2; typ < 8; typ++)
        outp(f, 0xb004, (uint32_t)(0x2000 | typ << 10), 2);
    assert_int_equal(f->poweroffs, 0);
    assert_int_equal(f->suspends, 0);
    assert_int_equal(inp(f, 0xb004, 2), 0x1c00);
    assert_non_null(strstr(f->log_buf, "sleep type 2"));
}

/* --- SMI_CMD ------------------------------------------------------------- */

static void test_smi_cmd(void **state)
{
    struct fixture *f = *state;

    hvmloader_program(f);
    assert_int_equal(inp(f, 0xb004, 2), 0x0000); /* QEMU: clear at reset */
    outp(f, 0xb2, 0xf1, 1);                       /* ACPI_ENABLE */
    assert_int_equal(inp(f, 0xb004, 2), 0x0001);
    assert_int_equal(inp(f, 0xb2, 1), 0xf1);
    outp(f, 0xb2, 0xf0, 1); /* ACPI_DISABLE */
    assert_int_equal(inp(f, 0xb004, 2), 0x0000);
    outp(f, 0xb2, 0xf1, 1);
    outp(f, 0xb2, 0x55, 1); /* anything else: stored, no effect */
    assert_int_equal(inp(f, 0xb004, 2), 0x0001);
    assert_int_equal(inp(f, 0xb2, 1), 0x55);
    /* 0xB3 is QEMU's APM status byte: plain storage. */
    assert_int_equal(inp(f, 0xb3, 1), 0x00);
    outp(f, 0xb3, 0xa5, 1);
    assert_int_equal(inp(f, 0xb3, 1), 0xa5);
    assert_int_equal(inp(f, 0xb004, 2), 0x0001);
    /* A word write reaches both bytes. */
    outp(f, 0xb2, 0x3cf0, 2);
    assert_int_equal(inp(f, 0xb004, 2), 0x0000);
    assert_int_equal(inp(f, 0xb2, 2), 0x3cf0);
}

/* --- GPE0 and the SCI ---------------------------------------------------- */

static void test_gpe_w1c_and_sci(void **state)
{
    struct fixture *f = *state;

    /* A status bit without its enable bit: no SCI. */
    piix4_pm_gpe_raise(&f->pm, 1);
    assert_int_equal(inp(f, 0xafe0, 1), 0x02);
    expect_irqs(f, NULL, 0);
    /* Enabling it raises the SCI, once. */
    outp(f, 0xafe2, 0x02, 1);
    expect_irqs(f, &SCI_UP, 1);
    piix4_pm_gpe_raise(&f->pm, 1);
    outp(f, 0xafe2, 0x02, 1);
    expect_irqs(f, NULL, 0);
    assert_int_equal(inp(f, 0xafe2, 1), 0x02);
    /* Writing 0 clears nothing; writing 1 to another bit neither. */
    outp(f, 0xafe0, 0x00, 1);
    outp(f, 0xafe0, 0x08, 1);
    expect_irqs(f, NULL, 0);
    assert_int_equal(f->ncleared, 0);
    /* Writing 1 to the bit clears it and lowers the SCI. */
    outp(f, 0xafe0, 0x02, 1);
    expect_irqs(f, &SCI_DOWN, 1);
    assert_int_equal(inp(f, 0xafe0, 1), 0x00);
    assert_int_equal(f->ncleared, 1);
    assert_int_equal(f->cleared[0], 1);

    /* Disabling a pending bit lowers the SCI too; the status stays. */
    piix4_pm_gpe_raise(&f->pm, 1);
    outp(f, 0xafe2, 0x00, 1);
    assert_int_equal(inp(f, 0xafe0, 1), 0x02);
    expect_irqs(f, (const struct irq_event[]){SCI_UP, SCI_DOWN}, 2);
}

static void test_gpe_high_byte_and_wide_access(void **state)
{
    struct fixture *f = *state;

    piix4_pm_gpe_raise(&f->pm, 9);
    piix4_pm_gpe_raise(&f->pm, 3);
    piix4_pm_gpe_raise(&f->pm, 16); /* does not exist: ignored */
    assert_int_equal(inp(f, 0xafe0, 2), 0x0208);
    /* A dword write sets both enable bytes at once... */
    outp(f, 0xafe0, 0x02080000, 4);
    assert_int_equal(inp(f, 0xafe0, 4), 0x02080208);
    expect_irqs(f, &SCI_UP, 1);
    /* ...and a word write to status clears both, low bit first. */
    outp(f, 0xafe0, 0xffff, 2);
    assert_int_equal(inp(f, 0xafe0, 4), 0x02080000);
    expect_irqs(f, &SCI_DOWN, 1);
    assert_int_equal(f->ncleared, 2);
    assert_int_equal(f->cleared[0], 3);
    assert_int_equal(f->cleared[1], 9);
}

static void test_gpe_cleared_may_reraise(void **state)
{
    struct fixture *f = *state;

    /* The trad hot-plug queue shows its next event when the guest acks. */
    outp(f, 0xafe2, 0x08, 1);
    piix4_pm_gpe_raise(&f->pm, 3);
    f->reraise_bit = 3;
    outp(f, 0xafe0, 0x08, 1);
    expect_irqs(f, (const struct irq_event[]){SCI_UP, SCI_DOWN, SCI_UP}, 3);
    assert_int_equal(inp(f, 0xafe0, 1), 0x08);
    assert_int_equal(f->ncleared, 1);
}

/* --- CPU hot-plug map ---------------------------------------------------- */

static void test_cpu_map(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(inp(f, 0xaf00, 1), 0x01); /* ncpus_online = 1 */
    for (unsigned i = 1; i < 32; i++)
        assert_int_equal(inp(f, (uint16_t)(0xaf00 + i), 1), 0x00);
    assert_int_equal(inp(f, 0xaf20, 1), 0xff); /* past the map */

    outp(f, 0xafe2, 0x04, 1);
    expect_irqs(f, NULL, 0);
    assert_int_equal(piix4_pm_set_cpu_online(&f->pm, 5, true), 0);
    assert_int_equal(inp(f, 0xaf00, 1), 0x21);
    assert_int_equal(inp(f, 0xafe0, 1), 0x04);
    expect_irqs(f, &SCI_UP, 1);
    outp(f, 0xafe0, 0x04, 1);
    expect_irqs(f, &SCI_DOWN, 1);

    /* No change, no event. */
    assert_int_equal(piix4_pm_set_cpu_online(&f->pm, 5, true), 0);
    assert_int_equal(inp(f, 0xafe0, 1), 0x00);
    expect_irqs(f, NULL, 0);

    assert_int_equal(piix4_pm_set_cpu_online(&f->pm, 127, true), 0);
    assert_int_equal(inp(f, 0xaf0f, 1), 0x80);
    assert_int_equal(piix4_pm_set_cpu_online(&f->pm, 128, true), -EINVAL);
    outp(f, 0xafe0, 0x04, 1);
    f->nirqs = 0;
    assert_int_equal(piix4_pm_set_cpu_online(&f->pm, 0, false), 0);
    assert_int_equal(inp(f, 0xaf00, 4), 0x00000020);
    expect_irqs(f, &SCI_UP, 1);

    /* Read-only for the guest. */
    outp(f, 0xaf00, 0xff, 1);
    outp(f, 0xaf00, 0xffffffff, 4);
    assert_int_equal(inp(f, 0xaf00, 4), 0x00000020);
}

static void test_debug_port(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(inp(f, 0xb044, 4), 0xffffffff);
    assert_int_equal(inp(f, 0xb045, 1), 0xff);
    outp(f, 0xb044, 0x12345678, 4);
    outp(f, 0xb045, 0x9a, 1);
    fflush(f->log);
    assert_non_null(strstr(f->log_buf, "0xb044 <- 0x12345678"));
    assert_non_null(strstr(f->log_buf, "0xb045 <- 0x9a"));
}

/* --- reset and the qemu-trad variant ------------------------------------- */

static void test_reset(void **state)
{
    struct fixture *f = *state;

    hvmloader_program(f);
    outp(f, 0xb2, 0xf1, 1);
    outp(f, 0xafe2, 0x0e, 1);
    piix4_pm_gpe_raise(&f->pm, 2);
    expect_irqs(f, &SCI_UP, 1);
    assert_int_equal(piix4_pm_set_cpu_online(&f->pm, 1, true), 0);

    pci_bus_reset(&f->pci);
    expect_irqs(f, &SCI_DOWN, 1);
    assert_int_equal(inp(f, 0xafe0, 4), 0x00000000);
    assert_int_equal(f->ncleared, 0); /* not the guest's doing */
    assert_config(f, power_on_config);
    assert_int_equal(inp(f, 0xb004, 2), 0xffff); /* PMIOSE clear again */
    hvmloader_program(f);
    assert_int_equal(inp(f, 0xb004, 2), 0x0000); /* SCI_EN back to clear */
    assert_int_equal(inp(f, 0xaf00, 1), 0x03);   /* vCPUs are not state */
    assert_int_equal(inp(f, 0xb2, 1), 0xf1);     /* nor is the APM byte */
}

static void test_trad_fixed_pmba(void **state)
{
    struct fixture *f = *state;

    /* Decoded from the start, with SCI_EN set, wherever PMBA points. */
    assert_int_equal(inp(f, 0xb004, 2), 0x0001);
    assert_int_equal(inp(f, 0xaf00, 1), 0x03);
    cfg_write(f, 0x40, 0xc001, 4);
    cfg_write(f, 0x80, 0x01, 1);
    assert_int_equal(cfg_read(f, 0x40, 4), 0xc001);
    assert_int_equal(inp(f, 0xc004, 2), 0xffff);
    outp(f, 0xb004, 0x2001, 2);
    assert_int_equal(f->poweroffs, 1);
    outp(f, 0xb004, 0x0000, 2);
    pci_bus_reset(&f->pci);
    assert_int_equal(inp(f, 0xb004, 2), 0x0001);
}

static void test_machine_ready(void **state)
{
    struct fixture *f = *state;
    static const struct bus_region_ops none = {0};
    struct bus_region com1, lpt1;

    bus_region_init(&com1, "com1", 8, &none, NULL);
    bus_region_init(&lpt1, "lpt1", 8, &none, NULL);
    assert_int_equal(bus_map(&f->bus, BUS_PIO, &com1, 0x3f8), 0);
    assert_int_equal(bus_map(&f->bus, BUS_PIO, &lpt1, 0x378), 0);
    piix4_pm_machine_ready(&f->pm);
    assert_int_equal(cfg_read(f, 0x5c, 4), 0x90000000);
    assert_int_equal(cfg_read(f, 0x60, 4), 0x60000000);
    assert_int_equal(cfg_read(f, 0x64, 4), 0x08000000);
    pci_bus_reset(&f->pci);
    assert_int_equal(cfg_read(f, 0x5c, 4), 0x90000000);
    assert_int_equal(cfg_read(f, 0x64, 4), 0x08000000);
    bus_unmap(&f->bus, &com1);
    bus_unmap(&f->bus, &lpt1);
}

static void test_hostile_accesses(void **state)
{
    struct fixture *f = *state;

    hvmloader_program(f);
    outp(f, 0xb2, 0xf1, 1);
    /* A dword at PM1a_CNT spills into ports nobody decodes. */
    assert_int_equal(inp(f, 0xb004, 4), 0xffff0001);
    outp(f, 0xb004, 0xffff0001, 4);
    assert_int_equal(inp(f, 0xb004, 2), 0x0001);
    /* Straddling the end of GPE0 and of the CPU map. */
    assert_int_equal(inp(f, 0xafe3, 2), 0xff00);
    assert_int_equal(inp(f, 0xaf1f, 4), 0xffffff00);
    outp(f, 0xafe3, 0xffff, 2);
    assert_int_equal(inp(f, 0xafe2, 2), 0xff00);
    /* PMBA at the very top of the port space still fits. */
    cfg_write(f, 0x40, 0xffc1, 4);
    assert_int_equal(inp(f, 0xffc4, 2), 0x0001);
}

/* --- init ---------------------------------------------------------------- */

static void test_init_errors(void **state)
{
    struct fixture *f = *state;
    struct piix4_pm *other = calloc(1, sizeof(*other));
    struct piix4_pm_config cfg = {.ncpus_online = PIIX4_MAX_CPUS + 1};

    assert_non_null(other);
    assert_int_equal(piix4_pm_init(other, &f->pci, &f->bus, &f->sink, &cfg,
                                   NULL),
                     -EINVAL);
    cfg = (struct piix4_pm_config){.emulate_pm1_evt_and_timer = true};
    assert_int_equal(piix4_pm_init(other, &f->pci, &f->bus, &f->sink, &cfg,
                                   NULL),
                     -EOPNOTSUPP);
    /* 00:01.3 is taken: nothing of the second one stays behind. */
    cfg = (struct piix4_pm_config){0};
    assert_int_equal(piix4_pm_init(other, &f->pci, &f->bus, &f->sink, &cfg,
                                   NULL),
                     -EEXIST);
    assert_ptr_equal(bus_find(&f->bus, BUS_PIO, 0xafe0), &f->pm.gpe_region);
    piix4_pm_fini(other);
    free(other);

    /* All 128 vCPUs online fill the first 16 bytes exactly. */
    piix4_pm_fini(&f->pm);
    assert_null(bus_find(&f->bus, BUS_PIO, 0xafe0));
    assert_null(pci_find_function(&f->pci, PIIX4_PM_DEVFN));
    cfg = (struct piix4_pm_config){.ncpus_online = PIIX4_MAX_CPUS};
    assert_int_equal(piix4_pm_init(&f->pm, &f->pci, &f->bus, &f->sink, &cfg,
                                   NULL),
                     0);
    assert_int_equal(inp(f, 0xaf0c, 4), 0xffffffff);
    assert_int_equal(inp(f, 0xaf10, 4), 0x00000000);
}

static void test_fini_lowers_sci(void **state)
{
    struct fixture *f = *state;

    outp(f, 0xafe2, 0x02, 1);
    piix4_pm_gpe_raise(&f->pm, 1);
    expect_irqs(f, &SCI_UP, 1);
    piix4_pm_fini(&f->pm);
    expect_irqs(f, &SCI_DOWN, 1);
    piix4_pm_fini(&f->pm); /* twice is harmless */
    expect_irqs(f, NULL, 0);
}

/* --- software machine: PM1a_EVT and the PM timer ------------------------ */

/* The first nanosecond at which the PM timer has counted `ticks`. */
static uint64_t pmt_ns(uint64_t ticks)
{
    return (uint64_t)(((unsigned __int128)ticks * 1000000000u + 3579545 - 1) /
                      3579545);
}

static void test_sim_blocks_follow_pmba(void **state)
{
    struct fixture *f = *state;

    assert_null(bus_find(&f->bus, BUS_PIO, 0xb000));
    assert_null(bus_find(&f->bus, BUS_PIO, 0xb008));
    hvmloader_program(f);
    assert_ptr_equal(bus_find(&f->bus, BUS_PIO, 0xb000),
                     &f->pm.pm1_evt_region);
    assert_ptr_equal(bus_find(&f->bus, BUS_PIO, 0xb00b), &f->pm.pm_tmr_region);
    cfg_write(f, 0x41, 0xc0, 1);
    assert_null(bus_find(&f->bus, BUS_PIO, 0xb000));
    assert_ptr_equal(bus_find(&f->bus, BUS_PIO, 0xc008), &f->pm.pm_tmr_region);
    cfg_write(f, 0x80, 0x00, 1);
    assert_null(bus_find(&f->bus, BUS_PIO, 0xc000));
    assert_null(bus_find(&f->bus, BUS_PIO, 0xc008));
    assert_int_equal(inp(f, 0xc008, 4), 0xffffffff);
}

static void test_pm_timer_value(void **state)
{
    struct fixture *f = *state;
    uint64_t ticks = 0x12345678ull;

    hvmloader_program(f);
    f->now = pmt_ns(ticks);
    assert_int_equal(inp(f, 0xb008, 4), ticks & 0xffffff);
    assert_int_equal(inp(f, 0xb008, 1), 0x78);
    assert_int_equal(inp(f, 0xb00a, 1), 0x34);
    assert_int_equal(inp(f, 0xb00b, 1), 0x00);
    assert_int_equal(piix4_pm_timer_value(&f->pm), 0x345678);
    f->now = pmt_ns(ticks + 1) - 1;
    assert_int_equal(inp(f, 0xb008, 4), 0x345678);
    f->now = pmt_ns(ticks + 1);
    assert_int_equal(inp(f, 0xb008, 4), 0x345679);
    /* Read-only. */
    outp(f, 0xb008, 0, 4);
    assert_int_equal(inp(f, 0xb008, 4), 0x345679);
    /* One second is 3579545 counts. */
    f->now += 1000000000;
    assert_int_equal(inp(f, 0xb008, 4), (0x345679 + 3579545) & 0xffffff);
}

static void test_tmr_sts_and_sci(void **state)
{
    struct fixture *f = *state;
    uint64_t d;

    hvmloader_program(f);
    assert_int_equal(piix4_pm_next_deadline_ns(&f->pm), HW_CLOCK_NEVER);
    f->now = pmt_ns((1u << 23) - 1);
    assert_int_equal(inp(f, 0xb000, 2), 0x0000);
    f->now = pmt_ns(1u << 23);
    assert_int_equal(inp(f, 0xb000, 2), 0x0001); /* TMR_STS, no SCI */
    expect_irqs(f, NULL, 0);
    outp(f, 0xb000, 0x0001, 2);
    assert_int_equal(inp(f, 0xb000, 2), 0x0000);
    /* TMR_EN: the SCI at the next toggle of bit 23. */
    outp(f, 0xb002, 0x0001, 2);
    assert_int_equal(inp(f, 0xb002, 2), 0x0001);
    d = piix4_pm_next_deadline_ns(&f->pm);
    assert_int_equal(d, pmt_ns(2u << 23));
    f->now = d - 1;
    piix4_pm_update(&f->pm);
    expect_irqs(f, NULL, 0);
    f->now = d;
    piix4_pm_update(&f->pm);
    expect_irqs(f, &SCI_UP, 1);
    assert_int_equal(piix4_pm_next_deadline_ns(&f->pm), HW_CLOCK_NEVER);
    /* Writing 0 clears nothing; 1 clears and lowers the SCI. */
    outp(f, 0xb000, 0x0000, 2);
    expect_irqs(f, NULL, 0);
    outp(f, 0xb000, 0x0001, 2);
    expect_irqs(f, &SCI_DOWN, 1);
    assert_int_equal(piix4_pm_next_deadline_ns(&f->pm), pmt_ns(3u << 23));
    /* A late update still sets it, once. */
    f->now = pmt_ns(10u << 23);
    piix4_pm_update(&f->pm);
    expect_irqs(f, &SCI_UP, 1);
    /* Disabling lowers the SCI; the status stays. */
    outp(f, 0xb002, 0x0000, 2);
    expect_irqs(f, &SCI_DOWN, 1);
    assert_int_equal(inp(f, 0xb000, 2), 0x0001);
}

static void test_power_button_and_gpe_share_sci(void **state)
{
    struct fixture *f = *state;

    hvmloader_program(f);
    assert_int_equal(piix4_pm_power_button(&f->pm), 0);
    assert_int_equal(inp(f, 0xb000, 2), 0x0100);
    expect_irqs(f, NULL, 0);
    outp(f, 0xb003, 0x01, 1); /* PWRBTN_EN, by byte */
    expect_irqs(f, &SCI_UP, 1);
    outp(f, 0xafe2, 0x02, 1);
    piix4_pm_gpe_raise(&f->pm, 1);
    expect_irqs(f, NULL, 0); /* already up */
    outp(f, 0xb000, 0x0100, 2);
    expect_irqs(f, NULL, 0); /* GPE0 still holds it */
    outp(f, 0xafe0, 0x02, 1);
    expect_irqs(f, &SCI_DOWN, 1);
    /* Write-1-to-clear touches only the bits written; unimplemented
     * enables do not stick. */
    assert_int_equal(piix4_pm_power_button(&f->pm), 0);
    expect_irqs(f, &SCI_UP, 1);
    outp(f, 0xb000, 0x7ffe & ~0x0100, 2);
    assert_int_equal(inp(f, 0xb000, 2), 0x0100);
    outp(f, 0xb002, 0xffff, 2);
    assert_int_equal(inp(f, 0xb002, 2), 0x0721);
    outp(f, 0xb000, 0xffff, 2);
    expect_irqs(f, &SCI_DOWN, 1);
    assert_int_equal(inp(f, 0xb000, 2), 0x0000);
    /* The whole block in one dword: status low, enables high. */
    assert_int_equal(piix4_pm_power_button(&f->pm), 0);
    assert_int_equal(inp(f, 0xb000, 4), 0x07210100);
    /* Reset clears status and enables; the timer keeps counting. */
    pci_bus_reset(&f->pci);
    expect_irqs(f, (const struct irq_event[]){SCI_UP, SCI_DOWN}, 2);
    hvmloader_program(f);
    assert_int_equal(inp(f, 0xb000, 4), 0x00000000);
}

static void test_power_button_refused_under_xen(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(piix4_pm_power_button(&f->pm), -EOPNOTSUPP);
    assert_int_equal(piix4_pm_next_deadline_ns(&f->pm), HW_CLOCK_NEVER);
    piix4_pm_update(&f->pm);
    expect_irqs(f, NULL, 0);
    assert_int_equal(piix4_pm_timer_value(&f->pm), 0);
}

static void test_trad_32bit_timer(void **state)
{
    struct fixture *f = *state;

    /* Fixed block: decoded from the start at 0xB000. */
    f->now = pmt_ns(0xfedcba98ull);
    assert_int_equal(inp(f, 0xb008, 4), 0xfedcba98);
    /* Bit 31 toggled on the way here. */
    assert_int_equal(inp(f, 0xb000, 2), 0x0001);
    outp(f, 0xb002, 0x0001, 2);
    outp(f, 0xb000, 0x0001, 2);
    expect_irqs(f, (const struct irq_event[]){SCI_UP, SCI_DOWN}, 2);
    assert_int_equal(piix4_pm_next_deadline_ns(&f->pm), pmt_ns(1ull << 32));
    f->now = pmt_ns(1ull << 32);
    piix4_pm_update(&f->pm);
    expect_irqs(f, &SCI_UP, 1);
    assert_int_equal(inp(f, 0xb008, 4), 0);
}

static void test_sim_fuzz(void **state)
{
    struct fixture *f = *state;
    unsigned seed = 99;

    hvmloader_program(f);
    for (unsigned i = 0; i < 100000; i++) {
        unsigned r = (unsigned)rand_r(&seed);
        uint16_t port = (uint16_t)(0xb000 + (r >> 4) % 12);
        bool want;

        f->nirqs = 0;
        switch (r % 5) {
        case 0:
            outp(f, port, r >> 8, 1u << ((r >> 2) % 3));
            break;
        case 1:
            (void)inp(f, port, 1u << ((r >> 2) % 3));
            break;
        case 2:
            f->now += (r >> 4) % 100000000;
            break;
        case 3:
            piix4_pm_update(&f->pm);
            break;
        case 4:
            if ((r >> 4) % 50 == 0)
                piix4_pm_power_button(&f->pm);
            break;
        }
        want = (f->pm.pm1_sts & f->pm.pm1_en & 0x0721) != 0 ||
               (f->pm.gpe_sts & f->pm.gpe_en) != 0;
        assert_int_equal(f->sci, want);
        assert_int_equal(f->pm.pm1_en & ~0x0721, 0);
        assert_int_equal(f->pm.pm1_sts & ~0x8731, 0);
        assert_int_equal(inp(f, 0xb008, 4) & 0xff000000u, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_power_on, setup_default,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_after_hvmloader,
                                        setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_config_write_masks, setup_default,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pm1_cnt_follows_pmba,
                                        setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_pm1_cnt_blocked_by_other_device,
                                        setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_s5_request, setup_default,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_s3_request, setup_default,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_sleep_types_ignored,
                                        setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_smi_cmd, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_gpe_w1c_and_sci, setup_default,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gpe_high_byte_and_wide_access,
                                        setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_gpe_cleared_may_reraise,
                                        setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_cpu_map, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_debug_port, setup_default,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_trad_fixed_pmba, setup_trad,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_machine_ready, setup_default,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hostile_accesses, setup_default,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_init_errors, setup_default,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fini_lowers_sci, setup_default,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sim_blocks_follow_pmba, setup_sim,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pm_timer_value, setup_sim,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tmr_sts_and_sci, setup_sim,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_power_button_and_gpe_share_sci,
                                        setup_sim, teardown),
        cmocka_unit_test_setup_teardown(test_power_button_refused_under_xen,
                                        setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_trad_32bit_timer,
                                        setup_sim_trad_32bit, teardown),
        cmocka_unit_test_setup_teardown(test_sim_fuzz, setup_sim, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
