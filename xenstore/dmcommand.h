/* The device model's xenstore control plane (xen-dm-interfaces.md §4.4,
 * §4.5): qemu-trad's command protocol under
 * /local/domain/<dm_domid>/device-model/<domid>/, which xen-dm serves in
 * both flavours.
 *
 *   command   pci-ins, pci-rem, save, continue (read, then deleted)
 *   parameter argument in, result out ("0x<devfn>" or an error text)
 *   state     running, paused, pci-inserted, pci-insert-failed, pci-removed
 *   logdirty/cmd -> logdirty/ret   enable / disable, echoed
 *
 * Commands are taken in the order they arrive. One that is still in flight
 * (a pci-rem waiting for the guest's eject, a save waiting for continue)
 * holds the ones behind it in a queue: nothing is dropped, nothing
 * overtakes. Every value read is untrusted: a malformed parameter is an
 * error reply, never a crash.
 *
 * What the commands do to the machine is the caller's business, through
 * dm_command_ops. */
#ifndef XENDM_XENSTORE_DMCOMMAND_H
#define XENDM_XENSTORE_DMCOMMAND_H

#include <stdbool.h>
#include <stdint.h>

#include "../hw/pci.h"
#include "xs.h"

struct dm_command;

struct pci_insert_request {
    struct pci_host_addr host;
    bool has_vdevfn; /* "@VV": the guest devfn libxl asks for */
    uint8_t vdevfn;
    bool msitranslate, power_mgmt, permissive;
};

struct dm_command_ops {
    /* Attach and announce to the guest. Returns the guest devfn, or a
     * negative errno with a reason for libxl in err. */
    int (*pci_insert)(void *opaque, const struct pci_insert_request *req,
                      char *err, size_t errlen);
    /* Ask the guest to eject. 0: pending, completed later through
     * dm_command_pci_removed(); -ENODEV: nothing of that name is attached. */
    int (*pci_remove)(void *opaque, const struct pci_host_addr *host,
                      char *err, size_t errlen);
    /* Write the device state to path, then stop serving the guest. */
    int (*save)(void *opaque, const char *path);
    void (*resume)(void *opaque);
    void (*set_log_dirty)(void *opaque, bool on);
    /* qemu-trad vCPU hot-plug: cpu/<n>/availability. */
    void (*cpu_online)(void *opaque, unsigned cpu, bool online);
    /* The device-model directory was removed: libxl's way to stop us. */
    void (*quit)(void *opaque);
    void *opaque;
};

struct dm_command_config {
    unsigned domid;
    bool trad; /* also watch /local/domain/<domid>/cpu */
    /* Where "save" writes: <lib_dir>/qemu-save.<domid>. */
    const char *lib_dir;
};

int dm_command_start(struct xsw *xs, const struct dm_command_config *cfg,
                     const struct dm_command_ops *ops,
                     struct dm_command **out);
void dm_command_stop(struct dm_command *dc);

/* Writes DM/state. */
int dm_command_set_state(struct dm_command *dc, const char *state);
/* The guest ejected (or a reset flushed) the function pci-rem asked for. */
void dm_command_pci_removed(struct dm_command *dc,
                            const struct pci_host_addr *host);
/* Publishes a pty serial port as /local/domain/<domid>/serial/<n>/tty. */
int dm_command_publish_serial(struct dm_command *dc, unsigned index,
                              const char *pty);

/* The whole pci-ins parameter. */
int pci_insert_request_parse(const char *s, struct pci_insert_request *out);

#endif
