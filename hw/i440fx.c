/* i440FX host bridge, function 00:00.0.
 *
 * What the guest sees is what QEMU 7.x presents under -machine xenfv
 * (hw/pci-host/i440fx.c, hw/pci/pci.c; the bytes were also checked against
 * Debian's QEMU 7.2), because Windows and firmware have seen exactly that
 * for years:
 *  - 8086:1237 (82441FX), revision 0x02, class 0x0600, header type 0: the
 *    bridge is created alone in slot 0, not as a multi-function device;
 *  - subsystem 1af4:1100, the default hw/pci/pci.c gives every function
 *    that does not name its own;
 *  - command and status 0 after reset (pci_do_device_reset clears the
 *    writable command bits; nothing sets status bits);
 *  - SMRAM = 0x02 (C_BASE_SEG "010", hard-wired on the chip), PAM all 0,
 *    and byte 0x57 holding the RAM size for old coreboot;
 *  - latency timer read-only 0: QEMU gives it no write mask.
 *
 * PAM0-6 and SMRAM are plain storage. Under Xen the legacy window
 * 0xC0000-0xFFFFF is ordinary RAM in the guest's p2m, so accesses there never
 * reach a device model and there is nothing PAM or SMRAM could steer; what
 * matters is that firmware reads back what it wrote (SeaBIOS and hvmloader
 * both touch PAM). The software machine does have a legacy window to steer:
 * it registers a PAM listener and is told the segments' modes on every
 * change.
 *
 * Reset restores the power-on bytes, as the chip does. QEMU has no reset
 * handler for them and keeps PAM/SMRAM across a reset; under Xen nobody can
 * tell, since a guest reboot rebuilds the domain and its device model. */
#include "i440fx.h"

#include <errno.h>
#include <string.h>

#include "../lib/log.h"
#include "savestate.h"

TRACE_POINT(trace_i440fx, "i440fx");

#define I440FX_VENDOR 0x8086
#define I440FX_DEVICE 0x1237
#define I440FX_REVISION 0x02
#define I440FX_CLASS 0x060000 /* host bridge */
#define I440FX_SMRAM_POWER_ON 0x02

/* Writable device-specific registers, one byte each. QEMU makes every byte
 * from 0x40 up writable; we keep that only for registers the datasheet
 * defines and the firmware uses, so the rest reads back 0 as on the chip. */
static const struct {
    uint8_t reg;
    const char *name;
} i440fx_regs[] = {
    {I440FX_PAM0 + 0, "PAM0"}, {I440FX_PAM0 + 1, "PAM1"},
    {I440FX_PAM0 + 2, "PAM2"}, {I440FX_PAM0 + 3, "PAM3"},
    {I440FX_PAM0 + 4, "PAM4"}, {I440FX_PAM0 + 5, "PAM5"},
    {I440FX_PAM0 + 6, "PAM6"}, {I440FX_SMRAM, "SMRAM"},
};

static const char *i440fx_reg_name(unsigned reg)
{
    for (size_t i = 0; i < sizeof(i440fx_regs) / sizeof(i440fx_regs[0]); i++)
        if (i440fx_regs[i].reg == reg)
            return i440fx_regs[i].name;
    return NULL;
}

static void i440fx_pam_notify(struct i440fx *s)
{
    uint8_t mode[I440FX_PAM_SEGMENTS];
    const uint8_t *pam = &s->fn.config[I440FX_PAM0];

    if (!s->pam.changed)
        return;
    for (unsigned seg = 0; seg < 12; seg++) {
        uint8_t byte = pam[1 + seg / 2];

        mode[seg] = (seg & 1 ? byte >> 4 : byte) & (I440FX_PAM_RE | I440FX_PAM_WE);
    }
    for (unsigned seg = 12; seg < I440FX_PAM_SEGMENTS; seg++)
        mode[seg] = (pam[0] >> 4) & (I440FX_PAM_RE | I440FX_PAM_WE);
    s->pam.changed(s->pam.opaque, mode);
}

void i440fx_set_pam_listener(struct i440fx *s,
                             const struct i440fx_pam_listener *l)
{
    s->pam = l ? *l : (struct i440fx_pam_listener){0};
    i440fx_pam_notify(s);
}

static void i440fx_config_write(struct pci_function *f, unsigned reg,
                                uint32_t value, unsigned size)
{
    struct i440fx *s = f->opaque;

    for (unsigned i = 0; i < size; i++) {
        const char *name = i440fx_reg_name(reg + i);

        if (name)
            trace(trace_i440fx, "%s <- 0x%02x (now 0x%02x)", name,
                  (value >> (8 * i)) & 0xff, f->config[reg + i]);
    }
    if (reg < I440FX_PAM0 + I440FX_PAM_COUNT && reg + size > I440FX_PAM0)
        i440fx_pam_notify(s);
}

static void i440fx_function_reset(struct pci_function *f)
{
    i440fx_pam_notify(f->opaque);
}

static const struct pci_function_ops i440fx_ops = {
    .config_write = i440fx_config_write,
    .reset = i440fx_function_reset,
};

int i440fx_init(struct i440fx *s, struct pci_bus *pci)
{
    struct pci_function *f = &s->fn;

    s->pam = (struct i440fx_pam_listener){0};
    pci_function_init(f, "i440FX", I440FX_VENDOR, I440FX_DEVICE, I440FX_CLASS,
                      I440FX_REVISION, &i440fx_ops, s);
    f->hotpluggable = false;
    pci_set_subsystem(f, PCI_SUBSYSTEM_VENDOR_QEMU, PCI_SUBSYSTEM_ID_QEMU);
    f->config[I440FX_SMRAM] = I440FX_SMRAM_POWER_ON;
    for (size_t i = 0; i < sizeof(i440fx_regs) / sizeof(i440fx_regs[0]); i++)
        f->wmask[i440fx_regs[i].reg] = 0xff;
    return pci_register_function(pci, f, I440FX_DEVFN);
}

void i440fx_set_ram_size(struct i440fx *s, uint64_t ram_bytes)
{
    uint64_t units = ram_bytes >> 23; /* 8 MiB */
    uint8_t v = units > 255 ? 255 : (uint8_t)units;

    s->fn.config[I440FX_DRAMT] = v;
    s->fn.power_on[I440FX_DRAMT] = v;
}

void i440fx_reset(struct i440fx *s) { pci_function_reset(&s->fn); }

void i440fx_fini(struct i440fx *s) { pci_unregister_function(&s->fn); }

/* --- save and restore ----------------------------------------------------- */

#define I440FX_SS_NAME "i440fx"
#define I440FX_SS_VERSION 1

int i440fx_save(const struct i440fx *s, struct ss_writer *w)
{
    ss_begin_section(w, I440FX_SS_NAME, s->fn.devfn, I440FX_SS_VERSION);
    pci_function_save(&s->fn, w);
    return ss_end_section(w);
}

int i440fx_load(struct i440fx *s, struct ss_reader *r)
{
    struct pci_function_state st;
    uint32_t version;
    int rc;

    rc = ss_open_section(r, I440FX_SS_NAME, s->fn.devfn, I440FX_SS_VERSION,
                         &version);
    if (rc < 0)
        return rc;
    pci_function_load_check(&s->fn, r, &st);
    rc = ss_close_section(r);
    if (rc < 0)
        return rc;
    /* Under Xen PAM and SMRAM steer nothing (see the top of this file);
     * the software machine's window follows the restored bytes. */
    rc = pci_function_restore(&s->fn, &st, r);
    if (rc == 0)
        i440fx_pam_notify(s);
    return rc;
}
