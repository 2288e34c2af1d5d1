/* Unit tests for the Xen platform device (hw/xen_platform.c): its PCI
 * header, the fixed-port protocol of docs/misc/hvm-emulated-unplug, the
 * legacy BAR0 offsets and the guest log, all through a real struct bus. */
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
#include "../../hw/xen_platform.h"
#include "../../lib/log.h"

#define PLATFORM_DEVFN PCI_DEVFN(2, 0)
#define MAX_CALLS 32

/* What the machine was asked to do, in order. */
enum call_kind { CALL_DISKS, CALL_NICS, CALL_ROM_LOCK, CALL_BLACKLIST };

struct call {
    enum call_kind kind;
    unsigned arg;
    uint32_t arg2;
};

struct fixture {
    struct bus bus;
    struct pci_bus pci;
    struct pci_host host;
    struct xen_platform p;
    struct call calls[MAX_CALLS];
    unsigned ncalls;
    int rom_lock_rc;
    bool blacklist_answer;
    char *log_buf;
    size_t log_size;
    FILE *log;
};

static void record(struct fixture *f, enum call_kind kind, unsigned arg,
                   uint32_t arg2)
{
    assert_true(f->ncalls < MAX_CALLS);
    f->calls[f->ncalls++] = (struct call){kind, arg, arg2};
}

static void on_unplug_disks(void *opaque, enum xen_platform_disks which)
{
    record(opaque, CALL_DISKS, which, 0);
}

static void on_unplug_nics(void *opaque) { record(opaque, CALL_NICS, 0, 0); }

static int on_set_rom_lock(void *opaque, bool lock)
{
    struct fixture *f = opaque;

    record(f, CALL_ROM_LOCK, lock, 0);
    return f->rom_lock_rc;
}

static bool on_is_blacklisted(void *opaque, uint16_t product, uint32_t build)
{
    struct fixture *f = opaque;

    record(f, CALL_BLACKLIST, product, build);
    return f->blacklist_answer;
}

static struct fixture *fixture_new(bool with_ops)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct xen_platform_ops ops = {on_unplug_disks, on_unplug_nics,
                                   on_set_rom_lock, on_is_blacklisted, NULL};

    assert_non_null(f);
    f->log = open_memstream(&f->log_buf, &f->log_size);
    assert_non_null(f->log);
    log_set_stream(f->log);
    bus_init(&f->bus);
    pci_bus_init(&f->pci, &f->bus);
    assert_int_equal(pci_host_init(&f->host, &f->bus), 0);
    ops.opaque = f;
    assert_int_equal(xen_platform_init(&f->p, &f->pci, &f->bus, PLATFORM_DEVFN,
                                       with_ops ? &ops : NULL),
                     0);
    return f;
}

static int setup(void **state)
{
    *state = fixture_new(true);
    return 0;
}

static int setup_no_ops(void **state)
{
    *state = fixture_new(false);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    xen_platform_fini(&f->p);
    pci_host_fini(&f->host);
    bus_fini(&f->bus);
    log_set_stream(NULL);
    fclose(f->log);
    free(f->log_buf);
    free(f);
    return 0;
}

static uint32_t inp(struct fixture *f, uint16_t port, unsigned size)
{
    return (uint32_t)bus_read(&f->bus, BUS_PIO, port, size);
}

static void outp(struct fixture *f, uint16_t port, uint32_t value,
                 unsigned size)
{
    bus_write(&f->bus, BUS_PIO, port, value, size);
}

static uint32_t cfg_read(struct fixture *f, unsigned reg, unsigned size)
{
    outp(f, 0xcf8, 0x80000000u | PLATFORM_DEVFN << 8 | (reg & 0xfc), 4);
    return inp(f, (uint16_t)(0xcfc + (reg & 3)), size);
}

static void cfg_write(struct fixture *f, unsigned reg, uint32_t value,
                      unsigned size)
{
    outp(f, 0xcf8, 0x80000000u | PLATFORM_DEVFN << 8 | (reg & 0xfc), 4);
    outp(f, (uint16_t)(0xcfc + (reg & 3)), value, size);
}

static void expect_calls(struct fixture *f, const struct call *want,
                         unsigned n)
{
    assert_int_equal(f->ncalls, n);
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(f->calls[i].kind, want[i].kind);
        assert_int_equal(f->calls[i].arg, want[i].arg);
        assert_int_equal(f->calls[i].arg2, want[i].arg2);
    }
    f->ncalls = 0;
}

static const struct call ALL_DISKS = {CALL_DISKS,
                                      XEN_PLATFORM_UNPLUG_ALL_IDE_SCSI, 0};
static const struct call AUX_DISKS = {CALL_DISKS,
                                      XEN_PLATFORM_UNPLUG_IDE_AUX_ONLY, 0};
static const struct call NVME_DISKS = {CALL_DISKS, XEN_PLATFORM_UNPLUG_NVME,
                                       0};
static const struct call NICS = {CALL_NICS, 0, 0};

static unsigned count_lines(const char *log, const char *needle)
{
    unsigned n = 0;

    for (const char *p = log; p && (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* QEMU's xen-platform as realize leaves it (hw/i386/xen/xen_platform.c). */
static const uint8_t power_on_config[256] = {
    [0x00] = 0x53, [0x01] = 0x58, [0x02] = 0x01, [0x03] = 0x00,
    [0x04] = 0x03, /* IO | MEM preset */
    [0x08] = 0x01, [0x09] = 0x00, [0x0a] = 0x80, [0x0b] = 0xff,
    [0x10] = 0x01, /* BAR0: I/O */
    [0x14] = 0x08, /* BAR1: 32-bit prefetchable memory */
    [0x2c] = 0x53, [0x2d] = 0x58, [0x2e] = 0x01, [0x2f] = 0x00,
    [0x3d] = 0x01,
};

static void test_config_power_on(void **state)
{
    struct fixture *f = *state;

    for (unsigned reg = 0; reg < 256; reg += 4) {
        uint32_t got = cfg_read(f, reg, 4);

        if (got != pci_get_long(&power_on_config[reg]))
            fail_msg("config[0x%02x] = 0x%08x, expected 0x%08x", reg, got,
                     pci_get_long(&power_on_config[reg]));
    }
    assert_false(f->p.fn.hotpluggable);
}

static void test_bar_sizes(void **state)
{
    struct fixture *f = *state;

    cfg_write(f, 0x10, 0xffffffff, 4);
    cfg_write(f, 0x14, 0xffffffff, 4);
    cfg_write(f, 0x18, 0xffffffff, 4);
    assert_int_equal(cfg_read(f, 0x10, 4), 0xffffff01); /* 256 bytes */
    assert_int_equal(cfg_read(f, 0x14, 4), 0xff000008); /* 16 MiB */
    assert_int_equal(cfg_read(f, 0x18, 4), 0x00000000);
    /* QEMU's device-specific area is writable storage. */
    cfg_write(f, 0x40, 0x12345678, 4);
    assert_int_equal(cfg_read(f, 0x40, 4), 0x12345678);
}

static void test_magic_and_version(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(inp(f, 0x10, 2), 0x49d2);
    assert_int_equal(inp(f, 0x12, 1), 1);
    assert_int_equal(inp(f, 0x10, 1), 0); /* platform flags */
    /* Everything else QEMU answers with all-ones. */
    assert_int_equal(inp(f, 0x10, 4), 0xffffffff);
    assert_int_equal(inp(f, 0x12, 2), 0xffff);
    assert_int_equal(inp(f, 0x11, 1), 0xff);
    assert_int_equal(inp(f, 0x11, 2), 0xffff);
    assert_int_equal(inp(f, 0x1f, 1), 0xff);
    assert_non_null(bus_find(&f->bus, BUS_PIO, 0x1f));
    assert_null(bus_find(&f->bus, BUS_PIO, 0x20));
}

static void test_unplug_mask_bits(void **state)
{
    struct fixture *f = *state;

    outp(f, 0x10, 0x0001, 2);
    expect_calls(f, &ALL_DISKS, 1);
    outp(f, 0x10, 0x0002, 2);
    expect_calls(f, &NICS, 1);
    outp(f, 0x10, 0x0004, 2);
    expect_calls(f, &AUX_DISKS, 1);
    outp(f, 0x10, 0x0005, 2); /* bit 0 overrides bit 2 */
    expect_calls(f, &ALL_DISKS, 1);
    outp(f, 0x10, 0x0008, 2);
    expect_calls(f, &NVME_DISKS, 1);
    outp(f, 0x10, 0x000f, 2);
    expect_calls(f, (const struct call[]){ALL_DISKS, NVME_DISKS, NICS}, 3);
    outp(f, 0x10, 0x000e, 2);
    expect_calls(f, (const struct call[]){AUX_DISKS, NVME_DISKS, NICS}, 3);
    outp(f, 0x10, 0xfff0, 2); /* no defined bit: nothing */
    expect_calls(f, NULL, 0);
    /* Bytes at 0x10 are platform flags, not unplug requests. */
    outp(f, 0x11, 0x01, 1);
    outp(f, 0x11, 0x0001, 2);
    expect_calls(f, NULL, 0);
}

static void test_product_build_blacklist(void **state)
{
    struct fixture *f = *state;

    /* A build without a product is not looked up (qemu-trad). */
    outp(f, 0x10, 4242, 4);
    expect_calls(f, NULL, 0);
    assert_int_equal(inp(f, 0x10, 2), 0x49d2);

    outp(f, 0x12, 0x0001, 2);
    assert_int_equal(f->p.product, 1);
    outp(f, 0x10, 1234, 4);
    expect_calls(f, &(const struct call){CALL_BLACKLIST, 1, 1234}, 1);
    assert_int_equal(f->p.build, 1234);
    assert_int_equal(inp(f, 0x10, 2), 0x49d2);

    f->blacklist_answer = true;
    outp(f, 0x10, 99, 4);
    expect_calls(f, &(const struct call){CALL_BLACKLIST, 1, 99}, 1);
    assert_int_equal(inp(f, 0x10, 2), 0xd249);
    /* The version byte and unplug still work for blacklisted drivers. */
    assert_int_equal(inp(f, 0x12, 1), 1);
    outp(f, 0x10, 0x0002, 2);
    expect_calls(f, &NICS, 1);
    fflush(f->log);
    assert_non_null(strstr(f->log_buf, "xensource-windows build 99 is "
                                       "blacklisted"));
}

static void test_no_ops(void **state)
{
    struct fixture *f = *state;

    /* Without a machine behind it, requests are decoded and dropped and the
     * flags are simply stored. */
    outp(f, 0x12, 3, 2);
    outp(f, 0x10, 7, 4);
    outp(f, 0x10, 0x000f, 2);
    assert_int_equal(inp(f, 0x10, 2), 0x49d2);
    outp(f, 0x10, 0xff, 1);
    assert_int_equal(inp(f, 0x10, 1), 0x01);
}

static void put_string(struct fixture *f, uint16_t port, const char *s)
{
    for (; *s; s++)
        outp(f, port, (uint8_t)*s, 1);
}

static void test_log_lines(void **state)
{
    struct fixture *f = *state;
    char expected[XEN_PLATFORM_LOG_LINE_MAX + 64];

    put_string(f, 0x12, "hello, ");
    fflush(f->log);
    assert_null(f->log_buf ? strstr(f->log_buf, "hello") : NULL);
    put_string(f, 0x12, "dom0\r\n");
    fflush(f->log);
    assert_non_null(strstr(f->log_buf, "xen-platform: guest: hello, dom0\n"));

    /* Control characters never reach the log. */
    put_string(f, 0x12, "a\033[2Jb\x01\n");
    fflush(f->log);
    assert_non_null(strstr(f->log_buf, "guest: a?[2Jb?\n"));

    /* A line is cut at XEN_PLATFORM_LOG_LINE_MAX; the rest follows. */
    for (unsigned i = 0; i < XEN_PLATFORM_LOG_LINE_MAX + 10; i++)
        outp(f, 0x12, 'x', 1);
    outp(f, 0x12, '\n', 1);
    fflush(f->log);
    memset(expected, 0, sizeof(expected));
    strcpy(expected, "guest: ");
    memset(expected + 7, 'x', XEN_PLATFORM_LOG_LINE_MAX);
    strcat(expected, "\n");
    assert_non_null(strstr(f->log_buf, expected));
    assert_non_null(strstr(f->log_buf, "guest: xxxxxxxxxx\n"));

    /* Empty lines are not logged. */
    outp(f, 0x12, '\n', 1);
    fflush(f->log);
    assert_int_equal(count_lines(f->log_buf, "guest:"), 4);
}

static void test_log_rate_limited(void **state)
{
    struct fixture *f = *state;

    for (unsigned i = 0; i < 100; i++)
        put_string(f, 0x12, "spam\n");
    fflush(f->log);
    /* The library's burst, then nothing within the same second. */
    assert_int_equal(count_lines(f->log_buf, "guest: spam"), RATELIMIT_BURST);
}

static void test_flags_and_rom_lock(void **state)
{
    struct fixture *f = *state;

    outp(f, 0x10, 0xff, 1);
    expect_calls(f, &(const struct call){CALL_ROM_LOCK, 1, 0}, 1);
    assert_int_equal(inp(f, 0x10, 1), 0x01); /* only PFFLAG_ROM_LOCK kept */
    /* If the hypervisor refuses, the flag keeps its value (QEMU). */
    f->rom_lock_rc = -EPERM;
    outp(f, 0x10, 0x00, 1);
    expect_calls(f, &(const struct call){CALL_ROM_LOCK, 0, 0}, 1);
    assert_int_equal(inp(f, 0x10, 1), 0x01);
    f->rom_lock_rc = 0;
    outp(f, 0x10, 0x00, 1);
    expect_calls(f, &(const struct call){CALL_ROM_LOCK, 0, 0}, 1);
    assert_int_equal(inp(f, 0x10, 1), 0x00);
}

static void program_bars(struct fixture *f)
{
    cfg_write(f, 0x10, 0xc000, 4);
    cfg_write(f, 0x14, 0xf0000000, 4);
    cfg_write(f, 0x04, PCI_COMMAND_IO | PCI_COMMAND_MEMORY, 2);
}

static void test_legacy_bar0_offsets(void **state)
{
    struct fixture *f = *state;

    program_bars(f);
    /* Old SUSE PVonHVM: outl(1, base + 4) unplugs disks and NICs, once. */
    outp(f, 0xc004, 1, 4);
    expect_calls(f, (const struct call[]){ALL_DISKS, NICS}, 2);
    outp(f, 0xc004, 2, 1);
    expect_calls(f, NULL, 0);
    /* Old VMDP: base + 8, 1 for disks, 2 for NICs. */
    outp(f, 0xc008, 1, 1);
    expect_calls(f, &ALL_DISKS, 1);
    outp(f, 0xc008, 2, 1);
    expect_calls(f, &NICS, 1);
    /* Other values at +8 are log bytes. */
    put_string(f, 0xc008, "vmdp\n");
    expect_calls(f, NULL, 0);
    fflush(f->log);
    assert_non_null(strstr(f->log_buf, "guest: vmdp\n"));
    /* +0 is the flags byte; everything else reads all-ones. */
    outp(f, 0xc000, 0x01, 1);
    expect_calls(f, &(const struct call){CALL_ROM_LOCK, 1, 0}, 1);
    assert_int_equal(inp(f, 0xc000, 1), 0x01);
    assert_int_equal(inp(f, 0x10, 1), 0x01);
    assert_int_equal(inp(f, 0xc000, 4), 0xffffff01);
    assert_int_equal(inp(f, 0xc0ff, 1), 0xff);
    /* The fixed ports stay where they are. */
    assert_int_equal(inp(f, 0x10, 2), 0x49d2);
}

static void test_mmio_bar(void **state)
{
    struct fixture *f = *state;

    program_bars(f);
    assert_int_equal(bus_read(&f->bus, BUS_MMIO, 0xf0000000, 4), 0);
    assert_int_equal(bus_read(&f->bus, BUS_MMIO, 0xf0fffff8, 8), 0);
    bus_write(&f->bus, BUS_MMIO, 0xf0000000, 0xffffffff, 4);
    assert_int_equal(bus_read(&f->bus, BUS_MMIO, 0xf0000000, 4), 0);
    assert_null(bus_find(&f->bus, BUS_MMIO, 0xf1000000));
    expect_calls(f, NULL, 0);
}

static void test_reset(void **state)
{
    struct fixture *f = *state;

    program_bars(f);
    outp(f, 0x10, 0x01, 1);
    f->ncalls = 0;
    pci_bus_reset(&f->pci);
    /* QEMU's reset clears the writable command bits and the flags. */
    assert_int_equal(cfg_read(f, 0x04, 2), 0x0000);
    assert_int_equal(cfg_read(f, 0x10, 4), 0x00000001);
    assert_int_equal(inp(f, 0x10, 1), 0x00);
    expect_calls(f, &(const struct call){CALL_ROM_LOCK, 0, 0}, 1);
    assert_null(bus_find(&f->bus, BUS_PIO, 0xc000));
    assert_int_equal(inp(f, 0x10, 2), 0x49d2);
}

static void test_init_conflict_and_fini(void **state)
{
    struct fixture *f = *state;
    struct xen_platform *other = calloc(1, sizeof(*other));

    assert_non_null(other);
    /* Same devfn: refused, and the first one's ports are untouched. */
    assert_int_equal(xen_platform_init(other, &f->pci, &f->bus,
                                       PLATFORM_DEVFN, NULL),
                     -EEXIST);
    /* Another slot: the fixed ports are taken. */
    assert_int_equal(xen_platform_init(other, &f->pci, &f->bus,
                                       PCI_DEVFN(3, 0), NULL),
                     -EEXIST);
    assert_null(pci_find_function(&f->pci, PCI_DEVFN(3, 0)));
    assert_ptr_equal(bus_find(&f->bus, BUS_PIO, 0x10), &f->p.fixed_region);
    free(other);

    put_string(f, 0x12, "unfinished");
    xen_platform_fini(&f->p);
    fflush(f->log);
    assert_non_null(strstr(f->log_buf, "guest: unfinished\n"));
    assert_null(bus_find(&f->bus, BUS_PIO, 0x10));
    assert_int_equal(cfg_read(f, 0x00, 4), 0xffffffff);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_power_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bar_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_magic_and_version, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unplug_mask_bits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_product_build_blacklist, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_ops, setup_no_ops, teardown),
        cmocka_unit_test_setup_teardown(test_log_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_rate_limited, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flags_and_rom_lock, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_legacy_bar0_offsets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mmio_bar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_conflict_and_fini, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
