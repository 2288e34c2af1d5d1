/* PIIX3 IDE controller (82371SB function 1) at 00:01.1: the PCI function,
 * its IDE timing registers and the bus-master register block behind BAR4.
 *
 * The ATA channels themselves (0x1F0/0x3F6, 0x170/0x376) and the DMA engine
 * come with the disk work; until then the bus-master registers hold what the
 * guest writes and starting a transfer moves no data. */
#ifndef XENDM_HW_PIIX_IDE_H
#define XENDM_HW_PIIX_IDE_H

#include <stdint.h>

#include "pci.h"

#define PIIX_IDE_DEVFN PCI_DEVFN(1, 1)
#define PIIX_IDE_BM_BAR 4
#define PIIX_IDE_BM_SIZE 16 /* two channels, 8 bytes each */

/* Device-specific configuration registers (82371SB datasheet 290550,
 * section 2.3). */
enum {
    PIIX_IDE_IDETIM_PRI = 0x40, /* primary channel timing, 16 bit */
    PIIX_IDE_IDETIM_SEC = 0x42, /* secondary channel timing, 16 bit */
    PIIX_IDE_SIDETIM = 0x44,    /* slave IDE timing */
};

#define PIIX_IDE_IDETIM_IDE 0x8000 /* IDE decode enable */

/* Bus-master IDE registers, offsets within a channel's 8 bytes. */
enum {
    PIIX_IDE_BMICOM = 0x0, /* command */
    PIIX_IDE_BMISTA = 0x2, /* status */
    PIIX_IDE_BMIDTP = 0x4, /* descriptor table pointer, 32 bit */
};

#define PIIX_IDE_BMICOM_SSBM 0x01  /* start/stop bus master */
#define PIIX_IDE_BMICOM_RWCON 0x08 /* 1 = bus master writes memory */
#define PIIX_IDE_BMISTA_BMIDEA 0x01 /* bus master active (read-only) */
#define PIIX_IDE_BMISTA_ERR 0x02    /* DMA error, write 1 to clear */
#define PIIX_IDE_BMISTA_IDEINTS 0x04 /* interrupt, write 1 to clear */
#define PIIX_IDE_BMISTA_DMA0CAP 0x20 /* drive 0 DMA capable */
#define PIIX_IDE_BMISTA_DMA1CAP 0x40 /* drive 1 DMA capable */

struct piix_ide_bm {
    uint8_t cmd;      /* BMICOM */
    uint8_t status;   /* BMISTA */
    uint32_t prd;     /* BMIDTP */
};

struct piix_ide {
    struct pci_function fn;
    struct piix_ide_bm bm[2]; /* primary, secondary */
};

/* Registers the function at 00:01.1 (making slot 1 multi-function). */
int piix_ide_init(struct piix_ide *s, struct pci_bus *pci);
void piix_ide_fini(struct piix_ide *s);
/* Restores the power-on state (pci_function_reset): configuration, BAR4
 * unmapped, bus-master registers cleared. */
void piix_ide_reset(struct piix_ide *s);

struct ss_writer;
struct ss_reader;
/* Section "piix-ide", instance = devfn: configuration space and both
 * channels' bus-master registers. */
int piix_ide_save(const struct piix_ide *s, struct ss_writer *w);
int piix_ide_load(struct piix_ide *s, struct ss_reader *r);

#endif
