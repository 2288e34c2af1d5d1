#include "bus.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"

TRACE_POINT(trace_bus_unassigned, "bus_unassigned");
TRACE_POINT(trace_bus_refused, "bus_refused");
TRACE_POINT(trace_bus_map, "bus_map");
TRACE_POINT(trace_bus_access, "bus_access");

static const uint64_t space_limit[BUS_NR_SPACES] = {
    [BUS_PIO] = BUS_PIO_LIMIT,
    [BUS_MMIO] = 0, /* the whole 64-bit space */
    [BUS_PCI_CFG] = BUS_PCI_CFG_LIMIT,
};

const char *bus_space_name(enum bus_space space)
{
    static const char *const names[BUS_NR_SPACES] = {
        [BUS_PIO] = "pio", [BUS_MMIO] = "mmio", [BUS_PCI_CFG] = "pci-cfg"};

    return space < BUS_NR_SPACES ? names[space] : "?";
}

void bus_init(struct bus *bus) { memset(bus, 0, sizeof(*bus)); }

void bus_fini(struct bus *bus)
{
    for (int s = 0; s < BUS_NR_SPACES; s++) {
        struct bus_space_table *t = &bus->spaces[s];

        while (t->count)
            bus_unmap(bus, t->regions[t->count - 1]);
        free(t->regions);
        t->regions = NULL;
        t->capacity = 0;
    }
}

void bus_region_init(struct bus_region *r, const char *name, uint64_t len,
                     const struct bus_region_ops *ops, void *opaque)
{
    *r = (struct bus_region){
        .name = name, .len = len, .ops = ops, .opaque = opaque};
}

static uint64_t region_last(const struct bus_region *r)
{
    return r->base + r->len - 1;
}

/* Index of the first region whose base is greater than addr. */
static size_t upper_bound(const struct bus_space_table *t, uint64_t addr)
{
    size_t lo = 0, hi = t->count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (t->regions[mid]->base <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct bus_region *bus_find(const struct bus *bus, enum bus_space space,
                            uint64_t addr)
{
    const struct bus_space_table *t = &bus->spaces[space];
    size_t i = upper_bound(t, addr);

    if (i == 0)
        return NULL;
    if (addr > region_last(t->regions[i - 1]))
        return NULL;
    return t->regions[i - 1];
}

static int map_error(struct bus *bus, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int map_error(struct bus *bus, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(bus->error, sizeof(bus->error), fmt, ap);
    va_end(ap);
    log_err("bus: %s", bus->error);
    return rc;
}

int bus_map(struct bus *bus, enum bus_space space, struct bus_region *r,
            uint64_t base)
{
    struct bus_space_table *t;
    uint64_t limit, last;
    size_t i;

    if (space >= BUS_NR_SPACES)
        return map_error(bus, -EINVAL, "cannot map '%s': bad space %d",
                         r->name, (int)space);
    if (r->mapped)
        return map_error(bus, -EINVAL, "cannot map '%s': already mapped",
                         r->name);
    if (r->len == 0)
        return map_error(bus, -EINVAL,
                         "cannot map %s '%s' at 0x%" PRIx64 ": zero length",
                         bus_space_name(space), r->name, base);
    last = base + r->len - 1;
    limit = space_limit[space];
    if (last < base || (limit && last >= limit))
        return map_error(bus, -EINVAL,
                         "cannot map %s '%s' [0x%" PRIx64 "+0x%" PRIx64
                         "]: beyond the end of the space",
                         bus_space_name(space), r->name, base, r->len);

    t = &bus->spaces[space];
    i = upper_bound(t, base);
    /* Only the neighbours can overlap: the one starting at or before base,
     * and the one starting right after it. */
    for (size_t j = i ? i - 1 : 0; j < t->count && j <= i; j++) {
        const struct bus_region *o = t->regions[j];

        if (o->base <= last && base <= region_last(o))
            return map_error(bus, -EEXIST,
                             "cannot map %s '%s' [0x%" PRIx64 "-0x%" PRIx64
                             "]: overlaps '%s' [0x%" PRIx64 "-0x%" PRIx64 "]",
                             bus_space_name(space), r->name, base, last,
                             o->name, o->base, region_last(o));
    }
    if (t->count == t->capacity) {
        size_t cap = t->capacity ? t->capacity * 2 : 16;
        struct bus_region **n = realloc(t->regions, cap * sizeof(*n));

        if (!n)
            return map_error(bus, -ENOMEM, "cannot map '%s': out of memory",
                             r->name);
        t->regions = n;
        t->capacity = cap;
    }
    memmove(&t->regions[i + 1], &t->regions[i],
            (t->count - i) * sizeof(t->regions[0]));
    t->regions[i] = r;
    t->count++;
    r->base = base;
    r->space = space;
    r->mapped = true;
    trace(trace_bus_map, "map %s '%s' [0x%" PRIx64 "-0x%" PRIx64 "]",
          bus_space_name(space), r->name, base, last);
    for (struct bus_listener *l = bus->listeners; l; l = l->next)
        if (l->mapped)
            l->mapped(l->opaque, r);
    return 0;
}

void bus_unmap(struct bus *bus, struct bus_region *r)
{
    struct bus_space_table *t;

    if (!r || !r->mapped)
        return;
    t = &bus->spaces[r->space];
    for (size_t i = 0; i < t->count; i++) {
        if (t->regions[i] != r)
            continue;
        memmove(&t->regions[i], &t->regions[i + 1],
                (t->count - i - 1) * sizeof(t->regions[0]));
        t->count--;
        break;
    }
    r->mapped = false;
    trace(trace_bus_map, "unmap %s '%s' [0x%" PRIx64 "-0x%" PRIx64 "]",
          bus_space_name(r->space), r->name, r->base, region_last(r));
    for (struct bus_listener *l = bus->listeners; l; l = l->next)
        if (l->unmapped)
            l->unmapped(l->opaque, r);
}

static unsigned region_max_access(const struct bus_region *r)
{
    return r->ops->max_access ? r->ops->max_access : 8;
}

static bool region_contains(const struct bus_region *r, uint64_t addr,
                            unsigned size)
{
    return addr - r->base <= r->len - size && size <= r->len;
}

static uint64_t region_read(struct bus *bus, struct bus_region *r,
                            uint64_t addr, unsigned size)
{
    unsigned max = region_max_access(r);
    uint64_t off = addr - r->base, value = 0;

    if (!r->ops->read)
        return bus_size_mask(size);
    if (size <= max)
        return r->ops->read(r->opaque, off, size) & bus_size_mask(size);
    if (r->ops->refuse_wide) {
        bus->refused++;
        trace(trace_bus_refused, "%u-byte read of %s '%s'+0x%" PRIx64
              " refused (max %u)", size, bus_space_name(r->space), r->name,
              off, max);
        return bus_size_mask(size);
    }
    for (unsigned done = 0; done < size; done += max)
        value |= (r->ops->read(r->opaque, off + done, max) &
                  bus_size_mask(max)) << (done * 8);
    return value;
}

static void region_write(struct bus *bus, struct bus_region *r, uint64_t addr,
                         uint64_t value, unsigned size)
{
    unsigned max = region_max_access(r);
    uint64_t off = addr - r->base;

    if (!r->ops->write)
        return;
    if (size <= max) {
        r->ops->write(r->opaque, off, value & bus_size_mask(size), size);
        return;
    }
    if (r->ops->refuse_wide) {
        bus->refused++;
        trace(trace_bus_refused, "%u-byte write of %s '%s'+0x%" PRIx64
              " refused (max %u)", size, bus_space_name(r->space), r->name,
              off, max);
        return;
    }
    for (unsigned done = 0; done < size; done += max)
        r->ops->write(r->opaque, off + done,
                      (value >> (done * 8)) & bus_size_mask(max), max);
}

/* How an access of size bytes at addr relates to the regions: wholly inside
 * one (*out set), touching none, or straddling several / a region edge. */
enum span_kind { SPAN_INSIDE, SPAN_EMPTY, SPAN_MIXED };

static enum span_kind classify_span(const struct bus *bus, enum bus_space space,
                                    uint64_t addr, unsigned size,
                                    struct bus_region **out)
{
    const struct bus_space_table *t = &bus->spaces[space];
    uint64_t last = addr + size - 1;
    struct bus_region *r = bus_find(bus, space, addr);

    *out = r;
    if (r)
        return region_contains(r, addr, size) ? SPAN_INSIDE : SPAN_MIXED;
    if (last < addr)
        return SPAN_EMPTY; /* wraps the space: nothing can claim it */
    /* Empty unless some region starts within (addr, last]. */
    return upper_bound(t, addr) == upper_bound(t, last) ? SPAN_EMPTY
                                                        : SPAN_MIXED;
}

uint64_t bus_read(struct bus *bus, enum bus_space space, uint64_t addr,
                  unsigned size)
{
    struct bus_region *r;
    uint64_t value = 0;

    switch (classify_span(bus, space, addr, size, &r)) {
    case SPAN_INSIDE:
        value = region_read(bus, r, addr, size);
        trace(trace_bus_access, "read %s 0x%" PRIx64 "/%u = 0x%" PRIx64
              " (%s)", bus_space_name(space), addr, size, value, r->name);
        return value;
    case SPAN_MIXED:
        for (unsigned i = 0; i < size; i++)
            value |= bus_read(bus, space, addr + i, 1) << (i * 8);
        return value;
    case SPAN_EMPTY:
        break;
    }
    bus->unassigned_reads++;
    trace(trace_bus_unassigned, "read %s 0x%" PRIx64 "/%u",
          bus_space_name(space), addr, size);
    return bus_size_mask(size);
}

void bus_write(struct bus *bus, enum bus_space space, uint64_t addr,
               uint64_t value, unsigned size)
{
    struct bus_region *r;

    switch (classify_span(bus, space, addr, size, &r)) {
    case SPAN_INSIDE:
        trace(trace_bus_access, "write %s 0x%" PRIx64 "/%u = 0x%" PRIx64
              " (%s)", bus_space_name(space), addr, size,
              value & bus_size_mask(size), r->name);
        region_write(bus, r, addr, value, size);
        return;
    case SPAN_MIXED:
        for (unsigned i = 0; i < size; i++)
            bus_write(bus, space, addr + i, (value >> (i * 8)) & 0xff, 1);
        return;
    case SPAN_EMPTY:
        break;
    }
    bus->unassigned_writes++;
    trace(trace_bus_unassigned, "write %s 0x%" PRIx64 "/%u = 0x%" PRIx64
          " dropped", bus_space_name(space), addr, size,
          value & bus_size_mask(size));
}

void bus_add_listener(struct bus *bus, struct bus_listener *l)
{
    l->next = bus->listeners;
    bus->listeners = l;
    for (int s = 0; s < BUS_NR_SPACES; s++)
        for (size_t i = 0; i < bus->spaces[s].count; i++)
            if (l->mapped)
                l->mapped(l->opaque, bus->spaces[s].regions[i]);
}

void bus_remove_listener(struct bus *bus, struct bus_listener *l)
{
    for (struct bus_listener **pp = &bus->listeners; *pp; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            return;
        }
    }
}

void bus_for_each(const struct bus *bus, enum bus_space space, bus_region_fn fn,
                  void *opaque)
{
    const struct bus_space_table *t = &bus->spaces[space];

    for (size_t i = 0; i < t->count; i++)
        fn(opaque, t->regions[i]);
}
