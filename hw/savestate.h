/* Device state save and restore: xen-dm's own stream format.
 *
 * The stream is opaque to libxl (it copies it into the migration stream as
 * EMULATOR_CONTEXT and hands it back on restore, xen-dm-interfaces.md §7),
 * so only xen-dm reads it, possibly on another host and possibly after it
 * was tampered with: everything in it is untrusted input.
 *
 * Layout, all integers little-endian:
 *
 *   header   u32 magic           0x534d4458, the bytes "XDMS"
 *            u32 format version  SS_FORMAT_VERSION
 *            u32 stream length   every byte, header and CRC included
 *   section  u8  marker          'S' (0x53)
 *            u8  name length     1 .. SS_NAME_MAX
 *            ..  name            [a-z0-9-], no NUL
 *            u32 instance        which one of several (a devfn, a port)
 *            u32 section version the device's own, 1 and up
 *            u32 payload length
 *            ..  payload         fields in the order the device writes them
 *   ... more sections, in any order, each (name, instance) at most once ...
 *   end      u8  marker          'E' (0x45)
 *            u32 CRC-32          zlib's crc32 of every byte before it
 *
 * Fields inside a payload are the same little-endian integers, byte arrays
 * of a length the section version fixes, and strings (u16 length, then
 * that many bytes, no NUL).
 *
 * Writing: ss_writer_init, then per device ss_begin_section, ss_put_*,
 * ss_end_section, and ss_writer_finish; errors are sticky, so callers may
 * check only the result of ss_end_section / ss_writer_finish.
 *
 * Reading: ss_reader_init (or ss_reader_read_fd) checks the magic, the
 * format version, the length, the CRC and the section structure (lengths,
 * names, duplicates) before any device sees a byte. Each device then opens
 * its own section, reads its fields with ss_get_*, validates them (ss_fail
 * on anything impossible) and closes it; ss_reader_finish finally refuses a
 * stream holding sections nobody asked for. The first error is sticky and
 * logged once, naming the section and field, and every later call returns
 * it. Errors: -EBADMSG (truncated, malformed, bad CRC, missing, duplicate or
 * unknown section), -EPROTONOSUPPORT (format or section version), -EINVAL
 * (a value no device could hold, or state from a different device), -EFBIG
 * (longer than SS_MAX_STREAM), -ENOMEM, or the errno of a failed read. */
#ifndef XENDM_HW_SAVESTATE_H
#define XENDM_HW_SAVESTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SS_MAGIC 0x534d4458u
#define SS_FORMAT_VERSION 1
#define SS_HEADER_SIZE 12
#define SS_TRAILER_SIZE 5 /* end marker and CRC */
#define SS_MARK_SECTION 0x53
#define SS_MARK_END 0x45
#define SS_NAME_MAX 31
/* Bounds on what a stream may make us allocate or walk. A whole machine
 * with every PCI slot filled is a few tens of KiB and a few hundred
 * sections. */
#define SS_MAX_STREAM (16u << 20)
#define SS_MAX_SECTIONS 1024
#define SS_STRING_MAX 4096

struct ss_writer {
    uint8_t *buf;
    size_t len, cap;
    size_t section_len_at; /* offset of the open section's length, 0: none */
    bool finished;
    int error;
};

void ss_writer_init(struct ss_writer *w);
void ss_writer_fini(struct ss_writer *w);
/* name: 1 .. SS_NAME_MAX of [a-z0-9-]; -EINVAL otherwise, or if a section
 * is already open. */
int ss_begin_section(struct ss_writer *w, const char *name, uint32_t instance,
                     uint32_t version);
int ss_end_section(struct ss_writer *w);
int ss_put_u8(struct ss_writer *w, uint8_t v);
int ss_put_u16(struct ss_writer *w, uint16_t v);
int ss_put_u32(struct ss_writer *w, uint32_t v);
int ss_put_u64(struct ss_writer *w, uint64_t v);
int ss_put_bool(struct ss_writer *w, bool v);
int ss_put_bytes(struct ss_writer *w, const void *p, size_t n);
/* -ENAMETOOLONG beyond SS_STRING_MAX bytes. */
int ss_put_string(struct ss_writer *w, const char *s);
/* Appends the end marker, fills in the length and the CRC. The stream is
 * then w->buf[0 .. w->len). */
int ss_writer_finish(struct ss_writer *w);

/* Writes all of buf to fd (a file, pipe or socket; EINTR and EAGAIN are
 * waited out). */
int ss_write_fd(int fd, const uint8_t *buf, size_t len);

struct ss_section {
    char name[SS_NAME_MAX + 1];
    uint32_t instance, version;
    size_t offset, len; /* of the payload, in the stream */
    bool consumed;
};

struct ss_reader {
    const uint8_t *buf;
    size_t len;
    uint8_t *owned; /* buf, when read from an fd */
    struct ss_section *sections;
    size_t n_sections;
    struct ss_section *cur; /* open section, or NULL */
    struct ss_section *last; /* the section closed last */
    size_t pos, end;        /* read position and end of cur's payload */
    int error;
    char message[320];
};

/* Checks and indexes the stream in buf[0 .. len), which must stay valid
 * until ss_reader_fini. On failure r can still be asked for the error and
 * must still be finalised. */
int ss_reader_init(struct ss_reader *r, const uint8_t *buf, size_t len);
/* Reads exactly one stream from fd (its header says how long; nothing
 * after it is consumed) and checks it as ss_reader_init does. */
int ss_reader_read_fd(struct ss_reader *r, int fd);
void ss_reader_fini(struct ss_reader *r);

bool ss_has_section(const struct ss_reader *r, const char *name,
                    uint32_t instance);
/* Opens the section; -EBADMSG if the stream has none, -EPROTONOSUPPORT if
 * its version is 0 or above max_version. *version receives it. */
int ss_open_section(struct ss_reader *r, const char *name, uint32_t instance,
                    uint32_t max_version, uint32_t *version);
/* -EBADMSG if payload bytes were left unread; returns the sticky error if
 * one happened inside the section. */
int ss_close_section(struct ss_reader *r);

/* Each reads a field of the open section, or fails (setting *v to 0) when
 * the payload has too few bytes left. field names the field in the log. */
int ss_get_u8(struct ss_reader *r, const char *field, uint8_t *v);
int ss_get_u16(struct ss_reader *r, const char *field, uint16_t *v);
int ss_get_u32(struct ss_reader *r, const char *field, uint32_t *v);
int ss_get_u64(struct ss_reader *r, const char *field, uint64_t *v);
/* Only 0 and 1 are booleans. */
int ss_get_bool(struct ss_reader *r, const char *field, bool *v);
int ss_get_bytes(struct ss_reader *r, const char *field, void *p, size_t n);
/* NUL-terminates into buf; a string of size bytes or more, or one holding a
 * NUL, fails. */
int ss_get_string(struct ss_reader *r, const char *field, char *buf,
                  size_t size);

/* Records that field holds a value the device cannot take (-EINVAL) and
 * logs it with the section's name; returns the sticky error. A no-op
 * returning the earlier error if there was one. */
int ss_fail(struct ss_reader *r, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool ss_ok(const struct ss_reader *r);
/* -EBADMSG naming the first section nobody opened. */
int ss_reader_finish(struct ss_reader *r);
/* The first error, "" if none. */
const char *ss_reader_error(const struct ss_reader *r);

/* Makes an edited stream of len bytes self-consistent again: stores len in
 * its header and recomputes the CRC over everything before the last four
 * bytes. For tests and tools that want to reach the parser behind the CRC;
 * -EINVAL if len cannot hold a header and a CRC. */
int ss_stream_reseal(uint8_t *buf, size_t len);

#endif
