"""The chipset as a guest sees it over qtest: identities, platform device
presence by machine type, CMOS contents, PIRQ and reset paths, the PM
block, and the serial port on a real socket backend."""

import os
import socket
import time

import pytest

import xendm


def cfg(q, devfn, reg, size=4):
    return q.pci_cfg_read(devfn, reg, size)


def test_bus0_identities(start_daemon):
    d = start_daemon(["-m", "64"], qtest=True)
    q = d.qtest()
    # vendor:device, class/rev dword, subsystem dword
    expect = {
        0x00: (0x12378086, 0x06000002, 0x11001AF4),
        0x08: (0x70008086, 0x06010000, 0x11001AF4),
        0x09: (0x70108086, 0x01018000, 0x11001AF4),
        0x0B: (0x71138086, 0x06800003, 0x11001AF4),
        0x10: (0x00015853, 0xFF800001, 0x00015853),
    }
    for devfn, (ids, classrev, subsys) in expect.items():
        assert cfg(q, devfn, 0x00) == ids, hex(devfn)
        assert cfg(q, devfn, 0x08) == classrev, hex(devfn)
        assert cfg(q, devfn, 0x2C) == subsys, hex(devfn)
    # PIIX3 is multi-function; the host bridge is not.
    assert cfg(q, 0x08, 0x0C) >> 16 & 0x80
    assert not cfg(q, 0x00, 0x0C) >> 16 & 0x80
    for devfn in (0x0A, 0x18, 0x20, 0xF8):
        assert cfg(q, devfn, 0x00) == 0xFFFFFFFF


def test_machine_pc_has_no_platform_device(start_daemon):
    d = start_daemon(["-machine", "pc,accel=xen"], qtest=True)
    q = d.qtest()
    assert cfg(q, 0x10, 0) == 0xFFFFFFFF
    assert q.inw(0x10) == 0xFFFF  # nor its fixed ports
    d2 = start_daemon(["-machine", "xenfv"], qtest=True)
    q2 = d2.qtest()
    assert q2.inw(0x10) == 0x49D2
    assert q2.inb(0x12) == 1


def test_no_acpi_has_no_pm_function(start_daemon):
    d = start_daemon(["-no-acpi"], qtest=True)
    q = d.qtest()
    assert cfg(q, 0x0B, 0) == 0xFFFFFFFF
    assert q.inb(0xAFE0) == 0xFF


def cmos(q, index):
    q.outb(0x70, index)
    return q.inb(0x71)


def test_cmos_memory_and_boot_order(start_daemon):
    d = start_daemon(["-m", "1024", "-boot", "order=dc", "-smp", "2"], qtest=True)
    q = d.qtest()
    assert cmos(q, 0x15) | cmos(q, 0x16) << 8 == 640
    assert cmos(q, 0x17) | cmos(q, 0x18) << 8 == 0xFFFF  # capped at 64 MiB
    # memory above 16 MiB in 64 KiB units
    assert cmos(q, 0x34) | cmos(q, 0x35) << 8 == (1024 - 16) * 16
    assert cmos(q, 0x3D) == 0x23  # d first, then c
    assert cmos(q, 0x5F) == 1     # CPUs - 1
    # Index writes with the NMI bit select the same byte.
    assert cmos(q, 0x80 | 0x3D) == 0x23


def test_pm_block_as_hvmloader_programs_it(start_daemon):
    d = start_daemon(["-no-shutdown"], qtest=True, qmp=True)
    q = d.qtest()
    m = d.qmp()
    pm = 0x0B
    q.pci_cfg_write(pm, 0x40, 4, 0xB001)
    q.pci_cfg_write(pm, 0x80, 1, 0x01)
    assert q.inw(0xB004) & 1 == 0      # SCI_EN clear (qemu-xen flavour)
    q.outb(0xB2, 0xF1)                  # ACPI enable through SMI_CMD
    assert q.inw(0xB004) & 1 == 1
    q.outw(0xB004, 0x2001)              # SLP_TYP 0 + SLP_EN: S5
    ev = m.wait_event("SHUTDOWN")
    assert ev["data"] == {"guest": True, "reason": "guest-shutdown"}
    assert m.command("query-status")["status"] == "shutdown"


def test_pirq_routing_and_resets(start_daemon):
    d = start_daemon([], qtest=True, qmp=True)
    q = d.qtest()
    m = d.qmp()
    assert cfg(q, 0x08, 0x60) == 0x80808080
    q.pci_cfg_write(0x08, 0x60, 4, 0x0B0A0B05)  # hvmloader: 5, 11, 10, 11
    assert cfg(q, 0x08, 0x60) == 0x0B0A0B05
    q.outb(0x92, 0x01)                            # fast reset
    assert m.wait_event("RESET")["data"]["guest"] is True
    assert cfg(q, 0x08, 0x60) == 0x80808080       # back to power-on


def test_serial_port_on_a_unix_socket(start_daemon):
    d = start_daemon(["-serial", "unix:{dir}/com1,server=on,wait=off"], qtest=True,
                     extra_sockets=["{dir}/com1"])
    q = d.qtest()
    peer = xendm.connect_unix(os.path.join(d.dir, "com1"))
    q.outb(0x3FB, 0x03)               # 8N1
    # The daemon accepts the peer from its event loop: until it has, output
    # has nowhere to go (and is dropped, as on a real unconnected line).
    peer.settimeout(0.05)
    deadline = time.monotonic() + 5
    while True:
        q.outb(0x3F8, 0)
        try:
            if peer.recv(64):
                break
        except socket.timeout:
            assert time.monotonic() < deadline
    peer.settimeout(0.2)
    try:
        while peer.recv(64):
            pass
    except socket.timeout:
        pass
    for ch in b"hello\n":
        q.outb(0x3F8, ch)
    peer.settimeout(5)
    got = b""
    while len(got) < 6:
        got += peer.recv(64)
    assert got == b"hello\n"
    # Host to guest: the byte shows up in RBR with LSR.DR set.
    q.irq_intercept_in("ioapic")
    q.outb(0x3FC, 0x08)               # OUT2: route the line
    q.outb(0x3F9, 0x01)               # IER: received data available
    peer.sendall(b"Z")
    deadline = time.monotonic() + 5
    while not q.inb(0x3FD) & 1:
        assert time.monotonic() < deadline
    assert ("raise", 4) in q.irqs
    assert q.inb(0x3F8) == ord("Z")
    assert q.inb(0x3FD) & 1 == 0
    peer.close()
    # A second port appears only when asked for.
    assert q.inb(0x2FD) == 0xFF


def test_command_line_disks_and_devices(start_daemon):
    """libxl's -drive forms become the disk list (logged: no IDE engine yet);
    -device pci-testdev is cold-plugged (no hot-plug event)."""
    d = start_daemon(["-drive", "file=/img/a.raw,if=ide,index=0,media=disk,format=raw,cache=writeback",
                      "-drive", "if=none,readonly=on,id=ide-5632",
                      "-device", "ide-cd,id=ide-5632,drive=ide-5632,bus=ide.1,unit=0",
                      "-device", "pci-testdev,id=cold,addr=6",
                      "-device", "e1000,id=nic0"], qtest=True, qmp=True)
    q, m = d.qtest(), d.qmp()
    assert d.wait_log(r"disk hda: disk /img/a.raw \(raw\): not served")
    assert d.wait_log(r"disk hdc: CD-ROM \(empty\)")
    assert d.wait_log(r"-device e1000,id=nic0: not supported yet")
    assert q.pci_cfg_read(6 << 3, 0, 4) == 0x00051B36
    assert q.inl(0xAE00) == 1 << 6 and q.inb(0xAFE0) & 2 == 0


def test_bad_drive_is_refused(tmp_path):
    r = xendm.run(["-drive", "file=/x,if=scsi,format=raw",
                   "-qmp", "unix:%s/q,server=on,wait=off" % tmp_path])
    assert r.returncode != 0 and "-drive" in r.stderr
