/* Unit tests for the machine (dm/machine.c): which devices each flavour and
 * machine type gets, the hot-plug layout choice, vCPU bitmaps, and the
 * control-plane hot-plug operations with their events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../dm/machine.h"
#include "../../dm/options.h"
#include "../../lib/log.h"

struct fixture {
    struct loop *loop;
    struct dm_options opts;
    struct machine m;
    struct machine_observer obs;
    char deleted[8][32];
    unsigned n_deleted, n_resets;
};

static void on_event(void *opaque, const struct machine_event *ev)
{
    struct fixture *fx = opaque;

    if (ev->kind == MACHINE_EVENT_DEVICE_DELETED && fx->n_deleted < 8)
        snprintf(fx->deleted[fx->n_deleted++], 32, "%s", ev->device);
    if (ev->kind == MACHINE_EVENT_RESET)
        fx->n_resets++;
}

/* Parses args (NULL-terminated) and builds the machine; trad stands for
 * what -d N selects (attaching to the domain is the transport's business,
 * not the machine's). */
static struct fixture *build_flavour(const char *const *args, bool trad)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    char *argv[32];
    int argc = 0;

    assert_non_null(fx);
    argv[argc++] = "xen-dm";
    while (*args)
        argv[argc++] = (char *)*args++;
    argv[argc] = NULL;
    assert_int_equal(options_parse(argc, argv, &fx->opts), 0);
    if (trad)
        fx->opts.flavour = FLAVOUR_QEMU_TRAD;
    assert_int_equal(loop_create(&fx->loop), 0);
    assert_int_equal(machine_init(&fx->m, &fx->opts, fx->loop), 0);
    fx->obs = (struct machine_observer){.event = on_event, .opaque = fx};
    machine_add_observer(&fx->m, &fx->obs);
    return fx;
}

static struct fixture *build(const char *const *args)
{
    return build_flavour(args, false);
}

static void destroy(struct fixture *fx)
{
    machine_fini(&fx->m);
    loop_destroy(fx->loop);
    options_free(&fx->opts);
    free(fx);
}

static uint32_t inl(struct fixture *fx, uint16_t port)
{
    return (uint32_t)bus_read(&fx->m.bus, BUS_PIO, port, 4);
}

static uint8_t inb(struct fixture *fx, uint16_t port)
{
    return (uint8_t)bus_read(&fx->m.bus, BUS_PIO, port, 1);
}

static void outl(struct fixture *fx, uint16_t port, uint32_t v)
{
    bus_write(&fx->m.bus, BUS_PIO, port, v, 4);
}

static void outb(struct fixture *fx, uint16_t port, uint8_t v)
{
    bus_write(&fx->m.bus, BUS_PIO, port, v, 1);
}

/* A 64 KiB firmware image of HLTs in a temporary file (removed by the
 * caller). */
static void write_bios(char path[32])
{
    uint8_t image[64 << 10];
    int fd;

    strcpy(path, "/tmp/xdm-biosXXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    memset(image, 0xf4, sizeof(image));
    assert_int_equal(write(fd, image, sizeof(image)), (int)sizeof(image));
    close(fd);
}

static void test_sim_machine_devices_and_pci_intx(void **state)
{
    char bios[32];
    struct fixture *fx;
    const struct bus_region *r;

    write_bios(bios);
    fx = build((const char *const[]){"-machine", "sim", "-m", "16", "-bios", bios,
                                     "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                                     NULL});
    unlink(bios);
    assert_true(fx->m.has_sim);
    /* The xenfv set plus what Xen would emulate. */
    assert_non_null(pci_find_function(&fx->m.pci, MACHINE_PLATFORM_DEVFN));
    r = bus_find(&fx->m.bus, BUS_PIO, 0x20);
    assert_non_null(r);
    assert_non_null(bus_find(&fx->m.bus, BUS_PIO, 0xa0));
    assert_non_null(bus_find(&fx->m.bus, BUS_PIO, 0x4d0));
    assert_non_null(bus_find(&fx->m.bus, BUS_PIO, 0x40));
    assert_non_null(bus_find(&fx->m.bus, BUS_PIO, 0x61));
    assert_non_null(bus_find(&fx->m.bus, BUS_PIO, 0xf4));
    assert_string_equal(bus_find(&fx->m.bus, BUS_PIO, 0xf4)->name, "isa-debug-exit");
    assert_int_equal(fx->m.sim.cpu.x86.eip, 0xfff0);

    /* 8259s: master base 0x08, slave 0x70, nothing masked; IRQ 11 level. */
    outb(fx, 0x20, 0x11);
    outb(fx, 0x21, 0x08);
    outb(fx, 0x21, 0x04);
    outb(fx, 0x21, 0x01);
    outb(fx, 0xa0, 0x11);
    outb(fx, 0xa1, 0x70);
    outb(fx, 0xa1, 0x02);
    outb(fx, 0xa1, 0x01);
    outb(fx, 0x4d1, 0x08);
    /* PIIX3 PIRQA (config 0x60) -> IRQ 11. */
    outl(fx, 0xcf8, 0x80000860);
    outb(fx, 0xcfc, 11);

    /* Slot 5 INTA swizzles to PIRQA (QEMU's pci_slot_get_pirq). IRQ 11 is
     * slave IR3, level-triggered: its IRR bit follows the line. */
    irq_set_pci_intx(&fx->m.irq, 5, 0, true);
    assert_true(fx->m.sim.pic.chip[1].irr & 0x08);
    assert_true(i8259_intr_pending(&fx->m.sim.pic));
    irq_set_pci_intx(&fx->m.irq, 5, 0, false);
    assert_false(fx->m.sim.pic.chip[1].irr & 0x08);
    /* Slot 4 INTB shares the link; both must drop before the line does. */
    irq_set_pci_intx(&fx->m.irq, 5, 0, true);
    irq_set_pci_intx(&fx->m.irq, 4, 1, true);
    irq_set_pci_intx(&fx->m.irq, 5, 0, false);
    assert_true(fx->m.sim.pic.chip[1].irr & 0x08);
    /* Unrouting the link withdraws the request; routing it back restores. */
    outb(fx, 0xcfc, 0x80);
    assert_false(fx->m.sim.pic.chip[1].irr & 0x08);
    outb(fx, 0xcfc, 11);
    assert_true(fx->m.sim.pic.chip[1].irr & 0x08);
    assert_int_equal(i8259_ack(&fx->m.sim.pic), 0x73);
    irq_set_pci_intx(&fx->m.irq, 4, 1, false);
    /* An ISA source on the same line is OR'ed with the link. */
    outb(fx, 0xa0, 0x20); /* EOI */
    outb(fx, 0x20, 0x20);
    irq_set_isa(&fx->m.irq, 11, true);
    irq_set_pci_intx(&fx->m.irq, 5, 0, true);
    irq_set_isa(&fx->m.irq, 11, false);
    assert_true(fx->m.sim.pic.chip[1].irr & 0x08);
    irq_set_pci_intx(&fx->m.irq, 5, 0, false);
    assert_false(fx->m.sim.pic.chip[1].irr & 0x08);

    /* A reset puts the vCPU back at the reset vector. */
    fx->m.sim.cpu.x86.eip = 0x1234;
    machine_reset(&fx->m, false, "host-qmp-system-reset");
    assert_int_equal(fx->m.sim.cpu.x86.eip, 0xfff0);
    assert_int_equal(fx->n_resets, 1);
    destroy(fx);
}

static void test_sim_machine_refusals(void **state)
{
    char bios[32];
    struct dm_options opts;
    struct machine m;
    struct loop *loop;
    char *argv[] = {"xen-dm", "-M", "sim", "-bios", "/nonexistent/bios.bin", NULL};

    assert_int_equal(options_parse(5, argv, &opts), 0);
    assert_int_equal(loop_create(&loop), 0);
    assert_int_equal(machine_init(&m, &opts, loop), -ENOENT);
    options_free(&opts);

    write_bios(bios);
    {
        char *argv2[] = {"xen-dm", "-M", "sim", "-bios", bios, "-device",
                         "isa-debug-exit,iobase=0x20", NULL};

        /* The port is the PIC's. */
        assert_int_equal(options_parse(7, argv2, &opts), 0);
        assert_int_equal(machine_init(&m, &opts, loop), -EEXIST);
        options_free(&opts);
    }
    unlink(bios);
    loop_destroy(loop);
}

static void test_qemu_xen_flavour(void **state)
{
    static const char *const args[] = {"-machine", "xenfv", NULL};
    struct fixture *fx = build(args);

    assert_true(fx->m.has_pm && fx->m.has_hotplug && fx->m.has_platform);
    assert_int_equal(pcihp_gpe_bit(&fx->m.hotplug), 1);
    assert_non_null(bus_find(&fx->m.bus, BUS_PIO, 0xae00));
    assert_null(bus_find(&fx->m.bus, BUS_PIO, 0x10c0));
    /* Slots 0-2 (chipset, platform device) are not hot-pluggable. */
    assert_int_equal(inl(fx, 0xae0c) & 7, 0);
    assert_int_equal(inl(fx, 0xae0c) >> 3, 0x1fffffff);
    /* The PM block follows PMBA: nothing at 0xB004 until programmed. */
    assert_null(bus_find(&fx->m.bus, BUS_PIO, 0xb004));
    destroy(fx);
}

static void test_qemu_trad_flavour(void **state)
{
    static const char *const args[] = {"-M", "xenfv", "-vcpu_avail", "b", NULL};
    struct fixture *fx = build_flavour(args, true);

    assert_int_equal(pcihp_gpe_bit(&fx->m.hotplug), 3);
    assert_non_null(bus_find(&fx->m.bus, BUS_PIO, 0x10c0));
    assert_null(bus_find(&fx->m.bus, BUS_PIO, 0xae00));
    /* qemu-dm's PM block sits at 0xB000 with SCI_EN already set. */
    assert_int_equal(bus_read(&fx->m.bus, BUS_PIO, 0xb004, 2) & 1, 1);
    /* vCPUs 0, 1 and 3 online (0xb). */
    assert_int_equal(inb(fx, 0xaf00), 0x0b);
    destroy(fx);
}

static void test_layout_forced_and_machine_pc(void **state)
{
    static const char *const args[] = {"-machine", "pc,accel=xen",
                                       "-hotplug-layout", "qemu-trad", NULL};
    struct fixture *fx = build(args);

    assert_false(fx->m.has_platform);
    assert_null(pci_find_function(&fx->m.pci, MACHINE_PLATFORM_DEVFN));
    assert_int_equal(pcihp_gpe_bit(&fx->m.hotplug), 3);
    /* Without the platform device slot 2 is free for hot-plug. */
    assert_true(pcihp_hotpluggable(&fx->m.hotplug) & (1u << 2));
    destroy(fx);
}

static void test_no_acpi(void **state)
{
    static const char *const args[] = {"-no-acpi", NULL};
    struct fixture *fx = build(args);
    char err[200];

    assert_false(fx->m.has_pm);
    assert_false(fx->m.has_hotplug);
    assert_true(fx->m.has_platform);
    assert_int_equal(machine_device_add(&fx->m, "pci-testdev", "a", "5", err,
                                        sizeof(err)),
                     -EPERM);
    assert_non_null(strstr(err, "does not support hotplugging"));
    destroy(fx);
}

static void test_smp_cpu_map(void **state)
{
    static const char *const args[] = {"-smp", "3,maxcpus=8", NULL};
    struct fixture *fx = build(args);

    assert_int_equal(inb(fx, 0xaf00), 0x07);
    assert_int_equal(inb(fx, 0xaf01), 0x00);
    destroy(fx);
}

static void test_device_add_del_eject(void **state)
{
    static const char *const args[] = {NULL};
    struct fixture *fx = build(args);
    char err[200];

    assert_int_equal(machine_device_add(&fx->m, "pci-testdev", "t", "5", err,
                                        sizeof(err)), 0);
    assert_non_null(machine_find_device(&fx->m, "t"));
    assert_int_equal(inl(fx, 0xae00), 1u << 5);
    assert_int_equal(machine_device_del(&fx->m, "t", err, sizeof(err)), 0);
    assert_int_equal(machine_device_del(&fx->m, "t", err, sizeof(err)),
                     -EALREADY);
    assert_non_null(strstr(err, "already in the process of unplug"));
    assert_int_equal(fx->n_deleted, 0);
    outl(fx, 0xae08, 1u << 5);
    assert_int_equal(fx->n_deleted, 1);
    assert_string_equal(fx->deleted[0], "t");
    assert_null(machine_find_device(&fx->m, "t"));
    assert_null(pci_find_function(&fx->m.pci, PCI_DEVFN(5, 0)));
    assert_int_equal(machine_device_del(&fx->m, "t", err, sizeof(err)),
                     -ENODEV);
    destroy(fx);
}

static void test_reset_flushes_and_keeps(void **state)
{
    static const char *const args[] = {NULL};
    struct fixture *fx = build(args);
    char err[200];

    assert_int_equal(machine_device_add(&fx->m, "pci-testdev", "go", NULL, err,
                                        sizeof(err)), 0);
    assert_int_equal(machine_device_add(&fx->m, "pci-testdev", "stay", NULL,
                                        err, sizeof(err)), 0);
    /* First free hot-pluggable slots: 3 and 4. */
    assert_int_equal(machine_find_device(&fx->m, "go")->devfn, PCI_DEVFN(3, 0));
    assert_int_equal(machine_find_device(&fx->m, "stay")->devfn,
                     PCI_DEVFN(4, 0));
    assert_int_equal(machine_device_del(&fx->m, "go", err, sizeof(err)), 0);
    machine_reset(&fx->m, false, "host-qmp-system-reset");
    assert_int_equal(fx->n_resets, 1);
    assert_int_equal(fx->n_deleted, 1);
    assert_string_equal(fx->deleted[0], "go");
    assert_non_null(machine_find_device(&fx->m, "stay"));
    assert_int_equal(inl(fx, 0xae00), 1u << 4);
    assert_int_equal(inl(fx, 0xae04), 0);
    destroy(fx);
}

static void test_device_add_refusals(void **state)
{
    static const char *const args[] = {NULL};
    struct fixture *fx = build(args);
    char err[200];

    assert_int_equal(machine_device_add(&fx->m, "e1000", "x", NULL, err,
                                        sizeof(err)), -EINVAL);
    assert_int_equal(machine_device_add(&fx->m, "pci-testdev", "x", "1", err,
                                        sizeof(err)), -EBUSY);
    assert_int_equal(machine_device_add(&fx->m, "pci-testdev", "x", "g", err,
                                        sizeof(err)), -EINVAL);
    assert_int_equal(machine_device_add(&fx->m, "pci-testdev", "x", "5.8", err,
                                        sizeof(err)), -EINVAL);
    assert_int_equal(machine_device_add(&fx->m, "pci-testdev", "x", "5", err,
                                        sizeof(err)), 0);
    assert_int_equal(machine_device_add(&fx->m, "pci-testdev", "x", "6", err,
                                        sizeof(err)), -EEXIST);
    /* A slot whose removal is pending takes no new function. */
    assert_int_equal(machine_device_del(&fx->m, "x", err, sizeof(err)), 0);
    assert_int_equal(machine_device_add(&fx->m, "pci-testdev", "y", "5.1", err,
                                        sizeof(err)), -EBUSY);
    assert_null(machine_find_device(&fx->m, "y"));
    assert_null(pci_find_function(&fx->m.pci, PCI_DEVFN(5, 1)));
    /* Fill every free slot, then there is none left. */
    for (int i = 0; i < 40; i++) {
        char id[8];

        snprintf(id, sizeof(id), "f%d", i);
        if (machine_device_add(&fx->m, "pci-testdev", id, NULL, err,
                               sizeof(err)) < 0) {
            assert_int_equal(i, 28); /* slots 3, 4 and 6 .. 31 */
            assert_non_null(strstr(err, "no free"));
            break;
        }
    }
    destroy(fx);
}

/* --- pass-through through the machine ------------------------------------ */

static char pt_log[2048];

static void pt_logf(const char *fmt, ...)
{
    size_t len = strlen(pt_log);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(pt_log + len, sizeof(pt_log) - len, fmt, ap);
    va_end(ap);
}

static int pt_mmio(void *o, uint64_t gfn, uint64_t mfn, uint64_t nr, bool add)
{
    (void)o;
    pt_logf("mmio %s %llx %llx %llu;", add ? "add" : "del",
            (unsigned long long)gfn, (unsigned long long)mfn,
            (unsigned long long)nr);
    return 0;
}

static int pt_intx_bind(void *o, unsigned irq, uint8_t devfn, unsigned intx,
                        int *pirq)
{
    (void)o;
    *pirq = (int)irq;
    pt_logf("bind %u %02x %u;", irq, devfn, intx);
    return 0;
}

static void pt_intx_unbind(void *o, int pirq, uint8_t devfn, unsigned intx)
{
    (void)o;
    pt_logf("unbind %d %02x %u;", pirq, devfn, intx);
}

static void put_file(const char *dir, const char *name, const void *data,
                     size_t len)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

/* A one-BAR function (4 KiB at 0xf7d00000, INTA on irq 19) at 0000:05:00.0
 * under a fresh sysfs root, which XEN_DM_SYSFS_ROOT then points at. */
static void make_sysfs(char *root, size_t len)
{
    static const char res[] = "0x00000000f7d00000 0x00000000f7d00fff "
                              "0x0000000000040200\n";
    uint8_t config[256] = {0};
    char dir[256];

    snprintf(root, len, "/tmp/machine-sysfs-XXXXXX");
    assert_non_null(mkdtemp(root));
    snprintf(dir, sizeof(dir), "%s/bus", root);
    mkdir(dir, 0755);
    snprintf(dir, sizeof(dir), "%s/bus/pci", root);
    mkdir(dir, 0755);
    snprintf(dir, sizeof(dir), "%s/bus/pci/devices", root);
    mkdir(dir, 0755);
    snprintf(dir, sizeof(dir), "%s/bus/pci/devices/0000:05:00.0", root);
    assert_int_equal(mkdir(dir, 0755), 0);
    pci_set_word(&config[0], 0x14e4);
    pci_set_word(&config[2], 0x1639);
    config[0x0b] = 0x02;
    config[0x3d] = 1;
    put_file(dir, "config", config, sizeof(config));
    put_file(dir, "resource", res, strlen(res));
    put_file(dir, "irq", "19\n", 3);
    put_file(dir, "vendor", "0x14e4\n", 7);
    put_file(dir, "device", "0x1639\n", 7);
    assert_int_equal(setenv("XEN_DM_SYSFS_ROOT", root, 1), 0);
}

static void test_passthrough_add_del(void **state)
{
    static const char *const args[] = {NULL};
    struct fixture *fx = build(args);
    const struct passthrough_ops ops = {.mmio_map = pt_mmio,
                                        .intx_bind = pt_intx_bind,
                                        .intx_unbind = pt_intx_unbind};
    char root[64], err[200], cmd[128];
    int fd;

    (void)state;
    make_sysfs(root, sizeof(root));
    pt_log[0] = '\0';
    machine_set_passthrough_ops(&fx->m, &ops);
    assert_int_equal(machine_passthrough_add(&fx->m, "0000:06:00.0", -1, false,
                                             "gone", err, sizeof(err)),
                     -ENOENT);
    assert_string_equal(err, "host PCI device 0000:06:00.0 not found");
    assert_int_equal(machine_passthrough_add(&fx->m, "nonsense", -1, false,
                                             "bad", err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(machine_device_add(&fx->m, "xen-pci-passthrough", "q",
                                        NULL, err, sizeof(err)), -EINVAL);
    assert_int_equal(machine_passthrough_add(&fx->m, "0000:05:00.0",
                                             PCI_DEVFN(1, 0), false, "busy",
                                             err, sizeof(err)), -EBUSY);
    assert_string_equal(pt_log, "");
    assert_int_equal(machine_passthrough_add(&fx->m, "0000:05:00.0", -1, false,
                                             "pt", err, sizeof(err)), 0);
    assert_int_equal(machine_find_device(&fx->m, "pt")->devfn, PCI_DEVFN(3, 0));
    assert_string_equal(pt_log, "bind 19 18 0;");
    assert_int_equal(inl(fx, 0xae00), 1u << 3);
    /* The guest places the BAR and turns decoding on. */
    outl(fx, 0xcf8, 0x80001810);
    outl(fx, 0xcfc, 0xe0000000);
    outl(fx, 0xcf8, 0x80001804);
    outl(fx, 0xcfc, PCI_COMMAND_MEMORY);
    assert_string_equal(pt_log, "bind 19 18 0;mmio add e0000 f7d00 1;");
    /* Saving is refused while it is attached. */
    fd = open("/dev/null", O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(machine_save_state(&fx->m, fd), -EOPNOTSUPP);
    close(fd);
    pt_log[0] = '\0';
    assert_int_equal(machine_device_del(&fx->m, "pt", err, sizeof(err)), 0);
    assert_string_equal(pt_log, "");
    outl(fx, 0xae08, 1u << 3);
    assert_string_equal(pt_log, "mmio del e0000 f7d00 1;unbind 19 18 0;");
    assert_string_equal(fx->deleted[0], "pt");
    /* Released at exit: unmapped without the guest's say. */
    assert_int_equal(machine_passthrough_add(&fx->m, "0000:05:00.0",
                                             PCI_DEVFN(7, 0), true, "again",
                                             err, sizeof(err)), 0);
    pt_log[0] = '\0';
    machine_release_passthrough(&fx->m);
    assert_string_equal(pt_log, "unbind 19 38 0;");
    assert_null(machine_find_device(&fx->m, "again"));
    unsetenv("XEN_DM_SYSFS_ROOT");
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    assert_int_equal(system(cmd), 0);
    destroy(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qemu_xen_flavour),
        cmocka_unit_test(test_sim_machine_devices_and_pci_intx),
        cmocka_unit_test(test_sim_machine_refusals),
        cmocka_unit_test(test_qemu_trad_flavour),
        cmocka_unit_test(test_layout_forced_and_machine_pc),
        cmocka_unit_test(test_no_acpi),
        cmocka_unit_test(test_smp_cpu_map),
        cmocka_unit_test(test_device_add_del_eject),
        cmocka_unit_test(test_reset_flushes_and_keeps),
        cmocka_unit_test(test_device_add_refusals),
        cmocka_unit_test(test_passthrough_add_del),
    };

    log_set_level(LOG_ERR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
