/* The machine's emulated disks, as one list whichever way the toolstack
 * described them: xenstore vbd entries for the qemu-trad flavour
 * (xenstore/vbd.c, xen-dm-interfaces.md §4.6) or -drive/-device options for
 * qemu-xen (dm/drive.c, §4.3). The machine only ever sees this list.
 *
 * Only the four PIIX IDE positions are emulated: index 0-3 is hda..hdd,
 * i.e. IDE bus index/2 (primary, secondary) and unit index%2 (master,
 * slave). Format names are QEMU's ("raw", "qcow2", "qcow", "vpc", "qed"):
 * the xenstore spellings ("aio", "vhd") are translated on the way in. */
#ifndef XENDM_BLOCK_DISK_H
#define XENDM_BLOCK_DISK_H

#include <stdbool.h>

#define DISK_MAX 4 /* two IDE channels, master and slave */

struct disk_desc {
    unsigned index;  /* 0-3 = hda..hdd (IDE bus index/2, unit index%2) */
    bool cdrom;
    bool readonly;   /* always true for a CD-ROM */
    char *path;      /* NULL: empty CD-ROM (never NULL for a hard disk) */
    char *format;    /* "raw", "qcow2", ...; NULL exactly when path is */
    char *id;        /* name the toolstack uses for it ("ide-5632"), or NULL */
    /* qemu-trad only, NULL otherwise: the verified vbd nodes, for media
     * change (the backend's params) and eject reports (the frontend). */
    char *xs_frontend;
    char *xs_backend;
};

/* At most one disk per index, kept sorted by index. */
struct disk_list {
    unsigned count;
    struct disk_desc disks[DISK_MAX];
};

void disk_list_init(struct disk_list *l);
/* Adds a copy of d (every string duplicated). -ERANGE for an index above
 * 3, -EEXIST if the index is taken, -EINVAL for a hard disk without a path
 * or a path without a format, -ENOMEM. The list is unchanged on failure. */
int disk_list_add(struct disk_list *l, const struct disk_desc *d);
/* The disk at IDE index, or NULL. */
const struct disk_desc *disk_list_find(const struct disk_list *l,
                                       unsigned index);
/* Frees every string and empties the list (init state). */
void disk_list_free(struct disk_list *l);

/* "hda".."hdd" for an index 0-3, "?" otherwise (for log lines). */
const char *disk_index_name(unsigned index);

#endif
