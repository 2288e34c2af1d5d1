/* Unit tests for pci-testdev (hw/pci_testdev.c): its PCI header and QEMU's
 * I/O test protocol on both BARs, as a Xen guest under QEMU 7 sees it. */
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
#include "../../hw/pci_testdev.h"

#define DEVFN PCI_DEVFN(3, 0)
#define MMIO_BASE 0xe0000000u
#define PIO_BASE 0xc100u

struct fixture {
    struct bus bus;
    struct pci_bus pci;
    struct pci_host host;
    struct pci_testdev *d;
};

static uint32_t inp(struct fixture *f, uint16_t port, unsigned size)
{
    return (uint32_t)bus_read(&f->bus, BUS_PIO, port, size);
}

static void outp(struct fixture *f, uint16_t port, uint32_t value,
                 unsigned size)
{
    bus_write(&f->bus, BUS_PIO, port, value, size);
}

static uint32_t cfg_read(struct fixture *f, uint8_t devfn, unsigned reg)
{
    outp(f, 0xcf8, 0x80000000u | (uint32_t)devfn << 8 | (reg & 0xfc), 4);
    return inp(f, 0xcfc, 4);
}

static void cfg_write(struct fixture *f, uint8_t devfn, unsigned reg,
                      uint32_t value, unsigned size)
{
    outp(f, 0xcf8, 0x80000000u | (uint32_t)devfn << 8 | (reg & 0xfc), 4);
    outp(f, (uint16_t)(0xcfc + (reg & 3)), value, size);
}

static uint64_t mmio_read(struct fixture *f, uint32_t off, unsigned size)
{
    return bus_read(&f->bus, BUS_MMIO, MMIO_BASE + off, size);
}

static void mmio_write(struct fixture *f, uint32_t off, uint64_t value,
                       unsigned size)
{
    bus_write(&f->bus, BUS_MMIO, MMIO_BASE + off, value, size);
}

static uint32_t pio_read(struct fixture *f, uint16_t off, unsigned size)
{
    return inp(f, (uint16_t)(PIO_BASE + off), size);
}

static void pio_write(struct fixture *f, uint16_t off, uint32_t value,
                      unsigned size)
{
    outp(f, (uint16_t)(PIO_BASE + off), value, size);
}

static void program_bars(struct fixture *f, uint8_t devfn, uint32_t mmio,
                         uint16_t pio)
{
    cfg_write(f, devfn, 0x10, mmio, 4);
    cfg_write(f, devfn, 0x14, pio, 4);
    cfg_write(f, devfn, 0x04, PCI_COMMAND_IO | PCI_COMMAND_MEMORY, 2);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    bus_init(&f->bus);
    pci_bus_init(&f->pci, &f->bus);
    assert_int_equal(pci_host_init(&f->host, &f->bus), 0);
    assert_int_equal(pci_testdev_create(&f->pci, DEVFN, "td0", &f->d), 0);
    assert_non_null(f->d);
    program_bars(f, DEVFN, MMIO_BASE, PIO_BASE);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    pci_testdev_destroy(f->d);
    pci_host_fini(&f->host);
    bus_fini(&f->bus);
    free(f);
    return 0;
}

/* QEMU's pci-testdev: PCI_CLASS_OTHERS as a 16-bit class id, the default
 * 1af4:1100 subsystem, no interrupt pin. */
static const uint8_t power_on_config[256] = {
    [0x00] = 0x36, [0x01] = 0x1b, [0x02] = 0x05, [0x03] = 0x00,
    [0x08] = 0x00, [0x0a] = 0xff, [0x0b] = 0x00,
    [0x14] = 0x01, /* BAR1: I/O; BAR0 is 32-bit non-prefetchable memory */
    [0x2c] = 0xf4, [0x2d] = 0x1a, [0x2e] = 0x00, [0x2f] = 0x11,
};

static void test_config(void **state)
{
    struct fixture *f = *state;
    struct pci_testdev *d;

    assert_int_equal(pci_testdev_create(&f->pci, PCI_DEVFN(4, 0), NULL, &d),
                     0);
    for (unsigned reg = 0; reg < 256; reg += 4) {
        uint32_t got = cfg_read(f, PCI_DEVFN(4, 0), reg);

        if (got != pci_get_long(&power_on_config[reg]))
            fail_msg("config[0x%02x] = 0x%08x, expected 0x%08x", reg, got,
                     pci_get_long(&power_on_config[reg]));
    }
    cfg_write(f, PCI_DEVFN(4, 0), 0x10, 0xffffffff, 4);
    cfg_write(f, PCI_DEVFN(4, 0), 0x14, 0xffffffff, 4);
    assert_int_equal(cfg_read(f, PCI_DEVFN(4, 0), 0x10), 0xfffff000);
    assert_int_equal(cfg_read(f, PCI_DEVFN(4, 0), 0x14), 0xffffff01);
    assert_true(d->fn.hotpluggable);
    assert_string_equal(d->fn.id, "");
    pci_testdev_destroy(d);
}

static void test_several_instances(void **state)
{
    struct fixture *f = *state;
    struct pci_testdev *a, *b;

    assert_string_equal(f->d->fn.id, "td0");
    assert_int_equal(pci_testdev_create(&f->pci, PCI_DEVFN(5, 0), "td1", &a),
                     0);
    assert_int_equal(pci_testdev_create(&f->pci, PCI_DEVFN(5, 1), "td2", &b),
                     0);
    assert_string_equal(a->fn.id, "td1");
    assert_string_equal(b->fn.id, "td2");
    /* Function 0 of a slot with more functions says so. */
    assert_int_equal(cfg_read(f, PCI_DEVFN(5, 0), 0x0c) >> 16, 0x80);
    pci_testdev_destroy(b);
    assert_int_equal(cfg_read(f, PCI_DEVFN(5, 1), 0x00), 0xffffffff);
    assert_int_equal(cfg_read(f, PCI_DEVFN(5, 0), 0x0c) >> 16, 0x00);

    /* Each instance keeps its own test state. */
    program_bars(f, PCI_DEVFN(5, 0), MMIO_BASE + 0x1000, PIO_BASE + 0x100);
    mmio_write(f, 0, 0, 1);
    assert_int_equal(mmio_read(f, PCI_TESTDEV_HDR_TEST + 0x1000, 4), 0);
    assert_int_equal(mmio_read(f, PCI_TESTDEV_HDR_OFFSET, 4), 2048);
    pci_testdev_destroy(a);
    /* Its BARs went with it. */
    assert_null(bus_find(&f->bus, BUS_MMIO, MMIO_BASE + 0x1000));
    assert_int_equal(pci_testdev_create(&f->pci, DEVFN, "dup", &a), -EEXIST);
    assert_null(a);
    pci_testdev_destroy(NULL);
}

static void test_nothing_selected_reads_zero(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(mmio_read(f, 0, 4), 0);
    assert_int_equal(mmio_read(f, 2048, 4), 0);
    assert_int_equal(pio_read(f, 0, 4), 0);
    /* Writes at a trigger byte count for nobody. */
    mmio_write(f, 2048, 0xfa, 1);
    mmio_write(f, 0, 0, 1);
    assert_int_equal(mmio_read(f, PCI_TESTDEV_HDR_COUNT, 4), 0);
}

static void read_name(struct fixture *f, bool via_pio, char *out, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        uint16_t off = (uint16_t)(PCI_TESTDEV_HDR_NAME + i);

        out[i] = (char)(via_pio ? pio_read(f, off, 1) : mmio_read(f, off, 1));
        out[i + 1] = '\0';
        if (!out[i])
            break;
    }
}

static void test_headers(void **state)
{
    static const struct {
        bool pio;
        uint8_t number;
        uint32_t offset;
        uint8_t data;
        const char *name;
    } want[PCI_TESTDEV_NTESTS] = {
        {false, 0, 2048, 0xfa, "mmio-no-eventfd"},
        {false, 1, 2049, 0xce, "mmio-wildcard-eventfd"},
        {false, 2, 2050, 0xfa, "mmio-datamatch-eventfd"},
        {true, 0, 131, 0xfa, "portio-no-eventfd"},
        {true, 1, 132, 0xce, "portio-wildcard-eventfd"},
        {true, 2, 133, 0xfa, "portio-datamatch-eventfd"},
    };
    struct fixture *f = *state;
    char name[64];

    for (unsigned i = 0; i < PCI_TESTDEV_NTESTS; i++) {
        size_t len = strlen(want[i].name);

        /* The BAR written to picks the family. */
        if (want[i].pio)
            pio_write(f, 0, want[i].number, 1);
        else
            mmio_write(f, 0, want[i].number, 1);
        /* Either BAR shows the header. */
        assert_int_equal(mmio_read(f, 0, 4), 0x00000100 | i);
        assert_int_equal(pio_read(f, 0, 4), 0x00000100 | i);
        assert_int_equal(mmio_read(f, PCI_TESTDEV_HDR_OFFSET, 4),
                         want[i].offset);
        assert_int_equal(pio_read(f, PCI_TESTDEV_HDR_DATA, 4), want[i].data);
        assert_int_equal(mmio_read(f, PCI_TESTDEV_HDR_COUNT, 4), 0);
        read_name(f, want[i].pio, name, sizeof(name));
        assert_string_equal(name, want[i].name);
        /* Past the name: QEMU's `addr + size >= bufsize` bound. */
        assert_int_equal(mmio_read(f, (uint32_t)(PCI_TESTDEV_HDR_NAME + len),
                                   1),
                         0);
        assert_int_equal(mmio_read(f, 100, 4), 0);
        assert_int_equal(mmio_read(f, 4095, 1), 0);
    }
    /* Numbers past 2 deselect. */
    mmio_write(f, 0, 3, 1);
    assert_int_equal(mmio_read(f, 0, 4), 0);
}

static uint32_t count(struct fixture *f)
{
    return (uint32_t)mmio_read(f, PCI_TESTDEV_HDR_COUNT, 4);
}

static void test_no_eventfd(void **state)
{
    struct fixture *f = *state;

    mmio_write(f, 0, 0, 1);
    for (unsigned i = 0; i < 16; i++)
        mmio_write(f, 2048, 0xfa, 1);
    assert_int_equal(count(f), 16);
    mmio_write(f, 2048, 0x12, 1); /* data must match */
    mmio_write(f, 2047, 0xfa, 1); /* offset must match */
    mmio_write(f, 2049, 0xfa, 1);
    assert_int_equal(count(f), 16);
    /* Wider writes reach the device byte by byte. */
    mmio_write(f, 2048, 0x12fa, 2);
    mmio_write(f, 2048, 0x000000fa, 4);
    mmio_write(f, 2044, 0x00fa00000000ull, 8);
    assert_int_equal(count(f), 19);
    /* Another test's trigger byte does not count for this one. */
    pio_write(f, 131, 0xfa, 1);
    mmio_write(f, 131, 0xfa, 1);
    assert_int_equal(count(f), 19);
    /* Selecting again starts from 0. */
    mmio_write(f, 0, 0, 1);
    assert_int_equal(count(f), 0);
    assert_int_equal(f->d->tests[0].eventfd_hits, 0);
}

static void test_wildcard_eventfd(void **state)
{
    struct fixture *f = *state;

    mmio_write(f, 0, 1, 1);
    /* Byte writes are the eventfd's, whatever their value. */
    mmio_write(f, 2049, 0xce, 1);
    mmio_write(f, 2049, 0x00, 1);
    /* An unaligned word at 2049 is cut into bytes first: eventfd again. */
    mmio_write(f, 2049, 0xffff, 2);
    assert_int_equal(count(f), 0);
    assert_int_equal(f->d->tests[1].eventfd_hits, 3);
    /* An aligned dword covering it reaches the device, which counts it. */
    mmio_write(f, 2048, 0x12345678, 4);
    assert_int_equal(count(f), 1);
    assert_int_equal(f->d->tests[1].eventfd_hits, 3);
}

static void test_datamatch_eventfd(void **state)
{
    struct fixture *f = *state;

    mmio_write(f, 0, 2, 1);
    mmio_write(f, 2050, 0xfa, 1); /* the eventfd's */
    mmio_write(f, 2050, 0x11, 1); /* refused by the device */
    assert_int_equal(count(f), 0);
    assert_int_equal(f->d->tests[2].eventfd_hits, 1);
    mmio_write(f, 2050, 0x00fa, 2); /* aligned word: the device counts */
    mmio_write(f, 2050, 0x0011, 2);
    assert_int_equal(count(f), 1);
}

static void test_portio_family(void **state)
{
    struct fixture *f = *state;

    pio_write(f, 0, 0, 1);
    for (unsigned i = 0; i < 5; i++)
        pio_write(f, 131, 0xfa, 1);
    assert_int_equal(count(f), 5);
    /* QEMU's device compares only the offset, so the same byte of the MMIO
     * BAR counts as well. */
    mmio_write(f, 131, 0xfa, 1);
    assert_int_equal(count(f), 6);
    pio_write(f, 0, 2, 1); /* portio-datamatch-eventfd at 133 */
    pio_write(f, 133, 0xfa, 1);
    assert_int_equal(count(f), 0);
    assert_int_equal(f->d->tests[5].eventfd_hits, 1);
    pio_write(f, 132, 0xfa00, 2);
    assert_int_equal(count(f), 1);
    /* The eventfd sits on the port BAR only: on the MMIO BAR the same byte
     * reaches the device. */
    mmio_write(f, 133, 0xfa, 1);
    assert_int_equal(count(f), 2);
    assert_int_equal(f->d->tests[5].eventfd_hits, 1);
    /* A dword write at 0 selects with its low byte. */
    pio_write(f, 0, 0xffffff01, 4);
    assert_int_equal(pio_read(f, 0, 1), 4);
}

/* kvm-unit-tests' pci_testdev_one() for every test: the count after 16
 * writes of `data` at `offset` must be 0 (an eventfd took them) or 16. */
static void test_kvm_unit_tests_sequence(void **state)
{
    static const uint32_t expected_count[PCI_TESTDEV_NTESTS] = {16, 0, 0,
                                                                16, 0, 0};
    struct fixture *f = *state;

    for (unsigned t = 0; t < PCI_TESTDEV_NTESTS; t++) {
        bool pio = t >= PCI_TESTDEV_TESTS_PER_FAMILY;
        uint8_t number = t % PCI_TESTDEV_TESTS_PER_FAMILY;
        uint32_t off, data, width;

        if (pio)
            pio_write(f, 0, number, 1);
        else
            mmio_write(f, 0, number, 1);
        assert_int_equal(pio_read(f, PCI_TESTDEV_HDR_COUNT, 4), 0);
        width = pio_read(f, PCI_TESTDEV_HDR_WIDTH, 1);
        assert_int_equal(width, 1);
        data = pio_read(f, PCI_TESTDEV_HDR_DATA, 4);
        off = pio_read(f, PCI_TESTDEV_HDR_OFFSET, 4);
        for (unsigned i = 0; i < 16; i++) {
            if (pio)
                pio_write(f, (uint16_t)off, data, 1);
            else
                mmio_write(f, off, data, 1);
        }
        assert_int_equal(pio_read(f, PCI_TESTDEV_HDR_COUNT, 4),
                         expected_count[t]);
    }
}

static void test_reset_stops_test(void **state)
{
    struct fixture *f = *state;

    mmio_write(f, 0, 0, 1);
    mmio_write(f, 2048, 0xfa, 1);
    pci_bus_reset(&f->pci);
    program_bars(f, DEVFN, MMIO_BASE, PIO_BASE);
    assert_int_equal(mmio_read(f, 0, 4), 0);
    mmio_write(f, 2048, 0xfa, 1);
    assert_int_equal(f->d->tests[0].hdr[PCI_TESTDEV_HDR_COUNT], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_several_instances, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_nothing_selected_reads_zero,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_eventfd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wildcard_eventfd, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_datamatch_eventfd, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_portio_family, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kvm_unit_tests_sequence, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reset_stops_test, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
