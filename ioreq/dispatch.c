#include "dispatch.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "../lib/log.h"

/* Guest data is little-endian; the copies below rely on the host being so. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "xen-dm supports little-endian hosts only");

TRACE_POINT(trace_dispatch, "dispatch_ioreq");

static const char *const error_names[DISPATCH_NR_ERRORS] = {
    [DISPATCH_BAD_TYPE] = "bad type",
    [DISPATCH_BAD_SIZE] = "bad size",
    [DISPATCH_BAD_COUNT] = "bad count",
    [DISPATCH_BAD_PORT] = "bad port",
    [DISPATCH_BAD_ADDRESS] = "bad address",
    [DISPATCH_BAD_POINTER] = "bad guest buffer",
    [DISPATCH_MEM_FAULT] = "guest memory fault",
};

const char *dispatch_error_name(enum dispatch_error e)
{
    return e < DISPATCH_NR_ERRORS ? error_names[e] : "?";
}

uint64_t dispatch_error_total(const struct dispatcher *d)
{
    uint64_t total = 0;

    for (int i = 0; i < DISPATCH_NR_ERRORS; i++)
        total += d->errors[i];
    return total;
}

void dispatcher_init(struct dispatcher *d, struct bus *bus,
                     const struct guest_memory *mem,
                     const struct dispatch_hooks *hooks)
{
    memset(d, 0, sizeof(*d));
    d->bus = bus;
    if (mem)
        d->mem = *mem;
    if (hooks)
        d->hooks = *hooks;
}

static bool size_valid(uint32_t size, unsigned max)
{
    return (size == 1 || size == 2 || size == 4 || size == 8) && size <= max;
}

/* First and last byte of count elements of size bytes stepping from base in
 * the direction df gives; false if the span wraps the 64-bit space. */
static bool element_span(uint64_t base, uint32_t count, uint32_t size, bool df,
                         uint64_t *first, uint64_t *last)
{
    uint64_t extent = (uint64_t)(count - 1) * size; /* count >= 1, no overflow */

    if (df) {
        if (base < extent || base > UINT64_MAX - (size - 1))
            return false;
        *first = base - extent;
        *last = base + size - 1;
    } else {
        if (base > UINT64_MAX - extent - (size - 1))
            return false;
        *first = base;
        *last = base + extent + size - 1;
    }
    return true;
}

static uint64_t element_address(uint64_t base, uint32_t i, uint32_t size,
                                bool df)
{
    uint64_t step = (uint64_t)i * size;

    return df ? base - step : base + step;
}

/* Returns the class of error, or -1 if req is acceptable. */
static int validate(const struct dispatcher *d, const ioreq_t *req)
{
    uint64_t first, last;

    switch (req->type) {
    case IOREQ_TYPE_PIO:
        if (!size_valid(req->size, 4))
            return DISPATCH_BAD_SIZE;
        if (req->addr >= BUS_PIO_LIMIT || req->addr + req->size > BUS_PIO_LIMIT)
            return DISPATCH_BAD_PORT;
        break;
    case IOREQ_TYPE_COPY:
        if (!size_valid(req->size, 8))
            return DISPATCH_BAD_SIZE;
        break;
    case IOREQ_TYPE_PCI_CONFIG:
        if (!size_valid(req->size, 4))
            return DISPATCH_BAD_SIZE;
        if ((req->addr & 0xffffffffu) + req->size > 0x1000)
            return DISPATCH_BAD_ADDRESS;
        break;
    case IOREQ_TYPE_TIMEOFFSET:
    case IOREQ_TYPE_INVALIDATE:
        return -1;
    default:
        return DISPATCH_BAD_TYPE;
    }
    if (req->count == 0 || req->count > IOREQ_MAX_COUNT)
        return DISPATCH_BAD_COUNT;
    if (req->type == IOREQ_TYPE_COPY &&
        !element_span(req->addr, req->count, req->size, req->df, &first, &last))
        return DISPATCH_BAD_ADDRESS;
    if (req->data_is_ptr) {
        if (!element_span(req->data, req->count, req->size, req->df, &first,
                          &last))
            return DISPATCH_BAD_POINTER;
        if (!d->mem.contains ||
            !d->mem.contains(d->mem.opaque, first, last - first + 1))
            return DISPATCH_BAD_POINTER;
    }
    return -1;
}

static const char *type_name(uint8_t type)
{
    switch (type) {
    case IOREQ_TYPE_PIO: return "pio";
    case IOREQ_TYPE_COPY: return "mmio";
    case IOREQ_TYPE_PCI_CONFIG: return "pci-config";
    case IOREQ_TYPE_TIMEOFFSET: return "timeoffset";
    case IOREQ_TYPE_INVALIDATE: return "invalidate";
    default: return "unknown";
    }
}

static int refuse(struct dispatcher *d, ioreq_t *req, enum dispatch_error e)
{
    d->errors[e]++;
    log_ratelimited(LOG_WARN,
                    "ioreq refused (%s): type %u (%s) %s addr 0x%" PRIx64
                    " size %" PRIu32 " count %" PRIu32 " data%s 0x%" PRIx64
                    " df %u",
                    error_names[e], req->type, type_name(req->type),
                    req->dir == IOREQ_READ ? "read" : "write", req->addr,
                    req->size, req->count, req->data_is_ptr ? "-ptr" : "",
                    req->data, req->df);
    if (req->dir == IOREQ_READ && !req->data_is_ptr)
        req->data = size_valid(req->size, 8) ? bus_size_mask(req->size) : ~0ull;
    return -EINVAL;
}

static int mem_fault(struct dispatcher *d, const ioreq_t *req, uint64_t gpa)
{
    d->errors[DISPATCH_MEM_FAULT]++;
    log_ratelimited(LOG_WARN,
                    "ioreq %s %s at 0x%" PRIx64 ": guest memory at 0x%" PRIx64
                    " not accessible, transfer stopped",
                    type_name(req->type),
                    req->dir == IOREQ_READ ? "read" : "write", req->addr, gpa);
    return -EFAULT;
}

/* The device side of one element: a port (fixed), an MMIO address (steps)
 * or a config register (fixed). */
struct target {
    enum bus_space space;
    uint64_t addr;
    bool steps;
};

static uint64_t target_address(const struct target *t, const ioreq_t *req,
                               uint32_t i)
{
    return t->steps ? element_address(t->addr, i, req->size, req->df) : t->addr;
}

static int perform(struct dispatcher *d, ioreq_t *req, const struct target *t)
{
    uint32_t count = req->count;

    if (!req->data_is_ptr) {
        /* A port or config register is accessed once whatever the count;
         * MMIO repeats (rep stos; for reads the last element wins). */
        if (!t->steps)
            count = 1;
        for (uint32_t i = 0; i < count; i++) {
            uint64_t a = target_address(t, req, i);

            if (req->dir == IOREQ_READ)
                req->data = bus_read(d->bus, t->space, a, req->size);
            else
                bus_write(d->bus, t->space, a,
                          req->data & bus_size_mask(req->size), req->size);
        }
        return 0;
    }
    for (uint32_t i = 0; i < count; i++) {
        uint64_t a = target_address(t, req, i);
        uint64_t gpa = element_address(req->data, i, req->size, req->df);
        uint64_t v = 0;

        if (req->dir == IOREQ_READ) {
            v = bus_read(d->bus, t->space, a, req->size);
            if (d->mem.write(d->mem.opaque, gpa, &v, req->size) < 0)
                return mem_fault(d, req, gpa);
        } else {
            if (d->mem.read(d->mem.opaque, gpa, &v, req->size) < 0)
                return mem_fault(d, req, gpa);
            bus_write(d->bus, t->space, a, v, req->size);
        }
    }
    return 0;
}

int dispatch_ioreq(struct dispatcher *d, ioreq_t *req)
{
    struct target t;
    int e = validate(d, req);
    int rc;

    if (e >= 0)
        return refuse(d, req, (enum dispatch_error)e);
    trace(trace_dispatch, "%s %s addr 0x%" PRIx64 " size %" PRIu32
          " count %" PRIu32 " data%s 0x%" PRIx64 " df %u",
          type_name(req->type), req->dir == IOREQ_READ ? "read" : "write",
          req->addr, req->size, req->count, req->data_is_ptr ? "-ptr" : "",
          req->data, req->df);
    switch (req->type) {
    case IOREQ_TYPE_INVALIDATE:
        if (d->hooks.invalidate)
            d->hooks.invalidate(d->hooks.opaque);
        d->handled++;
        return 0;
    case IOREQ_TYPE_TIMEOFFSET:
        if (d->hooks.timeoffset)
            d->hooks.timeoffset(d->hooks.opaque, (int64_t)req->data);
        d->handled++;
        return 0;
    case IOREQ_TYPE_PIO:
        t = (struct target){BUS_PIO, req->addr, false};
        break;
    case IOREQ_TYPE_COPY:
        t = (struct target){BUS_MMIO, req->addr, true};
        break;
    default: /* IOREQ_TYPE_PCI_CONFIG: (SBDF << 32) | register */
        t = (struct target){
            BUS_PCI_CFG,
            BUS_PCI_CFG_ADDR(req->addr >> 32, req->addr & 0xfff), false};
        break;
    }
    rc = perform(d, req, &t);
    if (rc == 0)
        d->handled++;
    return rc;
}
