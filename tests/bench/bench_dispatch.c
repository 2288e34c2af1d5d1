/* Dispatcher throughput, in process: port writes to a scratch region, and
 * configuration reads through 0xCF8/0xCFC (two ioreqs per read, as a guest
 * issues them). Prints numbers; never fails on timing. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../../hw/pci.h"
#include "../../ioreq/dispatch.h"
#include "../../ioreq/ram.h"

static uint64_t scratch_value;

static void scratch_write(void *opaque, uint64_t off, uint64_t value,
                          unsigned size)
{
    scratch_value += value + off;
}

static uint64_t scratch_read(void *opaque, uint64_t off, unsigned size)
{
    return scratch_value;
}

static const struct bus_region_ops scratch_ops = {
    .read = scratch_read, .write = scratch_write, .max_access = 4};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void pio(struct dispatcher *d, uint16_t port, unsigned size, int dir,
                uint64_t *value)
{
    ioreq_t req = {.addr = port, .data = *value, .count = 1, .size = size,
                   .dir = dir, .type = IOREQ_TYPE_PIO};

    dispatch_ioreq(d, &req);
    *value = req.data;
}

int main(void)
{
    static struct bus bus;
    struct bus_region scratch, filler[64];
    struct pci_bus pci;
    struct pci_host host;
    struct pci_function hostbridge;
    struct local_ram ram;
    struct guest_memory mem;
    struct dispatcher d;
    const long n = 20 * 1000 * 1000, nc = 5 * 1000 * 1000;
    uint64_t v = 0, sum = 0;
    double t0, t1;

    bus_init(&bus);
    pci_bus_init(&pci, &bus);
    local_ram_init(&ram, 1 << 20);
    local_ram_accessor(&ram, &mem);
    dispatcher_init(&d, &bus, &mem, NULL);
    /* A realistic table: a few dozen other port regions around ours. */
    for (int i = 0; i < 64; i++) {
        bus_region_init(&filler[i], "filler", 8, &scratch_ops, NULL);
        bus_map(&bus, BUS_PIO, &filler[i], 0x1000 + 0x10 * (uint64_t)i);
    }
    bus_region_init(&scratch, "scratch", 4, &scratch_ops, NULL);
    bus_map(&bus, BUS_PIO, &scratch, 0x510);
    pci_host_init(&host, &bus);
    pci_function_init(&hostbridge, "host-bridge", 0x8086, 0x1237, 0x060000, 2,
                      NULL, NULL);
    pci_register_function(&pci, &hostbridge, 0);

    t0 = now_s();
    for (long i = 0; i < n; i++) {
        v = (uint64_t)i;
        pio(&d, 0x510, 4, IOREQ_WRITE, &v);
    }
    t1 = now_s();
    printf("dispatch: port writes to a scratch region: %.1f M ioreqs/s "
           "(%.1f ns each)\n", n / (t1 - t0) / 1e6, (t1 - t0) / n * 1e9);

    t0 = now_s();
    for (long i = 0; i < nc; i++) {
        v = 0x80000000u | ((uint64_t)(i & 0x3c));
        pio(&d, 0xcf8, 4, IOREQ_WRITE, &v);
        pio(&d, 0xcfc, 4, IOREQ_READ, &v);
        sum += v;
    }
    t1 = now_s();
    printf("dispatch: 0xCF8/0xCFC config reads: %.1f M reads/s, %.1f M ioreqs/s "
           "(%.1f ns per ioreq)\n", nc / (t1 - t0) / 1e6,
           2 * nc / (t1 - t0) / 1e6, (t1 - t0) / (2 * nc) * 1e9);
    if (sum == 42)
        printf("(checksum %llu)\n", (unsigned long long)sum);
    pci_unregister_function(&hostbridge);
    pci_host_fini(&host);
    bus_fini(&bus);
    local_ram_fini(&ram);
    return 0;
}
