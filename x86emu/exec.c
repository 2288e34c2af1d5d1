/* x86emu: the interpreter loop and the one-byte opcode map.
 * Design notes (dispatch, fetch window, lazy flags, restartability) are at
 * the top of x86emu_priv.h. */
#include "x86emu_priv.h"

/* Longest instruction: 10 bytes on the 286, 15 on the 386; longer raises
 * #GP(0). */
#define MAXLEN_286 10
#define MAXLEN_386 15
/* A REP string instruction gives the run loop a chance to take interrupts
 * and honour its budget after this many iterations (it then restarts from
 * its first prefix, as hardware does after an interrupt). */
#define STRING_BATCH 16384

enum alu_op { ALU_ADD, ALU_OR, ALU_ADC, ALU_SBB, ALU_AND, ALU_SUB, ALU_XOR,
              ALU_CMP };

noreturn void x86emu_undefined(struct x86emu *cpu)
{
    x86emu_raise(cpu, X86EMU_VEC_UD);
}

X86EMU_INLINE uint32_t ip_mask(const struct x86emu_insn *in)
{
    return in->o32 ? 0xffffffffu : 0xffff;
}

/* ------------------------------------------------------------------ */
/* Arithmetic. */

X86EMU_INLINE uint32_t alu(struct x86emu *cpu, unsigned op, uint32_t a,
                           uint32_t b, unsigned bits)
{
    uint32_t m = x86emu_size_mask(bits), r, c;

    switch (op) {
    case ALU_ADD:
        r = (a + b) & m;
        lf_arith(cpu, r, (a & b) | ((a | b) & ~r), bits);
        return r;
    case ALU_OR:
        r = (a | b) & m;
        lf_logic(cpu, r, bits);
        return r;
    case ALU_ADC:
        c = get_cf(cpu);
        r = (a + b + c) & m;
        lf_arith(cpu, r, (a & b) | ((a | b) & ~r), bits);
        return r;
    case ALU_SBB:
        c = get_cf(cpu);
        r = (a - b - c) & m;
        lf_arith(cpu, r, (~a & b) | (~(a ^ b) & r), bits);
        return r;
    case ALU_AND:
        r = a & b & m;
        lf_logic(cpu, r, bits);
        return r;
    case ALU_XOR:
        r = (a ^ b) & m;
        lf_logic(cpu, r, bits);
        return r;
    default: /* SUB, CMP */
        r = (a - b) & m;
        lf_arith(cpu, r, (~a & b) | (~(a ^ b) & r), bits);
        return r;
    }
}

/* INC and DEC leave CF alone. OF: the result crossed into or out of the
 * most negative value; AF: the low nibble wrapped. */
X86EMU_INLINE uint32_t alu_incdec(struct x86emu *cpu, uint32_t a, bool dec,
                                  unsigned bits)
{
    uint32_t m = x86emu_size_mask(bits), msb = 1u << (bits - 1), r;
    unsigned of, af;

    if (dec) {
        r = (a - 1) & m;
        of = r == msb - 1;
        af = (r & 0xf) == 0xf;
    } else {
        r = (a + 1) & m;
        of = r == msb;
        af = (r & 0xf) == 0;
    }
    lf_explicit(cpu, r, bits, get_cf(cpu), of, af);
    return r;
}

/* Shifts and rotates (group 2). The count is masked to 5 bits as on every
 * processor since the 186; a zero count changes nothing, flags included.
 * SHL/SHR/SAR results are computed as if shifted one bit at a time, which
 * is what defines CF for counts at or above the operand width. */
static uint32_t shift(struct x86emu *cpu, unsigned op, uint32_t v,
                      unsigned count, unsigned bits)
{
    uint32_t m = x86emu_size_mask(bits), msb = 1u << (bits - 1), r;
    unsigned cf, of, n;
    uint64_t x;

    count &= 31;
    if (!count)
        return v;
    v &= m;
    switch (op) {
    case 0: /* ROL */
        n = count & (bits - 1);
        r = n ? ((v << n) | (v >> (bits - n))) & m : v;
        cf = r & 1;
        lf_set_cf_of(cpu, cf, !!(r & msb) ^ cf);
        return r;
    case 1: /* ROR */
        n = count & (bits - 1);
        r = n ? ((v >> n) | (v << (bits - n))) & m : v;
        cf = !!(r & msb);
        lf_set_cf_of(cpu, cf, cf ^ !!(r & (msb >> 1)));
        return r;
    case 2: /* RCL */
        n = count % (bits + 1);
        x = (uint64_t)get_cf(cpu) << bits | v;
        if (n)
            x = ((x << n) | (x >> (bits + 1 - n))) &
                ((2ull << bits) - 1);
        r = (uint32_t)x & m;
        cf = (unsigned)(x >> bits) & 1;
        lf_set_cf_of(cpu, cf, !!(r & msb) ^ cf);
        return r;
    case 3: /* RCR */
        n = count % (bits + 1);
        x = (uint64_t)get_cf(cpu) << bits | v;
        if (n)
            x = ((x >> n) | (x << (bits + 1 - n))) &
                ((2ull << bits) - 1);
        r = (uint32_t)x & m;
        cf = (unsigned)(x >> bits) & 1;
        lf_set_cf_of(cpu, cf, !!(r & msb) ^ !!(r & (msb >> 1)));
        return r;
    case 4:
    case 6: /* SHL, and its undocumented alias /6 */
        x = (uint64_t)v << count;
        r = (uint32_t)x & m;
        cf = (unsigned)(x >> bits) & 1;
        lf_explicit(cpu, r, bits, cf, !!(r & msb) ^ cf, 0);
        return r;
    case 5: /* SHR */
        r = count >= 32 ? 0 : v >> count;
        cf = (v >> (count - 1)) & 1;
        of = !!((v >> (count - 1)) & msb);
        lf_explicit(cpu, r, bits, cf, of, 0);
        return r;
    default: { /* SAR */
        int32_t s = (int32_t)x86emu_sext(v, bits);

        r = (uint32_t)(s >> count) & m;
        cf = (unsigned)(s >> (count - 1)) & 1;
        lf_explicit(cpu, r, bits, cf, 0, 0);
        return r;
    }
    }
}

/* ------------------------------------------------------------------ */
/* Operand forms. */

/* A read-modify-write memory operand: checked for writing once, so the
 * write cannot fault after the flags were updated. */
X86EMU_INLINE uint32_t rmw_lin(struct x86emu *cpu, struct x86emu_insn *in,
                               unsigned size)
{
    uint32_t lin = seg_lin(cpu, in->ea_seg, in->ea, size, true);

    lin_probe_write(cpu, lin, size);
    return lin;
}

X86EMU_INLINE void alu_rm_reg(struct x86emu *cpu, struct x86emu_insn *in,
                              unsigned op, unsigned bits)
{
    uint32_t b, r;

    decode_modrm(cpu, in);
    b = reg_read(cpu, modrm_reg(in), bits);
    if (modrm_is_reg(in)) {
        unsigned rm = in->modrm & 7;

        r = alu(cpu, op, reg_read(cpu, rm, bits), b, bits);
        if (op != ALU_CMP)
            reg_write(cpu, rm, bits, r);
    } else if (op == ALU_CMP) {
        alu(cpu, op, mem_read(cpu, in->ea_seg, in->ea, bits / 8), b, bits);
    } else {
        uint32_t lin = rmw_lin(cpu, in, bits / 8);

        r = alu(cpu, op, lin_read(cpu, lin, bits / 8), b, bits);
        lin_write(cpu, lin, r, bits / 8);
    }
}

X86EMU_INLINE void alu_reg_rm(struct x86emu *cpu, struct x86emu_insn *in,
                              unsigned op, unsigned bits)
{
    uint32_t r;
    unsigned reg;

    decode_modrm(cpu, in);
    reg = modrm_reg(in);
    r = alu(cpu, op, reg_read(cpu, reg, bits), rm_read(cpu, in, bits), bits);
    if (op != ALU_CMP)
        reg_write(cpu, reg, bits, r);
}

/* r/m op= value, for the immediate groups. */
X86EMU_INLINE void alu_rm_value(struct x86emu *cpu, struct x86emu_insn *in,
                                unsigned op, uint32_t b, unsigned bits)
{
    if (modrm_is_reg(in)) {
        unsigned rm = in->modrm & 7;
        uint32_t r = alu(cpu, op, reg_read(cpu, rm, bits), b, bits);

        if (op != ALU_CMP)
            reg_write(cpu, rm, bits, r);
    } else if (op == ALU_CMP) {
        alu(cpu, op, mem_read(cpu, in->ea_seg, in->ea, bits / 8), b, bits);
    } else {
        uint32_t lin = rmw_lin(cpu, in, bits / 8);
        uint32_t r = alu(cpu, op, lin_read(cpu, lin, bits / 8), b, bits);

        lin_write(cpu, lin, r, bits / 8);
    }
}

static void shift_rm(struct x86emu *cpu, struct x86emu_insn in_copy,
                     unsigned count, unsigned bits)
{
    struct x86emu_insn *in = &in_copy;

    unsigned op = modrm_reg(in);

    if (modrm_is_reg(in)) {
        unsigned rm = in->modrm & 7;

        reg_write(cpu, rm, bits,
                  shift(cpu, op, reg_read(cpu, rm, bits), count, bits));
    } else {
        uint32_t lin = rmw_lin(cpu, in, bits / 8);
        uint32_t v = lin_read(cpu, lin, bits / 8);

        lin_write(cpu, lin, shift(cpu, op, v, count, bits), bits / 8);
    }
}

/* ------------------------------------------------------------------ */
/* Multiplication and division (group 3). */

static void mul_op(struct x86emu *cpu, uint32_t src, bool is_signed,
                   unsigned bits)
{
    uint32_t *a = &cpu->gpr[X86EMU_EAX], *d = &cpu->gpr[X86EMU_EDX];
    unsigned over;

    if (bits == 8) {
        uint32_t r;

        if (is_signed) {
            r = (uint32_t)((int32_t)(int8_t)*a * (int32_t)(int8_t)src);
            over = (int32_t)(int16_t)r != (int32_t)(int8_t)r;
        } else {
            r = (*a & 0xff) * (src & 0xff);
            over = (r >> 8) != 0;
        }
        *a = (*a & ~0xffffu) | (r & 0xffff);
        lf_explicit(cpu, r, 8, over, over, 0);
    } else if (bits == 16) {
        uint32_t r;

        if (is_signed) {
            r = (uint32_t)((int32_t)(int16_t)*a * (int32_t)(int16_t)src);
            over = (int32_t)r != (int32_t)(int16_t)r;
        } else {
            r = (*a & 0xffff) * (src & 0xffff);
            over = (r >> 16) != 0;
        }
        *a = (*a & ~0xffffu) | (r & 0xffff);
        *d = (*d & ~0xffffu) | (r >> 16);
        lf_explicit(cpu, r, 16, over, over, 0);
    } else {
        uint64_t r;

        if (is_signed) {
            r = (uint64_t)((int64_t)(int32_t)*a * (int64_t)(int32_t)src);
            over = (int64_t)r != (int64_t)(int32_t)r;
        } else {
            r = (uint64_t)*a * src;
            over = (r >> 32) != 0;
        }
        *a = (uint32_t)r;
        *d = (uint32_t)(r >> 32);
        lf_explicit(cpu, (uint32_t)r, 32, over, over, 0);
    }
}

/* #DE is a fault: the return address is the DIV itself (286 and later). The
 * 286 accepts the most negative quotient (-128, -32768) that the 8086
 * rejected. */
static void div_op(struct x86emu *cpu, uint32_t src, bool is_signed,
                   unsigned bits)
{
    uint32_t *a = &cpu->gpr[X86EMU_EAX], *d = &cpu->gpr[X86EMU_EDX];

    if (bits == 8) {
        if (!(src & 0xff))
            x86emu_raise(cpu, X86EMU_VEC_DE);
        if (is_signed) {
            int32_t n = (int16_t)*a, s = (int8_t)src, q = n / s, r = n % s;

            if (q > 127 || q < -128)
                x86emu_raise(cpu, X86EMU_VEC_DE);
            *a = (*a & ~0xffffu) | (uint32_t)(q & 0xff) |
                 (uint32_t)(r & 0xff) << 8;
        } else {
            uint32_t n = *a & 0xffff, s = src & 0xff, q = n / s, r = n % s;

            if (q > 0xff)
                x86emu_raise(cpu, X86EMU_VEC_DE);
            *a = (*a & ~0xffffu) | q | r << 8;
        }
    } else if (bits == 16) {
        uint32_t n = (*d & 0xffff) << 16 | (*a & 0xffff);

        if (!(src & 0xffff))
            x86emu_raise(cpu, X86EMU_VEC_DE);
        if (is_signed) {
            int32_t sn = (int32_t)n, s = (int16_t)src;
            int64_t q = (int64_t)sn / s, r = (int64_t)sn % s;

            if (q > 32767 || q < -32768)
                x86emu_raise(cpu, X86EMU_VEC_DE);
            *a = (*a & ~0xffffu) | ((uint32_t)q & 0xffff);
            *d = (*d & ~0xffffu) | ((uint32_t)r & 0xffff);
        } else {
            uint32_t s = src & 0xffff, q = n / s, r = n % s;

            if (q > 0xffff)
                x86emu_raise(cpu, X86EMU_VEC_DE);
            *a = (*a & ~0xffffu) | q;
            *d = (*d & ~0xffffu) | r;
        }
    } else {
        uint64_t n = (uint64_t)*d << 32 | *a;

        if (!src)
            x86emu_raise(cpu, X86EMU_VEC_DE);
        if (is_signed) {
            int64_t sn = (int64_t)n, s = (int32_t)src, q, r;

            /* INT64_MIN / -1 overflows the host too: it is #DE anyway. */
            if (sn == INT64_MIN && s == -1)
                x86emu_raise(cpu, X86EMU_VEC_DE);
            q = sn / s;
            r = sn % s;
            if (q > INT32_MAX || q < INT32_MIN)
                x86emu_raise(cpu, X86EMU_VEC_DE);
            *a = (uint32_t)q;
            *d = (uint32_t)r;
        } else {
            uint64_t q = n / src, r = n % src;

            if (q > 0xffffffffu)
                x86emu_raise(cpu, X86EMU_VEC_DE);
            *a = (uint32_t)q;
            *d = (uint32_t)r;
        }
    }
}

static void group3(struct x86emu *cpu, struct x86emu_insn in_copy, unsigned bits)
{
    struct x86emu_insn *in = &in_copy;

    unsigned op = modrm_reg(in);
    uint32_t v, imm;

    switch (op) {
    case 0:
    case 1: /* TEST; /1 is an undocumented alias */
        v = rm_read(cpu, in, bits);
        imm = fetch_imm(cpu, in, bits);
        alu(cpu, ALU_AND, v, imm, bits);
        break;
    case 2: /* NOT */
    case 3: /* NEG */
        if (modrm_is_reg(in)) {
            v = reg_read(cpu, in->modrm & 7, bits);
            v = op == 2 ? ~v & x86emu_size_mask(bits)
                        : alu(cpu, ALU_SUB, 0, v, bits);
            reg_write(cpu, in->modrm & 7, bits, v);
        } else {
            uint32_t lin = rmw_lin(cpu, in, bits / 8);

            v = lin_read(cpu, lin, bits / 8);
            v = op == 2 ? ~v & x86emu_size_mask(bits)
                        : alu(cpu, ALU_SUB, 0, v, bits);
            lin_write(cpu, lin, v, bits / 8);
        }
        break;
    case 4:
    case 5:
        mul_op(cpu, rm_read(cpu, in, bits), op == 5, bits);
        break;
    default:
        div_op(cpu, rm_read(cpu, in, bits), op == 7, bits);
        break;
    }
    cpu->eip = insn_next_eip(cpu, in);
}

/* IMUL r, r/m, imm and IMUL r, r/m: the truncated product, CF = OF = it
 * did not fit. */
uint32_t x86emu_imul_trunc(struct x86emu *cpu, uint32_t a, uint32_t b,
                           unsigned bits)
{
    int64_t p = (int64_t)(int32_t)x86emu_sext(a, bits) *
                (int64_t)(int32_t)x86emu_sext(b, bits);
    uint32_t r = (uint32_t)p & x86emu_size_mask(bits);
    unsigned over = p != (int64_t)(int32_t)x86emu_sext(r, bits);

    lf_explicit(cpu, r, bits, over, over, 0);
    return r;
}

/* ------------------------------------------------------------------ */
/* Decimal adjustment. Undefined flags follow what the 386 is documented
 * to leave (result-based SF/ZF/PF). */

static void bcd_daa_das(struct x86emu *cpu, bool sub)
{
    uint32_t al = cpu->gpr[X86EMU_EAX] & 0xff, old_al = al;
    unsigned old_cf = get_cf(cpu), cf = 0, af = 0;

    if ((al & 0xf) > 9 || get_af(cpu)) {
        cf = old_cf | (sub ? al < 6 : al > 0xf9);
        al = (sub ? al - 6 : al + 6) & 0xff;
        af = 1;
    }
    if (old_al > 0x99 || old_cf) {
        al = (sub ? al - 0x60 : al + 0x60) & 0xff;
        cf = 1;
    }
    reg_write(cpu, X86EMU_EAX, 8, al);
    lf_explicit(cpu, al, 8, cf, 0, af);
}

static void bcd_aaa_aas(struct x86emu *cpu, bool sub)
{
    uint32_t ax = cpu->gpr[X86EMU_EAX] & 0xffff;
    unsigned adjust = (ax & 0xf) > 9 || get_af(cpu);

    /* The 286 and later adjust the whole of AX (Intel SDM AAA/AAS): the
     * 6 carries into or borrows from AH, unlike on the 8086. */
    if (adjust)
        ax = (sub ? ax - 6 - 0x100 : ax + 0x106) & 0xffff;
    ax &= 0xff0f;
    reg_write(cpu, X86EMU_EAX, 16, ax);
    lf_explicit(cpu, ax & 0xff, 8, adjust, 0, adjust);
}

/* ------------------------------------------------------------------ */
/* String instructions. */

enum str_kind { STR_MOVS, STR_CMPS, STR_STOS, STR_LODS, STR_SCAS, STR_INS,
                STR_OUTS };

/* What a 286 has already done to the registers when a string iteration
 * hits a segment overrun (SingleStepTests 80286 data): the index update
 * that follows the faulting access still happens, and so do those before
 * it; with a REP prefix the count was decremented at the start of the
 * iteration, and after a faulting write the next iteration's decrement
 * happens too. The 386 faults precisely (nothing of the iteration). */
enum { Q_SI = 1, Q_DI = 2, Q_CX = 4, Q_CX_NEXT = 8 };

static noreturn void string_fault_286(struct x86emu *cpu,
                                      struct x86emu_insn *in, unsigned sreg,
                                      unsigned what, uint32_t delta)
{
    uint32_t amask = in->a32 ? 0xffffffffu : 0xffff;

    if (what & Q_SI)
        cpu->gpr[X86EMU_ESI] = (cpu->gpr[X86EMU_ESI] & ~amask) |
                               ((cpu->gpr[X86EMU_ESI] + delta) & amask);
    if (what & Q_DI)
        cpu->gpr[X86EMU_EDI] = (cpu->gpr[X86EMU_EDI] & ~amask) |
                               ((cpu->gpr[X86EMU_EDI] + delta) & amask);
    if (in->rep && (what & Q_CX)) {
        uint32_t cx = (cpu->gpr[X86EMU_ECX] - 1) & amask;

        if ((what & Q_CX_NEXT) && cx)
            cx = (cx - 1) & amask;
        cpu->gpr[X86EMU_ECX] = (cpu->gpr[X86EMU_ECX] & ~amask) | cx;
    }
    x86emu_raise_seg(cpu, sreg);
}

static inline void string_check(struct x86emu *cpu, struct x86emu_insn *in,
                                unsigned sreg, uint32_t off, unsigned size,
                                bool write, unsigned what, uint32_t delta)
{
    if (x86emu_is_286(cpu) && !x86emu_seg_ok(cpu, sreg, off, size, write))
        string_fault_286(cpu, in, sreg, what, delta);
}

static bool want_boundary(const struct x86emu *cpu)
{
    uint32_t ev = cpu->priv.events;

    return (ev & ~(X86EMU_EV_INTR | X86EMU_EV_NMI_BLOCKED)) ||
           ((ev & X86EMU_EV_INTR) && (cpu->priv.eflags & X86EMU_FLAG_IF));
}

static void string_insn(struct x86emu *cpu, struct x86emu_insn in_copy,
                        enum str_kind kind, unsigned size)
{
    struct x86emu_insn *in = &in_copy;

    const uint32_t amask = in->a32 ? 0xffffffffu : 0xffff;
    const uint32_t delta = (cpu->priv.eflags & X86EMU_FLAG_DF)
                               ? (uint32_t)-(int32_t)size : size;
    const unsigned src = insn_seg(in, X86EMU_SEG_DS), es = X86EMU_SEG_ES;
    const unsigned bits = size * 8;
    const uint16_t port = (uint16_t)cpu->gpr[X86EMU_EDX];
    uint32_t count = in->rep ? cpu->gpr[X86EMU_ECX] & amask : 1;
    unsigned batch = 0;

    /* I/O permission is checked before the count, as the SDM's INS/OUTS
     * pseudocode does. */
    if (kind == STR_INS || kind == STR_OUTS)
        x86emu_check_io(cpu, port, size);
    if (!count)
        goto done;
    for (;;) {
        uint32_t si = cpu->gpr[X86EMU_ESI] & amask;
        uint32_t di = cpu->gpr[X86EMU_EDI] & amask;
        uint32_t v, w;

        switch (kind) {
        case STR_MOVS:
            string_check(cpu, in, src, si, size, false, Q_CX | Q_SI, delta);
            v = mem_read(cpu, src, si, size);
            string_check(cpu, in, es, di, size, true,
                         Q_CX | Q_SI | Q_DI | Q_CX_NEXT, delta);
            mem_write(cpu, es, di, v, size);
            break;
        case STR_CMPS:
            /* The 286 reads ES:DI first. */
            string_check(cpu, in, es, di, size, false, Q_DI, delta);
            w = mem_read(cpu, es, di, size);
            string_check(cpu, in, src, si, size, false, Q_DI | Q_SI, delta);
            v = mem_read(cpu, src, si, size);
            alu(cpu, ALU_SUB, v, w, bits);
            break;
        case STR_STOS:
            string_check(cpu, in, es, di, size, true,
                         Q_CX | Q_DI | Q_CX_NEXT, delta);
            mem_write(cpu, es, di, reg_read(cpu, X86EMU_EAX, bits), size);
            break;
        case STR_LODS:
            string_check(cpu, in, src, si, size, false, Q_CX | Q_SI, delta);
            reg_write(cpu, X86EMU_EAX, bits, mem_read(cpu, src, si, size));
            break;
        case STR_SCAS:
            string_check(cpu, in, es, di, size, false, Q_DI, delta);
            w = mem_read(cpu, es, di, size);
            alu(cpu, ALU_SUB, reg_read(cpu, X86EMU_EAX, bits), w, bits);
            break;
        case STR_INS:
            string_check(cpu, in, es, di, size, true,
                         Q_CX | Q_DI | Q_CX_NEXT, delta);
            seg_lin(cpu, es, di, size, true);
            v = cpu->priv.ops->io_in(cpu->priv.opaque, port, size);
            mem_write(cpu, es, di, v, size);
            break;
        default: /* STR_OUTS */
            string_check(cpu, in, src, si, size, false, Q_CX | Q_SI, delta);
            v = mem_read(cpu, src, si, size);
            cpu->priv.ops->io_out(cpu->priv.opaque, port, v, size);
            break;
        }
        if (kind == STR_MOVS || kind == STR_CMPS || kind == STR_LODS ||
            kind == STR_OUTS)
            cpu->gpr[X86EMU_ESI] = (cpu->gpr[X86EMU_ESI] & ~amask) |
                                   ((si + delta) & amask);
        if (kind != STR_LODS && kind != STR_OUTS)
            cpu->gpr[X86EMU_EDI] = (cpu->gpr[X86EMU_EDI] & ~amask) |
                                   ((di + delta) & amask);
        if (!in->rep)
            break;
        count = (count - 1) & amask;
        cpu->gpr[X86EMU_ECX] = (cpu->gpr[X86EMU_ECX] & ~amask) | count;
        if (!count)
            break;
        if ((kind == STR_CMPS || kind == STR_SCAS) &&
            get_zf(cpu) != (in->rep == 0xf3))
            break;
        if (++batch >= STRING_BATCH || want_boundary(cpu)) {
            /* Resume later from the first prefix. */
            cpu->eip = cpu->priv.insn_eip;
            return;
        }
    }
done:
    cpu->eip = insn_next_eip(cpu, in);
}

/* ------------------------------------------------------------------ */
/* Control transfer helpers. */

static void far_jump(struct x86emu *cpu, uint16_t sel, uint32_t off, bool o32)
{
    if (x86emu_protected(cpu)) {
        x86emu_far_jump_pm(cpu, sel, off, o32);
        return;
    }
    /* Real mode: the CS limit stays what it was, so it can be checked
     * before anything changes. */
    if (off > cpu->seg[X86EMU_SEG_CS].limit)
        x86emu_raise(cpu, X86EMU_VEC_GP);
    x86emu_load_sreg(cpu, X86EMU_SEG_CS, sel);
    cpu->eip = off;
}

static void far_call(struct x86emu *cpu, struct x86emu_insn in_copy, uint16_t sel,
                     uint32_t off)
{
    struct x86emu_insn *in = &in_copy;

    unsigned size = in->o32 ? 4 : 2;
    uint32_t sp = stack_ptr(cpu);

    if (x86emu_protected(cpu)) {
        x86emu_far_call_pm(cpu, sel, off, in->o32, insn_next_eip(cpu, in));
        return;
    }
    if (off > cpu->seg[X86EMU_SEG_CS].limit)
        x86emu_raise(cpu, X86EMU_VEC_GP);
    sp = stack_push_at(cpu, sp, cpu->seg[X86EMU_SEG_CS].selector, size);
    sp = stack_push_at(cpu, sp, insn_next_eip(cpu, in), size);
    stack_set(cpu, sp);
    x86emu_load_sreg(cpu, X86EMU_SEG_CS, sel);
    cpu->eip = off;
}

static void far_return(struct x86emu *cpu, struct x86emu_insn in_copy,
                       uint32_t release)
{
    struct x86emu_insn *in = &in_copy;

    unsigned size = in->o32 ? 4 : 2;
    uint32_t sp = stack_ptr(cpu), off, sel;

    if (x86emu_protected(cpu)) {
        x86emu_far_return_pm(cpu, in->o32, release);
        return;
    }
    off = stack_read_at(cpu, sp, size);
    sel = stack_read_at(cpu, sp + size, size) & 0xffff;
    if (!in->o32)
        off &= 0xffff;
    if (off > cpu->seg[X86EMU_SEG_CS].limit)
        x86emu_raise(cpu, X86EMU_VEC_GP);
    stack_set(cpu, sp + 2 * size + release);
    x86emu_load_sreg(cpu, X86EMU_SEG_CS, (uint16_t)sel);
    cpu->eip = off;
}

static void iret(struct x86emu *cpu, struct x86emu_insn in_copy)
{
    struct x86emu_insn *in = &in_copy;

    unsigned size = in->o32 ? 4 : 2;
    uint32_t sp = stack_ptr(cpu), off, sel, flags;

    if (x86emu_protected(cpu)) {
        x86emu_iret_pm(cpu, in->o32);
        return;
    }
    off = stack_read_at(cpu, sp, size);
    sel = stack_read_at(cpu, sp + size, size) & 0xffff;
    flags = stack_read_at(cpu, sp + 2 * size, size);
    if (!in->o32)
        off &= 0xffff;
    if (off > cpu->seg[X86EMU_SEG_CS].limit)
        x86emu_raise(cpu, X86EMU_VEC_GP);
    stack_set(cpu, sp + 3 * size);
    x86emu_load_sreg(cpu, X86EMU_SEG_CS, (uint16_t)sel);
    cpu->eip = off;
    x86emu_write_eflags(cpu, flags, in->o32 ? 0xffffffffu : 0xffff);
    cpu->priv.events &= ~X86EMU_EV_NMI_BLOCKED;
}

/* LES, LDS, LSS, LFS, LGS: offset then selector from memory. */
void x86emu_load_far_pointer(struct x86emu *cpu, struct x86emu_insn in_copy,
                             unsigned sreg)
{
    struct x86emu_insn *in = &in_copy;

    unsigned size = in->o32 ? 4 : 2;
    uint32_t off, sel;

    if (modrm_is_reg(in))
        x86emu_undefined(cpu);
    off = mem_read(cpu, in->ea_seg, in->ea, size);
    sel = mem_read(cpu, in->ea_seg, (in->ea + size) & (in->a32 ? ~0u : 0xffff),
                   2);
    x86emu_load_sreg(cpu, sreg, (uint16_t)sel);
    reg_write(cpu, modrm_reg(in), size * 8, off);
    if (sreg == X86EMU_SEG_SS)
        cpu->priv.events |= X86EMU_EV_SHADOW;
}

/* ------------------------------------------------------------------ */
/* LOCK is only legal on the 386 in front of a read-modify-write memory
 * instruction; the 286 accepts it anywhere (SingleStepTests 80286 README). */
static bool lock_allowed(uint8_t op, uint8_t modrm)
{
    unsigned reg = (modrm >> 3) & 7;

    if (modrm >= 0xc0)
        return false;
    if (op < 0x40 && (op & 7) < 2)
        return (op & 0x38) != 0x38; /* not CMP */
    switch (op) {
    case 0x80: case 0x81: case 0x82: case 0x83:
        return reg != 7;
    case 0x86: case 0x87:
        return true;
    case 0xf6: case 0xf7:
        return reg == 2 || reg == 3;
    case 0xfe: case 0xff:
        return reg < 2;
    default:
        return false;
    }
}

bool x86emu_lock_allowed_0f(uint8_t op, uint8_t modrm)
{
    if (modrm >= 0xc0)
        return false;
    switch (op) {
    case 0xab: case 0xb3: case 0xbb:
    case 0xb0: case 0xb1: case 0xc0: case 0xc1: /* CMPXCHG, XADD */
        return true;
    case 0xba:
        return ((modrm >> 3) & 7) >= 5;
    default:
        return false;
    }
}

/* Called at a LOCK prefix on a 386: finds the opcode after any further
 * prefixes and raises #UD unless LOCK may precede it. Running out of bytes
 * is left to the decoder, which faults on it. */
static void check_lock(struct x86emu *cpu, struct x86emu_insn in_copy)
{
    struct x86emu_insn *in = &in_copy;

    const uint8_t *p = in->p;

    while (p < in->end) {
        switch (*p) {
        case 0x26: case 0x2e: case 0x36: case 0x3e: case 0x64: case 0x65:
        case 0x66: case 0x67: case 0xf0: case 0xf2: case 0xf3:
            p++;
            continue;
        case 0x0f:
            if (in->end - p < 3)
                return;
            if (!x86emu_lock_allowed_0f(p[1], p[2]))
                x86emu_undefined(cpu);
            return;
        default:
            if (in->end - p < 2)
                return;
            if (!lock_allowed(p[0], p[1]))
                x86emu_undefined(cpu);
            return;
        }
    }
}

/* ESC (D8-DF) with no coprocessor: #NM when CR0.EM or CR0.TS says so,
 * otherwise the 286 decodes the operand, checks its address and carries
 * on (SingleStepTests 80286 D8 data: no coprocessor attached, EM clear). */
static void escape(struct x86emu *cpu, struct x86emu_insn in_copy)
{
    struct x86emu_insn *in = &in_copy;

    if (cpu->cr0 & (X86EMU_CR0_EM | X86EMU_CR0_TS))
        x86emu_raise(cpu, X86EMU_VEC_NM);
    decode_modrm(cpu, in);
    if (!modrm_is_reg(in))
        seg_lin(cpu, in->ea_seg, in->ea, 2, false);
    cpu->eip = insn_next_eip(cpu, in);
}

/* ------------------------------------------------------------------ */
/* The interpreter. */

/* Expands stmt twice, with the constant BITS set to 32 or 16 by the
 * operand size, so that the inlined helpers fold their size switches. */
#define BY_OSZ(stmt)                                                          \
    do {                                                                      \
        if (in.o32) {                                                         \
            const unsigned BITS = 32;                                         \
            stmt;                                                             \
        } else {                                                              \
            const unsigned BITS = 16;                                         \
            stmt;                                                             \
        }                                                                     \
    } while (0)

/* The six encodings of ADD OR ADC SBB AND SUB XOR CMP. */
#define ALU_CASES(base, OP)                                                   \
    case (base) + 0:                                                          \
        alu_rm_reg(cpu, &in, OP, 8);                                          \
        break;                                                                \
    case (base) + 1:                                                          \
        BY_OSZ(alu_rm_reg(cpu, &in, OP, BITS));                               \
        break;                                                                \
    case (base) + 2:                                                          \
        alu_reg_rm(cpu, &in, OP, 8);                                          \
        break;                                                                \
    case (base) + 3:                                                          \
        BY_OSZ(alu_reg_rm(cpu, &in, OP, BITS));                               \
        break;                                                                \
    case (base) + 4:                                                          \
        v = alu(cpu, OP, cpu->gpr[X86EMU_EAX] & 0xff, fetch8(cpu, &in), 8);   \
        if (OP != ALU_CMP)                                                    \
            reg_write(cpu, X86EMU_EAX, 8, v);                                 \
        break;                                                                \
    case (base) + 5:                                                          \
        BY_OSZ(w = fetch_imm(cpu, &in, BITS);                                 \
               v = alu(cpu, OP, reg_read(cpu, X86EMU_EAX, BITS), w, BITS);    \
               if (OP != ALU_CMP) reg_write(cpu, X86EMU_EAX, BITS, v));       \
        break;

#define REG_CASES(base, stmt)                                                 \
    case (base) + 0: { const unsigned R = 0; stmt; } break;                   \
    case (base) + 1: { const unsigned R = 1; stmt; } break;                   \
    case (base) + 2: { const unsigned R = 2; stmt; } break;                   \
    case (base) + 3: { const unsigned R = 3; stmt; } break;                   \
    case (base) + 4: { const unsigned R = 4; stmt; } break;                   \
    case (base) + 5: { const unsigned R = 5; stmt; } break;                   \
    case (base) + 6: { const unsigned R = 6; stmt; } break;                   \
    case (base) + 7: { const unsigned R = 7; stmt; } break;

X86EMU_INLINE void jcc(struct x86emu *cpu, struct x86emu_insn *in,
                       unsigned cc)
{
    uint32_t rel = (uint32_t)(int32_t)(int8_t)fetch8(cpu, in);
    uint32_t next = insn_next_eip(cpu, in);

    if (x86emu_cond(cpu, cc))
        jump_to(cpu, (next + rel) & ip_mask(in));
    else
        cpu->eip = next;
}

#define JCC_CASE(cc)                                                          \
    case 0x70 + (cc):                                                         \
        jcc(cpu, &in, cc);                                                    \
        return;

/* The operand size of the instruction being decoded in exec_one. */
#define OSZ (in.o32 ? 32u : 16u)

X86EMU_INLINE void exec_one(struct x86emu *cpu)
{
    struct x86emu_insn in;
    const uint32_t eip = cpu->eip;
    const uint32_t win = eip - cpu->priv.fetch_eip;
    unsigned bits;
    uint8_t op;
    uint32_t v, w;

    cpu->priv.insn_eip = eip;
    if (X86EMU_LIKELY(win < cpu->priv.fetch_span)) {
        in.start = in.p = cpu->priv.fetch_host + win;
        in.end = in.p + cpu->priv.maxlen;
    } else {
        in.start = in.p = x86emu_fetch_slow(cpu, eip);
        in.end = cpu->priv.fetch_end;
    }
    in.eip = eip;
    in.state = cpu->priv.insn_template;

next_byte:
    op = fetch8(cpu, &in);

    switch (op) {
    /* Prefixes. */
    case 0x26: in.seg_override = X86EMU_SEG_ES; goto next_byte;
    case 0x2e: in.seg_override = X86EMU_SEG_CS; goto next_byte;
    case 0x36: in.seg_override = X86EMU_SEG_SS; goto next_byte;
    case 0x3e: in.seg_override = X86EMU_SEG_DS; goto next_byte;
    case 0x64:
    case 0x65:
        if (x86emu_is_286(cpu))
            x86emu_undefined(cpu);
        in.seg_override = op == 0x64 ? X86EMU_SEG_FS : X86EMU_SEG_GS;
        goto next_byte;
    case 0x66:
        if (x86emu_is_286(cpu))
            x86emu_undefined(cpu);
        in.o32 = cpu->priv.eip_mask == 0xffff;
        goto next_byte;
    case 0x67:
        if (x86emu_is_286(cpu))
            x86emu_undefined(cpu);
        in.a32 = cpu->priv.eip_mask == 0xffff;
        goto next_byte;
    case 0xf0:
        if (!in.lock && !x86emu_is_286(cpu))
            check_lock(cpu, in);
        in.lock = true;
        goto next_byte;
    case 0xf1:
        if (x86emu_is_286(cpu))
            goto next_byte; /* the 286 ignores it as a prefix */
        /* ICEBP: a single-step style trap to vector 1. */
        x86emu_interrupt(cpu, X86EMU_VEC_DB, insn_next_eip(cpu, &in), 0, 0);
        return;
    case 0xf2:
    case 0xf3:
        in.rep = op;
        goto next_byte;

    ALU_CASES(0x00, ALU_ADD)
    ALU_CASES(0x08, ALU_OR)
    ALU_CASES(0x10, ALU_ADC)
    ALU_CASES(0x18, ALU_SBB)
    ALU_CASES(0x20, ALU_AND)
    ALU_CASES(0x28, ALU_SUB)
    ALU_CASES(0x30, ALU_XOR)
    ALU_CASES(0x38, ALU_CMP)

    case 0x06: case 0x0e: case 0x16: case 0x1e: /* PUSH ES/CS/SS/DS */
        push(cpu, cpu->seg[op >> 3].selector, OSZ / 8);
        break;
    case 0x07: case 0x17: case 0x1f: /* POP ES/SS/DS */
        v = stack_read_at(cpu, stack_ptr(cpu), OSZ / 8);
        x86emu_load_sreg(cpu, op >> 3, (uint16_t)v);
        stack_set(cpu, stack_ptr(cpu) + OSZ / 8);
        if (op == 0x17)
            cpu->priv.events |= X86EMU_EV_SHADOW;
        break;
    case 0x0f:
        x86emu_exec_0f(cpu, in);
        return;

    case 0x27: bcd_daa_das(cpu, false); break;
    case 0x2f: bcd_daa_das(cpu, true); break;
    case 0x37: bcd_aaa_aas(cpu, false); break;
    case 0x3f: bcd_aaa_aas(cpu, true); break;

    REG_CASES(0x40, BY_OSZ(reg_write(cpu, R, BITS,
                                     alu_incdec(cpu, reg_read(cpu, R, BITS),
                                                false, BITS))))
    REG_CASES(0x48, BY_OSZ(reg_write(cpu, R, BITS,
                                     alu_incdec(cpu, reg_read(cpu, R, BITS),
                                                true, BITS))))
    /* PUSH r; PUSH SP pushes the value before the decrement */
    REG_CASES(0x50, BY_OSZ(push(cpu, reg_read(cpu, R, BITS), BITS / 8)))
    REG_CASES(0x58, BY_OSZ(v = pop(cpu, BITS / 8); reg_write(cpu, R, BITS, v)))

    case 0x60: { /* PUSHA */
        uint32_t sp = stack_ptr(cpu), orig = reg_read(cpu, X86EMU_ESP, OSZ);

        for (unsigned r = 0; r < 8; r++)
            sp = stack_push_at(cpu, sp,
                               r == X86EMU_ESP ? orig : reg_read(cpu, r, OSZ),
                               OSZ / 8);
        stack_set(cpu, sp);
        break;
    }
    case 0x61: { /* POPA: the saved SP is skipped */
        uint32_t sp = stack_ptr(cpu), vals[8];

        for (int r = 7; r >= 0; r--) {
            vals[r] = stack_read_at(cpu, sp, OSZ / 8);
            sp += OSZ / 8;
        }
        for (unsigned r = 0; r < 8; r++)
            if (r != X86EMU_ESP)
                reg_write(cpu, r, OSZ, vals[r]);
        stack_set(cpu, sp);
        break;
    }
    case 0x62: { /* BOUND: #BR is a fault */
        uint32_t lo, hi, idx;
        unsigned size = OSZ / 8;

        decode_modrm(cpu, &in);
        if (modrm_is_reg(&in))
            x86emu_undefined(cpu);
        lo = mem_read(cpu, in.ea_seg, in.ea, size);
        hi = mem_read(cpu, in.ea_seg, (in.ea + size) & (in.a32 ? ~0u : 0xffff),
                      size);
        idx = reg_read(cpu, modrm_reg(&in), OSZ);
        if ((int32_t)x86emu_sext(idx, OSZ) < (int32_t)x86emu_sext(lo, OSZ) ||
            (int32_t)x86emu_sext(idx, OSZ) > (int32_t)x86emu_sext(hi, OSZ))
            x86emu_raise(cpu, X86EMU_VEC_BR);
        break;
    }
    case 0x63: { /* ARPL r/m16, r16: protected mode only */
        uint32_t lin = 0;

        if (!x86emu_protected(cpu))
            x86emu_undefined(cpu);
        decode_modrm(cpu, &in);
        w = reg_read(cpu, modrm_reg(&in), 16);
        if (modrm_is_reg(&in)) {
            v = reg_read(cpu, in.modrm & 7, 16);
        } else {
            lin = rmw_lin(cpu, &in, 2);
            v = lin_read(cpu, lin, 2);
        }
        if ((v & 3) < (w & 3)) {
            v = (v & ~3u) | (w & 3);
            if (modrm_is_reg(&in))
                reg_write(cpu, in.modrm & 7, 16, v);
            else
                lin_write(cpu, lin, v, 2);
            lf_from_flags(cpu, flags_read(cpu) | X86EMU_FLAG_ZF);
        } else {
            lf_from_flags(cpu, flags_read(cpu) & ~X86EMU_FLAG_ZF);
        }
        break;
    }

    case 0x68:
        push(cpu, fetch_imm(cpu, &in, OSZ), OSZ / 8);
        break;
    case 0x6a:
        push(cpu, (uint32_t)(int32_t)(int8_t)fetch8(cpu, &in), OSZ / 8);
        break;
    case 0x69:
    case 0x6b:
        decode_modrm(cpu, &in);
        v = rm_read(cpu, &in, OSZ);
        w = op == 0x69 ? fetch_imm(cpu, &in, OSZ)
                       : (uint32_t)(int32_t)(int8_t)fetch8(cpu, &in);
        reg_write(cpu, modrm_reg(&in), OSZ,
                  x86emu_imul_trunc(cpu, v, w, OSZ));
        break;

    case 0x6c: string_insn(cpu, in, STR_INS, 1); return;
    case 0x6d: string_insn(cpu, in, STR_INS, OSZ / 8); return;
    case 0x6e: string_insn(cpu, in, STR_OUTS, 1); return;
    case 0x6f: string_insn(cpu, in, STR_OUTS, OSZ / 8); return;

    JCC_CASE(0x0) JCC_CASE(0x1) JCC_CASE(0x2) JCC_CASE(0x3)
    JCC_CASE(0x4) JCC_CASE(0x5) JCC_CASE(0x6) JCC_CASE(0x7)
    JCC_CASE(0x8) JCC_CASE(0x9) JCC_CASE(0xa) JCC_CASE(0xb)
    JCC_CASE(0xc) JCC_CASE(0xd) JCC_CASE(0xe) JCC_CASE(0xf)

    case 0x80:
    case 0x82: /* alias of 0x80 */
        decode_modrm(cpu, &in);
        v = fetch8(cpu, &in);
        alu_rm_value(cpu, &in, modrm_reg(&in), v, 8);
        break;
    case 0x81:
        decode_modrm(cpu, &in);
        v = fetch_imm(cpu, &in, OSZ);
        alu_rm_value(cpu, &in, modrm_reg(&in), v, OSZ);
        break;
    case 0x83:
        decode_modrm(cpu, &in);
        v = (uint32_t)(int32_t)(int8_t)fetch8(cpu, &in);
        BY_OSZ(alu_rm_value(cpu, &in, modrm_reg(&in),
                            v & x86emu_size_mask(BITS), BITS));
        break;

    case 0x84:
    case 0x85:
        bits = op & 1 ? OSZ : 8;
        decode_modrm(cpu, &in);
        alu(cpu, ALU_AND, rm_read(cpu, &in, bits),
            reg_read(cpu, modrm_reg(&in), bits), bits);
        break;
    case 0x86:
    case 0x87:
        bits = op & 1 ? OSZ : 8;
        decode_modrm(cpu, &in);
        if (modrm_is_reg(&in)) {
            v = reg_read(cpu, in.modrm & 7, bits);
            reg_write(cpu, in.modrm & 7, bits,
                      reg_read(cpu, modrm_reg(&in), bits));
        } else {
            uint32_t l = rmw_lin(cpu, &in, bits / 8);

            v = lin_read(cpu, l, bits / 8);
            lin_write(cpu, l, reg_read(cpu, modrm_reg(&in), bits), bits / 8);
        }
        reg_write(cpu, modrm_reg(&in), bits, v);
        break;

    case 0x88:
        decode_modrm(cpu, &in);
        rm_write(cpu, &in, 8, reg_read(cpu, modrm_reg(&in), 8));
        break;
    case 0x89:
        decode_modrm(cpu, &in);
        BY_OSZ(rm_write(cpu, &in, BITS, reg_read(cpu, modrm_reg(&in), BITS)));
        break;
    case 0x8a:
        decode_modrm(cpu, &in);
        reg_write(cpu, modrm_reg(&in), 8, rm_read(cpu, &in, 8));
        break;
    case 0x8b:
        decode_modrm(cpu, &in);
        BY_OSZ(reg_write(cpu, modrm_reg(&in), BITS, rm_read(cpu, &in, BITS)));
        break;
    case 0x8c: { /* MOV r/m16, Sreg */
        unsigned sreg;

        decode_modrm(cpu, &in);
        sreg = modrm_reg(&in);
        if (sreg >= (x86emu_is_286(cpu) ? 4u : 6u))
            x86emu_undefined(cpu);
        v = cpu->seg[sreg].selector;
        if (modrm_is_reg(&in))
            reg_write(cpu, in.modrm & 7, OSZ, v);
        else
            mem_write(cpu, in.ea_seg, in.ea, v, 2);
        break;
    }
    case 0x8d: /* LEA */
        decode_modrm(cpu, &in);
        if (modrm_is_reg(&in))
            x86emu_undefined(cpu);
        reg_write(cpu, modrm_reg(&in), OSZ, in.ea);
        break;
    case 0x8e: { /* MOV Sreg, r/m16; CS cannot be loaded this way */
        unsigned sreg;

        decode_modrm(cpu, &in);
        sreg = modrm_reg(&in);
        if (sreg == X86EMU_SEG_CS || sreg >= (x86emu_is_286(cpu) ? 4u : 6u))
            x86emu_undefined(cpu);
        v = rm_read(cpu, &in, 16);
        x86emu_load_sreg(cpu, sreg, (uint16_t)v);
        if (sreg == X86EMU_SEG_SS)
            cpu->priv.events |= X86EMU_EV_SHADOW;
        break;
    }
    case 0x8f: { /* POP r/m */
        unsigned size = OSZ / 8;
        uint32_t sp;

        decode_modrm(cpu, &in);
        if (modrm_reg(&in) != 0)
            x86emu_undefined(cpu);
        sp = stack_ptr(cpu);
        v = stack_read_at(cpu, sp, size);
        if (modrm_is_reg(&in)) {
            stack_set(cpu, sp + size);
            reg_write(cpu, in.modrm & 7, OSZ, v);
        } else {
            /* An ESP-based address is computed after the increment. */
            if (in.a32 && in.ea_uses_esp)
                in.ea += size;
            mem_write(cpu, in.ea_seg, in.ea, v, size);
            stack_set(cpu, sp + size);
        }
        break;
    }

    case 0x90: /* NOP (XCHG eAX, eAX; F3 90 is PAUSE) */
        break;
    case 0x91 ... 0x97:
        v = reg_read(cpu, op & 7, OSZ);
        reg_write(cpu, op & 7, OSZ, reg_read(cpu, X86EMU_EAX, OSZ));
        reg_write(cpu, X86EMU_EAX, OSZ, v);
        break;
    case 0x98: /* CBW / CWDE */
        if (in.o32)
            cpu->gpr[X86EMU_EAX] = x86emu_sext(cpu->gpr[X86EMU_EAX], 16);
        else
            reg_write(cpu, X86EMU_EAX, 16,
                      x86emu_sext(cpu->gpr[X86EMU_EAX] & 0xff, 8));
        break;
    case 0x99: /* CWD / CDQ */
        if (in.o32)
            cpu->gpr[X86EMU_EDX] = (cpu->gpr[X86EMU_EAX] >> 31) ? ~0u : 0;
        else
            reg_write(cpu, X86EMU_EDX, 16,
                      (cpu->gpr[X86EMU_EAX] & 0x8000) ? 0xffff : 0);
        break;
    case 0x9a: { /* CALL ptr16:16/32 */
        uint32_t off = fetch_imm(cpu, &in, OSZ);
        uint16_t sel = (uint16_t)fetch16(cpu, &in);

        far_call(cpu, in, sel, off);
        return;
    }
    case 0x9b: /* WAIT: no coprocessor, so nothing to wait for */
        if ((cpu->cr0 & (X86EMU_CR0_MP | X86EMU_CR0_TS)) ==
            (X86EMU_CR0_MP | X86EMU_CR0_TS))
            x86emu_raise(cpu, X86EMU_VEC_NM);
        break;
    case 0x9c: /* PUSHF: VM and RF are never pushed */
        push(cpu, flags_read(cpu) & 0x00fcffffu, OSZ / 8);
        break;
    case 0x9d:
        v = stack_read_at(cpu, stack_ptr(cpu), OSZ / 8);
        stack_set(cpu, stack_ptr(cpu) + OSZ / 8);
        x86emu_write_eflags(cpu, v, (in.o32 ? 0xffffffffu : 0xffff) &
                                        x86emu_eflags_priv_mask(cpu));
        break;
    case 0x9e: /* SAHF */
        lf_from_flags(cpu, (flags_read(cpu) & ~0xd5u) |
                               ((cpu->gpr[X86EMU_EAX] >> 8) & 0xd5));
        break;
    case 0x9f: /* LAHF */
        reg_write(cpu, 4, 8, flags_read(cpu) & 0xff);
        break;

    case 0xa0 ... 0xa3: { /* MOV AL/eAX <-> moffs */
        uint32_t off = in.a32 ? fetch32(cpu, &in) : fetch16(cpu, &in);
        unsigned seg = insn_seg(&in, X86EMU_SEG_DS);

        bits = op & 1 ? OSZ : 8;
        if (op < 0xa2)
            reg_write(cpu, X86EMU_EAX, bits, mem_read(cpu, seg, off, bits / 8));
        else
            mem_write(cpu, seg, off, reg_read(cpu, X86EMU_EAX, bits),
                      bits / 8);
        break;
    }
    case 0xa4: string_insn(cpu, in, STR_MOVS, 1); return;
    case 0xa5: string_insn(cpu, in, STR_MOVS, OSZ / 8); return;
    case 0xa6: string_insn(cpu, in, STR_CMPS, 1); return;
    case 0xa7: string_insn(cpu, in, STR_CMPS, OSZ / 8); return;
    case 0xa8:
        alu(cpu, ALU_AND, cpu->gpr[X86EMU_EAX] & 0xff, fetch8(cpu, &in), 8);
        break;
    case 0xa9:
        w = fetch_imm(cpu, &in, OSZ);
        alu(cpu, ALU_AND, reg_read(cpu, X86EMU_EAX, OSZ), w, OSZ);
        break;
    case 0xaa: string_insn(cpu, in, STR_STOS, 1); return;
    case 0xab: string_insn(cpu, in, STR_STOS, OSZ / 8); return;
    case 0xac: string_insn(cpu, in, STR_LODS, 1); return;
    case 0xad: string_insn(cpu, in, STR_LODS, OSZ / 8); return;
    case 0xae: string_insn(cpu, in, STR_SCAS, 1); return;
    case 0xaf: string_insn(cpu, in, STR_SCAS, OSZ / 8); return;

    REG_CASES(0xb0, reg_write(cpu, R, 8, fetch8(cpu, &in)))
    REG_CASES(0xb8, BY_OSZ(reg_write(cpu, R, BITS, fetch_imm(cpu, &in, BITS))))

    case 0xc0:
    case 0xc1:
        bits = op & 1 ? OSZ : 8;
        decode_modrm(cpu, &in);
        v = fetch8(cpu, &in);
        shift_rm(cpu, in, v, bits);
        break;
    case 0xd0:
    case 0xd1:
        bits = op & 1 ? OSZ : 8;
        decode_modrm(cpu, &in);
        shift_rm(cpu, in, 1, bits);
        break;
    case 0xd2:
    case 0xd3:
        bits = op & 1 ? OSZ : 8;
        decode_modrm(cpu, &in);
        shift_rm(cpu, in, cpu->gpr[X86EMU_ECX] & 0xff, bits);
        break;

    case 0xc2:
    case 0xc3: { /* RET near */
        uint32_t release = op == 0xc2 ? fetch16(cpu, &in) : 0;
        uint32_t sp = stack_ptr(cpu);

        v = stack_read_at(cpu, sp, OSZ / 8);
        jump_to(cpu, v);
        stack_set(cpu, sp + OSZ / 8 + release);
        return;
    }
    case 0xc4:
    case 0xc5:
        decode_modrm(cpu, &in);
        x86emu_load_far_pointer(cpu, in,
                                op == 0xc4 ? X86EMU_SEG_ES : X86EMU_SEG_DS);
        break;
    case 0xc6:
    case 0xc7:
        bits = op & 1 ? OSZ : 8;
        decode_modrm(cpu, &in);
        if (modrm_reg(&in) != 0)
            x86emu_undefined(cpu);
        rm_write(cpu, &in, bits, fetch_imm(cpu, &in, bits));
        break;
    case 0xc8: { /* ENTER */
        unsigned size = OSZ / 8, level;
        uint32_t alloc = fetch16(cpu, &in), sp, frame, bp;

        level = fetch8(cpu, &in) & 31;
        sp = stack_push_at(cpu, stack_ptr(cpu),
                           reg_read(cpu, X86EMU_EBP, OSZ), size);
        frame = sp;
        bp = cpu->gpr[X86EMU_EBP];
        if (level) {
            for (unsigned i = 1; i < level; i++) {
                bp = stack_wrap(cpu, bp - size);
                sp = stack_push_at(cpu, sp, stack_read_at(cpu, bp, size),
                                   size);
            }
            sp = stack_push_at(cpu, sp, frame, size);
        }
        sp = stack_wrap(cpu, sp - alloc);
        /* The new stack top must be writable (286/386 check it). */
        seg_lin(cpu, X86EMU_SEG_SS, sp, 1, true);
        reg_write(cpu, X86EMU_EBP, OSZ, frame);
        stack_set(cpu, sp);
        break;
    }
    case 0xc9: { /* LEAVE */
        uint32_t sp = stack_wrap(cpu, cpu->gpr[X86EMU_EBP]);

        v = stack_read_at(cpu, sp, OSZ / 8);
        stack_set(cpu, sp + OSZ / 8);
        reg_write(cpu, X86EMU_EBP, OSZ, v);
        break;
    }
    case 0xca:
        far_return(cpu, in, fetch16(cpu, &in));
        return;
    case 0xcb:
        far_return(cpu, in, 0);
        return;
    case 0xcc:
        x86emu_interrupt(cpu, X86EMU_VEC_BP, insn_next_eip(cpu, &in),
                         X86EMU_INT_SOFT, 0);
        return;
    case 0xcd:
        v = fetch8(cpu, &in);
        x86emu_interrupt(cpu, v, insn_next_eip(cpu, &in), X86EMU_INT_SOFT, 0);
        return;
    case 0xce:
        if (get_of(cpu)) {
            x86emu_interrupt(cpu, X86EMU_VEC_OF, insn_next_eip(cpu, &in),
                             X86EMU_INT_SOFT, 0);
            return;
        }
        break;
    case 0xcf:
        iret(cpu, in);
        return;

    case 0xd4: { /* AAM */
        uint32_t base = fetch8(cpu, &in), al = cpu->gpr[X86EMU_EAX] & 0xff;

        if (!base)
            x86emu_raise(cpu, X86EMU_VEC_DE);
        reg_write(cpu, X86EMU_EAX, 16, (al / base) << 8 | (al % base));
        lf_logic(cpu, al % base, 8);
        break;
    }
    case 0xd5: { /* AAD: flags as the 8-bit addition it performs */
        uint32_t base = fetch8(cpu, &in), ax = cpu->gpr[X86EMU_EAX];
        uint32_t a = ax & 0xff, b = (((ax >> 8) & 0xff) * base) & 0xff;
        uint32_t r = (a + b) & 0xff;

        reg_write(cpu, X86EMU_EAX, 16, r);
        lf_arith(cpu, r, (a & b) | ((a | b) & ~r), 8);
        break;
    }
    case 0xd6: /* SALC (undocumented) */
        reg_write(cpu, X86EMU_EAX, 8, get_cf(cpu) ? 0xff : 0);
        break;
    case 0xd7: { /* XLAT */
        uint32_t off = cpu->gpr[X86EMU_EBX] + (cpu->gpr[X86EMU_EAX] & 0xff);

        if (!in.a32)
            off &= 0xffff;
        reg_write(cpu, X86EMU_EAX, 8,
                  mem_read(cpu, insn_seg(&in, X86EMU_SEG_DS), off, 1));
        break;
    }
    case 0xd8 ... 0xdf:
        escape(cpu, in);
        return;

    case 0xe0:
    case 0xe1:
    case 0xe2:
    case 0xe3: { /* LOOPNZ LOOPZ LOOP JCXZ */
        uint32_t rel = (uint32_t)(int32_t)(int8_t)fetch8(cpu, &in);
        uint32_t next = insn_next_eip(cpu, &in);
        uint32_t cmask = in.a32 ? 0xffffffffu : 0xffff;
        uint32_t cx = cpu->gpr[X86EMU_ECX] & cmask;
        bool take;

        if (op == 0xe3) {
            take = cx == 0;
        } else {
            cx = (cx - 1) & cmask;
            take = cx != 0;
            if (op == 0xe0)
                take = take && !get_zf(cpu);
            else if (op == 0xe1)
                take = take && get_zf(cpu);
        }
        if (take)
            jump_to(cpu, (next + rel) & ip_mask(&in));
        if (op != 0xe3)
            cpu->gpr[X86EMU_ECX] = (cpu->gpr[X86EMU_ECX] & ~cmask) | cx;
        if (!take)
            cpu->eip = next;
        return;
    }
    case 0xe4:
    case 0xe5:
    case 0xec:
    case 0xed: { /* IN */
        uint16_t port = op < 0xe8 ? fetch8(cpu, &in)
                                  : (uint16_t)cpu->gpr[X86EMU_EDX];

        bits = op & 1 ? OSZ : 8;
        x86emu_check_io(cpu, port, bits / 8);
        v = cpu->priv.ops->io_in(cpu->priv.opaque, port, bits / 8);
        reg_write(cpu, X86EMU_EAX, bits, v);
        break;
    }
    case 0xe6:
    case 0xe7:
    case 0xee:
    case 0xef: { /* OUT */
        uint16_t port = op < 0xe8 ? fetch8(cpu, &in)
                                  : (uint16_t)cpu->gpr[X86EMU_EDX];

        bits = op & 1 ? OSZ : 8;
        x86emu_check_io(cpu, port, bits / 8);
        /* The port write may stop the CPU or raise an interrupt: the
         * instruction is complete before the machine sees it. */
        cpu->eip = insn_next_eip(cpu, &in);
        cpu->priv.ops->io_out(cpu->priv.opaque, port,
                              reg_read(cpu, X86EMU_EAX, bits), bits / 8);
        return;
    }
    case 0xe8: { /* CALL rel */
        uint32_t rel = fetch_imm(cpu, &in, OSZ);
        uint32_t next = insn_next_eip(cpu, &in);
        uint32_t target = (next + rel) & ip_mask(&in);
        uint32_t sp;

        if (target > cpu->seg[X86EMU_SEG_CS].limit)
            x86emu_raise(cpu, X86EMU_VEC_GP);
        sp = stack_push_at(cpu, stack_ptr(cpu), next, OSZ / 8);
        stack_set(cpu, sp);
        cpu->eip = target;
        return;
    }
    case 0xe9:
    case 0xeb: { /* JMP rel */
        uint32_t rel = op == 0xeb ? (uint32_t)(int32_t)(int8_t)fetch8(cpu, &in)
                                  : fetch_imm(cpu, &in, OSZ);

        jump_to(cpu, (insn_next_eip(cpu, &in) + rel) & ip_mask(&in));
        return;
    }
    case 0xea: { /* JMP ptr16:16/32 */
        uint32_t off = fetch_imm(cpu, &in, OSZ);
        uint16_t sel = (uint16_t)fetch16(cpu, &in);

        far_jump(cpu, sel, off, in.o32);
        return;
    }

    case 0xf4: /* HLT */
        x86emu_require_cpl0(cpu);
        cpu->eip = insn_next_eip(cpu, &in);
        cpu->priv.halted = true;
        cpu->priv.events |= X86EMU_EV_HALT;
        if (cpu->priv.ops->halt)
            cpu->priv.ops->halt(cpu->priv.opaque);
        return;
    case 0xf5: /* CMC */
        lf_set_cf(cpu, !get_cf(cpu));
        break;
    case 0xf6:
    case 0xf7:
        decode_modrm(cpu, &in);
        group3(cpu, in, op & 1 ? OSZ : 8);
        return;
    case 0xf8: /* CLC */
    case 0xf9: /* STC */
        lf_set_cf(cpu, op & 1);
        break;
    case 0xfa: /* CLI */
        if (!(x86emu_eflags_priv_mask(cpu) & X86EMU_FLAG_IF))
            x86emu_raise(cpu, X86EMU_VEC_GP); /* CPL > IOPL */
        cpu->priv.eflags &= ~X86EMU_FLAG_IF;
        x86emu_sync_intr(cpu);
        break;
    case 0xfb: /* STI: interrupts wait one more instruction */
        if (!(x86emu_eflags_priv_mask(cpu) & X86EMU_FLAG_IF))
            x86emu_raise(cpu, X86EMU_VEC_GP);
        if (!(cpu->priv.eflags & X86EMU_FLAG_IF))
            cpu->priv.events |= X86EMU_EV_SHADOW;
        cpu->priv.eflags |= X86EMU_FLAG_IF;
        x86emu_sync_intr(cpu);
        break;
    case 0xfc: /* CLD */
        cpu->priv.eflags &= ~X86EMU_FLAG_DF;
        break;
    case 0xfd: /* STD */
        cpu->priv.eflags |= X86EMU_FLAG_DF;
        break;
    case 0xfe: /* INC/DEC r/m8 */
        decode_modrm(cpu, &in);
        if (modrm_reg(&in) > 1)
            x86emu_undefined(cpu);
        if (modrm_is_reg(&in)) {
            v = reg_read(cpu, in.modrm & 7, 8);
            reg_write(cpu, in.modrm & 7, 8,
                      alu_incdec(cpu, v, modrm_reg(&in), 8));
        } else {
            uint32_t l = rmw_lin(cpu, &in, 1);

            v = lin_read(cpu, l, 1);
            lin_write(cpu, l, alu_incdec(cpu, v, modrm_reg(&in), 8), 1);
        }
        break;
    case 0xff: { /* group 5 */
        unsigned reg;

        decode_modrm(cpu, &in);
        reg = modrm_reg(&in);
        switch (reg) {
        case 0:
        case 1:
            if (modrm_is_reg(&in)) {
                v = reg_read(cpu, in.modrm & 7, OSZ);
                reg_write(cpu, in.modrm & 7, OSZ,
                          alu_incdec(cpu, v, reg, OSZ));
            } else {
                uint32_t l = rmw_lin(cpu, &in, OSZ / 8);

                v = lin_read(cpu, l, OSZ / 8);
                lin_write(cpu, l, alu_incdec(cpu, v, reg, OSZ), OSZ / 8);
            }
            break;
        case 2: { /* CALL r/m */
            uint32_t target = rm_read(cpu, &in, OSZ), sp;

            if (target > cpu->seg[X86EMU_SEG_CS].limit)
                x86emu_raise(cpu, X86EMU_VEC_GP);
            sp = stack_push_at(cpu, stack_ptr(cpu),
                               insn_next_eip(cpu, &in), OSZ / 8);
            stack_set(cpu, sp);
            cpu->eip = target;
            return;
        }
        case 3:
        case 5: { /* CALL/JMP m16:16/32 */
            unsigned size = OSZ / 8;
            uint32_t off;
            uint16_t sel;

            if (modrm_is_reg(&in))
                x86emu_undefined(cpu);
            off = mem_read(cpu, in.ea_seg, in.ea, size);
            sel = (uint16_t)mem_read(cpu, in.ea_seg,
                                     (in.ea + size) &
                                         (in.a32 ? ~0u : 0xffff), 2);
            if (reg == 3)
                far_call(cpu, in, sel, off);
            else
                far_jump(cpu, sel, off, in.o32);
            return;
        }
        case 4: /* JMP r/m */
            jump_to(cpu, rm_read(cpu, &in, OSZ));
            return;
        case 6: /* PUSH r/m */
            push(cpu, rm_read(cpu, &in, OSZ), OSZ / 8);
            break;
        default:
            x86emu_undefined(cpu);
        }
        break;
    }
    default:
        x86emu_undefined(cpu);
    }
    cpu->eip = insn_next_eip(cpu, &in);
}

enum x86emu_stop x86emu_exec_loop(struct x86emu *cpu)
{
    if (!cpu->priv.budget)
        return X86EMU_STOP_BUDGET;
    for (;;) {
        /* NMI_BLOCKED only qualifies EV_NMI: nothing to do for it alone. */
        if (X86EMU_UNLIKELY(cpu->priv.events & ~X86EMU_EV_NMI_BLOCKED)) {
            int stop = x86emu_service_events(cpu);

            if (stop >= 0)
                return (enum x86emu_stop)stop;
        }
        /* Counted before it runs, so a faulting instruction counts too. */
        cpu->priv.budget--;
        exec_one(cpu);
        if (X86EMU_UNLIKELY(!cpu->priv.budget)) {
            /* A HLT or stop request in the last instruction is reported
             * as such, not as an exhausted budget. */
            int stop = x86emu_pending_stop(cpu);

            return stop >= 0 ? (enum x86emu_stop)stop : X86EMU_STOP_BUDGET;
        }
    }
}
