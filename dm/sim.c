#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/log.h"
#include "machine.h"

/* --- time ------------------------------------------------------------------ */

static uint64_t sim_clock_now(void *opaque)
{
    struct sim *s = opaque;

    if (s->clock_stopped)
        return s->paused_since - s->paused_ns;
    return loop_now_ns() - s->paused_ns;
}

static void sim_observe(void *opaque, const struct machine_event *ev)
{
    struct sim *s = opaque;

    /* The guest's time stands still while the machine is paused, so a
     * guest that was stopped for a minute does not see a minute of timer
     * interrupts at once. */
    if (ev->kind == MACHINE_EVENT_STOP && !s->clock_stopped) {
        s->paused_since = loop_now_ns();
        s->clock_stopped = true;
    } else if (ev->kind == MACHINE_EVENT_RESUME && s->clock_stopped) {
        s->paused_ns += loop_now_ns() - s->paused_since;
        s->clock_stopped = false;
    }
}

/* --- interrupts ------------------------------------------------------------ */

/* What the PIC's inputs would be: ISA sources OR'ed with every PCI link
 * PIIX3 routes to the same line (PCI INTx is level-triggered and shared). */
static void sim_update_irqs(struct sim *s)
{
    uint16_t level = s->isa_level;

    for (unsigned link = 0; link < PIIX3_NUM_PIRQS; link++) {
        int irq = piix3_pirq_to_isa(&s->m->piix3, link);

        if (irq >= 0 && irq < 16 && s->intx_level[link])
            level |= (uint16_t)(1u << irq);
    }
    for (unsigned irq = 0; irq < I8259_NR_IRQS; irq++) {
        uint16_t bit = (uint16_t)(1u << irq);

        /* IRQ 2 is the cascade input: nothing drives it on an AT. */
        if (((level ^ s->pic_level) & bit) && irq != I8259_CASCADE_IRQ &&
            s->has_pic)
            i8259_set_irq(&s->pic, irq, level & bit);
    }
    s->pic_level = level;
}

static void sim_isa_irq(void *opaque, unsigned irq, bool level)
{
    struct sim *s = opaque;

    if (irq >= 16)
        return;
    if (level)
        s->isa_level |= (uint16_t)(1u << irq);
    else
        s->isa_level &= (uint16_t)~(1u << irq);
    sim_update_irqs(s);
}

static void sim_pci_intx(void *opaque, unsigned slot, unsigned pin, bool level)
{
    struct sim *s = opaque;
    /* PIIX3's swizzle (QEMU's pci_slot_get_pirq): slot 1 INTA is PIRQA.
     * Each slot has exactly one pin on a given link, so the slot alone
     * names the source there (slot * 4 + pin would not fit in 32 bits). */
    unsigned link = (slot + pin - 1) & 3;
    uint32_t bit = 1u << (slot & 31);

    if (slot >= 32 || pin >= 4)
        return;
    if (level)
        s->intx_level[link] |= bit;
    else
        s->intx_level[link] &= ~bit;
    sim_update_irqs(s);
}

static void sim_pci_link_route(void *opaque, unsigned link, unsigned irq)
{
    sim_update_irqs(opaque);
}

static const struct irq_sink_ops sim_irq_ops = {
    .isa_irq = sim_isa_irq,
    .pci_intx = sim_pci_intx,
    .pci_link_route = sim_pci_link_route,
};

/* --- isa-debug-exit and debug consoles ------------------------------------- */

static void sim_debug_exit(void *opaque, int status)
{
    struct sim *s = opaque;

    /* QEMU exits on the spot; the process status keeps the low 8 bits, as
     * exit() does. Nothing else runs: no SHUTDOWN event, as in QEMU. */
    s->exit_status = status & 0xff;
    s->m->state = RUN_SHUTDOWN;
    loop_quit(s->m->loop, s->exit_status);
    vcpu_kick(&s->cpu);
}

static int device_prop_uint(const char *dev, const char *key,
                            unsigned long max, unsigned long *out)
{
    char buf[32], *end;
    const char *v = options_device_prop(dev, key, buf, sizeof(buf));
    unsigned long n;

    if (!v)
        return 0;
    errno = 0;
    n = strtoul(v, &end, 0);
    if (errno || end == v || *end || n > max) {
        log_err("-device %s: bad %s '%s'", dev, key, v);
        return -EINVAL;
    }
    *out = n;
    return 0;
}

static int add_debug_exit(struct sim *s, const char *dev)
{
    unsigned long base = DEBUG_EXIT_DEFAULT_IOBASE;
    unsigned long size = DEBUG_EXIT_DEFAULT_IOSIZE;
    int rc;

    if (s->has_debug_exit) {
        log_err("-device %s: only one isa-debug-exit", dev);
        return -EINVAL;
    }
    rc = device_prop_uint(dev, "iobase", 0xffff, &base);
    if (rc == 0)
        rc = device_prop_uint(dev, "iosize", 4, &size);
    if (rc < 0)
        return rc;
    rc = debug_exit_init(&s->debug_exit, &s->m->bus, (uint16_t)base,
                         (unsigned)size, sim_debug_exit, s);
    if (rc < 0) {
        log_err("-device %s: %s", dev, rc == -EINVAL
                    ? "iosize must be 1, 2 or 4 and the ports below 0x10000"
                    : s->m->bus.error);
        return rc;
    }
    s->has_debug_exit = true;
    log_info("isa-debug-exit at ports 0x%lx-0x%lx", base, base + size - 1);
    return 0;
}

static int add_debugcon(struct sim *s, const char *spec, unsigned long port)
{
    unsigned i = s->n_debugcons;
    struct charbe *be = NULL;
    int rc;

    if (i == SIM_MAX_DEBUGCONS) {
        log_err("debug console on %s: at most %d", spec, SIM_MAX_DEBUGCONS);
        return -EINVAL;
    }
    rc = charbe_open(s->m->loop, spec, NULL, &be);
    if (rc < 0)
        return rc;
    if (!be) /* "none" */
        return 0;
    rc = debugcon_init(&s->debugcon[i], &s->m->bus, (uint16_t)port, be);
    if (rc < 0) {
        log_err("debug console at 0x%lx: %s", port, s->m->bus.error);
        charbe_close(be);
        return rc;
    }
    s->debugcon_be[i] = be;
    s->n_debugcons++;
    log_info("debug console at port 0x%lx on %s", port, charbe_filename(be));
    return 0;
}

static int add_devices(struct sim *s)
{
    const struct dm_options *o = s->m->opts;
    int rc = 0;

    if (o->debugcon) {
        rc = add_debugcon(s, o->debugcon, DEBUGCON_DEFAULT_IOBASE);
        if (rc < 0)
            return rc;
    }
    for (unsigned i = 0; i < o->n_devices && rc == 0; i++) {
        const char *dev = o->devices[i];

        if (options_device_is(dev, "isa-debug-exit")) {
            rc = add_debug_exit(s, dev);
        } else if (options_device_is(dev, "isa-debugcon")) {
            unsigned long port = DEBUGCON_DEFAULT_IOBASE;
            char id[64];
            const char *spec;

            rc = device_prop_uint(dev, "iobase", 0xffff, &port);
            if (rc < 0)
                break;
            if (!options_device_prop(dev, "chardev", id, sizeof(id))) {
                log_err("-device %s: chardev=ID is required", dev);
                return -EINVAL;
            }
            spec = options_backend(o, id);
            if (!spec) {
                log_err("-device %s: no -chardev with id '%s'", dev, id);
                return -EINVAL;
            }
            rc = add_debugcon(s, spec, port);
        }
    }
    return rc;
}

/* --- firmware -------------------------------------------------------------- */

static int load_bios(const char *path, uint8_t **out, size_t *len)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t done = 0;
    int fd, rc = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        log_err("-bios %s: %s", path, strerror(-rc));
        return rc;
    }
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        log_err("-bios %s: %s", path, strerror(-rc));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < (64 << 10) ||
        st.st_size > VCPU_ROM_MAX || st.st_size % (64 << 10)) {
        log_err("-bios %s: a firmware image must be a regular file whose size "
                "is a multiple of 64 KiB, from 64 KiB to 1 MiB (this one has "
                "%lld bytes)", path, (long long)st.st_size);
        rc = -EINVAL;
        goto out;
    }
    buf = malloc((size_t)st.st_size);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    while (done < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + done, (size_t)st.st_size - done);

        if (r <= 0) {
            rc = r < 0 ? -errno : -EIO;
            log_err("-bios %s: read failed: %s", path, strerror(-rc));
            goto out;
        }
        done += (size_t)r;
    }
    *out = buf;
    *len = done;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

/* --- life cycle ------------------------------------------------------------ */

static int sim_int_ack(void *opaque)
{
    struct sim *s = opaque;

    return i8259_ack(&s->pic);
}

static void sim_pam_changed(void *opaque, const uint8_t mode[I440FX_PAM_SEGMENTS])
{
    struct sim *s = opaque;

    /* The i440FX's RE/WE bits are the vCPU's READ_RAM/WRITE_RAM. */
    for (unsigned seg = 0; seg < I440FX_PAM_SEGMENTS; seg++)
        vcpu_set_legacy_mode(&s->cpu, seg,
                             ((mode[seg] & I440FX_PAM_RE) ? VCPU_LEGACY_READ_RAM : 0) |
                             ((mode[seg] & I440FX_PAM_WE) ? VCPU_LEGACY_WRITE_RAM : 0));
}

static void sim_pic_intr(void *opaque, bool level)
{
    struct sim *s = opaque;

    vcpu_set_intr(&s->cpu, level);
}

int sim_init(struct sim *s, struct machine *m)
{
    struct vcpu_ops ops = {.int_ack = sim_int_ack, .opaque = s};
    uint8_t *rom = NULL;
    size_t rom_size = 0;
    int rc;

    memset(s, 0, sizeof(*s));
    s->m = m;
    s->clock = (struct hw_clock){.now_ns = sim_clock_now, .opaque = s};
    s->irq = (struct irq_sink){.ops = &sim_irq_ops, .opaque = s};
    s->insn_per_us = 100;
    rc = load_bios(m->opts->bios, &rom, &rom_size);
    if (rc < 0)
        return rc;
    rc = vcpu_init(&s->cpu, &m->dispatch, m->ram.base, m->ram.size, rom,
                   rom_size, &ops);
    free(rom);
    if (rc < 0) {
        log_err("-machine sim: cannot create the vCPU: %s", strerror(-rc));
        return rc;
    }
    i440fx_set_pam_listener(&m->i440fx, &(struct i440fx_pam_listener){
                                            .changed = sim_pam_changed,
                                            .opaque = s});
    rc = i8259_init(&s->pic, &m->bus, sim_pic_intr, s);
    if (rc < 0) {
        log_err("-machine sim: PIC: %s", m->bus.error);
        return rc;
    }
    s->has_pic = true;
    /* Devices raise lines on the machine's sink, so observers (qtest) see
     * them; its backend is this file's routing into the PIC. */
    rc = i8254_init(&s->pit, &m->bus, &s->clock, &m->irq);
    if (rc < 0) {
        log_err("-machine sim: PIT: %s", m->bus.error);
        return rc;
    }
    s->has_pit = true;
    log_info("-machine sim: %llu MiB RAM, firmware %s (%zu KiB) at 0x%08" PRIx32
             " and 0x%05" PRIx32, (unsigned long long)(m->ram.size >> 20),
             m->opts->bios, rom_size >> 10, s->cpu.rom_base, s->cpu.rom_low_base);
    return 0;
}

int sim_add_devices(struct sim *s)
{
    int rc;

    rc = rtc_init(&s->rtc, &s->m->cmos, &s->clock, &s->m->irq,
                  (int64_t)time(NULL));
    if (rc < 0) {
        log_err("-machine sim: RTC: %s", strerror(-rc));
        return rc;
    }
    s->has_rtc = true;
    return add_devices(s);
}

void sim_fini(struct sim *s)
{
    for (unsigned i = 0; i < s->n_debugcons; i++) {
        debugcon_fini(&s->debugcon[i]);
        charbe_close(s->debugcon_be[i]);
        s->debugcon_be[i] = NULL;
    }
    s->n_debugcons = 0;
    if (s->has_debug_exit)
        debug_exit_fini(&s->debug_exit);
    if (s->has_rtc)
        rtc_fini(&s->rtc);
    if (s->has_pit)
        i8254_fini(&s->pit);
    if (s->has_pic)
        i8259_fini(&s->pic);
    s->has_debug_exit = s->has_rtc = s->has_pit = s->has_pic = false;
    if (s->m)
        i440fx_set_pam_listener(&s->m->i440fx, NULL);
    vcpu_fini(&s->cpu);
}

void sim_reset(struct sim *s)
{
    /* x86 RESET enables A20 (QEMU's CPU reset does the same). */
    vcpu_set_a20(&s->cpu, true);
    vcpu_reset(&s->cpu);
    i8259_reset(&s->pic);
    i8254_reset(&s->pit);
    if (s->has_rtc)
        rtc_reset(&s->rtc);
}

void sim_kick(struct sim *s)
{
    vcpu_kick(&s->cpu);
}

void sim_set_a20(struct sim *s, bool enabled)
{
    vcpu_set_a20(&s->cpu, enabled);
}

/* --- the run loop ---------------------------------------------------------- */

static uint64_t earliest(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* The soonest instant a device's outputs change, on the sim clock. */
static uint64_t sim_next_deadline(struct sim *s)
{
    uint64_t d = i8254_next_deadline_ns(&s->pit);

    if (s->has_rtc)
        d = earliest(d, rtc_next_deadline_ns(&s->rtc));
    if (s->m->has_pm)
        d = earliest(d, piix4_pm_next_deadline_ns(&s->m->pm));
    return d;
}

/* Lets every device catch up to now: timer interrupts are raised here. */
static void sim_update_devices(struct sim *s)
{
    i8254_update(&s->pit);
    if (s->has_rtc)
        rtc_update(&s->rtc);
    if (s->m->has_pm)
        piix4_pm_update(&s->m->pm);
}

/* Milliseconds until deadline for the event loop's wait; -1 for never. */
static int wait_ms(struct sim *s, uint64_t deadline)
{
    uint64_t now, ms;

    if (deadline == HW_CLOCK_NEVER)
        return -1;
    now = hw_clock_now(&s->clock);
    if (deadline <= now)
        return 0;
    ms = (deadline - now + 999999) / 1000000;
    return ms > 60000 ? 60000 : (int)ms;
}

static void handle_stop(struct sim *s, enum x86emu_stop stop)
{
    struct machine *m = s->m;

    switch (stop) {
    case X86EMU_STOP_SHUTDOWN:
        /* A triple fault is a reset on a PC (QEMU's default too). */
        log_ratelimited(LOG_WARN, "guest triple fault at %04x:%08" PRIx32 "%s",
                        s->cpu.x86.seg[X86EMU_SEG_CS].selector, s->cpu.x86.eip,
                        m->opts->no_reboot ? ": exiting (-no-reboot)"
                                           : ": resetting");
        if (m->opts->no_reboot)
            machine_shutdown(m, true, "guest-reset");
        else
            machine_reset(m, true, "guest-reset");
        break;
    case X86EMU_STOP_UNSUPPORTED:
        /* The guest went where x86emu cannot follow (a hardware task
         * switch, virtual-8086 mode): stop it like an emulation failure,
         * the way QEMU reports a KVM internal error. */
        log_ratelimited(LOG_ERR, "guest at %04x:%08" PRIx32 " needs what the software CPU "
                    "does not implement (hardware task switch or virtual-8086 "
                    "mode): guest stopped (QMP status internal-error; "
                    "system_reset revives it)",
                    s->cpu.x86.seg[X86EMU_SEG_CS].selector, s->cpu.x86.eip);
        machine_internal_error(m);
        break;
    default:
        break;
    }
}

int sim_run(struct sim *s)
{
    struct machine *m = s->m;
    struct machine_observer obs = {.event = sim_observe, .opaque = s};
    int rc = 0;

    machine_add_observer(m, &obs);
    if (m->state != RUN_RUNNING) {
        s->paused_since = loop_now_ns();
        s->clock_stopped = true;
    }
    while (!loop_quitting(m->loop)) {
        uint64_t deadline, now, budget, start, slice_ns, icount_before;
        enum x86emu_stop stop;

        sim_update_devices(s);
        deadline = sim_next_deadline(s);
        if (m->state != RUN_RUNNING) {
            /* Paused (the clock stands still), shut down with
             * -no-shutdown, suspended or failed: only the control planes
             * can change that. */
            rc = loop_run_once(m->loop, -1);
            if (rc < 0)
                break;
            continue;
        }
        now = hw_clock_now(&s->clock);
        slice_ns = deadline > now ? deadline - now : 0;
        if (slice_ns > SIM_SLICE_NS)
            slice_ns = SIM_SLICE_NS;
        budget = slice_ns / 1000 * s->insn_per_us;
        if (budget < 1000)
            budget = 1000;
        start = loop_now_ns();
        icount_before = s->cpu.x86.icount;
        stop = vcpu_run(&s->cpu, budget);
        if (stop == X86EMU_STOP_BUDGET) {
            /* Slices sized to the measured speed: long enough to amortise
             * the poll, short enough to keep the loop responsive. */
            uint64_t ns = loop_now_ns() - start;
            uint64_t rate = ns ? (s->cpu.x86.icount - icount_before) * 1000 / ns : 0;

            if (rate)
                s->insn_per_us = (s->insn_per_us * 3 + rate) / 4;
            if (!s->insn_per_us)
                s->insn_per_us = 1;
        }
        handle_stop(s, stop);
        if (stop == X86EMU_STOP_HALT && !loop_quitting(m->loop)) {
            /* Nothing to do until a device deadline or an fd event. The
             * deadline is taken again: the slice may have programmed a
             * timer (a one-shot PIT, then HLT) that the one from before
             * the slice does not know about. */
            rc = loop_run_once(m->loop, wait_ms(s, sim_next_deadline(s)));
        } else {
            rc = loop_run_once(m->loop, 0);
        }
        if (rc < 0)
            break;
    }
    machine_remove_observer(m, &obs);
    if (rc < 0) {
        log_err("event loop failed: %s", strerror(-rc));
        return rc;
    }
    return s->exit_status;
}
