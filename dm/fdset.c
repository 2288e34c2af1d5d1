#include "fdset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fdsets_init(struct fdsets *s)
{
    memset(s, 0, sizeof(*s));
    for (unsigned i = 0; i < FDSET_MAX_SETS; i++)
        s->sets[i].id = -1;
}

static void close_set(struct fdset *set)
{
    for (unsigned i = 0; i < set->n; i++) {
        close(set->fds[i].fd);
        free(set->fds[i].opaque);
    }
    set->n = 0;
    set->id = -1;
}

void fdsets_fini(struct fdsets *s)
{
    for (unsigned i = 0; i < FDSET_MAX_SETS; i++)
        if (s->sets[i].id >= 0)
            close_set(&s->sets[i]);
}

static struct fdset *find(const struct fdsets *s, int id)
{
    for (unsigned i = 0; i < FDSET_MAX_SETS; i++)
        if (s->sets[i].id == id)
            return (struct fdset *)&s->sets[i];
    return NULL;
}

int fdsets_add(struct fdsets *s, int id, int fd, const char *opaque)
{
    struct fdset *set = id >= 0 ? find(s, id) : NULL;

    if (!set) {
        int new_id = id;

        if (new_id < 0)
            for (new_id = 0; find(s, new_id); new_id++)
                ;
        set = find(s, -1);
        if (!set)
            return -ENOSPC;
        set->id = new_id;
    }
    if (set->n == FDSET_MAX_FDS)
        return -ENOSPC;
    set->fds[set->n].fd = fd;
    set->fds[set->n].opaque = opaque ? strdup(opaque) : NULL;
    set->n++;
    return set->id;
}

int fdsets_remove(struct fdsets *s, int id, int fd)
{
    struct fdset *set = find(s, id);

    if (!set || id < 0)
        return -ENOENT;
    if (fd < 0) {
        close_set(set);
        return 0;
    }
    for (unsigned i = 0; i < set->n; i++) {
        if (set->fds[i].fd != fd)
            continue;
        close(fd);
        free(set->fds[i].opaque);
        set->fds[i] = set->fds[--set->n];
        if (set->n == 0)
            set->id = -1;
        return 0;
    }
    return -ENOENT;
}

static bool mode_allows(int have, int want)
{
    have &= O_ACCMODE;
    want &= O_ACCMODE;
    return have == O_RDWR || have == want;
}

int fdsets_open(const struct fdsets *s, const char *path, int flags)
{
    const char *prefix = "/dev/fdset/";
    const struct fdset *set;
    char *end;
    long id;
    int fd;

    if (strncmp(path, prefix, strlen(prefix))) {
        fd = open(path, flags | O_CLOEXEC, 0600);
        return fd < 0 ? -errno : fd;
    }
    id = strtol(path + strlen(prefix), &end, 10);
    if (*end || end == path + strlen(prefix) || id < 0 || id > 0xffff)
        return -EINVAL;
    set = find(s, (int)id);
    if (!set)
        return -ENOENT;
    for (unsigned i = 0; i < set->n; i++) {
        int fl = fcntl(set->fds[i].fd, F_GETFL);

        if (fl >= 0 && mode_allows(fl, flags)) {
            fd = fcntl(set->fds[i].fd, F_DUPFD_CLOEXEC, 0);
            return fd < 0 ? -errno : fd;
        }
    }
    return -EACCES;
}
