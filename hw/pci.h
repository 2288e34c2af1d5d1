/* PCI core: functions with a 256-byte configuration space, per-byte write and
 * write-1-to-clear masks, BARs that map and unmap their regions on the bus as
 * the guest programs them, and configuration mechanism #1 (0xCF8/0xCFC).
 * Only bus 0 of segment 0 is populated, as on an i440FX. */
#ifndef XENDM_HW_PCI_H
#define XENDM_HW_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"

#define PCI_CONFIG_SIZE 256
/* A function's window in the PCI_CONFIG address space: room for PCIe's
 * extended space, which only functions with the ext_config hooks answer. */
#define PCI_CONFIG_SPACE_WINDOW 4096
#define PCI_NUM_BARS 6
#define PCI_ROM_SLOT 6 /* index of the expansion ROM in pci_function.bar[] */
#define PCI_DEVFN(slot, fn) ((uint8_t)(((slot) << 3) | (fn)))
#define PCI_SLOT(devfn) ((devfn) >> 3)
#define PCI_FUNC(devfn) ((devfn) & 7)

/* Standard header registers (PCI Local Bus 3.0, 6.1). */
enum {
    PCI_VENDOR_ID = 0x00,
    PCI_DEVICE_ID = 0x02,
    PCI_COMMAND = 0x04,
    PCI_STATUS = 0x06,
    PCI_REVISION_ID = 0x08,
    PCI_CLASS_PROG = 0x09,
    PCI_CLASS_DEVICE = 0x0a,
    PCI_CACHE_LINE_SIZE = 0x0c,
    PCI_LATENCY_TIMER = 0x0d,
    PCI_HEADER_TYPE = 0x0e,
    PCI_BIST = 0x0f,
    PCI_BASE_ADDRESS_0 = 0x10,
    PCI_SUBSYSTEM_VENDOR_ID = 0x2c,
    PCI_SUBSYSTEM_ID = 0x2e,
    PCI_ROM_ADDRESS = 0x30,
    PCI_CAPABILITY_LIST = 0x34,
    PCI_INTERRUPT_LINE = 0x3c,
    PCI_INTERRUPT_PIN = 0x3d,
    PCI_MIN_GNT = 0x3e,
    PCI_MAX_LAT = 0x3f,
};

#define PCI_COMMAND_IO 0x0001
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_SERR 0x0100
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_INTERRUPT 0x0008
#define PCI_HEADER_TYPE_MULTI_FUNCTION 0x80
#define PCI_ROM_ADDRESS_ENABLE 0x01

/* The subsystem QEMU gives every function that names none of its own
 * (PCI_SUBVENDOR_ID_REDHAT_QUMRANET:PCI_SUBDEVICE_ID_QEMU, hw/pci/pci.c):
 * guest ABI for the chipset functions QEMU's xenfv machine presents. */
#define PCI_SUBSYSTEM_VENDOR_QEMU 0x1af4
#define PCI_SUBSYSTEM_ID_QEMU 0x1100

/* BAR kinds. */
#define PCI_BAR_IO 0x1
#define PCI_BAR_MEM32 0x0
#define PCI_BAR_MEM64 0x4
#define PCI_BAR_PREFETCH 0x8

struct pci_bus;
struct pci_function;

struct pci_bar {
    uint64_t size;  /* 0: BAR not implemented */
    unsigned flags; /* PCI_BAR_* as they appear in the register's low bits */
    struct bus_region region;
    uint64_t addr; /* where region is mapped while region.mapped */
};

/* Optional device hooks, called after the core has done its part. */
struct pci_function_ops {
    /* May replace the value the core read (e.g. a live status register). */
    uint32_t (*config_read)(struct pci_function *f, unsigned reg,
                            unsigned size, uint32_t value);
    /* Sees every write after the core applied the write masks. */
    void (*config_write)(struct pci_function *f, unsigned reg, uint32_t value,
                         unsigned size);
    void (*reset)(struct pci_function *f);
};

/* Extended configuration space (0x100-0xFFF, reachable through PCI_CONFIG
 * ioreqs), for the functions that answer it; without these hooks it reads
 * all-ones and ignores writes. Set after pci_function_init. */
struct pci_function_ext_ops {
    uint32_t (*read)(struct pci_function *f, unsigned reg, unsigned size);
    void (*write)(struct pci_function *f, unsigned reg, uint32_t value,
                  unsigned size);
};

struct pci_function {
    struct pci_bus *bus;
    const char *name;
    const char *id; /* user-visible id (qdev_id in query-pci), "" if none */
    uint8_t devfn;
    bool registered;
    bool hotpluggable;
    uint8_t config[PCI_CONFIG_SIZE];
    uint8_t wmask[PCI_CONFIG_SIZE];
    uint8_t w1cmask[PCI_CONFIG_SIZE];
    uint8_t power_on[PCI_CONFIG_SIZE]; /* config restored at reset */
    struct pci_bar bar[PCI_NUM_BARS + 1];
    struct bus_region cfg_region;
    const struct pci_function_ops *ops;
    const struct pci_function_ext_ops *ext_ops;
    void *opaque;
};

struct pci_bus {
    struct bus *bus;
    struct pci_function *functions[256]; /* by devfn */
};

void pci_bus_init(struct pci_bus *pci, struct bus *bus);

/* Sets up a function's header with the usual writable bits: command
 * (I/O, memory, bus master, SERR, INTx disable), status errors as
 * write-1-to-clear, cache line size, latency timer, interrupt line. */
void pci_function_init(struct pci_function *f, const char *name,
                       uint16_t vendor, uint16_t device, uint32_t class_code,
                       uint8_t revision, const struct pci_function_ops *ops,
                       void *opaque);
void pci_set_subsystem(struct pci_function *f, uint16_t vendor,
                       uint16_t device);
void pci_set_interrupt_pin(struct pci_function *f, unsigned pin /* 1 = INTA */);
/* Declares BAR idx (0-5, or PCI_ROM_SLOT) of size bytes (a power of two, at
 * least 4 for I/O, 16 for memory, 2048 for a ROM) whose region is handled by
 * ops/opaque. A 64-bit BAR also takes idx + 1. */
int pci_function_add_bar(struct pci_function *f, unsigned idx, uint64_t size,
                         unsigned flags, const char *region_name,
                         const struct bus_region_ops *ops, void *opaque);

/* Places f at devfn: maps its config space region. -EEXIST if taken,
 * -EBUSY if f is registered already. */
int pci_register_function(struct pci_bus *pci, struct pci_function *f,
                          uint8_t devfn);
/* Unmaps f's BARs and config space. */
void pci_unregister_function(struct pci_function *f);
struct pci_function *pci_find_function(const struct pci_bus *pci, uint8_t devfn);

uint32_t pci_config_read(struct pci_function *f, unsigned reg, unsigned size);
void pci_config_write(struct pci_function *f, unsigned reg, uint32_t value,
                      unsigned size);
/* Restores power-on config, unmaps BARs, calls the device's reset. */
void pci_function_reset(struct pci_function *f);
void pci_bus_reset(struct pci_bus *pci);

static inline uint16_t pci_get_word(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t pci_get_long(const uint8_t *p)
{
    return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline void pci_set_word(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void pci_set_long(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A host PCI function as the toolstack names it: libxl's pci-ins, pci-rem
 * and QMP hostaddr, and sysfs. */
struct pci_host_addr {
    uint16_t seg;
    uint8_t bus, dev, fn;
};

/* Parses "SSSS:BB:DD.F" or "BB:DD.F" (segment 0), hex, fixed widths. With
 * end NULL the whole string must be the address; otherwise *end is set to
 * what follows it. 0, or -EINVAL (NULL included). */
int pci_host_addr_parse(const char *s, struct pci_host_addr *out,
                        const char **end);

/* Configuration mechanism #1: CONFIG_ADDRESS at 0xCF8 (32-bit accesses only;
 * a byte access to 0xCF9 is PIIX3's reset control and goes to the hook the
 * chipset installs), CONFIG_DATA at 0xCFC-0xCFF (any width, any offset). */
struct pci_host {
    struct bus *bus;
    uint32_t config_address;
    struct bus_region addr_region, data_region;
    /* Byte accesses at 0xCF9, which the host decodes but PIIX3 owns. */
    uint64_t (*cf9_read)(void *opaque);
    void (*cf9_write)(void *opaque, uint8_t value);
    void *cf9_opaque;
};

int pci_host_init(struct pci_host *host, struct bus *bus);
void pci_host_fini(struct pci_host *host);
void pci_host_reset(struct pci_host *host);

/* --- save and restore (savestate.h) ------------------------------------- */

struct ss_writer;
struct ss_reader;

/* A function's saved state: its configuration space and which of its BARs
 * (bit i for bar[i], PCI_ROM_SLOT included) were decoding. The second is
 * not implied by the first: a BAR the guest placed over another device
 * stays off until it is moved. */
struct pci_function_state {
    uint8_t config[PCI_CONFIG_SIZE];
    uint8_t bars_mapped;
};

/* Writes f's state as fields "config" and "bars_mapped" of the section the
 * caller has open. */
int pci_function_save(const struct pci_function *f, struct ss_writer *w);
/* Reads those fields into *st and checks them against f: only bits the
 * guest can write (wmask, w1cmask) may differ from f's power-on config, so
 * state from another device (vendor, device, class, BAR types...) is
 * refused, and a BAR may be marked decoding only if st's config enables it.
 * Changes nothing. */
int pci_function_load_check(const struct pci_function *f,
                            struct ss_reader *r,
                            struct pci_function_state *st);
/* The state f is in now. */
void pci_function_capture(const struct pci_function *f,
                          struct pci_function_state *st);
/* Installs st (checked by pci_function_load_check) in f and maps exactly
 * the BARs it marks. All or nothing: if a BAR cannot be mapped (something
 * else holds its range: no machine can be in that state) f is left as it
 * was and -EINVAL returned, reported through r if r is not NULL. Calls no
 * device hook: the device's load applies its own side effects. */
int pci_function_restore(struct pci_function *f,
                         const struct pci_function_state *st,
                         struct ss_reader *r);
/* Stops every BAR of every function on the bus decoding (their config is
 * untouched), so that a whole machine's state can be restored without the
 * old placement of one device getting in the way of another's new one. */
void pci_bus_unmap_bars(struct pci_bus *pci);

/* Section "pci-host", instance 0xcf8: CONFIG_ADDRESS. */
int pci_host_save(const struct pci_host *host, struct ss_writer *w);
int pci_host_load(struct pci_host *host, struct ss_reader *r);

#endif
