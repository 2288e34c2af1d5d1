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

/* A 64 KiB firmware image, HLTs around code (placed at f000:0000 and
 * jumped to from the reset vector) in a temporary file removed at once;
 * isa-debug-exit at port 0xf4, one byte. */
static struct fixture *build_sim_with(const uint8_t *code, size_t code_len,
                                      const uint8_t *handler,
                                      size_t handler_len)
{
    static const uint8_t reset_jump[] = {0xea, 0x00, 0x00, 0x00, 0xf0};
    struct fixture *fx = calloc(1, sizeof(*fx));
    static uint8_t image[64 << 10];
    char bios[32] = "/tmp/xdm-simXXXXXX";
    char *argv[] = {"xen-dm", "-machine", "sim", "-m", "16", "-bios", bios,
                    "-device", "isa-debug-exit,iobase=0xf4,iosize=1", NULL};
    int fd;

    assert_non_null(fx);
    fd = mkstemp(bios);
    assert_true(fd >= 0);
    memset(image, 0xf4, sizeof(image));
    memcpy(image, code, code_len);
    memcpy(image + 0x100, handler, handler_len);
    memcpy(image + 0xfff0, reset_jump, sizeof(reset_jump));
    assert_int_equal(write(fd, image, sizeof(image)), (int)sizeof(image));
    close(fd);
    assert_int_equal(options_parse(9, argv, &fx->opts), 0);
    assert_int_equal(loop_create(&fx->loop), 0);
    assert_int_equal(machine_init(&fx->m, &fx->opts, fx->loop), 0);
    unlink(bios);
    return fx;
}

static struct fixture *build_sim(void)
{
    static const uint8_t hlt = 0xf4;

    return build_sim_with(&hlt, 1, &hlt, 1);
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

static void on_watchdog(void *opaque)
{
    loop_quit(opaque, 99);
}

/* A guest that programs a one-shot (mode 0) PIT interrupt and halts in the
 * same slice, while no device had a deadline when the slice began: the
 * run loop must wait for the new deadline, not the stale "never" (which
 * sleeps until some unrelated fd event, if ever). Linux's one-shot PIT
 * clockevent idles exactly this way. The IRQ 0 handler exits with 0x2a;
 * a 20 s watchdog ends a hung run with 99. */
static void test_sim_halt_waits_for_deadline_set_in_slice(void **state)
{
    static const uint8_t code[] = {
        0xfa,                               /* 00 cli */
        0x31, 0xc0,                         /* 01 xor ax, ax */
        0x8e, 0xd8,                         /* 03 mov ds, ax */
        0x8e, 0xd0,                         /* 05 mov ss, ax */
        0xbc, 0x00, 0x7c,                   /* 07 mov sp, 0x7c00 */
        0xc7, 0x06, 0x20, 0x00, 0x00, 0x01, /* 0a mov [0x20], 0x0100 */
        0xc7, 0x06, 0x22, 0x00, 0x00, 0xf0, /* 10 mov [0x22], 0xf000 */
        /* PIT channel 0, mode 0, count 2: expires at once, so the next
         * slices start with no deadline at all. */
        0xb0, 0x30, 0xe6, 0x43,             /* 16 out 0x43, 0x30 */
        0xb0, 0x02, 0xe6, 0x40,             /* 1a out 0x40, 2 */
        0xb0, 0x00, 0xe6, 0x40,             /* 1e out 0x40, 0 */
        /* Spin ~2M instructions: many slices go by. */
        0xbb, 0x20, 0x00,                   /* 22 mov bx, 0x20 */
        0xb9, 0xff, 0xff,                   /* 25 mov cx, 0xffff */
        0xe2, 0xfe,                         /* 28 loop 0x28 */
        0x4b,                               /* 2a dec bx */
        0x75, 0xf8,                         /* 2b jnz 0x25 */
        /* Master 8259: base 8, only IRQ 0 (ICW1 forgets the old edge). */
        0xb0, 0x11, 0xe6, 0x20,             /* 2d ICW1 */
        0xb0, 0x08, 0xe6, 0x21,             /* 31 ICW2 */
        0xb0, 0x04, 0xe6, 0x21,             /* 35 ICW3 */
        0xb0, 0x01, 0xe6, 0x21,             /* 39 ICW4 */
        0xb0, 0xfe, 0xe6, 0x21,             /* 3d OCW1 */
        /* One-shot in 1193 ticks (1 ms), then sleep. */
        0xb0, 0x30, 0xe6, 0x43,             /* 41 out 0x43, 0x30 */
        0xb0, 0xa9, 0xe6, 0x40,             /* 45 out 0x40, 0xa9 */
        0xb0, 0x04, 0xe6, 0x40,             /* 49 out 0x40, 0x04 */
        0xfb,                               /* 4d sti */
        0xf4,                               /* 4e hlt */
        0xeb, 0xfd,                         /* 4f jmp 0x4e */
    };
    static const uint8_t handler[] = {
        0xb0, 0x2a, 0xe6, 0xf4,             /* out 0xf4, 0x2a: exit */
        0xf4, 0xeb, 0xfd,                   /* hlt; jmp hlt */
    };
    struct fixture *fx = build_sim_with(code, sizeof(code), handler,
                                        sizeof(handler));
    struct loop_timer watchdog;

    loop_timer_init(fx->loop, &watchdog, on_watchdog, fx->loop);
    loop_timer_arm(&watchdog, 20000000000ull);
    assert_int_equal(sim_run(&fx->m.sim), (0x2a << 1) | 1);
    loop_timer_cancel(&watchdog);
    destroy(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_intx_sources_eight_slots_apart),
        cmocka_unit_test(test_sim_halt_waits_for_deadline_set_in_slice),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
