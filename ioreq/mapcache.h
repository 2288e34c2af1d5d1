/* Guest RAM of a Xen domain, reached through a bounded cache of foreign
 * mappings (xenforeignmemory_map is a hypercall and an mmap: far too slow
 * per access). The cache maps 1 MiB buckets on demand, keeps at most
 * MAPCACHE_BUCKETS of them (least recently used goes first), and is dropped
 * whole on IOREQ_TYPE_INVALIDATE. A page Xen refuses to map reads as
 * all-ones and swallows writes, with a rate-limited log line. */
#ifndef XENDM_IOREQ_MAPCACHE_H
#define XENDM_IOREQ_MAPCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include <xenctrl.h>
#include <xendevicemodel.h>
#include <xenforeignmemory.h>

#include "dispatch.h"

#define MAPCACHE_BUCKET_SHIFT 20 /* 1 MiB, as QEMU on 64-bit hosts */
#define MAPCACHE_BUCKET_PAGES (1u << (MAPCACHE_BUCKET_SHIFT - 12))
#define MAPCACHE_BUCKETS 64

struct mapcache_bucket {
    uint64_t index; /* gpa >> MAPCACHE_BUCKET_SHIFT */
    uint8_t *base;  /* NULL: slot unused */
    uint64_t last_use;
    /* Pages Xen refused to map (bit per page). */
    uint64_t bad[MAPCACHE_BUCKET_PAGES / 64];
};

struct mapcache {
    xenforeignmemory_handle *fmem;
    xendevicemodel_handle *dmod;
    uint32_t domid;
    uint64_t ram_end; /* first guest-physical address past the domain's RAM */
    bool log_dirty;   /* report writes with modified_memory */
    uint64_t clock;
    struct mapcache_bucket buckets[MAPCACHE_BUCKETS];
    uint64_t maps, unmaps, faults;
};

void mapcache_init(struct mapcache *mc, xenforeignmemory_handle *fmem,
                   xendevicemodel_handle *dmod, uint32_t domid,
                   uint64_t ram_end);
/* Unmaps every bucket (INVALIDATE, teardown). */
void mapcache_invalidate(struct mapcache *mc);
void mapcache_accessor(struct mapcache *mc, struct guest_memory *mem);

#endif
