/* pci-testdev, after QEMU 7.x hw/misc/pci-testdev.c as a Xen guest sees it.
 *
 * QEMU's device only implements byte accesses (impl.max_access_size 1), and
 * two of its three tests register an ioeventfd on the test's trigger byte.
 * Without KVM, QEMU's memory core emulates ioeventfds itself
 * (memory_region_dispatch_write: !kvm_eventfds_enabled()): a write that
 * matches one signals the eventfd and never reaches the device, so it is not
 * counted. Before that, flatview_write_continue cuts every access into
 * naturally aligned pieces of at most 4 bytes (memory_access_size), and each
 * piece is matched on its own. The device itself compares only the offset,
 * not which BAR was written, while the eventfd sits on the test's own BAR.
 * Under Xen that gives, for the byte at the test's offset on its own BAR
 * (on the other BAR every test behaves as no-eventfd, wildcard without the
 * data check):
 *   no-eventfd        every piece whose byte there is 0xFA counts
 *   wildcard-eventfd  a 1-byte piece is taken by the eventfd; the byte of a
 *                     wider piece counts whatever its value
 *   datamatch-eventfd a 1-byte 0xFA piece is taken by the eventfd; other
 *                     1-byte values are refused; the byte of a wider piece
 *                     counts if it is 0xFA
 * which is what this file reproduces. */
#include "pci_testdev.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"
#include "savestate.h"

TRACE_POINT(trace_pci_testdev, "pci_testdev");


/* Each test's trigger byte: IOTEST_SIZE(i) + i, i.e. just past the first
 * half of the BAR, one byte per test number. */
#define PCI_TESTDEV_MMIO_TRIGGER 2048
#define PCI_TESTDEV_PIO_TRIGGER 128

enum test_kind { TEST_NO_EVENTFD, TEST_WILDCARD_EVENTFD, TEST_DATAMATCH_EVENTFD };

static const char *const kind_names[] = {
    [TEST_NO_EVENTFD] = "no-eventfd",
    [TEST_WILDCARD_EVENTFD] = "wildcard-eventfd",
    [TEST_DATAMATCH_EVENTFD] = "datamatch-eventfd",
};
static const char *const family_names[] = {
    [PCI_TESTDEV_MMIO] = "mmio",
    [PCI_TESTDEV_PORTIO] = "portio",
};

static uint32_t hdr_offset(const struct pci_testdev_test *t)
{
    return pci_get_long(&t->hdr[PCI_TESTDEV_HDR_OFFSET]);
}

static void setup_tests(struct pci_testdev *d)
{
    for (unsigned i = 0; i < PCI_TESTDEV_NTESTS; i++) {
        struct pci_testdev_test *t = &d->tests[i];
        unsigned family = i / PCI_TESTDEV_TESTS_PER_FAMILY;
        enum test_kind kind = i % PCI_TESTDEV_TESTS_PER_FAMILY;
        uint32_t trigger = family == PCI_TESTDEV_MMIO ? PCI_TESTDEV_MMIO_TRIGGER
                                                      : PCI_TESTDEV_PIO_TRIGGER;
        int n;

        memset(t, 0, sizeof(*t));
        t->has_eventfd = kind != TEST_NO_EVENTFD;
        t->match_data = kind != TEST_WILDCARD_EVENTFD;
        t->hdr[PCI_TESTDEV_HDR_TEST] = (uint8_t)i;
        t->hdr[PCI_TESTDEV_HDR_WIDTH] = 1;
        pci_set_long(&t->hdr[PCI_TESTDEV_HDR_OFFSET], trigger + i);
        t->hdr[PCI_TESTDEV_HDR_DATA] =
            t->match_data ? PCI_TESTDEV_DATAMATCH : PCI_TESTDEV_NOMATCH;
        n = snprintf((char *)&t->hdr[PCI_TESTDEV_HDR_NAME],
                     PCI_TESTDEV_NAME_MAX + 1, "%s-%s", family_names[family],
                     kind_names[kind]);
        t->hdr_len = PCI_TESTDEV_HDR_NAME + (unsigned)n + 1;
    }
}

static void select_test(struct pci_testdev *d, enum pci_testdev_family family,
                        uint8_t number)
{
    /* Whatever is written, the running test stops (its eventfd goes). */
    d->current = -1;
    if (number >= PCI_TESTDEV_TESTS_PER_FAMILY)
        return;
    d->current = (int)(family * PCI_TESTDEV_TESTS_PER_FAMILY + number);
    pci_set_long(&d->tests[d->current].hdr[PCI_TESTDEV_HDR_COUNT], 0);
    trace(trace_pci_testdev, "%s: test %d selected", d->fn.name, d->current);
}

/* pci_testdev_write for one byte, the only width QEMU's device sees. */
static void device_write_byte(struct pci_testdev *d,
                              enum pci_testdev_family family, uint64_t off,
                              uint8_t value)
{
    struct pci_testdev_test *t;

    if (off == PCI_TESTDEV_HDR_TEST) {
        select_test(d, family, value);
        return;
    }
    if (d->current < 0)
        return;
    t = &d->tests[d->current];
    if (off != hdr_offset(t))
        return;
    if (t->match_data && value != t->hdr[PCI_TESTDEV_HDR_DATA])
        return;
    pci_set_long(&t->hdr[PCI_TESTDEV_HDR_COUNT],
                 pci_get_long(&t->hdr[PCI_TESTDEV_HDR_COUNT]) + 1);
}

/* The emulated ioeventfd of the running test: 1 byte at its offset, on its
 * own family's BAR, any value (wildcard) or only the test's data. */
static bool eventfd_takes(struct pci_testdev *d, enum pci_testdev_family family,
                          uint64_t off, uint64_t value, unsigned size)
{
    struct pci_testdev_test *t;

    if (d->current < 0)
        return false;
    t = &d->tests[d->current];
    if (!t->has_eventfd ||
        (unsigned)d->current / PCI_TESTDEV_TESTS_PER_FAMILY != family ||
        off != hdr_offset(t) || size != 1 ||
        (t->match_data && value != t->hdr[PCI_TESTDEV_HDR_DATA]))
        return false;
    t->eventfd_hits++;
    return true;
}

static void bar_write(struct pci_testdev *d, enum pci_testdev_family family,
                      uint64_t off, uint64_t value, unsigned size)
{
    while (size) {
        unsigned piece = size;
        uint64_t align = off & -off;

        /* memory_access_size: no wider than the offset's alignment, and a
         * power of two. */
        if (align && align < piece)
            piece = (unsigned)align;
        while (piece & (piece - 1))
            piece &= piece - 1;
        if (!eventfd_takes(d, family, off, value & bus_size_mask(piece), piece))
            for (unsigned i = 0; i < piece; i++)
                device_write_byte(d, family, off + i,
                                  (uint8_t)(value >> (8 * i)));
        value = piece < 8 ? value >> (8 * piece) : 0;
        off += piece;
        size -= piece;
    }
}

static uint8_t device_read_byte(struct pci_testdev *d, uint64_t off)
{
    const struct pci_testdev_test *t;

    if (d->current < 0)
        return 0;
    t = &d->tests[d->current];
    /* QEMU's bound is `addr + size >= bufsize`, so the NUL ending the name
     * reads 0 through the bound rather than the buffer; the same value. */
    if (off + 1 >= t->hdr_len)
        return 0;
    return t->hdr[off];
}

static uint64_t bar_read(void *opaque, uint64_t off, unsigned size)
{
    struct pci_testdev *d = opaque;
    uint64_t value = 0;

    for (unsigned i = 0; i < size; i++)
        value |= (uint64_t)device_read_byte(d, off + i) << (8 * i);
    return value;
}

static void mmio_write(void *opaque, uint64_t off, uint64_t value,
                       unsigned size)
{
    bar_write(opaque, PCI_TESTDEV_MMIO, off, value, size);
}

static void pio_write(void *opaque, uint64_t off, uint64_t value,
                      unsigned size)
{
    bar_write(opaque, PCI_TESTDEV_PORTIO, off, value, size);
}

/* 4 bytes at most per piece: QEMU's default valid.max_access_size. */
static const struct bus_region_ops mmio_ops = {
    .read = bar_read,
    .write = mmio_write,
    .max_access = 4,
};

static const struct bus_region_ops pio_ops = {
    .read = bar_read,
    .write = pio_write,
    .max_access = 4,
};

static void pci_testdev_reset(struct pci_function *f)
{
    struct pci_testdev *d = f->opaque;

    /* qdev_pci_testdev_reset: the test stops, counts stay as they are. */
    d->current = -1;
}

static const struct pci_function_ops pci_testdev_fn_ops = {
    .reset = pci_testdev_reset,
};

int pci_testdev_create(struct pci_bus *pci, uint8_t devfn, const char *id,
                       struct pci_testdev **out)
{
    struct pci_testdev *d;
    struct pci_function *f;
    int rc;

    *out = NULL;
    d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->id = strdup(id ? id : "");
    if (!d->id) {
        rc = -ENOMEM;
        goto out;
    }
    d->current = -1;
    setup_tests(d);

    f = &d->fn;
    pci_function_init(f, "pci-testdev", PCI_TESTDEV_VENDOR_ID,
                      PCI_TESTDEV_DEVICE_ID, PCI_TESTDEV_CLASS,
                      PCI_TESTDEV_REVISION, &pci_testdev_fn_ops, d);
    f->id = d->id;
    pci_set_subsystem(f, PCI_SUBSYSTEM_VENDOR_QEMU,
                      PCI_SUBSYSTEM_ID_QEMU);
    /* Interrupt pin 0: QEMU's realize says it has none. */
    memset(&f->wmask[0x40], 0xff, PCI_CONFIG_SIZE - 0x40);

    rc = pci_function_add_bar(f, 0, PCI_TESTDEV_MMIO_SIZE, PCI_BAR_MEM32,
                              "pci-testdev-mmio", &mmio_ops, d);
    if (rc < 0)
        goto out;
    rc = pci_function_add_bar(f, 1, PCI_TESTDEV_PIO_SIZE, PCI_BAR_IO,
                              "pci-testdev-portio", &pio_ops, d);
    if (rc < 0)
        goto out;
    rc = pci_register_function(pci, f, devfn);
out:
    if (rc < 0) {
        free(d->id);
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void pci_testdev_destroy(struct pci_testdev *d)
{
    if (!d)
        return;
    pci_unregister_function(&d->fn);
    free(d->id);
    free(d);
}

/* --- save and restore ----------------------------------------------------- */

#define PCI_TESTDEV_SS_NAME "pci-testdev"
#define PCI_TESTDEV_SS_VERSION 1
#define PCI_TESTDEV_SS_NO_TEST 0xffffffffu /* current == -1 */

int pci_testdev_save(const struct pci_testdev *d, struct ss_writer *w)
{
    ss_begin_section(w, PCI_TESTDEV_SS_NAME, d->fn.devfn,
                     PCI_TESTDEV_SS_VERSION);
    pci_function_save(&d->fn, w);
    ss_put_u32(w, d->current < 0 ? PCI_TESTDEV_SS_NO_TEST
                                 : (uint32_t)d->current);
    for (unsigned i = 0; i < PCI_TESTDEV_NTESTS; i++) {
        ss_put_u32(w, pci_get_long(&d->tests[i].hdr[PCI_TESTDEV_HDR_COUNT]));
        ss_put_u32(w, d->tests[i].eventfd_hits);
    }
    return ss_end_section(w);
}

int pci_testdev_load(struct pci_testdev *d, struct ss_reader *r)
{
    struct pci_function_state st;
    uint32_t version, current, count[PCI_TESTDEV_NTESTS],
        hits[PCI_TESTDEV_NTESTS];
    int rc;

    rc = ss_open_section(r, PCI_TESTDEV_SS_NAME, d->fn.devfn,
                         PCI_TESTDEV_SS_VERSION, &version);
    if (rc < 0)
        return rc;
    pci_function_load_check(&d->fn, r, &st);
    ss_get_u32(r, "current", &current);
    /* Counters count writes: any value, they wrap. */
    for (unsigned i = 0; i < PCI_TESTDEV_NTESTS; i++) {
        ss_get_u32(r, "count", &count[i]);
        ss_get_u32(r, "eventfd_hits", &hits[i]);
    }
    if (ss_ok(r) && current != PCI_TESTDEV_SS_NO_TEST &&
        current >= PCI_TESTDEV_NTESTS)
        ss_fail(r, "current", "test %u, there are %d", current,
                PCI_TESTDEV_NTESTS);
    rc = ss_close_section(r);
    if (rc < 0)
        return rc;
    rc = pci_function_restore(&d->fn, &st, r);
    if (rc < 0)
        return rc;
    d->current = current == PCI_TESTDEV_SS_NO_TEST ? -1 : (int)current;
    for (unsigned i = 0; i < PCI_TESTDEV_NTESTS; i++) {
        pci_set_long(&d->tests[i].hdr[PCI_TESTDEV_HDR_COUNT], count[i]);
        d->tests[i].eventfd_hits = hits[i];
    }
    return 0;
}
