#include "savestate.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../lib/log.h"

/* A peer that stops sending (or a pipe nobody writes) must not hang the
 * daemon for ever. */
#define SS_IO_TIMEOUT_MS 30000

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint32_t stream_crc(const uint8_t *buf, size_t len)
{
    /* zlib takes uInt lengths; streams are bounded well below 4 GiB. */
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)len);
}

static bool valid_name(const char *name, size_t len)
{
    if (len == 0 || len > SS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

/* --- writer --------------------------------------------------------------- */

void ss_writer_init(struct ss_writer *w)
{
    uint8_t header[SS_HEADER_SIZE];

    memset(w, 0, sizeof(*w));
    put_le(header, SS_MAGIC, 4);
    put_le(header + 4, SS_FORMAT_VERSION, 4);
    put_le(header + 8, 0, 4); /* filled in by ss_writer_finish */
    ss_put_bytes(w, header, sizeof(header));
}

void ss_writer_fini(struct ss_writer *w)
{
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

static int writer_fail(struct ss_writer *w, int err)
{
    if (!w->error)
        w->error = err;
    return w->error;
}

static int writer_reserve(struct ss_writer *w, size_t n)
{
    size_t cap;
    uint8_t *p;

    if (w->error)
        return w->error;
    if (w->finished)
        return writer_fail(w, -EINVAL);
    if (n > SS_MAX_STREAM - w->len) {
        log_err("savestate: device state exceeds %u bytes", SS_MAX_STREAM);
        return writer_fail(w, -EFBIG);
    }
    if (w->len + n <= w->cap)
        return 0;
    cap = w->cap ? w->cap : 4096;
    while (cap < w->len + n)
        cap *= 2;
    p = realloc(w->buf, cap);
    if (!p)
        return writer_fail(w, -ENOMEM);
    w->buf = p;
    w->cap = cap;
    return 0;
}

int ss_put_bytes(struct ss_writer *w, const void *p, size_t n)
{
    int rc = writer_reserve(w, n);

    if (rc < 0)
        return rc;
    if (n)
        memcpy(w->buf + w->len, p, n);
    w->len += n;
    return 0;
}

static int put_int(struct ss_writer *w, uint64_t v, unsigned n)
{
    uint8_t b[8];

    put_le(b, v, n);
    return ss_put_bytes(w, b, n);
}

int ss_put_u8(struct ss_writer *w, uint8_t v) { return put_int(w, v, 1); }
int ss_put_u16(struct ss_writer *w, uint16_t v) { return put_int(w, v, 2); }
int ss_put_u32(struct ss_writer *w, uint32_t v) { return put_int(w, v, 4); }
int ss_put_u64(struct ss_writer *w, uint64_t v) { return put_int(w, v, 8); }
int ss_put_bool(struct ss_writer *w, bool v)
{
    return put_int(w, v ? 1 : 0, 1);
}

int ss_put_string(struct ss_writer *w, const char *s)
{
    size_t n = strlen(s);

    if (n > SS_STRING_MAX)
        return writer_fail(w, -ENAMETOOLONG);
    put_int(w, n, 2);
    return ss_put_bytes(w, s, n);
}

int ss_begin_section(struct ss_writer *w, const char *name, uint32_t instance,
                     uint32_t version)
{
    size_t n = strlen(name);

    if (w->error)
        return w->error;
    if (w->section_len_at || !valid_name(name, n) || version == 0) {
        log_err("savestate: bad section '%s' v%u (open: %s)", name, version,
                w->section_len_at ? "yes" : "no");
        return writer_fail(w, -EINVAL);
    }
    put_int(w, SS_MARK_SECTION, 1);
    put_int(w, n, 1);
    ss_put_bytes(w, name, n);
    put_int(w, instance, 4);
    put_int(w, version, 4);
    if (w->error)
        return w->error;
    w->section_len_at = w->len;
    return put_int(w, 0, 4);
}

int ss_end_section(struct ss_writer *w)
{
    size_t at = w->section_len_at;

    if (w->error)
        return w->error;
    if (!at)
        return writer_fail(w, -EINVAL);
    put_le(w->buf + at, w->len - at - 4, 4);
    w->section_len_at = 0;
    return 0;
}

int ss_writer_finish(struct ss_writer *w)
{
    int rc;

    if (w->section_len_at)
        return writer_fail(w, -EINVAL);
    rc = put_int(w, SS_MARK_END, 1);
    if (rc == 0)
        rc = put_int(w, 0, 4);
    if (rc < 0)
        return rc;
    w->finished = true;
    return ss_stream_reseal(w->buf, w->len);
}

int ss_stream_reseal(uint8_t *buf, size_t len)
{
    if (len < SS_HEADER_SIZE + 4 || len > SS_MAX_STREAM)
        return -EINVAL;
    put_le(buf + 8, len, 4);
    put_le(buf + len - 4, stream_crc(buf, len - 4), 4);
    return 0;
}

static int wait_fd(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    int r;

    do {
        r = poll(&p, 1, SS_IO_TIMEOUT_MS);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    return r == 0 ? -ETIMEDOUT : 0;
}

int ss_write_fd(int fd, const uint8_t *buf, size_t len)
{
    size_t done = 0;
    int rc = 0;

    while (done < len) {
        ssize_t r = write(fd, buf + done, len - done);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            rc = wait_fd(fd, POLLOUT);
            if (rc < 0)
                break;
            continue;
        }
        if (r <= 0) {
            rc = r < 0 ? -errno : -EIO;
            break;
        }
        done += (size_t)r;
    }
    if (rc < 0)
        log_err("savestate: writing device state: %s", strerror(-rc));
    return rc;
}

/* --- reader: errors ------------------------------------------------------- */

static int reader_fail_va(struct ss_reader *r, int err, const char *field,
                          const char *fmt, va_list ap)
{
    /* A device may find a field unusable after closing its section (when
     * it commits): the field still belongs to the section just closed. */
    const struct ss_section *s = r->cur ? r->cur : field ? r->last : NULL;
    char what[200];

    if (r->error)
        return r->error;
    r->error = err;
    vsnprintf(what, sizeof(what), fmt, ap);
    if (s && field)
        snprintf(r->message, sizeof(r->message),
                 "section '%s' instance 0x%x v%u, field '%s': %s", s->name,
                 s->instance, s->version, field, what);
    else if (s)
        snprintf(r->message, sizeof(r->message),
                 "section '%s' instance 0x%x v%u: %s", s->name, s->instance,
                 s->version, what);
    else
        snprintf(r->message, sizeof(r->message), "stream: %s", what);
    /* One line per refused stream; a peer feeding us stream after stream
     * still cannot flood the log. */
    log_ratelimited(LOG_ERR, "savestate: device state refused: %s", r->message);
    return r->error;
}

static int reader_fail(struct ss_reader *r, int err, const char *field,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int reader_fail(struct ss_reader *r, int err, const char *field,
                       const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = reader_fail_va(r, err, field, fmt, ap);
    va_end(ap);
    return rc;
}

int ss_fail(struct ss_reader *r, const char *field, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = reader_fail_va(r, -EINVAL, field, fmt, ap);
    va_end(ap);
    return rc;
}

bool ss_ok(const struct ss_reader *r) { return r->error == 0; }

const char *ss_reader_error(const struct ss_reader *r) { return r->message; }

/* --- reader: structure ---------------------------------------------------- */

static struct ss_section *find_section(const struct ss_reader *r,
                                       const char *name, uint32_t instance)
{
    for (size_t i = 0; i < r->n_sections; i++)
        if (r->sections[i].instance == instance &&
            !strcmp(r->sections[i].name, name))
            return &r->sections[i];
    return NULL;
}

/* Walks the sections between header and end marker, checking every length
 * against what is left before the trailer. */
static int index_sections(struct ss_reader *r)
{
    size_t pos = SS_HEADER_SIZE, limit = r->len - 4; /* CRC excluded */
    size_t cap = 0;

    for (;;) {
        struct ss_section s = {0};
        size_t name_len;

        if (pos >= limit)
            return reader_fail(r, -EBADMSG, NULL, "no end marker (section "
                               "%zu would start at offset %zu of %zu)",
                               r->n_sections, pos, r->len);
        if (r->buf[pos] == SS_MARK_END) {
            if (pos + 1 != limit)
                return reader_fail(r, -EBADMSG, NULL, "%zu stray bytes after "
                                   "the end marker", limit - pos - 1);
            return 0;
        }
        if (r->buf[pos] != SS_MARK_SECTION)
            return reader_fail(r, -EBADMSG, NULL, "byte 0x%02x at offset %zu "
                               "is neither a section nor the end marker",
                               r->buf[pos], pos);
        pos++;
        if (limit - pos < 1)
            goto truncated;
        name_len = r->buf[pos++];
        if (limit - pos < name_len + 12)
            goto truncated;
        if (!valid_name((const char *)r->buf + pos, name_len))
            return reader_fail(r, -EBADMSG, NULL, "section %zu at offset %zu "
                               "has no valid name", r->n_sections, pos - 2);
        memcpy(s.name, r->buf + pos, name_len);
        pos += name_len;
        s.instance = (uint32_t)get_le(r->buf + pos, 4);
        s.version = (uint32_t)get_le(r->buf + pos + 4, 4);
        s.len = (size_t)get_le(r->buf + pos + 8, 4);
        pos += 12;
        s.offset = pos;
        if (s.len > limit - pos)
            return reader_fail(r, -EBADMSG, NULL, "section '%s' instance 0x%x "
                               "claims %zu bytes, only %zu remain", s.name,
                               s.instance, s.len, limit - pos);
        if (find_section(r, s.name, s.instance))
            return reader_fail(r, -EBADMSG, NULL, "duplicate section '%s' "
                               "instance 0x%x", s.name, s.instance);
        if (r->n_sections == SS_MAX_SECTIONS)
            return reader_fail(r, -EBADMSG, NULL, "more than %d sections",
                               SS_MAX_SECTIONS);
        if (r->n_sections == cap) {
            struct ss_section *grown;

            cap = cap ? 2 * cap : 32;
            grown = realloc(r->sections, cap * sizeof(*grown));
            if (!grown)
                return reader_fail(r, -ENOMEM, NULL, "out of memory");
            r->sections = grown;
        }
        r->sections[r->n_sections++] = s;
        pos += s.len;
    }
truncated:
    return reader_fail(r, -EBADMSG, NULL, "section header at offset %zu cut "
                       "short", pos);
}

/* Magic, format version and declared length, from the first 12 bytes. */
static int check_header(struct ss_reader *r, const uint8_t *h, size_t have,
                        size_t *declared)
{
    uint32_t magic, version;

    if (have < SS_HEADER_SIZE)
        return reader_fail(r, -EBADMSG, NULL, "truncated: %zu bytes, the "
                           "header alone is %d", have, SS_HEADER_SIZE);
    magic = (uint32_t)get_le(h, 4);
    version = (uint32_t)get_le(h + 4, 4);
    *declared = (size_t)get_le(h + 8, 4);
    if (magic != SS_MAGIC)
        return reader_fail(r, -EBADMSG, NULL, "not xen-dm device state "
                           "(magic 0x%08x, expected 0x%08x)", magic, SS_MAGIC);
    if (version != SS_FORMAT_VERSION)
        return reader_fail(r, -EPROTONOSUPPORT, NULL, "format version %u, "
                           "this xen-dm reads version %d", version,
                           SS_FORMAT_VERSION);
    if (*declared > SS_MAX_STREAM)
        return reader_fail(r, -EFBIG, NULL, "declares %zu bytes, more than "
                           "the %u allowed", *declared, SS_MAX_STREAM);
    if (*declared < SS_HEADER_SIZE + SS_TRAILER_SIZE)
        return reader_fail(r, -EBADMSG, NULL, "declares %zu bytes, too short "
                           "for a header and an end marker", *declared);
    return 0;
}

static int reader_setup(struct ss_reader *r, const uint8_t *buf, size_t len)
{
    size_t declared;
    uint32_t want, got;
    int rc;

    r->buf = buf;
    r->len = len;
    rc = check_header(r, buf, len, &declared);
    if (rc < 0)
        return rc;
    if (len != declared)
        return reader_fail(r, -EBADMSG, NULL, "%s: %zu bytes, the header "
                           "declares %zu", len < declared ? "truncated"
                                                          : "trailing bytes",
                           len, declared);
    want = (uint32_t)get_le(buf + len - 4, 4);
    got = stream_crc(buf, len - 4);
    if (want != got)
        return reader_fail(r, -EBADMSG, NULL, "CRC mismatch (stored 0x%08x, "
                           "computed 0x%08x): corrupted", want, got);
    return index_sections(r);
}

int ss_reader_init(struct ss_reader *r, const uint8_t *buf, size_t len)
{
    memset(r, 0, sizeof(*r));
    return reader_setup(r, buf, len);
}

static int read_full(int fd, uint8_t *buf, size_t len, size_t *got)
{
    int rc = 0;

    *got = 0;
    while (*got < len) {
        ssize_t n = read(fd, buf + *got, len - *got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            rc = wait_fd(fd, POLLIN);
            if (rc < 0)
                break;
            continue;
        }
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break; /* end of file: the caller reports the truncation */
        *got += (size_t)n;
    }
    return rc;
}

int ss_reader_read_fd(struct ss_reader *r, int fd)
{
    uint8_t header[SS_HEADER_SIZE];
    size_t declared, got;
    int rc;

    memset(r, 0, sizeof(*r));
    rc = read_full(fd, header, sizeof(header), &got);
    if (rc < 0)
        return reader_fail(r, rc, NULL, "reading: %s", strerror(-rc));
    rc = check_header(r, header, got, &declared);
    if (rc < 0)
        return rc;
    r->owned = malloc(declared);
    if (!r->owned)
        return reader_fail(r, -ENOMEM, NULL, "out of memory for %zu bytes",
                           declared);
    memcpy(r->owned, header, sizeof(header));
    rc = read_full(fd, r->owned + sizeof(header), declared - sizeof(header),
                   &got);
    if (rc < 0)
        return reader_fail(r, rc, NULL, "reading: %s", strerror(-rc));
    return reader_setup(r, r->owned, sizeof(header) + got);
}

void ss_reader_fini(struct ss_reader *r)
{
    free(r->sections);
    free(r->owned);
    memset(r, 0, sizeof(*r));
}

bool ss_has_section(const struct ss_reader *r, const char *name,
                    uint32_t instance)
{
    return find_section(r, name, instance) != NULL;
}

int ss_open_section(struct ss_reader *r, const char *name, uint32_t instance,
                    uint32_t max_version, uint32_t *version)
{
    struct ss_section *s;

    *version = 0;
    if (r->error)
        return r->error;
    if (r->cur)
        return reader_fail(r, -EINVAL, NULL, "section '%s' opened inside "
                           "another", name);
    s = find_section(r, name, instance);
    if (!s)
        return reader_fail(r, -EBADMSG, NULL, "section '%s' instance 0x%x "
                           "missing: the stream is from a different machine",
                           name, instance);
    r->cur = s;
    s->consumed = true;
    if (s->version == 0 || s->version > max_version)
        return reader_fail(r, -EPROTONOSUPPORT, NULL, "version %u, this "
                           "xen-dm reads versions 1 to %u", s->version,
                           max_version);
    r->pos = s->offset;
    r->end = s->offset + s->len;
    *version = s->version;
    return 0;
}

int ss_close_section(struct ss_reader *r)
{
    int rc = r->error;

    if (!rc && !r->cur)
        rc = reader_fail(r, -EINVAL, NULL, "no section open");
    if (!rc && r->pos != r->end)
        rc = reader_fail(r, -EBADMSG, NULL, "%zu bytes left over: longer "
                         "than this version of the section", r->end - r->pos);
    r->last = r->cur;
    r->cur = NULL;
    return rc;
}

int ss_reader_finish(struct ss_reader *r)
{
    if (r->error)
        return r->error;
    for (size_t i = 0; i < r->n_sections; i++)
        if (!r->sections[i].consumed)
            return reader_fail(r, -EBADMSG, NULL, "unknown section '%s' "
                               "instance 0x%x: nothing here takes it",
                               r->sections[i].name, r->sections[i].instance);
    return 0;
}

/* --- reader: fields ------------------------------------------------------- */

static int take(struct ss_reader *r, const char *field, size_t n,
                const uint8_t **p)
{
    if (r->error)
        return r->error;
    if (!r->cur)
        return reader_fail(r, -EINVAL, field, "read outside a section");
    if (n > r->end - r->pos)
        return reader_fail(r, -EBADMSG, field, "truncated: %zu bytes "
                           "needed, %zu left", n, r->end - r->pos);
    *p = r->buf + r->pos;
    r->pos += n;
    return 0;
}

static int get_int(struct ss_reader *r, const char *field, unsigned n,
                   uint64_t *v)
{
    const uint8_t *p = NULL;
    int rc = take(r, field, n, &p);

    *v = rc < 0 ? 0 : get_le(p, n);
    return rc;
}

int ss_get_u8(struct ss_reader *r, const char *field, uint8_t *v)
{
    uint64_t x;
    int rc = get_int(r, field, 1, &x);

    *v = (uint8_t)x;
    return rc;
}

int ss_get_u16(struct ss_reader *r, const char *field, uint16_t *v)
{
    uint64_t x;
    int rc = get_int(r, field, 2, &x);

    *v = (uint16_t)x;
    return rc;
}

int ss_get_u32(struct ss_reader *r, const char *field, uint32_t *v)
{
    uint64_t x;
    int rc = get_int(r, field, 4, &x);

    *v = (uint32_t)x;
    return rc;
}

int ss_get_u64(struct ss_reader *r, const char *field, uint64_t *v)
{
    return get_int(r, field, 8, v);
}

int ss_get_bool(struct ss_reader *r, const char *field, bool *v)
{
    uint64_t x;
    int rc = get_int(r, field, 1, &x);

    *v = x == 1;
    if (rc == 0 && x > 1)
        rc = ss_fail(r, field, "%u is not a boolean", (unsigned)x);
    return rc;
}

int ss_get_bytes(struct ss_reader *r, const char *field, void *p, size_t n)
{
    const uint8_t *src = NULL;
    int rc = take(r, field, n, &src);

    if (rc < 0)
        memset(p, 0, n);
    else if (n)
        memcpy(p, src, n);
    return rc;
}

int ss_get_string(struct ss_reader *r, const char *field, char *buf,
                  size_t size)
{
    const uint8_t *p = NULL;
    uint64_t n;
    int rc;

    if (size)
        buf[0] = '\0';
    rc = get_int(r, field, 2, &n);
    if (rc < 0)
        return rc;
    if (n >= size || n > SS_STRING_MAX)
        return ss_fail(r, field, "string of %u bytes, at most %zu fit",
                       (unsigned)n, size ? size - 1 : 0);
    rc = take(r, field, (size_t)n, &p);
    if (rc < 0)
        return rc;
    if (memchr(p, '\0', (size_t)n))
        return ss_fail(r, field, "string holds a NUL byte");
    memcpy(buf, p, (size_t)n);
    buf[n] = '\0';
    return 0;
}
