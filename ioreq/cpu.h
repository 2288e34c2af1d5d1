/* The software-CPU producer: an x86emu vCPU wired to the machine.
 *
 * Under Xen the hypervisor runs the guest and hands the device model ioreqs
 * for the accesses it cannot complete itself. Here x86emu runs the guest and
 * this file plays the hypervisor's part: an access to guest RAM or to the
 * firmware ROM is done on the spot (through x86emu's map_ram fast path
 * whenever the page is plain memory), and every other memory access and
 * every port access becomes an ioreq for the very dispatcher Xen's ioreqs
 * go through, so devices cannot tell the two producers apart.
 *
 * The physical address map (32 bits; x86emu has no PAE):
 *
 *   0 .. 0x9FFFF          RAM
 *   0xA0000 .. 0xBFFFF    legacy VGA window: MMIO (nothing there today)
 *   0xC0000 .. 0xFFFFF    16 segments of 16 KiB, each steered by a PAM-like
 *                         mode: reads from RAM or from the bus (the ROM
 *                         where the firmware image covers the segment,
 *                         otherwise MMIO), writes likewise (writes to the
 *                         ROM are dropped)
 *   1 MiB .. ram_size     RAM
 *   ram_size .. 4G-rom    MMIO
 *   4G-rom_size .. 4G     the firmware image, read-only
 *
 * The firmware's last min(size, 128 KiB) also appear below 1 MiB, ending at
 * 0xFFFFF, as on a PC (QEMU's "isa-bios" alias). */
#ifndef XENDM_IOREQ_CPU_H
#define XENDM_IOREQ_CPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../x86emu/x86emu.h"
#include "dispatch.h"

#define VCPU_LEGACY_BASE 0xc0000u
#define VCPU_LEGACY_SEGMENT 0x4000u /* 16 KiB, the PAM granule */
#define VCPU_LEGACY_SEGMENTS 16     /* 0xC0000 .. 0xFFFFF */
#define VCPU_VGA_BASE 0xa0000u
#define VCPU_VGA_END 0xc0000u
/* The largest firmware image, and the part of it that is aliased below
 * 1 MiB. */
#define VCPU_ROM_MAX (1u << 20)
#define VCPU_ROM_LOW_MAX (128u << 10)
/* RAM ends before the top 512 MiB so that ROM and MMIO keep room. */
#define VCPU_RAM_MAX 0xe0000000ull

/* A legacy segment's mode: where reads and writes go (i440FX PAM
 * semantics: RE = read enable, WE = write enable, both to DRAM). */
#define VCPU_LEGACY_READ_RAM 0x1u
#define VCPU_LEGACY_WRITE_RAM 0x2u

struct vcpu_ops {
    /* The interrupt controller's INTA cycle: the vector to deliver, or -1
     * when the request went away. */
    int (*int_ack)(void *opaque);
    void *opaque;
};

struct vcpu_stats {
    uint64_t pio, mmio;               /* ioreqs handed to the dispatcher */
    uint64_t rom_writes;              /* dropped writes to the firmware */
    uint64_t unassigned;              /* accesses nothing answered */
};

struct vcpu {
    struct x86emu x86;
    struct dispatcher *dispatch;
    struct vcpu_ops ops;
    uint8_t *ram;      /* guest RAM from physical address 0 */
    uint32_t ram_size; /* bytes, at most VCPU_RAM_MAX */
    uint8_t *rom;      /* private copy of the firmware image */
    uint32_t rom_size;
    uint32_t rom_base;     /* 4 GiB - rom_size */
    uint32_t rom_low_base; /* 1 MiB - min(rom_size, 128 KiB) */
    uint8_t legacy[VCPU_LEGACY_SEGMENTS];
    struct vcpu_stats stats;
};

/* Sets up a 386-class vCPU over ram (ram_size bytes, at least 1 MiB) and a
 * copy of the firmware image rom (a multiple of 64 KiB, at most 1 MiB).
 * Every legacy segment starts in mode 0 (reads and writes go to the bus),
 * the power-on state of the i440FX PAM registers. Returns 0 or -EINVAL /
 * -ENOMEM. */
int vcpu_init(struct vcpu *c, struct dispatcher *dispatch, uint8_t *ram,
              uint64_t ram_size, const uint8_t *rom, size_t rom_size,
              const struct vcpu_ops *ops);
void vcpu_fini(struct vcpu *c);

/* Processor RESET (the A20 gate is the chipset's and is left alone). */
void vcpu_reset(struct vcpu *c);
/* Runs at most max_instructions guest instructions. */
enum x86emu_stop vcpu_run(struct vcpu *c, uint64_t max_instructions);
/* Ends the current vcpu_run at the next instruction boundary; for device
 * callbacks that need the machine's attention now. */
void vcpu_kick(struct vcpu *c);

/* The interrupt controller's INT output. */
void vcpu_set_intr(struct vcpu *c, bool asserted);
/* The chipset's A20 gate. */
void vcpu_set_a20(struct vcpu *c, bool enabled);
/* Steers legacy segment seg (0 = 0xC0000) to mode (VCPU_LEGACY_*). */
void vcpu_set_legacy_mode(struct vcpu *c, unsigned seg, unsigned mode);

#endif
