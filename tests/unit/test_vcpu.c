/* Unit tests for the software-CPU producer (ioreq/cpu.c): the physical map
 * (RAM, the firmware at 4 GiB and below 1 MiB, the VGA window and legacy
 * segments steered by PAM modes), port and MMIO accesses reaching bus
 * devices through the dispatcher, dropped ROM writes, INTA through the
 * ops, and refused sizes. Programs are hand-assembled real-mode code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../hw/bus.h"
#include "../../ioreq/cpu.h"
#include "../../ioreq/dispatch.h"
#include "../../ioreq/ram.h"

#define RAM_SIZE (2u << 20)
#define ROM_SIZE (128u << 10)
#define CODE 0x1000u

struct fixture {
    struct bus bus;
    struct local_ram ram;
    struct dispatcher d;
    struct vcpu cpu;
    uint8_t rom[ROM_SIZE];
    /* Ports 0x80-0x83 that record writes, and 4 KiB of MMIO at 0xA0000. */
    struct bus_region port, mmio;
    uint32_t port_values[16];
    unsigned n_port;
    uint8_t mmio_mem[0x1000];
    unsigned mmio_accesses;
    int acks;
    int vector;
};

static uint64_t port_read(void *opaque, uint64_t off, unsigned size)
{
    return 0x42;
}

static void port_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    struct fixture *f = opaque;

    if (f->n_port < 16)
        f->port_values[f->n_port++] = (uint32_t)value;
}

static const struct bus_region_ops port_ops = {
    .read = port_read, .write = port_write, .max_access = 4};

static uint64_t mmio_read(void *opaque, uint64_t off, unsigned size)
{
    struct fixture *f = opaque;
    uint64_t v = 0;

    f->mmio_accesses++;
    memcpy(&v, f->mmio_mem + off, size);
    return v;
}

static void mmio_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    struct fixture *f = opaque;

    f->mmio_accesses++;
    memcpy(f->mmio_mem + off, &value, size);
}

static const struct bus_region_ops mmio_ops = {
    .read = mmio_read, .write = mmio_write, .max_access = 4};

static int test_int_ack(void *opaque)
{
    struct fixture *f = opaque;

    f->acks++;
    return f->vector;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct guest_memory mem;
    struct vcpu_ops ops = {.int_ack = test_int_ack, .opaque = f};

    assert_non_null(f);
    bus_init(&f->bus);
    assert_int_equal(local_ram_init(&f->ram, RAM_SIZE), 0);
    local_ram_accessor(&f->ram, &mem);
    dispatcher_init(&f->d, &f->bus, &mem, NULL);
    bus_region_init(&f->port, "port80", 4, &port_ops, f);
    assert_int_equal(bus_map(&f->bus, BUS_PIO, &f->port, 0x80), 0);
    bus_region_init(&f->mmio, "vga", sizeof(f->mmio_mem), &mmio_ops, f);
    assert_int_equal(bus_map(&f->bus, BUS_MMIO, &f->mmio, 0xa0000), 0);
    /* The firmware: a recognisable pattern, and at the reset vector
     * "mov al, 0x5a; out 0x80, al; hlt". */
    for (unsigned i = 0; i < ROM_SIZE; i++)
        f->rom[i] = (uint8_t)(i * 7 + 1);
    memcpy(f->rom + ROM_SIZE - 16, "\xb0\x5a\xe6\x80\xf4", 5);
    f->vector = 0x20;
    assert_int_equal(vcpu_init(&f->cpu, &f->d, f->ram.base, RAM_SIZE, f->rom,
                               ROM_SIZE, &ops), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    vcpu_fini(&f->cpu);
    bus_fini(&f->bus);
    local_ram_fini(&f->ram);
    free(f);
    return 0;
}

/* Runs code placed at 0000:CODE until HLT. */
static void run_code(struct fixture *f, const void *code, size_t len)
{
    memcpy(f->ram.base + CODE, code, len);
    vcpu_reset(&f->cpu); /* out of the last HLT */
    x86emu_load_segment_real(&f->cpu.x86, X86EMU_SEG_CS, 0);
    f->cpu.x86.eip = CODE;
    assert_int_equal(vcpu_run(&f->cpu, 100000), X86EMU_STOP_HALT);
}

static void test_reset_vector_runs_from_the_rom_top(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(vcpu_run(&f->cpu, 100), X86EMU_STOP_HALT);
    assert_int_equal(f->n_port, 1);
    assert_int_equal(f->port_values[0], 0x5a);
    assert_int_equal(f->cpu.stats.pio, 1);
}

static void test_rom_alias_below_1mib_and_dropped_writes(void **state)
{
    struct fixture *f = *state;
    /* mov ax, 0xe000; mov ds, ax; mov al, [0]; out 0x80, al;
     * mov ax, 0xf000; mov ds, ax; mov al, [0xfff0]; out 0x80, al;
     * mov byte [0xfff0], 0; mov al, [0xfff0]; out 0x80, al; hlt */
    static const uint8_t code[] = {
        0xb8, 0x00, 0xe0, 0x8e, 0xd8, 0xa0, 0x00, 0x00, 0xe6, 0x80,
        0xb8, 0x00, 0xf0, 0x8e, 0xd8, 0xa0, 0xf0, 0xff, 0xe6, 0x80,
        0xc6, 0x06, 0xf0, 0xff, 0x00, 0xa0, 0xf0, 0xff, 0xe6, 0x80, 0xf4};

    run_code(f, code, sizeof(code));
    assert_int_equal(f->n_port, 3);
    /* 128 KiB image: its first byte is at 0xE0000, its reset vector at
     * 0xFFFF0 as well as 0xFFFFFFF0. */
    assert_int_equal(f->port_values[0], f->rom[0]);
    assert_int_equal(f->port_values[1], 0xb0);
    assert_int_equal(f->port_values[2], 0xb0);
    assert_int_equal(f->cpu.stats.rom_writes, 1);
    /* The RAM under the ROM was not touched either. */
    assert_int_equal(f->ram.base[0xffff0], 0);
}

static void test_vga_window_is_mmio(void **state)
{
    struct fixture *f = *state;
    /* mov ax, 0xa000; mov es, ax; mov word [es:0x10], 0x1234;
     * mov ax, [es:0x10]; out 0x80, ax; hlt */
    static const uint8_t code[] = {
        0xb8, 0x00, 0xa0, 0x8e, 0xc0, 0x26, 0xc7, 0x06, 0x10, 0x00, 0x34,
        0x12, 0x26, 0xa1, 0x10, 0x00, 0xe7, 0x80, 0xf4};

    run_code(f, code, sizeof(code));
    assert_int_equal(f->mmio_accesses, 2);
    assert_int_equal(f->mmio_mem[0x10], 0x34);
    assert_int_equal(f->port_values[0], 0x1234);
    assert_int_equal(f->ram.base[0xa0010], 0);
    assert_int_equal(f->cpu.stats.mmio, 2);
}

static void test_unassigned_memory_reads_all_ones(void **state)
{
    struct fixture *f = *state;
    /* mov ax, 0xc000; mov ds, ax; mov byte [0], 0x11; mov al, [0];
     * out 0x80, al; hlt  (0xC0000: legacy segment 0, mode 0, no ROM) */
    static const uint8_t code[] = {
        0xb8, 0x00, 0xc0, 0x8e, 0xd8, 0xc6, 0x06, 0x00, 0x00, 0x11,
        0xa0, 0x00, 0x00, 0xe6, 0x80, 0xf4};

    run_code(f, code, sizeof(code));
    assert_int_equal(f->port_values[0], 0xff);
    assert_int_equal(f->cpu.stats.unassigned, 2);
    assert_int_equal(f->ram.base[0xc0000], 0);
}

static void test_legacy_modes_steer_reads_and_writes(void **state)
{
    struct fixture *f = *state;
    /* mov ax, 0xf000; mov ds, ax; mov byte [0x100], 0x77; mov al, [0x100];
     * out 0x80, al; hlt */
    static const uint8_t code[] = {
        0xb8, 0x00, 0xf0, 0x8e, 0xd8, 0xc6, 0x06, 0x00, 0x01, 0x77,
        0xa0, 0x00, 0x01, 0xe6, 0x80, 0xf4};
    uint8_t rom_byte = f->rom[ROM_SIZE - 0x10000 + 0x100];

    /* Writes to RAM, reads from the ROM (firmware copying itself). */
    vcpu_set_legacy_mode(&f->cpu, 12, VCPU_LEGACY_WRITE_RAM);
    run_code(f, code, sizeof(code));
    assert_int_equal(f->port_values[0], rom_byte);
    assert_int_equal(f->ram.base[0xf0100], 0x77);
    /* Reads and writes in RAM. */
    vcpu_set_legacy_mode(&f->cpu, 12, VCPU_LEGACY_READ_RAM | VCPU_LEGACY_WRITE_RAM);
    f->ram.base[0xf0100] = 0x33;
    f->n_port = 0;
    run_code(f, code, sizeof(code));
    assert_int_equal(f->port_values[0], 0x77);
    /* Read-only shadow: the write is dropped as a ROM write would be. */
    vcpu_set_legacy_mode(&f->cpu, 12, VCPU_LEGACY_READ_RAM);
    f->ram.base[0xf0100] = 0x33;
    f->n_port = 0;
    run_code(f, code, sizeof(code));
    assert_int_equal(f->port_values[0], 0x33);
    assert_int_equal(f->ram.base[0xf0100], 0x33);
}

static void test_interrupts_are_acknowledged_through_the_ops(void **state)
{
    struct fixture *f = *state;
    /* Handler at 0000:2000: "mov al, 0x99; out 0x80, al; iret". Main:
     * sti; hlt; mov al, 1; out 0x80, al; hlt */
    static const uint8_t handler[] = {0xb0, 0x99, 0xe6, 0x80, 0xcf};
    static const uint8_t code[] = {0xfb, 0xf4, 0xb0, 0x01, 0xe6, 0x80, 0xf4};

    memcpy(f->ram.base + 0x2000, handler, sizeof(handler));
    f->ram.base[0x20 * 4 + 0] = 0x00;
    f->ram.base[0x20 * 4 + 1] = 0x20;
    memcpy(f->ram.base + CODE, code, sizeof(code));
    x86emu_load_segment_real(&f->cpu.x86, X86EMU_SEG_CS, 0);
    f->cpu.x86.eip = CODE;
    assert_int_equal(vcpu_run(&f->cpu, 1000), X86EMU_STOP_HALT);
    assert_int_equal(f->acks, 0);
    vcpu_set_intr(&f->cpu, true);
    f->vector = 0x20;
    /* The handler runs once; the line then drops before the next HLT. */
    assert_int_equal(vcpu_run(&f->cpu, 3), X86EMU_STOP_BUDGET);
    vcpu_set_intr(&f->cpu, false);
    assert_int_equal(vcpu_run(&f->cpu, 1000), X86EMU_STOP_HALT);
    assert_int_equal(f->acks, 1);
    assert_int_equal(f->n_port, 2);
    assert_int_equal(f->port_values[0], 0x99);
    assert_int_equal(f->port_values[1], 0x01);
}

static void test_kick_ends_a_run(void **state)
{
    struct fixture *f = *state;
    static const uint8_t code[] = {0xeb, 0xfe}; /* jmp $ */

    memcpy(f->ram.base + CODE, code, sizeof(code));
    x86emu_load_segment_real(&f->cpu.x86, X86EMU_SEG_CS, 0);
    f->cpu.x86.eip = CODE;
    vcpu_kick(&f->cpu);
    assert_int_equal(vcpu_run(&f->cpu, 1000000), X86EMU_STOP_REQUEST);
    assert_true(f->cpu.x86.icount < 1000000);
}

static void test_bad_sizes_are_refused(void **state)
{
    struct fixture *f = *state;
    struct vcpu c;

    assert_int_equal(vcpu_init(&c, &f->d, f->ram.base, RAM_SIZE, f->rom, 1000, NULL), -EINVAL);
    assert_int_equal(vcpu_init(&c, &f->d, f->ram.base, RAM_SIZE, f->rom, 0, NULL), -EINVAL);
    assert_int_equal(vcpu_init(&c, &f->d, f->ram.base, RAM_SIZE, f->rom, 2u << 20, NULL), -EINVAL);
    assert_int_equal(vcpu_init(&c, &f->d, f->ram.base, 512u << 10, f->rom, ROM_SIZE, NULL), -EINVAL);
    assert_int_equal(vcpu_init(&c, &f->d, f->ram.base, VCPU_RAM_MAX + 4096, f->rom, ROM_SIZE, NULL),
                     -EINVAL);
    assert_int_equal(vcpu_init(&c, NULL, f->ram.base, RAM_SIZE, f->rom, ROM_SIZE, NULL), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reset_vector_runs_from_the_rom_top, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rom_alias_below_1mib_and_dropped_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vga_window_is_mmio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unassigned_memory_reads_all_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_modes_steer_reads_and_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupts_are_acknowledged_through_the_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kick_ends_a_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_sizes_are_refused, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
