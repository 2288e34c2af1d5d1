#include "drive.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DRIVE_KEY_MAX 31
#define DRIVE_ID_MAX 64
/* Characters of a command-line value quoted in an error message. */
#define DRIVE_QUOTE "%.64s"

/* Formats the block layer may be asked for, by QEMU name; host_device is
 * how a stub domain names a raw block device. */
static const struct {
    const char *name, *canonical;
} drive_formats[] = {
    {"raw", "raw"}, {"host_device", "raw"}, {"qcow2", "qcow2"},
    {"qcow", "qcow"}, {"vpc", "vpc"}, {"qed", "qed"},
};

static const char *const cache_modes[] = {
    "writeback", "writethrough", "none", "directsync", "unsafe",
};

/* Interfaces QEMU knows but xen-dm does not emulate. */
static const char *const other_interfaces[] = {
    "scsi", "virtio", "floppy", "pflash", "sd", "mtd", "xen",
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* --- QEMU's option syntax ---------------------------------------------- */

/* Takes the next item at *p: the key runs to '=' or ','; the value to the
 * next single ',' (",," is a literal comma). *value is NULL for an item
 * without '=' (QEMU's implied name, e.g. a -device driver). 1: an item;
 * 0: the end; -EINVAL (empty or over-long key); -ENOMEM. */
static int next_item(const char **p, char key[DRIVE_KEY_MAX + 1],
                     char **value)
{
    const char *s = *p;
    size_t klen = 0, vlen = 0;
    char *v;

    *value = NULL;
    if (!*s)
        return 0;
    while (s[klen] && s[klen] != '=' && s[klen] != ',')
        klen++;
    if (klen == 0 || klen > DRIVE_KEY_MAX)
        return -EINVAL;
    memcpy(key, s, klen);
    key[klen] = '\0';
    s += klen;
    if (*s != '=') {
        /* "key" alone, then ',' or the end; one trailing ',' is fine. */
        *value = NULL;
        *p = *s ? s + 1 : s;
        return 1;
    }
    s++;
    v = malloc(strlen(s) + 1);
    if (!v)
        return -ENOMEM;
    while (*s) {
        if (*s == ',') {
            if (s[1] != ',') {
                s++;
                break;
            }
            s++;
        }
        v[vlen++] = *s++;
    }
    v[vlen] = '\0';
    *value = v;
    *p = s;
    return 1;
}

/* Decimal, digits only, at most max. */
static int parse_small_uint(const char *s, int max, int *out)
{
    long v = 0;

    if (!*s || strlen(s) > 9)
        return -EINVAL;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return -EINVAL;
        v = v * 10 + (*c - '0');
    }
    if (v > max)
        return -ERANGE;
    *out = (int)v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    if (!strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "true"))
        *out = 1;
    else if (!strcmp(s, "off") || !strcmp(s, "no") || !strcmp(s, "false"))
        *out = 0;
    else
        return -EINVAL;
    return 0;
}

/* QEMU's id syntax: a letter, then letters, digits, '-', '.', '_'. */
static bool valid_id(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > DRIVE_ID_MAX ||
        !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789-._") == n;
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(s, list[i]))
            return true;
    }
    return false;
}

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* --- -drive ------------------------------------------------------------ */

void drive_opts_free(struct drive_opts *d)
{
    free(d->file);
    free(d->format);
    free(d->id);
    free(d->cache);
    d->file = d->format = d->id = d->cache = NULL;
}

enum drive_key {
    KEY_FILE, KEY_IF, KEY_INDEX, KEY_BUS, KEY_UNIT, KEY_MEDIA,
    KEY_FORMAT, KEY_CACHE, KEY_READONLY, KEY_ID, KEY_COUNT
};

static const char *const drive_keys[KEY_COUNT] = {
    [KEY_FILE] = "file",     [KEY_IF] = "if",         [KEY_INDEX] = "index",
    [KEY_BUS] = "bus",       [KEY_UNIT] = "unit",     [KEY_MEDIA] = "media",
    [KEY_FORMAT] = "format", [KEY_CACHE] = "cache",   [KEY_READONLY] = "readonly",
    [KEY_ID] = "id",
};

/* Applies one key=value to d; the value is consumed. */
static int drive_set(struct drive_opts *d, const char *key, char *value,
                     unsigned *seen, char *err, size_t errlen)
{
    unsigned k, f;
    int rc = 0;

    for (k = 0; k < KEY_COUNT && strcmp(key, drive_keys[k]); k++)
        ;
    if (k == KEY_COUNT) {
        rc = fail(err, errlen, -EINVAL,
                  "-drive: option '" DRIVE_QUOTE "' is not supported", key);
        goto out;
    }
    if (*seen & (1u << k)) {
        rc = fail(err, errlen, -EINVAL, "-drive: '%s' given twice", key);
        goto out;
    }
    *seen |= 1u << k;

    switch ((enum drive_key)k) {
    case KEY_FILE:
        if (strlen(value) >= PATH_MAX) {
            rc = fail(err, errlen, -EINVAL, "-drive: file name too long");
            goto out;
        }
        /* file= (empty) is a drive without a medium, as in QEMU. */
        if (*value) {
            d->file = value;
            value = NULL;
        }
        break;
    case KEY_IF:
        if (!strcmp(value, "ide"))
            d->iface = DRIVE_IF_IDE;
        else if (!strcmp(value, "none"))
            d->iface = DRIVE_IF_NONE;
        else if (in_list(value, other_interfaces, ARRAY_LEN(other_interfaces)))
            rc = fail(err, errlen, -EINVAL,
                      "-drive: if=%s is not emulated (xen-dm has IDE disks "
                      "only)",
                      value);
        else
            rc = fail(err, errlen, -EINVAL,
                      "-drive: unknown interface if=" DRIVE_QUOTE, value);
        break;
    case KEY_INDEX:
        rc = parse_small_uint(value, INT_MAX, &d->index);
        if (rc == 0 && d->index >= DISK_MAX)
            rc = -ERANGE;
        if (rc)
            rc = fail(err, errlen, -EINVAL,
                      "-drive: index=" DRIVE_QUOTE " is not 0-3 (xen-dm "
                      "emulates hda-hdd only)",
                      value);
        break;
    case KEY_BUS:
    case KEY_UNIT:
        if (parse_small_uint(value, 1, k == KEY_BUS ? &d->bus : &d->unit))
            rc = fail(err, errlen, -EINVAL,
                      "-drive: %s=" DRIVE_QUOTE " is not 0 or 1 (two IDE "
                      "channels, master and slave)",
                      key, value);
        break;
    case KEY_MEDIA:
        if (!strcmp(value, "disk"))
            d->media = DRIVE_MEDIA_DISK;
        else if (!strcmp(value, "cdrom"))
            d->media = DRIVE_MEDIA_CDROM;
        else
            rc = fail(err, errlen, -EINVAL,
                      "-drive: media=" DRIVE_QUOTE " is not disk or cdrom",
                      value);
        break;
    case KEY_FORMAT:
        for (f = 0; f < ARRAY_LEN(drive_formats); f++) {
            if (!strcmp(value, drive_formats[f].name))
                break;
        }
        if (f == ARRAY_LEN(drive_formats)) {
            rc = fail(err, errlen, -EINVAL,
                      "-drive: format=" DRIVE_QUOTE " is not supported",
                      value);
        } else {
            d->format = strdup(drive_formats[f].canonical);
            if (!d->format)
                rc = fail(err, errlen, -ENOMEM, "-drive: out of memory");
        }
        break;
    case KEY_CACHE:
        if (!in_list(value, cache_modes, ARRAY_LEN(cache_modes))) {
            rc = fail(err, errlen, -EINVAL,
                      "-drive: cache=" DRIVE_QUOTE " is not a cache mode",
                      value);
        } else {
            d->cache = value;
            value = NULL;
        }
        break;
    case KEY_READONLY:
        if (parse_bool(value, &d->readonly))
            rc = fail(err, errlen, -EINVAL,
                      "-drive: readonly=" DRIVE_QUOTE " is not on or off",
                      value);
        break;
    case KEY_ID:
    case KEY_COUNT:
        if (!valid_id(value)) {
            rc = fail(err, errlen, -EINVAL,
                      "-drive: id=" DRIVE_QUOTE " is not a valid id", value);
        } else {
            d->id = value;
            value = NULL;
        }
        break;
    }
out:
    free(value);
    return rc;
}

int drive_parse(const char *arg, struct drive_opts *out, char *err,
                size_t errlen)
{
    const char *p = arg;
    char key[DRIVE_KEY_MAX + 1];
    char *value;
    unsigned seen = 0;
    int rc;

    *out = (struct drive_opts){
        .iface = DRIVE_IF_IDE,
        .media = DRIVE_MEDIA_DISK,
        .index = -1,
        .bus = -1,
        .unit = -1,
        .readonly = -1,
    };
    while ((rc = next_item(&p, key, &value)) == 1) {
        if (!value)
            return fail(err, errlen, -EINVAL,
                        "-drive: '" DRIVE_QUOTE "' is not key=value", key);
        rc = drive_set(out, key, value, &seen, err, errlen);
        if (rc)
            return rc;
    }
    if (rc == -ENOMEM)
        return fail(err, errlen, rc, "-drive: out of memory");
    if (rc < 0)
        return fail(err, errlen, rc,
                    "-drive: empty or over-long option name in '" DRIVE_QUOTE
                    "'",
                    arg);

    /* Probing the format of an image the guest writes would let it pick
     * the format (a raw disk dressed up as qcow2 with a backing file). */
    if (out->file && !out->format)
        return fail(err, errlen, -EINVAL,
                    "-drive: file=" DRIVE_QUOTE " needs format=", out->file);
    if (!out->file && out->format) {
        free(out->format);
        out->format = NULL;
    }
    if (out->iface == DRIVE_IF_NONE) {
        if (out->index >= 0 || out->bus >= 0 || out->unit >= 0 ||
            (seen & (1u << KEY_MEDIA)))
            return fail(err, errlen, -EINVAL,
                        "-drive: index, bus, unit and media need if=ide (with "
                        "if=none the -device decides)");
        if (!out->id)
            return fail(err, errlen, -EINVAL,
                        "-drive: if=none needs an id= for its -device");
        return 0;
    }
    if (out->index >= 0 && (out->bus >= 0 || out->unit >= 0))
        return fail(err, errlen, -EINVAL,
                    "-drive: index cannot be used with bus and unit");
    if (out->media == DRIVE_MEDIA_DISK) {
        if (!out->file)
            return fail(err, errlen, -EINVAL,
                        "-drive: an IDE hard disk needs file=");
        if (out->readonly == 1)
            return fail(err, errlen, -EINVAL,
                        "-drive: read-only IDE hard disks are not supported "
                        "(libxl refuses them too)");
    }
    return 0;
}

/* --- drives and devices into disks -------------------------------------- */

/* A -device that is an IDE drive. */
struct ide_device {
    bool cdrom;
    char *id, *drive;
    int bus, unit; /* -1: first free */
};

static void ide_device_free(struct ide_device *dev)
{
    free(dev->id);
    free(dev->drive);
    dev->id = dev->drive = NULL;
}

/* The value of drive= in an -device, NULL if absent or unparseable. */
static char *device_drive_ref(const char *arg)
{
    const char *p = arg;
    char key[DRIVE_KEY_MAX + 1];
    char *value, *found = NULL;

    while (next_item(&p, key, &value) == 1) {
        if (value && !strcmp(key, "drive")) {
            free(found);
            found = value;
        } else {
            free(value);
        }
    }
    return found;
}

/* 1: arg is an ide-cd/ide-hd device, parsed into dev; 0: some other
 * device (driver copied into driver); negative: a bad IDE device. */
static int parse_device(const char *arg, struct ide_device *dev,
                        char *driver, size_t driver_size, char *err,
                        size_t errlen)
{
    const char *p = arg;
    char key[DRIVE_KEY_MAX + 1];
    char *value = NULL;
    unsigned seen = 0;
    int rc;

    *dev = (struct ide_device){.bus = -1, .unit = -1};
    driver[0] = '\0';
    /* QEMU's implied first name: the driver. */
    rc = next_item(&p, key, &value);
    if (rc == 1 && !value)
        snprintf(driver, driver_size, "%s", key);
    else if (rc == 1 && !strcmp(key, "driver"))
        snprintf(driver, driver_size, "%s", value);
    free(value);
    if (rc <= 0)
        return 0;
    if (strcmp(driver, "ide-cd") && strcmp(driver, "ide-hd"))
        return 0;
    dev->cdrom = !strcmp(driver, "ide-cd");

    while ((rc = next_item(&p, key, &value)) == 1) {
        unsigned bit;

        if (!value) {
            rc = fail(err, errlen, -EINVAL,
                      "-device %s: '" DRIVE_QUOTE "' is not key=value",
                      driver, key);
            goto fail;
        }
        bit = !strcmp(key, "id")      ? 1
              : !strcmp(key, "drive") ? 2
              : !strcmp(key, "bus")   ? 4
              : !strcmp(key, "unit")  ? 8
                                      : 0;
        if (!bit) {
            rc = fail(err, errlen, -EINVAL,
                      "-device %s: option '" DRIVE_QUOTE "' is not supported",
                      driver, key);
            goto fail;
        }
        if (seen & bit) {
            rc = fail(err, errlen, -EINVAL, "-device %s: '%s' given twice",
                      driver, key);
            goto fail;
        }
        seen |= bit;
        if (bit == 1) {
            if (!valid_id(value)) {
                rc = fail(err, errlen, -EINVAL,
                          "-device %s: id=" DRIVE_QUOTE " is not a valid id",
                          driver, value);
                goto fail;
            }
            dev->id = value;
            value = NULL;
        } else if (bit == 2) {
            dev->drive = value;
            value = NULL;
        } else if (bit == 4) {
            if (!strncmp(value, "ahci", 4)) {
                rc = fail(err, errlen, -EINVAL,
                          "-device %s: bus=" DRIVE_QUOTE ": AHCI is not "
                          "emulated (IDE only)",
                          driver, value);
                goto fail;
            }
            if (strcmp(value, "ide.0") && strcmp(value, "ide.1")) {
                rc = fail(err, errlen, -EINVAL,
                          "-device %s: bus=" DRIVE_QUOTE " is not ide.0 or "
                          "ide.1",
                          driver, value);
                goto fail;
            }
            dev->bus = value[4] - '0';
        } else if (parse_small_uint(value, 1, &dev->unit)) {
            rc = fail(err, errlen, -EINVAL,
                      "-device %s: unit=" DRIVE_QUOTE " is not 0 or 1",
                      driver, value);
            goto fail;
        }
        free(value);
        value = NULL;
    }
    if (rc == -ENOMEM) {
        rc = fail(err, errlen, rc, "-device: out of memory");
        goto fail;
    }
    if (rc < 0) {
        rc = fail(err, errlen, -EINVAL,
                  "-device %s: empty or over-long option name", driver);
        goto fail;
    }
    return 1;
fail:
    free(value);
    ide_device_free(dev);
    return rc;
}

/* First free index from start upwards, or -1. */
static int first_free(const struct disk_list *l, int start)
{
    for (int i = start; i < DISK_MAX; i++) {
        if (!disk_list_find(l, (unsigned)i))
            return i;
    }
    return -1;
}

static int add_disk(struct disk_list *out, const struct disk_desc *d,
                    const char *what, char *err, size_t errlen)
{
    int rc = disk_list_add(out, d);

    if (rc == -EEXIST)
        return fail(err, errlen, -EINVAL, "%s: %s is already taken", what,
                    disk_index_name(d->index));
    if (rc == -ENOMEM)
        return fail(err, errlen, rc, "%s: out of memory", what);
    if (rc < 0)
        return fail(err, errlen, -EINVAL, "%s: not a usable disk", what);
    return 0;
}

static int attach_device(const struct drive_opts *drives, unsigned n,
                         bool *used, const struct ide_device *dev,
                         const char *driver, struct disk_list *out,
                         char *err, size_t errlen)
{
    const struct drive_opts *drv = NULL;
    struct disk_desc d = {.cdrom = dev->cdrom};
    int index;

    if (dev->drive) {
        unsigned i;

        for (i = 0; i < n && !(drives[i].id && !strcmp(drives[i].id,
                                                         dev->drive));
             i++)
            ;
        if (i == n)
            return fail(err, errlen, -EINVAL,
                        "-device %s: no -drive with id=" DRIVE_QUOTE, driver,
                        dev->drive);
        drv = &drives[i];
        if (drv->iface != DRIVE_IF_NONE)
            return fail(err, errlen, -EINVAL,
                        "-device %s: drive " DRIVE_QUOTE " is if=ide, which "
                        "already attaches it",
                        driver, dev->drive);
        if (used[i])
            return fail(err, errlen, -EINVAL,
                        "-device %s: drive " DRIVE_QUOTE " is used twice",
                        driver, dev->drive);
        used[i] = true;
    } else if (!dev->cdrom) {
        return fail(err, errlen, -EINVAL, "-device ide-hd needs drive=");
    }

    if (dev->bus >= 0 && dev->unit >= 0)
        index = dev->bus * 2 + dev->unit;
    else if (dev->bus >= 0)
        index = disk_list_find(out, (unsigned)dev->bus * 2)
                    ? dev->bus * 2 + 1
                    : dev->bus * 2;
    else if (dev->unit >= 0)
        index = !disk_list_find(out, (unsigned)dev->unit) ? dev->unit
                : !disk_list_find(out, 2 + (unsigned)dev->unit)
                    ? 2 + dev->unit
                    : -1;
    else
        index = first_free(out, 0);
    if (index < 0)
        return fail(err, errlen, -EINVAL, "-device %s: no free IDE position",
                    driver);
    if (!dev->cdrom) {
        if (!drv->file)
            return fail(err, errlen, -EINVAL,
                        "-device ide-hd: drive " DRIVE_QUOTE " has no file=",
                        dev->drive);
        if (drv->readonly == 1)
            return fail(err, errlen, -EINVAL,
                        "-device ide-hd: read-only IDE hard disks are not "
                        "supported (libxl refuses them too)");
    }
    d.index = (unsigned)index;
    d.readonly = dev->cdrom || drv->readonly == 1;
    d.path = drv ? drv->file : NULL;
    d.format = drv ? drv->format : NULL;
    d.id = dev->id ? dev->id : drv ? drv->id : NULL;
    return add_disk(out, &d, dev->cdrom ? "-device ide-cd" : "-device ide-hd",
                    err, errlen);
}

int drives_to_disks(const struct drive_opts *drives, unsigned n,
                    const char *const *devices, unsigned ndevices,
                    struct disk_list *out, char *err, size_t errlen)
{
    bool *used = NULL;
    int rc = 0;

    disk_list_init(out);
    if (n) {
        used = calloc(n, sizeof(*used));
        if (!used)
            return fail(err, errlen, -ENOMEM, "out of memory");
    }
    for (unsigned i = 0; i < n; i++) {
        for (unsigned j = 0; j < i && drives[i].id; j++) {
            if (drives[j].id && !strcmp(drives[i].id, drives[j].id)) {
                rc = fail(err, errlen, -EINVAL,
                          "-drive: id=" DRIVE_QUOTE " is used twice",
                          drives[i].id);
                goto out;
            }
        }
    }

    /* if=ide drives first, in order, as QEMU creates them before any
     * -device: an automatic position is the first one free so far. */
    for (unsigned i = 0; i < n; i++) {
        const struct drive_opts *drv = &drives[i];
        struct disk_desc d = {0};
        int index;

        if (drv->iface != DRIVE_IF_IDE)
            continue;
        used[i] = true;
        if (drv->index >= 0)
            index = drv->index;
        else if (drv->unit >= 0)
            index = (drv->bus >= 0 ? drv->bus : 0) * 2 + drv->unit;
        else
            index = first_free(out, drv->bus >= 0 ? drv->bus * 2 : 0);
        if (index < 0) {
            rc = fail(err, errlen, -EINVAL, "-drive: no free IDE position");
            goto out;
        }
        d.index = (unsigned)index;
        d.cdrom = drv->media == DRIVE_MEDIA_CDROM;
        d.readonly = d.cdrom || drv->readonly == 1;
        d.path = drv->file;
        d.format = drv->format;
        d.id = drv->id;
        rc = add_disk(out, &d, "-drive", err, errlen);
        if (rc)
            goto out;
    }

    for (unsigned i = 0; i < ndevices; i++) {
        struct ide_device dev;
        char driver[DRIVE_KEY_MAX + 1];

        rc = parse_device(devices[i], &dev, driver, sizeof(driver), err,
                          errlen);
        if (rc < 0)
            goto out;
        if (rc == 0) {
            /* Not an IDE drive: it must not claim one of ours. */
            char *ref = device_drive_ref(devices[i]);

            for (unsigned j = 0; ref && j < n; j++) {
                if (drives[j].id && !strcmp(drives[j].id, ref)) {
                    rc = fail(err, errlen, -EINVAL,
                              "-device " DRIVE_QUOTE ": drive " DRIVE_QUOTE
                              " is attached to a device xen-dm does not "
                              "emulate (IDE only)",
                              driver, ref);
                    break;
                }
            }
            free(ref);
            if (rc < 0)
                goto out;
            continue;
        }
        rc = attach_device(drives, n, used, &dev, driver, out, err, errlen);
        ide_device_free(&dev);
        if (rc)
            goto out;
    }

    for (unsigned i = 0; i < n; i++) {
        if (!used[i]) {
            rc = fail(err, errlen, -EINVAL,
                      "-drive: drive " DRIVE_QUOTE " (if=none) is not used by "
                      "an ide-cd or ide-hd device",
                      drives[i].id ? drives[i].id : "?");
            goto out;
        }
    }
    rc = 0;
out:
    free(used);
    if (rc)
        disk_list_free(out);
    return rc;
}
