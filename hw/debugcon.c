/* isa-debugcon, see debugcon.h. */
#include "debugcon.h"

#include <errno.h>
#include <string.h>

#include "../lib/log.h"

static uint64_t debugcon_read(void *opaque, uint64_t off, unsigned size)
{
    struct debugcon *c = opaque;

    return c->readback;
}

static void debugcon_write(void *opaque, uint64_t off, uint64_t value,
                           unsigned size)
{
    struct debugcon *c = opaque;
    uint8_t byte = (uint8_t)value;

    /* charbe_write never blocks; beyond its queue bytes are dropped and
     * counted there, so a chatty guest cannot stall the machine. */
    charbe_write(c->out, &byte, 1);
    c->bytes++;
}

static const struct bus_region_ops debugcon_ops = {
    .read = debugcon_read,
    .write = debugcon_write,
    .max_access = 1,
};

int debugcon_init(struct debugcon *c, struct bus *bus, uint16_t iobase,
                  struct charbe *out)
{
    int rc;

    if (!c || !bus)
        return -EINVAL;
    memset(c, 0, sizeof(*c));
    c->bus = bus;
    c->out = out;
    c->readback = DEBUGCON_READBACK;
    bus_region_init(&c->region, "isa-debugcon", 1, &debugcon_ops, c);
    rc = bus_map(bus, BUS_PIO, &c->region, iobase);
    if (rc < 0)
        log_err("debugcon: cannot map port 0x%x: %s", iobase, bus->error);
    return rc;
}

void debugcon_fini(struct debugcon *c)
{
    if (c->region.mapped)
        bus_unmap(c->bus, &c->region);
}
