/* Time to save and to load a whole machine's device state: a qemu-xen
 * machine with two serial ports and four hot-plugged pci-testdevs, BARs
 * programmed and a UART FIFO full, saved to a memfd and loaded into a
 * second machine built from the same command line. Load includes what
 * every load does: reading and checking the stream, snapshotting the
 * target (for undo) and restoring every device. Prints numbers only; a
 * failed save or load fails the run. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../../dm/machine.h"
#include "../../dm/options.h"
#include "../../lib/log.h"
#include "../../lib/loop.h"

#define ROUNDS 2000

struct bench_machine {
    struct loop *loop;
    struct dm_options opts;
    struct machine m;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int build(struct bench_machine *b)
{
    static const char *const args[] = {"xen-dm", "-machine", "xenfv", "-m",
                                       "1024", "-smp", "4", "-serial", "null",
                                       "-serial", "null", NULL};
    char *argv[16];
    int argc = 0;

    while (args[argc]) {
        argv[argc] = (char *)args[argc];
        argc++;
    }
    argv[argc] = NULL;
    memset(b, 0, sizeof(*b));
    if (options_parse(argc, argv, &b->opts) != 0 || loop_create(&b->loop) < 0)
        return -1;
    return machine_init(&b->m, &b->opts, b->loop);
}

static void destroy(struct bench_machine *b)
{
    machine_fini(&b->m);
    loop_destroy(b->loop);
    options_free(&b->opts);
}

static void out(struct machine *m, uint16_t port, uint32_t v, unsigned size)
{
    bus_write(&m->bus, BUS_PIO, port, v, size);
}

static void cfg(struct machine *m, uint8_t devfn, unsigned reg, uint32_t v)
{
    out(m, 0xcf8, 0x80000000u | devfn << 8 | reg, 4);
    out(m, 0xcfc, v, 4);
}

/* A guest that has been running a while. */
static int populate(struct machine *m)
{
    char err[200], id[8];

    for (unsigned i = 0; i < 4; i++) {
        uint8_t devfn;

        snprintf(id, sizeof(id), "t%u", i);
        if (machine_device_add(m, "pci-testdev", id, NULL, err,
                               sizeof(err)) < 0) {
            fprintf(stderr, "bench_savestate: device_add: %s\n", err);
            return -1;
        }
        devfn = machine_find_device(m, id)->devfn;
        cfg(m, devfn, PCI_BASE_ADDRESS_0, 0xe0000000u + i * 0x1000);
        cfg(m, devfn, PCI_BASE_ADDRESS_0 + 4, 0xc400u + i * 0x100);
        cfg(m, devfn, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    }
    cfg(m, PIIX4_PM_DEVFN, PIIX4_PMBA, 0xb001);
    cfg(m, PIIX4_PM_DEVFN, PIIX4_PMREGMISC, 1);
    cfg(m, PIIX_IDE_DEVFN, PCI_BASE_ADDRESS_0 + 16, 0xc001);
    cfg(m, PIIX_IDE_DEVFN, PCI_COMMAND, PCI_COMMAND_IO);
    cfg(m, PIIX3_DEVFN, PIIX3_PIRQRC, 0x0a0b050b);
    out(m, PIIX4_GPE0_BASE + 2, 0x02, 1);
    out(m, 0x3fa, 0xc1, 1);
    out(m, 0x3fc, 0x18, 1);
    for (unsigned i = 0; i < 16; i++)
        out(m, 0x3f8, 'a' + i, 1);
    out(m, 0x3fc, 0x08, 1);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static double median_us(uint64_t *ns, unsigned n)
{
    qsort(ns, n, sizeof(*ns), cmp_u64);
    return (double)ns[n / 2] / 1000.0;
}

int main(void)
{
    static uint64_t save_ns[ROUNDS], load_ns[ROUNDS];
    struct bench_machine src, dst;
    int fd = memfd_create("bench-savestate", 0);
    off_t len;
    int rc = 1;

    log_set_level(LOG_ERR);
    if (fd < 0 || build(&src) < 0 || build(&dst) < 0 || populate(&src.m) < 0) {
        fprintf(stderr, "bench_savestate: cannot set up the machines\n");
        return 1;
    }
    for (unsigned i = 0; i < ROUNDS; i++) {
        uint64_t t0;

        if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
            goto out;
        t0 = now_ns();
        if (machine_save_state(&src.m, fd) < 0) {
            fprintf(stderr, "bench_savestate: save failed\n");
            goto out;
        }
        save_ns[i] = now_ns() - t0;
        lseek(fd, 0, SEEK_SET);
        t0 = now_ns();
        if (machine_load_state(&dst.m, fd) < 0) {
            fprintf(stderr, "bench_savestate: load failed\n");
            goto out;
        }
        load_ns[i] = now_ns() - t0;
    }
    len = lseek(fd, 0, SEEK_END);
    printf("savestate: stream %lld bytes (4 testdevs, 2 UARTs)\n",
           (long long)len);
    printf("savestate: save %.1f us, load %.1f us (median of %d)\n",
           median_us(save_ns, ROUNDS), median_us(load_ns, ROUNDS), ROUNDS);
    rc = 0;
out:
    close(fd);
    destroy(&src);
    destroy(&dst);
    return rc;
}
