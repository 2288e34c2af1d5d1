#include "cpu.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"

TRACE_POINT(trace_vcpu_io, "vcpu_io");

/* Where an access at physical address addr goes: a host pointer into RAM or
 * the ROM copy, or NULL for the bus. *rom_write is set for a write that
 * hits the firmware, which is dropped. x86emu never hands us an access
 * that crosses a 4 KiB page, and every boundary below is page-aligned, so
 * the answer holds for the whole access (and the whole page). */
static uint8_t *vcpu_host(struct vcpu *c, uint32_t addr, bool write,
                          bool *rom_write)
{
    *rom_write = false;
    if (addr < VCPU_VGA_BASE)
        return c->ram + addr; /* ram_size >= 1 MiB */
    if (addr < VCPU_VGA_END)
        return NULL;
    if (addr < 0x100000u) {
        unsigned mode = c->legacy[(addr - VCPU_LEGACY_BASE) / VCPU_LEGACY_SEGMENT];

        if (mode & (write ? VCPU_LEGACY_WRITE_RAM : VCPU_LEGACY_READ_RAM))
            return c->ram + addr;
        if (addr < c->rom_low_base)
            return NULL;
        if (write) {
            *rom_write = true;
            return NULL;
        }
        return c->rom + c->rom_size - (0x100000u - addr);
    }
    if (addr < c->ram_size)
        return c->ram + addr;
    if (addr >= c->rom_base) {
        if (write) {
            *rom_write = true;
            return NULL;
        }
        return c->rom + (addr - c->rom_base);
    }
    return NULL;
}

static uint8_t *vcpu_map_ram(void *opaque, uint32_t page, bool write)
{
    bool rom_write;
    uint8_t *host = vcpu_host(opaque, page, write, &rom_write);

    /* x86emu caches one host pointer per page for reads and writes alike,
     * so a page whose writes go elsewhere than its reads (ROM, or a legacy
     * segment with PAM WE without RE or the other way round) is mapped for
     * reads only; its writes take the slow path (vcpu_mem_write). */
    if (write && host && host != vcpu_host(opaque, page, false, &rom_write))
        return NULL;
    return host;
}

static uint64_t vcpu_bus_access(struct vcpu *c, uint8_t type, uint64_t addr,
                                uint64_t value, unsigned size, bool read)
{
    struct bus *bus = c->dispatch->bus;
    uint64_t unassigned = read ? bus->unassigned_reads : bus->unassigned_writes;
    ioreq_t req = {
        .addr = addr,
        .data = read ? 0 : value,
        .count = 1,
        .size = size,
        .state = STATE_IOREQ_INPROCESS,
        .dir = read ? IOREQ_READ : IOREQ_WRITE,
        .type = type,
    };

    dispatch_ioreq(c->dispatch, &req);
    /* A config cycle through 0xCFC to an absent function is a master abort
     * (all-ones), counted as unassigned on the PCI configuration space; it is
     * how every bus scan finds empty slots, not an access to a missing
     * port, so it is not logged. */
    bool config_data = type == IOREQ_TYPE_PIO && addr >= 0xcfc && addr < 0xd00;

    if (!config_data &&
        (read ? bus->unassigned_reads : bus->unassigned_writes) != unassigned) {
        c->stats.unassigned++;
        /* Probing absent hardware is what firmware does, so this is
         * information, not a warning; the guest gets all-ones. */
        log_ratelimited(LOG_INFO, "vcpu: %s %s 0x%" PRIx64 "/%u: nothing "
                        "there (%s)", read ? "read from" : "write to",
                        type == IOREQ_TYPE_PIO ? "port" : "MMIO", addr, size,
                        read ? "all-ones" : "dropped");
    }
    trace(trace_vcpu_io, "%s %s 0x%" PRIx64 "/%u = 0x%" PRIx64,
          type == IOREQ_TYPE_PIO ? "pio" : "mmio", read ? "in" : "out", addr,
          size, read ? req.data : value);
    return req.data;
}

static uint32_t vcpu_mem_read(void *opaque, uint32_t addr, unsigned size)
{
    struct vcpu *c = opaque;
    bool rom_write;
    uint8_t *host = vcpu_host(c, addr, false, &rom_write);
    uint32_t v = 0;

    if (host) {
        memcpy(&v, host, size); /* little-endian host */
        return v;
    }
    c->stats.mmio++;
    return (uint32_t)vcpu_bus_access(c, IOREQ_TYPE_COPY, addr, 0, size, true);
}

static void vcpu_mem_write(void *opaque, uint32_t addr, uint32_t value,
                           unsigned size)
{
    struct vcpu *c = opaque;
    bool rom_write;
    uint8_t *host = vcpu_host(c, addr, true, &rom_write);

    if (host) {
        memcpy(host, &value, size);
        return;
    }
    if (rom_write) {
        c->stats.rom_writes++;
        log_ratelimited(LOG_INFO, "vcpu: write to the firmware ROM at 0x%08"
                        PRIx32 "/%u dropped", addr, size);
        return;
    }
    c->stats.mmio++;
    vcpu_bus_access(c, IOREQ_TYPE_COPY, addr, value, size, false);
}

static uint32_t vcpu_io_in(void *opaque, uint16_t port, unsigned size)
{
    struct vcpu *c = opaque;

    c->stats.pio++;
    return (uint32_t)vcpu_bus_access(c, IOREQ_TYPE_PIO, port, 0, size, true);
}

static void vcpu_io_out(void *opaque, uint16_t port, uint32_t value,
                        unsigned size)
{
    struct vcpu *c = opaque;

    c->stats.pio++;
    vcpu_bus_access(c, IOREQ_TYPE_PIO, port, value, size, false);
}

static int vcpu_int_ack(void *opaque)
{
    struct vcpu *c = opaque;

    return c->ops.int_ack ? c->ops.int_ack(c->ops.opaque) : -1;
}

static void vcpu_halt(void *opaque)
{
    /* x86emu_run returns X86EMU_STOP_HALT; the run loop does the waiting. */
}

static const struct x86emu_ops vcpu_x86_ops = {
    .mem_read = vcpu_mem_read,
    .mem_write = vcpu_mem_write,
    .io_in = vcpu_io_in,
    .io_out = vcpu_io_out,
    .int_ack = vcpu_int_ack,
    .halt = vcpu_halt,
    .map_ram = vcpu_map_ram,
};

int vcpu_init(struct vcpu *c, struct dispatcher *dispatch, uint8_t *ram,
              uint64_t ram_size, const uint8_t *rom, size_t rom_size,
              const struct vcpu_ops *ops)
{
    memset(c, 0, sizeof(*c));
    if (!dispatch || !ram || ram_size < (1u << 20) || ram_size > VCPU_RAM_MAX ||
        (ram_size & 0xfff) || !rom || !rom_size || rom_size > VCPU_ROM_MAX ||
        rom_size % (64u << 10))
        return -EINVAL;
    c->rom = malloc(rom_size);
    if (!c->rom)
        return -ENOMEM;
    memcpy(c->rom, rom, rom_size);
    c->rom_size = (uint32_t)rom_size;
    c->rom_base = (uint32_t)(0x100000000ull - rom_size);
    c->rom_low_base = 0x100000u - (c->rom_size < VCPU_ROM_LOW_MAX
                                       ? c->rom_size : VCPU_ROM_LOW_MAX);
    c->dispatch = dispatch;
    c->ram = ram;
    c->ram_size = (uint32_t)ram_size;
    if (ops)
        c->ops = *ops;
    x86emu_init(&c->x86, X86EMU_MODEL_386, &vcpu_x86_ops, c);
    return 0;
}

void vcpu_fini(struct vcpu *c)
{
    free(c->rom);
    c->rom = NULL;
}

void vcpu_reset(struct vcpu *c)
{
    x86emu_reset(&c->x86);
}

enum x86emu_stop vcpu_run(struct vcpu *c, uint64_t max_instructions)
{
    return x86emu_run(&c->x86, max_instructions);
}

void vcpu_kick(struct vcpu *c)
{
    x86emu_request_stop(&c->x86);
}

void vcpu_set_intr(struct vcpu *c, bool asserted)
{
    x86emu_set_intr(&c->x86, asserted);
}

void vcpu_set_a20(struct vcpu *c, bool enabled)
{
    x86emu_set_a20(&c->x86, enabled);
}

void vcpu_set_legacy_mode(struct vcpu *c, unsigned seg, unsigned mode)
{
    if (seg >= VCPU_LEGACY_SEGMENTS)
        return;
    mode &= VCPU_LEGACY_READ_RAM | VCPU_LEGACY_WRITE_RAM;
    if (c->legacy[seg] == mode)
        return;
    c->legacy[seg] = (uint8_t)mode;
    /* Cached translations of the segment now point at the wrong memory. */
    x86emu_flush_tlb(&c->x86);
}
