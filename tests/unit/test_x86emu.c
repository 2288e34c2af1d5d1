/* x86emu through its callback table: hand-assembled real-mode programs on
 * a small machine (2 MiB of RAM reached through map_ram, an MMIO window at
 * 0xA0000-0xBFFFF and a ROM at the top of the address space reached through
 * mem_read, ports logged). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../x86emu/x86emu.h"

#define RAM_SIZE (2u << 20)
#define MMIO_BASE 0xa0000u
#define MMIO_END 0xc0000u
#define ROM_BASE 0xffff0000u /* 64 KiB at the top of 4 GiB */
#define ROM_BASE_286 0x00ff0000u

/* Where the programs live: code at 1000:0000, stack 2000:FFFE, data 3000:0,
 * interrupt handlers in segment 4000. */
#define CODE_SEG 0x1000
#define STACK_SEG 0x2000
#define DATA_SEG 0x3000
#define HANDLER_SEG 0x4000
#define PHYS(seg, off) ((uint32_t)(seg) * 16 + (off))

struct io_record {
    bool out;
    uint16_t port;
    unsigned size;
    uint32_t value;
};

struct mmio_record {
    bool write;
    uint32_t addr;
    unsigned size;
    uint32_t value;
};

struct machine {
    struct x86emu cpu;
    uint8_t *ram;
    uint8_t rom[65536];
    struct io_record io[64];
    unsigned nio;
    struct mmio_record mmio[64];
    unsigned nmmio;
    uint32_t in_value;
    int pending_vector; /* int_ack answer */
    unsigned acks, halts;
    bool stop_on_out;
    bool intr_on_out; /* assert INTR (vector 0x30) at the next port write */
};

static uint8_t *t_map_ram(void *opaque, uint32_t page, bool write)
{
    struct machine *m = opaque;

    if (page >= RAM_SIZE || (page >= MMIO_BASE && page < MMIO_END))
        return NULL;
    return m->ram + page;
}

static uint32_t t_mem_read(void *opaque, uint32_t addr, unsigned size)
{
    struct machine *m = opaque;
    uint32_t v = 0;

    if (addr >= ROM_BASE || (addr >= ROM_BASE_286 && addr < 0x01000000u)) {
        uint32_t off = addr & 0xffff;

        for (unsigned i = 0; i < size; i++)
            v |= (uint32_t)m->rom[(off + i) & 0xffff] << (8 * i);
        return v;
    }
    if (m->nmmio < 64)
        m->mmio[m->nmmio++] = (struct mmio_record){false, addr, size, 0};
    return 0xa5a5a5a5u & (size == 4 ? ~0u : (1u << (8 * size)) - 1);
}

static void t_mem_write(void *opaque, uint32_t addr, uint32_t value,
                        unsigned size)
{
    struct machine *m = opaque;

    if (m->nmmio < 64)
        m->mmio[m->nmmio++] = (struct mmio_record){true, addr, size, value};
}

static uint32_t t_io_in(void *opaque, uint16_t port, unsigned size)
{
    struct machine *m = opaque;

    if (m->nio < 64)
        m->io[m->nio++] = (struct io_record){false, port, size, 0};
    return m->in_value;
}

static void t_io_out(void *opaque, uint16_t port, uint32_t value,
                     unsigned size)
{
    struct machine *m = opaque;

    if (m->nio < 64)
        m->io[m->nio++] = (struct io_record){true, port, size, value};
    if (m->stop_on_out)
        x86emu_request_stop(&m->cpu);
    if (m->intr_on_out) {
        m->intr_on_out = false;
        m->pending_vector = 0x30;
        x86emu_set_intr(&m->cpu, true);
    }
}

static int t_int_ack(void *opaque)
{
    struct machine *m = opaque;
    int v = m->pending_vector;

    m->acks++;
    m->pending_vector = -1;
    x86emu_set_intr(&m->cpu, false);
    return v;
}

static void t_halt(void *opaque)
{
    struct machine *m = opaque;

    m->halts++;
}

static const struct x86emu_ops t_ops = {
    .mem_read = t_mem_read,
    .mem_write = t_mem_write,
    .io_in = t_io_in,
    .io_out = t_io_out,
    .int_ack = t_int_ack,
    .halt = t_halt,
    .map_ram = t_map_ram,
};

static void set_vector(struct machine *m, unsigned vec, uint16_t seg,
                       uint16_t off)
{
    m->ram[vec * 4] = (uint8_t)off;
    m->ram[vec * 4 + 1] = (uint8_t)(off >> 8);
    m->ram[vec * 4 + 2] = (uint8_t)seg;
    m->ram[vec * 4 + 3] = (uint8_t)(seg >> 8);
}

/* Puts bytes at a physical address. */
static void poke(struct machine *m, uint32_t addr, const uint8_t *bytes,
                 size_t len)
{
    assert_true(addr + len <= RAM_SIZE);
    if (len)
        memcpy(m->ram + addr, bytes, len);
}

/* A fresh machine of the given model with the program at CODE_SEG:0. */
static struct machine *machine_new(enum x86emu_model model,
                                   const uint8_t *code, size_t len)
{
    struct machine *m = calloc(1, sizeof(*m));

    assert_non_null(m);
    m->ram = calloc(1, RAM_SIZE);
    assert_non_null(m->ram);
    m->pending_vector = -1;
    x86emu_init(&m->cpu, model, &t_ops, m);
    poke(m, PHYS(CODE_SEG, 0), code, len);
    x86emu_load_segment_real(&m->cpu, X86EMU_SEG_CS, CODE_SEG);
    x86emu_load_segment_real(&m->cpu, X86EMU_SEG_SS, STACK_SEG);
    x86emu_load_segment_real(&m->cpu, X86EMU_SEG_DS, DATA_SEG);
    x86emu_load_segment_real(&m->cpu, X86EMU_SEG_ES, DATA_SEG);
    m->cpu.eip = 0;
    m->cpu.gpr[X86EMU_ESP] = 0xfffe;
    return m;
}

static void machine_free(struct machine *m)
{
    free(m->ram);
    free(m);
}

/* Runs to the HLT that ends every test program. */
static void run_to_halt(struct machine *m)
{
    assert_int_equal(x86emu_run(&m->cpu, 100000), X86EMU_STOP_HALT);
}

/* ------------------------------------------------------------------ */

static void test_port_io_sizes(void **state)
{
    static const uint8_t code[] = {
        0xb0, 0x5a,                         /* mov al, 5Ah */
        0xe6, 0x80,                         /* out 80h, al */
        0xb8, 0x34, 0x12,                   /* mov ax, 1234h */
        0xba, 0xf8, 0x03,                   /* mov dx, 3F8h */
        0xef,                               /* out dx, ax */
        0x66, 0xb8, 0x78, 0x56, 0x34, 0x12, /* mov eax, 12345678h */
        0x66, 0xef,                         /* out dx, eax */
        0xe4, 0x60,                         /* in al, 60h */
        0xed,                               /* in ax, dx */
        0xf4,                               /* hlt */
    };
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    m->in_value = 0xdeadbeef;
    run_to_halt(m);
    assert_int_equal(m->nio, 5);
    assert_true(m->io[0].out);
    assert_int_equal(m->io[0].port, 0x80);
    assert_int_equal(m->io[0].size, 1);
    assert_int_equal(m->io[0].value, 0x5a);
    assert_int_equal(m->io[1].port, 0x3f8);
    assert_int_equal(m->io[1].size, 2);
    assert_int_equal(m->io[1].value, 0x1234);
    assert_int_equal(m->io[2].size, 4);
    assert_int_equal(m->io[2].value, 0x12345678);
    assert_false(m->io[3].out);
    assert_int_equal(m->io[3].port, 0x60);
    assert_int_equal(m->io[3].size, 1);
    assert_int_equal(m->io[4].port, 0x3f8);
    assert_int_equal(m->io[4].size, 2);
    /* Only the low bytes of what the port returned land in EAX. */
    assert_int_equal(m->cpu.gpr[X86EMU_EAX], 0x1234beef);
    machine_free(m);
}

static void test_hlt_stops_and_interrupt_wakes(void **state)
{
    static const uint8_t code[] = {
        0xfb,       /* sti */
        0xf4,       /* hlt */
        0x40,       /* inc ax */
        0xf4,       /* hlt */
    };
    static const uint8_t handler[] = {0x43, 0xcf}; /* inc bx; iret */
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    poke(m, PHYS(HANDLER_SEG, 0), handler, sizeof(handler));
    set_vector(m, 0x30, HANDLER_SEG, 0);
    assert_int_equal(x86emu_run(&m->cpu, 100), X86EMU_STOP_HALT);
    assert_int_equal(m->halts, 1);
    assert_true(x86emu_halted(&m->cpu));
    assert_int_equal(m->cpu.eip, 2);
    assert_int_equal(m->cpu.icount, 2);
    /* Still halted: nothing executes. */
    assert_int_equal(x86emu_run(&m->cpu, 100), X86EMU_STOP_HALT);
    assert_int_equal(m->cpu.icount, 2);
    /* An interrupt wakes it; the handler returns after the HLT. */
    m->pending_vector = 0x30;
    x86emu_set_intr(&m->cpu, true);
    assert_int_equal(x86emu_run(&m->cpu, 100), X86EMU_STOP_HALT);
    assert_int_equal(m->acks, 1);
    assert_int_equal(m->cpu.gpr[X86EMU_EBX], 1);
    assert_int_equal(m->cpu.gpr[X86EMU_EAX], 1);
    assert_int_equal(m->cpu.eip, 4);
    assert_int_equal(m->halts, 2);
    machine_free(m);
}

/* A request that arrives while IF=0 waits, and is taken right after the
 * instruction that sets IF again, whichever instruction that is (the CPU
 * keeps "deliverable" as one event bit, recomputed on every IF change). */
static void test_pending_interrupt_waits_for_popf(void **state)
{
    static const uint8_t code[] = {
        0xfa,             /* cli */
        0x40,             /* inc ax */
        0x40,             /* inc ax */
        0x68, 0x00, 0x02, /* push 0200h: IF */
        0x9d,             /* popf: the interrupt comes right after */
        0x43,             /* inc bx */
        0xf4,             /* hlt */
    };
    static const uint8_t handler[] = {
        0x89, 0xc2, /* mov dx, ax */
        0x89, 0xd9, /* mov cx, bx */
        0xcf,       /* iret */
    };
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    poke(m, PHYS(HANDLER_SEG, 0), handler, sizeof(handler));
    set_vector(m, 0x30, HANDLER_SEG, 0);
    m->cpu.gpr[X86EMU_ECX] = 0xffff;
    assert_int_equal(x86emu_run(&m->cpu, 1), X86EMU_STOP_BUDGET); /* cli */
    m->pending_vector = 0x30;
    x86emu_set_intr(&m->cpu, true);
    assert_int_equal(x86emu_run(&m->cpu, 100), X86EMU_STOP_HALT);
    assert_int_equal(m->acks, 1);
    assert_int_equal(m->cpu.gpr[X86EMU_EDX], 2); /* after both incs */
    assert_int_equal(m->cpu.gpr[X86EMU_ECX], 0); /* before inc bx */
    assert_int_equal(m->cpu.gpr[X86EMU_EBX], 1);
    machine_free(m);
}

static void test_int_through_ivt(void **state)
{
    static const uint8_t code[] = {
        0xfb,             /* sti */
        0xcd, 0x21,       /* int 21h */
        0xf4,             /* hlt */
    };
    static const uint8_t handler[] = {
        0x9c,             /* pushf */
        0x5b,             /* pop bx */
        0xb8, 0xef, 0xbe, /* mov ax, 0BEEFh */
        0x8b, 0xec,       /* mov bp, sp */
        0x8b, 0x4e, 0x00, /* mov cx, [bp+0]: return IP */
        0x8b, 0x56, 0x02, /* mov dx, [bp+2]: return CS */
        0xcf,             /* iret */
    };
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    poke(m, PHYS(HANDLER_SEG, 0x100), handler, sizeof(handler));
    set_vector(m, 0x21, HANDLER_SEG, 0x100);
    run_to_halt(m);
    assert_int_equal(m->cpu.gpr[X86EMU_EAX], 0xbeef);
    assert_int_equal(m->cpu.gpr[X86EMU_ECX], 3);
    assert_int_equal(m->cpu.gpr[X86EMU_EDX], CODE_SEG);
    /* IF was cleared on entry, restored by IRET. */
    assert_int_equal(m->cpu.gpr[X86EMU_EBX] & X86EMU_FLAG_IF, 0);
    assert_int_equal(x86emu_get_eflags(&m->cpu) & X86EMU_FLAG_IF,
                     X86EMU_FLAG_IF);
    assert_int_equal(m->cpu.seg[X86EMU_SEG_CS].selector, CODE_SEG);
    assert_int_equal(m->cpu.eip, 4);
    assert_int_equal(m->cpu.gpr[X86EMU_ESP], 0xfffe);
    machine_free(m);
}

static void test_divide_error(void **state)
{
    static const uint8_t code[] = {
        0x31, 0xc9,       /* xor cx, cx */
        0xb8, 0x64, 0x00, /* mov ax, 100 */
        0xf7, 0xf1,       /* div cx  (offset 5) */
        0xf4,
    };
    static const uint8_t handler[] = {0x5e, 0x5f, 0xf4}; /* pop si; pop di */
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    poke(m, PHYS(HANDLER_SEG, 0x200), handler, sizeof(handler));
    set_vector(m, 0, HANDLER_SEG, 0x200);
    run_to_halt(m);
    /* A fault: the return address is the DIV itself; AX untouched. */
    assert_int_equal(m->cpu.gpr[X86EMU_ESI], 5);
    assert_int_equal(m->cpu.gpr[X86EMU_EDI], CODE_SEG);
    assert_int_equal(m->cpu.gpr[X86EMU_EAX], 100);
    assert_int_equal(m->cpu.seg[X86EMU_SEG_CS].selector, HANDLER_SEG);
    machine_free(m);
}

static void test_a20_wrap(void **state)
{
    static const uint8_t code[] = {
        0xb8, 0xff, 0xff,             /* mov ax, 0FFFFh */
        0x8e, 0xd8,                   /* mov ds, ax */
        0xc6, 0x06, 0x10, 0x00, 0x77, /* mov byte [10h], 77h: FFFF:0010 */
        0xa0, 0x20, 0x00,             /* mov al, [20h]: FFFF:0020 */
        0xf4,
    };
    for (int gate = 0; gate < 2; gate++) {
        struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

        m->ram[0x10] = 0x11;     /* what 1 MiB + 0x10 wraps onto */
        m->ram[0x100010] = 0x22; /* the byte above 1 MiB */
        x86emu_set_a20(&m->cpu, gate);
        run_to_halt(m);
        if (!gate) {
            assert_int_equal(m->ram[0x0], 0x77);
            assert_int_equal(m->ram[0x100000], 0);
            assert_int_equal(m->cpu.gpr[X86EMU_EAX] & 0xff, 0x11);
        } else {
            /* With the gate open the same program reaches above 1 MiB. */
            assert_int_equal(m->ram[0x0], 0);
            assert_int_equal(m->ram[0x100000], 0x77);
            assert_int_equal(m->cpu.gpr[X86EMU_EAX] & 0xff, 0x22);
        }
        machine_free(m);
    }
}

static void test_rep_movsb_both_directions(void **state)
{
    static const uint8_t code[] = {
        0xfc,             /* cld */
        0xbe, 0x00, 0x01, /* mov si, 100h */
        0xbf, 0x01, 0x01, /* mov di, 101h */
        0xb9, 0x05, 0x00, /* mov cx, 5 */
        0xf3, 0xa4,       /* rep movsb: overlapping, smears byte 100h */
        0xfd,             /* std */
        0xbe, 0x04, 0x02, /* mov si, 204h */
        0xbf, 0x14, 0x02, /* mov di, 214h */
        0xb9, 0x05, 0x00, /* mov cx, 5 */
        0xf3, 0xa4,       /* rep movsb backwards */
        0xf4,
    };
    static const uint8_t src1[] = {0xaa, 1, 2, 3, 4, 5, 6};
    static const uint8_t src2[] = {0x10, 0x20, 0x30, 0x40, 0x50};
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));
    uint8_t *d = m->ram + PHYS(DATA_SEG, 0);

    poke(m, PHYS(DATA_SEG, 0x100), src1, sizeof(src1));
    poke(m, PHYS(DATA_SEG, 0x200), src2, sizeof(src2));
    run_to_halt(m);
    /* Forward, byte at a time: 100h's value propagates. */
    for (unsigned i = 0x100; i <= 0x105; i++)
        assert_int_equal(d[i], 0xaa);
    assert_int_equal(d[0x106], 6);
    /* Backward: 200h-204h copied to 210h-214h in order. */
    assert_memory_equal(d + 0x210, src2, sizeof(src2));
    assert_int_equal(d[0x20f], 0);
    assert_int_equal(m->cpu.gpr[X86EMU_ESI] & 0xffff, 0x1ff);
    assert_int_equal(m->cpu.gpr[X86EMU_EDI] & 0xffff, 0x20f);
    assert_int_equal(m->cpu.gpr[X86EMU_ECX] & 0xffff, 0);
    machine_free(m);
}

static void test_rep_outsw_both_directions(void **state)
{
    static const uint8_t code[] = {
        0xba, 0x00, 0x01, /* mov dx, 100h */
        0xfc,             /* cld */
        0xbe, 0x00, 0x00, /* mov si, 0 */
        0xb9, 0x03, 0x00, /* mov cx, 3 */
        0xf3, 0x6f,       /* rep outsw */
        0xfd,             /* std */
        0xbe, 0x04, 0x00, /* mov si, 4 */
        0xb9, 0x03, 0x00, /* mov cx, 3 */
        0x26, 0xf3, 0x6f, /* rep outsw from ES (= DS here) */
        0xf4,
    };
    static const uint8_t words[] = {0x11, 0x11, 0x22, 0x22, 0x33, 0x33};
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    poke(m, PHYS(DATA_SEG, 0), words, sizeof(words));
    run_to_halt(m);
    assert_int_equal(m->nio, 6);
    for (unsigned i = 0; i < 6; i++) {
        assert_true(m->io[i].out);
        assert_int_equal(m->io[i].port, 0x100);
        assert_int_equal(m->io[i].size, 2);
    }
    assert_int_equal(m->io[0].value, 0x1111);
    assert_int_equal(m->io[1].value, 0x2222);
    assert_int_equal(m->io[2].value, 0x3333);
    assert_int_equal(m->io[3].value, 0x3333);
    assert_int_equal(m->io[4].value, 0x2222);
    assert_int_equal(m->io[5].value, 0x1111);
    assert_int_equal(m->cpu.gpr[X86EMU_ESI] & 0xffff, 0xfffe);
    assert_int_equal(m->cpu.gpr[X86EMU_ECX] & 0xffff, 0);
    machine_free(m);
}

static void test_rep_zero_count_and_repe_cmpsb(void **state)
{
    static const uint8_t code[] = {
        0xfc,             /* cld */
        0x31, 0xc9,       /* xor cx, cx */
        0xf3, 0xa4,       /* rep movsb with CX = 0: nothing */
        0xbe, 0x00, 0x00, /* mov si, 0 */
        0xbf, 0x10, 0x00, /* mov di, 10h */
        0xb9, 0x08, 0x00, /* mov cx, 8 */
        0xf3, 0xa6,       /* repe cmpsb: stops after the first mismatch */
        0xf4,
    };
    static const uint8_t a[] = {1, 2, 3, 4, 5};
    static const uint8_t b[] = {1, 2, 3, 9, 5};
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    poke(m, PHYS(DATA_SEG, 0), a, sizeof(a));
    poke(m, PHYS(DATA_SEG, 0x10), b, sizeof(b));
    run_to_halt(m);
    assert_int_equal(m->cpu.gpr[X86EMU_ECX] & 0xffff, 4);
    assert_int_equal(m->cpu.gpr[X86EMU_ESI] & 0xffff, 4);
    assert_int_equal(m->cpu.gpr[X86EMU_EDI] & 0xffff, 0x14);
    /* 4 - 9: not equal, borrow, negative. */
    assert_int_equal(x86emu_get_eflags(&m->cpu) &
                         (X86EMU_FLAG_ZF | X86EMU_FLAG_CF | X86EMU_FLAG_SF),
                     X86EMU_FLAG_CF | X86EMU_FLAG_SF);
    machine_free(m);
}

static void test_external_interrupt_after_sti_shadow(void **state)
{
    static const uint8_t code[] = {
        0xfb, /* sti */
        0x90, /* nop: still runs before the interrupt (offset 1) */
        0x90, /* offset 2: the interrupt returns here */
        0xf4,
    };
    static const uint8_t handler[] = {0x5e, 0xf4}; /* pop si; hlt */
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    poke(m, PHYS(HANDLER_SEG, 0), handler, sizeof(handler));
    set_vector(m, 0x30, HANDLER_SEG, 0);
    m->pending_vector = 0x30;
    x86emu_set_intr(&m->cpu, true);
    run_to_halt(m);
    assert_int_equal(m->acks, 1);
    assert_int_equal(m->cpu.gpr[X86EMU_ESI], 2);
    machine_free(m);
}

static void test_interrupt_inside_rep(void **state)
{
    static const uint8_t code[] = {
        0xfb,             /* sti */
        0xfc,             /* cld */
        0xba, 0x80, 0x00, /* mov dx, 80h */
        0x31, 0xf6,       /* xor si, si */
        0xb9, 0x04, 0x00, /* mov cx, 4 */
        0x2e, 0xf3, 0x6e, /* rep outsb from CS (offset 10) */
        0xf4,
    };
    /* The handler records CX and the return IP, then returns. */
    static const uint8_t handler[] = {
        0x89, 0xcf,       /* mov di, cx */
        0x8b, 0xec,       /* mov bp, sp */
        0x8b, 0x5e, 0x00, /* mov bx, [bp+0] */
        0xcf,             /* iret */
    };
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    poke(m, PHYS(HANDLER_SEG, 0), handler, sizeof(handler));
    set_vector(m, 0x30, HANDLER_SEG, 0);
    m->intr_on_out = true;
    run_to_halt(m);
    /* Taken after the first iteration; the return address is the first
     * prefix, and the instruction then finishes the remaining three. */
    assert_int_equal(m->acks, 1);
    assert_int_equal(m->cpu.gpr[X86EMU_EDI] & 0xffff, 3);
    assert_int_equal(m->cpu.gpr[X86EMU_EBX] & 0xffff, 10);
    assert_int_equal(m->nio, 4);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(m->io[i].value, code[i]);
    assert_int_equal(m->cpu.gpr[X86EMU_ECX] & 0xffff, 0);
    assert_int_equal(m->cpu.gpr[X86EMU_ESI] & 0xffff, 4);
    machine_free(m);
}

static void test_cli_blocks_intr(void **state)
{
    static const uint8_t code[] = {
        0xfa,       /* cli */
        0xe6, 0x80, /* out 80h, al: the machine raises INTR */
        0x90,
        0xf4,       /* halts with the interrupt still pending */
    };
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    m->intr_on_out = true;
    x86emu_set_eflags(&m->cpu, X86EMU_FLAG_IF);
    run_to_halt(m);
    assert_int_equal(m->acks, 0);
    assert_int_equal(m->cpu.eip, 5);
    machine_free(m);
}

static void test_reset_vector_from_rom(void **state)
{
    static const uint8_t jump[] = {0xea, 0x00, 0x00, 0x00, 0x10};
    static const uint8_t code[] = {0xf4};
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    memcpy(m->rom + 0xfff0, jump, sizeof(jump));
    x86emu_reset(&m->cpu);
    assert_int_equal(m->cpu.seg[X86EMU_SEG_CS].selector, 0xf000);
    assert_int_equal(m->cpu.seg[X86EMU_SEG_CS].base, 0xffff0000u);
    assert_int_equal(m->cpu.eip, 0xfff0);
    assert_int_equal(x86emu_get_eflags(&m->cpu), 0x2);
    run_to_halt(m);
    assert_int_equal(m->cpu.seg[X86EMU_SEG_CS].selector, 0x1000);
    assert_int_equal(m->cpu.seg[X86EMU_SEG_CS].base, 0x10000);
    assert_int_equal(m->cpu.eip, 1);
    machine_free(m);

    /* The 286 starts 16 bytes below 16 MiB. */
    m = machine_new(X86EMU_MODEL_286, code, sizeof(code));
    memcpy(m->rom + 0xfff0, jump, sizeof(jump));
    x86emu_reset(&m->cpu);
    assert_int_equal(m->cpu.seg[X86EMU_SEG_CS].base, 0x00ff0000u);
    run_to_halt(m);
    assert_int_equal(m->cpu.seg[X86EMU_SEG_CS].selector, 0x1000);
    machine_free(m);
}

static void test_segment_overrun(void **state)
{
    static const uint8_t code[] = {
        0xbb, 0xff, 0xff, /* mov bx, 0FFFFh */
        0x8b, 0x07,       /* mov ax, [bx]: word at DS:FFFF (offset 3) */
        0xf4,
    };
    static const uint8_t code_ss[] = {
        0xbc, 0xff, 0xff, /* mov sp, 0FFFFh */
        0x58,             /* pop ax: word at SS:FFFF (offset 3) */
        0xf4,
    };
    static const uint8_t handler[] = {0x5e, 0xf4}; /* pop si; hlt */
    struct machine *m;

    for (int model = 0; model < 2; model++) {
        m = machine_new(model ? X86EMU_MODEL_386 : X86EMU_MODEL_286, code,
                        sizeof(code));
        poke(m, PHYS(HANDLER_SEG, 0), handler, sizeof(handler));
        set_vector(m, 13, HANDLER_SEG, 0);
        run_to_halt(m);
        assert_int_equal(m->cpu.seg[X86EMU_SEG_CS].selector, HANDLER_SEG);
        assert_int_equal(m->cpu.gpr[X86EMU_ESI], 3);
        machine_free(m);
    }
    /* A stack overrun is #SS on the 386, interrupt 13 on the 286. */
    for (int model = 0; model < 2; model++) {
        m = machine_new(model ? X86EMU_MODEL_386 : X86EMU_MODEL_286, code_ss,
                        sizeof(code_ss));
        poke(m, PHYS(HANDLER_SEG, 0), handler, sizeof(handler));
        poke(m, PHYS(HANDLER_SEG, 0x10), handler, sizeof(handler));
        set_vector(m, 13, HANDLER_SEG, 0);
        set_vector(m, 12, HANDLER_SEG, 0x10);
        run_to_halt(m);
        assert_int_equal(m->cpu.eip, model ? 0x12 : 0x02);
        assert_int_equal(m->cpu.gpr[X86EMU_ESI], 3);
        machine_free(m);
    }
}

static void test_triple_fault_shutdown(void **state)
{
    static const uint8_t code[] = {
        0x0f, 0x01, 0x1e, 0x00, 0x05, /* lidt [500h]: limit 0 */
        0xcc,                         /* int3: cannot be delivered */
        0xf4,
    };
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    /* DS:0500 = 6 bytes of zeros already. */
    assert_int_equal(x86emu_run(&m->cpu, 100), X86EMU_STOP_SHUTDOWN);
    assert_int_equal(x86emu_run(&m->cpu, 100), X86EMU_STOP_SHUTDOWN);
    x86emu_reset(&m->cpu);
    assert_int_equal(m->cpu.idtr.limit, 0x3ff);
    machine_free(m);
}

static void test_invalid_opcodes(void **state)
{
    static const uint8_t ud2[] = {0x0f, 0x0b, 0xf4};
    static const uint8_t opsize[] = {0x66, 0x90, 0xf4};
    static const uint8_t lea_reg[] = {0x8d, 0xc0, 0xf4}; /* lea ax, ax */
    static const uint8_t handler[] = {0x5e, 0xf4};
    const struct {
        const uint8_t *code;
        size_t len;
        enum x86emu_model model;
        bool ud;
    } cases[] = {
        {ud2, sizeof(ud2), X86EMU_MODEL_386, true},
        {opsize, sizeof(opsize), X86EMU_MODEL_286, true},
        {opsize, sizeof(opsize), X86EMU_MODEL_386, false},
        {lea_reg, sizeof(lea_reg), X86EMU_MODEL_286, true},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct machine *m = machine_new(cases[i].model, cases[i].code,
                                        cases[i].len);

        poke(m, PHYS(HANDLER_SEG, 0), handler, sizeof(handler));
        set_vector(m, 6, HANDLER_SEG, 0);
        run_to_halt(m);
        if (cases[i].ud) {
            assert_int_equal(m->cpu.seg[X86EMU_SEG_CS].selector,
                             HANDLER_SEG);
            assert_int_equal(m->cpu.gpr[X86EMU_ESI], 0);
        } else {
            assert_int_equal(m->cpu.seg[X86EMU_SEG_CS].selector, CODE_SEG);
            assert_int_equal(m->cpu.eip, 3);
        }
        machine_free(m);
    }
}

static void test_flags_exact(void **state)
{
    static const uint8_t code[] = {
        0xb0, 0xff,       /* mov al, 0FFh */
        0x04, 0x01,       /* add al, 1: CF ZF AF PF */
        0x9c,             /* pushf */
        0x5b,             /* pop bx */
        0xb0, 0x7f,       /* mov al, 7Fh */
        0x04, 0x01,       /* add al, 1: OF SF AF */
        0x9c,
        0x59,             /* pop cx */
        0xb8, 0xd5, 0x0c, /* mov ax, 0CD5h */
        0x50,             /* push ax */
        0x9d,             /* popf */
        0x9f,             /* lahf */
        0x9c,
        0x5a,             /* pop dx */
        0xf4,
    };
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    run_to_halt(m);
    assert_int_equal(m->cpu.gpr[X86EMU_EBX] & 0xffff, 0x0057);
    assert_int_equal(m->cpu.gpr[X86EMU_ECX] & 0xffff, 0x0892);
    assert_int_equal((m->cpu.gpr[X86EMU_EAX] >> 8) & 0xff, 0xd7);
    assert_int_equal(m->cpu.gpr[X86EMU_EDX] & 0xffff, 0x0cd7);
    machine_free(m);
}

static void test_eflags_model_rules(void **state)
{
    struct machine *m = machine_new(X86EMU_MODEL_286, NULL, 0);

    /* Real-mode 286: bits 12-15 stay clear, bit 1 set, 3 and 5 clear. */
    x86emu_set_eflags(&m->cpu, 0xffff);
    assert_int_equal(x86emu_get_eflags(&m->cpu), 0x0fd7);
    machine_free(m);
    m = machine_new(X86EMU_MODEL_386, NULL, 0);
    x86emu_set_eflags(&m->cpu, 0xffff);
    assert_int_equal(x86emu_get_eflags(&m->cpu), 0x7fd7);
    machine_free(m);
}

static void test_single_step(void **state)
{
    static const uint8_t code[] = {
        0xb8, 0x02, 0x01, /* mov ax, 0102h (TF) */
        0x50,             /* push ax */
        0x9d,             /* popf: the trap follows the next instruction */
        0x90,             /* nop (offset 5) */
        0x90,             /* offset 6 */
        0xf4,
    };
    static const uint8_t handler[] = {0x5e, 0x5f, 0x5b, 0xf4}; /* ip cs fl */
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    poke(m, PHYS(HANDLER_SEG, 0), handler, sizeof(handler));
    set_vector(m, 1, HANDLER_SEG, 0);
    run_to_halt(m);
    assert_int_equal(m->cpu.gpr[X86EMU_ESI], 6);
    assert_int_equal(m->cpu.gpr[X86EMU_EBX] & X86EMU_FLAG_TF, X86EMU_FLAG_TF);
    assert_int_equal(x86emu_get_eflags(&m->cpu) & X86EMU_FLAG_TF, 0);
    machine_free(m);
}

static void test_mmio_accesses(void **state)
{
    static const uint8_t code[] = {
        0xb8, 0x00, 0xa0, /* mov ax, 0A000h */
        0x8e, 0xd8,       /* mov ds, ax */
        0xa1, 0x00, 0x00, /* mov ax, [0] */
        0xa3, 0x10, 0x00, /* mov [10h], ax */
        0xb8, 0xff, 0x9f, /* mov ax, 9FFFh */
        0x8e, 0xc0,       /* mov es, ax */
        0x26, 0x8b, 0x1e, 0x0f, 0x00, /* mov bx, es:[0Fh]: 9FFFF/A0000 */
        0xf4,
    };
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    m->ram[0x9ffff] = 0x42;
    run_to_halt(m);
    assert_int_equal(m->nmmio, 3);
    assert_false(m->mmio[0].write);
    assert_int_equal(m->mmio[0].addr, 0xa0000);
    assert_int_equal(m->mmio[0].size, 2);
    assert_true(m->mmio[1].write);
    assert_int_equal(m->mmio[1].addr, 0xa0010);
    assert_int_equal(m->mmio[1].size, 2);
    assert_int_equal(m->mmio[1].value, 0xa5a5);
    /* The page-crossing read: RAM byte, then one MMIO byte. */
    assert_false(m->mmio[2].write);
    assert_int_equal(m->mmio[2].addr, 0xa0000);
    assert_int_equal(m->mmio[2].size, 1);
    assert_int_equal(m->cpu.gpr[X86EMU_EBX] & 0xffff, 0xa542);
    machine_free(m);
}

static void test_request_stop_from_callback(void **state)
{
    static const uint8_t code[] = {0xe6, 0xf4, 0x40, 0xf4}; /* out; inc ax */
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    m->stop_on_out = true;
    assert_int_equal(x86emu_run(&m->cpu, 100), X86EMU_STOP_REQUEST);
    assert_int_equal(m->cpu.eip, 2);
    assert_int_equal(m->cpu.gpr[X86EMU_EAX], 0);
    m->stop_on_out = false;
    run_to_halt(m);
    assert_int_equal(m->cpu.gpr[X86EMU_EAX], 1);
    machine_free(m);
}

static void test_budget(void **state)
{
    static const uint8_t code[] = {0x40, 0x40, 0x40, 0x40, 0xf4};
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    assert_int_equal(x86emu_run(&m->cpu, 3), X86EMU_STOP_BUDGET);
    assert_int_equal(m->cpu.icount, 3);
    assert_int_equal(m->cpu.gpr[X86EMU_EAX], 3);
    assert_int_equal(x86emu_step(&m->cpu), X86EMU_STOP_BUDGET);
    assert_int_equal(m->cpu.icount, 4);
    assert_int_equal(x86emu_step(&m->cpu), X86EMU_STOP_HALT);
    machine_free(m);
}

/* The 286 model has no protected mode: setting PE stops it. (The 386
 * model's protected mode is tested in test_x86emu_pm.c.) */
static void test_protected_mode_unsupported(void **state)
{
    static const uint8_t code[] = {
        0xb8, 0x01, 0x00, /* mov ax, 1 */
        0x0f, 0x01, 0xf0, /* lmsw ax: PE */
        0xf4,
    };
    struct machine *m = machine_new(X86EMU_MODEL_286, code, sizeof(code));

    assert_int_equal(x86emu_run(&m->cpu, 100), X86EMU_STOP_UNSUPPORTED);
    assert_int_equal(m->cpu.cr0 & X86EMU_CR0_PE, X86EMU_CR0_PE);
    assert_int_equal(m->cpu.eip, 6);
    machine_free(m);
}

static void test_fpu_escape(void **state)
{
    static const uint8_t code[] = {
        0xd8, 0xc0,       /* fadd st0, st0: no FPU, EM clear: nothing */
        0x0f, 0x20, 0xc0, /* mov eax, cr0 */
        0x0c, 0x04,       /* or al, EM */
        0x0f, 0x22, 0xc0, /* mov cr0, eax */
        0xd8, 0xc0,       /* now #NM (offset 10) */
        0xf4,
    };
    static const uint8_t handler[] = {0x5e, 0xf4};
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    poke(m, PHYS(HANDLER_SEG, 0), handler, sizeof(handler));
    set_vector(m, 7, HANDLER_SEG, 0);
    run_to_halt(m);
    assert_int_equal(m->cpu.seg[X86EMU_SEG_CS].selector, HANDLER_SEG);
    assert_int_equal(m->cpu.gpr[X86EMU_ESI], 10);
    machine_free(m);
}

static void test_bound_and_into(void **state)
{
    static const uint8_t code[] = {
        0xb8, 0x05, 0x00,       /* mov ax, 5 */
        0x62, 0x06, 0x00, 0x06, /* bound ax, [600h]: 0..4, #BR (off 3) */
        0xf4,
    };
    static const uint8_t code_into[] = {
        0xb0, 0x7f, 0x04, 0x01, /* mov al, 7Fh; add al, 1: OF */
        0xce,                   /* into (offset 4) */
        0xf4,
    };
    static const uint8_t bounds[] = {0, 0, 4, 0};
    static const uint8_t handler[] = {0x5e, 0xf4};
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    poke(m, PHYS(DATA_SEG, 0x600), bounds, sizeof(bounds));
    poke(m, PHYS(HANDLER_SEG, 0), handler, sizeof(handler));
    set_vector(m, 5, HANDLER_SEG, 0);
    run_to_halt(m);
    assert_int_equal(m->cpu.seg[X86EMU_SEG_CS].selector, HANDLER_SEG);
    assert_int_equal(m->cpu.gpr[X86EMU_ESI], 3);
    machine_free(m);

    m = machine_new(X86EMU_MODEL_386, code_into, sizeof(code_into));
    poke(m, PHYS(HANDLER_SEG, 0), handler, sizeof(handler));
    set_vector(m, 4, HANDLER_SEG, 0);
    run_to_halt(m);
    /* INTO is a trap: it returns after itself. */
    assert_int_equal(m->cpu.gpr[X86EMU_ESI], 5);
    machine_free(m);
}

static void test_enter_leave(void **state)
{
    static const uint8_t code[] = {
        0xbd, 0x34, 0x12,       /* mov bp, 1234h */
        0xc8, 0x10, 0x00, 0x02, /* enter 16, 2 */
        0x89, 0xe1,             /* mov cx, sp */
        0x89, 0xea,             /* mov dx, bp */
        0xc9,                   /* leave */
        0xf4,
    };
    static const uint8_t outer[] = {0xaa, 0xaa};
    struct machine *m = machine_new(X86EMU_MODEL_286, code, sizeof(code));
    const uint8_t *s = m->ram + PHYS(STACK_SEG, 0);

    poke(m, PHYS(STACK_SEG, 0x1232), outer, sizeof(outer));
    run_to_halt(m);
    /* push bp; copy one outer frame pointer; push the new frame; allocate */
    assert_int_equal(s[0xfffc] | s[0xfffd] << 8, 0x1234);
    assert_int_equal(s[0xfffa] | s[0xfffb] << 8, 0xaaaa);
    assert_int_equal(s[0xfff8] | s[0xfff9] << 8, 0xfffc);
    assert_int_equal(m->cpu.gpr[X86EMU_ECX] & 0xffff, 0xffe8);
    assert_int_equal(m->cpu.gpr[X86EMU_EDX] & 0xffff, 0xfffc);
    /* LEAVE undoes it. */
    assert_int_equal(m->cpu.gpr[X86EMU_ESP] & 0xffff, 0xfffe);
    assert_int_equal(m->cpu.gpr[X86EMU_EBP] & 0xffff, 0x1234);
    machine_free(m);
}

static void test_386_extensions(void **state)
{
    static const uint8_t code[] = {
        0x66, 0xb8, 0x78, 0x56, 0x34, 0x12, /* mov eax, 12345678h */
        0x66, 0x0f, 0xbc, 0xd8,             /* bsf ebx, eax */
        0x66, 0x0f, 0xb6, 0xc8,             /* movzx ecx, al */
        0x66, 0xba, 0x0f, 0x00, 0x00, 0x00, /* mov edx, 0Fh */
        0x66, 0x0f, 0xa4, 0xc2, 0x04,       /* shld edx, eax, 4 */
        0x66, 0x0f, 0xbf, 0xf0,             /* movsx esi, ax */
        0x31, 0xff,                         /* xor di, di */
        0x0f, 0x94, 0xc7,                   /* sete bh */
        0xb8, 0x00, 0x80,                   /* mov ax, 8000h */
        0x0f, 0xba, 0xe0, 0x0f,             /* bt ax, 15 */
        0x0f, 0x92, 0xc4,                   /* setc ah */
        0x8c, 0xe5,                         /* mov bp, fs */
        0xf4,
    };
    struct machine *m = machine_new(X86EMU_MODEL_386, code, sizeof(code));

    x86emu_load_segment_real(&m->cpu, X86EMU_SEG_FS, 0x1234);
    run_to_halt(m);
    assert_int_equal(m->cpu.gpr[X86EMU_EBX], 0x0103);
    assert_int_equal(m->cpu.gpr[X86EMU_ECX], 0x78);
    assert_int_equal(m->cpu.gpr[X86EMU_EDX], 0xf1);
    assert_int_equal(m->cpu.gpr[X86EMU_ESI], 0x5678);
    assert_int_equal(m->cpu.gpr[X86EMU_EAX], 0x12340100);
    assert_int_equal(m->cpu.gpr[X86EMU_EBP], 0x1234);
    machine_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_port_io_sizes),
        cmocka_unit_test(test_hlt_stops_and_interrupt_wakes),
        cmocka_unit_test(test_pending_interrupt_waits_for_popf),
        cmocka_unit_test(test_int_through_ivt),
        cmocka_unit_test(test_divide_error),
        cmocka_unit_test(test_a20_wrap),
        cmocka_unit_test(test_rep_movsb_both_directions),
        cmocka_unit_test(test_rep_outsw_both_directions),
        cmocka_unit_test(test_rep_zero_count_and_repe_cmpsb),
        cmocka_unit_test(test_external_interrupt_after_sti_shadow),
        cmocka_unit_test(test_cli_blocks_intr),
        cmocka_unit_test(test_interrupt_inside_rep),
        cmocka_unit_test(test_reset_vector_from_rom),
        cmocka_unit_test(test_segment_overrun),
        cmocka_unit_test(test_triple_fault_shutdown),
        cmocka_unit_test(test_invalid_opcodes),
        cmocka_unit_test(test_flags_exact),
        cmocka_unit_test(test_eflags_model_rules),
        cmocka_unit_test(test_single_step),
        cmocka_unit_test(test_mmio_accesses),
        cmocka_unit_test(test_request_stop_from_callback),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_protected_mode_unsupported),
        cmocka_unit_test(test_fpu_escape),
        cmocka_unit_test(test_bound_and_into),
        cmocka_unit_test(test_enter_leave),
        cmocka_unit_test(test_386_extensions),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
