/* Xen platform device. Register behaviour follows QEMU 7.x
 * hw/i386/xen/xen_platform.c; the blacklist (magic 0xD249) is qemu-trad's,
 * which upstream QEMU dropped; the protocol is Xen's
 * docs/misc/hvm-emulated-unplug.pandoc. */
#include "xen_platform.h"

#include <errno.h>
#include <string.h>

#include "savestate.h"

TRACE_POINT(trace_xen_platform, "xen_platform");

/* Product numbers of xen/include/public/hvm/pvdrivers.h, for the log. */
static const char *product_name(uint16_t product)
{
    switch (product) {
    case 0x0001: return "xensource-windows";
    case 0x0002: return "gplpv-windows";
    case 0x0003: return "linux";
    case 0x0004: return "xenserver-windows-v7.0+";
    case 0x0005: return "xenserver-windows-v7.2+";
    case 0xffff: return "experimental";
    }
    return "unknown";
}

/* --- guest log ----------------------------------------------------------- */

static void log_flush(struct xen_platform *p)
{
    unsigned suppressed;

    if (p->log_len == 0)
        return;
    p->log_line[p->log_len] = '\0';
    p->log_len = 0;
    /* Any PV driver may write here, blacklisted or not: a bucket of its own
     * so a chatty guest cannot push the device model's own messages out. */
    if (!ratelimit_allow(&p->log_rl, &suppressed))
        return;
    if (suppressed)
        log_info("xen-platform: (%u guest log lines suppressed)", suppressed);
    log_info("xen-platform: guest: %s", p->log_line);
}

static void log_byte(struct xen_platform *p, uint8_t c)
{
    if (c == '\n') {
        log_flush(p);
        return;
    }
    if (c == '\r')
        return; /* Windows drivers end lines with CR LF */
    /* Nothing but printable ASCII reaches dom0's log: no terminal escapes,
     * no forged line breaks. */
    p->log_line[p->log_len++] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
    if (p->log_len == XEN_PLATFORM_LOG_LINE_MAX)
        log_flush(p);
}

/* --- the protocol -------------------------------------------------------- */

static void write_flags(struct xen_platform *p, uint8_t value)
{
    uint8_t flags = value & XEN_PLATFORM_FLAG_ROM_LOCK;
    int rc;

    if (p->ops.set_rom_lock) {
        rc = p->ops.set_rom_lock(p->ops.opaque,
                                 flags & XEN_PLATFORM_FLAG_ROM_LOCK);
        if (rc < 0) {
            log_ratelimited(LOG_WARN, "xen-platform: cannot %s the ROM area: "
                            "%s", flags ? "lock" : "unlock", strerror(-rc));
            return;
        }
    }
    p->flags = flags;
}

static void unplug(struct xen_platform *p, unsigned mask)
{
    log_ratelimited(LOG_INFO, "xen-platform: guest asks to unplug%s%s%s%s",
                    mask & XEN_UNPLUG_ALL_IDE_SCSI_DISKS ? " IDE/SCSI disks" : "",
                    mask & XEN_UNPLUG_AUX_IDE_DISKS ? " auxiliary IDE disks" : "",
                    mask & XEN_UNPLUG_NVME_DISKS ? " NVMe disks" : "",
                    mask & XEN_UNPLUG_ALL_NICS ? " NICs" : "");
    if (mask & ~XEN_UNPLUG_KNOWN)
        log_ratelimited(LOG_WARN, "xen-platform: unknown unplug bits 0x%x "
                        "ignored", mask & ~XEN_UNPLUG_KNOWN);
    /* Disks before NICs, as QEMU does. Unplug requests are honoured even
     * from blacklisted drivers: neither reference device model refuses them,
     * the magic only tells the drivers to stand down. */
    if (p->ops.unplug_disks) {
        if (mask & XEN_UNPLUG_ALL_IDE_SCSI_DISKS)
            p->ops.unplug_disks(p->ops.opaque, XEN_PLATFORM_UNPLUG_ALL_IDE_SCSI);
        else if (mask & XEN_UNPLUG_AUX_IDE_DISKS)
            p->ops.unplug_disks(p->ops.opaque, XEN_PLATFORM_UNPLUG_IDE_AUX_ONLY);
        if (mask & XEN_UNPLUG_NVME_DISKS)
            p->ops.unplug_disks(p->ops.opaque, XEN_PLATFORM_UNPLUG_NVME);
    }
    if ((mask & XEN_UNPLUG_ALL_NICS) && p->ops.unplug_nics)
        p->ops.unplug_nics(p->ops.opaque);
}

static void report_product(struct xen_platform *p, uint16_t product)
{
    p->product = product;
    p->product_reported = true;
    log_ratelimited(LOG_INFO, "xen-platform: PV drivers loaded: product %u "
                    "(%s)", product, product_name(product));
}

static void report_build(struct xen_platform *p, uint32_t build)
{
    p->build = build;
    p->build_reported = true;
    if (!p->product_reported) {
        /* qemu-trad refuses to look up a build without a product. */
        log_ratelimited(LOG_WARN, "xen-platform: PV driver build %u reported "
                        "before its product number", build);
        return;
    }
    if (p->ops.is_blacklisted)
        p->blacklisted = p->ops.is_blacklisted(p->ops.opaque, p->product,
                                               build);
    log_ratelimited(LOG_INFO, "xen-platform: PV driver %s build %u%s",
                    product_name(p->product), build,
                    p->blacklisted ? " is blacklisted" : "");
}

/* --- fixed ports 0x10-0x1F ---------------------------------------------- */

static uint64_t fixed_read(void *opaque, uint64_t off, unsigned size)
{
    struct xen_platform *p = opaque;

    /* QEMU answers only the aligned byte and word registers and all-ones for
     * everything else, dword reads included. */
    if (size == 1 && off == XEN_PLATFORM_REG_MAGIC)
        return p->flags;
    if (size == 1 && off == XEN_PLATFORM_REG_VERSION)
        return XEN_PLATFORM_PROTOCOL_VERSION;
    if (size == 2 && off == XEN_PLATFORM_REG_MAGIC)
        return p->blacklisted ? XEN_PLATFORM_MAGIC_BLACKLISTED
                              : XEN_PLATFORM_MAGIC;
    return bus_size_mask(size);
}

static void fixed_write(void *opaque, uint64_t off, uint64_t value,
                        unsigned size)
{
    struct xen_platform *p = opaque;

    trace(trace_xen_platform, "port 0x%x/%u <- 0x%llx",
          XEN_PLATFORM_IOPORT + (unsigned)off, size,
          (unsigned long long)value);
    switch (size) {
    case 1:
        if (off == XEN_PLATFORM_REG_MAGIC)
            write_flags(p, (uint8_t)value);
        else if (off == XEN_PLATFORM_REG_VERSION)
            log_byte(p, (uint8_t)value);
        break;
    case 2:
        if (off == XEN_PLATFORM_REG_MAGIC)
            unplug(p, (unsigned)value);
        else if (off == XEN_PLATFORM_REG_VERSION)
            report_product(p, (uint16_t)value);
        break;
    case 4:
        if (off == XEN_PLATFORM_REG_MAGIC)
            report_build(p, (uint32_t)value);
        break;
    }
}

static const struct bus_region_ops fixed_ops = {
    .read = fixed_read,
    .write = fixed_write,
    .max_access = 4,
};

/* --- BAR0: I/O, byte registers ------------------------------------------- */

static uint64_t bar_io_read(void *opaque, uint64_t off, unsigned size)
{
    struct xen_platform *p = opaque;

    return off == XEN_PLATFORM_BAR_FLAGS ? p->flags : 0xff;
}

static void bar_io_write(void *opaque, uint64_t off, uint64_t value,
                         unsigned size)
{
    struct xen_platform *p = opaque;
    uint8_t v = (uint8_t)value;

    switch (off) {
    case XEN_PLATFORM_BAR_FLAGS:
        write_flags(p, v);
        break;
    case XEN_PLATFORM_BAR_UNPLUG_ALL:
        /* Old SUSE drivers do an unconditional outl(1, base + 4). */
        if (v == 1)
            unplug(p, XEN_UNPLUG_ALL_IDE_SCSI_DISKS | XEN_UNPLUG_ALL_NICS);
        break;
    case XEN_PLATFORM_BAR_UNPLUG:
        if (v == 1)
            unplug(p, XEN_UNPLUG_ALL_IDE_SCSI_DISKS);
        else if (v == 2)
            unplug(p, XEN_UNPLUG_ALL_NICS);
        else
            log_byte(p, v);
        break;
    }
}

static const struct bus_region_ops bar_io_ops = {
    .read = bar_io_read,
    .write = bar_io_write,
    .max_access = 1, /* QEMU: impl 1 byte, wider accesses come in pieces */
};

/* --- BAR1: the 16 MiB window PV drivers map grant tables into ------------ */

static uint64_t bar_mmio_read(void *opaque, uint64_t off, unsigned size)
{
    /* Xen backs the pages the drivers use with RAM; what is left reads 0. */
    return 0;
}

static void bar_mmio_write(void *opaque, uint64_t off, uint64_t value,
                           unsigned size)
{
}

static const struct bus_region_ops bar_mmio_ops = {
    .read = bar_mmio_read,
    .write = bar_mmio_write,
    .max_access = 8,
};

/* --- PCI function -------------------------------------------------------- */

static void xen_platform_reset(struct pci_function *f)
{
    struct xen_platform *p = f->opaque;

    /* QEMU's PCI reset clears every writable command bit, including the
     * IO|MEM preset realize put there (pci_do_device_reset). */
    pci_set_word(&f->config[PCI_COMMAND], 0);
    /* platform_reset: flags 0, which also unlocks the ROM area. */
    write_flags(p, 0);
}

static const struct pci_function_ops xen_platform_fn_ops = {
    .reset = xen_platform_reset,
};

int xen_platform_init(struct xen_platform *p, struct pci_bus *pci,
                      struct bus *bus, uint8_t devfn,
                      const struct xen_platform_ops *ops)
{
    struct pci_function *f = &p->fn;
    int rc;

    memset(p, 0, sizeof(*p));
    p->bus = bus;
    if (ops)
        p->ops = *ops;
    pci_function_init(f, "xen-platform", XEN_PLATFORM_VENDOR_ID,
                      XEN_PLATFORM_DEVICE_ID, XEN_PLATFORM_CLASS,
                      XEN_PLATFORM_REVISION, &xen_platform_fn_ops, p);
    /* The PV drivers' lifeline: never offered for ejection (hotplug.md). */
    f->hotpluggable = false;
    /* Windows' WHQL wants a non-zero subsystem. */
    pci_set_subsystem(f, XEN_PLATFORM_VENDOR_ID, XEN_PLATFORM_DEVICE_ID);
    pci_set_interrupt_pin(f, 1);
    /* xen_platform_realize presets decoding on. */
    pci_set_word(&f->config[PCI_COMMAND], PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    /* QEMU makes the device-specific area writable (pci_init_wmask). */
    memset(&f->wmask[0x40], 0xff, PCI_CONFIG_SIZE - 0x40);

    rc = pci_function_add_bar(f, 0, XEN_PLATFORM_IO_BAR_SIZE, PCI_BAR_IO,
                              "xen-pci", &bar_io_ops, p);
    if (rc < 0)
        goto out;
    rc = pci_function_add_bar(f, 1, XEN_PLATFORM_MMIO_BAR_SIZE,
                              PCI_BAR_MEM32 | PCI_BAR_PREFETCH, "xen-mmio",
                              &bar_mmio_ops, p);
    if (rc < 0)
        goto out;
    rc = pci_register_function(pci, f, devfn);
    if (rc < 0)
        goto out;
    bus_region_init(&p->fixed_region, "xen-platform-fixed",
                    XEN_PLATFORM_IOPORT_LEN, &fixed_ops, p);
    rc = bus_map(bus, BUS_PIO, &p->fixed_region, XEN_PLATFORM_IOPORT);
    if (rc < 0)
        log_err("xen-platform: cannot map ports 0x10-0x1f: %s", bus->error);
out:
    if (rc < 0)
        xen_platform_fini(p);
    return rc;
}

void xen_platform_fini(struct xen_platform *p)
{
    bus_unmap(p->bus, &p->fixed_region);
    pci_unregister_function(&p->fn);
    /* A partial last line is still worth having. */
    log_flush(p);
}

/* --- save and restore ----------------------------------------------------- */

#define XEN_PLATFORM_SS_NAME "xen-platform"
#define XEN_PLATFORM_SS_VERSION 1

struct xen_platform_saved {
    uint8_t flags;
    uint16_t product;
    bool product_reported;
    uint32_t build;
    bool build_reported;
    bool blacklisted;
    uint16_t log_len;
    char log_line[XEN_PLATFORM_LOG_LINE_MAX];
};

int xen_platform_save(const struct xen_platform *p, struct ss_writer *w)
{
    ss_begin_section(w, XEN_PLATFORM_SS_NAME, p->fn.devfn,
                     XEN_PLATFORM_SS_VERSION);
    pci_function_save(&p->fn, w);
    ss_put_u8(w, p->flags);
    ss_put_u16(w, p->product);
    ss_put_bool(w, p->product_reported);
    ss_put_u32(w, p->build);
    ss_put_bool(w, p->build_reported);
    ss_put_bool(w, p->blacklisted);
    ss_put_u16(w, (uint16_t)p->log_len);
    ss_put_bytes(w, p->log_line, p->log_len);
    return ss_end_section(w);
}

/* Everything but the log text, which is checked as it is read. */
static void check_saved(struct ss_reader *r,
                        const struct xen_platform_saved *sv)
{
    if (sv->flags & ~XEN_PLATFORM_FLAG_ROM_LOCK)
        ss_fail(r, "flags", "0x%02x: only ROM_LOCK (0x%02x) is kept",
                sv->flags, XEN_PLATFORM_FLAG_ROM_LOCK);
    else if (!sv->product_reported && sv->product)
        ss_fail(r, "product", "%u without a product report", sv->product);
    else if (!sv->build_reported && sv->build)
        ss_fail(r, "build", "%u without a build report", sv->build);
    /* Only a build reported after its product is looked up. */
    else if (sv->blacklisted && !(sv->product_reported && sv->build_reported))
        ss_fail(r, "blacklisted", "set, but no driver was ever looked up");
}

int xen_platform_load(struct xen_platform *p, struct ss_reader *r)
{
    struct pci_function_state st, old;
    struct xen_platform_saved sv = {0};
    uint32_t version;
    int rc;

    rc = ss_open_section(r, XEN_PLATFORM_SS_NAME, p->fn.devfn,
                         XEN_PLATFORM_SS_VERSION, &version);
    if (rc < 0)
        return rc;
    pci_function_load_check(&p->fn, r, &st);
    ss_get_u8(r, "flags", &sv.flags);
    ss_get_u16(r, "product", &sv.product);
    ss_get_bool(r, "product_reported", &sv.product_reported);
    ss_get_u32(r, "build", &sv.build);
    ss_get_bool(r, "build_reported", &sv.build_reported);
    ss_get_bool(r, "blacklisted", &sv.blacklisted);
    ss_get_u16(r, "log_len", &sv.log_len);
    /* A full line is flushed at once, so a kept one is always shorter. */
    if (ss_ok(r) && sv.log_len >= XEN_PLATFORM_LOG_LINE_MAX)
        ss_fail(r, "log_len", "%u, a partial line is below %d bytes",
                sv.log_len, XEN_PLATFORM_LOG_LINE_MAX);
    ss_get_bytes(r, "log_line", sv.log_line, ss_ok(r) ? sv.log_len : 0);
    for (unsigned i = 0; ss_ok(r) && i < sv.log_len; i++)
        if (sv.log_line[i] < 0x20 || sv.log_line[i] > 0x7e)
            ss_fail(r, "log_line", "byte %u is 0x%02x: only printable ASCII "
                    "is kept", i, (uint8_t)sv.log_line[i]);
    if (ss_ok(r))
        check_saved(r, &sv);
    rc = ss_close_section(r);
    if (rc < 0)
        return rc;

    pci_function_capture(&p->fn, &old);
    rc = pci_function_restore(&p->fn, &st, r);
    if (rc < 0)
        return rc;
    if (sv.flags != p->flags && p->ops.set_rom_lock) {
        rc = p->ops.set_rom_lock(p->ops.opaque,
                                 sv.flags & XEN_PLATFORM_FLAG_ROM_LOCK);
        if (rc < 0) {
            pci_function_restore(&p->fn, &old, NULL);
            return ss_fail(r, "flags", "cannot %s the ROM area: %s",
                           sv.flags ? "lock" : "unlock", strerror(-rc));
        }
    }
    p->flags = sv.flags;
    p->product = sv.product;
    p->product_reported = sv.product_reported;
    p->build = sv.build;
    p->build_reported = sv.build_reported;
    p->blacklisted = sv.blacklisted;
    memcpy(p->log_line, sv.log_line, sv.log_len);
    p->log_len = sv.log_len;
    return 0;
}
