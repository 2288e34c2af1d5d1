/* Device state save/restore (hw/savestate.c, every device's save/load, the
 * machine's entry points): the stream format and its parser, a round trip
 * of every device from a non-trivial state into a fresh instance compared
 * register by register, a whole machine saved to a memfd and loaded into a
 * second one, and hostile streams (truncated, bit-flipped behind a
 * recomputed CRC, over-long, unknown or duplicate sections, wrong versions,
 * another device's state) that must all be refused with the target left
 * exactly as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../dm/machine.h"
#include "../../dm/options.h"
#include "../../hw/bus.h"
#include "../../hw/cmos.h"
#include "../../hw/i440fx.h"
#include "../../hw/pci.h"
#include "../../hw/pci_testdev.h"
#include "../../hw/pcihp.h"
#include "../../hw/piix3.h"
#include "../../hw/piix4_pm.h"
#include "../../hw/piix_ide.h"
#include "../../hw/savestate.h"
#include "../../hw/uart.h"
#include "../../hw/xen_platform.h"
#include "../../lib/log.h"
#include "../../lib/loop.h"

/* ---- streams ------------------------------------------------------------- */

struct stream {
    uint8_t *buf;
    size_t len;
};

static char last_err[512];
/* Where log lines go between the tests that look at them: refused streams
 * are logged, and here they are refused by the thousand. */
static FILE *quiet_log;

static struct stream stream_from_writer(struct ss_writer *w)
{
    struct stream s = {.buf = w->buf, .len = w->len};

    assert_int_equal(w->error, 0);
    w->buf = NULL;
    ss_writer_fini(w);
    return s;
}

static struct stream stream_copy(const struct stream *s)
{
    struct stream c = {.buf = malloc(s->len ? s->len : 1), .len = s->len};

    assert_non_null(c.buf);
    memcpy(c.buf, s->buf, s->len);
    return c;
}

static void stream_free(struct stream *s)
{
    free(s->buf);
    s->buf = NULL;
    s->len = 0;
}

static bool stream_equal(const struct stream *a, const struct stream *b)
{
    return a->len == b->len && !memcmp(a->buf, b->buf, a->len);
}

/* Offset of a section's payload in a valid stream. */
static size_t section_offset(const struct stream *s, const char *name,
                             uint32_t instance)
{
    struct ss_reader r;
    size_t off = 0;

    assert_int_equal(ss_reader_init(&r, s->buf, s->len), 0);
    for (size_t i = 0; i < r.n_sections; i++)
        if (!strcmp(r.sections[i].name, name) &&
            r.sections[i].instance == instance)
            off = r.sections[i].offset;
    ss_reader_fini(&r);
    assert_true(off != 0);
    return off;
}

/* Overwrites n bytes of a section's payload at off and reseals. */
static void patch(struct stream *s, const char *name, uint32_t instance,
                  size_t off, const void *bytes, size_t n)
{
    size_t at = section_offset(s, name, instance) + off;

    assert_true(at + n <= s->len - SS_TRAILER_SIZE);
    memcpy(s->buf + at, bytes, n);
    assert_int_equal(ss_stream_reseal(s->buf, s->len), 0);
}

static void patch8(struct stream *s, const char *name, uint32_t instance,
                   size_t off, uint8_t v)
{
    patch(s, name, instance, off, &v, 1);
}

/* What a rebuilt stream does with each section of the original. */
enum edit_kind { EDIT_KEEP, EDIT_DROP, EDIT_TWICE, EDIT_VERSION, EDIT_GROW,
                 EDIT_PAYLOAD_OF };
struct edit {
    const char *name;
    enum edit_kind kind;
    uint32_t version;     /* EDIT_VERSION */
    const char *other;    /* EDIT_PAYLOAD_OF: take this section's payload */
    uint32_t other_instance;
};

/* Re-writes s section by section through the writer, applying e to the
 * sections named e->name, and appends `extra` (a section name) if given. */
static struct stream rebuild(const struct stream *s, const struct edit *e,
                             const char *extra)
{
    struct ss_writer w;
    struct ss_reader r;

    assert_int_equal(ss_reader_init(&r, s->buf, s->len), 0);
    ss_writer_init(&w);
    for (size_t i = 0; i < r.n_sections; i++) {
        const struct ss_section *sec = &r.sections[i];
        const uint8_t *payload = s->buf + sec->offset;
        size_t len = sec->len;
        bool hit = e && !strcmp(sec->name, e->name);
        uint32_t version = sec->version;
        unsigned copies = 1;

        if (hit && e->kind == EDIT_DROP)
            continue;
        if (hit && e->kind == EDIT_TWICE)
            copies = 2;
        if (hit && e->kind == EDIT_VERSION)
            version = e->version;
        if (hit && e->kind == EDIT_PAYLOAD_OF) {
            for (size_t j = 0; j < r.n_sections; j++) {
                if (!strcmp(r.sections[j].name, e->other) &&
                    r.sections[j].instance == e->other_instance) {
                    payload = s->buf + r.sections[j].offset;
                    len = r.sections[j].len;
                }
            }
        }
        for (unsigned c = 0; c < copies; c++) {
            /* The writer refuses version 0: write it as 1 and patch. */
            ss_begin_section(&w, sec->name, sec->instance,
                             version ? version : 1);
            if (!version)
                memset(w.buf + w.len - 8, 0, 4);
            ss_put_bytes(&w, payload, len);
            if (hit && e->kind == EDIT_GROW)
                ss_put_u8(&w, 0);
            assert_int_equal(ss_end_section(&w), 0);
        }
    }
    if (extra) {
        ss_begin_section(&w, extra, 0, 1);
        ss_put_u32(&w, 0);
        ss_end_section(&w);
    }
    ss_reader_fini(&r);
    assert_int_equal(ss_writer_finish(&w), 0);
    return stream_from_writer(&w);
}

static int memfd_with(const uint8_t *buf, size_t len)
{
    int fd = memfd_create("savestate-test", 0);

    assert_true(fd >= 0);
    if (len)
        assert_int_equal(write(fd, buf, len), (ssize_t)len);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static struct stream read_all(int fd)
{
    struct stream s = {0};
    off_t end = lseek(fd, 0, SEEK_END);

    assert_true(end > 0);
    s.len = (size_t)end;
    s.buf = malloc(s.len);
    assert_non_null(s.buf);
    assert_int_equal(pread(fd, s.buf, s.len, 0), (ssize_t)s.len);
    return s;
}

/* ---- the format itself --------------------------------------------------- */

static void test_format_fields_round_trip(void **state)
{
    struct ss_writer w;
    struct ss_reader r;
    struct stream s;
    uint32_t version;
    uint8_t u8, bytes[5], skip[32];
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    bool b;
    char str[16];

    ss_writer_init(&w);
    assert_int_equal(ss_begin_section(&w, "alpha", 7, 3), 0);
    ss_put_u8(&w, 0xa5);
    ss_put_u16(&w, 0xbeef);
    ss_put_u32(&w, 0xdeadbeef);
    ss_put_u64(&w, 0x0123456789abcdefull);
    ss_put_bool(&w, true);
    ss_put_bytes(&w, "\x01\x02\x03\x04\x05", 5);
    ss_put_string(&w, "hello");
    assert_int_equal(ss_end_section(&w), 0);
    assert_int_equal(ss_begin_section(&w, "beta-2", 0xae00, 1), 0);
    assert_int_equal(ss_end_section(&w), 0);
    /* Names are restricted, sections do not nest. */
    assert_int_equal(ss_begin_section(&w, "Bad", 0, 1), -EINVAL);
    w.error = 0;
    assert_int_equal(ss_writer_finish(&w), 0);
    s = stream_from_writer(&w);

    /* magic "XDMS", version 1, total length, ..., end marker, CRC */
    assert_memory_equal(s.buf, "XDMS\x01\x00\x00\x00", 8);
    assert_int_equal(s.buf[8] | s.buf[9] << 8, s.len);
    assert_int_equal(s.buf[12], SS_MARK_SECTION);
    assert_int_equal(s.buf[s.len - 5], SS_MARK_END);

    assert_int_equal(ss_reader_init(&r, s.buf, s.len), 0);
    assert_int_equal(r.n_sections, 2);
    assert_true(ss_has_section(&r, "alpha", 7));
    assert_false(ss_has_section(&r, "alpha", 8));
    assert_int_equal(ss_open_section(&r, "alpha", 7, 3, &version), 0);
    assert_int_equal(version, 3);
    ss_get_u8(&r, "u8", &u8);
    ss_get_u16(&r, "u16", &u16);
    ss_get_u32(&r, "u32", &u32);
    ss_get_u64(&r, "u64", &u64);
    ss_get_bool(&r, "b", &b);
    ss_get_bytes(&r, "bytes", bytes, 5);
    assert_int_equal(ss_get_string(&r, "str", str, sizeof(str)), 0);
    assert_int_equal(ss_close_section(&r), 0);
    assert_int_equal(u8, 0xa5);
    assert_int_equal(u16, 0xbeef);
    assert_int_equal(u32, 0xdeadbeef);
    assert_true(u64 == 0x0123456789abcdefull);
    assert_true(b);
    assert_memory_equal(bytes, "\x01\x02\x03\x04\x05", 5);
    assert_string_equal(str, "hello");
    /* beta-2 was never opened. */
    assert_int_equal(ss_reader_finish(&r), -EBADMSG);
    assert_non_null(strstr(ss_reader_error(&r), "unknown section 'beta-2'"));
    ss_reader_fini(&r);

    /* Reading past a section's end fails, naming section and field, and
     * the error sticks. */
    assert_int_equal(ss_reader_init(&r, s.buf, s.len), 0);
    assert_int_equal(ss_open_section(&r, "beta-2", 0xae00, 1, &version), 0);
    assert_int_equal(ss_get_u32(&r, "missing", &u32), -EBADMSG);
    assert_int_equal(u32, 0);
    assert_non_null(strstr(ss_reader_error(&r), "section 'beta-2' instance "
                                                "0xae00 v1, field 'missing': "
                                                "truncated"));
    assert_int_equal(ss_get_u8(&r, "next", &u8), -EBADMSG);
    assert_int_equal(ss_close_section(&r), -EBADMSG);
    ss_reader_fini(&r);

    /* A newer section version, a string that does not fit, leftovers. */
    assert_int_equal(ss_reader_init(&r, s.buf, s.len), 0);
    assert_int_equal(ss_open_section(&r, "alpha", 7, 2, &version),
                     -EPROTONOSUPPORT);
    assert_non_null(strstr(ss_reader_error(&r), "version 3"));
    ss_reader_fini(&r);
    assert_int_equal(ss_reader_init(&r, s.buf, s.len), 0);
    assert_int_equal(ss_open_section(&r, "alpha", 7, 3, &version), 0);
    ss_get_bytes(&r, "skip", skip, 1 + 2 + 4 + 8 + 1 + 5);
    assert_int_equal(ss_get_string(&r, "str", str, 5), -EINVAL);
    ss_reader_fini(&r);
    assert_int_equal(ss_reader_init(&r, s.buf, s.len), 0);
    assert_int_equal(ss_open_section(&r, "alpha", 7, 3, &version), 0);
    ss_get_u8(&r, "u8", &u8);
    assert_int_equal(ss_close_section(&r), -EBADMSG);
    assert_non_null(strstr(ss_reader_error(&r), "bytes left over"));
    ss_reader_fini(&r);
    /* A missing section. */
    assert_int_equal(ss_reader_init(&r, s.buf, s.len), 0);
    assert_int_equal(ss_open_section(&r, "gamma", 0, 1, &version), -EBADMSG);
    assert_non_null(
        strstr(ss_reader_error(&r), "'gamma' instance 0x0 missing"));
    ss_reader_fini(&r);
    /* Booleans are 0 or 1 only. */
    s.buf[section_offset(&s, "alpha", 7) + 15] = 2;
    ss_stream_reseal(s.buf, s.len);
    assert_int_equal(ss_reader_init(&r, s.buf, s.len), 0);
    assert_int_equal(ss_open_section(&r, "alpha", 7, 3, &version), 0);
    ss_get_bytes(&r, "skip", skip, 1 + 2 + 4 + 8);
    assert_int_equal(ss_get_bool(&r, "b", &b), -EINVAL);
    assert_non_null(strstr(ss_reader_error(&r), "not a boolean"));
    ss_reader_fini(&r);
    stream_free(&s);
}

static struct stream small_stream(void)
{
    struct ss_writer w;

    ss_writer_init(&w);
    ss_begin_section(&w, "one", 1, 1);
    ss_put_u32(&w, 0x11111111);
    ss_end_section(&w);
    ss_begin_section(&w, "two", 2, 1);
    ss_put_u32(&w, 0x22222222);
    ss_end_section(&w);
    assert_int_equal(ss_writer_finish(&w), 0);
    return stream_from_writer(&w);
}

/* Parses buf and returns the error, leaving the message in last_err. */
static int parse(const uint8_t *buf, size_t len)
{
    struct ss_reader r;
    int rc = ss_reader_init(&r, buf, len);

    snprintf(last_err, sizeof(last_err), "%s", ss_reader_error(&r));
    ss_reader_fini(&r);
    return rc;
}

static void test_format_structure_refused(void **state)
{
    struct stream good = small_stream(), s;
    size_t one = section_offset(&good, "one", 1);

    assert_int_equal(parse(good.buf, good.len), 0);

    s = stream_copy(&good);
    s.buf[0] = 'Q';
    assert_int_equal(parse(s.buf, s.len), -EBADMSG);
    assert_non_null(strstr(last_err, "magic"));
    stream_free(&s);

    s = stream_copy(&good);
    s.buf[4] = 2;
    assert_int_equal(parse(s.buf, s.len), -EPROTONOSUPPORT);
    assert_non_null(strstr(last_err, "format version 2"));
    stream_free(&s);

    /* CRC: one flipped bit anywhere is noticed. */
    s = stream_copy(&good);
    s.buf[one] ^= 0x10;
    assert_int_equal(parse(s.buf, s.len), -EBADMSG);
    assert_non_null(strstr(last_err, "CRC mismatch"));
    stream_free(&s);

    /* The declared length must be what is there, and bounded. */
    assert_int_equal(parse(good.buf, good.len - 1), -EBADMSG);
    assert_non_null(strstr(last_err, "truncated"));
    s = stream_copy(&good);
    s.buf[11] = 0x02; /* 32 MiB */
    assert_int_equal(parse(s.buf, s.len), -EFBIG);
    s.buf[11] = 0;
    s.buf[8] = 3;
    s.buf[9] = 0;
    s.buf[10] = 0;
    assert_int_equal(parse(s.buf, s.len), -EBADMSG);
    assert_non_null(strstr(last_err, "too short"));
    stream_free(&s);

    /* Over-long section length, in the parser proper. */
    s = stream_copy(&good);
    memcpy(s.buf + one - 4, "\xff\xff\xff\xff", 4);
    ss_stream_reseal(s.buf, s.len);
    assert_int_equal(parse(s.buf, s.len), -EBADMSG);
    assert_non_null(strstr(last_err, "claims 4294967295 bytes"));
    stream_free(&s);

    /* A section named twice. */
    s = stream_copy(&good);
    memcpy(s.buf + section_offset(&good, "two", 2) - 4 - 4 - 4 - 3, "one", 3);
    s.buf[section_offset(&good, "two", 2) - 12] = 1; /* instance 1 */
    ss_stream_reseal(s.buf, s.len);
    assert_int_equal(parse(s.buf, s.len), -EBADMSG);
    assert_non_null(strstr(last_err, "duplicate section 'one' instance 0x1"));
    stream_free(&s);

    /* Bad marker, bad name, bytes after the end marker. */
    s = stream_copy(&good);
    s.buf[SS_HEADER_SIZE] = 'X';
    ss_stream_reseal(s.buf, s.len);
    assert_int_equal(parse(s.buf, s.len), -EBADMSG);
    assert_non_null(strstr(last_err, "neither a section nor the end marker"));
    stream_free(&s);
    s = stream_copy(&good);
    s.buf[SS_HEADER_SIZE + 2] = 'O';
    ss_stream_reseal(s.buf, s.len);
    assert_int_equal(parse(s.buf, s.len), -EBADMSG);
    assert_non_null(strstr(last_err, "no valid name"));
    stream_free(&s);
    s = stream_copy(&good);
    s.buf[SS_HEADER_SIZE + 1] = 0; /* empty name */
    ss_stream_reseal(s.buf, s.len);
    assert_int_equal(parse(s.buf, s.len), -EBADMSG);
    stream_free(&s);
    s.len = good.len + 2;
    s.buf = calloc(1, s.len);
    memcpy(s.buf, good.buf, good.len - 4);
    ss_stream_reseal(s.buf, s.len);
    assert_int_equal(parse(s.buf, s.len), -EBADMSG);
    assert_non_null(strstr(last_err, "2 stray bytes after the end marker"));
    stream_free(&s);
    stream_free(&good);
}

static void test_format_every_truncation_parses_cleanly(void **state)
{
    struct stream good = small_stream();

    /* As read: the length no longer matches. */
    for (size_t len = 0; len < good.len; len++)
        assert_int_equal(parse(good.buf, len), -EBADMSG);
    /* Resealed, so the section walk itself meets the cut. */
    for (size_t len = SS_HEADER_SIZE; len + 4 < good.len; len++) {
        struct stream s = {.buf = calloc(1, len + 4), .len = len + 4};

        memcpy(s.buf, good.buf, len);
        ss_stream_reseal(s.buf, s.len);
        assert_int_equal(parse(s.buf, s.len), -EBADMSG);
        stream_free(&s);
    }
    stream_free(&good);
}

static void test_format_limits(void **state)
{
    struct ss_writer w;
    struct stream s;
    uint8_t *big = calloc(1, SS_MAX_STREAM + 1);
    char name[8];

    assert_non_null(big);
    ss_writer_init(&w);
    ss_begin_section(&w, "big", 0, 1);
    assert_int_equal(ss_put_bytes(&w, big, SS_MAX_STREAM), -EFBIG);
    assert_int_equal(ss_end_section(&w), -EFBIG);
    assert_int_equal(ss_writer_finish(&w), -EFBIG);
    ss_writer_fini(&w);
    free(big);

    /* One section more than the index holds. */
    ss_writer_init(&w);
    for (unsigned i = 0; i <= SS_MAX_SECTIONS; i++) {
        snprintf(name, sizeof(name), "s%u", i % 7);
        ss_begin_section(&w, name, i, 1);
        ss_end_section(&w);
    }
    assert_int_equal(ss_writer_finish(&w), 0);
    s = stream_from_writer(&w);
    assert_int_equal(parse(s.buf, s.len), -EBADMSG);
    assert_non_null(strstr(last_err, "more than 1024 sections"));
    stream_free(&s);

    /* Strings are bounded on both sides. */
    ss_writer_init(&w);
    big = calloc(1, SS_STRING_MAX + 2);
    memset(big, 'a', SS_STRING_MAX + 1);
    ss_begin_section(&w, "s", 0, 1);
    assert_int_equal(ss_put_string(&w, (char *)big), -ENAMETOOLONG);
    ss_writer_fini(&w);
    free(big);
}

static void test_format_fd(void **state)
{
    struct stream good = small_stream();
    struct ss_reader r;
    int pipefd[2], fd;
    char tail[8] = {0};
    uint32_t version, v;

    /* Written and read through a memfd. */
    fd = memfd_create("ss", 0);
    assert_int_equal(ss_write_fd(fd, good.buf, good.len), 0);
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(ss_reader_read_fd(&r, fd), 0);
    assert_int_equal(ss_open_section(&r, "two", 2, 1, &version), 0);
    ss_get_u32(&r, "v", &v);
    assert_int_equal(v, 0x22222222);
    ss_reader_fini(&r);
    close(fd);

    /* Exactly one stream is consumed from a pipe; what follows is left. */
    assert_int_equal(pipe(pipefd), 0);
    assert_int_equal(write(pipefd[1], good.buf, good.len), (ssize_t)good.len);
    assert_int_equal(write(pipefd[1], "after", 5), 5);
    close(pipefd[1]);
    assert_int_equal(ss_reader_read_fd(&r, pipefd[0]), 0);
    assert_int_equal(r.n_sections, 2);
    ss_reader_fini(&r);
    assert_int_equal(read(pipefd[0], tail, sizeof(tail)), 5);
    assert_string_equal(tail, "after");
    close(pipefd[0]);

    /* Every truncation of the file, the empty one included. */
    for (size_t len = 0; len < good.len; len++) {
        fd = memfd_with(good.buf, len);
        assert_int_equal(ss_reader_read_fd(&r, fd), -EBADMSG);
        assert_non_null(strstr(ss_reader_error(&r), "truncated"));
        ss_reader_fini(&r);
        close(fd);
    }
    /* A header declaring more than the limit is refused before anything is
     * allocated for it. */
    good.buf[11] = 0x40;
    fd = memfd_with(good.buf, good.len);
    assert_int_equal(ss_reader_read_fd(&r, fd), -EFBIG);
    ss_reader_fini(&r);
    close(fd);
    /* A closed descriptor. */
    assert_int_equal(ss_reader_read_fd(&r, fd), -EBADF);
    ss_reader_fini(&r);
    assert_true(ss_write_fd(fd, good.buf, good.len) < 0);
    stream_free(&good);
}

/* ---- device rigs --------------------------------------------------------- */

struct recorder {
    bool level[16];
    unsigned raises[16];
    int route[PIIX3_NUM_PIRQS];
    unsigned route_reports;
    int a20; /* -1: never told */
    int rom_lock;
    int rom_lock_rc;
    unsigned gpe_raised;
    unsigned removed[PCIHP_SLOTS];
};

static void rec_isa_irq(void *opaque, unsigned irq, bool level)
{
    struct recorder *r = opaque;

    assert_true(irq < 16);
    r->level[irq] = level;
    if (level)
        r->raises[irq]++;
}

static void rec_link_route(void *opaque, unsigned link, unsigned irq)
{
    struct recorder *r = opaque;

    assert_true(link < PIIX3_NUM_PIRQS);
    r->route[link] = (int)irq;
    r->route_reports++;
}

static const struct irq_sink_ops rec_ops = {
    .isa_irq = rec_isa_irq,
    .pci_link_route = rec_link_route,
};

struct rig {
    struct loop *loop;
    struct bus bus;
    struct pci_bus pci;
    struct pci_host host;
    struct recorder rec;
    struct irq_sink sink;
};

static struct rig *rig_new(void)
{
    struct rig *g = calloc(1, sizeof(*g));

    assert_non_null(g);
    assert_int_equal(loop_create(&g->loop), 0);
    bus_init(&g->bus);
    pci_bus_init(&g->pci, &g->bus);
    assert_int_equal(pci_host_init(&g->host, &g->bus), 0);
    g->rec.a20 = -1;
    g->rec.rom_lock = -1;
    for (unsigned i = 0; i < PIIX3_NUM_PIRQS; i++)
        g->rec.route[i] = -1;
    g->sink = (struct irq_sink){.ops = &rec_ops, .opaque = &g->rec};
    return g;
}

static void rig_free(struct rig *g)
{
    pci_host_fini(&g->host);
    bus_fini(&g->bus);
    loop_destroy(g->loop);
    free(g);
}

static uint32_t rd(struct rig *g, uint16_t port, unsigned size)
{
    return (uint32_t)bus_read(&g->bus, BUS_PIO, port, size);
}

static void wr(struct rig *g, uint16_t port, uint32_t v, unsigned size)
{
    bus_write(&g->bus, BUS_PIO, port, v, size);
}

static void cfg_wr(struct rig *g, uint8_t devfn, unsigned reg, uint32_t v,
                   unsigned size)
{
    bus_write(&g->bus, BUS_PCI_CFG, BUS_PCI_CFG_ADDR(devfn, reg), v, size);
}

static void assert_same_config(struct rig *a, struct rig *b, uint8_t devfn)
{
    for (unsigned reg = 0; reg < PCI_CONFIG_SIZE; reg += 4)
        assert_int_equal(
            bus_read(&a->bus, BUS_PCI_CFG, BUS_PCI_CFG_ADDR(devfn, reg), 4),
            bus_read(&b->bus, BUS_PCI_CFG, BUS_PCI_CFG_ADDR(devfn, reg), 4));
}

/* Save and load through function pointers of one type per device. */
struct dev_io {
    int (*save)(const void *dev, struct ss_writer *w);
    int (*load)(void *dev, struct ss_reader *r);
};

static struct stream save_dev(const struct dev_io *io, const void *dev)
{
    struct ss_writer w;

    ss_writer_init(&w);
    assert_int_equal(io->save(dev, &w), 0);
    assert_int_equal(ss_writer_finish(&w), 0);
    return stream_from_writer(&w);
}

static int load_dev(const struct dev_io *io, void *dev, const struct stream *s)
{
    struct ss_reader r;
    int rc = ss_reader_init(&r, s->buf, s->len);

    if (rc == 0)
        rc = io->load(dev, &r);
    if (rc == 0)
        rc = ss_reader_finish(&r);
    snprintf(last_err, sizeof(last_err), "%s", ss_reader_error(&r));
    ss_reader_fini(&r);
    return rc;
}

/* A copy of good with one payload byte changed must be refused with a
 * message naming want, and dev must come out exactly as it went in. */
static void expect_refused(const struct dev_io *io, void *dev,
                           const struct stream *good, const char *name,
                           uint32_t instance, size_t off, uint8_t value,
                           const char *want)
{
    struct stream bad = stream_copy(good);
    struct stream before = save_dev(io, dev), after;
    int rc;

    patch8(&bad, name, instance, off, value);
    rc = load_dev(io, dev, &bad);
    if (rc >= 0 || !strstr(last_err, want))
        fail_msg("byte %zu of '%s' = 0x%02x: rc %d, message '%s', wanted "
                 "'%s'", off, name, value, rc, last_err, want);
    after = save_dev(io, dev);
    assert_true(stream_equal(&before, &after));
    stream_free(&bad);
    stream_free(&before);
    stream_free(&after);
}

/* Payload offsets shared by every PCI device's section. */
#define PCI_OFF_CONFIG 0
#define PCI_OFF_BARS_MAPPED PCI_CONFIG_SIZE
#define PCI_OFF_DEVICE (PCI_CONFIG_SIZE + 1)

/* ---- uart ---------------------------------------------------------------- */

static int uart_save_v(const void *d, struct ss_writer *w)
{
    return uart_save(d, w);
}
static int uart_load_v(void *d, struct ss_reader *r)
{
    return uart_load(d, r);
}
static const struct dev_io uart_io = {uart_save_v, uart_load_v};

enum { U_RBR, U_IER, U_IIR, U_LCR, U_MCR, U_LSR, U_MSR, U_SCR };
#define U_BASE 0x3f8

/* Reads every register, the divisor and the whole receive FIFO, in an
 * order that is the same for both UARTs (reads have side effects). */
static unsigned uart_probe(struct rig *g, uint8_t *out)
{
    unsigned n = 0;
    uint8_t lcr;

    out[n++] = (uint8_t)rd(g, U_BASE + U_IIR, 1);
    out[n++] = lcr = (uint8_t)rd(g, U_BASE + U_LCR, 1);
    out[n++] = (uint8_t)rd(g, U_BASE + U_MCR, 1);
    out[n++] = (uint8_t)rd(g, U_BASE + U_MSR, 1);
    out[n++] = (uint8_t)rd(g, U_BASE + U_LSR, 1);
    out[n++] = (uint8_t)rd(g, U_BASE + U_IIR, 1);
    out[n++] = (uint8_t)rd(g, U_BASE + U_IER, 1);
    out[n++] = (uint8_t)rd(g, U_BASE + U_SCR, 1);
    wr(g, U_BASE + U_LCR, lcr | 0x80, 1);
    out[n++] = (uint8_t)rd(g, U_BASE + 0, 1);
    out[n++] = (uint8_t)rd(g, U_BASE + 1, 1);
    wr(g, U_BASE + U_LCR, lcr, 1);
    for (unsigned i = 0; i < UART_FIFO_SIZE + 1; i++)
        out[n++] = (uint8_t)rd(g, U_BASE + U_RBR, 1);
    out[n++] = (uint8_t)rd(g, U_BASE + U_LSR, 1);
    out[n++] = (uint8_t)rd(g, U_BASE + U_IIR, 1);
    return n;
}

static void test_uart_round_trip(void **state)
{
    struct rig *g1 = rig_new(), *g2 = rig_new(), *g3 = rig_new();
    struct uart u1, u2, u3;
    struct stream good, again, base;
    uint8_t p1[64], p2[64];
    unsigned n1, n2;

    assert_int_equal(uart_init(&u1, "serial0", &g1->bus, U_BASE, 4, &g1->sink,
                               g1->loop, NULL), 0);
    assert_int_equal(uart_init(&u2, "serial0", &g2->bus, U_BASE, 4, &g2->sink,
                               g2->loop, NULL), 0);
    assert_int_equal(uart_init(&u3, "serial0", &g3->bus, U_BASE, 4, &g3->sink,
                               g3->loop, NULL), 0);
    /* 38400 baud, 8 bits even parity, FIFO on with trigger 8, loopback. */
    wr(g1, U_BASE + U_LCR, 0x80, 1);
    wr(g1, U_BASE + 0, 0x03, 1);
    wr(g1, U_BASE + 1, 0x00, 1);
    wr(g1, U_BASE + U_LCR, 0x1b, 1);
    wr(g1, U_BASE + U_IIR, 0x81, 1);
    wr(g1, U_BASE + U_MCR, 0x18, 1);
    wr(g1, U_BASE + U_IER, 0x05, 1);
    /* 17 characters: 16 fit, the last overruns. Then 5 are read and 4
     * more written, so the FIFO's contents wrap around its buffer. */
    for (unsigned i = 0; i < 17; i++)
        wr(g1, U_BASE + U_RBR, 'A' + i, 1);
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(rd(g1, U_BASE + U_RBR, 1), 'A' + i);
    for (unsigned i = 0; i < 4; i++)
        wr(g1, U_BASE + U_RBR, 'a' + i, 1);
    wr(g1, U_BASE + U_MCR, 0x0b, 1); /* loopback off, OUT2 on */
    wr(g1, U_BASE + U_SCR, 0x5a, 1);
    assert_true(g1->rec.level[4]);
    assert_int_equal(u1.rx.count, 15);
    assert_int_equal(u1.rx.head, 5);

    good = save_dev(&uart_io, &u1);
    assert_int_equal(load_dev(&uart_io, &u2, &good), 0);
    /* The line follows the registers, the timeout runs again. */
    assert_true(g2->rec.level[4]);
    assert_int_equal(g2->rec.raises[4], 1);
    assert_true(u2.rx_timeout.armed);
    again = save_dev(&uart_io, &u2);
    assert_true(stream_equal(&good, &again));

    n1 = uart_probe(g1, p1);
    n2 = uart_probe(g2, p2);
    assert_int_equal(n1, n2);
    assert_memory_equal(p1, p2, n1);
    assert_int_equal(p1[0], 0xc6);  /* FIFOs on, line status interrupt */
    assert_int_equal(p1[4], 0x63);  /* THRE TEMT OE DR */
    assert_int_equal(p1[5], 0xc4);  /* now: data available */
    assert_int_equal(p1[8], 0x03);  /* DLL */
    assert_int_equal(p1[10], 'F');  /* first character left */
    assert_int_equal(p1[20], 'P');
    assert_int_equal(p1[21], 'a');
    assert_int_equal(p1[24], 'd');
    assert_int_equal(p1[25], 'd'); /* empty: the last one again */
    assert_false(g1->rec.level[4]);
    assert_false(g2->rec.level[4]);

    /* Hostile values, each refused with u3 untouched. */
    expect_refused(&uart_io, &u3, &good, "uart", U_BASE, 2, 0x10, "'ier'");
    expect_refused(&uart_io, &u3, &good, "uart", U_BASE, 4, 0x20, "'mcr'");
    expect_refused(&uart_io, &u3, &good, "uart", U_BASE, 5, 0x01,
                   "'lsr_errors'");
    expect_refused(&uart_io, &u3, &good, "uart", U_BASE, 6, 0x00, "'msr'");
    expect_refused(&uart_io, &u3, &good, "uart", U_BASE, 8, 0x02, "'fcr'");
    expect_refused(&uart_io, &u3, &good, "uart", U_BASE, 8, 0x40, "'fcr'");
    expect_refused(&uart_io, &u3, &good, "uart", U_BASE, 8, 0x00,
                   "'rx.count'");
    expect_refused(&uart_io, &u3, &good, "uart", U_BASE, 10, 16, "'rx.head'");
    expect_refused(&uart_io, &u3, &good, "uart", U_BASE, 10, 0xff,
                   "'rx.head'");
    expect_refused(&uart_io, &u3, &good, "uart", U_BASE, 11, 17,
                   "'rx.count'");
    expect_refused(&uart_io, &u3, &good, "uart", U_BASE, 28, 2,
                   "'thr_ipending'");
    base = stream_copy(&good);
    patch8(&base, "uart", U_BASE, 11, 0);
    assert_int_equal(load_dev(&uart_io, &u3, &base), 0);
    expect_refused(&uart_io, &u3, &base, "uart", U_BASE, 29, 1,
                   "'timeout_ipending'");
    /* The wrong port. */
    uart_fini(&u3);
    assert_int_equal(uart_init(&u3, "serial1", &g3->bus, UART_COM2_BASE, 3,
                               &g3->sink, g3->loop, NULL), 0);
    assert_int_equal(load_dev(&uart_io, &u3, &good), -EBADMSG);
    assert_non_null(strstr(last_err, "'uart' instance 0x2f8 missing"));

    stream_free(&base);
    stream_free(&good);
    stream_free(&again);
    uart_fini(&u1);
    uart_fini(&u2);
    uart_fini(&u3);
    rig_free(g1);
    rig_free(g2);
    rig_free(g3);
}

/* ---- cmos ---------------------------------------------------------------- */

static int cmos_save_v(const void *d, struct ss_writer *w)
{
    return cmos_save(d, w);
}
static int cmos_load_v(void *d, struct ss_reader *r)
{
    return cmos_load(d, r);
}
static const struct dev_io cmos_io = {cmos_save_v, cmos_load_v};

static void test_cmos_round_trip(void **state)
{
    struct rig *g1 = rig_new(), *g2 = rig_new();
    struct cmos_config cfg = {.ram_below_4g = 512u << 20, .ncpus = 2};
    struct cmos c1, c2;
    struct stream good;

    assert_int_equal(cmos_init(&c1, &g1->bus, &cfg), 0);
    cfg.ram_below_4g = 256u << 20; /* the guest's writes are what count */
    assert_int_equal(cmos_init(&c2, &g2->bus, &cfg), 0);
    wr(g1, 0x70, 0x40, 1);
    wr(g1, 0x71, 0x99, 1);
    wr(g1, 0x70, 0x17, 1);
    wr(g1, 0x71, 0x34, 1);
    wr(g1, 0x70, 0x8f, 1); /* NMI bit and the shutdown status byte */
    wr(g1, 0x71, 0xfe, 1);
    wr(g1, 0x70, 0x45, 1);

    good = save_dev(&cmos_io, &c1);
    assert_int_equal(load_dev(&cmos_io, &c2, &good), 0);
    assert_int_equal(c2.index, 0x45);
    assert_int_equal(rd(g2, 0x71, 1), rd(g1, 0x71, 1));
    for (unsigned i = 0; i < CMOS_SIZE; i++) {
        wr(g1, 0x70, i, 1);
        wr(g2, 0x70, i, 1);
        assert_int_equal(rd(g1, 0x71, 1), rd(g2, 0x71, 1));
    }
    assert_int_equal(cmos_get(&c2, 0x40), 0x99);
    assert_int_equal(cmos_get(&c2, 0x0f), 0xfe);
    assert_int_equal(cmos_get(&c2, 0x17), 0x34);
    expect_refused(&cmos_io, &c2, &good, "cmos", 0x70, 0, 0x80, "'index'");
    stream_free(&good);
    cmos_fini(&c1);
    cmos_fini(&c2);
    rig_free(g1);
    rig_free(g2);
}

/* ---- PCI host, i440FX, PIIX3, IDE ---------------------------------------- */

static int host_save_v(const void *d, struct ss_writer *w)
{
    return pci_host_save(d, w);
}
static int host_load_v(void *d, struct ss_reader *r)
{
    return pci_host_load(d, r);
}
static const struct dev_io host_io = {host_save_v, host_load_v};
static int i440fx_save_v(const void *d, struct ss_writer *w)
{
    return i440fx_save(d, w);
}
static int i440fx_load_v(void *d, struct ss_reader *r)
{
    return i440fx_load(d, r);
}
static const struct dev_io i440fx_io = {i440fx_save_v, i440fx_load_v};
static int piix3_save_v(const void *d, struct ss_writer *w)
{
    return piix3_save(d, w);
}
static int piix3_load_v(void *d, struct ss_reader *r)
{
    return piix3_load(d, r);
}
static const struct dev_io piix3_io = {piix3_save_v, piix3_load_v};
static int ide_save_v(const void *d, struct ss_writer *w)
{
    return piix_ide_save(d, w);
}
static int ide_load_v(void *d, struct ss_reader *r)
{
    return piix_ide_load(d, r);
}
static const struct dev_io ide_io = {ide_save_v, ide_load_v};

static void test_pci_host_and_i440fx_round_trip(void **state)
{
    struct rig *g1 = rig_new(), *g2 = rig_new(), *g3 = rig_new();
    struct i440fx n1, n2, n3;
    struct stream good, host;

    assert_int_equal(i440fx_init(&n1, &g1->pci), 0);
    assert_int_equal(i440fx_init(&n2, &g2->pci), 0);
    assert_int_equal(i440fx_init(&n3, &g3->pci), 0);
    i440fx_set_ram_size(&n1, 512u << 20);
    i440fx_set_ram_size(&n2, 512u << 20);
    i440fx_set_ram_size(&n3, 1024u << 20);
    cfg_wr(g1, 0, I440FX_PAM0, 0x30, 1);
    cfg_wr(g1, 0, I440FX_PAM0 + 1, 0x33333333, 4);
    cfg_wr(g1, 0, I440FX_SMRAM, 0x0a, 1);
    cfg_wr(g1, 0, PCI_COMMAND, 0x0006, 2);
    cfg_wr(g1, 0, PCI_CACHE_LINE_SIZE, 0x10, 1);
    wr(g1, 0xcf8, 0x80000810, 4);

    host = save_dev(&host_io, &g1->host);
    assert_int_equal(load_dev(&host_io, &g2->host, &host), 0);
    assert_int_equal(rd(g2, 0xcf8, 4), 0x80000810);
    good = save_dev(&i440fx_io, &n1);
    assert_int_equal(load_dev(&i440fx_io, &n2, &good), 0);
    assert_same_config(g1, g2, 0);
    assert_int_equal(n2.fn.config[I440FX_PAM0 + 4], 0x33);
    assert_int_equal(n2.fn.config[I440FX_SMRAM], 0x0a);

    /* A machine with other RAM: byte 0x57 is read-only and differs. */
    assert_int_equal(load_dev(&i440fx_io, &n3, &good), -EINVAL);
    assert_non_null(strstr(last_err, "byte 0x57 (device-specific) is 0x40"));
    assert_int_equal(n3.fn.config[I440FX_PAM0], 0);
    /* Read-only header bytes: class, header type, latency timer. */
    expect_refused(&i440fx_io, &n2, &good, "i440fx", 0, PCI_CLASS_DEVICE,
                   0x01, "class code");
    expect_refused(&i440fx_io, &n2, &good, "i440fx", 0, PCI_HEADER_TYPE,
                   0x80, "header type");
    expect_refused(&i440fx_io, &n2, &good, "i440fx", 0, PCI_LATENCY_TIMER,
                   0x40, "latency timer");
    expect_refused(&i440fx_io, &n2, &good, "i440fx", 0, PCI_VENDOR_ID, 0x87,
                   "state of PCI device 8087:1237");
    /* Its only BAR-less function has nothing to map. */
    expect_refused(&i440fx_io, &n2, &good, "i440fx", 0, PCI_OFF_BARS_MAPPED,
                   0x01, "BAR0 of 'i440FX' is not implemented");
    expect_refused(&i440fx_io, &n2, &good, "i440fx", 0, PCI_OFF_BARS_MAPPED,
                   0x80, "names BARs that do not exist");

    stream_free(&good);
    stream_free(&host);
    i440fx_fini(&n1);
    i440fx_fini(&n2);
    i440fx_fini(&n3);
    rig_free(g1);
    rig_free(g2);
    rig_free(g3);
}

static void rec_reset(void *opaque, const char *reason)
{
    fail_msg("load must not reset (%s)", reason);
}

static void rec_a20(void *opaque, bool on)
{
    struct recorder *r = opaque;

    r->a20 = on;
}

static void test_piix3_round_trip(void **state)
{
    struct rig *g1 = rig_new(), *g2 = rig_new();
    struct piix3 s1, s2;
    struct piix3_ops ops1 = {rec_reset, rec_a20, &g1->rec};
    struct piix3_ops ops2 = {rec_reset, rec_a20, &g2->rec};
    struct stream good;

    assert_int_equal(piix3_init(&s1, &g1->pci, &g1->host, &g1->bus, &g1->sink,
                                &ops1), 0);
    assert_int_equal(piix3_init(&s2, &g2->pci, &g2->host, &g2->bus, &g2->sink,
                                &ops2), 0);
    cfg_wr(g1, PIIX3_DEVFN, PIIX3_PIRQRC, 0x0a05800b, 4);
    cfg_wr(g1, PIIX3_DEVFN, PIIX3_XBCS, 0x0103, 2);
    cfg_wr(g1, PIIX3_DEVFN, PIIX3_TOM, 0x40, 1);
    cfg_wr(g1, PIIX3_DEVFN, PIIX3_SMIEN, 0x0101, 2);
    cfg_wr(g1, PIIX3_DEVFN, PIIX3_SEE, 0x12345678, 4);
    wr(g1, PIIX3_RCR_PORT, PIIX3_RCR_SRST, 1);
    wr(g1, PIIX3_PORT92, 0xa2, 1); /* A20 on, fast reset clear */
    g2->rec.route_reports = 0;

    good = save_dev(&piix3_io, &s1);
    assert_int_equal(load_dev(&piix3_io, &s2, &good), 0);
    assert_same_config(g1, g2, PIIX3_DEVFN);
    assert_int_equal(rd(g2, PIIX3_RCR_PORT, 1), PIIX3_RCR_SRST);
    assert_int_equal(rd(g2, PIIX3_PORT92, 1), 0xa2);
    /* Every route reported again, as the guest set them. */
    assert_int_equal(g2->rec.route_reports, 4);
    assert_int_equal(g2->rec.route[0], 11);
    assert_int_equal(g2->rec.route[1], 0);
    assert_int_equal(g2->rec.route[2], 5);
    assert_int_equal(g2->rec.route[3], 10);
    assert_int_equal(piix3_pirq_to_isa(&s2, 2), 5);
    assert_int_equal(g2->rec.a20, 1);
    assert_true(piix3_a20_enabled(&s2));

    expect_refused(&piix3_io, &s2, &good, "piix3", PIIX3_DEVFN,
                   PCI_OFF_DEVICE, 0x04, "'rcr'");
    /* A byte of the device-specific area with no register behind it. */
    expect_refused(&piix3_io, &s2, &good, "piix3", PIIX3_DEVFN, 0x50, 0x01,
                   "byte 0x50 (device-specific)");
    stream_free(&good);
    piix3_fini(&s1);
    piix3_fini(&s2);
    rig_free(g1);
    rig_free(g2);
}

static uint64_t dummy_read(void *opaque, uint64_t off, unsigned size)
{
    return 0x5a;
}

static const struct bus_region_ops dummy_ops = {.read = dummy_read};

static void test_piix_ide_round_trip(void **state)
{
    struct rig *g1 = rig_new(), *g2 = rig_new(), *g3 = rig_new();
    struct piix_ide s1, s2, s3;
    struct bus_region squatter;
    struct stream good;
    const uint16_t bm = 0xc100;

    assert_int_equal(piix_ide_init(&s1, &g1->pci), 0);
    assert_int_equal(piix_ide_init(&s2, &g2->pci), 0);
    assert_int_equal(piix_ide_init(&s3, &g3->pci), 0);
    cfg_wr(g1, PIIX_IDE_DEVFN, PCI_BASE_ADDRESS_0 + 4 * PIIX_IDE_BM_BAR,
           bm | 1, 4);
    cfg_wr(g1, PIIX_IDE_DEVFN, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MASTER,
           2);
    cfg_wr(g1, PIIX_IDE_DEVFN, PIIX_IDE_IDETIM_PRI, 0x80008000, 4);
    cfg_wr(g1, PIIX_IDE_DEVFN, PIIX_IDE_SIDETIM, 0x11, 1);
    wr(g1, bm + PIIX_IDE_BMIDTP, 0x12345678, 4);
    wr(g1, bm + PIIX_IDE_BMISTA, 0x60, 1);
    wr(g1, bm + PIIX_IDE_BMICOM, 0x09, 1);
    wr(g1, bm + 8 + PIIX_IDE_BMIDTP, 0xabcdef03, 4);
    wr(g1, bm + 8 + PIIX_IDE_BMICOM, 0x08, 1);
    assert_non_null(bus_find(&g1->bus, BUS_PIO, bm));

    good = save_dev(&ide_io, &s1);
    assert_int_equal(load_dev(&ide_io, &s2, &good), 0);
    assert_same_config(g1, g2, PIIX_IDE_DEVFN);
    /* BAR4 decodes at the same place, with the same registers behind it. */
    assert_ptr_equal(bus_find(&g2->bus, BUS_PIO, bm), &s2.fn.bar[4].region);
    for (unsigned off = 0; off < PIIX_IDE_BM_SIZE; off++)
        assert_int_equal(rd(g1, bm + off, 1), rd(g2, bm + off, 1));
    assert_int_equal(rd(g2, bm + PIIX_IDE_BMISTA, 1), 0x61);
    assert_int_equal(rd(g2, bm + 8 + PIIX_IDE_BMIDTP, 4), 0xabcdef00);

    expect_refused(&ide_io, &s3, &good, "piix-ide", PIIX_IDE_DEVFN,
                   PCI_OFF_DEVICE, 0x80, "'bm[0].cmd'");
    expect_refused(&ide_io, &s3, &good, "piix-ide", PIIX_IDE_DEVFN,
                   PCI_OFF_DEVICE + 1, 0x81, "'bm[0].status'");
    expect_refused(&ide_io, &s3, &good, "piix-ide", PIIX_IDE_DEVFN,
                   PCI_OFF_DEVICE + 1, 0x60, "BMIDEA clear while SSBM is set");
    expect_refused(&ide_io, &s3, &good, "piix-ide", PIIX_IDE_DEVFN,
                   PCI_OFF_DEVICE + 8, 0x01, "'bm[1].prd'");
    /* BAR type bits are the device's, not the guest's. */
    expect_refused(&ide_io, &s3, &good, "piix-ide", PIIX_IDE_DEVFN,
                   PCI_BASE_ADDRESS_0 + 4 * PIIX_IDE_BM_BAR, 0x00,
                   "byte 0x20 (BAR)");
    /* Marked decoding with I/O decoding off in the command register. */
    expect_refused(&ide_io, &s3, &good, "piix-ide", PIIX_IDE_DEVFN,
                   PCI_COMMAND, 0x04, "does not enable it");
    expect_refused(&ide_io, &s3, &good, "piix-ide", PIIX_IDE_DEVFN,
                   PCI_OFF_BARS_MAPPED, 0x11, "BAR0 of 'piix3-ide' is not "
                   "implemented");
    /* Something else holds the BAR's range on the target: nothing moves. */
    bus_region_init(&squatter, "squatter", 4, &dummy_ops, NULL);
    assert_int_equal(bus_map(&g3->bus, BUS_PIO, &squatter, bm + 12), 0);
    assert_int_equal(load_dev(&ide_io, &s3, &good), -EINVAL);
    assert_non_null(strstr(last_err, "BAR4 at 0xc100 cannot decode"));
    assert_int_equal(s3.fn.config[PCI_COMMAND], 0);
    assert_int_equal(s3.bm[0].prd, 0);
    assert_false(s3.fn.bar[4].region.mapped);
    bus_unmap(&g3->bus, &squatter);
    assert_int_equal(load_dev(&ide_io, &s3, &good), 0);
    assert_true(s3.fn.bar[4].region.mapped);

    stream_free(&good);
    piix_ide_fini(&s1);
    piix_ide_fini(&s2);
    piix_ide_fini(&s3);
    rig_free(g1);
    rig_free(g2);
    rig_free(g3);
}

/* ---- PIIX4 PM ------------------------------------------------------------ */

static int pm_save_v(const void *d, struct ss_writer *w)
{
    return piix4_pm_save(d, w);
}
static int pm_load_v(void *d, struct ss_reader *r)
{
    return piix4_pm_load(d, r);
}
static const struct dev_io pm_io = {pm_save_v, pm_load_v};

#define PM_OFF(field_off) (PCI_OFF_DEVICE + (field_off))
enum { PM_FIXED = 0, PM_SCI_EN = 1, PM_CNT = 2, PM_APM_CNT = 4, PM_APM_STS = 5,
       PM_GPE_STS = 6, PM_GPE_EN = 8, PM_CPU_MAP = 10,
       PM_MAPPED = 10 + PIIX4_CPU_MAP_LEN };

static void test_piix4_pm_round_trip(void **state)
{
    struct rig *g1 = rig_new(), *g2 = rig_new(), *g3 = rig_new(),
               *g4 = rig_new();
    struct piix4_pm_config cfg = {.ncpus_online = 2};
    struct piix4_pm_config trad = {.fixed_pmba = true, .sci_en_at_reset = true,
                                   .ncpus_online = 2};
    struct piix4_pm pm1, pm2, pm3, pm4;
    struct bus_region squatter;
    struct stream good, fresh;

    assert_int_equal(piix4_pm_init(&pm1, &g1->pci, &g1->bus, &g1->sink, &cfg,
                                   NULL), 0);
    assert_int_equal(piix4_pm_init(&pm2, &g2->pci, &g2->bus, &g2->sink, &cfg,
                                   NULL), 0);
    assert_int_equal(piix4_pm_init(&pm3, &g3->pci, &g3->bus, &g3->sink, &cfg,
                                   NULL), 0);
    assert_int_equal(piix4_pm_init(&pm4, &g4->pci, &g4->bus, &g4->sink, &trad,
                                   NULL), 0);
    cfg_wr(g1, PIIX4_PM_DEVFN, PIIX4_PMBA, 0xc000, 4);
    cfg_wr(g1, PIIX4_PM_DEVFN, PIIX4_PMREGMISC, 1, 1);
    cfg_wr(g1, PIIX4_PM_DEVFN, PIIX4_SMBHSTCFG, 0, 1);
    wr(g1, 0xc004, 0x0400, 2);
    wr(g1, PIIX4_APM_CNT_PORT, PIIX4_ACPI_ENABLE, 1);
    wr(g1, PIIX4_APM_STS_PORT, 0x77, 1);
    wr(g1, PIIX4_GPE0_BASE + 2, 0x0a, 1);
    piix4_pm_gpe_raise(&pm1, 1);
    assert_int_equal(piix4_pm_set_cpu_online(&pm1, 5, true), 0);
    assert_true(g1->rec.level[PIIX4_SCI_IRQ]);
    fresh = save_dev(&pm_io, &pm3);

    good = save_dev(&pm_io, &pm1);
    assert_int_equal(load_dev(&pm_io, &pm2, &good), 0);
    assert_true(g2->rec.level[PIIX4_SCI_IRQ]);
    assert_ptr_equal(bus_find(&g2->bus, BUS_PIO, 0xc004),
                     &pm2.pm1_cnt_region);
    assert_same_config(g1, g2, PIIX4_PM_DEVFN);
    assert_int_equal(rd(g2, 0xc004, 2), 0x0401);
    assert_int_equal(rd(g2, PIIX4_APM_CNT_PORT, 1), PIIX4_ACPI_ENABLE);
    assert_int_equal(rd(g2, PIIX4_APM_STS_PORT, 1), 0x77);
    for (unsigned i = 0; i < PIIX4_GPE0_LEN; i++)
        assert_int_equal(rd(g1, PIIX4_GPE0_BASE + i, 1),
                         rd(g2, PIIX4_GPE0_BASE + i, 1));
    assert_int_equal(rd(g2, PIIX4_GPE0_BASE, 1), 0x06);
    for (unsigned i = 0; i < PIIX4_CPU_MAP_LEN; i++)
        assert_int_equal(rd(g1, PIIX4_CPU_MAP_BASE + i, 1),
                         rd(g2, PIIX4_CPU_MAP_BASE + i, 1));
    assert_int_equal(rd(g2, PIIX4_CPU_MAP_BASE, 1), 0x23);
    /* And back to power-on: the block stops decoding, the SCI drops. */
    assert_int_equal(load_dev(&pm_io, &pm2, &fresh), 0);
    assert_false(g2->rec.level[PIIX4_SCI_IRQ]);
    assert_null(bus_find(&g2->bus, BUS_PIO, 0xc004));

    expect_refused(&pm_io, &pm3, &good, "piix4-pm", PIIX4_PM_DEVFN,
                   PM_OFF(PM_FIXED), 1, "'fixed_pmba'");
    expect_refused(&pm_io, &pm3, &good, "piix4-pm", PIIX4_PM_DEVFN,
                   PM_OFF(PM_CNT + 1), 0x24, "'pm1_cnt'");
    expect_refused(&pm_io, &pm3, &good, "piix4-pm", PIIX4_PM_DEVFN,
                   PM_OFF(PM_CPU_MAP + 16), 0x01, "'cpu_map'");
    expect_refused(&pm_io, &pm3, &good, "piix4-pm", PIIX4_PM_DEVFN,
                   PIIX4_PMREGMISC, 0, "PMIOSE clear");
    expect_refused(&pm_io, &pm3, &good, "piix4-pm", PIIX4_PM_DEVFN,
                   PM_OFF(PM_MAPPED), 2, "'pm1_cnt_mapped'");
    /* PMBA's bit 0 is the I/O indicator, read-only. */
    expect_refused(&pm_io, &pm3, &good, "piix4-pm", PIIX4_PM_DEVFN,
                   PIIX4_PMBA, 0x00, "byte 0x40");
    /* qemu-trad's PM block is another device. */
    assert_int_equal(load_dev(&pm_io, &pm4, &good), -EINVAL);
    assert_non_null(strstr(last_err, "state of a qemu-xen PM device, this "
                                     "one is qemu-trad"));
    /* The PM block's new place is taken on the target. */
    bus_region_init(&squatter, "squatter", 1, &dummy_ops, NULL);
    assert_int_equal(bus_map(&g3->bus, BUS_PIO, &squatter, 0xc005), 0);
    assert_int_equal(load_dev(&pm_io, &pm3, &good), -EINVAL);
    assert_non_null(strstr(last_err, "PM1a_CNT at 0xc004 cannot decode"));
    assert_false(g3->rec.level[PIIX4_SCI_IRQ]);
    assert_int_equal(pm3.fn.config[PIIX4_PMREGMISC], 0);
    bus_unmap(&g3->bus, &squatter);

    stream_free(&good);
    stream_free(&fresh);
    piix4_pm_fini(&pm1);
    piix4_pm_fini(&pm2);
    piix4_pm_fini(&pm3);
    piix4_pm_fini(&pm4);
    rig_free(g1);
    rig_free(g2);
    rig_free(g3);
    rig_free(g4);
}

/* ---- Xen platform device ------------------------------------------------- */

static int plat_save_v(const void *d, struct ss_writer *w)
{
    return xen_platform_save(d, w);
}
static int plat_load_v(void *d, struct ss_reader *r)
{
    return xen_platform_load(d, r);
}
static const struct dev_io plat_io = {plat_save_v, plat_load_v};

static int rec_rom_lock(void *opaque, bool lock)
{
    struct recorder *r = opaque;

    if (r->rom_lock_rc)
        return r->rom_lock_rc;
    r->rom_lock = lock;
    return 0;
}

static bool always_blacklisted(void *opaque, uint16_t product, uint32_t build)
{
    return true;
}

#define PLAT_DEVFN PCI_DEVFN(2, 0)
enum { PL_FLAGS = 0, PL_PRODUCT = 1, PL_PRODUCT_REP = 3, PL_BUILD = 4,
       PL_BUILD_REP = 8, PL_BLACKLISTED = 9, PL_LOG_LEN = 10, PL_LOG = 12 };

static void test_xen_platform_round_trip(void **state)
{
    struct rig *g[3];
    struct xen_platform p[3];
    struct stream good;
    char *logbuf = NULL;
    size_t loglen = 0;
    FILE *logs;

    for (unsigned i = 0; i < 3; i++) {
        struct xen_platform_ops ops = {.set_rom_lock = rec_rom_lock,
                                       .is_blacklisted = always_blacklisted};

        g[i] = rig_new();
        ops.opaque = &g[i]->rec;
        assert_int_equal(xen_platform_init(&p[i], &g[i]->pci, &g[i]->bus,
                                           PLAT_DEVFN, &ops), 0);
    }
    wr(g[0], 0x12, 0x0003, 2);
    wr(g[0], 0x10, 0x1234, 4);
    wr(g[0], 0x10, XEN_PLATFORM_FLAG_ROM_LOCK, 1);
    for (const char *c = "hello"; *c; c++)
        wr(g[0], 0x12, (uint8_t)*c, 1);
    cfg_wr(g[0], PLAT_DEVFN, PCI_BASE_ADDRESS_0, 0xc200, 4);
    cfg_wr(g[0], PLAT_DEVFN, PCI_BASE_ADDRESS_0 + 4, 0xf0000000, 4);
    cfg_wr(g[0], PLAT_DEVFN, 0x40, 0xcafe, 2);
    assert_int_equal(rd(g[0], 0x10, 2), XEN_PLATFORM_MAGIC_BLACKLISTED);

    good = save_dev(&plat_io, &p[0]);
    assert_int_equal(load_dev(&plat_io, &p[1], &good), 0);
    assert_int_equal(g[1]->rec.rom_lock, 1);
    assert_same_config(g[0], g[1], PLAT_DEVFN);
    assert_int_equal(rd(g[1], 0x10, 2), XEN_PLATFORM_MAGIC_BLACKLISTED);
    assert_int_equal(rd(g[1], 0x10, 1), XEN_PLATFORM_FLAG_ROM_LOCK);
    assert_int_equal(rd(g[1], 0xc200, 1), XEN_PLATFORM_FLAG_ROM_LOCK);
    assert_ptr_equal(bus_find(&g[1]->bus, BUS_MMIO, 0xf0000000),
                     &p[1].fn.bar[1].region);
    assert_int_equal(p[1].product, 3);
    assert_int_equal(p[1].build, 0x1234);
    /* The partial log line goes on where it stopped. */
    logs = open_memstream(&logbuf, &loglen);
    log_set_stream(logs);
    log_set_level(LOG_INFO);
    for (const char *c = " world\n"; *c; c++)
        wr(g[1], 0x12, (uint8_t)*c, 1);
    log_set_level(LOG_ERR);
    log_set_stream(quiet_log);
    fclose(logs);
    assert_non_null(strstr(logbuf, "guest: hello world"));
    free(logbuf);

    expect_refused(&plat_io, &p[2], &good, "xen-platform", PLAT_DEVFN,
                   PCI_OFF_DEVICE + PL_FLAGS, 0x02, "'flags'");
    expect_refused(&plat_io, &p[2], &good, "xen-platform", PLAT_DEVFN,
                   PCI_OFF_DEVICE + PL_PRODUCT_REP, 0, "'product'");
    expect_refused(&plat_io, &p[2], &good, "xen-platform", PLAT_DEVFN,
                   PCI_OFF_DEVICE + PL_BUILD_REP, 0, "'build'");
    expect_refused(&plat_io, &p[2], &good, "xen-platform", PLAT_DEVFN,
                   PCI_OFF_DEVICE + PL_LOG_LEN + 1, 1, "'log_len'");
    expect_refused(&plat_io, &p[2], &good, "xen-platform", PLAT_DEVFN,
                   PCI_OFF_DEVICE + PL_LOG + 2, 0x1b, "'log_line'");
    /* Log length longer than what follows: the read runs out. */
    expect_refused(&plat_io, &p[2], &good, "xen-platform", PLAT_DEVFN,
                   PCI_OFF_DEVICE + PL_LOG_LEN, 0xff, "truncated");
    /* The host refuses the ROM lock: nothing is loaded. */
    g[2]->rec.rom_lock_rc = -EPERM;
    assert_int_equal(load_dev(&plat_io, &p[2], &good), -EINVAL);
    assert_non_null(strstr(last_err, "cannot lock the ROM area"));
    assert_int_equal(p[2].flags, 0);
    assert_int_equal(p[2].product, 0);
    assert_false(p[2].fn.bar[0].region.mapped);
    assert_int_equal(pci_get_long(&p[2].fn.config[PCI_BASE_ADDRESS_0]), 1);

    stream_free(&good);
    for (unsigned i = 0; i < 3; i++) {
        xen_platform_fini(&p[i]);
        rig_free(g[i]);
    }
}

/* ---- pci-testdev --------------------------------------------------------- */

static int tdev_save_v(const void *d, struct ss_writer *w)
{
    return pci_testdev_save(d, w);
}
static int tdev_load_v(void *d, struct ss_reader *r)
{
    return pci_testdev_load(d, r);
}
static const struct dev_io tdev_io = {tdev_save_v, tdev_load_v};

#define TDEV_DEVFN PCI_DEVFN(5, 0)

static void test_pci_testdev_round_trip(void **state)
{
    struct rig *g1 = rig_new(), *g2 = rig_new();
    struct pci_testdev *d1, *d2;
    struct stream good;

    assert_int_equal(pci_testdev_create(&g1->pci, TDEV_DEVFN, "t1", &d1), 0);
    assert_int_equal(pci_testdev_create(&g2->pci, TDEV_DEVFN, "t1", &d2), 0);
    cfg_wr(g1, TDEV_DEVFN, PCI_BASE_ADDRESS_0, 0xe0000000, 4);
    cfg_wr(g1, TDEV_DEVFN, PCI_BASE_ADDRESS_0 + 4, 0xc300, 4);
    cfg_wr(g1, TDEV_DEVFN, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY, 2);
    /* portio-no-eventfd: its trigger byte counts every 0xFA written. */
    wr(g1, 0xc300, 0, 1);
    for (unsigned i = 0; i < 3; i++)
        wr(g1, 0xc300 + 128 + 3, PCI_TESTDEV_DATAMATCH, 1);
    assert_int_equal(rd(g1, 0xc300 + PCI_TESTDEV_HDR_COUNT, 4), 3);

    good = save_dev(&tdev_io, d1);
    assert_int_equal(load_dev(&tdev_io, d2, &good), 0);
    assert_same_config(g1, g2, TDEV_DEVFN);
    assert_int_equal(d2->current, 3);
    for (unsigned off = 0; off < 48; off++) {
        assert_int_equal(rd(g1, 0xc300 + off, 1), rd(g2, 0xc300 + off, 1));
        assert_int_equal(bus_read(&g1->bus, BUS_MMIO, 0xe0000000 + off, 1),
                         bus_read(&g2->bus, BUS_MMIO, 0xe0000000 + off, 1));
    }
    assert_int_equal(rd(g2, 0xc300 + PCI_TESTDEV_HDR_COUNT, 4), 3);
    wr(g2, 0xc300 + 128 + 3, PCI_TESTDEV_DATAMATCH, 1);
    assert_int_equal(rd(g2, 0xc300 + PCI_TESTDEV_HDR_COUNT, 4), 4);

    expect_refused(&tdev_io, d2, &good, "pci-testdev", TDEV_DEVFN,
                   PCI_OFF_DEVICE, 6, "'current'");
    expect_refused(&tdev_io, d2, &good, "pci-testdev", TDEV_DEVFN,
                   PCI_OFF_DEVICE + 3, 0x7f, "'current'");
    /* Interrupt pin: the testdev has none, and the guest cannot add one. */
    expect_refused(&tdev_io, d2, &good, "pci-testdev", TDEV_DEVFN,
                   PCI_INTERRUPT_PIN, 1, "interrupt pin");
    stream_free(&good);
    pci_testdev_destroy(d1);
    pci_testdev_destroy(d2);
    rig_free(g1);
    rig_free(g2);
}

/* ---- PCI hot-plug controller --------------------------------------------- */

static int hp_save_v(const void *d, struct ss_writer *w)
{
    return pcihp_save(d, w);
}
static int hp_load_v(void *d, struct ss_reader *r)
{
    return pcihp_load(d, r);
}
static const struct dev_io hp_io = {hp_save_v, hp_load_v};

struct hp_rig {
    struct rig *g;
    struct pcihp hp;
    struct pci_function chipset, a, b0, b1;
};

static void hp_raise(void *opaque, unsigned bit)
{
    struct hp_rig *h = opaque;

    h->g->rec.gpe_raised |= 1u << bit;
}

static void hp_unplug(void *opaque, uint8_t devfn)
{
    struct hp_rig *h = opaque;

    pci_unregister_function(pci_find_function(&h->g->pci, devfn));
}

static void hp_removed(void *opaque, unsigned slot, bool requested)
{
    struct hp_rig *h = opaque;

    h->g->rec.removed[slot] += requested ? 1 : 100;
}

#define HP_A PCI_DEVFN(3, 0)
#define HP_B0 PCI_DEVFN(4, 0)
#define HP_B1 PCI_DEVFN(4, 1)

/* A non-hot-pluggable function in slot 1, then the controller, then
 * (registered but not announced) slot 3 and a two-function slot 4. */
static struct hp_rig *hp_rig_new(enum pcihp_layout layout)
{
    struct hp_rig *h = calloc(1, sizeof(*h));
    struct pcihp_ops ops = {hp_raise, hp_unplug, hp_removed, h};

    assert_non_null(h);
    h->g = rig_new();
    pci_function_init(&h->chipset, "chipset", 0x8086, 0x1111, 0x060000, 0,
                      NULL, NULL);
    h->chipset.hotpluggable = false;
    assert_int_equal(pci_register_function(&h->g->pci, &h->chipset,
                                           PCI_DEVFN(1, 0)), 0);
    assert_int_equal(pcihp_init(&h->hp, &h->g->bus, &h->g->pci, layout, &ops),
                     0);
    pci_function_init(&h->a, "a", 0x1234, 0x0001, 0xff0000, 0, NULL, NULL);
    pci_function_init(&h->b0, "b0", 0x1234, 0x0002, 0xff0000, 0, NULL, NULL);
    pci_function_init(&h->b1, "b1", 0x1234, 0x0003, 0xff0000, 0, NULL, NULL);
    assert_int_equal(pci_register_function(&h->g->pci, &h->a, HP_A), 0);
    assert_int_equal(pci_register_function(&h->g->pci, &h->b1, HP_B1), 0);
    assert_int_equal(pci_register_function(&h->g->pci, &h->b0, HP_B0), 0);
    return h;
}

static void hp_rig_free(struct hp_rig *h)
{
    pcihp_fini(&h->hp);
    pci_unregister_function(&h->a);
    pci_unregister_function(&h->b0);
    pci_unregister_function(&h->b1);
    pci_unregister_function(&h->chipset);
    rig_free(h->g);
    free(h);
}

/* What the guest's _L03 sees, one event at a time, until the queue is
 * empty: PSTA, PSTB and the status bytes; ejecting a removed slot. */
static unsigned hp_guest_drain(struct hp_rig *h, uint8_t *out)
{
    unsigned n = 0;

    for (unsigned round = 0; round < 8 && pcihp_queued_events(&h->hp);
         round++) {
        uint8_t code = (uint8_t)rd(h->g, PCIHP_QEMU_TRAD_BASE + PCIHP_PSTA, 1);
        uint8_t devfn = (uint8_t)rd(h->g, PCIHP_QEMU_TRAD_BASE + PCIHP_PSTB, 1);

        out[n++] = code;
        out[n++] = devfn;
        for (unsigned off = PCIHP_PH00; off < PCIHP_QEMU_TRAD_LEN; off++)
            out[n++] = (uint8_t)rd(h->g, PCIHP_QEMU_TRAD_BASE + off, 1);
        if (code == PCIHP_EVENT_REMOVE)
            wr(h->g, PCIHP_QEMU_TRAD_BASE + PCIHP_PH00 + devfn / 2,
               devfn & 1 ? PCIHP_EJECT_ODD : PCIHP_EJECT_EVEN, 1);
        pcihp_gpe_acked(&h->hp, PCIHP_QEMU_TRAD_GPE_BIT);
    }
    return n;
}

enum { HP_LAYOUT = 0, HP_PRESENT = 1, HP_HOTPLUGGABLE = 33, HP_PENDING = 37,
       HP_QLEN = 41, HP_QUEUE = 42 };

static struct stream hp_stream(const struct pcihp *hp, uint8_t layout,
                               uint8_t qlen, const struct pcihp_event *q,
                               bool head_read)
{
    struct ss_writer w;

    ss_writer_init(&w);
    ss_begin_section(&w, "pcihp", (uint32_t)hp->region.base, 1);
    ss_put_u8(&w, layout);
    ss_put_bytes(&w, hp->functions_present, sizeof(hp->functions_present));
    ss_put_u32(&w, hp->hotpluggable);
    ss_put_u32(&w, 0);
    ss_put_u8(&w, qlen);
    for (unsigned i = 0; i < qlen; i++) {
        ss_put_u8(&w, q[i].code);
        ss_put_u8(&w, q[i].devfn);
    }
    ss_put_bool(&w, head_read);
    ss_end_section(&w);
    assert_int_equal(ss_writer_finish(&w), 0);
    return stream_from_writer(&w);
}

static void test_pcihp_round_trip(void **state)
{
    struct hp_rig *h1 = hp_rig_new(PCIHP_LAYOUT_QEMU_TRAD);
    struct hp_rig *h2 = hp_rig_new(PCIHP_LAYOUT_QEMU_TRAD);
    struct hp_rig *h3 = hp_rig_new(PCIHP_LAYOUT_QEMU_TRAD);
    struct hp_rig *hx = hp_rig_new(PCIHP_LAYOUT_QEMU_XEN);
    struct pcihp_event ev = {PCIHP_EVENT_INSERT, HP_A};
    struct stream good, again, base, odd;
    uint8_t p1[1024], p2[1024];
    unsigned n1, n2;

    /* h1: slot 3 and then slot 4 (function 1 first) hot-plugged, slot 3's
     * removal requested, the guest has read the first event. h2 and h3
     * only have the functions registered, as a restored machine does. */
    assert_int_equal(pcihp_plugged(&h1->hp, HP_A, PCIHP_PLUG_HOT), 0);
    assert_int_equal(pcihp_plugged(&h1->hp, HP_B1, PCIHP_PLUG_HOT), 0);
    assert_int_equal(pcihp_plugged(&h1->hp, HP_B0, PCIHP_PLUG_HOT), 0);
    assert_int_equal(pcihp_request_unplug(&h1->hp, 3), 0);
    assert_int_equal(rd(h1->g, PCIHP_QEMU_TRAD_BASE + PCIHP_PSTB, 1), HP_A);
    assert_int_equal(pcihp_queued_events(&h1->hp), 3);

    good = save_dev(&hp_io, &h1->hp);
    h2->g->rec.gpe_raised = 0;
    assert_int_equal(load_dev(&hp_io, &h2->hp, &good), 0);
    assert_int_equal(h2->g->rec.gpe_raised, 0); /* the PM device's state */
    assert_int_equal(pcihp_queued_events(&h2->hp), 3);
    assert_true(h2->hp.head_read);
    assert_int_equal(pcihp_down(&h2->hp), 1u << 3);
    again = save_dev(&hp_io, &h2->hp);
    assert_true(stream_equal(&good, &again));

    n1 = hp_guest_drain(h1, p1);
    n2 = hp_guest_drain(h2, p2);
    assert_int_equal(n1, n2);
    assert_int_equal(n1, 3 * (2 + 0x80));
    assert_memory_equal(p1, p2, n1);
    /* insert 00:03.0 (read already), insert 00:04.0, remove 00:03.0 */
    assert_int_equal(p1[0], PCIHP_EVENT_INSERT);
    assert_int_equal(p1[1], HP_A);
    assert_int_equal(p1[130], PCIHP_EVENT_INSERT);
    assert_int_equal(p1[131], HP_B0);
    assert_int_equal(p1[260], PCIHP_EVENT_REMOVE);
    assert_int_equal(p1[261], HP_A);
    assert_int_equal(h2->g->rec.removed[3], 1);
    assert_null(pci_find_function(&h2->g->pci, HP_A));
    assert_int_equal(pcihp_down(&h2->hp), 0);

    expect_refused(&hp_io, &h3->hp, &good, "pcihp", PCIHP_QEMU_TRAD_BASE,
                   HP_LAYOUT, 0, "'layout'");
    expect_refused(&hp_io, &h3->hp, &good, "pcihp", PCIHP_QEMU_TRAD_BASE,
                   HP_PRESENT + 9, 0x01, "slot 9 functions 0x01 marked present");
    expect_refused(&hp_io, &h3->hp, &good, "pcihp", PCIHP_QEMU_TRAD_BASE,
                   HP_PRESENT + 4, 0x07, "'functions_present'");
    expect_refused(&hp_io, &h3->hp, &good, "pcihp", PCIHP_QEMU_TRAD_BASE,
                   HP_HOTPLUGGABLE, 0xff, "'hotpluggable'");
    expect_refused(&hp_io, &h3->hp, &good, "pcihp", PCIHP_QEMU_TRAD_BASE,
                   HP_PENDING, 0x0a, "'removal_pending'");
    expect_refused(&hp_io, &h3->hp, &good, "pcihp", PCIHP_QEMU_TRAD_BASE,
                   HP_PENDING, 0x28, "'removal_pending'");
    expect_refused(&hp_io, &h3->hp, &good, "pcihp", PCIHP_QEMU_TRAD_BASE,
                   HP_QLEN, PCIHP_QUEUE_LEN + 1, "'queue_len'");
    expect_refused(&hp_io, &h3->hp, &good, "pcihp", PCIHP_QEMU_TRAD_BASE,
                   HP_QLEN, 0xff, "'queue_len'");
    expect_refused(&hp_io, &h3->hp, &good, "pcihp", PCIHP_QEMU_TRAD_BASE,
                   HP_QUEUE, 2, "event 0 has code 2");
    expect_refused(&hp_io, &h3->hp, &good, "pcihp", PCIHP_QEMU_TRAD_BASE,
                   HP_QUEUE + 3, PCI_DEVFN(9, 0), "not present");
    expect_refused(&hp_io, &h3->hp, &good, "pcihp", PCIHP_QEMU_TRAD_BASE,
                   HP_QUEUE + 3, HP_B1, "not function 0");
    expect_refused(&hp_io, &h3->hp, &good, "pcihp", PCIHP_QEMU_TRAD_BASE,
                   HP_QUEUE + 2, PCIHP_EVENT_REMOVE, "not being removed");
    expect_refused(&hp_io, &h3->hp, &good, "pcihp", PCIHP_QEMU_TRAD_BASE,
                   HP_QUEUE + 5, HP_B0, "not being removed");
    /* The head the guest read may be anything it was; unread, it counts. */
    base = stream_copy(&good);
    patch8(&base, "pcihp", PCIHP_QEMU_TRAD_BASE, HP_QUEUE + 1,
           PCI_DEVFN(30, 0));
    assert_int_equal(load_dev(&hp_io, &h3->hp, &base), 0);
    patch8(&base, "pcihp", PCIHP_QEMU_TRAD_BASE, HP_QUEUE + 6, 0);
    assert_int_equal(load_dev(&hp_io, &h3->hp, &base), -EINVAL);
    stream_free(&base);
    base = stream_copy(&good);
    patch8(&base, "pcihp", PCIHP_QEMU_TRAD_BASE, HP_QUEUE + 6, 0);
    assert_int_equal(load_dev(&hp_io, &h3->hp, &base), 0);
    expect_refused(&hp_io, &h3->hp, &base, "pcihp", PCIHP_QEMU_TRAD_BASE,
                   HP_QUEUE + 3, HP_A, "announced twice");
    stream_free(&base);
    /* The removal is announced on the slot's first function. */
    expect_refused(&hp_io, &h3->hp, &good, "pcihp", PCIHP_QEMU_TRAD_BASE,
                   HP_QUEUE + 5, PCI_DEVFN(3, 1), "first function");
    /* A read head with nothing queued; a queue in the qemu-xen layout. */
    odd = hp_stream(&h3->hp, PCIHP_LAYOUT_QEMU_TRAD, 0, NULL, true);
    assert_int_equal(load_dev(&hp_io, &h3->hp, &odd), -EINVAL);
    assert_non_null(strstr(last_err, "'head_read'"));
    stream_free(&odd);
    odd = hp_stream(&hx->hp, PCIHP_LAYOUT_QEMU_XEN, 1, &ev, false);
    assert_int_equal(load_dev(&hp_io, &hx->hp, &odd), -EINVAL);
    assert_non_null(strstr(last_err, "has no queue"));
    stream_free(&odd);
    /* A trad stream for the qemu-xen registers: another section. */
    assert_int_equal(load_dev(&hp_io, &hx->hp, &good), -EBADMSG);
    assert_non_null(strstr(last_err, "'pcihp' instance 0xae00 missing"));

    stream_free(&good);
    stream_free(&again);
    hp_rig_free(h1);
    hp_rig_free(h2);
    hp_rig_free(h3);
    hp_rig_free(hx);
}

/* ---- the machine --------------------------------------------------------- */

struct mfx {
    struct loop *loop;
    struct dm_options opts;
    struct machine m;
    struct machine_observer obs;
    bool irq[64];
    char deleted[8][32];
    unsigned n_deleted;
};

static void mfx_event(void *opaque, const struct machine_event *ev)
{
    struct mfx *fx = opaque;

    if (ev->kind == MACHINE_EVENT_DEVICE_DELETED && fx->n_deleted < 8)
        snprintf(fx->deleted[fx->n_deleted++], 32, "%s", ev->device);
}

static void mfx_irq(void *opaque, unsigned line, bool level)
{
    struct mfx *fx = opaque;

    if (line < 64)
        fx->irq[line] = level;
}

static struct mfx *mfx_new(const char *const *args, bool trad)
{
    struct mfx *fx = calloc(1, sizeof(*fx));
    char *argv[32];
    int argc = 0;

    assert_non_null(fx);
    argv[argc++] = "xen-dm";
    while (*args)
        argv[argc++] = (char *)*args++;
    argv[argc] = NULL;
    assert_int_equal(options_parse(argc, argv, &fx->opts), 0);
    if (trad)
        fx->opts.flavour = FLAVOUR_QEMU_TRAD;
    assert_int_equal(loop_create(&fx->loop), 0);
    assert_int_equal(machine_init(&fx->m, &fx->opts, fx->loop), 0);
    fx->obs = (struct machine_observer){.event = mfx_event, .irq = mfx_irq,
                                        .opaque = fx};
    machine_add_observer(&fx->m, &fx->obs);
    return fx;
}

static void mfx_free(struct mfx *fx)
{
    machine_fini(&fx->m);
    loop_destroy(fx->loop);
    options_free(&fx->opts);
    free(fx);
}

static uint32_t m_in(struct mfx *fx, uint16_t port, unsigned size)
{
    return (uint32_t)bus_read(&fx->m.bus, BUS_PIO, port, size);
}

static void m_out(struct mfx *fx, uint16_t port, uint32_t v, unsigned size)
{
    bus_write(&fx->m.bus, BUS_PIO, port, v, size);
}

/* A configuration write the way a guest makes it, through 0xCF8/0xCFC. */
static void m_cfg(struct mfx *fx, uint8_t devfn, unsigned reg, uint32_t v,
                  unsigned size)
{
    m_out(fx, 0xcf8, 0x80000000u | devfn << 8 | (reg & 0xfc), 4);
    m_out(fx, 0xcfc + (reg & 3), v, size);
}

static struct stream m_save(struct mfx *fx)
{
    int fd = memfd_create("machine-state", 0);
    struct stream s;

    assert_true(fd >= 0);
    assert_int_equal(machine_save_state(&fx->m, fd), 0);
    s = read_all(fd);
    close(fd);
    return s;
}

static int m_load(struct mfx *fx, const uint8_t *buf, size_t len)
{
    int fd = memfd_with(buf, len);
    int rc;

    last_err[0] = '\0';
    rc = machine_load_state_err(&fx->m, fd, last_err, sizeof(last_err));
    close(fd);
    if (rc < 0)
        assert_true(last_err[0] != '\0');
    return rc;
}

/* The machine's state must be exactly `want` (after a refused load). */
static void assert_state(struct mfx *fx, const struct stream *want)
{
    struct stream now = m_save(fx);

    if (!stream_equal(&now, want))
        fail_msg("machine state changed (%zu bytes, expected %zu)", now.len,
                 want->len);
    stream_free(&now);
}

#define TA PCI_DEVFN(5, 0)
#define TB PCI_DEVFN(6, 0)
#define PLAT PCI_DEVFN(2, 0)

static const char *const xen_args[] = {"-machine", "xenfv", "-m", "512",
                                       "-smp", "2", "-serial", "null",
                                       "-serial", "null", NULL};

static void add_testdevs(struct mfx *fx)
{
    char err[200];

    assert_int_equal(machine_device_add(&fx->m, "pci-testdev", "ta", "5", err,
                                        sizeof(err)), 0);
    assert_int_equal(machine_device_add(&fx->m, "pci-testdev", "tb", "6", err,
                                        sizeof(err)), 0);
}

static void program_testdev(struct mfx *fx, uint8_t devfn, uint32_t mmio,
                            uint16_t pio)
{
    m_cfg(fx, devfn, PCI_BASE_ADDRESS_0, mmio, 4);
    m_cfg(fx, devfn, PCI_BASE_ADDRESS_0 + 4, pio, 4);
    m_cfg(fx, devfn, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY, 2);
}

/* Everything a guest could have set up, on a qemu-xen machine. */
static void populate(struct mfx *fx)
{
    char err[200];

    add_testdevs(fx);
    assert_int_equal(machine_device_del(&fx->m, "tb", err, sizeof(err)), 0);
    program_testdev(fx, TA, 0xe1000000, 0xc200);
    program_testdev(fx, TB, 0xe2000000, 0xc300);
    m_cfg(fx, PLAT, PCI_BASE_ADDRESS_0, 0xc000, 4);
    m_cfg(fx, PLAT, PCI_BASE_ADDRESS_0 + 4, 0xf0000000, 4);
    m_cfg(fx, PIIX_IDE_DEVFN, PCI_BASE_ADDRESS_0 + 16, 0xc100, 4);
    m_cfg(fx, PIIX_IDE_DEVFN, PCI_COMMAND, PCI_COMMAND_IO, 2);
    m_cfg(fx, PIIX_IDE_DEVFN, PIIX_IDE_IDETIM_PRI, 0x80008000, 4);
    m_out(fx, 0xc100 + PIIX_IDE_BMIDTP, 0x00100000, 4);
    m_out(fx, 0xc100 + PIIX_IDE_BMICOM, 0x01, 1);
    m_cfg(fx, PIIX4_PM_DEVFN, PIIX4_PMBA, 0xb000, 4);
    m_cfg(fx, PIIX4_PM_DEVFN, PIIX4_PMREGMISC, 1, 1);
    m_out(fx, PIIX4_APM_CNT_PORT, PIIX4_ACPI_ENABLE, 1);
    m_out(fx, PIIX4_GPE0_BASE + 2, 0x02, 1);
    m_cfg(fx, PIIX3_DEVFN, PIIX3_PIRQRC, 0x0a0b050b, 4);
    m_cfg(fx, 0, I440FX_PAM0, 0x33, 1);
    m_out(fx, PIIX3_PORT92, 0x02, 1);
    m_out(fx, PIIX3_RCR_PORT, PIIX3_RCR_SRST, 1);
    /* PV drivers: product, build, ROM lock, half a log line. */
    m_out(fx, 0x12, 0x0003, 2);
    m_out(fx, 0x10, 0x0815, 4);
    m_out(fx, 0x10, 1, 1);
    m_out(fx, 0x12, 'x', 1);
    /* pci-testdev ta: portio test 1 selected, counting. */
    m_out(fx, 0xc200, 1, 1);
    m_out(fx, 0xc200 + 128 + 4, 0x1234, 2);
    /* COM1: a full FIFO and an overrun (loopback), line status interrupt. */
    m_out(fx, 0x3f8 + U_IIR, 0xc1, 1);
    m_out(fx, 0x3f8 + U_MCR, 0x18, 1);
    m_out(fx, 0x3f8 + U_IER, 0x05, 1);
    for (unsigned i = 0; i < 17; i++)
        m_out(fx, 0x3f8, 'a' + i, 1);
    m_out(fx, 0x3f8 + U_MCR, 0x08, 1);
    /* COM2: 8N1, THR-empty interrupt. */
    m_out(fx, 0x2f8 + U_LCR, 0x03, 1);
    m_out(fx, 0x2f8 + U_SCR, 0x11, 1);
    m_out(fx, 0x2f8 + U_MCR, 0x08, 1);
    m_out(fx, 0x2f8 + U_IER, 0x02, 1);
    m_out(fx, 0x70, 0x50, 1);
    m_out(fx, 0x71, 0x12, 1);
    m_out(fx, 0x70, 0x3d, 1);
    m_out(fx, 0xcf8, 0x80001004, 4);
}

static unsigned uart_probe_m(struct mfx *fx, uint16_t base, uint32_t *out)
{
    static const uint8_t regs[] = {U_IIR, U_LCR, U_MCR, U_MSR, U_LSR, U_IIR,
                                   U_IER, U_SCR};
    unsigned n = 0;
    uint8_t lcr = (uint8_t)m_in(fx, base + U_LCR, 1);

    for (size_t i = 0; i < sizeof(regs); i++)
        out[n++] = m_in(fx, base + regs[i], 1);
    m_out(fx, base + U_LCR, lcr | 0x80, 1);
    out[n++] = m_in(fx, base, 1);
    out[n++] = m_in(fx, base + 1, 1);
    m_out(fx, base + U_LCR, lcr, 1);
    for (unsigned i = 0; i < UART_FIFO_SIZE + 1; i++)
        out[n++] = m_in(fx, base, 1);
    out[n++] = m_in(fx, base + U_LSR, 1);
    out[n++] = m_in(fx, base + U_IIR, 1);
    return n;
}

/* Every register a guest can read on this machine, in one fixed order. */
static unsigned machine_probe(struct mfx *fx, uint32_t *out)
{
    static const uint16_t ports32[] = {0xae00, 0xae04, 0xae0c};
    unsigned n = 0;

    out[n++] = m_in(fx, 0xcf8, 4);
    out[n++] = m_in(fx, PIIX3_RCR_PORT, 1);
    out[n++] = m_in(fx, PIIX3_PORT92, 1);
    for (unsigned devfn = 0; devfn < 256; devfn++)
        for (unsigned reg = 0; reg < PCI_CONFIG_SIZE; reg += 4)
            out[n++] = (uint32_t)bus_read(&fx->m.bus, BUS_PCI_CFG,
                                          BUS_PCI_CFG_ADDR(devfn, reg), 4);
    for (size_t i = 0; i < 3; i++)
        out[n++] = m_in(fx, ports32[i], 4);
    for (unsigned i = 0; i < PIIX4_GPE0_LEN; i++)
        out[n++] = m_in(fx, PIIX4_GPE0_BASE + i, 1);
    out[n++] = m_in(fx, 0xb004, 2);
    out[n++] = m_in(fx, PIIX4_APM_CNT_PORT, 1);
    out[n++] = m_in(fx, PIIX4_APM_STS_PORT, 1);
    for (unsigned i = 0; i < PIIX4_CPU_MAP_LEN; i++)
        out[n++] = m_in(fx, PIIX4_CPU_MAP_BASE + i, 1);
    out[n++] = m_in(fx, 0x10, 2);
    out[n++] = m_in(fx, 0x10, 1);
    out[n++] = m_in(fx, 0x12, 1);
    out[n++] = m_in(fx, 0xc000, 1);
    for (unsigned i = 0; i < PIIX_IDE_BM_SIZE; i++)
        out[n++] = m_in(fx, 0xc100 + i, 1);
    for (unsigned i = 0; i < 48; i++) {
        out[n++] = m_in(fx, 0xc200 + i, 1);
        out[n++] = m_in(fx, 0xc300 + i, 1);
        out[n++] = (uint32_t)bus_read(&fx->m.bus, BUS_MMIO, 0xe1000000 + i, 1);
        out[n++] = (uint32_t)bus_read(&fx->m.bus, BUS_MMIO, 0xe2000000 + i, 1);
    }
    out[n++] = m_in(fx, 0x71, 1);
    for (unsigned i = CMOS_RTC_REGS; i < CMOS_SIZE; i++) {
        m_out(fx, 0x70, i, 1);
        out[n++] = m_in(fx, 0x71, 1);
    }
    n += uart_probe_m(fx, 0x3f8, out + n);
    n += uart_probe_m(fx, 0x2f8, out + n);
    return n;
}

#define PROBE_MAX 20000

static void test_machine_round_trip(void **state)
{
    struct mfx *m1 = mfx_new(xen_args, false), *m2 = mfx_new(xen_args, false);
    uint32_t *p1 = calloc(PROBE_MAX, sizeof(uint32_t));
    uint32_t *p2 = calloc(PROBE_MAX, sizeof(uint32_t));
    struct stream s1, s2;
    unsigned n1, n2;

    populate(m1);
    assert_true(m1->irq[4] && m1->irq[3] && m1->irq[9]);
    s1 = m_save(m1);
    assert_int_equal(m_load(m2, s1.buf, s1.len), 0);

    /* Both hot-plugged devices are back, at their places, with their ids. */
    assert_int_equal(machine_find_device(&m2->m, "ta")->devfn, TA);
    assert_int_equal(machine_find_device(&m2->m, "tb")->devfn, TB);
    /* Saving the restored machine gives the very same bytes. */
    s2 = m_save(m2);
    assert_true(stream_equal(&s1, &s2));
    /* Interrupt lines: both serial ports and the SCI are up again. */
    assert_true(m2->irq[4] && m2->irq[3] && m2->irq[9]);

    n1 = machine_probe(m1, p1);
    n2 = machine_probe(m2, p2);
    assert_true(n1 < PROBE_MAX);
    assert_int_equal(n1, n2);
    for (unsigned i = 0; i < n1; i++)
        if (p1[i] != p2[i])
            fail_msg("probe %u: 0x%x before, 0x%x after the round trip", i,
                     p1[i], p2[i]);
    /* A few of them by value, so the comparison is not of two blanks. */
    assert_int_equal(p1[0], 0x80001004);
    assert_int_equal(p2[1], PIIX3_RCR_SRST);
    assert_int_equal(m_in(m2, 0xae00, 4), (1u << 5) | (1u << 6));
    assert_int_equal(m_in(m2, 0x10, 2), XEN_PLATFORM_MAGIC);
    assert_int_equal(m_in(m2, 0xc200 + PCI_TESTDEV_HDR_COUNT, 4), 1);

    /* The removal requested before the save is still pending, and the
     * guest's eject completes it on the restored machine. */
    assert_int_equal(m_in(m2, 0xae04, 4), 1u << 6);
    m_out(m2, 0xae08, 1u << 6, 4);
    assert_int_equal(m2->n_deleted, 1);
    assert_string_equal(m2->deleted[0], "tb");
    assert_null(machine_find_device(&m2->m, "tb"));
    assert_null(pci_find_function(&m2->m.pci, TB));
    assert_int_equal(m_in(m2, 0xae04, 4), 0);

    free(p1);
    free(p2);
    stream_free(&s1);
    stream_free(&s2);
    mfx_free(m1);
    mfx_free(m2);
}

/* The qemu-trad register layout, with its event queue mid-way. */
static unsigned trad_guest_drain(struct mfx *fx, uint8_t *out)
{
    unsigned n = 0;

    for (unsigned round = 0; round < 8; round++) {
        uint8_t code, devfn;

        if (!(m_in(fx, PIIX4_GPE0_BASE, 1) & (1u << PCIHP_QEMU_TRAD_GPE_BIT)))
            break;
        code = (uint8_t)m_in(fx, PCIHP_QEMU_TRAD_BASE + PCIHP_PSTA, 1);
        devfn = (uint8_t)m_in(fx, PCIHP_QEMU_TRAD_BASE + PCIHP_PSTB, 1);
        out[n++] = code;
        out[n++] = devfn;
        for (unsigned off = PCIHP_PH00; off < PCIHP_QEMU_TRAD_LEN; off++)
            out[n++] = (uint8_t)m_in(fx, PCIHP_QEMU_TRAD_BASE + off, 1);
        if (code == PCIHP_EVENT_REMOVE)
            m_out(fx, PCIHP_QEMU_TRAD_BASE + PCIHP_PH00 + devfn / 2,
                  devfn & 1 ? PCIHP_EJECT_ODD : PCIHP_EJECT_EVEN, 1);
        m_out(fx, PIIX4_GPE0_BASE, 1u << PCIHP_QEMU_TRAD_GPE_BIT, 1);
    }
    return n;
}

static void test_machine_trad_round_trip(void **state)
{
    static const char *const args[] = {"-M", "xenfv", "-serial", "null", NULL};
    struct mfx *m1 = mfx_new(args, true), *m2 = mfx_new(args, true);
    uint8_t d1[1024], d2[1024];
    struct stream s1, s2;
    char err[200];
    unsigned n1, n2;

    add_testdevs(m1);
    assert_int_equal(machine_device_del(&m1->m, "ta", err, sizeof(err)), 0);
    m_out(m1, PIIX4_GPE0_BASE + 2, 1u << PCIHP_QEMU_TRAD_GPE_BIT, 1);
    assert_int_equal(m_in(m1, PCIHP_QEMU_TRAD_BASE + PCIHP_PSTB, 1), TA);
    assert_true(m1->irq[9]);
    s1 = m_save(m1);
    assert_int_equal(m_load(m2, s1.buf, s1.len), 0);
    s2 = m_save(m2);
    assert_true(stream_equal(&s1, &s2));
    assert_true(m2->irq[9]);
    assert_int_equal(pcihp_queued_events(&m2->m.hotplug), 3);
    assert_int_equal(m_in(m2, 0xb004, 2) & PIIX4_PM1_CNT_SCI_EN, 1);

    n1 = trad_guest_drain(m1, d1);
    n2 = trad_guest_drain(m2, d2);
    assert_int_equal(n1, 3 * (2 + 0x80));
    assert_int_equal(n1, n2);
    assert_memory_equal(d1, d2, n1);
    assert_int_equal(d2[260], PCIHP_EVENT_REMOVE);
    assert_int_equal(d2[261], TA);
    assert_int_equal(m2->n_deleted, 1);
    assert_string_equal(m2->deleted[0], "ta");
    assert_non_null(machine_find_device(&m2->m, "tb"));
    assert_false(m2->irq[9]);

    stream_free(&s1);
    stream_free(&s2);
    mfx_free(m1);
    mfx_free(m2);
}

/* ---- the machine against hostile streams --------------------------------- */

struct hostile {
    struct mfx *src, *dst;
    struct stream good;  /* src's state, with two hot-plugged devices */
    struct stream fresh; /* dst's own state before anything was loaded */
};

static struct hostile *hostile_new(void)
{
    struct hostile *h = calloc(1, sizeof(*h));

    assert_non_null(h);
    h->src = mfx_new(xen_args, false);
    h->dst = mfx_new(xen_args, false);
    populate(h->src);
    h->good = m_save(h->src);
    h->fresh = m_save(h->dst);
    return h;
}

static void hostile_free(struct hostile *h)
{
    /* Whatever it went through, the target still takes a good stream. */
    assert_int_equal(m_load(h->dst, h->good.buf, h->good.len), 0);
    assert_state(h->dst, &h->good);
    stream_free(&h->good);
    stream_free(&h->fresh);
    mfx_free(h->src);
    mfx_free(h->dst);
    free(h);
}

/* bad must be refused with rc (0: any error) and a message holding want,
 * and the target must be unchanged. */
static void refuse(struct mfx *dst, const struct stream *bad, int rc,
                   const char *want)
{
    struct stream before = m_save(dst);
    int got = m_load(dst, bad->buf, bad->len);

    if (got >= 0 || (rc && got != rc) || (want && !strstr(last_err, want)))
        fail_msg("rc %d (wanted %d), message '%s' (wanted '%s')", got, rc,
                 last_err, want ? want : "");
    assert_state(dst, &before);
    stream_free(&before);
}

static void test_machine_every_truncation(void **state)
{
    struct hostile *h = hostile_new();
    struct stream cut;

    /* Cut files: the header's length gives them away. */
    for (size_t len = 0; len < h->good.len; len++) {
        cut = (struct stream){.buf = h->good.buf, .len = len};
        assert_int_equal(m_load(h->dst, cut.buf, cut.len), -EBADMSG);
        assert_non_null(strstr(last_err, "truncated"));
    }
    assert_state(h->dst, &h->fresh);
    /* Cut and resealed, so the parser meets the cut inside a section. */
    for (size_t len = SS_HEADER_SIZE; len + SS_TRAILER_SIZE < h->good.len;
         len++) {
        cut.len = len + 4;
        cut.buf = calloc(1, cut.len);
        memcpy(cut.buf, h->good.buf, len);
        ss_stream_reseal(cut.buf, cut.len);
        assert_int_equal(m_load(h->dst, cut.buf, cut.len), -EBADMSG);
        stream_free(&cut);
    }
    assert_state(h->dst, &h->fresh);
    hostile_free(h);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random bytes changed behind a recomputed CRC: the devices' own checks
 * must catch whatever cannot be, and whatever they accept must be kept
 * exactly (saving again gives the stream that was loaded). */
static void test_machine_random_flips(void **state)
{
    struct hostile *h = hostile_new();
    unsigned refused = 0, accepted = 0;

    assert_int_equal(m_load(h->dst, h->good.buf, h->good.len), 0);
    for (unsigned iter = 0; iter < 1500; iter++) {
        struct stream bad = stream_copy(&h->good), now;
        unsigned flips = 1 + (unsigned)(rng() % 3);
        int rc;

        for (unsigned i = 0; i < flips; i++) {
            size_t at = (size_t)(rng() % (bad.len - 4));
            uint8_t mask = (uint8_t)(1u << (rng() % 8));

            bad.buf[at] ^= mask;
        }
        ss_stream_reseal(bad.buf, bad.len);
        rc = m_load(h->dst, bad.buf, bad.len);
        now = m_save(h->dst);
        if (rc < 0) {
            refused++;
            if (!stream_equal(&now, &h->good))
                fail_msg("iteration %u: refused (%s) but the machine changed",
                         iter, last_err);
        } else {
            accepted++;
            if (!stream_equal(&now, &bad))
                fail_msg("iteration %u: accepted, but what was loaded is not "
                         "what is kept", iter);
            assert_int_equal(m_load(h->dst, h->good.buf, h->good.len), 0);
        }
        stream_free(&now);
        stream_free(&bad);
    }
    /* Both outcomes happen: flips land in registers the guest owns and in
     * bytes no device could have. */
    assert_true(refused > 100);
    assert_true(accepted > 100);
    hostile_free(h);
}

static void test_machine_bad_sections(void **state)
{
    struct hostile *h = hostile_new();
    struct edit e;
    struct stream bad;
    uint32_t huge = 0xffffffffu;

    /* Over-long lengths: past the end of the stream, into the next
     * section, and a payload longer than the section's version has. */
    bad = stream_copy(&h->good);
    patch(&bad, "cmos", 0x70, (size_t)-4, &huge, 4);
    refuse(h->dst, &bad, -EBADMSG, "claims 4294967295 bytes");
    stream_free(&bad);
    bad = stream_copy(&h->good);
    {
        size_t at = section_offset(&bad, "cmos", 0x70) - 4;

        bad.buf[at]++;
        ss_stream_reseal(bad.buf, bad.len);
    }
    refuse(h->dst, &bad, -EBADMSG, NULL);
    stream_free(&bad);
    e = (struct edit){.name = "uart", .kind = EDIT_GROW};
    bad = rebuild(&h->good, &e, NULL);
    refuse(h->dst, &bad, -EBADMSG, "1 bytes left over");
    stream_free(&bad);

    /* Unknown, duplicate, missing sections. */
    bad = rebuild(&h->good, NULL, "bogus");
    refuse(h->dst, &bad, -EBADMSG, "unknown section 'bogus' instance 0x0");
    stream_free(&bad);
    e = (struct edit){.name = "cmos", .kind = EDIT_TWICE};
    bad = rebuild(&h->good, &e, NULL);
    refuse(h->dst, &bad, -EBADMSG, "duplicate section 'cmos' instance 0x70");
    stream_free(&bad);
    e = (struct edit){.name = "piix3", .kind = EDIT_DROP};
    bad = rebuild(&h->good, &e, NULL);
    refuse(h->dst, &bad, -EBADMSG, "section 'piix3' instance 0x8 missing");
    stream_free(&bad);

    /* Versions: a newer section, a section version 0, a newer format. */
    e = (struct edit){.name = "uart", .kind = EDIT_VERSION, .version = 2};
    bad = rebuild(&h->good, &e, NULL);
    refuse(h->dst, &bad, -EPROTONOSUPPORT, "version 2, this xen-dm reads "
                                           "versions 1 to 1");
    stream_free(&bad);
    e = (struct edit){.name = "pcihp", .kind = EDIT_VERSION, .version = 0};
    bad = rebuild(&h->good, &e, NULL);
    refuse(h->dst, &bad, -EPROTONOSUPPORT, "section 'pcihp'");
    stream_free(&bad);
    bad = stream_copy(&h->good);
    bad.buf[4] = 2;
    ss_stream_reseal(bad.buf, bad.len);
    refuse(h->dst, &bad, -EPROTONOSUPPORT, "format version 2");
    stream_free(&bad);
    bad = stream_copy(&h->good);
    memcpy(bad.buf, "QEVM", 4); /* qemu-trad's savevm magic */
    ss_stream_reseal(bad.buf, bad.len);
    refuse(h->dst, &bad, -EBADMSG, "not xen-dm device state");
    stream_free(&bad);
    /* A stray bit without the CRC fixed. */
    bad = stream_copy(&h->good);
    bad.buf[bad.len / 2] ^= 1;
    refuse(h->dst, &bad, -EBADMSG, "CRC mismatch");
    stream_free(&bad);
    /* Trailing bytes after a whole stream in a file are not read. */
    bad.len = h->good.len + 3;
    bad.buf = calloc(1, bad.len);
    memcpy(bad.buf, h->good.buf, h->good.len);
    assert_int_equal(m_load(h->dst, bad.buf, bad.len), 0);
    assert_state(h->dst, &h->good);
    stream_free(&bad);
    hostile_free(h);
}

static void test_machine_identity_mismatch(void **state)
{
    static const char *const more_ram[] = {"-machine", "xenfv", "-m", "1024",
                                           "-smp", "2", "-serial", "null",
                                           "-serial", "null", NULL};
    static const char *const one_serial[] = {"-machine", "xenfv", "-m", "512",
                                             "-serial", "null", NULL};
    static const char *const no_acpi[] = {"-no-acpi", "-m", "512", "-serial",
                                          "null", "-serial", "null", NULL};
    static const char *const trad_args[] = {"-M", "xenfv", "-m", "512",
                                            "-serial", "null", "-serial",
                                            "null", NULL};
    struct hostile *h = hostile_new();
    struct mfx *other;
    struct stream bad;
    struct edit e;

    other = mfx_new(more_ram, false);
    refuse(other, &h->good, -EINVAL, "byte 0x57");
    mfx_free(other);
    other = mfx_new(one_serial, false);
    refuse(other, &h->good, -EINVAL, "2 serial ports, this machine has 1");
    mfx_free(other);
    other = mfx_new(no_acpi, false);
    refuse(other, &h->good, -EINVAL, "ACPI on, hot-plug on; this machine has "
                                     "ACPI off");
    mfx_free(other);
    other = mfx_new(trad_args, true);
    refuse(other, &h->good, -EINVAL, "qemu-xen PM device, this one is "
                                     "qemu-trad");
    mfx_free(other);
    /* A stream from a different device: PIIX3's state as the IDE's. */
    e = (struct edit){.name = "piix-ide", .kind = EDIT_PAYLOAD_OF,
                      .other = "piix3", .other_instance = PIIX3_DEVFN};
    bad = rebuild(&h->good, &e, NULL);
    refuse(h->dst, &bad, -EINVAL, "state of PCI device 8086:7000, but "
                                  "00:01.1 is 'piix3-ide' (8086:7010)");
    stream_free(&bad);
    /* A testdev's state for the platform device. */
    e = (struct edit){.name = "xen-platform", .kind = EDIT_PAYLOAD_OF,
                      .other = "pci-testdev", .other_instance = TA};
    bad = rebuild(&h->good, &e, NULL);
    refuse(h->dst, &bad, -EINVAL, "state of PCI device 1b36:0005");
    stream_free(&bad);
    hostile_free(h);
}

static void test_machine_device_list(void **state)
{
    struct hostile *h = hostile_new();
    struct mfx *m;
    struct stream bad, before;
    size_t list;
    char err[200];

    /* A failure late in the load (COM1's FIFO index) takes back the
     * devices the load had re-created. */
    bad = stream_copy(&h->good);
    patch8(&bad, "uart", 0x3f8, 10, 0xff);
    refuse(h->dst, &bad, -EINVAL, "'rx.head'");
    stream_free(&bad);
    assert_null(h->dst->m.pci_devices);
    assert_null(pci_find_function(&h->dst->m.pci, TA));
    assert_null(pci_find_function(&h->dst->m.pci, TB));
    assert_state(h->dst, &h->fresh);

    /* The list itself: unknown driver, a devfn of the chipset, a devfn
     * twice, an id that is not text. Layout: has_pm, has_hotplug,
     * has_platform, n_uarts, u16 count, then per device u16+driver,
     * u16+id, devfn; the newest device (tb) comes first. */
    list = 4 + 2;
    bad = stream_copy(&h->good);
    patch8(&bad, "machine", 0, list + 2, 'q');
    refuse(h->dst, &bad, -EINVAL, "driver 'qci-testdev' is unknown");
    stream_free(&bad);
    bad = stream_copy(&h->good);
    patch8(&bad, "machine", 0, list + 2 + 11 + 2 + 2, PLAT);
    refuse(h->dst, &bad, -EINVAL, "00:02.0 is 'xen-platform', part of this "
                                  "machine");
    stream_free(&bad);
    bad = stream_copy(&h->good);
    patch8(&bad, "machine", 0, list + 2 + 11 + 2 + 2, TA);
    refuse(h->dst, &bad, -EINVAL, "collides with device 0");
    stream_free(&bad);
    bad = stream_copy(&h->good);
    patch8(&bad, "machine", 0, list + 2 + 11 + 2, 0x07);
    refuse(h->dst, &bad, -EINVAL, "unprintable");
    stream_free(&bad);
    bad = stream_copy(&h->good);
    patch8(&bad, "machine", 0, list - 1, 0xff);
    refuse(h->dst, &bad, -EINVAL, "'n_devices'");
    stream_free(&bad);
    assert_null(h->dst->m.pci_devices);

    /* A machine holding a device the stream does not know, or the same
     * devfn under another id, is not the machine the stream came from. */
    m = mfx_new(xen_args, false);
    add_testdevs(m);
    assert_int_equal(machine_device_add(&m->m, "pci-testdev", "tc", "7", err,
                                        sizeof(err)), 0);
    refuse(m, &h->good, -EINVAL, "'tc' at 00:07.0 is not in the stream");
    mfx_free(m);
    m = mfx_new(xen_args, false);
    assert_int_equal(machine_device_add(&m->m, "pci-testdev", "other", "5", err,
                                        sizeof(err)), 0);
    refuse(m, &h->good, -EINVAL, "00:05.0 holds 'other' here, the stream has "
                                 "'ta'");
    mfx_free(m);

    /* A running machine with the same devices, BARs swapped: the stream's
     * placement wins, whatever the order devices are loaded in. */
    m = mfx_new(xen_args, false);
    add_testdevs(m);
    program_testdev(m, TA, 0xe2000000, 0xc300);
    program_testdev(m, TB, 0xe1000000, 0xc200);
    before = m_save(m);
    assert_int_equal(m_load(m, h->good.buf, h->good.len), 0);
    assert_state(m, &h->good);
    assert_ptr_equal(bus_find(&m->m.bus, BUS_PIO, 0xc200)->opaque,
                     machine_find_device(&m->m, "ta")->testdev);
    assert_ptr_equal(bus_find(&m->m.bus, BUS_MMIO, 0xe2000000)->opaque,
                     machine_find_device(&m->m, "tb")->testdev);
    /* And back: its own old state loads as well. */
    assert_int_equal(m_load(m, before.buf, before.len), 0);
    assert_state(m, &before);
    stream_free(&before);
    mfx_free(m);
    hostile_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_fields_round_trip),
        cmocka_unit_test(test_format_structure_refused),
        cmocka_unit_test(test_format_every_truncation_parses_cleanly),
        cmocka_unit_test(test_format_limits),
        cmocka_unit_test(test_format_fd),
        cmocka_unit_test(test_uart_round_trip),
        cmocka_unit_test(test_cmos_round_trip),
        cmocka_unit_test(test_pci_host_and_i440fx_round_trip),
        cmocka_unit_test(test_piix3_round_trip),
        cmocka_unit_test(test_piix_ide_round_trip),
        cmocka_unit_test(test_piix4_pm_round_trip),
        cmocka_unit_test(test_xen_platform_round_trip),
        cmocka_unit_test(test_pci_testdev_round_trip),
        cmocka_unit_test(test_pcihp_round_trip),
        cmocka_unit_test(test_machine_round_trip),
        cmocka_unit_test(test_machine_trad_round_trip),
        cmocka_unit_test(test_machine_every_truncation),
        cmocka_unit_test(test_machine_random_flips),
        cmocka_unit_test(test_machine_bad_sections),
        cmocka_unit_test(test_machine_identity_mismatch),
        cmocka_unit_test(test_machine_device_list),
    };

    log_set_level(LOG_ERR);
    quiet_log = fopen("/dev/null", "w");
    log_set_stream(quiet_log);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
