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
#include "../hw/debug_exit.h"
#include "../hw/debugcon.h"
#include "../hw/i8254.h"
#include "../hw/i8259.h"
#include "../hw/irq.h"
#include "../hw/rtc.h"
#include "../ioreq/cpu.h"
#include "../lib/charbe.h"

struct machine;

/* Longest vCPU slice between two looks at the event loop. */
#define SIM_SLICE_NS 1000000ull
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
    uint32_t intx_level[4]; /* per PIRQ link: bit slot */
    uint16_t pic_level;
    /* The devices Xen would otherwise emulate (the PM timer and PM1a
     * are the PIIX4 PM function's, built by machine.c). */
    bool has_pic, has_pit, has_rtc;
    struct i8259 pic;
    struct i8254 pit;
    struct rtc rtc;
    int exit_status;
    /* -device isa-debug-exit. */
    bool has_debug_exit;
    struct debug_exit debug_exit;
    /* Debug consoles (-debugcon, -device isa-debugcon). */
    unsigned n_debugcons;
    struct debugcon debugcon[SIM_MAX_DEBUGCONS];
    struct charbe *debugcon_be[SIM_MAX_DEBUGCONS];
};

/* Builds the sim side of the machine in two steps. sim_init, once the
 * i440FX and PIIX3 exist: loads -bios, creates the vCPU, the PIC and the
 * PIT, and the clock the PM function needs. sim_add_devices, once the CMOS
 * exists: the RTC and what the command line asks for (isa-debug-exit,
 * debug consoles). On failure machine_init calls sim_fini. */
int sim_init(struct sim *s, struct machine *m);
int sim_add_devices(struct sim *s);
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
