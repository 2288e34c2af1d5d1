/* Unit tests for command-line parsing (dm/options.c) with the command lines
 * libxl really builds, and for chardev specs (dm/chardev.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../dm/chardev.h"
#include "../../dm/options.h"
#include "../../lib/log.h"

/* What one options_parse() call produced: return code, parsed options,
 * and whatever it printed to stdout, stderr and the log. */
struct result {
    int rc;
    struct dm_options o;
    char out[8192], err[4096];
    char *log;
    size_t log_len;
};

static void slurp(FILE *f, char *buf, size_t len)
{
    size_t n;

    rewind(f);
    n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Runs options_parse on "xen-dm" followed by the NULL-terminated args. */
static void parse(struct result *r, const char *const *args)
{
    char *argv[64];
    int argc = 0, saved_out, saved_err;
    FILE *out = tmpfile(), *err = tmpfile(), *log;

    assert_non_null(out);
    assert_non_null(err);
    memset(r, 0, sizeof(*r));
    argv[argc++] = strdup("xen-dm");
    for (; *args; args++) {
        assert_true(argc < 63);
        argv[argc++] = strdup(*args);
    }
    argv[argc] = NULL;
    log = open_memstream(&r->log, &r->log_len);
    assert_non_null(log);
    log_set_stream(log);

    fflush(stdout);
    fflush(stderr);
    saved_out = dup(1);
    saved_err = dup(2);
    dup2(fileno(out), 1);
    dup2(fileno(err), 2);
    r->rc = options_parse(argc, argv, &r->o);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);

    log_set_stream(NULL);
    fclose(log);
    slurp(out, r->out, sizeof(r->out));
    slurp(err, r->err, sizeof(r->err));
    for (int i = 0; i < argc; i++)
        free(argv[i]);
}

static void result_free(struct result *r)
{
    options_free(&r->o);
    free(r->log);
    r->log = NULL;
}

/* The parse must fail with -EINVAL (or rc) and say why on stderr. */
static void expect_error(const char *const *args, int rc, const char *why)
{
    struct result r;
    char line[512] = "";

    for (const char *const *a = args; *a; a++)
        snprintf(line + strlen(line), sizeof(line) - strlen(line), " '%s'", *a);
    parse(&r, args);
    if (r.rc != rc)
        fail_msg("xen-dm%s: returned %d, expected %d", line, r.rc, rc);
    if (why && !strstr(r.err, why))
        fail_msg("stderr '%s' does not contain '%s'", r.err, why);
    assert_non_null(strstr(r.err, "Try 'xen-dm --help'"));
    result_free(&r);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* --- the two libxl command lines ----------------------------------------- */

static void test_qemu_xen_command_line(void **state)
{
    struct result r;

    parse(&r, ARGS("-xen-domid", "5", "-no-shutdown",
                   "-chardev", "socket,id=libxl-cmd,path=/tmp/x,server=on,wait=off",
                   "-mon", "chardev=libxl-cmd,mode=control",
                   "-chardev", "socket,id=libxenstat-cmd,path=/tmp/y,server=on,wait=off",
                   "-mon", "chardev=libxenstat-cmd,mode=control",
                   "-nodefaults", "-no-user-config", "-name", "g",
                   "-vnc", "none", "-display", "none", "-serial", "pty",
                   "-boot", "order=cd", "-smp", "2,maxcpus=4", "-net", "none",
                   "-machine", "xenfv,suppress-vmdesc=on", "-m", "1016",
                   "-drive", "file=/x.img,if=ide,index=0,media=disk,format=raw,cache=writeback"));
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.err, "");
    assert_int_equal(r.o.domid, 5);
    assert_int_equal(r.o.flavour, FLAVOUR_QEMU_XEN);
    assert_true(r.o.no_shutdown);
    assert_false(r.o.start_paused);
    assert_string_equal(r.o.name, "g");
    assert_int_equal(r.o.ram_mb, 1016);
    assert_int_equal(r.o.vcpus, 2);
    assert_int_equal(r.o.max_vcpus, 4);
    assert_string_equal(r.o.machine_type, "xenfv");
    assert_true(r.o.platform_device);
    assert_true(r.o.acpi);
    assert_string_equal(r.o.boot_order, "cd");
    assert_int_equal(r.o.n_serial, 1);
    assert_string_equal(r.o.serial[0], "pty");
    assert_false(r.o.has_qtest);

    assert_int_equal(r.o.n_qmp, 2);
    assert_int_equal(r.o.qmp[0].kind, CHARDEV_UNIX);
    assert_string_equal(r.o.qmp[0].id, "libxl-cmd");
    assert_string_equal(r.o.qmp[0].path, "/tmp/x");
    assert_true(r.o.qmp[0].server);
    assert_false(r.o.qmp[0].wait);
    assert_int_equal(r.o.qmp[1].kind, CHARDEV_UNIX);
    assert_string_equal(r.o.qmp[1].id, "libxenstat-cmd");
    assert_string_equal(r.o.qmp[1].path, "/tmp/y");
    assert_true(r.o.qmp[1].server);
    assert_false(r.o.qmp[1].wait);

    /* Recognised-but-not-yet options are said once each, not fatal. */
    assert_null(strstr(r.log, "option -drive is recognised"));
    assert_int_equal(r.o.n_drives, 1);
    assert_string_equal(r.o.drives[0], "file=/x.img,if=ide,index=0,media=disk,"
                                       "format=raw,cache=writeback");
    assert_non_null(strstr(r.log, "option -net is recognised"));
    assert_null(strstr(r.log, "option -serial is recognised"));
    assert_int_equal(r.o.n_serial, 1);
    assert_string_equal(r.o.serial[0], "pty");
    result_free(&r);
}

static void test_qemu_trad_command_line(void **state)
{
    struct result r;

    parse(&r, ARGS("-d", "7", "-domain-name", "g", "-vnc", "127.0.0.1:0",
                   "-serial", "pty", "-boot", "cda", "-acpi", "-vcpus", "2",
                   "-vcpu_avail", "3", "-net", "none", "-M", "xenfv"));
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.err, "");
    assert_int_equal(r.o.domid, 7);
    assert_int_equal(r.o.flavour, FLAVOUR_QEMU_TRAD);
    assert_string_equal(r.o.name, "g");
    assert_string_equal(r.o.boot_order, "cda");
    assert_true(r.o.acpi);
    assert_int_equal(r.o.vcpus, 2);
    assert_int_equal(r.o.max_vcpus, 2);
    assert_string_equal(r.o.vcpu_avail, "3");
    assert_string_equal(r.o.machine_type, "xenfv");
    assert_true(r.o.platform_device);
    assert_int_equal(r.o.ram_mb, 128); /* qemu-trad gets no -m */
    assert_int_equal(r.o.n_qmp, 0);
    assert_false(r.o.no_shutdown);
    assert_int_equal(r.o.n_serial, 1);
    assert_non_null(strstr(r.log, "-vnc 127.0.0.1:0: xen-dm has no VNC server"));
    result_free(&r);
}

static void test_defaults(void **state)
{
    struct result r;

    parse(&r, ARGS("-nographic"));
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.o.domid, -1);
    assert_int_equal(r.o.flavour, FLAVOUR_QEMU_XEN);
    assert_int_equal(r.o.ram_mb, 128);
    assert_int_equal(r.o.vcpus, 1);
    assert_int_equal(r.o.max_vcpus, 1);
    assert_string_equal(r.o.machine_type, "xenfv");
    assert_true(r.o.platform_device);
    assert_true(r.o.acpi);
    assert_null(r.o.name);
    assert_int_equal(r.o.n_qmp, 0);
    assert_int_equal(r.o.qtest.fd, -1);
    result_free(&r);
}

static void test_dm_restrict_fd_monitor(void **state)
{
    struct result r;

    /* libxl with dm_restrict passes a listening socket as an fd, plus -S. */
    parse(&r, ARGS("--xen-domid", "12", "-chardev",
                   "socket,id=libxl-cmd,fd=3,server=on,wait=off", "-S",
                   "-mon", "chardev=libxl-cmd,mode=control",
                   "-xen-domid-restrict", "-no-acpi"));
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.o.domid, 12);
    assert_true(r.o.start_paused);
    assert_false(r.o.acpi);
    assert_int_equal(r.o.n_qmp, 1);
    assert_int_equal(r.o.qmp[0].kind, CHARDEV_FD);
    assert_int_equal(r.o.qmp[0].fd, 3);
    assert_true(r.o.qmp[0].server);
    assert_false(r.o.qmp[0].wait);
    assert_null(r.o.qmp[0].path);
    result_free(&r);
}

static void test_machine(void **state)
{
    struct result r;

    parse(&r, ARGS("-machine", "pc,accel=xen,suppress-vmdesc=on"));
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.o.machine_type, "pc");
    assert_false(r.o.platform_device);
    result_free(&r);

    parse(&r, ARGS("-machine", "xenfv,suppress-vmdesc=on,max-ram-below-4g=3758096384"));
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.o.machine_type, "xenfv");
    assert_true(r.o.platform_device);
    result_free(&r);

    parse(&r, ARGS("-machine", "type=pc,accel=qtest"));
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.o.machine_type, "pc");
    assert_false(r.o.platform_device);
    result_free(&r);

    /* The last one given wins. */
    parse(&r, ARGS("-machine", "pc", "-M", "xenfv"));
    assert_int_equal(r.rc, 0);
    assert_true(r.o.platform_device);
    result_free(&r);

    expect_error(ARGS("-machine", "q35"), -EINVAL, "machine type 'q35'");
    expect_error(ARGS("-machine", "pc,accel=kvm"), -EINVAL, "accelerator 'kvm'");
    expect_error(ARGS("-M", "xenpv"), -EINVAL, "not supported");
}

static void test_machine_sim(void **state)
{
    struct result r;

    parse(&r, ARGS("-machine", "sim,accel=tcg", "-bios", "g.bin", "-m", "3584",
                   "-debugcon", "file:/tmp/d", "-no-reboot", "-no-shutdown"));
    assert_int_equal(r.rc, 0);
    assert_true(r.o.sim);
    assert_string_equal(r.o.machine_type, "sim");
    /* The xenfv device set, platform device included. */
    assert_true(r.o.platform_device);
    assert_string_equal(r.o.bios, "g.bin");
    assert_string_equal(r.o.debugcon, "file:/tmp/d");
    assert_true(r.o.no_reboot);
    assert_true(r.o.no_shutdown);
    result_free(&r);

    /* -M sim then -M xenfv: the last wins, and -bios then needs sim. */
    expect_error(ARGS("-M", "sim", "-M", "xenfv", "-bios", "g.bin"), -EINVAL,
                 "-bios needs -machine sim");
    expect_error(ARGS("-M", "sim"), -EINVAL, "needs -bios FILE");
    expect_error(ARGS("-M", "sim", "-bios", ""), -EINVAL, "-bios needs a file name");
    expect_error(ARGS("-M", "sim", "-bios", "g.bin", "-m", "3585"), -EINVAL,
                 "3585 MiB of RAM is more than the 3584 MiB");
    expect_error(ARGS("-M", "sim", "-bios", "g.bin", "-d", "5"), -EINVAL,
                 "cannot serve a domain");
    expect_error(ARGS("-debugcon", "stdio"), -EINVAL, "-debugcon needs -machine sim");
    expect_error(ARGS("-machine", "xenfv,accel=kvm"), -EINVAL, "accelerator 'kvm'");
}

/* --- errors -------------------------------------------------------------- */

static void test_unknown_option(void **state)
{
    expect_error(ARGS("-bogus"), -EINVAL, "unknown option '-bogus'");
    expect_error(ARGS("-xen-domid", "5", "--frobnicate", "x"), -EINVAL,
                 "unknown option '--frobnicate'");
    expect_error(ARGS("stray"), -EINVAL, "unexpected argument 'stray'");
    expect_error(ARGS("-"), -EINVAL, "unexpected argument '-'");
}

static void test_missing_argument(void **state)
{
    expect_error(ARGS("-xen-domid"), -EINVAL,
                 "option '-xen-domid' needs an argument");
    expect_error(ARGS("-name", "g", "-m"), -EINVAL, "option '-m' needs an argument");
    expect_error(ARGS("-chardev"), -EINVAL, "needs an argument");
}

static void test_bad_domid(void **state)
{
    const char *bad[] = {"0", "-1", "0x7ff0", "32752", "65535", "abc", "5x",
                         "", "99999999999999999999999"};
    struct result r;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_error(ARGS("-xen-domid", bad[i]), -EINVAL, "bad domain id");
        expect_error(ARGS("-d", bad[i]), -EINVAL, "bad domain id");
    }
    /* The highest real domain id is fine. */
    parse(&r, ARGS("-xen-domid", "32751"));
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.o.domid, 0x7fef);
    result_free(&r);
    parse(&r, ARGS("-d", "1"));
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.o.domid, 1);
    assert_int_equal(r.o.flavour, FLAVOUR_QEMU_TRAD);
    result_free(&r);
}

static void test_memory_sizes(void **state)
{
    const struct {
        const char *arg;
        uint64_t mb;
    } good[] = {
        {"1016", 1016}, {"size=2048", 2048}, {"2048M", 2048}, {"1G", 1024},
        {"4g", 4096}, {"4194304K", 4096}, {"16777216", 16777216},
        {"512,slots=2", 512},
    };
    const char *bad[] = {"0", "abc", "-5", "1.5G", "", "size=", "16777217",
                         "16385G", "512K", "17179869185G", "18446744073709551615",
                         "0G", "1T"};
    struct result r;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        parse(&r, ARGS("-m", good[i].arg));
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.o.ram_mb, good[i].mb);
        result_free(&r);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(ARGS("-m", bad[i]), -EINVAL, "memory size");
}

static void test_smp_and_vcpus(void **state)
{
    struct result r;

    parse(&r, ARGS("-smp", "cpus=3"));
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.o.vcpus, 3);
    assert_int_equal(r.o.max_vcpus, 3);
    result_free(&r);
    parse(&r, ARGS("-smp", "1,maxcpus=8"));
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.o.vcpus, 1);
    assert_int_equal(r.o.max_vcpus, 8);
    result_free(&r);

    expect_error(ARGS("-smp", "0"), -EINVAL, "bad -smp value");
    expect_error(ARGS("-smp", "2,maxcpus=129"), -EINVAL, "bad -smp value");
    expect_error(ARGS("-smp", "two"), -EINVAL, "bad -smp value");
    expect_error(ARGS("-vcpus", "0"), -EINVAL, "bad -vcpus value");
    expect_error(ARGS("-vcpus", "x"), -EINVAL, "bad -vcpus value");
    expect_error(ARGS("-vcpu_avail", "zz"), -EINVAL, "bad -vcpu_avail");
    expect_error(ARGS("-vcpu_avail", ""), -EINVAL, "bad -vcpu_avail");
    expect_error(ARGS("-boot", "order=xyz"), -EINVAL, "bad boot order");
    expect_error(ARGS("-boot", ""), -EINVAL, "bad boot order");
}

static void test_monitor_errors(void **state)
{
    struct result r;

    expect_error(ARGS("-mon", "chardev=nope,mode=control"), -EINVAL,
                 "no -chardev with id 'nope'");
    expect_error(ARGS("-chardev", "socket,id=a,path=/tmp/a,server=on,wait=off",
                      "-mon", "chardev=b,mode=control"),
                 -EINVAL, "no -chardev with id 'b'");
    expect_error(ARGS("-mon", "mode=control"), -EINVAL, "chardev= is required");
    expect_error(ARGS("-chardev", "socket,id=a,path=/tmp/a,server=on,wait=off",
                      "-mon", "chardev=a,mode=control,color=blue"),
                 -EINVAL, "unsupported parameter 'color=blue'");
    /* One chardev cannot serve two monitors. */
    expect_error(ARGS("-chardev", "socket,id=a,path=/tmp/a,server=on,wait=off",
                      "-mon", "chardev=a,mode=control",
                      "-mon", "chardev=a,mode=control"),
                 -EINVAL, "no -chardev with id 'a'");
    /* -chardev problems. */
    expect_error(ARGS("-chardev", "socket,path=/tmp/a,server=on,wait=off"),
                 -EINVAL, "id= is required");
    expect_error(ARGS("-chardev", "socket,id=a"), -EINVAL,
                 "socket chardev needs path= or fd=");
    expect_error(ARGS("-chardev", "socket,id=a,path=/tmp/a,flavour=mint"),
                 -EINVAL, "unsupported chardev parameter 'flavour=mint'");

    /* The human monitor is refused politely, not fatally. */
    parse(&r, ARGS("-chardev", "socket,id=h,path=/tmp/h,server=on,wait=off",
                   "-mon", "chardev=h,mode=readline"));
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.o.n_qmp, 0);
    assert_non_null(strstr(r.log, "mode=readline"));
    result_free(&r);
    /* Non-socket chardevs are kept for a device to name (the machine
     * says so when none does, as for libxl's channels); other kinds are
     * ignored with a warning, and id= is required. */
    parse(&r, ARGS("-chardev", "pty,id=libxl-channel0",
                   "-chardev", "file,id=dbg,path=/tmp/dbg.log"));
    assert_int_equal(r.rc, 0);
    assert_string_equal(options_backend(&r.o, "libxl-channel0"), "pty");
    assert_string_equal(options_backend(&r.o, "dbg"), "file:/tmp/dbg.log");
    assert_null(options_backend(&r.o, "nope"));
    result_free(&r);
    parse(&r, ARGS("-chardev", "spicevmc,id=s,name=vdagent"));
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.log, "-chardev spicevmc,id=s,name=vdagent"));
    result_free(&r);
    expect_error(ARGS("-chardev", "file,path=/tmp/x"), -EINVAL, "id= is required");
    expect_error(ARGS("-chardev", "null,id=a", "-chardev", "null,id=a"), -EINVAL,
                 "duplicate id 'a'");
    /* A chardev no monitor claims is simply freed. */
    parse(&r, ARGS("-chardev", "socket,id=z,path=/tmp/z,server=on,wait=off"));
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.o.n_qmp, 0);
    result_free(&r);
}

static void test_qmp_option(void **state)
{
    struct result r;

    parse(&r, ARGS("-qmp", "unix:/run/q,server,nowait", "-qmp",
                   "unix:/run/r,server=on,wait=off"));
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.o.n_qmp, 2);
    assert_string_equal(r.o.qmp[0].path, "/run/q");
    assert_true(r.o.qmp[0].server);
    assert_false(r.o.qmp[0].wait);
    assert_null(r.o.qmp[0].id);
    assert_string_equal(r.o.qmp[1].path, "/run/r");
    result_free(&r);

    expect_error(ARGS("-qmp", "stdio"), -EINVAL, "a QMP monitor needs a socket");
    expect_error(ARGS("-qmp", "tcp:localhost:4444"), -EINVAL, "unsupported");
    /* More monitors than we serve: refused, nothing leaks. */
    expect_error(ARGS("-qmp", "unix:/a,server,nowait", "-qmp",
                      "unix:/b,server,nowait", "-qmp", "unix:/c,server,nowait",
                      "-qmp", "unix:/d,server,nowait", "-qmp",
                      "unix:/e,server,nowait"),
                 -EINVAL, "too many QMP monitors");
    expect_error(ARGS("-qmp", "unix:/a,server,nowait", "-qmp",
                      "unix:/b,server,nowait", "-qmp", "unix:/c,server,nowait",
                      "-qmp", "unix:/d,server,nowait", "-chardev",
                      "socket,id=e,path=/e,server=on,wait=off", "-mon",
                      "chardev=e,mode=control"),
                 -EINVAL, "too many QMP monitors");
}

static void test_qtest_option(void **state)
{
    struct result r;

    parse(&r, ARGS("-qtest", "unix:/tmp/qt,server=on,wait=off", "-machine",
                   "pc,accel=qtest"));
    assert_int_equal(r.rc, 0);
    assert_true(r.o.has_qtest);
    assert_int_equal(r.o.qtest.kind, CHARDEV_UNIX);
    assert_string_equal(r.o.qtest.path, "/tmp/qt");
    assert_true(r.o.qtest.server);
    assert_false(r.o.qtest.wait);
    result_free(&r);

    /* Given twice, the second wins and the first is freed. */
    parse(&r, ARGS("-qtest", "unix:/tmp/one", "-qtest", "stdio"));
    assert_int_equal(r.rc, 0);
    assert_true(r.o.has_qtest);
    assert_int_equal(r.o.qtest.kind, CHARDEV_STDIO);
    assert_null(r.o.qtest.path);
    result_free(&r);

    expect_error(ARGS("-qtest", "tcp:localhost:3000"), -EINVAL,
                 "-qtest tcp:localhost:3000: unsupported character device");
    expect_error(ARGS("-qtest", "unix:"), -EINVAL, "unsupported character device");
    expect_error(ARGS("-qtest", "unix:/q,bogus=1"), -EINVAL,
                 "unsupported chardev parameter 'bogus=1'");
    expect_error(ARGS("-qtest", "unix:/q,server=maybe"), -EINVAL,
                 "unsupported chardev parameter");
    expect_error(ARGS("-qtest", "/tmp/qt"), -EINVAL, "unsupported character device");
}

static void test_help_version_trace(void **state)
{
    struct result r;

    parse(&r, ARGS("--help"));
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.out, "Usage: xen-dm [options]"));
    assert_non_null(strstr(r.out, "-xen-domid"));
    assert_non_null(strstr(r.out, "[not yet supported: ignored]"));
    result_free(&r);

    /* Options after --help are not looked at. */
    parse(&r, ARGS("-h", "-bogus"));
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.err, "");
    result_free(&r);

    parse(&r, ARGS("-version"));
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.out, "xen-dm " XEN_DM_VERSION "\n");
    result_free(&r);

    parse(&r, ARGS("-trace", "help"));
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.out, "trace_enable\n"));
    result_free(&r);

    parse(&r, ARGS("-trace", "enable=trace_enable"));
    assert_int_equal(r.rc, 0);
    result_free(&r);
    trace_enable("*", false);

    parse(&r, ARGS("-trace", "no_such_point_*"));
    assert_int_equal(r.rc, -ENOENT);
    assert_non_null(strstr(r.log, "no trace point matches 'no_such_point_*'"));
    result_free(&r);
}

static void test_name_forms(void **state)
{
    struct result r;

    parse(&r, ARGS("-name", "guest=web01,debug-threads=on", "-domain-name",
                   "web02"));
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.o.name, "web02");
    result_free(&r);
    parse(&r, ARGS("-name", "guest=web01,debug-threads=on"));
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.o.name, "web01");
    result_free(&r);
}

/* --- chardev_parse ------------------------------------------------------- */

static void parse_ok(const char *text, bool chardev_opt,
                     struct chardev_spec *spec)
{
    char err[160] = "";

    if (chardev_parse(text, chardev_opt, spec, err, sizeof(err)) != 0)
        fail_msg("'%s' refused: %s", text, err);
}

static void parse_bad(const char *text, bool chardev_opt, int rc,
                      const char *why)
{
    struct chardev_spec spec;
    char err[160] = "";

    assert_int_equal(chardev_parse(text, chardev_opt, &spec, err, sizeof(err)),
                     rc);
    if (!strstr(err, why))
        fail_msg("'%s': error '%s' does not contain '%s'", text, err, why);
    /* Nothing left to free or to use by mistake. */
    assert_null(spec.id);
    assert_null(spec.path);
    assert_int_equal(spec.fd, -1);
}

static void test_chardev_unix(void **state)
{
    struct chardev_spec s;

    parse_ok("unix:/p", false, &s);
    assert_int_equal(s.kind, CHARDEV_UNIX);
    assert_string_equal(s.path, "/p");
    assert_null(s.id);
    assert_false(s.server);
    assert_false(s.wait);
    assert_int_equal(s.fd, -1);
    chardev_spec_clear(&s);

    parse_ok("unix:/p,server=on,wait=off", false, &s);
    assert_int_equal(s.kind, CHARDEV_UNIX);
    assert_string_equal(s.path, "/p");
    assert_true(s.server);
    assert_false(s.wait);
    chardev_spec_clear(&s);

    parse_ok("unix:/p,server,nowait", false, &s);
    assert_string_equal(s.path, "/p");
    assert_true(s.server);
    assert_false(s.wait);
    chardev_spec_clear(&s);

    /* As QEMU: a server waits for its first client unless told not to. */
    parse_ok("unix:/var/run/a b,server", false, &s);
    assert_string_equal(s.path, "/var/run/a b");
    assert_true(s.server);
    assert_true(s.wait);
    chardev_spec_clear(&s);

    parse_ok("unix:/p,server=off,wait=on", false, &s);
    assert_false(s.server);
    assert_true(s.wait);
    chardev_spec_clear(&s);

    parse_ok("unix:/p,server=yes,wait=no,nodelay", false, &s);
    assert_true(s.server);
    assert_false(s.wait);
    chardev_spec_clear(&s);
    assert_null(s.path);
    assert_int_equal(s.fd, -1);
}

static void test_chardev_stdio(void **state)
{
    struct chardev_spec s;

    parse_ok("stdio", false, &s);
    assert_int_equal(s.kind, CHARDEV_STDIO);
    assert_null(s.path);
    assert_false(s.server);
    chardev_spec_clear(&s);
}

static void test_chardev_socket(void **state)
{
    struct chardev_spec s;

    parse_ok("socket,id=a,fd=3,server=on,wait=off", true, &s);
    assert_int_equal(s.kind, CHARDEV_FD);
    assert_string_equal(s.id, "a");
    assert_int_equal(s.fd, 3);
    assert_true(s.server);
    assert_false(s.wait);
    assert_null(s.path);
    chardev_spec_clear(&s);

    /* An inherited fd is a listening socket even if server= is absent. */
    parse_ok("socket,id=b,fd=17", true, &s);
    assert_int_equal(s.kind, CHARDEV_FD);
    assert_int_equal(s.fd, 17);
    assert_true(s.server);
    chardev_spec_clear(&s);

    parse_ok("socket,id=libxl-cmd,path=/var/run/xen/qmp-libxl-5,server=on,wait=off",
             true, &s);
    assert_int_equal(s.kind, CHARDEV_UNIX);
    assert_string_equal(s.id, "libxl-cmd");
    assert_string_equal(s.path, "/var/run/xen/qmp-libxl-5");
    assert_true(s.server);
    assert_false(s.wait);
    chardev_spec_clear(&s);
}

static void test_chardev_rejects(void **state)
{
    parse_bad("tcp:localhost:4444", false, -EINVAL,
              "unsupported character device 'tcp:localhost:4444'");
    parse_bad("tcp:localhost:4444,server=on", false, -EINVAL,
              "unsupported character device");
    parse_bad("unix:", false, -EINVAL, "unsupported character device");
    parse_bad("pty", false, -EINVAL, "unsupported character device");
    parse_bad("socket,id=a", true, -EINVAL, "socket chardev needs path= or fd=");
    parse_bad("socket,id=a,server=on,wait=off", true, -EINVAL,
              "needs path= or fd=");
    parse_bad("socket,id=a,path=", true, -EINVAL, "unsupported chardev parameter");
    parse_bad("socket,id=a,path=/p,speed=fast", true, -EINVAL,
              "unsupported chardev parameter 'speed=fast'");
    parse_bad("unix:/p,mux=on", false, -EINVAL,
              "unsupported chardev parameter 'mux=on'");
    parse_bad("unix:/p,server=perhaps", false, -EINVAL,
              "unsupported chardev parameter 'server=perhaps'");
    parse_bad("unix:/p,wait=2", false, -EINVAL, "unsupported chardev parameter");
    parse_bad("socket,id=a,fd=-1", true, -EINVAL, "bad fd '-1'");
    parse_bad("socket,id=a,fd=3x", true, -EINVAL, "bad fd '3x'");
    parse_bad("socket,id=a,fd=65536", true, -EINVAL, "bad fd");
    parse_bad("pty,id=a", true, -ENOTSUP, "not supported for monitors");
    parse_bad("file,id=a,path=/tmp/f", true, -ENOTSUP, "'file'");
    /* Releases what it had already parsed before the bad part. */
    parse_bad("socket,id=keep,path=/tmp/p,oops", true, -EINVAL, "'oops'");
}

static void test_device_props(void **state)
{
    const char *dev = "isa-debug-exit,iobase=0xf4,iosize=0x04";
    char buf[8];

    assert_true(options_device_is(dev, "isa-debug-exit"));
    assert_false(options_device_is(dev, "isa-debug"));
    assert_false(options_device_is("isa-debugcon", "isa-debug"));
    assert_string_equal(options_device_prop(dev, "iosize", buf, sizeof(buf)),
                        "0x04");
    /* A key is matched whole, never as the prefix of another key. */
    assert_null(options_device_prop(dev, "io", buf, sizeof(buf)));
    /* The driver name is not a key. */
    assert_null(options_device_prop("iobase=1", "iobase", buf, sizeof(buf)));
    /* Cut to the buffer. */
    assert_string_equal(options_device_prop("x,id=abcdefghij", "id", buf,
                                            sizeof(buf)), "abcdefg");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_props),
        cmocka_unit_test(test_qemu_xen_command_line),
        cmocka_unit_test(test_qemu_trad_command_line),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_dm_restrict_fd_monitor),
        cmocka_unit_test(test_machine),
        cmocka_unit_test(test_machine_sim),
        cmocka_unit_test(test_unknown_option),
        cmocka_unit_test(test_missing_argument),
        cmocka_unit_test(test_bad_domid),
        cmocka_unit_test(test_memory_sizes),
        cmocka_unit_test(test_smp_and_vcpus),
        cmocka_unit_test(test_monitor_errors),
        cmocka_unit_test(test_qmp_option),
        cmocka_unit_test(test_qtest_option),
        cmocka_unit_test(test_help_version_trace),
        cmocka_unit_test(test_name_forms),
        cmocka_unit_test(test_chardev_unix),
        cmocka_unit_test(test_chardev_stdio),
        cmocka_unit_test(test_chardev_socket),
        cmocka_unit_test(test_chardev_rejects),
    };

    return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
