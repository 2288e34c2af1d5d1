#include "passthrough.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/log.h"

/* Linux's IORESOURCE_* bits, as the sysfs resource file shows them. */
#define IORESOURCE_IO 0x00000100u
#define IORESOURCE_MEM 0x00000200u
#define IORESOURCE_PREFETCH 0x00002000u
#define IORESOURCE_MEM_64 0x00100000u

#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_CAP_ID_PM 0x01
#define PCI_CAP_ID_MSI 0x05
#define PCI_CAP_ID_EXP 0x10
#define PCI_CAP_ID_MSIX 0x11
#define PT_MAX_KEPT_CAPS 4
#define PCI_MSI_FLAGS_ENABLE 0x0001
#define PCI_MSI_FLAGS_QSIZE 0x0070 /* Multiple Message Enable */
#define PCI_MSI_FLAGS_64BIT 0x0080
#define PCI_MSI_FLAGS_MASKBIT 0x0100
#define PCI_PM_CTRL_STATE_MASK 0x03
#define PT_PAGE_SHIFT 12
#define PT_PAGE_MASK 0xfffull

/* Command bits the host function must follow for the guest's direct
 * accesses and DMA to work; the rest of the register is only virtual. */
#define PT_COMMAND_FORWARDED                                                   \
    (PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |               \
     PCI_COMMAND_INTX_DISABLE)

/* What a config byte is. Emulated bytes live in fn.config (the core's
 * wmask/w1cmask say what the guest may change) and never reach the host;
 * host bytes are outside every emulated register: read from the device,
 * written only in permissive mode (XSA-131). */
enum pt_policy {
    PT_POLICY_HOST = 0,
    PT_POLICY_EMULATED = 1,
    /* Emulated, and in permissive mode also written through to the host
     * (the PCIe control registers). */
    PT_POLICY_VIRTUAL = 2,
};

/* PCI Express Capability (PCIe Base 4.0, 7.5.3): offsets from the
 * capability, and what the guest gets of each register. Registers not
 * listed are emulated read-only copies of the host's (the capabilities
 * registers, and the slot/root registers an endpoint has reserved). */
#define PCI_EXP_FLAGS 0x02
#define PCI_EXP_FLAGS_VERS 0x000f
#define PCI_EXP_DEVCAP 0x04
#define PCI_EXP_DEVCAP_FLR 0x10000000u
#define PCI_EXP_V1_LEN 0x24
#define PCI_EXP_V2_LEN 0x3c

struct pt_pcie_reg {
    uint8_t off, size;
    const char *name;
    enum pt_policy policy;
    uint16_t wmask; /* for PT_POLICY_VIRTUAL */
    bool v2;
};

static const struct pt_pcie_reg pt_pcie_regs[] = {
    /* Initiate Function Level Reset (bit 15) reads 0 and is not offered. */
    {0x08, 2, "Device Control", PT_POLICY_VIRTUAL, 0x7fff, false},
    {0x0a, 2, "Device Status", PT_POLICY_HOST, 0, false},
    /* Retrain Link (bit 5) always reads 0. */
    {0x10, 2, "Link Control", PT_POLICY_VIRTUAL, 0xffdf, false},
    {0x12, 2, "Link Status", PT_POLICY_HOST, 0, false},
    {0x28, 2, "Device Control 2", PT_POLICY_VIRTUAL, 0xffff, true},
    {0x30, 2, "Link Control 2", PT_POLICY_VIRTUAL, 0xffff, true},
    {0x32, 2, "Link Status 2", PT_POLICY_HOST, 0, true},
};

/* Where an emulated header register's initial value comes from. */
enum pt_source { PT_FROM_HOST, PT_ZERO, PT_SPECIAL };

struct pt_header_reg {
    uint8_t reg, size;
    const char *name;
    enum pt_source source;
};

/* Type 0 header (PCI Local Bus 3.0, 6.1): every byte emulated. SPECIAL
 * registers are built by code below (command, status, header type, BARs,
 * ROM, capability pointer). */
static const struct pt_header_reg pt_header[] = {
    {0x00, 2, "Vendor ID", PT_FROM_HOST},
    {0x02, 2, "Device ID", PT_FROM_HOST},
    {0x04, 2, "Command", PT_SPECIAL},
    {0x06, 2, "Status", PT_SPECIAL},
    {0x08, 1, "Revision ID", PT_FROM_HOST},
    {0x09, 3, "Class Code", PT_FROM_HOST},
    {0x0c, 1, "Cache Line Size", PT_ZERO},
    {0x0d, 1, "Latency Timer", PT_ZERO},
    {0x0e, 1, "Header Type", PT_SPECIAL},
    {0x0f, 1, "BIST", PT_ZERO},
    {0x10, 24, "Base Address Registers", PT_SPECIAL},
    {0x28, 4, "CardBus CIS Pointer", PT_ZERO},
    {0x2c, 2, "Subsystem Vendor ID", PT_FROM_HOST},
    {0x2e, 2, "Subsystem ID", PT_FROM_HOST},
    {0x30, 4, "Expansion ROM Base Address", PT_SPECIAL},
    {0x34, 1, "Capabilities Pointer", PT_SPECIAL},
    {0x35, 7, "Reserved", PT_ZERO},
    {0x3c, 1, "Interrupt Line", PT_ZERO},
    {0x3d, 1, "Interrupt Pin", PT_FROM_HOST},
    {0x3e, 1, "Min_Gnt", PT_FROM_HOST},
    {0x3f, 1, "Max_Lat", PT_FROM_HOST},
};

const char *passthrough_sysfs_root(void)
{
    const char *env = getenv(PASSTHROUGH_SYSFS_ENV);

    return env && env[0] ? env : PASSTHROUGH_DEFAULT_SYSFS_ROOT;
}

static int read_small_file(const char *dir, const char *name, char *buf,
                           size_t len)
{
    char path[512];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -EIO;
    buf[n] = '\0';
    return 0;
}

static int read_hex_file(const char *dir, const char *name, unsigned long *v)
{
    char buf[64], *end;
    int rc = read_small_file(dir, name, buf, sizeof(buf));

    if (rc < 0)
        return rc;
    *v = strtoul(buf, &end, 0);
    return end == buf ? -EINVAL : 0;
}

/* --- plumbing (logged when the machine gave no ops) --------------------- */

static int plumb_mmio(struct passthrough *pt, uint64_t gfn, uint64_t mfn,
                      uint64_t nr, bool add)
{
    log_info("passthrough %s: %s mmio gfn 0x%" PRIx64 " mfn 0x%" PRIx64
             " nr %" PRIu64, pt->name, add ? "map" : "unmap", gfn, mfn, nr);
    return pt->ops.mmio_map ? pt->ops.mmio_map(pt->ops.opaque, gfn, mfn, nr, add)
                            : 0;
}

static int plumb_ioport(struct passthrough *pt, uint32_t gport, uint32_t mport,
                        uint32_t nr, bool add)
{
    log_info("passthrough %s: %s ioport 0x%x -> 0x%x nr %u", pt->name,
             add ? "map" : "unmap", gport, mport, nr);
    return pt->ops.ioport_map
               ? pt->ops.ioport_map(pt->ops.opaque, gport, mport, nr, add)
               : 0;
}

/* --- BARs ---------------------------------------------------------------- */

static unsigned bar_reg(unsigned idx)
{
    return idx == PCI_ROM_SLOT ? PCI_ROM_ADDRESS : PCI_BASE_ADDRESS_0 + 4 * idx;
}

/* Guest address the BAR decodes at, 0 when it must not (decoding off,
 * unprogrammed, being sized, off the end of its space). */
static uint64_t bar_guest_address(const struct passthrough *pt, unsigned idx)
{
    const struct passthrough_bar *bar = &pt->bar[idx];
    const uint8_t *config = pt->fn.config;
    uint16_t cmd = pci_get_word(&config[PCI_COMMAND]);
    unsigned reg = bar_reg(idx);
    uint64_t addr, last;

    if (bar->flags & PCI_BAR_IO) {
        if (!(cmd & PCI_COMMAND_IO))
            return 0;
        addr = pci_get_long(&config[reg]) & ~(bar->size - 1) & ~3ull;
        last = addr + bar->size - 1;
        return addr && last < 0x10000 ? addr : 0;
    }
    if (!(cmd & PCI_COMMAND_MEMORY))
        return 0;
    if (idx == PCI_ROM_SLOT &&
        !(config[PCI_ROM_ADDRESS] & PCI_ROM_ADDRESS_ENABLE))
        return 0;
    addr = pci_get_long(&config[reg]) & ~(bar->size - 1) & ~0xfull;
    if (bar->flags & PCI_BAR_MEM64)
        addr |= (uint64_t)pci_get_long(&config[reg + 4]) << 32;
    last = addr + bar->size - 1;
    if (!addr || last < addr || last == UINT64_MAX)
        return 0;
    if (!(bar->flags & PCI_BAR_MEM64) && last >= 0xffffffffull)
        return 0;
    return addr;
}

/* The BAR holding the MSI-X table is mapped around the table's pages, in
 * at most two pieces (below, above); they are added low first and removed
 * high first. */
static int bar_plumb(struct passthrough *pt, unsigned idx, uint64_t gaddr,
                     bool add)
{
    struct passthrough_bar *bar = &pt->bar[idx];
    uint64_t gfn = gaddr >> PT_PAGE_SHIFT, mfn = bar->host_addr >> PT_PAGE_SHIFT;
    uint64_t nr = ((bar->host_addr & PT_PAGE_MASK) + bar->size + PT_PAGE_MASK) >>
                  PT_PAGE_SHIFT;
    uint64_t lo_nr, hi_first, hi_nr;
    int rc;

    if (bar->flags & PCI_BAR_IO)
        return plumb_ioport(pt, (uint32_t)gaddr, (uint32_t)bar->host_addr,
                            (uint32_t)bar->size, add);
    if (!passthrough_msix_traps_bar(pt, idx))
        return plumb_mmio(pt, gfn, mfn, nr, add);
    lo_nr = pt->msix.first_page;
    hi_first = pt->msix.last_page + 1;
    hi_nr = nr > hi_first ? nr - hi_first : 0;
    if (!add) {
        if (hi_nr)
            plumb_mmio(pt, gfn + hi_first, mfn + hi_first, hi_nr, false);
        if (lo_nr)
            plumb_mmio(pt, gfn, mfn, lo_nr, false);
        return 0;
    }
    if (lo_nr && (rc = plumb_mmio(pt, gfn, mfn, lo_nr, true)) < 0)
        return rc;
    if (hi_nr &&
        (rc = plumb_mmio(pt, gfn + hi_first, mfn + hi_first, hi_nr, true)) < 0) {
        if (lo_nr)
            plumb_mmio(pt, gfn, mfn, lo_nr, false);
        return rc;
    }
    return 0;
}

static void bar_unmap(struct passthrough *pt, unsigned idx)
{
    struct passthrough_bar *bar = &pt->bar[idx];
    unsigned i, j;

    if (!bar->mapped)
        return;
    bar_plumb(pt, idx, bar->guest_addr, false);
    bar->mapped = false;
    for (i = 0, j = 0; i < pt->n_mapped; i++)
        if (pt->map_order[i] != idx)
            pt->map_order[j++] = pt->map_order[i];
    pt->n_mapped = j;
}

static void update_mappings(struct passthrough *pt)
{
    for (unsigned i = 0; i <= PCI_ROM_SLOT; i++) {
        struct passthrough_bar *bar = &pt->bar[i];
        uint64_t addr;

        if (!bar->size)
            continue;
        addr = pt->attached ? bar_guest_address(pt, i) : 0;
        if (bar->mapped && bar->guest_addr == addr)
            continue;
        bar_unmap(pt, i);
        if (!addr)
            continue;
        /* Xen maps whole frames: the guest placement must keep the BAR's
         * offset within its page, or the guest would reach host bytes that
         * are not the BAR's. */
        if (!(bar->flags & PCI_BAR_IO) &&
            (addr & PT_PAGE_MASK) != (bar->host_addr & PT_PAGE_MASK)) {
            log_ratelimited(LOG_WARN, "passthrough %s: BAR%u at 0x%" PRIx64
                            " not page-compatible with host 0x%" PRIx64
                            ", left unmapped", pt->name, i, addr,
                            bar->host_addr);
            continue;
        }
        if (bar_plumb(pt, i, addr, true) < 0) {
            log_ratelimited(LOG_WARN, "passthrough %s: BAR%u mapping at 0x%"
                            PRIx64 " failed", pt->name, i, addr);
            continue;
        }
        bar->mapped = true;
        bar->guest_addr = addr;
        pt->map_order[pt->n_mapped++] = (uint8_t)i;
    }
    if (pt->msix.cap) {
        const struct passthrough_bar *tb = &pt->bar[pt->msix.table_bar];

        passthrough_msix_place(pt, tb->mapped ? tb->guest_addr : 0);
    }
}

/* --- MSI ----------------------------------------------------------------- */

static uint16_t msi_flags(const struct passthrough *pt)
{
    return pci_get_word(&pt->fn.config[pt->msi_cap + 2]);
}

static unsigned msi_data_off(const struct passthrough *pt)
{
    return pt->msi_cap + (msi_flags(pt) & PCI_MSI_FLAGS_64BIT ? 12u : 8u);
}

static unsigned msi_cap_len(uint16_t flags)
{
    return (flags & PCI_MSI_FLAGS_64BIT ? 14u : 10u) +
           (flags & PCI_MSI_FLAGS_MASKBIT ? 10u : 0u);
}

static void msi_teardown(struct passthrough *pt)
{
    if (!pt->msi_mapped)
        return;
    /* The guest decides how often MSI is toggled: rate-limited. */
    log_ratelimited(LOG_INFO, "passthrough %s: MSI pirq %d unmapped", pt->name,
                    pt->msi_pirq);
    if (pt->ops.msi_unmap)
        pt->ops.msi_unmap(pt->ops.opaque, pt->msi_pirq, pt->msi_addr,
                          pt->msi_data, pt->msi_bound);
    pt->msi_mapped = pt->msi_bound = false;
}

static void update_msi(struct passthrough *pt)
{
    const uint8_t *c = pt->fn.config;
    bool enabled;
    uint64_t addr;
    uint32_t data;

    if (!pt->msi_cap)
        return;
    enabled = pt->attached && (msi_flags(pt) & PCI_MSI_FLAGS_ENABLE);
    addr = pci_get_long(&c[pt->msi_cap + 4]);
    if (msi_flags(pt) & PCI_MSI_FLAGS_64BIT)
        addr |= (uint64_t)pci_get_long(&c[pt->msi_cap + 8]) << 32;
    data = pci_get_word(&c[msi_data_off(pt)]);
    if (!enabled) {
        msi_teardown(pt);
        return;
    }
    if (!pt->msi_mapped) {
        int pirq = -1;

        if (pt->ops.msi_map && pt->ops.msi_map(pt->ops.opaque, &pt->host, 0,
                                               0, &pirq) < 0) {
            log_ratelimited(LOG_WARN, "passthrough %s: MSI pirq mapping failed",
                            pt->name);
            return;
        }
        pt->msi_mapped = true;
        pt->msi_bound = false;
        pt->msi_pirq = pirq;
    } else if (pt->msi_bound && addr == pt->msi_addr && data == pt->msi_data) {
        return;
    }
    pt->msi_addr = addr;
    pt->msi_data = data;
    log_ratelimited(LOG_INFO, "passthrough %s: MSI pirq %d addr 0x%" PRIx64
                    " data 0x%x", pt->name, pt->msi_pirq, addr, data);
    if (pt->ops.msi_update &&
        pt->ops.msi_update(pt->ops.opaque, pt->msi_pirq, addr, data, 0) < 0) {
        log_ratelimited(LOG_WARN, "passthrough %s: MSI update failed",
                        pt->name);
        pt->msi_bound = false;
        return;
    }
    pt->msi_bound = true;
}

/* --- config space -------------------------------------------------------- */

static void forward_command(struct passthrough *pt)
{
    uint8_t b[2];
    uint16_t host_cmd, guest = pci_get_word(&pt->fn.config[PCI_COMMAND]);

    if (pt->config_fd < 0 || pread(pt->config_fd, b, 2, PCI_COMMAND) != 2)
        return;
    host_cmd = pci_get_word(b);
    host_cmd = (uint16_t)((host_cmd & ~PT_COMMAND_FORWARDED) |
                          (guest & PT_COMMAND_FORWARDED));
    pci_set_word(b, host_cmd);
    if (pwrite(pt->config_fd, b, 2, PCI_COMMAND) != 2)
        log_ratelimited(LOG_WARN, "passthrough %s: host command write failed",
                        pt->name);
}

static uint32_t pt_config_read(struct pci_function *f, unsigned reg,
                               unsigned size, uint32_t value)
{
    struct passthrough *pt = f->opaque;

    for (unsigned i = 0; i < size && reg + i < PCI_CONFIG_SIZE; i++) {
        uint8_t b = 0xff;

        if (pt->policy[reg + i] != PT_POLICY_HOST)
            continue;
        if (pt->config_fd >= 0 &&
            pread(pt->config_fd, &b, 1, (off_t)(reg + i)) != 1)
            b = 0xff;
        value = (value & ~(0xffu << (8 * i))) | ((uint32_t)b << (8 * i));
    }
    return value;
}

static bool touches(unsigned reg, unsigned size, unsigned start, unsigned end)
{
    return reg < end && reg + size > start;
}

static void pt_config_write(struct pci_function *f, unsigned reg,
                            uint32_t value, unsigned size)
{
    struct passthrough *pt = f->opaque;

    for (unsigned i = 0; i < size && reg + i < PCI_CONFIG_SIZE; i++) {
        uint8_t b = (uint8_t)(value >> (8 * i));

        if (pt->policy[reg + i] == PT_POLICY_EMULATED)
            continue;
        if (pt->policy[reg + i] == PT_POLICY_VIRTUAL) {
            /* The guest's value is kept in the emulated copy; only a
             * permissive attach lets the host follow it. */
            if (!pt->permissive)
                continue;
            b = f->config[reg + i];
        } else if (!pt->permissive) {
            log_ratelimited(LOG_INFO, "passthrough %s: write to [0x%02x] "
                            "dropped (not permissive)", pt->name, reg + i);
            continue;
        }
        log_ratelimited(LOG_WARN, "passthrough %s: permissive write "
                        "[0x%02x] = 0x%02x forwarded to the host", pt->name,
                        reg + i, b);
        if (pt->config_fd < 0 ||
            pwrite(pt->config_fd, &b, 1, (off_t)(reg + i)) != 1)
            log_ratelimited(LOG_WARN, "passthrough %s: host write failed",
                            pt->name);
    }
    if (touches(reg, size, PCI_COMMAND, PCI_COMMAND + 2))
        forward_command(pt);
    if (touches(reg, size, PCI_COMMAND, PCI_COMMAND + 2) ||
        touches(reg, size, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_0 + 24) ||
        touches(reg, size, PCI_ROM_ADDRESS, PCI_ROM_ADDRESS + 4))
        update_mappings(pt);
    if (pt->msi_cap &&
        touches(reg, size, pt->msi_cap, pt->msi_cap + msi_cap_len(msi_flags(pt))))
        update_msi(pt);
    if (pt->msix.cap && touches(reg, size, pt->msix.cap + 2u, pt->msix.cap + 4u))
        passthrough_msix_update(pt);
}

/* Extended configuration space: the guest's bus is conventional PCI, so no
 * extended capability is offered; an all-zero header at 0x100 says so
 * (PCIe Base 4.0, 7.6.3). Writes go nowhere. */
static uint32_t pt_ext_config_read(struct pci_function *f, unsigned reg,
                                   unsigned size)
{
    (void)f;
    (void)reg;
    (void)size;
    return 0;
}

static void pt_ext_config_write(struct pci_function *f, unsigned reg,
                                uint32_t value, unsigned size)
{
    struct passthrough *pt = f->opaque;

    log_ratelimited(LOG_INFO, "passthrough %s: write of %u bytes to extended "
                    "config [0x%03x] = 0x%x dropped", pt->name, size, reg,
                    value);
}

static void pt_reset(struct pci_function *f)
{
    struct passthrough *pt = f->opaque;

    /* The core restored power-on config: decoding, MSI and MSI-X are off. */
    passthrough_msix_reset(pt);
    msi_teardown(pt);
    update_mappings(pt);
    forward_command(pt);
}

static const struct pci_function_ops pt_ops = {
    .config_read = pt_config_read,
    .config_write = pt_config_write,
    .reset = pt_reset,
};

static const struct pci_function_ext_ops pt_ext_ops = {
    .read = pt_ext_config_read,
    .write = pt_ext_config_write,
};

static int read_resources(struct passthrough *pt, char *err, size_t errlen)
{
    char path[512], line[256];
    FILE *fp;
    unsigned idx = 0;

    snprintf(path, sizeof(path), "%s/resource", pt->sysfs_dir);
    fp = fopen(path, "re");
    if (!fp) {
        snprintf(err, errlen, "cannot read %s", path);
        return -ENOENT;
    }
    while (idx <= PCI_ROM_SLOT && fgets(line, sizeof(line), fp)) {
        unsigned long long start, end, flags;
        struct passthrough_bar *bar = &pt->bar[idx];
        unsigned this = idx++;
        uint64_t size;

        if (sscanf(line, "%llx %llx %llx", &start, &end, &flags) != 3 ||
            !(flags & (IORESOURCE_IO | IORESOURCE_MEM)) || end < start)
            continue;
        size = end - start + 1;
        /* A BAR is a naturally aligned power of two; anything else in the
         * file is not something the guest could size. */
        if (size & (size - 1) || (flags & IORESOURCE_IO && size > 0x10000) ||
            (this == PCI_ROM_SLOT && !(flags & IORESOURCE_MEM))) {
            log_warn("passthrough %s: resource %u (0x%llx-0x%llx) ignored",
                     pt->name, this, start, end);
            continue;
        }
        if (flags & IORESOURCE_IO) {
            bar->flags = PCI_BAR_IO;
            size = size < 4 ? 4 : size;
        } else {
            bar->flags = PCI_BAR_MEM32;
            if (this != PCI_ROM_SLOT && (flags & IORESOURCE_MEM_64)) {
                if (this >= PCI_NUM_BARS - 1)
                    continue;
                bar->flags |= PCI_BAR_MEM64;
            }
            if (this != PCI_ROM_SLOT && (flags & IORESOURCE_PREFETCH))
                bar->flags |= PCI_BAR_PREFETCH;
            size = size < 16 ? 16 : size;
            if (!(bar->flags & PCI_BAR_MEM64) && size > (1ull << 31))
                continue;
        }
        bar->host_addr = start;
        bar->size = size;
        if (bar->flags & PCI_BAR_MEM64 && idx < PCI_NUM_BARS) {
            idx++; /* its upper half's line describes nothing */
            if (!fgets(line, sizeof(line), fp))
                break;
        }
    }
    fclose(fp);
    return 0;
}

static void setup_bars(struct passthrough *pt)
{
    struct pci_function *f = &pt->fn;

    for (unsigned i = 0; i <= PCI_ROM_SLOT; i++) {
        struct passthrough_bar *bar = &pt->bar[i];
        unsigned reg = bar_reg(i);
        uint64_t mask = ~(bar->size - 1);

        if (!bar->size)
            continue;
        if (i == PCI_ROM_SLOT) {
            pci_set_long(&f->wmask[reg], (uint32_t)mask | PCI_ROM_ADDRESS_ENABLE);
            continue;
        }
        pci_set_long(&f->config[reg], bar->flags);
        pci_set_long(&f->wmask[reg],
                     (uint32_t)mask & (bar->flags & PCI_BAR_IO ? ~0x3u : ~0xfu));
        if (bar->flags & PCI_BAR_MEM64)
            pci_set_long(&f->wmask[reg + 4], (uint32_t)(mask >> 32));
    }
}

static void setup_pm(struct passthrough *pt, unsigned pos)
{
    struct pci_function *f = &pt->fn;

    pt->pm_cap = (uint8_t)pos;
    /* PMCSR: the power state is virtual. */
    f->wmask[pos + 4] = PCI_PM_CTRL_STATE_MASK;
    f->config[pos + 4] &= (uint8_t)~PCI_PM_CTRL_STATE_MASK;
}

static void setup_msi(struct passthrough *pt, unsigned pos, unsigned len)
{
    struct pci_function *f = &pt->fn;
    uint16_t flags = pci_get_word(&pt->host_config[pos + 2]);
    unsigned data = pos + (flags & PCI_MSI_FLAGS_64BIT ? 12u : 8u);

    pt->msi_cap = (uint8_t)pos;
    pci_set_word(&f->config[pos + 2],
                 flags & (uint16_t)~(PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE));
    pci_set_word(&f->wmask[pos + 2], PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
    memset(&f->config[pos + 4], 0, len - 4);
    pci_set_long(&f->wmask[pos + 4], 0xfffffffcu);
    if (flags & PCI_MSI_FLAGS_64BIT)
        pci_set_long(&f->wmask[pos + 8], 0xffffffffu);
    pci_set_word(&f->wmask[data], 0xffff);
    if (flags & PCI_MSI_FLAGS_MASKBIT)
        pci_set_long(&f->wmask[data + 4], 0xffffffffu);
}

static unsigned pcie_cap_len(const uint8_t *h, unsigned pos)
{
    return (pci_get_word(&h[pos + PCI_EXP_FLAGS]) & PCI_EXP_FLAGS_VERS) >= 2
               ? PCI_EXP_V2_LEN
               : PCI_EXP_V1_LEN;
}

static void setup_pcie(struct passthrough *pt, unsigned pos, unsigned len)
{
    struct pci_function *f = &pt->fn;

    pt->pcie_cap = (uint8_t)pos;
    /* A reset the guest asks for would not reach the host (Device Control
     * is virtual), so FLR is not advertised. */
    pci_set_long(&f->config[pos + PCI_EXP_DEVCAP],
                 pci_get_long(&f->config[pos + PCI_EXP_DEVCAP]) &
                     ~PCI_EXP_DEVCAP_FLR);
    for (size_t i = 0; i < sizeof(pt_pcie_regs) / sizeof(pt_pcie_regs[0]); i++) {
        const struct pt_pcie_reg *r = &pt_pcie_regs[i];
        unsigned at = pos + r->off;

        if (r->off + r->size > len)
            continue;
        memset(&pt->policy[at], r->policy, r->size);
        if (r->policy == PT_POLICY_VIRTUAL) {
            pci_set_word(&f->wmask[at], r->wmask);
            pci_set_word(&f->config[at], pci_get_word(&f->config[at]) & r->wmask);
        }
    }
}

/* Copies the emulated capabilities (PM, MSI, MSI-X, PCIe; one of each) into
 * the guest view, chained in host order: the list is re-linked around every
 * other capability, which the guest never sees. */
static void setup_capabilities(struct passthrough *pt)
{
    struct pci_function *f = &pt->fn;
    const uint8_t *h = pt->host_config;
    uint8_t kept[PT_MAX_KEPT_CAPS];
    unsigned n_kept = 0, pos;
    uint8_t seen[PCI_CONFIG_SIZE] = {0};

    if (!(pci_get_word(&h[PCI_STATUS]) & PCI_STATUS_CAP_LIST))
        return;
    pos = h[PCI_CAPABILITY_LIST] & ~3u;
    /* The host's list is walked defensively: a loop or an out-of-header
     * pointer ends it. */
    while (pos >= 0x40 && pos <= PCI_CONFIG_SIZE - 4 && !seen[pos] &&
           n_kept < PT_MAX_KEPT_CAPS) {
        uint8_t id = h[pos];
        unsigned len = 0;

        seen[pos] = 1;
        if (id == PCI_CAP_ID_PM && !pt->pm_cap)
            len = 8;
        else if (id == PCI_CAP_ID_MSI && !pt->msi_cap)
            len = msi_cap_len(pci_get_word(&h[pos + 2]));
        else if (id == PCI_CAP_ID_MSIX && !pt->msix.cap)
            len = 12;
        else if (id == PCI_CAP_ID_EXP && !pt->pcie_cap)
            len = pcie_cap_len(h, pos);
        if (len && pos + len > PCI_CONFIG_SIZE) {
            log_warn("passthrough %s: capability 0x%02x at 0x%02x runs off "
                     "the configuration space: hidden", pt->name, id, pos);
            len = 0;
        }
        if (len && id == PCI_CAP_ID_MSIX && passthrough_msix_init(pt, pos) < 0)
            len = 0;
        if (len) {
            if (id != PCI_CAP_ID_MSIX)
                memcpy(&f->config[pos], &h[pos], len);
            memset(&pt->policy[pos], PT_POLICY_EMULATED, len);
            if (id == PCI_CAP_ID_PM)
                setup_pm(pt, pos);
            else if (id == PCI_CAP_ID_MSI)
                setup_msi(pt, pos, len);
            else if (id == PCI_CAP_ID_EXP)
                setup_pcie(pt, pos, len);
            kept[n_kept++] = (uint8_t)pos;
        }
        pos = h[pos + 1] & ~3u;
    }
    f->config[PCI_CAPABILITY_LIST] = n_kept ? kept[0] : 0;
    for (unsigned i = 0; i < n_kept; i++)
        f->config[kept[i] + 1] = i + 1 < n_kept ? kept[i + 1] : 0;
    if (n_kept)
        pci_set_word(&f->config[PCI_STATUS],
                     pci_get_word(&f->config[PCI_STATUS]) | PCI_STATUS_CAP_LIST);
}

static void build_config(struct passthrough *pt)
{
    struct pci_function *f = &pt->fn;
    const uint8_t *h = pt->host_config;

    pci_function_init(f, pt->name, pci_get_word(&h[PCI_VENDOR_ID]),
                      pci_get_word(&h[PCI_DEVICE_ID]),
                      h[PCI_CLASS_PROG] |
                          (uint32_t)pci_get_word(&h[PCI_CLASS_DEVICE]) << 8,
                      h[PCI_REVISION_ID], &pt_ops, pt);
    f->ext_ops = &pt_ext_ops;
    memset(pt->policy, PT_POLICY_HOST, sizeof(pt->policy));
    for (size_t i = 0; i < sizeof(pt_header) / sizeof(pt_header[0]); i++) {
        const struct pt_header_reg *r = &pt_header[i];

        memset(&pt->policy[r->reg], PT_POLICY_EMULATED, r->size);
        if (r->source == PT_FROM_HOST)
            memcpy(&f->config[r->reg], &h[r->reg], r->size);
    }
    f->config[PCI_HEADER_TYPE] = 0; /* the core keeps the multi-function bit */
    setup_bars(pt);
    setup_capabilities(pt);
}

int passthrough_create(const char *root, const struct pci_host_addr *h,
                       bool permissive, const struct passthrough_ops *ops,
                       const char *id, struct passthrough **out, char *err,
                       size_t errlen)
{
    struct passthrough *pt;
    char path[512];
    unsigned long vendor, device, irq;
    ssize_t n;
    int rc;

    *out = NULL;
    pt = calloc(1, sizeof(*pt));
    if (!pt)
        return -ENOMEM;
    pt->config_fd = -1;
    pt->host = *h;
    pt->permissive = permissive;
    if (ops)
        pt->ops = *ops;
    snprintf(pt->name, sizeof(pt->name), "pt-%04x:%02x:%02x.%u", h->seg,
             h->bus, h->dev, h->fn);
    if (asprintf(&pt->sysfs_dir, "%s/bus/pci/devices/%04x:%02x:%02x.%u",
                 root ? root : passthrough_sysfs_root(), h->seg, h->bus,
                 h->dev, h->fn) < 0) {
        pt->sysfs_dir = NULL;
        rc = -ENOMEM;
        goto out;
    }
    if (read_hex_file(pt->sysfs_dir, "vendor", &vendor) < 0 ||
        read_hex_file(pt->sysfs_dir, "device", &device) < 0) {
        snprintf(err, errlen, "host PCI device %04x:%02x:%02x.%u not found",
                 h->seg, h->bus, h->dev, h->fn);
        rc = -ENOENT;
        goto out;
    }
    snprintf(path, sizeof(path), "%s/config", pt->sysfs_dir);
    pt->config_fd = open(path, O_RDWR | O_CLOEXEC);
    if (pt->config_fd < 0)
        pt->config_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (pt->config_fd < 0) {
        snprintf(err, errlen, "cannot open %s", path);
        rc = -ENOENT;
        goto out;
    }
    memset(pt->host_config, 0xff, sizeof(pt->host_config));
    n = pread(pt->config_fd, pt->host_config, sizeof(pt->host_config), 0);
    if (n < 64) {
        snprintf(err, errlen, "%s: short configuration space", path);
        rc = -EIO;
        goto out;
    }
    if ((pt->host_config[PCI_HEADER_TYPE] & 0x7f) != 0) {
        snprintf(err, errlen, "%s: only type 0 functions can be passed through",
                 pt->name);
        rc = -ENOTSUP;
        goto out;
    }
    /* sysfs vendor/device are the kernel's view; they win over config. */
    pci_set_word(&pt->host_config[PCI_VENDOR_ID], (uint16_t)vendor);
    pci_set_word(&pt->host_config[PCI_DEVICE_ID], (uint16_t)device);
    if (read_hex_file(pt->sysfs_dir, "irq", &irq) == 0)
        pt->host_irq = (unsigned)irq;
    rc = read_resources(pt, err, errlen);
    if (rc < 0)
        goto out;
    build_config(pt);
    if (!pt->fn.config[PCI_INTERRUPT_PIN] || pt->fn.config[PCI_INTERRUPT_PIN] > 4)
        pt->fn.config[PCI_INTERRUPT_PIN] = 0;
    pt->fn.id = id ? id : "";
    *out = pt;
    pt = NULL;
    rc = 0;
out:
    if (pt)
        passthrough_destroy(pt);
    return rc;
}

int passthrough_attach(struct passthrough *pt, struct pci_bus *pci,
                       uint8_t devfn)
{
    unsigned pin = pt->fn.config[PCI_INTERRUPT_PIN];
    int rc = pci_register_function(pci, &pt->fn, devfn);

    if (rc < 0)
        return rc;
    pt->attached = true;
    if (pin && pt->host_irq) {
        int pirq = -1;

        log_info("passthrough %s: INTx host irq %u -> 00:%02x.%x INT%c",
                 pt->name, pt->host_irq, PCI_SLOT(devfn), PCI_FUNC(devfn),
                 'A' + pin - 1);
        if (pt->ops.intx_bind &&
            pt->ops.intx_bind(pt->ops.opaque, pt->host_irq, devfn, pin - 1,
                              &pirq) < 0) {
            /* The function still works with MSI; say why INTx does not. */
            log_warn("passthrough %s: INTx binding failed", pt->name);
        } else {
            pt->intx_bound = true;
            pt->intx_pirq = pirq;
        }
    }
    return 0;
}

void passthrough_detach(struct passthrough *pt)
{
    if (!pt->attached)
        return;
    passthrough_msix_teardown(pt);
    msi_teardown(pt);
    pt->attached = false;
    while (pt->n_mapped)
        bar_unmap(pt, pt->map_order[pt->n_mapped - 1]);
    passthrough_msix_place(pt, 0);
    if (pt->intx_bound) {
        log_info("passthrough %s: INTx pirq %d unbound", pt->name,
                 pt->intx_pirq);
        if (pt->ops.intx_unbind)
            pt->ops.intx_unbind(pt->ops.opaque, pt->intx_pirq, pt->fn.devfn,
                                pt->fn.config[PCI_INTERRUPT_PIN] - 1u);
        pt->intx_bound = false;
    }
    pci_unregister_function(&pt->fn);
}

void passthrough_destroy(struct passthrough *pt)
{
    if (!pt)
        return;
    passthrough_detach(pt);
    passthrough_msix_fini(pt);
    if (pt->config_fd >= 0)
        close(pt->config_fd);
    free(pt->sysfs_dir);
    free(pt);
}
