/* libxenforeignmemory, doubled. Guest frames and ioreq-server pages live in
 * the harness's memory file; the harness says which file page backs each
 * frame (or which error the frame gives), and the pages are mapped from the
 * file into one contiguous range, as privcmd maps foreign frames. Pages that
 * failed stay inaccessible (PROT_NONE), where the real mapping would give
 * SIGBUS. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xenforeignmemory.h>

#include "xendouble.h"

struct xenforeignmemory_handle {
    struct xd_handle h;
};

struct xenforeignmemory_resource_handle {
    int64_t id; /* the harness's id for this mapping */
    void *addr;
    unsigned long nr_frames;
};

xenforeignmemory_handle *xenforeignmemory_open(struct xentoollog_logger *logger, unsigned open_flags)
{
    xenforeignmemory_handle *fmem = calloc(1, sizeof(*fmem));
    struct json_object *args = json_object_new_object();

    if (!fmem || !args) {
        free(fmem);
        json_object_put(args);
        errno = ENOMEM;
        return NULL;
    }
    xd_set_u64(args, "flags", open_flags);
    if (xd_open_handle(&fmem->h, "xenforeignmemory_open", args) < 0) {
        free(fmem);
        return NULL;
    }
    return fmem;
}

int xenforeignmemory_close(xenforeignmemory_handle *fmem)
{
    int rc;

    if (!fmem)
        return 0;
    rc = xd_close_handle(&fmem->h, "xenforeignmemory_close");
    free(fmem);
    return rc;
}

static struct json_object *fmem_args(xenforeignmemory_handle *fmem)
{
    if (!fmem) {
        errno = EBADF;
        return NULL;
    }
    return xd_args(&fmem->h);
}

/* Maps the file pages the harness chose over the reserved range: runs of
 * consecutive file pages go in one mmap. */
static int fmem_map_pages(uint8_t *base, int prot, size_t pages, struct json_object *offsets)
{
    size_t i = 0;

    while (i < pages) {
        int64_t first = json_object_get_int64(json_object_array_get_idx(offsets, i));
        size_t run = 1;

        if (first < 0) {
            i++;
            continue;
        }
        while (i + run < pages &&
               json_object_get_int64(json_object_array_get_idx(offsets, i + run)) ==
                   first + (int64_t)(run << XD_PAGE_SHIFT))
            run++;
        if (mmap(base + (i << XD_PAGE_SHIFT), run << XD_PAGE_SHIFT, prot, MAP_SHARED | MAP_FIXED, xd_mem_fd(),
                 (off_t)first) == MAP_FAILED)
            return -1;
        i += run;
    }
    return 0;
}

/* Tells the harness that a mapping it granted could not be made here after
 * all, so it does not count as outstanding. */
static void fmem_abort(const char *op, xenforeignmemory_handle *fmem, struct json_object *what)
{
    struct json_object *args = fmem_args(fmem);

    if (args) {
        json_object_object_add(args, "of", json_object_new_string(op));
        json_object_object_add(args, "what", what);
        xd_post("xenforeignmemory_abort", args);
    } else {
        json_object_put(what);
    }
}

void *xenforeignmemory_map2(xenforeignmemory_handle *fmem, uint32_t dom, void *addr, int prot, int flags,
                            size_t pages, const xen_pfn_t arr[], int err[])
{
    struct json_object *args, *reply = NULL, *offsets, *errs, *gfns;
    uint8_t *base;
    size_t len;
    int saved;

    if (pages == 0 || pages > (SIZE_MAX >> XD_PAGE_SHIFT)) {
        /* What mmap() of the privcmd device says to such a length. */
        errno = pages ? ENOMEM : EINVAL;
        return NULL;
    }
    args = fmem_args(fmem);
    if (!args)
        return NULL;
    len = pages << XD_PAGE_SHIFT;
    /* Reserve the whole range first, as the real library's mmap() does,
     * honouring an address the caller insists on. */
    base = mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)),
                -1, 0);
    if (base == MAP_FAILED) {
        json_object_put(args);
        return NULL;
    }
    gfns = json_object_new_array_ext((int)pages);
    for (size_t i = 0; i < pages; i++)
        json_object_array_add(gfns, json_object_new_uint64(arr[i]));
    xd_set_u64(args, "domid", dom);
    xd_set_i64(args, "prot", prot);
    xd_set_i64(args, "flags", flags);
    xd_set_u64(args, "addr", (uintptr_t)base);
    json_object_object_add(args, "gfns", gfns);
    /* Without err[] the library fails the whole call on any bad page; the
     * harness decides that, so it knows whether a mapping exists. */
    json_object_object_add(args, "err_array", json_object_new_boolean(err != NULL));
    if (xd_call_result("xenforeignmemory_map", args, &reply) < 0)
        goto fail;
    if (!json_object_object_get_ex(reply, "offsets", &offsets) || !json_object_object_get_ex(reply, "err", &errs) ||
        json_object_array_length(offsets) != pages || json_object_array_length(errs) != pages) {
        errno = EPROTO;
        goto fail_granted;
    }
    if (fmem_map_pages(base, prot, pages, offsets) < 0)
        goto fail_granted;
    if (err)
        for (size_t i = 0; i < pages; i++)
            err[i] = (int)json_object_get_int64(json_object_array_get_idx(errs, i));
    json_object_put(reply);
    return base;

fail_granted:
    saved = errno;
    {
        struct json_object *what = json_object_new_object();
        xd_set_u64(what, "addr", (uintptr_t)base);
        fmem_abort("xenforeignmemory_map", fmem, what);
    }
    errno = saved;
fail:
    saved = errno;
    json_object_put(reply);
    munmap(base, len);
    errno = saved;
    return NULL;
}

void *xenforeignmemory_map(xenforeignmemory_handle *fmem, uint32_t dom, int prot, size_t pages,
                           const xen_pfn_t arr[], int err[])
{
    return xenforeignmemory_map2(fmem, dom, NULL, prot, 0, pages, arr, err);
}

int xenforeignmemory_unmap(xenforeignmemory_handle *fmem, void *addr, size_t pages)
{
    struct json_object *args = fmem_args(fmem);
    int rc;

    if (args) {
        xd_set_u64(args, "addr", (uintptr_t)addr);
        xd_set_u64(args, "pages", pages);
        /* The harness records the unmap (and any mismatch); the result is
         * munmap()'s, as in the real library. */
        xd_call_result("xenforeignmemory_unmap", args, NULL);
    }
    rc = munmap(addr, pages << XD_PAGE_SHIFT);
    return rc;
}

int xenforeignmemory_restrict(xenforeignmemory_handle *fmem, domid_t domid)
{
    struct json_object *args = fmem_args(fmem);

    if (!args)
        return -1;
    xd_set_u64(args, "domid", domid);
    return xd_call_result("xenforeignmemory_restrict", args, NULL) < 0 ? -1 : 0;
}

xenforeignmemory_resource_handle *xenforeignmemory_map_resource(xenforeignmemory_handle *fmem, domid_t domid,
                                                                unsigned int type, unsigned int id,
                                                                unsigned long frame, unsigned long nr_frames,
                                                                void **paddr, int prot, int flags)
{
    xenforeignmemory_resource_handle *fres;
    struct json_object *args, *reply;
    bool size_query = !*paddr && !nr_frames;
    int saved;

    /* The library accepts only the POSIX mapping types. */
    if (flags & ~(MAP_SHARED | MAP_PRIVATE)) {
        errno = EINVAL;
        return NULL;
    }
    if (!size_query && nr_frames > (SIZE_MAX >> XD_PAGE_SHIFT)) {
        errno = ENOMEM;
        return NULL;
    }
    args = fmem_args(fmem);
    if (!args)
        return NULL;
    fres = calloc(1, sizeof(*fres));
    if (!fres) {
        json_object_put(args);
        errno = ENOMEM;
        return NULL;
    }
    xd_set_u64(args, "domid", domid);
    xd_set_u64(args, "type", type);
    xd_set_u64(args, "id", id);
    xd_set_u64(args, "frame", frame);
    xd_set_u64(args, "nr_frames", nr_frames);
    xd_set_i64(args, "prot", prot);
    xd_set_i64(args, "flags", flags);
    json_object_object_add(args, "size_query", json_object_new_boolean(size_query));
    if (xd_call_result("xenforeignmemory_map_resource", args, &reply) < 0) {
        free(fres);
        return NULL;
    }
    fres->id = xd_get_i64(reply, "res");
    fres->nr_frames = (unsigned long)xd_get_u64(reply, "nr_frames");
    if (size_query) {
        json_object_put(reply);
        return fres;
    }
    fres->addr = mmap(*paddr, fres->nr_frames << XD_PAGE_SHIFT, prot, flags | MAP_SHARED, xd_mem_fd(),
                      (off_t)xd_get_u64(reply, "offset"));
    json_object_put(reply);
    if (fres->addr == MAP_FAILED) {
        struct json_object *what = json_object_new_object();
        saved = errno;
        xd_set_i64(what, "res", fres->id);
        fmem_abort("xenforeignmemory_map_resource", fmem, what);
        free(fres);
        errno = saved;
        return NULL;
    }
    *paddr = fres->addr;
    return fres;
}

int xenforeignmemory_unmap_resource(xenforeignmemory_handle *fmem, xenforeignmemory_resource_handle *fres)
{
    struct json_object *args;
    int rc;

    if (!fres)
        return 0;
    args = fmem_args(fmem);
    if (args) {
        xd_set_i64(args, "res", fres->id);
        xd_call_result("xenforeignmemory_unmap_resource", args, NULL);
    }
    rc = fres->addr ? munmap(fres->addr, fres->nr_frames << XD_PAGE_SHIFT) : 0;
    free(fres);
    return rc;
}

int xenforeignmemory_resource_size(xenforeignmemory_handle *fmem, domid_t domid, unsigned int type,
                                   unsigned int id, size_t *size)
{
    struct json_object *args = fmem_args(fmem), *reply;

    if (!args)
        return -1;
    xd_set_u64(args, "domid", domid);
    xd_set_u64(args, "type", type);
    xd_set_u64(args, "id", id);
    xd_set_u64(args, "frame", 0);
    xd_set_u64(args, "nr_frames", 0);
    json_object_object_add(args, "size_query", json_object_new_boolean(true));
    if (xd_call_result("xenforeignmemory_resource_size", args, &reply) < 0)
        return -1;
    *size = (size_t)xd_get_u64(reply, "nr_frames") << XD_PAGE_SHIFT;
    json_object_put(reply);
    return 0;
}
