/* x86emu throughput: a CPU-bound real-mode loop of simple ALU instructions
 * and a branch, with a known instruction count, in flat RAM reached through
 * the map_ram fast path. Prints numbers; never fails on timing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../x86emu/x86emu.h"

#define RAM_SIZE (1u << 20)
#define LOAD_ADDR 0x7c00u
#define INNER 50000u
#define OUTER_DEFAULT 400u

struct bench_machine {
    uint8_t *ram;
};

static uint8_t *bench_map_ram(void *opaque, uint32_t page, bool write)
{
    struct bench_machine *m = opaque;

    return page < RAM_SIZE ? m->ram + page : NULL;
}

static uint32_t bench_mem_read(void *opaque, uint32_t addr, unsigned size)
{
    return 0xffffffffu; /* nothing but RAM in this machine */
}

static void bench_mem_write(void *opaque, uint32_t addr, uint32_t value,
                            unsigned size)
{
}

static uint32_t bench_io_in(void *opaque, uint16_t port, unsigned size)
{
    return 0xffffffffu;
}

static void bench_io_out(void *opaque, uint16_t port, uint32_t value,
                         unsigned size)
{
}

static int bench_int_ack(void *opaque)
{
    return -1;
}

static const struct x86emu_ops bench_ops = {
    .mem_read = bench_mem_read,
    .mem_write = bench_mem_write,
    .io_in = bench_io_in,
    .io_out = bench_io_out,
    .int_ack = bench_int_ack,
    .map_ram = bench_map_ram,
};

/*      mov di, outer (400 unless given on the command line)
 * outer: mov cx, INNER
 * inner: add ax, bx
 *        xor dx, ax
 *        inc si
 *        dec cx
 *        jnz inner
 *        dec di
 *        jnz outer
 *        hlt
 * executes 1 + outer * (1 + 5 * INNER + 2) + 1 instructions. */
static uint8_t program[] = {
    0xbf, OUTER_DEFAULT & 0xff, OUTER_DEFAULT >> 8,
    0xb9, INNER & 0xff, INNER >> 8,
    0x01, 0xd8,
    0x31, 0xc2,
    0x46,
    0x49,
    0x75, 0xf8,
    0x4f,
    0x75, 0xf2,
    0xf4,
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    struct bench_machine m;
    struct x86emu *cpu = calloc(1, sizeof(*cpu));
    unsigned outer = argc > 1 ? (unsigned)atoi(argv[1]) : OUTER_DEFAULT;
    uint64_t expected;
    uint64_t executed;
    enum x86emu_stop stop;
    double t0, t1;

    m.ram = calloc(1, RAM_SIZE);
    if (!cpu || !m.ram) {
        fprintf(stderr, "bench_x86emu: out of memory\n");
        return 0;
    }
    if (outer < 1 || outer > 0xffff)
        outer = OUTER_DEFAULT;
    expected = 1 + (uint64_t)outer * (1 + 5 * INNER + 2) + 1;
    program[1] = outer & 0xff;
    program[2] = (uint8_t)(outer >> 8);
    memcpy(m.ram + LOAD_ADDR, program, sizeof(program));
    x86emu_init(cpu, X86EMU_MODEL_386, &bench_ops, &m);
    x86emu_load_segment_real(cpu, X86EMU_SEG_CS, 0);
    cpu->eip = LOAD_ADDR;

    /* A generous budget, so a broken core cannot loop forever. */
    t0 = now_s();
    do
        stop = x86emu_run(cpu, 10 * 1000 * 1000);
    while (stop == X86EMU_STOP_BUDGET && cpu->icount < 2 * expected);
    t1 = now_s();
    executed = cpu->icount;

    printf("x86emu: %.1f M instructions/s\n",
           (double)executed / (t1 - t0) / 1e6);
    if (stop != X86EMU_STOP_HALT || executed != expected)
        printf("x86emu: loop ended oddly (stop %d, %llu of %llu "
               "instructions)\n",
               stop, (unsigned long long)executed,
               (unsigned long long)expected);
    free(m.ram);
    free(cpu);
    return 0;
}
