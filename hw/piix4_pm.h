/* PIIX4 power-management function (82371AB function 3) at 00:01.3: the
 * ACPI fixed-hardware registers the device model owns under Xen, plus the
 * Xen-specific GPE0, CPU hot-plug and debug ports hvmloader's tables point at.
 *
 * Who emulates what (xen-dm-interfaces.md §5.1, §5.4):
 *   PM1a_EVT (PMBA+0..3), PM_TMR (PMBA+8..11)     Xen (pmtimer.c); here only
 *                                                  for the software machine
 *                                                  (emulate_pm1_evt_and_timer)
 *   PM1a_CNT (PMBA+4..5)                           here
 *   SMI_CMD 0xB2 (+ APM status 0xB3)               here
 *   GPE0_BLK 0xAFE0..0xAFE3, SCI = ISA IRQ 9       here
 *   CPU map 0xAF00..0xAF1F (PRST), debug 0xB044    here
 *
 * The hot-plug controller (pcihp) raises its GPE0 status bit through
 * piix4_pm_gpe_raise() and learns that the guest acknowledged it through
 * piix4_pm_ops.gpe_cleared. */
#ifndef XENDM_HW_PIIX4_PM_H
#define XENDM_HW_PIIX4_PM_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "clock.h"
#include "irq.h"
#include "pci.h"

#define PIIX4_PM_DEVFN PCI_DEVFN(1, 3)

/* PCI identity of QEMU's PIIX4_PM (hw/acpi/piix4.c, class_init):
 * PCI_DEVICE_ID_INTEL_82371AB_3, revision 0x03, PCI_CLASS_BRIDGE_OTHER. */
#define PIIX4_PM_VENDOR_ID 0x8086
#define PIIX4_PM_DEVICE_ID 0x7113
#define PIIX4_PM_REVISION 0x03
#define PIIX4_PM_CLASS 0x068000

/* Function 3 configuration registers (82371AB datasheet names). */
enum {
    PIIX4_PMBA = 0x40,      /* power-management base address, 32 bit */
    PIIX4_DEVACTB = 0x58,   /* device activity B, 32 bit */
    PIIX4_DEVRESA = 0x5c,   /* device resource A, 32 bit */
    PIIX4_DEVRESB = 0x60,   /* device resource B, 32 bit */
    PIIX4_DEVRESC = 0x64,   /* device resource C, 32 bit */
    PIIX4_PMREGMISC = 0x80, /* bit 0 PMIOSE: PM I/O space enable */
    PIIX4_SMBBA = 0x90,     /* SMBus base address, 32 bit */
    PIIX4_SMBHSTCFG = 0xd2, /* SMBus host configuration */
};
#define PIIX4_PMBA_IO 0x0001       /* resource type indicator, reads 1 */
#define PIIX4_PMBA_MASK 0xffc0     /* bits 15:6: a 64-byte block */
#define PIIX4_PMREGMISC_PMIOSE 0x01

/* PM1a_CNT (ACPI 6.x §4.8.3.2.1), at PMBA + 4. */
#define PIIX4_PM1_CNT_OFFSET 4
#define PIIX4_PM1_CNT_SCI_EN 0x0001
#define PIIX4_PM1_CNT_SLP_TYP_SHIFT 10
#define PIIX4_PM1_CNT_SLP_TYP_MASK 0x1c00
#define PIIX4_PM1_CNT_SLP_EN 0x2000 /* write-only */
/* PM1a_EVT (ACPI 6.x §4.8.3.1): PM1_STS at PMBA + 0 (write 1 to clear),
 * PM1_EN at PMBA + 2; and PM_TMR at PMBA + 8. Emulated only for the
 * software machine. */
#define PIIX4_PM1_EVT_OFFSET 0
#define PIIX4_PM_TMR_OFFSET 8
#define PIIX4_PM1_TMR_STS 0x0001
#define PIIX4_PM1_BM_STS 0x0010
#define PIIX4_PM1_GBL_STS 0x0020
#define PIIX4_PM1_PWRBTN_STS 0x0100
#define PIIX4_PM1_SLPBTN_STS 0x0200
#define PIIX4_PM1_RTC_STS 0x0400
#define PIIX4_PM1_WAK_STS 0x8000
#define PIIX4_PM1_STS_MASK 0x8731
#define PIIX4_PM1_TMR_EN 0x0001
#define PIIX4_PM1_GBL_EN 0x0020
#define PIIX4_PM1_PWRBTN_EN 0x0100
#define PIIX4_PM1_SLPBTN_EN 0x0200
#define PIIX4_PM1_RTC_EN 0x0400
#define PIIX4_PM1_EN_MASK 0x0721
#define PIIX4_PM_TIMER_HZ 3579545ull

/* SLP_TYP values of hvmloader's tables: \_S5 and \_S4 {0,0} (dsdt.asl,
 * ssdt_s4.asl), \_S3 {1,1} (ssdt_s3.asl). */
#define PIIX4_SLP_TYP_S5 0
#define PIIX4_SLP_TYP_S3 1

/* qemu-trad's fixed PM block (§6.3) and hvmloader's PMBA value. */
#define PIIX4_PM_FIXED_BASE 0xb000

/* APM control/status ports (QEMU hw/isa/apm.c); FADT SMI_CMD = 0xB2 and the
 * ACPI_ENABLE/ACPI_DISABLE values (hw/acpi/piix4.c). */
#define PIIX4_APM_CNT_PORT 0xb2
#define PIIX4_APM_STS_PORT 0xb3
#define PIIX4_ACPI_ENABLE 0xf1
#define PIIX4_ACPI_DISABLE 0xf0

/* GPE0 block: two status bytes (write 1 to clear), two enable bytes. */
#define PIIX4_GPE0_BASE 0xafe0
#define PIIX4_GPE0_LEN 4
#define PIIX4_GPE0_BITS 16
#define PIIX4_GPE_CPU_HOTPLUG 2 /* XEN_ACPI_GPE0_CPUHP_BIT, _E02/_L02 */
#define PIIX4_SCI_IRQ 9

/* CPU hot-plug bitmap (XEN_ACPI_CPU_MAP): the DSDT reads 16 bytes, both
 * reference device models decode 32. */
#define PIIX4_CPU_MAP_BASE 0xaf00
#define PIIX4_CPU_MAP_LEN 32
#define PIIX4_MAX_CPUS 128 /* HVM_MAX_VCPUS */

/* ACPI debug port the DSDT declares (DPT1/DPT2). */
#define PIIX4_DEBUG_PORT 0xb044
#define PIIX4_DEBUG_LEN 4

struct piix4_pm_config {
    /* qemu-trad: PM1a_CNT always at 0xB004, config 0x40/0x80 stored but
     * ignored. Otherwise (QEMU) it follows PMBA while PMIOSE is set. */
    bool fixed_pmba;
    /* SCI_EN after power-on and reset: qemu-trad true, QEMU's xenfv
     * machine false (§5.1; xenfv is xenfv-3.1, whose hw_compat_5_2 sets
     * PIIX4_PM smm-compat, so acpi_pm1_cnt_reset leaves SCI_EN clear).
     * QEMU's plain `pc` machine (xen_platform_pci=0) instead starts with
     * SCI_EN set and ignores 0xF0/0xF1; that lock is not modelled. */
    bool sci_en_at_reset;
    /* vCPUs 0 .. n-1 are online at start (n <= PIIX4_MAX_CPUS). */
    unsigned ncpus_online;
    /* PM1a_EVT and the PM timer are Xen's under a hypervisor; the
     * software machine sets this and gives a clock. They then decode at
     * PMBA + 0 and + 8 wherever PM1a_CNT decodes (0xB000 / 0xB008 with
     * fixed_pmba). Without a clock init refuses with -EOPNOTSUPP. */
    bool emulate_pm1_evt_and_timer;
    const struct hw_clock *clock;
    /* PM timer width: 24 bits (FADT TMR_VAL_EXT = 0, QEMU's PIIX4) unless
     * set; 32 bits is what Xen's pmtimer.c and hvmloader's FADT have. */
    bool pm_timer_32bit;
};

struct piix4_pm_ops {
    /* SLP_EN with SLP_TYP 0: S5 soft-off (the machine asks Xen for
     * SHUTDOWN_poweroff). */
    void (*request_poweroff)(void *opaque);
    /* SLP_EN with SLP_TYP 1: S3 (the machine resets the devices and sets
     * HVM_PARAM_ACPI_S_STATE to 3). */
    void (*request_suspend)(void *opaque);
    /* The guest cleared GPE0 status bit `bit` (0-15) by writing 1 to it.
     * Called once per bit that was set, after the SCI has been updated; it
     * may call piix4_pm_gpe_raise(). Not called for bits a reset clears. */
    void (*gpe_cleared)(void *opaque, unsigned bit);
    void *opaque;
};

struct piix4_pm {
    struct pci_function fn;
    struct bus *bus;
    const struct irq_sink *irq;
    struct piix4_pm_config cfg;
    struct piix4_pm_ops ops;

    uint16_t pm1_cnt;
    uint8_t apm_cnt, apm_sts;
    uint16_t gpe_sts, gpe_en;
    bool sci_level; /* what the irq sink was last told */
    uint8_t cpu_map[PIIX4_CPU_MAP_LEN];

    struct bus_region pm1_cnt_region; /* mapped at pm1_cnt_base or not */
    uint16_t pm1_cnt_base;
    /* Software machine only (cfg.emulate_pm1_evt_and_timer). */
    uint16_t pm1_sts, pm1_en;
    uint64_t tmr_last_ticks; /* TMR_STS is accounted up to here */
    struct bus_region pm1_evt_region, pm_tmr_region;
    struct bus_region apm_region, gpe_region, cpu_map_region, debug_region;
};

/* Registers the function at 00:01.3 and maps its fixed ports. cfg and ops
 * are copied; ops may be NULL. Returns 0, -EINVAL (bad cfg), -EOPNOTSUPP
 * (emulate_pm1_evt_and_timer without a clock) or the PCI/bus error. */
int piix4_pm_init(struct piix4_pm *pm, struct pci_bus *pci, struct bus *bus,
                  const struct irq_sink *irq,
                  const struct piix4_pm_config *cfg,
                  const struct piix4_pm_ops *ops);
/* Unmaps everything, unregisters the function and lowers the SCI. */
void piix4_pm_fini(struct piix4_pm *pm);

/* Call once every device of the machine is mapped: records in DEVRESA and
 * DEVRESC which of LPT1 (0x378), COM1 (0x3F8) and COM2 (0x2F8) decode, as
 * QEMU does at machine-init-done (piix4_pm_machine_ready). */
void piix4_pm_machine_ready(struct piix4_pm *pm);

/* Software machine: the PM timer's next MSB toggle while it could raise
 * the SCI (TMR_EN set, SCI low), else HW_CLOCK_NEVER; always NEVER
 * without emulate_pm1_evt_and_timer. May be in the past if update is
 * overdue. */
uint64_t piix4_pm_next_deadline_ns(struct piix4_pm *pm);
/* Sets TMR_STS for any MSB toggle up to now and updates the SCI. */
void piix4_pm_update(struct piix4_pm *pm);
/* The power button (QMP system_powerdown): sets PWRBTN_STS, so the SCI if
 * PWRBTN_EN. -EOPNOTSUPP without emulate_pm1_evt_and_timer (under Xen the
 * button is the hypervisor's). */
int piix4_pm_power_button(struct piix4_pm *pm);
/* The PM timer's value now (24 or 32 bits). 0 when not emulated. */
uint32_t piix4_pm_timer_value(const struct piix4_pm *pm);

/* Sets GPE0 status bit `bit` (0-15; others are ignored) and updates SCI. */
void piix4_pm_gpe_raise(struct piix4_pm *pm, unsigned bit);

/* Marks vCPU `cpu` online or offline in the CPU map; a change sets GPE0
 * status bit 2. Returns 0, or -EINVAL for cpu >= PIIX4_MAX_CPUS. */
int piix4_pm_set_cpu_online(struct piix4_pm *pm, unsigned cpu, bool online);

struct ss_writer;
struct ss_reader;
/* Section "piix4-pm", instance = devfn: configuration space, PM1a_CNT and
 * where it decodes, the APM bytes, GPE0 status and enable, the CPU map.
 * The flavour-dependent config (fixed_pmba, sci_en_at_reset) must match.
 * Load drives the SCI to what GPE0 now says; it never acts on a sleep
 * request. */
int piix4_pm_save(const struct piix4_pm *pm, struct ss_writer *w);
int piix4_pm_load(struct piix4_pm *pm, struct ss_reader *r);

#endif
