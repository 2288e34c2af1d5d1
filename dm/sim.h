/* The software machine (-machine sim): the xenfv PC of machine.c run by
 * x86emu instead of a hypervisor, plus the devices Xen would otherwise
 * emulate itself, and the run loop that drives the vCPU.
 *
 * Run loop (single-threaded, on lib/loop.h): the vCPU runs in slices no
 * longer than the earliest device deadline and never longer than
 * SIM_SLICE_NS, so QMP, qtest and the character backends stay responsive
 * while a guest spins. Between slices the devices catch up to "now"
 * (hw/clock.h) and the event loop is polled without blocking. A halted
 * vCPU (HLT with nothing deliverable) or a stopped machine blocks in the
 * event loop until the next device deadline or an fd event, so an idle
 * guest costs no host CPU. */
#ifndef XENDM_DM_SIM_H
#define XENDM_DM_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "../hw/clock.h"
#include "../hw/i8259.h"
#include "../hw/irq.h"
#include "../ioreq/cpu.h"
#include "../lib/charbe.h"

struct machine;

/* Longest vCPU slice between two looks at the event loop. */
#define SIM_SLICE_NS 1000000ull
/* QEMU's defaults: isa-debug-exit iobase 0x501 iosize 2 (tests pass
 * iobase=0xf4,iosize=0x04), isa-debugcon and -debugcon at 0xE9. */
#define SIM_DEBUG_EXIT_PORT 0x501
#define SIM_DEBUG_EXIT_SIZE 2
#define SIM_DEBUGCON_PORT 0xe9
#define SIM_MAX_DEBUGCONS 2

struct sim {
    struct machine *m;
    struct vcpu cpu;
    struct hw_clock clock;
    /* The guest's clock stops while the machine is paused, as QEMU's
     * virtual clock does: now = host monotonic - paused_ns. */
    uint64_t paused_ns;
    uint64_t paused_since;
    bool clock_stopped;
    /* Instructions per microsecond, measured, to size the slices. */
    uint64_t insn_per_us;
    /* Interrupt routing: ISA levels and PCI INTx levels, combined per ISA
     * line through PIIX3's PIRQ routes into what the PIC sees. */
    struct irq_sink irq;
    uint16_t isa_level;
    uint32_t intx_level[4]; /* per PIRQ link: bit slot * 4 + pin */
    uint16_t pic_level;
    /* The devices Xen would otherwise emulate. */
    bool has_pic;
    struct i8259 pic;
    int exit_status;
    bool warned_unsupported;
    /* isa-debug-exit. */
    bool has_debug_exit;
    struct bus_region debug_exit_region;
    /* Debug consoles (-debugcon, -device isa-debugcon). */
    unsigned n_debugcons;
    struct bus_region debugcon_region[SIM_MAX_DEBUGCONS];
    struct charbe *debugcon_be[SIM_MAX_DEBUGCONS];
};

/* Builds the sim side of the machine: loads -bios, creates the vCPU and
 * the devices the command line asks for, takes over the machine's
 * interrupt backend. Called by machine_init after the chipset exists. */
int sim_init(struct sim *s, struct machine *m);
void sim_fini(struct sim *s);
/* Resets the vCPU and the sim devices (machine_reset calls it). */
void sim_reset(struct sim *s);
/* Ends the current slice: a device asked for the machine's attention. */
void sim_kick(struct sim *s);
/* The chipset's A20 gate changed. */
void sim_set_a20(struct sim *s, bool enabled);
/* Runs the machine until the process should end; returns the exit status
 * (0, or the isa-debug-exit status) or a negative errno. */
int sim_run(struct sim *s);

#endif
