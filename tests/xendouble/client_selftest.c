/* xendouble_selftest: a minimal device model that attaches to a domain with
 * the ordinary Xen libraries. It exists to exercise the test double on its
 * own (tests/integration/test_xendouble.py runs it under LD_PRELOAD), and as
 * a compact reference of the Xen-side sequence of
 * docs/xen-dm-interfaces.md §2.3 and the request handling of §1.3 / §1.6:
 *
 *   open handles -> vCPU count -> create server (ATOMIC buffering)
 *   -> map pages by resource (fallback: gfns + foreign map on EOPNOTSUPP)
 *   -> buffered port -> register ranges -> enable -> bind the channels
 *   -> [restrict] -> serve -> disable -> unbind -> unmap -> destroy -> close
 *
 * It emulates one small device:
 *   port 0x510-0x513  scratch register (r/w, any size; rep ins/outs through
 *                     guest RAM)
 *   port 0x514        read: buffered writes handled; write: quit
 *   port 0x518        read: address of the last buffered write
 *   port 0x51c/0x520  read: low / high 32 bits of its data
 *   port 0x524        read: its size;  0x528: invalidations seen
 *   port 0x52c        read: last TIMEOFFSET (low 32 bits);
 *                     write: set ISA IRQ (bits 0-7) to level (bit 8)
 *   MMIO 0xfebf0000-0xfebf0fff  4 KiB of scratch memory (rep, data_is_ptr)
 *   MMIO 0xa0000-0xbffff        sink for buffered writes (VGA window)
 *   PCI 0000:00:03.0  config space: ID 5853:c0de, 0x40-0x43 writable
 *
 * Usage: xendouble_selftest DOMID [--restrict] */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xendevicemodel.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xentoolcore.h>
#include <xen/hvm/ioreq.h>

#define PAGE_SHIFT_4K 12
#define PAGE_4K (1u << PAGE_SHIFT_4K)

#define DEV_PORT_BASE 0x510
#define DEV_PORT_LAST 0x52f
#define DEV_MMIO_BASE 0xfebf0000ull
#define DEV_MMIO_SIZE 0x1000u
#define VGA_BASE 0xa0000ull
#define VGA_LAST 0xbffffull
#define DEV_PCI_SLOT 3

/* The state byte of ioreq_t shares its byte with data_is_ptr/dir/df. */
#define IOREQ_STATE_BYTE 30
_Static_assert(offsetof(ioreq_t, type) == IOREQ_STATE_BYTE + 1, "ioreq_t layout");
_Static_assert(sizeof(ioreq_t) == 32, "ioreq_t size");

struct selftest {
    uint32_t domid;
    unsigned int vcpus;
    bool restrict_all;

    xc_interface *xch;
    xenforeignmemory_handle *fmem;
    xendevicemodel_handle *dmod;
    xenevtchn_handle *xce;

    ioservid_t id;
    bool created, enabled;
    /* Pages: by resource (fres), or by gfn in the fallback. */
    xenforeignmemory_resource_handle *fres;
    void *gfn_pages[2];
    buffered_iopage_t *buf_page;
    shared_iopage_t *sync_page;
    evtchn_port_t buf_remote;
    int buf_local;          /* -1 until bound */
    int *vcpu_local;        /* local port per vCPU, -1 until bound */

    /* The emulated device. */
    uint32_t scratch;
    uint8_t mmio[DEV_MMIO_SIZE];
    uint8_t pci_cfg[256];
    uint64_t buffered_handled, invalidations;
    uint64_t last_buf_addr, last_buf_data, last_buf_size;
    int64_t last_timeoffset;
    bool quit;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

#define say(...) (fprintf(stderr, "xendouble_selftest: " __VA_ARGS__), fputc('\n', stderr))

static uint8_t slot_state(const ioreq_t *slot)
{
    return __atomic_load_n((const uint8_t *)slot + IOREQ_STATE_BYTE, __ATOMIC_ACQUIRE) & 0x0f;
}

/* Publishes the response: the data written before, then the new state. */
static void slot_set_state(ioreq_t *slot, uint8_t state)
{
    uint8_t *byte = (uint8_t *)slot + IOREQ_STATE_BYTE;
    uint8_t old = __atomic_load_n(byte, __ATOMIC_RELAXED);

    __atomic_store_n(byte, (uint8_t)((old & 0xf0) | state), __ATOMIC_RELEASE);
}

static uint64_t size_mask(uint32_t size)
{
    return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

/* ---- guest memory: map the frames a transfer touches, copy, unmap ---- */

/* Copies len bytes between buf and guest-physical gpa. Pages Xen cannot map
 * make the call fail (-EFAULT) without touching anything. */
static int guest_copy(struct selftest *t, uint64_t gpa, void *buf, size_t len, bool to_guest)
{
    uint64_t first = gpa >> PAGE_SHIFT_4K, last = (gpa + len - 1) >> PAGE_SHIFT_4K;
    size_t pages = (size_t)(last - first + 1);
    xen_pfn_t gfns[2];
    int err[2];
    uint8_t *map;
    int rc = 0;

    if (len == 0)
        return 0;
    if (pages > 2 || gpa + len < gpa)
        return -EINVAL; /* Xen never sends a longer RAM span (§3.2) */
    for (size_t i = 0; i < pages; i++)
        gfns[i] = first + i;
    map = xenforeignmemory_map(t->fmem, t->domid, to_guest ? PROT_READ | PROT_WRITE : PROT_READ, pages, gfns, err);
    if (!map)
        return -errno;
    for (size_t i = 0; i < pages; i++) {
        if (err[i]) {
            say("guest frame 0x%" PRIx64 " cannot be mapped: %s", (uint64_t)gfns[i], strerror(-err[i]));
            rc = -EFAULT;
            goto out;
        }
    }
    if (to_guest)
        memcpy(map + (gpa & (PAGE_4K - 1)), buf, len);
    else
        memcpy(buf, map + (gpa & (PAGE_4K - 1)), len);
out:
    xenforeignmemory_unmap(t->fmem, map, pages);
    if (rc == 0 && to_guest)
        xendevicemodel_modified_memory(t->dmod, t->domid, first, (uint32_t)pages);
    return rc;
}

/* ---- the emulated device ---- */

static uint64_t port_read(struct selftest *t, uint64_t port, uint32_t size)
{
    uint32_t reg = (uint32_t)(port & ~3ull), shift = (uint32_t)(port & 3) * 8;
    uint64_t v;

    switch (reg) {
    case 0x510: v = t->scratch; break;
    case 0x514: v = t->buffered_handled; break;
    case 0x518: v = t->last_buf_addr; break;
    case 0x51c: v = (uint32_t)t->last_buf_data; break;
    case 0x520: v = t->last_buf_data >> 32; break;
    case 0x524: v = t->last_buf_size; break;
    case 0x528: v = t->invalidations; break;
    case 0x52c: v = (uint32_t)t->last_timeoffset; break;
    default: return size_mask(size);
    }
    return (v >> shift) & size_mask(size);
}

static void port_write(struct selftest *t, uint64_t port, uint32_t size, uint64_t value)
{
    value &= size_mask(size);
    if (port >= 0x510 && port + size <= 0x514) {
        uint32_t shift = (uint32_t)(port & 3) * 8;
        uint32_t mask = (uint32_t)(size_mask(size) << shift);
        t->scratch = (t->scratch & ~mask) | ((uint32_t)(value << shift) & mask);
    } else if (port == 0x514) {
        t->quit = true;
    } else if (port == 0x52c) {
        if (xendevicemodel_set_isa_irq_level(t->dmod, t->domid, (uint8_t)value, (value >> 8) & 1) < 0)
            say("set_isa_irq_level(%u): %s", (unsigned)(value & 0xff), strerror(errno));
    }
}

static uint64_t mmio_read(struct selftest *t, uint64_t addr, uint32_t size)
{
    uint64_t v = 0;

    if (addr < DEV_MMIO_BASE || addr + size > DEV_MMIO_BASE + DEV_MMIO_SIZE || addr + size < addr)
        return size_mask(size);
    memcpy(&v, t->mmio + (addr - DEV_MMIO_BASE), size);
    return v;
}

static void mmio_write(struct selftest *t, uint64_t addr, uint32_t size, uint64_t value)
{
    if (addr < DEV_MMIO_BASE || addr + size > DEV_MMIO_BASE + DEV_MMIO_SIZE || addr + size < addr)
        return;
    memcpy(t->mmio + (addr - DEV_MMIO_BASE), &value, size);
}

static uint64_t pci_read(struct selftest *t, uint64_t addr, uint32_t size)
{
    uint32_t sbdf = (uint32_t)(addr >> 32), reg = (uint32_t)addr;
    uint64_t v = 0;

    if (sbdf != XEN_DMOP_PCI_SBDF(0, 0, DEV_PCI_SLOT, 0) || reg + size > sizeof(t->pci_cfg))
        return size_mask(size);
    memcpy(&v, t->pci_cfg + reg, size);
    return v;
}

static void pci_write(struct selftest *t, uint64_t addr, uint32_t size, uint64_t value)
{
    uint32_t sbdf = (uint32_t)(addr >> 32), reg = (uint32_t)addr;

    if (sbdf != XEN_DMOP_PCI_SBDF(0, 0, DEV_PCI_SLOT, 0))
        return;
    for (uint32_t i = 0; i < size; i++)
        if (reg + i >= 0x40 && reg + i < 0x44)
            t->pci_cfg[reg + i] = (uint8_t)(value >> (8 * i));
}

static uint64_t dev_read(struct selftest *t, uint8_t type, uint64_t addr, uint32_t size)
{
    switch (type) {
    case IOREQ_TYPE_PIO: return port_read(t, addr, size);
    case IOREQ_TYPE_COPY: return mmio_read(t, addr, size);
    case IOREQ_TYPE_PCI_CONFIG: return pci_read(t, addr, size);
    default: return size_mask(size);
    }
}

static void dev_write(struct selftest *t, uint8_t type, uint64_t addr, uint32_t size, uint64_t value)
{
    switch (type) {
    case IOREQ_TYPE_PIO: port_write(t, addr, size, value); break;
    case IOREQ_TYPE_COPY: mmio_write(t, addr, size, value & size_mask(size)); break;
    case IOREQ_TYPE_PCI_CONFIG: pci_write(t, addr, size, value); break;
    default: break;
    }
}

/* ---- request handling ---- */

/* Performs one synchronous request on a private copy (never re-reading the
 * shared slot). Returns the value for the slot's data field. */
static uint64_t handle_request(struct selftest *t, const ioreq_t *req)
{
    uint32_t size = req->size;
    uint64_t value = 0;

    if (req->type == IOREQ_TYPE_INVALIDATE) {
        /* Nothing is cached here between requests; count it. Xen sends
         * count 0 for this type. */
        t->invalidations++;
        return req->data;
    }
    if (size != 1 && size != 2 && size != 4 && size != 8) {
        say("refused request with size %u", size);
        return ~0ull;
    }
    if (req->count == 0 || req->count > PAGE_4K) {
        say("refused request with count %u", req->count);
        return ~0ull;
    }
    if (!req->data_is_ptr) {
        for (uint32_t i = 0; i < req->count; i++) {
            /* Unsigned steps: the direction flag walks backwards. */
            uint64_t step = req->type == IOREQ_TYPE_PIO ? 0 : (uint64_t)i * size;
            uint64_t addr = req->df ? req->addr - step : req->addr + step;
            if (req->dir == IOREQ_READ)
                value = dev_read(t, req->type, addr, size);
            else
                dev_write(t, req->type, addr, size, req->data);
        }
        return req->dir == IOREQ_READ ? value : req->data;
    }
    for (uint32_t i = 0; i < req->count; i++) {
        uint64_t step = (uint64_t)i * size;
        uint64_t dev_step = req->type == IOREQ_TYPE_PIO ? 0 : step;
        uint64_t addr = req->df ? req->addr - dev_step : req->addr + dev_step;
        uint64_t gpa = req->df ? req->data - step : req->data + step;
        if (req->dir == IOREQ_READ) {
            value = dev_read(t, req->type, addr, size);
            if (guest_copy(t, gpa, &value, size, true) < 0)
                break; /* the rest of the elements are dropped */
        } else {
            value = 0;
            if (guest_copy(t, gpa, &value, size, false) < 0)
                break;
            dev_write(t, req->type, addr, size, value);
        }
    }
    return req->data;
}

/* Consumes the buffered ring (§1.6): pointers read with barriers, 8-byte
 * items over two slots, read_pointer advanced atomically because Xen may
 * canonicalise the pair meanwhile. */
static void drain_buffered(struct selftest *t)
{
    buffered_iopage_t *pg = t->buf_page;

    if (!pg)
        return;
    for (;;) {
        uint32_t rp = __atomic_load_n(&pg->read_pointer, __ATOMIC_ACQUIRE);
        uint32_t wp = __atomic_load_n(&pg->write_pointer, __ATOMIC_ACQUIRE);
        buf_ioreq_t lo, hi;
        uint32_t used;
        uint64_t data;

        if (__atomic_load_n(&pg->read_pointer, __ATOMIC_ACQUIRE) != rp)
            continue; /* canonicalised under us: read both again */
        if (rp == wp)
            return;
        if (wp - rp > IOREQ_BUFFER_SLOT_NUM) {
            say("buffered ring pointers impossible (read %u, write %u): dropping its contents", rp, wp);
            __atomic_fetch_add(&pg->read_pointer, wp - rp, __ATOMIC_SEQ_CST);
            return;
        }
        lo = pg->buf_ioreq[rp % IOREQ_BUFFER_SLOT_NUM];
        data = lo.data;
        used = 1;
        if (lo.size == 3) {
            if (wp - rp < 2) {
                say("8-byte buffered write without its second slot; waiting");
                return;
            }
            hi = pg->buf_ioreq[(rp + 1) % IOREQ_BUFFER_SLOT_NUM];
            data |= (uint64_t)hi.data << 32;
            used = 2;
        }
        if (lo.type == IOREQ_TYPE_TIMEOFFSET) {
            t->last_timeoffset = (int64_t)data;
        } else {
            t->last_buf_addr = lo.addr;
            t->last_buf_data = data;
            t->last_buf_size = 1u << lo.size;
            /* The VGA window is a sink here; anything else goes to the
             * device like a synchronous write. */
            bool vga = lo.addr >= VGA_BASE && lo.addr <= VGA_LAST;
            if (lo.dir == IOREQ_WRITE && !vga)
                dev_write(t, lo.type, lo.addr, 1u << lo.size, data);
        }
        t->buffered_handled++;
        __atomic_fetch_add(&pg->read_pointer, used, __ATOMIC_SEQ_CST);
    }
}

static void serve_vcpu(struct selftest *t, unsigned int vcpu)
{
    ioreq_t *slot = &t->sync_page->vcpu_ioreq[vcpu];
    ioreq_t req;

    /* Buffered writes were issued before this request. */
    drain_buffered(t);
    if (slot_state(slot) != STATE_IOREQ_READY)
        return; /* spurious (e.g. the event every fresh binding gets) */
    memcpy(&req, slot, sizeof(req)); /* after the acquire in slot_state() */
    req.data = handle_request(t, &req);
    if (req.dir == IOREQ_READ && !req.data_is_ptr)
        slot->data = req.data;
    slot_set_state(slot, STATE_IORESP_READY);
    if (xenevtchn_notify(t->xce, (evtchn_port_t)t->vcpu_local[vcpu]) < 0)
        say("notify vCPU %u: %s", vcpu, strerror(errno));
}

static int serve(struct selftest *t)
{
    struct pollfd pfd = { .fd = xenevtchn_fd(t->xce), .events = POLLIN };
    sigset_t empty;

    sigemptyset(&empty);
    while (!t->quit && !stop_requested) {
        int port;
        int n = ppoll(&pfd, 1, NULL, &empty);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        port = xenevtchn_pending(t->xce);
        if (port < 0)
            return errno == EAGAIN ? 0 : -errno;
        if (xenevtchn_unmask(t->xce, (evtchn_port_t)port) < 0)
            return -errno;
        if (port == t->buf_local) {
            drain_buffered(t);
            continue;
        }
        unsigned int vcpu;
        for (vcpu = 0; vcpu < t->vcpus; vcpu++)
            if (t->vcpu_local[vcpu] == port)
                break;
        if (vcpu == t->vcpus) {
            say("event on port %d, which is not ours; ignored", port);
            continue;
        }
        serve_vcpu(t, vcpu);
    }
    return 0;
}

/* ---- set-up and tear-down ---- */

static int map_pages(struct selftest *t)
{
    void *addr = NULL;
    xen_pfn_t gfns[2];
    int err;

    t->fres = xenforeignmemory_map_resource(t->fmem, (domid_t)t->domid, XENMEM_resource_ioreq_server, t->id,
                                            XENMEM_resource_ioreq_server_frame_bufioreq, 2, &addr,
                                            PROT_READ | PROT_WRITE, 0);
    if (t->fres) {
        t->buf_page = addr;
        t->sync_page = (shared_iopage_t *)((uint8_t *)addr + PAGE_4K);
        say("ioreq pages mapped by resource");
        return 0;
    }
    if (errno != EOPNOTSUPP)
        return -errno;
    /* No resource mapping in this kernel: ask for the frames instead. */
    say("resource mapping not supported; mapping the ioreq pages by gfn");
    if (xendevicemodel_get_ioreq_server_info(t->dmod, (domid_t)t->domid, t->id, &gfns[1], &gfns[0],
                                             &t->buf_remote) < 0)
        return -errno;
    for (int i = 0; i < 2; i++) {
        t->gfn_pages[i] = xenforeignmemory_map(t->fmem, t->domid, PROT_READ | PROT_WRITE, 1, &gfns[i], &err);
        if (!t->gfn_pages[i])
            return -errno;
        if (err)
            return err;
    }
    t->buf_page = t->gfn_pages[0];
    t->sync_page = t->gfn_pages[1];
    return 0;
}

static void unmap_pages(struct selftest *t)
{
    if (t->fres && xenforeignmemory_unmap_resource(t->fmem, t->fres) < 0)
        say("unmap_resource: %s", strerror(errno));
    t->fres = NULL;
    for (int i = 0; i < 2; i++) {
        if (t->gfn_pages[i])
            xenforeignmemory_unmap(t->fmem, t->gfn_pages[i], 1);
        t->gfn_pages[i] = NULL;
    }
    t->buf_page = NULL;
    t->sync_page = NULL;
}

static int register_ranges(struct selftest *t)
{
    domid_t d = (domid_t)t->domid;

    if (xendevicemodel_map_io_range_to_ioreq_server(t->dmod, d, t->id, 0, DEV_PORT_BASE, DEV_PORT_LAST) < 0 ||
        xendevicemodel_map_io_range_to_ioreq_server(t->dmod, d, t->id, 1, DEV_MMIO_BASE,
                                                    DEV_MMIO_BASE + DEV_MMIO_SIZE - 1) < 0 ||
        xendevicemodel_map_io_range_to_ioreq_server(t->dmod, d, t->id, 1, VGA_BASE, VGA_LAST) < 0 ||
        xendevicemodel_map_pcidev_to_ioreq_server(t->dmod, d, t->id, 0, 0, DEV_PCI_SLOT, 0) < 0)
        return -errno;
    return 0;
}

static int bind_channels(struct selftest *t)
{
    int port;

    for (unsigned int i = 0; i < t->vcpus; i++) {
        /* Valid only now that the server is enabled. */
        evtchn_port_t remote = t->sync_page->vcpu_ioreq[i].vp_eport;
        port = xenevtchn_bind_interdomain(t->xce, t->domid, remote);
        if (port < 0) {
            say("bind vCPU %u (remote port %u): %s", i, remote, strerror(errno));
            return -errno;
        }
        t->vcpu_local[i] = port;
    }
    port = xenevtchn_bind_interdomain(t->xce, t->domid, t->buf_remote);
    if (port < 0)
        return -errno;
    t->buf_local = port;
    return 0;
}

static void unbind_channels(struct selftest *t)
{
    for (unsigned int i = 0; i < t->vcpus; i++) {
        if (t->vcpu_local[i] >= 0)
            xenevtchn_unbind(t->xce, (evtchn_port_t)t->vcpu_local[i]);
        t->vcpu_local[i] = -1;
    }
    if (t->buf_local >= 0)
        xenevtchn_unbind(t->xce, (evtchn_port_t)t->buf_local);
    t->buf_local = -1;
}

static int attach(struct selftest *t)
{
    xc_dominfo_t info;
    unsigned int dm_vcpus;

    t->xch = xc_interface_open(NULL, NULL, 0);
    t->fmem = xenforeignmemory_open(NULL, 0);
    t->dmod = xendevicemodel_open(NULL, 0);
    t->xce = xenevtchn_open(NULL, 0);
    if (!t->xch || !t->fmem || !t->dmod || !t->xce)
        return -errno;
    if (xc_domain_getinfo(t->xch, t->domid, 1, &info) != 1 || info.domid != t->domid) {
        say("domain %u does not exist", t->domid);
        return -ESRCH;
    }
    if (xendevicemodel_nr_vcpus(t->dmod, (domid_t)t->domid, &dm_vcpus) < 0)
        return -errno;
    t->vcpus = info.max_vcpu_id + 1;
    if (dm_vcpus != t->vcpus || t->vcpus > 128) {
        say("vCPU counts disagree: getinfo %u, nr_vcpus %u", t->vcpus, dm_vcpus);
        return -EPROTO;
    }
    t->vcpu_local = malloc(t->vcpus * sizeof(*t->vcpu_local));
    if (!t->vcpu_local)
        return -ENOMEM;
    for (unsigned int i = 0; i < t->vcpus; i++)
        t->vcpu_local[i] = -1;

    if (xendevicemodel_create_ioreq_server(t->dmod, (domid_t)t->domid, HVM_IOREQSRV_BUFIOREQ_ATOMIC, &t->id) < 0)
        return -errno;
    t->created = true;
    say("ioreq server %u created, %u vCPUs", t->id, t->vcpus);
    int rc = map_pages(t);
    if (rc < 0)
        return rc;
    if (!t->gfn_pages[0] &&
        xendevicemodel_get_ioreq_server_info(t->dmod, (domid_t)t->domid, t->id, NULL, NULL, &t->buf_remote) < 0)
        return -errno;
    rc = register_ranges(t);
    if (rc < 0)
        return rc;
    if (xendevicemodel_set_ioreq_server_state(t->dmod, (domid_t)t->domid, t->id, 1) < 0)
        return -errno;
    t->enabled = true;
    rc = bind_channels(t);
    if (rc < 0)
        return rc;
    if (t->restrict_all && xentoolcore_restrict_all((domid_t)t->domid) < 0)
        return -errno;
    say("attached");
    return 0;
}

static void detach(struct selftest *t)
{
    if (t->enabled && xendevicemodel_set_ioreq_server_state(t->dmod, (domid_t)t->domid, t->id, 0) < 0)
        say("disable: %s", strerror(errno));
    t->enabled = false;
    if (t->xce && t->vcpu_local)
        unbind_channels(t);
    if (t->fmem)
        unmap_pages(t);
    if (t->created && xendevicemodel_destroy_ioreq_server(t->dmod, (domid_t)t->domid, t->id) < 0)
        say("destroy: %s", strerror(errno));
    t->created = false;
    if (t->xce)
        xenevtchn_close(t->xce);
    if (t->dmod)
        xendevicemodel_close(t->dmod);
    if (t->fmem)
        xenforeignmemory_close(t->fmem);
    if (t->xch)
        xc_interface_close(t->xch);
    free(t->vcpu_local);
}

int main(int argc, char **argv)
{
    struct selftest t = { .buf_local = -1 };
    struct sigaction sa = { .sa_handler = on_signal };
    sigset_t block;
    int rc;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DOMID [--restrict]\n", argv[0]);
        return 2;
    }
    t.domid = (uint32_t)strtoul(argv[1], NULL, 0);
    t.restrict_all = argc > 2 && strcmp(argv[2], "--restrict") == 0;
    t.pci_cfg[0] = 0x53;
    t.pci_cfg[1] = 0x58;
    t.pci_cfg[2] = 0xde;
    t.pci_cfg[3] = 0xc0;

    /* Signals only interrupt the wait in ppoll(), never a half-done step. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    rc = attach(&t);
    if (rc == 0)
        rc = serve(&t);
    if (rc < 0)
        say("failed: %s", strerror(-rc));
    detach(&t);
    say("detached");
    return rc < 0 ? 1 : 0;
}
