/* Time for devices that count: the 8254 PIT, the ACPI PM timer and the RTC of
 * the software machine. Devices never read the host clock themselves, so unit
 * tests drive them with a virtual clock and the machine decides what time is
 * (the host's monotonic clock in xen-dm -machine sim).
 *
 * Devices with timed events are polled, not called back: the machine asks
 * each one for its next deadline (the soonest instant its outputs change),
 * runs the vCPU no further than that, then tells the device to catch up to
 * "now". This keeps every device single-threaded and deterministic. */
#ifndef XENDM_HW_CLOCK_H
#define XENDM_HW_CLOCK_H

#include <stdint.h>

#define HW_CLOCK_NEVER UINT64_MAX

struct hw_clock {
    uint64_t (*now_ns)(void *opaque);
    void *opaque;
};

static inline uint64_t hw_clock_now(const struct hw_clock *c)
{
    return c->now_ns(c->opaque);
}

#endif
