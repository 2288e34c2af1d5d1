/* Unit tests for the software machine's interrupt routing (dm/sim.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../dm/machine.h"
#include "../../dm/options.h"

struct fixture {
    struct loop *loop;
    struct dm_options opts;
    struct machine m;
};

/* A 64 KiB firmware image of HLTs in a temporary file (removed at once). */
static struct fixture *build_sim(void)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    uint8_t image[64 << 10];
    char bios[32] = "/tmp/xdm-simXXXXXX";
    char *argv[] = {"xen-dm", "-machine", "sim", "-m", "16", "-bios", bios,
                    NULL};
    int fd;

    assert_non_null(fx);
    fd = mkstemp(bios);
    assert_true(fd >= 0);
    memset(image, 0xf4, sizeof(image));
    assert_int_equal(write(fd, image, sizeof(image)), (int)sizeof(image));
    close(fd);
    assert_int_equal(options_parse(7, argv, &fx->opts), 0);
    assert_int_equal(loop_create(&fx->loop), 0);
    assert_int_equal(machine_init(&fx->m, &fx->opts, fx->loop), 0);
    unlink(bios);
    return fx;
}

static void destroy(struct fixture *fx)
{
    machine_fini(&fx->m);
    loop_destroy(fx->loop);
    options_free(&fx->opts);
    free(fx);
}

static void outb(struct fixture *fx, uint16_t port, uint8_t v)
{
    bus_write(&fx->m.bus, BUS_PIO, port, v, 1);
}

/* Slots 3 and 11 both swizzle INTA onto PIRQC (8 slots apart, a multiple
 * of the 4 links). Each is its own source of the shared level: one device
 * lowering INTA must not withdraw the other's request. */
static void test_sim_intx_sources_eight_slots_apart(void **state)
{
    struct fixture *fx = build_sim();

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
    /* PIIX3 PIRQC (config 0x62) -> IRQ 11. */
    bus_write(&fx->m.bus, BUS_PIO, 0xcf8, 0x80000860, 4);
    outb(fx, 0xcfe, 11);

    irq_set_pci_intx(&fx->m.irq, 3, 0, true);
    assert_true(fx->m.sim.pic.chip[1].irr & 0x08);
    irq_set_pci_intx(&fx->m.irq, 11, 0, true);
    irq_set_pci_intx(&fx->m.irq, 11, 0, false);
    /* Slot 3 still asserts INTA. */
    assert_true(fx->m.sim.pic.chip[1].irr & 0x08);
    irq_set_pci_intx(&fx->m.irq, 3, 0, false);
    assert_false(fx->m.sim.pic.chip[1].irr & 0x08);

    /* The same for the highest slots: 31 INTD and 23 INTD share PIRQB
     * (link (31 + 3 - 1) & 3 = 1). */
    bus_write(&fx->m.bus, BUS_PIO, 0xcf8, 0x80000860, 4);
    outb(fx, 0xcfd, 11);
    irq_set_pci_intx(&fx->m.irq, 31, 3, true);
    irq_set_pci_intx(&fx->m.irq, 23, 3, true);
    irq_set_pci_intx(&fx->m.irq, 23, 3, false);
    assert_true(fx->m.sim.pic.chip[1].irr & 0x08);
    irq_set_pci_intx(&fx->m.irq, 31, 3, false);
    assert_false(fx->m.sim.pic.chip[1].irr & 0x08);
    destroy(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_intx_sources_eight_slots_apart),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
