"""Fake sysfs trees of host PCI functions for pass-through tests: what
xen-dm reads under $XEN_DM_SYSFS_ROOT/bus/pci/devices/SSSS:BB:DD.F."""

import os
import struct

IORESOURCE_IO = 0x40101
IORESOURCE_MEM = 0x40200
IORESOURCE_MEM64_PREF = 0x14220C


def make_device(root, bdf, config, resources, irq):
    """config: 256 bytes; resources: up to 7 (start, end, flags) tuples for
    BAR0-5 and the ROM (None for an unused one)."""
    d = os.path.join(root, "bus", "pci", "devices", bdf)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config"), "wb") as f:
        f.write(bytes(config))
    lines = []
    for i in range(13):
        r = resources[i] if i < len(resources) and resources[i] else (0, 0, 0)
        lines.append("0x%016x 0x%016x 0x%016x\n" % r)
    with open(os.path.join(d, "resource"), "w") as f:
        f.write("".join(lines))
    with open(os.path.join(d, "irq"), "w") as f:
        f.write("%d\n" % irq)
    vendor, device = struct.unpack_from("<HH", bytes(config), 0)
    with open(os.path.join(d, "vendor"), "w") as f:
        f.write("0x%04x\n" % vendor)
    with open(os.path.join(d, "device"), "w") as f:
        f.write("0x%04x\n" % device)
    return d


def nic_config():
    """An 82574L-like NIC: 128 KiB BAR0, 64-bit 16 KiB BAR2, PM -> MSI
    (64-bit) -> MSI-X."""
    c = bytearray(256)
    struct.pack_into("<HHHH", c, 0, 0x8086, 0x10D3, 0, 0x0010)
    c[0x08] = 0x01
    struct.pack_into("<H", c, 0x0A, 0x0200)
    struct.pack_into("<HH", c, 0x2C, 0x8086, 0xA01F)
    c[0x34] = 0x40
    c[0x3D] = 0x01
    c[0x40:0x44] = bytes([0x01, 0x50, 0x22, 0xC8])
    c[0x50:0x54] = bytes([0x05, 0x70, 0x80, 0x00])
    c[0x70:0x74] = bytes([0x11, 0x00, 0x04, 0x00])
    return c


NIC_RESOURCES = [(0xF7E00000, 0xF7E1FFFF, IORESOURCE_MEM), None,
                 (0x3F0000000, 0x3F0003FFF, IORESOURCE_MEM64_PREF)]


def make_nic(root, bdf="0000:03:00.0", irq=16):
    return make_device(root, bdf, nic_config(), NIC_RESOURCES, irq)
