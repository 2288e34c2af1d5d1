/* fuzz_x86emu: arbitrary code from an arbitrary register state, on a
 * machine whose callbacks misbehave.
 *
 * The entry point is LLVMFuzzerTestOneInput. `make fuzz` links it with
 * libFuzzer (clang, ASan, UBSan); tests/fuzz/replay.c links it with a small
 * main() that runs it over files, which is how `make check` replays
 * tests/fuzz/regressions/ and tests/fuzz/corpus/ with the normal compiler.
 *
 * Input layout (little-endian; a short input is padded with zeros, so the
 * all-zero header is the CPU's reset state with CS:IP = 0:0):
 *
 *   off  size  field
 *     0     1  flags: bit 0 model 286, bit 1 A20 off, bit 2 CR0.PE,
 *              bit 3 CR0.PG, bit 4 INTR asserted at start, bit 5 NMI at
 *              start, bit 6 no map_ram callback at all
 *     1     1  chaos: how often a callback misbehaves (n/256 per call)
 *     2     8  seed of the generator behind every callback decision
 *    10    32  EAX ECX EDX EBX ESP EBP ESI EDI
 *    42     4  EFLAGS (through x86emu_set_eflags)
 *    46     4  EIP (cut to 16 bits while CS is a 16-bit segment)
 *    50    12  ES CS SS DS FS GS selectors (bases = selector << 4)
 *    62     6  one shape byte per segment register, 0 = as after reset:
 *              bit 0 limit 4 GiB, bit 1 D/B, bit 2 expand-down data,
 *              bit 3 limit 0, bit 4 base from the selector's high byte
 *              << 24 as well (so code can live outside the first MiB),
 *              bits 5-7 replace the access byte's type nibble
 *    68     2  IDTR limit     70  4  IDTR base
 *    74     2  GDTR limit     76  4  GDTR base
 *    80     4  CR3 (bits 31-12); bit 4 is CR4.PSE
 *    84     1  CR0 low bits MP/EM/TS (bits 1-3)
 *    85     2  instruction budget (cut to MAX_INSNS)
 *    87     1  RAM filler XOR 0xF4: RAM outside the code is HLT by
 *              default, so a jump into nowhere ends the run quickly
 *    88        code: copied into RAM at CS.base + EIP (RAM wraps at 64 KiB)
 *
 * The machine: 64 KiB of RAM aliased through the whole address space,
 * except MMIO holes (0xA0000-0xBFFFF, every page whose number is 13 modulo
 * 16 and everything at or above 0xFEC00000) and a read-only page (number 14
 * modulo 16: ROM, written through mem_write and ignored). MMIO reads
 * return garbage that depends on the address only. The callbacks, at the
 * chaos rate, return NULL from map_ram for RAM (the slow path must then
 * give the same bytes), return -1, huge or negative vectors from int_ack,
 * and call x86emu_request_stop/set_intr/nmi/flush_tlb/set_a20 from inside
 * an instruction.
 *
 * A crash, sanitizer report or broken invariant (checked below: the API's
 * promises, not guesses about instruction semantics) is a finding. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../x86emu/x86emu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR_SIZE 88
#define RAM_SIZE 0x10000u
#define RAM_MASK (RAM_SIZE - 1)
#define MAX_INSNS 1024u
#define MAX_RUNS 64

enum {
    FUZZ_F_286 = 1u << 0,
    FUZZ_F_A20_OFF = 1u << 1,
    FUZZ_F_PE = 1u << 2,
    FUZZ_F_PG = 1u << 3,
    FUZZ_F_INTR = 1u << 4,
    FUZZ_F_NMI = 1u << 5,
    FUZZ_F_NO_MAP_RAM = 1u << 6,
};

struct fuzz_machine {
    struct x86emu cpu;
    uint8_t ram[RAM_SIZE];
    uint64_t rng;
    unsigned chaos;
    bool in_run; /* callbacks may only poke the CPU while it runs */
    bool irq_sent;     /* INTR or NMI raised: see check_stop_repeats */
    bool a20_toggled;  /* likewise */
    uint64_t mmio_seed;
};

static uint64_t fuzz_next(struct fuzz_machine *m)
{
    /* xorshift64*: deterministic per input, so every finding replays. */
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return m->rng * 0x2545f4914f6cdd1dull;
}

static bool fuzz_misbehave(struct fuzz_machine *m)
{
    return (fuzz_next(m) & 0xff) < m->chaos;
}

enum fuzz_page_kind { PAGE_RAM, PAGE_ROM, PAGE_MMIO };

static enum fuzz_page_kind page_kind(uint32_t addr)
{
    uint32_t pfn = addr >> 12;

    if (addr >= 0xfec00000u || (addr >= 0xa0000u && addr < 0xc0000u) ||
        (pfn & 15) == 13)
        return PAGE_MMIO;
    if ((pfn & 15) == 14)
        return PAGE_ROM;
    return PAGE_RAM;
}

/* Something a real machine's device might do in the middle of an access. */
static void fuzz_poke_cpu(struct fuzz_machine *m)
{
    if (!m->in_run || !fuzz_misbehave(m))
        return;
    switch (fuzz_next(m) % 6) {
    case 0:
        x86emu_request_stop(&m->cpu);
        break;
    case 1:
        if (fuzz_next(m) & 1) {
            x86emu_set_intr(&m->cpu, true);
            m->irq_sent = true;
        } else {
            x86emu_set_intr(&m->cpu, false);
        }
        break;
    case 2:
        x86emu_nmi(&m->cpu);
        m->irq_sent = true;
        break;
    case 3:
        x86emu_flush_tlb(&m->cpu);
        break;
    case 4:
        x86emu_set_a20(&m->cpu, fuzz_next(m) & 1);
        m->a20_toggled = true;
        break;
    default:
        break;
    }
}

static uint32_t ram_read(const struct fuzz_machine *m, uint32_t addr,
                         unsigned size)
{
    uint32_t v = 0;

    for (unsigned i = 0; i < size; i++)
        v |= (uint32_t)m->ram[(addr + i) & RAM_MASK] << (8 * i);
    return v;
}

/* Garbage, but the same garbage for the same address within one input,
 * so that an instruction that reads its descriptors or page tables from a
 * hole behaves the same when it runs again. */
static uint32_t mmio_value(const struct fuzz_machine *m, uint32_t addr)
{
    uint64_t x = (m->mmio_seed ^ addr) * 0x9e3779b97f4a7c15ull;

    return (uint32_t)(x >> 29);
}

static uint32_t fuzz_mem_read(void *opaque, uint32_t addr, unsigned size)
{
    struct fuzz_machine *m = opaque;

    if (size != 1 && size != 2 && size != 4)
        abort(); /* the callback contract */
    if ((addr & 0xfff) + size > 0x1000)
        abort(); /* page crossings must arrive as bytes */
    fuzz_poke_cpu(m);
    if (page_kind(addr) == PAGE_MMIO)
        return mmio_value(m, addr);
    return ram_read(m, addr, size);
}

static void fuzz_mem_write(void *opaque, uint32_t addr, uint32_t value,
                           unsigned size)
{
    struct fuzz_machine *m = opaque;

    if (size != 1 && size != 2 && size != 4)
        abort();
    if ((addr & 0xfff) + size > 0x1000)
        abort();
    fuzz_poke_cpu(m);
    if (page_kind(addr) != PAGE_RAM)
        return;
    for (unsigned i = 0; i < size; i++)
        m->ram[(addr + i) & RAM_MASK] = (uint8_t)(value >> (8 * i));
}

static uint32_t fuzz_io_in(void *opaque, uint16_t port, unsigned size)
{
    struct fuzz_machine *m = opaque;

    if (size != 1 && size != 2 && size != 4)
        abort();
    fuzz_poke_cpu(m);
    return (uint32_t)fuzz_next(m);
}

static void fuzz_io_out(void *opaque, uint16_t port, uint32_t value,
                        unsigned size)
{
    struct fuzz_machine *m = opaque;

    if (size != 1 && size != 2 && size != 4)
        abort();
    fuzz_poke_cpu(m);
}

static int fuzz_int_ack(void *opaque)
{
    struct fuzz_machine *m = opaque;
    static const int odd[] = {-1, -2, 256, 1000, 0x7fffffff, -0x7fffffff - 1};

    fuzz_poke_cpu(m);
    if (fuzz_misbehave(m))
        return odd[fuzz_next(m) % (sizeof(odd) / sizeof(odd[0]))];
    return (int)(fuzz_next(m) & 0xff);
}

static void fuzz_halt(void *opaque)
{
    struct fuzz_machine *m = opaque;

    fuzz_poke_cpu(m);
}

static uint8_t *fuzz_map_ram(void *opaque, uint32_t page, bool write)
{
    struct fuzz_machine *m = opaque;
    enum fuzz_page_kind kind = page_kind(page);

    if (page & 0xfff)
        abort(); /* the contract: page addresses only */
    fuzz_poke_cpu(m);
    if (kind == PAGE_MMIO || (kind == PAGE_ROM && write))
        return NULL;
    /* The slow path must give the same bytes as the fast one. */
    if (fuzz_misbehave(m))
        return NULL;
    return m->ram + (page & RAM_MASK);
}

static const struct x86emu_ops fuzz_ops = {
    .mem_read = fuzz_mem_read,
    .mem_write = fuzz_mem_write,
    .io_in = fuzz_io_in,
    .io_out = fuzz_io_out,
    .int_ack = fuzz_int_ack,
    .halt = fuzz_halt,
    .map_ram = fuzz_map_ram,
};

static const struct x86emu_ops fuzz_ops_no_map = {
    .mem_read = fuzz_mem_read,
    .mem_write = fuzz_mem_write,
    .io_in = fuzz_io_in,
    .io_out = fuzz_io_out,
    .int_ack = fuzz_int_ack,
    .halt = fuzz_halt,
};

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void shape_segment(struct x86emu_segment *s, uint8_t shape)
{
    if (shape & 0x01)
        s->limit = 0xffffffffu;
    if (shape & 0x02)
        s->attr |= X86EMU_SEGATTR_DB;
    if (shape & 0x04)
        s->attr = (uint16_t)((s->attr & ~0x1cu) | 0x14u); /* expand-down */
    if (shape & 0x08)
        s->limit = 0;
    if (shape & 0x10)
        s->base |= (uint32_t)(s->selector >> 8) << 24;
    if (shape & 0xe0)
        s->attr = (uint16_t)((s->attr & ~0x0fu) | ((shape >> 5) << 1));
}

/* What the API promises whatever the guest did. */
static void check_invariants(const struct fuzz_machine *m, uint64_t icount0,
                             uint64_t budget, enum x86emu_stop stop)
{
    const struct x86emu *cpu = &m->cpu;
    uint32_t fl = x86emu_get_eflags(cpu);

    if ((unsigned)stop > X86EMU_STOP_UNSUPPORTED)
        abort();
    if (cpu->icount < icount0 || cpu->icount - icount0 > budget)
        abort();
    if (stop == X86EMU_STOP_BUDGET && cpu->icount - icount0 != budget)
        abort();
    /* Fixed EFLAGS bits: 1 set, 3, 5 and 15 clear. */
    if (!(fl & 0x2) || (fl & 0x8028))
        abort();
    /* In real mode a 16-bit code segment with a 64 KiB limit keeps IP
     * within 16 bits: sequential flow wraps and a 32-bit jump beyond the
     * limit faults. (A larger limit, "unreal mode", allows more.) */
    if (!(cpu->cr0 & X86EMU_CR0_PE) &&
        !(cpu->seg[X86EMU_SEG_CS].attr & X86EMU_SEGATTR_DB) &&
        cpu->seg[X86EMU_SEG_CS].limit <= 0xffff && cpu->eip > 0xffff)
        abort();
}

static struct fuzz_machine fuzz_m;

/* FUZZ_X86EMU_TRACE=1 in the environment prints every stop, to see what an
 * input does when turning a finding into a bug report. */
static bool fuzz_trace(void)
{
    static int trace = -1;

    if (trace < 0)
        trace = getenv("FUZZ_X86EMU_TRACE") != NULL;
    return trace;
}

static void trace_stop(const struct x86emu *cpu, enum x86emu_stop stop)
{
    static const char *const names[] = {"budget", "halt", "request",
                                        "shutdown", "unsupported"};

    fprintf(stderr,
            "stop %-11s icount %5llu CS:EIP %04x:%08x (base %08x) CR0 %08x "
            "EFLAGS %08x EAX %08x ECX %08x\n",
            (unsigned)stop < 5 ? names[stop] : "?",
            (unsigned long long)cpu->icount, cpu->seg[X86EMU_SEG_CS].selector,
            cpu->eip, cpu->seg[X86EMU_SEG_CS].base, cpu->cr0,
            x86emu_get_eflags(cpu), cpu->gpr[X86EMU_EAX],
            cpu->gpr[X86EMU_ECX]);
}

/* A shut-down CPU stays down, and one stopped at something unsupported
 * stops there again, until reset. A stop request made by a callback during
 * the stopping instruction is still honoured first. An external event can
 * be what stopped it (an interrupt through a task gate, whose acknowledged
 * vector is then lost) or divert the second attempt, and an A20 change
 * moves the tables it reads, so the unsupported case is only checked for
 * inputs that never raised INTR or NMI nor touched A20. */
static void check_stop_repeats(struct fuzz_machine *m, enum x86emu_stop stop)
{
    enum x86emu_stop again;
    unsigned tries = 0;

    m->in_run = false;
    x86emu_set_intr(&m->cpu, false);
    do
        again = x86emu_run(&m->cpu, 1);
    while (again == X86EMU_STOP_REQUEST && ++tries < 3);
    if (fuzz_trace())
        trace_stop(&m->cpu, again);
    if (again != stop &&
        (stop == X86EMU_STOP_SHUTDOWN || (!m->irq_sent && !m->a20_toggled)))
        abort();
    m->in_run = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_machine *m = &fuzz_m;
    uint8_t hdr[HDR_SIZE];
    const uint8_t *code = size > HDR_SIZE ? data + HDR_SIZE : NULL;
    size_t code_len = size > HDR_SIZE ? size - HDR_SIZE : 0;
    struct x86emu *cpu = &m->cpu;
    uint32_t budget_left, load;
    uint8_t flags;

    memset(hdr, 0, sizeof(hdr));
    memcpy(hdr, data, size < HDR_SIZE ? size : HDR_SIZE);
    flags = hdr[0];
    memset(m->ram, hdr[87] ^ 0xf4, sizeof(m->ram));
    m->chaos = hdr[1];
    m->rng = (uint64_t)get32(hdr + 2) | (uint64_t)get32(hdr + 6) << 32;
    if (m->rng == 0)
        m->rng = 0x9e3779b97f4a7c15ull; /* xorshift's one bad state */
    m->mmio_seed = m->rng;
    m->in_run = false;
    m->irq_sent = false;
    m->a20_toggled = false;

    x86emu_init(cpu, (flags & FUZZ_F_286) ? X86EMU_MODEL_286
                                          : X86EMU_MODEL_386,
                (flags & FUZZ_F_NO_MAP_RAM) ? &fuzz_ops_no_map : &fuzz_ops,
                m);
    x86emu_set_a20(cpu, !(flags & FUZZ_F_A20_OFF));
    for (unsigned i = 0; i < 8; i++)
        cpu->gpr[i] = get32(hdr + 10 + 4 * i);
    x86emu_set_eflags(cpu, get32(hdr + 42));
    for (unsigned i = 0; i < X86EMU_SEG_COUNT; i++) {
        x86emu_load_segment_real(cpu, (enum x86emu_sreg)i,
                                 get16(hdr + 50 + 2 * i));
        shape_segment(&cpu->seg[i], hdr[62 + i]);
    }
    x86emu_segments_changed(cpu);
    cpu->eip = get32(hdr + 46);
    if (!(cpu->seg[X86EMU_SEG_CS].attr & X86EMU_SEGATTR_DB))
        cpu->eip &= 0xffff;
    cpu->idtr.limit = get16(hdr + 68);
    cpu->idtr.base = get32(hdr + 70);
    cpu->gdtr.limit = get16(hdr + 74);
    cpu->gdtr.base = get32(hdr + 76);
    cpu->cr3 = get32(hdr + 80) & 0xfffff000u;
    cpu->cr4 = get32(hdr + 80) & 0x10u; /* PSE, the one CR4 bit a 386 core may know */
    /* CR0 is a plain field; PE/PG set here is a machine handing over a
     * CPU already in protected mode with the descriptor caches above. Only
     * the 386 model has a protected mode to hand over. */
    cpu->cr0 |= hdr[84] & 0x0eu;
    if ((flags & FUZZ_F_PE) && cpu->model == X86EMU_MODEL_386) {
        cpu->cr0 |= X86EMU_CR0_PE;
        if (flags & FUZZ_F_PG)
            cpu->cr0 |= X86EMU_CR0_PG;
    }
    x86emu_flush_tlb(cpu);
    budget_left = get16(hdr + 85);
    if (budget_left == 0 || budget_left > MAX_INSNS)
        budget_left = MAX_INSNS;

    load = cpu->seg[X86EMU_SEG_CS].base + cpu->eip;
    for (size_t i = 0; i < code_len && i < RAM_SIZE; i++)
        m->ram[(load + i) & RAM_MASK] = code[i];

    if (flags & FUZZ_F_INTR) {
        x86emu_set_intr(cpu, true);
        m->irq_sent = true;
    }
    if (flags & FUZZ_F_NMI) {
        x86emu_nmi(cpu);
        m->irq_sent = true;
    }

    m->in_run = true;
    for (unsigned run = 0; run < MAX_RUNS && budget_left; run++) {
        uint64_t icount0 = cpu->icount;
        uint64_t budget = 1 + fuzz_next(m) % budget_left;
        enum x86emu_stop stop;

        if (fuzz_next(m) % 8 == 0) {
            budget = 1;
            stop = x86emu_step(cpu);
        } else {
            stop = x86emu_run(cpu, budget);
        }
        if (fuzz_trace())
            trace_stop(cpu, stop);
        check_invariants(m, icount0, budget, stop);
        budget_left -= (uint32_t)(cpu->icount - icount0);
        switch (stop) {
        case X86EMU_STOP_HALT:
            /* Wake it up (MAX_RUNS bounds a CPU that stays asleep). */
            m->irq_sent = true;
            if (fuzz_next(m) & 1)
                x86emu_set_intr(cpu, true);
            else
                x86emu_nmi(cpu);
            break;
        case X86EMU_STOP_SHUTDOWN:
        case X86EMU_STOP_UNSUPPORTED:
            check_stop_repeats(m, stop);
            x86emu_reset(cpu);
            cpu->seg[X86EMU_SEG_CS].base = 0;
            x86emu_segments_changed(cpu);
            cpu->eip = load & 0xffff;
            break;
        case X86EMU_STOP_REQUEST:
            if (cpu->icount == icount0)
                budget_left--; /* stops can come back-to-back */
            break;
        case X86EMU_STOP_BUDGET:
            break;
        }
    }
    m->in_run = false;
    return 0;
}
