#!/usr/bin/env python3
"""The software machine against QEMU's TCG on the same guest images.

(a) CPU-bound loop: tests/guests/boot_loop.asm, the add/xor/inc/dec/jnz loop
    of tests/bench/bench_x86emu.c (100,001,202 instructions, plus a dozen of
    set-up), run to its isa-debug-exit. What is measured is the whole
    process, exec to exit; the start-up cost (b) is subtracted to get the
    loop's own time, so the figure is instructions per second of guest
    execution including the run loop's slicing and polling.
(b) Start-up: exec to process exit for tests/guests/boot_exit.asm, whose
    first instructions after the reset vector write the exit port. That is
    an upper bound on "exec to the first guest instruction" (it includes
    the handful of guest instructions and the process teardown).
(c) Firmware: Debian's SeaBIOS (/usr/share/seabios/bios.bin) from exec
    until its log on port 0x402 says "Scan for option roms" (POST done:
    PCI, tables, devices) and "Booting from" (the step before a boot
    sector would run; there is no disk emulation yet, so none does). The
    runs are not the same work: under QEMU SeaBIOS has fw_cfg (ACPI tables,
    no boot menu), under xen-dm it has none, builds its own tables and
    waits about 2.5 s for ESC ("Press ESC for boot menu") before booting.
    Skipped without SeaBIOS.

QEMU runs the very same images with
    qemu-system-x86_64 -accel tcg -M pc -m 32 -bios IMG
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 -display none
        -nodefaults -no-user-config
and is skipped with a message when it is not installed. Numbers are
printed, never judged: this never fails on timing. The binary is $XEN_DM,
else ./xen-dm; the guests are $XEN_DM_GUESTS, else tests-bin/guests beside
the binary.
"""

import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import xendm  # noqa: E402

LOOP_INSTRUCTIONS = 100_001_202
LOOP_STATUS = (0x2A << 1) | 1
EXIT_STATUS = (0x21 << 1) | 1
STARTUP_RUNS = 20
LOOP_RUNS = 5
DEBUG_EXIT = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]


def guests_dir():
    return os.environ.get("XEN_DM_GUESTS") or os.path.join(os.path.dirname(xendm.binary()), "tests-bin", "guests")


def timed(argv, status):
    start = time.perf_counter()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=300)
    elapsed = time.perf_counter() - start
    if r.returncode != status:
        raise RuntimeError("%s exited with %d, expected %d:\n%s" % (
            " ".join(argv), r.returncode, status, r.stderr.decode(errors="replace")[-2000:]))
    return elapsed


def measure(name, make_argv):
    exit_img = os.path.join(guests_dir(), "boot_exit.bin")
    loop_img = os.path.join(guests_dir(), "boot_loop.bin")
    startup = statistics.median(timed(make_argv(exit_img), EXIT_STATUS) for _ in range(STARTUP_RUNS))
    total = statistics.median(timed(make_argv(loop_img), LOOP_STATUS) for _ in range(LOOP_RUNS))
    loop = max(total - startup, 1e-9)
    print("%s: exec -> debug-exit of boot_exit: median %.1f ms (%d runs)" % (name, startup * 1000, STARTUP_RUNS))
    print("%s: boot_loop: median %.3f s whole process, %.3f s without start-up -> %.0f M instructions/s (%d runs)"
          % (name, total, loop, LOOP_INSTRUCTIONS / loop / 1e6, LOOP_RUNS))


SEABIOS = "/usr/share/seabios/bios.bin"
SEABIOS_RUNS = 3


MARKERS = (b"Scan for option roms", b"Booting from")


def seabios_to_boot(argv_for_log):
    """Seconds from exec until each of MARKERS first shows in the SeaBIOS log."""
    logdir = xendm.short_tempdir()
    log = os.path.join(logdir, "seabios.log")
    seen = {}
    start = time.perf_counter()
    proc = subprocess.Popen(argv_for_log(log), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while len(seen) < len(MARKERS):
            try:
                with open(log, "rb") as f:
                    text = f.read()
            except FileNotFoundError:
                text = b""
            now = time.perf_counter() - start
            for m in MARKERS:
                if m not in seen and m in text:
                    seen[m] = now
            if proc.poll() is not None:
                raise RuntimeError("%s exited with %d before booting" % (argv_for_log(log)[0], proc.returncode))
            if now > 120:
                raise RuntimeError("SeaBIOS did not get to booting in 120 s")
            time.sleep(0.001)
        return seen
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(logdir, ignore_errors=True)


def measure_seabios(name, argv_for_log):
    runs = [seabios_to_boot(argv_for_log) for _ in range(SEABIOS_RUNS)]
    print("%s: SeaBIOS exec -> %s (%d runs)" % (name, ", ".join(
        "\"%s\" median %.1f ms" % (m.decode(), statistics.median(r[m] for r in runs) * 1000) for m in MARKERS),
        SEABIOS_RUNS))


def main():
    for img in ("boot_exit.bin", "boot_loop.bin"):
        if not os.path.exists(os.path.join(guests_dir(), img)):
            print("sim bench: skipped, %s is not built (make builds the guests)" % img)
            return 0
    debugcon = lambda log: ["-chardev", "file,id=fw,path=%s" % log, "-device", "isa-debugcon,iobase=0x402,chardev=fw"]
    qemu = shutil.which("qemu-system-x86_64")
    qemu_args = lambda img: [qemu, "-accel", "tcg", "-M", "pc", "-m", "32", "-bios", img, "-display", "none",
                             "-nodefaults", "-no-user-config"]
    measure("xen-dm -machine sim",
            lambda img: [xendm.binary(), "-machine", "sim", "-m", "32", "-bios", img] + DEBUG_EXIT)
    if qemu:
        measure("qemu tcg", lambda img: qemu_args(img) + DEBUG_EXIT)
    else:
        print("qemu tcg: skipped, qemu-system-x86_64 is not installed")
    if not os.path.exists(SEABIOS):
        print("SeaBIOS boot: skipped, %s is absent (Debian package seabios)" % SEABIOS)
        return 0
    measure_seabios("xen-dm -machine sim", lambda log: [xendm.binary(), "-machine", "sim", "-m", "32", "-bios",
                                                         SEABIOS] + debugcon(log))
    if qemu:
        measure_seabios("qemu tcg", lambda log: qemu_args(SEABIOS) + debugcon(log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
