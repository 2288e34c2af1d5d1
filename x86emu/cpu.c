/* x86emu: processor state, the run loop around the interpreter, interrupt
 * and exception delivery, and the out-of-line memory paths. */
#include <stddef.h>

#include "x86emu_priv.h"

#define TLB_EMPTY 1u /* never equal to a page-aligned address */

/* EFLAGS bits that always read as 1 / 0 on every model. */
#define EFLAGS_FIXED1 0x00000002u
/* Bits POPF can change in real mode (CPL 0): the arithmetic flags, TF, IF,
 * DF, and on a 386 IOPL and NT. The 286 keeps bits 12-15 at zero in real
 * mode whatever is written (80286 PRM §10: they are only meaningful in
 * protected mode). RF is cleared by POPF, VM is never loaded by it. */
#define EFLAGS_WRITABLE_286_REAL 0x00000fd5u
#define EFLAGS_WRITABLE_386 0x00007fd5u

static bool in_real_mode(const struct x86emu *cpu)
{
    return !(cpu->cr0 & X86EMU_CR0_PE);
}

/* ------------------------------------------------------------------ */
/* Segments. */

static void seg_update(struct x86emu *cpu, unsigned sreg)
{
    const struct x86emu_segment *s = &cpu->seg[sreg];
    bool expand_down = (s->attr & 0x1c) == 0x14; /* data, E bit */

    cpu->priv.seg_end[sreg] = expand_down ? 0 : (uint64_t)s->limit + 1;
    if (sreg == X86EMU_SEG_CS) {
        struct x86emu_insn in;
        bool d32 = s->attr & X86EMU_SEGATTR_DB;

        x86emu_fetch_invalidate(cpu);
        memset(&in, 0, sizeof(in));
        in.o32 = in.a32 = d32;
        in.seg_override = -1;
        cpu->priv.insn_template = in.state;
        cpu->priv.eip_mask = d32 ? 0xffffffffu : 0xffff;
    }
}

void x86emu_segments_changed(struct x86emu *cpu)
{
    for (unsigned i = 0; i < X86EMU_SEG_COUNT; i++)
        seg_update(cpu, i);
}

void x86emu_load_segment_real(struct x86emu *cpu, enum x86emu_sreg sreg,
                              uint16_t selector)
{
    if ((unsigned)sreg >= X86EMU_SEG_COUNT)
        return;
    cpu->seg[sreg].selector = selector;
    cpu->seg[sreg].base = (uint32_t)selector << 4;
    seg_update(cpu, sreg);
}

void x86emu_load_sreg(struct x86emu *cpu, unsigned sreg, uint16_t selector)
{
    /* Real mode only; descriptor loading belongs to protected mode. */
    x86emu_load_segment_real(cpu, sreg, selector);
}

bool x86emu_seg_ok(const struct x86emu *cpu, unsigned sreg, uint32_t off,
                   unsigned size, bool write)
{
    const struct x86emu_segment *s = &cpu->seg[sreg];
    uint64_t last = (uint64_t)off + size - 1;

    if ((s->attr & 0x1c) == 0x14) {
        uint64_t top = (s->attr & X86EMU_SEGATTR_DB) ? 0xffffffffu : 0xffffu;

        return off > s->limit && last <= top;
    }
    return last <= s->limit;
}

noreturn void x86emu_raise_seg(struct x86emu *cpu, unsigned sreg)
{
    /* The 286 reports every real-mode segment overrun as interrupt 13; the
     * 386 distinguishes stack accesses (#SS). */
    if (sreg == X86EMU_SEG_SS && !x86emu_is_286(cpu))
        x86emu_raise(cpu, X86EMU_VEC_SS);
    x86emu_raise(cpu, X86EMU_VEC_GP);
}

void x86emu_seg_check_slow(struct x86emu *cpu, unsigned sreg, uint32_t off,
                           unsigned size, bool write)
{
    if (!x86emu_seg_ok(cpu, sreg, off, size, write))
        x86emu_raise_seg(cpu, sreg);
}

/* ------------------------------------------------------------------ */
/* Memory slow paths and the TLB. */

static uint32_t lin_to_phys(const struct x86emu *cpu, uint32_t lin)
{
    /* Paging (CR0.PG) belongs to protected mode and is not implemented. */
    return lin & cpu->priv.addr_mask;
}

void x86emu_flush_tlb(struct x86emu *cpu)
{
    for (unsigned i = 0; i < X86EMU_TLB_ENTRIES; i++) {
        cpu->priv.tlb[i].read_tag = TLB_EMPTY;
        cpu->priv.tlb[i].write_tag = TLB_EMPTY;
        cpu->priv.tlb[i].host = NULL;
    }
    x86emu_fetch_invalidate(cpu);
}

/* Looks a linear page up through map_ram and caches it; returns the host
 * address of lin or NULL. */
static uint8_t *tlb_fill(struct x86emu *cpu, uint32_t lin, bool write)
{
    struct x86emu_tlb_entry *e = tlb_entry(cpu, lin);
    uint32_t page = lin & X86EMU_PAGE_MASK;
    uint32_t phys = lin_to_phys(cpu, page);
    uint8_t *host;

    if (!cpu->priv.ops->map_ram)
        return NULL;
    host = cpu->priv.ops->map_ram(cpu->priv.opaque, phys, write);
    if (!host)
        return NULL;
    if (e->host != host || (e->read_tag != page && e->write_tag != page)) {
        e->read_tag = TLB_EMPTY;
        e->write_tag = TLB_EMPTY;
    }
    e->host = host;
    e->read_tag = page;
    if (write)
        e->write_tag = page;
    return host + (lin - page);
}

static uint8_t phys_read8(struct x86emu *cpu, uint32_t lin)
{
    uint8_t *host = tlb_fill(cpu, lin, false);

    if (host)
        return *host;
    return (uint8_t)cpu->priv.ops->mem_read(cpu->priv.opaque,
                                            lin_to_phys(cpu, lin), 1);
}

static void phys_write8(struct x86emu *cpu, uint32_t lin, uint8_t v)
{
    uint8_t *host = tlb_fill(cpu, lin, true);

    if (host)
        *host = v;
    else
        cpu->priv.ops->mem_write(cpu->priv.opaque, lin_to_phys(cpu, lin), v,
                                 1);
}

uint32_t x86emu_lin_read_slow(struct x86emu *cpu, uint32_t lin, unsigned size)
{
    uint32_t off = lin & ~X86EMU_PAGE_MASK;
    uint8_t *host;
    uint32_t v = 0;

    if (off > X86EMU_PAGE_SIZE - size) {
        /* Crosses a page: byte by byte, each through its own page. */
        for (unsigned i = 0; i < size; i++)
            v |= (uint32_t)phys_read8(cpu, lin + i) << (8 * i);
        return v;
    }
    host = tlb_fill(cpu, lin, false);
    if (host)
        return x86emu_load_le(host, size);
    v = cpu->priv.ops->mem_read(cpu->priv.opaque, lin_to_phys(cpu, lin), size);
    return size == 4 ? v : v & ((1u << (8 * size)) - 1);
}

void x86emu_lin_write_slow(struct x86emu *cpu, uint32_t lin, uint32_t v,
                           unsigned size)
{
    uint32_t off = lin & ~X86EMU_PAGE_MASK;
    uint8_t *host;

    if (off > X86EMU_PAGE_SIZE - size) {
        for (unsigned i = 0; i < size; i++)
            phys_write8(cpu, lin + i, (uint8_t)(v >> (8 * i)));
        return;
    }
    host = tlb_fill(cpu, lin, true);
    if (host) {
        x86emu_store_le(host, v, size);
        return;
    }
    if (size < 4)
        v &= (1u << (8 * size)) - 1;
    cpu->priv.ops->mem_write(cpu->priv.opaque, lin_to_phys(cpu, lin), v, size);
}

const uint8_t *x86emu_code_page(struct x86emu *cpu, uint32_t lin)
{
    const struct x86emu_tlb_entry *e = tlb_entry(cpu, lin);
    uint32_t page = lin & X86EMU_PAGE_MASK;

    if (e->read_tag == page)
        return e->host + (lin - page);
    return tlb_fill(cpu, lin, false);
}

/* Sets up the instruction fetch window around CS:eip when the code is in
 * RAM and a whole maximum-length instruction fits in the page and the
 * limit; returns false otherwise. */
static bool fetch_window(struct x86emu *cpu, uint32_t eip)
{
    const struct x86emu_segment *cs = &cpu->seg[X86EMU_SEG_CS];
    const uint32_t room = X86EMU_PAGE_SIZE - 16 + 1; /* offsets 0..4080 */
    uint32_t lin = cs->base + eip, off = lin & ~X86EMU_PAGE_MASK, lo, span;
    uint64_t eip_end = cpu->priv.seg_end[X86EMU_SEG_CS];
    const uint8_t *page;

    if (off >= room || (uint64_t)eip + 16 > eip_end)
        return false;
    page = x86emu_code_page(cpu, lin - off);
    if (!page)
        return false;
    /* The window starts at the page's first byte, or at offset 0 of the
     * segment when the segment starts inside the page. */
    if (off > eip) {
        lo = 0;
        page += off - eip;
        span = room - (off - eip);
    } else {
        lo = eip - off;
        span = room;
    }
    if ((uint64_t)lo + span + 15 > eip_end)
        span = (uint32_t)(eip_end - 15 - lo);
    cpu->priv.fetch_eip = lo;
    cpu->priv.fetch_span = span;
    cpu->priv.fetch_host = page;
    return true;
}

/* Starts fetching the instruction at CS:eip when it is not in the current
 * window: a new window if possible, else a copy of what can legally be
 * fetched (up to the maximum length, stopping at the CS limit). */
const uint8_t *x86emu_fetch_slow(struct x86emu *cpu, uint32_t eip)
{
    const struct x86emu_segment *cs = &cpu->seg[X86EMU_SEG_CS];
    const uint8_t *start;
    unsigned n = 0;

    if (fetch_window(cpu, eip)) {
        start = cpu->priv.fetch_host + (eip - cpu->priv.fetch_eip);
        cpu->priv.fetch_end = start + cpu->priv.maxlen;
        return start;
    }
    while (n < cpu->priv.maxlen) {
        uint32_t off = eip + n;

        if (!(cs->attr & X86EMU_SEGATTR_DB) && off > 0xffff)
            break;
        if (off > cs->limit)
            break;
        cpu->priv.fetch_buf[n++] = phys_read8(cpu, cs->base + off);
    }
    cpu->priv.fetch_end = cpu->priv.fetch_buf + n;
    return cpu->priv.fetch_buf;
}

noreturn void x86emu_fetch_fault(struct x86emu *cpu)
{
    /* Past the CS limit or the maximum length (10 bytes on the 286, 15 on
     * the 386): #GP(0) on both. The 80286 suite's README says #UD for an
     * over-long instruction, but its captures (81.0 #5, 11 bytes) show
     * interrupt 13. */
    x86emu_raise(cpu, X86EMU_VEC_GP);
}

/* ------------------------------------------------------------------ */
/* Flags and control registers. */

uint32_t x86emu_eflags_writable(const struct x86emu *cpu)
{
    if (x86emu_is_286(cpu))
        return in_real_mode(cpu) ? EFLAGS_WRITABLE_286_REAL : 0x7fd5u;
    return EFLAGS_WRITABLE_386;
}

void x86emu_write_eflags(struct x86emu *cpu, uint32_t value, uint32_t mask)
{
    uint32_t old = flags_read(cpu);

    mask &= x86emu_eflags_writable(cpu);
    uint32_t f = ((old & ~mask) | (value & mask) | EFLAGS_FIXED1) &
                 ~(uint32_t)X86EMU_FLAG_RF;

    cpu->priv.eflags = f & ~X86EMU_FLAGS_ARITH;
    lf_from_flags(cpu, f);
    if (cpu->priv.eflags & X86EMU_FLAG_TF)
        cpu->priv.events |= X86EMU_EV_TF;
}

uint32_t x86emu_get_eflags(const struct x86emu *cpu)
{
    return flags_read(cpu);
}

void x86emu_set_eflags(struct x86emu *cpu, uint32_t value)
{
    x86emu_write_eflags(cpu, value, 0xffffffffu);
}

void x86emu_write_cr0(struct x86emu *cpu, uint32_t value)
{
    if (x86emu_is_286(cpu))
        value = (value & 0xf) | 0xfff0; /* the MSW: reserved bits read 1 */
    else
        value = (value & 0x8000001fu) & ~X86EMU_CR0_ET;
    if ((value & X86EMU_CR0_PG) && !(value & X86EMU_CR0_PE))
        x86emu_raise(cpu, X86EMU_VEC_GP);
    if ((value ^ cpu->cr0) & (X86EMU_CR0_PE | X86EMU_CR0_PG)) {
        cpu->cr0 = value;
        x86emu_flush_tlb(cpu);
        if (value & X86EMU_CR0_PE)
            cpu->priv.events |= X86EMU_EV_PROTECTED;
        return;
    }
    cpu->cr0 = value;
}

/* ------------------------------------------------------------------ */
/* Interrupts and exceptions. */

noreturn void x86emu_raise(struct x86emu *cpu, int vector)
{
    cpu->priv.fault_vector = vector;
    longjmp(cpu->priv.fault_jmp, 1);
}

static bool vector_is_contributory(int v)
{
    return v == X86EMU_VEC_DE || (v >= 10 && v <= 13);
}

/* Real-mode interrupt: FLAGS, CS and IP go on the stack, the new CS:IP comes
 * from the vector table at IDTR.base (which is 0 unless LIDT moved it). */
void x86emu_interrupt(struct x86emu *cpu, unsigned vector, uint32_t ret_eip)
{
    uint32_t slot = vector * 4, flags, sp, new_ip, new_cs;

    if (slot + 3 > cpu->idtr.limit)
        x86emu_raise(cpu, X86EMU_VEC_GP);
    new_ip = lin_read(cpu, cpu->idtr.base + slot, 2);
    new_cs = lin_read(cpu, cpu->idtr.base + slot + 2, 2);
    flags = flags_read(cpu);
    sp = stack_ptr(cpu);
    sp = stack_push_at(cpu, sp, flags & 0xffff, 2);
    sp = stack_push_at(cpu, sp, cpu->seg[X86EMU_SEG_CS].selector, 2);
    sp = stack_push_at(cpu, sp, ret_eip & 0xffff, 2);
    stack_set(cpu, sp);
    cpu->priv.eflags &= ~(X86EMU_FLAG_IF | X86EMU_FLAG_TF | X86EMU_FLAG_RF);
    x86emu_load_sreg(cpu, X86EMU_SEG_CS, (uint16_t)new_cs);
    cpu->eip = new_ip;
}

/* Delivers the exception priv.fault_vector raised by the instruction at
 * priv.insn_eip, escalating to a double fault or shutdown when delivery
 * itself faults. Returns false on shutdown. */
static bool deliver_fault(struct x86emu *cpu)
{
    int vec = cpu->priv.fault_vector;
    int prev = cpu->priv.fault_depth ? cpu->priv.delivering : -1;

    if (prev >= 0) {
        if (prev == X86EMU_VEC_DF) {
            cpu->priv.events |= X86EMU_EV_SHUTDOWN;
            cpu->priv.fault_depth = 0;
            return false;
        }
        if (vector_is_contributory(prev) && vector_is_contributory(vec))
            vec = X86EMU_VEC_DF;
    }
    cpu->eip = cpu->priv.insn_eip;
    cpu->priv.events &= ~X86EMU_EV_STEP_DUE;
    cpu->priv.fault_depth++;
    cpu->priv.delivering = vec;
    x86emu_interrupt(cpu, (unsigned)vec, cpu->priv.insn_eip);
    cpu->priv.fault_depth = 0;
    cpu->priv.delivering = -1;
    return true;
}

/* Runs an external or trap-style delivery (NMI, INTR, single step) that
 * returns to cpu->eip; a fault during it is handled like one raised by the
 * instruction at cpu->eip. */
static void deliver_event(struct x86emu *cpu, unsigned vector)
{
    cpu->priv.insn_eip = cpu->eip;
    cpu->priv.fault_depth++;
    cpu->priv.delivering = vector == X86EMU_VEC_DB ? X86EMU_VEC_DB : -1;
    x86emu_interrupt(cpu, vector, cpu->eip);
    cpu->priv.fault_depth = 0;
    cpu->priv.delivering = -1;
}

int x86emu_pending_stop(struct x86emu *cpu)
{
    struct x86emu_private *p = &cpu->priv;

    if (p->events & X86EMU_EV_SHUTDOWN)
        return X86EMU_STOP_SHUTDOWN;
    if (p->events & X86EMU_EV_STOP) {
        p->events &= ~X86EMU_EV_STOP;
        return X86EMU_STOP_REQUEST;
    }
    if (p->events & X86EMU_EV_PROTECTED)
        return X86EMU_STOP_UNSUPPORTED;
    if (p->halted)
        return X86EMU_STOP_HALT;
    return -1;
}

/* Everything that happens between two instructions. Returns a stop reason,
 * or -1 to go on executing. */
int x86emu_service_events(struct x86emu *cpu)
{
    struct x86emu_private *p = &cpu->priv;

    if (p->events & X86EMU_EV_SHUTDOWN)
        return X86EMU_STOP_SHUTDOWN;
    if (p->events & X86EMU_EV_STOP) {
        p->events &= ~X86EMU_EV_STOP;
        return X86EMU_STOP_REQUEST;
    }
    if (p->events & X86EMU_EV_PROTECTED)
        return X86EMU_STOP_UNSUPPORTED;
    if (p->events & X86EMU_EV_STEP_DUE) {
        p->events &= ~X86EMU_EV_STEP_DUE;
        deliver_event(cpu, X86EMU_VEC_DB);
    }
    if (p->events & X86EMU_EV_SHADOW) {
        p->events &= ~X86EMU_EV_SHADOW;
    } else if ((p->events & X86EMU_EV_NMI) &&
               !(p->events & X86EMU_EV_NMI_BLOCKED)) {
        p->events &= ~(X86EMU_EV_NMI | X86EMU_EV_HALT);
        p->events |= X86EMU_EV_NMI_BLOCKED;
        p->halted = false;
        deliver_event(cpu, X86EMU_VEC_NMI);
    } else if ((p->events & X86EMU_EV_INTR) &&
               (p->eflags & X86EMU_FLAG_IF)) {
        int vec = p->ops->int_ack ? p->ops->int_ack(p->opaque) : -1;

        if (vec >= 0 && vec <= 255) {
            p->events &= ~X86EMU_EV_HALT;
            p->halted = false;
            deliver_event(cpu, (unsigned)vec);
        }
    }
    if (p->halted)
        return X86EMU_STOP_HALT;
    if (p->eflags & X86EMU_FLAG_TF)
        p->events |= X86EMU_EV_STEP_DUE;
    else
        p->events &= ~X86EMU_EV_TF;
    return -1;
}

enum x86emu_stop x86emu_run(struct x86emu *cpu, uint64_t max_instructions)
{
    enum x86emu_stop stop;

    cpu->priv.budget = max_instructions;
    if (setjmp(cpu->priv.fault_jmp)) {
        /* An exception unwound an instruction or a delivery. */
        if (!deliver_fault(cpu)) {
            stop = X86EMU_STOP_SHUTDOWN;
            goto out;
        }
    }
    stop = x86emu_exec_loop(cpu);
out:
    /* The loop only counts down its budget; icount follows from it. */
    cpu->icount += max_instructions - cpu->priv.budget;
    return stop;
}

enum x86emu_stop x86emu_step(struct x86emu *cpu)
{
    return x86emu_run(cpu, 1);
}

/* ------------------------------------------------------------------ */
/* Machine-facing controls. */

void x86emu_set_a20(struct x86emu *cpu, bool enabled)
{
    uint32_t bus = x86emu_is_286(cpu) ? 0x00ffffffu : 0xffffffffu;

    cpu->priv.a20 = enabled;
    cpu->priv.addr_mask = enabled ? bus : bus & ~(1u << 20);
    x86emu_flush_tlb(cpu);
}

void x86emu_set_intr(struct x86emu *cpu, bool asserted)
{
    if (asserted)
        cpu->priv.events |= X86EMU_EV_INTR;
    else
        cpu->priv.events &= ~X86EMU_EV_INTR;
}

void x86emu_nmi(struct x86emu *cpu)
{
    cpu->priv.events |= X86EMU_EV_NMI;
}

void x86emu_request_stop(struct x86emu *cpu)
{
    cpu->priv.events |= X86EMU_EV_STOP;
}

bool x86emu_halted(const struct x86emu *cpu)
{
    return cpu->priv.halted;
}

void x86emu_reset(struct x86emu *cpu)
{
    bool is286 = x86emu_is_286(cpu);

    memset(cpu->gpr, 0, sizeof(cpu->gpr));
    /* DX holds the component and revision ID after reset on a 386 (a 386DX
     * D1 stepping reports 0x0308). */
    if (!is286)
        cpu->gpr[X86EMU_EDX] = 0x0308;
    for (unsigned i = 0; i < X86EMU_SEG_COUNT; i++) {
        cpu->seg[i].selector = 0;
        cpu->seg[i].base = 0;
        cpu->seg[i].limit = 0xffff;
        cpu->seg[i].attr = 0x93; /* present, writable, accessed data */
    }
    cpu->seg[X86EMU_SEG_CS].selector = 0xf000;
    cpu->seg[X86EMU_SEG_CS].base = is286 ? 0x00ff0000u : 0xffff0000u;
    cpu->seg[X86EMU_SEG_CS].attr = 0x9b;
    cpu->eip = 0xfff0;
    cpu->gdtr.base = 0;
    cpu->gdtr.limit = 0xffff;
    cpu->idtr.base = 0;
    cpu->idtr.limit = 0x3ff;
    memset(&cpu->ldtr, 0, sizeof(cpu->ldtr));
    memset(&cpu->tr, 0, sizeof(cpu->tr));
    cpu->ldtr.limit = cpu->tr.limit = 0xffff;
    cpu->cr0 = is286 ? 0xfff0u : 0;
    cpu->cr2 = cpu->cr3 = cpu->cr4 = 0;
    memset(cpu->dr, 0, sizeof(cpu->dr));
    cpu->dr[6] = 0xffff0ff0u;
    cpu->dr[7] = 0x00000400u;
    cpu->icount = 0;
    cpu->priv.eflags = EFLAGS_FIXED1;
    lf_from_flags(cpu, 0);
    /* The INTR level is the machine's; everything else starts quiet. */
    cpu->priv.events &= X86EMU_EV_INTR;
    cpu->priv.halted = false;
    cpu->priv.fault_depth = 0;
    cpu->priv.delivering = -1;
    x86emu_segments_changed(cpu);
    x86emu_set_a20(cpu, cpu->priv.a20);
}

void x86emu_init(struct x86emu *cpu, enum x86emu_model model,
                 const struct x86emu_ops *ops, void *opaque)
{
    memset(cpu, 0, sizeof(*cpu));
    cpu->model = model == X86EMU_MODEL_286 ? X86EMU_MODEL_286
                                           : X86EMU_MODEL_386;
    cpu->priv.maxlen = cpu->model == X86EMU_MODEL_286 ? 10 : 15;
    cpu->priv.ops = ops;
    cpu->priv.opaque = opaque;
    cpu->priv.a20 = true;
    x86emu_reset(cpu);
}
