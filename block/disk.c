#include "disk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void disk_list_init(struct disk_list *l)
{
    memset(l, 0, sizeof(*l));
}

static void disk_desc_free(struct disk_desc *d)
{
    free(d->path);
    free(d->format);
    free(d->id);
    free(d->xs_frontend);
    free(d->xs_backend);
    memset(d, 0, sizeof(*d));
}

/* strdup that maps NULL to NULL and reports failure separately. */
static int dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (!s)
        return 0;
    *out = strdup(s);
    return *out ? 0 : -ENOMEM;
}

int disk_list_add(struct disk_list *l, const struct disk_desc *d)
{
    struct disk_desc copy = {
        .index = d->index,
        .cdrom = d->cdrom,
        .readonly = d->readonly || d->cdrom,
    };
    unsigned pos;
    int rc;

    if (d->index >= DISK_MAX)
        return -ERANGE;
    if (disk_list_find(l, d->index))
        return -EEXIST;
    if ((!d->path && !d->cdrom) || (!d->path != !d->format))
        return -EINVAL;

    rc = dup_opt(d->path, &copy.path);
    if (!rc)
        rc = dup_opt(d->format, &copy.format);
    if (!rc)
        rc = dup_opt(d->id, &copy.id);
    if (!rc)
        rc = dup_opt(d->xs_frontend, &copy.xs_frontend);
    if (!rc)
        rc = dup_opt(d->xs_backend, &copy.xs_backend);
    if (rc) {
        disk_desc_free(&copy);
        return rc;
    }

    /* count < DISK_MAX here: four distinct indexes below DISK_MAX at most. */
    for (pos = 0; pos < l->count && l->disks[pos].index < d->index; pos++)
        ;
    memmove(&l->disks[pos + 1], &l->disks[pos],
            (l->count - pos) * sizeof(l->disks[0]));
    l->disks[pos] = copy;
    l->count++;
    return 0;
}

const struct disk_desc *disk_list_find(const struct disk_list *l,
                                       unsigned index)
{
    for (unsigned i = 0; i < l->count; i++) {
        if (l->disks[i].index == index)
            return &l->disks[i];
    }
    return NULL;
}

void disk_list_free(struct disk_list *l)
{
    for (unsigned i = 0; i < l->count; i++)
        disk_desc_free(&l->disks[i]);
    l->count = 0;
}

const char *disk_index_name(unsigned index)
{
    static const char *const names[DISK_MAX] = {"hda", "hdb", "hdc", "hdd"};

    return index < DISK_MAX ? names[index] : "?";
}
