/* Xen platform PCI device (5853:0001) and the fixed I/O ports 0x10-0x1F it
 * brings: how PV drivers find Xen, report themselves, log to dom0 and unplug
 * the emulated disks and NICs they replace (docs/misc/hvm-emulated-unplug
 * in Xen; xen-dm-interfaces.md §6.5).
 *
 * The device only decodes the protocol. What "unplug" and "ROM lock" mean is
 * the machine's business, reached through xen_platform_ops. */
#ifndef XENDM_HW_XEN_PLATFORM_H
#define XENDM_HW_XEN_PLATFORM_H

#include <stdbool.h>
#include <stdint.h>

#include "../lib/log.h"
#include "bus.h"
#include "pci.h"

/* Identity (QEMU hw/i386/xen/xen_platform.c class_init; Xen's
 * docs/man/xen-pci-device-reservations.7.pod reserves vendor 0x5853). */
#define XEN_PLATFORM_VENDOR_ID 0x5853
#define XEN_PLATFORM_DEVICE_ID 0x0001
#define XEN_PLATFORM_REVISION 1
#define XEN_PLATFORM_CLASS 0xff8000 /* PCI_CLASS_OTHERS << 8 | 0x80 */

#define XEN_PLATFORM_IO_BAR_SIZE 0x100
#define XEN_PLATFORM_MMIO_BAR_SIZE 0x1000000 /* 16 MiB, prefetchable */

/* Fixed ports: offsets from 0x10 and the values exchanged there. */
#define XEN_PLATFORM_IOPORT 0x10
#define XEN_PLATFORM_IOPORT_LEN 16
#define XEN_PLATFORM_MAGIC 0x49d2
#define XEN_PLATFORM_MAGIC_BLACKLISTED 0xd249
#define XEN_PLATFORM_PROTOCOL_VERSION 1
enum {
    XEN_PLATFORM_REG_MAGIC = 0,   /* r16 magic, w16 unplug, w32 build, rw8 flags */
    XEN_PLATFORM_REG_VERSION = 2, /* r8 version, w16 product, w8 log byte */
};
/* Unplug mask bits (write 2 bytes at 0x10). */
#define XEN_UNPLUG_ALL_IDE_SCSI_DISKS 0x1
#define XEN_UNPLUG_ALL_NICS 0x2
#define XEN_UNPLUG_AUX_IDE_DISKS 0x4 /* ignored when bit 0 is set too */
#define XEN_UNPLUG_NVME_DISKS 0x8
#define XEN_UNPLUG_KNOWN 0xf
/* Platform flags (byte at 0x10 and BAR0+0). */
#define XEN_PLATFORM_FLAG_ROM_LOCK 0x1

/* BAR0 offsets of the pre-protocol unplug interfaces (old SUSE PVonHVM and
 * Novell VMDP), as QEMU decodes them. */
enum {
    XEN_PLATFORM_BAR_FLAGS = 0,
    XEN_PLATFORM_BAR_UNPLUG_ALL = 4, /* write 1: disks and NICs */
    XEN_PLATFORM_BAR_UNPLUG = 8,     /* 1: disks, 2: NICs, else a log byte */
};

/* Longest guest log line kept; the rest of a longer line is cut off. */
#define XEN_PLATFORM_LOG_LINE_MAX 256

enum xen_platform_disks {
    XEN_PLATFORM_UNPLUG_ALL_IDE_SCSI, /* every IDE and SCSI disk, no CD-ROM */
    XEN_PLATFORM_UNPLUG_IDE_AUX_ONLY, /* IDE disks but the primary master */
    XEN_PLATFORM_UNPLUG_NVME,         /* every emulated NVMe disk */
};

struct xen_platform_ops {
    void (*unplug_disks)(void *opaque, enum xen_platform_disks which);
    void (*unplug_nics)(void *opaque);
    /* PFFLAG_ROM_LOCK: make 0xC0000-0xFFFFF read-only (lock) or writable
     * again. Returns 0 or a negative errno; on failure the flag keeps its
     * old value, as in QEMU. NULL: the flag is only stored. */
    int (*set_rom_lock)(void *opaque, bool lock);
    /* Optional: whether PV driver `product` build `build` must be refused
     * (xenstore /mh/driver-blacklist/<product>/<build>). */
    bool (*is_blacklisted)(void *opaque, uint16_t product, uint32_t build);
    void *opaque;
};

struct xen_platform {
    struct pci_function fn;
    struct bus *bus;
    struct xen_platform_ops ops;
    struct bus_region fixed_region;
    uint8_t flags;
    uint16_t product;
    bool product_reported;
    uint32_t build;
    bool build_reported;
    bool blacklisted;
    char log_line[XEN_PLATFORM_LOG_LINE_MAX + 1];
    unsigned log_len;
    bool log_truncated;
    struct ratelimit log_rl;
};

/* Registers the function at devfn with its two BARs and maps the fixed
 * ports. ops is copied and may be NULL. */
int xen_platform_init(struct xen_platform *p, struct pci_bus *pci,
                      struct bus *bus, uint8_t devfn,
                      const struct xen_platform_ops *ops);
void xen_platform_fini(struct xen_platform *p);

struct ss_writer;
struct ss_reader;
/* Section "xen-platform", instance = devfn: configuration space, platform
 * flags (the ROM lock is applied through ops.set_rom_lock; if that fails
 * nothing is loaded), the PV driver's product and build, the blacklist
 * answer it was given, and a partial guest log line. */
int xen_platform_save(const struct xen_platform *p, struct ss_writer *w);
int xen_platform_load(struct xen_platform *p, struct ss_reader *r);

#endif
