/* libxenctrl (the few calls a device model makes) and libxentoolcore,
 * doubled. */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xenctrl.h>
#include <xentoolcore.h>

#include "xendouble.h"

struct xc_interface_core {
    struct xd_handle h;
};

xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild_logger,
                                unsigned open_flags)
{
    xc_interface *xch = calloc(1, sizeof(*xch));
    struct json_object *args = json_object_new_object();

    if (!xch || !args) {
        free(xch);
        json_object_put(args);
        errno = ENOMEM;
        return NULL;
    }
    xd_set_u64(args, "flags", open_flags);
    if (xd_open_handle(&xch->h, "xc_interface_open", args) < 0) {
        free(xch);
        return NULL;
    }
    return xch;
}

int xc_interface_close(xc_interface *xch)
{
    int rc;

    if (!xch)
        return 0;
    rc = xd_close_handle(&xch->h, "xc_interface_close");
    free(xch);
    return rc;
}

static struct json_object *xc_args(xc_interface *xch, uint32_t domid)
{
    struct json_object *args;

    if (!xch) {
        errno = EBADF;
        return NULL;
    }
    args = xd_args(&xch->h);
    if (args)
        xd_set_u64(args, "domid", domid);
    return args;
}

static int xc_status(const char *op, struct json_object *args)
{
    return xd_call_result(op, args, NULL) < 0 ? -1 : 0;
}

int xc_hvm_param_set(xc_interface *handle, uint32_t dom, uint32_t param, uint64_t value)
{
    struct json_object *args = xc_args(handle, dom);

    if (!args)
        return -1;
    xd_set_u64(args, "param", param);
    xd_set_u64(args, "value", value);
    return xc_status("xc_hvm_param_set", args);
}

int xc_hvm_param_get(xc_interface *handle, uint32_t dom, uint32_t param, uint64_t *value)
{
    struct json_object *args = xc_args(handle, dom), *reply;

    if (!args)
        return -1;
    xd_set_u64(args, "param", param);
    if (xd_call_result("xc_hvm_param_get", args, &reply) < 0)
        return -1;
    *value = xd_get_u64(reply, "value");
    json_object_put(reply);
    return 0;
}

int xc_domain_maximum_gpfn(xc_interface *xch, uint32_t domid, xen_pfn_t *gpfns)
{
    struct json_object *args = xc_args(xch, domid), *reply;

    if (!args)
        return -1;
    if (xd_call_result("xc_domain_maximum_gpfn", args, &reply) < 0)
        return -1;
    *gpfns = (xen_pfn_t)xd_get_u64(reply, "gpfn");
    json_object_put(reply);
    return 0;
}

/* The deprecated names are thin wrappers in libxenctrl as well. */
int xc_set_hvm_param(xc_interface *handle, uint32_t dom, int param, unsigned long value)
{
    return xc_hvm_param_set(handle, dom, (uint32_t)param, value);
}

int xc_get_hvm_param(xc_interface *handle, uint32_t dom, int param, unsigned long *value)
{
    uint64_t v;
    int rc = xc_hvm_param_get(handle, dom, (uint32_t)param, &v);

    if (rc == 0)
        *value = (unsigned long)v;
    return rc;
}

/* Asks the harness for up to max domains with an id >= first. Returns the
 * array of domain objects in *reply (caller puts) and its length. */
static int xc_list_domains(xc_interface *xch, const char *op, uint32_t first, unsigned int max,
                           struct json_object **reply, struct json_object **list)
{
    struct json_object *args = xc_args(xch, first);
    int n;

    if (!args)
        return -1;
    xd_set_u64(args, "max", max);
    if (xd_call_result(op, args, reply) < 0)
        return -1;
    if (!json_object_object_get_ex(*reply, "domains", list) || !json_object_is_type(*list, json_type_array)) {
        json_object_put(*reply);
        errno = EPROTO;
        return -1;
    }
    n = (int)json_object_array_length(*list);
    return n > (int)max ? (int)max : n;
}

int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid, unsigned int max_doms, xc_dominfo_t *info)
{
    struct json_object *reply, *list;
    int n = xc_list_domains(xch, "xc_domain_getinfo", first_domid, max_doms, &reply, &list);

    for (int i = 0; i < n; i++) {
        struct json_object *d = json_object_array_get_idx(list, (size_t)i);
        xc_dominfo_t *o = &info[i];

        memset(o, 0, sizeof(*o));
        o->domid = (uint32_t)xd_get_u64(d, "domid");
        o->dying = !!xd_get_u64(d, "dying");
        o->crashed = !!xd_get_u64(d, "crashed");
        o->shutdown = !!xd_get_u64(d, "shutdown");
        o->paused = !!xd_get_u64(d, "paused");
        o->blocked = !!xd_get_u64(d, "blocked");
        o->running = !!xd_get_u64(d, "running");
        o->hvm = !!xd_get_u64(d, "hvm");
        o->hap = !!xd_get_u64(d, "hap");
        o->shutdown_reason = (unsigned int)xd_get_u64(d, "shutdown_reason");
        o->nr_pages = (unsigned long)xd_get_u64(d, "nr_pages");
        o->max_memkb = (unsigned long)xd_get_u64(d, "max_memkb");
        o->nr_online_vcpus = (unsigned int)xd_get_u64(d, "nr_online_vcpus");
        o->max_vcpu_id = (unsigned int)xd_get_u64(d, "max_vcpu_id");
        o->cpu_time = xd_get_u64(d, "cpu_time");
        o->gpaddr_bits = (uint8_t)xd_get_u64(d, "gpaddr_bits");
    }
    if (n >= 0)
        json_object_put(reply);
    return n;
}

int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain, unsigned int max_domains,
                          xc_domaininfo_t *info)
{
    struct json_object *reply, *list;
    int n = xc_list_domains(xch, "xc_domain_getinfolist", first_domain, max_domains, &reply, &list);

    for (int i = 0; i < n; i++) {
        struct json_object *d = json_object_array_get_idx(list, (size_t)i);
        xc_domaininfo_t *o = &info[i];
        uint32_t flags = 0;

        memset(o, 0, sizeof(*o));
        o->domain = (domid_t)xd_get_u64(d, "domid");
        flags |= xd_get_u64(d, "dying") ? XEN_DOMINF_dying : 0;
        flags |= xd_get_u64(d, "hvm") ? XEN_DOMINF_hvm_guest : 0;
        flags |= xd_get_u64(d, "shutdown") ? XEN_DOMINF_shutdown : 0;
        flags |= xd_get_u64(d, "paused") ? XEN_DOMINF_paused : 0;
        flags |= xd_get_u64(d, "blocked") ? XEN_DOMINF_blocked : 0;
        flags |= xd_get_u64(d, "running") ? XEN_DOMINF_running : 0;
        flags |= xd_get_u64(d, "hap") ? XEN_DOMINF_hap : 0;
        flags |= ((uint32_t)xd_get_u64(d, "shutdown_reason") & XEN_DOMINF_shutdownmask)
                 << XEN_DOMINF_shutdownshift;
        o->flags = flags;
        o->tot_pages = xd_get_u64(d, "nr_pages");
        o->max_pages = xd_get_u64(d, "max_memkb") >> 2;
        o->cpu_time = xd_get_u64(d, "cpu_time");
        o->nr_online_vcpus = (uint32_t)xd_get_u64(d, "nr_online_vcpus");
        o->max_vcpu_id = (uint32_t)xd_get_u64(d, "max_vcpu_id");
        o->gpaddr_bits = (uint8_t)xd_get_u64(d, "gpaddr_bits");
    }
    if (n >= 0)
        json_object_put(reply);
    return n;
}

int xc_domain_memory_mapping(xc_interface *xch, uint32_t domid, unsigned long first_gfn,
                             unsigned long first_mfn, unsigned long nr_mfns, uint32_t add_mapping)
{
    struct json_object *args = xc_args(xch, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "first_gfn", first_gfn);
    xd_set_u64(args, "first_mfn", first_mfn);
    xd_set_u64(args, "nr_mfns", nr_mfns);
    xd_set_u64(args, "add_mapping", add_mapping);
    return xc_status("xc_domain_memory_mapping", args);
}

int xc_domain_ioport_mapping(xc_interface *xch, uint32_t domid, uint32_t first_gport, uint32_t first_mport,
                             uint32_t nr_ports, uint32_t add_mapping)
{
    struct json_object *args = xc_args(xch, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "first_gport", first_gport);
    xd_set_u64(args, "first_mport", first_mport);
    xd_set_u64(args, "nr_ports", nr_ports);
    xd_set_u64(args, "add_mapping", add_mapping);
    return xc_status("xc_domain_ioport_mapping", args);
}

static int xc_pirq_result(const char *op, struct json_object *args, int *pirq)
{
    struct json_object *reply;

    if (xd_call_result(op, args, &reply) < 0)
        return -1;
    *pirq = (int)xd_get_i64(reply, "pirq");
    json_object_put(reply);
    return 0;
}

int xc_physdev_map_pirq(xc_interface *xch, uint32_t domid, int index, int *pirq)
{
    struct json_object *args;

    if (!pirq) {
        errno = EINVAL;
        return -1;
    }
    args = xc_args(xch, domid);
    if (!args)
        return -1;
    xd_set_i64(args, "index", index);
    /* The library asks for pirq == index when the caller passes < 0. */
    xd_set_i64(args, "pirq", *pirq < 0 ? index : *pirq);
    return xc_pirq_result("xc_physdev_map_pirq", args, pirq);
}

int xc_physdev_map_pirq_msi(xc_interface *xch, uint32_t domid, int index, int *pirq, int devfn, int bus,
                            int entry_nr, uint64_t table_base)
{
    struct json_object *args;

    if (!pirq) {
        errno = EINVAL;
        return -1;
    }
    args = xc_args(xch, domid);
    if (!args)
        return -1;
    xd_set_i64(args, "index", index);
    xd_set_i64(args, "pirq", *pirq);
    xd_set_i64(args, "devfn", devfn);
    xd_set_i64(args, "bus", bus);
    xd_set_i64(args, "entry_nr", entry_nr);
    xd_set_u64(args, "table_base", table_base);
    return xc_pirq_result("xc_physdev_map_pirq_msi", args, pirq);
}

int xc_physdev_unmap_pirq(xc_interface *xch, uint32_t domid, int pirq)
{
    struct json_object *args = xc_args(xch, domid);

    if (!args)
        return -1;
    xd_set_i64(args, "pirq", pirq);
    return xc_status("xc_physdev_unmap_pirq", args);
}

int xc_domain_bind_pt_pci_irq(xc_interface *xch, uint32_t domid, uint8_t machine_irq, uint8_t bus,
                              uint8_t device, uint8_t intx)
{
    struct json_object *args = xc_args(xch, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "machine_irq", machine_irq);
    xd_set_u64(args, "bus", bus);
    xd_set_u64(args, "device", device);
    xd_set_u64(args, "intx", intx);
    return xc_status("xc_domain_bind_pt_pci_irq", args);
}

int xc_domain_unbind_pt_irq(xc_interface *xch, uint32_t domid, uint8_t machine_irq, uint8_t irq_type,
                            uint8_t bus, uint8_t device, uint8_t intx, uint8_t isa_irq)
{
    struct json_object *args = xc_args(xch, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "machine_irq", machine_irq);
    xd_set_u64(args, "irq_type", irq_type);
    xd_set_u64(args, "bus", bus);
    xd_set_u64(args, "device", device);
    xd_set_u64(args, "intx", intx);
    xd_set_u64(args, "isa_irq", isa_irq);
    return xc_status("xc_domain_unbind_pt_irq", args);
}

int xc_domain_update_msi_irq(xc_interface *xch, uint32_t domid, uint32_t gvec, uint32_t pirq, uint32_t gflags,
                             uint64_t gtable)
{
    struct json_object *args = xc_args(xch, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "gvec", gvec);
    xd_set_u64(args, "pirq", pirq);
    xd_set_u64(args, "gflags", gflags);
    xd_set_u64(args, "gtable", gtable);
    return xc_status("xc_domain_update_msi_irq", args);
}

int xc_domain_unbind_msi_irq(xc_interface *xch, uint32_t domid, uint32_t gvec, uint32_t pirq, uint32_t gflags)
{
    struct json_object *args = xc_args(xch, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "gvec", gvec);
    xd_set_u64(args, "pirq", pirq);
    xd_set_u64(args, "gflags", gflags);
    return xc_status("xc_domain_unbind_msi_irq", args);
}

int xentoolcore_restrict_all(domid_t domid)
{
    int (*real_restrict_all)(domid_t);
    struct json_object *args = json_object_new_object();
    int rc;

    if (!args) {
        errno = ENOMEM;
        return -1;
    }
    if (xd_connect() < 0) {
        json_object_put(args);
        return -1;
    }
    xd_set_u64(args, "domid", domid);
    rc = xd_call_result("xentoolcore_restrict_all", args, NULL);
    if (rc < 0)
        return -1;
    /* Handles of the libraries that are not doubled (libxenstore's, for the
     * real xenstored the tests use) are registered with the real
     * libxentoolcore: it restricts them as on a real system, which for
     * xenstore means the connection stops working. */
    real_restrict_all = (int (*)(domid_t))dlsym(RTLD_NEXT, "xentoolcore_restrict_all");
    if (real_restrict_all && real_restrict_all != xentoolcore_restrict_all)
        return real_restrict_all(domid);
    return 0;
}
