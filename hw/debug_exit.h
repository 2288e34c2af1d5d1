/* QEMU's isa-debug-exit: a port that ends the emulator with a status the
 * guest chooses. Test kernels and firmware test suites write their verdict
 * to it; the exit status is (value << 1) | 1, so it is never 0 and a clean
 * exit of the emulator itself can be told apart.
 *
 * As QEMU (hw/misc/debugexit.c): iobase 0x501 and iosize 2 by default
 * (test suites commonly use iobase 0xf4 with iosize 4); writes of 1, 2 or
 * 4 bytes pass the whole value written; reads return 0. One difference:
 * our bus splits an access that runs past the region into bytes, so an
 * access wider than iosize reaches the device byte by byte, the first
 * call carrying the low byte (in QEMU one call carries the whole value). */
#ifndef XENDM_HW_DEBUG_EXIT_H
#define XENDM_HW_DEBUG_EXIT_H

#include <stdint.h>

#include "bus.h"

#define DEBUG_EXIT_DEFAULT_IOBASE 0x501
#define DEBUG_EXIT_DEFAULT_IOSIZE 2

struct debug_exit {
    struct bus *bus;
    struct bus_region region;
    void (*exit)(void *opaque, int status);
    void *opaque;
};

/* Maps iosize (1, 2 or 4) ports at iobase. exit is called with the status
 * for every write; what it does (end the machine) is the caller's. Returns
 * 0, -EINVAL (bad size, range past 0xFFFF, no exit callback) or
 * bus_map()'s error. */
int debug_exit_init(struct debug_exit *d, struct bus *bus, uint16_t iobase,
                    unsigned iosize, void (*exit)(void *opaque, int status),
                    void *opaque);
void debug_exit_fini(struct debug_exit *d);

#endif
