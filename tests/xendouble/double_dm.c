/* libxendevicemodel, doubled: every XEN_DMOP_* becomes a harness request
 * named after the library function. Argument checks that the real library
 * does itself (before any hypercall) are done here the same way, and the
 * narrowing of values into the dm_op structures is reproduced, so the
 * harness sees what Xen would see. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xendevicemodel.h>

#include "xendouble.h"

struct xendevicemodel_handle {
    struct xd_handle h;
};

xendevicemodel_handle *xendevicemodel_open(struct xentoollog_logger *logger, unsigned int open_flags)
{
    xendevicemodel_handle *dmod = calloc(1, sizeof(*dmod));
    struct json_object *args = json_object_new_object();

    if (!dmod || !args) {
        free(dmod);
        json_object_put(args);
        errno = ENOMEM;
        return NULL;
    }
    xd_set_u64(args, "flags", open_flags);
    if (xd_open_handle(&dmod->h, "xendevicemodel_open", args) < 0) {
        free(dmod);
        return NULL;
    }
    return dmod;
}

int xendevicemodel_close(xendevicemodel_handle *dmod)
{
    int rc;

    if (!dmod)
        return 0;
    rc = xd_close_handle(&dmod->h, "xendevicemodel_close");
    free(dmod);
    return rc;
}

/* A request on dmod for domid. */
static struct json_object *dm_args(xendevicemodel_handle *dmod, domid_t domid)
{
    struct json_object *args;

    if (!dmod) {
        errno = EBADF;
        return NULL;
    }
    args = xd_args(&dmod->h);
    if (args)
        xd_set_u64(args, "domid", domid);
    return args;
}

/* The common case: a request that returns nothing but a status. */
static int dm_status(const char *op, struct json_object *args)
{
    return xd_call_result(op, args, NULL) < 0 ? -1 : 0;
}

int xendevicemodel_create_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, int handle_bufioreq,
                                       ioservid_t *id)
{
    struct json_object *args = dm_args(dmod, domid), *reply;

    if (!args)
        return -1;
    /* The dm_op field is a uint8_t. */
    xd_set_u64(args, "handle_bufioreq", (uint8_t)handle_bufioreq);
    if (xd_call_result("xendevicemodel_create_ioreq_server", args, &reply) < 0)
        return -1;
    *id = (ioservid_t)xd_get_u64(reply, "id");
    json_object_put(reply);
    return 0;
}

int xendevicemodel_get_ioreq_server_info(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id,
                                         xen_pfn_t *ioreq_gfn, xen_pfn_t *bufioreq_gfn,
                                         evtchn_port_t *bufioreq_port)
{
    struct json_object *args = dm_args(dmod, domid), *reply;

    if (!args)
        return -1;
    xd_set_u64(args, "id", id);
    /* XEN_DMOP_no_gfns: the library asks Xen not to back the pages with
     * guest frames when the caller does not want the frame numbers. */
    json_object_object_add(args, "want_gfns", json_object_new_boolean(ioreq_gfn || bufioreq_gfn));
    if (xd_call_result("xendevicemodel_get_ioreq_server_info", args, &reply) < 0)
        return -1;
    if (ioreq_gfn)
        *ioreq_gfn = xd_get_u64(reply, "ioreq_gfn");
    if (bufioreq_gfn)
        *bufioreq_gfn = xd_get_u64(reply, "bufioreq_gfn");
    if (bufioreq_port)
        *bufioreq_port = (evtchn_port_t)xd_get_u64(reply, "bufioreq_port");
    json_object_put(reply);
    return 0;
}

static int dm_io_range(const char *op, xendevicemodel_handle *dmod, domid_t domid, ioservid_t id,
                       uint32_t type, uint64_t start, uint64_t end)
{
    struct json_object *args = dm_args(dmod, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "id", id);
    xd_set_u64(args, "type", type);
    xd_set_u64(args, "start", start);
    xd_set_u64(args, "end", end);
    return dm_status(op, args);
}

int xendevicemodel_map_io_range_to_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id,
                                                int is_mmio, uint64_t start, uint64_t end)
{
    return dm_io_range("xendevicemodel_map_io_range_to_ioreq_server", dmod, domid, id,
                       is_mmio ? XEN_DMOP_IO_RANGE_MEMORY : XEN_DMOP_IO_RANGE_PORT, start, end);
}

int xendevicemodel_unmap_io_range_from_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id,
                                                    int is_mmio, uint64_t start, uint64_t end)
{
    return dm_io_range("xendevicemodel_unmap_io_range_from_ioreq_server", dmod, domid, id,
                       is_mmio ? XEN_DMOP_IO_RANGE_MEMORY : XEN_DMOP_IO_RANGE_PORT, start, end);
}

static int dm_pcidev(const char *op, xendevicemodel_handle *dmod, domid_t domid, ioservid_t id,
                     uint16_t segment, uint8_t bus, uint8_t device, uint8_t function)
{
    uint64_t sbdf;

    /* Refused by the library before any hypercall. */
    if (device > 0x1f || function > 0x7) {
        errno = EINVAL;
        return -1;
    }
    sbdf = XEN_DMOP_PCI_SBDF((uint64_t)segment, (uint64_t)bus, (uint64_t)device, (uint64_t)function);
    return dm_io_range(op, dmod, domid, id, XEN_DMOP_IO_RANGE_PCI, sbdf, sbdf);
}

int xendevicemodel_map_pcidev_to_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id,
                                              uint16_t segment, uint8_t bus, uint8_t device, uint8_t function)
{
    return dm_pcidev("xendevicemodel_map_pcidev_to_ioreq_server", dmod, domid, id, segment, bus, device,
                     function);
}

int xendevicemodel_unmap_pcidev_from_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id,
                                                  uint16_t segment, uint8_t bus, uint8_t device,
                                                  uint8_t function)
{
    return dm_pcidev("xendevicemodel_unmap_pcidev_from_ioreq_server", dmod, domid, id, segment, bus, device,
                     function);
}

int xendevicemodel_map_mem_type_to_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id,
                                                uint16_t type, uint32_t flags)
{
    struct json_object *args;

    if (type != HVMMEM_ioreq_server || (flags & ~XEN_DMOP_IOREQ_MEM_ACCESS_WRITE)) {
        errno = EINVAL;
        return -1;
    }
    args = dm_args(dmod, domid);
    if (!args)
        return -1;
    xd_set_u64(args, "id", id);
    xd_set_u64(args, "type", type);
    xd_set_u64(args, "flags", flags);
    return dm_status("xendevicemodel_map_mem_type_to_ioreq_server", args);
}

int xendevicemodel_destroy_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id)
{
    struct json_object *args = dm_args(dmod, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "id", id);
    return dm_status("xendevicemodel_destroy_ioreq_server", args);
}

int xendevicemodel_set_ioreq_server_state(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id,
                                          int enabled)
{
    struct json_object *args = dm_args(dmod, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "id", id);
    xd_set_u64(args, "enabled", !!enabled);
    return dm_status("xendevicemodel_set_ioreq_server_state", args);
}

int xendevicemodel_set_pci_intx_level(xendevicemodel_handle *dmod, domid_t domid, uint16_t segment,
                                      uint8_t bus, uint8_t device, uint8_t intx, unsigned int level)
{
    struct json_object *args = dm_args(dmod, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "segment", segment);
    xd_set_u64(args, "bus", bus);
    xd_set_u64(args, "device", device);
    xd_set_u64(args, "intx", intx);
    xd_set_u64(args, "level", (uint8_t)level);
    return dm_status("xendevicemodel_set_pci_intx_level", args);
}

int xendevicemodel_set_isa_irq_level(xendevicemodel_handle *dmod, domid_t domid, uint8_t irq,
                                     unsigned int level)
{
    struct json_object *args = dm_args(dmod, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "irq", irq);
    xd_set_u64(args, "level", (uint8_t)level);
    return dm_status("xendevicemodel_set_isa_irq_level", args);
}

int xendevicemodel_set_irq_level(xendevicemodel_handle *dmod, domid_t domid, unsigned int irq,
                                 unsigned int level)
{
    struct json_object *args = dm_args(dmod, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "irq", irq);
    xd_set_u64(args, "level", level);
    return dm_status("xendevicemodel_set_irq_level", args);
}

int xendevicemodel_set_pci_link_route(xendevicemodel_handle *dmod, domid_t domid, uint8_t link, uint8_t irq)
{
    struct json_object *args = dm_args(dmod, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "link", link);
    xd_set_u64(args, "irq", irq);
    return dm_status("xendevicemodel_set_pci_link_route", args);
}

int xendevicemodel_inject_msi(xendevicemodel_handle *dmod, domid_t domid, uint64_t msi_addr, uint32_t msi_data)
{
    struct json_object *args = dm_args(dmod, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "addr", msi_addr);
    xd_set_u64(args, "data", msi_data);
    return dm_status("xendevicemodel_inject_msi", args);
}

int xendevicemodel_track_dirty_vram(xendevicemodel_handle *dmod, domid_t domid, uint64_t first_pfn,
                                    uint32_t nr, unsigned long *dirty_bitmap)
{
    struct json_object *args = dm_args(dmod, domid), *reply, *hex;
    size_t bytes = ((size_t)nr + 7) / 8;
    const char *text;

    if (!args)
        return -1;
    xd_set_u64(args, "first_pfn", first_pfn);
    xd_set_u64(args, "nr", nr);
    if (xd_call_result("xendevicemodel_track_dirty_vram", args, &reply) < 0)
        return -1;
    /* The library hands Xen a buffer of exactly ceil(nr / 8) bytes. */
    if (nr && json_object_object_get_ex(reply, "bitmap", &hex) &&
        (text = json_object_get_string(hex)) && strlen(text) == 2 * bytes) {
        uint8_t *out = (uint8_t *)dirty_bitmap;
        for (size_t i = 0; i < bytes; i++) {
            char pair[3] = { text[2 * i], text[2 * i + 1], '\0' };
            out[i] = (uint8_t)strtoul(pair, NULL, 16);
        }
    }
    json_object_put(reply);
    return 0;
}

int xendevicemodel_modified_memory_bulk(xendevicemodel_handle *dmod, domid_t domid,
                                        struct xen_dm_op_modified_memory_extent extents[], uint32_t nr)
{
    struct json_object *args = dm_args(dmod, domid), *list;

    if (!args)
        return -1;
    list = json_object_new_array();
    for (uint32_t i = 0; i < nr; i++) {
        struct json_object *e = json_object_new_object();
        xd_set_u64(e, "first_pfn", extents[i].first_pfn);
        xd_set_u64(e, "nr", extents[i].nr);
        xd_set_u64(e, "pad", extents[i].pad);
        json_object_array_add(list, e);
    }
    json_object_object_add(args, "extents", list);
    return dm_status("xendevicemodel_modified_memory_bulk", args);
}

int xendevicemodel_modified_memory(xendevicemodel_handle *dmod, domid_t domid, uint64_t first_pfn, uint32_t nr)
{
    /* The real library forwards to the bulk form with one extent; so does
     * this one, so the harness records one kind of call. */
    struct xen_dm_op_modified_memory_extent extent = {
        .first_pfn = first_pfn,
        .nr = nr,
    };

    return xendevicemodel_modified_memory_bulk(dmod, domid, &extent, 1);
}

int xendevicemodel_set_mem_type(xendevicemodel_handle *dmod, domid_t domid, hvmmem_type_t mem_type,
                                uint64_t first_pfn, uint32_t nr)
{
    struct json_object *args = dm_args(dmod, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "mem_type", (uint16_t)mem_type);
    xd_set_u64(args, "first_pfn", first_pfn);
    xd_set_u64(args, "nr", nr);
    return dm_status("xendevicemodel_set_mem_type", args);
}

int xendevicemodel_inject_event(xendevicemodel_handle *dmod, domid_t domid, int vcpu, uint8_t vector,
                                uint8_t type, uint32_t error_code, uint8_t insn_len, uint64_t extra)
{
    struct json_object *args = dm_args(dmod, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "vcpu", (uint32_t)vcpu);
    xd_set_u64(args, "vector", vector);
    xd_set_u64(args, "type", type);
    xd_set_u64(args, "error_code", error_code);
    xd_set_u64(args, "insn_len", insn_len);
    xd_set_u64(args, "extra", extra);
    return dm_status("xendevicemodel_inject_event", args);
}

int xendevicemodel_shutdown(xendevicemodel_handle *dmod, domid_t domid, unsigned int reason)
{
    struct json_object *args = dm_args(dmod, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "reason", reason);
    return dm_status("xendevicemodel_shutdown", args);
}

int xendevicemodel_relocate_memory(xendevicemodel_handle *dmod, domid_t domid, uint32_t size,
                                   uint64_t src_gfn, uint64_t dst_gfn)
{
    struct json_object *args = dm_args(dmod, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "size", size);
    xd_set_u64(args, "src_gfn", src_gfn);
    xd_set_u64(args, "dst_gfn", dst_gfn);
    return dm_status("xendevicemodel_relocate_memory", args);
}

int xendevicemodel_pin_memory_cacheattr(xendevicemodel_handle *dmod, domid_t domid, uint64_t start,
                                        uint64_t end, uint32_t type)
{
    struct json_object *args = dm_args(dmod, domid);

    if (!args)
        return -1;
    xd_set_u64(args, "start", start);
    xd_set_u64(args, "end", end);
    xd_set_u64(args, "type", type);
    return dm_status("xendevicemodel_pin_memory_cacheattr", args);
}

int xendevicemodel_nr_vcpus(xendevicemodel_handle *dmod, domid_t domid, unsigned int *vcpus)
{
    struct json_object *args = dm_args(dmod, domid), *reply;

    if (!args)
        return -1;
    if (xd_call_result("xendevicemodel_nr_vcpus", args, &reply) < 0)
        return -1;
    *vcpus = (unsigned int)xd_get_u64(reply, "vcpus");
    json_object_put(reply);
    return 0;
}

int xendevicemodel_restrict(xendevicemodel_handle *dmod, domid_t domid)
{
    return dm_status("xendevicemodel_restrict", dm_args(dmod, domid));
}
