"""QMP as libxl (and QEMU's own tools) speak it, against the real daemon."""

import json
import os
import socket

import pytest

import xendm


def running(qmp):
    return qmp.command("query-status")


def assert_timestamp(ev):
    ts = ev["timestamp"]
    assert set(ts) == {"seconds", "microseconds"}
    assert isinstance(ts["seconds"], int) and ts["seconds"] > 1_000_000_000
    assert isinstance(ts["microseconds"], int) and 0 <= ts["microseconds"] < 1_000_000


def assert_no_event(qmp):
    """No event is pending: a command's reply arrives with nothing before it
    (the daemon is single-threaded and writes in order)."""
    qmp.command("query-status")
    assert qmp.events == []


# --- greeting and negotiation ----------------------------------------------------


def test_greeting_shape(qmp_daemon):
    q = qmp_daemon.qmp(negotiate=False)
    g = q.greeting
    assert set(g) == {"QMP"}
    assert g["QMP"]["capabilities"] == []
    qemu = g["QMP"]["version"]["qemu"]
    assert set(qemu) == {"major", "minor", "micro"}
    assert all(isinstance(qemu[k], int) and qemu[k] >= 0 for k in qemu)
    # libxl enables features by this version (e.g. live device-state saving
    # needs >= 2.11).
    assert (qemu["major"], qemu["minor"]) >= (2, 11)
    assert isinstance(g["QMP"]["version"]["package"], str)


def test_greeting_line_is_crlf_terminated(qmp_daemon):
    s = xendm.connect_unix(qmp_daemon.qmp_path)
    stream = xendm.Stream(s.fileno(), s.fileno(), owner=s)
    line = stream.read_line()
    assert line.endswith(b"}\r\n")
    assert line.count(b"\n") == 1
    json.loads(line)


def test_replies_and_events_are_crlf_terminated(qmp_daemon):
    q = qmp_daemon.qmp()
    q.send_raw(b'{"execute":"stop","id":1}\r\n{"execute":"nope","id":2}\r\n')
    lines = [q.recv_line() for _ in range(3)]  # STOP, return, error
    for line in lines:
        assert line.endswith(b"}\r\n") and b"\n" not in line[:-1], line
    msgs = [json.loads(l) for l in lines]
    assert sorted(m.get("event", "") for m in msgs) == ["", "", "STOP"]


def test_commands_before_negotiation_are_refused(qmp_daemon):
    q = qmp_daemon.qmp(negotiate=False)
    for name in ("query-status", "stop", "quit", "no-such-command"):
        r = q.cmd(name)
        assert r["error"]["class"] == "CommandNotFound", r
    # Nothing happened: the machine still runs, and the daemon did not quit.
    q.negotiate()
    assert running(q)["status"] == "running"


def test_negotiation(qmp_daemon):
    q = qmp_daemon.qmp(negotiate=False)
    r = q.cmd("qmp_capabilities")
    assert r == {"return": {}, "id": r["id"]}
    assert running(q)["running"] is True


def test_negotiation_with_empty_enable_list(qmp_daemon):
    q = qmp_daemon.qmp(negotiate=False)
    assert q.command("qmp_capabilities", enable=[]) == {}


def test_negotiation_with_unknown_capability(qmp_daemon):
    q = qmp_daemon.qmp(negotiate=False)
    r = q.cmd("qmp_capabilities", enable=["oob"])
    assert r["error"]["class"] == "GenericError"
    # Still not negotiated: a second, plain attempt works.
    q.negotiate()


def test_second_negotiation_is_an_error(qmp_daemon):
    q = qmp_daemon.qmp()
    r = q.cmd("qmp_capabilities")
    assert r["error"]["class"] == "CommandNotFound"
    assert "negotiation" in r["error"]["desc"].lower()
    assert running(q)["status"] == "running"


# --- run state and events -------------------------------------------------------------


def test_query_status_running(qmp_daemon):
    assert running(qmp_daemon.qmp()) == {"status": "running", "singlestep": False, "running": True}


def test_start_paused_then_cont(start_daemon):
    d = start_daemon(["-S"], qmp=True)
    q = d.qmp()
    st = running(q)
    assert st["status"] == "prelaunch" and st["running"] is False
    assert q.command("cont") == {}
    ev = q.wait_event("RESUME")
    assert_timestamp(ev)
    assert "data" not in ev
    assert running(q)["status"] == "running"


def test_stop_and_cont(qmp_daemon):
    q = qmp_daemon.qmp()
    assert q.command("stop") == {}
    assert_timestamp(q.wait_event("STOP"))
    st = running(q)
    assert st["status"] == "paused" and st["running"] is False
    # Stopping a stopped machine changes nothing and announces nothing.
    assert q.command("stop") == {}
    assert_no_event(q)
    assert q.command("cont") == {}
    assert_timestamp(q.wait_event("RESUME"))
    assert running(q)["status"] == "running"
    # cont on a running machine: no event either.
    assert q.command("cont") == {}
    assert_no_event(q)


def test_system_reset_event(qmp_daemon):
    q = qmp_daemon.qmp()
    assert q.command("system_reset") == {}
    ev = q.wait_event("RESET")
    assert ev["data"] == {"guest": False, "reason": "host-qmp-system-reset"}
    assert_timestamp(ev)
    assert running(q)["status"] == "running"


def test_system_reset_while_paused_keeps_it_paused(qmp_daemon):
    q = qmp_daemon.qmp()
    q.command("stop")
    q.command("system_reset")
    q.wait_event("RESET")
    assert running(q)["status"] == "paused"


def test_quit(qmp_daemon):
    q = qmp_daemon.qmp()
    qmp_daemon.expect_exit()
    r = q.cmd("quit")
    assert r == {"return": {}, "id": r["id"]}
    ev = q.wait_event("SHUTDOWN")
    assert ev["data"] == {"guest": False, "reason": "host-qmp-quit"}
    assert_timestamp(ev)
    assert q.stream.wait_eof() == b""
    assert qmp_daemon.wait_exit() == 0


def test_sigterm_announces_shutdown(qmp_daemon):
    q = qmp_daemon.qmp()
    qmp_daemon.expect_exit()
    qmp_daemon.proc.terminate()
    ev = q.wait_event("SHUTDOWN")
    assert ev["data"]["guest"] is False
    assert_timestamp(ev)
    assert qmp_daemon.wait_exit() == 0


@pytest.mark.parametrize("name", ["stop", "cont", "system_reset", "quit", "query-pci", "query-status"])
def test_no_argument_commands_refuse_arguments(qmp_daemon, name):
    q = qmp_daemon.qmp()
    r = q.cmd(name, bogus=1)
    assert r["error"]["class"] == "GenericError"
    assert "bogus" in r["error"]["desc"]
    # And did not act.
    assert running(q)["status"] == "running"
    assert q.events == []


# --- query commands ----------------------------------------------------------------


def test_query_pci_shape(qmp_daemon):
    buses = qmp_daemon.qmp().command("query-pci")
    assert isinstance(buses, list) and buses
    assert buses[0]["bus"] == 0
    for bus in buses:
        assert isinstance(bus["bus"], int)
        assert isinstance(bus["devices"], list)
        seen = set()
        for dev in bus["devices"]:
            for key in ("bus", "slot", "function", "class_info", "id", "qdev_id", "regions"):
                assert key in dev, (key, dev)
            assert dev["bus"] == bus["bus"]
            assert 0 <= dev["slot"] < 32 and 0 <= dev["function"] < 8
            assert (dev["slot"], dev["function"]) not in seen
            seen.add((dev["slot"], dev["function"]))
            assert isinstance(dev["class_info"]["class"], int)
            for key in ("vendor", "device"):
                assert 0 <= dev["id"][key] < 0x10000 and dev["id"][key] != 0xFFFF
            assert isinstance(dev["qdev_id"], str)
            for region in dev["regions"]:
                assert region["type"] in ("io", "memory")
                assert 0 <= region["bar"] <= 6
                assert region["size"] > 0


def test_query_pci_matches_config_space(qtest_daemon):
    """What query-pci reports is what a guest reads through 0xCF8/0xCFC."""
    q = qtest_daemon.qtest()
    for bus in qtest_daemon.qmp().command("query-pci"):
        for dev in bus["devices"]:
            devfn = dev["slot"] << 3 | dev["function"]
            assert q.pci_cfg_read(devfn, 0, 2) == dev["id"]["vendor"]
            assert q.pci_cfg_read(devfn, 2, 2) == dev["id"]["device"]
            assert q.pci_cfg_read(devfn, 0x0A, 2) == dev["class_info"]["class"]


def test_query_version(qmp_daemon):
    q = qmp_daemon.qmp(negotiate=False)
    greeting_version = q.greeting["QMP"]["version"]
    q.negotiate()
    v = q.command("query-version")
    assert v["qemu"] == greeting_version["qemu"]


def test_query_commands_lists_what_libxl_needs(qmp_daemon):
    names = {c["name"] for c in qmp_daemon.qmp().command("query-commands")}
    assert {"qmp_capabilities", "query-status", "stop", "cont", "quit", "query-pci"} <= names


# --- ids and errors ----------------------------------------------------------------


def test_unknown_command_echoes_id(qmp_daemon):
    q = qmp_daemon.qmp()
    r = q.cmd("no-such-command", cmd_id=1234)
    assert r["id"] == 1234
    assert r["error"]["class"] == "CommandNotFound"
    assert "no-such-command" in r["error"]["desc"]
    assert set(r) == {"error", "id"}


@pytest.mark.parametrize("cmd_id", [0, 7, 0x786C7100, 2**53, -5, 1.5, "a string", "", "é✓",
                                    {"nested": [1, {"x": None}]}, [1, "two"], True, False])
def test_id_of_any_json_type_is_echoed(qmp_daemon, cmd_id):
    q = qmp_daemon.qmp()
    assert q.cmd("query-status", cmd_id=cmd_id)["id"] == cmd_id
    assert q.cmd("no-such-command", cmd_id=cmd_id)["id"] == cmd_id


def test_null_id_is_accepted(qmp_daemon):
    q = qmp_daemon.qmp()
    q.send_raw(b'{"execute":"query-status","id":null}\r\n')
    r = q.recv_reply()
    assert "return" in r


def test_reply_without_id_when_none_was_sent(qmp_daemon):
    q = qmp_daemon.qmp()
    q.send_raw(b'{"execute":"query-status"}\r\n')
    r = q.recv_reply()
    assert "id" not in r and r["return"]["status"] == "running"


def test_error_reply_shape(qmp_daemon):
    q = qmp_daemon.qmp()
    r = q.cmd("stop", cmd_id="x", unexpected=True)
    assert set(r) == {"error", "id"}
    assert set(r["error"]) == {"class", "desc"}
    assert isinstance(r["error"]["desc"], str) and r["error"]["desc"]


def test_very_long_command_name(qmp_daemon):
    q = qmp_daemon.qmp()
    r = q.cmd("x" * 100000, cmd_id=5)
    assert r["error"]["class"] == "CommandNotFound"
    assert len(r["error"]["desc"]) < 1000


def test_long_id_is_echoed_whole(qmp_daemon):
    q = qmp_daemon.qmp()
    long_id = "i" * 100000
    assert q.cmd("query-status", cmd_id=long_id)["id"] == long_id


# --- clients --------------------------------------------------------------------------


def test_clients_in_turn(qmp_daemon):
    """libxl opens a connection per operation and closes it afterwards."""
    for i in range(10):
        q = qmp_daemon.qmp()
        assert running(q)["status"] == "running"
        q.close()


def test_client_state_is_per_connection(qmp_daemon):
    a = qmp_daemon.qmp()
    b = qmp_daemon.qmp(negotiate=False)
    # a negotiated; b did not, so b is still refused.
    assert b.cmd("query-status")["error"]["class"] == "CommandNotFound"
    assert running(a)["status"] == "running"


def test_two_clients_at_once(qmp_daemon):
    a = qmp_daemon.qmp()
    b = qmp_daemon.qmp()
    a.command("stop")
    assert running(b)["status"] == "paused"
    b.command("cont")
    assert running(a)["status"] == "running"


def test_interleaved_requests_on_two_clients(qmp_daemon):
    a = qmp_daemon.qmp()
    b = qmp_daemon.qmp()
    a.send({"execute": "query-status", "id": "a1"})
    b.send({"execute": "query-status", "id": "b1"})
    a.send({"execute": "query-status", "id": "a2"})
    assert b.recv_reply()["id"] == "b1"
    assert a.recv_reply()["id"] == "a1"
    assert a.recv_reply()["id"] == "a2"


def test_events_go_to_every_negotiated_client(qmp_daemon):
    clients = [qmp_daemon.qmp() for _ in range(3)]
    quiet = qmp_daemon.qmp(negotiate=False)
    clients[0].command("stop")
    for q in clients:
        assert_timestamp(q.wait_event("STOP"))
    clients[1].command("system_reset")
    for q in clients:
        assert q.wait_event("RESET")["data"]["reason"] == "host-qmp-system-reset"
    clients[2].command("cont")
    for q in clients:
        q.wait_event("RESUME")
    # A client that has not negotiated gets no events (QEMU's rule): the
    # reply to its next command is the first thing it receives.
    quiet.send({"execute": "query-status", "id": "q"})
    msg = quiet.recv_msg()
    assert "event" not in msg and msg["id"] == "q"
    assert msg["error"]["class"] == "CommandNotFound"


def test_closing_a_client_does_not_disturb_others(qmp_daemon):
    a = qmp_daemon.qmp()
    b = qmp_daemon.qmp()
    b.send({"execute": "query-status", "id": 1})
    b.close()  # reply to a closed socket
    a.command("stop")  # event to a closed socket
    a.wait_event("STOP")
    assert running(a)["status"] == "paused"


# --- libxl's command-line forms -----------------------------------------------------


def test_libxl_monitors(start_daemon):
    d = start_daemon(["-no-shutdown"], libxl=True)
    cmd = d.qmp(path=d.libxl_path)
    stat = d.qmp(path=d.libxenstat_path)
    assert running(cmd)["status"] == "running"
    assert running(stat)["status"] == "running"
    # One machine behind both monitors; events reach both.
    cmd.command("stop")
    cmd.wait_event("STOP")
    stat.wait_event("STOP")
    assert running(stat)["status"] == "paused"


def test_libxl_operation_sequence(start_daemon):
    """What libxl does after spawning: connect, negotiate with its own ids,
    one command, disconnect; repeated for each operation."""
    d = start_daemon(["-no-shutdown"], libxl=True)
    next_id = xendm.LIBXL_FIRST_ID
    for name in ("query-status", "stop", "cont", "query-pci", "query-status"):
        s = xendm.connect_unix(d.libxl_path)
        stream = xendm.Stream(s.fileno(), s.fileno(), owner=s)
        greeting = json.loads(stream.read_line())
        assert "QMP" in greeting
        for execute in ("qmp_capabilities", name):
            s.sendall(json.dumps({"execute": execute, "id": next_id}).encode() + b"\r\n")
            while True:
                line = stream.read_line()
                assert line.endswith(b"\r\n")
                msg = json.loads(line)
                if "event" not in msg:
                    break
            assert msg["id"] == next_id and "return" in msg, msg
            next_id += 1
        s.close()


def test_libxl_dm_restrict_passes_a_listening_fd(start_daemon, tmp_path):
    """dm_restrict: libxl binds and listens itself and passes the fd, with -S;
    it then expects query-status to say prelaunch."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(xendm.short_tempdir() + "/qmp-libxl-5")
    path = listener.getsockname()
    listener.listen(8)
    try:
        fd = listener.fileno()
        start_daemon(["-chardev", "socket,id=libxl-cmd,fd=%d,server=on,wait=off" % fd,
                      "-mon", "chardev=libxl-cmd,mode=control", "-S", "-no-shutdown"],
                     pass_fds=[fd])
        q = xendm.QMP.connect(path)
        assert running(q)["status"] == "prelaunch"
        q.command("cont")
        q.wait_event("RESUME")
        assert running(q)["status"] == "running"
    finally:
        listener.close()
        os.unlink(path)
        os.rmdir(os.path.dirname(path))


def test_mon_without_matching_chardev_is_an_error():
    r = xendm.run(["-mon", "chardev=nothere,mode=control"])
    assert r.returncode != 0
    assert "nothere" in r.stderr


def test_qmp_socket_in_missing_directory_is_an_error():
    r = xendm.run(["-qmp", "unix:/nonexistent-dir/qmp,server=on,wait=off"])
    assert r.returncode != 0
    assert "xen-dm error: " in r.stderr
    assert "/nonexistent-dir/qmp" in r.stderr
