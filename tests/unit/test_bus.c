/* Unit tests for the bus (hw/bus.c): mapping rules, lookup, unassigned and
 * refused accesses, splitting of wide and straddling accesses, listeners. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../hw/bus.h"
#include "../../lib/log.h"

/* --- a device that records every access ---------------------------------- */

#define MAX_LOG 64

struct access {
    bool write;
    uint64_t off;
    unsigned size;
    uint64_t value;
};

struct test_dev {
    uint8_t id;                 /* high nibble of every byte it returns */
    uint64_t read_extra;        /* ORed above the access size on reads */
    struct access log[MAX_LOG];
    unsigned n;
    struct bus_region region;
};

/* Byte i of a read at off is (id << 4) | ((off + i) & 0xf): which device
 * and which offset answered can be told from the value alone. */
static uint64_t dev_pattern(uint8_t id, uint64_t off, unsigned size)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)(uint8_t)((id << 4) | ((off + i) & 0xf)) << (8 * i);
    return v;
}

static uint64_t dev_read(void *opaque, uint64_t off, unsigned size)
{
    struct test_dev *d = opaque;

    assert_true(d->n < MAX_LOG);
    d->log[d->n++] = (struct access){false, off, size, 0};
    return dev_pattern(d->id, off, size) |
           (size < 8 ? d->read_extra << (8 * size) : 0);
}

static void dev_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    struct test_dev *d = opaque;

    assert_true(d->n < MAX_LOG);
    d->log[d->n++] = (struct access){true, off, size, value};
}

static const struct bus_region_ops ops_any = {
    .read = dev_read, .write = dev_write};
static const struct bus_region_ops ops_max1 = {
    .read = dev_read, .write = dev_write, .max_access = 1};
static const struct bus_region_ops ops_max2 = {
    .read = dev_read, .write = dev_write, .max_access = 2};
static const struct bus_region_ops ops_max4 = {
    .read = dev_read, .write = dev_write, .max_access = 4};
static const struct bus_region_ops ops_max4_refuse = {
    .read = dev_read, .write = dev_write, .max_access = 4, .refuse_wide = true};
static const struct bus_region_ops ops_null = {0};

static void dev_init(struct test_dev *d, uint8_t id, const char *name,
                     uint64_t len, const struct bus_region_ops *ops)
{
    memset(d, 0, sizeof(*d));
    d->id = id;
    bus_region_init(&d->region, name, len, ops, d);
}

static void assert_access(const struct access *a, bool write, uint64_t off,
                          unsigned size, uint64_t value)
{
    assert_int_equal(a->write, write);
    assert_int_equal(a->off, off);
    assert_int_equal(a->size, size);
    if (write)
        assert_int_equal(a->value, value);
}

/* --- fixture ------------------------------------------------------------- */

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

static int bus_setup(void **state)
{
    struct bus *bus = calloc(1, sizeof(*bus));

    assert_non_null(bus);
    bus_init(bus);
    *state = bus;
    return 0;
}

static int bus_teardown(void **state)
{
    struct bus *bus = *state;

    /* The regions lived in the finished test's stack frame: forget them
     * rather than let bus_fini() touch them. */
    for (int s = 0; s < BUS_NR_SPACES; s++)
        bus->spaces[s].count = 0;
    bus_fini(bus);
    free(bus);
    return 0;
}

/* --- overlaps and limits ------------------------------------------------- */

/* Maps old at old_base, then tries new at new_base: must fail with -EEXIST,
 * leave new unmapped, old in place, and say which ranges collided. */
static void check_overlap(struct bus *bus, enum bus_space space,
                          uint64_t old_base, uint64_t old_len,
                          uint64_t new_base, uint64_t new_len)
{
    struct test_dev old, new;
    char want[64];

    dev_init(&old, 1, "old-dev", old_len, &ops_any);
    dev_init(&new, 2, "new-dev", new_len, &ops_any);
    assert_int_equal(bus_map(bus, space, &old.region, old_base), 0);
    bus->error[0] = '\0';
    assert_int_equal(bus_map(bus, space, &new.region, new_base), -EEXIST);
    assert_false(new.region.mapped);
    assert_true(old.region.mapped);
    assert_int_equal(bus->spaces[space].count, 1);
    assert_ptr_equal(bus_find(bus, space, old_base), &old.region);
    assert_ptr_equal(bus_find(bus, space, old_base + old_len - 1), &old.region);

    assert_non_null(strstr(bus->error, "'old-dev'"));
    assert_non_null(strstr(bus->error, "'new-dev'"));
    snprintf(want, sizeof(want), "0x%" PRIx64 "-0x%" PRIx64, old_base,
             old_base + old_len - 1);
    assert_non_null(strstr(bus->error, want));
    snprintf(want, sizeof(want), "0x%" PRIx64 "-0x%" PRIx64, new_base,
             new_base + new_len - 1);
    assert_non_null(strstr(bus->error, want));
    /* The new range is named first, the one in the way second. */
    assert_true(strstr(bus->error, "'new-dev'") < strstr(bus->error, "'old-dev'"));

    bus_unmap(bus, &old.region);
    assert_int_equal(bus->spaces[space].count, 0);
}

static void test_overlap_identical(void **state)
{
    check_overlap(*state, BUS_PIO, 0x100, 0x10, 0x100, 0x10);
    check_overlap(*state, BUS_MMIO, 0xfed00000, 0x1000, 0xfed00000, 0x1000);
}

static void test_overlap_new_inside_old(void **state)
{
    check_overlap(*state, BUS_PIO, 0x100, 0x10, 0x104, 0x4);
    check_overlap(*state, BUS_MMIO, 0xe0000000, 0x1000000, 0xe0800000, 0x1000);
}

static void test_overlap_old_inside_new(void **state)
{
    check_overlap(*state, BUS_PIO, 0x104, 0x4, 0x100, 0x10);
    check_overlap(*state, BUS_MMIO, 0xe0800000, 0x1000, 0xe0000000, 0x1000000);
}

static void test_overlap_start(void **state)
{
    /* New range begins below old and ends on its first byte / inside it. */
    check_overlap(*state, BUS_PIO, 0x100, 0x10, 0xf8, 0x9);
    check_overlap(*state, BUS_PIO, 0x100, 0x10, 0xf8, 0x10);
    check_overlap(*state, BUS_PCI_CFG, BUS_PCI_CFG_ADDR(8, 0), 0x100,
                  BUS_PCI_CFG_ADDR(8, 0) - 0x80, 0x100);
}

static void test_overlap_end(void **state)
{
    /* New range begins on old's last byte / inside it and runs past it. */
    check_overlap(*state, BUS_PIO, 0x100, 0x10, 0x10f, 0x8);
    check_overlap(*state, BUS_PIO, 0x100, 0x10, 0x108, 0x10);
    check_overlap(*state, BUS_MMIO, 0xfee00000, 0x1000, 0xfee00fff, 0x2);
}

static void test_adjacent_below_and_above(void **state)
{
    struct bus *bus = *state;
    struct test_dev mid, below, above;

    dev_init(&mid, 1, "mid", 0x10, &ops_any);
    dev_init(&below, 2, "below", 0x10, &ops_any);
    dev_init(&above, 3, "above", 0x10, &ops_any);
    assert_int_equal(bus_map(bus, BUS_PIO, &mid.region, 0x100), 0);
    assert_int_equal(bus_map(bus, BUS_PIO, &below.region, 0xf0), 0);
    assert_int_equal(bus_map(bus, BUS_PIO, &above.region, 0x110), 0);
    assert_int_equal(bus->spaces[BUS_PIO].count, 3);
    assert_ptr_equal(bus_find(bus, BUS_PIO, 0xef), NULL);
    assert_ptr_equal(bus_find(bus, BUS_PIO, 0xf0), &below.region);
    assert_ptr_equal(bus_find(bus, BUS_PIO, 0xff), &below.region);
    assert_ptr_equal(bus_find(bus, BUS_PIO, 0x100), &mid.region);
    assert_ptr_equal(bus_find(bus, BUS_PIO, 0x10f), &mid.region);
    assert_ptr_equal(bus_find(bus, BUS_PIO, 0x110), &above.region);
    assert_ptr_equal(bus_find(bus, BUS_PIO, 0x11f), &above.region);
    assert_ptr_equal(bus_find(bus, BUS_PIO, 0x120), NULL);
}

static void test_zero_length(void **state)
{
    struct bus *bus = *state;
    struct test_dev d;

    dev_init(&d, 1, "empty", 0, &ops_any);
    assert_int_equal(bus_map(bus, BUS_PIO, &d.region, 0x80), -EINVAL);
    assert_false(d.region.mapped);
    assert_non_null(strstr(bus->error, "'empty'"));
    assert_non_null(strstr(bus->error, "zero length"));
    assert_int_equal(bus_map(bus, BUS_MMIO, &d.region, 0), -EINVAL);
    assert_int_equal(bus->spaces[BUS_PIO].count, 0);
    assert_int_equal(bus->spaces[BUS_MMIO].count, 0);
}

static void test_pio_limit(void **state)
{
    struct bus *bus = *state;
    struct test_dev a, b;

    dev_init(&a, 1, "last-port", 1, &ops_any);
    dev_init(&b, 2, "too-far", 2, &ops_any);
    assert_int_equal(bus_map(bus, BUS_PIO, &b.region, 0xffff), -EINVAL);
    assert_non_null(strstr(bus->error, "'too-far'"));
    assert_non_null(strstr(bus->error, "beyond the end"));
    assert_int_equal(bus_map(bus, BUS_PIO, &a.region, 0x10000), -EINVAL);
    assert_int_equal(bus_map(bus, BUS_PIO, &a.region, 0xffffffffffffffffull),
                     -EINVAL);
    assert_false(a.region.mapped);
    assert_int_equal(bus_map(bus, BUS_PIO, &b.region, 0xfffe), 0);
    bus_unmap(bus, &b.region);
    assert_int_equal(bus_map(bus, BUS_PIO, &a.region, 0xffff), 0);
    assert_ptr_equal(bus_find(bus, BUS_PIO, 0xffff), &a.region);
    /* Port 0xffff is fine in MMIO, which has no such limit. */
    assert_int_equal(bus_map(bus, BUS_MMIO, &b.region, 0xffff), 0);
}

static void test_pci_cfg_limit(void **state)
{
    struct bus *bus = *state;
    struct test_dev a, b, c;

    dev_init(&a, 1, "last-fn", 0x100, &ops_any);
    dev_init(&b, 2, "straddle", 0x100, &ops_any);
    dev_init(&c, 3, "past", 1, &ops_any);
    assert_int_equal(bus_map(bus, BUS_PCI_CFG, &a.region,
                             BUS_PCI_CFG_LIMIT - 0x100), 0);
    assert_int_equal(bus_map(bus, BUS_PCI_CFG, &b.region,
                             BUS_PCI_CFG_LIMIT - 0x80), -EINVAL);
    assert_non_null(strstr(bus->error, "beyond the end"));
    assert_int_equal(bus_map(bus, BUS_PCI_CFG, &c.region, BUS_PCI_CFG_LIMIT),
                     -EINVAL);
    assert_int_equal(bus->spaces[BUS_PCI_CFG].count, 1);
    /* The same address is ordinary MMIO. */
    assert_int_equal(bus_map(bus, BUS_MMIO, &c.region, BUS_PCI_CFG_LIMIT), 0);
}

static void test_mmio_wrap(void **state)
{
    struct bus *bus = *state;
    struct test_dev top, wrap, last;

    dev_init(&top, 1, "top", 0x10, &ops_any);
    dev_init(&wrap, 2, "wraps", 0x11, &ops_any);
    dev_init(&last, 3, "last-byte", 1, &ops_any);
    assert_int_equal(bus_map(bus, BUS_MMIO, &wrap.region,
                             0xfffffffffffffff0ull), -EINVAL);
    assert_non_null(strstr(bus->error, "'wraps'"));
    assert_int_equal(bus_map(bus, BUS_MMIO, &wrap.region,
                             0xffffffffffffffffull), -EINVAL);
    assert_int_equal(bus_map(bus, BUS_MMIO, &top.region,
                             0xffffffffffffffe0ull), 0);
    assert_int_equal(bus_map(bus, BUS_MMIO, &last.region,
                             0xffffffffffffffffull), 0);
    assert_ptr_equal(bus_find(bus, BUS_MMIO, 0xffffffffffffffffull),
                     &last.region);
    assert_ptr_equal(bus_find(bus, BUS_MMIO, 0xffffffffffffffefull),
                     &top.region);
    assert_ptr_equal(bus_find(bus, BUS_MMIO, 0xfffffffffffffff0ull), NULL);
    assert_ptr_equal(bus_find(bus, BUS_MMIO, 0), NULL);
    /* A huge region is fine if it does not wrap. */
    bus_unmap(bus, &top.region);
    bus_unmap(bus, &last.region);
    dev_init(&wrap, 2, "huge", 0xffffffffffffffffull, &ops_any);
    assert_int_equal(bus_map(bus, BUS_MMIO, &wrap.region, 2), -EINVAL);
    assert_int_equal(bus_map(bus, BUS_MMIO, &wrap.region, 1), 0);
    assert_ptr_equal(bus_find(bus, BUS_MMIO, 0xffffffffffffffffull),
                     &wrap.region);
    assert_ptr_equal(bus_find(bus, BUS_MMIO, 1), &wrap.region);
    assert_ptr_equal(bus_find(bus, BUS_MMIO, 0), NULL);
}

static void test_bad_space(void **state)
{
    struct bus *bus = *state;
    struct test_dev d;

    dev_init(&d, 1, "nowhere", 4, &ops_any);
    assert_int_equal(bus_map(bus, BUS_NR_SPACES, &d.region, 0), -EINVAL);
    assert_false(d.region.mapped);
    assert_string_equal(bus_space_name(BUS_PIO), "pio");
    assert_string_equal(bus_space_name(BUS_MMIO), "mmio");
    assert_string_equal(bus_space_name(BUS_PCI_CFG), "pci-cfg");
    assert_string_equal(bus_space_name(BUS_NR_SPACES), "?");
}

static void test_double_map(void **state)
{
    struct bus *bus = *state;
    struct test_dev d;

    dev_init(&d, 1, "twice", 8, &ops_any);
    assert_int_equal(bus_map(bus, BUS_PIO, &d.region, 0x60), 0);
    assert_int_equal(bus_map(bus, BUS_PIO, &d.region, 0x60), -EINVAL);
    assert_non_null(strstr(bus->error, "'twice'"));
    assert_non_null(strstr(bus->error, "already mapped"));
    /* Elsewhere and in another space: still refused, still where it was. */
    assert_int_equal(bus_map(bus, BUS_PIO, &d.region, 0x200), -EINVAL);
    assert_int_equal(bus_map(bus, BUS_MMIO, &d.region, 0x200), -EINVAL);
    assert_int_equal(d.region.base, 0x60);
    assert_int_equal(d.region.space, BUS_PIO);
    assert_int_equal(bus->spaces[BUS_PIO].count, 1);
    assert_int_equal(bus->spaces[BUS_MMIO].count, 0);
    assert_ptr_equal(bus_find(bus, BUS_PIO, 0x60), &d.region);
    assert_ptr_equal(bus_find(bus, BUS_PIO, 0x200), NULL);
}

static void test_remap_after_unmap(void **state)
{
    struct bus *bus = *state;
    struct test_dev d, other;

    dev_init(&d, 1, "mover", 8, &ops_any);
    dev_init(&other, 2, "other", 8, &ops_any);
    assert_int_equal(bus_map(bus, BUS_PIO, &d.region, 0x60), 0);
    bus_unmap(bus, &d.region);
    assert_false(d.region.mapped);
    assert_ptr_equal(bus_find(bus, BUS_PIO, 0x60), NULL);
    /* Unmapping twice (or NULL) is harmless. */
    bus_unmap(bus, &d.region);
    bus_unmap(bus, NULL);
    assert_int_equal(bus_map(bus, BUS_PIO, &d.region, 0x300), 0);
    assert_ptr_equal(bus_find(bus, BUS_PIO, 0x307), &d.region);
    assert_int_equal(d.region.base, 0x300);
    /* The old place is free for someone else. */
    assert_int_equal(bus_map(bus, BUS_PIO, &other.region, 0x60), 0);
    /* Same region, now in another space. */
    bus_unmap(bus, &d.region);
    assert_int_equal(bus_map(bus, BUS_MMIO, &d.region, 0x60), 0);
    assert_int_equal(d.region.space, BUS_MMIO);
    assert_ptr_equal(bus_find(bus, BUS_PIO, 0x60), &other.region);
    assert_ptr_equal(bus_find(bus, BUS_MMIO, 0x60), &d.region);
    assert_int_equal(bus_read(bus, BUS_MMIO, 0x61, 1), 0x11);
    assert_int_equal(bus_read(bus, BUS_PIO, 0x61, 1), 0x21);
}

/* --- lookup with many regions ------------------------------------------- */

#define N_RANDOM 1000

struct rnd_region {
    uint64_t base, len;
    struct bus_region region;
};

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void check_all_boundaries(struct bus *bus, enum bus_space space,
                                 struct rnd_region *regs, size_t n,
                                 const bool *present)
{
    for (size_t i = 0; i < n; i++) {
        const struct rnd_region *r = &regs[i];
        const struct bus_region *want = present[i] ? &r->region : NULL;
        bool gap_below = i == 0 || regs[i - 1].base + regs[i - 1].len < r->base;
        bool gap_above = i + 1 == n || r->base + r->len < regs[i + 1].base;

        assert_ptr_equal(bus_find(bus, space, r->base), want);
        assert_ptr_equal(bus_find(bus, space, r->base + r->len - 1), want);
        assert_ptr_equal(bus_find(bus, space, r->base + r->len / 2), want);
        if (gap_below && r->base > 0)
            assert_ptr_equal(bus_find(bus, space, r->base - 1), NULL);
        if (gap_above)
            assert_ptr_equal(bus_find(bus, space, r->base + r->len), NULL);
    }
}

static void run_random_lookup(struct bus *bus, enum bus_space space,
                              uint64_t start, unsigned max_gap,
                              unsigned max_len, uint64_t seed)
{
    struct rnd_region *regs = calloc(N_RANDOM, sizeof(*regs));
    size_t order[N_RANDOM];
    bool present[N_RANDOM];
    uint64_t addr = start, s = seed;

    assert_non_null(regs);
    for (size_t i = 0; i < N_RANDOM; i++) {
        /* One in four is adjacent to the previous region. */
        uint64_t gap = xorshift(&s) % 4 == 0 ? 0 : 1 + xorshift(&s) % max_gap;

        addr += gap;
        regs[i].base = addr;
        regs[i].len = 1 + xorshift(&s) % max_len;
        addr += regs[i].len;
        bus_region_init(&regs[i].region, "rnd", regs[i].len, &ops_any, NULL);
        order[i] = i;
        present[i] = true;
    }
    /* Map in a shuffled order so insertion lands everywhere in the table. */
    for (size_t i = N_RANDOM - 1; i > 0; i--) {
        size_t j = xorshift(&s) % (i + 1), t = order[i];

        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < N_RANDOM; i++)
        assert_int_equal(bus_map(bus, space, &regs[order[i]].region,
                                 regs[order[i]].base), 0);
    assert_int_equal(bus->spaces[space].count, N_RANDOM);
    for (size_t i = 1; i < N_RANDOM; i++)
        assert_true(bus->spaces[space].regions[i - 1]->base <
                    bus->spaces[space].regions[i]->base);
    check_all_boundaries(bus, space, regs, N_RANDOM, present);
    /* Every byte of a stretch, in and out of regions (where that is few). */
    for (uint64_t a = regs[100].base - 1;
         regs[120].base - regs[100].base < 0x10000 && a <= regs[120].base; a++) {
        const struct bus_region *r = bus_find(bus, space, a);
        const struct bus_region *want = NULL;

        for (size_t i = 99; i <= 120; i++)
            if (a >= regs[i].base && a < regs[i].base + regs[i].len)
                want = &regs[i].region;
        assert_ptr_equal(r, want);
    }
    /* Remapping any of them onto a neighbour's range must fail. */
    for (size_t i = 1; i < N_RANDOM; i += 37) {
        struct bus_region probe;

        bus_region_init(&probe, "probe", 1, &ops_any, NULL);
        assert_int_equal(bus_map(bus, space, &probe, regs[i].base), -EEXIST);
        assert_int_equal(bus_map(bus, space, &probe,
                                 regs[i].base + regs[i].len - 1), -EEXIST);
    }
    /* Unmap every third one; the rest must still be found. */
    for (size_t i = 0; i < N_RANDOM; i += 3) {
        bus_unmap(bus, &regs[i].region);
        present[i] = false;
    }
    for (size_t i = 0; i < N_RANDOM; i++)
        if (!present[i])
            assert_ptr_equal(bus_find(bus, space, regs[i].base), NULL);
    check_all_boundaries(bus, space, regs, N_RANDOM, present);
    for (size_t i = 0; i < N_RANDOM; i++)
        bus_unmap(bus, &regs[i].region);
    assert_int_equal(bus->spaces[space].count, 0);
    free(regs);
}

static void test_lookup_many_pio(void **state)
{
    run_random_lookup(*state, BUS_PIO, 0x10, 24, 32, 0x9e3779b97f4a7c15ull);
}

static void test_lookup_many_mmio(void **state)
{
    run_random_lookup(*state, BUS_MMIO, 0xfffffff000000000ull, 1u << 20,
                      1u << 16, 0x123456789abcdefull);
}

/* --- unassigned, refused, wide ------------------------------------------- */

static void test_unassigned_read(void **state)
{
    struct bus *bus = *state;
    struct test_dev d;

    dev_init(&d, 1, "elsewhere", 4, &ops_any);
    assert_int_equal(bus_map(bus, BUS_PIO, &d.region, 0x70), 0);
    assert_int_equal(bus_read(bus, BUS_PIO, 0x80, 1), 0xff);
    assert_int_equal(bus_read(bus, BUS_PIO, 0x80, 2), 0xffff);
    assert_int_equal(bus_read(bus, BUS_PIO, 0x80, 4), 0xffffffffu);
    assert_int_equal(bus_read(bus, BUS_MMIO, 0x80, 8), 0xffffffffffffffffull);
    assert_int_equal(bus_read(bus, BUS_PCI_CFG, 0x80, 4), 0xffffffffu);
    assert_int_equal(bus->unassigned_reads, 5);
    assert_int_equal(bus->unassigned_writes, 0);
    assert_int_equal(d.n, 0);
}

static void test_unassigned_write(void **state)
{
    struct bus *bus = *state;
    struct test_dev d;

    dev_init(&d, 1, "elsewhere", 4, &ops_any);
    assert_int_equal(bus_map(bus, BUS_MMIO, &d.region, 0x1000), 0);
    bus_write(bus, BUS_MMIO, 0xffc, 0x12345678, 4);
    bus_write(bus, BUS_MMIO, 0x1004, 0x1, 1);
    bus_write(bus, BUS_PIO, 0x1000, 0x1, 2);
    assert_int_equal(bus->unassigned_writes, 3);
    assert_int_equal(bus->unassigned_reads, 0);
    assert_int_equal(d.n, 0);
}

static void test_read_masked_to_size(void **state)
{
    struct bus *bus = *state;
    struct test_dev d;

    dev_init(&d, 3, "noisy", 16, &ops_any);
    d.read_extra = 0xdeadbeefcafeull;
    assert_int_equal(bus_map(bus, BUS_PIO, &d.region, 0x40), 0);
    assert_int_equal(bus_read(bus, BUS_PIO, 0x41, 1), 0x31);
    assert_int_equal(bus_read(bus, BUS_PIO, 0x42, 2), 0x3332);
    assert_int_equal(bus_read(bus, BUS_PIO, 0x44, 4), 0x37363534);
    /* Writes reach the device masked to their size. */
    bus_write(bus, BUS_PIO, 0x48, 0xaabbccddeeff1122ull, 2);
    assert_int_equal(d.n, 4);
    assert_access(&d.log[3], true, 8, 2, 0x1122);
}

static void test_wide_read_split(void **state)
{
    struct bus *bus = *state;
    struct test_dev d1, d2, d4;

    dev_init(&d1, 1, "bytes", 16, &ops_max1);
    dev_init(&d2, 2, "words", 16, &ops_max2);
    dev_init(&d4, 4, "dwords", 16, &ops_max4);
    assert_int_equal(bus_map(bus, BUS_MMIO, &d1.region, 0x1000), 0);
    assert_int_equal(bus_map(bus, BUS_MMIO, &d2.region, 0x2000), 0);
    assert_int_equal(bus_map(bus, BUS_MMIO, &d4.region, 0x4000), 0);

    assert_int_equal(bus_read(bus, BUS_MMIO, 0x1004, 4), 0x17161514);
    assert_int_equal(d1.n, 4);
    for (unsigned i = 0; i < 4; i++)
        assert_access(&d1.log[i], false, 4 + i, 1, 0);

    assert_int_equal(bus_read(bus, BUS_MMIO, 0x2008, 8), 0x2f2e2d2c2b2a2928ull);
    assert_int_equal(d2.n, 4);
    for (unsigned i = 0; i < 4; i++)
        assert_access(&d2.log[i], false, 8 + 2 * i, 2, 0);

    /* Unaligned: pieces keep the access's own alignment. */
    assert_int_equal(bus_read(bus, BUS_MMIO, 0x4002, 8), 0x4948474645444342ull);
    assert_int_equal(d4.n, 2);
    assert_access(&d4.log[0], false, 2, 4, 0);
    assert_access(&d4.log[1], false, 6, 4, 0);

    /* Narrow accesses are passed through unchanged. */
    d4.n = 0;
    assert_int_equal(bus_read(bus, BUS_MMIO, 0x4003, 2), 0x4443);
    assert_int_equal(bus_read(bus, BUS_MMIO, 0x4004, 4), 0x47464544);
    assert_int_equal(d4.n, 2);
    assert_access(&d4.log[0], false, 3, 2, 0);
    assert_access(&d4.log[1], false, 4, 4, 0);
    assert_int_equal(bus->refused, 0);
    assert_int_equal(bus->unassigned_reads, 0);
}

static void test_wide_write_split(void **state)
{
    struct bus *bus = *state;
    struct test_dev d1, d4;

    dev_init(&d1, 1, "bytes", 16, &ops_max1);
    dev_init(&d4, 4, "dwords", 16, &ops_max4);
    assert_int_equal(bus_map(bus, BUS_PIO, &d1.region, 0x100), 0);
    assert_int_equal(bus_map(bus, BUS_MMIO, &d4.region, 0x4000), 0);

    bus_write(bus, BUS_PIO, 0x102, 0xa1b2c3d4, 4);
    assert_int_equal(d1.n, 4);
    assert_access(&d1.log[0], true, 2, 1, 0xd4);
    assert_access(&d1.log[1], true, 3, 1, 0xc3);
    assert_access(&d1.log[2], true, 4, 1, 0xb2);
    assert_access(&d1.log[3], true, 5, 1, 0xa1);

    bus_write(bus, BUS_MMIO, 0x4008, 0x0123456789abcdefull, 8);
    assert_int_equal(d4.n, 2);
    assert_access(&d4.log[0], true, 8, 4, 0x89abcdef);
    assert_access(&d4.log[1], true, 12, 4, 0x01234567);
    assert_int_equal(bus->refused, 0);
}

static void test_refuse_wide(void **state)
{
    struct bus *bus = *state;
    struct test_dev d;

    dev_init(&d, 5, "strict", 16, &ops_max4_refuse);
    assert_int_equal(bus_map(bus, BUS_MMIO, &d.region, 0x8000), 0);
    assert_int_equal(bus_read(bus, BUS_MMIO, 0x8000, 8), 0xffffffffffffffffull);
    assert_int_equal(bus->refused, 1);
    bus_write(bus, BUS_MMIO, 0x8008, 0x1122334455667788ull, 8);
    assert_int_equal(bus->refused, 2);
    assert_int_equal(d.n, 0);
    /* Refused is not unassigned. */
    assert_int_equal(bus->unassigned_reads, 0);
    assert_int_equal(bus->unassigned_writes, 0);
    /* Up to max_access still works. */
    assert_int_equal(bus_read(bus, BUS_MMIO, 0x8004, 4), 0x57565554);
    bus_write(bus, BUS_MMIO, 0x8001, 0xab, 1);
    assert_int_equal(d.n, 2);
    assert_access(&d.log[1], true, 1, 1, 0xab);
    assert_int_equal(bus->refused, 2);
}

static void test_null_handlers(void **state)
{
    struct bus *bus = *state;
    struct bus_region r;

    bus_region_init(&r, "silent", 8, &ops_null, NULL);
    assert_int_equal(bus_map(bus, BUS_PIO, &r, 0x500), 0);
    assert_int_equal(bus_read(bus, BUS_PIO, 0x500, 4), 0xffffffffu);
    assert_int_equal(bus_read(bus, BUS_PIO, 0x507, 1), 0xff);
    bus_write(bus, BUS_PIO, 0x500, 0x1234, 2);
    /* The region exists: nothing is unassigned. */
    assert_int_equal(bus->unassigned_reads, 0);
    assert_int_equal(bus->unassigned_writes, 0);
}

/* --- straddling accesses ------------------------------------------------- */

static void test_straddle_region_edge(void **state)
{
    struct bus *bus = *state;
    struct test_dev d;

    dev_init(&d, 6, "four", 4, &ops_any);
    assert_int_equal(bus_map(bus, BUS_PIO, &d.region, 0x100), 0);

    /* Runs off the end: two bytes from the device, two unassigned. */
    assert_int_equal(bus_read(bus, BUS_PIO, 0x102, 4), 0xffff6362);
    assert_int_equal(d.n, 2);
    assert_access(&d.log[0], false, 2, 1, 0);
    assert_access(&d.log[1], false, 3, 1, 0);
    assert_int_equal(bus->unassigned_reads, 2);

    /* Starts in the gap below. */
    d.n = 0;
    assert_int_equal(bus_read(bus, BUS_PIO, 0xfe, 4), 0x6160ffff);
    assert_int_equal(d.n, 2);
    assert_access(&d.log[0], false, 0, 1, 0);
    assert_access(&d.log[1], false, 1, 1, 0);
    assert_int_equal(bus->unassigned_reads, 4);

    /* Wider than the region on both sides. */
    d.n = 0;
    assert_int_equal(bus_read(bus, BUS_PIO, 0xfe, 8), 0xffff63626160ffffull);
    assert_int_equal(d.n, 4);
    assert_int_equal(bus->unassigned_reads, 8);

    d.n = 0;
    bus_write(bus, BUS_PIO, 0x103, 0x44332211, 4);
    assert_int_equal(d.n, 1);
    assert_access(&d.log[0], true, 3, 1, 0x11);
    assert_int_equal(bus->unassigned_writes, 3);
    d.n = 0;
    bus_write(bus, BUS_PIO, 0xff, 0x5544, 2);
    assert_int_equal(d.n, 1);
    assert_access(&d.log[0], true, 0, 1, 0x55);
    assert_int_equal(bus->unassigned_writes, 4);
}

static void test_straddle_two_regions(void **state)
{
    struct bus *bus = *state;
    struct test_dev a, b;

    dev_init(&a, 0xa, "left", 4, &ops_any);
    dev_init(&b, 0xb, "right", 4, &ops_any);
    assert_int_equal(bus_map(bus, BUS_MMIO, &a.region, 0x1000), 0);
    assert_int_equal(bus_map(bus, BUS_MMIO, &b.region, 0x1004), 0);

    assert_int_equal(bus_read(bus, BUS_MMIO, 0x1002, 4), 0xb1b0a3a2);
    assert_int_equal(a.n, 2);
    assert_int_equal(b.n, 2);
    assert_access(&a.log[0], false, 2, 1, 0);
    assert_access(&a.log[1], false, 3, 1, 0);
    assert_access(&b.log[0], false, 0, 1, 0);
    assert_access(&b.log[1], false, 1, 1, 0);

    a.n = b.n = 0;
    bus_write(bus, BUS_MMIO, 0x1001, 0x8877665544332211ull, 8);
    assert_int_equal(a.n, 3);
    assert_int_equal(b.n, 4);
    assert_access(&a.log[0], true, 1, 1, 0x11);
    assert_access(&a.log[1], true, 2, 1, 0x22);
    assert_access(&a.log[2], true, 3, 1, 0x33);
    assert_access(&b.log[0], true, 0, 1, 0x44);
    assert_access(&b.log[3], true, 3, 1, 0x77);
    assert_int_equal(bus->unassigned_writes, 1); /* 0x1008 */
    assert_int_equal(bus->unassigned_reads, 0);

    /* A region small enough to sit entirely inside the access. */
    a.n = b.n = 0;
    bus_unmap(bus, &b.region);
    assert_int_equal(bus_read(bus, BUS_MMIO, 0xffe, 8), 0xffffa3a2a1a0ffffull);
    assert_int_equal(a.n, 4);
}

/* --- listeners ----------------------------------------------------------- */

struct listen_log {
    unsigned mapped, unmapped;
    const struct bus_region *last;
    uint64_t last_base;
    enum bus_space last_space;
    bool last_was_mapped;
};

static void on_mapped(void *opaque, const struct bus_region *r)
{
    struct listen_log *l = opaque;

    l->mapped++;
    l->last = r;
    l->last_base = r->base;
    l->last_space = r->space;
    l->last_was_mapped = r->mapped;
}

static void on_unmapped(void *opaque, const struct bus_region *r)
{
    struct listen_log *l = opaque;

    l->unmapped++;
    l->last = r;
    l->last_base = r->base;
    l->last_space = r->space;
    l->last_was_mapped = r->mapped;
}

static void test_listeners(void **state)
{
    struct bus *bus = *state;
    struct listen_log la = {0}, lb = {0};
    struct bus_listener a = {on_mapped, on_unmapped, &la, NULL};
    struct bus_listener b = {on_mapped, on_unmapped, &lb, NULL};
    struct test_dev d1, d2, d3;

    dev_init(&d1, 1, "one", 4, &ops_any);
    dev_init(&d2, 2, "two", 4, &ops_any);
    dev_init(&d3, 3, "three", 4, &ops_any);
    assert_int_equal(bus_map(bus, BUS_PIO, &d1.region, 0x10), 0);
    assert_int_equal(bus_map(bus, BUS_MMIO, &d2.region, 0x10), 0);

    /* Replay: every existing mapping, in every space. */
    bus_add_listener(bus, &a);
    assert_int_equal(la.mapped, 2);
    assert_int_equal(la.unmapped, 0);

    assert_int_equal(bus_map(bus, BUS_PCI_CFG, &d3.region, 0x800), 0);
    assert_int_equal(la.mapped, 3);
    assert_ptr_equal(la.last, &d3.region);
    assert_int_equal(la.last_base, 0x800);
    assert_int_equal(la.last_space, BUS_PCI_CFG);
    assert_true(la.last_was_mapped);

    /* A failed map is not announced. */
    assert_int_equal(bus_map(bus, BUS_PCI_CFG, &d1.region, 0x800), -EINVAL);
    assert_int_equal(la.mapped, 3);

    bus_add_listener(bus, &b);
    assert_int_equal(lb.mapped, 3);

    bus_unmap(bus, &d2.region);
    assert_int_equal(la.unmapped, 1);
    assert_int_equal(lb.unmapped, 1);
    assert_ptr_equal(la.last, &d2.region);
    assert_int_equal(la.last_base, 0x10);
    assert_int_equal(la.last_space, BUS_MMIO);
    assert_false(la.last_was_mapped);
    /* Not mapped: no news. */
    bus_unmap(bus, &d2.region);
    assert_int_equal(la.unmapped, 1);

    bus_remove_listener(bus, &a);
    assert_int_equal(bus_map(bus, BUS_MMIO, &d2.region, 0x20), 0);
    assert_int_equal(la.mapped, 3);
    assert_int_equal(lb.mapped, 4);
    assert_int_equal(lb.last_base, 0x20);

    /* fini tells the remaining listener about everything still mapped. */
    bus_fini(bus);
    assert_int_equal(lb.unmapped, 4);
    assert_int_equal(la.unmapped, 1);
    assert_false(d1.region.mapped);
    assert_false(d2.region.mapped);
    assert_false(d3.region.mapped);
    bus_remove_listener(bus, &b);
    bus_remove_listener(bus, &b); /* already gone: harmless */
}

static void collect(void *opaque, const struct bus_region *r)
{
    uint64_t **p = opaque;

    *(*p)++ = r->base;
}

static void test_for_each_sorted(void **state)
{
    struct bus *bus = *state;
    struct test_dev d[5];
    const uint64_t bases[5] = {0x400, 0x10, 0x3f8, 0x2f8, 0x60};
    const uint64_t sorted[5] = {0x10, 0x60, 0x2f8, 0x3f8, 0x400};
    uint64_t seen[5] = {0}, *p = seen;

    for (int i = 0; i < 5; i++) {
        dev_init(&d[i], (uint8_t)i, "dev", 8, &ops_any);
        assert_int_equal(bus_map(bus, BUS_PIO, &d[i].region, bases[i]), 0);
    }
    bus_for_each(bus, BUS_PIO, collect, &p);
    assert_int_equal(p - seen, 5);
    assert_memory_equal(seen, sorted, sizeof(sorted));
    p = seen;
    bus_for_each(bus, BUS_MMIO, collect, &p);
    assert_int_equal(p - seen, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, bus_setup, bus_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_overlap_identical),
        T(test_overlap_new_inside_old),
        T(test_overlap_old_inside_new),
        T(test_overlap_start),
        T(test_overlap_end),
        T(test_adjacent_below_and_above),
        T(test_zero_length),
        T(test_pio_limit),
        T(test_pci_cfg_limit),
        T(test_mmio_wrap),
        T(test_bad_space),
        T(test_double_map),
        T(test_remap_after_unmap),
        T(test_lookup_many_pio),
        T(test_lookup_many_mmio),
        T(test_for_each_sorted),
        T(test_unassigned_read),
        T(test_unassigned_write),
        T(test_read_masked_to_size),
        T(test_wide_read_split),
        T(test_wide_write_split),
        T(test_refuse_wide),
        T(test_null_handlers),
        T(test_straddle_region_edge),
        T(test_straddle_two_regions),
        T(test_listeners),
    };

    return cmocka_run_group_tests_name("bus", tests, group_setup,
                                       group_teardown);
}
