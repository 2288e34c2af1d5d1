/* CMOS NVRAM behind the MC146818 RTC ports: index 0x70, data 0x71.
 *
 * Under Xen the hypervisor's vRTC owns indexes 0x00-0x0D (clock, alarm,
 * registers A-D) and forwards only index writes >= 0x0E and data accesses
 * while such an index is selected (xen-dm-interfaces.md §6.1), so this device
 * is the NVRAM bytes 0x0E-0x7F: memory sizes, boot order, equipment, CPU
 * count, filled at start as QEMU's PC machine fills them. A software machine
 * without Xen plugs its RTC model in with cmos_set_rtc(). */
#ifndef XENDM_HW_CMOS_H
#define XENDM_HW_CMOS_H

#include <stdint.h>

#include "bus.h"

#define CMOS_INDEX_PORT 0x70
#define CMOS_DATA_PORT 0x71
#define CMOS_SIZE 128
#define CMOS_RTC_REGS 0x0e  /* 0x00-0x0D belong to the clock */
#define CMOS_INDEX_MASK 0x7f /* bit 7 of an index write is the NMI mask */

/* NVRAM layout used by PC firmware (QEMU hw/i386/pc.c, SeaBIOS, hvmloader). */
enum {
    CMOS_SHUTDOWN_STATUS = 0x0f,  /* why the CPU was reset */
    CMOS_EQUIPMENT = 0x14,
    CMOS_BASE_MEM_LO = 0x15,      /* KiB below 1 MiB */
    CMOS_BASE_MEM_HI = 0x16,
    CMOS_EXT_MEM_LO = 0x17,       /* KiB from 1 MiB, capped at 0xffff */
    CMOS_EXT_MEM_HI = 0x18,
    CMOS_CHECKSUM_HI = 0x2e,      /* not maintained by QEMU, see cmos.c */
    CMOS_CHECKSUM_LO = 0x2f,
    CMOS_EXT_MEM2_LO = 0x30,      /* copy of 0x17/0x18 */
    CMOS_EXT_MEM2_HI = 0x31,
    CMOS_CENTURY = 0x32,
    CMOS_MEM_ABOVE_16M_LO = 0x34, /* 64 KiB units from 16 MiB, capped */
    CMOS_MEM_ABOVE_16M_HI = 0x35,
    CMOS_BOOT_DEV3 = 0x38,        /* third boot device (high nibble), bit 0
                                     = no floppy signature check */
    CMOS_BOOT_DEV12 = 0x3d,       /* first (low nibble) and second device */
    CMOS_MEM_ABOVE_4G = 0x5b,     /* 64 KiB units, 0x5b-0x5d */
    CMOS_CPU_COUNT = 0x5f,        /* CPUs - 1 */
};

#define CMOS_SHUTDOWN_S3_RESUME 0xfe

struct cmos_config {
    uint64_t ram_below_4g, ram_above_4g; /* bytes */
    /* Up to three of a/b (floppy), c (disk), d (CD-ROM), n (network), in
     * QEMU's -boot order= spelling; NULL means QEMU's PC default "cad". */
    const char *boot_order;
    unsigned ncpus; /* CPUs present at boot, at least 1 */
};

/* The RTC registers 0x00-0x0D, for a machine that emulates the clock itself.
 * index is already stripped of the NMI bit. */
struct cmos_rtc_ops {
    uint8_t (*read)(void *opaque, unsigned index);
    void (*write)(void *opaque, unsigned index, uint8_t value);
};

struct cmos {
    struct bus *bus;
    struct bus_region region;
    uint8_t index;            /* last index written to port 0x70 */
    uint8_t nvram[CMOS_SIZE]; /* bytes below CMOS_RTC_REGS unused */
    const struct cmos_rtc_ops *rtc;
    void *rtc_opaque;
};

/* Fills the NVRAM from cfg and maps ports 0x70-0x71. -EINVAL for a bad boot
 * order or no CPUs. */
int cmos_init(struct cmos *s, struct bus *bus, const struct cmos_config *cfg);
void cmos_fini(struct cmos *s);
/* A system reset. The NVRAM is battery-backed and keeps its contents, and the
 * latched index stays as it was (QEMU: neither is touched), except that the
 * shutdown status byte 0x0F is cleared unless it holds 0xFE, the marker
 * SeaBIOS leaves to resume from S3. */
void cmos_reset(struct cmos *s);

void cmos_set_rtc(struct cmos *s, const struct cmos_rtc_ops *ops, void *opaque);
/* NVRAM byte index (0x0E-0x7F); 0xFF for the clock registers or beyond. */
uint8_t cmos_get(const struct cmos *s, unsigned index);
/* Sets an NVRAM byte from the host side (e.g. disk geometry once disks
 * exist); clock registers and out-of-range indexes are ignored. */
void cmos_set(struct cmos *s, unsigned index, uint8_t value);
/* Re-encodes the boot order into 0x3D/0x38 (QEMU's set_boot_dev). -EINVAL,
 * and nothing changed, for more than three devices or an unknown letter. */
int cmos_set_boot_order(struct cmos *s, const char *order);

struct ss_writer;
struct ss_reader;
/* Section "cmos", instance 0x70: the latched index and NVRAM bytes
 * 0x0E-0x7F (the clock registers below are the hypervisor's, or the RTC
 * model's). */
int cmos_save(const struct cmos *s, struct ss_writer *w);
int cmos_load(struct cmos *s, struct ss_reader *r);

#endif
