/* PIIX4 PM function: see piix4_pm.h for which registers live here.
 *
 * Facts below come from QEMU 7.x hw/acpi/piix4.c, hw/acpi/core.c,
 * hw/isa/apm.c, hw/acpi/cpu_hotplug.c and hw/pci/pci.c, from qemu-trad's
 * hw/piix4acpi.c and from Xen's tools/firmware/hvmloader/pci.c and
 * tools/libacpi (summarised in xen-dm-interfaces.md §5 and §6.3). */
#include "piix4_pm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../lib/log.h"
#include "savestate.h"

TRACE_POINT(trace_piix4_pm1_cnt, "piix4_pm1_cnt");
TRACE_POINT(trace_piix4_apm, "piix4_apm");
TRACE_POINT(trace_piix4_gpe, "piix4_gpe");
TRACE_POINT(trace_piix4_sci, "piix4_sci");


/* piix4_pm_realize sets status bytes 0x80 0x02: fast back-to-back capable,
 * DEVSEL timing medium. */
#define PIIX4_PM_STATUS 0x0280
/* DEVACTB bit 25, APMC_EN: QEMU sets it when SMM is off (always under Xen)
 * so that firmware believes SMM is already set up. */
#define PIIX4_DEVACTB_APMC_EN_BYTE3 0x02
/* DEVRESA byte 3 and DEVRESB byte 3 as piix4_pm_machine_ready leaves them;
 * DEVRESA bit 31 (0x80 in byte 3) says LPT1 decodes. */
#define PIIX4_DEVRESA_BYTE3 0x10
#define PIIX4_DEVRESA_LPT1 0x80
#define PIIX4_DEVRESB_BYTE3 0x60
/* DEVRESC byte 3: COM1 (0x3F8) and COM2 (0x2F8) decode bits. */
#define PIIX4_DEVRESC_COM1 0x08
#define PIIX4_DEVRESC_COM2 0x90
/* QEMU's pc_piix passes smb_io_base 0xB100; realize stores it with the I/O
 * indicator and enables the host (SMBHSTCFG 0x09) until hvmloader writes 0
 * there. The SMBus controller itself is not emulated (see fini comment). */
#define PIIX4_SMBBA_POWER_ON 0xb101
#define PIIX4_SMBHSTCFG_POWER_ON 0x09

/* PM1 status bits that reach the SCI through their enables (QEMU
 * acpi_update_sci, Xen pmtimer.c). */
#define PM1_SCI_EVENTS                                                         \
    (PIIX4_PM1_TMR_STS | PIIX4_PM1_GBL_STS | PIIX4_PM1_PWRBTN_STS |            \
     PIIX4_PM1_SLPBTN_STS | PIIX4_PM1_RTC_STS)

static void update_sci(struct piix4_pm *pm)
{
    bool level = (pm->gpe_sts & pm->gpe_en) != 0 ||
                 (pm->pm1_sts & pm->pm1_en & PM1_SCI_EVENTS) != 0;

    /* Only edges reach the sink: under Xen every call is a dm_op, and ISA
     * IRQ 9 is one wire bit Xen's PM timer drives too (§5.6). QEMU does not
     * gate the SCI on SCI_EN (acpi_update_sci) and neither do we. */
    if (level == pm->sci_level)
        return;
    pm->sci_level = level;
    trace(trace_piix4_sci, "SCI %s (GPE0 sts 0x%04x en 0x%04x, PM1 sts 0x%04x "
          "en 0x%04x)", level ? "raised" : "lowered", pm->gpe_sts, pm->gpe_en,
          pm->pm1_sts, pm->pm1_en);
    irq_set_isa(pm->irq, PIIX4_SCI_IRQ, level);
}

/* --- PM1a_CNT ------------------------------------------------------------ */

static void pm1_cnt_sleep(struct piix4_pm *pm, unsigned slp_typ)
{
    switch (slp_typ) {
    case PIIX4_SLP_TYP_S5:
        log_info("piix4-pm: guest entered S5 (soft off)");
        if (pm->ops.request_poweroff)
            pm->ops.request_poweroff(pm->ops.opaque);
        break;
    case PIIX4_SLP_TYP_S3:
        log_info("piix4-pm: guest entered S3 (suspend to RAM)");
        if (pm->ops.request_suspend)
            pm->ops.request_suspend(pm->ops.opaque);
        break;
    default:
        /* hvmloader's tables only hand out 0 and 1; QEMU's S4 value 2 is not
         * in them, so anything else is a confused or hostile guest. */
        log_ratelimited(LOG_WARN, "piix4-pm: sleep type %u is in no table "
                        "hvmloader builds: ignored", slp_typ);
        break;
    }
}

static void pm1_cnt_write_value(struct piix4_pm *pm, uint16_t value)
{
    /* SLP_EN is a command, never state: it always reads 0. */
    pm->pm1_cnt = value & (uint16_t)~PIIX4_PM1_CNT_SLP_EN;
    trace(trace_piix4_pm1_cnt, "PM1a_CNT <- 0x%04x", value);
    if (value & PIIX4_PM1_CNT_SLP_EN)
        pm1_cnt_sleep(pm, (value & PIIX4_PM1_CNT_SLP_TYP_MASK) >>
                              PIIX4_PM1_CNT_SLP_TYP_SHIFT);
}

static uint64_t pm1_cnt_read(void *opaque, uint64_t off, unsigned size)
{
    struct piix4_pm *pm = opaque;

    return (uint64_t)(pm->pm1_cnt >> (8 * off));
}

static void pm1_cnt_write(void *opaque, uint64_t off, uint64_t value,
                          unsigned size)
{
    struct piix4_pm *pm = opaque;
    uint16_t merged;

    /* A byte write keeps the other byte, as qemu-trad does. (QEMU 7 widens a
     * byte write at offset 0 to a word and so zeroes SLP_TYP; no guest
     * relies on that and it would lose state a real PIIX4 keeps.) */
    if (size >= 2)
        merged = (uint16_t)value;
    else if (off == 0)
        merged = (uint16_t)((pm->pm1_cnt & 0xff00) | (value & 0xff));
    else
        merged = (uint16_t)(((value & 0xff) << 8) | (pm->pm1_cnt & 0x00ff));
    pm1_cnt_write_value(pm, merged);
}

static const struct bus_region_ops pm1_cnt_ops = {
    .read = pm1_cnt_read,
    .write = pm1_cnt_write,
    .max_access = 2,
};

static void pm1_cnt_remap_cnt(struct piix4_pm *pm);

/* --- PM1a_EVT and the PM timer (software machine only) ------------------ */

static uint64_t pm_timer_ticks(const struct piix4_pm *pm)
{
    uint64_t ns = hw_clock_now(pm->cfg.clock);

    return (uint64_t)((unsigned __int128)ns * PIIX4_PM_TIMER_HZ / 1000000000u);
}

/* TMR_STS is set each time the timer's most significant bit toggles. */
static unsigned pm_timer_msb_shift(const struct piix4_pm *pm)
{
    return pm->cfg.pm_timer_32bit ? 31 : 23;
}

uint32_t piix4_pm_timer_value(const struct piix4_pm *pm)
{
    if (!pm->cfg.emulate_pm1_evt_and_timer)
        return 0;
    return (uint32_t)(pm_timer_ticks(pm) &
                      ((2ull << pm_timer_msb_shift(pm)) - 1));
}

static void pm_timer_catch_up(struct piix4_pm *pm)
{
    uint64_t now = pm_timer_ticks(pm);
    unsigned shift = pm_timer_msb_shift(pm);

    if (now <= pm->tmr_last_ticks)
        return;
    if ((now >> shift) != (pm->tmr_last_ticks >> shift))
        pm->pm1_sts |= PIIX4_PM1_TMR_STS;
    pm->tmr_last_ticks = now;
}

void piix4_pm_update(struct piix4_pm *pm)
{
    if (!pm->cfg.emulate_pm1_evt_and_timer)
        return;
    pm_timer_catch_up(pm);
    update_sci(pm);
}

uint64_t piix4_pm_next_deadline_ns(struct piix4_pm *pm)
{
    unsigned shift = pm_timer_msb_shift(pm);
    unsigned __int128 tick, ns;

    if (!pm->cfg.emulate_pm1_evt_and_timer || pm->sci_level ||
        !(pm->pm1_en & PIIX4_PM1_TMR_EN))
        return HW_CLOCK_NEVER;
    tick = (unsigned __int128)((pm->tmr_last_ticks >> shift) + 1) << shift;
    ns = (tick * 1000000000u + PIIX4_PM_TIMER_HZ - 1) / PIIX4_PM_TIMER_HZ;
    return ns >= HW_CLOCK_NEVER ? HW_CLOCK_NEVER - 1 : (uint64_t)ns;
}

int piix4_pm_power_button(struct piix4_pm *pm)
{
    if (!pm->cfg.emulate_pm1_evt_and_timer) {
        log_warn("piix4-pm: the power button is the hypervisor's here");
        return -EOPNOTSUPP;
    }
    log_info("piix4-pm: power button pressed");
    pm->pm1_sts |= PIIX4_PM1_PWRBTN_STS;
    update_sci(pm);
    return 0;
}

static uint64_t pm1_evt_read(void *opaque, uint64_t off, unsigned size)
{
    struct piix4_pm *pm = opaque;
    uint16_t reg;

    pm_timer_catch_up(pm);
    update_sci(pm);
    reg = off < 2 ? pm->pm1_sts : pm->pm1_en;
    return (uint8_t)(reg >> (8 * (off & 1)));
}

static void pm1_evt_write(void *opaque, uint64_t off, uint64_t value,
                          unsigned size)
{
    struct piix4_pm *pm = opaque;
    unsigned shift = 8 * (unsigned)(off & 1);
    uint16_t bits = (uint16_t)((value & 0xff) << shift);

    /* A status bit set since the last look must be there to be cleared. */
    pm_timer_catch_up(pm);
    if (off < 2) {
        pm->pm1_sts &= (uint16_t)~(bits & PIIX4_PM1_STS_MASK);
    } else {
        pm->pm1_en = (uint16_t)((pm->pm1_en & ~(0xffu << shift)) |
                                (bits & PIIX4_PM1_EN_MASK));
    }
    update_sci(pm);
}

static const struct bus_region_ops pm1_evt_ops = {
    .read = pm1_evt_read,
    .write = pm1_evt_write,
    .max_access = 1,
};

static uint64_t pm_tmr_read(void *opaque, uint64_t off, unsigned size)
{
    struct piix4_pm *pm = opaque;

    return piix4_pm_timer_value(pm) >> (8 * off);
}

static const struct bus_region_ops pm_tmr_ops = {
    .read = pm_tmr_read,
    .write = NULL, /* read-only */
    .max_access = 4,
};

/* PM1a_EVT and the timer decode wherever PM1a_CNT does, at the same block
 * base, when the software machine wants them. */
static void pm_evt_tmr_follow(struct piix4_pm *pm)
{
    uint16_t base = pm->pm1_cnt_base;

    if (!pm->cfg.emulate_pm1_evt_and_timer)
        return;
    if (pm->pm1_evt_region.mapped && pm->pm1_cnt_region.mapped &&
        pm->pm1_evt_region.base == (uint64_t)base + PIIX4_PM1_EVT_OFFSET &&
        pm->pm_tmr_region.mapped &&
        pm->pm_tmr_region.base == (uint64_t)base + PIIX4_PM_TMR_OFFSET)
        return;
    bus_unmap(pm->bus, &pm->pm1_evt_region);
    bus_unmap(pm->bus, &pm->pm_tmr_region);
    if (!pm->pm1_cnt_region.mapped)
        return;
    if (bus_map(pm->bus, BUS_PIO, &pm->pm1_evt_region,
                base + PIIX4_PM1_EVT_OFFSET) < 0)
        log_ratelimited(LOG_WARN, "piix4-pm: PM1a_EVT at 0x%x not decoded: "
                        "%s", base + PIIX4_PM1_EVT_OFFSET, pm->bus->error);
    if (bus_map(pm->bus, BUS_PIO, &pm->pm_tmr_region,
                base + PIIX4_PM_TMR_OFFSET) < 0)
        log_ratelimited(LOG_WARN, "piix4-pm: PM_TMR at 0x%x not decoded: %s",
                        base + PIIX4_PM_TMR_OFFSET, pm->bus->error);
}

/* Follows PMBA and PMIOSE the way QEMU's pm_io_space_update does: base bits
 * 15:6 of config 0x40, decoding while bit 0 of 0x80 is set. */
static void pm1_cnt_remap(struct piix4_pm *pm)
{
    pm1_cnt_remap_cnt(pm);
    pm_evt_tmr_follow(pm);
}

static void pm1_cnt_remap_cnt(struct piix4_pm *pm)
{
    uint16_t base = pci_get_word(&pm->fn.config[PIIX4_PMBA]) & PIIX4_PMBA_MASK;
    bool enabled = pm->fn.config[PIIX4_PMREGMISC] & PIIX4_PMREGMISC_PMIOSE;

    if (pm->cfg.fixed_pmba)
        return;
    if (pm->pm1_cnt_region.mapped && enabled && base == pm->pm1_cnt_base)
        return;
    bus_unmap(pm->bus, &pm->pm1_cnt_region);
    if (!enabled)
        return;
    if (bus_map(pm->bus, BUS_PIO, &pm->pm1_cnt_region,
                base + PIIX4_PM1_CNT_OFFSET) < 0) {
        /* The guest put its PM block over another device: it stays off
         * until moved somewhere free. */
        log_ratelimited(LOG_WARN, "piix4-pm: PM1a_CNT at 0x%x not decoded: %s",
                        base + PIIX4_PM1_CNT_OFFSET, pm->bus->error);
        return;
    }
    pm->pm1_cnt_base = base;
}

/* --- APM control/status (SMI_CMD) --------------------------------------- */

static uint64_t apm_read(void *opaque, uint64_t off, unsigned size)
{
    struct piix4_pm *pm = opaque;

    return off == 0 ? pm->apm_cnt : pm->apm_sts;
}

static void apm_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    struct piix4_pm *pm = opaque;
    uint8_t v = (uint8_t)value;

    if (off != 0) {
        /* 0xB3 is QEMU's APM status byte: plain storage (hw/isa/apm.c). */
        pm->apm_sts = v;
        return;
    }
    /* Like QEMU, the command byte reads back what was written last. Other
     * commands would raise an SMI on hardware; there is no SMM under Xen, so
     * they are only stored. */
    pm->apm_cnt = v;
    trace(trace_piix4_apm, "SMI_CMD <- 0x%02x", v);
    if (v == PIIX4_ACPI_ENABLE)
        pm->pm1_cnt |= PIIX4_PM1_CNT_SCI_EN;
    else if (v == PIIX4_ACPI_DISABLE)
        pm->pm1_cnt &= (uint16_t)~PIIX4_PM1_CNT_SCI_EN;
}

static const struct bus_region_ops apm_ops = {
    .read = apm_read,
    .write = apm_write,
    .max_access = 1,
};

/* --- GPE0 ---------------------------------------------------------------- */

static uint64_t gpe_read(void *opaque, uint64_t off, unsigned size)
{
    struct piix4_pm *pm = opaque;
    uint16_t reg = off < 2 ? pm->gpe_sts : pm->gpe_en;

    return (uint8_t)(reg >> (8 * (off & 1)));
}

static void gpe_write(void *opaque, uint64_t off, uint64_t value,
                      unsigned size)
{
    struct piix4_pm *pm = opaque;
    unsigned shift = 8 * (unsigned)(off & 1);
    uint16_t bits = (uint16_t)((value & 0xff) << shift);
    uint16_t cleared;

    if (off >= 2) {
        pm->gpe_en = (uint16_t)((pm->gpe_en & ~(0xffu << shift)) | bits);
        trace(trace_piix4_gpe, "GPE0_EN <- 0x%04x", pm->gpe_en);
        update_sci(pm);
        return;
    }
    cleared = pm->gpe_sts & bits;
    pm->gpe_sts &= (uint16_t)~cleared;
    trace(trace_piix4_gpe, "GPE0_STS cleared 0x%04x, now 0x%04x", cleared,
          pm->gpe_sts);
    update_sci(pm);
    /* Told after the SCI is settled, bit by bit from the snapshot: the
     * listener may raise a bit again (the next queued hot-plug event). */
    for (unsigned bit = 0; bit < PIIX4_GPE0_BITS; bit++)
        if ((cleared & (1u << bit)) && pm->ops.gpe_cleared)
            pm->ops.gpe_cleared(pm->ops.opaque, bit);
}

static const struct bus_region_ops gpe_ops = {
    .read = gpe_read,
    .write = gpe_write,
    .max_access = 1, /* QEMU: impl 1 byte, valid 1-4 */
};

void piix4_pm_gpe_raise(struct piix4_pm *pm, unsigned bit)
{
    if (bit >= PIIX4_GPE0_BITS) {
        log_warn("piix4-pm: GPE0 bit %u does not exist", bit);
        return;
    }
    pm->gpe_sts |= (uint16_t)(1u << bit);
    trace(trace_piix4_gpe, "GPE0_STS bit %u raised, now 0x%04x", bit,
          pm->gpe_sts);
    update_sci(pm);
}

/* --- CPU hot-plug map and debug port ------------------------------------ */

static uint64_t cpu_map_read(void *opaque, uint64_t off, unsigned size)
{
    struct piix4_pm *pm = opaque;

    return pm->cpu_map[off];
}

static const struct bus_region_ops cpu_map_ops = {
    .read = cpu_map_read,
    /* Read-only for the guest: the DSDT only reads PRST, and under Xen
     * vCPUs come and go at the toolstack's word, not the guest's. */
    .write = NULL,
    .max_access = 1,
};

int piix4_pm_set_cpu_online(struct piix4_pm *pm, unsigned cpu, bool online)
{
    uint8_t mask;
    bool was;

    if (cpu >= PIIX4_MAX_CPUS)
        return -EINVAL;
    mask = (uint8_t)(1u << (cpu % 8));
    was = pm->cpu_map[cpu / 8] & mask;
    if (was == online)
        return 0;
    if (online)
        pm->cpu_map[cpu / 8] |= mask;
    else
        pm->cpu_map[cpu / 8] &= (uint8_t)~mask;
    log_info("piix4-pm: vCPU %u %s", cpu, online ? "online" : "offline");
    piix4_pm_gpe_raise(pm, PIIX4_GPE_CPU_HOTPLUG);
    return 0;
}

static void debug_write(void *opaque, uint64_t off, uint64_t value,
                        unsigned size)
{
    log_ratelimited(LOG_INFO, "piix4-pm: ACPI debug port 0x%x <- 0x%0*llx",
                    PIIX4_DEBUG_PORT + (unsigned)off, (int)size * 2,
                    (unsigned long long)value);
}

static const struct bus_region_ops debug_ops = {
    /* Reads return all-ones: QEMU 7 decodes nothing at 0xB044, so under Xen
     * no ioreq server claims the port and Xen answers ~0; qemu-trad only
     * registers a write handler there. */
    .read = NULL,
    .write = debug_write,
    .max_access = 4,
};

/* --- PCI function hooks -------------------------------------------------- */

static bool range_touches(unsigned reg, unsigned size, unsigned start,
                          unsigned len)
{
    return reg < start + len && reg + size > start;
}

static void piix4_pm_config_write(struct pci_function *f, unsigned reg,
                                  uint32_t value, unsigned size)
{
    struct piix4_pm *pm = f->opaque;

    if (range_touches(reg, size, PIIX4_PMBA, 4) ||
        range_touches(reg, size, PIIX4_PMREGMISC, 1))
        pm1_cnt_remap(pm);
}

static void piix4_pm_reset(struct pci_function *f)
{
    struct piix4_pm *pm = f->opaque;

    /* The PCI core has put the power-on config back: PMBA 0x0001, PMIOSE
     * clear, so the PM block stops decoding (QEMU piix4_pm_reset). */
    pm1_cnt_remap(pm);
    pm->pm1_cnt = pm->cfg.sci_en_at_reset ? PIIX4_PM1_CNT_SCI_EN : 0;
    pm->gpe_sts = 0;
    pm->gpe_en = 0;
    /* PM1 status and enables clear (QEMU acpi_pm1_evt_reset); the timer
     * keeps counting. */
    pm->pm1_sts = 0;
    pm->pm1_en = 0;
    if (pm->cfg.emulate_pm1_evt_and_timer)
        pm->tmr_last_ticks = pm_timer_ticks(pm);
    update_sci(pm);
    /* The APM bytes and the CPU map survive, as in QEMU: the first has no
     * reset in apm.c, the second describes vCPUs, not device state. */
}

static const struct pci_function_ops piix4_pm_fn_ops = {
    .config_write = piix4_pm_config_write,
    .reset = piix4_pm_reset,
};

static void setup_config(struct piix4_pm *pm)
{
    struct pci_function *f = &pm->fn;

    pci_function_init(f, "piix4-pm", PIIX4_PM_VENDOR_ID, PIIX4_PM_DEVICE_ID,
                      PIIX4_PM_CLASS, PIIX4_PM_REVISION, &piix4_pm_fn_ops, pm);
    /* Part of the chipset: never ejectable (QEMU dc->hotpluggable = false). */
    f->hotpluggable = false;
    pci_set_subsystem(f, PCI_SUBSYSTEM_VENDOR_QEMU,
                      PCI_SUBSYSTEM_ID_QEMU);
    pci_set_word(&f->config[PCI_STATUS], PIIX4_PM_STATUS);
    pci_set_interrupt_pin(f, 1);

    /* QEMU leaves all of 0x40-0xFF writable (pci_init_wmask) and reads the
     * bits it cares about from there; only PMBA is narrowed to what a PIIX4
     * implements, so bit 0 always reads 1 and bits 5:1 read 0. */
    memset(&f->wmask[PIIX4_PMBA], 0xff, PCI_CONFIG_SIZE - PIIX4_PMBA);
    pci_set_long(&f->wmask[PIIX4_PMBA], PIIX4_PMBA_MASK);
    pci_set_long(&f->config[PIIX4_PMBA], PIIX4_PMBA_IO);

    f->config[PIIX4_DEVACTB + 3] = PIIX4_DEVACTB_APMC_EN_BYTE3;
    f->config[PIIX4_DEVRESA + 3] = PIIX4_DEVRESA_BYTE3;
    f->config[PIIX4_DEVRESB + 3] = PIIX4_DEVRESB_BYTE3;
    pci_set_word(&f->config[PIIX4_SMBBA], PIIX4_SMBBA_POWER_ON);
    f->config[PIIX4_SMBHSTCFG] = PIIX4_SMBHSTCFG_POWER_ON;
}

static bool config_valid(const struct piix4_pm_config *cfg)
{
    if (cfg->ncpus_online > PIIX4_MAX_CPUS) {
        log_err("piix4-pm: %u vCPUs online, at most %u fit the CPU map",
                cfg->ncpus_online, PIIX4_MAX_CPUS);
        return false;
    }
    return true;
}

static int map_port(struct piix4_pm *pm, struct bus_region *r, uint16_t port)
{
    int rc = bus_map(pm->bus, BUS_PIO, r, port);

    if (rc < 0)
        log_err("piix4-pm: cannot map %s: %s", r->name, pm->bus->error);
    return rc;
}

int piix4_pm_init(struct piix4_pm *pm, struct pci_bus *pci, struct bus *bus,
                  const struct irq_sink *irq,
                  const struct piix4_pm_config *cfg,
                  const struct piix4_pm_ops *ops)
{
    static const struct piix4_pm_config defaults;
    int rc;

    memset(pm, 0, sizeof(*pm));
    pm->cfg = cfg ? *cfg : defaults;
    if (ops)
        pm->ops = *ops;
    pm->bus = bus;
    pm->irq = irq;
    if (!config_valid(&pm->cfg))
        return -EINVAL;
    if (pm->cfg.emulate_pm1_evt_and_timer && !pm->cfg.clock) {
        log_err("piix4-pm: PM1a_EVT and the PM timer need a clock");
        return -EOPNOTSUPP;
    }
    if (pm->cfg.emulate_pm1_evt_and_timer)
        pm->tmr_last_ticks = pm_timer_ticks(pm);
    for (unsigned cpu = 0; cpu < pm->cfg.ncpus_online; cpu++)
        pm->cpu_map[cpu / 8] |= (uint8_t)(1u << (cpu % 8));
    pm->pm1_cnt = pm->cfg.sci_en_at_reset ? PIIX4_PM1_CNT_SCI_EN : 0;

    setup_config(pm);
    bus_region_init(&pm->pm1_cnt_region, "piix4-pm1a-cnt", 2, &pm1_cnt_ops,
                    pm);
    bus_region_init(&pm->apm_region, "piix4-apm", 2, &apm_ops, pm);
    bus_region_init(&pm->gpe_region, "piix4-gpe0", PIIX4_GPE0_LEN, &gpe_ops,
                    pm);
    bus_region_init(&pm->cpu_map_region, "piix4-cpu-map", PIIX4_CPU_MAP_LEN,
                    &cpu_map_ops, pm);
    bus_region_init(&pm->debug_region, "piix4-acpi-debug", PIIX4_DEBUG_LEN,
                    &debug_ops, pm);
    bus_region_init(&pm->pm1_evt_region, "piix4-pm1a-evt", 4, &pm1_evt_ops,
                    pm);
    bus_region_init(&pm->pm_tmr_region, "piix4-pm-tmr", 4, &pm_tmr_ops, pm);

    rc = pci_register_function(pci, &pm->fn, PIIX4_PM_DEVFN);
    if (rc < 0)
        goto out;
    rc = map_port(pm, &pm->apm_region, PIIX4_APM_CNT_PORT);
    if (rc < 0)
        goto out;
    rc = map_port(pm, &pm->gpe_region, PIIX4_GPE0_BASE);
    if (rc < 0)
        goto out;
    rc = map_port(pm, &pm->cpu_map_region, PIIX4_CPU_MAP_BASE);
    if (rc < 0)
        goto out;
    rc = map_port(pm, &pm->debug_region, PIIX4_DEBUG_PORT);
    if (rc < 0)
        goto out;
    if (pm->cfg.fixed_pmba) {
        /* qemu-trad maps its PM block once, at 0xB000, whatever PMBA says. */
        rc = map_port(pm, &pm->pm1_cnt_region,
                      PIIX4_PM_FIXED_BASE + PIIX4_PM1_CNT_OFFSET);
        if (rc < 0)
            goto out;
        pm->pm1_cnt_base = PIIX4_PM_FIXED_BASE;
        pm_evt_tmr_follow(pm);
    }
out:
    if (rc < 0)
        piix4_pm_fini(pm);
    return rc;
}

void piix4_pm_fini(struct piix4_pm *pm)
{
    /* The SMBus host QEMU has at SMBBA is not emulated: hvmloader disables it
     * (SMBHSTCFG = 0) before anything could use it. */
    bus_unmap(pm->bus, &pm->pm1_cnt_region);
    bus_unmap(pm->bus, &pm->pm1_evt_region);
    bus_unmap(pm->bus, &pm->pm_tmr_region);
    bus_unmap(pm->bus, &pm->apm_region);
    bus_unmap(pm->bus, &pm->gpe_region);
    bus_unmap(pm->bus, &pm->cpu_map_region);
    bus_unmap(pm->bus, &pm->debug_region);
    pci_unregister_function(&pm->fn);
    if (pm->sci_level) {
        pm->sci_level = false;
        irq_set_isa(pm->irq, PIIX4_SCI_IRQ, false);
    }
}

void piix4_pm_machine_ready(struct piix4_pm *pm)
{
    uint8_t *config = pm->fn.config, *power_on = pm->fn.power_on;
    uint8_t devresa = PIIX4_DEVRESA_BYTE3, devresc = 0;

    if (bus_find(pm->bus, BUS_PIO, 0x378))
        devresa |= PIIX4_DEVRESA_LPT1;
    if (bus_find(pm->bus, BUS_PIO, 0x3f8))
        devresc |= PIIX4_DEVRESC_COM1;
    if (bus_find(pm->bus, BUS_PIO, 0x2f8))
        devresc |= PIIX4_DEVRESC_COM2;
    /* QEMU writes these once and its reset leaves them alone, so they are
     * part of what a reset restores here. */
    config[PIIX4_DEVRESA + 3] = power_on[PIIX4_DEVRESA + 3] = devresa;
    config[PIIX4_DEVRESC + 3] = power_on[PIIX4_DEVRESC + 3] = devresc;
}

/* --- save and restore ----------------------------------------------------- */

#define PIIX4_PM_SS_NAME "piix4-pm"
#define PIIX4_PM_SS_VERSION 1
/* Bytes of the CPU map that can hold a vCPU; the rest always read 0. */
#define PIIX4_CPU_MAP_USED (PIIX4_MAX_CPUS / 8)

struct piix4_pm_saved {
    bool fixed_pmba, sci_en_at_reset;
    uint16_t pm1_cnt;
    uint8_t apm_cnt, apm_sts;
    uint16_t gpe_sts, gpe_en;
    uint8_t cpu_map[PIIX4_CPU_MAP_LEN];
    bool pm1_cnt_mapped;
};

int piix4_pm_save(const struct piix4_pm *pm, struct ss_writer *w)
{
    ss_begin_section(w, PIIX4_PM_SS_NAME, pm->fn.devfn, PIIX4_PM_SS_VERSION);
    pci_function_save(&pm->fn, w);
    ss_put_bool(w, pm->cfg.fixed_pmba);
    ss_put_bool(w, pm->cfg.sci_en_at_reset);
    ss_put_u16(w, pm->pm1_cnt);
    ss_put_u8(w, pm->apm_cnt);
    ss_put_u8(w, pm->apm_sts);
    ss_put_u16(w, pm->gpe_sts);
    ss_put_u16(w, pm->gpe_en);
    ss_put_bytes(w, pm->cpu_map, sizeof(pm->cpu_map));
    ss_put_bool(w, pm->pm1_cnt_region.mapped);
    return ss_end_section(w);
}

static void check_saved(const struct piix4_pm *pm, struct ss_reader *r,
                        const struct piix4_pm_saved *sv,
                        const struct pci_function_state *st)
{
    if (sv->fixed_pmba != pm->cfg.fixed_pmba ||
        sv->sci_en_at_reset != pm->cfg.sci_en_at_reset) {
        ss_fail(r, "fixed_pmba", "state of a %s PM device, this one is %s",
                sv->fixed_pmba ? "qemu-trad" : "qemu-xen",
                pm->cfg.fixed_pmba ? "qemu-trad" : "qemu-xen");
        return;
    }
    if (sv->pm1_cnt & PIIX4_PM1_CNT_SLP_EN) {
        ss_fail(r, "pm1_cnt", "0x%04x has SLP_EN, which is never stored",
                sv->pm1_cnt);
        return;
    }
    for (unsigned i = PIIX4_CPU_MAP_USED; i < PIIX4_CPU_MAP_LEN; i++) {
        if (sv->cpu_map[i]) {
            ss_fail(r, "cpu_map", "byte %u is 0x%02x: no vCPU above %u exists",
                    i, sv->cpu_map[i], PIIX4_MAX_CPUS - 1);
            return;
        }
    }
    if (pm->cfg.fixed_pmba && !sv->pm1_cnt_mapped)
        ss_fail(r, "pm1_cnt_mapped", "qemu-trad's PM block always decodes");
    else if (!pm->cfg.fixed_pmba && sv->pm1_cnt_mapped &&
             !(st->config[PIIX4_PMREGMISC] & PIIX4_PMREGMISC_PMIOSE))
        ss_fail(r, "pm1_cnt_mapped", "PM1a_CNT decoding with PMIOSE clear");
}

/* Puts PM1a_CNT where the saved state had it: at PMBA + 4 from config if
 * mapped, nowhere otherwise (a qemu-trad block never moves). */
static int pm1_cnt_place_cnt(struct piix4_pm *pm, const uint8_t *config,
                             bool mapped)
{
    uint16_t base = pci_get_word(&config[PIIX4_PMBA]) & PIIX4_PMBA_MASK;
    int rc;

    if (pm->cfg.fixed_pmba)
        return 0;
    if (pm->pm1_cnt_region.mapped && mapped && base == pm->pm1_cnt_base)
        return 0;
    bus_unmap(pm->bus, &pm->pm1_cnt_region);
    if (!mapped)
        return 0;
    rc = bus_map(pm->bus, BUS_PIO, &pm->pm1_cnt_region,
                 base + PIIX4_PM1_CNT_OFFSET);
    if (rc == 0)
        pm->pm1_cnt_base = base;
    return rc;
}

static int pm1_cnt_place(struct piix4_pm *pm, const uint8_t *config,
                         bool mapped)
{
    int rc = pm1_cnt_place_cnt(pm, config, mapped);

    pm_evt_tmr_follow(pm);
    return rc;
}

int piix4_pm_load(struct piix4_pm *pm, struct ss_reader *r)
{
    struct pci_function_state st, old;
    struct piix4_pm_saved sv = {0};
    bool was_mapped = pm->pm1_cnt_region.mapped;
    uint32_t version;
    int rc;

    rc = ss_open_section(r, PIIX4_PM_SS_NAME, pm->fn.devfn,
                         PIIX4_PM_SS_VERSION, &version);
    if (rc < 0)
        return rc;
    pci_function_load_check(&pm->fn, r, &st);
    ss_get_bool(r, "fixed_pmba", &sv.fixed_pmba);
    ss_get_bool(r, "sci_en_at_reset", &sv.sci_en_at_reset);
    ss_get_u16(r, "pm1_cnt", &sv.pm1_cnt);
    ss_get_u8(r, "apm_cnt", &sv.apm_cnt);
    ss_get_u8(r, "apm_sts", &sv.apm_sts);
    /* Any GPE0 bit can be raised and any enabled. */
    ss_get_u16(r, "gpe_sts", &sv.gpe_sts);
    ss_get_u16(r, "gpe_en", &sv.gpe_en);
    ss_get_bytes(r, "cpu_map", sv.cpu_map, sizeof(sv.cpu_map));
    ss_get_bool(r, "pm1_cnt_mapped", &sv.pm1_cnt_mapped);
    if (ss_ok(r))
        check_saved(pm, r, &sv, &st);
    rc = ss_close_section(r);
    if (rc < 0)
        return rc;

    pci_function_capture(&pm->fn, &old);
    rc = pm1_cnt_place(pm, st.config, sv.pm1_cnt_mapped);
    if (rc < 0) {
        uint16_t base = pci_get_word(&st.config[PIIX4_PMBA]) & PIIX4_PMBA_MASK;
        char why[sizeof(pm->bus->error)];

        snprintf(why, sizeof(why), "%s", pm->bus->error);
        pm1_cnt_place(pm, old.config, was_mapped);
        return ss_fail(r, "pm1_cnt_mapped", "PM1a_CNT at 0x%x cannot decode: "
                       "%s", base + PIIX4_PM1_CNT_OFFSET, why);
    }
    rc = pci_function_restore(&pm->fn, &st, r);
    if (rc < 0) {
        pm1_cnt_place(pm, old.config, was_mapped);
        return rc;
    }
    pm->pm1_cnt = sv.pm1_cnt;
    pm->apm_cnt = sv.apm_cnt;
    pm->apm_sts = sv.apm_sts;
    pm->gpe_sts = sv.gpe_sts;
    pm->gpe_en = sv.gpe_en;
    memcpy(pm->cpu_map, sv.cpu_map, sizeof(pm->cpu_map));
    update_sci(pm);
    return 0;
}
