/* Emulated disks of a qemu-trad guest, from xenstore (xen-dm-interfaces.md
 * §4.6). libxl does not put disks on qemu-dm's command line: it writes, per
 * disk, a frontend /local/domain/<domid>/device/vbd/<devid>/ (guest-owned,
 * so guest-writable) and a backend
 * /local/domain/<backend_domid>/backend/{vbd|tap|qdisk}/<domid>/<devid>/
 * (toolstack-owned).
 *
 * A vbd is accepted only if the frontend's `backend` key names exactly that
 * backend path (backend_domid from the frontend's `backend-id`) and the
 * backend's `frontend` key points back at the frontend: the guest can write
 * its frontend keys but cannot make a toolstack-owned backend point at it.
 * Everything read is untrusted and bounded; whatever does not parse or
 * does not agree is skipped with a rate-limited log line naming the key,
 * never fatal.
 *
 *   backend `dev`     hda..hdd -> index 0..3; xvda..xvdd -> 0..3 only when
 *                     no hdX disk is configured at all (as qemu-trad does);
 *                     sdX (SCSI), hde.., xvde.. are not emulated (skipped)
 *   backend `params`  vbd (phy): a block device, relative names under /dev/;
 *                     qdisk/tap: "<format>:<path>" split at the first ':'
 *                     ("aio" and "raw" -> raw, "vhd" -> vpc); empty = no
 *                     medium (CD-ROM only)
 *   backend `mode`    'r' without 'w' -> read-only
 *   `device-type`     "cdrom" or "disk", read from the frontend as qemu-trad
 *                     does; when the backend has one too they must agree */
#ifndef XENDM_XENSTORE_VBD_H
#define XENDM_XENSTORE_VBD_H

#include "../block/disk.h"
#include "xs.h"

struct vbd_watch;

/* Fills out (which must be empty, disk_list_init) with the guest's
 * emulated disks. Returns 0 even when vbds were skipped; a negative errno
 * only when xenstore itself fails (out is then left empty). CD-ROMs get
 * id "ide-<devid>" (the name libxl gives them on a qemu-xen command line),
 * hard disks none, so both flavours build the same list. */
int vbd_read_disks(struct xsw *xs, unsigned domid, struct disk_list *out);

/* A CD-ROM's medium changed: path/format of the new medium, or both NULL
 * when it was ejected (params emptied). */
typedef void (*vbd_media_fn)(void *opaque, unsigned index,
                             const char *path_or_null, const char *format);

/* Watches the backend `params` of every CD-ROM in disks (built by
 * vbd_read_disks; disks without xenstore nodes are ignored) and calls
 * changed, from the event loop, whenever the medium differs from the one
 * last seen (initially the one in disks). A value that does not parse is
 * logged and leaves the medium as it was. disks may be freed afterwards.
 * changed may call vbd_unwatch_media. */
int vbd_watch_media(struct xsw *xs, unsigned domid,
                    const struct disk_list *disks, vbd_media_fn changed,
                    void *opaque, struct vbd_watch **out);
/* NULL is a no-op. */
void vbd_unwatch_media(struct vbd_watch *w);

/* The guest opened the tray of a CD-ROM: tell the toolstack the way
 * qemu-trad does, by writing "eject" into the frontend's `eject` key.
 * -EINVAL for a disk that is not a CD-ROM from xenstore. */
int vbd_report_eject(struct xsw *xs, const struct disk_desc *disk);

#endif
