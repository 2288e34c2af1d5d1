"""The QMP commands libxl 4.17 sends after start-up and around save and
migration (xen-dm-interfaces.md §4.8), as libxl sends them."""

import json
import os
import socket

import pytest

import xendm


def send_with_fd(q, obj, fd):
    """libxl passes descriptors with SCM_RIGHTS in the same sendmsg as the
    command that uses them."""
    data = json.dumps(obj).encode() + b"\r\n"
    socket.send_fds(q.sock, [data], [fd])
    reply = q.recv_reply()
    assert reply.get("id") == obj["id"], reply
    return reply


def test_query_chardev_lists_serial_ptys(start_daemon):
    d = start_daemon(["-serial", "pty", "-serial", "null"], libxl=True)
    q = d.qmp()
    chardevs = {c["label"]: c["filename"] for c in q.command("query-chardev")}
    assert chardevs["serial0"].startswith("pty:/dev/pts/")
    assert chardevs["serial1"] == "null"
    assert os.path.exists(chardevs["serial0"][4:])


def test_query_vnc_is_disabled(start_daemon):
    d = start_daemon(libxl=True)
    assert d.qmp().command("query-vnc") == {"enabled": False}


def test_add_fd_and_fdset_bookkeeping(start_daemon, tmp_path):
    d = start_daemon(libxl=True)
    q = d.qmp()
    path = tmp_path / "save"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        r = send_with_fd(q, {"execute": "add-fd", "id": 1}, fd)
    finally:
        os.close(fd)
    assert set(r["return"]) == {"fdset-id", "fd"}
    set_id = r["return"]["fdset-id"]
    # Without a descriptor: an error, the connection survives.
    r = q.cmd("add-fd")
    assert r["error"]["class"] == "GenericError"
    assert "SCM_RIGHTS" in r["error"]["desc"]
    q.command("remove-fd", **{"fdset-id": set_id})
    r = q.cmd("remove-fd", **{"fdset-id": set_id})
    assert r["error"]["class"] == "GenericError"


def test_descriptor_flood_is_bounded(start_daemon, tmp_path):
    """A client sending descriptors without commands cannot exhaust ours."""
    d = start_daemon(libxl=True)
    q = d.qmp()
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(64)]
    try:
        for i in range(0, 64, 8):
            socket.send_fds(q.sock, [b" "], fds[i:i + 8])
    finally:
        for fd in fds:
            os.close(fd)
    assert q.command("query-status")["status"] == "running"
    ids = set()
    for _ in range(20):
        r = q.cmd("add-fd")
        if "error" in r:
            break
        ids.add(r["return"]["fdset-id"])
    assert 0 < len(ids) <= 16


def test_dirty_log_switch(start_daemon):
    d = start_daemon(libxl=True)
    q = d.qmp()
    q.command("xen-set-global-dirty-log", enable=True)
    q.command("xen-set-global-dirty-log", enable=False)
    for bad in ({}, {"enable": "yes"}):
        r = q.cmd("xen-set-global-dirty-log", **bad)
        assert r["error"]["class"] == "GenericError"
    assert d.wait_log(r"dirty-page logging on")


def test_save_and_restore_device_state(start_daemon, tmp_path):
    """libxl's save (§7.2): stop, add-fd, xen-save-devices-state
    /dev/fdset/N; restore: a new daemon with -incoming fd:N. The guest-visible
    state comes back, a pending unplug included."""
    d = start_daemon(["-m", "16"], qtest=True, qmp=True)
    q, m = d.qtest(), d.qmp()
    m.command("device_add", driver="pci-testdev", id="keep", addr="5")
    m.command("device_add", driver="pci-testdev", id="going", addr="6")
    m.command("device_del", id="going")
    q.pci_cfg_write(0x08, 0x60, 4, 0x0B0A0B05)
    q.outb(0xAFE2, 0x02)
    m.command("stop")
    path = tmp_path / "qemu-save.5"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        r = send_with_fd(m, {"execute": "add-fd", "id": 7}, fd)
    finally:
        os.close(fd)
    set_id = r["return"]["fdset-id"]
    m.command("xen-save-devices-state", filename="/dev/fdset/%d" % set_id, live=False)
    assert m.command("query-status")["status"] == "paused"
    assert path.stat().st_size > 0

    fd = os.open(path, os.O_RDONLY)
    try:
        d2 = start_daemon(["-m", "16", "-incoming", "fd:%d" % fd], qtest=True, qmp=True,
                          pass_fds=[fd])
    finally:
        os.close(fd)
    q2, m2 = d2.qtest(), d2.qmp()
    ids = {x["qdev_id"] for x in m2.command("query-pci")[0]["devices"]}
    assert {"keep", "going"} <= ids
    assert q2.pci_cfg_read(0x08, 0x60, 4) == 0x0B0A0B05
    assert q2.inb(0xAFE2) == 0x02
    assert q2.inl(0xAE04) == 1 << 6          # the removal is still pending
    q2.outl(0xAE08, 1 << 6)
    assert m2.wait_event("DEVICE_DELETED")["data"]["device"] == "going"
    # A different machine refuses the stream.
    fd = os.open(path, os.O_RDONLY)
    try:
        r = xendm.run(["-m", "32", "-incoming", "fd:%d" % fd], pass_fds=[fd])
    finally:
        os.close(fd)
    assert r.returncode != 0 and "restore: device state refused" in r.stderr


def test_xen_load_devices_state(start_daemon, tmp_path):
    d = start_daemon(["-m", "16"], qtest=True, qmp=True)
    q, m = d.qtest(), d.qmp()
    q.pci_cfg_write(0x08, 0x61, 1, 0x0A)
    path = tmp_path / "s"
    m.command("xen-save-devices-state", filename=str(path))
    q.pci_cfg_write(0x08, 0x61, 1, 0x80)
    m.command("xen-load-devices-state", filename=str(path))
    assert q.pci_cfg_read(0x08, 0x61, 1) == 0x0A
    assert m.command("query-status")["status"] == "running"
    path.write_bytes(b"XDMS garbage")
    r = m.cmd("xen-load-devices-state", filename=str(path))
    assert r["error"]["class"] == "GenericError"
    assert q.pci_cfg_read(0x08, 0x61, 1) == 0x0A     # unchanged
    r = m.cmd("xen-save-devices-state", filename="/dev/fdset/99")
    assert r["error"]["class"] == "GenericError"
    d.allow_errors(r"savestate|stream")


def test_vcpu_hotplug_as_libxl(start_daemon):
    """xl vcpu-set on a qemu-xen guest: query-cpus-fast, query-hotpluggable-cpus,
    device_add <type> id=cpu-N socket-id=N core-id=0 thread-id=0; the guest
    sees the CPU map at 0xAF00 change with GPE bit 2."""
    d = start_daemon(["-smp", "2,maxcpus=4"], libxl=True, qtest=True)
    q, t = d.qmp(), d.qtest()
    t.irq_intercept_in("ioapic")
    t.outb(0xAFE2, 0x04)
    assert [c["cpu-index"] for c in q.command("query-cpus-fast")] == [0, 1]
    hp = q.command("query-hotpluggable-cpus")
    assert len(hp) == 4 and all(c["vcpus-count"] == 1 for c in hp)
    assert sum("qom-path" in c for c in hp) == 2
    cpu_type = hp[0]["type"]
    assert t.inb(0xAF00) == 0x03
    q.command("device_add", driver=cpu_type, id="cpu-2", **{"socket-id": 2, "core-id": 0,
                                                           "thread-id": 0})
    assert t.inb(0xAF00) == 0x07
    assert t.inb(0xAFE0) & 0x04
    t.inb(0x80)
    assert ("raise", 9) in t.irqs
    assert [c["cpu-index"] for c in q.command("query-cpus-fast")] == [0, 1, 2]
    for bad in ({"socket-id": 2}, {"socket-id": 9}, {"socket-id": 3, "core-id": 1}):
        r = q.cmd("device_add", driver=cpu_type, id="x", **bad)
        assert r["error"]["class"] == "GenericError", bad
    q.command("cpu-add", id=3)
    assert t.inb(0xAF00) == 0x0F
