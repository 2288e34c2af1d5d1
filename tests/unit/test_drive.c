/* Tests for the qemu-xen -drive/-device disk options (dm/drive.c): every
 * form libxl emits, QEMU's option syntax with ",," escaping, and each
 * refusal with the reason it gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../block/disk.h"
#include "../../dm/drive.h"

#define MAX_DRIVES 8

static void parse_ok(const char *arg, struct drive_opts *d)
{
    char err[256] = "";
    int rc = drive_parse(arg, d, err, sizeof(err));

    if (rc)
        fail_msg("drive_parse(\"%s\") = %d: %s", arg, rc, err);
}

/* The argument is refused with a message containing why. */
static void parse_refused(const char *arg, const char *why)
{
    struct drive_opts d;
    char err[256] = "";
    int rc = drive_parse(arg, &d, err, sizeof(err));

    drive_opts_free(&d);
    if (rc != -EINVAL)
        fail_msg("drive_parse(\"%s\") = %d, want -EINVAL", arg, rc);
    if (!strstr(err, why))
        fail_msg("drive_parse(\"%s\"): '%s' does not say '%s'", arg, err, why);
}

/* Parses every -drive, then builds the list; rc of drives_to_disks. */
static int build(const char *const *drive_args, unsigned n,
                 const char *const *devices, unsigned ndevices,
                 struct disk_list *out, char *err, size_t errlen)
{
    struct drive_opts drives[MAX_DRIVES];
    int rc;

    assert_true(n <= MAX_DRIVES);
    for (unsigned i = 0; i < n; i++)
        parse_ok(drive_args[i], &drives[i]);
    err[0] = '\0';
    rc = drives_to_disks(drives, n, devices, ndevices, out, err, errlen);
    for (unsigned i = 0; i < n; i++)
        drive_opts_free(&drives[i]);
    return rc;
}

static void build_refused(const char *const *drive_args, unsigned n,
                          const char *const *devices, unsigned ndevices,
                          const char *why)
{
    struct disk_list l;
    char err[256];
    int rc = build(drive_args, n, devices, ndevices, &l, err, sizeof(err));

    if (rc != -EINVAL)
        fail_msg("drives_to_disks = %d, want -EINVAL (%s)", rc, err);
    if (!strstr(err, why))
        fail_msg("drives_to_disks: '%s' does not say '%s'", err, why);
    /* Nothing is handed out on failure. */
    assert_int_equal(l.count, 0);
}

static void assert_disk(const struct disk_list *l, unsigned index, bool cdrom,
                        bool readonly, const char *path, const char *format,
                        const char *id)
{
    const struct disk_desc *d = disk_list_find(l, index);

    assert_non_null(d);
    assert_int_equal(d->index, index);
    assert_int_equal(d->cdrom, cdrom);
    assert_int_equal(d->readonly, readonly);
    if (path)
        assert_string_equal(d->path, path);
    else
        assert_null(d->path);
    if (format)
        assert_string_equal(d->format, format);
    else
        assert_null(d->format);
    if (id)
        assert_string_equal(d->id, id);
    else
        assert_null(d->id);
    assert_null(d->xs_frontend);
    assert_null(d->xs_backend);
}

/* --- the forms libxl emits -------------------------------------------- */

static void test_libxl_hard_disk(void **state)
{
    const char *drv[] = {"file=/var/lib/xen/images/guest.qcow2,if=ide,"
                         "index=0,media=disk,format=qcow2,cache=writeback"};
    struct drive_opts d;
    struct disk_list l;
    char err[256];

    (void)state;
    parse_ok(drv[0], &d);
    assert_int_equal(d.iface, DRIVE_IF_IDE);
    assert_int_equal(d.media, DRIVE_MEDIA_DISK);
    assert_int_equal(d.index, 0);
    assert_int_equal(d.bus, -1);
    assert_int_equal(d.unit, -1);
    assert_int_equal(d.readonly, -1);
    assert_string_equal(d.file, "/var/lib/xen/images/guest.qcow2");
    assert_string_equal(d.format, "qcow2");
    assert_string_equal(d.cache, "writeback");
    assert_null(d.id);
    drive_opts_free(&d);

    assert_int_equal(build(drv, 1, NULL, 0, &l, err, sizeof(err)), 0);
    assert_int_equal(l.count, 1);
    assert_disk(&l, 0, false, false, "/var/lib/xen/images/guest.qcow2",
                "qcow2", NULL);
    disk_list_free(&l);
}

/* libxl 4.15+: an if=none drive and an ide-cd device. */
static void test_libxl_cdrom_pair(void **state)
{
    const char *drv[] = {"if=none,readonly=on,id=ide-5632,file=/iso/d.iso,"
                         "format=raw"};
    const char *dev[] = {"ide-cd,id=ide-5632,drive=ide-5632,bus=ide.1,unit=0"};
    const char *empty[] = {"if=none,readonly=on,id=ide-5632"};
    struct drive_opts d;
    struct disk_list l;
    char err[256];

    (void)state;
    parse_ok(drv[0], &d);
    assert_int_equal(d.iface, DRIVE_IF_NONE);
    assert_int_equal(d.readonly, 1);
    assert_string_equal(d.id, "ide-5632");
    drive_opts_free(&d);

    assert_int_equal(build(drv, 1, dev, 1, &l, err, sizeof(err)), 0);
    assert_int_equal(l.count, 1);
    assert_disk(&l, 2, true, true, "/iso/d.iso", "raw", "ide-5632");
    disk_list_free(&l);

    /* An empty drive: no file, no format. */
    assert_int_equal(build(empty, 1, dev, 1, &l, err, sizeof(err)), 0);
    assert_int_equal(l.count, 1);
    assert_disk(&l, 2, true, true, NULL, NULL, "ide-5632");
    disk_list_free(&l);
}

/* libxl before 4.15: one if=ide drive with media=cdrom. */
static void test_libxl_old_cdrom(void **state)
{
    const char *drv[] = {
        "if=ide,index=3,readonly=on,media=cdrom,id=ide-5696,file=/iso/w.iso,"
        "format=raw",
        "if=ide,index=2,readonly=on,media=cdrom,id=ide-5632",
    };
    struct disk_list l;
    char err[256];

    (void)state;
    assert_int_equal(build(drv, 2, NULL, 0, &l, err, sizeof(err)), 0);
    assert_int_equal(l.count, 2);
    assert_disk(&l, 2, true, true, NULL, NULL, "ide-5632");
    assert_disk(&l, 3, true, true, "/iso/w.iso", "raw", "ide-5696");
    /* Sorted by index whatever the command-line order. */
    assert_int_equal(l.disks[0].index, 2);
    assert_int_equal(l.disks[1].index, 3);
    disk_list_free(&l);
}

/* A whole libxl command line: two disks, a CD-ROM and unrelated devices. */
static void test_libxl_full_command_line(void **state)
{
    const char *drv[] = {
        "file=/dev/vg/guest,if=ide,index=0,media=disk,format=raw,"
        "cache=writeback",
        "file=/img/data.vhd,if=ide,index=1,media=disk,format=vpc,"
        "cache=writeback",
        "if=none,readonly=on,id=ide-5632,file=/iso/inst.iso,format=raw",
    };
    const char *dev[] = {
        "VGA,vgamem_mb=16",
        "piix3-usb-uhci,id=usb",
        "rtl8139,id=nic0,netdev=net0,mac=00:16:3e:00:00:01",
        "ide-cd,id=ide-5632,drive=ide-5632,bus=ide.1,unit=0",
        "xen-pvdevice,device-id=0xc000",
    };
    struct disk_list l;
    char err[256];

    (void)state;
    assert_int_equal(build(drv, 3, dev, 5, &l, err, sizeof(err)), 0);
    assert_int_equal(l.count, 3);
    assert_disk(&l, 0, false, false, "/dev/vg/guest", "raw", NULL);
    assert_disk(&l, 1, false, false, "/img/data.vhd", "vpc", NULL);
    assert_disk(&l, 2, true, true, "/iso/inst.iso", "raw", "ide-5632");
    assert_null(disk_list_find(&l, 3));
    disk_list_free(&l);
}

static void test_formats(void **state)
{
    static const struct {
        const char *arg, *format;
    } cases[] = {
        {"file=/a,format=raw", "raw"},
        {"file=/a,format=qcow2", "qcow2"},
        {"file=/a,format=qcow", "qcow"},
        {"file=/a,format=vpc", "vpc"},
        {"file=/a,format=qed", "qed"},
        /* A stub domain's block device. */
        {"file=/dev/xvda,format=host_device", "raw"},
    };
    struct drive_opts d;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        parse_ok(cases[i].arg, &d);
        assert_string_equal(d.format, cases[i].format);
        drive_opts_free(&d);
    }
    parse_refused("file=/a,format=vmdk", "format=vmdk is not supported");
    parse_refused("file=/a,format=", "format= is not supported");
    parse_refused("file=/a,format=json:{}", "is not supported");
}

/* ",," is a comma inside a value; '=' in a value is plain. */
static void test_escaping(void **state)
{
    static const struct {
        const char *arg, *file;
    } cases[] = {
        {"file=/img/a,,b.raw,if=ide,index=1,format=raw", "/img/a,b.raw"},
        {"file=/img/,,,,x,format=raw", "/img/,,x"},
        {"format=raw,file=/img/trailing,,", "/img/trailing,"},
        {"file=/img/a=b,format=raw", "/img/a=b"},
        {"file=,,lead,format=raw", ",lead"},
        /* One trailing comma ends the list, as in QEMU. */
        {"file=/img/t,format=raw,", "/img/t"},
    };
    struct drive_opts d;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        parse_ok(cases[i].arg, &d);
        assert_string_equal(d.file, cases[i].file);
        assert_string_equal(d.format, "raw");
        drive_opts_free(&d);
    }
    /* "file=/a,,format=raw" is one file name: and then no format. */
    parse_refused("file=/a,,format=raw", "needs format=");

    /* An escaped comma in an -device value (ids cannot hold one). */
    const char *drv[] = {"if=none,id=cd,file=/iso/x,,y.iso,format=raw"};
    const char *dev[] = {"ide-cd,drive=cd,bus=ide.0,unit=1"};
    struct disk_list l;
    char err[256];

    assert_int_equal(build(drv, 1, dev, 1, &l, err, sizeof(err)), 0);
    assert_disk(&l, 1, true, true, "/iso/x,y.iso", "raw", "cd");
    disk_list_free(&l);
}

/* bus/unit instead of index, and automatic positions as QEMU assigns them. */
static void test_positions(void **state)
{
    const char *drv[] = {
        "file=/a,format=raw",                  /* if=ide by default: hda */
        "file=/b,format=raw,bus=1,unit=1",     /* hdd */
        "file=/c,format=raw",                  /* next free: hdb */
        "file=/d,format=raw,bus=1",            /* first free on bus 1: hdc */
    };
    const char *unit_only[] = {"file=/u,format=raw,unit=1"};
    struct disk_list l;
    char err[256];

    (void)state;
    assert_int_equal(build(drv, 4, NULL, 0, &l, err, sizeof(err)), 0);
    assert_int_equal(l.count, 4);
    assert_disk(&l, 0, false, false, "/a", "raw", NULL);
    assert_disk(&l, 1, false, false, "/c", "raw", NULL);
    assert_disk(&l, 2, false, false, "/d", "raw", NULL);
    assert_disk(&l, 3, false, false, "/b", "raw", NULL);
    disk_list_free(&l);

    assert_int_equal(build(unit_only, 1, NULL, 0, &l, err, sizeof(err)), 0);
    assert_disk(&l, 1, false, false, "/u", "raw", NULL);
    disk_list_free(&l);

    /* ide-cd without bus/unit takes the first free position after the
     * if=ide drives; with bus only, the free unit of that bus; without
     * drive= it is an empty CD-ROM. */
    const char *drv2[] = {"file=/a,format=raw,index=0",
                          "if=none,id=cd1,file=/x.iso,format=raw",
                          "if=none,id=cd2"};
    const char *dev2[] = {"ide-cd,drive=cd1", "ide-cd,bus=ide.1,drive=cd2",
                          "driver=ide-cd,bus=ide.1,id=cd3"};

    assert_int_equal(build(drv2, 3, dev2, 3, &l, err, sizeof(err)), 0);
    assert_int_equal(l.count, 4);
    assert_disk(&l, 1, true, true, "/x.iso", "raw", "cd1");
    assert_disk(&l, 2, true, true, NULL, NULL, "cd2");
    assert_disk(&l, 3, true, true, NULL, NULL, "cd3");
    disk_list_free(&l);

    /* ide-cd with unit only: that unit on the first bus where it is free. */
    const char *drv3[] = {"file=/a,format=raw,index=1", "if=none,id=cd"};
    const char *dev3[] = {"ide-cd,drive=cd,unit=1"};

    assert_int_equal(build(drv3, 2, dev3, 1, &l, err, sizeof(err)), 0);
    assert_disk(&l, 3, true, true, NULL, NULL, "cd");
    disk_list_free(&l);
}

/* ide-hd on an IDE bus is QEMU's other spelling of an IDE hard disk. */
static void test_ide_hd_device(void **state)
{
    const char *drv[] = {"if=none,id=hd,file=/img/h.qcow2,format=qcow2,"
                         "cache=none"};
    const char *dev[] = {"ide-hd,drive=hd,bus=ide.0,unit=0,id=disk0"};
    struct disk_list l;
    char err[256];

    (void)state;
    assert_int_equal(build(drv, 1, dev, 1, &l, err, sizeof(err)), 0);
    assert_int_equal(l.count, 1);
    assert_disk(&l, 0, false, false, "/img/h.qcow2", "qcow2", "disk0");
    disk_list_free(&l);
}

/* --- refusals ---------------------------------------------------------- */

static void test_parse_refusals(void **state)
{
    char long_file[PATH_MAX + 32];

    (void)state;
    /* What xen-dm does not emulate. */
    parse_refused("file=/a,format=raw,if=scsi,bus=0,unit=0", "if=scsi is not "
                                                            "emulated");
    parse_refused("file=/a,format=raw,if=virtio", "if=virtio is not emulated");
    parse_refused("file=/a,format=raw,if=floppy", "not emulated");
    parse_refused("file=/a,format=raw,if=ahci", "unknown interface if=ahci");
    parse_refused("file=/a,format=raw,if=ide,index=4", "index=4 is not 0-3");
    parse_refused("file=/a,format=raw,if=ide,index=99999999999",
                  "is not 0-3");
    parse_refused("file=/a,format=raw,index=-1", "index=-1 is not 0-3");
    parse_refused("file=/a,format=raw,index=+1", "is not 0-3");
    parse_refused("file=/a,format=raw,index=", "is not 0-3");
    parse_refused("file=/a,format=raw,bus=2", "bus=2 is not 0 or 1");
    parse_refused("file=/a,format=raw,unit=2", "unit=2 is not 0 or 1");
    parse_refused("file=/a,format=raw,index=1,bus=0", "index cannot be used");
    /* libxl refuses read-only IDE hard disks; so do we. */
    parse_refused("file=/a,if=ide,index=0,media=disk,format=raw,readonly=on",
                  "read-only IDE hard disks are not supported");
    parse_refused("file=/a,format=raw,readonly=yes", "read-only IDE hard");
    parse_refused("if=ide,index=0,media=disk", "needs file=");
    parse_refused("file=,format=raw", "needs file=");
    parse_refused("file=/a,media=floppy,format=raw", "media=floppy is not");
    /* No format probing. */
    parse_refused("file=/a,if=ide,index=0", "file=/a needs format=");
    /* if=none: the device decides position and media; it needs an id. */
    parse_refused("if=none,id=x,index=1", "need if=ide");
    parse_refused("if=none,id=x,media=cdrom", "need if=ide");
    parse_refused("if=none,readonly=on,file=/a,format=raw", "needs an id=");
    /* Syntax. */
    parse_refused("file=/a,format=raw,snapshot=on", "option 'snapshot' is "
                                                    "not supported");
    parse_refused("file=/a,format=raw,readonly", "'readonly' is not "
                                                 "key=value");
    parse_refused("/a,format=raw", "'/a' is not key=value");
    parse_refused("file=/a,format=raw,file=/b", "'file' given twice");
    parse_refused(",file=/a,format=raw", "empty or over-long option name");
    parse_refused("file=/a,format=raw,,", "format=raw, is not supported");
    parse_refused("file=/a,format=raw,averyveryveryveryverylongoptionname=1",
                  "empty or over-long option name");
    parse_refused("file=/a,format=raw,cache=sometimes", "cache=sometimes is "
                                                        "not a cache mode");
    parse_refused("file=/a,format=raw,readonly=maybe", "readonly=maybe is "
                                                       "not on or off");
    parse_refused("file=/a,format=raw,id=1abc", "id=1abc is not a valid id");
    parse_refused("file=/a,format=raw,id=a/b", "is not a valid id");
    memset(long_file, 'x', sizeof(long_file));
    memcpy(long_file, "file=/", 6);
    snprintf(long_file + PATH_MAX + 6, 26, ",format=raw");
    parse_refused(long_file, "file name too long");
}

static void test_build_refusals(void **state)
{
    (void)state;
    /* if=none without its ide-cd. */
    {
        const char *drv[] = {"if=none,readonly=on,id=ide-5632"};
        const char *dev[] = {"VGA"};

        build_refused(drv, 1, dev, 1, "ide-5632 (if=none) is not used");
        build_refused(drv, 1, NULL, 0, "is not used by an ide-cd");
    }
    /* libxl's SCSI form. */
    {
        const char *drv[] = {"file=/img/s,id=scsi0-hd0,format=raw,if=none,"
                             "readonly=off,cache=writeback"};
        const char *dev[] = {"lsi53c895a", "scsi-hd,drive=scsi0-hd0,"
                                           "scsi-id=0"};

        build_refused(drv, 1, dev, 2, "drive scsi0-hd0 is attached to a "
                                      "device xen-dm does not emulate");
    }
    /* libxl's AHCI form. */
    {
        const char *drv[] = {"file=/img/a,if=none,id=ahcidisk-0,format=raw,"
                             "cache=writeback"};
        const char *dev[] = {"ahci,id=ahci0",
                             "ide-hd,bus=ahci0.0,unit=0,drive=ahcidisk-0"};

        build_refused(drv, 1, dev, 2, "AHCI is not emulated");
    }
    /* Dangling, doubled and misused drive references. */
    {
        const char *drv[] = {"if=none,id=cd"};
        const char *dev[] = {"ide-cd,drive=nope,bus=ide.1,unit=0"};
        const char *twice[] = {"ide-cd,drive=cd,bus=ide.1,unit=0",
                               "ide-cd,drive=cd,bus=ide.1,unit=1"};

        build_refused(drv, 1, dev, 1, "no -drive with id=nope");
        build_refused(drv, 1, twice, 2, "drive cd is used twice");
    }
    {
        const char *drv[] = {"if=ide,index=2,media=cdrom,id=cd"};
        const char *dev[] = {"ide-cd,drive=cd,bus=ide.1,unit=1"};

        build_refused(drv, 1, dev, 1, "drive cd is if=ide");
    }
    {
        const char *drv[] = {"if=none,id=x", "if=none,id=x"};
        const char *dev[] = {"ide-cd,drive=x"};

        build_refused(drv, 2, dev, 1, "id=x is used twice");
    }
    /* Two disks in one position. */
    {
        const char *drv[] = {"file=/a,format=raw,index=0",
                             "file=/b,format=raw,bus=0,unit=0"};

        build_refused(drv, 2, NULL, 0, "hda is already taken");
    }
    {
        const char *drv[] = {"file=/a,format=raw,index=2", "if=none,id=cd"};
        const char *dev[] = {"ide-cd,drive=cd,bus=ide.1,unit=0"};

        build_refused(drv, 2, dev, 1, "hdc is already taken");
    }
    {
        const char *drv[] = {"file=/a,format=raw", "file=/b,format=raw",
                             "file=/c,format=raw", "file=/d,format=raw",
                             "file=/e,format=raw"};

        build_refused(drv, 5, NULL, 0, "no free IDE position");
    }
    {
        const char *drv[] = {"file=/a,format=raw,index=1",
                             "file=/b,format=raw,index=3", "if=none,id=cd"};
        const char *dev[] = {"ide-cd,drive=cd,unit=1"};

        build_refused(drv, 3, dev, 1, "no free IDE position");
    }
    /* Bad IDE devices. */
    {
        const char *drv[] = {"if=none,id=cd"};
        const char *bus[] = {"ide-cd,drive=cd,bus=ide.2,unit=0"};
        const char *unit[] = {"ide-cd,drive=cd,bus=ide.0,unit=2"};
        const char *opt[] = {"ide-cd,drive=cd,bus=ide.0,unit=0,bootindex=1"};
        const char *dup[] = {"ide-cd,drive=cd,bus=ide.0,bus=ide.1"};
        const char *flag[] = {"ide-cd,drive=cd,removable"};
        const char *badid[] = {"ide-cd,drive=cd,id=9"};

        build_refused(drv, 1, bus, 1, "bus=ide.2 is not ide.0 or ide.1");
        build_refused(drv, 1, unit, 1, "unit=2 is not 0 or 1");
        build_refused(drv, 1, opt, 1, "option 'bootindex' is not supported");
        build_refused(drv, 1, dup, 1, "'bus' given twice");
        build_refused(drv, 1, flag, 1, "'removable' is not key=value");
        build_refused(drv, 1, badid, 1, "id=9 is not a valid id");
    }
    /* ide-hd: read-only, empty or without a drive. */
    {
        const char *ro[] = {"if=none,id=hd,file=/a,format=raw,readonly=on"};
        const char *empty[] = {"if=none,id=hd"};
        const char *dev[] = {"ide-hd,drive=hd,bus=ide.0,unit=0"};
        const char *nodrive[] = {"ide-hd,bus=ide.0,unit=0"};

        build_refused(ro, 1, dev, 1, "read-only IDE hard disks are not "
                                     "supported");
        build_refused(empty, 1, dev, 1, "drive hd has no file=");
        build_refused(NULL, 0, nodrive, 1, "ide-hd needs drive=");
    }
}

/* Devices that are not ours are left alone, even when their syntax is not
 * what we parse. */
static void test_foreign_devices_ignored(void **state)
{
    const char *dev[] = {"xen-pci-passthrough,id=pci-pt-03_00.0,"
                         "hostaddr=0000:03:00.0",
                         "", ",weird", "usb-tablet", "lsi53c895a"};
    struct disk_list l;
    char err[256];

    (void)state;
    assert_int_equal(build(NULL, 0, dev, 5, &l, err, sizeof(err)), 0);
    assert_int_equal(l.count, 0);
    disk_list_free(&l);
}

/* --- the list ---------------------------------------------------------- */

static void test_disk_list(void **state)
{
    struct disk_list l;
    struct disk_desc hd = {.index = 1, .path = "/a", .format = "raw"};
    struct disk_desc cd = {.index = 0, .cdrom = true, .id = "ide-768"};
    struct disk_desc bad;

    (void)state;
    disk_list_init(&l);
    assert_int_equal(disk_list_add(&l, &hd), 0);
    assert_int_equal(disk_list_add(&l, &cd), 0);
    assert_int_equal(l.count, 2);
    /* Sorted, copied, CD-ROM read-only. */
    assert_int_equal(l.disks[0].index, 0);
    assert_true(l.disks[0].readonly);
    assert_string_equal(l.disks[0].id, "ide-768");
    assert_ptr_not_equal(l.disks[1].path, hd.path);
    assert_string_equal(l.disks[1].path, "/a");
    assert_int_equal(disk_list_add(&l, &hd), -EEXIST);
    bad = (struct disk_desc){.index = 4, .path = "/a", .format = "raw"};
    assert_int_equal(disk_list_add(&l, &bad), -ERANGE);
    bad = (struct disk_desc){.index = 2};
    assert_int_equal(disk_list_add(&l, &bad), -EINVAL);
    bad = (struct disk_desc){.index = 2, .path = "/a"};
    assert_int_equal(disk_list_add(&l, &bad), -EINVAL);
    bad = (struct disk_desc){.index = 2, .cdrom = true, .format = "raw"};
    assert_int_equal(disk_list_add(&l, &bad), -EINVAL);
    assert_int_equal(l.count, 2);
    assert_null(disk_list_find(&l, 2));
    assert_string_equal(disk_index_name(3), "hdd");
    assert_string_equal(disk_index_name(4), "?");
    disk_list_free(&l);
    assert_int_equal(l.count, 0);
    assert_null(disk_list_find(&l, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_libxl_hard_disk),
        cmocka_unit_test(test_libxl_cdrom_pair),
        cmocka_unit_test(test_libxl_old_cdrom),
        cmocka_unit_test(test_libxl_full_command_line),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_ide_hd_device),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_build_refusals),
        cmocka_unit_test(test_foreign_devices_ignored),
        cmocka_unit_test(test_disk_list),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
