/* The bus: three address spaces (port I/O, MMIO, PCI configuration) holding
 * named, non-overlapping regions, each looked up by binary search.
 *
 * A region is a struct the device owns (usually embedded in its state); the
 * bus only keeps a pointer while it is mapped, so unmapping never frees
 * anything a handler could still be using.
 *
 * PCI configuration space is addressed as (SBDF << 12) | register, so a
 * function's 256-byte config space is an ordinary region and a PCI_CONFIG
 * ioreq, a CF8/CFC cycle and a qtest access all meet in the same table. */
#ifndef XENDM_HW_BUS_H
#define XENDM_HW_BUS_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

enum bus_space { BUS_PIO, BUS_MMIO, BUS_PCI_CFG, BUS_NR_SPACES };

#define BUS_PIO_LIMIT 0x10000ull         /* ports 0 .. 0xffff */
#define BUS_PCI_CFG_LIMIT (1ull << 44)   /* 32-bit SBDF, 4 KiB each */
#define BUS_PCI_CFG_ADDR(sbdf, reg) (((uint64_t)(sbdf) << 12) | (reg))

typedef uint64_t (*bus_read_fn)(void *opaque, uint64_t offset, unsigned size);
typedef void (*bus_write_fn)(void *opaque, uint64_t offset, uint64_t value,
                             unsigned size);

struct bus_region_ops {
    bus_read_fn read;   /* NULL: reads return all-ones */
    bus_write_fn write; /* NULL: writes are dropped */
    /* Widest access the handlers take (1, 2, 4 or 8; 0 means 8). A wider
     * access is split into little-endian pieces of this width, or refused
     * (read all-ones, write dropped) if refuse_wide is set. Narrower accesses
     * reach the handlers unchanged: the device decides what they mean. */
    unsigned max_access;
    bool refuse_wide;
};

struct bus_region {
    const char *name;
    uint64_t base, len;
    const struct bus_region_ops *ops;
    void *opaque;
    enum bus_space space;
    bool mapped;
};

/* Told about every map and unmap, e.g. so the Xen transport can forward the
 * range to the hypervisor. */
struct bus_listener {
    void (*mapped)(void *opaque, const struct bus_region *r);
    void (*unmapped)(void *opaque, const struct bus_region *r);
    void *opaque;
    struct bus_listener *next;
};

struct bus_space_table {
    struct bus_region **regions; /* sorted by base */
    size_t count, capacity;
};

struct bus {
    struct bus_space_table spaces[BUS_NR_SPACES];
    struct bus_listener *listeners;
    char error[256]; /* why the last bus_map() failed */
    uint64_t unassigned_reads, unassigned_writes, refused;
};

void bus_init(struct bus *bus);
/* Unmaps everything still mapped (listeners are told). */
void bus_fini(struct bus *bus);

void bus_region_init(struct bus_region *r, const char *name, uint64_t len,
                     const struct bus_region_ops *ops, void *opaque);
/* Maps r at base. Fails with -EINVAL for a zero-length, out-of-space or
 * already mapped region and -EEXIST for an overlap; bus->error then names
 * both ranges. */
int bus_map(struct bus *bus, enum bus_space space, struct bus_region *r,
            uint64_t base);
void bus_unmap(struct bus *bus, struct bus_region *r);

struct bus_region *bus_find(const struct bus *bus, enum bus_space space,
                            uint64_t addr);

/* Performs an access of size 1, 2, 4 or 8. Accesses that are not wholly
 * inside one region are split into bytes, each routed on its own. */
uint64_t bus_read(struct bus *bus, enum bus_space space, uint64_t addr,
                  unsigned size);
void bus_write(struct bus *bus, enum bus_space space, uint64_t addr,
               uint64_t value, unsigned size);

/* Adds a listener and replays every current mapping to it. */
void bus_add_listener(struct bus *bus, struct bus_listener *l);
void bus_remove_listener(struct bus *bus, struct bus_listener *l);

typedef void (*bus_region_fn)(void *opaque, const struct bus_region *r);
void bus_for_each(const struct bus *bus, enum bus_space space, bus_region_fn fn,
                  void *opaque);

const char *bus_space_name(enum bus_space space);

static inline uint64_t bus_size_mask(unsigned size)
{
    return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

#endif
