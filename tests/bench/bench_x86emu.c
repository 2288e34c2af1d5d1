/* x86emu throughput: a CPU-bound loop of simple ALU instructions and a
 * branch, with a known instruction count, in flat RAM reached through the
 * map_ram fast path: once in real mode, once as 32-bit code in flat
 * protected mode with paging on, and once in real mode with the INTR line
 * held high while IF=0 (firmware that has not yet masked its PIC): that
 * case must cost nothing. Prints numbers; never fails on timing. */
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
static uint8_t program16[] = {
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

/* The same loop with 32-bit registers, in a 32-bit code segment. */
static uint8_t program32[] = {
    0xbf, OUTER_DEFAULT & 0xff, OUTER_DEFAULT >> 8, 0, 0, /* mov edi, outer */
    0xb9, INNER & 0xff, INNER >> 8, 0, 0,                 /* mov ecx, INNER */
    0x01, 0xd8,                                           /* add eax, ebx */
    0x31, 0xc2,                                           /* xor edx, eax */
    0x46,                                                 /* inc esi */
    0x49,                                                 /* dec ecx */
    0x75, 0xf8,                                           /* jnz inner */
    0x4f,                                                 /* dec edi */
    0x75, 0xf0,                                           /* jnz outer */
    0xf4,                                                 /* hlt */
};

/* Page tables for the protected-mode run: identity-mapped 4 KiB pages
 * over the whole RAM. */
#define PAGE_DIR 0x80000u
#define PAGE_TABLE 0x81000u

static void enter_flat_paged(struct x86emu *cpu, struct bench_machine *m)
{
    uint32_t pde = PAGE_TABLE | 7;

    memcpy(m->ram + PAGE_DIR, &pde, 4);
    for (uint32_t i = 0; i < RAM_SIZE / 4096; i++) {
        uint32_t pte = i << 12 | 7;

        memcpy(m->ram + PAGE_TABLE + i * 4, &pte, 4);
    }
    for (unsigned i = 0; i < X86EMU_SEG_COUNT; i++) {
        cpu->seg[i].selector = i == X86EMU_SEG_CS ? 0x08 : 0x10;
        cpu->seg[i].base = 0;
        cpu->seg[i].limit = 0xffffffffu;
        cpu->seg[i].attr = i == X86EMU_SEG_CS ? 0xc09b : 0xc093;
    }
    cpu->cr3 = PAGE_DIR;
    cpu->cr0 = X86EMU_CR0_PE | X86EMU_CR0_PG;
    x86emu_segments_changed(cpu);
    x86emu_flush_tlb(cpu);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs the loop once; returns instructions per second. */
static double bench_run(struct bench_machine *m, bool protected_mode,
                        bool intr_held, unsigned outer)
{
    struct x86emu *cpu = calloc(1, sizeof(*cpu));
    uint64_t expected = 1 + (uint64_t)outer * (1 + 5 * INNER + 2) + 1;
    enum x86emu_stop stop;
    double t0, t1;

    if (!cpu)
        return 0;
    memset(m->ram, 0, RAM_SIZE);
    x86emu_init(cpu, X86EMU_MODEL_386, &bench_ops, m);
    if (protected_mode) {
        program32[1] = outer & 0xff;
        program32[2] = (uint8_t)(outer >> 8);
        memcpy(m->ram + LOAD_ADDR, program32, sizeof(program32));
        enter_flat_paged(cpu, m);
    } else {
        program16[1] = outer & 0xff;
        program16[2] = (uint8_t)(outer >> 8);
        memcpy(m->ram + LOAD_ADDR, program16, sizeof(program16));
        x86emu_load_segment_real(cpu, X86EMU_SEG_CS, 0);
    }
    cpu->eip = LOAD_ADDR;
    x86emu_set_intr(cpu, intr_held); /* IF is clear: never taken */

    /* A generous budget, so a broken core cannot loop forever. */
    t0 = now_s();
    do
        stop = x86emu_run(cpu, 10 * 1000 * 1000);
    while (stop == X86EMU_STOP_BUDGET && cpu->icount < 2 * expected);
    t1 = now_s();
    if (stop != X86EMU_STOP_HALT || cpu->icount != expected)
        printf("x86emu: loop ended oddly (stop %d, %llu of %llu "
               "instructions)\n",
               stop, (unsigned long long)cpu->icount,
               (unsigned long long)expected);
    expected = cpu->icount;
    free(cpu);
    return (double)expected / (t1 - t0);
}

int main(int argc, char **argv)
{
    struct bench_machine m;
    unsigned outer = argc > 1 ? (unsigned)atoi(argv[1]) : OUTER_DEFAULT;
    double real_ips, pm_ips, masked_ips;

    m.ram = calloc(1, RAM_SIZE);
    if (!m.ram) {
        fprintf(stderr, "bench_x86emu: out of memory\n");
        return 0;
    }
    if (outer < 1 || outer > 0xffff)
        outer = OUTER_DEFAULT;
    real_ips = bench_run(&m, false, false, outer);
    pm_ips = bench_run(&m, true, false, outer);
    masked_ips = bench_run(&m, false, true, outer);
    printf("x86emu: %.1f M instructions/s\n", real_ips / 1e6);
    printf("x86emu (32-bit protected mode, paging): %.1f M instructions/s\n",
           pm_ips / 1e6);
    printf("x86emu (INTR pending, IF=0): %.1f M instructions/s\n",
           masked_ips / 1e6);
    free(m.ram);
    return 0;
}
