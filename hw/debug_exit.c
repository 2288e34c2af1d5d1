/* isa-debug-exit, see debug_exit.h. */
#include "debug_exit.h"

#include <errno.h>
#include <string.h>

#include "../lib/log.h"

static uint64_t debug_exit_read(void *opaque, uint64_t off, unsigned size)
{
    return 0;
}

static void debug_exit_write(void *opaque, uint64_t off, uint64_t value,
                             unsigned size)
{
    struct debug_exit *d = opaque;
    /* The status is an int like exit()'s argument; a 32-bit value shifted
     * left keeps its low 31 bits, as QEMU's exit((val << 1) | 1) does
     * through the conversion to int. */
    int status = (int)(uint32_t)((value << 1) | 1);

    log_ratelimited(LOG_INFO, "debug-exit: guest wrote 0x%llx at port 0x%llx: exit status %d",
                    (unsigned long long)value,
                    (unsigned long long)(d->region.base + off), status);
    d->exit(d->opaque, status);
}

static const struct bus_region_ops debug_exit_ops = {
    .read = debug_exit_read,
    .write = debug_exit_write,
    .max_access = 4,
};

int debug_exit_init(struct debug_exit *d, struct bus *bus, uint16_t iobase,
                    unsigned iosize, void (*exit)(void *opaque, int status),
                    void *opaque)
{
    int rc;

    if (!d || !bus || !exit || (iosize != 1 && iosize != 2 && iosize != 4) ||
        (uint32_t)iobase + iosize > BUS_PIO_LIMIT)
        return -EINVAL;
    memset(d, 0, sizeof(*d));
    d->bus = bus;
    d->exit = exit;
    d->opaque = opaque;
    bus_region_init(&d->region, "isa-debug-exit", iosize, &debug_exit_ops, d);
    rc = bus_map(bus, BUS_PIO, &d->region, iobase);
    if (rc < 0)
        log_err("debug-exit: cannot map ports: %s", bus->error);
    return rc;
}

void debug_exit_fini(struct debug_exit *d)
{
    if (d->region.mapped)
        bus_unmap(d->bus, &d->region);
}
