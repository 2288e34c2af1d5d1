/* A host PCI function handed to the guest (qemu-xen's xen-pci-passthrough,
 * xen-dm-interfaces.md §4.10 and §6.6).
 *
 * The host function is read from sysfs (<root>/bus/pci/devices/SSSS:BB:DD.F/
 * config, resource, irq, vendor, device). The guest sees an emulated
 * configuration space built by a per-register policy (passthrough.c):
 * identity and class from the host, command/status virtual, BARs virtual
 * (host sizes and types, guest addresses), a capability list holding only
 * what is emulated (PM, MSI, MSI-X, PCIe). Writes outside the policy never
 * reach the host unless the function was attached in permissive mode
 * (XSA-131). Extended configuration space (0x100-0xFFF) reads as zeros: the
 * guest's bus is conventional PCI, so the host's extended capabilities are
 * not offered and the empty header at 0x100 ends the extended list.
 *
 * The BARs are not served by the device model: when the guest places a BAR
 * and enables decoding, the function asks the plumbing (ops below, which the
 * machine fills with libxenctrl calls) to map the host range straight into
 * the guest; INTx and MSI go through pirqs the same way. Everything mapped
 * is unmapped, in reverse order, on detach and destroy.
 *
 * MSI-X (passthrough_msix.c): the guest's table is emulated. The pages of the
 * BAR that hold the table are left out of the direct mapping and served by
 * the device model (a region on the bus, so they arrive as ioreqs); table
 * writes are kept in a guest copy and turned into pirq bindings, never
 * written to the host table, which Xen programs itself. Other registers and
 * the PBA that share those pages are reached through the host BAR's sysfs
 * resourceN file. */
#ifndef XENDM_HW_PASSTHROUGH_H
#define XENDM_HW_PASSTHROUGH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pci.h"

#define PASSTHROUGH_DEFAULT_SYSFS_ROOT "/sys"
#define PASSTHROUGH_SYSFS_ENV "XEN_DM_SYSFS_ROOT"

/* The sysfs root in force: $XEN_DM_SYSFS_ROOT, else "/sys". */
const char *passthrough_sysfs_root(void);

/* What the guest-visible function needs done on the hypervisor side. Each
 * returns 0 or a negative errno; a failed map leaves nothing to unmap. */
struct passthrough_ops {
    /* xc_domain_memory_mapping: nr pages from host frame mfn at guest frame
     * gfn. */
    int (*mmio_map)(void *opaque, uint64_t gfn, uint64_t mfn, uint64_t nr,
                    bool add);
    /* xc_domain_ioport_mapping. */
    int (*ioport_map)(void *opaque, uint32_t gport, uint32_t mport,
                      uint32_t nr, bool add);
    /* xc_physdev_map_pirq of the host's irq, then xc_domain_bind_pt_pci_irq
     * to the guest's (devfn, intx: 0 = INTA). Sets *pirq. */
    int (*intx_bind)(void *opaque, unsigned host_irq, uint8_t devfn,
                     unsigned intx, int *pirq);
    /* xc_domain_unbind_pt_irq and xc_physdev_unmap_pirq. */
    void (*intx_unbind)(void *opaque, int pirq, uint8_t devfn, unsigned intx);
    /* xc_physdev_map_pirq_msi for the host function. MSI: entry_nr and
     * table_base 0; MSI-X: the table entry and the host address of the BAR
     * holding the table (Xen adds the table offset itself). Sets *pirq. */
    int (*msi_map)(void *opaque, const struct pci_host_addr *host,
                   unsigned entry_nr, uint64_t table_base, int *pirq);
    /* xc_domain_update_msi_irq with the guest's address/data; gtable is the
     * guest address of the MSI-X table (0 for MSI), which Xen uses to
     * intercept the guest's mask-bit accesses. */
    int (*msi_update)(void *opaque, int pirq, uint64_t addr, uint32_t data,
                      uint64_t gtable);
    /* xc_domain_unbind_msi_irq (if bound) then xc_physdev_unmap_pirq. */
    void (*msi_unmap)(void *opaque, int pirq, uint64_t addr, uint32_t data,
                      bool bound);
    void *opaque;
};

/* One BAR as the host has it (resource file) and the guest placed it. */
struct passthrough_bar {
    uint64_t host_addr;
    uint64_t size; /* 0: not implemented */
    unsigned flags; /* PCI_BAR_* */
    bool mapped;
    uint64_t guest_addr; /* while mapped */
};

/* One MSI-X table entry: the guest's copy, and the pirq standing for it. */
struct passthrough_msix_entry {
    uint64_t addr;
    uint32_t data;
    uint32_t ctrl; /* only the mask bit is kept */
    bool mapped, bound;
    int pirq;
    uint64_t bound_addr, bound_gtable; /* what the binding was made with */
    uint32_t bound_data;
    uint32_t map_seq; /* mapping order, for the unwind */
};

/* MSI-X as the guest sees it (passthrough_msix.c). */
struct passthrough_msix {
    uint8_t cap; /* offset in the guest view, 0: absent */
    unsigned n_entries;
    unsigned table_bar, pba_bar;
    uint64_t table_off, pba_off; /* within their BARs */
    struct passthrough_msix_entry *entries;
    /* The trapped window: BAR offsets [win_start, win_end) of the pages
     * holding the table, and those page frames relative to the BAR's first
     * frame, [first_page, last_page]. */
    uint64_t win_start, win_end;
    uint64_t first_page, last_page;
    /* The host BAR's bytes in the window (sysfs resourceN), NULL if the
     * file could not be mapped. */
    volatile uint8_t *host_window;
    size_t host_window_len;
    struct bus_region region;
    uint64_t gtable; /* guest address of the table while decoding, else 0 */
    uint32_t next_seq;
};

struct passthrough {
    struct pci_function fn;
    struct pci_host_addr host;
    char *sysfs_dir;
    int config_fd; /* host config file, read-write */
    bool permissive;
    struct passthrough_ops ops;
    uint8_t host_config[PCI_CONFIG_SIZE]; /* snapshot at create */
    /* Per-byte policy (enum in passthrough.c). */
    uint8_t policy[PCI_CONFIG_SIZE];
    struct passthrough_bar bar[PCI_NUM_BARS + 1];
    unsigned host_irq; /* 0: none */
    uint8_t pm_cap, msi_cap, pcie_cap; /* offsets in the guest view, 0: absent */
    struct passthrough_msix msix;
    bool intx_bound;
    int intx_pirq;
    bool msi_mapped, msi_bound;
    int msi_pirq;
    uint64_t msi_addr;
    uint32_t msi_data;
    /* Order things were mapped in, so detach undoes them in reverse. */
    uint8_t map_order[PCI_NUM_BARS + 1];
    unsigned n_mapped;
    bool attached;
    char name[32];
};

/* Reads the host function under root (NULL: passthrough_sysfs_root()) and
 * builds the guest view. -ENOENT (with a message in err) when the function
 * does not exist. ops may be NULL (every plumbing step is then only logged). */
int passthrough_create(const char *root, const struct pci_host_addr *h,
                       bool permissive, const struct passthrough_ops *ops,
                       const char *id, struct passthrough **out, char *err,
                       size_t errlen);
/* Places the function at devfn and binds its INTx. */
int passthrough_attach(struct passthrough *pt, struct pci_bus *pci,
                       uint8_t devfn);
/* Unmaps everything (reverse order), unbinds interrupts, unregisters. */
void passthrough_detach(struct passthrough *pt);
void passthrough_destroy(struct passthrough *pt);

/* --- inside the device (passthrough.c, passthrough_msix.c) --------------- */

/* Validates the host's MSI-X capability at pos (BIRs, offsets and sizes
 * against the BARs, table and PBA not overlapping) and sets up pt->msix and
 * the guest view of the capability. -EINVAL (logged) hides it. */
int passthrough_msix_init(struct passthrough *pt, unsigned pos);
void passthrough_msix_fini(struct passthrough *pt);
/* Does BAR idx hold the emulated table? */
bool passthrough_msix_traps_bar(const struct passthrough *pt, unsigned idx);
/* The table window's placement follows BAR idx at guest address gaddr
 * (0: not decoding): maps or unmaps the region on the bus and rebinds the
 * entries with the new table address. */
void passthrough_msix_place(struct passthrough *pt, uint64_t gaddr);
/* Re-evaluates every entry: maps/binds what the guest enabled and unmasked,
 * unbinds/unmaps the rest, rebinds what changed. */
void passthrough_msix_update(struct passthrough *pt);
/* Unbinds and unmaps every entry, newest first. */
void passthrough_msix_teardown(struct passthrough *pt);
/* Guest reset: entries back to masked and zero, pirqs released. */
void passthrough_msix_reset(struct passthrough *pt);

#endif
