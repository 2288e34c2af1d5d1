/* Disks on a qemu-xen command line (xen-dm-interfaces.md §4.3), turned
 * into the disk list the qemu-trad flavour reads from xenstore
 * (block/disk.h). The forms libxl 4.17 emits:
 *
 *   hard disk  -drive file=<path>,if=ide,index=<n>,media=disk,format=<f>,
 *                     cache=writeback
 *   CD-ROM     -drive if=none,readonly=on,id=ide-<devid>[,file=<p>,format=<f>]
 *              -device ide-cd,id=ide-<devid>,drive=ide-<devid>,bus=ide.<n/2>,
 *                      unit=<n%2>
 *   (before 4.15) -drive if=ide,index=<n>,readonly=on,media=cdrom,
 *                        id=ide-<devid>[,file=<p>,format=<f>]
 *
 * in QEMU's option syntax: comma-separated key=value items, ",," standing
 * for a comma inside a value (file names). Also accepted, as QEMU does:
 * bus=/unit= instead of index= (or neither: the first free position), and
 * -device ide-hd on an IDE bus. Refused, with a message saying why: what
 * xen-dm does not emulate (SCSI, AHCI, virtio..., positions beyond hdd, a
 * drive no IDE device uses), read-only IDE hard disks (libxl refuses them
 * too), a file without format= (probing a guest-written image is unsafe),
 * and anything not understood. */
#ifndef XENDM_DM_DRIVE_H
#define XENDM_DM_DRIVE_H

#include <stddef.h>

#include "../block/disk.h"

enum drive_if { DRIVE_IF_IDE, DRIVE_IF_NONE };
enum drive_media { DRIVE_MEDIA_DISK, DRIVE_MEDIA_CDROM };

/* One parsed -drive. Unset numbers are -1. */
struct drive_opts {
    enum drive_if iface; /* QEMU's pc default: ide */
    enum drive_media media;
    int index;           /* if=ide: 0-3 */
    int bus, unit;       /* if=ide: 0-1 each (only without index) */
    int readonly;        /* -1, 0 or 1 */
    char *file;          /* NULL: no medium */
    char *format;        /* QEMU name ("raw", "qcow2", "vpc"...); NULL iff !file */
    char *id;
    char *cache;         /* accepted, for the block layer; NULL = writeback */
};

/* Parses one -drive argument into *out (which the caller frees with
 * drive_opts_free, also after a failure). 0, or -EINVAL / -ENOMEM with a
 * message in err. */
int drive_parse(const char *arg, struct drive_opts *out, char *err,
                size_t errlen);
void drive_opts_free(struct drive_opts *d);

/* Builds the disk list (out need not be initialised) from every -drive, in
 * command-line order, and every -device argument (those that are not IDE
 * devices and name none of the drives are left alone). 0, or -EINVAL /
 * -ENOMEM with a message in err and out empty. */
int drives_to_disks(const struct drive_opts *drives, unsigned n,
                    const char *const *devices, unsigned ndevices,
                    struct disk_list *out, char *err, size_t errlen);

#endif
