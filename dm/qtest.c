#include "qtest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"

#define QTEST_MAX_LINE 4096
#define QTEST_MAX_WORDS 8
#define QTEST_MAX_BULK (1u << 20) /* read/write/memset of at most 1 MiB */

struct qtest_client {
    char line[QTEST_MAX_LINE];
    size_t len;
    bool overlong; /* discarding the rest of a too-long line */
    bool intercept;
};

struct qtest {
    struct machine *m;
    struct chardev *chr;
    struct machine_observer observer;
    bool irq_level[256];
};

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;

    if (!s || !*s || *s == '-')
        return -EINVAL;
    errno = 0;
    *out = strtoull(s, &end, 0);
    return errno || *end ? -EINVAL : 0;
}

static uint64_t access_pio(struct qtest *q, uint64_t port, unsigned size,
                           bool read, uint64_t value)
{
    ioreq_t req = {.addr = port, .data = value, .count = 1, .size = size,
                   .state = STATE_IOREQ_READY,
                   .dir = read ? IOREQ_READ : IOREQ_WRITE,
                   .type = IOREQ_TYPE_PIO};

    dispatch_ioreq(&q->m->dispatch, &req);
    return req.data;
}

/* Guest-physical access: local RAM directly (as the vCPU would see it; under
 * Xen such accesses never reach a device model), anything else as an MMIO
 * ioreq. */
static uint64_t access_mem(struct qtest *q, uint64_t addr, unsigned size,
                           bool read, uint64_t value)
{
    struct local_ram *ram = &q->m->ram;
    ioreq_t req = {.addr = addr, .data = value, .count = 1, .size = size,
                   .state = STATE_IOREQ_READY,
                   .dir = read ? IOREQ_READ : IOREQ_WRITE,
                   .type = IOREQ_TYPE_COPY};

    if (size <= ram->size && addr <= ram->size - size) {
        if (read) {
            value = 0;
            memcpy(&value, ram->base + addr, size);
            return value;
        }
        memcpy(ram->base + addr, &value, size);
        return 0;
    }
    dispatch_ioreq(&q->m->dispatch, &req);
    return req.data;
}

static unsigned width_of(char suffix)
{
    switch (suffix) {
    case 'b': return 1;
    case 'w': return 2;
    case 'l': return 4;
    case 'q': return 8;
    default: return 0;
    }
}

static void bulk_read(struct qtest *q, struct conn *c, uint64_t addr,
                      uint64_t len)
{
    char *hex = malloc(len * 2 + 1);
    static const char digits[] = "0123456789abcdef";

    if (!hex) {
        conn_printf(c, "FAIL out of memory\n");
        return;
    }
    for (uint64_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)access_mem(q, addr + i, 1, true, 0);

        hex[2 * i] = digits[b >> 4];
        hex[2 * i + 1] = digits[b & 15];
    }
    hex[len * 2] = '\0';
    conn_printf(c, "OK 0x%s\n", hex);
    free(hex);
}

static int hex_nibble(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static void bulk_write(struct qtest *q, struct conn *c, uint64_t addr,
                       uint64_t len, const char *data)
{
    size_t digits;

    if (strncmp(data, "0x", 2)) {
        conn_printf(c, "FAIL data must start with 0x\n");
        return;
    }
    data += 2;
    digits = strlen(data);
    /* As QEMU: missing bytes are written as zero. */
    for (uint64_t i = 0; i < len; i++) {
        int hi = 0, lo = 0;

        if (2 * i + 1 < digits) {
            hi = hex_nibble(data[2 * i]);
            lo = hex_nibble(data[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                conn_printf(c, "FAIL bad hex data\n");
                return;
            }
        }
        access_mem(q, addr + i, 1, false, (uint64_t)(hi << 4 | lo));
    }
    conn_printf(c, "OK\n");
}

static void handle_command(struct qtest *q, struct conn *c, char **w, int n)
{
    struct qtest_client *cl = conn_get_user(c);
    const char *cmd = w[0];
    uint64_t a, b, v;
    unsigned size;

    if (!strcmp(cmd, "irq_intercept_in") || !strcmp(cmd, "irq_intercept_out")) {
        if (n != 2) {
            conn_printf(c, "FAIL %s needs a device path\n", cmd);
            return;
        }
        /* The machine has one interrupt fabric: whichever device path the
         * test names (ioapic, i8259, /machine/...), it sees every line. */
        cl->intercept = true;
        conn_printf(c, "OK\n");
        return;
    }
    if (!strcmp(cmd, "endianness")) {
        conn_printf(c, "OK little\n");
        return;
    }
    if ((!strncmp(cmd, "out", 3) || !strncmp(cmd, "in", 2)) &&
        (size = width_of(cmd[strlen(cmd) - 1])) && size <= 4 &&
        strlen(cmd) == (cmd[0] == 'o' ? 4u : 3u)) {
        bool read = cmd[0] == 'i';

        if (n != (read ? 2 : 3) || parse_u64(w[1], &a) < 0 ||
            (!read && parse_u64(w[2], &v) < 0)) {
            conn_printf(c, "FAIL bad arguments to %s\n", cmd);
            return;
        }
        if (read)
            conn_printf(c, "OK 0x%04" PRIx64 "\n",
                        access_pio(q, a, size, true, 0));
        else {
            access_pio(q, a, size, false, v);
            conn_printf(c, "OK\n");
        }
        return;
    }
    if ((!strncmp(cmd, "read", 4) || !strncmp(cmd, "write", 5)) &&
        strlen(cmd) == (cmd[0] == 'r' ? 5u : 6u) &&
        (size = width_of(cmd[strlen(cmd) - 1]))) {
        bool read = cmd[0] == 'r';

        if (n != (read ? 2 : 3) || parse_u64(w[1], &a) < 0 ||
            (!read && parse_u64(w[2], &v) < 0)) {
            conn_printf(c, "FAIL bad arguments to %s\n", cmd);
            return;
        }
        if (read)
            conn_printf(c, "OK 0x%016" PRIx64 "\n",
                        access_mem(q, a, size, true, 0));
        else {
            access_mem(q, a, size, false, v);
            conn_printf(c, "OK\n");
        }
        return;
    }
    if (!strcmp(cmd, "read") || !strcmp(cmd, "write") || !strcmp(cmd, "memset")) {
        int want = cmd[0] == 'r' ? 3 : 4;

        if (n != want || parse_u64(w[1], &a) < 0 || parse_u64(w[2], &b) < 0 ||
            b == 0 || b > QTEST_MAX_BULK ||
            (cmd[0] == 'm' && (parse_u64(w[3], &v) < 0 || v > 0xff))) {
            conn_printf(c, "FAIL bad arguments to %s (size 1..%u)\n", cmd,
                        QTEST_MAX_BULK);
            return;
        }
        if (cmd[0] == 'r')
            bulk_read(q, c, a, b);
        else if (cmd[0] == 'w')
            bulk_write(q, c, a, b, w[3]);
        else {
            for (uint64_t i = 0; i < b; i++)
                access_mem(q, a + i, 1, false, v);
            conn_printf(c, "OK\n");
        }
        return;
    }
    log_ratelimited(LOG_INFO, "qtest: unknown command '%.64s'", cmd);
    conn_printf(c, "FAIL Unknown command '%.64s'\n", cmd);
}

static void handle_line(struct qtest *q, struct conn *c, char *line, size_t len)
{
    char *words[QTEST_MAX_WORDS + 1], *save = NULL, *tok;
    int n = 0;

    /* A NUL would hide the rest of the line from the parser, and a line
     * that starts with one would look blank and get no reply at all. */
    if (memchr(line, '\0', len)) {
        conn_printf(c, "FAIL NUL byte in command\n");
        return;
    }

    for (tok = strtok_r(line, " \t\r", &save); tok;
         tok = strtok_r(NULL, " \t\r", &save)) {
        if (n == QTEST_MAX_WORDS) {
            conn_printf(c, "FAIL too many arguments\n");
            return;
        }
        words[n++] = tok;
    }
    words[n] = NULL;
    if (n)
        handle_command(q, c, words, n);
}

static void qtest_data(void *opaque, struct conn *c, const char *buf, size_t len)
{
    struct qtest *q = opaque;
    struct qtest_client *cl = conn_get_user(c);

    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n') {
            if (cl->overlong) {
                cl->overlong = false;
                conn_printf(c, "FAIL line too long\n");
            } else {
                cl->line[cl->len] = '\0';
                handle_line(q, c, cl->line, cl->len);
            }
            cl->len = 0;
            continue;
        }
        if (cl->overlong)
            continue;
        if (cl->len == QTEST_MAX_LINE - 1) {
            cl->overlong = true;
            log_ratelimited(LOG_WARN, "qtest: line longer than %d bytes "
                            "discarded", QTEST_MAX_LINE);
            continue;
        }
        cl->line[cl->len++] = buf[i];
    }
}

static void qtest_opened(void *opaque, struct conn *c)
{
    struct qtest_client *cl = calloc(1, sizeof(*cl));

    if (!cl) {
        conn_close(c);
        return;
    }
    conn_set_user(c, cl);
}

static void qtest_closed(void *opaque, struct conn *c)
{
    free(conn_get_user(c));
    conn_set_user(c, NULL);
}

static const struct conn_ops qtest_conn_ops = {
    .data = qtest_data,
    .closed = qtest_closed,
    .opened = qtest_opened,
};

struct irq_report {
    unsigned line;
    bool level;
};

static void send_irq(void *arg, struct conn *c)
{
    const struct irq_report *r = arg;
    struct qtest_client *cl = conn_get_user(c);

    if (cl && cl->intercept)
        conn_printf(c, "IRQ %s %u\n", r->level ? "raise" : "lower", r->line);
}

static void qtest_irq(void *opaque, unsigned line, bool level)
{
    struct qtest *q = opaque;
    struct irq_report r = {line, level};

    /* Only changes are reported, as QEMU's qtest does. */
    if (line < 256) {
        if (q->irq_level[line] == level)
            return;
        q->irq_level[line] = level;
    }
    chardev_for_each_conn(q->chr, send_irq, &r);
}

int qtest_start(struct machine *m, const struct chardev_spec *spec,
                struct qtest **out)
{
    struct qtest *q = calloc(1, sizeof(*q));
    int rc;

    if (!q)
        return -ENOMEM;
    q->m = m;
    q->observer = (struct machine_observer){.irq = qtest_irq, .opaque = q};
    machine_add_observer(m, &q->observer);
    rc = chardev_open(m->loop, spec, &qtest_conn_ops, q, &q->chr);
    if (rc < 0) {
        log_err("qtest: cannot open %s: %s",
                spec->path ? spec->path : "stdio", strerror(-rc));
        machine_remove_observer(m, &q->observer);
        free(q);
        return rc;
    }
    *out = q;
    return 0;
}

void qtest_stop(struct qtest *q)
{
    if (!q)
        return;
    machine_remove_observer(q->m, &q->observer);
    chardev_close(q->chr);
    free(q);
}
