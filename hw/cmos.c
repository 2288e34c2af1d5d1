/* CMOS NVRAM at ports 0x70/0x71.
 *
 * The start-up contents are those QEMU 7.x gives a PC machine (and so a
 * xenfv guest): hw/i386/pc.c pc_cmos_init() for memory sizes, equipment and
 * boot order, hw/i386/x86.c x86_rtc_set_cpus_count() for the CPU count,
 * hw/rtc/mc146818rtc.c for the port behaviour (the result was checked
 * against Debian's QEMU 7.2 for 1 GiB and 5 GiB guests). Everything else
 * starts 0:
 *  - QEMU keeps no checksum at 0x2E/0x2F, so neither do we (SeaBIOS and
 *    hvmloader do not check one);
 *  - the century byte 0x32 holds the host's current century in BCD, as the
 *    RTC's realize sets it from the host clock (0x20 today); under Xen the
 *    clock proper is the hypervisor's, so nothing updates it later;
 *  - floppy types (0x10) stay 0 and the equipment byte keeps no drive bits,
 *    as xenfv has no floppy drives; the hard-disk bytes (0x12, 0x19-0x2D,
 *    0x39) QEMU fills from the IDE disks at first reset arrive through
 *    cmos_set() once disks exist.
 * hvmloader rewrites the memory sizes with its own view of the guest
 * (xen-dm-interfaces.md §6.3); those writes land here like any other. */
#include "cmos.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "../lib/log.h"
#include "savestate.h"

TRACE_POINT(trace_cmos, "cmos");

#define KiB 1024ull
#define MiB (1024 * KiB)

#define CMOS_EQUIPMENT_FPU 0x02
#define CMOS_EQUIPMENT_PS2_MOUSE 0x04
#define CMOS_BOOT_NO_FD_CHECK 0x01
#define CMOS_MAX_BOOT_DEVICES 3
#define CMOS_DEFAULT_BOOT_ORDER "cad" /* QEMU's PC machines */

static void nvram_set16(struct cmos *s, unsigned index, unsigned value)
{
    s->nvram[index] = (uint8_t)value;
    s->nvram[index + 1] = (uint8_t)(value >> 8);
}

/* QEMU's boot_device2nibble(); 0 for a letter it does not know. */
static uint8_t boot_device_code(char c)
{
    switch (c) {
    case 'a':
    case 'b':
        return 0x1; /* floppy */
    case 'c':
        return 0x2; /* hard disk */
    case 'd':
        return 0x3; /* CD-ROM */
    case 'n':
        return 0x4; /* network */
    default:
        return 0;
    }
}

int cmos_set_boot_order(struct cmos *s, const char *order)
{
    uint8_t dev[CMOS_MAX_BOOT_DEVICES] = {0};
    size_t n;

    if (!order)
        order = CMOS_DEFAULT_BOOT_ORDER;
    n = strlen(order);
    if (n > CMOS_MAX_BOOT_DEVICES) {
        log_err("cmos: boot order '%s' names more than %d devices", order,
                CMOS_MAX_BOOT_DEVICES);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        dev[i] = boot_device_code(order[i]);
        if (!dev[i]) {
            log_err("cmos: boot order '%s': unknown device '%c'", order,
                    order[i]);
            return -EINVAL;
        }
    }
    s->nvram[CMOS_BOOT_DEV12] = (uint8_t)(dev[1] << 4 | dev[0]);
    /* CMOS_BOOT_NO_FD_CHECK stays clear: the floppy boot-signature check is
     * on, QEMU's default (libxl never passes -no-fd-bootchk). */
    s->nvram[CMOS_BOOT_DEV3] = (uint8_t)(dev[2] << 4);
    return 0;
}

static void fill_memory_sizes(struct cmos *s, const struct cmos_config *cfg)
{
    uint64_t below = cfg->ram_below_4g, v;

    v = below / KiB;
    nvram_set16(s, CMOS_BASE_MEM_LO, v > 640 ? 640 : (unsigned)v);

    v = below > 1 * MiB ? (below - 1 * MiB) / KiB : 0;
    if (v > 0xffff)
        v = 0xffff;
    nvram_set16(s, CMOS_EXT_MEM_LO, (unsigned)v);
    nvram_set16(s, CMOS_EXT_MEM2_LO, (unsigned)v);

    v = below > 16 * MiB ? (below - 16 * MiB) / (64 * KiB) : 0;
    if (v > 0xffff)
        v = 0xffff;
    nvram_set16(s, CMOS_MEM_ABOVE_16M_LO, (unsigned)v);

    /* Three bytes and no cap, as QEMU (it only matters past 1 TiB, where
     * firmware takes the size from elsewhere). */
    v = cfg->ram_above_4g / (64 * KiB);
    s->nvram[CMOS_MEM_ABOVE_4G] = (uint8_t)v;
    s->nvram[CMOS_MEM_ABOVE_4G + 1] = (uint8_t)(v >> 8);
    s->nvram[CMOS_MEM_ABOVE_4G + 2] = (uint8_t)(v >> 16);
}

static uint8_t host_century_bcd(void)
{
    time_t now = time(NULL);
    struct tm tm;
    unsigned century = 20;

    if (gmtime_r(&now, &tm))
        century = (unsigned)(tm.tm_year + 1900) / 100 % 100;
    return (uint8_t)((century / 10) << 4 | century % 10);
}

/* --- ports ---------------------------------------------------------------- */

static uint64_t cmos_port_read(void *opaque, uint64_t off, unsigned size)
{
    struct cmos *s = opaque;
    uint8_t v;

    /* The index register is write-only (QEMU reads 0xff). */
    if (off == 0)
        return 0xff;
    if (s->index >= CMOS_RTC_REGS) {
        v = s->nvram[s->index];
    } else if (s->rtc && s->rtc->read) {
        v = s->rtc->read(s->rtc_opaque, s->index);
    } else {
        /* Reaches us only without Xen, before a clock is plugged in. */
        v = 0xff;
    }
    trace(trace_cmos, "read [0x%02x] = 0x%02x", s->index, v);
    return v;
}

static void cmos_port_write(void *opaque, uint64_t off, uint64_t value,
                            unsigned size)
{
    struct cmos *s = opaque;
    uint8_t v = (uint8_t)value;

    if (off == 0) {
        /* Xen forwards index writes with the NMI bit still set. */
        s->index = v & CMOS_INDEX_MASK;
        return;
    }
    trace(trace_cmos, "write [0x%02x] = 0x%02x", s->index, v);
    if (s->index >= CMOS_RTC_REGS)
        s->nvram[s->index] = v;
    else if (s->rtc && s->rtc->write)
        s->rtc->write(s->rtc_opaque, s->index, v);
}

static const struct bus_region_ops cmos_port_ops = {
    .read = cmos_port_read,
    .write = cmos_port_write,
    .max_access = 1,
};

/* --- setup ---------------------------------------------------------------- */

int cmos_init(struct cmos *s, struct bus *bus, const struct cmos_config *cfg)
{
    int rc;

    memset(s, 0, sizeof(*s));
    if (!bus || !cfg || cfg->ncpus == 0)
        return -EINVAL;
    s->bus = bus;
    rc = cmos_set_boot_order(s, cfg->boot_order);
    if (rc < 0)
        goto out;
    fill_memory_sizes(s, cfg);
    s->nvram[CMOS_EQUIPMENT] = CMOS_EQUIPMENT_FPU | CMOS_EQUIPMENT_PS2_MOUSE;
    s->nvram[CMOS_CENTURY] = host_century_bcd();
    /* More CPUs than a byte holds: 0, so that old firmware fails visibly
     * rather than using a wrapped count (QEMU does the same). */
    s->nvram[CMOS_CPU_COUNT] = cfg->ncpus > 255 ? 0 : (uint8_t)(cfg->ncpus - 1);

    bus_region_init(&s->region, "cmos", 2, &cmos_port_ops, s);
    rc = bus_map(bus, BUS_PIO, &s->region, CMOS_INDEX_PORT);
out:
    return rc;
}

void cmos_fini(struct cmos *s)
{
    if (s->bus)
        bus_unmap(s->bus, &s->region);
}

void cmos_reset(struct cmos *s)
{
    /* QEMU's rtc_reset_enter: the shutdown status byte is cleared unless it
     * holds the S3 marker the firmware resumes on. */
    if (s->nvram[CMOS_SHUTDOWN_STATUS] != CMOS_SHUTDOWN_S3_RESUME)
        s->nvram[CMOS_SHUTDOWN_STATUS] = 0;
}

void cmos_set_rtc(struct cmos *s, const struct cmos_rtc_ops *ops, void *opaque)
{
    s->rtc = ops;
    s->rtc_opaque = opaque;
}

uint8_t cmos_get(const struct cmos *s, unsigned index)
{
    if (index < CMOS_RTC_REGS || index >= CMOS_SIZE)
        return 0xff;
    return s->nvram[index];
}

void cmos_set(struct cmos *s, unsigned index, uint8_t value)
{
    if (index >= CMOS_RTC_REGS && index < CMOS_SIZE)
        s->nvram[index] = value;
}

/* --- save and restore ----------------------------------------------------- */

#define CMOS_SS_NAME "cmos"
#define CMOS_SS_VERSION 1

int cmos_save(const struct cmos *s, struct ss_writer *w)
{
    ss_begin_section(w, CMOS_SS_NAME, CMOS_INDEX_PORT, CMOS_SS_VERSION);
    ss_put_u8(w, s->index);
    ss_put_bytes(w, &s->nvram[CMOS_RTC_REGS], CMOS_SIZE - CMOS_RTC_REGS);
    return ss_end_section(w);
}

int cmos_load(struct cmos *s, struct ss_reader *r)
{
    uint8_t index, nvram[CMOS_SIZE - CMOS_RTC_REGS];
    uint32_t version;
    int rc;

    rc = ss_open_section(r, CMOS_SS_NAME, CMOS_INDEX_PORT, CMOS_SS_VERSION,
                         &version);
    if (rc < 0)
        return rc;
    ss_get_u8(r, "index", &index);
    /* Every NVRAM byte is the guest's to write, memory sizes included. */
    ss_get_bytes(r, "nvram", nvram, sizeof(nvram));
    if (ss_ok(r) && index > CMOS_INDEX_MASK)
        ss_fail(r, "index", "0x%02x: the NMI bit is never latched, indexes "
                "end at 0x%02x", index, CMOS_INDEX_MASK);
    rc = ss_close_section(r);
    if (rc < 0)
        return rc;
    s->index = index;
    memcpy(&s->nvram[CMOS_RTC_REGS], nvram, sizeof(nvram));
    return 0;
}
