/* QEMU's pci-testdev (1b36:0005): a hot-pluggable function with no use but
 * being there, which makes it the device to exercise PCI hot-plug with before
 * pass-through exists. Its BARs carry QEMU's I/O test protocol (the one
 * kvm-unit-tests drives) so a guest sees the same device it would under QEMU.
 *
 * Both BARs show the header of the selected test:
 *   +0  test   (write a test number 0-2 here to select it; the BAR written
 *              picks the family: BAR0 the mmio-*, BAR1 the portio-* tests)
 *   +1  width  +4 offset (dword)  +8 data  +12 count (dword)  +16 name
 * A write of the test's `data` at `offset` (through either BAR, QEMU's
 * device only compares the offset) adds one to count, unless the test's
 * ioeventfd took it first (see pci_testdev.c). */
#ifndef XENDM_HW_PCI_TESTDEV_H
#define XENDM_HW_PCI_TESTDEV_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "pci.h"

/* PCI_VENDOR_ID_REDHAT, PCI_DEVICE_ID_REDHAT_TEST, revision 0. The class is
 * QEMU's PCI_CLASS_OTHERS (0xff) used as a 16-bit class id, so the base class
 * reads 0x00 and the subclass 0xff ("Unclassified device [00ff]"). */
#define PCI_TESTDEV_VENDOR_ID 0x1b36
#define PCI_TESTDEV_DEVICE_ID 0x0005
#define PCI_TESTDEV_REVISION 0x00
#define PCI_TESTDEV_CLASS 0x00ff00

/* IOTEST_MEMSIZE * 2 and IOTEST_IOSIZE * 2 in hw/misc/pci-testdev.c. */
#define PCI_TESTDEV_MMIO_SIZE 4096
#define PCI_TESTDEV_PIO_SIZE 256

enum pci_testdev_family { PCI_TESTDEV_MMIO, PCI_TESTDEV_PORTIO };
#define PCI_TESTDEV_TESTS_PER_FAMILY 3 /* no-, wildcard-, datamatch-eventfd */
#define PCI_TESTDEV_NTESTS (2 * PCI_TESTDEV_TESTS_PER_FAMILY)

/* Header field offsets (PCITestDevHdr). */
enum {
    PCI_TESTDEV_HDR_TEST = 0,
    PCI_TESTDEV_HDR_WIDTH = 1,
    PCI_TESTDEV_HDR_OFFSET = 4,
    PCI_TESTDEV_HDR_DATA = 8,
    PCI_TESTDEV_HDR_COUNT = 12,
    PCI_TESTDEV_HDR_NAME = 16,
};
#define PCI_TESTDEV_DATAMATCH 0xfa
#define PCI_TESTDEV_NOMATCH 0xce
#define PCI_TESTDEV_NAME_MAX 24 /* "portio-datamatch-eventfd" */

struct pci_testdev_test {
    /* The guest-visible header, byte for byte. */
    uint8_t hdr[PCI_TESTDEV_HDR_NAME + PCI_TESTDEV_NAME_MAX + 1];
    unsigned hdr_len; /* header plus name plus NUL */
    bool has_eventfd;
    bool match_data;
    /* Writes an ioeventfd took before the device saw them (not visible to
     * the guest; kept so tests can see where a write went). */
    unsigned eventfd_hits;
};

struct pci_testdev {
    struct pci_function fn;
    char *id;
    int current; /* selected test, -1 for none */
    struct pci_testdev_test tests[PCI_TESTDEV_NTESTS];
};

/* Allocates a pci-testdev, registers it at devfn with user-visible id (NULL
 * for none) and stores it in *out. Returns 0, -ENOMEM or the PCI error. */
int pci_testdev_create(struct pci_bus *pci, uint8_t devfn, const char *id,
                       struct pci_testdev **out);
/* Unregisters (unmapping its BARs) and frees. NULL is accepted. */
void pci_testdev_destroy(struct pci_testdev *d);

struct ss_writer;
struct ss_reader;
/* Section "pci-testdev", instance = devfn: configuration space, the test
 * selected and every test's counters. */
int pci_testdev_save(const struct pci_testdev *d, struct ss_writer *w);
int pci_testdev_load(struct pci_testdev *d, struct ss_reader *r);

#endif
