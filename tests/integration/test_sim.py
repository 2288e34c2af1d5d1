"""The software machine: xen-dm -machine sim running the minimal guests of
tests/guests/boot_*.asm (assembled by `make` into tests-bin/guests/).

Every test checks something the guest or the machine does, through the exit
status, the serial and debug-console output, QMP and qtest. None depends on
wall-clock speed: waits are bounded by generous timeouts only."""

import os
import re
import subprocess
import time

import pytest

import xendm

DEBUG_EXIT = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
RUN_TIMEOUT = 60.0


def guests_dir():
    """tests-bin/guests next to the binary under test ($XEN_DM_GUESTS wins)."""
    return os.environ.get("XEN_DM_GUESTS") or os.path.join(os.path.dirname(xendm.binary()), "tests-bin", "guests")


def guest(name):
    path = os.path.join(guests_dir(), name + ".bin")
    if not os.path.exists(path):
        pytest.fail("no guest image %s (make builds it)" % path, pytrace=False)
    return path


def sim_args(name, *extra, ram="32"):
    return ["-machine", "sim", "-m", ram, "-bios", guest(name)] + DEBUG_EXIT + list(extra)


def run_sim(name, *extra, tmp_path, ram="32"):
    """Runs a guest to its end; returns (exit status, serial text, stderr)."""
    serial = tmp_path / "serial.out"
    proc = subprocess.run([xendm.binary()] + sim_args(name, "-serial", "file:%s" % serial, *extra, ram=ram),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    text = serial.read_bytes().decode(errors="replace") if serial.exists() else ""
    return proc.returncode, text, proc.stderr


def errors_in(stderr):
    return [line for line in stderr.splitlines() if " xen-dm error: " in line or not xendm.LOG_LINE.match(line)]


def wait_file(path, pattern, timeout=RUN_TIMEOUT, count=1, alive=None):
    """Waits until the file holds count matches of pattern; returns its text."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_bytes().decode(errors="replace") if path.exists() else ""
        if len(re.findall(pattern, text)) >= count:
            return text
        if alive is not None and not alive():
            raise AssertionError("xen-dm exited while waiting for %r; output so far: %r" % (pattern, text))
        if time.monotonic() >= deadline:
            raise TimeoutError("no %d x %r in %s: %r" % (count, pattern, path, text))
        time.sleep(0.01)


# --- guests that run to their end ------------------------------------------


def test_debug_exit_status(tmp_path):
    rc, _, err = run_sim("boot_exit", tmp_path=tmp_path)
    assert rc == (0x21 << 1) | 1, err
    assert errors_in(err) == []


def test_debug_exit_default_port_is_qemus(tmp_path):
    # Without iobase the device sits at QEMU's 0x501, so the guest's write to
    # 0xF4 reaches nothing and it halts with interrupts off: SIGTERM ends it.
    serial = tmp_path / "s"
    proc = subprocess.Popen([xendm.binary(), "-machine", "sim", "-m", "8", "-bios", guest("boot_exit"),
                             "-device", "isa-debug-exit", "-serial", "file:%s" % serial],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(1.0)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=xendm.EXIT_TIMEOUT)
    assert proc.returncode == 0
    assert "isa-debug-exit at ports 0x501-0x502" in err


def test_uart_and_debug_consoles(tmp_path):
    dbg, fw = tmp_path / "e9.out", tmp_path / "402.out"
    rc, serial, err = run_sim("boot_hello", "-debugcon", "file:%s" % dbg,
                              "-chardev", "file,id=fw,path=%s" % fw,
                              "-device", "isa-debugcon,iobase=0x402,chardev=fw", tmp_path=tmp_path)
    assert rc == (0x10 << 1) | 1, err
    assert serial == "hello from the sim machine over COM1\r\n"
    assert dbg.read_text() == "hello over the debug console\n"
    assert fw.read_text() == "hello on port 0x402\n"
    assert errors_in(err) == []


def test_pit_and_pic_deliver_timer_interrupts(tmp_path):
    rc, serial, err = run_sim("boot_pit", tmp_path=tmp_path)
    assert rc == (0x11 << 1) | 1, err
    assert serial == "pit: 0x0032 ticks\r\n"


def test_pam_shadow_ram(tmp_path):
    rc, serial, err = run_sim("boot_shadow", tmp_path=tmp_path)
    assert rc == (2 << 1) | 1, serial + err
    assert serial == "shadow: ok\r\n"


def test_cpu_bound_loop_runs_to_its_end(tmp_path):
    # 10^8 instructions: the benchmark's guest, here only for its result.
    rc, _, err = run_sim("boot_loop", tmp_path=tmp_path)
    assert rc == (0x2a << 1) | 1, err


def test_guest_resets_and_a20(tmp_path):
    # 0xCF9, then the A20 gate of port 0x92 both ways, then its fast reset.
    rc, serial, err = run_sim("boot_reset", tmp_path=tmp_path)
    assert rc == (3 << 1) | 1, serial + err
    assert serial == "boot 1\nboot 2\nboot 3\n"


def test_guest_reset_with_no_reboot_exits(tmp_path):
    rc, serial, err = run_sim("boot_reset", "-no-reboot", tmp_path=tmp_path)
    assert rc == 0, err
    assert serial == "boot 1\n"


# --- hostile guests ----------------------------------------------------------


def test_unassigned_ports_and_mmio(tmp_path):
    rc, serial, err = run_sim("boot_unassigned", tmp_path=tmp_path)
    assert rc == (1 << 1) | 1, serial + err
    assert serial == "unassigned: ok\r\n"
    assert "write to port 0x1234/1: nothing there (dropped)" in err
    assert "read from MMIO 0xa0100/4: nothing there (all-ones)" in err
    assert "write to the firmware ROM at 0x000f" in err
    assert errors_in(err) == []


def test_triple_fault_resets_the_machine(start_daemon):
    d = start_daemon(sim_args("boot_triple", "-serial", "file:{dir}/serial"), qmp=True)
    qmp = d.qmp()
    wait_file(pathlib_of(d, "serial"), r"boot\r\n", count=3, alive=d.alive)
    ev = qmp.wait_event("RESET")
    assert ev["data"] == {"guest": True, "reason": "guest-reset"}
    d.wait_log(r"guest triple fault at f000:.*: resetting")
    qmp.command("quit")
    d.expect_exit()
    assert d.wait_exit() == 0


def test_triple_fault_with_no_reboot_exits(tmp_path):
    rc, serial, err = run_sim("boot_triple", "-no-reboot", tmp_path=tmp_path)
    assert rc == 0, err
    assert serial == "boot\r\n"
    assert "exiting (-no-reboot)" in err


def test_hlt_with_interrupts_off_idles(start_daemon):
    d = start_daemon(sim_args("boot_hltcli", "-serial", "file:{dir}/serial"))
    wait_file(pathlib_of(d, "serial"), "halting with interrupts off", alive=d.alive)
    pid = d.proc.pid
    cpu_before = cpu_seconds(pid)
    wall_before = time.monotonic()
    time.sleep(1.0)
    cpu = cpu_seconds(pid) - cpu_before
    wall = time.monotonic() - wall_before
    # A spinning host thread would use about all of the second; an idle one
    # a few milliseconds. Generous: half of the time measured.
    assert cpu < wall / 2, "xen-dm used %.2f s of CPU in %.2f s while the guest was halted" % (cpu, wall)


def test_protected_mode_guest(tmp_path):
    rc, serial, err = run_sim("boot_pmode", tmp_path=tmp_path)
    assert rc == (0x12 << 1) | 1, serial + err
    assert serial == "pm: switching\r\npm: ok\r\n"


def test_unemulated_feature_stops_the_machine(start_daemon):
    """A hardware task switch (not implemented by x86emu) stops the vCPU
    with QMP status internal-error; system_reset revives it, paused."""
    d = start_daemon(sim_args("boot_taskswitch", "-S", "-serial", "file:{dir}/serial"), qmp=True)
    d.allow_errors(r"needs what the software CPU does not implement")
    serial = pathlib_of(d, "serial")
    qmp = d.qmp()
    qmp.command("cont")
    wait_until(lambda: qmp.command("query-status")["status"] == "internal-error")
    assert qmp.wait_event("STOP") is not None
    assert serial.read_bytes().decode() == "ts: switching\r\n"
    d.wait_log(r"guest at 0008:000f.... needs what the software CPU does not implement")
    qmp.command("cont")  # refused silently, as QEMU needs a reset first
    assert qmp.command("query-status")["status"] == "internal-error"
    qmp.command("system_reset")
    assert qmp.command("query-status")["status"] == "paused"
    qmp.command("cont")
    wait_file(serial, r"ts: switching", count=2, alive=d.alive)
    wait_until(lambda: qmp.command("query-status")["status"] == "internal-error")


SEABIOS = "/usr/share/seabios/bios.bin"


@pytest.mark.skipif(not os.path.exists(SEABIOS), reason="no %s (Debian package seabios)" % SEABIOS)
def test_seabios_boots_to_its_banner_and_beyond(start_daemon):
    """Debian's SeaBIOS on the software machine: RAM size from CMOS (no
    fw_cfg), PCI enumeration of the xenfv bus, shadowing through PAM, the PM
    timer; its log goes to isa-debugcon at 0x402."""
    d = start_daemon(["-machine", "sim", "-m", "64", "-bios", SEABIOS, "-serial", "null",
                      "-chardev", "file,id=fw,path={dir}/seabios.log",
                      "-device", "isa-debugcon,iobase=0x402,chardev=fw"], qmp=True)
    log = pathlib_of(d, "seabios.log")
    text = wait_file(log, r"Searching bootorder|No bootable device|Booting from", alive=d.alive)
    assert text.startswith("SeaBIOS (version ")
    assert "Running on QEMU (i440fx)" in text
    assert "RamSize: 0x04000000 [cmos]" in text
    assert "Found 5 PCI devices" in text
    assert "PCI: init bdf=00:01.3 id=8086:7113" in text
    assert "PCI: init bdf=00:02.0 id=5853:0001" in text
    assert "Using pmtimer, ioport 0xb008" in text
    assert d.qmp().command("query-status")["status"] == "running"


# --- control: QMP and signals -------------------------------------------------


def test_qmp_stop_cont_reset_quit_while_spinning(start_daemon):
    d = start_daemon(sim_args("boot_spin", "-serial", "file:{dir}/serial"), qmp=True, qtest=True)
    serial = pathlib_of(d, "serial")
    qmp, qt = d.qmp(), d.qtest()
    wait_file(serial, r"spin 0001\n", alive=d.alive)
    assert qmp.command("query-status") == {"status": "running", "singlestep": False, "running": True}

    # The guest's counter at 0x504 moves while it runs (the loop answers
    # QMP and qtest in between)...
    first = int(qt.cmd("readl 0x504").split()[1], 16)
    wait_until(lambda: int(qt.cmd("readl 0x504").split()[1], 16) != first)
    # ...and stands still while it is paused.
    qmp.command("stop")
    assert qmp.command("query-status")["status"] == "paused"
    frozen = qt.cmd("readl 0x504")
    for _ in range(20):
        assert qt.cmd("readl 0x504") == frozen
        time.sleep(0.005)
    qmp.command("cont")
    assert qmp.command("query-status")["status"] == "running"
    wait_until(lambda: qt.cmd("readl 0x504") != frozen)

    # A reset runs the firmware again; RAM survives, so the boot count grows.
    qmp.command("system_reset")
    assert qmp.wait_event("RESET")["data"] == {"guest": False, "reason": "host-qmp-system-reset"}
    wait_file(serial, r"spin 0002\n", alive=d.alive)

    qmp.command("quit")
    assert qmp.wait_event("SHUTDOWN")["data"]["reason"] == "host-qmp-quit"
    d.expect_exit()
    assert d.wait_exit() == 0


def test_sigterm_ends_a_spinning_guest(start_daemon):
    d = start_daemon(sim_args("boot_spin", "-serial", "file:{dir}/serial"))
    wait_file(pathlib_of(d, "serial"), r"spin 0001\n", alive=d.alive)
    assert d.stop() == 0


def test_start_paused_runs_nothing_until_cont(start_daemon):
    d = start_daemon(sim_args("boot_hello", "-S", "-serial", "file:{dir}/serial"), qmp=True)
    qmp = d.qmp()
    assert qmp.command("query-status")["status"] == "prelaunch"
    time.sleep(0.2)
    assert not pathlib_of(d, "serial").read_bytes().decode()
    qmp.command("cont")
    d.expect_exit()
    d.wait_exit()
    assert d.stop(expect_rc=(0x10 << 1) | 1) == (0x10 << 1) | 1


def test_acpi_hotplug_gpe_and_power_button(start_daemon):
    d = start_daemon(sim_args("boot_acpi", "-serial", "file:{dir}/serial"), qmp=True)
    serial = pathlib_of(d, "serial")
    qmp = d.qmp()
    wait_file(serial, "acpi: ready", alive=d.alive)
    # Hot-plug raises GPE0 bit 1 and the SCI: the guest's IRQ 9 handler runs.
    qmp.command("device_add", driver="pci-testdev", id="t1")
    wait_file(serial, r"gpe 0002\n", alive=d.alive)
    # The power button: the guest answers with S5, which ends the process.
    qmp.command("system_powerdown")
    wait_file(serial, "power button", alive=d.alive)
    assert qmp.wait_event("SHUTDOWN")["data"] == {"guest": True, "reason": "guest-shutdown"}
    d.expect_exit()
    assert d.wait_exit() == 0


def test_poweroff_with_no_shutdown_stays(start_daemon):
    d = start_daemon(sim_args("boot_acpi", "-no-shutdown", "-serial", "file:{dir}/serial"), qmp=True)
    qmp = d.qmp()
    wait_file(pathlib_of(d, "serial"), "acpi: ready", alive=d.alive)
    qmp.command("system_powerdown")
    qmp.wait_event("SHUTDOWN")
    assert qmp.command("query-status")["status"] == "shutdown"
    assert d.alive()


def test_device_state_save_and_load_are_refused(start_daemon):
    d = start_daemon(sim_args("boot_spin", "-serial", "file:{dir}/serial"), qmp=True)
    qmp = d.qmp()
    path = os.path.join(d.dir, "state")
    with pytest.raises(xendm.QMPError, match="not supported"):
        qmp.command("xen-save-devices-state", filename=path)
    open(path, "wb").close()
    with pytest.raises(xendm.QMPError, match="does not restore state"):
        qmp.command("xen-load-devices-state", filename=path)
    assert qmp.command("query-status")["status"] == "running"


def test_system_powerdown_refused_without_sim(qmp_daemon):
    with pytest.raises(xendm.QMPError, match="needs -machine sim"):
        qmp_daemon.qmp().command("system_powerdown")


# --- bad command lines ---------------------------------------------------------


@pytest.mark.parametrize("size,why", [
    (None, "No such file or directory"),
    (1000, "multiple of 64 KiB"),
    (2 << 20, "multiple of 64 KiB"),
    (0, "multiple of 64 KiB"),
], ids=["missing", "1000-bytes", "2MiB", "empty"])
def test_bad_bios_image(tmp_path, size, why):
    path = tmp_path / "bios.bin"
    if size is not None:
        path.write_bytes(b"\x90" * size)
    r = xendm.run(["-machine", "sim", "-bios", str(path)])
    assert r.returncode == 1
    assert why in r.stderr


def test_bios_is_a_directory(tmp_path):
    r = xendm.run(["-M", "sim", "-bios", str(tmp_path)])
    assert r.returncode == 1
    assert "regular file" in r.stderr


@pytest.mark.parametrize("args,why", [
    (["-machine", "sim"], "needs -bios FILE"),
    (["-bios", "x.bin"], "-bios needs -machine sim"),
    (["-debugcon", "stdio"], "-debugcon needs -machine sim"),
    (["-machine", "sim", "-bios", "x.bin", "-m", "4000"], "4000 MiB of RAM is more than"),
    (["-machine", "sim", "-bios", "x.bin", "-xen-domid", "3"], "cannot serve a domain"),
    (["-machine", "sim", "-bios", "x.bin", "-chardev", "file,path=/tmp/x"], "id= is required"),
])
def test_bad_sim_options(args, why):
    r = xendm.run(args)
    assert r.returncode == 2
    assert why in r.stderr


def test_debugcon_names_a_missing_chardev(tmp_path):
    rc, _, err = run_sim("boot_exit", "-device", "isa-debugcon,iobase=0x402,chardev=nope", tmp_path=tmp_path)
    assert rc == 1
    assert "no -chardev with id 'nope'" in err


def test_debug_exit_bad_iosize(tmp_path):
    r = xendm.run(["-M", "sim", "-m", "8", "-bios", guest("boot_exit"), "-device", "isa-debug-exit,iobase=0xf4,iosize=3"])
    assert r.returncode == 1
    assert "iosize must be 1, 2 or 4" in r.stderr


# --- helpers ------------------------------------------------------------------


def pathlib_of(d, name):
    import pathlib
    return pathlib.Path(d.dir) / name


def wait_until(cond, timeout=RUN_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            raise TimeoutError("condition never became true")
        time.sleep(0.005)


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks

