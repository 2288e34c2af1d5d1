/* Tests for the qemu-trad disk description in xenstore (xenstore/vbd.c),
 * against a real xenstored started for each test (xenstored_helper.h).
 * The keys are written exactly as libxl 4.17 writes them
 * (libxl_disk.c: device_disk_add); the hostile cases are what a guest can
 * do to its own frontend, or a confused toolstack to a backend. Without the
 * daemon the tests are skipped, saying why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>

#include "../../block/disk.h"
#include "../../dm/drive.h"
#include "../../lib/log.h"
#include "../../lib/loop.h"
#include "../../xenstore/vbd.h"
#include "../../xenstore/xs.h"
#include "xenstored_helper.h"

#define MS 1000000ull
#define EVENT_TIMEOUT_MS 5000
/* After the expected events: how long to wait for unexpected ones. */
#define QUIET_MS 150
#define DOMID 7

/* Device numbers libxl derives from the guest names. */
#define DEVID_HDA 768
#define DEVID_HDB 832
#define DEVID_HDC 5632
#define DEVID_HDD 5696
#define DEVID_XVDA 51712
#define DEVID_XVDB 51728
#define DEVID_XVDE 51776
#define DEVID_SDA 2048

struct fx {
    struct xsd xsd;
    struct loop *loop;
    struct xsw *xs;
    struct xs_handle *peer;
    char *log_buf;
    size_t log_len;
    FILE *log;
};

static int fx_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    struct xsw_config cfg = {.dm_domid = 0, .domid = DOMID};
    const char *why;

    assert_non_null(fx);
    *state = fx;
    why = xsd_locate(&fx->xsd);
    if (why) {
        print_message("SKIPPED: %s\n", why);
        return 0;
    }
    xsd_make_dir(&fx->xsd);
    xsd_start(&fx->xsd);
    fx->log = open_memstream(&fx->log_buf, &fx->log_len);
    assert_non_null(fx->log);
    log_set_stream(fx->log);
    assert_int_equal(loop_create(&fx->loop), 0);
    assert_int_equal(xsw_open(fx->loop, &cfg, &fx->xs), 0);
    fx->peer = xs_open(0);
    assert_non_null(fx->peer);
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *fx = *state;

    if (fx->peer)
        xs_close(fx->peer);
    xsw_close(fx->xs);
    loop_destroy(fx->loop);
    log_set_stream(NULL);
    if (fx->log)
        fclose(fx->log);
    free(fx->log_buf);
    xsd_stop(&fx->xsd, SIGTERM);
    xsd_remove_dir(&fx->xsd);
    free(fx);
    return 0;
}

static struct fx *fx_get(void **state)
{
    struct fx *fx = *state;

    if (!fx->xs)
        skip();
    return fx;
}

static const char *fx_log(struct fx *fx)
{
    fflush(fx->log);
    return fx->log_buf ? fx->log_buf : "";
}

static void assert_logged(struct fx *fx, const char *text)
{
    if (!strstr(fx_log(fx), text))
        fail_msg("log does not contain '%s':\n%s", text, fx_log(fx));
}

static void peer_write(struct fx *fx, const char *path, const char *value)
{
    assert_true(xs_write(fx->peer, XBT_NULL, path, value, strlen(value)));
}

static void peer_printf(struct fx *fx, const char *value, const char *fmt,
                        ...) __attribute__((format(printf, 3, 4)));

static void peer_printf(struct fx *fx, const char *value, const char *fmt, ...)
{
    char path[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    peer_write(fx, path, value);
}

static void peer_rm(struct fx *fx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void peer_rm(struct fx *fx, const char *fmt, ...)
{
    char path[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    assert_true(xs_rm(fx->peer, XBT_NULL, path));
}

/* One disk as libxl's device_disk_add writes it (HVM guest, dom0 backend
 * unless backend_domid says otherwise). kind: "vbd" (type=phy) or "qdisk";
 * mode "w" or "r". */
struct libxl_disk {
    unsigned devid;
    const char *kind;
    const char *dev;
    const char *params;
    const char *mode;
    bool cdrom;
    unsigned backend_domid;
};

static void be_path(char *buf, size_t size, const struct libxl_disk *d)
{
    snprintf(buf, size, "/local/domain/%u/backend/%s/%u/%u", d->backend_domid,
             d->kind, DOMID, d->devid);
}

static void libxl_add_disk(struct fx *fx, const struct libxl_disk *d)
{
    char fe[128], be[128], devid[16], bdomid[16];
    const char *type = !strcmp(d->kind, "vbd") ? "phy" : d->kind;
    const char *dtype = d->cdrom ? "cdrom" : "disk";

    snprintf(fe, sizeof(fe), "/local/domain/%u/device/vbd/%u", DOMID,
             d->devid);
    be_path(be, sizeof(be), d);
    snprintf(devid, sizeof(devid), "%u", d->devid);
    snprintf(bdomid, sizeof(bdomid), "%u", d->backend_domid);

    /* Backend (libxl__device_generic_add writes frontend and frontend-id,
     * then the backend's own keys). */
    peer_printf(fx, fe, "%s/frontend", be);
    peer_printf(fx, "7", "%s/frontend-id", be);
    peer_printf(fx, d->params, "%s/params", be);
    if (!strcmp(d->kind, "vbd"))
        peer_printf(fx, "/etc/xen/scripts/block", "%s/script", be);
    peer_printf(fx, "1", "%s/online", be);
    peer_printf(fx, d->cdrom ? "1" : "0", "%s/removable", be);
    peer_printf(fx, "1", "%s/bootable", be);
    peer_printf(fx, "1", "%s/state", be);
    peer_printf(fx, d->dev, "%s/dev", be);
    peer_printf(fx, type, "%s/type", be);
    peer_printf(fx, d->mode, "%s/mode", be);
    peer_printf(fx, dtype, "%s/device-type", be);
    peer_printf(fx, "1", "%s/discard-enable", be);
    /* Frontend. */
    peer_printf(fx, be, "%s/backend", fe);
    peer_printf(fx, bdomid, "%s/backend-id", fe);
    peer_printf(fx, "1", "%s/state", fe);
    peer_printf(fx, devid, "%s/virtual-device", fe);
    peer_printf(fx, dtype, "%s/device-type", fe);
}

static void read_ok(struct fx *fx, struct disk_list *l)
{
    assert_int_equal(vbd_read_disks(fx->xs, DOMID, l), 0);
}

static void assert_disk(const struct disk_list *l, unsigned index, bool cdrom,
                        bool readonly, const char *path, const char *format,
                        const char *id, unsigned devid, const char *kind)
{
    const struct disk_desc *d = disk_list_find(l, index);
    char fe[128], be[128];

    if (!d)
        fail_msg("no disk at index %u", index);
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
    snprintf(fe, sizeof(fe), "/local/domain/%u/device/vbd/%u", DOMID, devid);
    snprintf(be, sizeof(be), "/local/domain/0/backend/%s/%u/%u", kind, DOMID,
             devid);
    assert_string_equal(d->xs_frontend, fe);
    assert_string_equal(d->xs_backend, be);
}

/* --- what libxl writes -------------------------------------------------- */

static void test_libxl_disks(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    const struct libxl_disk disks[] = {
        {DEVID_HDA, "vbd", "hda", "/dev/vg/guest", "w", false, 0},
        {DEVID_HDB, "qdisk", "hdb", "qcow2:/img/data.qcow2", "w", false, 0},
        {DEVID_HDC, "qdisk", "hdc", "aio:/iso/install.iso", "r", true, 0},
        /* A relative phy name lives under /dev; 'r' is read-only. */
        {DEVID_HDD, "vbd", "hdd", "mapper/vg-ro", "r", false, 0},
    };

    for (size_t i = 0; i < 4; i++)
        libxl_add_disk(fx, &disks[i]);
    read_ok(fx, &l);
    assert_int_equal(l.count, 4);
    assert_disk(&l, 0, false, false, "/dev/vg/guest", "raw", NULL, DEVID_HDA,
                "vbd");
    assert_disk(&l, 1, false, false, "/img/data.qcow2", "qcow2", NULL,
                DEVID_HDB, "qdisk");
    assert_disk(&l, 2, true, true, "/iso/install.iso", "raw", "ide-5632",
                DEVID_HDC, "qdisk");
    assert_disk(&l, 3, false, true, "/dev/mapper/vg-ro", "raw", NULL,
                DEVID_HDD, "vbd");
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(l.disks[i].index, i);
    assert_logged(fx, "vbd 768: hda disk /dev/vg/guest (raw)\n");
    assert_logged(fx, "vbd 5632: hdc cdrom /iso/install.iso (raw)\n");
    assert_logged(fx, "vbd 5696: hdd disk /dev/mapper/vg-ro (raw, read-only)");
    disk_list_free(&l);
}

/* Empty CD-ROM drives and the format prefixes. */
static void test_params_forms(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    const struct libxl_disk disks[] = {
        /* libxl's empty qdisk CD-ROM is "aio:" (format empty -> "aio"). */
        {DEVID_HDA, "qdisk", "hda", "aio:", "r", true, 0},
        {DEVID_HDB, "vbd", "hdb", "", "r", true, 0},
        {DEVID_HDC, "qdisk", "hdc", "vhd:/img/old.vhd", "w", false, 0},
        {DEVID_HDD, "qdisk", "hdd", "qed:/img/x:y.qed", "w", false, 0},
    };

    for (size_t i = 0; i < 4; i++)
        libxl_add_disk(fx, &disks[i]);
    read_ok(fx, &l);
    assert_int_equal(l.count, 4);
    assert_disk(&l, 0, true, true, NULL, NULL, "ide-768", DEVID_HDA, "qdisk");
    assert_logged(fx, "vbd 768: hda cdrom without medium\n");
    assert_disk(&l, 1, true, true, NULL, NULL, "ide-832", DEVID_HDB, "vbd");
    assert_disk(&l, 2, false, false, "/img/old.vhd", "vpc", NULL, DEVID_HDC,
                "qdisk");
    /* Split at the first ':' only. */
    assert_disk(&l, 3, false, false, "/img/x:y.qed", "qed", NULL, DEVID_HDD,
                "qdisk");
    disk_list_free(&l);

    /* A blktap backend directory and "raw:" (the interface notes' form). */
    const struct libxl_disk tap = {DEVID_HDA, "tap", "hda", "raw:/img/t.raw",
                                   "w", false, 0};

    peer_rm(fx, "/local/domain/%u/device/vbd", DOMID);
    libxl_add_disk(fx, &tap);
    read_ok(fx, &l);
    assert_int_equal(l.count, 1);
    assert_disk(&l, 0, false, false, "/img/t.raw", "raw", NULL, DEVID_HDA,
                "tap");
    disk_list_free(&l);
}

/* A backend in a driver domain is fine when it points back. */
static void test_driver_domain_backend(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    const struct libxl_disk d = {DEVID_HDA, "vbd", "hda", "/dev/xvdb", "w",
                                 false, 3};

    libxl_add_disk(fx, &d);
    read_ok(fx, &l);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.disks[0].xs_backend,
                        "/local/domain/3/backend/vbd/7/768");
    assert_string_equal(l.disks[0].path, "/dev/xvdb");
    disk_list_free(&l);
}

static void test_no_disks(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;

    read_ok(fx, &l);
    assert_int_equal(l.count, 0);
    peer_printf(fx, "", "/local/domain/%u/device/vbd", DOMID);
    read_ok(fx, &l);
    assert_int_equal(l.count, 0);
}

/* The same guest configuration, qemu-trad style in xenstore and qemu-xen
 * style on the command line (as libxl_dm.c builds it), gives one list. */
static void test_same_list_as_command_line(void **state)
{
    struct fx *fx = fx_get(state);
    const struct libxl_disk disks[] = {
        {DEVID_HDA, "vbd", "hda", "/dev/vg/guest", "w", false, 0},
        {DEVID_HDB, "qdisk", "hdb", "qcow2:/img/data.qcow2", "w", false, 0},
        {DEVID_HDC, "qdisk", "hdc", "aio:/iso/install.iso", "r", true, 0},
        {DEVID_HDD, "qdisk", "hdd", "aio:", "r", true, 0},
    };
    const char *args[] = {
        "file=/dev/vg/guest,if=ide,index=0,media=disk,format=raw,"
        "cache=writeback",
        "file=/img/data.qcow2,if=ide,index=1,media=disk,format=qcow2,"
        "cache=writeback",
        "if=none,readonly=on,id=ide-5632,file=/iso/install.iso,format=raw",
        "if=none,readonly=on,id=ide-5696",
    };
    const char *devices[] = {
        "ide-cd,id=ide-5632,drive=ide-5632,bus=ide.1,unit=0",
        "ide-cd,id=ide-5696,drive=ide-5696,bus=ide.1,unit=1",
    };
    struct drive_opts drives[4];
    struct disk_list from_xs, from_cmdline;
    char err[256];

    for (size_t i = 0; i < 4; i++) {
        libxl_add_disk(fx, &disks[i]);
        assert_int_equal(drive_parse(args[i], &drives[i], err, sizeof(err)),
                         0);
    }
    read_ok(fx, &from_xs);
    assert_int_equal(drives_to_disks(drives, 4, devices, 2, &from_cmdline, err,
                                     sizeof(err)),
                     0);
    assert_int_equal(from_xs.count, 4);
    assert_int_equal(from_cmdline.count, 4);
    for (unsigned i = 0; i < 4; i++) {
        const struct disk_desc *a = &from_xs.disks[i], *b =
                                                           &from_cmdline.disks[i];

        assert_int_equal(a->index, b->index);
        assert_int_equal(a->cdrom, b->cdrom);
        assert_int_equal(a->readonly, b->readonly);
        assert_true((a->path == NULL) == (b->path == NULL));
        if (a->path) {
            assert_string_equal(a->path, b->path);
            assert_string_equal(a->format, b->format);
        }
        assert_true((a->id == NULL) == (b->id == NULL));
        if (a->id)
            assert_string_equal(a->id, b->id);
    }
    for (size_t i = 0; i < 4; i++)
        drive_opts_free(&drives[i]);
    disk_list_free(&from_xs);
    disk_list_free(&from_cmdline);
}

/* --- the safety rule ---------------------------------------------------- */

static void test_backend_pointing_elsewhere(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    static const char *const elsewhere[] = {
        /* Another guest's disk. */
        "/local/domain/0/backend/vbd/8/768",
        /* Right domain, another device number. */
        "/local/domain/0/backend/vbd/7/832",
        /* A kind qemu-trad does not accept. */
        "/local/domain/0/backend/pci/7/768",
        "/local/domain/0/backend/vbd/7/768/",
        "/local/domain/0/backend/vbd/7/768/../832",
        "/local/domain/0/backend/vbd/7/0768",
        "/local/domain/0/backend/vbd/7",
        "/local/domain/7/backend/vbd/7/768",
    };
    const struct libxl_disk hda = {DEVID_HDA, "vbd", "hda", "/dev/sda", "w",
                                   false, 0};
    const struct libxl_disk other = {DEVID_HDB, "vbd", "hdb", "/dev/secret",
                                     "w", false, 0};

    libxl_add_disk(fx, &hda);
    libxl_add_disk(fx, &other);
    for (size_t i = 0; i < sizeof(elsewhere) / sizeof(elsewhere[0]); i++) {
        /* The guest rewrites its frontend's backend key. */
        peer_printf(fx, elsewhere[i], "/local/domain/%u/device/vbd/%u/backend",
                    DOMID, DEVID_HDA);
        read_ok(fx, &l);
        assert_int_equal(l.count, 1);
        assert_null(disk_list_find(&l, 0));
        assert_non_null(disk_list_find(&l, 1));
        disk_list_free(&l);
    }
    assert_logged(fx, "vbd 768 skipped: frontend key backend "
                      "'/local/domain/0/backend/vbd/8/768' is not "
                      "/local/domain/0/backend/{vbd,tap,qdisk}/7/768");

    /* backend-id disagreeing with the path, or not a domain id. */
    peer_printf(fx, "/local/domain/0/backend/vbd/7/768",
                "/local/domain/%u/device/vbd/%u/backend", DOMID, DEVID_HDA);
    peer_printf(fx, "3", "/local/domain/%u/device/vbd/%u/backend-id", DOMID,
                DEVID_HDA);
    read_ok(fx, &l);
    assert_null(disk_list_find(&l, 0));
    disk_list_free(&l);
    static const char *const bad_ids[] = {"abc", "-0", "32752", " 0", "0x0"};

    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        peer_printf(fx, bad_ids[i], "/local/domain/%u/device/vbd/%u/backend-id",
                    DOMID, DEVID_HDA);
        read_ok(fx, &l);
        assert_null(disk_list_find(&l, 0));
        disk_list_free(&l);
    }
    assert_logged(fx, "frontend key backend-id '32752' is not a domain id");

    /* Restored: accepted again. */
    peer_printf(fx, "0", "/local/domain/%u/device/vbd/%u/backend-id", DOMID,
                DEVID_HDA);
    read_ok(fx, &l);
    assert_int_equal(l.count, 2);
    disk_list_free(&l);
}

static void test_backend_not_pointing_back(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    const struct libxl_disk hda = {DEVID_HDA, "vbd", "hda", "/dev/sda", "w",
                                   false, 0};

    libxl_add_disk(fx, &hda);
    /* Two guests' frontends naming one backend: only the one the backend
     * names gets it. */
    peer_write(fx, "/local/domain/0/backend/vbd/7/768/frontend",
               "/local/domain/8/device/vbd/768");
    read_ok(fx, &l);
    assert_int_equal(l.count, 0);
    assert_logged(fx, "vbd 768 skipped: backend key frontend of "
                      "/local/domain/0/backend/vbd/7/768 is "
                      "'/local/domain/8/device/vbd/768', not "
                      "/local/domain/7/device/vbd/768");
    peer_write(fx, "/local/domain/0/backend/vbd/7/768/frontend",
               "/local/domain/7/device/vbd/768/");
    read_ok(fx, &l);
    assert_int_equal(l.count, 0);
    peer_rm(fx, "/local/domain/0/backend/vbd/7/768/frontend");
    read_ok(fx, &l);
    assert_int_equal(l.count, 0);
    assert_logged(fx, "vbd 768 skipped: backend key frontend is missing");
}

static void test_device_type(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    const struct libxl_disk hda = {DEVID_HDA, "vbd", "hda", "/dev/sda", "w",
                                   false, 0};
    const struct libxl_disk hdc = {DEVID_HDC, "qdisk", "hdc", "aio:/iso/a.iso",
                                   "r", true, 0};

    libxl_add_disk(fx, &hda);
    libxl_add_disk(fx, &hdc);
    /* The guest claims its disk is a CD-ROM, and its CD-ROM a disk. */
    peer_write(fx, "/local/domain/7/device/vbd/768/device-type", "cdrom");
    peer_write(fx, "/local/domain/7/device/vbd/5632/device-type", "disk");
    read_ok(fx, &l);
    assert_int_equal(l.count, 0);
    assert_logged(fx, "vbd 768 skipped: frontend key device-type 'cdrom' "
                      "disagrees with the backend's 'disk'");

    /* Not a device type at all. */
    peer_write(fx, "/local/domain/7/device/vbd/768/device-type", "floppy\n");
    read_ok(fx, &l);
    assert_null(disk_list_find(&l, 0));
    disk_list_free(&l);
    assert_logged(fx, "frontend key device-type 'floppy?' is neither cdrom "
                      "nor disk");

    /* Without the frontend key the backend's says it; without both, a
     * disk (qemu-trad's default). */
    peer_rm(fx, "/local/domain/7/device/vbd/768/device-type");
    peer_rm(fx, "/local/domain/7/device/vbd/5632/device-type");
    read_ok(fx, &l);
    assert_int_equal(l.count, 2);
    assert_false(disk_list_find(&l, 0)->cdrom);
    assert_true(disk_list_find(&l, 2)->cdrom);
    disk_list_free(&l);
    peer_rm(fx, "/local/domain/0/backend/vbd/7/768/device-type");
    read_ok(fx, &l);
    assert_false(disk_list_find(&l, 0)->cdrom);
    disk_list_free(&l);

    /* An old toolstack writing no backend device-type: the frontend's
     * (qemu-trad's only source) decides. */
    peer_rm(fx, "/local/domain/0/backend/qdisk/7/5632/device-type");
    peer_write(fx, "/local/domain/7/device/vbd/5632/device-type", "cdrom");
    read_ok(fx, &l);
    assert_true(disk_list_find(&l, 2)->cdrom);
    disk_list_free(&l);
    /* A bad backend value is skipped as well. */
    peer_write(fx, "/local/domain/0/backend/qdisk/7/5632/device-type", "tape");
    read_ok(fx, &l);
    assert_null(disk_list_find(&l, 2));
    disk_list_free(&l);
    assert_logged(fx, "backend key device-type 'tape' is neither");
}

/* Each required key missing, each on its own vbd; a good disk survives. */
static void test_missing_keys(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    static const struct {
        unsigned devid;
        const char *dev;
        const char *where; /* "fe" or "be" */
        const char *key;
        const char *log;
    } cases[] = {
        {DEVID_HDB, "hdb", "fe", "backend", "vbd 832 skipped: frontend key "
                                            "backend is missing"},
        {DEVID_HDC, "hdc", "fe", "backend-id", "vbd 5632 skipped: frontend key "
                                               "backend-id is missing"},
        {DEVID_HDD, "hdd", "be", "dev", "vbd 5696 skipped: backend key dev is "
                                        "missing"},
        {833, "hdb", "be", "params", "vbd 833 skipped: backend key params is "
                                     "missing"},
        {5633, "hdc", "be", "mode", "vbd 5633 skipped: backend key mode is "
                                    "missing"},
    };
    const struct libxl_disk hda = {DEVID_HDA, "vbd", "hda", "/dev/sda", "w",
                                   false, 0};

    libxl_add_disk(fx, &hda);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct libxl_disk d = {cases[i].devid, "vbd", cases[i].dev,
                                     "/dev/sdb", "w", false, 0};

        libxl_add_disk(fx, &d);
        if (!strcmp(cases[i].where, "fe"))
            peer_rm(fx, "/local/domain/7/device/vbd/%u/%s", cases[i].devid,
                    cases[i].key);
        else
            peer_rm(fx, "/local/domain/0/backend/vbd/7/%u/%s", cases[i].devid,
                    cases[i].key);
    }
    /* A frontend directory with nothing in it. */
    peer_write(fx, "/local/domain/7/device/vbd/5697", "");

    read_ok(fx, &l);
    assert_int_equal(l.count, 1);
    assert_disk(&l, 0, false, false, "/dev/sda", "raw", NULL, DEVID_HDA,
                "vbd");
    disk_list_free(&l);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_logged(fx, cases[i].log);
    assert_logged(fx, "vbd 5697 skipped: frontend key backend is missing");
}

static void test_overlong_and_malformed_values(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    char big[3500];
    const struct libxl_disk hda = {DEVID_HDA, "vbd", "hda", "/dev/sda", "w",
                                   false, 0};

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[0] = '/';

    libxl_add_disk(fx, &hda);
    read_ok(fx, &l);
    assert_int_equal(l.count, 1);
    disk_list_free(&l);

    const struct {
        const char *path, *value, *log;
    } cases[] = {
        {"/local/domain/7/device/vbd/768/backend", big,
         "frontend key backend is too long"},
        {"/local/domain/7/device/vbd/768/backend-id", "000000000000000000000",
         "frontend key backend-id is too long"},
        {"/local/domain/7/device/vbd/768/device-type", "cdromcdromcdromcdrom",
         "frontend key device-type is too long"},
        {"/local/domain/0/backend/vbd/7/768/dev", "hdaaaaaaaaaaaaaaaaaaa",
         "backend key dev is too long"},
        {"/local/domain/0/backend/vbd/7/768/mode", "wwwwwwwwwwww",
         "backend key mode is too long"},
        {"/local/domain/0/backend/vbd/7/768/mode", "x",
         "backend key mode 'x' is not made of r and w"},
        {"/local/domain/0/backend/vbd/7/768/mode", "",
         "backend key mode '' is not made of r and w"},
        /* A relative phy name may not climb out of /dev. */
        {"/local/domain/0/backend/vbd/7/768/params", "../etc/shadow",
         "backend key params '../etc/shadow' is a relative name with a '..' "
         "component"},
        {"/local/domain/0/backend/vbd/7/768/params", "mapper/../../etc/x",
         "with a '..' component"},
        /* An empty phy params is a drive without medium: not a disk. */
        {"/local/domain/0/backend/vbd/7/768/params", "",
         "backend key params is empty for a hard disk"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char saved[4096];
        char *old;
        unsigned len;

        old = xs_read(fx->peer, XBT_NULL, cases[i].path, &len);
        assert_non_null(old);
        snprintf(saved, sizeof(saved), "%.*s", (int)len, old);
        free(old);
        peer_write(fx, cases[i].path, cases[i].value);
        read_ok(fx, &l);
        if (l.count != 0)
            fail_msg("'%s' = '%.40s' was accepted", cases[i].path,
                     cases[i].value);
        assert_logged(fx, cases[i].log);
        peer_write(fx, cases[i].path, saved);
        read_ok(fx, &l);
        assert_int_equal(l.count, 1);
        disk_list_free(&l);
    }

    /* qdisk params that do not parse. */
    const struct libxl_disk hdb = {DEVID_HDB, "qdisk", "hdb", "/img/noformat",
                                   "w", false, 0};
    const struct libxl_disk hdc = {DEVID_HDC, "qdisk", "hdc", "vmdk:/img/x",
                                   "w", false, 0};
    const struct libxl_disk hdd = {DEVID_HDD, "qdisk", "hdd", "qcow2:", "w",
                                   false, 0};

    libxl_add_disk(fx, &hdb);
    libxl_add_disk(fx, &hdc);
    libxl_add_disk(fx, &hdd);
    read_ok(fx, &l);
    assert_int_equal(l.count, 1);
    disk_list_free(&l);
    assert_logged(fx, "vbd 832 skipped: backend key params '/img/noformat' "
                      "has no '<format>:' prefix");
    assert_logged(fx, "vbd 5632 skipped: backend key params 'vmdk:/img/x' "
                      "names an unknown image format");
    assert_logged(fx, "vbd 5696 skipped: backend key params is empty for a "
                      "hard disk");
}

/* Frontend directory names are the guest's: only device numbers count. */
static void test_bad_frontend_names(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;

    peer_write(fx, "/local/domain/7/device/vbd/abc/backend",
               "/local/domain/0/backend/vbd/7/abc");
    peer_write(fx, "/local/domain/7/device/vbd/0768/backend",
               "/local/domain/0/backend/vbd/7/0768");
    peer_write(fx, "/local/domain/7/device/vbd/99999999999/backend", "x");
    read_ok(fx, &l);
    assert_int_equal(l.count, 0);
    assert_logged(fx, "vbd abc skipped: not a device number");
    assert_logged(fx, "vbd 0768 skipped: not a device number");
    assert_logged(fx, "vbd 99999999999 skipped: not a device number");
}

static void test_dev_names(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    static const struct {
        unsigned devid;
        const char *dev, *log;
    } bad[] = {
        {DEVID_SDA, "sda", "vbd 2048 skipped: backend key dev sda is SCSI"},
        {835, "hde", "vbd 835 skipped: backend key dev hde: only hda-hdd"},
        {836, "hd", "vbd 836 skipped: backend key dev 'hd' is not a disk"},
        {837, "HDA", "vbd 837 skipped: backend key dev 'HDA' is not a disk"},
        {838, "hda1", "vbd 838 skipped: backend key dev 'hda1' is not"},
        {839, "xvdaa", "vbd 839 skipped: backend key dev 'xvdaa' is not"},
        {840, "fd0", "vbd 840 skipped: backend key dev 'fd0' is not"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const struct libxl_disk d = {bad[i].devid, "vbd", bad[i].dev,
                                     "/dev/sdb", "w", false, 0};

        libxl_add_disk(fx, &d);
    }
    read_ok(fx, &l);
    assert_int_equal(l.count, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_logged(fx, bad[i].log);
}

static void test_duplicate_index(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    /* Written in the opposite order: the lower device number wins. */
    const struct libxl_disk second = {900, "vbd", "hda", "/dev/second", "w",
                                      false, 0};
    const struct libxl_disk first = {DEVID_HDA, "vbd", "hda", "/dev/first",
                                     "w", false, 0};

    libxl_add_disk(fx, &second);
    libxl_add_disk(fx, &first);
    read_ok(fx, &l);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.disks[0].path, "/dev/first");
    disk_list_free(&l);
    assert_logged(fx, "vbd 900 skipped: backend key dev hda: hda is already "
                      "vbd 768");

    /* A first claimant that is itself skipped does not hold the index. */
    peer_write(fx, "/local/domain/0/backend/vbd/7/768/mode", "bogus");
    read_ok(fx, &l);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.disks[0].path, "/dev/second");
    disk_list_free(&l);
}

static void test_xvd_mapping(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    const struct libxl_disk xvda = {DEVID_XVDA, "vbd", "xvda", "/dev/a", "w",
                                    false, 0};
    const struct libxl_disk xvdb = {DEVID_XVDB, "qdisk", "xvdb",
                                    "aio:/img/b.raw", "w", false, 0};
    const struct libxl_disk xvde = {DEVID_XVDE, "vbd", "xvde", "/dev/e", "w",
                                    false, 0};
    const struct libxl_disk hdc = {DEVID_HDC, "qdisk", "hdc", "aio:", "r",
                                   true, 0};

    /* Without any hdX: xvda..xvdd are hda..hdd, xvde is PV only. */
    libxl_add_disk(fx, &xvda);
    libxl_add_disk(fx, &xvdb);
    libxl_add_disk(fx, &xvde);
    read_ok(fx, &l);
    assert_int_equal(l.count, 2);
    assert_disk(&l, 0, false, false, "/dev/a", "raw", NULL, DEVID_XVDA, "vbd");
    assert_disk(&l, 1, false, false, "/img/b.raw", "raw", NULL, DEVID_XVDB,
                "qdisk");
    disk_list_free(&l);
    assert_logged(fx, "vbd 51712: xvda as hda disk /dev/a (raw)");
    assert_logged(fx, "vbd 51776: xvde is not emulated (PV only)");

    /* One hdX disk anywhere turns the mapping off. */
    libxl_add_disk(fx, &hdc);
    read_ok(fx, &l);
    assert_int_equal(l.count, 1);
    assert_disk(&l, 2, true, true, NULL, NULL, "ide-5632", DEVID_HDC, "qdisk");
    disk_list_free(&l);
    assert_logged(fx, "vbd 51712: xvda is not emulated (PV only)");

    /* Even an hdX vbd that is skipped for other reasons: it is configured,
     * so qemu-trad would not map xvd names either. */
    peer_write(fx, "/local/domain/0/backend/qdisk/7/5632/mode", "?");
    read_ok(fx, &l);
    assert_int_equal(l.count, 0);
}

/* xenstore itself failing is an error, not an empty list. */
static void test_xenstore_failure(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    const struct libxl_disk hda = {DEVID_HDA, "vbd", "hda", "/dev/sda", "w",
                                   false, 0};

    libxl_add_disk(fx, &hda);
    xs_close(fx->peer);
    fx->peer = NULL;
    xsd_stop(&fx->xsd, SIGKILL);
    assert_true(vbd_read_disks(fx->xs, DOMID, &l) < 0);
    assert_int_equal(l.count, 0);
}

/* --- media change and eject --------------------------------------------- */

struct media_events {
    unsigned calls;
    unsigned index;
    char path[256];
    char format[16];
    bool had_path, had_format;
    struct vbd_watch **unwatch_self; /* removes the watch from the callback */
};

static void on_media(void *opaque, unsigned index, const char *path,
                     const char *format)
{
    struct media_events *ev = opaque;

    ev->calls++;
    ev->index = index;
    ev->had_path = path != NULL;
    ev->had_format = format != NULL;
    snprintf(ev->path, sizeof(ev->path), "%s", path ? path : "");
    snprintf(ev->format, sizeof(ev->format), "%s", format ? format : "");
    if (ev->unwatch_self) {
        vbd_unwatch_media(*ev->unwatch_self);
        *ev->unwatch_self = NULL;
    }
}

static void run_until_calls(struct fx *fx, const struct media_events *ev,
                            unsigned want)
{
    uint64_t deadline = loop_now_ns() + EVENT_TIMEOUT_MS * MS;

    while (ev->calls < want && loop_now_ns() < deadline)
        loop_run_once(fx->loop, 10);
    assert_int_equal(ev->calls, want);
    deadline = loop_now_ns() + QUIET_MS * MS;
    while (loop_now_ns() < deadline)
        loop_run_once(fx->loop, 10);
    assert_int_equal(ev->calls, want);
}

static void test_media_change(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    struct vbd_watch *w = NULL;
    struct media_events ev = {0};
    const struct libxl_disk hda = {DEVID_HDA, "vbd", "hda", "/dev/sda", "w",
                                   false, 0};
    const struct libxl_disk hdc = {DEVID_HDC, "qdisk", "hdc", "aio:", "r",
                                   true, 0};
    const struct libxl_disk hdd = {DEVID_HDD, "vbd", "hdd", "/dev/sr0", "r",
                                   true, 0};
    const char *qd = "/local/domain/0/backend/qdisk/7/5632/params";
    const char *phy = "/local/domain/0/backend/vbd/7/5696/params";

    libxl_add_disk(fx, &hda);
    libxl_add_disk(fx, &hdc);
    libxl_add_disk(fx, &hdd);
    read_ok(fx, &l);
    assert_int_equal(l.count, 3);
    assert_int_equal(vbd_watch_media(fx->xs, DOMID, &l, on_media, &ev, &w), 0);
    assert_non_null(w);
    /* The list may go: the watch keeps what it needs. */
    disk_list_free(&l);

    /* xenstored fires each new watch once: nothing changed, no news. */
    run_until_calls(fx, &ev, 0);

    /* xl cd-insert: a medium in the empty drive. */
    peer_write(fx, qd, "aio:/iso/new.iso");
    run_until_calls(fx, &ev, 1);
    assert_int_equal(ev.index, 2);
    assert_true(ev.had_path);
    assert_string_equal(ev.path, "/iso/new.iso");
    assert_string_equal(ev.format, "raw");
    /* The same value written again is no change. */
    peer_write(fx, qd, "aio:/iso/new.iso");
    run_until_calls(fx, &ev, 1);
    /* Another medium, another format. */
    peer_write(fx, qd, "qcow2:/iso/other.qcow2");
    run_until_calls(fx, &ev, 2);
    assert_string_equal(ev.path, "/iso/other.qcow2");
    assert_string_equal(ev.format, "qcow2");
    /* xl cd-eject. */
    peer_write(fx, qd, "aio:");
    run_until_calls(fx, &ev, 3);
    assert_int_equal(ev.index, 2);
    assert_false(ev.had_path);
    assert_false(ev.had_format);

    /* A phy CD-ROM: ejected by an empty params, a relative name under /dev. */
    peer_write(fx, phy, "");
    run_until_calls(fx, &ev, 4);
    assert_int_equal(ev.index, 3);
    assert_false(ev.had_path);
    peer_write(fx, phy, "sr1");
    run_until_calls(fx, &ev, 5);
    assert_string_equal(ev.path, "/dev/sr1");
    assert_string_equal(ev.format, "raw");

    /* Junk and a vanished node change nothing and are logged. */
    peer_write(fx, qd, "/iso/no-prefix.iso");
    run_until_calls(fx, &ev, 5);
    assert_logged(fx, "hdc: medium change ignored, params '/iso/no-prefix.iso'"
                      " has no '<format>:' prefix");
    peer_rm(fx, "%s", qd);
    run_until_calls(fx, &ev, 5);
    assert_logged(fx, "hdc: medium change ignored, params is missing");
    /* After the junk, a real medium is news again. */
    peer_write(fx, qd, "aio:/iso/back.iso");
    run_until_calls(fx, &ev, 6);
    assert_string_equal(ev.path, "/iso/back.iso");

    /* The hard disk's params is not watched. */
    peer_write(fx, "/local/domain/0/backend/vbd/7/768/params", "/dev/sdz");
    run_until_calls(fx, &ev, 6);

    vbd_unwatch_media(w);
    peer_write(fx, qd, "aio:");
    run_until_calls(fx, &ev, 6);
    vbd_unwatch_media(NULL);
}

/* The callback may remove the watch it is called from. */
static void test_media_unwatch_from_callback(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    struct vbd_watch *w = NULL;
    struct media_events ev = {0};
    const struct libxl_disk hdc = {DEVID_HDC, "qdisk", "hdc",
                                   "aio:/iso/a.iso", "r", true, 0};
    const char *qd = "/local/domain/0/backend/qdisk/7/5632/params";

    libxl_add_disk(fx, &hdc);
    read_ok(fx, &l);
    assert_int_equal(vbd_watch_media(fx->xs, DOMID, &l, on_media, &ev, &w), 0);
    disk_list_free(&l);
    run_until_calls(fx, &ev, 0);
    ev.unwatch_self = &w;
    peer_write(fx, qd, "aio:");
    run_until_calls(fx, &ev, 1);
    assert_null(w);
    assert_false(ev.had_path);
    peer_write(fx, qd, "aio:/iso/b.iso");
    run_until_calls(fx, &ev, 1);
}

/* Disks not from xenstore, or no CD-ROM at all: nothing to watch. */
static void test_media_nothing_to_watch(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    struct disk_desc cd = {.index = 2, .cdrom = true, .id = "ide-5632"};
    struct vbd_watch *w = NULL;
    struct media_events ev = {0};

    disk_list_init(&l);
    assert_int_equal(disk_list_add(&l, &cd), 0);
    assert_int_equal(vbd_watch_media(fx->xs, DOMID, &l, on_media, &ev, &w), 0);
    run_until_calls(fx, &ev, 0);
    vbd_unwatch_media(w);
    assert_int_equal(vbd_watch_media(fx->xs, DOMID, &l, NULL, &ev, &w),
                     -EINVAL);
    assert_null(w);
    /* A backend path of the wrong shape is refused. */
    cd.xs_backend = "/local/domain/0/backend/pci/7/5632";
    cd.xs_frontend = "/local/domain/7/device/vbd/5632";
    disk_list_free(&l);
    assert_int_equal(disk_list_add(&l, &cd), 0);
    assert_int_equal(vbd_watch_media(fx->xs, DOMID, &l, on_media, &ev, &w),
                     -EINVAL);
    assert_null(w);
    disk_list_free(&l);
}

static void test_report_eject(void **state)
{
    struct fx *fx = fx_get(state);
    struct disk_list l;
    const struct libxl_disk hda = {DEVID_HDA, "vbd", "hda", "/dev/sda", "w",
                                   false, 0};
    const struct libxl_disk hdc = {DEVID_HDC, "qdisk", "hdc",
                                   "aio:/iso/a.iso", "r", true, 0};
    struct disk_desc from_cmdline = {.index = 3, .cdrom = true};
    unsigned len;
    char *v;

    libxl_add_disk(fx, &hda);
    libxl_add_disk(fx, &hdc);
    read_ok(fx, &l);
    assert_int_equal(vbd_report_eject(fx->xs, disk_list_find(&l, 2)), 0);
    v = xs_read(fx->peer, XBT_NULL, "/local/domain/7/device/vbd/5632/eject",
                &len);
    assert_non_null(v);
    assert_int_equal(len, 5);
    assert_memory_equal(v, "eject", 5);
    free(v);
    /* Only CD-ROMs that came from xenstore. */
    assert_int_equal(vbd_report_eject(fx->xs, disk_list_find(&l, 0)), -EINVAL);
    assert_int_equal(vbd_report_eject(fx->xs, &from_cmdline), -EINVAL);
    assert_null(xs_read(fx->peer, XBT_NULL,
                        "/local/domain/7/device/vbd/768/eject", &len));
    disk_list_free(&l);
}

int main(void)
{
#define XS_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        XS_TEST(test_libxl_disks),
        XS_TEST(test_params_forms),
        XS_TEST(test_driver_domain_backend),
        XS_TEST(test_no_disks),
        XS_TEST(test_same_list_as_command_line),
        XS_TEST(test_backend_pointing_elsewhere),
        XS_TEST(test_backend_not_pointing_back),
        XS_TEST(test_device_type),
        XS_TEST(test_missing_keys),
        XS_TEST(test_overlong_and_malformed_values),
        XS_TEST(test_bad_frontend_names),
        XS_TEST(test_dev_names),
        XS_TEST(test_duplicate_index),
        XS_TEST(test_xvd_mapping),
        XS_TEST(test_xenstore_failure),
        XS_TEST(test_media_change),
        XS_TEST(test_media_unwatch_from_callback),
        XS_TEST(test_media_nothing_to_watch),
        XS_TEST(test_report_eject),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
