/* PIIX3 IDE, function 00:01.1.
 *
 * Identity and power-on values as QEMU 7.x presents them under
 * -machine xenfv (hw/ide/piix.c "piix3-ide"/"piix3-ide-xen", hw/pci/pci.c):
 *  - 8086:7010 (82371SB function 1), revision 0, class 0x0101 with
 *    programming interface 0x80: bus-master capable, both channels fixed in
 *    legacy (compatibility) mode, so no BAR0-3 and no interrupt pin;
 *  - subsystem 1af4:1100 (hw/pci/pci.c's default);
 *  - command 0, status 0x0280 (DEVSEL medium, fast back-to-back), as
 *    piix_ide_reset() sets them; BAR4 (BMIBA) reads 0x00000001, an
 *    unassigned 16-byte I/O BAR;
 *  - IDETIM/SIDETIM 0 until firmware enables decode (hvmloader writes
 *    IDETIM = 0x8000 on both channels, xen-dm-interfaces.md §6.2);
 *  - latency timer read-only 0 (QEMU gives it no write mask); of the
 *    device-specific bytes only IDETIM and SIDETIM are writable (QEMU lets
 *    every byte from 0x40 up be written; PIIX3 defines nothing else there).
 * Reset restores all of it. QEMU leaves IDETIM/SIDETIM as the guest set
 * them; under Xen a guest reboot rebuilds the domain, so only the software
 * machine can tell, and it gets the chip's behaviour.
 *
 * Bus-master registers (BAR4) follow QEMU's bmdma_read/bmdma_write and
 * bmdma_addr_*: BMICOM and BMISTA are byte registers (wider accesses read
 * all-ones and are ignored), the reserved bytes 1 and 3 read 0xff, BMIDTP
 * takes any width and drops address bits 1:0. Setting SSBM marks the
 * channel active (BMISTA bit 0) and clearing it stops the channel, exactly
 * as the registers behave while no ATA command is pending. There is no ATA
 * engine yet (it comes with the disk work): starting a transfer moves no
 * data and raises no interrupt. */
#include "piix_ide.h"

#include <errno.h>
#include <string.h>

#include "../lib/log.h"
#include "savestate.h"

TRACE_POINT(trace_piix_ide, "piix_ide");

#define PIIX_IDE_VENDOR 0x8086
#define PIIX_IDE_DEVICE 0x7010
#define PIIX_IDE_REVISION 0x00
#define PIIX_IDE_CLASS 0x010180 /* IDE, prog-if 0x80 */
#define PIIX_IDE_STATUS_POWER_ON 0x0280

#define BM_CHANNEL_SIZE 8

static const struct {
    uint8_t reg, width;
    const char *name;
} piix_ide_regs[] = {
    {PIIX_IDE_IDETIM_PRI, 2, "IDETIM(primary)"},
    {PIIX_IDE_IDETIM_SEC, 2, "IDETIM(secondary)"},
    {PIIX_IDE_SIDETIM, 1, "SIDETIM"},
};

#define PIIX_IDE_NREGS (sizeof(piix_ide_regs) / sizeof(piix_ide_regs[0]))

/* --- bus-master registers (BAR4) ----------------------------------------- */

static uint64_t bm_read_one(struct piix_ide *s, unsigned off, unsigned size)
{
    const struct piix_ide_bm *bm = &s->bm[(off / BM_CHANNEL_SIZE) & 1];
    unsigned sub = off % BM_CHANNEL_SIZE;

    if (sub >= PIIX_IDE_BMIDTP)
        return (bm->prd >> (8 * (sub - PIIX_IDE_BMIDTP))) & bus_size_mask(size);
    if (size != 1)
        return bus_size_mask(size);
    switch (sub) {
    case PIIX_IDE_BMICOM:
        return bm->cmd;
    case PIIX_IDE_BMISTA:
        return bm->status;
    default:
        return 0xff;
    }
}

static void bm_write_command(struct piix_ide *s, unsigned channel, uint8_t v)
{
    struct piix_ide_bm *bm = &s->bm[channel];
    bool was_active = bm->status & PIIX_IDE_BMISTA_BMIDEA;

    bm->cmd = v & (PIIX_IDE_BMICOM_SSBM | PIIX_IDE_BMICOM_RWCON);
    if (v & PIIX_IDE_BMICOM_SSBM)
        bm->status |= PIIX_IDE_BMISTA_BMIDEA;
    else
        bm->status &= (uint8_t)~PIIX_IDE_BMISTA_BMIDEA;
    if (was_active != !!(bm->status & PIIX_IDE_BMISTA_BMIDEA))
        trace(trace_piix_ide, "channel %u bus master %s (PRD table 0x%08x)",
              channel, was_active ? "stopped" : "started", bm->prd);
}

static void bm_write_one(struct piix_ide *s, unsigned off, uint32_t value,
                         unsigned size)
{
    unsigned channel = (off / BM_CHANNEL_SIZE) & 1;
    struct piix_ide_bm *bm = &s->bm[channel];
    unsigned sub = off % BM_CHANNEL_SIZE;

    if (sub >= PIIX_IDE_BMIDTP) {
        unsigned shift = 8 * (sub - PIIX_IDE_BMIDTP);
        uint32_t mask = (uint32_t)(bus_size_mask(size) << shift);

        /* The table must be dword aligned: bits 1:0 are hard-wired 0. */
        bm->prd = (bm->prd & ~mask) | ((value << shift) & mask & ~3u);
        return;
    }
    if (size != 1)
        return;
    switch (sub) {
    case PIIX_IDE_BMICOM:
        bm_write_command(s, channel, (uint8_t)value);
        break;
    case PIIX_IDE_BMISTA:
        bm->status = (uint8_t)((value & (PIIX_IDE_BMISTA_DMA0CAP |
                                         PIIX_IDE_BMISTA_DMA1CAP)) |
                               (bm->status & PIIX_IDE_BMISTA_BMIDEA) |
                               (bm->status & ~value &
                                (PIIX_IDE_BMISTA_ERR | PIIX_IDE_BMISTA_IDEINTS)));
        break;
    default:
        break;
    }
}

/* An access that straddles two 4-byte groups (command/status and the table
 * pointer, or two channels) is split at the group boundary and each part
 * handled at its own width, as QEMU's memory core splits it between the
 * subregions; so the command/status part of it reads all-ones. */
static uint64_t bm_read(void *opaque, uint64_t off, unsigned size)
{
    struct piix_ide *s = opaque;
    unsigned first = 4 - (unsigned)(off & 3);

    if (size <= first)
        return bm_read_one(s, (unsigned)off, size);
    return bm_read_one(s, (unsigned)off, first) |
           bm_read_one(s, (unsigned)off + first, size - first) << (8 * first);
}

static void bm_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    struct piix_ide *s = opaque;
    unsigned first = 4 - (unsigned)(off & 3);

    if (size <= first) {
        bm_write_one(s, (unsigned)off, (uint32_t)value, size);
        return;
    }
    bm_write_one(s, (unsigned)off,
                 (uint32_t)(value & bus_size_mask(first)), first);
    bm_write_one(s, (unsigned)off + first, (uint32_t)(value >> (8 * first)),
                 size - first);
}

static const struct bus_region_ops bm_ops = {
    .read = bm_read,
    .write = bm_write,
    .max_access = 4,
};

/* --- PCI function --------------------------------------------------------- */

static void piix_ide_config_write(struct pci_function *f, unsigned reg,
                                  uint32_t value, unsigned size)
{
    for (size_t i = 0; i < PIIX_IDE_NREGS; i++) {
        unsigned start = piix_ide_regs[i].reg;

        if (reg < start + piix_ide_regs[i].width && reg + size > start)
            trace(trace_piix_ide, "%s now 0x%0*x", piix_ide_regs[i].name,
                  2 * piix_ide_regs[i].width,
                  piix_ide_regs[i].width == 2 ? pci_get_word(&f->config[start])
                                              : f->config[start]);
    }
}

static void piix_ide_function_reset(struct pci_function *f)
{
    struct piix_ide *s = f->opaque;

    memset(s->bm, 0, sizeof(s->bm));
}

static const struct pci_function_ops piix_ide_pci_ops = {
    .config_write = piix_ide_config_write,
    .reset = piix_ide_function_reset,
};

int piix_ide_init(struct piix_ide *s, struct pci_bus *pci)
{
    struct pci_function *f = &s->fn;
    int rc;

    memset(s, 0, sizeof(*s));
    pci_function_init(f, "piix3-ide", PIIX_IDE_VENDOR, PIIX_IDE_DEVICE,
                      PIIX_IDE_CLASS, PIIX_IDE_REVISION, &piix_ide_pci_ops, s);
    f->hotpluggable = false;
    pci_set_subsystem(f, PCI_SUBSYSTEM_VENDOR_QEMU, PCI_SUBSYSTEM_ID_QEMU);
    pci_set_word(&f->config[PCI_STATUS], PIIX_IDE_STATUS_POWER_ON);
    for (size_t i = 0; i < PIIX_IDE_NREGS; i++)
        memset(&f->wmask[piix_ide_regs[i].reg], 0xff, piix_ide_regs[i].width);
    rc = pci_function_add_bar(f, PIIX_IDE_BM_BAR, PIIX_IDE_BM_SIZE, PCI_BAR_IO,
                              "piix3-ide-bmdma", &bm_ops, s);
    if (rc < 0)
        goto out;
    rc = pci_register_function(pci, f, PIIX_IDE_DEVFN);
out:
    return rc;
}

void piix_ide_fini(struct piix_ide *s) { pci_unregister_function(&s->fn); }

void piix_ide_reset(struct piix_ide *s) { pci_function_reset(&s->fn); }

/* --- save and restore ----------------------------------------------------- */

#define PIIX_IDE_SS_NAME "piix-ide"
#define PIIX_IDE_SS_VERSION 1

#define BMISTA_KEPT                                                            \
    (PIIX_IDE_BMISTA_BMIDEA | PIIX_IDE_BMISTA_ERR | PIIX_IDE_BMISTA_IDEINTS |  \
     PIIX_IDE_BMISTA_DMA0CAP | PIIX_IDE_BMISTA_DMA1CAP)

int piix_ide_save(const struct piix_ide *s, struct ss_writer *w)
{
    ss_begin_section(w, PIIX_IDE_SS_NAME, s->fn.devfn, PIIX_IDE_SS_VERSION);
    pci_function_save(&s->fn, w);
    for (unsigned ch = 0; ch < 2; ch++) {
        ss_put_u8(w, s->bm[ch].cmd);
        ss_put_u8(w, s->bm[ch].status);
        ss_put_u32(w, s->bm[ch].prd);
    }
    return ss_end_section(w);
}

static void check_channel(struct ss_reader *r, unsigned ch,
                          const struct piix_ide_bm *bm)
{
    static const char *const cmd_field[2] = {"bm[0].cmd", "bm[1].cmd"};
    static const char *const status_field[2] = {"bm[0].status",
                                                "bm[1].status"};
    static const char *const prd_field[2] = {"bm[0].prd", "bm[1].prd"};

    if (bm->cmd & ~(PIIX_IDE_BMICOM_SSBM | PIIX_IDE_BMICOM_RWCON))
        ss_fail(r, cmd_field[ch], "0x%02x has bits BMICOM never keeps",
                bm->cmd);
    else if (bm->status & ~BMISTA_KEPT)
        ss_fail(r, status_field[ch], "0x%02x has bits BMISTA never keeps",
                bm->status);
    /* With no ATA engine a channel is active exactly while SSBM is set. */
    else if (!(bm->cmd & PIIX_IDE_BMICOM_SSBM) !=
             !(bm->status & PIIX_IDE_BMISTA_BMIDEA))
        ss_fail(r, status_field[ch], "BMIDEA %s while SSBM is %s",
                bm->status & PIIX_IDE_BMISTA_BMIDEA ? "set" : "clear",
                bm->cmd & PIIX_IDE_BMICOM_SSBM ? "set" : "clear");
    else if (bm->prd & 3)
        ss_fail(r, prd_field[ch], "0x%08x is not dword aligned", bm->prd);
}

int piix_ide_load(struct piix_ide *s, struct ss_reader *r)
{
    struct pci_function_state st;
    struct piix_ide_bm bm[2];
    uint32_t version;
    int rc;

    rc = ss_open_section(r, PIIX_IDE_SS_NAME, s->fn.devfn, PIIX_IDE_SS_VERSION,
                         &version);
    if (rc < 0)
        return rc;
    pci_function_load_check(&s->fn, r, &st);
    for (unsigned ch = 0; ch < 2; ch++) {
        ss_get_u8(r, "bm.cmd", &bm[ch].cmd);
        ss_get_u8(r, "bm.status", &bm[ch].status);
        ss_get_u32(r, "bm.prd", &bm[ch].prd);
        if (ss_ok(r))
            check_channel(r, ch, &bm[ch]);
    }
    rc = ss_close_section(r);
    if (rc < 0)
        return rc;
    rc = pci_function_restore(&s->fn, &st, r);
    if (rc < 0)
        return rc;
    memcpy(s->bm, bm, sizeof(s->bm));
    return 0;
}
