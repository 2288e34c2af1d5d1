/* LD_PRELOAD shim that lets Debian's C xenstored (4.17) run on a host without
 * a hypervisor, for tests only.
 *
 * xenstored talks to Xen in three places: libxenctrl (is a domain alive?),
 * libxenevtchn (doorbells to guests' rings) and libxengnttab (mapping a
 * guest's ring page), plus /proc/xen/xsd_{port,kva} for dom0's own ring.
 * This shim answers all of them locally: every domain id below
 * DOMID_FIRST_RESERVED exists and runs, event channels are numbers from a
 * counter on an eventfd that never fires, and every ring is a private zeroed
 * page that nobody writes to, so xenstored never sees a request on it.
 * Clients then use the UNIX socket, where xenstored treats them as dom0.
 *
 * The list of functions comes from `nm -D --undefined-only` on the packaged
 * binary; symbols defined here without a version satisfy its versioned
 * references because the dynamic linker accepts a default-version
 * definition from an object loaded first. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#define SHIM_PAGE_SIZE 4096
/* Xen's DOMID_FIRST_RESERVED: ids from here on are never real domains. */
#define SHIM_FIRST_RESERVED_DOMID 0x7FF0u
/* The port dom0's ring is bound to; any value works, Linux usually says 1. */
#define SHIM_XSD_PORT "1"

/* Opaque to libxenctrl's callers, so any distinct non-NULL object will do. */
struct xc_interface_core {
    int unused;
};

struct xenevtchn_handle {
    int fd;
};

struct xengntdev_handle {
    int unused;
};

/* The only state the shim keeps: the next event-channel port to hand out.
 * xenstored is single-threaded. */
static evtchn_port_t shim_next_port = 10;

/* Symbols the shim overrides must be visible; -Wmissing-prototypes is
 * satisfied by the Xen headers for those, and by these for the rest. */
int open(const char *path, int flags, ...);
int open64(const char *path, int flags, ...);

xc_interface *xc_interface_open(xentoollog_logger *logger,
                                xentoollog_logger *dombuild_logger,
                                unsigned open_flags)
{
    return calloc(1, sizeof(struct xc_interface_core));
}

int xc_interface_close(xc_interface *xch)
{
    free(xch);
    return 0;
}

int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid,
                      unsigned int max_doms, xc_dominfo_t *info)
{
    unsigned int n = 0;

    while (n < max_doms && first_domid + n < SHIM_FIRST_RESERVED_DOMID) {
        memset(&info[n], 0, sizeof(info[n]));
        info[n].domid = first_domid + n;
        info[n].running = 1;
        info[n].hvm = info[n].domid != 0;
        info[n].nr_online_vcpus = 1;
        n++;
    }
    return (int)n;
}

static xenevtchn_handle *shim_evtchn_new(int fd)
{
    xenevtchn_handle *xce = calloc(1, sizeof(*xce));

    if (!xce) {
        errno = ENOMEM;
        return NULL;
    }
    xce->fd = fd;
    return xce;
}

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger,
                                 unsigned int flags)
{
    int fd = eventfd(0, EFD_NONBLOCK |
                            ((flags & XENEVTCHN_NO_CLOEXEC) ? 0 : EFD_CLOEXEC));
    xenevtchn_handle *xce;

    if (fd < 0)
        return NULL;
    xce = shim_evtchn_new(fd);
    if (!xce)
        close(fd);
    return xce;
}

/* Live update hands the handle's fd to the new binary; keep using it. */
xenevtchn_handle *xenevtchn_fdopen(struct xentoollog_logger *logger, int fd,
                                   unsigned open_flags)
{
    return shim_evtchn_new(fd);
}

int xenevtchn_close(xenevtchn_handle *xce)
{
    if (!xce)
        return 0;
    close(xce->fd);
    free(xce);
    return 0;
}

int xenevtchn_fd(xenevtchn_handle *xce)
{
    return xce->fd;
}

int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
    return 0;
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce,
                                                     uint32_t domid,
                                                     evtchn_port_t remote_port)
{
    return (xenevtchn_port_or_error_t)shim_next_port++;
}

xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *xce,
                                              unsigned int virq)
{
    return (xenevtchn_port_or_error_t)shim_next_port++;
}

int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
    return 0;
}

/* Only called when the eventfd is readable, which never happens; answer
 * like an empty queue in case someone polls anyway. */
xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
    errno = EAGAIN;
    return -1;
}

int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
    return 0;
}

xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger,
                                 unsigned open_flags)
{
    return calloc(1, sizeof(struct xengntdev_handle));
}

int xengnttab_close(xengnttab_handle *xgt)
{
    free(xgt);
    return 0;
}

int xengnttab_set_max_grants(xengnttab_handle *xgt, uint32_t nr_grants)
{
    return 0;
}

/* A guest's ring page: zeroed, so the ring reads as empty forever. */
void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid,
                              uint32_t ref, int prot)
{
    void *page = mmap(NULL, SHIM_PAGE_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    return page == MAP_FAILED ? NULL : page;
}

int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{
    return munmap(start_address, (size_t)count * SHIM_PAGE_SIZE);
}

/* A memfd standing in for a /proc/xen file: `text` as contents, or `size`
 * zero bytes when text is NULL. */
static int shim_memfd(const char *name, const char *text, size_t size)
{
    int fd = memfd_create(name, MFD_CLOEXEC);

    if (fd < 0)
        return -1;
    if (text) {
        size_t len = strlen(text);

        if (write(fd, text, len) != (ssize_t)len ||
            lseek(fd, 0, SEEK_SET) < 0)
            goto fail;
    } else if (ftruncate(fd, (off_t)size) < 0) {
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

static int shim_open(const char *sym, const char *path, int flags,
                     mode_t mode)
{
    int (*real_open)(const char *, int, ...);

    if (path && strcmp(path, "/proc/xen/xsd_port") == 0)
        return shim_memfd("xsd_port", SHIM_XSD_PORT, 0);
    if (path && strcmp(path, "/proc/xen/xsd_kva") == 0)
        return shim_memfd("xsd_kva", NULL, SHIM_PAGE_SIZE);
    real_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, sym);
    if (!real_open) {
        errno = ENOSYS;
        return -1;
    }
    return real_open(path, flags, mode);
}

/* open() reads a mode argument only for these flags; O_TMPFILE shares a
 * bit with O_DIRECTORY, so compare all of its bits. */
static int shim_open_has_mode(int flags)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;

    if (shim_open_has_mode(flags)) {
        va_list ap;

        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    return shim_open("open", path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;

    if (shim_open_has_mode(flags)) {
        va_list ap;

        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    return shim_open("open64", path, flags, mode);
}
