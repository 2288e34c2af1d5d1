/* The dispatcher: the one place every guest access passes through, whatever
 * produced it (Xen's ioreq ring, the software CPU, the qtest socket).
 *
 * An ioreq is validated completely before anything acts on it (XSA-197,
 * XSA-199): size, port range, count, the guest buffer of a data_is_ptr
 * request in the direction df gives, and the type. A bad ioreq is answered
 * (reads return all-ones), counted per class and logged with a rate limit;
 * it never reaches a device and never touches memory outside the guest
 * buffer it names. */
#ifndef XENDM_IOREQ_DISPATCH_H
#define XENDM_IOREQ_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xen/hvm/ioreq.h>

#include "../hw/bus.h"

/* Largest rep count accepted. Xen keeps the RAM side of a string request
 * within one 4 KiB page, so 4096 one-byte elements is already the most a
 * real request carries. */
#define IOREQ_MAX_COUNT 4096u

/* Guest RAM as the dispatcher sees it. contains() decides validity up front;
 * read()/write() may still fail (a Xen mapping can go away) and return
 * -EFAULT then. */
struct guest_memory {
    bool (*contains)(void *opaque, uint64_t gpa, uint64_t len);
    int (*read)(void *opaque, uint64_t gpa, void *buf, size_t len);
    int (*write)(void *opaque, uint64_t gpa, const void *buf, size_t len);
    void *opaque;
};

struct dispatch_hooks {
    /* Drop every cached guest mapping (IOREQ_TYPE_INVALIDATE). */
    void (*invalidate)(void *opaque);
    /* The guest moved its RTC by delta seconds (IOREQ_TYPE_TIMEOFFSET). */
    void (*timeoffset)(void *opaque, int64_t delta);
    void *opaque;
};

enum dispatch_error {
    DISPATCH_BAD_TYPE,    /* unknown ioreq type */
    DISPATCH_BAD_SIZE,    /* not 1/2/4/8, or not valid for the type */
    DISPATCH_BAD_COUNT,   /* 0 or above IOREQ_MAX_COUNT */
    DISPATCH_BAD_PORT,    /* port >= 0x10000 or port + size beyond it */
    DISPATCH_BAD_ADDRESS, /* MMIO span wraps, or PCI register out of range */
    DISPATCH_BAD_POINTER, /* data_is_ptr buffer not wholly in guest RAM */
    DISPATCH_MEM_FAULT,   /* guest RAM copy failed part-way */
    DISPATCH_NR_ERRORS
};

struct dispatcher {
    struct bus *bus;
    struct guest_memory mem;
    struct dispatch_hooks hooks;
    uint64_t handled;
    uint64_t errors[DISPATCH_NR_ERRORS];
};

void dispatcher_init(struct dispatcher *d, struct bus *bus,
                     const struct guest_memory *mem,
                     const struct dispatch_hooks *hooks);

/* Performs req. For a read without data_is_ptr the result is left in
 * req->data (all-ones if the request was refused). Returns 0, -EINVAL for a
 * refused request or -EFAULT when guest memory failed part-way. */
int dispatch_ioreq(struct dispatcher *d, ioreq_t *req);

const char *dispatch_error_name(enum dispatch_error e);
uint64_t dispatch_error_total(const struct dispatcher *d);

#endif
