"""PCI hot-plug end to end: QMP device_add/device_del drive the ACPI
hot-plug controller, a "guest" on the qtest socket reads the registers,
enables the GPE, sees the SCI and ejects, as the DSDT's methods would."""

import pytest

import xendm

GPE0_STS = 0xAFE0
GPE0_EN = 0xAFE2
PCIU, PCID, B0EJ, B0RM = 0xAE00, 0xAE04, 0xAE08, 0xAE0C
TRAD_BASE = 0x10C0
SCI = 9


def start(start_daemon, *extra):
    d = start_daemon(["-m", "16"] + list(extra), qtest=True, qmp=True)
    q = d.qtest()
    q.irq_intercept_in("ioapic")
    m = d.qmp()
    return d, q, m


def vendor_device(q, devfn):
    return q.pci_cfg_read(devfn, 0, 4)


def sync(q):
    """A round trip on the qtest socket, so IRQ lines sent before it have
    been collected."""
    q.inb(0x80)


def enable_hotplug_gpe(q, bit):
    q.outb(GPE0_EN, 1 << bit)


def test_plug_slot5_and_eject(start_daemon):
    d, q, m = start(start_daemon)
    hotpluggable = q.inl(B0RM)
    assert hotpluggable & (1 << 5)
    # Chipset slots 0 and 1 and the platform device in slot 2 stay put.
    assert hotpluggable & 0b111 == 0
    assert q.inl(PCIU) == 0 and q.inl(PCID) == 0

    enable_hotplug_gpe(q, 1)
    m.command("device_add", driver="pci-testdev", id="t5", addr="5")
    sync(q)
    assert ("raise", SCI) in q.irqs
    assert q.inb(GPE0_STS) & 0x02
    assert q.inl(PCIU) == 1 << 5
    assert vendor_device(q, 5 << 3) == 0x00051B36
    devs = m.command("query-pci")[0]["devices"]
    assert [x["qdev_id"] for x in devs if x["slot"] == 5] == ["t5"]

    # The guest's _E01 handler: acknowledge the GPE, the SCI drops.
    q.outb(GPE0_STS, 0x02)
    sync(q)
    assert q.irqs[-1] == ("lower", SCI)

    m.command("device_del", id="t5")
    sync(q)
    assert q.irqs[-1] == ("raise", SCI)
    assert q.inl(PCID) == 1 << 5
    # Still there until the guest ejects.
    assert vendor_device(q, 5 << 3) == 0x00051B36
    q.outb(GPE0_STS, 0x02)
    q.outl(B0EJ, 1 << 5)
    ev = m.wait_event("DEVICE_DELETED")
    assert ev["data"] == {"device": "t5", "path": "/machine/peripheral/t5"}
    assert vendor_device(q, 5 << 3) == 0xFFFFFFFF
    assert q.inl(PCID) == 0 and q.inl(PCIU) == 0
    assert [x for x in m.command("query-pci")[0]["devices"] if x["slot"] == 5] == []


def test_unplug_then_reset_flushes_removal(start_daemon):
    d, q, m = start(start_daemon)
    m.command("device_add", driver="pci-testdev", id="gone", addr="6")
    m.command("device_del", id="gone")
    assert q.inl(PCID) == 1 << 6
    m.command("system_reset")
    ev = m.wait_event("DEVICE_DELETED")
    assert ev["data"]["device"] == "gone"
    m.wait_event("RESET")
    assert vendor_device(q, 6 << 3) == 0xFFFFFFFF
    assert q.inl(PCID) == 0


def test_guest_reset_through_cf9_flushes_removal(start_daemon):
    d, q, m = start(start_daemon)
    m.command("device_add", driver="pci-testdev", id="x", addr="7")
    m.command("device_del", id="x")
    q.outb(0xCF9, 0x06)
    ev = m.wait_event("RESET")
    assert ev["data"] == {"guest": True, "reason": "guest-reset"}
    assert m.wait_event("DEVICE_DELETED")["data"]["device"] == "x"
    assert vendor_device(q, 7 << 3) == 0xFFFFFFFF


def test_two_requests_before_the_guest_looks(start_daemon):
    d, q, m = start(start_daemon)
    for slot in (3, 4):
        m.command("device_add", driver="pci-testdev", id="d%d" % slot, addr=str(slot))
    m.command("device_del", id="d3")
    m.command("device_del", id="d4")
    assert q.inl(PCID) == (1 << 3) | (1 << 4)
    with pytest.raises(xendm.QMPError) as e:
        m.command("device_del", id="d3")
    assert e.value.cls == "GenericError"
    assert "already in the process of unplug" in e.value.desc
    q.outl(B0EJ, 1 << 4)
    q.outl(B0EJ, 1 << 3)
    got = {m.wait_event("DEVICE_DELETED")["data"]["device"] for _ in range(2)}
    assert got == {"d3", "d4"}


def test_insert_during_pending_removal_of_another_slot(start_daemon):
    d, q, m = start(start_daemon)
    m.command("device_add", driver="pci-testdev", id="a", addr="8")
    m.command("device_del", id="a")
    m.command("device_add", driver="pci-testdev", id="b", addr="9")
    assert q.inl(PCID) == 1 << 8
    assert q.inl(PCIU) == (1 << 8) | (1 << 9)


def test_eject_of_chipset_slot_is_refused(start_daemon):
    d, q, m = start(start_daemon)
    q.outl(B0EJ, 1 << 1)
    assert vendor_device(q, 1 << 3) == 0x70008086
    q.outl(B0EJ, 1 << 12)  # empty
    assert m.command("query-status")["status"] == "running"


def test_narrow_access_reads_zero(start_daemon):
    d, q, m = start(start_daemon)
    m.command("device_add", driver="pci-testdev", id="n", addr="5")
    assert q.inl(PCIU) == 1 << 5
    assert q.inb(PCIU) == 0
    assert q.inw(PCIU) == 0


def test_device_add_errors(start_daemon):
    d, q, m = start(start_daemon)
    m.command("device_add", driver="pci-testdev", id="dup", addr="5")
    cases = [
        (dict(driver="nonsense", id="z"), "GenericError"),
        (dict(driver="pci-testdev", id="dup"), "GenericError"),
        (dict(driver="pci-testdev", id="z", addr="5"), "GenericError"),
        (dict(driver="pci-testdev", id="z", addr="1"), "GenericError"),
        (dict(driver="pci-testdev", id="z", addr="zz"), "GenericError"),
        (dict(driver="pci-testdev", id="z", addr="40"), "GenericError"),
        (dict(driver="pci-testdev", id="z", bogus="1"), "GenericError"),
        (dict(id="z"), "GenericError"),
    ]
    for args, cls in cases:
        with pytest.raises(xendm.QMPError) as e:
            m.command("device_add", **args)
        assert e.value.cls == cls, args
    with pytest.raises(xendm.QMPError) as e:
        m.command("device_del", id="nope")
    assert e.value.cls == "DeviceNotFound"
    # Without addr the first free hot-pluggable slot is used.
    m.command("device_add", driver="pci-testdev", id="auto")
    slots = {x["qdev_id"]: x["slot"] for x in m.command("query-pci")[0]["devices"]}
    assert slots["auto"] == 3


def trad_status(q, devfn):
    b = q.inb(TRAD_BASE + 2 + devfn // 2)
    return (b >> 4) if devfn & 1 else (b & 0xF)


def test_trad_layout_queue(start_daemon):
    d, q, m = start(start_daemon, "-hotplug-layout", "qemu-trad")
    # The qemu-xen block is not there in this layout.
    assert q.inl(PCIU) == 0xFFFFFFFF
    enable_hotplug_gpe(q, 3)
    m.command("device_add", driver="pci-testdev", id="p", addr="5")
    m.command("device_add", driver="pci-testdev", id="r", addr="6")
    m.command("device_del", id="r")
    sync(q)
    assert ("raise", SCI) in q.irqs
    assert q.inb(GPE0_STS) & 0x08
    assert trad_status(q, 5 << 3) == 0xF and trad_status(q, 6 << 3) == 0xF
    seen = []
    for _ in range(3):
        seen.append((q.inb(TRAD_BASE), q.inb(TRAD_BASE + 1)))
        q.outb(GPE0_STS, 0x08)  # _L03 done: acknowledge
    assert seen == [(0, 5 << 3), (0, 6 << 3), (3, 6 << 3)]
    # _EJ0 of S30 (devfn 0x30, even): 0x01 into its pair byte.
    q.outb(TRAD_BASE + 2 + (6 << 3) // 2, 0x01)
    assert m.wait_event("DEVICE_DELETED")["data"]["device"] == "r"
    assert trad_status(q, 6 << 3) == 0
    assert vendor_device(q, 6 << 3) == 0xFFFFFFFF


def test_trad_unplug_then_reset(start_daemon):
    d, q, m = start(start_daemon, "-hotplug-layout", "qemu-trad")
    m.command("device_add", driver="pci-testdev", id="t", addr="4")
    m.command("device_del", id="t")
    m.command("system_reset")
    assert m.wait_event("DEVICE_DELETED")["data"]["device"] == "t"
    assert trad_status(q, 4 << 3) == 0


def test_bundled_hotplug_demo_script(start_daemon):
    import os
    import subprocess
    import sys
    d = start_daemon(["-m", "16"], qtest=True, qmp=True)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                          "hotplug-demo")
    out = subprocess.run([sys.executable, script, d.qmp_path, d.qtest_path], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    assert "up (0xAE00) = 0x00000020" in out
    assert "down (0xAE04) = 0x00000020" in out
    assert '"device": "demo"' in out
    assert out.rstrip().endswith("00:05.0 reads 0xffffffff (empty)")
