/* x86emu: the two-byte (0F xx) opcode map, as far as real mode goes.
 * The 286 has only 0F 00-06 here; everything else is a 386 instruction. */
#include "x86emu_priv.h"

static inline uint32_t ip_mask(const struct x86emu_insn *in)
{
    return in->o32 ? 0xffffffffu : 0xffff;
}

static bool real_mode(const struct x86emu *cpu)
{
    return !(cpu->cr0 & X86EMU_CR0_PE);
}

/* 0F 01: descriptor-table registers and the machine status word. */
static void group7(struct x86emu *cpu, struct x86emu_insn *in)
{
    unsigned reg = modrm_reg(in);
    struct x86emu_dtr *dtr = (reg & 1) ? &cpu->idtr : &cpu->gdtr;
    uint32_t base, limit, off2;

    switch (reg) {
    case 0: /* SGDT */
    case 1: /* SIDT */
        if (modrm_is_reg(in))
            x86emu_undefined(cpu);
        off2 = (in->ea + 2) & (in->a32 ? ~0u : 0xffff);
        /* Checked before the first write so a fault leaves memory alone. */
        seg_lin(cpu, in->ea_seg, in->ea, 2, true);
        seg_lin(cpu, in->ea_seg, off2, 4, true);
        base = dtr->base;
        if (x86emu_is_286(cpu))
            base = (base & 0x00ffffffu) | 0xff000000u; /* 286: 6th byte FF */
        else if (!in->o32)
            base &= 0x00ffffffu;
        mem_write(cpu, in->ea_seg, in->ea, dtr->limit, 2);
        mem_write(cpu, in->ea_seg, off2, base, 4);
        break;
    case 2: /* LGDT */
    case 3: /* LIDT */
        if (modrm_is_reg(in))
            x86emu_undefined(cpu);
        x86emu_require_cpl0(cpu);
        limit = mem_read(cpu, in->ea_seg, in->ea, 2);
        base = mem_read(cpu, in->ea_seg,
                        (in->ea + 2) & (in->a32 ? ~0u : 0xffff), 4);
        if (!in->o32)
            base &= 0x00ffffffu;
        dtr->base = base;
        dtr->limit = (uint16_t)limit;
        break;
    case 4: /* SMSW */
        if (modrm_is_reg(in))
            reg_write(cpu, in->modrm & 7, in->o32 ? 32 : 16, cpu->cr0);
        else
            mem_write(cpu, in->ea_seg, in->ea, cpu->cr0 & 0xffff, 2);
        break;
    case 6: { /* LMSW: PE, MP, EM, TS; PE cannot be cleared this way */
        uint32_t msw;

        x86emu_require_cpl0(cpu);
        msw = rm_read(cpu, in, 16);

        x86emu_write_cr0(cpu, (cpu->cr0 & ~0xfu) | (msw & 0xf) |
                                  (cpu->cr0 & X86EMU_CR0_PE));
        break;
    }
    case 7: /* INVLPG m (486) */
        if (x86emu_is_286(cpu) || modrm_is_reg(in))
            x86emu_undefined(cpu);
        x86emu_require_cpl0(cpu);
        /* The segment is not checked: INVLPG cannot fault on its operand. */
        x86emu_invlpg(cpu, cpu->seg[in->ea_seg].base + in->ea);
        break;
    default:
        x86emu_undefined(cpu);
    }
}

/* BT, BTS, BTR, BTC (op 0-3). CF is the selected bit; the other
 * arithmetic flags are undefined and left as they were. */
static void bit_op(struct x86emu *cpu, struct x86emu_insn *in, unsigned op,
                   uint32_t offset, bool offset_is_reg, unsigned bits)
{
    uint32_t mask, v, r;
    unsigned bit;

    if (modrm_is_reg(in)) {
        bit = offset & (bits - 1);
        v = reg_read(cpu, in->modrm & 7, bits);
    } else {
        uint32_t ea = in->ea;

        if (offset_is_reg) {
            /* A register offset addresses beyond the operand: signed,
             * in units of the operand size. */
            int32_t s = (int32_t)x86emu_sext(offset, bits);

            ea += (uint32_t)((s >> (bits == 32 ? 5 : 4)) * (int32_t)(bits / 8));
            if (!in->a32)
                ea &= 0xffff;
        }
        in->ea = ea;
        bit = offset & (bits - 1);
        v = op ? lin_read(cpu, seg_lin(cpu, in->ea_seg, ea, bits / 8, true),
                          bits / 8)
               : mem_read(cpu, in->ea_seg, ea, bits / 8);
    }
    mask = 1u << bit;
    switch (op) {
    case 1: r = v | mask; break;
    case 2: r = v & ~mask; break;
    case 3: r = v ^ mask; break;
    default: r = v; break;
    }
    if (op)
        rm_write(cpu, in, bits, r);
    lf_set_cf(cpu, !!(v & mask));
}

/* SHLD / SHRD. Counts above the operand size (16-bit forms) shift through
 * the source again, as the 386 does. */
static void double_shift(struct x86emu *cpu, struct x86emu_insn *in,
                         bool left, unsigned count, unsigned bits)
{
    uint32_t dest, src = reg_read(cpu, modrm_reg(in), bits), r, lin = 0;
    uint32_t msb = 1u << (bits - 1);
    unsigned cf, of;
    uint64_t x;

    count &= 31;
    if (modrm_is_reg(in)) {
        dest = reg_read(cpu, in->modrm & 7, bits);
    } else {
        lin = seg_lin(cpu, in->ea_seg, in->ea, bits / 8, true);
        dest = lin_read(cpu, lin, bits / 8);
    }
    if (!count)
        return;
    if (bits == 16) {
        /* dest:src:dest as a 48-bit value. */
        x = (uint64_t)dest << 32 | (uint64_t)src << 16 | dest;
        if (left) {
            r = (uint32_t)(x >> (32 - count)) & 0xffff;
            cf = (unsigned)(x >> (48 - count)) & 1;
        } else {
            r = (uint32_t)(x >> count) & 0xffff;
            cf = (unsigned)(x >> (count - 1)) & 1;
        }
    } else if (left) {
        x = (uint64_t)dest << 32 | src;
        r = (uint32_t)(x << count >> 32);
        cf = (unsigned)(x >> (64 - count)) & 1;
    } else {
        x = (uint64_t)src << 32 | dest;
        r = (uint32_t)(x >> count);
        cf = (unsigned)(x >> (count - 1)) & 1;
    }
    of = !!((r ^ dest) & msb);
    if (modrm_is_reg(in))
        reg_write(cpu, in->modrm & 7, bits, r);
    else
        lin_write(cpu, lin, r, bits / 8);
    lf_explicit(cpu, r, bits, cf, of, 0);
}

void x86emu_exec_0f(struct x86emu *cpu, struct x86emu_insn in_copy)
{
    struct x86emu_insn *in = &in_copy;
    uint8_t op = fetch8(cpu, in);
    unsigned osz = in->o32 ? 32 : 16;
    uint32_t v, w;

    if (x86emu_is_286(cpu) && op > 0x06)
        x86emu_undefined(cpu);

    switch (op) {
    case 0x00: /* SLDT STR LLDT LTR VERR VERW: protected mode only */
        decode_modrm(cpu, in);
        if (real_mode(cpu) || x86emu_is_286(cpu))
            x86emu_undefined(cpu);
        x86emu_group6(cpu, in);
        break;
    case 0x02: /* LAR */
    case 0x03: /* LSL */
        decode_modrm(cpu, in);
        if (real_mode(cpu) || x86emu_is_286(cpu))
            x86emu_undefined(cpu);
        x86emu_lar_lsl(cpu, in, op == 0x03);
        break;
    case 0x01:
        decode_modrm(cpu, in);
        group7(cpu, in);
        break;
    case 0x06: /* CLTS */
        x86emu_require_cpl0(cpu);
        x86emu_write_cr0(cpu, cpu->cr0 & ~X86EMU_CR0_TS);
        break;
    case 0x08: /* INVD (486): no cache to invalidate */
    case 0x09: /* WBINVD (486) */
        x86emu_require_cpl0(cpu);
        break;

    case 0x20: /* MOV r32, CRn */
    case 0x22: { /* MOV CRn, r32 */
        unsigned cr, rm;

        decode_modrm(cpu, in);
        cr = modrm_reg(in);
        rm = in->modrm & 7;
        if (cr != 0 && cr != 2 && cr != 3 && cr != 4)
            x86emu_undefined(cpu);
        x86emu_require_cpl0(cpu);
        if (op == 0x20) {
            cpu->gpr[rm] = cr == 0   ? cpu->cr0
                           : cr == 2 ? cpu->cr2
                           : cr == 3 ? cpu->cr3
                                     : cpu->cr4;
        } else if (cr == 0) {
            x86emu_write_cr0(cpu, cpu->gpr[rm]);
        } else if (cr == 2) {
            cpu->cr2 = cpu->gpr[rm];
        } else if (cr == 3) {
            /* Every cached translation goes (there are no global pages). */
            cpu->cr3 = cpu->gpr[rm] & 0xfffff018u;
            x86emu_flush_tlb(cpu);
        } else {
            x86emu_write_cr4(cpu, cpu->gpr[rm]);
        }
        break;
    }
    case 0x21: /* MOV r32, DRn */
    case 0x23: { /* MOV DRn, r32 */
        unsigned dr, rm;

        decode_modrm(cpu, in);
        dr = modrm_reg(in);
        rm = in->modrm & 7;
        x86emu_require_cpl0(cpu);
        if (dr == 4 || dr == 5)
            dr += 2; /* aliases of DR6 and DR7 */
        if (op == 0x21)
            cpu->gpr[rm] = cpu->dr[dr];
        else
            cpu->dr[dr] = cpu->gpr[rm];
        break;
    }

    case 0x80 ... 0x8f: { /* Jcc rel16/32 */
        uint32_t rel = fetch_imm(cpu, in, osz);
        uint32_t next = insn_next_eip(cpu, in);

        if (x86emu_cond(cpu, op & 15))
            jump_to(cpu, (next + rel) & ip_mask(in));
        else
            cpu->eip = next;
        return;
    }
    case 0x90 ... 0x9f: /* SETcc */
        decode_modrm(cpu, in);
        rm_write(cpu, in, 8, x86emu_cond(cpu, op & 15));
        break;

    case 0xa0: /* PUSH FS */
    case 0xa8: /* PUSH GS */
        push(cpu, cpu->seg[op == 0xa0 ? X86EMU_SEG_FS : X86EMU_SEG_GS].selector,
             osz / 8);
        break;
    case 0xa1: /* POP FS */
    case 0xa9: /* POP GS */
        v = stack_read_at(cpu, stack_ptr(cpu), osz / 8);
        x86emu_load_sreg(cpu, op == 0xa1 ? X86EMU_SEG_FS : X86EMU_SEG_GS,
                         (uint16_t)v);
        stack_set(cpu, stack_ptr(cpu) + osz / 8);
        break;

    case 0xa2: /* CPUID (486) */
        x86emu_cpuid(cpu);
        break;

    case 0xa3: /* BT */
    case 0xab: /* BTS */
    case 0xb3: /* BTR */
    case 0xbb: /* BTC */
        decode_modrm(cpu, in);
        bit_op(cpu, in, (op >> 3) & 3, reg_read(cpu, modrm_reg(in), osz), true,
               osz);
        break;
    case 0xba: /* BT* r/m, imm8 */
        decode_modrm(cpu, in);
        if (modrm_reg(in) < 4)
            x86emu_undefined(cpu);
        v = fetch8(cpu, in);
        bit_op(cpu, in, modrm_reg(in) & 3, v, false, osz);
        break;

    case 0xa4: /* SHLD imm8 */
    case 0xac: /* SHRD imm8 */
        decode_modrm(cpu, in);
        v = fetch8(cpu, in);
        double_shift(cpu, in, op == 0xa4, v, osz);
        break;
    case 0xa5: /* SHLD CL */
    case 0xad: /* SHRD CL */
        decode_modrm(cpu, in);
        double_shift(cpu, in, op == 0xa5, cpu->gpr[X86EMU_ECX] & 0xff, osz);
        break;

    case 0xaf: /* IMUL r, r/m */
        decode_modrm(cpu, in);
        v = rm_read(cpu, in, osz);
        w = reg_read(cpu, modrm_reg(in), osz);
        reg_write(cpu, modrm_reg(in), osz, x86emu_imul_trunc(cpu, w, v, osz));
        break;

    case 0xb2: /* LSS */
    case 0xb4: /* LFS */
    case 0xb5: /* LGS */
        decode_modrm(cpu, in);
        x86emu_load_far_pointer(cpu, *in,
                                op == 0xb2   ? X86EMU_SEG_SS
                                : op == 0xb4 ? X86EMU_SEG_FS
                                             : X86EMU_SEG_GS);
        break;

    case 0xb6: /* MOVZX r, r/m8 */
    case 0xb7: /* MOVZX r, r/m16 */
        decode_modrm(cpu, in);
        v = rm_read(cpu, in, op == 0xb6 ? 8 : 16);
        reg_write(cpu, modrm_reg(in), osz, v);
        break;
    case 0xbe: /* MOVSX r, r/m8 */
    case 0xbf: /* MOVSX r, r/m16 */
        decode_modrm(cpu, in);
        v = rm_read(cpu, in, op == 0xbe ? 8 : 16);
        reg_write(cpu, modrm_reg(in), osz, x86emu_sext(v, op == 0xbe ? 8 : 16));
        break;

    case 0xbc: /* BSF */
    case 0xbd: /* BSR */
        decode_modrm(cpu, in);
        v = rm_read(cpu, in, osz);
        lf_from_flags(cpu, (flags_read(cpu) & ~X86EMU_FLAG_ZF) |
                               (v ? 0 : X86EMU_FLAG_ZF));
        if (!v)
            break;
        reg_write(cpu, modrm_reg(in), osz,
                  op == 0xbc ? (uint32_t)__builtin_ctz(v)
                             : 31u - (uint32_t)__builtin_clz(v));
        break;

    case 0xb0: /* CMPXCHG r/m8, r8 (486) */
    case 0xb1: { /* CMPXCHG r/m, r */
        unsigned bits = op & 1 ? osz : 8;
        uint32_t lin = 0, acc = reg_read(cpu, X86EMU_EAX, bits);

        decode_modrm(cpu, in);
        if (modrm_is_reg(in)) {
            v = reg_read(cpu, in->modrm & 7, bits);
        } else {
            /* The destination is written whether or not it matches. */
            lin = seg_lin(cpu, in->ea_seg, in->ea, bits / 8, true);
            lin_probe_write(cpu, lin, bits / 8);
            v = lin_read(cpu, lin, bits / 8);
        }
        w = v == acc ? reg_read(cpu, modrm_reg(in), bits) : v;
        if (modrm_is_reg(in))
            reg_write(cpu, in->modrm & 7, bits, w);
        else
            lin_write(cpu, lin, w, bits / 8);
        if (v != acc)
            reg_write(cpu, X86EMU_EAX, bits, v);
        /* Flags as CMP accumulator, destination. */
        w = (acc - v) & x86emu_size_mask(bits);
        lf_arith(cpu, w, (~acc & v) | (~(acc ^ v) & w), bits);
        break;
    }
    case 0xc0: /* XADD r/m8, r8 (486) */
    case 0xc1: { /* XADD r/m, r */
        unsigned bits = op & 1 ? osz : 8;
        uint32_t lin = 0, src, sum;

        decode_modrm(cpu, in);
        src = reg_read(cpu, modrm_reg(in), bits);
        if (modrm_is_reg(in)) {
            v = reg_read(cpu, in->modrm & 7, bits);
        } else {
            lin = seg_lin(cpu, in->ea_seg, in->ea, bits / 8, true);
            lin_probe_write(cpu, lin, bits / 8);
            v = lin_read(cpu, lin, bits / 8);
        }
        sum = (v + src) & x86emu_size_mask(bits);
        /* The old destination goes to the source register first, so
         * XADD r, r with the same register leaves the sum. */
        reg_write(cpu, modrm_reg(in), bits, v);
        if (modrm_is_reg(in))
            reg_write(cpu, in->modrm & 7, bits, sum);
        else
            lin_write(cpu, lin, sum, bits / 8);
        lf_arith(cpu, sum, (v & src) | ((v | src) & ~sum), bits);
        break;
    }
    case 0xc8 ... 0xcf: /* BSWAP r32 (486; undefined with 0x66) */
        v = cpu->gpr[op & 7];
        cpu->gpr[op & 7] = in->o32 ? __builtin_bswap32(v) : v & 0xffff0000u;
        break;

    default:
        /* 0F 05 (286 LOADALL) and 0F 07 (386 LOADALL) are not
         * implemented; neither is anything after the 486. */
        x86emu_undefined(cpu);
    }
    cpu->eip = insn_next_eip(cpu, in);
}
