/* x86emu internals shared by cpu.c (run loop, interrupts, memory slow
 * paths) and the instruction files exec.c and exec_0f.c.
 *
 * Design, chosen for speed without giving up exactness:
 *
 * - Dispatch is a plain switch on the opcode byte, decoding every time. A
 *   predecoded cache would need invalidation on every guest store to a code
 *   page (and real-mode firmware patches itself), which costs more than the
 *   decode it saves for the short instructions that dominate; the switch
 *   compiles to one well-predicted indirect jump per instruction.
 * - Instruction bytes come straight from host memory: at the start of an
 *   instruction one TLB probe yields a host pointer and a window that is
 *   guaranteed to be inside the page, inside the CS limit and no longer than
 *   the maximum instruction length, so each byte fetch is a compare and a
 *   load. Only instructions straddling a page or the limit are copied
 *   byte by byte into a buffer first.
 * - Data accesses go through a 256-entry direct-mapped TLB from linear page
 *   to host page (filled by the machine's map_ram callback); everything else
 *   (MMIO, page crossings) takes the out-of-line slow path in cpu.c.
 * - Arithmetic flags are lazy: an ALU operation stores its sign-extended
 *   result and a word of carry bits (below), and CF/OF/AF/ZF/SF/PF are only
 *   computed when an instruction asks (Jcc, ADC, PUSHF, ...). Most results
 *   are overwritten before anyone looks at their flags.
 * - Exceptions unwind with longjmp to x86emu_run(), which delivers them.
 *   Instructions are written so that nothing architectural is committed
 *   before the last access that can fault, which makes every instruction
 *   restartable from priv.insn_eip without an undo log.
 */
#ifndef X86EMU_PRIV_H
#define X86EMU_PRIV_H

#include <stdnoreturn.h>
#include <string.h>

#include "x86emu.h"

#define X86EMU_INLINE static inline __attribute__((always_inline))
#define X86EMU_LIKELY(x) __builtin_expect(!!(x), 1)
#define X86EMU_UNLIKELY(x) __builtin_expect(!!(x), 0)

#define X86EMU_PAGE_SIZE 4096u
#define X86EMU_PAGE_MASK (~(X86EMU_PAGE_SIZE - 1))

/* Arithmetic flag bits, the ones the lazy scheme covers. */
#define X86EMU_FLAGS_ARITH                                                     \
    (X86EMU_FLAG_CF | X86EMU_FLAG_PF | X86EMU_FLAG_AF | X86EMU_FLAG_ZF |       \
     X86EMU_FLAG_SF | X86EMU_FLAG_OF)

/* priv.events bits: anything that must be looked at between instructions.
 * The run loop tests the whole word once per instruction. */
enum {
    X86EMU_EV_INTR = 1u << 0,   /* INTR line asserted */
    X86EMU_EV_NMI = 1u << 1,    /* NMI edge pending */
    X86EMU_EV_STOP = 1u << 2,   /* x86emu_request_stop() */
    X86EMU_EV_TF = 1u << 3,     /* EFLAGS.TF set or a single-step trap due */
    X86EMU_EV_SHADOW = 1u << 4, /* MOV SS / POP SS / STI: no interrupt here */
    X86EMU_EV_HALT = 1u << 5,   /* halted */
    X86EMU_EV_SHUTDOWN = 1u << 6,
    X86EMU_EV_STEP_DUE = 1u << 7, /* the instruction just run began with TF */
    X86EMU_EV_NMI_BLOCKED = 1u << 8, /* in an NMI handler until IRET */
    X86EMU_EV_PROTECTED = 1u << 9,   /* CR0.PE set on a 286 */
};

/* ------------------------------------------------------------------ */
/* Lazy flags.
 *
 * The six arithmetic flags live only in two words (priv.eflags holds the
 * other bits):
 *   lf_res: the last result sign-extended to 32 bits, so ZF = (lf_res == 0)
 *   lf_aux: bit 31  CF
 *           bit 30  CF ^ OF  (so OF = bit 31 ^ bit 30)
 *           bit 4   sign delta: SF = bit 31 of lf_res ^ this bit
 *           bit 3   AF
 *           bits 8-15 parity delta: PF = even parity of (lf_res ^ these)
 * An ALU operation writes the result and its carry bits and leaves both
 * deltas zero. The deltas exist so that any flag combination (POPF, SAHF,
 * IRET) can be written in the same form: no "is it lazy?" test anywhere.
 *
 * For an addition the carry-out vector c = (a & b) | ((a | b) & ~r) has
 * the carry out of the top bit (CF) at bit n-1, the carry into it at bit
 * n-2 (OF is their XOR) and the carry out of bit 3 (AF) at bit 3; shifting c
 * left by 32 - n puts the first two at bits 31 and 30. Subtraction uses the
 * borrow vector (~a & b) | (~(a ^ b) & r) the same way. Both stay right
 * with a carry or borrow in, so ADC and SBB need nothing special. */

#define LF_AF_BIT 3
#define LF_SD_BIT 4
#define LF_PDB_SHIFT 8

X86EMU_INLINE uint32_t x86emu_sext(uint32_t v, unsigned bits)
{
    if (bits == 8)
        return (uint32_t)(int32_t)(int8_t)v;
    if (bits == 16)
        return (uint32_t)(int32_t)(int16_t)v;
    return v;
}

X86EMU_INLINE uint32_t x86emu_size_mask(unsigned bits)
{
    return bits == 32 ? 0xffffffffu : (1u << bits) - 1;
}

X86EMU_INLINE void lf_arith(struct x86emu *cpu, uint32_t res, uint32_t carries,
                            unsigned bits)
{
    cpu->priv.lf_res = x86emu_sext(res, bits);
    cpu->priv.lf_aux = ((carries << (32 - bits)) & 0xc0000000u) |
                       (carries & 8u);
}

X86EMU_INLINE void lf_logic(struct x86emu *cpu, uint32_t res, unsigned bits)
{
    cpu->priv.lf_res = x86emu_sext(res, bits);
    cpu->priv.lf_aux = 0;
}

/* A result whose CF, OF and AF the instruction computed itself (shifts,
 * multiplication, BCD adjustment, INC/DEC). */
X86EMU_INLINE void lf_explicit(struct x86emu *cpu, uint32_t res, unsigned bits,
                               unsigned cf, unsigned of, unsigned af)
{
    cpu->priv.lf_res = x86emu_sext(res, bits);
    cpu->priv.lf_aux = (uint32_t)cf << 31 | (uint32_t)(cf ^ of) << 30 |
                       (uint32_t)af << LF_AF_BIT;
}

X86EMU_INLINE unsigned x86emu_parity(uint32_t v)
{
    return !__builtin_parity(v & 0xff);
}

X86EMU_INLINE unsigned get_cf(const struct x86emu *cpu)
{
    return cpu->priv.lf_aux >> 31;
}

X86EMU_INLINE unsigned get_zf(const struct x86emu *cpu)
{
    return cpu->priv.lf_res == 0;
}

X86EMU_INLINE unsigned get_sf(const struct x86emu *cpu)
{
    return ((cpu->priv.lf_res >> 31) ^ (cpu->priv.lf_aux >> LF_SD_BIT)) & 1;
}

X86EMU_INLINE unsigned get_of(const struct x86emu *cpu)
{
    return ((cpu->priv.lf_aux >> 31) ^ (cpu->priv.lf_aux >> 30)) & 1;
}

X86EMU_INLINE unsigned get_pf(const struct x86emu *cpu)
{
    return x86emu_parity(cpu->priv.lf_res ^
                         (cpu->priv.lf_aux >> LF_PDB_SHIFT));
}

X86EMU_INLINE unsigned get_af(const struct x86emu *cpu)
{
    return (cpu->priv.lf_aux >> LF_AF_BIT) & 1;
}

static inline uint32_t flags_arith(const struct x86emu *cpu)
{
    return get_cf(cpu) | get_pf(cpu) << 2 | get_af(cpu) << 4 |
           get_zf(cpu) << 6 | get_sf(cpu) << 7 | get_of(cpu) << 11;
}

/* EFLAGS as a whole. */
static inline uint32_t flags_read(const struct x86emu *cpu)
{
    return cpu->priv.eflags | flags_arith(cpu);
}

/* Stores arbitrary arithmetic flags (the X86EMU_FLAGS_ARITH bits of f). */
static inline void lf_from_flags(struct x86emu *cpu, uint32_t f)
{
    uint32_t res = (f & X86EMU_FLAG_ZF) ? 0 : 1;
    uint32_t pdb = res ^ ((f & X86EMU_FLAG_PF) ? 0 : 1);
    uint32_t cf = f & X86EMU_FLAG_CF, of = (f >> 11) & 1;

    cpu->priv.lf_res = res;
    cpu->priv.lf_aux = cf << 31 | (cf ^ of) << 30 | pdb << LF_PDB_SHIFT |
                       ((f >> 7) & 1) << LF_SD_BIT |
                       ((f >> 4) & 1) << LF_AF_BIT;
}

/* Changes CF and OF, keeping the other four. */
static inline void lf_set_cf_of(struct x86emu *cpu, unsigned cf, unsigned of)
{
    cpu->priv.lf_aux = (cpu->priv.lf_aux & 0x3fffffffu) |
                       (uint32_t)cf << 31 | (uint32_t)(cf ^ of) << 30;
}

static inline void lf_set_cf(struct x86emu *cpu, unsigned cf)
{
    lf_set_cf_of(cpu, cf, get_of(cpu));
}

/* Jcc/SETcc condition, encoding order (O, NO, B, AE, E, NE, BE, A, S, NS,
 * P, NP, L, GE, LE, G). */
X86EMU_INLINE bool x86emu_cond(const struct x86emu *cpu, unsigned cc)
{
    bool r;

    switch (cc >> 1) {
    case 0: r = get_of(cpu); break;
    case 1: r = get_cf(cpu); break;
    case 2: r = get_zf(cpu); break;
    case 3: r = get_cf(cpu) | get_zf(cpu); break;
    case 4: r = get_sf(cpu); break;
    case 5: r = get_pf(cpu); break;
    case 6: r = get_sf(cpu) != get_of(cpu); break;
    default: r = get_zf(cpu) || get_sf(cpu) != get_of(cpu); break;
    }
    return r ^ (cc & 1);
}

/* ------------------------------------------------------------------ */
/* Registers. 8-bit register numbers 0-3 are AL..BL, 4-7 AH..BH. */

X86EMU_INLINE uint32_t reg_read(const struct x86emu *cpu, unsigned r,
                                unsigned bits)
{
    switch (bits) {
    case 8:
        return r < 4 ? cpu->gpr[r] & 0xff : (cpu->gpr[r - 4] >> 8) & 0xff;
    case 16:
        return cpu->gpr[r] & 0xffff;
    default:
        return cpu->gpr[r];
    }
}

X86EMU_INLINE void reg_write(struct x86emu *cpu, unsigned r, unsigned bits,
                             uint32_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* Partial registers as narrow stores into the low bytes. */
    uint16_t w = (uint16_t)v;
    uint8_t b = (uint8_t)v;

    switch (bits) {
    case 8:
        memcpy((uint8_t *)&cpu->gpr[r & 3] + (r >> 2), &b, 1);
        break;
    case 16:
        memcpy(&cpu->gpr[r], &w, 2);
        break;
    default:
        cpu->gpr[r] = v;
        break;
    }
#else
    switch (bits) {
    case 8:
        if (r < 4)
            cpu->gpr[r] = (cpu->gpr[r] & ~0xffu) | (v & 0xff);
        else
            cpu->gpr[r - 4] = (cpu->gpr[r - 4] & ~0xff00u) | (v & 0xff) << 8;
        break;
    case 16:
        cpu->gpr[r] = (cpu->gpr[r] & ~0xffffu) | (v & 0xffff);
        break;
    default:
        cpu->gpr[r] = v;
        break;
    }
#endif
}

/* ------------------------------------------------------------------ */
/* Memory. */

X86EMU_INLINE uint32_t x86emu_load_le(const uint8_t *p, unsigned size)
{
    uint32_t v;

    switch (size) {
    case 1:
        return *p;
    case 2: {
        uint16_t w;
        memcpy(&w, p, 2);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap16(w);
#endif
        return w;
    }
    default:
        memcpy(&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap32(v);
#endif
        return v;
    }
}

X86EMU_INLINE void x86emu_store_le(uint8_t *p, uint32_t v, unsigned size)
{
    switch (size) {
    case 1:
        *p = (uint8_t)v;
        break;
    case 2: {
        uint16_t w = (uint16_t)v;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap16(w);
#endif
        memcpy(p, &w, 2);
        break;
    }
    default:
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap32(v);
#endif
        memcpy(p, &v, 4);
        break;
    }
}

uint32_t x86emu_lin_read_slow(struct x86emu *cpu, uint32_t lin, unsigned size);
void x86emu_lin_write_slow(struct x86emu *cpu, uint32_t lin, uint32_t v,
                           unsigned size);
/* The host byte behind a linear address for instruction fetch, filling the
 * TLB, or NULL when the page is not RAM. */
const uint8_t *x86emu_code_page(struct x86emu *cpu, uint32_t lin);

X86EMU_INLINE struct x86emu_tlb_entry *tlb_entry(struct x86emu *cpu,
                                                 uint32_t lin)
{
    return &cpu->priv.tlb[(lin >> 12) & (X86EMU_TLB_ENTRIES - 1)];
}

X86EMU_INLINE uint32_t lin_read(struct x86emu *cpu, uint32_t lin,
                                unsigned size)
{
    const struct x86emu_tlb_entry *e = tlb_entry(cpu, lin);
    uint32_t off = lin & ~X86EMU_PAGE_MASK;

    if (X86EMU_LIKELY(e->read_tag == lin - off &&
                      off <= X86EMU_PAGE_SIZE - size))
        return x86emu_load_le(e->host + off, size);
    return x86emu_lin_read_slow(cpu, lin, size);
}

X86EMU_INLINE void lin_write(struct x86emu *cpu, uint32_t lin, uint32_t v,
                             unsigned size)
{
    const struct x86emu_tlb_entry *e = tlb_entry(cpu, lin);
    uint32_t off = lin & ~X86EMU_PAGE_MASK;

    if (X86EMU_LIKELY(e->write_tag == lin - off &&
                      off <= X86EMU_PAGE_SIZE - size)) {
        x86emu_store_le(e->host + off, v, size);
        return;
    }
    x86emu_lin_write_slow(cpu, lin, v, size);
}

/* Segment checks. The fast test covers every in-bounds access of a
 * present, accessible segment; anything else goes to the careful check,
 * which raises the exception the model specifies. */
void x86emu_seg_check_slow(struct x86emu *cpu, unsigned sreg, uint32_t off,
                           unsigned size, bool write);
/* Whether the access would pass, without raising (for the 286's string
 * instruction fault behaviour). */
bool x86emu_seg_ok(const struct x86emu *cpu, unsigned sreg, uint32_t off,
                   unsigned size, bool write);

X86EMU_INLINE uint32_t seg_lin(struct x86emu *cpu, unsigned sreg, uint32_t off,
                               unsigned size, bool write)
{
    uint64_t end = write ? cpu->priv.seg_wend[sreg] : cpu->priv.seg_end[sreg];

    if (X86EMU_UNLIKELY((uint64_t)off + size > end))
        x86emu_seg_check_slow(cpu, sreg, off, size, write);
    return cpu->seg[sreg].base + off;
}

/* Makes sure a write of size bytes at lin will not fault (paging), so an
 * instruction can update flags between reading and writing the operand. */
void x86emu_probe_write_slow(struct x86emu *cpu, uint32_t lin, unsigned size);

X86EMU_INLINE void lin_probe_write(struct x86emu *cpu, uint32_t lin,
                                   unsigned size)
{
    const struct x86emu_tlb_entry *e = tlb_entry(cpu, lin);
    uint32_t off = lin & ~X86EMU_PAGE_MASK;

    if (X86EMU_LIKELY(e->write_tag == lin - off &&
                      off <= X86EMU_PAGE_SIZE - size))
        return;
    x86emu_probe_write_slow(cpu, lin, size);
}

X86EMU_INLINE uint32_t mem_read(struct x86emu *cpu, unsigned sreg,
                                uint32_t off, unsigned size)
{
    return lin_read(cpu, seg_lin(cpu, sreg, off, size, false), size);
}

X86EMU_INLINE void mem_write(struct x86emu *cpu, unsigned sreg, uint32_t off,
                             uint32_t v, unsigned size)
{
    lin_write(cpu, seg_lin(cpu, sreg, off, size, true), v, size);
}

/* ------------------------------------------------------------------ */
/* Exceptions, interrupts, segment loads (cpu.c). */

/* Raises an exception. Vectors that push an error code in protected mode
 * push 0 (with the EXT bit while an event is being delivered). */
noreturn void x86emu_raise(struct x86emu *cpu, int vector);
/* Raises an exception with an error code (a selector error code gets the
 * EXT bit added while an event is being delivered). */
noreturn void x86emu_raise_err(struct x86emu *cpu, int vector, uint32_t err);
/* Abandons the current instruction and stops with X86EMU_STOP_UNSUPPORTED
 * (task switches, virtual-8086 mode). */
noreturn void x86emu_unsupported(struct x86emu *cpu);
/* The pseudo vector x86emu_unsupported() raises. */
#define X86EMU_FAULT_UNSUPPORTED (-2)
/* #GP(0) or, for a stack access on a 386, #SS(0). */
noreturn void x86emu_raise_seg(struct x86emu *cpu, unsigned sreg);
/* How an interrupt is delivered (x86emu_interrupt flags). */
enum {
    X86EMU_INT_SOFT = 1u << 0, /* INT n/INT3/INTO: gate DPL checked */
    X86EMU_INT_ERR = 1u << 1,  /* push the error code (protected mode) */
};
/* Delivers an interrupt with the given return offset: through the IVT in
 * real mode, through the IDT in protected mode. */
void x86emu_interrupt(struct x86emu *cpu, unsigned vector, uint32_t ret_eip,
                      unsigned how, uint32_t err);
/* Protected-mode interrupt delivery (protected.c). */
void x86emu_pm_interrupt(struct x86emu *cpu, unsigned vector, uint32_t ret_eip,
                         unsigned how, uint32_t err);
void x86emu_load_sreg(struct x86emu *cpu, unsigned sreg, uint16_t selector);
/* Writes EFLAGS as POPF/IRET do (fixed bits and the model's rules). */
void x86emu_write_eflags(struct x86emu *cpu, uint32_t value, uint32_t mask);
/* The bits of EFLAGS that POPF can change at all on this model/mode. */
uint32_t x86emu_eflags_writable(const struct x86emu *cpu);
/* The bits of EFLAGS that POPF/IRET may change at the current privilege
 * level (IOPL only at CPL 0, IF only at CPL <= IOPL). */
uint32_t x86emu_eflags_priv_mask(const struct x86emu *cpu);
/* CR0 writes (LMSW, MOV CR0, CLTS) and CR4 writes (MOV CR4). */
void x86emu_write_cr0(struct x86emu *cpu, uint32_t value);
void x86emu_write_cr4(struct x86emu *cpu, uint32_t value);

static inline bool x86emu_protected(const struct x86emu *cpu)
{
    return cpu->cr0 & X86EMU_CR0_PE;
}

/* #GP(0) unless CPL is 0 (privileged instructions). */
static inline void x86emu_require_cpl0(struct x86emu *cpu)
{
    if (cpu->priv.cpl)
        x86emu_raise(cpu, X86EMU_VEC_GP);
}

/* Segment-cache helpers (cpu.c). */
void x86emu_seg_update(struct x86emu *cpu, unsigned sreg);
bool x86emu_seg_cache_ok(const struct x86emu_segment *s, bool prot,
                         uint32_t off, unsigned size, bool write);
/* A new CPL (CS loads in protected mode); flushes the TLB when paging is
 * on and the user/supervisor distinction changes. */
void x86emu_set_cpl(struct x86emu *cpu, unsigned cpl);

/* Linear accesses that bypass the TLB and the segment checks, with the
 * page protection of a supervisor (user = false) or user access: for
 * descriptor tables, the TSS and stacks of another privilege level. A
 * multi-byte write that crosses a page checks both pages first. */
uint32_t x86emu_lin_read_as(struct x86emu *cpu, uint32_t lin, unsigned size,
                            bool user);
void x86emu_lin_write_as(struct x86emu *cpu, uint32_t lin, uint32_t v,
                         unsigned size, bool user);
/* INVLPG: forgets the translation of one linear page. */
void x86emu_invlpg(struct x86emu *cpu, uint32_t lin);

/* Protected mode (protected.c). */
struct x86emu_insn;
void x86emu_far_jump_pm(struct x86emu *cpu, uint16_t sel, uint32_t off,
                        bool o32);
void x86emu_far_call_pm(struct x86emu *cpu, uint16_t sel, uint32_t off,
                        bool o32, uint32_t ret_eip);
void x86emu_far_return_pm(struct x86emu *cpu, bool o32, uint32_t release);
void x86emu_iret_pm(struct x86emu *cpu, bool o32);
/* 0F 00 (SLDT STR LLDT LTR VERR VERW), LAR and LSL. */
void x86emu_group6(struct x86emu *cpu, struct x86emu_insn *in);
void x86emu_lar_lsl(struct x86emu *cpu, struct x86emu_insn *in, bool lsl);
/* #GP(0) unless the port range is accessible (CPL <= IOPL, or the TSS
 * I/O permission bitmap allows it). */
void x86emu_check_io(struct x86emu *cpu, uint16_t port, unsigned size);
/* CPUID with EAX/ECX from the registers. */
void x86emu_cpuid(struct x86emu *cpu);

static inline bool x86emu_is_286(const struct x86emu *cpu)
{
    return cpu->model == X86EMU_MODEL_286;
}

/* ------------------------------------------------------------------ */
/* Instruction decoding. */

struct x86emu_insn {
    const uint8_t *p;     /* next byte to fetch */
    const uint8_t *end;   /* first byte that may not be fetched */
    const uint8_t *start; /* first byte of the instruction */
    uint32_t eip;         /* its offset (also in priv.insn_eip) */
    /* Prefix state, initialised in one store from priv.insn_template. */
    union {
        struct {
            bool o32, a32;        /* operand/address size is 32 bits */
            uint8_t rep;          /* 0, 0xf2 or 0xf3 */
            bool lock;
            int8_t seg_override;  /* -1 or X86EMU_SEG_* */
            bool ea_uses_esp;     /* SIB base ESP: POP r/m adjusts */
            uint8_t modrm;
            uint8_t unused;
        };
        uint64_t state;
    };
    unsigned ea_seg;
    uint32_t ea;
};

noreturn void x86emu_fetch_fault(struct x86emu *cpu, const uint8_t *end);
/* The bytes of the instruction at CS:eip when it is outside the fetch
 * window; they end at priv.fetch_end. */
const uint8_t *x86emu_fetch_slow(struct x86emu *cpu, uint32_t eip);
/* Forgets the instruction fetch window (CS or the memory map changed). */
static inline void x86emu_fetch_invalidate(struct x86emu *cpu)
{
    cpu->priv.fetch_span = 0;
}
int x86emu_service_events(struct x86emu *cpu);

/* X86EMU_EV_INTR means "an interrupt can be taken now": the INTR line is high
 * and IF is set. Folding IF in keeps a guest that runs with interrupts off
 * while a request is pending (firmware between CLI and its PIC set-up) on the
 * fast path instead of servicing events after every instruction. Called
 * after every change of the line or of IF. */
static inline void x86emu_sync_intr(struct x86emu *cpu)
{
    if (cpu->priv.intr && (cpu->priv.eflags & X86EMU_FLAG_IF))
        cpu->priv.events |= X86EMU_EV_INTR;
    else
        cpu->priv.events &= ~X86EMU_EV_INTR;
}
/* A stop condition the last instruction created (HLT, stop request,
 * shutdown, CR0.PE), or -1; takes no interrupts. */
int x86emu_pending_stop(struct x86emu *cpu);

X86EMU_INLINE uint8_t fetch8(struct x86emu *cpu, struct x86emu_insn *in)
{
    if (X86EMU_UNLIKELY(in->p >= in->end))
        x86emu_fetch_fault(cpu, in->end);
    return *in->p++;
}

X86EMU_INLINE uint32_t fetch16(struct x86emu *cpu, struct x86emu_insn *in)
{
    uint32_t v;

    if (X86EMU_UNLIKELY(in->end - in->p < 2))
        x86emu_fetch_fault(cpu, in->end);
    v = x86emu_load_le(in->p, 2);
    in->p += 2;
    return v;
}

X86EMU_INLINE uint32_t fetch32(struct x86emu *cpu, struct x86emu_insn *in)
{
    uint32_t v;

    if (X86EMU_UNLIKELY(in->end - in->p < 4))
        x86emu_fetch_fault(cpu, in->end);
    v = x86emu_load_le(in->p, 4);
    in->p += 4;
    return v;
}

/* An immediate of the operand size. */
X86EMU_INLINE uint32_t fetch_imm(struct x86emu *cpu, struct x86emu_insn *in,
                                 unsigned bits)
{
    if (bits == 8)
        return fetch8(cpu, in);
    if (bits == 16)
        return fetch16(cpu, in);
    return fetch32(cpu, in);
}

/* The offset after the bytes fetched so far, wrapped to the code segment's
 * size. */
X86EMU_INLINE uint32_t insn_next_eip(const struct x86emu *cpu,
                                     const struct x86emu_insn *in)
{
    return (in->eip + (uint32_t)(in->p - in->start)) & cpu->priv.eip_mask;
}

X86EMU_INLINE unsigned insn_seg(const struct x86emu_insn *in, unsigned dflt)
{
    return in->seg_override >= 0 ? (unsigned)in->seg_override : dflt;
}

/* Reads the ModRM byte and, for a memory operand, the rest of the address
 * (SIB, displacement) into in->ea / in->ea_seg. */
X86EMU_INLINE void decode_modrm(struct x86emu *cpu, struct x86emu_insn *in)
{
    uint8_t m = fetch8(cpu, in);
    unsigned mod = m >> 6, rm = m & 7;
    uint32_t ea = 0;
    unsigned seg = X86EMU_SEG_DS;

    in->modrm = m;
    if (mod == 3)
        return;
    if (!in->a32) {
        switch (rm) {
        case 0: ea = cpu->gpr[X86EMU_EBX] + cpu->gpr[X86EMU_ESI]; break;
        case 1: ea = cpu->gpr[X86EMU_EBX] + cpu->gpr[X86EMU_EDI]; break;
        case 2:
            ea = cpu->gpr[X86EMU_EBP] + cpu->gpr[X86EMU_ESI];
            seg = X86EMU_SEG_SS;
            break;
        case 3:
            ea = cpu->gpr[X86EMU_EBP] + cpu->gpr[X86EMU_EDI];
            seg = X86EMU_SEG_SS;
            break;
        case 4: ea = cpu->gpr[X86EMU_ESI]; break;
        case 5: ea = cpu->gpr[X86EMU_EDI]; break;
        case 6:
            if (mod == 0) {
                ea = fetch16(cpu, in);
            } else {
                ea = cpu->gpr[X86EMU_EBP];
                seg = X86EMU_SEG_SS;
            }
            break;
        default: ea = cpu->gpr[X86EMU_EBX]; break;
        }
        if (mod == 1)
            ea += (uint32_t)(int32_t)(int8_t)fetch8(cpu, in);
        else if (mod == 2)
            ea += fetch16(cpu, in);
        ea &= 0xffff;
    } else {
        in->ea_uses_esp = false;
        if (rm == 4) {
            uint8_t sib = fetch8(cpu, in);
            unsigned base = sib & 7, index = (sib >> 3) & 7;

            if (base == 5 && mod == 0) {
                ea = fetch32(cpu, in);
            } else {
                ea = cpu->gpr[base];
                if (base == X86EMU_ESP || base == X86EMU_EBP)
                    seg = X86EMU_SEG_SS;
                in->ea_uses_esp = base == X86EMU_ESP;
            }
            if (index != 4)
                ea += cpu->gpr[index] << (sib >> 6);
        } else if (rm == 5 && mod == 0) {
            ea = fetch32(cpu, in);
        } else {
            ea = cpu->gpr[rm];
            if (rm == X86EMU_EBP)
                seg = X86EMU_SEG_SS;
        }
        if (mod == 1)
            ea += (uint32_t)(int32_t)(int8_t)fetch8(cpu, in);
        else if (mod == 2)
            ea += fetch32(cpu, in);
    }
    in->ea = ea;
    in->ea_seg = insn_seg(in, seg);
}

X86EMU_INLINE bool modrm_is_reg(const struct x86emu_insn *in)
{
    return in->modrm >= 0xc0;
}

X86EMU_INLINE unsigned modrm_reg(const struct x86emu_insn *in)
{
    return (in->modrm >> 3) & 7;
}

X86EMU_INLINE uint32_t rm_read(struct x86emu *cpu, struct x86emu_insn *in,
                               unsigned bits)
{
    if (modrm_is_reg(in))
        return reg_read(cpu, in->modrm & 7, bits);
    return mem_read(cpu, in->ea_seg, in->ea, bits / 8);
}

X86EMU_INLINE void rm_write(struct x86emu *cpu, struct x86emu_insn *in,
                            unsigned bits, uint32_t v)
{
    if (modrm_is_reg(in))
        reg_write(cpu, in->modrm & 7, bits, v);
    else
        mem_write(cpu, in->ea_seg, in->ea, v, bits / 8);
}

/* The size of a stack slot and the stack pointer width. */
X86EMU_INLINE bool stack_is_32(const struct x86emu *cpu)
{
    return cpu->seg[X86EMU_SEG_SS].attr & X86EMU_SEGATTR_DB;
}

X86EMU_INLINE uint32_t stack_ptr(const struct x86emu *cpu)
{
    return stack_is_32(cpu) ? cpu->gpr[X86EMU_ESP]
                            : cpu->gpr[X86EMU_ESP] & 0xffff;
}

X86EMU_INLINE uint32_t stack_wrap(const struct x86emu *cpu, uint32_t sp)
{
    return stack_is_32(cpu) ? sp : sp & 0xffff;
}

X86EMU_INLINE void stack_set(struct x86emu *cpu, uint32_t sp)
{
    if (stack_is_32(cpu))
        cpu->gpr[X86EMU_ESP] = sp;
    else
        cpu->gpr[X86EMU_ESP] = (cpu->gpr[X86EMU_ESP] & ~0xffffu) |
                               (sp & 0xffff);
}

/* Pushes happen in two steps so that a fault in the middle of a multi-word
 * push leaves ESP untouched: write below a running offset, then commit. */
X86EMU_INLINE uint32_t stack_push_at(struct x86emu *cpu, uint32_t sp,
                                     uint32_t v, unsigned size)
{
    sp = stack_wrap(cpu, sp - size);
    mem_write(cpu, X86EMU_SEG_SS, sp, v, size);
    return sp;
}

X86EMU_INLINE void push(struct x86emu *cpu, uint32_t v, unsigned size)
{
    stack_set(cpu, stack_push_at(cpu, stack_ptr(cpu), v, size));
}

X86EMU_INLINE uint32_t stack_read_at(struct x86emu *cpu, uint32_t sp,
                                     unsigned size)
{
    return mem_read(cpu, X86EMU_SEG_SS, stack_wrap(cpu, sp), size);
}

X86EMU_INLINE uint32_t pop(struct x86emu *cpu, unsigned size)
{
    uint32_t sp = stack_ptr(cpu);
    uint32_t v = mem_read(cpu, X86EMU_SEG_SS, sp, size);

    stack_set(cpu, sp + size);
    return v;
}

/* Branch to an offset in the current code segment: #GP(0) beyond the
 * limit, as the 286 and 386 check the target before jumping. */
X86EMU_INLINE void jump_to(struct x86emu *cpu, uint32_t eip)
{
    if (X86EMU_UNLIKELY(eip > cpu->seg[X86EMU_SEG_CS].limit))
        x86emu_raise(cpu, X86EMU_VEC_GP);
    cpu->eip = eip;
}

/* exec_0f.c */
void x86emu_exec_0f(struct x86emu *cpu, struct x86emu_insn in);
/* exec.c */
enum x86emu_stop x86emu_exec_loop(struct x86emu *cpu);
noreturn void x86emu_undefined(struct x86emu *cpu);
uint32_t x86emu_imul_trunc(struct x86emu *cpu, uint32_t a, uint32_t b,
                           unsigned bits);
void x86emu_load_far_pointer(struct x86emu *cpu, struct x86emu_insn in,
                             unsigned sreg);
bool x86emu_lock_allowed_0f(uint8_t op, uint8_t modrm);

#endif
