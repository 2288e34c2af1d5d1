"""xen-dm attached to a domain: the production binary under the test double
of the Xen libraries (tests/xendouble) with a real xenstored, started with
the command lines libxl builds (xen-dm-interfaces.md §4.2, §4.3)."""

import os
import time

import pytest

import fakesysfs
import xendm
from xendouble import (IOREQ_READ, IOREQ_TYPE_COPY, IOREQ_TYPE_PCI_CONFIG, IOREQ_TYPE_PIO,
                       IOREQ_WRITE, XenDouble)

DOMID = 5
DM = "/local/domain/0/device-model/%d" % DOMID


def qemu_xen_args(d):
    return ["-xen-domid", str(DOMID), "-no-shutdown",
            "-chardev", "socket,id=libxl-cmd,path=%s/qmp-libxl,server=on,wait=off" % d,
            "-mon", "chardev=libxl-cmd,mode=control",
            "-nodefaults", "-no-user-config", "-name", "guest", "-vnc", "none",
            "-display", "none", "-serial", "file:%s/com1" % d,
            "-machine", "xenfv,suppress-vmdesc=on", "-m", "16"]


def qemu_trad_args(d):
    # qemu-dm has no QMP; a -qmp socket is added to look inside.
    return ["-d", str(DOMID), "-domain-name", "guest", "-serial", "file:%s/com1" % d,
            "-vcpus", "4", "-vcpu_avail", "f", "-acpi", "-M", "xenfv",
            "-qmp", "unix:%s/qmp,server=on,wait=off" % d]


class Guest:
    """One attached daemon, the double playing Xen and a real xenstored."""

    def __init__(self, start_daemon, xenstored, xen, args_fn, extra_env=None, **kw):
        self.xen = xen
        self.xs = xenstored
        # What libxl does before spawning (§4.1).
        c = xenstored.client()
        c.mkdir(DM)
        c.close()
        env = dict(xen.env())
        env["XENSTORED_PATH"] = xenstored.socket
        env.update(extra_env or {})
        sockdir = xendm.short_tempdir()
        self.dir = sockdir
        self.d = start_daemon(args_fn(sockdir), env=env,
                              extra_sockets=[os.path.join(sockdir, "qmp-libxl" if "-xen-domid" in
                                                          args_fn(sockdir) else "qmp")], **kw)
        self.server = xen.wait_attached()
        deadline = time.monotonic() + 10
        while xenstored.read(DM + "/state") != "running":
            assert time.monotonic() < deadline, "no state=running"
            time.sleep(0.01)

    def cfg_read(self, devfn, reg, size=4, vcpu=0):
        self.xen.guest_out(0xCF8, 4, 0x80000000 | (devfn << 8) | (reg & 0xFC), vcpu)
        return self.xen.guest_in(0xCFC + (reg & 3), size, vcpu)

    def com1(self):
        with open(os.path.join(self.dir, "com1"), "rb") as f:
            return f.read()

    def stop(self):
        self.d.stop()
        self.xen.wait_exit(self.d.proc.pid)
        self.xen.assert_clean()


@pytest.fixture
def xen():
    with XenDouble(domid=DOMID, vcpus=4, ram_mib=16) as x:
        yield x


@pytest.fixture
def guest(start_daemon, xenstored, xen):
    g = Guest(start_daemon, xenstored, xen, qemu_xen_args)
    yield g


def test_attach_registers_the_chipset(guest):
    xen = guest.xen
    ops = [c.op for c in xen.calls()]
    # Resource mapping before enabling, enabling before binding (§2.3).
    first = {op: ops.index(op) for op in ("xendevicemodel_create_ioreq_server",
                                         "xenforeignmemory_map_resource",
                                         "xendevicemodel_set_ioreq_server_state",
                                         "xenevtchn_bind_interdomain")}
    assert first["xendevicemodel_create_ioreq_server"] < first["xenforeignmemory_map_resource"] \
        < first["xendevicemodel_set_ioreq_server_state"] < first["xenevtchn_bind_interdomain"]
    s = xen.server()
    pci = set(s.pci_devices)  # SBDFs: segment 0, bus 0
    for devfn in (0x00, 0x08, 0x09, 0x0B, 0x10):
        assert devfn in pci, hex(devfn)
    ports = s.port_ranges
    for port in (0xCF8, 0x3F8, 0x70, 0xAE00, 0xAFE0, 0xB2, 0x10):
        assert any(a <= port <= b for a, b in ports), hex(port)
    guest.stop()


def test_config_cycles_and_pci_config_ioreqs(guest):
    xen = guest.xen
    assert guest.cfg_read(0x00, 0) == 0x12378086
    assert guest.cfg_read(0x08, 0, 2) == 0x8086
    assert guest.cfg_read(0x10, 2, 2) == 0x0001
    # An SBDF nobody registered: Xen answers all-ones itself.
    assert guest.cfg_read(0xF8, 0) == 0xFFFFFFFF
    # A PCI_CONFIG ioreq straight at the slot (SBDF << 32 | register).
    v = xen.send_ioreq(type=IOREQ_TYPE_PCI_CONFIG, addr=(0x08 << 32) | 0x60, size=4)
    assert v & 0xFFFFFFFF == 0x80808080
    guest.stop()


def test_pirq_routes_reach_xen(guest):
    xen = guest.xen
    xen.guest_out(0xCF8, 4, 0x80000800 | 0x60)
    xen.guest_out(0xCFC, 4, 0x0B0A0B05)
    xen.wait_for("xendevicemodel_set_pci_link_route", link=3, irq=11)
    routes = [(c["link"], c["irq"]) for c in xen.calls("xendevicemodel_set_pci_link_route")]
    assert routes[-4:] == [(0, 5), (1, 11), (2, 10), (3, 11)]
    guest.stop()


def test_rep_outs_and_ins_through_guest_ram(guest):
    xen = guest.xen
    xen.ram_write(0x1000, b"abcdef")
    # rep outsb to COM1's THR, forwards then backwards (df).
    xen.send_ioreq(type=IOREQ_TYPE_PIO, addr=0x3F8, size=1, count=6, dir=IOREQ_WRITE,
                   data=0x1000, data_is_ptr=True)
    xen.send_ioreq(type=IOREQ_TYPE_PIO, addr=0x3F8, size=1, count=6, dir=IOREQ_WRITE,
                   data=0x1005, data_is_ptr=True, df=True)
    assert guest.com1() == b"abcdeffedcba"
    # rep insw from the CMOS data port (index 0x3D holds the boot order):
    # each word is the byte at 0x71 and all-ones from unassigned 0x72,
    # written to RAM at decreasing addresses.
    xen.guest_out(0x70, 1, 0x3D)
    boot = xen.guest_in(0x71, 1)
    xen.send_ioreq(type=IOREQ_TYPE_PIO, addr=0x71, size=2, count=4, dir=IOREQ_READ,
                   data=0x2006, data_is_ptr=True, df=True)
    assert xen.ram_read(0x2000, 8) == bytes([boot, 0xFF]) * 4
    guest.stop()


def test_buffered_writes_are_drained_in_order(guest):
    xen = guest.xen
    for ch in b"ring!":
        assert xen.send_buffered(type=IOREQ_TYPE_PIO, addr=0x3F8, size=1, data=ch,
                                 notify=False) == "queued"
    # The synchronous request after them must see them done first.
    xen.guest_out(0x3F8, 1, ord("\n"))
    assert guest.com1() == b"ring!\n"
    # 8-byte buffered values travel in two slots.
    assert xen.send_buffered(type=IOREQ_TYPE_COPY, addr=0xA0000, size=8,
                             data=0x1122334455667788) == "queued"
    xen.wait_buffered_drained()
    guest.stop()


def test_invalidate_and_timeoffset(guest):
    xen = guest.xen
    xen.ram_write(0x3000, b"x")
    xen.send_ioreq(type=IOREQ_TYPE_PIO, addr=0x3F8, size=1, count=1, dir=IOREQ_WRITE,
                   data=0x3000, data_is_ptr=True)
    xen.send_invalidate()
    xen.send_timeoffset(3600)
    xen.ram_write(0x3000, b"y")
    xen.send_ioreq(type=IOREQ_TYPE_PIO, addr=0x3F8, size=1, count=1, dir=IOREQ_WRITE,
                   data=0x3000, data_is_ptr=True)
    assert guest.com1() == b"xy"
    guest.d.wait_log(r"guest RTC moved by 3600 s")
    maps = len(xen.calls("xenforeignmemory_map"))
    unmaps = len(xen.calls("xenforeignmemory_unmap"))
    assert maps >= 2 and unmaps >= 1
    guest.stop()


def test_four_vcpus_concurrently(guest):
    xen = guest.xen
    pending = [xen.start_ioreq(vcpu=v, type=IOREQ_TYPE_PIO, addr=0xCFC, size=4)
               for v in range(4)]
    for p in pending:
        p.wait()
    for round_ in range(50):
        for v in range(4):
            assert guest.cfg_read(0x08, 0, vcpu=v) == 0x70008086
    guest.stop()


def test_hostile_values(guest):
    xen = guest.xen
    d = guest.d
    # A refused ioreq still gets its answer: all-ones.
    assert xen.send_ioreq(type=IOREQ_TYPE_PIO, addr=0x10000, size=4) & 0xFFFFFFFF == 0xFFFFFFFF
    assert xen.send_ioreq(type=9, addr=0, size=4) & 0xFFFFFFFF == 0xFFFFFFFF
    assert xen.send_ioreq(type=IOREQ_TYPE_PIO, addr=0x3F8, size=3) & 0xFFFFFF == 0xFFFFFF
    # A pointer outside the domain's RAM.
    xen.send_ioreq(type=IOREQ_TYPE_PIO, addr=0x3F8, size=1, count=4, dir=IOREQ_WRITE,
                   data=(16 << 20) - 2, data_is_ptr=True)
    # Impossible slot states, an unknown port, a ring full of garbage.
    xen.set_slot_state(1, 2, signal=True)
    xen.reset_slot(1)
    xen.signal_vcpu(2)
    xen.fill_ring_garbage(seed=7)
    time.sleep(0.1)
    assert d.alive()
    # Still serving.
    assert guest.cfg_read(0x00, 0) == 0x12378086
    guest.stop()


def test_power_requests_go_to_xen(start_daemon, xenstored, xen):
    g = Guest(start_daemon, xenstored, xen, qemu_xen_args)
    g.xen.guest_out(0xCF9, 1, 0x06)
    g.xen.wait_for("xendevicemodel_shutdown", reason=1)  # SHUTDOWN_reboot
    g.stop()


def sysfs_env(tmp_path, *bdfs):
    """A fake sysfs with a NIC at each host address, for pass-through."""
    root = str(tmp_path / "sysfs")
    for i, bdf in enumerate(bdfs):
        fakesysfs.make_nic(root, bdf, irq=16 + i)
    return {"XEN_DM_SYSFS_ROOT": root}


def test_trad_flavour_hotplug_over_xenstore(start_daemon, xenstored, xen, tmp_path):
    g = Guest(start_daemon, xenstored, xen, qemu_trad_args,
              extra_env=sysfs_env(tmp_path, "0000:03:00.0"))
    xs = g.xs
    xen_ = g.xen
    # The qemu-trad PM block is fixed at 0xB000, the hot-plug block at 0x10C0.
    assert xen_.guest_in(0x10C2 + 0x28 // 2, 1) == 0
    xen_.guest_out(0xAFE2, 1, 0x08)  # enable GPE bit 3
    # libxl's pci-ins (§4.5).
    xs.write(DM + "/parameter", "0000:03:00.0@28,msitranslate=0,power_mgmt=0")
    xs.write(DM + "/command", "pci-ins")
    deadline = time.monotonic() + 10
    while xs.read(DM + "/state") != "pci-inserted":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert xs.read(DM + "/parameter") == "0x28"
    assert not xs.exists(DM + "/command")
    xen_.wait_for("xendevicemodel_set_isa_irq_level", irq=9, level=1)
    assert xen_.guest_in(0x10C0, 1) == 0 and xen_.guest_in(0x10C1, 1) == 0x28
    assert xen_.guest_in(0x10C2 + 0x28 // 2, 1) & 0xF == 0xF
    xen_.guest_out(0xAFE0, 1, 0x08)
    xs.write(DM + "/state", "running")  # libxl restores the old state
    # pci-rem: completes only once the guest ejects.
    xs.write(DM + "/parameter", "0000:03:00.0")
    xs.write(DM + "/command", "pci-rem")
    time.sleep(0.2)
    assert xs.read(DM + "/state") == "running"
    assert xen_.guest_in(0x10C0, 1) == 3
    xen_.guest_out(0x10C2 + 0x28 // 2, 1, 0x01)  # _EJ0
    deadline = time.monotonic() + 10
    while xs.read(DM + "/state") != "pci-removed":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert g.cfg_read(0x28, 0) == 0xFFFFFFFF
    g.stop()


def wait_state(xs, want, timeout=10):
    deadline = time.monotonic() + timeout
    while xs.read(DM + "/state") != want:
        assert time.monotonic() < deadline, "state %r, waiting for %r" % (xs.read(DM + "/state"), want)
        time.sleep(0.01)


def test_trad_save_continue_and_loadvm(start_daemon, xenstored, tmp_path):
    """qemu-trad's save (§7.1): command save -> the device state in
    $XEN_DM_LIB_DIR/qemu-save.<domid>, state paused, requests held until
    continue; restore: a new device model started with -loadvm."""
    with XenDouble(domid=DOMID, vcpus=2, ram_mib=16) as xen:
        g = Guest(start_daemon, xenstored, xen, qemu_trad_args,
                  extra_env={"XEN_DM_LIB_DIR": str(tmp_path)})
        xs = xenstored
        g.xen.guest_out(0xCF8, 4, 0x80000800 | 0x60)
        g.xen.guest_out(0xCFC, 1, 0x0A)
        xs.write(DM + "/command", "save")
        wait_state(xs, "paused")
        saved = tmp_path / ("qemu-save.%d" % DOMID)
        assert saved.stat().st_size > 0
        # While saved the vCPU's request waits; continue releases it.
        pending = xen.start_ioreq(vcpu=0, addr=0xCF8, size=4)
        time.sleep(0.2)
        assert not pending.done
        xs.write(DM + "/command", "continue")
        wait_state(xs, "running")
        pending.wait()
        g.stop()
    with XenDouble(domid=DOMID, vcpus=2, ram_mib=16) as xen2:
        def restore_args(d):
            return qemu_trad_args(d) + ["-loadvm", str(saved)]
        xenstored.write(DM + "/state", "")
        g2 = Guest(start_daemon, xenstored, xen2, restore_args)
        assert g2.cfg_read(0x08, 0x60, 1) == 0x0A
        g2.stop()


def qmp_slot(q, dev_id):
    for dev in q.command("query-pci")[0]["devices"]:
        if dev["qdev_id"] == dev_id:
            return dev["slot"], dev["function"]
    return None


def test_qemu_xen_pci_attach_and_detach_as_libxl(start_daemon, xenstored, xen, tmp_path):
    """xl pci-attach / pci-detach on a qemu-xen guest (§4.10): device_add,
    query-pci to learn the slot, device_del, query-pci every second until
    the id is gone (here: until the guest stand-in ejects)."""
    g = Guest(start_daemon, xenstored, xen, qemu_xen_args,
              extra_env=sysfs_env(tmp_path, "0000:03:00.0"))
    q = xendm.QMP.connect(os.path.join(g.dir, "qmp-libxl"))
    g.xen.guest_out(0xAFE2, 1, 0x02)                 # the OS enabled GPE bit 1
    q.command("device_add", driver="xen-pci-passthrough", id="pci-pt-03_00.0",
              hostaddr="0000:03:00.0", addr="4.0")
    assert qmp_slot(q, "pci-pt-03_00.0") == (4, 0)
    g.xen.wait_for("xendevicemodel_set_isa_irq_level", irq=9, level=1)
    # The guest's _E01: up has slot 4, it clears the GPE.
    assert g.xen.guest_in(0xAE00, 4) & (1 << 4)
    g.xen.guest_out(0xAFE0, 1, 0x02)
    q.command("device_del", id="pci-pt-03_00.0")
    assert g.xen.guest_in(0xAE04, 4) == 1 << 4
    assert qmp_slot(q, "pci-pt-03_00.0") == (4, 0)   # still there: libxl polls
    g.xen.guest_out(0xAE08, 4, 1 << 4)               # _EJ0
    assert q.wait_event("DEVICE_DELETED")["data"]["device"] == "pci-pt-03_00.0"
    assert qmp_slot(q, "pci-pt-03_00.0") is None
    r = q.cmd("device_add", driver="xen-pci-passthrough", id="x", hostaddr="bogus")
    assert r["error"]["class"] == "GenericError"
    q.close()
    g.stop()


def test_guest_that_never_ejects_gets_it_removed_at_reset(start_daemon, xenstored, xen,
                                                          tmp_path):
    g = Guest(start_daemon, xenstored, xen, qemu_trad_args,
              extra_env=sysfs_env(tmp_path, "0000:07:00.0", "0000:08:00.0"))
    xs = g.xs
    xs.write(DM + "/parameter", "0000:07:00.0,msitranslate=0,power_mgmt=0")
    xs.write(DM + "/command", "pci-ins")
    wait_state(xs, "pci-inserted")
    devfn = int(xs.read(DM + "/parameter"), 16)
    xs.write(DM + "/state", "running")
    xs.write(DM + "/parameter", "0000:07:00.0")
    xs.write(DM + "/command", "pci-rem")
    time.sleep(0.2)
    assert xs.read(DM + "/state") == "running"   # the guest does not answer
    # A second command waits behind the removal, in order.
    xs.write(DM + "/parameter", "0000:08:00.0,msitranslate=0,power_mgmt=0")
    xs.write(DM + "/command", "pci-ins")
    time.sleep(0.1)
    assert xs.read(DM + "/state") == "running"
    # The host resets the machine (QMP system_reset here; under libxl a guest
    # reboot rebuilds the domain): the pending removal is flushed and reported,
    # then the queued insert runs.
    q = xendm.QMP.connect(os.path.join(g.dir, "qmp"))
    q.command("system_reset")
    wait_state(xs, "pci-inserted")
    assert qmp_slot(q, "pci-pt-07_00.0") is None
    assert qmp_slot(q, "pci-pt-08_00.0") is not None
    assert devfn >> 3 >= 3
    q.close()
    g.stop()


def test_trad_startup_contract(start_daemon, xenstored, xen):
    """Disks from xenstore (§4.6), serial pty published, logdirty echoed,
    and libxl's kill: removing the device-model directory."""
    xs = xenstored
    fe = "/local/domain/%d/device/vbd/768" % DOMID
    be = "/local/domain/0/backend/qdisk/%d/768" % DOMID
    for k, v in (("backend", be), ("backend-id", "0"), ("device-type", "disk"),
                 ("virtual-device", "768"), ("state", "1")):
        xs.write(fe + "/" + k, v)
    for k, v in (("frontend", fe), ("frontend-id", str(DOMID)), ("params", "aio:/img/g.raw"),
                 ("dev", "hda"), ("type", "qdisk"), ("mode", "w"), ("device-type", "disk")):
        xs.write(be + "/" + k, v)

    def pty_args(d):
        return [a if a != "file:%s/com1" % d else "pty" for a in qemu_trad_args(d)]

    g = Guest(start_daemon, xenstored, xen, pty_args)
    assert g.d.wait_log(r"disk hda: disk /img/g.raw \(raw\)")
    tty = xs.read("/local/domain/%d/serial/0/tty" % DOMID)
    assert tty and tty.startswith("/dev/pts/")
    xs.write(DM + "/logdirty/cmd", "enable")
    deadline = time.monotonic() + 10
    while xs.read(DM + "/logdirty/ret") != "enable":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    g.d.wait_log(r"dirty-page logging on")
    # libxl's way of stopping a device model.
    xs.rm(DM)
    g.d.expect_exit()
    g.d.proc.wait(10)
    assert g.d.proc.returncode == 0
    g.xen.wait_exit(g.d.proc.pid)
    g.xen.assert_clean()


def test_log_dirty_reports_pages_the_daemon_writes(guest):
    """While libxl migrates (xen-set-global-dirty-log), guest pages the
    device model writes are reported with modified_memory (§3.3)."""
    xen = guest.xen
    q = xendm.QMP.connect(os.path.join(guest.dir, "qmp-libxl"))
    xen.guest_out(0x70, 1, 0x3D)
    xen.send_ioreq(type=IOREQ_TYPE_PIO, addr=0x71, size=1, count=2, dir=IOREQ_READ,
                   data=0x4000, data_is_ptr=True)
    # (libxendevicemodel's modified_memory is a one-extent modified_memory_bulk)
    op = "xendevicemodel_modified_memory_bulk"

    def dirty_pfns():
        return sorted((e["first_pfn"], e["nr"]) for c in xen.calls(op) for e in c["extents"])

    assert dirty_pfns() == []
    q.command("xen-set-global-dirty-log", enable=True)
    xen.send_ioreq(type=IOREQ_TYPE_PIO, addr=0x71, size=1, count=2, dir=IOREQ_READ,
                   data=0x5FFF, data_is_ptr=True)
    assert dirty_pfns() == [(0x5, 1), (0x6, 1)]
    q.command("xen-set-global-dirty-log", enable=False)
    xen.send_ioreq(type=IOREQ_TYPE_PIO, addr=0x71, size=1, count=1, dir=IOREQ_READ,
                   data=0x7000, data_is_ptr=True)
    assert dirty_pfns() == [(0x5, 1), (0x6, 1)]
    q.close()
    guest.stop()
