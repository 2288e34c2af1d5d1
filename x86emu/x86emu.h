/* x86emu: a software x86 CPU.
 *
 * A self-contained interpreter for the 80286 and 80386 instruction sets.
 * It knows nothing about the machine around it: guest memory, I/O ports,
 * the interrupt controller and halting reach the outside world only through
 * the callback table below, so the library can be lifted out unchanged.
 *
 * Real mode is complete (8086/80186/80286 instructions and the 386 real-mode
 * extensions). The 386 model also runs 32-bit protected mode: descriptor
 * tables, segment checks, far transfers through call gates, interrupt and
 * trap gates with privilege changes, and paging with 4 KiB and 4 MiB pages.
 * Task switches and virtual-8086 mode are not implemented (they stop the CPU
 * with X86EMU_STOP_UNSUPPORTED); the 286 model has no protected mode. See
 * x86emu/README.md for the details.
 *
 * Threading: one struct x86emu belongs to one thread. The callbacks run on
 * the thread that called x86emu_run(). The machine raises interrupts with
 * x86emu_set_intr()/x86emu_nmi() from that same thread (typically from a
 * port or memory callback, or between two x86emu_run() calls). */
#ifndef X86EMU_H
#define X86EMU_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>

/* Which processor the core behaves as, where the two differ: the 286 has a
 * 24-bit address bus, no 0x66/0x67/FS/GS/0F-386 opcodes, FLAGS bits 12-15
 * that read as zero in real mode, raises #GP(13) for every real-mode segment
 * overrun (the 386 raises #SS for stack accesses), accepts LOCK anywhere,
 * limits instructions to 10 bytes and updates string-instruction registers
 * in a peculiar way when an iteration faults. */
enum x86emu_model {
    X86EMU_MODEL_286 = 286,
    X86EMU_MODEL_386 = 386,
};

/* Segment registers, in the order the instruction encoding numbers them. */
enum x86emu_sreg {
    X86EMU_SEG_ES,
    X86EMU_SEG_CS,
    X86EMU_SEG_SS,
    X86EMU_SEG_DS,
    X86EMU_SEG_FS,
    X86EMU_SEG_GS,
    X86EMU_SEG_COUNT,
};

/* General registers, in encoding order. */
enum x86emu_gpr {
    X86EMU_EAX,
    X86EMU_ECX,
    X86EMU_EDX,
    X86EMU_EBX,
    X86EMU_ESP,
    X86EMU_EBP,
    X86EMU_ESI,
    X86EMU_EDI,
};

/* EFLAGS (Intel SDM vol. 1 §3.4.3). */
#define X86EMU_FLAG_CF 0x00000001u
#define X86EMU_FLAG_PF 0x00000004u
#define X86EMU_FLAG_AF 0x00000010u
#define X86EMU_FLAG_ZF 0x00000040u
#define X86EMU_FLAG_SF 0x00000080u
#define X86EMU_FLAG_TF 0x00000100u
#define X86EMU_FLAG_IF 0x00000200u
#define X86EMU_FLAG_DF 0x00000400u
#define X86EMU_FLAG_OF 0x00000800u
#define X86EMU_FLAG_IOPL 0x00003000u
#define X86EMU_FLAG_NT 0x00004000u
#define X86EMU_FLAG_RF 0x00010000u
#define X86EMU_FLAG_VM 0x00020000u

/* CR0 (the 286's MSW is its low 16 bits). */
#define X86EMU_CR0_PE 0x00000001u
#define X86EMU_CR0_MP 0x00000002u
#define X86EMU_CR0_EM 0x00000004u
#define X86EMU_CR0_TS 0x00000008u
#define X86EMU_CR0_ET 0x00000010u
#define X86EMU_CR0_NE 0x00000020u
#define X86EMU_CR0_WP 0x00010000u
#define X86EMU_CR0_NW 0x20000000u
#define X86EMU_CR0_CD 0x40000000u
#define X86EMU_CR0_PG 0x80000000u

/* CR4: only page size extensions (4 MiB pages) exist here; setting any
 * other bit raises #GP(0). */
#define X86EMU_CR4_PSE 0x00000010u

/* Exception vectors the core raises. */
enum x86emu_vector {
    X86EMU_VEC_DE = 0,  /* divide error */
    X86EMU_VEC_DB = 1,  /* single step */
    X86EMU_VEC_NMI = 2,
    X86EMU_VEC_BP = 3,  /* INT3 */
    X86EMU_VEC_OF = 4,  /* INTO */
    X86EMU_VEC_BR = 5,  /* BOUND */
    X86EMU_VEC_UD = 6,  /* invalid opcode */
    X86EMU_VEC_NM = 7,  /* no math coprocessor */
    X86EMU_VEC_DF = 8,  /* double fault */
    X86EMU_VEC_TS = 10, /* invalid TSS */
    X86EMU_VEC_NP = 11, /* segment not present */
    X86EMU_VEC_SS = 12, /* stack segment overrun / stack fault */
    X86EMU_VEC_GP = 13, /* general protection / segment overrun */
    X86EMU_VEC_PF = 14, /* page fault */
};

/* A segment register with its hidden descriptor cache, as the processor
 * holds it. In real mode base = selector << 4 and the limit and attributes
 * keep whatever was last loaded (0xFFFF and a present read/write data
 * segment after reset). attr is descriptor bytes 5 and 6 with the limit
 * nibble cleared: bits 0-7 the access byte (type, S, DPL, P), bit 12 AVL,
 * bit 14 D/B, bit 15 G. limit is the effective byte limit. */
struct x86emu_segment {
    uint16_t selector;
    uint16_t attr;
    uint32_t base;
    uint32_t limit;
};

#define X86EMU_SEGATTR_DB 0x4000u /* 32-bit code / stack segment */

/* GDTR and IDTR. */
struct x86emu_dtr {
    uint32_t base;
    uint16_t limit;
};

/* How the CPU reaches the machine. Addresses are physical (after paging
 * and A20 masking); page tables, descriptor tables and the TSS are read and
 * written through these callbacks too. Sizes are 1, 2 or 4; values are little-endian in the low bits.
 * An access that crosses a 4 KiB page boundary arrives as single bytes.
 * Every callback but map_ram is mandatory. */
struct x86emu_ops {
    uint32_t (*mem_read)(void *opaque, uint32_t addr, unsigned size);
    void (*mem_write)(void *opaque, uint32_t addr, uint32_t value,
                      unsigned size);
    uint32_t (*io_in)(void *opaque, uint16_t port, unsigned size);
    void (*io_out)(void *opaque, uint16_t port, uint32_t value, unsigned size);
    /* Called when the INTR line is asserted and the CPU accepts an
     * interrupt (IF=1, instruction boundary): the vector of the highest
     * pending interrupt, or -1 if it went away (then nothing happens). */
    int (*int_ack)(void *opaque);
    /* The CPU executed HLT and now waits for an interrupt. */
    void (*halt)(void *opaque);
    /* Optional fast path: a host pointer to the 4 KiB page of ordinary RAM
     * at physical address page (a multiple of 4096), or NULL when the page
     * is not plain memory (MMIO, unmapped, or ROM when write is true).
     * The CPU caches the answer; call x86emu_flush_tlb() whenever it would
     * change (RAM remapped, PAM/shadow registers written). */
    uint8_t *(*map_ram)(void *opaque, uint32_t page, bool write);
};

/* Why x86emu_run() returned. */
enum x86emu_stop {
    X86EMU_STOP_BUDGET,   /* executed max_instructions */
    X86EMU_STOP_HALT,     /* HLT, no interrupt deliverable */
    X86EMU_STOP_REQUEST,  /* x86emu_request_stop() was called */
    X86EMU_STOP_SHUTDOWN, /* triple fault; only x86emu_reset() revives it */
    /* The guest asked for something the core does not implement:
     * - a 286 model set CR0.PE (the 286 has no protected mode here); the
     *   instruction has completed, and running again returns this again
     *   until x86emu_reset();
     * - a 386 model reached a hardware task switch (far JMP/CALL to a TSS
     *   or task gate, an interrupt through a task gate, IRET with NT=1) or
     *   virtual-8086 mode (IRET from CPL 0 with VM=1 in the popped EFLAGS);
     *   nothing of that instruction or event happened, EIP points at the
     *   instruction (an external interrupt that was acknowledged is lost),
     *   and running again returns this again. */
    X86EMU_STOP_UNSUPPORTED,
};

#define X86EMU_TLB_ENTRIES 256

/* Internal state; the machine must not touch it. */
struct x86emu_tlb_entry {
    uint32_t read_tag;  /* linear page address, or 1 when empty */
    uint32_t write_tag;
    uint8_t *host;      /* host address of the page's first byte */
};

struct x86emu_private {
    const struct x86emu_ops *ops;
    void *opaque;
    /* EFLAGS without CF/PF/AF/ZF/SF/OF, which are kept lazily in lf_res
     * and lf_aux (see the flags comment in x86emu_priv.h). */
    uint32_t eflags;
    uint32_t lf_res;
    uint32_t lf_aux;
    /* Physical address mask: the address bus width and the A20 gate. */
    uint32_t addr_mask;
    bool a20;
    /* Fast segment limit check: an access of n bytes at offset off is
     * in bounds when off + n <= seg_end (0 forces the careful path). */
    uint64_t seg_end[X86EMU_SEG_COUNT];
    /* The same for writes (0 when the segment is not writable). */
    uint64_t seg_wend[X86EMU_SEG_COUNT];
    /* Current privilege level: 0 in real mode, set by CS loads in
     * protected mode (it is not derived from CS.RPL, which is stale right
     * after CR0.PE is set). */
    unsigned cpl;
    /* Interrupt and run control. */
    uint32_t events;       /* X86EMU_EV_* bits, checked every instruction */
    bool intr;             /* INTR line level */
    bool halted;
    uint64_t budget;
    /* Exception in flight. */
    /* Instruction fetch window: for an eip with eip - fetch_eip <
     * fetch_span, the instruction's bytes (up to 15) are at fetch_host +
     * (eip - fetch_eip), all in one RAM page and inside the CS limit. */
    uint32_t fetch_eip;
    uint32_t fetch_span;
    uint64_t fetch_limit_end; /* CS limit + 1 (or 0x10000), for fetching */
    const uint8_t *fetch_host;
    uint8_t fetch_buf[16]; /* bytes of an instruction outside the window */
    const uint8_t *fetch_end;
    unsigned maxlen;       /* longest instruction: 10 (286) or 15 */
    uint32_t eip_mask;     /* 0xffff while CS is a 16-bit segment */
    uint64_t insn_template; /* decoder prefix state for the current CS */
    /* A page fault cut the slow-path fetch buffer short: fetching beyond
     * fetch_end raises #PF at fetch_pf_lin instead of #GP. */
    bool fetch_pf_valid;
    uint32_t fetch_pf_lin;
    uint32_t fetch_pf_err;
    jmp_buf fault_jmp;
    int fault_vector;
    uint32_t fault_error;  /* error code of fault_vector */
    uint32_t event_ext;    /* 1 while delivering an external event/fault */
    int fault_depth;       /* nonzero while an interrupt is being delivered */
    int delivering;        /* the vector being delivered, -1 if external */
    uint32_t insn_eip;     /* offset of the instruction being executed */
    bool tlb_large;        /* a 4 MiB page is cached: INVLPG flushes all */
    struct x86emu_tlb_entry tlb[X86EMU_TLB_ENTRIES];
};

struct x86emu {
    uint32_t gpr[8];
    uint32_t eip;
    struct x86emu_segment seg[X86EMU_SEG_COUNT];
    struct x86emu_dtr gdtr, idtr;
    struct x86emu_segment ldtr, tr;
    uint32_t cr0, cr2, cr3, cr4;
    uint32_t dr[8];
    enum x86emu_model model;
    /* The machine has a local APIC: CPUID leaf 1 reports it (EDX bit 9).
     * Set it after x86emu_init(); reset leaves it alone. */
    bool cpuid_apic;
    uint64_t icount; /* instructions retired since reset */
    struct x86emu_private priv;
};

/* Sets up a CPU of the given model and resets it. ops and opaque must stay
 * valid for the CPU's life. */
void x86emu_init(struct x86emu *cpu, enum x86emu_model model,
                 const struct x86emu_ops *ops, void *opaque);
/* Processor RESET: real mode, CS:IP = F000:FFF0 with the CS base at the
 * top of the address space (0xFFFF0000 on a 386, 0xFF0000 on a 286), so
 * the first fetch is 16 bytes below 4 GiB (16 MiB). A20 is left as the
 * machine set it; the TLB is flushed. */
void x86emu_reset(struct x86emu *cpu);
/* Executes up to max_instructions instructions and says why it stopped.
 * Interrupts are taken at instruction boundaries and between the iterations
 * of a REP string instruction, which counts once per batch of up to 16384
 * iterations (it resumes from its first prefix, as after an interrupt). */
enum x86emu_stop x86emu_run(struct x86emu *cpu, uint64_t max_instructions);
/* One instruction (x86emu_run with a budget of 1). */
enum x86emu_stop x86emu_step(struct x86emu *cpu);

/* EFLAGS as the guest would read it with PUSHF(D), and its replacement.
 * x86emu_set_eflags obeys the model's fixed bits (bit 1 set, bits 3/5/15
 * clear, and on a 286 in real mode bits 12-15 clear) but no privilege
 * rules. */
uint32_t x86emu_get_eflags(const struct x86emu *cpu);
void x86emu_set_eflags(struct x86emu *cpu, uint32_t value);

/* Loads a segment register as real mode does: selector, base =
 * selector << 4, limit and attributes untouched. */
void x86emu_load_segment_real(struct x86emu *cpu, enum x86emu_sreg sreg,
                              uint16_t selector);
/* Tells the CPU that the machine changed cpu->seg[] directly. */
void x86emu_segments_changed(struct x86emu *cpu);

/* A20 gate (port 0x92 / keyboard controller): when disabled, address bit 20
 * is forced to zero, so real-mode addresses wrap at 1 MiB as on an 8086. */
void x86emu_set_a20(struct x86emu *cpu, bool enabled);
/* The INTR pin level (an interrupt controller output). */
void x86emu_set_intr(struct x86emu *cpu, bool asserted);
/* An NMI edge: delivered at the next instruction boundary. */
void x86emu_nmi(struct x86emu *cpu);
/* Makes x86emu_run() return X86EMU_STOP_REQUEST at the next instruction
 * boundary; safe to call from a callback. */
void x86emu_request_stop(struct x86emu *cpu);
/* Forgets every cached translation (see struct x86emu_ops.map_ram), both
 * map_ram answers and page-table walks. */
void x86emu_flush_tlb(struct x86emu *cpu);
/* True after HLT until an interrupt arrives. */
bool x86emu_halted(const struct x86emu *cpu);

#endif
