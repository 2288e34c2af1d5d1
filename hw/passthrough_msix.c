/* MSI-X of a pass-through function (PCI Local Bus 3.0, 6.8.2; PCIe Base
 * 4.0, 7.7.2): the guest's table is emulated, each unmasked entry of an
 * enabled function stands on a pirq Xen delivers.
 *
 * How the pieces fit, from Xen's and qemu-xen's sources (facts only):
 *  - xc_physdev_map_pirq_msi(MAP_PIRQ_TYPE_MSI, entry_nr, table_base) makes
 *    Xen set the host function up for MSI-X (msix_capability_init): Xen
 *    reads the BAR itself, expects table_base to be that BAR's address
 *    (it warns when they differ) and adds the table offset on its own; it
 *    enables MSI-X in the host's message control and writes the host table
 *    entry when the pirq is bound. So the device model never writes the
 *    host's table, nor its enable/mask-all bits. qemu-xen does not write
 *    the table either (it maps it read-only through /dev/mem, for the
 *    vector control and the PBA); it does clear the host's MSI-X enable
 *    when the guest disables MSI-X. Here that is left to Xen's pirq
 *    teardown (not verified against a real host).
 *  - xc_domain_update_msi_irq(gvec, pirq, gflags, gtable) binds the pirq to
 *    the guest's vector; gtable is the guest address of the table, which
 *    Xen's msixtbl uses to handle the guest's mask-bit writes for bound
 *    entries itself. Writes it does not handle (address/data, unmask after
 *    a change, entries it does not know) come to the device model.
 *  - The host's table pages are read-only to dom0 (mmio_ro_ranges), so the
 *    registers that share them reach the host only as far as Xen allows.
 *
 * Here an entry is mapped and bound while MSI-X is enabled, the function
 * mask is clear and the entry's mask bit is clear; masking, disabling,
 * reset, detach and exit unbind and unmap it. Changes to a bound entry (new
 * address/data, table moved with its BAR) rebind it. The PBA and any other
 * register in the table's pages are read from the host BAR through sysfs
 * resourceN (what the hardware says is pending); zeros only if that file
 * cannot be mapped, which is logged. */
#include "passthrough.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../lib/log.h"

/* MSI-X capability registers (offsets from the capability). */
#define PCI_MSIX_FLAGS 2
#define PCI_MSIX_TABLE 4
#define PCI_MSIX_PBA 8
#define PCI_MSIX_CAP_LEN 12
#define PCI_MSIX_FLAGS_QSIZE 0x07ff    /* Table Size, N - 1 */
#define PCI_MSIX_FLAGS_MASKALL 0x4000  /* Function Mask */
#define PCI_MSIX_FLAGS_ENABLE 0x8000   /* MSI-X Enable */
#define PCI_MSIX_BIR_MASK 0x7u         /* Table/PBA BIR */

/* Table entry layout. */
#define PCI_MSIX_ENTRY_SIZE 16
#define PCI_MSIX_ENTRY_LOWER_ADDR 0
#define PCI_MSIX_ENTRY_UPPER_ADDR 4
#define PCI_MSIX_ENTRY_DATA 8
#define PCI_MSIX_ENTRY_VECTOR_CTRL 12
#define PCI_MSIX_ENTRY_CTRL_MASKBIT 0x1u

#define MSIX_PAGE_SHIFT 12
#define MSIX_PAGE_SIZE 4096ull

static uint16_t msix_flags(const struct passthrough *pt)
{
    return pci_get_word(&pt->fn.config[pt->msix.cap + PCI_MSIX_FLAGS]);
}

static bool entry_wanted(const struct passthrough *pt,
                         const struct passthrough_msix_entry *e)
{
    uint16_t flags = msix_flags(pt);

    return pt->attached && (flags & PCI_MSIX_FLAGS_ENABLE) &&
           !(flags & PCI_MSIX_FLAGS_MASKALL) &&
           !(e->ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static void entry_teardown(struct passthrough *pt, unsigned i)
{
    struct passthrough_msix_entry *e = &pt->msix.entries[i];

    if (!e->mapped)
        return;
    /* The guest decides how often this happens (mask bits, address/data
     * rewrites): rate limited like any other guest-provoked line. */
    log_ratelimited(LOG_INFO, "passthrough %s: MSI-X entry %u pirq %d "
                    "unmapped", pt->name, i, e->pirq);
    if (pt->ops.msi_unmap)
        pt->ops.msi_unmap(pt->ops.opaque, e->pirq, e->bound_addr,
                          e->bound_data, e->bound);
    e->mapped = e->bound = false;
}

static void entry_update(struct passthrough *pt, unsigned i)
{
    struct passthrough_msix *m = &pt->msix;
    struct passthrough_msix_entry *e = &m->entries[i];

    if (!entry_wanted(pt, e)) {
        entry_teardown(pt, i);
        return;
    }
    if (!e->mapped) {
        int pirq = -1;

        if (pt->ops.msi_map &&
            pt->ops.msi_map(pt->ops.opaque, &pt->host, i,
                            pt->bar[m->table_bar].host_addr, &pirq) < 0) {
            log_ratelimited(LOG_WARN, "passthrough %s: MSI-X entry %u: pirq "
                            "mapping failed", pt->name, i);
            return;
        }
        e->mapped = true;
        e->bound = false;
        e->pirq = pirq;
        e->map_seq = m->next_seq++;
    } else if (e->bound && e->bound_addr == e->addr &&
               e->bound_data == e->data && e->bound_gtable == m->gtable) {
        return;
    }
    log_ratelimited(LOG_INFO, "passthrough %s: MSI-X entry %u pirq %d addr "
                    "0x%" PRIx64 " data 0x%x table 0x%" PRIx64, pt->name, i,
                    e->pirq, e->addr, e->data, m->gtable);
    if (pt->ops.msi_update &&
        pt->ops.msi_update(pt->ops.opaque, e->pirq, e->addr, e->data,
                           m->gtable) < 0) {
        log_ratelimited(LOG_WARN, "passthrough %s: MSI-X entry %u: binding "
                        "failed", pt->name, i);
        e->bound = false;
        return;
    }
    e->bound = true;
    e->bound_addr = e->addr;
    e->bound_data = e->data;
    e->bound_gtable = m->gtable;
}

void passthrough_msix_update(struct passthrough *pt)
{
    uint16_t flags;

    if (!pt->msix.cap)
        return;
    flags = msix_flags(pt);
    if (!pt->attached || !(flags & PCI_MSIX_FLAGS_ENABLE) ||
        (flags & PCI_MSIX_FLAGS_MASKALL)) {
        /* Nothing may stay bound: undone in reverse. */
        passthrough_msix_teardown(pt);
        return;
    }
    for (unsigned i = 0; i < pt->msix.n_entries; i++)
        entry_update(pt, i);
}

void passthrough_msix_teardown(struct passthrough *pt)
{
    struct passthrough_msix *m = &pt->msix;

    if (!m->cap)
        return;
    /* Newest binding first: the exact reverse of how they were made. */
    for (;;) {
        unsigned newest = m->n_entries;

        for (unsigned i = 0; i < m->n_entries; i++)
            if (m->entries[i].mapped &&
                (newest == m->n_entries ||
                 m->entries[i].map_seq > m->entries[newest].map_seq))
                newest = i;
        if (newest == m->n_entries)
            break;
        entry_teardown(pt, newest);
    }
}

void passthrough_msix_reset(struct passthrough *pt)
{
    struct passthrough_msix *m = &pt->msix;

    if (!m->cap)
        return;
    passthrough_msix_teardown(pt);
    /* After reset every entry is masked (the spec leaves the rest
     * undefined; zeros are what a guest most likely expects). */
    for (unsigned i = 0; i < m->n_entries; i++)
        m->entries[i] = (struct passthrough_msix_entry){
            .ctrl = PCI_MSIX_ENTRY_CTRL_MASKBIT};
}

bool passthrough_msix_traps_bar(const struct passthrough *pt, unsigned idx)
{
    return pt->msix.cap && pt->msix.table_bar == idx;
}

/* --- the table window ---------------------------------------------------- */

/* BAR offset of byte off of the region, or -1 outside the BAR (a page of a
 * small BAR also holds other functions' bytes on the host). */
static int64_t window_bar_offset(const struct passthrough *pt, uint64_t off)
{
    const struct passthrough_bar *bar = &pt->bar[pt->msix.table_bar];
    int64_t b = (int64_t)((pt->msix.first_page << MSIX_PAGE_SHIFT) + off) -
                (int64_t)(bar->host_addr & (MSIX_PAGE_SIZE - 1));

    return b < 0 || (uint64_t)b >= bar->size ? -1 : b;
}

static bool in_table(const struct passthrough_msix *m, int64_t b)
{
    return b >= (int64_t)m->table_off &&
           (uint64_t)b < m->table_off + (uint64_t)m->n_entries * PCI_MSIX_ENTRY_SIZE;
}

static bool in_pba(const struct passthrough_msix *m, int64_t b)
{
    return m->pba_bar == m->table_bar && b >= (int64_t)m->pba_off &&
           (uint64_t)b < m->pba_off + (m->n_entries + 63) / 64 * 8;
}

static uint8_t table_byte(const struct passthrough_msix *m, uint64_t t)
{
    const struct passthrough_msix_entry *e = &m->entries[t / PCI_MSIX_ENTRY_SIZE];
    unsigned field = (unsigned)(t % PCI_MSIX_ENTRY_SIZE);
    uint32_t v;

    switch (field & ~3u) {
    case PCI_MSIX_ENTRY_LOWER_ADDR:
        v = (uint32_t)e->addr;
        break;
    case PCI_MSIX_ENTRY_UPPER_ADDR:
        v = (uint32_t)(e->addr >> 32);
        break;
    case PCI_MSIX_ENTRY_DATA:
        v = e->data;
        break;
    default:
        v = e->ctrl;
        break;
    }
    return (uint8_t)(v >> (8 * (field & 3)));
}

/* A host register access of the natural width, so that a device sees one
 * access as the guest made it. */
static uint64_t host_read(volatile uint8_t *p, unsigned size)
{
    switch (size) {
    case 1:
        return *p;
    case 2:
        return *(volatile uint16_t *)p;
    case 4:
        return *(volatile uint32_t *)p;
    default:
        return *(volatile uint64_t *)p;
    }
}

static void host_write(volatile uint8_t *p, uint64_t v, unsigned size)
{
    switch (size) {
    case 1:
        *p = (uint8_t)v;
        break;
    case 2:
        *(volatile uint16_t *)p = (uint16_t)v;
        break;
    case 4:
        *(volatile uint32_t *)p = (uint32_t)v;
        break;
    default:
        *(volatile uint64_t *)p = v;
        break;
    }
}

/* The host window holds BAR bytes [win_start, win_end). */
static volatile uint8_t *host_at(const struct passthrough *pt, int64_t b,
                                 unsigned size)
{
    const struct passthrough_msix *m = &pt->msix;

    if (!m->host_window || b < (int64_t)m->win_start ||
        (uint64_t)b + size > m->win_end || b % size)
        return NULL;
    return m->host_window + (b - (int64_t)m->win_start);
}

static uint64_t window_read(void *opaque, uint64_t off, unsigned size)
{
    struct passthrough *pt = opaque;
    const struct passthrough_msix *m = &pt->msix;
    int64_t b = window_bar_offset(pt, off);
    volatile uint8_t *host;
    uint64_t v = 0;

    if (b < 0)
        return bus_size_mask(size);
    if (in_table(m, b) || in_table(m, b + size - 1)) {
        /* Byte by byte, so any width or alignment reads what is stored. */
        for (unsigned i = 0; i < size; i++) {
            int64_t x = b + i;

            v |= (uint64_t)(in_table(m, x) ? table_byte(m, (uint64_t)x - m->table_off)
                                           : 0) << (8 * i);
        }
        return v;
    }
    host = host_at(pt, b, size);
    if (host)
        return host_read(host, size);
    /* No host mapping: the PBA says nothing is pending. */
    return in_pba(m, b) ? 0 : bus_size_mask(size);
}

static void table_write(struct passthrough *pt, uint64_t t, uint64_t value,
                        unsigned size)
{
    struct passthrough_msix *m = &pt->msix;
    unsigned i = (unsigned)(t / PCI_MSIX_ENTRY_SIZE);
    unsigned field = (unsigned)(t % PCI_MSIX_ENTRY_SIZE);
    struct passthrough_msix_entry *e = &m->entries[i];

    /* Only aligned DWORD and QWORD accesses are defined (6.8.2). */
    if (!((size == 4 && field % 4 == 0) || (size == 8 && field % 8 == 0))) {
        log_ratelimited(LOG_WARN, "passthrough %s: MSI-X table write of %u "
                        "bytes at entry %u + %u ignored (not an aligned "
                        "DWORD or QWORD)", pt->name, size, i, field);
        return;
    }
    for (unsigned w = 0; w < size / 4; w++, field += 4) {
        uint32_t v = (uint32_t)(value >> (32 * w));

        switch (field) {
        case PCI_MSIX_ENTRY_LOWER_ADDR:
            e->addr = (e->addr & ~0xffffffffull) | v;
            break;
        case PCI_MSIX_ENTRY_UPPER_ADDR:
            e->addr = (e->addr & 0xffffffffull) | (uint64_t)v << 32;
            break;
        case PCI_MSIX_ENTRY_DATA:
            e->data = v;
            break;
        default:
            /* Bits 31:1 are reserved (read as zero here). */
            e->ctrl = v & PCI_MSIX_ENTRY_CTRL_MASKBIT;
            break;
        }
    }
    entry_update(pt, i);
}

static void window_write(void *opaque, uint64_t off, uint64_t value,
                         unsigned size)
{
    struct passthrough *pt = opaque;
    const struct passthrough_msix *m = &pt->msix;
    int64_t b = window_bar_offset(pt, off);
    volatile uint8_t *host;

    if (b < 0)
        return;
    if (in_table(m, b) && in_table(m, b + size - 1)) {
        table_write(pt, (uint64_t)b - m->table_off, value, size);
        return;
    }
    if (in_table(m, b) || in_table(m, b + size - 1) || in_pba(m, b) ||
        in_pba(m, b + size - 1)) {
        log_ratelimited(LOG_WARN, "passthrough %s: write of %u bytes at "
                        "BAR%u + 0x%" PRIx64 " (MSI-X table edge or PBA) "
                        "ignored", pt->name, size, m->table_bar, (uint64_t)b);
        return;
    }
    host = host_at(pt, b, size);
    if (host)
        host_write(host, value, size);
    else
        log_ratelimited(LOG_WARN, "passthrough %s: write of %u bytes at "
                        "BAR%u + 0x%" PRIx64 " dropped (misaligned, or the "
                        "host BAR is not mapped)", pt->name, size,
                        m->table_bar, (uint64_t)b);
}

static const struct bus_region_ops window_ops = {
    .read = window_read,
    .write = window_write,
    .max_access = 8,
};

void passthrough_msix_place(struct passthrough *pt, uint64_t gaddr)
{
    struct passthrough_msix *m = &pt->msix;
    struct bus *bus = pt->fn.bus ? pt->fn.bus->bus : NULL;
    uint64_t base;

    if (!m->cap)
        return;
    base = gaddr ? (gaddr & ~(MSIX_PAGE_SIZE - 1)) +
                       (m->first_page << MSIX_PAGE_SHIFT)
                 : 0;
    if (m->region.mapped && (!base || m->region.base != base) && bus)
        bus_unmap(bus, &m->region);
    if (base && !m->region.mapped && bus &&
        bus_map(bus, BUS_MMIO, &m->region, base) < 0) {
        log_ratelimited(LOG_WARN, "passthrough %s: MSI-X table pages at 0x%"
                        PRIx64 " cannot be served: %s", pt->name, base,
                        bus->error);
        base = 0;
    }
    /* Bound entries follow the table to a new place (Xen intercepts mask
     * writes there); while the BAR does not decode, the guest cannot reach
     * the table and the last place stands. */
    if (base)
        m->gtable = gaddr + m->table_off;
    passthrough_msix_update(pt);
}

/* --- set-up -------------------------------------------------------------- */

static void map_host_window(struct passthrough *pt)
{
    struct passthrough_msix *m = &pt->msix;
    char path[600];
    void *p;
    int fd;

    snprintf(path, sizeof(path), "%s/resource%u", pt->sysfs_dir, m->table_bar);
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        log_warn("passthrough %s: cannot open %s (%s): the PBA reads as "
                 "zeros and registers sharing the MSI-X table's pages are "
                 "not reachable", pt->name, path, strerror(errno));
        return;
    }
    p = mmap(NULL, (size_t)(m->win_end - m->win_start), PROT_READ | PROT_WRITE,
             MAP_SHARED, fd, (off_t)m->win_start);
    close(fd);
    if (p == MAP_FAILED) {
        log_warn("passthrough %s: cannot map %s (%s): the PBA reads as "
                 "zeros and registers sharing the MSI-X table's pages are "
                 "not reachable", pt->name, path, strerror(errno));
        return;
    }
    m->host_window = p;
    m->host_window_len = (size_t)(m->win_end - m->win_start);
}

static bool bar_usable(const struct passthrough *pt, unsigned bir)
{
    return bir < PCI_NUM_BARS && pt->bar[bir].size &&
           !(pt->bar[bir].flags & PCI_BAR_IO);
}

int passthrough_msix_init(struct passthrough *pt, unsigned pos)
{
    struct passthrough_msix *m = &pt->msix;
    struct pci_function *f = &pt->fn;
    const uint8_t *h = pt->host_config;
    uint16_t flags = pci_get_word(&h[pos + PCI_MSIX_FLAGS]);
    uint32_t table = pci_get_long(&h[pos + PCI_MSIX_TABLE]);
    uint32_t pba = pci_get_long(&h[pos + PCI_MSIX_PBA]);
    unsigned n = (flags & PCI_MSIX_FLAGS_QSIZE) + 1u;
    uint64_t table_len = (uint64_t)n * PCI_MSIX_ENTRY_SIZE;
    uint64_t pba_len = (n + 63) / 64 * 8, host_off;
    const char *why = NULL;

    m->table_bar = table & PCI_MSIX_BIR_MASK;
    m->table_off = table & ~PCI_MSIX_BIR_MASK;
    m->pba_bar = pba & PCI_MSIX_BIR_MASK;
    m->pba_off = pba & ~PCI_MSIX_BIR_MASK;
    m->n_entries = n;
    if (pos + PCI_MSIX_CAP_LEN > PCI_CONFIG_SIZE)
        why = "capability runs off the configuration space";
    else if (!bar_usable(pt, m->table_bar))
        why = "table BIR names no memory BAR";
    else if (m->table_off + table_len > pt->bar[m->table_bar].size)
        why = "table runs past the end of its BAR";
    else if (!bar_usable(pt, m->pba_bar))
        why = "PBA BIR names no memory BAR";
    else if (m->pba_off + pba_len > pt->bar[m->pba_bar].size)
        why = "PBA runs past the end of its BAR";
    else if (m->pba_bar == m->table_bar && m->pba_off < m->table_off + table_len &&
             m->table_off < m->pba_off + pba_len)
        why = "table and PBA overlap";
    if (why) {
        log_warn("passthrough %s: MSI-X capability hidden: %s (table BIR %u "
                 "offset 0x%" PRIx64 ", PBA BIR %u offset 0x%" PRIx64 ", %u "
                 "entries)", pt->name, why, m->table_bar, m->table_off,
                 m->pba_bar, m->pba_off, n);
        memset(m, 0, sizeof(*m));
        return -EINVAL;
    }
    m->entries = calloc(n, sizeof(*m->entries));
    if (!m->entries) {
        memset(m, 0, sizeof(*m));
        return -ENOMEM;
    }
    host_off = pt->bar[m->table_bar].host_addr & (MSIX_PAGE_SIZE - 1);
    m->first_page = (host_off + m->table_off) >> MSIX_PAGE_SHIFT;
    m->last_page = (host_off + m->table_off + table_len - 1) >> MSIX_PAGE_SHIFT;
    m->win_start = (m->first_page << MSIX_PAGE_SHIFT) > host_off
                       ? (m->first_page << MSIX_PAGE_SHIFT) - host_off
                       : 0;
    m->win_end = ((m->last_page + 1) << MSIX_PAGE_SHIFT) - host_off;
    if (m->win_end > pt->bar[m->table_bar].size)
        m->win_end = pt->bar[m->table_bar].size;
    m->cap = (uint8_t)pos;
    passthrough_msix_reset(pt);
    bus_region_init(&m->region, pt->name,
                    (m->last_page - m->first_page + 1) << MSIX_PAGE_SHIFT,
                    &window_ops, pt);

    /* Guest view: table size, BIRs and offsets from the host; enable and
     * function mask virtual, starting clear. */
    memcpy(&f->config[pos], &h[pos], PCI_MSIX_CAP_LEN);
    pci_set_word(&f->config[pos + PCI_MSIX_FLAGS],
                 flags & PCI_MSIX_FLAGS_QSIZE);
    pci_set_word(&f->wmask[pos + PCI_MSIX_FLAGS],
                 PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    map_host_window(pt);
    log_info("passthrough %s: MSI-X %u entries, table BAR%u + 0x%" PRIx64
             ", PBA BAR%u + 0x%" PRIx64, pt->name, n, m->table_bar,
             m->table_off, m->pba_bar, m->pba_off);
    return 0;
}

void passthrough_msix_fini(struct passthrough *pt)
{
    struct passthrough_msix *m = &pt->msix;

    if (m->region.mapped && pt->fn.bus)
        bus_unmap(pt->fn.bus->bus, &m->region);
    if (m->host_window)
        munmap((void *)m->host_window, m->host_window_len);
    m->host_window = NULL;
    free(m->entries);
    m->entries = NULL;
    m->cap = 0;
}
