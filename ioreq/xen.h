/* The Xen transport: xen-dm as an ioreq server of one HVM domain
 * (xen-dm-interfaces.md §1-§3). It creates the server, maps its pages by
 * resource, binds one event channel per vCPU plus the buffered one,
 * forwards the bus's ranges to Xen as devices map and unmap them, and turns
 * each request into a dispatcher call. Interrupts, shutdown requests and
 * guest memory go the other way through the same handles. */
#ifndef XENDM_IOREQ_XEN_H
#define XENDM_IOREQ_XEN_H

#include <stdbool.h>
#include <stdint.h>

#include "../hw/bus.h"
#include "../hw/irq.h"
#include "../hw/passthrough.h"
#include "../lib/loop.h"
#include "dispatch.h"

struct xen_transport;

/* Attaches to domid: every step is logged and a failure unwinds exactly the
 * steps done. The dispatcher's guest memory and INVALIDATE/TIMEOFFSET hooks
 * are pointed at the domain. */
int xen_transport_open(struct loop *loop, struct bus *bus,
                       struct dispatcher *dispatch, uint32_t domid,
                       struct xen_transport **out);
/* Disables and destroys the server and releases everything. */
void xen_transport_close(struct xen_transport *t);

/* The irq sink that drives Xen's virtual interrupt controllers. */
const struct irq_sink *xen_transport_irq_sink(struct xen_transport *t);

/* Guest power requests (SHUTDOWN_reboot, SHUTDOWN_poweroff) and S3. */
int xen_transport_shutdown(struct xen_transport *t, unsigned reason);
int xen_transport_set_acpi_s_state(struct xen_transport *t, unsigned state);

/* While paused (a saved domain), requests wait in their rings. */
void xen_transport_pause(struct xen_transport *t, bool paused);

/* While on, every guest page the daemon writes is reported with
 * modified_memory (live migration, §3.3). */
void xen_transport_set_log_dirty(struct xen_transport *t, bool on);

/* PCI pass-through plumbing (xen-dm-interfaces.md §6.6), through
 * libxenctrl. Each returns 0 or a negative errno and logs failures. */
int xen_pt_memory_mapping(struct xen_transport *t, uint64_t gfn, uint64_t mfn,
                          uint64_t nr, bool add);
int xen_pt_ioport_mapping(struct xen_transport *t, uint32_t gport,
                          uint32_t mport, uint32_t nr, bool add);
/* xc_physdev_map_pirq(host_irq) then xc_domain_bind_pt_pci_irq on bus 0. */
int xen_pt_intx_bind(struct xen_transport *t, unsigned host_irq, uint8_t devfn,
                     unsigned intx, int *pirq);
void xen_pt_intx_unbind(struct xen_transport *t, int pirq, uint8_t devfn,
                        unsigned intx);
/* xc_physdev_map_pirq_msi with an auto-assigned pirq; MSI-X passes the
 * entry and the host address of the BAR holding the table. */
int xen_pt_msi_map(struct xen_transport *t, const struct pci_host_addr *host,
                   unsigned entry_nr, uint64_t table_base, int *pirq);
/* xc_domain_update_msi_irq: vector and flags from the guest's address and
 * data; gtable: guest address of the MSI-X table (0 for MSI). */
int xen_pt_msi_update(struct xen_transport *t, int pirq, uint64_t addr,
                      uint32_t data, uint64_t gtable);
void xen_pt_msi_unmap(struct xen_transport *t, int pirq, uint64_t addr,
                      uint32_t data, bool bound);
/* The ops a pass-through function uses to reach this domain. */
void xen_transport_passthrough_ops(struct xen_transport *t,
                                   struct passthrough_ops *ops);

/* Requests served and refused, for logs and tests. */
struct xen_transport_stats {
    uint64_t sync, buffered, bad_state, bad_port, bad_buffered;
    int64_t rtc_offset; /* sum of TIMEOFFSET deltas */
};
void xen_transport_get_stats(const struct xen_transport *t,
                             struct xen_transport_stats *st);

#endif
