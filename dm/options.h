/* Command-line options. xen-dm accepts both command lines libxl builds:
 * qemu-xen's (QEMU options, xen-dm-interfaces.md §4.3) and qemu-trad's
 * (qemu-dm options, §4.2). Each option is supported, recognised but not yet
 * supported (logged once and ignored, so libxl can still start us), or
 * unknown (an error with usage). */
#ifndef XENDM_DM_OPTIONS_H
#define XENDM_DM_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "chardev.h"

enum dm_flavour { FLAVOUR_QEMU_XEN, FLAVOUR_QEMU_TRAD };

/* Which hot-plug register layout the guest's DSDT expects. */
enum hotplug_layout_choice { HOTPLUG_LAYOUT_AUTO, HOTPLUG_LAYOUT_XEN, HOTPLUG_LAYOUT_TRAD };

#define OPT_MAX_MONITORS 4
#define OPT_MAX_LIST 16

struct dm_options {
    enum dm_flavour flavour;
    int domid; /* -1: attach to no domain */
    char *name;
    uint64_t ram_mb;
    char *machine_type; /* "xenfv", "pc" or "sim" */
    /* -machine sim: no hypervisor; x86emu runs the guest on the xenfv
     * chipset plus the devices Xen would otherwise emulate. */
    bool sim;
    char *bios;     /* -bios FILE: the firmware image (sim) */
    char *debugcon; /* -debugcon SPEC: port 0xE9 console backend (sim) */
    bool no_reboot; /* a guest reset or triple fault ends the process */
    bool platform_device;
    bool acpi;
    bool start_paused; /* -S */
    bool no_shutdown;
    unsigned vcpus, max_vcpus;
    char *vcpu_avail;
    bool has_qtest;
    struct chardev_spec qtest;
    unsigned n_qmp;
    struct chardev_spec qmp[OPT_MAX_MONITORS];
    enum hotplug_layout_choice hotplug_layout;
    /* Restore at start-up: -loadvm FILE (qemu-trad), -incoming fd:N. */
    char *loadvm;
    int incoming_fd;
    char *boot_order;
    unsigned n_serial;
    char *serial[OPT_MAX_LIST];
    unsigned n_drives, n_devices;
    char *drives[OPT_MAX_LIST];
    char *devices[OPT_MAX_LIST];
    /* -chardev backends that are not sockets (file, stdio, null, pty),
     * as charbe specs, for -device ...,chardev=ID to name. */
    unsigned n_backends;
    char *backend_ids[OPT_MAX_LIST];
    char *backend_specs[OPT_MAX_LIST];
};

/* A -device argument "driver,key=value,...": whether its driver is name, and
 * the value of key (copied into buf, cut to len - 1 bytes), or NULL. */
bool options_device_is(const char *dev, const char *name);
const char *options_device_prop(const char *dev, const char *key, char *buf,
                                size_t len);

/* The charbe spec of the -chardev backend named id, or NULL. */
const char *options_backend(const struct dm_options *o, const char *id);

/* Returns 0 to run, 1 when the options asked for something that is already
 * done (--help, --version, -trace help), or a negative errno after printing
 * the reason and usage to stderr. */
int options_parse(int argc, char **argv, struct dm_options *o);
void options_free(struct dm_options *o);
void options_usage(FILE *out);

#endif
