/* sst-run: scores x86emu against SingleStepTests-style hardware captures.
 *
 *   sst-run DIR [--cpu 286|386] [-v] [--details N]
 *
 * Loads every *.MOO.gz in DIR (the MOO format: DIR/README.md of the 80286
 * suite and moo_format_v1.md of the moo repository), sets up each test's
 * initial registers and RAM, runs until the HLT that ends every test, and
 * compares the registers and the whole of every memory page involved with
 * the final state. Undefined flags are masked with metadata.json from DIR;
 * tests listed in revocation_list.txt (in DIR or its parent) are skipped.
 * The only masks applied are the ones tests/x86/KNOWN-DEVIATIONS.md lists.
 *
 * Prints "FILE: passed/total" per file and, last, "N passed, N failed".
 * Exit status 0 when at least 99.5% of the cases pass. */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../../x86emu/x86emu.h"

#define PASS_RATE_REQUIRED 0.995
#define MAX_PAGES 64
#define PAGE 4096u
#define MAX_REVOKED 4096

/* Registers in the RG32 chunk's order; 16-bit REGS chunks are mapped onto
 * it. */
enum {
    R_CR0, R_CR3, R_EAX, R_EBX, R_ECX, R_EDX, R_ESI, R_EDI, R_EBP, R_ESP,
    R_CS, R_DS, R_ES, R_FS, R_GS, R_SS, R_EIP, R_EFLAGS, R_DR6, R_DR7,
    R_COUNT
};

static const char *const reg_names[R_COUNT] = {
    "cr0", "cr3", "eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp",
    "cs", "ds", "es", "fs", "gs", "ss", "eip", "eflags", "dr6", "dr7"};

/* REGS chunk bit order: ax bx cx dx cs ss ds es sp bp si di ip flags. */
static const int regs16_map[14] = {R_EAX, R_EBX, R_ECX, R_EDX, R_CS, R_SS,
                                   R_DS,  R_ES,  R_ESP, R_EBP, R_ESI, R_EDI,
                                   R_EIP, R_EFLAGS};

struct reg_set {
    uint32_t present; /* bit per R_* */
    uint32_t v[R_COUNT];
};

struct moo_state {
    struct reg_set regs;
    struct reg_set masks; /* RMSK/RM32: bits that must match */
    const uint8_t *ram;   /* count entries of (uint32 address, uint8 value) */
    uint32_t ram_count;
};

struct moo_test {
    uint32_t index;
    char name[96];
    struct moo_state init, fina;
    bool has_exception;
    uint8_t exception;
    uint32_t flag_addr;
    bool has_hash;
    uint8_t hash[20];
};

struct moo_file {
    uint8_t *data;
    size_t size;
    char cpu_id[5];
    bool wide;              /* RG32 registers */
    struct reg_set top_masks;
};

/* Guest memory for one test: a few 4 KiB pages allocated on demand. */
struct sst_machine {
    struct x86emu cpu;
    struct {
        uint32_t addr;
        uint8_t data[PAGE];
    } page[MAX_PAGES];
    unsigned npages;
    bool overflow;
};

struct options {
    int cpu; /* 0: from the file header */
    bool verbose;
    unsigned details;
};

struct totals {
    unsigned long passed, failed, revoked, skipped;
};

/* ------------------------------------------------------------------ */
/* Little-endian readers with bounds: every length in the file is checked
 * against what is left before it is used. */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

struct chunk {
    char type[5];
    const uint8_t *data;
    uint32_t len;
};

/* Next chunk in [*pos, end); false at the end or on a truncated chunk. */
static bool next_chunk(const uint8_t **pos, const uint8_t *end, struct chunk *c)
{
    const uint8_t *p = *pos;

    if (end - p < 8)
        return false;
    memcpy(c->type, p, 4);
    c->type[4] = 0;
    c->len = le32(p + 4);
    if ((size_t)(end - p - 8) < c->len)
        return false;
    c->data = p + 8;
    *pos = p + 8 + c->len;
    return true;
}

static int parse_regs(const struct chunk *c, bool wide, struct reg_set *out)
{
    unsigned width = wide ? 4 : 2, nregs = wide ? R_COUNT : 14;
    uint32_t mask, need = 0;
    const uint8_t *p;

    if (c->len < width)
        return -EINVAL;
    mask = wide ? le32(c->data) : le16(c->data);
    for (unsigned i = 0; i < nregs; i++)
        if (mask & (1u << i))
            need += width;
    if (c->len < width + need)
        return -EINVAL;
    p = c->data + width;
    for (unsigned i = 0; i < nregs; i++) {
        int r = wide ? (int)i : regs16_map[i];

        if (!(mask & (1u << i)))
            continue;
        out->present |= 1u << r;
        out->v[r] = wide ? le32(p) : le16(p);
        p += width;
    }
    return 0;
}

static int parse_state(const struct chunk *c, struct moo_state *st,
                       bool *wide)
{
    const uint8_t *pos = c->data, *end = c->data + c->len;
    struct chunk sub;

    memset(st, 0, sizeof(*st));
    while (next_chunk(&pos, end, &sub)) {
        if (!strcmp(sub.type, "REGS") || !strcmp(sub.type, "RG32")) {
            *wide = sub.type[1] == 'G';
            if (parse_regs(&sub, *wide, &st->regs) < 0)
                return -EINVAL;
        } else if (!strcmp(sub.type, "RMSK") || !strcmp(sub.type, "RM32")) {
            if (parse_regs(&sub, sub.type[2] == '3', &st->masks) < 0)
                return -EINVAL;
        } else if (!strcmp(sub.type, "RAM ")) {
            if (sub.len < 4)
                return -EINVAL;
            st->ram_count = le32(sub.data);
            if ((uint64_t)st->ram_count * 5 > sub.len - 4)
                return -EINVAL;
            st->ram = sub.data + 4;
        }
        /* QUEU, EA32: not needed to run a test. */
    }
    return 0;
}

static int parse_test(const struct chunk *c, struct moo_test *t, bool *wide)
{
    const uint8_t *pos, *end = c->data + c->len;
    struct chunk sub;
    bool have_init = false, have_fina = false;

    memset(t, 0, sizeof(*t));
    if (c->len < 4)
        return -EINVAL;
    t->index = le32(c->data);
    pos = c->data + 4;
    while (next_chunk(&pos, end, &sub)) {
        if (!strcmp(sub.type, "NAME") && sub.len >= 4) {
            uint32_t n = le32(sub.data);

            if (n > sub.len - 4)
                n = sub.len - 4;
            if (n >= sizeof(t->name))
                n = sizeof(t->name) - 1;
            memcpy(t->name, sub.data + 4, n);
            t->name[n] = 0;
        } else if (!strcmp(sub.type, "INIT")) {
            if (parse_state(&sub, &t->init, wide) < 0)
                return -EINVAL;
            have_init = true;
        } else if (!strcmp(sub.type, "FINA")) {
            if (parse_state(&sub, &t->fina, wide) < 0)
                return -EINVAL;
            have_fina = true;
        } else if (!strcmp(sub.type, "EXCP") && sub.len >= 5) {
            t->has_exception = true;
            t->exception = sub.data[0];
            t->flag_addr = le32(sub.data + 1);
        } else if (!strcmp(sub.type, "HASH") && sub.len >= 20) {
            t->has_hash = true;
            memcpy(t->hash, sub.data, 20);
        }
    }
    return have_init && have_fina ? 0 : -EINVAL;
}

static int load_gz(const char *path, uint8_t **data, size_t *size)
{
    gzFile gz = gzopen(path, "rb");
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = NULL;
    int ret = 0;

    if (!gz)
        return -errno ? -errno : -EIO;
    buf = malloc(cap);
    if (!buf) {
        ret = -ENOMEM;
        goto out;
    }
    for (;;) {
        int n;

        if (cap - len < 65536) {
            uint8_t *nb;

            if (cap > (size_t)1 << 30) {
                ret = -EFBIG;
                goto out;
            }
            nb = realloc(buf, cap * 2);
            if (!nb) {
                ret = -ENOMEM;
                goto out;
            }
            buf = nb;
            cap *= 2;
        }
        n = gzread(gz, buf + len, 65536);
        if (n < 0) {
            ret = -EIO;
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    *data = buf;
    *size = len;
    buf = NULL;
out:
    free(buf);
    gzclose(gz);
    return ret;
}

/* ------------------------------------------------------------------ */
/* The machine the tests run on: flat RAM, ports that read all ones. */

static uint8_t *machine_page(struct sst_machine *m, uint32_t addr)
{
    uint32_t base = addr & ~(PAGE - 1);

    for (unsigned i = 0; i < m->npages; i++)
        if (m->page[i].addr == base)
            return m->page[i].data;
    if (m->npages == MAX_PAGES) {
        m->overflow = true;
        return NULL;
    }
    m->page[m->npages].addr = base;
    memset(m->page[m->npages].data, 0, PAGE);
    return m->page[m->npages++].data;
}

static uint8_t *sst_map_ram(void *opaque, uint32_t page, bool write)
{
    return machine_page(opaque, page);
}

static uint32_t sst_mem_read(void *opaque, uint32_t addr, unsigned size)
{
    uint32_t v = 0;

    for (unsigned i = 0; i < size; i++) {
        uint8_t *p = machine_page(opaque, addr + i);

        if (p)
            v |= (uint32_t)p[(addr + i) & (PAGE - 1)] << (8 * i);
    }
    return v;
}

static void sst_mem_write(void *opaque, uint32_t addr, uint32_t value,
                          unsigned size)
{
    for (unsigned i = 0; i < size; i++) {
        uint8_t *p = machine_page(opaque, addr + i);

        if (p)
            p[(addr + i) & (PAGE - 1)] = (uint8_t)(value >> (8 * i));
    }
}

/* The 80286 suite: "All forms of the IN instruction should return 0xFF or
 * 0xFFFF". */
static uint32_t sst_io_in(void *opaque, uint16_t port, unsigned size)
{
    return size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

static void sst_io_out(void *opaque, uint16_t port, uint32_t value,
                       unsigned size)
{
}

static int sst_int_ack(void *opaque)
{
    return -1;
}

static const struct x86emu_ops sst_ops = {
    .mem_read = sst_mem_read,
    .mem_write = sst_mem_write,
    .io_in = sst_io_in,
    .io_out = sst_io_out,
    .int_ack = sst_int_ack,
    .map_ram = sst_map_ram,
};

/* ------------------------------------------------------------------ */
/* Masks (tests/x86/KNOWN-DEVIATIONS.md). */

struct masks {
    uint32_t flags; /* FLAGS bits that must match */
    uint32_t flags_stack; /* same, for the FLAGS image an exception pushed */
};

/* metadata.json: opcodes.KEY[.reg.N]."flags-mask" for the file named
 * KEY[.N].MOO.gz. */
static uint32_t undefined_flags_mask(json_object *meta, const char *file)
{
    char key[16], sub[4] = "";
    const char *dot = strchr(file, '.');
    json_object *opcodes, *entry, *regs, *mask;
    size_t klen;

    if (!meta || !dot)
        return 0xffffffffu;
    klen = (size_t)(dot - file);
    if (klen >= sizeof(key))
        return 0xffffffffu;
    memcpy(key, file, klen);
    key[klen] = 0;
    if (dot[1] >= '0' && dot[1] <= '7' && dot[2] == '.') {
        sub[0] = dot[1];
        sub[1] = 0;
    }
    if (!json_object_object_get_ex(meta, "opcodes", &opcodes) ||
        !json_object_object_get_ex(opcodes, key, &entry))
        return 0xffffffffu;
    if (sub[0] && json_object_object_get_ex(entry, "reg", &regs) &&
        !json_object_object_get_ex(regs, sub, &entry))
        return 0xffffffffu;
    if (!json_object_object_get_ex(entry, "flags-mask", &mask))
        return 0xffffffffu;
    return (uint32_t)json_object_get_int64(mask) | 0xffff0000u;
}

/* ------------------------------------------------------------------ */
/* Running and checking one test. */

static void load_initial(struct sst_machine *m, const struct moo_file *f,
                         const struct moo_test *t, bool data_is_286)
{
    struct x86emu *cpu = &m->cpu;
    const struct reg_set *r = &t->init.regs;
    static const int gprs[8] = {R_EAX, R_ECX, R_EDX, R_EBX,
                                R_ESP, R_EBP, R_ESI, R_EDI};
    static const int sregs[6] = {R_ES, R_CS, R_SS, R_DS, R_FS, R_GS};
    uint32_t flags;

    m->npages = 0;
    m->overflow = false;
    x86emu_reset(cpu);
    x86emu_set_a20(cpu, true);
    for (unsigned i = 0; i < 8; i++)
        cpu->gpr[i] = r->v[gprs[i]];
    for (unsigned i = 0; i < 6; i++)
        x86emu_load_segment_real(cpu, i, (uint16_t)r->v[sregs[i]]);
    cpu->eip = r->v[R_EIP];
    flags = r->v[R_EFLAGS];
    /* D1: a 386 in real mode can hold IOPL/NT; the 286 data's initial
     * FLAGS carries random bits there that the 286 never loads. */
    if (data_is_286 && cpu->model != X86EMU_MODEL_286)
        flags &= 0x0fff;
    x86emu_set_eflags(cpu, flags);
    for (uint32_t i = 0; i < t->init.ram_count; i++) {
        const uint8_t *e = t->init.ram + 5 * i;
        uint8_t *p = machine_page(m, le32(e));

        if (p)
            p[le32(e) & (PAGE - 1)] = e[4];
    }
}

static uint32_t cpu_reg(const struct x86emu *cpu, int r)
{
    switch (r) {
    case R_EAX: return cpu->gpr[X86EMU_EAX];
    case R_EBX: return cpu->gpr[X86EMU_EBX];
    case R_ECX: return cpu->gpr[X86EMU_ECX];
    case R_EDX: return cpu->gpr[X86EMU_EDX];
    case R_ESI: return cpu->gpr[X86EMU_ESI];
    case R_EDI: return cpu->gpr[X86EMU_EDI];
    case R_EBP: return cpu->gpr[X86EMU_EBP];
    case R_ESP: return cpu->gpr[X86EMU_ESP];
    case R_CS: return cpu->seg[X86EMU_SEG_CS].selector;
    case R_DS: return cpu->seg[X86EMU_SEG_DS].selector;
    case R_ES: return cpu->seg[X86EMU_SEG_ES].selector;
    case R_FS: return cpu->seg[X86EMU_SEG_FS].selector;
    case R_GS: return cpu->seg[X86EMU_SEG_GS].selector;
    case R_SS: return cpu->seg[X86EMU_SEG_SS].selector;
    case R_EIP: return cpu->eip;
    case R_EFLAGS: return x86emu_get_eflags(cpu);
    default: return 0;
    }
}

/* Builds the expected content of the page at base into out. */
static void expected_page(const struct moo_test *t, uint32_t base,
                          uint8_t *out)
{
    const struct moo_state *st[2] = {&t->init, &t->fina};

    memset(out, 0, PAGE);
    for (unsigned s = 0; s < 2; s++)
        for (uint32_t i = 0; i < st[s]->ram_count; i++) {
            const uint8_t *e = st[s]->ram + 5 * i;

            if ((le32(e) & ~(PAGE - 1)) == base)
                out[le32(e) & (PAGE - 1)] = e[4];
        }
}

/* Where the exception pushed FLAGS. The EXCP chunk gives the word-aligned
 * bus address, one below the word when SP was odd (D3 in
 * KNOWN-DEVIATIONS.md), so it is found from the final SS:SP instead: the
 * real-mode frame is IP, CS, FLAGS upwards from SP. */
static uint32_t pushed_flags_addr(const struct moo_file *f,
                                  const struct moo_test *t)
{
    uint32_t ss, sp;

    if (f->wide)
        return t->flag_addr;
    ss = (t->fina.regs.present & (1u << R_SS)) ? t->fina.regs.v[R_SS]
                                               : t->init.regs.v[R_SS];
    sp = (t->fina.regs.present & (1u << R_ESP)) ? t->fina.regs.v[R_ESP]
                                                : t->init.regs.v[R_ESP];
    return (ss << 4) + ((sp + 4) & 0xffff);
}

/* Returns true when the CPU state matches; describes the first mismatches
 * into why. */
static bool check_test(struct sst_machine *m, const struct moo_file *f,
                       const struct moo_test *t, const struct masks *mk,
                       char *why, size_t whylen)
{
    const struct x86emu *cpu = &m->cpu;
    unsigned width_mask = f->wide ? 0xffffffffu : 0xffff;
    static uint8_t want[PAGE];
    size_t n = 0;
    bool ok = true;
    uint32_t flag_addr = 0;

    why[0] = 0;
    if (t->has_exception)
        flag_addr = pushed_flags_addr(f, t);
    if (m->overflow) {
        snprintf(why, whylen, "touched more than %d pages", MAX_PAGES);
        return false;
    }
    for (int r = R_EAX; r <= R_EFLAGS; r++) {
        uint32_t want_v, got, mask = width_mask;

        if (!(t->init.regs.present & (1u << r)))
            continue;
        want_v = (t->fina.regs.present & (1u << r)) ? t->fina.regs.v[r]
                                                    : t->init.regs.v[r];
        got = cpu_reg(cpu, r);
        if (r >= R_CS && r <= R_SS)
            mask = 0xffff;
        if (r == R_EFLAGS)
            mask &= mk->flags;
        if (t->fina.masks.present & (1u << r))
            mask &= t->fina.masks.v[r];
        else if (f->top_masks.present & (1u << r))
            mask &= f->top_masks.v[r];
        if ((want_v ^ got) & mask) {
            ok = false;
            if (n < whylen)
                n += (size_t)snprintf(why + n, whylen - n,
                                      " %s=%08x(want %08x)", reg_names[r],
                                      got & mask, want_v & mask);
        }
    }
    /* Every page the CPU or the test touched, byte for byte. */
    for (uint32_t i = 0; i < t->init.ram_count + t->fina.ram_count; i++) {
        const uint8_t *e = i < t->init.ram_count
                               ? t->init.ram + 5 * i
                               : t->fina.ram + 5 * (i - t->init.ram_count);

        machine_page(m, le32(e));
    }
    for (unsigned p = 0; p < m->npages; p++) {
        uint32_t base = m->page[p].addr;
        const uint8_t *have = m->page[p].data;

        expected_page(t, base, want);
        for (uint32_t o = 0; o < PAGE; o++) {
            uint32_t addr = base + o;
            uint8_t bmask = 0xff;

            if (t->has_exception && (addr == flag_addr ||
                                     addr == flag_addr + 1))
                bmask = (uint8_t)(mk->flags_stack >>
                                  (addr == flag_addr ? 0 : 8));
            if ((have[o] ^ want[o]) & bmask) {
                ok = false;
                if (n < whylen)
                    n += (size_t)snprintf(why + n, whylen - n,
                                          " [%06x]=%02x(want %02x)", addr,
                                          have[o], want[o]);
            }
        }
    }
    return ok;
}

/* ------------------------------------------------------------------ */
/* Revocation list: one SHA-1 in hex per line, '#' comments. */

struct revoked {
    uint8_t hash[MAX_REVOKED][20];
    unsigned count;
};

static void load_revoked(const char *path, struct revoked *rv)
{
    FILE *fp = fopen(path, "r");
    char line[256];

    if (!fp)
        return;
    while (fgets(line, sizeof(line), fp) && rv->count < MAX_REVOKED) {
        uint8_t h[20];
        unsigned i;

        if (line[0] == '#')
            continue;
        for (i = 0; i < 20; i++) {
            unsigned byte;

            if (sscanf(line + 2 * i, "%2x", &byte) != 1)
                break;
            h[i] = (uint8_t)byte;
        }
        if (i == 20)
            memcpy(rv->hash[rv->count++], h, 20);
    }
    fclose(fp);
}

static bool is_revoked(const struct revoked *rv, const struct moo_test *t)
{
    if (!t->has_hash)
        return false;
    for (unsigned i = 0; i < rv->count; i++)
        if (!memcmp(rv->hash[i], t->hash, 20))
            return true;
    return false;
}

/* ------------------------------------------------------------------ */

static int run_file(const char *dir, const char *name, json_object *meta,
                    const struct revoked *rv, const struct options *opt,
                    struct sst_machine *m, struct totals *tot)
{
    char path[4096];
    struct moo_file f = {0};
    const uint8_t *pos, *end;
    struct chunk c;
    unsigned long pass = 0, total = 0, shown = 0, seen = 0;
    uint32_t declared;
    bool data_is_286;
    int cpu_model, ret = 0;
    struct masks mk;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    ret = load_gz(path, &f.data, &f.size);
    if (ret < 0) {
        fprintf(stderr, "%s: cannot read: %s\n", path, strerror(-ret));
        return ret;
    }
    pos = f.data;
    end = f.data + f.size;
    if (!next_chunk(&pos, end, &c) || strcmp(c.type, "MOO ") || c.len < 12) {
        fprintf(stderr, "%s: not a MOO file\n", path);
        ret = -EINVAL;
        goto out;
    }
    declared = le32(c.data + 4);
    memcpy(f.cpu_id, c.data + 8, 4);
    data_is_286 = !memcmp(f.cpu_id, "C286", 4) || !memcmp(f.cpu_id, "286", 3);
    cpu_model = opt->cpu ? opt->cpu
                         : (data_is_286 || !memcmp(f.cpu_id, "186", 3))
                               ? X86EMU_MODEL_286
                               : X86EMU_MODEL_386;
    if (m->cpu.model != (enum x86emu_model)cpu_model)
        x86emu_init(&m->cpu, cpu_model, &sst_ops, m);

    mk.flags = undefined_flags_mask(meta, name);
    /* D1: FLAGS bits 12-15 on a 386 running 286 real-mode data. */
    if (data_is_286 && cpu_model != X86EMU_MODEL_286)
        mk.flags &= ~0xf000u;
    /* D4: the 386EX capture reports EFLAGS bits 18-31 as set. */
    if (!data_is_286)
        mk.flags &= 0x0003ffffu;
    mk.flags_stack = mk.flags;

    while (next_chunk(&pos, end, &c)) {
        struct moo_test t;
        char why[512];
        enum x86emu_stop stop;
        bool wide = f.wide;

        if (!strcmp(c.type, "RMSK") || !strcmp(c.type, "RM32")) {
            if (parse_regs(&c, c.type[2] == '3', &f.top_masks) < 0) {
                fprintf(stderr, "%s: malformed %s chunk\n", path, c.type);
                ret = -EINVAL;
                goto out;
            }
            continue;
        }
        if (strcmp(c.type, "TEST"))
            continue;
        if (parse_test(&c, &t, &wide) < 0) {
            fprintf(stderr, "%s: malformed test chunk\n", path);
            ret = -EINVAL;
            goto out;
        }
        f.wide = wide;
        seen++;
        if (is_revoked(rv, &t)) {
            tot->revoked++;
            continue;
        }
        if ((t.init.regs.present & (1u << R_CR0)) &&
            (t.init.regs.v[R_CR0] & X86EMU_CR0_PE)) {
            tot->skipped++; /* protected mode: not implemented */
            continue;
        }
        total++;
        load_initial(m, &f, &t, data_is_286);
        /* The instruction, then the HLT every test ends with (after an
         * exception or jump the HLT sits at the target). */
        stop = x86emu_run(&m->cpu, 4);
        if (stop != X86EMU_STOP_HALT) {
            snprintf(why, sizeof(why), " stopped with %d, not HLT", stop);
        } else if (check_test(m, &f, &t, &mk, why, sizeof(why))) {
            pass++;
            continue;
        }
        if (opt->verbose && shown < opt->details) {
            printf("  FAIL %s #%u %s:%s\n", name, t.index, t.name, why);
            shown++;
        }
    }
    printf("%s: %lu/%lu\n", name, pass, total);
    tot->passed += pass;
    tot->failed += total - pass;
    if (pos != end || seen != declared) {
        fprintf(stderr, "%s: truncated: %lu of %u tests\n", path, seen,
                declared);
        ret = -EINVAL;
    }
out:
    free(f.data);
    return ret;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: sst-run DIR [--cpu 286|386] [-v] [--details N]\n"
            "  runs every *.MOO.gz in DIR against x86emu\n");
}

int main(int argc, char **argv)
{
    struct options opt = {.details = 5};
    const char *dir = NULL;
    char path[4096];
    json_object *meta = NULL;
    struct revoked *rv = NULL;
    struct sst_machine *m = NULL;
    struct totals tot = {0};
    char **names = NULL;
    size_t nnames = 0;
    DIR *d = NULL;
    struct dirent *de;
    int status = 2;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cpu") && i + 1 < argc) {
            opt.cpu = atoi(argv[++i]);
            if (opt.cpu != 286 && opt.cpu != 386) {
                usage();
                return 2;
            }
        } else if (!strcmp(argv[i], "-v")) {
            opt.verbose = true;
        } else if (!strcmp(argv[i], "--details") && i + 1 < argc) {
            opt.details = (unsigned)atoi(argv[++i]);
            opt.verbose = true;
        } else if (argv[i][0] != '-' && !dir) {
            dir = argv[i];
        } else {
            usage();
            return 2;
        }
    }
    if (!dir) {
        usage();
        return 2;
    }

    d = opendir(dir);
    if (!d) {
        fprintf(stderr, "sst-run: %s: %s\n", dir, strerror(errno));
        goto out;
    }
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        char **nn;

        if (len < 8 || strcmp(de->d_name + len - 7, ".MOO.gz"))
            continue;
        nn = realloc(names, (nnames + 1) * sizeof(*names));
        if (!nn)
            goto out;
        names = nn;
        names[nnames] = strdup(de->d_name);
        if (!names[nnames])
            goto out;
        nnames++;
    }
    if (!nnames) {
        fprintf(stderr, "sst-run: no *.MOO.gz files in %s\n", dir);
        goto out;
    }
    qsort(names, nnames, sizeof(*names), compare_names);

    snprintf(path, sizeof(path), "%s/metadata.json", dir);
    meta = json_object_from_file(path);
    if (!meta)
        fprintf(stderr, "sst-run: no metadata.json in %s: undefined flags "
                        "are compared too\n", dir);
    rv = calloc(1, sizeof(*rv));
    m = calloc(1, sizeof(*m));
    if (!rv || !m)
        goto out;
    snprintf(path, sizeof(path), "%s/revocation_list.txt", dir);
    load_revoked(path, rv);
    snprintf(path, sizeof(path), "%s/../revocation_list.txt", dir);
    load_revoked(path, rv);
    x86emu_init(&m->cpu, X86EMU_MODEL_286, &sst_ops, m);

    for (size_t i = 0; i < nnames; i++)
        if (run_file(dir, names[i], meta, rv, &opt, m, &tot) < 0)
            tot.failed++; /* an unreadable file counts against the score */

    if (tot.revoked)
        printf("revoked: %lu skipped\n", tot.revoked);
    if (tot.skipped)
        printf("protected mode: %lu skipped\n", tot.skipped);
    printf("%lu passed, %lu failed\n", tot.passed, tot.failed);
    status = tot.passed + tot.failed &&
                     (double)tot.passed / (double)(tot.passed + tot.failed) >=
                         PASS_RATE_REQUIRED
                 ? 0
                 : 1;
out:
    if (d)
        closedir(d);
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    free(rv);
    free(m);
    if (meta)
        json_object_put(meta);
    return status;
}
