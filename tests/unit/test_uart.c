/* 16550A UART driven through the real bus, with a recording irq sink and a
 * real unix-socket backend whose client end the test holds. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../hw/bus.h"
#include "../../hw/irq.h"
#include "../../hw/uart.h"
#include "../../lib/charbe.h"
#include "../../lib/log.h"
#include "../../lib/loop.h"

#define BASE UART_COM1_BASE
#define IRQ UART_COM1_IRQ

/* Register offsets and bits, spelled out so the test reads like the
 * datasheet rather than like the implementation. */
enum { RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2,
       LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

struct irq_recorder {
    bool level[16];
    unsigned raises[16], lowers[16];
    unsigned redundant; /* calls that did not change the line */
};

struct fixture {
    struct loop *loop;
    struct bus bus;
    struct irq_recorder rec;
    struct irq_sink sink;
    struct charbe *be;
    struct uart uart;
    char dir[64], path[128];
    int client;
};

static void rec_isa_irq(void *opaque, unsigned irq, bool level)
{
    struct irq_recorder *r = opaque;

    assert_true(irq < 16);
    if (r->level[irq] == level)
        r->redundant++;
    r->level[irq] = level;
    if (level)
        r->raises[irq]++;
    else
        r->lowers[irq]++;
}

static const struct irq_sink_ops rec_ops = {.isa_irq = rec_isa_irq};

static void pump_until_connected(struct fixture *f)
{
    uint64_t end = loop_now_ns() + 2000000000ull;

    while (!charbe_connected(f->be) && loop_now_ns() < end)
        loop_run_once(f->loop, 10);
    assert_true(charbe_connected(f->be));
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char spec[160];

    assert_non_null(f);
    assert_int_equal(loop_create(&f->loop), 0);
    bus_init(&f->bus);
    f->sink = (struct irq_sink){.ops = &rec_ops, .opaque = &f->rec};
    strcpy(f->dir, "/tmp/test_uart.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/com1", f->dir);
    snprintf(spec, sizeof(spec), "unix:%s,server,nowait", f->path);
    assert_int_equal(charbe_open(f->loop, spec, NULL, &f->be), 0);
    assert_int_equal(uart_init(&f->uart, "com1", &f->bus, BASE, IRQ, &f->sink,
                               f->loop, f->be),
                     0);
    f->client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    strcpy(sa.sun_path, f->path);
    assert_int_equal(connect(f->client, (struct sockaddr *)&sa, sizeof(sa)), 0);
    pump_until_connected(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    unsigned redundant = f->rec.redundant;

    uart_fini(&f->uart);
    assert_false(f->rec.level[IRQ]);
    assert_null(bus_find(&f->bus, BUS_PIO, BASE));
    charbe_close(f->be);
    close(f->client);
    bus_fini(&f->bus);
    loop_destroy(f->loop);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    /* The sink is only told about changes. */
    assert_int_equal(redundant, 0);
    return 0;
}

static uint8_t inb(struct fixture *f, unsigned reg)
{
    return (uint8_t)bus_read(&f->bus, BUS_PIO, BASE + reg, 1);
}

static void outb(struct fixture *f, unsigned reg, uint8_t val)
{
    bus_write(&f->bus, BUS_PIO, BASE + reg, val, 1);
}

static void pump_for(struct fixture *f, int ms)
{
    uint64_t end = loop_now_ns() + (uint64_t)ms * 1000000;

    while (loop_now_ns() < end)
        loop_run_once(f->loop, 2);
}

/* Pumps until LSR shows data or a second passes. */
static bool pump_until_data(struct fixture *f)
{
    uint64_t end = loop_now_ns() + 1000000000ull;

    while (!(inb(f, LSR) & 0x01) && loop_now_ns() < end)
        loop_run_once(f->loop, 5);
    return inb(f, LSR) & 0x01;
}

static void client_send(struct fixture *f, const void *buf, size_t len)
{
    assert_int_equal(write(f->client, buf, len), (ssize_t)len);
}

static void client_expect(struct fixture *f, const void *buf, size_t len)
{
    uint8_t got[512];
    size_t have = 0;

    assert_true(len <= sizeof(got));
    while (have < len) {
        struct pollfd p = {.fd = f->client, .events = POLLIN};
        ssize_t n;

        assert_int_equal(poll(&p, 1, 1000), 1);
        n = read(f->client, got + have, len - have);
        assert_true(n > 0);
        have += (size_t)n;
    }
    assert_memory_equal(got, buf, len);
}

static bool client_has_nothing(struct fixture *f, int ms)
{
    struct pollfd p = {.fd = f->client, .events = POLLIN};

    return poll(&p, 1, ms) == 0;
}

static void expect_reset_state(struct fixture *f)
{
    assert_int_equal(inb(f, IER), 0x00);
    assert_int_equal(inb(f, IIR), 0x01);
    assert_int_equal(inb(f, LCR), 0x00);
    assert_int_equal(inb(f, MCR), 0x00);
    assert_int_equal(inb(f, LSR), 0x60);
    assert_int_equal(inb(f, MSR), 0xb0);
    assert_int_equal(inb(f, SCR), 0x00);
    outb(f, LCR, 0x80);
    assert_int_equal(inb(f, DLL), 0x0c);
    assert_int_equal(inb(f, DLM), 0x00);
    outb(f, LCR, 0x00);
    assert_false(f->rec.level[IRQ]);
}

/* ---- tests ---- */

static void test_reset_values(void **state)
{
    struct fixture *f = *state;

    expect_reset_state(f);
    /* Dirty everything, with an interrupt on the line, then reset. */
    outb(f, LCR, 0x80);
    outb(f, DLL, 0x01);
    outb(f, DLM, 0x80);
    outb(f, LCR, 0x1b);
    outb(f, FCR, 0xc7);
    outb(f, SCR, 0x5a);
    outb(f, MCR, 0x0b);
    outb(f, IER, 0x0f);
    assert_true(f->rec.level[IRQ]);
    client_send(f, "z", 1);
    assert_true(pump_until_data(f));
    uart_reset(&f->uart);
    assert_false(f->rec.level[IRQ]);
    expect_reset_state(f);
}

static void test_divisor_latch(void **state)
{
    struct fixture *f = *state;

    outb(f, LCR, 0x83);
    outb(f, DLL, 0x01);
    outb(f, DLM, 0x02);
    assert_int_equal(inb(f, DLL), 0x01);
    assert_int_equal(inb(f, DLM), 0x02);
    assert_int_equal(inb(f, LCR), 0x83);
    /* Writes to the latch do not transmit or touch IER. */
    assert_true(client_has_nothing(f, 20));
    outb(f, LCR, 0x03);
    assert_int_equal(inb(f, IER), 0x00);
    outb(f, IER, 0x05);
    assert_int_equal(inb(f, IER), 0x05);
    outb(f, LCR, 0x83);
    assert_int_equal(inb(f, DLL), 0x01);
    assert_int_equal(inb(f, DLM), 0x02);
    outb(f, LCR, 0x03);
    assert_int_equal(inb(f, IER), 0x05);
}

static void test_register_read_back(void **state)
{
    struct fixture *f = *state;

    for (unsigned v = 0; v < 256; v++) {
        outb(f, LCR, (uint8_t)v);
        assert_int_equal(inb(f, LCR), v);
        outb(f, SCR, (uint8_t)v);
        assert_int_equal(inb(f, SCR), v);
    }
    outb(f, LCR, 0x03);
    /* Unimplemented bits read as zero. */
    outb(f, IER, 0xff);
    assert_int_equal(inb(f, IER), 0x0f);
    outb(f, IER, 0x00);
    outb(f, MCR, 0xe3);
    assert_int_equal(inb(f, MCR), 0x03);
    /* LSR and MSR ignore writes. */
    outb(f, LSR, 0xff);
    assert_int_equal(inb(f, LSR), 0x60);
    outb(f, MSR, 0x0f);
    assert_int_equal(inb(f, MSR), 0xb0);
}

static void test_tx_to_backend_byte_exact(void **state)
{
    struct fixture *f = *state;
    uint8_t all[256];

    for (unsigned i = 0; i < 256; i++) {
        all[i] = (uint8_t)i;
        outb(f, THR, (uint8_t)i);
        /* Instantaneous transmission: empty again straight away. */
        assert_int_equal(inb(f, LSR), 0x60);
    }
    client_expect(f, all, 256);
    /* The same through the FIFO. */
    outb(f, FCR, 0x07);
    for (unsigned i = 0; i < 256; i++)
        outb(f, THR, (uint8_t)(255 - i));
    for (unsigned i = 0; i < 256; i++)
        all[i] = (uint8_t)(255 - i);
    client_expect(f, all, 256);
    assert_true(client_has_nothing(f, 20));
    assert_int_equal(f->uart.tx_bytes, 512);
}

static void test_rx_trigger_levels(void **state)
{
    struct fixture *f = *state;
    static const uint8_t fcr_bits[4] = {0x00, 0x40, 0x80, 0xc0};
    static const unsigned levels[4] = {1, 4, 8, 14};

    for (unsigned t = 0; t < 4; t++) {
        uart_reset(&f->uart);
        outb(f, FCR, 0x01 | fcr_bits[t]);
        outb(f, IER, 0x01);
        outb(f, MCR, 0x10); /* loopback: the test is the sender */
        for (unsigned i = 0; i < levels[t]; i++) {
            /* No loop iteration runs here, so no character timeout. */
            assert_int_equal(inb(f, IIR), 0xc1);
            outb(f, THR, (uint8_t)('a' + i));
        }
        assert_int_equal(inb(f, IIR), 0xc4);
        assert_int_equal(inb(f, RBR), 'a');
        assert_int_equal(inb(f, IIR), 0xc1); /* below the trigger again */
        for (unsigned i = 1; i < levels[t]; i++)
            assert_int_equal(inb(f, RBR), 'a' + i);
        assert_int_equal(inb(f, LSR), 0x60);
    }
}

static void test_rx_from_backend(void **state)
{
    struct fixture *f = *state;
    const char *msg = "abcdefghijklmnopqrstuvwxyz";
    uint8_t got[26];
    size_t have = 0;
    uint8_t lsr_seen = 0;

    outb(f, FCR, 0x41); /* trigger 4 */
    outb(f, IER, 0x01);
    outb(f, MCR, 0x08);
    client_send(f, msg, 26);
    /* The first batch stops at the trigger level: the guest is interrupted
     * before the FIFO is full. */
    assert_true(pump_until_data(f));
    assert_int_equal(inb(f, IIR), 0xc4);
    assert_true(f->rec.level[IRQ]);
    assert_int_equal(f->uart.rx.count, 4);

    while (have < 26) {
        uint64_t end = loop_now_ns() + 1000000000ull;

        while (!(inb(f, LSR) & 0x01) && loop_now_ns() < end)
            loop_run_once(f->loop, 5);
        for (uint8_t lsr; (lsr = inb(f, LSR)) & 0x01;) {
            lsr_seen |= lsr;
            assert_true(have < 26);
            got[have++] = inb(f, RBR);
        }
        assert_true(loop_now_ns() < end);
    }
    assert_memory_equal(got, msg, 26);
    assert_int_equal(lsr_seen & 0x02, 0); /* never an overrun */
    assert_int_equal(inb(f, LSR), 0x60);
    assert_int_equal(f->uart.rx_bytes, 26);
    pump_for(f, 20);
    assert_int_equal(inb(f, IIR), 0xc1);
    assert_false(f->rec.level[IRQ]);
}

static void test_rx_16450_mode(void **state)
{
    struct fixture *f = *state;
    uint8_t got[200], sent[200];

    for (unsigned i = 0; i < sizeof(sent); i++)
        sent[i] = (uint8_t)(i * 13);
    outb(f, IER, 0x01);
    outb(f, MCR, 0x08);
    client_send(f, sent, sizeof(sent));
    for (unsigned i = 0; i < sizeof(sent); i++) {
        assert_true(pump_until_data(f));
        /* One character at a time and nothing more until it is read. */
        pump_for(f, i < 3 ? 10 : 0);
        assert_int_equal(inb(f, IIR), 0x04);
        assert_true(f->rec.level[IRQ]);
        assert_int_equal(inb(f, LSR), 0x61);
        got[i] = inb(f, RBR);
        assert_int_equal(inb(f, LSR), 0x60);
        assert_false(f->rec.level[IRQ]);
    }
    assert_memory_equal(got, sent, sizeof(sent));
}

static void test_character_timeout(void **state)
{
    struct fixture *f = *state;
    uint64_t t0, elapsed;

    /* 2400 baud 8N1: four characters take 16.7 ms. */
    outb(f, LCR, 0x83);
    outb(f, DLL, 0x30);
    outb(f, DLM, 0x00);
    outb(f, LCR, 0x03);
    outb(f, FCR, 0xc1); /* trigger 14 */
    outb(f, IER, 0x01);
    outb(f, MCR, 0x08);
    client_send(f, "xyz", 3);
    assert_true(pump_until_data(f));
    t0 = loop_now_ns();
    assert_int_equal(inb(f, IIR), 0xc1);
    assert_false(f->rec.level[IRQ]);
    while (inb(f, IIR) != 0xcc && loop_now_ns() - t0 < 1000000000ull)
        loop_run_once(f->loop, 1);
    elapsed = loop_now_ns() - t0;
    assert_int_equal(inb(f, IIR), 0xcc);
    assert_true(f->rec.level[IRQ]);
    assert_true(elapsed >= 10000000); /* not before ~four character times */
    assert_int_equal(f->uart.rx.count, 3);

    /* Reading a character clears it; the rest time out again. */
    assert_int_equal(inb(f, RBR), 'x');
    assert_int_equal(inb(f, IIR), 0xc1);
    assert_false(f->rec.level[IRQ]);
    pump_for(f, 60);
    assert_int_equal(inb(f, IIR), 0xcc);
    assert_int_equal(inb(f, RBR), 'y');
    assert_int_equal(inb(f, RBR), 'z');
    pump_for(f, 60);
    assert_int_equal(inb(f, IIR), 0xc1);
    assert_false(f->rec.level[IRQ]);

    /* Masked by ERBFI, and absent in 16450 mode. */
    outb(f, IER, 0x00);
    client_send(f, "w", 1);
    assert_true(pump_until_data(f));
    pump_for(f, 60);
    assert_int_equal(inb(f, IIR), 0xc1);
    outb(f, IER, 0x01);
    assert_int_equal(inb(f, IIR), 0xcc);
    outb(f, FCR, 0x00);
    assert_int_equal(inb(f, IIR), 0x01); /* mode switch emptied the FIFO */
    client_send(f, "v", 1);
    assert_true(pump_until_data(f));
    pump_for(f, 60);
    assert_int_equal(inb(f, IIR), 0x04);
}

static void test_iir_priorities(void **state)
{
    struct fixture *f = *state;

    outb(f, FCR, 0x01); /* trigger 1 */
    outb(f, MCR, 0x10); /* loopback, all modem outputs off */
    outb(f, IER, 0x0f);
    /* Modem lines fell (CTS, DSR, DCD) and THR is empty: THRE wins. */
    assert_int_equal(inb(f, IIR), 0xc2);
    for (unsigned i = 0; i < 17; i++)
        outb(f, THR, (uint8_t)i);
    /* Overrun beats everything. */
    assert_int_equal(inb(f, IIR), 0xc6);
    assert_int_equal(inb(f, LSR), 0x63);
    /* Then received data. */
    assert_int_equal(inb(f, IIR), 0xc4);
    for (unsigned i = 0; i < 16; i++) {
        assert_int_equal(inb(f, IIR), 0xc4);
        assert_int_equal(inb(f, RBR), i);
    }
    /* Then THR empty, cleared by the IIR read that reports it. */
    assert_int_equal(inb(f, IIR), 0xc2);
    /* Then modem status, cleared by reading MSR. */
    assert_int_equal(inb(f, IIR), 0xc0);
    assert_int_equal(inb(f, MSR), 0x0b);
    assert_int_equal(inb(f, IIR), 0xc1);
    assert_int_equal(inb(f, MSR), 0x00);
    /* Loopback keeps all of it off the line. */
    assert_int_equal(f->rec.raises[IRQ], 0);
}

static void test_thre_semantics(void **state)
{
    struct fixture *f = *state;

    outb(f, MCR, 0x08);
    assert_int_equal(f->rec.raises[IRQ], 0);
    outb(f, IER, 0x02);
    assert_true(f->rec.level[IRQ]);
    assert_int_equal(inb(f, IIR), 0x02);
    assert_false(f->rec.level[IRQ]);
    assert_int_equal(inb(f, IIR), 0x01);

    /* Every THR write re-raises it, with a falling edge in between when it
     * was still pending, so an edge-triggered PIC sees each one. */
    outb(f, THR, 'A');
    assert_true(f->rec.level[IRQ]);
    assert_int_equal(f->rec.raises[IRQ], 2);
    assert_int_equal(f->rec.lowers[IRQ], 1);
    outb(f, THR, 'B');
    assert_true(f->rec.level[IRQ]);
    assert_int_equal(f->rec.raises[IRQ], 3);
    assert_int_equal(f->rec.lowers[IRQ], 2);
    client_expect(f, "AB", 2);

    /* Disabling masks it; enabling again re-arms it even after an IIR
     * read cleared it (drivers probe for this). */
    outb(f, IER, 0x00);
    assert_false(f->rec.level[IRQ]);
    assert_int_equal(inb(f, IIR), 0x01);
    outb(f, IER, 0x02);
    assert_int_equal(inb(f, IIR), 0x02);
    assert_int_equal(inb(f, IIR), 0x01);
    outb(f, IER, 0x02);
    assert_int_equal(inb(f, IIR), 0x02);

    /* An IIR read that reports something else leaves THRE pending. */
    outb(f, IER, 0x03);
    client_send(f, "r", 1);
    assert_true(pump_until_data(f));
    assert_int_equal(inb(f, IIR), 0x04);
    assert_int_equal(inb(f, IIR), 0x04);
    assert_int_equal(inb(f, RBR), 'r');
    assert_int_equal(inb(f, IIR), 0x02);
    assert_int_equal(inb(f, IIR), 0x01);
    assert_false(f->rec.level[IRQ]);
}

static void test_out2_gates_the_line(void **state)
{
    struct fixture *f = *state;

    outb(f, IER, 0x02);
    outb(f, SCR, 0); /* any access: nothing reaches the sink */
    assert_int_equal(f->rec.raises[IRQ], 0);
    outb(f, MCR, 0x08);
    assert_true(f->rec.level[IRQ]);
    outb(f, MCR, 0x03);
    assert_false(f->rec.level[IRQ]);
    outb(f, MCR, 0x0b);
    assert_true(f->rec.level[IRQ]);
    outb(f, MCR, 0x18); /* OUT2 with loopback: the pin is forced off */
    assert_false(f->rec.level[IRQ]);
    outb(f, MCR, 0x08);
    assert_true(f->rec.level[IRQ]);
    assert_int_equal(f->rec.raises[IRQ], 3);
    assert_int_equal(f->rec.lowers[IRQ], 2);
    /* Only IRQ 4 was ever touched. */
    for (unsigned i = 0; i < 16; i++)
        if (i != IRQ)
            assert_int_equal(f->rec.raises[i] + f->rec.lowers[i], 0);
}

static void test_loopback(void **state)
{
    struct fixture *f = *state;
    uint8_t expect;

    /* Linux's probe: LOOP|OUT2|RTS reads back DCD|CTS. */
    outb(f, MCR, 0x1a);
    assert_int_equal(inb(f, MSR) & 0xf0, 0x90);
    for (unsigned v = 0; v < 16; v++) {
        outb(f, MCR, (uint8_t)(0x10 | v));
        expect = (v & 0x02 ? 0x10 : 0) | (v & 0x01 ? 0x20 : 0) |
                 (v & 0x04 ? 0x40 : 0) | (v & 0x08 ? 0x80 : 0);
        assert_int_equal(inb(f, MSR) & 0xf0, expect);
    }

    /* Deltas: DSR falls, then RI rises (no TERI) and falls (TERI). */
    outb(f, MCR, 0x13);
    (void)inb(f, MSR);
    outb(f, MCR, 0x12);
    assert_int_equal(inb(f, MSR), 0x12);
    assert_int_equal(inb(f, MSR), 0x10);
    outb(f, MCR, 0x16);
    assert_int_equal(inb(f, MSR), 0x50);
    outb(f, MCR, 0x12);
    assert_int_equal(inb(f, MSR), 0x14);

    /* TX goes to RX, not to the host; host input waits. */
    client_send(f, "host", 4);
    pump_for(f, 30);
    assert_int_equal(inb(f, LSR), 0x60);
    outb(f, THR, 'L');
    assert_int_equal(inb(f, LSR), 0x61);
    assert_int_equal(inb(f, RBR), 'L');
    assert_int_equal(inb(f, LSR), 0x60);
    assert_true(client_has_nothing(f, 20));

    /* Leaving loopback: the far end's lines come back (with deltas), and
     * the waiting host input is delivered. */
    outb(f, MCR, 0x00);
    assert_int_equal(inb(f, MSR), 0xba); /* CTS was already up */
    assert_true(pump_until_data(f));
    assert_int_equal(inb(f, RBR), 'h');
    outb(f, THR, '!');
    client_expect(f, "!", 1);
}

static void test_fifo_overflow(void **state)
{
    struct fixture *f = *state;

    outb(f, FCR, 0x01);
    outb(f, MCR, 0x10);
    for (unsigned i = 0; i < 20; i++)
        outb(f, THR, (uint8_t)(0x40 + i));
    assert_int_equal(f->uart.rx.count, 16);
    assert_int_equal(inb(f, LSR), 0x63);
    assert_int_equal(inb(f, LSR), 0x61); /* OE is cleared by the read */
    /* The FIFO kept the first sixteen; the rest were lost. */
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(inb(f, RBR), 0x40 + i);
    assert_int_equal(inb(f, LSR), 0x60);
    assert_int_equal(f->uart.rx_overruns, 4);

    /* Without FIFOs the holding register is overwritten. */
    outb(f, FCR, 0x00);
    outb(f, THR, 'a');
    outb(f, THR, 'b');
    assert_int_equal(inb(f, LSR), 0x63);
    assert_int_equal(inb(f, RBR), 'b');
    assert_int_equal(inb(f, LSR), 0x60);
}

static void test_fifo_control(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(inb(f, IIR) & 0xc0, 0x00);
    outb(f, FCR, 0x01);
    assert_int_equal(inb(f, IIR), 0xc1);
    outb(f, MCR, 0x10);
    for (unsigned i = 0; i < 5; i++)
        outb(f, THR, (uint8_t)i);
    assert_int_equal(inb(f, LSR), 0x61);
    /* Transmitter reset leaves the receiver alone. */
    outb(f, FCR, 0x05);
    assert_int_equal(inb(f, LSR), 0x61);
    assert_int_equal(f->uart.rx.count, 5);
    /* Receiver reset empties it. */
    outb(f, FCR, 0x03);
    assert_int_equal(inb(f, LSR), 0x60);
    assert_int_equal(f->uart.rx.count, 0);
    /* Other bits do nothing without FIFO enable; disabling empties. */
    outb(f, THR, 'q');
    outb(f, FCR, 0xc6);
    assert_int_equal(inb(f, IIR), 0x01);
    assert_int_equal(inb(f, LSR), 0x60);
    /* Sixteen characters fit only with FIFOs on. */
    outb(f, FCR, 0x01);
    for (unsigned i = 0; i < 16; i++)
        outb(f, THR, (uint8_t)i);
    assert_int_equal(inb(f, LSR), 0x61);
}

static void test_wide_and_hostile_accesses(void **state)
{
    struct fixture *f = *state;
    uint64_t v;
    unsigned seed = 12345;

    /* A dword write splits into THR, IER, FCR and LCR bytes. */
    bus_write(&f->bus, BUS_PIO, BASE, 0x03c10041, 4);
    client_expect(f, "A", 1);
    assert_int_equal(inb(f, LCR), 0x03);
    assert_int_equal(inb(f, IIR), 0xc1);
    outb(f, SCR, 0x77);
    v = bus_read(&f->bus, BUS_PIO, BASE + 4, 4);
    assert_int_equal(v, 0x77b06000u);
    v = bus_read(&f->bus, BUS_PIO, BASE, 8);
    assert_int_equal(v, 0x77b0600003c10000ull);
    /* Straddling the end of the port range is split too. */
    v = bus_read(&f->bus, BUS_PIO, BASE + 6, 4);
    assert_int_equal(v, 0xffff77b0u);

    /* Anything at all, in any order: the FIFO never overflows. */
    for (unsigned i = 0; i < 200000; i++) {
        unsigned sizes[4] = {1, 2, 4, 8}, reg, size;

        seed = seed * 1103515245 + 12345;
        reg = (seed >> 8) % 10;
        size = sizes[(seed >> 20) & 3];
        seed = seed * 1103515245 + 12345;
        if (seed & 0x80000000u)
            bus_write(&f->bus, BUS_PIO, BASE + reg, seed >> 3, size);
        else
            (void)bus_read(&f->bus, BUS_PIO, BASE + reg, size);
        assert_true(f->uart.rx.count <= UART_FIFO_SIZE);
        assert_true(f->uart.rx.head < UART_FIFO_SIZE);
        if ((i & 1023) == 0) {
            char sink[4096];

            loop_run_once(f->loop, 0);
            while (recv(f->client, sink, sizeof(sink), MSG_DONTWAIT) > 0)
                ;
        }
    }
}

static void test_init_errors_and_fini(void **state)
{
    struct fixture *f = *state;
    struct uart other;
    FILE *logs = fopen("/dev/null", "w");

    log_set_stream(logs);
    assert_int_equal(uart_init(&other, "bad", &f->bus, UART_COM2_BASE, 16,
                               &f->sink, f->loop, NULL),
                     -EINVAL);
    assert_int_equal(uart_init(&other, "bad", &f->bus, 0xfffc, 3, &f->sink,
                               f->loop, NULL),
                     -EINVAL);
    assert_int_equal(uart_init(&other, "clash", &f->bus, BASE + 4, 3,
                               &f->sink, f->loop, NULL),
                     -EEXIST);
    log_set_stream(NULL);
    fclose(logs);

    /* A second port without a backend: TX vanishes, loopback works. */
    assert_int_equal(uart_init(&other, "com2", &f->bus, UART_COM2_BASE,
                               UART_COM2_IRQ, &f->sink, f->loop, NULL),
                     0);
    assert_non_null(bus_find(&f->bus, BUS_PIO, UART_COM2_BASE + 7));
    bus_write(&f->bus, BUS_PIO, UART_COM2_BASE, 'x', 1);
    bus_write(&f->bus, BUS_PIO, UART_COM2_BASE + 4, 0x18, 1);
    bus_write(&f->bus, BUS_PIO, UART_COM2_BASE, 'y', 1);
    assert_int_equal(bus_read(&f->bus, BUS_PIO, UART_COM2_BASE, 1), 'y');
    bus_write(&f->bus, BUS_PIO, UART_COM2_BASE + 4, 0x08, 1);
    bus_write(&f->bus, BUS_PIO, UART_COM2_BASE + 1, 0x02, 1);
    assert_true(f->rec.level[UART_COM2_IRQ]);
    assert_false(f->rec.level[IRQ]);
    uart_fini(&other);
    assert_false(f->rec.level[UART_COM2_IRQ]);
    assert_null(bus_find(&f->bus, BUS_PIO, UART_COM2_BASE));
    assert_true(client_has_nothing(f, 10));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reset_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_divisor_latch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_to_backend_byte_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_trigger_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_from_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_16450_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_character_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iir_priorities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thre_semantics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out2_gates_the_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_control, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wide_and_hostile_accesses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_errors_and_fini, setup, teardown),
    };

    log_set_level(LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
