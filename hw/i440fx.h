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

struct i440fx {
    struct pci_function fn;
};

/* Registers the host bridge at 00:00.0. */
int i440fx_init(struct i440fx *s, struct pci_bus *pci);
/* QEMU presents the guest's RAM size, in 8 MiB units capped at 255, in
 * config byte 0x57 (old coreboot reads it). Part of the power-on state;
 * call it once the size is known, before the guest runs. */
void i440fx_set_ram_size(struct i440fx *s, uint64_t ram_bytes);
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
