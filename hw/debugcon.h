/* QEMU's isa-debugcon, the Bochs "port E9 hack": every byte the guest
 * writes to one port goes to a host character backend. SeaBIOS and OVMF
 * write their logs to 0x402, Bochs-style code to 0xE9.
 *
 * As QEMU (hw/char/debugcon.c): a one-port device; a read returns the
 * readback value 0xE9, which is how guests detect the port; a wider
 * access is split by the bus into bytes, so only the low byte reaches the
 * port (the others fall on the next ports). */
#ifndef XENDM_HW_DEBUGCON_H
#define XENDM_HW_DEBUGCON_H

#include <stdint.h>

#include "../lib/charbe.h"
#include "bus.h"

#define DEBUGCON_DEFAULT_IOBASE 0xe9
#define DEBUGCON_FIRMWARE_IOBASE 0x402
#define DEBUGCON_READBACK 0xe9

struct debugcon {
    struct bus *bus;
    struct bus_region region;
    struct charbe *out;
    uint8_t readback; /* QEMU's readback property; the machine may change it */
    uint64_t bytes;
};

/* Maps the port. out may be NULL (bytes are discarded); the caller owns
 * it and closes it after debugcon_fini(). Returns 0, -EINVAL or
 * bus_map()'s error. */
int debugcon_init(struct debugcon *c, struct bus *bus, uint16_t iobase,
                  struct charbe *out);
void debugcon_fini(struct debugcon *c);

#endif
