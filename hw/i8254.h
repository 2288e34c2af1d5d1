/* The 8254 programmable interval timer at 0x40-0x43 (three channels on a
 * 1.193182 MHz input clock) and the PC's "NMI status and control" port 0x61,
 * which holds channel 2's gate and the speaker enable and shows channel 2's
 * OUT and the memory-refresh toggle. Port 0x61 lives here because all it
 * carries that a guest uses is the PIT's.
 *
 * Under Xen both are the hypervisor's (xen-dm-interfaces.md §6.1); the
 * software machine has them as ordinary devices.
 *
 * Time comes only from the hw_clock: counts and outputs are functions of
 * the clock's time since the count was loaded, never of how often the
 * device is looked at, so a count read is exact against the virtual clock
 * and the IRQ0 rate never drifts. Channel 0's OUT drives ISA IRQ 0; the
 * machine polls: i8254_next_deadline_ns() is when OUT0 next changes,
 * i8254_update() brings the line up to date.
 *
 * Missed ticks: if update runs late and OUT0 had one or more rising edges
 * since the last update, the line gets exactly one edge (a pulse if it
 * ends up at the level it started at). That is what the PIC of a stalled
 * machine sees on hardware (one latched request however many edges came
 * while it was not acknowledged); lost ticks are not replayed.
 *
 * Simplifications (none visible to the guests we target): a count takes
 * effect at the clock tick it is written, not one CLK later; mode 0 keeps
 * counting between the two bytes of a two-byte count write; in modes 2 and
 * 3 a new count takes effect at the end of the current period (the data
 * sheet: mode 3 at the end of the current half-cycle); count reads in mode
 * 3 with an odd count may differ by one from the data sheet's sequence
 * (OUT timing is exact: high (N+1)/2, low (N-1)/2); a count of 1, illegal
 * in modes 2 and 3, counts as 2. */
#ifndef XENDM_HW_I8254_H
#define XENDM_HW_I8254_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "clock.h"
#include "irq.h"

#define I8254_BASE 0x40
#define I8254_PORT61 0x61
#define I8254_IRQ 0
#define I8254_HZ 1193182ull
#define I8254_CHANNELS 3
/* DRAM refresh request period shown by port 0x61 bit 4 (toggles each). */
#define I8254_REFRESH_NS 15085ull

/* Port 0x61 bits (PIIX "NMI status and control"). */
#define I8254_P61_GATE2 0x01
#define I8254_P61_SPKR_DATA 0x02
#define I8254_P61_PCK_EN 0x04 /* parity check enable, stored only */
#define I8254_P61_IOCHK_EN 0x08
#define I8254_P61_REFRESH 0x10
#define I8254_P61_OUT2 0x20

struct i8254_channel {
    uint8_t mode;    /* 0-5 */
    uint8_t rw;      /* 1 LSB, 2 MSB, 3 LSB then MSB */
    bool bcd;
    bool counting;   /* a count was written since the control word */
    bool gate;
    bool triggered;  /* modes 1 and 5: a gate edge started the count */
    bool paused;     /* gate low stopped the count (modes 0, 2, 3, 4) */
    uint64_t paused_elapsed;
    uint32_t count;  /* N in clocks: 1 .. 0x10000 (BCD: .. 16666) */
    uint64_t load_tick;
    /* Modes 2/3: a count written while counting, used from switch_tick. */
    bool switch_pending;
    uint32_t next_count;
    uint64_t switch_tick;
    uint16_t cr;     /* the count register as written */
    bool null_count; /* written count not yet loaded (status bit 6) */
    bool write_msb_next, read_msb_next;
    uint8_t write_lsb;
    uint8_t latch_state; /* which bytes of latched are still to be read */
    uint16_t latched;
    bool status_latched;
    uint8_t status;
};

struct i8254 {
    struct i8254_channel ch[I8254_CHANNELS];
    struct bus *bus;
    const struct hw_clock *clock;
    const struct irq_sink *irq;
    struct bus_region region, port61_region;
    uint8_t port61; /* bits 0-3 as written */
    bool irq_level; /* what the sink was last told */
    uint64_t last_update_tick;
    uint64_t irq_edges; /* rising edges given to the sink */
};

/* Maps 0x40-0x43 and 0x61 and resets. clock is required; irq may be NULL.
 * Returns 0, -EINVAL, or bus_map()'s error (nothing stays mapped). */
int i8254_init(struct i8254 *pit, struct bus *bus,
               const struct hw_clock *clock, const struct irq_sink *irq);
/* Unmaps and lowers IRQ 0. */
void i8254_fini(struct i8254 *pit);
/* QEMU's reset state: every channel in mode 3, LSB-then-MSB, binary, count
 * 65536 loaded now; channel 0 and 1 gates high, channel 2's low (port 0x61
 * reads 0 but for OUT2 and the refresh toggle). So IRQ 0 ticks at 18.2 Hz
 * from reset, as it does on QEMU. */
void i8254_reset(struct i8254 *pit);

/* The clock time at which OUT0 next changes after the last update (it may
 * be in the past if update is overdue), or HW_CLOCK_NEVER. */
uint64_t i8254_next_deadline_ns(struct i8254 *pit);
/* Brings IRQ 0 up to the clock's now (see the missed-ticks note). */
void i8254_update(struct i8254 *pit);

/* For tests and the monitor: the current count and OUT of a channel. */
uint16_t i8254_read_count(struct i8254 *pit, unsigned channel);
bool i8254_out(struct i8254 *pit, unsigned channel);

#endif
