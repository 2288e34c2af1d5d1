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
