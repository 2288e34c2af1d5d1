/* File-descriptor sets, as QMP's add-fd builds them: libxl cannot name a
 * file the device model may open (it may run chrooted, as another user), so
 * it passes an open descriptor over the QMP socket and then names it
 * "/dev/fdset/N" (e.g. the save file for xen-save-devices-state). */
#ifndef XENDM_DM_FDSET_H
#define XENDM_DM_FDSET_H

#include <stdbool.h>

#define FDSET_MAX_SETS 16
#define FDSET_MAX_FDS 8 /* per set */

struct fdset_entry {
    int fd;
    char *opaque;
};

struct fdset {
    int id; /* -1: unused */
    unsigned n;
    struct fdset_entry fds[FDSET_MAX_FDS];
};

struct fdsets {
    struct fdset sets[FDSET_MAX_SETS];
};

void fdsets_init(struct fdsets *s);
void fdsets_fini(struct fdsets *s);
/* Adds fd (ownership taken) to set id, or to a new set when id < 0.
 * Returns the set id, or -ENOSPC / -EINVAL. */
int fdsets_add(struct fdsets *s, int id, int fd, const char *opaque);
/* Closes fd in set id (or the whole set when fd < 0). -ENOENT if absent. */
int fdsets_remove(struct fdsets *s, int id, int fd);
/* Opens a path: "/dev/fdset/N" gives a dup() of a descriptor of set N whose
 * access mode allows flags; anything else is open(2)ed. -errno on failure. */
int fdsets_open(const struct fdsets *s, const char *path, int flags);

#endif
