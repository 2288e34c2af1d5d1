#include "options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"

enum opt_status {
    OPT_SUPPORTED,
    OPT_NOT_YET, /* recognised, logged once, ignored */
};

struct parse_state {
    struct dm_options *o;
    /* -chardev definitions waiting for a -mon to claim them. */
    unsigned n_chardevs;
    struct chardev_spec chardevs[OPT_MAX_MONITORS * 2];
    unsigned n_mons;
    char *mons[OPT_MAX_MONITORS * 2];
    bool exit_now;
};

typedef int (*opt_fn)(struct parse_state *st, const char *arg);

struct opt {
    const char *name;
    bool has_arg;
    enum opt_status status;
    opt_fn fn;
    const char *help;
};

static int fail(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "xen-dm: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    return -EINVAL;
}

static int parse_uint(const char *s, unsigned long long max,
                      unsigned long long *out)
{
    char *end;
    unsigned long long v;

    if (!s || !*s || *s == '-')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static int set_domid(struct parse_state *st, const char *arg,
                     enum dm_flavour flavour)
{
    unsigned long long v;

    /* DOMID_FIRST_RESERVED is 0x7FF0; domain 0 has no device model. */
    if (parse_uint(arg, 0x7fef, &v) < 0 || v == 0)
        return fail("bad domain id '%s'%s", arg, "");
    st->o->domid = (int)v;
    st->o->flavour = flavour;
    return 0;
}

static int opt_xen_domid(struct parse_state *st, const char *arg)
{
    return set_domid(st, arg, FLAVOUR_QEMU_XEN);
}

static int opt_trad_domid(struct parse_state *st, const char *arg)
{
    return set_domid(st, arg, FLAVOUR_QEMU_TRAD);
}

static int replace(char **slot, const char *arg)
{
    free(*slot);
    *slot = strdup(arg);
    return *slot ? 0 : -ENOMEM;
}

static int opt_name(struct parse_state *st, const char *arg)
{
    /* QEMU's -name takes "guest=NAME,..." too; libxl passes a bare name. */
    const char *v = strncmp(arg, "guest=", 6) ? arg : arg + 6;
    size_t n = strcspn(v, ",");
    int rc = replace(&st->o->name, v);

    if (rc == 0)
        st->o->name[n] = '\0';
    return rc;
}

static int opt_memory(struct parse_state *st, const char *arg)
{
    const char *v = strncmp(arg, "size=", 5) ? arg : arg + 5;
    unsigned long long n, shift = 20;
    char num[32], *end;
    size_t len = strcspn(v, ",");

    if (len == 0 || len >= sizeof(num))
        return fail("bad memory size '%s'%s", arg, "");
    memcpy(num, v, len);
    num[len] = '\0';
    end = num + len - 1;
    switch (*end) {
    case 'k': case 'K': shift = 10; *end = '\0'; break;
    case 'm': case 'M': shift = 20; *end = '\0'; break;
    case 'g': case 'G': shift = 30; *end = '\0'; break;
    default: break;
    }
    /* Bounded by 16 TiB in bytes before shifting, so the shift cannot
     * overflow and wrap a huge size round to a small one. */
    if (parse_uint(num, (1ull << 44) >> shift, &n) < 0 || n == 0)
        return fail("bad memory size '%s'%s", arg, "");
    n = (n << shift) >> 20;
    if (n == 0 || n > (1ull << 24))
        return fail("memory size '%s' out of range%s", arg, "");
    st->o->ram_mb = n;
    return 0;
}

static int opt_machine(struct parse_state *st, const char *arg)
{
    char *copy = strdup(arg), *save = NULL, *tok;
    int rc = 0;

    if (!copy)
        return -ENOMEM;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        const char *type = NULL;

        if (!strchr(tok, '='))
            type = tok;
        else if (!strncmp(tok, "type=", 5))
            type = tok + 5;
        else if (!strncmp(tok, "accel=", 6)) {
            /* tcg: the software CPU, which is what -machine sim is. */
            if (strcmp(tok + 6, "xen") && strcmp(tok + 6, "qtest") &&
                strcmp(tok + 6, "tcg")) {
                rc = fail("accelerator '%s' not supported (xen, qtest or "
                          "tcg)%s", tok + 6, "");
                break;
            }
        }
        /* suppress-vmdesc, max-ram-below-4g, igd-passthru: properties of
         * QEMU's migration stream and memory layout we accept as given. */
        if (!type)
            continue;
        if (strcmp(type, "xenfv") && strcmp(type, "pc") &&
            strcmp(type, "sim")) {
            rc = fail("machine type '%s' not supported (xenfv, pc or sim)%s",
                      type, "");
            break;
        }
        rc = replace(&st->o->machine_type, type);
        /* sim keeps xenfv's device set so guests see the real machine. */
        st->o->sim = !strcmp(type, "sim");
        st->o->platform_device = strcmp(type, "pc") != 0;
        if (rc < 0)
            break;
    }
    free(copy);
    return rc;
}

static int opt_flag_paused(struct parse_state *st, const char *arg)
{
    st->o->start_paused = true;
    return 0;
}

static int opt_no_shutdown(struct parse_state *st, const char *arg)
{
    st->o->no_shutdown = true;
    return 0;
}

static int opt_acpi(struct parse_state *st, const char *arg)
{
    st->o->acpi = true;
    return 0;
}

static int opt_no_acpi(struct parse_state *st, const char *arg)
{
    st->o->acpi = false;
    return 0;
}

static int opt_smp(struct parse_state *st, const char *arg)
{
    char *copy = strdup(arg), *save = NULL, *tok;
    unsigned long long v;
    int rc = 0;

    if (!copy)
        return -ENOMEM;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        const char *val = strchr(tok, '=') ? strchr(tok, '=') + 1 : tok;

        if (parse_uint(val, 128, &v) < 0 || v == 0) {
            rc = fail("bad -smp value '%s'%s", arg, "");
            break;
        }
        if (!strncmp(tok, "maxcpus=", 8))
            st->o->max_vcpus = (unsigned)v;
        else if (!strchr(tok, '=') || !strncmp(tok, "cpus=", 5))
            st->o->vcpus = (unsigned)v;
    }
    free(copy);
    if (st->o->max_vcpus < st->o->vcpus)
        st->o->max_vcpus = st->o->vcpus;
    return rc;
}

static int opt_vcpus(struct parse_state *st, const char *arg)
{
    unsigned long long v;

    if (parse_uint(arg, 128, &v) < 0 || v == 0)
        return fail("bad -vcpus value '%s'%s", arg, "");
    st->o->vcpus = st->o->max_vcpus = (unsigned)v;
    return 0;
}

static int opt_vcpu_avail(struct parse_state *st, const char *arg)
{
    if (strspn(arg, "0123456789abcdefABCDEFx") != strlen(arg) || !*arg)
        return fail("bad -vcpu_avail bitmap '%s'%s", arg, "");
    return replace(&st->o->vcpu_avail, arg);
}

static int opt_qtest(struct parse_state *st, const char *arg)
{
    char err[160];

    chardev_spec_clear(&st->o->qtest);
    if (chardev_parse(arg, false, &st->o->qtest, err, sizeof(err)) < 0)
        return fail("-qtest %s: %s", arg, err);
    st->o->has_qtest = true;
    return 0;
}

static int add_qmp(struct parse_state *st, const struct chardev_spec *spec)
{
    if (st->o->n_qmp == OPT_MAX_MONITORS)
        return fail("too many QMP monitors%s%s", "", "");
    st->o->qmp[st->o->n_qmp++] = *spec;
    return 0;
}

static int opt_qmp(struct parse_state *st, const char *arg)
{
    struct chardev_spec spec;
    char err[160];
    int rc;

    if (chardev_parse(arg, false, &spec, err, sizeof(err)) < 0)
        return fail("-qmp %s: %s", arg, err);
    if (spec.kind == CHARDEV_STDIO) {
        chardev_spec_clear(&spec);
        return fail("-qmp %s: %s", arg, "a QMP monitor needs a socket");
    }
    rc = add_qmp(st, &spec);
    if (rc < 0)
        chardev_spec_clear(&spec);
    return rc;
}

/* "-chardev file,id=ID,path=P" and its stdio/null/pty siblings: byte
 * streams for devices (-device isa-debugcon,chardev=ID), kept as the spec
 * lib/charbe.h opens. */
static int add_backend(struct parse_state *st, const char *arg)
{
    char *copy = strdup(arg), *save = NULL, *tok, *kind;
    const char *id = NULL, *path = NULL;
    char spec[4200];
    unsigned n = st->o->n_backends;
    int rc = 0;

    if (!copy)
        return -ENOMEM;
    kind = strtok_r(copy, ",", &save);
    if (!kind || (strcmp(kind, "file") && strcmp(kind, "stdio") &&
                  strcmp(kind, "null") && strcmp(kind, "pty"))) {
        /* Channels over other backends are a later feature. */
        log_warn("-chardev %s: only socket (monitors), file, stdio, null "
                 "and pty chardevs are supported; ignored", arg);
        goto out;
    }
    for (tok = strtok_r(NULL, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!strncmp(tok, "id=", 3))
            id = tok + 3;
        else if (!strncmp(tok, "path=", 5))
            path = tok + 5;
        else if (strcmp(tok, "signal=off") && strcmp(tok, "signal=on") &&
                 strcmp(tok, "mux=off")) {
            rc = fail("-chardev: unsupported parameter '%s'%s", tok, "");
            goto out;
        }
    }
    if (!id || !*id) {
        rc = fail("-chardev %s: %s", arg, "id= is required");
        goto out;
    }
    if (!strcmp(kind, "file") && path && *path) {
        snprintf(spec, sizeof(spec), "file:%s", path);
    } else if (strcmp(kind, "file") && !path) {
        snprintf(spec, sizeof(spec), "%s", kind);
    } else {
        rc = fail("-chardev %s: %s", arg, strcmp(kind, "file")
                                              ? "path= only goes with file"
                                              : "file needs path=");
        goto out;
    }
    if (options_backend(st->o, id)) {
        rc = fail("-chardev: duplicate id '%s'%s", id, "");
        goto out;
    }
    if (n == OPT_MAX_LIST) {
        rc = fail("-chardev %s: %s", arg, "too many chardevs");
        goto out;
    }
    st->o->backend_ids[n] = strdup(id);
    st->o->backend_specs[n] = strdup(spec);
    st->o->n_backends++;
    if (!st->o->backend_ids[n] || !st->o->backend_specs[n])
        rc = -ENOMEM;
out:
    free(copy);
    return rc;
}

bool options_device_is(const char *dev, const char *name)
{
    size_t n = strlen(name);

    return !strncmp(dev, name, n) && (dev[n] == '\0' || dev[n] == ',');
}

const char *options_device_prop(const char *dev, const char *key, char *buf,
                                size_t len)
{
    size_t klen = strlen(key);

    for (const char *p = strchr(dev, ','); p; p = strchr(p + 1, ',')) {
        if (!strncmp(p + 1, key, klen) && p[1 + klen] == '=') {
            size_t n = strcspn(p + 2 + klen, ",");

            if (n >= len)
                n = len - 1;
            memcpy(buf, p + 2 + klen, n);
            buf[n] = '\0';
            return buf;
        }
    }
    return NULL;
}

const char *options_backend(const struct dm_options *o, const char *id)
{
    for (unsigned i = 0; i < o->n_backends; i++)
        if (o->backend_ids[i] && !strcmp(o->backend_ids[i], id))
            return o->backend_specs[i];
    return NULL;
}

static int opt_chardev(struct parse_state *st, const char *arg)
{
    struct chardev_spec spec;
    char err[160];

    if (strncmp(arg, "socket,", 7))
        return add_backend(st, arg);
    if (chardev_parse(arg, true, &spec, err, sizeof(err)) < 0)
        return fail("-chardev %s: %s", arg, err);
    if (!spec.id) {
        chardev_spec_clear(&spec);
        return fail("-chardev %s: %s", arg, "id= is required");
    }
    if (st->n_chardevs == sizeof(st->chardevs) / sizeof(st->chardevs[0])) {
        chardev_spec_clear(&spec);
        return fail("-chardev %s: %s", arg, "too many chardevs");
    }
    st->chardevs[st->n_chardevs++] = spec;
    return 0;
}

static int opt_bios(struct parse_state *st, const char *arg)
{
    if (!*arg)
        return fail("-bios needs a file name%s%s", "", "");
    return replace(&st->o->bios, arg);
}

static int opt_debugcon(struct parse_state *st, const char *arg)
{
    if (!*arg)
        return fail("-debugcon needs a character device%s%s", "", "");
    return replace(&st->o->debugcon, arg);
}

static int opt_no_reboot(struct parse_state *st, const char *arg)
{
    st->o->no_reboot = true;
    return 0;
}

static int opt_mon(struct parse_state *st, const char *arg)
{
    if (st->n_mons == sizeof(st->mons) / sizeof(st->mons[0]))
        return fail("-mon %s: %s", arg, "too many monitors");
    st->mons[st->n_mons] = strdup(arg);
    return st->mons[st->n_mons++] ? 0 : -ENOMEM;
}

/* Pairs each "-mon chardev=ID,mode=control" with its -chardev. */
static int resolve_monitors(struct parse_state *st)
{
    for (unsigned m = 0; m < st->n_mons; m++) {
        char *copy = st->mons[m], *save = NULL, *tok, *id = NULL;
        bool control = false;
        int rc = 0;

        for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (!strncmp(tok, "chardev=", 8))
                id = tok + 8;
            else if (!strcmp(tok, "mode=control"))
                control = true;
            else if (!strcmp(tok, "mode=readline"))
                control = false;
            else if (strcmp(tok, "pretty=on") && strcmp(tok, "pretty=off"))
                return fail("-mon: unsupported parameter '%s'%s", tok, "");
        }
        if (!id)
            return fail("-mon: chardev= is required%s%s", "", "");
        if (!control) {
            log_warn("-mon chardev=%s: the human monitor (mode=readline) is "
                     "not supported; only QMP (mode=control)", id);
            continue;
        }
        for (unsigned c = 0; c < st->n_chardevs; c++) {
            if (st->chardevs[c].id && !strcmp(st->chardevs[c].id, id)) {
                /* On failure the chardev stays in the list, which the
                 * caller frees. */
                rc = add_qmp(st, &st->chardevs[c]);
                if (rc < 0)
                    return rc;
                st->chardevs[c] = (struct chardev_spec){.fd = -1};
                id = NULL;
                break;
            }
        }
        if (id)
            return fail("-mon: no -chardev with id '%s'%s", id, "");
    }
    return 0;
}

static int opt_trace(struct parse_state *st, const char *arg)
{
    const char *v = strncmp(arg, "enable=", 7) ? arg : arg + 7;

    if (!strcmp(v, "help")) {
        trace_list(stdout);
        st->exit_now = true;
        return 0;
    }
    return trace_enable_list(v) < 0 ? -ENOENT : 0;
}

static int opt_boot(struct parse_state *st, const char *arg)
{
    const char *v = strncmp(arg, "order=", 6) ? arg : arg + 6;
    size_t n = strcspn(v, ",");
    int rc;

    if (n == 0 || strspn(v, "acdn") < n)
        return fail("bad boot order '%s'%s", arg, "");
    rc = replace(&st->o->boot_order, v);
    if (rc == 0)
        st->o->boot_order[n] = '\0';
    return rc;
}

static int opt_serial(struct parse_state *st, const char *arg)
{
    if (st->o->n_serial == OPT_MAX_LIST)
        return fail("too many -serial options%s%s", "", "");
    st->o->serial[st->o->n_serial] = strdup(arg);
    return st->o->serial[st->o->n_serial++] ? 0 : -ENOMEM;
}

static int add_to_list(char **list, unsigned *n, const char *what,
                       const char *arg)
{
    if (*n == OPT_MAX_LIST)
        return fail("too many %s options%s", what, "");
    list[*n] = strdup(arg);
    return list[(*n)++] ? 0 : -ENOMEM;
}

static int opt_drive(struct parse_state *st, const char *arg)
{
    return add_to_list(st->o->drives, &st->o->n_drives, "-drive", arg);
}

static int opt_device(struct parse_state *st, const char *arg)
{
    return add_to_list(st->o->devices, &st->o->n_devices, "-device", arg);
}

static int opt_display(struct parse_state *st, const char *arg)
{
    if (strcmp(arg, "none"))
        log_warn("-display %s: xen-dm has no display; ignored", arg);
    return 0;
}

static int opt_vnc(struct parse_state *st, const char *arg)
{
    if (strcmp(arg, "none"))
        log_warn("-vnc %s: xen-dm has no VNC server; ignored", arg);
    return 0;
}

static int opt_hotplug_layout(struct parse_state *st, const char *arg)
{
    if (!strcmp(arg, "qemu-xen"))
        st->o->hotplug_layout = HOTPLUG_LAYOUT_XEN;
    else if (!strcmp(arg, "qemu-trad") || !strcmp(arg, "qemu-xen-traditional"))
        st->o->hotplug_layout = HOTPLUG_LAYOUT_TRAD;
    else
        return fail("bad hot-plug layout '%s' (qemu-xen or qemu-trad)%s", arg,
                    "");
    return 0;
}

static int opt_loadvm(struct parse_state *st, const char *arg)
{
    if (!*arg)
        return fail("-loadvm needs a file name%s%s", "", "");
    return replace(&st->o->loadvm, arg);
}

static int opt_incoming(struct parse_state *st, const char *arg)
{
    unsigned long long fd;

    /* libxl passes the restore file as an inherited descriptor. */
    if (strncmp(arg, "fd:", 3) || parse_uint(arg + 3, 65535, &fd) < 0)
        return fail("-incoming %s: only fd:N is supported%s", arg, "");
    st->o->incoming_fd = (int)fd;
    return 0;
}

static int opt_help(struct parse_state *st, const char *arg)
{
    options_usage(stdout);
    st->exit_now = true;
    return 0;
}

static int opt_version(struct parse_state *st, const char *arg)
{
    printf("xen-dm %s\n", XEN_DM_VERSION);
    st->exit_now = true;
    return 0;
}

static int opt_nothing(struct parse_state *st, const char *arg) { return 0; }

static const struct opt options[] = {
    /* Attaching and identity. */
    {"xen-domid", true, OPT_SUPPORTED, opt_xen_domid, "serve domain N (qemu-xen flavour)"},
    {"d", true, OPT_SUPPORTED, opt_trad_domid, "serve domain N (qemu-trad flavour)"},
    {"name", true, OPT_SUPPORTED, opt_name, "guest name, used in logs"},
    {"domain-name", true, OPT_SUPPORTED, opt_name, "guest name (qemu-trad)"},
    {"machine", true, OPT_SUPPORTED, opt_machine, "xenfv (with platform device), pc, or sim (no hypervisor: the software CPU runs the guest)"},
    {"M", true, OPT_SUPPORTED, opt_machine, "machine type (qemu-trad)"},
    {"m", true, OPT_SUPPORTED, opt_memory, "guest RAM in MiB (or with K/M/G)"},
    {"smp", true, OPT_SUPPORTED, opt_smp, "N[,maxcpus=M] vCPUs"},
    {"vcpus", true, OPT_SUPPORTED, opt_vcpus, "number of vCPUs (qemu-trad)"},
    {"vcpu_avail", true, OPT_SUPPORTED, opt_vcpu_avail, "hex bitmap of online vCPUs (qemu-trad)"},
    {"acpi", false, OPT_SUPPORTED, opt_acpi, "provide the ACPI PM function (qemu-trad)"},
    {"no-acpi", false, OPT_SUPPORTED, opt_no_acpi, "no ACPI PM function"},
    {"S", false, OPT_SUPPORTED, opt_flag_paused, "start paused (prelaunch) until QMP cont"},
    {"no-shutdown", false, OPT_SUPPORTED, opt_no_shutdown, "on guest power-off stop, do not exit"},
    {"no-reboot", false, OPT_SUPPORTED, opt_no_reboot, "sim: exit instead of resetting on a guest reset or triple fault"},
    {"bios", true, OPT_SUPPORTED, opt_bios, "FILE sim: firmware image (64 KiB multiple, <= 1 MiB) at the top of 4 GiB and 1 MiB"},
    {"debugcon", true, OPT_SUPPORTED, opt_debugcon, "SPEC sim: debug console on port 0xE9 (backends as -serial)"},
    {"boot", true, OPT_SUPPORTED, opt_boot, "[order=]DRIVES boot order (a c d n)"},
    /* Control sockets. */
    {"chardev", true, OPT_SUPPORTED, opt_chardev, "socket,id=ID,path=PATH|fd=N,server=on,wait=off, or file,id=ID,path=P | stdio,id=ID | null,id=ID | pty,id=ID"},
    {"mon", true, OPT_SUPPORTED, opt_mon, "chardev=ID,mode=control: QMP on that chardev"},
    {"qmp", true, OPT_SUPPORTED, opt_qmp, "unix:PATH,server=on,wait=off: QMP socket"},
    {"qtest", true, OPT_SUPPORTED, opt_qtest, "unix:PATH[,server=on,wait=off] | stdio: qtest protocol"},
    {"hotplug-layout", true, OPT_SUPPORTED, opt_hotplug_layout, "qemu-xen (0xAE00, GPE 1) or qemu-trad (0x10C0, GPE 3); default follows the flavour"},
    {"trace", true, OPT_SUPPORTED, opt_trace, "[enable=]PATTERN[,...] switch on trace points; 'help' lists them"},
    /* No display, no defaults, no user config: satisfied as they stand. */
    {"nodefaults", false, OPT_SUPPORTED, opt_nothing, "no default devices (always true)"},
    {"no-user-config", false, OPT_SUPPORTED, opt_nothing, "no user configuration files (always true)"},
    {"nographic", false, OPT_SUPPORTED, opt_nothing, "no display (always true)"},
    {"display", true, OPT_SUPPORTED, opt_display, "none (xen-dm has no display)"},
    {"vnc", true, OPT_SUPPORTED, opt_vnc, "none (xen-dm has no VNC server)"},
    /* Recognised from libxl's command lines; the features come later. */
    {"serial", true, OPT_SUPPORTED, opt_serial, "COM1, COM2 backend: pty, stdio, file:PATH, null, none, unix:PATH[,server]"},
    {"drive", true, OPT_SUPPORTED, opt_drive, "disk (if=ide): described and listed; the IDE engine is not emulated yet"},
    {"device", true, OPT_SUPPORTED, opt_device, "pci-testdev[,id=ID][,addr=S[.F]], ide-cd/ide-hd for -drive; sim: isa-debug-exit[,iobase=P][,iosize=N], isa-debugcon[,iobase=P],chardev=ID; others logged and ignored"},
    {"netdev", true, OPT_NOT_YET, NULL, "network backend"},
    {"net", true, OPT_NOT_YET, NULL, "network device/backend"},
    {"incoming", true, OPT_SUPPORTED, opt_incoming, "fd:N restore device state from descriptor N (qemu-xen)"},
    {"loadvm", true, OPT_SUPPORTED, opt_loadvm, "FILE restore device state from FILE (qemu-trad)"},
    {"xen-domid-restrict", false, OPT_NOT_YET, NULL, "restrict Xen handles to the domain"},
    {"chroot", true, OPT_NOT_YET, NULL, "chroot after start-up"},
    {"runas", true, OPT_NOT_YET, NULL, "drop to this user after start-up"},
    {"vga", true, OPT_NOT_YET, NULL, "display adapter"},
    {"std-vga", false, OPT_NOT_YET, NULL, "standard VGA (qemu-trad)"},
    {"videoram", true, OPT_NOT_YET, NULL, "VRAM in MiB (qemu-trad)"},
    {"vncunused", false, OPT_NOT_YET, NULL, "VNC: search a free display"},
    {"sdl", false, OPT_NOT_YET, NULL, "SDL display"},
    {"disable-opengl", false, OPT_NOT_YET, NULL, "SDL without OpenGL"},
    {"spice", true, OPT_NOT_YET, NULL, "SPICE display"},
    {"k", true, OPT_NOT_YET, NULL, "keyboard layout"},
    {"usb", false, OPT_NOT_YET, NULL, "USB controller"},
    {"usbdevice", true, OPT_NOT_YET, NULL, "USB device"},
    {"soundhw", true, OPT_NOT_YET, NULL, "sound hardware"},
    {"gfx_passthru", false, OPT_NOT_YET, NULL, "graphics pass-through"},
    {"kernel", true, OPT_NOT_YET, NULL, "direct kernel boot"},
    {"initrd", true, OPT_NOT_YET, NULL, "initial ramdisk"},
    {"append", true, OPT_NOT_YET, NULL, "kernel command line"},
    {"help", false, OPT_SUPPORTED, opt_help, "this text"},
    {"h", false, OPT_SUPPORTED, opt_help, "this text"},
    {"version", false, OPT_SUPPORTED, opt_version, "print the version"},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

void options_usage(FILE *out)
{
    fprintf(out,
            "Usage: xen-dm [options]\n"
            "Device model for Xen HVM guests. Accepts the command lines libxl "
            "builds for\nqemu-xen (-xen-domid N ...) and qemu-traditional "
            "(-d N ...). Without a domain\nid it attaches to nothing and serves "
            "only its sockets.\n\nOptions (one dash or two):\n");
    for (size_t i = 0; i < N_OPTIONS; i++)
        fprintf(out, "  -%-20s %s%s\n", options[i].name, options[i].help,
                options[i].status == OPT_NOT_YET ? " [not yet supported: ignored]"
                                                  : "");
}

static const struct opt *find_option(const char *name)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (!strcmp(options[i].name, name))
            return &options[i];
    return NULL;
}

static void defaults(struct dm_options *o)
{
    memset(o, 0, sizeof(*o));
    o->domid = -1;
    o->flavour = FLAVOUR_QEMU_XEN;
    o->ram_mb = 128;
    o->acpi = true;
    o->vcpus = o->max_vcpus = 1;
    o->platform_device = true;
    o->machine_type = strdup("xenfv");
    o->qtest.fd = -1;
    o->incoming_fd = -1;
}

/* Options that only make sense with or without the software machine. */
static int check_sim(const struct dm_options *o)
{
    if (!o->sim) {
        if (o->bios)
            return fail("-bios needs -machine sim (under Xen hvmloader is "
                        "the firmware)%s%s", "", "");
        if (o->debugcon)
            return fail("-debugcon needs -machine sim%s%s", "", "");
        return 0;
    }
    if (o->domid >= 0)
        return fail("-machine sim runs without a hypervisor: it cannot "
                    "serve a domain%s%s", "", "");
    if (!o->bios)
        return fail("-machine sim needs -bios FILE (the guest's firmware "
                    "image)%s%s", "", "");
    /* x86emu is a 32-bit CPU without PAE, and ROM and MMIO need room. */
    if (o->ram_mb > (0xe0000000ull >> 20)) {
        char mb[24];

        snprintf(mb, sizeof(mb), "%llu", (unsigned long long)o->ram_mb);
        return fail("-machine sim: %s MiB of RAM is more than the 3584 MiB "
                    "a 32-bit guest can address below the MMIO hole%s", mb, "");
    }
    return 0;
}

int options_parse(int argc, char **argv, struct dm_options *o)
{
    struct parse_state st = {.o = o};
    bool warned[N_OPTIONS] = {false};
    int rc = 0;

    defaults(o);
    if (!o->machine_type)
        return -ENOMEM;
    for (int i = 1; i < argc && rc == 0 && !st.exit_now; i++) {
        const char *name = argv[i];
        const struct opt *opt;
        const char *arg = NULL;

        if (name[0] != '-' || !name[1]) {
            rc = fail("unexpected argument '%s'%s", name, "");
            break;
        }
        name += name[1] == '-' ? 2 : 1;
        opt = find_option(name);
        if (!opt) {
            rc = fail("unknown option '%s'%s", argv[i], "");
            break;
        }
        if (opt->has_arg) {
            if (i + 1 >= argc) {
                rc = fail("option '%s' needs an argument%s", argv[i], "");
                break;
            }
            arg = argv[++i];
        }
        if (opt->status == OPT_NOT_YET && !warned[opt - options]) {
            warned[opt - options] = true;
            log_warn("option -%s is recognised but not supported yet; ignored",
                     opt->name);
        }
        if (opt->fn)
            rc = opt->fn(&st, arg);
    }
    if (rc == 0 && !st.exit_now)
        rc = resolve_monitors(&st);
    if (rc == 0 && !st.exit_now)
        rc = check_sim(o);
    for (unsigned c = 0; c < st.n_chardevs; c++)
        chardev_spec_clear(&st.chardevs[c]);
    for (unsigned m = 0; m < st.n_mons; m++)
        free(st.mons[m]);
    if (rc < 0) {
        fprintf(stderr, "Try 'xen-dm --help' for the options.\n");
        return rc;
    }
    return st.exit_now ? 1 : 0;
}

void options_free(struct dm_options *o)
{
    free(o->name);
    free(o->machine_type);
    free(o->vcpu_avail);
    free(o->boot_order);
    free(o->loadvm);
    free(o->bios);
    free(o->debugcon);
    for (unsigned i = 0; i < o->n_backends; i++) {
        free(o->backend_ids[i]);
        free(o->backend_specs[i]);
    }
    chardev_spec_clear(&o->qtest);
    for (unsigned i = 0; i < o->n_qmp; i++)
        chardev_spec_clear(&o->qmp[i]);
    for (unsigned i = 0; i < o->n_serial; i++)
        free(o->serial[i]);
    for (unsigned i = 0; i < o->n_drives; i++)
        free(o->drives[i]);
    for (unsigned i = 0; i < o->n_devices; i++)
        free(o->devices[i]);
    memset(o, 0, sizeof(*o));
}
