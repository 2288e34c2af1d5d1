/* The MC146818 real-time clock registers 0x00-0x0D behind the CMOS ports
 * (hw/cmos.c hands them over through cmos_set_rtc()). Under Xen they are
 * the hypervisor's vRTC (xen-dm-interfaces.md §6.1); the software machine
 * has this model.
 *
 * Time: the guest's clock is a UTC second count, started from
 * start_time_utc at init (the machine passes the host's time; tests a
 * fixed one) and advanced by the hw_clock through a divider chain: the
 * seconds tick at whole seconds of hw_clock time after the chain was last
 * started (init, or the guest taking register A's divider out of reset,
 * after which the first update comes 500 ms later as on the part). Setting
 * the time (with SET, or by writing a time register while the clock runs,
 * as QEMU allows) changes the count, not that phase. Years are 2000-2099
 * (register 9 plus 2000, QEMU's base year); the century byte 0x32 is
 * NVRAM and stays cmos.c's.
 *
 * Registers: time, alarm (0xC0-0xFF: don't care), A (UIP for the 244 us
 * before each update; DV: 0-2 run, anything else holds the chain in reset;
 * RS periodic rate), B (SET, PIE, AIE, UIE, SQWE stored only, DM binary or
 * BCD, 24/12 hour; DSE is ignored: daylight saving is the guest's
 * business, UTC never has it), C (IRQF PF AF UF, cleared by reading, which
 * lowers IRQ 8), D (VRT always 1). The day of the week is a counter the
 * guest may set to anything; it advances at midnight.
 *
 * Interrupts on ISA IRQ 8, polled like the PIT: rtc_next_deadline_ns() and
 * rtc_update(). Flags are brought up to date on every register access too,
 * so a guest that polls register C sees them without the machine's help.
 * With AIE set and no other source, the deadline is the next second (the
 * alarm is checked each second rather than searched for). */
#ifndef XENDM_HW_RTC_H
#define XENDM_HW_RTC_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "cmos.h"
#include "irq.h"

#define RTC_IRQ 8
#define RTC_BASE_YEAR 2000
/* UIP is set this long before each update (MC146818 data sheet t_BUC). */
#define RTC_UIP_NS 244000

enum rtc_reg {
    RTC_SECONDS = 0x00,
    RTC_SECONDS_ALARM = 0x01,
    RTC_MINUTES = 0x02,
    RTC_MINUTES_ALARM = 0x03,
    RTC_HOURS = 0x04,
    RTC_HOURS_ALARM = 0x05,
    RTC_DAY_OF_WEEK = 0x06,
    RTC_DAY_OF_MONTH = 0x07,
    RTC_MONTH = 0x08,
    RTC_YEAR = 0x09,
    RTC_REG_A = 0x0a,
    RTC_REG_B = 0x0b,
    RTC_REG_C = 0x0c,
    RTC_REG_D = 0x0d,
};

#define RTC_A_UIP 0x80
#define RTC_A_DV_MASK 0x70
#define RTC_A_DV_NORMAL 0x20
#define RTC_A_RS_MASK 0x0f
#define RTC_B_SET 0x80
#define RTC_B_PIE 0x40
#define RTC_B_AIE 0x20
#define RTC_B_UIE 0x10
#define RTC_B_SQWE 0x08
#define RTC_B_DM_BINARY 0x04
#define RTC_B_24H 0x02
#define RTC_B_DSE 0x01
#define RTC_C_IRQF 0x80
#define RTC_C_PF 0x40
#define RTC_C_AF 0x20
#define RTC_C_UF 0x10
#define RTC_D_VRT 0x80

struct rtc {
    struct cmos *cmos;
    const struct hw_clock *clock;
    const struct irq_sink *irq;
    struct cmos_rtc_ops ops;
    uint8_t reg_a, reg_b, flags; /* flags: register C's PF AF UF */
    uint8_t alarm[3];            /* seconds, minutes, hours */
    /* Time registers as the guest wrote them while the clock is held. */
    uint8_t held[10];
    bool held_valid;
    int64_t div_start_ns; /* hw_clock time the divider chain started */
    int64_t base_sec;     /* UTC seconds at divider second base_k */
    int64_t base_k;
    int dow_offset;       /* guest's day of week minus the true one */
    int64_t last_ns;      /* events are accounted up to here */
    bool irq_level;
};

/* Attaches to cmos (registers 0x00-0x0D) and starts at start_time_utc
 * with register A 0x26, B 0x02 (BCD, 24 h), C 0, D 0x80. clock is
 * required; irq may be NULL. Returns 0 or -EINVAL. */
int rtc_init(struct rtc *rtc, struct cmos *cmos, const struct hw_clock *clock,
             const struct irq_sink *irq, int64_t start_time_utc);
/* Detaches from the CMOS and lowers IRQ 8. */
void rtc_fini(struct rtc *rtc);
/* The RESET pin: clears PIE, AIE, UIE, SQWE and register C, lowers IRQ 8;
 * the time and the other registers keep running. */
void rtc_reset(struct rtc *rtc);

/* When IRQ 8 may next be raised (HW_CLOCK_NEVER if it is high already or
 * nothing is enabled); may be in the past if update is overdue. */
uint64_t rtc_next_deadline_ns(struct rtc *rtc);
void rtc_update(struct rtc *rtc);

/* The guest's clock now, in UTC seconds (for the monitor and tests). */
int64_t rtc_get_time(struct rtc *rtc);

#endif
