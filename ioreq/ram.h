/* Guest RAM held in this process: what the daemon serves when it is attached
 * to no domain (tests, differential runs) and what the software machine will
 * run on. Anonymous memory reserved up front and touched lazily, so a large
 * -m costs nothing until used. */
#ifndef XENDM_IOREQ_RAM_H
#define XENDM_IOREQ_RAM_H

#include <stdint.h>

#include "dispatch.h"

struct local_ram {
    uint8_t *base;
    uint64_t size;
};

int local_ram_init(struct local_ram *ram, uint64_t size);
void local_ram_fini(struct local_ram *ram);
/* The accessor the dispatcher uses. */
void local_ram_accessor(struct local_ram *ram, struct guest_memory *mem);

#endif
