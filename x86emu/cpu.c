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
/* The 386 model also lets AC (bit 18) and ID (bit 21) be toggled: that is
 * how software finds a 486-class CPU with CPUID, which the model reports
 * (see x86emu_cpuid). AC has no effect: CR0.AM does not exist here. */
#define EFLAGS_WRITABLE_386 0x00247fd5u

/* Page-table entry bits (Intel SDM vol. 3 §4.3, 32-bit paging). */
#define PTE_P 0x001u
#define PTE_RW 0x002u
#define PTE_US 0x004u
#define PTE_A 0x020u
#define PTE_D 0x040u
#define PDE_PS 0x080u
/* A 4 MiB PDE's bits 13-21 must be zero without PSE-36. */
#define PDE_PS_RESERVED 0x003fe000u
/* Page-fault error code bits. */
#define PF_ERR_P 0x1u
#define PF_ERR_W 0x2u
#define PF_ERR_U 0x4u
#define PF_ERR_RSVD 0x8u

static bool in_real_mode(const struct x86emu *cpu)
{
    return !(cpu->cr0 & X86EMU_CR0_PE);
}

/* ------------------------------------------------------------------ */
/* Segments. */

/* Recomputes the fast-path bounds of a segment from its cache. In real
 * mode only the limit counts (a stale protected-mode limit gives "unreal"
 * mode); in protected mode an unusable (null or not present) segment, a
 * read of an execute-only code segment and a write to anything but a
 * writable data segment all take the careful path, which raises. */
void x86emu_seg_update(struct x86emu *cpu, unsigned sreg)
{
    const struct x86emu_segment *s = &cpu->seg[sreg];
    unsigned a = s->attr;
    bool expand_down = (a & 0x1c) == 0x14; /* data, E bit */
    uint64_t end = expand_down ? 0 : (uint64_t)s->limit + 1, wend = end;

    if (!in_real_mode(cpu)) {
        if ((a & 0x90) != 0x90) {
            end = wend = 0;
        } else if (a & 0x08) {
            wend = 0;
            if (!(a & 0x02))
                end = 0;
        } else if (!(a & 0x02)) {
            wend = 0;
        }
    }
    cpu->priv.seg_end[sreg] = end;
    cpu->priv.seg_wend[sreg] = wend;
    if (sreg == X86EMU_SEG_CS) {
        struct x86emu_insn in;
        bool d32 = s->attr & X86EMU_SEGATTR_DB;

        x86emu_fetch_invalidate(cpu);
        memset(&in, 0, sizeof(in));
        in.o32 = in.a32 = d32;
        in.seg_override = -1;
        cpu->priv.insn_template = in.state;
        cpu->priv.eip_mask = d32 ? 0xffffffffu : 0xffff;
        cpu->priv.fetch_limit_end = (uint64_t)s->limit + 1;
    }
}

static void seg_update(struct x86emu *cpu, unsigned sreg)
{
    x86emu_seg_update(cpu, sreg);
}

void x86emu_segments_changed(struct x86emu *cpu)
{
    for (unsigned i = 0; i < X86EMU_SEG_COUNT; i++)
        seg_update(cpu, i);
    x86emu_set_cpl(cpu, in_real_mode(cpu)
                            ? 0
                            : cpu->seg[X86EMU_SEG_CS].selector & 3u);
}

void x86emu_set_cpl(struct x86emu *cpu, unsigned cpl)
{
    /* The TLB holds translations checked for one side of the user/
     * supervisor line only. */
    if ((cpu->cr0 & X86EMU_CR0_PG) && (cpl == 3) != (cpu->priv.cpl == 3))
        x86emu_flush_tlb(cpu);
    cpu->priv.cpl = cpl;
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

bool x86emu_seg_cache_ok(const struct x86emu_segment *s, bool prot,
                         uint32_t off, unsigned size, bool write)
{
    uint64_t last = (uint64_t)off + size - 1;
    unsigned a = s->attr;

    if (prot) {
        if ((a & 0x90) != 0x90)
            return false;
        if (a & 0x08) /* code: never writable, readable if R */
            return !write && (a & 0x02) && last <= s->limit;
        if (write && !(a & 0x02))
            return false;
    }
    if ((a & 0x1c) == 0x14) {
        uint64_t top = (a & X86EMU_SEGATTR_DB) ? 0xffffffffu : 0xffffu;

        return off > s->limit && last <= top;
    }
    return last <= s->limit;
}

bool x86emu_seg_ok(const struct x86emu *cpu, unsigned sreg, uint32_t off,
                   unsigned size, bool write)
{
    return x86emu_seg_cache_ok(&cpu->seg[sreg], !in_real_mode(cpu), off, size,
                               write);
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

static uint32_t phys_read(struct x86emu *cpu, uint32_t phys, unsigned size)
{
    uint8_t *host = NULL;
    uint32_t v;

    phys &= cpu->priv.addr_mask;
    if (cpu->priv.ops->map_ram)
        host = cpu->priv.ops->map_ram(cpu->priv.opaque,
                                      phys & X86EMU_PAGE_MASK, false);
    if (host)
        return x86emu_load_le(host + (phys & ~X86EMU_PAGE_MASK), size);
    v = cpu->priv.ops->mem_read(cpu->priv.opaque, phys, size);
    return size == 4 ? v : v & ((1u << (8 * size)) - 1);
}

static void phys_write(struct x86emu *cpu, uint32_t phys, uint32_t v,
                       unsigned size)
{
    uint8_t *host = NULL;

    phys &= cpu->priv.addr_mask;
    if (cpu->priv.ops->map_ram)
        host = cpu->priv.ops->map_ram(cpu->priv.opaque,
                                      phys & X86EMU_PAGE_MASK, true);
    if (host) {
        x86emu_store_le(host + (phys & ~X86EMU_PAGE_MASK), v, size);
        return;
    }
    if (size < 4)
        v &= (1u << (8 * size)) - 1;
    cpu->priv.ops->mem_write(cpu->priv.opaque, phys, v, size);
}

/* Whether the combined rights of a page's entries allow the access. A
 * supervisor may write read-only pages unless CR0.WP is set. */
static bool page_access_ok(const struct x86emu *cpu, uint32_t rights,
                           bool write, bool user)
{
    if (user)
        return (rights & PTE_US) && (!write || (rights & PTE_RW));
    return !write || (rights & PTE_RW) || !(cpu->cr0 & X86EMU_CR0_WP);
}

/* Walks the two-level page tables for lin, reading them through the
 * physical memory path, and sets the accessed (and for a write, dirty)
 * bits on success. Returns false with the page-fault error code in *err. */
static bool page_walk(struct x86emu *cpu, uint32_t lin, bool write, bool user,
                      uint32_t *phys, uint32_t *err, bool *large)
{
    uint32_t pde_addr = (cpu->cr3 & X86EMU_PAGE_MASK) | ((lin >> 20) & 0xffc);
    uint32_t pde = phys_read(cpu, pde_addr, 4), pte_addr, pte, upd;
    uint32_t code = (write ? PF_ERR_W : 0) | (user ? PF_ERR_U : 0);

    if (!(pde & PTE_P)) {
        *err = code;
        return false;
    }
    if ((pde & PDE_PS) && (cpu->cr4 & X86EMU_CR4_PSE)) {
        if (pde & PDE_PS_RESERVED) {
            *err = code | PF_ERR_P | PF_ERR_RSVD;
            return false;
        }
        if (!page_access_ok(cpu, pde, write, user)) {
            *err = code | PF_ERR_P;
            return false;
        }
        upd = pde | PTE_A | (write ? PTE_D : 0);
        if (upd != pde)
            phys_write(cpu, pde_addr, upd, 4);
        *phys = (pde & 0xffc00000u) | (lin & 0x003fffffu);
        *large = true;
        return true;
    }
    pte_addr = (pde & X86EMU_PAGE_MASK) | ((lin >> 10) & 0xffc);
    pte = phys_read(cpu, pte_addr, 4);
    if (!(pte & PTE_P)) {
        *err = code;
        return false;
    }
    if (!page_access_ok(cpu, pde & pte, write, user)) {
        *err = code | PF_ERR_P;
        return false;
    }
    if (!(pde & PTE_A))
        phys_write(cpu, pde_addr, pde | PTE_A, 4);
    upd = pte | PTE_A | (write ? PTE_D : 0);
    if (upd != pte)
        phys_write(cpu, pte_addr, upd, 4);
    *phys = (pte & X86EMU_PAGE_MASK) | (lin & ~X86EMU_PAGE_MASK);
    *large = false;
    return true;
}

static noreturn void raise_page_fault(struct x86emu *cpu, uint32_t lin,
                                      uint32_t err)
{
    cpu->cr2 = lin;
    x86emu_raise_err(cpu, X86EMU_VEC_PF, err);
}

/* Linear to physical (A20/bus mask applied), raising #PF. */
static uint32_t translate(struct x86emu *cpu, uint32_t lin, bool write,
                          bool user, bool *large)
{
    uint32_t phys, err;
    bool lg = false;

    if (cpu->cr0 & X86EMU_CR0_PG) {
        if (!page_walk(cpu, lin, write, user, &phys, &err, &lg))
            raise_page_fault(cpu, lin, err);
    } else {
        phys = lin;
    }
    if (large)
        *large = lg;
    return phys & cpu->priv.addr_mask;
}

void x86emu_flush_tlb(struct x86emu *cpu)
{
    for (unsigned i = 0; i < X86EMU_TLB_ENTRIES; i++) {
        cpu->priv.tlb[i].read_tag = TLB_EMPTY;
        cpu->priv.tlb[i].write_tag = TLB_EMPTY;
        cpu->priv.tlb[i].host = NULL;
    }
    cpu->priv.tlb_large = false;
    x86emu_fetch_invalidate(cpu);
}

void x86emu_invlpg(struct x86emu *cpu, uint32_t lin)
{
    struct x86emu_tlb_entry *e = tlb_entry(cpu, lin);
    uint32_t page = lin & X86EMU_PAGE_MASK;

    /* The TLB holds 4 KiB pieces of a 4 MiB page: its other pieces may
     * sit in other entries. */
    if (cpu->priv.tlb_large) {
        x86emu_flush_tlb(cpu);
        return;
    }
    if (e->read_tag == page || e->write_tag == page) {
        e->read_tag = TLB_EMPTY;
        e->write_tag = TLB_EMPTY;
        e->host = NULL;
    }
    x86emu_fetch_invalidate(cpu);
}

/* Translates lin for an access at the current privilege level and, when
 * it is ordinary RAM, caches the linear page's host address; returns the
 * host address of lin or NULL (then *phys is where to go). Translations
 * are cached only after the walk set the accessed bit and, for the write
 * tag, the dirty bit, so a hit never needs to touch the page tables. */
static uint8_t *tlb_fill(struct x86emu *cpu, uint32_t lin, bool write,
                         uint32_t *phys_out)
{
    struct x86emu_tlb_entry *e = tlb_entry(cpu, lin);
    uint32_t page = lin & X86EMU_PAGE_MASK;
    bool large;
    uint32_t phys = translate(cpu, lin, write, cpu->priv.cpl == 3, &large);
    uint8_t *host;

    *phys_out = phys;
    if (!cpu->priv.ops->map_ram)
        return NULL;
    host = cpu->priv.ops->map_ram(cpu->priv.opaque, phys & X86EMU_PAGE_MASK,
                                  write);
    if (!host)
        return NULL;
    if (large)
        cpu->priv.tlb_large = true;
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
    uint32_t phys;
    uint8_t *host = tlb_fill(cpu, lin, false, &phys);

    if (host)
        return *host;
    return (uint8_t)cpu->priv.ops->mem_read(cpu->priv.opaque, phys, 1);
}

static void phys_write8(struct x86emu *cpu, uint32_t lin, uint8_t v)
{
    uint32_t phys;
    uint8_t *host = tlb_fill(cpu, lin, true, &phys);

    if (host)
        *host = v;
    else
        cpu->priv.ops->mem_write(cpu->priv.opaque, phys, v, 1);
}

uint32_t x86emu_lin_read_slow(struct x86emu *cpu, uint32_t lin, unsigned size)
{
    uint32_t off = lin & ~X86EMU_PAGE_MASK, phys;
    uint8_t *host;
    uint32_t v = 0;

    if (off > X86EMU_PAGE_SIZE - size) {
        /* Crosses a page: byte by byte, each through its own page. */
        for (unsigned i = 0; i < size; i++)
            v |= (uint32_t)phys_read8(cpu, lin + i) << (8 * i);
        return v;
    }
    host = tlb_fill(cpu, lin, false, &phys);
    if (host)
        return x86emu_load_le(host, size);
    v = cpu->priv.ops->mem_read(cpu->priv.opaque, phys, size);
    return size == 4 ? v : v & ((1u << (8 * size)) - 1);
}

void x86emu_probe_write_slow(struct x86emu *cpu, uint32_t lin, unsigned size)
{
    uint32_t phys;

    if (!(cpu->cr0 & X86EMU_CR0_PG))
        return;
    tlb_fill(cpu, lin, true, &phys);
    /* The second page's fault reports its first byte, as a split access
     * does. */
    if ((lin & ~X86EMU_PAGE_MASK) > X86EMU_PAGE_SIZE - size)
        tlb_fill(cpu, (lin + size - 1) & X86EMU_PAGE_MASK, true, &phys);
}

void x86emu_lin_write_slow(struct x86emu *cpu, uint32_t lin, uint32_t v,
                           unsigned size)
{
    uint32_t off = lin & ~X86EMU_PAGE_MASK, phys;
    uint8_t *host;

    if (off > X86EMU_PAGE_SIZE - size) {
        /* Both pages must be writable before the first byte changes. */
        x86emu_probe_write_slow(cpu, lin, size);
        for (unsigned i = 0; i < size; i++)
            phys_write8(cpu, lin + i, (uint8_t)(v >> (8 * i)));
        return;
    }
    host = tlb_fill(cpu, lin, true, &phys);
    if (host) {
        x86emu_store_le(host, v, size);
        return;
    }
    if (size < 4)
        v &= (1u << (8 * size)) - 1;
    cpu->priv.ops->mem_write(cpu->priv.opaque, phys, v, size);
}

uint32_t x86emu_lin_read_as(struct x86emu *cpu, uint32_t lin, unsigned size,
                            bool user)
{
    uint32_t v = 0;

    if ((lin & ~X86EMU_PAGE_MASK) > X86EMU_PAGE_SIZE - size) {
        for (unsigned i = 0; i < size; i++)
            v |= phys_read(cpu, translate(cpu, lin + i, false, user, NULL), 1)
                 << (8 * i);
        return v;
    }
    return phys_read(cpu, translate(cpu, lin, false, user, NULL), size);
}

void x86emu_lin_write_as(struct x86emu *cpu, uint32_t lin, uint32_t v,
                         unsigned size, bool user)
{
    if ((lin & ~X86EMU_PAGE_MASK) > X86EMU_PAGE_SIZE - size) {
        translate(cpu, lin, true, user, NULL);
        translate(cpu, (lin + size - 1) & X86EMU_PAGE_MASK, true, user, NULL);
        for (unsigned i = 0; i < size; i++)
            phys_write(cpu, translate(cpu, lin + i, true, user, NULL),
                       (v >> (8 * i)) & 0xff, 1);
        return;
    }
    phys_write(cpu, translate(cpu, lin, true, user, NULL), v, size);
}

const uint8_t *x86emu_code_page(struct x86emu *cpu, uint32_t lin)
{
    const struct x86emu_tlb_entry *e = tlb_entry(cpu, lin);
    uint32_t page = lin & X86EMU_PAGE_MASK, phys;

    if (e->read_tag == page)
        return e->host + (lin - page);
    return tlb_fill(cpu, lin, false, &phys);
}

/* One instruction byte for the slow fetch path, or false (and the fault
 * remembered) when its page is not accessible: the fault is raised only if
 * the decoder needs that byte. */
static bool fetch_byte(struct x86emu *cpu, uint32_t lin, uint8_t *b)
{
    const struct x86emu_tlb_entry *e = tlb_entry(cpu, lin);
    uint32_t page = lin & X86EMU_PAGE_MASK, phys = lin, err;
    bool large;

    if (e->read_tag == page) {
        *b = e->host[lin - page];
        return true;
    }
    if ((cpu->cr0 & X86EMU_CR0_PG) &&
        !page_walk(cpu, lin, false, cpu->priv.cpl == 3, &phys, &err,
                   &large)) {
        cpu->priv.fetch_pf_valid = true;
        cpu->priv.fetch_pf_lin = lin;
        cpu->priv.fetch_pf_err = err;
        return false;
    }
    *b = (uint8_t)phys_read(cpu, phys, 1);
    return true;
}

/* Sets up the instruction fetch window around CS:eip when the code is in
 * RAM and a whole maximum-length instruction fits in the page and the
 * limit; returns false otherwise. */
static bool fetch_window(struct x86emu *cpu, uint32_t eip)
{
    const struct x86emu_segment *cs = &cpu->seg[X86EMU_SEG_CS];
    const uint32_t room = X86EMU_PAGE_SIZE - 16 + 1; /* offsets 0..4080 */
    uint32_t lin = cs->base + eip, off = lin & ~X86EMU_PAGE_MASK, lo, span;
    uint64_t eip_end = cpu->priv.fetch_limit_end;
    const uint8_t *page;

    if (off >= room || (uint64_t)eip + 16 > eip_end)
        return false;
    /* The instruction's first byte: a page fault here is the right one. */
    page = x86emu_code_page(cpu, lin);
    if (!page)
        return false;
    page -= off;
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

    cpu->priv.fetch_pf_valid = false;
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
        if (!fetch_byte(cpu, cs->base + off, &cpu->priv.fetch_buf[n]))
            break;
        n++;
    }
    cpu->priv.fetch_end = cpu->priv.fetch_buf + n;
    return cpu->priv.fetch_buf;
}

noreturn void x86emu_fetch_fault(struct x86emu *cpu, const uint8_t *end)
{
    if (cpu->priv.fetch_pf_valid && end == cpu->priv.fetch_end)
        raise_page_fault(cpu, cpu->priv.fetch_pf_lin, cpu->priv.fetch_pf_err);
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

uint32_t x86emu_eflags_priv_mask(const struct x86emu *cpu)
{
    uint32_t mask = 0xffffffffu;
    unsigned iopl = (cpu->priv.eflags & X86EMU_FLAG_IOPL) >> 12;

    if (in_real_mode(cpu))
        return mask;
    if (cpu->priv.cpl > 0)
        mask &= ~X86EMU_FLAG_IOPL;
    if (cpu->priv.cpl > iopl)
        mask &= ~X86EMU_FLAG_IF;
    return mask;
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
    x86emu_sync_intr(cpu);
}

uint32_t x86emu_get_eflags(const struct x86emu *cpu)
{
    return flags_read(cpu);
}

void x86emu_set_eflags(struct x86emu *cpu, uint32_t value)
{
    x86emu_write_eflags(cpu, value, 0xffffffffu);
}

/* CR0 bits the 386 model keeps: the 386's PE MP EM TS PG and the 486's
 * NE, WP, NW and CD (the last two only stored: there is no cache). ET
 * reads 0: no coprocessor. Writes to other bits are ignored. */
#define CR0_KEPT_386                                                           \
    (X86EMU_CR0_PE | X86EMU_CR0_MP | X86EMU_CR0_EM | X86EMU_CR0_TS |           \
     X86EMU_CR0_NE | X86EMU_CR0_WP | X86EMU_CR0_NW | X86EMU_CR0_CD |           \
     X86EMU_CR0_PG)

void x86emu_write_cr0(struct x86emu *cpu, uint32_t value)
{
    uint32_t changed;

    if (x86emu_is_286(cpu)) {
        value = (value & 0xf) | 0xfff0; /* the MSW: reserved bits read 1 */
        if ((value ^ cpu->cr0) & X86EMU_CR0_PE) {
            /* The 286 model has no protected mode: it stops. */
            cpu->cr0 = value;
            x86emu_flush_tlb(cpu);
            cpu->priv.events |= X86EMU_EV_PROTECTED;
            return;
        }
        cpu->cr0 = value;
        return;
    }
    value &= CR0_KEPT_386;
    if ((value & X86EMU_CR0_PG) && !(value & X86EMU_CR0_PE))
        x86emu_raise(cpu, X86EMU_VEC_GP);
    if ((value & X86EMU_CR0_NW) && !(value & X86EMU_CR0_CD))
        x86emu_raise(cpu, X86EMU_VEC_GP);
    changed = value ^ cpu->cr0;
    cpu->cr0 = value;
    if (changed & (X86EMU_CR0_PE | X86EMU_CR0_PG | X86EMU_CR0_WP))
        x86emu_flush_tlb(cpu);
    if (changed & X86EMU_CR0_PE) {
        /* CPL stays 0 across the switch: CS keeps its real-mode cache
         * until a far transfer loads it. The segment checks change. */
        cpu->priv.cpl = 0;
        for (unsigned i = 0; i < X86EMU_SEG_COUNT; i++)
            seg_update(cpu, i);
    }
}

void x86emu_write_cr4(struct x86emu *cpu, uint32_t value)
{
    if (value & ~X86EMU_CR4_PSE)
        x86emu_raise(cpu, X86EMU_VEC_GP);
    if ((value ^ cpu->cr4) & X86EMU_CR4_PSE)
        x86emu_flush_tlb(cpu);
    cpu->cr4 = value;
}

/* ------------------------------------------------------------------ */
/* Interrupts and exceptions. */

noreturn void x86emu_raise_err(struct x86emu *cpu, int vector, uint32_t err)
{
    /* EXT: the fault happened while an event external to the program (an
     * interrupt or an earlier exception) was being delivered. Page-fault
     * error codes have no such bit. */
    if (vector != X86EMU_VEC_PF)
        err |= cpu->priv.event_ext;
    cpu->priv.fault_vector = vector;
    cpu->priv.fault_error = err;
    longjmp(cpu->priv.fault_jmp, 1);
}

noreturn void x86emu_raise(struct x86emu *cpu, int vector)
{
    x86emu_raise_err(cpu, vector, 0);
}

noreturn void x86emu_unsupported(struct x86emu *cpu)
{
    cpu->priv.fault_vector = X86EMU_FAULT_UNSUPPORTED;
    cpu->priv.fault_error = 0;
    longjmp(cpu->priv.fault_jmp, 1);
}

static bool vector_is_contributory(int v)
{
    return v == X86EMU_VEC_DE || (v >= 10 && v <= 13);
}

/* Exceptions that push an error code in protected mode (#DF #TS #NP #SS
 * #GP #PF #AC). */
static bool vector_has_error_code(int v)
{
    return v == X86EMU_VEC_DF || (v >= 10 && v <= 14) || v == 17;
}

/* Real-mode interrupt: FLAGS, CS and IP go on the stack, the new CS:IP comes
 * from the vector table at IDTR.base (which is 0 unless LIDT moved it).
 * Protected mode goes through the IDT (protected.c). */
void x86emu_interrupt(struct x86emu *cpu, unsigned vector, uint32_t ret_eip,
                      unsigned how, uint32_t err)
{
    uint32_t slot = vector * 4, flags, sp, new_ip, new_cs;

    if (!in_real_mode(cpu)) {
        x86emu_pm_interrupt(cpu, vector, ret_eip, how, err);
        return;
    }

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
    x86emu_sync_intr(cpu);
    x86emu_load_sreg(cpu, X86EMU_SEG_CS, (uint16_t)new_cs);
    cpu->eip = new_ip;
}

/* Delivers the exception priv.fault_vector raised by the instruction at
 * priv.insn_eip, escalating to a double fault or shutdown when delivery
 * itself faults. Returns false on shutdown. */
static bool deliver_fault(struct x86emu *cpu)
{
    int vec = cpu->priv.fault_vector;
    uint32_t err = cpu->priv.fault_error;
    int prev = cpu->priv.fault_depth ? cpu->priv.delivering : -1;

    if (prev >= 0) {
        /* SDM vol. 3 table 6-5: contributory after contributory, and a
         * page fault or contributory fault while delivering a page fault,
         * make a double fault; anything during a double fault shuts the
         * processor down. Benign pairs are delivered one after the
         * other. */
        if (prev == X86EMU_VEC_DF) {
            cpu->priv.events |= X86EMU_EV_SHUTDOWN;
            cpu->priv.fault_depth = 0;
            cpu->priv.event_ext = 0;
            return false;
        }
        if ((vector_is_contributory(prev) && vector_is_contributory(vec)) ||
            (prev == X86EMU_VEC_PF &&
             (vec == X86EMU_VEC_PF || vector_is_contributory(vec)))) {
            vec = X86EMU_VEC_DF;
            err = 0;
        }
    }
    cpu->eip = cpu->priv.insn_eip;
    cpu->priv.events &= ~X86EMU_EV_STEP_DUE;
    cpu->priv.fault_depth++;
    cpu->priv.delivering = vec;
    cpu->priv.event_ext = 1;
    x86emu_interrupt(cpu, (unsigned)vec, cpu->priv.insn_eip,
                     vector_has_error_code(vec) ? X86EMU_INT_ERR : 0, err);
    cpu->priv.fault_depth = 0;
    cpu->priv.delivering = -1;
    cpu->priv.event_ext = 0;
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
    cpu->priv.event_ext = 1;
    x86emu_interrupt(cpu, vector, cpu->eip, 0, 0);
    cpu->priv.fault_depth = 0;
    cpu->priv.delivering = -1;
    cpu->priv.event_ext = 0;
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
        /* Cleared only once delivered: a delivery that stops as
         * unsupported (a task gate) stays due, so running again stops at
         * the same place again. */
        deliver_event(cpu, X86EMU_VEC_DB);
        p->events &= ~X86EMU_EV_STEP_DUE;
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
        if (cpu->priv.fault_vector == X86EMU_FAULT_UNSUPPORTED) {
            /* An instruction that stops did not run, so it owes no
             * single-step trap; running again re-arms one if TF is set. */
            if (!cpu->priv.fault_depth)
                cpu->priv.events &= ~X86EMU_EV_STEP_DUE;
            cpu->eip = cpu->priv.insn_eip;
            cpu->priv.fault_depth = 0;
            cpu->priv.delivering = -1;
            cpu->priv.event_ext = 0;
            stop = X86EMU_STOP_UNSUPPORTED;
            goto out;
        }
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
    cpu->priv.intr = asserted;
    x86emu_sync_intr(cpu);
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
    /* The INTR level is the machine's; everything else starts quiet (and
     * IF is clear, so no interrupt is deliverable). */
    cpu->priv.events = 0;
    cpu->priv.halted = false;
    cpu->priv.fault_depth = 0;
    cpu->priv.delivering = -1;
    cpu->priv.event_ext = 0;
    cpu->priv.fault_error = 0;
    cpu->priv.cpl = 0;
    cpu->priv.fetch_pf_valid = false;
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
