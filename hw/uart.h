/* A 16550A UART on the ISA bus (COM1 0x3F8/IRQ 4, COM2 0x2F8/IRQ 3, ...),
 * with its bytes going to and coming from a host character backend.
 *
 * Eight byte-wide registers; the bus splits wider guest accesses into
 * bytes. The IRQ line reaches the interrupt controller only while MCR.OUT2
 * is set, as on a PC where OUT2 enables the board's interrupt buffer. */
#ifndef XENDM_HW_UART_H
#define XENDM_HW_UART_H

#include <stdbool.h>
#include <stdint.h>

#include "../lib/charbe.h"
#include "../lib/loop.h"
#include "bus.h"
#include "irq.h"

#define UART_COM1_BASE 0x3f8
#define UART_COM1_IRQ 4
#define UART_COM2_BASE 0x2f8
#define UART_COM2_IRQ 3
#define UART_COM3_BASE 0x3e8
#define UART_COM4_BASE 0x2e8

#define UART_NR_PORTS 8
#define UART_FIFO_SIZE 16
/* The 1.8432 MHz crystal of a PC serial port, divided by 16. */
#define UART_BAUD_BASE 115200

struct uart_fifo {
    uint8_t data[UART_FIFO_SIZE];
    unsigned head, count;
};

struct uart {
    char name[32];
    struct bus_region region;
    struct bus *bus;
    const struct irq_sink *irq_sink;
    unsigned irq;
    bool irq_level; /* what the sink was last told */
    struct loop *loop;
    struct charbe *be;
    struct charbe_ops be_ops;
    struct loop_timer rx_timeout; /* the character-timeout counter */

    uint16_t divisor; /* DLM:DLL */
    uint8_t ier, lcr, mcr, lsr_errors, msr, scr, fcr;
    uint8_t rbr;              /* last character read, for reads of an empty RBR */
    unsigned rx_trigger;      /* FCR receiver trigger level in characters */
    struct uart_fifo rx;      /* holds one character when FIFOs are off */
    bool thr_ipending;        /* THR-empty interrupt latched */
    bool timeout_ipending;    /* character timeout latched */
    uint64_t char_time_ns;    /* one frame at the programmed rate */

    uint64_t tx_bytes, rx_bytes, rx_overruns;
};

/* Maps the eight ports at base and attaches to be (which may be NULL: TX
 * is discarded and nothing is received). The caller keeps ownership of be
 * and closes it after uart_fini(). Returns -EINVAL for an IRQ above 15 or
 * a base whose ports run past 0xFFFF, or bus_map()'s error. */
int uart_init(struct uart *u, const char *name, struct bus *bus, uint16_t base,
              unsigned irq, const struct irq_sink *irq_sink, struct loop *loop,
              struct charbe *be);
/* Unmaps, lowers the line, detaches from the backend. */
void uart_fini(struct uart *u);
/* Power-on state: IER 0, IIR 0x01, LCR 0, MCR 0, LSR 0x60, MSR 0xB0,
 * SCR 0, divisor 12 (9600 baud), FIFOs off and empty; lowers the line. */
void uart_reset(struct uart *u);

struct ss_writer;
struct ss_reader;
/* Section "uart", instance = base port: every register, the receive FIFO
 * and the latched interrupts. Load re-arms the character timeout if the
 * FIFO holds characters (a full period: the time already spent is not
 * kept), sets the IRQ line to what the registers say and lets the backend
 * deliver again. Counters (tx_bytes, ...) are the host's, not restored. */
int uart_save(const struct uart *u, struct ss_writer *w);
int uart_load(struct uart *u, struct ss_reader *r);

#endif
