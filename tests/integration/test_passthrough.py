"""PCI pass-through under the Xen double (xen-dm-interfaces.md §4.10, §6.6):
a NIC from a fake sysfs tree attached through QMP device_add and xenstore
pci-ins; the guest sizes and programs its BARs, enables decoding and MSI;
the libxenctrl calls the double records must be exactly the plumbing, and
detach (eject, reset) must undo every one of them in reverse order."""

import os
import time

import pytest

import fakesysfs
import xendm
from test_xen import DM, DOMID, Guest, qemu_trad_args, qemu_xen_args, qmp_slot, wait_state
from xendouble import XenDouble

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
    # The capability list holds PM and MSI; MSI-X is filtered out.
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
