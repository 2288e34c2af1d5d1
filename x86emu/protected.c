/* x86emu: 32-bit protected mode. Descriptor tables and segment register
 * loads with their checks, far JMP/CALL/RET through code segments and call
 * gates (with the stack switch of an inner-privilege call), interrupt and
 * trap gates, IRET, the TSS as a source of inner stacks and of the I/O
 * permission bitmap, the descriptor instructions (LLDT LTR SLDT STR LAR LSL
 * VERR VERW) and CPUID. Every check follows the Intel SDM vol. 3 chapters
 * 3, 5 and 6; the comments name the rule where it is not obvious.
 *
 * Not here: hardware task switches (a JMP/CALL to a TSS or task gate, an
 * interrupt through a task gate, IRET with NT=1) and virtual-8086 mode;
 * they stop the CPU with X86EMU_STOP_UNSUPPORTED.
 *
 * Like every instruction, each transfer checks everything that can fault
 * before it changes a register: pushes onto a new stack go to memory
 * first, and the segment registers, ESP, EIP and CPL are committed last. */
#include "x86emu_priv.h"

/* Descriptor access byte (segment cache attr bits 0-7). */
#define ATTR_A 0x01u    /* accessed */
#define ATTR_RW 0x02u   /* data: writable; code: readable */
#define ATTR_EC 0x04u   /* data: expand-down; code: conforming */
#define ATTR_CODE 0x08u
#define ATTR_S 0x10u    /* code or data (not a system descriptor) */
#define ATTR_P 0x80u
#define ATTR_DPL(a) (((a) >> 5) & 3u)

/* System descriptor types (the low 5 bits of attr, S = 0). */
enum {
    SYS_TSS16 = 0x1,
    SYS_LDT = 0x2,
    SYS_TSS16_BUSY = 0x3,
    SYS_CALL16 = 0x4,
    SYS_TASK = 0x5,
    SYS_INT16 = 0x6,
    SYS_TRAP16 = 0x7,
    SYS_TSS32 = 0x9,
    SYS_TSS32_BUSY = 0xb,
    SYS_CALL32 = 0xc,
    SYS_INT32 = 0xe,
    SYS_TRAP32 = 0xf,
};

/* Offset of the I/O map base field in a 32-bit TSS. */
#define TSS32_IOMAP_BASE 0x66u

/* A descriptor as read from its table, with its linear address (for the
 * accessed and busy bits). */
struct desc {
    uint32_t lo, hi;
    uint32_t addr;
};

static unsigned desc_attr(const struct desc *d)
{
    return (d->hi >> 8) & 0xf0ffu;
}

static uint32_t desc_base(const struct desc *d)
{
    return (d->lo >> 16) | (d->hi & 0xffu) << 16 | (d->hi & 0xff000000u);
}

static uint32_t desc_limit(const struct desc *d)
{
    uint32_t raw = (d->lo & 0xffffu) | (d->hi & 0x000f0000u);

    return (d->hi & 0x00800000u) ? raw << 12 | 0xfffu : raw;
}

static void desc_to_cache(const struct desc *d, uint16_t sel,
                          struct x86emu_segment *s)
{
    s->selector = sel;
    s->base = desc_base(d);
    s->limit = desc_limit(d);
    s->attr = (uint16_t)desc_attr(d);
}

/* A selector's error code: index and TI (the EXT bit is added by
 * x86emu_raise_err). */
static uint32_t sel_err(uint16_t sel)
{
    return sel & 0xfffcu;
}

static bool sel_is_null(uint16_t sel)
{
    return !(sel & 0xfffcu);
}

static noreturn void fault_sel(struct x86emu *cpu, int vector, uint16_t sel)
{
    x86emu_raise_err(cpu, vector, sel_err(sel));
}

/* Reads the descriptor sel names; false when it lies outside its table
 * (or names the LDT while none is loaded). Descriptor tables are read with
 * supervisor rights whatever the CPL. */
static bool desc_fetch(struct x86emu *cpu, uint16_t sel, struct desc *d)
{
    uint32_t base, limit, index = sel & 0xfff8u;

    if (sel & 4) {
        if (!(cpu->ldtr.attr & ATTR_P))
            return false;
        base = cpu->ldtr.base;
        limit = cpu->ldtr.limit;
    } else {
        base = cpu->gdtr.base;
        limit = cpu->gdtr.limit;
    }
    if (index + 7 > limit)
        return false;
    d->addr = base + index;
    d->lo = x86emu_lin_read_as(cpu, d->addr, 4, false);
    d->hi = x86emu_lin_read_as(cpu, d->addr + 4, 4, false);
    return true;
}

static void desc_read(struct x86emu *cpu, uint16_t sel, struct desc *d,
                      int vector)
{
    if (!desc_fetch(cpu, sel, d))
        fault_sel(cpu, vector, sel);
}

/* A segment load marks its descriptor accessed. */
static void desc_set_accessed(struct x86emu *cpu, struct desc *d)
{
    if (d->hi & (ATTR_A << 8))
        return;
    d->hi |= ATTR_A << 8;
    x86emu_lin_write_as(cpu, d->addr + 5, (d->hi >> 8) & 0xffu, 1, false);
}

static bool attr_is_code(unsigned a)
{
    return (a & (ATTR_S | ATTR_CODE)) == (ATTR_S | ATTR_CODE);
}

static bool attr_is_conforming_code(unsigned a)
{
    return (a & (ATTR_S | ATTR_CODE | ATTR_EC)) ==
           (ATTR_S | ATTR_CODE | ATTR_EC);
}

static bool attr_is_writable_data(unsigned a)
{
    return (a & (ATTR_S | ATTR_CODE | ATTR_RW)) == (ATTR_S | ATTR_RW);
}

static void commit_seg(struct x86emu *cpu, unsigned sreg,
                       const struct x86emu_segment *s)
{
    cpu->seg[sreg] = *s;
    x86emu_seg_update(cpu, sreg);
}

/* CS = the code segment d at privilege cpl, EIP = eip. The accessed bit
 * is written first: it is the only step that can still fault (a read-only
 * GDT page), so callers that committed other state set it earlier. */
static void commit_cs(struct x86emu *cpu, struct desc *d, uint16_t sel,
                      unsigned cpl, uint32_t eip)
{
    struct x86emu_segment s;

    desc_set_accessed(cpu, d);
    desc_to_cache(d, (uint16_t)(sel_err(sel) | cpl), &s);
    x86emu_set_cpl(cpu, cpl);
    commit_seg(cpu, X86EMU_SEG_CS, &s);
    cpu->eip = eip;
}

/* ------------------------------------------------------------------ */
/* Data and stack segment registers. */

void x86emu_load_sreg(struct x86emu *cpu, unsigned sreg, uint16_t sel)
{
    struct x86emu_segment s;
    struct desc d;
    unsigned a, dpl, rpl = sel & 3u, cpl = cpu->priv.cpl;

    if (!x86emu_protected(cpu)) {
        x86emu_load_segment_real(cpu, sreg, sel);
        return;
    }
    if (sel_is_null(sel)) {
        /* A null selector in DS/ES/FS/GS is allowed; using it raises
         * #GP(0) (the cache is marked not present). SS may not be null. */
        if (sreg == X86EMU_SEG_SS)
            x86emu_raise(cpu, X86EMU_VEC_GP);
        s = cpu->seg[sreg];
        s.selector = sel;
        s.attr = 0;
        commit_seg(cpu, sreg, &s);
        return;
    }
    desc_read(cpu, sel, &d, X86EMU_VEC_GP);
    a = desc_attr(&d);
    dpl = ATTR_DPL(a);
    if (sreg == X86EMU_SEG_SS) {
        if (rpl != cpl || dpl != cpl || !attr_is_writable_data(a))
            fault_sel(cpu, X86EMU_VEC_GP, sel);
        if (!(a & ATTR_P))
            fault_sel(cpu, X86EMU_VEC_SS, sel);
    } else {
        /* Data or readable code; unless conforming code, the segment must
         * be at least as privileged-accessible as CPL and RPL. */
        if (!(a & ATTR_S) || (a & (ATTR_CODE | ATTR_RW)) == ATTR_CODE)
            fault_sel(cpu, X86EMU_VEC_GP, sel);
        if (!attr_is_conforming_code(a) && (rpl > dpl || cpl > dpl))
            fault_sel(cpu, X86EMU_VEC_GP, sel);
        if (!(a & ATTR_P))
            fault_sel(cpu, X86EMU_VEC_NP, sel);
    }
    desc_set_accessed(cpu, &d);
    desc_to_cache(&d, sel, &s);
    commit_seg(cpu, sreg, &s);
}

/* After a return to an outer level, data segment registers the new CPL
 * may not use are cleared (SDM RET/IRET: "(data or non-conforming code)
 * and DPL < CPL"). */
static void null_inaccessible_segments(struct x86emu *cpu)
{
    static const unsigned sregs[] = {X86EMU_SEG_ES, X86EMU_SEG_DS,
                                     X86EMU_SEG_FS, X86EMU_SEG_GS};

    for (unsigned i = 0; i < 4; i++) {
        struct x86emu_segment *s = &cpu->seg[sregs[i]];

        if (!attr_is_conforming_code(s->attr) &&
            ATTR_DPL(s->attr) < cpu->priv.cpl) {
            s->selector = 0;
            s->attr = 0;
            x86emu_seg_update(cpu, sregs[i]);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Stacks. */

/* A stack being built: pushes go to memory at once, the registers change
 * only in frame_commit. */
struct frame {
    struct x86emu_segment ss;
    uint32_t sp;
    bool user;         /* page protection of the stack's privilege level */
    uint16_t err_sel;  /* #SS error code: 0 for the current stack */
};

static void frame_current(struct x86emu *cpu, struct frame *f)
{
    f->ss = cpu->seg[X86EMU_SEG_SS];
    f->sp = cpu->gpr[X86EMU_ESP];
    f->user = cpu->priv.cpl == 3;
    f->err_sel = 0;
}

static void frame_push(struct x86emu *cpu, struct frame *f, uint32_t v,
                       unsigned size)
{
    uint32_t mask = (f->ss.attr & X86EMU_SEGATTR_DB) ? 0xffffffffu : 0xffffu;
    uint32_t sp = (f->sp - size) & mask;

    if (!x86emu_seg_cache_ok(&f->ss, true, sp, size, true))
        x86emu_raise_err(cpu, X86EMU_VEC_SS, sel_err(f->err_sel));
    x86emu_lin_write_as(cpu, f->ss.base + sp, v, size, f->user);
    f->sp = (f->sp & ~mask) | sp;
}

static void frame_commit(struct x86emu *cpu, const struct frame *f,
                         bool new_ss)
{
    if (new_ss)
        commit_seg(cpu, X86EMU_SEG_SS, &f->ss);
    cpu->gpr[X86EMU_ESP] = f->sp;
}

/* The inner stack for privilege level dpl from the current TSS (32-bit
 * TSS: ESPn at 4 + 8n, SSn at 8 + 8n; 16-bit TSS: SPn at 2 + 4n, SSn at
 * 4 + 4n), checked as SS for that level (#TS, or #SS when not present). */
static void tss_inner_stack(struct x86emu *cpu, unsigned dpl, struct frame *f)
{
    unsigned type = cpu->tr.attr & 0x1fu;
    bool tss32 = type == SYS_TSS32 || type == SYS_TSS32_BUSY;
    unsigned size = tss32 ? 4 : 2;
    uint32_t off = tss32 ? 4 + dpl * 8 : 2 + dpl * 4, esp;
    uint16_t ss;
    struct desc d;
    unsigned a;

    if (!(cpu->tr.attr & ATTR_P) || off + size + 1 > cpu->tr.limit)
        fault_sel(cpu, X86EMU_VEC_TS, cpu->tr.selector);
    esp = x86emu_lin_read_as(cpu, cpu->tr.base + off, size, false);
    ss = (uint16_t)x86emu_lin_read_as(cpu, cpu->tr.base + off + size, 2,
                                      false);
    if (sel_is_null(ss))
        x86emu_raise_err(cpu, X86EMU_VEC_TS, 0);
    if (!desc_fetch(cpu, ss, &d))
        fault_sel(cpu, X86EMU_VEC_TS, ss);
    a = desc_attr(&d);
    if ((ss & 3u) != dpl || ATTR_DPL(a) != dpl || !attr_is_writable_data(a))
        fault_sel(cpu, X86EMU_VEC_TS, ss);
    if (!(a & ATTR_P))
        fault_sel(cpu, X86EMU_VEC_SS, ss);
    desc_set_accessed(cpu, &d);
    desc_to_cache(&d, ss, &f->ss);
    f->sp = esp;
    f->user = dpl == 3;
    f->err_sel = ss;
}

/* The outer stack a RET or IRET returns to: SS must be a present writable
 * data segment at the return privilege level rpl. */
static void check_outer_ss(struct x86emu *cpu, uint16_t ss, unsigned rpl,
                           struct x86emu_segment *s)
{
    struct desc d;
    unsigned a;

    if (sel_is_null(ss))
        x86emu_raise(cpu, X86EMU_VEC_GP);
    desc_read(cpu, ss, &d, X86EMU_VEC_GP);
    a = desc_attr(&d);
    if ((ss & 3u) != rpl || ATTR_DPL(a) != rpl || !attr_is_writable_data(a))
        fault_sel(cpu, X86EMU_VEC_GP, ss);
    if (!(a & ATTR_P))
        fault_sel(cpu, X86EMU_VEC_SS, ss);
    desc_set_accessed(cpu, &d);
    desc_to_cache(&d, ss, s);
}

/* ------------------------------------------------------------------ */
/* Far JMP and CALL. */

/* A code segment named directly by a far JMP or CALL: conforming with
 * DPL <= CPL, or non-conforming with RPL <= CPL and DPL = CPL. */
static void check_direct_code(struct x86emu *cpu, uint16_t sel, unsigned a)
{
    unsigned cpl = cpu->priv.cpl;

    if (!attr_is_code(a))
        fault_sel(cpu, X86EMU_VEC_GP, sel);
    if (attr_is_conforming_code(a) ? ATTR_DPL(a) > cpl
                                   : (sel & 3u) > cpl || ATTR_DPL(a) != cpl)
        fault_sel(cpu, X86EMU_VEC_GP, sel);
    if (!(a & ATTR_P))
        fault_sel(cpu, X86EMU_VEC_NP, sel);
}

/* A call gate named by a far JMP or CALL: DPL >= CPL and >= RPL, present;
 * its target a present code segment with DPL <= CPL. */
static void check_call_gate(struct x86emu *cpu, uint16_t sel,
                            const struct desc *gate, uint16_t *tsel,
                            uint32_t *toff, struct desc *target)
{
    unsigned a = desc_attr(gate), ta;
    unsigned cpl = cpu->priv.cpl;

    if (ATTR_DPL(a) < cpl || ATTR_DPL(a) < (sel & 3u))
        fault_sel(cpu, X86EMU_VEC_GP, sel);
    if (!(a & ATTR_P))
        fault_sel(cpu, X86EMU_VEC_NP, sel);
    *tsel = (uint16_t)(gate->lo >> 16);
    *toff = (gate->lo & 0xffffu) |
            ((a & 0x1fu) == SYS_CALL32 ? gate->hi & 0xffff0000u : 0);
    if (sel_is_null(*tsel))
        x86emu_raise(cpu, X86EMU_VEC_GP);
    desc_read(cpu, *tsel, target, X86EMU_VEC_GP);
    ta = desc_attr(target);
    if (!attr_is_code(ta) || ATTR_DPL(ta) > cpl)
        fault_sel(cpu, X86EMU_VEC_GP, *tsel);
    if (!(ta & ATTR_P))
        fault_sel(cpu, X86EMU_VEC_NP, *tsel);
}

void x86emu_far_jump_pm(struct x86emu *cpu, uint16_t sel, uint32_t off,
                        bool o32)
{
    struct desc d, td;
    unsigned a, cpl = cpu->priv.cpl;
    uint16_t tsel;
    uint32_t toff;

    if (sel_is_null(sel))
        x86emu_raise(cpu, X86EMU_VEC_GP);
    desc_read(cpu, sel, &d, X86EMU_VEC_GP);
    a = desc_attr(&d);
    if (a & ATTR_S) {
        check_direct_code(cpu, sel, a);
        if (off > desc_limit(&d))
            x86emu_raise(cpu, X86EMU_VEC_GP);
        commit_cs(cpu, &d, sel, cpl, off);
        return;
    }
    switch (a & 0x1fu) {
    case SYS_CALL16:
    case SYS_CALL32:
        check_call_gate(cpu, sel, &d, &tsel, &toff, &td);
        /* A JMP never changes privilege. */
        if (!attr_is_conforming_code(desc_attr(&td)) &&
            ATTR_DPL(desc_attr(&td)) != cpl)
            fault_sel(cpu, X86EMU_VEC_GP, tsel);
        if (toff > desc_limit(&td))
            x86emu_raise(cpu, X86EMU_VEC_GP);
        commit_cs(cpu, &td, tsel, cpl, toff);
        return;
    case SYS_TSS16:
    case SYS_TSS32:
    case SYS_TASK:
        x86emu_unsupported(cpu); /* hardware task switch */
    default:
        fault_sel(cpu, X86EMU_VEC_GP, sel);
    }
}

void x86emu_far_call_pm(struct x86emu *cpu, uint16_t sel, uint32_t off,
                        bool o32, uint32_t ret_eip)
{
    struct desc d, td;
    struct frame f;
    unsigned a, ta, size, cpl = cpu->priv.cpl;
    uint16_t tsel;
    uint32_t toff;

    if (sel_is_null(sel))
        x86emu_raise(cpu, X86EMU_VEC_GP);
    desc_read(cpu, sel, &d, X86EMU_VEC_GP);
    a = desc_attr(&d);
    if (a & ATTR_S) {
        size = o32 ? 4 : 2;
        check_direct_code(cpu, sel, a);
        if (off > desc_limit(&d))
            x86emu_raise(cpu, X86EMU_VEC_GP);
        frame_current(cpu, &f);
        frame_push(cpu, &f, cpu->seg[X86EMU_SEG_CS].selector, size);
        frame_push(cpu, &f, ret_eip, size);
        desc_set_accessed(cpu, &d);
        frame_commit(cpu, &f, false);
        commit_cs(cpu, &d, sel, cpl, off);
        return;
    }
    switch (a & 0x1fu) {
    case SYS_CALL16:
    case SYS_CALL32:
        break;
    case SYS_TSS16:
    case SYS_TSS32:
    case SYS_TASK:
        x86emu_unsupported(cpu); /* hardware task switch */
    default:
        fault_sel(cpu, X86EMU_VEC_GP, sel);
    }
    check_call_gate(cpu, sel, &d, &tsel, &toff, &td);
    ta = desc_attr(&td);
    size = (a & 0x1fu) == SYS_CALL32 ? 4 : 2;
    if (toff > desc_limit(&td))
        x86emu_raise(cpu, X86EMU_VEC_GP);
    if (!attr_is_conforming_code(ta) && ATTR_DPL(ta) < cpl) {
        /* Inner privilege: switch to the TSS stack of the target level,
         * push the old SS:ESP, copy the gate's parameter count of words
         * or dwords from the old stack, then the return address. */
        unsigned dpl = ATTR_DPL(ta), count = d.hi & 0x1fu;
        uint32_t old_sp = cpu->gpr[X86EMU_ESP];

        tss_inner_stack(cpu, dpl, &f);
        frame_push(cpu, &f, cpu->seg[X86EMU_SEG_SS].selector, size);
        frame_push(cpu, &f, old_sp, size);
        for (unsigned i = count; i-- > 0;)
            frame_push(cpu, &f,
                       stack_read_at(cpu, stack_ptr(cpu) + i * size, size),
                       size);
        frame_push(cpu, &f, cpu->seg[X86EMU_SEG_CS].selector, size);
        frame_push(cpu, &f, ret_eip, size);
        desc_set_accessed(cpu, &td);
        frame_commit(cpu, &f, true);
        commit_cs(cpu, &td, tsel, dpl, toff);
        return;
    }
    frame_current(cpu, &f);
    frame_push(cpu, &f, cpu->seg[X86EMU_SEG_CS].selector, size);
    frame_push(cpu, &f, ret_eip, size);
    desc_set_accessed(cpu, &td);
    frame_commit(cpu, &f, false);
    commit_cs(cpu, &td, tsel, cpl, toff);
}

/* ------------------------------------------------------------------ */
/* Far RET and IRET. */

/* The code segment a RET or IRET returns to: RPL >= CPL, conforming with
 * DPL <= RPL or non-conforming with DPL = RPL, present. */
static void check_return_code(struct x86emu *cpu, uint16_t sel,
                              struct desc *d)
{
    unsigned a, rpl = sel & 3u;

    if (sel_is_null(sel))
        x86emu_raise(cpu, X86EMU_VEC_GP);
    desc_read(cpu, sel, d, X86EMU_VEC_GP);
    a = desc_attr(d);
    if (rpl < cpu->priv.cpl || !attr_is_code(a))
        fault_sel(cpu, X86EMU_VEC_GP, sel);
    if (attr_is_conforming_code(a) ? ATTR_DPL(a) > rpl : ATTR_DPL(a) != rpl)
        fault_sel(cpu, X86EMU_VEC_GP, sel);
    if (!(a & ATTR_P))
        fault_sel(cpu, X86EMU_VEC_NP, sel);
}

/* ESP after loading an outer SS: the popped value (its low word for a
 * 16-bit stack) plus what RET imm16 releases. */
static void set_outer_esp(struct x86emu *cpu, uint32_t sp, uint32_t release)
{
    if (stack_is_32(cpu))
        cpu->gpr[X86EMU_ESP] = sp + release;
    else
        cpu->gpr[X86EMU_ESP] = (cpu->gpr[X86EMU_ESP] & ~0xffffu) |
                               ((sp + release) & 0xffffu);
}

void x86emu_far_return_pm(struct x86emu *cpu, bool o32, uint32_t release)
{
    unsigned size = o32 ? 4 : 2;
    uint32_t sp = stack_ptr(cpu), off, outer_sp;
    uint16_t sel, outer_ss;
    unsigned rpl;
    struct desc d;
    struct x86emu_segment ss;

    off = stack_read_at(cpu, sp, size);
    sel = (uint16_t)stack_read_at(cpu, sp + size, size);
    rpl = sel & 3u;
    check_return_code(cpu, sel, &d);
    if (off > desc_limit(&d))
        x86emu_raise(cpu, X86EMU_VEC_GP);
    if (rpl == cpu->priv.cpl) {
        stack_set(cpu, sp + 2 * size + release);
        commit_cs(cpu, &d, sel, rpl, off);
        return;
    }
    /* To an outer level: its SS:ESP follow the released parameters. */
    outer_sp = stack_read_at(cpu, sp + 2 * size + release, size);
    outer_ss = (uint16_t)stack_read_at(cpu, sp + 3 * size + release, size);
    check_outer_ss(cpu, outer_ss, rpl, &ss);
    commit_cs(cpu, &d, sel, rpl, off);
    commit_seg(cpu, X86EMU_SEG_SS, &ss);
    set_outer_esp(cpu, outer_sp, release);
    null_inaccessible_segments(cpu);
}

void x86emu_iret_pm(struct x86emu *cpu, bool o32)
{
    unsigned size = o32 ? 4 : 2;
    uint32_t sp = stack_ptr(cpu), off, flags, mask, outer_sp;
    uint16_t sel, outer_ss;
    unsigned rpl;
    struct desc d;
    struct x86emu_segment ss;

    if (cpu->priv.eflags & X86EMU_FLAG_NT)
        x86emu_unsupported(cpu); /* return from a nested task */
    off = stack_read_at(cpu, sp, size);
    sel = (uint16_t)stack_read_at(cpu, sp + size, size);
    flags = stack_read_at(cpu, sp + 2 * size, size);
    if (o32 && (flags & X86EMU_FLAG_VM) && cpu->priv.cpl == 0)
        x86emu_unsupported(cpu); /* return to virtual-8086 mode */
    rpl = sel & 3u;
    check_return_code(cpu, sel, &d);
    if (off > desc_limit(&d))
        x86emu_raise(cpu, X86EMU_VEC_GP);
    /* Which flags may change is decided by the privilege IRET runs at. */
    mask = (o32 ? 0xffffffffu : 0xffffu) & x86emu_eflags_priv_mask(cpu);
    if (rpl == cpu->priv.cpl) {
        stack_set(cpu, sp + 3 * size);
        commit_cs(cpu, &d, sel, rpl, off);
    } else {
        outer_sp = stack_read_at(cpu, sp + 3 * size, size);
        outer_ss = (uint16_t)stack_read_at(cpu, sp + 4 * size, size);
        check_outer_ss(cpu, outer_ss, rpl, &ss);
        commit_cs(cpu, &d, sel, rpl, off);
        commit_seg(cpu, X86EMU_SEG_SS, &ss);
        set_outer_esp(cpu, outer_sp, 0);
        null_inaccessible_segments(cpu);
    }
    x86emu_write_eflags(cpu, flags, mask);
    cpu->priv.events &= ~X86EMU_EV_NMI_BLOCKED;
}

/* ------------------------------------------------------------------ */
/* Interrupts and exceptions through the IDT. */

void x86emu_pm_interrupt(struct x86emu *cpu, unsigned vector, uint32_t ret_eip,
                         unsigned how, uint32_t err)
{
    /* Errors about the gate itself name the IDT entry: index, IDT bit. */
    const uint32_t gate_err = vector * 8 + 2;
    uint32_t lo, hi, off, flags = x86emu_get_eflags(cpu);
    unsigned type, a, ta, size, cpl = cpu->priv.cpl, new_cpl;
    uint16_t sel, old_ss = cpu->seg[X86EMU_SEG_SS].selector;
    uint32_t old_esp = cpu->gpr[X86EMU_ESP];
    struct desc td;
    struct frame f;
    bool inner;

    if (vector * 8 + 7 > cpu->idtr.limit)
        x86emu_raise_err(cpu, X86EMU_VEC_GP, gate_err);
    lo = x86emu_lin_read_as(cpu, cpu->idtr.base + vector * 8, 4, false);
    hi = x86emu_lin_read_as(cpu, cpu->idtr.base + vector * 8 + 4, 4, false);
    a = (hi >> 8) & 0xffu;
    type = a & 0x1fu;
    switch (type) {
    case SYS_INT16:
    case SYS_TRAP16:
    case SYS_INT32:
    case SYS_TRAP32:
        break;
    case SYS_TASK:
        x86emu_unsupported(cpu); /* hardware task switch */
    default:
        x86emu_raise_err(cpu, X86EMU_VEC_GP, gate_err);
    }
    /* INT n, INT3 and INTO may only use gates their CPL may reach. */
    if ((how & X86EMU_INT_SOFT) && ATTR_DPL(a) < cpl)
        x86emu_raise_err(cpu, X86EMU_VEC_GP, gate_err);
    if (!(a & ATTR_P))
        x86emu_raise_err(cpu, X86EMU_VEC_NP, gate_err);
    sel = (uint16_t)(lo >> 16);
    off = (lo & 0xffffu) | (type & 8 ? hi & 0xffff0000u : 0);
    size = type & 8 ? 4 : 2;
    if (sel_is_null(sel))
        x86emu_raise(cpu, X86EMU_VEC_GP);
    desc_read(cpu, sel, &td, X86EMU_VEC_GP);
    ta = desc_attr(&td);
    if (!attr_is_code(ta) || ATTR_DPL(ta) > cpl)
        fault_sel(cpu, X86EMU_VEC_GP, sel);
    if (!(ta & ATTR_P))
        fault_sel(cpu, X86EMU_VEC_NP, sel);
    inner = !attr_is_conforming_code(ta) && ATTR_DPL(ta) < cpl;
    new_cpl = inner ? ATTR_DPL(ta) : cpl;
    if (off > desc_limit(&td))
        x86emu_raise(cpu, X86EMU_VEC_GP);
    if (inner) {
        tss_inner_stack(cpu, new_cpl, &f);
        frame_push(cpu, &f, old_ss, size);
        frame_push(cpu, &f, old_esp, size);
    } else {
        frame_current(cpu, &f);
    }
    frame_push(cpu, &f, flags, size);
    frame_push(cpu, &f, cpu->seg[X86EMU_SEG_CS].selector, size);
    frame_push(cpu, &f, ret_eip, size);
    if (how & X86EMU_INT_ERR)
        frame_push(cpu, &f, err, size);
    desc_set_accessed(cpu, &td);
    frame_commit(cpu, &f, inner);
    commit_cs(cpu, &td, sel, new_cpl, off);
    /* Interrupt gates also clear IF; trap gates leave it. */
    cpu->priv.eflags &= ~(X86EMU_FLAG_TF | X86EMU_FLAG_NT | X86EMU_FLAG_RF |
                          X86EMU_FLAG_VM);
    if (!(type & 1))
        cpu->priv.eflags &= ~X86EMU_FLAG_IF;
    x86emu_sync_intr(cpu);
}

/* ------------------------------------------------------------------ */
/* I/O permission. */

void x86emu_check_io(struct x86emu *cpu, uint16_t port, unsigned size)
{
    unsigned iopl = (cpu->priv.eflags & X86EMU_FLAG_IOPL) >> 12;
    unsigned type = cpu->tr.attr & 0x1fu;
    uint32_t base, bits, byte;

    if (!x86emu_protected(cpu) || cpu->priv.cpl <= iopl)
        return;
    /* Above IOPL only a 32-bit TSS's I/O permission bitmap can allow the
     * access: every bit for the ports accessed must be clear, and the
     * bitmap bytes read must be inside the TSS limit. */
    if (!(cpu->tr.attr & ATTR_P) ||
        (type != SYS_TSS32 && type != SYS_TSS32_BUSY) ||
        cpu->tr.limit < TSS32_IOMAP_BASE + 1)
        x86emu_raise(cpu, X86EMU_VEC_GP);
    base = x86emu_lin_read_as(cpu, cpu->tr.base + TSS32_IOMAP_BASE, 2, false);
    byte = base + port / 8;
    if (byte + 1 > cpu->tr.limit)
        x86emu_raise(cpu, X86EMU_VEC_GP);
    bits = x86emu_lin_read_as(cpu, cpu->tr.base + byte, 2, false);
    if (bits & (((1u << size) - 1) << (port & 7)))
        x86emu_raise(cpu, X86EMU_VEC_GP);
}

/* ------------------------------------------------------------------ */
/* Descriptor instructions. */

static void set_zf(struct x86emu *cpu, bool zf)
{
    lf_from_flags(cpu, (flags_read(cpu) & ~X86EMU_FLAG_ZF) |
                           (zf ? X86EMU_FLAG_ZF : 0));
}

static void load_ldtr(struct x86emu *cpu, uint16_t sel)
{
    struct desc d;
    unsigned a;

    if (sel_is_null(sel)) {
        cpu->ldtr.selector = sel;
        cpu->ldtr.attr = 0; /* no LDT: TI=1 selectors fault */
        return;
    }
    if (sel & 4)
        fault_sel(cpu, X86EMU_VEC_GP, sel);
    desc_read(cpu, sel, &d, X86EMU_VEC_GP);
    a = desc_attr(&d);
    if ((a & 0x1fu) != SYS_LDT)
        fault_sel(cpu, X86EMU_VEC_GP, sel);
    if (!(a & ATTR_P))
        fault_sel(cpu, X86EMU_VEC_NP, sel);
    desc_to_cache(&d, sel, &cpu->ldtr);
}

static void load_tr(struct x86emu *cpu, uint16_t sel)
{
    struct desc d;
    unsigned a;

    if (sel_is_null(sel))
        x86emu_raise(cpu, X86EMU_VEC_GP);
    if (sel & 4)
        fault_sel(cpu, X86EMU_VEC_GP, sel);
    desc_read(cpu, sel, &d, X86EMU_VEC_GP);
    a = desc_attr(&d);
    if ((a & 0x1fu) != SYS_TSS16 && (a & 0x1fu) != SYS_TSS32)
        fault_sel(cpu, X86EMU_VEC_GP, sel);
    if (!(a & ATTR_P))
        fault_sel(cpu, X86EMU_VEC_NP, sel);
    /* The TSS becomes busy. */
    d.hi |= 0x200u;
    x86emu_lin_write_as(cpu, d.addr + 5, (d.hi >> 8) & 0xffu, 1, false);
    desc_to_cache(&d, sel, &cpu->tr);
}

/* Whether the current privilege level may look at a segment descriptor
 * through LAR/LSL/VERR/VERW: conforming code always, anything else when
 * DPL >= CPL and DPL >= RPL. */
static bool desc_visible(const struct x86emu *cpu, uint16_t sel, unsigned a)
{
    if (attr_is_conforming_code(a))
        return true;
    return ATTR_DPL(a) >= cpu->priv.cpl && ATTR_DPL(a) >= (sel & 3u);
}

static bool verify(struct x86emu *cpu, uint16_t sel, bool write)
{
    struct desc d;
    unsigned a;

    if (sel_is_null(sel) || !desc_fetch(cpu, sel, &d))
        return false;
    a = desc_attr(&d);
    if (!(a & ATTR_S) || !desc_visible(cpu, sel, a))
        return false;
    if (write)
        return attr_is_writable_data(a);
    return !(a & ATTR_CODE) || (a & ATTR_RW);
}

void x86emu_group6(struct x86emu *cpu, struct x86emu_insn *in)
{
    unsigned reg = modrm_reg(in);
    unsigned osz = in->o32 ? 32 : 16;

    if (!x86emu_protected(cpu))
        x86emu_undefined(cpu);
    switch (reg) {
    case 0: /* SLDT */
    case 1: /* STR */
        rm_write(cpu, in, modrm_is_reg(in) ? osz : 16,
                 reg == 0 ? cpu->ldtr.selector : cpu->tr.selector);
        break;
    case 2: /* LLDT */
    case 3: { /* LTR */
        uint16_t sel;

        x86emu_require_cpl0(cpu);
        sel = (uint16_t)rm_read(cpu, in, 16);
        if (reg == 2)
            load_ldtr(cpu, sel);
        else
            load_tr(cpu, sel);
        break;
    }
    case 4: /* VERR */
    case 5: /* VERW */
        set_zf(cpu, verify(cpu, (uint16_t)rm_read(cpu, in, 16), reg == 5));
        break;
    default:
        x86emu_undefined(cpu);
    }
}

void x86emu_lar_lsl(struct x86emu *cpu, struct x86emu_insn *in, bool lsl)
{
    unsigned osz = in->o32 ? 32 : 16, a, type;
    uint16_t sel;
    struct desc d;
    bool ok = false;

    if (!x86emu_protected(cpu))
        x86emu_undefined(cpu);
    sel = (uint16_t)rm_read(cpu, in, 16);
    if (!sel_is_null(sel) && desc_fetch(cpu, sel, &d)) {
        a = desc_attr(&d);
        type = a & 0x1fu;
        if (a & ATTR_S)
            ok = true;
        else if (lsl)
            ok = type == SYS_TSS16 || type == SYS_LDT ||
                 type == SYS_TSS16_BUSY || type == SYS_TSS32 ||
                 type == SYS_TSS32_BUSY;
        else
            ok = type == SYS_TSS16 || type == SYS_LDT ||
                 type == SYS_TSS16_BUSY || type == SYS_CALL16 ||
                 type == SYS_TASK || type == SYS_TSS32 ||
                 type == SYS_TSS32_BUSY || type == SYS_CALL32;
        ok = ok && desc_visible(cpu, sel, a);
    }
    if (ok)
        reg_write(cpu, modrm_reg(in), osz,
                  lsl ? desc_limit(&d) : d.hi & 0x00f0ff00u);
    set_zf(cpu, ok);
}

/* ------------------------------------------------------------------ */
/* CPUID: a plain 486-class 32-bit CPU. Only what the core implements is
 * reported: no FPU, no TSC, no CMPXCHG8B, no MSRs; PSE (4 MiB pages); an
 * APIC only when the machine says it has one. */

/* "XenDM x86emu" in EBX, EDX, ECX order. */
#define CPUID_VENDOR_EBX 0x446e6558u /* "XenD" */
#define CPUID_VENDOR_EDX 0x3878204du /* "M x8" */
#define CPUID_VENDOR_ECX 0x756d6536u /* "6emu" */
/* Family 4, model 8, stepping 0. */
#define CPUID_SIGNATURE 0x00000480u
#define CPUID_EDX_PSE (1u << 3)
#define CPUID_EDX_APIC (1u << 9)

void x86emu_cpuid(struct x86emu *cpu)
{
    uint32_t leaf = cpu->gpr[X86EMU_EAX];

    if (leaf == 0) {
        cpu->gpr[X86EMU_EAX] = 1;
        cpu->gpr[X86EMU_EBX] = CPUID_VENDOR_EBX;
        cpu->gpr[X86EMU_EDX] = CPUID_VENDOR_EDX;
        cpu->gpr[X86EMU_ECX] = CPUID_VENDOR_ECX;
        return;
    }
    /* Leaf 1, and (as on Intel parts) any leaf above the maximum. */
    cpu->gpr[X86EMU_EAX] = CPUID_SIGNATURE;
    cpu->gpr[X86EMU_EBX] = 0;
    cpu->gpr[X86EMU_ECX] = 0;
    cpu->gpr[X86EMU_EDX] = CPUID_EDX_PSE |
                           (cpu->cpuid_apic ? CPUID_EDX_APIC : 0);
}
