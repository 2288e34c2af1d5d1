/* i440FX host bridge (82441FX PCI and Memory Controller), PCI function
 * 00:00.0. The configuration mechanism it decodes (0xCF8/0xCFC) is
 * struct pci_host in pci.h; this is the function guests see on the bus. */
#ifndef XENDM_HW_I440FX_H
#define XENDM_HW_I440FX_H

#include <stdint.h>

#include "pci.h"

#define I440FX_DEVFN PCI_DEVFN(0, 0)

/* Device-specific registers (82441FX datasheet 290549, section 3). */
enum {
    I440FX_DRAMT = 0x57,   /* QEMU stores the RAM size here, see below */
    I440FX_PAM0 = 0x59,    /* PAM0..PAM6: 0x59-0x5f */
    I440FX_PAM_COUNT = 7,
    I440FX_SMRAM = 0x72,
};

/* PAM attribute bits, per nibble (82441FX datasheet 290549, 3.2.18):
 * RE sends reads of the segment to DRAM, WE sends writes there; clear, the
 * access goes to PCI (where the BIOS ROM answers). */
#define I440FX_PAM_RE 0x1
#define I440FX_PAM_WE 0x2
/* The 16 KiB segments PAM steers: 0xC0000 + n * 16 KiB for n = 0..15
 * (PAM0's low nibble is reserved, its high nibble covers all of
 * 0xF0000-0xFFFFF, i.e. segments 12-15). */
#define I440FX_PAM_SEGMENTS 16

/* Told the RE/WE bits of every segment whenever PAM may have changed
 * (a write to PAM0-6, a reset, a load). */
struct i440fx_pam_listener {
    void (*changed)(void *opaque, const uint8_t mode[I440FX_PAM_SEGMENTS]);
    void *opaque;
};

struct i440fx {
    struct pci_function fn;
    struct i440fx_pam_listener pam;
};

/* Registers the host bridge at 00:00.0. */
int i440fx_init(struct i440fx *s, struct pci_bus *pci);
/* QEMU presents the guest's RAM size, in 8 MiB units capped at 255, in
 * config byte 0x57 (old coreboot reads it). Part of the power-on state;
 * call it once the size is known, before the guest runs. */
void i440fx_set_ram_size(struct i440fx *s, uint64_t ram_bytes);
/* Who steers the legacy window (the software machine's vCPU; nobody under
 * Xen). Called at once with the current state. NULL removes it. */
void i440fx_set_pam_listener(struct i440fx *s,
                             const struct i440fx_pam_listener *l);
/* Restores the power-on configuration (pci_function_reset). */
void i440fx_reset(struct i440fx *s);
void i440fx_fini(struct i440fx *s);

struct ss_writer;
struct ss_reader;
/* Section "i440fx", instance = devfn: the configuration space (PAM, SMRAM;
 * the RAM size byte must match, it is read-only). */
int i440fx_save(const struct i440fx *s, struct ss_writer *w);
int i440fx_load(struct i440fx *s, struct ss_reader *r);

#endif
