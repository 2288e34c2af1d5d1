/* 8254 PIT and port 0x61.
 *
 * Facts from the Intel 8254 data sheet (order no. 231164: modes, control
 * word, counter latch and read-back commands, status byte) and the PIIX3
 * data sheet (NMI status and control register at 0x61); reset state and
 * the reads of 0x43 follow QEMU's hw/timer/i8254*.c.
 *
 * Every channel's count and OUT are pure functions of the clock tick (see
 * count_at and out_at); the state only records when the count was loaded
 * and what the gate did. */
#include "i8254.h"

#include <errno.h>
#include <string.h>

#include "../lib/log.h"

TRACE_POINT(trace_i8254_write, "i8254_write");
TRACE_POINT(trace_i8254_irq, "i8254_irq");

#define NEVER UINT64_MAX
#define NS_PER_S 1000000000ull

/* Control word (port 0x43). */
#define CW_SC_SHIFT 6
#define CW_SC_READBACK 3
#define CW_RW_SHIFT 4
#define CW_RW_LATCH 0
#define CW_M_SHIFT 1
#define CW_BCD 0x01
/* Read-back command: bits 5 and 4 are active low. */
#define RB_NOT_COUNT 0x20
#define RB_NOT_STATUS 0x10
/* Status byte. */
#define ST_OUT 0x80
#define ST_NULL_COUNT 0x40

enum { RW_LSB = 1, RW_MSB = 2, RW_WORD = 3 };
/* latch_state: what the next read of a latched count returns. */
enum { LATCH_NONE, LATCH_LSB, LATCH_MSB, LATCH_WORD_LSB, LATCH_WORD_MSB };

static uint64_t ns_to_tick(uint64_t ns)
{
    return (uint64_t)((unsigned __int128)ns * I8254_HZ / NS_PER_S);
}

/* The first instant whose tick is n. */
static uint64_t tick_to_ns(uint64_t n)
{
    unsigned __int128 ns =
        ((unsigned __int128)n * NS_PER_S + I8254_HZ - 1) / I8254_HZ;

    return ns >= NEVER ? NEVER - 1 : (uint64_t)ns;
}

static uint64_t now_tick(const struct i8254 *pit)
{
    return ns_to_tick(hw_clock_now(pit->clock));
}

/* Modes 6 and 7 are aliases of 2 and 3; the status byte shows them as
 * written, so the channel keeps the raw value. */
static unsigned base_mode(const struct i8254_channel *c)
{
    return c->mode > 5 ? c->mode - 4u : c->mode;
}

static uint32_t modulus(const struct i8254_channel *c)
{
    return c->bcd ? 10000 : 0x10000;
}

struct segment {
    uint32_t count;
    uint64_t load;
};

/* The count and load tick in force at tick t (a count written in mode 2
 * or 3 while counting takes over at switch_tick). Pure: state is only
 * folded forward by collapse(). */
static struct segment segment_at(const struct i8254_channel *c, uint64_t t)
{
    if (c->switch_pending && t >= c->switch_tick)
        return (struct segment){c->next_count, c->switch_tick};
    return (struct segment){c->count, c->load_tick};
}

static void collapse(struct i8254_channel *c, uint64_t t)
{
    if (c->switch_pending && t >= c->switch_tick) {
        c->count = c->next_count;
        c->load_tick = c->switch_tick;
        c->switch_pending = false;
    }
}

/* Counting has started and is not held by the gate. */
static bool running(const struct i8254_channel *c)
{
    unsigned m = base_mode(c);

    if (!c->counting || c->paused)
        return false;
    return !((m == 1 || m == 5) && !c->triggered);
}

static uint64_t elapsed(const struct i8254_channel *c, struct segment s,
                        uint64_t t)
{
    if (c->paused)
        return c->paused_elapsed;
    return t > s.load ? t - s.load : 0;
}

static bool out_in_segment(unsigned mode, struct segment s, uint64_t d)
{
    uint64_t n = s.count;

    switch (mode) {
    case 0:
    case 1:
        return d >= n;
    case 2:
        return d % n != n - 1;
    case 3:
        return d % n < (n + 1) / 2;
    default: /* 4, 5 */
        return d != n;
    }
}

static bool out_at(const struct i8254_channel *c, uint64_t t)
{
    unsigned m = base_mode(c);

    if (!c->counting)
        return m != 0; /* the control word sets OUT: low in mode 0 */
    if ((m == 1 || m == 5) && !c->triggered)
        return true;
    if (c->paused && (m == 2 || m == 3))
        return true; /* gate low forces OUT high */
    return out_in_segment(m, segment_at(c, t), elapsed(c, segment_at(c, t), t));
}

/* The first tick after t at which OUT changes, within one segment. */
static uint64_t change_in_segment(unsigned mode, struct segment s, uint64_t t)
{
    uint64_t n = s.count, d = t > s.load ? t - s.load : 0, r;

    t = s.load + d;
    switch (mode) {
    case 0:
    case 1:
        return d < n ? s.load + n : NEVER;
    case 2:
        r = d % n;
        return r == n - 1 ? t + 1 : t + (n - 1 - r);
    case 3:
        r = d % n;
        return r < (n + 1) / 2 ? t + ((n + 1) / 2 - r) : t + (n - r);
    default: /* 4, 5 */
        if (d < n)
            return s.load + n;
        return d == n ? t + 1 : NEVER;
    }
}

static uint64_t next_change(const struct i8254_channel *c, uint64_t t)
{
    unsigned m = base_mode(c);
    uint64_t first;

    if (!running(c))
        return NEVER; /* only a port write changes OUT now */
    if (c->switch_pending && t < c->switch_tick) {
        first = change_in_segment(m, (struct segment){c->count, c->load_tick},
                                  t);
        if (first < c->switch_tick)
            return first;
        if (out_at(c, c->switch_tick) != out_at(c, c->switch_tick - 1))
            return c->switch_tick;
        t = c->switch_tick;
    }
    return change_in_segment(m, segment_at(c, t), t);
}

static bool rising_edge_between(const struct i8254_channel *c, uint64_t t0,
                                uint64_t t1)
{
    uint64_t t = t0;

    /* OUT alternates, so a rising edge is among the first two changes. */
    for (int i = 0; i < 2; i++) {
        t = next_change(c, t);
        if (t == NEVER || t > t1)
            return false;
        if (out_at(c, t))
            return true;
    }
    return false;
}

static uint16_t to_bcd(uint32_t v)
{
    v %= 10000;
    return (uint16_t)((v / 1000) << 12 | (v / 100 % 10) << 8 |
                      (v / 10 % 10) << 4 | v % 10);
}

/* Hostile BCD (nibbles above 9) is decoded as is; the count stays below
 * 0x10000 either way. */
static uint32_t from_bcd(uint16_t v)
{
    return (uint32_t)((v >> 12) * 1000 + ((v >> 8) & 0xf) * 100 +
                      ((v >> 4) & 0xf) * 10 + (v & 0xf));
}

static uint16_t count_at(const struct i8254_channel *c, uint64_t t)
{
    unsigned m = base_mode(c);
    struct segment s = segment_at(c, t);
    uint64_t n = s.count, d, r, v;
    uint32_t mod = modulus(c);

    if (!c->counting || ((m == 1 || m == 5) && !c->triggered)) {
        v = n % mod;
    } else {
        d = elapsed(c, s, t);
        switch (m) {
        case 2:
            v = n - d % n;
            break;
        case 3:
            r = d % n;
            v = r < (n + 1) / 2 ? n - 2 * r : n - 2 * (r - (n + 1) / 2);
            break;
        default: /* 0, 1, 4, 5: count down through 0 and wrap */
            v = (n % mod + mod - d % mod) % mod;
            break;
        }
        v %= mod;
    }
    return c->bcd ? to_bcd((uint32_t)v) : (uint16_t)v;
}

static uint8_t status_at(const struct i8254_channel *c, uint64_t t)
{
    bool null_count = c->null_count || (c->switch_pending &&
                                        t < c->switch_tick);

    return (uint8_t)((out_at(c, t) ? ST_OUT : 0) |
                     (null_count ? ST_NULL_COUNT : 0) |
                     c->rw << CW_RW_SHIFT | c->mode << CW_M_SHIFT |
                     (c->bcd ? CW_BCD : 0));
}

/* --- IRQ 0 --------------------------------------------------------------- */

static void set_irq(struct i8254 *pit, bool level)
{
    if (level == pit->irq_level)
        return;
    pit->irq_level = level;
    if (level)
        pit->irq_edges++;
    trace(trace_i8254_irq, "IRQ0 %s", level ? "raise" : "lower");
    irq_set_isa(pit->irq, I8254_IRQ, level);
}

static void update_to(struct i8254 *pit, uint64_t t)
{
    const struct i8254_channel *c0 = &pit->ch[0];
    bool out;

    if (t < pit->last_update_tick)
        t = pit->last_update_tick; /* a clock never runs backwards */
    out = out_at(c0, t);
    if (rising_edge_between(c0, pit->last_update_tick, t)) {
        /* One edge for however many were missed. */
        set_irq(pit, false);
        set_irq(pit, true);
    }
    set_irq(pit, out);
    pit->last_update_tick = t;
}

void i8254_update(struct i8254 *pit)
{
    update_to(pit, now_tick(pit));
}

uint64_t i8254_next_deadline_ns(struct i8254 *pit)
{
    uint64_t t = next_change(&pit->ch[0], pit->last_update_tick);

    return t == NEVER ? HW_CLOCK_NEVER : tick_to_ns(t);
}

/* --- gate and count loading --------------------------------------------- */

static void set_gate(struct i8254_channel *c, bool level, uint64_t t)
{
    unsigned m = base_mode(c);

    if (level == c->gate)
        return;
    collapse(c, t);
    c->gate = level;
    if (!c->counting)
        return;
    switch (m) {
    case 0:
    case 4:
        /* Gate low suspends counting; high resumes where it stopped. */
        if (!level) {
            c->paused_elapsed = elapsed(c, segment_at(c, t), t);
            c->paused = true;
        } else {
            c->load_tick = t >= c->paused_elapsed ? t - c->paused_elapsed : 0;
            c->paused = false;
        }
        break;
    case 1:
    case 5:
        /* A rising edge (re)triggers with the count register's value. */
        if (level) {
            c->count = c->next_count;
            c->load_tick = t;
            c->triggered = true;
            c->null_count = false;
        }
        break;
    default: /* 2, 3 */
        /* Low stops counting with OUT high, the counter holding its value;
         * the rising edge reloads. A count waiting for the end of the
         * period waits for that edge now, as the period no longer ends. */
        if (!level) {
            c->paused_elapsed = elapsed(c, segment_at(c, t), t);
            c->paused = true;
            if (c->switch_pending)
                c->switch_tick = NEVER;
        } else {
            if (c->switch_pending) {
                c->count = c->next_count;
                c->switch_pending = false;
            }
            c->load_tick = t;
            c->paused = false;
        }
        break;
    }
}

static void write_count(struct i8254_channel *c, uint16_t raw, uint64_t t)
{
    unsigned m = base_mode(c);
    uint32_t n = c->bcd ? from_bcd(raw) : raw;
    uint64_t d;

    collapse(c, t);
    if (n == 0)
        n = modulus(c);
    if (n == 1 && (m == 2 || m == 3))
        n = 2;
    c->cr = raw;
    switch (m) {
    case 1:
    case 5:
        /* Loaded into the counter by the next trigger. */
        c->next_count = n;
        if (!c->triggered)
            c->count = n;
        c->null_count = true;
        c->counting = true;
        break;
    case 2:
    case 3:
        if (running(c)) {
            /* Takes over when the current period ends. */
            d = t - c->load_tick;
            c->next_count = n;
            c->switch_tick = c->load_tick + (d / c->count + 1) * c->count;
            c->switch_pending = true;
            break;
        }
        /* The first count starts at once. */
        __attribute__((fallthrough));
    default: /* 0, 4 */
        c->count = n;
        c->load_tick = t;
        c->switch_pending = false;
        c->counting = true;
        c->null_count = false;
        c->paused = !c->gate;
        c->paused_elapsed = 0;
        break;
    }
}

static void latch_count(struct i8254_channel *c, uint64_t t)
{
    if (c->latch_state != LATCH_NONE)
        return; /* a second latch before the read is ignored */
    c->latched = count_at(c, t);
    c->latch_state = c->rw == RW_LSB ? LATCH_LSB
                     : c->rw == RW_MSB ? LATCH_MSB
                                       : LATCH_WORD_LSB;
}

static void control_word(struct i8254 *pit, uint8_t cw, uint64_t t)
{
    unsigned sc = cw >> CW_SC_SHIFT, rw = (cw >> CW_RW_SHIFT) & 3;
    struct i8254_channel *c;

    if (sc == CW_SC_READBACK) {
        for (unsigned i = 0; i < I8254_CHANNELS; i++) {
            c = &pit->ch[i];
            if (!(cw & (2u << i)))
                continue;
            if (!(cw & RB_NOT_COUNT))
                latch_count(c, t);
            if (!(cw & RB_NOT_STATUS) && !c->status_latched) {
                c->status = status_at(c, t);
                c->status_latched = true;
            }
        }
        return;
    }
    c = &pit->ch[sc];
    if (rw == CW_RW_LATCH) {
        latch_count(c, t);
        return;
    }
    collapse(c, t);
    c->rw = (uint8_t)rw;
    c->mode = (cw >> CW_M_SHIFT) & 7;
    c->bcd = cw & CW_BCD;
    c->counting = false;
    c->triggered = false;
    c->paused = false;
    c->switch_pending = false;
    c->null_count = true;
    c->write_msb_next = c->read_msb_next = false;
    c->latch_state = LATCH_NONE;
    c->status_latched = false;
}

/* --- ports --------------------------------------------------------------- */

static uint8_t channel_read(struct i8254_channel *c, uint64_t t)
{
    uint16_t v;

    if (c->status_latched) {
        c->status_latched = false;
        return c->status;
    }
    switch (c->latch_state) {
    case LATCH_LSB:
        c->latch_state = LATCH_NONE;
        return (uint8_t)c->latched;
    case LATCH_MSB:
        c->latch_state = LATCH_NONE;
        return (uint8_t)(c->latched >> 8);
    case LATCH_WORD_LSB:
        c->latch_state = LATCH_WORD_MSB;
        return (uint8_t)c->latched;
    case LATCH_WORD_MSB:
        c->latch_state = LATCH_NONE;
        return (uint8_t)(c->latched >> 8);
    }
    v = count_at(c, t);
    switch (c->rw) {
    case RW_LSB:
        return (uint8_t)v;
    case RW_MSB:
        return (uint8_t)(v >> 8);
    default:
        c->read_msb_next = !c->read_msb_next;
        return c->read_msb_next ? (uint8_t)v : (uint8_t)(v >> 8);
    }
}

static void channel_write(struct i8254_channel *c, uint8_t val, uint64_t t)
{
    switch (c->rw) {
    case RW_LSB:
        write_count(c, val, t);
        break;
    case RW_MSB:
        write_count(c, (uint16_t)(val << 8), t);
        break;
    default:
        if (!c->write_msb_next) {
            c->write_lsb = val;
            c->write_msb_next = true;
        } else {
            c->write_msb_next = false;
            write_count(c, (uint16_t)(c->write_lsb | val << 8), t);
        }
        break;
    }
}

static uint64_t pit_read(void *opaque, uint64_t off, unsigned size)
{
    struct i8254 *pit = opaque;

    /* The control word register is write-only; QEMU reads 0. */
    if (off == 3)
        return 0;
    return channel_read(&pit->ch[off], now_tick(pit));
}

static void pit_write(void *opaque, uint64_t off, uint64_t value,
                      unsigned size)
{
    struct i8254 *pit = opaque;
    uint64_t t = now_tick(pit);

    trace(trace_i8254_write, "port 0x%x <- 0x%02x",
          I8254_BASE + (unsigned)off, (unsigned)(value & 0xff));
    /* IRQ 0 catches up under the old programming before it changes. */
    update_to(pit, t);
    if (off == 3)
        control_word(pit, (uint8_t)value, t);
    else
        channel_write(&pit->ch[off], (uint8_t)value, t);
    update_to(pit, t);
}

static const struct bus_region_ops pit_ops = {
    .read = pit_read, .write = pit_write, .max_access = 1};

static uint64_t port61_read(void *opaque, uint64_t off, unsigned size)
{
    struct i8254 *pit = opaque;
    uint64_t ns = hw_clock_now(pit->clock);
    uint8_t v = pit->port61;

    if ((ns / I8254_REFRESH_NS) & 1)
        v |= I8254_P61_REFRESH;
    if (out_at(&pit->ch[2], ns_to_tick(ns)))
        v |= I8254_P61_OUT2;
    return v;
}

static void port61_write(void *opaque, uint64_t off, uint64_t value,
                         unsigned size)
{
    struct i8254 *pit = opaque;

    /* Bits 4-7 are status, read-only. */
    pit->port61 = (uint8_t)value & 0x0f;
    set_gate(&pit->ch[2], value & I8254_P61_GATE2, now_tick(pit));
}

static const struct bus_region_ops port61_ops = {
    .read = port61_read, .write = port61_write, .max_access = 1};

/* --- life cycle and inspection ------------------------------------------- */

void i8254_reset(struct i8254 *pit)
{
    uint64_t t = now_tick(pit);

    for (unsigned i = 0; i < I8254_CHANNELS; i++) {
        struct i8254_channel *c = &pit->ch[i];

        memset(c, 0, sizeof(*c));
        c->gate = i != 2;
        c->mode = 3;
        c->rw = RW_WORD;
        write_count(c, 0, t);
    }
    pit->port61 = 0;
    pit->last_update_tick = t;
    set_irq(pit, out_at(&pit->ch[0], t));
}

uint16_t i8254_read_count(struct i8254 *pit, unsigned channel)
{
    if (channel >= I8254_CHANNELS)
        return 0;
    return count_at(&pit->ch[channel], now_tick(pit));
}

bool i8254_out(struct i8254 *pit, unsigned channel)
{
    if (channel >= I8254_CHANNELS)
        return false;
    return out_at(&pit->ch[channel], now_tick(pit));
}

int i8254_init(struct i8254 *pit, struct bus *bus,
               const struct hw_clock *clock, const struct irq_sink *irq)
{
    int rc;

    if (!pit || !bus || !clock || !clock->now_ns)
        return -EINVAL;
    memset(pit, 0, sizeof(*pit));
    pit->bus = bus;
    pit->clock = clock;
    pit->irq = irq;
    bus_region_init(&pit->region, "i8254", 4, &pit_ops, pit);
    bus_region_init(&pit->port61_region, "port61", 1, &port61_ops, pit);
    rc = bus_map(bus, BUS_PIO, &pit->region, I8254_BASE);
    if (rc < 0)
        goto out;
    rc = bus_map(bus, BUS_PIO, &pit->port61_region, I8254_PORT61);
    if (rc < 0)
        goto out;
    i8254_reset(pit);
out:
    if (rc < 0) {
        log_err("i8254: cannot map its ports: %s", bus->error);
        i8254_fini(pit);
    }
    return rc;
}

void i8254_fini(struct i8254 *pit)
{
    if (pit->region.mapped)
        bus_unmap(pit->bus, &pit->region);
    if (pit->port61_region.mapped)
        bus_unmap(pit->bus, &pit->port61_region);
    set_irq(pit, false);
}
