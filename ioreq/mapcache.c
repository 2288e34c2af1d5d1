#include "mapcache.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>

#include "../lib/log.h"

TRACE_POINT(trace_mapcache, "mapcache");

void mapcache_init(struct mapcache *mc, xenforeignmemory_handle *fmem,
                   xendevicemodel_handle *dmod, uint32_t domid,
                   uint64_t ram_end)
{
    memset(mc, 0, sizeof(*mc));
    mc->fmem = fmem;
    mc->dmod = dmod;
    mc->domid = domid;
    mc->ram_end = ram_end;
}

static void unmap_bucket(struct mapcache *mc, struct mapcache_bucket *b)
{
    if (!b->base)
        return;
    xenforeignmemory_unmap(mc->fmem, b->base, MAPCACHE_BUCKET_PAGES);
    trace(trace_mapcache, "unmap bucket 0x%" PRIx64, b->index);
    b->base = NULL;
    mc->unmaps++;
}

void mapcache_invalidate(struct mapcache *mc)
{
    for (unsigned i = 0; i < MAPCACHE_BUCKETS; i++)
        unmap_bucket(mc, &mc->buckets[i]);
}

/* Returns the bucket holding gpa, mapping it (and evicting the least
 * recently used one) if needed; NULL if Xen refused the whole bucket. */
static struct mapcache_bucket *lookup(struct mapcache *mc, uint64_t gpa)
{
    uint64_t index = gpa >> MAPCACHE_BUCKET_SHIFT;
    struct mapcache_bucket *victim = &mc->buckets[0];
    xen_pfn_t pfns[MAPCACHE_BUCKET_PAGES];
    int err[MAPCACHE_BUCKET_PAGES];
    void *p;

    for (unsigned i = 0; i < MAPCACHE_BUCKETS; i++) {
        struct mapcache_bucket *b = &mc->buckets[i];

        if (b->base && b->index == index) {
            b->last_use = ++mc->clock;
            return b;
        }
        if (!b->base || (victim->base && b->last_use < victim->last_use))
            victim = b;
    }
    unmap_bucket(mc, victim);
    for (unsigned i = 0; i < MAPCACHE_BUCKET_PAGES; i++)
        pfns[i] = (xen_pfn_t)((index << (MAPCACHE_BUCKET_SHIFT - 12)) + i);
    p = xenforeignmemory_map(mc->fmem, mc->domid, PROT_READ | PROT_WRITE,
                             MAPCACHE_BUCKET_PAGES, pfns, err);
    if (!p) {
        log_ratelimited(LOG_WARN, "guest memory: cannot map 0x%" PRIx64
                        "-0x%" PRIx64 ": %s", index << MAPCACHE_BUCKET_SHIFT,
                        ((index + 1) << MAPCACHE_BUCKET_SHIFT) - 1,
                        strerror(errno));
        return NULL;
    }
    memset(victim->bad, 0, sizeof(victim->bad));
    for (unsigned i = 0; i < MAPCACHE_BUCKET_PAGES; i++)
        if (err[i])
            victim->bad[i / 64] |= 1ull << (i % 64);
    victim->base = p;
    victim->index = index;
    victim->last_use = ++mc->clock;
    mc->maps++;
    trace(trace_mapcache, "map bucket 0x%" PRIx64, index);
    return victim;
}

static bool page_ok(const struct mapcache_bucket *b, uint64_t gpa)
{
    unsigned page = (unsigned)((gpa >> 12) & (MAPCACHE_BUCKET_PAGES - 1));

    return !(b->bad[page / 64] & (1ull << (page % 64)));
}

static bool mc_contains(void *opaque, uint64_t gpa, uint64_t len)
{
    const struct mapcache *mc = opaque;

    return len <= mc->ram_end && gpa <= mc->ram_end - len;
}

/* Copies len bytes between buf and guest RAM at gpa, page by page. */
static void copy(struct mapcache *mc, uint64_t gpa, void *buf, size_t len,
                 bool to_guest)
{
    uint8_t *p = buf;

    while (len) {
        size_t chunk = 4096 - (gpa & 4095);
        struct mapcache_bucket *b;

        if (chunk > len)
            chunk = len;
        b = mc_contains(mc, gpa, chunk) ? lookup(mc, gpa) : NULL;
        if (b && page_ok(b, gpa)) {
            uint8_t *g = b->base + (gpa & ((1u << MAPCACHE_BUCKET_SHIFT) - 1));

            if (to_guest)
                memcpy(g, p, chunk);
            else
                memcpy(p, g, chunk);
        } else {
            mc->faults++;
            log_ratelimited(LOG_WARN, "guest memory: page 0x%" PRIx64
                            " not accessible: %s", gpa & ~(uint64_t)4095,
                            to_guest ? "write dropped" : "reads as all-ones");
            if (!to_guest)
                memset(p, 0xff, chunk);
        }
        gpa += chunk;
        p += chunk;
        len -= chunk;
    }
}

static int mc_read(void *opaque, uint64_t gpa, void *buf, size_t len)
{
    copy(opaque, gpa, buf, len, false);
    return 0;
}

static int mc_write(void *opaque, uint64_t gpa, const void *buf, size_t len)
{
    struct mapcache *mc = opaque;

    copy(mc, gpa, (void *)buf, len, true);
    /* Xen's log-dirty tracking sees only the vCPUs' writes (§3.3). */
    if (mc->log_dirty && len) {
        uint64_t first = gpa >> 12, last = (gpa + len - 1) >> 12;

        if (xendevicemodel_modified_memory(mc->dmod, mc->domid, first,
                                           (uint32_t)(last - first + 1)) < 0)
            log_ratelimited(LOG_WARN, "modified_memory 0x%" PRIx64 "+%" PRIu64
                            " failed: %s", first, last - first + 1,
                            strerror(errno));
    }
    return 0;
}

void mapcache_accessor(struct mapcache *mc, struct guest_memory *mem)
{
    *mem = (struct guest_memory){.contains = mc_contains,
                                 .read = mc_read,
                                 .write = mc_write,
                                 .opaque = mc};
}
