#include "pci.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "../lib/log.h"
#include "savestate.h"

TRACE_POINT(trace_pci_config, "pci_config");
TRACE_POINT(trace_pci_bar, "pci_bar");

void pci_bus_init(struct pci_bus *pci, struct bus *bus)
{
    memset(pci, 0, sizeof(*pci));
    pci->bus = bus;
}

void pci_function_init(struct pci_function *f, const char *name,
                       uint16_t vendor, uint16_t device, uint32_t class_code,
                       uint8_t revision, const struct pci_function_ops *ops,
                       void *opaque)
{
    memset(f, 0, sizeof(*f));
    f->name = name;
    f->id = "";
    f->ops = ops;
    f->opaque = opaque;
    f->hotpluggable = true;
    pci_set_word(&f->config[PCI_VENDOR_ID], vendor);
    pci_set_word(&f->config[PCI_DEVICE_ID], device);
    f->config[PCI_REVISION_ID] = revision;
    f->config[PCI_CLASS_PROG] = (uint8_t)class_code;
    pci_set_word(&f->config[PCI_CLASS_DEVICE], (uint16_t)(class_code >> 8));

    pci_set_word(&f->wmask[PCI_COMMAND],
                 PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                     PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
    /* Error bits: parity, signalled/received aborts, SERR, parity error. */
    pci_set_word(&f->w1cmask[PCI_STATUS], 0xf900);
    /* The latency timer stays read-only (zero), as on QEMU's devices. */
    f->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    f->wmask[PCI_INTERRUPT_LINE] = 0xff;
}

void pci_set_subsystem(struct pci_function *f, uint16_t vendor, uint16_t device)
{
    pci_set_word(&f->config[PCI_SUBSYSTEM_VENDOR_ID], vendor);
    pci_set_word(&f->config[PCI_SUBSYSTEM_ID], device);
}

void pci_set_interrupt_pin(struct pci_function *f, unsigned pin)
{
    f->config[PCI_INTERRUPT_PIN] = (uint8_t)pin;
}

static unsigned bar_reg(unsigned idx)
{
    return idx == PCI_ROM_SLOT ? PCI_ROM_ADDRESS : PCI_BASE_ADDRESS_0 + 4 * idx;
}

int pci_function_add_bar(struct pci_function *f, unsigned idx, uint64_t size,
                         unsigned flags, const char *region_name,
                         const struct bus_region_ops *ops, void *opaque)
{
    struct pci_bar *bar;
    uint64_t mask;
    unsigned reg;
    bool is64 = !(flags & PCI_BAR_IO) && (flags & PCI_BAR_MEM64);

    if (idx > PCI_ROM_SLOT || (is64 && idx >= PCI_NUM_BARS - 1) ||
        (idx == PCI_ROM_SLOT && flags != PCI_BAR_MEM32))
        return -EINVAL;
    if (size == 0 || (size & (size - 1)) ||
        size < (flags & PCI_BAR_IO ? 4u : idx == PCI_ROM_SLOT ? 2048u : 16u) ||
        (flags & PCI_BAR_IO && size > 0x10000) || (!is64 && size > (1ull << 31)))
        return -EINVAL;
    bar = &f->bar[idx];
    if (bar->size)
        return -EBUSY;
    bar->size = size;
    bar->flags = flags;
    bus_region_init(&bar->region, region_name, size, ops, opaque);

    reg = bar_reg(idx);
    mask = ~(size - 1);
    if (idx == PCI_ROM_SLOT) {
        pci_set_long(&f->wmask[reg], (uint32_t)mask | PCI_ROM_ADDRESS_ENABLE);
    } else {
        /* Only bits 0-1 of an I/O BAR are type bits; a memory BAR has four.
         * Masking four on an I/O BAR would make a 4- or 8-port BAR size as
         * 16 ports. */
        pci_set_long(&f->config[reg], flags);
        pci_set_long(&f->wmask[reg],
                     (uint32_t)mask & (flags & PCI_BAR_IO ? ~0x3u : ~0xfu));
        if (is64)
            pci_set_long(&f->wmask[reg + 4], (uint32_t)(mask >> 32));
    }
    return 0;
}

/* Keeps function 0's multi-function bit in step with the slot's contents,
 * whatever order functions are added in (libxl adds them 7 down to 0). */
static void update_multifunction(struct pci_bus *pci, unsigned slot)
{
    struct pci_function *f0 = pci->functions[PCI_DEVFN(slot, 0)];
    bool multi = false;

    if (!f0)
        return;
    for (unsigned fn = 1; fn < 8; fn++)
        multi |= pci->functions[PCI_DEVFN(slot, fn)] != NULL;
    if (multi)
        f0->config[PCI_HEADER_TYPE] |= PCI_HEADER_TYPE_MULTI_FUNCTION;
    else
        f0->config[PCI_HEADER_TYPE] &= ~PCI_HEADER_TYPE_MULTI_FUNCTION;
    f0->power_on[PCI_HEADER_TYPE] = f0->config[PCI_HEADER_TYPE];
}

static uint64_t cfg_region_read(void *opaque, uint64_t off, unsigned size)
{
    return pci_config_read(opaque, (unsigned)off, size);
}

static void cfg_region_write(void *opaque, uint64_t off, uint64_t value,
                             unsigned size)
{
    pci_config_write(opaque, (unsigned)off, (uint32_t)value, size);
}

static const struct bus_region_ops cfg_region_ops = {
    .read = cfg_region_read,
    .write = cfg_region_write,
    .max_access = 4,
};

int pci_register_function(struct pci_bus *pci, struct pci_function *f,
                          uint8_t devfn)
{
    int rc;

    /* Re-initialising the mapped config region below would leave a stale
     * pointer to it in the bus table. */
    if (f->registered) {
        log_err("pci: '%s' is already at 00:%02x.%x", f->name,
                PCI_SLOT(f->devfn), PCI_FUNC(f->devfn));
        return -EBUSY;
    }
    if (pci->functions[devfn]) {
        log_err("pci: cannot place '%s' at 00:%02x.%x: '%s' is there", f->name,
                PCI_SLOT(devfn), PCI_FUNC(devfn), pci->functions[devfn]->name);
        return -EEXIST;
    }
    f->bus = pci;
    f->devfn = devfn;
    bus_region_init(&f->cfg_region, f->name, PCI_CONFIG_SPACE_WINDOW,
                    &cfg_region_ops, f);
    rc = bus_map(pci->bus, BUS_PCI_CFG, &f->cfg_region,
                 BUS_PCI_CFG_ADDR(devfn, 0));
    if (rc < 0)
        return rc;
    memcpy(f->power_on, f->config, sizeof(f->config));
    pci->functions[devfn] = f;
    f->registered = true;
    update_multifunction(pci, PCI_SLOT(devfn));
    return 0;
}

static void unmap_bars(struct pci_function *f)
{
    for (unsigned i = 0; i <= PCI_ROM_SLOT; i++)
        bus_unmap(f->bus->bus, &f->bar[i].region);
}

void pci_unregister_function(struct pci_function *f)
{
    struct pci_bus *pci = f->bus;

    if (!f->registered)
        return;
    unmap_bars(f);
    bus_unmap(pci->bus, &f->cfg_region);
    pci->functions[f->devfn] = NULL;
    f->registered = false;
    update_multifunction(pci, PCI_SLOT(f->devfn));
}

struct pci_function *pci_find_function(const struct pci_bus *pci, uint8_t devfn)
{
    return pci->functions[devfn];
}

/* The address a BAR decodes at, or 0 when it must not decode: decoding off
 * in the command register, BAR unprogrammed, or an address that is being
 * sized or would run off the end of its space. */
static uint64_t bar_decode_address_in(const struct pci_function *f,
                                      const uint8_t *config, unsigned idx)
{
    const struct pci_bar *bar = &f->bar[idx];
    uint16_t cmd = pci_get_word(&config[PCI_COMMAND]);
    unsigned reg = bar_reg(idx);
    uint64_t addr, last;

    if (bar->flags & PCI_BAR_IO) {
        if (!(cmd & PCI_COMMAND_IO))
            return 0;
        addr = pci_get_long(&config[reg]) & ~(bar->size - 1) & ~3ull;
        last = addr + bar->size - 1;
        return addr && last < BUS_PIO_LIMIT ? addr : 0;
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
    /* A 64-bit BAR ending at the very top is what sizing leaves behind. */
    if (!addr || last < addr || last == UINT64_MAX)
        return 0;
    /* A 32-bit BAR reaching 4 GiB - 1 is what sizing leaves behind. */
    if (!(bar->flags & PCI_BAR_MEM64) && last >= 0xffffffffull)
        return 0;
    return addr;
}

static uint64_t bar_decode_address(const struct pci_function *f, unsigned idx)
{
    return bar_decode_address_in(f, f->config, idx);
}

static void update_mappings(struct pci_function *f)
{
    for (unsigned i = 0; i <= PCI_ROM_SLOT; i++) {
        struct pci_bar *bar = &f->bar[i];
        enum bus_space space = bar->flags & PCI_BAR_IO ? BUS_PIO : BUS_MMIO;
        uint64_t addr;

        if (!bar->size)
            continue;
        addr = bar_decode_address(f, i);
        if (bar->region.mapped && bar->addr == addr)
            continue;
        if (bar->region.mapped) {
            trace(trace_pci_bar, "%s BAR%u unmapped from 0x%" PRIx64, f->name,
                  i, bar->addr);
            bus_unmap(f->bus->bus, &bar->region);
        }
        if (!addr)
            continue;
        if (bus_map(f->bus->bus, space, &bar->region, addr) < 0) {
            /* The guest placed it over something else: it stays off. */
            log_ratelimited(LOG_WARN, "pci: %s BAR%u at 0x%" PRIx64
                            " not decoded: %s", f->name, i, addr,
                            f->bus->bus->error);
            continue;
        }
        bar->addr = addr;
        trace(trace_pci_bar, "%s BAR%u mapped at 0x%" PRIx64, f->name, i, addr);
    }
}

uint32_t pci_config_read(struct pci_function *f, unsigned reg, unsigned size)
{
    uint32_t value = 0;

    if (reg >= PCI_CONFIG_SIZE && reg < PCI_CONFIG_SPACE_WINDOW && size &&
        size <= 4 && reg + size <= PCI_CONFIG_SPACE_WINDOW && f->ext_ops &&
        f->ext_ops->read)
        return f->ext_ops->read(f, reg, size);
    if (size == 0 || size > 4 || reg >= PCI_CONFIG_SIZE)
        return 0xffffffffu;
    for (unsigned i = 0; i < size; i++)
        value |= (uint32_t)(reg + i < PCI_CONFIG_SIZE ? f->config[reg + i]
                                                      : 0xff)
                 << (8 * i);
    if (f->ops && f->ops->config_read)
        value = f->ops->config_read(f, reg, size, value);
    trace(trace_pci_config, "%s read [0x%02x]/%u = 0x%x", f->name, reg, size,
          value);
    return value;
}

static bool touches(unsigned reg, unsigned size, unsigned start, unsigned end)
{
    return reg < end && reg + size > start;
}

void pci_config_write(struct pci_function *f, unsigned reg, uint32_t value,
                      unsigned size)
{
    if (reg >= PCI_CONFIG_SIZE && reg < PCI_CONFIG_SPACE_WINDOW && size &&
        size <= 4 && reg + size <= PCI_CONFIG_SPACE_WINDOW && f->ext_ops &&
        f->ext_ops->write) {
        f->ext_ops->write(f, reg, value, size);
        return;
    }
    if (size == 0 || size > 4 || reg >= PCI_CONFIG_SIZE)
        return;
    if (reg + size > PCI_CONFIG_SIZE)
        size = PCI_CONFIG_SIZE - reg;
    trace(trace_pci_config, "%s write [0x%02x]/%u = 0x%x", f->name, reg, size,
          value);
    for (unsigned i = 0; i < size; i++) {
        unsigned r = reg + i;
        uint8_t b = (uint8_t)(value >> (8 * i));

        f->config[r] = (uint8_t)((f->config[r] & ~f->wmask[r]) |
                                 (b & f->wmask[r]));
        f->config[r] &= (uint8_t)~(b & f->w1cmask[r]);
    }
    if (touches(reg, size, PCI_COMMAND, PCI_COMMAND + 2) ||
        touches(reg, size, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_0 + 24) ||
        touches(reg, size, PCI_ROM_ADDRESS, PCI_ROM_ADDRESS + 4))
        update_mappings(f);
    if (f->ops && f->ops->config_write)
        f->ops->config_write(f, reg, value, size);
}

void pci_function_reset(struct pci_function *f)
{
    memcpy(f->config, f->power_on, sizeof(f->config));
    if (f->registered)
        unmap_bars(f);
    if (f->ops && f->ops->reset)
        f->ops->reset(f);
}

void pci_bus_reset(struct pci_bus *pci)
{
    for (unsigned devfn = 0; devfn < 256; devfn++)
        if (pci->functions[devfn])
            pci_function_reset(pci->functions[devfn]);
}

static int hex_field(const char *s, unsigned digits, unsigned *out)
{
    unsigned v = 0;

    for (unsigned i = 0; i < digits; i++) {
        char c = s[i];

        if (c >= '0' && c <= '9')
            v = v * 16 + (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v = v * 16 + (unsigned)(c - 'A' + 10);
        else
            return -EINVAL;
    }
    *out = v;
    return 0;
}

int pci_host_addr_parse(const char *s, struct pci_host_addr *out,
                        const char **end)
{
    unsigned seg = 0, bus, dev, fn;
    size_t len;

    if (!s)
        return -EINVAL;
    len = strlen(s);
    /* "SSSS:" is optional: with it the address is 12 characters. */
    if (len >= 12 && s[4] == ':') {
        if (hex_field(s, 4, &seg) < 0)
            return -EINVAL;
        s += 5;
        len -= 5;
    }
    if (len < 7 || s[2] != ':' || s[5] != '.' || hex_field(s, 2, &bus) < 0 ||
        hex_field(s + 3, 2, &dev) < 0 || hex_field(s + 6, 1, &fn) < 0 ||
        dev > 31 || fn > 7)
        return -EINVAL;
    if (end)
        *end = s + 7;
    else if (s[7])
        return -EINVAL;
    *out = (struct pci_host_addr){(uint16_t)seg, (uint8_t)bus, (uint8_t)dev,
                                  (uint8_t)fn};
    return 0;
}

/* --- configuration mechanism #1 ----------------------------------------- */

static uint64_t config_address_read(void *opaque, uint64_t off, unsigned size)
{
    struct pci_host *host = opaque;

    if (off == 0 && size == 4)
        return host->config_address;
    if (off == 1 && size == 1 && host->cf9_read)
        return host->cf9_read(host->cf9_opaque);
    return bus_size_mask(size);
}

static void config_address_write(void *opaque, uint64_t off, uint64_t value,
                                 unsigned size)
{
    struct pci_host *host = opaque;

    if (off == 0 && size == 4)
        host->config_address = (uint32_t)value;
    else if (off == 1 && size == 1 && host->cf9_write)
        host->cf9_write(host->cf9_opaque, (uint8_t)value);
    /* Other narrow accesses are not config cycles on an i440FX. */
}

/* SBDF-space address for the data port, or ~0 when no cycle is generated
 * (enable bit clear, or a bus other than 0). */
static uint64_t config_data_target(const struct pci_host *host, uint64_t off)
{
    uint32_t ca = host->config_address;
    unsigned bus_nr = (ca >> 16) & 0xff, devfn = (ca >> 8) & 0xff;

    if (!(ca & 0x80000000u) || bus_nr != 0)
        return ~0ull;
    return BUS_PCI_CFG_ADDR(devfn, (ca & 0xfc) | off);
}

static uint64_t config_data_read(void *opaque, uint64_t off, unsigned size)
{
    struct pci_host *host = opaque;
    uint64_t target = config_data_target(host, off);

    if (target == ~0ull)
        return bus_size_mask(size);
    return bus_read(host->bus, BUS_PCI_CFG, target, size);
}

static void config_data_write(void *opaque, uint64_t off, uint64_t value,
                              unsigned size)
{
    struct pci_host *host = opaque;
    uint64_t target = config_data_target(host, off);

    if (target != ~0ull)
        bus_write(host->bus, BUS_PCI_CFG, target, value, size);
}

static const struct bus_region_ops config_address_ops = {
    .read = config_address_read,
    .write = config_address_write,
    .max_access = 4,
    .refuse_wide = true,
};

static const struct bus_region_ops config_data_ops = {
    .read = config_data_read,
    .write = config_data_write,
    .max_access = 4,
    .refuse_wide = true,
};

int pci_host_init(struct pci_host *host, struct bus *bus)
{
    int rc;

    memset(host, 0, sizeof(*host));
    host->bus = bus;
    bus_region_init(&host->addr_region, "pci-config-address", 4,
                    &config_address_ops, host);
    bus_region_init(&host->data_region, "pci-config-data", 4, &config_data_ops,
                    host);
    rc = bus_map(bus, BUS_PIO, &host->addr_region, 0xcf8);
    if (rc < 0)
        goto out;
    rc = bus_map(bus, BUS_PIO, &host->data_region, 0xcfc);
    if (rc < 0)
        bus_unmap(bus, &host->addr_region);
out:
    return rc;
}

void pci_host_fini(struct pci_host *host)
{
    bus_unmap(host->bus, &host->data_region);
    bus_unmap(host->bus, &host->addr_region);
}

void pci_host_reset(struct pci_host *host) { host->config_address = 0; }

/* --- save and restore --------------------------------------------------- */

#define PCI_HOST_SS_NAME "pci-host"
#define PCI_HOST_SS_VERSION 1

/* Names for the header bytes a refused stream most likely trips over. */
static const char *config_byte_name(unsigned reg)
{
    static const struct {
        uint8_t start, len;
        const char *name;
    } names[] = {
        {PCI_VENDOR_ID, 2, "vendor ID"},
        {PCI_DEVICE_ID, 2, "device ID"},
        {PCI_COMMAND, 2, "command"},
        {PCI_STATUS, 2, "status"},
        {PCI_REVISION_ID, 1, "revision"},
        {PCI_CLASS_PROG, 3, "class code"},
        {PCI_CACHE_LINE_SIZE, 1, "cache line size"},
        {PCI_LATENCY_TIMER, 1, "latency timer"},
        {PCI_HEADER_TYPE, 1, "header type"},
        {PCI_BIST, 1, "BIST"},
        {PCI_BASE_ADDRESS_0, 24, "BAR"},
        {PCI_SUBSYSTEM_VENDOR_ID, 4, "subsystem"},
        {PCI_ROM_ADDRESS, 4, "expansion ROM"},
        {PCI_CAPABILITY_LIST, 1, "capability pointer"},
        {PCI_INTERRUPT_LINE, 1, "interrupt line"},
        {PCI_INTERRUPT_PIN, 1, "interrupt pin"},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (reg >= names[i].start && reg < names[i].start + names[i].len)
            return names[i].name;
    return reg < 0x40 ? "header" : "device-specific";
}

int pci_function_save(const struct pci_function *f, struct ss_writer *w)
{
    struct pci_function_state st;

    pci_function_capture(f, &st);
    ss_put_bytes(w, st.config, sizeof(st.config));
    return ss_put_u8(w, st.bars_mapped);
}

int pci_function_load_check(const struct pci_function *f,
                            struct ss_reader *r,
                            struct pci_function_state *st)
{
    const uint8_t *cfg = st->config;

    memset(st, 0, sizeof(*st));
    ss_get_bytes(r, "config", st->config, sizeof(st->config));
    ss_get_u8(r, "bars_mapped", &st->bars_mapped);
    if (!ss_ok(r))
        return r->error;
    if (pci_get_word(&cfg[PCI_VENDOR_ID]) !=
            pci_get_word(&f->power_on[PCI_VENDOR_ID]) ||
        pci_get_word(&cfg[PCI_DEVICE_ID]) !=
            pci_get_word(&f->power_on[PCI_DEVICE_ID]))
        return ss_fail(r, "config", "state of PCI device %04x:%04x, but "
                       "00:%02x.%x is '%s' (%04x:%04x)",
                       pci_get_word(&cfg[PCI_VENDOR_ID]),
                       pci_get_word(&cfg[PCI_DEVICE_ID]), PCI_SLOT(f->devfn),
                       PCI_FUNC(f->devfn), f->name,
                       pci_get_word(&f->power_on[PCI_VENDOR_ID]),
                       pci_get_word(&f->power_on[PCI_DEVICE_ID]));
    for (unsigned i = 0; i < PCI_CONFIG_SIZE; i++) {
        uint8_t fixed = (uint8_t)~(f->wmask[i] | f->w1cmask[i]);

        if ((cfg[i] ^ f->power_on[i]) & fixed)
            return ss_fail(r, "config", "byte 0x%02x (%s) is 0x%02x, but on "
                           "'%s' the guest cannot change it from 0x%02x",
                           i, config_byte_name(i), cfg[i], f->name,
                           f->power_on[i]);
    }
    if (st->bars_mapped >> (PCI_ROM_SLOT + 1))
        return ss_fail(r, "bars_mapped", "0x%02x names BARs that do not "
                       "exist", st->bars_mapped);
    for (unsigned i = 0; i <= PCI_ROM_SLOT; i++) {
        if (!(st->bars_mapped & (1u << i)))
            continue;
        if (!f->bar[i].size)
            return ss_fail(r, "bars_mapped", "BAR%u of '%s' is not "
                           "implemented", i, f->name);
        if (!bar_decode_address_in(f, cfg, i))
            return ss_fail(r, "bars_mapped", "BAR%u of '%s' marked decoding "
                           "but its configuration does not enable it", i,
                           f->name);
    }
    return 0;
}

void pci_function_capture(const struct pci_function *f,
                          struct pci_function_state *st)
{
    memcpy(st->config, f->config, sizeof(st->config));
    st->bars_mapped = 0;
    for (unsigned i = 0; i <= PCI_ROM_SLOT; i++)
        if (f->bar[i].region.mapped)
            st->bars_mapped |= (uint8_t)(1u << i);
}

/* Makes the BARs in mask (and only those) decode at the address f->config
 * gives them. Unmaps first, so that a BAR can take the range another BAR of
 * the same function is leaving. Returns the failing BAR's bus_map error. */
static int apply_bar_mappings(struct pci_function *f, uint8_t mask,
                              unsigned *failed)
{
    for (unsigned i = 0; i <= PCI_ROM_SLOT; i++) {
        struct pci_bar *bar = &f->bar[i];
        uint64_t want = mask & (1u << i) ? bar_decode_address(f, i) : 0;

        if (bar->region.mapped && bar->addr != want)
            bus_unmap(f->bus->bus, &bar->region);
    }
    for (unsigned i = 0; i <= PCI_ROM_SLOT; i++) {
        struct pci_bar *bar = &f->bar[i];
        uint64_t want;
        int rc;

        if (!(mask & (1u << i)) || bar->region.mapped)
            continue;
        want = bar_decode_address(f, i);
        rc = bus_map(f->bus->bus, bar->flags & PCI_BAR_IO ? BUS_PIO : BUS_MMIO,
                     &bar->region, want);
        if (rc < 0) {
            *failed = i;
            return rc;
        }
        bar->addr = want;
    }
    return 0;
}

int pci_function_restore(struct pci_function *f,
                         const struct pci_function_state *st,
                         struct ss_reader *r)
{
    struct pci_function_state old;
    char why[sizeof(f->bus->bus->error)];
    unsigned failed = 0, again;
    uint64_t addr;
    int rc;

    if (!f->registered)
        return r ? ss_fail(r, "config", "'%s' is not on a bus", f->name)
                 : -ENODEV;
    pci_function_capture(f, &old);
    memcpy(f->config, st->config, sizeof(f->config));
    rc = apply_bar_mappings(f, st->bars_mapped, &failed);
    if (rc == 0)
        return 0;
    snprintf(why, sizeof(why), "%s", f->bus->bus->error);
    addr = bar_decode_address(f, failed);
    /* The old ranges were ours a moment ago and nothing else ran since, so
     * going back cannot fail. */
    memcpy(f->config, old.config, sizeof(f->config));
    if (apply_bar_mappings(f, old.bars_mapped, &again) < 0)
        log_err("pci: '%s' lost BAR%u while undoing a restore: %s", f->name,
                again, f->bus->bus->error);
    if (r)
        return ss_fail(r, "bars_mapped", "'%s' BAR%u at 0x%" PRIx64
                       " cannot decode: %s", f->name, failed, addr, why);
    return -EINVAL;
}

void pci_bus_unmap_bars(struct pci_bus *pci)
{
    for (unsigned devfn = 0; devfn < 256; devfn++)
        if (pci->functions[devfn])
            unmap_bars(pci->functions[devfn]);
}

int pci_host_save(const struct pci_host *host, struct ss_writer *w)
{
    ss_begin_section(w, PCI_HOST_SS_NAME, 0xcf8, PCI_HOST_SS_VERSION);
    ss_put_u32(w, host->config_address);
    return ss_end_section(w);
}

int pci_host_load(struct pci_host *host, struct ss_reader *r)
{
    uint32_t version, config_address;
    int rc;

    rc = ss_open_section(r, PCI_HOST_SS_NAME, 0xcf8, PCI_HOST_SS_VERSION,
                         &version);
    if (rc < 0)
        return rc;
    /* Every bit of CONFIG_ADDRESS reads back as written. */
    ss_get_u32(r, "config_address", &config_address);
    rc = ss_close_section(r);
    if (rc < 0)
        return rc;
    host->config_address = config_address;
    return 0;
}
