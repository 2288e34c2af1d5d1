"""Command-line options: help, errors, options that are recognised but not
supported yet, trace points, and the complete command lines libxl builds."""

import os
import re

import pytest

import xendm


def not_yet_warnings(daemon):
    """{option: times logged} for "option -X is recognised but not supported yet"."""
    counts = {}
    for level, msg in daemon.log():
        m = re.fullmatch(r"option -(\S+) is recognised but not supported yet; ignored", msg)
        if m:
            assert level == "warning", (level, msg)
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def serves_qmp(daemon, path=None):
    q = daemon.qmp(path=path)
    st = q.command("query-status")
    q.close()
    return st["status"]


# --- help and version -----------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--help", "-help", "-h", "--h"])
def test_help_lists_options_and_exits_0(flag):
    r = xendm.run([flag])
    assert r.returncode == 0
    assert r.stderr == ""
    assert r.stdout.startswith("Usage: xen-dm")
    for opt in ("-xen-domid", "-d ", "-machine", "-m ", "-chardev", "-mon", "-qmp", "-qtest",
                "-trace", "-S ", "-no-shutdown", "-drive", "-serial"):
        assert re.search(r"^  %s" % re.escape(opt), r.stdout, re.M), opt
    assert "[not yet supported: ignored]" in r.stdout


def test_help_stops_parsing(tmp_path):
    # Whatever follows --help is not acted on (no socket is created).
    r = xendm.run(["--help", "-qmp", "unix:%s/qmp,server=on,wait=off" % tmp_path, "-bogus"])
    assert r.returncode == 0
    assert not os.path.exists(tmp_path / "qmp")


def test_version():
    r = xendm.run(["--version"])
    assert r.returncode == 0
    assert re.fullmatch(r"xen-dm \d+\.\d+\.\d+\n", r.stdout)


# --- bad options ------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["-bogus"], "unknown option '-bogus'"),
    (["--bogus"], "unknown option '--bogus'"),
    (["-qmpx", "x"], "unknown option '-qmpx'"),
    (["stray"], "unexpected argument 'stray'"),
    (["-"], "unexpected argument '-'"),
    (["-m"], "needs an argument"),
    (["-qmp"], "needs an argument"),
])
def test_unknown_or_incomplete_option(args, message):
    r = xendm.run(args)
    assert r.returncode not in (0, None)
    assert r.stdout == ""
    assert message in r.stderr
    assert "Try 'xen-dm --help'" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["-m", "0"], "memory"),
    (["-m", "lots"], "memory"),
    (["-m", "-5"], "memory"),
    (["-m", "99999999G"], "memory"),
    (["-machine", "q35"], "q35"),
    (["-machine", "xenfv,accel=kvm"], "kvm"),
    (["-smp", "0"], "-smp"),
    (["-smp", "2,maxcpus=x"], "-smp"),
    (["-vcpus", "many"], "-vcpus"),
    (["-vcpu_avail", "zz"], "vcpu_avail"),
    (["-boot", "order=z"], "boot"),
    (["-xen-domid", "0"], "domain id"),
    (["-xen-domid", "32752"], "domain id"),
    (["-d", "x"], "domain id"),
    (["-qtest", "tcp:localhost:4444"], "-qtest"),
    (["-qmp", "stdio"], "socket"),
    (["-qmp", "unix:/tmp/x,server=maybe"], "-qmp"),
    (["-chardev", "socket,id=c"], "path= or fd="),
    (["-chardev", "socket,path=/tmp/x,server=on"], "id="),
    (["-chardev", "socket,id=c,fd=abc,server=on"], "fd"),
    (["-mon", "chardev=nothere,mode=control"], "nothere"),
    (["-mon", "mode=control"], "chardev="),
    (["-mon", "chardev=c,mode=control,bogus=1"], "bogus"),
])
def test_bad_option_values(args, message):
    r = xendm.run(args)
    assert r.returncode not in (0, None), r.stderr
    assert message in r.stderr
    assert "Try 'xen-dm --help'" in r.stderr


def test_bad_trace_pattern():
    r = xendm.run(["-trace", "no_such_trace_point*"])
    assert r.returncode != 0
    assert "no trace point matches 'no_such_trace_point*'" in r.stderr


# --- domains without Xen --------------------------------------------------------------------


@pytest.mark.parametrize("args", [["-xen-domid", "5"], ["-d", "5"]])
def test_attaching_without_xen_fails_clearly(args, tmp_path):
    """No hypervisor here (and no test double preloaded): the daemon says
    why it cannot attach and exits non-zero before serving anything."""
    r = xendm.run(args + ["-qmp", "unix:%s/q,server=on,wait=off" % tmp_path])
    assert r.returncode != 0
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} xen-dm error: xen: cannot open the Xen interfaces",
                     r.stderr, re.M), r.stderr
    assert not os.path.exists(tmp_path / "q")  # nothing was started


# --- recognised, not yet supported ------------------------------------------------------------


def test_not_yet_supported_option_is_logged_once_and_ignored(start_daemon):
    d = start_daemon(["-usbdevice", "tablet", "-usbdevice", "mouse"], qmp=True)
    assert serves_qmp(d) == "running"
    assert not_yet_warnings(d) == {"usbdevice": 1}


def test_each_not_yet_supported_option_is_logged_once(start_daemon):
    d = start_daemon(["-device", "VGA", "-drive", "if=none,id=x", "-device", "ide-cd,drive=x",
                      "-usb", "-usb", "-serial", "pty", "-serial", "null", "-k", "en-us"], qmp=True)
    assert serves_qmp(d) == "running"
    assert not_yet_warnings(d) == {"usb": 1, "k": 1}


def test_not_yet_supported_option_keeps_its_argument(start_daemon):
    # "-kernel" takes an argument: "-S" after it is its value, not an option,
    # so the machine is not paused.
    d = start_daemon(["-kernel", "-S"], qmp=True)
    assert serves_qmp(d) == "running"


# --- trace points ---------------------------------------------------------------------------


def test_trace_help_lists_trace_points():
    r = xendm.run(["-trace", "help"])
    assert r.returncode == 0
    points = r.stdout.split()
    assert "qmp" in points and "bus_unassigned" in points
    assert len(points) == len(set(points))
    assert all(re.fullmatch(r"[a-z0-9_]+", p) for p in points)


def test_trace_enable_form():
    assert xendm.run(["-trace", "enable=help"]).returncode == 0


def test_trace_qmp_logs_traffic(start_daemon):
    d = start_daemon(["-trace", "qmp"], qmp=True)
    q = d.qmp()
    q.command("query-status")
    m = d.wait_log(r'<- \{"execute":"query-status"')
    assert m
    levels = {level for level, msg in d.log() if "query-status" in msg}
    assert levels == {"trace qmp"}


def test_trace_from_the_environment(start_daemon):
    d = start_daemon(qmp=True, env={"XEN_DM_TRACE": "qmp,bus_*"})
    d.qmp().command("query-status")
    d.wait_log(r'-> \{"return"')


def test_trace_glob(start_daemon):
    d = start_daemon(["-trace", "bus_unass*"], qtest=True)
    d.qtest().inb(0x1234)
    d.wait_log(r"read pio 0x1234/1")


# --- socket option forms -----------------------------------------------------------------------


def test_legacy_server_nowait_spelling(start_daemon):
    d = start_daemon(["-qmp", "unix:{dir}/legacy,server,nowait"], extra_sockets=["{dir}/legacy"])
    assert serves_qmp(d, d.sockets[0]) == "running"


def test_server_waits_for_first_client(start_daemon):
    """server=on without wait=off: as QEMU, the daemon waits for the first
    client before it starts; that client is then served like any other."""
    d = start_daemon(["-qmp", "unix:{dir}/w,server=on"], extra_sockets=["{dir}/w"], wait=False)
    q = xendm.QMP.connect(d.sockets[0])
    assert q.command("query-status")["status"] == "running"
    assert serves_qmp(d, d.sockets[0]) == "running"
    assert any("waiting for a client" in msg for _, msg in d.log())


# --- libxl's command lines --------------------------------------------------------------------


QMP_LIBXL = "{dir}/qmp-libxl-5"
QMP_LIBXENSTAT = "{dir}/qmp-libxenstat-5"


def qemu_xen_args(extra=()):
    """libxl__build_device_model_args_new for an HVM guest with a disk, a
    CD-ROM, a NIC, VNC and a USB tablet (xen-dm-interfaces.md §4.3), without
    -xen-domid. The sockets are in the daemon's own directory."""
    cmd, stat = QMP_LIBXL, QMP_LIBXENSTAT
    return [
        "-no-shutdown",
        "-chardev", "socket,id=libxl-cmd,path=%s,server=on,wait=off" % cmd,
        "-mon", "chardev=libxl-cmd,mode=control",
        "-chardev", "socket,id=libxenstat-cmd,path=%s,server=on,wait=off" % stat,
        "-mon", "chardev=libxenstat-cmd,mode=control",
        "-nodefaults", "-no-user-config",
        "-name", "guest1",
        "-vnc", "127.0.0.1:0,to=99",
        "-display", "none",
        "-serial", "pty",
        "-device", "VGA,vgamem_mb=16",
        "-boot", "order=cd",
        "-usb", "-usbdevice", "tablet",
        "-smp", "2,maxcpus=4",
        "-device", "rtl8139,id=nic0,netdev=net0,mac=00:16:3e:5a:2b:01",
        "-netdev", "type=tap,id=net0,ifname=vif5.0-emu,br=xenbr0,script=no,downscript=no",
        "-machine", "xenfv,suppress-vmdesc=on",
        "-m", "1016",
        "-drive", "file=/var/lib/xen/images/guest1.img,if=ide,index=0,media=disk,format=raw,cache=writeback",
        "-drive", "if=none,readonly=on,id=ide-5632",
        "-device", "ide-cd,id=ide-5632,drive=ide-5632,bus=ide.1,unit=0",
    ] + list(extra)


def start_qemu_xen(start_daemon, extra=()):
    return start_daemon(qemu_xen_args(extra), extra_sockets=[QMP_LIBXL, QMP_LIBXENSTAT])


def test_libxl_qemu_xen_command_line(start_daemon):
    d = start_qemu_xen(start_daemon)
    cmd, stat = d.extra_sockets
    assert serves_qmp(d, cmd) == "running"
    assert serves_qmp(d, stat) == "running"
    assert not_yet_warnings(d) == {"usb": 1, "usbdevice": 1, "netdev": 1}


def test_libxl_qemu_xen_without_platform_device_or_acpi(start_daemon):
    d = start_qemu_xen(start_daemon, ["-machine", "pc,accel=xen,suppress-vmdesc=on", "-no-acpi",
                                      "-vnc", "none", "-nographic", "-net", "none",
                                      "-chardev", "pty,id=libxl-channel0"])
    assert serves_qmp(d, d.extra_sockets[0]) == "running"


def test_libxl_qemu_xen_restricted(start_daemon):
    """dm_restrict: -S, -xen-domid-restrict, -chroot, -runas. The
    deprivileging options are not done yet (logged); the daemon starts
    paused. (-incoming is exercised by the save/restore tests.)"""
    d = start_qemu_xen(start_daemon, ["-S", "-xen-domid-restrict",
                                      "-chroot", "/var/run/xen/qemu-root-5",
                                      "-runas", "xen-qemuuser-range-base"])
    assert serves_qmp(d, d.extra_sockets[0]) == "prelaunch"
    warned = not_yet_warnings(d)
    for opt in ("xen-domid-restrict", "chroot", "runas"):
        assert warned.get(opt) == 1, opt


def test_libxl_qemu_trad_command_line(start_daemon):
    """libxl__build_device_model_args_old (§4.2) without -d; qemu-dm has no
    QMP, so a -qmp socket is added to look inside."""
    args = [
        "-domain-name", "guest1",
        "-vnc", "127.0.0.1:0", "-vncunused",
        "-k", "en-us",
        "-serial", "pty",
        "-videoram", "8", "-std-vga",
        "-boot", "cda",
        "-usb", "-usbdevice", "tablet",
        "-soundhw", "ac97",
        "-acpi",
        "-vcpus", "2", "-vcpu_avail", "0x3",
        "-net", "nic,vlan=0,macaddr=00:16:3e:5a:2b:01,model=rtl8139",
        "-net", "tap,vlan=0,ifname=vif5.0-emu,bridge=xenbr0,script=no,downscript=no",
        "-M", "xenfv",
    ]
    d = start_daemon(args, qmp=True)
    assert serves_qmp(d) == "running"
    warned = not_yet_warnings(d)
    assert warned == {"vncunused": 1, "k": 1, "videoram": 1, "std-vga": 1, "usb": 1,
                      "usbdevice": 1, "soundhw": 1, "net": 1}


def test_libxl_qemu_trad_no_nic(start_daemon):
    d = start_daemon(["-domain-name", "g", "-nographic", "-vcpu_avail", "1", "-net", "none",
                      "-gfx_passthru", "-M", "xenfv"], qmp=True)
    assert serves_qmp(d) == "running"
    assert not_yet_warnings(d) == {"net": 1, "gfx_passthru": 1}


def test_restore_from_a_missing_or_bad_file_fails_clearly(tmp_path):
    bad = tmp_path / "state"
    bad.write_bytes(b"not a device state")
    for arg in (str(tmp_path / "missing"), str(bad)):
        r = xendm.run(["-loadvm", arg, "-qmp", "unix:%s/q,server=on,wait=off" % tmp_path])
        assert r.returncode != 0
        assert "restore:" in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "q")


def test_console_limit_caps_the_log(start_daemon):
    """libxl sets XEN_QEMU_CONSOLE_LIMIT (XSA-180): a client provoking log
    lines without end cannot grow the log past it."""
    d = start_daemon(["-m", "8"], qtest=True, env={"XEN_QEMU_CONSOLE_LIMIT": "600"})
    q = d.qtest()
    for i in range(2000):
        q.cmd("bogus%d" % i)
    size = len(d.stderr().encode())
    assert size < 600 + 200, size
    assert "log limit of 600 bytes reached" in d.stderr()
