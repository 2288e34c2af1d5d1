#include "xen.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* xenctrl.h first: it sets up what the public xen/ headers expect. */
#include <xenctrl.h>
#include <xen/hvm/ioreq.h>
#include <xen/hvm/params.h>
#include <xen/memory.h>
#include <xendevicemodel.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xentoolcore.h>

#include "../lib/log.h"
#include "mapcache.h"

TRACE_POINT(trace_xen_ioreq, "xen_ioreq");
TRACE_POINT(trace_xen_range, "xen_range");

/* 128 slots fit the one synchronous page (HVM_MAX_VCPUS). */
#define XEN_MAX_VCPUS 128

struct xen_transport {
    struct loop *loop;
    struct bus *bus;
    struct dispatcher *dispatch;
    uint32_t domid;

    xc_interface *xch;
    xendevicemodel_handle *dmod;
    xenforeignmemory_handle *fmem;
    xenevtchn_handle *xce;
    bool server_created, server_enabled;
    ioservid_t server_id;

    /* The pages: by resource mapping (fres), or the gfn fallback. */
    xenforeignmemory_resource_handle *fres;
    void *resource_addr;
    ioreq_t *slots; /* the synchronous page, one slot per vCPU */
    buffered_iopage_t *buffered;
    bool pages_by_gfn;

    unsigned nr_vcpus;
    evtchn_port_t local_port[XEN_MAX_VCPUS];
    bool bound[XEN_MAX_VCPUS];
    evtchn_port_t buffered_local_port;
    bool buffered_bound;
    struct loop_watch *evtchn_watch;

    struct bus_listener listener;
    bool listening;
    struct mapcache mapcache;
    struct irq_sink irq;
    struct xen_transport_stats stats;
};

/* --- ranges --------------------------------------------------------------- */

static int range_op(struct xen_transport *t, const struct bus_region *r,
                    bool map)
{
    uint64_t last = r->base + r->len - 1;
    int rc;

    if (r->space == BUS_PCI_CFG) {
        uint32_t sbdf = (uint32_t)(r->base >> 12);
        uint16_t seg = sbdf >> 16;
        uint8_t bus = (sbdf >> 8) & 0xff, dev = (sbdf >> 3) & 0x1f,
                fn = sbdf & 7;

        rc = map ? xendevicemodel_map_pcidev_to_ioreq_server(
                       t->dmod, t->domid, t->server_id, seg, bus, dev, fn)
                 : xendevicemodel_unmap_pcidev_from_ioreq_server(
                       t->dmod, t->domid, t->server_id, seg, bus, dev, fn);
    } else {
        int kind = r->space == BUS_PIO ? XEN_DMOP_IO_RANGE_PORT
                                       : XEN_DMOP_IO_RANGE_MEMORY;

        rc = map ? xendevicemodel_map_io_range_to_ioreq_server(
                       t->dmod, t->domid, t->server_id, kind, r->base, last)
                 : xendevicemodel_unmap_io_range_from_ioreq_server(
                       t->dmod, t->domid, t->server_id, kind, r->base, last);
    }
    if (rc < 0) {
        rc = -errno;
        log_err("xen: cannot %s %s '%s' [0x%" PRIx64 "-0x%" PRIx64 "]: %s",
                map ? "register" : "unregister", bus_space_name(r->space),
                r->name, r->base, last, strerror(-rc));
        return rc;
    }
    trace(trace_xen_range, "%s %s '%s' [0x%" PRIx64 "-0x%" PRIx64 "]",
          map ? "map" : "unmap", bus_space_name(r->space), r->name, r->base,
          last);
    return 0;
}

static void on_region_mapped(void *opaque, const struct bus_region *r)
{
    range_op(opaque, r, true);
}

static void on_region_unmapped(void *opaque, const struct bus_region *r)
{
    range_op(opaque, r, false);
}

/* --- requests ------------------------------------------------------------- */

/* Shared-page accesses are volatile: Xen (or a misbehaving peer) can change
 * them at any moment, and the compiler must not cache or merge them. */
#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

static uint8_t slot_state(const ioreq_t *slot)
{
    /* The state is the low nibble of byte 30 (see xen/hvm/ioreq.h). */
    return READ_ONCE(((const uint8_t *)slot)[30]) & 0x0f;
}

static void set_slot_state(ioreq_t *slot, uint8_t state)
{
    uint8_t *b = &((uint8_t *)slot)[30];

    WRITE_ONCE(*b, (uint8_t)((READ_ONCE(*b) & 0xf0) | state));
}

static void drain_buffered(struct xen_transport *t)
{
    buffered_iopage_t *page = t->buffered;

    if (!page)
        return;
    for (;;) {
        uint32_t rp = READ_ONCE(page->read_pointer), wp;
        buf_ioreq_t b;
        ioreq_t req;
        unsigned n;

        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        wp = READ_ONCE(page->write_pointer);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (READ_ONCE(page->read_pointer) != rp)
            continue; /* Xen canonicalised the pointers meanwhile */
        if (rp == wp)
            return;
        if (wp - rp > IOREQ_BUFFER_SLOT_NUM) {
            /* Impossible for Xen: resynchronise rather than read garbage. */
            t->stats.bad_buffered++;
            log_ratelimited(LOG_WARN, "xen: buffered ring pointers %u/%u "
                            "inconsistent: skipping to the writer", rp, wp);
            __atomic_store_n(&page->read_pointer, wp, __ATOMIC_SEQ_CST);
            return;
        }
        memcpy(&b, (const void *)&page->buf_ioreq[rp % IOREQ_BUFFER_SLOT_NUM],
               sizeof(b));
        req = (ioreq_t){.addr = b.addr, .data = b.data, .count = 1,
                        .size = 1u << b.size, .dir = IOREQ_WRITE,
                        .type = b.type};
        n = 1;
        if (b.size == 3) {
            buf_ioreq_t hi;

            if (wp - rp < 2)
                return; /* the high half is not published yet */
            memcpy(&hi,
                   (const void *)&page->buf_ioreq[(rp + 1) % IOREQ_BUFFER_SLOT_NUM],
                   sizeof(hi));
            req.data |= (uint64_t)hi.data << 32;
            n = 2;
        }
        if (b.dir != IOREQ_WRITE) {
            t->stats.bad_buffered++;
            log_ratelimited(LOG_WARN, "xen: buffered read request (type %u "
                            "addr 0x%x) ignored", b.type, b.addr);
        } else {
            dispatch_ioreq(t->dispatch, &req);
            t->stats.buffered++;
        }
        __atomic_fetch_add(&page->read_pointer, n, __ATOMIC_SEQ_CST);
    }
}

static void handle_sync(struct xen_transport *t, unsigned vcpu)
{
    ioreq_t *slot = &t->slots[vcpu];
    ioreq_t req;
    uint8_t state = slot_state(slot);

    if (state != STATE_IOREQ_READY) {
        /* Spurious events are legal (a notification can race with the
         * previous answer); anything else is not Xen's doing. */
        if (state != STATE_IOREQ_NONE && state != STATE_IORESP_READY) {
            t->stats.bad_state++;
            log_ratelimited(LOG_WARN, "xen: vCPU %u slot in state %u, "
                            "expected %u: ignored", vcpu, state,
                            STATE_IOREQ_READY);
        }
        return;
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    /* Copied out exactly once; everything after works on the copy. */
    memcpy(&req, (const void *)slot, sizeof(req));
    set_slot_state(slot, STATE_IOREQ_INPROCESS);
    /* Buffered writes were issued before this request. */
    drain_buffered(t);
    trace(trace_xen_ioreq, "vCPU %u type %u %s addr 0x%" PRIx64 " size %u "
          "count %u", vcpu, req.type, req.dir == IOREQ_READ ? "read" : "write",
          req.addr, req.size, req.count);
    dispatch_ioreq(t->dispatch, &req);
    t->stats.sync++;
    if (req.dir == IOREQ_READ && !req.data_is_ptr)
        WRITE_ONCE(slot->data, req.data);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    set_slot_state(slot, STATE_IORESP_READY);
    xenevtchn_notify(t->xce, t->local_port[vcpu]);
}

static void on_evtchn(void *opaque, uint32_t events)
{
    struct xen_transport *t = opaque;
    xenevtchn_port_or_error_t port = xenevtchn_pending(t->xce);
    unsigned vcpu;

    if (port < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        /* Without its event channels the device model cannot answer the
         * guest at all; staying would only spin on the broken descriptor. */
        log_err("xen: event channel device failed (%s): exiting",
                strerror(errno));
        loop_del_fd(t->evtchn_watch);
        t->evtchn_watch = NULL;
        loop_quit(t->loop, 1);
        return;
    }
    if (t->buffered_bound && (evtchn_port_t)port == t->buffered_local_port) {
        drain_buffered(t);
        goto unmask;
    }
    for (vcpu = 0; vcpu < t->nr_vcpus; vcpu++)
        if (t->bound[vcpu] && t->local_port[vcpu] == (evtchn_port_t)port)
            break;
    if (vcpu == t->nr_vcpus) {
        t->stats.bad_port++;
        log_ratelimited(LOG_WARN, "xen: event on unknown port %d ignored",
                        port);
        goto unmask;
    }
    handle_sync(t, vcpu);
unmask:
    xenevtchn_unmask(t->xce, (evtchn_port_t)port);
}

/* --- hooks ----------------------------------------------------------------- */

static void hook_invalidate(void *opaque)
{
    struct xen_transport *t = opaque;

    log_debug("xen: map-cache invalidate");
    mapcache_invalidate(&t->mapcache);
}

static void hook_timeoffset(void *opaque, int64_t delta)
{
    struct xen_transport *t = opaque;

    t->stats.rtc_offset += delta;
    log_ratelimited(LOG_INFO, "xen: guest RTC moved by %" PRId64 " s (total %"
                    PRId64 " s)", delta, t->stats.rtc_offset);
}

static void xen_isa_irq(void *opaque, unsigned irq, bool level)
{
    struct xen_transport *t = opaque;

    if (xendevicemodel_set_isa_irq_level(t->dmod, t->domid, (uint8_t)irq,
                                         level) < 0)
        log_ratelimited(LOG_WARN, "xen: set_isa_irq_level(%u, %d): %s", irq,
                        level, strerror(errno));
}

static void xen_pci_intx(void *opaque, unsigned slot, unsigned pin, bool level)
{
    struct xen_transport *t = opaque;

    if (xendevicemodel_set_pci_intx_level(t->dmod, t->domid, 0, 0,
                                          (uint8_t)slot, (uint8_t)pin,
                                          level) < 0)
        log_ratelimited(LOG_WARN, "xen: set_pci_intx_level(%u, %u, %d): %s",
                        slot, pin, level, strerror(errno));
}

static void xen_link_route(void *opaque, unsigned link, unsigned irq)
{
    struct xen_transport *t = opaque;

    if (xendevicemodel_set_pci_link_route(t->dmod, t->domid, (uint8_t)link,
                                          (uint8_t)irq) < 0)
        log_ratelimited(LOG_WARN, "xen: set_pci_link_route(%u, %u): %s", link,
                        irq, strerror(errno));
}

static const struct irq_sink_ops xen_irq_ops = {
    .isa_irq = xen_isa_irq,
    .pci_intx = xen_pci_intx,
    .pci_link_route = xen_link_route,
};

const struct irq_sink *xen_transport_irq_sink(struct xen_transport *t)
{
    return &t->irq;
}

int xen_transport_shutdown(struct xen_transport *t, unsigned reason)
{
    log_info("xen: asking Xen to %s domain %u",
             reason == SHUTDOWN_reboot ? "reboot" : "power off", t->domid);
    if (xendevicemodel_shutdown(t->dmod, t->domid, reason) < 0) {
        log_err("xen: shutdown(%u) failed: %s", reason, strerror(errno));
        return -errno;
    }
    return 0;
}

int xen_transport_set_acpi_s_state(struct xen_transport *t, unsigned state)
{
    if (xc_hvm_param_set(t->xch, t->domid, HVM_PARAM_ACPI_S_STATE, state) < 0) {
        log_err("xen: HVM_PARAM_ACPI_S_STATE=%u failed: %s", state,
                strerror(errno));
        return -errno;
    }
    return 0;
}

/* --- PCI pass-through ----------------------------------------------------- */

int xen_pt_memory_mapping(struct xen_transport *t, uint64_t gfn, uint64_t mfn,
                          uint64_t nr, bool add)
{
    if (xc_domain_memory_mapping(t->xch, t->domid, gfn, mfn, nr,
                                 add ? DPCI_ADD_MAPPING
                                     : DPCI_REMOVE_MAPPING) < 0) {
        int rc = -errno;

        log_err("xen: memory mapping %s gfn 0x%" PRIx64 " mfn 0x%" PRIx64
                " nr %" PRIu64 " failed: %s", add ? "add" : "remove", gfn,
                mfn, nr, strerror(-rc));
        return rc;
    }
    return 0;
}

int xen_pt_ioport_mapping(struct xen_transport *t, uint32_t gport,
                          uint32_t mport, uint32_t nr, bool add)
{
    if (xc_domain_ioport_mapping(t->xch, t->domid, gport, mport, nr,
                                 add ? DPCI_ADD_MAPPING
                                     : DPCI_REMOVE_MAPPING) < 0) {
        int rc = -errno;

        log_err("xen: ioport mapping %s 0x%x->0x%x nr %u failed: %s",
                add ? "add" : "remove", gport, mport, nr, strerror(-rc));
        return rc;
    }
    return 0;
}

int xen_pt_intx_bind(struct xen_transport *t, unsigned host_irq, uint8_t devfn,
                     unsigned intx, int *pirq)
{
    int p = (int)host_irq, rc;

    if (xc_physdev_map_pirq(t->xch, t->domid, (int)host_irq, &p) < 0) {
        rc = -errno;
        log_err("xen: mapping host irq %u failed: %s", host_irq, strerror(-rc));
        return rc;
    }
    if (xc_domain_bind_pt_pci_irq(t->xch, t->domid, (uint8_t)p, 0,
                                  PCI_SLOT(devfn), (uint8_t)intx) < 0) {
        rc = -errno;
        log_err("xen: binding pirq %d to 00:%02x INT%c failed: %s", p,
                PCI_SLOT(devfn), 'A' + intx, strerror(-rc));
        xc_physdev_unmap_pirq(t->xch, t->domid, p);
        return rc;
    }
    *pirq = p;
    return 0;
}

void xen_pt_intx_unbind(struct xen_transport *t, int pirq, uint8_t devfn,
                        unsigned intx)
{
    if (xc_domain_unbind_pt_irq(t->xch, t->domid, (uint8_t)pirq,
                                PT_IRQ_TYPE_PCI, 0, PCI_SLOT(devfn),
                                (uint8_t)intx, 0) < 0)
        log_err("xen: unbinding pirq %d failed: %s", pirq, strerror(errno));
    if (xc_physdev_unmap_pirq(t->xch, t->domid, pirq) < 0)
        log_err("xen: unmapping pirq %d failed: %s", pirq, strerror(errno));
}

int xen_pt_msi_map(struct xen_transport *t, const struct pci_host_addr *host,
                   unsigned entry_nr, uint64_t table_base, int *pirq)
{
    int p = -1; /* let Xen choose */

    /* The segment rides in the bus argument's upper half. A table_base
     * makes it MSI-X (MAP_PIRQ_TYPE_MSI either way, as qemu-xen does). */
    if (xc_physdev_map_pirq_msi(t->xch, t->domid, -1, &p,
                                PCI_DEVFN(host->dev, host->fn),
                                (int)host->bus | (int)host->seg << 16,
                                (int)entry_nr, table_base) < 0) {
        int rc = -errno;

        log_err("xen: MSI%s pirq for %04x:%02x:%02x.%u entry %u failed: %s",
                table_base ? "-X" : "", host->seg, host->bus, host->dev,
                host->fn, entry_nr, strerror(-rc));
        return rc;
    }
    *pirq = p;
    return 0;
}

/* The guest's MSI address/data in the form XEN_DOMCTL_bind_pt_irq takes. */
static uint32_t msi_gflags(uint64_t addr, uint32_t data)
{
    uint32_t dest = (uint32_t)(addr >> 12) & 0xff;
    uint32_t rh = (uint32_t)(addr >> 3) & 1, dm = (uint32_t)(addr >> 2) & 1;
    uint32_t deliv = (data >> 8) & 7, trig = (data >> 15) & 1;

    return (dest & XEN_DOMCTL_VMSI_X86_DEST_ID_MASK) |
           (rh ? XEN_DOMCTL_VMSI_X86_RH_MASK : 0) |
           (dm ? XEN_DOMCTL_VMSI_X86_DM_MASK : 0) |
           ((deliv << 12) & XEN_DOMCTL_VMSI_X86_DELIV_MASK) |
           (trig ? XEN_DOMCTL_VMSI_X86_TRIG_MASK : 0) |
           XEN_DOMCTL_VMSI_X86_UNMASKED;
}

int xen_pt_msi_update(struct xen_transport *t, int pirq, uint64_t addr,
                      uint32_t data, uint64_t gtable)
{
    if (xc_domain_update_msi_irq(t->xch, t->domid, (uint8_t)data, pirq,
                                 msi_gflags(addr, data), gtable) < 0) {
        int rc = -errno;

        log_err("xen: MSI update of pirq %d failed: %s", pirq, strerror(-rc));
        return rc;
    }
    return 0;
}

void xen_pt_msi_unmap(struct xen_transport *t, int pirq, uint64_t addr,
                      uint32_t data, bool bound)
{
    if (bound && xc_domain_unbind_msi_irq(t->xch, t->domid, (uint8_t)data,
                                          pirq, msi_gflags(addr, data)) < 0)
        log_err("xen: MSI unbind of pirq %d failed: %s", pirq, strerror(errno));
    if (xc_physdev_unmap_pirq(t->xch, t->domid, pirq) < 0)
        log_err("xen: unmapping pirq %d failed: %s", pirq, strerror(errno));
}

static int pt_op_mmio(void *o, uint64_t gfn, uint64_t mfn, uint64_t nr,
                      bool add)
{
    return xen_pt_memory_mapping(o, gfn, mfn, nr, add);
}

static int pt_op_ioport(void *o, uint32_t gport, uint32_t mport, uint32_t nr,
                        bool add)
{
    return xen_pt_ioport_mapping(o, gport, mport, nr, add);
}

static int pt_op_intx_bind(void *o, unsigned irq, uint8_t devfn, unsigned intx,
                           int *pirq)
{
    return xen_pt_intx_bind(o, irq, devfn, intx, pirq);
}

static void pt_op_intx_unbind(void *o, int pirq, uint8_t devfn, unsigned intx)
{
    xen_pt_intx_unbind(o, pirq, devfn, intx);
}

static int pt_op_msi_map(void *o, const struct pci_host_addr *h,
                         unsigned entry_nr, uint64_t table_base, int *pirq)
{
    return xen_pt_msi_map(o, h, entry_nr, table_base, pirq);
}

static int pt_op_msi_update(void *o, int pirq, uint64_t addr, uint32_t data,
                            uint64_t gtable)
{
    return xen_pt_msi_update(o, pirq, addr, data, gtable);
}

static void pt_op_msi_unmap(void *o, int pirq, uint64_t addr, uint32_t data,
                            bool bound)
{
    xen_pt_msi_unmap(o, pirq, addr, data, bound);
}

void xen_transport_passthrough_ops(struct xen_transport *t,
                                   struct passthrough_ops *ops)
{
    *ops = (struct passthrough_ops){
        .mmio_map = pt_op_mmio,
        .ioport_map = pt_op_ioport,
        .intx_bind = pt_op_intx_bind,
        .intx_unbind = pt_op_intx_unbind,
        .msi_map = pt_op_msi_map,
        .msi_update = pt_op_msi_update,
        .msi_unmap = pt_op_msi_unmap,
        .opaque = t,
    };
}

void xen_transport_pause(struct xen_transport *t, bool paused)
{
    /* Events stay pending in the event-channel device meanwhile: the vCPUs
     * that sent them wait, nothing is lost. */
    if (t->evtchn_watch)
        loop_mod_fd(t->evtchn_watch, paused ? 0 : EPOLLIN);
    if (!paused) {
        drain_buffered(t);
        for (unsigned vcpu = 0; vcpu < t->nr_vcpus; vcpu++)
            handle_sync(t, vcpu);
    }
    log_info("xen: request handling %s", paused ? "paused" : "resumed");
}

void xen_transport_set_log_dirty(struct xen_transport *t, bool on)
{
    t->mapcache.log_dirty = on;
}

void xen_transport_get_stats(const struct xen_transport *t,
                             struct xen_transport_stats *st)
{
    *st = t->stats;
}

/* --- set-up and tear-down ------------------------------------------------- */

static int map_pages_by_gfn(struct xen_transport *t)
{
    xen_pfn_t ioreq_gfn, bufioreq_gfn;

    if (xendevicemodel_get_ioreq_server_info(t->dmod, t->domid, t->server_id,
                                             &ioreq_gfn, &bufioreq_gfn,
                                             NULL) < 0)
        return -errno;
    t->slots = xenforeignmemory_map(t->fmem, t->domid, PROT_READ | PROT_WRITE,
                                    1, &ioreq_gfn, NULL);
    if (!t->slots)
        return -errno;
    t->buffered = xenforeignmemory_map(t->fmem, t->domid,
                                       PROT_READ | PROT_WRITE, 1,
                                       &bufioreq_gfn, NULL);
    if (!t->buffered) {
        int rc = -errno;

        xenforeignmemory_unmap(t->fmem, t->slots, 1);
        t->slots = NULL;
        return rc;
    }
    t->pages_by_gfn = true;
    return 0;
}

static int map_pages(struct xen_transport *t)
{
    int rc;

    /* Resource mapping first (§2.3): no guest frames are taken. */
    t->fres = xenforeignmemory_map_resource(
        t->fmem, t->domid, XENMEM_resource_ioreq_server, t->server_id,
        XENMEM_resource_ioreq_server_frame_bufioreq, 2, &t->resource_addr,
        PROT_READ | PROT_WRITE, 0);
    if (t->fres) {
        t->buffered = t->resource_addr;
        t->slots = (ioreq_t *)((uint8_t *)t->resource_addr + 4096);
        log_info("xen: ioreq pages mapped by resource");
        return 0;
    }
    rc = -errno;
    if (rc != -EOPNOTSUPP && rc != -ENOSYS)
        return rc;
    log_info("xen: resource mapping not available (%s): mapping the ioreq "
             "pages by gfn", strerror(-rc));
    return map_pages_by_gfn(t);
}

static void unmap_pages(struct xen_transport *t)
{
    if (t->fres) {
        xenforeignmemory_unmap_resource(t->fmem, t->fres);
        t->fres = NULL;
    } else if (t->pages_by_gfn) {
        xenforeignmemory_unmap(t->fmem, t->slots, 1);
        xenforeignmemory_unmap(t->fmem, t->buffered, 1);
        t->pages_by_gfn = false;
    }
    t->slots = NULL;
    t->buffered = NULL;
}

static int bind_ports(struct xen_transport *t, evtchn_port_t bufioreq_port)
{
    for (unsigned vcpu = 0; vcpu < t->nr_vcpus; vcpu++) {
        uint32_t remote = READ_ONCE(t->slots[vcpu].vp_eport);
        xenevtchn_port_or_error_t local =
            xenevtchn_bind_interdomain(t->xce, t->domid, remote);

        if (local < 0) {
            log_err("xen: cannot bind vCPU %u's event channel %u: %s", vcpu,
                    remote, strerror(errno));
            return -errno;
        }
        t->local_port[vcpu] = (evtchn_port_t)local;
        t->bound[vcpu] = true;
    }
    {
        xenevtchn_port_or_error_t local =
            xenevtchn_bind_interdomain(t->xce, t->domid, bufioreq_port);

        if (local < 0) {
            log_err("xen: cannot bind the buffered event channel %u: %s",
                    bufioreq_port, strerror(errno));
            return -errno;
        }
        t->buffered_local_port = (evtchn_port_t)local;
        t->buffered_bound = true;
    }
    log_info("xen: bound %u vCPU event channels and the buffered one",
             t->nr_vcpus);
    return 0;
}

static void unbind_ports(struct xen_transport *t)
{
    for (unsigned vcpu = 0; vcpu < t->nr_vcpus; vcpu++) {
        if (t->bound[vcpu])
            xenevtchn_unbind(t->xce, t->local_port[vcpu]);
        t->bound[vcpu] = false;
    }
    if (t->buffered_bound)
        xenevtchn_unbind(t->xce, t->buffered_local_port);
    t->buffered_bound = false;
}

static uint64_t domain_ram_end(struct xen_transport *t)
{
    xen_pfn_t max_gpfn;

    if (xc_domain_maximum_gpfn(t->xch, t->domid, &max_gpfn) < 0) {
        log_warn("xen: cannot read the domain's highest gfn (%s): guest "
                 "buffers are checked page by page only", strerror(errno));
        return 1ull << 52;
    }
    return ((uint64_t)max_gpfn + 1) << 12;
}

void xen_transport_close(struct xen_transport *t)
{
    if (!t)
        return;
    if (t->evtchn_watch)
        loop_del_fd(t->evtchn_watch);
    if (t->listening)
        bus_remove_listener(t->bus, &t->listener);
    if (t->server_enabled &&
        xendevicemodel_set_ioreq_server_state(t->dmod, t->domid, t->server_id,
                                              0) == 0)
        log_info("xen: ioreq server %u disabled", t->server_id);
    if (t->xce)
        unbind_ports(t);
    unmap_pages(t);
    mapcache_invalidate(&t->mapcache);
    if (t->server_created &&
        xendevicemodel_destroy_ioreq_server(t->dmod, t->domid,
                                            t->server_id) == 0)
        log_info("xen: ioreq server %u destroyed", t->server_id);
    if (t->xce)
        xenevtchn_close(t->xce);
    if (t->fmem)
        xenforeignmemory_close(t->fmem);
    if (t->dmod)
        xendevicemodel_close(t->dmod);
    if (t->xch)
        xc_interface_close(t->xch);
    free(t);
}

int xen_transport_open(struct loop *loop, struct bus *bus,
                       struct dispatcher *dispatch, uint32_t domid,
                       struct xen_transport **out)
{
    struct xen_transport *t = calloc(1, sizeof(*t));
    evtchn_port_t bufioreq_port;
    unsigned int nr_vcpus;
    int rc;

    if (!t)
        return -ENOMEM;
    t->loop = loop;
    t->bus = bus;
    t->dispatch = dispatch;
    t->domid = domid;
    t->irq = (struct irq_sink){.ops = &xen_irq_ops, .opaque = t};

    t->xch = xc_interface_open(NULL, NULL, 0);
    t->dmod = xendevicemodel_open(NULL, 0);
    t->fmem = xenforeignmemory_open(NULL, 0);
    t->xce = xenevtchn_open(NULL, 0);
    if (!t->xch || !t->dmod || !t->fmem || !t->xce) {
        rc = errno ? -errno : -ENODEV;
        log_err("xen: cannot open the Xen interfaces (%s): is this dom0 with "
                "/dev/xen/privcmd, and are we root?", strerror(-rc));
        goto out;
    }
    log_info("xen: interfaces open for domain %u", domid);

    if (xendevicemodel_nr_vcpus(t->dmod, domid, &nr_vcpus) < 0) {
        rc = -errno;
        log_err("xen: cannot read domain %u's vCPU count: %s", domid,
                strerror(-rc));
        goto out;
    }
    if (nr_vcpus == 0 || nr_vcpus > XEN_MAX_VCPUS) {
        rc = -ERANGE;
        log_err("xen: domain %u reports %u vCPUs (1..%d supported)", domid,
                nr_vcpus, XEN_MAX_VCPUS);
        goto out;
    }
    t->nr_vcpus = nr_vcpus;

    if (xendevicemodel_create_ioreq_server(t->dmod, domid,
                                           HVM_IOREQSRV_BUFIOREQ_ATOMIC,
                                           &t->server_id) < 0) {
        rc = -errno;
        log_err("xen: cannot create an ioreq server: %s", strerror(-rc));
        goto out;
    }
    t->server_created = true;
    log_info("xen: ioreq server %u created (buffered, atomic)", t->server_id);

    rc = map_pages(t);
    if (rc < 0) {
        log_err("xen: cannot map the ioreq pages: %s", strerror(-rc));
        goto out;
    }
    if (xendevicemodel_get_ioreq_server_info(t->dmod, domid, t->server_id,
                                             NULL, NULL, &bufioreq_port) < 0) {
        rc = -errno;
        log_err("xen: cannot read the buffered event channel: %s",
                strerror(-rc));
        goto out;
    }

    mapcache_init(&t->mapcache, t->fmem, t->dmod, domid, domain_ram_end(t));
    mapcache_accessor(&t->mapcache, &dispatch->mem);
    dispatch->hooks = (struct dispatch_hooks){.invalidate = hook_invalidate,
                                              .timeoffset = hook_timeoffset,
                                              .opaque = t};

    /* Every range the machine has mapped so far, and every later change. */
    t->listener = (struct bus_listener){.mapped = on_region_mapped,
                                        .unmapped = on_region_unmapped,
                                        .opaque = t};
    bus_add_listener(bus, &t->listener);
    t->listening = true;

    if (xendevicemodel_set_ioreq_server_state(t->dmod, domid, t->server_id,
                                              1) < 0) {
        rc = -errno;
        log_err("xen: cannot enable the ioreq server: %s", strerror(-rc));
        goto out;
    }
    t->server_enabled = true;
    log_info("xen: ioreq server %u enabled", t->server_id);

    /* vp_eport values are valid only now that the server is enabled. */
    rc = bind_ports(t, bufioreq_port);
    if (rc < 0)
        goto out;
    rc = loop_add_fd(loop, xenevtchn_fd(t->xce), EPOLLIN, on_evtchn, t,
                     &t->evtchn_watch);
    if (rc < 0)
        goto out;
    /* Anything Xen queued before we listened. */
    drain_buffered(t);
    for (unsigned vcpu = 0; vcpu < t->nr_vcpus; vcpu++)
        handle_sync(t, vcpu);
    *out = t;
    return 0;
out:
    xen_transport_close(t);
    return rc;
}
