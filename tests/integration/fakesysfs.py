"""Fake sysfs trees of host PCI functions for pass-through tests: what
xen-dm reads under $XEN_DM_SYSFS_ROOT/bus/pci/devices/SSSS:BB:DD.F."""

import os
import struct

IORESOURCE_IO = 0x40101
IORESOURCE_MEM = 0x40200
IORESOURCE_MEM64_PREF = 0x14220C
IORESOURCE_MEM64 = 0x140204


def make_device(root, bdf, config, resources, irq, vendor=None, device=None, bars=None):
    """config: 256 bytes (4096 for a PCIe function with extended space);
    resources: up to 7 (start, end, flags) tuples for BAR0-5 and the ROM
    (None for an unused one); vendor/device: what sysfs says when config
    does not (a VF's config reads 0xffff); bars: {index: bytes}, the host
    BAR contents as sysfs resourceN files (mapped by the device model to
    reach what shares the MSI-X table's pages)."""
    d = os.path.join(root, "bus", "pci", "devices", bdf)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config"), "wb") as f:
        f.write(bytes(config))
    for idx, data in (bars or {}).items():
        with open(os.path.join(d, "resource%d" % idx), "wb") as f:
            f.write(bytes(data))
    lines = []
    for i in range(13):
        r = resources[i] if i < len(resources) and resources[i] else (0, 0, 0)
        lines.append("0x%016x 0x%016x 0x%016x\n" % r)
    with open(os.path.join(d, "resource"), "w") as f:
        f.write("".join(lines))
    with open(os.path.join(d, "irq"), "w") as f:
        f.write("%d\n" % irq)
    cfg_vendor, cfg_device = struct.unpack_from("<HH", bytes(config), 0)
    vendor = cfg_vendor if vendor is None else vendor
    device = cfg_device if device is None else device
    with open(os.path.join(d, "vendor"), "w") as f:
        f.write("0x%04x\n" % vendor)
    with open(os.path.join(d, "device"), "w") as f:
        f.write("0x%04x\n" % device)
    return d


def read_bar(root, bdf, idx, offset, size):
    with open(os.path.join(root, "bus", "pci", "devices", bdf, "resource%d" % idx), "rb") as f:
        f.seek(offset)
        return f.read(size)


def read_config(root, bdf):
    with open(os.path.join(root, "bus", "pci", "devices", bdf, "config"), "rb") as f:
        return f.read(256)


def nic_config():
    """A NIC with MSI: 128 KiB BAR0, 64-bit 16 KiB BAR2, PM -> MSI (64-bit).
    (The MSI-X functions are make_vf and make_shared_msix.)"""
    c = bytearray(256)
    struct.pack_into("<HHHH", c, 0, 0x8086, 0x10D3, 0, 0x0010)
    c[0x08] = 0x01
    struct.pack_into("<H", c, 0x0A, 0x0200)
    struct.pack_into("<HH", c, 0x2C, 0x8086, 0xA01F)
    c[0x34] = 0x40
    c[0x3D] = 0x01
    c[0x40:0x44] = bytes([0x01, 0x50, 0x22, 0xC8])
    c[0x50:0x54] = bytes([0x05, 0x00, 0x80, 0x00])
    return c


NIC_RESOURCES = [(0xF7E00000, 0xF7E1FFFF, IORESOURCE_MEM), None,
                 (0x3F0000000, 0x3F0003FFF, IORESOURCE_MEM64_PREF)]


def make_nic(root, bdf="0000:03:00.0", irq=16):
    return make_device(root, bdf, nic_config(), NIC_RESOURCES, irq)


VF_BAR3 = 0xFBE20000


def vf_config():
    """An 82576 virtual function-like NIC (igbvf): config vendor/device read
    0xffff as a VF's do, no INTx; 64-bit 16 KiB BAR0 and BAR3; MSI-X with 3
    entries, table at BAR3 + 0, PBA at BAR3 + 0x2000; PCIe v2 (FLR capable)
    and an extended capability (AER) at 0x100."""
    c = bytearray(4096)
    struct.pack_into("<HHHH", c, 0, 0xFFFF, 0xFFFF, 0, 0x0010)
    c[0x08] = 0x01
    struct.pack_into("<H", c, 0x0A, 0x0200)
    struct.pack_into("<II", c, 0x10, 0xFBE00004, 0)
    struct.pack_into("<II", c, 0x1C, VF_BAR3 | 4, 0)
    struct.pack_into("<HH", c, 0x2C, 0x8086, 0xA03C)
    c[0x34] = 0x70
    struct.pack_into("<BBHII", c, 0x70, 0x11, 0xA0, 0x0002, 0x00000003, 0x00002003)
    struct.pack_into("<BBHIHHIHH", c, 0xA0, 0x10, 0x00, 0x0002, 0x10008CC1, 0x2810, 0x0010,
                     0x00036C41, 0x0040, 0x1041)
    struct.pack_into("<I", c, 0x100, 0x14010001)
    return c


VF_RESOURCES = [(0xFBE00000, 0xFBE03FFF, IORESOURCE_MEM64), None, None,
                (VF_BAR3, VF_BAR3 + 0x3FFF, IORESOURCE_MEM64)]


def make_vf(root, bdf="0000:05:10.0"):
    bar3 = bytearray(0x4000)
    bar3[0:48] = b"\xab" * 48            # the host's own table: Xen's business
    bar3[0x2000] = 0x04                   # a pending bit
    return make_device(root, bdf, vf_config(), VF_RESOURCES, 0, vendor=0x8086, device=0x10CA,
                       bars={3: bar3})


def shared_msix_config():
    """A NIC whose MSI-X table (5 entries) lives in its 64 KiB register
    BAR0 at 0x2800 and its PBA at 0x2900: the page 0x2000-0x2fff also
    holds ordinary registers. PCIe v1, INTA."""
    c = bytearray(4096)
    struct.pack_into("<HHHH", c, 0, 0x14E4, 0x1677, 0, 0x0010)
    struct.pack_into("<H", c, 0x0A, 0x0200)
    struct.pack_into("<I", c, 0x10, 0xF7C00000)
    c[0x34] = 0x48
    c[0x3D] = 0x01
    struct.pack_into("<BBH", c, 0x48, 0x10, 0x60, 0x0001)
    struct.pack_into("<H", c, 0x50, 0x2000)
    struct.pack_into("<BBHII", c, 0x60, 0x11, 0x00, 0x0004, 0x00002800, 0x00002900)
    return c


SHARED_RESOURCES = [(0xF7C00000, 0xF7C0FFFF, IORESOURCE_MEM)]


def make_shared_msix(root, bdf="0000:06:00.0", irq=19):
    bar0 = bytearray(0x10000)
    struct.pack_into("<I", bar0, 0x2000, 0xDEADBEEF)
    bar0[0x2800:0x2850] = b"\xab" * 0x50
    bar0[0x2900] = 0x05
    return make_device(root, bdf, shared_msix_config(), SHARED_RESOURCES, irq, bars={0: bar0})


def multifunction_config(fn, nfuncs):
    """Function fn of a multi-function card (the host's function 0 has the
    multi-function bit): a 4 KiB memory BAR each, INTA..INTD by function."""
    c = bytearray(256)
    struct.pack_into("<HHHH", c, 0, 0x8086, 0x10BC, 0, 0)
    struct.pack_into("<H", c, 0x0A, 0x0200)
    c[0x0E] = 0x80 if fn == 0 and nfuncs > 1 else 0
    struct.pack_into("<I", c, 0x10, 0xF7A00000 + fn * 0x1000)
    c[0x3D] = 1 + fn % 4
    return c


def make_multifunction(root, slot="0000:07:00", nfuncs=3, irq=20):
    """Functions 0..nfuncs-1 at slot.F; returns their BDFs."""
    out = []
    for fn in range(nfuncs):
        bdf = "%s.%d" % (slot, fn)
        make_device(root, bdf, multifunction_config(fn, nfuncs),
                    [(0xF7A00000 + fn * 0x1000, 0xF7A00FFF + fn * 0x1000, IORESOURCE_MEM)],
                    irq + fn)
        out.append(bdf)
    return out
