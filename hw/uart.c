/* 16550A UART.
 *
 * Two modelling choices, both because there is no real line behind the
 * port:
 *
 * - Transmission is instantaneous. A character written to THR goes to the
 *   backend (or, in loopback, into the receiver) during the write itself,
 *   so the transmitter is empty again before the guest's next access: LSR
 *   always shows THRE and TEMT, the TX FIFO never holds anything, and the
 *   THR-empty interrupt is re-latched right after every write. A guest
 *   that polls LSR never waits; one driven by THRE interrupts gets one per
 *   write, as it would from a very fast line. Host-side flow control is
 *   the backend's business (it queues, then drops).
 *
 * - The character timeout is a loop timer of four character times at the
 *   programmed rate and frame format, re-armed whenever a character enters
 *   the RX FIFO or the guest reads one, as the datasheet describes. Raising
 *   it as soon as input pauses would be simpler, but drivers that set a
 *   high trigger level expect a short burst to arrive whole before they
 *   are interrupted, and the timer gives them that.
 *
 * Input arrives through the backend's flow control: the receiver offers
 * room up to the trigger level, then one character at a time, so a burst
 * from the host cannot overrun the FIFO and the guest sees its trigger
 * interrupt before the FIFO is full. Overruns can still happen in
 * loopback, where the guest itself is the sender. */
#include "uart.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../lib/log.h"
#include "savestate.h"

/* Register offsets, PC16550D names. Offsets 0 and 1 are the divisor latch
 * while LCR.DLAB is set. */
enum uart_reg {
    UART_RBR = 0, /* receiver buffer (read) */
    UART_THR = 0, /* transmitter holding (write) */
    UART_DLL = 0, /* divisor latch, low byte */
    UART_IER = 1, /* interrupt enable */
    UART_DLM = 1, /* divisor latch, high byte */
    UART_IIR = 2, /* interrupt identification (read) */
    UART_FCR = 2, /* FIFO control (write) */
    UART_LCR = 3, /* line control */
    UART_MCR = 4, /* modem control */
    UART_LSR = 5, /* line status */
    UART_MSR = 6, /* modem status */
    UART_SCR = 7, /* scratch */
};

#define IER_ERBFI 0x01 /* received data available (and timeout) */
#define IER_ETBEI 0x02 /* transmitter holding register empty */
#define IER_ELSI 0x04  /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK 0x0f

/* IIR bits 3:0, in priority order. */
#define IIR_NO_INT 0x01
#define IIR_RLS 0x06  /* receiver line status */
#define IIR_RDA 0x04  /* received data available */
#define IIR_CTI 0x0c  /* character timeout indication */
#define IIR_THRE 0x02 /* transmitter holding register empty */
#define IIR_MS 0x00   /* modem status */
#define IIR_FIFOS_ENABLED 0xc0

#define FCR_FIFO_ENABLE 0x01
#define FCR_RCVR_RESET 0x02
#define FCR_XMIT_RESET 0x04
#define FCR_DMA_MODE 0x08
#define FCR_RCVR_TRIGGER 0xc0

#define LCR_WLS 0x03 /* word length - 5 */
#define LCR_STB 0x04 /* two stop bits */
#define LCR_PEN 0x08 /* parity enable */
#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_PE 0x04
#define LSR_FE 0x08
#define LSR_BI 0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define LSR_ERRORS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_DELTAS 0x0f
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

#define UART_RESET_DIVISOR 12 /* 9600 baud */

TRACE_POINT(trace_uart_read, "uart_read");
TRACE_POINT(trace_uart_write, "uart_write");
TRACE_POINT(trace_uart_irq, "uart_irq");

static const unsigned rx_trigger_levels[4] = {1, 4, 8, 14};

static bool fifo_mode(const struct uart *u)
{
    return u->fcr & FCR_FIFO_ENABLE;
}

/* ---- receiver ---- */

static void rx_clear(struct uart *u)
{
    u->rx.head = u->rx.count = 0;
    u->timeout_ipending = false;
    loop_timer_cancel(&u->rx_timeout);
}

static void rx_push(struct uart *u, uint8_t c)
{
    unsigned capacity = fifo_mode(u) ? UART_FIFO_SIZE : 1;

    if (u->rx.count >= capacity) {
        /* Overrun: a full FIFO keeps its contents and the new character is
         * lost; a 16450-mode holding register is overwritten by it. */
        u->lsr_errors |= LSR_OE;
        u->rx_overruns++;
        if (!fifo_mode(u))
            u->rx.data[u->rx.head] = c;
        return;
    }
    u->rx.data[(u->rx.head + u->rx.count) % UART_FIFO_SIZE] = c;
    u->rx.count++;
}

static uint8_t rx_pop(struct uart *u)
{
    uint8_t c = u->rx.data[u->rx.head];

    u->rx.head = (u->rx.head + 1) % UART_FIFO_SIZE;
    u->rx.count--;
    return c;
}

static void rx_timeout_restart(struct uart *u)
{
    if (fifo_mode(u) && u->rx.count)
        loop_timer_arm(&u->rx_timeout, 4 * u->char_time_ns);
    else
        loop_timer_cancel(&u->rx_timeout);
}

/* ---- interrupts ---- */

static uint8_t pending_interrupt(const struct uart *u)
{
    if ((u->ier & IER_ELSI) && (u->lsr_errors & LSR_ERRORS))
        return IIR_RLS;
    if (u->ier & IER_ERBFI) {
        if (u->timeout_ipending)
            return IIR_CTI;
        if (u->rx.count && (!fifo_mode(u) || u->rx.count >= u->rx_trigger))
            return IIR_RDA;
    }
    if ((u->ier & IER_ETBEI) && u->thr_ipending)
        return IIR_THRE;
    if ((u->ier & IER_EDSSI) && (u->msr & MSR_DELTAS))
        return IIR_MS;
    return IIR_NO_INT;
}

static void update_irq(struct uart *u)
{
    /* On a PC, OUT2 enables the buffer between the UART's INTR pin and the
     * interrupt controller; loopback forces the OUT2 pin inactive, so no
     * interrupt leaves the board while the UART is testing itself. */
    bool level = pending_interrupt(u) != IIR_NO_INT && (u->mcr & MCR_OUT2) &&
                 !(u->mcr & MCR_LOOP);

    if (level == u->irq_level)
        return;
    u->irq_level = level;
    trace(trace_uart_irq, "%s: irq %u %s", u->name, u->irq,
          level ? "raise" : "lower");
    irq_set_isa(u->irq_sink, u->irq, level);
}

static void rx_timeout_expired(void *opaque)
{
    struct uart *u = opaque;

    if (fifo_mode(u) && u->rx.count) {
        u->timeout_ipending = true;
        update_irq(u);
    }
}

/* ---- line and modem ---- */

static void update_char_time(struct uart *u)
{
    unsigned bits = 1 + 5 + (u->lcr & LCR_WLS) + (u->lcr & LCR_PEN ? 1 : 0) +
                    (u->lcr & LCR_STB ? 2 : 1);
    /* A divisor of 0 stops a real baud generator; taking it as 1 keeps the
     * timeout finite rather than modelling a port that never times out. */
    uint64_t divisor = u->divisor ? u->divisor : 1;

    u->char_time_ns = (uint64_t)bits * divisor * 1000000000ull / UART_BAUD_BASE;
}

static uint8_t modem_inputs_for(uint8_t mcr)
{
    uint8_t in = 0;

    if (!(mcr & MCR_LOOP)) {
        /* The far end of a virtual line is always there and ready. */
        return MSR_CTS | MSR_DSR | MSR_DCD;
    }
    /* Loopback wires the modem outputs to the inputs inside the chip. */
    if (mcr & MCR_RTS)
        in |= MSR_CTS;
    if (mcr & MCR_DTR)
        in |= MSR_DSR;
    if (mcr & MCR_OUT1)
        in |= MSR_RI;
    if (mcr & MCR_OUT2)
        in |= MSR_DCD;
    return in;
}

static uint8_t modem_inputs(const struct uart *u)
{
    return modem_inputs_for(u->mcr);
}

static void update_modem_status(struct uart *u)
{
    uint8_t now = modem_inputs(u), changed = (u->msr ^ now) & 0xf0;
    uint8_t deltas = u->msr & MSR_DELTAS;

    if (changed & MSR_CTS)
        deltas |= MSR_DCTS;
    if (changed & MSR_DSR)
        deltas |= MSR_DDSR;
    if (changed & MSR_DCD)
        deltas |= MSR_DDCD;
    if ((changed & MSR_RI) && !(now & MSR_RI))
        deltas |= MSR_TERI; /* trailing edge only */
    u->msr = now | deltas;
}

/* ---- transmitter ---- */

static void uart_transmit(struct uart *u, uint8_t c)
{
    /* Writing THR clears the THR-empty interrupt; the line drops here even
     * though the character is sent at once, so an edge-triggered PIC sees
     * a fresh edge for the next THR-empty interrupt. */
    u->thr_ipending = false;
    update_irq(u);
    if (u->mcr & MCR_LOOP) {
        rx_push(u, c);
        rx_timeout_restart(u);
    } else {
        charbe_write(u->be, &c, 1);
    }
    u->tx_bytes++;
    u->thr_ipending = true;
    update_irq(u);
}

/* ---- backend frontend ---- */

static size_t uart_can_receive(void *opaque)
{
    struct uart *u = opaque;

    /* In loopback the receiver hears only our own transmitter; host input
     * waits in the backend until loopback ends. */
    if (u->mcr & MCR_LOOP)
        return 0;
    if (!fifo_mode(u))
        return u->rx.count ? 0 : 1;
    if (u->rx.count >= UART_FIFO_SIZE)
        return 0;
    return u->rx.count < u->rx_trigger ? u->rx_trigger - u->rx.count : 1;
}

static void uart_receive(void *opaque, const uint8_t *buf, size_t len)
{
    struct uart *u = opaque;

    for (size_t i = 0; i < len; i++)
        rx_push(u, buf[i]);
    u->rx_bytes += len;
    rx_timeout_restart(u);
    update_irq(u);
}

static void accept_host_input(struct uart *u)
{
    if (uart_can_receive(u))
        charbe_accept_input(u->be);
}

/* ---- registers ---- */

static uint8_t read_rbr(struct uart *u)
{
    if (u->rx.count)
        u->rbr = rx_pop(u);
    u->timeout_ipending = false;
    rx_timeout_restart(u);
    update_irq(u);
    accept_host_input(u);
    return u->rbr;
}

static uint8_t read_iir(struct uart *u)
{
    uint8_t id = pending_interrupt(u);

    if (id == IIR_THRE) {
        /* Reading IIR while THR-empty is the reported interrupt clears it. */
        u->thr_ipending = false;
        update_irq(u);
    }
    return id | (fifo_mode(u) ? IIR_FIFOS_ENABLED : 0);
}

static uint8_t read_lsr(struct uart *u)
{
    uint8_t lsr = LSR_THRE | LSR_TEMT | u->lsr_errors;

    if (u->rx.count)
        lsr |= LSR_DR;
    if (u->lsr_errors) {
        u->lsr_errors = 0;
        update_irq(u);
    }
    return lsr;
}

static uint8_t read_msr(struct uart *u)
{
    uint8_t msr = u->msr;

    if (msr & MSR_DELTAS) {
        u->msr &= ~MSR_DELTAS;
        update_irq(u);
    }
    return msr;
}

static uint64_t uart_read(void *opaque, uint64_t offset, unsigned size)
{
    struct uart *u = opaque;
    unsigned reg = offset & (UART_NR_PORTS - 1);
    uint8_t val = 0xff;
    bool dlab = u->lcr & LCR_DLAB;

    switch (reg) {
    case UART_RBR:
        val = dlab ? (uint8_t)u->divisor : read_rbr(u);
        break;
    case UART_IER:
        val = dlab ? (uint8_t)(u->divisor >> 8) : u->ier;
        break;
    case UART_IIR:
        val = read_iir(u);
        break;
    case UART_LCR:
        val = u->lcr;
        break;
    case UART_MCR:
        val = u->mcr;
        break;
    case UART_LSR:
        val = read_lsr(u);
        break;
    case UART_MSR:
        val = read_msr(u);
        break;
    case UART_SCR:
        val = u->scr;
        break;
    }
    trace(trace_uart_read, "%s: reg %u -> 0x%02x", u->name, reg, val);
    return val;
}

static void write_fcr(struct uart *u, uint8_t val)
{
    bool was_enabled = fifo_mode(u);

    if (!(val & FCR_FIFO_ENABLE)) {
        /* The other bits only take effect together with FIFO enable. */
        if (was_enabled)
            rx_clear(u);
        u->fcr = 0;
    } else {
        /* Switching FIFO mode on empties both FIFOs. The TX FIFO is always
         * empty here, so XMIT reset has nothing to do. */
        if (!was_enabled || (val & FCR_RCVR_RESET))
            rx_clear(u);
        u->fcr = val & (FCR_FIFO_ENABLE | FCR_DMA_MODE | FCR_RCVR_TRIGGER);
        u->rx_trigger = rx_trigger_levels[(val & FCR_RCVR_TRIGGER) >> 6];
    }
    rx_timeout_restart(u);
    update_irq(u);
    accept_host_input(u);
}

static void write_mcr(struct uart *u, uint8_t val)
{
    bool was_loop = u->mcr & MCR_LOOP;

    u->mcr = val & MCR_MASK;
    update_modem_status(u);
    update_irq(u);
    if (was_loop && !(u->mcr & MCR_LOOP))
        accept_host_input(u);
}

static void uart_write(void *opaque, uint64_t offset, uint64_t value,
                       unsigned size)
{
    struct uart *u = opaque;
    unsigned reg = offset & (UART_NR_PORTS - 1);
    uint8_t val = (uint8_t)value;
    bool dlab = u->lcr & LCR_DLAB;

    trace(trace_uart_write, "%s: reg %u <- 0x%02x", u->name, reg, val);
    switch (reg) {
    case UART_THR:
        if (dlab) {
            u->divisor = (u->divisor & 0xff00) | val;
            update_char_time(u);
        } else {
            uart_transmit(u, val);
        }
        break;
    case UART_IER:
        if (dlab) {
            u->divisor = (uint16_t)((u->divisor & 0x00ff) | (val << 8));
            update_char_time(u);
        } else {
            u->ier = val & IER_MASK;
            /* Enabling the THR-empty interrupt while THR is empty (it always
             * is) raises it at once; drivers test for exactly this. */
            if (u->ier & IER_ETBEI)
                u->thr_ipending = true;
            update_irq(u);
        }
        break;
    case UART_FCR:
        write_fcr(u, val);
        break;
    case UART_LCR:
        u->lcr = val;
        update_char_time(u);
        break;
    case UART_MCR:
        write_mcr(u, val);
        break;
    case UART_LSR:
    case UART_MSR:
        /* Factory-test writes on real parts; nothing to do here. */
        break;
    case UART_SCR:
        u->scr = val;
        break;
    }
}

static const struct bus_region_ops uart_region_ops = {
    .read = uart_read,
    .write = uart_write,
    .max_access = 1,
};

void uart_reset(struct uart *u)
{
    loop_timer_cancel(&u->rx_timeout);
    u->divisor = UART_RESET_DIVISOR;
    u->ier = 0;
    u->lcr = 0;
    u->mcr = 0;
    u->lsr_errors = 0;
    u->scr = 0;
    u->fcr = 0;
    u->rbr = 0;
    u->rx_trigger = 1;
    rx_clear(u);
    u->thr_ipending = false;
    u->msr = modem_inputs(u);
    update_char_time(u);
    update_irq(u);
    accept_host_input(u);
}

int uart_init(struct uart *u, const char *name, struct bus *bus, uint16_t base,
              unsigned irq, const struct irq_sink *irq_sink, struct loop *loop,
              struct charbe *be)
{
    int rc;

    if (!bus || !loop || irq > 15 ||
        (uint32_t)base + UART_NR_PORTS > BUS_PIO_LIMIT)
        return -EINVAL;
    memset(u, 0, sizeof(*u));
    snprintf(u->name, sizeof(u->name), "%s", name ? name : "serial");
    u->bus = bus;
    u->irq = irq;
    u->irq_sink = irq_sink;
    u->loop = loop;
    loop_timer_init(loop, &u->rx_timeout, rx_timeout_expired, u);
    uart_reset(u);
    bus_region_init(&u->region, u->name, UART_NR_PORTS, &uart_region_ops, u);
    rc = bus_map(bus, BUS_PIO, &u->region, base);
    if (rc < 0) {
        log_err("%s: cannot map ports 0x%x-0x%x: %s", u->name, base,
                base + UART_NR_PORTS - 1, bus->error);
        return rc;
    }
    u->be = be;
    u->be_ops = (struct charbe_ops){.can_receive = uart_can_receive,
                                    .receive = uart_receive,
                                    .opaque = u};
    if (be)
        charbe_set_frontend(be, &u->be_ops);
    return 0;
}

void uart_fini(struct uart *u)
{
    if (u->be)
        charbe_set_frontend(u->be, NULL);
    u->be = NULL;
    loop_timer_cancel(&u->rx_timeout);
    if (u->region.mapped)
        bus_unmap(u->bus, &u->region);
    if (u->irq_level) {
        u->irq_level = false;
        irq_set_isa(u->irq_sink, u->irq, false);
    }
}

/* --- save and restore ----------------------------------------------------- */

#define UART_SS_NAME "uart"
#define UART_SS_VERSION 1

struct uart_saved {
    uint16_t divisor;
    uint8_t ier, lcr, mcr, lsr_errors, msr, scr, fcr, rbr;
    uint8_t rx_head, rx_count;
    uint8_t rx_data[UART_FIFO_SIZE];
    bool thr_ipending, timeout_ipending;
};

int uart_save(const struct uart *u, struct ss_writer *w)
{
    ss_begin_section(w, UART_SS_NAME, (uint32_t)u->region.base,
                     UART_SS_VERSION);
    ss_put_u16(w, u->divisor);
    ss_put_u8(w, u->ier);
    ss_put_u8(w, u->lcr);
    ss_put_u8(w, u->mcr);
    ss_put_u8(w, u->lsr_errors);
    ss_put_u8(w, u->msr);
    ss_put_u8(w, u->scr);
    ss_put_u8(w, u->fcr);
    ss_put_u8(w, u->rbr);
    ss_put_u8(w, (uint8_t)u->rx.head);
    ss_put_u8(w, (uint8_t)u->rx.count);
    ss_put_bytes(w, u->rx.data, sizeof(u->rx.data));
    ss_put_bool(w, u->thr_ipending);
    ss_put_bool(w, u->timeout_ipending);
    return ss_end_section(w);
}

/* What the registers can hold given how they are written: anything else
 * would make the FIFO index run off its buffer or show the guest a state
 * no 16550A reaches. */
static void check_saved(struct ss_reader *r, const struct uart_saved *sv)
{
    bool fifo = sv->fcr & FCR_FIFO_ENABLE;

    if (sv->ier & ~IER_MASK)
        ss_fail(r, "ier", "0x%02x has reserved bits", sv->ier);
    else if (sv->mcr & ~MCR_MASK)
        ss_fail(r, "mcr", "0x%02x has reserved bits", sv->mcr);
    else if (sv->lsr_errors & ~LSR_ERRORS)
        ss_fail(r, "lsr_errors", "0x%02x is not a set of error bits",
                sv->lsr_errors);
    else if ((sv->msr & ~MSR_DELTAS) != modem_inputs_for(sv->mcr))
        ss_fail(r, "msr", "0x%02x: the modem lines read 0x%02x with MCR "
                "0x%02x", sv->msr, modem_inputs_for(sv->mcr), sv->mcr);
    else if (sv->fcr & ~(FCR_FIFO_ENABLE | FCR_DMA_MODE | FCR_RCVR_TRIGGER))
        ss_fail(r, "fcr", "0x%02x has bits FCR never keeps", sv->fcr);
    else if (!fifo && sv->fcr)
        ss_fail(r, "fcr", "0x%02x: FIFO options without FIFO enable",
                sv->fcr);
    else if (sv->rx_head >= UART_FIFO_SIZE)
        ss_fail(r, "rx.head", "%u is past the %d-byte FIFO", sv->rx_head,
                UART_FIFO_SIZE);
    else if (sv->rx_count > (fifo ? UART_FIFO_SIZE : 1))
        ss_fail(r, "rx.count", "%u characters, the receiver holds %d in "
                "%s mode", sv->rx_count, fifo ? UART_FIFO_SIZE : 1,
                fifo ? "FIFO" : "16450");
    else if (sv->timeout_ipending && !(fifo && sv->rx_count))
        ss_fail(r, "timeout_ipending", "a character timeout with %s",
                fifo ? "an empty FIFO" : "FIFOs off");
}

int uart_load(struct uart *u, struct ss_reader *r)
{
    struct uart_saved sv = {0};
    uint32_t version;
    int rc;

    rc = ss_open_section(r, UART_SS_NAME, (uint32_t)u->region.base,
                         UART_SS_VERSION, &version);
    if (rc < 0)
        return rc;
    /* Any divisor (0 included, see update_char_time), LCR, SCR and RBR. */
    ss_get_u16(r, "divisor", &sv.divisor);
    ss_get_u8(r, "ier", &sv.ier);
    ss_get_u8(r, "lcr", &sv.lcr);
    ss_get_u8(r, "mcr", &sv.mcr);
    ss_get_u8(r, "lsr_errors", &sv.lsr_errors);
    ss_get_u8(r, "msr", &sv.msr);
    ss_get_u8(r, "scr", &sv.scr);
    ss_get_u8(r, "fcr", &sv.fcr);
    ss_get_u8(r, "rbr", &sv.rbr);
    ss_get_u8(r, "rx.head", &sv.rx_head);
    ss_get_u8(r, "rx.count", &sv.rx_count);
    ss_get_bytes(r, "rx.data", sv.rx_data, sizeof(sv.rx_data));
    ss_get_bool(r, "thr_ipending", &sv.thr_ipending);
    ss_get_bool(r, "timeout_ipending", &sv.timeout_ipending);
    if (ss_ok(r))
        check_saved(r, &sv);
    rc = ss_close_section(r);
    if (rc < 0)
        return rc;

    loop_timer_cancel(&u->rx_timeout);
    u->divisor = sv.divisor;
    u->ier = sv.ier;
    u->lcr = sv.lcr;
    u->mcr = sv.mcr;
    u->lsr_errors = sv.lsr_errors;
    u->msr = sv.msr;
    u->scr = sv.scr;
    u->fcr = sv.fcr;
    u->rbr = sv.rbr;
    /* Outside FIFO mode the trigger level is never consulted; FCR is
     * written again before it is. */
    u->rx_trigger = fifo_mode(u) ? rx_trigger_levels[(u->fcr &
                                                      FCR_RCVR_TRIGGER) >> 6]
                                 : 1;
    memcpy(u->rx.data, sv.rx_data, sizeof(u->rx.data));
    u->rx.head = sv.rx_head;
    u->rx.count = sv.rx_count;
    u->thr_ipending = sv.thr_ipending;
    u->timeout_ipending = sv.timeout_ipending;
    update_char_time(u);
    if (!u->timeout_ipending)
        rx_timeout_restart(u);
    update_irq(u);
    accept_host_input(u);
    return 0;
}
