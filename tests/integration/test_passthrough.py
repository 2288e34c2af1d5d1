"""PCI pass-through under the Xen double (xen-dm-interfaces.md §4.10, §6.6):
a NIC from a fake sysfs tree attached through QMP device_add and xenstore
pci-ins; the guest sizes and programs its BARs, enables decoding and MSI;
the libxenctrl calls the double records must be exactly the plumbing, and
detach (eject, reset) must undo every one of them in reverse order. Then
MSI-X (table in its own BAR, and sharing a register page), the PCIe
capability and extended space, and multi-function devices attached and
detached as libxl does it through both control planes."""

import os
import time

import pytest

import fakesysfs
import xendm
from test_xen import DM, DOMID, Guest, qemu_trad_args, qemu_xen_args, qmp_slot, wait_state
from xendouble import IOREQ_READ, IOREQ_WRITE, XenDouble

PT_OPS = ("xc_domain_memory_mapping", "xc_domain_ioport_mapping", "xc_physdev_map_pirq",
          "xc_physdev_map_pirq_msi", "xc_physdev_unmap_pirq", "xc_domain_bind_pt_pci_irq",
          "xc_domain_unbind_pt_irq", "xc_domain_update_msi_irq", "xc_domain_unbind_msi_irq")


@pytest.fixture
def xen():
    with XenDouble(domid=DOMID, vcpus=2, ram_mib=16) as x:
        yield x


@pytest.fixture
def sysfs(tmp_path):
    root = str(tmp_path / "sysfs")
    fakesysfs.make_nic(root, "0000:03:00.0", irq=16)
    return root


def pt_calls(xen, since=0):
    """The pass-through calls since a mark, as (op, key args) tuples."""
    out = []
    for c in xen.calls(since=since):
        if c.op not in PT_OPS:
            continue
        a = c.args
        if c.op == "xc_domain_memory_mapping":
            out.append((c.op, a["first_gfn"], a["first_mfn"], a["nr_mfns"], a["add_mapping"]))
        elif c.op == "xc_domain_ioport_mapping":
            out.append((c.op, a["first_gport"], a["first_mport"], a["nr_ports"], a["add_mapping"]))
        elif c.op == "xc_physdev_map_pirq":
            out.append((c.op, a["index"]))
        elif c.op == "xc_physdev_map_pirq_msi":
            out.append((c.op, a["bus"], a["devfn"]))
        elif c.op == "xc_physdev_unmap_pirq":
            out.append((c.op, a["pirq"]))
        elif c.op in ("xc_domain_bind_pt_pci_irq", "xc_domain_unbind_pt_irq"):
            out.append((c.op, a["machine_irq"], a["bus"], a["device"], a["intx"]))
        else:
            out.append((c.op, a["gvec"], a["pirq"]))
    return out


def cfg_write(g, devfn, reg, value, size):
    g.xen.guest_out(0xCF8, 4, 0x80000000 | (devfn << 8) | (reg & 0xFC))
    g.xen.guest_out(0xCFC + (reg & 3), size, value)


def drive_guest(g, devfn):
    """What a guest OS does with the NIC: size and place the BARs, enable
    memory decoding and bus mastering, program and enable MSI."""
    cfg_write(g, devfn, 0x10, 0xFFFFFFFF, 4)
    assert g.cfg_read(devfn, 0x10) == 0xFFFE0000
    cfg_write(g, devfn, 0x18, 0xFFFFFFFF, 4)
    cfg_write(g, devfn, 0x1C, 0xFFFFFFFF, 4)
    assert g.cfg_read(devfn, 0x18) == 0xFFFFC00C
    assert g.cfg_read(devfn, 0x1C) == 0xFFFFFFFF
    cfg_write(g, devfn, 0x10, 0xE0000000, 4)
    cfg_write(g, devfn, 0x18, 0x0000000C, 4)
    cfg_write(g, devfn, 0x1C, 0x00000001, 4)
    # The capability list holds PM and MSI.
    assert g.cfg_read(devfn, 0x34, 1) == 0x40
    assert g.cfg_read(devfn, 0x40, 2) == 0x5001
    assert g.cfg_read(devfn, 0x50, 2) == 0x0005
    cfg_write(g, devfn, 0x04, 0x0006, 2)
    cfg_write(g, devfn, 0x54, 0xFEE00000, 4)
    cfg_write(g, devfn, 0x58, 0, 4)
    cfg_write(g, devfn, 0x5C, 0x0041, 2)
    cfg_write(g, devfn, 0x52, 0x0001, 2)


def expected_setup(slot, msi_pirq):
    return [("xc_domain_memory_mapping", 0xE0000, 0xF7E00, 32, 1),
            ("xc_domain_memory_mapping", 0x100000, 0x3F0000, 4, 1),
            ("xc_physdev_map_pirq_msi", 3, 0),
            ("xc_domain_update_msi_irq", 0x41, msi_pirq)]


def expected_teardown(slot, msi_pirq):
    return [("xc_domain_unbind_msi_irq", 0x41, msi_pirq),
            ("xc_physdev_unmap_pirq", msi_pirq),
            ("xc_domain_memory_mapping", 0x100000, 0x3F0000, 4, 0),
            ("xc_domain_memory_mapping", 0xE0000, 0xF7E00, 32, 0),
            ("xc_domain_unbind_pt_irq", 16, 0, slot, 0),
            ("xc_physdev_unmap_pirq", 16)]


def msi_pirq(xen):
    return xen.calls("xc_domain_update_msi_irq")[-1].args["pirq"]


def test_qmp_attach_program_and_detach(start_daemon, xenstored, xen, sysfs):
    g = Guest(start_daemon, xenstored, xen, qemu_xen_args,
              extra_env={"XEN_DM_SYSFS_ROOT": sysfs})
    q = xendm.QMP.connect(os.path.join(g.dir, "qmp-libxl"))
    mark = xen.mark()
    q.command("device_add", driver="xen-pci-passthrough", id="pci-pt-03_00.0",
              hostaddr="0000:03:00.0", permissive=False)
    slot, fn = qmp_slot(q, "pci-pt-03_00.0")
    assert fn == 0 and slot >= 3
    devfn = slot << 3
    assert pt_calls(xen, mark) == [("xc_physdev_map_pirq", 16),
                                   ("xc_domain_bind_pt_pci_irq", 16, 0, slot, 0)]
    assert g.cfg_read(devfn, 0x00) == 0x10D38086
    mark = xen.mark()
    drive_guest(g, devfn)
    pirq = msi_pirq(xen)
    assert pt_calls(xen, mark) == expected_setup(slot, pirq)
    assert xen.mem_mappings == {(0xE0000, 0xF7E00, 32), (0x100000, 0x3F0000, 4)}
    # The BAR ranges are not the daemon's: Xen sends it nothing for them.
    assert not any(lo <= 0xE0000000 <= hi for lo, hi in g.server.mmio_ranges)
    # A pass-through device cannot be saved: libxl re-attaches after restore.
    g.d.allow_errors(r"savestate: pass-through device 'pci-pt-03_00.0' cannot be saved",
                     r"savestate: cannot save the device state: Operation not supported")
    r = q.cmd("xen-save-devices-state", filename=os.path.join(g.dir, "state"))
    assert "error" in r
    mark = xen.mark()
    q.command("device_del", id="pci-pt-03_00.0")
    xen.guest_out(0xAE08, 4, 1 << slot)              # the guest's _EJ0
    assert q.wait_event("DEVICE_DELETED")["data"]["device"] == "pci-pt-03_00.0"
    assert pt_calls(xen, mark) == expected_teardown(slot, pirq)
    assert not xen.mem_mappings and not xen.pirqs and not xen.msi_binds
    q.close()
    g.stop()


def test_qmp_errors(start_daemon, xenstored, xen, sysfs):
    g = Guest(start_daemon, xenstored, xen, qemu_xen_args,
              extra_env={"XEN_DM_SYSFS_ROOT": sysfs})
    q = xendm.QMP.connect(os.path.join(g.dir, "qmp-libxl"))
    r = q.cmd("device_add", driver="xen-pci-passthrough", id="a", hostaddr="0000:09:00.0")
    assert r["error"]["desc"] == "host PCI device 0000:09:00.0 not found"
    r = q.cmd("device_add", driver="xen-pci-passthrough", id="b", hostaddr="0000:03:00.0",
              addr="0.0")
    assert "not available" in r["error"]["desc"]
    r = q.cmd("device_add", driver="xen-pci-passthrough", id="c", hostaddr="0000:03:00.0",
              addr="zz")
    assert r["error"]["desc"] == "Property 'addr' does not accept 'zz'"
    assert pt_calls(xen) == []
    q.close()
    g.stop()


def test_xenstore_attach_program_and_detach(start_daemon, xenstored, xen, sysfs):
    g = Guest(start_daemon, xenstored, xen, qemu_trad_args,
              extra_env={"XEN_DM_SYSFS_ROOT": sysfs})
    xs = g.xs
    mark = xen.mark()
    xs.write(DM + "/parameter", "0000:03:00.0@20,msitranslate=0,power_mgmt=0")
    xs.write(DM + "/command", "pci-ins")
    wait_state(xs, "pci-inserted")
    assert xs.read(DM + "/parameter") == "0x20"
    xs.write(DM + "/state", "running")
    slot, devfn = 4, 0x20
    assert pt_calls(xen, mark) == [("xc_physdev_map_pirq", 16),
                                   ("xc_domain_bind_pt_pci_irq", 16, 0, slot, 0)]
    mark = xen.mark()
    drive_guest(g, devfn)
    pirq = msi_pirq(xen)
    assert pt_calls(xen, mark) == expected_setup(slot, pirq)
    # Moving BAR0 while it decodes: out of the old place, into the new.
    mark = xen.mark()
    cfg_write(g, devfn, 0x10, 0xE0100000, 4)
    assert pt_calls(xen, mark) == [("xc_domain_memory_mapping", 0xE0000, 0xF7E00, 32, 0),
                                   ("xc_domain_memory_mapping", 0xE0100, 0xF7E00, 32, 1)]
    mark = xen.mark()
    xs.write(DM + "/parameter", "0000:03:00.0")
    xs.write(DM + "/command", "pci-rem")
    time.sleep(0.1)
    assert pt_calls(xen, mark) == []                 # nothing until the eject
    xen.guest_out(0x10C2 + devfn // 2, 1, 0x01)      # _EJ0
    wait_state(xs, "pci-removed")
    # BAR0 moved last, so it goes first.
    assert pt_calls(xen, mark) == [
        ("xc_domain_unbind_msi_irq", 0x41, pirq),
        ("xc_physdev_unmap_pirq", pirq),
        ("xc_domain_memory_mapping", 0xE0100, 0xF7E00, 32, 0),
        ("xc_domain_memory_mapping", 0x100000, 0x3F0000, 4, 0),
        ("xc_domain_unbind_pt_irq", 16, 0, slot, 0),
        ("xc_physdev_unmap_pirq", 16)]
    assert g.cfg_read(devfn, 0) == 0xFFFFFFFF
    g.stop()


def test_missing_host_function_over_xenstore(start_daemon, xenstored, xen, sysfs):
    g = Guest(start_daemon, xenstored, xen, qemu_trad_args,
              extra_env={"XEN_DM_SYSFS_ROOT": sysfs})
    g.xs.write(DM + "/parameter", "0000:0a:00.0,msitranslate=0,power_mgmt=0")
    g.xs.write(DM + "/command", "pci-ins")
    wait_state(g.xs, "pci-insert-failed")
    assert pt_calls(xen) == []
    g.stop()


def test_reset_with_pending_removal_unplugs_and_unmaps(start_daemon, xenstored, xen, sysfs):
    g = Guest(start_daemon, xenstored, xen, qemu_trad_args,
              extra_env={"XEN_DM_SYSFS_ROOT": sysfs})
    xs = g.xs
    xs.write(DM + "/parameter", "0000:03:00.0@20,msitranslate=0,power_mgmt=0")
    xs.write(DM + "/command", "pci-ins")
    wait_state(xs, "pci-inserted")
    xs.write(DM + "/state", "running")
    drive_guest(g, 0x20)
    pirq = msi_pirq(xen)
    xs.write(DM + "/parameter", "0000:03:00.0")
    xs.write(DM + "/command", "pci-rem")
    time.sleep(0.1)
    assert xs.read(DM + "/state") == "running"       # the guest never ejects
    mark = xen.mark()
    q = xendm.QMP.connect(os.path.join(g.dir, "qmp"))
    q.command("system_reset")
    wait_state(xs, "pci-removed")
    calls = pt_calls(xen, mark)
    assert sorted(calls) == sorted(expected_teardown(4, pirq))
    # Interrupts last, after every range is gone.
    assert calls[-2:] == expected_teardown(4, pirq)[-2:]
    assert not xen.mem_mappings and not xen.pirqs and not xen.msi_binds
    assert qmp_slot(q, "pci-pt-03_00.0") is None
    q.close()
    g.stop()


def test_exit_unwinds_everything(start_daemon, xenstored, xen, sysfs):
    g = Guest(start_daemon, xenstored, xen, qemu_xen_args,
              extra_env={"XEN_DM_SYSFS_ROOT": sysfs})
    q = xendm.QMP.connect(os.path.join(g.dir, "qmp-libxl"))
    q.command("device_add", driver="xen-pci-passthrough", id="pci-pt-03_00.0",
              hostaddr="0000:03:00.0", addr="5")
    drive_guest(g, 5 << 3)
    pirq = msi_pirq(xen)
    mark = xen.mark()
    q.close()
    g.stop()                                         # assert_clean: nothing left
    assert pt_calls(xen, mark) == expected_teardown(5, pirq)


# --- MSI-X -----------------------------------------------------------------

IOREQ_TYPE_PCI_CONFIG = 2
UNMASKED = 0x10000          # XEN_DOMCTL_VMSI_X86_UNMASKED


def msix_calls(xen, since=0):
    """Pass-through calls with every argument that matters for MSI-X."""
    out = []
    for c in xen.calls(since=since):
        a = c.args
        if c.op == "xc_physdev_map_pirq_msi":
            out.append((c.op, a["bus"], a["devfn"], a["entry_nr"], a["table_base"]))
        elif c.op == "xc_domain_update_msi_irq":
            out.append((c.op, a["gvec"], a["pirq"], a["gflags"], a["gtable"]))
        elif c.op == "xc_domain_unbind_msi_irq":
            out.append((c.op, a["gvec"], a["pirq"], a["gflags"]))
        elif c.op == "xc_physdev_unmap_pirq":
            out.append((c.op, a["pirq"]))
        elif c.op == "xc_domain_memory_mapping":
            out.append((c.op, a["first_gfn"], a["first_mfn"], a["nr_mfns"], a["add_mapping"]))
        elif c.op in PT_OPS:
            out.append((c.op,))
    return out


def pirqs_of(xen, since):
    return [c.args["pirq"] for c in xen.calls("xc_domain_update_msi_irq", since=since)]


def vf_sysfs(tmp_path):
    root = str(tmp_path / "sysfs")
    fakesysfs.make_vf(root)
    fakesysfs.make_shared_msix(root)
    fakesysfs.make_multifunction(root)
    return root


def place_vf(g, devfn, bar3=0xE0010000):
    """The guest sizes and places the VF's two 64-bit BARs, turns memory and
    bus mastering on."""
    cfg_write(g, devfn, 0x10, 0xFFFFFFFF, 4)
    cfg_write(g, devfn, 0x14, 0xFFFFFFFF, 4)
    assert g.cfg_read(devfn, 0x10) == 0xFFFFC004
    cfg_write(g, devfn, 0x10, 0xE0000000, 4)
    cfg_write(g, devfn, 0x14, 0, 4)
    cfg_write(g, devfn, 0x1C, bar3, 4)
    cfg_write(g, devfn, 0x20, 0, 4)
    cfg_write(g, devfn, 0x04, 0x0006, 2)


def test_msix_vf_over_qmp(start_daemon, xenstored, xen, tmp_path):
    root = vf_sysfs(tmp_path)
    g = Guest(start_daemon, xenstored, xen, qemu_xen_args,
              extra_env={"XEN_DM_SYSFS_ROOT": root})
    q = xendm.QMP.connect(os.path.join(g.dir, "qmp-libxl"))
    mark = xen.mark()
    q.command("device_add", driver="xen-pci-passthrough", id="pci-pt-05_10.0",
              hostaddr="0000:05:10.0", addr="6.0")
    assert qmp_slot(q, "pci-pt-05_10.0") == (6, 0)
    devfn = 6 << 3
    assert pt_calls(xen, mark) == []                 # a VF has no INTx
    # What the guest sees: sysfs identity, MSI-X then PCIe, nothing else.
    assert g.cfg_read(devfn, 0x00) == 0x10CA8086
    assert g.cfg_read(devfn, 0x34, 1) == 0x70
    assert g.cfg_read(devfn, 0x70) == 0x0002A011
    assert g.cfg_read(devfn, 0x74) == 0x00000003
    assert g.cfg_read(devfn, 0x78) == 0x00002003
    assert g.cfg_read(devfn, 0xA0) == 0x00020010
    mark = xen.mark()
    place_vf(g, devfn)
    # BAR3's first page holds the table: it is mapped around, and the page
    # is the daemon's (Xen sends it the accesses).
    assert msix_calls(xen, mark) == [
        ("xc_domain_memory_mapping", 0xE0000, 0xFBE00, 4, 1),
        ("xc_domain_memory_mapping", 0xE0011, 0xFBE21, 3, 1)]
    assert (0xE0010000, 0xE0010FFF) in g.server.mmio_ranges
    assert not any(lo <= 0xE0011000 <= hi for lo, hi in g.server.mmio_ranges)
    # The guest programs three entries (DWORD and QWORD writes).
    assert xen.guest_mmio_read(0xE001000C, 4) == 1   # masked at start
    for i, (addr, data) in enumerate([(0xFEE00000, 0x4041), (0xFEE01000, 0x4042),
                                      (0xFEE02000, 0x8043)]):
        xen.guest_mmio_write(0xE0010000 + 16 * i, 8, addr)
        xen.guest_mmio_write(0xE0010008 + 16 * i, 4, data)
    assert xen.guest_mmio_read(0xE0010010, 8) == 0xFEE01000
    assert xen.guest_mmio_read(0xE0010028, 4) == 0x8043
    mark = xen.mark()
    cfg_write(g, devfn, 0x72, 0x8000, 2)             # MSI-X enable
    assert msix_calls(xen, mark) == []               # every entry masked
    for i in range(3):
        xen.guest_mmio_write(0xE001000C + 16 * i, 4, 0)
    p = pirqs_of(xen, mark)
    assert msix_calls(xen, mark) == [
        ("xc_physdev_map_pirq_msi", 5, 0x80, 0, 0xFBE20000),
        ("xc_domain_update_msi_irq", 0x41, p[0], UNMASKED | 0x00, 0xE0010000),
        ("xc_physdev_map_pirq_msi", 5, 0x80, 1, 0xFBE20000),
        ("xc_domain_update_msi_irq", 0x42, p[1], UNMASKED | 0x01, 0xE0010000),
        ("xc_physdev_map_pirq_msi", 5, 0x80, 2, 0xFBE20000),
        ("xc_domain_update_msi_irq", 0x43, p[2], UNMASKED | 0x02 | 0x8000, 0xE0010000)]
    assert len(set(p)) == 3 and set(p) <= set(xen.pirqs)
    # Mask entry 1: unbound and unmapped. New data for entry 0: rebound.
    mark = xen.mark()
    xen.guest_mmio_write(0xE001001C, 4, 1)
    xen.guest_mmio_write(0xE0010008, 4, 0x4051)
    assert msix_calls(xen, mark) == [
        ("xc_domain_unbind_msi_irq", 0x42, p[1], UNMASKED | 0x01),
        ("xc_physdev_unmap_pirq", p[1]),
        ("xc_domain_update_msi_irq", 0x51, p[0], UNMASKED, 0xE0010000)]
    assert xen.guest_mmio_read(0xE0010008, 4) == 0x4051
    assert xen.guest_mmio_read(0xE001001C, 4) == 1
    # The host's table was never touched: Xen programs it.
    assert fakesysfs.read_bar(root, "0000:05:10.0", 3, 0, 48) == b"\xab" * 48
    # The PBA page is mapped straight to the guest, not served here.
    assert not any(lo <= 0xE0012000 <= hi for lo, hi in g.server.mmio_ranges)
    # Detach: entries newest first, then the BARs in reverse.
    mark = xen.mark()
    q.command("device_del", id="pci-pt-05_10.0")
    xen.guest_out(0xAE08, 4, 1 << 6)
    assert q.wait_event("DEVICE_DELETED")["data"]["device"] == "pci-pt-05_10.0"
    assert msix_calls(xen, mark) == [
        ("xc_domain_unbind_msi_irq", 0x43, p[2], UNMASKED | 0x02 | 0x8000),
        ("xc_physdev_unmap_pirq", p[2]),
        ("xc_domain_unbind_msi_irq", 0x51, p[0], UNMASKED),
        ("xc_physdev_unmap_pirq", p[0]),
        ("xc_domain_memory_mapping", 0xE0011, 0xFBE21, 3, 0),
        ("xc_domain_memory_mapping", 0xE0000, 0xFBE00, 4, 0)]
    assert not any(lo <= 0xE0010000 <= hi for lo, hi in g.server.mmio_ranges)
    assert not xen.mem_mappings and not xen.pirqs and not xen.msi_binds
    q.close()
    g.stop()


def test_msix_shared_page_over_xenstore_reset_and_exit(start_daemon, xenstored, xen, tmp_path):
    root = vf_sysfs(tmp_path)
    g = Guest(start_daemon, xenstored, xen, qemu_trad_args,
              extra_env={"XEN_DM_SYSFS_ROOT": root})
    xs = g.xs
    xs.write(DM + "/parameter", "0000:06:00.0@28,msitranslate=0,power_mgmt=0")
    xs.write(DM + "/command", "pci-ins")
    wait_state(xs, "pci-inserted")
    xs.write(DM + "/state", "running")
    devfn = 0x28
    assert g.cfg_read(devfn, 0x34, 1) == 0x48 and g.cfg_read(devfn, 0x49, 1) == 0x60
    assert g.cfg_read(devfn, 0x60) == 0x00040011
    mark = xen.mark()
    cfg_write(g, devfn, 0x10, 0xE0000000, 4)
    cfg_write(g, devfn, 0x04, 0x0006, 2)
    assert msix_calls(xen, mark) == [
        ("xc_domain_memory_mapping", 0xE0000, 0xF7C00, 2, 1),
        ("xc_domain_memory_mapping", 0xE0003, 0xF7C03, 13, 1)]
    assert (0xE0002000, 0xE0002FFF) in g.server.mmio_ranges
    # Registers sharing the table's page reach the host BAR; the PBA is the
    # host's; the table is ours.
    assert xen.guest_mmio_read(0xE0002000, 4) == 0xDEADBEEF
    xen.guest_mmio_write(0xE0002004, 4, 0xCAFE)
    assert fakesysfs.read_bar(root, "0000:06:00.0", 0, 0x2004, 4) == b"\xfe\xca\x00\x00"
    assert xen.guest_mmio_read(0xE0002900, 8) == 5
    xen.guest_mmio_write(0xE0002800, 4, 0xFEE00000)
    xen.guest_mmio_write(0xE0002808, 4, 0x4061)
    xen.guest_mmio_write(0xE000280C, 4, 0)
    xen.guest_mmio_write(0xE0002810, 4, 0xFEE00000)
    xen.guest_mmio_write(0xE0002818, 4, 0x4062)
    xen.guest_mmio_write(0xE000281C, 4, 0)
    # Hostile accesses: odd sizes and misaligned, across the table's edges.
    for a in (0xE0002801, 0xE0002806, 0xE000284E, 0xE00028FF):
        for size in (1, 2, 4, 8):
            xen.guest_mmio_write(a, size, 0xFFFFFFFFFFFFFFFF)
            xen.guest_mmio_read(a, size)
    assert xen.guest_mmio_read(0xE0002800, 4) == 0xFEE00000
    mark = xen.mark()
    cfg_write(g, devfn, 0x62, 0x8000, 2)
    p = pirqs_of(xen, mark)
    assert msix_calls(xen, mark) == [
        ("xc_physdev_map_pirq_msi", 6, 0, 0, 0xF7C00000),
        ("xc_domain_update_msi_irq", 0x61, p[0], UNMASKED, 0xE0002800),
        ("xc_physdev_map_pirq_msi", 6, 0, 1, 0xF7C00000),
        ("xc_domain_update_msi_irq", 0x62, p[1], UNMASKED, 0xE0002800)]
    assert fakesysfs.read_bar(root, "0000:06:00.0", 0, 0x2800, 0x50) == b"\xab" * 0x50
    # A reset unbinds, unmaps, stops the BAR decoding.
    mark = xen.mark()
    qp = xendm.QMP.connect(os.path.join(g.dir, "qmp"))
    qp.command("system_reset")
    xen.wait_for("xc_domain_memory_mapping", since=mark, first_gfn=0xE0000, add_mapping=0)
    assert msix_calls(xen, mark) == [
        ("xc_domain_unbind_msi_irq", 0x62, p[1], UNMASKED),
        ("xc_physdev_unmap_pirq", p[1]),
        ("xc_domain_unbind_msi_irq", 0x61, p[0], UNMASKED),
        ("xc_physdev_unmap_pirq", p[0]),
        ("xc_domain_memory_mapping", 0xE0003, 0xF7C03, 13, 0),
        ("xc_domain_memory_mapping", 0xE0000, 0xF7C00, 2, 0)]
    assert not any(lo <= 0xE0002000 <= hi for lo, hi in g.server.mmio_ranges)
    # The guest sets it up again; the daemon's exit unwinds it all.
    cfg_write(g, devfn, 0x10, 0xE0000000, 4)
    cfg_write(g, devfn, 0x04, 0x0006, 2)
    assert xen.guest_mmio_read(0xE000280C, 4) == 1   # reset masked it
    xen.guest_mmio_write(0xE000280C, 4, 0)
    cfg_write(g, devfn, 0x62, 0x8000, 2)
    mark = xen.mark()
    qp.close()
    g.stop()                                         # assert_clean
    calls = msix_calls(xen, mark)
    assert [c[0] for c in calls] == ["xc_domain_unbind_msi_irq", "xc_physdev_unmap_pirq",
                                     "xc_domain_memory_mapping", "xc_domain_memory_mapping",
                                     "xc_domain_unbind_pt_irq", "xc_physdev_unmap_pirq"]


def test_pcie_capability_and_extended_space(start_daemon, xenstored, xen, tmp_path):
    root = vf_sysfs(tmp_path)
    g = Guest(start_daemon, xenstored, xen, qemu_xen_args,
              extra_env={"XEN_DM_SYSFS_ROOT": root})
    q = xendm.QMP.connect(os.path.join(g.dir, "qmp-libxl"))
    q.command("device_add", driver="xen-pci-passthrough", id="pci-pt-05_10.0",
              hostaddr="0000:05:10.0", addr="6")
    devfn = 6 << 3
    before = fakesysfs.read_config(root, "0000:05:10.0")
    assert g.cfg_read(devfn, 0xA4) == 0x00008CC1      # FLR not offered
    cfg_write(g, devfn, 0xA8, 0xFFFF, 2)              # Device Control
    cfg_write(g, devfn, 0xB0, 0x0003, 2)              # Link Control (ASPM)
    assert g.cfg_read(devfn, 0xA8, 2) == 0x7FFF
    assert g.cfg_read(devfn, 0xB0, 2) == 0x0003
    assert g.cfg_read(devfn, 0xB2, 2) == 0x1041       # Link Status: the host's
    assert fakesysfs.read_config(root, "0000:05:10.0") == before
    # Extended space through PCI_CONFIG ioreqs (as with AMD's CF8 extension):
    # an empty header at 0x100 ends the list; the host's AER is not shown.
    sbdf = devfn
    assert sbdf in g.server.pci_devices

    def ext(reg, dir=IOREQ_READ, value=0):
        return xen.send_ioreq(0, IOREQ_TYPE_PCI_CONFIG, (sbdf << 32) | reg, 4, 1, dir, value)
    assert ext(0x100) == 0
    assert ext(0xFFC) == 0
    ext(0x100, IOREQ_WRITE, 0xFFFFFFFF)
    assert ext(0x100) == 0
    # A conventional function keeps reading all-ones there.
    assert xen.send_ioreq(0, IOREQ_TYPE_PCI_CONFIG, (0 << 32) | 0x100, 4, 1, IOREQ_READ,
                          0) & 0xFFFFFFFF == 0xFFFFFFFF
    # Hostile guest: every register of the function, MSI-X and PCIe
    # included; the host's configuration space does not change outside the
    # forwarded command bits.
    for reg in range(0, 256, 4):
        cfg_write(g, devfn, reg, 0xFFFFFFFF, 4)
        cfg_write(g, devfn, reg, 0, 4)
    after = fakesysfs.read_config(root, "0000:05:10.0")
    assert after[:4] == before[:4] and after[6:] == before[6:]
    q.close()
    g.stop()


# --- multi-function devices ------------------------------------------------

MF = ["0000:07:00.%d" % fn for fn in range(3)]


def place_functions(g, slot):
    """The guest (after the insert event) finds every function through
    function 0's multi-function bit and places each one's 4 KiB BAR."""
    assert g.cfg_read(slot << 3, 0x0E, 1) == 0x80
    for fn in range(3):
        devfn = slot << 3 | fn
        assert g.cfg_read(devfn, 0x00) == 0x10BC8086
        assert g.cfg_read(devfn, 0x3D, 1) == 1 + fn
        cfg_write(g, devfn, 0x10, 0xE0000000 + fn * 0x1000, 4)
        cfg_write(g, devfn, 0x04, 0x0002, 2)


def mf_setup(slot):
    return [("xc_domain_memory_mapping", 0xE0000 + fn, 0xF7A00 + fn, 1, 1) for fn in range(3)]


def mf_teardown(slot):
    """Functions leave 7 -> 0 (as libxl detaches them); each undoes its own
    set-up in reverse: the BAR, then INTx."""
    out = []
    for fn in (2, 1, 0):
        out += [("xc_domain_memory_mapping", 0xE0000 + fn, 0xF7A00 + fn, 1, 0),
                ("xc_domain_unbind_pt_irq", 20 + fn, 0, slot, fn),
                ("xc_physdev_unmap_pirq", 20 + fn)]
    return out


def test_multifunction_over_xenstore(start_daemon, xenstored, xen, tmp_path):
    """xl pci-attach <dom> 07:00.*@05 on a qemu-trad guest: libxl sends
    pci-ins for functions 2, 1, 0 with vdevfn slot|function; only function
    0 raises the insert event. pci-detach: functions 2 and 1 only get their
    BDF written to parameter (no command); pci-rem of function 0 removes the
    whole slot once the guest ejects it."""
    root = vf_sysfs(tmp_path)
    g = Guest(start_daemon, xenstored, xen, qemu_trad_args,
              extra_env={"XEN_DM_SYSFS_ROOT": root})
    xs = g.xs
    slot = 5
    xen.guest_out(0xAFE2, 1, 0x08)                   # the OS enabled GPE bit 3
    mark = xen.mark()
    for fn in (2, 1, 0):
        wait_state(xs, "running")
        xs.write(DM + "/parameter", "%s@%02x,msitranslate=0,power_mgmt=0"
                 % (MF[fn], slot << 3 | fn))
        xs.write(DM + "/command", "pci-ins")
        wait_state(xs, "pci-inserted")
        assert xs.read(DM + "/parameter") == "0x%02x" % (slot << 3 | fn)
        if fn:
            # Silent: present for the guest's status nibbles, no event yet.
            assert xen.guest_in(0xAFE0, 1) & 0x08 == 0
            assert xen.guest_in(0x10C0, 1) == 0 and xen.guest_in(0x10C1, 1) == 0
        xs.write(DM + "/state", "running")
    assert xen.guest_in(0xAFE0, 1) & 0x08
    assert xen.guest_in(0x10C0, 1) == 0 and xen.guest_in(0x10C1, 1) == slot << 3
    assert xen.guest_in(0x10C2 + (slot << 3) // 2, 1) == 0xFF   # functions 0, 1
    assert xen.guest_in(0x10C2 + (slot << 3 | 2) // 2, 1) & 0x0F == 0x0F
    assert pt_calls(xen, mark) == [
        c for fn in (2, 1, 0) for c in (("xc_physdev_map_pirq", 20 + fn),
                                        ("xc_domain_bind_pt_pci_irq", 20 + fn, 0, slot, fn))]
    xen.guest_out(0xAFE0, 1, 0x08)
    mark = xen.mark()
    place_functions(g, slot)
    assert pt_calls(xen, mark) == mf_setup(slot)
    # Detach as libxl does: 2 and 1 are only named, 0 is removed.
    mark = xen.mark()
    for fn in (2, 1):
        xs.write(DM + "/parameter", MF[fn])
    xs.write(DM + "/parameter", MF[0])
    xs.write(DM + "/command", "pci-rem")
    time.sleep(0.1)
    assert pt_calls(xen, mark) == []                 # nothing until the eject
    assert xen.guest_in(0x10C0, 1) == 3
    xen.guest_out(0x10C2 + (slot << 3) // 2, 1, 0x01)   # _EJ0 of function 0
    wait_state(xs, "pci-removed")
    assert pt_calls(xen, mark) == mf_teardown(slot)
    for fn in range(3):
        assert g.cfg_read(slot << 3 | fn, 0) == 0xFFFFFFFF
    assert not xen.mem_mappings and not xen.pirqs and not xen.pt_irqs
    g.stop()


def test_multifunction_over_qmp(start_daemon, xenstored, xen, tmp_path):
    """The same with qemu-xen: device_add of functions 2, 1, 0 with
    addr=5.F (then query-pci, as libxl does); only function 0 raises GPE
    bit 1. device_del of function 0 and the guest's eject remove all
    three."""
    root = vf_sysfs(tmp_path)
    g = Guest(start_daemon, xenstored, xen, qemu_xen_args,
              extra_env={"XEN_DM_SYSFS_ROOT": root})
    q = xendm.QMP.connect(os.path.join(g.dir, "qmp-libxl"))
    slot = 5
    xen.guest_out(0xAFE2, 1, 0x02)
    mark = xen.mark()
    for fn in (2, 1, 0):
        q.command("device_add", driver="xen-pci-passthrough", id="pci-pt-07_00.%d" % fn,
                  hostaddr=MF[fn], addr="%x.%x" % (slot, fn))
        assert qmp_slot(q, "pci-pt-07_00.%d" % fn) == (slot, fn)
        if fn:
            assert xen.guest_in(0xAFE0, 1) & 0x02 == 0
    assert xen.guest_in(0xAFE0, 1) & 0x02
    assert xen.guest_in(0xAE00, 4) & (1 << slot)
    assert pt_calls(xen, mark) == [
        c for fn in (2, 1, 0) for c in (("xc_physdev_map_pirq", 20 + fn),
                                        ("xc_domain_bind_pt_pci_irq", 20 + fn, 0, slot, fn))]
    xen.guest_out(0xAFE0, 1, 0x02)
    mark = xen.mark()
    place_functions(g, slot)
    assert pt_calls(xen, mark) == mf_setup(slot)
    # A function behind a present function 0 would never be seen: refused,
    # as is a host function attached twice.
    r = q.cmd("device_add", driver="xen-pci-passthrough", id="late",
              hostaddr="0000:05:10.0", addr="%x.3" % slot)
    assert r["error"]["desc"].startswith("PCI: slot 5 function 0 already occupied")
    r = q.cmd("device_add", driver="xen-pci-passthrough", id="twice",
              hostaddr=MF[1], addr="9")
    assert r["error"]["desc"] == ("host PCI device 0000:07:00.1 is already attached as "
                                  "'pci-pt-07_00.1'")
    mark = xen.mark()
    q.command("device_del", id="pci-pt-07_00.0")
    assert xen.guest_in(0xAE04, 4) == 1 << slot
    xen.guest_out(0xAE08, 4, 1 << slot)              # _EJ0
    gone = [q.wait_event("DEVICE_DELETED")["data"]["device"] for _ in range(3)]
    assert gone == ["pci-pt-07_00.2", "pci-pt-07_00.1", "pci-pt-07_00.0"]
    assert pt_calls(xen, mark) == mf_teardown(slot)
    assert all(qmp_slot(q, "pci-pt-07_00.%d" % fn) is None for fn in range(3))
    # libxl goes on with device_del of the other functions: they are gone.
    r = q.cmd("device_del", id="pci-pt-07_00.1")
    assert r["error"]["class"] == "DeviceNotFound"
    q.close()
    g.stop()


def test_msix_hostile_host_layout_is_hidden(start_daemon, xenstored, xen, tmp_path):
    """A host whose MSI-X capability points past its BAR: the capability is
    hidden (the list runs MSI-X-less to PCIe), said so in the log, and the
    BAR is mapped whole."""
    root = str(tmp_path / "sysfs")
    c = fakesysfs.vf_config()
    c[0x74:0x78] = (0x00003FF3).to_bytes(4, "little")   # 3 entries from BAR3 + 0x3ff0
    fakesysfs.make_device(root, "0000:05:10.0", c, fakesysfs.VF_RESOURCES, 0,
                          vendor=0x8086, device=0x10CA, bars={3: bytes(0x4000)})
    g = Guest(start_daemon, xenstored, xen, qemu_xen_args,
              extra_env={"XEN_DM_SYSFS_ROOT": root})
    q = xendm.QMP.connect(os.path.join(g.dir, "qmp-libxl"))
    q.command("device_add", driver="xen-pci-passthrough", id="pci-pt-05_10.0",
              hostaddr="0000:05:10.0", addr="6")
    g.d.wait_log(r"MSI-X capability hidden: table runs past the end of its BAR")
    devfn = 6 << 3
    assert g.cfg_read(devfn, 0x34, 1) == 0xA0
    assert g.cfg_read(devfn, 0xA1, 1) == 0
    mark = xen.mark()
    place_vf(g, devfn)
    assert msix_calls(xen, mark) == [
        ("xc_domain_memory_mapping", 0xE0000, 0xFBE00, 4, 1),
        ("xc_domain_memory_mapping", 0xE0010, 0xFBE20, 4, 1)]
    assert not any(lo <= 0xE0010000 <= hi for lo, hi in g.server.mmio_ranges)
    q.close()
    g.stop()
