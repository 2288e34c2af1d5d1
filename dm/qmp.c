#include "qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../xenstore/dmcommand.h"

TRACE_POINT(trace_qmp, "qmp");

/* What libxl reads from the greeting: QEMU 7.2 is what Debian 12 pairs with
 * Xen 4.17, and libxl enables features (e.g. live device-state saving) by
 * this version. */
#define QMP_QEMU_MAJOR 7
#define QMP_QEMU_MINOR 2
#define QMP_QEMU_MICRO 0

struct qmp_server {
    struct machine *m;
    struct chardev *chr;
    struct machine_observer observer;
    struct loop_work quit_work;
};

struct qmp_client {
    json_tokener *tok;
    size_t pending;     /* bytes fed since the last complete message */
    bool skip_line;     /* resynchronising after bad input */
    bool negotiated;    /* qmp_capabilities done */
};

struct qmp_error {
    const char *cls;
    char desc[256];
};

struct qmp_request {
    struct qmp_server *s;
    struct conn *c;
    json_object *args; /* may be NULL */
    struct qmp_error err;
};

typedef json_object *(*qmp_fn)(struct qmp_request *req);

static json_object *set_error(struct qmp_request *req, const char *cls,
                              const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static json_object *set_error(struct qmp_request *req, const char *cls,
                              const char *fmt, ...)
{
    va_list ap;

    req->err.cls = cls;
    va_start(ap, fmt);
    vsnprintf(req->err.desc, sizeof(req->err.desc), fmt, ap);
    va_end(ap);
    return NULL;
}

static void send_json(struct conn *c, json_object *obj)
{
    const char *text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);

    trace(trace_qmp, "-> %s", text);
    conn_printf(c, "%s\r\n", text);
}

static void send_error(struct conn *c, const char *cls, const char *desc,
                       json_object *id)
{
    json_object *reply = json_object_new_object();
    json_object *err = json_object_new_object();

    json_object_object_add(err, "class", json_object_new_string(cls));
    json_object_object_add(err, "desc", json_object_new_string(desc));
    json_object_object_add(reply, "error", err);
    if (id)
        json_object_object_add(reply, "id", json_object_get(id));
    send_json(c, reply);
    json_object_put(reply);
}

/* --- UTF-8 ---------------------------------------------------------------- */

/* Strings are echoed back in replies (the id, names in error texts), which
 * must stay valid UTF-8, so every string is checked after parsing, as RFC
 * 3629 says: no overlong forms, surrogates or code points past U+10FFFF.
 * json-c's own check (JSON_TOKENER_VALIDATE_UTF8) is not used: it lets those
 * through, and it refuses a valid character whose bytes arrive in separate
 * reads. */
static bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        uint32_t cp;
        unsigned n;

        if (*p < 0x80) {
            p++;
            continue;
        }
        if (*p >= 0xc2 && *p <= 0xdf)
            n = 1, cp = *p & 0x1f;
        else if (*p >= 0xe0 && *p <= 0xef)
            n = 2, cp = *p & 0x0f;
        else if (*p >= 0xf0 && *p <= 0xf4)
            n = 3, cp = *p & 0x07;
        else
            return false;
        if ((size_t)(end - p) <= n)
            return false;
        for (unsigned i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

/* Every key and string in a parsed message; the nesting is bounded by the
 * tokener's depth limit. */
static bool json_strings_valid(json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_string:
        return utf8_valid(json_object_get_string(o),
                          (size_t)json_object_get_string_len(o));
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(o); i++)
            if (!json_strings_valid(json_object_array_get_idx(o, i)))
                return false;
        return true;
    case json_type_object: {
        json_object_object_foreach(o, key, val) {
            if (!utf8_valid(key, strlen(key)) || !json_strings_valid(val))
                return false;
        }
        return true;
    }
    default:
        return true;
    }
}

/* How many bytes of s to quote in an error text: at most max, and never the
 * first half of a multi-byte character. */
static int utf8_clip(const char *s, size_t max)
{
    size_t n = strnlen(s, max);

    if (n == max)
        while (n > 0 && (s[n] & 0xc0) == 0x80)
            n--;
    return (int)n;
}

#define QMP_QUOTE_MAX 64

/* --- commands ------------------------------------------------------------ */

static bool no_arguments(struct qmp_request *req)
{
    if (req->args && json_object_object_length(req->args)) {
        json_object_object_foreach(req->args, key, val) {
            (void)val;
            set_error(req, "GenericError", "Parameter '%.*s' is unexpected",
                      utf8_clip(key, QMP_QUOTE_MAX), key);
            return false;
        }
    }
    return true;
}

static json_object *cmd_qmp_capabilities(struct qmp_request *req)
{
    struct qmp_client *cl = conn_get_user(req->c);
    json_object *enable = NULL;

    if (cl->negotiated)
        return set_error(req, "CommandNotFound",
                         "Capabilities negotiation is already complete, "
                         "command ignored");
    if (req->args) {
        json_object_object_foreach(req->args, key, val) {
            if (strcmp(key, "enable"))
                return set_error(req, "GenericError",
                                 "Parameter '%.*s' is unexpected",
                                 utf8_clip(key, QMP_QUOTE_MAX), key);
            enable = val;
        }
    }
    if (enable) {
        if (!json_object_is_type(enable, json_type_array))
            return set_error(req, "GenericError",
                             "Invalid parameter type for 'enable', expected: "
                             "array");
        if (json_object_array_length(enable)) {
            json_object *cap = json_object_array_get_idx(enable, 0);
            const char *cap_name = json_object_get_string(cap);

            return set_error(req, "GenericError",
                             "Capability '%.*s' not available",
                             utf8_clip(cap_name, QMP_QUOTE_MAX), cap_name);
        }
    }
    cl->negotiated = true;
    return json_object_new_object();
}

static json_object *cmd_query_status(struct qmp_request *req)
{
    json_object *ret;
    enum run_state st = req->s->m->state;

    if (!no_arguments(req))
        return NULL;
    ret = json_object_new_object();
    json_object_object_add(ret, "status",
                           json_object_new_string(run_state_name(st)));
    json_object_object_add(ret, "singlestep", json_object_new_boolean(0));
    json_object_object_add(ret, "running",
                           json_object_new_boolean(st == RUN_RUNNING));
    return ret;
}

static json_object *cmd_stop(struct qmp_request *req)
{
    if (!no_arguments(req))
        return NULL;
    machine_stop(req->s->m);
    return json_object_new_object();
}

static json_object *cmd_cont(struct qmp_request *req)
{
    if (!no_arguments(req))
        return NULL;
    machine_cont(req->s->m);
    return json_object_new_object();
}

static json_object *cmd_system_reset(struct qmp_request *req)
{
    if (!no_arguments(req))
        return NULL;
    machine_reset(req->s->m, false, "host-qmp-system-reset");
    return json_object_new_object();
}

static json_object *cmd_system_powerdown(struct qmp_request *req)
{
    if (!no_arguments(req))
        return NULL;
    if (machine_powerdown(req->s->m) < 0)
        return set_error(req, "GenericError",
                         "system_powerdown needs -machine sim with ACPI "
                         "(under Xen the power button is the hypervisor's)");
    return json_object_new_object();
}

static void quit_now(void *opaque)
{
    struct qmp_server *s = opaque;

    machine_shutdown(s->m, false, "host-qmp-quit");
}

static json_object *cmd_quit(struct qmp_request *req)
{
    if (!no_arguments(req))
        return NULL;
    /* After the reply has been queued, so the client sees it. */
    loop_defer(req->s->m->loop, &req->s->quit_work);
    return json_object_new_object();
}

static json_object *cmd_query_version(struct qmp_request *req)
{
    json_object *ret, *qemu;

    if (!no_arguments(req))
        return NULL;
    ret = json_object_new_object();
    qemu = json_object_new_object();
    json_object_object_add(qemu, "major", json_object_new_int(QMP_QEMU_MAJOR));
    json_object_object_add(qemu, "minor", json_object_new_int(QMP_QEMU_MINOR));
    json_object_object_add(qemu, "micro", json_object_new_int(QMP_QEMU_MICRO));
    json_object_object_add(ret, "qemu", qemu);
    json_object_object_add(ret, "package",
                           json_object_new_string("xen-dm " XEN_DM_VERSION));
    return ret;
}

static const char *class_description(uint16_t cls)
{
    static const struct {
        uint16_t cls;
        const char *desc;
    } names[] = {
        {0x0100, "SCSI controller"}, {0x0101, "IDE controller"},
        {0x0106, "SATA controller"}, {0x0200, "Ethernet controller"},
        {0x0300, "VGA controller"},  {0x0401, "Audio controller"},
        {0x0403, "Audio controller"}, {0x0600, "Host bridge"},
        {0x0601, "ISA bridge"},      {0x0604, "PCI bridge"},
        {0x0680, "Bridge"},          {0x0c03, "USB controller"},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].cls == cls)
            return names[i].desc;
    return NULL;
}

static json_object *pci_regions(const struct pci_function *f)
{
    json_object *regions = json_object_new_array();

    for (unsigned i = 0; i <= PCI_ROM_SLOT; i++) {
        const struct pci_bar *bar = &f->bar[i];
        json_object *r;

        if (!bar->size)
            continue;
        r = json_object_new_object();
        json_object_object_add(r, "bar", json_object_new_int((int)i));
        json_object_object_add(r, "type", json_object_new_string(
                                              bar->flags & PCI_BAR_IO ? "io"
                                                                      : "memory"));
        /* QEMU reports an undecoded BAR's address as all-ones. */
        json_object_object_add(r, "address",
                               json_object_new_uint64(bar->region.mapped
                                                          ? bar->addr
                                                          : UINT64_MAX));
        json_object_object_add(r, "size", json_object_new_uint64(bar->size));
        if (!(bar->flags & PCI_BAR_IO)) {
            json_object_object_add(r, "prefetch", json_object_new_boolean(
                                                      !!(bar->flags & PCI_BAR_PREFETCH)));
            json_object_object_add(r, "mem_type_64", json_object_new_boolean(
                                                         !!(bar->flags & PCI_BAR_MEM64)));
        }
        json_object_array_add(regions, r);
    }
    return regions;
}

static json_object *pci_device_info(const struct pci_function *f)
{
    json_object *dev = json_object_new_object(), *cls, *id;
    uint16_t class16 = pci_get_word(&f->config[PCI_CLASS_DEVICE]);
    const char *desc = class_description(class16);
    uint8_t pin = f->config[PCI_INTERRUPT_PIN];

    json_object_object_add(dev, "bus", json_object_new_int(0));
    json_object_object_add(dev, "slot", json_object_new_int(PCI_SLOT(f->devfn)));
    json_object_object_add(dev, "function",
                           json_object_new_int(PCI_FUNC(f->devfn)));
    cls = json_object_new_object();
    if (desc)
        json_object_object_add(cls, "desc", json_object_new_string(desc));
    json_object_object_add(cls, "class", json_object_new_int(class16));
    json_object_object_add(dev, "class_info", cls);
    id = json_object_new_object();
    json_object_object_add(id, "device", json_object_new_int(
                                             pci_get_word(&f->config[PCI_DEVICE_ID])));
    json_object_object_add(id, "vendor", json_object_new_int(
                                             pci_get_word(&f->config[PCI_VENDOR_ID])));
    json_object_object_add(id, "subsystem", json_object_new_int(
                                                pci_get_word(&f->config[PCI_SUBSYSTEM_ID])));
    json_object_object_add(id, "subsystem-vendor",
                           json_object_new_int(pci_get_word(
                               &f->config[PCI_SUBSYSTEM_VENDOR_ID])));
    json_object_object_add(dev, "id", id);
    if (pin)
        json_object_object_add(dev, "irq", json_object_new_int(
                                               f->config[PCI_INTERRUPT_LINE]));
    json_object_object_add(dev, "irq_pin", json_object_new_int(pin));
    json_object_object_add(dev, "qdev_id", json_object_new_string(f->id));
    json_object_object_add(dev, "regions", pci_regions(f));
    return dev;
}

static json_object *cmd_query_pci(struct qmp_request *req)
{
    json_object *ret, *bus, *devices;
    const struct pci_bus *pci = &req->s->m->pci;

    if (!no_arguments(req))
        return NULL;
    devices = json_object_new_array();
    for (unsigned devfn = 0; devfn < 256; devfn++)
        if (pci->functions[devfn])
            json_object_array_add(devices, pci_device_info(pci->functions[devfn]));
    bus = json_object_new_object();
    json_object_object_add(bus, "bus", json_object_new_int(0));
    json_object_object_add(bus, "devices", devices);
    ret = json_object_new_array();
    json_object_array_add(ret, bus);
    return ret;
}

/* Returns the string member `key` of the arguments, NULL if absent; sets
 * an error (and *bad) if present with another type. */
static const char *string_arg(struct qmp_request *req, const char *key,
                              bool *bad)
{
    json_object *v;

    if (!req->args || !json_object_object_get_ex(req->args, key, &v))
        return NULL;
    if (!json_object_is_type(v, json_type_string)) {
        set_error(req, "GenericError",
                  "Invalid parameter type for '%s', expected: string", key);
        *bad = true;
        return NULL;
    }
    return json_object_get_string(v);
}

/* vCPU hot-plug as libxl drives it for qemu-xen (xl vcpu-set): which vCPUs
 * exist (query-cpus-fast), which could (query-hotpluggable-cpus), and
 * device_add of "<type>" with socket-id N. Under Xen the vCPUs themselves
 * are the hypervisor's; the device model owns the ACPI CPU map at 0xAF00
 * and the GPE that tells the guest to look at it. */
#define QMP_CPU_TYPE "qemu32-i386-cpu"

static bool cpu_online(const struct machine *m, unsigned cpu)
{
    if (m->has_pm)
        return m->pm.cpu_map[cpu / 8] & (1u << (cpu % 8));
    return cpu < m->opts->vcpus;
}

static json_object *cpu_props(unsigned cpu)
{
    json_object *p = json_object_new_object();

    json_object_object_add(p, "socket-id", json_object_new_int((int)cpu));
    json_object_object_add(p, "core-id", json_object_new_int(0));
    json_object_object_add(p, "thread-id", json_object_new_int(0));
    return p;
}

static void cpu_qom_path(unsigned cpu, char *buf, size_t len)
{
    snprintf(buf, len, "/machine/unattached/device[%u]", cpu);
}

static json_object *cmd_query_cpus_fast(struct qmp_request *req)
{
    const struct machine *m = req->s->m;
    json_object *ret;
    char path[64];

    if (!no_arguments(req))
        return NULL;
    ret = json_object_new_array();
    for (unsigned cpu = 0; cpu < m->opts->max_vcpus; cpu++) {
        json_object *c;

        if (!cpu_online(m, cpu))
            continue;
        c = json_object_new_object();
        cpu_qom_path(cpu, path, sizeof(path));
        json_object_object_add(c, "cpu-index", json_object_new_int((int)cpu));
        json_object_object_add(c, "qom-path", json_object_new_string(path));
        json_object_object_add(c, "thread-id", json_object_new_int(0));
        json_object_object_add(c, "props", cpu_props(cpu));
        json_object_object_add(c, "target", json_object_new_string("i386"));
        json_object_array_add(ret, c);
    }
    return ret;
}

static json_object *cmd_query_hotpluggable_cpus(struct qmp_request *req)
{
    const struct machine *m = req->s->m;
    json_object *ret;
    char path[64];

    if (!no_arguments(req))
        return NULL;
    ret = json_object_new_array();
    for (unsigned cpu = m->opts->max_vcpus; cpu-- > 0;) {
        json_object *c = json_object_new_object();

        json_object_object_add(c, "props", cpu_props(cpu));
        json_object_object_add(c, "vcpus-count", json_object_new_int(1));
        if (cpu_online(m, cpu)) {
            cpu_qom_path(cpu, path, sizeof(path));
            json_object_object_add(c, "qom-path", json_object_new_string(path));
        }
        json_object_object_add(c, "type", json_object_new_string(QMP_CPU_TYPE));
        json_object_array_add(ret, c);
    }
    return ret;
}

static json_object *plug_cpu(struct qmp_request *req, int64_t cpu)
{
    struct machine *m = req->s->m;

    if (cpu < 0 || cpu >= (int64_t)m->opts->max_vcpus)
        return set_error(req, "GenericError", "CPU %" PRId64 " is beyond "
                         "maxcpus %u", cpu, m->opts->max_vcpus);
    if (!m->has_pm)
        return set_error(req, "GenericError", "CPU hot-plug needs ACPI");
    if (cpu_online(m, (unsigned)cpu))
        return set_error(req, "GenericError", "CPU %" PRId64 " is already "
                         "present", cpu);
    piix4_pm_set_cpu_online(&m->pm, (unsigned)cpu, true);
    log_info("qmp: vCPU %" PRId64 " hot-plugged", cpu);
    return json_object_new_object();
}

static json_object *device_add_cpu(struct qmp_request *req)
{
    int64_t ids[3] = {-1, 0, 0};
    static const char *const names[3] = {"socket-id", "core-id", "thread-id"};

    json_object_object_foreach(req->args, key, val) {
        bool known = !strcmp(key, "driver") || !strcmp(key, "id");

        for (int i = 0; i < 3; i++) {
            if (strcmp(key, names[i]))
                continue;
            known = true;
            if (!json_object_is_type(val, json_type_int))
                return set_error(req, "GenericError", "Invalid parameter type "
                                 "for '%s', expected: integer", names[i]);
            ids[i] = json_object_get_int64(val);
        }
        if (!known)
            return set_error(req, "GenericError", "Property '"
                             QMP_CPU_TYPE ".%.32s' not found", key);
    }
    if (ids[0] < 0 || ids[1] != 0 || ids[2] != 0)
        return set_error(req, "GenericError", "a CPU needs socket-id=N, "
                         "core-id=0, thread-id=0");
    return plug_cpu(req, ids[0]);
}

static json_object *cmd_cpu_add(struct qmp_request *req)
{
    json_object *v;

    if (!req->args || !json_object_object_get_ex(req->args, "id", &v) ||
        !json_object_is_type(v, json_type_int))
        return set_error(req, "GenericError", "Parameter 'id' is missing");
    return plug_cpu(req, json_object_get_int64(v));
}

static json_object *cmd_device_add(struct qmp_request *req)
{
    const char *driver, *id, *addr, *hostaddr;
    struct pci_host_addr host;
    bool bad = false, passthrough;
    json_object *v;
    char err[200];

    driver = string_arg(req, "driver", &bad);
    id = string_arg(req, "id", &bad);
    addr = string_arg(req, "addr", &bad);
    hostaddr = string_arg(req, "hostaddr", &bad);
    if (bad)
        return NULL;
    if (!driver)
        return set_error(req, "GenericError", "Parameter 'driver' is missing");
    if (!strcmp(driver, QMP_CPU_TYPE))
        return device_add_cpu(req);
    passthrough = !strcmp(driver, "xen-pci-passthrough");
    json_object_object_foreach(req->args, key, val) {
        (void)val;
        if (strcmp(key, "driver") && strcmp(key, "id") && strcmp(key, "addr") &&
            !(passthrough && (!strcmp(key, "hostaddr") ||
                              !strcmp(key, "permissive"))))
            return set_error(req, "GenericError",
                             "Property '%.32s.%.32s' not found", driver, key);
    }
    if (passthrough) {
        /* libxl's xl pci-attach (§4.10). */
        bool permissive = false;
        int vdevfn = -1;

        if (!hostaddr || pci_host_addr_parse(hostaddr, &host, NULL) < 0)
            return set_error(req, "GenericError",
                             "Property 'xen-pci-passthrough.hostaddr' needs "
                             "SSSS:BB:DD.F");
        if (json_object_object_get_ex(req->args, "permissive", &v)) {
            if (!json_object_is_type(v, json_type_boolean))
                return set_error(req, "GenericError",
                                 "Invalid parameter type for 'permissive', "
                                 "expected: boolean");
            permissive = json_object_get_boolean(v);
        }
        if (addr && (vdevfn = machine_parse_pci_addr(addr)) < 0)
            return set_error(req, "GenericError",
                             "Property 'addr' does not accept '%.32s'", addr);
        if (machine_passthrough_add(req->s->m, hostaddr, vdevfn, permissive,
                                    id, err, sizeof(err)) < 0)
            return set_error(req, "GenericError", "%s", err);
        return json_object_new_object();
    }
    if (machine_device_add(req->s->m, driver, id, addr, err, sizeof(err)) < 0)
        return set_error(req, "GenericError", "%s", err);
    return json_object_new_object();
}

static json_object *cmd_device_del(struct qmp_request *req)
{
    const char *id;
    bool bad = false;
    char err[200];
    int rc;

    id = string_arg(req, "id", &bad);
    if (bad)
        return NULL;
    if (!id)
        return set_error(req, "GenericError", "Parameter 'id' is missing");
    rc = machine_device_del(req->s->m, id, err, sizeof(err));
    if (rc == -ENODEV)
        return set_error(req, "DeviceNotFound", "%s", err);
    if (rc < 0)
        return set_error(req, "GenericError", "%s", err);
    return json_object_new_object();
}

static json_object *cmd_system_wakeup(struct qmp_request *req)
{
    if (!no_arguments(req))
        return NULL;
    /* As QEMU: waking a guest that is not suspended is not an error. */
    machine_wakeup(req->s->m);
    return json_object_new_object();
}

static json_object *cmd_add_fd(struct qmp_request *req)
{
    json_object *v;
    int64_t set_id = -1;
    const char *opaque = NULL;
    bool bad = false;
    int fd, id;

    if (req->args && json_object_object_get_ex(req->args, "fdset-id", &v)) {
        if (!json_object_is_type(v, json_type_int) ||
            (set_id = json_object_get_int64(v)) < 0 || set_id > 0xffff)
            return set_error(req, "GenericError",
                             "Invalid parameter type for 'fdset-id', expected: "
                             "integer");
    }
    opaque = string_arg(req, "opaque", &bad);
    if (bad)
        return NULL;
    fd = conn_take_fd(req->c);
    if (fd < 0)
        return set_error(req, "GenericError",
                         "No file descriptor supplied via SCM_RIGHTS");
    id = fdsets_add(&req->s->m->fdsets, (int)set_id, fd, opaque);
    if (id < 0) {
        close(fd);
        return set_error(req, "GenericError", "too many file descriptor sets");
    }
    v = json_object_new_object();
    json_object_object_add(v, "fdset-id", json_object_new_int(id));
    json_object_object_add(v, "fd", json_object_new_int(fd));
    return v;
}

static json_object *cmd_remove_fd(struct qmp_request *req)
{
    json_object *v;
    int64_t set_id = -1, fd = -1;

    if (!req->args || !json_object_object_get_ex(req->args, "fdset-id", &v) ||
        !json_object_is_type(v, json_type_int))
        return set_error(req, "GenericError", "Parameter 'fdset-id' is missing");
    set_id = json_object_get_int64(v);
    if (json_object_object_get_ex(req->args, "fd", &v)) {
        if (!json_object_is_type(v, json_type_int))
            return set_error(req, "GenericError",
                             "Invalid parameter type for 'fd', expected: "
                             "integer");
        fd = json_object_get_int64(v);
    }
    if (set_id < 0 || set_id > 0xffff || fd > 0x7fffffff ||
        fdsets_remove(&req->s->m->fdsets, (int)set_id, (int)fd) < 0)
        return set_error(req, "GenericError",
                         "File descriptor named 'fdset-id:%" PRId64 "' not found",
                         set_id);
    return json_object_new_object();
}

static json_object *chardev_info(const char *label, const char *filename)
{
    json_object *c = json_object_new_object();

    json_object_object_add(c, "frontend-open", json_object_new_boolean(1));
    json_object_object_add(c, "filename", json_object_new_string(filename));
    json_object_object_add(c, "label", json_object_new_string(label));
    return c;
}

/* libxl reads the serial<N> entries whose filename starts with "pty:" and
 * publishes the path as /local/domain/<domid>/serial/<N>/tty. */
static json_object *cmd_query_chardev(struct qmp_request *req)
{
    const struct machine *m = req->s->m;
    json_object *ret;

    if (!no_arguments(req))
        return NULL;
    ret = json_object_new_array();
    for (unsigned i = 0; i < m->n_uarts; i++) {
        char label[24];

        snprintf(label, sizeof(label), "serial%u", i);
        json_object_array_add(ret, chardev_info(label,
                                                charbe_filename(m->serial[i])));
    }
    return ret;
}

static json_object *cmd_query_vnc(struct qmp_request *req)
{
    json_object *ret;

    if (!no_arguments(req))
        return NULL;
    ret = json_object_new_object();
    json_object_object_add(ret, "enabled", json_object_new_boolean(0));
    return ret;
}

static json_object *cmd_xen_set_global_dirty_log(struct qmp_request *req)
{
    json_object *v;

    if (!req->args || !json_object_object_get_ex(req->args, "enable", &v))
        return set_error(req, "GenericError", "Parameter 'enable' is missing");
    if (!json_object_is_type(v, json_type_boolean))
        return set_error(req, "GenericError",
                         "Invalid parameter type for 'enable', expected: "
                         "boolean");
    machine_set_log_dirty(req->s->m, json_object_get_boolean(v));
    return json_object_new_object();
}

/* QEMU stops the guest around a device-state save or load and restarts it
 * afterwards if it was running; so do we. */
static json_object *save_or_load(struct qmp_request *req, bool save)
{
    struct machine *m = req->s->m;
    const char *filename;
    bool bad = false, was_running = m->state == RUN_RUNNING;
    char err[256] = "";
    int fd, rc;

    filename = string_arg(req, "filename", &bad);
    if (bad)
        return NULL;
    if (!filename)
        return set_error(req, "GenericError", "Parameter 'filename' is missing");
    json_object_object_foreach(req->args, key, val) {
        (void)val;
        if (strcmp(key, "filename") && !(save && !strcmp(key, "live")))
            return set_error(req, "GenericError", "Parameter '%.32s' is "
                             "unexpected", key);
    }
    fd = fdsets_open(&m->fdsets, filename,
                     save ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY);
    if (fd < 0)
        return set_error(req, "GenericError", "Could not open '%.128s': %s",
                         filename, strerror(-fd));
    machine_stop(m);
    if (save) {
        rc = machine_save_state(m, fd);
        if (rc < 0)
            snprintf(err, sizeof(err), "%s", strerror(-rc));
    } else {
        rc = machine_load_state_err(m, fd, err, sizeof(err));
    }
    close(fd);
    if (was_running)
        machine_cont(m);
    if (rc < 0)
        return set_error(req, "GenericError", "%s of device state failed: %s",
                         save ? "Saving" : "Loading", err);
    return json_object_new_object();
}

static json_object *cmd_xen_save_devices_state(struct qmp_request *req)
{
    return save_or_load(req, true);
}

static json_object *cmd_xen_load_devices_state(struct qmp_request *req)
{
    return save_or_load(req, false);
}

static json_object *cmd_query_commands(struct qmp_request *req);

static const struct {
    const char *name;
    qmp_fn fn;
} commands[] = {
    {"qmp_capabilities", cmd_qmp_capabilities},
    {"query-status", cmd_query_status},
    {"stop", cmd_stop},
    {"cont", cmd_cont},
    {"system_reset", cmd_system_reset},
    {"system_powerdown", cmd_system_powerdown},
    {"quit", cmd_quit},
    {"query-pci", cmd_query_pci},
    {"device_add", cmd_device_add},
    {"device_del", cmd_device_del},
    {"system_wakeup", cmd_system_wakeup},
    {"add-fd", cmd_add_fd},
    {"remove-fd", cmd_remove_fd},
    {"query-chardev", cmd_query_chardev},
    {"query-vnc", cmd_query_vnc},
    {"xen-set-global-dirty-log", cmd_xen_set_global_dirty_log},
    {"xen-save-devices-state", cmd_xen_save_devices_state},
    {"query-cpus-fast", cmd_query_cpus_fast},
    {"query-hotpluggable-cpus", cmd_query_hotpluggable_cpus},
    {"cpu-add", cmd_cpu_add},
    {"xen-load-devices-state", cmd_xen_load_devices_state},
    {"query-version", cmd_query_version},
    {"query-commands", cmd_query_commands},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static json_object *cmd_query_commands(struct qmp_request *req)
{
    json_object *ret;

    if (!no_arguments(req))
        return NULL;
    ret = json_object_new_array();
    for (size_t i = 0; i < N_COMMANDS; i++) {
        json_object *c = json_object_new_object();

        json_object_object_add(c, "name", json_object_new_string(commands[i].name));
        json_object_array_add(ret, c);
    }
    return ret;
}

/* --- message handling ---------------------------------------------------- */

static void handle_message(struct qmp_server *s, struct conn *c, json_object *msg)
{
    struct qmp_client *cl = conn_get_user(c);
    struct qmp_request req = {.s = s, .c = c};
    json_object *id = NULL, *execute = NULL, *ret = NULL, *reply;
    bool has_execute = false, has_args = false;
    const char *name;

    if (!json_object_is_type(msg, json_type_object)) {
        send_error(c, "GenericError", "QMP input must be a JSON object", NULL);
        return;
    }
    json_object_object_get_ex(msg, "id", &id);
    json_object_object_foreach(msg, key, val) {
        /* A member set to null is present all the same (val is NULL). */
        if (!strcmp(key, "execute")) {
            execute = val;
            has_execute = true;
        } else if (!strcmp(key, "arguments")) {
            req.args = val;
            has_args = true;
        } else if (strcmp(key, "id")) {
            char desc[160];

            snprintf(desc, sizeof(desc), "QMP input member '%.*s' is unexpected",
                     utf8_clip(key, QMP_QUOTE_MAX), key);
            send_error(c, "GenericError", desc, id);
            return;
        }
    }
    if (!has_execute) {
        send_error(c, "GenericError", "QMP input lacks member 'execute'", id);
        return;
    }
    if (!json_object_is_type(execute, json_type_string)) {
        send_error(c, "GenericError", "QMP input member 'execute' must be a string",
                   id);
        return;
    }
    if (has_args && !json_object_is_type(req.args, json_type_object)) {
        send_error(c, "GenericError",
                   "QMP input member 'arguments' must be an object", id);
        return;
    }
    name = json_object_get_string(execute);
    if (!cl->negotiated && strcmp(name, "qmp_capabilities")) {
        send_error(c, "CommandNotFound",
                   "Expecting capabilities negotiation with 'qmp_capabilities'",
                   id);
        return;
    }
    /* "query-status\u0000x" names no command, though its C string matches
     * one: only a name without an embedded NUL is looked up. */
    for (size_t i = 0; i < N_COMMANDS &&
                       strlen(name) == (size_t)json_object_get_string_len(execute);
         i++) {
        if (!strcmp(commands[i].name, name)) {
            ret = commands[i].fn(&req);
            break;
        }
    }
    if (!ret && !req.err.cls)
        set_error(&req, "CommandNotFound", "The command %.*s has not been found",
                  utf8_clip(name, QMP_QUOTE_MAX), name);
    if (!ret) {
        send_error(c, req.err.cls, req.err.desc, id);
        return;
    }
    reply = json_object_new_object();
    json_object_object_add(reply, "return", ret);
    if (id)
        json_object_object_add(reply, "id", json_object_get(id));
    send_json(c, reply);
    json_object_put(reply);
}

static void reject_input(struct conn *c, struct qmp_client *cl, const char *why)
{
    char desc[200];

    snprintf(desc, sizeof(desc), "JSON parse error, %s", why);
    log_ratelimited(LOG_WARN, "qmp: bad input from client: %s", why);
    send_error(c, "GenericError", desc, NULL);
    json_tokener_reset(cl->tok);
    cl->pending = 0;
    cl->skip_line = true;
}

static void qmp_data(void *opaque, struct conn *c, const char *buf, size_t len)
{
    struct qmp_server *s = opaque;
    struct qmp_client *cl = conn_get_user(c);

    while (len) {
        json_object *msg;
        enum json_tokener_error jerr;
        size_t used;

        if (cl->skip_line) {
            const char *nl = memchr(buf, '\n', len);

            if (!nl)
                return;
            cl->skip_line = false;
            len -= (size_t)(nl + 1 - buf);
            buf = nl + 1;
            continue;
        }
        /* json-c takes an int length: feed in bounded pieces. */
        msg = json_tokener_parse_ex(cl->tok, buf, (int)(len > 65536 ? 65536 : len));
        jerr = json_tokener_get_error(cl->tok);
        used = json_tokener_get_parse_end(cl->tok);
        /* After an error, parsing resumes past the newline that follows the
         * offending byte (skip_line); consuming more here would swallow that
         * newline and with it the next, well-formed command. */
        if (used == 0 && jerr == json_tokener_continue)
            used = len > 65536 ? 65536 : len;
        if (jerr == json_tokener_continue) {
            cl->pending += used;
            if (cl->pending > QMP_MAX_MESSAGE) {
                reject_input(c, cl, "message too long");
                /* The rest of this chunk belongs to the refused message. */
            }
            buf += used;
            len -= used;
            continue;
        }
        if (jerr != json_tokener_success) {
            reject_input(c, cl, json_tokener_error_desc(jerr));
            buf += used;
            len -= used;
            continue;
        }
        buf += used;
        len -= used;
        cl->pending = 0;
        /* A complete message is never skipped: json-c hands back a JSON
         * null as NULL, and it needs its "must be an object" error too. */
        trace(trace_qmp, "<- %s",
              json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN));
        if (json_strings_valid(msg))
            handle_message(s, c, msg);
        else
            send_error(c, "GenericError",
                       "JSON parse error, invalid UTF-8 sequence in string",
                       NULL);
        json_object_put(msg);
        json_tokener_reset(cl->tok);
    }
}

static void qmp_opened(void *opaque, struct conn *c)
{
    struct qmp_client *cl = calloc(1, sizeof(*cl));
    json_object *greeting, *qmp, *version, *qemu;

    if (!cl || !(cl->tok = json_tokener_new_ex(QMP_MAX_DEPTH))) {
        free(cl);
        conn_close(c);
        return;
    }
    conn_set_user(c, cl);
    qemu = json_object_new_object();
    json_object_object_add(qemu, "micro", json_object_new_int(QMP_QEMU_MICRO));
    json_object_object_add(qemu, "minor", json_object_new_int(QMP_QEMU_MINOR));
    json_object_object_add(qemu, "major", json_object_new_int(QMP_QEMU_MAJOR));
    version = json_object_new_object();
    json_object_object_add(version, "qemu", qemu);
    json_object_object_add(version, "package",
                           json_object_new_string("xen-dm " XEN_DM_VERSION));
    qmp = json_object_new_object();
    json_object_object_add(qmp, "version", version);
    json_object_object_add(qmp, "capabilities", json_object_new_array());
    greeting = json_object_new_object();
    json_object_object_add(greeting, "QMP", qmp);
    send_json(c, greeting);
    json_object_put(greeting);
}

static void qmp_closed(void *opaque, struct conn *c)
{
    struct qmp_client *cl = conn_get_user(c);

    if (cl) {
        json_tokener_free(cl->tok);
        free(cl);
    }
    conn_set_user(c, NULL);
}

static const struct conn_ops qmp_conn_ops = {
    .data = qmp_data,
    .closed = qmp_closed,
    .opened = qmp_opened,
};

static void send_event_to(void *arg, struct conn *c)
{
    struct qmp_client *cl = conn_get_user(c);

    if (cl && cl->negotiated)
        send_json(c, arg);
}

static void qmp_event(void *opaque, const struct machine_event *ev)
{
    static const char *const names[] = {
        [MACHINE_EVENT_RESET] = "RESET",
        [MACHINE_EVENT_STOP] = "STOP",
        [MACHINE_EVENT_RESUME] = "RESUME",
        [MACHINE_EVENT_SHUTDOWN] = "SHUTDOWN",
        [MACHINE_EVENT_SUSPEND] = "SUSPEND",
        [MACHINE_EVENT_WAKEUP] = "WAKEUP",
        [MACHINE_EVENT_DEVICE_DELETED] = "DEVICE_DELETED",
    };
    struct qmp_server *s = opaque;
    json_object *msg = json_object_new_object(), *ts = json_object_new_object();
    struct timeval tv;

    gettimeofday(&tv, NULL);
    json_object_object_add(ts, "seconds", json_object_new_int64(tv.tv_sec));
    json_object_object_add(ts, "microseconds", json_object_new_int64(tv.tv_usec));
    json_object_object_add(msg, "timestamp", ts);
    json_object_object_add(msg, "event", json_object_new_string(names[ev->kind]));
    if (ev->kind == MACHINE_EVENT_RESET || ev->kind == MACHINE_EVENT_SHUTDOWN) {
        json_object *data = json_object_new_object();

        json_object_object_add(data, "guest", json_object_new_boolean(ev->guest));
        json_object_object_add(data, "reason", json_object_new_string(ev->reason));
        json_object_object_add(msg, "data", data);
    } else if (ev->kind == MACHINE_EVENT_DEVICE_DELETED) {
        json_object *data = json_object_new_object();
        char path[128];

        /* QEMU's composition-tree path of a user-created device. */
        if (*ev->device) {
            json_object_object_add(data, "device",
                                   json_object_new_string(ev->device));
            snprintf(path, sizeof(path), "/machine/peripheral/%s", ev->device);
        } else {
            snprintf(path, sizeof(path), "/machine/peripheral-anon");
        }
        json_object_object_add(data, "path", json_object_new_string(path));
        json_object_object_add(msg, "data", data);
    }
    chardev_for_each_conn(s->chr, send_event_to, msg);
    json_object_put(msg);
}

int qmp_start(struct machine *m, const struct chardev_spec *spec,
              struct qmp_server **out)
{
    struct qmp_server *s = calloc(1, sizeof(*s));
    int rc;

    if (!s)
        return -ENOMEM;
    s->m = m;
    loop_work_init(&s->quit_work, quit_now, s);
    s->observer = (struct machine_observer){.event = qmp_event, .opaque = s};
    rc = chardev_open(m->loop, spec, &qmp_conn_ops, s, &s->chr);
    if (rc < 0) {
        log_err("qmp: cannot open %s: %s",
                spec->path ? spec->path : "the passed socket", strerror(-rc));
        free(s);
        return rc;
    }
    machine_add_observer(m, &s->observer);
    *out = s;
    return 0;
}

void qmp_stop(struct qmp_server *s)
{
    if (!s)
        return;
    loop_work_cancel(s->m->loop, &s->quit_work);
    machine_remove_observer(s->m, &s->observer);
    chardev_close(s->chr);
    free(s);
}
