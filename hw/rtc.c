/* MC146818 RTC, see rtc.h.
 *
 * Facts from the Motorola MC146818A data sheet (register layout, update
 * cycle, periodic rates, interrupt flags, RESET) and QEMU's
 * hw/rtc/mc146818rtc.c (power-on register values, SET clearing UIE,
 * writes of time registers while running, base year 2000). */
#include "rtc.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "../lib/log.h"

TRACE_POINT(trace_rtc, "rtc");

#define NS_PER_S 1000000000ll
#define RTC_DIVIDER_HZ 32768
#define SECONDS_PER_DAY 86400

static int64_t now_ns(const struct rtc *rtc)
{
    return (int64_t)hw_clock_now(rtc->clock);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Divider states: DV 0-2 count (0 and 1 name other crystals; QEMU counts
 * them too), 6 and 7 hold the chain in reset, 3-5 are test modes. */
static bool divider_runs(const struct rtc *rtc)
{
    return (rtc->reg_a & RTC_A_DV_MASK) <= RTC_A_DV_NORMAL;
}

static bool clock_runs(const struct rtc *rtc)
{
    return divider_runs(rtc) && !(rtc->reg_b & RTC_B_SET);
}

/* Whole seconds of the divider chain at t. */
static int64_t second_index(const struct rtc *rtc, int64_t t)
{
    return floor_div(t - rtc->div_start_ns, NS_PER_S);
}

static int64_t time_at(const struct rtc *rtc, int64_t t)
{
    return rtc->base_sec + (second_index(rtc, t) - rtc->base_k);
}

/* Periodic interrupt period in 32.768 kHz cycles, 0 if off. RS 1 and 2
 * repeat rates 8 and 9 with this time base. */
static uint32_t periodic_cycles(const struct rtc *rtc)
{
    unsigned rs = rtc->reg_a & RTC_A_RS_MASK;

    if (rs == 0)
        return 0;
    return rs <= 2 ? 1u << (rs + 6) : 1u << (rs - 1);
}

static int64_t periodic_index(const struct rtc *rtc, int64_t t,
                              uint32_t cycles)
{
    __int128 c = (__int128)(t - rtc->div_start_ns) * RTC_DIVIDER_HZ;
    __int128 q = c / NS_PER_S;

    if (c < 0 && c % NS_PER_S)
        q--;
    return floor_div((int64_t)q, cycles);
}

/* The first instant of periodic event m. */
static int64_t periodic_ns(const struct rtc *rtc, int64_t m, uint32_t cycles)
{
    __int128 cyc = (__int128)m * cycles;
    __int128 ns = (cyc * NS_PER_S + RTC_DIVIDER_HZ - 1) / RTC_DIVIDER_HZ;

    return rtc->div_start_ns + (int64_t)ns;
}

/* --- register encoding --------------------------------------------------- */

static uint8_t enc(const struct rtc *rtc, int v)
{
    if (rtc->reg_b & RTC_B_DM_BINARY)
        return (uint8_t)v;
    return (uint8_t)((v / 10 % 10) << 4 | v % 10);
}

/* Hostile BCD (nibbles above 9) decodes to a larger number, which
 * timegm() then normalises like any out-of-range field. */
static int dec(const struct rtc *rtc, uint8_t v)
{
    if (rtc->reg_b & RTC_B_DM_BINARY)
        return v;
    return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t enc_hour(const struct rtc *rtc, int h)
{
    int h12;

    if (rtc->reg_b & RTC_B_24H)
        return enc(rtc, h);
    h12 = h % 12 == 0 ? 12 : h % 12;
    return (uint8_t)(enc(rtc, h12) | (h >= 12 ? 0x80 : 0));
}

static int dec_hour(const struct rtc *rtc, uint8_t v)
{
    int h;

    if (rtc->reg_b & RTC_B_24H)
        return dec(rtc, v);
    h = dec(rtc, v & 0x7f);
    if (h == 12)
        h = 0;
    return (v & 0x80) ? h + 12 : h;
}

static void time_to_regs(const struct rtc *rtc, int64_t secs, uint8_t r[10])
{
    time_t tt = (time_t)secs;
    struct tm tm;

    memset(r, 0, 10);
    if (!gmtime_r(&tt, &tm))
        return; /* beyond struct tm: hostile settings only */
    r[RTC_SECONDS] = enc(rtc, tm.tm_sec);
    r[RTC_MINUTES] = enc(rtc, tm.tm_min);
    r[RTC_HOURS] = enc_hour(rtc, tm.tm_hour);
    r[RTC_DAY_OF_WEEK] =
        enc(rtc, ((tm.tm_wday + rtc->dow_offset) % 7 + 7) % 7 + 1);
    r[RTC_DAY_OF_MONTH] = enc(rtc, tm.tm_mday);
    r[RTC_MONTH] = enc(rtc, tm.tm_mon + 1);
    r[RTC_YEAR] = enc(rtc, (tm.tm_year + 1900 - RTC_BASE_YEAR) % 100);
    /* The slots of the alarm registers are not time. */
    r[RTC_SECONDS_ALARM] = rtc->alarm[0];
    r[RTC_MINUTES_ALARM] = rtc->alarm[1];
    r[RTC_HOURS_ALARM] = rtc->alarm[2];
}

/* Takes the clock to the time registers r say, keeping the divider phase;
 * the day of the week becomes an offset from the true one. */
static void regs_to_time(struct rtc *rtc, const uint8_t r[10], int64_t t)
{
    struct tm tm = {0};
    time_t secs;
    struct tm check;
    int wday;

    tm.tm_sec = dec(rtc, r[RTC_SECONDS]);
    tm.tm_min = dec(rtc, r[RTC_MINUTES]);
    tm.tm_hour = dec_hour(rtc, r[RTC_HOURS]);
    tm.tm_mday = dec(rtc, r[RTC_DAY_OF_MONTH]);
    tm.tm_mon = dec(rtc, r[RTC_MONTH]) - 1;
    tm.tm_year = dec(rtc, r[RTC_YEAR]) + RTC_BASE_YEAR - 1900;
    secs = timegm(&tm);
    rtc->base_sec = secs;
    rtc->base_k = second_index(rtc, t);
    wday = gmtime_r(&secs, &check) ? check.tm_wday : 0;
    rtc->dow_offset = ((dec(rtc, r[RTC_DAY_OF_WEEK]) - 1 - wday) % 7 + 7) % 7;
    trace(trace_rtc, "time set to %lld", (long long)secs);
}

/* --- events -------------------------------------------------------------- */

static bool alarm_field_matches(uint8_t alarm, uint8_t now)
{
    return (alarm & 0xc0) == 0xc0 || alarm == now;
}

static bool alarm_matches(const struct rtc *rtc, int64_t secs)
{
    int64_t tod = ((secs % SECONDS_PER_DAY) + SECONDS_PER_DAY) %
                  SECONDS_PER_DAY;

    return alarm_field_matches(rtc->alarm[0], enc(rtc, (int)(tod % 60))) &&
           alarm_field_matches(rtc->alarm[1],
                               enc(rtc, (int)(tod / 60 % 60))) &&
           alarm_field_matches(rtc->alarm[2],
                               enc_hour(rtc, (int)(tod / 3600)));
}

static bool alarm_in(const struct rtc *rtc, int64_t first, int64_t last)
{
    /* The alarm only looks at the time of day: a day covers every case. */
    if (last - first >= SECONDS_PER_DAY)
        last = first + SECONDS_PER_DAY - 1;
    for (int64_t s = first; s <= last; s++)
        if (alarm_matches(rtc, s))
            return true;
    return false;
}

static uint8_t reg_c(const struct rtc *rtc)
{
    uint8_t enabled = rtc->reg_b & (RTC_B_PIE | RTC_B_AIE | RTC_B_UIE);
    /* PF/AF/UF sit at the same bit positions as PIE/AIE/UIE. */
    bool irqf = rtc->flags & enabled;

    return (uint8_t)(rtc->flags | (irqf ? RTC_C_IRQF : 0));
}

static void update_irq(struct rtc *rtc)
{
    bool level = reg_c(rtc) & RTC_C_IRQF;

    if (level == rtc->irq_level)
        return;
    rtc->irq_level = level;
    trace(trace_rtc, "IRQ8 %s", level ? "raise" : "lower");
    irq_set_isa(rtc->irq, RTC_IRQ, level);
}

/* Sets the flags for everything that happened in (last_ns, t]. */
static void catch_up(struct rtc *rtc, int64_t t)
{
    uint32_t cycles = periodic_cycles(rtc);
    int64_t k0, k1;

    if (t <= rtc->last_ns)
        return;
    if (cycles && divider_runs(rtc) &&
        periodic_index(rtc, t, cycles) > periodic_index(rtc, rtc->last_ns,
                                                        cycles))
        rtc->flags |= RTC_C_PF;
    if (clock_runs(rtc)) {
        k0 = second_index(rtc, rtc->last_ns);
        k1 = second_index(rtc, t);
        if (k1 > k0) {
            rtc->flags |= RTC_C_UF;
            if (alarm_in(rtc, time_at(rtc, rtc->last_ns) + 1,
                         time_at(rtc, t)))
                rtc->flags |= RTC_C_AF;
        }
    }
    rtc->last_ns = t;
    update_irq(rtc);
}

void rtc_update(struct rtc *rtc)
{
    catch_up(rtc, now_ns(rtc));
}

uint64_t rtc_next_deadline_ns(struct rtc *rtc)
{
    uint32_t cycles = periodic_cycles(rtc);
    int64_t next = INT64_MAX, cand;

    if (rtc->irq_level)
        return HW_CLOCK_NEVER; /* nothing changes until C is read */
    if ((rtc->reg_b & RTC_B_PIE) && cycles && divider_runs(rtc)) {
        cand = periodic_ns(rtc,
                           periodic_index(rtc, rtc->last_ns, cycles) + 1,
                           cycles);
        if (cand < next)
            next = cand;
    }
    if ((rtc->reg_b & (RTC_B_UIE | RTC_B_AIE)) && clock_runs(rtc)) {
        cand = rtc->div_start_ns +
               (second_index(rtc, rtc->last_ns) + 1) * NS_PER_S;
        if (cand < next)
            next = cand;
    }
    if (next == INT64_MAX)
        return HW_CLOCK_NEVER;
    return next < 0 ? 0 : (uint64_t)next;
}

/* --- registers ----------------------------------------------------------- */

static bool uip(const struct rtc *rtc, int64_t t)
{
    int64_t next;

    if (!clock_runs(rtc))
        return false;
    next = rtc->div_start_ns + (second_index(rtc, t) + 1) * NS_PER_S;
    return next - t <= RTC_UIP_NS;
}

/* Freezes the registers at the current time (SET, or the divider held). */
static void hold(struct rtc *rtc, int64_t t)
{
    if (rtc->held_valid)
        return;
    time_to_regs(rtc, time_at(rtc, t), rtc->held);
    rtc->held_valid = true;
}

/* Clock running again: the held registers become the time. */
static void release(struct rtc *rtc, int64_t t)
{
    if (!rtc->held_valid)
        return;
    rtc->held_valid = false;
    regs_to_time(rtc, rtc->held, t);
}

static uint8_t rtc_read(void *opaque, unsigned index)
{
    struct rtc *rtc = opaque;
    int64_t t = now_ns(rtc);
    uint8_t r[10], v;

    catch_up(rtc, t);
    switch (index) {
    case RTC_SECONDS_ALARM:
        return rtc->alarm[0];
    case RTC_MINUTES_ALARM:
        return rtc->alarm[1];
    case RTC_HOURS_ALARM:
        return rtc->alarm[2];
    case RTC_REG_A:
        return (uint8_t)(rtc->reg_a | (uip(rtc, t) ? RTC_A_UIP : 0));
    case RTC_REG_B:
        return rtc->reg_b;
    case RTC_REG_C:
        v = reg_c(rtc);
        rtc->flags = 0;
        update_irq(rtc);
        return v;
    case RTC_REG_D:
        return RTC_D_VRT;
    default:
        if (index >= RTC_REG_A)
            return 0xff;
        if (rtc->held_valid)
            return rtc->held[index];
        time_to_regs(rtc, time_at(rtc, t), r);
        return r[index];
    }
}

static void write_time_reg(struct rtc *rtc, unsigned index, uint8_t value,
                           int64_t t)
{
    uint8_t r[10];

    if (rtc->held_valid) {
        rtc->held[index] = value;
        return;
    }
    /* Running: QEMU takes the write at once, the rest of the time as it
     * stands. */
    time_to_regs(rtc, time_at(rtc, t), r);
    r[index] = value;
    regs_to_time(rtc, r, t);
}

static void write_reg_a(struct rtc *rtc, uint8_t value, int64_t t)
{
    bool ran = divider_runs(rtc);

    rtc->reg_a = value & (uint8_t)~RTC_A_UIP;
    if (ran && !divider_runs(rtc)) {
        hold(rtc, t);
    } else if (!ran && divider_runs(rtc)) {
        /* Out of reset, the first update comes half a second later. */
        rtc->div_start_ns = t - NS_PER_S / 2;
        rtc->last_ns = t;
        if (!(rtc->reg_b & RTC_B_SET))
            release(rtc, t);
    }
}

static void write_reg_b(struct rtc *rtc, uint8_t value, int64_t t)
{
    bool was_set = rtc->reg_b & RTC_B_SET;

    if (value & RTC_B_SET) {
        /* SET aborts the update cycle and disables its interrupt. */
        value &= (uint8_t)~RTC_B_UIE;
        if (!was_set)
            hold(rtc, t);
    }
    /* A change of format takes effect on the held registers as stored:
     * they are decoded with the new format when the clock runs again. */
    rtc->reg_b = value;
    if (was_set && !(value & RTC_B_SET) && divider_runs(rtc))
        release(rtc, t);
    update_irq(rtc);
}

static void rtc_write(void *opaque, unsigned index, uint8_t value)
{
    struct rtc *rtc = opaque;
    int64_t t = now_ns(rtc);

    catch_up(rtc, t);
    switch (index) {
    case RTC_SECONDS_ALARM:
        rtc->alarm[0] = value;
        break;
    case RTC_MINUTES_ALARM:
        rtc->alarm[1] = value;
        break;
    case RTC_HOURS_ALARM:
        rtc->alarm[2] = value;
        break;
    case RTC_REG_A:
        write_reg_a(rtc, value, t);
        break;
    case RTC_REG_B:
        write_reg_b(rtc, value, t);
        break;
    case RTC_REG_C:
    case RTC_REG_D:
        break; /* read-only */
    default:
        if (index < RTC_REG_A)
            write_time_reg(rtc, index, value, t);
        break;
    }
}

/* --- life cycle ---------------------------------------------------------- */

int64_t rtc_get_time(struct rtc *rtc)
{
    int64_t t = now_ns(rtc);

    catch_up(rtc, t);
    return time_at(rtc, t);
}

void rtc_reset(struct rtc *rtc)
{
    catch_up(rtc, now_ns(rtc));
    rtc->reg_b &= (uint8_t)~(RTC_B_PIE | RTC_B_AIE | RTC_B_UIE | RTC_B_SQWE);
    rtc->flags = 0;
    update_irq(rtc);
}

int rtc_init(struct rtc *rtc, struct cmos *cmos, const struct hw_clock *clock,
             const struct irq_sink *irq, int64_t start_time_utc)
{
    int64_t t;

    if (!rtc || !cmos || !clock || !clock->now_ns)
        return -EINVAL;
    memset(rtc, 0, sizeof(*rtc));
    rtc->cmos = cmos;
    rtc->clock = clock;
    rtc->irq = irq;
    t = now_ns(rtc);
    rtc->reg_a = RTC_A_DV_NORMAL | 0x06; /* 1024 Hz periodic rate */
    rtc->reg_b = RTC_B_24H;
    rtc->div_start_ns = t;
    rtc->base_sec = start_time_utc;
    rtc->base_k = 0;
    rtc->last_ns = t;
    rtc->ops = (struct cmos_rtc_ops){.read = rtc_read, .write = rtc_write};
    cmos_set_rtc(cmos, &rtc->ops, rtc);
    return 0;
}

void rtc_fini(struct rtc *rtc)
{
    if (rtc->cmos)
        cmos_set_rtc(rtc->cmos, NULL, NULL);
    rtc->cmos = NULL;
    if (rtc->irq_level) {
        rtc->irq_level = false;
        irq_set_isa(rtc->irq, RTC_IRQ, false);
    }
}
