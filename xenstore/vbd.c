#include "vbd.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"

TRACE_POINT(trace_vbd, "vbd");

/* Bounds for values of a known shape: anything longer is malformed. */
#define VBD_DEVID_DIGITS 10 /* libxl devids fit in 31 bits */
#define VBD_DEVID_MAX 0x7fffffffu
#define VBD_DEV_MAX 15      /* "hda", "xvdb", "sdc" */
#define VBD_TYPE_MAX 15     /* "cdrom", "disk" */
#define VBD_MODE_MAX 7      /* "r", "w" */
#define VBD_DOMID_MAX 15
/* Characters of an untrusted value quoted in a log line. */
#define VBD_QUOTE_MAX 64

enum vbd_kind { KIND_VBD, KIND_TAP, KIND_QDISK, KIND_COUNT };

/* The backend directories qemu-trad accepts for a vbd frontend: vbd is
 * blkback (params = a block device), tap and qdisk take "<format>:<path>". */
static const char *const kind_names[KIND_COUNT] = {"vbd", "tap", "qdisk"};

/* Image-format prefixes of qdisk/tap params (libxl writes "aio" for raw
 * and for an empty drive) and QEMU's name for each. */
static const struct {
    const char *xs, *qemu;
} format_names[] = {
    {"aio", "raw"},  {"raw", "raw"}, {"qcow", "qcow"},
    {"qcow2", "qcow2"}, {"vhd", "vpc"}, {"qed", "qed"},
};

/* A printable, bounded copy of an untrusted string for a log line: a
 * newline in a guest-written key must not forge a line of its own. */
struct quoted {
    char s[VBD_QUOTE_MAX + 4];
};

static const char *quote(struct quoted *q, const char *s)
{
    size_t i;

    for (i = 0; s[i] && i < VBD_QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];

        q->s[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (s[i]) {
        memcpy(q->s + i, "...", 3);
        i += 3;
    }
    q->s[i] = '\0';
    return q->s;
}

/* Every rejection has its own call site, hence its own rate limit: a flood
 * of one kind of junk cannot hide another. */
#define VBD_SKIP(name, fmt, ...)                                               \
    do {                                                                       \
        struct quoted q_name_;                                                 \
        log_ratelimited(LOG_WARN, "xenstore: vbd %s skipped: " fmt,           \
                        quote(&q_name_, name), ##__VA_ARGS__);                 \
    } while (0)

static const char *read_problem(int rc)
{
    switch (rc) {
    case -ENOENT:
        return "is missing";
    case -E2BIG:
    case -ENAMETOOLONG:
        return "is too long";
    default:
        return "is unreadable";
    }
}

/* Errors caused by a value or a node (skip the vbd) rather than by
 * xenstore itself (give up). */
static bool value_error(int rc)
{
    return rc == -ENOENT || rc == -E2BIG || rc == -EINVAL || rc == -EACCES ||
           rc == -ENAMETOOLONG;
}

static int read_key(struct xsw *xs, const char *dir, const char *key,
                    char *buf, size_t size)
{
    xsw_path_t path;
    int rc = xsw_path(path, sizeof(path), "%s/%s", dir, key);

    if (rc < 0)
        return rc;
    rc = xsw_read(xs, path, buf, size);
    return rc < 0 ? rc : 0;
}

/* A device number as libxl writes it: decimal, no leading zero. */
static int parse_devid(const char *s, unsigned long *out)
{
    uint64_t v;

    if (strnlen(s, VBD_DEVID_DIGITS + 1) > VBD_DEVID_DIGITS ||
        (s[0] == '0' && s[1]))
        return -EINVAL;
    if (xsw_parse_uint(s, 10, VBD_DEVID_MAX, &v))
        return -EINVAL;
    *out = (unsigned long)v;
    return 0;
}

/* --- params ----------------------------------------------------------- */

static const char *format_from_prefix(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]);
         i++) {
        if (strlen(format_names[i].xs) == len &&
            !memcmp(format_names[i].xs, s, len))
            return format_names[i].qemu;
    }
    return NULL;
}

/* True if the relative name has a ".." component: "/dev/" + name must stay
 * below /dev. */
static bool leaves_dev(const char *name)
{
    const char *p = name;

    while (*p) {
        size_t n = strcspn(p, "/");

        if (n == 2 && p[0] == '.' && p[1] == '.')
            return true;
        p += n;
        if (*p == '/')
            p++;
    }
    return false;
}

/* Splits a backend's params into a medium (*path malloc'ed, NULL = none)
 * and its format (static, NULL = none). -EINVAL with *why, or -ENOMEM. */
static int parse_params(enum vbd_kind kind, const char *params, char **path,
                        const char **format, const char **why)
{
    const char *file = params, *fmt = "raw";
    bool dev_prefix = false;
    size_t len;

    *path = NULL;
    *format = NULL;
    if (!*params)
        return 0;
    if (kind == KIND_VBD) {
        if (params[0] != '/') {
            if (leaves_dev(params)) {
                *why = "is a relative name with a '..' component";
                return -EINVAL;
            }
            dev_prefix = true;
        }
    } else {
        const char *colon = strchr(params, ':');

        if (!colon) {
            *why = "has no '<format>:' prefix";
            return -EINVAL;
        }
        fmt = format_from_prefix(params, (size_t)(colon - params));
        if (!fmt) {
            *why = "names an unknown image format";
            return -EINVAL;
        }
        file = colon + 1;
        /* libxl's empty CD-ROM drive is "aio:". */
        if (!*file)
            return 0;
    }
    len = strlen(file) + (dev_prefix ? 5 : 0);
    if (len >= PATH_MAX) {
        *why = "is longer than a path may be";
        return -EINVAL;
    }
    *path = malloc(len + 1);
    if (!*path)
        return -ENOMEM;
    snprintf(*path, len + 1, "%s%s", dev_prefix ? "/dev/" : "", file);
    *format = fmt;
    return 0;
}

/* Recovers the kind from a backend path of the verified shape
 * /local/domain/<b>/backend/<kind>/<domid>/<devid>. */
static int backend_kind(const char *backend, unsigned domid,
                        enum vbd_kind *kind)
{
    xsw_path_t copy;
    char *part[9], *save = NULL, *tok;
    unsigned n = 0, b, d;
    unsigned long devid;

    if (strlen(backend) >= sizeof(copy))
        return -EINVAL;
    strcpy(copy, backend);
    for (tok = strtok_r(copy, "/", &save); tok && n < 9;
         tok = strtok_r(NULL, "/", &save))
        part[n++] = tok;
    if (n != 7 || backend[0] != '/' || strcmp(part[0], "local") ||
        strcmp(part[1], "domain") || xsw_parse_domid(part[2], &b) ||
        strcmp(part[3], "backend") || xsw_parse_domid(part[5], &d) ||
        d != domid || parse_devid(part[6], &devid))
        return -EINVAL;
    for (unsigned k = 0; k < KIND_COUNT; k++) {
        if (!strcmp(part[4], kind_names[k])) {
            *kind = (enum vbd_kind)k;
            return 0;
        }
    }
    return -EINVAL;
}

/* --- dev ---------------------------------------------------------------- */

enum dev_class { DEV_HD, DEV_XVD, DEV_SD, DEV_OTHER };

static enum dev_class classify_dev(const char *dev, unsigned *letter)
{
    size_t len = strlen(dev);

    if (len == 3 && !strncmp(dev, "hd", 2) && dev[2] >= 'a' && dev[2] <= 'z') {
        *letter = (unsigned)(dev[2] - 'a');
        return DEV_HD;
    }
    if (len == 4 && !strncmp(dev, "xvd", 3) && dev[3] >= 'a' &&
        dev[3] <= 'z') {
        *letter = (unsigned)(dev[3] - 'a');
        return DEV_XVD;
    }
    if (len >= 3 && !strncmp(dev, "sd", 2))
        return DEV_SD;
    return DEV_OTHER;
}

/* --- reading the vbds -------------------------------------------------- */

/* A vbd whose backend passed the safety rule. */
struct vbd_found {
    unsigned long devid;
    enum vbd_kind kind;
    char *name; /* the frontend's directory name (= devid in decimal) */
    char *frontend, *backend;
    char dev[VBD_DEV_MAX + 1];
};

static void found_free(struct vbd_found *f)
{
    free(f->name);
    free(f->frontend);
    free(f->backend);
}

static int found_cmp(const void *a, const void *b)
{
    const struct vbd_found *x = a, *y = b;

    return x->devid < y->devid ? -1 : x->devid > y->devid;
}

/* The safety rule of xen-dm-interfaces.md §4.6. 0: f is filled in;
 * 1: skipped (logged); negative errno: xenstore failed. */
static int vbd_verify(struct xsw *xs, unsigned domid, const char *name,
                      struct vbd_found *f)
{
    xsw_path_t frontend, backend, expected, back_front;
    char backend_id[VBD_DOMID_MAX + 1];
    unsigned backend_domid, k;
    struct quoted q1, q2;
    int rc;

    if (parse_devid(name, &f->devid)) {
        VBD_SKIP(name, "not a device number");
        return 1;
    }
    rc = xsw_path(frontend, sizeof(frontend), "/local/domain/%u/device/vbd/%s",
                  domid, name);
    if (rc < 0)
        return rc;

    rc = read_key(xs, frontend, "backend", backend, sizeof(backend));
    if (rc < 0) {
        if (!value_error(rc))
            return rc;
        VBD_SKIP(name, "frontend key backend %s", read_problem(rc));
        return 1;
    }
    rc = read_key(xs, frontend, "backend-id", backend_id, sizeof(backend_id));
    if (rc < 0) {
        if (!value_error(rc))
            return rc;
        VBD_SKIP(name, "frontend key backend-id %s", read_problem(rc));
        return 1;
    }
    if (xsw_parse_domid(backend_id, &backend_domid)) {
        VBD_SKIP(name, "frontend key backend-id '%s' is not a domain id",
                 quote(&q1, backend_id));
        return 1;
    }
    for (k = 0; k < KIND_COUNT; k++) {
        rc = xsw_path(expected, sizeof(expected),
                      "/local/domain/%u/backend/%s/%u/%s", backend_domid,
                      kind_names[k], domid, name);
        if (rc < 0)
            return rc;
        if (!strcmp(expected, backend))
            break;
    }
    if (k == KIND_COUNT) {
        VBD_SKIP(name,
                 "frontend key backend '%s' is not "
                 "/local/domain/%u/backend/{vbd,tap,qdisk}/%u/%s",
                 quote(&q1, backend), backend_domid, domid, name);
        return 1;
    }
    rc = read_key(xs, backend, "frontend", back_front, sizeof(back_front));
    if (rc < 0) {
        if (!value_error(rc))
            return rc;
        VBD_SKIP(name, "backend key frontend %s", read_problem(rc));
        return 1;
    }
    if (strcmp(back_front, frontend)) {
        VBD_SKIP(name, "backend key frontend of %s is '%s', not %s",
                 quote(&q1, backend), quote(&q2, back_front), frontend);
        return 1;
    }
    rc = read_key(xs, backend, "dev", f->dev, sizeof(f->dev));
    if (rc < 0) {
        if (!value_error(rc))
            return rc;
        VBD_SKIP(name, "backend key dev %s", read_problem(rc));
        return 1;
    }

    f->kind = (enum vbd_kind)k;
    f->name = strdup(name);
    f->frontend = strdup(frontend);
    f->backend = strdup(backend);
    if (!f->name || !f->frontend || !f->backend) {
        found_free(f);
        return -ENOMEM;
    }
    return 0;
}

/* "cdrom" or "disk" into *cdrom; an absent key (value "") leaves it. */
static int parse_device_type(const char *value, bool *cdrom)
{
    if (!*value)
        return 0;
    if (!strcmp(value, "cdrom"))
        *cdrom = true;
    else if (!strcmp(value, "disk"))
        *cdrom = false;
    else
        return -EINVAL;
    return 0;
}

/* Reads an optional key: "" when absent. */
static int read_optional(struct xsw *xs, const char *dir, const char *key,
                         char *buf, size_t size)
{
    int rc = read_key(xs, dir, key, buf, size);

    if (rc == -ENOENT) {
        buf[0] = '\0';
        return 0;
    }
    return rc;
}

/* Reads the rest of a verified vbd with its IDE index into out. 0: added;
 * 1: skipped (logged); negative errno: xenstore failed or no memory. */
static int vbd_describe(struct xsw *xs, const struct vbd_found *f,
                        unsigned index, struct disk_list *out)
{
    char fe_type[VBD_TYPE_MAX + 1], be_type[VBD_TYPE_MAX + 1];
    char mode[VBD_MODE_MAX + 1], id[32];
    char *params = NULL, *path = NULL;
    const char *format = NULL, *why = NULL;
    bool fe_cdrom = false, be_cdrom = false, cdrom, readonly;
    bool renamed;
    struct quoted q1, q2;
    struct disk_desc d;
    int rc;

    rc = read_optional(xs, f->frontend, "device-type", fe_type,
                       sizeof(fe_type));
    if (rc < 0) {
        if (value_error(rc)) {
            VBD_SKIP(f->name, "frontend key device-type %s",
                     read_problem(rc));
            rc = 1;
        }
        goto out;
    }
    rc = read_optional(xs, f->backend, "device-type", be_type,
                       sizeof(be_type));
    if (rc < 0) {
        if (value_error(rc)) {
            VBD_SKIP(f->name, "backend key device-type %s", read_problem(rc));
            rc = 1;
        }
        goto out;
    }
    if (parse_device_type(fe_type, &fe_cdrom)) {
        VBD_SKIP(f->name, "frontend key device-type '%s' is neither cdrom "
                          "nor disk",
                 quote(&q1, fe_type));
        rc = 1;
        goto out;
    }
    if (parse_device_type(be_type, &be_cdrom)) {
        VBD_SKIP(f->name, "backend key device-type '%s' is neither cdrom "
                          "nor disk",
                 quote(&q1, be_type));
        rc = 1;
        goto out;
    }
    /* The frontend is the guest's to write: it may not turn the
     * toolstack's disk into a CD-ROM or the other way round. */
    if (*fe_type && *be_type && fe_cdrom != be_cdrom) {
        VBD_SKIP(f->name, "frontend key device-type '%s' disagrees with "
                          "the backend's '%s'",
                 quote(&q1, fe_type), quote(&q2, be_type));
        rc = 1;
        goto out;
    }
    cdrom = *fe_type ? fe_cdrom : be_cdrom;

    rc = read_key(xs, f->backend, "mode", mode, sizeof(mode));
    if (rc < 0) {
        if (value_error(rc)) {
            VBD_SKIP(f->name, "backend key mode %s", read_problem(rc));
            rc = 1;
        }
        goto out;
    }
    if (!*mode || strspn(mode, "rw") != strlen(mode)) {
        VBD_SKIP(f->name, "backend key mode '%s' is not made of r and w",
                 quote(&q1, mode));
        rc = 1;
        goto out;
    }
    readonly = strchr(mode, 'r') && !strchr(mode, 'w');

    params = malloc(XSW_VALUE_MAX + 1);
    if (!params) {
        rc = -ENOMEM;
        goto out;
    }
    rc = read_key(xs, f->backend, "params", params, XSW_VALUE_MAX + 1);
    if (rc < 0) {
        if (value_error(rc)) {
            VBD_SKIP(f->name, "backend key params %s", read_problem(rc));
            rc = 1;
        }
        goto out;
    }
    rc = parse_params(f->kind, params, &path, &format, &why);
    if (rc == -EINVAL) {
        VBD_SKIP(f->name, "backend key params '%s' %s", quote(&q1, params),
                 why);
        rc = 1;
        goto out;
    }
    if (rc < 0)
        goto out;
    if (!path && !cdrom) {
        VBD_SKIP(f->name, "backend key params is empty for a hard disk");
        rc = 1;
        goto out;
    }

    snprintf(id, sizeof(id), "ide-%lu", f->devid);
    d = (struct disk_desc){
        .index = index,
        .cdrom = cdrom,
        .readonly = readonly || cdrom,
        .path = path,
        .format = (char *)format,
        .id = cdrom ? id : NULL,
        .xs_frontend = f->frontend,
        .xs_backend = f->backend,
    };
    rc = disk_list_add(out, &d);
    if (rc < 0)
        goto out;
    renamed = strcmp(f->dev, disk_index_name(index)) != 0;
    log_info("xenstore: vbd %s: %s%s%s %s %s%s%s%s", f->name,
             renamed ? f->dev : "", renamed ? " as " : "",
             disk_index_name(index), cdrom ? "cdrom" : "disk",
             path ? path : "without medium", path ? " (" : "",
             path ? format : "",
             !path ? "" : d.readonly && !cdrom ? ", read-only)" : ")");
    trace(trace_vbd, "vbd %s: index %u cdrom %d readonly %d kind %s",
          f->name, index, cdrom, d.readonly, kind_names[f->kind]);
out:
    free(path);
    free(params);
    return rc;
}

/* IDE index for a dev name, or -1 (logged) when it is not emulated. */
static int dev_to_index(const struct vbd_found *f, bool any_hd)
{
    struct quoted q;
    unsigned letter = 0;

    switch (classify_dev(f->dev, &letter)) {
    case DEV_HD:
        if (letter < DISK_MAX)
            return (int)letter;
        VBD_SKIP(f->name, "backend key dev %s: only hda-hdd are emulated",
                 f->dev);
        return -1;
    case DEV_XVD:
        /* qemu-trad's rule: xvdX stands for hdX only in a guest that
         * names no hdX disk at all; otherwise xvd disks are PV-only. */
        if (!any_hd && letter < DISK_MAX)
            return (int)letter;
        log_ratelimited(LOG_INFO, "xenstore: vbd %s: %s is not emulated "
                                  "(PV only)",
                        f->name, f->dev);
        return -1;
    case DEV_SD:
        VBD_SKIP(f->name, "backend key dev %s is SCSI, which is not "
                          "emulated",
                 quote(&q, f->dev));
        return -1;
    default:
        VBD_SKIP(f->name, "backend key dev '%s' is not a disk name",
                 quote(&q, f->dev));
        return -1;
    }
}

int vbd_read_disks(struct xsw *xs, unsigned domid, struct disk_list *out)
{
    xsw_path_t dir;
    char **entries = NULL;
    unsigned count = 0, nfound = 0;
    struct vbd_found *found = NULL;
    const struct vbd_found *owner[DISK_MAX] = {NULL};
    bool any_hd = false;
    int rc;

    disk_list_init(out);
    rc = xsw_path(dir, sizeof(dir), "/local/domain/%u/device/vbd", domid);
    if (rc < 0)
        return rc;
    rc = xsw_directory(xs, dir, &entries, &count);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    if (count) {
        found = calloc(count, sizeof(*found));
        if (!found) {
            rc = -ENOMEM;
            goto out;
        }
    }

    for (unsigned i = 0; i < count; i++) {
        rc = vbd_verify(xs, domid, entries[i], &found[nfound]);
        if (rc < 0)
            goto out;
        if (rc == 0)
            nfound++;
    }
    /* Device-number order, so that which of two vbds claiming one index
     * wins does not depend on xenstored's directory order. */
    if (nfound > 1)
        qsort(found, nfound, sizeof(*found), found_cmp);
    for (unsigned i = 0; i < nfound; i++) {
        unsigned letter;

        if (classify_dev(found[i].dev, &letter) == DEV_HD)
            any_hd = true;
    }

    for (unsigned i = 0; i < nfound; i++) {
        int index = dev_to_index(&found[i], any_hd);

        if (index < 0)
            continue;
        if (owner[index]) {
            VBD_SKIP(found[i].name, "backend key dev %s: %s is already vbd %s",
                     found[i].dev, disk_index_name((unsigned)index),
                     owner[index]->name);
            continue;
        }
        rc = vbd_describe(xs, &found[i], (unsigned)index, out);
        if (rc < 0)
            goto out;
        /* A vbd skipped for its other keys does not hold the index: it
         * gives the guest no disk there. */
        if (rc == 0)
            owner[index] = &found[i];
    }
    rc = 0;
out:
    for (unsigned i = 0; i < nfound; i++)
        found_free(&found[i]);
    free(found);
    free(entries);
    if (rc < 0)
        disk_list_free(out);
    return rc;
}

/* --- media change --------------------------------------------------- */

struct vbd_media {
    struct vbd_watch *owner;
    unsigned index;
    enum vbd_kind kind;
    char *params_path;
    char *path;         /* current medium, NULL = none */
    const char *format; /* static */
    struct xsw_watch *w;
};

struct vbd_watch {
    struct xsw *xs;
    vbd_media_fn changed;
    void *opaque;
    unsigned count;
    struct vbd_media media[DISK_MAX];
};

/* Our static spelling of a QEMU format name, or NULL. */
static const char *static_format(const char *format)
{
    if (!format)
        return NULL;
    for (size_t k = 0; k < sizeof(format_names) / sizeof(format_names[0]);
         k++) {
        if (!strcmp(format, format_names[k].qemu))
            return format_names[k].qemu;
    }
    return NULL;
}

static bool same_medium(const struct vbd_media *m, const char *path,
                        const char *format)
{
    if (!m->path || !path)
        return !m->path && !path;
    return !strcmp(m->path, path) && !strcmp(m->format, format);
}

static void on_params(void *opaque, const char *node, const char *token)
{
    struct vbd_media *m = opaque;
    struct vbd_watch *vw = m->owner;
    char *params = NULL, *path = NULL;
    const char *format = NULL, *why = NULL;
    struct quoted q;
    int rc;

    params = malloc(XSW_VALUE_MAX + 1);
    if (!params)
        goto out;
    rc = xsw_read(vw->xs, m->params_path, params, XSW_VALUE_MAX + 1);
    if (rc < 0) {
        /* The backend going away is not an eject: libxl removes emulated
         * disks only with the domain. */
        log_ratelimited(LOG_WARN, "xenstore: %s: medium change ignored, "
                                  "params %s",
                        disk_index_name(m->index), read_problem(rc));
        goto out;
    }
    rc = parse_params(m->kind, params, &path, &format, &why);
    if (rc < 0) {
        if (rc == -EINVAL)
            log_ratelimited(LOG_WARN, "xenstore: %s: medium change ignored, "
                                      "params '%s' %s",
                            disk_index_name(m->index), quote(&q, params), why);
        goto out;
    }
    /* xenstored fires each new watch once, and again after a reconnection:
     * only a real change is news. */
    if (same_medium(m, path, format))
        goto out;
    free(m->path);
    m->path = path;
    m->format = format;
    path = NULL;
    free(params);
    params = NULL;
    log_info("xenstore: %s: %s%s", disk_index_name(m->index),
             m->path ? "medium " : "medium ejected",
             m->path ? m->path : "");
    /* Last: the callback may remove this watch and free m. */
    vw->changed(vw->opaque, m->index, m->path, m->format);
out:
    free(path);
    free(params);
}

void vbd_unwatch_media(struct vbd_watch *vw)
{
    if (!vw)
        return;
    for (unsigned i = 0; i < vw->count; i++) {
        struct vbd_media *m = &vw->media[i];

        if (m->w)
            xsw_unwatch(vw->xs, m->w);
        free(m->params_path);
        free(m->path);
    }
    free(vw);
}

int vbd_watch_media(struct xsw *xs, unsigned domid,
                    const struct disk_list *disks, vbd_media_fn changed,
                    void *opaque, struct vbd_watch **out)
{
    struct vbd_watch *vw;
    int rc = 0;

    *out = NULL;
    if (!changed)
        return -EINVAL;
    vw = calloc(1, sizeof(*vw));
    if (!vw)
        return -ENOMEM;
    vw->xs = xs;
    vw->changed = changed;
    vw->opaque = opaque;

    for (unsigned i = 0; i < disks->count; i++) {
        const struct disk_desc *d = &disks->disks[i];
        struct vbd_media *m = &vw->media[vw->count];
        xsw_path_t path;
        char token[32];

        if (!d->cdrom || !d->xs_backend)
            continue;
        if (backend_kind(d->xs_backend, domid, &m->kind)) {
            rc = -EINVAL;
            goto out;
        }
        rc = xsw_path(path, sizeof(path), "%s/params", d->xs_backend);
        if (rc < 0)
            goto out;
        m->owner = vw;
        m->index = d->index;
        vw->count++;
        m->params_path = strdup(path);
        if (!m->params_path) {
            rc = -ENOMEM;
            goto out;
        }
        if (d->path) {
            /* The list may be freed: keep our own copy of the medium. */
            m->format = static_format(d->format);
            m->path = strdup(d->path);
            if (!m->format) {
                rc = -EINVAL;
                goto out;
            }
            if (!m->path) {
                rc = -ENOMEM;
                goto out;
            }
        }
        snprintf(token, sizeof(token), "vbd-media-%u", d->index);
        rc = xsw_watch(xs, m->params_path, token, on_params, m, &m->w);
        if (rc < 0)
            goto out;
    }
    *out = vw;
    return 0;
out:
    vbd_unwatch_media(vw);
    return rc;
}

int vbd_report_eject(struct xsw *xs, const struct disk_desc *disk)
{
    xsw_path_t path;
    int rc;

    if (!disk->cdrom || !disk->xs_frontend)
        return -EINVAL;
    rc = xsw_path(path, sizeof(path), "%s/eject", disk->xs_frontend);
    if (rc < 0)
        return rc;
    return xsw_write(xs, path, "eject");
}
